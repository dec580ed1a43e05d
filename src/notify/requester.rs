//! The requester hears back: a DM when their request is approved, denied,
//! promoted or expires (`[notify] requester`).
//!
//! Level-triggered on plugin data. The reconciler, when `[notify]
//! requester` is on, records `<TAG> due` in [`RECORD_KEY`] together with the
//! resolution it records (so resolutions from before the setting, or before
//! an upgrade, never DM anyone). A due record gets one DM: it goes through
//! `<TAG> claimed <replica> <unix>` (before sending), then `<TAG> sent`,
//! `<TAG> refused` (Discord said no: logged, counted, never retried) or
//! `<TAG> unmapped` (the requester has no Discord user). A claim another
//! replica made is left alone for [`CLAIM_GRACE`], then taken over (the
//! send repeats with the same nonce, which Discord answers with the first
//! message).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::{DirectPort, DmError, Mapping, NotifyMetrics, nonce};
use crate::backoff::{Backoff, random_jitter};
use crate::config::SharedConfig;
use crate::reconcile::queue::WorkQueue;
use crate::reconcile::{PluginDataStore, Request, StoreError};
use crate::render::{code_block, escape_markdown, inline_code};

/// Our plugin data key (kept by every other writer: unknown keys survive).
pub use crate::plugindata::REQUESTER_DM_KEY as RECORD_KEY;
/// How long another replica's claim is left to it: well inside Discord's
/// nonce window ("the past few minutes"), so a send taken over after it
/// returns the first message if there was one.
pub const CLAIM_GRACE: Duration = Duration::from_secs(30);
/// How long after a resolution is seen before its DM is looked at (the
/// reconciler records the resolution first).
pub const SETTLE: Duration = Duration::from_millis(500);
/// Looks at a request whose resolution is not recorded yet before giving up.
pub const MAX_WAITS: u32 = 8;
/// DMs worked on at once.
pub const WORKERS: usize = 4;

const BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));

/// A handle the reconciler tells of each DM it marks due.
#[derive(Debug, Clone, Default)]
pub struct Inbox {
    queue: Option<Arc<WorkQueue<String>>>,
}

impl Inbox {
    /// The DM of request `id` was marked due (the record may still be
    /// written: the look waits [`SETTLE`], and looks again while the
    /// resolution is not recorded).
    pub fn resolved(&self, id: &str) {
        if let Some(q) = &self.queue {
            q.add_after(id.to_owned(), SETTLE);
        }
    }

    /// A listing was reconciled (its resolutions recorded): look for due
    /// DMs in plugin data.
    pub fn rescan(&self) {
        if let Some(q) = &self.queue {
            q.add(String::new());
        }
    }
}

/// What the record says for a resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// No DM for this resolution (none was due).
    None,
    /// Due: to send.
    Due,
    /// Done (sent, refused or unmapped).
    Done,
    /// Claimed by `replica` at `unix`.
    Claimed {
        /// Who.
        replica: String,
        /// When, Unix seconds.
        unix: u64,
    },
}

/// Reads [`RECORD_KEY`] for resolution `tag` (pure).
pub fn record(value: &str, tag: &str) -> Record {
    let mut parts = value.split_whitespace();
    if parts.next() != Some(tag) {
        return Record::None;
    }
    match parts.next() {
        Some("claimed") => Record::Claimed {
            replica: parts.next().unwrap_or_default().to_owned(),
            unix: parts.next().and_then(|u| u.parse().ok()).unwrap_or(0),
        },
        Some("due") => Record::Due,
        Some(_) => Record::Done,
        None => Record::None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The DM for `tag` (pure): what happened, by whom, why, and while it
/// lasts, when the access ends (Discord shows `<t:…>` in the reader's time).
pub fn text(
    id: &str,
    tag: &str,
    req: Option<&Request>,
    resolve_reason: &str,
    now_unix: i64,
) -> String {
    let roles = req
        .map(|r| r.roles.join(", "))
        .filter(|r| !r.is_empty())
        .map(|r| format!(" for {}", inline_code(&r, 200)))
        .unwrap_or_default();
    let reviewers = |approved: bool| -> String {
        let mut names: Vec<String> = req
            .map(|r| {
                r.reviews
                    .iter()
                    .filter(|v| v.approved == approved)
                    .map(|v| escape_markdown(v.author.trim()))
                    .collect()
            })
            .unwrap_or_default();
        names.dedup();
        if names.is_empty() {
            String::new()
        } else {
            format!(" by {}", names.join(", "))
        }
    };
    let id = inline_code(id, 64);
    let mut out = match tag {
        "APPROVED" => format!(
            "✅ Your access request {id}{roles} was approved{}.",
            reviewers(true)
        ),
        "DENIED" => format!(
            "❌ Your access request {id}{roles} was denied{}.",
            reviewers(false)
        ),
        "PROMOTED" => format!(
            "✅ Your access request {id}{roles} was promoted to an access list{}.",
            reviewers(true)
        ),
        _ => format!("⌛ Your access request {id}{roles} expired before it was approved."),
    };
    if !resolve_reason.trim().is_empty() {
        out.push_str(&format!("\nReason: {}", code_block(resolve_reason, 400)));
    }
    if tag == "APPROVED"
        && let Some(end) = req.and_then(|r| r.access_expires_unix)
        && end > now_unix
    {
        out.push_str(&format!("\nYour access ends <t:{end}:f> (<t:{end}:R>)."));
    }
    out
}

/// DMs requesters about their requests' resolutions.
pub struct RequesterNotifier<P> {
    store: P,
    direct: Arc<dyn DirectPort>,
    mapping: Arc<Mapping>,
    config: SharedConfig,
    metrics: NotifyMetrics,
    queue: Arc<WorkQueue<String>>,
    replica: String,
    active: AtomicBool,
}

impl<P> std::fmt::Debug for RequesterNotifier<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequesterNotifier").finish_non_exhaustive()
    }
}

/// What one look at a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do (off, done, not resolved).
    Idle,
    /// Look again after this long.
    Later(Duration),
    /// Sent, refused or unmapped: recorded.
    Recorded(&'static str),
}

impl<P: PluginDataStore> RequesterNotifier<P> {
    /// A notifier; `replica` names this replica in claims.
    pub fn new(
        store: P,
        direct: Arc<dyn DirectPort>,
        mapping: Arc<Mapping>,
        config: SharedConfig,
        metrics: NotifyMetrics,
        replica: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            direct,
            mapping,
            config,
            metrics,
            queue: Arc::new(WorkQueue::new()),
            replica,
            active: AtomicBool::new(true),
        })
    }

    /// The dispatcher's handle.
    pub fn inbox(&self) -> Inbox {
        Inbox {
            queue: Some(self.queue.clone()),
        }
    }

    /// Whether this replica sends (a standby of the lease does not).
    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
    }

    /// Queues every request whose plugin data records a resolution without
    /// a finished DM (at start and on taking over the lease).
    pub async fn catch_up(&self) {
        if !self.config.load().notify.requester {
            return;
        }
        match self.store.list().await {
            Ok(all) => {
                for (id, data) in all {
                    let tag = data
                        .get("resolution")
                        .map(String::as_str)
                        .unwrap_or_default();
                    if tag.is_empty() {
                        continue;
                    }
                    let rec = data.get(RECORD_KEY).map(String::as_str).unwrap_or_default();
                    if matches!(record(rec, tag), Record::Due | Record::Claimed { .. }) {
                        self.queue.add(id);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list plugin data to catch up on DMs to requesters")
            }
        }
    }

    /// Works the queue with [`WORKERS`] loops until `cancel`: one DM waiting
    /// for Discord (a DM channel to open, a rate limit) does not hold up the
    /// others.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..WORKERS {
            set.spawn(self.clone().worker(cancel.clone()));
        }
        while set.join_next().await.is_some() {}
    }

    async fn worker(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            let id = tokio::select! {
                () = cancel.cancelled() => break,
                id = self.queue.next() => match id { Some(id) => id, None => break },
            };
            if id.is_empty() {
                self.catch_up().await;
                self.queue.done(&id);
                continue;
            }
            let step = self.step(&id).await;
            match step {
                Ok(Step::Later(d)) => {
                    self.queue.done(&id);
                    self.queue.add_after(id, d);
                }
                Ok(_) => {
                    self.queue.forget(&id);
                    self.queue.done(&id);
                }
                Err(e) => {
                    let n = self.queue.failure(&id);
                    let delay = BACKOFF.delay(n, random_jitter());
                    tracing::warn!(request_id = %id, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot DM the requester yet; will retry");
                    self.queue.done(&id);
                    self.queue.add_after(id, delay);
                }
            }
        }
        self.queue.shutdown();
    }

    async fn write(
        &self,
        id: &str,
        old: &BTreeMap<String, String>,
        value: String,
    ) -> Result<(), StoreError> {
        let mut set = old.clone();
        set.insert(RECORD_KEY.to_owned(), value);
        self.store.compare_and_swap(id, set, old.clone()).await
    }

    /// One look at request `id`.
    pub async fn step(&self, id: &str) -> Result<Step, String> {
        if !self.config.load().notify.requester || !self.active.load(Ordering::Relaxed) {
            return Ok(Step::Idle);
        }
        let data = self.store.get(id).await.map_err(|e| e.to_string())?;
        let tag = data.get("resolution").cloned().unwrap_or_default();
        if tag.is_empty() {
            // The reconciler has not recorded it yet (or it is pending).
            let n = self.queue.failure(&id.to_owned());
            return Ok(if n > MAX_WAITS {
                Step::Idle
            } else {
                Step::Later(BACKOFF.delay(n, random_jitter()))
            });
        }
        let value = data.get(RECORD_KEY).cloned().unwrap_or_default();
        match record(&value, &tag) {
            Record::Done | Record::None => return Ok(Step::Idle),
            Record::Claimed { replica, unix }
                if replica != self.replica
                    && unix_now().saturating_sub(unix) < CLAIM_GRACE.as_secs() =>
            {
                return Ok(Step::Later(CLAIM_GRACE));
            }
            _ => {}
        }
        let requester = data.get("user").cloned().unwrap_or_default();
        let Some(user_id) = self.mapping.discord_user(&requester).await? else {
            tracing::debug!(request_id = %id, user = %requester, "the requester has no Discord user; no DM");
            self.write(id, &data, format!("{tag} unmapped"))
                .await
                .map_err(|e| e.to_string())?;
            self.metrics.dm("requester", "unmapped");
            return Ok(Step::Recorded("unmapped"));
        };
        // Intent first: a crash after the send repeats it with the same nonce.
        let claim = format!("{tag} claimed {} {}", self.replica, unix_now());
        if let Err(e) = self.write(id, &data, claim.clone()).await {
            return match e {
                StoreError::Conflict => Ok(Step::Later(Duration::ZERO)),
                e => Err(e.to_string()),
            };
        }
        let mut claimed = data.clone();
        claimed.insert(RECORD_KEY.to_owned(), claim);
        let current = self.store.current(id).await.ok().flatten();
        let resolve_reason = current
            .as_ref()
            .map(|r| r.resolve_reason.clone())
            .filter(|r| !r.is_empty())
            .or_else(|| data.get("resolve_reason").cloned())
            .unwrap_or_default();
        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        let body = text(id, &tag, current.as_ref(), &resolve_reason, now);
        let outcome = match self
            .direct
            .to_user(&user_id, &nonce(&[id, "requester", &tag]), &body)
            .await
        {
            Ok(()) => "sent",
            Err(DmError::Refused(why)) => {
                tracing::warn!(request_id = %id, user = %requester, discord_user = %user_id, error = %why, "Discord refused the DM to the requester; not retrying");
                "refused"
            }
            Err(DmError::Retryable(why)) => {
                self.metrics.dm("requester", "failed");
                return Err(why);
            }
        };
        self.metrics.dm("requester", outcome);
        // The send happened: record it, re-reading on a conflict.
        let mut old = claimed;
        for _ in 0..5 {
            match self.write(id, &old, format!("{tag} {outcome}")).await {
                Ok(()) => break,
                Err(StoreError::Conflict) => {
                    old = self.store.get(id).await.map_err(|e| e.to_string())?;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        tracing::info!(request_id = %id, user = %requester, discord_user = %user_id, resolution = %tag, outcome, "DM to the requester");
        Ok(Step::Recorded(outcome))
    }
}
