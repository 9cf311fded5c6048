//! A `serde_json::Value` deserializer that refuses arrays where a struct is
//! expected.
//!
//! serde's derived `Deserialize` for a struct also accepts a JSON array of its
//! fields in declaration order (`["cust-42"]` for `{"customer_id": "cust-42"}`).
//! The JSON Schemas, and every non-Rust reader, only accept objects, so
//! without this wrapper a Rust consumer would take events the published
//! contract calls invalid (`tests/schema_agreement.rs` found exactly that).
//! Everything else behaves like `serde_json::Value`'s own deserializer, and the
//! wrapper is applied recursively to nested values.

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_json::{Error, Map, Value};

/// Deserializes `T` from `value`, requiring JSON objects for structs.
pub(crate) fn from_value<T: de::DeserializeOwned>(value: &Value) -> Result<T, Error> {
    T::deserialize(Strict(value))
}

#[derive(Clone, Copy)]
struct Strict<'a>(&'a Value);

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (_, Some(i), _) => Unexpected::Signed(i),
            (_, _, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(f) = n.as_f64() {
                    visitor.visit_f64(f)
                } else {
                    Err(de::Error::custom("unrepresentable number"))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            Value::Object(map) => visitor.visit_map(Obj { iter: map.iter(), value: None }),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &"a JSON object")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // No externally tagged enum appears in the events; defer to serde_json
        // for completeness rather than refusing.
        self.0.clone().deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for Strict<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

struct Seq<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|v| seed.deserialize(Strict(v))).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Obj<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Obj<'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(de::value::BorrowedStrDeserializer::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(Strict(v)),
            None => Err(de::Error::custom("value requested before key")),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Takes the `code` tag of an internally tagged object, for hand-written
/// `Deserialize` impls that must not go through serde's buffering (which would
/// bypass [`Strict`] for the nested values).
pub(crate) fn tag<'a>(map: &'a Map<String, Value>, tag: &'static str) -> Result<&'a str, Error> {
    match map.get(tag) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(de::Error::invalid_type(unexpected(other), &"a string tag")),
        None => Err(de::Error::missing_field(tag)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
        opt: Option<u8>,
    }

    #[test]
    fn objects_parse_like_serde_json() {
        let v = json!({"inner": {"a": 1}, "list": [{"a": 2}], "opt": null, "extra": [1, {"x": 2}]});
        let o: Outer = from_value(&v).unwrap();
        assert_eq!(o, Outer { inner: Inner { a: 1 }, list: vec![Inner { a: 2 }], opt: None });
        assert_eq!(from_value::<Outer>(&json!({"inner": {"a": 1}, "list": [], "opt": 3})).unwrap().opt, Some(3));
    }

    #[test]
    fn arrays_for_structs_are_refused_at_any_depth() {
        // serde_json itself accepts all three.
        for v in [
            json!([{"a": 1}, [], null]),
            json!({"inner": [1], "list": [], "opt": null}),
            json!({"inner": {"a": 1}, "list": [[2]], "opt": null}),
        ] {
            assert!(serde_json::from_value::<Outer>(v.clone()).is_ok(), "{v}");
            let err = from_value::<Outer>(&v).unwrap_err();
            assert!(err.to_string().contains("expected a JSON object"), "{err}");
        }
    }

    #[test]
    fn numbers_keep_their_checks() {
        assert!(from_value::<Inner>(&json!({"a": -1})).is_err());
        assert!(from_value::<Inner>(&json!({"a": 1.5})).is_err());
        assert!(from_value::<Inner>(&json!({"a": 4_294_967_296u64})).is_err());
    }
}
