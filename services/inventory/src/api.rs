//! The Inventory HTTP API (poem-openapi; the served spec must equal the
//! committed `services/inventory/openapi.yaml`).
//!
//! Catalog reads are public (Order prices lines with them, the load runner
//! lists the catalog); writes need the `admin` role.

use std::collections::BTreeSet;
use std::sync::Arc;

use glasshouse_contracts::{InvalidValue, Money, Sku};
use glasshouse_platform::auth::{BearerAuth, Role};
use glasshouse_platform::problem::{Problem, ProblemType};
use poem::http::StatusCode;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sqlx::MySqlPool;

use crate::faults::Faults;
use crate::stock_low::LowStock;
use crate::store::{self, Item, MAX_STOCK, RestockRequest as StoredRestock, Restocked, Upserted};

/// 422: the same Idempotency-Key was used with a different request.
pub const IDEMPOTENCY_KEY_REUSED: ProblemType =
    ProblemType::new("idempotency-key-reused", "Idempotency key reused with a different request", StatusCode::UNPROCESSABLE_ENTITY);

/// Longest item name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Highest unit price, in minor units: 50 lines x 1000 units of it still fit
/// an order total in `i64`, with room to spare.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;
/// Most units one restock may add (a typo must not add a billion).
pub const MAX_RESTOCK: i64 = 1_000_000;
/// Page size bounds of the listing; also the most SKUs of one batch read.
pub const MAX_PAGE: i64 = 100;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 20;

#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Price")]
pub struct PriceDto {
    /// Amount in minor units (cents), 0..=1000000000000.
    pub amount_minor: i64,
    /// ISO 4217 code, three upper-case letters.
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
#[oai(rename = "ItemPage")]
pub struct ItemPage {
    /// In SKU order.
    pub items: Vec<ItemDto>,
    /// Pass as `cursor` for the next page; null on the last page and for `skus=` reads.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "PutItemRequest", deny_unknown_fields)]
pub struct PutItemRequest {
    /// 1..=200 characters, not blank, no control characters.
    pub name: String,
    pub price: PriceDto,
    /// Units available, 0..=1000000000. Replaces the current stock.
    pub stock: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(rename = "RestockRequest", deny_unknown_fields)]
pub struct RestockRequest {
    /// Units to add, 1..=1000000.
    pub quantity: i64,
}

#[derive(ApiResponse)]
pub enum ItemResponse {
    /// The item.
    #[oai(status = 200)]
    Ok(Json<ItemDto>),
}

#[derive(ApiResponse)]
pub enum ItemPageResponse {
    /// The items found.
    #[oai(status = 200)]
    Ok(Json<ItemPage>),
}

#[derive(ApiResponse)]
pub enum PutItemResponse {
    /// The item was created.
    #[oai(status = 201)]
    Created(Json<ItemDto>, #[oai(header = "Location")] String),
    /// The item existed and was replaced.
    #[oai(status = 200)]
    Updated(Json<ItemDto>),
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

fn validate_key(key: &str) -> Result<(), Problem> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid("Idempotency-Key", "Idempotency-Key must be 1..=255 visible ASCII characters"))
    }
}

fn item_location(sku: &str) -> String {
    format!("/items/{sku}")
}

/// A stored restock answer, as sent the first time.
fn replay(body: &str) -> Result<ItemResponse, Problem> {
    let dto: ItemDto =
        serde_json::from_str(body).map_err(|e| Problem::internal(anyhow::anyhow!("stored restock answer does not parse: {e}")))?;
    Ok(ItemResponse::Ok(Json(dto)))
}

#[OpenApi]
impl InventoryApi {
    /// Get one catalog item (public).
    #[oai(path = "/items/:sku", method = "get", operation_id = "getItem")]
    async fn get_item(
        &self,
        /// 1..=64 characters of `A-Z`, `0-9` and `-` (anything else is a 422).
        sku: Path<String>,
    ) -> Result<ItemResponse, Problem> {
        self.state.faults.catalog().await?;
        let sku = parse_sku("sku", &sku.0)?;
        let item = store::get_item(&self.state.pool, &sku).await.map_err(Problem::internal)?;
        let item = item.ok_or_else(|| Problem::not_found(format!("no item with SKU {}", sku.as_str())))?;
        Ok(ItemResponse::Ok(Json(ItemDto::from(&item))))
    }

    /// Read the catalog (public): either the items named in `skus` (a batch
    /// read; unknown SKUs are simply absent), or a page of all items in SKU
    /// order (`cursor`, `limit`).
    #[oai(path = "/items", method = "get", operation_id = "listItems")]
    async fn list_items(
        &self,
        /// Comma-separated SKUs, at most 100 (e.g. `A-1,B-2`). Not combinable with `cursor` or `limit`.
        skus: Query<Option<String>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// 1..=100, default 20.
        limit: Query<Option<i64>>,
    ) -> Result<ItemPageResponse, Problem> {
        self.state.faults.catalog().await?;
        if let Some(list) = skus.0 {
            if cursor.0.is_some() || limit.0.is_some() {
                return Err(invalid("skus", "skus cannot be combined with cursor or limit"));
            }
            let wanted: BTreeSet<Sku> = list.split(',').map(|s| parse_sku("skus", s)).collect::<Result<_, _>>()?;
            if wanted.len() as i64 > MAX_PAGE {
                return Err(invalid("skus", format!("at most {MAX_PAGE} SKUs per read, got {}", wanted.len())));
            }
            let wanted: Vec<Sku> = wanted.into_iter().collect();
            let items = store::get_items(&self.state.pool, &wanted).await.map_err(Problem::internal)?;
            return Ok(ItemPageResponse::Ok(Json(ItemPage { items: items.iter().map(ItemDto::from).collect(), next_cursor: None })));
        }
        let limit = limit.0.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(invalid("limit", format!("limit must be within 1..={MAX_PAGE}, got {limit}")));
        }
        // The cursor is the last SKU of the previous page.
        let after =
            cursor.0.as_deref().map(|c| Sku::parse(c).map_err(|_| invalid("cursor", "cursor is not one this API gave out"))).transpose()?;
        let mut items = store::list_items(&self.state.pool, after.as_ref(), limit + 1).await.map_err(Problem::internal)?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|i| i.sku.clone())
        } else {
            None
        };
        Ok(ItemPageResponse::Ok(Json(ItemPage { items: items.iter().map(ItemDto::from).collect(), next_cursor })))
    }

    /// Create or replace an item (admin): name, price and stock.
    #[oai(path = "/items/:sku", method = "put", operation_id = "putItem")]
    async fn put_item(
        &self,
        auth: BearerAuth,
        /// 1..=64 characters of `A-Z`, `0-9` and `-`.
        sku: Path<String>,
        body: Json<PutItemRequest>,
    ) -> Result<PutItemResponse, Problem> {
        auth.0.require(Role::Admin)?;
        let sku = parse_sku("sku", &sku.0)?;
        let req = body.0;
        validate_name(&req.name)?;
        let price = validate_price(&req.price)?;
        if !(0..=MAX_STOCK).contains(&req.stock) {
            return Err(invalid("stock", format!("stock must be within 0..={MAX_STOCK}, got {}", req.stock)));
        }
        let item = Item {
            sku: sku.as_str().to_owned(),
            name: req.name,
            price_minor: price.amount_minor(),
            currency: price.currency().as_str().to_owned(),
            stock: req.stock,
        };
        let done = store::upsert_item(&self.state.pool, &item)
            .await
            .map_err(|e| Problem::internal(anyhow::Error::new(e).context("upsert item")))?;
        self.state.low_stock.changed();
        Ok(match done {
            Upserted::Created(i) => {
                tracing::info!(sku = %i.sku, stock = i.stock, "item created");
                PutItemResponse::Created(Json(ItemDto::from(&i)), item_location(&i.sku))
            }
            Upserted::Updated(i) => {
                tracing::info!(sku = %i.sku, stock = i.stock, "item replaced");
                PutItemResponse::Updated(Json(ItemDto::from(&i)))
            }
        })
    }

    /// Add stock to an item (admin). Repeating the request with the same
    /// `Idempotency-Key` and body returns the same answer and adds nothing;
    /// the same key with another SKU or quantity is a 422.
    #[oai(path = "/items/:sku/restock", method = "post", operation_id = "restockItem")]
    async fn restock(
        &self,
        auth: BearerAuth,
        /// An existing item's SKU.
        sku: Path<String>,
        /// 1..=255 visible ASCII characters; one key per restock.
        #[oai(name = "Idempotency-Key")]
        key: Header<String>,
        body: Json<RestockRequest>,
    ) -> Result<ItemResponse, Problem> {
        auth.0.require(Role::Admin)?;
        let sku = parse_sku("sku", &sku.0)?;
        validate_key(&key.0)?;
        let quantity = body.0.quantity;
        if !(1..=MAX_RESTOCK).contains(&quantity) {
            return Err(invalid("quantity", format!("quantity must be within 1..={MAX_RESTOCK}, got {quantity}")));
        }
        let req = StoredRestock { idempotency_key: &key.0, sku: &sku, quantity: quantity as u32 };
        let answer = |i: &Item| serde_json::to_string(&ItemDto::from(i)).unwrap_or_default();
        let done = store::restock(&self.state.pool, &req, answer)
            .await
            .map_err(|e| Problem::internal(anyhow::Error::new(e).context("restock")))?;
        match done {
            Restocked::Done(body) => {
                self.state.low_stock.changed();
                tracing::info!(sku = %sku.as_str(), quantity, "item restocked");
                replay(&body)
            }
            Restocked::Replay(body) => replay(&body),
            Restocked::KeyReused => {
                Err(Problem::new(IDEMPOTENCY_KEY_REUSED).with_detail("this Idempotency-Key was used with a different request"))
            }
            Restocked::UnknownSku => Err(Problem::not_found(format!("no item with SKU {}", sku.as_str()))),
            Restocked::TooMuch(stock) => Err(invalid("quantity", format!("stock {stock} + {quantity} would pass the maximum {MAX_STOCK}"))),
        }
    }
}
