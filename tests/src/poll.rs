//! Waiting without sleeps-as-synchronisation: poll a condition until it holds or
//! a deadline passes, and say what was awaited when it does not.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `probe` every `every` until it returns `Ok(Some(value))`, and gives up
/// after `timeout` with an error naming `what` and the last probe error.
///
/// `Ok(None)` means "not yet"; `Err` is remembered (the backend may still be
/// warming up) and reported if the deadline passes.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error: Option<anyhow::Error> = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow::anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(every).await;
    }
}
