//! Distributed semaphores (leases), as Teleport's `PresenceService` and
//! `SemaphoreV3` (shared/reference/teleport-wire.md §9; upstream
//! `lib/services/local/presence.go`, `api/types/semaphore.go`).
//!
//! - Acquire: `Check()` (kind, name, MaxLeases ≠ 0, Expires not Go's zero
//!   time), then Expires before now → `cannot acquire expired semaphore
//!   lease`; an existing semaphore has its expired leases pruned first; full
//!   → ResourceExhausted `cannot acquire semaphore <kind>/<name>
//!   (err-max-leases)`. MaxLeases comes with each request (not stored).
//! - KeepAlive: checks, expiry in the past → `lease <id> has expired at
//!   <Go time>`, missing semaphore → NotFound, prune, missing lease →
//!   NotFound; the lease's expiry is set (may shorten it).
//! - Cancel: checks, `the lease <id> has expired at <Go time>`, no pruning,
//!   missing lease → NotFound; the semaphore's TTL is unchanged.
//! - Get: no pruning (expired refs of a live semaphore are returned); Delete
//!   removes the whole semaphore.
//! - A semaphore's TTL (`Metadata.Expires`) is the latest lease expiry ever
//!   set; once it passes the semaphore is gone. All times are compared with
//!   the emulator's (the auth server's) clock.
//! - RBAC: resource `semaphore`, verbs per RPC, denials aggregated.

use std::time::{Duration, SystemTime};

use tonic::Status;

use super::super::{State, TeleportEmulator};
use super::access_denied;
use crate::pb;
use crate::util::{GO_ZERO_TIME_SECONDS, timestamp as time_to_pb};

/// `constants.MaxLeases`: the identifying string of "the semaphore is full".
const MAX_LEASES: &str = "err-max-leases";

/// One stored semaphore.
#[derive(Debug, Clone)]
pub(crate) struct Semaphore {
    leases: Vec<LeaseRef>,
    /// The backend TTL: the latest lease expiry ever set.
    expires: SystemTime,
}

#[derive(Debug, Clone)]
struct LeaseRef {
    id: String,
    expires: SystemTime,
    holder: String,
}

/// A lease as stored (for assertions; expired leases of a live semaphore
/// included, as `GetSemaphores` returns them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// Semaphore kind.
    pub kind: String,
    /// Semaphore name.
    pub name: String,
    /// The lease ID the server generated.
    pub lease_id: String,
    /// The holder the client named.
    pub holder: String,
    /// The lease's expiry.
    pub expires: SystemTime,
}

/// A lease's life, for oracles: granted at `start`, over at `end` (its
/// latest expiry, or when it was cancelled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSpan {
    /// The holder the client named.
    pub holder: String,
    /// When it was granted.
    pub start: SystemTime,
    /// When it ran out or was cancelled (a live lease: its current expiry).
    pub end: SystemTime,
}

/// A wire time: `None` for Go's zero time (the field absent, or 0001-01-01).
fn wire_time(t: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    let t = t?;
    if t.seconds == GO_ZERO_TIME_SECONDS && t.nanos == 0 {
        return None;
    }
    // Out of SystemTime's range only far in the past: already expired.
    Some(SystemTime::try_from(*t).unwrap_or(SystemTime::UNIX_EPOCH - Duration::from_secs(1 << 40)))
}

/// Go's `time.Time` `%v` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`
/// (trailing zeros of the fraction dropped, no fraction when whole).
fn go_time(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    let mut s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let nanos = dt.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// A new lease ID (`uuid.New().String()`: random, version 4).
fn new_lease_id() -> String {
    let hi = crate::util::random_u64();
    let lo = crate::util::random_u64();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The backend's NotFound for a missing item (inferred text).
fn item_not_found(kind: &str, name: &str) -> Status {
    Status::not_found(format!("key \"/semaphores/{kind}/{name}\" is not found"))
}

/// `SemaphoreLease.CheckAndSetDefaults` with the lease's expiry.
fn check_lease(l: &pb::types::SemaphoreLease) -> Result<SystemTime, Status> {
    if l.semaphore_kind.is_empty() {
        return Err(Status::invalid_argument("missing parameter SemaphoreKind"));
    }
    if l.semaphore_name.is_empty() {
        return Err(Status::invalid_argument("missing parameter SemaphoreName"));
    }
    if l.lease_id.is_empty() {
        return Err(Status::invalid_argument("missing parameter LeaseID"));
    }
    wire_time(l.expires.as_ref())
        .ok_or_else(|| Status::invalid_argument("missing lease expiry time"))
}

impl Semaphore {
    /// `RemoveExpiredLeases`: keeps leases expiring after `now`.
    fn prune(&mut self, now: SystemTime) {
        self.leases.retain(|l| l.expires > now);
    }

    fn raise_ttl(&mut self, to: SystemTime) {
        if to > self.expires {
            self.expires = to;
        }
    }
}

impl State {
    /// RBAC on resource `semaphore` for `verbs` (all required).
    pub(crate) fn semaphore_access(&self, verbs: &[&str]) -> Result<(), Status> {
        if self.permissions().use_semaphores {
            Ok(())
        } else {
            Err(access_denied("semaphore", verbs))
        }
    }

    /// The backend drops items past their TTL.
    fn expire_semaphores(&mut self, now: SystemTime) {
        self.semaphores.retain(|_, s| s.expires > now);
    }

    /// `AcquireSemaphore`.
    pub(crate) fn acquire_semaphore(
        &mut self,
        req: pb::types::AcquireSemaphoreRequest,
        now: SystemTime,
    ) -> Result<pb::types::SemaphoreLease, Status> {
        if req.semaphore_kind.is_empty() {
            return Err(Status::invalid_argument("missing parameter SemaphoreKind"));
        }
        if req.semaphore_name.is_empty() {
            return Err(Status::invalid_argument("missing parameter SemaphoreName"));
        }
        if req.max_leases == 0 {
            return Err(Status::invalid_argument("missing parameter MaxLeases"));
        }
        let Some(expires) = wire_time(req.expires.as_ref()) else {
            return Err(Status::invalid_argument("missing parameter Expires"));
        };
        if expires < now {
            return Err(Status::invalid_argument(
                "cannot acquire expired semaphore lease",
            ));
        }
        self.expire_semaphores(now);
        let key = (req.semaphore_kind.clone(), req.semaphore_name.clone());
        let mut sem = match self.semaphores.get(&key) {
            Some(s) => {
                let mut s = s.clone();
                s.prune(now);
                s
            }
            None => Semaphore {
                leases: Vec::new(),
                expires,
            },
        };
        let count = i64::try_from(sem.leases.len()).unwrap_or(i64::MAX);
        if count >= req.max_leases {
            return Err(Status::resource_exhausted(format!(
                "cannot acquire semaphore {}/{} ({MAX_LEASES})",
                req.semaphore_kind, req.semaphore_name
            )));
        }
        let id = new_lease_id();
        sem.raise_ttl(expires);
        self.lease_spans.insert(
            id.clone(),
            LeaseSpan {
                holder: req.holder.clone(),
                start: now,
                end: expires,
            },
        );
        sem.leases.push(LeaseRef {
            id: id.clone(),
            expires,
            holder: req.holder,
        });
        self.semaphores.insert(key, sem);
        Ok(pb::types::SemaphoreLease {
            semaphore_kind: req.semaphore_kind,
            semaphore_name: req.semaphore_name,
            lease_id: id,
            expires: Some(time_to_pb(expires)),
        })
    }

    /// `KeepAliveSemaphoreLease`.
    pub(crate) fn keep_alive_lease(
        &mut self,
        lease: &pb::types::SemaphoreLease,
        now: SystemTime,
    ) -> Result<(), Status> {
        let expires = check_lease(lease)?;
        if expires < now {
            return Err(Status::invalid_argument(format!(
                "lease {} has expired at {}",
                lease.lease_id,
                go_time(expires)
            )));
        }
        self.expire_semaphores(now);
        let key = (lease.semaphore_kind.clone(), lease.semaphore_name.clone());
        let Some(stored) = self.semaphores.get(&key) else {
            return Err(Status::not_found(format!(
                "cannot keepalive, semaphore not found: {}/{}",
                lease.semaphore_kind, lease.semaphore_name
            )));
        };
        let mut sem = stored.clone();
        sem.prune(now);
        let Some(l) = sem.leases.iter_mut().find(|l| l.id == lease.lease_id) else {
            return Err(Status::not_found(format!(
                "cannot keepalive, lease not found: {:?}",
                lease.lease_id
            )));
        };
        l.expires = expires;
        if let Some(span) = self.lease_spans.get_mut(&lease.lease_id) {
            span.end = expires;
        }
        sem.raise_ttl(expires);
        self.semaphores.insert(key, sem);
        Ok(())
    }

    /// `CancelSemaphoreLease`.
    pub(crate) fn cancel_lease(
        &mut self,
        lease: &pb::types::SemaphoreLease,
        now: SystemTime,
    ) -> Result<(), Status> {
        let expires = check_lease(lease)?;
        if expires < now {
            return Err(Status::invalid_argument(format!(
                "the lease {} has expired at {}",
                lease.lease_id,
                go_time(expires)
            )));
        }
        self.expire_semaphores(now);
        let key = (lease.semaphore_kind.clone(), lease.semaphore_name.clone());
        let Some(sem) = self.semaphores.get_mut(&key) else {
            return Err(item_not_found(&lease.semaphore_kind, &lease.semaphore_name));
        };
        let Some(i) = sem.leases.iter().position(|l| l.id == lease.lease_id) else {
            return Err(Status::not_found(format!(
                "cannot cancel, lease not found: {:?}",
                lease.lease_id
            )));
        };
        sem.leases.remove(i);
        if let Some(span) = self.lease_spans.get_mut(&lease.lease_id) {
            span.end = now;
        }
        Ok(())
    }

    /// `GetSemaphores`: every live semaphore the filter matches (an empty
    /// field matches all), in key order, leases as stored.
    pub(crate) fn get_semaphores(
        &mut self,
        f: &pb::types::SemaphoreFilter,
        now: SystemTime,
    ) -> Vec<pb::types::SemaphoreV3> {
        self.expire_semaphores(now);
        self.semaphores
            .iter()
            .filter(|((kind, name), _)| {
                (f.semaphore_kind.is_empty() || f.semaphore_kind == *kind)
                    && (f.semaphore_name.is_empty() || f.semaphore_name == *name)
            })
            .map(|((kind, name), s)| pb::types::SemaphoreV3 {
                kind: "semaphore".into(),
                sub_kind: kind.clone(),
                version: "v3".into(),
                metadata: Some(pb::types::Metadata {
                    name: name.clone(),
                    namespace: "default".into(),
                    expires: Some(time_to_pb(s.expires)),
                    ..Default::default()
                }),
                spec: Some(pb::types::SemaphoreSpecV3 {
                    leases: s
                        .leases
                        .iter()
                        .map(|l| pb::types::SemaphoreLeaseRef {
                            lease_id: l.id.clone(),
                            expires: Some(time_to_pb(l.expires)),
                            holder: l.holder.clone(),
                        })
                        .collect(),
                }),
            })
            .collect()
    }

    /// `DeleteSemaphore`.
    pub(crate) fn delete_semaphore(
        &mut self,
        f: &pb::types::SemaphoreFilter,
        now: SystemTime,
    ) -> Result<(), Status> {
        if f.semaphore_kind.is_empty() || f.semaphore_name.is_empty() {
            return Err(Status::invalid_argument(
                "semaphore kind and name must be specified for deletion",
            ));
        }
        self.expire_semaphores(now);
        let key = (f.semaphore_kind.clone(), f.semaphore_name.clone());
        if self.semaphores.remove(&key).is_none() {
            return Err(item_not_found(&f.semaphore_kind, &f.semaphore_name));
        }
        Ok(())
    }
}

impl TeleportEmulator {
    /// Every lease of every live semaphore, expired ones included (as
    /// `GetSemaphores` returns them), by (kind, name).
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let mut st = self.shared.lock();
        st.expire_semaphores(SystemTime::now());
        st.semaphores
            .iter()
            .flat_map(|((kind, name), s)| {
                s.leases.iter().map(move |l| LeaseInfo {
                    kind: kind.clone(),
                    name: name.clone(),
                    lease_id: l.id.clone(),
                    holder: l.holder.clone(),
                    expires: l.expires,
                })
            })
            .collect()
    }

    /// Every lease ever granted, oldest first.
    pub fn lease_spans(&self) -> Vec<LeaseSpan> {
        let st = self.shared.lock();
        let mut spans: Vec<LeaseSpan> = st.lease_spans.values().cloned().collect();
        spans.sort_by_key(|s| s.start);
        spans
    }

    /// Makes `holder`'s leases already expired on the emulator's clock, as if
    /// it had stopped renewing them: their expiry becomes one second ago, and
    /// each semaphore's TTL falls to the latest expiry among its other leases
    /// (so a semaphore only that holder kept alive is gone). Returns how many
    /// leases it expired.
    pub fn expire_leases_of(&self, holder: &str) -> usize {
        let now = SystemTime::now();
        let past = now - Duration::from_secs(1);
        let mut guard = self.shared.lock();
        let st = &mut *guard;
        let mut n = 0;
        for sem in st.semaphores.values_mut() {
            if !sem.leases.iter().any(|l| l.holder == holder) {
                continue;
            }
            for l in sem.leases.iter_mut().filter(|l| l.holder == holder) {
                l.expires = past;
                if let Some(span) = st.lease_spans.get_mut(&l.id) {
                    span.end = past;
                }
                n += 1;
            }
            sem.expires = sem
                .leases
                .iter()
                .map(|l| l.expires)
                .max()
                .unwrap_or(past)
                .max(past);
        }
        st.expire_semaphores(now);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_is_gos_default_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(go_time(t), "2023-11-14 22:13:20 +0000 UTC");
        let t = t + Duration::from_millis(250);
        assert_eq!(go_time(t), "2023-11-14 22:13:20.25 +0000 UTC");
    }

    #[test]
    fn lease_ids_are_uuid_v4() {
        let id = new_lease_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, new_lease_id());
    }

    #[test]
    fn go_zero_time_is_absent() {
        let zero = prost_types::Timestamp {
            seconds: GO_ZERO_TIME_SECONDS,
            nanos: 0,
        };
        assert_eq!(wire_time(Some(&zero)), None);
        assert_eq!(wire_time(None), None);
        assert_eq!(
            wire_time(Some(&prost_types::Timestamp::default())),
            Some(SystemTime::UNIX_EPOCH)
        );
    }
}
