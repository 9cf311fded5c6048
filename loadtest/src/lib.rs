//! The Glasshouse load-test runner.
//!
//! It will drive the full order flow with an open workload model (constant or
//! ramping arrival rate, latency measured from the intended start time),
//! record HDR histograms per step, check thresholds, and write JSON and HTML
//! reports.
#![forbid(unsafe_code)]
