//! Exponential backoff with full jitter, for every retry loop of the platform
//! (relay, consumer, HTTP client): spreading retries keeps a recovering
//! dependency from being hit by every caller at the same instant.

use std::time::Duration;

/// The delay before retry number `attempt` (1-based): a random duration in
/// `[0, min(cap, base * 2^(attempt-1))]`, never below 1 ms.
pub fn delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let ceiling = exp.min(cap).as_nanos().max(1_000_000) as u64;
    Duration::from_nanos(jitter(ceiling)).max(Duration::from_millis(1))
}

/// A pseudo-random number in `[0, ceiling]`: clock nanoseconds mixed with a
/// per-process counter (splitmix64). Not for cryptography; only to spread retries.
fn jitter(ceiling: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut z = nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % (ceiling + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_exponential_ceiling_and_cap() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        for attempt in 1..40 {
            let ceiling = base.saturating_mul(1 << (attempt - 1).min(20)).min(cap);
            for _ in 0..50 {
                let d = delay(attempt, base, cap);
                assert!(d <= ceiling.max(Duration::from_millis(1)), "attempt {attempt}: {d:?} > {ceiling:?}");
                assert!(d >= Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn jitter_spreads() {
        let values: std::collections::HashSet<_> = (0..200).map(|_| jitter(1_000_000)).collect();
        assert!(values.len() > 150, "only {} distinct values", values.len());
    }
}
