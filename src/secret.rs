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

    /// The body of `fn name` in `src` (up to the next line that is exactly `    }`).
    fn fn_body<'a>(src: &'a str, name: &str) -> &'a str {
        let start = src
            .find(&format!("fn {name}("))
            .unwrap_or_else(|| panic!("no fn {name}"));
        let len = src[start..].find("\n    }\n").expect("end of fn");
        &src[start..start + len]
    }

    /// Timing must not tell how much of the admin token matched. A timed
    /// assertion would be flaky, so this pins the construction instead: both
    /// sides are hashed to fixed-size digests and compared with
    /// `subtle::ConstantTimeEq`, with no early return on length or prefix; and
    /// the admin check goes through `matches`, never `==` or `expose`.
    #[test]
    fn compare_is_constant_time_by_construction() {
        let body = fn_body(include_str!("secret.rs"), "matches");
        assert!(
            body.contains("ConstantTimeEq") && body.contains(".ct_eq("),
            "{body}"
        );
        assert!(
            body.contains("digest(&ring::digest::SHA256, self.0.as_bytes())")
                && body.contains("digest(&ring::digest::SHA256, candidate)"),
            "both sides must be hashed before the compare: {body}"
        );
        for short_circuit in [
            "==",
            "!=",
            "len()",
            "starts_with",
            "return",
            "?",
            "if ",
            "zip",
        ] {
            assert!(
                !body.contains(short_circuit),
                "`{short_circuit}` in matches: {body}"
            );
        }
        let authorize = fn_body(include_str!("http/admin.rs"), "authorize");
        assert!(authorize.contains("token.matches(candidate"), "{authorize}");
        for leak in ["expose", "==", "starts_with(token", "eq(token"] {
            assert!(
                !authorize.contains(leak),
                "`{leak}` in authorize: {authorize}"
            );
        }
        // The digests compared always have the same length, whatever the input.
        for c in [&b""[..], b"a", &[b'x'; 10_000]] {
            assert_eq!(
                ring::digest::digest(&ring::digest::SHA256, c)
                    .as_ref()
                    .len(),
                32
            );
        }
    }

    /// A measurement, not an assertion: `cargo test --lib secret -- --ignored
    /// --nocapture` prints the time per compare for a candidate that matches
    /// nothing, all but the last byte, and everything but is longer.
    #[test]
    #[ignore = "measurement; prints numbers"]
    fn compare_timing_measurement() {
        let secret = Secret::new("test-admin-token-0123456789abcdef");
        let full = secret.expose().to_owned();
        let candidates = [
            ("no byte matches", "X".repeat(full.len())),
            (
                "all but the last byte",
                format!("{}X", &full[..full.len() - 1]),
            ),
            (
                "first byte only",
                format!("t{}", "X".repeat(full.len() - 1)),
            ),
            ("longer", format!("{full}X")),
            ("equal", full),
        ];
        const N: u32 = 200_000;
        for (what, c) in &candidates {
            let start = tokio::time::Instant::now();
            let mut hits = 0u32;
            for _ in 0..N {
                hits += u32::from(secret.matches(std::hint::black_box(c.as_bytes())));
            }
            let per = start.elapsed() / N;
            println!("{what:>24}: {per:?} per compare ({hits} hits)");
        }
    }
}
