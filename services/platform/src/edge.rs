//! What the public edge refuses before any handler runs, as problem+json:
//!
//! - [`BodyLimit`]: a body over `http.max_body_bytes` is a 413 `payload-too-large`.
//!   A `Content-Length` over the limit is refused before one byte of the body
//!   is read; a chunked body (no length) is counted while the handler streams
//!   it, and cut off at the limit, so memory never holds more than the limit.
//! - [`PathGuard`]: a path whose percent-escapes do not decode to UTF-8
//!   (`/orders/%FF`) names nothing any service has (every id is ASCII), so it
//!   is a 404 `not-found`, as the contract promises for unknown ids, never
//!   poem's plain 400 from deep inside parameter parsing.
//! - [`AllowHeader`]: every 405 carries `Allow` with the methods of the route
//!   (RFC 9110 section 15.5.6), taken from the served OpenAPI document.
//! - [`StrictJson`]: a JSON body naming one member twice in an object
//!   (`{"lines": [], "lines": [...]}`) is a 400 `bad-request`: parsers disagree
//!   on which one wins (serde keeps the last), so no service guesses.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use poem::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};

use crate::problem::{Problem, ProblemType};

/// Middleware: 413 for bodies over `max_bytes` (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    max_bytes: usize,
}

impl BodyLimit {
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint { inner: ep, max_bytes: self.max_bytes }
    }
}

/// The endpoint produced by [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max_bytes: usize,
}

impl<E> BodyLimitEndpoint<E> {
    fn too_large(&self, path: &str) -> Response {
        Problem::new(ProblemType::PAYLOAD_TOO_LARGE)
            .with_detail(format!("the request body is larger than the {} bytes this service accepts", self.max_bytes))
            .with_extension("max_body_bytes", self.max_bytes)
            .with_instance(path)
            .to_response()
    }
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        // hyper has already refused a Content-Length that is not a number.
        let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_bytes as u64) {
            return Ok(self.too_large(&path));
        }
        // No length (chunked), or a length that may lie: count while streaming.
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = req.take_body();
        let capped = Capped { inner: Box::pin(body.into_bytes_stream()), left: self.max_bytes, exceeded: exceeded.clone() };
        req.set_body(Body::from_bytes_stream(capped));
        let result = self.inner.call(req).await.map(IntoResponse::into_response);
        if exceeded.load(Ordering::Acquire) {
            // The handler saw a read error and answered whatever it answers to
            // that; the client's problem is the size, so say that.
            let mut resp = self.too_large(&path);
            if let Ok(inner) = &result {
                copy_route_data(inner, &mut resp);
            }
            return Ok(resp);
        }
        result
    }
}

/// Keeps the matched route on a replaced response, so telemetry labels it.
fn copy_route_data(from: &Response, to: &mut Response) {
    if let Some(p) = from.data::<poem::PathPattern>() {
        to.set_data(p.clone());
    }
    if let Some(op) = from.data::<poem_openapi::OperationId>() {
        to.set_data(*op);
    }
}

/// A body stream that fails once more than `left` bytes have passed.
struct Capped {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
    left: usize,
    exceeded: Arc<AtomicBool>,
}

impl Stream for Capped {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) if chunk.len() > self.left => {
                self.exceeded.store(true, Ordering::Release);
                Poll::Ready(Some(Err(std::io::Error::other("request body over the limit"))))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                self.left -= chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

/// Middleware: 404 for paths that are not UTF-8 once percent-decoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathGuard;

impl<E: Endpoint> Middleware<E> for PathGuard {
    type Output = PathGuardEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        PathGuardEndpoint { inner: ep }
    }
}

/// The endpoint produced by [`PathGuard`].
pub struct PathGuardEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for PathGuardEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path();
        if String::from_utf8(percent_decode(path.as_bytes())).is_err() {
            return Ok(Problem::not_found("There is no resource at this path: it is not UTF-8 once percent-decoded.")
                .with_instance(path)
                .to_response());
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// `%XX` escapes decoded; a `%` not followed by two hex digits stays as is.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(h), Some(l)) = (input.get(i + 1).copied().and_then(hex), input.get(i + 2).copied().and_then(hex))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

/// The methods of each path template of an OpenAPI document (`/orders/{id}` ->
/// `GET`), to answer a 405 with `Allow`.
#[derive(Debug, Clone, Default)]
pub struct RouteMethods {
    /// Segments (`None` for a `{param}`) and the methods, `HEAD` added
    /// wherever `GET` is (poem answers `HEAD` with the `GET` handler).
    routes: Vec<(Vec<Option<String>>, String)>,
}

impl RouteMethods {
    /// Reads the `paths` of `spec_yaml` (the service's served spec).
    pub fn from_openapi(spec_yaml: &str) -> Self {
        let mut routes = Vec::new();
        let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(spec_yaml) else { return Self::default() };
        let Some(paths) = doc.get("paths").and_then(|p| p.as_mapping()) else { return Self::default() };
        for (path, item) in paths {
            let (Some(path), Some(item)) = (path.as_str(), item.as_mapping()) else { continue };
            let mut methods: Vec<Method> =
                item.keys().filter_map(|k| k.as_str()).filter_map(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok()).collect();
            if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                methods.push(Method::HEAD);
            }
            methods.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m).unwrap_or(usize::MAX));
            let segments: Vec<Option<String>> =
                path.split('/').map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned())).collect();
            routes.push((segments, methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")));
        }
        // Literal segments win over parameters, as in the router.
        routes.sort_by_key(|(segs, _)| segs.iter().filter(|s| s.is_none()).count());
        Self { routes }
    }

    /// The `Allow` value for `path`, if a template matches it.
    pub fn allow(&self, path: &str) -> Option<&str> {
        let segs: Vec<&str> = path.split('/').collect();
        self.routes
            .iter()
            .find(|(t, _)| t.len() == segs.len() && t.iter().zip(&segs).all(|(t, s)| t.as_deref().is_none_or(|t| t == *s)))
            .map(|(_, m)| m.as_str())
    }
}

const METHOD_ORDER: [Method; 6] = [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Middleware: `Allow` on every 405 (put it outside [`crate::problem::ProblemJson`]).
#[derive(Debug, Clone)]
pub struct AllowHeader {
    routes: Arc<RouteMethods>,
}

impl AllowHeader {
    pub fn new(routes: RouteMethods) -> Self {
        Self { routes: Arc::new(routes) }
    }
}

impl<E: Endpoint> Middleware<E> for AllowHeader {
    type Output = AllowHeaderEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AllowHeaderEndpoint { inner: ep, routes: self.routes.clone() }
    }
}

/// The endpoint produced by [`AllowHeader`].
pub struct AllowHeaderEndpoint<E> {
    inner: E,
    routes: Arc<RouteMethods>,
}

impl<E: Endpoint> Endpoint for AllowHeaderEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let mut resp = self.inner.call(req).await?.into_response();
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && !resp.headers().contains_key(ALLOW)
            && let Some(value) = self.routes.allow(&path).and_then(|m| HeaderValue::from_str(m).ok())
        {
            resp.headers_mut().insert(ALLOW, value);
        }
        Ok(resp)
    }
}

/// Middleware: 400 for a JSON body with a duplicate member name (see the module docs).
///
/// Reads the body (put it inside [`BodyLimit`], which bounds it), checks it,
/// and hands the same bytes on; bodies that are not JSON, or not well-formed,
/// go on untouched for the handler's own 400/415.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictJson;

impl<E: Endpoint> Middleware<E> for StrictJson {
    type Output = StrictJsonEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        StrictJsonEndpoint { inner: ep }
    }
}

/// The endpoint produced by [`StrictJson`].
pub struct StrictJsonEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for StrictJsonEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let json = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.to_ascii_lowercase().contains("json"));
        if json {
            // An over-long body fails here; `BodyLimit` outside answers 413 for it.
            let body = req.take_body().into_bytes().await?;
            if let Some(dup) = duplicate_member(&body) {
                return Ok(Problem::bad_request(format!("the body names member {dup:?} twice in one object"))
                    .with_instance(req.uri().path())
                    .to_response());
            }
            req.set_body(Body::from_bytes(body));
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// The first member name found twice in one object of the JSON `body`;
/// `None` when there is none, or when `body` is not well-formed JSON.
pub fn duplicate_member(body: &[u8]) -> Option<String> {
    let e = serde_json::from_slice::<NoDuplicates>(body).err()?;
    let msg = e.to_string();
    msg.strip_prefix(DUPLICATE).and_then(|rest| rest.rsplit_once(END)).map(|(name, _)| name.to_owned())
}

/// How [`NoDuplicates`] reports a name, so it can be told from a syntax error.
const DUPLICATE: &str = "duplicate member \u{1}";
const END: char = '\u{2}';

/// Any JSON value, refused when an object repeats a member name.
struct NoDuplicates;

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<Er>(self, _: bool) -> Result<NoDuplicates, Er> {
        Ok(NoDuplicates)
    }
    fn visit_i64<Er>(self, _: i64) -> Result<NoDuplicates, Er> {
        Ok(NoDuplicates)
    }
    fn visit_u64<Er>(self, _: u64) -> Result<NoDuplicates, Er> {
        Ok(NoDuplicates)
    }
    fn visit_f64<Er>(self, _: f64) -> Result<NoDuplicates, Er> {
        Ok(NoDuplicates)
    }
    fn visit_str<Er>(self, _: &str) -> Result<NoDuplicates, Er> {
        Ok(NoDuplicates)
    }
    fn visit_unit<Er>(self) -> Result<NoDuplicates, Er> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{key}{END}")));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_found_at_any_depth() {
        assert_eq!(duplicate_member(br#"{"a": 1, "a": 2}"#).as_deref(), Some("a"));
        assert_eq!(duplicate_member(br#"{"lines": [{"sku": "A", "sku": "B"}]}"#).as_deref(), Some("sku"));
        assert_eq!(duplicate_member(br#"{"a": {"b": 1}, "b": [1, null, "x", 2.5, -3, true]}"#), None);
        assert_eq!(duplicate_member(br#"[{"a": 1}, {"a": 1}]"#), None, "one per object");
        assert_eq!(duplicate_member(b"{not json"), None, "left to the handler's 400");
        assert_eq!(duplicate_member(br#"{"x\u0002y": 1, "x\u0002y": 2}"#).as_deref(), Some("x\u{2}y"));
    }

    const SPEC: &str = r#"
paths:
  /orders:
    get: {operationId: listOrders}
    post: {operationId: placeOrder}
  /orders/{id}:
    get: {operationId: getOrder}
  /orders/{id}/cancel:
    post: {operationId: cancelOrder}
  /items/{sku}:
    get: {}
    put: {}
  /items/{sku}/restock:
    post: {}
"#;

    #[test]
    fn allow_lists_the_methods_of_the_matching_template() {
        let r = RouteMethods::from_openapi(SPEC);
        assert_eq!(r.allow("/orders"), Some("GET, HEAD, POST"));
        assert_eq!(r.allow("/orders/7"), Some("GET, HEAD"));
        assert_eq!(r.allow("/orders/7/cancel"), Some("POST"));
        assert_eq!(r.allow("/items/A-1"), Some("GET, HEAD, PUT"));
        assert_eq!(r.allow("/nothing"), None);
        assert_eq!(r.allow("/orders/7/cancel/x"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"/orders/%41%2f"), b"/orders/A/");
        assert_eq!(percent_decode(b"/a%FF"), b"/a\xff");
        assert_eq!(percent_decode(b"/a%F"), b"/a%F");
        assert_eq!(percent_decode(b"%zz%"), b"%zz%");
        assert!(String::from_utf8(percent_decode(b"/items/%C3%A9")).is_ok());
        assert!(String::from_utf8(percent_decode(b"/items/%FF")).is_err());
    }
}
