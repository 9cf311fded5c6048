//! Signed pagination cursors for every list endpoint.
//!
//! A list endpoint encodes its keyset position as it likes (`<micros>.<uuid>`,
//! a SKU, ...) and hands it to [`Cursors::seal`]; the client gets
//! `<base64url payload>.<base64url HMAC-SHA256>` and passes it back untouched.
//! [`Cursors::open`] gives the payload back only if the MAC verifies, so the
//! service never parses or queries with a position it did not produce itself:
//! a tampered, truncated, invented or out-of-range cursor is a 422
//! `invalid-cursor`, never a database error.
//!
//! The MAC covers a scope (the service and the list, e.g. `order/orders`)
//! besides the payload, so one service's cursor is refused by another even
//! where they share a key. The key is `http.cursor_key`; cursors are not
//! secret (the payload is readable), only unforgeable. Rotating the key ends
//! every open pagination with a 422, which a client handles by starting over.
//!
//! [`http_app`](crate::service::http_app) puts the service's [`Cursors`] into
//! the request data; a handler takes it as `cursors: Data<&Cursors>`.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use poem::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::problem::{Problem, ProblemType};

/// 422: the cursor was not given out by this list of this service.
pub const INVALID_CURSOR: ProblemType =
    ProblemType::new("invalid-cursor", "Cursor not given out by this API", StatusCode::UNPROCESSABLE_ENTITY);

/// Longer cursors are refused before any decoding (ours are under 200 bytes).
const MAX_CURSOR_LEN: usize = 512;

/// Seals and opens the cursors of one service.
#[derive(Clone)]
pub struct Cursors {
    key: Arc<SecretString>,
    service: Arc<str>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors").field("service", &self.service).finish_non_exhaustive()
    }
}

impl Cursors {
    /// Cursors of `service` signed with `key`.
    pub fn new(service: &str, key: &SecretString) -> Self {
        Self { key: Arc::new(key.clone()), service: service.into() }
    }

    fn mac(&self, list: &str, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        // Length-prefixed fields: no two (service, list, payload) triples feed the same bytes.
        for part in [self.service.as_bytes(), list.as_bytes(), payload] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The cursor a client gets for position `payload` of list `list`.
    pub fn seal(&self, list: &str, payload: &str) -> String {
        let tag = self.mac(list, payload.as_bytes()).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// The position inside `cursor`, if this service sealed it for `list`;
    /// else a 422 [`INVALID_CURSOR`] problem naming the `cursor` field.
    pub fn open(&self, list: &str, cursor: &str) -> Result<String, Problem> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(invalid_cursor());
        }
        let (payload, tag) = cursor.split_once('.').ok_or_else(invalid_cursor)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid_cursor())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid_cursor())?;
        // `verify_slice` compares in constant time.
        self.mac(list, &payload).verify_slice(&tag).map_err(|_| invalid_cursor())?;
        String::from_utf8(payload).map_err(|_| invalid_cursor())
    }
}

/// The 422 for a cursor this API did not give out (also for a signed payload
/// a service can no longer read, e.g. after a format change).
pub fn invalid_cursor() -> Problem {
    Problem::new(INVALID_CURSOR)
        .with_detail("cursor is not one this API gave out; start again without it")
        .with_extension("field", "cursor")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors(service: &str, key: &str) -> Cursors {
        Cursors::new(service, &SecretString::from(key))
    }

    #[test]
    fn a_sealed_cursor_opens_to_its_payload() {
        let c = cursors("order", "k");
        let sealed = c.seal("orders", "1700000000000000.0190b1c2-0000-7000-8000-000000000000");
        assert_eq!(c.open("orders", &sealed).unwrap(), "1700000000000000.0190b1c2-0000-7000-8000-000000000000");
    }

    #[test]
    fn anything_else_is_an_invalid_cursor() {
        let c = cursors("order", "k");
        let sealed = c.seal("orders", "1.x");
        let (payload, tag) = sealed.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("-300000000000000000.00000000-0000-0000-0000-000000000000"));
        let bad = [
            "",
            "-300000000000000000.00000000-0000-0000-0000-000000000000",
            &forged,
            &sealed[..sealed.len() - 1],
            payload,
            &format!("{payload}.{tag}{tag}"),
            &"A".repeat(600),
        ];
        for b in bad {
            let p = c.open("orders", b).unwrap_err();
            assert_eq!((p.kind(), p.body()["field"].as_str()), (INVALID_CURSOR, Some("cursor")), "{b}");
        }
        // Another list, another service, another key.
        assert!(c.open("items", &sealed).is_err());
        assert!(cursors("inventory", "k").open("orders", &sealed).is_err());
        assert!(cursors("order", "other").open("orders", &sealed).is_err());
    }
}
