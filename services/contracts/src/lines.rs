//! Line items carried by events, and `NonEmpty`, the list that cannot be empty.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize, Serializer};

use crate::invalid::InvalidValue;
use crate::money::Money;
use crate::quantity::Quantity;
use crate::sku::Sku;

/// A list with at least one element.
///
/// An order without lines, a reservation of nothing or an "out of stock"
/// rejection naming no SKU are always producer bugs; refusing them at parse
/// time keeps consumers free of `if lines.is_empty()` branches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "Vec<T>")]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct NonEmpty<T>(Vec<T>);

impl<T> NonEmpty<T> {
    /// Validates that `items` has at least one element.
    pub fn new(items: Vec<T>) -> Result<Self, InvalidValue> {
        if items.is_empty() { Err(InvalidValue::new("list", "must have at least one element")) } else { Ok(Self(items)) }
    }

    /// A list of exactly one element (cannot fail).
    pub fn one(item: T) -> Self {
        Self(vec![item])
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// The elements, owned.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    /// Iterates over the elements.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// Number of elements (at least 1).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> TryFrom<Vec<T>> for NonEmpty<T> {
    type Error = InvalidValue;
    fn try_from(v: Vec<T>) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl<T> From<NonEmpty<T>> for Vec<T> {
    fn from(n: NonEmpty<T>) -> Self {
        n.0
    }
}

impl<'a, T> IntoIterator for &'a NonEmpty<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Serialize> Serialize for NonEmpty<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for NonEmpty<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("NonEmpty_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let items = generator.subschema_for::<T>();
        json_schema!({
            "type": "array",
            "minItems": 1,
            "items": items
        })
    }
}

/// One line of an order as the customer bought it, priced by Inventory at
/// order time (the price is frozen in the event so later price changes do not
/// rewrite history).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    /// What was ordered.
    pub sku: Sku,
    /// How many units.
    pub quantity: Quantity,
    /// Price of one unit when the order was taken.
    pub unit_price: Money,
}

/// A SKU and a number of units, as reserved or released by Inventory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct StockLine {
    /// Which stock item.
    pub sku: Sku,
    /// How many units were reserved or released.
    pub quantity: Quantity,
}

/// A line Inventory could not fill, with what it had, so the customer can be
/// told "3 requested, 1 available" instead of just "no".
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ShortLine {
    /// The SKU that is short.
    pub sku: Sku,
    /// Units the order asked for.
    pub requested: Quantity,
    /// Units in stock when the reservation was attempted (may be 0 and may
    /// exceed 1000, hence not a `Quantity`).
    #[schemars(range(max = u32::MAX))]
    pub available: u32,
}
