//! The demo page: a read-only, server-rendered view of the emulated Discord
//! channels (messages, review embeds with their colour bar, link buttons,
//! edit history) that refreshes itself. Everything from a message is
//! HTML-escaped; Discord's markdown is rendered only as far as the service
//! uses it (code blocks, inline code, `*italics*`, backslash escapes).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;
use tokio::sync::watch;

use super::transcript::{Snapshot, summarize_parts};
use crate::discord::{DISCORD_EPOCH_MS, StoredMessage};

/// What the page says about its surroundings.
#[derive(Debug, Clone)]
pub(crate) struct PageInfo {
    /// The service's base URL.
    pub(crate) service: String,
    /// The bot's name.
    pub(crate) bot_name: String,
}

#[derive(Clone)]
struct PageState {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    info: Arc<PageInfo>,
}

/// `GET /`: the page.
pub(crate) fn router(snapshots: watch::Receiver<Arc<Snapshot>>, info: PageInfo) -> Router {
    Router::new().route("/", get(index)).with_state(PageState {
        snapshots,
        info: Arc::new(info),
    })
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

/// Inline Discord markdown (no code blocks): `code`, *italics*, `\x` escapes.
fn inline_markdown(s: &str) -> String {
    let mut out = String::new();
    let (mut code, mut em) = (false, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
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

fn buttons_html(components: &Value, out: &mut String) {
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
            _ => {
                let _ = write!(out, "<span class=\"button\">{label}</span>");
            }
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

fn message_html(m: &StoredMessage, bot: &str, out: &mut String) {
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
    buttons_html(&m.components, out);
    history_html(m, out);
    out.push_str("</div></article>");
}

/// The whole page.
pub(crate) fn render(snapshot: &Snapshot, info: &PageInfo) -> String {
    let mut channels = String::new();
    for ch in snapshot {
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
            message_html(m, &info.bot_name, &mut channels);
        }
        channels.push_str("</section>");
    }
    let service = escape(&info.service);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>teleport-discord demo: emulated Discord</title>
<noscript><meta http-equiv="refresh" content="3"></noscript>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>teleport-discord demo <small>emulated Discord, read-only</small></h1>
<p>Role <code>dev</code> → #dev and #ops; any other role → #fallback. The service: <a href="{service}/readyz">/readyz</a> · <a href="{service}/metrics">/metrics</a>. Requests: <a href="/teleport/requests">/teleport/requests</a>. This page refreshes itself.</p>
</header>
<main id="channels">{channels}</main>
<script>{SCRIPT}</script>
</body>
</html>
"#
    )
}

const STYLE: &str = "
body{margin:0;background:#313338;color:#dbdee1;font:15px/1.375 'gg sans','Noto Sans','Helvetica Neue',Helvetica,Arial,sans-serif}
header{padding:12px 20px;background:#2b2d31;border-bottom:1px solid #1f2023}
header h1{margin:0;font-size:18px;color:#f2f3f5}header h1 small{color:#949ba4;font-weight:400;font-size:13px}
header p{margin:4px 0 0;color:#b5bac1;font-size:13px}a{color:#00a8fc}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:1px;background:#1f2023}
.channel{background:#313338;padding:0 0 16px;min-width:0}
.channel h2{margin:0;padding:10px 16px;font-size:16px;color:#f2f3f5;border-bottom:1px solid #26272b;position:sticky;top:0;background:#313338}
.channel h2 small{color:#949ba4;font-weight:400;font-size:12px}.hash{color:#80848e;margin-right:4px}
.empty{color:#949ba4;padding:0 16px}
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
.buttons{margin-top:6px}.button{display:inline-block;background:#4e5058;color:#fff;border-radius:3px;padding:4px 14px;font-size:14px;text-decoration:none}
.status{border-radius:10px;padding:0 8px;font-weight:600;font-size:13px}
.status.pending{background:#4e5058;color:#f2f3f5}.status.approved{background:#238823;color:#fff}
.status.denied{background:#d2222d;color:#fff}.status.expired{background:#80848e;color:#fff}
.history{margin-top:6px;font-size:12px;color:#949ba4}.history summary{cursor:pointer}
.history ol{margin:4px 0;padding-left:20px}.history pre{font-size:12px;color:#b5bac1}
";

const SCRIPT: &str = "
setInterval(async () => {
  try {
    const r = await fetch(location.pathname, {cache: 'no-store'});
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    const open = [...document.querySelectorAll('details[open][id]')].map(d => d.id);
    document.getElementById('channels').replaceWith(doc.getElementById('channels'));
    for (const id of open) { const d = document.getElementById(id); if (d) d.open = true; }
  } catch (e) {}
}, 1500);
";

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
            &serde_json::json!([{"type":1,"components":[{"type":2,"style":5,"label":"x","url":"javascript:alert(1)"}]}]),
            &mut out,
        );
        assert!(!out.contains("href"), "{out}");
    }
}
