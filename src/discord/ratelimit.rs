//! The rate limiter: every request first takes a [`Permit`] here, and hands
//! the answer's headers back with [`Permit::complete`].
//!
//! # Why our own and not `twilight-http-ratelimiting`
//! twilight 0.17/0.18 merges queues by `X-RateLimit-Bucket`, and Discord gives
//! message create and message edit the same hash while counting them
//! separately (discord-api-docs#1442, #8073), so a merged queue halves the
//! throughput of a create+edit workload — the workload this service has. It
//! also allows only one request in flight per bucket. Ours is tested
//! against our emulator and keeps that decision in our hands.
//!
//! # Model
//! - **Buckets** are keyed by [`BucketKey`]: method + route template + major
//!   parameter (the channel). The hash from `X-RateLimit-Bucket` is recorded
//!   ([`RateLimiter::bucket`]) but does not merge counters (see above).
//! - An **unknown** bucket lets one request through at a time until the first
//!   answer tells its limit. A known bucket grants while its local `remaining`
//!   is positive: the lowest `Remaining` among this window's answers, minus
//!   every request still in flight (each counted as not yet seen by the
//!   server; answers of one window may come back in any order), never above
//!   what we counted ourselves; it is refilled to `limit - in_flight` when
//!   `Reset-After` has passed. Answers granted before
//!   the last local refill (older *epochs*) cannot move the reset earlier.
//!   A 2xx answer with no bucket headers marks the route as unlimited.
//! - **Global**: a sliding window of `global_limit` sends per second (plus a
//!   small margin), so any 1-second window — however the server aligns it —
//!   holds at most `global_limit` requests. Tokens are not paced: a
//!   second's worth may go at once, as Discord allows. (Pacing at one per
//!   20 ms was tried so that dependency chains advance within a second; with
//!   window openers first and oldest work first, below, chains gain nothing
//!   from it (300 × create → edit → edit: 1.073 × the minimum unpaced, 1.070
//!   paced), while a burst lost 14 % to it (300 creates over 30 channels:
//!   1.136 paced, 1.009 unpaced) and the wake-ups cost 4× the CPU per
//!   request; see BENCHMARKS.md.)
//! - **Who gets a global token**: first a request that *opens* its
//!   bucket's window (the first slot since a reset, or the one request of a
//!   bucket whose limit is unknown): sending it starts that window's clock,
//!   so every channel's windows open early and the next ones open sooner
//!   (at most one per bucket per window, so nothing starves). Then the
//!   waiting request with the oldest *rank* ([`RateLimiter::acquire_ranked`];
//!   ties by arrival). Only the next in line is awake, sleeping until its
//!   token is free; it wakes the next one when served or gone. The queue
//!   ranks an operation by the enqueue time of the work it belongs to: a
//!   create by its own, an edit by its message's create, so work started
//!   earlier finishes first (an edit of message 1 before the create of
//!   message 9), rather than every create before every edit or the reverse.
//!   Nothing starves: a new request always ranks after one already waiting.
//! - **429**: scope `global` pauses every request; `user` (or none) pauses
//!   and empties that bucket; `shared` pauses that bucket and does not count
//!   as an invalid request.
//! - **Invalid requests** (401, 403, non-shared 429) are kept for 10 minutes;
//!   [`RateLimiter::invalid_count`] feeds the client's guard.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Which rate-limit bucket a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// Method and route template, e.g. `POST /channels/{}/messages`.
    pub route: &'static str,
    /// The major parameter (channel ID), empty when none.
    pub major: String,
}

impl BucketKey {
    /// A key.
    pub fn new(route: &'static str, major: impl Into<String>) -> Self {
        Self {
            route,
            major: major.into(),
        }
    }
}

/// The scope of a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// All requests of the bot.
    Global,
    /// This bucket, for this bot.
    User,
    /// A shared resource; not our fault, not counted as invalid.
    Shared,
}

impl Scope {
    /// As a label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::User => "user",
            Self::Shared => "shared",
        }
    }
}

/// What the limiter needs from an answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseInfo {
    /// HTTP status.
    pub status: u16,
    /// `X-RateLimit-Limit`.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset-After`.
    pub reset_after: Option<Duration>,
    /// `X-RateLimit-Bucket`.
    pub bucket: Option<String>,
    /// `X-RateLimit-Scope` (or `global: true`).
    pub scope: Option<Scope>,
    /// `retry_after` of a 429 (body, else `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ResponseInfo {
    /// Reads the rate-limit headers; `body` is used for a 429's `retry_after` and `global`.
    pub fn from_parts(status: u16, headers: &http::HeaderMap, body: &[u8]) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let float = |name: &str| {
            text(name)
                .and_then(|s| s.trim().parse::<f64>().ok())
                .and_then(wait_from_secs)
        };
        let mut scope = match text("x-ratelimit-scope") {
            Some("global") => Some(Scope::Global),
            Some("user") => Some(Scope::User),
            Some("shared") => Some(Scope::Shared),
            _ => None,
        };
        if text("x-ratelimit-global").is_some_and(|g| g.eq_ignore_ascii_case("true")) {
            scope = Some(Scope::Global);
        }
        let mut retry_after = float("retry-after");
        if status == 429
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        {
            if let Some(r) = v
                .get("retry_after")
                .and_then(serde_json::Value::as_f64)
                .and_then(wait_from_secs)
            {
                retry_after = Some(r);
            }
            if v.get("global").and_then(serde_json::Value::as_bool) == Some(true) {
                scope = Some(Scope::Global);
            }
        }
        Self {
            status,
            // A limit of 0 would leave the bucket empty after every reset,
            // waiting forever for a refill: no window allows fewer than one.
            limit: text("x-ratelimit-limit")
                .and_then(|s| s.parse().ok())
                .map(|l: u32| l.max(1)),
            remaining: text("x-ratelimit-remaining").and_then(|s| s.parse().ok()),
            reset_after: float("x-ratelimit-reset-after"),
            bucket: text("x-ratelimit-bucket").map(str::to_owned),
            scope,
            retry_after,
        }
    }
}

/// The longest wait taken from an answer; longer values are cut to it.
/// Discord's own waits are seconds to minutes; a huge or overflowing value
/// (`retry-after: 1e30`) must neither panic nor park a bucket for years.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Seconds from a header or body as a wait: finite, not negative, at most [`MAX_WAIT`].
fn wait_from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64())))
}

/// A snapshot of one bucket, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketState {
    /// Learned hash.
    pub hash: Option<String>,
    /// Learned limit (None: unknown yet).
    pub limit: Option<u32>,
    /// Whether the route proved to have no per-route limit.
    pub unlimited: bool,
    /// Requests we may still send in this window.
    pub remaining: u32,
}

#[derive(Debug, Default)]
struct Bucket {
    hash: Option<String>,
    limit: Option<u32>,
    unlimited: bool,
    remaining: u32,
    /// What the server has left in this window: the lowest `remaining` of
    /// this window's answers, less slots spent without one. `remaining` is
    /// this minus everything in flight (each counted as not yet seen).
    server_left: u32,
    reset_at: Option<Instant>,
    window_estimate: Option<Duration>,
    epoch: u64,
    in_flight: u32,
    paused_until: Option<Instant>,
    /// Wakes the requests waiting for a slot in this bucket.
    changed: Arc<Notify>,
}

impl Bucket {
    /// Takes a slot: `Ok((epoch, opens))` or `Err(when to look again; None =
    /// on change)`. `opens` is true when the slot is the first of its window
    /// (nothing else taken or in flight since the last reset, or the limit
    /// is unknown yet): sending it starts the window's clock.
    fn try_take(&mut self, now: Instant) -> Result<(u64, bool), Option<Instant>> {
        if let Some(p) = self.paused_until {
            if p > now {
                return Err(Some(p));
            }
            self.paused_until = None;
        }
        if self.unlimited {
            self.in_flight += 1;
            return Ok((self.epoch, false));
        }
        let Some(limit) = self.limit else {
            if self.in_flight == 0 {
                self.in_flight = 1;
                return Ok((self.epoch, true));
            }
            return Err(None);
        };
        if self.reset_at.is_some_and(|r| now >= r) {
            self.epoch += 1;
            self.remaining = limit.saturating_sub(self.in_flight);
            self.server_left = limit;
            self.reset_at = None;
        }
        if self.remaining > 0 {
            let opens = self.remaining == limit && self.in_flight == 0;
            self.remaining -= 1;
            self.in_flight += 1;
            return Ok((self.epoch, opens));
        }
        Err(self.reset_at)
    }
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<BucketKey, Bucket>,
    global_sent: VecDeque<Instant>,
    global_paused_until: Option<Instant>,
    /// Waiting for a global token; see [`next_global`].
    global_queue: Vec<Ticket>,
    next_ticket: u64,
    invalid: VecDeque<Instant>,
}

/// Who goes first for a global token; smaller first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Priority {
    /// False for a request that opens its bucket's window (see
    /// [`Bucket::try_take`]): those go before every other request.
    keeps_window: bool,
    /// The age of the work it belongs to (older first).
    rank: Instant,
}

impl Priority {
    fn new(opens_window: bool, rank: Instant) -> Self {
        Self {
            keeps_window: !opens_window,
            rank,
        }
    }
}

/// A request waiting for a global token.
#[derive(Debug)]
struct Ticket {
    priority: Priority,
    /// Grows with arrival: breaks ties.
    id: u64,
    /// Wakes this request only (when it becomes the next in line).
    wake: Arc<Notify>,
}

/// The ticket that gets the next global token: the highest [`Priority`],
/// then the earliest arrival.
fn next_global(queue: &[Ticket]) -> Option<&Ticket> {
    queue.iter().min_by_key(|t| (t.priority, t.id))
}

/// Wakes the next ticket in line, if any; the others sleep until they are.
fn wake_next(st: &State) {
    if let Some(t) = next_global(&st.global_queue) {
        t.wake.notify_one();
    }
}

/// When the next global token is free (None: now). `sent` holds the grant
/// times (oldest first, at most `limit`): at most `limit` in any `window`
/// (+ [`MARGIN`]).
fn global_free_at(
    sent: &VecDeque<Instant>,
    limit: u32,
    window: Duration,
    now: Instant,
) -> Option<Instant> {
    if sent.len() < limit as usize {
        return None;
    }
    sent.front()
        .map(|oldest| *oldest + window + MARGIN)
        .filter(|f| *f > now)
}

/// The limiter, shared by every request of one bot token.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    global_limit: u32,
    global_window: Duration,
}

/// Extra time added to the global window and to every reset, for clock and
/// scheduling jitter between us and Discord.
pub const MARGIN: Duration = Duration::from_millis(15);

const INVALID_WINDOW: Duration = Duration::from_secs(600);

impl RateLimiter {
    /// A limiter allowing `global_limit` requests per second (at least 1).
    pub fn new(global_limit: u32) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            global_limit: global_limit.max(1),
            global_window: Duration::from_secs(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Waits until `key`'s bucket and the global limit allow one more request.
    pub async fn acquire(self: &Arc<Self>, key: BucketKey) -> Permit {
        self.acquire_ranked(key, Instant::now()).await
    }

    /// A slot in `key`'s bucket only, without a global token: for routes
    /// Discord does not bind to the global limit (interaction webhooks).
    pub async fn acquire_unbound(self: &Arc<Self>, key: BucketKey) -> Permit {
        let (epoch, _) = self.take_bucket(&key).await;
        Permit {
            limiter: self.clone(),
            key,
            epoch,
            done: false,
        }
    }

    /// Phase 1 of an acquire: a slot in the bucket; only this bucket's
    /// answers wake us. Returns the bucket epoch and whether the slot opened
    /// the bucket (see [`Priority`]).
    async fn take_bucket(&self, key: &BucketKey) -> (u64, bool) {
        let changed = self
            .lock()
            .buckets
            .entry(key.clone())
            .or_default()
            .changed
            .clone();
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let mut st = self.lock();
                match st
                    .buckets
                    .entry(key.clone())
                    .or_default()
                    .try_take(Instant::now())
                {
                    Ok(taken) => break taken,
                    Err(wake) => wake,
                }
            };
            wait(notified, wake).await;
        }
    }

    /// [`Self::acquire`] competing for the global token with `rank`: the
    /// oldest rank waiting goes first (see the module docs).
    pub async fn acquire_ranked(self: &Arc<Self>, key: BucketKey, rank: Instant) -> Permit {
        // Phase 1: a slot in the bucket; only this bucket's answers wake us.
        let (epoch, opens) = self.take_bucket(&key).await;
        let permit = Permit {
            limiter: self.clone(),
            key,
            epoch,
            done: false,
        };
        // Phase 2: a global token, by priority. Only the next in line is
        // awake (it sleeps until the token is free); it wakes the next one
        // when it is served or leaves.
        let wake = Arc::new(Notify::new());
        let ticket = {
            let mut st = self.lock();
            let id = st.next_ticket;
            st.next_ticket += 1;
            st.global_queue.push(Ticket {
                priority: Priority::new(opens, rank),
                id,
                wake: wake.clone(),
            });
            id
        };
        let mut guard = TicketGuard {
            limiter: self,
            ticket,
            granted: false,
        };
        loop {
            let at = {
                let mut st = self.lock();
                if next_global(&st.global_queue).map(|t| t.id) == Some(ticket) {
                    let now = Instant::now();
                    match self.global_wait(&mut st, now) {
                        Some(at) => Some(at),
                        None => {
                            st.global_queue.retain(|t| t.id != ticket);
                            st.global_sent.push_back(now);
                            while st.global_sent.len() > self.global_limit as usize {
                                st.global_sent.pop_front();
                            }
                            wake_next(&st);
                            break;
                        }
                    }
                } else {
                    None
                }
            };
            // Not next in line: sleep until woken. Next: sleep until the
            // token is free (a younger ticket with a higher priority may
            // take the lead meanwhile; it checks for itself).
            match at {
                Some(at) => {
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => wake.notified().await,
            }
        }
        guard.granted = true;
        drop(guard);
        permit
    }

    /// When the global limit allows the next request (None: now).
    fn global_wait(&self, st: &mut State, now: Instant) -> Option<Instant> {
        if let Some(p) = st.global_paused_until {
            if p > now {
                return Some(p);
            }
            st.global_paused_until = None;
        }
        global_free_at(&st.global_sent, self.global_limit, self.global_window, now)
    }

    fn complete(&self, key: &BucketKey, epoch: u64, info: Option<&ResponseInfo>) {
        let now = Instant::now();
        let mut st = self.lock();
        if let Some(info) = info {
            let invalid = matches!(info.status, 401 | 403)
                || (info.status == 429 && info.scope != Some(Scope::Shared));
            if invalid {
                st.invalid.push_back(now);
            }
            if info.status == 429 && info.scope == Some(Scope::Global) {
                let until = now + info.retry_after.unwrap_or(Duration::from_secs(1)) + MARGIN;
                st.global_paused_until =
                    Some(st.global_paused_until.map_or(until, |p| p.max(until)));
            }
        }
        let b = st.buckets.entry(key.clone()).or_default();
        let changed = b.changed.clone();
        b.in_flight = b.in_flight.saturating_sub(1);
        let mut updated = false;
        if let Some(info) = info {
            {
                if let (Some(limit), Some(remaining), Some(reset_after)) =
                    (info.limit, info.remaining, info.reset_after)
                {
                    let reset_at = now + reset_after + MARGIN;
                    b.hash = info.bucket.clone().or(b.hash.take());
                    b.window_estimate = Some(
                        b.window_estimate
                            .map_or(reset_after, |w| w.max(reset_after)),
                    );
                    // An answer from a later server window than the one we track
                    // (its reset is more than half a window later): the server's
                    // count is the truth for it, minus what is still in flight.
                    let half_window = b.window_estimate.unwrap_or(reset_after) / 2;
                    let later = b.reset_at.is_some_and(|r| reset_at > r + half_window);
                    // The first answer since a local refill.
                    let fresh = b.reset_at.is_none();
                    if b.limit.is_none() || later || (fresh && epoch != b.epoch) {
                        if b.limit.is_some() {
                            b.epoch += 1;
                        }
                        b.limit = Some(limit);
                        b.server_left = remaining;
                        b.reset_at = Some(reset_at);
                        updated = true;
                    } else if epoch == b.epoch {
                        // Answers of one window may come back in any order:
                        // the lowest `remaining` is the server's count, and
                        // an earlier answer's in-flight doubt is lifted.
                        b.limit = Some(limit);
                        b.server_left = b.server_left.min(remaining);
                        b.reset_at = Some(b.reset_at.map_or(reset_at, |r| r.max(reset_at)));
                        updated = true;
                    }
                    if updated {
                        b.remaining = b.server_left.saturating_sub(b.in_flight);
                    }
                } else if (200..300).contains(&info.status) && b.limit.is_none() {
                    b.unlimited = true;
                }
                if info.status == 429 && info.scope != Some(Scope::Global) {
                    let until = now + info.retry_after.unwrap_or(Duration::from_secs(1)) + MARGIN;
                    b.paused_until = Some(b.paused_until.map_or(until, |p| p.max(until)));
                    if info.scope != Some(Scope::Shared) {
                        b.remaining = 0;
                        b.server_left = b.in_flight;
                        b.reset_at = Some(b.reset_at.map_or(until, |r| r.max(until)));
                    }
                }
            }
        }
        // No answer, or one without rate-limit headers (a 5xx before Discord
        // counted it): keep the slot spent, and make sure an exhausted bucket
        // refills eventually instead of waiting for headers that never come.
        if !updated {
            // The slot stays spent: no answer, or one we cannot place in
            // this window (it may have been counted here).
            b.server_left = b.remaining + b.in_flight;
        }
        if b.limit.is_some() && b.remaining == 0 && b.reset_at.is_none() && b.in_flight == 0 {
            b.reset_at = Some(now + b.window_estimate.unwrap_or(Duration::from_secs(5)) + MARGIN);
        }
        drop(st);
        changed.notify_waiters();
    }

    /// Invalid requests (401, 403, non-shared 429) in the last 10 minutes.
    pub fn invalid_count(&self) -> usize {
        let now = Instant::now();
        let mut st = self.lock();
        while st
            .invalid
            .front()
            .is_some_and(|t| now.duration_since(*t) > INVALID_WINDOW)
        {
            st.invalid.pop_front();
        }
        st.invalid.len()
    }

    /// What the limiter knows about a bucket.
    pub fn bucket(&self, key: &BucketKey) -> Option<BucketState> {
        self.lock().buckets.get(key).map(|b| BucketState {
            hash: b.hash.clone(),
            limit: b.limit,
            unlimited: b.unlimited,
            remaining: b.remaining,
        })
    }
}

async fn wait(
    notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    wake: Option<Instant>,
) {
    match wake {
        Some(at) => {
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(at) => {}
            }
        }
        None => notified.await,
    }
}

struct TicketGuard<'a> {
    limiter: &'a RateLimiter,
    ticket: u64,
    granted: bool,
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        if !self.granted {
            let mut st = self.limiter.lock();
            st.global_queue.retain(|t| t.id != self.ticket);
            // If it was next in line, the new next one must take over.
            wake_next(&st);
        }
    }
}

/// Permission to send one request. Hand the answer back with [`Permit::complete`];
/// dropping it counts as "no answer" (the slot stays spent).
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<RateLimiter>,
    key: BucketKey,
    epoch: u64,
    done: bool,
}

impl Permit {
    /// Records the answer (None: transport failure, no answer).
    pub fn complete(mut self, info: Option<&ResponseInfo>) {
        self.done = true;
        self.limiter.complete(&self.key, self.epoch, info);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            self.limiter.complete(&self.key, self.epoch, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ch: &str) -> BucketKey {
        BucketKey::new("POST /channels/{}/messages", ch)
    }

    fn ok(limit: u32, remaining: u32, reset_after_ms: u64) -> ResponseInfo {
        ResponseInfo {
            status: 200,
            limit: Some(limit),
            remaining: Some(remaining),
            reset_after: Some(Duration::from_millis(reset_after_ms)),
            bucket: Some("abc".to_owned()),
            ..ResponseInfo::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_bucket_sends_one_at_a_time_then_uses_the_learned_limit() {
        let rl = RateLimiter::new(50);
        let first = rl.acquire(key("1")).await;
        // A second request must wait for the first answer.
        let rl2 = rl.clone();
        let second = tokio::spawn(async move { rl2.acquire(key("1")).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished());
        first.complete(Some(&ok(3, 2, 5_000)));
        let second = second.await.expect("task");
        let third = rl.acquire(key("1")).await;
        assert_eq!(
            rl.bucket(&key("1")).map(|b| (b.limit, b.remaining, b.hash)),
            Some((Some(3), 0, Some("abc".to_owned())))
        );
        // Exhausted: the fourth waits for Reset-After.
        let start = Instant::now();
        second.complete(Some(&ok(3, 1, 4_900)));
        third.complete(Some(&ok(3, 0, 4_900)));
        let _fourth = rl.acquire(key("1")).await;
        assert!(
            start.elapsed() >= Duration::from_millis(4_900),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn answers_without_headers_never_stall_an_exhausted_bucket() {
        let rl = RateLimiter::new(50);
        let p = rl.acquire(key("1")).await;
        p.complete(Some(&ok(1, 0, 100)));
        // After the reset, a 500 without rate-limit headers spends the slot...
        let p = rl.acquire(key("1")).await;
        p.complete(Some(&ResponseInfo {
            status: 500,
            ..ResponseInfo::default()
        }));
        // ...and the bucket still refills (it used to wait for headers forever).
        let next = tokio::time::timeout(Duration::from_secs(30), rl.acquire(key("1"))).await;
        assert!(next.is_ok(), "the bucket never refilled");
    }

    #[tokio::test(start_paused = true)]
    async fn global_limit_is_a_sliding_second() {
        let rl = RateLimiter::new(5);
        let start = Instant::now();
        let mut times = Vec::new();
        for i in 0..12 {
            let p = rl
                .acquire(BucketKey::new("GET /channels/{}", i.to_string()))
                .await;
            times.push(start.elapsed());
            p.complete(Some(&ResponseInfo {
                status: 200,
                ..ResponseInfo::default()
            }));
        }
        for w in times.windows(6) {
            assert!(w[5] - w[0] >= Duration::from_secs(1), "{times:?}");
        }
        // A second's worth at once, then the window decides.
        assert!(times[4] < Duration::from_millis(5), "{times:?}");
        assert!(times[5] >= Duration::from_secs(1), "{times:?}");
        assert!(times[11] < Duration::from_millis(2_100), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn global_429_pauses_every_bucket_and_user_429_only_its_own() {
        let rl = RateLimiter::new(50);
        let p = rl.acquire(key("1")).await;
        p.complete(Some(&ResponseInfo {
            status: 429,
            scope: Some(Scope::Global),
            retry_after: Some(Duration::from_secs(2)),
            ..ResponseInfo::default()
        }));
        let start = Instant::now();
        let _p = rl.acquire(key("2")).await;
        assert!(start.elapsed() >= Duration::from_secs(2));

        let rl = RateLimiter::new(50);
        let p = rl.acquire(key("1")).await;
        p.complete(Some(&ResponseInfo {
            status: 429,
            scope: Some(Scope::User),
            retry_after: Some(Duration::from_secs(3)),
            ..ok(5, 0, 3_000)
        }));
        let start = Instant::now();
        let other = rl.acquire(key("2")).await;
        // Only the pacing interval (20 ms at 50/s), not the 3 s pause.
        assert!(start.elapsed() <= Duration::from_millis(20));
        drop(other);
        let _same = rl.acquire(key("1")).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        assert_eq!(rl.invalid_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shared_429_waits_but_is_not_invalid() {
        let rl = RateLimiter::new(50);
        let p = rl.acquire(key("1")).await;
        p.complete(Some(&ResponseInfo {
            status: 429,
            scope: Some(Scope::Shared),
            retry_after: Some(Duration::from_secs(1)),
            ..ok(5, 4, 1_000)
        }));
        let start = Instant::now();
        let _p = rl.acquire(key("1")).await;
        assert!(start.elapsed() >= Duration::from_secs(1));
        assert_eq!(rl.invalid_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_from_old_windows_never_overfill_the_new_one() {
        let rl = RateLimiter::new(50);
        let p = rl.acquire(key("1")).await;
        p.complete(Some(&ok(2, 1, 1_000)));
        let a = rl.acquire(key("1")).await; // remaining 0 now
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let b = rl.acquire(key("1")).await; // new window: 2 - 1 in flight = 1, b takes it
        // a's late answer: it was counted in the old window, which resets now.
        a.complete(Some(&ok(2, 0, 0)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let c = rl.acquire(key("1")).await; // b and c: 2 in the new window
        let rl2 = rl.clone();
        let d = tokio::spawn(async move { rl2.acquire(key("1")).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!d.is_finished(), "a third request went into a window of 2");
        b.complete(Some(&ok(2, 1, 1_000)));
        c.complete(Some(&ok(2, 0, 990)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!d.is_finished(), "the window is full until it resets");
        d.await.expect("task").complete(None);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_out_of_order_within_a_window_lose_no_slot() {
        let rl = RateLimiter::new(50);
        rl.acquire(key("1")).await.complete(Some(&ok(5, 0, 1_000)));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        // A new window: two requests, the second answered first.
        let a = rl.acquire(key("1")).await;
        let b = rl.acquire(key("1")).await;
        b.complete(Some(&ok(5, 3, 1_000)));
        // `a` may not have been counted yet by the server: 3 - 1 in flight.
        assert_eq!(rl.bucket(&key("1")).map(|s| s.remaining), Some(2));
        a.complete(Some(&ok(5, 4, 1_000)));
        // Now both are known to be counted: 3 left, not 2.
        assert_eq!(rl.bucket(&key("1")).map(|s| s.remaining), Some(3));
        // An answer we cannot place keeps its slot spent.
        let c = rl.acquire(key("1")).await;
        c.complete(None);
        assert_eq!(rl.bucket(&key("1")).map(|s| s.remaining), Some(2));
        let d = rl.acquire(key("1")).await;
        d.complete(Some(&ok(5, 1, 1_000)));
        assert_eq!(rl.bucket(&key("1")).map(|s| s.remaining), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_opened_the_next_window_is_believed() {
        let rl = RateLimiter::new(50);
        rl.acquire(key("1")).await.complete(Some(&ok(2, 1, 1_000)));
        let x = rl.acquire(key("1")).await; // last slot of this window
        // x waited (e.g. for the global limit) and reached Discord after the reset.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        x.complete(Some(&ok(2, 1, 1_000)));
        let start = Instant::now();
        let _y = rl.acquire(key("1")).await;
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "the new window's free slot was wasted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn global_tokens_are_first_come_first_served() {
        let rl = RateLimiter::new(1);
        let first = rl.acquire(BucketKey::new("GET /x", "")).await;
        first.complete(Some(&ResponseInfo {
            status: 200,
            ..ResponseInfo::default()
        }));
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5u32 {
            let (rl, order) = (rl.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let p = rl.acquire(BucketKey::new("GET /x", i.to_string())).await;
                crate::sync::lock(&order).push(i);
                p.complete(Some(&ResponseInfo {
                    status: 200,
                    ..ResponseInfo::default()
                }));
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*crate::sync::lock(&order), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_rank_goes_first_then_arrival_order() {
        let rl = RateLimiter::new(1);
        let first = rl.acquire(BucketKey::new("GET /x", "")).await;
        first.complete(Some(&ResponseInfo {
            status: 200,
            ..ResponseInfo::default()
        }));
        let base = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Arrival order 0..5; ranks: 3 and 4 are older than everything, 1 and 2 tie.
        let ranks = [30, 20, 20, 5, 10];
        for (i, r) in ranks.into_iter().enumerate() {
            let (rl, order) = (rl.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let rank = base - Duration::from_millis(r);
                let p = rl
                    .acquire_ranked(BucketKey::new("GET /x", i.to_string()), rank)
                    .await;
                crate::sync::lock(&order).push(i);
                p.complete(Some(&ResponseInfo {
                    status: 200,
                    ..ResponseInfo::default()
                }));
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*crate::sync::lock(&order), vec![0, 1, 2, 4, 3]);
    }

    fn ticket(opens: bool, rank: Instant, id: u64) -> Ticket {
        Ticket {
            priority: Priority::new(opens, rank),
            id,
            wake: Arc::new(Notify::new()),
        }
    }

    #[test]
    fn next_global_is_window_openers_then_oldest_rank_then_ticket() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let next = |q: &[Ticket]| next_global(q).map(|t| t.id);
        assert_eq!(next(&[]), None);
        let q = [
            ticket(false, t0 + ms(5), 1),
            ticket(false, t0, 7),
            ticket(false, t0, 3),
        ];
        assert_eq!(next(&q), Some(3));
        // A request opening its bucket's window goes before older work.
        let q = [
            ticket(false, t0, 1),
            ticket(true, t0 + ms(900), 9),
            ticket(true, t0 + ms(800), 12),
        ];
        assert_eq!(next(&q), Some(12));
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_first_slot_of_a_window_opens_it() {
        let now = Instant::now();
        let mut b = Bucket::default();
        // Unknown limit: the one request let through opens the window.
        assert_eq!(b.try_take(now), Ok((0, true)));
        b.in_flight = 0;
        b.limit = Some(3);
        b.remaining = 3;
        assert_eq!(b.try_take(now), Ok((0, true)));
        assert_eq!(b.try_take(now), Ok((0, false)));
        assert_eq!(b.try_take(now), Ok((0, false)));
        b.reset_at = Some(now + Duration::from_secs(1));
        assert_eq!(b.try_take(now), Err(b.reset_at));
        // After the reset, with one request still in flight: it may land in
        // the new window, so the next one does not open it.
        b.in_flight = 1;
        let later = now + Duration::from_secs(1);
        assert_eq!(b.try_take(later), Ok((1, false)));
        // An idle bucket after its reset: the next request opens the window.
        b.in_flight = 0;
        b.reset_at = Some(later);
        assert_eq!(b.try_take(later), Ok((2, true)));
        b.unlimited = true;
        assert_eq!(b.try_take(later), Ok((2, false)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_opening_a_window_passes_older_work_for_the_global_token() {
        let rl = RateLimiter::new(1);
        let base = Instant::now();
        // Learn two buckets' limits and fill the global second.
        for ch in ["old", "new"] {
            let p = rl.acquire_ranked(key(ch), base).await;
            p.complete(Some(&ok(5, 4, 5_000)));
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Two requests in the open window of "old" (oldest ranks), then one
        // opening the window of a fresh bucket, ranked youngest.
        for (i, (ch, r)) in [("old", 0), ("old", 1), ("fresh", 50)]
            .into_iter()
            .enumerate()
        {
            let (rl, order) = (rl.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let p = rl
                    .acquire_ranked(key(ch), base + Duration::from_millis(r))
                    .await;
                crate::sync::lock(&order).push(i);
                p.complete(Some(&ok(5, 3, 4_000)));
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*crate::sync::lock(&order), vec![2, 0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn many_waiters_are_all_served_when_the_next_in_line_leaves() {
        let rl = RateLimiter::new(2);
        let _a = rl.acquire(key("a")).await;
        let _b = rl.acquire(key("b")).await;
        // The next in line gives up while waiting; the rest must still go.
        let rl2 = rl.clone();
        let quitter =
            tokio::spawn(async move { rl2.acquire_ranked(key("q"), Instant::now()).await });
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut rest = Vec::new();
        for i in 0..6 {
            let rl = rl.clone();
            rest.push(tokio::spawn(async move {
                rl.acquire(key(&format!("r{i}"))).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        quitter.abort();
        for t in rest {
            let p = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("served")
                .expect("task");
            p.complete(None);
        }
    }

    #[test]
    fn a_second_of_global_tokens_goes_at_once_then_the_window_decides() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let sec = Duration::from_secs(1);
        let mut sent = VecDeque::new();
        for _ in 0..50 {
            assert_eq!(global_free_at(&sent, 50, sec, t0), None);
            sent.push_back(t0);
        }
        assert_eq!(global_free_at(&sent, 50, sec, t0), Some(t0 + sec + MARGIN));
        // Spread over the last second: the oldest grant decides.
        let sent: VecDeque<Instant> = (0..50).map(|i| t0 + ms(i * 20)).collect();
        assert_eq!(
            global_free_at(&sent, 50, sec, t0 + ms(1_000)),
            Some(t0 + sec + MARGIN)
        );
        assert_eq!(global_free_at(&sent, 50, sec, t0 + ms(1_016)), None);
        let five: VecDeque<Instant> = (0..5).map(|_| t0).collect();
        assert_eq!(
            global_free_at(&five, 5, sec, t0 + ms(500)),
            Some(t0 + sec + MARGIN)
        );
    }
}

#[cfg(test)]
mod proptests;
