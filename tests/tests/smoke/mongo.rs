//! The mongodb driver against FerretDB: unique index, duplicate-key error.

use glasshouse_tests::stack::{self, FERRETDB};
use mongodb::bson::{Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};

#[tokio::test]
async fn ferretdb_unique_index_rejects_duplicate() -> anyhow::Result<()> {
    stack::require(FERRETDB).await?;
    let client = Client::with_uri_str(format!("mongodb://{}/?appName=glasshouse-smoke", FERRETDB.addr())).await?;
    let db = client.database(&stack::unique_name("smoke"));
    let result = async {
        let notifications = db.collection::<Document>("notifications");
        notifications
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "event_id": 1 })
                    .options(IndexOptions::builder().unique(true).name("event_id_unique".to_string()).build())
                    .build(),
            )
            .await?;
        let event_id = uuid::Uuid::new_v4().to_string();
        notifications.insert_one(doc! { "event_id": &event_id, "kind": "order.created" }).await?;

        let duplicate = notifications.insert_one(doc! { "event_id": &event_id, "kind": "order.created" }).await;
        let err = duplicate.expect_err("a second insert with the same event_id must fail");
        match *err.kind {
            ErrorKind::Write(WriteFailure::WriteError(ref e)) => assert_eq!(e.code, 11000, "duplicate key code: {e:?}"),
            ref other => panic!("expected a duplicate-key write error, got {other:?}"),
        }
        let stored = notifications.count_documents(doc! { "event_id": &event_id }).await?;
        assert_eq!(stored, 1);
        anyhow::Ok(())
    }
    .await;
    db.drop().await?;
    result
}
