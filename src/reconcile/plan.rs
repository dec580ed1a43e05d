//! The reconciler's pure policy: which Discord operations bring a request's
//! messages to a body, and how their answers merge into plugin data. No I/O,
//! no clock: [`super::Reconciler`] reads, calls these, and writes.

use crate::plugindata::{MessageRef, PluginData};

use super::SendError;

/// One Discord operation a plan calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Post the body in a channel that has no message of the request yet.
    Create {
        /// Channel snowflake.
        channel: String,
    },
    /// Replace the body of the request's message in a channel.
    Edit {
        /// Channel snowflake.
        channel: String,
        /// Message snowflake.
        message: String,
    },
}

impl Step {
    /// The channel the step writes to.
    pub fn channel(&self) -> &str {
        match self {
            Self::Create { channel } | Self::Edit { channel, .. } => channel,
        }
    }
}

/// The request's recipient channels: the claimed list, or for plugin data
/// written by upstream (which keeps no list) the channels of its messages.
pub fn channels(data: &PluginData) -> Vec<String> {
    if data.channels.is_empty() {
        data.messages.iter().map(|m| m.channel.clone()).collect()
    } else {
        data.channels.clone()
    }
}

/// What to send so that every channel's message shows the body whose digest
/// is `digest`: a create for each channel without a message; an edit for each
/// message unless plugin data records that every message shows this body and
/// nothing makes that record doubtful (`unsure`). Returns the steps and the
/// channels already known to show the body.
pub fn steps(
    data: &PluginData,
    channels: &[String],
    digest: &str,
    unsure: bool,
) -> (Vec<Step>, Vec<String>) {
    let up_to_date = data.rendered == digest && !unsure;
    let mut steps = Vec::new();
    let mut shown = Vec::new();
    for channel in channels {
        match data.message_for(channel) {
            None => steps.push(Step::Create {
                channel: channel.clone(),
            }),
            Some(m) if !up_to_date => steps.push(Step::Edit {
                channel: m.channel.clone(),
                message: m.message.clone(),
            }),
            Some(_) => shown.push(channel.clone()),
        }
    }
    (steps, shown)
}

/// What Discord answered to a plan's steps.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Messages the creates made (or found by their nonce).
    pub created: Vec<MessageRef>,
    /// Channels given up on (permanent errors).
    pub dropped: Vec<String>,
    /// Channels whose message is known to show the body now.
    pub shown: Vec<String>,
    /// Edits that succeeded.
    pub edited: usize,
    /// A retryable failure: some step is to be tried again.
    pub failed: Option<SendError>,
}

impl Results {
    /// Records the answer to `step`.
    pub fn answer(&mut self, step: &Step, result: Result<String, SendError>) {
        let channel = step.channel().to_owned();
        match (step, result) {
            (Step::Create { .. }, Ok(message)) => {
                self.created.push(MessageRef {
                    channel: channel.clone(),
                    message,
                });
                self.shown.push(channel);
            }
            (Step::Edit { .. }, Ok(_)) => {
                self.edited += 1;
                self.shown.push(channel);
            }
            (_, Err(SendError::Permanent(_))) => self.dropped.push(channel),
            (_, Err(e)) => self.failed = Some(e),
        }
    }

    /// Whether anything reached Discord.
    pub fn wrote(&self) -> bool {
        !self.created.is_empty() || self.edited > 0
    }
}

/// The plugin data to record over `current` (what is stored now, maybe
/// written by another replica since we read): our new messages added (never
/// over a message recorded meanwhile), given-up channels removed, `update`
/// applied, and `digest` recorded as what every message shows only when that
/// is known (every channel has a message, each was written or known current
/// by us, nothing failed, nobody wrote concurrently). Also returns whether a
/// recorded message is one we neither wrote nor knew current ("foreign").
pub fn merge(
    current: &PluginData,
    results: &Results,
    channels: &[String],
    digest: &str,
    contended: bool,
    update: &dyn Fn(&mut PluginData),
) -> (PluginData, bool) {
    let mut next = current.clone();
    for m in &results.created {
        if next.message_for(&m.channel).is_none() {
            next.messages.push(m.clone());
        }
    }
    next.messages
        .retain(|m| !results.dropped.contains(&m.channel));
    if next.channels.is_empty() {
        next.channels = channels.to_vec();
    }
    next.channels.retain(|c| !results.dropped.contains(c));
    update(&mut next);
    let every_message = next.channels.iter().all(|c| next.message_for(c).is_some());
    let foreign = next
        .messages
        .iter()
        .any(|m| !results.shown.contains(&m.channel));
    next.rendered = if results.failed.is_none() && every_message && !foreign && !contended {
        digest.to_owned()
    } else {
        String::new()
    };
    (next, foreign)
}

/// Whether a concurrent record makes what Discord shows unknowable: we wrote,
/// and since we read (`read`) another replica recorded another resolution or
/// another body than ours (`fresh`); its edits and ours may have landed in
/// either order.
pub fn contended(read: &PluginData, fresh: &PluginData, digest: &str, wrote: bool) -> bool {
    wrote
        && (fresh.resolution != read.resolution
            || (fresh.rendered != read.rendered && fresh.rendered != digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(messages: &[(&str, &str)], channels: &[&str], rendered: &str) -> PluginData {
        PluginData {
            messages: messages
                .iter()
                .map(|(c, m)| MessageRef {
                    channel: (*c).to_owned(),
                    message: (*m).to_owned(),
                })
                .collect(),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            rendered: rendered.to_owned(),
            ..PluginData::default()
        }
    }

    fn chans(c: &[&str]) -> Vec<String> {
        c.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn creates_where_missing_edits_where_stale_nothing_when_current() {
        let d = data(&[("1", "m1")], &["1", "2"], "abc");
        let (s, shown) = steps(&d, &chans(&["1", "2"]), "abc", false);
        assert_eq!(
            s,
            [Step::Create {
                channel: "2".into()
            }]
        );
        assert_eq!(shown, ["1"]);
        let (s, shown) = steps(&d, &chans(&["1", "2"]), "new", false);
        assert_eq!(s.len(), 2);
        assert!(matches!(&s[0], Step::Edit { message, .. } if message == "m1"));
        assert!(shown.is_empty());
        // A doubtful record edits even when the digest matches.
        let (s, _) = steps(&d, &chans(&["1"]), "abc", true);
        assert_eq!(s.len(), 1);
        let (s, _) = steps(&d, &chans(&["1"]), "abc", false);
        assert!(s.is_empty());
    }

    #[test]
    fn upstream_data_without_a_channel_list_uses_its_messages() {
        let d = data(&[("7", "m7"), ("8", "m8")], &[], "");
        assert_eq!(channels(&d), ["7", "8"]);
        let d = data(&[("7", "m7")], &["7", "9"], "");
        assert_eq!(channels(&d), ["7", "9"]);
    }

    #[test]
    fn answers_merge_and_the_digest_is_recorded_only_when_known() {
        let read = data(&[], &["1", "2"], "");
        let (s, _) = steps(&read, &chans(&["1", "2"]), "d1", false);
        let mut r = Results::default();
        r.answer(&s[0], Ok("m1".into()));
        r.answer(&s[1], Ok("m2".into()));
        assert!(r.wrote());
        let (next, foreign) = merge(&read, &r, &chans(&["1", "2"]), "d1", false, &|d| {
            d.reviews_count = 3
        });
        assert!(!foreign);
        assert_eq!(next.messages.len(), 2);
        assert_eq!((next.rendered.as_str(), next.reviews_count), ("d1", 3));
        // A failed step, or a concurrent writer: no digest.
        let mut failed = r.clone();
        failed.failed = Some(SendError::Retryable("5xx".into()));
        let (next, _) = merge(&read, &failed, &chans(&["1", "2"]), "d1", false, &|_| {});
        assert!(next.rendered.is_empty());
        let (next, _) = merge(&read, &r, &chans(&["1", "2"]), "d1", true, &|_| {});
        assert!(next.rendered.is_empty());
    }

    #[test]
    fn a_message_recorded_meanwhile_wins_and_is_foreign() {
        let mut r = Results::default();
        r.answer(
            &Step::Create {
                channel: "1".into(),
            },
            Ok("ours".into()),
        );
        // Another replica recorded its message for channel 1 first.
        let current = data(&[("1", "theirs")], &["1"], "x");
        let (next, foreign) = merge(&current, &r, &chans(&["1"]), "d", false, &|_| {});
        assert_eq!(next.messages[0].message, "theirs");
        // We did write to channel 1 (same nonce: the same message), so it is
        // shown; a channel we did not touch would be foreign.
        assert!(!foreign);
        let current = data(&[("1", "theirs"), ("5", "m5")], &["1", "5"], "x");
        let (next, foreign) = merge(&current, &r, &chans(&["1"]), "d", false, &|_| {});
        assert!(foreign);
        assert!(next.rendered.is_empty());
    }

    #[test]
    fn given_up_channels_leave_the_record() {
        let read = data(&[("1", "m1"), ("2", "m2")], &["1", "2"], "old");
        let (s, _) = steps(&read, &chans(&["1", "2"]), "new", false);
        let mut r = Results::default();
        r.answer(&s[0], Ok("m1".into()));
        r.answer(&s[1], Err(SendError::Permanent("Unknown Channel".into())));
        let (next, foreign) = merge(&read, &r, &chans(&["1", "2"]), "new", false, &|_| {});
        assert_eq!(
            (next.channels.as_slice(), next.messages.len()),
            (&["1".to_owned()][..], 1)
        );
        assert!(!foreign);
        assert_eq!(next.rendered, "new");
    }

    #[test]
    fn contention_is_another_resolution_or_another_body() {
        let read = data(&[], &[], "a");
        let mut fresh = read.clone();
        assert!(!contended(&read, &fresh, "b", true));
        fresh.rendered = "b".into();
        assert!(
            !contended(&read, &fresh, "b", true),
            "they recorded our body"
        );
        fresh.rendered = "c".into();
        assert!(contended(&read, &fresh, "b", true));
        assert!(!contended(&read, &fresh, "b", false), "we wrote nothing");
        let mut fresh = read.clone();
        fresh.resolution = "APPROVED".into();
        assert!(contended(&read, &fresh, "b", true));
    }
}
