//! The delivery queue in front of [`DiscordClient`].
//!
//! - **Bounded**: at most `capacity` operations wait; [`Delivery::enqueue`]
//!   waits for room (backpressure), [`Delivery::try_enqueue`] refuses.
//! - **Ordered per channel**: each channel has two lanes, creates and edits.
//!   Creates go one at a time in arrival order (messages appear in order).
//!   Edits go one at a time *per message* in arrival order, several messages
//!   of a channel at once (`max_edits_per_channel`), so an opened rate-limit
//!   window is filled quickly. An edit names a message ID, which exists only
//!   once its create was answered, so a message's create always precedes its
//!   edits. Creates and edits use separate Discord counters, hence separate lanes.
//! - **Coalescing**: an edit for a message that already has an edit waiting
//!   replaces that edit's payload; one request carries the newest content and
//!   every waiter gets its answer.
//! - **Fair**: lanes with work are served round-robin, and a lane goes to the
//!   back after each operation, so a busy channel never starves the others.
//! - **Oldest work first**: every operation carries a *rank* for the
//!   limiter's global tokens ([`super::ratelimit`]): a create its enqueue
//!   time, an edit the enqueue time of its message's create (remembered for
//!   [`RANK_TTL`] after the create's answer; after that, or for a message
//!   this queue did not create, the edit's own enqueue time). So the edits
//!   of message 1 go before the create of message 9 enqueued with it, every
//!   channel's edit windows open early, and no request waits behind
//!   younger work.
//! - **Answers are never dropped**: every enqueued operation resolves its
//!   [`Pending`] (or calls its [`OnDone`], for owners that do not wait:
//!   [`Delivery::submit`]) with the message, a [`DiscordError`] (retryable ones are the
//!   owner's to requeue) or [`DeliveryError::ShutDown`].
//! - **Drain**: [`Delivery::shutdown`] stops intake, lets work finish until
//!   the deadline, then answers everything left with `ShutDown`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::DiscordError;
use super::client::DiscordClient;
use super::types::{Message, MessagePayload};

/// One operation for Discord.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Post a message; a `nonce` deterministic per message (the reconciler's
    /// `nonce_for`) with `enforce_nonce` makes retries idempotent.
    Create {
        /// Channel snowflake.
        channel_id: String,
        /// ≤ 25 chars, deterministic per (request, channel).
        nonce: String,
        /// Content.
        payload: MessagePayload,
    },
    /// Replace a message's content.
    Edit {
        /// Channel snowflake.
        channel_id: String,
        /// Message snowflake.
        message_id: String,
        /// New content.
        payload: MessagePayload,
    },
}

impl Op {
    fn channel(&self) -> &str {
        match self {
            Self::Create { channel_id, .. } | Self::Edit { channel_id, .. } => channel_id,
        }
    }
    fn lane(&self) -> LaneKind {
        match self {
            Self::Create { .. } => LaneKind::Create,
            Self::Edit { .. } => LaneKind::Edit,
        }
    }
    fn message_id(&self) -> Option<&str> {
        match self {
            Self::Create { .. } => None,
            Self::Edit { message_id, .. } => Some(message_id),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Edit { .. } => "edit",
        }
    }
}

/// Why an operation was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Discord (or the way there) failed; see [`DiscordError::is_retryable`].
    #[error(transparent)]
    Discord(#[from] DiscordError),
    /// The queue shut down before the operation was answered.
    #[error("the Discord queue shut down before the operation was delivered")]
    ShutDown,
    /// The queue had no room ([`Delivery::submit`] only).
    #[error("the Discord queue is full")]
    Full,
}

impl DeliveryError {
    /// Whether the owner should requeue it later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Discord(e) => e.is_retryable(),
            Self::ShutDown | Self::Full => true,
        }
    }
}

/// The queue refused an operation; it is handed back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Rejected {
    /// The queue is full ([`Delivery::try_enqueue`] only).
    #[error("the Discord queue is full")]
    Full(Box<Op>),
    /// The queue is shutting down.
    #[error("the Discord queue is shut down")]
    Closed(Box<Op>),
}

/// The answer to one enqueued operation.
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<Message, DeliveryError>>,
}

impl Pending {
    /// Waits for the answer.
    pub async fn wait(self) -> Result<Message, DeliveryError> {
        self.rx.await.unwrap_or(Err(DeliveryError::ShutDown))
    }
}

/// Queue sizes.
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    /// Operations that may wait (not counting in-flight ones).
    pub capacity: usize,
    /// Operations sent (or waiting on rate limits) concurrently.
    pub max_in_flight: usize,
    /// Edits of different messages of one channel in flight at once (one per message).
    pub max_edits_per_channel: usize,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_in_flight: 128,
            max_edits_per_channel: 5,
        }
    }
}

/// What [`Delivery::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether everything finished before the deadline.
    pub drained: bool,
    /// Operations answered with [`DeliveryError::ShutDown`].
    pub handed_back: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LaneKind {
    Create,
    Edit,
}

type LaneKey = (String, LaneKind);

/// Called once with an operation's answer, on the queue's task (keep it
/// short: record the answer and wake whoever needs it).
pub type OnDone = Box<dyn FnOnce(Result<Message, DeliveryError>) + Send>;

/// Where an answer goes.
enum Reply {
    Channel(oneshot::Sender<Result<Message, DeliveryError>>),
    Callback(OnDone),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Channel(_) => "Channel",
            Self::Callback(_) => "Callback",
        })
    }
}

impl Reply {
    fn send(self, result: Result<Message, DeliveryError>) {
        match self {
            // The owner may have stopped waiting; nothing else to do then.
            Self::Channel(tx) => {
                let _ = tx.send(result);
            }
            Self::Callback(f) => f(result),
        }
    }
}

#[derive(Debug)]
struct Waiter {
    tx: Reply,
    enqueued: Instant,
    superseded: bool,
}

/// How long a created message's rank is remembered for its edits.
pub const RANK_TTL: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Job {
    op: Op,
    /// Rank for global tokens (older first): see the module docs.
    rank: Instant,
    waiters: Vec<Waiter>,
    /// Queue capacity held while waiting; released when dispatched.
    slot: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, Default)]
struct Lane {
    jobs: VecDeque<Job>,
    in_flight: usize,
    /// Edit lanes: messages with an edit in flight.
    busy_messages: HashSet<String>,
    /// Whether the lane is in `State::ready`.
    scheduled: bool,
}

impl Lane {
    /// The next job that may start: creates one at a time; edits one per
    /// message, up to `max_edits` at once.
    fn next_index(&self, kind: LaneKind, max_edits: usize) -> Option<usize> {
        match kind {
            LaneKind::Create => (self.in_flight == 0 && !self.jobs.is_empty()).then_some(0),
            LaneKind::Edit if self.in_flight >= max_edits => None,
            LaneKind::Edit => self.jobs.iter().position(|j| {
                !self
                    .busy_messages
                    .contains(j.op.message_id().unwrap_or_default())
            }),
        }
    }
}

/// Ranks of created messages, for their edits; entries expire after [`RANK_TTL`].
#[derive(Debug, Default)]
struct Ranks {
    by_message: HashMap<String, Instant>,
    /// (recorded at, message), oldest first.
    expiry: VecDeque<(Instant, String)>,
}

impl Ranks {
    fn record(&mut self, message_id: &str, rank: Instant, now: Instant) {
        self.expire(now);
        self.by_message.insert(message_id.to_owned(), rank);
        self.expiry.push_back((now, message_id.to_owned()));
    }

    /// The rank of an edit of `message_id` enqueued at `now`.
    fn for_edit(&mut self, message_id: &str, now: Instant) -> Instant {
        self.expire(now);
        self.by_message
            .get(message_id)
            .map_or(now, |r| (*r).min(now))
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if now.duration_since(*at) < RANK_TTL {
                break;
            }
            if let Some((_, m)) = self.expiry.pop_front() {
                self.by_message.remove(&m);
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    max_edits: usize,
    ranks: Ranks,
    lanes: HashMap<LaneKey, Lane>,
    ready: VecDeque<LaneKey>,
    queued: usize,
    in_flight: usize,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
    capacity: Arc<Semaphore>,
    in_flight: Arc<Semaphore>,
    client: DiscordClient,
    cancel: CancellationToken,
}

impl State {
    /// Puts a lane at the back of the round-robin if it has work that may start.
    fn schedule(&mut self, key: &LaneKey) {
        let max_edits = self.max_edits;
        if let Some(lane) = self.lanes.get_mut(key)
            && !lane.scheduled
            && lane.next_index(key.1, max_edits).is_some()
        {
            lane.scheduled = true;
            self.ready.push_back(key.clone());
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }
}

/// The queue handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Delivery {
    shared: Arc<Shared>,
}

impl Delivery {
    /// Starts the dispatcher on the current runtime (see [`Self::new`] to
    /// own the dispatcher task).
    pub fn start(client: DiscordClient, options: QueueOptions) -> Self {
        let (delivery, dispatcher) = Self::new(client, options);
        tokio::spawn(dispatcher);
        delivery
    }

    /// The queue and its dispatcher, for the caller to run; the dispatcher
    /// ends once [`Self::shutdown`] has drained (or given up on) the queue.
    pub fn new(
        client: DiscordClient,
        options: QueueOptions,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                max_edits: options.max_edits_per_channel.max(1),
                ..State::default()
            }),
            changed: Notify::new(),
            capacity: Arc::new(Semaphore::new(options.capacity.max(1))),
            in_flight: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            client,
            cancel: CancellationToken::new(),
        });
        (
            Self {
                shared: shared.clone(),
            },
            dispatch(shared),
        )
    }

    /// Adds an operation, waiting while the queue is full.
    pub async fn enqueue(&self, op: Op) -> Result<Pending, Rejected> {
        match self.shared.capacity.clone().acquire_owned().await {
            Ok(slot) => self.push(op, slot),
            Err(_) => Err(Rejected::Closed(Box::new(op))),
        }
    }

    /// Adds an operation if there is room now.
    pub fn try_enqueue(&self, op: Op) -> Result<Pending, Rejected> {
        match self.shared.capacity.clone().try_acquire_owned() {
            Ok(slot) => self.push(op, slot),
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(Rejected::Full(Box::new(op))),
            Err(tokio::sync::TryAcquireError::Closed) => Err(Rejected::Closed(Box::new(op))),
        }
    }

    /// Adds an operation for an owner that does not wait: `on_done` gets
    /// its answer, exactly once (see [`OnDone`]) — at once with
    /// [`DeliveryError::Full`] or [`DeliveryError::ShutDown`] when there is
    /// no room now.
    pub fn submit(&self, op: Op, on_done: OnDone) {
        let refused = match self.shared.capacity.clone().try_acquire_owned() {
            Ok(slot) => match self.push_reply(op, slot, Reply::Callback(on_done)) {
                Ok(()) => return,
                Err((_, reply)) => {
                    reply.send(Err(DeliveryError::ShutDown));
                    return;
                }
            },
            Err(tokio::sync::TryAcquireError::NoPermits) => DeliveryError::Full,
            Err(tokio::sync::TryAcquireError::Closed) => DeliveryError::ShutDown,
        };
        on_done(Err(refused));
    }

    fn push(&self, op: Op, slot: OwnedSemaphorePermit) -> Result<Pending, Rejected> {
        let (tx, rx) = oneshot::channel();
        self.push_reply(op, slot, Reply::Channel(tx))
            .map_err(|(rejected, _)| rejected)?;
        Ok(Pending { rx })
    }

    /// Queues `op` (coalescing an edit into one waiting for the same
    /// message); a refused op comes back with its reply, unanswered.
    fn push_reply(
        &self,
        op: Op,
        slot: OwnedSemaphorePermit,
        tx: Reply,
    ) -> Result<(), (Rejected, Reply)> {
        let now = Instant::now();
        let waiter = Waiter {
            tx,
            enqueued: now,
            superseded: false,
        };
        let mut st = self.shared.lock();
        if st.closed {
            return Err((Rejected::Closed(Box::new(op)), waiter.tx));
        }
        let rank = match op.message_id() {
            Some(m) => st.ranks.for_edit(m, now),
            None => now,
        };
        let key: LaneKey = (op.channel().to_owned(), op.lane());
        let lane = st.lanes.entry(key.clone()).or_default();
        if let Op::Edit {
            message_id,
            payload,
            ..
        } = &op
        {
            let waiting = lane
                .jobs
                .iter_mut()
                .find(|j| matches!(&j.op, Op::Edit { message_id: m, .. } if m == message_id));
            if let Some(job) = waiting {
                // Coalesce: the newest content wins; the slot of the new op is released at once.
                if let Op::Edit { payload: old, .. } = &mut job.op {
                    *old = payload.clone();
                }
                for w in &mut job.waiters {
                    w.superseded = true;
                }
                job.waiters.push(waiter);
                return Ok(());
            }
        }
        lane.jobs.push_back(Job {
            op,
            rank,
            waiters: vec![waiter],
            slot: Some(slot),
        });
        st.schedule(&key);
        st.queued += 1;
        self.shared.client.metrics().set_queue_depth(st.queued);
        drop(st);
        self.shared.changed.notify_waiters();
        Ok(())
    }

    /// Operations waiting (not in flight).
    pub fn depth(&self) -> usize {
        self.shared.lock().queued
    }

    /// Stops intake, lets queued and in-flight work finish for up to
    /// `deadline`, then answers what is left with [`DeliveryError::ShutDown`].
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let shared = &self.shared;
        shared.lock().closed = true;
        shared.capacity.close();
        shared.changed.notify_waiters();
        let end = Instant::now() + deadline;
        let drained = loop {
            let notified = shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = shared.lock();
                if st.queued == 0 && st.in_flight == 0 {
                    break true;
                }
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(end) => break false,
            }
        };
        let mut handed_back = 0;
        if !drained {
            let mut st = shared.lock();
            handed_back += st.in_flight;
            let lanes = std::mem::take(&mut st.lanes);
            st.ready.clear();
            st.queued = 0;
            shared.client.metrics().set_queue_depth(0);
            drop(st);
            shared.cancel.cancel();
            for (_, lane) in lanes {
                for job in lane.jobs {
                    handed_back += 1;
                    answer(
                        shared,
                        job.op.kind(),
                        job.waiters,
                        Err(DeliveryError::ShutDown),
                    );
                }
            }
        }
        shared.cancel.cancel();
        ShutdownReport {
            drained,
            handed_back,
        }
    }
}

fn answer(
    shared: &Shared,
    kind: &'static str,
    waiters: Vec<Waiter>,
    result: Result<Message, DeliveryError>,
) {
    let metrics = shared.client.metrics();
    for w in waiters {
        let outcome = match &result {
            Ok(_) if w.superseded => "coalesced",
            Ok(_) => "ok",
            Err(DeliveryError::ShutDown) => "shutdown",
            Err(e) if e.is_retryable() => "retryable_error",
            Err(_) => "permanent_error",
        };
        metrics.operation(kind, outcome, w.enqueued.elapsed().as_secs_f64());
        w.tx.send(result.clone());
    }
}

async fn dispatch(shared: Arc<Shared>) {
    loop {
        let Ok(slot) = shared.in_flight.clone().acquire_owned().await else {
            return;
        };
        let (key, job) = loop {
            let notified = shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = shared.lock();
                if let Some(key) = st.ready.pop_front() {
                    let max_edits = st.max_edits;
                    let job = st.lanes.get_mut(&key).and_then(|lane| {
                        lane.scheduled = false;
                        let job = lane.jobs.remove(lane.next_index(key.1, max_edits)?)?;
                        lane.in_flight += 1;
                        if let Some(m) = job.op.message_id() {
                            lane.busy_messages.insert(m.to_owned());
                        }
                        Some(job)
                    });
                    // Back of the line: other channels go first.
                    st.schedule(&key);
                    if let Some(mut job) = job {
                        job.slot = None;
                        st.queued -= 1;
                        st.in_flight += 1;
                        shared.client.metrics().set_queue_depth(st.queued);
                        break (key, job);
                    }
                    continue;
                }
                if st.closed && st.queued == 0 && st.in_flight == 0 {
                    return;
                }
            }
            tokio::select! {
                () = notified => {}
                () = shared.cancel.cancelled() => return,
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            run(&shared, key, job).await;
            drop(slot);
        });
    }
}

async fn run(shared: &Arc<Shared>, key: LaneKey, job: Job) {
    let metrics = shared.client.metrics().clone();
    metrics.in_flight_inc();
    let client = &shared.client;
    let call = async {
        match &job.op {
            Op::Create {
                channel_id,
                nonce,
                payload,
            } => {
                client
                    .create_message_ranked(channel_id, nonce, payload, job.rank)
                    .await
            }
            Op::Edit {
                channel_id,
                message_id,
                payload,
            } => {
                client
                    .edit_message_ranked(channel_id, message_id, payload, job.rank)
                    .await
            }
        }
    };
    let result = tokio::select! {
        r = call => r.map_err(DeliveryError::from),
        () = shared.cancel.cancelled() => Err(DeliveryError::ShutDown),
    };
    metrics.in_flight_dec();
    let Job {
        op, waiters, rank, ..
    } = job;
    if let (Op::Create { .. }, Ok(message)) = (&op, &result) {
        // Record before answering: the owner's first edit must find it.
        shared
            .lock()
            .ranks
            .record(&message.id, rank, Instant::now());
    }
    answer(shared, op.kind(), waiters, result);
    let mut st = shared.lock();
    st.in_flight -= 1;
    if let Some(lane) = st.lanes.get_mut(&key) {
        lane.in_flight -= 1;
        if let Some(m) = op.message_id() {
            lane.busy_messages.remove(m);
        }
        if lane.jobs.is_empty() && lane.in_flight == 0 {
            st.lanes.remove(&key);
        } else {
            st.schedule(&key);
        }
    }
    drop(st);
    shared.changed.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn edits_inherit_their_creates_rank_until_it_expires() {
        let mut ranks = Ranks::default();
        let created = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        ranks.record("111", created, Instant::now());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        // The edit of a created message ranks with its create; others by their own time.
        assert_eq!(ranks.for_edit("111", now), created);
        assert_eq!(ranks.for_edit("222", now), now);
        // Forgotten after RANK_TTL (counted from the create's answer).
        tokio::time::sleep(RANK_TTL).await;
        let later = Instant::now();
        assert_eq!(ranks.for_edit("111", later), later);
        assert!(ranks.by_message.is_empty() && ranks.expiry.is_empty());
    }
}
