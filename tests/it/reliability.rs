//! Replicas as real processes (`teleport-discord start`, killed with SIGKILL,
//! reloaded with SIGHUP) against both emulators, through the chaos runner:
//! each test draws from one family of faults, and every request must end
//! with exactly one message per recipient channel showing its final state.
//! (`teleport-discord chaos` runs the same with every fault; see
//! RELIABILITY.md.)

use std::time::Duration;

use teleport_discord_testkit::chaos::{self, ChaosOptions, ChaosReport, Fault};

async fn chaos_run(faults: &[Fault], requests: usize, seed: u64) -> ChaosReport {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ChaosOptions {
        requests,
        rate: 15.0,
        replicas: 3,
        channels: 12,
        faults: faults.to_vec(),
        fault_every: Duration::from_millis(800),
        settle_timeout: Duration::from_secs(90),
        seed,
        ..ChaosOptions::new(env!("CARGO_BIN_EXE_teleport-discord"), dir.path())
    };
    let report = chaos::run(opts).await.expect("chaos run");
    if !report.ok() {
        let logs = chaos::replica_logs(dir.path()).unwrap_or_default();
        let tail: Vec<&str> = logs.lines().rev().take(40).collect();
        panic!(
            "{}\nlast replica log lines:\n{}",
            report.summary(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert_eq!(report.discord["duplicates"], 0, "{}", report.summary());
    // Each replica paces itself; together they can exceed the bot's limits
    // and earn some 429s, which are honoured (see RELIABILITY.md). They stay
    // far from Discord's ban threshold (10,000 invalid requests in 10 min).
    assert!(report.discord["earned_429"] < 1_000, "{}", report.summary());
    report
}

fn injected(report: &ChaosReport, prefix: &str) -> u64 {
    report
        .faults
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_post_each_message_exactly_once() {
    let r = chaos_run(&[], 40, 11).await;
    assert_eq!(r.requests, 40);
    assert_eq!(r.correct_messages, r.expected_messages);
    // Three replicas raced for every create; Discord saw each message once
    // (channel messages, and one DM per resolved request).
    assert_eq!(r.dms_correct, r.dms_expected, "{}", r.summary());
    assert_eq!(
        r.discord["messages_created"] as usize,
        r.expected_messages + r.dms_expected,
        "{}",
        r.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_killed_mid_burst_lose_and_duplicate_nothing() {
    let r = chaos_run(&[Fault::KillReplica], 50, 12).await;
    assert!(injected(&r, "kill_replica") >= 2, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_drops_outages_and_rotations_mid_burst_lose_nothing() {
    let r = chaos_run(
        &[
            Fault::DropStreams,
            Fault::TeleportOutage,
            Fault::RotateIdentity,
            Fault::Reload,
        ],
        50,
        13,
    )
    .await;
    assert!(
        injected(&r, "drop_streams") + injected(&r, "teleport_outage") >= 2,
        "{}",
        r.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_5xx_and_429_storms_delay_but_lose_nothing() {
    let r = chaos_run(&[Fault::DiscordErrors, Fault::Discord429], 50, 14).await;
    assert!(
        injected(&r, "discord_errors") + injected(&r, "discord_429") >= 2,
        "{}",
        r.summary()
    );
    assert!(
        r.discord["server_errors_500"] + r.discord["forced_429"] > 0,
        "the storms reached the replicas: {}",
        r.summary()
    );
}
