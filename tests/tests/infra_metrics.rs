//! The infrastructure exporters of the local stack (`postgres-exporter`,
//! `mysqld-exporter`, `kafka-exporter`), proven against the real backends and the
//! real Prometheus: each is scraped and reads its backend; the Kafka one reports a
//! consumer group's lag exactly as the broker stores it, also for a group with no
//! consumer; and the infrastructure dashboards have data on every panel
//! (`glasshouse-dashboards check --require-data`), which fails as soon as one
//! exporter's job is not scraped.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::time::Duration;

use glasshouse_tests::poll;
use glasshouse_tests::services::bin_dir;
use glasshouse_tests::stack::{self, Component, KAFKA, KAFKA_EXPORTER, MYSQLD_EXPORTER, POSTGRES_EXPORTER, PROMETHEUS};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Each exporter: its stack component, its Prometheus job, and the gauge saying it read its backend.
const EXPORTERS: [(Component, &str, &str); 3] = [
    (POSTGRES_EXPORTER, "postgres", "pg_up"),
    (MYSQLD_EXPORTER, "mariadb", "mysql_up"),
    (KAFKA_EXPORTER, "kafka", "kafka_lag_exporter_up"),
];

const INFRA_DASHBOARDS: [&str; 3] = ["infra-postgres.json", "infra-mariadb.json", "infra-kafka.json"];

/// The single value of an instant query, if it has exactly one series.
async fn query_one(http: &reqwest::Client, promql: &str) -> anyhow::Result<Option<String>> {
    Ok(match glasshouse_tests::stack::prometheus_query(http, promql).await?.as_slice() {
        [one] => one["value"][1].as_str().map(str::to_owned),
        _ => None,
    })
}

#[tokio::test]
async fn every_infra_exporter_is_scraped_and_reads_its_backend() -> anyhow::Result<()> {
    stack::require(PROMETHEUS).await?;
    let http = reqwest::Client::new();
    for (component, job, backend_up) in EXPORTERS {
        stack::require(component).await?;
        let q = format!(r#"min(up{{job="{job}"}}) * min({backend_up}{{job="{job}"}})"#);
        poll::until(
            &format!("Prometheus job {job} to be scraped with {backend_up} = 1"),
            Duration::from_secs(60),
            Duration::from_secs(1),
            || {
                let (http, q) = (&http, &q);
                async move { Ok((query_one(http, q).await?.as_deref() == Some("1")).then_some(())) }
            },
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e:#}\nPrometheus does not scrape job `{job}`, or its exporter cannot read the backend: \
                 `deploy/local/stack up {name}` (re-renders the scrape config and reloads Prometheus); \
                 its log: `deploy/local/stack logs {name}`",
                name = component.name
            )
        })?;
    }
    Ok(())
}

/// A topic with `produced` messages and a group that committed `committed` of them
/// without ever having a consumer connected: lag `produced - committed` on the broker.
struct LaggingGroup {
    topic: String,
    group: String,
    admin: AdminClient<DefaultClientContext>,
}

impl LaggingGroup {
    async fn create(produced: i64, committed: i64) -> anyhow::Result<Self> {
        let brokers = KAFKA.addr();
        let topic = stack::unique_name("infra_lag");
        let group = stack::unique_name("infra_lag_group");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        for r in admin.create_topics(&[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new()).await? {
            r.map_err(|(t, e)| anyhow::anyhow!("create topic {t}: {e}"))?;
        }
        let producer: FutureProducer =
            ClientConfig::new().set("bootstrap.servers", &brokers).set("message.timeout.ms", "10000").create()?;
        for i in 0..produced {
            producer
                .send(FutureRecord::to(&topic).key("k").payload(&format!("message {i}")), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("produce to {topic}: {e}"))?;
        }
        // A standalone commit: the group gets offsets on the broker but never a member.
        let consumer: BaseConsumer =
            ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", &group).set("enable.auto.commit", "false").create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(committed))?;
        consumer.commit(&tpl, CommitMode::Sync)?;
        Ok(Self { topic, group, admin })
    }

    async fn delete(self) -> anyhow::Result<()> {
        let opts = AdminOptions::new();
        for r in self.admin.delete_groups(&[self.group.as_str()], &opts).await? {
            r.map_err(|(g, e)| anyhow::anyhow!("delete group {g}: {e}"))?;
        }
        for r in self.admin.delete_topics(&[self.topic.as_str()], &opts).await? {
            r.map_err(|(t, e)| anyhow::anyhow!("delete topic {t}: {e}"))?;
        }
        Ok(())
    }
}

/// `name{labels} value` lines of the exporter's own /metrics, for one series.
async fn exporter_value(http: &reqwest::Client, series: &str) -> anyhow::Result<Option<String>> {
    let text = http.get(format!("{}/metrics", KAFKA_EXPORTER.http())).send().await?.error_for_status()?.text().await?;
    Ok(text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(str::to_owned)))
}

#[tokio::test]
async fn kafka_exporter_reports_the_broker_side_lag_of_a_group_without_consumers() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    stack::require(KAFKA_EXPORTER).await?;
    stack::require(PROMETHEUS).await?;
    let lagging = LaggingGroup::create(7, 3).await?;
    let (group, topic) = (lagging.group.clone(), lagging.topic.clone());
    let http = reqwest::Client::new();
    let result = async {
        // Labels in the exposition are sorted by name: consumergroup, partition, topic.
        let lag = format!(r#"kafka_consumergroup_lag{{consumergroup="{group}",partition="0",topic="{topic}"}}"#);
        let committed = format!(r#"kafka_consumergroup_current_offset{{consumergroup="{group}",partition="0",topic="{topic}"}}"#);
        let end = format!(r#"kafka_topic_partition_current_offset{{partition="0",topic="{topic}"}}"#);
        let members = format!(r#"kafka_consumergroup_members{{consumergroup="{group}"}}"#);
        poll::until("the exporter to report the group's lag", Duration::from_secs(30), Duration::from_millis(500), || async {
            Ok((exporter_value(&http, &lag).await?.as_deref() == Some("4")).then_some(()))
        })
        .await?;
        assert_eq!(exporter_value(&http, &committed).await?.as_deref(), Some("3"));
        assert_eq!(exporter_value(&http, &end).await?.as_deref(), Some("7"));
        assert_eq!(exporter_value(&http, &members).await?.as_deref(), Some("0"), "nobody ever joined the group");

        // And through the scrape: what the dashboard and KafkaConsumerGroupLagging read.
        let q = format!(r#"sum by (consumergroup, topic) (kafka_consumergroup_lag{{job="kafka",consumergroup="{group}"}})"#);
        poll::until("Prometheus to have scraped the group's lag", Duration::from_secs(60), Duration::from_secs(1), || async {
            Ok((query_one(&http, &q).await?.as_deref() == Some("4")).then_some(()))
        })
        .await
    }
    .await;
    lagging.delete().await?;
    result
}

/// Runs the dashboards checker with `--require-data` on `dir`; (success, output).
async fn check_with_data(dir: &std::path::Path) -> anyhow::Result<(bool, String)> {
    let bin = bin_dir()?.join("glasshouse-dashboards");
    anyhow::ensure!(bin.exists(), "{} is missing: `cargo build -p glasshouse-dashboards` (make test builds every binary)", bin.display());
    let out = tokio::process::Command::new(bin)
        .args(["check", "--require-data", "--lookback", "10m", "--prometheus", &PROMETHEUS.http(), "--dir"])
        .arg(dir)
        .current_dir(stack::repo_root())
        .output()
        .await?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn infra_dashboards_have_data_and_the_check_fails_when_an_exporter_is_not_scraped() -> anyhow::Result<()> {
    stack::require(PROMETHEUS).await?;
    stack::require(KAFKA).await?;
    // The Kafka dashboard's lag panels need one group with committed offsets; make sure there is one.
    let lagging = LaggingGroup::create(2, 1).await?;
    let group = lagging.group.clone();
    let tmp = std::env::temp_dir().join(stack::unique_name("infra-dashboards"));
    let result = async {
        let http = reqwest::Client::new();
        let q = format!(r#"count(kafka_consumergroup_lag{{job="kafka",consumergroup="{group}"}})"#);
        poll::until("Prometheus to have scraped a consumer group's lag", Duration::from_secs(60), Duration::from_secs(1), || async {
            Ok(query_one(&http, &q).await?.map(|_| ()))
        })
        .await?;

        let shipped = stack::repo_root().join("dashboards/grafana");
        let real = tmp.join("real");
        let unscraped = tmp.join("unscraped");
        std::fs::create_dir_all(&real)?;
        std::fs::create_dir_all(&unscraped)?;
        for f in INFRA_DASHBOARDS {
            let text = std::fs::read_to_string(shipped.join(f))?;
            std::fs::write(real.join(f), &text)?;
            // The same dashboard as if the mariadb exporter were not scraped: its job has no series.
            std::fs::write(unscraped.join(f), text.replace(r#"job=\"mariadb\""#, r#"job=\"mariadb-not-scraped\""#))?;
        }

        // Rates need two scrapes after start-up: poll until every panel has data.
        let output = poll::until("every infrastructure panel to have data", Duration::from_secs(90), Duration::from_secs(5), || async {
            let (ok, text) = check_with_data(&real).await?;
            if ok {
                Ok(Some(text))
            } else {
                Err(anyhow::anyhow!(
                    "checker still failing:\n{}",
                    text.lines()
                        .filter(|l| l.contains("EMPTY [fatal") || l.contains("ERROR") || l.contains("STRUCTURE"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ))
            }
        })
        .await?;
        assert!(output.contains("0 ERROR"), "{output}");
        for title in [
            "Infrastructure: PostgreSQL / Connections vs max",
            "Infrastructure: MariaDB / Deadlocks",
            "Infrastructure: Kafka / Lag by group and topic",
        ] {
            assert!(output.lines().any(|l| l.contains(title) && l.contains("-> OK")), "{title} not OK:\n{output}");
        }

        let (ok, text) = check_with_data(&unscraped).await?;
        assert!(!ok, "the check must fail when the mariadb exporter is not scraped:\n{text}");
        let empty: Vec<&str> = text.lines().filter(|l| l.contains("EMPTY [fatal with --require-data]")).collect();
        assert!(empty.iter().any(|l| l.contains("MariaDB / Connections vs max")), "{text}");
        assert!(empty.iter().all(|l| l.contains("Infrastructure: MariaDB")), "only MariaDB panels go empty:\n{text}");
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    lagging.delete().await?;
    result
}
