//! SLO specs, the generator of Prometheus recording and alerting rules, and the
//! checks that keep rules, runbooks, unit tests and the metric naming contract
//! in agreement.
//!
//! The files this crate works on live beside it: `alerts/slos/*.yaml` (SLO
//! specs), `alerts/rules/*.yaml` (what Prometheus loads: generated `slo-*.yaml`
//! plus hand-written `symptoms.yaml`), `alerts/runbooks/<AlertName>.md`,
//! `alerts/tests/promtool/*.yaml` (promtool unit tests) and
//! `alerts/PROPOSED_METRICS.md` (metrics asked of the services, not yet in
//! `telemetry/METRICS.md`).
//!
//! # Layout
//! - [`spec`]: the SLO spec format, read and validated.
//! - [`generate`]: specs -> rule files (SLI recordings, budget recordings,
//!   multi-window multi-burn-rate alerts), optionally with shortened windows.
//! - [`duration`]: Prometheus durations, parsed, printed and scaled.
//! - [`rules`]: the Prometheus rule-file format, read and written.
//! - [`promql`]: finds the series selectors in a PromQL expression.
//! - [`contract`]: which names and labels may be queried (METRICS.md et al.).
//! - [`repo`]: where each of those files is in the repository.
//! - [`checks`]: the consistency checks the CLI and the tests run.
//! - [`promtool`]: runs `promtool` and `amtool` and reports their verdicts.
#![forbid(unsafe_code)]

pub mod checks;
pub mod contract;
pub mod duration;
pub mod generate;
pub mod promql;
pub mod promtool;
pub mod repo;
pub mod rules;
pub mod spec;
