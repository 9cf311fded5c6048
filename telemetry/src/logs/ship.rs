//! Shipping log records to Loki (push API, JSON) and Elasticsearch/OpenSearch
//! (bulk API, ECS documents).
//!
//! Each sink owns a bounded queue and one background task. The task waits for
//! a record, then gathers more until the batch is full or the flush interval
//! passes, and sends the batch once. A batch the backend refuses or cannot
//! take is dropped and counted (no unbounded retry: a backend that is away
//! must not grow memory), and the task backs off before the next attempt, up
//! to a few seconds, so it recovers by itself shortly after the backend does.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::instrument::WithSubscriber;

use super::{LogRecord, Origin};
use crate::metrics::{Exporter, Signal, StandardMetrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkKind {
    Loki,
    Elasticsearch,
}

enum Msg {
    Record(Arc<LogRecord>),
    /// Send what is queued, then answer.
    Flush(oneshot::Sender<()>),
}

/// The producer side of a sink, held by the layer.
#[derive(Clone)]
pub(crate) struct SinkHandle {
    kind: SinkKind,
    tx: mpsc::Sender<Msg>,
}

impl SinkHandle {
    /// Queues the record; false if the queue is full or the sink is gone (counted by the caller).
    pub(crate) fn offer(&self, record: Arc<LogRecord>) -> bool {
        self.tx.try_send(Msg::Record(record)).is_ok()
    }

    pub(crate) fn exporter(&self) -> Exporter {
        super::exporter_of(self.kind)
    }

    /// Waits until everything queued before this call was sent (or dropped), at most `timeout`.
    pub(crate) async fn flush(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if tokio::time::timeout(timeout, self.tx.send(Msg::Flush(tx))).await.is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
    }
}

pub(crate) struct SinkSettings {
    pub kind: SinkKind,
    pub url: String,
    pub index: String,
    pub date_suffix: bool,
    pub buffer: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
}

/// Starts a sink's task on the current Tokio runtime.
pub(crate) fn spawn(settings: SinkSettings, origin: Arc<Origin>, metrics: StandardMetrics) -> anyhow::Result<SinkHandle> {
    let (tx, rx) = mpsc::channel(settings.buffer);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let kind = settings.kind;
    let task = Shipper { settings, origin, metrics, client, backoff: Duration::ZERO }.run(rx);
    // The shipper's own HTTP client must not log into the pipeline it feeds.
    tokio::spawn(task.with_subscriber(tracing::subscriber::NoSubscriber::default()));
    Ok(SinkHandle { kind, tx })
}

struct Shipper {
    settings: SinkSettings,
    origin: Arc<Origin>,
    metrics: StandardMetrics,
    client: reqwest::Client,
    backoff: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Shipper {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<Arc<LogRecord>> = Vec::with_capacity(self.settings.batch_size);
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            // Block for the first message of a batch.
            match rx.recv().await {
                None => return,
                Some(Msg::Record(r)) => batch.push(r),
                Some(Msg::Flush(done)) => waiting.push(done),
            }
            // Then gather until full, flushed, or the interval passes.
            let deadline = tokio::time::Instant::now() + self.settings.flush_interval;
            while batch.len() < self.settings.batch_size && waiting.is_empty() {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Msg::Record(r))) => batch.push(r),
                    Ok(Some(Msg::Flush(done))) => waiting.push(done),
                    Ok(None) | Err(_) => break,
                }
            }
            if !batch.is_empty() {
                if !self.backoff.is_zero() && waiting.is_empty() {
                    tokio::time::sleep(self.backoff).await;
                }
                let n = batch.len() as u64;
                match self.send(&batch).await {
                    Ok(failed_items) => {
                        self.backoff = Duration::ZERO;
                        if failed_items > 0 {
                            self.metrics.add_dropped(Signal::logs, super::exporter_of(self.settings.kind), failed_items);
                        }
                    }
                    Err(_) => {
                        self.metrics.add_dropped(Signal::logs, super::exporter_of(self.settings.kind), n);
                        self.backoff = (self.backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                    }
                }
                batch.clear();
            }
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Sends one batch; `Ok(n)` = accepted, with `n` items the backend refused one by one.
    async fn send(&self, batch: &[Arc<LogRecord>]) -> anyhow::Result<u64> {
        match self.settings.kind {
            SinkKind::Loki => self.send_loki(batch).await.map(|()| 0),
            SinkKind::Elasticsearch => self.send_bulk(batch).await,
        }
    }

    /// Loki push API, JSON flavour: one stream per level, labels service,
    /// level and environment only (low cardinality; ids stay in the line).
    async fn send_loki(&self, batch: &[Arc<LogRecord>]) -> anyhow::Result<()> {
        let mut streams: Vec<(String, Vec<Value>)> = Vec::new();
        for r in batch {
            let level = r.level.as_str().to_ascii_lowercase();
            let ts = r.timestamp.timestamp_nanos_opt().unwrap_or_default().to_string();
            let entry = Value::Array(vec![ts.into(), r.to_json_line(&self.origin).into()]);
            match streams.iter_mut().find(|(l, _)| *l == level) {
                Some((_, values)) => values.push(entry),
                None => streams.push((level, vec![entry])),
            }
        }
        let body = serde_json::json!({
            "streams": streams.into_iter().map(|(level, values)| serde_json::json!({
                "stream": { "service": self.origin.service, "level": level, "environment": self.origin.environment },
                "values": values,
            })).collect::<Vec<_>>()
        });
        let url = format!("{}/loki/api/v1/push", self.settings.url.trim_end_matches('/'));
        self.client
            .post(url)
            .json(&body)
            // VictoriaLogs: the JSON line's `message` is the log message. Loki ignores it.
            .header("VL-Msg-Field", "message")
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn send_bulk(&self, batch: &[Arc<LogRecord>]) -> anyhow::Result<u64> {
        let mut body = String::with_capacity(batch.len() * 512);
        for r in batch {
            let index = if self.settings.date_suffix {
                format!("{}-{}", self.settings.index, r.timestamp.format("%Y.%m.%d"))
            } else {
                self.settings.index.clone()
            };
            body.push_str(&serde_json::json!({ "create": { "_index": index } }).to_string());
            body.push('\n');
            body.push_str(&r.to_ecs(&self.origin).to_string());
            body.push('\n');
        }
        let url = format!("{}/_bulk", self.settings.url.trim_end_matches('/'));
        let resp: Value = self
            .client
            .post(url)
            .header("Content-Type", "application/x-ndjson")
            .body(body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if resp["errors"] == Value::Bool(true) {
            let failed = resp["items"]
                .as_array()
                .map(|items| items.iter().filter(|i| i["create"]["error"].is_object()).count())
                .unwrap_or(batch.len());
            return Ok(failed as u64);
        }
        Ok(0)
    }
}
