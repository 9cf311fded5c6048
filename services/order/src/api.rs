//! The Order HTTP API (poem-openapi; the served spec must equal the committed
//! `services/order/openapi.yaml`).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use glasshouse_contracts::{CustomerId, Event, Money, NonEmpty, OrderCreated, OrderId, OrderLine, Quantity, Sku};
use glasshouse_platform::auth::{BearerAuth, Principal, Role};
use glasshouse_platform::contract::{ANY, ApiContract, BODY, E400, E401, E403, E404, E409, E422, E503, Link, Problems};
use glasshouse_platform::cursor::{Cursors, invalid_cursor};
use glasshouse_platform::idempotency::{Fingerprint, IdempotencyKey, stored_answer};
use glasshouse_platform::problem::{Problem, ProblemType};
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::domain::{OrderEvent, OrderStatus};
use crate::inventory::InventoryClient;
use crate::metrics::OrderMetrics;
use crate::store::{self, Applied, Created, NewOrder, StoredLine, StoredOrder};

/// 422: Inventory does not know some SKUs (listed in `skus`).
pub const UNKNOWN_SKU: ProblemType = ProblemType::new("unknown-sku", "Unknown SKU", StatusCode::UNPROCESSABLE_ENTITY);
/// 422: the lines are priced in more than one currency.
pub const MIXED_CURRENCY: ProblemType =
    ProblemType::new("mixed-currency", "Lines priced in different currencies", StatusCode::UNPROCESSABLE_ENTITY);
/// 409: the order is in a state that cannot be cancelled.
pub const NOT_CANCELLABLE: ProblemType = ProblemType::new("order-not-cancellable", "Order cannot be cancelled", StatusCode::CONFLICT);

/// Lines per order, at most.
pub const MAX_LINES: usize = 50;
/// Page size bounds of `GET /orders`.
pub const MAX_PAGE: u32 = 100;

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct OrderLineRequest {
    /// 1..=64 characters of `A-Z`, `0-9` and `-`.
    #[oai(validator(pattern = r"^[A-Z0-9-]+$", min_length = 1, max_length = 64))]
    pub sku: String,
    /// Units, 1..=1000.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub quantity: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields, example)]
pub struct PlaceOrderRequest {
    /// 1..=50 lines, unique by `sku` (each SKU at most once: put its whole
    /// quantity on one line; a repeated SKU is a 422 `validation-failed`).
    #[oai(validator(min_items = 1, max_items = 50))]
    pub lines: Vec<OrderLineRequest>,
}

/// Two units of the first item of the demo catalog (`glasshouse-inventory-seed`).
impl poem_openapi::types::Example for PlaceOrderRequest {
    fn example() -> Self {
        Self { lines: vec![OrderLineRequest { sku: "DEMO-00001".into(), quantity: 2 }] }
    }
}

#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct MoneyDto {
    /// Amount in minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
pub struct OrderLineDto {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: MoneyDto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatusDto {
    Pending,
    Confirmed,
    Rejected,
    Cancelled,
}

impl From<OrderStatus> for OrderStatusDto {
    fn from(s: OrderStatus) -> Self {
        match s {
            OrderStatus::Pending => Self::Pending,
            OrderStatus::Confirmed => Self::Confirmed,
            OrderStatus::Rejected => Self::Rejected,
            OrderStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<OrderStatusDto> for OrderStatus {
    fn from(s: OrderStatusDto) -> Self {
        match s {
            OrderStatusDto::Pending => Self::Pending,
            OrderStatusDto::Confirmed => Self::Confirmed,
            OrderStatusDto::Rejected => Self::Rejected,
            OrderStatusDto::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct OrderDto {
    pub id: Uuid,
    pub customer_id: String,
    pub status: OrderStatusDto,
    pub lines: Vec<OrderLineDto>,
    pub total: MoneyDto,
    /// Why the order was rejected, when it was: Inventory's `out_of_stock` or
    /// `unknown_sku`, or `timeout` (no verdict within the saga deadline);
    /// absent otherwise.
    pub rejection_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&StoredOrder> for OrderDto {
    fn from(o: &StoredOrder) -> Self {
        Self {
            id: o.id,
            customer_id: o.customer_id.clone(),
            status: o.status.into(),
            lines: o
                .lines
                .iter()
                .map(|l| OrderLineDto {
                    sku: l.sku.clone(),
                    quantity: i64::from(l.quantity),
                    unit_price: MoneyDto { amount_minor: l.unit_price_minor, currency: o.currency.clone() },
                })
                .collect(),
            total: MoneyDto { amount_minor: o.total_minor, currency: o.currency.clone() },
            rejection_reason: o.rejection_reason.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrderPage {
    pub items: Vec<OrderDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The errors each operation answers (see `glasshouse_platform::contract`).
const PLACE_ORDER_ERRORS: u32 = ANY | BODY | E401 | E403 | E503;
const GET_ORDER_ERRORS: u32 = ANY | E401 | E404;
const LIST_ORDERS_ERRORS: u32 = ANY | E400 | E401 | E422;
const CANCEL_ORDER_ERRORS: u32 = ANY | E401 | E403 | E404 | E409;

#[derive(ApiResponse)]
pub enum PlaceOrderResponse {
    /// Accepted: the order is `PENDING` until Inventory answers. Also the
    /// answer to a repeated request with the same Idempotency-Key and body.
    #[oai(status = 202)]
    Accepted(Json<OrderDto>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum OrderResponse {
    #[oai(status = 200)]
    Ok(Json<OrderDto>),
}

#[derive(ApiResponse)]
pub enum OrderPageResponse {
    #[oai(status = 200)]
    Ok(Json<OrderPage>),
}

/// What the handlers share.
pub struct ApiState {
    pub pool: sqlx::PgPool,
    pub inventory: InventoryClient,
    pub metrics: OrderMetrics,
}

pub struct OrderApi {
    pub state: Arc<ApiState>,
}

/// After `placeOrder`, the order can be read and cancelled by its id.
impl ApiContract for OrderApi {
    fn links() -> Vec<Link> {
        let id: &'static [(&str, &str)] = &[("id", "$response.body#/id")];
        vec![
            Link {
                operation: "placeOrder",
                status: 202,
                name: "GetOrder",
                target: "getOrder",
                parameters: id,
                description: "The order just placed (also at `Location`).",
            },
            Link {
                operation: "placeOrder",
                status: 202,
                name: "CancelOrder",
                target: "cancelOrder",
                parameters: id,
                description: "Cancel the order just placed.",
            },
            Link {
                operation: "cancelOrder",
                status: 200,
                name: "GetCancelledOrder",
                target: "getOrder",
                parameters: id,
                description: "The order, now `CANCELLED`.",
            },
        ]
    }
}

/// Validated lines, in request order.
struct ValidLines {
    skus: Vec<Sku>,
    quantities: Vec<Quantity>,
}

fn validate(req: &PlaceOrderRequest) -> Result<ValidLines, Problem> {
    if req.lines.is_empty() || req.lines.len() > MAX_LINES {
        return Err(Problem::validation(format!("an order has 1..={MAX_LINES} lines, this one has {}", req.lines.len()))
            .with_extension("field", "lines"));
    }
    let mut seen = HashSet::new();
    let mut out = ValidLines { skus: Vec::new(), quantities: Vec::new() };
    for (i, l) in req.lines.iter().enumerate() {
        let sku = Sku::parse(&l.sku)
            .map_err(|e| Problem::validation(format!("lines[{i}].sku: {e}")).with_extension("field", format!("lines[{i}].sku")))?;
        let qty = Quantity::try_from(l.quantity).map_err(|e| {
            Problem::validation(format!("lines[{i}].quantity: {e}")).with_extension("field", format!("lines[{i}].quantity"))
        })?;
        if !seen.insert(sku.clone()) {
            return Err(Problem::validation(format!("lines[{i}].sku: {} appears twice; put the quantities on one line", sku.as_str()))
                .with_extension("field", format!("lines[{i}].sku")));
        }
        out.skus.push(sku);
        out.quantities.push(qty);
    }
    Ok(out)
}

/// The request as stored with its idempotency key (`[[sku, quantity], ...]`):
/// same key and same fingerprint means "same answer".
fn fingerprint(lines: &ValidLines) -> Fingerprint {
    let pairs: Vec<(&str, u32)> = lines.skus.iter().zip(&lines.quantities).map(|(s, q)| (s.as_str(), q.get())).collect();
    Fingerprint::of(&pairs)
}

fn location(id: Uuid) -> String {
    format!("/orders/{id}")
}

fn replay(body: &str) -> Result<PlaceOrderResponse, Problem> {
    let dto: OrderDto = stored_answer(body)?;
    let loc = location(dto.id);
    Ok(PlaceOrderResponse::Accepted(Json(dto), loc))
}

fn parse_id(id: &str) -> Result<Uuid, Problem> {
    // Anything that is not an order id cannot name an order: 404, like an unknown one.
    Uuid::parse_str(id).map_err(|_| Problem::not_found("no such order"))
}

/// Loads an order the caller may see: the owner or an admin. Anyone else gets
/// 404, not 403, so ids of other customers' orders cannot be probed.
async fn visible_order(state: &ApiState, who: &Principal, id: Uuid) -> Result<StoredOrder, Problem> {
    let order = store::get_order(&state.pool, id).await.map_err(Problem::internal)?.ok_or_else(|| Problem::not_found("no such order"))?;
    if who.is_admin() || order.customer_id == who.customer_id.as_str() { Ok(order) } else { Err(Problem::not_found("no such order")) }
}

/// Keyset position: `<created_at micros>.<order id>`, sealed by [`Cursors`].
fn encode_cursor(o: &StoredOrder) -> String {
    format!("{}.{}", o.created_at.timestamp_micros(), o.id)
}

fn decode_cursor(c: &str) -> Result<(DateTime<Utc>, Uuid), Problem> {
    let bad = invalid_cursor;
    let (micros, id) = c.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

#[OpenApi]
impl OrderApi {
    /// Place an order.
    ///
    /// Prices the lines with Inventory, then stores the order (`PENDING`) and
    /// its `order.created` event in one transaction. Repeating the request
    /// with the same `Idempotency-Key` and body returns the same answer and
    /// creates nothing; the same key with another body is a 422.
    #[oai(path = "/orders", method = "post", operation_id = "placeOrder")]
    async fn place_order(
        &self,
        auth: BearerAuth,
        /// 1..=255 visible ASCII characters; one key per order.
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]+$", min_length = 1, max_length = 255))]
        key: Header<String>,
        body: Json<PlaceOrderRequest>,
    ) -> Result<PlaceOrderResponse, Problems<PLACE_ORDER_ERRORS>> {
        let who = auth.0;
        who.require(Role::Customer)?;
        let key = IdempotencyKey::parse(&key.0)?;
        let lines = validate(&body.0)?;
        let request = fingerprint(&lines);
        let customer = who.customer_id.as_str().to_owned();
        glasshouse_telemetry::traces::set_request_attribute("enduser.id", customer.clone());

        // Fast path: a retry of a request that already succeeded.
        if let Some(prior) = store::find_idempotent(&self.state.pool, &customer, &key, &request).await.map_err(Problem::internal)? {
            return Ok(prior.respond(replay)?);
        }

        let skus: Vec<String> = lines.skus.iter().map(|s| s.as_str().to_owned()).collect();
        let prices = self.state.inventory.prices(&skus).await.map_err(|e| {
            if e.is_unavailable() {
                tracing::warn!(error = %e, "inventory unavailable; order refused, nothing written");
                Problem::unavailable("Inventory is unavailable; nothing was stored. Retry later.", e.retry_after())
            } else {
                Problem::internal(anyhow::anyhow!(e).context("price lines with inventory"))
            }
        })?;
        let unknown: Vec<&String> = skus.iter().filter(|s| !prices.contains_key(*s)).collect();
        if !unknown.is_empty() {
            return Err(Problems::from(
                Problem::new(UNKNOWN_SKU)
                    .with_detail(format!("Inventory does not know: {}", unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
                    .with_extension("skus", &unknown),
            ));
        }
        let currencies: std::collections::BTreeSet<&str> = prices.values().map(|p| p.currency.as_str()).collect();
        if currencies.len() != 1 {
            return Err(Problems::from(
                Problem::new(MIXED_CURRENCY)
                    .with_detail(format!("lines are priced in {}", currencies.into_iter().collect::<Vec<_>>().join(", "))),
            ));
        }

        let mut order_lines = Vec::with_capacity(skus.len());
        let mut stored = Vec::with_capacity(skus.len());
        for (sku, qty) in lines.skus.iter().zip(&lines.quantities) {
            let p = &prices[sku.as_str()];
            let price = Money::parse(p.amount_minor, &p.currency)
                .map_err(|e| Problem::internal(anyhow::anyhow!("inventory sent a bad price for {}: {e}", sku.as_str())))?;
            order_lines.push(OrderLine { sku: sku.clone(), quantity: *qty, unit_price: price });
            stored.push(StoredLine { sku: sku.as_str().to_owned(), quantity: qty.get() as i32, unit_price_minor: p.amount_minor });
        }
        let customer_id = CustomerId::parse(&customer).map_err(Problem::internal)?;
        let lines_ne = NonEmpty::new(order_lines).map_err(Problem::internal)?;
        let created = OrderCreated::new(customer_id, lines_ne).map_err(|e| Problem::validation(format!("order total: {e}")))?;
        let total = created.total;
        let order_id = OrderId::new();
        glasshouse_telemetry::traces::set_request_attribute("order.id", order_id.to_string());
        let event = Event::new(order_id, created);
        let currency = total.currency().as_str().to_owned();
        let new = NewOrder {
            id: order_id.as_uuid(),
            customer_id: &customer,
            currency: &currency,
            total_minor: total.amount_minor(),
            lines: &stored,
            idempotency_key: &key,
            request: &request,
            event: &event,
        };
        let outcome = store::create_order(&self.state.pool, &new, |o| serde_json::to_string(&OrderDto::from(o)).unwrap_or_default())
            .await
            .map_err(|e| Problem::internal(e.context("store order")))?;
        match outcome {
            Created::New(order) => {
                self.state.metrics.reached(OrderStatus::Pending);
                self.state.metrics.created_value(&order.currency, order.total_minor);
                tracing::info!(order_id = %order.id, lines = order.lines.len(), total_minor = order.total_minor, "order placed");
                Ok(PlaceOrderResponse::Accepted(Json(OrderDto::from(&order)), location(order.id)))
            }
            Created::Prior(prior) => Ok(prior.respond(replay)?),
        }
    }

    /// Get an order (its owner or an admin; anyone else gets 404).
    #[oai(path = "/orders/:id", method = "get", operation_id = "getOrder")]
    async fn get_order(&self, auth: BearerAuth, id: Path<String>) -> Result<OrderResponse, Problems<GET_ORDER_ERRORS>> {
        let id = parse_id(&id.0)?;
        let order = visible_order(&self.state, &auth.0, id).await?;
        Ok(OrderResponse::Ok(Json(OrderDto::from(&order))))
    }

    /// List the caller's orders, newest first (keyset pagination).
    #[oai(path = "/orders", method = "get", operation_id = "listOrders")]
    async fn list_orders(
        &self,
        auth: BearerAuth,
        status: Query<Option<OrderStatusDto>>,
        /// Page size, 1..=100, default 20.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page, as given (any other value is a
        /// 422 `invalid-cursor`).
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", max_length = 512))]
        cursor: Query<Option<String>>,
        cursors: Data<&Cursors>,
    ) -> Result<OrderPageResponse, Problems<LIST_ORDERS_ERRORS>> {
        let limit = limit.0.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problems::from(
                Problem::validation(format!("limit must be within 1..={MAX_PAGE}, got {limit}")).with_extension("field", "limit"),
            ));
        }
        let after = cursor.0.as_deref().map(|c| cursors.open("orders", c).and_then(|p| decode_cursor(&p))).transpose()?;
        let mut orders =
            store::list_orders(&self.state.pool, auth.0.customer_id.as_str(), status.0.map(Into::into), after, i64::from(limit) + 1)
                .await
                .map_err(Problem::internal)?;
        let next_cursor = if orders.len() > limit as usize {
            orders.truncate(limit as usize);
            orders.last().map(|o| cursors.seal("orders", &encode_cursor(o)))
        } else {
            None
        };
        Ok(OrderPageResponse::Ok(Json(OrderPage { items: orders.iter().map(OrderDto::from).collect(), next_cursor })))
    }

    /// Cancel an order (its owner; only `PENDING` or `CONFIRMED`). Emits
    /// `order.cancelled`; Inventory then releases the reservation.
    #[oai(path = "/orders/:id/cancel", method = "post", operation_id = "cancelOrder")]
    async fn cancel_order(&self, auth: BearerAuth, id: Path<String>) -> Result<OrderResponse, Problems<CANCEL_ORDER_ERRORS>> {
        let id = parse_id(&id.0)?;
        let who = auth.0;
        glasshouse_telemetry::traces::set_request_attribute("order.id", id.to_string());
        glasshouse_telemetry::traces::set_request_attribute("enduser.id", who.customer_id.as_str().to_owned());
        let order = visible_order(&self.state, &who, id).await?;
        if order.customer_id != who.customer_id.as_str() {
            // An admin may look, but a cancel is the customer's decision.
            return Err(Problems::from(Problem::forbidden("only the customer who placed an order can cancel it")));
        }
        let mut tx = self.state.pool.begin().await.map_err(Problem::internal)?;
        let applied = store::apply(&mut tx, id, OrderEvent::CancelRequested, None, |o, _| {
            let customer_id = CustomerId::parse(&o.customer_id)?;
            Ok(Some(Event::new(OrderId::from_uuid(o.id)?, glasshouse_contracts::OrderCancelled::by_customer(customer_id))))
        })
        .await
        .map_err(|e| Problem::internal(e.context("cancel order")))?;
        tx.commit().await.map_err(Problem::internal)?;
        match applied {
            Applied::Moved { from, to, created_at } => {
                self.state.metrics.reached(to);
                if from == OrderStatus::Pending {
                    self.state.metrics.completed(to, (Utc::now() - created_at).num_milliseconds() as f64 / 1000.0);
                }
                tracing::info!(order_id = %id, "order cancelled");
            }
            Applied::NoOp(OrderStatus::Cancelled) => {}
            Applied::NoOp(status) | Applied::Illegal(status) => {
                return Err(Problems::from(
                    Problem::new(NOT_CANCELLABLE)
                        .with_detail(format!("the order is {status}; only PENDING or CONFIRMED orders can be cancelled")),
                ));
            }
            Applied::NotFound => return Err(Problems::from(Problem::not_found("no such order"))),
        }
        let order =
            store::get_order(&self.state.pool, id).await.map_err(Problem::internal)?.ok_or_else(|| Problem::not_found("no such order"))?;
        Ok(OrderResponse::Ok(Json(OrderDto::from(&order))))
    }
}
