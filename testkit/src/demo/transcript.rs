//! The terminal view of the emulated Discord: polls the Discord emulator,
//! prints each new message and each edit as one line (in the channels, and
//! in the DM channels of the demo's users), and publishes what it has shown
//! as a [`Snapshot`] (the story waits on it; the page renders it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{DmUser, Out};
use crate::discord::{DiscordEmulator, StoredMessage};

/// How often the Discord emulator is read.
const POLL: Duration = Duration::from_millis(25);

/// One channel as last shown.
#[derive(Debug, Clone)]
pub(crate) struct ChannelView {
    /// Name without `#`.
    pub(crate) name: String,
    /// Snowflake.
    pub(crate) id: String,
    /// Messages, oldest first.
    pub(crate) messages: Vec<StoredMessage>,
}

/// One user's direct messages from the bot, as last shown.
#[derive(Debug, Clone)]
pub(crate) struct DmView {
    /// Who.
    pub(crate) user: DmUser,
    /// The DM channel, once the bot opened one.
    pub(crate) channel: Option<String>,
    /// Messages, oldest first.
    pub(crate) messages: Vec<StoredMessage>,
}

/// Every channel and every demo user's DMs as last shown, in a fixed order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// `#dev`, `#ops`, `#fallback`.
    pub(crate) channels: Vec<ChannelView>,
    /// One per demo user who may get DMs.
    pub(crate) dms: Vec<DmView>,
}

impl Snapshot {
    /// The DMs to the Discord user `name`.
    pub(crate) fn dms_to(&self, name: &str) -> &[StoredMessage] {
        self.dms
            .iter()
            .find(|d| d.user.name == name)
            .map(|d| d.messages.as_slice())
            .unwrap_or_default()
    }
}

/// A review embed, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Review {
    /// Title says "Approved".
    pub(crate) approved: bool,
    /// Embed author.
    pub(crate) author: String,
    /// The reason, without its code block.
    pub(crate) reason: String,
    /// Says "Reviewed from Discord." (the service submitted it for a clicker).
    pub(crate) from_discord: bool,
}

/// What a person reads in a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// `*ID*`.
    pub(crate) request: String,
    /// `*Status*`, with its emoji.
    pub(crate) status: String,
    /// `*User*`.
    pub(crate) user: String,
    /// `*Role(s)*`.
    pub(crate) roles: String,
    /// `*Reason*`.
    pub(crate) reason: String,
    /// `*Reviews*` (how many more are needed).
    pub(crate) needed: String,
    /// Review embeds.
    pub(crate) reviews: Vec<Review>,
    /// Button labels.
    pub(crate) buttons: Vec<String>,
}

/// Removes the markdown escaping and invisible guards `render` adds.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(|n| !n.is_alphanumeric()) => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '\u{200B}' | '\u{FEFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn field<'a>(content: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("*{name}*: ");
    content
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// The text inside the first code block after `*{name}*: `.
fn block_field(content: &str, name: &str) -> Option<String> {
    let start = content.find(&format!("*{name}*: ```\n"))? + name.len() + 8;
    let rest = &content[start..];
    let end = rest.find("```").unwrap_or(rest.len());
    Some(unescape(&rest[..end]))
}

/// The reason in a review embed's description, which may start with a line
/// saying how the review came ("Reviewed from Discord.", "Submitted by …").
fn embed_reason(description: &str) -> String {
    const MARK: &str = "Reason: ```\n";
    let at = if description.starts_with(MARK) {
        Some(0)
    } else {
        description.find(&format!("\n{MARK}")).map(|i| i + 1)
    };
    at.map(|i| &description[i + MARK.len()..])
        .map(|r| r.split("```").next().unwrap_or_default())
        .map(unescape)
        .unwrap_or_default()
}

/// Reads a message the way a person would.
pub(crate) fn summarize(m: &StoredMessage) -> Summary {
    summarize_parts(&m.content, &m.embeds, &m.components)
}

/// Like [`summarize`] for one body (a create or an edit in the history).
pub(crate) fn summarize_parts(content: &str, embeds: &Value, components: &Value) -> Summary {
    let reviews = embeds
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Review {
                    approved: e["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Approved")),
                    author: e["author"]["name"].as_str().unwrap_or_default().to_owned(),
                    reason: embed_reason(e["description"].as_str().unwrap_or_default()),
                    from_discord: e["description"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("Reviewed from Discord.")),
                })
                .collect()
        })
        .unwrap_or_default();
    let buttons = components
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["label"].as_str().map(str::to_owned))
        .collect();
    Summary {
        request: field(content, "ID").map(unescape).unwrap_or_default(),
        status: field(content, "Status")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        user: field(content, "User").map(unescape).unwrap_or_default(),
        roles: field(content, "Role(s)")
            .map(|r| unescape(r).replace('`', ""))
            .unwrap_or_default(),
        reason: block_field(content, "Reason").unwrap_or_default(),
        needed: field(content, "Reviews").unwrap_or_default().to_owned(),
        reviews,
        buttons,
    }
}

/// Discord's `<t:UNIX>` / `<t:UNIX:STYLE>` at the start of `s`: the time
/// and the style, and how many bytes it takes.
fn timestamp_at(s: &str) -> Option<(i64, char, usize)> {
    let rest = s.strip_prefix("<t:")?;
    let end = rest.find('>')?;
    let inner = &rest[..end];
    let (num, style) = match inner.split_once(':') {
        Some((n, st)) if st.len() == 1 => (n, st.chars().next().unwrap_or('f')),
        Some(_) => return None,
        None => (inner, 'f'),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    let unix = num.parse().ok()?;
    Some((unix, style, 3 + end + 1))
}

/// A Discord timestamp as text: relative (`R`) to `now_unix`, else the UTC
/// date and time (Discord shows it in the reader's time zone).
fn timestamp_text(unix: i64, style: char, now_unix: i64) -> String {
    if style == 'R' {
        let d = unix - now_unix;
        let a = d.unsigned_abs();
        let n = match a {
            0..60 => format!("{a} s"),
            60..3600 => format!("{} min", a / 60),
            3600..86_400 => format!("{} h", a / 3600),
            _ => format!("{} day(s)", a / 86_400),
        };
        return if d >= 0 {
            format!("in {n}")
        } else {
            format!("{n} ago")
        };
    }
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    match style {
        'd' | 'D' => format!("{y:04}-{mo:02}-{d:02}"),
        't' | 'T' => format!("{:02}:{:02} UTC", t.hour(), t.minute()),
        _ => format!(
            "{y:04}-{mo:02}-{d:02} {:02}:{:02} UTC",
            t.hour(),
            t.minute()
        ),
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Replaces Discord timestamps (`<t:…>`) with their text.
pub(crate) fn timestamps(s: &str) -> String {
    let now = now_unix();
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("<t:") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some((unix, style, len)) = timestamp_at(rest) {
            out.push_str(&timestamp_text(unix, style, now));
            rest = &rest[len..];
        } else {
            out.push('<');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A message's text as a person reads it, on one line: markdown markers
/// and escapes gone, code blocks in quotes, timestamps as text, lines
/// joined with ` · `.
pub(crate) fn plain(content: &str) -> String {
    let mut text = String::new();
    for (i, part) in timestamps(content).split("```").enumerate() {
        if i % 2 == 1 {
            let code = part.strip_prefix('\n').unwrap_or(part).trim();
            text.push('"');
            text.push_str(&code.replace('\n', " "));
            text.push('"');
            continue;
        }
        let mut chars = part.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek().is_some_and(|n| !n.is_alphanumeric()) => {
                    if let Some(n) = chars.next() {
                        text.push(n);
                    }
                }
                '*' | '`' | '\u{200B}' | '\u{FEFF}' => {}
                c => text.push(c),
            }
        }
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" · ")
}

fn short(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn short_id(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(6)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

fn review_text(r: &Review) -> String {
    let (mark, verb) = if r.approved {
        ("🟢", "approved")
    } else {
        ("🔴", "denied")
    };
    let via = if r.from_discord { " from Discord" } else { "" };
    if r.reason.is_empty() {
        format!("{mark} {} {verb}{via}", r.author)
    } else {
        format!(
            "{mark} {} {verb}{via}: \"{}\"",
            r.author,
            short(&r.reason, 40)
        )
    }
}

fn posted_line(channel: &str, m: &StoredMessage) -> String {
    let s = summarize(m);
    let mut parts = vec![s.status.clone()];
    parts.push(format!("{} wants `{}`", s.user, s.roles));
    if !s.reason.is_empty() {
        parts.push(format!("\"{}\"", short(&s.reason, 40)));
    }
    if !s.needed.is_empty() {
        parts.push(s.needed.clone());
    }
    for b in &s.buttons {
        parts.push(format!("[{b}]"));
    }
    format!(
        "#{channel:<9} 📨 posted  msg {}  {}",
        short_id(&m.id),
        parts.join(" · ")
    )
}

fn edited_line(channel: &str, before: &StoredMessage, after: &StoredMessage) -> String {
    let (b, a) = (summarize(before), summarize(after));
    let mut parts = Vec::new();
    if a.status == b.status {
        parts.push(a.status.clone());
    } else {
        parts.push(format!("{} (was {})", a.status, b.status));
    }
    for r in a.reviews.iter().skip(b.reviews.len()) {
        parts.push(format!("+review {}", review_text(r)));
    }
    if a.needed != b.needed && !a.needed.is_empty() {
        parts.push(a.needed.clone());
    }
    if a.buttons != b.buttons {
        if a.buttons.is_empty() {
            parts.push(if b.buttons.len() > 1 {
                "buttons removed".to_owned()
            } else {
                "button removed".to_owned()
            });
        } else {
            parts.push(format!("buttons: {}", a.buttons.join(", ")));
        }
    }
    let edits = after.history.len().saturating_sub(before.history.len());
    let times = if edits > 1 {
        format!(" ×{edits}")
    } else {
        String::new()
    };
    format!(
        "#{channel:<9} ✏️  edited{times}  msg {}  {}",
        short_id(&after.id),
        parts.join(" · ")
    )
}

fn dm_line(user: &str, m: &StoredMessage) -> String {
    format!(
        "@{user:<9} 💬 DM      msg {}  {}",
        short_id(&m.id),
        plain(&m.content)
    )
}

fn dm_edited_line(user: &str, m: &StoredMessage) -> String {
    format!(
        "@{user:<9} ✏️  edited  msg {}  {}",
        short_id(&m.id),
        plain(&m.content)
    )
}

fn take(discord: &DiscordEmulator, channels: &[(String, String)], dms: &[DmUser]) -> Snapshot {
    Snapshot {
        channels: channels
            .iter()
            .map(|(name, id)| ChannelView {
                name: name.clone(),
                id: id.clone(),
                messages: discord.messages(id),
            })
            .collect(),
        dms: dms
            .iter()
            .map(|user| {
                let channel = discord.dm_channel(&user.discord_id);
                let messages = channel
                    .as_deref()
                    .map(|c| discord.messages(c))
                    .unwrap_or_default();
                DmView {
                    user: user.clone(),
                    channel,
                    messages,
                }
            })
            .collect(),
    }
}

/// Starts polling; the receiver always holds what the transcript has printed.
pub(crate) fn spawn(
    discord: Arc<DiscordEmulator>,
    channels: Vec<(String, String)>,
    dms: Vec<DmUser>,
    out: Out,
    stop: CancellationToken,
) -> watch::Receiver<Arc<Snapshot>> {
    let empty = Snapshot {
        channels: channels
            .iter()
            .map(|(name, id)| ChannelView {
                name: name.clone(),
                id: id.clone(),
                messages: Vec::new(),
            })
            .collect(),
        dms: dms
            .iter()
            .map(|user| DmView {
                user: user.clone(),
                channel: None,
                messages: Vec::new(),
            })
            .collect(),
    };
    let (tx, rx) = watch::channel(Arc::new(empty));
    tokio::spawn(async move {
        let mut seen: HashMap<String, StoredMessage> = HashMap::new();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let snapshot = take(&discord, &channels, &dms);
            for ch in &snapshot.channels {
                for m in &ch.messages {
                    match seen.get(&m.id) {
                        None => out.event(&posted_line(&ch.name, m)),
                        Some(prev) if prev.history.len() != m.history.len() => {
                            out.event(&edited_line(&ch.name, prev, m));
                        }
                        Some(_) => continue,
                    }
                    seen.insert(m.id.clone(), m.clone());
                }
            }
            for dm in &snapshot.dms {
                for m in &dm.messages {
                    match seen.get(&m.id) {
                        None => out.event(&dm_line(&dm.user.name, m)),
                        Some(prev) if prev.history.len() != m.history.len() => {
                            out.event(&dm_edited_line(&dm.user.name, m));
                        }
                        Some(_) => continue,
                    }
                    seen.insert(m.id.clone(), m.clone());
                }
            }
            tx.send_replace(Arc::new(snapshot));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_rendered_message_back() {
        let content = "You have a new Role Request:\n*ID*: abc\\-1\n*Cluster*: c\n*User*: al\\_ice\n*Role(s)*: `dev,ops`\n*Reason*: ```\nship it```\n*Reviews*: 1 more approval(s) or 1 more denial(s) needed\n*Status*: ⏳ PENDING";
        let embeds = json!([{"title": "Denied request at Mon", "description": "Reason: ```\nno```", "color": 13771309, "author": {"name": "bob"}}]);
        let components = json!([{"type": 1, "components": [{"type": 2, "style": 5, "label": "Review request", "url": "https://x"}]}]);
        let s = summarize_parts(content, &embeds, &components);
        assert_eq!(s.request, "abc-1");
        assert_eq!(s.user, "al_ice");
        assert_eq!(s.roles, "dev,ops");
        assert_eq!(s.reason, "ship it");
        assert_eq!(s.status, "⏳ PENDING");
        assert_eq!(s.needed, "1 more approval(s) or 1 more denial(s) needed");
        assert_eq!(
            s.reviews,
            vec![Review {
                approved: false,
                author: "bob".into(),
                reason: "no".into(),
                from_discord: false,
            }]
        );
        assert_eq!(s.buttons, vec!["Review request"]);
    }

    #[test]
    fn reads_a_review_from_discord_back() {
        let embeds = json!([
            {"title": "Approved request at Mon", "description": "Reviewed from Discord.\nReason: ```\nship it```", "author": {"name": "carol"}},
            {"title": "Approved request at Mon", "description": "Submitted by other\\-bot.\nReason: ```\nok```", "author": {"name": "dan"}},
            {"title": "Denied request at Mon", "description": "Reviewed from Discord.", "author": {"name": "erin"}}
        ]);
        let s = summarize_parts("", &embeds, &json!([]));
        let got: Vec<(&str, &str, bool)> = s
            .reviews
            .iter()
            .map(|r| (r.author.as_str(), r.reason.as_str(), r.from_discord))
            .collect();
        assert_eq!(
            got,
            vec![
                ("carol", "ship it", true),
                ("dan", "ok", false),
                ("erin", "", true)
            ]
        );
        assert_eq!(
            review_text(&s.reviews[0]),
            "🟢 carol approved from Discord: \"ship it\""
        );
    }

    #[test]
    fn a_dm_reads_as_one_line() {
        let dm = "✅ Your access request `abc-1` for `dev` was approved by bob, carol\\_x.\nReason: ```\nship\nit```\nYour access ends <t:86400:f> (<t:1:R>).";
        let text = plain(dm);
        assert!(
            text.starts_with("✅ Your access request abc-1 for dev was approved by bob, carol_x. · Reason: \"ship it\" · Your access ends 1970-01-02 00:00 UTC ("),
            "{text}"
        );
        assert!(text.ends_with(" ago)."), "{text}");
        assert_eq!(
            plain(
                "🔔 **Access list review reminder**\nAccess List **P\\*x** is due.\n*Link*: https://t/web/accesslists/p"
            ),
            "🔔 Access list review reminder · Access List P*x is due. · Link: https://t/web/accesslists/p"
        );
        assert_eq!(timestamps("a <t:x> <t:0:D> <t:"), "a <t:x> 1970-01-01 <t:");
        assert_eq!(timestamp_text(7200, 'R', 0), "in 2 h");
    }

    #[test]
    fn short_cuts_on_characters() {
        assert_eq!(short("héllo wörld", 6), "héllo…");
        assert_eq!(short_id("1234567890"), "…567890");
    }
}
