//! Discord's interactions endpoint (the application's "Interactions Endpoint
//! URL"): what it accepts and what it answers, without HTTP (the `http`
//! module serves it) and without calling anyone.
//!
//! Every delivery is checked before anything else is read: the hex Ed25519
//! signature in `X-Signature-Ed25519` must verify, with the application's
//! public key (`[discord] public_key`), over `X-Signature-Timestamp`
//! followed by the raw body, and the timestamp must be within
//! [`MAX_SKEW`] of now; otherwise the answer is 401 and nothing else happens.
//! A verified PING gets a PONG (Discord sends one when the URL is saved). An
//! interaction ID seen before (a duplicate delivery, or a captured request
//! replayed) changes nothing a second time. A verified button click
//! (MESSAGE_COMPONENT) or modal submit (MODAL_SUBMIT) is read into an
//! [`Incoming`] for the `review` module; who acted is read from the signed
//! payload (`member.user.id` in a server, `user.id` in a DM).
//!
//! The interaction token in the body is a secret (it lets its holder answer
//! as the bot for 15 minutes): it is kept as a [`Secret`] (redacted in
//! `Debug`), and bodies are never logged.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signature, VerifyingKey};

use crate::secret::Secret;
use serde_json::{Value, json};
use tokio::time::Instant;

/// How far `X-Signature-Timestamp` may be from our clock.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// How long an interaction ID is remembered: longer than a delivery can be
/// accepted for (a timestamp up to [`MAX_SKEW`] old, up to [`MAX_SKEW`] ahead).
pub const REMEMBER: Duration = Duration::from_secs(10 * 60 + 60);
/// The most interaction IDs remembered at once; past it the oldest go first.
pub const REMEMBER_MAX: usize = 100_000;

/// Discord's interaction types we tell apart.
const PING: u64 = 1;
const MESSAGE_COMPONENT: u64 = 3;
const MODAL_SUBMIT: u64 = 5;
/// Response types.
const PONG: u64 = 1;
const CHANNEL_MESSAGE: u64 = 4;
const DEFERRED_CHANNEL_MESSAGE: u64 = 5;
const MODAL: u64 = 9;
/// Message flag: only the user who acted sees it.
pub const EPHEMERAL: u64 = 1 << 6;
/// The `custom_id` of the reason's text input in our modals.
pub const REASON_INPUT: &str = "reason";
/// Longest reason the modal accepts.
pub const REASON_MAX: usize = 1000;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A signature header is missing.
    #[error("missing {0}")]
    MissingHeader(&'static str),
    /// The signature is not 64 bytes of hex, or does not verify.
    #[error("invalid request signature")]
    BadSignature,
    /// The timestamp is not Unix seconds, or too far from now.
    #[error("request timestamp outside the accepted window")]
    StaleTimestamp,
    /// Signed, but not an interaction we can read (the body is not echoed).
    #[error("malformed interaction: {0}")]
    Malformed(&'static str),
}

impl Refusal {
    /// The HTTP status: 401 for anything unverified, 400 for a verified
    /// body we cannot read.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            _ => 401,
        }
    }

    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) | Self::BadSignature => "bad_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// The application's public key, from the Developer Portal (64 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parses 64 hex digits; the error says what is wrong.
    pub fn parse(hex: &str) -> Result<Self, String> {
        let bytes = hex::decode(hex.trim()).ok().ok_or_else(|| {
            "must be hexadecimal (the Developer Portal's \"Public Key\")".to_owned()
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!("must be 32 bytes (64 hex digits), got {} bytes", b.len())
        })?;
        VerifyingKey::from_bytes(&key)
            .map_err(|_| "is not a valid Ed25519 public key".to_owned())?;
        Ok(Self(key))
    }
}

/// Checks a delivery's signature and timestamp (pure).
pub fn verify(
    key: &PublicKey,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<(), Refusal> {
    let timestamp = timestamp.ok_or(Refusal::MissingHeader("X-Signature-Timestamp"))?;
    let signature = signature.ok_or(Refusal::MissingHeader("X-Signature-Ed25519"))?;
    let sig: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(Refusal::BadSignature)?;
    let key = VerifyingKey::from_bytes(&key.0).map_err(|_| Refusal::BadSignature)?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    key.verify_strict(&message, &Signature::from_bytes(&sig))
        .map_err(|_| Refusal::BadSignature)?;
    // Only a signed timestamp is worth reading.
    let at: u64 = timestamp.parse().map_err(|_| Refusal::StaleTimestamp)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if now.abs_diff(at) > MAX_SKEW.as_secs() {
        return Err(Refusal::StaleTimestamp);
    }
    Ok(())
}

/// The interaction kinds that metrics tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PING.
    Ping,
    /// A button click.
    Component,
    /// A modal submit.
    ModalSubmit,
    /// Anything else (commands, autocomplete).
    Other,
}

impl Kind {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Component => "component",
            Self::ModalSubmit => "modal_submit",
            Self::Other => "other",
        }
    }
}

/// Who did what, read from a verified interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    /// The interaction's ID.
    pub id: String,
    /// The application's ID (for follow-up routes).
    pub application_id: String,
    /// The continuation token (a secret).
    pub token: Secret,
    /// The Discord user who clicked or submitted (from the signed payload).
    pub user_id: String,
    /// `data.custom_id`: the button's, or the modal's.
    pub custom_id: String,
}

/// A verified delivery, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// PING: answer PONG.
    Ping,
    /// An interaction ID seen before: do nothing again.
    Replayed(Kind),
    /// A button click.
    Click(Acting),
    /// A modal submit, with the reason typed (trimmed, maybe empty).
    Submit(Acting, String),
    /// An interaction this bot does not handle.
    Other,
}

impl Incoming {
    /// The kind, for metrics.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Ping => Kind::Ping,
            Self::Replayed(k) => *k,
            Self::Click(_) => Kind::Component,
            Self::Submit(..) => Kind::ModalSubmit,
            Self::Other => Kind::Other,
        }
    }
}

/// The endpoint's memory: interaction IDs seen, for [`REMEMBER`].
#[derive(Debug, Default)]
pub struct Endpoint {
    seen: Mutex<HashMap<String, Instant>>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The value of the text input `custom_id` anywhere in a modal submit's
/// components (inside a Label, or a legacy action row).
fn input_value<'a>(c: &'a Value, custom_id: &str) -> Option<&'a str> {
    if let Some(items) = c.as_array() {
        return items.iter().find_map(|i| input_value(i, custom_id));
    }
    if c.get("custom_id").and_then(Value::as_str) == Some(custom_id)
        && let Some(v) = c.get("value").and_then(Value::as_str)
    {
        return Some(v);
    }
    ["component", "components"]
        .iter()
        .filter_map(|k| c.get(k))
        .find_map(|inner| input_value(inner, custom_id))
}

impl Endpoint {
    /// An endpoint that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies a delivery and reads it. Who acted must be in the signed
    /// payload; a click or submit without it is malformed.
    pub fn accept(
        &self,
        key: &PublicKey,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Incoming, Refusal> {
        verify(key, timestamp, signature, body, now)?;
        let v: Value = serde_json::from_slice(body).map_err(|_| Refusal::Malformed("not JSON"))?;
        let kind = v
            .get("type")
            .and_then(Value::as_u64)
            .ok_or(Refusal::Malformed("no type"))?;
        if kind == PING {
            return Ok(Incoming::Ping);
        }
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| snowflake(id))
            .ok_or(Refusal::Malformed("no interaction id"))?;
        let metric_kind = match kind {
            MESSAGE_COMPONENT => Kind::Component,
            MODAL_SUBMIT => Kind::ModalSubmit,
            _ => Kind::Other,
        };
        if !self.first_time(id, Instant::now()) {
            return Ok(Incoming::Replayed(metric_kind));
        }
        if metric_kind == Kind::Other {
            return Ok(Incoming::Other);
        }
        let user_id = str_at(&v, &["member", "user", "id"])
            .or_else(|| str_at(&v, &["user", "id"]))
            .filter(|u| snowflake(u))
            .ok_or(Refusal::Malformed("no user"))?;
        let application_id = v
            .get("application_id")
            .and_then(Value::as_str)
            .filter(|a| snowflake(a))
            .ok_or(Refusal::Malformed("no application id"))?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 1024 && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(Refusal::Malformed("no token"))?;
        let custom_id = str_at(&v, &["data", "custom_id"])
            .filter(|c| !c.is_empty() && c.chars().count() <= 100)
            .ok_or(Refusal::Malformed("no custom_id"))?;
        let acting = Acting {
            id: id.to_owned(),
            application_id: application_id.to_owned(),
            token: Secret::new(token),
            user_id: user_id.to_owned(),
            custom_id: custom_id.to_owned(),
        };
        if metric_kind == Kind::Component {
            return Ok(Incoming::Click(acting));
        }
        let reason = v
            .get("data")
            .and_then(|d| d.get("components"))
            .and_then(|c| input_value(c, REASON_INPUT))
            .unwrap_or_default();
        let reason: String = reason.trim().chars().take(REASON_MAX).collect();
        Ok(Incoming::Submit(acting, reason))
    }

    /// Records `id`; false when it was seen within [`REMEMBER`].
    fn first_time(&self, id: &str, now: Instant) -> bool {
        let mut seen = crate::sync::lock(&self.seen);
        if seen.len() >= REMEMBER_MAX || seen.len().is_multiple_of(1024) {
            seen.retain(|_, at| now.duration_since(*at) < REMEMBER);
        }
        if seen.len() >= REMEMBER_MAX
            && let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
        {
            seen.remove(&oldest);
        }
        match seen.get(id) {
            Some(at) if now.duration_since(*at) < REMEMBER => false,
            _ => {
                seen.insert(id.to_owned(), now);
                true
            }
        }
    }
}

/// PONG.
pub fn pong() -> Value {
    json!({ "type": PONG })
}

/// A message only the user who acted sees, that pings nobody.
pub fn ephemeral(text: &str) -> Value {
    json!({
        "type": CHANNEL_MESSAGE,
        "data": { "content": text, "flags": EPHEMERAL, "allowed_mentions": { "parse": [] } }
    })
}

/// "Thinking…", seen by the user who acted only; the answer follows by
/// editing the original response.
pub fn deferred_ephemeral() -> Value {
    json!({ "type": DEFERRED_CHANNEL_MESSAGE, "data": { "flags": EPHEMERAL } })
}

/// A modal asking for an optional reason: `custom_id` comes back with the
/// submit, `title` at most 45 characters.
pub fn reason_modal(custom_id: &str, title: &str) -> Value {
    json!({
        "type": MODAL,
        "data": {
            "custom_id": custom_id,
            "title": title,
            "components": [{
                "type": 18,
                "label": "Reason (optional)",
                "description": "Recorded with your review in Teleport.",
                "component": {
                    "type": 4,
                    "custom_id": REASON_INPUT,
                    "style": 2,
                    "required": false,
                    "max_length": REASON_MAX,
                    "placeholder": "Why?"
                }
            }]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn keys() -> (SigningKey, PublicKey) {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let public = PublicKey(signing.verifying_key().to_bytes());
        (signing, public)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sign(k: &SigningKey, ts: &str, body: &[u8]) -> String {
        let mut m = ts.as_bytes().to_vec();
        m.extend_from_slice(body);
        hex(&k.sign(&m).to_bytes())
    }

    fn now_ts() -> (SystemTime, String) {
        let now = SystemTime::now();
        let ts = now
            .duration_since(UNIX_EPOCH)
            .expect("time")
            .as_secs()
            .to_string();
        (now, ts)
    }

    #[test]
    fn a_signed_ping_gets_a_pong_and_anything_else_a_401() {
        let (k, key) = keys();
        let (now, ts) = now_ts();
        let body = br#"{"id":"1","type":1}"#;
        let sig = sign(&k, &ts, body);
        let e = Endpoint::new();
        let got = e
            .accept(&key, Some(&ts), Some(&sig), body, now)
            .expect("pong");
        assert_eq!(got, Incoming::Ping);
        assert_eq!(pong(), json!({"type": 1}));
        // Tampered body, another key, a bad hex, missing headers.
        let tampered = br#"{"id":"1","type":2}"#;
        let refused = |ts: Option<&str>, sig: Option<&str>, body: &[u8]| {
            e.accept(&key, ts, sig, body, now).expect_err("refused")
        };
        assert_eq!(
            refused(Some(&ts), Some(&sig), tampered),
            Refusal::BadSignature
        );
        let other = SigningKey::from_bytes(&[9u8; 32]);
        assert_eq!(
            refused(Some(&ts), Some(&sign(&other, &ts, body)), body),
            Refusal::BadSignature
        );
        assert_eq!(refused(Some(&ts), Some("zz"), body), Refusal::BadSignature);
        assert_eq!(
            refused(None, Some(&sig), body),
            Refusal::MissingHeader("X-Signature-Timestamp")
        );
        assert_eq!(
            refused(Some(&ts), None, body),
            Refusal::MissingHeader("X-Signature-Ed25519")
        );
        // The signature covers the timestamp: another timestamp fails.
        let later = (now.duration_since(UNIX_EPOCH).expect("t").as_secs() + 1).to_string();
        assert_eq!(
            refused(Some(&later), Some(&sig), body),
            Refusal::BadSignature
        );
        assert!(refused(None, None, body).status() == 401);
    }

    #[test]
    fn an_old_or_future_timestamp_is_refused_even_when_signed() {
        let (k, key) = keys();
        let (now, _) = now_ts();
        let body = br#"{"id":"1","type":1}"#;
        let secs = now.duration_since(UNIX_EPOCH).expect("t").as_secs();
        for off in [
            -(MAX_SKEW.as_secs() as i64) - 1,
            MAX_SKEW.as_secs() as i64 + 1,
        ] {
            let ts = secs.saturating_add_signed(off).to_string();
            let got =
                Endpoint::new().accept(&key, Some(&ts), Some(&sign(&k, &ts, body)), body, now);
            assert_eq!(got.expect_err("stale"), Refusal::StaleTimestamp, "{off}");
        }
        let ts = (secs - MAX_SKEW.as_secs() + 5).to_string();
        assert!(
            Endpoint::new()
                .accept(&key, Some(&ts), Some(&sign(&k, &ts, body)), body, now)
                .is_ok()
        );
    }

    #[test]
    fn an_interaction_seen_before_changes_nothing_again() {
        let (k, key) = keys();
        let (now, ts) = now_ts();
        let body = br#"{"id":"123456","type":3,"application_id":"42","token":"secret-token","member":{"user":{"id":"777"}},"data":{"custom_id":"x"}}"#;
        let sig = sign(&k, &ts, body);
        let e = Endpoint::new();
        let first = e
            .accept(&key, Some(&ts), Some(&sig), body, now)
            .expect("first");
        let Incoming::Click(acting) = &first else {
            panic!("a click: {first:?}")
        };
        assert_eq!(
            (
                acting.user_id.as_str(),
                acting.custom_id.as_str(),
                acting.application_id.as_str()
            ),
            ("777", "x", "42")
        );
        assert!(
            !format!("{first:?}").contains("secret-token"),
            "token in Debug"
        );
        let again = e
            .accept(&key, Some(&ts), Some(&sig), body, now)
            .expect("again");
        assert_eq!(again, Incoming::Replayed(Kind::Component));
        let eph = ephemeral("hi");
        assert_eq!(eph["data"]["flags"], EPHEMERAL);
        assert_eq!(eph["data"]["allowed_mentions"], json!({"parse": []}));
        // A signed body that is not an interaction is a 400, and says nothing of the body.
        let junk = b"not json, token=secret-token";
        let err = e
            .accept(&key, Some(&ts), Some(&sign(&k, &ts, junk)), junk, now)
            .expect_err("malformed");
        assert_eq!(err.status(), 400);
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn a_modal_submit_gives_the_typed_reason_and_the_user_from_the_payload() {
        let (k, key) = keys();
        let (now, ts) = now_ts();
        let e = Endpoint::new();
        // In a DM the user is `user`; the reason sits in a Label.
        let body = serde_json::to_vec(&json!({
            "id": "9001", "type": 5, "application_id": "42", "token": "t0k",
            "user": {"id": "555"},
            "data": {"custom_id": "review:v1:deny:abc", "components": [
                {"type": 18, "id": 1, "component": {"type": 4, "id": 2, "custom_id": "reason", "value": "  not today  "}}
            ]}
        }))
        .expect("json");
        let got = e
            .accept(&key, Some(&ts), Some(&sign(&k, &ts, &body)), &body, now)
            .expect("submit");
        let Incoming::Submit(acting, reason) = got else {
            panic!("a submit")
        };
        assert_eq!(
            (acting.user_id.as_str(), reason.as_str()),
            ("555", "not today")
        );
        // A legacy action row works too; no input means no reason.
        let legacy = serde_json::to_vec(&json!({
            "id": "9002", "type": 5, "application_id": "42", "token": "t",
            "member": {"user": {"id": "556"}},
            "data": {"custom_id": "c", "components": [
                {"type": 1, "components": [{"type": 4, "custom_id": "reason", "value": "ok"}]}
            ]}
        }))
        .expect("json");
        let got = e
            .accept(&key, Some(&ts), Some(&sign(&k, &ts, &legacy)), &legacy, now)
            .expect("legacy");
        assert!(
            matches!(got, Incoming::Submit(_, ref r) if r == "ok"),
            "{got:?}"
        );
        // Without a user in the signed payload, nothing is done.
        let anonymous = serde_json::to_vec(&json!({
            "id": "9003", "type": 3, "application_id": "42", "token": "t",
            "data": {"custom_id": "c"}
        }))
        .expect("json");
        let err = e
            .accept(
                &key,
                Some(&ts),
                Some(&sign(&k, &ts, &anonymous)),
                &anonymous,
                now,
            )
            .expect_err("no user");
        assert_eq!(err, Refusal::Malformed("no user"));
    }

    #[test]
    fn the_public_key_is_64_hex_digits_of_a_real_key() {
        let (_, key) = keys();
        assert_eq!(PublicKey::parse(&hex(&key.0)), Ok(key));
        assert!(PublicKey::parse("abc").unwrap_err().contains("hexadecimal"));
        assert!(PublicKey::parse("abcd").unwrap_err().contains("32 bytes"));
        assert!(
            PublicKey::parse(&"g".repeat(64))
                .unwrap_err()
                .contains("hexadecimal")
        );
    }

    #[test]
    fn remembered_ids_are_bounded() {
        let e = Endpoint::new();
        let t0 = Instant::now();
        assert!(e.first_time("1", t0));
        assert!(!e.first_time("1", t0 + Duration::from_secs(60)));
        assert!(e.first_time("1", t0 + REMEMBER + Duration::from_secs(1)));
        for i in 0..(REMEMBER_MAX + 10) {
            e.first_time(&i.to_string(), t0);
        }
        assert!(crate::sync::lock(&e.seen).len() <= REMEMBER_MAX);
    }
}
