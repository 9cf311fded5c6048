//! FerretDB keeps Notification's documents in PostgreSQL (deploy/local/stack,
//! "ferretdb"). When that PostgreSQL is away, FerretDB answers every operation
//! with an error of its own; the consumer must classify it as transient
//! (retried in place for as long as the outage lasts, never dead-lettered:
//! services/platform/src/errors.rs), and once PostgreSQL is back the same
//! FerretDB serves again without a restart.
//!
//! A private PostgreSQL + FerretDB pair (tests/src/private_stack.rs): the
//! shared one serves every other test.

use std::time::Duration;

use glasshouse_platform::errors::is_transient_mongo;
use glasshouse_tests::poll;
use glasshouse_tests::private_stack::{FERRETDB, POSTGRES, PrivateStack};
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_outage_under_ferretdb_is_transient_and_heals() -> anyhow::Result<()> {
    let private = PrivateStack::start(&[POSTGRES, FERRETDB]).await?;
    let mut options = ClientOptions::parse(private.mongodb_url()).await?;
    options.server_selection_timeout = Some(Duration::from_secs(5));
    options.connect_timeout = Some(Duration::from_secs(5));
    let client = mongodb::Client::with_options(options)?;
    let docs = client.database("outage").collection::<Document>("notifications");
    docs.insert_one(doc! { "n": 1 }).await?;

    private.stop(POSTGRES).await?;
    let write = tokio::time::timeout(Duration::from_secs(60), docs.insert_one(doc! { "n": 2 })).await?;
    let err = write.expect_err("no backend, no write");
    assert!(is_transient_mongo(&err), "a write while PostgreSQL is away must be transient (retried, not dead-lettered): {err:?}");
    let read = tokio::time::timeout(Duration::from_secs(60), docs.find_one(doc! { "n": 1 })).await?;
    let err = read.expect_err("no backend, no read");
    assert!(is_transient_mongo(&err), "a read while PostgreSQL is away must be transient: {err:?}");

    private.start_again(POSTGRES).await?;
    poll::until("FerretDB writes again", Duration::from_secs(60), Duration::from_millis(200), || async {
        Ok(docs.insert_one(doc! { "n": 3 }).await.ok().map(|_| ()))
    })
    .await?;
    assert_eq!(docs.count_documents(doc! {}).await?, 2, "the first and the last write, nothing else");
    private.shutdown().await
}
