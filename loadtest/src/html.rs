//! The self-contained HTML report: one file, inline CSS and inline SVG charts
//! drawn here, no script and nothing fetched, so it opens offline and can be
//! attached to a ticket as is. Rendered from the [`Summary`] alone.

use std::fmt::Write;

use crate::report::{Percentiles, Summary};

/// Colours of chart series, in order (readable on white, distinct in greyscale order).
const PALETTE: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

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

fn opt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{} ms", num(v))).unwrap_or_else(|| "–".into())
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// One line of a chart; `None` values break the line.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    dashed: bool,
    points: Vec<(f64, Option<f64>)>,
}

/// A line chart as inline SVG with axes, ticks and a legend.
fn line_chart(id: &str, title: &str, y_unit: &str, series: &[Series<'_>]) -> String {
    const W: f64 = 960.0;
    const H: f64 = 280.0;
    const L: f64 = 64.0;
    const R: f64 = 16.0;
    const T: f64 = 34.0;
    const B: f64 = 40.0;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x_max = xs.fold(0.0f64, f64::max).max(1.0);
    let y_max_raw = series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)).fold(0.0f64, f64::max);
    let (y_max, y_step) = nice_axis(y_max_raw);
    let (x_top, x_step) = nice_axis(x_max);
    let px = |x: f64| L + (W - L - R) * (x / x_top);
    let py = |y: f64| H - B - (H - T - B) * (y / y_max);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure class="chart" id="{id}"><svg viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">"#,
        t = esc(title)
    );
    let _ = write!(s, r#"<text x="{L}" y="20" class="ct">{}</text>"#, esc(title));
    // grid and y ticks
    let mut y = 0.0;
    while y <= y_max + 1e-9 {
        let yy = py(y);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{x2}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{tx}" y="{ty:.1}" class="tk" text-anchor="end">{lbl}</text>"##,
            x2 = W - R,
            tx = L - 6.0,
            ty = yy + 4.0,
            lbl = num(y)
        );
        y += y_step;
    }
    let mut x = 0.0;
    while x <= x_top + 1e-9 {
        let xx = px(x);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" y1="{y1}" x2="{xx:.1}" y2="{y2}" stroke="#999"/><text x="{xx:.1}" y="{ty}" class="tk" text-anchor="middle">{lbl}s</text>"##,
            y1 = H - B,
            y2 = H - B + 4.0,
            ty = H - B + 17.0,
            lbl = num(x)
        );
        x += x_step;
    }
    let _ = write!(
        s,
        r##"<line x1="{L}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="#333"/><line x1="{L}" y1="{T}" x2="{L}" y2="{yb}" stroke="#333"/><text x="14" y="{ym}" class="tk" transform="rotate(-90 14 {ym})" text-anchor="middle">{u}</text><text x="{xm}" y="{H2}" class="tk" text-anchor="middle">time since start</text>"##,
        yb = H - B,
        xr = W - R,
        ym = (H - B + T) / 2.0,
        u = esc(y_unit),
        xm = (L + W - R) / 2.0,
        H2 = H - 4.0
    );
    for se in series {
        let mut d = String::new();
        let mut pen_down = false;
        for (x, y) in &se.points {
            match y {
                Some(y) => {
                    let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, px(*x), py(*y));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let dash = if se.dashed { r#" stroke-dasharray="5,4""# } else { "" };
            let _ = write!(
                s,
                r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.8"{dash}><title>{}</title></path>"#,
                d.trim_end(),
                se.color,
                esc(se.name)
            );
        }
        // Single points would be invisible as a path; mark them.
        if se.points.iter().filter(|p| p.1.is_some()).count() == 1
            && let Some((x, Some(y))) = se.points.iter().find(|p| p.1.is_some())
        {
            let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, px(*x), py(*y), se.color);
        }
    }
    // legend, on the title's line after the title
    let mut lx = L + 28.0 + 8.5 * title.chars().count() as f64;
    for se in series {
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="{ly}" width="14" height="3" fill="{c}"/><text x="{tx:.1}" y="{ty}" class="lg">{n}</text>"#,
            ly = 13.0,
            c = se.color,
            tx = lx + 18.0,
            ty = 19.0,
            n = esc(se.name)
        );
        lx += 26.0 + 7.0 * se.name.chars().count() as f64;
    }
    s.push_str("</svg></figure>");
    s
}

/// A round axis maximum and tick step for `max` (at most ~6 ticks).
fn nice_axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
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
    let verdict = if s.thresholds_passed { "PASS" } else { "FAIL" };
    let verdict_class = if s.thresholds_passed { "pass" } else { "fail" };
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Load test {sc}: {verdict}</title><style>{css}</style></head><body>
<header><h1>Load test <code>{sc}</code> <span class="badge {verdict_class}" id="verdict">{verdict}</span></h1>"#,
        sc = esc(&s.scenario),
        css = CSS
    );
    if let Some(d) = &s.description {
        let _ = write!(h, "<p class=desc>{}</p>", esc(d));
    }
    let model = match s.load.model.as_str() {
        "constant_rate" => format!(
            "open model, constant rate {} it/s, max {} in flight",
            num(s.load.rate.unwrap_or(0.0)),
            s.load.max_in_flight.unwrap_or(0)
        ),
        "ramping_rate" => format!(
            "open model, ramping from {} it/s through {} stage(s), max {} in flight",
            num(s.load.start_rate.unwrap_or(0.0)),
            s.load.stages.len(),
            s.load.max_in_flight.unwrap_or(0)
        ),
        _ => format!("closed model, {} virtual users", s.load.vus.unwrap_or(0)),
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
        dur = num(s.load.duration_s),
        ran = num(s.duration_s),
        st = esc(&s.started_at),
        intr = if s.interrupted { " — <b>interrupted</b>" } else { "" },
        targets = s.targets.iter().map(|(k, v)| format!("{} <code>{}</code>", esc(k), esc(v))).collect::<Vec<_>>().join(", ")
    );

    // Headline numbers.
    let t = &s.totals;
    let p99 = s.http_req_duration_ms.as_ref().map(|p| p.p99);
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
        if t.errors > 0 { "warn" } else { "" },
        pct(t.error_rate),
        opt_ms(p99),
        t.iterations_completed,
        t.iterations_started,
        if t.dropped_iterations > 0 { "warn" } else { "" },
        t.dropped_iterations
    );

    if !s.warnings.is_empty() {
        h.push_str("<section class=warnings><h2>Warnings</h2><ul>");
        for w in &s.warnings {
            let _ = write!(h, "<li>{}</li>", esc(w));
        }
        h.push_str("</ul></section>");
    }

    // Thresholds.
    h.push_str("<section><h2>Thresholds</h2>");
    if s.thresholds.is_empty() {
        h.push_str("<p>No thresholds configured.</p>");
    } else {
        h.push_str("<table id=thresholds><thead><tr><th>rule</th><th>observed</th><th>limit</th><th>result</th></tr></thead><tbody>");
        for th in &s.thresholds {
            let fmt_v = |v: f64| match th.unit.as_str() {
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
                obs = th.observed.map(fmt_v).unwrap_or_else(|| "no data".into()),
                op = esc(&th.op),
                lim = fmt_v(th.limit),
                res = if th.passed { "pass" } else { "FAIL" }
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");

    // Per-step table.
    h.push_str(
        "<section><h2>Steps</h2><table id=steps><thead><tr><th>step</th><th>requests</th><th>req/s</th><th>errors</th><th>error rate</th>\
         <th>p50 ms</th><th>p90 ms</th><th>p95 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr></thead><tbody>",
    );
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

    // Charts.
    let pts = &s.timeseries.points;
    let end = |p: &crate::report::Point| p.t_s + s.timeseries.interval_s;
    h.push_str("<section><h2>Over time</h2>");
    h.push_str(&line_chart(
        "chart-latency",
        "Latency, all steps (per bucket)",
        "ms",
        &[
            Series { name: "p50", color: PALETTE[0], dashed: false, points: pts.iter().map(|p| (end(p), p.p50_ms)).collect() },
            Series { name: "p90", color: PALETTE[1], dashed: false, points: pts.iter().map(|p| (end(p), p.p90_ms)).collect() },
            Series { name: "p99", color: PALETTE[3], dashed: false, points: pts.iter().map(|p| (end(p), p.p99_ms)).collect() },
            Series { name: "max", color: "#888", dashed: true, points: pts.iter().map(|p| (end(p), p.max_ms)).collect() },
        ],
    ));
    let per_s = |v: u64| v as f64 / s.timeseries.interval_s;
    h.push_str(&line_chart(
        "chart-throughput",
        "Throughput and errors",
        "per second",
        &[
            Series { name: "requests/s", color: PALETTE[0], dashed: false, points: pts.iter().map(|p| (end(p), Some(p.rps))).collect() },
            Series {
                name: "errors/s",
                color: PALETTE[3],
                dashed: false,
                points: pts.iter().map(|p| (end(p), Some(per_s(p.errors)))).collect(),
            },
            Series {
                name: "iterations started/s",
                color: PALETTE[2],
                dashed: true,
                points: pts.iter().map(|p| (end(p), Some(per_s(p.iterations_started)))).collect(),
            },
            Series {
                name: "dropped/s",
                color: PALETTE[4],
                dashed: true,
                points: pts.iter().map(|p| (end(p), Some(per_s(p.dropped)))).collect(),
            },
        ],
    ));
    let step_series: Vec<Series<'_>> = s
        .steps
        .iter()
        .enumerate()
        .map(|(i, st)| Series {
            name: &st.name,
            color: PALETTE[i % PALETTE.len()],
            dashed: false,
            points: pts.iter().map(|p| (end(p), p.steps.get(&st.name).and_then(|sp| sp.p99_ms))).collect(),
        })
        .collect();
    h.push_str(&line_chart("chart-steps", "p99 latency per step", "ms", &step_series));
    h.push_str("</section>");

    // Errors.
    h.push_str("<section><h2>Outcomes and errors</h2><table id=errors><thead><tr><th>step</th><th>outcomes</th><th>status codes</th><th>example</th></tr></thead><tbody>");
    for st in &s.steps {
        let outcomes = st.outcomes.iter().map(|(k, v)| format!("{} {v}", esc(k))).collect::<Vec<_>>().join(", ");
        let codes = st.status_codes.iter().map(|(k, v)| format!("{} × {v}", esc(k))).collect::<Vec<_>>().join(", ");
        let examples = st.error_examples.iter().map(|(k, v)| format!("<b>{}</b>: {}", esc(k), esc(v))).collect::<Vec<_>>().join("<br>");
        let _ =
            write!(h, "<tr><td><code>{}</code></td><td>{outcomes}</td><td>{codes}</td><td class=ex>{examples}</td></tr>", esc(&st.name));
    }
    h.push_str("</tbody></table></section>");

    // Checks and counters.
    h.push_str("<section><h2>Checks</h2>");
    if s.checks.is_empty() {
        h.push_str("<p>No checks ran.</p>");
    } else {
        h.push_str("<table id=checks><thead><tr><th>step</th><th>check</th><th>passed</th><th>failed</th></tr></thead><tbody>");
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
        h.push_str("<h3>Counters</h3><table id=counters><tbody>");
        for (k, v) in &s.counters {
            let _ = write!(h, "<tr><td><code>{}</code></td><td>{v}</td></tr>", esc(k));
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");

    // Slowest requests.
    h.push_str("<section><h2>Slowest requests</h2>");
    if s.slowest.is_empty() {
        h.push_str("<p>No requests.</p>");
    } else {
        h.push_str("<table id=slowest><thead><tr><th>step</th><th>latency</th><th>status</th><th>outcome</th><th>at</th><th>trace (Jaeger)</th></tr></thead><tbody>");
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
    }
    h.push_str("</section>");
    let _ = writeln!(
        h,
        "</main><footer>glasshouse-loadtest · summary schema {} v{} · finished {}</footer></body></html>",
        esc(&s.schema),
        s.schema_version,
        esc(&s.finished_at)
    );
    h
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
footer{color:#888;font-size:12px;padding:10px 28px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_axes() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(nice_axis(0.0), (1.0, 0.25));
        let (top, step) = nice_axis(73.0);
        assert!(top >= 73.0 && top / step <= 6.0, "{top} {step}");
        let (top, step) = nice_axis(0.034);
        assert!(top >= 0.034 && top / step <= 6.0, "{top} {step}");
    }
}
