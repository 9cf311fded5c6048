//! What one request produced: its outcome class, its trace id, its latency.
//! A leaf module: the recorder ([`crate::stats`]) and the Prometheus
//! families ([`crate::metrics`]) both speak these types.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// Outcome of one request; the `outcome` label of `loadtest_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The status was one the step expects.
    Success,
    /// Unexpected 4xx.
    Http4xx,
    /// Unexpected 5xx.
    Http5xx,
    /// Unexpected status outside 4xx/5xx (e.g. a 200 where 202 was expected).
    HttpOther,
    /// No complete response within `http.timeout`.
    Timeout,
    /// TCP connect refused or timed out.
    Connect,
    /// Broken connection or invalid HTTP.
    Protocol,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 7] =
        [Outcome::Success, Outcome::Http4xx, Outcome::Http5xx, Outcome::HttpOther, Outcome::Timeout, Outcome::Connect, Outcome::Protocol];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Http4xx => "http_4xx",
            Outcome::Http5xx => "http_5xx",
            Outcome::HttpOther => "http_other",
            Outcome::Timeout => "timeout",
            Outcome::Connect => "connect",
            Outcome::Protocol => "protocol",
        }
    }

    /// Position in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Classifies a received status.
    pub fn from_status(status: u16, expected: bool) -> Outcome {
        match (expected, status) {
            (true, _) => Outcome::Success,
            (false, 400..=499) => Outcome::Http4xx,
            (false, 500..=599) => Outcome::Http5xx,
            _ => Outcome::HttpOther,
        }
    }
}

/// A W3C trace id (16 random bytes), kept with each sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceId(pub u128);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index into the run's step names.
    pub step: usize,
    /// From the intended start (open model, first request of an iteration)
    /// or the actual send, to the end of the response body.
    pub latency: Duration,
    /// When the response ended (places the sample in a time bucket).
    pub finished: Instant,
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub trace_id: TraceId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_classes() {
        assert_eq!(Outcome::from_status(202, true), Outcome::Success);
        assert_eq!(Outcome::from_status(404, false), Outcome::Http4xx);
        assert_eq!(Outcome::from_status(503, false), Outcome::Http5xx);
        assert_eq!(Outcome::from_status(200, false), Outcome::HttpOther);
        assert_eq!(TraceId(0xab).to_string(), "000000000000000000000000000000ab");
    }
}
