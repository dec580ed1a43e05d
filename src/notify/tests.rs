//! The pure policy of direct notices: mapping, records, windows, texts.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::macros::datetime;

use super::reminders::{self, ListFacts, decode, encode, plan, window_start};
use super::requester::{self, Record, record};
use super::*;

fn list(due: OffsetDateTime, before_days: u64) -> ListFacts {
    ListFacts {
        name: "prod".into(),
        title: "Prod *admins*".into(),
        owners: vec!["alice".into(), "bob".into()],
        next_audit_date: Some(due),
        notify_before: Duration::from_secs(before_days * 24 * 3600),
    }
}

#[test]
fn windows_are_weekly_from_the_start_then_daily_when_overdue() {
    let due = datetime!(2026-12-20 12:00 UTC);
    let l = list(due, 14); // window opens 2026-12-06 12:00
    assert_eq!(window_start(&l, datetime!(2026-12-06 11:59 UTC)), None);
    assert_eq!(
        window_start(&l, datetime!(2026-12-06 12:00 UTC)),
        Some(datetime!(2026-12-06 12:00 UTC))
    );
    assert_eq!(
        window_start(&l, datetime!(2026-12-12 23:00 UTC)),
        Some(datetime!(2026-12-06 12:00 UTC))
    );
    assert_eq!(
        window_start(&l, datetime!(2026-12-13 12:00 UTC)),
        Some(datetime!(2026-12-13 12:00 UTC))
    );
    // Overdue: every day.
    assert_eq!(
        window_start(&l, datetime!(2026-12-22 13:00 UTC)),
        Some(datetime!(2026-12-22 12:00 UTC))
    );
}

#[test]
fn an_owner_is_reminded_once_per_window_and_departed_owners_are_dropped() {
    let due = datetime!(2026-12-20 12:00 UTC);
    let l = list(due, 14);
    let owners = vec!["alice".to_owned(), "bob".to_owned()];
    let now = datetime!(2026-12-07 09:00 UTC);
    let (first, rec) = plan(&l, &owners, &BTreeMap::new(), now);
    assert_eq!(first, ["alice", "bob"]);
    let later = datetime!(2026-12-10 09:00 UTC);
    let (again, same) = plan(&l, &owners, &rec, later);
    assert!(again.is_empty());
    assert_eq!(same, rec);
    // Next week: both again; carol left the list, dave joined.
    let mut old = rec.clone();
    old.insert("carol".into(), now);
    let owners2 = vec!["alice".to_owned(), "dave".to_owned()];
    let (next, rec2) = plan(&l, &owners2, &old, datetime!(2026-12-14 09:00 UTC));
    assert_eq!(next, ["alice", "dave"]);
    assert_eq!(rec2.keys().collect::<Vec<_>>(), ["alice", "dave"]);
    // Before the window: nothing, the record unchanged.
    let (none, kept) = plan(&l, &owners, &rec, datetime!(2026-12-01 00:00 UTC));
    assert!(none.is_empty());
    assert_eq!(kept, rec);
}

#[test]
fn the_record_reads_and_writes_upstreams_layout() {
    // What Go's json.Marshal(map[string]time.Time) writes, zero time included.
    let go = BTreeMap::from([(
        "user_notifications".to_owned(),
        r#"{"alice":"2024-05-01T10:00:00.123456789Z","bob":"0001-01-01T00:00:00Z"}"#.to_owned(),
    )]);
    let m = decode(&go).expect("decodes");
    assert_eq!(m["alice"], datetime!(2024-05-01 10:00:00.123456789 UTC));
    assert_eq!(m["bob"].year(), 1);
    let again = BTreeMap::from([("user_notifications".to_owned(), encode(&m))]);
    assert_eq!(decode(&again), Some(m));
    assert_eq!(decode(&BTreeMap::new()), Some(BTreeMap::new()));
    let empty = BTreeMap::from([("user_notifications".to_owned(), String::new())]);
    assert_eq!(decode(&empty), Some(BTreeMap::new()));
    let junk = BTreeMap::from([("user_notifications".to_owned(), "{".to_owned())]);
    assert_eq!(decode(&junk), None);
}

#[test]
fn reminder_lines_say_due_or_overdue_and_link_the_list() {
    let due = datetime!(2026-12-20 12:00 UTC);
    let l = list(due, 14);
    let soon = reminders::line(
        &l,
        datetime!(2026-12-10 00:00 UTC),
        Some("https://t.example.com/"),
    );
    assert_eq!(
        soon,
        "Access List **Prod \\*admins\\*** is due for a review by 2026-12-20. Please review it soon!\n*Link*: https://t.example.com/web/accesslists/prod"
    );
    let late = reminders::line(&l, datetime!(2026-12-23 13:00 UTC), None);
    assert!(
        late.starts_with("⚠️") && late.contains("**3 day(s) past due**"),
        "{late}"
    );
}

#[test]
fn dm_records_parse_per_resolution() {
    assert_eq!(record("", "APPROVED"), Record::None);
    assert_eq!(record("APPROVED due", "APPROVED"), Record::Due);
    assert_eq!(record("APPROVED sent", "APPROVED"), Record::Done);
    assert_eq!(record("APPROVED refused", "APPROVED"), Record::Done);
    assert_eq!(record("EXPIRED sent", "APPROVED"), Record::None);
    assert_eq!(
        record("DENIED claimed host:8080 1700000000", "DENIED"),
        Record::Claimed {
            replica: "host:8080".into(),
            unix: 1_700_000_000
        }
    );
}

#[test]
fn the_requester_reads_what_happened_by_whom_and_until_when() {
    use crate::reconcile::{Request, RequestState, Review};
    let req = Request {
        id: "r1".into(),
        user: "bob".into(),
        roles: vec!["dev".into()],
        state: RequestState::Approved,
        reason: String::new(),
        resolve_reason: "ok".into(),
        reviews: vec![Review {
            author: "alice".into(),
            approved: true,
            reason: String::new(),
            created_unix: 0,
            submitted_by: None,
        }],
        suggested_reviewers: Vec::new(),
        resources: Vec::new(),
        thresholds: Vec::new(),
        system_annotations: BTreeMap::new(),
        created_unix: None,
        expires_unix: None,
        access_expires_unix: Some(2_000),
        long_term: false,
    };
    let t = requester::text("r1", "APPROVED", Some(&req), "ok", 1_000);
    assert!(
        t.starts_with("✅ Your access request `r1` for `dev` was approved by alice."),
        "{t}"
    );
    assert!(t.contains("Reason: ```\nok```"), "{t}");
    assert!(t.contains("<t:2000:f>"), "{t}");
    // Past its end, the end is not shown.
    assert!(!requester::text("r1", "APPROVED", Some(&req), "", 3_000).contains("<t:"));
    let gone = requester::text("r1", "EXPIRED", None, "", 0);
    assert_eq!(
        gone,
        "⌛ Your access request `r1` expired before it was approved."
    );
}

#[test]
fn a_teleport_user_maps_by_table_then_by_trait() {
    let table = BTreeMap::from([
        ("111".to_owned(), "alice".to_owned()),
        ("222".to_owned(), "bob".to_owned()),
    ]);
    assert_eq!(from_table(&table, "bob").as_deref(), Some("222"));
    assert_eq!(from_table(&table, "carol"), None);
    let traits = BTreeMap::from([(
        "discord_user_id".to_owned(),
        vec!["not-an-id".to_owned(), " 333 ".to_owned()],
    )]);
    assert_eq!(
        from_traits(&traits, "discord_user_id").as_deref(),
        Some("333")
    );
    assert_eq!(from_traits(&traits, "other"), None);
}

#[test]
fn nonces_are_stable_and_discord_sized() {
    let a = nonce(&["r1", "requester", "APPROVED"]);
    assert_eq!(a, nonce(&["r1", "requester", "APPROVED"]));
    assert_ne!(a, nonce(&["r1", "requester", "DENIED"]));
    assert_eq!(a.len(), 25);
}

#[test]
fn seventh_jitter_stays_between_six_sevenths_and_all() {
    let d = Duration::from_secs(7 * 3600);
    assert_eq!(
        reminders::seventh_jitter(d, 0.0),
        Duration::from_secs(6 * 3600)
    );
    assert_eq!(reminders::seventh_jitter(d, 1.0), d);
}
