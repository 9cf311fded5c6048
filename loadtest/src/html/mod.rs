//! The self-contained HTML report: one file, inline CSS and inline SVG charts
//! drawn here ([`chart`]), no script and nothing fetched, so it opens offline
//! and can be attached to a ticket as is. Rendered from the [`Summary`] alone,
//! one function per section of the page.

use std::fmt::Write;

use crate::report::{Percentiles, Point, SlowSummary, Summary};
use crate::trace::TraceDetails;

mod chart;

use chart::{PALETTE, Series, line_chart};

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// `items` rendered by `f` and joined by `sep`.
fn join<T>(items: impl IntoIterator<Item = T>, sep: &str, f: impl Fn(T) -> String) -> String {
    items.into_iter().map(f).collect::<Vec<_>>().join(sep)
}

/// Opens `<table id=ID>` with a header row of `columns`; the caller writes the rows and closes it.
fn open_table(h: &mut String, id: &str, columns: &[&str]) {
    let _ = write!(h, "<table id={id}><thead><tr>{}</tr></thead><tbody>", join(columns, "", |c| format!("<th>{c}</th>")));
}

fn percentile_cells(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => [p.p50, p.p90, p.p95, p.p99, p.p99_9, p.max].iter().map(|v| format!("<td>{}</td>", num(*v))).collect(),
        None => "<td colspan=6>no samples</td>".into(),
    }
}

/// Renders the report page.
pub fn render(s: &Summary) -> String {
    let mut h = String::with_capacity(64 * 1024);
    header(&mut h, s);
    cards(&mut h, s);
    if !s.warnings.is_empty() {
        let _ = write!(
            h,
            "<section class=warnings><h2>Warnings</h2><ul>{}</ul></section>",
            join(&s.warnings, "", |w| format!("<li>{}</li>", esc(w)))
        );
    }
    thresholds(&mut h, s);
    steps(&mut h, s);
    charts(&mut h, s);
    outcomes(&mut h, s);
    checks(&mut h, s);
    slowest(&mut h, s);
    let _ = writeln!(
        h,
        "</main><footer>glasshouse-loadtest · summary schema {} v{} · finished {}</footer></body></html>",
        esc(&s.schema),
        s.schema_version,
        esc(&s.finished_at)
    );
    h
}

/// Title with the verdict badge, the load model, timing and targets.
fn header(h: &mut String, s: &Summary) {
    let (verdict, class) = if s.thresholds_passed { ("PASS", "pass") } else { ("FAIL", "fail") };
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Load test {sc}: {verdict}</title><style>{CSS}</style></head><body>
<header><h1>Load test <code>{sc}</code> <span class="badge {class}" id="verdict">{verdict}</span></h1>"#,
        sc = esc(&s.scenario),
    );
    if let Some(d) = &s.description {
        let _ = write!(h, "<p class=desc>{}</p>", esc(d));
    }
    let l = &s.load;
    let model = match l.model.as_str() {
        "constant_rate" => {
            format!("open model, constant rate {} it/s, max {} in flight", num(l.rate.unwrap_or(0.0)), l.max_in_flight.unwrap_or(0))
        }
        "ramping_rate" => format!(
            "open model, ramping from {} it/s through {} stage(s), max {} in flight",
            num(l.start_rate.unwrap_or(0.0)),
            l.stages.len(),
            l.max_in_flight.unwrap_or(0)
        ),
        _ => format!("closed model, {} virtual users", l.vus.unwrap_or(0)),
    };
    let origin = if s.latency_origin == "intended_start" {
        "measured from each iteration's intended start (coordinated omission corrected)"
    } else {
        "measured from the actual send (closed model: not corrected for coordinated omission)"
    };
    let _ = write!(
        h,
        r#"<p class=meta>{model}; scheduled {dur}s, ran {ran}s; started {st}{intr}.<br>Latency {origin}.</p>
<p class=meta>Targets: {targets}</p></header><main>"#,
        dur = num(l.duration_s),
        ran = num(s.duration_s),
        st = esc(&s.started_at),
        intr = if s.interrupted { " — <b>interrupted</b>" } else { "" },
        targets = join(&s.targets, ", ", |(k, v)| format!("{} <code>{}</code>", esc(k), esc(v)))
    );
}

/// The headline numbers.
fn cards(h: &mut String, s: &Summary) {
    let t = &s.totals;
    let warn = |bad: bool| if bad { "warn" } else { "" };
    let _ = write!(
        h,
        r#"<section class=cards>
<div class=card><b>{}</b><span>requests</span></div>
<div class=card><b>{}</b><span>requests/s</span></div>
<div class="card {}"><b>{}</b><span>error rate</span></div>
<div class=card><b>{}</b><span>p99 (all steps)</span></div>
<div class=card><b>{} / {}</b><span>iterations done / started</span></div>
<div class="card {}"><b>{}</b><span>dropped iterations</span></div>
</section>"#,
        t.requests,
        num(t.throughput_rps),
        warn(t.errors > 0),
        pct(t.error_rate),
        s.http_req_duration_ms.as_ref().map(|p| format!("{} ms", num(p.p99))).unwrap_or_else(|| "–".into()),
        t.iterations_completed,
        t.iterations_started,
        warn(t.dropped_iterations > 0),
        t.dropped_iterations
    );
}

fn thresholds(h: &mut String, s: &Summary) {
    h.push_str("<section><h2>Thresholds</h2>");
    if s.thresholds.is_empty() {
        h.push_str("<p>No thresholds configured.</p>");
    } else {
        open_table(h, "thresholds", &["rule", "observed", "limit", "result"]);
        for th in &s.thresholds {
            let value = |v: f64| match th.unit.as_str() {
                "ms" => format!("{} ms", num(v)),
                "ratio" => pct(v),
                "1/s" => format!("{}/s", num(v)),
                _ => num(v),
            };
            let _ = write!(
                h,
                r#"<tr class="threshold-row {cls}"><td><code>{e}</code></td><td>{obs}</td><td>{op} {lim}</td><td class=res>{res}</td></tr>"#,
                cls = if th.passed { "pass" } else { "fail" },
                e = esc(&th.expression),
                obs = th.observed.map(value).unwrap_or_else(|| "no data".into()),
                op = esc(&th.op),
                lim = value(th.limit),
                res = if th.passed { "pass" } else { "FAIL" }
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");
}

/// Per-step latency table, with the all-steps and end-to-end rows.
fn steps(h: &mut String, s: &Summary) {
    let t = &s.totals;
    h.push_str("<section><h2>Steps</h2>");
    let columns = ["step", "requests", "req/s", "errors", "error rate", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms"];
    open_table(h, "steps", &columns);
    for st in &s.steps {
        let _ = write!(
            h,
            r#"<tr class="step-row" data-step="{n}"><td><code>{n}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>"#,
            st.requests,
            num(st.throughput_rps),
            st.errors,
            pct(st.error_rate),
            percentile_cells(&st.latency_ms),
            n = esc(&st.name)
        );
    }
    let _ = write!(
        h,
        r#"<tr class="total-row"><td>all steps</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>"#,
        t.requests,
        num(t.throughput_rps),
        t.errors,
        pct(t.error_rate),
        percentile_cells(&s.http_req_duration_ms)
    );
    let _ = write!(
        h,
        r#"<tr class="total-row"><td>iteration (end to end)</td><td>{}</td><td></td><td>{}</td><td></td>{}</tr>"#,
        t.iterations_completed,
        t.iterations_failed,
        percentile_cells(&s.iteration_duration_ms)
    );
    h.push_str("</tbody></table>");
    if let Some(lag) = &s.scheduling_lag_ms {
        let _ = write!(
            h,
            "<p class=note>Scheduling lag (first request sent after its intended start): p50 {} ms, p99 {} ms, max {} ms. It is part of the latencies above.</p>",
            num(lag.p50),
            num(lag.p99),
            num(lag.max)
        );
    }
    h.push_str("</section>");
}

/// Latency, throughput and per-step p99 over time; points sit at their bucket's end.
fn charts(h: &mut String, s: &Summary) {
    let series = |name, color, dashed, value: &dyn Fn(&Point) -> Option<f64>| Series {
        name,
        color,
        dashed,
        points: s.timeseries.points.iter().map(|p| (p.t_s + s.timeseries.interval_s, value(p))).collect(),
    };
    let per_s = |v: u64| Some(v as f64 / s.timeseries.interval_s);
    let latency = [
        series("p50", PALETTE[0], false, &|p| p.p50_ms),
        series("p90", PALETTE[1], false, &|p| p.p90_ms),
        series("p99", PALETTE[3], false, &|p| p.p99_ms),
        series("max", "#888", true, &|p| p.max_ms),
    ];
    let throughput = [
        series("requests/s", PALETTE[0], false, &|p| Some(p.rps)),
        series("errors/s", PALETTE[3], false, &|p| per_s(p.errors)),
        series("iterations started/s", PALETTE[2], true, &|p| per_s(p.iterations_started)),
        series("dropped/s", PALETTE[4], true, &|p| per_s(p.dropped)),
    ];
    let per_step: Vec<Series<'_>> = (s.steps.iter().enumerate())
        .map(|(i, st)| series(&st.name, PALETTE[i % PALETTE.len()], false, &|p| p.steps.get(&st.name).and_then(|sp| sp.p99_ms)))
        .collect();
    h.push_str("<section><h2>Over time</h2>");
    h.push_str(&line_chart("chart-latency", "Latency, all steps (per bucket)", "ms", &latency));
    h.push_str(&line_chart("chart-throughput", "Throughput and errors", "per second", &throughput));
    h.push_str(&line_chart("chart-steps", "p99 latency per step", "ms", &per_step));
    h.push_str("</section>");
}

/// Outcome classes, status codes and an example message per failure class, per step.
fn outcomes(h: &mut String, s: &Summary) {
    h.push_str("<section><h2>Outcomes and errors</h2>");
    open_table(h, "errors", &["step", "outcomes", "status codes", "example"]);
    for st in &s.steps {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=ex>{}</td></tr>",
            esc(&st.name),
            join(&st.outcomes, ", ", |(k, v)| format!("{} {v}", esc(k))),
            join(&st.status_codes, ", ", |(k, v)| format!("{} × {v}", esc(k))),
            join(&st.error_examples, "<br>", |(k, v)| format!("<b>{}</b>: {}", esc(k), esc(v)))
        );
    }
    h.push_str("</tbody></table></section>");
}

/// Named checks, and the free counters (final order states).
fn checks(h: &mut String, s: &Summary) {
    h.push_str("<section><h2>Checks</h2>");
    if s.checks.is_empty() {
        h.push_str("<p>No checks ran.</p>");
    } else {
        open_table(h, "checks", &["step", "check", "passed", "failed"]);
        for c in &s.checks {
            let _ = write!(
                h,
                r#"<tr class="{}"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                if c.fails > 0 { "fail" } else { "pass" },
                esc(&c.step),
                esc(&c.name),
                c.passes,
                c.fails
            );
        }
        h.push_str("</tbody></table>");
    }
    if !s.counters.is_empty() {
        let rows = join(&s.counters, "", |(k, v)| format!("<tr><td><code>{}</code></td><td>{v}</td></tr>", esc(k)));
        let _ = write!(h, "<h3>Counters</h3><table id=counters><tbody>{rows}</tbody></table>");
    }
    h.push_str("</section>");
}

/// The slowest requests, each linking to its trace in Jaeger.
fn slowest(h: &mut String, s: &Summary) {
    h.push_str("<section><h2>Slowest requests</h2>");
    if s.slowest.is_empty() {
        h.push_str("<p>No requests.</p>");
    } else {
        open_table(h, "slowest", &["step", "latency", "status", "outcome", "at", "trace"]);
        for r in &s.slowest {
            let _ = write!(
                h,
                r#"<tr class="slow-row"><td><code>{}</code></td><td>{} ms</td><td>{}</td><td>{}</td><td>{}s</td><td><a href="{}"><code>{}</code></a></td></tr>"#,
                esc(&r.step),
                num(r.latency_ms),
                r.status.map(|c| c.to_string()).unwrap_or_else(|| "–".into()),
                esc(&r.outcome),
                num(r.at_s),
                esc(&r.trace_url),
                esc(&r.trace_id)
            );
        }
        h.push_str("</tbody></table>");
        for (i, r) in s.slowest.iter().enumerate() {
            if let Some(d) = &r.trace {
                slow_detail(h, i, r, d);
            }
        }
    }
    h.push_str("</section>");
}

/// Microseconds as a short duration.
fn us(v: u64) -> String {
    if v >= 1000 { format!("{} ms", num(v as f64 / 1000.0)) } else { format!("{v} µs") }
}

/// One slow request explained: its trace as a waterfall (critical path
/// highlighted, errors marked) and its log lines, collapsed.
fn slow_detail(h: &mut String, i: usize, r: &SlowSummary, d: &TraceDetails) {
    let _ = write!(
        h,
        r#"<div class=slow-detail id="slow-{i}" data-trace-id="{tid}"><h3>#{n} <code>{step}</code> {lat} ms · trace <code>{tid}</code></h3>"#,
        n = i + 1,
        step = esc(&r.step),
        lat = num(r.latency_ms),
        tid = esc(&r.trace_id)
    );
    match &d.trace_error {
        Some(why) => {
            let _ = write!(h, "<p class=unavailable>trace not available: {}</p>", esc(why));
        }
        None => waterfall(h, d),
    }
    match &d.logs_error {
        Some(why) => {
            let _ = write!(h, "<p class=unavailable>logs not available: {}</p>", esc(why));
        }
        None => {
            let _ = write!(h, "<details class=logs><summary>{} log line(s)</summary>", d.logs.len());
            if !d.logs.is_empty() {
                open_table(h, &format!("logs-{i}"), &["time", "service", "level", "message"]);
                for l in &d.logs {
                    let lvl = l.level.to_ascii_lowercase();
                    let _ = write!(
                        h,
                        r#"<tr class="log-row lvl-{c}"><td><code>{}</code></td><td>{}</td><td>{}</td><td class=msg>{}</td></tr>"#,
                        esc(&l.time),
                        esc(&l.service),
                        esc(&l.level),
                        esc(&l.message),
                        c = esc(&lvl.chars().filter(char::is_ascii_alphanumeric).collect::<String>())
                    );
                }
                h.push_str("</tbody></table>");
            }
            h.push_str("</details>");
        }
    }
    h.push_str("</div>");
}

/// The spans as bars on the trace's time axis, indented by depth.
fn waterfall(h: &mut String, d: &TraceDetails) {
    let total = d.duration_us.max(1) as f64;
    let _ = write!(
        h,
        r#"<div class=waterfall><div class="wf-row wf-head"><span class=wf-label>service · operation ({} spans, {})</span><span class=wf-track><span class=wf-axis>0</span><span class="wf-axis end">{}</span></span><span class=wf-num>start · duration</span></div>"#,
        d.spans.len(),
        us(d.duration_us),
        us(d.duration_us)
    );
    for sp in &d.spans {
        let left = sp.start_offset_us as f64 / total * 100.0;
        let width = (sp.duration_us as f64 / total * 100.0).max(0.3).min(100.0 - left.min(99.7));
        let mut class = String::from("wf-row span-row");
        if sp.critical {
            class.push_str(" critical");
        }
        if sp.error {
            class.push_str(" error");
        }
        let _ = write!(
            h,
            r#"<div class="{class}" data-span-id="{id}" title="{svc} {op}: +{start}, {dur}{crit}{err}"><span class=wf-label style="padding-left:{pad}px">{mark}<b>{svc}</b> {op}</span><span class=wf-track><span class=wf-bar style="left:{left:.3}%;width:{width:.3}%"></span></span><span class=wf-num>+{start} · {dur}</span></div>"#,
            id = esc(&sp.span_id),
            svc = esc(&sp.service),
            op = esc(&sp.operation),
            start = us(sp.start_offset_us),
            dur = us(sp.duration_us),
            crit = if sp.critical { ", critical path" } else { "" },
            err = if sp.error { ", error" } else { "" },
            pad = 4 + 14 * sp.depth.min(20),
            mark = if sp.error { "<span class=err-mark title=error>✖</span> " } else { "" },
        );
    }
    if d.spans_omitted > 0 {
        let _ = write!(h, "<p class=note>{} more span(s) not shown.</p>", d.spans_omitted);
    }
    h.push_str("<p class=note>Highlighted: the critical path (from the root, the child that ends last, repeatedly). ✖ marks spans with error status.</p></div>");
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#222;background:#fafafa}\
header{background:#fff;border-bottom:1px solid #ddd;padding:16px 28px}main{padding:8px 28px 28px}\
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:22px 0 8px}h3{font-size:15px}\
code{font:12.5px ui-monospace,Menlo,Consolas,monospace}.meta,.desc{margin:4px 0;color:#555}\
.badge{font-size:14px;padding:2px 10px;border-radius:10px;color:#fff;vertical-align:middle}\
.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}\
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:14px}.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:130px}\
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}.card.warn{border-color:#e65100;background:#fff3e0}\
table{border-collapse:collapse;background:#fff;min-width:60%}th,td{border:1px solid #ddd;padding:4px 9px;text-align:right}\
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}td.ex{text-align:left;max-width:520px;font-size:12px}\
tr.fail td{background:#ffebee}tr.pass td.res{color:#2e7d32}tr.fail td.res{color:#c62828;font-weight:bold}tr.total-row td{background:#f7f7f7}\
.warnings{background:#fff3e0;border:1px solid #e65100;border-radius:6px;padding:4px 16px}\
.chart{margin:8px 0;background:#fff;border:1px solid #ddd;border-radius:6px;max-width:980px}.chart svg{width:100%;height:auto;display:block}\
.ct{font-size:14px;font-weight:600}.tk{font-size:11px;fill:#555}.lg{font-size:12px;fill:#333}.note{color:#555;font-size:12.5px}\
footer{color:#888;font-size:12px;padding:10px 28px}\
.slow-detail{background:#fff;border:1px solid #ddd;border-radius:6px;padding:4px 14px 10px;margin:12px 0;max-width:1180px}.slow-detail h3{margin:8px 0}\
.unavailable{color:#8d6e00;background:#fff8e1;padding:4px 8px;border-radius:4px}\
.wf-row{display:flex;align-items:center;font-size:12px;border-bottom:1px solid #f0f0f0;min-height:20px}\
.wf-label{flex:0 0 340px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}.wf-num{flex:0 0 150px;text-align:right;color:#555;font-variant-numeric:tabular-nums}\
.wf-track{flex:1;position:relative;height:14px;margin:0 8px;background:#fafafa}.wf-bar{position:absolute;top:2px;height:10px;background:#90a4ae;border-radius:2px}\
.wf-head{color:#666;font-weight:600}.wf-axis{position:absolute;left:0;font-size:11px;color:#888}.wf-axis.end{left:auto;right:0}\
.critical .wf-bar{background:#1565c0}.critical{background:#e3f2fd}.error .wf-bar{background:#c62828}.critical.error .wf-bar{background:#b71c1c;outline:2px solid #1565c0}\
.err-mark{color:#c62828}details.logs{margin-top:6px}details.logs summary{cursor:pointer;color:#1565c0}td.msg{text-align:left;max-width:640px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
