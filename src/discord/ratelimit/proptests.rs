//! Property tests (the stable twin of `fuzz/fuzz_targets/ratelimit_headers.rs`)
//! and the regressions the fuzzer found.

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            h.append(*k, v);
        }
    }
    h
}

/// Feeds `info` to a fresh limiter and times the next request on the bucket
/// (paused clock: the wait costs no real time).
async fn wait_after(info: &ResponseInfo) -> Duration {
    let limiter = RateLimiter::new(50);
    let key = BucketKey::new("POST /channels/{}/messages", "1");
    let start = Instant::now();
    limiter.acquire(key.clone()).await.complete(Some(info));
    limiter.acquire(key).await.complete(None);
    start.elapsed()
}

/// Found while writing the fuzz target: `retry-after: 1e30` (or a body `retry_after` that
/// large) panicked in `Duration::from_secs_f64`, and `1e19` overflowed
/// `Instant + Duration` in the limiter. Huge waits are now cut to `MAX_WAIT`.
#[tokio::test(start_paused = true)]
async fn huge_waits_are_capped_not_a_panic() {
    for v in [
        "1e30",
        "1e19",
        "18446744073709551616",
        "1.7976931348623157e308",
    ] {
        let info = ResponseInfo::from_parts(
            429,
            &headers(&[("retry-after", v), ("x-ratelimit-reset-after", v)]),
            b"",
        );
        assert_eq!(info.retry_after, Some(MAX_WAIT), "{v}");
        assert_eq!(info.reset_after, Some(MAX_WAIT), "{v}");
        let body = format!(r#"{{"retry_after": {v}, "global": false}}"#);
        let info = ResponseInfo::from_parts(429, &http::HeaderMap::new(), body.as_bytes());
        assert_eq!(info.retry_after, Some(MAX_WAIT), "{v}");
        let waited = wait_after(&info).await;
        assert!(waited <= MAX_WAIT + Duration::from_secs(1), "{waited:?}");
    }
    let info = ResponseInfo::from_parts(
        200,
        &headers(&[
            ("x-ratelimit-limit", "5"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1e300"),
        ]),
        b"",
    );
    assert_eq!(info.reset_after, Some(MAX_WAIT));
    let waited = wait_after(&info).await;
    assert!(waited <= MAX_WAIT + Duration::from_secs(1), "{waited:?}");
}

#[test]
fn unusable_values_are_ignored() {
    for v in ["-1", "NaN", "inf", "-inf", "", "abc", "1,5"] {
        let info = ResponseInfo::from_parts(
            429,
            &headers(&[("retry-after", v), ("x-ratelimit-reset-after", v)]),
            b"{}",
        );
        assert_eq!(info.retry_after, None, "{v}");
        assert_eq!(info.reset_after, None, "{v}");
    }
}

fn value() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        any::<i64>().prop_map(|n| n.to_string()),
        proptest::sample::select(vec![
            "global", "user", "shared", "true", "", " 1.5 ", "1e400", "NaN"
        ])
        .prop_map(str::to_owned),
        "\\PC{0,20}",
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn any_answer_gives_bounded_waits(
        status in proptest::sample::select(vec![200u16, 204, 400, 429, 500]),
        pairs in proptest::collection::vec((proptest::sample::select(vec![
            "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset-after",
            "x-ratelimit-bucket", "x-ratelimit-scope", "x-ratelimit-global", "retry-after",
        ]), value()), 0..8),
        body_retry in proptest::option::of(value()),
        global in proptest::bool::ANY,
    ) {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = body_retry
            .map(|r| format!(r#"{{"retry_after": {r}, "global": {global}}}"#))
            .unwrap_or_default();
        let info = ResponseInfo::from_parts(status, &headers(&pairs), body.as_bytes());
        for d in [info.reset_after, info.retry_after].into_iter().flatten() {
            proptest::prop_assert!(d <= MAX_WAIT, "{:?}", info);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let waited = rt.block_on(wait_after(&info));
        proptest::prop_assert!(waited <= MAX_WAIT + Duration::from_secs(2), "{:?} after {:?}", waited, info);
    }
}

/// Found by the `ratelimit_headers` fuzz target (a libFuzzer timeout):
/// `X-RateLimit-Limit: 0` left the bucket empty after its reset with no
/// timer to wake it, so every later request on the route waited forever.
/// A limit is now at least 1.
#[tokio::test(start_paused = true)]
async fn a_zero_limit_does_not_stall_the_bucket() {
    let info = ResponseInfo::from_parts(
        200,
        &headers(&[
            ("x-ratelimit-limit", "0"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1"),
        ]),
        b"",
    );
    assert_eq!(info.limit, Some(1));
    let waited = tokio::time::timeout(Duration::from_secs(7200), wait_after(&info))
        .await
        .expect("the bucket stalled");
    assert!(waited <= Duration::from_secs(2), "{waited:?}");
}
