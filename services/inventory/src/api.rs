//! The Inventory HTTP API (poem-openapi; the served spec must equal the
//! committed `services/inventory/openapi.yaml`).
//!
//! Catalog reads are public (Order prices lines with them, the load runner
//! lists the catalog); writes need the `admin` role.
//!
//! # Stock is never overwritten
//! An admin who read an item, then writes its stock back, would undo every
//! reservation made in between (stock 10, three orders reserve 3, the
//! write puts 10 back: 13 sold from 10). So stock changes only by deltas
//! applied under the row lock: reservations and releases (Kafka), restocks
//! and adjustments (here). `PUT /items/{sku}` sets the initial stock of a new
//! item and never the stock of an existing one: a `stock` that differs from
//! the current value is refused with 409 `stock-not-writable`, changing
//! nothing (the same value is accepted, so repeating a create is harmless).
//! Lost updates of name and price are prevented by optimistic concurrency:
//! `GET` and `PUT` answer the item's `ETag` (its version, which every change
//! of the row moves, reservations included), and a `PUT` with a stale
//! `If-Match` gets 412 `precondition-failed`, changing nothing. Every change
//! is on the stock ledger ([`crate::store`] states the invariant).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use glasshouse_contracts::{InvalidValue, Money, Sku};
use glasshouse_platform::auth::{BearerAuth, Role};
use glasshouse_platform::contract::{ANY, ApiContract, BODY, E400, E401, E403, E404, E409, E412, E422, E503, Problems};
use glasshouse_platform::cursor::{Cursors, invalid_cursor};
use glasshouse_platform::idempotency::{IdempotencyKey, stored_answer};
use glasshouse_platform::problem::{Problem, ProblemType};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::Data;
use poem::web::headers::{ETag, Header as _, IfMatch};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use sqlx::MySqlPool;

use crate::faults::Faults;
use crate::stock_low::LowStock;
use crate::store::{self, Applied, ChangeKind, Item, MAX_STOCK, Put, PutItem, StockChange};

/// 409: `PUT /items/{sku}` named a stock other than the existing item's.
/// Stock changes by restock and adjustment only, never by a value read earlier.
pub const STOCK_NOT_WRITABLE: ProblemType =
    ProblemType::new("stock-not-writable", "Stock of an existing item is changed by restock or adjustment only", StatusCode::CONFLICT);
/// 412: `If-Match` does not match the item's current `ETag` (or there is no item).
pub const PRECONDITION_FAILED: ProblemType =
    ProblemType::new("precondition-failed", "The item changed since it was read", StatusCode::PRECONDITION_FAILED);
/// 409: an adjustment would take stock below zero.
pub const INSUFFICIENT_STOCK: ProblemType =
    ProblemType::new("insufficient-stock", "Not enough stock for this adjustment", StatusCode::CONFLICT);

/// Longest item name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Highest unit price, in minor units: 50 lines x 1000 units of it still fit
/// an order total in `i64`, with room to spare.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;
/// Most units one restock may add (a typo must not add a billion).
pub const MAX_RESTOCK: i64 = 1_000_000;
/// Most units one adjustment may add or take off (same reasoning).
pub const MAX_ADJUSTMENT: i64 = 1_000_000;
/// Page size bounds of the listing; also the most SKUs of one batch read.
pub const MAX_PAGE: i64 = 100;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 20;

#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Price", deny_unknown_fields)]
pub struct PriceDto {
    /// Amount in minor units (cents), 0..=1000000000000.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    pub amount_minor: i64,
    /// ISO 4217 code, three upper-case letters.
    #[oai(validator(pattern = r"^[A-Z]{3}$", min_length = 3, max_length = 3))]
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Item")]
pub struct ItemDto {
    /// 1..=64 characters of `A-Z`, `0-9` and `-`.
    pub sku: String,
    pub name: String,
    /// Price of one unit.
    pub price: PriceDto,
    /// Units available to reserve now.
    pub stock: i64,
}

impl From<&Item> for ItemDto {
    fn from(i: &Item) -> Self {
        Self {
            sku: i.sku.clone(),
            name: i.name.clone(),
            price: PriceDto { amount_minor: i.price_minor, currency: i.currency.clone() },
            stock: i.stock,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "ItemPage", skip_serializing_if_is_none)]
pub struct ItemPage {
    /// In SKU order.
    pub items: Vec<ItemDto>,
    /// Pass as `cursor` for the next page; absent on the last page and for `skus=` reads.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "PutItemRequest", deny_unknown_fields, example)]
pub struct PutItemRequest {
    /// 1..=200 characters, not blank, no control characters.
    #[oai(validator(
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$",
        min_length = 1,
        max_length = 200
    ))]
    pub name: String,
    pub price: PriceDto,
    /// The initial stock when the item is created, 0..=1000000000; required
    /// then. On an existing item, leave it out: stock changes only by restock
    /// and adjustment. A value equal to the current stock is accepted; any
    /// other is a 409 `stock-not-writable` that changes nothing.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub stock: Option<i64>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "RestockRequest", deny_unknown_fields, example)]
pub struct RestockRequest {
    /// Units to add, 1..=1000000.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub quantity: i64,
}

/// Why stock is adjusted. The sign of `delta` must fit the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "AdjustmentReason", rename_all = "snake_case")]
pub enum AdjustmentReason {
    /// Units found unsellable: `delta` < 0.
    Damaged,
    /// Units missing: `delta` < 0.
    Lost,
    /// Units found that were not counted: `delta` > 0.
    Found,
    /// A stock count differs from the system: `delta` of either sign.
    CountCorrection,
}

impl AdjustmentReason {
    /// The reason as stored in `stock_adjustments.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Damaged => "damaged",
            Self::Lost => "lost",
            Self::Found => "found",
            Self::CountCorrection => store::REASON_COUNT_CORRECTION,
        }
    }

    /// Whether `delta` has a sign this reason allows (never 0).
    fn allows(self, delta: i64) -> bool {
        match self {
            Self::Damaged | Self::Lost => delta < 0,
            Self::Found => delta > 0,
            Self::CountCorrection => delta != 0,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "AdjustmentRequest", deny_unknown_fields, example)]
pub struct AdjustmentRequest {
    /// Units to add (positive) or take off (negative), 1..=1000000 either way;
    /// negative for `damaged` and `lost`, positive for `found`, either for
    /// `count_correction`. Never 0.
    #[oai(validator(minimum(value = "-1000000"), maximum(value = "1000000")))]
    pub delta: i64,
    pub reason: AdjustmentReason,
}

/// The errors each operation answers (see `glasshouse_platform::contract`).
const GET_ITEM_ERRORS: u32 = ANY | E404 | E422 | E503;
const LIST_ITEMS_ERRORS: u32 = ANY | E400 | E422 | E503;
const PUT_ITEM_ERRORS: u32 = ANY | BODY | E401 | E403 | E409 | E412;
const STOCK_CHANGE_ERRORS: u32 = ANY | BODY | E401 | E403 | E404 | E409;

impl poem_openapi::types::Example for PutItemRequest {
    fn example() -> Self {
        Self { name: "Sturdy Oak Lamp".into(), price: PriceDto { amount_minor: 1999, currency: "EUR".into() }, stock: Some(25) }
    }
}

impl poem_openapi::types::Example for RestockRequest {
    fn example() -> Self {
        Self { quantity: 10 }
    }
}

impl poem_openapi::types::Example for AdjustmentRequest {
    fn example() -> Self {
        Self { delta: -1, reason: AdjustmentReason::Damaged }
    }
}

#[derive(ApiResponse)]
pub enum GetItemResponse {
    /// The item, with its entity tag (pass it as `If-Match` to `PUT`).
    #[oai(status = 200)]
    Ok(Json<ItemDto>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum ItemPageResponse {
    /// The items found.
    #[oai(status = 200)]
    Ok(Json<ItemPage>),
}

#[derive(ApiResponse)]
pub enum PutItemResponse {
    /// The item was created, with its initial stock.
    #[oai(status = 201)]
    Created(Json<ItemDto>, #[oai(header = "Location")] String, #[oai(header = "ETag")] String),
    /// The item existed: its name and price are the request's now; its stock is untouched.
    #[oai(status = 200)]
    Updated(Json<ItemDto>, #[oai(header = "ETag")] String),
}

#[derive(ApiResponse)]
pub enum StockChangedResponse {
    /// The item after the change; a repeat with the same key gets the first answer again.
    #[oai(status = 200)]
    Ok(Json<ItemDto>),
}

/// What the handlers share.
pub struct ApiState {
    pub pool: MySqlPool,
    pub faults: Faults,
    pub low_stock: LowStock,
}

pub struct InventoryApi {
    pub state: Arc<ApiState>,
}

impl ApiContract for InventoryApi {}

/// A 422 naming the offending field.
fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::validation(detail).with_extension("field", field)
}

fn parse_sku(field: &str, s: &str) -> Result<Sku, Problem> {
    Sku::parse(s).map_err(|e| invalid(field, format!("{field}: {e}")))
}

fn validate_name(name: &str) -> Result<(), Problem> {
    let chars = name.chars().count();
    if name.trim().is_empty() {
        return Err(invalid("name", "name must not be empty or blank"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(invalid("name", format!("name has {chars} characters; at most {MAX_NAME_CHARS} are allowed")));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "name must not contain control characters"));
    }
    Ok(())
}

fn validate_price(p: &PriceDto) -> Result<Money, Problem> {
    let price = Money::parse(p.amount_minor, &p.currency)
        .map_err(|e: InvalidValue| invalid(&format!("price.{}", e.what()), format!("price: {e}")))?;
    if price.amount_minor() > MAX_PRICE_MINOR {
        return Err(invalid(
            "price.amount_minor",
            format!("price: amount_minor {} is above the maximum {MAX_PRICE_MINOR}", p.amount_minor),
        ));
    }
    Ok(price)
}

fn item_location(sku: &str) -> String {
    format!("/items/{sku}")
}

/// The strong entity tag of an item version, as sent in `ETag`: `"<version>"`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Parses `If-Match` (RFC 9110: `*` or a list of entity tags). Tags that are
/// not well-formed match nothing, so such a header fails the precondition
/// rather than being ignored.
fn parse_if_match(raw: Option<&str>) -> Result<Option<IfMatch>, Problem> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || invalid("If-Match", "If-Match must be `*` or a list of entity tags such as \"3\"");
    let value = HeaderValue::from_str(raw).map_err(|_| bad())?;
    IfMatch::decode(&mut std::iter::once(&value)).map(Some).map_err(|_| bad())
}

/// Strong comparison of `If-Match` with an item version.
fn matches(if_match: &IfMatch, version: i64) -> bool {
    ETag::from_str(&etag(version)).is_ok_and(|tag| if_match.precondition_passes(&tag))
}

/// A stored answer, as sent the first time.
fn replay(body: &str) -> Result<StockChangedResponse, Problem> {
    let dto: ItemDto = stored_answer(body)?;
    Ok(StockChangedResponse::Ok(Json(dto)))
}

/// The stored answer of a keyed stock change: the item after it.
fn answer(item: &Item) -> String {
    serde_json::to_string(&ItemDto::from(item)).unwrap_or_default()
}

impl InventoryApi {
    /// Applies a validated restock or adjustment and turns its outcome into
    /// the answer; `field` is the request member a refusal names.
    async fn change_stock(&self, change: StockChange<'_>, field: &str) -> Result<StockChangedResponse, Problem> {
        let sku = change.sku.as_str();
        let done = store::apply_change(&self.state.pool, &change, answer)
            .await
            .map_err(|e| Problem::internal(anyhow::Error::new(e).context("change stock")))?;
        let delta = match change.kind {
            ChangeKind::Restock { quantity } => i64::from(quantity),
            ChangeKind::Adjustment { delta, .. } => delta,
        };
        match done {
            Applied::Done(body) => {
                self.state.low_stock.changed();
                match change.kind {
                    ChangeKind::Restock { quantity } => tracing::info!(sku, quantity, "item restocked"),
                    ChangeKind::Adjustment { delta, reason } => tracing::info!(sku, delta, reason, "stock adjusted"),
                }
                replay(&body)
            }
            Applied::Prior(prior) => prior.respond(replay),
            Applied::UnknownSku => Err(Problem::not_found(format!("no item with SKU {sku}"))),
            Applied::BelowZero(stock) => Err(Problem::new(INSUFFICIENT_STOCK)
                .with_detail(format!("stock of {sku} is {stock}; {delta} would take it below zero"))
                .with_extension("stock", stock)),
            Applied::AboveMax(stock) => Err(invalid(field, format!("stock {stock} + {delta} would pass the maximum {MAX_STOCK}"))),
        }
    }
}

#[OpenApi]
impl InventoryApi {
    /// Get one catalog item (public).
    ///
    /// The `ETag` header is the item's version: every change of the item
    /// (name, price, stock; reservations too) gives it a new one.
    #[oai(path = "/items/:sku", method = "get", operation_id = "getItem")]
    async fn get_item(
        &self,
        /// 1..=64 characters of `A-Z`, `0-9` and `-` (anything else is a 422).
        #[oai(validator(pattern = r"^[A-Z0-9-]+$", min_length = 1, max_length = 64))]
        sku: Path<String>,
    ) -> Result<GetItemResponse, Problems<GET_ITEM_ERRORS>> {
        self.state.faults.catalog().await?;
        let sku = parse_sku("sku", &sku.0)?;
        let item = store::get_item(&self.state.pool, &sku).await.map_err(Problem::internal)?;
        let item = item.ok_or_else(|| Problem::not_found(format!("no item with SKU {}", sku.as_str())))?;
        Ok(GetItemResponse::Ok(Json(ItemDto::from(&item)), etag(item.version)))
    }

    /// Read the catalog (public): either the items named in `skus` (a batch
    /// read; unknown SKUs are simply absent), or a page of all items in SKU
    /// order (`cursor`, `limit`).
    #[oai(path = "/items", method = "get", operation_id = "listItems")]
    async fn list_items(
        &self,
        /// Comma-separated SKUs, 1..=100 of them (e.g. `A-1,B-2`), each
        /// 1..=64 characters (a longer one is a 422 naming it). Not
        /// combinable with `cursor` or `limit` (422).
        #[oai(validator(pattern = r"^[A-Z0-9-]+(,[A-Z0-9-]+){0,99}$", min_length = 1, max_length = 6499))]
        skus: Query<Option<String>>,
        /// `next_cursor` of the previous page, as given (any other value is a
        /// 422 `invalid-cursor`).
        #[oai(validator(pattern = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", max_length = 512))]
        cursor: Query<Option<String>>,
        /// Page size, 1..=100, default 20.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i64>>,
        cursors: Data<&Cursors>,
    ) -> Result<ItemPageResponse, Problems<LIST_ITEMS_ERRORS>> {
        self.state.faults.catalog().await?;
        if let Some(list) = skus.0 {
            if cursor.0.is_some() || limit.0.is_some() {
                return Err(Problems::from(invalid("skus", "skus cannot be combined with cursor or limit")));
            }
            let wanted: BTreeSet<Sku> = list.split(',').map(|s| parse_sku("skus", s)).collect::<Result<_, _>>()?;
            if wanted.len() as i64 > MAX_PAGE {
                return Err(Problems::from(invalid("skus", format!("at most {MAX_PAGE} SKUs per read, got {}", wanted.len()))));
            }
            let wanted: Vec<Sku> = wanted.into_iter().collect();
            let items = store::get_items(&self.state.pool, &wanted).await.map_err(Problem::internal)?;
            return Ok(ItemPageResponse::Ok(Json(ItemPage { items: items.iter().map(ItemDto::from).collect(), next_cursor: None })));
        }
        let limit = limit.0.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problems::from(invalid("limit", format!("limit must be within 1..={MAX_PAGE}, got {limit}"))));
        }
        // The cursor is the last SKU of the previous page, sealed by `Cursors`.
        let after =
            cursor.0.as_deref().map(|c| cursors.open("items", c).and_then(|p| Sku::parse(&p).map_err(|_| invalid_cursor()))).transpose()?;
        let mut items = store::list_items(&self.state.pool, after.as_ref(), limit + 1).await.map_err(Problem::internal)?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|i| cursors.seal("items", &i.sku))
        } else {
            None
        };
        Ok(ItemPageResponse::Ok(Json(ItemPage { items: items.iter().map(ItemDto::from).collect(), next_cursor })))
    }

    /// Create an item, or change an existing item's name and price (admin).
    ///
    /// Create (201, `Location`): `stock` is required and is the initial stock
    /// (recorded on the stock ledger as reason `initial`). Update (200): name
    /// and price are replaced; the stock is never changed: leave `stock` out
    /// (the current value is accepted, any other is 409 `stock-not-writable`).
    /// Stock changes only by restock and adjustment. With `If-Match`, the
    /// write happens only if the item's current `ETag` matches (strong
    /// comparison; `*` matches any existing item); otherwise 412
    /// `precondition-failed` with the current `ETag`, and nothing changes.
    /// Without `If-Match` the write is unconditional. A refused request
    /// changes nothing.
    #[oai(path = "/items/:sku", method = "put", operation_id = "putItem")]
    async fn put_item(
        &self,
        auth: BearerAuth,
        /// 1..=64 characters of `A-Z`, `0-9` and `-`.
        #[oai(validator(pattern = r"^[A-Z0-9-]+$", min_length = 1, max_length = 64))]
        sku: Path<String>,
        /// Optional: the `ETag` of the item as read (`"<version>"`), or `*`
        /// (anything else fails the precondition: 422).
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: Json<PutItemRequest>,
    ) -> Result<PutItemResponse, Problems<PUT_ITEM_ERRORS>> {
        auth.0.require(Role::Admin)?;
        let sku = parse_sku("sku", &sku.0)?;
        let if_match = parse_if_match(if_match.0.as_deref())?;
        let req = body.0;
        validate_name(&req.name)?;
        let price = validate_price(&req.price)?;
        if let Some(stock) = req.stock
            && !(0..=MAX_STOCK).contains(&stock)
        {
            return Err(Problems::from(invalid("stock", format!("stock must be within 0..={MAX_STOCK}, got {stock}"))));
        }
        let put = PutItem {
            sku: sku.as_str().to_owned(),
            name: req.name,
            price_minor: price.amount_minor(),
            currency: price.currency().as_str().to_owned(),
            stock: req.stock,
        };
        let check = if_match.map(|m| move |version: i64| matches(&m, version));
        let done = store::put_item(&self.state.pool, &put, check.as_ref().map(|f| f as &(dyn Fn(i64) -> bool + Sync)))
            .await
            .map_err(|e| Problem::internal(anyhow::Error::new(e).context("put item")))?;
        match done {
            Put::Created(i) => {
                self.state.low_stock.changed();
                tracing::info!(sku = %i.sku, stock = i.stock, "item created");
                Ok(PutItemResponse::Created(Json(ItemDto::from(&i)), item_location(&i.sku), etag(i.version)))
            }
            Put::Updated(i) => {
                tracing::info!(sku = %i.sku, version = i.version, "item name and price set");
                Ok(PutItemResponse::Updated(Json(ItemDto::from(&i)), etag(i.version)))
            }
            Put::PreconditionFailed(None) => Err(Problems::from(
                Problem::new(PRECONDITION_FAILED).with_detail(format!("If-Match was given but there is no item with SKU {}", sku.as_str())),
            )),
            Put::PreconditionFailed(Some(current)) => {
                let tag = etag(current.version);
                let problem = Problem::new(PRECONDITION_FAILED)
                    .with_detail(format!("the item changed since it was read: its ETag is {tag} now; read it again"))
                    .with_extension("etag", &tag);
                // A version's tag is always a valid header value.
                Err(Problems::from(match HeaderValue::from_str(&tag) {
                    Ok(v) => problem.with_header(header::ETAG, v),
                    Err(_) => problem,
                }))
            }
            Put::StockRequired => Err(Problems::from(invalid("stock", format!("stock is required to create item {}", sku.as_str())))),
            Put::StockNotWritable(current) => Err(Problems::from(
                Problem::new(STOCK_NOT_WRITABLE)
                    .with_detail(format!(
                        "stock of {} is {}; PUT does not change the stock of an existing item: leave stock out, and use \
                     POST /items/{{sku}}/restock or /adjustments to change it",
                        sku.as_str(),
                        current.stock
                    ))
                    .with_extension("stock", current.stock),
            )),
        }
    }

    /// Add stock to an item (admin).
    ///
    /// Repeating the request with the same `Idempotency-Key` and body returns
    /// the same answer and adds nothing; the same key with another SKU or
    /// quantity is a 422 `idempotency-key-reused`. Recorded on the stock
    /// ledger (`restocks`). Stock may not pass 1000000000 (422).
    #[oai(path = "/items/:sku/restock", method = "post", operation_id = "restockItem")]
    async fn restock(
        &self,
        auth: BearerAuth,
        /// An existing item's SKU.
        #[oai(validator(pattern = r"^[A-Z0-9-]+$", min_length = 1, max_length = 64))]
        sku: Path<String>,
        /// 1..=255 visible ASCII characters; one key per restock.
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]+$", min_length = 1, max_length = 255))]
        key: Header<String>,
        body: Json<RestockRequest>,
    ) -> Result<StockChangedResponse, Problems<STOCK_CHANGE_ERRORS>> {
        auth.0.require(Role::Admin)?;
        let sku = parse_sku("sku", &sku.0)?;
        let key = IdempotencyKey::parse(&key.0)?;
        let quantity = body.0.quantity;
        if !(1..=MAX_RESTOCK).contains(&quantity) {
            return Err(Problems::from(invalid("quantity", format!("quantity must be within 1..={MAX_RESTOCK}, got {quantity}"))));
        }
        let change = StockChange { idempotency_key: &key, sku: &sku, kind: ChangeKind::Restock { quantity: quantity as u32 } };
        Ok(self.change_stock(change, "quantity").await?)
    }

    /// Adjust an item's stock by a delta, for a reason (admin).
    ///
    /// For stock found damaged or lost (`delta` < 0), found (`delta` > 0), or
    /// a count that differs from the system (`count_correction`, either
    /// sign). Recorded on the stock ledger (`stock_adjustments`). Stock never
    /// goes below zero: such an adjustment is a 409 `insufficient-stock` (with
    /// the current `stock`) and changes nothing; above 1000000000 is a 422.
    /// Repeating the request with the same `Idempotency-Key` and body returns
    /// the same answer and changes nothing more; the same key with another
    /// SKU, delta or reason is a 422 `idempotency-key-reused`. A refused
    /// adjustment does not use up its key.
    #[oai(path = "/items/:sku/adjustments", method = "post", operation_id = "adjustItem")]
    async fn adjust(
        &self,
        auth: BearerAuth,
        /// An existing item's SKU.
        #[oai(validator(pattern = r"^[A-Z0-9-]+$", min_length = 1, max_length = 64))]
        sku: Path<String>,
        /// 1..=255 visible ASCII characters; one key per adjustment.
        #[oai(name = "Idempotency-Key", validator(pattern = r"^[!-~]+$", min_length = 1, max_length = 255))]
        key: Header<String>,
        body: Json<AdjustmentRequest>,
    ) -> Result<StockChangedResponse, Problems<STOCK_CHANGE_ERRORS>> {
        auth.0.require(Role::Admin)?;
        let sku = parse_sku("sku", &sku.0)?;
        let key = IdempotencyKey::parse(&key.0)?;
        let AdjustmentRequest { delta, reason } = body.0;
        if delta == 0 || delta.unsigned_abs() > MAX_ADJUSTMENT as u64 {
            return Err(Problems::from(invalid("delta", format!("delta must be within 1..={MAX_ADJUSTMENT} either way, got {delta}"))));
        }
        if !reason.allows(delta) {
            let want = match reason {
                AdjustmentReason::Damaged | AdjustmentReason::Lost => "negative",
                AdjustmentReason::Found => "positive",
                AdjustmentReason::CountCorrection => "non-zero",
            };
            return Err(Problems::from(invalid("delta", format!("delta must be {want} for reason {}, got {delta}", reason.as_str()))));
        }
        let change = StockChange { idempotency_key: &key, sku: &sku, kind: ChangeKind::Adjustment { delta, reason: reason.as_str() } };
        Ok(self.change_stock(change, "delta").await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_strongly_and_bad_tags_match_nothing() {
        let m = |raw: &str| parse_if_match(Some(raw)).unwrap().unwrap();
        assert!(matches(&m("\"3\""), 3));
        assert!(!matches(&m("\"3\""), 4));
        assert!(matches(&m("\"1\", \"3\""), 3));
        assert!(matches(&m("*"), 17));
        assert!(!matches(&m("W/\"3\""), 3), "weak tags never match strongly");
        assert!(!matches(&m("3"), 3), "an unquoted tag is no entity tag");
        assert!(parse_if_match(None).unwrap().is_none());
    }

    /// What Inventory serves names exactly the committed schemas' fields
    /// (Order's client is generated from those schemas: services/order/build.rs).
    #[test]
    fn the_served_catalog_names_exactly_the_contracts_fields() {
        let dto =
            ItemDto { sku: "CAT-C".into(), name: "Cup".into(), price: PriceDto { amount_minor: 1250, currency: "EUR".into() }, stock: 3 };
        let page = ItemPage { items: vec![dto], next_cursor: Some("c".into()) };
        let served = poem_openapi::types::ToJSON::to_json(&page).unwrap();

        let spec: serde_yaml::Value = serde_yaml::from_str(include_str!("../openapi.yaml")).unwrap();
        let fields = |schema: &str, key: &str| -> Vec<String> {
            let s = &spec["components"]["schemas"][schema][key];
            let mut names: Vec<String> = match s {
                serde_yaml::Value::Sequence(v) => v.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
                serde_yaml::Value::Mapping(m) => m.keys().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
            names.sort();
            names
        };
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let item = served["items"][0].clone();
        for (schema, json) in [("ItemPage", served), ("Item", item.clone()), ("Price", item["price"].clone())] {
            assert_eq!(fields(schema, "properties"), keys(&json), "{schema}");
        }
        assert_eq!(fields("ItemPage", "required"), ["items"], "next_cursor is optional");
        assert_eq!(fields("Item", "required"), keys(&item));
    }

    #[test]
    fn reasons_fix_the_sign() {
        use AdjustmentReason::*;
        for (reason, delta, ok) in [
            (Damaged, -1, true),
            (Damaged, 1, false),
            (Lost, -5, true),
            (Lost, 5, false),
            (Found, 2, true),
            (Found, -2, false),
            (CountCorrection, -3, true),
            (CountCorrection, 3, true),
            (CountCorrection, 0, false),
        ] {
            assert_eq!(reason.allows(delta), ok, "{reason:?} {delta}");
        }
    }
}
