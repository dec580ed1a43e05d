//! The emulator's gRPC services and its TLS listener. State changes and the
//! rules they follow live here and in the submodules (`State` methods),
//! shared by the RPCs and the programmatic API: access requests and watches
//! here; [`reviews`] (SubmitAccessReview's author rules, reviews submitted for
//! users, thresholds), [`plugin_data`] (the compare-and-swap, expiry, the two
//! resource kinds), [`semaphores`] (leases), [`users`] (UsersService) and
//! [`access_lists`] (AccessListService).

mod access_lists;
mod plugin_data;
mod reviews;
mod semaphores;
mod users;

pub(crate) use plugin_data::{KIND_ACCESS_REQUEST, PluginDataKey};
pub(crate) use semaphores::Semaphore;
pub use semaphores::{LeaseInfo, LeaseSpan};

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::pki::IssuedCert;
use super::{EmulatorError, Permissions, Shared, State, WatcherEntry, header};
use crate::pb;
use crate::pb::proto::auth_service_server::{AuthService, AuthServiceServer};
use crate::pb::teleport::accessmonitoringrules::v1 as amr;
use crate::pb::teleport::accessmonitoringrules::v1::access_monitoring_rules_service_server::{
    AccessMonitoringRulesService, AccessMonitoringRulesServiceServer,
};
use crate::pb::types::{AccessRequestV3, RequestState};
use crate::util::timestamp as time_to_pb;

/// The builtin Admin identity (may review for anyone, read secrets).
const ADMIN_USER: &str = "admin";

/// Teleport's RBAC denial (`CheckAccessToRule`) for each verb, aggregated as
/// `trace.NewAggregate` does (messages joined by ", "): PermissionDenied.
pub(crate) fn access_denied(resource: &str, verbs: &[&str]) -> Status {
    let msg = verbs
        .iter()
        .map(|v| format!("access denied to perform action {v:?} on {resource:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Status::permission_denied(msg)
}

fn state_name(v: i32) -> &'static str {
    match RequestState::try_from(v) {
        Ok(RequestState::Approved) => "approved",
        Ok(RequestState::Denied) => "denied",
        Ok(RequestState::Promoted) => "promoted",
        Ok(RequestState::Pending) => "pending",
        _ => "none",
    }
}

impl State {
    pub(crate) fn put_request(&mut self, req: AccessRequestV3) {
        let id = req
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        self.requests.insert(id, req.clone());
        let user = req.spec.as_ref().map(|s| s.user.clone());
        self.broadcast(
            pb::proto::Operation::Put,
            pb::proto::event::Resource::AccessRequest(req),
            "access_request",
            user,
        );
    }

    /// Fans an event out to matching watchers; a full buffer closes that watch.
    pub(crate) fn broadcast(
        &mut self,
        op: pb::proto::Operation,
        res: pb::proto::event::Resource,
        kind: &str,
        _user: Option<String>,
    ) {
        let ev = pb::proto::Event {
            r#type: op as i32,
            resource: Some(res),
        };
        self.watchers.retain(|w| {
            let Some(k) = w.kinds.iter().find(|k| k.kind == kind) else {
                return true;
            };
            if op == pb::proto::Operation::Put && !matches_filter(k, &ev) {
                return true;
            }
            match w.tx.try_send(Ok(ev.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ =
                        w.tx.try_send(Err(Status::unavailable("watcher buffer overflow")));
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    pub(crate) fn set_state(
        &mut self,
        id: &str,
        state: RequestState,
        reason: &str,
    ) -> Result<(), Status> {
        let mut req = self
            .requests
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("access_request \"{id}\" not found")))?;
        let spec = req.spec.get_or_insert_with(Default::default);
        spec.state = state as i32;
        spec.resolve_reason = reason.into();
        self.put_request(req);
        Ok(())
    }

    pub(crate) fn delete_request(&mut self, id: &str) -> Result<(), Status> {
        if self.requests.remove(id).is_none() {
            return Err(Status::not_found(format!(
                "access_request \"{id}\" not found"
            )));
        }
        let h = header("access_request", "v3", id);
        self.broadcast(
            pb::proto::Operation::Delete,
            pb::proto::event::Resource::ResourceHeader(h),
            "access_request",
            None,
        );
        Ok(())
    }

    fn permissions(&self) -> Permissions {
        self.permissions.unwrap_or_default()
    }
}

fn matches_filter(k: &pb::types::WatchKind, ev: &pb::proto::Event) -> bool {
    let Some(pb::proto::event::Resource::AccessRequest(r)) = &ev.resource else {
        return true;
    };
    let id = r
        .metadata
        .as_ref()
        .map(|m| m.name.as_str())
        .unwrap_or_default();
    let spec = r.spec.clone().unwrap_or_default();
    if !k.name.is_empty() && k.name != id {
        return false;
    }
    k.filter.iter().all(|(key, v)| match key.as_str() {
        "id" => v.is_empty() || v == id,
        "user" => v.is_empty() || *v == spec.user,
        "state" => {
            v.is_empty()
                || v == "NONE"
                || RequestState::from_str_name(v).is_some_and(|s| s as i32 == spec.state)
        }
        _ => false,
    })
}

fn validate_filter(k: &pb::types::WatchKind) -> Result<(), Status> {
    for (key, v) in &k.filter {
        match key.as_str() {
            "id" | "user" => {}
            "state" => {
                if !v.is_empty() && RequestState::from_str_name(v).is_none() {
                    return Err(Status::invalid_argument(format!(
                        "unknown request state {v:?}"
                    )));
                }
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown filter key {other}"
                )));
            }
        }
    }
    Ok(())
}

/// The caller's Teleport user and certificate serial, from the client certificate.
fn caller<T>(req: &Request<T>) -> Result<(String, String), Status> {
    use x509_parser::prelude::*;
    let certs = req
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let der = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|_| Status::unauthenticated("bad client certificate"))?;
    let user = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((user, cert.raw_serial_as_string().replace(':', "")))
}

impl Shared {
    /// Counts the call and refuses it during an emulated outage.
    pub(crate) fn enter(&self, method: &'static str) -> Result<(), Status> {
        let mut st = self.lock();
        *st.calls.entry(method).or_default() += 1;
        if let Some(until) = st.unavailable_until {
            if tokio::time::Instant::now() < until {
                return Err(Status::unavailable(
                    "emulated outage: auth server is unavailable",
                ));
            }
            st.unavailable_until = None;
        }
        Ok(())
    }
}

pub(crate) struct AuthSvc {
    shared: Arc<Shared>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::proto::Event, Status>> + Send>>;
type RequestStream = Pin<Box<dyn Stream<Item = Result<AccessRequestV3, Status>> + Send>>;

fn filter_requests<'a>(
    st: &'a State,
    f: &pb::types::AccessRequestFilter,
) -> impl Iterator<Item = &'a AccessRequestV3> {
    let f = f.clone();
    st.requests.iter().filter_map(move |(id, r)| {
        let spec = r.spec.as_ref()?;
        let ok = (f.id.is_empty() || f.id == *id)
            && (f.user.is_empty() || f.user == spec.user)
            && (f.state == 0 || f.state == spec.state);
        ok.then_some(r)
    })
}

/// What `Ping` reports while reviews submitted for users are switched off.
pub(crate) const OLD_SERVER_VERSION: &str = "18.2.0";

#[tonic::async_trait]
impl AuthService for AuthSvc {
    async fn ping(
        &self,
        req: Request<pb::proto::PingRequest>,
    ) -> Result<Response<pb::proto::PingResponse>, Status> {
        self.shared.enter("Ping")?;
        caller(&req)?;
        let o = &self.shared.opts;
        // An Auth Service without reviews submitted for users is older
        // than the feature (18.11.0).
        let server_version = if self.shared.lock().on_behalf_unsupported {
            OLD_SERVER_VERSION.to_owned()
        } else {
            o.server_version.clone()
        };
        Ok(Response::new(pb::proto::PingResponse {
            cluster_name: o.cluster_name.clone(),
            server_version,
            server_features: Some(pb::proto::Features {
                advanced_access_workflows: o.advanced_access_workflows,
                ..Default::default()
            }),
            proxy_public_addr: o.proxy_public_addr.clone(),
            ..Default::default()
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<pb::proto::Watch>,
    ) -> Result<Response<EventStream>, Status> {
        self.shared.enter("WatchEvents")?;
        let (user, serial) = caller(&req)?;
        let watch = req.into_inner();
        let mut st = self.shared.lock();
        let perms = st.permissions();
        let mut confirmed = Vec::new();
        for k in &watch.kinds {
            let supported = match k.kind.as_str() {
                "access_request" => {
                    validate_filter(k)?;
                    true
                }
                "access_monitoring_rule" => perms.read_access_monitoring_rules,
                _ => false,
            };
            if supported {
                confirmed.push(k.clone());
            } else if !watch.allow_partial_success {
                return Err(if k.kind == "access_monitoring_rule" {
                    Status::permission_denied(
                        "access denied to perform action \"list\" on \"access_monitoring_rule\"",
                    )
                } else {
                    Status::invalid_argument(format!("watching kind {:?} is not supported", k.kind))
                });
            }
        }
        let (tx, rx) = mpsc::channel(1024);
        if !st.stall_init {
            let init = pb::proto::Event {
                r#type: pb::proto::Operation::Init as i32,
                resource: Some(pb::proto::event::Resource::WatchStatus(
                    pb::types::WatchStatusV1 {
                        kind: "watch_status".into(),
                        version: "v1".into(),
                        metadata: Some(pb::types::Metadata {
                            name: "watch_status".into(),
                            namespace: "default".into(),
                            ..Default::default()
                        }),
                        spec: Some(pb::types::WatchStatusSpecV1 {
                            kinds: confirmed.clone(),
                        }),
                        ..Default::default()
                    },
                )),
            };
            let _ = tx.try_send(Ok(init));
        }
        st.next_watcher += 1;
        let id = st.next_watcher;
        st.watchers.push(WatcherEntry {
            id,
            serial,
            user,
            kinds: confirmed,
            tx,
        });
        tracing::debug!(watcher = id, "emulator: watch opened");
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type GetAccessRequestsV2Stream = RequestStream;

    async fn get_access_requests_v2(
        &self,
        req: Request<pb::types::AccessRequestFilter>,
    ) -> Result<Response<RequestStream>, Status> {
        self.shared.enter("GetAccessRequestsV2")?;
        caller(&req)?;
        let f = req.into_inner();
        let items: Vec<_> = filter_requests(&self.shared.lock(), &f)
            .cloned()
            .map(Ok)
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn list_access_requests(
        &self,
        req: Request<pb::proto::ListAccessRequestsRequest>,
    ) -> Result<Response<pb::proto::ListAccessRequestsResponse>, Status> {
        self.shared.enter("ListAccessRequests")?;
        caller(&req)?;
        let r = req.into_inner();
        let st = self.shared.lock();
        if st.list_unimplemented {
            return Err(Status::unimplemented("unknown method ListAccessRequests"));
        }
        let mut limit = if r.limit < 1 {
            1000
        } else {
            usize::try_from(r.limit).unwrap_or(1000)
        };
        if let Some(m) = st.max_page {
            limit = limit.min(m.max(1));
        }
        let f = r.filter.unwrap_or_default();
        let mut matching = filter_requests(&st, &f)
            .filter(|x| x.metadata.as_ref().is_some_and(|m| m.name >= r.start_key))
            .cloned();
        let page: Vec<_> = matching.by_ref().take(limit).collect();
        let next_key = matching
            .next()
            .and_then(|x| x.metadata.map(|m| m.name))
            .unwrap_or_default();
        Ok(Response::new(pb::proto::ListAccessRequestsResponse {
            access_requests: page,
            next_key,
        }))
    }

    async fn create_access_request_v2(
        &self,
        req: Request<AccessRequestV3>,
    ) -> Result<Response<AccessRequestV3>, Status> {
        self.shared.enter("CreateAccessRequestV2")?;
        caller(&req)?;
        let mut r = req.into_inner();
        let mut st = self.shared.lock();
        st.next_request += 1;
        let n = st.next_request;
        let meta = r.metadata.get_or_insert_with(Default::default);
        if meta.name.is_empty() {
            meta.name = format!("{n:08x}-0000-4000-8000-{n:012x}");
        }
        meta.namespace = "default".into();
        r.kind = "access_request".into();
        r.version = "v3".into();
        let spec = r.spec.get_or_insert_with(Default::default);
        spec.state = RequestState::Pending as i32;
        spec.created = Some(time_to_pb(SystemTime::now()));
        st.put_request(r.clone());
        Ok(Response::new(r))
    }

    async fn delete_access_request(
        &self,
        req: Request<pb::proto::RequestId>,
    ) -> Result<Response<()>, Status> {
        self.shared.enter("DeleteAccessRequest")?;
        caller(&req)?;
        let id = req.into_inner().id;
        self.shared.lock().delete_request(&id)?;
        Ok(Response::new(()))
    }

    async fn set_access_request_state(
        &self,
        req: Request<pb::proto::RequestStateSetter>,
    ) -> Result<Response<()>, Status> {
        self.shared.enter("SetAccessRequestState")?;
        caller(&req)?;
        let r = req.into_inner();
        let state = RequestState::try_from(r.state)
            .map_err(|_| Status::invalid_argument("invalid state"))?;
        self.shared.lock().set_state(&r.id, state, &r.reason)?;
        Ok(Response::new(()))
    }

    async fn submit_access_review(
        &self,
        req: Request<pb::types::AccessReviewSubmission>,
    ) -> Result<Response<AccessRequestV3>, Status> {
        self.shared.enter("SubmitAccessReview")?;
        let (user, _) = caller(&req)?;
        let delay = self.shared.lock().review_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let sub = req.into_inner();
        let r = self.shared.lock().submit_review(&user, sub)?;
        Ok(Response::new(r))
    }

    async fn get_plugin_data(
        &self,
        req: Request<pb::types::PluginDataFilter>,
    ) -> Result<Response<pb::proto::PluginDataSeq>, Status> {
        self.shared.enter("GetPluginData")?;
        caller(&req)?;
        let f = req.into_inner();
        let plugin_data = self.shared.lock().get_plugin_data(&f, SystemTime::now())?;
        Ok(Response::new(pb::proto::PluginDataSeq { plugin_data }))
    }

    async fn update_plugin_data(
        &self,
        req: Request<pb::types::PluginDataUpdateParams>,
    ) -> Result<Response<()>, Status> {
        self.shared.enter("UpdatePluginData")?;
        caller(&req)?;
        let p = req.into_inner();
        self.shared
            .lock()
            .update_plugin_data(p, SystemTime::now())?;
        Ok(Response::new(()))
    }

    async fn get_role(
        &self,
        req: Request<pb::proto::GetRoleRequest>,
    ) -> Result<Response<pb::types::RoleV6>, Status> {
        self.shared.enter("GetRole")?;
        caller(&req)?;
        let name = req.into_inner().name;
        let st = self.shared.lock();
        if !st.permissions().read_roles {
            return Err(Status::permission_denied(format!(
                "access denied to perform action \"read\" on \"role\" ({name})"
            )));
        }
        st.roles
            .get(&name)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("role {name} is not found")))
    }

    async fn acquire_semaphore(
        &self,
        req: Request<pb::types::AcquireSemaphoreRequest>,
    ) -> Result<Response<pb::types::SemaphoreLease>, Status> {
        self.shared.enter("AcquireSemaphore")?;
        caller(&req)?;
        let mut st = self.shared.lock();
        st.semaphore_access(&["create", "update"])?;
        st.acquire_semaphore(req.into_inner(), SystemTime::now())
            .map(Response::new)
    }

    async fn keep_alive_semaphore_lease(
        &self,
        req: Request<pb::types::SemaphoreLease>,
    ) -> Result<Response<()>, Status> {
        self.shared.enter("KeepAliveSemaphoreLease")?;
        caller(&req)?;
        let mut st = self.shared.lock();
        st.semaphore_access(&["update"])?;
        st.keep_alive_lease(&req.into_inner(), SystemTime::now())
            .map(Response::new)
    }

    async fn cancel_semaphore_lease(
        &self,
        req: Request<pb::types::SemaphoreLease>,
    ) -> Result<Response<()>, Status> {
        self.shared.enter("CancelSemaphoreLease")?;
        caller(&req)?;
        let mut st = self.shared.lock();
        st.semaphore_access(&["update"])?;
        st.cancel_lease(&req.into_inner(), SystemTime::now())
            .map(Response::new)
    }

    async fn get_semaphores(
        &self,
        req: Request<pb::types::SemaphoreFilter>,
    ) -> Result<Response<pb::proto::Semaphores>, Status> {
        self.shared.enter("GetSemaphores")?;
        caller(&req)?;
        let mut st = self.shared.lock();
        st.semaphore_access(&["readnosecrets", "list"])?;
        let semaphores = st.get_semaphores(&req.into_inner(), SystemTime::now());
        Ok(Response::new(pb::proto::Semaphores { semaphores }))
    }

    async fn delete_semaphore(
        &self,
        req: Request<pb::types::SemaphoreFilter>,
    ) -> Result<Response<()>, Status> {
        self.shared.enter("DeleteSemaphore")?;
        caller(&req)?;
        let mut st = self.shared.lock();
        st.semaphore_access(&["delete"])?;
        st.delete_semaphore(&req.into_inner(), SystemTime::now())
            .map(Response::new)
    }
}

pub(crate) struct AmrSvc {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl AccessMonitoringRulesService for AmrSvc {
    async fn get_access_monitoring_rule(
        &self,
        req: Request<amr::GetAccessMonitoringRuleRequest>,
    ) -> Result<Response<amr::AccessMonitoringRule>, Status> {
        caller(&req)?;
        let name = req.into_inner().name;
        self.shared
            .lock()
            .rules
            .get(&name)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| {
                Status::not_found(format!("access_monitoring_rule {name:?} doesn't exist"))
            })
    }

    async fn list_access_monitoring_rules(
        &self,
        req: Request<amr::ListAccessMonitoringRulesRequest>,
    ) -> Result<Response<amr::ListAccessMonitoringRulesResponse>, Status> {
        caller(&req)?;
        let rules = self.shared.lock().rules.values().cloned().collect();
        Ok(Response::new(amr::ListAccessMonitoringRulesResponse {
            rules,
            next_page_token: String::new(),
        }))
    }

    async fn list_access_monitoring_rules_with_filter(
        &self,
        req: Request<amr::ListAccessMonitoringRulesWithFilterRequest>,
    ) -> Result<Response<amr::ListAccessMonitoringRulesResponse>, Status> {
        caller(&req)?;
        let f = req.into_inner();
        let st = self.shared.lock();
        if !st.permissions().read_access_monitoring_rules {
            return Err(Status::permission_denied(
                "access denied to perform action \"list\" on \"access_monitoring_rule\"",
            ));
        }
        let rules = st
            .rules
            .values()
            .filter(|r| {
                let spec = r.spec.clone().unwrap_or_default();
                (f.subjects.is_empty() || f.subjects.iter().any(|s| spec.subjects.contains(s)))
                    && (f.notification_name.is_empty()
                        || spec
                            .notification
                            .as_ref()
                            .is_some_and(|n| n.name == f.notification_name))
            })
            .cloned()
            .collect();
        Ok(Response::new(amr::ListAccessMonitoringRulesResponse {
            rules,
            next_page_token: String::new(),
        }))
    }
}

fn server_tls(
    ca: CertificateDer<'static>,
    server: &IssuedCert,
) -> Result<Arc<rustls::ServerConfig>, EmulatorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes())
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EmulatorError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| EmulatorError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

fn peer_serial(tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Option<String> {
    use x509_parser::prelude::*;
    let der = tls.get_ref().1.peer_certificates()?.first()?.clone();
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    Some(cert.raw_serial_as_string().replace(':', ""))
}

/// Accepts TLS connections (refusing revoked client certificates) and serves gRPC.
pub(crate) fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    ca: CertificateDer<'static>,
    server: IssuedCert,
    cancel: CancellationToken,
) -> Result<(), EmulatorError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls(ca, &server)?);
    let (conn_tx, conn_rx) = mpsc::channel(64);
    let accept_shared = shared.clone();
    let accept_cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            let (sock, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
                () = accept_cancel.cancelled() => return,
                a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
            };
            // As Go's net package (and so Teleport) does for every TCP connection.
            let _ = sock.set_nodelay(true);
            let (acceptor, tx, shared) = (acceptor.clone(), conn_tx.clone(), accept_shared.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(sock)).await
                else {
                    return;
                };
                let serial = peer_serial(&tls).unwrap_or_default();
                if shared.lock().revoked.contains(&serial) {
                    tracing::debug!(%peer, serial, "emulator: refusing a rotated-out client certificate");
                    return;
                }
                let _ = tx.send(tls).await;
            });
        }
    });
    let incoming = ReceiverStream::new(conn_rx).map(Ok::<_, std::io::Error>);
    let router = tonic::transport::Server::builder()
        .add_service(AuthServiceServer::new(AuthSvc {
            shared: shared.clone(),
        }))
        .add_service(AccessMonitoringRulesServiceServer::new(AmrSvc {
            shared: shared.clone(),
        }))
        .add_service(users::server(shared.clone()))
        .add_service(access_lists::server(shared));
    tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, cancel.cancelled())
            .await
        {
            tracing::warn!(error = %e, "emulator: gRPC server ended");
        }
    });
    Ok(())
}
