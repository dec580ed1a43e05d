//! `SubmitAccessReview`: who may submit a review for whom, the review checks,
//! and thresholds resolving the request (shared/reference/teleport-wire.md
//! §5.4, §11.3, §11.8).
//!
//! Two paths, as Teleport's `ServerWithRoles`:
//! - classic: an empty `Author` is the caller; another author needs the
//!   builtin Admin, else PermissionDenied `user %q cannot submit reviews on
//!   behalf of %q`. The caller's own review rights are not modelled.
//! - submitted for a user (`submitted_on_behalf_of_author` or `SubmittedBy`
//!   set; an Auth Service with the feature): `SubmittedBy` must be empty or
//!   the caller, the caller needs `review_requests.submit_for_users`
//!   ([`crate::teleport::Permissions::submit_reviews_for_users`]), then the author's own rules
//!   apply: the author must exist, may not review their own request and must
//!   be allowed to review every requested role. The stored review records
//!   `SubmittedBy` = the caller and field 12 = true (inferred: the server
//!   fills `SubmittedBy`). An empty `Author` is the caller here too
//!   (simplification; a plugin always names the author).
//!
//! Without the feature ([`TeleportEmulator::set_on_behalf_reviews_supported`]
//! off) fields 11/12 are dropped as unknown and the classic rule applies.

use std::time::{Duration, SystemTime};

use tonic::Status;

use super::super::{State, TeleportEmulator};
use super::{ADMIN_USER, state_name};
use crate::pb;
use crate::pb::types::{AccessRequestV3, RequestState};
use crate::util::{GO_ZERO_TIME_SECONDS, timestamp as time_to_pb};

fn request_not_found(id: &str) -> Status {
    Status::not_found(format!("access_request \"{id}\" not found"))
}

/// Teleport's `trace.AccessDenied("user %q cannot submit reviews on behalf of %q")`.
fn cannot_submit_for(caller: &str, author: &str) -> Status {
    Status::permission_denied(format!(
        "user {caller:?} cannot submit reviews on behalf of {author:?}"
    ))
}

/// Teleport's local users backend NotFound (`user %q is not found`).
pub(super) fn user_not_found(name: &str) -> Status {
    Status::not_found(format!("user {name:?} is not found"))
}

impl State {
    /// One `SubmitAccessReview` call by `caller`: the author rules of either
    /// path, then [`State::review`].
    pub(crate) fn submit_review(
        &mut self,
        caller: &str,
        sub: pb::types::AccessReviewSubmission,
    ) -> Result<AccessRequestV3, Status> {
        let mut review = sub.review.unwrap_or_default();
        if self.on_behalf_unsupported {
            // An older server does not know fields 11/12: proto3 drops them.
            review.submitted_by.clear();
            review.submitted_on_behalf_of_author = false;
        }
        let for_user = review.submitted_on_behalf_of_author || !review.submitted_by.is_empty();
        if review.author.is_empty() {
            review.author = caller.to_owned();
        }
        if for_user {
            if !review.submitted_by.is_empty() && review.submitted_by != caller {
                return Err(cannot_submit_for(caller, &review.submitted_by));
            }
            if !self.permissions().submit_reviews_for_users {
                return Err(cannot_submit_for(caller, &review.author));
            }
            review.submitted_by = caller.to_owned();
            review.submitted_on_behalf_of_author = true;
            self.check_author_may_review(&review.author, &sub.request_id)?;
        } else if review.author != caller && caller != ADMIN_USER {
            return Err(cannot_submit_for(caller, &review.author));
        }
        self.review(&sub.request_id, review)
    }

    /// The author's own RBAC, as Teleport's `ReviewPermissionChecker`: the
    /// author must exist (NotFound), and `CanReviewRequest` must hold (no
    /// review of one's own request, every requested role reviewable), else
    /// PermissionDenied `user %q cannot review request %q`.
    fn check_author_may_review(&self, author: &str, id: &str) -> Result<(), Status> {
        let Some(user) = self.users.get(author) else {
            return Err(user_not_found(author));
        };
        let req = self.requests.get(id).ok_or_else(|| request_not_found(id))?;
        let spec = req.spec.clone().unwrap_or_default();
        let reviewable = self.reviewable_roles(author, user);
        let may = spec.user != author
            && spec
                .roles
                .iter()
                .all(|r| reviewable.iter().any(|a| a == "*" || a == r));
        if may {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "user {author:?} cannot review request {id:?}"
            )))
        }
    }

    /// Roles `name` may review: set with `put_user_reviews`, plus
    /// `allow.review_requests.roles` of the user's stored roles.
    fn reviewable_roles(&self, name: &str, user: &pb::types::UserV2) -> Vec<String> {
        let mut out = self.user_reviews.get(name).cloned().unwrap_or_default();
        let roles = user
            .spec
            .as_ref()
            .map(|s| s.roles.clone())
            .unwrap_or_default();
        for role in roles {
            if let Some(r) = self
                .roles
                .get(&role)
                .and_then(|r| r.spec.as_ref())
                .and_then(|s| s.allow.as_ref())
                .and_then(|a| a.review_requests.as_ref())
            {
                out.extend(r.roles.iter().cloned());
            }
        }
        out
    }

    /// Applies a review whose author is settled: the request's state, the
    /// proposal, annotations, role subselection, one review per author, then
    /// the thresholds (which may resolve the request: PUT event).
    pub(crate) fn review(
        &mut self,
        id: &str,
        mut review: pb::types::AccessReview,
    ) -> Result<AccessRequestV3, Status> {
        let mut req = self
            .requests
            .get(id)
            .cloned()
            .ok_or_else(|| request_not_found(id))?;
        let spec = req.spec.get_or_insert_with(Default::default);
        if spec.state != RequestState::Pending as i32 {
            return Err(Status::permission_denied(format!(
                "the access request has been already {}",
                state_name(spec.state)
            )));
        }
        if review.proposed_state == RequestState::Promoted as i32 {
            return Err(Status::invalid_argument(
                "promoted is not a valid review state",
            ));
        }
        if review.proposed_state != RequestState::Approved as i32
            && review.proposed_state != RequestState::Denied as i32
        {
            return Err(Status::invalid_argument(format!(
                "invalid state proposal: {}",
                state_name(review.proposed_state)
            )));
        }
        if review
            .annotations
            .as_ref()
            .is_some_and(|a| !a.values.is_empty())
        {
            return Err(Status::unimplemented(
                "annotations are not supported on reviews",
            ));
        }
        if !review.roles.is_empty() && review.roles.len() != spec.roles.len() {
            return Err(Status::unimplemented(
                "role subselection is not yet supported in reviews",
            ));
        }
        if spec.reviews.iter().any(|r| r.author == review.author) {
            return Err(Status::permission_denied(format!(
                "user \"{}\" has already reviewed this request",
                review.author
            )));
        }
        if review
            .created
            .as_ref()
            .is_none_or(|c| c.seconds == GO_ZERO_TIME_SECONDS)
        {
            review.created = Some(time_to_pb(SystemTime::now()));
        }
        let reason = review.reason.clone();
        spec.reviews.push(review);
        let count = |state: RequestState| {
            u32::try_from(
                spec.reviews
                    .iter()
                    .filter(|r| r.proposed_state == state as i32)
                    .count(),
            )
            .unwrap_or(u32::MAX)
        };
        let approvals = count(RequestState::Approved);
        let denials = count(RequestState::Denied);
        let thresholds = if spec.thresholds.is_empty() {
            vec![pb::types::AccessReviewThreshold {
                approve: 1,
                deny: 1,
                ..Default::default()
            }]
        } else {
            spec.thresholds.clone()
        };
        if thresholds.iter().any(|t| t.deny > 0 && denials >= t.deny) {
            spec.state = RequestState::Denied as i32;
            spec.resolve_reason = reason;
        } else if thresholds.iter().all(|t| approvals >= t.approve.max(1)) {
            spec.state = RequestState::Approved as i32;
            spec.resolve_reason = reason;
        }
        self.put_request(req.clone());
        Ok(req)
    }
}

impl TeleportEmulator {
    /// On (the default): an Auth Service with reviews submitted for users
    /// (v18.11+). Off: an older one, which drops `SubmittedBy` and
    /// `submitted_on_behalf_of_author` as unknown fields and applies the
    /// classic rule (author ≠ caller → PermissionDenied); `Ping` then
    /// reports [`super::OLD_SERVER_VERSION`].
    pub fn set_on_behalf_reviews_supported(&self, on: bool) {
        self.shared.lock().on_behalf_unsupported = !on;
    }

    /// `SubmitAccessReview` answers (and applies the review) only after `d`
    /// (a Teleport slower than Discord's 3-second interaction deadline).
    pub fn set_review_delay(&self, d: Duration) {
        self.shared.lock().review_delay = d;
    }

    /// Sets the request roles `name` may review (a simple model of
    /// `review_requests.roles` of the user's roles; `"*"` is any role). The
    /// user itself is created with [`TeleportEmulator::put_user`].
    pub fn put_user_reviews(&self, name: &str, roles: &[&str]) {
        self.shared.lock().user_reviews.insert(
            name.to_owned(),
            roles.iter().map(|r| (*r).to_owned()).collect(),
        );
    }
}
