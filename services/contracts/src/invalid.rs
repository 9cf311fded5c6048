//! The one error type every validated newtype returns.

use std::fmt::Write as _;

/// A value refused at the edge, with the field it was meant for and why.
///
/// One type for all newtypes so that an HTTP handler can turn any of them into
/// the same 422 problem, naming the field, without matching on each type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct InvalidValue {
    what: &'static str,
    reason: String,
}

impl InvalidValue {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self { what, reason: reason.into() }
    }

    /// The kind of value that was refused (`sku`, `quantity`, `currency`, ...).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Why it was refused; quotes the offending input (shortened) so the
    /// caller can find it in a large request.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Quotes `s` for an error message, cut to 40 characters so a megabyte of junk
/// does not end up in a response or a log line. Cuts on a char boundary, so it
/// never panics on multi-byte input.
pub(crate) fn quoted(s: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::with_capacity(s.len().min(MAX * 4) + 8);
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        // Control characters are escaped so a message stays on one line.
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cuts_long_input_on_a_char_boundary() {
        let long = "é".repeat(100);
        let q = quoted(&long);
        assert_eq!(q.chars().filter(|c| *c == 'é').count(), 40);
        assert!(q.ends_with("…\""));
    }

    #[test]
    fn quoted_escapes_control_characters() {
        assert_eq!(quoted("a\nb"), "\"a\\u{a}b\"");
    }
}
