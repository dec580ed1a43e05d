//! The interaction webhook routes (`discord-api.md` §3.3): follow-ups and
//! edits of an interaction's messages, reached with the interaction's token
//! in the path, with no bot `Authorization`.
//!
//! - `POST /webhooks/{application_id}/{token}`: a follow-up message (`wait`
//!   is always true: 200 with the message). EPHEMERAL (64) keeps it out of
//!   the channel.
//! - `PATCH /webhooks/{application_id}/{token}/messages/@original` and
//!   `…/messages/{message_id}`: edits the original response (which must
//!   exist: callback 4, 5, 6 or 7 accepted; an edit clears a deferred
//!   response's LOADING flag) or one of the interaction's follow-ups.
//! - `GET …/messages/@original` and `…/messages/{message_id}`.
//!
//! A token works from its interaction's acknowledgement until
//! `interaction_token_lifetime` (15 minutes) after the interaction was
//! issued; otherwise, and for an unknown application or token, 404/10015
//! "Unknown Webhook". A message the token cannot reach is 404/10008.
//! Bodies are validated as interaction messages (content ≤ 2000, embeds,
//! components, allowed mentions; flags: SUPPRESS_EMBEDS, EPHEMERAL,
//! SUPPRESS_NOTIFICATIONS, IS_VOICE_MESSAGE, IS_COMPONENTS_V2 on create,
//! SUPPRESS_EMBEDS and IS_COMPONENTS_V2 on edit); an empty follow-up is
//! 400/50006.
//!
//! Limits: not bound to the bot's global limit. Every route here shares one
//! bucket per token ([`super::WEBHOOK_BUCKET`], `webhook_limit` per
//! `webhook_window`, 5 per 2 s by default: the emulator's choice, after the
//! "5/2s per interaction" observed in discord-api-docs#2701, which Discord
//! answered by saying these are webhook limits keyed by interaction), with
//! the usual `X-RateLimit-*` headers; a 429 there has scope `user` and
//! counts as an invalid request. The Cloudflare ban covers these routes too.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tokio::time::Instant;

use super::interactions::{InteractionState, interaction_message, message_mut, sweep};
use super::validate::{self, LOADING};
use super::{
    BucketHeaders, Inner, Scope, Shared, WEBHOOK_BUCKET, error, json_response, parse_body,
    too_many, with_bucket,
};

/// The token's interaction and its bucket state, or the answer.
fn admit_webhook(
    inner: &mut Inner,
    headers: &HeaderMap,
    application: &str,
    token: &str,
    app_id: &str,
    now: Instant,
) -> Result<(usize, BucketHeaders), Response> {
    super::arrive(inner, headers, now)?;
    sweep(inner, now);
    let lifetime = inner.config.interaction_token_lifetime;
    let idx = inner.interactions.iter().position(|i| {
        application == app_id
            && i.record.token == token
            && i.record.state == InteractionState::Acknowledged
            && i.token_alive(now, lifetime)
    });
    let Some(idx) = idx else {
        inner.stats.unknown_webhook += 1;
        return Err(error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook"));
    };
    let (limit, len) = (inner.config.webhook_limit, inner.config.webhook_window);
    match inner
        .webhook_windows
        .entry(token.to_owned())
        .or_default()
        .hit(now, limit, len)
    {
        Ok((remaining, reset_after)) => Ok((
            idx,
            BucketHeaders {
                limit,
                remaining,
                reset_after,
                bucket: WEBHOOK_BUCKET,
            },
        )),
        Err(retry) => {
            inner.stats.webhook_rate_limited += 1;
            inner.invalid(now);
            Err(too_many(
                Scope::User,
                retry,
                Some(BucketHeaders {
                    limit,
                    remaining: 0,
                    reset_after: retry,
                    bucket: WEBHOOK_BUCKET,
                }),
            ))
        }
    }
}

/// `POST /webhooks/{application_id}/{token}`: a follow-up message.
pub(super) async fn create_followup(
    State(s): State<Arc<Shared>>,
    Path((application, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let mut inner = s.lock();
    let (idx, bucket) =
        match admit_webhook(&mut inner, &headers, &application, &token, s.app.id(), now) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let body = match parse_body(&body, validate::Kind::InteractionMessage) {
        Ok(b) => b,
        Err(r) => return with_bucket(r, bucket),
    };
    if validate::is_empty_message(&body) {
        return with_bucket(
            error(
                StatusCode::BAD_REQUEST,
                50006,
                "Cannot send an empty message",
            ),
            bucket,
        );
    }
    let Some(msg) = interaction_message(&mut inner, idx, body, 0) else {
        return with_bucket(
            error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"),
            bucket,
        );
    };
    if let Some(i) = inner.interactions.get_mut(idx) {
        i.record.followup_ids.push(msg.id.clone());
    }
    inner.stats.followups += 1;
    let bot = inner.bot_json();
    with_bucket(json_response(StatusCode::OK, &msg.to_json(&bot)), bucket)
}

/// The message `message` (`@original` or an ID) names for interaction `idx`:
/// the original response, or a message the interaction's application posted
/// for it (its response or a follow-up).
fn resolve(inner: &Inner, idx: usize, message: &str) -> Option<String> {
    let record = &inner.interactions.get(idx)?.record;
    if message == "@original" {
        return record.original_message_id.clone();
    }
    let own = record.original_message_id.as_deref() == Some(message)
        || record.followup_ids.iter().any(|m| m == message);
    own.then(|| message.to_owned())
}

/// `PATCH /webhooks/{application_id}/{token}/messages/{@original|message_id}`.
pub(super) async fn edit_message(
    State(s): State<Arc<Shared>>,
    Path((application, token, message)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let mut inner = s.lock();
    let (idx, bucket) =
        match admit_webhook(&mut inner, &headers, &application, &token, s.app.id(), now) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let body = match parse_body(&body, validate::Kind::InteractionEdit) {
        Ok(b) => b,
        Err(r) => return with_bucket(r, bucket),
    };
    let bot = inner.bot_json();
    let target = resolve(&inner, idx, &message);
    let Some(msg) = target.and_then(|id| message_mut(&mut inner, idx, &id)) else {
        return with_bucket(
            error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
            bucket,
        );
    };
    msg.apply_edit(body);
    // Editing a deferred response ends its "thinking" state.
    msg.flags &= !LOADING;
    let resp = msg.to_json(&bot);
    inner.stats.webhook_edits += 1;
    with_bucket(json_response(StatusCode::OK, &resp), bucket)
}

/// `GET /webhooks/{application_id}/{token}/messages/{@original|message_id}`.
pub(super) async fn get_message(
    State(s): State<Arc<Shared>>,
    Path((application, token, message)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let now = Instant::now();
    let mut inner = s.lock();
    let (idx, bucket) =
        match admit_webhook(&mut inner, &headers, &application, &token, s.app.id(), now) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let bot = inner.bot_json();
    let target = resolve(&inner, idx, &message);
    let json: Option<Value> = target
        .and_then(|id| message_mut(&mut inner, idx, &id))
        .map(|m| m.to_json(&bot));
    match json {
        Some(v) => with_bucket(json_response(StatusCode::OK, &v), bucket),
        None => with_bucket(
            error(StatusCode::NOT_FOUND, 10008, "Unknown Message"),
            bucket,
        ),
    }
}
