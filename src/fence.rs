//! The send fence: whether this replica may send to Discord now. Replicas
//! share one bot's limits, so only the holder of the leader lease sends; the
//! lease (the `lease` module) opens the fence until a deadline that falls
//! safely before its lease can run out on the Auth Service, and closes it
//! when the lease is lost or given up. The Discord client passes the fence
//! right before each HTTP request ([`Fence::enter`]) and holds a guard while
//! the request is on its way, so a closing replica can wait for its last
//! requests to finish before it lets another one lead.
//!
//! Without a lease (`[lease] mode = "off"`, or no permission) the fence
//! stays open: every replica sends, as before leases existed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The fence. Cheap to clone; every clone is the same fence.
#[derive(Debug, Clone, Default)]
pub struct Fence {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    drained: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// `None`: open for good; `Some(t)`: open until `t` (closed once past).
    until: Option<Instant>,
    /// Requests on their way.
    in_flight: usize,
}

/// Held while a request is on its way to Discord.
#[derive(Debug)]
pub struct Pass {
    fence: Fence,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut st = crate::sync::lock(&self.fence.inner.state);
        st.in_flight = st.in_flight.saturating_sub(1);
        if st.in_flight == 0 {
            self.fence.inner.drained.notify_waiters();
        }
    }
}

impl Fence {
    /// A fence that is open (no lease involved).
    pub fn open() -> Self {
        Self::default()
    }

    /// A fence that is closed until a lease opens it.
    pub fn closed() -> Self {
        let f = Self::default();
        f.close();
        f
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.inner.state)
    }

    /// Opens the fence for good (no lease).
    pub fn open_for_good(&self) {
        self.state().until = None;
    }

    /// Opens the fence until `deadline` (a lease acquired or renewed).
    pub fn open_until(&self, deadline: Instant) {
        self.state().until = Some(deadline);
    }

    /// Closes the fence now.
    pub fn close(&self) {
        // A deadline in the past; `Instant` cannot go below its origin, so
        // "now" is as far back as needed.
        self.state().until = Some(Instant::now());
    }

    /// Whether a request may start now.
    pub fn is_open(&self) -> bool {
        self.state().until.is_none_or(|t| Instant::now() < t)
    }

    /// Lets a request through if the fence is open now; the request must
    /// hold the pass until it is answered.
    pub fn enter(&self) -> Option<Pass> {
        let mut st = self.state();
        if st.until.is_some_and(|t| Instant::now() >= t) {
            return None;
        }
        st.in_flight += 1;
        Some(Pass {
            fence: self.clone(),
        })
    }

    /// Requests on their way now.
    pub fn in_flight(&self) -> usize {
        self.state().in_flight
    }

    /// Closes the fence and waits, at most `limit`, for the requests on
    /// their way to be answered. Returns whether they all were.
    pub async fn close_and_drain(&self, limit: Duration) -> bool {
        self.close();
        let end = Instant::now() + limit;
        loop {
            let notified = self.inner.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(end) => return self.in_flight() == 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn open_until_a_deadline_then_closed() {
        let f = Fence::closed();
        assert!(f.enter().is_none());
        f.open_until(Instant::now() + Duration::from_secs(2));
        assert!(f.enter().is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!f.is_open());
        assert!(f.enter().is_none(), "past the deadline nothing starts");
        f.open_for_good();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(f.enter().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn closing_waits_for_requests_on_their_way() {
        let f = Fence::open();
        let pass = f.enter().expect("open");
        assert_eq!(f.in_flight(), 1);
        let g = f.clone();
        let closer = tokio::spawn(async move { g.close_and_drain(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(f.enter().is_none(), "closed while draining");
        assert!(!closer.is_finished(), "waits for the request");
        drop(pass);
        assert!(closer.await.expect("join"), "drained");
        // A request that never ends is waited for only so long.
        f.open_for_good();
        let _stuck = f.enter().expect("open");
        assert!(!f.close_and_drain(Duration::from_secs(1)).await);
    }
}
