//! HTTP telemetry as middleware: one server span per request, RED metrics by
//! route template, and trace context injected into outgoing requests.
//! Business handlers only add fields.
//!
//! A server span continues the caller's trace only when the caller is another
//! Glasshouse service (its `traceparent` signed, see
//! [`crate::propagation::trust`]); for any other caller it starts a new trace,
//! sampled by this service's sampler, with a span link to the caller's context,
//! and answers which trace that is in `traceresponse`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::TraceContextExt;
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, StandardMetrics};

/// Route label for requests no route matched: one value, whatever the path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Method label for any method outside [`KNOWN_METHODS`] (OpenTelemetry HTTP
/// semantic conventions, `http.request.method`): a client inventing methods
/// adds no series and no span names.
pub const OTHER_METHOD: &str = "_OTHER";

/// The methods of RFC 9110 and RFC 5789, the only ones kept as they are.
pub const KNOWN_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// `method` if it is one of [`KNOWN_METHODS`], else [`OTHER_METHOD`].
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.into_iter().find(|m| *m == method).unwrap_or(OTHER_METHOD)
}

/// The poem middleware. Apply it outermost: `route.with(ServerTelemetry::new(&metrics))`.
#[derive(Clone)]
pub struct ServerTelemetry {
    metrics: Arc<StandardMetrics>,
    /// operationId -> OpenAPI path template (`/orders/{id}`), see [`ServerTelemetry::with_openapi`].
    operations: Arc<HashMap<String, String>>,
    /// The shape of each template (`/orders/{}`) -> the template, for
    /// responses that carry the router's pattern but no operation id (a 405).
    shapes: Arc<HashMap<String, String>>,
}

impl ServerTelemetry {
    pub fn new(metrics: &Metrics) -> Self {
        Self { metrics: Arc::new(metrics.standard.clone()), operations: Arc::default(), shapes: Arc::default() }
    }

    /// Names poem-openapi routes by their OpenAPI template. poem-openapi
    /// registers `/orders/{id}` with the router as `/orders/:param0`, so the
    /// router's pattern alone would label the route `/orders/{param0}`; the
    /// operation id it attaches to each response maps back to the contract's
    /// path. `spec_yaml` is the service's served spec. A response with only
    /// the router's pattern (a 405 has no operation) is named by the template
    /// of the same shape, so each route has one spelling.
    pub fn with_openapi(mut self, spec_yaml: &str) -> Self {
        let mut ops = HashMap::new();
        let mut shapes = HashMap::new();
        if let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(spec_yaml)
            && let Some(paths) = doc.get("paths").and_then(|p| p.as_mapping())
        {
            for (path, item) in paths {
                let (Some(path), Some(item)) = (path.as_str(), item.as_mapping()) else { continue };
                shapes.insert(route_shape(path), path.to_owned());
                for op in item.values() {
                    if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                        ops.insert(id.to_owned(), path.to_owned());
                    }
                }
            }
        }
        self.operations = Arc::new(ops);
        self.shapes = Arc::new(shapes);
        self
    }
}

impl<E: Endpoint> Middleware<E> for ServerTelemetry {
    type Output = ServerTelemetryEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ServerTelemetryEndpoint {
            inner: ep,
            metrics: self.metrics.clone(),
            operations: self.operations.clone(),
            shapes: self.shapes.clone(),
        }
    }
}

pub struct ServerTelemetryEndpoint<E> {
    inner: E,
    metrics: Arc<StandardMetrics>,
    operations: Arc<HashMap<String, String>>,
    shapes: Arc<HashMap<String, String>>,
}

/// A path template with its parameter names erased (`/orders/:param0` and
/// `/orders/{id}` are both `/orders/{}`).
fn route_shape(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with(':') || (seg.starts_with('{') && seg.ends_with('}')) { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// poem writes path parameters as `:id`; the route label and `http.route`
/// use the OpenAPI form `{id}`, as the dashboards and contracts do.
pub fn route_template(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

impl<E: Endpoint> Endpoint for ServerTelemetryEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let parent = crate::propagation::extract_http(req.headers());
        let trusted = crate::propagation::trust::is_trusted(req.headers());
        // Bounded: an invented method is `_OTHER` (its spelling goes only
        // into `http.request.method_original`, never into a name or label).
        let original = req.method().as_str();
        let method = method_label(original);
        let span_method = if method == OTHER_METHOD { "HTTP" } else { method };
        let span = tracing::info_span!(
            parent: None,
            "http.server",
            otel.name = %span_method,
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.request.method_original = (method == OTHER_METHOD).then_some(original),
            http.route = Empty,
            http.response.status_code = Empty,
            url.path = %req.uri().path(),
            url.scheme = "http",
            user_agent.original = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or(""),
        );
        // The caller's trace is continued only for a fellow service; a client
        // gets a new trace (our sampler decides) linked to the one it sent.
        if trusted {
            let _ = span.set_parent(parent);
        } else {
            let caller = parent.span().span_context().clone();
            if caller.is_valid() {
                span.add_link(caller);
            }
        }
        // A health probe or scrape is not worth a trace, but still counts in RED.
        let start = Instant::now();
        let result = self.inner.call(req).instrument(span.clone()).await;
        let (resp, pattern, operation) = match result {
            Ok(out) => {
                let resp = out.into_response();
                let pattern = resp.data::<PathPattern>().map(|p| p.0.clone());
                let op = resp.data::<OperationId>().map(|o| o.0);
                (resp, pattern, op)
            }
            Err(err) => {
                let pattern = err.data::<PathPattern>().map(|p| p.0.clone());
                let op = err.data::<OperationId>().map(|o| o.0);
                (err.into_response(), pattern, op)
            }
        };
        let elapsed = start.elapsed().as_secs_f64();
        let route = match operation.and_then(|op| self.operations.get(op)) {
            Some(template) => template.clone(),
            // An empty pattern: a nest matched its prefix but nothing inside it did.
            None => pattern
                .map(|p: Arc<str>| self.shapes.get(&route_shape(&p)).cloned().unwrap_or_else(|| route_template(&p)))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned()),
        };
        let status = resp.status().as_u16();
        // The name is final only now that the router has matched; by now the
        // OpenTelemetry span exists (logs inside asked for its ids), so rename it there.
        span.context().span().update_name(format!("{span_method} {route}"));
        span.record("http.route", route.as_str());
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        // Observe inside the span so the exemplar is this request's trace.
        span.in_scope(|| self.metrics.observe_http_server(method, &route, status, elapsed));
        // W3C Trace Context level 2 `traceresponse`: which trace this request
        // became, so a client whose context was only linked can quote it.
        let mut resp = resp;
        let sc = span.context().span().span_context().clone();
        if sc.is_valid()
            && let Ok(v) = http::HeaderValue::from_str(&format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
        {
            resp.headers_mut().insert("traceresponse", v);
        }
        Ok(resp)
    }
}

/// `GET /metrics`: the OpenMetrics exposition of `metrics`.
pub fn metrics_endpoint(metrics: Metrics) -> impl Endpoint<Output = Response> {
    poem::endpoint::make_sync(move |_| Response::builder().content_type(OPENMETRICS_CONTENT_TYPE).body(metrics.encode()))
}

/// Adds the current span's context to an outgoing request's headers
/// (`traceparent`, `tracestate`, `baggage`).
pub fn inject_current(headers: &mut http::HeaderMap) {
    crate::propagation::inject_http(&tracing::Span::current().context(), headers);
}

/// A client span for an outgoing request to `peer`; enter it (or
/// `.instrument(span)`) around the call and inject its context.
pub fn client_span(peer: &str, method: &str, url: &str) -> tracing::Span {
    tracing::info_span!(
        "http.client",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %method,
        url.full = %url,
        server.address = %peer,
        http.response.status_code = Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(route_template("/orders/:id/cancel"), "/orders/{id}/cancel");
        assert_eq!(route_template("/orders"), "/orders");
        assert_eq!(route_template("/"), "/");
    }

    #[test]
    fn invented_methods_are_other() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("FOO1BAR"), OTHER_METHOD);
        assert_eq!(method_label("get"), OTHER_METHOD, "methods are case-sensitive");
    }

    #[test]
    fn shapes_ignore_parameter_names() {
        assert_eq!(route_shape("/orders/:param0/cancel"), route_shape("/orders/{id}/cancel"));
        assert_ne!(route_shape("/orders/{id}"), route_shape("/orders/{id}/cancel"));
    }
}
