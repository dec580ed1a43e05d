//! The whole pipeline, end to end: the service (in-process, real HTTP, real
//! gRPC over mutual TLS) against both emulators.

use std::time::Duration;

use teleport_discord_testkit::sandbox::Sandbox;

use crate::support::{TestApp, eventually, status_line};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_is_posted_reviewed_approved_and_expired() {
    let app = TestApp::start("").await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let [dev, ops, fallback] = sb.channels.clone();
    let id = sb
        .teleport
        .create_request("alice@example.com", &["dev"], "deploy @everyone <@123>");

    // One message in each of dev's channels, none in the fallback.
    for ch in [&dev, &ops] {
        let m = eventually("the post", || sb.discord.messages(ch).into_iter().next()).await;
        assert!(
            m.content.starts_with("You have a new Role Request:\n"),
            "{}",
            m.content
        );
        assert!(m.content.contains(&format!("*ID*: {id}")), "{}", m.content);
        assert_eq!(status_line(&m.content), "*Status*: ⏳ PENDING");
        assert!(
            m.would_mention.is_empty(),
            "nobody pinged: {:?}",
            m.would_mention
        );
        assert!(m.nonce.is_some(), "creates carry a nonce");
    }
    assert!(sb.discord.messages(&fallback).is_empty());
    let pd = eventually("plugin data", || {
        sb.teleport
            .plugin_data(&id, "discord")
            .filter(|d| d.get("messages").is_some_and(|m| m.contains(',')))
    })
    .await;
    assert_eq!(pd["user"], "alice@example.com");

    // A review edits both messages with an embed.
    sb.teleport
        .add_review(&id, "bob@example.com", true, "okay")
        .expect("review");
    eventually("the review embed", || {
        let m = sb.discord.messages(&dev).into_iter().next()?;
        (m.embeds.as_array().is_some_and(|e| e.len() == 1)).then_some(())
    })
    .await;
    let m = eventually("the review embed in ops too", || {
        let m = sb.discord.messages(&ops).into_iter().next()?;
        (m.embeds.as_array().is_some_and(|e| e.len() == 1)).then_some(m)
    })
    .await;
    let embed = &m.embeds[0];
    assert_eq!(embed["author"]["name"], "bob@example.com");
    assert!(
        embed["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Approved request at "))
    );

    // Approval: ✅ everywhere, still one message per channel.
    sb.teleport
        .resolve(&id, true, "fine by me")
        .expect("approve");
    for ch in [&dev, &ops] {
        eventually("✅", || {
            let m = sb.discord.messages(ch).into_iter().next()?;
            (status_line(&m.content) == "*Status*: ✅ APPROVED").then_some(())
        })
        .await;
        assert_eq!(sb.discord.messages(ch).len(), 1);
    }
    // Expiry after approval keeps ✅.
    sb.teleport.delete_request(&id).expect("delete");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_line(&sb.discord.messages(&dev)[0].content),
        "*Status*: ✅ APPROVED"
    );

    // A pending request that expires shows ⌛ and is denied nowhere.
    let id2 = sb.teleport.create_request("carol", &["unmapped"], "");
    let m = eventually("fallback post", || {
        sb.discord.messages(&fallback).into_iter().next()
    })
    .await;
    assert!(m.content.contains(&id2));
    sb.teleport.delete_request(&id2).expect("delete");
    eventually("⌛", || {
        let m = sb.discord.messages(&fallback).into_iter().next()?;
        (status_line(&m.content) == "*Status*: ⌛ EXPIRED").then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_made_while_down_are_posted_and_a_restart_posts_nothing_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let fallback = sb.channels[2].clone();
    // Created (and one denied) before the service ever ran.
    let pending = sb
        .teleport
        .create_request("dave", &["x"], "while you were away");
    let app = TestApp::start_with(sb, "").await;
    let sb = &app.sandbox;
    let m = eventually("catch-up post", || {
        sb.discord.messages(&fallback).into_iter().next()
    })
    .await;
    assert!(m.content.contains(&pending), "{}", m.content);
    eventually("recorded", || {
        sb.teleport
            .plugin_data(&pending, "discord")
            .filter(|d| d.contains_key("discord_rendered"))
    })
    .await;
    let created = sb.discord.stats().messages_created;
    // A restart: same cluster, same Discord, plugin data in place.
    let app = app.restart().await;
    app.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.sandbox.discord.stats().messages_created,
        created,
        "nothing posted twice"
    );
    assert_eq!(app.sandbox.discord.messages(&fallback).len(), 1);
    app.stop().await;
}

/// Upstream's `TestMessagePostingWithAMR`, and the two follow-ups: a rule
/// deleted at run time stops applying; without permission to read rules the
/// config still routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_monitoring_rules_route_requests() {
    let app = TestApp::start("").await;
    let sb = &app.sandbox;
    let [dev, ops, fallback] = sb.channels.clone();
    // The rule sends everything with roles to dev and fallback, overriding the config.
    sb.teleport.put_rule(
        "all-to-two",
        "discord",
        &[dev.as_str(), fallback.as_str()],
        "!is_empty(access_request.spec.roles)",
    );
    app.wait_ready().await;
    let id = sb
        .teleport
        .create_request("erin", &["ops-role"], "via rule");
    for ch in [&dev, &fallback] {
        let m = eventually("rule-routed post", || {
            sb.discord.messages(ch).into_iter().next()
        })
        .await;
        assert!(m.content.contains(&id), "{}", m.content);
    }
    assert!(sb.discord.messages(&ops).is_empty());

    // Deleted at run time: the next request follows role_to_recipients (dev → dev, ops).
    sb.teleport.delete_rule("all-to-two");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id2 = sb.teleport.create_request("frank", &["dev"], "via config");
    let m = eventually("config-routed post", || {
        sb.discord
            .messages(&ops)
            .into_iter()
            .find(|m| m.content.contains(&id2))
    })
    .await;
    assert!(m.content.contains("frank"));
    assert!(
        !sb.discord
            .messages(&fallback)
            .iter()
            .any(|m| m.content.contains(&id2))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rule_permissions_the_config_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sb = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    sb.teleport
        .set_permissions(teleport_discord_testkit::teleport::Permissions {
            write_plugin_data: true,
            read_access_monitoring_rules: false,
            ..Default::default()
        });
    let [_, _, fallback] = sb.channels.clone();
    sb.teleport
        .put_rule("unseen", "discord", &["424242"], "true");
    let app = TestApp::start_with(sb, "").await;
    app.wait_ready().await;
    let sb = &app.sandbox;
    let id = sb.teleport.create_request("gina", &["unmapped"], "");
    let m = eventually("fallback post", || {
        sb.discord.messages(&fallback).into_iter().next()
    })
    .await;
    assert!(m.content.contains(&id));
    app.stop().await;
}
