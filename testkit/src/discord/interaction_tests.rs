//! Tests of the interaction side of the emulator against a tiny endpoint
//! that verifies Discord's signature with ed25519-dalek (as a real service
//! must) and answers as each test says.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;

type Fut = Pin<Box<dyn Future<Output = (u16, Option<Value>)> + Send>>;
type Handler = Arc<dyn Fn(Value) -> Fut + Send + Sync>;

/// A service's interactions endpoint.
struct Endpoint {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    _stop: tokio_util::sync::DropGuard,
}

fn verify(key: &VerifyingKey, headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let (Some(sig), Some(ts)) = (get("x-signature-ed25519"), get("x-signature-timestamp")) else {
        return false;
    };
    let Some(sig) = hex::decode(sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
    else {
        return false;
    };
    let mut msg = ts.as_bytes().to_vec();
    msg.extend_from_slice(body);
    key.verify(&msg, &Signature::from_bytes(&sig)).is_ok()
}

async fn endpoint(public_key_hex: &str, handler: Handler) -> Endpoint {
    let key: [u8; 32] = hex::decode(public_key_hex)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let key = VerifyingKey::from_bytes(&key).expect("key");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/interactions",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (handler, log) = (handler.clone(), log.clone());
            async move {
                if !verify(&key, &headers, &body) {
                    return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
                }
                let payload: Value = serde_json::from_slice(&body).expect("json");
                crate::util::lock(&log).push(payload.clone());
                let (status, answer) = handler(payload).await;
                let status = StatusCode::from_u16(status).expect("status");
                match answer {
                    Some(v) => (
                        status,
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        v.to_string(),
                    )
                        .into_response(),
                    None => status.into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let cancelled = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(cancelled.cancelled_owned())
            .await;
    });
    Endpoint {
        url: format!("http://{addr}/interactions"),
        seen,
        _stop: stop.drop_guard(),
    }
}

fn answer(v: Value) -> Handler {
    Arc::new(move |_| {
        let v = v.clone();
        Box::pin(async move { (200, Some(v)) })
    })
}

/// An emulator with a user, a channel and a bot message with Approve/Deny
/// buttons, a link button and a disabled button.
struct World {
    emu: DiscordEmulator,
    user: String,
    channel: String,
    message: String,
}

async fn world(config: EmulatorConfig) -> World {
    let emu = DiscordEmulator::start(config).await.expect("start");
    let user = emu.add_user("alice");
    let channel = emu.add_channel("access-requests");
    let (status, msg) = bot_post(
        &emu,
        &format!("/channels/{channel}/messages"),
        json!({
            "content": "alice wants admin",
            "components": [{"type": 1, "components": [
                {"type": 2, "style": 3, "label": "Approve", "custom_id": "approve:1"},
                {"type": 2, "style": 4, "label": "Deny", "custom_id": "deny:1"},
                {"type": 2, "style": 5, "label": "Open", "url": "https://teleport.example.com/requests/1"},
                {"type": 2, "style": 2, "label": "Old", "custom_id": "old:1", "disabled": true},
            ]}],
        }),
    )
    .await;
    assert_eq!(status, 200, "{msg}");
    let message = msg["id"].as_str().expect("id").to_owned();
    World {
        emu,
        user,
        channel,
        message,
    }
}

async fn bot_post(emu: &DiscordEmulator, path: &str, body: Value) -> (u16, Value) {
    let r = interactions::http_client(Duration::from_secs(10))
        .expect("client")
        .post(format!("{}{path}", emu.api_url()))
        .header("authorization", format!("Bot {}", emu.token()))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A request without bot authorization (interaction and webhook routes).
async fn send(method: &str, url: &str, body: Option<Value>) -> (u16, HeaderMap, Value) {
    let client = interactions::http_client(Duration::from_secs(10)).expect("client");
    let mut req = match method {
        "POST" => client.post(url),
        "PATCH" => client.patch(url),
        _ => client.get(url),
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("send");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn callback_url(emu: &DiscordEmulator, payload: &Value) -> String {
    format!(
        "{}/interactions/{}/{}/callback",
        emu.api_url(),
        payload["id"].as_str().expect("id"),
        payload["token"].as_str().expect("token")
    )
}

fn webhook_url(emu: &DiscordEmulator, token: &str, rest: &str) -> String {
    format!(
        "{}/webhooks/{}/{token}{rest}",
        emu.api_url(),
        emu.application_id()
    )
}

fn fast(deadline_ms: u64) -> EmulatorConfig {
    EmulatorConfig {
        interaction_deadline: Duration::from_millis(deadline_ms),
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn click_delivers_a_signed_component_interaction_with_discords_fields() {
    let w = world(EmulatorConfig::default()).await;
    let ep = endpoint(
        &w.emu.public_key_hex(),
        answer(json!({"type": 4, "data": {"content": "Approved.", "flags": 64}})),
    )
    .await;
    w.emu.set_interactions_endpoint(&ep.url);
    let reply = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    assert!(reply.acknowledged(), "{:?}", reply.interaction);
    assert_eq!(reply.callback_type(), Some(4));
    let answer = reply.response().expect("answer");
    assert_eq!(answer.via, AnswerVia::Inline);
    assert!(answer.is_ephemeral());

    let p = &crate::util::lock(&ep.seen)[0];
    assert_eq!(p["type"], 3);
    assert_eq!(p["version"], 1);
    assert_eq!(p["application_id"], w.emu.application_id().as_str());
    assert_eq!(p["data"]["custom_id"], "approve:1");
    assert_eq!(p["data"]["component_type"], 2);
    assert_eq!(p["guild_id"], w.emu.guild_id().as_str());
    assert_eq!(p["channel_id"], w.channel.as_str());
    assert_eq!(p["member"]["user"]["id"], w.user.as_str());
    assert_eq!(p["member"]["user"]["username"], "alice");
    assert!(p["member"]["permissions"].is_string());
    assert!(p["app_permissions"].is_string());
    assert_eq!(p["locale"], "en-US");
    assert_eq!(p["message"]["id"], w.message.as_str());
    assert_eq!(p["id"], reply.interaction.id.as_str());
    assert_eq!(p["token"], reply.interaction.token.as_str());
    assert!(
        p.get("user").is_none(),
        "in a guild the clicker is member.user"
    );

    // The ephemeral reply is the user's only: not in the channel.
    assert_eq!(w.emu.messages(&w.channel).len(), 1);
    let eph = &reply.interaction.ephemeral_messages;
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0].content, "Approved.");
    assert_eq!(eph[0].flags & validate::EPHEMERAL, validate::EPHEMERAL);
    let stats = w.emu.stats();
    assert_eq!(stats.interactions_delivered, 1);
    assert_eq!(stats.interactions_acknowledged, 1);
    assert_eq!(stats.interactions_failed, 0);
    assert_eq!(w.emu.interactions().len(), 1);
}

#[tokio::test]
async fn forged_and_tampered_deliveries_fail_verification_and_sign_matches() {
    let w = world(EmulatorConfig::default()).await;
    let ep = endpoint(&w.emu.public_key_hex(), answer(json!({"type": 6}))).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let raw = w
        .emu
        .build_interaction(&w.channel, &w.message, "deny:1", &w.user)
        .expect("build");
    let body: Value = serde_json::from_slice(&raw.body).expect("json");
    assert_eq!(body["id"], raw.id.as_str());
    let ts: u64 = raw.timestamp.parse().expect("unix seconds");
    assert!(ts > 1_600_000_000);
    let headers = |sig: &str, ts: &str| {
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-signature-ed25519".to_owned(), sig.to_owned()),
            ("x-signature-timestamp".to_owned(), ts.to_owned()),
        ]
    };
    let good = w.emu.sign(&raw.timestamp, &raw.body);
    // Unsigned, signed over another timestamp, tampered body, garbage.
    let other_ts = (ts + 1).to_string();
    let mut tampered = raw.body.clone();
    tampered.extend_from_slice(b" ");
    for (body, h) in [
        (raw.body.clone(), vec![]),
        (raw.body.clone(), headers(&good, &other_ts)),
        (tampered, headers(&good, &raw.timestamp)),
        (raw.body.clone(), headers("00", &raw.timestamp)),
    ] {
        let r = w.emu.post_raw(&ep.url, body, &h).await.expect("post");
        assert_eq!(r.status, 401);
    }
    assert!(crate::util::lock(&ep.seen).is_empty());
    let r = w
        .emu
        .post_raw(&ep.url, raw.body.clone(), &headers(&good, &raw.timestamp))
        .await
        .expect("post");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), Some(json!({"type": 6})));
    // post_raw judges nothing; deliver does (and the endpoint answers again).
    let reply = w.emu.deliver(&raw).await.expect("deliver");
    assert_eq!(reply.callback_type(), Some(6));
    assert_eq!(
        reply.interaction.original_message_id.as_deref(),
        Some(w.message.as_str())
    );
}

#[tokio::test]
async fn callback_acknowledges_once_then_40060() {
    let w = world(EmulatorConfig::default()).await;
    let api = w.emu.api_url();
    let second = Arc::new(Mutex::new(None));
    let out = second.clone();
    let handler: Handler = Arc::new(move |p: Value| {
        let (api, out) = (api.clone(), out.clone());
        Box::pin(async move {
            let url = format!(
                "{api}/interactions/{}/{}/callback",
                p["id"].as_str().unwrap_or_default(),
                p["token"].as_str().unwrap_or_default()
            );
            let (first, _, _) = send(
                "POST",
                &url,
                Some(json!({"type": 5, "data": {"flags": 64}})),
            )
            .await;
            assert_eq!(first, 204);
            let again = send(
                "POST",
                &url,
                Some(json!({"type": 4, "data": {"content": "x"}})),
            )
            .await;
            *crate::util::lock(&out) = Some((again.0, again.2));
            (202, None)
        })
    });
    let ep = endpoint(&w.emu.public_key_hex(), handler).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let reply = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    assert!(reply.acknowledged());
    let ack = reply.response().expect("ack");
    assert_eq!(ack.via, AnswerVia::Callback);
    assert_eq!(ack.callback_type, Some(5));
    let (status, body) = crate::util::lock(&second).clone().expect("second callback");
    assert_eq!(status, 400);
    assert_eq!(body["code"], 40060);
    assert_eq!(
        body["message"],
        "Interaction has already been acknowledged."
    );
    let refused: Vec<_> = reply.interaction.refused().collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].error.as_ref().map(|e| e["code"].clone()),
        Some(json!(40060))
    );
    assert_eq!(w.emu.stats().already_acknowledged, 1);
    // The deferred ephemeral response is a loading message only the user sees.
    let eph = &reply.interaction.ephemeral_messages;
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0].flags, validate::LOADING | validate::EPHEMERAL);
}

#[tokio::test]
async fn inline_answer_after_a_callback_is_a_second_acknowledgement() {
    let w = world(EmulatorConfig::default()).await;
    let api = w.emu.api_url();
    let handler: Handler = Arc::new(move |p: Value| {
        let api = api.clone();
        Box::pin(async move {
            let url = format!(
                "{api}/interactions/{}/{}/callback?with_response=true",
                p["id"].as_str().unwrap_or_default(),
                p["token"].as_str().unwrap_or_default()
            );
            let (status, _, body) = send(
                "POST",
                &url,
                Some(json!({"type": 4, "data": {"content": "ok"}})),
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(body["resource"]["type"], 4);
            assert_eq!(body["resource"]["message"]["content"], "ok");
            assert_eq!(body["interaction"]["response_message_ephemeral"], false);
            (200, Some(json!({"type": 4, "data": {"content": "twice"}})))
        })
    });
    let ep = endpoint(&w.emu.public_key_hex(), handler).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let reply = w
        .emu
        .click(&w.channel, &w.message, "deny:1", &w.user)
        .await
        .expect("click");
    assert!(reply.acknowledged());
    assert_eq!(reply.interaction.answers.len(), 2);
    assert!(!reply.interaction.answers[1].accepted);
    assert_eq!(reply.interaction.answers[1].via, AnswerVia::Inline);
    assert_eq!(w.emu.stats().already_acknowledged, 1);
    // The non-ephemeral reply is in the channel, marked as the interaction's.
    let msgs = w.emu.messages(&w.channel);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].content, "ok");
    assert_eq!(
        msgs[1].interaction_id.as_deref(),
        Some(reply.interaction.id.as_str())
    );
}

#[tokio::test]
async fn no_answer_within_the_deadline_fails_and_late_callbacks_get_10062() {
    let w = world(fast(300)).await;
    let late = Arc::new(Mutex::new(None));
    let out = late.clone();
    let api = w.emu.api_url();
    let handler: Handler = Arc::new(move |p: Value| {
        let (api, out) = (api.clone(), out.clone());
        Box::pin(async move {
            // Answer the HTTP request at once, call back too late.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(450)).await;
                let url = format!(
                    "{api}/interactions/{}/{}/callback",
                    p["id"].as_str().unwrap_or_default(),
                    p["token"].as_str().unwrap_or_default()
                );
                let r = send("POST", &url, Some(json!({"type": 6}))).await;
                *crate::util::lock(&out) = Some((r.0, r.2));
            });
            (204, None)
        })
    });
    let ep = endpoint(&w.emu.public_key_hex(), handler).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let reply = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    assert_eq!(
        reply.interaction.state,
        InteractionState::Failed(FailReason::NoAnswer)
    );
    assert!(reply.elapsed >= Duration::from_millis(300));
    assert!(reply.elapsed < Duration::from_millis(2000));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = crate::util::lock(&late).clone().expect("late callback");
    assert_eq!(status, 404);
    assert_eq!(body["code"], 10062);
    assert_eq!(body["message"], "Unknown interaction");
    let stats = w.emu.stats();
    assert_eq!(stats.interactions_failed, 1);
    assert_eq!(stats.answered_late, 1);
    assert_eq!(stats.unknown_interaction, 1);
    // Its token never works for follow-ups.
    let token = reply.interaction.token.clone();
    let (status, _, body) = send(
        "POST",
        &webhook_url(&w.emu, &token, ""),
        Some(json!({"content": "late"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], 10015);
}

#[tokio::test]
async fn a_slow_inline_answer_is_late() {
    let w = world(fast(300)).await;
    let handler: Handler = Arc::new(|_| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(450)).await;
            (200, Some(json!({"type": 6})))
        })
    });
    let ep = endpoint(&w.emu.public_key_hex(), handler).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let reply = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    assert!(!reply.acknowledged());
    let a = &reply.interaction.answers;
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(!a[0].accepted);
    assert!(a[0].after >= Duration::from_millis(300));
    assert_eq!(w.emu.stats().answered_late, 1);
}

#[tokio::test]
async fn endpoint_errors_and_bad_answers_fail_the_interaction() {
    let w = world(EmulatorConfig::default()).await;
    let ep = endpoint(
        &w.emu.public_key_hex(),
        Arc::new(|_| Box::pin(async { (500, None) })),
    )
    .await;
    w.emu.set_interactions_endpoint(&ep.url);
    let r = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    assert_eq!(
        r.interaction.state,
        InteractionState::Failed(FailReason::EndpointStatus(500))
    );
    // A PONG is no answer to a click; an empty message is refused with 50006.
    for (bad, code) in [
        (json!({"type": 1}), json!(50035)),
        (json!({"type": 4, "data": {"content": ""}}), json!(50006)),
        (
            json!({"type": 4, "data": {"content": "x".repeat(2001)}}),
            json!(50035),
        ),
        (json!({"type": 5, "data": {"flags": 4}}), json!(50035)),
    ] {
        let ep = endpoint(&w.emu.public_key_hex(), answer(bad.clone())).await;
        w.emu.set_interactions_endpoint(&ep.url);
        let r = w
            .emu
            .click(&w.channel, &w.message, "approve:1", &w.user)
            .await
            .expect("click");
        assert_eq!(
            r.interaction.state,
            InteractionState::Failed(FailReason::InvalidAnswer),
            "{bad}"
        );
        assert_eq!(
            r.interaction.answers[0]
                .error
                .as_ref()
                .map(|e| e["code"].clone()),
            Some(code)
        );
    }
    assert_eq!(w.emu.stats().invalid_answers, 4);
}

#[tokio::test]
async fn click_checks_what_the_user_can_click() {
    let w = world(EmulatorConfig::default()).await;
    let ep = endpoint(&w.emu.public_key_hex(), answer(json!({"type": 6}))).await;
    let e = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect_err("no endpoint");
    assert!(matches!(e, InteractionError::NoEndpoint));
    w.emu.set_interactions_endpoint(&ep.url);
    let click = |c: &'static str| w.emu.build_interaction(&w.channel, &w.message, c, &w.user);
    assert!(matches!(
        click("nope"),
        Err(InteractionError::NoSuchButton { .. })
    ));
    assert!(matches!(click("old:1"), Err(InteractionError::Disabled(_))));
    assert!(matches!(
        w.emu
            .build_interaction(&w.channel, "1", "approve:1", &w.user),
        Err(InteractionError::UnknownMessage(_))
    ));
    assert!(matches!(
        w.emu
            .build_interaction(&w.channel, &w.message, "approve:1", "9"),
        Err(InteractionError::UnknownUser(_))
    ));
    // A link button has no custom_id to name, and no interaction.
    let (_, m) = bot_post(
        &w.emu,
        &format!("/channels/{}/messages", w.channel),
        json!({"components": [{"type": 1, "components": [{"type": 2, "style": 5, "label": "x", "url": "https://e.com"}]}]}),
    )
    .await;
    let link = m["id"].as_str().expect("id");
    assert!(matches!(
        w.emu
            .build_interaction(&w.channel, link, "approve:1", &w.user),
        Err(InteractionError::NoSuchButton { .. })
    ));
    // In another user's DM, nobody else can click.
    let bob = w.emu.add_user("bob");
    let (_, dm) = bot_post(&w.emu, "/users/@me/channels", json!({"recipient_id": bob})).await;
    let dm = dm["id"].as_str().expect("dm").to_owned();
    let (_, m) = bot_post(
        &w.emu,
        &format!("/channels/{dm}/messages"),
        json!({"components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "Approve", "custom_id": "a"}]}]}),
    )
    .await;
    let in_dm = m["id"].as_str().expect("id").to_owned();
    assert!(matches!(
        w.emu.build_interaction(&dm, &in_dm, "a", &w.user),
        Err(InteractionError::NotInChannel { .. })
    ));
    let r = w.emu.click(&dm, &in_dm, "a", &bob).await.expect("click");
    assert!(r.acknowledged());
    let p = &r.interaction.payload;
    assert_eq!(p["user"]["id"], bob.as_str());
    assert!(p.get("member").is_none() && p.get("guild_id").is_none());
    assert_eq!(p["context"], 1);
}

fn reason_modal() -> Value {
    json!({"type": 9, "data": {
        "custom_id": "deny-reason:1",
        "title": "Deny request",
        "components": [{
            "type": 18,
            "label": "Reason",
            "description": "Shown to the requester",
            "component": {"type": 4, "custom_id": "reason", "style": 2, "min_length": 3, "max_length": 200, "required": true, "placeholder": "Why?"}
        }]
    }})
}

#[tokio::test]
async fn modal_opens_then_submit_carries_label_shaped_values() {
    let w = world(EmulatorConfig::default()).await;
    let answers = Arc::new(Mutex::new(vec![
        json!({"type": 4, "data": {"content": "Denied.", "flags": 64}}),
        json!({"type": 9, "data": {"custom_id": "again", "title": "t", "components": [{"type": 18, "label": "l", "component": {"type": 4, "custom_id": "x", "style": 1}}]}}),
        reason_modal(),
    ]));
    let handler: Handler = Arc::new(move |_| {
        let next = crate::util::lock(&answers).pop().expect("an answer");
        Box::pin(async move { (200, Some(next)) })
    });
    let ep = endpoint(&w.emu.public_key_hex(), handler).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let opened = w
        .emu
        .click(&w.channel, &w.message, "deny:1", &w.user)
        .await
        .expect("click");
    assert_eq!(opened.callback_type(), Some(9));
    let id = opened.interaction.id.clone();
    assert!(opened.interaction.modal.is_some());

    // The client's own checks: a required input, its minimum length, unknown inputs.
    assert!(matches!(
        w.emu.build_modal_submit(&id, &[]),
        Err(InteractionError::InvalidInput { .. })
    ));
    assert!(matches!(
        w.emu.build_modal_submit(&id, &[("reason", "no")]),
        Err(InteractionError::InvalidInput { .. })
    ));
    assert!(matches!(
        w.emu
            .build_modal_submit(&id, &[("reason", "fine"), ("other", "x")]),
        Err(InteractionError::InvalidInput { .. })
    ));

    // A modal in answer to a modal submit is refused; the modal stays open.
    let first = w
        .emu
        .submit_modal(&id, &[("reason", "not on call")])
        .await
        .expect("submit");
    assert!(!first.acknowledged());
    let err = first.interaction.answers[0].error.clone().expect("error");
    assert_eq!(
        err["errors"]["type"]["_errors"][0]["code"],
        "INTERACTION_CALLBACK_TYPE_INVALID"
    );

    let second = w
        .emu
        .submit_modal(&id, &[("reason", "not on call")])
        .await
        .expect("submit");
    assert!(second.acknowledged());
    let p = &crate::util::lock(&ep.seen)[2];
    assert_eq!(p["type"], 5);
    assert_eq!(p["data"]["custom_id"], "deny-reason:1");
    let c = &p["data"]["components"][0];
    assert_eq!(c["type"], 18);
    assert_eq!(c["component"]["type"], 4);
    assert_eq!(c["component"]["custom_id"], "reason");
    assert_eq!(c["component"]["value"], "not on call");
    assert_eq!(p["member"]["user"]["id"], w.user.as_str());
    assert_eq!(p["message"]["id"], w.message.as_str());
    assert_eq!(second.interaction.parent_id.as_deref(), Some(id.as_str()));
    assert!(w.emu.interaction(&id).expect("parent").modal_submitted);
    assert!(matches!(
        w.emu.build_modal_submit(&id, &[("reason", "again")]),
        Err(InteractionError::ModalClosed(_))
    ));
    assert!(matches!(
        w.emu.build_modal_submit(&second.interaction.id, &[]),
        Err(InteractionError::NoModal(_))
    ));
}

#[tokio::test]
async fn invalid_modals_are_refused() {
    let w = world(EmulatorConfig::default()).await;
    let long_title = {
        let mut m = reason_modal();
        m["data"]["title"] = json!("t".repeat(46));
        m
    };
    let six = {
        let mut m = reason_modal();
        let c = m["data"]["components"][0].clone();
        let list: Vec<Value> = (0..6)
            .map(|i| {
                let mut c = c.clone();
                c["component"]["custom_id"] = json!(format!("r{i}"));
                c
            })
            .collect();
        m["data"]["components"] = json!(list);
        m
    };
    for bad in [long_title, six] {
        let ep = endpoint(&w.emu.public_key_hex(), answer(bad)).await;
        w.emu.set_interactions_endpoint(&ep.url);
        let r = w
            .emu
            .click(&w.channel, &w.message, "deny:1", &w.user)
            .await
            .expect("click");
        assert!(!r.acknowledged());
        assert_eq!(
            r.interaction.answers[0]
                .error
                .as_ref()
                .map(|e| e["code"].clone()),
            Some(json!(50035))
        );
    }
    // The legacy shape still works.
    let legacy = json!({"type": 9, "data": {"custom_id": "m", "title": "Reason", "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": "reason", "label": "Reason", "style": 1}]}
    ]}});
    let ep = endpoint(&w.emu.public_key_hex(), answer(legacy)).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let r = w
        .emu
        .click(&w.channel, &w.message, "deny:1", &w.user)
        .await
        .expect("click");
    assert!(r.acknowledged());
    let raw = w
        .emu
        .build_modal_submit(&r.interaction.id, &[("reason", "because")])
        .expect("submit");
    let p: Value = serde_json::from_slice(&raw.body).expect("json");
    assert_eq!(p["data"]["components"][0]["type"], 1);
    assert_eq!(
        p["data"]["components"][0]["components"][0]["value"],
        "because"
    );
}

#[tokio::test]
async fn ping_and_endpoint_verification() {
    let emu = DiscordEmulator::start(EmulatorConfig::default())
        .await
        .expect("start");
    let ep = endpoint(&emu.public_key_hex(), answer(json!({"type": 1}))).await;
    emu.set_interactions_endpoint(&ep.url);
    let r = emu.ping().await.expect("ping");
    assert_eq!(r.callback_type(), Some(1));
    assert_eq!(crate::util::lock(&ep.seen)[0]["type"], 1);
    emu.verify_endpoint().await.expect("verified");
    // An endpoint that does not check signatures fails the portal's check.
    let careless = endpoint(&emu.public_key_hex(), answer(json!({"type": 1}))).await;
    let app = axum::Router::new().route(
        "/i",
        axum::routing::post(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                "{\"type\":1}",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    emu.set_interactions_endpoint(&format!("http://{addr}/i"));
    assert!(matches!(
        emu.verify_endpoint().await,
        Err(InteractionError::EndpointCheck(_))
    ));
    // A PING is answered inline, never by callback.
    emu.set_interactions_endpoint(&careless.url);
    let raw = emu.build_ping().expect("ping");
    let p: Value = serde_json::from_slice(&raw.body).expect("json");
    let (status, _, _) = send("POST", &callback_url(&emu, &p), Some(json!({"type": 1}))).await;
    assert_eq!(status, 400);
}

/// A click answered with a deferred reply (type 5), for the follow-up tests.
async fn deferred(w: &World) -> InteractionReply {
    let ep = endpoint(&w.emu.public_key_hex(), answer(json!({"type": 5}))).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let r = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    assert!(r.acknowledged());
    r
}

#[tokio::test]
async fn followups_and_original_edits_with_the_token_only() {
    let w = world(EmulatorConfig {
        global_limit: 1,
        global_window: Duration::from_secs(60),
        webhook_limit: 20,
        ..EmulatorConfig::default()
    })
    .await;
    let r = deferred(&w).await;
    let token = r.interaction.token.clone();
    // The deferred response is a loading message in the channel.
    let msgs = w.emu.messages(&w.channel);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].flags, validate::LOADING);

    let (status, h, body) = send(
        "PATCH",
        &webhook_url(&w.emu, &token, "/messages/@original"),
        Some(json!({"content": "Approved by alice"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"], "Approved by alice");
    assert_eq!(body["flags"], 0);
    assert_eq!(h["x-ratelimit-bucket"], WEBHOOK_BUCKET);
    assert_eq!(h["x-ratelimit-limit"], "20");
    assert_eq!(h["x-ratelimit-remaining"], "19");
    let (status, _, got) = send(
        "GET",
        &webhook_url(&w.emu, &token, "/messages/@original"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], body["id"]);

    let (status, _, f) = send(
        "POST",
        &webhook_url(&w.emu, &token, ""),
        Some(json!({"content": "only you see this", "flags": 64})),
    )
    .await;
    assert_eq!(status, 200, "{f}");
    let fid = f["id"].as_str().expect("id").to_owned();
    let (status, _, e) = send(
        "PATCH",
        &webhook_url(&w.emu, &token, &format!("/messages/{fid}")),
        Some(json!({"content": "edited"})),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    // Someone else's message is not this token's to edit.
    let (status, _, e) = send(
        "PATCH",
        &webhook_url(&w.emu, &token, &format!("/messages/{}", w.message)),
        Some(json!({"content": "hijack"})),
    )
    .await;
    assert_eq!((status, e["code"].clone()), (404, json!(10008)));

    let rec = w.emu.interaction(&r.interaction.id).expect("record");
    assert_eq!(rec.followup_ids, vec![fid]);
    assert_eq!(rec.ephemeral_messages.len(), 1);
    assert_eq!(rec.ephemeral_messages[0].content, "edited");
    assert_eq!(w.emu.messages(&w.channel).len(), 2);
    let stats = w.emu.stats();
    assert_eq!(stats.followups, 1);
    assert_eq!(stats.webhook_edits, 2);
    // None of it touched the bot's global limit (1 per minute, used by the setup post).
    assert_eq!(stats.rate_limited_global, 0);

    // Bodies are validated as messages.
    for (bad, code) in [
        (json!({"content": "x".repeat(2001)}), 50035),
        (json!({"content": "x", "flags": 128}), 50035),
        (json!({"content": ""}), 50006),
    ] {
        let (status, _, e) = send("POST", &webhook_url(&w.emu, &token, ""), Some(bad)).await;
        assert_eq!((status, e["code"].clone()), (400, json!(code)));
    }
}

#[tokio::test]
async fn webhook_routes_have_their_own_per_token_limit() {
    let w = world(EmulatorConfig {
        webhook_limit: 3,
        webhook_window: Duration::from_secs(60),
        ..EmulatorConfig::default()
    })
    .await;
    let a = deferred(&w).await.interaction.token;
    let b = deferred(&w).await.interaction.token;
    for i in 0..3 {
        let (status, h, _) = send(
            "POST",
            &webhook_url(&w.emu, &a, ""),
            Some(json!({"content": format!("{i}")})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(h["x-ratelimit-remaining"], (2 - i).to_string().as_str());
    }
    let (status, h, body) = send(
        "POST",
        &webhook_url(&w.emu, &a, ""),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(h["x-ratelimit-scope"], "user");
    assert_eq!(h["x-ratelimit-bucket"], WEBHOOK_BUCKET);
    assert!(h.get("retry-after").is_some());
    assert!(body["retry_after"].as_f64().is_some_and(|r| r > 0.0));
    assert_eq!(body["global"], false);
    // Another interaction's token has its own bucket.
    let (status, _, _) = send(
        "POST",
        &webhook_url(&w.emu, &b, ""),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(status, 200);
    let stats = w.emu.stats();
    assert_eq!(stats.webhook_rate_limited, 1);
    assert_eq!(stats.invalid_requests_window, 1);
}

#[tokio::test]
async fn tokens_expire_and_only_their_interaction_and_application_work() {
    let w = world(EmulatorConfig {
        interaction_token_lifetime: Duration::from_millis(400),
        ..EmulatorConfig::default()
    })
    .await;
    let token = deferred(&w).await.interaction.token;
    let (status, _, _) = send(
        "POST",
        &webhook_url(&w.emu, &token, ""),
        Some(json!({"content": "in time"})),
    )
    .await;
    assert_eq!(status, 200);
    let wrong_app = format!("{}/webhooks/1/{token}", w.emu.api_url());
    let (status, _, e) = send("POST", &wrong_app, Some(json!({"content": "x"}))).await;
    assert_eq!((status, e["code"].clone()), (404, json!(10015)));
    let (status, _, e) = send(
        "POST",
        &webhook_url(&w.emu, "forged", ""),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((status, e["code"].clone()), (404, json!(10015)));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (status, _, e) = send(
        "PATCH",
        &webhook_url(&w.emu, &token, "/messages/@original"),
        Some(json!({"content": "too late"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(e["code"], 10015);
    assert_eq!(e["message"], "Unknown Webhook");
    assert_eq!(w.emu.stats().unknown_webhook, 3);
}

#[tokio::test]
async fn original_must_exist_before_it_is_edited() {
    let w = world(EmulatorConfig::default()).await;
    let ep = endpoint(&w.emu.public_key_hex(), answer(reason_modal())).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let r = w
        .emu
        .click(&w.channel, &w.message, "deny:1", &w.user)
        .await
        .expect("click");
    assert!(r.acknowledged());
    let (status, _, e) = send(
        "PATCH",
        &webhook_url(&w.emu, &r.interaction.token, "/messages/@original"),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((status, e["code"].clone()), (404, json!(10008)));
}

#[tokio::test]
async fn update_message_edits_the_clicked_message() {
    let w = world(EmulatorConfig::default()).await;
    let ep = endpoint(
        &w.emu.public_key_hex(),
        answer(json!({"type": 7, "data": {"content": "Approved", "components": []}})),
    )
    .await;
    w.emu.set_interactions_endpoint(&ep.url);
    let r = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    assert!(r.acknowledged());
    let msgs = w.emu.messages(&w.channel);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].content, "Approved");
    assert_eq!(msgs[0].components, json!([]));
    // The buttons are gone: nothing left to click.
    assert!(matches!(
        w.emu
            .build_interaction(&w.channel, &w.message, "approve:1", &w.user),
        Err(InteractionError::NoSuchButton { .. })
    ));
}

#[tokio::test]
async fn replays_are_recorded_and_a_second_answer_is_refused() {
    let w = world(EmulatorConfig::default()).await;
    let ep = endpoint(&w.emu.public_key_hex(), answer(json!({"type": 6}))).await;
    w.emu.set_interactions_endpoint(&ep.url);
    let r = w
        .emu
        .click(&w.channel, &w.message, "approve:1", &w.user)
        .await
        .expect("click");
    let id = r.interaction.id.clone();
    let reply = w.emu.replay(&id, Replay::Verbatim).await.expect("replay");
    assert_eq!(reply.status, 200);
    let reply = w.emu.replay(&id, Replay::Resigned).await.expect("replay");
    assert_eq!(reply.status, 200);
    let seen = crate::util::lock(&ep.seen).clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|p| p["id"] == id.as_str()));
    let rec = w.emu.interaction(&id).expect("record");
    assert_eq!(rec.replays, vec![200, 200]);
    let refused: Vec<_> = rec.refused().collect();
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|a| a.via == AnswerVia::Replay));
    assert_eq!(w.emu.stats().already_acknowledged, 2);
    assert_eq!(w.emu.stats().interactions_delivered, 1);
}

#[test]
fn tokens_look_like_discords() {
    let t = interactions_token_for_test("123");
    assert!(t.starts_with("aW50ZXJhY3Rpb246MTIzO"), "{t}");
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
}

fn interactions_token_for_test(id: &str) -> String {
    interactions::token_for_test(id)
}
