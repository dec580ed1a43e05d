//! Access list review reminders, as upstream's access list app does them for
//! Slack (teleport-wire.md §12): a first pass within 30 s of start
//! (jittered), then one every `[access_list] interval` (3 h, jittered); every
//! list whose notification window has opened (`next_audit_date` −
//! `notifications.start`) reminds each owner once per week from the window's
//! start, and once a day after the due date.
//!
//! Each owner's last reminder is kept in the **access list's** plugin data
//! (plugin `discord`, key `user_notifications`: a JSON object of owner →
//! RFC 3339 time, upstream's layout, so a switch from the Go plugin does not
//! remind twice), written with compare-and-swap **before** the reminder is
//! sent (as upstream: a crash loses a reminder, never doubles it).
//!
//! A reminder goes to the owner's DM when the owner maps to a Discord user;
//! otherwise, or when Discord refuses the DM, to `[access_list] channel`
//! when it is set (else the owner is not reminded, nor recorded). An Auth
//! Service without access lists stops the loop quietly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

use super::{BoxFuture, DirectPort, DmError, Mapping, NotifyMetrics, ReminderLabels, nonce};
use crate::config::SharedConfig;
use crate::render::escape_markdown;

/// The plugin data key (upstream's).
pub const KEY: &str = "user_notifications";
/// How often an owner is reminded inside the window.
pub const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often once the review is overdue.
pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// The latest first pass after start.
pub const FIRST_PASS: Duration = Duration::from_secs(30);

/// An access list, as reminders need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFacts {
    /// Name.
    pub name: String,
    /// Title.
    pub title: String,
    /// Owners' Teleport user names.
    pub owners: Vec<String>,
    /// The due date.
    pub next_audit_date: Option<OffsetDateTime>,
    /// How long before it owners are reminded.
    pub notify_before: Duration,
}

/// Why lists could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// The Auth Service has no access lists (Unimplemented).
    #[error("not implemented by this Auth Service")]
    Unimplemented,
    /// The role may not list them.
    #[error("permission denied: {0}")]
    Denied(String),
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// A compare-and-swap that did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CasError {
    /// Someone wrote first: read again.
    #[error("compare failed")]
    Conflict,
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

/// The Teleport side of reminders.
pub trait ListPort: Send + Sync {
    /// Every access list.
    fn lists(&self) -> BoxFuture<'_, Result<Vec<ListFacts>, ListError>>;
    /// Our plugin data on `list` (empty when none).
    fn data<'a>(&'a self, list: &'a str)
    -> BoxFuture<'a, Result<BTreeMap<String, String>, String>>;
    /// Compare-and-swap of our plugin data on `list`.
    fn compare_and_swap<'a>(
        &'a self,
        list: &'a str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), CasError>>;
    /// `https://<proxy>` when known.
    fn web_url(&self) -> Option<String>;
}

/// Decodes `user_notifications` (pure): `""` or missing is empty; a value
/// that is not a JSON object of RFC 3339 times is `None`.
pub fn decode(data: &BTreeMap<String, String>) -> Option<BTreeMap<String, OffsetDateTime>> {
    let raw = data.get(KEY).map(String::as_str).unwrap_or_default();
    if raw.is_empty() {
        return Some(BTreeMap::new());
    }
    let map: BTreeMap<String, String> = serde_json::from_str(raw).ok()?;
    map.into_iter()
        .map(|(k, v)| OffsetDateTime::parse(&v, &Rfc3339).ok().map(|t| (k, t)))
        .collect()
}

/// Encodes `user_notifications` as upstream (Go's `time.Time` JSON: RFC 3339
/// with nanoseconds, UTC).
pub fn encode(map: &BTreeMap<String, OffsetDateTime>) -> String {
    let m: BTreeMap<&str, String> = map
        .iter()
        .map(|(k, v)| {
            let utc = v.to_offset(time::UtcOffset::UTC);
            (k.as_str(), utc.format(&Rfc3339).unwrap_or_default())
        })
        .collect();
    serde_json::to_string(&m).unwrap_or_default()
}

fn whole(d: time::Duration, step: Duration) -> time::Duration {
    let step = time::Duration::try_from(step).unwrap_or(time::Duration::WEEK);
    let n = d.whole_seconds() / step.whole_seconds().max(1);
    step * i32::try_from(n).unwrap_or(i32::MAX)
}

/// The start of the reminder window `now` falls in (pure): `None` before
/// the notification window opens; weekly windows from its start to the due
/// date, daily ones after.
pub fn window_start(list: &ListFacts, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let due = list.next_audit_date?;
    let start = due - time::Duration::try_from(list.notify_before).ok()?;
    if now < start {
        return None;
    }
    let step = if now <= due { WEEK } else { DAY };
    Some(start + whole(now - start, step))
}

/// Who to remind now and the new record (pure): an owner is reminded when
/// the window started after their last reminder; reminded owners get `now`,
/// the others keep theirs, and owners no longer considered are dropped.
pub fn plan(
    list: &ListFacts,
    owners: &[String],
    stored: &BTreeMap<String, OffsetDateTime>,
    now: OffsetDateTime,
) -> (Vec<String>, BTreeMap<String, OffsetDateTime>) {
    let Some(window) = window_start(list, now) else {
        return (Vec::new(), stored.clone());
    };
    let mut reminded = Vec::new();
    let mut next = BTreeMap::new();
    for o in owners {
        match stored.get(o) {
            Some(last) if *last >= window => {
                next.insert(o.clone(), *last);
            }
            _ => {
                reminded.push(o.clone());
                next.insert(o.clone(), now);
            }
        }
    }
    (reminded, next)
}

/// One line of a reminder (pure): due soon, or overdue (which stands out).
pub fn line(list: &ListFacts, now: OffsetDateTime, web: Option<&str>) -> String {
    let title = format!("**{}**", escape_markdown(list.title.trim()));
    let mut out = match list.next_audit_date {
        Some(due) if now > due => {
            let days = (now - due).whole_days();
            format!(
                "⚠️ Access List {title} is **{days} day(s) past due** for a review! Please review it."
            )
        }
        Some(due) => format!(
            "Access List {title} is due for a review by {}. Please review it soon!",
            due.date()
        ),
        None => format!("Access List {title} is due for a review."),
    };
    if let Some(base) = web {
        let name = crate::render::path_escape(&list.name);
        out.push_str(&format!(
            "\n*Link*: {}/web/accesslists/{name}",
            base.trim_end_matches('/')
        ));
    }
    out
}

/// Where a reminder goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Dm { user_id: String, owner: String },
    Channel(String),
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Lists looked at.
    pub lists: usize,
    /// (owner, list) reminders sent.
    pub reminded: usize,
    /// Whether the Auth Service has no access lists (the loop stops).
    pub unimplemented: bool,
}

/// The reminder loop.
pub struct Reminders {
    lists: Arc<dyn ListPort>,
    direct: Arc<dyn DirectPort>,
    mapping: Arc<Mapping>,
    config: SharedConfig,
    metrics: NotifyMetrics,
    active: AtomicBool,
}

impl std::fmt::Debug for Reminders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reminders").finish_non_exhaustive()
    }
}

/// Upstream's `SeventhJitter`: between 6/7 of `d` and `d`.
pub fn seventh_jitter(d: Duration, jitter: f64) -> Duration {
    d.mul_f64(6.0 / 7.0 + jitter.clamp(0.0, 1.0) / 7.0)
}

impl Reminders {
    /// The loop over its ports.
    pub fn new(
        lists: Arc<dyn ListPort>,
        direct: Arc<dyn DirectPort>,
        mapping: Arc<Mapping>,
        config: SharedConfig,
        metrics: NotifyMetrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            lists,
            direct,
            mapping,
            config,
            metrics,
            active: AtomicBool::new(true),
        })
    }

    /// Whether this replica sends (a standby of the lease does not).
    pub fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Relaxed);
    }

    /// Passes until `cancel`, or until the Auth Service turns out to have
    /// no access lists.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let interval = self.config.load().access_list.interval.get();
        let mut wait = seventh_jitter(FIRST_PASS.min(interval), crate::backoff::random_jitter());
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            let on = self.config.load().access_list.reminders;
            if on && self.active.load(Ordering::Relaxed) {
                let pass = self.pass(OffsetDateTime::now_utc()).await;
                if pass.unimplemented {
                    tracing::info!(
                        "the Auth Service does not implement access lists; access list reminders stop"
                    );
                    return;
                }
                tracing::debug!(
                    lists = pass.lists,
                    reminded = pass.reminded,
                    "access list reminder pass"
                );
            }
            wait = seventh_jitter(interval, crate::backoff::random_jitter());
        }
    }

    /// One pass at `now`.
    pub async fn pass(&self, now: OffsetDateTime) -> Pass {
        let mut pass = Pass::default();
        let lists = match self.lists.lists().await {
            Ok(l) => l,
            Err(ListError::Unimplemented) => {
                pass.unimplemented = true;
                return pass;
            }
            Err(ListError::Denied(m)) => {
                tracing::warn!(error = %m, "cannot list access lists for reminders: add `access_list: [list, read]` to the plugin's role");
                return pass;
            }
            Err(ListError::Failed(m)) => {
                tracing::warn!(error = %m, "cannot list access lists for reminders; trying again at the next pass");
                return pass;
            }
        };
        pass.lists = lists.len();
        let channel = self
            .config
            .load()
            .access_list
            .channel
            .as_ref()
            .and_then(|c| c.channel_id().map(|id| id.to_string()));
        let mut due: BTreeMap<Target, Vec<(ListFacts, Vec<String>)>> = BTreeMap::new();
        for list in lists {
            if window_start(&list, now).is_none() {
                continue;
            }
            let mut considered = Vec::new();
            let mut targets = BTreeMap::new();
            for owner in &list.owners {
                match self.mapping.discord_user(owner).await {
                    Ok(Some(user_id)) => {
                        considered.push(owner.clone());
                        targets.insert(
                            owner.clone(),
                            Target::Dm {
                                user_id,
                                owner: owner.clone(),
                            },
                        );
                    }
                    Ok(None) => {
                        if let Some(c) = &channel {
                            considered.push(owner.clone());
                            targets.insert(owner.clone(), Target::Channel(c.clone()));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(list = %list.name, owner = %owner, error = %e, "cannot look up the owner's Discord user; not reminding them this pass");
                    }
                }
            }
            if considered.is_empty() {
                continue;
            }
            let Some(reminded) = self.record(&list, &considered, now).await else {
                continue;
            };
            for owner in reminded {
                if let Some(t) = targets.remove(&owner) {
                    let entry = due.entry(t).or_default();
                    match entry.iter_mut().find(|(l, _)| l.name == list.name) {
                        Some((_, owners)) => owners.push(owner),
                        None => entry.push((list.clone(), vec![owner])),
                    }
                }
            }
        }
        let web = self.lists.web_url();
        let mut refused_to_channel: BTreeMap<String, Vec<(ListFacts, Vec<String>)>> =
            BTreeMap::new();
        for (target, lists) in due {
            let count: usize = lists.iter().map(|(_, o)| o.len()).sum();
            let body = reminder_text(&target, &lists, now, web.as_deref());
            let key: Vec<String> = lists
                .iter()
                .map(|(l, _)| format!("{}@{:?}", l.name, window_start(l, now)))
                .collect();
            let (via, sent) = match &target {
                Target::Dm { user_id, owner } => (
                    "dm",
                    self.direct
                        .to_user(user_id, &nonce(&["reminder", owner, &key.join(",")]), &body)
                        .await,
                ),
                Target::Channel(c) => (
                    "channel",
                    self.direct
                        .to_channel(c, &nonce(&["reminder", c, &key.join(",")]), &body)
                        .await,
                ),
            };
            let outcome = match &sent {
                Ok(()) => "sent",
                Err(DmError::Refused(_)) => "refused",
                Err(DmError::Retryable(_)) => "failed",
            };
            if let Err(e) = &sent {
                tracing::warn!(error = %e, via, "an access list reminder was not delivered");
            }
            if via == "dm" {
                self.metrics.dm("reminder", outcome);
            }
            self.metrics
                .reminders
                .get_or_create(&ReminderLabels { via, outcome })
                .inc_by(count as u64);
            if outcome == "sent" {
                pass.reminded += count;
            }
            // A refused DM goes to the channel, when there is one.
            if let (Err(DmError::Refused(_)), Target::Dm { .. }, Some(c)) =
                (&sent, &target, &channel)
            {
                refused_to_channel
                    .entry(c.clone())
                    .or_default()
                    .extend(lists);
            }
        }
        for (c, lists) in refused_to_channel {
            let count: usize = lists.iter().map(|(_, o)| o.len()).sum();
            let target = Target::Channel(c.clone());
            let body = reminder_text(&target, &lists, now, web.as_deref());
            let key: Vec<String> = lists
                .iter()
                .map(|(l, o)| format!("{}:{}", l.name, o.join("+")))
                .collect();
            let sent = self
                .direct
                .to_channel(&c, &nonce(&["reminder-refused", &c, &key.join(",")]), &body)
                .await;
            let outcome = if sent.is_ok() { "sent" } else { "failed" };
            self.metrics
                .reminders
                .get_or_create(&ReminderLabels {
                    via: "channel",
                    outcome,
                })
                .inc_by(count as u64);
            if sent.is_ok() {
                pass.reminded += count;
            }
        }
        pass
    }

    /// Records the reminders due on `list` (compare-and-swap, read again on
    /// a conflict); the owners to remind, or `None` when the record failed.
    async fn record(
        &self,
        list: &ListFacts,
        owners: &[String],
        now: OffsetDateTime,
    ) -> Option<Vec<String>> {
        for _ in 0..5 {
            let data = match self.lists.data(&list.name).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(list = %list.name, error = %e, "cannot read the access list's plugin data; skipping it this pass");
                    return None;
                }
            };
            let stored = decode(&data).unwrap_or_else(|| {
                tracing::warn!(list = %list.name, "the access list's user_notifications is not readable; starting it afresh");
                BTreeMap::new()
            });
            let (reminded, next) = plan(list, owners, &stored, now);
            if reminded.is_empty() && next == stored {
                return Some(Vec::new());
            }
            let expect =
                BTreeMap::from([(KEY.to_owned(), data.get(KEY).cloned().unwrap_or_default())]);
            let set = BTreeMap::from([(KEY.to_owned(), encode(&next))]);
            match self.lists.compare_and_swap(&list.name, set, expect).await {
                Ok(()) => return Some(reminded),
                Err(CasError::Conflict) => {}
                Err(CasError::Failed(e)) => {
                    tracing::warn!(list = %list.name, error = %e, "cannot record reminders on the access list; skipping it this pass");
                    return None;
                }
            }
        }
        None
    }
}

fn reminder_text(
    target: &Target,
    lists: &[(ListFacts, Vec<String>)],
    now: OffsetDateTime,
    web: Option<&str>,
) -> String {
    let mut out = String::from("🔔 **Access list review reminder**");
    if let Target::Channel(_) = target {
        let mut owners: Vec<String> = lists
            .iter()
            .flat_map(|(_, o)| o.iter().map(|n| escape_markdown(n)))
            .collect();
        owners.sort();
        owners.dedup();
        out.push_str(&format!(" for {}", owners.join(", ")));
    }
    for (l, _) in lists {
        out.push('\n');
        out.push_str(&line(l, now, web));
    }
    crate::render::truncate_marked(&out, crate::render::CONTENT_LIMIT, "… (truncated)")
}
