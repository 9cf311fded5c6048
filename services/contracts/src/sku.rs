//! `Sku`: a stock-keeping unit code as both services spell it.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, quoted};

/// A stock-keeping unit: 1 to 64 characters out of `A-Z`, `0-9` and `-`.
///
/// Upper case only, and no normalising: Order and Inventory compare SKUs as
/// byte strings (and MariaDB compares case-insensitively by default), so one
/// canonical spelling is enforced at the edge instead of hoping both agree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    /// Longest accepted SKU, in characters (and bytes: the alphabet is ASCII).
    pub const MAX_LEN: usize = 64;

    /// Validates `s` as a SKU.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() {
            return Err(InvalidValue::new("sku", "must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidValue::new("sku", format!("{} is longer than {} characters", quoted(s), Self::MAX_LEN)));
        }
        if let Some(bad) = s.chars().find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(InvalidValue::new("sku", format!("{} contains {bad:?}; only A-Z, 0-9 and '-' are allowed", quoted(s))));
        }
        Ok(Self(s.to_owned()))
    }

    /// The SKU as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sku {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for Sku {
    type Error = InvalidValue;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl std::str::FromStr for Sku {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<Sku> for String {
    fn from(s: Sku) -> Self {
        s.0
    }
}

impl AsRef<str> for Sku {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Sku {
    fn schema_name() -> Cow<'static, str> {
        "Sku".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Stock-keeping unit: 1 to 64 characters out of A-Z, 0-9 and '-'.",
            "type": "string",
            "pattern": "^[A-Z0-9-]{1,64}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_typical_skus() {
        for s in ["A", "SKU-1", "0", "ABC-123-XYZ", &"Z".repeat(64)] {
            assert_eq!(Sku::parse(s).expect(s).as_str(), s);
        }
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert!(Sku::parse("").unwrap_err().reason().contains("empty"));
        assert!(Sku::parse(&"A".repeat(65)).unwrap_err().reason().contains("longer"));
        for s in ["sku-1", "A B", "A_B", "Ä", "A\n", "A.B"] {
            let err = Sku::parse(s).unwrap_err();
            assert_eq!(err.what(), "sku");
            assert!(err.reason().contains("only A-Z"), "{s:?}: {err}");
        }
    }

    #[test]
    fn serde_refuses_invalid_and_round_trips_valid() {
        assert!(serde_json::from_str::<Sku>("\"bad sku\"").is_err());
        assert!(serde_json::from_str::<Sku>("42").is_err());
        let sku: Sku = serde_json::from_str("\"AB-1\"").unwrap();
        assert_eq!(serde_json::to_string(&sku).unwrap(), "\"AB-1\"");
    }

    proptest! {
        #[test]
        fn every_string_of_the_alphabet_is_accepted(s in "[A-Z0-9-]{1,64}") {
            let sku = Sku::parse(&s).unwrap();
            prop_assert_eq!(sku.as_str(), s.as_str());
        }

        #[test]
        fn parse_agrees_with_the_rule_for_any_string(s in any::<String>()) {
            let rule = (1..=64).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
            prop_assert_eq!(Sku::parse(&s).is_ok(), rule);
        }
    }
}
