//! Every long-lived task of the service, owned in one place.
//!
//! [`Tasks::spawn`] names a task and tracks it; a task that panics is logged
//! with its name and adds a `tasks` readiness component that is not ready (a
//! load balancer stops sending to a replica that lost part of itself), and
//! [`Tasks::shutdown`] waits for every task within a deadline and aborts,
//! naming them, those still running after it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;

use crate::readiness::Readiness;
use crate::sync::lock;

/// The set of the service's tasks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tracker: TaskTracker,
    readiness: Readiness,
    /// Running tasks by id, with their names (for shutdown).
    running: Mutex<BTreeMap<u64, (&'static str, AbortHandle)>>,
    next: Mutex<u64>,
}

/// Resolves when a task spawned by [`Tasks::spawn`] has ended.
#[derive(Debug)]
pub struct Ended(tokio::sync::oneshot::Receiver<()>);

impl Ended {
    /// Waits for the end.
    pub async fn wait(self) {
        let _ = self.0.await;
    }
}

/// What [`Tasks::shutdown`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Tasks aborted because they were still running at the deadline.
    pub aborted: Vec<&'static str>,
}

impl Tasks {
    /// An empty set; a panic shows in `readiness`.
    pub fn new(readiness: &Readiness) -> Self {
        Self {
            inner: Arc::new(Inner {
                tracker: TaskTracker::new(),
                readiness: readiness.clone(),
                running: Mutex::new(BTreeMap::new()),
                next: Mutex::new(0),
            }),
        }
    }

    /// Runs `task` on the runtime as `name`, owned by this set; the
    /// returned [`Ended`] resolves when it ends (however it ends).
    pub fn spawn<F>(&self, name: &'static str, task: F) -> Ended
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = {
            let mut next = lock(&self.inner.next);
            *next += 1;
            *next
        };
        let handle = tokio::spawn(task);
        lock(&self.inner.running).insert(id, (name, handle.abort_handle()));
        let inner = self.inner.clone();
        let (done, ended_rx) = tokio::sync::oneshot::channel();
        self.inner.tracker.spawn(async move {
            let ended = handle.await;
            lock(&inner.running).remove(&id);
            let _ = done.send(());
            match ended {
                Ok(()) => tracing::debug!(task = name, "task ended"),
                Err(e) if e.is_panic() => {
                    let panic = e.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".to_owned());
                    tracing::error!(task = name, panic = %message, "a task of the service panicked; restart the service");
                    inner
                        .readiness
                        .register("tasks", format!("task {name} panicked: {message}"));
                }
                // Aborted by `shutdown`.
                Err(_) => {}
            }
        });
        Ended(ended_rx)
    }

    /// Names of the tasks running now.
    pub fn running(&self) -> Vec<&'static str> {
        lock(&self.inner.running)
            .values()
            .map(|(n, _)| *n)
            .collect()
    }

    /// Waits up to `deadline` for every task to end (they must have been
    /// told to stop), then aborts the rest. No new task may be spawned after.
    pub async fn shutdown(&self, deadline: Duration) -> Stopped {
        self.inner.tracker.close();
        let aborted = if tokio::time::timeout(deadline, self.inner.tracker.wait())
            .await
            .is_ok()
        {
            Vec::new()
        } else {
            let left: Vec<_> = lock(&self.inner.running).values().cloned().collect();
            for (_, h) in &left {
                h.abort();
            }
            let names: Vec<&'static str> = left.iter().map(|(n, _)| *n).collect();
            tracing::warn!(tasks = ?names, "tasks still running at the end of the shutdown deadline; aborted");
            self.inner.tracker.wait().await;
            names
        };
        Stopped { aborted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_flips_readiness_and_names_itself() {
        let readiness = Readiness::new();
        readiness.register("component", "").set_ready();
        let tasks = Tasks::new(&readiness);
        assert!(readiness.is_ready());
        tasks.spawn("doomed", async { panic!("boom") });
        let mut rx = readiness.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|ready| !ready))
            .await
            .expect("readiness flips")
            .expect("open");
        let report = readiness.report();
        let reason = report.components["tasks"]
            .reason
            .clone()
            .unwrap_or_default();
        assert!(
            reason.contains("doomed") && reason.contains("boom"),
            "{reason}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_tasks_then_aborts_stragglers() {
        let readiness = Readiness::new();
        readiness.register("component", "").set_ready();
        let tasks = Tasks::new(&readiness);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        tasks.spawn("quick", async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            d.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        tasks.spawn("stuck", std::future::pending());
        assert_eq!(tasks.running().len(), 2);
        let stopped = tasks.shutdown(Duration::from_secs(5)).await;
        assert!(
            done.load(std::sync::atomic::Ordering::SeqCst),
            "waited for the quick one"
        );
        assert_eq!(stopped.aborted, vec!["stuck"]);
        assert!(tasks.running().is_empty());
        assert!(readiness.is_ready(), "an abort is no panic");
    }
}
