//! The scripted story: an access list review reminder by DM, Teleport-side
//! actions and one review from Discord (the reviewer clicks Approve and
//! fills the service's modal, through the Discord emulator), each followed
//! by a wait until the transcript has shown the Discord state it should
//! cause, including the DM each resolution sends the requester.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::page::{InteractionView, interaction_view};
use super::transcript::{Snapshot, plain, summarize, unescape};
use super::{
    ACCESS_LIST_DUE_DAYS, ACCESS_LIST_NOTIFY_DAYS, ACCESS_LIST_TITLE, DemoError, Out, Reviewer,
};
use crate::discord::{DiscordEmulator, InteractionKind, StoredMessage};
use crate::teleport::TeleportEmulator;

const DEV: usize = 0;
const OPS: usize = 1;
const FALLBACK: usize = 2;

const PENDING: &str = "⏳ PENDING";
const APPROVED: &str = "✅ APPROVED";
const DENIED: &str = "❌ DENIED";
const EXPIRED: &str = "⌛ EXPIRED";

/// How long one step may take to show up in Discord.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Steps in the story.
const STEPS: u32 = 7;

/// The first line of an access list review reminder.
const REMINDER: &str = "Access list review reminder";

/// Everything the story needs.
pub(crate) struct Story<'a> {
    pub(crate) teleport: &'a TeleportEmulator,
    pub(crate) discord: &'a DiscordEmulator,
    pub(crate) snapshots: watch::Receiver<std::sync::Arc<Snapshot>>,
    pub(crate) out: &'a Out,
    pub(crate) pause: Duration,
    pub(crate) burst: u32,
    pub(crate) service: String,
    /// Who reviews from Discord.
    pub(crate) reviewer: &'a Reviewer,
    /// (name, ID) of `#dev`, `#ops`, `#fallback`.
    pub(crate) channels: &'a [(String, String)],
    /// `[access_list] interval`.
    pub(crate) interval: &'a str,
}

/// The messages of `channel` for request `id`.
fn messages_for<'s>(s: &'s Snapshot, channel: usize, id: &str) -> Vec<&'s StoredMessage> {
    s.channels
        .get(channel)
        .map(|c| {
            c.messages
                .iter()
                .filter(|m| summarize(m).request == id)
                .collect()
        })
        .unwrap_or_default()
}

/// Exactly one message for `id` in each of `channels`, each passing `check`.
fn one_each(
    s: &Snapshot,
    channels: &[usize],
    id: &str,
    check: impl Fn(&super::transcript::Summary) -> bool,
) -> bool {
    channels.iter().all(|&c| {
        let found = messages_for(s, c, id);
        found.len() == 1 && check(&summarize(found[0]))
    })
}

/// Exactly one DM to the Discord user `user`, and it passes `check` (its
/// text with the markdown escapes removed).
fn one_dm(s: &Snapshot, user: &str, check: impl Fn(&str) -> bool) -> bool {
    match s.dms_to(user) {
        [m] => check(&unescape(&m.content)),
        _ => false,
    }
}

/// The DM telling the requester of request `id` that it `verb` (`was
/// approved`, `was denied`, `expired`).
fn resolution_dm(s: &Snapshot, user: &str, id: &str, verb: &str) -> bool {
    one_dm(s, user, |t| {
        t.contains(&format!("Your access request `{id}`")) && t.contains(verb)
    })
}

/// An unanswered or refused interaction, in words.
fn describe(view: &InteractionView, endpoint_status: Option<u16>) -> String {
    let status =
        endpoint_status.map_or_else(|| "no HTTP answer".to_owned(), |s| format!("HTTP {s}"));
    match (&view.failure, view.callback_type, &view.answer) {
        (Some(why), _, _) => format!("it failed ({status}): {why}"),
        (None, Some(t), Some(text)) => format!("callback type {t} ({status}): {text:?}"),
        (None, Some(t), None) => format!("callback type {t} ({status})"),
        (None, None, _) => format!("{} ({status})", view.state),
    }
}

impl Story<'_> {
    fn step(&self, n: u32, text: &str) {
        self.out.line("");
        self.out.line(&format!("▶ {n}/{STEPS}  {text}"));
    }

    async fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Snapshot) -> bool,
    ) -> Result<(), DemoError> {
        let seen = tokio::time::timeout(timeout, self.snapshots.wait_for(|s| pred(s)))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false);
        if seen {
            self.out.line(&format!("          ✔ {what}"));
            Ok(())
        } else {
            Err(DemoError::Story(format!(
                "not seen within {} s: {what}",
                timeout.as_secs()
            )))
        }
    }

    /// Waits until the service has recorded `n` messages for `id` in the
    /// request's plugin data (what a restart or another replica reads), and
    /// with `show` says so.
    async fn recorded(&self, id: &str, n: usize, show: bool) -> Result<(), DemoError> {
        let plugin = crate::teleport::PLUGIN_NAME;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let messages = self
                .teleport
                .plugin_data(id, plugin)
                .and_then(|d| d.get("messages").cloned())
                .unwrap_or_default();
            if messages.split(',').filter(|m| !m.is_empty()).count() >= n {
                if !show {
                    return Ok(());
                }
                self.out.line(&format!(
                    "          ✔ recorded in the request's plugin data ({plugin}): messages = {messages}"
                ));
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DemoError::Story(format!(
                    "not seen within {} s: {n} messages in the plugin data of {id}",
                    STEP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn breathe(&self) {
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
    }

    /// What Discord's Developer Portal does when the Interactions Endpoint
    /// URL is saved: a PING with a bad signature must get 401, a signed one
    /// a PONG.
    async fn check_endpoint(&self) -> Result<(), DemoError> {
        let url = self.discord.interactions_endpoint().unwrap_or_default();
        self.discord.verify_endpoint().await.map_err(|e| {
            DemoError::Story(format!(
                "the Interactions Endpoint URL {url} does not pass Discord's check: {e}"
            ))
        })?;
        self.out.event(&format!(
            "Discord accepts the Interactions Endpoint URL {url}: a forged PING got 401, a signed one PONG"
        ));
        Ok(())
    }

    /// The reviewer clicks the button `label` on the message for `id` in
    /// `channel`, fills the modal's `reason` and submits it, as in a Discord
    /// client, and prints what the service answered her.
    async fn review_from_discord(
        &self,
        channel: usize,
        id: &str,
        label: &str,
        reason: &str,
    ) -> Result<(), DemoError> {
        let fail = DemoError::Story;
        let (channel_name, channel_id) = self
            .channels
            .get(channel)
            .cloned()
            .ok_or_else(|| fail(format!("no channel {channel}")))?;
        let snapshot = self.snapshots.borrow().clone();
        let message = messages_for(&snapshot, channel, id)
            .first()
            .map(|m| (*m).clone())
            .ok_or_else(|| fail(format!("no message for {id} in #{channel_name}")))?;
        let custom_id = message
            .components
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row["components"].as_array())
            .flatten()
            .find(|b| b["label"].as_str() == Some(label))
            .and_then(|b| b["custom_id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                fail(format!(
                    "the message for {id} in #{channel_name} has no {label} button (is [review] enabled?)"
                ))
            })?;
        let who = &self.reviewer.name;
        let click = self
            .discord
            .click(
                &channel_id,
                &message.id,
                &custom_id,
                &self.reviewer.discord_id,
            )
            .await
            .map_err(|e| fail(format!("{who} cannot click {label}: {e}")))?;
        let view = interaction_view(self.discord, &click.interaction);
        let Some(modal) = view.modal.as_ref() else {
            return Err(fail(format!(
                "the click on {label} ({custom_id}) was not answered with a modal: {}",
                describe(&view, click.interaction.endpoint_status)
            )));
        };
        self.out.event(&format!(
            "{who} clicks {label} ({custom_id}) in #{channel_name}: the service answers in {} ms with a modal, \"{}\"",
            view.answered_after_ms.unwrap_or_default(),
            modal["title"].as_str().unwrap_or_default()
        ));
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause / 2).await;
        }
        let submit = self
            .discord
            .submit_modal(&click.interaction.id, &[("reason", reason)])
            .await
            .map_err(|e| fail(format!("{who} cannot submit the modal: {e}")))?;
        let mut view = interaction_view(self.discord, &submit.interaction);
        let deadline = Instant::now() + STEP_TIMEOUT;
        while view.waiting() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(r) = self.discord.interaction(&submit.interaction.id) {
                view = interaction_view(self.discord, &r);
            }
        }
        let answer = view.answer.clone().filter(|_| !view.waiting());
        let Some(answer) = answer.filter(|_| view.state == "acknowledged") else {
            return Err(fail(format!(
                "the modal submit was not answered: {}",
                describe(&view, submit.interaction.endpoint_status)
            )));
        };
        let how = match view.callback_type {
            Some(5) => "deferred, then edited",
            _ => "at once",
        };
        let seen_by = if view.ephemeral {
            format!("only {who} sees")
        } else {
            "everyone sees".to_owned()
        };
        self.out.event(&format!(
            "{who} submits the reason \"{reason}\"; the service answers ({how}), {seen_by}: {}",
            super::transcript::unescape(&answer).replace('\n', " ")
        ));
        Ok(())
    }

    /// Teleport's record of the review `author` submitted through the plugin.
    fn recorded_review(&self, id: &str, author: &str) -> Result<(), DemoError> {
        let reviews = self
            .teleport
            .request(id)
            .and_then(|r| r.spec)
            .map(|s| s.reviews)
            .unwrap_or_default();
        let Some(r) = reviews.iter().find(|r| r.author == author) else {
            return Err(DemoError::Story(format!(
                "Teleport has no review by {author} on {id}"
            )));
        };
        if !r.submitted_on_behalf_of_author {
            return Err(DemoError::Story(format!(
                "{author}'s review on {id} is not marked as submitted on her behalf"
            )));
        }
        self.out.line(&format!(
            "          ✔ in Teleport: {author}'s review, submitted for her by the plugin's user {:?} (submitted_on_behalf_of_author)",
            r.submitted_by
        ));
        Ok(())
    }

    async fn wait_ready(&self) -> Result<(), DemoError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| DemoError::Story(format!("HTTP client: {e}")))?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        let url = format!("{}/readyz", self.service);
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                self.out.event(&format!(
                    "service ready: GET {url} → 200 (Teleport watch connected, Discord token accepted)"
                ));
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DemoError::NotReady(STEP_TIMEOUT.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Plays the story; `Ok` when every expected state was seen and the
    /// final check passed.
    pub(crate) async fn play(mut self) -> Result<(), DemoError> {
        self.wait_ready().await?;
        self.check_endpoint().await?;
        let tp = self.teleport;
        let carol = self.reviewer.teleport_user.clone();
        let carol_discord = self.reviewer.name.clone();

        self.step(
            1,
            &format!(
                "{carol} owns the access list \"{ACCESS_LIST_TITLE}\", due for review in {ACCESS_LIST_DUE_DAYS} days (reminders from {ACCESS_LIST_NOTIFY_DAYS} days before); the service's reminder pass runs every {} here ([access_list] interval)",
                self.interval
            ),
        );
        self.expect(
            &format!(
                "one DM to `{carol_discord}` (her Discord user, by [review.users]): 🔔 {REMINDER}, \"{ACCESS_LIST_TITLE}\" is due for a review"
            ),
            STEP_TIMEOUT,
            |s| {
                one_dm(s, &carol_discord, |t| {
                    t.contains(REMINDER)
                        && t.contains(&format!("**{ACCESS_LIST_TITLE}** is due for a review by"))
                })
            },
        )
        .await?;
        self.breathe().await;

        self.step(
            2,
            "alice@example.com asks for role `dev` (two approvals needed); `dev` goes to #dev and #ops",
        );
        let alice = tp.create_request_with_threshold(
            "alice@example.com",
            &["dev"],
            "Deploy the hotfix for INC-1234",
            2,
            1,
        );
        self.expect(
            "posted once in #dev and once in #ops: ⏳ PENDING, with Approve, Deny and Review request buttons",
            STEP_TIMEOUT,
            |s| {
                one_each(s, &[DEV, OPS], &alice, |m| {
                    m.status == PENDING
                        && ["Approve", "Deny"]
                            .iter()
                            .all(|b| m.buttons.iter().any(|x| x == b))
                })
            },
        )
        .await?;
        self.breathe().await;

        self.step(
            3,
            "bob@example.com approves; Teleport still waits for a second approval",
        );
        tp.add_review(&alice, "bob@example.com", true, "Looks good, go ahead")?;
        self.expect(
            "both messages edited: bob's review as a green embed, still ⏳ PENDING",
            STEP_TIMEOUT,
            |s| {
                one_each(s, &[DEV, OPS], &alice, |m| {
                    m.status == PENDING && m.reviews.len() == 1 && m.reviews[0].approved
                })
            },
        )
        .await?;
        self.breathe().await;

        self.step(
            4,
            &format!(
                "{carol} approves from Discord: as Discord user `{}` she clicks Approve on the #ops message and gives a reason; the threshold is met, Teleport approves",
                self.reviewer.name
            ),
        );
        self.review_from_discord(OPS, &alice, "Approve", "Approved for the incident")
            .await?;
        self.recorded_review(&alice, &carol)?;
        self.expect(
            "both messages edited: ✅ APPROVED, carol's review \"Reviewed from Discord.\" as a second green embed, buttons gone",
            STEP_TIMEOUT,
            |s| {
                one_each(s, &[DEV, OPS], &alice, |m| {
                    m.status == APPROVED
                        && m.reviews.len() == 2
                        && m.reviews
                            .iter()
                            .any(|r| r.author == carol && r.approved && r.from_discord)
                        && m.buttons.is_empty()
                })
            },
        )
        .await?;
        self.expect(
            "one DM to `alice` (user trait discord_user_id): ✅ approved by bob@example.com, carol@example.com",
            STEP_TIMEOUT,
            |s| {
                one_dm(s, "alice", |t| {
                    t.contains(&format!("Your access request `{alice}`"))
                        && t.contains("was approved by bob@example.com, carol@example.com")
                })
            },
        )
        .await?;
        self.breathe().await;

        self.step(
            5,
            "dave@example.com asks for `db-admin` (not mapped: \"*\" → #fallback); erin@example.com denies it",
        );
        let dave = tp.create_request(
            "dave@example.com",
            &["db-admin"],
            "Drop the old audit tables",
        );
        self.expect("posted in #fallback: ⏳ PENDING", STEP_TIMEOUT, |s| {
            one_each(s, &[FALLBACK], &dave, |m| m.status == PENDING)
        })
        .await?;
        // A request resolved before its message is recorded gets no DM.
        self.recorded(&dave, 1, false).await?;
        tp.add_review(
            &dave,
            "erin@example.com",
            false,
            "Not during the change freeze",
        )?;
        self.expect(
            "edited: ❌ DENIED with erin's review as a red embed",
            STEP_TIMEOUT,
            |s| {
                one_each(s, &[FALLBACK], &dave, |m| {
                    m.status == DENIED && m.reviews.len() == 1 && !m.reviews[0].approved
                })
            },
        )
        .await?;
        self.expect(
            "one DM to `dave`: ❌ denied by erin@example.com, with her reason",
            STEP_TIMEOUT,
            |s| {
                one_dm(s, "dave", |t| {
                    t.contains(&format!("Your access request `{dave}`"))
                        && t.contains("was denied by erin@example.com")
                        && t.contains("Not during the change freeze")
                })
            },
        )
        .await?;
        self.breathe().await;

        self.step(
            6,
            "grace@example.com asks for `dev`; nobody answers and the request expires (Teleport deletes it)",
        );
        let grace = tp.create_request("grace@example.com", &["dev"], "Read the staging logs");
        self.expect("posted in #dev and #ops: ⏳ PENDING", STEP_TIMEOUT, |s| {
            one_each(s, &[DEV, OPS], &grace, |m| m.status == PENDING)
        })
        .await?;
        self.recorded(&grace, 2, true).await?;
        tp.delete_request(&grace)?;
        self.expect("both edited: ⌛ EXPIRED", STEP_TIMEOUT, |s| {
            one_each(s, &[DEV, OPS], &grace, |m| m.status == EXPIRED)
        })
        .await?;
        self.expect("one DM to `grace`: ⌛ it expired", STEP_TIMEOUT, |s| {
            resolution_dm(s, "grace", &grace, "expired before it was approved")
        })
        .await?;
        self.breathe().await;

        let n = self.burst;
        self.step(
            7,
            &format!(
                "a burst: {n} requests for `batch` at once, all for #fallback; Discord allows 5 new messages per 5 s in a channel"
            ),
        );
        let before = self.discord.stats();
        let started = Instant::now();
        let burst: Vec<String> = (1..=n)
            .map(|i| {
                tp.create_request(
                    &format!("ci-runner-{i:02}@example.com"),
                    &["batch"],
                    "Nightly batch job",
                )
            })
            .collect();
        let windows = u64::from(n / 5 + 2);
        self.expect(
            &format!("all {n} posted in #fallback, one message each"),
            STEP_TIMEOUT + Duration::from_secs(5 * windows),
            |s| {
                burst
                    .iter()
                    .all(|id| one_each(s, &[FALLBACK], id, |m| m.status == PENDING))
            },
        )
        .await?;
        let took = started.elapsed().as_secs_f64();
        let after = self.discord.stats();
        let limited = after.rate_limited() - before.rate_limited();
        self.out.line(&format!(
            "          ✔ burst done: {n} messages in #fallback in {took:.1} s, {limited} rate-limited answers (429) from Discord"
        ));
        if n > 5 {
            self.out.line(
                "            (the service read Discord's X-RateLimit headers and waited for the bucket to reset instead of being refused)",
            );
        }

        self.final_check(
            &[
                (alice.as_str(), &[DEV, OPS][..], APPROVED),
                (dave.as_str(), &[FALLBACK][..], DENIED),
                (grace.as_str(), &[DEV, OPS][..], EXPIRED),
            ],
            &[
                ("alice", alice.as_str(), "was approved"),
                ("dave", dave.as_str(), "was denied"),
                ("grace", grace.as_str(), "expired"),
            ],
            &burst,
        )?;
        self.show_metrics().await;
        Ok(())
    }

    fn final_check(
        &self,
        expected: &[(&str, &[usize], &str)],
        resolutions: &[(&str, &str, &str)],
        burst: &[String],
    ) -> Result<(), DemoError> {
        let s = self.snapshots.borrow().clone();
        let mut problems = Vec::new();
        for (id, channels, status) in expected {
            if !one_each(&s, channels, id, |m| m.status == *status) {
                problems.push(format!(
                    "request {id} is not {status} exactly once per channel"
                ));
            }
        }
        for id in burst {
            if !one_each(&s, &[FALLBACK], id, |m| m.status == PENDING) {
                problems.push(format!("burst request {id} is not ⏳ PENDING exactly once"));
            }
        }
        let total: usize = s.channels.iter().map(|c| c.messages.len()).sum();
        let want = 5 + burst.len();
        if total != want {
            problems.push(format!("{total} messages, expected {want}"));
        }
        for (user, id, verb) in resolutions {
            if !resolution_dm(&s, user, id, verb) {
                problems.push(format!(
                    "`{user}` did not get exactly one DM saying request {id} {verb}"
                ));
            }
        }
        let reviewer = &self.reviewer.name;
        if !one_dm(&s, reviewer, |t| t.contains(REMINDER)) {
            problems.push(format!(
                "`{reviewer}` did not get exactly one access list review reminder"
            ));
        }
        // Nobody else (the burst's requesters have no Discord user).
        let dms: usize = s.dms.iter().map(|d| d.messages.len()).sum();
        let want_dms = resolutions.len() + 1;
        if dms != want_dms {
            let got: Vec<String> = s
                .dms
                .iter()
                .flat_map(|d| {
                    d.messages
                        .iter()
                        .map(move |m| format!("@{}: {}", d.user.name, plain(&m.content)))
                })
                .collect();
            problems.push(format!(
                "{dms} direct messages, expected {want_dms}: {}",
                got.join("; ")
            ));
        }
        // Clicks and modal submits (not the endpoint check's forged PING,
        // which must fail).
        for i in self.discord.interactions() {
            if i.kind != InteractionKind::Ping && !i.acknowledged() {
                problems.push(format!(
                    "interaction {} ({:?}, {}) was not acknowledged: {:?}",
                    i.id,
                    i.kind,
                    i.custom_id.as_deref().unwrap_or("-"),
                    i.state
                ));
            }
        }
        let stats = self.discord.stats();
        if stats.duplicates > 0 {
            problems.push(format!("{} duplicate messages", stats.duplicates));
        }
        if stats.rate_limited() > 0 {
            problems.push(format!(
                "{} rate-limited answers (429) from Discord",
                stats.rate_limited()
            ));
        }
        if !problems.is_empty() {
            return Err(DemoError::Story(problems.join("; ")));
        }
        self.out.line("");
        self.out.line(&format!(
            "✔ story complete: {total} messages, {dms} direct messages, {} edits, {} duplicates, {} rate-limited answers; every expected state was seen",
            stats.edits,
            stats.duplicates,
            stats.rate_limited()
        ));
        Ok(())
    }

    /// A few lines of the service's own `/metrics`, to show where to look in production.
    async fn show_metrics(&self) {
        let Ok(client) = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
        else {
            return;
        };
        let url = format!("{}/metrics", self.service);
        let Ok(resp) = client.get(&url).send().await else {
            return;
        };
        let Ok(text) = resp.text().await else {
            return;
        };
        self.out.line(&format!("  the service's GET {url} says:"));
        for l in text.lines().filter(|l| {
            l.starts_with("teleport_discord_messages_total")
                || l.starts_with("discord_operations_total")
                || l.starts_with("discord_rate_limited_total")
                || l.starts_with("teleport_discord_reviews_total")
                || l.starts_with("teleport_discord_interactions_total")
                || l.starts_with("teleport_discord_direct_messages_total")
                || l.starts_with("teleport_discord_access_list_reminders_total")
        }) {
            self.out.line(&format!("    {l}"));
        }
    }
}
