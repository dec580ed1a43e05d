//! Unit tests of the reconcile logic against in-memory stand-ins that keep
//! Teleport's CAS rules and Discord's nonce rule. (End-to-end tests with the
//! emulators live in `tests/it`.)

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::*;
use crate::config::{self, Config};

/// What `GetRole` answers for logins.
type RoleAnswer = Result<Option<Vec<String>>, StoreError>;

#[derive(Debug, Default, Clone)]
struct Store {
    data: Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>,
    writes: Arc<Mutex<usize>>,
    /// `get` calls.
    reads: Arc<Mutex<usize>>,
    /// Requests Teleport no longer has (`current` answers `None`; others
    /// cannot be read).
    deleted: Arc<Mutex<std::collections::HashSet<String>>>,
    /// `list` calls.
    listings: Arc<Mutex<usize>>,
    /// What `role_logins` answers (none: `Ok(None)`), and how often it was asked.
    role_answer: Arc<Mutex<Option<RoleAnswer>>>,
    role_calls: Arc<Mutex<usize>>,
}

impl PluginDataStore for Store {
    async fn get(&self, id: &str) -> Result<BTreeMap<String, String>, StoreError> {
        *self.reads.lock().unwrap() += 1;
        Ok(self
            .data
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default())
    }
    async fn compare_and_swap(
        &self,
        id: &str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        let mut all = self.data.lock().unwrap();
        let entry = all.get(id).cloned().unwrap_or_default();
        for (k, v) in &expect {
            if entry.get(k).map(String::as_str).unwrap_or("") != v {
                return Err(StoreError::Conflict);
            }
        }
        let mut entry = entry;
        for (k, v) in set {
            if v.is_empty() {
                entry.remove(&k);
            } else {
                entry.insert(k, v);
            }
        }
        if entry.is_empty() {
            all.remove(id);
        } else {
            all.insert(id.to_owned(), entry);
        }
        *self.writes.lock().unwrap() += 1;
        Ok(())
    }
    async fn current(&self, id: &str) -> Result<Option<Request>, StoreError> {
        if self.deleted.lock().unwrap().contains(id) {
            Ok(None)
        } else {
            Err(StoreError::Other("not known to this stand-in".into()))
        }
    }
    async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        *self.listings.lock().unwrap() += 1;
        Ok(self
            .data
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    async fn role_logins(&self, _role: &str) -> Result<Option<Vec<String>>, StoreError> {
        *self.role_calls.lock().unwrap() += 1;
        self.role_answer.lock().unwrap().clone().unwrap_or(Ok(None))
    }
}

#[derive(Debug, Clone)]
struct Msg {
    channel: String,
    body: MessageBody,
    edits: usize,
}

/// Operations handed over but not answered while Discord is "slow".
type Held = Arc<Mutex<Option<Vec<(MessageOp, Answer)>>>>;

#[derive(Default, Clone)]
struct Discord {
    /// `Some`: operations wait here until [`Discord::release`].
    held: Held,
    submits: Arc<Mutex<usize>>,
    messages: Arc<Mutex<BTreeMap<String, Msg>>>,
    nonces: Arc<Mutex<HashMap<(String, String), String>>>,
    calls: Arc<Mutex<usize>>,
    fail_channels: Arc<Mutex<HashMap<String, SendError>>>,
    next_id: Arc<Mutex<u64>>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord").finish_non_exhaustive()
    }
}

impl Discord {
    /// From now on operations are held until released.
    fn hold(&self) {
        *self.held.lock().unwrap() = Some(Vec::new());
    }
    /// Operations held now.
    fn held(&self) -> usize {
        self.held.lock().unwrap().as_ref().map_or(0, Vec::len)
    }
    /// Answers every held operation and stops holding.
    fn release(&self) {
        let held = self.held.lock().unwrap().take().unwrap_or_default();
        for (op, answer) in held {
            self.answer(op, answer);
        }
    }
    fn submits(&self) -> usize {
        *self.submits.lock().unwrap()
    }
    fn answer(&self, op: MessageOp, answer: Answer) {
        let me = self.clone();
        tokio::spawn(async move {
            let result = match op {
                MessageOp::Create {
                    channel,
                    nonce,
                    body,
                } => me.create(&channel, &nonce, &body).await,
                MessageOp::Edit {
                    channel,
                    message,
                    body,
                } => me.edit(&channel, &message, &body).await.map(|()| message),
            };
            answer(result);
        });
    }
    fn in_channel(&self, channel: &str) -> Vec<Msg> {
        self.messages
            .lock()
            .unwrap()
            .values()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }
    fn calls(&self) -> usize {
        *self.calls.lock().unwrap()
    }
    fn fail(&self, channel: &str, e: Option<SendError>) {
        let mut f = self.fail_channels.lock().unwrap();
        match e {
            Some(e) => f.insert(channel.to_owned(), e),
            None => f.remove(channel),
        };
    }
}

impl Messenger for Discord {
    fn submit(&self, op: MessageOp, answer: Answer) {
        *self.submits.lock().unwrap() += 1;
        if let Some(held) = self.held.lock().unwrap().as_mut() {
            held.push((op, answer));
            return;
        }
        // Answered later, on another task, as the delivery queue does.
        self.answer(op, answer);
    }
}

impl Discord {
    async fn create(
        &self,
        channel: &str,
        nonce: &str,
        body: &MessageBody,
    ) -> Result<String, SendError> {
        tokio::task::yield_now().await;
        *self.calls.lock().unwrap() += 1;
        if let Some(e) = self.fail_channels.lock().unwrap().get(channel) {
            return Err(e.clone());
        }
        assert!(nonce.len() <= 25);
        let key = (channel.to_owned(), nonce.to_owned());
        // Check and record the nonce atomically, as Discord does.
        let mut nonces = self.nonces.lock().unwrap();
        if let Some(id) = nonces.get(&key) {
            // The real messenger brings a de-duplicated create's message up
            // to date with an edit (`adapters::discord::DiscordMessenger`).
            if let Some(m) = self.messages.lock().unwrap().get_mut(id)
                && m.body != *body
            {
                m.body = body.clone();
                m.edits += 1;
            }
            return Ok(id.clone());
        }
        let id = {
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            format!("{}", 9_000 + *n)
        };
        nonces.insert(key, id.clone());
        self.messages.lock().unwrap().insert(
            id.clone(),
            Msg {
                channel: channel.to_owned(),
                body: body.clone(),
                edits: 0,
            },
        );
        Ok(id)
    }
    async fn edit(
        &self,
        channel: &str,
        message: &str,
        body: &MessageBody,
    ) -> Result<(), SendError> {
        tokio::task::yield_now().await;
        *self.calls.lock().unwrap() += 1;
        if let Some(e) = self.fail_channels.lock().unwrap().get(channel) {
            return Err(e.clone());
        }
        let mut all = self.messages.lock().unwrap();
        let m = all
            .get_mut(message)
            .ok_or_else(|| SendError::Permanent("Unknown Message (10008)".into()))?;
        m.body.content = body.content.clone();
        if let Some(e) = &body.embeds {
            m.body.embeds = Some(e.clone());
        }
        m.edits += 1;
        Ok(())
    }
}

fn config() -> SharedConfig {
    let text = r#"
[teleport]
identity = "/x"
[discord]
token = "t"
[role_to_recipients]
"*" = ["1001"]
editor = ["1001", "1002", "not-a-channel"]
"#;
    let loaded =
        config::parse(text, std::path::Path::new("t.toml"), &HashMap::new()).expect("config");
    let c: Config = loaded.config;
    Arc::new(ArcSwap::from_pointee(c))
}

/// A reconciler as one replica: each call makes another replica.
fn reconciler(store: &Store, discord: &Discord) -> Reconciler<Store, Discord> {
    static REPLICAS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = REPLICAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Reconciler::new(
        store.clone(),
        discord.clone(),
        config(),
        ClusterInfo {
            name: "example.teleport.sh".into(),
            web_proxy_url: None,
            plugin_user: "discord-plugin".into(),
        },
        format!("replica-{n}"),
    )
}

fn request(id: &str) -> Request {
    Request {
        id: id.into(),
        user: "requester@example.com".into(),
        roles: vec!["editor".into()],
        state: RequestState::Pending,
        reason: "because".into(),
        resolve_reason: String::new(),
        reviews: Vec::new(),
        suggested_reviewers: Vec::new(),
        resources: Vec::new(),
        thresholds: Vec::new(),
        system_annotations: BTreeMap::new(),
        created_unix: None,
        expires_unix: None,
        access_expires_unix: None,
        long_term: false,
    }
}

/// A replica that did not claim the request leaves it to its owner on the
/// first look and on any look within [`HANDOFF`], then acts. Needs paused time.
async fn as_other_replica(r: &Reconciler<Store, Discord>, id: &str) -> Outcome {
    let first = r.settle(id).await.expect("first look");
    assert_eq!(
        first,
        Outcome::default(),
        "the first look leaves it to the owner"
    );
    tokio::time::advance(HANDOFF - Duration::from_millis(1)).await;
    assert_eq!(
        r.settle(id).await.expect("look within HANDOFF"),
        Outcome::default(),
        "a look before HANDOFF is over still leaves it to the owner"
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    r.settle(id).await.expect("look after HANDOFF")
}

/// One look at `key` as a worker takes it: it is left to its owner for a
/// while (nothing done, a delayed look queued).
async fn as_worker(r: &Reconciler<Store, Discord>, key: &str) {
    let looked = r.reconcile(key).await.expect("look");
    assert_eq!(looked.outcome, Outcome::default());
    let Action::RequeueAfter(wait) = looked.action else {
        panic!("{looked:?}: not left to the owner");
    };
    assert!(wait > Duration::ZERO && wait <= HANDOFF, "{wait:?}");
    r.queue().retry_after(&key.to_owned(), wait);
}

fn stored(store: &Store, id: &str) -> PluginData {
    PluginData::decode(
        &store
            .data
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default(),
    )
    .0
}

#[tokio::test]
async fn pending_posts_once_per_channel_and_records_it() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_put(request("r1"));
    let out = r.settle("r1").await.expect("reconcile");
    assert_eq!(out.created, 2);
    assert_eq!(discord.in_channel("1001").len(), 1);
    assert_eq!(discord.in_channel("1002").len(), 1);
    let d = stored(&store, "r1");
    assert_eq!(
        d.channels,
        ["1001", "1002"],
        "the non-channel recipient is skipped"
    );
    assert_eq!(d.messages.len(), 2);
    assert_eq!(d.user, "requester@example.com");
    assert_eq!(d.request_reason, "because");
    assert!(!d.rendered.is_empty());
    let content = &discord.in_channel("1001")[0].body.content;
    assert!(content.contains("*Status*: ⏳ PENDING"), "{content}");
    assert!(
        content.contains("tsh request review --approve r1"),
        "{content}"
    );

    // Nothing changed: a second reconcile (a resync) makes no Discord call.
    let calls = discord.calls();
    let out = r.settle("r1").await.expect("reconcile");
    assert_eq!(out, Outcome::default());
    assert_eq!(discord.calls(), calls);
}

#[tokio::test]
async fn reviews_and_resolution_edit_every_message() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut req = request("r1");
    r.observe_put(req.clone());
    r.settle("r1").await.expect("post");
    req.reviews.push(Review {
        author: "reviewer1".into(),
        approved: true,
        reason: "okay".into(),
        created_unix: 1_136_214_245,
        submitted_by: None,
    });
    req.thresholds = vec![Threshold {
        approve: 2,
        deny: 2,
    }];
    r.observe_put(req.clone());
    assert_eq!(r.settle("r1").await.expect("review").edited, 2);
    for ch in ["1001", "1002"] {
        let m = &discord.in_channel(ch)[0];
        assert_eq!(m.body.embeds.as_ref().map(Vec::len), Some(1));
        assert!(
            m.body
                .content
                .contains("*Reviews*: 1 more approval(s) or 2 more denial(s) needed"),
            "{}",
            m.body.content
        );
    }
    assert_eq!(stored(&store, "r1").reviews_count, 1);

    req.state = RequestState::Approved;
    req.resolve_reason = "fine".into();
    r.observe_put(req.clone());
    assert_eq!(r.settle("r1").await.expect("approve").edited, 2);
    let m = &discord.in_channel("1001")[0];
    assert!(
        m.body
            .content
            .contains("*Status*: ✅ APPROVED\n*Resolution reason*: ```\nfine```"),
        "{}",
        m.body.content
    );
    let d = stored(&store, "r1");
    assert_eq!(d.resolution, "APPROVED");
    assert_eq!(d.resolve_reason, "fine");

    // Expiry after approval keeps ✅ and makes no call.
    let calls = discord.calls();
    r.observe_delete("r1");
    r.settle("r1").await.expect("delete");
    assert_eq!(discord.calls(), calls);
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
    assert_eq!(r.tracked(), 0, "a finished deleted request is forgotten");
}

#[tokio::test]
async fn deleting_a_pending_request_shows_expired_and_keeps_embeds() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut req = request("r1");
    req.reviews.push(Review {
        author: "a".into(),
        approved: false,
        reason: "no".into(),
        created_unix: 0,
        submitted_by: None,
    });
    r.observe_put(req);
    r.settle("r1").await.expect("post");
    r.observe_delete("r1");
    assert_eq!(r.settle("r1").await.expect("expire").edited, 2);
    let m = &discord.in_channel("1002")[0];
    assert!(
        m.body.content.contains("*Status*: ⌛ EXPIRED"),
        "{}",
        m.body.content
    );
    assert!(
        !m.body.content.contains("tsh request review"),
        "{}",
        m.body.content
    );
    assert_eq!(
        m.body.embeds.as_ref().map(Vec::len),
        Some(1),
        "review embeds stay"
    );
    assert_eq!(stored(&store, "r1").resolution, "EXPIRED");
}

#[tokio::test]
async fn upstream_plugin_data_is_continued_without_new_posts() {
    let (store, discord) = (Store::default(), Discord::default());
    // A message the Go plugin posted, and its plugin data in its format.
    let body = render::render(&RequestView::default(), true);
    let id = discord
        .create("1001", "go-plugin", &body)
        .await
        .expect("seed");
    store.data.lock().unwrap().insert(
        "r1".into(),
        [
            ("user", "requester@example.com"),
            ("roles", "editor"),
            ("messages", &format!("1001/{id}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let r = reconciler(&store, &discord);
    let mut req = request("r1");
    req.state = RequestState::Denied;
    r.observe_put(req);
    let out = r.settle("r1").await.expect("reconcile");
    assert_eq!(
        out,
        Outcome {
            created: 0,
            edited: 1,
            dropped: 0
        }
    );
    assert_eq!(
        discord.in_channel("1002").len(),
        0,
        "no post to channels the Go plugin did not use"
    );
    assert!(
        discord.in_channel("1001")[0]
            .body
            .content
            .contains("❌ DENIED")
    );
    assert_eq!(stored(&store, "r1").channels, ["1001"]);
}

#[tokio::test]
async fn a_resolved_request_never_seen_pending_posts_nothing() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut req = request("r1");
    req.state = RequestState::Approved;
    r.observe_put(req);
    assert_eq!(r.settle("r1").await.expect("reconcile"), Outcome::default());
    assert_eq!(discord.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_post_exactly_once() {
    let (store, discord) = (Store::default(), Discord::default());
    let replicas: Vec<Arc<Reconciler<Store, Discord>>> = (0..3)
        .map(|_| Arc::new(reconciler(&store, &discord)))
        .collect();
    for i in 0..20 {
        for r in &replicas {
            r.observe_put(request(&format!("req-{i}")));
        }
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let runs: Vec<_> = replicas
        .iter()
        .map(|r| tokio::spawn(r.clone().run(2, cancel.clone())))
        .collect();
    for _ in 0..500 {
        if replicas.iter().all(|r| {
            r.queue().is_empty() && r.queue().in_flight() == 0 && r.queue().delayed_len() == 0
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    for h in runs {
        h.await.expect("run");
    }
    assert_eq!(discord.in_channel("1001").len(), 20);
    assert_eq!(discord.in_channel("1002").len(), 20);
    for i in 0..20 {
        let d = stored(&store, &format!("req-{i}"));
        assert_eq!(d.messages.len(), 2, "req-{i}: {d:?}");
        assert!(!d.rendered.is_empty(), "req-{i} converged");
    }
}

#[tokio::test]
async fn permanent_failure_drops_the_channel_and_retryable_failure_retries() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    discord.fail(
        "1002",
        Some(SendError::Permanent("Missing Access (50001)".into())),
    );
    r.observe_put(request("r1"));
    let out = r.settle("r1").await.expect("reconcile");
    assert_eq!(
        out,
        Outcome {
            created: 1,
            edited: 0,
            dropped: 1
        }
    );
    assert_eq!(stored(&store, "r1").channels, ["1001"]);
    let calls = discord.calls();
    r.settle("r1").await.expect("again");
    assert_eq!(discord.calls(), calls, "a dropped channel is not retried");

    discord.fail("1002", None);
    discord.fail("1001", Some(SendError::Retryable("503".into())));
    r.observe_put(request("r2"));
    assert!(matches!(
        r.settle("r2").await,
        Err(ReconcileError::Discord(_))
    ));
    assert_eq!(
        stored(&store, "r2").messages.len(),
        1,
        "the channel that worked is recorded"
    );
    discord.fail("1001", None);
    let out = r.settle("r2").await.expect("retry");
    assert_eq!(out.created, 1);
    assert_eq!(stored(&store, "r2").messages.len(), 2);
    assert_eq!(
        discord.in_channel("1001").len(),
        2,
        "one for r1, one for r2"
    );
}

/// `id` posted by a replica that died before recording the messages: the
/// claim stays, the recorded messages do not.
async fn posted_but_not_recorded(id: &str) -> (Store, Discord) {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_put(request(id));
    r.settle(id).await.expect("post");
    {
        let mut all = store.data.lock().unwrap();
        let e = all.get_mut(id).expect("data");
        e.remove("messages");
        e.remove("discord_rendered");
    }
    (store, discord)
}

#[tokio::test(start_paused = true)]
async fn a_crash_after_posting_is_repaired_without_a_duplicate() {
    let (store, discord) = posted_but_not_recorded("r1").await;
    let r2 = reconciler(&store, &discord);
    r2.observe_put(request("r1"));
    as_other_replica(&r2, "r1").await;
    assert_eq!(
        discord.in_channel("1001").len(),
        1,
        "the nonce returned the same message"
    );
    assert_eq!(stored(&store, "r1").messages.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_request_deleted_after_an_unrecorded_post_still_shows_expired() {
    let (store, discord) = posted_but_not_recorded("r1").await;
    let r2 = reconciler(&store, &discord);
    r2.observe_delete("r1");
    as_other_replica(&r2, "r1").await;
    for ch in ["1001", "1002"] {
        let msgs = discord.in_channel(ch);
        assert_eq!(msgs.len(), 1, "no second message in {ch}");
        assert!(
            msgs[0].body.content.contains("*Status*: ⌛ EXPIRED"),
            "{}",
            msgs[0].body.content
        );
    }
    let d = stored(&store, "r1");
    assert_eq!(d.messages.len(), 2);
    assert_eq!(d.resolution, "EXPIRED");
    // Shown gone: nothing about it stays in memory (a long-running replica
    // sees thousands of requests come and go).
    assert!(r2.observed().is_empty());
}

#[tokio::test]
async fn approved_then_deleted_before_a_worker_ran_shows_approved() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_put(request("r1"));
    r.settle("r1").await.expect("post");
    // Both events arrive before a worker looks again (coalesced).
    let mut approved = request("r1");
    approved.state = RequestState::Approved;
    approved.resolve_reason = "fine".into();
    r.observe_put(approved.clone());
    r.observe_delete("r1");
    r.settle("r1").await.expect("resolve");
    let m = &discord.in_channel("1001")[0];
    assert!(
        m.body.content.contains("*Status*: ✅ APPROVED"),
        "{}",
        m.body.content
    );
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
    // The same when the deletion is noticed by a listing that lacks it.
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut pending = approved.clone();
    pending.state = RequestState::Pending;
    r.observe_put(pending);
    r.settle("r1").await.expect("post");
    r.observe_put(approved);
    r.observe_list(Vec::new(), r.list_mark(), None);
    r.settle("r1").await.expect("resolve");
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
    assert_eq!(r.tracked(), 0, "a deleted request is forgotten once shown");
}

#[tokio::test]
async fn a_deletion_during_the_first_post_is_still_shown() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = Arc::new(reconciler(&store, &discord));
    r.observe_put(request("r1"));
    // The deletion arrives while the post is on its way.
    let worker = {
        let r = r.clone();
        tokio::spawn(async move { r.settle("r1").await })
    };
    tokio::task::yield_now().await;
    r.observe_delete("r1");
    worker.await.expect("join").expect("post");
    r.settle("r1").await.expect("expire");
    for ch in ["1001", "1002"] {
        let m = &discord.in_channel(ch)[0];
        assert!(
            m.body.content.contains("*Status*: ⌛ EXPIRED"),
            "{}",
            m.body.content
        );
    }
    assert_eq!(r.tracked(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_expiry_recorded_by_a_replica_that_missed_the_approval_gives_way() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_put(request("r1"));
    r.settle("r1").await.expect("post");
    // A replica that missed the approval saw only the deletion.
    let blind = reconciler(&store, &discord);
    blind.observe_put(request("r1"));
    blind.observe_delete("r1");
    as_other_replica(&blind, "r1").await;
    assert_eq!(stored(&store, "r1").resolution, "EXPIRED");
    // The replica that saw the approval shows and records it.
    let mut approved = request("r1");
    approved.state = RequestState::Approved;
    r.observe_put(approved);
    r.observe_delete("r1");
    r.settle("r1").await.expect("resolve");
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
    let m = &discord.in_channel("1001")[0];
    assert!(
        m.body.content.contains("*Status*: ✅ APPROVED"),
        "{}",
        m.body.content
    );
    // And a later expiry does not take it back.
    let late = reconciler(&store, &discord);
    late.observe_put(request("r1"));
    late.observe_delete("r1");
    as_other_replica(&late, "r1").await;
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
    assert!(
        discord.in_channel("1001")[0]
            .body
            .content
            .contains("APPROVED")
    );
}

#[tokio::test(start_paused = true)]
async fn other_replicas_leave_the_owner_a_moment_then_take_over() {
    let (store, discord) = (Store::default(), Discord::default());
    let owner = reconciler(&store, &discord);
    let other = reconciler(&store, &discord);
    owner.observe_put(request("r1"));
    other.observe_put(request("r1"));
    owner.settle("r1").await.expect("post");
    let calls = discord.calls();
    assert!(!stored(&store, "r1").owner.is_empty());
    // A review reaches both; the owner is slow (or gone).
    let mut reviewed = request("r1");
    reviewed.reviews.push(Review {
        author: "a".into(),
        approved: true,
        reason: "ok".into(),
        created_unix: 0,
        submitted_by: None,
    });
    other.observe_put(reviewed.clone());
    // As a worker does: take the key, reconcile, release it.
    while other.queue().len() > 1 {
        let k = other.queue().next().await.expect("key");
        other.queue().done(&k);
    }
    let key = other.queue().next().await.expect("key");
    as_worker(&other, &key).await;
    assert_eq!(discord.calls(), calls, "the other replica left it alone");
    assert_eq!(
        other.queue().delayed_len(),
        1,
        "and looks again after HANDOFF"
    );
    // More news within HANDOFF (a second review) does not cut the wait
    // short: the owner is acting on it too.
    tokio::time::advance(Duration::from_secs(2)).await;
    reviewed.reviews.push(Review {
        author: "b".into(),
        approved: true,
        reason: "ok too".into(),
        created_unix: 0,
        submitted_by: None,
    });
    other.observe_put(reviewed.clone());
    let key = other.queue().next().await.expect("key");
    as_worker(&other, &key).await;
    assert_eq!(discord.calls(), calls, "still left to the owner");
    assert_eq!(other.queue().delayed_len(), 1, "for the rest of HANDOFF");
    // After HANDOFF: the owner did nothing, so the other replica edits.
    tokio::time::advance(HANDOFF - Duration::from_secs(2)).await;
    assert_eq!(other.settle("r1").await.expect("take over").edited, 2);
    // Had the owner done it, the second look would find nothing to do.
    owner.observe_put(reviewed);
    assert_eq!(owner.settle("r1").await.expect("owner").edited, 0);
}

#[tokio::test]
async fn listing_catches_up_and_notices_vanished_requests() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_list(vec![request("a"), request("b")], r.list_mark(), None);
    assert_eq!(r.queue().len(), 2);
    while let Some(id) = tokio::time::timeout(Duration::from_millis(10), r.queue().next())
        .await
        .ok()
        .flatten()
    {
        r.settle(&id).await.expect("reconcile");
        r.queue().done(&id);
    }
    assert_eq!(discord.in_channel("1001").len(), 2);
    // "b" is gone from the next listing: it expired while we were away.
    r.observe_list(vec![request("a")], r.list_mark(), None);
    let id = r.queue().next().await.expect("id");
    let id2 = r.queue().next().await.expect("id");
    let mut ids = [id.clone(), id2.clone()];
    ids.sort();
    assert_eq!(ids, ["a".to_owned(), "b".to_owned()]);
    r.settle("b").await.expect("expire b");
    r.settle("a").await.expect("a unchanged");
    assert_eq!(stored(&store, "b").resolution, "EXPIRED");
    assert_eq!(stored(&store, "a").resolution, "");
}

#[tokio::test]
async fn access_monitoring_rules_override_the_config() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_rule_put(crate::amr::Rule {
        name: "amr".into(),
        subjects: vec!["access_request".into()],
        condition: "!is_empty(access_request.spec.roles)".into(),
        notification_name: "discord".into(),
        recipients: vec!["2001".into(), "2002".into()],
    });
    r.observe_put(request("r1"));
    r.settle("r1").await.expect("post");
    assert_eq!(stored(&store, "r1").channels, ["2001", "2002"]);
    assert!(discord.in_channel("1001").is_empty());
    // Deleted rule: the config applies to requests that arrive afterwards.
    r.observe_rule_delete("amr");
    r.observe_put(request("r2"));
    r.settle("r2").await.expect("post");
    assert_eq!(stored(&store, "r2").channels, ["1001", "1002"]);
    assert_eq!(
        stored(&store, "r1").channels,
        ["2001", "2002"],
        "earlier requests keep their channels"
    );
}

#[test]
fn nonces_are_short_and_distinct() {
    let a = nonce_for(
        "0bcc8e0c-6a62-4d4e-a7f5-0b5c4a3e7f10",
        "1234567890123456789",
    );
    assert!(a.len() <= 25, "{a}");
    assert_eq!(
        a,
        nonce_for(
            "0bcc8e0c-6a62-4d4e-a7f5-0b5c4a3e7f10",
            "1234567890123456789"
        )
    );
    assert_ne!(
        a,
        nonce_for(
            "0bcc8e0c-6a62-4d4e-a7f5-0b5c4a3e7f10",
            "1234567890123456780"
        )
    );
}

#[tokio::test]
async fn role_logins_are_asked_once_per_role_a_minute_even_when_refused() {
    let (store, discord) = (Store::default(), Discord::default());
    *store.role_answer.lock().unwrap() = Some(Ok(Some(vec!["root".into()])));
    let r = reconciler(&store, &discord);
    for id in ["r1", "r2"] {
        r.observe_put(request(id));
        r.settle(id).await.expect("post");
    }
    assert_eq!(*store.role_calls.lock().unwrap(), 1, "cached per role");
    assert_eq!(stored(&store, "r2").logins_by_role["editor"], ["root"]);

    // Without `role: read`: no logins, and not a GetRole (and a warning) per request.
    let (store, discord) = (Store::default(), Discord::default());
    *store.role_answer.lock().unwrap() = Some(Err(StoreError::Forbidden("role read".into())));
    let r = reconciler(&store, &discord);
    for id in ["r1", "r2", "r3"] {
        r.observe_put(request(id));
        r.settle(id).await.expect("post");
    }
    assert_eq!(
        *store.role_calls.lock().unwrap(),
        1,
        "the refusal is remembered"
    );
    assert!(stored(&store, "r3").logins_by_role.is_empty());
    assert_eq!(
        discord.in_channel("1001").len(),
        3,
        "every request still posted"
    );
}

/// A listing asked for before an event arrived (the periodic resync's, taken
/// while the approval was on its way) does not take the request back to
/// pending, nor does it delete a request the watch created meanwhile.
#[tokio::test]
async fn a_listing_never_undoes_a_newer_event() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_put(request("a"));
    let mark = r.list_mark();
    // Meanwhile: "a" is approved, "b" is created.
    let mut approved = request("a");
    approved.state = RequestState::Approved;
    r.observe_put(approved.clone());
    r.observe_put(request("b"));
    // The listing, as Teleport had it at the mark: "a" pending, no "b".
    r.observe_list(vec![request("a")], mark, None);
    assert_eq!(
        r.observed().get("a"),
        Some(&Observed::Present(Box::new(approved)))
    );
    assert!(
        matches!(r.observed().get("b"), Some(Observed::Present(_))),
        "b kept"
    );
    // A listing asked for after the events applies.
    r.observe_list(vec![request("b")], r.list_mark(), None);
    assert!(
        matches!(r.observed().get("a"), Some(Observed::Deleted(Some(_)))),
        "a gone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lagging_pending_view_never_paints_a_resolved_request_back() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut req = request("r1");
    r.observe_put(req.clone());
    r.settle("r1").await.expect("post");
    req.state = RequestState::Approved;
    req.resolve_reason = "fine".into();
    r.observe_put(req.clone());
    r.settle("r1").await.expect("approve");
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
    // Another replica whose watch lags still sees the request pending, with
    // a review the first replica never showed (so its digest differs).
    let lagging = reconciler(&store, &discord);
    let mut stale = request("r1");
    stale.reviews.push(Review {
        author: "reviewer1".into(),
        approved: true,
        reason: "okay".into(),
        created_unix: 1_136_214_245,
        submitted_by: None,
    });
    lagging.observe_put(stale);
    as_other_replica(&lagging, "r1").await;
    for ch in ["1001", "1002"] {
        let m = &discord.in_channel(ch)[0];
        assert!(
            m.body.content.contains("*Status*: ✅ APPROVED"),
            "{}",
            m.body.content
        );
    }
    // The request is deleted afterwards: the approval stays shown.
    lagging.observe_delete("r1");
    lagging.settle("r1").await.expect("delete");
    assert!(
        discord.in_channel("1001")[0]
            .body
            .content
            .contains("APPROVED")
    );
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
}

#[tokio::test]
async fn a_reconcile_hands_over_and_returns_while_discord_is_slow() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    discord.hold();
    r.observe_put(request("r1"));
    r.observe_put(request("r2"));
    // Neither reconcile waits for Discord: both requests' creates are out.
    for id in ["r1", "r2"] {
        let first = r.reconcile(id).await.expect("plan");
        assert_eq!(first.action, Action::AwaitDiscord);
    }
    assert_eq!((discord.held(), r.awaiting_discord()), (4, 2));
    // Looked at again while in flight: nothing is planned twice.
    assert_eq!(
        r.reconcile("r1").await.expect("again").action,
        Action::AwaitDiscord
    );
    assert_eq!(discord.submits(), 4);
    discord.release();
    assert_eq!(r.settle("r1").await.expect("record").created, 2);
    assert_eq!(r.settle("r2").await.expect("record").created, 2);
    assert_eq!(stored(&store, "r1").messages.len(), 2);
    assert!(!stored(&store, "r2").rendered.is_empty());
    assert_eq!(r.awaiting_discord(), 0);
}

#[tokio::test]
async fn news_during_a_flight_coalesces_into_one_plan_after_it() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut req = request("r1");
    r.observe_put(req.clone());
    r.settle("r1").await.expect("post");
    let before = discord.submits();
    discord.hold();
    req.reviews.push(Review {
        author: "a".into(),
        approved: true,
        reason: "ok".into(),
        created_unix: 0,
        submitted_by: None,
    });
    r.observe_put(req.clone());
    assert_eq!(
        r.reconcile("r1").await.expect("edit").action,
        Action::AwaitDiscord
    );
    // Three more states arrive while the edits are on their way.
    for author in ["b", "c"] {
        req.reviews.push(Review {
            author: author.into(),
            approved: true,
            reason: "ok".into(),
            created_unix: 0,
            submitted_by: None,
        });
        r.observe_put(req.clone());
        assert_eq!(
            r.reconcile("r1").await.expect("busy").action,
            Action::AwaitDiscord
        );
    }
    req.state = RequestState::Approved;
    r.observe_put(req.clone());
    discord.release();
    r.settle("r1").await.expect("settle");
    // One edit per message for the first review, then one per message for
    // the newest state: the intermediate ones never went out.
    assert_eq!(discord.submits() - before, 4);
    let m = &discord.in_channel("1001")[0];
    assert!(m.body.content.contains("✅ APPROVED"), "{}", m.body.content);
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
}

#[tokio::test]
async fn failures_back_off_per_request_whichever_worker_runs_it() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let e = ReconcileError::Discord(SendError::Retryable("503".into()));
    let delays: Vec<Duration> = (0..6)
        .map(|_| match r.error_policy("r1", &e) {
            Action::RequeueAfter(d) => d,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(delays[5] > delays[0] * 4, "backoff grows: {delays:?}");
    // Another request starts its own backoff; a conflict looks again at once.
    let Action::RequeueAfter(d) = r.error_policy("r2", &e) else {
        panic!()
    };
    assert!(d < delays[5]);
    assert_eq!(
        r.error_policy("r1", &ReconcileError::Store(StoreError::Conflict)),
        Action::RequeueAfter(Duration::ZERO)
    );
    // Success forgets the count.
    r.queue().forget(&"r1".to_owned());
    assert_eq!(r.queue().failure(&"r1".to_owned()), 0);
}

#[tokio::test]
async fn a_resync_compares_one_listing_and_skips_what_is_shown() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut approved = request("done");
    r.observe_put(approved.clone());
    r.settle("done").await.expect("post");
    approved.state = RequestState::Approved;
    r.observe_put(approved.clone());
    r.settle("done").await.expect("approve");
    r.observe_put(request("shown"));
    r.settle("shown").await.expect("post");
    let mut reviewed = request("reviewed");
    r.observe_put(reviewed.clone());
    r.settle("reviewed").await.expect("post");
    // Reviewed while no replica was running.
    reviewed.reviews.push(Review {
        author: "a".into(),
        approved: true,
        reason: "ok".into(),
        created_unix: 0,
        submitted_by: None,
    });
    // A restart: a new replica lists everything.
    let fresh = reconciler(&store, &discord);
    let (calls, reads) = (discord.calls(), *store.reads.lock().unwrap());
    let found = fresh
        .resync(
            vec![approved, request("shown"), reviewed, request("new")],
            fresh.list_mark(),
            true,
        )
        .await;
    assert_eq!((found.listed, found.at_rest, found.swept), (4, 2, 0));
    // Only what changed is queued; nothing was read request by request.
    assert_eq!(fresh.queue().len(), 2);
    assert_eq!(*store.reads.lock().unwrap(), reads);
    assert_eq!(discord.calls(), calls);
    assert_eq!(fresh.stats().at_rest, 2);
}

#[tokio::test(start_paused = true)]
async fn an_approval_sent_but_not_recorded_survives_its_sender_and_a_deletion() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    let mut req = request("r1");
    r.observe_put(req.clone());
    r.settle("r1").await.expect("post");
    // The approval's edits go out; the sender dies before it records them.
    discord.hold();
    req.state = RequestState::Approved;
    req.resolve_reason = "fine".into();
    r.observe_put(req.clone());
    assert_eq!(
        r.reconcile("r1").await.expect("edit").action,
        Action::AwaitDiscord
    );
    drop(r);
    discord.release();
    let d = stored(&store, "r1");
    assert_eq!(d.resolution, "APPROVED", "recorded before it was shown");
    assert!(d.rendered.is_empty(), "and not known to be shown");
    // Teleport deletes it; a replica that never saw the approval sees only that.
    let other = reconciler(&store, &discord);
    other.observe_put(request("r1"));
    other.observe_delete("r1");
    as_other_replica(&other, "r1").await;
    for ch in ["1001", "1002"] {
        let m = &discord.in_channel(ch)[0];
        assert!(m.body.content.contains("✅ APPROVED"), "{}", m.body.content);
        assert!(m.body.content.contains("fine"), "{}", m.body.content);
    }
    assert_eq!(stored(&store, "r1").resolution, "APPROVED");
}

#[tokio::test(start_paused = true)]
async fn a_recorded_expiry_never_shown_is_found_by_the_sweep() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    r.observe_put(request("r1"));
    r.settle("r1").await.expect("post");
    // A replica saw the deletion, and its edit failed (it lost the lease,
    // or Discord answered 500): the expiry is recorded, the digest is not,
    // and the message IDs were lost with a crash before that.
    discord.fail("1001", Some(SendError::Retryable("503".into())));
    discord.fail("1002", Some(SendError::Retryable("503".into())));
    r.observe_delete("r1");
    assert!(r.settle("r1").await.is_err(), "the edits failed");
    {
        let mut all = store.data.lock().unwrap();
        let e = all.get_mut("r1").expect("data");
        e.remove("messages");
    }
    let d = stored(&store, "r1");
    assert_eq!(
        (d.resolution.as_str(), d.rendered.as_str()),
        ("EXPIRED", "")
    );
    discord.fail("1001", None);
    discord.fail("1002", None);
    store.deleted.lock().unwrap().insert("r1".into());
    // A replica started afterwards never saw the request: only the sweep
    // after its first listing can find it.
    let fresh = reconciler(&store, &discord);
    let found = fresh.resync(Vec::new(), fresh.list_mark(), true).await;
    assert_eq!(found.swept, 1);
    as_other_replica(&fresh, "r1").await;
    for ch in ["1001", "1002"] {
        let msgs = discord.in_channel(ch);
        assert_eq!(msgs.len(), 1, "no second message in {ch}");
        assert!(
            msgs[0].body.content.contains("⌛ EXPIRED"),
            "{}",
            msgs[0].body.content
        );
    }
    assert!(!stored(&store, "r1").rendered.is_empty());
}

#[tokio::test]
async fn a_periodic_listing_looks_again_only_at_what_changed() {
    let (store, discord) = (Store::default(), Discord::default());
    let r = reconciler(&store, &discord);
    for id in ["a", "b"] {
        r.observe_put(request(id));
        r.settle(id).await.expect("post");
    }
    // As the workers would have: the queue is empty once both are done.
    while let Ok(Some(k)) = tokio::time::timeout(Duration::from_millis(10), r.queue().next()).await
    {
        r.queue().done(&k);
    }
    let (listings, reads) = (
        *store.listings.lock().unwrap(),
        *store.reads.lock().unwrap(),
    );
    let mut b = request("b");
    b.reason = "changed while the watch missed it".into();
    let found = r.resync(vec![request("a"), b], r.list_mark(), false).await;
    assert_eq!((found.listed, found.at_rest), (2, 1));
    assert_eq!(r.queue().len(), 1, "only the request that changed");
    assert_eq!(
        *store.listings.lock().unwrap(),
        listings,
        "no plugin data listing"
    );
    assert_eq!(*store.reads.lock().unwrap(), reads);
}

#[tokio::test(start_paused = true)]
async fn a_standby_forgets_old_deletions_and_a_takeover_still_shows_them() {
    let (store, discord) = (Store::default(), Discord::default());
    let leader = reconciler(&store, &discord);
    let standby = reconciler(&store, &discord);
    standby.set_role(false, false);
    leader.set_role(true, true);
    leader.observe_put(request("r1"));
    standby.observe_put(request("r1"));
    leader.settle("r1").await.expect("post");
    // The request is deleted; the leader dies before it shows that.
    standby.observe_delete("r1");
    store.deleted.lock().unwrap().insert("r1".into());
    drop(leader);
    tokio::time::advance(FORGET_DELETED).await;
    standby.resync(Vec::new(), standby.list_mark(), false).await;
    assert_eq!(standby.tracked(), 0, "a standby forgets old deletions");
    // It becomes the leader: the take-over's sweep finds it in plugin data.
    standby.set_role(true, true);
    let (_, queued) = standby.takeover().await;
    assert_eq!(queued, 1);
    standby.settle("r1").await.expect("expire");
    for ch in ["1001", "1002"] {
        let m = &discord.in_channel(ch)[0];
        assert!(m.body.content.contains("⌛ EXPIRED"), "{}", m.body.content);
    }
}
