//! Discord's rate-limit headers and 429 bodies: any answer gives a
//! `ResponseInfo` with bounded waits, and feeding it to the limiter neither
//! panics nor stalls it beyond that bound.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use teleport_discord::discord::ratelimit::{BucketKey, MAX_WAIT, RateLimiter, ResponseInfo};

const NAMES: &[&str] = &[
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
    "x-ratelimit-scope",
    "x-ratelimit-global",
    "retry-after",
];

fn value(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => u.arbitrary::<u32>()?.to_string(),
        1 => u.arbitrary::<f64>()?.to_string(),
        2 => format!("{:e}", u.arbitrary::<f64>()?),
        3 => u
            .choose(&[
                "global", "user", "shared", "true", "True", "", " 1.5 ", "-0", "NaN", "inf",
                "1e400",
            ])?
            .to_string(),
        4 => u.arbitrary::<i64>()?.to_string(),
        _ => u.arbitrary::<String>()?,
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let status = *u.choose(&[200u16, 201, 204, 400, 404, 429, 500, 502])?;
    let mut headers = http::HeaderMap::new();
    for _ in 0..u.int_in_range(0..=10u8)? {
        let name = *u.choose(NAMES)?;
        if let Ok(v) = http::HeaderValue::from_str(&value(u)?) {
            headers.append(name, v);
        }
    }
    let body: Vec<u8> = match u.int_in_range(0..=2u8)? {
        0 => Vec::new(),
        1 => format!(
            r#"{{"message":"You are being rate limited.","retry_after":{},"global":{}}}"#,
            value(u)?,
            u.arbitrary::<bool>()?
        )
        .into_bytes(),
        _ => u.arbitrary()?,
    };
    let info = ResponseInfo::from_parts(status, &headers, &body);
    for d in [info.reset_after, info.retry_after].into_iter().flatten() {
        assert!(d <= MAX_WAIT, "{d:?} exceeds {MAX_WAIT:?}: {info:?}");
    }

    // The limiter takes the answer; the next request on the bucket still
    // goes out within the bound (paused clock: waits cost no real time).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let limiter = RateLimiter::new(50);
        let key = BucketKey::new("POST /channels/{}/messages", "1");
        let start = tokio::time::Instant::now();
        limiter.acquire(key.clone()).await.complete(Some(&info));
        limiter.acquire(key.clone()).await.complete(None);
        let waited = start.elapsed();
        assert!(
            waited <= MAX_WAIT + Duration::from_secs(2),
            "waited {waited:?} after {info:?}"
        );
    });
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
