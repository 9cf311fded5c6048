//! `Quantity`: how many units of one SKU a line asks for.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::invalid::InvalidValue;

/// A line quantity, 1 to 1000 units.
///
/// The upper bound keeps `unit price x quantity` far from `i64` overflow and
/// stops a typo (10000 instead of 10) from reserving a warehouse; zero is not
/// a line, it is the absence of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// Smallest accepted quantity.
    pub const MIN: u32 = 1;
    /// Largest accepted quantity.
    pub const MAX: u32 = 1000;

    /// Validates `n` as a quantity.
    pub fn new(n: u32) -> Result<Self, InvalidValue> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(InvalidValue::new("quantity", format!("{n} is outside {}..={}", Self::MIN, Self::MAX)))
        }
    }

    /// Parses a decimal quantity (e.g. from a query string or CLI flag).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let n: u32 =
            s.trim().parse().map_err(|_| InvalidValue::new("quantity", format!("{} is not a whole number", crate::invalid::quoted(s))))?;
        Self::new(n)
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = InvalidValue;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl TryFrom<i64> for Quantity {
    type Error = InvalidValue;
    /// For database rows, where integers come back as `i64`.
    fn try_from(n: i64) -> Result<Self, Self::Error> {
        let n = u32::try_from(n).map_err(|_| InvalidValue::new("quantity", format!("{n} is outside {}..={}", Self::MIN, Self::MAX)))?;
        Self::new(n)
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> Self {
        q.0
    }
}

impl From<Quantity> for i64 {
    fn from(q: Quantity) -> Self {
        i64::from(q.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Units of one SKU, 1 to 1000.",
            "type": "integer",
            "minimum": Quantity::MIN,
            "maximum": Quantity::MAX
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(1000).unwrap().get(), 1000);
        assert!(Quantity::new(0).unwrap_err().reason().contains("outside 1..=1000"));
        assert!(Quantity::new(1001).is_err());
    }

    #[test]
    fn parse_names_the_bad_text() {
        let err = Quantity::parse("ten").unwrap_err();
        assert_eq!(err.to_string(), "invalid quantity: \"ten\" is not a whole number");
        assert_eq!(Quantity::parse(" 7 ").unwrap().get(), 7);
    }

    #[test]
    fn serde_refuses_out_of_range_and_non_integers() {
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("-3").is_err());
        assert!(serde_json::from_str::<Quantity>("2.5").is_err());
        assert!(serde_json::from_str::<Quantity>("\"5\"").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("5").unwrap().get(), 5);
    }

    proptest! {
        #[test]
        fn new_agrees_with_the_range(n in any::<u32>()) {
            prop_assert_eq!(Quantity::new(n).is_ok(), (1..=1000).contains(&n));
        }

        #[test]
        fn from_i64_agrees_with_the_range(n in any::<i64>()) {
            prop_assert_eq!(Quantity::try_from(n).is_ok(), (1..=1000).contains(&n));
        }

        #[test]
        fn json_round_trip(n in 1u32..=1000) {
            let q = Quantity::new(n).unwrap();
            let back: Quantity = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
            prop_assert_eq!(back, q);
        }
    }
}
