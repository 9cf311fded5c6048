//! SLO specs, the generator of Prometheus recording and alerting rules, and their checks.
#![forbid(unsafe_code)]
