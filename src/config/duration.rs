//! Go-style duration strings (`"30s"`, `"1m30s"`, `"1.5h"`, `"500ms"`), as
//! upstream's config accepted through Go's `time.ParseDuration`.

use std::fmt;
use std::time::Duration;

/// A duration read from the config file. Displays in Go's style (`1m30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(Duration);

impl ConfigDuration {
    /// Wraps a duration.
    pub const fn new(d: Duration) -> Self {
        Self(d)
    }
    /// The wrapped value.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let mut secs = d.as_secs();
        let nanos = d.subsec_nanos();
        let h = secs / 3600;
        secs %= 3600;
        let m = secs / 60;
        secs %= 60;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if secs > 0 || nanos > 0 {
            if nanos == 0 {
                write!(f, "{secs}s")?;
            } else if secs == 0 && nanos.is_multiple_of(1_000_000) {
                write!(f, "{}ms", nanos / 1_000_000)?;
            } else {
                let frac = format!("{nanos:09}");
                write!(f, "{secs}.{}s", frac.trim_end_matches('0'))?;
            }
        }
        Ok(())
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("empty duration; write it like \"30s\", \"5m\" or \"1h30m\"")]
    Empty,
    /// A number without a unit, other than `0`.
    #[error("missing unit in duration \"{0}\"; use one of ns, us, ms, s, m, h (e.g. \"30s\")")]
    MissingUnit(String),
    /// An unknown unit.
    #[error("unknown unit \"{unit}\" in duration \"{input}\"; use one of ns, us, ms, s, m, h")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Not a duration at all.
    #[error("invalid duration \"{0}\"; write it like \"30s\", \"5m\" or \"1h30m\"")]
    Invalid(String),
    /// Negative durations make no sense for intervals.
    #[error("negative duration \"{0}\" is not allowed")]
    Negative(String),
    /// Too large to represent.
    #[error("duration \"{0}\" is too large")]
    Overflow(String),
}

/// Parses a Go `time.ParseDuration` string. Negative values are refused.
pub fn parse_duration(input: &str) -> Result<ConfigDuration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let (neg, mut rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(ConfigDuration(Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(DurationError::Invalid(input.to_owned()));
    }
    let mut total: f64 = 0.0; // in nanoseconds
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(DurationError::Invalid(input.to_owned()));
        }
        let value: f64 = num
            .parse()
            .map_err(|_| DurationError::Invalid(input.to_owned()))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: f64 = match unit {
            "" => return Err(DurationError::MissingUnit(input.to_owned())),
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.to_owned(),
                    input: input.to_owned(),
                });
            }
        };
        total += value * scale;
    }
    if neg && total > 0.0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    // Go's limit is about 290 years; anything near that is a typo.
    if !total.is_finite() || total > 9.2e18 {
        return Err(DurationError::Overflow(input.to_owned()));
    }
    Ok(ConfigDuration(Duration::from_nanos(total.round() as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s)
            .map(ConfigDuration::get)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn go_examples() {
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2h45m10.5s"), Duration::from_millis(9_910_500));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok(" 5s "), Duration::from_secs(5));
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("30"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("3d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_duration("s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("1..5s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("99999999999h"),
            Err(DurationError::Overflow(_))
        ));
        let msg = parse_duration("1 minute").unwrap_err().to_string();
        assert!(msg.contains("1 minute"), "{msg}");
    }

    #[test]
    fn displays_like_go() {
        for (s, shown) in [
            ("90s", "1m30s"),
            ("1h", "1h"),
            ("500ms", "500ms"),
            ("1.5s", "1.5s"),
            ("0", "0s"),
        ] {
            assert_eq!(ok(s), parse_duration(shown).unwrap().get());
            assert_eq!(parse_duration(s).unwrap().to_string(), shown);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn display_round_trips(ms in 0u64..10_000_000_000) {
            let d = ConfigDuration::new(Duration::from_millis(ms));
            proptest::prop_assert_eq!(parse_duration(&d.to_string()).unwrap(), d);
        }
    }
}
