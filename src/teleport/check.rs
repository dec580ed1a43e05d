//! `teleport-discord check`: connect with the configured credentials, ping,
//! open a watch, and probe plugin-data write permission, without changing
//! anything in the cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::client::{Client, ConnectOptions, Mode};
use super::identity::CredentialSource;
use super::{KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST, TeleportError, pb, rfc3339};
use crate::config::TeleportConfig;

/// Plugin name used for the write probe.
pub const PROBE_PLUGIN: &str = "discord";
/// Request ID used for the write probe: no such request exists, so a
/// permitted write answers NotFound and a forbidden one PermissionDenied.
pub const PROBE_REQUEST_ID: &str = "00000000-0000-0000-0000-000000000000";

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Direct or through a Proxy.
    pub mode: Mode,
    /// User of our certificate.
    pub username: String,
    /// Certificate expiry (RFC 3339).
    pub cert_expires: String,
    /// Cluster name from Ping.
    pub cluster_name: String,
    /// Server version from Ping.
    pub server_version: String,
    /// Kinds the watch confirmed, or why it failed.
    pub watch: Result<Vec<String>, String>,
    /// Whether plugin data may be written, or why not.
    pub plugin_data_write: Result<(), String>,
    /// Whether the role may use semaphores (the leader lease), or why not.
    pub semaphores: Result<(), String>,
    /// Credential warnings.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Auth => "directly to the Auth Service",
            Mode::Proxy => "through a TLS-routing Proxy",
        };
        writeln!(f, "Teleport: connected {mode} as {}", self.username)?;
        writeln!(
            f,
            "  cluster: {}, version {}",
            self.cluster_name, self.server_version
        )?;
        writeln!(f, "  certificate expires: {}", self.cert_expires)?;
        match &self.watch {
            Ok(kinds) => writeln!(f, "  watch: ok ({})", kinds.join(", "))?,
            Err(e) => writeln!(f, "  watch: FAILED: {e}")?,
        }
        match &self.plugin_data_write {
            Ok(()) => writeln!(f, "  plugin data write: ok")?,
            Err(e) => writeln!(f, "  plugin data write: FAILED: {e}")?,
        }
        match &self.semaphores {
            Ok(()) => writeln!(f, "  leader lease (semaphores): ok")?,
            Err(e) => writeln!(
                f,
                "  leader lease (semaphores): NOT ALLOWED: {e}; with [lease] mode = \"auto\" every replica sends (they share the bot's rate limits), with \"lease\" nothing is sent. Add the rule `semaphore: [create, update, read, list]` to the plugin's role"
            )?,
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

impl CheckReport {
    /// Whether everything the plugin needs works.
    pub fn ok(&self) -> bool {
        self.watch
            .as_ref()
            .is_ok_and(|k| k.iter().any(|k| k == KIND_ACCESS_REQUEST))
            && self.plugin_data_write.is_ok()
    }
}

/// Runs the check; an error means we could not even ping.
pub async fn check_connectivity(cfg: &TeleportConfig) -> Result<CheckReport, TeleportError> {
    let opts = ConnectOptions::from_config(cfg);
    check_with(&opts, &CredentialSource::from_config(&cfg.credentials)).await
}

/// [`check_connectivity`] with explicit options.
pub async fn check_with(
    opts: &ConnectOptions,
    source: &CredentialSource,
) -> Result<CheckReport, TeleportError> {
    let identity = Arc::new(source.load()?);
    let warnings = identity.warnings.clone();
    let client = Client::connect(opts, identity.clone()).await?;
    let ping = client.ping().await?;
    let watch = probe_watch(&client).await.map_err(|e| e.to_string());
    let plugin_data_write = match client
        .update_plugin_data(
            PROBE_PLUGIN,
            PROBE_REQUEST_ID,
            BTreeMap::new(),
            BTreeMap::from([("probe".to_owned(), String::new())]),
        )
        .await
    {
        Ok(()) | Err(TeleportError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    let semaphores = probe_semaphores(&client).await;
    Ok(CheckReport {
        mode: opts.mode,
        username: identity.username.clone(),
        cert_expires: rfc3339(identity.not_after),
        cluster_name: ping.cluster_name,
        server_version: ping.server_version,
        watch,
        plugin_data_write,
        semaphores,
        warnings,
    })
}

/// Asks for a lease that expired in 1970: Teleport checks the role's
/// `semaphore` rules (create, update) before it looks at the request, then
/// refuses the expired lease without writing anything.
async fn probe_semaphores(client: &Client) -> Result<(), String> {
    let expired = std::time::UNIX_EPOCH + Duration::from_secs(1);
    match client
        .acquire_lease(
            crate::lease::SEMAPHORE_KIND,
            crate::lease::SEMAPHORE_NAME,
            expired,
            "teleport-discord check",
        )
        .await
    {
        Err(TeleportError::PermissionDenied(m)) => Err(m),
        // Refused as expired (or, on a server that took it, a lease that is
        // already over): the role may use semaphores.
        _ => Ok(()),
    }
}

async fn probe_watch(client: &Client) -> Result<Vec<String>, TeleportError> {
    let kinds = [
        KIND_ACCESS_REQUEST.to_owned(),
        KIND_ACCESS_MONITORING_RULE.to_owned(),
    ];
    let mut stream = client.watch_events(&kinds, true).await?;
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .map_err(|_| TeleportError::WatchInit("watcher initialization timed out".into()))?
        .map_err(|s| TeleportError::from_status("WatchEvents", &s))?
        .ok_or_else(|| TeleportError::StreamClosed("stream ended before OpInit".into()))?;
    match ev.resource {
        Some(pb::proto::event::Resource::WatchStatus(ws)) if ev.r#type == 0 => Ok(ws
            .spec
            .map(|s| s.kinds.into_iter().map(|k| k.kind).collect())
            .unwrap_or_default()),
        _ if ev.r#type == 0 => Ok(kinds.to_vec()),
        _ => Err(TeleportError::WatchInit(format!(
            "unexpected event type {}",
            ev.r#type
        ))),
    }
}

/// What `check` found for reviews from Discord and direct notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewProbe {
    /// Ping's version.
    pub server_version: String,
    /// `ListUsers` with the trait filter (`None` when the trait is not used).
    pub list_users: Option<Result<(), String>>,
    /// `ListAccessLists`: how many lists, or why not.
    pub access_lists: Result<usize, String>,
}

/// Connects and probes what reviews from Discord and direct notices need:
/// the server's version, `ListUsers` with a trait filter when `trait_name`
/// is set (for a value no user holds), and `ListAccessLists`. Nothing is
/// changed.
pub async fn probe_reviews(
    cfg: &TeleportConfig,
    trait_name: &str,
) -> Result<ReviewProbe, TeleportError> {
    let opts = ConnectOptions::from_config(cfg);
    let identity = Arc::new(CredentialSource::from_config(&cfg.credentials).load()?);
    let client = Client::connect(&opts, identity).await?;
    let ping = client.ping().await?;
    let list_users = if trait_name.is_empty() {
        None
    } else {
        Some(
            client
                .users_with_trait(trait_name, "0")
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        )
    };
    let access_lists = match client.list_access_lists().await {
        Ok(l) => Ok(l.len()),
        Err(TeleportError::Rpc {
            code: tonic::Code::Unimplemented,
            ..
        }) => Err("this Auth Service does not implement access lists".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    Ok(ReviewProbe {
        server_version: ping.server_version,
        list_users,
        access_lists,
    })
}
