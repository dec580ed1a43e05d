//! Unit tests of the emulator's rules, driven through its own gRPC server over
//! mutual TLS (the testkit's client stubs) or its programmatic API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::pki::IssuedCert;
use super::{AccessRequestKind, EmulatorOptions, PLUGIN_USER, Permissions, TeleportEmulator};
use crate::pb;
use crate::pb::proto::auth_service_client::AuthServiceClient;
use crate::pb::teleport::accesslist::v1 as al;
use crate::pb::teleport::accesslist::v1::access_list_service_client::AccessListServiceClient;
use crate::pb::teleport::users::v1 as usersv1;
use crate::pb::teleport::users::v1::users_service_client::UsersServiceClient;
use crate::pb::types::RequestState;
use crate::util::{API_DOMAIN, GO_ZERO_TIME_SECONDS, TempDir, timestamp as ts};

struct Env {
    emu: TeleportEmulator,
    _dir: TempDir,
}

async fn env() -> Env {
    let dir = TempDir::create_for("emu-test").expect("temp dir");
    let emu = TeleportEmulator::start(EmulatorOptions::new(dir.path()))
        .await
        .expect("emulator");
    Env { emu, _dir: dir }
}

impl Env {
    async fn channel_with(&self, cert_pem: &str, key_pem: &str) -> Channel {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.emu.ca_pem()))
            .identity(Identity::from_pem(cert_pem, key_pem))
            .domain_name(API_DOMAIN);
        Endpoint::from_shared(format!("https://{}", self.emu.addr()))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect")
    }

    /// A channel as the plugin user, with the credentials the emulator wrote.
    async fn plugin(&self) -> Channel {
        let cert = std::fs::read_to_string(&self.emu.paths().cert).expect("cert");
        let key = std::fs::read_to_string(&self.emu.paths().key).expect("key");
        self.channel_with(&cert, &key).await
    }

    /// A channel as another user.
    async fn as_user(&self, user: &str) -> Channel {
        let now = SystemTime::now();
        let c: IssuedCert = self
            .emu
            .issue_client_cert(
                user,
                now - Duration::from_secs(60),
                now + Duration::from_secs(600),
            )
            .expect("cert");
        self.channel_with(&c.cert_pem, &c.key_pem).await
    }

    async fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.plugin().await)
    }
}

fn in_secs(s: u64) -> prost_types::Timestamp {
    ts(SystemTime::now() + Duration::from_secs(s))
}

fn acquire(kind: &str, name: &str, max: i64, holder: &str) -> pb::types::AcquireSemaphoreRequest {
    pb::types::AcquireSemaphoreRequest {
        semaphore_kind: kind.into(),
        semaphore_name: name.into(),
        max_leases: max,
        expires: Some(in_secs(60)),
        holder: holder.into(),
    }
}

fn with_expiry(
    l: &pb::types::SemaphoreLease,
    t: prost_types::Timestamp,
) -> pb::types::SemaphoreLease {
    pb::types::SemaphoreLease {
        expires: Some(t),
        ..l.clone()
    }
}

fn filter(kind: &str, name: &str) -> pb::types::SemaphoreFilter {
    pb::types::SemaphoreFilter {
        semaphore_kind: kind.into(),
        semaphore_name: name.into(),
    }
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, msg: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} {msg:?}, got {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{s:?}");
            assert_eq!(s.message(), msg, "{s:?}");
        }
    }
}

// ---- semaphores ---------------------------------------------------------------

#[tokio::test]
async fn acquire_validates_in_teleports_order() {
    let env = env().await;
    let mut c = env.auth().await;
    let ok = acquire("leader", "discord", 1, "a");
    let cases = [
        (
            pb::types::AcquireSemaphoreRequest {
                semaphore_kind: String::new(),
                semaphore_name: String::new(),
                max_leases: 0,
                expires: None,
                ..ok.clone()
            },
            "missing parameter SemaphoreKind",
        ),
        (
            pb::types::AcquireSemaphoreRequest {
                semaphore_name: String::new(),
                max_leases: 0,
                ..ok.clone()
            },
            "missing parameter SemaphoreName",
        ),
        (
            pb::types::AcquireSemaphoreRequest {
                max_leases: 0,
                expires: None,
                ..ok.clone()
            },
            "missing parameter MaxLeases",
        ),
        (
            pb::types::AcquireSemaphoreRequest {
                expires: None,
                ..ok.clone()
            },
            "missing parameter Expires",
        ),
        (
            pb::types::AcquireSemaphoreRequest {
                expires: Some(prost_types::Timestamp {
                    seconds: GO_ZERO_TIME_SECONDS,
                    nanos: 0,
                }),
                ..ok.clone()
            },
            "missing parameter Expires",
        ),
        (
            pb::types::AcquireSemaphoreRequest {
                expires: Some(prost_types::Timestamp::default()),
                ..ok.clone()
            },
            "cannot acquire expired semaphore lease",
        ),
    ];
    for (req, msg) in cases {
        assert_status(c.acquire_semaphore(req).await, Code::InvalidArgument, msg);
    }
    assert!(env.emu.leases().is_empty());
    let lease = c
        .acquire_semaphore(ok.clone())
        .await
        .expect("acquire")
        .into_inner();
    assert_eq!(lease.semaphore_kind, "leader");
    assert_eq!(lease.semaphore_name, "discord");
    assert_eq!(lease.expires, ok.expires);
    assert_eq!(lease.lease_id.len(), 36);
    assert_eq!(env.emu.calls("AcquireSemaphore"), 7);
}

#[tokio::test]
async fn a_full_semaphore_is_err_max_leases_until_a_holder_stops_renewing() {
    let env = env().await;
    let mut c = env.auth().await;
    let a = c
        .acquire_semaphore(acquire("leader", "discord", 1, "replica-a"))
        .await
        .expect("a")
        .into_inner();
    let full = "cannot acquire semaphore leader/discord (err-max-leases)";
    assert_status(
        c.acquire_semaphore(acquire("leader", "discord", 1, "replica-b"))
            .await,
        Code::ResourceExhausted,
        full,
    );
    // MaxLeases is per request, not stored: two may share it.
    c.acquire_semaphore(acquire("leader", "discord", 2, "replica-b"))
        .await
        .expect("max 2");
    assert_status(
        c.acquire_semaphore(acquire("leader", "discord", 2, "replica-c"))
            .await,
        Code::ResourceExhausted,
        full,
    );
    assert_status(
        c.acquire_semaphore(acquire("other", "x", -1, "replica-c"))
            .await,
        Code::ResourceExhausted,
        "cannot acquire semaphore other/x (err-max-leases)",
    );
    // A holder that stops renewing no longer counts at the next acquire.
    assert_eq!(env.emu.expire_leases_of("replica-b"), 1);
    let c2 = c
        .acquire_semaphore(acquire("leader", "discord", 2, "replica-c"))
        .await
        .expect("after expiry")
        .into_inner();
    let leases = env.emu.leases();
    let holders: Vec<_> = leases.iter().map(|l| l.holder.as_str()).collect();
    assert_eq!(holders, ["replica-a", "replica-c"], "pruned at acquire");
    assert_eq!(leases[0].lease_id, a.lease_id);
    assert_eq!(leases[1].lease_id, c2.lease_id);
}

#[tokio::test]
async fn keep_alive_rules() {
    let env = env().await;
    let mut c = env.auth().await;
    let a = c
        .acquire_semaphore(acquire("leader", "discord", 2, "a"))
        .await
        .expect("a")
        .into_inner();
    let b = c
        .acquire_semaphore(acquire("leader", "discord", 2, "b"))
        .await
        .expect("b")
        .into_inner();

    for (lease, msg) in [
        (
            pb::types::SemaphoreLease {
                semaphore_kind: String::new(),
                ..a.clone()
            },
            "missing parameter SemaphoreKind",
        ),
        (
            pb::types::SemaphoreLease {
                semaphore_name: String::new(),
                ..a.clone()
            },
            "missing parameter SemaphoreName",
        ),
        (
            pb::types::SemaphoreLease {
                lease_id: String::new(),
                ..a.clone()
            },
            "missing parameter LeaseID",
        ),
        (
            pb::types::SemaphoreLease {
                expires: None,
                ..a.clone()
            },
            "missing lease expiry time",
        ),
    ] {
        assert_status(
            c.keep_alive_semaphore_lease(lease).await,
            Code::InvalidArgument,
            msg,
        );
    }
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_status(
        c.keep_alive_semaphore_lease(with_expiry(&a, ts(past)))
            .await,
        Code::InvalidArgument,
        &format!(
            "lease {} has expired at 2023-11-14 22:13:20 +0000 UTC",
            a.lease_id
        ),
    );
    assert_status(
        c.keep_alive_semaphore_lease(pb::types::SemaphoreLease {
            semaphore_name: "nope".into(),
            ..a.clone()
        })
        .await,
        Code::NotFound,
        "cannot keepalive, semaphore not found: leader/nope",
    );
    assert_status(
        c.keep_alive_semaphore_lease(pb::types::SemaphoreLease {
            lease_id: "unknown".into(),
            ..a.clone()
        })
        .await,
        Code::NotFound,
        "cannot keepalive, lease not found: \"unknown\"",
    );

    // An expired lease cannot be revived: pruned before the lookup.
    env.emu.expire_leases_of("a");
    assert_status(
        c.keep_alive_semaphore_lease(with_expiry(&a, in_secs(120)))
            .await,
        Code::NotFound,
        &format!("cannot keepalive, lease not found: {:?}", a.lease_id),
    );
    // A renewal sets the expiry, shorter included; the TTL never falls.
    let ttl_before = c
        .get_semaphores(filter("leader", "discord"))
        .await
        .expect("get")
        .into_inner()
        .semaphores[0]
        .metadata
        .clone()
        .expect("meta")
        .expires;
    let shorter = in_secs(30);
    c.keep_alive_semaphore_lease(with_expiry(&b, shorter))
        .await
        .expect("renew");
    let sems = c
        .get_semaphores(filter("leader", "discord"))
        .await
        .expect("get")
        .into_inner()
        .semaphores;
    let spec = sems[0].spec.clone().expect("spec");
    assert_eq!(spec.leases.len(), 1, "the pruned list was written back");
    assert_eq!(spec.leases[0].lease_id, b.lease_id);
    assert_eq!(spec.leases[0].expires, Some(shorter));
    assert_eq!(sems[0].metadata.clone().expect("meta").expires, ttl_before);
}

#[tokio::test]
async fn cancel_does_not_prune_and_keeps_the_ttl() {
    let env = env().await;
    let mut c = env.auth().await;
    let a = c
        .acquire_semaphore(acquire("leader", "discord", 2, "a"))
        .await
        .expect("a")
        .into_inner();
    let b = c
        .acquire_semaphore(acquire("leader", "discord", 2, "b"))
        .await
        .expect("b")
        .into_inner();
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_status(
        c.cancel_semaphore_lease(with_expiry(&a, ts(past))).await,
        Code::InvalidArgument,
        &format!(
            "the lease {} has expired at 2023-11-14 22:13:20 +0000 UTC",
            a.lease_id
        ),
    );
    // `a` expired but still stored (no pruning at cancel or get).
    env.emu.expire_leases_of("a");
    let refs = c
        .get_semaphores(filter("leader", ""))
        .await
        .expect("get")
        .into_inner()
        .semaphores[0]
        .spec
        .clone()
        .expect("spec")
        .leases;
    assert_eq!(refs.len(), 2, "get does not prune");
    c.cancel_semaphore_lease(a.clone()).await.expect("cancel a");
    assert_status(
        c.cancel_semaphore_lease(a.clone()).await,
        Code::NotFound,
        &format!("cannot cancel, lease not found: {:?}", a.lease_id),
    );
    c.cancel_semaphore_lease(b.clone()).await.expect("cancel b");
    let sems = c
        .get_semaphores(filter("leader", "discord"))
        .await
        .expect("get")
        .into_inner()
        .semaphores;
    assert_eq!(sems.len(), 1, "an empty semaphore stays until its TTL");
    assert!(sems[0].spec.clone().expect("spec").leases.is_empty());
    assert_eq!(sems[0].kind, "semaphore");
    assert_eq!(sems[0].sub_kind, "leader");
    assert_eq!(sems[0].version, "v3");
    assert_status(
        c.cancel_semaphore_lease(pb::types::SemaphoreLease {
            semaphore_name: "nope".into(),
            ..b.clone()
        })
        .await,
        Code::NotFound,
        "key \"/semaphores/leader/nope\" is not found",
    );
}

#[tokio::test]
async fn a_semaphore_lives_as_long_as_its_latest_expiry() {
    let env = env().await;
    let mut c = env.auth().await;
    let a = c
        .acquire_semaphore(acquire("leader", "discord", 1, "a"))
        .await
        .expect("a")
        .into_inner();
    c.acquire_semaphore(acquire("leader", "other", 1, "b"))
        .await
        .expect("b");
    assert_eq!(
        c.get_semaphores(filter("", ""))
            .await
            .expect("all")
            .into_inner()
            .semaphores
            .len(),
        2
    );
    assert!(
        c.get_semaphores(filter("leader", "missing"))
            .await
            .expect("direct")
            .into_inner()
            .semaphores
            .is_empty(),
        "a missing semaphore is an empty answer, not NotFound"
    );
    // Only `a` kept leader/discord alive: once it stops, the item is gone.
    env.emu.expire_leases_of("a");
    let sems = c
        .get_semaphores(filter("leader", ""))
        .await
        .expect("get")
        .into_inner()
        .semaphores;
    assert_eq!(sems.len(), 1);
    assert_eq!(sems[0].metadata.clone().expect("meta").name, "other");
    assert_status(
        c.keep_alive_semaphore_lease(with_expiry(&a, in_secs(60)))
            .await,
        Code::NotFound,
        "cannot keepalive, semaphore not found: leader/discord",
    );
    // A fresh acquire recreates it.
    c.acquire_semaphore(acquire("leader", "discord", 1, "c"))
        .await
        .expect("recreated");
}

#[tokio::test]
async fn delete_semaphore_rules() {
    let env = env().await;
    let mut c = env.auth().await;
    c.acquire_semaphore(acquire("leader", "discord", 1, "a"))
        .await
        .expect("a");
    assert_status(
        c.delete_semaphore(filter("leader", "")).await,
        Code::InvalidArgument,
        "semaphore kind and name must be specified for deletion",
    );
    assert_status(
        c.delete_semaphore(filter("leader", "nope")).await,
        Code::NotFound,
        "key \"/semaphores/leader/nope\" is not found",
    );
    c.delete_semaphore(filter("leader", "discord"))
        .await
        .expect("delete");
    assert!(env.emu.leases().is_empty());
    assert_eq!(env.emu.calls("DeleteSemaphore"), 3);
}

#[tokio::test]
async fn semaphores_need_the_semaphore_rule() {
    let env = env().await;
    env.emu.set_permissions(Permissions {
        use_semaphores: false,
        ..Permissions::default()
    });
    let mut c = env.auth().await;
    let lease = pb::types::SemaphoreLease {
        semaphore_kind: "k".into(),
        semaphore_name: "n".into(),
        lease_id: "x".into(),
        expires: Some(in_secs(60)),
    };
    let denied = |verb: &str| format!("access denied to perform action {verb:?} on \"semaphore\"");
    assert_status(
        c.acquire_semaphore(acquire("k", "n", 1, "a")).await,
        Code::PermissionDenied,
        &format!("{}, {}", denied("create"), denied("update")),
    );
    assert_status(
        c.keep_alive_semaphore_lease(lease.clone()).await,
        Code::PermissionDenied,
        &denied("update"),
    );
    assert_status(
        c.cancel_semaphore_lease(lease).await,
        Code::PermissionDenied,
        &denied("update"),
    );
    assert_status(
        c.get_semaphores(filter("", "")).await,
        Code::PermissionDenied,
        &format!("{}, {}", denied("readnosecrets"), denied("list")),
    );
    assert_status(
        c.delete_semaphore(filter("k", "n")).await,
        Code::PermissionDenied,
        &denied("delete"),
    );
}

// ---- users ------------------------------------------------------------------

fn trait_filter(pairs: &[(&str, &[&str])]) -> pb::types::UserFilter {
    pb::types::UserFilter {
        traits: Some(pb::wrappers::LabelValues {
            values: pairs
                .iter()
                .map(|(k, vs)| {
                    (
                        (*k).to_owned(),
                        pb::wrappers::StringValues {
                            values: vs.iter().map(|v| (*v).to_owned()).collect(),
                        },
                    )
                })
                .collect::<HashMap<_, _>>(),
        }),
        ..Default::default()
    }
}

fn names(users: &[pb::types::UserV2]) -> Vec<String> {
    users
        .iter()
        .map(|u| u.metadata.clone().expect("meta").name)
        .collect()
}

fn list(filter: pb::types::UserFilter) -> usersv1::ListUsersRequest {
    usersv1::ListUsersRequest {
        filter: Some(filter),
        ..Default::default()
    }
}

fn three_users(emu: &TeleportEmulator) {
    emu.put_user("alice", &["dev"], &[("discord_uid", &["111"])]);
    emu.put_user("bob", &["dev"], &[("discord_uid", &["222"])]);
    emu.put_user(
        "carol",
        &["lead"],
        &[("discord_uid", &["111", "333"]), ("team", &["sre"])],
    );
}

#[tokio::test]
async fn list_users_matches_every_trait_key_with_one_of_its_values() {
    let env = env().await;
    three_users(&env.emu);
    let mut u = UsersServiceClient::new(env.plugin().await);
    let run = |f| {
        let mut u = u.clone();
        async move {
            names(
                &u.list_users(list(f))
                    .await
                    .expect("list")
                    .into_inner()
                    .users,
            )
        }
    };
    assert_eq!(
        run(trait_filter(&[("discord_uid", &["111"])])).await,
        ["alice", "carol"]
    );
    assert_eq!(
        run(trait_filter(&[("discord_uid", &["333", "222"])])).await,
        ["bob", "carol"]
    );
    assert_eq!(
        run(trait_filter(&[
            ("discord_uid", &["111"]),
            ("team", &["sre"])
        ]))
        .await,
        ["carol"]
    );
    assert!(
        run(trait_filter(&[("discord_uid", &["11"])]))
            .await
            .is_empty(),
        "exact match"
    );
    assert!(
        run(trait_filter(&[("slack_id", &["111"])]))
            .await
            .is_empty()
    );
    let kw = pb::types::UserFilter {
        search_keywords: vec!["LEAD".into()],
        ..Default::default()
    };
    assert_eq!(run(kw).await, ["carol"]);

    // An Auth Service older than the Traits filter answers with everyone.
    env.emu.set_user_filter_ignored(true);
    assert_eq!(
        run(trait_filter(&[("discord_uid", &["111"])])).await,
        ["alice", "bob", "carol"]
    );
    let page = u
        .list_users(list(Default::default()))
        .await
        .expect("all")
        .into_inner();
    assert_eq!(page.users[0].kind, "user");
    assert_eq!(page.users[0].version, "v2");
    let spec = page.users[0].spec.clone().expect("spec");
    assert_eq!(spec.roles, ["dev"]);
    assert_eq!(
        spec.traits.expect("traits").values["discord_uid"].values,
        ["111"]
    );
    assert_eq!(env.emu.calls("ListUsers"), 8);
}

#[tokio::test]
async fn list_users_pages() {
    let env = env().await;
    three_users(&env.emu);
    let mut u = UsersServiceClient::new(env.plugin().await);
    let mut token = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = u
            .list_users(usersv1::ListUsersRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        seen.extend(names(&page.users));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, ["alice", "bob", "carol"]);
    // The server may use a smaller page than asked.
    env.emu.set_max_page(Some(1));
    let page = u
        .list_users(usersv1::ListUsersRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("capped")
        .into_inner();
    assert_eq!(names(&page.users), ["alice"]);
    assert_eq!(page.next_page_token, "bob");
}

#[tokio::test]
async fn users_rbac_and_get_user() {
    let env = env().await;
    three_users(&env.emu);
    env.emu.put_user(PLUGIN_USER, &["access-plugin"], &[]);
    let mut u = UsersServiceClient::new(env.plugin().await);
    let got = u
        .get_user(usersv1::GetUserRequest {
            name: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(got.metadata.expect("meta").name, "alice");
    assert_status(
        u.get_user(usersv1::GetUserRequest {
            name: "zed".into(),
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "user \"zed\" is not found",
    );
    assert_status(
        u.list_users(usersv1::ListUsersRequest {
            with_secrets: true,
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "this request can be only executed by an admin",
    );

    env.emu.set_permissions(Permissions {
        read_users: false,
        ..Permissions::default()
    });
    assert_status(
        u.list_users(list(Default::default())).await,
        Code::PermissionDenied,
        "access denied to perform action \"read\" on \"user\", access denied to perform action \"list\" on \"user\"",
    );
    assert_status(
        u.get_user(usersv1::GetUserRequest {
            name: "alice".into(),
            ..Default::default()
        })
        .await,
        Code::PermissionDenied,
        "access denied to perform action \"read\" on \"user\"",
    );
    // One's own user needs no rule.
    let me = u
        .get_user(usersv1::GetUserRequest {
            current_user: true,
            ..Default::default()
        })
        .await
        .expect("current user")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(me.metadata.expect("meta").name, PLUGIN_USER);
}

// ---- reviews submitted for users ------------------------------------------------

fn on_behalf(id: &str, author: &str, approve: bool) -> pb::types::AccessReviewSubmission {
    pb::types::AccessReviewSubmission {
        request_id: id.into(),
        review: Some(pb::types::AccessReview {
            author: author.into(),
            proposed_state: if approve {
                RequestState::Approved
            } else {
                RequestState::Denied
            } as i32,
            submitted_on_behalf_of_author: true,
            created: Some(ts(SystemTime::now())),
            ..Default::default()
        }),
    }
}

fn reviewers(emu: &TeleportEmulator) {
    emu.put_user("alice", &["dev"], &[("discord_uid", &["111"])]);
    emu.put_user_reviews("alice", &["editor"]);
    emu.put_user("dave", &["dev"], &[]);
    emu.put_user_reviews("dave", &["*"]);
    emu.put_user("carol", &["dev"], &[]);
    emu.put_user_reviews("carol", &["viewer"]);
    emu.put_user("bob", &["dev"], &[]);
    emu.put_user_reviews("bob", &["*"]);
}

fn allow_submit_for_users(emu: &TeleportEmulator) {
    emu.set_permissions(Permissions {
        submit_reviews_for_users: true,
        ..Permissions::default()
    });
}

#[tokio::test]
async fn a_review_for_a_user_records_who_submitted_it_and_is_watched() {
    let env = env().await;
    reviewers(&env.emu);
    allow_submit_for_users(&env.emu);
    let id = env.emu.create_request("bob", &["editor"], "need it");
    let mut c = env.auth().await;
    let mut events = c
        .watch_events(pb::proto::Watch {
            kinds: vec![pb::types::WatchKind {
                kind: "access_request".into(),
                ..Default::default()
            }],
            allow_partial_success: false,
        })
        .await
        .expect("watch")
        .into_inner();
    let init = events.message().await.expect("init").expect("event");
    assert_eq!(init.r#type, pb::proto::Operation::Init as i32);

    let r = c
        .submit_access_review(on_behalf(&id, "alice", true))
        .await
        .expect("review for alice")
        .into_inner();
    let spec = r.spec.expect("spec");
    assert_eq!(spec.state, RequestState::Approved as i32);
    assert_eq!(spec.reviews[0].author, "alice");
    assert_eq!(spec.reviews[0].submitted_by, PLUGIN_USER);
    assert!(spec.reviews[0].submitted_on_behalf_of_author);

    let put = events.message().await.expect("put").expect("event");
    let Some(pb::proto::event::Resource::AccessRequest(req)) = put.resource else {
        panic!("{put:?}");
    };
    let review = &req.spec.expect("spec").reviews[0];
    assert_eq!(review.submitted_by, PLUGIN_USER, "field 11 on the wire");
    assert!(review.submitted_on_behalf_of_author, "field 12 on the wire");

    let stored = env.emu.request(&id).expect("stored").spec.expect("spec");
    assert_eq!(stored.reviews[0].submitted_by, PLUGIN_USER);
}

#[tokio::test]
async fn reviews_for_users_follow_the_callers_and_the_authors_rules() {
    let env = env().await;
    reviewers(&env.emu);
    let id = env.emu.create_request("bob", &["editor"], "");
    let mut c = env.auth().await;

    // Teleport's documented plugin role has no submit_for_users.
    assert_status(
        c.submit_access_review(on_behalf(&id, "alice", true)).await,
        Code::PermissionDenied,
        "user \"access-plugin\" cannot submit reviews on behalf of \"alice\"",
    );
    allow_submit_for_users(&env.emu);
    // SubmittedBy, when set, must be the caller.
    let mut sub = on_behalf(&id, "alice", true);
    if let Some(r) = sub.review.as_mut() {
        r.submitted_by = "mallory".into();
    }
    assert_status(
        c.submit_access_review(sub).await,
        Code::PermissionDenied,
        "user \"access-plugin\" cannot submit reviews on behalf of \"mallory\"",
    );
    assert_status(
        c.submit_access_review(on_behalf(&id, "zed", true)).await,
        Code::NotFound,
        "user \"zed\" is not found",
    );
    assert_status(
        c.submit_access_review(on_behalf(&id, "carol", true)).await,
        Code::PermissionDenied,
        &format!("user \"carol\" cannot review request {id:?}"),
    );
    assert_status(
        c.submit_access_review(on_behalf(&id, "bob", true)).await,
        Code::PermissionDenied,
        &format!("user \"bob\" cannot review request {id:?}"),
    );
    assert_status(
        c.submit_access_review(on_behalf("missing", "alice", true))
            .await,
        Code::NotFound,
        "access_request \"missing\" not found",
    );

    // Two users, two approvals needed: both counted; a second review by the
    // same user is refused as Teleport does.
    let id2 = env
        .emu
        .create_request_with_threshold("bob", &["editor"], "", 2, 1);
    let r = c
        .submit_access_review(on_behalf(&id2, "alice", true))
        .await
        .expect("alice")
        .into_inner();
    assert_eq!(r.spec.expect("spec").state, RequestState::Pending as i32);
    assert_status(
        c.submit_access_review(on_behalf(&id2, "alice", true)).await,
        Code::PermissionDenied,
        "user \"alice\" has already reviewed this request",
    );
    // A SubmittedBy equal to the caller is fine.
    let mut sub = on_behalf(&id2, "dave", true);
    if let Some(r) = sub.review.as_mut() {
        r.submitted_by = PLUGIN_USER.into();
        r.submitted_on_behalf_of_author = false;
    }
    let r = c
        .submit_access_review(sub)
        .await
        .expect("dave")
        .into_inner();
    let spec = r.spec.expect("spec");
    assert_eq!(spec.state, RequestState::Approved as i32);
    assert!(
        spec.reviews[1].submitted_on_behalf_of_author,
        "set by the server"
    );
    env.emu.put_user("erin", &["dev"], &[]);
    env.emu.put_user_reviews("erin", &["editor"]);
    assert_status(
        c.submit_access_review(on_behalf(&id2, "erin", false)).await,
        Code::PermissionDenied,
        "the access request has been already approved",
    );
}

#[tokio::test]
async fn a_role_review_rule_lets_a_user_review() {
    let env = env().await;
    allow_submit_for_users(&env.emu);
    env.emu.put_role("approver", &[], &[]);
    if let Some(allow) = env
        .emu
        .shared
        .lock()
        .roles
        .get_mut("approver")
        .and_then(|r| r.spec.as_mut())
        .and_then(|s| s.allow.as_mut())
    {
        allow.review_requests = Some(pb::types::AccessReviewConditions {
            roles: vec!["editor".into()],
            ..Default::default()
        });
    }
    env.emu.put_user("frank", &["approver"], &[]);
    let id = env.emu.create_request("bob", &["editor"], "");
    let mut c = env.auth().await;
    c.submit_access_review(on_behalf(&id, "frank", false))
        .await
        .expect("frank may review editor");
    let denied = env.emu.create_request("bob", &["editor", "admin"], "");
    assert_status(
        c.submit_access_review(on_behalf(&denied, "frank", true))
            .await,
        Code::PermissionDenied,
        &format!("user \"frank\" cannot review request {denied:?}"),
    );
}

#[tokio::test]
async fn an_older_auth_service_ignores_fields_11_and_12() {
    let env = env().await;
    reviewers(&env.emu);
    allow_submit_for_users(&env.emu);
    env.emu.set_on_behalf_reviews_supported(false);
    let id = env.emu.create_request("bob", &["editor"], "");
    let mut c = env.auth().await;
    assert_status(
        c.submit_access_review(on_behalf(&id, "alice", true)).await,
        Code::PermissionDenied,
        "user \"access-plugin\" cannot submit reviews on behalf of \"alice\"",
    );
    // The caller's own review, fields 11/12 set: stored without them.
    let mut sub = on_behalf(&id, PLUGIN_USER, true);
    if let Some(r) = sub.review.as_mut() {
        r.submitted_by = PLUGIN_USER.into();
    }
    let r = c
        .submit_access_review(sub)
        .await
        .expect("classic")
        .into_inner();
    let review = &r.spec.expect("spec").reviews[0];
    assert_eq!(review.author, PLUGIN_USER);
    assert!(review.submitted_by.is_empty());
    assert!(!review.submitted_on_behalf_of_author);
}

#[tokio::test]
async fn the_classic_path_is_unchanged() {
    let env = env().await;
    let id = env.emu.create_request("bob", &["editor"], "");
    let mut c = env.auth().await;
    let mut sub = on_behalf(&id, "alice", true);
    if let Some(r) = sub.review.as_mut() {
        r.submitted_on_behalf_of_author = false;
    }
    assert_status(
        c.submit_access_review(sub).await,
        Code::PermissionDenied,
        "user \"access-plugin\" cannot submit reviews on behalf of \"alice\"",
    );
    let mut sub = on_behalf(&id, "", true);
    if let Some(r) = sub.review.as_mut() {
        r.submitted_on_behalf_of_author = false;
    }
    let r = c.submit_access_review(sub).await.expect("own").into_inner();
    let review = &r.spec.expect("spec").reviews[0];
    assert_eq!(review.author, PLUGIN_USER, "empty author is the caller");
    assert!(review.submitted_by.is_empty());
    // The builtin Admin may review for anyone.
    let id2 = env.emu.create_request("bob", &["editor"], "");
    let mut admin = AuthServiceClient::new(env.as_user("admin").await);
    let mut sub = on_behalf(&id2, "alice", true);
    if let Some(r) = sub.review.as_mut() {
        r.submitted_on_behalf_of_author = false;
    }
    admin.submit_access_review(sub).await.expect("admin");
}

#[tokio::test]
async fn a_slow_review_answers_after_the_delay() {
    let env = env().await;
    env.emu.set_review_delay(Duration::from_millis(400));
    let id = env.emu.create_request("bob", &["editor"], "");
    let mut c = env.auth().await;
    let mut sub = on_behalf(&id, "", true);
    if let Some(r) = sub.review.as_mut() {
        r.submitted_on_behalf_of_author = false;
    }
    let start = tokio::time::Instant::now();
    c.submit_access_review(sub).await.expect("review");
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert_eq!(env.emu.calls("SubmitAccessReview"), 1);
}

// ---- request kinds ------------------------------------------------------------

#[tokio::test]
async fn request_kinds_reach_the_wire_and_the_control_api() {
    let env = env().await;
    let long =
        env.emu
            .create_request_with_kind("bob", &["editor"], "", AccessRequestKind::LongTerm);
    let plain = env.emu.create_request("bob", &["editor"], "");
    let mut c = env.auth().await;
    let listed = c
        .list_access_requests(pb::proto::ListAccessRequestsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .access_requests;
    let kind_of = |id: &str| {
        listed
            .iter()
            .find(|r| r.metadata.as_ref().is_some_and(|m| m.name == id))
            .and_then(|r| r.spec.as_ref())
            .map(|s| s.request_kind)
    };
    assert_eq!(kind_of(&long), Some(AccessRequestKind::LongTerm as i32));
    assert_eq!(kind_of(&plain), Some(AccessRequestKind::Undefined as i32));

    let emu = Arc::new(env.emu);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = super::control::router(emu.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{addr}/requests"))
        .json(&serde_json::json!({"user": "bob", "roles": ["editor"], "kind": "SHORT_TERM"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let spec = emu.request(&id).expect("stored").spec.expect("spec");
    assert_eq!(spec.request_kind, AccessRequestKind::ShortTerm as i32);
    let r = http
        .post(format!("http://{addr}/requests"))
        .json(&serde_json::json!({"user": "bob", "kind": "FOREVER"}))
        .send()
        .await
        .expect("bad kind");
    assert_eq!(r.status(), 400);
    let all = http
        .get(format!("http://{addr}/requests"))
        .send()
        .await
        .expect("list")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let kinds: Vec<_> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["LONG_TERM", "UNDEFINED", "SHORT_TERM"]);
}

// ---- access lists ---------------------------------------------------------------

fn audit_in(days: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(days * 24 * 3600)
}

fn list_names(lists: &[al::AccessList]) -> Vec<String> {
    lists
        .iter()
        .map(|l| {
            l.header
                .clone()
                .and_then(|h| h.metadata)
                .map(|m| m.name)
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn access_lists_page_by_100_by_default() {
    let env = env().await;
    for i in 0..150 {
        env.emu.put_access_list(
            &format!("list-{i:03}"),
            &format!("List {i}"),
            &["alice"],
            audit_in(30),
            Duration::from_secs(14 * 24 * 3600),
        );
    }
    let mut l = AccessListServiceClient::new(env.plugin().await);
    let first = l
        .list_access_lists(al::ListAccessListsRequest::default())
        .await
        .expect("first")
        .into_inner();
    assert_eq!(first.access_lists.len(), 100);
    assert_eq!(first.next_token, "list-100");
    let second = l
        .list_access_lists(al::ListAccessListsRequest {
            page_size: 0,
            next_token: first.next_token,
        })
        .await
        .expect("second")
        .into_inner();
    assert_eq!(second.access_lists.len(), 50);
    assert_eq!(list_names(&second.access_lists)[0], "list-100");
    assert!(second.next_token.is_empty());
    let small = l
        .list_access_lists(al::ListAccessListsRequest {
            page_size: 2,
            next_token: String::new(),
        })
        .await
        .expect("small")
        .into_inner();
    assert_eq!(list_names(&small.access_lists), ["list-000", "list-001"]);
    assert_eq!(small.next_token, "list-002");
    assert_eq!(env.emu.calls("ListAccessLists"), 3);
}

#[tokio::test]
async fn get_access_list_and_owners() {
    let env = env().await;
    let due = audit_in(10);
    env.emu.put_access_list(
        "reviewers",
        "Reviewers",
        &["alice", "bob"],
        due,
        Duration::from_secs(7 * 24 * 3600),
    );
    let mut l = AccessListServiceClient::new(env.plugin().await);
    let got = l
        .get_access_list(al::GetAccessListRequest {
            name: "reviewers".into(),
        })
        .await
        .expect("get")
        .into_inner();
    let header = got.header.expect("header");
    assert_eq!(header.kind, "access_list");
    assert_eq!(header.version, "v1");
    let spec = got.spec.expect("spec");
    assert_eq!(spec.title, "Reviewers");
    let audit = spec.audit.expect("audit");
    assert_eq!(audit.next_audit_date, Some(ts(due)));
    assert_eq!(
        audit.notifications.expect("notifications").start,
        Some(prost_types::Duration {
            seconds: 7 * 24 * 3600,
            nanos: 0
        })
    );
    let owners = l
        .get_access_list_owners(al::GetAccessListOwnersRequest {
            access_list: "reviewers".into(),
        })
        .await
        .expect("owners")
        .into_inner()
        .owners;
    let owner_names: Vec<_> = owners.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(owner_names, ["alice", "bob"]);
    assert_status(
        l.get_access_list(al::GetAccessListRequest {
            name: "nope".into(),
        })
        .await,
        Code::NotFound,
        "access_list \"nope\" doesn't exist",
    );
    assert_status(
        l.get_access_list_owners(al::GetAccessListOwnersRequest {
            access_list: "nope".into(),
        })
        .await,
        Code::NotFound,
        "access_list \"nope\" doesn't exist",
    );

    env.emu.set_access_lists_unimplemented(true);
    let unimplemented = "unknown service teleport.accesslist.v1.AccessListService";
    assert_status(
        l.list_access_lists(al::ListAccessListsRequest::default())
            .await,
        Code::Unimplemented,
        unimplemented,
    );
    assert_status(
        l.get_access_list(al::GetAccessListRequest {
            name: "reviewers".into(),
        })
        .await,
        Code::Unimplemented,
        unimplemented,
    );
}

#[tokio::test]
async fn without_the_access_list_rule_only_owned_lists_are_visible() {
    let env = env().await;
    let week = Duration::from_secs(7 * 24 * 3600);
    env.emu
        .put_access_list("a", "A", &["alice"], audit_in(10), week);
    env.emu
        .put_access_list("b", "B", &[PLUGIN_USER], audit_in(10), week);
    env.emu.set_permissions(Permissions {
        read_access_lists: false,
        ..Permissions::default()
    });
    let mut l = AccessListServiceClient::new(env.plugin().await);
    let page = l
        .list_access_lists(al::ListAccessListsRequest::default())
        .await
        .expect("owned")
        .into_inner();
    assert_eq!(list_names(&page.access_lists), ["b"]);
    let denied = "access denied to perform action \"list\" on \"access_list\", access denied to perform action \"read\" on \"access_list\"";
    assert_status(
        l.get_access_list(al::GetAccessListRequest { name: "a".into() })
            .await,
        Code::PermissionDenied,
        denied,
    );
    env.emu.delete_access_list("b");
    assert_status(
        l.list_access_lists(al::ListAccessListsRequest::default())
            .await,
        Code::PermissionDenied,
        denied,
    );
}

// ---- plugin data on two kinds -------------------------------------------------------

fn update(
    kind: &str,
    resource: &str,
    set: &[(&str, &str)],
    expect: &[(&str, &str)],
) -> pb::types::PluginDataUpdateParams {
    let m = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>()
    };
    pb::types::PluginDataUpdateParams {
        kind: kind.into(),
        resource: resource.into(),
        plugin: "discord".into(),
        set: m(set),
        expect: m(expect),
    }
}

fn get(kind: &str, resource: &str) -> pb::types::PluginDataFilter {
    pb::types::PluginDataFilter {
        kind: kind.into(),
        resource: resource.into(),
        plugin: "discord".into(),
    }
}

#[tokio::test]
async fn access_list_plugin_data_is_kept_apart_and_lives_two_weeks() {
    let env = env().await;
    let mut c = env.auth().await;
    // No lookup of the list: it need not exist.
    c.update_plugin_data(update(
        "access_list",
        "reviewers",
        &[("user_notifications", "{}")],
        &[("user_notifications", "")],
    ))
    .await
    .expect("create");
    let expiry = env
        .emu
        .plugin_data_expiry("access_list", "reviewers")
        .expect("expiry");
    let two_weeks = SystemTime::now() + Duration::from_secs(14 * 24 * 3600);
    assert!(
        expiry <= two_weeks && expiry > two_weeks - Duration::from_secs(60),
        "{expiry:?}"
    );
    assert_eq!(
        env.emu
            .access_list_plugin_data("reviewers", "discord")
            .expect("data")["user_notifications"],
        "{}"
    );
    // The same name under access_request is another resource (and needs
    // its request).
    assert_status(
        c.update_plugin_data(update("access_request", "reviewers", &[("k", "v")], &[]))
            .await,
        Code::NotFound,
        "access_request \"reviewers\" not found",
    );
    let id = env.emu.create_request("bob", &["editor"], "");
    env.emu
        .put_access_list_plugin_data(&id, "discord", &[("user_notifications", "x")]);
    c.update_plugin_data(update(
        "access_request",
        &id,
        &[("msg", "1")],
        &[("msg", "")],
    ))
    .await
    .expect("request data");
    assert_eq!(
        env.emu.plugin_data(&id, "discord").expect("request")["msg"],
        "1"
    );
    assert_eq!(
        env.emu
            .access_list_plugin_data(&id, "discord")
            .expect("list")
            .get("msg"),
        None
    );
    let lists = c
        .get_plugin_data(get("access_list", ""))
        .await
        .expect("all lists")
        .into_inner()
        .plugin_data;
    assert_eq!(lists.len(), 2);
    assert!(lists.iter().all(|p| p.sub_kind == "access_list"));
    let requests = c
        .get_plugin_data(get("access_request", ""))
        .await
        .expect("all requests")
        .into_inner()
        .plugin_data;
    assert_eq!(requests.len(), 1);

    // Same compare-and-swap as access_request.
    assert_status(
        c.update_plugin_data(update(
            "access_list",
            "reviewers",
            &[("user_notifications", "{\"a\":1}")],
            &[("user_notifications", "")],
        ))
        .await,
        Code::FailedPrecondition,
        "expectations not met for field \"user_notifications\"",
    );
    c.update_plugin_data(update(
        "access_list",
        "reviewers",
        &[("user_notifications", "{\"a\":1}")],
        &[("user_notifications", "{}")],
    ))
    .await
    .expect("cas");
    assert_status(
        c.get_plugin_data(get("access_monitoring_rule", "x")).await,
        Code::InvalidArgument,
        "unsupported resource kind \"access_monitoring_rule\"",
    );
    // Emptying the data removes it (and its expiry).
    c.update_plugin_data(update(
        "access_list",
        "reviewers",
        &[("user_notifications", "")],
        &[],
    ))
    .await
    .expect("clear");
    assert_eq!(
        env.emu.access_list_plugin_data("reviewers", "discord"),
        None
    );
    assert_eq!(env.emu.plugin_data_expiry("access_list", "reviewers"), None);
}
