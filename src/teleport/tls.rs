//! The rustls client configuration for Teleport: ring provider, trust in the
//! cluster CAs from our credentials only (no system roots), our client
//! certificate, SNI `teleport.cluster.local`, and ALPN `h2` (direct to Auth)
//! or `teleport-auth@<hex(cluster)>.teleport.cluster.local` then `h2`
//! (through a Proxy with TLS routing, which forwards the raw TLS to Auth so
//! mutual TLS stays end to end).

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use super::identity::Identity;
use super::{API_DOMAIN, TeleportError};

/// ALPN prefix the Proxy's router matches to forward TLS to Auth.
pub const AUTH_ROUTING_PREFIX: &str = "teleport-auth@";

/// `teleport-auth@<hex(cluster)>.teleport.cluster.local`.
pub fn auth_routing_alpn(cluster: &str) -> String {
    format!(
        "{AUTH_ROUTING_PREFIX}{}.{API_DOMAIN}",
        hex::encode(cluster.as_bytes())
    )
}

/// ALPN protocols to offer: `h2` only directly, routing value first through a Proxy.
pub fn alpn_protocols(via_proxy: bool, cluster: &str) -> Vec<Vec<u8>> {
    let mut v = Vec::with_capacity(2);
    if via_proxy {
        v.push(auth_routing_alpn(cluster).into_bytes());
    }
    v.push(b"h2".to_vec());
    v
}

/// The server name we send and verify.
pub fn server_name() -> Result<ServerName<'static>, TeleportError> {
    ServerName::try_from(API_DOMAIN).map_err(|e| TeleportError::Tls(e.to_string()))
}

/// Builds the client configuration from an identity.
pub fn client_config(
    identity: &Identity,
    via_proxy: bool,
) -> Result<Arc<ClientConfig>, TeleportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in identity.cas() {
        roots
            .add(ca.clone())
            .map_err(|e| TeleportError::Tls(format!("cluster CA not usable: {e}")))?;
    }
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TeleportError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(identity.cert_chain().to_vec(), identity.key())
        .map_err(|e| TeleportError::Tls(format!("client certificate not usable: {e}")))?;
    cfg.alpn_protocols = alpn_protocols(via_proxy, &identity.cluster_name);
    Ok(Arc::new(cfg))
}
