//! Users and `teleport.users.v1.UsersService` (`ListUsers`, `GetUser`), as
//! Teleport's `usersv1` service (shared/reference/teleport-wire.md §11.5-11.7).
//!
//! - ListUsers: `with_secrets` is for the builtin Admin only, else RBAC
//!   `user` read and list; pages of `page_size` (≤ 0 or over 1000: 1000,
//!   inferred), `next_page_token` = the next user's name (inferred), users in
//!   name order; `UserFilter`: every `Traits` key present with one of its
//!   values (exact), every `SearchKeywords` word (case-insensitive) in the
//!   name, a role, or a trait key or value. `SkipSystemUsers` has nothing to
//!   skip (no system users are stored).
//! - An Auth Service older than `UserFilter.Traits`
//!   ([`TeleportEmulator::set_user_filter_ignored`]) drops it as an unknown
//!   field: the listing is unfiltered by traits.
//! - GetUser: the caller's own user always, other users with RBAC `user`
//!   read; `current_user` with an empty name is the caller.

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::super::{Shared, State, TeleportEmulator};
use super::reviews::user_not_found;
use super::{ADMIN_USER, access_denied, caller};
use crate::pb;
use crate::pb::teleport::users::v1 as usersv1;
use crate::pb::teleport::users::v1::users_service_server::{UsersService, UsersServiceServer};

/// `apidefaults.DefaultChunkSize` (inferred).
const DEFAULT_PAGE: usize = 1000;

fn admin_only() -> Status {
    Status::permission_denied("this request can be only executed by an admin")
}

fn traits_of(u: &pb::types::UserV2) -> BTreeMap<String, Vec<String>> {
    u.spec
        .as_ref()
        .and_then(|s| s.traits.as_ref())
        .map(|t| {
            t.values
                .iter()
                .map(|(k, v)| (k.clone(), v.values.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn matches(u: &pb::types::UserV2, f: &pb::types::UserFilter, use_traits: bool) -> bool {
    let traits = traits_of(u);
    if use_traits && let Some(want) = &f.traits {
        let all = want.values.iter().all(|(k, vals)| {
            traits
                .get(k)
                .is_some_and(|have| vals.values.iter().any(|v| have.contains(v)))
        });
        if !all {
            return false;
        }
    }
    let name = u
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let mut fields = vec![name];
    fields.extend(u.spec.as_ref().map(|s| s.roles.clone()).unwrap_or_default());
    for (k, vs) in traits {
        fields.push(k);
        fields.extend(vs);
    }
    f.search_keywords.iter().all(|kw| {
        let kw = kw.to_lowercase();
        fields.iter().any(|v| v.to_lowercase().contains(&kw))
    })
}

impl State {
    /// `ListUsers` for `caller`.
    fn list_users(
        &self,
        caller: &str,
        r: &usersv1::ListUsersRequest,
    ) -> Result<usersv1::ListUsersResponse, Status> {
        if r.with_secrets {
            if caller != ADMIN_USER {
                return Err(admin_only());
            }
        } else if !self.permissions().read_users {
            return Err(access_denied("user", &["read", "list"]));
        }
        let mut limit = usize::try_from(r.page_size)
            .ok()
            .filter(|n| (1..=DEFAULT_PAGE).contains(n))
            .unwrap_or(DEFAULT_PAGE);
        if let Some(m) = self.max_page {
            limit = limit.min(m.max(1));
        }
        let f = r.filter.clone().unwrap_or_default();
        let use_traits = !self.user_filter_ignored;
        let mut matching = self
            .users
            .range(r.page_token.clone()..)
            .map(|(_, u)| u)
            .filter(|u| matches(u, &f, use_traits))
            .cloned();
        let users: Vec<_> = matching.by_ref().take(limit).collect();
        let next_page_token = matching
            .next()
            .and_then(|u| u.metadata.map(|m| m.name))
            .unwrap_or_default();
        Ok(usersv1::ListUsersResponse {
            users,
            next_page_token,
        })
    }

    /// `GetUser` for `caller`.
    fn get_user(
        &self,
        caller: &str,
        r: &usersv1::GetUserRequest,
    ) -> Result<pb::types::UserV2, Status> {
        let name = if r.name.is_empty() && r.current_user {
            caller
        } else {
            r.name.as_str()
        };
        if r.with_secrets {
            if caller != ADMIN_USER {
                return Err(admin_only());
            }
        } else if name != caller && !self.permissions().read_users {
            return Err(access_denied("user", &["read"]));
        }
        if name.is_empty() {
            return Err(Status::invalid_argument("missing user name"));
        }
        self.users
            .get(name)
            .cloned()
            .ok_or_else(|| user_not_found(name))
    }
}

pub(crate) struct UsersSvc {
    shared: Arc<Shared>,
}

/// The `teleport.users.v1.UsersService` server over the emulator's state.
pub(crate) fn server(shared: Arc<Shared>) -> UsersServiceServer<UsersSvc> {
    UsersServiceServer::new(UsersSvc { shared })
}

#[tonic::async_trait]
impl UsersService for UsersSvc {
    async fn get_user(
        &self,
        req: Request<usersv1::GetUserRequest>,
    ) -> Result<Response<usersv1::GetUserResponse>, Status> {
        self.shared.enter("GetUser")?;
        let (user, _) = caller(&req)?;
        let u = self.shared.lock().get_user(&user, req.get_ref())?;
        Ok(Response::new(usersv1::GetUserResponse { user: Some(u) }))
    }

    async fn list_users(
        &self,
        req: Request<usersv1::ListUsersRequest>,
    ) -> Result<Response<usersv1::ListUsersResponse>, Status> {
        self.shared.enter("ListUsers")?;
        let (user, _) = caller(&req)?;
        let r = self.shared.lock().list_users(&user, req.get_ref())?;
        Ok(Response::new(r))
    }
}

impl TeleportEmulator {
    /// Creates or replaces a local user with `roles` and `traits` (trait name
    /// → values, e.g. `&[("discord_uid", &["1234"])]`). Which request roles
    /// the user may review: [`TeleportEmulator::put_user_reviews`], or the
    /// `review_requests.roles` of the roles given here.
    pub fn put_user(&self, name: &str, roles: &[&str], traits: &[(&str, &[&str])]) {
        let user = pb::types::UserV2 {
            kind: "user".into(),
            sub_kind: String::new(),
            version: "v2".into(),
            metadata: Some(pb::types::Metadata {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            spec: Some(pb::types::UserSpecV2 {
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                traits: Some(pb::wrappers::LabelValues {
                    values: traits
                        .iter()
                        .map(|(k, vs)| {
                            (
                                (*k).to_owned(),
                                pb::wrappers::StringValues {
                                    values: vs.iter().map(|v| (*v).to_owned()).collect(),
                                },
                            )
                        })
                        .collect(),
                }),
                expires: None,
            }),
        };
        self.shared.lock().users.insert(name.to_owned(), user);
    }

    /// Deletes a user; whether it existed.
    pub fn delete_user(&self, name: &str) -> bool {
        self.shared.lock().users.remove(name).is_some()
    }

    /// When on, `ListUsers` behaves like an Auth Service older than
    /// `UserFilter.Traits`: it drops the trait filter (an unknown field) and
    /// returns every user the rest of the filter matches.
    pub fn set_user_filter_ignored(&self, on: bool) {
        self.shared.lock().user_filter_ignored = on;
    }
}
