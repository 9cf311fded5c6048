//! The infrastructure dashboards: one per backend (PostgreSQL, MariaDB, Kafka), from
//! the local stack's exporters (Prometheus jobs `postgres`, `mariadb`, `kafka`).
//! Series names are listed in `alerts/INFRA_METRICS.md`. Every query selects its job,
//! so an exporter that is not scraped leaves its panels empty (`--require-data` fails).

use serde_json::Value;

use crate::build::{Dashboard, PROMETHEUS_UID, Variable, prom, prom_instant, stat, table, text, timeseries};

const RATE: &str = "$__rate_interval";

fn prometheus_var() -> Variable {
    Variable::Datasource { name: "datasource", label: "Prometheus", plugin: "prometheus", default_uid: PROMETHEUS_UID }
}

const UP_MAPPINGS: [(&str, &str, &str); 2] = [("0", "down", "red"), ("1", "up", "green")];

/// Saturation colours of the connection panels; the alerts fire at 80% for 5 minutes.
const SATURATION: [(Option<f64>, &str); 3] = [(None, "green"), (Some(0.6), "orange"), (Some(0.8), "red")];

pub fn postgres() -> Value {
    let db = r#"job="postgres",datname=~"$database",datname!="""#;
    Dashboard::new(
        "glasshouse-infra-postgres",
        "Glasshouse / Infrastructure: PostgreSQL",
        "PostgreSQL as postgres_exporter sees it: connections against the limit, transactions, locks and deadlocks.",
    )
    .variable(prometheus_var())
    .variable(Variable::LabelValues {
        name: "database",
        label: "Database",
        metric_selector: r#"pg_stat_database_xact_commit{job="postgres",datname!=""}"#.to_owned(),
        values_of: "datname",
    })
    .row("Connections")
    .panel(
        stat("Exporter", "none", vec![prom_instant(r#"min(up{job="postgres"}) * min(pg_up{job="postgres"})"#, "postgres")])
            .w(4)
            .h(8)
            .value_mappings(&UP_MAPPINGS)
            .desc("1 when Prometheus scrapes the exporter and the exporter reads PostgreSQL (as glasshouse_monitor, role pg_monitor)."),
    )
    .panel(
        stat(
            "Connection saturation",
            "percentunit",
            vec![prom_instant(
                r#"sum by (instance) (pg_stat_activity_count{job="postgres"}) / on (instance) (max by (instance) (pg_settings_max_connections{job="postgres"}) - max by (instance) (pg_settings_superuser_reserved_connections{job="postgres"}))"#,
                "{{instance}}",
            )],
        )
        .w(5)
        .h(8)
        .thresholds(&SATURATION)
        .desc("Connections in use over those an application may open (max_connections minus the superuser reserve). Alert PostgresConnectionsSaturated: above 80% for 5 m."),
    )
    .panel(
        timeseries(
            "Connections vs max",
            "short",
            vec![
                prom(r#"sum(pg_stat_activity_count{job="postgres"})"#, "connected"),
                prom(
                    r#"max(pg_settings_max_connections{job="postgres"}) - max(pg_settings_superuser_reserved_connections{job="postgres"})"#,
                    "limit for applications",
                ),
                prom(r#"max(pg_settings_max_connections{job="postgres"})"#, "max_connections"),
            ],
        )
        .w(15)
        .h(8)
        .min(0.0)
        .desc("Client backends of every database against the server's limit."),
    )
    .panel(
        timeseries(
            "Connections by database and state",
            "short",
            vec![prom(&format!("sum by (datname, state) (pg_stat_activity_count{{{db}}}) > 0"), "{{datname}} {{state}}")],
        )
        .w(12)
        .stacked()
        .desc("Backends per database and state; many `idle in transaction` hold locks and connections for nothing."),
    )
    .panel(
        timeseries(
            "Oldest transaction",
            "s",
            vec![prom(&format!("max by (datname, state) (pg_stat_activity_max_tx_duration{{{db}}}) > 0"), "{{datname}} {{state}}")],
        )
        .w(12)
        .empty_when_healthy("no transaction is open at the moment of an idle scrape")
        .desc("Age of the oldest open transaction per database and state. Long ones hold locks and keep vacuum from cleaning."),
    )
    .row("Transactions")
    .panel(
        timeseries(
            "Commits and rollbacks",
            "ops",
            vec![
                prom(&format!("sum by (datname) (rate(pg_stat_database_xact_commit{{{db}}}[{RATE}]))"), "{{datname}} commit"),
                prom(&format!("sum by (datname) (rate(pg_stat_database_xact_rollback{{{db}}}[{RATE}]))"), "{{datname}} rollback"),
            ],
        )
        .w(16)
        .desc("Transactions per second by database. Order's outbox, saga and idempotency writes are transactions on `orders`."),
    )
    .panel(
        timeseries(
            "Rollback ratio",
            "percentunit",
            vec![prom(
                &format!(
                    "sum(rate(pg_stat_database_xact_rollback{{{db}}}[{RATE}])) / clamp_min(sum(rate(pg_stat_database_xact_commit{{{db}}}[{RATE}])) + sum(rate(pg_stat_database_xact_rollback{{{db}}}[{RATE}])), 1e-9)"
                ),
                "rolled back",
            )],
        )
        .w(8)
        .min(0.0)
        .desc("Share of transactions rolled back (0 without traffic). Conflicts and failed requests roll back."),
    )
    .row("Locks and deadlocks")
    .panel(
        timeseries(
            "Locks by mode",
            "short",
            vec![prom(r#"sum by (mode) (pg_locks_count{job="postgres",datname=~"$database"})"#, "{{mode}}")],
        )
        .w(12)
        .desc("Locks held or awaited, by mode. Row-level locking (`SELECT ... FOR UPDATE`) shows as rowsharelock/rowexclusivelock; exclusive and access-exclusive locks block readers."),
    )
    .panel(
        timeseries(
            "Deadlocks",
            "short",
            vec![prom(&format!("sum by (datname) (increase(pg_stat_database_deadlocks{{{db}}}[{RATE}]))"), "{{datname}}")],
        )
        .w(12)
        .min(0.0)
        .desc("Deadlocks PostgreSQL detected (and broke by aborting one transaction) per interval; 0 when healthy."),
    )
    .row("Replication")
    .panel(
        text(
            "Replication lag",
            "The local stack runs **one** PostgreSQL node with no replica, so there is no replication lag to show. \
             postgres_exporter reports `pg_stat_replication` (the bytes a replica is behind) only for connected replicas; \
             with a managed or replicated PostgreSQL, add its replica-lag panel here.",
        )
        .h(3),
    )
    .build()
}

pub fn mariadb() -> Value {
    let j = r#"job="mariadb""#;
    Dashboard::new(
        "glasshouse-infra-mariadb",
        "Glasshouse / Infrastructure: MariaDB",
        "MariaDB as mysqld_exporter sees it: connections against the limit, transactions, row locks and deadlocks.",
    )
    .variable(prometheus_var())
    .row("Connections")
    .panel(
        stat("Exporter", "none", vec![prom_instant(&format!("min(up{{{j}}}) * min(mysql_up{{{j}}})"), "mariadb")])
            .w(4)
            .h(8)
            .value_mappings(&UP_MAPPINGS)
            .desc("1 when Prometheus scrapes the exporter and the exporter reads MariaDB (as glasshouse_monitor: PROCESS, BINLOG MONITOR, SLAVE MONITOR)."),
    )
    .panel(
        stat(
            "Connection saturation",
            "percentunit",
            vec![prom_instant(
                &format!(
                    "max by (instance) (mysql_global_status_threads_connected{{{j}}}) / on (instance) max by (instance) (mysql_global_variables_max_connections{{{j}}})"
                ),
                "{{instance}}",
            )],
        )
        .w(5)
        .h(8)
        .thresholds(&SATURATION)
        .desc("Open connections over max_connections. Alert MariaDBConnectionsSaturated: above 80% for 5 m."),
    )
    .panel(
        timeseries(
            "Connections vs max",
            "short",
            vec![
                prom(&format!("max(mysql_global_status_threads_connected{{{j}}})"), "connected"),
                prom(&format!("max(mysql_global_status_threads_running{{{j}}})"), "running a statement"),
                prom(&format!("max(mysql_global_status_max_used_connections{{{j}}})"), "most at once since start"),
                prom(&format!("max(mysql_global_variables_max_connections{{{j}}})"), "max_connections"),
            ],
        )
        .w(15)
        .h(8)
        .min(0.0)
        .desc("Client connections against the server's limit."),
    )
    .panel(
        timeseries(
            "Refused connections",
            "ops",
            vec![prom(&format!("sum by (error) (rate(mysql_global_status_connection_errors_total{{{j}}}[{RATE}]))"), "{{error}}")],
        )
        .w(24)
        .h(6)
        .min(0.0)
        .desc("Connections MariaDB refused, by reason; `max_connections` means the limit was reached. 0 when healthy."),
    )
    .row("Transactions")
    .panel(
        timeseries(
            "Transactions: begin, commit, rollback",
            "ops",
            vec![prom(
                &format!(r#"sum by (command) (rate(mysql_global_status_commands_total{{{j},command=~"begin|commit|rollback"}}[{RATE}]))"#),
                "{{command}}",
            )],
        )
        .w(16)
        .desc("Explicit transaction statements per second. Inventory reserves and releases stock in transactions; a rollback follows a rejected reservation or a failure."),
    )
    .panel(
        timeseries(
            "Rollback ratio",
            "percentunit",
            vec![prom(
                &format!(
                    r#"sum(rate(mysql_global_status_commands_total{{{j},command="rollback"}}[{RATE}])) / clamp_min(sum(rate(mysql_global_status_commands_total{{{j},command=~"commit|rollback"}}[{RATE}])), 1e-9)"#
                ),
                "rolled back",
            )],
        )
        .w(8)
        .min(0.0)
        .desc("Share of ended transactions that rolled back (0 without traffic)."),
    )
    .row("Row locks and deadlocks")
    .panel(
        timeseries(
            "Row-lock waits",
            "short",
            vec![
                prom(&format!("increase(mysql_global_status_innodb_row_lock_waits{{{j}}}[{RATE}])"), "waits started"),
                prom(&format!("mysql_global_status_innodb_row_lock_current_waits{{{j}}}"), "waiting now"),
            ],
        )
        .w(8)
        .min(0.0)
        .desc("InnoDB row-lock waits: reservations of the same SKUs queue on `SELECT ... FOR UPDATE`."),
    )
    .panel(
        timeseries(
            "Time waiting for row locks",
            "percentunit",
            vec![prom(&format!("rate(mysql_global_status_innodb_row_lock_time{{{j}}}[{RATE}]) / 1000"), "lock wait time per second")],
        )
        .w(8)
        .min(0.0)
        .desc("Seconds spent waiting for row locks per second of wall time, summed over sessions (1 = one session always waiting)."),
    )
    .panel(
        timeseries("Deadlocks", "short", vec![prom(&format!("increase(mysql_global_status_innodb_deadlocks{{{j}}}[{RATE}])"), "deadlocks")])
            .w(8)
            .min(0.0)
            .desc("InnoDB deadlocks per interval (one transaction was rolled back to break each); 0 when healthy: Inventory locks rows in SKU order."),
    )
    .row("Replication")
    .panel(
        text(
            "Replication lag",
            "The local stack runs **one** MariaDB server with no replica, so there is no replication lag to show. \
             On a replica, mysqld_exporter reports `mysql_slave_status_seconds_behind_master`; add that panel for a replicated setup.",
        )
        .h(3),
    )
    .build()
}

pub fn kafka() -> Value {
    let sel = r#"job="kafka",consumergroup=~"$group",topic=~"$topic""#;
    Dashboard::new(
        "glasshouse-infra-kafka",
        "Glasshouse / Infrastructure: Kafka",
        "Consumer-group lag as the brokers see it (committed offsets against end offsets), by group, topic and partition.",
    )
    .variable(prometheus_var())
    .variable(Variable::LabelValues {
        name: "group",
        label: "Consumer group",
        metric_selector: r#"kafka_consumergroup_lag{job="kafka"}"#.to_owned(),
        values_of: "consumergroup",
    })
    .variable(Variable::LabelValues {
        name: "topic",
        label: "Topic",
        metric_selector: r#"kafka_consumergroup_lag{job="kafka"}"#.to_owned(),
        values_of: "topic",
    })
    .row("Brokers")
    .panel(
        stat("Exporter", "none", vec![prom_instant(r#"min(up{job="kafka"}) * min(kafka_lag_exporter_up{job="kafka"})"#, "kafka")])
            .w(6)
            .h(5)
            .value_mappings(&UP_MAPPINGS)
            .desc("1 when Prometheus scrapes the lag exporter and its last look at the brokers read every group."),
    )
    .panel(
        stat("Brokers", "none", vec![prom_instant(r#"max(kafka_brokers{job="kafka"})"#, "brokers")])
            .w(6)
            .h(5)
            .desc("Brokers in the cluster metadata (1 locally: a single KRaft broker and controller)."),
    )
    .panel(
        text(
            "Replication",
            "A single broker: every partition has one replica, so there is no replica lag or under-replicated partition to show.",
        )
        .w(12)
        .h(5),
    )
    .row("Consumer-group lag (broker side)")
    .panel(
        timeseries(
            "Lag by group and topic",
            "short",
            vec![prom(&format!("sum by (consumergroup, topic) (kafka_consumergroup_lag{{{sel}}})"), "{{consumergroup}} / {{topic}}")],
        )
        .w(12)
        .min(0.0)
        .desc("Messages the brokers hold that the group has not committed. Still there when the consumer is dead (the services' own messaging_consumer_lag is not). Alert KafkaConsumerGroupLagging: above 1000, or above 100 and growing, for 10 m."),
    )
    .panel(
        timeseries(
            "Lag by partition",
            "short",
            vec![prom(&format!("kafka_consumergroup_lag{{{sel}}}"), "{{consumergroup}} / {{topic}}[{{partition}}]")],
        )
        .w(12)
        .min(0.0)
        .desc("One partition far behind the others: a hot key, or the one consumer owning it is slow."),
    )
    .panel(
        timeseries(
            "Lag growth",
            "short",
            vec![prom(&format!("sum by (consumergroup, topic) (deriv(kafka_consumergroup_lag{{{sel}}}[5m]))"), "{{consumergroup}} / {{topic}}")],
        )
        .w(12)
        .desc("Change of the lag per second over 5 minutes: above 0 the group falls further behind."),
    )
    .panel(
        timeseries(
            "Committed vs produced",
            "ops",
            vec![
                prom(
                    &format!("sum by (consumergroup, topic) (rate(kafka_consumergroup_current_offset{{{sel}}}[{RATE}]))"),
                    "committed {{consumergroup}} / {{topic}}",
                ),
                prom(
                    r#"sum by (topic) (rate(kafka_topic_partition_current_offset{job="kafka",topic=~"$topic"}[$__rate_interval]))"#,
                    "produced {{topic}}",
                ),
            ],
        )
        .w(12)
        .min(0.0)
        .desc("Messages per second the group commits against those produced to the topic: consumption below production grows the lag."),
    )
    .row("Groups")
    .panel(
        timeseries(
            "Group members",
            "short",
            vec![prom(r#"kafka_consumergroup_members{job="kafka",consumergroup=~"$group"}"#, "{{consumergroup}}")],
        )
        .w(12)
        .min(0.0)
        .desc("Consumers connected per group. 0 with lag: nobody consumes (service down, or a group left behind)."),
    )
    .panel(
        table(
            "Lagging groups without a consumer",
            vec![prom_instant(
                &format!(
                    "sum by (consumergroup, topic) (kafka_consumergroup_lag{{{sel}}}) > 0 and on (consumergroup) (kafka_consumergroup_members{{job=\"kafka\"}} == 0)"
                ),
                "",
            )],
        )
        .w(12)
        .empty_when_healthy("every group with a backlog has a consumer")
        .desc("Groups with a backlog and no member: what the client-side lag metric cannot show."),
    )
    .build()
}
