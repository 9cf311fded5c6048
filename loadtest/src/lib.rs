//! The Glasshouse load-test runner.
//!
//! Drives the order flow (or any HTTP flow declared in a scenario file) with
//! an open workload model — constant or ramping arrival rate, latency
//! measured from each iteration's *intended* start so coordinated omission
//! is corrected — or a closed model with fixed virtual users. It records HDR
//! histograms per step and end to end, classifies errors, checks thresholds
//! (exit code 1 when breached), serves its own `loadtest_*` metrics, and
//! writes a JSON summary and a self-contained HTML report.
//!
//! # Layout
//!
//! - [`config`]: the scenario file, validated into [`config::Config`]; every
//!   refusal names the key and value (exit code 2).
//! - [`threshold`]: the rule grammar (`http_req_duration{step:x} p99 < 300ms`).
//! - [`schedule`]: arrival instants of the open model (constant and ramps).
//! - [`client`]: a lean HTTP/1.1 client with a per-target keep-alive pool and
//!   exact failure classes (connect, timeout, protocol).
//! - [`scenario`]: one iteration of a flow: the order-flow steps and `http`.
//! - [`sample`]: one request's outcome class, trace id and latency.
//! - [`metrics`]: `loadtest_*` families, `/metrics`, Prometheus file-SD.
//! - [`stats`]: the recorder: histograms per step and per time bucket,
//!   outcomes, checks, slowest requests with trace ids; feeds [`metrics`].
//! - [`runner`]: pre-load checks, open/closed executors, progress, outputs.
//! - [`report`]: the JSON summary and threshold evaluation.
//! - [`html`]: the offline HTML report with inline SVG charts.
//! - [`merge`]: one report from the summaries of runs that shared the load.
//! - [`cli`]: argument parsing and exit codes.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod config;
pub mod html;
pub mod merge;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod sample;
pub mod scenario;
pub mod schedule;
pub mod stats;
pub mod threshold;
pub mod trace;
