//! problem+json over a real poem server on 127.0.0.1:0, spoken to with reqwest.
#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use glasshouse_platform::problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemDetails, ProblemJson};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Route, Server, handler};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, OpenApiService};
use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Object)]
struct Widget {
    id: u32,
    name: String,
}

#[derive(ApiResponse)]
enum WidgetResponse {
    /// The widget.
    #[oai(status = 200)]
    Ok(Json<Widget>),
}

struct Api;

#[OpenApi]
impl Api {
    /// 1 exists, 2 hits an internal error, anything else is not found.
    #[oai(path = "/widgets/:id", method = "get")]
    async fn get(&self, id: Path<u32>) -> Result<WidgetResponse, Problem> {
        match id.0 {
            1 => Ok(WidgetResponse::Ok(Json(Widget { id: 1, name: "one".into() }))),
            2 => {
                let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused by 10.1.2.3:5432");
                Err(Problem::internal(anyhow::Error::new(cause).context("load widget 2 from postgres")))
            }
            n => Err(Problem::not_found(format!("There is no widget {n}.")).with_extension("widget_id", n)),
        }
    }

    /// Refuses empty names with a 422.
    #[oai(path = "/widgets", method = "post")]
    async fn create(&self, body: Json<Widget>) -> Result<WidgetResponse, Problem> {
        if body.0.name.is_empty() {
            return Err(Problem::validation("name must not be empty").with_extension("field", "name"));
        }
        Ok(WidgetResponse::Ok(body))
    }

    /// A dependency is down.
    #[oai(path = "/unavailable", method = "get")]
    async fn unavailable(&self) -> Result<WidgetResponse, Problem> {
        Err(Problem::unavailable("Inventory is unreachable.", Duration::from_secs(3)))
    }

    /// `?` on an anyhow error gives the opaque 500.
    #[oai(path = "/anyhow", method = "get")]
    async fn anyhow(&self) -> Result<WidgetResponse, Problem> {
        let n: u32 = "not a number".parse().context("parse the secret sauce")?;
        Ok(WidgetResponse::Ok(Json(Widget { id: n, name: String::new() })))
    }
}

/// A plain poem handler (not poem-openapi) returning a problem through `poem::Error`.
#[handler]
fn plain() -> poem::Result<String> {
    Err(Problem::conflict("The order is already cancelled.").into())
}

fn api_service() -> OpenApiService<Api, ()> {
    OpenApiService::new(Api, "problem test", "1.0")
}

/// Starts the app on 127.0.0.1:0; the server stops when the sender drops.
async fn serve(with_middleware: bool) -> (SocketAddr, oneshot::Sender<()>) {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].0.as_socket_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let route = Route::new().nest("/", api_service()).at("/plain", plain);
    let app = if with_middleware { route.with(ProblemJson).boxed() } else { route.map_to_response().boxed() };
    tokio::spawn(async move {
        Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async {
                    rx.await.ok();
                },
                Some(Duration::from_secs(5)),
            )
            .await
    });
    (addr, tx)
}

async fn get(addr: SocketAddr, path: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn assert_problem(headers: &reqwest::header::HeaderMap, body: &Value, slug: &str, status: u16) {
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE, "{body}");
    assert_eq!(body["type"], format!("https://glasshouse.dev/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    // The typed client-side form parses it too.
    let parsed: ProblemDetails = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(parsed.slug(), Some(slug));
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn handler_problems_are_problem_json_with_type_status_and_extensions() {
    let (addr, _stop) = serve(true).await;

    let (status, headers, body) = get(addr, "/widgets/1").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "one");

    let (status, headers404, body) = get(addr, "/widgets/7").await;
    assert_eq!(status, 404);
    assert_problem(&headers404, &body, "not-found", 404);
    assert_eq!(body["detail"], "There is no widget 7.");
    assert_eq!(body["widget_id"], 7);
    assert_eq!(body["instance"], "/widgets/7", "the middleware fills in the path");
    drop(headers);

    let (status, headers, body) = get(addr, "/unavailable").await;
    assert_eq!(status, 503);
    assert_problem(&headers, &body, "service-unavailable", 503);
    assert_eq!(headers[reqwest::header::RETRY_AFTER], "3");

    let resp =
        reqwest::Client::new().post(format!("http://{addr}/widgets")).json(&serde_json::json!({"id": 3, "name": ""})).send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.unwrap();
    assert_problem(&headers, &body, "validation-failed", 422);
    assert_eq!(body["field"], "name");

    let (status, headers, body) = get(addr, "/plain").await;
    assert_eq!(status, 409);
    assert_problem(&headers, &body, "conflict", 409);
}

#[tokio::test]
async fn framework_errors_become_problem_json_too() {
    let (addr, _stop) = serve(true).await;

    // Unknown route.
    let (status, headers, body) = get(addr, "/no/such/thing").await;
    assert_eq!(status, 404);
    assert_problem(&headers, &body, "not-found", 404);
    assert_eq!(body["instance"], "/no/such/thing");

    // Bad path parameter: poem-openapi's parse error, with its message as detail.
    let (status, headers, body) = get(addr, "/widgets/abc").await;
    assert_eq!(status, 400);
    assert_problem(&headers, &body, "bad-request", 400);
    assert!(body["detail"].as_str().unwrap().contains("id"), "{body}");

    // Body that is not JSON.
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/widgets"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.unwrap();
    assert_problem(&headers, &body, "bad-request", 400);

    // Wrong method on an existing path.
    let resp = reqwest::Client::new().delete(format!("http://{addr}/widgets/1")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.unwrap();
    assert_problem(&headers, &body, "method-not-allowed", 405);
}

#[tokio::test]
async fn without_the_middleware_handler_problems_still_keep_their_body() {
    // `Problem` is a poem ResponseError, so the conversion to poem::Error that
    // poem-openapi does on `Err` keeps the problem body.
    let (addr, _stop) = serve(false).await;
    let (status, headers, body) = get(addr, "/widgets/9").await;
    assert_eq!(status, 404);
    assert_problem(&headers, &body, "not-found", 404);
    assert_eq!(body["widget_id"], 9);
}

#[tokio::test]
async fn internal_errors_are_opaque_to_the_client_and_fully_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    // Current-thread runtime: the server's tasks run on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (addr, _stop) = serve(true).await;

    for (path, secret_bits) in
        [("/widgets/2", vec!["postgres", "10.1.2.3", "connection refused"]), ("/anyhow", vec!["secret sauce", "invalid digit"])]
    {
        let (status, headers, body) = get(addr, path).await;
        assert_eq!(status, 500);
        assert_problem(&headers, &body, "internal-error", 500);
        let text = body.to_string();
        for bit in &secret_bits {
            assert!(!text.contains(bit), "{bit:?} leaked to the client: {text}");
        }
        let instance = body["instance"].as_str().unwrap();
        let error_id = instance.strip_prefix("urn:uuid:").expect("instance is the error id");
        uuid::Uuid::parse_str(error_id).unwrap();

        let logs = captured.text();
        let line = logs.lines().find(|l| l.contains(error_id)).unwrap_or_else(|| panic!("no log line with error id {error_id}:\n{logs}"));
        assert!(line.contains("ERROR"), "{line}");
        for bit in &secret_bits {
            assert!(line.contains(bit), "log line lacks {bit:?}: {line}");
        }
    }
    let logs = captured.text();
    assert!(
        logs.contains("load widget 2 from postgres: connection refused by 10.1.2.3:5432"),
        "the whole cause chain, outer to inner: {logs}"
    );
}

#[test]
fn the_openapi_spec_documents_problem_json() {
    let spec: Value = serde_json::from_str(&api_service().spec()).unwrap();
    let default = &spec["paths"]["/widgets/{id}"]["get"]["responses"]["default"];
    let schema_ref = &default["content"][PROBLEM_CONTENT_TYPE]["schema"]["$ref"];
    assert_eq!(schema_ref, "#/components/schemas/Problem", "{default}");
    let problem = &spec["components"]["schemas"]["Problem"];
    for member in ["type", "title", "status", "detail", "instance"] {
        assert!(problem["properties"][member].is_object(), "{member} missing: {problem}");
    }
    assert_eq!(spec["paths"]["/widgets/{id}"]["get"]["responses"]["200"]["description"], "The widget.");
}
