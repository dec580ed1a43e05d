//! Configuration: the TOML file (drop-in compatible with upstream's
//! `teleport-discord.toml`), environment overrides, validation into typed
//! values, and the diff used by reloads.
//!
//! Flow: [`load`] reads the file, [`load::parse`] walks the TOML document key
//! by key (so every problem names its key and line), applies the environment
//! overrides from an [`Env`], reads token files, validates, and returns a
//! [`Loaded`] (the [`Config`] plus warnings to log once logging is up). The
//! running service holds the config in an `ArcSwap` ([`SharedConfig`]) and a
//! reload swaps it only when the new file is valid.
//!
//! This module owns no I/O beyond reading the config and token files.

mod duration;
mod example;
pub mod load;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use duration::{ConfigDuration, DurationError, parse_duration};
pub use example::EXAMPLE_CONFIG;
pub use load::{Env, ProcessEnv, load, parse};

use crate::secret::Secret;

/// The config file `start` and `check` read when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/teleport-discord.toml";
/// Teleport address used when neither `addr` nor `auth_server` is set.
pub const DEFAULT_TELEPORT_ADDR: &str = "localhost:3025";
/// Discord REST base URL (API version 10).
pub const DEFAULT_DISCORD_API_URL: &str = "https://discord.com/api/v10";
/// Default HTTP listener: loopback only. Upstream opened no socket at all, so a
/// drop-in upgrade must not start listening on every interface; containers set
/// `TELEPORT_DISCORD_LISTEN_ADDR=0.0.0.0:8080` (our Dockerfile does).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
/// Default interval for re-reading the identity file (upstream's value).
pub const DEFAULT_REFRESH_IDENTITY_INTERVAL: std::time::Duration =
    std::time::Duration::from_secs(60);
/// Discord's documented global limit for a bot, requests per second.
pub const DEFAULT_GLOBAL_RATE_LIMIT: u32 = 50;
/// Default interval between full re-listings of access requests.
pub const DEFAULT_RESYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);
/// Default number of reconcile workers.
pub const DEFAULT_RECONCILE_WORKERS: u32 = 8;
/// Default time to live of the leader lease.
pub const DEFAULT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
/// Shortest and longest leader lease TTL accepted.
pub const LEASE_TTL_RANGE: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(3),
    std::time::Duration::from_secs(300),
);
/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Environment variables that override the file (for container platforms).
pub mod env_vars {
    /// Path of the config file (instead of `-c`).
    pub const CONFIG: &str = "TELEPORT_DISCORD_CONFIG";
    /// Discord bot token (`[discord] token`); a value starting with `/` names a file.
    pub const DISCORD_TOKEN: &str = "TELEPORT_DISCORD_TOKEN";
    /// Admin bearer token (`[http] admin_token`); a value starting with `/` names a file.
    pub const ADMIN_TOKEN: &str = "TELEPORT_DISCORD_ADMIN_TOKEN";
    /// HTTP listen address (`[http] listen_addr`).
    pub const LISTEN_ADDR: &str = "TELEPORT_DISCORD_LISTEN_ADDR";
    /// Teleport address (`[teleport] addr`).
    pub const TELEPORT_ADDR: &str = "TELEPORT_DISCORD_TELEPORT_ADDR";
    /// Identity file path (`[teleport] identity`).
    pub const IDENTITY: &str = "TELEPORT_DISCORD_IDENTITY";
    /// Log severity (`[log] severity`).
    pub const LOG_SEVERITY: &str = "TELEPORT_DISCORD_LOG_SEVERITY";
    /// Log format (`[log] format`).
    pub const LOG_FORMAT: &str = "TELEPORT_DISCORD_LOG_FORMAT";
    /// Upstream's: exit when the Teleport watch is lost (Go `ParseBool` spelling).
    pub const FAIL_FAST: &str = "TELEPORT_PLUGIN_FAIL_FAST";
    /// Every override, for documentation and tests.
    pub const ALL: [&str; 9] = [
        CONFIG,
        DISCORD_TOKEN,
        ADMIN_TOKEN,
        LISTEN_ADDR,
        TELEPORT_ADDR,
        IDENTITY,
        LOG_SEVERITY,
        LOG_FORMAT,
        FAIL_FAST,
    ];
}

/// A validated configuration. Built only by [`load::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[teleport]`
    pub teleport: TeleportConfig,
    /// `[discord]`
    pub discord: DiscordConfig,
    /// `[role_to_recipients]`
    pub role_to_recipients: RoleToRecipients,
    /// `[log]`
    pub log: LogConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[reconcile]`
    pub reconcile: ReconcileConfig,
    /// `[lease]`
    pub lease: LeaseConfig,
    /// `[review]`
    pub review: ReviewConfig,
    /// `[notify]`
    pub notify: NotifyConfig,
    /// `[access_list]`
    pub access_list: AccessListConfig,
}

/// `[notify]`: direct messages about requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyConfig {
    /// DM the requester when a request is approved, denied or expires.
    pub requester: bool,
}

/// Default time between two access list reminder passes (upstream's).
pub const DEFAULT_REMINDER_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3 * 3600);

/// `[access_list]`: review reminders to access list owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessListConfig {
    /// Whether owners are reminded of due reviews.
    pub reminders: bool,
    /// Where reminders go for owners without a Discord user (or whose DMs
    /// Discord refuses): a channel ID; `None`: nowhere.
    pub channel: Option<Recipient>,
    /// Time between two passes over the lists (the first within 30 s of
    /// start, or of `interval` when shorter).
    pub interval: ConfigDuration,
}

impl Default for AccessListConfig {
    fn default() -> Self {
        Self {
            reminders: true,
            channel: None,
            interval: ConfigDuration::new(DEFAULT_REMINDER_INTERVAL),
        }
    }
}

/// Default trait holding a Teleport user's Discord user ID.
pub const DEFAULT_DISCORD_USER_ID_TRAIT: &str = "discord_user_id";

/// `[review]`: reviews from Discord (Approve / Deny buttons).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReviewConfig {
    /// Whether messages carry Approve / Deny buttons and clicks submit reviews.
    pub enabled: bool,
    /// A second listener serving only `POST /discord/interactions` (and
    /// `/healthz`), for a load balancer that exposes this route alone.
    pub listen_addr: Option<SocketAddr>,
    /// The Teleport user trait holding a user's Discord user ID; empty: the
    /// trait is not used.
    pub discord_user_id_trait: String,
    /// Static mapping, Discord user ID → Teleport user name (`[review.users]`),
    /// consulted before the trait.
    pub users: BTreeMap<String, String>,
}

/// `[lease]`: the leader lease that keeps replicas from sharing the bot's
/// rate limits (see the lease module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Whether replicas elect one sender.
    pub mode: LeaseMode,
    /// How long each acquire or renewal holds the lease.
    pub ttl: ConfigDuration,
}

/// `[lease] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseMode {
    /// Use the lease when the role may (`semaphore: create, update, read,
    /// list`); otherwise warn once and let every replica send.
    Auto,
    /// Never send without the lease.
    Lease,
    /// No lease: every replica sends (the owner hand-off spreads the work).
    Off,
}

impl LeaseMode {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Lease => "lease",
            Self::Off => "off",
        }
    }
}

/// `[reconcile]`: the controller that keeps Discord in step with Teleport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// How often every access request is listed and checked again, besides
    /// after every (re)connect.
    pub resync_interval: ConfigDuration,
    /// Reconciles run at once (none waits for Discord).
    pub workers: u32,
}

/// `[teleport]`: where Teleport is and how we prove who we are.
#[derive(Debug, Clone, PartialEq)]
pub struct TeleportConfig {
    /// Auth or Proxy address, `host:port`.
    pub addr: TeleportAddr,
    /// Identity file or key/cert/CA triple.
    pub credentials: Credentials,
    /// How to reach Auth: directly, through a TLS-routing Proxy, or decide by port.
    pub connect_via: ConnectVia,
    /// `TELEPORT_PLUGIN_FAIL_FAST` (environment only, as upstream): end the
    /// process when the watch is lost instead of reconnecting.
    pub fail_fast: bool,
}

/// A Teleport address, `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeleportAddr {
    host: String,
    port: u16,
}

impl TeleportAddr {
    /// Parses `host:port` (IPv6 hosts in brackets).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.contains("://") {
            return Err(format!(
                "\"{s}\" looks like a URL; write host:port without a scheme (e.g. \"teleport.example.com:443\")"
            ));
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (h, p),
            _ => {
                return Err(format!(
                    "\"{s}\" has no port; use :3025 for the Auth Service or :443 for a Proxy (e.g. \"{s}:3025\")"
                ));
            }
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("\"{s}\" has an invalid port \"{port}\""))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
            return Err(format!("\"{s}\" has an invalid host"));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
    /// Host name or IP.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for TeleportAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How the plugin authenticates to Teleport.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// `identity = "/path"` (from `tctl auth sign --format=file` or tbot).
    IdentityFile {
        /// The file.
        path: PathBuf,
        /// `refresh_identity`: re-read the file periodically.
        refresh: bool,
        /// `refresh_identity_interval`.
        refresh_interval: ConfigDuration,
    },
    /// `client_key` + `client_crt` + `root_cas` (from `--format=tls`).
    KeyPair {
        /// Private key PEM.
        key: PathBuf,
        /// Certificate PEM.
        cert: PathBuf,
        /// Cluster CA certificates PEM.
        root_cas: PathBuf,
    },
}

/// `[teleport] connect_via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectVia {
    /// Port 3025 means Auth; anything else means a Proxy with TLS routing.
    Auto,
    /// Always connect straight to the Auth Service.
    Auth,
    /// Always go through a Proxy with TLS routing.
    Proxy,
}

impl ConnectVia {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Auth => "auth",
            Self::Proxy => "proxy",
        }
    }
}

/// `[discord]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscordConfig {
    /// Bot token (never logged).
    pub token: Secret,
    /// REST base URL, without a trailing slash.
    pub api_url: ApiUrl,
    /// Requests per second across all routes.
    pub global_rate_limit: u32,
    /// The application's public key (Developer Portal): turns on
    /// `POST /discord/interactions`, whose deliveries it verifies.
    pub public_key: Option<crate::interactions::PublicKey>,
}

/// Discord REST base URL, validated, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl(String);

impl ApiUrl {
    /// The URL as text, no trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn new_unchecked(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A recipient as configured: for Discord, a channel ID (a snowflake). Values
/// that are not numbers are kept (upstream accepted any string) and skipped
/// with a warning when a message would be posted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Recipient(String);

impl Recipient {
    /// Wraps a configured recipient.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The text as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The channel ID, when the recipient looks like a Discord snowflake.
    pub fn channel_id(&self) -> Option<u64> {
        if self.0.is_empty() || !self.0.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.0.parse().ok().filter(|v| *v > 0)
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[role_to_recipients]`: role name → recipients; `"*"` is the fallback and is
/// always present and non-empty after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleToRecipients(BTreeMap<String, Vec<Recipient>>);

impl RoleToRecipients {
    /// The wildcard key.
    pub const WILDCARD: &'static str = "*";

    pub(crate) fn new_unchecked(map: BTreeMap<String, Vec<Recipient>>) -> Self {
        Self(map)
    }

    /// The configured entries.
    pub fn entries(&self) -> &BTreeMap<String, Vec<Recipient>> {
        &self.0
    }

    /// Upstream's rule: for each requested role, that role's recipients if it
    /// has any, else the `"*"` recipients; the union, without duplicates, in a
    /// stable order (first appearance, roles taken in the order given).
    pub fn recipients_for<'a>(&self, roles: impl IntoIterator<Item = &'a str>) -> Vec<Recipient> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let wildcard = self.0.get(Self::WILDCARD).map(Vec::as_slice).unwrap_or(&[]);
        let mut any = false;
        for role in roles {
            any = true;
            let list = match self.0.get(role) {
                Some(list) if !list.is_empty() => list.as_slice(),
                _ => wildcard,
            };
            for r in list {
                if seen.insert(r.clone()) {
                    out.push(r.clone());
                }
            }
        }
        if !any {
            for r in wildcard {
                if seen.insert(r.clone()) {
                    out.push(r.clone());
                }
            }
        }
        out
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Where log lines go.
    pub output: LogOutput,
    /// Lowest level written.
    pub severity: Severity,
    /// Text or JSON lines.
    pub format: LogFormat,
}

/// `[log] output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    /// Standard error (default).
    Stderr,
    /// Standard output.
    Stdout,
    /// A file, created or appended to.
    File(PathBuf),
}

/// `[log] severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    Info,
    /// Something is wrong but we go on.
    Warn,
    /// Failures.
    Error,
}

impl Severity {
    /// Parses upstream's spellings, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "err" | "error" => Self::Error,
            _ => return None,
        })
    }
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (default).
    Text,
    /// One JSON object per line.
    Json,
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Address of the one listener (health, readiness, metrics, admin).
    pub listen_addr: SocketAddr,
    /// Bearer token for `/admin/*`; admin endpoints are off without it.
    pub admin_token: Option<Secret>,
}

/// A problem or warning tied to a config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `teleport.addr` or `role_to_recipients."*"`.
    pub key: String,
    /// 1-based line in the file, when the key is in the file.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but some values are wrong. Lists every problem.
    #[error("config file {} is invalid ({} problem{}):\n{}", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The file is valid, but a changed setting could not be put into effect
    /// (Discord rejected the new token, the new Teleport address does not
    /// answer). Only on reload: the running config stays.
    #[error("config file {}: `{key}` was not applied: {reason}", path.display())]
    NotApplied {
        /// The file.
        path: PathBuf,
        /// The setting that could not be applied.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl ConfigError {
    /// Every problem as one line each (for JSON error bodies).
    pub fn problems(&self) -> Vec<String> {
        match self {
            Self::Invalid { problems, .. } => problems.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// A loaded config and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated config.
    pub config: Config,
    /// Non-fatal findings (unknown keys, deprecated keys, ...), to be logged.
    pub warnings: Vec<Problem>,
    /// The file it came from.
    pub path: PathBuf,
}

/// The running config, swapped atomically on reload.
pub type SharedConfig = Arc<arc_swap::ArcSwap<Config>>;

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConfigDiff {
    /// Keys whose value changed (secrets by name only).
    pub changed: Vec<&'static str>,
    /// Changed keys that only take effect after a restart.
    pub restart_required: Vec<&'static str>,
}

impl ConfigDiff {
    /// Compares two configs key by key.
    pub fn between(old: &Config, new: &Config) -> Self {
        let mut d = Self::default();
        let mut check = |key: &'static str, changed: bool, restart: bool| {
            if changed {
                d.changed.push(key);
                if restart {
                    d.restart_required.push(key);
                }
            }
        };
        let (ot, nt) = (&old.teleport, &new.teleport);
        // Teleport settings reconnect the watch, Discord's swap the client's
        // credentials: both take effect on reload (see `service::LiveSettings`).
        check("teleport.addr", ot.addr != nt.addr, false);
        check(
            "teleport.credentials",
            ot.credentials != nt.credentials,
            false,
        );
        check(
            "teleport.connect_via",
            ot.connect_via != nt.connect_via,
            false,
        );
        check(
            "discord.token",
            old.discord.token != new.discord.token,
            false,
        );
        check(
            "discord.api_url",
            old.discord.api_url != new.discord.api_url,
            false,
        );
        check(
            "discord.global_rate_limit",
            old.discord.global_rate_limit != new.discord.global_rate_limit,
            true,
        );
        check(
            "discord.public_key",
            old.discord.public_key != new.discord.public_key,
            false,
        );
        check(
            "role_to_recipients",
            old.role_to_recipients != new.role_to_recipients,
            false,
        );
        check("log.severity", old.log.severity != new.log.severity, false);
        check("log.output", old.log.output != new.log.output, true);
        check("log.format", old.log.format != new.log.format, true);
        check(
            "http.listen_addr",
            old.http.listen_addr != new.http.listen_addr,
            true,
        );
        check(
            "http.admin_token",
            old.http.admin_token != new.http.admin_token,
            false,
        );
        // The elector runs with the settings it started with.
        check("lease.mode", old.lease.mode != new.lease.mode, true);
        check("lease.ttl", old.lease.ttl != new.lease.ttl, true);
        // Buttons are rendered, and the listener bound, at start.
        check(
            "review.enabled",
            old.review.enabled != new.review.enabled,
            true,
        );
        check(
            "review.listen_addr",
            old.review.listen_addr != new.review.listen_addr,
            true,
        );
        check(
            "review.discord_user_id_trait",
            old.review.discord_user_id_trait != new.review.discord_user_id_trait,
            false,
        );
        check("review.users", old.review.users != new.review.users, false);
        check(
            "notify.requester",
            old.notify.requester != new.notify.requester,
            false,
        );
        check(
            "access_list.reminders",
            old.access_list.reminders != new.access_list.reminders,
            false,
        );
        check(
            "access_list.channel",
            old.access_list.channel != new.access_list.channel,
            false,
        );
        check(
            "access_list.interval",
            old.access_list.interval != new.access_list.interval,
            true,
        );
        d
    }
}

/// Reads `path` for a secret value: trimmed, non-empty, at most 4 KiB.
pub(crate) fn read_secret_file(path: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read file {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    file.take(4097)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read file {}: {e}", path.display()))?;
    if buf.len() > 4096 {
        return Err(format!(
            "file {} is larger than 4 KiB; is it really a token?",
            path.display()
        ));
    }
    let text =
        String::from_utf8(buf).map_err(|_| format!("file {} is not UTF-8 text", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("file {} is empty", path.display()));
    }
    Ok(Secret::new(trimmed))
}

#[cfg(test)]
mod tests;
