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
    doc_of("cust-1")
}

fn doc_of(customer: &str) -> NotificationDoc {
    let e = Event::new(OrderId::new(), OrderConfirmed { customer_id: CustomerId::parse(customer).unwrap() });
    NotificationDoc::new(&e, render(&e).unwrap(), Utc::now())
}

/// A database of its own on the stack's FerretDB (the test drops it).
fn scratch_settings() -> DatabaseSettings {
    DatabaseSettings {
        url: format!("mongodb://{}/", FERRETDB.addr()).into(),
        name: stack::unique_name("notif"),
        server_selection_timeout_ms: 5_000,
    }
}

#[tokio::test]
async fn the_unique_index_makes_a_second_insert_a_duplicate() -> anyhow::Result<()> {
    stack::require(FERRETDB).await?;
    let settings = scratch_settings();
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

/// The server's own plan of a query: FerretDB's `explain` returns PostgreSQL's
/// plan of the SQL it runs; every plan node type, depth first.
async fn plan_of(store: &Store, filter: mongodb::bson::Document) -> anyhow::Result<(bool, Vec<String>)> {
    let reply = store
        .database()
        .run_command(mongodb::bson::doc! {
            "explain": { "find": store::COLLECTION, "filter": filter, "sort": { "created_at": -1, "_id": -1 }, "limit": 21 },
            "verbosity": "queryPlanner",
        })
        .await?;
    fn walk(d: &mongodb::bson::Document, out: &mut Vec<String>) {
        if let Ok(p) = d.get_document("Plan") {
            return walk(p, out);
        }
        let index = d.get_str("Index Name").map(|i| format!(" using {i}")).unwrap_or_default();
        out.push(format!("{}{index}", d.get_str("Node Type").unwrap_or("?")));
        for c in d.get_array("Plans").into_iter().flatten() {
            if let mongodb::bson::Bson::Document(c) = c {
                walk(c, out);
            }
        }
    }
    let mut nodes = Vec::new();
    walk(reply.get_document("queryPlanner")?, &mut nodes);
    Ok((reply.get_bool("filterPushdown").unwrap_or(false), nodes))
}

/// Issue 14: the reads of `GET /notifications` must not scan the collection.
/// The local stack's FerretDB (PostgreSQL backend + GIN twins of its
/// indexes, deploy/local/README.md) answers both scopes with an index scan.
#[tokio::test]
async fn reads_by_order_and_by_customer_are_index_scans() -> anyhow::Result<()> {
    stack::require(FERRETDB).await?;
    let settings = scratch_settings();
    let store = Store::connect(&settings).await?;
    let result = async {
        store.ensure_indexes().await?;
        // Enough documents that a scan is not the cheap plan.
        let docs: Vec<NotificationDoc> = (0..2_000).map(|i| doc_of(&format!("cust-{}", i % 500))).collect();
        let (order, customer) = (docs[7].order_id.clone(), docs[7].customer_id.clone());
        store.database().collection::<NotificationDoc>(store::COLLECTION).insert_many(docs).await?;
        // A customer reading one order of theirs (either index may serve it), an admin reading an order.
        for (filter, index) in [
            (mongodb::bson::doc! { "order_id": &order, "customer_id": &customer }, "_newest"),
            (mongodb::bson::doc! { "order_id": &order }, "order_newest"),
        ] {
            let (pushed, plan) = plan_of(&store, filter.clone()).await?;
            assert!(pushed, "the filter {filter} is pushed down to PostgreSQL");
            assert!(!plan.iter().any(|n| n.starts_with("Seq Scan")), "{filter}: {plan:?}");
            assert!(plan.iter().any(|n| n.contains("Index Scan using") && n.contains(index)), "{filter}: {plan:?}");
        }
        let (pushed, plan) = plan_of(&store, mongodb::bson::doc! { "customer_id": &customer }).await?;
        assert!(pushed && !plan.iter().any(|n| n.starts_with("Seq Scan")), "{plan:?}");
        assert!(plan.iter().any(|n| n.contains("Index Scan using") && n.contains("customer_newest")), "{plan:?}");
        // And the store's own query returns that order's notification.
        let page = store.list(&store::Scope::Order { order_id: order.clone(), owner: Some(customer.clone()) }, None, 21).await?;
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].order_id, order);
        anyhow::Ok(())
    }
    .await;
    store.database().drop().await?;
    result
}
