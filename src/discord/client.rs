//! The Discord REST client: one reqwest client, one [`RateLimiter`], retries.
//!
//! Every call goes through [`DiscordClient::request`]: the invalid-request
//! guard, a rate-limit permit, the HTTP call with a timeout, then by answer:
//! 2xx → done; 429 → the limiter pauses the right scope and the request waits
//! and goes again (bounded); 5xx, timeouts and connection errors → capped
//! exponential backoff with jitter ([`crate::backoff`]), bounded attempts;
//! 401 → the client stops sending and the readiness latch flips; other 4xx →
//! a typed, permanent [`DiscordError`].
//!
//! Creates carry the caller's deterministic `nonce` with
//! `enforce_nonce: true`, so a retried create never makes a second message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::DiscordError;
use super::metrics::DiscordMetrics;
use super::ratelimit::{BucketKey, RateLimiter, ResponseInfo, Scope};
use super::types::{BotUser, Channel, Message, MessagePayload};
use crate::backoff::{Backoff, random_jitter};
use crate::config::DiscordConfig;
use crate::fence::Fence;
use crate::readiness::Latch;
use crate::secret::Secret;

/// The longest [`DiscordClient::probe`] takes.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Project URL for the `User-Agent`.
pub const PROJECT_URL: &str = "https://github.com/teleport-discord/teleport-discord";

/// Route templates, also the bucket keys' `route`.
pub(crate) mod routes {
    pub(crate) const GET_ME: &str = "GET /users/@me";
    pub(crate) const CREATE_DM: &str = "POST /users/@me/channels";
    pub(crate) const GET_CHANNEL: &str = "GET /channels/{}";
    pub(crate) const CREATE_MESSAGE: &str = "POST /channels/{}/messages";
    pub(crate) const EDIT_MESSAGE: &str = "PATCH /channels/{}/messages/{}";
    pub(crate) const EDIT_ORIGINAL: &str = "PATCH /webhooks/{}/{}/messages/@original";
}

/// How a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// A bot request: bot token, global limit, fence.
    Bot,
    /// `GET /users/@me`: runs after a 401 and through a closed fence.
    TokenCheck,
    /// An interaction webhook: the interaction's token is in the path, no
    /// `Authorization`, not bound to the global limit nor the lease's fence
    /// (any replica answers the clicks it receives); its bucket still holds.
    Webhook,
}

/// Everything the client needs; [`ClientOptions::from_config`] fills it from `[discord]`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL without a trailing slash, e.g. `https://discord.com/api/v10`.
    pub api_url: String,
    /// Bot token.
    pub token: Secret,
    /// Requests per second across all routes.
    pub global_rate_limit: u32,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Attempts for 5xx and transport errors (the first included).
    pub max_attempts: u32,
    /// 429 answers tolerated for one request before it is handed back.
    pub max_rate_limited: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// Stop sending at this many invalid requests in 10 minutes (Discord bans at 10,000).
    pub invalid_request_guard: usize,
}

impl ClientOptions {
    /// Defaults for a token and URL.
    pub fn new(api_url: impl Into<String>, token: Secret) -> Self {
        Self {
            api_url: api_url.into().trim_end_matches('/').to_owned(),
            token,
            global_rate_limit: 50,
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 5,
            max_rate_limited: 5,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(10)),
            invalid_request_guard: 1_000,
        }
    }

    /// From `[discord]`.
    pub fn from_config(config: &DiscordConfig) -> Self {
        Self {
            global_rate_limit: config.global_rate_limit,
            ..Self::new(config.api_url.as_str(), config.token.clone())
        }
    }
}

/// The Discord client. Cheap to clone; clones share the limiter.
#[derive(Debug, Clone)]
pub struct DiscordClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    /// Base URL and `Authorization` value; swapped when a reload changes them.
    endpoint: arc_swap::ArcSwap<Endpoint>,
    limiter: Arc<RateLimiter>,
    metrics: DiscordMetrics,
    latch: Option<Latch>,
    token_rejected: AtomicBool,
    /// Passed right before each request (token checks aside).
    fence: Fence,
}

#[derive(Debug)]
struct Endpoint {
    api_url: String,
    auth: http::HeaderValue,
}

impl Endpoint {
    fn new(api_url: &str, token: &Secret) -> Result<Self, DiscordError> {
        let mut auth =
            http::HeaderValue::from_str(&format!("Bot {}", token.expose())).map_err(|_| {
                DiscordError::Invalid(
                    "the bot token contains characters not allowed in a header".to_owned(),
                )
            })?;
        auth.set_sensitive(true);
        Ok(Self {
            api_url: api_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }
}

fn check_snowflake(id: &str) -> Result<(), DiscordError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DiscordError::Invalid(format!(
            "{id:?} is not a Discord snowflake"
        )))
    }
}

impl DiscordClient {
    /// A client for `[discord]`. `latch` is flipped not ready on a 401 and
    /// ready on a successful [`Self::check_token`].
    pub fn new(
        config: &DiscordConfig,
        metrics: DiscordMetrics,
        latch: Option<Latch>,
    ) -> Result<Self, DiscordError> {
        Self::with_options(ClientOptions::from_config(config), metrics, latch)
    }

    /// A client from explicit options (tests, benchmarks, `demo`).
    pub fn with_options(
        options: ClientOptions,
        metrics: DiscordMetrics,
        latch: Option<Latch>,
    ) -> Result<Self, DiscordError> {
        let user_agent = format!("DiscordBot ({PROJECT_URL}, {})", crate::version::VERSION);
        let http = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| DiscordError::Transport(format!("cannot build the HTTP client: {e}")))?;
        let endpoint = Endpoint::new(&options.api_url, &options.token)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                limiter: RateLimiter::new(options.global_rate_limit),
                options,
                endpoint: arc_swap::ArcSwap::from_pointee(endpoint),
                metrics,
                latch,
                token_rejected: AtomicBool::new(false),
                fence: Fence::open(),
            }),
        })
    }

    /// The fence every request (token checks aside) passes right before it
    /// is sent; open until the leader lease takes it over.
    pub fn fence(&self) -> Fence {
        self.inner.fence.clone()
    }

    /// Points the client at a new base URL and token (a config reload) that
    /// [`probe`](Self::probe) just accepted: sending resumes at once if the
    /// old token had been rejected. Rate limit state is kept.
    pub fn set_verified_credentials(
        &self,
        api_url: &str,
        token: &Secret,
    ) -> Result<(), DiscordError> {
        let endpoint = Endpoint::new(api_url, token)?;
        self.inner.endpoint.store(Arc::new(endpoint));
        self.inner.token_rejected.store(false, Ordering::Relaxed);
        if let Some(latch) = &self.inner.latch {
            latch.set_ready();
        }
        Ok(())
    }

    /// Checks a token and API URL with one `GET /users/@me` of at most
    /// [`PROBE_TIMEOUT`], on a client of its own (its own limiter, no
    /// metrics, no readiness): what a reload asks before it swaps them in.
    pub async fn probe(api_url: &str, token: &Secret) -> Result<BotUser, DiscordError> {
        let options = ClientOptions {
            request_timeout: PROBE_TIMEOUT,
            max_attempts: 1,
            max_rate_limited: 0,
            ..ClientOptions::new(api_url, token.clone())
        };
        let probe = Self::with_options(options, DiscordMetrics::unregistered(), None)?;
        probe.check_token().await
    }

    /// The limiter (tests and diagnostics).
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.inner.limiter
    }

    /// The metrics.
    pub fn metrics(&self) -> &DiscordMetrics {
        &self.inner.metrics
    }

    /// `GET /users/@me`: checks the token. Runs even after a 401 (it is how a
    /// fixed token is accepted again); success re-enables sending and sets
    /// the latch ready, a 401 sets it not ready.
    pub async fn check_token(&self) -> Result<BotUser, DiscordError> {
        let user: BotUser = self
            .request_json(
                reqwest::Method::GET,
                "/users/@me".to_owned(),
                BucketKey::new(routes::GET_ME, ""),
                None,
                Via::TokenCheck,
            )
            .await?;
        self.inner.token_rejected.store(false, Ordering::Relaxed);
        if let Some(latch) = &self.inner.latch {
            latch.set_ready();
        }
        Ok(user)
    }

    /// `GET /channels/{id}`.
    pub async fn get_channel(&self, channel_id: &str) -> Result<Channel, DiscordError> {
        check_snowflake(channel_id)?;
        self.request_json(
            reqwest::Method::GET,
            format!("/channels/{channel_id}"),
            BucketKey::new(routes::GET_CHANNEL, channel_id),
            None,
            Via::Bot,
        )
        .await
    }

    /// `POST /users/@me/channels`: opens (or finds) the DM channel with a user.
    pub async fn create_dm(&self, user_id: &str) -> Result<Channel, DiscordError> {
        check_snowflake(user_id)?;
        let body = json!({ "recipient_id": user_id });
        self.request_json(
            reqwest::Method::POST,
            "/users/@me/channels".to_owned(),
            BucketKey::new(routes::CREATE_DM, ""),
            Some(body),
            Via::Bot,
        )
        .await
    }

    /// `POST /channels/{id}/messages` with `nonce` + `enforce_nonce: true`.
    pub async fn create_message(
        &self,
        channel_id: &str,
        nonce: &str,
        payload: &MessagePayload,
    ) -> Result<Message, DiscordError> {
        self.create_message_ranked(channel_id, nonce, payload, Instant::now())
            .await
    }

    /// [`Self::create_message`] ranked for global tokens by `rank` (older first).
    pub async fn create_message_ranked(
        &self,
        channel_id: &str,
        nonce: &str,
        payload: &MessagePayload,
        rank: Instant,
    ) -> Result<Message, DiscordError> {
        check_snowflake(channel_id)?;
        if nonce.is_empty() || nonce.chars().count() > 25 {
            return Err(DiscordError::Invalid(
                "a nonce must have 1 to 25 characters".to_owned(),
            ));
        }
        let mut body =
            serde_json::to_value(payload).map_err(|e| DiscordError::Invalid(e.to_string()))?;
        if let Value::Object(map) = &mut body {
            map.insert("nonce".to_owned(), Value::String(nonce.to_owned()));
            map.insert("enforce_nonce".to_owned(), Value::Bool(true));
        }
        let key = BucketKey::new(routes::CREATE_MESSAGE, channel_id);
        self.request_json_ranked(
            reqwest::Method::POST,
            format!("/channels/{channel_id}/messages"),
            key,
            Some(body),
            Via::Bot,
            rank,
        )
        .await
    }

    /// `PATCH /channels/{id}/messages/{id}`.
    pub async fn edit_message(
        &self,
        channel_id: &str,
        message_id: &str,
        payload: &MessagePayload,
    ) -> Result<Message, DiscordError> {
        self.edit_message_ranked(channel_id, message_id, payload, Instant::now())
            .await
    }

    /// [`Self::edit_message`] ranked for global tokens by `rank` (older first).
    pub async fn edit_message_ranked(
        &self,
        channel_id: &str,
        message_id: &str,
        payload: &MessagePayload,
        rank: Instant,
    ) -> Result<Message, DiscordError> {
        check_snowflake(channel_id)?;
        check_snowflake(message_id)?;
        let body =
            serde_json::to_value(payload).map_err(|e| DiscordError::Invalid(e.to_string()))?;
        let key = BucketKey::new(routes::EDIT_MESSAGE, channel_id);
        self.request_json_ranked(
            reqwest::Method::PATCH,
            format!("/channels/{channel_id}/messages/{message_id}"),
            key,
            Some(body),
            Via::Bot,
            rank,
        )
        .await
    }

    /// `PATCH /webhooks/{application_id}/{token}/messages/@original`: edits
    /// an interaction's first answer (a deferred one's "thinking…" becomes
    /// `content`). The token stays out of logs and errors; the bucket is
    /// keyed by the interaction ID, one per token.
    pub async fn edit_original_response(
        &self,
        application_id: &str,
        interaction_id: &str,
        token: &Secret,
        content: &str,
    ) -> Result<(), DiscordError> {
        check_snowflake(application_id)?;
        check_snowflake(interaction_id)?;
        let t = token.expose();
        if t.is_empty()
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(DiscordError::Invalid(
                "an interaction token has only letters, digits, '-', '_' and '.'".to_owned(),
            ));
        }
        let body = json!({ "content": content, "allowed_mentions": { "parse": [] } });
        self.request(
            reqwest::Method::PATCH,
            &format!("/webhooks/{application_id}/{t}/messages/@original"),
            BucketKey::new(routes::EDIT_ORIGINAL, interaction_id),
            Some(&body),
            Via::Webhook,
            Instant::now(),
        )
        .await
        .map(drop)
    }

    async fn request_json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: String,
        key: BucketKey,
        body: Option<Value>,
        via: Via,
    ) -> Result<T, DiscordError> {
        self.request_json_ranked(method, path, key, body, via, Instant::now())
            .await
    }

    async fn request_json_ranked<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: String,
        key: BucketKey,
        body: Option<Value>,
        via: Via,
        rank: Instant,
    ) -> Result<T, DiscordError> {
        let bytes = self
            .request(method, &path, key, body.as_ref(), via, rank)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| DiscordError::Decode(e.to_string()))
    }

    /// One logical request with rate limiting and retries; `rank` orders it
    /// for global tokens (oldest first, see [`RateLimiter::acquire_ranked`]).
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: BucketKey,
        body: Option<&Value>,
        via: Via,
        rank: Instant,
    ) -> Result<Vec<u8>, DiscordError> {
        let inner = &self.inner;
        let opts = &inner.options;
        let endpoint = inner.endpoint.load_full();
        let url = format!("{}{path}", endpoint.api_url);
        // What logs may show: a webhook path holds the interaction's token.
        let path = if via == Via::Webhook { key.route } else { path };
        let bot = via != Via::Webhook;
        let mut failures = 0u32;
        let mut limited = 0u32;
        loop {
            if via == Via::Bot && inner.token_rejected.load(Ordering::Relaxed) {
                return Err(DiscordError::Unauthorized {
                    message:
                        "the token was rejected earlier; not sending until a token check passes"
                            .to_owned(),
                });
            }
            let invalid = inner.limiter.invalid_count();
            inner.metrics.set_invalid_requests(invalid);
            if invalid >= opts.invalid_request_guard {
                return Err(DiscordError::InvalidRequestGuard {
                    count: invalid,
                    limit: opts.invalid_request_guard,
                });
            }
            if via == Via::Bot && !inner.fence.is_open() {
                return Err(DiscordError::Fenced);
            }
            let permit = if bot {
                inner.limiter.acquire_ranked(key.clone(), rank).await
            } else {
                inner.limiter.acquire_unbound(key.clone()).await
            };
            // Passed after the rate-limit wait, held until the answer: a
            // replica losing the lease sends nothing once its fence closes.
            let pass = if via != Via::Bot {
                None
            } else {
                match inner.fence.enter() {
                    Some(pass) => Some(pass),
                    None => {
                        drop(permit);
                        return Err(DiscordError::Fenced);
                    }
                }
            };
            let mut req = inner.http.request(method.clone(), &url);
            if bot {
                req = req.header(http::header::AUTHORIZATION, endpoint.auth.clone());
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = async {
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let bytes = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, bytes))
            }
            .await;
            drop(pass);
            let (status, headers, bytes) = match sent {
                Ok(parts) => parts,
                Err(e) => {
                    permit.complete(None);
                    failures += 1;
                    let err = DiscordError::Transport(e.without_url().to_string());
                    if failures >= opts.max_attempts {
                        return Err(err);
                    }
                    inner.metrics.retry("transport");
                    tracing::debug!(%path, error = %err, attempt = failures, "Discord request failed; retrying");
                    tokio::time::sleep(opts.backoff.delay(failures - 1, random_jitter())).await;
                    continue;
                }
            };
            let info = ResponseInfo::from_parts(status, &headers, &bytes);
            permit.complete(Some(&info));
            match status {
                200..=299 => return Ok(bytes.to_vec()),
                429 => {
                    let scope = info.scope.map_or("unknown", Scope::as_str);
                    inner.metrics.rate_limited(scope);
                    inner
                        .metrics
                        .set_invalid_requests(inner.limiter.invalid_count());
                    limited += 1;
                    let retry_after = info.retry_after.unwrap_or_default();
                    tracing::warn!(%path, scope, ?retry_after, "Discord answered 429");
                    if limited > opts.max_rate_limited {
                        return Err(DiscordError::RateLimited {
                            scope: scope.to_owned(),
                            retry_after,
                        });
                    }
                    inner.metrics.retry("rate_limited");
                    if info.scope.is_none() && info.limit.is_none() {
                        // No bucket, no scope: e.g. a Cloudflare ban page. Wait before anything else.
                        tokio::time::sleep(
                            retry_after.max(opts.backoff.delay(limited - 1, random_jitter())),
                        )
                        .await;
                    }
                }
                401 if bot => {
                    inner.token_rejected.store(true, Ordering::Relaxed);
                    let err = DiscordError::from_response(status, &bytes);
                    if let Some(latch) = &inner.latch {
                        latch.set_not_ready(format!("Discord rejected the bot token: {err}"));
                    }
                    tracing::error!(error = %err, "Discord rejected the bot token; not sending until a token check passes");
                    return Err(err);
                }
                500..=599 => {
                    failures += 1;
                    if failures >= opts.max_attempts {
                        return Err(DiscordError::Server { status });
                    }
                    inner.metrics.retry("server");
                    tokio::time::sleep(opts.backoff.delay(failures - 1, random_jitter())).await;
                }
                _ => return Err(DiscordError::from_response(status, &bytes)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snowflakes_are_checked_before_building_a_path() {
        assert!(check_snowflake("123").is_ok());
        assert!(check_snowflake("../users").is_err());
        assert!(check_snowflake("").is_err());
    }

    #[test]
    fn token_is_not_in_debug() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = DiscordClient::with_options(
            ClientOptions::new(
                "http://127.0.0.1:1/api/v10",
                Secret::new("super-secret-token"),
            ),
            DiscordMetrics::unregistered(),
            None,
        )
        .expect("client");
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("super-secret-token"), "{dbg}");
    }
}
