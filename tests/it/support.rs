//! Shared helpers: a config file in a temp dir, the service started
//! in-process on 127.0.0.1:0, an HTTP client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use teleport_discord::app::{self, RunOptions};
use teleport_discord::config::{self, ProcessEnv};
use teleport_discord::logging::LogHandle;
use teleport_discord_testkit::sandbox::Sandbox;
use tokio_util::sync::CancellationToken;

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A valid config that names no running Teleport (for tests that never get
/// as far as connecting); `extra` is appended (it may add sections).
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
    pub(crate) sandbox: Sandbox,
    pub(crate) base: String,
    pub(crate) config_path: PathBuf,
    pub(crate) client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<Result<(), app::AppError>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// The service in-process against both emulators; `extra` is appended to
    /// the sandbox's config.
    pub(crate) async fn start(extra: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox = Sandbox::start(dir.path(), Default::default())
            .await
            .expect("emulators");
        let config_path = sandbox.write_config(extra).expect("write config");
        Self::run(sandbox, config_path, Some(dir)).await
    }

    /// The service against an already running sandbox (whose directory the
    /// caller keeps).
    pub(crate) async fn start_with(sandbox: Sandbox, extra: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config_path = sandbox.write_config(extra).expect("write config");
        Self::run(sandbox, config_path, None).await
    }

    /// The service against a sandbox, with the config text given.
    pub(crate) async fn start_with_text(
        sandbox: Sandbox,
        dir: tempfile::TempDir,
        text: &str,
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config_path = dir.path().join("teleport-discord.toml");
        std::fs::write(&config_path, text).expect("write config");
        Self::run(sandbox, config_path, Some(dir)).await
    }

    async fn run(sandbox: Sandbox, config_path: PathBuf, dir: Option<tempfile::TempDir>) -> Self {
        let (base, shutdown, handle) = spawn_service(&config_path).await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Self {
            sandbox,
            base,
            config_path,
            client,
            shutdown,
            handle: Some(handle),
            _dir: dir,
        }
    }

    /// Stops the service and starts a new one on the same sandbox and config.
    pub(crate) async fn restart(self) -> Self {
        self.stopped().await.start_again().await
    }

    /// Stops the service; the emulators keep running.
    pub(crate) async fn stopped(mut self) -> Stopped {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let r = tokio::time::timeout(Duration::from_secs(20), h).await;
            assert!(
                matches!(r, Ok(Ok(Ok(())))),
                "service did not stop cleanly: {r:?}"
            );
        }
        let Self {
            sandbox,
            config_path,
            _dir,
            ..
        } = self;
        Stopped {
            sandbox,
            config_path,
            dir: _dir,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Rewrites the config: the sandbox's plus `extra`.
    pub(crate) fn rewrite_config(&self, extra: &str) {
        std::fs::write(&self.config_path, self.sandbox.config(extra)).expect("rewrite config");
    }

    /// Rewrites the config file with exactly `text`.
    pub(crate) fn rewrite_config_raw(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("rewrite config");
    }

    /// Waits until `/readyz` answers 200.
    pub(crate) async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if self.get("/readyz").await.status() == 200 {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready in 15 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

/// The emulators of a stopped [`TestApp`] (what happens while the service is down).
pub(crate) struct Stopped {
    pub(crate) sandbox: Sandbox,
    config_path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Stopped {
    /// Starts the service again on the same sandbox and config.
    pub(crate) async fn start_again(self) -> TestApp {
        TestApp::run(self.sandbox, self.config_path, self.dir).await
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

/// Polls `f` every 20 ms until it gives a value; fails after 15 s naming `what`.
pub(crate) async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn status_line(content: &str) -> String {
    content
        .lines()
        .find(|l| l.starts_with("*Status*"))
        .unwrap_or_default()
        .to_owned()
}

/// The service in-process with the config at `path`, on `127.0.0.1:0`: its
/// base URL, its stop token and its task.
async fn spawn_service(
    path: &std::path::Path,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), app::AppError>>,
) {
    let loaded = config::load(path, &ProcessEnv).expect("valid config");
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
    (base, shutdown, handle)
}

/// Another replica in-process on the same emulators (it shares nothing with
/// the first but Teleport and Discord).
pub(crate) struct Replica {
    base: String,
    client: reqwest::Client,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), app::AppError>>,
}

impl TestApp {
    /// Starts another replica with a copy of this one's config (kept in
    /// `dir`), and waits until it is ready.
    pub(crate) async fn second_replica(&self, dir: &std::path::Path) -> Replica {
        let text = std::fs::read_to_string(&self.config_path).expect("config");
        let path = dir.join("second.toml");
        std::fs::write(&path, text).expect("write");
        let (base, shutdown, handle) = spawn_service(&path).await;
        let r = Replica {
            base,
            client: reqwest::Client::new(),
            shutdown,
            handle,
        };
        r.wait_ready().await;
        r
    }
}

impl Replica {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until `/readyz` answers 200 (a standby is ready too).
    pub(crate) async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let ok = self
                .client
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready in 15 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn stop_second(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(Duration::from_secs(20), self.handle).await;
        assert!(
            matches!(r, Ok(Ok(Ok(())))),
            "replica did not stop cleanly: {r:?}"
        );
    }
}
