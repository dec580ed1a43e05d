//! The leader lease with real replicas (`teleport-discord start` processes)
//! sharing one Teleport emulator and one Discord emulator: one sends, the
//! others stand by, ready; SIGTERM hands over within a second; a role that
//! may not use semaphores runs every replica as before, with one warning.

use std::path::Path;
use std::time::Duration;

use teleport_discord_testkit::sandbox::Sandbox;
use teleport_discord_testkit::teleport::Permissions;
use tokio::time::Instant;

use crate::proc::Proc;
use crate::support::eventually;

const HTTP: &str = "[http]\nlisten_addr = \"127.0.0.1:0\"\n";
const TTL_SECS: u64 = 3;

async fn readyz(p: &Proc) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("{}/readyz", p.base_url().await))
        .await
        .expect("readyz");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

async fn metric(p: &Proc, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", p.base_url().await))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn start(config: &Path) -> Proc {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Proc::start(config, &[])
}

/// Waits until `count` messages exist across the sandbox's channels.
async fn posted(sandbox: &Sandbox, count: usize) {
    eventually(&format!("{count} messages"), || {
        let n: usize = sandbox.discord.messages_per_channel().values().sum();
        (n >= count).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_sends_the_others_stand_by_and_sigterm_or_sigkill_hand_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    // A short lease, so that a killed leader's runs out quickly.
    let config = sandbox
        .write_config(&format!("{HTTP}\n[lease]\nttl = \"{TTL_SECS}s\"\n"))
        .expect("config");
    let mut leader = start(&config);
    leader.wait_for("holds the leader lease").await;
    let standby = start(&config);
    standby.wait_for("waiting for the leader lease").await;
    // Both serve and are ready; their roles show.
    let (code, body) = readyz(&leader).await;
    assert_eq!(
        (code, body["role"].as_str()),
        (200, Some("leader")),
        "{body}"
    );
    let (code, body) = readyz(&standby).await;
    assert_eq!(
        (code, body["role"].as_str()),
        (200, Some("standby")),
        "{body}"
    );
    assert_eq!(metric(&leader, "teleport_discord_leader").await, Some(1.0));
    assert_eq!(metric(&standby, "teleport_discord_leader").await, Some(0.0));

    // Requests are posted once each (the standby sends nothing).
    for i in 0..5 {
        sandbox
            .teleport
            .create_request("alice@example.com", &["dev"], &format!("r{i}"));
    }
    posted(&sandbox, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_channel = sandbox.discord.messages_per_channel();
    assert_eq!(per_channel.values().sum::<usize>(), 10, "{per_channel:?}");
    assert!(
        !standby.log().contains("Successfully posted"),
        "{}",
        standby.log()
    );

    // A rolling update: SIGTERM releases the lease; the standby leads in
    // well under a second and posts what comes next.
    leader.signal("TERM");
    let stopped = Instant::now();
    standby.wait_for("holds the leader lease").await;
    let handover = stopped.elapsed();
    assert!(
        handover < Duration::from_secs(1),
        "hand-over took {handover:?}"
    );
    assert!(leader.wait_exit().await.success());
    assert!(
        leader.log().contains("leader lease released"),
        "{}",
        leader.log()
    );
    sandbox
        .teleport
        .create_request("bob@example.com", &["dev"], "after the hand-over");
    posted(&sandbox, 12).await;
    assert_eq!(
        metric(&standby, "teleport_discord_lease_transitions_total").await,
        Some(1.0)
    );
    let (_, body) = readyz(&standby).await;
    assert_eq!(body["role"].as_str(), Some("leader"), "{body}");

    // SIGKILL of the leader: no release; a standby sends within the lease's
    // TTL + 2 s, and nothing is lost or posted twice.
    let third = start(&config);
    third.wait_for("waiting for the leader lease").await;
    let mut killed_leader = standby;
    let _ = killed_leader.child.kill();
    let killed = Instant::now();
    let _ = killed_leader.child.wait();
    third.wait_for("holds the leader lease").await;
    let takeover = killed.elapsed();
    assert!(
        takeover <= Duration::from_secs(TTL_SECS + 2),
        "take-over after SIGKILL took {takeover:?}"
    );
    sandbox
        .teleport
        .create_request("carol@example.com", &["dev"], "after the kill");
    posted(&sandbox, 14).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sandbox
            .discord
            .messages_per_channel()
            .values()
            .sum::<usize>(),
        14
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_semaphore_rule_every_replica_sends_as_before_with_one_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    sandbox.teleport.set_permissions(Permissions {
        use_semaphores: false,
        ..Permissions::default()
    });
    let config = sandbox.write_config(HTTP).expect("config");
    let a = start(&config);
    let b = start(&config);
    for p in [&a, &b] {
        p.wait_for("may not use semaphores").await;
        let (code, body) = readyz(p).await;
        assert_eq!((code, body["role"].as_str()), (200, Some("solo")), "{body}");
    }
    for i in 0..4 {
        sandbox
            .teleport
            .create_request("alice@example.com", &["dev"], &format!("r{i}"));
    }
    posted(&sandbox, 8).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sandbox
            .discord
            .messages_per_channel()
            .values()
            .sum::<usize>(),
        8,
        "the owner hand-off and the nonce still keep one message each"
    );
    for p in [&a, &b] {
        let log = p.log();
        assert_eq!(log.matches("may not use semaphores").count(), 1, "{log}");
        assert!(
            log.contains("semaphore: [create, update, read, list]"),
            "{log}"
        );
        assert_eq!(metric(p, "teleport_discord_leader").await, Some(0.0));
    }
    // In mode "lease" such a replica never sends.
    let strict = sandbox
        .write_config(&format!("{HTTP}\n[lease]\nmode = \"lease\"\n"))
        .expect("config");
    drop((a, b));
    let c = start(&strict);
    c.wait_for("cannot acquire the leader lease").await;
    let (code, body) = readyz(&c).await;
    assert_eq!(
        (code, body["role"].as_str()),
        (200, Some("standby")),
        "{body}"
    );
    sandbox
        .teleport
        .create_request("carol@example.com", &["dev"], "never posted");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sandbox
            .discord
            .messages_per_channel()
            .values()
            .sum::<usize>(),
        8
    );
}
