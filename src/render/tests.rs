use super::*;

const ID: &str = "00000000-0000-0000-0000-000000000000";

fn view() -> RequestView {
    RequestView {
        id: ID.to_owned(),
        cluster: "example.teleport.sh".to_owned(),
        user: "example@goteleport.com".to_owned(),
        roles: vec!["foo".into(), "bar".into()],
        resources: vec!["/example.teleport.sh/node/0000".into()],
        reason: "test".into(),
        web_proxy_url: Some("https://example.teleport.sh".into()),
        ..RequestView::default()
    }
}

fn review(author: &str, approved: bool, reason: &str) -> ReviewView {
    ReviewView {
        author: author.into(),
        approved,
        reason: reason.into(),
        created_unix: 1_136_214_245, // Mon Jan  2 15:04:05 UTC 2006
        via: None,
    }
}

/// Every payload must satisfy Discord's limits and ping nobody.
fn assert_fits(b: &MessageBody) {
    assert!(
        discord_len(&b.content) <= CONTENT_LIMIT,
        "content {} long",
        discord_len(&b.content)
    );
    if let Some(e) = &b.embeds {
        assert!(e.len() <= EMBEDS_LIMIT, "{} embeds", e.len());
        assert!(
            embed_total(e) <= EMBED_TOTAL_LIMIT,
            "embed total {}",
            embed_total(e)
        );
        for x in e {
            assert!(discord_len(&x.title) <= EMBED_TITLE_LIMIT);
            assert!(discord_len(&x.description) <= EMBED_DESCRIPTION_LIMIT);
            assert!(discord_len(&x.author.name) <= EMBED_AUTHOR_LIMIT);
        }
    }
    assert!(b.allowed_mentions.parse.is_empty());
    let json = serde_json::to_value(b).expect("json");
    assert_eq!(json["allowed_mentions"], serde_json::json!({"parse": []}));
    assert!(
        b.content.contains("*Status*: "),
        "status line lost:\n{}",
        b.content
    );
}

#[test]
fn enterprise_pending_matches_upstream() {
    let b = render(&view(), true);
    // Upstream's 2026 title names a request with resources a Resource Request.
    assert_eq!(
        b.content,
        "You have a new Resource Request:\n\
         *ID*: 00000000-0000-0000-0000-000000000000\n\
         *Cluster*: example.teleport.sh\n\
         *User*: example@goteleport.com\n\
         *Role(s)*: `bar,foo`\n\
         *Resource(s)*: `/example.teleport.sh/node/0000`\n\
         *Reason*: ```\ntest```\n\
         *Link*: https://example.teleport.sh/web/requests/00000000-0000-0000-0000-000000000000\n\
         *Status*: ⏳ PENDING"
    );
    assert_eq!(b.components.len(), 1);
    assert_eq!(b.components[0].components[0].style, 5);
    assert_eq!(
        b.components[0].components[0].url.as_deref(),
        Some("https://example.teleport.sh/web/requests/00000000-0000-0000-0000-000000000000")
    );
    assert_eq!(b.embeds, Some(vec![]));
    assert_fits(&b);
}

#[test]
fn oss_pending_has_tsh_lines_and_resolved_does_not() {
    let mut v = view();
    v.web_proxy_url = None;
    let b = render(&v, true);
    assert!(b.content.contains(&format!("*Approve*: `tsh request review --approve {ID}`\n*Deny*: `tsh request review --deny {ID}`\n*Status*: ⏳ PENDING")), "{}", b.content);
    assert!(b.components.is_empty());
    v.status = StatusField(Status::Approved);
    v.resolve_reason = "ok by me".into();
    let b = render(&v, true);
    assert!(!b.content.contains("tsh request review"), "{}", b.content);
    assert!(
        b.content
            .ends_with("*Status*: ✅ APPROVED\n*Resolution reason*: ```\nok by me```"),
        "{}",
        b.content
    );
}

#[test]
fn statuses() {
    for (s, line) in [
        (Status::Approved, "*Status*: ✅ APPROVED"),
        (Status::Denied, "*Status*: ❌ DENIED"),
        (Status::Expired, "*Status*: ⌛ EXPIRED"),
        (Status::Promoted, "*Status*:  PROMOTED"),
    ] {
        let mut v = view();
        v.status = StatusField(s);
        let b = render(&v, true);
        assert!(b.content.ends_with(line), "{}", b.content);
        assert!(b.components.is_empty(), "no review button once resolved");
    }
}

#[test]
fn logins_by_role_lines() {
    let mut v = view();
    v.logins_by_role = [
        (
            "foo".to_owned(),
            vec!["root".to_owned(), "admin".to_owned()],
        ),
        ("bar".to_owned(), vec![]),
    ]
    .into();
    let b = render(&v, true);
    assert!(
        b.content
            .contains("*Role*: `bar` *Login(s)*: `-`\n*Role*: `foo` *Login(s)*: `admin, root`\n"),
        "{}",
        b.content
    );
    assert!(!b.content.contains("*Role(s)*"));
}

#[test]
fn long_reason_is_truncated_like_upstream() {
    let mut v = view();
    v.reason = format!("because of {}", "A".repeat(4000));
    let b = render(&v, true);
    let want = format!(
        "*Reason*: ```\nbecause of {}``` (truncated)\n",
        "A".repeat(389)
    );
    assert!(b.content.contains(&want), "{}", b.content);
    assert_fits(&b);
}

#[test]
fn review_embeds_match_upstream() {
    let mut v = view();
    v.reviews = vec![
        review("reviewer1@example.com", true, "okay"),
        review("reviewer2@example.com", false, "not okay"),
    ];
    let b = render(&v, true);
    let e = b.embeds.as_ref().expect("embeds");
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[0].title,
        "Approved request at Mon Jan  2 15:04:05 UTC 2006"
    );
    assert_eq!(e[0].description, "Reason: ```\nokay```");
    assert_eq!(e[0].color, 2_328_611);
    assert_eq!(e[0].author.name, "reviewer1@example.com");
    assert_eq!(e[1].title, "Denied request at Mon Jan  2 15:04:05 UTC 2006");
    assert_eq!(e[1].color, 13_771_309);
    let json = serde_json::to_value(&b).expect("json");
    assert_eq!(json["embeds"][1]["author"]["name"], "reviewer2@example.com");
    // Expired edits leave existing embeds alone: no `embeds` key at all.
    let json = serde_json::to_value(render(&v, false)).expect("json");
    assert!(json.get("embeds").is_none());
}

#[test]
fn many_reviews_are_summarised() {
    let mut v = view();
    v.reviews = (0..50)
        .map(|i| review(&format!("reviewer{i}"), i % 3 != 0, &"why ".repeat(200)))
        .collect();
    let b = render(&v, true);
    assert_fits(&b);
    let e = b.embeds.as_ref().expect("embeds");
    assert_eq!(e.len(), 10);
    assert_eq!(e[0].title, "41 earlier review(s) not shown");
    assert_eq!(e[0].description, "27 approved, 14 denied");
    assert_eq!(
        e[9].author.name, "reviewer49",
        "the newest review is shown last"
    );
    // Ten reviews still fit without a summary.
    v.reviews.truncate(10);
    let b = render(&v, true);
    assert_fits(&b);
    assert_eq!(b.embeds.as_ref().map(Vec::len), Some(10));
    assert_eq!(
        b.embeds.as_ref().expect("embeds")[0].author.name,
        "reviewer0"
    );
}

#[test]
fn thresholds_and_expiry_lines() {
    let mut v = view();
    v.needed = Some(Needed {
        approvals: 1,
        denials: 2,
    });
    v.request_expires_unix = Some(1_136_214_245);
    v.access_expires_unix = Some(1_136_300_645);
    let b = render(&v, true);
    assert!(b.content.contains("*Request Expires (UTC)*: 2006-01-02 15:04:05 UTC\n*Access Expires (UTC)*: 2006-01-03 15:04:05 UTC\n"), "{}", b.content);
    assert!(
        b.content
            .contains("*Reviews*: 1 more approval(s) or 2 more denial(s) needed\n"),
        "{}",
        b.content
    );
    v.status = StatusField(Status::Approved);
    assert!(!render(&v, true).content.contains("*Reviews*"));
}

#[test]
fn mentions_and_markdown_are_neutralised() {
    let mut v = view();
    v.user = "@everyone <@123456789> **bold** @here".into();
    v.reason = "ping @everyone and <@&42> ``` break out".into();
    v.roles = vec!["role`with`ticks".into()];
    let b = render(&v, true);
    assert_fits(&b);
    let user_line = b
        .content
        .lines()
        .find(|l| l.starts_with("*User*"))
        .expect("user line");
    assert_eq!(
        user_line,
        "*User*: @\u{200B}everyone \\<@123456789\\> \\*\\*bold\\*\\* @\u{200B}here"
    );
    // Inside code a backtick cannot close the block.
    assert!(
        b.content
            .contains("`\u{FEFF}`\u{FEFF}`\u{FEFF} break out```"),
        "{}",
        b.content
    );
    assert!(
        b.content.contains("`role`\u{FEFF}with`\u{FEFF}ticks`"),
        "{}",
        b.content
    );
}

#[test]
fn bidi_and_zero_width_are_removed_from_user_text() {
    let mut v = view();
    v.user = "al\u{202E}ice\u{200B}\u{2066}".into();
    v.reason = "א ב ג \u{202E}evil".into();
    let b = render(&v, true);
    assert!(b.content.contains("*User*: alice\n"), "{}", b.content);
    assert!(
        b.content.contains("א ב ג evil"),
        "RTL text itself stays: {}",
        b.content
    );
    assert_fits(&b);
}

#[test]
fn huge_inputs_still_fit_and_keep_the_status() {
    let mut v = view();
    v.user = "u".repeat(5000);
    v.roles = (0..500).map(|i| format!("role-{i}")).collect();
    v.logins_by_role = (0..200)
        .map(|i| (format!("role-{i}"), vec!["root".to_owned(); 3]))
        .collect();
    v.resources = (0..500).map(|i| format!("/cluster/node/{i}")).collect();
    v.reason = "é".repeat(10_000);
    v.resolve_reason = "🙂".repeat(10_000);
    v.status = StatusField(Status::Denied);
    let b = render(&v, true);
    assert_fits(&b);
    assert!(b.content.contains("*Status*: ❌ DENIED"), "{}", b.content);
    assert!(b.content.contains("*Resolution reason*:"), "{}", b.content);
}

#[test]
fn unix_date_is_go_format() {
    assert_eq!(unix_date(0), "Thu Jan  1 00:00:00 UTC 1970");
    assert_eq!(unix_date(1_136_214_245), "Mon Jan  2 15:04:05 UTC 2006");
    assert_eq!(unix_date(1_795_601_468), "Wed Nov 25 10:11:08 UTC 2026");
    assert_eq!(unix_date(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
    assert_eq!(utc_timestamp(-1), "1969-12-31 23:59:59 UTC");
}

#[test]
fn cut_respects_characters() {
    assert_eq!(cut("héllo", 2), "hé");
    assert_eq!(cut("🙂🙂", 3), "🙂", "a surrogate pair is never split");
    assert_eq!(truncate_marked("abcdef", 4, "…"), "abc…");
    assert_eq!(truncate_marked("abc", 4, "…"), "abc");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn any_request_renders_within_limits(
        user in "\\PC{0,300}",
        reason in "\\PC{0,3000}",
        resolve in "\\PC{0,600}",
        roles in proptest::collection::vec("\\PC{0,60}", 0..40),
        reviews in proptest::collection::vec(("\\PC{0,300}", proptest::bool::ANY, "\\PC{0,800}", -10_000_000_000i64..10_000_000_000i64), 0..30),
        status in 0u8..5,
        enterprise in proptest::bool::ANY,
    ) {
        let v = RequestView {
            id: "0000-1111".into(),
            cluster: "c".into(),
            user,
            roles,
            reason,
            resolve_reason: resolve,
            reviews: reviews.into_iter().map(|(a, ok, r, t)| ReviewView { author: a, approved: ok, reason: r, created_unix: t, via: None }).collect(),
            status: StatusField([Status::Pending, Status::Approved, Status::Denied, Status::Promoted, Status::Expired][usize::from(status)]),
            web_proxy_url: enterprise.then(|| "https://proxy.example.com".to_owned()),
            ..RequestView::default()
        };
        let b = render(&v, true);
        assert_fits(&b);
    }
}

// ---- the stable twin of fuzz/fuzz_targets/render.rs ------------------------------------

/// Pieces that break renderers: mentions, markdown, bidi and zero-width
/// controls, surrogate pairs, combining marks, newlines.
const NASTY: &[&str] = &[
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
    "||",
    ">",
    "# ",
    "[x](https://e.com)",
    "\\",
    "\n",
    "\r\n",
    "\t",
    "\0",
    "🙂",
    "👩‍👩‍👧",
    "e\u{301}",
    "\u{10ffff}",
    " ",
    "a",
];

/// Text made of nasty pieces and arbitrary text, each repeated up to `max_repeat` times.
fn nasty_text(max_repeat: usize) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        proptest::sample::select(NASTY).prop_map(str::to_owned),
        "\\PC{0,12}",
    ];
    proptest::collection::vec((piece, 1..=max_repeat), 0..4).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(p, n)| p.repeat(n))
            .collect::<String>()
    })
}

/// UTF-16 length of a JSON string (never below Discord's count).
fn json_len(v: Option<&serde_json::Value>) -> usize {
    v.and_then(serde_json::Value::as_str)
        .map_or(0, |s| s.encode_utf16().count())
}

/// The payload we send (create with nonce, and edit) passes the emulator's
/// validator and every documented limit, and pings nobody.
fn assert_payload_fits(b: &MessageBody, id: &str) {
    use teleport_discord_testkit::discord::validate::{Kind, validate};
    let payload = serde_json::to_value(crate::discord::MessagePayload::from(b)).expect("json");
    assert!(json_len(payload.get("content")) <= CONTENT_LIMIT);
    let embeds = payload["embeds"].as_array().cloned().unwrap_or_default();
    assert!(embeds.len() <= EMBEDS_LIMIT);
    let mut total = 0;
    for e in &embeds {
        let (t, d, a, f) = (
            json_len(e.get("title")),
            json_len(e.get("description")),
            json_len(e.pointer("/author/name")),
            json_len(e.pointer("/footer/text")),
        );
        assert!(
            t <= 256 && d <= 4096 && a <= 256 && f <= 2048,
            "{t} {d} {a} {f}"
        );
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        assert!(fields.len() <= 25);
        for x in &fields {
            assert!(json_len(x.get("name")) <= 256 && json_len(x.get("value")) <= 1024);
            total += json_len(x.get("name")) + json_len(x.get("value"));
        }
        total += t + d + a + f;
    }
    assert!(total <= EMBED_TOTAL_LIMIT, "embed total {total}");
    assert_eq!(
        payload["allowed_mentions"],
        serde_json::json!({"parse": []})
    );
    let errs = validate(&payload, Kind::Edit);
    assert!(errs.is_empty(), "edit rejected: {}", errs.to_json());
    let mut create = payload;
    create["nonce"] = crate::reconcile::nonce_for(id, "123456789012345678").into();
    create["enforce_nonce"] = true.into();
    let errs = validate(&create, Kind::Create);
    assert!(errs.is_empty(), "create rejected: {}", errs.to_json());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    #[test]
    fn nasty_requests_render_within_limits_and_ping_nobody(
        id in nasty_text(3),
        cluster in nasty_text(40),
        user in nasty_text(300),
        reason in nasty_text(6000),
        resolve in nasty_text(1500),
        roles in proptest::collection::vec(nasty_text(30), 0..50),
        resources in proptest::collection::vec(nasty_text(30), 0..30),
        reviews in proptest::collection::vec(
            (nasty_text(120), proptest::bool::ANY, nasty_text(600), proptest::num::i64::ANY),
            0..40,
        ),
        status in 0u8..5,
        needed in proptest::option::of((proptest::num::u32::ANY, proptest::num::u32::ANY)),
        expires in proptest::option::of(proptest::num::i64::ANY),
        access in proptest::option::of(proptest::num::i64::ANY),
        proxy in proptest::option::of(nasty_text(100)),
    ) {
        let v = RequestView {
            id,
            cluster,
            user,
            roles,
            resources,
            reason,
            resolve_reason: resolve,
            reviews: reviews.into_iter().map(|(a, ok, r, t)| ReviewView { author: a, approved: ok, reason: r, created_unix: t, via: None }).collect(),
            status: StatusField([Status::Pending, Status::Approved, Status::Denied, Status::Promoted, Status::Expired][usize::from(status)]),
            needed: needed.map(|(approvals, denials)| Needed { approvals, denials }),
            request_expires_unix: expires,
            access_expires_unix: access,
            web_proxy_url: proxy,
            ..RequestView::default()
        };
        for with_embeds in [true, false] {
            let b = render(&v, with_embeds);
            assert_fits(&b);
            assert_payload_fits(&b, &v.id);
        }
    }
}

/// Found by the `render` fuzz target: an author name whose ends were
/// zero-width or control characters kept the whitespace behind them once
/// those were removed, and that whitespace counts toward Discord's 6000
/// character embed total (counted untrimmed here); nine such reviewers put a
/// message over it. The name is trimmed after sanitising now.
#[test]
fn author_names_have_no_edge_whitespace_after_sanitising() {
    let mut v = view();
    v.reviews = (0..12)
        .map(|i| {
            review(
                &format!("\u{200b}{}{i}{}\u{200b}", " ".repeat(300), " ".repeat(300)),
                i % 2 == 0,
                &"é ".repeat(400),
            )
        })
        .collect();
    let b = render(&v, true);
    assert_fits(&b);
    assert_payload_fits(&b, &v.id);
    for e in b.embeds.iter().flatten() {
        assert_eq!(e.author.name, e.author.name.trim(), "{:?}", e.author.name);
    }
}

#[test]
fn the_title_follows_upstream_2026_form() {
    let title = |resources: bool, long_term: bool| {
        let v = RequestView {
            resources: if resources {
                view().resources
            } else {
                Vec::new()
            },
            long_term,
            ..view()
        };
        render(&v, true)
            .content
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(title(false, false), "You have a new Role Request:");
    assert_eq!(title(true, false), "You have a new Resource Request:");
    assert_eq!(
        title(true, true),
        "You have a new Resource Request (long-term access):"
    );
    assert_eq!(
        title(false, true),
        "You have a new Role Request (long-term access):"
    );
}

#[test]
fn review_buttons_only_on_pending_short_term_requests_when_on() {
    let ids = |v: &RequestView| -> Vec<(u8, Option<String>)> {
        render(v, true)
            .components
            .iter()
            .flat_map(|r| r.components.iter().map(|b| (b.style, b.custom_id.clone())))
            .collect()
    };
    let on = RequestView {
        review_buttons: true,
        ..view()
    };
    let got = ids(&on);
    assert_eq!(
        got,
        [
            (STYLE_SUCCESS, Some(format!("review:v1:approve:{ID}"))),
            (STYLE_DANGER, Some(format!("review:v1:deny:{ID}"))),
            (STYLE_LINK, None),
        ]
    );
    for (_, id) in &got {
        if let Some(id) = id {
            assert!(id.len() <= 100);
            assert_eq!(
                ButtonAction::parse(id).map(|a| a.request_id),
                Some(ID.to_owned())
            );
        }
    }
    // Off, long-term, or resolved: no review buttons.
    assert_eq!(ids(&view()), [(STYLE_LINK, None)]);
    assert_eq!(
        ids(&RequestView {
            long_term: true,
            ..on.clone()
        }),
        [(STYLE_LINK, None)]
    );
    for s in [
        Status::Approved,
        Status::Denied,
        Status::Expired,
        Status::Promoted,
    ] {
        assert!(
            ids(&RequestView {
                status: StatusField(s),
                ..on.clone()
            })
            .is_empty(),
            "{s:?}"
        );
    }
    // Without a web proxy (OSS), the buttons stand alone.
    let oss = RequestView {
        web_proxy_url: None,
        ..on
    };
    assert_eq!(ids(&oss).len(), 2);
}

#[test]
fn a_review_from_discord_says_so_in_its_embed() {
    let mut r = review("alice", true, "fine");
    r.via = Some("Discord".into());
    let v = RequestView {
        reviews: vec![r],
        ..view()
    };
    let b = render(&v, true);
    let e = &b.embeds.expect("embeds")[0];
    assert_eq!(e.author.name, "alice");
    assert!(
        e.description
            .starts_with("Reviewed from Discord.\nReason: "),
        "{}",
        e.description
    );
}

#[test]
fn custom_ids_parse_strictly() {
    for bad in [
        "",
        "review:v1:approve",
        "review:v1:approve:",
        "review:v1:accept:abc",
        "review:v0:approve:abc",
        "review:v1:approve:abc:def",
        "review:v1:approve:a b",
        &format!("review:v1:approve:{}", "a".repeat(65)),
    ] {
        assert_eq!(ButtonAction::parse(bad), None, "{bad}");
    }
    assert_eq!(
        ButtonAction::parse("review:v1:deny:abc-123"),
        Some(ButtonAction {
            verdict: Verdict::Deny,
            request_id: "abc-123".into()
        })
    );
}
