//! The reconciler's harder promises, end to end (in-process service, both
//! emulators, real gRPC over mutual TLS and real HTTP): settings changed by a
//! reload, logins by role, upstream's threshold and racing scenarios,
//! requests resolved while the service was down, plugin data written by the
//! Go plugin, hostile request text.

use std::time::Duration;

use teleport_discord_testkit::discord::EmulatorConfig;
use teleport_discord_testkit::sandbox::Sandbox;
use teleport_discord_testkit::teleport::Permissions;
use teleport_discord_testkit::teleport::proxy::EmulatedProxy;

use crate::support::{ADMIN_TOKEN, TestApp, eventually, status_line};

fn admin() -> String {
    format!("[http]\nadmin_token = \"{ADMIN_TOKEN}\"\n")
}

async fn reload_body(app: &TestApp) -> (u16, serde_json::Value) {
    let resp = app.reload(Some(ADMIN_TOKEN)).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

/// A rotated bot token and a new Teleport address are put into effect by a
/// reload, without a restart; a token Discord rejects, or an address that
/// does not answer, is refused and the running settings keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_a_new_token_and_a_new_teleport_address() {
    let app = TestApp::start(&admin()).await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let fallback = sb.channels[2].clone();
    let posted = |n: usize| {
        let sb = &app.sandbox;
        let fallback = fallback.clone();
        move || (sb.discord.messages(&fallback).len() >= n).then_some(())
    };
    sb.teleport.create_request("u1", &["x"], "");
    eventually("first post", posted(1)).await;

    // The operator resets the token in the developer portal: the old one is dead.
    sb.discord.set_token("rotated-bot-token-0123456789");
    let before = app.sandbox.config(&admin());
    // A token Discord does not know is refused, naming the key.
    app.rewrite_config_raw(&before.replace("rotated-bot-token-0123456789", "not-the-token"));
    let (status, body) = reload_body(&app).await;
    assert_eq!(status, 422, "{body}");
    let problems = body["details"].to_string();
    assert!(
        problems.contains("discord.token")
            && problems.contains("Discord rejected the new bot token"),
        "{body}"
    );
    assert!(
        !problems.contains("not-the-token"),
        "no secret in errors: {body}"
    );
    // The right one is applied in place.
    app.rewrite_config(&admin());
    let (status, body) = reload_body(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], serde_json::json!(["discord.token"]));
    assert_eq!(body["restart_required"], serde_json::json!([]));
    sb.teleport.create_request("u2", &["x"], "");
    eventually("a post with the new token", posted(2)).await;
    app.wait_ready().await;

    // A Teleport address where nothing answers is refused; the watch goes on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let current = app.sandbox.config(&admin());
    let auth_addr = sb.teleport.addr().to_string();
    app.rewrite_config_raw(&current.replace(&auth_addr, &dead_addr.to_string()));
    let (status, body) = reload_body(&app).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["details"].to_string().contains("teleport.addr"),
        "{body}"
    );
    sb.teleport.create_request("u3", &["x"], "");
    eventually("a post over the old connection", posted(3)).await;

    // Moving to the cluster's Proxy (TLS routing) is applied in place: a new
    // watch through the Proxy, the old stream closed, posting goes on.
    let proxy = EmulatedProxy::start(sb.teleport.addr(), sb.teleport.cluster_name())
        .await
        .expect("proxy");
    let via_proxy = current
        .replace(&auth_addr, &proxy.addr().to_string())
        .replace("connect_via = \"auth\"", "connect_via = \"proxy\"");
    app.rewrite_config_raw(&via_proxy);
    let (status, body) = reload_body(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["changed"],
        serde_json::json!(["teleport.addr", "teleport.connect_via"])
    );
    assert!(proxy.routed() >= 1, "the new watch goes through the Proxy");
    eventually("one watch left", || {
        (app.sandbox.teleport.watchers().len() == 1).then_some(())
    })
    .await;
    let routed = proxy.routed();
    let id = sb.teleport.create_request("u4", &["x"], "");
    eventually("a post after the move", posted(4)).await;
    eventually("plugin data recorded through the Proxy", || {
        app.sandbox
            .teleport
            .plugin_data(&id, "discord")
            .filter(|d| d.contains_key("messages"))
    })
    .await;
    assert!(proxy.routed() >= routed);
    app.wait_ready().await;
    assert_eq!(app.sandbox.discord.stats().rate_limited(), 0);
    app.stop().await;
}

/// A reload whose new Teleport address answers only after longer than the
/// HTTP request timeout (a 6 s link: the handshake and `Ping` take about
/// 12 s, each within its own limit, against the 10 s request timeout) is owned to its end
/// by the reload task: a client that gives up changes nothing about it, the
/// outcome is at `GET /admin/reload`, and a patient client gets its 200.
/// Either way the watch, the stored config, the metric and the log agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_teleport_switch_is_finished_whatever_the_client_does() {
    use teleport_discord_testkit::net::SlowLink;
    let app = TestApp::start(&admin()).await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let auth_addr = sb.teleport.addr().to_string();
    let latency = Duration::from_secs(6);
    let get_status = || async {
        let r = app
            .client
            .get(app.url("/admin/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("GET /admin/reload");
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.expect("JSON")
    };
    assert_eq!(get_status().await["last"], serde_json::Value::Null);

    // 1. The client hangs up after a second.
    let slow = SlowLink::start(sb.teleport.addr(), latency)
        .await
        .expect("slow");
    let text = sb.config(&admin());
    app.rewrite_config_raw(&text.replace(&auth_addr, &slow.addr().to_string()));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let gave_up = impatient
        .post(app.url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    assert_eq!(get_status().await["running"], 1, "still running");
    let started = tokio::time::Instant::now();
    let last = loop {
        let s = get_status().await;
        if !s["last"].is_null() {
            break s["last"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "never finished: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(last["result"], "success", "{last}");
    assert_eq!(
        last["changed"],
        serde_json::json!(["teleport.addr"]),
        "{last}"
    );
    assert!(
        slow.forwarded() >= 1,
        "the new watch goes through the slow address"
    );
    eventually("the old watch is stopped", || {
        (app.sandbox.teleport.watchers().len() == 1).then_some(())
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(
            r#"teleport_discord_config_reloads_total{result="success",trigger="http"} 1"#
        ),
        "{metrics}"
    );
    // 2. A patient client gets the outcome itself, past the 10 s request
    // timeout: 200 after the switch, not a 503 from a timeout layer.
    let slower = SlowLink::start(sb.teleport.addr(), latency)
        .await
        .expect("slow");
    app.rewrite_config_raw(&text.replace(&auth_addr, &slower.addr().to_string()));
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let asked = tokio::time::Instant::now();
    let r = patient
        .post(app.url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("POST /admin/reload");
    assert!(
        asked.elapsed() > teleport_discord::http::REQUEST_TIMEOUT,
        "took {:?}: not slower than the request timeout",
        asked.elapsed()
    );
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(body["id"], 2, "{body}");
    assert_eq!(
        body["changed"],
        serde_json::json!(["teleport.addr"]),
        "{body}"
    );
    assert!(slower.forwarded() >= 1);
    app.wait_ready().await;
    app.stop().await;
}

/// Upstream's `getLoginsByRole`: each requested role's logins in the message;
/// without `role` read the message goes out without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_by_role_are_shown_and_missing_permission_only_degrades() {
    let app = TestApp::start("").await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let [dev, _, fallback] = sb.channels.clone();
    sb.teleport.set_role_logins("dev", &["ubuntu", "root"]);
    let id = sb.teleport.create_request("alice", &["dev"], "");
    let m = eventually("post", || sb.discord.messages(&dev).into_iter().next()).await;
    assert!(
        m.content
            .contains("*Role*: `dev` *Login(s)*: `root, ubuntu`"),
        "{}",
        m.content
    );
    let pd = sb
        .teleport
        .plugin_data(&id, "discord")
        .expect("plugin data");
    assert_eq!(pd["logins_by_role"], r#"{"dev":["ubuntu","root"]}"#);

    sb.teleport.set_permissions(Permissions {
        read_roles: false,
        ..Permissions::default()
    });
    let id = sb.teleport.create_request("bob", &["ops-admin"], "");
    let m = eventually("post without logins", || {
        sb.discord.messages(&fallback).into_iter().next()
    })
    .await;
    assert!(m.content.contains(&id), "{}", m.content);
    assert!(
        m.content.contains("*Role(s)*: `ops-admin`"),
        "{}",
        m.content
    );
    assert!(!m.content.contains("Login(s)"), "{}", m.content);
    app.stop().await;
}

/// Sandbox with a request that needs two approvals (or two denials).
async fn threshold_case(approve: bool) {
    let app = TestApp::start("").await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let fallback = sb.channels[2].clone();
    let id = sb
        .teleport
        .create_request_with_threshold("erin", &["x"], "", 2, 2);
    let first = |sb: &Sandbox| sb.discord.messages(&fallback).into_iter().next();
    eventually("post", || first(&app.sandbox)).await;
    sb.teleport
        .add_review(&id, "r1", approve, "one")
        .expect("review 1");
    eventually("one review shown, one more needed", || {
        let m = first(&app.sandbox)?;
        (m.embeds.as_array()?.len() == 1 && status_line(&m.content).contains("PENDING"))
            .then_some(())
    })
    .await;
    sb.teleport
        .add_review(&id, "r2", approve, "two")
        .expect("review 2");
    let want = if approve {
        "*Status*: ✅ APPROVED"
    } else {
        "*Status*: ❌ DENIED"
    };
    let m = eventually("resolved by threshold", || {
        let m = first(&app.sandbox)?;
        (status_line(&m.content) == want).then_some(m)
    })
    .await;
    assert_eq!(m.embeds.as_array().map(Vec::len), Some(2), "both reviews");
    assert_eq!(app.sandbox.discord.messages(&fallback).len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_by_threshold() {
    threshold_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_by_threshold() {
    threshold_case(false).await;
}

/// Upstream's `TestRace`: many requests created at once, then all reviewed at
/// once; each gets exactly one message per channel and ends showing its
/// final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_racing() {
    // Discord's rules with larger numbers, so 160 operations take seconds
    // rather than minutes (the limits themselves are the delivery tests' and
    // the benchmark's business).
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = EmulatorConfig {
        create_limit: 50,
        create_window: Duration::from_secs(1),
        edit_limit: 50,
        edit_window: Duration::from_secs(1),
        global_limit: 1000,
        ..EmulatorConfig::default()
    };
    let sb = Sandbox::start(dir.path(), limits).await.expect("emulators");
    let app = TestApp::start_with(sb, "").await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let [dev, ops, _] = sb.channels.clone();
    let ids: Vec<String> = (0..40)
        .map(|i| {
            sb.teleport
                .create_request(&format!("user{i}"), &["dev"], "race")
        })
        .collect();
    // Reviews start once all are posted: a request resolved before it was
    // ever seen pending is not announced (as upstream).
    eventually("every request posted", || {
        (app.sandbox.teleport.watchers().len() == 1
            && [&dev, &ops]
                .iter()
                .all(|ch| app.sandbox.discord.messages(ch).len() == ids.len()))
        .then_some(())
    })
    .await;
    for (i, id) in ids.iter().enumerate() {
        sb.teleport
            .add_review(id, "rev", i % 2 == 0, "quick")
            .expect("review");
    }
    for ch in [&dev, &ops] {
        let msgs = eventually("every request in both channels, final", || {
            let msgs = app.sandbox.discord.messages(ch);
            (msgs.len() == ids.len()
                && msgs
                    .iter()
                    .all(|m| !status_line(&m.content).contains("PENDING")))
            .then_some(msgs)
        })
        .await;
        for (i, id) in ids.iter().enumerate() {
            let mine: Vec<_> = msgs.iter().filter(|m| m.content.contains(id)).collect();
            assert_eq!(mine.len(), 1, "one message for {id} in {ch}");
            let want = if i % 2 == 0 { "APPROVED" } else { "DENIED" };
            assert!(status_line(&mine[0].content).contains(want));
        }
    }
    assert_eq!(
        app.sandbox.discord.stats().rate_limited(),
        0,
        "{:?}",
        app.sandbox.discord.stats()
    );
    app.stop().await;
}

/// Posted, then resolved while the service was down: after the restart the
/// message shows the resolution (and nothing is posted again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_resolved_while_down_is_shown_resolved() {
    let app = TestApp::start("").await;
    app.wait_ready().await;
    let fallback = app.sandbox.channels[2].clone();
    let id = app.sandbox.teleport.create_request("frank", &["x"], "");
    eventually("post and record", || {
        app.sandbox
            .teleport
            .plugin_data(&id, "discord")
            .filter(|d| d.contains_key("discord_rendered"))
    })
    .await;
    let app = app.stopped().await;
    app.sandbox
        .teleport
        .resolve(&id, false, "not today")
        .expect("deny");
    let app = app.start_again().await;
    let m = eventually("❌ after the restart", || {
        let m = app.sandbox.discord.messages(&fallback).into_iter().next()?;
        (status_line(&m.content) == "*Status*: ❌ DENIED").then_some(m)
    })
    .await;
    assert!(m.content.contains("not today"), "{}", m.content);
    assert_eq!(app.sandbox.discord.messages(&fallback).len(), 1);
    app.stop().await;
}

/// A message the Go plugin posted (its plugin data layout: `messages` only,
/// no channel list, no digest) is edited in place, never posted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_data_written_by_the_go_plugin_is_continued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let fallback = sb.channels[2].clone();
    let id = sb.teleport.create_request("gina", &["x"], "legacy");
    // What the Go plugin left behind: its message, and its plugin data.
    let msg = sb.discord.insert_message(
        &fallback,
        "You have a new Role Request:\n(posted by the Go plugin)",
    );
    sb.teleport.put_plugin_data(
        &id,
        "discord",
        &[
            ("user", "gina"),
            ("roles", "x"),
            ("request_reason", "legacy"),
            ("messages", &format!("{fallback}/{msg}")),
        ],
    );
    let app = TestApp::start_with(sb, "").await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    sb.teleport.resolve(&id, true, "ok").expect("approve");
    let m = eventually("the Go plugin's message edited", || {
        let m = sb.discord.messages(&fallback).into_iter().next()?;
        (status_line(&m.content) == "*Status*: ✅ APPROVED").then_some(m)
    })
    .await;
    assert_eq!(m.id, msg);
    assert_eq!(
        sb.discord.messages(&fallback).len(),
        1,
        "nothing posted twice"
    );
    assert_eq!(sb.discord.stats().messages_created, 0);
    let pd = eventually("the resolution recorded", || {
        sb.teleport
            .plugin_data(&id, "discord")
            .filter(|d| d.contains_key("resolution"))
    })
    .await;
    assert_eq!(pd["messages"], format!("{fallback}/{msg}"));
    assert_eq!(pd["resolution"], "APPROVED");
    app.stop().await;
}

/// Hostile and huge request text: a 10,000-character reason, 50 reviews,
/// mentions, right-to-left and zero-width characters. Every message stays
/// within Discord's limits (the emulator answers 400 otherwise) and pings
/// nobody, on the create and on every edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_huge_text_renders_within_limits_and_pings_nobody() {
    let app = TestApp::start("").await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let fallback = sb.channels[2].clone();
    let reason = format!(
        "@everyone @here <@123456789012345678> <@&987654321098765432> \u{202e}drowssap\u{202c} a\u{200b}b {}",
        "x".repeat(10_000)
    );
    let id = sb
        .teleport
        .create_request_with_threshold("mallory <@1>", &["x"], &reason, 100, 100);
    eventually("post", || sb.discord.messages(&fallback).into_iter().next()).await;
    for i in 0..50 {
        sb.teleport
            .add_review(&id, &format!("rev{i} @everyone"), i % 3 != 0, &reason)
            .expect("review");
    }
    sb.teleport.resolve(&id, true, &reason).expect("approve");
    let m = eventually("approved with 50 reviews", || {
        let m = sb.discord.messages(&fallback).into_iter().next()?;
        (status_line(&m.content) == "*Status*: ✅ APPROVED").then_some(m)
    })
    .await;
    assert!(m.content.chars().count() <= 2000);
    let embeds = m.embeds.as_array().expect("embeds");
    assert!(!embeds.is_empty() && embeds.len() <= 10, "{}", embeds.len());
    assert!(
        m.content.contains("(truncated)"),
        "a visible truncation marker"
    );
    // `would_mention` gathers the create's and every edit's would-be pings.
    assert!(m.would_mention.is_empty(), "{:?}", m.would_mention);
    assert!(m.history.len() > 1, "edited");
    for body in &m.history {
        assert_eq!(
            body["allowed_mentions"]["parse"],
            serde_json::json!([]),
            "every create and edit suppresses mentions"
        );
    }
    let stats = sb.discord.stats();
    assert_eq!(stats.rejected_bodies, 0, "no payload was refused");
    assert_eq!(sb.discord.messages(&fallback).len(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.stop().await;
}
