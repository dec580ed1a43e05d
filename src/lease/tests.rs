//! The elector against an in-memory semaphore that keeps Teleport's rules
//! (one lease, expiry on the server's clock, no revival), in paused time.

use std::sync::{Arc, Mutex};

use super::*;

/// The server side: who holds the one lease, until when (server clock =
/// tokio's clock here, so `expires` is taken as "now + ttl").
#[derive(Debug, Default)]
struct Server {
    lease: Option<(String, u64, Instant)>,
    next_id: u64,
    forbidden: bool,
    /// Holders whose calls do not reach the server (a partition).
    cut: Vec<String>,
    /// (holder, acquired at) of every lease granted.
    granted: Vec<(String, Instant)>,
}

#[derive(Debug, Clone)]
struct Port {
    server: Arc<Mutex<Server>>,
    holder: String,
    ttl: Duration,
    /// The expiry this holder last set (acquire or renewal): a cancel must
    /// name it (Teleport refuses a cancel naming a past expiry).
    expires: Arc<Mutex<Option<SystemTime>>>,
}

impl Port {
    fn reachable(&self) -> Result<std::sync::MutexGuard<'_, Server>, LeaseError> {
        let s = self.server.lock().unwrap();
        if s.cut.contains(&self.holder) {
            return Err(LeaseError::Other("unavailable".into()));
        }
        if s.forbidden {
            return Err(LeaseError::Forbidden(
                "access denied to perform action \"create\" on \"semaphore\"".into(),
            ));
        }
        Ok(s)
    }
}

impl LeasePort for Port {
    type Lease = u64;
    async fn acquire(&self, expires: SystemTime, holder: &str) -> Result<u64, LeaseError> {
        tokio::task::yield_now().await;
        let mut s = self.reachable()?;
        let now = Instant::now();
        if s.lease.as_ref().is_some_and(|(_, _, until)| *until > now) {
            return Err(LeaseError::Held);
        }
        s.next_id += 1;
        let id = s.next_id;
        s.lease = Some((holder.to_owned(), id, now + self.ttl));
        s.granted.push((holder.to_owned(), now));
        *self.expires.lock().unwrap() = Some(expires);
        Ok(id)
    }
    async fn renew(&self, lease: &u64, expires: SystemTime) -> Result<(), LeaseError> {
        tokio::task::yield_now().await;
        let mut s = self.reachable()?;
        let now = Instant::now();
        match &mut s.lease {
            Some((_, id, until)) if id == lease && *until > now => {
                *until = now + self.ttl;
                *self.expires.lock().unwrap() = Some(expires);
                Ok(())
            }
            _ => Err(LeaseError::Lost("cannot keepalive, lease not found".into())),
        }
    }
    async fn release(&self, lease: &u64, expires: SystemTime) -> Result<(), LeaseError> {
        if *self.expires.lock().unwrap() != Some(expires) {
            return Err(LeaseError::Lost(
                "the lease has expired at an earlier expiry".into(),
            ));
        }
        let mut s = self.reachable()?;
        if s.lease.as_ref().is_some_and(|(_, id, _)| id == lease) {
            s.lease = None;
        }
        Ok(())
    }
}

const TTL: Duration = Duration::from_secs(10);

struct Replica {
    fence: Fence,
    role: watch::Receiver<Leadership>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn replica(server: &Arc<Mutex<Server>>, name: &str, mode: LeaseMode) -> Replica {
    let fence = Fence::closed();
    let port = Port {
        server: server.clone(),
        holder: name.to_owned(),
        ttl: TTL,
        expires: Arc::new(Mutex::new(None)),
    };
    let elector = Elector::new(port, name.to_owned(), mode, TTL, fence.clone());
    let role = elector.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(elector.run(cancel.clone()));
    Replica {
        fence,
        role,
        cancel,
        task,
    }
}

fn role(r: &Replica) -> Role {
    r.role.borrow().role
}

#[test]
fn the_schedule_leaves_room_for_skew_and_two_failed_renewals() {
    let t = Timing { ttl: TTL };
    assert_eq!(t.renew_after(), TTL / 3);
    assert_eq!(t.margin(), Duration::from_millis(2_500));
    let sent = Instant::now();
    assert_eq!(t.deadline(sent), sent + Duration::from_millis(7_500));
    assert!(
        t.deadline(sent) > sent + t.renew_after() * 2,
        "two renewals may fail"
    );
    // Short TTLs keep at least a second of margin, never more than half.
    let short = Timing {
        ttl: Duration::from_secs(3),
    };
    assert_eq!(short.margin(), Duration::from_secs(1));
    assert!(short.poll(0.99) < Duration::from_millis(1_200));
    assert!(t.poll(0.0) >= Duration::from_millis(400) && t.poll(0.99) < Duration::from_millis(600));
}

#[tokio::test(start_paused = true)]
async fn one_replica_leads_and_a_released_lease_is_taken_within_a_second() {
    let server = Arc::new(Mutex::new(Server::default()));
    let a = replica(&server, "a", LeaseMode::Auto);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = replica(&server, "b", LeaseMode::Auto);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!((role(&a), role(&b)), (Role::Leader, Role::Standby));
    assert!(a.fence.is_open() && !b.fence.is_open());
    assert_eq!(
        server.lock().unwrap().granted.len(),
        1,
        "renewed, never re-acquired"
    );
    // SIGTERM of the leader: it releases; the standby leads within a second.
    let released = Instant::now();
    a.cancel.cancel();
    a.task.await.expect("a ends");
    assert!(!a.fence.is_open());
    let mut role_b = b.role.clone();
    role_b
        .wait_for(|l| l.role == Role::Leader)
        .await
        .expect("b leads");
    assert!(
        released.elapsed() < Duration::from_secs(1),
        "{:?}",
        released.elapsed()
    );
    assert!(b.fence.is_open());
    assert_eq!(b.role.borrow().transitions, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dead_leader_is_replaced_after_its_lease_runs_out() {
    let server = Arc::new(Mutex::new(Server::default()));
    let a = replica(&server, "a", LeaseMode::Lease);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = replica(&server, "b", LeaseMode::Lease);
    tokio::time::sleep(Duration::from_secs(5)).await;
    // SIGKILL: no release.
    let killed = Instant::now();
    a.task.abort();
    let mut role_b = b.role.clone();
    role_b
        .wait_for(|l| l.role == Role::Leader)
        .await
        .expect("b leads");
    assert!(
        killed.elapsed() <= TTL + Duration::from_secs(1),
        "{:?}",
        killed.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_partitioned_leader_stops_sending_before_its_lease_can_run_out() {
    let server = Arc::new(Mutex::new(Server::default()));
    let a = replica(&server, "a", LeaseMode::Auto);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let b = replica(&server, "b", LeaseMode::Auto);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(role(&a), Role::Leader);
    let cut = Instant::now();
    server.lock().unwrap().cut.push("a".into());
    // Watch both fences every 10 ms: never open at once.
    let mut a_closed_at = None;
    let mut b_open_at = None;
    for _ in 0..3_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!(a.fence.is_open() && b.fence.is_open()), "two senders");
        if a_closed_at.is_none() && !a.fence.is_open() {
            a_closed_at = Some(cut.elapsed());
        }
        if b_open_at.is_none() && b.fence.is_open() {
            b_open_at = Some(cut.elapsed());
        }
    }
    let (closed, opened) = (
        a_closed_at.expect("a stopped"),
        b_open_at.expect("b took over"),
    );
    // The last renewal was sent at most renew_after before the cut; the
    // server's lease runs out TTL after it: a stopped sending before that.
    assert!(closed < TTL, "{closed:?}");
    assert!(opened > closed, "{opened:?} {closed:?}");
    assert_eq!((role(&a), role(&b)), (Role::Standby, Role::Leader));
}

#[tokio::test(start_paused = true)]
async fn without_permission_auto_runs_solo_and_lease_mode_never_sends() {
    let server = Arc::new(Mutex::new(Server {
        forbidden: true,
        ..Server::default()
    }));
    let auto = replica(&server, "a", LeaseMode::Auto);
    let strict = replica(&server, "b", LeaseMode::Lease);
    auto.task.await.expect("auto ends: nothing to elect");
    assert_eq!(auto.role.borrow().role, Role::Solo);
    assert!(auto.fence.is_open());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(role(&strict), Role::Standby);
    assert!(!strict.fence.is_open());
    // Mode off never asks.
    let off = replica(&server, "c", LeaseMode::Off);
    off.task.await.expect("off ends");
    assert_eq!(off.role.borrow().role, Role::Solo);
    assert!(off.fence.is_open());
    strict.cancel.cancel();
}
