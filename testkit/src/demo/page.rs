//! The demo page: a server-rendered view of the emulated Discord channels
//! (messages, review embeds with their colour bar, buttons, edit history)
//! and of the direct messages the bot sent the demo's users (one section
//! per user: "Direct messages — alice"), that refreshes itself. Everything
//! from a message is HTML-escaped; Discord's markdown is rendered only as
//! far as the service uses it (code blocks, inline code, `**bold**`,
//! `*italics*`, backslash escapes, `<t:…>` timestamps, shown in UTC).
//!
//! The interactive buttons (Approve / Deny) work as in a Discord client, as
//! the demo's reviewer: a click is `POST /demo/click`, which has the Discord
//! emulator deliver the signed interaction to the service; a modal the
//! service answers with is shown as a form, whose submit is
//! `POST /demo/submit`; the answer only the clicker sees (ephemeral) is shown
//! beside the channels, and a deferred one is polled with
//! `GET /demo/interactions/{id}` until the service has edited it.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page |
//! | `POST /demo/click` `{"channel","message","custom_id"}` | the reviewer clicks a button → [`InteractionView`] |
//! | `POST /demo/submit` `{"interaction","values":{custom_id: text}}` | the reviewer submits the modal that interaction opened → [`InteractionView`] |
//! | `GET /demo/interactions/{id}` | an interaction as it stands → [`InteractionView`] |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Reviewer;
use super::transcript::{Snapshot, summarize_parts, timestamps};
use crate::discord::validate::{EPHEMERAL, LOADING};
use crate::discord::{
    DISCORD_EPOCH_MS, DiscordEmulator, FailReason, InteractionError, InteractionRecord,
    InteractionState, StoredMessage,
};

/// What the page says about its surroundings.
#[derive(Debug, Clone)]
pub(crate) struct PageInfo {
    /// The service's base URL.
    pub(crate) service: String,
    /// The bot's name.
    pub(crate) bot_name: String,
    /// Who clicks on this page.
    pub(crate) reviewer: Reviewer,
}

#[derive(Clone)]
struct PageState {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    info: Arc<PageInfo>,
    discord: Arc<DiscordEmulator>,
}

/// `GET /` and the `/demo/` routes of the buttons.
pub(crate) fn router(
    snapshots: watch::Receiver<Arc<Snapshot>>,
    info: PageInfo,
    discord: Arc<DiscordEmulator>,
) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/demo/click", post(click))
        .route("/demo/submit", post(submit))
        .route("/demo/interactions/{id}", get(interaction))
        .with_state(PageState {
            snapshots,
            info: Arc::new(info),
            discord,
        })
}

/// `POST /demo/click`.
#[derive(Debug, Deserialize)]
struct ClickBody {
    channel: String,
    message: String,
    custom_id: String,
}

/// `POST /demo/submit`.
#[derive(Debug, Deserialize)]
struct SubmitBody {
    interaction: String,
    #[serde(default)]
    values: BTreeMap<String, String>,
}

/// An interaction as the clicker sees it: what the page (and the story)
/// needs of an [`InteractionRecord`].
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InteractionView {
    /// Its ID.
    pub(crate) interaction: String,
    /// `pending`, `acknowledged` or `failed`.
    pub(crate) state: &'static str,
    /// Why it failed, in words (Discord's client says "This interaction failed").
    pub(crate) failure: Option<String>,
    /// The accepted answer's callback type (4 message, 5 deferred, 9 modal, …).
    pub(crate) callback_type: Option<u64>,
    /// The modal the answer opened, while not submitted.
    pub(crate) modal: Option<Value>,
    /// The answer message's text (markdown as sent).
    pub(crate) answer: Option<String>,
    /// The answer message, rendered (content and embeds, escaped).
    pub(crate) answer_html: Option<String>,
    /// Whether only the clicker sees the answer.
    pub(crate) ephemeral: bool,
    /// A deferred answer ("… is thinking") the service has not edited yet.
    pub(crate) loading: bool,
    /// Time from the delivery to the service's first answer, in ms.
    pub(crate) answered_after_ms: Option<u128>,
}

impl InteractionView {
    /// Whether a deferred answer is still to come.
    pub(crate) fn waiting(&self) -> bool {
        self.state == "pending" || self.loading
    }
}

fn failure_text(why: &FailReason, r: &InteractionRecord) -> String {
    let refused: Vec<String> = r
        .refused()
        .filter_map(|a| a.error.as_ref().map(Value::to_string))
        .collect();
    let mut text = match why {
        FailReason::NoAnswer => "the service gave no valid answer within 3 s".to_owned(),
        FailReason::EndpointStatus(status) => format!(
            "the service answered the delivery with HTTP {status}: {}",
            r.endpoint_body.as_deref().unwrap_or_default()
        ),
        FailReason::InvalidAnswer => "the service's answer was invalid".to_owned(),
        FailReason::Unreachable(e) => format!("the service could not be reached: {e}"),
    };
    if !refused.is_empty() {
        let _ = write!(text, " (refused answers: {})", refused.join("; "));
    }
    text
}

/// The interaction's original response message, wherever the emulator keeps it.
fn original_message(discord: &DiscordEmulator, r: &InteractionRecord) -> Option<StoredMessage> {
    let id = r.original_message_id.as_deref()?;
    r.ephemeral_messages
        .iter()
        .find(|m| m.id == id)
        .cloned()
        .or_else(|| {
            let channel = r.channel_id.as_deref()?;
            discord.messages(channel).into_iter().find(|m| m.id == id)
        })
}

/// [`InteractionView`] of `r`.
pub(crate) fn interaction_view(
    discord: &DiscordEmulator,
    r: &InteractionRecord,
) -> InteractionView {
    let answer = r.response();
    let callback_type = answer.and_then(|a| a.callback_type);
    let (state, failure) = match &r.state {
        InteractionState::Pending => ("pending", None),
        InteractionState::Acknowledged => ("acknowledged", None),
        InteractionState::Failed(why) => ("failed", Some(failure_text(why, r))),
    };
    let modal = r
        .modal
        .clone()
        .filter(|_| callback_type == Some(9) && !r.modal_submitted);
    let mut view = InteractionView {
        interaction: r.id.clone(),
        state,
        failure,
        callback_type,
        modal,
        answer: None,
        answer_html: None,
        ephemeral: false,
        loading: false,
        answered_after_ms: answer.map(|a| a.after.as_millis()),
    };
    if matches!(callback_type, Some(4 | 5)) {
        if let Some(m) = original_message(discord, r) {
            let mut html = markdown(&m.content);
            embeds_html(&m.embeds, &mut html);
            view.answer = Some(m.content);
            view.answer_html = Some(html);
            view.ephemeral = m.flags & EPHEMERAL != 0;
            view.loading = m.flags & LOADING != 0;
        } else if let Some(a) = answer {
            let content = a.data["content"].as_str().unwrap_or_default().to_owned();
            view.answer_html = Some(markdown(&content));
            view.answer = Some(content);
            view.ephemeral = a.is_ephemeral();
            view.loading = callback_type == Some(5);
        }
    }
    view
}

fn refused(e: &InteractionError) -> Response {
    let status = match e {
        InteractionError::NoEndpoint | InteractionError::Http(_) => StatusCode::SERVICE_UNAVAILABLE,
        InteractionError::UnknownChannel(_)
        | InteractionError::UnknownMessage(_)
        | InteractionError::UnknownUser(_)
        | InteractionError::UnknownInteraction(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    };
    (status, Json(json!({ "error": e.to_string() }))).into_response()
}

fn answered(discord: &DiscordEmulator, r: &InteractionRecord) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(interaction_view(discord, r)),
    )
        .into_response()
}

/// The reviewer clicks a button of a stored message.
async fn click(State(s): State<PageState>, Json(b): Json<ClickBody>) -> Response {
    let who = &s.info.reviewer.discord_id;
    match s
        .discord
        .click(&b.channel, &b.message, &b.custom_id, who)
        .await
    {
        Ok(reply) => answered(&s.discord, &reply.interaction),
        Err(e) => refused(&e),
    }
}

/// The reviewer submits the modal an interaction opened.
async fn submit(State(s): State<PageState>, Json(b): Json<SubmitBody>) -> Response {
    let values: Vec<(&str, &str)> = b
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match s.discord.submit_modal(&b.interaction, &values).await {
        Ok(reply) => answered(&s.discord, &reply.interaction),
        Err(e) => refused(&e),
    }
}

/// An interaction as it stands (a deferred answer's follow-up edit).
async fn interaction(State(s): State<PageState>, Path(id): Path<String>) -> Response {
    match s.discord.interaction(&id) {
        Some(r) => answered(&s.discord, &r),
        None => refused(&InteractionError::UnknownInteraction(id)),
    }
}

async fn index(State(s): State<PageState>) -> impl IntoResponse {
    let snapshot = s.snapshots.borrow().clone();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render(&snapshot, &s.info),
    )
}

/// HTML-escapes text for element content and quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Inline Discord markdown (no code blocks): `code`, **bold**, *italics*,
/// `\x` escapes, `<t:…>` timestamps.
fn inline_markdown(s: &str) -> String {
    let s = timestamps(s);
    let mut out = String::new();
    let (mut code, mut em, mut strong) = (false, false, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(if strong { "</strong>" } else { "<strong>" });
                strong = !strong;
            }
            '\\' if !code && chars.peek().is_some_and(|n| !n.is_alphanumeric()) => {
                if let Some(n) = chars.next() {
                    out.push_str(&escape(&n.to_string()));
                }
            }
            '`' => {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            '*' if !code => {
                out.push_str(if em { "</em>" } else { "<em>" });
                em = !em;
            }
            '\n' => out.push_str("<br>"),
            c => out.push_str(&escape(&c.to_string())),
        }
    }
    if code {
        out.push_str("</code>");
    }
    if em {
        out.push_str("</em>");
    }
    if strong {
        out.push_str("</strong>");
    }
    out
}

/// Discord markdown as the service writes it: code blocks, then inline.
pub(crate) fn markdown(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split("```").enumerate() {
        if i % 2 == 1 {
            let code = part.strip_prefix('\n').unwrap_or(part);
            let _ = write!(out, "<pre><code>{}</code></pre>", escape(code));
        } else {
            let part = part.strip_prefix('\n').filter(|_| i > 0).unwrap_or(part);
            out.push_str(&inline_markdown(part));
        }
    }
    out
}

fn time_of(snowflake: &str) -> String {
    let ms = snowflake
        .parse::<u64>()
        .map_or(0, |id| (id >> 22) + DISCORD_EPOCH_MS);
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(ms / 1000).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (h, m, s) = (t.hour(), t.minute(), t.second());
    format!("{h:02}:{m:02}:{s:02}")
}

fn embeds_html(embeds: &Value, out: &mut String) {
    for e in embeds.as_array().into_iter().flatten() {
        let color = e["color"].as_u64().unwrap_or(0x4e5058) & 0xff_ffff;
        let _ = write!(
            out,
            "<div class=\"embed\" style=\"border-left-color:#{color:06x}\">"
        );
        if let Some(a) = e["author"]["name"].as_str() {
            let _ = write!(out, "<div class=\"embed-author\">{}</div>", escape(a));
        }
        if let Some(t) = e["title"].as_str() {
            let _ = write!(out, "<div class=\"embed-title\">{}</div>", escape(t));
        }
        if let Some(d) = e["description"].as_str().filter(|d| !d.is_empty()) {
            let _ = write!(out, "<div class=\"embed-desc\">{}</div>", markdown(d));
        }
        out.push_str("</div>");
    }
}

fn buttons_html(channel: &str, message: &str, components: &Value, out: &mut String) {
    let buttons: Vec<&Value> = components
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["components"].as_array())
        .flatten()
        .collect();
    if buttons.is_empty() {
        return;
    }
    out.push_str("<div class=\"buttons\">");
    for b in buttons {
        let label = escape(b["label"].as_str().unwrap_or_default());
        match b["url"].as_str() {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                let _ = write!(
                    out,
                    "<a class=\"button\" href=\"{}\" rel=\"noopener noreferrer\" target=\"_blank\">{label} ↗</a>",
                    escape(url)
                );
            }
            _ => match b["custom_id"].as_str() {
                // Interactive (primary, secondary, success, danger): clickable.
                Some(custom_id) if matches!(b["style"].as_u64(), Some(1..=4)) => {
                    let class = match b["style"].as_u64() {
                        Some(1) => "primary",
                        Some(3) => "success",
                        Some(4) => "danger",
                        _ => "secondary",
                    };
                    let disabled = if b["disabled"].as_bool() == Some(true) {
                        " disabled"
                    } else {
                        ""
                    };
                    let _ = write!(
                        out,
                        "<button type=\"button\" class=\"button {class}\" data-channel-id=\"{}\" data-message-id=\"{}\" data-custom-id=\"{}\"{disabled}>{label}</button>",
                        escape(channel),
                        escape(message),
                        escape(custom_id),
                    );
                }
                _ => {
                    let _ = write!(out, "<span class=\"button\">{label}</span>");
                }
            },
        }
    }
    out.push_str("</div>");
}

fn history_html(m: &StoredMessage, out: &mut String) {
    let n = m.history.len();
    let label = if n == 1 {
        "created, never edited".to_owned()
    } else {
        format!("edit history: created, then {} edit(s)", n - 1)
    };
    let _ = write!(
        out,
        "<details class=\"history\" id=\"h-{}\"><summary>{label}</summary><ol>",
        escape(&m.id)
    );
    for (i, body) in m.history.iter().enumerate() {
        let what = if i == 0 { "created" } else { "edited" };
        let content = body["content"].as_str();
        let s = summarize_parts(
            content.unwrap_or_default(),
            &body["embeds"],
            &body["components"],
        );
        let mut parts = Vec::new();
        match content {
            Some(_) => parts.push(format!("status {}", escape(&s.status))),
            None => parts.push("content unchanged".to_owned()),
        }
        match body.get("embeds") {
            Some(Value::Array(a)) => {
                let reviews: Vec<String> = s
                    .reviews
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}",
                            escape(&r.author),
                            if r.approved { "approved" } else { "denied" }
                        )
                    })
                    .collect();
                if a.is_empty() {
                    parts.push("no embeds".to_owned());
                } else {
                    parts.push(format!("{} embed(s): {}", a.len(), reviews.join(", ")));
                }
            }
            _ => parts.push("embeds kept".to_owned()),
        }
        if body.get("components").is_some() {
            parts.push(if s.buttons.is_empty() {
                "no buttons".to_owned()
            } else {
                format!("buttons: {}", escape(&s.buttons.join(", ")))
            });
        }
        let _ = write!(out, "<li><b>{what}</b>: {}", parts.join(" · "));
        if let Some(c) = content {
            let _ = write!(
                out,
                "<details><summary>content</summary><pre>{}</pre></details>",
                escape(c)
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ol></details>");
}

/// Marks the status in rendered content, so it reads at a glance (and
/// without an emoji font).
fn status_pill(html: &str) -> String {
    const STATES: [(&str, &str); 4] = [
        ("⏳ PENDING", "pending"),
        ("✅ APPROVED", "approved"),
        ("❌ DENIED", "denied"),
        ("⌛ EXPIRED", "expired"),
    ];
    let marker = "<em>Status</em>: ";
    let Some(at) = html.find(marker) else {
        return html.to_owned();
    };
    let rest = &html[at + marker.len()..];
    for (text, class) in STATES {
        if let Some(after) = rest.strip_prefix(text) {
            return format!(
                "{}{marker}<span class=\"status {class}\">{text}</span>{after}",
                &html[..at],
            );
        }
    }
    html.to_owned()
}

/// One message; a DM (`dm`) shows its edit history only once edited.
fn message_html(m: &StoredMessage, bot: &str, dm: bool, out: &mut String) {
    let edited = if m.history.len() > 1 {
        "<span class=\"edited\">(edited)</span>"
    } else {
        ""
    };
    let _ = write!(
        out,
        "<article class=\"msg\" id=\"m-{id}\"><div class=\"avatar\">T</div><div class=\"body\">\
         <div class=\"meta\"><span class=\"author\">{bot}</span><span class=\"tag\">BOT</span>\
         <span class=\"ts\">{ts} UTC</span>{edited}</div><div class=\"content\">{content}</div>",
        id = escape(&m.id),
        bot = escape(bot),
        ts = time_of(&m.id),
        content = status_pill(&markdown(&m.content)),
    );
    embeds_html(&m.embeds, out);
    buttons_html(&m.channel_id, &m.id, &m.components, out);
    if !dm || m.history.len() > 1 {
        history_html(m, out);
    }
    out.push_str("</div></article>");
}

/// The whole page.
pub(crate) fn render(snapshot: &Snapshot, info: &PageInfo) -> String {
    let mut channels = String::new();
    for ch in &snapshot.channels {
        let _ = write!(
            channels,
            "<section class=\"channel\" data-channel=\"{}\"><h2><span class=\"hash\">#</span>{} <small>{} message(s) · id {}</small></h2>",
            escape(&ch.name),
            escape(&ch.name),
            ch.messages.len(),
            escape(&ch.id),
        );
        if ch.messages.is_empty() {
            channels.push_str("<p class=\"empty\">No messages yet.</p>");
        }
        for m in &ch.messages {
            message_html(m, &info.bot_name, false, &mut channels);
        }
        channels.push_str("</section>");
    }
    for dm in &snapshot.dms {
        let u = &dm.user;
        let _ = write!(
            channels,
            "<section class=\"channel dm\" data-dm=\"{name}\"><h2><span class=\"hash\">@</span>Direct messages — {name} \
             <small>{n} message(s) · Discord user id {id} · Teleport user {teleport} ({how}) · {channel}</small></h2>",
            name = escape(&u.name),
            n = dm.messages.len(),
            channel = dm.channel.as_deref().map_or_else(
                || "no DM channel yet".to_owned(),
                |c| format!("DM channel id {}", escape(c))
            ),
            id = escape(&u.discord_id),
            teleport = escape(&u.teleport_user),
            how = escape(&u.mapped_by),
        );
        if dm.messages.is_empty() {
            channels.push_str("<p class=\"empty\">No direct messages yet.</p>");
        }
        for m in &dm.messages {
            message_html(m, &info.bot_name, true, &mut channels);
        }
        channels.push_str("</section>");
    }
    let service = escape(&info.service);
    let me = escape(&info.reviewer.name);
    let me_id = escape(&info.reviewer.discord_id);
    let me_teleport = escape(&info.reviewer.teleport_user);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>teleport-discord demo: emulated Discord</title>
<link rel="icon" href="data:,">
<noscript><meta http-equiv="refresh" content="3"></noscript>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>teleport-discord demo <small>emulated Discord · you are <b id="me" data-user-id="{me_id}">{me}</b></small></h1>
<p>Role <code>dev</code> → #dev and #ops; any other role → #fallback. The service: <a href="{service}/readyz">/readyz</a> · <a href="{service}/metrics">/metrics</a>. Requests: <a href="/teleport/requests">/teleport/requests</a>. This page refreshes itself.</p>
<p>Direct messages: the service DMs requesters when their requests are approved, denied or expire (<code>[notify] requester</code>), and access list owners when a review is due (<code>[access_list]</code>); each demo user's DMs are below the channels.</p>
<p>Approve / Deny click as Discord user <b>{me}</b> (id <code>{me_id}</code>), whom the service maps to Teleport user <b>{me_teleport}</b> (<code>[review.users]</code>): the click goes, signed, to the service's <code>/discord/interactions</code>, as from Discord.</p>
</header>
<main id="channels">{channels}</main>
<aside id="answers" aria-live="polite"></aside>
<dialog id="modal"><form id="modal-form" method="dialog"><h3 id="modal-title"></h3><div id="modal-fields"></div><p class="modal-error" id="modal-error"></p><div class="modal-actions"><button type="button" class="button secondary" id="modal-cancel">Cancel</button><button type="submit" class="button primary" id="modal-submit">Submit</button></div></form></dialog>
<script>{SCRIPT}</script>
</body>
</html>
"#
    )
}

const STYLE: &str = "
body{margin:0;background:#313338;color:#dbdee1;font:15px/1.375 'gg sans','Noto Sans','Helvetica Neue',Helvetica,Arial,sans-serif}
header{padding:12px 20px;background:#2b2d31;border-bottom:1px solid #1f2023}
header h1{margin:0;font-size:18px;color:#f2f3f5}header h1 small{color:#949ba4;font-weight:400;font-size:13px}header h1 small b{color:#f2f3f5}
header p{margin:4px 0 0;color:#b5bac1;font-size:13px}a{color:#00a8fc}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:1px;background:#1f2023}
.channel{background:#313338;padding:0 0 16px;min-width:0}
.channel h2{margin:0;padding:10px 16px;font-size:16px;color:#f2f3f5;border-bottom:1px solid #26272b;position:sticky;top:0;background:#313338}
.channel h2 small{color:#949ba4;font-weight:400;font-size:12px}.hash{color:#80848e;margin-right:4px}
.empty{color:#949ba4;padding:0 16px}
.dm h2 .hash{color:#23a55a}strong{color:#f2f3f5}
.msg{display:flex;gap:12px;padding:8px 16px}.msg:hover{background:#2e3035}
.avatar{flex:none;width:40px;height:40px;border-radius:50%;background:#5865f2;color:#fff;display:flex;align-items:center;justify-content:center;font-weight:700}
.body{min-width:0;flex:1}.meta{display:flex;gap:6px;align-items:baseline}
.author{color:#f2f3f5;font-weight:600}.tag{background:#5865f2;color:#fff;font-size:10px;font-weight:700;padding:0 4px;border-radius:3px}
.ts,.edited{color:#949ba4;font-size:12px}
.content{white-space:normal;overflow-wrap:anywhere}
code{background:#2b2d31;border-radius:3px;padding:0 3px;font-size:13px;font-family:Consolas,'Andale Mono',monospace}
pre{background:#2b2d31;border:1px solid #1e1f22;border-radius:4px;padding:6px 8px;margin:2px 0;white-space:pre-wrap;overflow-wrap:anywhere}
pre code{padding:0;background:none}
.embed{background:#2b2d31;border-left:4px solid #4e5058;border-radius:4px;padding:8px 12px;margin-top:6px;max-width:520px}
.embed-author{font-size:13px;font-weight:600;color:#f2f3f5}.embed-title{font-weight:600;color:#f2f3f5;margin-top:2px}
.embed-desc{font-size:14px;margin-top:4px}
.buttons{margin-top:6px;display:flex;flex-wrap:wrap;gap:8px}
.button{display:inline-block;background:#4e5058;color:#fff;border:0;border-radius:3px;padding:4px 14px;font:inherit;font-size:14px;text-decoration:none}
button.button{cursor:pointer}button.button:disabled{opacity:.5;cursor:not-allowed}
.button.primary{background:#5865f2}.button.success{background:#248046}.button.danger{background:#da373c}
button.button:hover:not(:disabled){filter:brightness(1.15)}
.status{border-radius:10px;padding:0 8px;font-weight:600;font-size:13px}
.status.pending{background:#4e5058;color:#f2f3f5}.status.approved{background:#238823;color:#fff}
.status.denied{background:#d2222d;color:#fff}.status.expired{background:#80848e;color:#fff}
.history{margin-top:6px;font-size:12px;color:#949ba4}.history summary{cursor:pointer}
.history ol{margin:4px 0;padding-left:20px}.history pre{font-size:12px;color:#b5bac1}
#answers{position:fixed;right:16px;bottom:16px;width:min(420px,calc(100vw - 32px));display:flex;flex-direction:column;gap:8px;max-height:70vh;overflow:auto;z-index:5}
.answer{background:#2b2d31;border:1px solid #1e1f22;border-left:4px solid #5865f2;border-radius:6px;padding:8px 12px;box-shadow:0 4px 16px rgba(0,0,0,.4);font-size:14px}
.answer.failed{border-left-color:#da373c}.answer .who{font-size:12px;color:#949ba4;display:flex;justify-content:space-between;gap:8px}
.answer .who button{background:none;border:0;color:#00a8fc;cursor:pointer;font:inherit;padding:0}
.answer .text{margin-top:4px;overflow-wrap:anywhere}.answer .thinking{color:#949ba4;font-style:italic}
dialog{background:#313338;color:#dbdee1;border:0;border-radius:8px;padding:16px 20px;width:min(440px,calc(100vw - 48px));box-shadow:0 8px 32px rgba(0,0,0,.6)}
dialog::backdrop{background:rgba(0,0,0,.7)}dialog h3{margin:0 0 12px;color:#f2f3f5;font-size:18px}
.field{margin-bottom:12px}.field label{display:block;font-size:12px;font-weight:700;text-transform:uppercase;color:#b5bac1}
.field .desc{font-size:13px;color:#949ba4;margin:2px 0 4px}
.field input,.field textarea{box-sizing:border-box;width:100%;background:#1e1f22;color:#dbdee1;border:0;border-radius:3px;padding:8px;font:inherit;margin-top:4px}
.field textarea{min-height:80px;resize:vertical}.modal-error{color:#fa777c;font-size:13px;min-height:1em;margin:0 0 8px}
.modal-actions{display:flex;justify-content:flex-end;gap:8px}
";

const SCRIPT: &str = r#"
const open_ids = () => [...document.querySelectorAll('details[open][id]')].map(d => d.id);
async function refresh() {
  try {
    const r = await fetch(location.pathname, {cache: 'no-store'});
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    const open = open_ids();
    document.getElementById('channels').replaceWith(doc.getElementById('channels'));
    for (const id of open) { const d = document.getElementById(id); if (d) d.open = true; }
  } catch (e) {}
}
setInterval(refresh, 1500);

const me = document.getElementById('me').textContent;
const answers = document.getElementById('answers');
const modal = document.getElementById('modal');
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function call(method, url, body) {
  const r = await fetch(url, {
    method, cache: 'no-store',
    headers: body ? {'content-type': 'application/json'} : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let v = null;
  try { v = await r.json(); } catch (e) {}
  if (!r.ok) throw new Error((v && v.error) || ('HTTP ' + r.status));
  return v;
}

// One card per interaction: what only the clicker sees.
function card(title) {
  const c = document.createElement('div');
  c.className = 'answer';
  const who = document.createElement('div');
  who.className = 'who';
  const t = document.createElement('span');
  t.textContent = title;
  const x = document.createElement('button');
  x.type = 'button';
  x.textContent = 'Dismiss message';
  x.onclick = () => c.remove();
  who.append(t, x);
  const text = document.createElement('div');
  text.className = 'text';
  c.append(who, text);
  answers.append(c);
  return c;
}
function say(c, html, cls) {
  const text = c.querySelector('.text');
  if (cls === 'thinking') { text.innerHTML = ''; const i = document.createElement('span'); i.className = 'thinking'; i.textContent = html; text.append(i); }
  else if (cls === 'plain') { text.textContent = html; }
  else { text.innerHTML = html; } // rendered and escaped by the server
}

// Shows where an interaction stands; polls while a deferred answer is due.
async function settle(c, v) {
  for (let i = 0; ; i++) {
    c.dataset.interaction = v.interaction;
    c.dataset.state = v.state;
    if (v.state === 'failed') {
      c.classList.add('failed');
      say(c, 'This interaction failed: ' + (v.failure || 'no answer'), 'plain');
      return;
    }
    if (v.modal) { openModal(c, v); return; }
    if (v.answer_html !== null && v.answer_html !== undefined && !v.loading) {
      c.querySelector('.who span').textContent = v.ephemeral ? 'Only you can see this' : 'Posted in the channel';
      c.dataset.answered = 'true';
      say(c, v.answer_html);
      refresh();
      return;
    }
    if (v.state === 'acknowledged' && !v.loading && v.callback_type !== 4 && v.callback_type !== 5) {
      c.dataset.answered = 'true';
      say(c, 'The bot acknowledged (callback type ' + v.callback_type + ').', 'plain');
      refresh();
      return;
    }
    if (i > 100) { say(c, 'No answer from the bot after 30 s.', 'plain'); return; }
    say(c, 'Teleport Bot is thinking…', 'thinking');
    await sleep(300);
    v = await call('GET', '/demo/interactions/' + encodeURIComponent(v.interaction));
  }
}

// A modal as Discord draws it: labels around text inputs.
function fields(components) {
  const out = [];
  for (const c of components || []) {
    if (c.type === 18 && c.component) out.push({label: c.label, desc: c.description, input: c.component});
    else if (c.type === 1) { for (const i of c.components || []) { if (i.type === 4) out.push({label: i.label, input: i}); } }
    else if (c.type === 4) out.push({label: c.label, input: c});
    else if (c.type === 10) out.push({text: c.content});
  }
  return out;
}

function openModal(c, v) {
  const m = v.modal;
  say(c, 'The bot opened a form: ' + (m.title || ''), 'thinking');
  document.getElementById('modal-title').textContent = m.title || '';
  const box = document.getElementById('modal-fields');
  box.replaceChildren();
  document.getElementById('modal-error').textContent = '';
  for (const f of fields(m.components)) {
    const d = document.createElement('div');
    d.className = 'field';
    if (f.text !== undefined) { d.textContent = f.text; box.append(d); continue; }
    const i = f.input;
    const id = 'in-' + i.custom_id;
    const l = document.createElement('label');
    l.htmlFor = id;
    l.textContent = (f.label || i.custom_id) + (i.required === false ? '' : ' *');
    d.append(l);
    if (f.desc) { const p = document.createElement('div'); p.className = 'desc'; p.textContent = f.desc; d.append(p); }
    const e = document.createElement(i.style === 2 ? 'textarea' : 'input');
    e.id = id;
    e.name = i.custom_id;
    if (i.required !== false) e.required = true;
    if (i.min_length) e.minLength = i.min_length;
    if (i.max_length) e.maxLength = i.max_length;
    if (i.placeholder) e.placeholder = i.placeholder;
    if (i.value) e.value = i.value;
    d.append(e);
    box.append(d);
  }
  const form = document.getElementById('modal-form');
  const cancel = document.getElementById('modal-cancel');
  const close = () => { form.onsubmit = null; cancel.onclick = null; modal.close(); };
  cancel.onclick = () => { close(); say(c, 'You closed the form; nothing was sent.', 'plain'); };
  form.onsubmit = async ev => {
    ev.preventDefault();
    const values = {};
    for (const e of box.querySelectorAll('input,textarea')) values[e.name] = e.value;
    const b = document.getElementById('modal-submit');
    b.disabled = true;
    try {
      const r = await call('POST', '/demo/submit', {interaction: v.interaction, values});
      close();
      await settle(c, r);
    } catch (e) {
      document.getElementById('modal-error').textContent = e.message;
    } finally { b.disabled = false; }
  };
  modal.showModal();
  const first = box.querySelector('input,textarea');
  if (first) first.focus();
}

document.addEventListener('click', async ev => {
  const b = ev.target.closest('button[data-custom-id]');
  if (!b || b.disabled) return;
  const c = card(me + ' clicked ' + b.textContent);
  say(c, 'Sending the click to the bot…', 'thinking');
  b.disabled = true;
  try {
    const v = await call('POST', '/demo/click', {channel: b.dataset.channelId, message: b.dataset.messageId, custom_id: b.dataset.customId});
    await settle(c, v);
  } catch (e) {
    c.classList.add('failed');
    say(c, e.message, 'plain');
  } finally { b.disabled = false; }
});
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_and_renders_the_markdown_in_use() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let html = markdown("*User*: a\\_b <script>\n*Reason*: ```\n<b>hi</b>```\n*Status*: ok");
        assert_eq!(
            html,
            "<em>User</em>: a_b &lt;script&gt;<br><em>Reason</em>: <pre><code>&lt;b&gt;hi&lt;/b&gt;</code></pre><em>Status</em>: ok"
        );
        assert!(!markdown("`<img src=x>`").contains("<img"));
        assert_eq!(
            markdown(
                "🔔 **Access list review reminder**\nAccess List **A\\*B** by <t:0:D>, *Link*: x"
            ),
            "🔔 <strong>Access list review reminder</strong><br>Access List <strong>A*B</strong> by 1970-01-01, <em>Link</em>: x"
        );
        assert_eq!(markdown("<t:nope>"), "&lt;t:nope&gt;");
    }

    #[test]
    fn the_status_is_marked() {
        let html = status_pill(&markdown(
            "*ID*: x\n*Status*: ✅ APPROVED\n*Resolution reason*: ok",
        ));
        assert!(
            html.contains(
                "<em>Status</em>: <span class=\"status approved\">✅ APPROVED</span><br>"
            ),
            "{html}"
        );
        assert_eq!(status_pill("no status"), "no status");
    }

    #[test]
    fn button_urls_must_be_http() {
        let mut out = String::new();
        buttons_html(
            "1",
            "2",
            &serde_json::json!([{"type":1,"components":[{"type":2,"style":5,"label":"x","url":"javascript:alert(1)"}]}]),
            &mut out,
        );
        assert!(!out.contains("href"), "{out}");
    }

    #[test]
    fn interactive_buttons_are_clickable_and_escaped() {
        let mut out = String::new();
        buttons_html(
            "11",
            "22",
            &serde_json::json!([{"type":1,"components":[
                {"type":2,"style":3,"label":"Approve","custom_id":"review:v1:approve:a\"b"},
                {"type":2,"style":4,"label":"<Deny>","custom_id":"review:v1:deny:x","disabled":true},
                {"type":2,"style":5,"label":"Review request","url":"https://t.example.com/web/requests/x"}
            ]}]),
            &mut out,
        );
        assert!(
            out.contains("<button type=\"button\" class=\"button success\" data-channel-id=\"11\" data-message-id=\"22\" data-custom-id=\"review:v1:approve:a&quot;b\">Approve</button>"),
            "{out}"
        );
        assert!(
            out.contains("class=\"button danger\"")
                && out.contains(" disabled>&lt;Deny&gt;</button>"),
            "{out}"
        );
        assert!(
            out.contains("href=\"https://t.example.com/web/requests/x\""),
            "{out}"
        );
    }

    /// A deferred answer (type 5) shows as loading until the service edits
    /// `@original`, then as the edited text.
    #[tokio::test]
    async fn a_deferred_answer_is_loading_until_edited() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emu = Arc::new(
            DiscordEmulator::start(crate::discord::EmulatorConfig::default())
                .await
                .expect("emulator"),
        );
        let user = emu.add_user("carol");
        let channel = emu.add_channel("dev");
        let client = reqwest::Client::new();
        let posted: Value = client
            .post(format!("{}/channels/{channel}/messages", emu.api_url()))
            .header("authorization", format!("Bot {}", emu.token()))
            .json(&json!({"content": "x", "components": [{"type": 1, "components": [
                {"type": 2, "style": 3, "label": "Approve", "custom_id": "review:v1:approve:1"}]}]}))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        let message = posted["id"].as_str().expect("id").to_owned();

        // The service: defers (ephemeral), then edits @original 200 ms later.
        let api = emu.api_url();
        let app_id = emu.application_id();
        let app = Router::new().route(
            "/i",
            post(move |Json(v): Json<Value>| {
                let url = format!(
                    "{api}/webhooks/{app_id}/{}/messages/@original",
                    v["token"].as_str().unwrap_or_default()
                );
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let _ = reqwest::Client::new()
                        .patch(url)
                        .json(&json!({"content": "You approved `1`."}))
                        .send()
                        .await;
                });
                async { Json(json!({"type": 5, "data": {"flags": 64}})) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        emu.set_interactions_endpoint(&format!("http://{addr}/i"));

        let reply = emu
            .click(&channel, &message, "review:v1:approve:1", &user)
            .await
            .expect("click");
        let first = interaction_view(&emu, &reply.interaction);
        assert_eq!(first.callback_type, Some(5));
        assert!(
            first.loading && first.waiting() && first.ephemeral,
            "{first:?}"
        );
        let mut view = first;
        for _ in 0..200 {
            if !view.waiting() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            view = interaction_view(&emu, &emu.interaction(&view.interaction).expect("record"));
        }
        assert!(!view.waiting(), "{view:?}");
        assert_eq!(view.answer.as_deref(), Some("You approved `1`."));
        assert_eq!(
            view.answer_html.as_deref(),
            Some("You approved <code>1</code>.")
        );
        assert!(view.ephemeral && view.state == "acknowledged", "{view:?}");
    }
}
