//! Security checks (issue #8): admin authorisation, no secret in trace logs
//! during a full run of the real binary, oversize and malformed HTTP bodies,
//! and a Teleport server with a certificate from another CA.
//!
//! Related checks elsewhere: `secret::tests` (the compare is constant-time),
//! `http::admin::tests::authorize_cases`, `http::errors_are_json` (413 for a
//! 64 KiB body), `teleport::credentials_from_another_cluster_are_refused`
//! (client level), `cli::sighup_reloads_and_sigterm_shuts_down`.

use std::path::Path;
use std::time::Duration;

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use teleport_discord_testkit::sandbox::Sandbox;
use teleport_discord_testkit::teleport::{EmulatorOptions, TeleportEmulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::proc::Proc;
use crate::support::{ADMIN_TOKEN, TestApp};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- admin authorisation ------------------------------------------------------------

/// Missing, empty, wrong, prefix, extended, case-changed and non-Bearer
/// tokens are all 401, and none of them reloads anything; the right token does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rejects_missing_wrong_and_prefix_tokens() {
    let app = TestApp::start(&format!("[http]\nadmin_token = \"{ADMIN_TOKEN}\"\n")).await;
    let url = app.url("/admin/reload");
    let mut wrong: Vec<String> = vec![
        String::new(),
        " ".to_owned(),
        ADMIN_TOKEN.to_uppercase(),
        format!("{ADMIN_TOKEN}0"),
        format!("{ADMIN_TOKEN}{ADMIN_TOKEN}"),
        format!("0{ADMIN_TOKEN}"),
        ADMIN_TOKEN.chars().rev().collect(),
        format!("{}X", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]),
        format!("\"{ADMIN_TOKEN}\""),
    ];
    // Every proper prefix, the empty one included.
    wrong.extend((1..ADMIN_TOKEN.len()).map(|n| ADMIN_TOKEN[..n].to_owned()));
    for candidate in &wrong {
        let r = app
            .client
            .post(&url)
            .header("authorization", format!("Bearer {candidate}"))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 401, "token {candidate:?}");
        let body = r.text().await.expect("body");
        assert!(!body.contains(ADMIN_TOKEN), "{body}");
    }
    for header in [
        format!("Basic {ADMIN_TOKEN}"),
        format!("Token {ADMIN_TOKEN}"),
        format!("Bearer{ADMIN_TOKEN}"),
        ADMIN_TOKEN.to_owned(),
        "Bearer".to_owned(),
    ] {
        let r = app
            .client
            .post(&url)
            .header("authorization", &header)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 401, "header {header:?}");
    }
    // Not in the query string or another header either.
    let r = app
        .client
        .post(format!(
            "{url}?token={ADMIN_TOKEN}&access_token={ADMIN_TOKEN}"
        ))
        .header("x-admin-token", ADMIN_TOKEN)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 401);
    let r = app.reload(None).await;
    assert_eq!(r.status(), 401);

    // Nothing was reloaded.
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        !metrics
            .contains("teleport_discord_config_reloads_total{result=\"success\",trigger=\"http\"}"),
        "{metrics}"
    );
    assert_eq!(app.reload(Some(ADMIN_TOKEN)).await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(
            "teleport_discord_config_reloads_total{result=\"success\",trigger=\"http\"} 1"
        ),
        "{metrics}"
    );
    app.stop().await;
}

// ---- no secret in logs ------------------------------------------------------------------

/// Strings that must not appear in any log line: the tokens, every line of
/// the private key's PEM body, and windows of the key's bytes as base64, hex
/// and Rust's `Debug` of a byte slice.
fn secret_needles(identity: &Path, discord_token: &str) -> Vec<String> {
    let text = std::fs::read_to_string(identity).expect("identity");
    let begin = text.find("-----BEGIN").expect("a PEM block");
    let end_marker = text[begin..].find("-----END").expect("an END line") + begin;
    let end = text[end_marker..]
        .find('\n')
        .map_or(text.len(), |n| end_marker + n + 1);
    let key_pem = &text[begin..end];
    assert!(
        key_pem.contains("PRIVATE KEY"),
        "the first block is the key: {key_pem:.40}"
    );
    let body: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .collect();
    assert!(
        !body.is_empty(),
        "no key body found in {}",
        identity.display()
    );
    let mut needles = vec![discord_token.to_owned(), ADMIN_TOKEN.to_owned()];
    needles.extend(body.iter().map(|l| (*l).to_owned()));
    let joined = body.concat();
    let b64 = joined.as_bytes();
    for start in (0..b64.len().saturating_sub(24)).step_by(8) {
        needles.push(String::from_utf8_lossy(&b64[start..start + 24]).into_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let der = key.secret_der();
    // The private scalar sits in the second half of the encoding.
    for start in (der.len() / 2..der.len().saturating_sub(12)).step_by(6) {
        let w = &der[start..start + 12];
        needles.push(w.iter().map(|b| format!("{b:02x}")).collect());
        needles.push(w.iter().map(u8::to_string).collect::<Vec<_>>().join(", "));
    }
    needles
}

fn assert_no_secret(log: &str, needles: &[String], what: &str) {
    for n in needles {
        if let Some(line) = log.lines().find(|l| l.contains(n.as_str())) {
            panic!(
                "{what}: a secret ({} chars) is in the log line:\n{line}",
                n.len()
            );
        }
    }
}

/// One full run of the real binary: two requests posted, one approved after
/// a review, one denied, a reload through the admin endpoint, one refused
/// for a wrong token, a SIGHUP reload and a refused SIGHUP reload, then
/// SIGTERM. Returns everything written to stdout and stderr.
async fn full_run(envs: &[(&str, &str)]) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let path = dir.path().join("c.toml");
    let extra = |more: &str| {
        format!(
            "{more}[log]\nseverity = \"trace\"\n[http]\nlisten_addr = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\"\n"
        )
    };
    // Reviews on: the run clicks and submits, one answer deferred, so the
    // interaction tokens (in bodies and webhook paths) go through the log.
    let reviewer = sandbox.discord.add_user("bob");
    let reviews =
        format!("[review]\nenabled = true\n[review.users]\n\"{reviewer}\" = \"bob@example.com\"\n");
    std::fs::write(&path, sandbox.config(&extra(&reviews))).expect("write");
    sandbox.teleport.put_user("bob@example.com", &[], &[]);
    sandbox.teleport.put_user_reviews("bob@example.com", &["*"]);
    sandbox
        .teleport
        .set_permissions(teleport_discord_testkit::teleport::Permissions {
            submit_reviews_for_users: true,
            ..Default::default()
        });
    let token = sandbox.discord.token();
    let mut needles = secret_needles(&sandbox.teleport.paths().identity, &token);

    let loaded = teleport_discord::config::load(&path, &teleport_discord::config::ProcessEnv)
        .expect("config");
    assert_no_secret(&format!("{loaded:?}"), &needles, "Debug of the config");
    assert_no_secret(
        &format!("{:?}", loaded.config),
        &needles,
        "Debug of the config",
    );

    let mut p = Proc::start(&path, envs);
    let base = p.base_url().await;
    p.wait_for("Plugin is ready").await;
    let [dev, _ops, fallback] = sandbox.channels.clone();
    sandbox
        .discord
        .set_interactions_endpoint(&format!("{base}/discord/interactions"));
    for delay in [Duration::ZERO, Duration::from_millis(2500)] {
        sandbox.teleport.set_review_delay(delay);
        let id = sandbox
            .teleport
            .create_request("dave@example.com", &["dev"], "click");
        let msg = eventually("the clickable message", || {
            sandbox
                .discord
                .messages(&dev)
                .into_iter()
                .find(|m| m.content.contains(&id) && m.components.to_string().contains("review:v1"))
                .map(|m| m.id)
        })
        .await;
        let click = sandbox
            .discord
            .click(&dev, &msg, &format!("review:v1:approve:{id}"), &reviewer)
            .await
            .expect("click");
        sandbox
            .discord
            .submit_modal(&click.interaction.id, &[("reason", "fine by me")])
            .await
            .expect("submit");
        let sid = eventually("the answer", || {
            let i = sandbox.discord.interactions().into_iter().last()?;
            let done = i
                .ephemeral_messages
                .iter()
                .any(|m| m.content.contains("You approved"))
                || i.response()
                    .is_some_and(|a| a.data.to_string().contains("You approved"));
            done.then_some(i.id)
        })
        .await;
        assert!(!sid.is_empty());
    }
    sandbox.teleport.set_review_delay(Duration::ZERO);
    for i in sandbox.discord.interactions() {
        needles.push(i.token.clone());
    }
    assert!(needles.len() > 2, "tokens collected");
    let a = sandbox
        .teleport
        .create_request("alice@example.com", &["dev"], "hotfix");
    let b = sandbox
        .teleport
        .create_request("carol@example.com", &["other"], "look around");
    eventually("both posts", || {
        (!sandbox.discord.messages(&dev).is_empty()
            && !sandbox.discord.messages(&fallback).is_empty())
        .then_some(())
    })
    .await;
    sandbox
        .teleport
        .add_review(&a, "bob@example.com", true, "fine")
        .expect("review");
    sandbox
        .teleport
        .resolve(&a, true, "approved")
        .expect("approve");
    sandbox.teleport.resolve(&b, false, "no").expect("deny");
    eventually("the approval and the denial", || {
        let approved = sandbox
            .discord
            .messages(&dev)
            .first()?
            .content
            .contains("APPROVED");
        let denied = sandbox
            .discord
            .messages(&fallback)
            .first()?
            .content
            .contains("DENIED");
        (approved && denied).then_some(())
    })
    .await;

    let http = client();
    let r = http
        .post(format!("{base}/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/admin/reload"))
        .bearer_auth(format!("{ADMIN_TOKEN}x"))
        .send()
        .await
        .expect("reload");
    assert_eq!(r.status(), 401);
    std::fs::write(&path, sandbox.config(&extra("ops = \"2\"\n"))).expect("write");
    p.signal("HUP");
    p.wait_for_nth("Config reloaded", 2).await;
    // A refused reload logs its problems; no secret may be among them.
    let bad = sandbox
        .config(&extra(""))
        .replace("[role_to_recipients]", "[role_to_recipients]\nbroken = 5");
    std::fs::write(&path, bad).expect("write");
    p.signal("HUP");
    p.wait_for("Config reload failed").await;

    p.signal("TERM");
    assert_eq!(p.wait_exit().await.code(), Some(0), "log:\n{}", p.log());
    (p.log(), needles)
}

/// At `[log] severity = "trace"` (our crate at trace, libraries at warn), no
/// log line holds the bot token, the admin token or any piece of the private
/// key (PEM lines, base64 windows, hex and `Debug` byte windows); nor does
/// `Debug` of the loaded config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_trace_logs_during_a_full_run() {
    let (log, needles) = full_run(&[]).await;
    assert!(log.contains("Successfully posted messages"), "{log}");
    assert_no_secret(&log, &needles, "trace log");
}

/// The same with `RUST_LOG=trace`: every library (hyper, h2, reqwest, tonic,
/// rustls) at trace too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_trace_logs_of_every_library() {
    let (log, needles) = full_run(&[("RUST_LOG", "trace")]).await;
    assert!(
        log.lines().filter(|l| l.contains("TRACE")).count() > 100,
        "the run was not logged at trace level:\n{log}"
    );
    assert_no_secret(&log, &needles, "RUST_LOG=trace log");
}

// ---- oversize and malformed bodies --------------------------------------------------

/// Sends `head` and then up to `body_len` bytes of body, while reading the
/// answer; returns the status line and how many body bytes went out.
async fn raw_request(base: &str, head: &str, body_len: usize) -> (String, usize) {
    let addr = base.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = head.to_owned();
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        if wr.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        let chunk = vec![b'x'; 64 * 1024];
        while sent < body_len {
            let n = chunk.len().min(body_len - sent);
            if wr.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer in 20 s");
    drop(rd);
    writer.abort();
    let sent = writer.await.unwrap_or(0);
    let text = String::from_utf8_lossy(&answer).into_owned();
    (text.lines().next().unwrap_or_default().to_owned(), sent)
}

/// A 100 MB body, declared or streamed (chunked), is cut off at the limit
/// (413, or an early answer and a closed connection) without the server's
/// memory growing; malformed requests are 400 (or 431 for huge headers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_bodies_are_refused_without_blowing_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        sandbox.config(&format!(
            "[http]\nlisten_addr = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\"\n"
        )),
    )
    .expect("write");
    let p = Proc::start(&path, &[]);
    let base = p.base_url().await;
    p.wait_for("Plugin is ready").await;
    let before = p.rss_kib();
    const HUGE: usize = 100 * 1024 * 1024;

    for (auth, what) in [
        (format!("Bearer {ADMIN_TOKEN}"), "admin"),
        (String::new(), "anonymous"),
    ] {
        // Declared: refused from the header alone, before any body is read.
        let head = format!(
            "POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {HUGE}\r\n\r\n"
        );
        let (status, sent) = raw_request(&base, &head, HUGE).await;
        assert!(status.contains(" 413 "), "{what} declared: {status}");
        assert!(sent < HUGE, "{what} declared: the whole body went out");
        // Streamed without a length: never buffered; answered early.
        let head = format!(
            "POST /admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n"
        );
        let (status, sent) = raw_request(&base, &head, HUGE).await;
        assert!(
            [" 413 ", " 401 ", " 200 "]
                .iter()
                .any(|s| status.contains(s)),
            "{what} streamed: {status}"
        );
        assert!(
            sent < HUGE,
            "{what} streamed: the whole body went out ({status})"
        );
        // On a GET route too.
        let head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {HUGE}\r\n\r\n");
        let (status, sent) = raw_request(&base, &head, HUGE).await;
        assert!(
            status.contains(" 413 ") || status.contains(" 200 "),
            "healthz: {status}"
        );
        assert!(sent < HUGE, "healthz: the whole body went out");
    }

    // Malformed requests.
    for (head, want) in [
        ("GARBAGE\r\n\r\n".to_owned(), " 400 "),
        ("POST /admin/reload HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_owned(), " 400 "),
        (
            "POST /admin/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_owned(),
            " 400 ",
        ),
        (
            "POST /admin/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_owned(),
            "",
        ),
        ("GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_owned(), " 400 "),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1024 * 1024)),
            " 431 ",
        ),
    ] {
        let (status, _) = raw_request(&base, &head, 0).await;
        if want.is_empty() {
            // A broken chunk: the connection is dropped or the request refused; never a 5xx.
            assert!(!status.contains(" 5"), "{head:?}: {status}");
        } else {
            assert!(
                status.contains(want) || status.is_empty(),
                "{:?}: want {want}, got {status:?}",
                &head[..head.len().min(60)]
            );
        }
    }

    // Still healthy, and memory did not grow by anything like the bodies sent.
    let r = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    let after = p.rss_kib();
    eprintln!("VmRSS before {before} KiB, after {after} KiB");
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

// ---- a Teleport server from another CA --------------------------------------------------

/// The real binary, given the first cluster's identity, is pointed at a
/// second Teleport (same cluster name, its own CA): the TLS handshake is
/// refused with a clear error (`invalid peer certificate`), start-up fails
/// (exit 1), the plugin never becomes ready, and nothing is posted.
/// (Client level: `teleport::credentials_from_another_cluster_are_refused`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teleport_with_a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::start(dir.path(), Default::default())
        .await
        .expect("emulators");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let mut opts = EmulatorOptions::new(other_dir.path());
    opts.cluster_name = sandbox.teleport.cluster_name().to_owned();
    let other = TeleportEmulator::start(opts)
        .await
        .expect("second emulator");
    assert_ne!(other.ca_pem(), sandbox.teleport.ca_pem(), "the CAs differ");
    let id = other.create_request("mallory@example.com", &["dev"], "let me in");

    let path = dir.path().join("c.toml");
    let text = sandbox
        .config("[http]\nlisten_addr = \"127.0.0.1:0\"\n")
        .replace(
            &sandbox.teleport.addr().to_string(),
            &other.addr().to_string(),
        );
    std::fs::write(&path, text).expect("write");
    let mut p = Proc::start(&path, &[]);
    // The first connection fails the handshake: a fatal start-up error.
    let status = p.wait_exit().await;
    let log = p.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("TLS handshake failed: invalid peer certificate"),
        "not a clear TLS error:\n{log}"
    );
    for ch in &sandbox.channels {
        assert!(sandbox.discord.messages(ch).is_empty(), "posted to {ch}");
    }
    assert!(
        other.plugin_data(&id, "discord").is_none(),
        "plugin data written"
    );
    let log = p.log();
    assert!(!log.contains("Plugin is ready"), "{log}");
}
