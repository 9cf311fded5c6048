//! The store against the real FerretDB: the unique index is the dedupe, and
//! an unreachable server is a transient error (retried, not dead-lettered).
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use chrono::Utc;
use glasshouse_contracts::{CustomerId, Event, OrderConfirmed, OrderId};
use glasshouse_notification::events::handle_error;
use glasshouse_notification::render::render;
use glasshouse_notification::settings::DatabaseSettings;
use glasshouse_notification::store::{self, Inserted, NotificationDoc, Store};
use glasshouse_platform::consumer::HandleError;
use glasshouse_tests::stack::{self, FERRETDB};

fn doc() -> NotificationDoc {
    let e = Event::new(OrderId::new(), OrderConfirmed { customer_id: CustomerId::parse("cust-1").unwrap() });
    NotificationDoc::new(&e, render(&e).unwrap(), Utc::now())
}

#[tokio::test]
async fn the_unique_index_makes_a_second_insert_a_duplicate() -> anyhow::Result<()> {
    stack::require(FERRETDB).await?;
    let settings = DatabaseSettings {
        url: format!("mongodb://{}/", FERRETDB.addr()).into(),
        name: stack::unique_name("notif"),
        server_selection_timeout_ms: 5_000,
    };
    let store = Store::connect(&settings).await?;
    let result = async {
        store.ensure_indexes().await?;
        store.ensure_indexes().await?; // idempotent: every instance runs it at start
        let first = doc();
        assert_eq!(store.insert(&first).await?, Inserted::New);
        // Same event, a fresh notification id: only the event id collides.
        let mut again = doc();
        again.event_id = first.event_id.clone();
        assert_eq!(store.insert(&again).await?, Inserted::Duplicate);
        let stored = store.by_event(&first.event_id).await?;
        assert_eq!(stored, vec![first]);
        anyhow::Ok(())
    }
    .await;
    store.database().drop().await?;
    result
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() -> anyhow::Result<()> {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let settings =
        DatabaseSettings { url: format!("mongodb://127.0.0.1:{port}/").into(), name: "unused".into(), server_selection_timeout_ms: 300 };
    let store = Store::connect(&settings).await?;
    let err = store.insert(&doc()).await.expect_err("nothing listens there");
    assert!(store::is_transient(&err), "{err:?}");
    assert!(matches!(handle_error(err), HandleError::Transient(_)));
    assert!(store.ensure_indexes().await.is_err(), "start-up fails when the database is away");
    Ok(())
}
