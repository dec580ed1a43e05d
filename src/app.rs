//! The long-running service behind `teleport-discord start`: builds the shared
//! state, serves the HTTP surface, reloads the config on SIGHUP or
//! `POST /admin/reload`, and shuts down gracefully.
//!
//! Shutdown: SIGTERM or the first SIGINT cancels the service token; in-flight
//! work gets [`SHUTDOWN_GRACE`] to finish, then the process exits anyway. A
//! second SIGINT exits at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::{Env, Loaded, SharedConfig};
use crate::http::{AppState, Heartbeat, HttpMetrics, ReloadPort};
use crate::logging::LogHandle;
use crate::readiness::Readiness;
use crate::reload::Reloader;
use crate::tasks::Tasks;
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
    let tasks = Tasks::new(&readiness);

    let config: SharedConfig = Arc::new(ArcSwap::from_pointee(loaded.config));
    let (reloader, reloads) = Reloader::new(
        loaded.path,
        options.env.clone(),
        config.clone(),
        options.log.clone(),
        &mut registry,
    );
    tasks.spawn("config-reload", reloads.run(shutdown.clone()));
    let metrics = HttpMetrics::register(&mut registry);
    let review_metrics = crate::review::ReviewMetrics::register(&mut registry);
    let desk_slot: Arc<std::sync::OnceLock<Arc<crate::review::Desk>>> = Arc::default();
    let heartbeat = Heartbeat::new();
    heartbeat.beat();
    tasks.spawn("heartbeat", heartbeat.clone().run(shutdown.clone()));
    tasks.spawn(
        "log-readiness",
        log_readiness(readiness.clone(), shutdown.clone()),
    );
    let drained = CancellationToken::new();
    if options.handle_signals {
        spawn_signal_handlers(&tasks, shutdown.clone(), reloader.clone(), drained.clone());
    }

    let state = AppState {
        config: config.clone(),
        readiness: readiness.clone(),
        registry: Arc::new(registry),
        reload: Arc::new(reloader.clone()),
        metrics,
        heartbeat,
        interactions: Arc::new(crate::interactions::Endpoint::new()),
        desk: desk_slot.clone(),
        review_metrics: review_metrics.clone(),
    };
    let local = listener.local_addr().map_err(AppError::Serve)?;
    tracing::info!("HTTP server listening on {local}");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    // `[review] listen_addr`: the interactions endpoint alone, for a load
    // balancer that must not reach /metrics or /admin.
    if let Some(addr) = config.load().review.listen_addr {
        let review_listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Bind { addr, source })?;
        tracing::info!("Interactions endpoint listening on {addr}");
        let review_server = axum::serve(review_listener, crate::http::review_router(state.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        tasks.spawn("http-review-server", async move {
            if let Err(e) = review_server.await {
                tracing::error!(error = %e, "the interactions listener failed");
            }
        });
    }
    let server = axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let (served_tx, served) = tokio::sync::oneshot::channel();
    tasks.spawn("http-server", async move {
        let _ = served_tx.send(server.await);
    });

    let config_for_desk = config.clone();
    // The pipeline; its own stop token, so the HTTP server outlives it.
    let pipeline_stop = CancellationToken::new();
    let started = tokio::select! {
        p = crate::service::start(config, &service_metrics, &readiness, &tasks, pipeline_stop.clone(), instance_name(local)) => Some(p),
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
    let mut desk = None;
    if let Some(mut p) = pipeline {
        reloader.set_live(p.live.clone());
        let d = crate::review::Desk::new(
            p.reviews.directory.clone(),
            p.reviews.follow_ups.clone(),
            config_for_desk.clone(),
            review_metrics.clone(),
        );
        let _ = desk_slot.set(d.clone());
        desk = Some(d);
        tokio::select! {
            () = shutdown.cancelled() => {}
            r = &mut p.watch => {
                let e = match r {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(crate::service::ServiceError::Teleport(e)),
                    Err(_) => Some(crate::service::ServiceError::Teleport(crate::teleport::TeleportError::StreamClosed("the watch task failed".to_owned()))),
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
    let served = tokio::time::timeout(SHUTDOWN_GRACE, served).await;
    if let Some(d) = desk {
        // Deferred answers in flight get their follow-ups.
        d.drain(SHUTDOWN_GRACE).await;
    }
    drained.cancel();
    let stopped = tasks.shutdown(SHUTDOWN_GRACE).await;
    if let Some(e) = fatal {
        return Err(e);
    }
    match served {
        Ok(Ok(Ok(()))) => {
            tracing::info!(aborted = ?stopped.aborted, "Successfully shut down");
            Ok(())
        }
        Ok(Ok(Err(e))) => Err(AppError::Serve(e)),
        Ok(Err(_)) => Err(AppError::Serve(std::io::Error::other(
            "the HTTP server task failed",
        ))),
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
/// SIGTERM and SIGINT cancel `shutdown`, SIGHUP asks for a reload; a second
/// SIGINT exits at once, until `done` (the end of the drain) stops listening.
fn spawn_signal_handlers(
    tasks: &Tasks,
    shutdown: CancellationToken,
    reloader: Reloader,
    done: CancellationToken,
) {
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
    tasks.spawn("signals", async move {
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
                    // The reload task owns it from here; its outcome is logged.
                    if reloader.request("sighup").is_err() {
                        tracing::warn!("a reload is already waiting; it will read the file as it is now");
                    }
                }
                () = done.cancelled() => return,
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_signal_handlers(
    tasks: &Tasks,
    shutdown: CancellationToken,
    _reloader: Reloader,
    done: CancellationToken,
) {
    tasks.spawn("signals", async move {
        tokio::select! {
            r = tokio::signal::ctrl_c() => if r.is_ok() { shutdown.cancel() },
            () = done.cancelled() => {}
        }
    });
}
