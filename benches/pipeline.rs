//! Whole-pipeline benchmark, as a new user would run it: the release binary
//! `teleport-discord start` as a child process against the testkit's Teleport
//! emulator (gRPC, mutual TLS) and Discord emulator (HTTP), both in this
//! process, with Discord's default limits (50 requests/s global; 5 creates and
//! 5 edits per channel per 5 s) unless said otherwise.
//!
//! Workloads (request `i` asks for role `r{i % C}`, which `[role_to_recipients]`
//! routes to channel `i % C`):
//! - `burst`: 300 requests over 30 channels, created 1 ms apart (~0.3 s);
//! - `w1`: 500 requests over 25 channels, created back to back;
//! - `w2`: 200 requests over 2 channels, created back to back (~100 s a run);
//! - `w3`: 300 requests over 30 channels needing two approvals; each review is
//!   submitted once the previous state shows in Discord (the create, then the
//!   edit after review 1); done when every message shows APPROVED;
//! - `latency`: 50 requests one at a time, Discord limits raised; p50/p99 of
//!   `create_request` → message exists;
//! - `resync`: `BENCH_RESYNC_N` (default 10,000) requests posted with limits
//!   raised, then SIGTERM and a second start: the time from spawn until its
//!   listing is reconciled (`ListAccessRequests` called, `reconciles{ok}` ≥ N,
//!   queue empty, nothing in flight), the Discord and `GetPluginData` calls it
//!   made, and the child's memory;
//! - `review`: reviews from Discord. 50 requests in one channel (threshold 1)
//!   are posted with limits raised; then, one at a time, a mapped reviewer
//!   clicks Approve and submits the reason modal (signed deliveries to
//!   `POST /discord/interactions`). Per request: the click's first answer
//!   (delivery → modal), the submit's first answer, and submit → the message
//!   shows APPROVED; deferred answers (type 5) and answers after Discord's
//!   3 s deadline are counted; each request must end APPROVED with one
//!   message and one review in Teleport submitted on behalf of its author;
//! - `review-slow`: `review` with Teleport answering `SubmitAccessReview`
//!   after 2.5 s, past the service's 2 s answer budget: every submit must be
//!   deferred, then completed by a follow-up, whose arrival is timed too.
//!
//! Wall time runs from the first `create_request` until the final expected
//! state is visible in the Discord emulator (polled every 5 ms); the minimum
//! is what the limits allow ([`minimum`], BENCHMARKS.md's formula). Every run
//! checks that each request has exactly one message, in its channel, showing
//! the final status. CPU is the child's utime + stime during the run.
//!
//! Run: `cargo bench --bench pipeline -- burst w1 --workers 1,8,64 --runs 3`
//! (no workload names: all eight). `--workers` sets `[reconcile] workers`
//! (default 8), `--runs` repeats each (default 1), `--replicas N` runs the
//! throughput workloads against N replicas of `start` sharing the emulators
//! (the leader lease picks one sender; CPU is summed, peak RSS is the
//! largest replica's). Each workload starts 1.5 s after the last replica is
//! ready, when their start-up token checks have left Discord's global window. `BENCH_LOG=1` passes the
//! child's output through; otherwise it goes to a file whose path is printed
//! on failure. A run fails when it does not finish within 3 × its minimum + 30 s.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use teleport_discord::render::Status;
use teleport_discord::review::ANSWER_BUDGET;
use teleport_discord_testkit::discord::{EmulatorConfig, InteractionReply, Stats};
use teleport_discord_testkit::sandbox::Sandbox;
use teleport_discord_testkit::teleport::Permissions;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_teleport-discord");
const POLL: Duration = Duration::from_millis(5);
/// Units of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;
/// The Discord user who reviews in `review`, and the Teleport user
/// `[review.users]` maps it to.
const REVIEWER_ID: &str = "100000000000000001";
const REVIEWER: &str = "alice";
/// Discord's deadline for an interaction's first answer.
const DEADLINE: Duration = Duration::from_secs(3);

/// Lower bound on the time Discord's default limits allow for `buckets`
/// (requests per channel × kind), as in BENCHMARKS.md: the largest of the
/// bucket bound `B = max (ceil(n/L) - 1)·W`, the global bound
/// `(ceil(N/G) - 1)·1 s` and the combined bound `B + (ceil(K/G) - 1)·1 s`,
/// `K` being the requests in the last window of every bucket reaching `B`.
fn minimum(buckets: &[u64]) -> f64 {
    let d = EmulatorConfig::default();
    // Creates and edits have the same limit and window by default.
    let (l, w) = (u64::from(d.create_limit), d.create_window.as_secs_f64());
    let (g, gw) = (u64::from(d.global_limit), d.global_window.as_secs_f64());
    let last = |n: u64| n.div_ceil(l).saturating_sub(1);
    let bucket = buckets
        .iter()
        .map(|&n| last(n) as f64 * w)
        .fold(0.0, f64::max);
    let total: u64 = buckets.iter().sum();
    let global = total.div_ceil(g).saturating_sub(1) as f64 * gw;
    let k: u64 = buckets
        .iter()
        .filter(|&&n| last(n) as f64 * w == bucket)
        .map(|&n| n - last(n) * l)
        .sum();
    let combined = bucket + k.div_ceil(g).saturating_sub(1) as f64 * gw;
    bucket.max(global).max(combined)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Time until every request shows its final state, against the minimum.
    Throughput,
    /// One request at a time, limits raised.
    Latency,
    /// Post, SIGTERM, start again, limits raised.
    Resync,
    /// Reviews from Discord one at a time, limits raised; Teleport answers
    /// `SubmitAccessReview` after `delay_ms`.
    Review { delay_ms: u64 },
}

/// `n` requests over `channels` channels, each needing `approvals` reviews,
/// created `spacing_ms` apart (0: back to back).
#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    kind: Kind,
    n: usize,
    channels: usize,
    approvals: u32,
    spacing_ms: u64,
}

/// Name, kind, requests, channels, approvals, spacing in ms.
type Row = (&'static str, Kind, usize, usize, u32, u64);

const ALL: [Row; 8] = [
    ("burst", Kind::Throughput, 300, 30, 0, 1),
    ("w1", Kind::Throughput, 500, 25, 0, 0),
    ("w2", Kind::Throughput, 200, 2, 0, 0),
    ("w3", Kind::Throughput, 300, 30, 2, 0),
    ("latency", Kind::Latency, 50, 5, 0, 0),
    // `n` is `BENCH_RESYNC_N` when set.
    ("resync", Kind::Resync, 10_000, 10, 0, 0),
    ("review", Kind::Review { delay_ms: 0 }, 50, 1, 1, 0),
    ("review-slow", Kind::Review { delay_ms: 2500 }, 50, 1, 1, 0),
];

impl Workload {
    fn from_row((name, kind, n, channels, approvals, spacing_ms): Row) -> Self {
        let n = match (kind, std::env::var("BENCH_RESYNC_N").map(|v| v.parse())) {
            (Kind::Resync, Ok(Ok(v))) => v,
            _ => n,
        };
        Self {
            name,
            kind,
            n,
            channels,
            approvals,
            spacing_ms,
        }
    }

    /// Requests per bucket: each channel's creates, then its edits (one per approval).
    fn buckets(&self) -> Vec<u64> {
        let per = |ch: usize| (ch..self.n).step_by(self.channels).count() as u64;
        let creates = (0..self.channels).map(per);
        let edits = (0..self.channels).map(|ch| per(ch) * u64::from(self.approvals));
        creates.chain(edits).filter(|&x| x > 0).collect()
    }

    /// Discord's default limits apply (the other kinds raise them).
    fn limited(&self) -> bool {
        self.kind == Kind::Throughput
    }

    /// What the summary compares across runs.
    fn score_name(&self) -> &'static str {
        match self.kind {
            Kind::Throughput => "ratio",
            Kind::Latency => "p50 ms",
            Kind::Resync => "resync s",
            Kind::Review { .. } => "submit p99 ms",
        }
    }
}

struct Args {
    workloads: Vec<Workload>,
    workers: Vec<u32>,
    runs: usize,
    replicas: usize,
}

fn parse_args() -> Result<Args, String> {
    let (mut workloads, mut workers, mut runs, mut replicas) = (Vec::new(), vec![8], 1, 1);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            // `cargo bench` passes `--bench` to every harness-less bench.
            "--bench" => {}
            "--workers" => {
                let v = it.next().ok_or("--workers needs a list, e.g. 1,8,64")?;
                workers = v
                    .split(',')
                    .map(|x| match x.trim().parse::<u32>() {
                        Ok(n) if (1..=256).contains(&n) => Ok(n),
                        _ => Err(format!("--workers: {x:?} is not 1 to 256")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--runs" => {
                let v = it.next().ok_or("--runs needs a number")?;
                runs = v
                    .parse()
                    .ok()
                    .filter(|&r| r > 0)
                    .ok_or("--runs: not a positive number")?;
            }
            "--replicas" => {
                let v = it.next().ok_or("--replicas needs a number")?;
                replicas = v
                    .parse()
                    .ok()
                    .filter(|&r| (1..=8).contains(&r))
                    .ok_or("--replicas: not 1 to 8")?;
            }
            name => {
                let row = ALL.into_iter().find(|r| r.0 == name).ok_or_else(|| {
                    let names: Vec<_> = ALL.iter().map(|r| r.0).collect();
                    format!("unknown argument {name:?}; workloads: {}", names.join(" "))
                })?;
                workloads.push(Workload::from_row(row));
            }
        }
    }
    if workloads.is_empty() {
        workloads = ALL.into_iter().map(Workload::from_row).collect();
    }
    Ok(Args {
        workloads,
        workers,
        runs,
        replicas,
    })
}

/// `teleport-discord start` as a child process; killed when dropped.
struct Child {
    proc: std::process::Child,
    base: String,
}

impl Child {
    fn check_alive(&mut self) -> Result<(), String> {
        match self.proc.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the service exited early ({status})")),
            Err(e) => Err(format!("wait: {e}")),
        }
    }

    async fn get(&self, http: &reqwest::Client, path: &str) -> Option<String> {
        let r = http.get(format!("{}{path}", self.base)).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        r.text().await.ok()
    }

    /// utime + stime so far, in ms (`/proc/<pid>/stat` fields 14 and 15).
    fn cpu_ms(&self) -> Result<f64, String> {
        let path = format!("/proc/{}/stat", self.proc.id());
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // The fields after the command name start at field 3 (the state).
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        match fields.get(14 - 3..=15 - 3) {
            Some(&[u, s]) => Ok((u + s) as f64 * 1000.0 / USER_HZ),
            _ => Err(format!("{path}: no utime/stime")),
        }
    }

    /// A `/proc/<pid>/status` value in MiB (`VmRSS`, `VmHWM`).
    fn status_mib(&self, key: &str) -> Result<f64, String> {
        let path = format!("/proc/{}/status", self.proc.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let kib: Option<f64> = status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        kib.map(|k| k / 1024.0)
            .ok_or_else(|| format!("{path}: no {key}"))
    }

    /// SIGTERM, then waits up to 30 s for a clean exit.
    async fn terminate(mut self) -> Result<(), String> {
        let pid = self.proc.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !sent.is_ok_and(|s| s.success()) {
            return Err(format!("kill -TERM {pid} failed"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.proc.try_wait().map_err(|e| format!("wait: {e}"))? {
                Some(s) if s.success() => return Ok(()),
                Some(s) => return Err(format!("the service exited with {s} on SIGTERM")),
                None if Instant::now() > deadline => {
                    return Err("the service did not exit within 30 s of SIGTERM".to_owned());
                }
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}

/// The value of the sample named exactly `name` (labels included), 0 if absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One message as seen in Discord.
struct Seen {
    channel: usize,
    status: String,
    /// Bodies applied: the create, then each edit.
    bodies: usize,
}

/// A run's world: both emulators, the bench channels, a config for `start`.
struct Ctx<'a> {
    w: &'a Workload,
    workers: u32,
    sandbox: Sandbox,
    channels: Vec<String>,
    /// One config and HTTP port per replica (they differ in the port only).
    configs: Vec<PathBuf>,
    ports: Vec<u16>,
    log: &'a Path,
    http: reqwest::Client,
}

impl<'a> Ctx<'a> {
    async fn new(
        w: &'a Workload,
        workers: u32,
        replicas: usize,
        dir: &Path,
        log: &'a Path,
    ) -> Result<Self, String> {
        let raised = EmulatorConfig {
            create_limit: 1_000_000,
            edit_limit: 1_000_000,
            global_limit: 1_000_000,
            ..EmulatorConfig::default()
        };
        let limits = if w.limited() {
            EmulatorConfig::default()
        } else {
            raised
        };
        let sandbox = Sandbox::start(dir, limits)
            .await
            .map_err(|e| format!("emulators: {e}"))?;
        let channels: Vec<String> = (0..w.channels)
            .map(|c| sandbox.discord.add_channel(&format!("bench-{c}")))
            .collect();
        let (mut ports, mut configs) = (Vec::new(), Vec::new());
        for r in 0..replicas.max(1) {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("free port: {e}"))?
                .port();
            // Appended right after the sandbox's `"*" = ...` line, so the role
            // lines land in its `[role_to_recipients]` table.
            let mut extra = String::new();
            for (c, id) in channels.iter().enumerate() {
                let _ = writeln!(extra, "\"r{c}\" = \"{id}\"");
            }
            let _ = write!(
                extra,
                "\n[reconcile]\nworkers = {workers}\n\n[http]\nlisten_addr = \"127.0.0.1:{port}\"\n"
            );
            if matches!(w.kind, Kind::Review { .. }) {
                let _ = write!(
                    extra,
                    "\n[review]\nenabled = true\n\n[review.users]\n\"{REVIEWER_ID}\" = \"{REVIEWER}\"\n"
                );
            }
            let mut text = sandbox.config(&extra);
            if !w.limited() {
                // The service's own global limit, in the existing [discord] table.
                text = text.replacen("[discord]\n", "[discord]\nglobal_rate_limit = 10000\n", 1);
            }
            let config = dir.join(format!("teleport-discord-{r}.toml"));
            std::fs::write(&config, text).map_err(|e| format!("config: {e}"))?;
            ports.push(port);
            configs.push(config);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build();
        let http = http.map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            w,
            workers,
            sandbox,
            channels,
            configs,
            ports,
            log,
            http,
        })
    }

    fn spawn(&self) -> Result<Child, String> {
        self.spawn_nth(0)
    }

    /// Replica `r` (its own HTTP port).
    fn spawn_nth(&self, r: usize) -> Result<Child, String> {
        let mut cmd = Command::new(BIN);
        cmd.arg("start")
            .arg("--config")
            .arg(&self.configs[r])
            .stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if name.starts_with("TELEPORT_DISCORD_") || name.starts_with("TELEPORT_PLUGIN_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env_remove("RUST_LOG");
        if std::env::var("BENCH_LOG").is_ok_and(|v| v == "1") {
            cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
        } else {
            let log = self.log;
            let file = std::fs::File::options().create(true).append(true).open(log);
            let file = file.map_err(|e| format!("open {}: {e}", log.display()))?;
            cmd.stdout(file.try_clone().map_err(|e| e.to_string())?)
                .stderr(file);
        }
        let proc = cmd.spawn().map_err(|e| format!("spawn {BIN}: {e}"))?;
        Ok(Child {
            proc,
            base: format!("http://127.0.0.1:{}", self.ports[r]),
        })
    }

    /// The service started, once `/readyz` answers 200 (watch up, token checked).
    async fn ready(&self) -> Result<Child, String> {
        self.ready_nth(0).await
    }

    /// Replica `r`, once ready.
    async fn ready_nth(&self, r: usize) -> Result<Child, String> {
        let mut child = self.spawn_nth(r)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.get(&self.http, "/readyz").await.is_none() {
            child.check_alive()?;
            if Instant::now() > deadline {
                return Err("the service was not ready within 30 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(child)
    }

    /// The bench channels' messages by request ID (the `*ID*:` line).
    fn snapshot(&self) -> HashMap<String, Vec<Seen>> {
        let mut seen: HashMap<String, Vec<Seen>> = HashMap::new();
        for (c, ch) in self.channels.iter().enumerate() {
            for m in self.sandbox.discord.messages(ch) {
                let line = |prefix: &str| {
                    let mut lines = m.content.lines();
                    lines
                        .find_map(|l| l.strip_prefix(prefix))
                        .unwrap_or_default()
                        .to_owned()
                };
                let (status, bodies) = (line("*Status*: "), m.history.len());
                seen.entry(line("*ID*: ")).or_default().push(Seen {
                    channel: c,
                    status,
                    bodies,
                });
            }
        }
        seen
    }

    /// Checks that request `i` (`ids[i]`) has exactly one message, in channel
    /// `i % C`, showing `status`, and that there are no other messages.
    /// Returns the (request, channel) pairs with more than one message.
    fn verify(&self, ids: &[String], status: Status) -> (u64, Option<String>) {
        let seen = self.snapshot();
        let mut pairs: BTreeMap<(&str, usize), u64> = BTreeMap::new();
        for (id, m) in seen
            .iter()
            .flat_map(|(id, v)| v.iter().map(move |m| (id, m)))
        {
            *pairs.entry((id, m.channel)).or_default() += 1;
        }
        let dups = pairs.values().filter(|&&k| k > 1).count() as u64;
        let mut problems = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let want = i % self.channels.len();
            match seen.get(id).map(Vec::as_slice) {
                None | Some([]) => problems.push(format!("{id}: no message")),
                Some([m]) if m.channel != want => {
                    problems.push(format!("{id}: in channel {} not {want}", m.channel));
                }
                Some([m]) if m.status != status.line() => {
                    problems.push(format!(
                        "{id}: status {:?} not {:?}",
                        m.status,
                        status.line()
                    ));
                }
                Some([_]) => {}
                Some(more) => problems.push(format!("{id}: {} messages", more.len())),
            }
        }
        let total: usize = self.sandbox.discord.messages_per_channel().values().sum();
        if total != ids.len() {
            problems.push(format!(
                "{total} messages in all channels for {} requests",
                ids.len()
            ));
        }
        let problem = (!problems.is_empty()).then(|| {
            let shown: Vec<_> = problems.iter().take(5).cloned().collect();
            format!("{} problems, e.g. {}", problems.len(), shown.join("; "))
        });
        (dups, problem)
    }

    fn create(&self, i: usize, approvals: u32) -> String {
        let (user, role) = (format!("user{i}"), format!("r{}", i % self.channels.len()));
        let tp = &self.sandbox.teleport;
        match approvals {
            0 => tp.create_request(&user, &[&role], "bench"),
            a => tp.create_request_with_threshold(&user, &[&role], "bench", a, 1),
        }
    }
}

/// A finished run: its printed line and the value the summary compares.
struct Outcome {
    line: String,
    score: f64,
    problem: Option<String>,
}

/// The fields most lines end with.
fn tail(stats: &Stats, dups: u64, cpu_ms: f64, ops: u64, peak_mib: f64) -> String {
    format!(
        "429s {}  dups {dups}  CPU {cpu_ms:.0} ms ({:.0} µs/op, {ops} ops)  peak RSS {peak_mib:.1} MiB",
        stats.rate_limited(),
        cpu_ms * 1000.0 / ops.max(1) as f64,
    )
}

/// `burst`, `w1`, `w2`, `w3`: the time until every request shows its final
/// state, against the minimum the limits allow.
async fn throughput(cx: &Ctx<'_>) -> Result<Outcome, String> {
    let (w, workers, discord) = (cx.w, cx.workers, &cx.sandbox.discord);
    let (n, approvals, min) = (w.n, w.approvals, minimum(&w.buckets()));
    let budget = Duration::from_secs_f64(3.0 * min + 30.0);
    let mut children = Vec::new();
    for r in 0..cx.ports.len() {
        children.push(cx.ready_nth(r).await?);
    }
    // Each replica checked the bot token with Discord as it started; the
    // workload starts once those requests have left Discord's one-second
    // global window, so it measures replicas that are running, not starting.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let cpu_all = |children: &[Child]| -> Result<f64, String> {
        children
            .iter()
            .map(Child::cpu_ms)
            .sum::<Result<f64, String>>()
    };
    let (before, cpu0) = (discord.stats().requests, cpu_all(&children)?);
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(w.spacing_ms.max(1)));
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        if w.spacing_ms > 0 {
            tick.tick().await;
        }
        ids.push(cx.create(i, approvals));
    }
    let want = if approvals > 0 {
        Status::Approved
    } else {
        Status::Pending
    };
    // Reviews submitted per request; the next goes once the previous state shows.
    let mut reviews = vec![0u32; n];
    // When each request's create, then each edit, was first seen (`BENCH_TRACE`).
    let mut shown = vec![vec![None; approvals as usize + 1]; n];
    loop {
        let seen = cx.snapshot();
        let (mut left, now) = (0, t0.elapsed().as_secs_f64());
        for (i, id) in ids.iter().enumerate() {
            let Some(m) = seen.get(id).and_then(|v| v.first()) else {
                left += 1;
                continue;
            };
            for t in shown[i].iter_mut().take(m.bodies) {
                t.get_or_insert(now);
            }
            let k = reviews[i];
            if k < approvals {
                left += 1;
                // The create (k = 0) or the edit after review k shows.
                if m.bodies > k as usize {
                    let author = format!("reviewer{k}");
                    let review = cx.sandbox.teleport.add_review(id, &author, true, "bench");
                    review.map_err(|e| format!("review {k} of {id}: {e}"))?;
                    reviews[i] += 1;
                }
            } else if m.status != want.line() {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        for child in &mut children {
            child.check_alive()?;
        }
        if t0.elapsed() > budget {
            return Err(format!(
                "not finished within {:.0} s (3 × minimum {min:.2} s + 30 s): {left} of {n} requests do not show {:?} yet; child killed",
                budget.as_secs_f64(),
                want.line()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_all(&children)? - cpu0;
    let mut peak = 0.0f64;
    for child in &children {
        peak = peak.max(child.status_mib("VmHWM")?);
    }
    if std::env::var("BENCH_TRACE").is_ok_and(|v| v == "1") {
        trace(&shown, cx.channels.len());
    }
    // Let anything late (a duplicate, a stray edit) arrive before checking.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (dups, problem) = cx.verify(&ids, want);
    let stats = discord.stats();
    let ops = (n as u64) * (1 + u64::from(approvals));
    let ratio = wall / min;
    let replicas = match children.len() {
        1 => String::new(),
        n => format!("  replicas {n}"),
    };
    let line = format!(
        "{:<7} workers {workers:>3}{replicas}  wall {wall:7.3} s  min {min:6.2} s  ratio {ratio:.3}  Discord requests {}  {}",
        w.name,
        stats.requests - before,
        tail(&stats, dups, cpu, ops, peak)
    );
    Ok(Outcome {
        line,
        score: ratio,
        problem,
    })
}

/// Prints when each stage (create, edit 1, ...) showed: spread over all
/// requests, and every request of channel 0.
fn trace(shown: &[Vec<Option<f64>>], channels: usize) {
    let stages = shown.first().map_or(0, Vec::len);
    for k in 0..stages {
        let mut t: Vec<f64> = shown.iter().filter_map(|s| s[k]).collect();
        t.sort_by(f64::total_cmp);
        if let (Some(first), Some(last)) = (t.first(), t.last()) {
            let mid = t[t.len() / 2];
            println!("  stage {k}: first {first:.2} s, median {mid:.2} s, last {last:.2} s");
        }
    }
    for (i, s) in shown.iter().enumerate().step_by(channels) {
        let times: Vec<String> = s
            .iter()
            .map(|t| format!("{:.2}", t.unwrap_or(-1.0)))
            .collect();
        println!("  channel 0, request {i}: {} s", times.join(" / "));
    }
}

/// `latency`: requests one at a time, limits raised.
async fn latency(cx: &Ctx<'_>) -> Result<Outcome, String> {
    let (n, workers, discord) = (cx.w.n, cx.workers, &cx.sandbox.discord);
    let child = cx.ready().await?;
    let (cpu0, t0) = (child.cpu_ms()?, Instant::now());
    let (mut ids, mut lat) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let channel = &cx.channels[i % cx.channels.len()];
        let start = Instant::now();
        let id = cx.create(i, 0);
        while !discord
            .messages(channel)
            .iter()
            .rev()
            .any(|m| m.content.contains(&id))
        {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("{id} did not show within 30 s; child killed"));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lat.push(start.elapsed().as_secs_f64() * 1e3);
        ids.push(id);
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu, peak) = (child.cpu_ms()? - cpu0, child.status_mib("VmHWM")?);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (dups, problem) = cx.verify(&ids, Status::Pending);
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    let (p50, p99) = (pct(0.5), pct(0.99));
    let line = format!(
        "latency workers {workers:>3}  wall {wall:7.3} s  p50 {p50:.1} ms  p99 {p99:.1} ms  {}",
        tail(&discord.stats(), dups, cpu, n as u64, peak)
    );
    Ok(Outcome {
        line,
        score: p50,
        problem,
    })
}

/// Waits until a listing made after the first `listings` is reconciled:
/// `ListAccessRequests` called again, `reconciles{ok}` ≥ N, nothing queued,
/// delayed or in flight.
async fn reconciled(
    cx: &Ctx<'_>,
    child: &mut Child,
    listings: u64,
    deadline: Instant,
) -> Result<(), String> {
    let n = cx.w.n as f64;
    loop {
        child.check_alive()?;
        // Until the service listens, /metrics fails: not done yet.
        if cx.sandbox.teleport.calls("ListAccessRequests") > listings
            && let Some(text) = child.get(&cx.http, "/metrics").await
        {
            // Reconciled, or found already shown by the bulk comparison.
            let ok = metric(&text, "teleport_discord_reconciles_total{outcome=\"ok\"}")
                + metric(&text, "teleport_discord_resync_at_rest_total");
            let busy: f64 = ["queue_depth", "queue_delayed", "in_flight"]
                .iter()
                .map(|m| metric(&text, &format!("teleport_discord_reconcile_{m}")))
                .sum();
            if ok >= n && busy == 0.0 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{n} requests not reconciled in time; child killed"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `resync`: post N requests, SIGTERM, start again, time the resync.
async fn resync(cx: &Ctx<'_>) -> Result<Outcome, String> {
    let (n, workers) = (cx.w.n, cx.workers);
    let (tp, discord) = (&cx.sandbox.teleport, &cx.sandbox.discord);
    let budget = Duration::from_secs(30) + Duration::from_millis(5) * n as u32;
    let ids: Vec<String> = (0..n).map(|i| cx.create(i, 0)).collect();
    let t0 = Instant::now();
    let mut first = cx.spawn()?;
    reconciled(cx, &mut first, 0, t0 + budget).await?;
    let catch_up = t0.elapsed().as_secs_f64();
    if discord.stats().messages_created < n as u64 {
        return Err("reconciled but not every request was posted".to_owned());
    }
    let (rss_before, peak_before) = (first.status_mib("VmRSS")?, first.status_mib("VmHWM")?);
    first.terminate().await?;

    let calls = |s: Stats| (s.requests, s.messages_created + s.edits);
    let ((req0, msg0), gpd0) = (calls(discord.stats()), tp.calls("GetPluginData"));
    let lar0 = tp.calls("ListAccessRequests");
    let t0 = Instant::now();
    let mut child = cx.spawn()?;
    reconciled(cx, &mut child, lar0, t0 + budget).await?;
    let secs = t0.elapsed().as_secs_f64();
    let ((req1, msg1), gpd) = (calls(discord.stats()), tp.calls("GetPluginData") - gpd0);
    let (cpu, peak) = (child.cpu_ms()?, child.status_mib("VmHWM")?);
    // Then until the calls stop changing (the sweep after the listing).
    let mut last = (tp.calls("GetPluginData"), discord.stats().requests);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (tp.calls("GetPluginData"), discord.stats().requests);
        if std::mem::replace(&mut last, now) == now {
            break;
        }
    }
    let (dups, problem) = cx.verify(&ids, Status::Pending);
    let line = format!(
        "resync  workers {workers:>3}  N {n}  resync {secs:.2} s  Discord requests {} ({} creates/edits; {} once settled)  GetPluginData {gpd} ({} once settled)  ListAccessRequests {}  CPU {cpu:.0} ms ({:.0} µs/request)  RSS before restart {rss_before:.1} MiB (peak {peak_before:.1})  peak RSS {peak:.1} MiB  dups {dups}  (catch-up before: {catch_up:.2} s)",
        req1 - req0,
        msg1 - msg0,
        last.1 - req0,
        last.0 - gpd0,
        tp.calls("ListAccessRequests") - lar0,
        cpu * 1000.0 / n.max(1) as f64,
    );
    Ok(Outcome {
        line,
        score: secs,
        problem,
    })
}

/// p50, p95, p99 and max of `v` (nearest rank; sorted in place; 0 when empty).
fn pcts(v: &mut [f64]) -> [f64; 4] {
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| match v.len() {
        0 => 0.0,
        n => v[((n - 1) as f64 * p).round() as usize],
    };
    [pct(0.5), pct(0.95), pct(0.99), pct(1.0)]
}

/// `p50 … p95 … p99 … max … ms` of `v`.
fn spread(v: &mut [f64]) -> String {
    let [p50, p95, p99, max] = pcts(v);
    format!("p50 {p50:.1}  p95 {p95:.1}  p99 {p99:.1}  max {max:.1} ms")
}

/// The `*Status*:` line's value in a message's content.
fn status_of(content: &str) -> &str {
    content
        .lines()
        .find_map(|l| l.strip_prefix("*Status*: "))
        .unwrap_or_default()
}

fn has_buttons(components: &Value) -> bool {
    components.to_string().contains("review:v1:")
}

/// The accepted first answer's `content`, "" when none.
fn answer_text(reply: &InteractionReply) -> String {
    reply
        .response()
        .and_then(|a| a.data.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Whether an interaction missed Discord's deadline: not acknowledged, or
/// some answer (accepted or not) came after 3 s.
fn late(reply: &InteractionReply) -> bool {
    !reply.acknowledged()
        || reply
            .interaction
            .answers
            .iter()
            .any(|a| a.after >= DEADLINE)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `review`, `review-slow`: post N requests, then, one at a time, click
/// Approve as the mapped reviewer and submit the modal; time each step.
async fn review(cx: &Ctx<'_>, delay: Duration) -> Result<Outcome, String> {
    let (n, workers, chans) = (cx.w.n, cx.workers, cx.channels.len());
    let (tp, discord) = (&cx.sandbox.teleport, &cx.sandbox.discord);
    discord.add_user_with_id(REVIEWER_ID, REVIEWER);
    tp.put_user(REVIEWER, &[], &[]);
    tp.put_user_reviews(REVIEWER, &["*"]);
    tp.set_permissions(Permissions {
        submit_reviews_for_users: true,
        ..Permissions::default()
    });
    discord.set_interactions_endpoint(&format!(
        "http://127.0.0.1:{}/discord/interactions",
        cx.ports[0]
    ));
    let child = cx.ready().await?;
    let ids: Vec<String> = (0..n).map(|i| cx.create(i, 1)).collect();
    // Every request's message, once posted with its buttons.
    let deadline = Instant::now() + Duration::from_secs(60);
    let msgs: Vec<String> = loop {
        let per: Vec<_> = cx.channels.iter().map(|c| discord.messages(c)).collect();
        let found: Option<Vec<String>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                per[i % chans]
                    .iter()
                    .find(|m| m.content.contains(id.as_str()) && has_buttons(&m.components))
                    .map(|m| m.id.clone())
            })
            .collect();
        if let Some(found) = found {
            break found;
        }
        if Instant::now() > deadline {
            return Err("the requests were not all posted with buttons within 60 s".to_owned());
        }
        tokio::time::sleep(POLL).await;
    };
    tp.set_review_delay(delay);
    let expect_deferred = delay > ANSWER_BUDGET;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cpu0, t0) = (child.cpu_ms()?, Instant::now());
    let (mut click_ms, mut submit_ms, mut approved_ms, mut follow_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut deferred_clicks, mut deferred_submits, mut late_answers) = (0u64, 0u64, 0u64);
    let mut problems = Vec::new();
    for (i, (id, msg)) in ids.iter().zip(&msgs).enumerate() {
        let ch = &cx.channels[i % chans];
        let custom_id = format!("review:v1:approve:{id}");
        let click = discord
            .click(ch, msg, &custom_id, REVIEWER_ID)
            .await
            .map_err(|e| format!("click on {id}: {e}"))?;
        late_answers += u64::from(late(&click));
        deferred_clicks += u64::from(click.callback_type() == Some(5));
        let Some(first) = click.response() else {
            problems.push(format!(
                "{id}: click not answered ({:?})",
                click.interaction.state
            ));
            continue;
        };
        click_ms.push(ms(first.after));
        if click.callback_type() != Some(9) {
            problems.push(format!(
                "{id}: click answered {:?}, not the modal: {}",
                click.callback_type(),
                answer_text(&click)
            ));
            continue;
        }
        let t = Instant::now();
        // The follow-up (after a deferral) and the message are polled
        // while the submit is delivered and answered.
        let submit = async {
            let reply = discord
                .submit_modal(&click.interaction.id, &[("reason", "bench")])
                .await;
            let mut follow = None;
            if let Ok(r) = &reply
                && r.callback_type() == Some(5)
            {
                while t.elapsed() < Duration::from_secs(30) {
                    let text = discord
                        .interaction(&r.interaction.id)
                        .and_then(|x| x.ephemeral_messages.first().map(|m| m.content.clone()))
                        .filter(|c| !c.is_empty());
                    if let Some(text) = text {
                        follow = Some((t.elapsed(), text));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            (reply, follow)
        };
        let shown = async {
            while t.elapsed() < Duration::from_secs(30) {
                let approved = discord
                    .messages(ch)
                    .iter()
                    .any(|m| m.id == *msg && status_of(&m.content) == Status::Approved.line());
                if approved {
                    return Some(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            None
        };
        let ((reply, follow), shown) = tokio::join!(submit, shown);
        let reply = reply.map_err(|e| format!("submit on {id}: {e}"))?;
        late_answers += u64::from(late(&reply));
        match reply.response() {
            Some(a) => submit_ms.push(ms(a.after)),
            None => problems.push(format!(
                "{id}: submit not answered ({:?})",
                reply.interaction.state
            )),
        }
        let deferred = reply.callback_type() == Some(5);
        deferred_submits += u64::from(deferred);
        if expect_deferred && !deferred {
            problems.push(format!(
                "{id}: submit not deferred with Teleport {delay:?} slow"
            ));
        }
        let text = match (deferred, follow) {
            (false, _) => answer_text(&reply),
            (true, Some((after, text))) => {
                follow_ms.push(ms(after));
                text
            }
            (true, None) => {
                problems.push(format!("{id}: deferred, no follow-up within 30 s"));
                String::new()
            }
        };
        if !text.is_empty() && !text.contains("You approved") {
            problems.push(format!("{id}: answered {text:?}"));
        }
        match shown {
            Some(d) => approved_ms.push(ms(d)),
            None => problems.push(format!("{id}: not APPROVED within 30 s of the submit")),
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let (cpu, peak) = (child.cpu_ms()? - cpu0, child.status_mib("VmHWM")?);
    // Let anything late (a duplicate, a stray edit) arrive before checking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (dups, problem) = cx.verify(&ids, Status::Approved);
    problems.extend(problem);
    let per: Vec<_> = cx.channels.iter().map(|c| discord.messages(c)).collect();
    for (i, id) in ids.iter().enumerate() {
        if per[i % chans]
            .iter()
            .any(|m| m.content.contains(id.as_str()) && has_buttons(&m.components))
        {
            problems.push(format!("{id}: still has buttons"));
        }
        let spec = tp.request(id).and_then(|r| r.spec);
        let Some(spec) = spec else {
            problems.push(format!("{id}: not in Teleport"));
            continue;
        };
        let ok = matches!(spec.reviews.as_slice(),
            [r] if r.author == REVIEWER && r.submitted_on_behalf_of_author);
        if spec.state != 2 || !ok {
            problems.push(format!(
                "{id}: Teleport state {}, {} reviews, on behalf {:?}",
                spec.state,
                spec.reviews.len(),
                spec.reviews
                    .iter()
                    .map(|r| r.submitted_on_behalf_of_author)
                    .collect::<Vec<_>>()
            ));
        }
    }
    let score = pcts(&mut submit_ms.clone())[2];
    let follow = if follow_ms.is_empty() {
        String::new()
    } else {
        format!(
            "\n  follow-up  {} (submit → follow-up shown)",
            spread(&mut follow_ms)
        )
    };
    let line = format!(
        "{:<7} workers {workers:>3}  N {n}  Teleport review delay {} ms  wall {wall:.3} s  deferred: clicks {deferred_clicks}, submits {deferred_submits}  answers after 3 s {late_answers}  dups {dups}  CPU {cpu:.0} ms ({:.1} ms/review)  peak RSS {peak:.1} MiB\n  click      {} (delivery → modal)\n  submit     {} (delivery → first answer)\n  approved   {} (submit → message shows APPROVED){follow}",
        cx.w.name,
        delay.as_millis(),
        cpu / n.max(1) as f64,
        spread(&mut click_ms),
        spread(&mut submit_ms),
        spread(&mut approved_ms),
    );
    let problem = (!problems.is_empty()).then(|| {
        let shown: Vec<_> = problems.iter().take(5).cloned().collect();
        format!("{} problems, e.g. {}", problems.len(), shown.join("; "))
    });
    Ok(Outcome {
        line,
        score,
        problem,
    })
}

async fn run(
    w: &Workload,
    workers: u32,
    replicas: usize,
    dir: &Path,
    log: &Path,
) -> Result<Outcome, String> {
    // Replicas apply to the throughput workloads; the others run one.
    let replicas = if w.kind == Kind::Throughput {
        replicas
    } else {
        1
    };
    let cx = Ctx::new(w, workers, replicas, dir, log).await?;
    match w.kind {
        Kind::Throughput => throughput(&cx).await,
        Kind::Latency => latency(&cx).await,
        Kind::Resync => resync(&cx).await,
        Kind::Review { delay_ms } => review(&cx, Duration::from_millis(delay_ms)).await,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("pipeline bench: {e}");
        std::process::exit(2);
    });
    for w in &args.workloads {
        let limits = if w.limited() {
            format!("minimum the limits allow {:.2} s", minimum(&w.buckets()))
        } else {
            "Discord limits raised".to_owned()
        };
        let (n, c, a) = (w.n, w.channels, w.approvals);
        println!(
            "# {}: {n} requests over {c} channels, {a} approvals each; {limits}",
            w.name
        );
    }
    let (mut summary, mut failures) = (Vec::new(), 0);
    for w in &args.workloads {
        for &workers in &args.workers {
            let mut scores = Vec::new();
            for _ in 0..args.runs {
                let dir = tempfile::tempdir().expect("tempdir");
                let log = dir.path().join("service.log");
                match run(w, workers, args.replicas, dir.path(), &log).await {
                    Ok(o) => {
                        println!("{}", o.line);
                        match o.problem {
                            Some(p) => {
                                failures += 1;
                                println!("  INCORRECT: {p}");
                            }
                            None => scores.push(o.score),
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        let kept = dir.keep();
                        println!("{:<7} workers {workers:>3}  FAILED: {e}", w.name);
                        println!("  service log: {}", kept.join("service.log").display());
                    }
                }
            }
            summary.push((w, workers, scores));
        }
    }
    println!("\nsummary (median and range over the correct runs)");
    for (w, workers, mut v) in summary.into_iter().filter(|(_, _, v)| !v.is_empty()) {
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        let (lo, hi, runs, name) = (v[0], v[v.len() - 1], v.len(), w.score_name());
        println!(
            "{:<7} workers {workers:>3}  {name} {median:.3} ({lo:.3}–{hi:.3}) over {runs} runs",
            w.name
        );
    }
    if failures > 0 {
        println!("{failures} runs failed");
        std::process::exit(1);
    }
}
