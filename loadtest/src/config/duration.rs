//! Durations as scenario files and the CLI write them.

use std::time::Duration;

/// Parses `250ms`, `5s`, `2m`, `1h`, `1m30s`, `1.5s`, `750us`.
///
/// Written by hand because the grammar is tiny and a dependency for it would
/// accept more spellings than the README documents.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. 500ms, 5s, 2m)".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(|| format!("`{text}` has no unit (use ms, s, m or h)"))?;
        if num_len == 0 {
            return Err(format!("`{text}` is not a duration (expected e.g. 500ms, 5s, 2m)"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| format!("`{text}` has a bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "us" | "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!("`{text}` has unknown unit `{unit}` (use us, ms, s, m or h)"));
            }
        };
        total += secs;
    }
    if !total.is_finite() || total > 86_400.0 * 7.0 {
        return Err(format!("`{text}` is too long (at most 7 days)"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way [`parse_duration`] reads it, for messages and reports.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 1000.0 && (ms / 1000.0).fract() == 0.0 {
        format!("{}s", ms / 1000.0)
    } else if ms >= 1.0 {
        format!("{}ms", (ms * 1000.0).round() / 1000.0)
    } else {
        format!("{}us", (ms * 1000.0).round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_refuse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("750us").unwrap(), Duration::from_micros(750));
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
    }
}
