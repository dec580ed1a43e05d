//! Telling people directly, end to end: the requester's DM when a request
//! is resolved, and access list review reminders to the lists' owners.

use std::time::{Duration, SystemTime};

use teleport_discord_testkit::sandbox::Sandbox;

use crate::support::{TestApp, eventually};

const REQUESTER: &str = "200000000000000001";
const ALICE: &str = "200000000000000002";
const BOB: &str = "200000000000000003";

async fn start(extra: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let text = sandbox.config(extra);
    let app = TestApp::start_with_text(sandbox, dir, &text).await;
    app.wait_ready().await;
    setup(&app.sandbox);
    app
}

/// Emulators with the users set up, not yet served.
async fn sandbox() -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    setup(&sandbox);
    (dir, sandbox)
}

fn setup(sandbox: &Sandbox) {
    let (t, d) = (&sandbox.teleport, &sandbox.discord);
    d.add_user_with_id(REQUESTER, "requester");
    d.add_user_with_id(ALICE, "alice");
    d.add_user_with_id(BOB, "bob");
    t.put_user("requester", &[], &[("discord_user_id", &[REQUESTER])]);
    t.put_user("alice", &[], &[("discord_user_id", &[ALICE])]);
    t.put_user("nobody", &[], &[]);
    t.put_user("carol", &[], &[]);
}

fn dms(app: &TestApp, user: &str) -> Vec<String> {
    app.sandbox
        .discord
        .dm_channel(user)
        .map(|c| {
            app.sandbox
                .discord
                .messages(&c)
                .into_iter()
                .map(|m| m.content)
                .collect()
        })
        .unwrap_or_default()
}

async fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Creates a request by `user` and waits until it is posted (a request
/// resolved before it was ever shown is not posted, nor DMed about).
async fn posted(app: &TestApp, user: &str, reason: &str) -> String {
    let id = app.sandbox.teleport.create_request(user, &["dev"], reason);
    eventually("the request's message", || {
        app.sandbox
            .teleport
            .plugin_data(&id, "discord")
            .filter(|d| {
                d.get("messages")
                    .is_some_and(|m| m.matches('/').count() == 2)
            })
    })
    .await;
    id
}

/// Waits until request `id`'s DM record is final, and returns it.
async fn record(app: &TestApp, id: &str) -> String {
    eventually("the DM record", || {
        app.sandbox
            .teleport
            .plugin_data(id, "discord")
            .and_then(|d| d.get("discord_requester_dm").cloned())
            .filter(|v| !v.ends_with(" due") && !v.contains(" claimed "))
    })
    .await
}

#[tokio::test]
async fn the_requester_hears_of_approval_denial_and_expiry_once_each() {
    let app = start("[notify]\nrequester = true\n").await;
    let t = &app.sandbox.teleport;
    let approved = posted(&app, "requester", "deploy").await;
    t.add_review(&approved, "alice", true, "go ahead")
        .expect("review");
    assert_eq!(record(&app, &approved).await, "APPROVED sent");
    let denied = posted(&app, "requester", "again").await;
    t.add_review(&denied, "alice", false, "not today")
        .expect("review");
    assert_eq!(record(&app, &denied).await, "DENIED sent");
    let expired = posted(&app, "requester", "late").await;
    t.delete_request(&expired).expect("delete");
    assert_eq!(record(&app, &expired).await, "EXPIRED sent");
    let got = dms(&app, REQUESTER);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].contains("was approved by alice") && got[0].contains("go ahead"),
        "{}",
        got[0]
    );
    assert!(
        got[1].contains("was denied by alice") && got[1].contains("not today"),
        "{}",
        got[1]
    );
    assert!(got[2].contains("expired"), "{}", got[2]);
    assert_eq!(
        metric(
            &app,
            "teleport_discord_direct_messages_total{kind=\"requester\",outcome=\"sent\"}"
        )
        .await,
        3.0
    );
    // A restart sends nothing again.
    let app = app.restart().await;
    app.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dms(&app, REQUESTER).len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn no_dm_when_off_or_unmapped_and_a_refused_dm_is_not_retried() {
    let app = start("[notify]\nrequester = true\n").await;
    let t = &app.sandbox.teleport;
    let unmapped = posted(&app, "nobody", "x").await;
    t.add_review(&unmapped, "alice", true, "").expect("review");
    assert_eq!(record(&app, &unmapped).await, "APPROVED unmapped");
    // DMs closed: Discord answers 50007; logged, counted, recorded, not retried.
    app.sandbox.discord.set_accepts_dms(REQUESTER, false);
    let closed = posted(&app, "requester", "y").await;
    t.add_review(&closed, "alice", true, "").expect("review");
    assert_eq!(record(&app, &closed).await, "APPROVED refused");
    let refused = "teleport_discord_direct_messages_total{kind=\"requester\",outcome=\"refused\"}";
    assert_eq!(metric(&app, refused).await, 1.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(metric(&app, refused).await, 1.0, "not retried");
    assert!(dms(&app, REQUESTER).is_empty());
    app.stop().await;

    // Off (the default): no record, no DM.
    let off = start("").await;
    let id = posted(&off, "requester", "z").await;
    off.sandbox
        .teleport
        .add_review(&id, "alice", true, "")
        .expect("review");
    eventually("the approval shown", || {
        off.sandbox
            .teleport
            .plugin_data(&id, "discord")
            .filter(|d| d.get("resolution").is_some_and(|r| r == "APPROVED"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let data = off
        .sandbox
        .teleport
        .plugin_data(&id, "discord")
        .expect("data");
    assert!(!data.contains_key("discord_requester_dm"), "{data:?}");
    assert!(dms(&off, REQUESTER).is_empty());
    off.stop().await;
}

#[tokio::test]
async fn two_replicas_send_one_dm_with_or_without_the_lease() {
    for lease in ["", "[lease]\nmode = \"off\"\n"] {
        let app = start(&format!("[notify]\nrequester = true\n{lease}")).await;
        let dir = tempfile::tempdir().expect("dir");
        let second = app.second_replica(dir.path()).await;
        let t = &app.sandbox.teleport;
        for i in 0..3 {
            let id = posted(&app, "requester", &format!("r{i}")).await;
            t.add_review(&id, "alice", true, "").expect("review");
            assert_eq!(record(&app, &id).await, "APPROVED sent", "{lease}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(dms(&app, REQUESTER).len(), 3, "{lease}");
        second.stop_second().await;
        app.stop().await;
    }
}

const REMINDERS: &str = "[access_list]\ninterval = \"1s\"\n";

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 3600)
}

#[tokio::test]
async fn owners_are_reminded_once_inside_the_window_with_the_channel_for_the_unmapped() {
    let (dir, sandbox) = sandbox().await;
    let now = SystemTime::now();
    let t = &sandbox.teleport;
    // Due in 3 days, reminders from 7 days before: the window is open.
    t.put_access_list(
        "prod",
        "Production admins",
        &["alice", "carol"],
        now + days(3),
        days(7),
    );
    // Due in 30 days: not yet.
    t.put_access_list("later", "Later", &["alice"], now + days(30), days(7));
    // Overdue by 2 days.
    t.put_access_list(
        "late",
        "Late list",
        &["alice"],
        now - days(2) - Duration::from_secs(60),
        days(7),
    );
    let fallback = sandbox.channels[2].clone();
    let text = sandbox.config(&format!("{REMINDERS}channel = \"{fallback}\"\n"));
    let app = TestApp::start_with_text(sandbox, dir, &text).await;
    app.wait_ready().await;
    let got = eventually("alice's reminder", || {
        let d = dms(&app, ALICE);
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(got.len(), 1, "one DM with both due lists: {got:#?}");
    let dm = &got[0];
    assert!(
        dm.contains("**Production admins** is due for a review by"),
        "{dm}"
    );
    assert!(
        dm.contains("**Late list** is **2 day(s) past due**"),
        "{dm}"
    );
    assert!(
        dm.contains("https://teleport.example.com/web/accesslists/prod"),
        "{dm}"
    );
    assert!(!dm.contains("Later"), "{dm}");
    // carol has no Discord user: the channel.
    let channel = eventually("the channel reminder", || {
        app.sandbox
            .discord
            .messages(&fallback)
            .into_iter()
            .find(|m| m.content.contains("review reminder"))
            .map(|m| m.content)
    })
    .await;
    assert!(
        channel.contains("for carol") && channel.contains("Production admins"),
        "{channel}"
    );
    // Upstream's layout in the access list's plugin data.
    let data = app
        .sandbox
        .teleport
        .access_list_plugin_data("prod", "discord")
        .expect("plugin data");
    let notes: serde_json::Value = serde_json::from_str(&data["user_notifications"]).expect("json");
    assert!(
        notes["alice"].is_string() && notes["carol"].is_string(),
        "{notes}"
    );
    // More passes (every second) and a restart: nothing twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = app.restart().await;
    app.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(dms(&app, ALICE).len(), 1);
    let in_channel = app
        .sandbox
        .discord
        .messages(&fallback)
        .into_iter()
        .filter(|m| m.content.contains("review reminder"))
        .count();
    assert_eq!(in_channel, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_go_plugins_record_is_continued_and_no_access_lists_stops_quietly() {
    let (dir, sandbox) = sandbox().await;
    let now = SystemTime::now();
    let t = &sandbox.teleport;
    t.put_access_list("prod", "Prod", &["alice"], now + days(3), days(7));
    t.put_access_list("dev", "Dev", &["alice"], now + days(3), days(7));
    // The Go plugin reminded alice of "prod" an hour ago (its layout).
    let hour_ago = time::OffsetDateTime::from(now - Duration::from_secs(3600))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    t.put_access_list_plugin_data(
        "prod",
        "discord",
        &[(
            "user_notifications",
            &format!("{{\"alice\":\"{hour_ago}\"}}"),
        )],
    );
    let text = sandbox.config(REMINDERS);
    let app = TestApp::start_with_text(sandbox, dir, &text).await;
    app.wait_ready().await;
    let got = eventually("alice's reminder", || {
        let d = dms(&app, ALICE);
        (!d.is_empty()).then_some(d)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(dms(&app, ALICE).len(), 1);
    assert!(
        got[0].contains("**Dev**") && !got[0].contains("**Prod**"),
        "{}",
        got[0]
    );
    app.stop().await;

    let off = start(REMINDERS).await;
    off.sandbox.teleport.set_access_lists_unimplemented(true);
    off.sandbox
        .teleport
        .put_access_list("x", "X", &["alice"], now + days(1), days(7));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        off.sandbox.teleport.calls("ListAccessLists"),
        1,
        "stopped after the first answer"
    );
    assert!(dms(&off, ALICE).is_empty());
    off.stop().await;
}

#[tokio::test]
async fn two_replicas_remind_once_with_or_without_the_lease() {
    for lease in ["", "[lease]\nmode = \"off\"\n"] {
        let (dir, sandbox) = sandbox().await;
        let now = SystemTime::now();
        for i in 0..5 {
            sandbox.teleport.put_access_list(
                &format!("list{i}"),
                &format!("List {i}"),
                &["alice"],
                now + days(2),
                days(7),
            );
        }
        let text = sandbox.config(&format!("{REMINDERS}{lease}"));
        let app = TestApp::start_with_text(sandbox, dir, &text).await;
        app.wait_ready().await;
        let extra = tempfile::tempdir().expect("dir");
        let second = app.second_replica(extra.path()).await;
        // Both replicas make passes every second for a while.
        eventually("alice's reminder", || {
            (!dms(&app, ALICE).is_empty()).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let got = dms(&app, ALICE);
        let mentions: usize = (0..5)
            .map(|i| {
                got.iter()
                    .filter(|d| d.contains(&format!("**List {i}**")))
                    .count()
            })
            .sum();
        assert_eq!(mentions, 5, "each list once ({lease}): {got:#?}");
        second.stop_second().await;
        app.stop().await;
    }
}
