//! Retry delays: one pure function, [`delay`], used by every retry loop in the
//! service (Teleport reconnects, Discord retries, reconciler requeues).
//!
//! The delay for attempt `n` (starting at 0) is `base * 2^n`, capped at `max`,
//! then "equal jitter": half of it fixed, the other half scaled by the caller's
//! random `jitter` in `[0, 1)`. Passing the random number in keeps the
//! function deterministic and testable.

use std::time::Duration;

/// Parameters of a capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry, before jitter.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    /// The delay before retry number `attempt` (0-based) with `jitter` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        delay(self.base, self.max, attempt, jitter)
    }
}

/// Capped exponential backoff with equal jitter. `jitter` is clamped to `[0, 1]`.
/// The result is always within `[min(base, max) / 2, max]`.
pub fn delay(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let factor = 2u32.checked_pow(attempt.min(31)).unwrap_or(u32::MAX);
    let raw = base.checked_mul(factor).unwrap_or(max).min(max);
    let half = raw / 2;
    half + (raw - half).mul_f64(jitter)
}

/// A random number in `[0, 1)` for [`delay`], from the operating system's RNG.
pub fn random_jitter() -> f64 {
    let mut bytes = [0u8; 8];
    // A failure of the system RNG only costs us jitter, never correctness.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn grows_exponentially_then_caps() {
        let b = Backoff::new(MS(100), MS(5_000));
        // jitter 1.0 gives the full (un-jittered) value
        assert_eq!(b.delay(0, 1.0), MS(100));
        assert_eq!(b.delay(1, 1.0), MS(200));
        assert_eq!(b.delay(2, 1.0), MS(400));
        assert_eq!(b.delay(5, 1.0), MS(3_200));
        assert_eq!(b.delay(6, 1.0), MS(5_000));
        assert_eq!(b.delay(100, 1.0), MS(5_000));
        assert_eq!(b.delay(u32::MAX, 1.0), MS(5_000));
    }

    #[test]
    fn jitter_keeps_at_least_half() {
        let b = Backoff::new(MS(100), MS(5_000));
        assert_eq!(b.delay(0, 0.0), MS(50));
        assert_eq!(b.delay(10, 0.0), MS(2_500));
        assert_eq!(b.delay(10, 0.5), MS(3_750));
    }

    #[test]
    fn bad_jitter_is_clamped() {
        let b = Backoff::new(MS(100), MS(1_000));
        assert_eq!(b.delay(0, -3.0), MS(50));
        assert_eq!(b.delay(0, 7.0), MS(100));
        assert_eq!(b.delay(0, f64::NAN), MS(50));
    }

    #[test]
    fn base_above_max_is_capped() {
        assert_eq!(delay(MS(10_000), MS(1_000), 0, 1.0), MS(1_000));
    }

    #[test]
    fn random_jitter_is_in_range() {
        for _ in 0..1000 {
            let j = random_jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    proptest::proptest! {
        #[test]
        fn always_within_bounds(base_ms in 0u64..100_000, max_ms in 0u64..1_000_000, attempt: u32, jitter: f64) {
            let (base, max) = (MS(base_ms), MS(max_ms));
            let d = delay(base, max, attempt, jitter);
            proptest::prop_assert!(d <= max);
            proptest::prop_assert!(d >= base.min(max) / 2);
        }
    }
}
