//! Reconciler benchmark: the whole pipeline (`app::run`, real gRPC over
//! mutual TLS, real HTTP) against both emulators, Discord limits raised so
//! Discord is not the bottleneck.
//!
//! 1. latency: 200 requests created one at a time; time from `create_request`
//!    in the Teleport emulator to the message existing in the Discord emulator.
//! 2. catch-up and resync: N requests (default 10,000; `RECONCILE_BENCH_N`)
//!    created while the service is down; start it, time until all are posted;
//!    restart it, time the full resync and count Discord calls (target: 0).
//!
//! Run: `cargo bench --bench reconcile`.

use std::sync::Arc;
use std::time::Duration;

use teleport_discord::app::{self, RunOptions};
use teleport_discord::config::{self, ProcessEnv};
use teleport_discord::logging::LogHandle;
use teleport_discord::metrics::ProcessStats;
use teleport_discord_testkit::discord::EmulatorConfig;
use teleport_discord_testkit::sandbox::Sandbox;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Running {
    base: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), app::AppError>>,
}

async fn start(path: &std::path::Path, addr: &str) -> Running {
    let loaded = config::load(path, &ProcessEnv).expect("config");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let options = RunOptions {
        env: Arc::new(ProcessEnv),
        log: LogHandle::noop(),
        handle_signals: false,
    };
    let task = tokio::spawn(app::run(loaded, listener, stop.clone(), options));
    Running { base, stop, task }
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::var("RECONCILE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let unlimited = EmulatorConfig {
        create_limit: 1_000_000,
        edit_limit: 1_000_000,
        global_limit: 1_000_000,
        ..EmulatorConfig::default()
    };
    let sb = Sandbox::start(dir.path(), unlimited)
        .await
        .expect("emulators");
    let path = sb
        .write_config("[discord]\nglobal_rate_limit = 10000\n[reconcile]\nworkers = 16\n")
        .expect("config");
    // The appended [discord] section would repeat the table; write the key in place instead.
    let text = std::fs::read_to_string(&path).expect("read");
    let text = text
        .replace("\n[discord]\nglobal_rate_limit = 10000\n", "\n")
        .replace("[discord]\n", "[discord]\nglobal_rate_limit = 10000\n");
    std::fs::write(&path, text).expect("write");
    let fallback = sb.channels[2].clone();
    let http = reqwest::Client::new();

    // One instance, stopped and started on the same host and port (so it
    // keeps owning the requests it claimed: no hand-off wait on restart).
    let same_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();

    // 1. Latency.
    let svc = start(&path, &same_addr).await;
    while metric(
        &http,
        &svc.base,
        "teleport_discord_ready{component=\"teleport\"}",
    )
    .await
        < 1.0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let id = sb.teleport.create_request("bench", &["none"], "latency");
        loop {
            if sb
                .discord
                .messages(&fallback)
                .iter()
                .rev()
                .take(3)
                .any(|m| m.content.contains(&id))
            {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "latency event→Discord (200 requests, unthrottled): p50 {:.1} ms, p99 {:.1} ms",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3
    );
    svc.stop.cancel();
    let _ = svc.task.await;

    // 2. Catch-up of N requests created while down.
    for i in 0..n {
        sb.teleport
            .create_request(&format!("user{i}"), &["none"], "bulk");
    }
    let posted_before = sb.discord.stats().messages_created;
    let cpu0 = ProcessStats::read().map(|s| s.cpu_seconds).unwrap_or(0.0);
    let t0 = Instant::now();
    let svc = start(&path, &same_addr).await;
    while sb.discord.stats().messages_created < posted_before + n as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let ok = metric(
            &http,
            &svc.base,
            "teleport_discord_reconciles_total{outcome=\"ok\"}",
        )
        .await;
        let depth = metric(&http, &svc.base, "teleport_discord_reconcile_queue_depth").await;
        let flight = metric(&http, &svc.base, "teleport_discord_reconcile_in_flight").await;
        if ok >= n as f64 && depth == 0.0 && flight == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let catch_up = t0.elapsed();
    let cpu = ProcessStats::read().map(|s| s.cpu_seconds).unwrap_or(0.0) - cpu0;
    let rss = ProcessStats::read().map(|s| s.resident_bytes).unwrap_or(0);
    println!(
        "catch-up: {n} requests posted in {:.2} s ({:.0}/s); CPU {:.0} µs per request end to end (service and both emulators); RSS {:.0} MiB with {n} tracked",
        catch_up.as_secs_f64(),
        n as f64 / catch_up.as_secs_f64(),
        cpu / n as f64 * 1e6,
        rss as f64 / 1048576.0
    );
    svc.stop.cancel();
    let _ = svc.task.await;

    // 3. Restart: the resync finds everything posted.
    let calls_before = sb.discord.stats().requests;
    let t0 = Instant::now();
    let svc = start(&path, &same_addr).await;
    loop {
        let ok = metric(
            &http,
            &svc.base,
            "teleport_discord_reconciles_total{outcome=\"ok\"}",
        )
        .await;
        let depth = metric(&http, &svc.base, "teleport_discord_reconcile_queue_depth").await;
        let flight = metric(&http, &svc.base, "teleport_discord_reconcile_in_flight").await;
        if ok >= (n + 200) as f64 && depth == 0.0 && flight == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resync = t0.elapsed();
    // /users/@me at start is the only expected Discord call.
    let calls = sb.discord.stats().requests - calls_before;
    println!(
        "resync after restart: {} already-posted requests checked in {:.2} s; Discord calls: {calls} (1 is the start-up token check)",
        n + 200,
        resync.as_secs_f64()
    );
    svc.stop.cancel();
    let _ = svc.task.await;
}
