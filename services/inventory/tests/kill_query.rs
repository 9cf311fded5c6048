//! A reservation statement killed by an operator (`KILL QUERY`, MariaDB error
//! 1317) is a transient failure: the consumer retries the event and the order
//! is reserved once the row lock it waited for is released. Nothing is
//! dead-lettered. Real MariaDB, real Kafka, the real service in-process.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod support;

use std::time::Duration;

use glasshouse_contracts::{CustomerId, Event, EventType, Money, NonEmpty, OrderCreated, OrderId, OrderLine, Quantity, Sku};
use glasshouse_platform::consumer::dlq_topic;
use glasshouse_tests::poll;
use glasshouse_tests::stack::KAFKA;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::Connection;
use support::{Env, TopicReader, eventually, producer, send, stock};

/// The statement `store::lock_stock` sends, as PROCESSLIST shows it.
const LOCKING_READ: &str = "SELECT sku, stock FROM items WHERE sku IN (%) ORDER BY sku FOR UPDATE";

fn created(sku: &str, quantity: u32) -> Event {
    let line = OrderLine {
        sku: Sku::parse(sku).unwrap(),
        quantity: Quantity::new(quantity).unwrap(),
        unit_price: Money::parse(100, "EUR").unwrap(),
    };
    let payload = OrderCreated::new(CustomerId::parse("c-test").unwrap(), NonEmpty::new(vec![line]).unwrap()).unwrap();
    Event::new(OrderId::new(), payload)
}

/// The PROCESSLIST id of a session of database `db` (other than `except`)
/// that is running the locking read, once one is.
async fn blocked_reader(pool: &sqlx::MySqlPool, db: &str, except: i64) -> anyhow::Result<i64> {
    let found =
        poll::until("the consumer's locking read blocked on the row lock", Duration::from_secs(60), Duration::from_millis(20), || async {
            Ok(sqlx::query_scalar::<_, i64>(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ? AND INFO LIKE ? ORDER BY TIME DESC LIMIT 1",
            )
            .bind(db)
            .bind(except)
            .bind(LOCKING_READ)
            .fetch_optional(pool)
            .await?)
        })
        .await;
    if found.is_err() {
        let sessions: Vec<(i64, Option<String>, String, Option<String>)> =
            sqlx::query_as("SELECT ID, DB, COMMAND, INFO FROM information_schema.PROCESSLIST WHERE DB = ?")
                .bind(db)
                .fetch_all(pool)
                .await?;
        return found.map_err(|e| e.context(format!("sessions of {db}: {sessions:?}")));
    }
    found
}

/// Messages ever written to `topic` (sum of its partitions' high watermarks).
async fn written(topic: &str, partitions: i32) -> anyhow::Result<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", KAFKA.addr()).create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        (0..partitions).map(|p| Ok(c.fetch_watermarks(&topic, p, Duration::from_secs(5))?.1)).sum::<anyhow::Result<i64>>()
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_reservation_statement_is_retried_not_dead_lettered() -> anyhow::Result<()> {
    let mut env = Env::new(1).await?;
    // Long enough that the blocked read is found and killed before InnoDB's
    // own lock wait timeout (1205, transient anyway) ends it.
    env.database.lock_wait_timeout_seconds = 120;
    let app = env.start().await?;
    let pool = env.pool().clone();
    sqlx::query("INSERT INTO items (sku, name, price_minor, currency, stock) VALUES ('KQ-1', 'killed query item', 100, 'EUR', 3)")
        .execute(&pool)
        .await?;

    // Another session holds the item's row lock.
    let mut holder = sqlx::MySqlConnection::connect(&env.db.url).await?;
    let holder_id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)").fetch_one(&mut holder).await?;
    let mut lock = holder.begin().await?;
    sqlx::query("SELECT stock FROM items WHERE sku = 'KQ-1' FOR UPDATE").execute(&mut *lock).await?;

    let order = created("KQ-1", 1);
    send(&producer()?, &env.orders_topic(), &order).await?;

    // The operator kills the consumer's blocked statement.
    let victim = blocked_reader(&pool, &env.db.name, holder_id).await?;
    sqlx::query(&format!("KILL QUERY {victim}")).execute(&pool).await?;

    // The event is retried, and blocks on the same lock again.
    let topic = env.orders_topic();
    let retries = format!(r#"messaging_consume_duration_seconds_count{{service="inventory",topic="{topic}",outcome="retry"}}"#);
    eventually("the killed attempt counted as a retry", || async { Ok(app.sample(&retries).unwrap_or(0.0) >= 1.0) }).await?;
    blocked_reader(&pool, &env.db.name, holder_id).await?;
    assert_eq!(stock(&pool, "KQ-1").await?, 3, "nothing reserved while the lock is held");

    // The lock goes away: the retry reserves.
    lock.rollback().await?;
    let mut reader = TopicReader::new(&env.inventory_topic())?;
    let verdict = reader.until("the verdict", Duration::from_secs(60), |evs| !evs.is_empty()).await?;
    assert_eq!(verdict[0].event_type(), EventType::InventoryReserved);
    assert_eq!(verdict[0].order_id(), order.order_id());
    assert_eq!(stock(&pool, "KQ-1").await?, 2);
    let reservations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE order_id = ?")
        .bind(order.order_id().to_string())
        .fetch_one(&pool)
        .await?;
    assert_eq!(reservations, 1);

    assert_eq!(written(&dlq_topic(&topic), env.partitions).await?, 0, "nothing was dead-lettered");
    assert_eq!(app.sample(&format!(r#"messaging_dead_letter_total{{service="inventory",topic="{topic}"}}"#)), None);
    app.stop().await?;
    holder.close().await?;
    env.drop().await
}
