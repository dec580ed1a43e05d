//! Test PKI generated at run time: a cluster CA (subject and issuer CN = the
//! cluster name, like Teleport's user and host CAs), an Auth server
//! certificate for `teleport.cluster.local`, and client certificates
//! (subject CN = Teleport user, O = roles), all ECDSA P-256.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};

use super::EmulatorError;
use crate::util::API_DOMAIN;

/// A client certificate and its key, PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// Certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 private key PEM.
    pub key_pem: String,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// The cluster's certificate authority.
pub struct Pki {
    cluster: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    next_serial: u64,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

fn err(e: rcgen::Error) -> EmulatorError {
    EmulatorError::Pki(e.to_string())
}

impl Pki {
    /// A new CA for `cluster`, valid for a day around now.
    pub fn new(cluster: &str) -> Result<Self, EmulatorError> {
        let now = SystemTime::now();
        Self::with_validity(
            cluster,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(24 * 3600),
        )
    }

    /// A new CA for `cluster` valid in `[not_before, not_after]`.
    pub fn with_validity(
        cluster: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Self, EmulatorError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, cluster);
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(SerialNumber::from(vec![1]));
        let key = KeyPair::generate().map_err(err)?;
        Ok(Self {
            cluster: cluster.to_owned(),
            ca: CertifiedIssuer::self_signed(params, key).map_err(err)?,
            next_serial: 0x1000,
        })
    }

    /// The cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.ca.der().clone()
    }

    fn serial(&mut self) -> (SerialNumber, String) {
        self.next_serial += 1;
        let bytes = self.next_serial.to_be_bytes().to_vec();
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        (SerialNumber::from(trimmed.clone()), hex::encode(trimmed))
    }

    /// The Auth server's certificate for `teleport.cluster.local`.
    pub fn issue_server(&mut self) -> Result<IssuedCert, EmulatorError> {
        let mut params =
            CertificateParams::new(vec![API_DOMAIN.to_owned(), "localhost".to_owned()])
                .map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, "auth");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Auth");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(
            params,
            SystemTime::now() - Duration::from_secs(60),
            SystemTime::now() + Duration::from_secs(24 * 3600),
            None,
        )
    }

    /// A client certificate for `user` with `roles`, valid in `[not_before, not_after]`.
    pub fn issue_client(
        &mut self,
        user: &str,
        roles: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCert, EmulatorError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, user);
        for r in roles {
            params.distinguished_name.push(DnType::OrganizationName, *r);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, not_before, not_after, None)
    }

    /// A client certificate for `user` over an existing PKCS#8 key (e.g. RSA).
    pub fn issue_client_with_key(
        &mut self,
        user: &str,
        key_pkcs8_pem: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCert, EmulatorError> {
        let key = KeyPair::from_pem(key_pkcs8_pem).map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, not_before, not_after, Some(key))
    }

    fn sign(
        &mut self,
        mut params: CertificateParams,
        not_before: SystemTime,
        not_after: SystemTime,
        key: Option<KeyPair>,
    ) -> Result<IssuedCert, EmulatorError> {
        let (sn, serial) = self.serial();
        params.serial_number = Some(sn);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = match key {
            Some(k) => k,
            None => KeyPair::generate().map_err(err)?,
        };
        let cert = params.signed_by(&key, &self.ca).map_err(err)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial,
        })
    }
}

/// An identity file in `tctl auth sign --format=file` layout: key, SSH
/// certificate line, TLS certificate, SSH CA line, TLS CA(s).
pub fn identity_file(cert: &IssuedCert, cluster: &str, ca_pems: &[String]) -> String {
    let mut out = String::new();
    let push_block = |out: &mut String, s: &str| {
        out.push_str(s);
        if !s.ends_with('\n') {
            out.push('\n');
        }
    };
    push_block(&mut out, &cert.key_pem);
    // A placeholder SSH certificate: the right shape, never used by the plugin.
    push_block(
        &mut out,
        &format!(
            "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t{} emulator\n",
            cert.serial
        ),
    );
    push_block(&mut out, &cert.cert_pem);
    push_block(
        &mut out,
        &format!(
            "@cert-authority {cluster},*.{cluster} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorHostCA type=host\n"
        ),
    );
    for ca in ca_pems {
        push_block(&mut out, ca);
    }
    out
}
