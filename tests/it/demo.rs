//! `teleport-discord demo`, the real binary: the short story's transcript and
//! exit code, the page while it keeps running, play through the control API,
//! and clean-up on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_teleport-discord");

/// The demo with stdout read line by line on a thread.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("demo")
            .args(args)
            .env_remove("TELEPORT_DISCORD_TOKEN")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until a line contains `needle`; returns that line.
    fn until(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no line with {needle:?} within {within:?}; transcript:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Reads to the end and waits for the exit code.
    fn finish(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the demo did not exit; transcript:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn text(&self) -> String {
        self.seen.join("\n")
    }

    fn temp_dir(&self) -> PathBuf {
        let line = self
            .seen
            .iter()
            .find(|l| l.trim_start().starts_with("temp dir"))
            .expect("the temp dir is printed");
        let path = line
            .trim_start()
            .trim_start_matches("temp dir")
            .trim()
            .split(' ')
            .next()
            .expect("path");
        PathBuf::from(path)
    }
}

/// Every step of the story shows in the transcript.
fn assert_story(t: &str) {
    let has = |line_with: &[&str]| {
        t.lines()
            .any(|l| line_with.iter().all(|needle| l.contains(needle)))
    };
    for ch in ["#dev", "#ops"] {
        assert!(
            has(&[
                ch,
                "📨 posted",
                "⏳ PENDING",
                "alice@example.com",
                "[Review request]"
            ]),
            "alice posted in {ch}:\n{t}"
        );
        assert!(
            has(&[
                ch,
                "✏️",
                "+review 🟢 bob@example.com approved",
                "⏳ PENDING"
            ]),
            "bob's review in {ch}:\n{t}"
        );
        assert!(
            has(&[
                ch,
                "✅ APPROVED (was ⏳ PENDING)",
                "carol@example.com approved"
            ]),
            "approval in {ch}:\n{t}"
        );
        assert!(
            has(&[ch, "⌛ EXPIRED (was ⏳ PENDING)"]),
            "expiry in {ch}:\n{t}"
        );
    }
    assert!(
        has(&[
            "#fallback",
            "❌ DENIED (was ⏳ PENDING)",
            "🔴 erin@example.com denied"
        ]),
        "denial:\n{t}"
    );
    assert!(
        has(&[
            "burst done: 7 messages in #fallback",
            "0 rate-limited answers (429)"
        ]),
        "burst:\n{t}"
    );
    assert!(
        has(&[
            "✔ story complete",
            "0 duplicates",
            "every expected state was seen"
        ]),
        "{t}"
    );
    assert!(!t.contains('✗'), "{t}");
}

#[test]
fn demo_plays_the_short_story_and_exits_0() {
    let mut demo = Demo::start(&["--fast", "--listen", "127.0.0.1:0"]);
    let code = demo.finish(Duration::from_secs(40));
    let t = demo.text();
    assert_eq!(code, 0, "{t}");
    assert_story(&t);
    assert!(
        t.contains("teleport_discord_messages_total{action=\"created\"} 12"),
        "{t}"
    );
    let dir = demo.temp_dir();
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keeps_running_serves_the_page_takes_requests_and_cleans_up_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut demo = Demo::start(&["--fast", "--keep-running", "--listen", "127.0.0.1:0"]);
    let page = demo.until("page ", Duration::from_secs(20));
    let url = page
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("page URL")
        .to_owned();
    demo.until("Everything keeps running", Duration::from_secs(40));
    assert_story(&demo.text());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    let resp = client.get(&url).send().await.expect("GET page");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/html"))
    );
    let html = resp.text().await.expect("body");
    for needle in [
        "data-channel=\"dev\"",
        "data-channel=\"ops\"",
        "data-channel=\"fallback\"",
        "alice@example.com",
        "dave@example.com",
        "ci-runner-07@example.com",
        "✅ APPROVED",
        "❌ DENIED",
        "⌛ EXPIRED",
        // Review embeds: approve green, deny red (upstream's colours).
        "border-left-color:#238823",
        "border-left-color:#d2222d",
        "bob@example.com",
        // The link button of a pending request (Enterprise cluster).
        "class=\"button\" href=\"https://teleport.example.com/web/requests/",
        // alice's message: created, then bob's and carol's reviews.
        "edit history: created, then 2 edit(s)",
        "created, never edited",
        "(edited)",
        "<pre><code>Deploy the hotfix for INC-1234</code></pre>",
    ] {
        assert!(html.contains(needle), "page lacks {needle:?}:\n{html}");
    }
    assert!(!html.contains("<script>alert"), "{html}");

    // Play: a request through the control API shows up in the transcript.
    let base = url.trim_end_matches('/');
    let created: serde_json::Value = client
        .post(format!("{base}/teleport/requests"))
        .json(&serde_json::json!({"user": "<b>newcomer</b>", "roles": ["dev"], "reason": "<script>alert(1)</script>"}))
        .send()
        .await
        .expect("POST /teleport/requests")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    demo.until("<b>newcomer</b> wants `dev`", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    let html = loop {
        let html = client
            .get(&url)
            .send()
            .await
            .expect("GET page")
            .text()
            .await
            .expect("body");
        if html.contains(&id) {
            break html;
        }
        assert!(
            Instant::now() < deadline,
            "the new request is not on the page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(html.contains("&lt;b&gt;newcomer&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<b>newcomer"), "user text is escaped");
    assert!(!html.contains("<script>alert"), "reason is escaped");
    let resp = client
        .post(format!("{base}/teleport/requests/{id}/resolve"))
        .json(&serde_json::json!({"approve": false, "reason": "not today"}))
        .send()
        .await
        .expect("resolve");
    assert_eq!(resp.status(), 200);
    demo.until("❌ DENIED (was ⏳ PENDING)", Duration::from_secs(30));

    // SIGTERM: everything stops, the temp dir goes, exit 0.
    let dir = demo.temp_dir();
    assert!(dir.join("identity").exists());
    let pid = demo.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = demo.finish(Duration::from_secs(25));
    assert_eq!(code, 0, "{}", demo.text());
    assert!(demo.text().contains("removed "), "{}", demo.text());
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
