//! `Money` and `Currency`: amounts in minor units, never floating point.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, quoted};
use crate::quantity::Quantity;

/// An ISO 4217 alphabetic currency code: three upper-case ASCII letters.
///
/// Only the shape is checked, not membership in the ISO list: the list changes,
/// and the services never convert between currencies, they only refuse to add
/// different ones (see [`Money::checked_add`]). Stored as three bytes so
/// `Money` stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Validates `s` as a currency code.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(InvalidValue::new("currency", format!("{} is not a three-letter upper-case ISO 4217 code", quoted(s)))),
        }
    }

    /// The code as text, e.g. `EUR`.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII upper-case letters by construction; the fallback
        // is unreachable but keeps this free of panics.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for Currency {
    type Error = InvalidValue;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl std::str::FromStr for Currency {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

impl JsonSchema for Currency {
    fn schema_name() -> Cow<'static, str> {
        "Currency".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "ISO 4217 alphabetic code (shape checked, not list membership).",
            "type": "string",
            "pattern": "^[A-Z]{3}$"
        })
    }
}

/// Why two amounts could not be combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Adding EUR to USD is a bug upstream, not something to round away.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// The result does not fit an `i64` of minor units.
    #[error("amount overflows i64 minor units")]
    Overflow,
}

/// A non-negative amount in minor units (cents for EUR) of one currency.
///
/// Integers, because floating point cannot represent 0.10 and sums of prices
/// must be exact. Never negative: prices and totals are not refunds, and a
/// negative amount arriving over HTTP or Kafka is always a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyWire")]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

/// The unvalidated wire form of [`Money`]; `try_from` checks it.
#[derive(Deserialize)]
struct MoneyWire {
    amount_minor: i64,
    currency: Currency,
}

impl TryFrom<MoneyWire> for Money {
    type Error = InvalidValue;
    fn try_from(w: MoneyWire) -> Result<Self, Self::Error> {
        Money::new(w.amount_minor, w.currency)
    }
}

impl Money {
    /// Validates `amount_minor >= 0`.
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, InvalidValue> {
        if amount_minor < 0 {
            return Err(InvalidValue::new("amount_minor", format!("{amount_minor} is negative")));
        }
        Ok(Self { amount_minor, currency })
    }

    /// Validates both parts from text, e.g. `Money::parse(1999, "EUR")`.
    pub fn parse(amount_minor: i64, currency: &str) -> Result<Self, InvalidValue> {
        Self::new(amount_minor, Currency::parse(currency)?)
    }

    /// Zero in `currency`: the start of a sum.
    pub fn zero(currency: Currency) -> Self {
        Self { amount_minor: 0, currency }
    }

    /// Amount in minor units.
    pub fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// Currency of the amount.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// `self + other`, refusing mixed currencies and overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency });
        }
        let amount_minor = self.amount_minor.checked_add(other.amount_minor).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount_minor, currency: self.currency })
    }

    /// `self x quantity`: the price of a line.
    pub fn checked_mul(self, quantity: Quantity) -> Result<Money, MoneyError> {
        let amount_minor = self.amount_minor.checked_mul(i64::from(quantity)).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount_minor, currency: self.currency })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (minor units)", self.amount_minor, self.currency)
    }
}

impl JsonSchema for Money {
    fn schema_name() -> Cow<'static, str> {
        "Money".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let currency = generator.subschema_for::<Currency>();
        json_schema!({
            "description": "Non-negative amount in minor units (cents) of one currency.",
            "type": "object",
            "required": ["amount_minor", "currency"],
            "properties": {
                "amount_minor": { "type": "integer", "minimum": 0, "maximum": i64::MAX },
                "currency": currency
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(n: i64) -> Money {
        Money::parse(n, "EUR").unwrap()
    }

    #[test]
    fn currency_shape() {
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        for bad in ["eur", "EU", "EURO", "", "E1R", "ÉUR"] {
            let err = Currency::parse(bad).unwrap_err();
            assert_eq!(err.what(), "currency", "{bad:?}");
        }
    }

    #[test]
    fn negative_amounts_are_refused() {
        let err = Money::parse(-1, "EUR").unwrap_err();
        assert_eq!(err.to_string(), "invalid amount_minor: -1 is negative");
        assert_eq!(eur(0).amount_minor(), 0);
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        let usd = Money::parse(1, "USD").unwrap();
        assert!(matches!(eur(1).checked_add(usd), Err(MoneyError::CurrencyMismatch { .. })));
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::Overflow));
        assert_eq!(eur(i64::MAX).checked_mul(Quantity::new(2).unwrap()), Err(MoneyError::Overflow));
        assert_eq!(eur(250).checked_mul(Quantity::new(4).unwrap()), Ok(eur(1000)));
        assert_eq!(eur(250).checked_add(eur(5)), Ok(eur(255)));
    }

    #[test]
    fn serde_validates_on_the_way_in() {
        let ok: Money = serde_json::from_str(r#"{"amount_minor":1999,"currency":"EUR"}"#).unwrap();
        assert_eq!(ok, eur(1999));
        assert_eq!(serde_json::to_value(ok).unwrap(), serde_json::json!({"amount_minor":1999,"currency":"EUR"}));
        for bad in [
            r#"{"amount_minor":-5,"currency":"EUR"}"#,
            r#"{"amount_minor":5,"currency":"eur"}"#,
            r#"{"amount_minor":5}"#,
            r#"{"amount_minor":1.5,"currency":"EUR"}"#,
        ] {
            assert!(serde_json::from_str::<Money>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn new_agrees_with_sign(n in any::<i64>()) {
            prop_assert_eq!(Money::parse(n, "EUR").is_ok(), n >= 0);
        }

        #[test]
        fn currency_agrees_with_the_rule(s in any::<String>()) {
            let rule = s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase());
            prop_assert_eq!(Currency::parse(&s).is_ok(), rule);
        }

        #[test]
        fn add_is_exact_or_reports_overflow(a in 0..=i64::MAX, b in 0..=i64::MAX) {
            match eur(a).checked_add(eur(b)) {
                Ok(sum) => prop_assert_eq!(i128::from(sum.amount_minor()), i128::from(a) + i128::from(b)),
                Err(e) => {
                    prop_assert_eq!(e, MoneyError::Overflow);
                    prop_assert!(i128::from(a) + i128::from(b) > i128::from(i64::MAX));
                }
            }
        }

        #[test]
        fn json_round_trip(n in 0..=i64::MAX, c in "[A-Z]{3}") {
            let m = Money::parse(n, &c).unwrap();
            let back: Money = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
            prop_assert_eq!(back, m);
        }
    }
}
