//! Carrying trace context across process boundaries: HTTP headers, Kafka
//! headers, and a database row (the outbox), in W3C `traceparent` /
//! `tracestate` + `baggage` form.
//!
//! # Kafka: child, not link
//! A consumer span is a *child* of the producer span whose context the message
//! carries. Glasshouse handles one message at a time, and the saga is one
//! causal chain (order placed -> stock reserved -> order confirmed ->
//! notification stored), so parent/child yields the one trace per order that
//! engineers follow in Jaeger. Links are the semantic conventions' choice for
//! batch consumers, where one span handles many messages; we have none.

use std::collections::HashMap;
use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use rdkafka::message::{Header, Headers, OwnedHeaders};

/// The propagator of every Glasshouse process: W3C trace context and baggage.
pub fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![Box::new(TraceContextPropagator::new()), Box::new(BaggagePropagator::new())])
}

/// One [`propagator`] for the process: building it allocates (boxes and its
/// field list), which the request path should not do per request.
fn shared() -> &'static TextMapCompositePropagator {
    static SHARED: LazyLock<TextMapCompositePropagator> = LazyLock::new(propagator);
    &SHARED
}

/// Installs [`propagator`] as the global one (done by [`crate::init`]).
pub fn install_global() {
    opentelemetry::global::set_text_map_propagator(propagator());
}

/// Writes `cx` into HTTP headers (for an outgoing request), and marks the
/// `traceparent` as sent by a Glasshouse service ([`trust`]) so the peer
/// continues this trace instead of only linking to it.
pub fn inject_http(cx: &Context, headers: &mut http::HeaderMap) {
    shared().inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
    trust::sign(headers);
}

/// Whose trace context a server continues.
///
/// A client on the public edge must not decide how a service traces: a
/// `traceparent` ending in `-00` would switch tracing off for the whole saga
/// it starts, one ending in `-01` would force sampling on. So a server span
/// continues the caller's trace only when the caller proves it is one of the
/// services: its `traceparent` comes with [`TRUST_HEADER`], an HMAC-SHA256 of
/// the `traceparent` under the key the services share
/// (`telemetry.traces.trust_key`). Any other request starts a new trace,
/// sampled by the service's own sampler, with a span link to the caller's
/// context, so the caller's trace can still be followed to it.
pub mod trust {
    use std::sync::RwLock;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    use secrecy::{ExposeSecret, SecretString};
    use sha2::Sha256;

    /// The header that carries the signature of the request's `traceparent`.
    pub const TRUST_HEADER: &str = "glasshouse-trace-auth";

    static KEY: RwLock<Option<SecretString>> = RwLock::new(None);

    /// Sets the shared key ([`crate::init`] does, from the settings); `None`
    /// trusts no caller and signs nothing.
    pub fn set_key(key: Option<SecretString>) {
        if let Ok(mut k) = KEY.write() {
            *k = key;
        }
    }

    fn mac(traceparent: &[u8]) -> Option<Hmac<Sha256>> {
        let key = KEY.read().ok()?;
        let key = key.as_ref()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret().as_bytes()).ok()?;
        mac.update(traceparent);
        Some(mac)
    }

    /// Adds [`TRUST_HEADER`] for the `traceparent` in `headers`, if a key is set.
    pub fn sign(headers: &mut http::HeaderMap) {
        let Some(tp) = headers.get("traceparent").map(|v| v.as_bytes().to_vec()) else { return };
        if let Some(mac) = mac(&tp)
            && let Ok(v) = http::HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
        {
            headers.insert(TRUST_HEADER, v);
        }
    }

    /// Whether the `traceparent` of `headers` was sent by a service holding the key.
    pub fn is_trusted(headers: &http::HeaderMap) -> bool {
        let (Some(tp), Some(sig)) = (headers.get("traceparent"), headers.get(TRUST_HEADER)) else { return false };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig.as_bytes()) else { return false };
        mac(tp.as_bytes()).is_some_and(|m| m.verify_slice(&sig).is_ok())
    }
}

/// Reads the caller's context from HTTP headers (an empty context if none).
pub fn extract_http(headers: &http::HeaderMap) -> Context {
    shared().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// Adds `cx` as Kafka message headers (`traceparent`, `tracestate`, `baggage`).
pub fn inject_kafka(cx: &Context, headers: OwnedHeaders) -> OwnedHeaders {
    let mut map = HashMap::new();
    shared().inject_context(cx, &mut map);
    let mut keys: Vec<_> = map.into_iter().collect();
    keys.sort();
    keys.into_iter().fold(headers, |h, (key, value)| h.insert(Header { key: &key, value: Some(&value) }))
}

/// Reads the producer's context from a consumed Kafka message's headers.
pub fn extract_kafka<H: Headers>(headers: Option<&H>) -> Context {
    let Some(headers) = headers else { return Context::new() };
    shared().extract(&KafkaExtractor(headers))
}

struct KafkaExtractor<'a, H>(&'a H);

impl<H: Headers> Extractor for KafkaExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|h| h.key.eq_ignore_ascii_case(key)).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

/// The context as a string to keep in a database column (the outbox row):
/// the W3C headers as a JSON object. `None` when there is no valid trace.
pub fn to_carrier(cx: &Context) -> Option<String> {
    let mut map: HashMap<String, String> = HashMap::new();
    shared().inject_context(cx, &mut map);
    map.contains_key("traceparent").then(|| serde_json::to_string(&map).unwrap_or_default())
}

/// The context stored by [`to_carrier`]; an empty context for `None` or garbage.
pub fn from_carrier(carrier: Option<&str>) -> Context {
    let map: HashMap<String, String> = carrier.and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default();
    shared().extract(&map)
}

/// The current span's context as a carrier string (see [`to_carrier`]).
pub fn current_carrier() -> Option<String> {
    to_carrier(&crate::context::current_context())
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

    use super::*;

    fn remote_cx() -> Context {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(sc)
    }

    #[test]
    fn http_roundtrip() {
        let mut headers = http::HeaderMap::new();
        inject_http(&remote_cx(), &mut headers);
        assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let back = extract_http(&headers);
        assert_eq!(back.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(back.span().span_context().is_remote());
    }

    #[test]
    fn kafka_roundtrip() {
        let headers = inject_kafka(&remote_cx(), OwnedHeaders::new().insert(Header { key: "other", value: Some("x") }));
        let back = extract_kafka(Some(&headers));
        assert_eq!(back.span().span_context().span_id().to_string(), "00f067aa0ba902b7");
        assert!(back.span().span_context().is_sampled());
    }

    #[test]
    fn carrier_roundtrip_and_garbage() {
        let carrier = to_carrier(&remote_cx()).expect("valid context gives a carrier");
        let back = from_carrier(Some(&carrier));
        assert_eq!(back.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(to_carrier(&Context::new()).is_none());
        for junk in [None, Some(""), Some("{"), Some("[1,2]"), Some(r#"{"traceparent":"nope"}"#)] {
            assert!(!from_carrier(junk).span().span_context().is_valid(), "{junk:?}");
        }
        assert!(!extract_kafka::<OwnedHeaders>(None).span().span_context().is_valid());
    }
}
