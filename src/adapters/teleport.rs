//! The reconciler's Teleport side, in one place: Teleport's
//! [`AccessRequest`] as the reconciler's [`reconcile::Request`],
//! [`ClusterInfo`] from `Ping`, the [`PluginDataStore`] port over the current
//! Teleport client ([`TeleportStore`]), the leader lease's port over
//! semaphores ([`TeleportLease`]), the one dispatch of watch events to the
//! reconciler ([`dispatch`]), and the periodic listing ([`resync`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::SharedConfig;
use crate::lease::{LeaseError, LeasePort, SEMAPHORE_KIND, SEMAPHORE_NAME};
use crate::reconcile::{self, ClusterInfo, Messenger, PluginDataStore, Reconciler, StoreError};
use crate::render::Verdict;
use crate::review;
use crate::teleport::model::{AccessMonitoringRule, AccessRequest, RequestState, WatchEvent};
use crate::teleport::{
    Client, KIND_ACCESS_MONITORING_RULE, PingInfo, SemaphoreLease, TeleportError,
};

fn unix(t: Option<SystemTime>) -> Option<i64> {
    let t = t?;
    Some(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    })
}

impl From<AccessRequest> for reconcile::Request {
    fn from(r: AccessRequest) -> Self {
        Self {
            state: match r.state {
                RequestState::Pending => reconcile::RequestState::Pending,
                RequestState::Approved => reconcile::RequestState::Approved,
                RequestState::Denied => reconcile::RequestState::Denied,
                RequestState::Promoted => reconcile::RequestState::Promoted,
                RequestState::None => reconcile::RequestState::Other(0),
            },
            reviews: r
                .reviews
                .into_iter()
                .map(|v| reconcile::Review {
                    approved: v.proposed_state == RequestState::Approved,
                    created_unix: unix(v.created).unwrap_or(0),
                    submitted_by: (v.on_behalf || !v.submitted_by.is_empty())
                        .then_some(v.submitted_by)
                        .filter(|by| !by.is_empty()),
                    author: v.author,
                    reason: v.reason,
                })
                .collect(),
            long_term: r.kind == crate::teleport::RequestKind::LongTerm,
            thresholds: r
                .thresholds
                .iter()
                .map(|t| reconcile::Threshold {
                    approve: t.approve,
                    deny: t.deny,
                })
                .collect(),
            created_unix: unix(r.created),
            expires_unix: unix(r.request_expires),
            access_expires_unix: unix(r.access_expires),
            id: r.id,
            user: r.user,
            roles: r.roles,
            reason: r.request_reason,
            resolve_reason: r.resolve_reason,
            suggested_reviewers: r.suggested_reviewers,
            resources: r.resources,
            system_annotations: r.system_annotations,
        }
    }
}

impl From<&PingInfo> for ClusterInfo {
    fn from(p: &PingInfo) -> Self {
        Self {
            name: p.cluster_name.clone(),
            web_proxy_url: p.web_proxy_addr().map(addr_to_url),
            plugin_user: String::new(),
        }
    }
}

/// Upstream's `AddrToURL`: add `https://` when there is no scheme, drop a redundant `:443`.
pub fn addr_to_url(addr: &str) -> String {
    let with_scheme = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("https://{addr}")
    };
    match with_scheme.strip_suffix(":443") {
        Some(s) if s.starts_with("https://") => s.to_owned(),
        _ => with_scheme,
    }
}

/// Plugin data of one plugin through whichever client is current (it is
/// replaced when the identity is refreshed).
#[derive(Debug, Clone)]
pub struct TeleportStore {
    client: Arc<ArcSwap<Client>>,
    plugin: String,
}

impl TeleportStore {
    /// A store for `plugin` (e.g. `"discord"`) over the watch's client cell.
    pub fn new(client: Arc<ArcSwap<Client>>, plugin: impl Into<String>) -> Self {
        Self {
            client,
            plugin: plugin.into(),
        }
    }
}

fn store_error(e: TeleportError) -> StoreError {
    match e {
        TeleportError::CompareFailed(_) => StoreError::Conflict,
        TeleportError::PermissionDenied(m) => StoreError::Forbidden(m),
        other => StoreError::Other(other.to_string()),
    }
}

impl PluginDataStore for TeleportStore {
    async fn get(&self, request_id: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let client = Client::clone(&self.client.load());
        client
            .get_plugin_data(&self.plugin, request_id)
            .await
            .map(Option::unwrap_or_default)
            .map_err(store_error)
    }

    async fn compare_and_swap(
        &self,
        request_id: &str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let client = Client::clone(&self.client.load());
        client
            .update_plugin_data(&self.plugin, request_id, set, expect)
            .await
            .map_err(store_error)
    }

    async fn role_logins(&self, role: &str) -> Result<Option<Vec<String>>, StoreError> {
        let client = Client::clone(&self.client.load());
        match client.get_role(role).await {
            Ok(r) => Ok(Some(r.logins)),
            Err(TeleportError::NotFound(_)) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn list(&self) -> Result<Vec<reconcile::Listed>, StoreError> {
        let client = Client::clone(&self.client.load());
        client
            .list_plugin_data(&self.plugin)
            .await
            .map_err(store_error)
    }

    async fn current(&self, request_id: &str) -> Result<Option<reconcile::Request>, StoreError> {
        let client = Client::clone(&self.client.load());
        client
            .get_access_request(request_id)
            .await
            .map(|r| r.map(Into::into))
            .map_err(store_error)
    }
}

/// The leader lease over Teleport's semaphores, through whichever client is
/// current.
#[derive(Debug, Clone)]
pub struct TeleportLease {
    client: Arc<ArcSwap<Client>>,
}

impl TeleportLease {
    /// The lease over the watch's client cell.
    pub fn new(client: Arc<ArcSwap<Client>>) -> Self {
        Self { client }
    }
}

fn lease_error(e: TeleportError) -> LeaseError {
    match e {
        TeleportError::LeaseHeld(_) => LeaseError::Held,
        TeleportError::NotFound(m) => LeaseError::Lost(m),
        // "lease <id> has expired at …": gone as well.
        TeleportError::Rpc {
            code: tonic::Code::InvalidArgument,
            message,
            ..
        } if message.contains("has expired") => LeaseError::Lost(message),
        TeleportError::PermissionDenied(m) => LeaseError::Forbidden(m),
        other => LeaseError::Other(other.to_string()),
    }
}

impl LeasePort for TeleportLease {
    type Lease = SemaphoreLease;

    async fn acquire(
        &self,
        expires: SystemTime,
        holder: &str,
    ) -> Result<SemaphoreLease, LeaseError> {
        let client = Client::clone(&self.client.load());
        client
            .acquire_lease(SEMAPHORE_KIND, SEMAPHORE_NAME, expires, holder)
            .await
            .map_err(lease_error)
    }

    async fn renew(&self, lease: &SemaphoreLease, expires: SystemTime) -> Result<(), LeaseError> {
        let client = Client::clone(&self.client.load());
        client
            .renew_lease(lease, expires)
            .await
            .map_err(lease_error)
    }

    async fn release(&self, lease: &SemaphoreLease, expires: SystemTime) -> Result<(), LeaseError> {
        let client = Client::clone(&self.client.load());
        client
            .cancel_lease(lease, expires)
            .await
            .map_err(lease_error)
    }
}

/// Hands Teleport's events to the reconciler until the channel closes; the
/// only place watch events reach it. PUT → `observe_put`, DELETE →
/// `observe_delete`, a (re)connect's snapshot → `resync` with the sweep
/// (spawned on `tasks`), a periodic listing → `resync`; rule
/// events update the rule set, and an Init lists the rules first so the
/// snapshot that follows is routed by them.
pub async fn dispatch<P: PluginDataStore, M: Messenger>(
    mut events: mpsc::Receiver<WatchEvent>,
    reconciler: Arc<Reconciler<P, M>>,
    client: Arc<ArcSwap<Client>>,
    tasks: crate::tasks::Tasks,
) {
    let mut rules_off_logged = false;
    while let Some(ev) = events.recv().await {
        match ev {
            WatchEvent::Init { confirmed_kinds } => {
                if confirmed_kinds
                    .iter()
                    .any(|k| k == KIND_ACCESS_MONITORING_RULE)
                {
                    let c = Client::clone(&client.load());
                    match c
                        .list_access_monitoring_rules(crate::plugindata::PLUGIN_NAME)
                        .await
                    {
                        Ok(rules) => {
                            tracing::info!(rules = rules.len(), "access monitoring rules loaded");
                            reconciler.observe_rule_list(rules.into_iter().map(rule).collect());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot list access monitoring rules; keeping the ones loaded")
                        }
                    }
                } else if !rules_off_logged {
                    rules_off_logged = true;
                    tracing::warn!(
                        "access monitoring rules are off: the plugin's role may not watch access_monitoring_rule; role_to_recipients applies"
                    );
                }
            }
            WatchEvent::Snapshot(list) => {
                // The watch lists after its Init and before any newer event,
                // so the listing is newer than everything dispatched so far;
                // the mark keeps events dispatched while our plugin data is
                // being listed from being undone by it.
                let mark = reconciler.list_mark();
                let r = reconciler.clone();
                tasks.spawn("resync", async move {
                    let requests = list.into_iter().map(Into::into).collect();
                    let found = r.resync(requests, mark, true).await;
                    tracing::info!(
                        listed = found.listed,
                        at_rest = found.at_rest,
                        swept = found.swept,
                        "access requests listed and compared with plugin data"
                    );
                });
            }
            WatchEvent::PutAccessRequest(a) => reconciler.observe_put(a.into()),
            WatchEvent::DeleteAccessRequest { id } => reconciler.observe_delete(&id),
            WatchEvent::PutAccessMonitoringRule(r) => {
                let name = r.name.clone();
                let stored = reconciler.observe_rule_put(rule(r));
                tracing::info!(rule = %name, ?stored, "access monitoring rule updated");
            }
            WatchEvent::DeleteAccessMonitoringRule { name } => {
                reconciler.observe_rule_delete(&name);
                tracing::info!(rule = %name, "access monitoring rule deleted");
            }
        }
    }
}

fn rule(r: AccessMonitoringRule) -> crate::amr::Rule {
    crate::amr::Rule {
        name: r.name,
        subjects: r.subjects,
        condition: r.condition,
        notification_name: r.notification_name.unwrap_or_default(),
        recipients: r.recipients,
    }
}

/// Every `[reconcile] resync_interval`, lists the access requests and hands
/// the listing to the reconciler, as kube-runtime's periodic requeue does for
/// changes that might have been missed (no sweep: while the watch is up every
/// deletion arrives as an event; the sweep follows each (re)connect's
/// snapshot). The listing's mark keeps it from undoing newer events.
pub async fn resync<P: PluginDataStore, M: Messenger>(
    reconciler: Arc<Reconciler<P, M>>,
    client: Arc<ArcSwap<Client>>,
    config: SharedConfig,
    cancel: CancellationToken,
) {
    loop {
        let every = config.load().reconcile.resync_interval.get();
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cancel.cancelled() => return,
        }
        let c = Client::clone(&client.load());
        let mark = reconciler.list_mark();
        match c.list_access_requests(None).await {
            Ok(list) => {
                let found = reconciler
                    .resync(list.into_iter().map(Into::into).collect(), mark, false)
                    .await;
                tracing::debug!(
                    listed = found.listed,
                    at_rest = found.at_rest,
                    "periodic resync"
                );
            }
            Err(e) => tracing::warn!(error = %e, "periodic resync could not list access requests"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_address_becomes_a_url_like_upstream() {
        assert_eq!(
            addr_to_url("teleport.example.com:443"),
            "https://teleport.example.com"
        );
        assert_eq!(
            addr_to_url("teleport.example.com:3080"),
            "https://teleport.example.com:3080"
        );
        assert_eq!(
            addr_to_url("https://t.example.com"),
            "https://t.example.com"
        );
    }

    #[test]
    fn requests_convert_for_the_reconciler() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let a = AccessRequest {
            id: "r1".into(),
            user: "bob".into(),
            roles: vec!["dev".into()],
            state: RequestState::Denied,
            request_reason: "why".into(),
            resolve_reason: "no".into(),
            reviews: vec![crate::teleport::model::AccessReview {
                author: "alice".into(),
                proposed_state: RequestState::Denied,
                reason: "no".into(),
                created: Some(t),
                submitted_by: String::new(),
                on_behalf: false,
            }],
            thresholds: vec![],
            suggested_reviewers: vec!["carol".into()],
            resources: vec![],
            created: Some(t),
            request_expires: Some(t),
            access_expires: None,
            kind: crate::teleport::RequestKind::Undefined,
            system_annotations: BTreeMap::new(),
        };
        let r: reconcile::Request = a.into();
        assert_eq!(r.state, reconcile::RequestState::Denied);
        assert_eq!(r.reason, "why");
        assert!(!r.reviews[0].approved);
        assert_eq!(r.reviews[0].created_unix, 1000);
        assert_eq!(r.expires_unix, Some(1000));
        assert_eq!(r.created_unix, Some(1000));
        assert_eq!(r.access_expires_unix, None);
    }
}

/// The review desk's Teleport port ([`review::Directory`]) through whichever
/// client is current.
#[derive(Debug, Clone)]
pub struct TeleportReviews {
    client: Arc<ArcSwap<Client>>,
    /// `https://<proxy>` for web links, when known.
    web_proxy_url: Option<String>,
}

impl TeleportReviews {
    /// Over the watch's client cell; `web_proxy_url` as the cluster's.
    pub fn new(client: Arc<ArcSwap<Client>>, web_proxy_url: Option<String>) -> Self {
        Self {
            client,
            web_proxy_url,
        }
    }
}

fn facts(r: AccessRequest) -> review::RequestFacts {
    let long_term = r.kind == crate::teleport::RequestKind::LongTerm;
    let req: reconcile::Request = r.into();
    review::RequestFacts {
        state: match req.state {
            reconcile::RequestState::Approved => review::State::Approved,
            reconcile::RequestState::Denied => review::State::Denied,
            reconcile::RequestState::Promoted => review::State::Promoted,
            _ => review::State::Pending,
        },
        needed: req.needed(),
        user: req.user,
        long_term,
    }
}

fn port_error(e: TeleportError) -> review::PortError {
    match e {
        TeleportError::PermissionDenied(m) => review::PortError::Denied(m),
        other => review::PortError::Failed(other.to_string()),
    }
}

/// The state named in "the access request has been already approved".
fn resolved_state(message: &str) -> Option<review::State> {
    let rest = message.split("has been already ").nth(1)?;
    let word = rest.split_whitespace().next().unwrap_or_default();
    Some(match word.trim_end_matches(['.', '"']) {
        "approved" => review::State::Approved,
        "denied" => review::State::Denied,
        "promoted" => review::State::Promoted,
        _ => return None,
    })
}

impl review::Directory for TeleportReviews {
    fn users_with_trait<'a>(
        &'a self,
        trait_name: &'a str,
        value: &'a str,
    ) -> review::BoxFuture<'a, Result<Vec<String>, review::PortError>> {
        Box::pin(async move {
            let client = Client::clone(&self.client.load());
            client
                .users_with_trait(trait_name, value)
                .await
                .map(|users| users.into_iter().map(|u| u.name).collect())
                .map_err(port_error)
        })
    }

    fn request<'a>(
        &'a self,
        id: &'a str,
    ) -> review::BoxFuture<'a, Result<Option<review::RequestFacts>, review::PortError>> {
        Box::pin(async move {
            let client = Client::clone(&self.client.load());
            client
                .get_access_request(id)
                .await
                .map(|r| r.map(facts))
                .map_err(port_error)
        })
    }

    fn submit<'a>(
        &'a self,
        id: &'a str,
        author: &'a str,
        verdict: Verdict,
        reason: &'a str,
    ) -> review::BoxFuture<'a, Result<review::RequestFacts, review::SubmitError>> {
        Box::pin(async move {
            let client = Client::clone(&self.client.load());
            let input = crate::teleport::client::ReviewInput {
                author: Some(author.to_owned()),
                on_behalf: true,
                proposed_state: match verdict {
                    Verdict::Approve => RequestState::Approved,
                    Verdict::Deny => RequestState::Denied,
                },
                reason: reason.to_owned(),
            };
            match client.submit_access_review(id, input).await {
                Ok(r) => Ok(facts(r)),
                Err(TeleportError::AlreadyReviewed(_)) => Err(review::SubmitError::AlreadyReviewed),
                Err(TeleportError::PermissionDenied(m)) => {
                    if let Some(s) = resolved_state(&m) {
                        Err(review::SubmitError::Resolved(s))
                    } else if m.contains("cannot submit reviews on behalf of") {
                        // Which of the two: the server's version says.
                        match client.ping().await.map(|p| p.server_version) {
                            Ok(v)
                                if !crate::teleport::client::version_at_least(
                                    &v,
                                    review::ON_BEHALF_SINCE,
                                ) =>
                            {
                                Err(review::SubmitError::ServerTooOld(v))
                            }
                            _ => Err(review::SubmitError::ForUsersNotPermitted),
                        }
                    } else {
                        Err(review::SubmitError::NotAllowed(m))
                    }
                }
                // An unknown author ("user \"x\" is not found") is the
                // mapping's fault, not the request's.
                Err(TeleportError::NotFound(m)) if m.starts_with("user ") => {
                    Err(review::SubmitError::NotAllowed(m))
                }
                Err(TeleportError::NotFound(_)) => Err(review::SubmitError::Gone),
                Err(e) => Err(review::SubmitError::Failed(e.to_string())),
            }
        })
    }

    fn web_link(&self, id: &str) -> Option<String> {
        let base = self.web_proxy_url.as_deref()?;
        let id: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        Some(format!("{}/web/requests/{id}", base.trim_end_matches('/')))
    }
}

/// The notices' Teleport ports ([`crate::notify::UserPort`],
/// [`crate::notify::reminders::ListPort`]) through whichever client is
/// current.
#[derive(Debug, Clone)]
pub struct TeleportNotices {
    client: Arc<ArcSwap<Client>>,
    web_proxy_url: Option<String>,
}

impl TeleportNotices {
    /// Over the watch's client cell; `web_proxy_url` as the cluster's.
    pub fn new(client: Arc<ArcSwap<Client>>, web_proxy_url: Option<String>) -> Self {
        Self {
            client,
            web_proxy_url,
        }
    }
}

impl crate::notify::UserPort for TeleportNotices {
    fn traits<'a>(
        &'a self,
        user: &'a str,
    ) -> crate::notify::BoxFuture<'a, Result<Option<crate::notify::Traits>, String>> {
        Box::pin(async move {
            let client = Client::clone(&self.client.load());
            match client.get_user(user).await {
                Ok(u) => Ok(Some(u.traits)),
                Err(TeleportError::NotFound(_)) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

fn list_facts(l: crate::teleport::AccessList) -> crate::notify::reminders::ListFacts {
    crate::notify::reminders::ListFacts {
        next_audit_date: l.next_audit_date.map(time::OffsetDateTime::from),
        name: l.name,
        title: l.title,
        owners: l.owners,
        notify_before: l.notify_before,
    }
}

impl crate::notify::reminders::ListPort for TeleportNotices {
    fn lists(
        &self,
    ) -> crate::notify::BoxFuture<
        '_,
        Result<Vec<crate::notify::reminders::ListFacts>, crate::notify::reminders::ListError>,
    > {
        use crate::notify::reminders::ListError;
        Box::pin(async move {
            let client = Client::clone(&self.client.load());
            match client.list_access_lists().await {
                Ok(l) => Ok(l.into_iter().map(list_facts).collect()),
                Err(TeleportError::Rpc {
                    code: tonic::Code::Unimplemented,
                    ..
                }) => Err(ListError::Unimplemented),
                Err(TeleportError::PermissionDenied(m)) => Err(ListError::Denied(m)),
                Err(e) => Err(ListError::Failed(e.to_string())),
            }
        })
    }

    fn data<'a>(
        &'a self,
        list: &'a str,
    ) -> crate::notify::BoxFuture<'a, Result<BTreeMap<String, String>, String>> {
        Box::pin(async move {
            let client = Client::clone(&self.client.load());
            client
                .get_access_list_plugin_data(crate::plugindata::PLUGIN_NAME, list)
                .await
                .map(Option::unwrap_or_default)
                .map_err(|e| e.to_string())
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        list: &'a str,
        set: BTreeMap<String, String>,
        expect: BTreeMap<String, String>,
    ) -> crate::notify::BoxFuture<'a, Result<(), crate::notify::reminders::CasError>> {
        use crate::notify::reminders::CasError;
        Box::pin(async move {
            let client = Client::clone(&self.client.load());
            match client
                .update_access_list_plugin_data(crate::plugindata::PLUGIN_NAME, list, set, expect)
                .await
            {
                Ok(()) => Ok(()),
                Err(TeleportError::CompareFailed(_)) => Err(CasError::Conflict),
                Err(e) => Err(CasError::Failed(e.to_string())),
            }
        })
    }

    fn web_url(&self) -> Option<String> {
        self.web_proxy_url.clone()
    }
}
