//! The real binary: CLI verbs, exit codes, and a running process driven by
//! signals.

use std::process::Command;

use teleport_discord_testkit::sandbox::Sandbox;

use crate::proc::{BIN, Proc};
use crate::support::{ADMIN_TOKEN, config_text};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TELEPORT_DISCORD_CONFIG")
        .env_remove("TELEPORT_DISCORD_LISTEN_ADDR")
        .output()
        .expect("run binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_is_one_line_like_upstream() {
    let out = run(&["version"]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    let line = s.trim_end();
    assert!(!line.contains('\n'), "{s}");
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts[0], "teleport-discord");
    assert_eq!(parts[1], format!("v{}", env!("CARGO_PKG_VERSION")));
    assert!(parts[2].starts_with("git:") && parts[2].len() > 4, "{line}");
    assert_eq!(parts[3], "rustc");
    assert!(
        parts[4].chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{line}"
    );
}

#[test]
fn configure_prints_a_config_that_check_accepts() {
    let out = run(&["configure"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("example.toml");
    std::fs::write(&path, &out.stdout).expect("write");
    let out = run(&["check", "--config-only", "-c", path.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("configuration is valid"));
    assert!(
        text(&out.stderr).is_empty(),
        "the example should load without warnings: {}",
        text(&out.stderr)
    );
}

#[test]
fn check_lists_every_problem_and_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[teleport]\nclient_key = \"/k\"\nrefresh_identiy = true\n[discord]\n[role_to_recipients]\ndev = \"1\"\n").expect("write");
    let out = run(&["check", "-c", path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
    let err = text(&out.stderr);
    for needle in [
        "`client_crt`, `root_cas` are missing",
        "discord.token",
        "role_to_recipients[*]",
        "3 problems",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let out = run(&["check", "-c", "/nonexistent/x.toml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out.stderr).contains("cannot read config file /nonexistent/x.toml"));
}

#[test]
fn check_warns_about_unknown_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        config_text("").replace("[discord]", "refresh_identiy = true\n[discord]"),
    )
    .expect("write");
    let out = run(&["check", "--config-only", "-c", path.to_str().expect("utf8")]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("line 5: `teleport.refresh_identiy`: unknown key, ignored; did you mean `teleport.refresh_identity`?"), "{err}");
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    assert_eq!(run(&[]).status.code(), Some(64));
    assert_eq!(run(&["frobnicate"]).status.code(), Some(64));
    assert_eq!(run(&["start", "--bogus"]).status.code(), Some(64));
    for args in [
        &["--help"][..],
        &["start", "--help"],
        &["check", "--help"],
        &["configure", "--help"],
        &["version", "--help"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            text(&out.stdout).contains("Usage: teleport-discord"),
            "{args:?}"
        );
    }
}

#[test]
fn help_output() {
    insta::assert_snapshot!("help", text(&run(&["--help"]).stdout));
    insta::assert_snapshot!("start_help", text(&run(&["start", "--help"]).stdout));
}

#[test]
fn start_refuses_a_bad_config_with_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config_text("").replace("\"*\"", "dev")).expect("write");
    let out = run(&["start", "-c", path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("role_to_recipients[*]"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn start_reads_the_config_path_from_the_environment() {
    let out = Command::new(BIN)
        .arg("start")
        .env("TELEPORT_DISCORD_CONFIG", "/nonexistent/from-env.toml")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("/nonexistent/from-env.toml"),
        "{}",
        text(&out.stderr)
    );
}

fn listen_addr(line: &str) -> String {
    line.rsplit(' ').next().expect("addr").trim().to_owned()
}

async fn get(url: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::get(url).await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_shuts_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let path = dir.path().join("c.toml");
    let http = "[http]\nlisten_addr = \"127.0.0.1:0\"\n";
    std::fs::write(
        &path,
        sandbox.config(&format!("[log]\nseverity = \"trace\"\n{http}")),
    )
    .expect("write");
    let token = sandbox.discord.token();
    let mut p = Proc::start(&path, &[("TELEPORT_DISCORD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    p.wait_for("Starting Teleport Access Discord Plugin").await;
    let addr = listen_addr(&p.wait_for("HTTP server listening on").await);
    let base = format!("http://{addr}");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    p.wait_for("Plugin is ready").await;
    p.wait_for("Watcher connected").await;
    // The container health check verb agrees with the server.
    assert_eq!(
        run(&["healthcheck", "--addr", &addr]).status.code(),
        Some(0)
    );
    let out = run(&["healthcheck", "--addr", &addr, "--path", "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("HTTP 404"),
        "{}",
        text(&out.stderr)
    );

    // A valid change, then SIGHUP.
    std::fs::write(
        &path,
        sandbox.config(&format!("ops = \"2\"\n[log]\nseverity = \"trace\"\n{http}")),
    )
    .expect("write");
    p.signal("HUP");
    p.wait_for("Config reloaded").await;
    // An invalid change, then SIGHUP: refused, still serving.
    std::fs::write(&path, "[teleport\n").expect("write");
    p.signal("HUP");
    p.wait_for("Config reload failed").await;
    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "teleport_discord_config_reloads_total{result=\"success\",trigger=\"sighup\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "teleport_discord_config_reloads_total{result=\"failure\",trigger=\"sighup\"} 1"
        ),
        "{metrics}"
    );

    p.signal("TERM");
    let status = p.wait_exit().await;
    assert_eq!(status.code(), Some(0), "log:\n{}", p.log());
    p.wait_for("Successfully shut down").await;

    // At trace level no secret reached the log.
    let log = p.log();
    assert!(!log.contains(&token), "bot token in log:\n{log}");
    assert!(!log.contains(ADMIN_TOKEN), "admin token in log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_shuts_down_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        sandbox.config("[http]\nlisten_addr = \"127.0.0.1:0\"\n"),
    )
    .expect("write");
    let mut p = Proc::start(&path, &[]);
    p.wait_for("HTTP server listening on").await;
    p.signal("INT");
    assert_eq!(p.wait_exit().await.code(), Some(0), "log:\n{}", p.log());
    p.wait_for("Successfully shut down").await;
}

#[test]
fn healthcheck_fails_without_a_server() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    let out = run(&["healthcheck", "--addr", &addr]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot connect"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_busy_port_is_a_runtime_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        config_text(&format!("[http]\nlisten_addr = \"{addr}\"\n")),
    )
    .expect("write");
    let out = run(&["start", "-c", path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr} (`http.listen_addr`)")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connects_to_teleport_and_discord() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let path = sandbox.write_config("").expect("config");
    let p = path.to_str().expect("utf8").to_owned();
    let out = tokio::task::spawn_blocking(move || run(&["check", "-c", &p]))
        .await
        .expect("run");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("Teleport: connected directly to the Auth Service as access-plugin"),
        "{stdout}"
    );
    assert!(stdout.contains("cluster: emulated.example.com"), "{stdout}");
    assert!(stdout.contains("plugin data write: ok"), "{stdout}");
    assert!(stdout.contains("leader lease (semaphores): ok"), "{stdout}");
    assert!(stdout.contains("Discord: token accepted"), "{stdout}");
    for ch in &sandbox.channels {
        assert!(stdout.contains(&format!("channel {ch}: ok")), "{stdout}");
    }

    // A channel that does not exist is reported.
    std::fs::write(&path, sandbox.config("ghost = \"999999999999\"")).expect("write");
    let p = path.to_str().expect("utf8").to_owned();
    let out = tokio::task::spawn_blocking(move || run(&["check", "-c", &p]))
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("channel 999999999999: FAILED"),
        "{}",
        text(&out.stdout)
    );

    // Nothing listening for Teleport: a runtime failure (1), not a config error (64).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let cfg = sandbox
        .config("")
        .replace(&sandbox.teleport.addr().to_string(), &addr.to_string());
    std::fs::write(&path, cfg).expect("write");
    let p = path.to_str().expect("utf8").to_owned();
    let out = tokio::task::spawn_blocking(move || run(&["check", "-c", &p]))
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("Teleport"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("FAILED"),
        "{}",
        text(&out.stdout)
    );
}
