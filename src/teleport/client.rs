//! The gRPC client: one tonic channel over our own TLS connector (so we pick
//! the ALPN for direct or Proxy-routed connections and can rebuild with a new
//! certificate), and typed wrappers around the `proto.AuthService` calls the
//! plugin needs.
//!
//! HTTP/2 keepalive pings go out every 60 s (Teleport's server enforces about
//! one minute; more often risks a `too_many_pings` GOAWAY).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use super::identity::Identity;
use super::model::{AccessList, AccessMonitoringRule, AccessRequest, RequestState, User};
use super::pb;
use super::pb::proto::auth_service_client::AuthServiceClient;
use super::pb::teleport::accesslist::v1::access_list_service_client::AccessListServiceClient;
use super::pb::teleport::accessmonitoringrules::v1::access_monitoring_rules_service_client::AccessMonitoringRulesServiceClient;
use super::pb::teleport::users::v1::users_service_client::UsersServiceClient;
use super::{KIND_ACCESS_LIST, KIND_ACCESS_REQUEST, MIN_SERVER_VERSION, TeleportError, tls};
use crate::config::{ConnectVia, TeleportConfig};

/// The largest answer taken from Teleport, as Go clients allow by default.
pub const MESSAGE_LIMIT: usize = 4 * 1024 * 1024;
/// Users asked for per `ListUsers` page (the server may send fewer).
const USER_PAGE_SIZE: i32 = 200;
/// Pages read before a trait lookup gives up (a server looping on tokens).
const MAX_USER_PAGES: usize = 1000;

/// The largest plugin data listing taken (see [`Client::list_plugin_data`]):
/// about 100,000 requests' entries.
pub const PLUGIN_DATA_LIST_LIMIT: usize = 64 * 1024 * 1024;

/// How to reach Auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Straight to the Auth Service (ALPN `h2`).
    Auth,
    /// Through a Proxy with TLS routing (ALPN `teleport-auth@...`, then `h2`).
    Proxy,
}

impl Mode {
    /// `auto` means Auth for port 3025 and Proxy for anything else.
    pub fn choose(via: ConnectVia, port: u16) -> Self {
        match via {
            ConnectVia::Auth => Self::Auth,
            ConnectVia::Proxy => Self::Proxy,
            ConnectVia::Auto if port == 3025 => Self::Auth,
            ConnectVia::Auto => Self::Proxy,
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host:port`.
    pub addr: String,
    /// Direct or through a Proxy.
    pub mode: Mode,
    /// TCP + TLS handshake limit.
    pub connect_timeout: Duration,
    /// Limit for one unary call.
    pub call_timeout: Duration,
    /// HTTP/2 keepalive ping interval.
    pub keepalive: Duration,
}

impl ConnectOptions {
    /// Defaults for `addr` in `mode`.
    pub fn new(addr: impl Into<String>, mode: Mode) -> Self {
        Self {
            addr: addr.into(),
            mode,
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(60),
        }
    }

    /// From the `[teleport]` config.
    pub fn from_config(c: &TeleportConfig) -> Self {
        Self::new(
            c.addr.to_string(),
            Mode::choose(c.connect_via, c.addr.port()),
        )
    }
}

/// What `Ping` told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingInfo {
    /// Cluster name.
    pub cluster_name: String,
    /// Server version (semver).
    pub server_version: String,
    /// Proxy public address (only meaningful with advanced workflows).
    pub proxy_public_addr: String,
    /// Enterprise advanced access workflows.
    pub advanced_access_workflows: bool,
}

impl PingInfo {
    /// The web proxy address to link to: only with advanced workflows, as upstream.
    pub fn web_proxy_addr(&self) -> Option<&str> {
        (self.advanced_access_workflows && !self.proxy_public_addr.is_empty())
            .then_some(self.proxy_public_addr.as_str())
    }
}

/// A role, reduced to what routing and reviews need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Name.
    pub name: String,
    /// Roles this role may request.
    pub request_roles: Vec<String>,
    /// Suggested reviewers configured on the role.
    pub suggested_reviewers: Vec<String>,
    /// Roles this role may review.
    pub review_roles: Vec<String>,
    /// System logins the role allows (`spec.allow.logins`; traits unexpanded).
    pub logins: Vec<String>,
}

/// A review to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewInput {
    /// Author; `None` means "the caller" (the server fills it in).
    pub author: Option<String>,
    /// Submitted for `author` (a human), who must be set: Teleport then
    /// applies the author's review rights (`submitted_on_behalf_of_author`,
    /// teleport-wire.md §11). The server records us as `SubmittedBy`.
    pub on_behalf: bool,
    /// APPROVED or DENIED.
    pub proposed_state: RequestState,
    /// Reason.
    pub reason: String,
}

/// A connected client. Cheap to clone (shares the channel).
#[derive(Debug, Clone)]
pub struct Client {
    auth: AuthServiceClient<Channel>,
    amr: AccessMonitoringRulesServiceClient<Channel>,
    users: UsersServiceClient<Channel>,
    access_lists: AccessListServiceClient<Channel>,
    call_timeout: Duration,
    identity: Arc<Identity>,
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

async fn dial(
    addr: String,
    cfg: Arc<rustls::ClientConfig>,
    mode: Mode,
) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, std::io::Error> {
    let tcp = TcpStream::connect(&addr).await?;
    tcp.set_nodelay(true)?;
    let name = tls::server_name().map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            if mode == Mode::Proxy {
                std::io::Error::other(format!(
                    "TLS handshake through the Proxy failed: {e}. If the Proxy sits behind an L7 load \
                     balancer, Teleport's WebSocket connection upgrade (/webapi/connectionupgrade) would \
                     be needed, which is not supported yet; connect to the Auth Service (:3025) or a \
                     TLS-routing Proxy directly"
                ))
            } else {
                std::io::Error::other(format!("TLS handshake failed: {e}"))
            }
        })?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"h2") {
        return Err(std::io::Error::other(format!(
            "server negotiated ALPN {:?} instead of h2{}",
            alpn.map(|a| String::from_utf8_lossy(&a).into_owned()),
            if mode == Mode::Proxy {
                " (a Proxy behind an L7 load balancer needs the WebSocket connection upgrade, which is not supported yet)"
            } else {
                ""
            }
        )));
    }
    Ok(TokioIo::new(tls))
}

impl Client {
    /// Connects (TCP, mutual TLS, HTTP/2) now; later reconnects of the channel reuse this identity.
    pub async fn connect(
        opts: &ConnectOptions,
        identity: Arc<Identity>,
    ) -> Result<Self, TeleportError> {
        let cfg = tls::client_config(&identity, opts.mode == Mode::Proxy)?;
        let endpoint = Endpoint::from_static("http://teleport.cluster.local")
            .connect_timeout(opts.connect_timeout)
            .http2_keep_alive_interval(opts.keepalive)
            .keep_alive_timeout(opts.keepalive * 3)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        let addr = opts.addr.clone();
        let mode = opts.mode;
        let connector =
            tower::service_fn(move |_uri: http::Uri| dial(addr.clone(), cfg.clone(), mode));
        let channel = endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| TeleportError::Connect {
                addr: opts.addr.clone(),
                reason: error_chain(&e),
            })?;
        Ok(Self {
            auth: AuthServiceClient::new(channel.clone()).max_decoding_message_size(MESSAGE_LIMIT),
            amr: AccessMonitoringRulesServiceClient::new(channel.clone()),
            users: UsersServiceClient::new(channel.clone())
                .max_decoding_message_size(MESSAGE_LIMIT),
            access_lists: AccessListServiceClient::new(channel)
                .max_decoding_message_size(MESSAGE_LIMIT),
            call_timeout: opts.call_timeout,
            identity,
        })
    }

    /// The identity this client presents.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.call_timeout);
        r
    }

    /// `Ping`, refusing servers older than [`MIN_SERVER_VERSION`].
    pub async fn ping(&self) -> Result<PingInfo, TeleportError> {
        let resp = self
            .auth
            .clone()
            .ping(self.req(pb::proto::PingRequest {}))
            .await
            .map_err(|s| match s.code() {
                tonic::Code::Unimplemented => TeleportError::IncompatibleServer {
                    version: "unknown (Ping not implemented)".into(),
                },
                _ => rpc_error("Ping", &s),
            })?
            .into_inner();
        if !version_at_least(&resp.server_version, MIN_SERVER_VERSION) {
            return Err(TeleportError::IncompatibleServer {
                version: resp.server_version,
            });
        }
        Ok(PingInfo {
            cluster_name: resp.cluster_name,
            server_version: resp.server_version,
            proxy_public_addr: resp.proxy_public_addr,
            advanced_access_workflows: resp
                .server_features
                .is_some_and(|f| f.advanced_access_workflows),
        })
    }

    /// Opens `WatchEvents` for `kinds` (no filters). The caller reads the INIT.
    pub async fn watch_events(
        &self,
        kinds: &[String],
        allow_partial_success: bool,
    ) -> Result<tonic::Streaming<pb::proto::Event>, TeleportError> {
        let kinds = kinds
            .iter()
            .map(|k| pb::types::WatchKind {
                kind: k.clone(),
                ..Default::default()
            })
            .collect();
        self.watch_kinds(kinds, allow_partial_success).await
    }

    /// Opens `WatchEvents` with full [`pb::types::WatchKind`]s (name, filter).
    pub async fn watch_kinds(
        &self,
        kinds: Vec<pb::types::WatchKind>,
        allow_partial_success: bool,
    ) -> Result<tonic::Streaming<pb::proto::Event>, TeleportError> {
        let watch = pb::proto::Watch {
            kinds,
            allow_partial_success,
        };
        Ok(self
            .auth
            .clone()
            .watch_events(tonic::Request::new(watch))
            .await
            .map_err(|s| rpc_error("WatchEvents", &s))?
            .into_inner())
    }

    /// Every access request (optionally only those in `state`), page by page
    /// with `ListAccessRequests`, falling back to `GetAccessRequestsV2` on
    /// servers without it. Requests that do not convert are logged and skipped.
    pub async fn list_access_requests(
        &self,
        state: Option<RequestState>,
    ) -> Result<Vec<AccessRequest>, TeleportError> {
        let filter = pb::types::AccessRequestFilter {
            state: state.map_or(0, |s| s.to_pb() as i32),
            ..Default::default()
        };
        self.list_filtered(filter).await
    }

    /// One access request by ID, as Teleport has it now; `None` when it is gone.
    pub async fn get_access_request(
        &self,
        id: &str,
    ) -> Result<Option<AccessRequest>, TeleportError> {
        let filter = pb::types::AccessRequestFilter {
            id: id.to_owned(),
            ..Default::default()
        };
        Ok(self
            .list_filtered(filter)
            .await?
            .into_iter()
            .find(|r| r.id == id))
    }

    async fn list_filtered(
        &self,
        filter: pb::types::AccessRequestFilter,
    ) -> Result<Vec<AccessRequest>, TeleportError> {
        let mut out = Vec::new();
        let mut start_key = String::new();
        loop {
            let page = self
                .auth
                .clone()
                .list_access_requests(self.req(pb::proto::ListAccessRequestsRequest {
                    filter: Some(filter.clone()),
                    limit: 500,
                    start_key: start_key.clone(),
                    ..Default::default()
                }))
                .await;
            let page = match page {
                Ok(p) => p.into_inner(),
                Err(s) if s.code() == tonic::Code::Unimplemented && out.is_empty() => {
                    return self.get_access_requests_v2(filter).await;
                }
                Err(s) => return Err(rpc_error("ListAccessRequests", &s)),
            };
            out.extend(convert_requests(page.access_requests));
            if page.next_key.is_empty() || page.next_key == start_key {
                return Ok(out);
            }
            start_key = page.next_key;
        }
    }

    async fn get_access_requests_v2(
        &self,
        filter: pb::types::AccessRequestFilter,
    ) -> Result<Vec<AccessRequest>, TeleportError> {
        let mut stream = self
            .auth
            .clone()
            .get_access_requests_v2(self.req(filter))
            .await
            .map_err(|s| rpc_error("GetAccessRequestsV2", &s))?
            .into_inner();
        let mut raw = Vec::new();
        while let Some(r) = stream
            .message()
            .await
            .map_err(|s| rpc_error("GetAccessRequestsV2", &s))?
        {
            raw.push(r);
        }
        Ok(convert_requests(raw))
    }

    /// This plugin's data on one access request; `None` when there is none.
    pub async fn get_plugin_data(
        &self,
        plugin: &str,
        request_id: &str,
    ) -> Result<Option<BTreeMap<String, String>>, TeleportError> {
        Ok(self
            .fetch_plugin_data(plugin, request_id, MESSAGE_LIMIT)
            .await?
            .into_iter()
            .find_map(|pd| pd.spec.and_then(|mut s| s.entries.remove(plugin)))
            .map(|e| e.data.into_iter().collect()))
    }

    /// This plugin's data on every access request that has some, by request ID.
    ///
    /// Teleport answers this in one message holding every entry (plugin data
    /// outlives its request by an hour past its access expiry), so a busy
    /// cluster's answer can pass the 4 MiB every other call allows: this one
    /// takes up to [`PLUGIN_DATA_LIST_LIMIT`].
    pub async fn list_plugin_data(
        &self,
        plugin: &str,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, TeleportError> {
        Ok(self
            .fetch_plugin_data(plugin, "", PLUGIN_DATA_LIST_LIMIT)
            .await?
            .into_iter()
            .filter_map(|pd| {
                let resource = pd.metadata.map(|m| m.name)?;
                let data = pd.spec.and_then(|mut s| s.entries.remove(plugin))?;
                Some((resource, data.data.into_iter().collect()))
            })
            .collect())
    }

    /// `GetPluginData` for access requests: one (`resource`) or all (`""`),
    /// taking answers up to `limit` bytes.
    async fn fetch_plugin_data(
        &self,
        plugin: &str,
        resource: &str,
        limit: usize,
    ) -> Result<Vec<pb::types::PluginDataV3>, TeleportError> {
        self.fetch_plugin_data_of(KIND_ACCESS_REQUEST, plugin, resource, limit)
            .await
    }

    /// `GetPluginData` on resources of `kind`.
    async fn fetch_plugin_data_of(
        &self,
        kind: &str,
        plugin: &str,
        resource: &str,
        limit: usize,
    ) -> Result<Vec<pb::types::PluginDataV3>, TeleportError> {
        Ok(self
            .auth
            .clone()
            .max_decoding_message_size(limit)
            .get_plugin_data(self.req(pb::types::PluginDataFilter {
                kind: kind.into(),
                resource: resource.into(),
                plugin: plugin.into(),
            }))
            .await
            .map_err(|s| rpc_error("GetPluginData", &s))?
            .into_inner()
            .plugin_data)
    }

    /// Compare-and-swap update of this plugin's data on an access request.
    /// `expect` values must match (`""` = absent); `set` values of `""` delete keys.
    /// A failed expectation is [`TeleportError::CompareFailed`].
    pub async fn update_plugin_data(
        &self,
        plugin: &str,
        request_id: &str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> Result<(), TeleportError> {
        self.update_plugin_data_of(KIND_ACCESS_REQUEST, plugin, request_id, set, expect)
            .await
    }

    /// This plugin's data on one access list (kind `access_list`), if any.
    pub async fn get_access_list_plugin_data(
        &self,
        plugin: &str,
        list: &str,
    ) -> Result<Option<BTreeMap<String, String>>, TeleportError> {
        Ok(self
            .fetch_plugin_data_of(KIND_ACCESS_LIST, plugin, list, MESSAGE_LIMIT)
            .await?
            .into_iter()
            .find_map(|pd| pd.spec.and_then(|mut s| s.entries.remove(plugin)))
            .map(|e| e.data.into_iter().collect()))
    }

    /// Compare-and-swap update of this plugin's data on an access list.
    pub async fn update_access_list_plugin_data(
        &self,
        plugin: &str,
        list: &str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> Result<(), TeleportError> {
        self.update_plugin_data_of(KIND_ACCESS_LIST, plugin, list, set, expect)
            .await
    }

    /// Every access list, all pages (`AccessListService/ListAccessLists`).
    /// Lists that do not convert are logged and skipped.
    pub async fn list_access_lists(&self) -> Result<Vec<AccessList>, TeleportError> {
        use super::pb::teleport::accesslist::v1::ListAccessListsRequest;
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_USER_PAGES {
            let r = self
                .access_lists
                .clone()
                .list_access_lists(self.req(ListAccessListsRequest {
                    page_size: 0,
                    next_token: token.clone(),
                }))
                .await
                .map_err(|s| rpc_error("ListAccessLists", &s))?
                .into_inner();
            for l in r.access_lists {
                match AccessList::try_from(l) {
                    Ok(l) => out.push(l),
                    Err(e) => tracing::warn!(error = %e, "skipping an access list Teleport sent"),
                }
            }
            if r.next_token.is_empty() || r.next_token == token {
                return Ok(out);
            }
            token = r.next_token;
        }
        Err(TeleportError::BadData(format!(
            "ListAccessLists returned more than {MAX_USER_PAGES} pages"
        )))
    }

    async fn update_plugin_data_of(
        &self,
        kind: &str,
        plugin: &str,
        resource: &str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> Result<(), TeleportError> {
        self.auth
            .clone()
            .update_plugin_data(self.req(pb::types::PluginDataUpdateParams {
                kind: kind.into(),
                resource: resource.into(),
                plugin: plugin.into(),
                set: set.into_iter().collect(),
                expect: expect.into_iter().collect(),
            }))
            .await
            .map_err(|s| rpc_error("UpdatePluginData", &s))?;
        Ok(())
    }

    /// Submits a review; a repeated review by the same author is
    /// [`TeleportError::AlreadyReviewed`].
    pub async fn submit_access_review(
        &self,
        request_id: &str,
        review: ReviewInput,
    ) -> Result<AccessRequest, TeleportError> {
        let r = self
            .auth
            .clone()
            .submit_access_review(self.req(pb::types::AccessReviewSubmission {
                request_id: request_id.into(),
                review: Some(pb::types::AccessReview {
                    author: review.author.unwrap_or_default(),
                    proposed_state: review.proposed_state.to_pb() as i32,
                    reason: review.reason,
                    submitted_on_behalf_of_author: review.on_behalf,
                    // Created left unset: the server uses "now" (see teleport-wire.md §3).
                    ..Default::default()
                }),
            }))
            .await
            .map_err(|s| rpc_error("SubmitAccessReview", &s))?
            .into_inner();
        r.try_into()
    }

    /// `UsersService/ListUsers` with `Filter.Traits = {trait_name: [value]}`,
    /// every page. Only users whose trait really holds `value` are returned:
    /// an Auth Service older than the filter ignores it and lists everyone.
    pub async fn users_with_trait(
        &self,
        trait_name: &str,
        value: &str,
    ) -> Result<Vec<User>, TeleportError> {
        use super::pb::teleport::users::v1::ListUsersRequest;
        let mut filter = pb::types::UserFilter::default();
        let mut traits = pb::wrappers::LabelValues::default();
        traits.values.insert(
            trait_name.to_owned(),
            pb::wrappers::StringValues {
                values: vec![value.to_owned()],
            },
        );
        filter.traits = Some(traits);
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_USER_PAGES {
            let r = self
                .users
                .clone()
                .list_users(self.req(ListUsersRequest {
                    page_size: USER_PAGE_SIZE,
                    page_token: token.clone(),
                    with_secrets: false,
                    filter: Some(filter.clone()),
                }))
                .await
                .map_err(|s| rpc_error("ListUsers", &s))?
                .into_inner();
            out.extend(
                r.users
                    .into_iter()
                    .map(User::from)
                    .filter(|u| !u.name.is_empty() && u.has_trait(trait_name, value)),
            );
            if r.next_page_token.is_empty() || r.next_page_token == token {
                return Ok(out);
            }
            token = r.next_page_token;
        }
        Err(TeleportError::BadData(format!(
            "ListUsers returned more than {MAX_USER_PAGES} pages"
        )))
    }

    /// `UsersService/GetUser` (needs `user: read` for other users).
    pub async fn get_user(&self, name: &str) -> Result<User, TeleportError> {
        use super::pb::teleport::users::v1::GetUserRequest;
        let r = self
            .users
            .clone()
            .get_user(self.req(GetUserRequest {
                name: name.to_owned(),
                current_user: false,
                with_secrets: false,
            }))
            .await
            .map_err(|s| rpc_error("GetUser", &s))?
            .into_inner();
        r.user
            .map(User::from)
            .ok_or_else(|| TeleportError::BadData(format!("GetUser {name:?} answered no user")))
    }

    /// `GetRole`.
    pub async fn get_role(&self, name: &str) -> Result<Role, TeleportError> {
        let r = self
            .auth
            .clone()
            .get_role(self.req(pb::proto::GetRoleRequest { name: name.into() }))
            .await
            .map_err(|s| rpc_error("GetRole", &s))?
            .into_inner();
        let allow = r.spec.and_then(|s| s.allow).unwrap_or_default();
        let request = allow.request.unwrap_or_default();
        Ok(Role {
            name: r.metadata.map(|m| m.name).unwrap_or_default(),
            request_roles: request.roles,
            suggested_reviewers: request.suggested_reviewers,
            review_roles: allow.review_requests.map(|r| r.roles).unwrap_or_default(),
            logins: allow.logins,
        })
    }

    /// `AcquireSemaphore` with `MaxLeases = 1`: the lease, or
    /// [`TeleportError::LeaseHeld`] when another holder has it.
    pub async fn acquire_lease(
        &self,
        kind: &str,
        name: &str,
        expires: std::time::SystemTime,
        holder: &str,
    ) -> Result<SemaphoreLease, TeleportError> {
        let r = self
            .auth
            .clone()
            .acquire_semaphore(self.req(pb::types::AcquireSemaphoreRequest {
                semaphore_kind: kind.into(),
                semaphore_name: name.into(),
                max_leases: 1,
                expires: Some(super::model::time_to_pb(expires)),
                holder: holder.into(),
            }))
            .await
            .map_err(|s| lease_error("AcquireSemaphore", &s))?
            .into_inner();
        Ok(SemaphoreLease {
            kind: r.semaphore_kind,
            name: r.semaphore_name,
            lease_id: r.lease_id,
            expires: super::model::time_from_pb(r.expires.as_ref()).unwrap_or(expires),
        })
    }

    /// `KeepAliveSemaphoreLease`: moves the lease's expiry to `expires`.
    /// [`TeleportError::NotFound`] once the lease is gone (expired or
    /// cancelled: it cannot be revived).
    pub async fn renew_lease(
        &self,
        lease: &SemaphoreLease,
        expires: std::time::SystemTime,
    ) -> Result<(), TeleportError> {
        let req = self.req(lease_pb(lease, expires));
        let mut auth = self.auth.clone();
        auth.keep_alive_semaphore_lease(req)
            .await
            .map(drop)
            .map_err(|s| lease_error("KeepAliveSemaphoreLease", &s))
    }

    /// `CancelSemaphoreLease`: gives the lease up at once. `expires` is its
    /// current expiry (the last one set); Teleport refuses a past one.
    pub async fn cancel_lease(
        &self,
        lease: &SemaphoreLease,
        expires: std::time::SystemTime,
    ) -> Result<(), TeleportError> {
        let req = self.req(lease_pb(lease, expires));
        let mut auth = self.auth.clone();
        auth.cancel_semaphore_lease(req)
            .await
            .map(drop)
            .map_err(|s| lease_error("CancelSemaphoreLease", &s))
    }

    /// Access monitoring rules for `access_request` that notify `plugin`, all pages.
    pub async fn list_access_monitoring_rules(
        &self,
        plugin: &str,
    ) -> Result<Vec<AccessMonitoringRule>, TeleportError> {
        use pb::teleport::accessmonitoringrules::v1 as amr;
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let resp = self
                .amr
                .clone()
                .list_access_monitoring_rules_with_filter(self.req(
                    amr::ListAccessMonitoringRulesWithFilterRequest {
                        page_size: 1000,
                        page_token: token.clone(),
                        subjects: vec![KIND_ACCESS_REQUEST.into()],
                        notification_name: plugin.into(),
                        ..Default::default()
                    },
                ))
                .await
                .map_err(|s| rpc_error("ListAccessMonitoringRulesWithFilter", &s))?
                .into_inner();
            for r in resp.rules {
                match AccessMonitoringRule::try_from(r) {
                    Ok(r) => out.push(r),
                    Err(e) => tracing::warn!(error = %e, "skipping access monitoring rule"),
                }
            }
            if resp.next_page_token.is_empty() || resp.next_page_token == token {
                return Ok(out);
            }
            token = resp.next_page_token;
        }
    }
}

fn convert_requests(raw: Vec<pb::types::AccessRequestV3>) -> Vec<AccessRequest> {
    raw.into_iter()
        .filter_map(|r| match AccessRequest::try_from(r) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "skipping access request Teleport sent");
                None
            }
        })
        .collect()
}

/// Maps a status to a typed error; transport failures name their cause.
/// A semaphore lease as Teleport granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemaphoreLease {
    /// Semaphore kind.
    pub kind: String,
    /// Semaphore name.
    pub name: String,
    /// Server-made lease ID.
    pub lease_id: String,
    /// When it runs out on the Auth Service's clock.
    pub expires: std::time::SystemTime,
}

fn lease_pb(lease: &SemaphoreLease, expires: std::time::SystemTime) -> pb::types::SemaphoreLease {
    pb::types::SemaphoreLease {
        semaphore_kind: lease.kind.clone(),
        semaphore_name: lease.name.clone(),
        lease_id: lease.lease_id.clone(),
        expires: Some(super::model::time_to_pb(expires)),
    }
}

/// Semaphore errors: `err-max-leases` (someone else holds it) is told apart
/// from contention, which is worth a retry like any other error.
fn lease_error(method: &'static str, s: &tonic::Status) -> TeleportError {
    if s.code() == tonic::Code::ResourceExhausted && s.message().contains("err-max-leases") {
        return TeleportError::LeaseHeld(s.message().to_owned());
    }
    rpc_error(method, s)
}

pub(crate) fn rpc_error(method: &'static str, s: &tonic::Status) -> TeleportError {
    if (s.code() == tonic::Code::Unknown || s.code() == tonic::Code::Unavailable)
        && let Some(src) = std::error::Error::source(s)
    {
        return TeleportError::Rpc {
            method,
            code: s.code(),
            message: format!("{}: {}", s.message(), error_chain(src)),
        };
    }
    TeleportError::from_status(method, s)
}

/// Semantic version, enough to compare Teleport versions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    core: (u64, u64, u64),
    pre: Vec<String>,
}

fn parse_semver(s: &str) -> Option<SemVer> {
    let s = s.trim().trim_start_matches('v');
    let s = s.split('+').next().unwrap_or(s);
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, p.split('.').map(str::to_owned).collect()),
        None => (s, Vec::new()),
    };
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    let v = (it.next()??, it.next()??, it.next()??);
    if it.next().is_some() {
        return None;
    }
    Some(SemVer { core: v, pre })
}

fn cmp_pre(a: &[String], b: &[String]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    for (x, y) in a.iter().zip(b) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether `version >= min` by semver rules; unparseable versions fail.
pub fn version_at_least(version: &str, min: &str) -> bool {
    match (parse_semver(version), parse_semver(min)) {
        (Some(v), Some(m)) => {
            v.core.cmp(&m.core).then_with(|| cmp_pre(&v.pre, &m.pre)) != std::cmp::Ordering::Less
        }
        _ => false,
    }
}
