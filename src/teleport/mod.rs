//! The Teleport client: Teleport's real gRPC API (`proto.AuthService`) over
//! mutual TLS, with identity files or the `--format=tls` triple, directly to
//! the Auth Service or through a Proxy with TLS routing.
//!
//! # Layout
//! - [`pb`]: code generated from our own trimmed protos in `proto/`.
//! - [`identity`]: reading credentials (identity file, TLS triple), expiry and
//!   permission checks.
//! - [`tls`]: the rustls client configuration (SNI, ALPN, cluster CAs).
//! - [`client`]: the gRPC calls ([`client::Client`]).
//! - [`model`]: our own domain types ([`model::AccessRequest`], [`model::WatchEvent`]),
//!   converted from the generated ones.
//! - [`watch`]: the supervised watch task (reconnect, readiness, metrics,
//!   identity refresh).
//! - [`check`]: the connectivity check behind `teleport-discord check`.
//!
//! # Connection mode
//! `connect_via = "auto"` picks direct Auth (ALPN `h2`) when the port is
//! 3025 and a TLS-routing Proxy (ALPN `teleport-auth@<hex(cluster)>.teleport.cluster.local`,
//! then `h2`) otherwise; the cluster name comes from the issuer of our client
//! certificate. `"auth"` / `"proxy"` force one. A Proxy behind an L7 load
//! balancer (WebSocket connection upgrade, `/webapi/connectionupgrade`) is not
//! supported yet: the handshake then fails with [`TeleportError::Unsupported`]-style
//! advice in the error text.
//!
//! # Metadata
//! We send no `version` metadata header: Auth skips its client-version check
//! when the header is absent, and a non-semver value would get us cut off.

pub mod check;
pub mod client;
pub mod identity;
pub mod model;
pub mod tls;
pub mod watch;

use std::path::PathBuf;
use std::time::SystemTime;

pub use check::{CheckReport, check_connectivity};
pub use client::{Client, ConnectOptions, Mode, PingInfo, SemaphoreLease};
pub use identity::{CredentialSource, Identity};
pub use model::{
    AccessList, AccessMonitoringRule, AccessRequest, AccessReview, RequestKind, RequestState,
    ReviewThreshold, User, WatchEvent,
};
pub use watch::{WatchConfig, WatchHandle, WatchMetrics, Watcher};

/// Generated protobuf and gRPC client code.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    rust_2018_idioms,
    clippy::all,
    clippy::pedantic
)]
pub mod pb {
    /// Package `proto` (AuthService, Event, Watch, ...).
    pub mod proto {
        tonic::include_proto!("proto");
    }
    /// Package `types` (AccessRequestV3, PluginDataV3, RoleV6, ...).
    pub mod types {
        tonic::include_proto!("types");
    }
    /// Package `wrappers` (LabelValues).
    pub mod wrappers {
        tonic::include_proto!("wrappers");
    }
    /// Packages under `teleport.`.
    pub mod teleport {
        /// `teleport.header.v1`.
        pub mod header {
            /// `teleport.header.v1`.
            pub mod v1 {
                tonic::include_proto!("teleport.header.v1");
            }
        }
        /// `teleport.users.v1`.
        pub mod users {
            /// `teleport.users.v1`.
            pub mod v1 {
                tonic::include_proto!("teleport.users.v1");
            }
        }
        /// `teleport.accesslist.v1`.
        pub mod accesslist {
            /// `teleport.accesslist.v1`.
            pub mod v1 {
                tonic::include_proto!("teleport.accesslist.v1");
            }
        }
        /// `teleport.accessmonitoringrules.v1`.
        pub mod accessmonitoringrules {
            /// `teleport.accessmonitoringrules.v1`.
            pub mod v1 {
                tonic::include_proto!("teleport.accessmonitoringrules.v1");
            }
        }
    }
}

/// Resource kind of access requests (watch kinds, plugin data).
pub const KIND_ACCESS_REQUEST: &str = "access_request";
/// Resource kind of access lists (their plugin data holds review reminders).
pub const KIND_ACCESS_LIST: &str = "access_list";
/// Resource kind of access monitoring rules.
pub const KIND_ACCESS_MONITORING_RULE: &str = "access_monitoring_rule";
/// SNI and verified server name on every Teleport-issued certificate.
pub const API_DOMAIN: &str = "teleport.cluster.local";
/// Oldest server upstream's plugins accept.
pub const MIN_SERVER_VERSION: &str = "6.1.0-beta.1";
/// Upstream's advice when every credential has expired.
pub const EXPIRED_ADVICE: &str = "No valid credentials found, this likely means credentials are expired. In this case, please sign new credentials and increase their TTL if needed.";

/// Everything that can go wrong talking to Teleport.
#[derive(Debug, thiserror::Error)]
pub enum TeleportError {
    /// A credentials file could not be read.
    #[error("cannot read Teleport credentials file {path}: {source}")]
    CredentialsRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A credentials file is not in the expected format.
    #[error("malformed Teleport credentials file {path}: {reason}")]
    CredentialsMalformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key in {key_path} does not match the certificate in {cert_path}")]
    KeyMismatch {
        /// File holding the key.
        key_path: PathBuf,
        /// File holding the certificate.
        cert_path: PathBuf,
    },
    /// Every credential has expired.
    #[error("{EXPIRED_ADVICE} ({path}: {what})")]
    CredentialsExpired {
        /// The file.
        path: PathBuf,
        /// What expired, and when.
        what: String,
    },
    /// Building the TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A connection to Teleport could not be made.
    #[error("cannot connect to Teleport at {addr}: {reason}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The server is too old.
    #[error("incompatible versions: {version} < {MIN_SERVER_VERSION}")]
    IncompatibleServer {
        /// The server's version.
        version: String,
    },
    /// A feature we do not implement.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A compare-and-swap precondition failed (gRPC FailedPrecondition).
    #[error("compare failed: {0}")]
    CompareFailed(String),
    /// The resource does not exist (gRPC NotFound).
    #[error("not found: {0}")]
    NotFound(String),
    /// The same author already reviewed the request (treated as success by callers).
    #[error("already reviewed: {0}")]
    AlreadyReviewed(String),
    /// A semaphore's only lease is held by someone else (`err-max-leases`).
    #[error("lease held by another replica: {0}")]
    LeaseHeld(String),
    /// Teleport refused (gRPC PermissionDenied).
    #[error("permission denied by Teleport: {0}")]
    PermissionDenied(String),
    /// Any other gRPC error.
    #[error("Teleport {method} failed: {code:?}: {message}")]
    Rpc {
        /// RPC name.
        method: &'static str,
        /// gRPC status code.
        code: tonic::Code,
        /// Status message.
        message: String,
    },
    /// The watch did not start properly (no OpInit in time, wrong first event).
    #[error("watcher initialization failed: {0}")]
    WatchInit(String),
    /// The watch stream ended.
    #[error("watcher stream closed: {0}")]
    StreamClosed(String),
    /// Teleport sent data we cannot use.
    #[error("bad data from Teleport: {0}")]
    BadData(String),
    /// `TELEPORT_PLUGIN_FAIL_FAST` is on and the watch was lost.
    #[error("{0}")]
    FailFast(String),
}

/// What a caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (connection problem, stream end, outage): retry with backoff.
    Retry,
    /// Our credentials were refused: reload them, then retry with backoff.
    Credentials,
    /// Retrying will not help.
    Fatal,
}

impl TeleportError {
    /// Maps a gRPC status from `method` to a typed error.
    pub fn from_status(method: &'static str, status: &tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::FailedPrecondition => Self::CompareFailed(message),
            tonic::Code::NotFound => Self::NotFound(message),
            tonic::Code::PermissionDenied
                if message.ends_with("has already reviewed this request") =>
            {
                Self::AlreadyReviewed(message)
            }
            tonic::Code::PermissionDenied => Self::PermissionDenied(message),
            code => Self::Rpc {
                method,
                code,
                message,
            },
        }
    }

    /// How to react to this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Connect { reason, .. } => {
                let r = reason.to_ascii_lowercase();
                if r.contains("certificate") || r.contains("handshake") || r.contains("tls") {
                    ErrorClass::Credentials
                } else {
                    ErrorClass::Retry
                }
            }
            Self::Rpc { code, .. } => classify_code(*code),
            Self::WatchInit(_) | Self::StreamClosed(_) => ErrorClass::Retry,
            Self::CredentialsRead { .. }
            | Self::CredentialsMalformed { .. }
            | Self::KeyMismatch { .. }
            | Self::CredentialsExpired { .. } => ErrorClass::Credentials,
            _ => ErrorClass::Fatal,
        }
    }
}

/// Classifies a gRPC status code for the watch loop.
pub fn classify_code(code: tonic::Code) -> ErrorClass {
    use tonic::Code;
    match code {
        Code::Unavailable
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Internal
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Ok => ErrorClass::Retry,
        Code::Unauthenticated => ErrorClass::Credentials,
        _ => ErrorClass::Fatal,
    }
}

/// Formats a time as RFC 3339 (UTC) for messages.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

#[cfg(test)]
mod tests;
