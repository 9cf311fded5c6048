//! MongoDB access: one document per notification, unique on the event id.
//!
//! Why this is exactly-once without transactions (FerretDB has none, and
//! nothing here needs one):
//! - a notification is ONE document, written by ONE `insert_one`; a
//!   single-document write is atomic in MongoDB and FerretDB alike, so it is
//!   either stored whole or not at all;
//! - the unique index on `event_id` is the dedupe: a second insert for the
//!   same event fails with the duplicate-key error (11000) and stores nothing,
//!   which the consumer reports as `Handled::Duplicate`;
//! - the consumer loop commits the Kafka offset only after the insert
//!   returned, so a crash in between redelivers the event and the index
//!   absorbs the second delivery.
//!
//! There is no check-then-insert anywhere: the index is the only truth.

use std::future::IntoFuture as _;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use glasshouse_contracts::Event;
use mongodb::bson::{self, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ServerAddress};
use mongodb::{Client, Collection, Database, IndexModel};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::render::{CHANNEL_EMAIL, Rendered};
use crate::settings::DatabaseSettings;

/// The collection notifications live in.
pub const COLLECTION: &str = "notifications";
/// Name of the unique index on `event_id`: the dedupe.
pub const EVENT_ID_INDEX: &str = "event_id_unique";
/// MongoDB's duplicate-key error code (FerretDB returns the same).
pub const DUPLICATE_KEY: i32 = 11000;

/// One stored notification. Ids and times are stored as the API shows them:
/// uuids as hyphenated strings (readable in a shell, exact-match queries),
/// times as BSON dates (milliseconds: the precision MongoDB keeps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationDoc {
    /// Notification id: a UUIDv7, so ids sort by creation time and break
    /// ties between equal `created_at` in the keyset order.
    #[serde(rename = "_id")]
    pub id: String,
    /// The event this notification tells about; unique (see [`EVENT_ID_INDEX`]).
    pub event_id: String,
    /// `order.created`, `order.confirmed`, ...
    pub event_type: String,
    pub order_id: String,
    /// The owner of the order, the only customer who may read it.
    pub customer_id: String,
    /// Always `email` for now (simulated: stored, not sent).
    pub channel: String,
    pub subject: String,
    pub body: String,
    /// When the event happened (its `occurred_at`, cut to milliseconds).
    pub occurred_at: bson::DateTime,
    /// When this notification was stored.
    pub created_at: bson::DateTime,
}

impl NotificationDoc {
    /// The document for `event`, rendered as `rendered`, stored at `now`.
    pub fn new(event: &Event, rendered: Rendered, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            event_id: event.id().to_string(),
            event_type: event.event_type().as_str().to_owned(),
            order_id: event.order_id().to_string(),
            customer_id: rendered.customer_id.as_str().to_owned(),
            channel: CHANNEL_EMAIL.to_owned(),
            subject: rendered.subject,
            body: rendered.body,
            occurred_at: bson::DateTime::from_millis(event.occurred_at().timestamp_millis()),
            created_at: bson::DateTime::from_millis(now.timestamp_millis()),
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The notification is stored now.
    New,
    /// A notification for this event already existed; nothing was written.
    Duplicate,
}

/// Whose notifications a listing is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every notification of one customer.
    Customer(String),
    /// The notifications of one order; `owner` restricts them to one
    /// customer's (`None` only for admins).
    Order { order_id: String, owner: Option<String> },
}

/// Keyset position: the last item of the previous page. Pages are sorted by
/// `(created_at, id)` descending; both never change once stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub created_at_ms: i64,
    pub id: String,
}

/// The notifications database, shared by the consumer and the API.
#[derive(Clone, Debug)]
pub struct Store {
    db: Database,
    notifications: Collection<NotificationDoc>,
    /// `server.address` / `server.port` of the spans.
    server: (String, u16),
}

impl Store {
    /// A client for `settings` (connects lazily; see [`Store::ensure_indexes`]).
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let mut options =
            ClientOptions::parse(settings.url.expose_secret()).await.context("database.url is not a usable MongoDB connection string")?;
        options.app_name = Some("glasshouse-notification".to_owned());
        options.server_selection_timeout = Some(settings.server_selection_timeout());
        options.connect_timeout = Some(settings.server_selection_timeout().min(Duration::from_secs(10)));
        let server = match options.hosts.first() {
            Some(ServerAddress::Tcp { host, port }) => (host.clone(), port.unwrap_or(27017)),
            _ => (String::new(), 0),
        };
        let client = Client::with_options(options).context("create the MongoDB client")?;
        let db = client.database(&settings.name);
        let notifications = db.collection(COLLECTION);
        Ok(Self { db, notifications, server })
    }

    /// Creates the indexes if missing (idempotent; every instance runs it at
    /// start). Fails when the server is not reachable, so a service that
    /// cannot store anything does not start.
    pub async fn ensure_indexes(&self) -> anyhow::Result<()> {
        let unique = IndexModel::builder()
            .keys(doc! { "event_id": 1 })
            .options(IndexOptions::builder().unique(true).name(EVENT_ID_INDEX.to_owned()).build())
            .build();
        let by_customer = IndexModel::builder()
            .keys(doc! { "customer_id": 1, "created_at": -1, "_id": -1 })
            .options(IndexOptions::builder().name("customer_newest_first".to_owned()).build())
            .build();
        let by_order = IndexModel::builder()
            .keys(doc! { "order_id": 1, "created_at": -1, "_id": -1 })
            .options(IndexOptions::builder().name("order_newest_first".to_owned()).build())
            .build();
        // One `createIndexes` per index: FerretDB 1.24 drops the connection
        // (a server-side panic) when one call names several indexes that
        // already exist, i.e. on every restart. One at a time, re-creating an
        // existing identical index is a no-op there as in MongoDB.
        for index in [unique, by_customer, by_order] {
            let name = index.options.as_ref().and_then(|o| o.name.clone()).unwrap_or_default();
            self.notifications
                .create_index(index)
                .await
                .with_context(|| format!("create index {name} on {}.{COLLECTION}", self.db.name()))?;
        }
        Ok(())
    }

    /// The database the collection lives in (tests drop it when done).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// `ping`: the readiness check.
    pub async fn ping(&self) -> mongodb::error::Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map(|_| ())
    }

    /// Stores `doc` unless a notification for its event exists. One
    /// `insert_one`: atomic on its own (see the module doc for why that is enough).
    pub async fn insert(&self, doc: &NotificationDoc) -> mongodb::error::Result<Inserted> {
        let span = self.span("insert");
        match self.notifications.insert_one(doc).into_future().instrument(span.clone()).await {
            Ok(_) => Ok(Inserted::New),
            Err(e) if is_duplicate_key(&e) => Ok(Inserted::Duplicate),
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", error_type(&e));
                Err(e)
            }
        }
    }

    /// Up to `limit` notifications of `scope` after `after`, newest first.
    ///
    /// The query's shape is what keeps it flat as the collection grows: the
    /// scope is plain equality on top-level string fields (`order_id`,
    /// `customer_id`), the only filter FerretDB 1.x pushes down to
    /// PostgreSQL, where the stack's GIN twin of `order_newest_first` /
    /// `customer_newest_first` serves it (deploy/local/README.md, FerretDB).
    /// FerretDB then applies the keyset `$or`, the sort and the limit in
    /// memory to that order's or customer's notifications only. Keep new
    /// conditions in this shape (no `$in`, no dotted paths) or they scan.
    pub async fn list(&self, scope: &Scope, after: Option<&After>, limit: i64) -> mongodb::error::Result<Vec<NotificationDoc>> {
        let mut filter = match scope {
            Scope::Customer(c) => doc! { "customer_id": c },
            Scope::Order { order_id, owner: Some(c) } => doc! { "order_id": order_id, "customer_id": c },
            Scope::Order { order_id, owner: None } => doc! { "order_id": order_id },
        };
        if let Some(a) = after {
            let at = bson::DateTime::from_millis(a.created_at_ms);
            filter.insert("$or", vec![doc! { "created_at": { "$lt": at } }, doc! { "created_at": at, "_id": { "$lt": &a.id } }]);
        }
        let span = self.span("find");
        async {
            let cursor = self.notifications.find(filter).sort(doc! { "created_at": -1, "_id": -1 }).limit(limit).await?;
            cursor.try_collect().await
        }
        .instrument(span.clone())
        .await
        .inspect_err(|e| {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", error_type(e));
        })
    }

    /// Every notification of one event (tests: "stored once").
    pub async fn by_event(&self, event_id: &str) -> mongodb::error::Result<Vec<NotificationDoc>> {
        self.notifications.find(doc! { "event_id": event_id }).await?.try_collect().await
    }

    /// A client span with the database semantic-convention attributes
    /// (`glasshouse_telemetry::db`, as Order and Inventory), so a trace shows
    /// the MongoDB call under the consume or HTTP span. The driver itself
    /// emits no OpenTelemetry spans.
    fn span(&self, operation: &'static str) -> tracing::Span {
        glasshouse_telemetry::db::client_span_at("mongodb", operation, COLLECTION, self.db.name(), (&self.server.0, self.server.1))
    }
}

/// The duplicate-key error of a unique index (code 11000).
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// True for errors a later attempt may not meet (server unreachable or not
/// ready, a retryable label, a write concern, a transient server code,
/// SQLite busy under FerretDB). The decision is the platform's, shared by
/// every consumer: [`glasshouse_platform::errors::is_transient_mongo`].
pub fn is_transient(e: &mongodb::error::Error) -> bool {
    glasshouse_platform::errors::is_transient_mongo(e)
}

/// A short, low-cardinality name of the error for the span's `error.type`.
fn error_type(e: &mongodb::error::Error) -> &'static str {
    match e.kind.as_ref() {
        ErrorKind::Io(_) => "io",
        ErrorKind::ServerSelection { .. } => "server_selection",
        ErrorKind::Write(_) => "write",
        ErrorKind::Command(_) => "command",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mongodb::error::{CommandError, Error, WriteError};

    use super::*;

    fn command(code: i32) -> Error {
        let c: CommandError = bson::from_document(doc! { "code": code, "codeName": "X", "errmsg": "x" }).unwrap();
        Error::from(ErrorKind::Command(c))
    }

    fn write(code: i32) -> Error {
        let w: WriteError = bson::from_document(doc! { "code": code, "errmsg": "x" }).unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(w)))
    }

    #[test]
    fn duplicate_key_is_recognised_in_both_shapes() {
        assert!(is_duplicate_key(&write(11000)));
        assert!(is_duplicate_key(&command(11000)));
        assert!(!is_duplicate_key(&write(121)));
        assert!(!is_transient(&write(11000)), "a duplicate is not worth retrying");
    }

    #[test]
    fn network_and_not_ready_are_transient_the_rest_permanent() {
        let io = Error::from(ErrorKind::Io(Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset))));
        assert!(is_transient(&io));
        for code in [91, 189, 11600, 10107, 50] {
            assert!(is_transient(&command(code)), "{code}");
        }
        // 121 DocumentValidationFailure, 2 BadValue: the same document fails again.
        assert!(!is_transient(&write(121)));
        assert!(!is_transient(&command(2)));
        assert!(!is_transient(&Error::custom("bug")));
    }

    #[test]
    fn documents_keep_the_event_and_cut_times_to_milliseconds() {
        let e = glasshouse_contracts::schema::examples()
            .into_iter()
            .find(|e| e.event_type() == glasshouse_contracts::EventType::OrderConfirmed)
            .unwrap();
        let rendered = crate::render::render(&e).unwrap();
        let now = Utc::now();
        let d = NotificationDoc::new(&e, rendered.clone(), now);
        assert_eq!(d.event_id, e.id().to_string());
        assert_eq!(d.event_type, e.event_type().as_str());
        assert_eq!(d.order_id, e.order_id().to_string());
        assert_eq!(d.customer_id, rendered.customer_id.as_str());
        assert_eq!(d.channel, "email");
        assert_eq!(d.occurred_at.timestamp_millis(), e.occurred_at().timestamp_millis());
        assert_eq!(d.created_at.timestamp_millis(), now.timestamp_millis());
        assert!(Uuid::parse_str(&d.id).is_ok_and(|u| u.get_version_num() == 7));
    }
}
