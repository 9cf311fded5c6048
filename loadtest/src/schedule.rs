//! Arrival schedules of the open model: when each iteration is *supposed* to start.
//!
//! The schedule is computed, not sampled: arrival `i` is the instant at which
//! the integral of the rate reaches `i`. So a constant rate `r` starts
//! iterations at `0, 1/r, 2/r, ...` and a linear ramp from `r0` to `r1` over
//! `D` solves `r0·t + (r1-r0)·t²/(2D) = i` inside that stage. Latency is then
//! measured from these intended instants, which is what corrects coordinated
//! omission: a runner that falls behind cannot hide the delay.

use std::time::Duration;

use crate::config::{Load, Stage};

/// The rate profile of an open-model run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Stages as (start rate, end rate, duration) with cumulative arrivals at each start.
    segments: Vec<Segment>,
    total: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    duration: f64,
    r0: f64,
    r1: f64,
    /// Arrivals (integral of the rate) before this segment.
    count_before: f64,
}

impl Segment {
    fn count(&self) -> f64 {
        (self.r0 + self.r1) / 2.0 * self.duration
    }
}

impl Schedule {
    /// The schedule of an open-model load; `None` for the closed model.
    pub fn from_load(load: &Load) -> Option<Schedule> {
        match load {
            Load::ConstantRate { rate, duration, .. } => Some(Schedule::ramping(*rate, &[Stage { duration: *duration, target: *rate }])),
            Load::RampingRate { start_rate, stages, .. } => Some(Schedule::ramping(*start_rate, stages)),
            Load::Closed { .. } => None,
        }
    }

    /// Linear ramps from `start_rate` through each stage's target.
    pub fn ramping(start_rate: f64, stages: &[Stage]) -> Schedule {
        let mut segments = Vec::with_capacity(stages.len());
        let mut t = 0.0;
        let mut count = 0.0;
        let mut r0 = start_rate;
        for s in stages {
            let seg = Segment { start: t, duration: s.duration.as_secs_f64(), r0, r1: s.target, count_before: count };
            count += seg.count();
            t += seg.duration;
            r0 = s.target;
            segments.push(seg);
        }
        Schedule { segments, total: Duration::from_secs_f64(t) }
    }

    /// Scheduled length of the run.
    pub fn duration(&self) -> Duration {
        self.total
    }

    /// Expected number of arrivals (the integral of the rate).
    pub fn expected_arrivals(&self) -> f64 {
        self.segments.last().map(|s| s.count_before + s.count()).unwrap_or(0.0)
    }

    /// Target rate (per second) at offset `t`; 0 after the end.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        for s in &self.segments {
            if t < s.start + s.duration {
                let f = ((t - s.start) / s.duration).clamp(0.0, 1.0);
                return s.r0 + (s.r1 - s.r0) * f;
            }
        }
        0.0
    }

    /// Offset of arrival `i` (0-based) from the start, or `None` past the end.
    pub fn arrival(&self, i: u64) -> Option<Duration> {
        let k = i as f64;
        for s in &self.segments {
            let c = s.count();
            if k < s.count_before + c {
                let local = k - s.count_before;
                // a·t² + b·t = local, with a = (r1-r0)/(2D), b = r0. The form
                // 2k / (b + sqrt(b² + 4ak)) is stable for rising, falling and
                // flat ramps alike (no division by a).
                let a = (s.r1 - s.r0) / (2.0 * s.duration);
                let b = s.r0;
                let disc = (b * b + 4.0 * a * local).max(0.0);
                let denom = b + disc.sqrt();
                let t = if denom > 0.0 { 2.0 * local / denom } else { 0.0 };
                return Some(Duration::from_secs_f64(s.start + t.clamp(0.0, s.duration)));
            }
        }
        None
    }

    /// All arrival offsets in order.
    pub fn arrivals(&self) -> impl Iterator<Item = Duration> + '_ {
        (0u64..).map_while(|i| self.arrival(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = Schedule::ramping(10.0, &[Stage { duration: secs(2.0), target: 10.0 }]);
        let a: Vec<_> = s.arrivals().collect();
        assert_eq!(a.len(), 20);
        assert_eq!(a[0], Duration::ZERO);
        assert!((a[1].as_secs_f64() - 0.1).abs() < 1e-9);
        assert!((a[19].as_secs_f64() - 1.9).abs() < 1e-9);
    }

    #[test]
    fn ramp_matches_the_integral_of_the_rate() {
        // 0 -> 100/s over 10 s: 500 arrivals, half of them in the last ~2.93 s.
        let s = Schedule::ramping(0.0, &[Stage { duration: secs(10.0), target: 100.0 }]);
        let a: Vec<_> = s.arrivals().collect();
        assert_eq!(a.len(), 500);
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "monotonic");
        // N(t) = 5 t², so arrival 250 is at sqrt(50) s.
        assert!((a[250].as_secs_f64() - 50f64.sqrt()).abs() < 1e-6);
        // Falling ramp: 100 -> 0 over 10 s mirrors it.
        let s = Schedule::ramping(100.0, &[Stage { duration: secs(10.0), target: 0.0 }]);
        let b: Vec<_> = s.arrivals().collect();
        assert_eq!(b.len(), 500);
        assert!((b[250].as_secs_f64() - (10.0 - 50f64.sqrt())).abs() < 1e-6);
        assert!(b.iter().all(|t| *t <= secs(10.0)));
    }

    #[test]
    fn stages_chain_and_rate_at_interpolates() {
        let s = Schedule::ramping(0.0, &[Stage { duration: secs(2.0), target: 10.0 }, Stage { duration: secs(3.0), target: 10.0 }]);
        assert_eq!(s.duration(), secs(5.0));
        assert!((s.expected_arrivals() - 40.0).abs() < 1e-9);
        assert_eq!(s.arrivals().count(), 40);
        assert!((s.rate_at(secs(1.0)) - 5.0).abs() < 1e-9);
        assert!((s.rate_at(secs(4.0)) - 10.0).abs() < 1e-9);
        assert_eq!(s.rate_at(secs(6.0)), 0.0);
    }
}
