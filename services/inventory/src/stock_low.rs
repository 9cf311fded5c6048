//! The `inventory_stock_low_items` gauge: recounted every few seconds (other
//! replicas change stock too) and soon after this process changes stock.

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use tokio::sync::{Notify, watch};

use crate::metrics::InventoryMetrics;
use crate::store;

/// Shortest pause between two recounts, so a burst of reservations costs one
/// `COUNT(*)`, not one per order.
const MIN_GAP: Duration = Duration::from_millis(250);

/// A handle to poke the refresher after a stock change.
#[derive(Clone, Debug, Default)]
pub struct LowStock {
    notify: Arc<Notify>,
}

impl LowStock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stock changed: recount soon. Never blocks; pokes coalesce.
    pub fn changed(&self) {
        self.notify.notify_one();
    }

    /// Recounts on every poke (at most every 250 ms) and every `every`,
    /// until shutdown.
    pub async fn run(
        self,
        pool: MySqlPool,
        threshold: u32,
        every: Duration,
        metrics: InventoryMetrics,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            match store::count_low_stock(&pool, threshold).await {
                Ok(n) => metrics.set_stock_low(n),
                Err(e) => tracing::warn!(error = %e, "low-stock count failed; the gauge keeps its last value"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.notify.notified() => {
                    tokio::select! {
                        _ = tokio::time::sleep(MIN_GAP) => {}
                        _ = shutdown.changed() => return,
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
