//! Telling people directly: a DM to the requester when a request is
//! resolved ([`requester`]), and access list review reminders to the lists'
//! owners ([`reminders`]).
//!
//! This module owns who a Teleport user is in Discord ([`Mapping`]: the
//! `[review.users]` table read backwards, else the user's trait
//! `[review] discord_user_id_trait`, read with `GetUser`), what is said, and
//! the records that make each notice go once. It sees Teleport and Discord
//! through ports ([`UserPort`], [`DirectPort`], [`reminders::ListPort`], and
//! the reconciler's `PluginDataStore` for request plugin data), adapted in
//! `adapters`.
//!
//! Only a replica that acts (the lease holder, or every replica without the
//! lease) sends; compare-and-swap records in plugin data keep replicas
//! without the lease to one notice, and a create `nonce` (with
//! `enforce_nonce`) makes a repeated send return the first message.

pub mod reminders;
pub mod requester;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::config::SharedConfig;
pub use crate::review::BoxFuture;

/// How long a user's Discord ID (or its absence) is trusted.
pub const MAPPING_TTL: Duration = Duration::from_secs(60);

/// Why a direct message did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DmError {
    /// Discord refused for good (50007 "Cannot send messages to this user":
    /// DMs closed, no shared server; an unknown user).
    #[error("Discord refused: {0}")]
    Refused(String),
    /// Worth trying again (rate limits, outages, a closed fence).
    #[error("{0}")]
    Retryable(String),
}

/// The Discord side: messages to a user (through their DM channel) or a
/// channel, through the bot's rate-limited queue.
pub trait DirectPort: Send + Sync {
    /// Opens (or finds) the DM channel with `user_id` and posts `text` with
    /// `nonce` (`enforce_nonce`).
    fn to_user<'a>(
        &'a self,
        user_id: &'a str,
        nonce: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), DmError>>;
    /// Posts `text` to `channel_id` with `nonce`.
    fn to_channel<'a>(
        &'a self,
        channel_id: &'a str,
        nonce: &'a str,
        text: &'a str,
    ) -> BoxFuture<'a, Result<(), DmError>>;
}

/// A user's traits: name → values.
pub type Traits = BTreeMap<String, Vec<String>>;

/// The Teleport side of the mapping: a user's traits (`GetUser`, `user:
/// read`); `None` when there is no such user.
pub trait UserPort: Send + Sync {
    /// The user's traits.
    fn traits<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Option<Traits>, String>>;
}

fn snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The Discord user of a Teleport user, from the config's table (pure): the
/// lowest Discord ID mapped to `user`.
pub fn from_table(users: &BTreeMap<String, String>, user: &str) -> Option<String> {
    users
        .iter()
        .find(|(_, u)| u.as_str() == user)
        .map(|(id, _)| id.clone())
}

/// The Discord user in a trait's values (pure): the first that is a user ID.
pub fn from_traits(traits: &BTreeMap<String, Vec<String>>, name: &str) -> Option<String> {
    traits
        .get(name)?
        .iter()
        .map(|v| v.trim())
        .find(|v| snowflake(v))
        .map(str::to_owned)
}

/// Teleport user → Discord user, cached for [`MAPPING_TTL`].
pub struct Mapping {
    users: std::sync::Arc<dyn UserPort>,
    config: SharedConfig,
    cache: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").finish_non_exhaustive()
    }
}

impl Mapping {
    /// Over the user port and the running config.
    pub fn new(users: std::sync::Arc<dyn UserPort>, config: SharedConfig) -> Self {
        Self {
            users,
            config,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The Discord user ID of Teleport user `user`, if it maps to one.
    pub async fn discord_user(&self, user: &str) -> Result<Option<String>, String> {
        let review = self.config.load().review.clone();
        if let Some(id) = from_table(&review.users, user) {
            return Ok(Some(id));
        }
        let name = review.discord_user_id_trait;
        if name.is_empty() || user.is_empty() {
            return Ok(None);
        }
        let key = format!("{name}\0{user}");
        if let Some((at, id)) = crate::sync::lock(&self.cache).get(&key)
            && at.elapsed() < MAPPING_TTL
        {
            return Ok(id.clone());
        }
        let id = self
            .users
            .traits(user)
            .await?
            .and_then(|t| from_traits(&t, &name));
        let mut cache = crate::sync::lock(&self.cache);
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < MAPPING_TTL);
        }
        cache.insert(key, (Instant::now(), id.clone()));
        Ok(id)
    }
}

/// A create nonce (25 characters, as Discord allows) from `parts`: the same
/// parts always give the same nonce.
pub fn nonce(parts: &[&str]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, parts.join("\0").as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("n{}", &hex[..24])
}

/// Labels: `kind`, `outcome`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoticeLabels {
    /// `requester` or `reminder`.
    pub kind: &'static str,
    /// `sent`, `refused`, `unmapped`, `failed`.
    pub outcome: &'static str,
}

/// Labels: `via`, `outcome`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReminderLabels {
    /// `dm` or `channel`.
    pub via: &'static str,
    /// `sent`, `refused`, `failed`.
    pub outcome: &'static str,
}

/// Metrics of direct notices.
#[derive(Debug, Clone, Default)]
pub struct NotifyMetrics {
    /// Direct messages by kind and outcome.
    pub direct_messages: Family<NoticeLabels, Counter>,
    /// Access list reminders by where they went and outcome (one per owner
    /// and list).
    pub reminders: Family<ReminderLabels, Counter>,
}

impl NotifyMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "teleport_discord_direct_messages",
            "Direct messages to Discord users by kind (requester, reminder) and outcome (sent, refused, unmapped, failed)",
            m.direct_messages.clone(),
        );
        registry.register(
            "teleport_discord_access_list_reminders",
            "Access list review reminders (one per owner and list) by where they went (dm, channel) and outcome",
            m.reminders.clone(),
        );
        m
    }

    fn dm(&self, kind: &'static str, outcome: &'static str) {
        self.direct_messages
            .get_or_create(&NoticeLabels { kind, outcome })
            .inc();
    }
}

#[cfg(test)]
mod tests;
