//! Reviews from Discord, end to end over real HTTP with real signatures: the
//! Discord emulator signs clicks and modal submits and delivers them to the
//! service's `POST /discord/interactions`; the service submits the review in
//! the Teleport emulator for the clicker's own Teleport user; the channel
//! message changes through the normal reconcile.

use std::time::Duration;

use serde_json::{Value, json};
use teleport_discord_testkit::discord::InteractionReply;
use teleport_discord_testkit::sandbox::Sandbox;
use teleport_discord_testkit::teleport::{AccessRequestKind, PLUGIN_USER, Permissions};

use crate::support::{TestApp, eventually, status_line};

const ALICE: &str = "100000000000000001";
const BOB: &str = "100000000000000002";
const CAROL: &str = "100000000000000003";
const NOBODY: &str = "100000000000000009";

/// The service with reviews on, the emulators' users: alice and bob may
/// review `dev` (alice by trait, bob by `[review.users]`), carol may review
/// nothing, `requester` asks; the interactions endpoint points at the
/// service.
async fn start(extra: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let text = sandbox.config(&format!(
        "[review]\nenabled = true\n{extra}[review.users]\n\"{BOB}\" = \"bob\"\n"
    ));
    let app = TestApp::start_with_text(sandbox, dir, &text).await;
    app.wait_ready().await;
    setup(&app.sandbox, &app.url("/discord/interactions"));
    app
}

fn setup(sandbox: &Sandbox, endpoint: &str) {
    let (t, d) = (&sandbox.teleport, &sandbox.discord);
    for (id, name) in [
        (ALICE, "alice"),
        (BOB, "bob"),
        (CAROL, "carol"),
        (NOBODY, "nobody"),
    ] {
        d.add_user_with_id(id, name);
    }
    t.put_user("alice", &["reviewer"], &[("discord_user_id", &[ALICE])]);
    t.put_user("bob", &["reviewer"], &[]);
    t.put_user("carol", &[], &[("discord_user_id", &[CAROL])]);
    t.put_user(
        "requester",
        &[],
        &[("discord_user_id", &["100000000000000004"])],
    );
    t.put_user_reviews("alice", &["dev"]);
    t.put_user_reviews("bob", &["dev"]);
    // The role rule `review_requests.submit_for_users`.
    t.set_permissions(Permissions {
        submit_reviews_for_users: true,
        ..Permissions::default()
    });
    d.set_interactions_endpoint(endpoint);
}

/// Reviews Teleport holds for request `id`.
fn reviews_of(app: &TestApp, id: &str) -> usize {
    app.sandbox
        .teleport
        .request(id)
        .and_then(|r| r.spec)
        .map_or(0, |s| s.reviews.len())
}

fn custom_id(verdict: &str, id: &str) -> String {
    format!("review:v1:{verdict}:{id}")
}

/// The `dev` channel's message for request `id`, once it carries `what`.
async fn message(
    app: &TestApp,
    id: &str,
    what: impl Fn(&Value, &str) -> bool,
) -> (String, Value, String) {
    let dev = app.sandbox.channels[0].clone();
    eventually("the request's message", || {
        app.sandbox
            .discord
            .messages(&dev)
            .into_iter()
            .find(|m| m.content.contains(id) && what(&m.components, &m.content))
            .map(|m| (m.id, m.components, m.content))
    })
    .await
}

fn has_buttons(components: &Value) -> bool {
    components.to_string().contains("review:v1:approve:")
}

fn content(reply: &InteractionReply) -> String {
    reply
        .response()
        .and_then(|a| a.data.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Clicks `verdict` on request `id`'s message as `user`, submits the modal
/// with `reason`; the answer shown to the user.
async fn review(app: &TestApp, id: &str, verdict: &str, user: &str, reason: &str) -> String {
    let (msg, _, _) = message(app, id, |c, _| has_buttons(c)).await;
    let d = &app.sandbox.discord;
    let click = d
        .click(
            &app.sandbox.channels[0],
            &msg,
            &custom_id(verdict, id),
            user,
        )
        .await
        .expect("click");
    if click.callback_type() != Some(9) {
        return content(&click);
    }
    assert_eq!(
        click.response().expect("answer").data["custom_id"],
        custom_id(verdict, id)
    );
    let submit = d
        .submit_modal(&click.interaction.id, &[("reason", reason)])
        .await
        .expect("submit");
    let answer = submit.response().expect("an answer");
    assert!(answer.is_ephemeral(), "{answer:?}");
    content(&submit)
}

#[tokio::test]
async fn approve_and_deny_with_a_reason_are_reviews_by_the_clicker_and_the_message_follows() {
    let app = start("").await;
    let t = &app.sandbox.teleport;
    let id = t.create_request("requester", &["dev"], "need it");
    let answer = review(&app, &id, "approve", ALICE, "ship it").await;
    assert!(
        answer.contains("You approved")
            && answer.contains("`alice`")
            && answer.contains("now approved"),
        "{answer}"
    );
    let req = t.request(&id).expect("request");
    let spec = req.spec.expect("spec");
    assert_eq!(spec.state, 2, "approved");
    let r = &spec.reviews[0];
    assert_eq!(
        (
            r.author.as_str(),
            r.submitted_by.as_str(),
            r.submitted_on_behalf_of_author,
            r.reason.as_str()
        ),
        ("alice", PLUGIN_USER, true, "ship it")
    );
    // The message: approved, the review embed says it came from Discord, no buttons.
    let (_, components, text) = message(&app, &id, |_, c| c.contains("APPROVED")).await;
    assert!(!has_buttons(&components), "{components}");
    let dev = app.sandbox.channels[0].clone();
    let embeds = eventually("the review embed", || {
        app.sandbox
            .discord
            .messages(&dev)
            .into_iter()
            .find(|m| m.content.contains(&id))
            .map(|m| m.embeds.to_string())
            .filter(|e| e.contains("Reviewed from Discord."))
    })
    .await;
    assert!(
        embeds.contains("alice") && embeds.contains("ship it"),
        "{embeds}"
    );
    assert_eq!(status_line(&text), "*Status*: ✅ APPROVED");

    // Deny, by the static table's user.
    let id = t.create_request("requester", &["dev"], "again");
    let answer = review(&app, &id, "deny", BOB, "not now").await;
    assert!(
        answer.contains("You denied") && answer.contains("`bob`"),
        "{answer}"
    );
    let spec = t.request(&id).expect("request").spec.expect("spec");
    assert_eq!((spec.state, spec.reviews[0].author.as_str()), (3, "bob"));
    message(&app, &id, |c, text| {
        text.contains("DENIED") && !has_buttons(c)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_threshold_of_two_needs_two_clickers_and_a_double_click_counts_once() {
    let app = start("").await;
    let t = &app.sandbox.teleport;
    let id = t.create_request_with_threshold("requester", &["dev"], "two please", 2, 1);
    let first = review(&app, &id, "approve", ALICE, "").await;
    assert!(first.contains("1 more approval needed"), "{first}");
    // The same user again: refused, and the request still needs one more.
    let again = review(&app, &id, "approve", ALICE, "").await;
    assert!(again.contains("already reviewed"), "{again}");
    let spec = t.request(&id).expect("request").spec.expect("spec");
    assert_eq!((spec.state, spec.reviews.len()), (1, 1));
    // Still pending: the buttons stay.
    message(&app, &id, |c, text| {
        has_buttons(c) && text.contains("PENDING")
    })
    .await;
    let second = review(&app, &id, "approve", BOB, "").await;
    assert!(second.contains("now approved"), "{second}");
    message(&app, &id, |c, text| {
        text.contains("APPROVED") && !has_buttons(c)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn unlinked_unauthorised_own_and_resolved_requests_are_refused_in_plain_words() {
    let app = start("").await;
    let t = &app.sandbox.teleport;
    let id = t.create_request("requester", &["dev"], "x");
    let unlinked = review(&app, &id, "approve", NOBODY, "").await;
    assert!(
        unlinked.contains("not linked") && unlinked.contains("`discord_user_id`"),
        "{unlinked}"
    );
    let carol = review(&app, &id, "approve", CAROL, "").await;
    assert!(
        carol.contains("refused") && carol.contains("`carol`"),
        "{carol}"
    );
    // The requester's own request (their Discord ID is in their trait).
    app.sandbox
        .discord
        .add_user_with_id("100000000000000004", "requester");
    let own = review(&app, &id, "approve", "100000000000000004", "").await;
    assert!(own.contains("your own request"), "{own}");
    assert_eq!(reviews_of(&app, &id), 0);
    // Resolved in Teleport while the message still has its buttons: the
    // click answers at once, without a modal.
    let (msg, _, _) = message(&app, &id, |c, _| has_buttons(c)).await;
    t.resolve(&id, true, "by hand").expect("resolve");
    let click = app
        .sandbox
        .discord
        .click(
            &app.sandbox.channels[0],
            &msg,
            &custom_id("deny", &id),
            ALICE,
        )
        .await
        .expect("click");
    assert_eq!(click.callback_type(), Some(4));
    assert!(
        content(&click).contains("already approved"),
        "{}",
        content(&click)
    );
    app.stop().await;
}

/// Re-signs a real click's body with `custom_id` swapped in (what someone
/// holding the application's key, or a crafted client, could send).
async fn forged_click(app: &TestApp, real_id: &str, forged_custom_id: &str) -> Value {
    let (msg, _, _) = message(app, real_id, |c, _| has_buttons(c)).await;
    let d = &app.sandbox.discord;
    let raw = d
        .build_interaction(
            &app.sandbox.channels[0],
            &msg,
            &custom_id("approve", real_id),
            ALICE,
        )
        .expect("build");
    let mut body: Value = serde_json::from_slice(&raw.body).expect("json");
    body["data"]["custom_id"] = json!(forged_custom_id);
    body["id"] = json!(format!("9{}", &raw.id[1..]));
    let bytes = serde_json::to_vec(&body).expect("bytes");
    let sig = d.sign(&raw.timestamp, &bytes);
    let headers = vec![
        ("X-Signature-Timestamp".to_owned(), raw.timestamp.clone()),
        ("X-Signature-Ed25519".to_owned(), sig),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ];
    let r = d
        .post_raw(&app.url("/discord/interactions"), bytes, &headers)
        .await
        .expect("post");
    assert_eq!(r.status, 200);
    r.json().expect("json answer")
}

#[tokio::test]
async fn long_term_requests_get_no_buttons_and_forged_clicks_do_nothing() {
    let app = start("").await;
    let t = &app.sandbox.teleport;
    let long = t.create_request_with_kind(
        "requester",
        &["dev"],
        "forever",
        AccessRequestKind::LongTerm,
    );
    let (_, components, text) = message(&app, &long, |_, _| true).await;
    assert!(
        text.starts_with("You have a new Role Request (long-term access):"),
        "{text}"
    );
    assert!(!has_buttons(&components), "{components}");
    let short = t.create_request("requester", &["dev"], "short");
    // A click naming the long-term request: refused, no modal.
    let answer = forged_click(&app, &short, &custom_id("approve", &long)).await;
    assert_eq!(answer["type"], 4);
    assert!(
        answer["data"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("long-term")),
        "{answer}"
    );
    // Malformed or foreign custom_ids.
    for bad in [
        "review:v9:approve:x",
        "review:v1:approve:",
        "hello",
        &format!("review:v1:promote:{short}"),
    ] {
        let answer = forged_click(&app, &short, bad).await;
        assert_eq!(answer["type"], 4, "{bad}");
        assert!(
            answer["data"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("not one this bot made")),
            "{bad}: {answer}"
        );
    }
    for id in [&long, &short] {
        assert_eq!(reviews_of(&app, id), 0);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_teleport_slower_than_discords_deadline_is_deferred_then_followed_up() {
    let app = start("").await;
    let t = &app.sandbox.teleport;
    let id = t.create_request("requester", &["dev"], "slow");
    let (msg, _, _) = message(&app, &id, |c, _| has_buttons(c)).await;
    t.set_review_delay(Duration::from_secs(4));
    let d = &app.sandbox.discord;
    let click = d
        .click(
            &app.sandbox.channels[0],
            &msg,
            &custom_id("approve", &id),
            ALICE,
        )
        .await
        .expect("click");
    assert_eq!(click.callback_type(), Some(9));
    let submit = d
        .submit_modal(&click.interaction.id, &[("reason", "eventually")])
        .await
        .expect("submit");
    // Within Discord's 3 s: "thinking…", only for the clicker.
    let first = submit.response().expect("first answer");
    assert_eq!(first.callback_type, Some(5));
    assert!(first.is_ephemeral());
    assert!(first.after < Duration::from_secs(3), "{:?}", first.after);
    // Then the follow-up edits it with the outcome.
    let sid = submit.interaction.id.clone();
    let text = eventually("the follow-up", || {
        d.interaction(&sid)
            .and_then(|i| i.ephemeral_messages.first().map(|m| m.content.clone()))
            .filter(|c| !c.is_empty())
    })
    .await;
    assert!(text.contains("You approved"), "{text}");
    message(&app, &id, |_, text| text.contains("APPROVED")).await;
    app.stop().await;
}

#[tokio::test]
async fn an_auth_service_without_reviews_for_users_or_a_role_without_the_rule_is_named() {
    let app = start("").await;
    let t = &app.sandbox.teleport;
    t.set_permissions(Permissions::default());
    let id = t.create_request("requester", &["dev"], "no rule");
    let answer = review(&app, &id, "approve", ALICE, "").await;
    assert!(
        answer.contains("review_requests.submit_for_users"),
        "{answer}"
    );
    t.set_permissions(Permissions {
        submit_reviews_for_users: true,
        ..Permissions::default()
    });
    t.set_on_behalf_reviews_supported(false);
    let id = t.create_request("requester", &["dev"], "old");
    let answer = review(&app, &id, "approve", ALICE, "").await;
    assert!(
        answer.contains("cannot take reviews from chat") && answer.contains("18.11.0"),
        "{answer}"
    );
    assert_eq!(reviews_of(&app, &id), 0);
    app.stop().await;
}

#[tokio::test]
async fn with_two_replicas_a_click_on_either_works() {
    let app = start("").await;
    // A second replica on the same emulators and config.
    let dir = tempfile::tempdir().expect("dir");
    let second = app.second_replica(dir.path()).await;
    let t = &app.sandbox.teleport;
    for (endpoint, user) in [
        (app.url("/discord/interactions"), ALICE),
        (second.url("/discord/interactions"), BOB),
    ] {
        let id = t.create_request("requester", &["dev"], "either");
        app.sandbox.discord.set_interactions_endpoint(&endpoint);
        let answer = review(&app, &id, "approve", user, "").await;
        assert!(answer.contains("You approved"), "{endpoint}: {answer}");
        message(&app, &id, |c, text| {
            text.contains("APPROVED") && !has_buttons(c)
        })
        .await;
    }
    second.stop_second().await;
    app.stop().await;
}

#[tokio::test]
async fn a_separate_listener_serves_only_the_interactions_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let app = start(&format!("listen_addr = \"127.0.0.1:{port}\"\n")).await;
    let base = format!("http://127.0.0.1:{port}");
    app.sandbox
        .discord
        .set_interactions_endpoint(&format!("{base}/discord/interactions"));
    app.sandbox
        .discord
        .verify_endpoint()
        .await
        .expect("portal check");
    let id = app
        .sandbox
        .teleport
        .create_request("requester", &["dev"], "lb");
    let answer = review(&app, &id, "approve", ALICE, "").await;
    assert!(answer.contains("You approved"), "{answer}");
    for path in ["/metrics", "/readyz", "/admin/reload"] {
        let r = app
            .client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 404, "{path}");
    }
    let health = app
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("get");
    assert_eq!(health.status(), 200);
    app.stop().await;
}
