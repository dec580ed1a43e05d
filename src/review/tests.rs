//! The desk over fake ports: who the clicker is, what is submitted for whom,
//! and what they are told.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use arc_swap::ArcSwap;

use super::*;
use crate::config::{self, Config};
use crate::secret::Secret;

/// A user and their traits.
type UserTraits = (String, BTreeMap<String, Vec<String>>);

#[derive(Default)]
struct FakeTeleport {
    /// Trait values → users, as an old Auth Service would answer: the port
    /// contract says only real holders come back, so the fake filters.
    users: Mutex<Vec<UserTraits>>,
    requests: Mutex<HashMap<String, RequestFacts>>,
    submitted: Mutex<Vec<(String, String, Verdict, String)>>,
    submit_error: Mutex<Option<SubmitError>>,
    lookups: Mutex<u32>,
}

impl Directory for FakeTeleport {
    fn users_with_trait<'a>(
        &'a self,
        trait_name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, PortError>> {
        Box::pin(async move {
            *crate::sync::lock(&self.lookups) += 1;
            Ok(crate::sync::lock(&self.users)
                .iter()
                .filter(|(_, t)| {
                    t.get(trait_name)
                        .is_some_and(|v| v.iter().any(|x| x == value))
                })
                .map(|(n, _)| n.clone())
                .collect())
        })
    }

    fn request<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RequestFacts>, PortError>> {
        Box::pin(async move { Ok(crate::sync::lock(&self.requests).get(id).cloned()) })
    }

    fn submit<'a>(
        &'a self,
        id: &'a str,
        author: &'a str,
        verdict: Verdict,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<RequestFacts, SubmitError>> {
        Box::pin(async move {
            if let Some(e) = crate::sync::lock(&self.submit_error).clone() {
                return Err(e);
            }
            crate::sync::lock(&self.submitted).push((
                id.to_owned(),
                author.to_owned(),
                verdict,
                reason.to_owned(),
            ));
            let mut reqs = crate::sync::lock(&self.requests);
            let r = reqs.get_mut(id).ok_or(SubmitError::Gone)?;
            r.state = match verdict {
                Verdict::Approve => State::Approved,
                Verdict::Deny => State::Denied,
            };
            Ok(r.clone())
        })
    }

    fn web_link(&self, id: &str) -> Option<String> {
        Some(format!("https://teleport.example.com/web/requests/{id}"))
    }
}

#[derive(Default)]
struct FakeDiscord {
    edits: Mutex<Vec<String>>,
}

impl FollowUps for FakeDiscord {
    fn edit_original<'a>(
        &'a self,
        _: &'a Acting,
        content: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            crate::sync::lock(&self.edits).push(content.to_owned());
            Ok(())
        })
    }
}

const ID: &str = "0b3d3f4e-7a1b-4c2d-9e8f-001122334455";

fn config(review: &str) -> SharedConfig {
    let text = format!(
        "[teleport]\naddr = \"localhost:3025\"\nidentity = \"/tmp/id\"\n[discord]\ntoken = \"t\"\npublic_key = \"{}\"\n[role_to_recipients]\n\"*\" = \"1111111111\"\n[review]\n{review}\n",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let loaded =
        config::parse(&text, std::path::Path::new("t.toml"), &HashMap::new()).expect("config");
    let c: Config = loaded.config;
    Arc::new(ArcSwap::from_pointee(c))
}

fn pending(user: &str) -> RequestFacts {
    RequestFacts {
        state: State::Pending,
        user: user.to_owned(),
        long_term: false,
        needed: None,
    }
}

fn desk(tp: &Arc<FakeTeleport>, dc: &Arc<FakeDiscord>, review: &str) -> Arc<Desk> {
    let mut reg = prometheus_client::registry::Registry::default();
    Desk::new(
        tp.clone(),
        dc.clone(),
        config(review),
        ReviewMetrics::register(&mut reg),
    )
}

fn acting(user: &str, custom_id: &str) -> Acting {
    Acting {
        id: "100".into(),
        application_id: "42".into(),
        token: Secret::new("tok"),
        user_id: user.into(),
        custom_id: custom_id.into(),
    }
}

fn approve() -> String {
    ButtonAction {
        verdict: Verdict::Approve,
        request_id: ID.into(),
    }
    .custom_id()
}

fn with_trait(tp: &FakeTeleport, user: &str, discord: &str) {
    crate::sync::lock(&tp.users).push((
        user.to_owned(),
        BTreeMap::from([("discord_user_id".to_owned(), vec![discord.to_owned()])]),
    ));
}

/// A desk with reviews on, a pending request by `requester`, and alice
/// linked by trait to Discord user 111.
fn fixture() -> (Arc<FakeTeleport>, Arc<FakeDiscord>, Arc<Desk>) {
    let (tp, dc) = (
        Arc::new(FakeTeleport::default()),
        Arc::new(FakeDiscord::default()),
    );
    crate::sync::lock(&tp.requests).insert(ID.into(), pending("requester"));
    with_trait(&tp, "alice", "111");
    let d = desk(&tp, &dc, "enabled = true");
    (tp, dc, d)
}

#[tokio::test]
async fn a_linked_user_gets_the_modal_and_the_review_is_submitted_for_them_only() {
    let (tp, _, d) = fixture();
    let (modal, label) = d.click(&acting("111", &approve())).await;
    assert_eq!((modal["type"].as_u64(), label), (Some(9), "modal"));
    assert_eq!(modal["data"]["custom_id"], approve());
    let (outcome, text) = d.submit(&acting("111", &approve()), "looks fine").await;
    assert_eq!(outcome.label(), "submitted");
    assert!(
        text.contains("approved") && text.contains("`alice`"),
        "{text}"
    );
    assert_eq!(
        *crate::sync::lock(&tp.submitted),
        [(
            ID.to_owned(),
            "alice".to_owned(),
            Verdict::Approve,
            "looks fine".to_owned()
        )]
    );
    // A second submit within the cache's life does not list users again.
    let before = *crate::sync::lock(&tp.lookups);
    let _ = d.submit(&acting("111", &approve()), "").await;
    assert_eq!(*crate::sync::lock(&tp.lookups), before);
}

#[tokio::test]
async fn the_static_table_comes_first_and_unlinked_or_ambiguous_users_submit_nothing() {
    let (tp, dc) = (
        Arc::new(FakeTeleport::default()),
        Arc::new(FakeDiscord::default()),
    );
    crate::sync::lock(&tp.requests).insert(ID.into(), pending("requester"));
    with_trait(&tp, "mallory", "222");
    with_trait(&tp, "x1", "333");
    with_trait(&tp, "x2", "333");
    let d = desk(
        &tp,
        &dc,
        "enabled = true\n[review.users]\n\"222\" = \"bob\"",
    );
    let (o, _) = d.submit(&acting("222", &approve()), "").await;
    assert!(
        matches!(o, Outcome::Submitted { ref author, .. } if author == "bob"),
        "{o:?}"
    );
    crate::sync::lock(&tp.requests).insert(ID.into(), pending("requester"));
    let (o, text) = d.submit(&acting("999", &approve()), "").await;
    assert_eq!(o.label(), "not_linked");
    assert!(
        text.contains("`discord_user_id`") && text.contains("999"),
        "{text}"
    );
    let (o, text) = d.submit(&acting("333", &approve()), "").await;
    assert_eq!(o.label(), "ambiguous_user");
    assert!(text.contains('2'), "{text}");
    assert_eq!(
        crate::sync::lock(&tp.submitted).len(),
        1,
        "only bob's review"
    );
}

#[tokio::test]
async fn long_term_own_resolved_and_gone_requests_are_refused_before_teleport_is_asked() {
    let (tp, dc) = (
        Arc::new(FakeTeleport::default()),
        Arc::new(FakeDiscord::default()),
    );
    with_trait(&tp, "alice", "111");
    let d = desk(&tp, &dc, "enabled = true");
    let cases = [
        (
            Some(RequestFacts {
                long_term: true,
                ..pending("requester")
            }),
            "long_term",
            "long-term",
        ),
        (Some(pending("alice")), "own_request", "your own request"),
        (
            Some(RequestFacts {
                state: State::Denied,
                ..pending("requester")
            }),
            "resolved",
            "already denied",
        ),
        (None, "resolved", "resolved or has expired"),
    ];
    for (facts, label, words) in cases {
        match facts {
            Some(f) => crate::sync::lock(&tp.requests).insert(ID.into(), f),
            None => crate::sync::lock(&tp.requests).remove(ID),
        };
        let (answer, click_label) = d.click(&acting("111", &approve())).await;
        assert_eq!(click_label, label);
        assert_eq!(answer["data"]["flags"], crate::interactions::EPHEMERAL);
        let (o, text) = d.submit(&acting("111", &approve()), "").await;
        assert_eq!(o.label(), label);
        assert!(text.contains(words), "{label}: {text}");
    }
    assert!(crate::sync::lock(&tp.submitted).is_empty());
}

#[tokio::test]
async fn teleport_refusals_are_told_in_plain_words() {
    let (tp, dc) = (
        Arc::new(FakeTeleport::default()),
        Arc::new(FakeDiscord::default()),
    );
    with_trait(&tp, "alice", "111");
    let d = desk(&tp, &dc, "enabled = true");
    let cases = [
        (
            SubmitError::AlreadyReviewed,
            "already_reviewed",
            "already reviewed",
        ),
        (
            SubmitError::ServerTooOld("18.2.0".into()),
            "unsupported_server",
            "Teleport 18.11.0 or newer",
        ),
        (
            SubmitError::ForUsersNotPermitted,
            "plugin_not_permitted",
            "submit_for_users",
        ),
        (
            SubmitError::NotAllowed("user \"alice\" cannot review request".into()),
            "not_allowed",
            "may not review",
        ),
        (
            SubmitError::Failed("deadline exceeded".into()),
            "error",
            "may have been recorded",
        ),
    ];
    for (err, label, words) in cases {
        crate::sync::lock(&tp.requests).insert(ID.into(), pending("requester"));
        *crate::sync::lock(&tp.submit_error) = Some(err);
        let (o, text) = d.submit(&acting("111", &approve()), "").await;
        assert_eq!(o.label(), label);
        assert!(text.contains(words), "{label}: {text}");
    }
}

#[tokio::test]
async fn forged_ids_and_a_disabled_desk_do_nothing() {
    let (tp, dc, d) = fixture();
    for forged in [
        "review:v2:approve:x",
        "review:v1:promote:x",
        "review:v1:approve:",
        "review:v1:approve:../../x",
        "x",
    ] {
        let (_, label) = d.click(&acting("111", forged)).await;
        assert_eq!(label, "unknown_action", "{forged}");
        let (o, _) = d.submit(&acting("111", forged), "").await;
        assert_eq!(o, Outcome::UnknownAction, "{forged}");
    }
    let off = desk(&tp, &dc, "enabled = false");
    assert_eq!(off.click(&acting("111", &approve())).await.1, "disabled");
    assert!(crate::sync::lock(&tp.submitted).is_empty());
}

/// A Teleport that answers after a while (paused time).
struct Slow(Arc<FakeTeleport>, Duration);

impl Directory for Slow {
    fn users_with_trait<'a>(
        &'a self,
        t: &'a str,
        v: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, PortError>> {
        self.0.users_with_trait(t, v)
    }
    fn request<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RequestFacts>, PortError>> {
        self.0.request(id)
    }
    fn submit<'a>(
        &'a self,
        id: &'a str,
        a: &'a str,
        v: Verdict,
        r: &'a str,
    ) -> BoxFuture<'a, Result<RequestFacts, SubmitError>> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            self.0.submit(id, a, v, r).await
        })
    }
    fn web_link(&self, _: &str) -> Option<String> {
        None
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_teleport_is_deferred_then_followed_up_and_a_fast_one_answered_inline() {
    let tp = Arc::new(FakeTeleport::default());
    crate::sync::lock(&tp.requests).insert(ID.into(), pending("requester"));
    with_trait(&tp, "alice", "111");
    let dc = Arc::new(FakeDiscord::default());
    let mut reg = prometheus_client::registry::Registry::default();
    let slow = Desk::new(
        Arc::new(Slow(tp.clone(), Duration::from_secs(5))),
        dc.clone(),
        config("enabled = true"),
        ReviewMetrics::register(&mut reg),
    );
    let answer = slow
        .answer_submit(acting("111", &approve()), String::new())
        .await;
    assert_eq!(answer, crate::interactions::deferred_ephemeral());
    assert!(crate::sync::lock(&dc.edits).is_empty());
    slow.drain(Duration::from_secs(30)).await;
    let edits = crate::sync::lock(&dc.edits).clone();
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert!(edits[0].contains("You approved"), "{edits:?}");

    crate::sync::lock(&tp.requests).insert(ID.into(), pending("requester"));
    let fast = desk(&tp, &dc, "enabled = true");
    let answer = fast
        .answer_submit(acting("111", &approve()), String::new())
        .await;
    assert_eq!(answer["type"], 4);
    assert!(
        answer["data"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("You approved"))
    );
}

#[test]
fn submitted_texts_say_what_teleport_still_needs() {
    let o = Outcome::Submitted {
        verdict: Verdict::Approve,
        author: "alice".into(),
        after: RequestFacts {
            needed: Some(Needed {
                approvals: 1,
                denials: 1,
            }),
            ..pending("bob")
        },
    };
    assert!(
        o.text(ID)
            .ends_with("It is still pending: 1 more approval needed."),
        "{}",
        o.text(ID)
    );
    let o = Outcome::Submitted {
        verdict: Verdict::Deny,
        author: "alice".into(),
        after: RequestFacts {
            state: State::Denied,
            ..pending("bob")
        },
    };
    assert!(
        o.text(ID).ends_with("It is now denied ❌."),
        "{}",
        o.text(ID)
    );
}
