//! The emulator's application, as the Developer Portal shows it: its ID, its
//! Ed25519 key pair ("Public Key" on the General Information page) and the
//! signing of every request Discord sends to the Interactions Endpoint URL.
//!
//! Discord signs `X-Signature-Timestamp` + the raw body with the
//! application's private key and puts the hex signature in
//! `X-Signature-Ed25519` (`discord-api.md` §3.1). The private key is made at
//! start from the system's secure random source and never leaves this struct:
//! its `Debug` shows the ID and the public key only.

use ed25519_dalek::{Signer, SigningKey};

/// An application with its key pair.
pub(crate) struct Application {
    id: String,
    key: SigningKey,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("id", &self.id)
            .field("public_key", &self.public_key_hex())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// A new application with a fresh key pair.
    pub(crate) fn generate(id: String) -> std::io::Result<Self> {
        let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| std::io::Error::other("the system random source failed"))?;
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(Self { id, key })
    }

    /// The application (and client) ID.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The public key, hex, as the Developer Portal shows it.
    pub(crate) fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// The hex Ed25519 signature of `timestamp` followed by `body`.
    pub(crate) fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut message = Vec::with_capacity(timestamp.len() + body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(body);
        hex::encode(self.key.sign(&message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    use super::*;

    #[test]
    fn signature_verifies_with_the_public_key_only_over_timestamp_and_body() {
        let app = Application::generate("1".to_owned()).expect("key");
        let public: [u8; 32] = hex::decode(app.public_key_hex())
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        let public = VerifyingKey::from_bytes(&public).expect("point");
        let sig: [u8; 64] = hex::decode(app.sign("1700000000", b"{\"type\":1}"))
            .expect("hex")
            .try_into()
            .expect("64 bytes");
        let sig = Signature::from_bytes(&sig);
        assert!(public.verify(b"1700000000{\"type\":1}", &sig).is_ok());
        assert!(public.verify(b"1700000001{\"type\":1}", &sig).is_err());
        assert!(public.verify(b"1700000000{\"type\":2}", &sig).is_err());
    }

    #[test]
    fn keys_differ_per_application_and_debug_hides_the_private_key() {
        let a = Application::generate("1".to_owned()).expect("key");
        let b = Application::generate("1".to_owned()).expect("key");
        assert_ne!(a.public_key_hex(), b.public_key_hex());
        let secret = hex::encode(a.key.to_bytes());
        let debug = format!("{a:?}");
        assert!(!debug.contains(&secret), "{debug}");
        assert!(debug.contains(&a.public_key_hex()));
    }
}
