//! A Teleport Auth Service emulator: a tonic server for the same gRPC paths
//! (`/proto.AuthService/...`, `/teleport.accessmonitoringrules.v1...`,
//! `/teleport.users.v1.UsersService/...`,
//! `/teleport.accesslist.v1.AccessListService/...`) over mutual TLS with PKI
//! generated at run time ([`pki`]).
//!
//! This module owns the emulator's state and its programmatic API; the rules
//! the state follows, shared by the RPCs and the API, live in `service` and
//! its submodules (one per feature: reviews, plugin data, semaphores, users,
//! access lists).
//!
//! It follows Teleport's documented semantics (shared/reference/teleport-wire.md):
//! `OpInit` with a `WatchStatus` first, PUT with the full request, DELETE with a
//! `ResourceHeader`, watch filters (`id`, `user`, `state`; other keys are
//! InvalidArgument), review thresholds resolving requests, the exact plugin
//! data compare-and-swap rules (on kinds `access_request` and `access_list`,
//! kept apart), plugin data that outlives its request until an hour past the
//! request's access expiry (access list data: 14 days from each update),
//! `SubmitAccessReview` author rules including reviews submitted for users
//! (`SubmittedBy`, `submitted_on_behalf_of_author`), distributed semaphores
//! (leases), users with traits (`ListUsers` with `UserFilter.Traits`,
//! `GetUser`) and access lists (`ListAccessLists`, `GetAccessList`,
//! `GetAccessListOwners`).
//!
//! Simplifications: a request is denied when any threshold's deny count is
//! reached and approved when every threshold's approve count is reached
//! (Teleport also maps thresholds per role). Which roles a user may review is
//! set directly ([`TeleportEmulator::put_user_reviews`]) or read from the
//! `review_requests.roles` of the user's stored roles; `where` clauses, deny
//! rules and claims are not modelled. Reviews by the caller itself (the
//! classic path) and [`TeleportEmulator::add_review`] are not checked against
//! any RBAC, as before. Access list RBAC without `access_list` read/list
//! falls back to lists the caller owns (membership is not modelled).
//!
//! Faults: [`TeleportEmulator::drop_watch_streams`],
//! [`TeleportEmulator::go_unavailable`], [`TeleportEmulator::rotate_client_cert`]
//! (the old certificate is refused on new connections),
//! [`TeleportEmulator::stall_init`], [`TeleportEmulator::set_review_delay`].
//! Older servers: [`TeleportEmulator::set_list_unimplemented`],
//! [`TeleportEmulator::set_on_behalf_reviews_supported`],
//! [`TeleportEmulator::set_user_filter_ignored`],
//! [`TeleportEmulator::set_access_lists_unimplemented`].
//! [`proxy::EmulatedProxy`] is a TLS-routing Proxy.
//! [`control::router`] exposes the programmatic API over HTTP for `demo`.

pub mod control;
pub mod pki;
pub mod proxy;
mod service;
#[cfg(test)]
mod tests;

pub use crate::pb::types::AccessRequestKind;
pub use service::{LeaseInfo, LeaseSpan};

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::pb;
use crate::pb::types::AccessRequestV3;
use crate::util::timestamp as time_to_pb;
use pki::{IssuedCert, Pki};

/// The plugin's Teleport user.
pub const PLUGIN_USER: &str = "access-plugin";

/// The plugin name the service stores its plugin data under.
pub const PLUGIN_NAME: &str = "discord";

/// Emulator failures.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// Certificate generation.
    #[error("PKI: {0}")]
    Pki(String),
    /// Files or sockets.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// TLS set-up.
    #[error("TLS: {0}")]
    Tls(String),
    /// A programmatic call the emulator refused (same rules as the RPC).
    #[error("{0}")]
    Refused(Status),
}

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Cluster name.
    pub cluster_name: String,
    /// Version `Ping` reports.
    pub server_version: String,
    /// `AdvancedAccessWorkflows` in `Ping`.
    pub advanced_access_workflows: bool,
    /// `ProxyPublicAddr` in `Ping`.
    pub proxy_public_addr: String,
    /// Where to write the identity file and the TLS triple.
    pub dir: PathBuf,
    /// Client certificate lifetime.
    pub client_cert_ttl: Duration,
}

impl EmulatorOptions {
    /// Defaults writing credentials into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            cluster_name: "emulated.example.com".into(),
            server_version: "18.11.0".into(),
            advanced_access_workflows: true,
            proxy_public_addr: "teleport.example.com:443".into(),
            dir: dir.into(),
            client_cert_ttl: Duration::from_secs(3600),
        }
    }
}

pub(crate) struct WatcherEntry {
    pub(crate) id: u64,
    serial: String,
    user: String,
    kinds: Vec<pb::types::WatchKind>,
    tx: mpsc::Sender<Result<pb::proto::Event, Status>>,
}

/// What the plugin's role may do (for permission tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// `access_plugin_data` update.
    pub write_plugin_data: bool,
    /// Read/watch `access_monitoring_rule`.
    pub read_access_monitoring_rules: bool,
    /// `role` read (`GetRole`, for logins by role).
    pub read_roles: bool,
    /// `semaphore` create, update, read, list and delete (all five semaphore
    /// RPCs). Default true.
    pub use_semaphores: bool,
    /// `user` list and read (`ListUsers`, and `GetUser` of other users).
    /// Default true.
    pub read_users: bool,
    /// `review_requests.submit_for_users: ['*']`: may submit reviews on behalf
    /// of other users. Default false: Teleport's documented plugin role does
    /// not have it.
    pub submit_reviews_for_users: bool,
    /// `access_list` read and list (without it only lists the caller owns are
    /// visible). Default true.
    pub read_access_lists: bool,
}

impl Default for Permissions {
    /// Everything the plugin's documented role grants, plus semaphores, users
    /// and access lists; not `submit_for_users`.
    fn default() -> Self {
        Self {
            write_plugin_data: true,
            read_access_monitoring_rules: true,
            read_roles: true,
            use_semaphores: true,
            read_users: true,
            submit_reviews_for_users: false,
            read_access_lists: true,
        }
    }
}

#[derive(Default)]
pub(crate) struct State {
    requests: BTreeMap<String, AccessRequestV3>,
    /// Plugin data by (resource kind, resource name), then plugin, then key.
    plugin_data: BTreeMap<service::PluginDataKey, BTreeMap<String, BTreeMap<String, String>>>,
    /// When each resource's plugin data expires (for an access request: set
    /// when it is created, the request's access expiry + 1 h, as Teleport
    /// does, so it outlives the request's deletion; for an access list: 14
    /// days from every update); none for data written with `put_*plugin_data`.
    plugin_data_expires: BTreeMap<service::PluginDataKey, SystemTime>,
    rules: BTreeMap<String, pb::teleport::accessmonitoringrules::v1::AccessMonitoringRule>,
    roles: BTreeMap<String, pb::types::RoleV6>,
    watchers: Vec<WatcherEntry>,
    next_watcher: u64,
    next_request: u64,
    unavailable_until: Option<tokio::time::Instant>,
    revoked: HashSet<String>,
    stall_init: bool,
    list_unimplemented: bool,
    max_page: Option<usize>,
    calls: BTreeMap<&'static str, u64>,
    permissions: Option<Permissions>,
    /// Semaphores by (kind, name).
    semaphores: BTreeMap<(String, String), service::Semaphore>,
    /// Every lease ever granted, by lease ID: when it began and ended.
    lease_spans: BTreeMap<String, service::LeaseSpan>,
    users: BTreeMap<String, pb::types::UserV2>,
    /// Roles each user may review (`review_requests.roles`, set directly).
    user_reviews: BTreeMap<String, Vec<String>>,
    /// `ListUsers` drops `UserFilter.Traits` (an Auth Service older than it).
    user_filter_ignored: bool,
    /// `SubmitAccessReview` ignores fields 11/12 (an Auth Service older than them).
    on_behalf_unsupported: bool,
    /// How long `SubmitAccessReview` takes before it answers.
    review_delay: Duration,
    access_lists: BTreeMap<String, pb::teleport::accesslist::v1::AccessList>,
    /// The access list service answers Unimplemented (not served).
    access_lists_unimplemented: bool,
}

pub(crate) struct Shared {
    pub(crate) opts: EmulatorOptions,
    pub(crate) state: Mutex<State>,
    pki: Mutex<Pki>,
    current: Mutex<IssuedCert>,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        crate::util::lock(&self.state)
    }
}

/// Paths of the credentials the emulator wrote.
#[derive(Debug, Clone)]
pub struct CredentialPaths {
    /// Identity file (`--format=file`).
    pub identity: PathBuf,
    /// `auth.key`.
    pub key: PathBuf,
    /// `auth.crt`.
    pub cert: PathBuf,
    /// `auth.cas`.
    pub cas: PathBuf,
}

/// A running emulator. Stops when dropped.
#[derive(Debug)]
pub struct TeleportEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    paths: CredentialPaths,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("cluster", &self.opts.cluster_name)
            .finish_non_exhaustive()
    }
}

impl Drop for TeleportEmulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), EmulatorError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

impl TeleportEmulator {
    /// Generates the PKI, writes the credentials and listens on `127.0.0.1:0`.
    pub async fn start(opts: EmulatorOptions) -> Result<Self, EmulatorError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(opts, listener).await
    }

    /// Like [`Self::start`] on a given listener.
    pub async fn start_on(
        opts: EmulatorOptions,
        listener: TcpListener,
    ) -> Result<Self, EmulatorError> {
        let mut pki = Pki::new(&opts.cluster_name)?;
        let server = pki.issue_server()?;
        let now = SystemTime::now();
        let client = pki.issue_client(
            PLUGIN_USER,
            &["access-plugin"],
            now - Duration::from_secs(60),
            now + opts.client_cert_ttl,
        )?;
        std::fs::create_dir_all(&opts.dir)?;
        let paths = CredentialPaths {
            identity: opts.dir.join("identity"),
            key: opts.dir.join("auth.key"),
            cert: opts.dir.join("auth.crt"),
            cas: opts.dir.join("auth.cas"),
        };
        let ca_der = pki.ca_der();
        let shared = Arc::new(Shared {
            opts,
            state: Mutex::new(State::default()),
            pki: Mutex::new(pki),
            current: Mutex::new(client),
        });
        let addr = listener.local_addr()?;
        let emu = Self {
            shared: shared.clone(),
            addr,
            paths,
            cancel: CancellationToken::new(),
        };
        emu.write_credentials()?;
        service::serve(shared, listener, ca_der, server, emu.cancel.clone())?;
        Ok(emu)
    }

    fn write_credentials(&self) -> Result<(), EmulatorError> {
        let cert = crate::util::lock(&self.shared.current).clone();
        let ca = crate::util::lock(&self.shared.pki).ca_pem();
        write_private(
            &self.paths.identity,
            &pki::identity_file(
                &cert,
                &self.shared.opts.cluster_name,
                std::slice::from_ref(&ca),
            ),
        )?;
        write_private(&self.paths.key, &cert.key_pem)?;
        write_private(&self.paths.cert, &cert.cert_pem)?;
        write_private(&self.paths.cas, &ca)?;
        Ok(())
    }

    /// Where Auth listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The credentials written for the plugin user.
    pub fn paths(&self) -> &CredentialPaths {
        &self.paths
    }
    /// Cluster name.
    pub fn cluster_name(&self) -> &str {
        &self.shared.opts.cluster_name
    }
    /// Serial (hex) of the plugin's current client certificate.
    pub fn current_serial(&self) -> String {
        crate::util::lock(&self.shared.current).serial.clone()
    }
    /// The cluster CA, PEM (to build other test credentials).
    pub fn ca_pem(&self) -> String {
        crate::util::lock(&self.shared.pki).ca_pem()
    }

    /// Issues a client certificate for any user, valid in `[not_before, not_after]`.
    pub fn issue_client_cert(
        &self,
        user: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCert, EmulatorError> {
        crate::util::lock(&self.shared.pki).issue_client(user, &[], not_before, not_after)
    }

    /// Issues a new certificate for the plugin user, rewrites the identity
    /// file and triple, and refuses the old certificate on new connections.
    pub fn rotate_client_cert(&self) -> Result<String, EmulatorError> {
        let now = SystemTime::now();
        let new = self.issue_client_cert(
            PLUGIN_USER,
            now - Duration::from_secs(60),
            now + self.shared.opts.client_cert_ttl,
        )?;
        let serial = new.serial.clone();
        let old = std::mem::replace(&mut *crate::util::lock(&self.shared.current), new);
        self.shared.lock().revoked.insert(old.serial);
        self.write_credentials()?;
        Ok(serial)
    }

    /// Ends every open watch stream: with `Unavailable` if `with_error`, else a clean EOF.
    pub fn drop_watch_streams(&self, with_error: bool) {
        let watchers = std::mem::take(&mut self.shared.lock().watchers);
        for w in watchers {
            tracing::debug!(
                watcher = w.id,
                with_error,
                "emulator: dropping watch stream"
            );
            if with_error {
                let _ =
                    w.tx.try_send(Err(Status::unavailable("emulated watcher failure")));
            }
        }
    }

    /// Drops watch streams and answers every RPC with `Unavailable` for `d`.
    pub fn go_unavailable(&self, d: Duration) {
        self.shared.lock().unavailable_until = Some(tokio::time::Instant::now() + d);
        self.drop_watch_streams(true);
    }

    /// When on, new watches never get their `OpInit`.
    pub fn stall_init(&self, on: bool) {
        self.shared.lock().stall_init = on;
    }

    /// Emulates an old server without `ListAccessRequests`.
    pub fn set_list_unimplemented(&self, on: bool) {
        self.shared.lock().list_unimplemented = on;
    }

    /// Caps `ListAccessRequests`, `ListUsers` and `ListAccessLists` pages (to
    /// exercise paging).
    pub fn set_max_page(&self, n: Option<usize>) {
        self.shared.lock().max_page = n;
    }

    /// Restricts what the plugin user may do.
    pub fn set_permissions(&self, p: Permissions) {
        self.shared.lock().permissions = Some(p);
    }

    /// Calls of an RPC so far, by its method name (e.g. `"UpdatePluginData"`,
    /// `"AcquireSemaphore"`, `"ListUsers"`, `"ListAccessLists"`).
    pub fn calls(&self, method: &str) -> u64 {
        self.shared.lock().calls.get(method).copied().unwrap_or(0)
    }

    /// Open watches: `(user, certificate serial)`.
    pub fn watchers(&self) -> Vec<(String, String)> {
        self.shared
            .lock()
            .watchers
            .iter()
            .filter(|w| !w.tx.is_closed())
            .map(|w| (w.user.clone(), w.serial.clone()))
            .collect()
    }

    /// Creates a PENDING request (default threshold: one approval or one denial).
    pub fn create_request(&self, user: &str, roles: &[&str], reason: &str) -> String {
        self.create_request_with_threshold(user, roles, reason, 1, 1)
    }

    /// Creates a PENDING request that `approve` approvals resolve as APPROVED
    /// and `deny` denials as DENIED (a role's `thresholds`; 0 counts as 1).
    pub fn create_request_with_threshold(
        &self,
        user: &str,
        roles: &[&str],
        reason: &str,
        approve: u32,
        deny: u32,
    ) -> String {
        self.new_request(
            user,
            roles,
            reason,
            (approve, deny),
            AccessRequestKind::Undefined,
        )
    }

    /// Creates a PENDING request of a kind (`RequestKind`, field 24: the web
    /// UI sends SHORT_TERM or LONG_TERM, tsh and tctl UNDEFINED), with the
    /// default threshold.
    pub fn create_request_with_kind(
        &self,
        user: &str,
        roles: &[&str],
        reason: &str,
        kind: AccessRequestKind,
    ) -> String {
        self.new_request(user, roles, reason, (1, 1), kind)
    }

    fn new_request(
        &self,
        user: &str,
        roles: &[&str],
        reason: &str,
        (approve, deny): (u32, u32),
        kind: AccessRequestKind,
    ) -> String {
        let mut st = self.shared.lock();
        st.next_request += 1;
        let id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            st.next_request, st.next_request
        );
        let now = SystemTime::now();
        let req = AccessRequestV3 {
            kind: "access_request".into(),
            sub_kind: String::new(),
            version: "v3".into(),
            metadata: Some(pb::types::Metadata {
                name: id.clone(),
                namespace: "default".into(),
                expires: Some(time_to_pb(now + Duration::from_secs(3600))),
                revision: format!("r{}", st.next_request),
                ..Default::default()
            }),
            spec: Some(pb::types::AccessRequestSpecV3 {
                user: user.into(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                state: pb::types::RequestState::Pending as i32,
                created: Some(time_to_pb(now)),
                expires: Some(time_to_pb(now + Duration::from_secs(3600))),
                request_reason: reason.into(),
                thresholds: vec![pb::types::AccessReviewThreshold {
                    name: "default".into(),
                    approve: approve.max(1),
                    deny: deny.max(1),
                    ..Default::default()
                }],
                request_kind: kind as i32,
                ..Default::default()
            }),
        };
        st.put_request(req);
        id
    }

    /// Inserts a request as given (for thresholds, reviewers, bad data...).
    pub fn put_raw_request(&self, req: AccessRequestV3) {
        self.shared.lock().put_request(req);
    }

    /// Adds a review by `author` without the caller check (a human reviewer).
    pub fn add_review(
        &self,
        id: &str,
        author: &str,
        approve: bool,
        reason: &str,
    ) -> Result<(), EmulatorError> {
        let review = pb::types::AccessReview {
            author: author.into(),
            proposed_state: if approve {
                pb::types::RequestState::Approved
            } else {
                pb::types::RequestState::Denied
            } as i32,
            reason: reason.into(),
            ..Default::default()
        };
        self.shared
            .lock()
            .review(id, review)
            .map(|_| ())
            .map_err(EmulatorError::Refused)
    }

    /// Sets the state directly (like `tctl request approve/deny`).
    pub fn resolve(&self, id: &str, approve: bool, reason: &str) -> Result<(), EmulatorError> {
        let state = if approve {
            pb::types::RequestState::Approved
        } else {
            pb::types::RequestState::Denied
        };
        self.shared
            .lock()
            .set_state(id, state, reason)
            .map_err(EmulatorError::Refused)
    }

    /// Deletes a request (like expiry or `tctl request rm`): DELETE event.
    pub fn delete_request(&self, id: &str) -> Result<(), EmulatorError> {
        self.shared
            .lock()
            .delete_request(id)
            .map_err(EmulatorError::Refused)
    }

    /// A stored request.
    pub fn request(&self, id: &str) -> Option<AccessRequestV3> {
        self.shared.lock().requests.get(id).cloned()
    }

    /// Writes plugin data of an access request directly, as another plugin
    /// version left it (no event, no expiry).
    pub fn put_plugin_data(&self, id: &str, plugin: &str, data: &[(&str, &str)]) {
        self.shared
            .lock()
            .put_plugin_data(service::KIND_ACCESS_REQUEST, id, plugin, data);
    }

    /// Plugin data of one access request for one plugin.
    pub fn plugin_data(&self, id: &str, plugin: &str) -> Option<BTreeMap<String, String>> {
        self.shared
            .lock()
            .stored_plugin_data(service::KIND_ACCESS_REQUEST, id, plugin)
    }

    /// Creates or replaces a role.
    pub fn put_role(&self, name: &str, request_roles: &[&str], suggested_reviewers: &[&str]) {
        let role = pb::types::RoleV6 {
            kind: "role".into(),
            version: "v7".into(),
            metadata: Some(pb::types::Metadata {
                name: name.into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            spec: Some(pb::types::RoleSpecV6 {
                allow: Some(pb::types::RoleConditions {
                    request: Some(pb::types::AccessRequestConditions {
                        roles: request_roles.iter().map(|r| (*r).to_owned()).collect(),
                        suggested_reviewers: suggested_reviewers
                            .iter()
                            .map(|r| (*r).to_owned())
                            .collect(),
                        ..Default::default()
                    }),
                    review_requests: None,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.shared.lock().roles.insert(name.into(), role);
    }

    /// Sets a role's allowed logins (`spec.allow.logins`), creating the role if needed.
    pub fn set_role_logins(&self, name: &str, logins: &[&str]) {
        if !self.shared.lock().roles.contains_key(name) {
            self.put_role(name, &[], &[]);
        }
        let mut st = self.shared.lock();
        if let Some(allow) = st
            .roles
            .get_mut(name)
            .and_then(|r| r.spec.as_mut())
            .and_then(|s| s.allow.as_mut())
        {
            allow.logins = logins.iter().map(|l| (*l).to_owned()).collect();
        }
    }

    /// Creates or replaces an access monitoring rule notifying `plugin`: PUT event.
    pub fn put_rule(&self, name: &str, plugin: &str, recipients: &[&str], condition: &str) {
        use pb::teleport::accessmonitoringrules::v1 as amr;
        let rule = amr::AccessMonitoringRule {
            metadata: Some(pb::teleport::header::v1::Metadata {
                name: name.into(),
                ..Default::default()
            }),
            kind: "access_monitoring_rule".into(),
            version: "v1".into(),
            spec: Some(amr::AccessMonitoringRuleSpec {
                subjects: vec!["access_request".into()],
                condition: condition.into(),
                notification: Some(amr::Notification {
                    name: plugin.into(),
                    recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut st = self.shared.lock();
        st.rules.insert(name.into(), rule.clone());
        st.broadcast(
            pb::proto::Operation::Put,
            pb::proto::event::Resource::AccessMonitoringRule(rule),
            "access_monitoring_rule",
            None,
        );
    }

    /// Deletes a rule: DELETE event with a ResourceHeader.
    pub fn delete_rule(&self, name: &str) {
        let mut st = self.shared.lock();
        if st.rules.remove(name).is_some() {
            let h = header("access_monitoring_rule", "v1", name);
            st.broadcast(
                pb::proto::Operation::Delete,
                pb::proto::event::Resource::ResourceHeader(h),
                "access_monitoring_rule",
                None,
            );
        }
    }
}

pub(crate) fn header(kind: &str, version: &str, name: &str) -> pb::types::ResourceHeader {
    pb::types::ResourceHeader {
        kind: kind.into(),
        sub_kind: String::new(),
        version: version.into(),
        metadata: Some(pb::types::Metadata {
            name: name.into(),
            namespace: "default".into(),
            ..Default::default()
        }),
    }
}
