//! The long-running service behind `teleport-discord start`: builds the shared
//! state, serves the HTTP surface, reloads the config on SIGHUP or
//! `POST /admin/reload`, and shuts down gracefully.
//!
//! Shutdown: SIGTERM or the first SIGINT cancels the service token; in-flight
//! work gets [`SHUTDOWN_GRACE`] to finish, then the process exits anyway. A
//! second SIGINT exits at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigDiff, ConfigError, Env, Loaded, SharedConfig};
use crate::http::{AppState, Heartbeat, HttpMetrics};
use crate::logging::LogHandle;
use crate::readiness::Readiness;
use crate::version;

/// How long in-flight work may take to finish after a shutdown signal
/// (upstream's value).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The HTTP listener could not be opened.
    #[error("cannot listen on {addr} (`http.listen_addr`): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// The pipeline could not start, or failed for good.
    #[error(transparent)]
    Service(#[from] crate::service::ServiceError),
}

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

/// Re-reads the config file, validates it and swaps it in. Reloads are
/// serialised; a failed one leaves the running config untouched.
#[derive(Debug, Clone)]
pub struct Reloader {
    inner: Arc<ReloaderInner>,
}

struct ReloaderInner {
    path: PathBuf,
    env: Arc<dyn Env>,
    config: SharedConfig,
    log: LogHandle,
    lock: tokio::sync::Mutex<()>,
    metrics: ReloadMetrics,
    updates: tokio::sync::watch::Sender<Arc<Config>>,
    /// Set once the pipeline runs: puts Discord and Teleport changes into effect.
    live: std::sync::OnceLock<crate::service::LiveSettings>,
}

impl std::fmt::Debug for ReloaderInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloaderInner")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    fn new(
        path: PathBuf,
        env: Arc<dyn Env>,
        config: SharedConfig,
        log: LogHandle,
        registry: &mut Registry,
    ) -> Self {
        let (updates, _) = tokio::sync::watch::channel(config.load_full());
        Self {
            inner: Arc::new(ReloaderInner {
                path,
                env,
                config,
                log,
                lock: tokio::sync::Mutex::new(()),
                metrics: ReloadMetrics::register(registry),
                updates,
                live: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Reloads now. `trigger` names the cause for metrics and logs.
    pub async fn reload(&self, trigger: &'static str) -> Result<ConfigDiff, ConfigError> {
        let inner = &self.inner;
        let _serial = inner.lock.lock().await;
        let (path, env) = (inner.path.clone(), inner.env.clone());
        let loaded = tokio::task::spawn_blocking(move || config::load(&path, &*env))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigError::Read {
                    path: inner.path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        let applied = match loaded {
            Ok(loaded) => {
                let old = inner.config.load_full();
                match inner.live.get() {
                    Some(live) => live
                        .apply(&old, &loaded.config)
                        .await
                        .map(|()| loaded)
                        .map_err(|n| ConfigError::NotApplied {
                            path: inner.path.clone(),
                            key: n.key,
                            reason: n.reason,
                        }),
                    None => Ok(loaded),
                }
            }
            Err(e) => Err(e),
        };
        let result = match applied {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!(file = %loaded.path.display(), "config: {w}");
                }
                let old = inner.config.load_full();
                let new = Arc::new(loaded.config);
                let diff = ConfigDiff::between(&old, &new);
                inner.config.store(new.clone());
                inner.log.set_severity(new.log.severity);
                inner.updates.send_replace(new);
                inner.metrics.last_ok.set(1);
                inner.metrics.last_success_time.set(unix_now());
                tracing::info!(trigger, changed = ?diff.changed, restart_required = ?diff.restart_required, "Config reloaded");
                if !diff.restart_required.is_empty() {
                    tracing::warn!(keys = ?diff.restart_required, "some changed settings take effect only after a restart");
                }
                Ok(diff)
            }
            Err(e) => {
                inner.metrics.last_ok.set(0);
                tracing::error!(trigger, error = %e, "Config reload failed; the running config is unchanged");
                Err(e)
            }
        };
        let label = ReloadLabels {
            result: if result.is_ok() { "success" } else { "failure" },
            trigger,
        };
        inner.metrics.reloads.get_or_create(&label).inc();
        result
    }

    /// From now on, reloads put Discord and Teleport changes into effect
    /// through `live` (before that, they apply at the pipeline's start).
    pub fn set_live(&self, live: crate::service::LiveSettings) {
        let _ = self.inner.live.set(live);
    }

    /// Receives every config swapped in by a reload.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Config>> {
        self.inner.updates.subscribe()
    }
}

/// Options for [`run`].
#[derive(Clone)]
pub struct RunOptions {
    /// Where environment overrides come from on reload.
    pub env: Arc<dyn Env>,
    /// Log severity handle, for reloads.
    pub log: LogHandle,
    /// Install SIGTERM/SIGINT/SIGHUP handlers (the real process does; tests don't).
    pub handle_signals: bool,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("handle_signals", &self.handle_signals)
            .finish_non_exhaustive()
    }
}

/// `teleport-discord start`: binds `[http] listen_addr` and runs until a signal.
pub async fn start(loaded: Loaded, options: RunOptions) -> Result<(), AppError> {
    let addr = loaded.config.http.listen_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })?;
    run(loaded, listener, CancellationToken::new(), options).await
}

/// Runs the service on an already-bound listener until `shutdown` is
/// cancelled (or a signal arrives, with `handle_signals`).
pub async fn run(
    loaded: Loaded,
    listener: TcpListener,
    shutdown: CancellationToken,
    options: RunOptions,
) -> Result<(), AppError> {
    tracing::info!(
        "Starting Teleport Access Discord Plugin {}:{}",
        version::VERSION,
        version::GIT_COMMIT
    );
    for w in &loaded.warnings {
        tracing::warn!(file = %loaded.path.display(), "config: {w}");
    }
    let mut registry = crate::metrics::new_registry();
    let readiness = Readiness::new();
    registry.register_collector(Box::new(readiness.clone()));
    let service_metrics = crate::service::ServiceMetrics::register(&mut registry);

    let config: SharedConfig = Arc::new(ArcSwap::from_pointee(loaded.config));
    let reloader = Reloader::new(
        loaded.path,
        options.env.clone(),
        config.clone(),
        options.log.clone(),
        &mut registry,
    );
    let metrics = HttpMetrics::register(&mut registry);
    let heartbeat = Heartbeat::new();
    heartbeat.beat();
    tokio::spawn(heartbeat.clone().run(shutdown.clone()));
    tokio::spawn(log_readiness(readiness.clone(), shutdown.clone()));
    if options.handle_signals {
        spawn_signal_handlers(shutdown.clone(), reloader.clone());
    }

    let state = AppState {
        config: config.clone(),
        readiness: readiness.clone(),
        registry: Arc::new(registry),
        reloader: reloader.clone(),
        metrics,
        heartbeat,
    };
    let local = listener.local_addr().map_err(AppError::Serve)?;
    tracing::info!("HTTP server listening on {local}");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });

    // The pipeline; its own stop token, so the HTTP server outlives it.
    let pipeline_stop = CancellationToken::new();
    let started = tokio::select! {
        p = crate::service::start(config, &service_metrics, &readiness, pipeline_stop.clone(), instance_name(local)) => Some(p),
        () = shutdown.cancelled() => None,
    };
    let mut fatal: Option<AppError> = None;
    let pipeline = match started {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            fatal = Some(e.into());
            None
        }
        None => None,
    };
    if let Some(mut p) = pipeline {
        reloader.set_live(p.live.clone());
        tokio::select! {
            () = shutdown.cancelled() => {}
            r = &mut p.watch => {
                let e = match r {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(crate::service::ServiceError::Teleport(e)),
                    Err(join) => Some(crate::service::ServiceError::Teleport(crate::teleport::TeleportError::StreamClosed(format!("watch task failed: {join}")))),
                };
                fatal = e.map(AppError::from);
            }
        }
        tracing::info!("Shutting down");
        pipeline_stop.cancel();
        p.shutdown().await;
    }
    pipeline_stop.cancel();
    shutdown.cancel();
    let served = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
    if let Some(e) = fatal {
        return Err(e);
    }
    match served {
        Ok(Ok(Ok(()))) => {
            tracing::info!("Successfully shut down");
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(AppError::Serve(e)),
        Ok(Err(join)) => Err(AppError::Serve(std::io::Error::other(join.to_string()))),
        Err(_) => {
            tracing::warn!(
                "shutdown grace period of {}s elapsed; closing remaining connections",
                SHUTDOWN_GRACE.as_secs()
            );
            Ok(())
        }
    }
}

/// This process's name among replicas (`discord_owner`): the host name and
/// the HTTP port, so a restarted single instance keeps owning its requests.
fn instance_name(local: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!("{host}:{}", local.port())
}

async fn log_readiness(readiness: Readiness, shutdown: CancellationToken) {
    let mut rx = readiness.subscribe();
    let mut was_ready = false;
    loop {
        let ready = *rx.borrow_and_update();
        if ready && !was_ready {
            tracing::info!("Plugin is ready");
        } else if !ready && was_ready {
            let report = readiness.report();
            let why: Vec<String> = report
                .components
                .iter()
                .filter_map(|(n, c)| c.reason.as_ref().map(|r| format!("{n}: {r}")))
                .collect();
            tracing::warn!(reasons = ?why, "Plugin is not ready");
        }
        was_ready = ready;
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(unix)]
fn spawn_signal_handlers(shutdown: CancellationToken, reloader: Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    );
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = streams else {
        tracing::error!("cannot install signal handlers; stop the process with SIGKILL");
        return;
    };
    tokio::spawn(async move {
        let mut interrupts = 0u32;
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("received SIGTERM, shutting down gracefully");
                    shutdown.cancel();
                }
                _ = int.recv() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        tracing::warn!("second SIGINT, exiting now");
                        std::process::exit(130);
                    }
                    tracing::info!("received SIGINT, shutting down gracefully (send it again to exit at once)");
                    shutdown.cancel();
                }
                _ = hup.recv() => {
                    tracing::info!("received SIGHUP, reloading the config");
                    let r = reloader.clone();
                    tokio::spawn(async move { let _ = r.reload("sighup").await; });
                }
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_signal_handlers(shutdown: CancellationToken, _reloader: Reloader) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            shutdown.cancel();
        }
    });
}
