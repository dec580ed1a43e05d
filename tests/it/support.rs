//! Shared helpers: a config file in a temp dir, the service started
//! in-process on 127.0.0.1:0, an HTTP client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use teleport_discord::app::{self, RunOptions};
use teleport_discord::config::{self, ProcessEnv};
use teleport_discord::logging::LogHandle;
use tokio_util::sync::CancellationToken;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A valid config; `extra` is appended (it may add sections).
pub(crate) fn config_text(extra: &str) -> String {
    format!(
        r#"[teleport]
addr = "127.0.0.1:3025"
identity = "/nonexistent/identity"

[discord]
token = "test-bot-token-XYZ"

[role_to_recipients]
"*" = "1111111111"
{extra}
"#
    )
}

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) config_path: PathBuf,
    pub(crate) client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), app::AppError>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub(crate) async fn start(text: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("teleport-discord.toml");
        std::fs::write(&config_path, text).expect("write config");
        let loaded = config::load(&config_path, &ProcessEnv).expect("valid config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let options = RunOptions {
            env: Arc::new(ProcessEnv),
            log: LogHandle::noop(),
            handle_signals: false,
        };
        let handle = tokio::spawn(app::run(loaded, listener, shutdown.clone(), options));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Self {
            base,
            config_path,
            client,
            shutdown,
            handle: Some(handle),
            _dir: dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn rewrite_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("rewrite config");
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub(crate) async fn reload(&self, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.post(self.url("/admin/reload"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("POST")
    }

    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let r = tokio::time::timeout(Duration::from_secs(20), h).await;
            assert!(
                matches!(r, Ok(Ok(Ok(())))),
                "service did not stop cleanly: {r:?}"
            );
        }
    }
}

/// Runs `promtool check metrics` on `text`. Returns `None` when promtool is
/// not installed outside CI (CI installs Debian's `prometheus` package and
/// must run the check).
pub(crate) fn promtool_check(text: &str) -> Option<std::process::Output> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is required in CI (apt-get install prometheus): {e}"
            );
            eprintln!(
                "promtool not installed; skipping the promtool check (install Debian's `prometheus` package)"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    Some(child.wait_with_output().expect("promtool output"))
}
