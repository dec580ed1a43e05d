//! Delivery benchmark against the in-crate Discord emulator with Discord's
//! default limits (5 creates and 5 edits per channel per 5 s, 50 requests
//! per second globally). Run: `cargo bench --bench delivery` (all workloads)
//! or `cargo bench --bench delivery -- 1 3 burst latency` (a selection).
//!
//! Minimum time the limits allow (a lower bound, see BENCHMARKS.md):
//! `max(bucket, global, combined)` where, with `n` requests in a bucket of
//! `L` per `W`, `bucket = max over buckets of (ceil(n/L) - 1)·W`;
//! `global = (ceil(N/G) - 1)·1 s` for `N` requests at `G` per second; and
//! `combined = bucket + (ceil(K/G) - 1)·1 s`, where `K` counts the requests
//! in the last window of every bucket that reaches `bucket` (they cannot
//! start before `bucket`, and the global limit spreads them out).

use std::collections::HashMap;
use std::time::Duration;

use teleport_discord::discord::{
    ClientOptions, Delivery, DiscordClient, DiscordMetrics, MessagePayload, Op, QueueOptions,
};
use teleport_discord::metrics::ProcessStats;
use teleport_discord::reconcile::nonce_for;
use teleport_discord::secret::Secret;
use teleport_discord_testkit::discord::{DiscordEmulator, EmulatorConfig};
use tokio::time::Instant;

const L: u64 = 5;
const W: f64 = 5.0;
const G: u64 = 50;

fn cpu_seconds() -> f64 {
    ProcessStats::read().map_or(0.0, |s| s.cpu_seconds)
}

/// Lower bound from per-(channel, kind) request counts.
fn minimum(buckets: &[u64]) -> f64 {
    let n_total: u64 = buckets.iter().sum();
    let windows = |n: u64| n.div_ceil(L);
    let bucket = buckets
        .iter()
        .map(|&n| (windows(n).saturating_sub(1)) as f64 * W)
        .fold(0.0, f64::max);
    let global = (n_total.div_ceil(G).saturating_sub(1)) as f64;
    let k: u64 = buckets
        .iter()
        .filter(|&&n| (windows(n).saturating_sub(1)) as f64 * W == bucket)
        .map(|&n| n - (windows(n).saturating_sub(1)) * L)
        .sum();
    let combined = bucket + (k.div_ceil(G).saturating_sub(1)) as f64;
    bucket.max(global).max(combined)
}

struct Setup {
    emu: DiscordEmulator,
    delivery: Delivery,
    channels: Vec<String>,
}

async fn setup(config: EmulatorConfig, global: u32, channels: usize) -> Setup {
    let emu = DiscordEmulator::start(config).await.expect("emulator");
    let mut options = ClientOptions::new(emu.api_url(), Secret::new(emu.token()));
    options.global_rate_limit = global;
    let client =
        DiscordClient::with_options(options, DiscordMetrics::unregistered(), None).expect("client");
    let delivery = Delivery::start(client, QueueOptions::default());
    let channels = (0..channels)
        .map(|i| emu.add_channel(&format!("c{i}")))
        .collect();
    Setup {
        emu,
        delivery,
        channels,
    }
}

fn create(ch: &str, n: usize) -> Op {
    Op::Create {
        channel_id: ch.to_owned(),
        nonce: nonce_for(&format!("req-{n}"), ch),
        payload: MessagePayload::text(format!("request {n}")),
    }
}

async fn creates_workload(name: &str, total: usize, channels: usize) {
    let s = setup(EmulatorConfig::default(), 50, channels).await;
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut pending = Vec::new();
    for n in 0..total {
        let ch = &s.channels[n % channels];
        pending.push(s.delivery.enqueue(create(ch, n)).await.expect("enqueue"));
    }
    let mut failed = 0;
    for p in pending {
        if p.wait().await.is_err() {
            failed += 1;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let per_channel = vec![(total / channels) as u64; channels];
    report(
        name,
        wall,
        minimum(&per_channel),
        &s.emu,
        failed,
        total,
        cpu_seconds() - cpu,
    );
}

async fn create_edit_workload(name: &str, messages: usize, channels: usize, edits: usize) {
    let s = setup(EmulatorConfig::default(), 50, channels).await;
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..messages {
        let ch = s.channels[n % channels].clone();
        let pending = s.delivery.enqueue(create(&ch, n)).await.expect("enqueue");
        let delivery = s.delivery.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(m) = pending.wait().await else {
                return (1, Vec::new());
            };
            let mut failed = 0;
            let mut times = vec![(n % 30, 0, start.elapsed().as_secs_f64())];
            for e in 0..edits {
                // One edit at a time, so none is coalesced away: every edit reaches Discord.
                let op = Op::Edit {
                    channel_id: ch.clone(),
                    message_id: m.id.clone(),
                    payload: MessagePayload::text(format!("request {n}, update {e}")),
                };
                let ok = match delivery.enqueue(op).await {
                    Ok(p) => p.wait().await.is_ok(),
                    Err(_) => false,
                };
                failed += usize::from(!ok);
                times.push((n % 30, e + 1, start.elapsed().as_secs_f64()));
            }
            (failed, times)
        }));
    }
    let mut failed = 0;
    let mut times = Vec::new();
    for t in tasks {
        let (f, ts) = t.await.unwrap_or((1, Vec::new()));
        failed += f;
        times.extend(ts);
    }
    if std::env::var_os("BENCH_TRACE").is_some() {
        for c in 0..channels {
            let mut e: Vec<f64> = times
                .iter()
                .filter(|t| t.0 == c && t.1 > 0)
                .map(|t| t.2)
                .collect();
            e.sort_by(f64::total_cmp);
            let cr: Vec<f64> = times
                .iter()
                .filter(|t| t.0 == c && t.1 == 0)
                .map(|t| t.2)
                .collect();
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.1}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!("ch{c}: creates [{}] edits [{}]", fmt(&cr), fmt(&e));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let per_channel_creates = (messages / channels) as u64;
    let mut buckets = vec![per_channel_creates; channels];
    buckets.extend(vec![per_channel_creates * edits as u64; channels]);
    report(
        name,
        wall,
        minimum(&buckets),
        &s.emu,
        failed,
        messages * (1 + edits),
        cpu_seconds() - cpu,
    );
}

fn report(
    name: &str,
    wall: f64,
    min: f64,
    emu: &DiscordEmulator,
    failed: usize,
    ops: usize,
    cpu: f64,
) {
    let stats = emu.stats();
    let counts: HashMap<String, usize> = emu.messages_per_channel();
    let messages: usize = counts.values().sum();
    println!(
        "{name}: wall {wall:.2} s, minimum {min:.2} s, ratio {:.3}, 429s {}, duplicates {}, messages {messages}, edits {}, failed {failed}, cpu {:.0} µs/op",
        wall / min,
        stats.rate_limited(),
        stats.duplicates,
        stats.edits,
        cpu / ops as f64 * 1e6,
    );
}

async fn latency_workload() {
    let unlimited = EmulatorConfig {
        create_limit: 1_000_000,
        edit_limit: 1_000_000,
        global_limit: 1_000_000,
        ..EmulatorConfig::default()
    };
    let s = setup(unlimited, 1_000_000, 50).await;
    // Warm up connections and buckets.
    for (i, ch) in s.channels.iter().enumerate() {
        let _ = s
            .delivery
            .enqueue(create(ch, 1_000_000 + i))
            .await
            .expect("enqueue")
            .wait()
            .await;
    }
    let ops = 5_000;
    let cpu = cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    // 50 submitters, one per channel, each waiting for its answer before the next.
    for (c, ch) in s.channels.iter().enumerate() {
        let (delivery, ch) = (s.delivery.clone(), ch.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..ops / 50 {
                let t = Instant::now();
                let p = delivery
                    .enqueue(create(&ch, c * 10_000 + i))
                    .await
                    .expect("enqueue");
                p.wait().await.expect("delivered");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "unthrottled: {ops} creates, 50 concurrent submitters: p50 {:?}, p99 {:?}, {:.0} ops/s, cpu {:.0} µs/op (client + emulator in one process)",
        pct(0.50),
        pct(0.99),
        ops as f64 / wall,
        cpu / ops as f64 * 1e6,
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = args.is_empty();
    let want = |w: &str| all || args.iter().any(|a| a == w);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if want("1") {
            creates_workload("1: 500 creates over 25 channels", 500, 25).await;
        }
        if want("burst") {
            creates_workload("burst: 300 creates over 30 channels at once", 300, 30).await;
        }
        if want("2") {
            creates_workload("2: 200 creates over 2 channels", 200, 2).await;
        }
        if want("3") {
            create_edit_workload("3: 300 creates over 30 channels + 2 edits each", 300, 30, 2)
                .await;
        }
        if want("latency") {
            latency_workload().await;
        }
    });
}
