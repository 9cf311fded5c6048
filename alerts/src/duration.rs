//! Prometheus durations (`5m`, `1h30m`, `250ms`): parsed, printed back in the
//! shortest exact form, and divided by a time scale for test renders.

use std::fmt;

use anyhow::{Context, bail};

/// A Prometheus duration, kept in whole milliseconds (Prometheus' own resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration {
    millis: u64,
}

/// Units Prometheus accepts, largest first, so printing can pick the largest that divides.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl PromDuration {
    pub const fn from_millis(millis: u64) -> Self {
        Self { millis }
    }

    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    /// Parses `5m`, `1h30m`, `250ms` (the Prometheus syntax; units y w d h m s ms).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let original = text;
        if text.is_empty() {
            bail!("empty duration");
        }
        let mut rest = text;
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                bail!("invalid duration '{original}': expected a number at '{rest}'");
            }
            let n: u64 = rest[..digits].parse().with_context(|| format!("invalid duration '{original}': number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            let factor = UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, f)| *f)
                .with_context(|| format!("invalid duration '{original}': unknown unit '{unit}' (use y w d h m s ms)"))?;
            total = n
                .checked_mul(factor)
                .and_then(|v| total.checked_add(v))
                .with_context(|| format!("invalid duration '{original}': too large"))?;
            rest = &rest[unit_len..];
        }
        if total == 0 {
            bail!("invalid duration '{original}': must be longer than zero");
        }
        Ok(Self { millis: total })
    }

    /// This duration divided by `factor`, rounded down to whole milliseconds.
    /// Fails when the result would be shorter than `min`, because a rate over a
    /// window of fewer than two scrapes returns nothing.
    pub fn scaled_down(self, factor: u32, min: PromDuration) -> anyhow::Result<Self> {
        if factor == 0 {
            bail!("time scale must be at least 1, got 0");
        }
        let scaled = Self { millis: self.millis / u64::from(factor) };
        if scaled < min {
            bail!("{self} divided by {factor} is {scaled}, shorter than the minimum {min}");
        }
        Ok(scaled)
    }
}

impl fmt::Display for PromDuration {
    /// The shortest exact form in days and smaller units, largest first (`90m`
    /// prints as `1h30m`, `30d` stays `30d` rather than `4w2d`), which
    /// Prometheus 2.42 parses in rule files and PromQL alike.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.millis;
        for (unit, factor) in UNITS.into_iter().skip(2) {
            if rest >= factor {
                write!(f, "{}{unit}", rest / factor)?;
                rest %= factor;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for (text, millis) in
            [("5m", 300_000), ("1h30m", 5_400_000), ("250ms", 250), ("3d", 259_200_000), ("30d", 2_592_000_000), ("1m30s", 90_000)]
        {
            let d = PromDuration::parse(text).unwrap();
            assert_eq!(d.as_millis(), millis, "{text}");
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(PromDuration::parse("90m").unwrap().to_string(), "1h30m");
        assert_eq!(PromDuration::parse("24h").unwrap().to_string(), "1d");
        assert_eq!(PromDuration::parse("1w").unwrap().to_string(), "7d");
    }

    #[test]
    fn rejects_bad_text_naming_it() {
        for bad in ["", "5", "m", "5x", "-5m", "0s", "5m3", "99999999999999999999s"] {
            let err = PromDuration::parse(bad).unwrap_err().to_string();
            assert!(err.contains("duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn scaling_divides_and_enforces_the_minimum() {
        let one_second = PromDuration::from_millis(1_000);
        let h = PromDuration::parse("1h").unwrap();
        assert_eq!(h.scaled_down(60, one_second).unwrap().to_string(), "1m");
        assert_eq!(PromDuration::parse("5m").unwrap().scaled_down(7, one_second).unwrap().to_string(), "42s857ms");
        let err = PromDuration::parse("5m").unwrap().scaled_down(600, one_second).unwrap_err().to_string();
        assert!(err.contains("500ms") && err.contains("minimum 1s"), "{err}");
        assert!(h.scaled_down(0, one_second).is_err());
    }
}
