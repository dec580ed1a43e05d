//! Reading the TOML file into a [`Config`]: a walk over the parsed document
//! that knows every key, so each problem names its key and line, unknown keys
//! are reported (with a "did you mean"), and upstream's spellings are accepted.
//!
//! Key matching follows upstream's decoder (go-toml v1): tagged keys
//! (`[teleport]`, `[log]`) are matched exactly; the untagged `[discord]` fields
//! also match their Go names in upper case and with the first letter lowered
//! (`Token`, `TOKEN`, `APIURL`, `aPIURL`, ...).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{
    AccessListConfig, ApiUrl, Config, ConfigDuration, ConfigError, ConnectVia, Credentials,
    DEFAULT_DISCORD_API_URL, DEFAULT_DISCORD_USER_ID_TRAIT, DEFAULT_GLOBAL_RATE_LIMIT,
    DEFAULT_LEASE_TTL, DEFAULT_LISTEN_ADDR, DEFAULT_RECONCILE_WORKERS,
    DEFAULT_REFRESH_IDENTITY_INTERVAL, DEFAULT_RESYNC_INTERVAL, DEFAULT_TELEPORT_ADDR,
    DiscordConfig, HttpConfig, LEASE_TTL_RANGE, LeaseConfig, LeaseMode, Loaded, LogConfig,
    LogFormat, LogOutput, MIN_ADMIN_TOKEN_LEN, NotifyConfig, Problem, Recipient, ReconcileConfig,
    ReviewConfig, RoleToRecipients, Severity, TeleportAddr, TeleportConfig, env_vars,
    parse_duration, read_secret_file,
};
use crate::secret::Secret;

/// Where environment overrides come from. Tests pass a map instead of
/// changing the process environment.
pub trait Env: Send + Sync {
    /// The variable's value; `None` when unset or blank.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path, env: &dyn Env) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, env)
}

/// Validates config `text`; `path` is used in messages and as the origin.
pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Loaded, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim().to_owned(),
    })?;
    let mut cx = Cx {
        text,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let config = build(&mut cx, doc.get_ref(), env);
    match config {
        Some(config) if cx.problems.is_empty() => Ok(Loaded {
            config,
            warnings: cx.warnings,
            path: path.to_owned(),
        }),
        _ => Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems: cx.problems,
        }),
    }
}

struct Cx<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Cx<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
    fn problem(
        &mut self,
        key: impl Into<String>,
        span: Option<&Range<usize>>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line(s));
        self.problems.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }
    fn warn(
        &mut self,
        key: impl Into<String>,
        span: Option<&Range<usize>>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line(s));
        self.warnings.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }
}

type Val<'i> = Spanned<DeValue<'i>>;

/// A value found in the file, with its dotted key and the span of the key.
struct Found<'a, 'i> {
    key: String,
    span: Range<usize>,
    value: &'a Val<'i>,
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Quotes a TOML key when it is not a bare key.
fn key_part(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

fn join(section: &str, key: &str) -> String {
    if section.is_empty() {
        key_part(key)
    } else {
        format!("{section}.{}", key_part(key))
    }
}

/// One known key of a section: its canonical name and every accepted spelling.
struct KnownKey {
    canonical: &'static str,
    spellings: &'static [&'static str],
}

const fn k(canonical: &'static str, spellings: &'static [&'static str]) -> KnownKey {
    KnownKey {
        canonical,
        spellings,
    }
}

/// Splits a table into known keys (by canonical name) and reports the others.
fn fields<'a, 'i>(
    cx: &mut Cx<'_>,
    section: &str,
    table: &'a DeTable<'i>,
    known: &[KnownKey],
) -> BTreeMap<&'static str, Found<'a, 'i>> {
    let mut out: BTreeMap<&'static str, Found<'a, 'i>> = BTreeMap::new();
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let full = join(section, name);
        match known.iter().find(|kk| kk.spellings.contains(&name)) {
            Some(kk) => {
                if let Some(prev) = out.get(kk.canonical) {
                    let msg = format!("set twice (also as `{}`); keep one", prev.key);
                    cx.problem(full, Some(&key.span()), msg);
                    continue;
                }
                out.insert(
                    kk.canonical,
                    Found {
                        key: full,
                        span: key.span(),
                        value,
                    },
                );
            }
            None => {
                let hint = suggest(name, known)
                    .map(|s| format!("; did you mean `{}`?", join(section, s)))
                    .unwrap_or_default();
                cx.warn(
                    full,
                    Some(&key.span()),
                    format!("unknown key, ignored{hint}"),
                );
            }
        }
    }
    out
}

fn suggest(name: &str, known: &[KnownKey]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|kk| (levenshtein(&lower, kk.canonical), kk.canonical))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn string(cx: &mut Cx<'_>, f: &Found<'_, '_>) -> Option<String> {
    match f.value.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        other => {
            cx.problem(
                &f.key,
                Some(&f.span),
                format!("expected a string, found {}", kind(other)),
            );
            None
        }
    }
}

fn boolean(cx: &mut Cx<'_>, f: &Found<'_, '_>) -> Option<bool> {
    match f.value.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        DeValue::String(s) if matches!(s.trim(), "true" | "false") => {
            cx.problem(
                &f.key,
                Some(&f.span),
                format!(
                    "expected a boolean, found the string \"{s}\"; write it without quotes: {s}"
                ),
            );
            None
        }
        other => {
            cx.problem(
                &f.key,
                Some(&f.span),
                format!("expected a boolean (true or false), found {}", kind(other)),
            );
            None
        }
    }
}

fn integer(cx: &mut Cx<'_>, f: &Found<'_, '_>) -> Option<i64> {
    match f.value.get_ref() {
        DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(v) => Some(v),
            Err(_) => {
                cx.problem(&f.key, Some(&f.span), "integer out of range");
                None
            }
        },
        other => {
            cx.problem(
                &f.key,
                Some(&f.span),
                format!("expected an integer, found {}", kind(other)),
            );
            None
        }
    }
}

fn table<'a, 'i>(cx: &mut Cx<'_>, f: &Found<'a, 'i>) -> Option<&'a DeTable<'i>> {
    match f.value.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            cx.problem(
                &f.key,
                Some(&f.span),
                format!("expected a table ([{}]), found {}", f.key, kind(other)),
            );
            None
        }
    }
}

/// A value from the file, possibly replaced by an environment variable.
struct Setting {
    key: String,
    span: Option<Range<usize>>,
    value: String,
}

fn from_env(env: &dyn Env, var: &str, key: &str) -> Option<Setting> {
    env.var(var).map(|value| Setting {
        key: format!("{key} (from {var})"),
        span: None,
        value: value.trim().to_owned(),
    })
}

fn from_file(cx: &mut Cx<'_>, f: Option<&Found<'_, '_>>) -> Option<Setting> {
    let f = f?;
    string(cx, f).map(|value| Setting {
        key: f.key.clone(),
        span: Some(f.span.clone()),
        value,
    })
}

const TOP: &[KnownKey] = &[
    k("teleport", &["teleport"]),
    k("discord", &["discord"]),
    k("role_to_recipients", &["role_to_recipients"]),
    k("log", &["log"]),
    k("http", &["http"]),
    k("reconcile", &["reconcile"]),
    k("lease", &["lease"]),
    k("review", &["review"]),
    k("notify", &["notify"]),
    k("access_list", &["access_list"]),
    // Upstream's embedded `common.BaseConfig` fields: decoded but unused by the
    // self-hosted Discord plugin. Accepted so old files keep loading.
    k(
        "plugintype",
        &["PluginType", "plugintype", "PLUGINTYPE", "pluginType"],
    ),
    k(
        "teleportuser",
        &[
            "TeleportUser",
            "teleportuser",
            "TELEPORTUSER",
            "teleportUser",
        ],
    ),
];

const TELEPORT: &[KnownKey] = &[
    k("addr", &["addr"]),
    k("auth_server", &["auth_server"]),
    k("identity", &["identity"]),
    k("refresh_identity", &["refresh_identity"]),
    k("refresh_identity_interval", &["refresh_identity_interval"]),
    k("client_key", &["client_key"]),
    k("client_crt", &["client_crt"]),
    k("root_cas", &["root_cas"]),
    k("connect_via", &["connect_via"]),
];

const DISCORD: &[KnownKey] = &[
    k("token", &["token", "Token", "TOKEN"]),
    k("api_url", &["api_url"]),
    k("apiurl", &["apiurl", "APIURL", "aPIURL"]),
    k("recipients", &["recipients", "Recipients", "RECIPIENTS"]),
    k("global_rate_limit", &["global_rate_limit"]),
    k("public_key", &["public_key"]),
];

const LOG: &[KnownKey] = &[
    k("output", &["output"]),
    k("severity", &["severity"]),
    k("format", &["format"]),
];

const RECONCILE: &[KnownKey] = &[
    k("resync_interval", &["resync_interval"]),
    k("workers", &["workers"]),
];

const LEASE: &[KnownKey] = &[k("mode", &["mode"]), k("ttl", &["ttl"])];

const NOTIFY: &[KnownKey] = &[k("requester", &["requester"])];

const ACCESS_LIST: &[KnownKey] = &[
    k("reminders", &["reminders"]),
    k("channel", &["channel"]),
    k("interval", &["interval"]),
];

const REVIEW: &[KnownKey] = &[
    k("enabled", &["enabled"]),
    k("listen_addr", &["listen_addr"]),
    k("discord_user_id_trait", &["discord_user_id_trait"]),
    k("users", &["users"]),
];

const HTTP: &[KnownKey] = &[
    k("listen_addr", &["listen_addr"]),
    k("admin_token", &["admin_token"]),
];

fn section<'a, 'i>(
    cx: &mut Cx<'_>,
    top: &BTreeMap<&'static str, Found<'a, 'i>>,
    name: &'static str,
    known: &[KnownKey],
) -> BTreeMap<&'static str, Found<'a, 'i>> {
    match top.get(name).and_then(|f| table(cx, f)) {
        Some(t) => fields(cx, name, t, known),
        None => BTreeMap::new(),
    }
}

fn build(cx: &mut Cx<'_>, root: &DeTable<'_>, env: &dyn Env) -> Option<Config> {
    let top = fields(cx, "", root, TOP);
    for compat in ["plugintype", "teleportuser"] {
        if let Some(f) = top.get(compat) {
            let (key, span) = (f.key.clone(), f.span.clone());
            cx.warn(
                key,
                Some(&span),
                "accepted for compatibility with the Go plugin and ignored",
            );
        }
    }
    let fields_teleport = section(cx, &top, "teleport", TELEPORT);
    let teleport = teleport(cx, &fields_teleport, env);
    let fields_discord = section(cx, &top, "discord", DISCORD);
    let discord = discord(cx, &fields_discord, env);
    let role_to_recipients = recipients(cx, top.get("role_to_recipients"));
    let fields_log = section(cx, &top, "log", LOG);
    let log = log(cx, &fields_log, env);
    let fields_http = section(cx, &top, "http", HTTP);
    let http = http(cx, &fields_http, env);
    let fields_reconcile = section(cx, &top, "reconcile", RECONCILE);
    let reconcile = reconcile(cx, &fields_reconcile);
    let fields_lease = section(cx, &top, "lease", LEASE);
    let lease = lease(cx, &fields_lease);
    let fields_review = section(cx, &top, "review", REVIEW);
    let review = review(cx, &fields_review);
    if let (Some(r), Some(d), Some(h)) = (&review, &discord, &http) {
        review_needs(cx, &fields_review, r, d, h);
    }
    let fields_notify = section(cx, &top, "notify", NOTIFY);
    let notify = match fields_notify.get("requester") {
        Some(x) => boolean(cx, x).map(|requester| NotifyConfig { requester }),
        None => Some(NotifyConfig::default()),
    };
    let fields_access_list = section(cx, &top, "access_list", ACCESS_LIST);
    let access_list = access_list(cx, &fields_access_list);
    Some(Config {
        teleport: teleport?,
        discord: discord?,
        role_to_recipients: role_to_recipients?,
        log: log?,
        http: http?,
        reconcile: reconcile?,
        lease: lease?,
        review: review?,
        notify: notify?,
        access_list: access_list?,
    })
}

fn access_list(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Found<'_, '_>>,
) -> Option<AccessListConfig> {
    let d = AccessListConfig::default();
    let reminders = match f.get("reminders") {
        Some(x) => boolean(cx, x),
        None => Some(d.reminders),
    };
    let channel = match f.get("channel") {
        Some(x) => match string(cx, x) {
            Some(v) if v.trim().is_empty() => Some(None),
            Some(v) => {
                let r = Recipient::new(v.trim().to_owned());
                if r.channel_id().is_some() {
                    Some(Some(r))
                } else {
                    cx.problem(
                        x.key.clone(),
                        Some(&x.span),
                        format!("\"{}\" is not a Discord channel ID (a number such as 1234567890123456789: right-click the channel, \"Copy Channel ID\")", v.trim()),
                    );
                    None
                }
            }
            None => None,
        },
        None => Some(None),
    };
    let interval = match f.get("interval") {
        Some(x) => duration(cx, x, std::time::Duration::from_secs(1)),
        None => Some(d.interval),
    };
    Some(AccessListConfig {
        reminders: reminders?,
        channel: channel?,
        interval: interval?,
    })
}

fn review(cx: &mut Cx<'_>, f: &BTreeMap<&'static str, Found<'_, '_>>) -> Option<ReviewConfig> {
    let enabled = match f.get("enabled") {
        Some(x) => boolean(cx, x),
        None => Some(false),
    };
    let listen_addr = match f.get("listen_addr") {
        Some(x) => match string(cx, x) {
            Some(v) if v.trim().is_empty() => Some(None),
            Some(v) => match v.trim().parse::<SocketAddr>() {
                Ok(a) => Some(Some(a)),
                Err(_) => {
                    let msg = format!(
                        "\"{}\" is not an IP:port address (e.g. \"0.0.0.0:8443\")",
                        v.trim()
                    );
                    cx.problem(x.key.clone(), Some(&x.span), msg);
                    None
                }
            },
            None => None,
        },
        None => Some(None),
    };
    let discord_user_id_trait = match f.get("discord_user_id_trait") {
        Some(x) => string(cx, x).map(|v| v.trim().to_owned()),
        None => Some(DEFAULT_DISCORD_USER_ID_TRAIT.to_owned()),
    };
    let users = match f.get("users") {
        Some(x) => review_users(cx, x),
        None => Some(BTreeMap::new()),
    };
    Some(ReviewConfig {
        enabled: enabled?,
        listen_addr: listen_addr?,
        discord_user_id_trait: discord_user_id_trait?,
        users: users?,
    })
}

/// `[review.users]`: Discord user ID (a snowflake) → Teleport user name.
fn review_users(cx: &mut Cx<'_>, f: &Found<'_, '_>) -> Option<BTreeMap<String, String>> {
    let t = table(cx, f)?;
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (id, value) in t.iter() {
        let id_text: &str = id.get_ref();
        let key = join("review.users", id_text);
        let digits = id_text.trim();
        if digits.is_empty()
            || digits.len() > 20
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.parse::<u64>().is_err()
        {
            cx.problem(
                key,
                Some(&id.span()),
                format!("\"{id_text}\" is not a Discord user ID (a number such as 123456789012345678: Discord's Developer Mode, \"Copy User ID\")"),
            );
            ok = false;
            continue;
        }
        match value.get_ref() {
            DeValue::String(user) if !user.trim().is_empty() => {
                out.insert(digits.to_owned(), user.trim().to_owned());
            }
            DeValue::String(_) => {
                cx.problem(key, Some(&value.span()), "empty Teleport user name");
                ok = false;
            }
            other => {
                cx.problem(
                    key,
                    Some(&value.span()),
                    format!(
                        "expected a string (a Teleport user name), found {}",
                        kind(other)
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// What `[review] enabled = true` needs from the other sections.
fn review_needs(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Found<'_, '_>>,
    r: &ReviewConfig,
    d: &DiscordConfig,
    h: &HttpConfig,
) {
    let span = f.get("enabled").map(|x| x.span.clone());
    if r.enabled && d.public_key.is_none() {
        cx.problem(
            "review.enabled",
            span.as_ref(),
            "reviews from Discord need discord.public_key (the application's \"Public Key\" in the Developer Portal), to verify Discord's signatures",
        );
    }
    if r.enabled && r.discord_user_id_trait.is_empty() && r.users.is_empty() {
        cx.problem(
            "review.enabled",
            span.as_ref(),
            "reviews from Discord need a way to find the clicker's Teleport user: set review.discord_user_id_trait (default \"discord_user_id\") or list users in [review.users]",
        );
    }
    if let Some(a) = r.listen_addr
        && a == h.listen_addr
    {
        let span = f.get("listen_addr").map(|x| x.span.clone());
        cx.problem(
            "review.listen_addr",
            span.as_ref(),
            format!("{a} is already http.listen_addr; leave review.listen_addr unset to serve interactions there, or pick another port"),
        );
    }
}

fn lease(cx: &mut Cx<'_>, f: &BTreeMap<&'static str, Found<'_, '_>>) -> Option<LeaseConfig> {
    let mode = match f.get("mode") {
        Some(x) => match string(cx, x)?.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(LeaseMode::Auto),
            "lease" => Some(LeaseMode::Lease),
            "off" => Some(LeaseMode::Off),
            other => {
                let msg = format!("unknown lease mode '{other}'; use auto, lease or off");
                cx.problem(x.key.clone(), Some(&x.span), msg);
                None
            }
        },
        None => Some(LeaseMode::Auto),
    };
    let (min, max) = LEASE_TTL_RANGE;
    let ttl = match f.get("ttl") {
        Some(x) => match duration(cx, x, min) {
            Some(d) if d.get() > max => {
                let msg = format!(
                    "\"{d}\" is too long; the maximum is {} (a dead leader holds the lease this long)",
                    ConfigDuration::new(max)
                );
                cx.problem(x.key.clone(), Some(&x.span), msg);
                None
            }
            d => d,
        },
        None => Some(ConfigDuration::new(DEFAULT_LEASE_TTL)),
    };
    Some(LeaseConfig {
        mode: mode?,
        ttl: ttl?,
    })
}

fn reconcile(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Found<'_, '_>>,
) -> Option<ReconcileConfig> {
    let resync_interval = match f.get("resync_interval") {
        Some(x) => duration(cx, x, std::time::Duration::from_secs(10)),
        None => Some(ConfigDuration::new(DEFAULT_RESYNC_INTERVAL)),
    };
    let workers = match f.get("workers") {
        Some(x) => match integer(cx, x) {
            Some(v) if (1..=256).contains(&v) => Some(v as u32),
            Some(v) => {
                cx.problem(
                    x.key.clone(),
                    Some(&x.span),
                    format!("{v} is out of range; use 1 to 256"),
                );
                None
            }
            None => None,
        },
        None => Some(DEFAULT_RECONCILE_WORKERS),
    };
    Some(ReconcileConfig {
        resync_interval: resync_interval?,
        workers: workers?,
    })
}

fn path_setting(cx: &mut Cx<'_>, s: Setting) -> Option<PathBuf> {
    if s.value.is_empty() {
        cx.problem(s.key, s.span.as_ref(), "must not be empty");
        return None;
    }
    Some(PathBuf::from(s.value))
}

fn teleport(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Found<'_, '_>>,
    env: &dyn Env,
) -> Option<TeleportConfig> {
    // Address: env > addr > auth_server (deprecated) > default.
    let addr_file = from_file(cx, f.get("addr")).filter(|s| !s.value.is_empty());
    let auth_server = from_file(cx, f.get("auth_server")).filter(|s| !s.value.is_empty());
    if let Some(a) = &auth_server {
        let msg = if addr_file.is_some() {
            "deprecated and ignored because `teleport.addr` is also set; remove it"
        } else {
            "deprecated; rename it to `teleport.addr`"
        };
        cx.warn(a.key.clone(), a.span.as_ref(), msg);
    }
    let addr_setting = from_env(env, env_vars::TELEPORT_ADDR, "teleport.addr")
        .or(addr_file)
        .or(auth_server);
    let addr = match addr_setting {
        Some(s) => match TeleportAddr::parse(&s.value) {
            Ok(a) => Some(a),
            Err(msg) => {
                cx.problem(s.key, s.span.as_ref(), msg);
                None
            }
        },
        None => TeleportAddr::parse(DEFAULT_TELEPORT_ADDR).ok(),
    };

    let identity = from_env(env, env_vars::IDENTITY, "teleport.identity")
        .or_else(|| from_file(cx, f.get("identity")))
        .filter(|s| !s.value.is_empty());
    let refresh = match f.get("refresh_identity") {
        Some(x) => boolean(cx, x).map(|b| (b, Some(x.key.clone()), Some(x.span.clone()))),
        None => Some((false, None, None)),
    };
    let interval = match f.get("refresh_identity_interval") {
        Some(x) => duration(cx, x, std::time::Duration::from_secs(1)),
        None => Some(ConfigDuration::new(DEFAULT_REFRESH_IDENTITY_INTERVAL)),
    };
    let key = from_file(cx, f.get("client_key")).filter(|s| !s.value.is_empty());
    let crt = from_file(cx, f.get("client_crt")).filter(|s| !s.value.is_empty());
    let cas = from_file(cx, f.get("root_cas")).filter(|s| !s.value.is_empty());

    let connect_via = match f.get("connect_via") {
        Some(x) => match string(cx, x)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("auto" | "") => Some(ConnectVia::Auto),
            Some("auth") => Some(ConnectVia::Auth),
            Some("proxy") => Some(ConnectVia::Proxy),
            Some(other) => {
                let msg = format!("unknown value \"{other}\"; use \"auto\", \"auth\" or \"proxy\"");
                cx.problem(x.key.clone(), Some(&x.span), msg);
                None
            }
            None => None,
        },
        None => Some(ConnectVia::Auto),
    };

    let triple = [
        ("client_key", &key),
        ("client_crt", &crt),
        ("root_cas", &cas),
    ];
    let provided: Vec<&str> = triple
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| *n)
        .collect();
    let missing: Vec<&str> = triple
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    let quote = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first_span = triple
        .iter()
        .find_map(|(_, v)| v.as_ref().and_then(|s| s.span.clone()));

    let credentials = match (identity, provided.len()) {
        (Some(id), 0) => {
            let (refresh, _, _) = refresh?;
            Some(Credentials::IdentityFile {
                path: path_setting(cx, id)?,
                refresh,
                refresh_interval: interval?,
            })
        }
        (Some(id), _) => {
            cx.problem(
                "teleport.identity",
                id.span.as_ref(),
                "configuration setting `identity` is mutually exclusive with all the `client_crt`, `client_key` and `root_cas` settings; use one or the other",
            );
            None
        }
        (None, 3) => {
            if let Some((true, key, span)) = refresh {
                cx.problem(
                    key.unwrap_or_else(|| "teleport.refresh_identity".into()),
                    span.as_ref(),
                    "`refresh_identity` requires that `identity` be set",
                );
            }
            let (key, crt, cas) = (key?, crt?, cas?);
            Some(Credentials::KeyPair {
                key: path_setting(cx, key)?,
                cert: path_setting(cx, crt)?,
                root_cas: path_setting(cx, cas)?,
            })
        }
        (None, 0) => {
            if let Some((true, key, span)) = refresh {
                cx.problem(
                    key.unwrap_or_else(|| "teleport.refresh_identity".into()),
                    span.as_ref(),
                    "`refresh_identity` requires that `identity` be set",
                );
            }
            cx.problem(
                "teleport",
                None,
                format!(
                    "no credentials configured: set `teleport.identity` (from `tctl auth sign --format=file` or tbot), or all of `teleport.client_key`, `teleport.client_crt` and `teleport.root_cas` (or {})",
                    env_vars::IDENTITY
                ),
            );
            None
        }
        (None, _) => {
            cx.problem(
                "teleport",
                first_span.as_ref(),
                format!(
                    "configuration setting(s) {} are provided but setting(s) {} are missing",
                    quote(&provided),
                    quote(&missing)
                ),
            );
            None
        }
    };
    let fail_fast = match env.var(env_vars::FAIL_FAST) {
        None => Some(false),
        Some(v) => match parse_go_bool(v.trim()) {
            Some(b) => Some(b),
            None => {
                cx.problem(
                    env_vars::FAIL_FAST,
                    None,
                    format!("failed to parse content '{}' of the {} environment variable; use true or false", v.trim(), env_vars::FAIL_FAST),
                );
                None
            }
        },
    };
    Some(TeleportConfig {
        addr: addr?,
        credentials: credentials?,
        connect_via: connect_via?,
        fail_fast: fail_fast?,
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn duration(
    cx: &mut Cx<'_>,
    f: &Found<'_, '_>,
    min: std::time::Duration,
) -> Option<ConfigDuration> {
    let DeValue::String(s) = f.value.get_ref() else {
        let msg = format!(
            "expected a duration string like \"30s\" or \"5m\", found {}",
            kind(f.value.get_ref())
        );
        cx.problem(&f.key, Some(&f.span), msg);
        return None;
    };
    match parse_duration(s) {
        Ok(d) if d.get() >= min => Some(d),
        Ok(_) => {
            let msg = format!(
                "\"{s}\" is too short; the minimum is {}",
                ConfigDuration::new(min)
            );
            cx.problem(&f.key, Some(&f.span), msg);
            None
        }
        Err(e) => {
            cx.problem(&f.key, Some(&f.span), e.to_string());
            None
        }
    }
}

/// A secret that may be given inline or, when it starts with `/`, as a file.
fn secret(cx: &mut Cx<'_>, s: Setting) -> Option<Secret> {
    if s.value.is_empty() {
        cx.problem(s.key, s.span.as_ref(), "must not be empty");
        return None;
    }
    if s.value.starts_with('/') {
        match read_secret_file(Path::new(&s.value)) {
            Ok(secret) => Some(secret),
            Err(msg) => {
                cx.problem(s.key, s.span.as_ref(), msg);
                None
            }
        }
    } else {
        Some(Secret::new(s.value))
    }
}

fn discord(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Found<'_, '_>>,
    env: &dyn Env,
) -> Option<DiscordConfig> {
    if let Some(r) = f.get("recipients") {
        let (key, span) = (r.key.clone(), r.span.clone());
        cx.warn(
            key,
            Some(&span),
            "legacy key, ignored (as upstream); map roles to channels in [role_to_recipients]",
        );
    }
    let token = match from_env(env, env_vars::DISCORD_TOKEN, "discord.token")
        .or_else(|| from_file(cx, f.get("token")))
    {
        Some(s) => secret(cx, s),
        None => {
            let msg = format!(
                "missing required value discord.token: set the bot token (or a /path to a file holding it) here or in {}",
                env_vars::DISCORD_TOKEN
            );
            cx.problem("discord.token", None, msg);
            None
        }
    };
    let url = match (f.get("api_url"), f.get("apiurl")) {
        (Some(a), Some(b)) => {
            let msg = format!(
                "both `{}` and `{}` are set; keep `discord.api_url`",
                a.key, b.key
            );
            cx.problem(b.key.clone(), Some(&b.span), msg);
            None
        }
        (Some(x), None) | (None, Some(x)) => match string(cx, x) {
            Some(v) if v.trim().is_empty() => {
                Some(ApiUrl::new_unchecked(DEFAULT_DISCORD_API_URL.into()))
            }
            Some(v) => api_url(cx, x, &v),
            None => None,
        },
        (None, None) => Some(ApiUrl::new_unchecked(DEFAULT_DISCORD_API_URL.into())),
    };
    let rate = match f.get("global_rate_limit") {
        Some(x) => match integer(cx, x) {
            Some(v) if (1..=10_000).contains(&v) => Some(v as u32),
            Some(v) => {
                cx.problem(x.key.clone(), Some(&x.span), format!("{v} is out of range; use 1 to 10000 requests per second (Discord's default is 50)"));
                None
            }
            None => None,
        },
        None => Some(DEFAULT_GLOBAL_RATE_LIMIT),
    };
    let public_key = match f.get("public_key") {
        Some(x) => match string(cx, x) {
            Some(v) if v.trim().is_empty() => Some(None),
            Some(v) => match crate::interactions::PublicKey::parse(&v) {
                Ok(k) => Some(Some(k)),
                Err(why) => {
                    cx.problem(x.key.clone(), Some(&x.span), why);
                    None
                }
            },
            None => None,
        },
        None => Some(None),
    };
    Some(DiscordConfig {
        token: token?,
        api_url: url?,
        global_rate_limit: rate?,
        public_key: public_key?,
    })
}

fn api_url(cx: &mut Cx<'_>, f: &Found<'_, '_>, raw: &str) -> Option<ApiUrl> {
    let v = raw.trim();
    let parsed = match url::Url::parse(v) {
        Ok(u) => u,
        Err(e) => {
            cx.problem(
                f.key.clone(),
                Some(&f.span),
                format!("\"{v}\" is not a valid URL: {e}"),
            );
            return None;
        }
    };
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        cx.problem(
            f.key.clone(),
            Some(&f.span),
            format!("\"{v}\" must be an http:// or https:// URL with a host"),
        );
        return None;
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        cx.problem(
            f.key.clone(),
            Some(&f.span),
            format!("\"{v}\" must not have a query or fragment"),
        );
        return None;
    }
    let trimmed = v.trim_end_matches('/');
    // Upstream's default was the unversioned API root, which Discord serves as
    // its deprecated default version; we speak v10.
    if matches!(parsed.host_str(), Some("discord.com" | "discordapp.com"))
        && parsed.path().trim_end_matches('/') == "/api"
    {
        let msg = format!(
            "\"{v}\" names no API version (Discord would answer with its deprecated default); using {DEFAULT_DISCORD_API_URL}"
        );
        cx.warn(f.key.clone(), Some(&f.span), msg);
        return Some(ApiUrl::new_unchecked(DEFAULT_DISCORD_API_URL.into()));
    }
    Some(ApiUrl::new_unchecked(trimmed.to_owned()))
}

fn recipients(cx: &mut Cx<'_>, f: Option<&Found<'_, '_>>) -> Option<RoleToRecipients> {
    let Some(f) = f else {
        cx.problem(
            "role_to_recipients",
            None,
            "missing required value role_to_recipients. Add a [role_to_recipients] table with at least \"*\" = [\"<channel id>\"]",
        );
        return None;
    };
    let t = table(cx, f)?;
    let mut map = BTreeMap::new();
    let mut ok = true;
    for (role, value) in t.iter() {
        let role_name: &str = role.get_ref();
        let key = join("role_to_recipients", role_name);
        let span = role.span();
        let list: Vec<(String, Range<usize>)> = match value.get_ref() {
            DeValue::String(s) => vec![(s.to_string(), value.span())],
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push((s.to_string(), item.span())),
                        other => {
                            cx.problem(format!("{key}[{i}]"), Some(&item.span()), format!("unexpected type for recipients value: expected a string (a Discord channel ID), found {}", kind(other)));
                            ok = false;
                        }
                    }
                }
                out
            }
            other => {
                cx.problem(key.clone(), Some(&span), format!("unexpected type for recipients value: expected a string or an array of strings, found {}", kind(other)));
                ok = false;
                continue;
            }
        };
        let mut recips = Vec::new();
        for (i, (r, rspan)) in list.into_iter().enumerate() {
            let r = r.trim().to_owned();
            if r.is_empty() {
                cx.problem(
                    format!("{key}[{i}]"),
                    Some(&rspan),
                    "empty recipient; use a Discord channel ID",
                );
                ok = false;
                continue;
            }
            let rec = Recipient::new(r);
            if rec.channel_id().is_none() {
                cx.warn(
                    format!("{key}[{i}]"),
                    Some(&rspan),
                    format!("\"{rec}\" is not a Discord channel ID (a number such as 1234567890123456789); messages for it will be skipped"),
                );
            }
            if !recips.contains(&rec) {
                recips.push(rec);
            }
        }
        map.insert(role_name.to_owned(), recips);
    }
    if map.is_empty() {
        cx.problem("role_to_recipients", Some(&f.span), "missing required value role_to_recipients. The table is empty; add at least \"*\" = [\"<channel id>\"]");
        return None;
    }
    if map
        .get(RoleToRecipients::WILDCARD)
        .is_none_or(Vec::is_empty)
    {
        cx.problem(
            "role_to_recipients.\"*\"",
            Some(&f.span),
            "missing required value role_to_recipients[*]. Add \"*\" = [\"<channel id>\"] for roles without their own entry",
        );
        return None;
    }
    ok.then(|| RoleToRecipients::new_unchecked(map))
}

fn log(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Found<'_, '_>>,
    env: &dyn Env,
) -> Option<LogConfig> {
    let output = match from_file(cx, f.get("output")) {
        Some(s) => match s.value.trim() {
            "" | "stderr" | "error" | "2" => Some(LogOutput::Stderr),
            "stdout" | "out" | "1" => Some(LogOutput::Stdout),
            path => Some(LogOutput::File(PathBuf::from(path))),
        },
        None if f.contains_key("output") => None,
        None => Some(LogOutput::Stderr),
    };
    let severity = match from_env(env, env_vars::LOG_SEVERITY, "log.severity")
        .or_else(|| from_file(cx, f.get("severity")))
    {
        Some(s) if s.value.is_empty() => Some(Severity::Info),
        Some(s) => match Severity::parse(&s.value) {
            Some(v) => Some(v),
            None => {
                let msg = format!(
                    "unsupported logger severity: '{}'; use one of trace, debug, info, warn, error",
                    s.value
                );
                cx.problem(s.key, s.span.as_ref(), msg);
                None
            }
        },
        None if f.contains_key("severity") => None,
        None => Some(Severity::Info),
    };
    let format = match from_env(env, env_vars::LOG_FORMAT, "log.format")
        .or_else(|| from_file(cx, f.get("format")))
    {
        Some(s) => match s.value.to_ascii_lowercase().as_str() {
            "" | "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                cx.problem(
                    s.key,
                    s.span.as_ref(),
                    format!("unknown log format \"{other}\"; use \"text\" or \"json\""),
                );
                None
            }
        },
        None if f.contains_key("format") => None,
        None => Some(LogFormat::Text),
    };
    Some(LogConfig {
        output: output?,
        severity: severity?,
        format: format?,
    })
}

fn http(
    cx: &mut Cx<'_>,
    f: &BTreeMap<&'static str, Found<'_, '_>>,
    env: &dyn Env,
) -> Option<HttpConfig> {
    let listen = match from_env(env, env_vars::LISTEN_ADDR, "http.listen_addr")
        .or_else(|| from_file(cx, f.get("listen_addr")))
    {
        Some(s) => match s.value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let msg = format!(
                    "\"{}\" is not an IP:port address (e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\")",
                    s.value
                );
                cx.problem(s.key, s.span.as_ref(), msg);
                None
            }
        },
        None if f.contains_key("listen_addr") => None,
        None => DEFAULT_LISTEN_ADDR.parse().ok(),
    };
    let admin = match from_env(env, env_vars::ADMIN_TOKEN, "http.admin_token")
        .or_else(|| from_file(cx, f.get("admin_token")))
    {
        Some(s) if s.value.is_empty() => Some(None),
        Some(s) => {
            let (key, span) = (s.key.clone(), s.span.clone());
            match secret(cx, s) {
                Some(t) if t.expose().chars().count() < MIN_ADMIN_TOKEN_LEN => {
                    cx.problem(key, span.as_ref(), format!("too short: use at least {MIN_ADMIN_TOKEN_LEN} characters (e.g. from `openssl rand -hex 32`)"));
                    None
                }
                Some(t) => Some(Some(t)),
                None => None,
            }
        }
        None if f.contains_key("admin_token") => None,
        None => Some(None),
    };
    Some(HttpConfig {
        listen_addr: listen?,
        admin_token: admin?,
    })
}
