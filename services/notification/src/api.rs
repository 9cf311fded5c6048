//! The Notification HTTP API (poem-openapi; the served spec must equal the
//! committed `services/notification/openapi.yaml`).
//!
//! Visibility rules, chosen so that nothing about other customers leaks:
//! - `?order_id=`: the caller gets the notifications of that order that are
//!   addressed to them (an admin gets all). An order with none visible is a
//!   `200` with no items, not a `404`: this service does not own orders, so it
//!   cannot tell "not yours" from "not notified yet" (the saga is
//!   asynchronous), and the same empty answer for both lets nobody probe
//!   other customers' order ids.
//! - `?customer_id=`: the caller's own id, or any id for an admin. Another
//!   customer's id is a `403`: the caller named the customer themselves, so
//!   the refusal reveals nothing they did not send.

use chrono::{DateTime, Utc};
use glasshouse_contracts::{CustomerId, OrderId};
use glasshouse_platform::auth::BearerAuth;
use glasshouse_platform::contract::{ANY, ApiContract, E400, E401, E403, E422, Problems};
use glasshouse_platform::cursor::{Cursors, invalid_cursor};
use glasshouse_platform::problem::Problem;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::store::{After, NotificationDoc, Scope, Store};

/// Page size bounds.
pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Channel", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ChannelDto {
    /// Simulated e-mail: stored and listed here, never sent.
    Email,
}

/// The event a notification tells about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename = "NotificationType")]
pub enum NotificationTypeDto {
    #[oai(rename = "order.created")]
    #[serde(rename = "order.created")]
    OrderCreated,
    #[oai(rename = "order.confirmed")]
    #[serde(rename = "order.confirmed")]
    OrderConfirmed,
    #[oai(rename = "order.rejected")]
    #[serde(rename = "order.rejected")]
    OrderRejected,
    #[oai(rename = "order.cancelled")]
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl NotificationTypeDto {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "order.created" => Self::OrderCreated,
            "order.confirmed" => Self::OrderConfirmed,
            "order.rejected" => Self::OrderRejected,
            "order.cancelled" => Self::OrderCancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Notification")]
pub struct NotificationDto {
    pub id: Uuid,
    /// The event this notification tells about (one notification per event).
    pub event_id: Uuid,
    pub event_type: NotificationTypeDto,
    pub order_id: Uuid,
    /// The customer it is addressed to: the order's owner.
    pub customer_id: String,
    pub channel: ChannelDto,
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// When the event happened (millisecond precision).
    pub occurred_at: DateTime<Utc>,
    /// When the notification was stored (millisecond precision).
    pub created_at: DateTime<Utc>,
}

impl TryFrom<&NotificationDoc> for NotificationDto {
    type Error = anyhow::Error;

    fn try_from(d: &NotificationDoc) -> anyhow::Result<Self> {
        let uuid = |what: &str, s: &str| Uuid::parse_str(s).map_err(|e| anyhow::anyhow!("stored notification {}: {what} {s:?}: {e}", d.id));
        let time = |what: &str, t: mongodb::bson::DateTime| {
            DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis())
                .ok_or_else(|| anyhow::anyhow!("stored notification {}: {what} out of range", d.id))
        };
        Ok(Self {
            id: uuid("id", &d.id)?,
            event_id: uuid("event_id", &d.event_id)?,
            event_type: NotificationTypeDto::parse(&d.event_type)
                .ok_or_else(|| anyhow::anyhow!("stored notification {}: unknown event_type {:?}", d.id, d.event_type))?,
            order_id: uuid("order_id", &d.order_id)?,
            customer_id: d.customer_id.clone(),
            channel: match d.channel.as_str() {
                crate::render::CHANNEL_EMAIL => ChannelDto::Email,
                other => anyhow::bail!("stored notification {}: unknown channel {other:?}", d.id),
            },
            subject: d.subject.clone(),
            body: d.body.clone(),
            occurred_at: time("occurred_at", d.occurred_at)?,
            created_at: time("created_at", d.created_at)?,
        })
    }
}

#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct NotificationPage {
    /// Newest first.
    pub items: Vec<NotificationDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The errors `listNotifications` answers (see `glasshouse_platform::contract`).
const LIST_NOTIFICATIONS_ERRORS: u32 = ANY | E400 | E401 | E403 | E422;

#[derive(ApiResponse)]
pub enum NotificationPageResponse {
    /// A page of notifications (possibly empty).
    #[oai(status = 200)]
    Ok(Json<NotificationPage>),
}

pub struct NotificationApi {
    pub store: Store,
}

impl ApiContract for NotificationApi {}

/// Keyset position: `<created_at epoch millis>.<notification id>`, sealed by [`Cursors`].
fn encode_cursor(d: &NotificationDoc) -> String {
    format!("{}.{}", d.created_at.timestamp_millis(), d.id)
}

fn decode_cursor(c: &str) -> Result<After, Problem> {
    let bad = invalid_cursor;
    let (millis, id) = c.split_once('.').ok_or_else(bad)?;
    let created_at_ms: i64 = millis.parse().map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(After { created_at_ms, id: id.to_string() })
}

/// Which listing the query asks for, validated; exactly one of the two.
fn scope(order_id: Option<&str>, customer_id: Option<&str>) -> Result<QueryScope, Problem> {
    match (order_id, customer_id) {
        (Some(o), None) => Ok(QueryScope::Order(OrderId::parse(o)?)),
        (None, Some(c)) => Ok(QueryScope::Customer(CustomerId::parse(c)?)),
        (Some(_), Some(_)) => {
            Err(Problem::validation("give exactly one of order_id and customer_id, not both").with_extension("field", "order_id"))
        }
        (None, None) => Err(Problem::validation("give exactly one of order_id and customer_id").with_extension("field", "order_id")),
    }
}

enum QueryScope {
    Order(OrderId),
    Customer(CustomerId),
}

#[OpenApi]
impl NotificationApi {
    /// List notifications, newest first (keyset pagination).
    ///
    /// Give exactly one of `order_id` or `customer_id`, else 422.
    /// `order_id`: that order's notifications addressed to the caller (all of
    /// them for an admin); an order with none visible gives 200 with no
    /// items, never 404, so other customers' order ids cannot be probed.
    /// `customer_id`: the caller's own id, or any for an admin; another
    /// customer's id is 403.
    #[oai(path = "/notifications", method = "get", operation_id = "listNotifications")]
    async fn list_notifications(
        &self,
        auth: BearerAuth,
        /// An order id: a hyphenated UUID, not the nil UUID.
        #[oai(validator(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            min_length = 36,
            max_length = 36
        ))]
        order_id: Query<Option<String>>,
        /// A customer id (the JWT subject): 1..=128 visible ASCII characters.
        #[oai(validator(pattern = r"^[!-~]+$", min_length = 1, max_length = 128))]
        customer_id: Query<Option<String>>,
        /// `next_cursor` of the previous page, as given (any other value is a
        /// 422 `invalid-cursor`).
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", max_length = 512))]
        cursor: Query<Option<String>>,
        /// Page size, 1..=100, default 20.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        cursors: Data<&Cursors>,
    ) -> Result<NotificationPageResponse, Problems<LIST_NOTIFICATIONS_ERRORS>> {
        let who = auth.0;
        let scope = scope(order_id.0.as_deref(), customer_id.0.as_deref())?;
        let limit = limit.0.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problems::from(
                Problem::validation(format!("limit must be within 1..={MAX_PAGE}, got {limit}")).with_extension("field", "limit"),
            ));
        }
        let after = cursor.0.as_deref().map(|c| cursors.open("notifications", c).and_then(|p| decode_cursor(&p))).transpose()?;
        let scope = match scope {
            QueryScope::Order(id) => {
                Scope::Order { order_id: id.to_string(), owner: (!who.is_admin()).then(|| who.customer_id.as_str().to_owned()) }
            }
            QueryScope::Customer(c) => {
                if !who.can_access(&c) {
                    return Err(Problems::from(Problem::forbidden("you may list only your own notifications")));
                }
                Scope::Customer(c.as_str().to_owned())
            }
        };
        let mut docs = self
            .store
            .list(&scope, after.as_ref(), limit + 1)
            .await
            .map_err(|e| Problem::internal(anyhow::Error::new(e).context("list notifications")))?;
        let next_cursor = if docs.len() > limit as usize {
            docs.truncate(limit as usize);
            docs.last().map(|d| cursors.seal("notifications", &encode_cursor(d)))
        } else {
            None
        };
        let items = docs.iter().map(NotificationDto::try_from).collect::<anyhow::Result<Vec<_>>>().map_err(Problem::internal)?;
        Ok(NotificationPageResponse::Ok(Json(NotificationPage { items, next_cursor })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_strangers() {
        let e = glasshouse_contracts::schema::examples().remove(0);
        let d = NotificationDoc::new(&e, crate::render::render(&e).unwrap(), Utc::now());
        let after = decode_cursor(&encode_cursor(&d)).unwrap();
        assert_eq!(after, After { created_at_ms: d.created_at.timestamp_millis(), id: d.id });
        for bad in ["", "123", "abc.def", "123.not-a-uuid", ".0190f0f5-3c7e-7b7c-9c1a-1234567890ab"] {
            let p = decode_cursor(bad).unwrap_err();
            assert_eq!(p.status(), poem::http::StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
    }

    #[test]
    fn exactly_one_scope_parameter() {
        let order = "0190f0f5-3c7e-7b7c-9c1a-1234567890ab";
        assert!(matches!(scope(Some(order), None), Ok(QueryScope::Order(_))));
        assert!(matches!(scope(None, Some("cust-1")), Ok(QueryScope::Customer(_))));
        for (o, c) in [(Some(order), Some("cust-1")), (None, None), (Some("nope"), None), (None, Some("has space"))] {
            let p = scope(o, c).err().unwrap();
            assert_eq!(p.status(), poem::http::StatusCode::UNPROCESSABLE_ENTITY, "{o:?} {c:?}");
        }
    }

    #[test]
    fn stored_documents_map_to_the_dto() {
        let e = glasshouse_contracts::schema::examples().remove(0);
        let d = NotificationDoc::new(&e, crate::render::render(&e).unwrap(), Utc::now());
        let dto = NotificationDto::try_from(&d).unwrap();
        assert_eq!(dto.event_id, e.id().as_uuid());
        assert_eq!(dto.order_id, e.order_id().as_uuid());
        assert_eq!(dto.event_type, NotificationTypeDto::OrderCreated);
        assert_eq!(dto.occurred_at.timestamp_millis(), e.occurred_at().timestamp_millis());
        let mut broken = d;
        broken.event_type = "order.teleported".into();
        assert!(NotificationDto::try_from(&broken).is_err());
    }
}
