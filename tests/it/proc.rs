//! A real `teleport-discord start` process for the tests that need one
//! (signals, logs, memory): stdout and stderr collected line by line, killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_teleport-discord");

/// `teleport-discord start` with stdout and stderr collected line by line.
pub(crate) struct Proc {
    pub(crate) child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub(crate) fn start(config: &Path, envs: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["start", "-c", config.to_str().expect("utf8")])
            .env_remove("TELEPORT_DISCORD_CONFIG")
            .env_remove("TELEPORT_DISCORD_TOKEN")
            .env_remove("TELEPORT_DISCORD_ADMIN_TOKEN")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for stream in [out, err] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    sink.lock().expect("lock").push(line);
                }
            });
        }
        Self { child, lines }
    }

    pub(crate) async fn wait_for(&self, needle: &str) -> String {
        let lines = &self.lines;
        until(&format!("a log line with {needle:?}"), lines, || {
            let got = lines.lock().expect("lock");
            got.iter().find(|l| l.contains(needle)).cloned()
        })
        .await
    }

    /// Waits until `n` lines contain `needle`.
    pub(crate) async fn wait_for_nth(&self, needle: &str, n: usize) {
        let lines = &self.lines;
        until(&format!("{n} log lines with {needle:?}"), lines, || {
            let got = lines.lock().expect("lock");
            (got.iter().filter(|l| l.contains(needle)).count() >= n).then_some(())
        })
        .await;
    }

    pub(crate) fn log(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    pub(crate) async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = &mut self.child;
        until("the process to exit", &self.lines, || {
            child.try_wait().expect("wait")
        })
        .await
    }

    /// Resident memory of the process, in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub(crate) async fn base_url(&self) -> String {
        let line = self.wait_for("HTTP server listening on").await;
        format!("http://{}", line.rsplit(' ').next().expect("addr").trim())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms for up to 20 s; on timeout fails with the log so far.
async fn until<T>(what: &str, lines: &Mutex<Vec<String>>, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            lines.lock().expect("lock").join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
