//! Rendering: an access request's state → the Discord message that shows it.
//!
//! The text keeps upstream's format, which users and their tooling rely on
//! (`You have a new Role Request:` then `*Field*: value` lines, review embeds
//! titled `Approved request at <date>`), and fixes its gaps:
//! - every payload fits Discord's limits (content ≤ 2000, ≤ 10 embeds, embed
//!   text ≤ 6000, each field's own limit), truncating by characters with a
//!   visible marker, and the status line always survives;
//! - more than 9 reviews are summarised in one embed instead of failing;
//! - user-supplied text is escaped (markdown, bidi and zero-width controls),
//!   and `allowed_mentions` suppresses every mention on create and edit.
//!
//! Pure functions only: no I/O, no clock.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// Discord's content limit, in characters.
pub const CONTENT_LIMIT: usize = 2000;
/// Embeds per message.
pub const EMBEDS_LIMIT: usize = 10;
/// Sum of all embed text.
pub const EMBED_TOTAL_LIMIT: usize = 6000;
/// Embed title.
pub const EMBED_TITLE_LIMIT: usize = 256;
/// Embed description.
pub const EMBED_DESCRIPTION_LIMIT: usize = 4096;
/// Embed author name.
pub const EMBED_AUTHOR_LIMIT: usize = 256;
/// Link button URL.
pub const BUTTON_URL_LIMIT: usize = 512;
/// Upstream's limit for each escaped value (reason, roles, ...), in characters.
pub const VALUE_LIMIT: usize = 400;
/// Review embeds shown before older ones are summarised.
pub const MAX_REVIEW_EMBEDS: usize = EMBEDS_LIMIT - 1;

/// Embed colour of an approval (upstream's green).
pub const APPROVED_COLOR: u32 = 0x0023_8823;
/// Embed colour of a denial (upstream's red).
pub const DENIED_COLOR: u32 = 0x00D2_222D;
/// Embed colour of the summary of older reviews.
pub const SUMMARY_COLOR: u32 = 0x0099_AAB5;

/// The request state a message shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Waiting for reviews.
    Pending,
    /// Approved.
    Approved,
    /// Denied.
    Denied,
    /// Promoted to an access list.
    Promoted,
    /// Expired or deleted before resolution.
    Expired,
}

impl Status {
    /// Upstream's tag (`resolution` in plugin data).
    pub fn tag(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Denied => "DENIED",
            Self::Promoted => "PROMOTED",
            Self::Expired => "EXPIRED",
        }
    }

    /// The status line's text: emoji and tag (PROMOTED has no emoji, as upstream).
    pub fn line(self) -> &'static str {
        match self {
            Self::Pending => "⏳ PENDING",
            Self::Approved => "✅ APPROVED",
            Self::Denied => "❌ DENIED",
            Self::Expired => "⌛ EXPIRED",
            Self::Promoted => " PROMOTED",
        }
    }
}

/// One review as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewView {
    /// Reviewer.
    pub author: String,
    /// Approve (true) or deny (false).
    pub approved: bool,
    /// Why.
    pub reason: String,
    /// When, seconds since the Unix epoch.
    pub created_unix: i64,
    /// Who submitted it for the author, when someone did: `Some("Discord")`
    /// for a review this service submitted for a click.
    pub via: Option<String>,
}

/// What a review button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Approve.
    Approve,
    /// Deny.
    Deny,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// The version prefix of our `custom_id`s; a new layout gets a new one.
pub const CUSTOM_ID_PREFIX: &str = "review:v1:";

/// The action a review button (or its modal) carries in `custom_id`:
/// `review:v1:<approve|deny>:<request id>`, at most 100 characters. It names
/// the request and the verdict only; who clicked comes from Discord's signed
/// payload, never from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonAction {
    /// Approve or deny.
    pub verdict: Verdict,
    /// The access request.
    pub request_id: String,
}

impl ButtonAction {
    /// The `custom_id`.
    pub fn custom_id(&self) -> String {
        format!(
            "{CUSTOM_ID_PREFIX}{}:{}",
            self.verdict.word(),
            self.request_id
        )
    }

    /// Parses a `custom_id`; `None` for anything that is not exactly ours
    /// (another version, another verdict, a request ID that is not 1 to 64
    /// letters, digits and dashes).
    pub fn parse(custom_id: &str) -> Option<Self> {
        let rest = custom_id.strip_prefix(CUSTOM_ID_PREFIX)?;
        let (verdict, id) = rest.split_once(':')?;
        let verdict = match verdict {
            "approve" => Verdict::Approve,
            "deny" => Verdict::Deny,
            _ => return None,
        };
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then(|| Self {
            verdict,
            request_id: id.to_owned(),
        })
    }
}

/// What the message shows: a view of an access request, built by the reconciler.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestView {
    /// Request ID (a UUID).
    pub id: String,
    /// Cluster name (from Ping).
    pub cluster: String,
    /// Requesting user.
    pub user: String,
    /// Requested roles.
    pub roles: Vec<String>,
    /// Logins each role grants (empty when unknown).
    pub logins_by_role: BTreeMap<String, Vec<String>>,
    /// Requested resources, as display strings.
    pub resources: Vec<String>,
    /// The request's reason.
    pub reason: String,
    /// The state to show.
    pub status: StatusField,
    /// Reason given when resolved.
    pub resolve_reason: String,
    /// Reviews in Teleport's order.
    pub reviews: Vec<ReviewView>,
    /// Approvals and denials still needed, when Teleport tells us.
    pub needed: Option<Needed>,
    /// When the request itself expires (unix seconds), if known.
    pub request_expires_unix: Option<i64>,
    /// When granted access would expire (unix seconds), if known.
    pub access_expires_unix: Option<i64>,
    /// `https://<proxy>` for the web UI link (Enterprise clusters), or none.
    pub web_proxy_url: Option<String>,
    /// A long-term request (access list promotion): titled so, and never
    /// given review buttons.
    pub long_term: bool,
    /// Whether a pending, short-term request gets Approve / Deny buttons
    /// (`[review] enabled`).
    pub review_buttons: bool,
}

/// Wrapper so `RequestView` can derive `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusField(pub Status);

impl Default for StatusField {
    fn default() -> Self {
        Self(Status::Pending)
    }
}

/// Approvals/denials still needed to resolve the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed {
    /// Approvals still needed.
    pub approvals: u32,
    /// Denials still needed.
    pub denials: u32,
}

/// A Discord message body (create or edit), serialised as Discord expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageBody {
    /// The text.
    pub content: String,
    /// Review embeds. `None` leaves the message's embeds as they are on edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeds: Option<Vec<Embed>>,
    /// Buttons (a link to the web UI on Enterprise clusters).
    pub components: Vec<ActionRow>,
    /// Always `{"parse": []}`: nobody is pinged, whatever the text says.
    pub allowed_mentions: AllowedMentions,
}

/// A rich embed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Embed {
    /// Title.
    pub title: String,
    /// Description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Colour.
    pub color: u32,
    /// Author.
    pub author: EmbedAuthor,
}

/// An embed's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbedAuthor {
    /// Name.
    pub name: String,
}

/// An action row of buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRow {
    /// Always 1.
    #[serde(rename = "type")]
    pub kind: u8,
    /// The buttons.
    pub components: Vec<Button>,
}

/// A button: a link (style 5, `url`) or an interactive one (`custom_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Button {
    /// Always 2.
    #[serde(rename = "type")]
    pub kind: u8,
    /// 3: success (green), 4: danger (red), 5: link.
    pub style: u8,
    /// Label.
    pub label: String,
    /// Target of a link button.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What an interactive button's click carries back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
}

/// Button style: green.
pub const STYLE_SUCCESS: u8 = 3;
/// Button style: red.
pub const STYLE_DANGER: u8 = 4;
/// Button style: link.
pub const STYLE_LINK: u8 = 5;

/// Whether `view` gets Approve / Deny buttons: reviews are on, the request
/// is pending and not long-term.
pub fn shows_review_buttons(view: &RequestView) -> bool {
    view.review_buttons && !view.long_term && view.status.0 == Status::Pending
}

/// Which mentions Discord may turn into pings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct AllowedMentions {
    /// Empty: none.
    pub parse: Vec<String>,
}

/// Length as Discord counts it. Counting UTF-16 code units is never less than
/// counting code points, so a text within the limit either way is safe.
pub fn discord_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cuts `s` to at most `limit` (Discord length) without splitting a character.
pub fn cut(s: &str, limit: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > limit {
            return &s[..i];
        }
    }
    s
}

/// Truncates to `limit` with a visible marker when something was cut.
pub fn truncate_marked(s: &str, limit: usize, marker: &str) -> String {
    if discord_len(s) <= limit {
        return s.to_owned();
    }
    let room = limit.saturating_sub(discord_len(marker));
    let mut out = cut(s, room).to_owned();
    out.push_str(cut(marker, limit));
    out
}

/// Removes what would let user text spoof the layout: control characters
/// other than newline and tab, bidi overrides and isolates, and zero-width
/// characters. (Ordinary right-to-left text stays.)
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|&c| !is_stray_control(c) && !is_bidi_control(c) && !is_zero_width(c))
        .collect()
}

fn is_stray_control(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

fn is_zero_width(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2065}' | '\u{FEFF}')
}

/// Escapes Discord markdown and mention syntax in inline (non-code) text:
/// formatting characters get a backslash, `<` (user/role/channel mentions,
/// timestamps) is escaped, and `@everyone`/`@here` are broken with a
/// zero-width space so they do not even look like mentions.
pub fn escape_markdown(s: &str) -> String {
    let clean = sanitize(s).replace('\n', " ");
    let mut out = String::with_capacity(clean.len() + 8);
    for c in clean.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '<' | '>' | '[' | ']'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out.replace("@everyone", "@\u{200B}everyone")
        .replace("@here", "@\u{200B}here")
}

const TRUNCATED: &str = " (truncated)";

/// Upstream's code escaping: trimmed, `(empty)` when empty, a backtick is
/// followed by U+FEFF so it cannot close the block, cut at `limit`.
fn code_text(s: &str, limit: usize) -> (String, bool) {
    let clean: String = s
        .chars()
        .filter(|&c| !is_stray_control(c) && !is_bidi_control(c))
        .collect();
    let trimmed = clean.trim();
    if trimmed.is_empty() {
        return ("(empty)".to_owned(), false);
    }
    let mut out = String::new();
    let mut used = 0;
    for c in trimmed.chars() {
        let w = if c == '`' { 2 } else { c.len_utf16() };
        if used + w > limit {
            return (out, true);
        }
        used += w;
        out.push(c);
        if c == '`' {
            out.push('\u{FEFF}');
        }
    }
    (out, false)
}

/// A value in a code block (reason, resolve reason), as upstream formats it.
pub fn code_block(s: &str, limit: usize) -> String {
    let (text, cut) = code_text(s, limit);
    format!("```\n{text}```{}", if cut { TRUNCATED } else { "" })
}

/// A value in inline code (roles, resources, logins), as upstream formats it.
pub fn inline_code(s: &str, limit: usize) -> String {
    let (text, cut) = code_text(&s.replace('\n', " "), limit);
    format!("`{text}`{}", if cut { TRUNCATED } else { "" })
}

/// Go's `time.UnixDate` in UTC: `Mon Jan  2 15:04:05 UTC 2006`.
pub fn unix_date(unix: i64) -> String {
    format_utc(
        unix,
        time::macros::format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] UTC [year]"
        ),
    )
}

/// `2006-01-02 15:04:05 UTC`.
pub fn utc_timestamp(unix: i64) -> String {
    format_utc(
        unix,
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"),
    )
}

/// `unix` (clamped to the years 0000–9999 Teleport can send) in UTC.
fn format_utc(unix: i64, format: &[time::format_description::BorrowedFormatItem<'_>]) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(if unix < 0 {
        time::macros::datetime!(0000-01-01 0:00 UTC)
    } else {
        time::macros::datetime!(9999-12-31 23:59:59 UTC)
    });
    t.format(format).unwrap_or_default()
}

/// Renders the message body for a request. `with_embeds = false` leaves
/// existing embeds alone on edit (upstream's EXPIRED edit).
pub fn render(view: &RequestView, with_embeds: bool) -> MessageBody {
    let status = view.status.0;
    let content = render_content(view);
    let embeds = with_embeds.then(|| render_embeds(&view.reviews));
    let mut buttons = Vec::new();
    if shows_review_buttons(view) {
        for (verdict, label, style) in [
            (Verdict::Approve, "Approve", STYLE_SUCCESS),
            (Verdict::Deny, "Deny", STYLE_DANGER),
        ] {
            let action = ButtonAction {
                verdict,
                request_id: view.id.trim().to_owned(),
            };
            // An ID our own parser would refuse gets no buttons.
            if ButtonAction::parse(&action.custom_id()).as_ref() == Some(&action) {
                buttons.push(Button {
                    kind: 2,
                    style,
                    label: label.to_owned(),
                    url: None,
                    custom_id: Some(action.custom_id()),
                });
            }
        }
    }
    if let Some(base) = &view.web_proxy_url {
        let url = format!(
            "{}/web/requests/{}",
            base.trim_end_matches('/'),
            path_escape(&view.id)
        );
        // Discord refuses a link button whose URL is not http(s).
        let web = url.starts_with("https://") || url.starts_with("http://");
        if web && url.len() <= BUTTON_URL_LIMIT && status == Status::Pending {
            buttons.push(Button {
                kind: 2,
                style: STYLE_LINK,
                label: "Review request".to_owned(),
                url: Some(url),
                custom_id: None,
            });
        }
    }
    let components = if buttons.is_empty() {
        Vec::new()
    } else {
        vec![ActionRow {
            kind: 1,
            components: buttons,
        }]
    };
    MessageBody {
        content,
        embeds,
        components,
        allowed_mentions: AllowedMentions::default(),
    }
}

/// Percent-escapes `s` for one URL path segment (unreserved characters kept).
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Upstream's 2026 title: "You have a new Role Request:" or "… Resource
/// Request:" (when resources are requested), with " (long-term access)"
/// before the colon for a long-term request.
fn title(view: &RequestView) -> String {
    let what = if sorted(&view.resources).is_empty() {
        "Role"
    } else {
        "Resource"
    };
    let term = if view.long_term {
        " (long-term access)"
    } else {
        ""
    };
    format!("You have a new {what} Request{term}:\n")
}

fn render_content(view: &RequestView) -> String {
    let status = view.status.0;
    // Head: identification. Body: the parts that can grow. Tail: status and
    // resolution, which must always be shown.
    let mut head = title(view);
    let _ = writeln!(head, "*ID*: {}", escape_markdown(cut(view.id.trim(), 64)));
    let _ = writeln!(
        head,
        "*Cluster*: {}",
        escape_markdown(cut(view.cluster.trim(), 128))
    );
    if !view.user.trim().is_empty() {
        let _ = writeln!(
            head,
            "*User*: {}",
            truncate_marked(&escape_markdown(view.user.trim()), 256, "…")
        );
    }

    let mut body = String::new();
    let roles = sorted(&view.roles);
    let mut roles_line = String::new();
    if !roles.is_empty() {
        let _ = writeln!(
            roles_line,
            "*Role(s)*: {}",
            inline_code(&roles.join(","), VALUE_LIMIT)
        );
    }
    let mut logins_lines = String::new();
    if !view.logins_by_role.is_empty() {
        for (role, logins) in &view.logins_by_role {
            let logins = sorted(logins);
            let logins = if logins.is_empty() {
                "-".to_owned()
            } else {
                logins.join(", ")
            };
            let _ = writeln!(
                logins_lines,
                "*Role*: {} *Login(s)*: {}",
                inline_code(role, VALUE_LIMIT),
                inline_code(&logins, VALUE_LIMIT)
            );
        }
    }
    let resources = sorted(&view.resources);
    if !resources.is_empty() {
        let _ = writeln!(
            body,
            "*Resource(s)*: {}",
            inline_code(&resources.join(","), VALUE_LIMIT)
        );
    }
    let reason_line = if view.reason.trim().is_empty() {
        String::new()
    } else {
        format!("*Reason*: {}\n", code_block(&view.reason, VALUE_LIMIT))
    };
    let mut times = String::new();
    if let Some(t) = view.request_expires_unix {
        let _ = writeln!(times, "*Request Expires (UTC)*: {}", utc_timestamp(t));
    }
    if let Some(t) = view.access_expires_unix {
        let _ = writeln!(times, "*Access Expires (UTC)*: {}", utc_timestamp(t));
    }
    let mut review_line = String::new();
    if status == Status::Pending
        && let Some(n) = view.needed
    {
        let _ = writeln!(
            review_line,
            "*Reviews*: {} more approval(s) or {} more denial(s) needed",
            n.approvals, n.denials
        );
    }
    let mut link = String::new();
    match &view.web_proxy_url {
        Some(base) => {
            let _ = writeln!(
                link,
                "*Link*: {}/web/requests/{}",
                base.trim_end_matches('/'),
                path_escape(&view.id)
            );
        }
        None if status == Status::Pending => {
            let id = path_escape(&view.id);
            let _ = writeln!(link, "*Approve*: `tsh request review --approve {id}`");
            let _ = writeln!(link, "*Deny*: `tsh request review --deny {id}`");
        }
        None => {}
    }

    let mut tail = format!("*Status*: {}", status.line());
    if !view.resolve_reason.trim().is_empty() && status != Status::Pending {
        let _ = write!(
            tail,
            "\n*Resolution reason*: {}",
            code_block(&view.resolve_reason, VALUE_LIMIT)
        );
    }

    // Assemble, dropping the least important parts first if too long.
    let roles_part = if logins_lines.is_empty() {
        roles_line.clone()
    } else {
        logins_lines.clone()
    };
    let full = format!("{head}{roles_part}{body}{reason_line}{times}{review_line}{link}{tail}");
    if discord_len(&full) <= CONTENT_LIMIT {
        return full;
    }
    // 1. Per-role logins collapse to the roles line.
    let omitted = if logins_lines.is_empty() {
        ""
    } else {
        "*Login(s)*: (omitted: too long for one message)\n"
    };
    let shorter =
        format!("{head}{roles_line}{omitted}{body}{reason_line}{times}{review_line}{link}{tail}");
    if discord_len(&shorter) <= CONTENT_LIMIT {
        return shorter;
    }
    // 2. Cut the middle, keep head and tail.
    let middle = format!("{roles_line}{omitted}{body}{reason_line}{times}{review_line}{link}");
    let marker = "… (message truncated)\n";
    let room =
        CONTENT_LIMIT.saturating_sub(discord_len(&head) + discord_len(&tail) + discord_len(marker));
    let mut kept = cut(&middle, room).to_owned();
    // Do not leave an unclosed code span or block behind.
    if let Some(nl) = kept.rfind('\n') {
        kept.truncate(nl + 1);
    } else {
        kept.clear();
    }
    let out = format!("{head}{kept}{marker}{tail}");
    if discord_len(&out) <= CONTENT_LIMIT {
        out
    } else {
        // Head and tail alone too long (pathological): hard cut with a marker.
        truncate_marked(&out, CONTENT_LIMIT, "… (truncated)")
    }
}

fn review_embed(r: &ReviewView, reason_limit: usize) -> Embed {
    let verb = if r.approved { "Approved" } else { "Denied" };
    let mut description = match r.via.as_deref().map(str::trim) {
        Some("Discord") => "Reviewed from Discord.".to_owned(),
        Some(v) if !v.is_empty() => format!("Submitted by {}.", escape_markdown(cut(v, 128))),
        _ => String::new(),
    };
    if !r.reason.trim().is_empty() {
        if !description.is_empty() {
            description.push('\n');
        }
        let _ = write!(
            description,
            "Reason: {}",
            code_block(&r.reason, reason_limit)
        );
    }
    Embed {
        title: cut(
            &format!("{verb} request at {}", unix_date(r.created_unix)),
            EMBED_TITLE_LIMIT,
        )
        .to_owned(),
        description: truncate_marked(&description, EMBED_DESCRIPTION_LIMIT, "…"),
        color: if r.approved {
            APPROVED_COLOR
        } else {
            DENIED_COLOR
        },
        author: EmbedAuthor {
            // Trimmed again after sanitising: removing a zero-width or
            // control character can leave whitespace at either end, which
            // counts toward Discord's embed total.
            name: truncate_marked(sanitize(r.author.trim()).trim(), EMBED_AUTHOR_LIMIT, "…")
                .trim()
                .to_owned(),
        },
    }
}

/// Sum of the embed text Discord counts (trimmed).
pub fn embed_total(embeds: &[Embed]) -> usize {
    embeds
        .iter()
        .map(|e| {
            discord_len(e.title.trim())
                + discord_len(e.description.trim())
                + discord_len(e.author.name.trim())
        })
        .sum()
}

fn render_embeds(reviews: &[ReviewView]) -> Vec<Embed> {
    let (older, shown) = if reviews.len() > EMBEDS_LIMIT {
        reviews.split_at(reviews.len() - MAX_REVIEW_EMBEDS)
    } else {
        (&reviews[..0], reviews)
    };
    let summary = (!older.is_empty()).then(|| {
        let approvals = older.iter().filter(|r| r.approved).count();
        Embed {
            title: format!("{} earlier review(s) not shown", older.len()),
            description: format!("{approvals} approved, {} denied", older.len() - approvals),
            color: SUMMARY_COLOR,
            author: EmbedAuthor {
                name: "Teleport".to_owned(),
            },
        }
    });
    // Shrink review reasons until the total fits.
    let mut limit = VALUE_LIMIT;
    loop {
        let mut embeds: Vec<Embed> = summary.iter().cloned().collect();
        embeds.extend(shown.iter().map(|r| review_embed(r, limit)));
        if embed_total(&embeds) <= EMBED_TOTAL_LIMIT || limit == 0 {
            return embeds;
        }
        limit = limit.saturating_sub(50);
    }
}

#[cfg(test)]
mod tests;
