//! Config reloads (SIGHUP, `POST /admin/reload`), each owned from start to
//! end by one task ([`ReloadTask::run`]): read and validate the file, put
//! Discord and Teleport changes into effect ([`LiveSettings`]), store the new
//! config, count it, log it. Whoever asked only waits for the report (or
//! stops waiting): a client that hangs up or times out cannot cut a reload
//! in half. Reloads run one at a time; requests that arrive while one runs
//! share the next one (it reads the file as it is then).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{self, ConfigDiff, ConfigError, Env, SharedConfig};
use crate::http::{Refused, ReloadPort, ReloadReport, ReloadStatus};
use crate::logging::LogHandle;
use crate::service::LiveSettings;
use crate::sync::lock;

/// Reload requests that may wait at once (more are refused: a reload that
/// has not started yet will read the file anyway).
const WAITING: usize = 16;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
    trigger: &'static str,
}

#[derive(Debug, Clone)]
struct ReloadMetrics {
    reloads: Family<ReloadLabels, Counter>,
    last_ok: Gauge,
    last_success_time: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ReloadMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reloads: Family::default(),
            last_ok: Gauge::default(),
            last_success_time: Gauge::default(),
        };
        registry.register(
            "teleport_discord_config_reloads",
            "Config reload attempts, by result (success, failure) and trigger (sighup, http)",
            m.reloads.clone(),
        );
        registry.register(
            "teleport_discord_config_last_reload_successful",
            "Whether the last config reload succeeded (1) or was refused (0)",
            m.last_ok.clone(),
        );
        registry.register(
            "teleport_discord_config_last_reload_success_timestamp_seconds",
            "Time of the last successful config load (start-up or reload), seconds since the Unix epoch",
            m.last_success_time.clone(),
        );
        m.last_ok.set(1);
        m.last_success_time.set(unix_now());
        m
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn now_rfc3339() -> String {
    crate::teleport::rfc3339(std::time::SystemTime::now())
}

#[derive(Debug)]
struct Ask {
    trigger: &'static str,
    reply: oneshot::Sender<Arc<ReloadReport>>,
}

#[derive(Debug, Default)]
struct Status {
    running: Option<u64>,
    last: Option<Arc<ReloadReport>>,
}

/// Asks for reloads and reads their outcome. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Reloader {
    asks: mpsc::Sender<Ask>,
    status: Arc<Mutex<Status>>,
    live: Arc<OnceLock<LiveSettings>>,
}

impl Reloader {
    /// A reloader of the file at `path` into `config`, and the task that
    /// runs its reloads (spawn it; it ends when every [`Reloader`] is gone or
    /// `cancel` fires).
    pub fn new(
        path: PathBuf,
        env: Arc<dyn Env>,
        config: SharedConfig,
        log: LogHandle,
        registry: &mut Registry,
    ) -> (Self, ReloadTask) {
        let (asks, rx) = mpsc::channel(WAITING);
        let status = Arc::new(Mutex::new(Status::default()));
        let live = Arc::new(OnceLock::new());
        let task = ReloadTask {
            asks: rx,
            path,
            env,
            config,
            log,
            metrics: ReloadMetrics::register(registry),
            status: status.clone(),
            live: live.clone(),
        };
        (Self { asks, status, live }, task)
    }

    /// From now on, reloads put Discord and Teleport changes into effect
    /// through `live` (before that, the pipeline picks them up as it starts).
    pub fn set_live(&self, live: LiveSettings) {
        let _ = self.live.set(live);
    }
}

impl ReloadPort for Reloader {
    fn request(
        &self,
        trigger: &'static str,
    ) -> Result<oneshot::Receiver<Arc<ReloadReport>>, Refused> {
        let (reply, rx) = oneshot::channel();
        match self.asks.try_send(Ask { trigger, reply }) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Refused::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Refused::ShuttingDown),
        }
    }

    fn status(&self) -> ReloadStatus {
        let s = lock(&self.status);
        ReloadStatus {
            running: s.running,
            last: s.last.clone(),
        }
    }
}

/// The task that owns every reload; see the module docs.
pub struct ReloadTask {
    asks: mpsc::Receiver<Ask>,
    path: PathBuf,
    env: Arc<dyn Env>,
    config: SharedConfig,
    log: LogHandle,
    metrics: ReloadMetrics,
    status: Arc<Mutex<Status>>,
    live: Arc<OnceLock<LiveSettings>>,
}

impl std::fmt::Debug for ReloadTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadTask")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ReloadTask {
    /// Runs reloads as they are asked for, until `cancel` fires or every
    /// [`Reloader`] is gone. A reload under way when `cancel` fires is
    /// finished first.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut id = 0;
        loop {
            let first = tokio::select! {
                a = self.asks.recv() => match a { Some(a) => a, None => return },
                () = cancel.cancelled() => return,
            };
            let mut waiting = vec![first];
            while let Ok(a) = self.asks.try_recv() {
                waiting.push(a);
            }
            id += 1;
            lock(&self.status).running = Some(id);
            let report = Arc::new(self.reload(id, waiting[0].trigger).await);
            {
                let mut s = lock(&self.status);
                s.running = None;
                s.last = Some(report.clone());
            }
            for w in waiting {
                // Whoever stopped waiting reads it from the status.
                let _ = w.reply.send(report.clone());
            }
        }
    }

    async fn reload(&self, id: u64, trigger: &'static str) -> ReloadReport {
        let started_at = now_rfc3339();
        let (path, env) = (self.path.clone(), self.env.clone());
        let loaded = tokio::task::spawn_blocking(move || config::load(&path, &*env))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigError::Read {
                    path: self.path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        let applied = match loaded {
            Ok(loaded) => match self.live.get() {
                Some(live) => live
                    .apply(&self.config.load(), &loaded.config)
                    .await
                    .map(|()| loaded)
                    .map_err(|n| ConfigError::NotApplied {
                        path: self.path.clone(),
                        key: n.key,
                        reason: n.reason,
                    }),
                None => Ok(loaded),
            },
            Err(e) => Err(e),
        };
        let result = match applied {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!(file = %loaded.path.display(), "config: {w}");
                }
                let new = Arc::new(loaded.config);
                let diff = ConfigDiff::between(&self.config.load(), &new);
                self.config.store(new.clone());
                self.log.set_severity(new.log.severity);
                self.metrics.last_ok.set(1);
                self.metrics.last_success_time.set(unix_now());
                tracing::info!(trigger, changed = ?diff.changed, restart_required = ?diff.restart_required, "Config reloaded");
                if !diff.restart_required.is_empty() {
                    tracing::warn!(keys = ?diff.restart_required, "some changed settings take effect only after a restart");
                }
                Ok(diff)
            }
            Err(e) => {
                self.metrics.last_ok.set(0);
                tracing::error!(trigger, error = %e, "Config reload failed; the running config is unchanged");
                Err(e)
            }
        };
        let label = ReloadLabels {
            result: if result.is_ok() { "success" } else { "failure" },
            trigger,
        };
        self.metrics.reloads.get_or_create(&label).inc();
        report(id, trigger, started_at, result)
    }
}

fn report(
    id: u64,
    trigger: &'static str,
    started_at: String,
    result: Result<ConfigDiff, ConfigError>,
) -> ReloadReport {
    let finished_at = now_rfc3339();
    match result {
        Ok(diff) => ReloadReport {
            id,
            trigger,
            started_at,
            finished_at,
            result: "success",
            changed: diff.changed,
            restart_required: diff.restart_required,
            error: None,
            details: Vec::new(),
        },
        Err(e) => ReloadReport {
            id,
            trigger,
            started_at,
            finished_at,
            result: "failure",
            changed: Vec::new(),
            restart_required: Vec::new(),
            error: Some(
                if matches!(e, ConfigError::NotApplied { .. }) {
                    "the new config could not be put into effect; the running config is unchanged"
                } else {
                    "the new config is invalid; the running config is unchanged"
                }
                .to_owned(),
            ),
            details: e.problems(),
        },
    }
}
