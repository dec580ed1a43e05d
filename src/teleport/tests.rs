//! Unit tests: wire compatibility (hand-encoded bytes from the reference
//! field tables, independent of our generated code), credentials parsing,
//! version checks and error classification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;

use super::client::version_at_least;
use super::identity::{parse_identity_file, parse_triple};
use super::model::{RequestState, WatchEvent, event_from_pb};
use super::*;
use teleport_discord_testkit::teleport::pki::{Pki, identity_file};

// ---- a tiny independent protobuf encoder -------------------------------------------

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}
fn vint(field: u32, v: u64) -> Vec<u8> {
    let mut o = varint(u64::from(field) << 3);
    o.extend(varint(v));
    o
}
fn ld(field: u32, bytes: &[u8]) -> Vec<u8> {
    let mut o = varint((u64::from(field) << 3) | 2);
    o.extend(varint(bytes.len() as u64));
    o.extend_from_slice(bytes);
    o
}
fn s(field: u32, v: &str) -> Vec<u8> {
    ld(field, v.as_bytes())
}
fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}
fn ts(field: u32, seconds: i64) -> Vec<u8> {
    ld(field, &vint(1, seconds as u64))
}

const T0: i64 = 1_764_000_000;

fn request_bytes() -> Vec<u8> {
    let metadata = cat(&[
        s(1, "req-1"),
        s(2, "default"),
        ts(6, T0 + 7200),
        vint(7, 42),
        s(8, "rev"),
    ]);
    let review = cat(&[
        s(1, "alice"),
        vint(3, 2),
        s(4, "looks fine"),
        ts(5, T0 + 60),
    ]);
    let threshold = cat(&[s(1, "default"), s(2, "true"), vint(3, 2), vint(4, 1)]);
    let resource = cat(&[s(1, "cluster"), s(2, "node"), s(3, "db-1")]);
    let spec = cat(&[
        s(1, "bob"),
        s(2, "editor"),
        s(2, "auditor"),
        vint(3, 1),
        ts(4, T0),
        ts(5, T0 + 3600),
        s(6, "need access"),
        s(7, "resolved"),
        ld(
            9,
            &ld(
                1,
                &cat(&[
                    s(1, "pagerduty_services"),
                    ld(2, &cat(&[s(1, "db"), s(1, "web")])),
                ]),
            ),
        ),
        ld(10, &threshold),
        ld(12, &review),
        s(13, "carol"),
        ld(14, &resource),
        s(15, "root"),
        ts(18, T0 + 1800),
        vint(24, 1), // newer field we do not model: must be skipped
    ]);
    cat(&[
        s(1, "access_request"),
        s(3, "v3"),
        ld(4, &metadata),
        ld(5, &spec),
    ])
}

#[test]
fn access_request_decodes_every_field_we_use() {
    let r = pb::types::AccessRequestV3::decode(request_bytes().as_slice()).unwrap();
    let spec = r.spec.clone().unwrap();
    assert_eq!(r.metadata.as_ref().unwrap().name, "req-1");
    assert_eq!(r.metadata.as_ref().unwrap().revision, "rev");
    assert_eq!(spec.login_hint, "root");
    assert_eq!(spec.session_ttl.unwrap().seconds, T0 + 1800);
    let a = AccessRequest::try_from(r).unwrap();
    assert_eq!(a.id, "req-1");
    assert_eq!(a.user, "bob");
    assert_eq!(a.roles, ["editor", "auditor"]);
    assert_eq!(a.state, RequestState::Pending);
    assert_eq!(a.request_reason, "need access");
    assert_eq!(a.resolve_reason, "resolved");
    assert_eq!(a.created, Some(UNIX_EPOCH + Duration::from_secs(T0 as u64)));
    assert_eq!(
        a.access_expires,
        Some(UNIX_EPOCH + Duration::from_secs(T0 as u64 + 3600))
    );
    assert_eq!(
        a.request_expires,
        Some(UNIX_EPOCH + Duration::from_secs(T0 as u64 + 7200))
    );
    assert_eq!(a.system_annotations["pagerduty_services"], ["db", "web"]);
    assert_eq!(a.thresholds.len(), 1);
    assert_eq!(
        (
            a.thresholds[0].name.as_str(),
            a.thresholds[0].filter.as_str()
        ),
        ("default", "true")
    );
    assert_eq!((a.thresholds[0].approve, a.thresholds[0].deny), (2, 1));
    assert_eq!(a.reviews.len(), 1);
    assert_eq!(a.reviews[0].author, "alice");
    assert_eq!(a.reviews[0].proposed_state, RequestState::Approved);
    assert_eq!(a.reviews[0].reason, "looks fine");
    assert_eq!(
        a.reviews[0].created,
        Some(UNIX_EPOCH + Duration::from_secs(T0 as u64 + 60))
    );
    assert_eq!(a.suggested_reviewers, ["carol"]);
    assert_eq!(a.resources, ["/cluster/node/db-1"]);
}

#[test]
fn go_zero_time_is_unset() {
    let spec = cat(&[
        s(1, "bob"),
        vint(3, 1),
        ts(4, super::model::GO_ZERO_TIME_SECONDS),
    ]);
    let bytes = cat(&[ld(4, &s(1, "r")), ld(5, &spec)]);
    let a = AccessRequest::try_from(pb::types::AccessRequestV3::decode(bytes.as_slice()).unwrap())
        .unwrap();
    assert_eq!(a.created, None);
}

#[test]
fn events_decode_with_the_documented_oneof_numbers() {
    // INIT with WatchStatus (43)
    let ws = cat(&[
        s(1, "watch_status"),
        s(3, "v1"),
        ld(5, &ld(1, &s(1, "access_request"))),
    ]);
    let ev = pb::proto::Event::decode(cat(&[vint(1, 0), ld(43, &ws)]).as_slice()).unwrap();
    match ev.resource {
        Some(pb::proto::event::Resource::WatchStatus(w)) => {
            assert_eq!(w.spec.unwrap().kinds[0].kind, "access_request");
        }
        other => panic!("{other:?}"),
    }
    // PUT with AccessRequest (14)
    let ev =
        pb::proto::Event::decode(cat(&[vint(1, 1), ld(14, &request_bytes())]).as_slice()).unwrap();
    match event_from_pb(ev).unwrap() {
        Some(WatchEvent::PutAccessRequest(r)) => assert_eq!(r.id, "req-1"),
        other => panic!("{other:?}"),
    }
    // DELETE with ResourceHeader (2)
    let hdr = cat(&[
        s(1, "access_request"),
        s(3, "v3"),
        ld(4, &cat(&[s(1, "req-9"), s(2, "default")])),
    ]);
    let ev = pb::proto::Event::decode(cat(&[vint(1, 2), ld(2, &hdr)]).as_slice()).unwrap();
    assert_eq!(
        event_from_pb(ev).unwrap(),
        Some(WatchEvent::DeleteAccessRequest { id: "req-9".into() })
    );
    // PUT with AccessMonitoringRule (54)
    let rule = cat(&[
        ld(1, &s(1, "rule-1")),
        s(2, "access_monitoring_rule"),
        ld(
            5,
            &cat(&[
                s(1, "access_request"),
                s(3, "contains(request.roles, \"dev\")"),
                ld(4, &cat(&[s(1, "discord"), s(2, "1234")])),
            ]),
        ),
    ]);
    let ev = pb::proto::Event::decode(cat(&[vint(1, 1), ld(54, &rule)]).as_slice()).unwrap();
    match event_from_pb(ev).unwrap() {
        Some(WatchEvent::PutAccessMonitoringRule(r)) => {
            assert_eq!(r.name, "rule-1");
            assert_eq!(r.subjects, ["access_request"]);
            assert_eq!(r.notification_name.as_deref(), Some("discord"));
            assert_eq!(r.recipients, ["1234"]);
        }
        other => panic!("{other:?}"),
    }
    // An event for an unrelated kind (e.g. oneof 3) is ignored, not an error.
    let ev = pb::proto::Event::decode(cat(&[vint(1, 1), ld(3, &s(1, "x"))]).as_slice()).unwrap();
    assert_eq!(event_from_pb(ev).unwrap(), None);
}

#[test]
fn bad_data_is_an_error_not_a_panic() {
    // PUT of a request without a name.
    let ev = pb::proto::Event::decode(cat(&[vint(1, 1), ld(14, &ld(5, &s(1, "bob")))]).as_slice())
        .unwrap();
    assert!(matches!(event_from_pb(ev), Err(TeleportError::BadData(_))));
    // Unknown state value.
    let bytes = cat(&[ld(4, &s(1, "r")), ld(5, &cat(&[s(1, "bob"), vint(3, 77)]))]);
    let r = pb::types::AccessRequestV3::decode(bytes.as_slice()).unwrap();
    assert!(matches!(
        AccessRequest::try_from(r),
        Err(TeleportError::BadData(_))
    ));
}

#[test]
fn ping_response_decodes_and_skips_old_fields() {
    let features = cat(&[vint(7, 1), vint(6, 1), ld(21, &vint(1, 10))]);
    let bytes = cat(&[
        s(1, "example.com"),
        s(2, "18.2.1"),
        ld(3, &features),
        s(4, "proxy.example.com:443"),
        vint(5, 0),
    ]);
    let p = pb::proto::PingResponse::decode(bytes.as_slice()).unwrap();
    assert_eq!(p.cluster_name, "example.com");
    assert_eq!(p.server_version, "18.2.1");
    assert_eq!(p.proxy_public_addr, "proxy.example.com:443");
    assert!(p.server_features.unwrap().advanced_access_workflows);
}

#[test]
fn plugin_data_messages_match_the_tables() {
    // UpdatePluginData params as Go would send them (map value written even when empty).
    let set_entry = cat(&[s(1, "channel"), s(2, "42")]);
    let expect_entry = cat(&[s(1, "channel"), s(2, "")]);
    let bytes = cat(&[
        s(1, "access_request"),
        s(2, "req-1"),
        s(3, "discord"),
        ld(4, &set_entry),
        ld(5, &expect_entry),
    ]);
    let p = pb::types::PluginDataUpdateParams::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        (p.kind.as_str(), p.resource.as_str(), p.plugin.as_str()),
        ("access_request", "req-1", "discord")
    );
    assert_eq!(p.set.get("channel").map(String::as_str), Some("42"));
    assert_eq!(p.expect.get("channel").map(String::as_str), Some(""));

    let data = ld(1, &cat(&[s(1, "k"), s(2, "v")]));
    let entries = ld(1, &cat(&[s(1, "discord"), ld(2, &data)]));
    let pd = cat(&[
        s(1, "plugin_data"),
        s(2, "access_request"),
        s(3, "v3"),
        ld(4, &s(1, "req-1")),
        ld(5, &entries),
    ]);
    let seq = pb::proto::PluginDataSeq::decode(ld(1, &pd).as_slice()).unwrap();
    let spec = seq.plugin_data[0].spec.clone().unwrap();
    assert_eq!(spec.entries["discord"].data["k"], "v");
    // And the filter we send.
    let f = pb::types::PluginDataFilter {
        kind: "access_request".into(),
        resource: "req-1".into(),
        plugin: "discord".into(),
    };
    assert_eq!(
        f.encode_to_vec(),
        cat(&[s(1, "access_request"), s(2, "req-1"), s(3, "discord")])
    );
}

#[test]
fn requests_we_send_have_the_documented_bytes() {
    let w = pb::proto::Watch {
        kinds: vec![pb::types::WatchKind {
            kind: "access_request".into(),
            ..Default::default()
        }],
        allow_partial_success: true,
    };
    assert_eq!(
        w.encode_to_vec(),
        cat(&[ld(1, &s(1, "access_request")), vint(2, 1)])
    );

    let sub = pb::types::AccessReviewSubmission {
        request_id: "req-1".into(),
        review: Some(pb::types::AccessReview {
            author: "access-plugin".into(),
            proposed_state: pb::types::RequestState::Denied as i32,
            reason: "no".into(),
            ..Default::default()
        }),
    };
    // Created is omitted so the server sets "now".
    assert_eq!(
        sub.encode_to_vec(),
        cat(&[
            s(1, "req-1"),
            ld(2, &cat(&[s(1, "access-plugin"), vint(3, 3), s(4, "no")]))
        ])
    );

    let l = pb::proto::ListAccessRequestsRequest {
        filter: Some(pb::types::AccessRequestFilter {
            state: 1,
            ..Default::default()
        }),
        limit: 500,
        start_key: "k".into(),
        ..Default::default()
    };
    assert_eq!(
        l.encode_to_vec(),
        cat(&[ld(1, &vint(3, 1)), vint(4, 500), s(5, "k")])
    );
    let resp = pb::proto::ListAccessRequestsResponse::decode(
        cat(&[ld(1, &request_bytes()), s(2, "next")]).as_slice(),
    )
    .unwrap();
    assert_eq!(resp.next_key, "next");
    assert_eq!(resp.access_requests.len(), 1);

    assert_eq!(
        pb::proto::GetRoleRequest { name: "dev".into() }.encode_to_vec(),
        s(1, "dev")
    );
}

#[test]
fn role_decodes_request_and_review_conditions() {
    let request = cat(&[s(1, "admin"), s(5, "alice")]);
    let allow = cat(&[ld(6, &request), ld(15, &s(1, "dev"))]);
    let bytes = cat(&[
        s(1, "role"),
        s(3, "v7"),
        ld(4, &s(1, "dev")),
        ld(5, &ld(2, &allow)),
    ]);
    let r = pb::types::RoleV6::decode(bytes.as_slice()).unwrap();
    let allow = r.spec.unwrap().allow.unwrap();
    assert_eq!(allow.request.unwrap().suggested_reviewers, ["alice"]);
    assert_eq!(allow.review_requests.unwrap().roles, ["dev"]);
}

// ---- versions, env, classification -------------------------------------------------

#[test]
fn min_version_check_follows_semver() {
    assert!(version_at_least("18.2.0", MIN_SERVER_VERSION));
    assert!(version_at_least("6.1.0", MIN_SERVER_VERSION));
    assert!(version_at_least("6.1.0-beta.1", MIN_SERVER_VERSION));
    assert!(version_at_least("6.1.0-beta.2", MIN_SERVER_VERSION));
    assert!(version_at_least("v7.0.0+build", MIN_SERVER_VERSION));
    assert!(!version_at_least("6.1.0-alpha.9", MIN_SERVER_VERSION));
    assert!(!version_at_least("6.0.9", MIN_SERVER_VERSION));
    assert!(!version_at_least("5.99.99", MIN_SERVER_VERSION));
    assert!(!version_at_least("garbage", MIN_SERVER_VERSION));
}

#[test]
fn statuses_map_to_typed_errors_and_classes() {
    let e = TeleportError::from_status(
        "UpdatePluginData",
        &tonic::Status::failed_precondition("expectations not met for field \"k\""),
    );
    assert!(matches!(e, TeleportError::CompareFailed(_)));
    let e = TeleportError::from_status(
        "SubmitAccessReview",
        &tonic::Status::permission_denied("user \"a\" has already reviewed this request"),
    );
    assert!(matches!(e, TeleportError::AlreadyReviewed(_)));
    assert_eq!(classify_code(tonic::Code::Unavailable), ErrorClass::Retry);
    assert_eq!(
        classify_code(tonic::Code::Unauthenticated),
        ErrorClass::Credentials
    );
    assert_eq!(
        classify_code(tonic::Code::InvalidArgument),
        ErrorClass::Fatal
    );
    assert_eq!(
        TeleportError::StreamClosed("EOF".into()).class(),
        ErrorClass::Retry
    );
}

#[test]
fn routing_alpn_encodes_the_cluster_in_hex() {
    assert_eq!(
        tls::auth_routing_alpn("example.com"),
        "teleport-auth@6578616d706c652e636f6d.teleport.cluster.local"
    );
    assert_eq!(
        teleport_discord_testkit::teleport::proxy::cluster_from_routing_alpn(
            &tls::auth_routing_alpn("a.b")
        )
        .as_deref(),
        Some("a.b")
    );
    assert_eq!(tls::alpn_protocols(false, "x"), vec![b"h2".to_vec()]);
    assert_eq!(tls::alpn_protocols(true, "x")[1], b"h2".to_vec());
    assert_eq!(
        client::Mode::choose(crate::config::ConnectVia::Auto, 3025),
        client::Mode::Auth
    );
    assert_eq!(
        client::Mode::choose(crate::config::ConnectVia::Auto, 443),
        client::Mode::Proxy
    );
    assert_eq!(
        client::Mode::choose(crate::config::ConnectVia::Auth, 443),
        client::Mode::Auth
    );
}

// ---- credentials ---------------------------------------------------------------------

fn pki() -> Pki {
    Pki::new("example.com").unwrap()
}

fn valid(p: &mut Pki) -> teleport_discord_testkit::teleport::pki::IssuedCert {
    let now = SystemTime::now();
    p.issue_client(
        "access-plugin",
        &[],
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    )
    .unwrap()
}

const PATH: &str = "/etc/teleport/identity";

#[test]
fn identity_file_parses_with_layout_variations() {
    let mut p = pki();
    let c = valid(&mut p);
    let text = identity_file(&c, "example.com", &[p.ca_pem()]);
    let id = parse_identity_file(&text, Path::new(PATH), SystemTime::now()).unwrap();
    assert_eq!(id.username, "access-plugin");
    assert_eq!(id.cluster_name, "example.com");
    assert_eq!(id.cas().len(), 1);
    assert!(id.warnings.is_empty(), "{:?}", id.warnings);
    assert!(
        !format!("{id:?}").contains("PRIVATE"),
        "Debug must not show the key"
    );

    // CRLF, indentation, blank lines, no SSH lines, two CAs.
    let other = Pki::new("leaf.example.com").unwrap();
    let varied = format!(
        "\r\n{}\r\n\r\n  {}\n{}{}",
        c.key_pem.replace('\n', "\r\n"),
        c.cert_pem.replace('\n', "\n  "),
        p.ca_pem(),
        other.ca_pem()
    );
    let id = parse_identity_file(&varied, Path::new(PATH), SystemTime::now()).unwrap();
    assert_eq!(id.cas().len(), 2);
}

#[test]
fn rsa_and_ec_keys_in_every_encoding_are_accepted() {
    let mut p = pki();
    let now = SystemTime::now();
    for (pkcs8, other) in [
        (
            include_str!("testdata/rsa_pkcs8.pem"),
            include_str!("testdata/rsa_pkcs1.pem"),
        ),
        (
            include_str!("testdata/ec_pkcs8.pem"),
            include_str!("testdata/ec_sec1.pem"),
        ),
    ] {
        let c = p
            .issue_client_with_key(
                "bot",
                pkcs8,
                now - Duration::from_secs(60),
                now + Duration::from_secs(600),
            )
            .unwrap();
        for key in [pkcs8, other] {
            let mut cc = c.clone();
            cc.key_pem = key.to_owned();
            let text = identity_file(&cc, "example.com", &[p.ca_pem()]);
            let id = parse_identity_file(&text, Path::new(PATH), now).unwrap();
            assert_eq!(id.username, "bot");
        }
    }
}

#[test]
fn malformed_identity_files_name_the_file_and_the_problem() {
    let mut p = pki();
    let c = valid(&mut p);
    let now = SystemTime::now();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no PEM blocks"),
        (c.key_pem.clone(), "no TLS certificate block"),
        (format!("{}{}", c.key_pem, c.cert_pem), "no CA certificate"),
        (
            format!(
                "{}{}",
                c.key_pem,
                c.cert_pem.replace("-----END CERTIFICATE-----", "")
            ),
            "has no -----END line",
        ),
        (
            format!("{}{}{}", c.cert_pem, c.cert_pem, p.ca_pem()),
            "expected a private key block first",
        ),
        (
            format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n{}{}",
                c.cert_pem,
                p.ca_pem()
            ),
            "not supported",
        ),
        (
            format!(
                "{}-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n{}",
                c.key_pem,
                p.ca_pem()
            ),
            "TLS certificate",
        ),
    ];
    for (text, want) in cases {
        let e = parse_identity_file(&text, Path::new(PATH), now).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, TeleportError::CredentialsMalformed { .. }),
            "{msg}"
        );
        assert!(msg.contains(PATH), "{msg}");
        assert!(msg.contains(want), "want {want:?} in {msg}");
    }
}

#[test]
fn key_not_matching_the_certificate_is_refused() {
    let mut p = pki();
    let a = valid(&mut p);
    let b = valid(&mut p);
    let mut mixed = a;
    mixed.key_pem = b.key_pem;
    let e = parse_identity_file(
        &identity_file(&mixed, "example.com", &[p.ca_pem()]),
        Path::new(PATH),
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(matches!(e, TeleportError::KeyMismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[test]
fn expired_certificate_is_refused_with_upstreams_advice() {
    let mut p = pki();
    let now = SystemTime::now();
    let c = p
        .issue_client(
            "access-plugin",
            &[],
            now - Duration::from_secs(7200),
            now - Duration::from_secs(3600),
        )
        .unwrap();
    let e = parse_identity_file(
        &identity_file(&c, "example.com", &[p.ca_pem()]),
        Path::new(PATH),
        now,
    )
    .unwrap_err();
    assert!(matches!(e, TeleportError::CredentialsExpired { .. }), "{e}");
    assert!(e.to_string().starts_with(EXPIRED_ADVICE), "{e}");
    assert!(e.to_string().contains(PATH), "{e}");
}

#[test]
fn some_expired_cas_only_warn() {
    let mut p = pki();
    let c = valid(&mut p);
    let now = SystemTime::now();
    let old = Pki::with_validity(
        "old.example.com",
        now - Duration::from_secs(7200),
        now - Duration::from_secs(3600),
    )
    .unwrap();
    let id = parse_identity_file(
        &identity_file(&c, "example.com", &[p.ca_pem(), old.ca_pem()]),
        Path::new(PATH),
        now,
    )
    .unwrap();
    assert!(
        id.warnings
            .iter()
            .any(|w| w.contains("old.example.com") && w.contains("expired")),
        "{:?}",
        id.warnings
    );
    assert!(
        id.warnings
            .iter()
            .any(|w| w.contains("At least one non-expired credential"))
    );
}

#[test]
fn triple_parses_and_names_the_bad_file() {
    let mut p = pki();
    let c = valid(&mut p);
    let now = SystemTime::now();
    let (k, cr, ca) = (
        Path::new("/x/auth.key"),
        Path::new("/x/auth.crt"),
        Path::new("/x/auth.cas"),
    );
    let id = parse_triple((&c.key_pem, k), (&c.cert_pem, cr), (&p.ca_pem(), ca), now).unwrap();
    assert_eq!(id.username, "access-plugin");
    let e = parse_triple(
        (&c.key_pem, k),
        (&c.cert_pem, cr),
        ("nothing here", ca),
        now,
    )
    .unwrap_err();
    assert!(e.to_string().contains("/x/auth.cas"), "{e}");
    let other = valid(&mut p);
    let e = parse_triple(
        (&other.key_pem, k),
        (&c.cert_pem, cr),
        (&p.ca_pem(), ca),
        now,
    )
    .unwrap_err();
    assert!(matches!(e, TeleportError::KeyMismatch { .. }));
    assert!(
        e.to_string().contains("/x/auth.key") && e.to_string().contains("/x/auth.crt"),
        "{e}"
    );
}

#[test]
fn missing_and_world_readable_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity");
    let e = CredentialSource::IdentityFile(path.clone())
        .load()
        .unwrap_err();
    assert!(matches!(e, TeleportError::CredentialsRead { .. }));
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");

    let mut p = pki();
    let c = valid(&mut p);
    std::fs::write(&path, identity_file(&c, "example.com", &[p.ca_pem()])).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let id = CredentialSource::IdentityFile(path.clone()).load().unwrap();
    assert!(
        id.warnings.iter().any(|w| w.contains("world-readable")),
        "{:?}",
        id.warnings
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let id = CredentialSource::IdentityFile(path).load().unwrap();
    assert!(id.warnings.is_empty(), "{:?}", id.warnings);
}

#[test]
fn tls_config_uses_only_cluster_cas_and_right_alpn() {
    let mut p = pki();
    let c = valid(&mut p);
    let id = parse_identity_file(
        &identity_file(&c, "example.com", &[p.ca_pem()]),
        Path::new(PATH),
        SystemTime::now(),
    )
    .unwrap();
    let direct = tls::client_config(&id, false).unwrap();
    assert_eq!(direct.alpn_protocols, vec![b"h2".to_vec()]);
    let routed = tls::client_config(&id, true).unwrap();
    assert_eq!(
        routed.alpn_protocols[0],
        b"teleport-auth@6578616d706c652e636f6d.teleport.cluster.local".to_vec()
    );
    assert!(direct.client_auth_cert_resolver.has_certs());
}

#[test]
fn all_cas_expired_is_refused() {
    let now = SystemTime::now();
    let mut old = Pki::with_validity(
        "example.com",
        now - Duration::from_secs(7200),
        now - Duration::from_secs(3600),
    )
    .unwrap();
    let c = valid(&mut old);
    let e = parse_identity_file(
        &identity_file(&c, "example.com", &[old.ca_pem()]),
        Path::new(PATH),
        now,
    )
    .unwrap_err();
    assert!(matches!(e, TeleportError::CredentialsExpired { .. }), "{e}");
    assert!(
        e.to_string().contains("every CA certificate has expired"),
        "{e}"
    );
}

// ---- property tests (the stable twin of fuzz/fuzz_targets/identity.rs) -----------------

/// One valid identity file, made once.
fn valid_identity_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let mut p = pki();
        let c = valid(&mut p);
        identity_file(&c, "example.com", &[p.ca_pem()])
    })
}

/// A parse result is either an identity whose `Debug` hides the key, or an
/// error that names the file and echoes no line of key material.
fn check_identity_outcome(
    r: Result<Identity, TeleportError>,
    text: &str,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    match r {
        Ok(id) => {
            let shown = format!("{id:?}");
            prop_assert!(!shown.contains("PRIVATE"), "Debug shows the key: {}", shown);
            prop_assert!(!id.cas().is_empty() && !id.cert_chain().is_empty());
        }
        Err(e) => {
            let m = e.to_string();
            prop_assert!(m.contains(PATH), "error without the file: {}", m);
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| l.len() >= 40 && !l.starts_with("-----"))
            {
                prop_assert!(!m.contains(line), "error echoes {:?}: {}", line, m);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Duplicate(usize),
    Swap(usize),
    Replace(usize, String),
    Insert(usize, String),
    Truncate(usize, usize),
    FlipByte(usize, usize),
}

fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
    use proptest::prelude::*;
    let garbage = prop_oneof![
        proptest::sample::select(vec![
            "-----BEGIN CERTIFICATE-----",
            "-----END CERTIFICATE-----",
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "-----END PRIVATE KEY-----",
            "-----BEGIN",
            "-----END",
            "ssh-ed25519-cert-v01@openssh.com AAAA",
            "@cert-authority *.example.com ssh-rsa AAAA",
            "",
            "====",
            "AAAA",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9+/=]{0,80}",
        "\\PC{0,40}",
    ];
    let i = 0usize..64;
    prop_oneof![
        i.clone().prop_map(Edit::Delete),
        i.clone().prop_map(Edit::Duplicate),
        i.clone().prop_map(Edit::Swap),
        (i.clone(), garbage.clone()).prop_map(|(i, g)| Edit::Replace(i, g)),
        (i.clone(), garbage).prop_map(|(i, g)| Edit::Insert(i, g)),
        (i.clone(), 0usize..80).prop_map(|(i, n)| Edit::Truncate(i, n)),
        (i, 0usize..80).prop_map(|(i, n)| Edit::FlipByte(i, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        let at = |i: &usize| i % lines.len();
        match e {
            Edit::Delete(i) => {
                lines.remove(at(i));
            }
            Edit::Duplicate(i) => {
                let l = lines[at(i)].clone();
                lines.insert(at(i), l);
            }
            Edit::Swap(i) => {
                let (a, b) = (at(i), (at(i) + 1) % lines.len());
                lines.swap(a, b);
            }
            Edit::Replace(i, g) => {
                let a = at(i);
                lines[a] = g.clone();
            }
            Edit::Insert(i, g) => lines.insert(at(i), g.clone()),
            Edit::Truncate(i, n) => {
                let a = at(i);
                let cut = lines[a]
                    .char_indices()
                    .nth(*n)
                    .map_or(lines[a].len(), |(b, _)| b);
                lines[a].truncate(cut);
            }
            Edit::FlipByte(i, n) => {
                let a = at(i);
                let mut bytes = lines[a].clone().into_bytes();
                if !bytes.is_empty() {
                    let k = n % bytes.len();
                    bytes[k] = match bytes[k] {
                        b'A' => b'B',
                        b'=' => b'A',
                        _ => b'=',
                    };
                }
                lines[a] = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
    }
    lines.join("\n")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn edited_identity_files_parse_or_name_the_file(
        edits in proptest::collection::vec(edit(), 0..6),
        years in 0u64..200,
    ) {
        let text = apply(valid_identity_text(), &edits);
        let now = UNIX_EPOCH + Duration::from_secs(years * 365 * 86_400);
        check_identity_outcome(parse_identity_file(&text, Path::new(PATH), now), &text)?;
        check_identity_outcome(parse_identity_file(&text, Path::new(PATH), SystemTime::now()), &text)?;
    }

    #[test]
    fn any_text_is_not_an_identity_panic(text in "\\PC{0,400}") {
        check_identity_outcome(parse_identity_file(&text, Path::new(PATH), SystemTime::now()), &text)?;
    }

    #[test]
    fn edited_triples_parse_or_name_the_file(
        edits in proptest::collection::vec(edit(), 0..4),
        which in 0usize..3,
    ) {
        let text = valid_identity_text();
        let blocks: Vec<&str> = text.split_inclusive("-----\n").collect();
        // key = blocks[0..2], cert = blocks[2..4], CA = the rest (BEGIN/END pairs).
        let mut parts = [
            blocks.iter().take(2).copied().collect::<String>(),
            blocks.iter().skip(2).take(2).copied().collect::<String>(),
            blocks.iter().skip(4).copied().collect::<String>(),
        ];
        parts[which] = apply(&parts[which], &edits);
        let r = parse_triple(
            (&parts[0], Path::new("/k")),
            (&parts[1], Path::new("/c")),
            (&parts[2], Path::new("/a")),
            SystemTime::now(),
        );
        if let Err(e) = r {
            let m = e.to_string();
            proptest::prop_assert!(m.contains("/k") || m.contains("/c") || m.contains("/a"), "{}", m);
        }
    }
}

/// Found by the `identity` fuzz target: a `-----BEGIN` line that runs on into
/// other text (an identity file whose line breaks were lost, e.g. pasted
/// into a secret store) was quoted whole in the error, so the base64 private
/// key reached error messages and logs. Only a plausible label is quoted now.
#[test]
fn errors_never_quote_a_run_on_begin_line() {
    let mut p = pki();
    let c = valid(&mut p);
    let key_body: Vec<&str> = c
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let one_line_key = format!(
        "-----BEGIN PRIVATE KEY-----{}-----END PRIVATE KEY-----",
        key_body.concat()
    );
    let cases = [
        // The whole key on one line.
        format!("{one_line_key}\n{}{}", c.cert_pem, p.ca_pem()),
        // The same, unterminated.
        format!("-----BEGIN PRIVATE KEY-----{}\n", key_body.concat()),
        // A key block whose BEGIN line was glued to the key.
        format!(
            "-----BEGIN {}\n{}\n-----END PRIVATE KEY-----\n{}{}",
            key_body[0],
            key_body[1..].join("\n"),
            c.cert_pem,
            p.ca_pem()
        ),
        // A valid key block, then a certificate "block" that is the key again.
        format!("{}{one_line_key}\n{}", c.key_pem, p.ca_pem()),
        // A stray BEGIN line with key material inside the key block.
        format!(
            "-----BEGIN PRIVATE KEY-----\n-----BEGIN {}\n-----END PRIVATE KEY-----\n{}{}",
            key_body.concat(),
            c.cert_pem,
            p.ca_pem()
        ),
    ];
    for text in &cases {
        let e =
            parse_identity_file(text, Path::new(PATH), SystemTime::now()).expect_err("malformed");
        let m = e.to_string();
        assert!(m.contains(PATH), "{m}");
        for line in &key_body {
            assert!(
                !m.contains(&line[..line.len().min(24)]),
                "key material in: {m}"
            );
        }
    }
    let e = parse_identity_file(
        "-----BEGIN FOO BAR-----\nx\n-----END FOO BAR-----\n",
        Path::new(PATH),
        SystemTime::now(),
    )
    .expect_err("not a key");
    assert!(e.to_string().contains("found \"FOO BAR\""), "{e}");
}
