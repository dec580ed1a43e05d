//! The reconciler's work queue (controller-runtime's design): a key is in the
//! queue at most once however often it is marked dirty, at most one worker
//! holds a key at a time, a key marked dirty while held is run again after
//! the holder finishes, and failures come back after a delay.
//!
//! Nothing is dropped: a key leaves the queue only when a worker takes it,
//! and a worker must [`WorkQueue::done`] or [`WorkQueue::retry_after`] it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A de-duplicating, per-key exclusive work queue with delayed retries.
#[derive(Debug)]
pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    notify: Notify,
}

#[derive(Debug)]
struct Inner<K> {
    /// Ready keys in order.
    queue: VecDeque<K>,
    /// Keys waiting (in `queue` or to be re-queued when their holder is done), with when they became dirty.
    dirty: HashMap<K, Instant>,
    /// Keys a worker holds.
    processing: HashSet<K>,
    /// Delayed keys by due time.
    delayed: BTreeMap<(Instant, u64), K>,
    /// Due time of each delayed key (a key is delayed at most once).
    delayed_at: HashMap<K, (Instant, u64)>,
    /// Failures in a row of each key (kube-runtime keeps retry state in the
    /// queue too): whichever worker takes the key next continues its backoff.
    failures: HashMap<K, u32>,
    seq: u64,
    shutdown: bool,
    /// Keys stay queued but are not handed out (a standby).
    paused: bool,
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                dirty: HashMap::new(),
                processing: HashSet::new(),
                delayed: BTreeMap::new(),
                delayed_at: HashMap::new(),
                failures: HashMap::new(),
                seq: 0,
                shutdown: false,
                paused: false,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        crate::sync::lock(&self.inner)
    }

    /// Marks `key` dirty: it will be handed to a worker once (now, or after
    /// its current holder is done). A pending delayed retry is superseded.
    pub fn add(&self, key: K) {
        let mut g = self.lock();
        if g.shutdown {
            return;
        }
        if let Some(at) = g.delayed_at.remove(&key) {
            g.delayed.remove(&at);
        }
        Self::mark(&mut g, key);
        drop(g);
        self.notify.notify_one();
    }

    fn mark(g: &mut Inner<K>, key: K) {
        if g.dirty.contains_key(&key) {
            return;
        }
        g.dirty.insert(key.clone(), Instant::now());
        if !g.processing.contains(&key) {
            g.queue.push_back(key);
        }
    }

    /// Adds `key` after `delay`, unless it becomes dirty sooner.
    pub fn add_after(&self, key: K, delay: Duration) {
        let mut g = self.lock();
        if g.shutdown || g.dirty.contains_key(&key) {
            return;
        }
        let due = Instant::now() + delay;
        if let Some(at) = g.delayed_at.get(&key).copied() {
            if at.0 <= due {
                return;
            }
            g.delayed.remove(&at);
        }
        g.seq += 1;
        let at = (due, g.seq);
        g.delayed.insert(at, key.clone());
        g.delayed_at.insert(key, at);
        drop(g);
        self.notify.notify_one();
    }

    /// Moves delayed keys whose time has come into the queue; returns the next due time.
    fn promote(g: &mut Inner<K>, now: Instant) -> Option<Instant> {
        while let Some((&at, _)) = g.delayed.iter().next() {
            if at.0 > now {
                return Some(at.0);
            }
            if let Some(key) = g.delayed.remove(&at) {
                g.delayed_at.remove(&key);
                Self::mark(g, key);
            }
        }
        None
    }

    /// Waits for a key and takes it. `None` once the queue is shut down and empty.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            let next_due = {
                let mut g = self.lock();
                let next_due = Self::promote(&mut g, Instant::now());
                if g.paused {
                    // A standby shutting down leaves its keys to the leader.
                    if g.shutdown {
                        return None;
                    }
                    // Woken by `set_paused(false)`.
                    None
                } else {
                    if let Some(key) = g.queue.pop_front() {
                        g.dirty.remove(&key);
                        g.processing.insert(key.clone());
                        if !g.queue.is_empty() {
                            self.notify.notify_one();
                        }
                        return Some(key);
                    }
                    if g.shutdown {
                        return None;
                    }
                    next_due
                }
            };
            match next_due {
                Some(due) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The worker finished `key`. If it was marked dirty meanwhile it is queued again.
    pub fn done(&self, key: &K) {
        let mut g = self.lock();
        g.processing.remove(key);
        if g.dirty.contains_key(key) && !g.shutdown {
            g.queue.push_back(key.clone());
            drop(g);
            self.notify.notify_one();
        }
    }

    /// The worker failed on `key`: release it and try again after `delay`
    /// (sooner if it is marked dirty meanwhile).
    pub fn retry_after(&self, key: &K, delay: Duration) {
        {
            let mut g = self.lock();
            g.processing.remove(key);
            if g.dirty.contains_key(key) {
                g.queue.push_back(key.clone());
                drop(g);
                self.notify.notify_one();
                return;
            }
        }
        self.add_after(key.clone(), delay);
    }

    /// Holds every key back (`true`) or hands them out again: a standby
    /// keeps its queue but works on nothing.
    pub fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Counts a failure of `key`; returns how many came before it in a row.
    pub fn failure(&self, key: &K) -> u32 {
        let mut g = self.lock();
        let n = g.failures.entry(key.clone()).or_insert(0);
        let before = *n;
        *n = n.saturating_add(1);
        before
    }

    /// `key` succeeded: its next failure starts a new backoff.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// Keys waiting to run now (not counting delayed ones).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether nothing waits to run now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys waiting for a retry.
    pub fn delayed_len(&self) -> usize {
        self.lock().delayed.len()
    }

    /// Keys held by workers.
    pub fn in_flight(&self) -> usize {
        self.lock().processing.len()
    }

    /// How long the oldest dirty key has waited.
    pub fn oldest_age(&self) -> Duration {
        let g = self.lock();
        let now = Instant::now();
        g.dirty
            .values()
            .map(|t| now.saturating_duration_since(*t))
            .max()
            .unwrap_or_default()
    }

    /// Stops handing out new work once the ready keys are drained; wakes all waiters.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn dedups_and_orders() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
        assert_eq!(q.in_flight(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_held_by_one_worker_and_rerun_if_dirtied() {
        let q = WorkQueue::new();
        q.add(1);
        let k = q.next().await;
        assert_eq!(k, Some(1));
        q.add(1); // dirtied while held: not handed out again yet
        assert!(q.is_empty());
        let waiter = tokio::time::timeout(Duration::from_millis(50), q.next()).await;
        assert!(waiter.is_err(), "key handed out twice at once");
        q.done(&1);
        assert_eq!(q.next().await, Some(1), "re-run after the holder finished");
        q.done(&1);
        assert!(q.is_empty());
        assert_eq!(q.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_come_back_after_the_delay() {
        let q = WorkQueue::new();
        q.add("x");
        let k = q.next().await.expect("key");
        q.retry_after(&k, Duration::from_secs(5));
        assert_eq!(q.delayed_len(), 1);
        let start = Instant::now();
        assert_eq!(q.next().await, Some("x"));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_beats_a_pending_retry() {
        let q = WorkQueue::new();
        q.add("x");
        let k = q.next().await.expect("key");
        q.retry_after(&k, Duration::from_secs(60));
        q.add("x");
        assert_eq!(q.delayed_len(), 0);
        let start = Instant::now();
        assert_eq!(q.next().await, Some("x"));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_of_a_key_dirtied_meanwhile_runs_at_once() {
        let q = WorkQueue::new();
        q.add("x");
        let k = q.next().await.expect("key");
        q.add("x");
        q.retry_after(&k, Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(q.next().await, Some("x"));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_queue_keeps_its_keys_and_hands_them_out_when_resumed() {
        let q = Arc::new(WorkQueue::new());
        q.set_paused(true);
        q.add("a");
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiter.is_finished(), "nothing handed out while paused");
        assert_eq!(q.len(), 1);
        q.set_paused(false);
        assert_eq!(waiter.await.expect("join"), Some("a"));
    }

    #[test]
    fn failures_count_per_key_until_forgotten() {
        let q = WorkQueue::new();
        assert_eq!(
            (q.failure(&"a"), q.failure(&"a"), q.failure(&"b")),
            (0, 1, 0)
        );
        q.forget(&"a");
        assert_eq!((q.failure(&"a"), q.failure(&"b")), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn earliest_delay_wins() {
        let q = WorkQueue::new();
        q.add_after("x", Duration::from_secs(10));
        q.add_after("x", Duration::from_secs(3));
        q.add_after("x", Duration::from_secs(20));
        assert_eq!(q.delayed_len(), 1);
        let start = Instant::now();
        assert_eq!(q.next().await, Some("x"));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn oldest_age_tracks_waiting_keys() {
        let q = WorkQueue::new();
        q.add("a");
        tokio::time::advance(Duration::from_secs(7)).await;
        q.add("b");
        assert_eq!(q.oldest_age(), Duration::from_secs(7));
        let _ = q.next().await;
        assert_eq!(q.oldest_age(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_then_ends() {
        let q = Arc::new(WorkQueue::new());
        q.add(1);
        q.shutdown();
        q.add(2);
        assert_eq!(q.next().await, Some(1));
        assert_eq!(q.next().await, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_workers_never_share_a_key() {
        let q: Arc<WorkQueue<u32>> = Arc::new(WorkQueue::new());
        let held = Arc::new(Mutex::new(HashSet::new()));
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (q, held, runs) = (q.clone(), held.clone(), runs.clone());
            workers.push(tokio::spawn(async move {
                while let Some(k) = q.next().await {
                    assert!(held.lock().expect("lock").insert(k), "key {k} held twice");
                    tokio::task::yield_now().await;
                    held.lock().expect("lock").remove(&k);
                    runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    q.done(&k);
                }
            }));
        }
        for round in 0..200u32 {
            q.add(round % 10);
            if round % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        while !(q.is_empty() && q.in_flight() == 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        q.shutdown();
        for w in workers {
            w.await.expect("worker");
        }
        let n = runs.load(std::sync::atomic::Ordering::Relaxed);
        assert!((10..=200).contains(&n), "{n} runs");
    }
}
