//! The command line: `glasshouse-loadtest run|check --config FILE ...` and
//! `glasshouse-loadtest merge [--out DIR] PART...`.
//!
//! Exit codes (also in loadtest/README.md):
//! - 0: the run finished and every threshold passed (`check`: the config is valid)
//! - 1: the run finished and at least one threshold was breached
//! - 2: bad arguments or config, token source missing, target not allowed,
//!   not resolvable or unreachable, output directory not writable, metrics
//!   port taken: found before any request was sent
//! - 3: the load ran but the reports could not be written

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config, Overrides};
use crate::report::Summary;
use crate::runner::{self, RunError, RunOptions};

/// Exit code: thresholds passed.
pub const EXIT_OK: i32 = 0;
/// Exit code: at least one threshold breached.
pub const EXIT_THRESHOLDS: i32 = 1;
/// Exit code: bad config or unreachable target, nothing sent.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code: reports could not be written.
pub const EXIT_OUTPUT: i32 = 3;

#[derive(Debug, Parser)]
#[command(name = "glasshouse-loadtest", version, about = "Open-model load runner for the Glasshouse order flow")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario and write summary.json + report.html.
    Run(RunArgs),
    /// Validate a scenario file (no network, no tokens read) and print the plan.
    Check(CommonArgs),
    /// Merge the summaries of runs that shared the load into one summary.json + report.html.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// Output directory (default target/loadtest/<scenario>-merged-<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The parts: summary.json files, or directories holding one.
    #[arg(required = true)]
    parts: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Scenario file (YAML).
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Override load.duration (constant_rate and closed), e.g. 60s.
    #[arg(long, value_parser = parse_duration_arg)]
    duration: Option<std::time::Duration>,
    /// Switch to the constant-rate open model at this many iterations per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Switch to the closed model with this many virtual users.
    #[arg(long)]
    vus: Option<u32>,
    /// Override load.max_in_flight (open model).
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// Override a target's base URL: NAME=URL (repeatable).
    #[arg(long = "target", value_parser = parse_target_arg)]
    targets: Vec<(String, String)>,
    /// Serve /metrics on this loopback port (0 = any free port).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Do not serve /metrics (and do not register with Prometheus).
    #[arg(long)]
    no_metrics: bool,
    /// A non-loopback host that may be loaded, added to the file's allow_hosts (repeatable).
    #[arg(long = "allow-host")]
    allow_hosts: Vec<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Output directory (default target/loadtest/<scenario>-<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runtime worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar (also off when CI is set or stderr is not a terminal).
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Print summary.json as one line at the end of stdout (a pod's log is then its part).
    #[arg(long)]
    print_summary: bool,
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    config::parse_duration(s)
}

fn parse_target_arg(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not NAME=URL"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

impl CommonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            duration: self.duration,
            rate: self.rate,
            vus: self.vus,
            max_in_flight: self.max_in_flight,
            targets: self.targets.clone(),
            metrics_port: self.metrics_port,
            no_metrics: self.no_metrics,
            allow_hosts: self.allow_hosts.clone(),
        }
    }
}

/// Runs the CLI with `args` (including the program name) and returns the exit code.
pub fn main_with(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Check(common) => match Config::load(&common.config, &common.overrides()) {
            Ok(cfg) => {
                println!("{}", describe(&cfg));
                EXIT_OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                EXIT_CONFIG
            }
        },
        Command::Run(args) => run_command(args),
        Command::Merge(args) => merge_command(args),
    }
}

fn merge_command(args: MergeArgs) -> i32 {
    let labels: Vec<String> = args.parts.iter().map(|p| p.display().to_string()).collect();
    let merged = args
        .parts
        .iter()
        .map(|p| crate::merge::read_part(p))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|parts| crate::merge::merge(&parts, &labels));
    let summary = match merged {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("target/loadtest").join(format!("{}-merged-{}", summary.scenario, chrono::Utc::now().format("%Y%m%dT%H%M%SZ")))
    });
    let written = std::fs::create_dir_all(&out)
        .map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))
        .and_then(|()| runner::write_outputs(&out, &summary));
    match written {
        Ok((json, html)) => {
            println!("merged {} parts", labels.len());
            print!("{}", text_summary(&summary));
            println!("report:  {}", html.display());
            println!("summary: {}", json.display());
            summary.exit_code
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_OUTPUT
        }
    }
}

fn run_command(args: RunArgs) -> i32 {
    let (cfg, tokens, rt) = match prepare(&args) {
        Ok(ready) => ready,
        Err((msg, code)) => {
            eprintln!("error: {msg}");
            return code;
        }
    };
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("target/loadtest").join(format!("{}-{}", cfg.scenario, chrono::Utc::now().format("%Y%m%dT%H%M%SZ")))
    });
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    let mut opts = RunOptions::new(out);
    opts.progress = !args.quiet && !ci && std::io::stderr().is_terminal();
    opts.tokens = tokens;
    opts.on_metrics = Some(Box::new(|a| eprintln!("metrics: http://{a}/metrics")));
    opts.stop = Some(Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    }));
    eprintln!("{}", describe(&cfg));
    match rt.block_on(runner::run(&cfg, opts)) {
        Ok(o) => {
            if let Some(p) = &o.registered {
                eprintln!("was registered with Prometheus via {} (removed)", p.display());
            }
            print!("{}", text_summary(&o.summary));
            println!("report:  {}", o.html_path.display());
            println!("summary: {}", o.json_path.display());
            if args.print_summary {
                match serde_json::to_string(&o.summary) {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!("error: cannot print the summary: {e}");
                        return EXIT_OUTPUT;
                    }
                }
            }
            o.exit_code()
        }
        Err(RunError::Setup(msg)) => {
            eprintln!("error: {msg}\nno load was sent");
            EXIT_CONFIG
        }
        Err(e @ RunError::Output(_)) => {
            eprintln!("error: {e}");
            EXIT_OUTPUT
        }
    }
}

/// The config, its tokens and the runtime; or the message and exit code.
fn prepare(args: &RunArgs) -> Result<(Config, Vec<String>, tokio::runtime::Runtime), (String, i32)> {
    let cfg = Config::load(&args.common.config, &args.common.overrides()).map_err(|e| (e.to_string(), EXIT_CONFIG))?;
    let tokens = match &cfg.auth {
        Some(source) => config::load_tokens(source).map_err(|e| (format!("config {}: {e}", args.common.config.display()), EXIT_CONFIG))?,
        None => Vec::new(),
    };
    if args.threads == Some(0) {
        return Err(("--threads must be at least 1".into(), EXIT_CONFIG));
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n);
    }
    let rt = builder.build().map_err(|e| (format!("cannot start the async runtime: {e}"), EXIT_OUTPUT))?;
    Ok((cfg, tokens, rt))
}

/// One paragraph saying what will run.
pub fn describe(cfg: &Config) -> String {
    use crate::config::Load;
    let load = match &cfg.load {
        Load::ConstantRate { rate, duration, max_in_flight, .. } => {
            format!("constant rate {rate}/s for {}, max {max_in_flight} in flight", config::format_duration(*duration))
        }
        Load::RampingRate { start_rate, stages, max_in_flight, .. } => format!(
            "ramping from {start_rate}/s through {} ({}), max {max_in_flight} in flight",
            stages.iter().map(|s| format!("{}/s over {}", s.target, config::format_duration(s.duration))).collect::<Vec<_>>().join(", "),
            config::format_duration(cfg.load.duration())
        ),
        Load::Closed { vus, duration, .. } => format!("closed model, {vus} VUs for {}", config::format_duration(*duration)),
    };
    let flows = cfg
        .flows
        .iter()
        .map(|f| format!("{} (weight {}): {}", f.name, f.weight, f.steps.iter().filter_map(|s| s.name()).collect::<Vec<_>>().join(" -> ")))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "scenario {}: {load}\n  flows: {flows}\n  targets: {}\n  thresholds: {}",
        cfg.scenario,
        cfg.targets.iter().map(|(k, t)| format!("{k}={}", t.url)).collect::<Vec<_>>().join(", "),
        if cfg.thresholds.is_empty() {
            "none".to_string()
        } else {
            cfg.thresholds.iter().map(|t| t.expression.clone()).collect::<Vec<_>>().join("; ")
        }
    )
}

/// The end-of-run text on stdout: per-step table, thresholds, warnings.
pub fn text_summary(s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let t = &s.totals;
    let _ = writeln!(
        out,
        "\n{}{}: {} requests in {:.1}s ({:.1}/s), error rate {:.2}%, iterations {}/{} done, {} failed, {} dropped",
        s.scenario,
        if s.interrupted { " (interrupted)" } else { "" },
        t.requests,
        s.duration_s,
        t.throughput_rps,
        t.error_rate * 100.0,
        t.iterations_completed,
        t.iterations_started,
        t.iterations_failed,
        t.dropped_iterations
    );
    let _ = writeln!(out, "latency from the {}", s.latency_origin.replace('_', " "));
    let _ =
        writeln!(out, "{:<22} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9}", "step", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms");
    for st in &s.steps {
        let p = |f: fn(&crate::report::Percentiles) -> f64| {
            st.latency_ms.as_ref().map(|l| format!("{:.1}", f(l))).unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            out,
            "{:<22} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9}",
            st.name,
            st.requests,
            st.errors,
            p(|l| l.p50),
            p(|l| l.p90),
            p(|l| l.p99),
            p(|l| l.max)
        );
    }
    if let Some(slow) = s.slowest.first() {
        let _ = writeln!(out, "slowest: {} {:.1} ms {}", slow.step, slow.latency_ms, slow.trace_url);
        if let Some(t) = &slow.trace {
            let spans = match &t.trace_error {
                Some(why) => format!("trace not available: {why}"),
                None => format!("{} spans on {:.1} ms", t.spans.len(), t.duration_us as f64 / 1000.0),
            };
            let logs = match &t.logs_error {
                Some(why) => format!("logs not available: {why}"),
                None => format!("{} log lines", t.logs.len()),
            };
            let _ = writeln!(out, "         {spans}; {logs} (in the report)");
        }
    }
    for w in &s.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if s.thresholds.is_empty() {
        let _ = writeln!(out, "thresholds: none configured");
    } else if s.thresholds_passed {
        let _ = writeln!(out, "thresholds: PASS ({} of {})", s.thresholds.len(), s.thresholds.len());
    } else {
        let _ = writeln!(out, "thresholds: FAIL ({} of {} breached)", s.breached().len(), s.thresholds.len());
        for b in s.breached() {
            let observed = b.observed.map(|v| format!("{v} {}", b.unit)).unwrap_or_else(|| "no data".into());
            let _ = writeln!(out, "  breached: {}  (observed {observed})", b.expression);
        }
    }
    out
}
