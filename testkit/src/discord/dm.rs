//! Users and direct messages: the users the emulator knows (members of its
//! one guild), whether each accepts DMs from the bot, and
//! `POST /users/@me/channels` (Create DM).
//!
//! Discord's rules (`discord-api.md` §1.2, D-CODES):
//! - Create DM returns the DM channel (type 1); "if one already exists, it
//!   returns that one", so a user has one DM channel.
//! - A recipient that is not a user → 400 50033 "Invalid Recipient(s)"
//!   (what Discord answers for unknown and deleted users: discordgo#953,
//!   discord-api-docs#8274); the bot itself → 400 50007 (Kord-Extensions#215).
//! - Opening a DM works whatever the user's privacy settings; sending a
//!   message to a user who does not accept DMs gets 403 50007 "Cannot send
//!   messages to this user" (checked with the channel, in `admit_message`),
//!   and that 403 counts as an invalid request.
//! - The route has its own bucket ([`super::DM_BUCKET`], one counter per
//!   bot, `dm_limit` per `dm_window`: the emulator's numbers, Discord
//!   publishes none) and counts against the global limit like any bot route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    BucketHeaders, DM_BUCKET, DiscordEmulator, Inner, RouteKind, Shared, error, json_response,
    new_channel, too_many, with_bucket,
};

/// A user the emulator knows.
#[derive(Debug, Clone)]
pub(super) struct User {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) accepts_dms: bool,
}

impl User {
    /// The user object Discord returns.
    pub(super) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.name,
            "discriminator": "0",
            "global_name": self.name,
            "avatar": null,
            "public_flags": 0,
        })
    }
}

impl DiscordEmulator {
    /// Adds a user (a member of the emulator's guild who accepts DMs) and
    /// returns its ID.
    pub fn add_user(&self, name: &str) -> String {
        let mut inner = self.shared.lock();
        let id = inner.snowflake();
        add(&mut inner, &id, name);
        id
    }

    /// Adds a user with a given ID (e.g. one a config names); replaces the
    /// name of an existing one.
    pub fn add_user_with_id(&self, id: &str, name: &str) {
        add(&mut self.shared.lock(), id, name);
    }

    /// Sets whether a user accepts DMs from the bot ("Allow direct messages
    /// from server members"); unknown users are ignored.
    pub fn set_accepts_dms(&self, user_id: &str, accepts: bool) {
        if let Some(u) = self.shared.lock().users.get_mut(user_id) {
            u.accepts_dms = accepts;
        }
    }

    /// The DM channel opened with a user, if the bot opened one.
    pub fn dm_channel(&self, user_id: &str) -> Option<String> {
        self.shared.lock().dms.get(user_id).cloned()
    }

    /// A user's name.
    pub fn user_name(&self, user_id: &str) -> Option<String> {
        self.shared
            .lock()
            .users
            .get(user_id)
            .map(|u| u.name.clone())
    }
}

fn add(inner: &mut Inner, id: &str, name: &str) {
    inner.users.insert(
        id.to_owned(),
        User {
            id: id.to_owned(),
            name: name.to_owned(),
            accepts_dms: true,
        },
    );
}

fn invalid_body(field: &str, code: &str, message: &str) -> Response {
    let errs = json!({ field: {"_errors": [{"code": code, "message": message}]} });
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"code": 50035, "message": "Invalid Form Body", "errors": errs}),
    )
}

/// `POST /users/@me/channels`.
pub(super) async fn create_dm(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let mut inner = s.lock();
    if let Err(r) = super::admit(&mut inner, &headers, now) {
        return r;
    }
    let bucket = match hit_dm_bucket(&mut inner, now) {
        Ok(b) => b,
        Err(r) => return r,
    };
    with_bucket(open(&mut inner, &body), bucket)
}

fn hit_dm_bucket(inner: &mut Inner, now: Instant) -> Result<BucketHeaders, Response> {
    let (limit, len) = (inner.config.dm_limit, inner.config.dm_window);
    let window = inner
        .routes
        .entry(("@me".to_owned(), RouteKind::Dm))
        .or_default();
    match window.hit(now, limit, len) {
        Ok((remaining, reset_after)) => Ok(BucketHeaders {
            limit,
            remaining,
            reset_after,
            bucket: DM_BUCKET,
        }),
        Err(retry) => {
            inner.stats.rate_limited_user += 1;
            inner.invalid(now);
            Err(too_many(
                super::Scope::User,
                retry,
                Some(BucketHeaders {
                    limit,
                    remaining: 0,
                    reset_after: retry,
                    bucket: DM_BUCKET,
                }),
            ))
        }
    }
}

fn open(inner: &mut Inner, body: &Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        );
    };
    let recipient = match body.get("recipient_id") {
        None | Some(Value::Null) => {
            return invalid_body(
                "recipient_id",
                "BASE_TYPE_REQUIRED",
                "This field is required",
            );
        }
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.clone()
        }
        Some(_) => {
            return invalid_body(
                "recipient_id",
                "SNOWFLAKE_TYPE_INVALID",
                "Value is not snowflake.",
            );
        }
    };
    if recipient == inner.bot_id {
        return error(
            StatusCode::BAD_REQUEST,
            50007,
            "Cannot send messages to this user",
        );
    }
    let Some(user) = inner.users.get(&recipient).map(User::to_json) else {
        return error(StatusCode::BAD_REQUEST, 50033, "Invalid Recipient(s)");
    };
    let id = match inner.dms.get(&recipient) {
        Some(id) => id.clone(),
        None => {
            let id = inner.snowflake();
            let mut channel = new_channel(&id, 1, "");
            channel.recipient = Some(recipient.clone());
            inner.channels.insert(id.clone(), channel);
            inner.dms.insert(recipient, id.clone());
            inner.stats.dm_channels_opened += 1;
            id
        }
    };
    let last = inner
        .channels
        .get(&id)
        .and_then(|c| c.messages.last())
        .map(|m| m.id.clone());
    json_response(
        StatusCode::OK,
        &json!({"id": id, "type": 1, "last_message_id": last, "flags": 0, "recipients": [user]}),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::EmulatorConfig;
    use super::*;

    async fn post(emu: &DiscordEmulator, path: &str, body: Value) -> reqwest::Response {
        super::super::interactions::http_client(Duration::from_secs(10))
            .expect("client")
            .post(format!("{}{path}", emu.api_url()))
            .header("authorization", format!("Bot {}", emu.token()))
            .json(&body)
            .send()
            .await
            .expect("send")
    }

    #[tokio::test]
    async fn dm_channel_is_one_per_user_and_unknown_users_are_refused() {
        let emu = DiscordEmulator::start(EmulatorConfig {
            dm_limit: 50,
            ..EmulatorConfig::default()
        })
        .await
        .expect("start");
        let alice = emu.add_user("alice");
        let r = post(&emu, "/users/@me/channels", json!({"recipient_id": alice})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-ratelimit-bucket"].to_str().expect("ascii"),
            DM_BUCKET
        );
        let first: Value = r.json().await.expect("json");
        assert_eq!(first["type"], 1);
        assert_eq!(first["recipients"][0]["id"], alice.as_str());
        let again: Value = post(&emu, "/users/@me/channels", json!({"recipient_id": alice}))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(again["id"], first["id"]);
        assert_eq!(emu.dm_channel(&alice).as_deref(), first["id"].as_str());
        assert_eq!(emu.stats().dm_channels_opened, 1);

        let r = post(&emu, "/users/@me/channels", json!({"recipient_id": "4242"})).await;
        assert_eq!(r.status(), 400);
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["code"], 50033);
        let r = post(
            &emu,
            "/users/@me/channels",
            json!({"recipient_id": emu.bot_id()}),
        )
        .await;
        assert_eq!(r.status(), 400);
        let r = post(&emu, "/users/@me/channels", json!({"recipient_id": 12})).await;
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["code"], 50035);
        emu.add_user_with_id("4242", "bob");
        let r = post(&emu, "/users/@me/channels", json!({"recipient_id": "4242"})).await;
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn dm_to_a_user_who_refuses_dms_is_403_50007_and_counts_as_invalid() {
        let emu = DiscordEmulator::start(EmulatorConfig::default())
            .await
            .expect("start");
        let alice = emu.add_user("alice");
        let dm: Value = post(&emu, "/users/@me/channels", json!({"recipient_id": alice}))
            .await
            .json()
            .await
            .expect("json");
        let ch = dm["id"].as_str().expect("id").to_owned();
        let path = format!("/channels/{ch}/messages");
        let r = post(&emu, &path, json!({"content": "your request was approved"})).await;
        assert_eq!(r.status(), 200);
        assert_eq!(emu.messages(&ch).len(), 1);

        emu.set_accepts_dms(&alice, false);
        let before = emu.stats().invalid_requests_window;
        let r = post(&emu, &path, json!({"content": "again"})).await;
        assert_eq!(r.status(), 403);
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["code"], 50007);
        assert_eq!(e["message"], "Cannot send messages to this user");
        let stats = emu.stats();
        assert_eq!(stats.cannot_message_user, 1);
        assert_eq!(stats.invalid_requests_window, before + 1);
        assert_eq!(emu.messages(&ch).len(), 1);
        // Opening the DM still works: the refusal comes with the message.
        let r = post(&emu, "/users/@me/channels", json!({"recipient_id": alice})).await;
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn dm_bucket_limits_opens() {
        let emu = DiscordEmulator::start(EmulatorConfig {
            dm_limit: 2,
            dm_window: Duration::from_secs(60),
            ..EmulatorConfig::default()
        })
        .await
        .expect("start");
        let users: Vec<String> = (0..3).map(|i| emu.add_user(&format!("u{i}"))).collect();
        for u in &users[..2] {
            let r = post(&emu, "/users/@me/channels", json!({"recipient_id": u})).await;
            assert_eq!(r.status(), 200);
        }
        let r = post(
            &emu,
            "/users/@me/channels",
            json!({"recipient_id": users[2]}),
        )
        .await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["x-ratelimit-scope"], "user");
        assert_eq!(
            r.headers()["x-ratelimit-bucket"].to_str().expect("ascii"),
            DM_BUCKET
        );
    }
}
