//! Interactions over HTTP: what Discord sends to the application's
//! Interactions Endpoint URL when a user clicks a button or submits a modal,
//! and the rules for answering (`discord-api.md` §3).
//!
//! This module owns:
//! - Building Discord's interaction payloads: MESSAGE_COMPONENT (type 3) for a
//!   click on a button of a stored message (the button must exist and be an
//!   interactive, enabled one), MODAL_SUBMIT (type 5) for a modal the service
//!   opened, PING (type 1).
//! - Signing and delivering them as Discord does: `X-Signature-Ed25519` is the
//!   hex Ed25519 signature of `X-Signature-Timestamp` (Unix seconds) followed
//!   by the raw body.
//! - The first-answer rules: within `interaction_deadline` (3 s), either
//!   inline (200 `{type, data}`) or by `POST /interactions/{id}/{token}/callback`
//!   (204; 200 with `?with_response=true`). A second acknowledgement gets
//!   400/40060 "Interaction has already been acknowledged."; after the
//!   deadline without an answer the interaction fails and callbacks get
//!   404/10062 "Unknown interaction". Callback types per interaction type
//!   (9 not for MODAL_SUBMIT or PING; PONG only for PING, and only inline);
//!   bodies validated by [`super::validate::validate_callback`].
//! - What an accepted answer does: type 4 posts a message (kept out of the
//!   channel when EPHEMERAL), 5 a "thinking" message (LOADING), 6 makes the
//!   clicked message the original, 7 edits it, 9 opens a modal.
//! - The record of every interaction and of every answer, accepted or not,
//!   and the raw building blocks for security tests (build, sign, post,
//!   replay).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::validate::{self, EPHEMERAL, LOADING, MESSAGE_COMPONENT, MODAL_SUBMIT, PING};
use super::{DiscordEmulator, Inner, Shared, StoredMessage, error, json_response};

/// The `User-Agent` Discord sends to interaction endpoints.
const DISCORD_USER_AGENT: &str = "Discord-Interactions/1.0 (+https://discord.com)";

/// What a member of the emulator's guild may do (VIEW_CHANNEL, SEND_MESSAGES,
/// EMBED_LINKS, READ_MESSAGE_HISTORY, ADD_REACTIONS, USE_APPLICATION_COMMANDS).
const MEMBER_PERMISSIONS: u64 =
    (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16) | (1 << 6) | (1 << 31);

/// What the bot may do in its channels (the member set plus MANAGE_MESSAGES).
const APP_PERMISSIONS: u64 = MEMBER_PERMISSIONS | (1 << 13);

/// Which interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InteractionKind {
    /// Type 1, sent when the endpoint URL is saved.
    Ping,
    /// Type 3, a click on a button.
    MessageComponent,
    /// Type 5, a submitted modal.
    ModalSubmit,
}

impl InteractionKind {
    /// Discord's `type` number.
    pub fn code(self) -> u64 {
        match self {
            Self::Ping => PING,
            Self::MessageComponent => MESSAGE_COMPONENT,
            Self::ModalSubmit => MODAL_SUBMIT,
        }
    }
}

/// How an answer reached the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerVia {
    /// In the HTTP response to the delivery.
    Inline,
    /// By `POST /interactions/{id}/{token}/callback`.
    Callback,
    /// In the HTTP response to a replayed delivery ([`DiscordEmulator::replay`]).
    Replay,
}

/// One answer the service gave to an interaction, accepted or not.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// How it came.
    pub via: AnswerVia,
    /// Time since the interaction was issued.
    pub after: Duration,
    /// The callback `type`, when there was one.
    pub callback_type: Option<u64>,
    /// The callback `data` (`null` when absent).
    pub data: Value,
    /// Whether it was taken as the interaction's response.
    pub accepted: bool,
    /// The error Discord answered (callbacks) or would have (inline), when refused.
    pub error: Option<Value>,
}

impl Answer {
    /// `data.flags`, 0 when absent.
    pub fn flags(&self) -> u64 {
        self.data.get("flags").and_then(Value::as_u64).unwrap_or(0)
    }

    /// Whether the answer asked for an EPHEMERAL (64) message.
    pub fn is_ephemeral(&self) -> bool {
        self.flags() & EPHEMERAL != 0
    }
}

/// Why an interaction failed ("This interaction failed" in the client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// No valid answer within the deadline.
    NoAnswer,
    /// The endpoint answered the delivery with this non-2xx status.
    EndpointStatus(u16),
    /// The endpoint's inline answer was invalid.
    InvalidAnswer,
    /// The endpoint could not be reached.
    Unreachable(String),
}

/// Where an interaction stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractionState {
    /// Issued, not answered yet, deadline not passed.
    Pending,
    /// A valid first answer arrived in time.
    Acknowledged,
    /// It failed; its token is dead.
    Failed(FailReason),
}

/// An interaction as the emulator recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct InteractionRecord {
    /// Snowflake.
    pub id: String,
    /// The continuation token.
    pub token: String,
    /// Which interaction.
    pub kind: InteractionKind,
    /// The JSON sent to the endpoint.
    pub payload: Value,
    /// The channel of the clicked message.
    pub channel_id: Option<String>,
    /// The clicked message (for a modal submit: the message of the click that opened it).
    pub message_id: Option<String>,
    /// Who clicked or submitted.
    pub user_id: Option<String>,
    /// The button's (or the modal's) `custom_id`.
    pub custom_id: Option<String>,
    /// For a modal submit: the interaction whose answer opened the modal.
    pub parent_id: Option<String>,
    /// The endpoint's HTTP status for the delivery.
    pub endpoint_status: Option<u16>,
    /// The endpoint's HTTP body for the delivery (at most 64 KiB, lossy UTF-8).
    pub endpoint_body: Option<String>,
    /// Where it stands.
    pub state: InteractionState,
    /// Every answer, in order of arrival.
    pub answers: Vec<Answer>,
    /// The original response's message (type 4/5: the message it created;
    /// 6/7: the clicked message).
    pub original_message_id: Option<String>,
    /// Follow-up messages, in order.
    pub followup_ids: Vec<String>,
    /// Messages only the user sees (EPHEMERAL original or follow-ups); the
    /// others are in their channel ([`DiscordEmulator::messages`]).
    pub ephemeral_messages: Vec<StoredMessage>,
    /// The modal it opened (the accepted type 9 `data`).
    pub modal: Option<Value>,
    /// Whether that modal was submitted and the submit acknowledged (the modal closed).
    pub modal_submitted: bool,
    /// Endpoint statuses for replays of this delivery.
    pub replays: Vec<u16>,
}

impl InteractionRecord {
    /// The accepted first answer.
    pub fn response(&self) -> Option<&Answer> {
        self.answers.iter().find(|a| a.accepted)
    }

    /// Answers refused (second acknowledgements, late or invalid answers).
    pub fn refused(&self) -> impl Iterator<Item = &Answer> {
        self.answers.iter().filter(|a| !a.accepted)
    }

    /// Whether the interaction was acknowledged.
    pub fn acknowledged(&self) -> bool {
        self.state == InteractionState::Acknowledged
    }
}

/// What a click, a modal submit or a ping came to.
#[derive(Debug, Clone, Serialize)]
pub struct InteractionReply {
    /// The interaction after it settled (acknowledged or failed).
    pub interaction: InteractionRecord,
    /// How long the delivery and the wait for an answer took.
    pub elapsed: Duration,
}

impl InteractionReply {
    /// The accepted first answer.
    pub fn response(&self) -> Option<&Answer> {
        self.interaction.response()
    }

    /// The accepted answer's callback type.
    pub fn callback_type(&self) -> Option<u64> {
        self.response().and_then(|a| a.callback_type)
    }

    /// Whether the interaction was acknowledged in time.
    pub fn acknowledged(&self) -> bool {
        self.interaction.acknowledged()
    }
}

/// An interaction built and registered but not delivered: the exact bytes
/// Discord would send, for tests that deliver (or forge) it themselves.
#[derive(Debug, Clone)]
pub struct RawInteraction {
    /// Its ID (also in the body).
    pub id: String,
    /// Its token (also in the body).
    pub token: String,
    /// The raw JSON body.
    pub body: Vec<u8>,
    /// `X-Signature-Timestamp`: Unix seconds when it was built.
    pub timestamp: String,
}

/// An endpoint's answer to a raw request.
#[derive(Debug, Clone)]
pub struct RawReply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RawReply {
    /// The body as JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How [`DiscordEmulator::replay`] re-sends a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The same bytes, timestamp and signature (a captured request sent again).
    Verbatim,
    /// The same body with a fresh timestamp and a valid signature (the same
    /// interaction ID and token delivered twice).
    Resigned,
}

/// Why the emulator could not act as the user asked.
#[derive(Debug, thiserror::Error)]
pub enum InteractionError {
    /// No Interactions Endpoint URL is set.
    #[error("no Interactions Endpoint URL is set")]
    NoEndpoint,
    /// The channel does not exist.
    #[error("unknown channel {0}")]
    UnknownChannel(String),
    /// The message does not exist in the channel.
    #[error("unknown message {0}")]
    UnknownMessage(String),
    /// The user does not exist ([`DiscordEmulator::add_user`]).
    #[error("unknown user {0}")]
    UnknownUser(String),
    /// The user cannot see the channel (another user's DM).
    #[error("user {user} cannot see channel {channel}")]
    NotInChannel {
        /// The user.
        user: String,
        /// The channel.
        channel: String,
    },
    /// The message has no button with that `custom_id`.
    #[error("message {message} has no button with custom_id {custom_id:?}")]
    NoSuchButton {
        /// The message.
        message: String,
        /// The `custom_id` asked for.
        custom_id: String,
    },
    /// A link or premium button: clicking it sends no interaction.
    #[error("button {0:?} is a link or premium button: clicking it sends no interaction")]
    NotInteractive(String),
    /// A disabled button cannot be clicked.
    #[error("button {0:?} is disabled")]
    Disabled(String),
    /// No such interaction.
    #[error("unknown interaction {0}")]
    UnknownInteraction(String),
    /// The interaction's accepted answer was not a modal.
    #[error("interaction {0} did not open a modal")]
    NoModal(String),
    /// The modal was already submitted (and closed).
    #[error("the modal of interaction {0} was already submitted")]
    ModalClosed(String),
    /// A value the client would not let the user submit.
    #[error("modal input {custom_id:?}: {problem}")]
    InvalidInput {
        /// The text input.
        custom_id: String,
        /// What is wrong.
        problem: String,
    },
    /// The endpoint did not pass the Developer Portal's check.
    #[error("endpoint check failed: {0}")]
    EndpointCheck(String),
    /// The HTTP request could not be made.
    #[error("HTTP: {0}")]
    Http(String),
}

/// An interaction and what the emulator needs to judge its answers.
#[derive(Debug)]
pub(super) struct Interaction {
    pub(super) record: InteractionRecord,
    created: Instant,
    body: Vec<u8>,
    timestamp: String,
    signature: String,
    /// Whether there is a message to update (6 and 7 allowed).
    from_message: bool,
}

impl Interaction {
    /// Whether its token still works for follow-ups.
    pub(super) fn token_alive(&self, now: Instant, lifetime: Duration) -> bool {
        now < self.created + lifetime
    }
}

fn unix_seconds() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string()
}

/// An opaque token like Discord's: URL-safe base64 of
/// `interaction:<id>:<random>`.
fn new_token(id: &str) -> String {
    let mut random = [0u8; 48];
    // The system source does not fail here; zeros would only make a token guessable in a test.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    base64url(format!("interaction:{id}:{}", hex::encode(random)).as_bytes())
}

#[cfg(test)]
pub(super) fn token_for_test(id: &str) -> String {
    new_token(id)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn position(inner: &Inner, id: &str) -> Option<usize> {
    inner.interactions.iter().position(|i| i.record.id == id)
}

/// Marks every pending interaction past its deadline as failed.
pub(super) fn sweep(inner: &mut Inner, now: Instant) {
    let deadline = inner.config.interaction_deadline;
    let mut failed = 0;
    for i in &mut inner.interactions {
        if i.record.state == InteractionState::Pending && now >= i.created + deadline {
            i.record.state = InteractionState::Failed(FailReason::NoAnswer);
            failed += 1;
        }
    }
    inner.stats.interactions_failed += failed;
}

fn fail(inner: &mut Inner, idx: usize, reason: FailReason) {
    if let Some(i) = inner.interactions.get_mut(idx)
        && i.record.state == InteractionState::Pending
    {
        i.record.state = InteractionState::Failed(reason);
        inner.stats.interactions_failed += 1;
    }
}

fn discord_error(code: u32, message: &str) -> Value {
    json!({"code": code, "message": message})
}

/// Takes an answer (callback, inline or replay) to interaction `idx`: the
/// first valid one in time is the response; everything else is refused with
/// Discord's error. `Err` carries the status and error body.
fn settle(
    inner: &mut Inner,
    idx: usize,
    via: AnswerVia,
    body: &Value,
    now: Instant,
) -> Result<(), (StatusCode, Value)> {
    sweep(inner, now);
    let Some(i) = inner.interactions.get(idx) else {
        return Err((
            StatusCode::NOT_FOUND,
            discord_error(10062, "Unknown interaction"),
        ));
    };
    let after = now.saturating_duration_since(i.created);
    let callback_type = body.get("type").and_then(Value::as_u64);
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let (kind, from_message) = (i.record.kind, i.from_message);
    let refusal = match &i.record.state {
        InteractionState::Acknowledged => {
            inner.stats.already_acknowledged += 1;
            Some((
                StatusCode::BAD_REQUEST,
                discord_error(40060, "Interaction has already been acknowledged."),
            ))
        }
        InteractionState::Failed(reason) => {
            if *reason == FailReason::NoAnswer {
                inner.stats.answered_late += 1;
            }
            if via == AnswerVia::Callback {
                inner.stats.unknown_interaction += 1;
            }
            Some((
                StatusCode::NOT_FOUND,
                discord_error(10062, "Unknown interaction"),
            ))
        }
        InteractionState::Pending => check_answer(body, kind, from_message, via).err(),
    };
    if let Some((status, err)) = refusal {
        if status == StatusCode::BAD_REQUEST && err["code"] != 40060 {
            inner.stats.invalid_answers += 1;
        }
        if let Some(i) = inner.interactions.get_mut(idx) {
            i.record.answers.push(Answer {
                via,
                after,
                callback_type,
                data,
                accepted: false,
                error: Some(err.clone()),
            });
        }
        return Err((status, err));
    }
    apply(inner, idx, callback_type.unwrap_or(0), &data);
    inner.stats.interactions_acknowledged += 1;
    if let Some(i) = inner.interactions.get_mut(idx) {
        i.record.state = InteractionState::Acknowledged;
        i.record.answers.push(Answer {
            via,
            after,
            callback_type,
            data,
            accepted: true,
            error: None,
        });
    }
    Ok(())
}

fn check_answer(
    body: &Value,
    kind: InteractionKind,
    from_message: bool,
    via: AnswerVia,
) -> Result<(), (StatusCode, Value)> {
    let invalid = |errs: Value| {
        (
            StatusCode::BAD_REQUEST,
            json!({"code": 50035, "message": "Invalid Form Body", "errors": errs}),
        )
    };
    if kind == InteractionKind::Ping && via == AnswerVia::Callback {
        // A PING is answered with PONG in the HTTP response.
        return Err(invalid(
            json!({"type": {"_errors": [{"code": "INTERACTION_CALLBACK_TYPE_INVALID", "message": "A PING is answered in the HTTP response."}]}}),
        ));
    }
    let errs = validate::validate_callback(body, kind.code(), from_message);
    if !errs.is_empty() {
        return Err(invalid(errs.to_json()));
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    if body.get("type").and_then(Value::as_u64) == Some(4) && validate::is_empty_message(&data) {
        return Err((
            StatusCode::BAD_REQUEST,
            discord_error(50006, "Cannot send an empty message"),
        ));
    }
    Ok(())
}

/// A message the interaction's application posts (a response or a follow-up).
pub(super) fn interaction_message(
    inner: &mut Inner,
    idx: usize,
    mut body: Value,
    extra_flags: u64,
) -> Option<StoredMessage> {
    let (interaction_id, channel) = {
        let i = inner.interactions.get(idx)?;
        (i.record.id.clone(), i.record.channel_id.clone()?)
    };
    let id = inner.snowflake();
    if body.get("allowed_mentions").is_none_or(Value::is_null)
        && let Some(obj) = body.as_object_mut()
    {
        // Interactions and webhooks parse only users by default.
        obj.insert("allowed_mentions".to_owned(), json!({"parse": ["users"]}));
    }
    let mut msg = StoredMessage::from_body(id, &channel, body, None);
    msg.flags |= extra_flags;
    msg.interaction_id = Some(interaction_id);
    let copy = msg.clone();
    if msg.flags & EPHEMERAL != 0 {
        inner
            .interactions
            .get_mut(idx)?
            .record
            .ephemeral_messages
            .push(msg);
    } else {
        inner.channels.get_mut(&channel)?.messages.push(msg);
    }
    Some(copy)
}

/// The message `id` as interaction `idx` may reach it: its ephemeral
/// messages first, then its channel.
pub(super) fn message_mut<'a>(
    inner: &'a mut Inner,
    idx: usize,
    id: &str,
) -> Option<&'a mut StoredMessage> {
    let Inner {
        interactions,
        channels,
        ..
    } = inner;
    let i = interactions.get_mut(idx)?;
    if let Some(m) = i.record.ephemeral_messages.iter_mut().find(|m| m.id == id) {
        return Some(m);
    }
    channels
        .get_mut(i.record.channel_id.as_deref()?)?
        .messages
        .iter_mut()
        .find(|m| m.id == id)
}

/// What an accepted answer does.
fn apply(inner: &mut Inner, idx: usize, callback_type: u64, data: &Value) {
    let clicked = inner
        .interactions
        .get(idx)
        .and_then(|i| i.record.message_id.clone());
    let original = match callback_type {
        4 => interaction_message(inner, idx, data.clone(), 0).map(|m| m.id),
        5 => {
            let ephemeral = data.get("flags").and_then(Value::as_u64).unwrap_or(0) & EPHEMERAL;
            interaction_message(inner, idx, json!({"content": ""}), LOADING | ephemeral)
                .map(|m| m.id)
        }
        6 => clicked,
        7 => {
            if let Some(id) = &clicked
                && let Some(m) = message_mut(inner, idx, id)
            {
                m.apply_edit(data.clone());
            }
            clicked
        }
        _ => None,
    };
    if let Some(i) = inner.interactions.get_mut(idx) {
        if original.is_some() {
            i.record.original_message_id = original;
        }
        if callback_type == 9 {
            i.record.modal = Some(data.clone());
        }
    }
}

/// The endpoint's answer to a delivery (or a replay).
fn take_http_answer(inner: &mut Inner, idx: usize, reply: &RawReply, via: AnswerVia, now: Instant) {
    if !(200..300).contains(&reply.status) {
        fail(inner, idx, FailReason::EndpointStatus(reply.status));
        return;
    }
    if reply.body.iter().all(u8::is_ascii_whitespace) {
        // No inline answer: a callback may still come before the deadline.
        return;
    }
    let json_type = reply
        .content_type
        .as_deref()
        .is_some_and(|c| c.trim_start().starts_with("application/json"));
    let parsed = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .filter(|_| json_type);
    let Some(body) = parsed else {
        let after = inner
            .interactions
            .get(idx)
            .map(|i| now.saturating_duration_since(i.created))
            .unwrap_or_default();
        inner.stats.invalid_answers += 1;
        if let Some(i) = inner.interactions.get_mut(idx) {
            i.record.answers.push(Answer {
                via,
                after,
                callback_type: None,
                data: Value::Null,
                accepted: false,
                error: Some(discord_error(
                    50109,
                    "The request body contains invalid JSON.",
                )),
            });
        }
        fail(inner, idx, FailReason::InvalidAnswer);
        return;
    };
    if settle(inner, idx, via, &body, now).is_err() {
        fail(inner, idx, FailReason::InvalidAnswer);
    }
}

/// An HTTP client for deliveries (plain HTTP to a loopback endpoint, or
/// HTTPS with the ring provider, installed process-wide as the product does).
pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(timeout).build()
}

async fn post<K: AsRef<str>, V: AsRef<str>>(
    url: &str,
    body: Vec<u8>,
    headers: &[(K, V)],
    timeout: Duration,
) -> Result<RawReply, reqwest::Error> {
    let client = http_client(timeout)?;
    let mut req = client.post(url).body(body);
    for (k, v) in headers {
        req = req.header(k.as_ref(), v.as_ref());
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await?.to_vec();
    Ok(RawReply {
        status,
        content_type,
        body,
    })
}

/// Where a button sits, found by its `custom_id` anywhere in a message's
/// components (rows, sections, containers); with its numeric component ID
/// (given, or counted depth-first from 1 as Discord assigns them).
fn find_button<'a>(components: &'a Value, custom_id: &str) -> Option<(&'a Value, u64)> {
    fn walk<'a>(v: &'a Value, custom_id: &str, n: &mut u64) -> Option<(&'a Value, u64)> {
        match v {
            Value::Array(items) => items.iter().find_map(|c| walk(c, custom_id, n)),
            Value::Object(obj) => {
                *n += 1;
                let id = obj.get("id").and_then(Value::as_u64).unwrap_or(*n);
                if obj.get("type").and_then(Value::as_u64) == Some(2)
                    && obj.get("custom_id").and_then(Value::as_str) == Some(custom_id)
                {
                    return Some((v, id));
                }
                ["components", "accessory", "component"]
                    .iter()
                    .filter_map(|k| obj.get(*k))
                    .find_map(|c| walk(c, custom_id, n))
            }
            _ => None,
        }
    }
    walk(components, custom_id, &mut 0)
}

/// Who acts: `member` in a guild, `user` in a DM; the guild fields.
fn actor_fields(inner: &Inner, user: &Value, channel: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    let Some(c) = inner.channels.get(channel) else {
        return out;
    };
    if c.recipient.is_some() {
        out.insert("user".to_owned(), user.clone());
        out.insert(
            "channel".to_owned(),
            json!({"id": c.id, "type": 1, "recipients": [user], "flags": 0}),
        );
        out.insert("context".to_owned(), json!(1));
        out.insert(
            "authorizing_integration_owners".to_owned(),
            json!({"0": "0"}),
        );
    } else {
        out.insert("guild_id".to_owned(), json!(inner.guild_id));
        out.insert(
            "guild".to_owned(),
            json!({"id": inner.guild_id, "locale": "en-US", "features": []}),
        );
        out.insert("guild_locale".to_owned(), json!("en-US"));
        out.insert(
            "member".to_owned(),
            json!({
                "user": user,
                "roles": [],
                "nick": null,
                "avatar": null,
                "joined_at": "2024-01-01T00:00:00.000000+00:00",
                "premium_since": null,
                "deaf": false,
                "mute": false,
                "flags": 0,
                "pending": false,
                "permissions": MEMBER_PERMISSIONS.to_string(),
            }),
        );
        out.insert(
            "channel".to_owned(),
            json!({"id": c.id, "type": c.kind, "name": c.name, "guild_id": inner.guild_id, "flags": 0}),
        );
        out.insert("context".to_owned(), json!(0));
        out.insert(
            "authorizing_integration_owners".to_owned(),
            json!({"0": inner.guild_id}),
        );
    }
    out
}

impl DiscordEmulator {
    /// The application ID (also the `application_id` of follow-up routes).
    pub fn application_id(&self) -> String {
        self.shared.app.id().to_owned()
    }

    /// The application's public key, hex, as the Developer Portal shows it.
    pub fn public_key_hex(&self) -> String {
        self.shared.app.public_key_hex()
    }

    /// Sets the "Interactions Endpoint URL" (deliveries go there from now on).
    pub fn set_interactions_endpoint(&self, url: &str) {
        self.shared.lock().endpoint = Some(url.to_owned());
    }

    /// The "Interactions Endpoint URL", if set.
    pub fn interactions_endpoint(&self) -> Option<String> {
        self.shared.lock().endpoint.clone()
    }

    /// The hex signature Discord would send for `timestamp` and `body`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        self.shared.app.sign(timestamp, body)
    }

    /// Every interaction, oldest first.
    pub fn interactions(&self) -> Vec<InteractionRecord> {
        let mut inner = self.shared.lock();
        sweep(&mut inner, Instant::now());
        inner
            .interactions
            .iter()
            .map(|i| i.record.clone())
            .collect()
    }

    /// One interaction.
    pub fn interaction(&self, id: &str) -> Option<InteractionRecord> {
        let mut inner = self.shared.lock();
        sweep(&mut inner, Instant::now());
        let idx = position(&inner, id)?;
        inner.interactions.get(idx).map(|i| i.record.clone())
    }

    /// Builds and registers (the deadline runs from now) the MESSAGE_COMPONENT
    /// interaction of `user_id` clicking the button `custom_id` of a stored
    /// message, without delivering it.
    pub fn build_interaction(
        &self,
        channel_id: &str,
        message_id: &str,
        custom_id: &str,
        user_id: &str,
    ) -> Result<RawInteraction, InteractionError> {
        let mut inner = self.shared.lock();
        let user = inner
            .users
            .get(user_id)
            .map(super::dm::User::to_json)
            .ok_or_else(|| InteractionError::UnknownUser(user_id.to_owned()))?;
        let channel = inner
            .channels
            .get(channel_id)
            .ok_or_else(|| InteractionError::UnknownChannel(channel_id.to_owned()))?;
        if channel.recipient.as_deref().is_some_and(|r| r != user_id) {
            return Err(InteractionError::NotInChannel {
                user: user_id.to_owned(),
                channel: channel_id.to_owned(),
            });
        }
        let msg = channel
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .ok_or_else(|| InteractionError::UnknownMessage(message_id.to_owned()))?;
        let (button, component_id) = find_button(&msg.components, custom_id).ok_or_else(|| {
            InteractionError::NoSuchButton {
                message: message_id.to_owned(),
                custom_id: custom_id.to_owned(),
            }
        })?;
        if !matches!(button.get("style").and_then(Value::as_u64), Some(1..=4)) {
            return Err(InteractionError::NotInteractive(custom_id.to_owned()));
        }
        if button.get("disabled").and_then(Value::as_bool) == Some(true) {
            return Err(InteractionError::Disabled(custom_id.to_owned()));
        }
        let message = msg.to_json(&inner.bot_json());
        let actor = actor_fields(&inner, &user, channel_id);
        let data = json!({"custom_id": custom_id, "component_type": 2, "id": component_id});
        let mut payload = self.base_payload(&mut inner, MESSAGE_COMPONENT, data);
        if let Some(obj) = payload.as_object_mut() {
            obj.extend(actor);
            obj.insert("channel_id".to_owned(), json!(channel_id));
            obj.insert("message".to_owned(), message);
        }
        Ok(self.register(
            &mut inner,
            payload,
            InteractionKind::MessageComponent,
            Meta {
                channel_id: Some(channel_id.to_owned()),
                message_id: Some(message_id.to_owned()),
                user_id: Some(user_id.to_owned()),
                custom_id: Some(custom_id.to_owned()),
                parent_id: None,
                from_message: true,
            },
        ))
    }

    /// `user_id` clicks the button `custom_id` of a stored message: the
    /// MESSAGE_COMPONENT interaction is delivered, signed, to the endpoint,
    /// and the call returns once it is acknowledged or has failed.
    pub async fn click(
        &self,
        channel_id: &str,
        message_id: &str,
        custom_id: &str,
        user_id: &str,
    ) -> Result<InteractionReply, InteractionError> {
        if self.interactions_endpoint().is_none() {
            return Err(InteractionError::NoEndpoint);
        }
        let raw = self.build_interaction(channel_id, message_id, custom_id, user_id)?;
        self.deliver(&raw).await
    }

    /// Sends a PING (type 1); the endpoint must answer 200 `{"type":1}`.
    pub async fn ping(&self) -> Result<InteractionReply, InteractionError> {
        let raw = self.build_ping()?;
        self.deliver(&raw).await
    }

    pub(super) fn build_ping(&self) -> Result<RawInteraction, InteractionError> {
        let mut inner = self.shared.lock();
        if inner.endpoint.is_none() {
            return Err(InteractionError::NoEndpoint);
        }
        let payload = self.base_payload(&mut inner, PING, Value::Null);
        Ok(self.register(&mut inner, payload, InteractionKind::Ping, Meta::default()))
    }

    /// What the Developer Portal does when the endpoint URL is saved: a PING
    /// with a wrong signature must get 401, a valid one a PONG.
    pub async fn verify_endpoint(&self) -> Result<(), InteractionError> {
        let url = self
            .interactions_endpoint()
            .ok_or(InteractionError::NoEndpoint)?;
        let raw = self.build_ping()?;
        let forged = self.sign(&raw.timestamp, b"{}");
        let reply = post(
            &url,
            raw.body.clone(),
            &signed_headers(&raw.timestamp, &forged),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| InteractionError::Http(e.to_string()))?;
        if reply.status != 401 {
            return Err(InteractionError::EndpointCheck(format!(
                "a PING with an invalid signature got {}, not 401",
                reply.status
            )));
        }
        let ping = self.ping().await?;
        if ping.callback_type() != Some(1) {
            return Err(InteractionError::EndpointCheck(format!(
                "a valid PING was not answered with PONG: {:?}",
                ping.interaction.state
            )));
        }
        Ok(())
    }

    /// Submits the modal that interaction `interaction_id`'s answer opened,
    /// as the user who clicked: `values` are (text input `custom_id`, typed
    /// text); inputs not named are left empty. The client's checks apply
    /// (required inputs, min/max length), then the MODAL_SUBMIT is delivered
    /// like a click.
    pub async fn submit_modal(
        &self,
        interaction_id: &str,
        values: &[(&str, &str)],
    ) -> Result<InteractionReply, InteractionError> {
        let raw = self.build_modal_submit(interaction_id, values)?;
        let reply = self.deliver(&raw).await?;
        if reply.acknowledged() {
            let mut inner = self.shared.lock();
            if let Some(idx) = position(&inner, interaction_id)
                && let Some(parent) = inner.interactions.get_mut(idx)
            {
                parent.record.modal_submitted = true;
            }
        }
        Ok(reply)
    }

    /// Builds and registers the MODAL_SUBMIT for the modal interaction
    /// `interaction_id` opened, without delivering it.
    pub fn build_modal_submit(
        &self,
        interaction_id: &str,
        values: &[(&str, &str)],
    ) -> Result<RawInteraction, InteractionError> {
        let mut inner = self.shared.lock();
        if inner.endpoint.is_none() {
            return Err(InteractionError::NoEndpoint);
        }
        let idx = position(&inner, interaction_id)
            .ok_or_else(|| InteractionError::UnknownInteraction(interaction_id.to_owned()))?;
        let parent = &inner.interactions[idx];
        let modal = parent
            .record
            .modal
            .clone()
            .ok_or_else(|| InteractionError::NoModal(interaction_id.to_owned()))?;
        if parent.record.modal_submitted {
            return Err(InteractionError::ModalClosed(interaction_id.to_owned()));
        }
        let parent_payload = parent.record.payload.clone();
        let meta = Meta {
            channel_id: parent.record.channel_id.clone(),
            message_id: parent.record.message_id.clone(),
            user_id: parent.record.user_id.clone(),
            custom_id: modal
                .get("custom_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parent_id: Some(interaction_id.to_owned()),
            from_message: parent.record.message_id.is_some(),
        };
        let components = submitted_components(&modal, values)?;
        let data = json!({"custom_id": meta.custom_id, "components": components});
        let mut payload = self.base_payload(&mut inner, MODAL_SUBMIT, data);
        // The current state of the message the modal was opened from.
        let message = meta.channel_id.as_deref().and_then(|c| {
            let m = meta.message_id.as_deref()?;
            let msg = inner.channels.get(c)?.messages.iter().find(|x| x.id == m)?;
            Some(msg.to_json(&inner.bot_json()))
        });
        if let (Some(obj), Some(parent)) = (payload.as_object_mut(), parent_payload.as_object()) {
            for (k, v) in parent {
                if !matches!(k.as_str(), "id" | "type" | "token" | "data") {
                    obj.insert(k.clone(), v.clone());
                }
            }
            if let Some(m) = message {
                obj.insert("message".to_owned(), m);
            }
        }
        Ok(self.register(&mut inner, payload, InteractionKind::ModalSubmit, meta))
    }

    fn base_payload(&self, inner: &mut Inner, kind: u64, data: Value) -> Value {
        let id = inner.snowflake();
        let mut v = json!({
            "id": id,
            "application_id": self.shared.app.id(),
            "type": kind,
            "token": new_token(&id),
            "version": 1,
            "app_permissions": APP_PERMISSIONS.to_string(),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10_485_760,
        });
        if !data.is_null()
            && let Some(obj) = v.as_object_mut()
        {
            obj.insert("data".to_owned(), data);
        }
        v
    }

    fn register(
        &self,
        inner: &mut Inner,
        payload: Value,
        kind: InteractionKind,
        meta: Meta,
    ) -> RawInteraction {
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let timestamp = unix_seconds();
        let signature = self.shared.app.sign(&timestamp, &body);
        let str_field = |k: &str| {
            payload
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (id, token) = (str_field("id"), str_field("token"));
        inner.interactions.push(Interaction {
            record: InteractionRecord {
                id: id.clone(),
                token: token.clone(),
                kind,
                payload,
                channel_id: meta.channel_id,
                message_id: meta.message_id,
                user_id: meta.user_id,
                custom_id: meta.custom_id,
                parent_id: meta.parent_id,
                endpoint_status: None,
                endpoint_body: None,
                state: InteractionState::Pending,
                answers: Vec::new(),
                original_message_id: None,
                followup_ids: Vec::new(),
                ephemeral_messages: Vec::new(),
                modal: None,
                modal_submitted: false,
                replays: Vec::new(),
            },
            created: Instant::now(),
            body: body.clone(),
            timestamp: timestamp.clone(),
            signature,
            from_message: meta.from_message,
        });
        RawInteraction {
            id,
            token,
            body,
            timestamp,
        }
    }

    /// Delivers a registered interaction (its registered body, whatever
    /// `raw.body` holds now) to the endpoint, signed, and waits until it is
    /// acknowledged or has failed.
    pub async fn deliver(
        &self,
        raw: &RawInteraction,
    ) -> Result<InteractionReply, InteractionError> {
        let started = Instant::now();
        let (url, body, timestamp, signature, deadline_at, observe) = {
            let mut inner = self.shared.lock();
            let url = inner.endpoint.clone().ok_or(InteractionError::NoEndpoint)?;
            let deadline = inner.config.interaction_deadline;
            let idx = position(&inner, &raw.id)
                .ok_or_else(|| InteractionError::UnknownInteraction(raw.id.clone()))?;
            let i = &inner.interactions[idx];
            let out = (
                url,
                i.body.clone(),
                i.timestamp.clone(),
                i.signature.clone(),
                i.created + deadline,
                // Keep the connection a little past the deadline to see late answers.
                deadline + deadline.min(Duration::from_secs(1)),
            );
            inner.stats.interactions_delivered += 1;
            out
        };
        let sent = post(&url, body, &signed_headers(&timestamp, &signature), observe).await;
        {
            let mut inner = self.shared.lock();
            let now = Instant::now();
            if let Some(idx) = position(&inner, &raw.id) {
                match &sent {
                    Ok(reply) => {
                        if let Some(i) = inner.interactions.get_mut(idx) {
                            i.record.endpoint_status = Some(reply.status);
                            let shown = &reply.body[..reply.body.len().min(64 * 1024)];
                            i.record.endpoint_body =
                                Some(String::from_utf8_lossy(shown).into_owned());
                        }
                        take_http_answer(&mut inner, idx, reply, AnswerVia::Inline, now);
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(e) => fail(&mut inner, idx, FailReason::Unreachable(e.to_string())),
                }
            }
        }
        self.shared.settled.notify_waiters();
        self.wait_settled(&raw.id, deadline_at).await;
        let interaction = self
            .interaction(&raw.id)
            .ok_or_else(|| InteractionError::UnknownInteraction(raw.id.clone()))?;
        Ok(InteractionReply {
            interaction,
            elapsed: started.elapsed(),
        })
    }

    async fn wait_settled(&self, id: &str, deadline_at: Instant) {
        loop {
            let notified = self.shared.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            {
                let mut inner = self.shared.lock();
                sweep(&mut inner, now);
                let pending = position(&inner, id)
                    .and_then(|idx| inner.interactions.get(idx))
                    .is_some_and(|i| i.record.state == InteractionState::Pending);
                if !pending {
                    return;
                }
            }
            let _ = tokio::time::timeout_at(deadline_at, notified).await;
        }
    }

    /// POSTs `body` to `url` with exactly `headers` (nothing is signed or
    /// recorded): for forged, unsigned or tampered deliveries.
    pub async fn post_raw(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(String, String)],
    ) -> Result<RawReply, InteractionError> {
        post(url, body, headers, Duration::from_secs(10))
            .await
            .map_err(|e| InteractionError::Http(e.to_string()))
    }

    /// Delivers an interaction already delivered again (same ID, token and
    /// body), as a replaying attacker or a duplicate delivery would. An
    /// inline answer to it is judged like any other (a second
    /// acknowledgement is refused with 40060) and recorded.
    pub async fn replay(
        &self,
        interaction_id: &str,
        how: Replay,
    ) -> Result<RawReply, InteractionError> {
        let (url, body, timestamp, signature) = {
            let inner = self.shared.lock();
            let url = inner.endpoint.clone().ok_or(InteractionError::NoEndpoint)?;
            let idx = position(&inner, interaction_id)
                .ok_or_else(|| InteractionError::UnknownInteraction(interaction_id.to_owned()))?;
            let i = &inner.interactions[idx];
            match how {
                Replay::Verbatim => (
                    url,
                    i.body.clone(),
                    i.timestamp.clone(),
                    i.signature.clone(),
                ),
                Replay::Resigned => {
                    let ts = unix_seconds();
                    let sig = self.shared.app.sign(&ts, &i.body);
                    (url, i.body.clone(), ts, sig)
                }
            }
        };
        let reply = post(
            &url,
            body,
            &signed_headers(&timestamp, &signature),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| InteractionError::Http(e.to_string()))?;
        {
            let mut inner = self.shared.lock();
            if let Some(idx) = position(&inner, interaction_id) {
                if let Some(i) = inner.interactions.get_mut(idx) {
                    i.record.replays.push(reply.status);
                }
                let state = inner.interactions.get(idx).map(|i| i.record.state.clone());
                if (200..300).contains(&reply.status) && state != Some(InteractionState::Pending) {
                    // Only an answer counts here; a replay's error status does not fail the original.
                    if !reply.body.iter().all(u8::is_ascii_whitespace)
                        && let Ok(v) = serde_json::from_slice::<Value>(&reply.body)
                    {
                        let _ = settle(&mut inner, idx, AnswerVia::Replay, &v, Instant::now());
                    }
                } else if state == Some(InteractionState::Pending) {
                    take_http_answer(&mut inner, idx, &reply, AnswerVia::Replay, Instant::now());
                }
            }
        }
        self.shared.settled.notify_waiters();
        Ok(reply)
    }
}

fn signed_headers(timestamp: &str, signature: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        ("user-agent", DISCORD_USER_AGENT.to_owned()),
        ("x-signature-ed25519", signature.to_owned()),
        ("x-signature-timestamp", timestamp.to_owned()),
    ]
}

/// What a registered interaction is about.
#[derive(Debug, Default)]
struct Meta {
    channel_id: Option<String>,
    message_id: Option<String>,
    user_id: Option<String>,
    custom_id: Option<String>,
    parent_id: Option<String>,
    from_message: bool,
}

/// The `data.components` of a MODAL_SUBMIT for `modal` with `values`, in
/// the modal's shape: a Label gives `{type: 18, id, component: {type: 4, id,
/// custom_id, value}}`, a legacy row `{type: 1, id, components: [{type: 4,
/// id, custom_id, value}]}`, a text display `{type: 10, id}`; selects in a
/// label carry `values`. The client's own checks come first.
fn submitted_components(modal: &Value, values: &[(&str, &str)]) -> Result<Value, InteractionError> {
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let top = list(modal, "components");
    let known: Vec<String> = top.iter().flat_map(input_ids).collect();
    if let Some((unknown, _)) = values.iter().find(|(k, _)| !known.iter().any(|x| x == k)) {
        return Err(InteractionError::InvalidInput {
            custom_id: (*unknown).to_owned(),
            problem: "the modal has no such input".to_owned(),
        });
    }
    let given: HashMap<&str, &str> = values.iter().copied().collect();
    let mut n = 0u64;
    let mut next_id = |c: &Value| {
        n += 1;
        c.get("id").and_then(Value::as_u64).unwrap_or(n)
    };
    let mut out = Vec::new();
    for c in &top {
        let id = next_id(c);
        match c.get("type").and_then(Value::as_u64) {
            Some(18) => {
                let child = c.get("component").cloned().unwrap_or(Value::Null);
                let child_id = next_id(&child);
                let inner = if child.get("type").and_then(Value::as_u64) == Some(4) {
                    text_input(&child, child_id, &given)?
                } else {
                    let custom_id = child
                        .get("custom_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let picked: Vec<&str> = given.get(custom_id).copied().into_iter().collect();
                    json!({"type": child.get("type"), "id": child_id, "custom_id": custom_id, "values": picked})
                };
                out.push(json!({"type": 18, "id": id, "component": inner}));
            }
            Some(1) => {
                let mut row = Vec::new();
                for child in list(c, "components") {
                    let child_id = next_id(&child);
                    row.push(text_input(&child, child_id, &given)?);
                }
                out.push(json!({"type": 1, "id": id, "components": row}));
            }
            Some(t) => out.push(json!({"type": t, "id": id})),
            None => {}
        }
    }
    Ok(Value::Array(out))
}

/// A submitted text input, after the client's checks: a required input
/// must not be empty, a non-empty value must fit `min_length..=max_length`.
fn text_input(c: &Value, id: u64, given: &HashMap<&str, &str>) -> Result<Value, InteractionError> {
    let custom_id = c
        .get("custom_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let value = given.get(custom_id).copied().unwrap_or_default();
    let bad = |problem: String| InteractionError::InvalidInput {
        custom_id: custom_id.to_owned(),
        problem,
    };
    let len = value.chars().count() as u64;
    let required = c.get("required").and_then(Value::as_bool).unwrap_or(true);
    if required && len == 0 {
        return Err(bad("required".to_owned()));
    }
    let min = c.get("min_length").and_then(Value::as_u64).unwrap_or(0);
    let max = c.get("max_length").and_then(Value::as_u64).unwrap_or(4000);
    if len > 0 && (len < min || len > max) {
        return Err(bad(format!("length {len} is outside {min}..={max}")));
    }
    Ok(json!({"type": 4, "id": id, "custom_id": custom_id, "value": value}))
}

fn input_ids(c: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for child in c.get("component").into_iter().chain(
        c.get("components")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    ) {
        if let Some(id) = child.get("custom_id").and_then(Value::as_str) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// `POST /interactions/{interaction.id}/{interaction.token}/callback`: not
/// bound to the global limit, no bot `Authorization` needed.
pub(super) async fn callback(
    State(s): State<Arc<Shared>>,
    Path((id, token)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let resp = callback_sync(&s, &id, &token, query.as_deref(), &headers, &body);
    s.settled.notify_waiters();
    resp
}

fn callback_sync(
    s: &Shared,
    id: &str,
    token: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let now = Instant::now();
    let mut inner = s.lock();
    if let Err(r) = super::arrive(&mut inner, headers, now) {
        return r;
    }
    sweep(&mut inner, now);
    let Some(idx) = inner
        .interactions
        .iter()
        .position(|i| i.record.id == id && i.record.token == token)
    else {
        inner.stats.unknown_interaction += 1;
        return error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        inner.stats.invalid_answers += 1;
        return error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        );
    };
    match settle(&mut inner, idx, AnswerVia::Callback, &v, now) {
        Err((status, err)) => json_response(status, &err),
        Ok(()) => {
            let with_response = query.is_some_and(|q| {
                q.split('&')
                    .any(|kv| kv.eq_ignore_ascii_case("with_response=true"))
            });
            if !with_response {
                return StatusCode::NO_CONTENT.into_response();
            }
            let bot = inner.bot_json();
            let callback_type = v.get("type").and_then(Value::as_u64).unwrap_or(0);
            let i = &inner.interactions[idx];
            let original = i.record.original_message_id.clone();
            let kind = i.record.kind.code();
            let message = original.as_deref().and_then(|m| {
                i.record
                    .ephemeral_messages
                    .iter()
                    .find(|x| x.id == m)
                    .or_else(|| {
                        inner
                            .channels
                            .get(i.record.channel_id.as_deref()?)?
                            .messages
                            .iter()
                            .find(|x| x.id == m)
                    })
                    .map(|x| x.to_json(&bot))
            });
            let flags = message
                .as_ref()
                .and_then(|m| m.get("flags"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let mut resource = json!({"type": callback_type});
            if let (Some(m), Some(obj)) = (message, resource.as_object_mut())
                && matches!(callback_type, 4 | 5 | 7)
            {
                obj.insert("message".to_owned(), m);
            }
            json_response(
                StatusCode::OK,
                &json!({
                    "interaction": {
                        "id": id,
                        "type": kind,
                        "activity_instance_id": null,
                        "response_message_id": original,
                        "response_message_loading": flags & LOADING != 0,
                        "response_message_ephemeral": flags & EPHEMERAL != 0,
                    },
                    "resource": resource,
                }),
            )
        }
    }
}
