//! The Glasshouse dashboards: what each shows and the queries behind each panel.
//! Metric names follow telemetry/METRICS.md; SLO series come from the recording
//! rules in alerts/rules/ (the checker verifies both).

use serde_json::Value;

use crate::build::{
    Dashboard, ELASTICSEARCH_UID, LOKI_UID, PROMETHEUS_UID, Panel, Variable, bar_gauge, elasticsearch, logs, loki, prom, prom_exemplar,
    prom_instant, stat, state_timeline, table, text, timeseries,
};

/// Every dashboard, as `(file stem, JSON)`; files are `dashboards/grafana/<stem>.json`.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("overview", overview()),
        ("service-order", service(&ORDER)),
        ("service-inventory", service(&INVENTORY)),
        ("service-notification", service(&NOTIFICATION)),
        ("order-flow", order_flow()),
        ("loadtest", loadtest()),
        ("logs", logs_dashboard()),
        ("slo", slo_dashboard()),
        ("infra-postgres", crate::infra::postgres()),
        ("infra-mariadb", crate::infra::mariadb()),
        ("infra-kafka", crate::infra::kafka()),
    ]
}

const RATE: &str = "$__rate_interval";

fn prometheus_var() -> Variable {
    Variable::Datasource { name: "datasource", label: "Prometheus", plugin: "prometheus", default_uid: PROMETHEUS_UID }
}

fn loki_var() -> Variable {
    Variable::Datasource { name: "logs", label: "Loki", plugin: "loki", default_uid: LOKI_UID }
}

fn overview() -> Value {
    Dashboard::new(
        "glasshouse-overview",
        "Glasshouse Overview",
        "Orders, RED per service and SLO status. Start here.",
    )
    .variable(prometheus_var())
    .row("Orders")
    .panel(
        bar_gauge("Order funnel", "short", vec![prom_instant(r#"sum by (status) (increase(orders_total[$__range]))"#, "{{status}}")])
            .w(8)
            .desc("Orders created in the time range, and how many of them ended confirmed, rejected or cancelled."),
    )
    .panel(
        timeseries("Orders by status", "ops", vec![prom(&format!("sum by (status) (rate(orders_total[{RATE}]))"), "{{status}}")])
            .w(10)
            .desc("Order lifecycle events per second."),
    )
    .panel(
        stat(
            "Confirmed share",
            "percentunit",
            vec![prom_instant(
                r#"sum(increase(orders_total{status="confirmed"}[$__range])) / sum(increase(orders_total{status="created"}[$__range]))"#,
                "confirmed / created",
            )],
        )
        .w(6)
        .h(8)
        .desc("Share of orders created in the range that were confirmed."),
    )
    .row("RED per service")
    .panel(
        timeseries(
            "Request rate by service",
            "reqps",
            vec![prom(&format!("sum by (service) (rate(http_server_request_duration_seconds_count[{RATE}]))"), "{{service}}")],
        )
        .w(8),
    )
    .panel(
        timeseries(
            "5xx ratio by service",
            "percentunit",
            vec![prom(
                &format!(
                    r#"(sum by (service) (rate(http_server_request_duration_seconds_count{{status_class="5xx"}}[{RATE}])) or 0 * sum by (service) (rate(http_server_request_duration_seconds_count[{RATE}]))) / sum by (service) (rate(http_server_request_duration_seconds_count[{RATE}]))"#
                ),
                "{{service}}",
            )],
        )
        .w(8)
        .min(0.0),
    )
    .panel(
        timeseries(
            "p99 latency by service",
            "s",
            vec![prom_exemplar(
                &format!("histogram_quantile(0.99, sum by (le, service) (rate(http_server_request_duration_seconds_bucket[{RATE}])))"),
                "{{service}}",
            )],
        )
        .w(8)
        .desc("Exemplars (dots) link to the trace in Jaeger and to its logs."),
    )
    .panel(
        stat("Services up", "none", vec![prom_instant(r#"up{job="glasshouse"}"#, "{{service}} {{instance}}")])
            .w(24)
            .h(4)
            .value_mappings(&[("0", "down", "red"), ("1", "up", "green")])
            .desc("Scrape health of every registered service instance."),
    )
    .row("SLOs")
    .panel(
        stat(
            "Error budget remaining (30 d)",
            "percentunit",
            vec![prom_instant("slo:period_error_budget_remaining:ratio", "{{slo}}")],
        )
        .w(8)
        .h(8)
        .thresholds(&[(None, "red"), (Some(0.0), "orange"), (Some(0.25), "green")])
        .desc("Share of each SLO's 30-day error budget not yet spent (below 0: overspent). From the recording rules in alerts/rules/."),
    )
    .panel(
        timeseries(
            "Burn rate (1 h)",
            "suffix:x",
            vec![prom("slo:sli_error:ratio_rate1h / on (service, slo) slo:error_budget:ratio", "{{slo}}")],
        )
        .w(8)
        .thresholds(&[(None, "green"), (Some(6.0), "orange"), (Some(14.4), "red")])
        .desc("How fast each SLO spends its budget; 1x spends exactly the budget in 30 days, 14.4x pages."),
    )
    .panel(
        timeseries(
            "SLI error ratio (5 m) vs budget",
            "percentunit",
            vec![
                prom("slo:sli_error:ratio_rate5m", "{{slo}}"),
                prom("slo:error_budget:ratio", "budget {{slo}}"),
            ],
        )
        .w(8)
        .desc("Bad events over all events in the last 5 minutes, with each SLO's allowed ratio."),
    )
    .panel(
        table("Firing alerts", vec![prom(r#"ALERTS{alertstate="firing"}"#, "")])
            .w(24)
            .h(6)
            .empty_when_healthy("no alert fires in a healthy run")
            .desc("Alerts Prometheus currently fires; runbooks: alerts/runbooks/<alertname>.md."),
    )
    .build()
}

/// What differs between the three service dashboards.
struct Service {
    name: &'static str,
    title: &'static str,
    /// Whether it calls other services over HTTP (with a circuit breaker).
    calls_peers: bool,
    /// Whether it writes events through a transactional outbox.
    has_outbox: bool,
}

const ORDER: Service = Service { name: "order", title: "Order", calls_peers: true, has_outbox: true };
const INVENTORY: Service = Service { name: "inventory", title: "Inventory", calls_peers: false, has_outbox: true };
const NOTIFICATION: Service = Service { name: "notification", title: "Notification", calls_peers: false, has_outbox: false };

fn service(s: &Service) -> Value {
    let svc = s.name;
    let sel = format!(r#"service="{svc}",instance=~"$instance""#);
    // Business families have no `service` label: select by job and instance.
    let biz = r#"job="glasshouse",instance=~"$instance""#;
    let uid: &'static str = match svc {
        "order" => "glasshouse-order",
        "inventory" => "glasshouse-inventory",
        _ => "glasshouse-notification",
    };
    let mut d = Dashboard::new(
        uid,
        &format!("Glasshouse {} service", s.title),
        &format!("RED by route, Kafka consumers, outbox, circuit breakers, DB pool and logs of the {svc} service."),
    )
    .variable(prometheus_var())
    .variable(loki_var())
    .variable(Variable::LabelValues {
        name: "instance",
        label: "Instance",
        metric_selector: format!(r#"up{{job="glasshouse",service="{svc}"}}"#),
        values_of: "instance",
    })
    .variable(Variable::Textbox { name: "trace_id", label: "Trace id (filters logs)" })
    .row("HTTP: requests, errors, duration by route")
    .panel(
        timeseries(
            "Requests by route",
            "reqps",
            vec![prom(
                &format!("sum by (method, route) (rate(http_server_request_duration_seconds_count{{{sel}}}[{RATE}]))"),
                "{{method}} {{route}}",
            )],
        )
        .w(8),
    )
    .panel(
        timeseries(
            "5xx ratio by route",
            "percentunit",
            vec![prom(
                &format!(
                    r#"(sum by (method, route) (rate(http_server_request_duration_seconds_count{{{sel},status_class="5xx"}}[{RATE}])) or 0 * sum by (method, route) (rate(http_server_request_duration_seconds_count{{{sel}}}[{RATE}]))) / sum by (method, route) (rate(http_server_request_duration_seconds_count{{{sel}}}[{RATE}]))"#
                ),
                "{{method}} {{route}}",
            )],
        )
        .w(8)
        .min(0.0),
    )
    .panel(
        timeseries(
            "Responses by status class",
            "reqps",
            vec![prom(
                &format!("sum by (status_class) (rate(http_server_request_duration_seconds_count{{{sel}}}[{RATE}]))"),
                "{{status_class}}",
            )],
        )
        .w(8)
        .stacked(),
    )
    .panel(
        timeseries(
            "Latency by route (p50, p99)",
            "s",
            vec![
                prom_exemplar(
                    &format!("histogram_quantile(0.5, sum by (le, method, route) (rate(http_server_request_duration_seconds_bucket{{{sel}}}[{RATE}])))"),
                    "p50 {{method}} {{route}}",
                ),
                prom_exemplar(
                    &format!("histogram_quantile(0.99, sum by (le, method, route) (rate(http_server_request_duration_seconds_bucket{{{sel}}}[{RATE}])))"),
                    "p99 {{method}} {{route}}",
                ),
            ],
        )
        .w(24)
        .desc("Exemplars (dots) carry the trace id: open the trace in Jaeger, or its logs."),
    );

    let outgoing_note = if s.calls_peers { None } else { Some("this service calls no other service over HTTP") };
    d = d.row("Outgoing calls and circuit breakers");
    let mut calls = timeseries(
        "Outgoing calls by peer and outcome",
        "reqps",
        vec![prom(
            &format!("sum by (peer, outcome) (rate(http_client_request_duration_seconds_count{{{sel}}}[{RATE}]))"),
            "{{peer}} {{outcome}}",
        )],
    )
    .w(8);
    let mut call_latency = timeseries(
        "Outgoing call latency (p99)",
        "s",
        vec![prom_exemplar(
            &format!("histogram_quantile(0.99, sum by (le, peer) (rate(http_client_request_duration_seconds_bucket{{{sel}}}[{RATE}])))"),
            "{{peer}}",
        )],
    )
    .w(8);
    let mut breaker =
        state_timeline("Circuit breaker state", "none", vec![prom(&format!("max by (peer) (circuit_breaker_state{{{sel}}})"), "{{peer}}")])
            .w(8)
            .value_mappings(&[("0", "closed", "green"), ("1", "half-open", "yellow"), ("2", "open", "red")])
            .desc("Open: calls fail fast without being tried (alert CircuitBreakerOpen).");
    if let Some(why) = outgoing_note {
        calls = calls.empty_when_healthy(why);
        call_latency = call_latency.empty_when_healthy(why);
        breaker = breaker.empty_when_healthy(why);
    }
    d = d.panel(calls).panel(call_latency).panel(breaker);

    d = d
        .row("Kafka consumers")
        .panel(
            timeseries(
                "Messages handled by topic and outcome",
                "ops",
                vec![prom(
                    &format!("sum by (topic, outcome) (rate(messaging_consume_duration_seconds_count{{{sel}}}[{RATE}]))"),
                    "{{topic}} {{outcome}}",
                )],
            )
            .w(12),
        )
        .panel(
            timeseries(
                "Handler time by topic (p99)",
                "s",
                vec![prom_exemplar(
                    &format!(
                        "histogram_quantile(0.99, sum by (le, topic) (rate(messaging_consume_duration_seconds_bucket{{{sel}}}[{RATE}])))"
                    ),
                    "{{topic}}",
                )],
            )
            .w(12),
        )
        .panel(
            timeseries(
                "Consumer lag by topic",
                "short",
                vec![prom(&format!("sum by (topic) (messaging_consumer_lag{{{sel}}})"), "{{topic}}")],
            )
            .w(12)
            .desc("High watermark minus committed offset, summed over partitions (alert ConsumerLagGrowing)."),
        )
        .panel(
            timeseries(
                "Dead-lettered messages by topic",
                "ops",
                vec![prom(&format!("sum by (topic) (rate(messaging_dead_letter_total{{{sel}}}[{RATE}]))"), "{{topic}}.dlq")],
            )
            .w(12)
            .empty_when_healthy("no message is dead-lettered in a healthy run")
            .desc("Messages sent to <topic>.dlq (alert DeadLetterQueueReceiving)."),
        );

    let outbox_note = if s.has_outbox { None } else { Some("this service publishes no events") };
    d = d.row("Outbox");
    let mut pending = timeseries("Outbox rows pending", "short", vec![prom(&format!("max(outbox_pending{{{sel}}})"), "pending")]).w(8);
    let mut age = timeseries("Oldest unpublished row age", "s", vec![prom(&format!("max(outbox_oldest_age_seconds{{{sel}}})"), "age")])
        .w(8)
        .desc("0 when nothing waits; over 1 minute for 2 minutes raises OutboxBacklogOld.");
    let mut published = timeseries(
        "Published by topic",
        "ops",
        vec![prom(&format!("sum by (topic) (rate(outbox_published_total{{{sel}}}[{RATE}]))"), "{{topic}}")],
    )
    .w(8);
    if let Some(why) = outbox_note {
        pending = pending.empty_when_healthy(why);
        age = age.empty_when_healthy(why);
        published = published.empty_when_healthy(why);
    }
    d = d.panel(pending).panel(age).panel(published);

    d = d
        .row("Database pool and telemetry")
        .panel({
            let pool = timeseries(
                "DB pool connections",
                "short",
                vec![prom(&format!("sum by (state) (db_pool_connections{{{sel}}})"), "{{state}}")],
            )
            .w(12)
            .stacked()
            .desc("in_use at the pool size means requests queue for a connection.");
            // The MongoDB driver does not expose its pool: Notification never reports it.
            if svc == "notification" { pool.empty_when_healthy("the MongoDB driver exposes no pool gauge") } else { pool }
        })
        .panel(
            timeseries(
                "Telemetry dropped",
                "ops",
                vec![prom(
                    &format!("sum by (signal, exporter) (rate(telemetry_dropped_total{{{sel}}}[{RATE}]))"),
                    "{{signal}} -> {{exporter}}",
                )],
            )
            .w(12)
            .empty_when_healthy("nothing is dropped while every backend is up")
            .desc("Traces or logs discarded because an exporter's buffer was full (alert TelemetryDropping)."),
        );

    d = d.row("Business");
    d = match svc {
        "order" => d
            .panel(
                timeseries(
                    "Orders by status",
                    "ops",
                    vec![prom(&format!("sum by (status) (rate(orders_total{{{biz}}}[{RATE}]))"), "{{status}}")],
                )
                .w(8),
            )
            .panel(
                timeseries(
                    "Order value (median) by currency",
                    "none",
                    vec![prom(
                        &format!("histogram_quantile(0.5, sum by (le, currency) (rate(order_value_minor_units_bucket{{{biz}}}[{RATE}])))"),
                        "{{currency}}",
                    )],
                )
                .w(8)
                .desc("In minor units (cents)."),
            )
            .panel(
                timeseries(
                    "Illegal state transitions",
                    "ops",
                    vec![prom(
                        &format!("sum by (from, event) (rate(order_illegal_transitions_total{{{biz}}}[{RATE}]))"),
                        "{{from}} + {{event}}",
                    )],
                )
                .w(8)
                .empty_when_healthy("the state machine sees no illegal transition in a healthy run")
                .desc("Events that did not apply to the order's state (late or duplicate); ignored safely."),
            )
            .panel(fault_flags(biz).w(24)),
        "inventory" => d
            .panel(
                timeseries(
                    "Reservations by outcome",
                    "ops",
                    vec![prom(&format!("sum by (outcome) (rate(inventory_reservations_total{{{biz}}}[{RATE}]))"), "{{outcome}}")],
                )
                .w(8),
            )
            .panel(timeseries("Items low on stock", "short", vec![prom(&format!("max(inventory_stock_low_items{{{biz}}})"), "items")]).w(8))
            .panel(fault_flags(biz).w(8)),
        _ => d
            .panel(
                timeseries(
                    "Notifications by type",
                    "ops",
                    vec![prom(&format!("sum by (type) (rate(notifications_total{{{biz}}}[{RATE}]))"), "{{type}}")],
                )
                .w(12),
            )
            .panel(
                timeseries(
                    "Order event -> notification stored (p99)",
                    "s",
                    vec![prom_exemplar(
                        &format!(
                            "histogram_quantile(0.99, sum by (le, type) (rate(order_to_notification_seconds_bucket{{{biz}}}[{RATE}])))"
                        ),
                        "{{type}}",
                    )],
                )
                .w(12),
            )
            .panel(fault_flags(biz).w(24)),
    };

    d.row("Logs")
        .panel(
            logs("Logs (Loki)", vec![loki(&format!(r#"{{service="{svc}"}} |~ "$trace_id""#))])
                .desc("This service's log lines; type a trace id in the variable above to follow one request."),
        )
        .build()
}

/// The service's fault flags (`glasshouse_platform::faults`; every service
/// has some): a state timeline, red while a flag is on.
fn fault_flags(biz: &str) -> Panel {
    state_timeline("Fault flags", "none", vec![prom(&format!("max by (flag) (fault_flag_active{{{biz}}})"), "{{flag}}")])
        .value_mappings(&[("0", "off", "green"), ("1", "on", "red")])
        .desc("Injected faults for tests; on in production is a mistake.")
}

fn order_flow() -> Value {
    Dashboard::new(
        "glasshouse-order-flow",
        "Glasshouse Order flow latency",
        "End-to-end time of the order saga, order -> inventory -> order -> notification, and the delay each hop adds.",
    )
    .variable(prometheus_var())
    .panel(text(
        "The hops",
        "`POST /orders` (order, PostgreSQL + outbox) → outbox relay → Kafka `orders.v1` (`order.created`) → inventory \
         reserves (MariaDB + outbox) → `inventory.v1` → order confirms or rejects (outbox) → `orders.v1` → notification \
         stores (MongoDB). \
         Each hop adds its outbox age and its consumer's lag and handler time. Exemplars link to the trace of one order.",
    ))
    .row("End to end")
    .panel(
        timeseries(
            "Order event -> notification stored",
            "s",
            vec![
                prom_exemplar(&format!("histogram_quantile(0.5, sum by (le) (rate(order_to_notification_seconds_bucket[{RATE}])))"), "p50"),
                prom_exemplar(&format!("histogram_quantile(0.95, sum by (le) (rate(order_to_notification_seconds_bucket[{RATE}])))"), "p95"),
                prom_exemplar(&format!("histogram_quantile(0.99, sum by (le) (rate(order_to_notification_seconds_bucket[{RATE}])))"), "p99"),
            ],
        )
        .w(12)
        .desc("From the event's occurred_at to the notification stored, over all event types."),
    )
    .panel(
        timeseries(
            "Order created -> final state",
            "s",
            vec![
                prom_exemplar(&format!("histogram_quantile(0.5, sum by (le) (rate(order_completion_seconds_bucket[{RATE}])))"), "p50"),
                prom_exemplar(&format!("histogram_quantile(0.99, sum by (le) (rate(order_completion_seconds_bucket[{RATE}])))"), "p99"),
            ],
        )
        .w(12)
        .desc("order_completion_seconds from the order service; the SLO is 99% within 30 s."),
    )
    .panel(
        timeseries(
            "Orders not final within 30 s (SLI, 5 m)",
            "percentunit",
            vec![prom(r#"slo:sli_error:ratio_rate5m{slo="order-completion"}"#, "not final in 30 s")],
        )
        .w(12),
    )
    .panel(
        timeseries(
            "Notification delay by event type (p99)",
            "s",
            vec![prom_exemplar(
                &format!("histogram_quantile(0.99, sum by (le, type) (rate(order_to_notification_seconds_bucket[{RATE}])))"),
                "{{type}}",
            )],
        )
        .w(12),
    )
    .row("Per hop")
    .panel(
        timeseries(
            "POST /orders latency (p99)",
            "s",
            vec![prom_exemplar(
                &format!(
                    r#"histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{service="order",route="/orders",method="POST"}}[{RATE}])))"#
                ),
                "p99",
            )],
        )
        .w(8),
    )
    .panel(
        timeseries(
            "Inventory call from order (p99)",
            "s",
            vec![prom_exemplar(
                &format!(
                    r#"histogram_quantile(0.99, sum by (le, peer) (rate(http_client_request_duration_seconds_bucket{{service="order"}}[{RATE}])))"#
                ),
                "{{peer}}",
            )],
        )
        .w(8),
    )
    .panel(
        timeseries("Outbox age by service", "s", vec![prom("max by (service) (outbox_oldest_age_seconds)", "{{service}}")])
            .w(8)
            .desc("How long events wait before reaching Kafka."),
    )
    .panel(
        timeseries(
            "Consumer lag by service and topic",
            "short",
            vec![prom("sum by (service, topic) (messaging_consumer_lag)", "{{service}} {{topic}}")],
        )
        .w(12),
    )
    .panel(
        timeseries(
            "Handler time by service and topic (p99)",
            "s",
            vec![prom_exemplar(
                &format!("histogram_quantile(0.99, sum by (le, service, topic) (rate(messaging_consume_duration_seconds_bucket[{RATE}])))"),
                "{{service}} {{topic}}",
            )],
        )
        .w(12),
    )
    .build()
}

fn loadtest() -> Value {
    let sc = r#"scenario=~"$scenario""#;
    Dashboard::new(
        "glasshouse-loadtest",
        "Glasshouse Load test",
        "The load runner's own metrics (job loadtest) beside what the system measured at the same time.",
    )
    .variable(prometheus_var())
    .variable(Variable::LabelValues {
        name: "scenario",
        label: "Scenario",
        metric_selector: "loadtest_target_rate".to_owned(),
        values_of: "scenario",
    })
    .row("Runner (client side)")
    .panel(
        timeseries(
            "Target vs achieved rate",
            "reqps",
            vec![
                prom(&format!("sum by (scenario) (loadtest_target_rate{{{sc}}})"), "target {{scenario}}"),
                prom(&format!("sum by (scenario) (rate(loadtest_requests_total{{{sc}}}[{RATE}]))"), "achieved {{scenario}}"),
            ],
        )
        .w(12)
        .desc("Open model: achieved below target means the system (or the runner) cannot keep up."),
    )
    .panel(
        timeseries(
            "Requests by step and outcome",
            "reqps",
            vec![prom(&format!("sum by (step, outcome) (rate(loadtest_requests_total{{{sc}}}[{RATE}]))"), "{{step}} {{outcome}}")],
        )
        .w(12),
    )
    .panel(
        timeseries(
            "Client latency by step (p50, p99)",
            "s",
            vec![
                prom_exemplar(
                    &format!("histogram_quantile(0.5, sum by (le, step) (rate(loadtest_request_duration_seconds_bucket{{{sc}}}[{RATE}])))"),
                    "p50 {{step}}",
                ),
                prom_exemplar(
                    &format!("histogram_quantile(0.99, sum by (le, step) (rate(loadtest_request_duration_seconds_bucket{{{sc}}}[{RATE}])))"),
                    "p99 {{step}}",
                ),
            ],
        )
        .w(12),
    )
    .panel(
        timeseries(
            "Dropped iterations",
            "ops",
            vec![prom(&format!("sum by (scenario) (rate(loadtest_dropped_iterations_total{{{sc}}}[{RATE}]))"), "{{scenario}}")],
        )
        .w(12)
        .empty_when_healthy("the runner drops no iteration while it keeps up")
        .desc("Iterations the open-model runner could not start on time: the result understates the offered load."),
    )
    .row("System (server side) at the same time")
    .panel(
        timeseries(
            "Client p99 vs server p99 for POST /orders",
            "s",
            vec![
                prom_exemplar(
                    &format!("histogram_quantile(0.99, sum by (le) (rate(loadtest_request_duration_seconds_bucket{{{sc}}}[{RATE}])))"),
                    "client p99 (all steps)",
                ),
                prom_exemplar(
                    &format!(
                        r#"histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{service="order",route="/orders",method="POST"}}[{RATE}])))"#
                    ),
                    "server p99 POST /orders",
                ),
            ],
        )
        .w(12)
        .desc("The gap is network, queueing and client overhead."),
    )
    .panel(
        timeseries(
            "Server 5xx ratio by service",
            "percentunit",
            vec![prom(
                &format!(
                    r#"(sum by (service) (rate(http_server_request_duration_seconds_count{{status_class="5xx"}}[{RATE}])) or 0 * sum by (service) (rate(http_server_request_duration_seconds_count[{RATE}]))) / sum by (service) (rate(http_server_request_duration_seconds_count[{RATE}]))"#
                ),
                "{{service}}",
            )],
        )
        .w(12)
        .min(0.0),
    )
    .panel(timeseries("Orders by status", "ops", vec![prom(&format!("sum by (status) (rate(orders_total[{RATE}]))"), "{{status}}")]).w(8))
    .panel(
        timeseries("Consumer lag by service", "short", vec![prom("sum by (service) (messaging_consumer_lag)", "{{service}}")]).w(8),
    )
    .panel(timeseries("Outbox age by service", "s", vec![prom("max by (service) (outbox_oldest_age_seconds)", "{{service}}")]).w(8))
    .panel(
        timeseries(
            "DB connections in use by service",
            "short",
            vec![prom(r#"sum by (service) (db_pool_connections{state="in_use"})"#, "{{service}}")],
        )
        .w(12),
    )
    .panel(
        timeseries("SLO error ratio (5 m)", "percentunit", vec![prom("slo:sli_error:ratio_rate5m", "{{slo}}")])
            .w(12)
            .desc("From the SLO recording rules; see Glasshouse Overview for the budget."),
    )
    .build()
}

fn logs_dashboard() -> Value {
    Dashboard::new(
        "glasshouse-logs",
        "Glasshouse Logs",
        "Log lines of every service from Loki and Elasticsearch/OpenSearch, by trace id. \
         Latency exemplars and panel links open this dashboard with var-trace_id set.",
    )
    .variable(loki_var())
    .variable(Variable::Datasource { name: "es", label: "Elasticsearch", plugin: "elasticsearch", default_uid: ELASTICSEARCH_UID })
    .variable(Variable::Custom { name: "service", label: "Service", values: vec!["order", "inventory", "notification"] })
    .variable(Variable::Textbox { name: "trace_id", label: "Trace id" })
    .panel(
        logs("Loki: log lines", vec![loki(r#"{service=~"$service"} |= "$trace_id""#)])
            .desc("Streams are labelled service, level and environment; ids stay in the JSON line (trace_id field)."),
    )
    .panel(
        logs("Elasticsearch: log documents", vec![elasticsearch("$trace_id")])
            .desc("ECS documents (index glasshouse-logs-*); the trace id matches field trace.id. Empty variable: all documents."),
    )
    .build()
}

/// Per SLO, what the SLO tools' users expect (Sloth's and Pyrra's views): the
/// budget left over the period, the SLI against the objective, the burn rate of
/// each alert window with its threshold drawn, and the alerts' state. Series
/// come from the recording rules `alerts/` generates; the factors and windows
/// are those of `glasshouse_alerts::generate::{PAGE, TICKET}`.
fn slo_dashboard() -> Value {
    let sel = r#"service=~"$service",slo=~"$slo""#;
    let burn = |w: &str| format!("slo:sli_error:ratio_rate{w}{{{sel}}} / on (service, slo) slo:error_budget:ratio{{{sel}}}");
    let mut d = Dashboard::new(
        "glasshouse-slo",
        "Glasshouse SLOs",
        "Per SLO: error budget left over 30 days, SLI against the objective, burn rate of each alert window with its threshold, alert state.",
    )
    .variable(prometheus_var())
    .variable(Variable::LabelValues {
        name: "service",
        label: "Service",
        metric_selector: "slo:objective:ratio".to_owned(),
        values_of: "service",
    })
    .variable(Variable::LabelValues {
        name: "slo",
        label: "SLO",
        metric_selector: "slo:objective:ratio".to_owned(),
        values_of: "slo",
    })
    .row("Budget")
    .panel(
        stat("Objective", "percentunit", vec![prom_instant(&format!("slo:objective:ratio{{{sel}}}"), "{{slo}}")])
            .w(6)
            .h(6)
            .desc("The share of good events the SLO promises (alerts/slos/*.yaml)."),
    )
    .panel(
        stat(
            "Error budget remaining (30 d)",
            "percentunit",
            vec![prom_instant(&format!("slo:period_error_budget_remaining:ratio{{{sel}}}"), "{{slo}}")],
        )
        .w(6)
        .h(6)
        .thresholds(&[(None, "red"), (Some(0.0), "orange"), (Some(0.25), "green")])
        .desc("1 = untouched, 0 = spent, below 0 = overspent. Traffic-weighted over the period; always a number (0 bad events without traffic)."),
    )
    .panel(
        timeseries(
            "Error budget remaining over time",
            "percentunit",
            vec![prom(&format!("slo:period_error_budget_remaining:ratio{{{sel}}}"), "{{slo}}")],
        )
        .w(12)
        .h(6)
        .thresholds(&[(None, "red"), (Some(0.0), "orange"), (Some(0.25), "green")])
        .desc("How the 30-day budget was spent: a steep drop is an incident, a steady slope a chronic problem."),
    )
    .row("SLI")
    .panel(
        timeseries(
            "SLI (good ratio, 5 m and 1 h) vs objective",
            "percentunit",
            vec![
                prom(&format!("1 - slo:sli_error:ratio_rate5m{{{sel}}}"), "5m {{slo}}"),
                prom(&format!("1 - slo:sli_error:ratio_rate1h{{{sel}}}"), "1h {{slo}}"),
                prom(&format!("slo:objective:ratio{{{sel}}}"), "objective {{slo}}"),
            ],
        )
        .w(12)
        .desc("Good events over all events; below the objective line the budget is being spent faster than it accrues."),
    )
    .panel(
        timeseries(
            "Events per second (5 m)",
            "ops",
            vec![
                prom(&format!("slo:sli_total:rate5m{{{sel}}}"), "all {{slo}}"),
                prom(&format!("slo:sli_error:rate5m{{{sel}}}"), "bad {{slo}}"),
            ],
        )
        .w(12)
        .desc("The traffic the SLI is computed over: a ratio over a handful of events is noisy."),
    )
    .row("Burn rate by alert window (1x spends the budget in exactly 30 days)");
    for (title, long, short, factor, severity) in [
        ("Page: 1 h and 5 m above 14.4x", "1h", "5m", 14.4, "page"),
        ("Page: 6 h and 30 m above 6x", "6h", "30m", 6.0, "page"),
        ("Ticket: 1 d and 2 h above 3x", "1d", "2h", 3.0, "ticket"),
        ("Ticket: 3 d and 6 h above 1x", "3d", "6h", 1.0, "ticket"),
    ] {
        d = d.panel(
            timeseries(title, "suffix:x", vec![prom(&burn(long), &format!("{long} {{{{slo}}}}")), prom(&burn(short), &format!("{short} {{{{slo}}}}"))])
                .w(6)
                .thresholds(&[(None, "green"), (Some(factor), "red")])
                .desc(&format!(
                    "The {severity} alert fires when both windows burn faster than {factor}x (the red threshold line): the long window proves it matters, the short one that it is still happening."
                )),
        );
    }
    d.row("Alerts")
        .panel(
            state_timeline(
                "SLO alerts",
                "none",
                vec![prom(&format!(r#"max by (alertname, alertstate) (ALERTS{{{sel}}})"#), "{{alertname}} {{alertstate}}")],
            )
            .w(24)
            .h(6)
            .empty_when_healthy("no SLO alert is pending or firing in a healthy run")
            .desc("Pending and firing burn-rate alerts of the selected SLOs; runbooks: alerts/runbooks/<alertname>.md."),
        )
        .build()
}
