//! Our own domain types for what Teleport sends, converted from the generated
//! protobuf structs. Conversions never panic: bad data becomes
//! [`TeleportError::BadData`], which the watch logs, counts and skips.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::TeleportError;
use super::pb;

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z) on the wire: "unset".
pub const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// State of an access request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    /// No state (filters: any).
    None,
    /// Waiting for reviews.
    Pending,
    /// Approved.
    Approved,
    /// Denied.
    Denied,
    /// Promoted to an access list.
    Promoted,
}

impl RequestState {
    /// Upstream's name (`PENDING`, ...), as used in watch filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Denied => "DENIED",
            Self::Promoted => "PROMOTED",
        }
    }

    /// From the wire enum value.
    pub fn from_i32(v: i32) -> Result<Self, TeleportError> {
        match pb::types::RequestState::try_from(v) {
            Ok(s) => Ok(s.into()),
            Err(_) => Err(TeleportError::BadData(format!("unknown request state {v}"))),
        }
    }

    /// To the wire enum.
    pub fn to_pb(self) -> pb::types::RequestState {
        match self {
            Self::None => pb::types::RequestState::None,
            Self::Pending => pb::types::RequestState::Pending,
            Self::Approved => pb::types::RequestState::Approved,
            Self::Denied => pb::types::RequestState::Denied,
            Self::Promoted => pb::types::RequestState::Promoted,
        }
    }
}

impl From<pb::types::RequestState> for RequestState {
    fn from(s: pb::types::RequestState) -> Self {
        match s {
            pb::types::RequestState::None => Self::None,
            pb::types::RequestState::Pending => Self::Pending,
            pb::types::RequestState::Approved => Self::Approved,
            pb::types::RequestState::Denied => Self::Denied,
            pb::types::RequestState::Promoted => Self::Promoted,
        }
    }
}

/// A review of an access request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReview {
    /// Teleport user who reviewed.
    pub author: String,
    /// APPROVED or DENIED.
    pub proposed_state: RequestState,
    /// Free-text reason.
    pub reason: String,
    /// When it was submitted.
    pub created: Option<SystemTime>,
    /// The identity (a plugin) that submitted it for the author, if any.
    pub submitted_by: String,
    /// Whether it was submitted for the author by another identity.
    pub on_behalf: bool,
}

/// An access request's kind (`AccessRequestSpecV3.RequestKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestKind {
    /// Not said (tsh, tctl, older servers).
    #[default]
    Undefined,
    /// Temporary access.
    ShortTerm,
    /// Long-term access through an access list promotion: reviewed in
    /// Teleport only.
    LongTerm,
}

impl RequestKind {
    /// From the wire value; unknown values are `Undefined`.
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::ShortTerm,
            2 => Self::LongTerm,
            _ => Self::Undefined,
        }
    }
}

/// An access list, as far as review reminders go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList {
    /// Name (the resource's).
    pub name: String,
    /// Title (shown to people); the name when empty.
    pub title: String,
    /// Owners' user names (nested-list owners are left out), deduplicated.
    pub owners: Vec<String>,
    /// When the next review is due.
    pub next_audit_date: Option<SystemTime>,
    /// How long before it owners are reminded.
    pub notify_before: std::time::Duration,
}

impl TryFrom<pb::teleport::accesslist::v1::AccessList> for AccessList {
    type Error = TeleportError;

    fn try_from(l: pb::teleport::accesslist::v1::AccessList) -> Result<Self, Self::Error> {
        let name = l
            .header
            .and_then(|h| h.metadata)
            .map(|m| m.name)
            .unwrap_or_default();
        if name.is_empty() {
            return Err(TeleportError::BadData("access list without a name".into()));
        }
        let spec = l.spec.unwrap_or_default();
        let mut owners: Vec<String> = spec
            .owners
            .into_iter()
            .filter(|o| {
                o.membership_kind != pb::teleport::accesslist::v1::MembershipKind::List as i32
            })
            .map(|o| o.name.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        owners.sort();
        owners.dedup();
        let audit = spec.audit.unwrap_or_default();
        let notify_before = audit
            .notifications
            .and_then(|n| n.start)
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .unwrap_or_default();
        Ok(Self {
            title: if spec.title.trim().is_empty() {
                name.clone()
            } else {
                spec.title
            },
            name,
            owners,
            next_audit_date: time_from_pb(audit.next_audit_date.as_ref()),
            notify_before,
        })
    }
}

/// A Teleport user, as far as mapping Discord users goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User name.
    pub name: String,
    /// Traits (name → values).
    pub traits: BTreeMap<String, Vec<String>>,
}

impl User {
    /// Whether trait `name` holds `value` (exactly).
    pub fn has_trait(&self, name: &str, value: &str) -> bool {
        self.traits
            .get(name)
            .is_some_and(|vs| vs.iter().any(|v| v == value))
    }
}

impl From<pb::types::UserV2> for User {
    fn from(u: pb::types::UserV2) -> Self {
        Self {
            name: u.metadata.map(|m| m.name).unwrap_or_default(),
            traits: u
                .spec
                .and_then(|s| s.traits)
                .map(|l| l.values.into_iter().map(|(k, v)| (k, v.values)).collect())
                .unwrap_or_default(),
        }
    }
}

/// A review threshold carried by the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewThreshold {
    /// Name.
    pub name: String,
    /// Predicate filter.
    pub filter: String,
    /// Approvals needed.
    pub approve: u32,
    /// Denials needed.
    pub deny: u32,
}

/// An access request, as the rest of the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// Request ID (metadata name, a UUID).
    pub id: String,
    /// Requesting user.
    pub user: String,
    /// Requested roles.
    pub roles: Vec<String>,
    /// State.
    pub state: RequestState,
    /// The requester's reason.
    pub request_reason: String,
    /// The reason given on resolution.
    pub resolve_reason: String,
    /// Reviews so far.
    pub reviews: Vec<AccessReview>,
    /// Review thresholds.
    pub thresholds: Vec<ReviewThreshold>,
    /// Suggested reviewers.
    pub suggested_reviewers: Vec<String>,
    /// Requested resources, `/<cluster>/<kind>/<name>[/<sub>]`.
    pub resources: Vec<String>,
    /// Creation time.
    pub created: Option<SystemTime>,
    /// When the pending request itself expires (metadata `Expires`).
    pub request_expires: Option<SystemTime>,
    /// When granted access would end (spec `Expires`).
    pub access_expires: Option<SystemTime>,
    /// System annotations (label → values).
    pub system_annotations: BTreeMap<String, Vec<String>>,
    /// Short- or long-term.
    pub kind: RequestKind,
}

/// An access monitoring rule (only what notification routing needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessMonitoringRule {
    /// Rule name.
    pub name: String,
    /// Subjects (e.g. `access_request`).
    pub subjects: Vec<String>,
    /// States the rule applies to.
    pub states: Vec<String>,
    /// Predicate expression.
    pub condition: String,
    /// Notification plugin name, if any.
    pub notification_name: Option<String>,
    /// Notification recipients.
    pub recipients: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// What the watch delivers to the rest of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A (re)connected watch: the server confirmed these kinds. Sent after
    /// every (re)connection; events in between are not replayed.
    Init {
        /// Confirmed kinds (all requested kinds when the server sends no status).
        confirmed_kinds: Vec<String>,
    },
    /// Catch-up after an Init: every access request currently stored, so a
    /// consumer can handle what happened while no watch was open.
    Snapshot(Vec<AccessRequest>),
    /// Created or updated access request.
    PutAccessRequest(AccessRequest),
    /// Deleted (usually expired) access request.
    DeleteAccessRequest {
        /// Request ID.
        id: String,
    },
    /// Created or updated access monitoring rule.
    PutAccessMonitoringRule(AccessMonitoringRule),
    /// Deleted access monitoring rule.
    DeleteAccessMonitoringRule {
        /// Rule name.
        name: String,
    },
}

impl WatchEvent {
    /// `(kind, op)` labels for metrics.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Self::Init { .. } => ("watch_status", "init"),
            Self::Snapshot(_) => (super::KIND_ACCESS_REQUEST, "snapshot"),
            Self::PutAccessRequest(_) => (super::KIND_ACCESS_REQUEST, "put"),
            Self::DeleteAccessRequest { .. } => (super::KIND_ACCESS_REQUEST, "delete"),
            Self::PutAccessMonitoringRule(_) => (super::KIND_ACCESS_MONITORING_RULE, "put"),
            Self::DeleteAccessMonitoringRule { .. } => {
                (super::KIND_ACCESS_MONITORING_RULE, "delete")
            }
        }
    }
}

/// Converts a wire timestamp; Go's zero time and absent values are `None`.
pub fn time_from_pb(ts: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    if ts.seconds == GO_ZERO_TIME_SECONDS && ts.nanos == 0 {
        return None;
    }
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    if ts.seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(ts.seconds.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(ts.seconds.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

/// Converts a time to the wire.
pub fn time_to_pb(t: SystemTime) -> prost_types::Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => prost_types::Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        },
        Err(e) => {
            let d = e.duration();
            let mut seconds = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut nanos = 0;
            if d.subsec_nanos() > 0 {
                seconds -= 1;
                nanos = i32::try_from(1_000_000_000 - d.subsec_nanos()).unwrap_or(0);
            }
            prost_types::Timestamp { seconds, nanos }
        }
    }
}

impl TryFrom<pb::types::AccessRequestV3> for AccessRequest {
    type Error = TeleportError;

    fn try_from(r: pb::types::AccessRequestV3) -> Result<Self, Self::Error> {
        let meta = r.metadata.unwrap_or_default();
        let request_expires = time_from_pb(meta.expires.as_ref());
        let id = meta.name;
        if id.is_empty() {
            return Err(TeleportError::BadData(
                "access request without a name (ID)".into(),
            ));
        }
        let spec = r
            .spec
            .ok_or_else(|| TeleportError::BadData(format!("access request {id} without a spec")))?;
        let state = RequestState::from_i32(spec.state)
            .map_err(|e| TeleportError::BadData(format!("access request {id}: {e}")))?;
        let mut reviews = Vec::with_capacity(spec.reviews.len());
        for rv in spec.reviews {
            reviews.push(AccessReview {
                proposed_state: RequestState::from_i32(rv.proposed_state)
                    .map_err(|e| TeleportError::BadData(format!("review on {id}: {e}")))?,
                created: time_from_pb(rv.created.as_ref()),
                author: rv.author,
                reason: rv.reason,
                submitted_by: rv.submitted_by,
                on_behalf: rv.submitted_on_behalf_of_author,
            });
        }
        Ok(Self {
            user: spec.user,
            roles: spec.roles,
            state,
            request_reason: spec.request_reason,
            resolve_reason: spec.resolve_reason,
            reviews,
            thresholds: spec
                .thresholds
                .into_iter()
                .map(|t| ReviewThreshold {
                    name: t.name,
                    filter: t.filter,
                    approve: t.approve,
                    deny: t.deny,
                })
                .collect(),
            suggested_reviewers: spec.suggested_reviewers,
            resources: spec
                .requested_resource_i_ds
                .into_iter()
                .map(|r| {
                    let mut s = format!("/{}/{}/{}", r.cluster_name, r.kind, r.name);
                    if !r.sub_resource_name.is_empty() {
                        s.push('/');
                        s.push_str(&r.sub_resource_name);
                    }
                    s
                })
                .collect(),
            created: time_from_pb(spec.created.as_ref()),
            request_expires,
            access_expires: time_from_pb(spec.expires.as_ref()),
            system_annotations: spec
                .system_annotations
                .map(|l| l.values.into_iter().map(|(k, v)| (k, v.values)).collect())
                .unwrap_or_default(),
            kind: RequestKind::from_i32(spec.request_kind),
            id,
        })
    }
}

impl TryFrom<pb::teleport::accessmonitoringrules::v1::AccessMonitoringRule>
    for AccessMonitoringRule
{
    type Error = TeleportError;

    fn try_from(
        r: pb::teleport::accessmonitoringrules::v1::AccessMonitoringRule,
    ) -> Result<Self, Self::Error> {
        let meta = r.metadata.unwrap_or_default();
        if meta.name.is_empty() {
            return Err(TeleportError::BadData(
                "access monitoring rule without a name".into(),
            ));
        }
        let spec = r.spec.unwrap_or_default();
        let (notification_name, recipients) = match spec.notification {
            Some(n) if !n.name.is_empty() => (Some(n.name), n.recipients),
            Some(n) => (None, n.recipients),
            None => (None, Vec::new()),
        };
        Ok(Self {
            name: meta.name,
            subjects: spec.subjects,
            states: spec.states,
            condition: spec.condition,
            notification_name,
            recipients,
            labels: meta.labels.into_iter().collect(),
        })
    }
}

/// Converts one wire event (after the INIT) into a [`WatchEvent`].
/// `Ok(None)` means an event we do not care about (another kind).
pub fn event_from_pb(ev: pb::proto::Event) -> Result<Option<WatchEvent>, TeleportError> {
    use pb::proto::event::Resource;
    let op = pb::proto::Operation::try_from(ev.r#type)
        .map_err(|_| TeleportError::BadData(format!("unknown event operation {}", ev.r#type)))?;
    match (op, ev.resource) {
        (pb::proto::Operation::Init, _) => Err(TeleportError::BadData(
            "unexpected second INIT event".into(),
        )),
        (pb::proto::Operation::Put, Some(Resource::AccessRequest(r))) => {
            Ok(Some(WatchEvent::PutAccessRequest(r.try_into()?)))
        }
        (pb::proto::Operation::Put, Some(Resource::AccessMonitoringRule(r))) => {
            Ok(Some(WatchEvent::PutAccessMonitoringRule(r.try_into()?)))
        }
        (pb::proto::Operation::Delete, Some(Resource::ResourceHeader(h))) => {
            let name = h.metadata.map(|m| m.name).unwrap_or_default();
            if name.is_empty() {
                return Err(TeleportError::BadData(format!(
                    "DELETE of {} without a name",
                    h.kind
                )));
            }
            match h.kind.as_str() {
                super::KIND_ACCESS_REQUEST => {
                    Ok(Some(WatchEvent::DeleteAccessRequest { id: name }))
                }
                super::KIND_ACCESS_MONITORING_RULE => {
                    Ok(Some(WatchEvent::DeleteAccessMonitoringRule { name }))
                }
                _ => Ok(None),
            }
        }
        (pb::proto::Operation::Delete, Some(Resource::AccessMonitoringRule(r))) => {
            let name = r.metadata.map(|m| m.name).unwrap_or_default();
            Ok(Some(WatchEvent::DeleteAccessMonitoringRule { name }))
        }
        (pb::proto::Operation::Delete, Some(Resource::AccessRequest(r))) => {
            let id = r.metadata.map(|m| m.name).unwrap_or_default();
            Ok(Some(WatchEvent::DeleteAccessRequest { id }))
        }
        // A resource we do not model (another kind's oneof member) decodes as
        // absent: not ours, so not an error.
        _ => Ok(None),
    }
}
