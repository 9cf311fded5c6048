//! Inventory's catalog, as Order needs it: does each SKU exist, and its price.
//!
//! The client is generated at build time from Inventory's contract,
//! `services/inventory/openapi.yaml`, by progenitor (`build.rs`): the
//! operations, parameters and answer types are the contract's, and an edit of
//! the contract changes them (or fails the build where Order's use no longer
//! fits). The generated client sends on the platform [`ServiceClient`]'s HTTP
//! client (a deadline on every attempt), and each call goes through
//! [`ServiceClient::idempotent`]: a client span per attempt whose signed
//! trace context the generated pre-hook [`propagate`] injects, the peer's
//! circuit breaker, jittered retries (`inventory.max_attempts`) and
//! `http_client_request_duration_seconds`.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use glasshouse_platform::http_client::{ClientError, ServiceClient};
use progenitor_client::{ByteStream, Error, ResponseValue};

/// The generated client and its types (`Client`, `types::ItemPage`, ...).
#[allow(clippy::all, clippy::pedantic, clippy::nursery, clippy::unwrap_used, clippy::redundant_clone, unused, missing_docs)]
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/inventory_client.rs"));
}

/// One unit's price, as the contract's `Price` schema.
pub use generated::types::Price;

/// The most of an error answer's body kept for the error message.
const ERROR_BODY_CHARS: usize = 512;

#[derive(Clone)]
pub struct InventoryClient {
    service: ServiceClient,
    catalog: generated::Client,
}

impl InventoryClient {
    pub fn new(service: ServiceClient) -> Self {
        let catalog = generated::Client::new_with_client(service.base_url(), service.http().clone());
        Self { service, catalog }
    }

    /// Prices of `skus` (`GET /items?skus=`, a batch read): the map holds the
    /// ones Inventory knows; missing ones are unknown SKUs.
    pub async fn prices(&self, skus: &[String]) -> Result<BTreeMap<String, Price>, ClientError> {
        let skus = skus.join(",");
        let page = self
            .service
            .idempotent("GET", "/items", || async {
                let answer = self.catalog.list_items().skus(skus.clone()).send().await;
                self.answer(answer).await
            })
            .await?;
        // `String::from`: should the contract constrain `sku`, it becomes a newtype.
        #[allow(clippy::useless_conversion)]
        let prices = page.items.into_iter().map(|item| (String::from(item.sku), item.price)).collect();
        Ok(prices)
    }

    /// One attempt's answer: the body, or the error the platform's client
    /// classifies (retry, breaker, 503 to Order's caller when unavailable).
    async fn answer<T>(&self, answer: Result<ResponseValue<T>, Error<ByteStream>>) -> Result<T, ClientError> {
        let peer = || self.service.peer().to_owned();
        let answered = |status: reqwest::StatusCode| {
            tracing::Span::current().record("http.response.status_code", i64::from(status.as_u16()));
        };
        match answer {
            Ok(value) => {
                answered(value.status());
                Ok(value.into_inner())
            }
            Err(Error::ErrorResponse(value)) => {
                answered(value.status());
                let status = value.status().as_u16();
                Err(ClientError::Status { peer: peer(), status, body: excerpt(value.into_inner()).await })
            }
            Err(Error::UnexpectedResponse(response)) => {
                let status = response.status();
                answered(status);
                let body = excerpt(ByteStream::new(Box::pin(response.bytes_stream()))).await;
                if status.is_client_error() || status.is_server_error() {
                    Err(ClientError::Status { peer: peer(), status: status.as_u16(), body })
                } else {
                    Err(ClientError::Decode { peer: peer(), reason: format!("status {status} is not in the contract: {body}") })
                }
            }
            Err(Error::InvalidResponsePayload(_, e)) => Err(ClientError::Decode { peer: peer(), reason: e.to_string() }),
            Err(Error::CommunicationError(e) | Error::ResponseBodyError(e) | Error::InvalidUpgrade(e)) => {
                Err(self.service.transport_error(e))
            }
            Err(Error::InvalidRequest(reason) | Error::Custom(reason)) => Err(ClientError::Request { peer: peer(), reason }),
        }
    }
}

/// The start of an error answer's body, for the error message (lossy UTF-8).
async fn excerpt(body: ByteStream) -> String {
    let mut stream = body.into_inner();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= 4 * ERROR_BODY_CHARS {
            break;
        }
    }
    String::from_utf8_lossy(&bytes).chars().take(ERROR_BODY_CHARS).collect()
}

/// The pre-hook of every generated request: the current span's trace
/// context (the attempt's client span), signed for Inventory to trust.
pub async fn propagate(request: &mut reqwest::Request) -> Result<(), std::convert::Infallible> {
    glasshouse_telemetry::http::inject_current(request.headers_mut());
    Ok(())
}
