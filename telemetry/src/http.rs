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

use opentelemetry::trace::{FutureExt as _, Link, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::OperationId;
use tracing::field::Empty;

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

// Attribute names of the OpenTelemetry HTTP server semantic conventions.
const HTTP_REQUEST_METHOD: &str = "http.request.method";
const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
const HTTP_ROUTE: &str = "http.route";
const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
const URL_PATH: &str = "url.path";
const URL_SCHEME: &str = "url.scheme";
const USER_AGENT_ORIGINAL: &str = "user_agent.original";

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
        let method = method_label(req.method().as_str());
        let span_method = if method == OTHER_METHOD { "HTTP" } else { method };
        // The server span is an OpenTelemetry span built here, not a
        // `tracing` span bridged by tracing-opentelemetry: the bridge costs
        // every request a registry entry, a span builder and a lock and a
        // context switch at each poll (telemetry/METRICS.md, "Cost of the
        // telemetry"). Business code still sees it as the current context:
        // `tracing` spans opened inside are its children, log lines carry its
        // ids, [`crate::traces::set_request_attribute`] adds to it.
        let cx = match crate::traces::request_tracer() {
            Some(tracer) => server_span(tracer, &req, method, span_method, parent, trusted),
            None => Context::new(),
        };
        // A health probe or scrape is not worth a trace, but still counts in RED.
        let start = Instant::now();
        let result = self.inner.call(req).with_context(cx.clone()).await;
        let (mut resp, pattern, operation) = match result {
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
        // Observe inside the request's context so the exemplar is its trace.
        {
            let _in_request = cx.clone().attach();
            self.metrics.observe_http_server(method, &route, status, elapsed);
        }
        let span = cx.span();
        if span.is_recording() {
            // The name is final only now that the router has matched.
            span.update_name(format!("{span_method} {route}"));
            span.set_attribute(KeyValue::new(HTTP_ROUTE, route));
            span.set_attribute(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(status)));
            if status >= 500 {
                span.set_status(Status::error(""));
            }
        }
        // W3C Trace Context level 2 `traceresponse`: which trace this request
        // became, so a client whose context was only linked can quote it.
        let sc = span.span_context();
        if sc.is_valid()
            && let Ok(v) = http::HeaderValue::from_str(&format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
        {
            resp.headers_mut().insert("traceresponse", v);
        }
        span.end();
        Ok(resp)
    }
}

/// Starts the server span of `req` and returns the context the request runs
/// in. The caller's trace is continued only for a fellow service (`trusted`);
/// a client gets a new trace (this service's sampler decides) linked to the
/// one it sent. Attributes: OpenTelemetry HTTP server semantic conventions
/// (`http.request.method`, `url.path`, `url.scheme`, `user_agent.original`
/// when sent; `http.route` and `http.response.status_code` when answered).
fn server_span(
    tracer: &SdkTracer,
    req: &Request,
    method: &'static str,
    span_method: &'static str,
    parent: Context,
    trusted: bool,
) -> Context {
    let mut attributes = Vec::with_capacity(6);
    attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, method));
    if method == OTHER_METHOD {
        attributes.push(KeyValue::new(HTTP_REQUEST_METHOD_ORIGINAL, req.method().as_str().to_owned()));
    }
    attributes.push(KeyValue::new(URL_PATH, req.uri().path().to_owned()));
    attributes.push(KeyValue::new(URL_SCHEME, "http"));
    if let Some(agent) = req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        attributes.push(KeyValue::new(USER_AGENT_ORIGINAL, agent.to_owned()));
    }
    let builder = tracer.span_builder(span_method).with_kind(SpanKind::Server).with_attributes(attributes);
    let (builder, parent) = if trusted {
        (builder, parent)
    } else {
        let caller = parent.span().span_context().clone();
        let builder = if caller.is_valid() { builder.with_links(vec![Link::with_context(caller)]) } else { builder };
        (builder, Context::new())
    };
    let span = builder.start_with_context(tracer, &parent);
    crate::traces::request_context(parent.with_span(span))
}

/// `GET /metrics`: the OpenMetrics exposition of `metrics`.
pub fn metrics_endpoint(metrics: Metrics) -> impl Endpoint<Output = Response> {
    poem::endpoint::make_sync(move |_| Response::builder().content_type(OPENMETRICS_CONTENT_TYPE).body(metrics.encode()))
}

/// Adds the current span's context to an outgoing request's headers
/// (`traceparent`, `tracestate`, `baggage`).
pub fn inject_current(headers: &mut http::HeaderMap) {
    crate::propagation::inject_http(&crate::context::current_context(), headers);
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
mod span_tests {
    use std::sync::Mutex;

    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use poem::{EndpointExt as _, Route, handler};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Keeps every exported span (a simple processor exports at span end).
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    #[handler]
    fn get_order() -> &'static str {
        crate::traces::set_request_attribute("order.id", "o-42".into());
        // From inside a `tracing` span the handler opened: still the server span.
        let child = tracing::info_span!("SELECT orders");
        child.in_scope(|| crate::traces::set_request_attribute("enduser.id", "customer-7".into()));
        "ok"
    }

    fn attr(span: &SpanData, key: &str) -> Option<String> {
        span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
    }

    /// The server span is built with the OpenTelemetry API, not through
    /// `tracing`: this checks what the bridge used to give for free (children
    /// and attributes set from inside the handler) and the HTTP conventions.
    #[tokio::test]
    async fn server_span_is_the_parent_of_handler_spans_and_takes_request_attributes() {
        let spans = Collect::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
        let tracer = crate::traces::tracer(&provider, "span-test");
        crate::traces::set_request_tracer(tracer.clone());
        let subscriber = tracing_subscriber::registry().with(crate::traces::layer(tracer));
        let _default = tracing::subscriber::set_default(subscriber);

        let metrics = Metrics::new("span-test");
        let ep = Route::new().at("/orders/:id", poem::get(get_order)).with(ServerTelemetry::new(&metrics));
        // A client (untrusted) context: linked, not continued.
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let req = Request::builder().uri_str("/orders/42").header("traceparent", format!("00-{caller_trace}-00f067aa0ba902b7-01")).finish();
        let resp = ep.call(req).await.expect("answered");
        assert_eq!(resp.status().as_u16(), 200);
        let traceresponse = resp.headers().get("traceresponse").and_then(|v| v.to_str().ok()).map(str::to_owned).expect("traceresponse");

        let spans = spans.0.lock().unwrap().clone();
        let server = spans.iter().find(|s| s.span_kind == SpanKind::Server).expect("a server span");
        let child = spans.iter().find(|s| s.name == "SELECT orders").expect("the handler's span");
        assert_eq!(server.name, "GET /orders/{id}");
        assert_eq!(attr(server, HTTP_ROUTE).as_deref(), Some("/orders/{id}"));
        assert_eq!(attr(server, HTTP_RESPONSE_STATUS_CODE).as_deref(), Some("200"));
        assert_eq!(attr(server, HTTP_REQUEST_METHOD).as_deref(), Some("GET"));
        assert_eq!(attr(server, URL_PATH).as_deref(), Some("/orders/42"));
        assert_eq!(attr(server, USER_AGENT_ORIGINAL), None, "no User-Agent sent, none recorded");
        assert_eq!(attr(server, "order.id").as_deref(), Some("o-42"));
        assert_eq!(attr(server, "enduser.id").as_deref(), Some("customer-7"), "set from inside a child span");
        assert_eq!(attr(child, "order.id"), None);

        let sc = &server.span_context;
        assert_eq!(child.span_context.trace_id(), sc.trace_id(), "one trace");
        assert_eq!(child.parent_span_id, sc.span_id(), "the handler's span is the server span's child");
        assert_ne!(sc.trace_id(), TraceId::from_hex(caller_trace).unwrap(), "a client's trace is not continued");
        assert_eq!(server.parent_span_id, SpanId::INVALID, "a new trace starts at the server span");
        assert_eq!(server.links.links.len(), 1, "linked to the client's context");
        assert_eq!(server.links.links[0].span_context.trace_id(), TraceId::from_hex(caller_trace).unwrap());
        assert_eq!(traceresponse, format!("00-{}-{}-01", sc.trace_id(), sc.span_id()));
        provider.shutdown().unwrap();
    }
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
