//! The reconciler: a level-triggered controller that turns the latest state of
//! each access request into Discord messages and plugin data.
//!
//! The Teleport watch only records what it saw ([`Reconciler::observe_put`],
//! [`Reconciler::observe_delete`], [`Reconciler::observe_list`]) and marks the
//! request dirty; workers take IDs from the [`queue::WorkQueue`] and run
//! [`Reconciler::reconcile`], which reads plugin data, plans what Discord and
//! plugin data should become ([`plan`], pure), hands the Discord operations
//! to the [`Messenger`] and returns an [`Action`] at once: a worker never
//! waits for Discord (rate limits included). Each answer is kept with the
//! request's *flight*; the last one marks the request dirty again, and its
//! next reconcile records the answers with compare-and-swap, then plans from
//! what is true by then. A request with operations in flight is not planned
//! again: news observed meanwhile coalesces into the plan after the record.
//! A failure goes through [`Reconciler::error_policy`]: backoff from the
//! request's failure count, which the queue keeps per key; nothing is dropped.
//!
//! Exactly once, across restarts and replicas:
//! 1. the first replica to see a pending request *claims* it: a CAS from "no
//!    plugin data" to the request's data plus the recipient channels; a loser
//!    gets a conflict and simply runs again, now seeing the claim;
//! 2. each claimed channel without a recorded message gets a create with a
//!    deterministic `nonce` and `enforce_nonce`, so a create repeated by a
//!    crashed or racing replica returns the same message;
//! 3. the message IDs are added to plugin data by CAS (merging with what is
//!    there); edits are idempotent, and the digest of the last body written to
//!    every message (`discord_rendered`) makes a resync with nothing new cost
//!    no Discord call.

pub mod model;
pub mod plan;
pub mod queue;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::amr::{Rule, RuleSet, Stored};
use crate::backoff::{Backoff, random_jitter};
use crate::config::{Recipient, SharedConfig};
use crate::plugindata::PluginData;
use crate::render::{self, MessageBody, RequestView, Status, StatusField};

pub use model::{Request, RequestState, Review, Threshold};
use queue::WorkQueue;

/// Backoff between attempts of a failing request: capped well inside
/// Discord's nonce window (a few minutes), so a retried create is still
/// recognised as the same message.
pub const RETRY_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(60));

/// A role's logins as `GetRole` answered (`None`: no such role), and when.
type CachedLogins = (tokio::time::Instant, Option<Vec<String>>);

/// How long a role's logins are reused before `GetRole` is asked again (a
/// burst of requests for one role costs one call).
pub const ROLE_CACHE_TTL: Duration = Duration::from_secs(60);

/// How long a standby remembers a deletion it observed (a take-over within
/// it shows the last state it saw, approvals included).
pub const FORGET_DELETED: Duration = Duration::from_secs(15 * 60);

/// How long a replica leaves a request another replica claimed, so that one
/// replica does the Discord work and the others find it done (fewer calls,
/// fewer shared rate limits hit). A dead owner costs this much delay.
pub const HANDOFF: Duration = Duration::from_secs(5);

/// A compare-and-swap write failed or plugin data could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// `Expect` did not match: someone else wrote first.
    #[error("plugin data changed concurrently")]
    Conflict,
    /// Teleport refused the call (the plugin's role lacks a permission).
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// Anything else (Teleport unreachable, ...).
    #[error("plugin data: {0}")]
    Other(String),
}

/// One request's raw plugin data in a listing: (request ID, entries).
pub type Listed = (String, BTreeMap<String, String>);

/// Plugin data access (implemented by the Teleport client).
pub trait PluginDataStore: Send + Sync + 'static {
    /// Reads the request's data for our plugin; empty when none.
    fn get(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, StoreError>> + Send;
    /// `UpdatePluginData` with `Set` and `Expect`.
    fn compare_and_swap(
        &self,
        request_id: &str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The request as Teleport has it now (`None`: deleted). Asked after a
    /// concurrent writer was detected, when the watch's view may be behind.
    /// Stores that cannot answer say so, and the watch's view is used.
    fn current(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<Request>, StoreError>> + Send {
        let _ = request_id;
        std::future::ready(Err(StoreError::Other(
            "this store cannot read requests".to_owned(),
        )))
    }
    /// Every request's plugin data for our plugin, in one listing (the
    /// resync compares it with what it observed; the sweep finds requests
    /// deleted while unwatched). Stores that cannot list answer none.
    fn list(&self) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send {
        std::future::ready(Ok(Vec::new()))
    }
    /// The logins a role allows (`GetRole`), shown per role in the message;
    /// `None` when there is no such role. Stores that know no roles answer
    /// `None`.
    fn role_logins(
        &self,
        role: &str,
    ) -> impl Future<Output = Result<Option<Vec<String>>, StoreError>> + Send {
        let _ = role;
        std::future::ready(Ok(None))
    }
}

/// Why a Discord call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Will not succeed if retried (unknown channel, missing permission, invalid body).
    #[error("Discord refused: {0}")]
    Permanent(String),
    /// Worth retrying later (5xx, timeouts, rate limits beyond the budget).
    #[error("Discord unavailable: {0}")]
    Retryable(String),
}

/// One Discord operation handed to the [`Messenger`].
#[derive(Debug, Clone, PartialEq)]
pub enum MessageOp {
    /// Post `body`; must send `nonce` with `enforce_nonce`, and answer with
    /// the message's ID (a repeated create's message brought up to date).
    Create {
        /// Channel snowflake.
        channel: String,
        /// [`nonce_for`] the request and channel.
        nonce: String,
        /// What to show.
        body: Arc<MessageBody>,
    },
    /// Replace a message's body; answers with the message's ID.
    Edit {
        /// Channel snowflake.
        channel: String,
        /// Message snowflake.
        message: String,
        /// What to show.
        body: Arc<MessageBody>,
    },
}

/// Takes an operation's answer: the message's ID, or why not.
pub type Answer = Box<dyn FnOnce(Result<String, SendError>) + Send>;

/// Discord message operations (implemented over the Discord delivery queue).
pub trait Messenger: Send + Sync + 'static {
    /// Hands `op` over without waiting for Discord; `answer` is called
    /// exactly once with its result (maybe before `submit` returns, e.g.
    /// when the queue is full).
    fn submit(&self, op: MessageOp, answer: Answer);
}

/// What the queue does with a request after a reconcile (kube-runtime's
/// `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Converged: nothing to do until news arrives.
    Done,
    /// Look again after this long (another replica owns it, or a retry).
    RequeueAfter(Duration),
    /// Discord operations are in flight; their last answer marks it dirty.
    AwaitDiscord,
}

/// A reconcile's action and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// What to do next.
    pub action: Action,
    /// Messages created, edited and given up whose answers were recorded.
    pub outcome: Outcome,
}

impl Reconciled {
    fn done(outcome: Outcome) -> Self {
        Self {
            action: Action::Done,
            outcome,
        }
    }
}

/// A request's Discord operations between hand-over and record.
struct Flight {
    /// The observation the plan was made from.
    seen: Observed,
    /// Plugin data as read for the plan.
    read: PluginData,
    channels: Vec<String>,
    digest: String,
    /// The plan's change to plugin data besides messages and digest.
    update: Arc<dyn Fn(&mut PluginData) + Send + Sync>,
    /// Operations not answered yet.
    pending: usize,
    results: plan::Results,
}

impl std::fmt::Debug for Flight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight")
            .field("channels", &self.channels)
            .field("pending", &self.pending)
            .field("results", &self.results)
            .finish_non_exhaustive()
    }
}

/// What the reconciler shares with the answers' callbacks.
#[derive(Debug, Default)]
struct Shared {
    queue: WorkQueue<String>,
    flights: Mutex<HashMap<String, Flight>>,
    /// Notified at every answer.
    answered: Notify,
}

/// Cluster facts from `Ping`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterInfo {
    /// Cluster name.
    pub name: String,
    /// `https://<proxy>` when the cluster has Advanced Access Workflows.
    pub web_proxy_url: Option<String>,
    /// Our own Teleport user (the identity's), which Teleport records as
    /// `SubmittedBy` of the reviews we submit for Discord users.
    pub plugin_user: String,
}

/// What the watch last told us about a request.
#[derive(Debug, Clone, PartialEq)]
enum Observed {
    Present(Box<Request>),
    /// Gone; with the last state seen, which may be a resolution that was
    /// not shown yet (approved, then deleted before a worker got to it).
    Deleted(Option<Box<Request>>),
}

impl Observed {
    fn deleted(previous: Option<Observed>) -> Self {
        match previous {
            Some(Observed::Present(r)) => Observed::Deleted(Some(r)),
            Some(d @ Observed::Deleted(_)) => d,
            None => Observed::Deleted(None),
        }
    }
}

/// What a [`Reconciler::resync`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resync {
    /// Requests listed.
    pub listed: usize,
    /// Listed requests whose messages already show their state: not queued.
    pub at_rest: usize,
    /// Requests deleted while unwatched, now shown expired.
    pub swept: usize,
}

/// How far the watch's news had come when a listing was asked for
/// ([`Reconciler::list_mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMark(u64);

/// Why a reconcile did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReconcileError {
    /// Plugin data could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some Discord calls failed and should be retried.
    #[error("{0}")]
    Discord(SendError),
}

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Messages created.
    pub created: usize,
    /// Messages edited.
    pub edited: usize,
    /// Channels given up on (permanent errors).
    pub dropped: usize,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, o: Self) {
        self.created += o.created;
        self.edited += o.edited;
        self.dropped += o.dropped;
    }
}

/// The create nonce of `request_id`'s message in `channel_id` (25
/// characters, as Discord allows): the same pair always gives the same nonce,
/// so a create repeated by a crashed or racing replica finds the first one's
/// message (`enforce_nonce`).
pub fn nonce_for(request_id: &str, channel_id: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{request_id}\0{channel_id}").as_bytes(),
    );
    let hex: String = digest
        .as_ref()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t{hex}")
}

/// Digest of a message body, stored as `discord_rendered`.
pub fn digest(body: &MessageBody) -> String {
    let json = serde_json::to_vec(body).unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA256, &json);
    d.as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Counters of what the reconciler did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Reconciles that finished.
    pub ok: u64,
    /// Reconciles that met a concurrent writer and ran again.
    pub conflicts: u64,
    /// Reconciles that failed and were requeued with backoff.
    pub retries: u64,
    /// Messages created.
    pub created: u64,
    /// Messages edited.
    pub edited: u64,
    /// Channels given up on.
    pub dropped: u64,
    /// Rule conditions that failed to evaluate.
    pub rule_errors: u64,
    /// Listed requests found at rest (not reconciled) by a resync.
    pub at_rest: u64,
}

#[derive(Debug, Default)]
struct Counters {
    at_rest: AtomicU64,
    ok: AtomicU64,
    conflicts: AtomicU64,
    retries: AtomicU64,
    created: AtomicU64,
    edited: AtomicU64,
    dropped: AtomicU64,
    rule_errors: AtomicU64,
}

/// The controller.
#[derive(Debug)]
pub struct Reconciler<P, M> {
    counters: Counters,
    observed: Mutex<HashMap<String, Observed>>,
    /// Requests to read again from Teleport before their next reconcile
    /// (another replica wrote concurrently: our view may be behind).
    stale: Mutex<std::collections::HashSet<String>>,
    /// Requests whose messages we may have changed without recording what
    /// they show (the record failed, or newer news arrived while we were
    /// sending): their next reconcile edits whatever the record says.
    unsure: Mutex<std::collections::HashSet<String>>,
    /// Requests another replica owns that we leave alone, until when: news
    /// arriving meanwhile does not cut the wait short (the owner is acting
    /// on the same news).
    deferred: Mutex<HashMap<String, Instant>>,
    /// This replica's name in `discord_owner`.
    replica: String,
    /// Role → logins, as `GetRole` answered, for [`ROLE_CACHE_TTL`] (a
    /// refusal is kept as "none").
    role_cache: Mutex<HashMap<String, CachedLogins>>,
    rules: Mutex<RuleSet>,
    /// Watch events observed so far; each request's last one's number is in
    /// `stamps` (lock order: `observed`, then `stamps`).
    events: AtomicU64,
    stamps: Mutex<HashMap<String, u64>>,
    /// Whether this replica reconciles what it observes (it is not a
    /// standby of the leader lease).
    active: std::sync::atomic::AtomicBool,
    /// When each remembered deletion was observed (lock order: `observed`,
    /// then this).
    deleted_at: Mutex<HashMap<String, Instant>>,
    /// Whether it is the only replica acting (the lease holder): then it
    /// never leaves a request to another replica's claim.
    alone: std::sync::atomic::AtomicBool,
    shared: Arc<Shared>,
    store: P,
    messenger: M,
    config: SharedConfig,
    cluster: arc_swap::ArcSwap<ClusterInfo>,
    /// Told the ID of each request whose requester DM it marks due.
    due: std::sync::OnceLock<DueHook>,
}

/// Called with a request's ID when its requester DM is marked due.
#[derive(Clone)]
pub struct DueHook(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for DueHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DueHook")
    }
}

impl<P: PluginDataStore, M: Messenger> Reconciler<P, M> {
    /// Sets who hears of requester DMs marked due (once).
    pub fn on_requester_due(&self, hook: DueHook) {
        let _ = self.due.set(hook);
    }

    fn due_hook(&self) -> Option<DueHook> {
        self.due.get().cloned()
    }

    /// A reconciler over the given plugin data store and messenger. `replica`
    /// names this replica in `discord_owner`: give a name that survives
    /// restarts of the same instance and differs between replicas.
    pub fn new(
        store: P,
        messenger: M,
        config: SharedConfig,
        cluster: ClusterInfo,
        replica: String,
    ) -> Self {
        Self {
            counters: Counters::default(),
            observed: Mutex::new(HashMap::new()),
            stale: Mutex::new(std::collections::HashSet::new()),
            unsure: Mutex::new(std::collections::HashSet::new()),
            deferred: Mutex::new(HashMap::new()),
            replica,
            role_cache: Mutex::new(HashMap::new()),
            rules: Mutex::new(RuleSet::new()),
            events: AtomicU64::new(0),
            stamps: Mutex::new(HashMap::new()),
            active: std::sync::atomic::AtomicBool::new(true),
            deleted_at: Mutex::new(HashMap::new()),
            alone: std::sync::atomic::AtomicBool::new(false),
            shared: Arc::new(Shared::default()),
            store,
            messenger,
            config,
            cluster: arc_swap::ArcSwap::from_pointee(cluster),
            due: std::sync::OnceLock::new(),
        }
    }

    /// Replaces the cluster facts (after a reload connected to another address).
    /// Messages pick them up on their next change.
    pub fn set_cluster(&self, cluster: ClusterInfo) {
        self.cluster.store(Arc::new(cluster));
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Observed>> {
        crate::sync::lock(&self.observed)
    }

    /// The work queue (for metrics and workers).
    pub fn queue(&self) -> &WorkQueue<String> {
        &self.shared.queue
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        crate::sync::lock(&self.shared.flights)
    }

    /// Requests whose Discord operations are in flight.
    pub fn awaiting_discord(&self) -> usize {
        self.flights().values().filter(|f| f.pending > 0).count()
    }

    /// A request was created or changed.
    pub fn observe_put(&self, request: Request) {
        let id = request.id.clone();
        {
            let mut obs = self.observed();
            obs.insert(id.clone(), Observed::Present(Box::new(request)));
            self.stamp(&id);
        }
        self.mark(id);
    }

    /// Marks `id` dirty, unless this replica stands by (then a takeover
    /// looks at everything observed).
    fn mark(&self, id: String) {
        if self.active.load(Ordering::SeqCst) {
            self.queue().add(id);
        }
    }

    /// Sets what this replica does, as the leader lease decides: `acts`
    /// false (a standby) keeps observing but reconciles nothing (the
    /// answers of operations still in flight are recorded by
    /// [`Self::drain`]); `alone` (the lease holder) never
    /// leaves a request to another replica's claim. Becoming active again
    /// needs a [`Self::takeover`].
    pub fn set_role(&self, acts: bool, alone: bool) {
        self.alone.store(alone, Ordering::SeqCst);
        let was = self.active.swap(acts, Ordering::SeqCst);
        self.queue().set_paused(!acts);
        if was && !acts {
            crate::sync::lock(&self.deferred).clear();
        }
    }

    /// After becoming active: everything observed is compared with one
    /// plugin data listing and whatever is not at rest is reconciled.
    /// Returns (requests observed, requests queued).
    pub async fn takeover(&self) -> (usize, usize) {
        let known = self
            .known("at takeover: every observed request is reconciled")
            .await;
        let ids: Vec<String> = {
            let obs = self.observed();
            obs.iter()
                .filter(|(id, o)| match (o, &known) {
                    (Observed::Present(r), Some(k)) => {
                        !self.at_rest(r, k.get(id.as_str()).unwrap_or(&PluginData::default()))
                    }
                    _ => true,
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        let total = self.tracked();
        let queued = ids.len();
        for id in ids {
            self.mark(id);
        }
        // Deletions this replica never saw, or forgot as a standby.
        let swept = match &known {
            Some(k) => self.sweep(&std::collections::HashSet::new(), k).await,
            None => 0,
        };
        (total, queued + swept)
    }

    /// A request was deleted (expired, or removed by an admin).
    pub fn observe_delete(&self, id: &str) {
        {
            let mut obs = self.observed();
            let previous = obs.remove(id);
            obs.insert(id.to_owned(), Observed::deleted(previous));
            self.stamp(id);
        }
        self.note_deleted(id);
        self.mark(id.to_owned());
    }

    fn note_deleted(&self, id: &str) {
        crate::sync::lock(&self.deleted_at).insert(id.to_owned(), Instant::now());
    }

    /// A standby never shows deletions, so it would remember every request
    /// ever deleted: it forgets those older than [`FORGET_DELETED`] (a
    /// take-over after that finds them in plugin data: its sweep shows any
    /// whose resolution is not known to be shown).
    fn forget_old_deletions(&self, now: Instant) {
        let mut obs = self.observed();
        let mut at = crate::sync::lock(&self.deleted_at);
        if self.active.load(Ordering::SeqCst) {
            // An acting replica forgets a deletion once it is shown.
            at.retain(|id, _| matches!(obs.get(id), Some(Observed::Deleted(_))));
            return;
        }
        let old: Vec<String> = at
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= FORGET_DELETED)
            .map(|(id, _)| id.clone())
            .collect();
        let mut stamps = crate::sync::lock(&self.stamps);
        for id in old {
            at.remove(&id);
            if matches!(obs.get(&id), Some(Observed::Deleted(_))) {
                obs.remove(&id);
                stamps.remove(&id);
            }
        }
    }

    /// Notes that the watch just told us about `id` (call with `observed` held).
    fn stamp(&self, id: &str) {
        let n = self.events.fetch_add(1, Ordering::SeqCst) + 1;
        crate::sync::lock(&self.stamps).insert(id.to_owned(), n);
    }

    /// Where the watch's news stands now: take it just before asking
    /// Teleport for a listing, and hand it to [`Self::observe_list`].
    pub fn list_mark(&self) -> ListMark {
        ListMark(self.events.load(Ordering::SeqCst))
    }

    /// A full listing (after every (re)connect and periodically), asked for
    /// at `mark`: every listed request is recorded and marked dirty; a
    /// tracked request missing from the listing was deleted while we were
    /// not looking. What the watch told us about a request after `mark` is
    /// newer than the listing and stays (a listing never takes a request
    /// back to an older state). With `known` (every request's plugin data,
    /// listed just before), a listed request whose plugin data already shows
    /// its state ([`Self::at_rest`]) is recorded but not marked dirty: a
    /// resync with nothing new costs no call per request.
    pub fn observe_list(
        &self,
        requests: Vec<Request>,
        mark: ListMark,
        known: Option<&HashMap<String, PluginData>>,
    ) {
        self.observe_listing(requests, mark, known, false);
    }

    /// [`Self::observe_list`]; with `unchanged_at_rest`, a listed request
    /// equal to what we observed and not in doubt counts as at rest (a
    /// periodic listing: what we already reconciled needs no second look).
    fn observe_listing(
        &self,
        requests: Vec<Request>,
        mark: ListMark,
        known: Option<&HashMap<String, PluginData>>,
        unchanged_at_rest: bool,
    ) {
        let mut ids = Vec::with_capacity(requests.len());
        let mut skipped = 0u64;
        {
            let mut obs = self.observed();
            let stamps = crate::sync::lock(&self.stamps);
            let newer = |id: &str| stamps.get(id).is_some_and(|s| *s > mark.0);
            let listed: std::collections::HashSet<&str> =
                requests.iter().map(|r| r.id.as_str()).collect();
            let vanished: Vec<String> = obs
                .iter()
                .filter(|(id, o)| {
                    matches!(o, Observed::Present(_)) && !listed.contains(id.as_str()) && !newer(id)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in vanished {
                let previous = obs.remove(&id);
                obs.insert(id.clone(), Observed::deleted(previous));
                self.note_deleted(&id);
                ids.push(id);
            }
            for r in requests {
                if newer(&r.id) {
                    continue;
                }
                let unchanged = unchanged_at_rest
                    && matches!(obs.get(&r.id), Some(Observed::Present(o)) if **o == r)
                    && !self.is_unsure(&r.id)
                    && !crate::sync::lock(&self.stale).contains(&r.id);
                let rest = unchanged
                    || known.is_some_and(|k| {
                        self.at_rest(&r, k.get(&r.id).unwrap_or(&PluginData::default()))
                    });
                if rest {
                    skipped += 1;
                } else {
                    ids.push(r.id.clone());
                }
                obs.insert(r.id.clone(), Observed::Present(Box::new(r)));
            }
        }
        self.counters.at_rest.fetch_add(skipped, Ordering::Relaxed);
        for id in ids {
            self.mark(id);
        }
    }

    /// Whether reconciling `req` with plugin data `data` would do nothing:
    /// its messages show exactly what it would render and the record holds
    /// everything the reconcile would write. Anything doubtful (a flight, a
    /// record in doubt, a view to refresh, a claim to make) is not at rest.
    pub fn at_rest(&self, req: &Request, data: &PluginData) -> bool {
        if self.is_unsure(&req.id)
            || self.flights().contains_key(&req.id)
            || crate::sync::lock(&self.stale).contains(&req.id)
        {
            return false;
        }
        let status = match req.state {
            RequestState::Pending if data.is_empty() => return false,
            RequestState::Pending if data.resolution.is_empty() => Status::Pending,
            RequestState::Approved | RequestState::Denied | RequestState::Promoted
                if data.is_empty() || (data.messages.is_empty() && data.channels.is_empty()) =>
            {
                // Never posted: a resolved request is not announced.
                return true;
            }
            RequestState::Approved => Status::Approved,
            RequestState::Denied => Status::Denied,
            RequestState::Promoted => Status::Promoted,
            _ => return false,
        };
        if status != Status::Pending && data.resolution != status.tag() {
            return false;
        }
        let body = render::render(&self.view(req, status, data), true);
        let digest = digest(&body);
        let channels = plan::channels(data);
        let (steps, _) = plan::steps(data, &channels, &digest, false);
        steps.is_empty()
            && data.rendered == digest
            && data.channels == channels
            && data.reviews_count >= req.reviews.len() as u32
    }

    /// A full listing, in bulk: our plugin data for every request is listed
    /// once (not asked request by request), the requests are observed
    /// against it ([`Self::observe_list`]), and with `sweep` (after a gap
    /// in the watch) requests announced, unresolved and no longer listed are
    /// confirmed gone with Teleport and shown expired. Returns what it found.
    pub async fn resync(&self, requests: Vec<Request>, mark: ListMark, sweep: bool) -> Resync {
        let listed = requests.len();
        self.forget_old_deletions(Instant::now());
        // A periodic listing (no sweep) compares with what we observed: our
        // plugin data, which outlives the requests by an hour, is not listed
        // again every time.
        let known = if sweep {
            self.known("every listed request is reconciled, and requests deleted while no replica was watching stay as they are until the next reconnect")
                .await
        } else {
            None
        };
        let before = self.counters.at_rest.load(Ordering::Relaxed);
        let ids: std::collections::HashSet<String> = if sweep {
            requests.iter().map(|r| r.id.clone()).collect()
        } else {
            std::collections::HashSet::new()
        };
        self.observe_listing(requests, mark, known.as_ref(), !sweep);
        let at_rest = self.counters.at_rest.load(Ordering::Relaxed) - before;
        let swept = match (sweep, known) {
            (true, Some(known)) => self.sweep(&ids, &known).await,
            _ => 0,
        };
        Resync {
            listed,
            at_rest: at_rest as usize,
            swept,
        }
    }

    /// Our plugin data for every request, in one listing, decoded; `None`
    /// (logged, saying `otherwise`) when it cannot be listed.
    async fn known(&self, otherwise: &str) -> Option<HashMap<String, PluginData>> {
        match self.store.list().await {
            Ok(all) => Some(
                all.into_iter()
                    .map(|(id, raw)| (id, PluginData::decode(&raw).0))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list plugin data; {otherwise}");
                None
            }
        }
    }

    /// After a (re)connect's listing: requests we announced and whose
    /// resolution is not known to be shown (in `known`, our plugin data)
    /// that are neither listed nor
    /// known here were deleted while every replica that knew them was down
    /// (or while the watch was). Each is confirmed gone with Teleport, then
    /// shown expired. Returns how many were found.
    async fn sweep(
        &self,
        listed: &std::collections::HashSet<String>,
        known: &HashMap<String, PluginData>,
    ) -> usize {
        let mut found = 0;
        for (id, data) in known {
            let announced = !data.messages.is_empty() || !data.channels.is_empty();
            // A recorded resolution is shown only once its digest is
            // recorded too (a record that failed, or the intent written
            // before an edit, leaves it empty).
            let shown = !data.resolution.is_empty() && !data.rendered.is_empty();
            if !announced || shown || listed.contains(id) || self.observed().contains_key(id) {
                continue;
            }
            if let Ok(None) = self.store.current(id).await {
                tracing::info!(request_id = %id, "request deleted while unwatched; showing it expired");
                self.observe_delete(id);
                found += 1;
            }
        }
        found
    }

    fn rule_set(&self) -> std::sync::MutexGuard<'_, RuleSet> {
        crate::sync::lock(&self.rules)
    }

    /// An access monitoring rule was created or changed. Applies to requests
    /// posted from now on.
    pub fn observe_rule_put(&self, rule: Rule) -> Stored {
        self.rule_set().upsert(rule)
    }

    /// An access monitoring rule was deleted.
    pub fn observe_rule_delete(&self, name: &str) {
        self.rule_set().remove(name);
    }

    /// A full listing of access monitoring rules.
    pub fn observe_rule_list(&self, rules: Vec<Rule>) {
        self.rule_set().replace_all(rules);
    }

    /// (rules held, rules whose condition does not parse)
    pub fn rule_counts(&self) -> (usize, usize) {
        let set = self.rule_set();
        (set.len(), set.invalid())
    }

    /// What the reconciler did so far.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            ok: get(&c.ok),
            conflicts: get(&c.conflicts),
            retries: get(&c.retries),
            created: get(&c.created),
            edited: get(&c.edited),
            dropped: get(&c.dropped),
            rule_errors: get(&c.rule_errors),
            at_rest: get(&c.at_rest),
        }
    }

    /// Requests currently tracked.
    pub fn tracked(&self) -> usize {
        self.observed().len()
    }

    /// Runs `workers` workers until `cancel` fires and the queue drains,
    /// then records the answers of operations still in flight as they come
    /// (the Discord queue drains after us). A worker that panics takes this
    /// task down with its panic (the owner logs it and flips readiness)
    /// rather than leaving fewer workers.
    pub async fn run(self: Arc<Self>, workers: usize, cancel: tokio_util::sync::CancellationToken) {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers.max(1) {
            let me = self.clone();
            set.spawn(async move { me.worker().await });
        }
        let me = self.clone();
        set.spawn(async move {
            cancel.cancelled().await;
            me.queue().shutdown();
        });
        while let Some(ended) = set.join_next().await {
            if let Err(e) = ended
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        self.drain().await;
    }

    /// Records every flight's answers as they arrive, until none is left:
    /// at shutdown, and when this replica stops leading (nothing new is
    /// sent then, and what was sent is recorded for the next leader).
    pub async fn drain(&self) {
        loop {
            let notified = self.shared.answered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let answered: Vec<(String, Flight)> = {
                let mut flights = self.flights();
                if flights.is_empty() {
                    return;
                }
                let ids: Vec<String> = flights
                    .iter()
                    .filter(|(_, f)| f.pending == 0)
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.into_iter()
                    .filter_map(|id| flights.remove(&id).map(|f| (id, f)))
                    .collect()
            };
            for (id, flight) in answered {
                match self.record(&id, flight).await {
                    Ok(o) => self.count(&o),
                    Err(e) => {
                        tracing::debug!(request_id = %id, error = %e, "answer not recorded at shutdown; the next start reconciles it");
                    }
                }
            }
            if self.flights().values().all(|f| f.pending > 0) {
                notified.await;
            }
        }
    }

    fn count(&self, o: &Outcome) {
        let bump = |a: &AtomicU64, n: usize| a.fetch_add(n as u64, Ordering::Relaxed);
        bump(&self.counters.created, o.created);
        bump(&self.counters.edited, o.edited);
        bump(&self.counters.dropped, o.dropped);
    }

    async fn worker(&self) {
        let queue = self.queue();
        while let Some(id) = queue.next().await {
            let action = match self.reconcile(&id).await {
                Ok(r) => {
                    self.counters.ok.fetch_add(1, Ordering::Relaxed);
                    self.count(&r.outcome);
                    if r.action == Action::Done {
                        queue.forget(&id);
                    }
                    r.action
                }
                Err(e) => self.error_policy(&id, &e),
            };
            match action {
                // An answer or news marks it dirty again.
                Action::Done | Action::AwaitDiscord => queue.done(&id),
                Action::RequeueAfter(d) => queue.retry_after(&id, d),
            }
        }
    }

    /// What a failed reconcile of `id` leads to: a concurrent writer means
    /// looking again at once; anything else backs off, longer with each
    /// failure in a row (counted in the queue, whichever worker runs it).
    pub fn error_policy(&self, id: &str, error: &ReconcileError) -> Action {
        if let ReconcileError::Store(StoreError::Conflict) = error {
            self.counters.conflicts.fetch_add(1, Ordering::Relaxed);
            return Action::RequeueAfter(Duration::ZERO);
        }
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        let delay = RETRY_BACKOFF.delay(self.queue().failure(&id.to_owned()), random_jitter());
        tracing::warn!(request_id = %id, error = %error, retry_in_ms = delay.as_millis() as u64, "Failed to process request; will retry");
        Action::RequeueAfter(delay)
    }

    /// Reconciles `id` until it is done or waits for another replica,
    /// waiting for Discord's answers in between; for tests and tools (the
    /// workers never wait).
    pub async fn settle(&self, id: &str) -> Result<Outcome, ReconcileError> {
        let mut total = Outcome::default();
        loop {
            let notified = self.shared.answered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let r = self.reconcile(id).await?;
            total += r.outcome;
            if r.action != Action::AwaitDiscord {
                return Ok(total);
            }
            if self.flights().get(id).is_some_and(|f| f.pending > 0) {
                notified.await;
            }
        }
    }

    /// Converges Discord and plugin data towards the last observed state of
    /// `id` without waiting for Discord: records the answers of the
    /// previous plan if they are all in, then plans and hands over what is
    /// still to do.
    pub async fn reconcile(&self, id: &str) -> Result<Reconciled, ReconcileError> {
        let answered = {
            let mut flights = self.flights();
            match flights.get(id) {
                Some(f) if f.pending > 0 => {
                    return Ok(Reconciled {
                        action: Action::AwaitDiscord,
                        outcome: Outcome::default(),
                    });
                }
                Some(_) => flights.remove(id),
                None => None,
            }
        };
        let acting = answered.is_some();
        let recorded = match answered {
            Some(flight) => self.record(id, flight).await?,
            None => Outcome::default(),
        };
        // Planned from what is observed after the record: news that came
        // while the answers were on their way is in this plan. Having acted
        // on it, we carry on rather than leave it to its owner again.
        let mut next = self.plan(id, acting).await?;
        next.outcome += recorded;
        Ok(next)
    }

    async fn plan(&self, id: &str, acting: bool) -> Result<Reconciled, ReconcileError> {
        let stale = crate::sync::lock(&self.stale).contains(id);
        if stale {
            self.refresh(id).await;
        }
        let observed = self.observed().get(id).cloned();
        let Some(observed) = observed else {
            return Ok(Reconciled::done(Outcome::default()));
        };
        let seen = observed.clone();
        let raw = self.store.get(id).await?;
        let (data, problems) = PluginData::decode(&raw);
        for p in problems {
            tracing::warn!(request_id = %id, key = %p.key, "bad plugin data value skipped: {}", p.message);
        }
        let alone = self.alone.load(Ordering::SeqCst);
        if let Some(wait) = self
            .defer(id, &data, Instant::now())
            .filter(|_| !acting && !alone)
        {
            tracing::debug!(request_id = %id, owner = %data.owner, "another replica owns this request; looking again in a moment");
            return Ok(Reconciled {
                action: Action::RequeueAfter(wait),
                outcome: Outcome::default(),
            });
        }
        let result = match observed {
            Observed::Present(req) => match req.state {
                // A recorded resolution is newer than any pending view:
                // Teleport never reopens a request, so this view is stale
                // (a lagging watch, or a refresh that failed) and must not
                // paint the message back to pending.
                RequestState::Pending if !data.resolution.is_empty() => {
                    self.reconcile_recorded(&seen, &req, data).await
                }
                RequestState::Pending => self.reconcile_pending(&seen, &req, data).await,
                RequestState::Approved | RequestState::Denied | RequestState::Promoted => {
                    self.reconcile_resolved(&seen, &req, data).await
                }
                RequestState::Other(n) => {
                    tracing::warn!(request_id = %id, state = n, "Unknown request state");
                    Ok(Reconciled::done(Outcome::default()))
                }
            },
            Observed::Deleted(Some(ref last))
                if (data.resolution.is_empty() || data.resolution == Status::Expired.tag())
                    && matches!(
                        last.state,
                        RequestState::Approved | RequestState::Denied | RequestState::Promoted
                    ) =>
            {
                // Resolved, then gone before the resolution was shown: the
                // resolution is the final word, not "expired".
                self.reconcile_resolved(&seen, last, data).await
            }
            Observed::Deleted(_) => self.reconcile_deleted(&seen, id, data).await,
        };
        if matches!(&result, Ok(r) if r.action == Action::Done)
            && matches!(seen, Observed::Deleted(_))
        {
            // A deleted request whose deletion was just shown needs no memory
            // any more (a deletion that arrived during another reconcile is
            // still to be shown: that entry stays).
            let mut obs = self.observed();
            if obs.get(id) == Some(&seen) {
                obs.remove(id);
                crate::sync::lock(&self.stamps).remove(id);
            }
        }
        result
    }

    /// How long to leave `id` to its owner, if at all: another replica owns
    /// it and we have nothing of ours to repair. The first look starts a
    /// [`HANDOFF`] wait; looks during it (news keeps coming) wait out the
    /// rest of it; the first look after it goes ahead (the owner may be
    /// gone), and the next news starts a new wait.
    fn defer(&self, id: &str, data: &PluginData, now: Instant) -> Option<Duration> {
        let mut deferred = crate::sync::lock(&self.deferred);
        if data.owner.is_empty() || data.owner == self.replica || self.is_unsure(id) {
            deferred.remove(id);
            return None;
        }
        match deferred.get(id) {
            None => {
                deferred.insert(id.to_owned(), now + HANDOFF);
                Some(HANDOFF)
            }
            Some(until) if now < *until => Some(*until - now),
            Some(_) => {
                deferred.remove(id);
                None
            }
        }
    }

    fn unsure_set(&self, id: &str, on: bool) {
        let mut u = crate::sync::lock(&self.unsure);
        if on {
            u.insert(id.to_owned());
        } else {
            u.remove(id);
        }
    }

    fn is_unsure(&self, id: &str) -> bool {
        crate::sync::lock(&self.unsure).contains(id)
    }

    /// Replaces our view of `id` with Teleport's current one.
    async fn refresh(&self, id: &str) {
        match self.store.current(id).await {
            Ok(Some(req)) => {
                self.observed()
                    .insert(id.to_owned(), Observed::Present(Box::new(req)));
            }
            Ok(None) => {
                let mut obs = self.observed();
                let previous = obs.remove(id);
                obs.insert(id.to_owned(), Observed::deleted(previous));
            }
            Err(e) => {
                tracing::debug!(request_id = %id, error = %e, "cannot read the request again; using the watch's view");
            }
        }
        crate::sync::lock(&self.stale).remove(id);
    }

    fn recipients(&self, req: &Request) -> Vec<String> {
        let mut errors = Vec::new();
        let from_rules = self.rule_set().recipients(&req.rule_env(), &mut errors);
        self.counters
            .rule_errors
            .fetch_add(errors.len() as u64, Ordering::Relaxed);
        for (rule, e) in errors {
            tracing::warn!(request_id = %req.id, rule = %rule, error = %e, "access monitoring rule condition failed to evaluate; treated as not matching");
        }
        let configured = match from_rules {
            Some(list) => list.into_iter().map(Recipient::new).collect(),
            None => self
                .config
                .load()
                .role_to_recipients
                .recipients_for(req.roles.iter().map(String::as_str)),
        };
        let mut out = Vec::new();
        for r in configured {
            match r.channel_id() {
                Some(_) => out.push(r.as_str().to_owned()),
                None => {
                    tracing::warn!(request_id = %req.id, recipient = %r, "recipient is not a Discord channel ID; skipped")
                }
            }
        }
        for s in &req.suggested_reviewers {
            if Recipient::new(s.as_str()).channel_id().is_none() {
                tracing::debug!(request_id = %req.id, reviewer = %s, "suggested reviewer is not a channel; not notified (Discord cannot message by e-mail)");
            }
        }
        out
    }

    /// Upstream's `getLoginsByRole`: each requested role's allowed logins.
    /// Any failure only leaves the logins out of the message (with a warning);
    /// it never holds the notification back.
    async fn logins_by_role(&self, req: &Request) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for role in &req.roles {
            let cached = crate::sync::lock(&self.role_cache)
                .get(role)
                .filter(|(at, _)| at.elapsed() < ROLE_CACHE_TTL)
                .map(|(_, v)| v.clone());
            let answer = match cached {
                Some(v) => Ok(v),
                None => {
                    let a = self.store.role_logins(role).await;
                    if let Ok(v) = &a {
                        crate::sync::lock(&self.role_cache)
                            .insert(role.clone(), (tokio::time::Instant::now(), v.clone()));
                    }
                    a
                }
            };
            match answer {
                Ok(Some(logins)) => {
                    out.insert(role.clone(), logins);
                }
                // A role that does not exist (any more) has nothing to show.
                Ok(None) => {}
                Err(StoreError::Forbidden(e)) => {
                    tracing::warn!(request_id = %req.id, error = %e, "Missing permissions to get logins by role. Please add role.read to the associated role.");
                    // Remembered like an answer: one GetRole (and one
                    // warning) per role a minute, not one per request.
                    let now = tokio::time::Instant::now();
                    let mut cache = crate::sync::lock(&self.role_cache);
                    for r in &req.roles {
                        cache.insert(r.clone(), (now, None));
                    }
                    return BTreeMap::new();
                }
                Err(e) => {
                    tracing::warn!(request_id = %req.id, role = %role, error = %e, "cannot get the role's logins; the message shows the roles without them");
                    return BTreeMap::new();
                }
            }
        }
        out
    }

    fn view(&self, req: &Request, status: Status, data: &PluginData) -> RequestView {
        let cluster = self.cluster.load();
        RequestView {
            id: req.id.clone(),
            cluster: cluster.name.clone(),
            user: req.user.clone(),
            roles: req.roles.clone(),
            logins_by_role: data.logins_by_role.clone(),
            resources: req.resources.clone(),
            reason: req.reason.clone(),
            status: StatusField(status),
            resolve_reason: req.resolve_reason.clone(),
            reviews: req
                .reviews
                .iter()
                .map(|r| render::ReviewView {
                    author: r.author.clone(),
                    approved: r.approved,
                    reason: r.reason.clone(),
                    created_unix: r.created_unix,
                    via: r.submitted_by.as_ref().map(|by| {
                        if !cluster.plugin_user.is_empty() && *by == cluster.plugin_user {
                            "Discord".to_owned()
                        } else {
                            by.clone()
                        }
                    }),
                })
                .collect(),
            needed: req.needed(),
            request_expires_unix: req.expires_unix,
            access_expires_unix: req.access_expires_unix,
            web_proxy_url: cluster.web_proxy_url.clone(),
            long_term: req.long_term,
            review_buttons: self.config.load().review.enabled,
        }
    }

    async fn reconcile_pending(
        &self,
        seen: &Observed,
        req: &Request,
        data: PluginData,
    ) -> Result<Reconciled, ReconcileError> {
        let data = if data.is_empty() {
            let claim = PluginData {
                user: req.user.clone(),
                roles: req.roles.clone(),
                resources: req.resources.clone(),
                request_reason: req.reason.clone(),
                system_annotations: req.system_annotations.clone(),
                logins_by_role: self.logins_by_role(req).await,
                channels: self.recipients(req),
                owner: self.replica.clone(),
                ..PluginData::default()
            };
            if claim.channels.is_empty() {
                tracing::warn!(request_id = %req.id, "No channel to post");
            }
            self.store
                .compare_and_swap(&req.id, claim.encode(), PluginData::default().encode())
                .await?;
            claim
        } else {
            data
        };
        let body = render::render(&self.view(req, Status::Pending, &data), true);
        let reviews = req.reviews.len() as u32;
        self.converge(&req.id, seen, data, &body, move |d| {
            d.reviews_count = d.reviews_count.max(reviews)
        })
        .await
    }

    async fn reconcile_resolved(
        &self,
        seen: &Observed,
        req: &Request,
        data: PluginData,
    ) -> Result<Reconciled, ReconcileError> {
        if data.is_empty() || (data.messages.is_empty() && data.channels.is_empty()) {
            // Never seen pending: nothing was announced, so nothing to resolve (as upstream).
            tracing::debug!(request_id = %req.id, "resolved request was never posted; nothing to update");
            return Ok(Reconciled::done(Outcome::default()));
        }
        let status = match req.state {
            RequestState::Approved => Status::Approved,
            RequestState::Denied => Status::Denied,
            _ => Status::Promoted,
        };
        // The first resolution recorded wins (upstream: a resolution is never
        // changed); "expired" is no resolution when Teleport says otherwise
        // (a replica that missed the approval saw only the deletion).
        let status = match data.resolution.as_str() {
            "" => status,
            expired if expired == Status::Expired.tag() => status,
            other if other == status.tag() => status,
            other => {
                tracing::debug!(request_id = %req.id, existing = other, event = status.tag(), "Request is already resolved, ignoring event");
                return Ok(Reconciled::done(Outcome::default()));
            }
        };
        let (tag, reason, reviews) = (
            status.tag().to_owned(),
            req.resolve_reason.clone(),
            req.reviews.len() as u32,
        );
        // The resolution is recorded before it is shown, with the digest
        // cleared: if this replica dies (or stops leading) between the edit
        // and its record, and Teleport deletes the request meanwhile, a
        // replica that saw only the deletion still shows the resolution
        // (and knows the messages may not show it yet), not "expired".
        let data = if data.resolution == tag {
            data
        } else {
            let mut next = data.clone();
            next.resolution.clone_from(&tag);
            next.resolve_reason.clone_from(&reason);
            next.rendered.clear();
            let notify = self.config.load().notify.requester;
            if notify {
                crate::plugindata::mark_requester_due(&mut next, &tag);
            }
            self.store
                .compare_and_swap(&req.id, next.encode(), data.encode())
                .await?;
            if notify && let Some(hook) = self.due_hook() {
                (hook.0)(&req.id);
            }
            next
        };
        let body = render::render(&self.view(req, status, &data), true);
        self.converge(&req.id, seen, data, &body, move |d| {
            // Merged into what another replica may have recorded meanwhile:
            // an earlier real resolution stays.
            if d.resolution.is_empty() || d.resolution == Status::Expired.tag() {
                d.resolution = tag.clone();
                d.resolve_reason = reason.clone();
            }
            d.reviews_count = d.reviews_count.max(reviews);
        })
        .await
    }

    /// A pending view of a request whose resolution is already recorded:
    /// shows the recorded resolution, never the pending state.
    async fn reconcile_recorded(
        &self,
        seen: &Observed,
        req: &Request,
        data: PluginData,
    ) -> Result<Reconciled, ReconcileError> {
        let state = match data.resolution.as_str() {
            t if t == Status::Approved.tag() => RequestState::Approved,
            t if t == Status::Denied.tag() => RequestState::Denied,
            t if t == Status::Promoted.tag() => RequestState::Promoted,
            // Expired (a deletion was seen) or a tag we do not know: what
            // plugin data can rebuild.
            _ => return self.reconcile_deleted(seen, &req.id, data).await,
        };
        tracing::debug!(request_id = %req.id, resolution = %data.resolution, "pending view of a resolved request; showing the recorded resolution");
        let mut resolved = req.clone();
        resolved.state = state;
        resolved.resolve_reason = data.resolve_reason.clone();
        self.reconcile_resolved(seen, &resolved, data).await
    }

    async fn reconcile_deleted(
        &self,
        seen: &Observed,
        id: &str,
        data: PluginData,
    ) -> Result<Reconciled, ReconcileError> {
        // Claimed but not yet recorded counts too: a poster may have died
        // between the create and the record (the nonce finds its message).
        if data.messages.is_empty() && data.channels.is_empty() {
            return Ok(Reconciled::done(Outcome::default()));
        }
        let resolved = [Status::Approved, Status::Denied, Status::Promoted]
            .into_iter()
            .find(|s| s.tag() == data.resolution);
        if resolved.is_some() && !data.rendered.is_empty() && !self.is_unsure(id) {
            // Resolved before it went away, and shown: keep it.
            return Ok(Reconciled::done(Outcome::default()));
        }
        // Rebuild what we can from plugin data; existing review embeds stay.
        let req = Request {
            id: id.to_owned(),
            user: data.user.clone(),
            roles: data.roles.clone(),
            state: RequestState::Pending,
            reason: data.request_reason.clone(),
            resolve_reason: if resolved.is_some() {
                data.resolve_reason.clone()
            } else {
                String::new()
            },
            reviews: Vec::new(),
            suggested_reviewers: Vec::new(),
            resources: data.resources.clone(),
            thresholds: Vec::new(),
            system_annotations: BTreeMap::new(),
            created_unix: None,
            expires_unix: None,
            access_expires_unix: None,
            // Not in plugin data; a deleted request's message gets no
            // buttons either way.
            long_term: false,
        };
        // A resolution that is recorded but maybe not shown (a concurrent
        // stale edit, or a record from before the edit) is shown again from
        // plugin data; otherwise the request expired.
        let status = resolved.unwrap_or(Status::Expired);
        let body = render::render(&self.view(&req, status, &data), false);
        let notify = self.config.load().notify.requester;
        let hook = self.due_hook();
        let rid = id.to_owned();
        self.converge(id, seen, data, &body, move |d| {
            // Never over a resolution another replica recorded meanwhile.
            if d.resolution.is_empty() {
                d.resolution = status.tag().to_owned();
                if notify {
                    crate::plugindata::mark_requester_due(d, status.tag());
                    if let Some(hook) = &hook {
                        (hook.0)(&rid);
                    }
                }
            }
        })
        .await
    }

    /// Plans the creates of missing messages and the edits of stale ones
    /// and hands them to Discord (the answers are recorded by a later
    /// reconcile); with nothing to send, records `update` at once.
    async fn converge(
        &self,
        id: &str,
        seen: &Observed,
        data: PluginData,
        body: &MessageBody,
        update: impl Fn(&mut PluginData) + Send + Sync + 'static,
    ) -> Result<Reconciled, ReconcileError> {
        let digest = digest(body);
        let channels = plan::channels(&data);
        let (steps, shown) = plan::steps(&data, &channels, &digest, self.is_unsure(id));
        let flight = Flight {
            seen: seen.clone(),
            read: data,
            channels,
            digest,
            update: Arc::new(update),
            pending: steps.len(),
            results: plan::Results {
                shown,
                ..plan::Results::default()
            },
        };
        if steps.is_empty() {
            return Ok(Reconciled::done(self.record(id, flight).await?));
        }
        self.flights().insert(id.to_owned(), flight);
        let body = Arc::new(body.clone());
        for step in steps {
            let op = match &step {
                plan::Step::Create { channel } => MessageOp::Create {
                    channel: channel.clone(),
                    nonce: nonce_for(id, channel),
                    body: body.clone(),
                },
                plan::Step::Edit { channel, message } => MessageOp::Edit {
                    channel: channel.clone(),
                    message: message.clone(),
                    body: body.clone(),
                },
            };
            self.messenger.submit(op, self.answer_to(id, step));
        }
        Ok(Reconciled {
            action: Action::AwaitDiscord,
            outcome: Outcome::default(),
        })
    }

    /// The callback that files the answer to `step` with `id`'s flight; the
    /// last answer marks `id` dirty.
    fn answer_to(&self, id: &str, step: plan::Step) -> Answer {
        let shared = self.shared.clone();
        let id = id.to_owned();
        Box::new(move |result| {
            match (&step, &result) {
                (plan::Step::Create { channel }, Ok(message)) => {
                    tracing::info!(request_id = %id, channel_id = %channel, message_id = %message, "Successfully posted messages");
                }
                (plan::Step::Create { channel }, Err(SendError::Permanent(e))) => {
                    tracing::error!(request_id = %id, channel_id = %channel, error = %e, "cannot post to this channel; giving it up for this request");
                }
                (plan::Step::Edit { channel, message }, Err(SendError::Permanent(e))) => {
                    tracing::error!(request_id = %id, channel_id = %channel, message_id = %message, error = %e, "cannot edit this message; giving it up");
                }
                _ => {}
            }
            let last = {
                let mut flights = crate::sync::lock(&shared.flights);
                match flights.get_mut(&id) {
                    Some(f) => {
                        f.results.answer(&step, result);
                        f.pending = f.pending.saturating_sub(1);
                        f.pending == 0
                    }
                    None => false,
                }
            };
            if last {
                shared.queue.add(id);
            }
            shared.answered.notify_waiters();
        })
    }

    /// Records a flight's answers in plugin data, merging with whatever
    /// another replica wrote meanwhile.
    async fn record(&self, id: &str, flight: Flight) -> Result<Outcome, ReconcileError> {
        let Flight {
            seen,
            read,
            channels,
            digest,
            update,
            results,
            ..
        } = flight;
        let outcome = Outcome {
            created: results.created.len(),
            edited: results.edited,
            dropped: results.dropped.len(),
        };
        let wrote = results.wrote();
        if wrote {
            // Until the record below lands.
            self.unsure_set(id, true);
        }
        let mut contended = false;
        let mut current = read.clone();
        let foreign = loop {
            let (next, foreign) =
                plan::merge(&current, &results, &channels, &digest, contended, &*update);
            if next == current {
                if results.failed.is_none() && !contended {
                    self.unsure_set(id, false);
                }
                break foreign;
            }
            match self
                .store
                .compare_and_swap(id, next.encode(), current.encode())
                .await
            {
                Ok(()) => {
                    if results.failed.is_none() {
                        self.unsure_set(id, false);
                    }
                    break foreign;
                }
                Err(StoreError::Conflict) => {
                    let (fresh, _) = PluginData::decode(&self.store.get(id).await?);
                    if plan::contended(&read, &fresh, &digest, wrote) {
                        contended = true;
                    }
                    current = fresh;
                }
                Err(e) => return Err(e.into()),
            }
        };
        // News arrived while we were sending: what we sent may already be
        // stale, and another replica may have recorded the newer picture.
        if self.observed().get(id) != Some(&seen) {
            self.unsure_set(id, true);
        }
        if contended {
            // Look again with Teleport's current view of the request.
            crate::sync::lock(&self.stale).insert(id.to_owned());
            return Err(StoreError::Conflict.into());
        }
        match results.failed {
            Some(e) => Err(ReconcileError::Discord(e)),
            // Another replica recorded a message we did not write: look again.
            None if foreign => Err(StoreError::Conflict.into()),
            None => Ok(outcome),
        }
    }
}

#[cfg(test)]
mod tests;
