//! RFC 9457 problem details (`application/problem+json`) for every error a
//! service answers with.
//!
//! - [`ProblemType`]: a stable `type` URI (`https://glasshouse.dev/problems/<slug>`),
//!   title and status per kind of error; clients and dashboards match on the
//!   slug, never on the human text.
//! - [`Problem`]: one error response. It is a poem [`ResponseError`] (so `?`
//!   turns it into a `poem::Error` and the response keeps its body), an
//!   [`IntoResponse`], and a poem-openapi [`ApiResponse`] (so an operation can
//!   return `Result<MyResponse, Problem>` and the spec documents the error body).
//! - [`Problem::internal`]: the opaque 500. The cause chain goes to the log
//!   (`tracing::error!`), the client gets only an error id to quote.
//! - [`ProblemJson`]: middleware that turns every other error (unknown route,
//!   poem-openapi's request parsing errors, missing bearer token, ...) into
//!   problem+json too, so no 4xx/5xx ever leaves as `text/plain`.

use std::fmt;

use poem::error::ResponseError;
use poem::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use poem::http::{HeaderMap, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::error::{ParseParamError, ParseRequestPayloadError};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Prefix of every problem `type` URI. Not fetched by clients; RFC 9457 only
/// needs a stable, absolute URI, and a runbook page can live there later.
pub const PROBLEM_BASE_URI: &str = "https://glasshouse.dev/problems/";

/// The media type of problem details (RFC 9457 section 3).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Members defined by RFC 9457; extensions may not reuse these names.
const RESERVED_MEMBERS: [&str; 5] = ["type", "title", "status", "detail", "instance"];

/// One kind of error: its slug (the last segment of the `type` URI), a short
/// title that does not change between occurrences, and its HTTP status.
///
/// Services define their own with [`ProblemType::new`] in a `const`, e.g.
/// `const IDEMPOTENCY_KEY_REUSED: ProblemType = ProblemType::new("idempotency-key-reused",
/// "Idempotency key reused with a different body", StatusCode::UNPROCESSABLE_ENTITY);`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProblemType {
    slug: &'static str,
    title: &'static str,
    status: StatusCode,
}

impl ProblemType {
    /// A problem type; `slug` should be lower-case words joined by `-`.
    pub const fn new(slug: &'static str, title: &'static str, status: StatusCode) -> Self {
        Self { slug, title, status }
    }

    /// 400: the request cannot be read (bad JSON, bad parameter syntax).
    pub const BAD_REQUEST: Self = Self::new("bad-request", "Bad request", StatusCode::BAD_REQUEST);
    /// 401: no, malformed, expired or unverifiable bearer token.
    pub const UNAUTHENTICATED: Self = Self::new("unauthenticated", "Authentication required", StatusCode::UNAUTHORIZED);
    /// 403: authenticated, but the caller's roles do not allow this.
    pub const FORBIDDEN: Self = Self::new("forbidden", "Forbidden", StatusCode::FORBIDDEN);
    /// 404: no such resource (also used for resources the caller may not see).
    pub const NOT_FOUND: Self = Self::new("not-found", "Not found", StatusCode::NOT_FOUND);
    /// 405: the path exists, the method does not.
    pub const METHOD_NOT_ALLOWED: Self = Self::new("method-not-allowed", "Method not allowed", StatusCode::METHOD_NOT_ALLOWED);
    /// 409: the request conflicts with the resource's current state.
    pub const CONFLICT: Self = Self::new("conflict", "Conflict", StatusCode::CONFLICT);
    /// 413: the body is larger than the service accepts.
    pub const PAYLOAD_TOO_LARGE: Self = Self::new("payload-too-large", "Payload too large", StatusCode::PAYLOAD_TOO_LARGE);
    /// 415: the body is not JSON.
    pub const UNSUPPORTED_MEDIA_TYPE: Self =
        Self::new("unsupported-media-type", "Unsupported media type", StatusCode::UNSUPPORTED_MEDIA_TYPE);
    /// 422: well-formed, but a value breaks a rule (quantity 0, unknown SKU, ...).
    pub const VALIDATION_FAILED: Self = Self::new("validation-failed", "Request failed validation", StatusCode::UNPROCESSABLE_ENTITY);
    /// 429: slow down.
    pub const TOO_MANY_REQUESTS: Self = Self::new("too-many-requests", "Too many requests", StatusCode::TOO_MANY_REQUESTS);
    /// 500: a bug or an unexpected failure; details only in the log.
    pub const INTERNAL: Self = Self::new("internal-error", "Internal server error", StatusCode::INTERNAL_SERVER_ERROR);
    /// 503: a dependency is down or its circuit breaker is open; retry later.
    pub const SERVICE_UNAVAILABLE: Self =
        Self::new("service-unavailable", "Service temporarily unavailable", StatusCode::SERVICE_UNAVAILABLE);

    /// Every built-in type (docs and tests).
    pub const BUILT_IN: [Self; 12] = [
        Self::BAD_REQUEST,
        Self::UNAUTHENTICATED,
        Self::FORBIDDEN,
        Self::NOT_FOUND,
        Self::METHOD_NOT_ALLOWED,
        Self::CONFLICT,
        Self::PAYLOAD_TOO_LARGE,
        Self::UNSUPPORTED_MEDIA_TYPE,
        Self::VALIDATION_FAILED,
        Self::TOO_MANY_REQUESTS,
        Self::INTERNAL,
        Self::SERVICE_UNAVAILABLE,
    ];

    /// The built-in type for `status`, or a generic `http-error` type that
    /// carries the status, for errors raised by poem with no more meaning.
    pub fn for_status(status: StatusCode) -> Self {
        Self::BUILT_IN.into_iter().find(|t| t.status == status).unwrap_or(Self {
            slug: "http-error",
            title: status.canonical_reason().unwrap_or("HTTP error"),
            status,
        })
    }

    /// The slug, e.g. `not-found`.
    pub fn slug(&self) -> &'static str {
        self.slug
    }

    /// The title, the same for every occurrence.
    pub fn title(&self) -> &'static str {
        self.title
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `type` URI: `https://glasshouse.dev/problems/<slug>`.
    pub fn uri(&self) -> String {
        format!("{PROBLEM_BASE_URI}{}", self.slug)
    }
}

/// One problem-details response.
///
/// Build it from a [`ProblemType`] and add what the client can act on:
/// `detail` (human text about this occurrence), `instance`, extension members
/// (e.g. `"field": "lines[2].quantity"`), and headers (`Retry-After`).
///
/// Boxed inside, so `Result<T, Problem>` stays one pointer wide on the error
/// side however many extensions and headers it carries.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemInner>);

#[derive(Debug, Clone)]
struct ProblemInner {
    kind: ProblemType,
    detail: Option<String>,
    instance: Option<String>,
    extensions: Map<String, Value>,
    headers: HeaderMap,
}

impl Problem {
    /// A problem of kind `kind` with no detail yet.
    pub fn new(kind: ProblemType) -> Self {
        Self(Box::new(ProblemInner { kind, detail: None, instance: None, extensions: Map::new(), headers: HeaderMap::new() }))
    }

    /// 400 `bad-request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::BAD_REQUEST).with_detail(detail)
    }

    /// 401 `unauthenticated`, with `WWW-Authenticate: Bearer` as RFC 6750 asks.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::UNAUTHENTICATED)
            .with_detail(detail)
            .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"glasshouse\""))
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::FORBIDDEN).with_detail(detail)
    }

    /// 404 `not-found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::NOT_FOUND).with_detail(detail)
    }

    /// 409 `conflict`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::CONFLICT).with_detail(detail)
    }

    /// 422 `validation-failed`.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::VALIDATION_FAILED).with_detail(detail)
    }

    /// 503 `service-unavailable` with `Retry-After` in whole seconds (at
    /// least 1), e.g. the remaining open time of a circuit breaker.
    pub fn unavailable(detail: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self::new(ProblemType::SERVICE_UNAVAILABLE).with_detail(detail).with_header(RETRY_AFTER, HeaderValue::from(secs.max(1)))
    }

    /// The opaque 500 for an unexpected error.
    ///
    /// Logs `error` once, here at the response boundary, with its whole cause
    /// chain (`{:#}`: "insert order: pool timed out: ...") and a fresh error id;
    /// the client gets a fixed detail and `instance = urn:uuid:<error id>`, so a
    /// support ticket quoting it finds the log line. Nothing of the error text
    /// reaches the client: it may contain SQL, hostnames or customer data.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        let error = error.into();
        let error_id = uuid::Uuid::new_v4();
        let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
        tracing::error!(
            error_id = %error_id,
            error.message = %format_args!("{error:#}"),
            error.chain = ?chain,
            "internal error answered with an opaque 500"
        );
        Self::new(ProblemType::INTERNAL)
            .with_detail("An unexpected error occurred. Quote the instance id when reporting it.")
            .with_instance(format!("urn:uuid:{error_id}"))
    }

    /// Sets the human-readable explanation of this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Sets the URI reference of this occurrence (e.g. the request path).
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.0.instance = Some(instance.into());
        self
    }

    /// Adds an extension member. The five RFC members cannot be overridden:
    /// such a key is dropped with a warning rather than corrupting the body.
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let key = key.into();
        if RESERVED_MEMBERS.contains(&key.as_str()) {
            tracing::warn!(key, "problem extension uses a reserved member name; dropped");
            return self;
        }
        match serde_json::to_value(value) {
            Ok(v) => {
                self.0.extensions.insert(key, v);
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "problem extension not serializable; dropped");
            }
        }
        self
    }

    /// Adds a response header (`Retry-After`, `WWW-Authenticate`, ...).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> ProblemType {
        self.0.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.kind.status
    }

    /// The detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }

    /// The instance, if any.
    pub fn instance(&self) -> Option<&str> {
        self.0.instance.as_deref()
    }

    /// Extra response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The JSON body: RFC members first, then extensions.
    pub fn body(&self) -> Value {
        let mut map = Map::new();
        map.insert("type".into(), Value::String(self.0.kind.uri()));
        map.insert("title".into(), Value::String(self.0.kind.title.into()));
        map.insert("status".into(), Value::from(self.0.kind.status.as_u16()));
        if let Some(d) = &self.0.detail {
            map.insert("detail".into(), Value::String(d.clone()));
        }
        if let Some(i) = &self.0.instance {
            map.insert("instance".into(), Value::String(i.clone()));
        }
        for (k, v) in &self.0.extensions {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }

    /// Builds the HTTP response without consuming the problem.
    pub fn to_response(&self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = Response::builder().status(self.0.kind.status).header(CONTENT_TYPE, PROBLEM_CONTENT_TYPE).body(body);
        for (name, value) in &self.0.headers {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
        resp
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.kind.status.as_u16(), self.0.kind.title)?;
        if let Some(d) = &self.0.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

impl ResponseError for Problem {
    fn status(&self) -> StatusCode {
        self.0.kind.status
    }

    fn as_response(&self) -> Response {
        self.to_response()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

/// `?` on an `anyhow::Result` inside a handler gives the opaque, logged 500.
impl From<anyhow::Error> for Problem {
    fn from(error: anyhow::Error) -> Self {
        Problem::internal(error)
    }
}

/// A refused newtype (`Sku`, `Quantity`, ...) is a 422 naming the value kind
/// in the `field` extension.
impl From<glasshouse_contracts::InvalidValue> for Problem {
    fn from(e: glasshouse_contracts::InvalidValue) -> Self {
        Problem::validation(e.to_string()).with_extension("field", e.what())
    }
}

/// The body schema of a problem, as published in the OpenAPI document, and a
/// typed form for clients that read another service's errors.
///
/// Extension members are not listed in the schema (they differ per type) but
/// are kept in [`ProblemDetails::extensions`] when parsing.
#[derive(Debug, Clone, PartialEq, Object, Serialize, Deserialize)]
#[oai(rename = "Problem")]
pub struct ProblemDetails {
    /// Stable URI of the kind of problem; match on this.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary, the same for every occurrence of the type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// URI reference of this occurrence (request path, or `urn:uuid:` error id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members.
    #[oai(skip)]
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl ProblemDetails {
    /// The slug of `type_uri` if it is one of ours (`not-found`), else `None`.
    pub fn slug(&self) -> Option<&str> {
        self.type_uri.strip_prefix(PROBLEM_BASE_URI)
    }
}

/// Documents `Problem` as the operation's `default` response with the
/// `application/problem+json` body, so `Result<T, Problem>` needs no per-status
/// boilerplate and the spec still tells clients what an error looks like.
impl ApiResponse for Problem {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "An error, as RFC 9457 problem details",
                status: None,
                status_range: None,
                content: vec![MetaMediaType { content_type: PROBLEM_CONTENT_TYPE, schema: ProblemDetails::schema_ref() }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ProblemDetails::register(registry);
    }
}

/// Converts any `poem::Error` to a [`Problem`].
///
/// A `Problem` inside the error is returned as is. Anything else is classified
/// by status: 5xx become the opaque, logged [`Problem::internal`]; 401 becomes
/// `unauthenticated`; other 4xx keep poem's message as `detail` (those messages
/// describe the client's own input, e.g. poem-openapi's "failed to parse
/// parameter `limit`").
pub fn problem_from_error(err: poem::Error) -> Problem {
    if err.is::<Problem>() {
        match err.downcast::<Problem>() {
            Ok(p) => return p,
            Err(e) => return problem_from_status(e),
        }
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return parameter_problem(e.name, &e.reason);
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return payload_problem(&e.reason);
    }
    problem_from_status(err)
}

/// poem-openapi's words for a value its validator refused (`verification failed. maximum(100)`).
const VERIFICATION_FAILED: &str = "verification failed.";

/// A parameter poem-openapi refused: a rule of the contract (`#[oai(validator(...))]`)
/// is a 422 `validation-failed` naming the parameter (a `cursor` breaking its
/// pattern is one the API never gave out: `invalid-cursor`); a value of the
/// wrong syntax or a missing one is a 400 `bad-request`.
fn parameter_problem(name: &str, reason: &str) -> Problem {
    let detail = format!("parameter `{name}`: {reason}");
    if !reason.starts_with(VERIFICATION_FAILED) {
        return Problem::bad_request(detail).with_extension("field", name);
    }
    if name == "cursor" {
        return crate::cursor::invalid_cursor();
    }
    Problem::validation(detail).with_extension("field", name)
}

/// A JSON body poem-openapi refused: a member breaking a rule of the contract
/// is a 422 `validation-failed` naming the innermost member
/// (`field \`quantity\` verification failed. minimum(1) (occurred while parsing ...)`);
/// anything else (bad JSON, a missing, unknown or mistyped member) is a 400.
fn payload_problem(reason: &str) -> Problem {
    let field = reason
        .find(VERIFICATION_FAILED)
        .and_then(|at| reason[..at].rsplit_once("field `"))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field.to_owned());
    match field {
        Some(field) => Problem::validation(format!("{field}: {reason}")).with_extension("field", field),
        None => Problem::bad_request(format!("the body cannot be read: {reason}")),
    }
}

fn problem_from_status(err: poem::Error) -> Problem {
    let status = err.status();
    if status.is_server_error() {
        return Problem::internal(anyhow::anyhow!("{status}: {err}"));
    }
    match status {
        // poem-openapi's bearer scheme refuses a request without
        // `Authorization: Bearer ...` before any checker runs; say so in the
        // same words as `auth::AuthError::Missing`.
        StatusCode::UNAUTHORIZED => Problem::unauthenticated("The request has no bearer token."),
        StatusCode::NOT_FOUND => Problem::not_found("There is no resource at this path."),
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(ProblemType::METHOD_NOT_ALLOWED).with_detail(err.to_string()),
        _ => Problem::new(ProblemType::for_status(status)).with_detail(err.to_string()),
    }
}

/// Middleware: every error leaving the wrapped endpoint becomes
/// problem+json; a problem without `instance` gets the request path.
///
/// Put it outermost on the service's route (`route.with(ProblemJson)`), so
/// that route-level 404/405 and poem-openapi's parse and auth errors are
/// covered as well as the handlers' own problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemJson;

impl<E: Endpoint> Middleware<E> for ProblemJson {
    type Output = ProblemJsonEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ProblemJsonEndpoint { inner: ep }
    }
}

/// The endpoint produced by [`ProblemJson`].
#[derive(Debug)]
pub struct ProblemJsonEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for ProblemJsonEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        match self.inner.call(req).await {
            Ok(resp) => Ok(resp.into_response()),
            Err(err) => {
                // Keep the matched route template on the response, so the
                // telemetry middleware outside labels errors by route too.
                let pattern = err.data::<poem::PathPattern>().cloned();
                let operation = err.data::<poem_openapi::OperationId>().copied();
                let mut problem = problem_from_error(err);
                if problem.0.instance.is_none() {
                    problem.0.instance = Some(path);
                }
                let mut resp = problem.to_response();
                if let Some(p) = pattern {
                    resp.set_data(p);
                }
                if let Some(op) = operation {
                    resp.set_data(op);
                }
                Ok(resp)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_rfc_members_and_extensions() {
        let p = Problem::validation("quantity 0 is outside 1..=1000").with_instance("/orders").with_extension("field", "lines[0].quantity");
        assert_eq!(
            p.body(),
            serde_json::json!({
                "type": "https://glasshouse.dev/problems/validation-failed",
                "title": "Request failed validation",
                "status": 422,
                "detail": "quantity 0 is outside 1..=1000",
                "instance": "/orders",
                "field": "lines[0].quantity"
            })
        );
    }

    #[test]
    fn reserved_members_cannot_be_overridden() {
        let p = Problem::not_found("x").with_extension("status", 200).with_extension("type", "y");
        assert_eq!(p.body()["status"], 404);
        assert_eq!(p.body()["type"], "https://glasshouse.dev/problems/not-found");
    }

    #[test]
    fn unavailable_rounds_retry_after_up() {
        let p = Problem::unavailable("inventory down", std::time::Duration::from_millis(1500));
        assert_eq!(p.headers()[RETRY_AFTER], "2");
        let p = Problem::unavailable("inventory down", std::time::Duration::ZERO);
        assert_eq!(p.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn slugs_are_unique_and_statuses_map_back() {
        let mut slugs: Vec<_> = ProblemType::BUILT_IN.iter().map(|t| t.slug()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::BUILT_IN.len());
        for t in ProblemType::BUILT_IN {
            assert_eq!(ProblemType::for_status(t.status()), t);
        }
        let teapot = ProblemType::for_status(StatusCode::IM_A_TEAPOT);
        assert_eq!((teapot.slug(), teapot.status()), ("http-error", StatusCode::IM_A_TEAPOT));
    }

    #[test]
    fn poem_errors_keep_a_problem_intact() {
        let err: poem::Error = Problem::conflict("already cancelled").into();
        let p = problem_from_error(err);
        assert_eq!(p.kind(), ProblemType::CONFLICT);
        assert_eq!(p.detail(), Some("already cancelled"));
    }

    #[test]
    fn validator_refusals_are_422_naming_the_field_and_syntax_errors_400() {
        let p = problem_from_error(ParseParamError { name: "limit", reason: "verification failed. maximum(100)".into() }.into());
        assert_eq!((p.kind(), p.body()["field"].as_str()), (ProblemType::VALIDATION_FAILED, Some("limit")));
        let p = problem_from_error(ParseParamError { name: "limit", reason: "failed to parse \"integer\"".into() }.into());
        assert_eq!((p.kind(), p.body()["field"].as_str()), (ProblemType::BAD_REQUEST, Some("limit")));
        let p = problem_from_error(ParseParamError { name: "cursor", reason: "verification failed. pattern(..)".into() }.into());
        assert_eq!(p.kind(), crate::cursor::INVALID_CURSOR);
        let reason = "field `quantity` verification failed. minimum(1) (occurred while parsing \"[OrderLineRequest]\") (occurred while parsing \"PlaceOrderRequest\")";
        let p = problem_from_error(ParseRequestPayloadError { reason: reason.into() }.into());
        assert_eq!((p.kind(), p.body()["field"].as_str()), (ProblemType::VALIDATION_FAILED, Some("quantity")));
        let p = problem_from_error(ParseRequestPayloadError { reason: "unknown field `note`.".into() }.into());
        assert_eq!(p.kind(), ProblemType::BAD_REQUEST);
    }

    #[test]
    fn invalid_values_become_422_with_the_field() {
        let err = glasshouse_contracts::Sku::parse("bad sku").unwrap_err();
        let p = Problem::from(err);
        assert_eq!(p.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(p.body()["field"], "sku");
        assert!(p.detail().unwrap().contains("invalid sku"));
    }

    #[test]
    fn details_parse_back_with_extensions() {
        let p = Problem::not_found("no order 7").with_extension("order_id", "7");
        let parsed: ProblemDetails = serde_json::from_value(p.body()).unwrap();
        assert_eq!(parsed.slug(), Some("not-found"));
        assert_eq!(parsed.status, 404);
        assert_eq!(parsed.extensions["order_id"], "7");
    }
}
