//! A Discord REST emulator (API v10) for tests, benchmarks and `demo`.
//!
//! It follows Discord's documented rules (see `discord-api.md` in the shared
//! reference), not our client's convenience:
//! - `Authorization: Bot <token>` or 401 (code 0, "401: Unauthorized").
//! - A global limit (50 per second by default) answered with a global 429
//!   (`X-RateLimit-Global`, `X-RateLimit-Scope: global`, no bucket headers).
//! - Per-channel limits, separate counters for message create and message
//!   edit (5 per 5 s each by default) that share one bucket hash, as observed
//!   on Discord (discord-api-docs#8073). Windows are fixed and start at the
//!   first request after the previous one ended. Every limited response
//!   carries `X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket`; a 429
//!   adds `X-RateLimit-Scope`, an integer `Retry-After` (rounded up) and a body
//!   with a float `retry_after`, `global` and `code`.
//! - Invalid requests (401, 403, non-shared 429) are counted in a rolling
//!   10-minute window; at the threshold the emulator answers like Cloudflare's
//!   temporary ban.
//! - Body validation ([`validate`]) → 400/50035 with field errors; empty
//!   message → 400/50006; unknown channel → 404/10003; unknown message →
//!   404/10008; forbidden channel → 403/50013 (50001 on reads).
//! - `nonce` + `enforce_nonce`: a repeated nonce within the window returns the
//!   existing message instead of creating another.
//! - Fault injection ([`Faults`], [`DiscordEmulator::force_429`]).
//! - The application (`application`): an ID and an Ed25519 key pair made at
//!   start ([`DiscordEmulator::public_key_hex`]), the Interactions Endpoint
//!   URL ([`DiscordEmulator::set_interactions_endpoint`]).
//! - Interactions (`interactions`): users clicking buttons of stored messages
//!   ([`DiscordEmulator::click`]), submitting modals
//!   ([`DiscordEmulator::submit_modal`]), PINGs; signed and delivered as
//!   Discord does, with the 3-second first-answer rule, 40060, 10062, the
//!   callback route and the raw building blocks for security tests.
//! - Follow-ups (`webhooks`): the interaction webhook routes, valid for the
//!   token's 15 minutes, with their own per-token bucket outside the global
//!   limit.
//! - Users and DMs (`dm`): [`DiscordEmulator::add_user`], Create DM with its
//!   own bucket, 50007 for users who do not accept DMs.
//!
//! Start it with [`DiscordEmulator::start`] (binds `127.0.0.1:0`), add
//! channels and users, point a client at [`DiscordEmulator::api_url`], then
//! inspect [`DiscordEmulator::messages`], [`DiscordEmulator::interactions`]
//! and [`DiscordEmulator::stats`].

// Checks return the early answer as `Err(Response)`; its size does not matter in a test server.
#![allow(clippy::result_large_err)]

/// The emulator's request-body checks; public only so the fuzz targets can
/// use them as an oracle.
#[doc(hidden)]
pub mod validate;

mod application;
mod dm;
#[cfg(test)]
mod interaction_tests;
mod interactions;
mod webhooks;

pub use interactions::{
    Answer, AnswerVia, FailReason, InteractionError, InteractionKind, InteractionRecord,
    InteractionReply, InteractionState, RawInteraction, RawReply, Replay,
};

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Discord's epoch (2015-01-01) in Unix milliseconds.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// The bucket hash the emulator gives message create and edit (one hash, two counters).
pub const MESSAGE_BUCKET: &str = "80c17d2f203122d936070c88c8d10f33";

/// The bucket hash of the interaction webhook routes (one counter per token).
pub const WEBHOOK_BUCKET: &str = "d6a4a4f4b1c9e1f7a8b2c3d4e5f60718";

/// The bucket hash of `POST /users/@me/channels` (one counter per bot).
pub const DM_BUCKET: &str = "3e9a1b7c5d2f4e6a8b0c1d2e3f405162";

/// Limits and identity of an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The bot token clients must send as `Bot <token>`.
    pub token: String,
    /// The bot's user name (`GET /users/@me`).
    pub bot_name: String,
    /// Message creates per channel per window.
    pub create_limit: u32,
    /// Create window.
    pub create_window: Duration,
    /// Message edits per channel per window.
    pub edit_limit: u32,
    /// Edit window.
    pub edit_window: Duration,
    /// Requests per global window.
    pub global_limit: u32,
    /// Global window (1 s on Discord).
    pub global_window: Duration,
    /// How long a nonce de-duplicates (Discord: "the past few minutes").
    pub nonce_window: Duration,
    /// Invalid requests per 10 minutes that trigger the temporary ban.
    pub ban_threshold: u32,
    /// Time an interaction's first answer must arrive within (Discord: 3 s).
    pub interaction_deadline: Duration,
    /// How long an interaction token works for follow-ups (Discord: 15 minutes).
    pub interaction_token_lifetime: Duration,
    /// Requests per webhook window, per interaction token (the emulator's
    /// choice, after the observed 5 per 2 s: discord-api-docs#2701).
    pub webhook_limit: u32,
    /// Webhook window.
    pub webhook_window: Duration,
    /// DM channel opens per window, per bot (the emulator's choice: Discord
    /// publishes no number).
    pub dm_limit: u32,
    /// DM window.
    pub dm_window: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            token: "emulator-bot-token".to_owned(),
            bot_name: "teleport-bot".to_owned(),
            create_limit: 5,
            create_window: Duration::from_secs(5),
            edit_limit: 5,
            edit_window: Duration::from_secs(5),
            global_limit: 50,
            global_window: Duration::from_secs(1),
            nonce_window: Duration::from_secs(300),
            ban_threshold: 10_000,
            interaction_deadline: Duration::from_secs(3),
            interaction_token_lifetime: Duration::from_secs(15 * 60),
            webhook_limit: 5,
            webhook_window: Duration::from_secs(2),
            dm_limit: 5,
            dm_window: Duration::from_secs(5),
        }
    }
}

/// Injected faults; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fraction of message requests answered 500 before processing.
    pub server_error_rate: f64,
    /// Delay added after processing, before answering.
    pub latency: Duration,
    /// Fraction of message requests whose connection is dropped mid-response
    /// *after* processing (the message exists, the client sees an error).
    pub drop_rate: f64,
    /// The next this many message requests get a 500 (deterministic).
    pub fail_next: u32,
    /// The next this many message requests are processed, then their connection dropped.
    pub drop_next: u32,
    /// The next this many message requests are processed, then answered after `slow_latency`.
    pub slow_next: u32,
    /// Delay for `slow_next`.
    pub slow_latency: Duration,
}

/// The scope of a forced 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every request of the bot.
    Global,
    /// One bucket of the bot.
    User,
    /// A shared resource; does not count as invalid.
    Shared,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::User => "user",
            Self::Shared => "shared",
        }
    }
}

/// Counters a test can read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests received (all routes).
    pub requests: u64,
    /// 429s served with global scope.
    pub rate_limited_global: u64,
    /// 429s served with user scope.
    pub rate_limited_user: u64,
    /// 429s served with shared scope.
    pub rate_limited_shared: u64,
    /// 401/403/non-shared 429 in the rolling 10-minute window.
    pub invalid_requests_window: u64,
    /// Answers given in "temporarily blocked" mode.
    pub banned_answers: u64,
    /// 401s served.
    pub unauthorized: u64,
    /// Messages created.
    pub messages_created: u64,
    /// Edits applied.
    pub edits: u64,
    /// Creates answered with an existing message because of `enforce_nonce`.
    pub nonce_deduplicated: u64,
    /// Messages created whose nonce an earlier message in the channel already had.
    pub duplicates: u64,
    /// 500s injected.
    pub server_errors: u64,
    /// 429s served because of [`DiscordEmulator::force_429`] (the rest were
    /// earned by exceeding a limit).
    pub forced_429: u64,
    /// Message bodies refused with 400 (invalid JSON or 50035 Invalid Form Body).
    pub rejected_bodies: u64,
    /// Connections dropped after processing.
    pub dropped: u64,
    /// The `User-Agent` of the last request.
    pub last_user_agent: Option<String>,
    /// Interactions sent to the endpoint (clicks, modal submits, pings, raw deliveries).
    pub interactions_delivered: u64,
    /// Interactions whose first answer was accepted in time.
    pub interactions_acknowledged: u64,
    /// Interactions that failed ("This interaction failed"): no valid answer in time.
    pub interactions_failed: u64,
    /// Answers that came after the deadline.
    pub answered_late: u64,
    /// Second acknowledgements refused (40060), inline or by callback.
    pub already_acknowledged: u64,
    /// Callbacks answered "Unknown interaction" (10062).
    pub unknown_interaction: u64,
    /// Interaction answers refused as invalid (400: 50035, 50006, 50109).
    pub invalid_answers: u64,
    /// Follow-up messages created (`POST /webhooks/{application_id}/{token}`).
    pub followups: u64,
    /// Edits through the webhook routes (`@original` or a follow-up).
    pub webhook_edits: u64,
    /// Webhook requests answered "Unknown Webhook" (10015).
    pub unknown_webhook: u64,
    /// 429s served on the webhook routes.
    pub webhook_rate_limited: u64,
    /// DM channels opened (a repeated open returns the same channel and is not counted).
    pub dm_channels_opened: u64,
    /// Messages refused with 50007 "Cannot send messages to this user".
    pub cannot_message_user: u64,
}

impl Stats {
    /// All 429s served.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited_global + self.rate_limited_user + self.rate_limited_shared
    }
}

/// A message as the emulator stores it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    /// Snowflake.
    pub id: String,
    /// Channel snowflake.
    pub channel_id: String,
    /// Current content.
    pub content: String,
    /// Current embeds.
    pub embeds: Value,
    /// Current components.
    pub components: Value,
    /// Nonce it was created with.
    pub nonce: Option<String>,
    /// Every body applied, the create first, then each edit.
    pub history: Vec<Value>,
    /// Who would have been pinged by the create or any edit (`user:<id>`,
    /// `role:<id>`, `everyone`).
    pub would_mention: Vec<String>,
    /// Message flags (e.g. EPHEMERAL 64, LOADING 128).
    pub flags: u64,
    /// The interaction whose response or follow-up this is (none for the bot's own messages).
    pub interaction_id: Option<String>,
}

impl StoredMessage {
    /// A message created with `body` (already validated).
    fn from_body(id: String, channel_id: &str, body: Value, nonce: Option<String>) -> Self {
        Self {
            id,
            channel_id: channel_id.to_owned(),
            content: body
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            embeds: body.get("embeds").cloned().unwrap_or_else(|| json!([])),
            components: body.get("components").cloned().unwrap_or_else(|| json!([])),
            nonce,
            would_mention: mentions(&body),
            flags: body.get("flags").and_then(Value::as_u64).unwrap_or(0),
            interaction_id: None,
            history: vec![body],
        }
    }

    /// Applies an edit body (already validated): fields present replace,
    /// `null` clears, the editable flags are taken from `flags` when given.
    fn apply_edit(&mut self, body: Value) {
        if let Some(c) = body.get("content") {
            self.content = c.as_str().unwrap_or_default().to_owned();
        }
        if let Some(e) = body.get("embeds") {
            self.embeds = if e.is_null() { json!([]) } else { e.clone() };
        }
        if let Some(c) = body.get("components") {
            self.components = if c.is_null() { json!([]) } else { c.clone() };
        }
        if let Some(f) = body.get("flags").and_then(Value::as_u64) {
            let editable = validate::SUPPRESS_EMBEDS | validate::IS_COMPONENTS_V2;
            self.flags = (self.flags & !editable) | (f & editable);
        }
        let allowed = body.get("allowed_mentions").cloned().or_else(|| {
            // Interactions and webhooks parse only users by default.
            self.interaction_id
                .as_ref()
                .map(|_| json!({"parse": ["users"]}))
        });
        for m in mentions(&json!({"content": self.content, "allowed_mentions": allowed})) {
            if !self.would_mention.contains(&m) {
                self.would_mention.push(m);
            }
        }
        self.history.push(body);
    }

    fn to_json(&self, bot: &Value) -> Value {
        let mut v = json!({
            "id": self.id,
            "channel_id": self.channel_id,
            "type": 0,
            "content": self.content,
            "embeds": self.embeds,
            "components": self.components,
            "author": bot,
            "nonce": self.nonce,
            "flags": self.flags,
            "edited_timestamp": if self.history.len() > 1 { Value::String("edited".to_owned()) } else { Value::Null },
            "mentions": [],
        });
        if let (Some(id), Some(obj)) = (&self.interaction_id, v.as_object_mut()) {
            obj.insert("interaction_metadata".to_owned(), json!({"id": id}));
        }
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum RouteKind {
    Create,
    Edit,
    Dm,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    count: u32,
}

impl Window {
    /// Counts a request; `Ok((remaining, reset_after))` or `Err(retry_after)`.
    fn hit(
        &mut self,
        now: Instant,
        limit: u32,
        len: Duration,
    ) -> Result<(u32, Duration), Duration> {
        let start = match self.start {
            Some(s) if now < s + len => s,
            _ => {
                self.start = Some(now);
                self.count = 0;
                now
            }
        };
        let reset_after = (start + len).saturating_duration_since(now);
        if self.count >= limit {
            return Err(reset_after);
        }
        self.count += 1;
        Ok((limit - self.count, reset_after))
    }
}

#[derive(Debug)]
struct Channel {
    id: String,
    kind: u8,
    name: String,
    forbidden: bool,
    /// The user of a DM channel.
    recipient: Option<String>,
    messages: Vec<StoredMessage>,
    nonces: HashMap<String, (usize, Instant)>,
    seen_nonces: HashSet<String>,
}

#[derive(Debug)]
struct Blocked {
    scope: Scope,
    until: Instant,
}

#[derive(Debug)]
struct Inner {
    config: EmulatorConfig,
    faults: Faults,
    stats: Stats,
    channels: HashMap<String, Channel>,
    dms: HashMap<String, String>,
    global: Window,
    routes: HashMap<(String, RouteKind), Window>,
    invalid: VecDeque<Instant>,
    global_blocked: Option<Blocked>,
    route_blocked: HashMap<(String, RouteKind), Blocked>,
    armed_429: Vec<(Option<String>, Scope, Duration)>,
    last_snowflake: u64,
    bot_id: String,
    /// The one guild every text channel belongs to.
    guild_id: String,
    users: HashMap<String, dm::User>,
    endpoint: Option<String>,
    interactions: Vec<interactions::Interaction>,
    webhook_windows: HashMap<String, Window>,
}

impl Inner {
    fn snowflake(&mut self) -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let candidate = ms.saturating_sub(DISCORD_EPOCH_MS) << 22;
        self.last_snowflake = candidate.max(self.last_snowflake + 1);
        self.last_snowflake.to_string()
    }

    fn invalid(&mut self, now: Instant) {
        self.invalid.push_back(now);
    }

    fn prune_invalid(&mut self, now: Instant) {
        while self
            .invalid
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(600))
        {
            self.invalid.pop_front();
        }
        self.stats.invalid_requests_window = self.invalid.len() as u64;
    }

    fn bot_json(&self) -> Value {
        json!({"id": self.bot_id, "username": self.config.bot_name, "discriminator": "0", "global_name": null, "avatar": null, "bot": true})
    }
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    /// The application: its ID and key pair (the private key lives only here).
    app: application::Application,
    /// Woken whenever an interaction is acknowledged or fails.
    settled: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::util::lock(&self.inner)
    }
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct DiscordEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Drop for DiscordEmulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl DiscordEmulator {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
            config,
        )
        .await
    }

    /// Binds `addr` and serves until dropped.
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<Self> {
        let mut inner = Inner {
            config,
            faults: Faults::default(),
            stats: Stats::default(),
            channels: HashMap::new(),
            dms: HashMap::new(),
            global: Window::default(),
            routes: HashMap::new(),
            invalid: VecDeque::new(),
            global_blocked: None,
            route_blocked: HashMap::new(),
            armed_429: Vec::new(),
            last_snowflake: 0,
            bot_id: String::new(),
            guild_id: String::new(),
            users: HashMap::new(),
            endpoint: None,
            interactions: Vec::new(),
            webhook_windows: HashMap::new(),
        };
        inner.bot_id = inner.snowflake();
        inner.guild_id = inner.snowflake();
        let app = application::Application::generate(inner.snowflake())?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            app,
            settled: tokio::sync::Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let app = router(shared.clone());
        let stop = cancel.clone();
        tokio::spawn(async move {
            let listener =
                axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
                    let _ = tcp.set_nodelay(true);
                });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(Self {
            addr,
            shared,
            cancel,
        })
    }

    /// The API base URL, e.g. `http://127.0.0.1:PORT/api/v10`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token clients must send.
    pub fn token(&self) -> String {
        self.shared.lock().config.token.clone()
    }

    /// Resets the bot token (as "Reset Token" in the developer portal does):
    /// from now on only `token` is accepted.
    pub fn set_token(&self, token: &str) {
        self.shared.lock().config.token = token.to_owned();
    }

    /// The bot's user ID.
    pub fn bot_id(&self) -> String {
        self.shared.lock().bot_id.clone()
    }

    /// Adds a guild text channel and returns its ID.
    pub fn add_channel(&self, name: &str) -> String {
        let mut inner = self.shared.lock();
        let id = inner.snowflake();
        inner.channels.insert(id.clone(), new_channel(&id, 0, name));
        id
    }

    /// Makes the bot lack permission to post in (and read) a channel.
    pub fn forbid_channel(&self, id: &str) {
        if let Some(c) = self.shared.lock().channels.get_mut(id) {
            c.forbidden = true;
        }
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// The next message request (to `channel`, or to any channel when `None`)
    /// starts a rate limit of `scope` lasting `retry_after`: it and every
    /// request in that scope until then get a 429.
    pub fn force_429(&self, channel: Option<&str>, scope: Scope, retry_after: Duration) {
        self.shared
            .lock()
            .armed_429
            .push((channel.map(str::to_owned), scope, retry_after));
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut inner = self.shared.lock();
        inner.prune_invalid(Instant::now());
        interactions::sweep(&mut inner, Instant::now());
        inner.stats.clone()
    }

    /// The messages of a channel, oldest first.
    pub fn messages(&self, channel: &str) -> Vec<StoredMessage> {
        self.shared
            .lock()
            .channels
            .get(channel)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    /// Puts a message in a channel as another client posted it earlier (the
    /// Go plugin, before a migration); returns its ID.
    pub fn insert_message(&self, channel: &str, content: &str) -> String {
        let mut inner = self.shared.lock();
        let id = inner.snowflake();
        let body = json!({"content": content});
        if let Some(ch) = inner.channels.get_mut(channel) {
            let mut msg = StoredMessage::from_body(id.clone(), channel, body, None);
            msg.would_mention.clear();
            ch.messages.push(msg);
        }
        id
    }

    /// The guild the text channels belong to.
    pub fn guild_id(&self) -> String {
        self.shared.lock().guild_id.clone()
    }

    /// Message counts per channel.
    pub fn messages_per_channel(&self) -> HashMap<String, usize> {
        self.shared
            .lock()
            .channels
            .iter()
            .map(|(id, c)| (id.clone(), c.messages.len()))
            .collect()
    }
}

fn new_channel(id: &str, kind: u8, name: &str) -> Channel {
    Channel {
        id: id.to_owned(),
        kind,
        name: name.to_owned(),
        forbidden: false,
        recipient: None,
        messages: Vec::new(),
        nonces: HashMap::new(),
        seen_nonces: HashSet::new(),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v10/users/@me", get(get_me))
        .route("/api/v10/users/@me/channels", post(dm::create_dm))
        .route("/api/v10/channels/{channel}", get(get_channel))
        .route("/api/v10/channels/{channel}/messages", post(create_message))
        .route(
            "/api/v10/channels/{channel}/messages/{message}",
            patch(edit_message).get(get_message),
        )
        .route(
            "/api/v10/interactions/{interaction}/{token}/callback",
            post(interactions::callback),
        )
        .route(
            "/api/v10/webhooks/{application}/{token}",
            post(webhooks::create_followup),
        )
        .route(
            "/api/v10/webhooks/{application}/{token}/messages/{message}",
            patch(webhooks::edit_message).get(webhooks::get_message),
        )
        .with_state(shared)
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"code": code, "message": message}).to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn secs(d: Duration) -> f64 {
    // Rounded up to the millisecond so a client never reads a reset earlier than the real one.
    (d.as_micros().div_ceil(1000) as f64) / 1000.0
}

fn epoch_secs_after(d: Duration) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    secs(now + d)
}

/// A route bucket's state, as its `X-RateLimit-*` headers tell it.
#[derive(Debug, Clone, Copy)]
struct BucketHeaders {
    limit: u32,
    remaining: u32,
    reset_after: Duration,
    /// The `X-RateLimit-Bucket` hash.
    bucket: &'static str,
}

fn too_many(scope: Scope, retry_after: Duration, bucket: Option<BucketHeaders>) -> Response {
    let global = scope == Scope::Global;
    let message = match scope {
        Scope::Shared => "The resource is being rate limited.",
        _ => "You are being rate limited.",
    };
    let body =
        json!({"message": message, "retry_after": secs(retry_after), "global": global, "code": 0});
    let mut resp = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    let h = resp.headers_mut();
    let retry_header = (secs(retry_after).ceil() as u64).max(1);
    insert(h, "retry-after", retry_header.to_string());
    insert(h, "x-ratelimit-scope", scope.as_str().to_owned());
    if global {
        insert(h, "x-ratelimit-global", "true".to_owned());
    }
    if let Some(b) = bucket {
        bucket_headers(h, b);
    }
    resp
}

fn insert(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(name, v);
    }
}

fn bucket_headers(h: &mut HeaderMap, b: BucketHeaders) {
    let BucketHeaders {
        limit,
        remaining,
        reset_after,
        bucket,
    } = b;
    insert(h, "x-ratelimit-limit", limit.to_string());
    insert(h, "x-ratelimit-remaining", remaining.to_string());
    insert(
        h,
        "x-ratelimit-reset",
        format!("{:.3}", epoch_secs_after(reset_after)),
    );
    insert(
        h,
        "x-ratelimit-reset-after",
        format!("{:.3}", secs(reset_after)),
    );
    insert(h, "x-ratelimit-bucket", bucket.to_owned());
}

/// What every request meets first: counted, and refused while the IP is
/// banned (the ban is Cloudflare's, per IP, so it covers every route).
fn arrive(inner: &mut Inner, headers: &HeaderMap, now: Instant) -> Result<(), Response> {
    inner.stats.requests += 1;
    inner.stats.last_user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    inner.prune_invalid(now);
    if inner.invalid.len() as u64 >= u64::from(inner.config.ban_threshold) {
        inner.stats.banned_answers += 1;
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            "You are being blocked from accessing our API temporarily due to exceeding our rate limits frequently. \
             Please read our docs at https://discord.com/developers/docs/topics/rate-limits to prevent this moving forward.",
        )
            .into_response());
    }
    Ok(())
}

/// Auth, ban and global limit, common to every bot route. `Err` is the answer.
fn admit(inner: &mut Inner, headers: &HeaderMap, now: Instant) -> Result<(), Response> {
    arrive(inner, headers, now)?;
    let expected = format!("Bot {}", inner.config.token);
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    if !ok {
        inner.stats.unauthorized += 1;
        inner.invalid(now);
        return Err(error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized"));
    }
    if let Some(b) = &inner.global_blocked
        && b.until > now
    {
        let retry = b.until - now;
        inner.stats.rate_limited_global += 1;
        inner.stats.forced_429 += 1;
        inner.invalid(now);
        return Err(too_many(Scope::Global, retry, None));
    }
    let (limit, len) = (inner.config.global_limit, inner.config.global_window);
    if let Err(retry) = inner.global.hit(now, limit, len) {
        inner.stats.rate_limited_global += 1;
        inner.invalid(now);
        return Err(too_many(Scope::Global, retry, None));
    }
    Ok(())
}

/// Channel checks and the per-channel route limit. `Ok` carries the bucket
/// state for the response headers.
fn admit_message(
    inner: &mut Inner,
    channel: &str,
    kind: RouteKind,
    now: Instant,
) -> Result<BucketHeaders, Response> {
    let Some(ch) = inner.channels.get(channel) else {
        return Err(error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"));
    };
    if ch.forbidden {
        inner.invalid(now);
        return Err(error(StatusCode::FORBIDDEN, 50013, "Missing Permissions"));
    }
    if kind == RouteKind::Create
        && let Some(user) = &ch.recipient
        && inner.users.get(user).is_none_or(|u| !u.accepts_dms)
    {
        inner.invalid(now);
        inner.stats.cannot_message_user += 1;
        return Err(error(
            StatusCode::FORBIDDEN,
            50007,
            "Cannot send messages to this user",
        ));
    }
    let key = (channel.to_owned(), kind);
    let (limit, len) = match kind {
        RouteKind::Create => (inner.config.create_limit, inner.config.create_window),
        RouteKind::Edit => (inner.config.edit_limit, inner.config.edit_window),
        RouteKind::Dm => (inner.config.dm_limit, inner.config.dm_window),
    };
    // Forced 429s: arm a block, then honour any active one.
    if let Some(pos) = inner
        .armed_429
        .iter()
        .position(|(c, _, _)| c.as_deref().is_none_or(|c| c == channel))
    {
        let (_, scope, retry) = inner.armed_429.remove(pos);
        let blocked = Blocked {
            scope,
            until: now + retry,
        };
        if scope == Scope::Global {
            inner.global_blocked = Some(blocked);
            inner.stats.rate_limited_global += 1;
            inner.stats.forced_429 += 1;
            inner.invalid(now);
            return Err(too_many(Scope::Global, retry, None));
        }
        inner.route_blocked.insert(key.clone(), blocked);
    }
    if let Some(b) = inner.route_blocked.get(&key)
        && b.until > now
    {
        let (scope, retry) = (b.scope, b.until - now);
        inner.stats.forced_429 += 1;
        let window = inner.routes.entry(key).or_default();
        let remaining = if scope == Scope::Shared {
            limit.saturating_sub(window.count)
        } else {
            0
        };
        if scope == Scope::Shared {
            inner.stats.rate_limited_shared += 1;
        } else {
            inner.stats.rate_limited_user += 1;
            inner.invalid(now);
        }
        return Err(too_many(
            scope,
            retry,
            Some(BucketHeaders {
                limit,
                remaining,
                reset_after: retry,
                bucket: MESSAGE_BUCKET,
            }),
        ));
    }
    match inner.routes.entry(key).or_default().hit(now, limit, len) {
        Ok((remaining, reset_after)) => Ok(BucketHeaders {
            limit,
            remaining,
            reset_after,
            bucket: MESSAGE_BUCKET,
        }),
        Err(retry) => {
            inner.stats.rate_limited_user += 1;
            inner.invalid(now);
            Err(too_many(
                Scope::User,
                retry,
                Some(BucketHeaders {
                    limit,
                    remaining: 0,
                    reset_after: retry,
                    bucket: MESSAGE_BUCKET,
                }),
            ))
        }
    }
}

async fn get_me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mut inner = s.lock();
    if let Err(r) = admit(&mut inner, &headers, Instant::now()) {
        return r;
    }
    json_response(StatusCode::OK, &inner.bot_json())
}

async fn get_channel(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> Response {
    let now = Instant::now();
    let mut inner = s.lock();
    if let Err(r) = admit(&mut inner, &headers, now) {
        return r;
    }
    let Some(c) = inner.channels.get(&channel) else {
        return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    };
    if c.forbidden {
        inner.invalid(now);
        return error(StatusCode::FORBIDDEN, 50001, "Missing Access");
    }
    let mut v = json!({"id": c.id, "type": c.kind, "name": c.name});
    if let Some(obj) = v.as_object_mut() {
        match &c.recipient {
            Some(user) => {
                let user = inner.users.get(user).map(dm::User::to_json);
                obj.insert("recipients".to_owned(), json!([user]));
            }
            None => {
                obj.insert("guild_id".to_owned(), json!(inner.guild_id));
            }
        }
    }
    json_response(StatusCode::OK, &v)
}

async fn get_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((channel, message)): Path<(String, String)>,
) -> Response {
    let mut inner = s.lock();
    if let Err(r) = admit(&mut inner, &headers, Instant::now()) {
        return r;
    }
    let bot = inner.bot_json();
    let Some(c) = inner.channels.get(&channel) else {
        return error(StatusCode::NOT_FOUND, 10003, "Unknown Channel");
    };
    match c.messages.iter().find(|m| m.id == message) {
        Some(m) => json_response(StatusCode::OK, &m.to_json(&bot)),
        None => error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
    }
}

enum Post {
    Now(Response),
    Later {
        response: Response,
        latency: Duration,
        drop: bool,
    },
}

async fn finish(p: Post) -> Response {
    match p {
        Post::Now(r) => r,
        Post::Later {
            response,
            latency,
            drop,
        } => {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if drop {
                let (parts, _) = response.into_parts();
                let failing = futures_util::stream::once(async {
                    Err::<Bytes, _>(std::io::Error::other(
                        "connection dropped by fault injection",
                    ))
                });
                return Response::from_parts(parts, Body::from_stream(failing));
            }
            response
        }
    }
}

fn parse_body(body: &Bytes, kind: validate::Kind) -> Result<Value, Response> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        ));
    };
    let errs = validate::validate(&v, kind);
    if !errs.is_empty() {
        return Err(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"code": 50035, "message": "Invalid Form Body", "errors": errs.to_json()}),
        ));
    }
    Ok(v)
}

/// The injected faults one message request meets.
#[derive(Debug, Clone, Copy)]
struct FaultDraw {
    /// Answer 500 at once.
    fail: bool,
    /// Wait this long before answering.
    latency: Duration,
    /// Process the request, then drop the connection without answering.
    drop: bool,
}

fn faults(inner: &mut Inner) -> FaultDraw {
    let f = &mut inner.faults;
    let take = |n: &mut u32| {
        let hit = *n > 0;
        *n = n.saturating_sub(1);
        hit
    };
    let fail = take(&mut f.fail_next)
        || (f.server_error_rate > 0.0 && crate::util::random_unit() < f.server_error_rate);
    if fail {
        return FaultDraw {
            fail: true,
            latency: Duration::ZERO,
            drop: false,
        };
    }
    let drop =
        take(&mut f.drop_next) || (f.drop_rate > 0.0 && crate::util::random_unit() < f.drop_rate);
    let latency = if take(&mut f.slow_next) {
        f.latency + f.slow_latency
    } else {
        f.latency
    };
    FaultDraw {
        fail: false,
        latency,
        drop,
    }
}

fn with_bucket(mut r: Response, bucket: BucketHeaders) -> Response {
    bucket_headers(r.headers_mut(), bucket);
    r
}

async fn create_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    body: Bytes,
) -> Response {
    let post = create_message_sync(&s, &headers, &channel, &body);
    finish(post).await
}

/// An admitted write.
#[derive(Debug)]
struct Admitted {
    /// The bucket state for the response headers.
    bucket: BucketHeaders,
    /// Injected latency and connection drop.
    faults: FaultDraw,
    /// The parsed body.
    body: Value,
}

/// What every message write goes through before it is processed: auth and
/// global limit, the channel's route limit, injected faults, body validation.
fn admit_write(
    inner: &mut Inner,
    headers: &HeaderMap,
    channel: &str,
    body: &Bytes,
    route: RouteKind,
    kind: validate::Kind,
    now: Instant,
) -> Result<Admitted, Post> {
    admit(inner, headers, now).map_err(Post::Now)?;
    let bucket = admit_message(inner, channel, route, now).map_err(Post::Now)?;
    let faults = faults(inner);
    if faults.fail {
        inner.stats.server_errors += 1;
        return Err(Post::Now(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            0,
            "500: Internal Server Error",
        )));
    }
    let body = parse_body(body, kind).map_err(|r| {
        inner.stats.rejected_bodies += 1;
        Post::Now(with_bucket(r, bucket))
    })?;
    Ok(Admitted {
        bucket,
        faults,
        body,
    })
}

fn create_message_sync(s: &Shared, headers: &HeaderMap, channel: &str, body: &Bytes) -> Post {
    let now = Instant::now();
    let mut inner = s.lock();
    let Admitted {
        bucket,
        faults: FaultDraw { latency, drop, .. },
        body,
    } = match admit_write(
        &mut inner,
        headers,
        channel,
        body,
        RouteKind::Create,
        validate::Kind::Create,
        now,
    ) {
        Ok(x) => x,
        Err(post) => return post,
    };
    if validate::is_empty_message(&body) {
        return Post::Now(with_bucket(
            error(
                StatusCode::BAD_REQUEST,
                50006,
                "Cannot send an empty message",
            ),
            bucket,
        ));
    }
    let nonce = match body.get("nonce") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let enforce = body
        .get("enforce_nonce")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let nonce_window = inner.config.nonce_window;
    let bot = inner.bot_json();
    let id = inner.snowflake();
    let Some(ch) = inner.channels.get_mut(channel) else {
        return Post::Now(error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"));
    };
    if enforce
        && let Some(n) = &nonce
        && let Some((idx, at)) = ch.nonces.get(n)
        && now.duration_since(*at) < nonce_window
        && let Some(existing) = ch.messages.get(*idx)
    {
        let resp = existing.to_json(&bot);
        inner.stats.nonce_deduplicated += 1;
        return Post::Later {
            response: with_bucket(json_response(StatusCode::OK, &resp), bucket),
            latency,
            drop,
        };
    }
    let mut duplicate = false;
    if let Some(n) = &nonce {
        duplicate = !ch.seen_nonces.insert(n.clone());
        ch.nonces.insert(n.clone(), (ch.messages.len(), now));
    }
    let msg = StoredMessage::from_body(id, channel, body, nonce);
    let resp = msg.to_json(&bot);
    ch.messages.push(msg);
    inner.stats.messages_created += 1;
    if duplicate {
        inner.stats.duplicates += 1;
    }
    if drop {
        inner.stats.dropped += 1;
    }
    Post::Later {
        response: with_bucket(json_response(StatusCode::OK, &resp), bucket),
        latency,
        drop,
    }
}

async fn edit_message(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((channel, message)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let post = edit_message_sync(&s, &headers, &channel, &message, &body);
    finish(post).await
}

fn edit_message_sync(
    s: &Shared,
    headers: &HeaderMap,
    channel: &str,
    message: &str,
    body: &Bytes,
) -> Post {
    let now = Instant::now();
    let mut inner = s.lock();
    let Admitted {
        bucket,
        faults: FaultDraw { latency, drop, .. },
        body,
    } = match admit_write(
        &mut inner,
        headers,
        channel,
        body,
        RouteKind::Edit,
        validate::Kind::Edit,
        now,
    ) {
        Ok(x) => x,
        Err(post) => return post,
    };
    let bot = inner.bot_json();
    let Some(msg) = inner
        .channels
        .get_mut(channel)
        .and_then(|c| c.messages.iter_mut().find(|m| m.id == message))
    else {
        return Post::Now(with_bucket(
            error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
            bucket,
        ));
    };
    msg.apply_edit(body);
    let resp = msg.to_json(&bot);
    inner.stats.edits += 1;
    if drop {
        inner.stats.dropped += 1;
    }
    Post::Later {
        response: with_bucket(json_response(StatusCode::OK, &resp), bucket),
        latency,
        drop,
    }
}

/// Who a message would ping: mentions in `content` filtered by `allowed_mentions`
/// (absent: users, roles and everyone are parsed, as for regular messages).
fn mentions(body: &Value) -> Vec<String> {
    let content = body
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let am = body.get("allowed_mentions").filter(|v| !v.is_null());
    let parse: Vec<&str> = match am {
        None => vec!["users", "roles", "everyone"],
        Some(am) => am
            .get("parse")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
    };
    let listed = |field: &str, id: &str| {
        am.and_then(|a| a.get(field))
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(id)))
    };
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(pos) = rest.find("<@") {
        rest = &rest[pos + 2..];
        let (kind, tail) = match rest.strip_prefix('&') {
            Some(t) => ("roles", t),
            None => ("users", rest.strip_prefix('!').unwrap_or(rest)),
        };
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || !tail[digits.len()..].starts_with('>') {
            continue;
        }
        if parse.contains(&kind) || listed(kind, &digits) {
            out.push(format!(
                "{}:{digits}",
                if kind == "roles" { "role" } else { "user" }
            ));
        }
    }
    if (content.contains("@everyone") || content.contains("@here")) && parse.contains(&"everyone") {
        out.push("everyone".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_counts_then_resets() {
        let start = Instant::now();
        let mut w = Window::default();
        let len = Duration::from_secs(5);
        for i in 0..5 {
            let (remaining, _) = w.hit(start, 5, len).expect("within limit");
            assert_eq!(remaining, 4 - i);
        }
        let retry = w
            .hit(start + Duration::from_secs(1), 5, len)
            .expect_err("limited");
        assert_eq!(retry, Duration::from_secs(4));
        assert!(w.hit(start + len, 5, len).is_ok());
    }

    #[test]
    fn mentions_follow_allowed_mentions() {
        let m = mentions(&json!({"content": "hi <@123> <@&9> @everyone"}));
        assert_eq!(m, vec!["user:123", "role:9", "everyone"]);
        let m = mentions(
            &json!({"content": "hi <@123> <@&9> @everyone", "allowed_mentions": {"parse": []}}),
        );
        assert!(m.is_empty());
        let m = mentions(&json!({"content": "<@!5> <@6>", "allowed_mentions": {"users": ["6"]}}));
        assert_eq!(m, vec!["user:6"]);
    }

    #[test]
    fn retry_after_is_rounded_up() {
        assert!((secs(Duration::from_micros(1_234_001)) - 1.235).abs() < 1e-9);
    }
}
