//! The reconciler's view of Teleport's access requests, independent of the
//! wire types: the Teleport module converts its events into these.

use std::collections::BTreeMap;

/// An access request's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for reviews.
    Pending,
    /// Approved.
    Approved,
    /// Denied.
    Denied,
    /// Promoted to an access list.
    Promoted,
    /// Anything else Teleport may send (logged and ignored).
    Other(i32),
}

/// A review of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Reviewer.
    pub author: String,
    /// Approve (true) or deny (false).
    pub approved: bool,
    /// Why.
    pub reason: String,
    /// When, seconds since the Unix epoch.
    pub created_unix: i64,
    /// The identity that submitted it for the author, when one did.
    pub submitted_by: Option<String>,
}

/// Approvals and denials a threshold asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Approvals that resolve the request as approved.
    pub approve: u32,
    /// Denials that resolve it as denied.
    pub deny: u32,
}

/// One access request, as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Request ID.
    pub id: String,
    /// Requesting user.
    pub user: String,
    /// Requested roles.
    pub roles: Vec<String>,
    /// State.
    pub state: RequestState,
    /// Reason given by the requester.
    pub reason: String,
    /// Reason given with the resolution.
    pub resolve_reason: String,
    /// Reviews so far.
    pub reviews: Vec<Review>,
    /// Suggested reviewers.
    pub suggested_reviewers: Vec<String>,
    /// Requested resources, as display strings.
    pub resources: Vec<String>,
    /// Review thresholds (empty when Teleport sends none).
    pub thresholds: Vec<Threshold>,
    /// System annotations.
    pub system_annotations: BTreeMap<String, Vec<String>>,
    /// When the request was created, unix seconds.
    pub created_unix: Option<i64>,
    /// When the request expires, unix seconds.
    pub expires_unix: Option<i64>,
    /// When granted access would end, unix seconds.
    pub access_expires_unix: Option<i64>,
    /// Long-term (an access list promotion): reviewed in Teleport only.
    pub long_term: bool,
}

impl Request {
    /// The environment access monitoring rule conditions see.
    pub fn rule_env(&self) -> crate::amr::predicate::Env {
        crate::amr::predicate::Env {
            roles: self.roles.clone(),
            suggested_reviewers: self.suggested_reviewers.clone(),
            system_annotations: self.system_annotations.clone(),
            user: self.user.clone(),
            request_reason: self.reason.clone(),
            creation_time: self.created_unix.unwrap_or_default(),
            expiry: self.expires_unix.unwrap_or_default(),
            requested_resources: self.resources.len() as i64,
            ..crate::amr::predicate::Env::default()
        }
    }

    /// Approvals/denials still needed under the easiest threshold, when known.
    pub fn needed(&self) -> Option<crate::render::Needed> {
        let approvals = self.reviews.iter().filter(|r| r.approved).count() as u32;
        let denials = self.reviews.len() as u32 - approvals;
        self.thresholds
            .iter()
            .filter(|t| t.approve > 0 || t.deny > 0)
            .map(|t| crate::render::Needed {
                approvals: t.approve.saturating_sub(approvals),
                denials: t.deny.saturating_sub(denials),
            })
            .min_by_key(|n| (n.approvals, n.denials))
    }
}
