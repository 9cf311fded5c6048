//! Identifiers: `OrderId`, `EventId` (UUIDs) and `CustomerId` (the JWT subject).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::invalid::{InvalidValue, quoted};

/// Parses the canonical hyphenated UUID form only (`8-4-4-4-12` hex digits).
///
/// `uuid` also accepts `{braced}`, `urn:uuid:` and unhyphenated forms; the JSON
/// Schema `uuid` format does not, so accepting them here would let a consumer
/// take an event that the published contract calls invalid. The nil UUID is
/// refused: it is what a forgotten `Default` produces, never a real id.
fn parse_uuid(what: &'static str, s: &str) -> Result<Uuid, InvalidValue> {
    let hyphens_ok = s.len() == 36 && s.char_indices().all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
    let uuid = if hyphens_ok { Uuid::parse_str(s).ok() } else { None };
    match uuid {
        Some(u) if !u.is_nil() => Ok(u),
        Some(_) => Err(InvalidValue::new(what, "the nil UUID is not an id")),
        None => Err(InvalidValue::new(what, format!("{} is not a hyphenated UUID", quoted(s)))),
    }
}

fn uuid_from(what: &'static str, u: Uuid) -> Result<Uuid, InvalidValue> {
    if u.is_nil() { Err(InvalidValue::new(what, "the nil UUID is not an id")) } else { Ok(u) }
}

fn uuid_schema(description: &str) -> Schema {
    json_schema!({
        "description": description,
        "type": "string",
        "format": "uuid",
        "not": { "const": "00000000-0000-0000-0000-000000000000" }
    })
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $schema_doc:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh UUIDv7: time-ordered, so B-tree indexes on it stay
            /// append-mostly and ids sort roughly by creation time.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Validates the hyphenated text form.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                parse_uuid($what, s).map(Self)
            }

            /// Wraps a UUID read from a trusted place (a database column);
            /// still refuses nil.
            pub fn from_uuid(u: Uuid) -> Result<Self, InvalidValue> {
                uuid_from($what, u).map(Self)
            }

            /// The UUID, for database binds.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl TryFrom<Uuid> for $name {
            type Error = InvalidValue;
            fn try_from(u: Uuid) -> Result<Self, Self::Error> {
                Self::from_uuid(u)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidValue;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0.hyphenated().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                uuid_schema($schema_doc)
            }
        }
    };
}

uuid_id!(
    /// Identifies one order across all services; the Kafka message key of
    /// every event about it, so all of them land on one partition in order.
    OrderId,
    "order_id",
    "Order id: a hyphenated, non-nil UUID."
);

uuid_id!(
    /// Identifies one event; consumers dedupe on it (processed-events table),
    /// so a redelivered or re-published event is applied once.
    EventId,
    "event id",
    "Event id: a hyphenated, non-nil UUID; consumers dedupe on it."
);

/// The customer an order belongs to: the `sub` claim of the caller's JWT.
///
/// 1 to 128 printable ASCII characters (`!` to `~`, no spaces). Not a UUID:
/// identity providers choose the subject format (`auth0|5f7c...`, a Cognito
/// UUID, `cust-42` from the dev-token tool), and this service only compares it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

impl CustomerId {
    /// Longest accepted id, in characters (= bytes, the alphabet is ASCII).
    pub const MAX_LEN: usize = 128;

    /// Validates `s` as a customer id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() {
            return Err(InvalidValue::new("customer_id", "must not be empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(InvalidValue::new("customer_id", format!("{} is longer than {} characters", quoted(s), Self::MAX_LEN)));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidValue::new("customer_id", format!("{} has a character outside printable ASCII (! to ~)", quoted(s))));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for CustomerId {
    type Error = InvalidValue;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl std::str::FromStr for CustomerId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<CustomerId> for String {
    fn from(c: CustomerId) -> Self {
        c.0
    }
}

impl AsRef<str> for CustomerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomerId({})", self.0)
    }
}

impl JsonSchema for CustomerId {
    fn schema_name() -> Cow<'static, str> {
        "CustomerId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The customer's JWT subject: 1 to 128 printable ASCII characters.",
            "type": "string",
            "pattern": "^[!-~]{1,128}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_id_accepts_only_hyphenated_non_nil() {
        let id = OrderId::new();
        assert_eq!(OrderId::parse(&id.to_string()).unwrap(), id);
        let upper = id.to_string().to_uppercase();
        assert_eq!(OrderId::parse(&upper).unwrap(), id);
        let simple = id.as_uuid().simple().to_string();
        assert!(OrderId::parse(&simple).unwrap_err().reason().contains("hyphenated"));
        let braced = id.as_uuid().braced().to_string();
        assert!(OrderId::parse(&braced).is_err());
        let nil = Uuid::nil().to_string();
        assert!(OrderId::parse(&nil).unwrap_err().reason().contains("nil"));
        assert!(OrderId::from_uuid(Uuid::nil()).is_err());
        assert!(OrderId::parse("").is_err());
        // Right length, hyphens misplaced.
        assert!(OrderId::parse("0123456-78901-2345-6789-0123456789ab").is_err());
    }

    #[test]
    fn new_ids_are_v7_and_distinct() {
        let (a, b) = (EventId::new(), EventId::new());
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn ids_serialize_as_strings() {
        let id = OrderId::parse("0190f0f5-3c7e-7b7c-9c1a-1234567890ab").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0190f0f5-3c7e-7b7c-9c1a-1234567890ab\"");
        assert!(serde_json::from_str::<OrderId>("\"nope\"").is_err());
    }

    #[test]
    fn customer_id_rules() {
        for ok in ["cust-42", "auth0|5f7c", "a", &"x".repeat(128)] {
            assert_eq!(CustomerId::parse(ok).unwrap().as_str(), ok);
        }
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse(&"x".repeat(129)).is_err());
        for bad in ["a b", "tab\there", "ü"] {
            assert!(CustomerId::parse(bad).unwrap_err().reason().contains("printable"), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_non_nil_uuid_round_trips(bytes in any::<[u8; 16]>()) {
            let u = Uuid::from_bytes(bytes);
            prop_assume!(!u.is_nil());
            let id = OrderId::from_uuid(u).unwrap();
            prop_assert_eq!(OrderId::parse(&id.to_string()).unwrap(), id);
        }

        #[test]
        fn parse_never_accepts_what_uuid_rejects(s in any::<String>()) {
            if OrderId::parse(&s).is_ok() {
                prop_assert!(Uuid::parse_str(&s).is_ok());
                prop_assert_eq!(s.len(), 36);
            }
        }

        #[test]
        fn customer_id_agrees_with_the_rule(s in any::<String>()) {
            let rule = (1..=128).contains(&s.len()) && s.bytes().all(|b| (b'!'..=b'~').contains(&b));
            prop_assert_eq!(CustomerId::parse(&s).is_ok(), rule);
        }
    }
}
