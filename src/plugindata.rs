//! Plugin data: what the service remembers about each access request, stored
//! in Teleport (plugin `discord`, kind `access_request`) in upstream's layout,
//! so a deployment switching from the Go plugin keeps editing its messages.
//!
//! Upstream keys: `user`, `roles` (comma-joined), `resources` (JSON array),
//! `request_reason`, `reviews_count`, `resolution`, `resolve_reason`,
//! `system_annotations` (JSON), `logins_by_role` (JSON), `messages`
//! (`channel/message,…`), and the legacy read-only `channel_id` + `timestamp`.
//! Ours: `discord_channels` (the recipient channels claimed when the request
//! was first seen, comma-joined) and `discord_rendered` (a digest of the last
//! body written to every message, so a resync with nothing new makes no
//! Discord call) and `discord_owner` (the replica that claimed the request:
//! the others give it a moment to act before they do), and
//! `discord_requester_dm` (where the requester's DM about the resolution
//! stands, see `notify::requester`). Unknown keys are kept untouched.
//!
//! Writes are compare-and-swap: `Set` = [`PluginData::encode`] of the new
//! value, `Expect` = the encoding of the value read, where `""` means absent.

use std::collections::BTreeMap;

/// The plugin name under which the data is stored.
pub const PLUGIN_NAME: &str = "discord";

/// Ours ([`PluginData::requester_dm`]): where the requester's DM about the
/// resolution stands (`<TAG> due`, `<TAG> claimed <replica> <unix>`, `<TAG>
/// sent|refused|unmapped`; the `notify` module reads and writes it).
pub const REQUESTER_DM_KEY: &str = "discord_requester_dm";

/// Marks the requester's DM about resolution `tag` as due, unless this
/// resolution already has a record (written with the resolution, when
/// `[notify] requester` is on).
pub fn mark_requester_due(data: &mut PluginData, tag: &str) {
    if data.requester_dm.split_whitespace().next() != Some(tag) {
        data.requester_dm = format!("{tag} due");
    }
}

/// Keys this module reads and writes (so [`PluginData::encode`] can clear them).
const KNOWN_KEYS: [&str; 14] = [
    "user",
    "roles",
    "resources",
    "request_reason",
    "reviews_count",
    "resolution",
    "resolve_reason",
    "system_annotations",
    "logins_by_role",
    "messages",
    "discord_channels",
    "discord_rendered",
    "discord_owner",
    REQUESTER_DM_KEY,
];

/// A posted message: channel and message IDs as Discord gives them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageRef {
    /// Channel ID.
    pub channel: String,
    /// Message ID.
    pub message: String,
}

/// The decoded plugin data of one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginData {
    /// Requesting user.
    pub user: String,
    /// Requested roles.
    pub roles: Vec<String>,
    /// Requested resources.
    pub resources: Vec<String>,
    /// The request's reason, untruncated.
    pub request_reason: String,
    /// Reviews seen so far.
    pub reviews_count: u32,
    /// `""`, `APPROVED`, `DENIED`, `EXPIRED` or `PROMOTED`.
    pub resolution: String,
    /// Reason given with the resolution.
    pub resolve_reason: String,
    /// System annotations (JSON object of string lists).
    pub system_annotations: BTreeMap<String, Vec<String>>,
    /// Logins per role (JSON object of string lists).
    pub logins_by_role: BTreeMap<String, Vec<String>>,
    /// Messages posted, one per channel.
    pub messages: Vec<MessageRef>,
    /// Channels claimed for this request (ours).
    pub channels: Vec<String>,
    /// Digest of the body last written to every message (ours).
    pub rendered: String,
    /// The replica that claimed the request; the others leave it a moment
    /// to act first (ours).
    pub owner: String,
    /// Where the requester's DM stands ([`REQUESTER_DM_KEY`], ours).
    pub requester_dm: String,
    /// Keys we do not know, kept as they are.
    pub extra: BTreeMap<String, String>,
}

/// A value that could not be decoded; the rest of the data still is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeProblem {
    /// The key.
    pub key: String,
    /// What was wrong.
    pub message: String,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

impl PluginData {
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.encode().values().all(String::is_empty) && self.extra.is_empty()
    }

    /// The message posted to `channel`, if any.
    pub fn message_for(&self, channel: &str) -> Option<&MessageRef> {
        self.messages.iter().find(|m| m.channel == channel)
    }

    /// Decodes a stored map. Bad values are reported and skipped, never fatal.
    pub fn decode(map: &BTreeMap<String, String>) -> (Self, Vec<DecodeProblem>) {
        let mut problems = Vec::new();
        let get = |k: &str| map.get(k).map(String::as_str).unwrap_or("");
        let mut problem = |key: &str, message: String| {
            problems.push(DecodeProblem {
                key: key.to_owned(),
                message,
            })
        };
        let mut d = Self {
            user: get("user").to_owned(),
            roles: split_list(get("roles")),
            request_reason: get("request_reason").to_owned(),
            resolution: get("resolution").to_owned(),
            resolve_reason: get("resolve_reason").to_owned(),
            channels: split_list(get("discord_channels")),
            rendered: get("discord_rendered").to_owned(),
            owner: get("discord_owner").to_owned(),
            requester_dm: get(REQUESTER_DM_KEY).to_owned(),
            ..Self::default()
        };
        if !get("resources").is_empty() {
            match serde_json::from_str(get("resources")) {
                Ok(v) => d.resources = v,
                Err(e) => problem("resources", format!("not a JSON array of strings: {e}")),
            }
        }
        for (key, target) in [
            ("system_annotations", &mut d.system_annotations),
            ("logins_by_role", &mut d.logins_by_role),
        ] {
            if !get(key).is_empty() {
                match serde_json::from_str(get(key)) {
                    Ok(v) => *target = v,
                    Err(e) => problem(key, format!("not a JSON object of string lists: {e}")),
                }
            }
        }
        if !get("reviews_count").is_empty() {
            match get("reviews_count").trim().parse() {
                Ok(n) => d.reviews_count = n,
                Err(_) => problem(
                    "reviews_count",
                    format!("not a number: {:?}", get("reviews_count")),
                ),
            }
        }
        for item in get("messages")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match item.split_once('/') {
                Some((c, m)) if !c.is_empty() && !m.is_empty() && !m.contains('/') => {
                    d.messages.push(MessageRef {
                        channel: c.to_owned(),
                        message: m.to_owned(),
                    })
                }
                _ => problem("messages", format!("entry {item:?} is not channel/message")),
            }
        }
        // Slack-era single message, read only.
        if d.messages.is_empty() && !get("channel_id").is_empty() && !get("timestamp").is_empty() {
            d.messages.push(MessageRef {
                channel: get("channel_id").to_owned(),
                message: get("timestamp").to_owned(),
            });
        }
        for (k, v) in map {
            if !KNOWN_KEYS.contains(&k.as_str()) {
                d.extra.insert(k.clone(), v.clone());
            }
        }
        (d, problems)
    }

    /// Encodes every known key; an absent value is `""`, which deletes the key
    /// when used in `Set` and means "absent" when used in `Expect`. Unknown
    /// keys are not included, so they are neither changed nor checked.
    pub fn encode(&self) -> BTreeMap<String, String> {
        let json = |m: &BTreeMap<String, Vec<String>>| {
            if m.is_empty() {
                String::new()
            } else {
                serde_json::to_string(m).unwrap_or_default()
            }
        };
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            out.insert(k.to_owned(), v);
        };
        put("user", self.user.clone());
        put("roles", self.roles.join(","));
        put(
            "resources",
            if self.resources.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&self.resources).unwrap_or_default()
            },
        );
        put("request_reason", self.request_reason.clone());
        put(
            "reviews_count",
            if self.reviews_count == 0 {
                String::new()
            } else {
                self.reviews_count.to_string()
            },
        );
        put("resolution", self.resolution.clone());
        put("resolve_reason", self.resolve_reason.clone());
        put("system_annotations", json(&self.system_annotations));
        put("logins_by_role", json(&self.logins_by_role));
        put(
            "messages",
            self.messages
                .iter()
                .map(|m| format!("{}/{}", m.channel, m.message))
                .collect::<Vec<_>>()
                .join(","),
        );
        put("discord_channels", self.channels.join(","));
        put("discord_rendered", self.rendered.clone());
        put("discord_owner", self.owner.clone());
        put(REQUESTER_DM_KEY, self.requester_dm.clone());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The shape upstream's `TestEncodePluginData` writes.
    #[test]
    fn decodes_upstream_data() {
        let stored = map(&[
            ("user", "user-foo"),
            ("roles", "role-foo,role-bar"),
            (
                "resources",
                "[\"cluster-a/node/foo\",\"cluster-a/node/bar\"]",
            ),
            ("request_reason", "foo reason"),
            ("reviews_count", "3"),
            ("resolution", "APPROVED"),
            ("resolve_reason", "foo ok"),
            ("system_annotations", "{\"foo\":[\"bar\"]}"),
            ("messages", "CHANNEL1/0000001,CHANNEL2/0000002"),
        ]);
        let (d, problems) = PluginData::decode(&stored);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(d.user, "user-foo");
        assert_eq!(d.roles, ["role-foo", "role-bar"]);
        assert_eq!(d.resources, ["cluster-a/node/foo", "cluster-a/node/bar"]);
        assert_eq!(d.reviews_count, 3);
        assert_eq!(d.resolution, "APPROVED");
        assert_eq!(d.system_annotations["foo"], ["bar"]);
        assert_eq!(
            d.messages,
            [
                MessageRef {
                    channel: "CHANNEL1".into(),
                    message: "0000001".into()
                },
                MessageRef {
                    channel: "CHANNEL2".into(),
                    message: "0000002".into()
                }
            ]
        );
        assert_eq!(
            d.message_for("CHANNEL2").map(|m| m.message.as_str()),
            Some("0000002")
        );
        // Re-encoding gives back the same values for upstream's keys.
        let again = d.encode();
        for (k, v) in &stored {
            assert_eq!(again.get(k), Some(v), "{k}");
        }
    }

    #[test]
    fn empty_encodes_every_key_empty() {
        let e = PluginData::default().encode();
        assert_eq!(e.len(), KNOWN_KEYS.len());
        assert!(e.values().all(String::is_empty));
        assert!(PluginData::default().is_empty());
        let (d, p) = PluginData::decode(&BTreeMap::new());
        assert!(p.is_empty());
        assert_eq!(d, PluginData::default());
    }

    #[test]
    fn round_trip_with_our_keys() {
        let d = PluginData {
            user: "alice".into(),
            roles: vec!["dev".into()],
            reviews_count: 2,
            logins_by_role: [("dev".to_owned(), vec!["root".to_owned()])].into(),
            messages: vec![MessageRef {
                channel: "1".into(),
                message: "2".into(),
            }],
            channels: vec!["1".into(), "3".into()],
            rendered: "abc".into(),
            ..PluginData::default()
        };
        let (back, p) = PluginData::decode(&d.encode());
        assert!(p.is_empty());
        assert_eq!(back, d);
    }

    #[test]
    fn bad_values_are_reported_not_fatal() {
        let (d, problems) = PluginData::decode(&map(&[
            ("user", "bob"),
            ("resources", "not json"),
            ("reviews_count", "many"),
            ("messages", "1/2,garbage,3/4,/5,6/"),
            ("logins_by_role", "[1]"),
            ("someone_elses", "value"),
        ]));
        assert_eq!(d.user, "bob");
        assert_eq!(d.messages.len(), 2);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "resources",
                "logins_by_role",
                "reviews_count",
                "messages",
                "messages",
                "messages"
            ]
        );
        assert_eq!(d.extra["someone_elses"], "value");
        assert!(
            !d.encode().contains_key("someone_elses"),
            "unknown keys are never set or expected"
        );
    }

    #[test]
    fn legacy_single_message_is_read() {
        let (d, _) = PluginData::decode(&map(&[("channel_id", "C1"), ("timestamp", "M1")]));
        assert_eq!(
            d.messages,
            [MessageRef {
                channel: "C1".into(),
                message: "M1".into()
            }]
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(m in proptest::collection::btree_map("[a-z_]{1,20}", "\\PC{0,60}", 0..12)) {
            let _ = PluginData::decode(&m);
        }
    }
}
