//! Discord delivery against the in-crate emulator: rate limits, retries,
//! idempotent creates, the queue. Limits are scaled down (3 per 300 ms per
//! channel) so the whole file runs in a few seconds.

use std::time::Duration;

use teleport_discord::discord::ratelimit::BucketKey;
use teleport_discord::discord::{
    ActionRow, Button, ClientOptions, Delivery, DeliveryError, DiscordClient, DiscordError,
    DiscordMetrics, Embed, MessagePayload, Op, QueueOptions,
};
use teleport_discord::readiness::Readiness;
use teleport_discord::reconcile::nonce_for;
use teleport_discord::secret::Secret;
use teleport_discord_testkit::discord::{
    DiscordEmulator, EmulatorConfig, Faults, MESSAGE_BUCKET, Scope,
};
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_millis(300);

fn fast_limits() -> EmulatorConfig {
    EmulatorConfig {
        create_limit: 3,
        create_window: WINDOW,
        edit_limit: 3,
        edit_window: WINDOW,
        global_limit: 50,
        ..EmulatorConfig::default()
    }
}

fn options(emu: &DiscordEmulator) -> ClientOptions {
    let mut o = ClientOptions::new(emu.api_url(), Secret::new(emu.token()));
    o.request_timeout = Duration::from_secs(2);
    o.backoff = teleport_discord::backoff::Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(100),
    );
    o
}

async fn setup_with(
    config: EmulatorConfig,
    tweak: impl FnOnce(&mut ClientOptions),
) -> (DiscordEmulator, DiscordClient) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = DiscordEmulator::start(config).await.expect("emulator");
    let mut o = options(&emu);
    tweak(&mut o);
    let client =
        DiscordClient::with_options(o, DiscordMetrics::unregistered(), None).expect("client");
    (emu, client)
}

async fn setup() -> (DiscordEmulator, DiscordClient) {
    setup_with(fast_limits(), |_| {}).await
}

fn text(s: &str) -> MessagePayload {
    MessagePayload::text(s)
}

fn create(channel: &str, n: usize) -> Op {
    Op::Create {
        channel_id: channel.to_owned(),
        nonce: nonce_for(&format!("req-{n}"), channel),
        payload: text(&format!("c{n}")),
    }
}

#[tokio::test]
async fn emulator_speaks_discords_rate_limit_headers_and_429_bodies() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = DiscordEmulator::start(EmulatorConfig {
        create_limit: 1,
        create_window: Duration::from_secs(10),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let ch = emu.add_channel("general");
    let http = reqwest::Client::new();
    let url = format!("{}/channels/{ch}/messages", emu.api_url());
    let send = || {
        http.post(&url)
            .header("authorization", format!("Bot {}", emu.token()))
            .json(&serde_json::json!({"content": "hi"}))
            .send()
    };
    let ok = send().await.expect("send");
    assert_eq!(ok.status(), 200);
    let h = ok.headers();
    assert_eq!(h["x-ratelimit-limit"], "1");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    assert_eq!(h["x-ratelimit-bucket"], MESSAGE_BUCKET);
    let reset_after: f64 = h["x-ratelimit-reset-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("float");
    assert!(reset_after > 5.0 && reset_after <= 10.0, "{reset_after}");
    assert!(
        h["x-ratelimit-reset"]
            .to_str()
            .expect("ascii")
            .contains('.')
    );

    let limited = send().await.expect("send");
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-ratelimit-scope"], "user");
    let retry_header: f64 = limited.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("integer");
    let body: serde_json::Value = limited.json().await.expect("json");
    assert_eq!(body["global"], false);
    let retry_after = body["retry_after"].as_f64().expect("float retry_after");
    assert!(retry_after > 5.0 && retry_after <= 10.0, "{body}");
    assert_eq!(
        retry_header,
        retry_after.ceil(),
        "Retry-After is the body's value rounded up"
    );

    let unauth = http
        .get(format!("{}/users/@me", emu.api_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(unauth.status(), 401);
    assert_eq!(emu.stats().rate_limited_user, 1);
    assert_eq!(emu.stats().invalid_requests_window, 2);
}

#[tokio::test]
async fn emulator_bans_after_too_many_invalid_requests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = DiscordEmulator::start(EmulatorConfig {
        ban_threshold: 2,
        ..fast_limits()
    })
    .await
    .expect("emulator");
    let http = reqwest::Client::new();
    let me = format!("{}/users/@me", emu.api_url());
    for _ in 0..2 {
        assert_eq!(
            http.get(&me)
                .header("authorization", "Bot wrong")
                .send()
                .await
                .expect("send")
                .status(),
            401
        );
    }
    let banned = http
        .get(&me)
        .header("authorization", format!("Bot {}", emu.token()))
        .send()
        .await
        .expect("send");
    assert_eq!(banned.status(), 429);
    assert!(banned.headers().get("x-ratelimit-bucket").is_none());
    assert!(
        banned
            .text()
            .await
            .expect("body")
            .contains("blocked from accessing our API temporarily")
    );
}

#[tokio::test]
async fn typed_errors_from_discord_bodies() {
    let (emu, client) = setup().await;
    let ch = emu.add_channel("general");
    let too_long = MessagePayload {
        embeds: Some(vec![Embed {
            title: Some("t".repeat(300)),
            ..Embed::default()
        }]),
        ..text("x")
    };
    let err = client
        .create_message(&ch, "n1", &too_long)
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), Some(50035));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("embeds.0.title"), "{err}");

    let err = client
        .edit_message(&ch, "123", &text("x"))
        .await
        .expect_err("unknown message");
    assert!(err.is_unknown_message(), "{err}");
    let err = client
        .get_channel("999")
        .await
        .expect_err("unknown channel");
    assert!(err.is_unknown_channel(), "{err}");
    assert_eq!(
        client
            .get_channel(&ch)
            .await
            .expect("channel")
            .name
            .as_deref(),
        Some("general")
    );
    emu.add_user_with_id("4242", "reviewer");
    let dm = client.create_dm("4242").await.expect("dm");
    assert_eq!(dm.kind, 1);
    assert_eq!(client.create_dm("4242").await.expect("dm again").id, dm.id);

    // Buttons, embeds and suppressed mentions go through as sent.
    let payload = MessagePayload {
        embeds: Some(vec![Embed {
            title: Some("Access request".to_owned()),
            ..Embed::default()
        }]),
        components: vec![ActionRow::new(vec![
            Button::action(3, "Approve", "approve:1"),
            Button::action(4, "Deny", "deny:1"),
        ])],
        ..text("<@123> @everyone needs review")
    };
    let m = client
        .create_message(&ch, "n2", &payload)
        .await
        .expect("create");
    let stored = &emu.messages(&ch)[0];
    assert_eq!(stored.id, m.id);
    assert!(
        stored.would_mention.is_empty(),
        "{:?}",
        stored.would_mention
    );
    assert_eq!(stored.components[0]["components"][1]["custom_id"], "deny:1");
}

#[tokio::test]
async fn bucket_discovery_then_pipelining_without_429s() {
    let (emu, client) = setup().await;
    let ch = emu.add_channel("general");
    let key = BucketKey::new("POST /channels/{}/messages", ch.clone());
    assert!(client.limiter().bucket(&key).is_none());
    client
        .create_message(&ch, "first", &text("first"))
        .await
        .expect("create");
    let learned = client.limiter().bucket(&key).expect("bucket");
    assert_eq!(learned.hash.as_deref(), Some(MESSAGE_BUCKET));
    assert_eq!(learned.limit, Some(3));

    // 9 more at once: 3 windows' worth after the first window; no 429.
    let start = Instant::now();
    let tasks: Vec<_> = (0..9)
        .map(|i| {
            let (client, ch) = (client.clone(), ch.clone());
            tokio::spawn(async move {
                client
                    .create_message(&ch, &format!("n{i}"), &text("x"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("create");
    }
    assert_eq!(emu.stats().rate_limited(), 0);
    assert_eq!(emu.messages(&ch).len(), 10);
    assert!(start.elapsed() >= WINDOW * 2, "{:?}", start.elapsed());
}

#[tokio::test]
async fn no_429_under_sustained_load_at_the_limits() {
    let (emu, client) = setup_with(
        EmulatorConfig {
            global_limit: 30,
            ..fast_limits()
        },
        |o| o.global_rate_limit = 30,
    )
    .await;
    let channels: Vec<String> = (0..4).map(|i| emu.add_channel(&format!("c{i}"))).collect();
    let delivery = Delivery::start(client.clone(), QueueOptions::default());
    let mut pending = Vec::new();
    for n in 0..12 {
        for ch in &channels {
            pending.push((
                ch.clone(),
                delivery.enqueue(create(ch, n)).await.expect("enqueue"),
            ));
        }
    }
    let mut edits = Vec::new();
    for (ch, p) in pending {
        let m = p.wait().await.expect("created");
        edits.push(
            delivery
                .enqueue(Op::Edit {
                    channel_id: ch,
                    message_id: m.id,
                    payload: text("edited"),
                })
                .await
                .expect("enqueue"),
        );
    }
    for e in edits {
        e.wait().await.expect("edited");
    }
    let stats = emu.stats();
    assert_eq!(stats.rate_limited(), 0, "{stats:?}");
    assert_eq!(stats.messages_created, 48);
    assert_eq!(stats.edits, 48);
    assert_eq!(stats.duplicates, 0);
    assert_eq!(client.metrics().rate_limited_total(), 0);
    for ch in &channels {
        let contents: Vec<String> = emu
            .messages(ch)
            .iter()
            .map(|m| {
                m.history[0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let expected: Vec<String> = (0..12).map(|n| format!("c{n}")).collect();
        assert_eq!(contents, expected, "creates kept their order");
    }
}

#[tokio::test]
async fn global_429_pauses_every_bucket() {
    let (emu, client) = setup().await;
    let (a, b, c) = (
        emu.add_channel("a"),
        emu.add_channel("b"),
        emu.add_channel("c"),
    );
    emu.force_429(Some(&a), Scope::Global, Duration::from_millis(500));
    let start = Instant::now();
    let first = {
        let (client, a) = (client.clone(), a.clone());
        tokio::spawn(async move { client.create_message(&a, "a", &text("a")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (pb, pc) = (text("b"), text("c"));
    let (rb, rc) = tokio::join!(
        client.create_message(&b, "b", &pb),
        client.create_message(&c, "c", &pc)
    );
    rb.expect("b");
    rc.expect("c");
    first.await.expect("task").expect("a");
    assert!(start.elapsed() >= Duration::from_millis(500));
    // Only the request that found the limit got a 429; b and c waited.
    assert_eq!(emu.stats().rate_limited_global, 1, "{:?}", emu.stats());
}

#[tokio::test]
async fn per_route_429_pauses_only_its_bucket() {
    let (emu, client) = setup().await;
    let (a, b) = (emu.add_channel("a"), emu.add_channel("b"));
    emu.force_429(Some(&a), Scope::User, Duration::from_millis(800));
    let start = Instant::now();
    let on_a = {
        let (client, a) = (client.clone(), a.clone());
        tokio::spawn(async move {
            client
                .create_message(&a, "a1", &text("a1"))
                .await
                .expect("a1");
            client
                .create_message(&a, "a2", &text("a2"))
                .await
                .expect("a2");
            start.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.create_message(&b, "b", &text("b")).await.expect("b");
    assert!(
        start.elapsed() < Duration::from_millis(400),
        "b waited for a's limit: {:?}",
        start.elapsed()
    );
    assert!(on_a.await.expect("task") >= Duration::from_millis(800));
    assert_eq!(emu.stats().rate_limited_user, 1);
}

#[tokio::test]
async fn shared_scope_waits_without_counting_as_invalid() {
    let (emu, client) = setup().await;
    let a = emu.add_channel("a");
    emu.force_429(Some(&a), Scope::Shared, Duration::from_millis(300));
    let start = Instant::now();
    client
        .create_message(&a, "a", &text("a"))
        .await
        .expect("delivered after the wait");
    assert!(start.elapsed() >= Duration::from_millis(300));
    let stats = emu.stats();
    assert_eq!(stats.rate_limited_shared, 1);
    assert_eq!(stats.invalid_requests_window, 0);
    assert_eq!(client.limiter().invalid_count(), 0);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_and_nonce_keeps_one_message() {
    let (emu, client) = setup_with(fast_limits(), |o| {
        o.request_timeout = Duration::from_millis(300)
    })
    .await;
    let ch = emu.add_channel("a");
    emu.set_faults(Faults {
        fail_next: 2,
        ..Faults::default()
    });
    client
        .create_message(&ch, "n-5xx", &text("after 500s"))
        .await
        .expect("retried past 500s");
    assert_eq!(emu.stats().server_errors, 2);

    // Processed, but the answer comes after our timeout: the retry must not make a second message.
    emu.set_faults(Faults {
        slow_next: 1,
        slow_latency: Duration::from_secs(1),
        ..Faults::default()
    });
    let m = client
        .create_message(&ch, "n-timeout", &text("slow"))
        .await
        .expect("retried past the timeout");
    // Processed, then the connection drops mid-answer.
    emu.set_faults(Faults {
        drop_next: 1,
        ..Faults::default()
    });
    let d = client
        .create_message(&ch, "n-drop", &text("dropped"))
        .await
        .expect("retried past the drop");
    let msgs = emu.messages(&ch);
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert_eq!(msgs[1].id, m.id);
    assert_eq!(msgs[2].id, d.id);
    let stats = emu.stats();
    assert_eq!(stats.nonce_deduplicated, 2);
    assert_eq!(stats.duplicates, 0);
    assert!(client.metrics().retries_total() >= 4);

    // Attempts are bounded: a permanent outage hands the error back as retryable.
    emu.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let err = client
        .create_message(&ch, "n-down", &text("down"))
        .await
        .expect_err("gives up");
    assert!(
        matches!(err, DiscordError::Server { status: 500 }) && err.is_retryable(),
        "{err}"
    );
}

#[tokio::test]
async fn repeated_create_with_the_same_nonce_yields_one_message() {
    let (emu, client) = setup().await;
    let ch = emu.add_channel("a");
    let nonce = nonce_for("request-1", &ch);
    let first = client
        .create_message(&ch, &nonce, &text("hello"))
        .await
        .expect("create");
    let again = client
        .create_message(&ch, &nonce, &text("hello"))
        .await
        .expect("create again");
    assert_eq!(first.id, again.id);
    assert_eq!(emu.messages(&ch).len(), 1);
}

#[tokio::test]
async fn a_401_stops_sending_and_flips_readiness() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emu = DiscordEmulator::start(fast_limits())
        .await
        .expect("emulator");
    let ch = emu.add_channel("a");
    let readiness = Readiness::new();
    let latch = readiness.register("discord", "token not checked yet");
    let good = DiscordClient::with_options(
        options(&emu),
        DiscordMetrics::unregistered(),
        Some(latch.clone()),
    )
    .expect("client");
    assert_eq!(good.check_token().await.expect("token ok").id, emu.bot_id());
    assert!(readiness.is_ready());
    let ua = emu.stats().last_user_agent.unwrap_or_default();
    assert!(
        ua.starts_with("DiscordBot (https://github.com/teleport-discord/teleport-discord, "),
        "{ua}"
    );

    let mut o = options(&emu);
    o.token = Secret::new("revoked-token-value");
    let bad = DiscordClient::with_options(o, DiscordMetrics::unregistered(), Some(latch))
        .expect("client");
    let err = bad.check_token().await.expect_err("rejected");
    assert!(matches!(err, DiscordError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert!(!err.to_string().contains("revoked-token-value"));
    assert!(!readiness.is_ready());
    for i in 0..5 {
        let e = bad
            .create_message(&ch, &format!("n{i}"), &text("x"))
            .await
            .expect_err("stopped");
        assert!(matches!(e, DiscordError::Unauthorized { .. }));
    }
    assert_eq!(emu.stats().unauthorized, 1, "later requests were not sent");
}

#[tokio::test]
async fn invalid_request_guard_stops_before_the_ban() {
    let (emu, client) = setup_with(fast_limits(), |o| o.invalid_request_guard = 3).await;
    let ch = emu.add_channel("locked");
    emu.forbid_channel(&ch);
    let mut forbidden = 0;
    let mut guarded = 0;
    for i in 0..8 {
        match client
            .create_message(&ch, &format!("n{i}"), &text("x"))
            .await
        {
            Err(e) if e.code() == Some(50013) => forbidden += 1,
            Err(DiscordError::InvalidRequestGuard { .. }) => guarded += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((forbidden, guarded), (3, 5));
    assert_eq!(emu.stats().invalid_requests_window, 3);
}

#[tokio::test]
async fn edits_are_ordered_and_coalesced() {
    let (emu, client) = setup().await;
    let ch = emu.add_channel("a");
    let delivery = Delivery::start(client, QueueOptions::default());
    let m = delivery
        .enqueue(create(&ch, 0))
        .await
        .expect("enqueue")
        .wait()
        .await
        .expect("create");
    // Each answer takes 150 ms, so edits 2..5 wait while edit 1 is in flight.
    emu.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let edit = |i: usize| Op::Edit {
        channel_id: ch.clone(),
        message_id: m.id.clone(),
        payload: text(&format!("v{i}")),
    };
    let mut pending = vec![delivery.enqueue(edit(1)).await.expect("enqueue")];
    tokio::time::sleep(Duration::from_millis(50)).await; // v1 is in flight now
    for i in 2..=5 {
        pending.push(delivery.enqueue(edit(i)).await.expect("enqueue"));
    }
    for p in pending {
        assert_eq!(p.wait().await.expect("edit answered").id, m.id);
    }
    let stored = &emu.messages(&ch)[0];
    let versions: Vec<&str> = stored
        .history
        .iter()
        .filter_map(|b| b["content"].as_str())
        .collect();
    assert_eq!(
        versions,
        ["c0", "v1", "v5"],
        "only the newest waiting edit is sent"
    );
    assert_eq!(stored.content, "v5");
}

#[tokio::test]
async fn busy_channel_does_not_starve_others_and_shutdown_hands_back_the_rest() {
    let (emu, client) = setup().await;
    let (busy, quiet) = (emu.add_channel("busy"), emu.add_channel("quiet"));
    let delivery = Delivery::start(client, QueueOptions::default());
    let mut busy_pending = Vec::new();
    for n in 0..30 {
        busy_pending.push(delivery.enqueue(create(&busy, n)).await.expect("enqueue"));
    }
    let start = Instant::now();
    delivery
        .enqueue(create(&quiet, 0))
        .await
        .expect("enqueue")
        .wait()
        .await
        .expect("quiet delivered");
    assert!(
        start.elapsed() < WINDOW,
        "the quiet channel waited {:?}",
        start.elapsed()
    );
    assert!(emu.messages(&busy).len() < 10);

    let report = delivery.shutdown(Duration::from_millis(100)).await;
    assert!(!report.drained);
    assert!(report.handed_back > 0);
    let mut delivered = 0;
    let mut handed_back = 0;
    for p in busy_pending {
        match p.wait().await {
            Ok(_) => delivered += 1,
            Err(DeliveryError::ShutDown) => handed_back += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(delivered + handed_back, 30, "every operation got an answer");
    // A create cancelled mid-flight may exist on Discord; its nonce makes the requeue harmless.
    assert!(delivered <= emu.messages(&busy).len());
    assert!(matches!(
        delivery.try_enqueue(create(&busy, 99)),
        Err(teleport_discord::discord::queue::Rejected::Closed(_))
    ));
}

#[tokio::test]
async fn full_queue_applies_backpressure_and_drains_on_shutdown() {
    let (emu, client) = setup().await;
    let ch = emu.add_channel("a");
    emu.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
    let delivery = Delivery::start(
        client,
        QueueOptions {
            capacity: 2,
            max_in_flight: 1,
            ..QueueOptions::default()
        },
    );
    let first = delivery.enqueue(create(&ch, 0)).await.expect("enqueue");
    tokio::time::sleep(Duration::from_millis(30)).await; // now in flight
    let second = delivery.try_enqueue(create(&ch, 1)).expect("room");
    let third = delivery.try_enqueue(create(&ch, 2)).expect("room");
    let full = delivery.try_enqueue(create(&ch, 3));
    assert!(
        matches!(
            full,
            Err(teleport_discord::discord::queue::Rejected::Full(_))
        ),
        "{full:?}"
    );
    // The waiting enqueue gets in once the first is answered.
    let fourth = tokio::time::timeout(Duration::from_secs(2), delivery.enqueue(create(&ch, 3)))
        .await
        .expect("room appeared")
        .expect("enqueue");
    let report = delivery.shutdown(Duration::from_secs(5)).await;
    assert!(report.drained, "{report:?}");
    for p in [first, second, third, fourth] {
        p.wait().await.expect("delivered during drain");
    }
    assert_eq!(emu.messages(&ch).len(), 4);
}
