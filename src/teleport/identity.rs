//! Credentials: the identity file (`tctl auth sign --format=file`, tbot's
//! `identity` output) and the `client_key`/`client_crt`/`root_cas` triple
//! (`--format=tls`).
//!
//! The identity file is parsed like upstream's `decodeIdentityFile`: line by
//! line, trimmed; `-----BEGIN` starts a PEM block read through `-----END`; the
//! first PEM block is the private key (PKCS#1 `RSA PRIVATE KEY`, PKCS#8
//! `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`), the second the TLS certificate,
//! every later one a cluster CA; an `*-cert-v01@openssh.com` line is the SSH
//! certificate and `@cert-authority` lines are SSH CAs (both unused by us);
//! other lines are ignored.
//!
//! Checks, each with an error naming the file: unreadable file, malformed or
//! missing block, a key that does not match the certificate, and an expired
//! TLS certificate (refused with upstream's advice). A world-readable key
//! file, an expired CA or a certificate not yet valid are warnings (logged
//! and kept in [`Identity::warnings`]). The SSH certificate is not checked
//! (we never use SSH).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{TeleportError, rfc3339};
use crate::config::Credentials;

/// Where the credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An identity file.
    IdentityFile(PathBuf),
    /// The `--format=tls` triple.
    KeyPair {
        /// Private key PEM.
        key: PathBuf,
        /// Certificate PEM.
        cert: PathBuf,
        /// Cluster CAs PEM.
        root_cas: PathBuf,
    },
}

impl CredentialSource {
    /// From the `[teleport]` config.
    pub fn from_config(c: &Credentials) -> Self {
        match c {
            Credentials::IdentityFile { path, .. } => Self::IdentityFile(path.clone()),
            Credentials::KeyPair {
                key,
                cert,
                root_cas,
            } => Self::KeyPair {
                key: key.clone(),
                cert: cert.clone(),
                root_cas: root_cas.clone(),
            },
        }
    }

    /// Reads and checks the credentials now; warnings are logged.
    pub fn load(&self) -> Result<Identity, TeleportError> {
        let id = match self {
            Self::IdentityFile(path) => {
                let text = read(path)?;
                let mut id = parse_identity_file(&text, path, SystemTime::now())?;
                if let Some(w) = world_readable(path) {
                    id.warnings.push(w);
                }
                id
            }
            Self::KeyPair {
                key,
                cert,
                root_cas,
            } => {
                let mut id = parse_triple(
                    (&read(key)?, key),
                    (&read(cert)?, cert),
                    (&read(root_cas)?, root_cas),
                    SystemTime::now(),
                )?;
                if let Some(w) = world_readable(key) {
                    id.warnings.push(w);
                }
                id
            }
        };
        for w in &id.warnings {
            tracing::warn!(source = %self, "{w}");
        }
        Ok(id)
    }

    /// A digest of the files' contents, to notice a rotation.
    pub fn fingerprint(&self) -> Result<Vec<u8>, TeleportError> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        match self {
            Self::IdentityFile(p) => ctx.update(read(p)?.as_bytes()),
            Self::KeyPair {
                key,
                cert,
                root_cas,
            } => {
                for p in [key, cert, root_cas] {
                    ctx.update(read(p)?.as_bytes());
                }
            }
        }
        Ok(ctx.finish().as_ref().to_vec())
    }
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IdentityFile(p) => write!(f, "{}", p.display()),
            Self::KeyPair { cert, .. } => write!(f, "{} (+ key, CAs)", cert.display()),
        }
    }
}

/// Loaded, checked credentials.
pub struct Identity {
    key: PrivateKeyDer<'static>,
    cert_chain: Vec<CertificateDer<'static>>,
    cas: Vec<CertificateDer<'static>>,
    /// Teleport user (subject CN of the certificate).
    pub username: String,
    /// Cluster name (issuer CN of the certificate, the cluster's user CA).
    pub cluster_name: String,
    /// Certificate expiry.
    pub not_after: SystemTime,
    /// Certificate serial number, hex.
    pub serial: String,
    /// Problems worth a warning that do not stop us.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("username", &self.username)
            .field("cluster_name", &self.cluster_name)
            .field("not_after", &rfc3339(self.not_after))
            .field("serial", &self.serial)
            .field("cas", &self.cas.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone_key(),
            cert_chain: self.cert_chain.clone(),
            cas: self.cas.clone(),
            username: self.username.clone(),
            cluster_name: self.cluster_name.clone(),
            not_after: self.not_after,
            serial: self.serial.clone(),
            warnings: self.warnings.clone(),
        }
    }
}

impl Identity {
    /// The private key (only the TLS layer reads it).
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
    /// The client certificate chain.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }
    /// The cluster CAs we trust.
    pub fn cas(&self) -> &[CertificateDer<'static>] {
        &self.cas
    }
}

fn read(path: &Path) -> Result<String, TeleportError> {
    std::fs::read_to_string(path).map_err(|source| TeleportError::CredentialsRead {
        path: path.to_owned(),
        source,
    })
}

#[cfg(unix)]
fn world_readable(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "credentials file {} is world-readable (mode {:o}); restrict it with chmod 600",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn world_readable(_path: &Path) -> Option<String> {
    None
}

fn malformed(path: &Path, reason: impl Into<String>) -> TeleportError {
    TeleportError::CredentialsMalformed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Parses an identity file's text. `now` decides expiry.
pub fn parse_identity_file(
    text: &str,
    path: &Path,
    now: SystemTime,
) -> Result<Identity, TeleportError> {
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut ssh_cert = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END") {
                blocks.extend(current.take());
            }
            continue;
        }
        if line.starts_with("-----BEGIN") {
            current = Some(format!("{line}\n"));
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|t| t.ends_with("-cert-v01@openssh.com"))
        {
            ssh_cert = true;
        }
    }
    if let Some(open) = current {
        let label = shown_label(open.lines().next().unwrap_or_default());
        return Err(malformed(
            path,
            format!("PEM block {label} has no -----END line"),
        ));
    }
    if !ssh_cert {
        tracing::debug!(path = %path.display(), "identity file has no SSH certificate line (not needed)");
    }
    let mut it = blocks.iter();
    let key_pem = it.next().ok_or_else(|| {
        malformed(
            path,
            "no PEM blocks: expected a private key, a TLS certificate and CA certificates",
        )
    })?;
    let key = parse_key(key_pem, path)?;
    let cert_pem = it
        .next()
        .ok_or_else(|| malformed(path, "no TLS certificate block after the private key"))?;
    let cert = parse_cert(cert_pem, path, "TLS certificate")?;
    let mut cas = Vec::new();
    for (i, b) in it.enumerate() {
        cas.push(parse_cert(b, path, &format!("CA certificate #{}", i + 1))?);
    }
    if cas.is_empty() {
        return Err(malformed(
            path,
            "no CA certificate blocks after the TLS certificate",
        ));
    }
    build(key, vec![cert], cas, (path, path, path), now)
}

/// Parses the `--format=tls` triple: `(text, path)` for key, certificate and CAs.
pub fn parse_triple(
    key: (&str, &Path),
    cert: (&str, &Path),
    cas: (&str, &Path),
    now: SystemTime,
) -> Result<Identity, TeleportError> {
    let k = parse_key(key.0, key.1)?;
    let chain = parse_all_certs(cert.0, cert.1)?;
    let roots = parse_all_certs(cas.0, cas.1)?;
    build(k, chain, roots, (key.1, cert.1, cas.1), now)
}

/// A `-----BEGIN ...-----` line as shown in an error: the quoted label when
/// it looks like one (RFC 7468: upper-case letters, digits, spaces, hyphens;
/// short), else a description. The line itself is never echoed: when an
/// identity file has lost its line breaks, the "label" runs on into the
/// base64 key, which must not reach an error message or a log.
fn shown_label(begin_line: &str) -> String {
    let rest = begin_line.trim().trim_start_matches("-----BEGIN");
    let label = rest.trim_start().strip_suffix("-----").unwrap_or(rest);
    let plausible = !label.is_empty()
        && label.len() <= 40
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'-');
    if plausible {
        format!("\"{label}\"")
    } else {
        "a malformed -----BEGIN line (not shown: it may hold key material)".to_owned()
    }
}

/// A PEM error without the input it quotes: `IllegalSectionStart` and
/// `MissingSectionEnd` carry a line of the file, which may be key material.
fn pem_problem(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a PEM section has no matching -----END line".to_owned(),
        E::IllegalSectionStart { .. } => "a malformed -----BEGIN line".to_owned(),
        other => other.to_string(),
    }
}

fn parse_key(pem: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TeleportError> {
    let label = pem
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("-----BEGIN ")
        .trim_end_matches("-----")
        .to_owned();
    match label.as_str() {
        "RSA PRIVATE KEY" | "PRIVATE KEY" | "EC PRIVATE KEY" => {}
        "OPENSSH PRIVATE KEY" | "PIV YUBIKEY PRIVATE KEY" => {
            return Err(malformed(
                path,
                format!(
                    "private key type \"{label}\" is not supported; sign the identity with a software RSA or ECDSA key"
                ),
            ));
        }
        _ => {
            return Err(malformed(
                path,
                format!(
                    "expected a private key block first, found {}",
                    shown_label(pem.lines().next().unwrap_or_default())
                ),
            ));
        }
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        malformed(
            path,
            format!(
                "private key block ({label}) is not valid: {}",
                pem_problem(&e)
            ),
        )
    })
}

fn parse_cert(
    pem: &str,
    path: &Path,
    what: &str,
) -> Result<CertificateDer<'static>, TeleportError> {
    if !pem.starts_with("-----BEGIN CERTIFICATE-----\n") {
        let label = shown_label(pem.lines().next().unwrap_or_default());
        return Err(malformed(
            path,
            format!("{what}: expected a CERTIFICATE block, found {label}"),
        ));
    }
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        malformed(
            path,
            format!("{what} is not valid PEM: {}", pem_problem(&e)),
        )
    })
}

fn parse_all_certs(text: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TeleportError> {
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            malformed(
                path,
                format!("not valid certificate PEM: {}", pem_problem(&e)),
            )
        })?;
    if certs.is_empty() {
        return Err(malformed(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

struct CertInfo {
    subject_cn: String,
    issuer_cn: String,
    not_before: SystemTime,
    not_after: SystemTime,
    serial: String,
}

fn cert_info(der: &CertificateDer<'_>, path: &Path, what: &str) -> Result<CertInfo, TeleportError> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| {
        malformed(
            path,
            format!("{what} is not a valid X.509 certificate: {e}"),
        )
    })?;
    let cn = |name: &X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let to_time = |t: ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            UNIX_EPOCH + std::time::Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
        }
    };
    Ok(CertInfo {
        subject_cn: cn(cert.subject()),
        issuer_cn: cn(cert.issuer()),
        not_before: to_time(cert.validity().not_before),
        not_after: to_time(cert.validity().not_after),
        serial: cert.raw_serial_as_string().replace(':', ""),
    })
}

fn build(
    key: PrivateKeyDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    cas: Vec<CertificateDer<'static>>,
    (key_path, cert_path, cas_path): (&Path, &Path, &Path),
    now: SystemTime,
) -> Result<Identity, TeleportError> {
    let provider = rustls::crypto::ring::default_provider();
    let leaf = chain
        .first()
        .cloned()
        .ok_or_else(|| malformed(cert_path, "no certificate"))?;
    let info = cert_info(&leaf, cert_path, "TLS certificate")?;
    match CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider) {
        Ok(_) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TeleportError::KeyMismatch {
                key_path: key_path.to_owned(),
                cert_path: cert_path.to_owned(),
            });
        }
        Err(e) => {
            return Err(malformed(
                key_path,
                format!("private key cannot be used: {e}"),
            ));
        }
    }
    if info.not_after < now {
        return Err(TeleportError::CredentialsExpired {
            path: cert_path.to_owned(),
            what: format!("TLS certificate expired at {}", rfc3339(info.not_after)),
        });
    }
    let mut warnings = Vec::new();
    if info.not_before > now {
        warnings.push(format!(
            "TLS certificate in {} is not valid before {} (clock skew?)",
            cert_path.display(),
            rfc3339(info.not_before)
        ));
    }
    let mut valid_cas = 0;
    for (i, ca) in cas.iter().enumerate() {
        let ci = cert_info(ca, cas_path, &format!("CA certificate #{}", i + 1))?;
        if ci.not_after < now {
            warnings.push(format!(
                "CA certificate #{} ({}) in {} expired at {}",
                i + 1,
                ci.subject_cn,
                cas_path.display(),
                rfc3339(ci.not_after)
            ));
        } else {
            valid_cas += 1;
        }
    }
    if valid_cas == 0 {
        return Err(TeleportError::CredentialsExpired {
            path: cas_path.to_owned(),
            what: "every CA certificate has expired".to_owned(),
        });
    }
    if valid_cas < cas.len() {
        warnings.push(
            "At least one non-expired credential has been found, continuing startup".to_owned(),
        );
    }
    Ok(Identity {
        key,
        cert_chain: chain,
        cas,
        username: info.subject_cn,
        cluster_name: info.issuer_cn,
        not_after: info.not_after,
        serial: info.serial,
        warnings,
    })
}
