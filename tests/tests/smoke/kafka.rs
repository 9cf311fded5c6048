//! rdkafka against the KRaft broker: create a topic, produce with a
//! `traceparent` header, consume it back in a consumer group, header intact.

use std::time::Duration;

use glasshouse_tests::stack::{self, KAFKA};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test]
async fn kafka_roundtrip_keeps_traceparent_header() -> anyhow::Result<()> {
    stack::require(KAFKA).await?;
    let brokers = KAFKA.addr();
    let topic = stack::unique_name("smoke");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
    let created = admin.create_topics(&[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))], &AdminOptions::new()).await?;
    for r in created {
        r.map_err(|(t, e)| anyhow::anyhow!("create topic {t}: {e}"))?;
    }

    let result = async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "10000")
            .create()?;
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let order_id = uuid::Uuid::new_v4().to_string();
        producer
            .send(
                FutureRecord::to(&topic)
                    .key(&order_id)
                    .payload(r#"{"type":"order.created"}"#)
                    .headers(OwnedHeaders::new().insert(Header { key: "traceparent", value: Some(traceparent) })),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;

        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", stack::unique_name("smoke-group"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[&topic])?;
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no message consumed from {topic} within 30s"))??;
        assert_eq!(msg.key(), Some(order_id.as_bytes()));
        assert_eq!(msg.payload_view::<str>().transpose()?, Some(r#"{"type":"order.created"}"#));
        let headers = msg.headers().ok_or_else(|| anyhow::anyhow!("message has no headers"))?;
        let tp = headers
            .iter()
            .find(|h| h.key == "traceparent")
            .and_then(|h| h.value)
            .ok_or_else(|| anyhow::anyhow!("traceparent header missing"))?;
        assert_eq!(tp, traceparent.as_bytes());
        consumer.commit_message(&msg, CommitMode::Sync)?;
        anyhow::Ok(())
    }
    .await;

    admin.delete_topics(&[&topic], &AdminOptions::new()).await?;
    result
}
