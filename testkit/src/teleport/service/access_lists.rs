//! Access lists and `teleport.accesslist.v1.AccessListService`
//! (`ListAccessLists`, `GetAccessList`, `GetAccessListOwners`), as Teleport's
//! `accesslistv1` service (shared/reference/teleport-wire.md §12.1-12.3).
//!
//! - ListAccessLists: `page_size` ≤ 0 → 100; `next_token` = the name of the
//!   next page's first list (inferred), lists in name order.
//! - RBAC: `access_list` read and list ([`crate::teleport::Permissions::read_access_lists`]).
//!   Without them, as upstream, the caller still sees the lists it owns; if
//!   that leaves nothing the listing fails with the RBAC denial.
//!   Simplification: membership is not modelled, only ownership.
//! - GetAccessList / GetAccessListOwners: the same read check (the owner
//!   exception included; GetAccessListOwners' own check was not read
//!   upstream and is assumed the same), then NotFound `access_list %q
//!   doesn't exist` (inferred text). Owners are the list's own (no nested
//!   lists); `ineligible_status` is not recomputed.
//! - An Auth Service without the service
//!   ([`TeleportEmulator::set_access_lists_unimplemented`]): Unimplemented.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::{Request, Response, Status};

use super::super::{Shared, State, TeleportEmulator};
use super::{access_denied, caller};
use crate::pb::teleport::accesslist::v1 as al;
use crate::pb::teleport::accesslist::v1::access_list_service_server::{
    AccessListService, AccessListServiceServer,
};
use crate::pb::teleport::header::v1 as header;
use crate::util::timestamp as time_to_pb;

/// `defaultAccessListPageSize`.
const DEFAULT_PAGE: usize = 100;

fn owns(list: &al::AccessList, user: &str) -> bool {
    list.spec
        .as_ref()
        .is_some_and(|s| s.owners.iter().any(|o| o.name == user))
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("access_list {name:?} doesn't exist"))
}

impl State {
    fn access_lists_served(&self) -> Result<(), Status> {
        if self.access_lists_unimplemented {
            Err(Status::unimplemented(
                "unknown service teleport.accesslist.v1.AccessListService",
            ))
        } else {
            Ok(())
        }
    }

    /// `CheckAccessToKind(access_list, read, list)`'s denial.
    fn access_list_denied() -> Status {
        access_denied("access_list", &["list", "read"])
    }

    fn list_access_lists(
        &self,
        caller: &str,
        r: &al::ListAccessListsRequest,
    ) -> Result<al::ListAccessListsResponse, Status> {
        self.access_lists_served()?;
        let rbac = self.permissions().read_access_lists;
        let mut limit = usize::try_from(r.page_size)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PAGE);
        if let Some(m) = self.max_page {
            limit = limit.min(m.max(1));
        }
        let mut visible = self
            .access_lists
            .range(r.next_token.clone()..)
            .map(|(_, l)| l)
            .filter(|l| rbac || owns(l, caller))
            .cloned();
        let access_lists: Vec<_> = visible.by_ref().take(limit).collect();
        if !rbac && access_lists.is_empty() {
            return Err(Self::access_list_denied());
        }
        let next_token = visible
            .next()
            .and_then(|l| l.header.and_then(|h| h.metadata).map(|m| m.name))
            .unwrap_or_default();
        Ok(al::ListAccessListsResponse {
            access_lists,
            next_token,
        })
    }

    fn readable_access_list(&self, caller: &str, name: &str) -> Result<al::AccessList, Status> {
        self.access_lists_served()?;
        let list = self.access_lists.get(name);
        if !self.permissions().read_access_lists && !list.is_some_and(|l| owns(l, caller)) {
            return Err(Self::access_list_denied());
        }
        list.cloned().ok_or_else(|| not_found(name))
    }
}

pub(crate) struct AccessListSvc {
    shared: Arc<Shared>,
}

/// The `teleport.accesslist.v1.AccessListService` server over the state.
pub(crate) fn server(shared: Arc<Shared>) -> AccessListServiceServer<AccessListSvc> {
    AccessListServiceServer::new(AccessListSvc { shared })
}

#[tonic::async_trait]
impl AccessListService for AccessListSvc {
    async fn list_access_lists(
        &self,
        req: Request<al::ListAccessListsRequest>,
    ) -> Result<Response<al::ListAccessListsResponse>, Status> {
        self.shared.enter("ListAccessLists")?;
        let (user, _) = caller(&req)?;
        let r = self.shared.lock().list_access_lists(&user, req.get_ref())?;
        Ok(Response::new(r))
    }

    async fn get_access_list(
        &self,
        req: Request<al::GetAccessListRequest>,
    ) -> Result<Response<al::AccessList>, Status> {
        self.shared.enter("GetAccessList")?;
        let (user, _) = caller(&req)?;
        let l = self
            .shared
            .lock()
            .readable_access_list(&user, &req.get_ref().name)?;
        Ok(Response::new(l))
    }

    async fn get_access_list_owners(
        &self,
        req: Request<al::GetAccessListOwnersRequest>,
    ) -> Result<Response<al::GetAccessListOwnersResponse>, Status> {
        self.shared.enter("GetAccessListOwners")?;
        let (user, _) = caller(&req)?;
        let l = self
            .shared
            .lock()
            .readable_access_list(&user, &req.get_ref().access_list)?;
        Ok(Response::new(al::GetAccessListOwnersResponse {
            owners: l.spec.map(|s| s.owners).unwrap_or_default(),
        }))
    }
}

impl TeleportEmulator {
    /// Creates or replaces an access list: its title, owners (user names),
    /// next audit date, and how long before it owners are notified
    /// (`audit.notifications.start`).
    pub fn put_access_list(
        &self,
        name: &str,
        title: &str,
        owners: &[&str],
        next_audit_date: SystemTime,
        notify_before: Duration,
    ) {
        let list = al::AccessList {
            header: Some(header::ResourceHeader {
                kind: "access_list".into(),
                sub_kind: String::new(),
                version: "v1".into(),
                metadata: Some(header::Metadata {
                    name: name.into(),
                    namespace: "default".into(),
                    ..Default::default()
                }),
            }),
            spec: Some(al::AccessListSpec {
                owners: owners
                    .iter()
                    .map(|o| al::AccessListOwner {
                        name: (*o).to_owned(),
                        membership_kind: al::MembershipKind::User as i32,
                    })
                    .collect(),
                audit: Some(al::AccessListAudit {
                    next_audit_date: Some(time_to_pb(next_audit_date)),
                    notifications: Some(al::Notifications {
                        start: prost_types::Duration::try_from(notify_before).ok(),
                    }),
                }),
                title: title.into(),
            }),
        };
        self.shared
            .lock()
            .access_lists
            .insert(name.to_owned(), list);
    }

    /// Deletes an access list (its plugin data stays until it expires, as
    /// Teleport never looks the list up for it); whether it existed.
    pub fn delete_access_list(&self, name: &str) -> bool {
        self.shared.lock().access_lists.remove(name).is_some()
    }

    /// When on, the access list service answers Unimplemented, like an Auth
    /// Service without it.
    pub fn set_access_lists_unimplemented(&self, on: bool) {
        self.shared.lock().access_lists_unimplemented = on;
    }
}
