//! The message renderer: any request (user, roles, reason up to very long,
//! reviews with any text, resolve reason, bidi/zero-width controls, mentions,
//! many reviews) renders to create and edit payloads within every Discord
//! limit that ping nobody.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use teleport_discord::reconcile::nonce_for;
use teleport_discord::emulators::discord::validate::{Kind, validate};
use teleport_discord::render::{Needed, RequestView, ReviewView, Status, StatusField, render};
use teleport_discord::discord::MessagePayload;

/// Pieces that have broken renderers before: mentions, markdown, bidi and
/// zero-width controls, surrogate pairs, combining marks, newlines.
const PIECES: &[&str] = &[
    "@everyone",
    "@here",
    "<@123456789012345678>",
    "<@!1>",
    "<@&2>",
    "<#3>",
    "</cmd:4>",
    "\u{202e}",
    "\u{2066}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}",
    "\u{061c}",
    "\u{2028}",
    "```",
    "`",
    "*",
    "_",
    "~",
    "|",
    "||",
    ">",
    "#",
    "-",
    "[x](https://e.com)",
    "\\",
    "\n",
    "\r\n",
    "\t",
    "\0",
    "\u{7f}",
    "🙂",
    "👩‍👩‍👧",
    "é",
    "e\u{301}",
    "\u{10ffff}",
    " ",
    "https://example.com/",
    "a",
];

fn text(u: &mut Unstructured<'_>, max_repeat: usize) -> Result<String> {
    let mut s = String::new();
    for _ in 0..u.int_in_range(0..=6u8)? {
        let piece: String = if u.arbitrary()? {
            (*u.choose(PIECES)?).to_owned()
        } else {
            u.arbitrary::<&str>()?.to_owned()
        };
        // Long, but bounded: at most ~64 KiB per piece.
        let n = u
            .int_in_range(1..=max_repeat)?
            .min(65_536 / piece.len().max(1));
        s.push_str(&piece.repeat(n));
    }
    Ok(s)
}

fn texts(u: &mut Unstructured<'_>, max: usize, max_repeat: usize) -> Result<Vec<String>> {
    (0..u.int_in_range(0..=max)?)
        .map(|_| text(u, max_repeat))
        .collect()
}

fn view(u: &mut Unstructured<'_>) -> Result<RequestView> {
    let mut logins_by_role = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        logins_by_role.insert(text(u, 4)?, texts(u, 6, 4)?);
    }
    let reviews = (0..u.int_in_range(0..=40u8)?)
        .map(|_| {
            Ok(ReviewView {
                author: text(u, 200)?,
                approved: u.arbitrary()?,
                reason: text(u, 2000)?,
                created_unix: u.arbitrary()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RequestView {
        id: text(u, 8)?,
        cluster: text(u, 100)?,
        user: text(u, 500)?,
        roles: texts(u, 60, 50)?,
        logins_by_role,
        resources: texts(u, 40, 50)?,
        reason: text(u, 20_000)?,
        status: StatusField(*u.choose(&[
            Status::Pending,
            Status::Approved,
            Status::Denied,
            Status::Promoted,
            Status::Expired,
        ])?),
        resolve_reason: text(u, 5000)?,
        reviews,
        needed: if u.arbitrary()? {
            Some(Needed {
                approvals: u.arbitrary()?,
                denials: u.arbitrary()?,
            })
        } else {
            None
        },
        request_expires_unix: u.arbitrary()?,
        access_expires_unix: u.arbitrary()?,
        web_proxy_url: if u.arbitrary()? {
            Some(text(u, 300)?)
        } else {
            None
        },
    })
}

/// UTF-16 length: never below Discord's count.
fn len(v: Option<&Value>) -> usize {
    v.and_then(Value::as_str)
        .map_or(0, |s| s.encode_utf16().count())
}

/// Every documented limit, counted strictly (UTF-16, untrimmed).
fn check_limits(p: &Value) {
    assert!(
        len(p.get("content")) <= 2000,
        "content {}",
        len(p.get("content"))
    );
    let embeds = p
        .get("embeds")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert!(embeds.len() <= 10, "{} embeds", embeds.len());
    let mut total = 0;
    for e in &embeds {
        let title = len(e.get("title"));
        let description = len(e.get("description"));
        let author = len(e.pointer("/author/name"));
        let footer = len(e.pointer("/footer/text"));
        assert!(title <= 256, "title {title}");
        assert!(description <= 4096, "description {description}");
        assert!(author <= 256, "author {author}");
        assert!(footer <= 2048, "footer {footer}");
        total += title + description + author + footer;
        let fields = e
            .get("fields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        assert!(fields.len() <= 25, "{} fields", fields.len());
        for f in &fields {
            let (n, v) = (len(f.get("name")), len(f.get("value")));
            assert!(n <= 256 && v <= 1024, "field {n}/{v}");
            total += n + v;
        }
    }
    assert!(total <= 6000, "embed total {total}");
    // Nobody is pinged: parse nothing, name no user or role.
    assert_eq!(
        p["allowed_mentions"],
        serde_json::json!({"parse": []}),
        "{p}"
    );
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let v = view(u)?;
    for with_embeds in [true, false] {
        let body = render(&v, with_embeds);
        assert!(body.content.contains("*Status*: "), "status line lost");
        let payload = serde_json::to_value(MessagePayload::from(&body)).expect("json");
        check_limits(&payload);
        let edit = validate(&payload, Kind::Edit);
        assert!(edit.is_empty(), "edit rejected: {}", edit.to_json());
        let mut create = payload;
        create["nonce"] = Value::String(nonce_for(&v.id, "123456789012345678"));
        create["enforce_nonce"] = Value::Bool(true);
        let errs = validate(&create, Kind::Create);
        assert!(errs.is_empty(), "create rejected: {}", errs.to_json());
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
