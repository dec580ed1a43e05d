//! Secrets: values (bot token, admin token) that must never reach logs,
//! error messages, `Debug` output or metrics.
//!
//! A [`Secret`] can only be read through [`Secret::expose`], which makes every
//! place that handles the raw value easy to find.

use std::fmt;
use std::sync::Arc;

/// A secret string. `Debug` and `Display` print a fixed placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The raw value. Only the code that sends the secret to its one
    /// destination (an `Authorization` header, a constant-time compare) calls this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality against a candidate (for example a bearer token
    /// from a request). Both sides are hashed first, so neither the position of
    /// the first differing byte nor the length of the secret shows in the time taken.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let a = ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes());
        let b = ring::digest::digest(&ring::digest::SHA256, candidate);
        a.as_ref().ct_eq(b.as_ref()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("MTIzNDU2.super-secret");
        assert!(!format!("{s:?}").contains("super-secret"));
        assert!(!format!("{s}").contains("super-secret"));
        assert_eq!(s.expose(), "MTIzNDU2.super-secret");
    }

    #[test]
    fn matches_is_exact() {
        let s = Secret::new("abc123");
        assert!(s.matches(b"abc123"));
        assert!(!s.matches(b"abc12"));
        assert!(!s.matches(b"abc1234"));
        assert!(!s.matches(b""));
        assert!(!s.matches(b"ABC123"));
    }
}
