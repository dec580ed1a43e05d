//! The leader lease: Discord's limits belong to the bot, not to a process,
//! so of N replicas only the one holding a Teleport semaphore lease sends.
//! The others keep their watch and their observed state warm and take over
//! when the lease lapses or is released.
//!
//! The [`Elector`] tries to acquire the semaphore (`MaxLeases = 1`, kind
//! [`SEMAPHORE_KIND`], name [`SEMAPHORE_NAME`]) while it stands by, renews it
//! while it leads, and drives the [`Fence`]: open until [`Timing::deadline`]
//! after each successful acquire or renewal — a point safely before the
//! lease can have run out on the Auth Service's clock, allowing for clock
//! skew and an RPC in flight — and closed at once when the lease is lost.
//! So even a replica whose renewals hang stops sending in time. On shutdown
//! it closes the fence, waits briefly for requests on their way, and cancels
//! the lease so a standby takes over at once.
//!
//! A role that may not use semaphores runs in [`Role::Solo`] (mode `auto`:
//! one warning naming the rule; every replica sends, with the owner
//! hand-off), as does mode `off`. Mode `lease` never sends without the lease.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::LeaseMode;
use crate::fence::Fence;

/// Semaphore kind: ours alone (Teleport's own kinds are `connection` and
/// the like).
pub const SEMAPHORE_KIND: &str = "teleport-discord";
/// Semaphore name: one leader per cluster (and per bot).
pub const SEMAPHORE_NAME: &str = "leader";

/// What this replica does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No lease (mode `off`, or no permission): sends, as every replica does.
    Solo,
    /// Holds the lease: the only replica that sends.
    Leader,
    /// Watches and waits for the lease; sends nothing.
    Standby,
}

impl Role {
    /// As shown in `/readyz` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Solo => "solo",
            Self::Leader => "leader",
            Self::Standby => "standby",
        }
    }

    /// Whether this replica sends to Discord and reconciles.
    pub fn acts(self) -> bool {
        self != Self::Standby
    }
}

/// Why a lease call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    /// Another replica holds the lease.
    #[error("another replica holds the lease")]
    Held,
    /// The lease is gone (expired or cancelled); it cannot be renewed.
    #[error("the lease is gone: {0}")]
    Lost(String),
    /// The role may not use semaphores.
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// Anything else (Teleport unreachable, contention, ...).
    #[error("{0}")]
    Other(String),
}

/// The lease through Teleport's semaphores (implemented by the Teleport
/// adapter).
pub trait LeasePort: Send + Sync + 'static {
    /// A held lease.
    type Lease: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// `AcquireSemaphore` with `MaxLeases = 1`, expiring at `expires`.
    fn acquire(
        &self,
        expires: SystemTime,
        holder: &str,
    ) -> impl Future<Output = Result<Self::Lease, LeaseError>> + Send;
    /// `KeepAliveSemaphoreLease`: the lease now expires at `expires`.
    fn renew(
        &self,
        lease: &Self::Lease,
        expires: SystemTime,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;
    /// `CancelSemaphoreLease`; `expires` is the lease's current expiry (as
    /// last set: Teleport refuses a cancel that names a past one).
    fn release(
        &self,
        lease: &Self::Lease,
        expires: SystemTime,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;
}

/// The lease's schedule, from its time to live (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long each acquire or renewal extends the lease.
    pub ttl: Duration,
}

impl Timing {
    /// Renew this long after the last successful acquire or renewal was
    /// sent: a third of the TTL, so two renewals can fail before sending
    /// stops.
    pub fn renew_after(self) -> Duration {
        self.ttl / 3
    }

    /// How long before the lease runs out (on our clock, counted from when
    /// the call that set it was sent) we stop sending: a quarter of the TTL,
    /// at least 1 s, for clock skew between us and the Auth Service and a
    /// request to Discord still on its way.
    pub fn margin(self) -> Duration {
        (self.ttl / 4).max(Duration::from_secs(1)).min(self.ttl / 2)
    }

    /// Until when a lease set by a call sent at `sent` lets us send.
    pub fn deadline(self, sent: Instant) -> Instant {
        sent + self.ttl - self.margin()
    }

    /// Between two renewal attempts after a failure.
    pub fn retry_after(self) -> Duration {
        (self.ttl / 16).max(Duration::from_millis(200))
    }

    /// How often a standby asks for the lease: often enough that a released
    /// lease is taken within half a second; `jitter` in [0, 1) spreads the
    /// standbys out.
    pub fn poll(self, jitter: f64) -> Duration {
        let base = Duration::from_millis(400).min(self.ttl / 4);
        base + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// What the elector reports: the role, and how often it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// The current role.
    pub role: Role,
    /// Times this replica started or stopped leading.
    pub transitions: u64,
}

/// Runs the lease for one replica.
#[derive(Debug)]
pub struct Elector<P> {
    port: P,
    holder: String,
    mode: LeaseMode,
    timing: Timing,
    fence: Fence,
    role: watch::Sender<Leadership>,
}

/// How long a leader leaving waits for its requests on their way.
pub const DRAIN_ON_RELEASE: Duration = Duration::from_secs(2);

impl<P: LeasePort> Elector<P> {
    /// An elector for `holder` (this replica's name). With mode `off` it
    /// opens the fence for good and ends at once when run.
    pub fn new(port: P, holder: String, mode: LeaseMode, ttl: Duration, fence: Fence) -> Self {
        let initial = match mode {
            LeaseMode::Off => Role::Solo,
            _ => Role::Standby,
        };
        let (role, _) = watch::channel(Leadership {
            role: initial,
            transitions: 0,
        });
        if initial == Role::Solo {
            fence.open_for_good();
        } else {
            fence.close();
        }
        Self {
            port,
            holder,
            mode,
            timing: Timing { ttl },
            fence,
            role,
        }
    }

    /// The role as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.role.subscribe()
    }

    fn set_role(&self, role: Role) {
        self.role.send_if_modified(|l| {
            if l.role == role {
                return false;
            }
            if l.role == Role::Leader || role == Role::Leader {
                l.transitions += 1;
            }
            l.role = role;
            true
        });
    }

    /// Stands by, leads, stands by again, … until `cancel`; then gives the
    /// lease up if it holds it.
    pub async fn run(self, cancel: CancellationToken) {
        if self.mode == LeaseMode::Off {
            return;
        }
        let mut warned = false;
        loop {
            let sent = Instant::now();
            let expires = SystemTime::now() + self.timing.ttl;
            let acquired = tokio::select! {
                r = self.port.acquire(expires, &self.holder) => r,
                () = cancel.cancelled() => return,
            };
            match acquired {
                Ok(lease) => {
                    self.fence.open_until(self.timing.deadline(sent));
                    self.set_role(Role::Leader);
                    tracing::info!(holder = %self.holder, ttl_ms = self.timing.ttl.as_millis() as u64, "this replica holds the leader lease and sends to Discord");
                    let released = self.lead(lease, sent, expires, &cancel).await;
                    self.set_role(Role::Standby);
                    if released {
                        return;
                    }
                }
                Err(LeaseError::Forbidden(m)) if self.mode == LeaseMode::Auto => {
                    tracing::warn!(error = %m, "the plugin's role may not use semaphores, so replicas cannot agree on one sender: running without the leader lease (every replica sends). Add the rule `semaphore: [create, update, read, list]` to the role to use it");
                    self.fence.open_for_good();
                    self.set_role(Role::Solo);
                    return;
                }
                Err(LeaseError::Held) => {}
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "cannot acquire the leader lease; standing by");
                        warned = true;
                    } else {
                        tracing::debug!(error = %e, "cannot acquire the leader lease");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.timing.poll(crate::backoff::random_jitter())) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Holds `lease` (set by a call sent at `sent`) until it is lost or
    /// `cancel` fires; returns whether it was given up because of `cancel`.
    async fn lead(
        &self,
        lease: P::Lease,
        mut sent: Instant,
        mut expires: SystemTime,
        cancel: &CancellationToken,
    ) -> bool {
        let mut next = sent + self.timing.renew_after();
        loop {
            let deadline = self.timing.deadline(sent);
            tokio::select! {
                () = tokio::time::sleep_until(next.min(deadline)) => {}
                () = cancel.cancelled() => {
                    self.release(&lease, expires).await;
                    return true;
                }
            }
            if Instant::now() >= deadline {
                self.fence.close();
                tracing::warn!(holder = %self.holder, "the leader lease could not be renewed in time; stopped sending to Discord");
                return false;
            }
            let attempt = Instant::now();
            let asked = SystemTime::now() + self.timing.ttl;
            let renewed = tokio::select! {
                r = tokio::time::timeout(deadline - attempt, self.port.renew(&lease, asked)) => r,
                () = cancel.cancelled() => {
                    // The renewal may or may not have landed: either expiry
                    // is still in the future, the later one surely.
                    self.release(&lease, asked).await;
                    return true;
                }
            };
            match renewed {
                Ok(Ok(())) => {
                    sent = attempt;
                    expires = asked;
                    self.fence.open_until(self.timing.deadline(sent));
                    next = sent + self.timing.renew_after();
                }
                Ok(Err(LeaseError::Lost(m))) => {
                    self.fence.close();
                    tracing::warn!(holder = %self.holder, reason = %m, "the leader lease is gone; stopped sending to Discord");
                    return false;
                }
                Ok(Err(e)) => {
                    tracing::warn!(holder = %self.holder, error = %e, "cannot renew the leader lease; retrying while it lasts");
                    next = Instant::now() + self.timing.retry_after();
                }
                Err(_) => {
                    tracing::warn!(holder = %self.holder, "renewing the leader lease timed out");
                    next = Instant::now();
                }
            }
        }
    }

    /// Stops sending, lets requests on their way finish, gives the lease up.
    async fn release(&self, lease: &P::Lease, expires: SystemTime) {
        let drained = self.fence.close_and_drain(DRAIN_ON_RELEASE).await;
        if !drained {
            tracing::warn!(
                "requests to Discord still on their way; releasing the leader lease anyway (its expiry margin covers them)"
            );
        }
        match tokio::time::timeout(self.timing.ttl / 4, self.port.release(lease, expires)).await {
            Ok(Ok(())) => tracing::info!(holder = %self.holder, "leader lease released"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release the leader lease; it runs out by itself")
            }
            Err(_) => tracing::warn!("releasing the leader lease timed out; it runs out by itself"),
        }
    }
}

#[cfg(test)]
mod tests;
