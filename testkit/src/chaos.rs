//! The chaos runner behind the hidden `chaos` verb and the end-to-end
//! reliability tests: real `teleport-discord start` processes (replicas)
//! against both emulators, a stream of access requests going through their
//! lifecycle, and faults injected at random — replicas killed with SIGKILL and
//! restarted, Teleport watch streams dropped, Teleport outages, the identity
//! rotated on disk, Discord 5xx, dropped connections, latency and forced 429s,
//! config reloads by SIGHUP. At the end the faults stop and the runner waits
//! until every request shows its final state in exactly one message per
//! recipient channel, then reports what it did and what it found.
//!
//! The oracle follows upstream's rules: a request is announced when it is
//! seen pending, so the runner reviews, resolves or deletes a request only
//! once its messages exist (as people do: they act on the message).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::discord::{EmulatorConfig, Faults, Scope};
use super::net::Link;
use super::sandbox::Sandbox;

/// Faults a run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// SIGKILL a replica, restart it a little later.
    KillReplica,
    /// End every Teleport watch stream (with an error or a clean EOF).
    DropStreams,
    /// Teleport answers nothing but `Unavailable` for a few seconds.
    TeleportOutage,
    /// A new client certificate is written to the identity file; the old one
    /// is refused on new connections.
    RotateIdentity,
    /// Discord answers 500 to a share of message requests, drops some
    /// connections after processing, and answers slowly, for a few seconds.
    DiscordErrors,
    /// Discord answers 429 (a channel's bucket, or global).
    Discord429,
    /// SIGHUP a replica (the config is rewritten with another log level).
    Reload,
    /// SIGKILL the replica holding the leader lease (no release: the lease
    /// runs out), restart it a little later.
    KillLeader,
    /// SIGTERM the leader (it releases the lease), restart it later.
    TerminateLeader,
    /// Cut the leader off from Teleport (Discord stays reachable) for longer
    /// than the lease: it must stop sending before the lease runs out.
    PartitionLeader,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 10] = [
        Fault::KillReplica,
        Fault::DropStreams,
        Fault::TeleportOutage,
        Fault::RotateIdentity,
        Fault::DiscordErrors,
        Fault::Discord429,
        Fault::Reload,
        Fault::KillLeader,
        Fault::TerminateLeader,
        Fault::PartitionLeader,
    ];
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The `teleport-discord` binary to start as replicas.
    pub binary: PathBuf,
    /// Where the emulators' credentials, the config and the replicas' logs go.
    pub dir: PathBuf,
    /// Access requests to create.
    pub requests: usize,
    /// Requests created per second.
    pub rate: f64,
    /// Replicas running at once.
    pub replicas: usize,
    /// Recipient channels (one role each, plus a `"*"` fallback).
    pub channels: usize,
    /// Faults to draw from (empty: none).
    pub faults: Vec<Fault>,
    /// Mean time between two faults.
    pub fault_every: Duration,
    /// How long to wait, after the last request and the last fault, for
    /// everything to show its final state.
    pub settle_timeout: Duration,
    /// Seed of the pseudo-random choices (same seed, same plan).
    pub seed: u64,
    /// Discord's limits in the emulator (Discord's defaults unless changed).
    pub discord: EmulatorConfig,
    /// Log level of the replicas (`RUST_LOG`-style severity for `[log]`).
    pub severity: String,
    /// How often to sample the replicas' memory and file descriptors.
    pub sample_every: Duration,
    /// Delete every request this long after it was acted upon (as Teleport
    /// does when requests expire), so a long run reaches a steady state.
    pub expire_after: Option<Duration>,
}

impl ChaosOptions {
    /// Defaults: 3 replicas, 20 channels, every fault, Discord's limits.
    pub fn new(binary: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            dir: dir.into(),
            requests: 200,
            rate: 10.0,
            replicas: 3,
            channels: 20,
            faults: Fault::ALL.to_vec(),
            fault_every: Duration::from_secs(2),
            settle_timeout: Duration::from_secs(120),
            seed: 1,
            discord: EmulatorConfig::default(),
            severity: "info".to_owned(),
            sample_every: Duration::from_secs(30),
            expire_after: None,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChaosReport {
    /// Requests created.
    pub requests: usize,
    /// Requests that ended approved / denied / expired / still pending.
    pub final_states: BTreeMap<&'static str, usize>,
    /// Messages expected (one per request and recipient channel).
    pub expected_messages: usize,
    /// Messages found showing the expected final state.
    pub correct_messages: usize,
    /// (request, channel) pairs with no message.
    pub missing: usize,
    /// Extra messages for a (request, channel) pair.
    pub duplicated: usize,
    /// Messages whose status line is not the request's final state.
    pub wrong_state: usize,
    /// Messages with someone who would have been pinged.
    pub pinged: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Replica exits we did not cause (crashes).
    pub unexpected_exits: u64,
    /// Replicas restarted during a Teleport outage (or while cut off from
    /// Teleport) that refused to start
    /// (as upstream: start-up needs Teleport) and were started again.
    pub startup_refused: u64,
    /// Discord emulator: messages created, edits, 429s served, 500s
    /// injected, connections dropped, creates de-duplicated by nonce,
    /// messages whose nonce was used before (duplicates).
    pub discord: BTreeMap<&'static str, u64>,
    /// Time from the first request to the last fault.
    pub chaos_seconds: f64,
    /// Time from the end of the faults until everything was correct (or the timeout).
    pub settle_seconds: f64,
    /// The first few problems, for a human.
    pub examples: Vec<String>,
    /// Leader leases granted during the run, and how many replicas held one.
    pub leases: usize,
    /// Replicas that held the leader lease at some point.
    pub leaders: usize,
    /// Message creates and edits the replicas sent (seen on their links).
    pub writes: usize,
    /// Of those, sent while the sender held no lease (while another replica
    /// may have held it): must be 0 when the replicas run with the lease.
    pub sends_outside_lease: usize,
    /// Resident memory and open file descriptors of each running replica,
    /// sampled every [`ChaosOptions::sample_every`] (Linux `/proc`).
    pub samples: Vec<Sample>,
    /// Requester DMs expected (one per resolved request: `[notify]
    /// requester` is on and every requester maps to a Discord user).
    pub dms_expected: usize,
    /// Of those, found once, saying the final state.
    pub dms_correct: usize,
    /// Resolved requests whose requester got no DM.
    pub dms_missing: usize,
    /// Extra DMs about one request.
    pub dms_duplicated: usize,
    /// DMs saying something else than the final state (or sent about a
    /// request still pending).
    pub dms_wrong: usize,
}

/// One replica's resources at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub at_seconds: f64,
    /// Replica index.
    pub replica: usize,
    /// Process ID.
    pub pid: u32,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Entries in `/proc/<pid>/fd`.
    pub fds: u64,
}

fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

impl ChaosReport {
    /// Nothing lost, duplicated, stale or pinged, no replica crashed, and no
    /// replica sent to Discord outside its own lease.
    pub fn ok(&self) -> bool {
        self.sends_outside_lease == 0
            && self.missing == 0
            && self.duplicated == 0
            && self.wrong_state == 0
            && self.pinged == 0
            && self.unexpected_exits == 0
            && self.correct_messages == self.expected_messages
            && self.dms_missing == 0
            && self.dms_duplicated == 0
            && self.dms_wrong == 0
    }

    /// A short human summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "requests {} ({:?}); messages expected {}, correct {}, missing {}, duplicated {}, wrong state {}, pinged {}",
            self.requests,
            self.final_states,
            self.expected_messages,
            self.correct_messages,
            self.missing,
            self.duplicated,
            self.wrong_state,
            self.pinged
        );
        let _ = writeln!(
            s,
            "faults {:?}; unexpected replica exits {}; start-ups refused while Teleport was unreachable {}",
            self.faults, self.unexpected_exits, self.startup_refused
        );
        let _ = writeln!(
            s,
            "requester DMs expected {}, correct {}, missing {}, duplicated {}, wrong {}",
            self.dms_expected,
            self.dms_correct,
            self.dms_missing,
            self.dms_duplicated,
            self.dms_wrong
        );
        let _ = writeln!(s, "discord {:?}", self.discord);
        let _ = writeln!(
            s,
            "leases granted {}, by {} replica(s); message writes {}, of them outside the sender's lease {}",
            self.leases, self.leaders, self.writes, self.sends_outside_lease
        );
        if let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) {
            let _ = writeln!(
                s,
                "replica resources: first sample {} KiB RSS / {} fds (t={:.0}s), last {} KiB / {} fds (t={:.0}s), {} samples",
                first.rss_kib,
                first.fds,
                first.at_seconds,
                last.rss_kib,
                last.fds,
                last.at_seconds,
                self.samples.len()
            );
        }
        let _ = write!(
            s,
            "chaos {:.1} s, settled in {:.1} s: {}",
            self.chaos_seconds,
            self.settle_seconds,
            if self.ok() { "OK" } else { "FAILED" }
        );
        for e in &self.examples {
            let _ = write!(s, "\n  {e}");
        }
        s
    }
}

/// Why a run could not be carried out (a finding is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Files, processes or the emulators.
    #[error("chaos run: {0}")]
    Io(#[from] std::io::Error),
}

/// splitmix64: small, seedable, good enough to pick faults.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl Final {
    fn status(self) -> &'static str {
        match self {
            Final::Pending => "*Status*: ⏳ PENDING",
            Final::Approved => "*Status*: ✅ APPROVED",
            Final::Denied => "*Status*: ❌ DENIED",
            Final::Expired => "*Status*: ⌛ EXPIRED",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Final::Pending => "pending",
            Final::Approved => "approved",
            Final::Denied => "denied",
            Final::Expired => "expired",
        }
    }
}

/// What the runner will do to a request once it is posted.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Leave,
    Review,
    Resolve { approve: bool, then_delete: bool },
    Delete,
}

#[derive(Debug)]
struct Tracked {
    id: String,
    /// The requester's Discord user.
    user_id: String,
    channels: Vec<String>,
    plan: Plan,
    /// Resolved, waiting for the resolution to show before deleting.
    resolved: bool,
    done: bool,
    /// When it was acted upon (for `expire_after`), and whether it was deleted.
    done_at: Option<Instant>,
    deleted: bool,
    end: Final,
}

struct Replica {
    child: Option<Child>,
    log: PathBuf,
    /// Its own config: Teleport and Discord through its own links.
    config: PathBuf,
    /// Its own way to Teleport (cut for a partition) and to Discord (which
    /// notes the message writes it sends).
    teleport: Link,
    discord: Link,
}

struct Run {
    opts: ChaosOptions,
    sandbox: Sandbox,
    /// Fallback first, then role1..=roleN's.
    channels: Vec<String>,
    replicas: Vec<Replica>,
    rng: Rng,
    report: ChaosReport,
    reloads: u64,
}

fn config_text(sb: &Sandbox, rep: &Replica, channels: &[String], severity: &str) -> String {
    let mut roles = String::new();
    for (i, ch) in channels.iter().enumerate().skip(1) {
        let _ = writeln!(roles, "\"role{i}\" = \"{ch}\"");
    }
    format!(
        "[teleport]\naddr = \"{}\"\nconnect_via = \"auth\"\nidentity = \"{}\"\nrefresh_identity = true\n\n\
         [discord]\ntoken = \"{}\"\napi_url = \"http://{}/api/v10\"\n\n\
         [role_to_recipients]\n\"*\" = \"{}\"\n{roles}\n\
         [http]\nlisten_addr = \"127.0.0.1:0\"\n\n[log]\nseverity = \"{severity}\"\n\n\
         [reconcile]\nresync_interval = \"20s\"\n\n[notify]\nrequester = true\n",
        rep.teleport.addr(),
        sb.teleport.paths().identity.display(),
        sb.discord.token(),
        rep.discord.addr(),
        channels[0],
    )
}

/// The HTTP ports a replica's log says it listened on (one per start).
fn http_ports(log: &Path) -> Vec<u16> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("HTTP server listening on"))
        .filter_map(|l| l.trim().rsplit(':').next()?.trim().parse().ok())
        .collect()
}

impl Run {
    fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.replicas[i].log)?;
        let child = Command::new(&self.opts.binary)
            .arg("start")
            .arg("--config")
            .arg(&self.replicas[i].config)
            .env_remove("TELEPORT_PLUGIN_FAIL_FAST")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        self.replicas[i].child = Some(child);
        Ok(())
    }

    fn count(&mut self, f: &str) {
        *self.report.faults.entry(f.to_owned()).or_default() += 1;
    }

    /// Notices replicas that exited on their own, and starts them again.
    fn reap(&mut self) -> std::io::Result<()> {
        for i in 0..self.replicas.len() {
            let exited = match self.replicas[i].child.as_mut() {
                Some(c) => c.try_wait()?.is_some(),
                None => false,
            };
            if exited {
                let log = std::fs::read(&self.replicas[i].log).unwrap_or_default();
                let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(2048)..]);
                // A start-up that cannot reach Teleport ends the process (as
                // upstream's does): expected during an outage or while this
                // replica is (or was just) cut off from Teleport.
                if tail.contains("Terminating with fatal error")
                    && (tail.contains("emulated outage")
                        || tail.contains("cannot connect to Teleport"))
                {
                    self.report.startup_refused += 1;
                } else {
                    self.report.unexpected_exits += 1;
                }
                self.replicas[i].child = None;
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// The replica holding the leader lease now, if any.
    fn leader(&self) -> Option<usize> {
        let holder = self
            .sandbox
            .teleport
            .leases()
            .into_iter()
            .find(|l| l.expires > std::time::SystemTime::now())?
            .holder;
        let port: u16 = holder.rsplit(':').next()?.parse().ok()?;
        (0..self.replicas.len()).find(|&i| {
            self.replicas[i].child.is_some()
                && http_ports(&self.replicas[i].log).last() == Some(&port)
        })
    }

    async fn inject(&mut self, fault: Fault, pending: &mut Vec<(Instant, usize)>) {
        match fault {
            Fault::KillLeader | Fault::TerminateLeader => {
                let Some(i) = self.leader() else { return };
                let Some(mut c) = self.replicas[i].child.take() else {
                    return;
                };
                if fault == Fault::KillLeader {
                    let _ = c.start_kill();
                    self.count("kill_leader");
                } else {
                    if let Some(pid) = c.id() {
                        let _ = Command::new("kill")
                            .args(["-TERM", &pid.to_string()])
                            .status()
                            .await;
                    }
                    self.count("terminate_leader");
                }
                let _ = c.wait().await;
                let back = Instant::now() + self.rng.millis(300, 3000);
                pending.push((back, i));
            }
            Fault::PartitionLeader => {
                let Some(i) = self.leader() else { return };
                self.replicas[i].teleport.set_cut(true);
                self.count("partition_leader");
                // Longer than the lease (10 s by default): a standby takes over.
                let heal = Instant::now() + self.rng.millis(11_000, 14_000);
                pending.push((heal, PARTITION + i));
            }
            Fault::KillReplica => {
                let i = self.rng.below(self.replicas.len());
                if let Some(mut c) = self.replicas[i].child.take() {
                    let _ = c.start_kill();
                    let _ = c.wait().await;
                    self.count("kill_replica");
                    let back = Instant::now() + self.rng.millis(300, 3000);
                    pending.push((back, i));
                }
            }
            Fault::DropStreams => {
                let with_error = self.rng.chance(0.5);
                self.sandbox.teleport.drop_watch_streams(with_error);
                self.count("drop_streams");
            }
            Fault::TeleportOutage => {
                let d = self.rng.millis(1000, 4000);
                self.sandbox.teleport.go_unavailable(d);
                self.count("teleport_outage");
            }
            Fault::RotateIdentity => {
                if self.sandbox.teleport.rotate_client_cert().is_ok() {
                    self.count("rotate_identity");
                }
            }
            Fault::DiscordErrors => {
                self.sandbox.discord.set_faults(Faults {
                    server_error_rate: 0.3,
                    drop_rate: 0.05,
                    latency: self.rng.millis(0, 200),
                    ..Faults::default()
                });
                self.count("discord_errors");
            }
            Fault::Discord429 => {
                let global = self.rng.chance(0.3);
                let retry = self.rng.millis(500, 2500);
                if global {
                    self.sandbox.discord.force_429(None, Scope::Global, retry);
                    self.count("discord_429_global");
                } else {
                    self.sandbox.discord.force_429(None, Scope::User, retry);
                    self.count("discord_429_route");
                }
            }
            Fault::Reload => {
                let i = self.rng.below(self.replicas.len());
                self.reloads += 1;
                let severity = if self.reloads.is_multiple_of(2) {
                    self.opts.severity.clone()
                } else {
                    "debug".to_owned()
                };
                let _ = std::fs::write(
                    &self.replicas[i].config,
                    config_text(&self.sandbox, &self.replicas[i], &self.channels, &severity),
                );
                if let Some(pid) = self.replicas[i].child.as_ref().and_then(Child::id) {
                    let _ = Command::new("kill")
                        .args(["-HUP", &pid.to_string()])
                        .status()
                        .await;
                    self.count("reload");
                }
            }
        }
    }
}

/// Marks a pending entry as the end of a replica's partition (index + this).
const PARTITION: usize = 1 << 20;

/// Who sent when, against who held the lease when: every message write a
/// replica sent must fall inside a lease that replica held (no two replicas
/// send in overlapping lease periods). With no lease granted at all (the
/// replicas run without one), writes are not judged.
fn leases_oracle(run: &Run) -> LeaseVerdict {
    let spans = run.sandbox.teleport.lease_spans();
    let mut v = LeaseVerdict {
        leases: spans.len(),
        ..LeaseVerdict::default()
    };
    for (i, rep) in run.replicas.iter().enumerate() {
        let ports = http_ports(&rep.log);
        let mine: Vec<_> = spans
            .iter()
            .filter(|s| {
                s.holder
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_some_and(|p| ports.contains(&p))
            })
            .collect();
        if !mine.is_empty() {
            v.leaders += 1;
        }
        // The link notes a write as it forwards it, a little after the
        // replica passed its fence.
        let slack = Duration::from_millis(100);
        for w in rep.discord.writes() {
            v.writes += 1;
            let inside = mine.iter().any(|s| s.start <= w && w <= s.end + slack);
            if !spans.is_empty() && !inside {
                v.outside += 1;
                if v.examples.len() < 5 {
                    v.examples.push(format!(
                        "replica {i} sent a message write at {w:?} outside any lease it held"
                    ));
                }
            }
        }
    }
    v
}

#[derive(Debug, Default)]
struct LeaseVerdict {
    leases: usize,
    leaders: usize,
    writes: usize,
    outside: usize,
    examples: Vec<String>,
}

/// Runs a chaos session; the report says whether anything was lost.
pub async fn run(opts: ChaosOptions) -> Result<ChaosReport, ChaosError> {
    std::fs::create_dir_all(&opts.dir)?;
    let sandbox = Sandbox::start(&opts.dir, opts.discord.clone()).await?;
    // Channel 0 is the fallback; channels 1..=n belong to role1..=roleN.
    let mut channels = vec![sandbox.channels[2].clone()];
    for i in 1..=opts.channels {
        channels.push(sandbox.discord.add_channel(&format!("team-{i}")));
    }
    let mut replicas = Vec::new();
    for i in 0..opts.replicas.max(1) {
        let rep = Replica {
            child: None,
            log: opts.dir.join(format!("replica-{i}.log")),
            config: opts.dir.join(format!("chaos-{i}.toml")),
            teleport: Link::start(sandbox.teleport.addr(), false).await?,
            discord: Link::start(sandbox.discord.addr(), true).await?,
        };
        std::fs::write(
            &rep.config,
            config_text(&sandbox, &rep, &channels, &opts.severity),
        )?;
        replicas.push(rep);
    }
    let mut run = Run {
        replicas,
        rng: Rng(opts.seed),
        sandbox,
        channels: channels.clone(),
        opts,
        report: ChaosReport::default(),
        reloads: 0,
    };
    for i in 0..run.replicas.len() {
        run.spawn(i)?;
    }

    let started = Instant::now();
    let mut tracked: Vec<Tracked> = Vec::new();
    let mut restarts: Vec<(Instant, usize)> = Vec::new();
    let create_every = Duration::from_secs_f64(1.0 / run.opts.rate.max(0.1));
    let mut next_create = Instant::now();
    let mut next_fault = Instant::now() + run.opts.fault_every;
    let mut next_check = Instant::now();
    let mut next_sample = Instant::now() + Duration::from_secs(5);
    let mut samples = Vec::new();
    // Chaos phase: until every request is created and acted upon (or the
    // settle timeout passes without progress).
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        if tracked.len() < run.opts.requests && now >= next_create {
            tracked.push(new_request(&mut run, &channels));
            next_create += create_every;
            last_progress = now;
        }
        if !run.opts.faults.is_empty() && now >= next_fault {
            let f = run.opts.faults[run.rng.below(run.opts.faults.len())];
            run.inject(f, &mut restarts).await;
            let mean = run.opts.fault_every.as_millis() as u64;
            next_fault = now + run.rng.millis(mean / 2, mean * 3 / 2 + 1);
            // Discord errors last a few seconds.
            if f == Fault::DiscordErrors {
                let d = run.rng.millis(1000, 4000);
                restarts.push((now + d, usize::MAX));
            }
        }
        restarts.retain(|(at, i)| {
            if *at > now {
                return true;
            }
            if *i == usize::MAX {
                run.sandbox.discord.set_faults(Faults::default());
            } else if *i >= PARTITION {
                run.replicas[*i - PARTITION].teleport.set_cut(false);
            } else if run.replicas[*i].child.is_none() {
                let _ = run.spawn(*i);
            }
            false
        });
        if now >= next_sample {
            next_sample = now + run.opts.sample_every;
            for (i, rep) in run.replicas.iter().enumerate() {
                if let Some(pid) = rep.child.as_ref().and_then(Child::id)
                    && let Some((rss_kib, fds)) = sample(pid)
                {
                    samples.push(Sample {
                        at_seconds: started.elapsed().as_secs_f64(),
                        replica: i,
                        pid,
                        rss_kib,
                        fds,
                    });
                }
            }
        }
        if now >= next_check {
            next_check = now + Duration::from_millis(200);
            run.reap()?;
            if act_on_posted(&mut run, &mut tracked) {
                last_progress = now;
            }
            if let Some(after) = run.opts.expire_after {
                for t in tracked.iter_mut().filter(|t| t.done && !t.deleted) {
                    let at = *t.done_at.get_or_insert(now);
                    if now.duration_since(at) >= after {
                        let _ = run.sandbox.teleport.delete_request(&t.id);
                        t.deleted = true;
                        if t.end == Final::Pending {
                            t.end = Final::Expired;
                        }
                    }
                }
            }
            let all_acted = tracked.len() == run.opts.requests
                && tracked
                    .iter()
                    .all(|t| t.done && (run.opts.expire_after.is_none() || t.deleted));
            if all_acted || now.duration_since(last_progress) > run.opts.settle_timeout {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.report.chaos_seconds = started.elapsed().as_secs_f64();

    // Settle: faults off, every replica up, wait for the final picture.
    run.sandbox.discord.set_faults(Faults::default());
    for (_, i) in restarts.drain(..) {
        if i == usize::MAX {
            continue;
        }
        if i >= PARTITION {
            run.replicas[i - PARTITION].teleport.set_cut(false);
        } else if run.replicas[i].child.is_none() {
            run.spawn(i)?;
        }
    }
    let settle = Instant::now();
    loop {
        run.reap()?;
        let report = judge(&run, &tracked);
        if report.ok() || settle.elapsed() > run.opts.settle_timeout {
            let (faults, exits, refused) = (
                run.report.faults.clone(),
                run.report.unexpected_exits,
                run.report.startup_refused,
            );
            run.report = report;
            run.report.faults = faults;
            let verdict = leases_oracle(&run);
            run.report.leases = verdict.leases;
            run.report.leaders = verdict.leaders;
            run.report.writes = verdict.writes;
            run.report.sends_outside_lease = verdict.outside;
            run.report.examples.extend(verdict.examples);
            run.report.unexpected_exits = exits;
            run.report.startup_refused = refused;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    run.report.chaos_seconds = settle.duration_since(started).as_secs_f64();
    run.report.samples = samples;
    run.report.settle_seconds = settle.elapsed().as_secs_f64();
    let st = run.sandbox.discord.stats();
    run.report.discord = BTreeMap::from([
        ("messages_created", st.messages_created),
        ("edits", st.edits),
        ("forced_429", st.forced_429),
        (
            "earned_429",
            st.rate_limited().saturating_sub(st.forced_429),
        ),
        ("server_errors_500", st.server_errors),
        ("connections_dropped", st.dropped),
        ("nonce_deduplicated", st.nonce_deduplicated),
        ("duplicates", st.duplicates),
        ("rejected_bodies", st.rejected_bodies),
    ]);
    for r in &mut run.replicas {
        if let Some(c) = r.child.as_mut() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
    Ok(run.report)
}

fn new_request(run: &mut Run, channels: &[String]) -> Tracked {
    // One or two roles; a role with no mapping goes to the fallback.
    let n = run.opts.channels;
    let a = 1 + run.rng.below(n + 1);
    let mut roles = vec![format!("role{a}")];
    if run.rng.chance(0.2) {
        roles.push(format!("role{}", 1 + run.rng.below(n)));
    }
    let mut chans: Vec<String> = Vec::new();
    for r in &roles {
        let i: usize = r[4..].parse().unwrap_or(0);
        let ch = if (1..=n).contains(&i) {
            channels[i].clone()
        } else {
            channels[0].clone()
        };
        if !chans.contains(&ch) {
            chans.push(ch);
        }
    }
    let plan = match run.rng.below(100) {
        0..=14 => Plan::Leave,
        15..=24 => Plan::Review,
        25..=64 => Plan::Resolve {
            approve: true,
            then_delete: run.rng.chance(0.2),
        },
        65..=84 => Plan::Resolve {
            approve: false,
            then_delete: false,
        },
        _ => Plan::Delete,
    };
    let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
    let n = run.rng.below(1000);
    let user = format!("user{n}");
    // Every requester maps to a Discord user by trait: each resolution
    // owes one DM. Forty Discord users share the thousand requesters, so
    // opening DM channels (5 per 5 s in the emulator, one bucket per bot)
    // does not dominate the run.
    let discord_id = requester_discord_id(n % 40);
    run.sandbox.discord.add_user_with_id(&discord_id, &user);
    run.sandbox
        .teleport
        .put_user(&user, &[], &[("discord_user_id", &[discord_id.as_str()])]);
    let id = run.sandbox.teleport.create_request_with_threshold(
        &user,
        &role_refs,
        "chaos @everyone <@1>",
        2,
        2,
    );
    Tracked {
        id,
        user_id: discord_id,
        channels: chans,
        plan,
        resolved: false,
        done: false,
        done_at: None,
        deleted: false,
        end: Final::Pending,
    }
}

/// Acts on requests whose messages all exist. True when something happened.
fn act_on_posted(run: &mut Run, tracked: &mut [Tracked]) -> bool {
    let index = message_index(&run.sandbox, tracked);
    let mut progress = false;
    for t in tracked.iter_mut().filter(|t| !t.done) {
        let posted = t.channels.iter().all(|c| {
            index
                .get(&(t.id.clone(), c.clone()))
                .is_some_and(|v| !v.is_empty())
        });
        if !posted {
            continue;
        }
        let tp = &run.sandbox.teleport;
        if t.resolved {
            // Approved access expires later: delete once the approval shows
            // (deleting at once, while every replica is cut off, would leave
            // nothing anywhere to say it was ever approved).
            let shown = t.channels.iter().all(|c| {
                index
                    .get(&(t.id.clone(), c.clone()))
                    .is_some_and(|v| v.iter().all(|(s, _)| s == t.end.status()))
            });
            if shown {
                let _ = tp.delete_request(&t.id);
                t.deleted = true;
                t.done = true;
                progress = true;
            }
            continue;
        }
        t.end = match t.plan {
            Plan::Leave => Final::Pending,
            Plan::Review => {
                let _ = tp.add_review(&t.id, "reviewer-a", true, "looks fine");
                Final::Pending
            }
            Plan::Resolve {
                approve,
                then_delete,
            } => {
                let _ = tp.resolve(&t.id, approve, "decided");
                t.resolved = then_delete;
                if approve {
                    Final::Approved
                } else {
                    Final::Denied
                }
            }
            Plan::Delete => {
                let _ = tp.delete_request(&t.id);
                t.deleted = true;
                Final::Expired
            }
        };
        t.done = !t.resolved;
        progress = true;
    }
    progress
}

type Index = BTreeMap<(String, String), Vec<(String, bool)>>;

/// (request, channel) → [(status line, pinged)] from the Discord emulator.
fn message_index(sb: &Sandbox, tracked: &[Tracked]) -> Index {
    let mut channels: Vec<&String> = tracked.iter().flat_map(|t| &t.channels).collect();
    channels.sort();
    channels.dedup();
    let mut index = Index::new();
    for ch in channels {
        for m in sb.discord.messages(ch) {
            let Some(id) = m
                .content
                .lines()
                .find_map(|l| l.strip_prefix("*ID*: "))
                .map(str::to_owned)
            else {
                continue;
            };
            let status = m
                .content
                .lines()
                .find(|l| l.starts_with("*Status*"))
                .unwrap_or_default()
                .to_owned();
            index
                .entry((id, ch.clone()))
                .or_default()
                .push((status, !m.would_mention.is_empty()));
        }
    }
    index
}

/// The Discord user of requester `user<n>`.
fn requester_discord_id(n: usize) -> String {
    format!("{}", 300_000_000_000_000_000u64 + n as u64)
}

/// The DMs (text) each request's requester got about it.
fn dm_index(sb: &Sandbox, tracked: &[Tracked]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut users: Vec<String> = tracked.iter().map(|t| t.user_id.clone()).collect();
    users.sort();
    users.dedup();
    for u in users {
        let Some(ch) = sb.discord.dm_channel(&u) else {
            continue;
        };
        for m in sb.discord.messages(&ch) {
            if let Some(t) = tracked
                .iter()
                .find(|t| m.content.contains(&format!("`{}`", t.id)))
            {
                out.entry(t.id.clone()).or_default().push(m.content);
            }
        }
    }
    out
}

fn judge_dms(run: &Run, tracked: &[Tracked], r: &mut ChaosReport) {
    let dms = dm_index(&run.sandbox, tracked);
    for t in tracked {
        let got = dms.get(&t.id).map(Vec::as_slice).unwrap_or_default();
        let word = match t.end {
            Final::Approved => "was approved",
            Final::Denied => "was denied",
            Final::Expired => "expired",
            Final::Pending => {
                if !got.is_empty() {
                    r.dms_wrong += got.len();
                    if r.examples.len() < 10 {
                        r.examples
                            .push(format!("a DM about pending request {}: {got:?}", t.id));
                    }
                }
                continue;
            }
        };
        r.dms_expected += 1;
        let problem = match got {
            [] => {
                r.dms_missing += 1;
                Some("no DM")
            }
            [one] if one.contains(word) => {
                r.dms_correct += 1;
                None
            }
            [_] => {
                r.dms_wrong += 1;
                Some("wrong DM")
            }
            more => {
                r.dms_duplicated += more.len() - 1;
                Some("duplicated DMs")
            }
        };
        if let Some(p) = problem
            && r.examples.len() < 10
        {
            let data = run.sandbox.teleport.plugin_data(&t.id, "discord");
            r.examples.push(format!(
                "{p}: request {} ({word}): found {got:?}; plugin data {data:?}",
                t.id
            ));
        }
    }
}

fn judge(run: &Run, tracked: &[Tracked]) -> ChaosReport {
    let index = message_index(&run.sandbox, tracked);
    let mut r = ChaosReport {
        requests: tracked.len(),
        ..ChaosReport::default()
    };
    for t in tracked {
        *r.final_states.entry(t.end.name()).or_default() += 1;
        for ch in &t.channels {
            r.expected_messages += 1;
            let found = index
                .get(&(t.id.clone(), ch.clone()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut problem = None;
            match found {
                [] => {
                    r.missing += 1;
                    problem = Some("missing");
                }
                [(status, pinged)] => {
                    if *pinged {
                        r.pinged += 1;
                        problem = Some("pinged someone");
                    } else if status == t.end.status() {
                        r.correct_messages += 1;
                    } else {
                        r.wrong_state += 1;
                        problem = Some("wrong state");
                    }
                }
                _ => {
                    r.duplicated += found.len() - 1;
                    problem = Some("duplicated");
                }
            }
            if let Some(p) = problem
                && r.examples.len() < 10
            {
                let data = run.sandbox.teleport.plugin_data(&t.id, "discord");
                let state = run
                    .sandbox
                    .teleport
                    .request(&t.id)
                    .and_then(|r| r.spec)
                    .map(|s| s.state);
                r.examples.push(format!(
                    "{p}: request {} in channel {ch}: want {:?}, found {found:?}; Teleport state {state:?}, plugin data {data:?}",
                    t.id,
                    t.end.status()
                ));
            }
        }
    }
    judge_dms(run, tracked, &mut r);
    r
}

/// The `chaos` verb: runs in `dir` (a temporary directory, removed
/// afterwards, when `None`) with the options `options(binary, dir)` makes
/// (`binary`: this executable), prints the report, writes it as JSON to
/// `json`; returns whether the run was clean.
pub fn run_cli(
    dir: Option<PathBuf>,
    json: Option<PathBuf>,
    options: impl FnOnce(PathBuf, PathBuf) -> ChaosOptions,
) -> Result<bool, ChaosError> {
    let binary = std::env::current_exe()?;
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = crate::util::TempDir::create_for("chaos")?;
            tmp.path().to_owned()
        }
    };
    let opts = options(binary, dir.clone());
    println!(
        "chaos: {} requests at {}/s, {} replicas, {} channels, a fault every ~{} ms, seed {}; files in {}",
        opts.requests,
        opts.rate,
        opts.replicas,
        opts.channels,
        opts.fault_every.as_millis(),
        opts.seed,
        dir.display()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(run(opts))?;
    println!("{}", report.summary());
    if let Some(path) = &json {
        let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        std::fs::write(path, json)?;
    }
    Ok(report.ok())
}

/// Reads a chaos run's replica logs (for tests that scan them).
pub fn replica_logs(dir: &Path) -> std::io::Result<String> {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("replica-") && n.ends_with(".log"))
        {
            all.push_str(&std::fs::read_to_string(&path)?);
        }
    }
    Ok(all)
}
