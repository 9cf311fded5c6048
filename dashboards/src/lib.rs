//! Grafana dashboards (JSON under `dashboards/grafana/`) and the checker that
//! validates their structure and runs every panel query against Prometheus.
#![forbid(unsafe_code)]
