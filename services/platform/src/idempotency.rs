//! The `Idempotency-Key` flow every keyed `POST` shares (Order's `POST /orders`,
//! Inventory's restocks and adjustments); the SQL that stores keys stays with
//! each service, next to its tables.
//!
//! A client sends a key with a request. The service stores the key, a
//! [`Fingerprint`] of the request and the answer it gave, in the transaction
//! that does the work (a unique key is the truth: two racing requests with one
//! key serialize on it). When the key comes again, [`Prior::of`] compares
//! fingerprints:
//! - same request: [`Prior::Replay`], the stored answer, and nothing is done again;
//! - another request: [`Prior::Reused`], the 422 [`IDEMPOTENCY_KEY_REUSED`].
//!
//! Keys are [`IdempotencyKey`]s: 1..=255 visible ASCII characters, else a 422
//! `validation-failed` naming the `Idempotency-Key` field.

use poem::http::StatusCode;
use serde::Serialize;

use crate::problem::{Problem, ProblemType};

/// The request header that carries the key.
pub const HEADER: &str = "Idempotency-Key";

/// Longest key accepted, in bytes (keys are ASCII).
pub const MAX_KEY_LEN: usize = 255;

/// 422: the same Idempotency-Key was used with a different request.
pub const IDEMPOTENCY_KEY_REUSED: ProblemType =
    ProblemType::new("idempotency-key-reused", "Idempotency key reused with a different request", StatusCode::UNPROCESSABLE_ENTITY);

/// A validated `Idempotency-Key`: 1..=[`MAX_KEY_LEN`] visible ASCII characters
/// (no spaces, no control characters), so it can be stored and logged as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key, or the 422 `validation-failed` problem naming the header.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        if (1..=MAX_KEY_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Problem::validation(format!("{HEADER} must be 1..={MAX_KEY_LEN} visible ASCII characters")).with_extension("field", HEADER))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies a request under its key: the canonical JSON of the parts
/// of the request that decide its effect (validated values, not the raw body,
/// so formatting and member order do not matter). Stored with the key, or
/// rebuilt from the stored record, and compared by [`Prior::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `request`'s meaningful parts.
    pub fn of(request: &impl Serialize) -> Self {
        // Serializing plain data (strings, numbers, tuples) cannot fail.
        Self(serde_json::to_string(request).unwrap_or_default())
    }

    /// A fingerprint as stored earlier (e.g. Order's `request_hash` column).
    pub fn stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a key that was already used means for the request in hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// Same request: answer with the stored answer body, do nothing again.
    Replay(String),
    /// Another request under the same key: [`IDEMPOTENCY_KEY_REUSED`].
    Reused,
}

impl Prior {
    /// The decision for a key whose record holds `stored` and `answer`, given
    /// the `request` in hand.
    pub fn of(stored: &Fingerprint, request: &Fingerprint, answer: String) -> Self {
        if stored == request { Self::Replay(answer) } else { Self::Reused }
    }

    /// The response: the stored answer through `replay`, or the 422.
    pub fn respond<T>(self, replay: impl FnOnce(&str) -> Result<T, Problem>) -> Result<T, Problem> {
        match self {
            Self::Replay(body) => replay(&body),
            Self::Reused => Err(reused()),
        }
    }
}

/// The 422 [`IDEMPOTENCY_KEY_REUSED`] problem, as every service answers it.
pub fn reused() -> Problem {
    Problem::new(IDEMPOTENCY_KEY_REUSED).with_detail("this Idempotency-Key was used with a different request")
}

/// A stored answer body read back as the response type it was written from.
/// One that does not parse is a bug of ours: the opaque 500.
pub fn stored_answer<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Problem> {
    serde_json::from_str(body).map_err(|e| Problem::internal(anyhow::anyhow!("stored idempotent answer does not parse: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert_eq!(IdempotencyKey::parse("a").ok().map(|k| k.as_str().to_owned()), Some("a".to_owned()));
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " ", "a b", "é", "tab\t", &"k".repeat(256)] {
            let p = IdempotencyKey::parse(bad).unwrap_err();
            assert_eq!((p.status(), p.kind().slug()), (StatusCode::UNPROCESSABLE_ENTITY, "validation-failed"), "{bad:?}");
            assert_eq!(p.body()["field"], "Idempotency-Key");
            assert_eq!(p.detail(), Some("Idempotency-Key must be 1..=255 visible ASCII characters"));
        }
    }

    #[test]
    fn same_fingerprint_replays_another_is_reused() {
        let request = Fingerprint::of(&[("SKU-1", 2)]);
        assert_eq!(request.as_str(), r#"[["SKU-1",2]]"#, "the stored form must not change: old keys compare against it");
        let stored = Fingerprint::stored(r#"[["SKU-1",2]]"#);
        assert_eq!(Prior::of(&stored, &request, "{}".into()), Prior::Replay("{}".into()));
        assert_eq!(Prior::of(&stored, &Fingerprint::of(&[("SKU-1", 3)]), "{}".into()), Prior::Reused);
        let p = Prior::Reused.respond(|_| Ok(())).unwrap_err();
        assert_eq!((p.status(), p.kind().slug()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused"));
        assert_eq!(p.detail(), Some("this Idempotency-Key was used with a different request"));
        assert_eq!(Prior::Replay("7".into()).respond(stored_answer::<u32>).ok(), Some(7));
    }
}
