//! Reviews from Discord: what a click on Approve / Deny and the reason
//! modal's submit come to, and what the clicker is told.
//!
//! This module owns the policy, and sees Teleport and Discord only through
//! two ports, adapted in `adapters`: [`Directory`] (users by trait, the
//! request, submitting a review *for* a user) and [`FollowUps`] (editing a
//! deferred answer).
//!
//! - The clicker is the Discord user in the signed payload, never anything
//!   from `custom_id`. It maps to exactly one Teleport user: `[review.users]`
//!   first, else the users whose trait `[review] discord_user_id_trait`
//!   holds the ID (checked on every user returned: an Auth Service older
//!   than the filter returns everyone); none or several is a refusal. A
//!   match is cached for [`USER_CACHE_TTL`].
//! - A review is only ever submitted for that user, with
//!   `submitted_on_behalf_of_author`: Teleport applies the user's own review
//!   rights. Long-term requests are refused here (Teleport does not refuse
//!   them); so is one's own request.
//! - Every outcome has plain words for the clicker ([`Outcome::text`]) and
//!   a metric label; each submitted review is logged with both users, never
//!   with the interaction's token.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::config::{ReviewConfig, SharedConfig};
use crate::interactions::{self, Acting};
use crate::render::{ButtonAction, Needed, Verdict};

/// A boxed future, so the ports stay object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The oldest Teleport that takes reviews submitted for users (the feature
/// was backported to 18.11.0; teleport-wire.md §11).
pub const ON_BEHALF_SINCE: &str = "18.11.0";
/// How long a trait match is trusted.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(60);
/// What a click may spend checking before the modal opens anyway.
pub const CLICK_BUDGET: Duration = Duration::from_millis(1500);
/// What a submit may take before it is deferred (Discord allows 3 s for the
/// first answer, network included).
pub const ANSWER_BUDGET: Duration = Duration::from_millis(2000);

/// A request's state as the reviewer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for reviews.
    Pending,
    /// Approved.
    Approved,
    /// Denied.
    Denied,
    /// Promoted to an access list.
    Promoted,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved ✅",
            Self::Denied => "denied ❌",
            Self::Promoted => "promoted to an access list",
        }
    }
}

/// What the reviewer needs to know of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// State.
    pub state: State,
    /// Requesting user.
    pub user: String,
    /// A long-term request (access list promotion).
    pub long_term: bool,
    /// Approvals and denials still needed, when thresholds say.
    pub needed: Option<Needed>,
}

/// A Teleport call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Teleport refused (permission).
    #[error("Teleport refused: {0}")]
    Denied(String),
    /// Teleport did not answer, or failed.
    #[error("{0}")]
    Failed(String),
}

/// Why a review was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The author reviewed this request before.
    #[error("already reviewed")]
    AlreadyReviewed,
    /// The request is resolved.
    #[error("already {}", .0.word())]
    Resolved(State),
    /// The request is gone (expired, deleted).
    #[error("request not found")]
    Gone,
    /// "cannot submit reviews on behalf of" from an Auth Service older than
    /// [`ON_BEHALF_SINCE`] (it ignores the on-behalf fields).
    #[error("the Auth Service ({0}) predates reviews submitted for users")]
    ServerTooOld(String),
    /// "cannot submit reviews on behalf of" from a newer Auth Service: the
    /// plugin's role lacks `review_requests.submit_for_users` for the user.
    #[error("the plugin's role may not submit reviews for this user")]
    ForUsersNotPermitted,
    /// Teleport's own checks said no (the user may not review these roles).
    #[error("Teleport refused: {0}")]
    NotAllowed(String),
    /// Teleport failed or did not answer: the review may or may not be in.
    #[error("{0}")]
    Failed(String),
}

/// The Teleport side of reviews.
pub trait Directory: Send + Sync {
    /// Names of the users whose trait `trait_name` holds `value` (the port
    /// checks each user's traits itself).
    fn users_with_trait<'a>(
        &'a self,
        trait_name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, PortError>>;
    /// The request, `None` when Teleport has no such request.
    fn request<'a>(&'a self, id: &'a str)
    -> BoxFuture<'a, Result<Option<RequestFacts>, PortError>>;
    /// Submits `verdict` for `author` (on their behalf); the request after.
    fn submit<'a>(
        &'a self,
        id: &'a str,
        author: &'a str,
        verdict: Verdict,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<RequestFacts, SubmitError>>;
    /// The web UI's page for the request, when the proxy is known.
    fn web_link(&self, id: &str) -> Option<String>;
}

/// The Discord side: the answer that follows a deferred first answer.
pub trait FollowUps: Send + Sync {
    /// Replaces the deferred answer ("thinking…") with `content`.
    fn edit_original<'a>(
        &'a self,
        acting: &'a Acting,
        content: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// What a click or a submit came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The review is in.
    Submitted {
        /// Approve or deny.
        verdict: Verdict,
        /// The Teleport user it was submitted for.
        author: String,
        /// The request after it.
        after: RequestFacts,
    },
    /// Reviews from Discord are off.
    Disabled,
    /// The service is still starting (no Teleport connection yet).
    NotReady,
    /// `custom_id` is not one of ours (forged, malformed, another version).
    UnknownAction,
    /// No Teleport user maps to the clicker.
    NotLinked {
        /// The clicker.
        discord_user: String,
        /// The trait looked at, empty when the trait is not used.
        trait_name: String,
    },
    /// Several Teleport users carry the clicker's ID in the trait.
    Ambiguous {
        /// The trait.
        trait_name: String,
        /// How many matched.
        count: usize,
    },
    /// A long-term request: reviewed in Teleport only.
    LongTerm {
        /// The web UI page, when known.
        link: Option<String>,
    },
    /// The clicker's own request.
    OwnRequest,
    /// The clicker reviewed it before.
    AlreadyReviewed {
        /// Their Teleport user.
        author: String,
    },
    /// Resolved already.
    Resolved(State),
    /// Gone: resolved and deleted, or expired.
    Gone,
    /// The Auth Service is older than reviews submitted for users.
    TooOld {
        /// Its version.
        version: String,
    },
    /// The plugin's role may not submit reviews for this user.
    PluginNotPermitted,
    /// Teleport's review rules refused the user.
    NotAllowed {
        /// Their Teleport user.
        author: String,
        /// Teleport's words.
        why: String,
    },
    /// Looking up or submitting failed.
    Failed {
        /// What failed.
        why: String,
        /// Whether the review may have been submitted anyway.
        maybe_submitted: bool,
    },
}

/// Teleport's review limit is not documented; this keeps reasons readable.
fn quote(s: &str) -> String {
    crate::render::inline_code(s, 200)
}

impl Outcome {
    /// The `outcome` label of `teleport_discord_reviews_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Submitted { .. } => "submitted",
            Self::Disabled => "disabled",
            Self::NotReady => "not_ready",
            Self::UnknownAction => "unknown_action",
            Self::NotLinked { .. } => "not_linked",
            Self::Ambiguous { .. } => "ambiguous_user",
            Self::LongTerm { .. } => "long_term",
            Self::OwnRequest => "own_request",
            Self::AlreadyReviewed { .. } => "already_reviewed",
            Self::Resolved(_) | Self::Gone => "resolved",
            Self::TooOld { .. } => "unsupported_server",
            Self::PluginNotPermitted => "plugin_not_permitted",
            Self::NotAllowed { .. } => "not_allowed",
            Self::Failed { .. } => "error",
        }
    }

    /// What the clicker reads (ephemeral: only they see it).
    pub fn text(&self, request_id: &str) -> String {
        let id = quote(request_id);
        match self {
            Self::Submitted {
                verdict,
                author,
                after,
            } => {
                let did = match verdict {
                    Verdict::Approve => "approved",
                    Verdict::Deny => "denied",
                };
                let now = match (after.state, after.needed) {
                    (State::Pending, Some(n)) if *verdict == Verdict::Approve => format!(
                        "It is still pending: {} more approval{} needed.",
                        n.approvals,
                        if n.approvals == 1 { "" } else { "s" }
                    ),
                    (State::Pending, Some(n)) => format!(
                        "It is still pending: {} more denial{} needed to deny it.",
                        n.denials,
                        if n.denials == 1 { "" } else { "s" }
                    ),
                    (State::Pending, None) => "It is still pending.".to_owned(),
                    (s, _) => format!("It is now {}.", s.word()),
                };
                format!(
                    "You {did} request {id} as Teleport user {}. {now}",
                    quote(author)
                )
            }
            Self::Disabled => "Reviews from Discord are turned off for this bot. Use the \"Review request\" link or `tsh request review`.".to_owned(),
            Self::NotReady => "The bot is still connecting to Teleport. Try again in a moment.".to_owned(),
            Self::UnknownAction => "This button is not one this bot made, so nothing was done.".to_owned(),
            Self::NotLinked { discord_user, trait_name } if trait_name.is_empty() => format!(
                "Your Discord account ({discord_user}) is not linked to a Teleport user, so nothing was submitted. Ask an administrator to add `\"{discord_user}\" = \"<your Teleport user>\"` to `[review.users]`."
            ),
            Self::NotLinked { discord_user, trait_name } => format!(
                "Your Discord account ({discord_user}) is not linked to a Teleport user, so nothing was submitted. Ask an administrator to set the trait {} of your Teleport user to `{discord_user}` (or to add you to `[review.users]`).",
                quote(trait_name)
            ),
            Self::Ambiguous { trait_name, count } => format!(
                "{count} Teleport users have your Discord ID in the trait {}, so nothing was submitted: a review must belong to exactly one user. Ask an administrator to fix the trait.",
                quote(trait_name)
            ),
            Self::LongTerm { link } => format!(
                "Request {id} asks for long-term access (an access list promotion). Those are reviewed in Teleport only: {}.",
                link.as_deref().map_or_else(|| "use `tsh request review`".to_owned(), |l| format!("open {l}"))
            ),
            Self::OwnRequest => "You cannot review your own request.".to_owned(),
            Self::AlreadyReviewed { author } => format!(
                "You (Teleport user {}) already reviewed request {id}; a second review is not taken.",
                quote(author)
            ),
            Self::Resolved(s) => format!("Request {id} is already {}; nothing was submitted.", s.word()),
            Self::Gone => format!("Request {id} is already resolved or has expired; nothing was submitted."),
            Self::TooOld { version } => format!(
                "This Teleport Auth Service ({}) cannot take reviews from chat: that needs Teleport {ON_BEHALF_SINCE} or newer. Review with the \"Review request\" link or `tsh request review`.",
                if version.is_empty() { "version unknown".to_owned() } else { format!("v{}", version.trim_start_matches('v')) }
            ),
            Self::PluginNotPermitted => "Teleport refused: this bot's Teleport role may not submit reviews for users (it needs `review_requests.submit_for_users`). Tell an administrator; meanwhile use the \"Review request\" link.".to_owned(),
            Self::NotAllowed { author, why } => format!(
                "Teleport refused the review for {}: you may not review this request ({}).",
                quote(author),
                crate::render::escape_markdown(crate::render::cut(why, 300))
            ),
            Self::Failed { maybe_submitted: true, .. } => format!(
                "Teleport did not confirm the review of {id} in time. It may have been recorded: check the request's message. Trying again is safe (Teleport takes one review per user)."
            ),
            Self::Failed { .. } => "Teleport could not be asked right now, so nothing was submitted. Try again in a moment.".to_owned(),
        }
    }
}

/// Labels: `outcome`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// Outcome.
    pub outcome: &'static str,
}

/// Labels: `type`, `outcome`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InteractionLabels {
    /// PING, component, modal submit, other.
    pub r#type: &'static str,
    /// What was answered.
    pub outcome: &'static str,
}

/// Metrics of the interactions endpoint and of reviews.
#[derive(Debug, Clone)]
pub struct ReviewMetrics {
    /// Interactions by type and outcome.
    pub interactions: Family<InteractionLabels, Counter>,
    /// Deliveries refused for their signature or timestamp.
    pub signature_failures: Counter,
    /// Reviews by outcome (one per modal submit).
    pub reviews: Family<OutcomeLabel, Counter>,
    /// Time from a delivery's arrival to its first answer.
    pub first_answer: Histogram,
    /// Deferred answers completed, by `outcome` (`sent`, `failed`).
    pub follow_ups: Family<OutcomeLabel, Counter>,
}

impl ReviewMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            interactions: Family::default(),
            signature_failures: Counter::default(),
            reviews: Family::default(),
            first_answer: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0,
            ]),
            follow_ups: Family::default(),
        };
        registry.register(
            "teleport_discord_interactions",
            "Discord interactions received, by type and outcome",
            m.interactions.clone(),
        );
        registry.register(
            "teleport_discord_interaction_signature_failures",
            "Interaction deliveries refused with 401 (missing or bad signature, stale timestamp)",
            m.signature_failures.clone(),
        );
        registry.register(
            "teleport_discord_reviews",
            "Reviews asked for from Discord, by outcome",
            m.reviews.clone(),
        );
        registry.register(
            "teleport_discord_interaction_first_answer_seconds",
            "Time from an interaction's arrival to its first answer (Discord allows 3 s)",
            m.first_answer.clone(),
        );
        registry.register(
            "teleport_discord_interaction_follow_ups",
            "Deferred interaction answers completed with a follow-up, by outcome",
            m.follow_ups.clone(),
        );
        m
    }
}

/// Maps Discord users to Teleport users and submits their reviews.
pub struct Desk {
    directory: Arc<dyn Directory>,
    follow_ups: Arc<dyn FollowUps>,
    config: SharedConfig,
    cache: Mutex<HashMap<String, (Instant, String)>>,
    metrics: ReviewMetrics,
    /// Deferred submits still running; awaited on shutdown.
    tracker: TaskTracker,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

/// Who the clicker is in Teleport, or why not known.
enum Who {
    User(String),
    No(Outcome),
}

impl Desk {
    /// A desk over the two ports.
    pub fn new(
        directory: Arc<dyn Directory>,
        follow_ups: Arc<dyn FollowUps>,
        config: SharedConfig,
        metrics: ReviewMetrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            directory,
            follow_ups,
            config,
            cache: Mutex::new(HashMap::new()),
            metrics,
            tracker: TaskTracker::new(),
        })
    }

    /// The metrics.
    pub fn metrics(&self) -> &ReviewMetrics {
        &self.metrics
    }

    /// Waits (up to `grace`) for deferred submits to finish their follow-ups.
    pub async fn drain(&self, grace: Duration) {
        self.tracker.close();
        let _ = tokio::time::timeout(grace, self.tracker.wait()).await;
    }

    fn review_config(&self) -> ReviewConfig {
        self.config.load().review.clone()
    }

    /// The clicker's Teleport user: the static table, then the trait.
    async fn who(&self, cfg: &ReviewConfig, discord_user: &str) -> Result<Who, PortError> {
        if let Some(user) = cfg.users.get(discord_user) {
            return Ok(Who::User(user.clone()));
        }
        let trait_name = cfg.discord_user_id_trait.clone();
        if trait_name.is_empty() {
            return Ok(Who::No(Outcome::NotLinked {
                discord_user: discord_user.to_owned(),
                trait_name,
            }));
        }
        let key = format!("{trait_name}\0{discord_user}");
        if let Some((at, user)) = crate::sync::lock(&self.cache).get(&key)
            && at.elapsed() < USER_CACHE_TTL
        {
            return Ok(Who::User(user.clone()));
        }
        let mut users = self
            .directory
            .users_with_trait(&trait_name, discord_user)
            .await?;
        users.sort();
        users.dedup();
        match users.as_slice() {
            [one] => {
                let mut cache = crate::sync::lock(&self.cache);
                if cache.len() > 10_000 {
                    cache.retain(|_, (at, _)| at.elapsed() < USER_CACHE_TTL);
                }
                cache.insert(key, (Instant::now(), one.clone()));
                Ok(Who::User(one.clone()))
            }
            [] => Ok(Who::No(Outcome::NotLinked {
                discord_user: discord_user.to_owned(),
                trait_name,
            })),
            many => Ok(Who::No(Outcome::Ambiguous {
                trait_name,
                count: many.len(),
            })),
        }
    }

    /// What a request's known facts say before any review.
    fn refuse(&self, id: &str, author: &str, facts: &RequestFacts) -> Option<Outcome> {
        if facts.long_term {
            return Some(Outcome::LongTerm {
                link: self.directory.web_link(id),
            });
        }
        if facts.state != State::Pending {
            return Some(Outcome::Resolved(facts.state));
        }
        (facts.user == author).then_some(Outcome::OwnRequest)
    }

    /// A click on Approve or Deny: the reason modal, or (when the answer is
    /// already known) why not. Bounded by [`CLICK_BUDGET`]: past it the
    /// modal opens and the submit checks again.
    pub async fn click(&self, acting: &Acting) -> (Value, &'static str) {
        let cfg = self.review_config();
        if !cfg.enabled {
            return (
                interactions::ephemeral(&Outcome::Disabled.text("")),
                "disabled",
            );
        }
        let Some(action) = ButtonAction::parse(&acting.custom_id) else {
            return (
                interactions::ephemeral(&Outcome::UnknownAction.text("")),
                "unknown_action",
            );
        };
        let id = &action.request_id;
        let checks = async {
            let (who, facts) =
                tokio::join!(self.who(&cfg, &acting.user_id), self.directory.request(id));
            match who {
                Ok(Who::No(o)) => return Some(o),
                Ok(Who::User(author)) => match facts {
                    Ok(Some(f)) => return self.refuse(id, &author, &f),
                    Ok(None) => return Some(Outcome::Gone),
                    Err(_) => {}
                },
                Err(_) => {}
            }
            None
        };
        if let Ok(Some(refusal)) = tokio::time::timeout(CLICK_BUDGET, checks).await {
            return (interactions::ephemeral(&refusal.text(id)), refusal.label());
        }
        let title = match action.verdict {
            Verdict::Approve => "Approve access request",
            Verdict::Deny => "Deny access request",
        };
        (
            interactions::reason_modal(&action.custom_id(), title),
            "modal",
        )
    }

    /// A reason modal's submit: the review, for the clicker's own user.
    pub async fn submit(&self, acting: &Acting, reason: &str) -> (Outcome, String) {
        let outcome = self.submit_inner(acting, reason).await;
        let id = ButtonAction::parse(&acting.custom_id)
            .map(|a| a.request_id)
            .unwrap_or_default();
        self.metrics
            .reviews
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
        let text = outcome.text(&id);
        (outcome, text)
    }

    async fn submit_inner(&self, acting: &Acting, reason: &str) -> Outcome {
        let cfg = self.review_config();
        if !cfg.enabled {
            return Outcome::Disabled;
        }
        let Some(action) = ButtonAction::parse(&acting.custom_id) else {
            return Outcome::UnknownAction;
        };
        let id = &action.request_id;
        let author = match self.who(&cfg, &acting.user_id).await {
            Ok(Who::User(u)) => u,
            Ok(Who::No(o)) => return o,
            Err(e) => {
                tracing::warn!(discord_user = %acting.user_id, error = %e, "cannot look up the Teleport user of a Discord user");
                return Outcome::Failed {
                    why: e.to_string(),
                    maybe_submitted: false,
                };
            }
        };
        match self.directory.request(id).await {
            Ok(Some(facts)) => {
                if let Some(refusal) = self.refuse(id, &author, &facts) {
                    return refusal;
                }
            }
            Ok(None) => return Outcome::Gone,
            // As upstream: a request we may not read is still reviewed
            // (Teleport checks the author's rights).
            Err(e) => {
                tracing::warn!(request_id = %id, error = %e, "cannot read the request before a review; submitting anyway");
            }
        }
        let verdict = action.verdict;
        let result = self.directory.submit(id, &author, verdict, reason).await;
        let outcome = match result {
            Ok(after) => Outcome::Submitted {
                verdict,
                author: author.clone(),
                after,
            },
            Err(SubmitError::AlreadyReviewed) => Outcome::AlreadyReviewed {
                author: author.clone(),
            },
            Err(SubmitError::Resolved(s)) => Outcome::Resolved(s),
            Err(SubmitError::Gone) => Outcome::Gone,
            Err(SubmitError::ServerTooOld(version)) => Outcome::TooOld { version },
            Err(SubmitError::ForUsersNotPermitted) => Outcome::PluginNotPermitted,
            Err(SubmitError::NotAllowed(why)) => Outcome::NotAllowed {
                author: author.clone(),
                why,
            },
            Err(SubmitError::Failed(why)) => Outcome::Failed {
                why,
                maybe_submitted: true,
            },
        };
        let verdict_word = match verdict {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        };
        tracing::info!(
            request_id = %id,
            discord_user = %acting.user_id,
            teleport_user = %author,
            verdict = verdict_word,
            outcome = outcome.label(),
            "Review from Discord"
        );
        outcome
    }

    /// Runs a submit, answering within [`ANSWER_BUDGET`]: the final answer
    /// when it is ready in time, else a deferred one, completed by a
    /// follow-up when the submit ends (the task is tracked for shutdown).
    pub async fn answer_submit(self: &Arc<Self>, acting: Acting, reason: String) -> Value {
        self.answer_submit_within(acting, reason, ANSWER_BUDGET)
            .await
    }

    /// [`Self::answer_submit`] with another budget (tests).
    pub async fn answer_submit_within(
        self: &Arc<Self>,
        acting: Acting,
        reason: String,
        budget: Duration,
    ) -> Value {
        let (tx, mut rx) = tokio::sync::oneshot::channel::<String>();
        let desk = self.clone();
        self.tracker.spawn(async move {
            let (_, text) = desk.submit(&acting, &reason).await;
            if let Err(text) = tx.send(text) {
                desk.follow_up(&acting, &text).await;
            }
        });
        tokio::select! {
            text = &mut rx => match text {
                Ok(text) => interactions::ephemeral(&text),
                Err(_) => interactions::ephemeral(&Outcome::Failed { why: String::new(), maybe_submitted: true }.text("")),
            },
            () = tokio::time::sleep(budget) => {
                // From here the task sends a follow-up; an answer that
                // arrived meanwhile is still answered inline.
                rx.close();
                match rx.try_recv() {
                    Ok(text) => interactions::ephemeral(&text),
                    Err(_) => interactions::deferred_ephemeral(),
                }
            }
        }
    }

    /// Edits the deferred answer; retried briefly, since the deferral may
    /// reach Discord after the submit ended.
    async fn follow_up(&self, acting: &Acting, text: &str) {
        let mut last = String::new();
        for delay_ms in [0u64, 250, 500, 1000, 2000] {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            match self.follow_ups.edit_original(acting, text).await {
                Ok(()) => {
                    self.metrics
                        .follow_ups
                        .get_or_create(&OutcomeLabel { outcome: "sent" })
                        .inc();
                    return;
                }
                Err(e) => last = e,
            }
        }
        self.metrics
            .follow_ups
            .get_or_create(&OutcomeLabel { outcome: "failed" })
            .inc();
        tracing::warn!(interaction_id = %acting.id, error = %last, "cannot send the answer to a deferred interaction");
    }
}

#[cfg(test)]
mod tests;
