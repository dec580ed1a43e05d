//! Teleport client against the in-crate emulator over real loopback mutual
//! TLS: direct and through the emulated TLS-routing Proxy, identity file and
//! triple, plugin-data CAS, reviews, the supervised watch (drops, outages,
//! init timeouts, fail-fast, identity rotation), and the connectivity check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use teleport_discord::backoff::Backoff;
use teleport_discord::readiness::Readiness;
use teleport_discord::teleport::check::check_with;
use teleport_discord::teleport::client::ReviewInput;
use teleport_discord::teleport::watch::Watcher;
use teleport_discord::teleport::{
    Client, ConnectOptions, CredentialSource, Mode, RequestState, TeleportError, WatchConfig,
    WatchEvent, WatchMetrics,
};
use teleport_discord_testkit::teleport::proxy::EmulatedProxy;
use teleport_discord_testkit::teleport::{EmulatorOptions, Permissions, TeleportEmulator};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

struct Env {
    emu: TeleportEmulator,
    _dir: tempfile::TempDir,
}

async fn env_with(f: impl FnOnce(&mut EmulatorOptions)) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = EmulatorOptions::new(dir.path());
    f(&mut opts);
    let emu = TeleportEmulator::start(opts).await.expect("emulator");
    Env { emu, _dir: dir }
}

async fn env() -> Env {
    env_with(|_| {}).await
}

impl Env {
    fn identity(&self) -> CredentialSource {
        CredentialSource::IdentityFile(self.emu.paths().identity.clone())
    }
    fn opts(&self) -> ConnectOptions {
        let mut o = ConnectOptions::new(self.emu.addr().to_string(), Mode::Auth);
        o.connect_timeout = Duration::from_secs(3);
        o.call_timeout = Duration::from_secs(3);
        o
    }
    async fn client(&self) -> Client {
        Client::connect(
            &self.opts(),
            Arc::new(self.identity().load().expect("identity")),
        )
        .await
        .expect("connect")
    }
}

fn fast_watch() -> WatchConfig {
    WatchConfig {
        init_timeout: Duration::from_secs(2),
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
        ..WatchConfig::default()
    }
}

async fn recv(rx: &mut mpsc::Receiver<WatchEvent>) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an event within 5 s")
        .expect("channel open")
}

/// Next event that is not Init/Snapshot.
async fn recv_change(rx: &mut mpsc::Receiver<WatchEvent>) -> WatchEvent {
    loop {
        match recv(rx).await {
            WatchEvent::Init { .. } | WatchEvent::Snapshot(_) => {}
            ev => return ev,
        }
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn direct_identity_file_ping_reviews_and_roles() {
    let env = env().await;
    let c = env.client().await;
    let ping = c.ping().await.expect("ping");
    assert_eq!(ping.cluster_name, "emulated.example.com");
    assert_eq!(ping.server_version, "18.11.0");
    assert_eq!(ping.web_proxy_addr(), Some("teleport.example.com:443"));
    assert_eq!(c.identity().username, "access-plugin");

    let id = env.emu.create_request("bob", &["editor"], "need it");
    let list = c.list_access_requests(None).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].state, RequestState::Pending);
    assert_eq!(list[0].request_reason, "need it");

    let approve = ReviewInput {
        author: None,
        on_behalf: false,
        proposed_state: RequestState::Approved,
        reason: "ok by the bot".into(),
    };
    let r = c
        .submit_access_review(&id, approve.clone())
        .await
        .expect("review");
    assert_eq!(
        r.state,
        RequestState::Approved,
        "one approval meets the default threshold"
    );
    assert_eq!(r.resolve_reason, "ok by the bot");
    assert_eq!(
        r.reviews[0].author, "access-plugin",
        "empty author means the caller"
    );
    assert!(r.reviews[0].created.is_some());

    let id2 = env.emu.create_request("bob", &["editor"], "");
    let e = c
        .submit_access_review(
            &id2,
            ReviewInput {
                author: Some("alice".into()),
                ..approve.clone()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, TeleportError::PermissionDenied(ref m) if m.contains("on behalf of")),
        "{e}"
    );
    env.emu
        .add_review(&id2, "carol", true, "")
        .expect("human review");
    let e = c
        .submit_access_review(&id2, approve.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(e, TeleportError::PermissionDenied(ref m) if m.contains("already approved")),
        "{e}"
    );
    let e = c
        .submit_access_review("missing", approve)
        .await
        .unwrap_err();
    assert!(matches!(e, TeleportError::NotFound(_)), "{e}");

    env.emu.put_role("dev", &["admin"], &["alice"]);
    let role = c.get_role("dev").await.expect("role");
    assert_eq!(role.request_roles, ["admin"]);
    assert_eq!(role.suggested_reviewers, ["alice"]);
    assert!(matches!(
        c.get_role("nope").await,
        Err(TeleportError::NotFound(_))
    ));

    env.emu.put_rule("r1", "discord", &["123"], "true");
    env.emu.put_rule("r2", "slack", &["x"], "true");
    let rules = c
        .list_access_monitoring_rules("discord")
        .await
        .expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].recipients, ["123"]);
}

#[tokio::test]
async fn repeated_review_by_the_same_author_is_typed() {
    let env = env_with(|_| {}).await;
    let c = env.client().await;
    let id = env.emu.create_request("bob", &["editor"], "");
    // Two approvals needed.
    let mut req = env.emu.request(&id).expect("stored");
    req.spec.as_mut().expect("spec").thresholds[0].approve = 2;
    env.emu.put_raw_request(req);
    let review = ReviewInput {
        author: None,
        on_behalf: false,
        proposed_state: RequestState::Approved,
        reason: String::new(),
    };
    let r = c
        .submit_access_review(&id, review.clone())
        .await
        .expect("first");
    assert_eq!(r.state, RequestState::Pending);
    let e = c.submit_access_review(&id, review).await.unwrap_err();
    assert!(matches!(e, TeleportError::AlreadyReviewed(_)), "{e}");
}

#[tokio::test]
async fn plugin_data_compare_and_swap_rules() {
    let env = env().await;
    let c = env.client().await;
    let id = env.emu.create_request("bob", &["editor"], "");
    let m = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>()
    };

    assert_eq!(c.get_plugin_data("discord", &id).await.expect("get"), None);
    // Missing entry reads as "" for Expect.
    c.update_plugin_data("discord", &id, m(&[("msg", "1")]), m(&[("msg", "")]))
        .await
        .expect("create");
    assert_eq!(
        c.get_plugin_data("discord", &id).await.expect("get"),
        Some(m(&[("msg", "1")]))
    );
    // Mismatch is a typed CompareFailed.
    let e = c
        .update_plugin_data("discord", &id, m(&[("msg", "2")]), m(&[("msg", "")]))
        .await
        .unwrap_err();
    assert!(matches!(e, TeleportError::CompareFailed(_)), "{e}");
    // Partial expectation and unconditional update.
    c.update_plugin_data("discord", &id, m(&[("n", "5")]), m(&[("msg", "1")]))
        .await
        .expect("partial");
    c.update_plugin_data("discord", &id, m(&[("msg", "3")]), BTreeMap::new())
        .await
        .expect("unconditional");
    assert_eq!(
        env.emu.plugin_data(&id, "discord"),
        Some(m(&[("msg", "3"), ("n", "5")]))
    );
    // Empty Set values delete keys; an empty entry disappears.
    c.update_plugin_data(
        "discord",
        &id,
        m(&[("msg", ""), ("n", "")]),
        BTreeMap::new(),
    )
    .await
    .expect("delete");
    assert_eq!(c.get_plugin_data("discord", &id).await.expect("get"), None);
    // Plugin data for a request that does not exist.
    let e = c
        .update_plugin_data("discord", "nope", m(&[("a", "b")]), BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(e, TeleportError::NotFound(_)), "{e}");
}

#[tokio::test]
async fn cas_conflict_between_two_clients() {
    let env = env().await;
    let (a, b) = (env.client().await, env.client().await);
    let id = env.emu.create_request("bob", &["editor"], "");
    let set = |v: &str| BTreeMap::from([("owner".to_owned(), v.to_owned())]);
    let expect_absent = BTreeMap::from([("owner".to_owned(), String::new())]);
    let (ra, rb) = tokio::join!(
        a.update_plugin_data("discord", &id, set("a"), expect_absent.clone()),
        b.update_plugin_data("discord", &id, set("b"), expect_absent.clone()),
    );
    let outcomes = [ra.is_ok(), rb.is_ok()];
    assert_eq!(
        outcomes.iter().filter(|x| **x).count(),
        1,
        "exactly one writer wins: {ra:?} {rb:?}"
    );
    let loser = if ra.is_ok() { rb } else { ra };
    assert!(
        matches!(loser, Err(TeleportError::CompareFailed(_))),
        "{loser:?}"
    );
    let winner = if outcomes[0] { "a" } else { "b" };
    assert_eq!(env.emu.plugin_data(&id, "discord"), Some(set(winner)));
}

#[tokio::test]
async fn tls_triple_and_list_paging_with_fallback() {
    let env = env().await;
    let p = env.emu.paths().clone();
    let source = CredentialSource::KeyPair {
        key: p.key,
        cert: p.cert,
        root_cas: p.cas,
    };
    let c = Client::connect(&env.opts(), Arc::new(source.load().expect("triple")))
        .await
        .expect("connect");
    for i in 0..5 {
        env.emu.create_request(&format!("user{i}"), &["r"], "");
    }
    env.emu.set_max_page(Some(2));
    assert_eq!(c.list_access_requests(None).await.expect("paged").len(), 5);
    assert_eq!(env.emu.calls("ListAccessRequests"), 3, "2 + 2 + 1");
    env.emu.set_list_unimplemented(true);
    assert_eq!(
        c.list_access_requests(None).await.expect("fallback").len(),
        5
    );
    assert_eq!(env.emu.calls("GetAccessRequestsV2"), 1);
}

#[tokio::test]
async fn through_the_tls_routing_proxy() {
    let env = env().await;
    let proxy = EmulatedProxy::start(env.emu.addr(), env.emu.cluster_name())
        .await
        .expect("proxy");
    let mut opts = ConnectOptions::new(proxy.addr().to_string(), Mode::Proxy);
    opts.connect_timeout = Duration::from_secs(3);
    let id = Arc::new(env.identity().load().expect("identity"));
    let c = Client::connect(&opts, id.clone())
        .await
        .expect("connect via proxy");
    assert_eq!(
        c.ping().await.expect("ping").cluster_name,
        "emulated.example.com"
    );
    assert!(proxy.routed() >= 1);

    // Without the routing ALPN the Proxy does not forward to Auth.
    opts.mode = Mode::Auth;
    let e = Client::connect(&opts, id).await.unwrap_err();
    assert!(matches!(e, TeleportError::Connect { .. }), "{e}");
    eventually("the proxy refused the connection", || proxy.refused() >= 1).await;
}

#[tokio::test]
async fn credentials_from_another_cluster_are_refused() {
    let env = env().await;
    let other = env_with(|o| o.cluster_name = "other.example.com".into()).await;
    let e = Client::connect(
        &env.opts(),
        Arc::new(other.identity().load().expect("identity")),
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TeleportError::Connect { .. }), "{msg}");
    assert!(msg.contains("TLS handshake failed"), "{msg}");
}

#[tokio::test]
async fn old_servers_are_refused() {
    let env = env_with(|o| o.server_version = "6.0.3".into()).await;
    let e = env.client().await.ping().await.unwrap_err();
    assert_eq!(e.to_string(), "incompatible versions: 6.0.3 < 6.1.0-beta.1");
}

struct Running {
    rx: mpsc::Receiver<WatchEvent>,
    handle: teleport_discord::teleport::WatchHandle,
    readiness: Readiness,
    metrics: WatchMetrics,
    cancel: CancellationToken,
}

async fn start_watch(env: &Env, cfg: WatchConfig) -> Running {
    let readiness = Readiness::new();
    let metrics = WatchMetrics::default();
    let (tx, rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let handle = Watcher {
        opts: env.opts(),
        source: env.identity(),
        config: cfg,
        latch: readiness.register("teleport", "connecting"),
        metrics: metrics.clone(),
    }
    .start(tx, cancel.clone())
    .await
    .expect("watch starts");
    Running {
        rx,
        handle,
        readiness,
        metrics,
        cancel,
    }
}

#[tokio::test]
async fn watch_delivers_init_snapshot_and_changes() {
    let env = env().await;
    let before = env.emu.create_request("early", &["r"], "");
    let mut w = start_watch(&env, fast_watch()).await;
    assert_eq!(
        recv(&mut w.rx).await,
        WatchEvent::Init {
            confirmed_kinds: vec!["access_request".into(), "access_monitoring_rule".into()]
        }
    );
    match recv(&mut w.rx).await {
        WatchEvent::Snapshot(list) => assert_eq!(
            list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            [before.as_str()]
        ),
        other => panic!("{other:?}"),
    }
    assert!(w.readiness.is_ready());
    assert!(w.metrics.connected());

    let id = env.emu.create_request("bob", &["editor"], "please");
    match recv(&mut w.rx).await {
        WatchEvent::PutAccessRequest(r) => {
            assert_eq!(
                (r.id.as_str(), r.user.as_str(), r.state),
                (id.as_str(), "bob", RequestState::Pending)
            );
        }
        other => panic!("{other:?}"),
    }
    env.emu
        .add_review(&id, "alice", false, "no")
        .expect("review");
    match recv(&mut w.rx).await {
        WatchEvent::PutAccessRequest(r) => {
            assert_eq!(r.state, RequestState::Denied);
            assert_eq!(r.resolve_reason, "no");
            assert_eq!(r.reviews[0].author, "alice");
        }
        other => panic!("{other:?}"),
    }
    env.emu.delete_request(&id).expect("delete");
    assert_eq!(
        recv(&mut w.rx).await,
        WatchEvent::DeleteAccessRequest { id: id.clone() }
    );
    env.emu.put_rule("route-dev", "discord", &["42"], "true");
    assert!(
        matches!(recv(&mut w.rx).await, WatchEvent::PutAccessMonitoringRule(r) if r.name == "route-dev")
    );
    env.emu.delete_rule("route-dev");
    assert_eq!(
        recv(&mut w.rx).await,
        WatchEvent::DeleteAccessMonitoringRule {
            name: "route-dev".into()
        }
    );

    // The client handed out for calls works.
    assert_eq!(
        w.handle.client().ping().await.expect("ping").cluster_name,
        "emulated.example.com"
    );
    w.cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), w.handle.task)
        .await
        .expect("stops")
        .expect("join");
    assert!(r.is_ok(), "{r:?}");
}

#[tokio::test]
async fn watch_without_rule_permission_is_partial() {
    let env = env().await;
    env.emu.set_permissions(Permissions {
        write_plugin_data: true,
        read_access_monitoring_rules: false,
        ..Default::default()
    });
    let mut w = start_watch(&env, fast_watch()).await;
    assert_eq!(
        recv(&mut w.rx).await,
        WatchEvent::Init {
            confirmed_kinds: vec!["access_request".into()]
        }
    );
}

#[tokio::test]
async fn watch_reconnects_after_drops_and_outages_without_losing_requests() {
    let env = env().await;
    let mut w = start_watch(&env, fast_watch()).await;
    assert!(matches!(recv(&mut w.rx).await, WatchEvent::Init { .. }));

    // A clean EOF and an error status both reconnect.
    for with_error in [false, true] {
        env.emu.drop_watch_streams(with_error);
        loop {
            if let WatchEvent::Init { .. } = recv(&mut w.rx).await {
                break;
            }
        }
    }
    assert!(w.metrics.reconnects() >= 2);

    // An outage: readiness drops, the request created meanwhile shows up in the snapshot.
    env.emu.go_unavailable(Duration::from_millis(400));
    eventually("not ready during the outage", || !w.readiness.is_ready()).await;
    let missed = env.emu.create_request("during-outage", &["r"], "");
    // Normally the catch-up snapshot after the reconnect carries it; on a
    // starved machine the watch may already be back and see it as a PUT.
    loop {
        match recv(&mut w.rx).await {
            WatchEvent::Snapshot(list) if list.iter().any(|r| r.id == missed) => break,
            WatchEvent::PutAccessRequest(r) if r.id == missed => break,
            _ => {}
        }
    }
    eventually("ready again", || w.readiness.is_ready()).await;
    let after = env.emu.create_request("after", &["r"], "");
    assert!(
        matches!(recv_change(&mut w.rx).await, WatchEvent::PutAccessRequest(r) if r.id == after)
    );
}

#[tokio::test]
async fn watch_retries_when_init_does_not_come() {
    let env = env().await;
    env.emu.stall_init(true);
    let cfg = WatchConfig {
        init_timeout: Duration::from_millis(150),
        ..fast_watch()
    };
    let mut w = start_watch(&env, cfg).await;
    eventually("two init timeouts", || w.metrics.reconnects() >= 2).await;
    assert!(!w.readiness.is_ready());
    let reason = w.readiness.report().components["teleport"]
        .reason
        .clone()
        .unwrap_or_default();
    assert!(reason.contains("timed out"), "{reason}");
    env.emu.stall_init(false);
    assert!(matches!(recv(&mut w.rx).await, WatchEvent::Init { .. }));
    eventually("ready", || w.readiness.is_ready()).await;
}

#[tokio::test]
async fn fail_fast_ends_the_watch_with_an_error() {
    let env = env().await;
    let mut w = start_watch(
        &env,
        WatchConfig {
            fail_fast: true,
            ..fast_watch()
        },
    )
    .await;
    assert!(matches!(recv(&mut w.rx).await, WatchEvent::Init { .. }));
    env.emu.drop_watch_streams(false);
    let r = tokio::time::timeout(Duration::from_secs(5), w.handle.task)
        .await
        .expect("ends")
        .expect("join");
    let e = r.unwrap_err();
    assert!(matches!(e, TeleportError::FailFast(_)), "{e}");
    assert!(e.to_string().contains("Exiting as fail fast is on"), "{e}");
    assert!(!w.readiness.is_ready());
}

#[tokio::test]
async fn identity_rotation_moves_the_watch_without_missing_events() {
    let env = env().await;
    let cfg = WatchConfig {
        refresh_interval: Some(Duration::from_millis(100)),
        ..fast_watch()
    };
    let mut w = start_watch(&env, cfg).await;
    assert!(matches!(recv(&mut w.rx).await, WatchEvent::Init { .. }));
    let old_serial = env.emu.current_serial();
    assert_eq!(
        env.emu.watchers(),
        vec![("access-plugin".to_owned(), old_serial.clone())]
    );

    let new_serial = env.emu.rotate_client_cert().expect("rotate");
    let during = env.emu.create_request("during-rotation", &["r"], "");
    eventually("watch on the new certificate only", || {
        env.emu.watchers() == vec![("access-plugin".to_owned(), new_serial.clone())]
    })
    .await;
    assert_eq!(w.metrics.identity_reloads(), 1);
    let after = env.emu.create_request("after-rotation", &["r"], "");

    let mut seen = Vec::new();
    while !(seen.contains(&during) && seen.contains(&after)) {
        match recv(&mut w.rx).await {
            WatchEvent::PutAccessRequest(r) => seen.push(r.id),
            WatchEvent::Snapshot(list) => seen.extend(list.into_iter().map(|r| r.id)),
            _ => {}
        }
    }
    assert!(w.readiness.is_ready());
    // New connections with the old certificate are refused; the swapped client works.
    assert_eq!(w.handle.client().identity().serial, new_serial);
    w.handle
        .client()
        .ping()
        .await
        .expect("ping with the new certificate");
    let _ = SystemTime::now();
}

#[tokio::test]
async fn connectivity_check_reports_what_works() {
    let env = env().await;
    let r = check_with(&env.opts(), &env.identity())
        .await
        .expect("check");
    assert_eq!(r.cluster_name, "emulated.example.com");
    assert_eq!(r.server_version, "18.11.0");
    assert_eq!(r.username, "access-plugin");
    assert_eq!(
        r.watch,
        Ok(vec![
            "access_request".into(),
            "access_monitoring_rule".into()
        ])
    );
    assert_eq!(r.plugin_data_write, Ok(()));
    assert_eq!(env.emu.calls("UpdatePluginData"), 1);
    assert_eq!(r.semaphores, Ok(()));
    assert!(
        env.emu.leases().is_empty(),
        "the probe takes no lease: {:?}",
        env.emu.leases()
    );

    env.emu.set_permissions(Permissions {
        write_plugin_data: false,
        read_access_monitoring_rules: false,
        use_semaphores: false,
        ..Default::default()
    });
    let r = check_with(&env.opts(), &env.identity())
        .await
        .expect("check");
    assert_eq!(r.watch, Ok(vec!["access_request".into()]));
    assert!(
        r.plugin_data_write
            .as_ref()
            .is_err_and(|e| e.contains("access denied")),
        "{:?}",
        r.plugin_data_write
    );
    assert!(
        r.semaphores
            .as_ref()
            .is_err_and(|e| e.contains("semaphore")),
        "{:?}",
        r.semaphores
    );
    assert!(
        r.to_string()
            .contains("leader lease (semaphores): NOT ALLOWED"),
        "{r}"
    );
}

#[tokio::test]
async fn bad_data_from_teleport_is_counted_and_skipped() {
    let env = env().await;
    let mut w = start_watch(&env, fast_watch()).await;
    assert!(matches!(recv(&mut w.rx).await, WatchEvent::Init { .. }));
    assert!(matches!(recv(&mut w.rx).await, WatchEvent::Snapshot(_)));
    let id = env.emu.create_request("bob", &["r"], "");
    let _ = recv_change(&mut w.rx).await;
    let mut bad = env.emu.request(&id).expect("stored");
    bad.spec.as_mut().expect("spec").state = 77;
    env.emu.put_raw_request(bad);
    let good = env.emu.create_request("carol", &["r"], "");
    assert!(
        matches!(recv_change(&mut w.rx).await, WatchEvent::PutAccessRequest(r) if r.id == good)
    );
    assert_eq!(w.metrics.bad_events(), 1);
    assert!(w.readiness.is_ready(), "bad data does not break the watch");
}

#[tokio::test]
async fn rotated_credentials_are_reloaded_on_reconnect_without_refresh() {
    let env = env().await;
    let mut w = start_watch(&env, fast_watch()).await;
    assert!(matches!(recv(&mut w.rx).await, WatchEvent::Init { .. }));
    let new_serial = env.emu.rotate_client_cert().expect("rotate");
    env.emu.drop_watch_streams(true);
    eventually("reconnected with the new certificate", || {
        env.emu.watchers() == vec![("access-plugin".to_owned(), new_serial.clone())]
    })
    .await;
    assert_eq!(w.metrics.identity_reloads(), 1);
    assert_eq!(w.handle.client().identity().serial, new_serial);
}

#[tokio::test]
async fn expired_credentials_stop_the_start() {
    let env = env().await;
    let now = SystemTime::now();
    let cert = env
        .emu
        .issue_client_cert(
            "access-plugin",
            now - Duration::from_secs(7200),
            now - Duration::from_secs(60),
        )
        .expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("identity");
    std::fs::write(
        &path,
        teleport_discord_testkit::teleport::pki::identity_file(
            &cert,
            env.emu.cluster_name(),
            &[env.emu.ca_pem()],
        ),
    )
    .expect("write");
    let (tx, _rx) = mpsc::channel(1);
    let e = Watcher {
        opts: env.opts(),
        source: CredentialSource::IdentityFile(path),
        config: fast_watch(),
        latch: Readiness::new().register("teleport", "connecting"),
        metrics: WatchMetrics::default(),
    }
    .start(tx, CancellationToken::new())
    .await
    .unwrap_err();
    assert!(matches!(e, TeleportError::CredentialsExpired { .. }), "{e}");
    assert!(e.to_string().contains("please sign new credentials"), "{e}");
}

#[tokio::test]
async fn http_control_api_drives_the_emulator() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = env().await;
    let emu = Arc::new(env.emu);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = teleport_discord_testkit::teleport::control::router(emu.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{base}/requests"))
        .json(&serde_json::json!({"user": "bob", "roles": ["editor"], "reason": "demo"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let r = http
        .post(format!("{base}/requests/{id}/reviews"))
        .json(&serde_json::json!({"author": "alice", "approve": true, "reason": "fine"}))
        .send()
        .await
        .expect("review");
    assert_eq!(r.status(), 200);
    let list: serde_json::Value = http
        .get(format!("{base}/requests"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["state"], "APPROVED");
    assert_eq!(list[0]["resolve_reason"], "fine");
    let again = http
        .post(format!("{base}/requests/{id}/reviews"))
        .json(&serde_json::json!({"author": "carol", "approve": false}))
        .send()
        .await
        .expect("review");
    assert_eq!(again.status(), 409, "a resolved request takes no reviews");
    assert_eq!(
        http.delete(format!("{base}/requests/{id}"))
            .send()
            .await
            .expect("delete")
            .status(),
        200
    );
    assert_eq!(
        http.delete(format!("{base}/requests/{id}"))
            .send()
            .await
            .expect("delete")
            .status(),
        404
    );
}

#[tokio::test]
async fn emulator_applies_watch_filters_to_puts_only_and_rejects_unknown_keys() {
    use teleport_discord::teleport::pb;
    let env = env().await;
    let c = env.client().await;
    let kind = |filter: &[(&str, &str)]| pb::types::WatchKind {
        kind: "access_request".into(),
        filter: filter
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    };
    let e = c.watch_kinds(vec![kind(&[("search", "x")])], false).await;
    let e = match e {
        Err(e) => e,
        Ok(mut s) => match s.message().await {
            Err(status) => TeleportError::from_status("WatchEvents", &status),
            Ok(m) => panic!("expected an error, got {m:?}"),
        },
    };
    assert!(e.to_string().contains("unknown filter key search"), "{e}");

    let mut s = c
        .watch_kinds(vec![kind(&[("state", "PENDING")])], false)
        .await
        .expect("watch");
    let init = s.message().await.expect("init").expect("some");
    assert_eq!(init.r#type, pb::proto::Operation::Init as i32);
    let id = env.emu.create_request("bob", &["r"], "");
    env.emu.resolve(&id, true, "ok").expect("resolve"); // PUT APPROVED: filtered out
    env.emu.delete_request(&id).expect("delete"); // DELETE: never filtered
    let put = s.message().await.expect("put").expect("some");
    assert_eq!(put.r#type, pb::proto::Operation::Put as i32);
    let del = s.message().await.expect("delete").expect("some");
    assert_eq!(
        del.r#type,
        pb::proto::Operation::Delete as i32,
        "the APPROVED put was filtered"
    );
}

#[tokio::test]
async fn check_from_config_through_the_proxy() {
    use teleport_discord::config::{
        ConfigDuration, ConnectVia, Credentials, TeleportAddr, TeleportConfig,
    };
    let env = env().await;
    let proxy = EmulatedProxy::start(env.emu.addr(), env.emu.cluster_name())
        .await
        .expect("proxy");
    let cfg = TeleportConfig {
        addr: TeleportAddr::parse(&proxy.addr().to_string()).expect("addr"),
        credentials: Credentials::IdentityFile {
            path: env.emu.paths().identity.clone(),
            refresh: true,
            refresh_interval: ConfigDuration::new(Duration::from_secs(60)),
        },
        connect_via: ConnectVia::Auto,
        fail_fast: false,
    };
    let r = teleport_discord::teleport::check_connectivity(&cfg)
        .await
        .expect("check");
    assert_eq!(
        r.mode,
        Mode::Proxy,
        "auto picks the Proxy for a port other than 3025"
    );
    assert!(r.ok(), "{r}");
    assert!(r.to_string().contains("through a TLS-routing Proxy"), "{r}");
    assert!(proxy.routed() >= 1);
}

#[tokio::test]
async fn plugin_data_store_for_the_reconciler_maps_conflicts() {
    use teleport_discord::adapters::teleport::TeleportStore;
    use teleport_discord::reconcile::{PluginDataStore, StoreError};
    let env = env().await;
    let w = start_watch(&env, fast_watch()).await;
    let store = TeleportStore::new(w.handle.client_cell(), "discord");
    let id = env.emu.create_request("bob", &["r"], "");
    let kv = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    assert!(store.get(&id).await.expect("get").is_empty());
    store
        .compare_and_swap(&id, kv("a", "1"), kv("a", ""))
        .await
        .expect("claim");
    assert_eq!(store.get(&id).await.expect("get"), kv("a", "1"));
    let e = store
        .compare_and_swap(&id, kv("a", "2"), kv("a", ""))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict), "{e}");
}

#[tokio::test]
async fn proxy_mode_handshake_failure_explains_the_unsupported_l7_upgrade() {
    // A TLS endpoint with a certificate our cluster CAs do not trust, as an
    // L7 load balancer in front of the Proxy would present.
    let env = env().await;
    let lb = env_with(|o| o.cluster_name = "load-balancer".into()).await;
    let mut opts = ConnectOptions::new(lb.emu.addr().to_string(), Mode::Proxy);
    opts.connect_timeout = Duration::from_secs(3);
    let e = Client::connect(&opts, Arc::new(env.identity().load().expect("identity")))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("connection upgrade"), "{msg}");
    assert!(msg.contains("not supported"), "{msg}");
}

/// A busy cluster's plugin data listing (the sweep after a reconnect) can
/// pass the 4 MiB every other answer is held to; it is still read whole.
#[tokio::test]
async fn a_plugin_data_listing_larger_than_4_mib_is_read() {
    let env = env().await;
    let c = env.client().await;
    let big = "x".repeat(2000);
    let n = 2600; // ~5.2 MB of values
    for i in 0..n {
        env.emu.put_plugin_data(
            &format!("req-{i:05}"),
            "discord",
            &[("messages", big.as_str()), ("resolution", "")],
        );
    }
    env.emu
        .put_plugin_data("req-other", "slack", &[("messages", "elsewhere")]);
    let all = c.list_plugin_data("discord").await.expect("listing");
    assert_eq!(
        all.len(),
        n,
        "every entry of ours, none of another plugin's"
    );
    assert!(all.iter().all(|(_, d)| d["messages"].len() == 2000));
}

/// As in Teleport, plugin data outlives its request's deletion and expires an
/// hour past the request's access expiry (the emulator keeps no history for
/// ever, so long runs see the population Teleport would hold).
#[tokio::test]
async fn plugin_data_outlives_its_request_until_an_hour_past_access_expiry() {
    let env = env().await;
    let c = env.client().await;
    let set = |v: &str| BTreeMap::from([("messages".to_owned(), v.to_owned())]);
    let fresh = env.emu.create_request("bob", &["editor"], "");
    c.update_plugin_data("discord", &fresh, set("1"), BTreeMap::new())
        .await
        .expect("write");
    // A request whose access expired more than an hour ago.
    let old = env.emu.create_request("alice", &["editor"], "");
    let mut req = env.emu.request(&old).expect("stored");
    let past = SystemTime::now() - Duration::from_secs(3 * 3600);
    req.spec.as_mut().expect("spec").expires = Some(prost_types::Timestamp {
        seconds: past
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64,
        nanos: 0,
    });
    env.emu.put_raw_request(req);
    c.update_plugin_data("discord", &old, set("2"), BTreeMap::new())
        .await
        .expect("write");
    env.emu.delete_request(&fresh).expect("delete");
    assert_eq!(
        c.get_plugin_data("discord", &fresh).await.expect("get"),
        Some(set("1")),
        "survives the request's deletion"
    );
    assert_eq!(c.get_plugin_data("discord", &old).await.expect("get"), None);
    let ids: Vec<String> = c
        .list_plugin_data("discord")
        .await
        .expect("list")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, [fresh]);
}

#[tokio::test]
async fn the_review_and_reminder_probe_reads_users_and_access_lists_without_writing() {
    use teleport_discord::config::{
        ConfigDuration, ConnectVia, Credentials, TeleportAddr, TeleportConfig,
    };
    use teleport_discord::teleport::check::probe_reviews;
    let env = env().await;
    let cfg = TeleportConfig {
        addr: TeleportAddr::parse(&env.emu.addr().to_string()).expect("addr"),
        credentials: Credentials::IdentityFile {
            path: env.emu.paths().identity.clone(),
            refresh: false,
            refresh_interval: ConfigDuration::new(Duration::from_secs(60)),
        },
        connect_via: ConnectVia::Auth,
        fail_fast: false,
    };
    env.emu.put_access_list(
        "l",
        "L",
        &["alice"],
        std::time::SystemTime::now(),
        Duration::from_secs(1),
    );
    let p = probe_reviews(&cfg, "discord_user_id").await.expect("probe");
    assert_eq!(p.server_version, "18.11.0");
    assert_eq!(p.list_users, Some(Ok(())));
    assert_eq!(p.access_lists, Ok(1));
    env.emu
        .set_permissions(teleport_discord_testkit::teleport::Permissions {
            read_users: false,
            read_access_lists: false,
            ..Default::default()
        });
    env.emu.set_access_lists_unimplemented(true);
    let p = probe_reviews(&cfg, "discord_user_id").await.expect("probe");
    assert!(
        matches!(&p.list_users, Some(Err(e)) if e.contains("permission denied")),
        "{p:?}"
    );
    assert!(
        matches!(&p.access_lists, Err(e) if e.contains("does not implement")),
        "{p:?}"
    );
    assert_eq!(
        probe_reviews(&cfg, "").await.expect("probe").list_users,
        None
    );
}
