//! `POST /discord/interactions` against the Discord emulator's application:
//! the Developer Portal's check (a forged PING gets 401, a signed one a
//! PONG), forged, unsigned, stale and replayed deliveries, and the route off
//! without `[discord] public_key`.

use std::time::{SystemTime, UNIX_EPOCH};

use teleport_discord_testkit::discord::Replay;
use teleport_discord_testkit::sandbox::Sandbox;

use crate::support::TestApp;

/// The service with `[discord] public_key` set to the emulator's application key.
async fn app_with_key() -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    // The sandbox's config names the emulated application's key.
    let key = sandbox.discord.public_key_hex();
    let text = sandbox.config("");
    assert!(text.contains(&format!("public_key = \"{key}\"")), "{text}");
    let app = TestApp::start_with_text(sandbox, dir, &text).await;
    app.wait_ready().await;
    let url = app.url("/discord/interactions");
    app.sandbox.discord.set_interactions_endpoint(&url);
    app
}

async fn counted(app: &TestApp, outcome: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    // Any type: refused deliveries are of type "unknown".
    let tail = format!("outcome=\"{outcome}\"}}");
    text.lines()
        .filter(|l| l.starts_with("teleport_discord_interactions_total{"))
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| name.ends_with(&tail))
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn the_portal_check_passes_and_forged_or_stale_deliveries_get_401() {
    let app = app_with_key().await;
    let discord = &app.sandbox.discord;
    // What the Developer Portal does when the URL is saved.
    discord.verify_endpoint().await.expect("endpoint check");
    let url = app.url("/discord/interactions");
    let body =
        br#"{"id":"1234567890","type":1,"application_id":"1","token":"t","version":1}"#.to_vec();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("t")
        .as_secs();
    let headers = |ts: &str, sig: &str| {
        vec![
            ("X-Signature-Timestamp".to_owned(), ts.to_owned()),
            ("X-Signature-Ed25519".to_owned(), sig.to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ]
    };
    // Unsigned, wrongly signed, signed by someone else's key, signed long ago.
    let ts = now.to_string();
    let stale = (now - 3_600).to_string();
    let cases = [
        ("no signature", Vec::new()),
        ("garbage signature", headers(&ts, &"00".repeat(64))),
        (
            "another body's signature",
            headers(&ts, &discord.sign(&ts, b"{}")),
        ),
        ("an hour old", headers(&stale, &discord.sign(&stale, &body))),
    ];
    for (what, h) in cases {
        let r = discord
            .post_raw(&url, body.clone(), &h)
            .await
            .expect("post");
        assert_eq!(r.status, 401, "{what}: {:?}", r.json());
    }
    // A fresh, correctly signed PING is a PONG.
    let r = discord
        .post_raw(&url, body.clone(), &headers(&ts, &discord.sign(&ts, &body)))
        .await
        .expect("post");
    assert_eq!(
        (r.status, r.json()),
        (200, Some(serde_json::json!({"type": 1})))
    );
    assert!(counted(&app, "bad_signature").await >= 4.0);
    assert!(counted(&app, "stale_timestamp").await >= 1.0);
    assert!(counted(&app, "pong").await >= 2.0);
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_ping_is_harmless_and_the_route_is_off_without_a_key() {
    let app = app_with_key().await;
    let discord = &app.sandbox.discord;
    let ping = discord.ping().await.expect("ping");
    assert_eq!(ping.callback_type(), Some(1));
    let id = ping.interaction.id.clone();
    // The same bytes again, and re-signed: still just a PONG, nothing else.
    for how in [Replay::Verbatim, Replay::Resigned] {
        let r = discord.replay(&id, how).await.expect("replay");
        assert_eq!(
            (r.status, r.json()),
            (200, Some(serde_json::json!({"type": 1})))
        );
    }
    app.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let key_line = format!("public_key = \"{}\"\n", sandbox.discord.public_key_hex());
    let text = sandbox.config("").replace(&key_line, "");
    let off = TestApp::start_with_text(sandbox, dir, &text).await;
    off.wait_ready().await;
    let r = off
        .client
        .post(off.url("/discord/interactions"))
        .body(r#"{"type":1}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("[discord] public_key")),
        "{body}"
    );
    off.stop().await;
}
