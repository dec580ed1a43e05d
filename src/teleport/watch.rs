//! The watch as a supervised task: connect → `WatchEvents` → `OpInit` within
//! 15 s → ready → deliver [`WatchEvent`]s on an mpsc channel.
//!
//! When the stream ends or fails, the latch goes not ready (`/readyz` 503),
//! the error is classified ([`ErrorClass`]): transient problems reconnect
//! after a capped, jittered [`Backoff`] delay; refused credentials (and any
//! change of the credential files) rebuild the client from freshly read
//! credentials; anything else ends the task with the error. With
//! `TELEPORT_PLUGIN_FAIL_FAST=true` every disconnect ends the task with
//! [`TeleportError::FailFast`] so the process can exit non-zero.
//!
//! After every Init a [`WatchEvent::Snapshot`] lists all access requests, so
//! events missed while no stream was open are not lost.
//!
//! With `refresh_identity` the credential files are re-read every interval;
//! when they changed, a new client (new TLS handshake, new certificate) opens
//! a second watch, and once its Init arrived the old stream is drained and
//! dropped: events overlap (duplicates are possible, losses are not).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ConnectOptions, PingInfo, rpc_error};
use super::identity::CredentialSource;
use super::model::{WatchEvent, event_from_pb};
use super::{ErrorClass, KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST, TeleportError, pb};
use crate::backoff::{Backoff, random_jitter};
use crate::readiness::Latch;

/// A stream that lived this long resets the reconnect backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Watch settings.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Kinds to watch.
    pub kinds: Vec<String>,
    /// Let the server drop kinds we may not watch.
    pub allow_partial_success: bool,
    /// How long to wait for `OpInit`.
    pub init_timeout: Duration,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// `TELEPORT_PLUGIN_FAIL_FAST`.
    pub fail_fast: bool,
    /// `refresh_identity_interval` when `refresh_identity` is on.
    pub refresh_interval: Option<Duration>,
    /// Send a [`WatchEvent::Snapshot`] after every Init.
    pub catch_up: bool,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            kinds: vec![
                KIND_ACCESS_REQUEST.to_owned(),
                KIND_ACCESS_MONITORING_RULE.to_owned(),
            ],
            allow_partial_success: true,
            init_timeout: Duration::from_secs(15),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            fail_fast: false,
            refresh_interval: None,
            catch_up: true,
        }
    }
}

impl WatchConfig {
    /// Defaults plus `refresh_identity` and `TELEPORT_PLUGIN_FAIL_FAST` from the config.
    pub fn from_config(c: &crate::config::TeleportConfig) -> Self {
        let refresh_interval = match &c.credentials {
            crate::config::Credentials::IdentityFile {
                refresh: true,
                refresh_interval,
                ..
            } => Some(refresh_interval.get()),
            _ => None,
        };
        Self {
            refresh_interval,
            fail_fast: c.fail_fast,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: &'static str,
    op: &'static str,
}

/// Watch metrics.
#[derive(Debug, Clone, Default)]
pub struct WatchMetrics {
    connected: Gauge,
    reconnects: Counter,
    events: Family<EventLabels, Counter>,
    bad_events: Counter,
    last_event: Gauge<f64, AtomicU64>,
    identity_reloads: Counter,
}

impl WatchMetrics {
    /// Registers `teleport_watch_*` metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "teleport_watch_connected",
            "Whether the Teleport watch is connected (1) or not (0)",
            m.connected.clone(),
        );
        registry.register(
            "teleport_watch_reconnects",
            "Teleport watch reconnect attempts",
            m.reconnects.clone(),
        );
        registry.register(
            "teleport_watch_events",
            "Teleport watch events delivered, by kind and operation",
            m.events.clone(),
        );
        registry.register(
            "teleport_watch_bad_events",
            "Teleport watch events skipped because they could not be decoded",
            m.bad_events.clone(),
        );
        registry.register(
            "teleport_watch_last_event_timestamp_seconds",
            "Unix time of the last Teleport watch event",
            m.last_event.clone(),
        );
        registry.register(
            "teleport_identity_reloads",
            "Teleport credentials re-read after a change",
            m.identity_reloads.clone(),
        );
        m
    }

    /// Whether the watch is connected now.
    pub fn connected(&self) -> bool {
        self.connected.get() == 1
    }
    /// Reconnect attempts so far.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.get()
    }
    /// Events skipped as undecodable.
    pub fn bad_events(&self) -> u64 {
        self.bad_events.get()
    }
    /// Credential reloads so far.
    pub fn identity_reloads(&self) -> u64 {
        self.identity_reloads.get()
    }

    fn event(&self, ev: &WatchEvent) {
        let (kind, op) = ev.labels();
        self.events.get_or_create(&EventLabels { kind, op }).inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_event.set(now);
    }
}

/// The running watch: the current client (replaced on identity refresh) and the task.
#[derive(Debug)]
pub struct WatchHandle {
    client: Arc<ArcSwap<Client>>,
    started: Arc<Client>,
    ping: PingInfo,
    /// The supervisor task; it ends with `Ok` on cancellation, else with the fatal error.
    pub task: JoinHandle<Result<(), TeleportError>>,
}

impl WatchHandle {
    /// What `Ping` answered at start (cluster name, version, proxy address).
    pub fn ping(&self) -> &PingInfo {
        &self.ping
    }
    /// The current client, for plugin data and review calls.
    pub fn client(&self) -> Client {
        Client::clone(&self.client.load())
    }
    /// A shared cell always holding the current client.
    pub fn client_cell(&self) -> Arc<ArcSwap<Client>> {
        self.client.clone()
    }
    /// Puts the client this watch connected with back in the cell (after the
    /// watch it replaced has ended, in case that one wrote last).
    pub fn republish(&self) {
        self.client.store(self.started.clone());
    }
}

/// Everything the supervisor needs.
#[derive(Debug)]
pub struct Watcher {
    /// Where to connect.
    pub opts: ConnectOptions,
    /// Credentials.
    pub source: CredentialSource,
    /// Settings.
    pub config: WatchConfig,
    /// Readiness latch (`teleport`).
    pub latch: Latch,
    /// Metrics.
    pub metrics: WatchMetrics,
}

impl Watcher {
    /// A watcher for the `[teleport]` config (mode, credentials,
    /// `refresh_identity`, `TELEPORT_PLUGIN_FAIL_FAST`).
    pub fn from_config(
        c: &crate::config::TeleportConfig,
        latch: Latch,
        metrics: WatchMetrics,
    ) -> Result<Self, TeleportError> {
        Ok(Self {
            opts: ConnectOptions::from_config(c),
            source: CredentialSource::from_config(&c.credentials),
            config: WatchConfig::from_config(c),
            latch,
            metrics,
        })
    }

    /// Loads credentials, connects and pings (refusing servers older than
    /// 6.1.0-beta.1); errors here are start-up errors. Then spawns the supervisor that delivers events to `tx` until `cancel`.
    pub async fn start(
        self,
        tx: mpsc::Sender<WatchEvent>,
        cancel: CancellationToken,
    ) -> Result<WatchHandle, TeleportError> {
        self.start_in(None, tx, cancel).await
    }

    /// [`Self::start`], publishing the client in an existing cell (when a
    /// reload replaces the watch, the plugin data store keeps its cell). The
    /// cell is written only once the new connection answered `Ping`.
    pub async fn start_in(
        self,
        cell: Option<Arc<ArcSwap<Client>>>,
        tx: mpsc::Sender<WatchEvent>,
        cancel: CancellationToken,
    ) -> Result<WatchHandle, TeleportError> {
        let identity = Arc::new(self.source.load()?);
        let fingerprint = self.source.fingerprint()?;
        let client = Client::connect(&self.opts, identity).await?;
        let ping = client.ping().await?;
        let started = Arc::new(client);
        let cell = match cell {
            Some(cell) => {
                cell.store(started.clone());
                cell
            }
            None => Arc::new(ArcSwap::new(started.clone())),
        };
        let sup = Supervisor {
            w: self,
            cell: cell.clone(),
            tx,
            cancel,
            fingerprint,
        };
        Ok(WatchHandle {
            client: cell,
            started,
            ping,
            task: tokio::spawn(sup.run()),
        })
    }
}

struct Supervisor {
    w: Watcher,
    cell: Arc<ArcSwap<Client>>,
    tx: mpsc::Sender<WatchEvent>,
    cancel: CancellationToken,
    fingerprint: Vec<u8>,
}

enum End {
    Cancelled,
    Failed(TeleportError),
}

type Stream = tonic::Streaming<pb::proto::Event>;

impl Supervisor {
    async fn run(mut self) -> Result<(), TeleportError> {
        let mut attempt: u32 = 0;
        loop {
            let client = Client::clone(&self.cell.load());
            let end = match self.open(&client).await {
                Ok((stream, kinds)) => {
                    let connected_at = tokio::time::Instant::now();
                    self.w.latch.set_ready();
                    self.w.metrics.connected.set(1);
                    tracing::info!(?kinds, "Watcher connected");
                    let end = match self.after_init(&client, kinds).await {
                        Some(End::Cancelled) => End::Cancelled,
                        _ => self.pump(stream).await,
                    };
                    // Only a stream that stayed up a while resets the backoff, so a
                    // server that accepts and immediately drops us is not hammered.
                    if connected_at.elapsed() >= STABLE_AFTER {
                        attempt = 0;
                    }
                    end
                }
                Err(e) => End::Failed(e),
            };
            self.w.metrics.connected.set(0);
            let err = match end {
                End::Failed(e) if !self.cancel.is_cancelled() => e,
                _ => {
                    self.w.latch.set_not_ready("shutting down");
                    return Ok(());
                }
            };
            self.w
                .latch
                .set_not_ready(format!("Teleport watch disconnected: {err}"));
            if self.w.config.fail_fast {
                let msg = match err {
                    TeleportError::StreamClosed(_) => {
                        "Watcher stream closed. Exiting as fail fast is on."
                    }
                    _ => "Connection problem detected. Exiting as fail fast is on.",
                };
                tracing::error!(error = %err, "{msg}");
                return Err(TeleportError::FailFast(format!("{msg} ({err})")));
            }
            let class = err.class();
            if class == ErrorClass::Fatal {
                tracing::error!(error = %err, "Watcher event loop failed");
                return Err(err);
            }
            tracing::warn!(error = %err, "Connection problem detected, attempting to reconnect");
            let delay = self.w.config.backoff.delay(attempt, random_jitter());
            attempt = attempt.saturating_add(1);
            self.w.metrics.reconnects.inc();
            tokio::select! {
                () = self.cancel.cancelled() => { self.w.latch.set_not_ready("shutting down"); return Ok(()) }
                () = tokio::time::sleep(delay) => {}
            }
            // Rebuild the client when the credentials were refused or changed on disk.
            let changed = self
                .w
                .source
                .fingerprint()
                .is_ok_and(|f| f != self.fingerprint);
            if (class == ErrorClass::Credentials || changed)
                && let Err(e) = self.reload().await
            {
                tracing::warn!(error = %e, "Failed to reload identity file from disk.");
            }
        }
    }

    /// Makes `client` the one plugin data calls use, unless this watch was
    /// cancelled (a reload may have handed the cell to a new watch).
    fn publish(&self, client: Client) {
        if !self.cancel.is_cancelled() {
            self.cell.store(Arc::new(client));
        }
    }

    async fn reload(&mut self) -> Result<(), TeleportError> {
        let fp = self.w.source.fingerprint()?;
        let identity = Arc::new(self.w.source.load()?);
        let client = Client::connect(&self.w.opts, identity).await?;
        self.publish(client);
        self.fingerprint = fp;
        self.w.metrics.identity_reloads.inc();
        Ok(())
    }

    /// Opens a stream and waits for its INIT; returns the confirmed kinds.
    async fn open(&self, client: &Client) -> Result<(Stream, Vec<String>), TeleportError> {
        let cfg = &self.w.config;
        let mut stream = tokio::select! {
            () = self.cancel.cancelled() => return Err(TeleportError::StreamClosed("cancelled".into())),
            s = client.watch_events(&cfg.kinds, cfg.allow_partial_success) => s?,
        };
        let first = tokio::time::timeout(cfg.init_timeout, stream.message()).await;
        let ev = match first {
            Err(_) => {
                return Err(TeleportError::WatchInit(
                    "watcher initialization timed out".into(),
                ));
            }
            Ok(Err(s)) => return Err(rpc_error("WatchEvents", &s)),
            Ok(Ok(None)) => {
                return Err(TeleportError::StreamClosed(
                    "stream ended before OpInit".into(),
                ));
            }
            Ok(Ok(Some(ev))) => ev,
        };
        if ev.r#type != pb::proto::Operation::Init as i32 {
            return Err(TeleportError::WatchInit(format!(
                "unexpected event type {}",
                ev.r#type
            )));
        }
        let kinds = match ev.resource {
            Some(pb::proto::event::Resource::WatchStatus(ws)) => ws
                .spec
                .map(|s| s.kinds.into_iter().map(|k| k.kind).collect())
                .unwrap_or_default(),
            // Very old servers send INIT without a status: everything was accepted.
            _ => cfg.kinds.clone(),
        };
        if kinds.is_empty() {
            return Err(TeleportError::Rpc {
                method: "WatchEvents",
                code: tonic::Code::PermissionDenied,
                message: format!(
                    "failed to initialize watcher for all the required resources: {}",
                    cfg.kinds.join(", ")
                ),
            });
        }
        Ok((stream, kinds))
    }

    /// Sends Init and the catch-up snapshot. `Some(Cancelled)` if the receiver is gone.
    async fn after_init(&self, client: &Client, kinds: Vec<String>) -> Option<End> {
        let has_requests = kinds.iter().any(|k| k == KIND_ACCESS_REQUEST);
        if !self
            .deliver(WatchEvent::Init {
                confirmed_kinds: kinds,
            })
            .await
        {
            return Some(End::Cancelled);
        }
        if self.w.config.catch_up && has_requests {
            match client.list_access_requests(None).await {
                Ok(list) => {
                    if !self.deliver(WatchEvent::Snapshot(list)).await {
                        return Some(End::Cancelled);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "catch-up listing of access requests failed"),
            }
        }
        None
    }

    async fn deliver(&self, ev: WatchEvent) -> bool {
        self.w.metrics.event(&ev);
        tokio::select! {
            () = self.cancel.cancelled() => false,
            r = self.tx.send(ev) => r.is_ok(),
        }
    }

    async fn handle(&self, ev: pb::proto::Event) -> bool {
        match event_from_pb(ev) {
            Ok(Some(ev)) => self.deliver(ev).await,
            Ok(None) => true,
            Err(e) => {
                self.w.metrics.bad_events.inc();
                tracing::warn!(error = %e, "skipping a watch event Teleport sent");
                true
            }
        }
    }

    async fn pump(&mut self, mut stream: Stream) -> End {
        let period = self
            .w
            .config
            .refresh_interval
            .unwrap_or(Duration::from_secs(3600 * 24 * 365));
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return End::Cancelled,
                _ = refresh.tick(), if self.w.config.refresh_interval.is_some() => {
                    match self.refresh(&mut stream).await {
                        Ok(true) => {}
                        Ok(false) => return End::Cancelled,
                        Err(e) => tracing::warn!(error = %e, "Failed to reload identity file from disk."),
                    }
                }
                msg = stream.message() => match msg {
                    Ok(Some(ev)) => if !self.handle(ev).await { return End::Cancelled },
                    Ok(None) => return End::Failed(TeleportError::StreamClosed("EOF".into())),
                    Err(s) => return End::Failed(rpc_error("WatchEvents", &s)),
                },
            }
        }
    }

    /// If the credentials changed: new client, new stream with Init, then drain
    /// and drop the old stream. `Ok(false)` if the receiver is gone.
    async fn refresh(&mut self, stream: &mut Stream) -> Result<bool, TeleportError> {
        let fp = self.w.source.fingerprint()?;
        if fp == self.fingerprint {
            return Ok(true);
        }
        let identity = Arc::new(self.w.source.load()?);
        let serial = identity.serial.clone();
        let client = Client::connect(&self.w.opts, identity).await?;
        let (new_stream, kinds) = self.open(&client).await?;
        // Events the old stream already holds were sent before the new Init.
        while let Ok(Ok(Some(ev))) =
            tokio::time::timeout(Duration::from_millis(50), stream.message()).await
        {
            if !self.handle(ev).await {
                return Ok(false);
            }
        }
        *stream = new_stream;
        self.publish(client.clone());
        self.fingerprint = fp;
        self.w.metrics.identity_reloads.inc();
        tracing::info!(
            serial,
            "Teleport credentials changed; watch moved to a new connection"
        );
        Ok(self.after_init(&client, kinds).await.is_none())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metrics_have_the_documented_names() {
        let mut registry = Registry::default();
        let m = WatchMetrics::register(&mut registry);
        m.connected.set(1);
        m.reconnects.inc();
        m.event(&WatchEvent::DeleteAccessRequest { id: "x".into() });
        let text = crate::metrics::encode(&registry).unwrap();
        assert!(text.contains("teleport_watch_connected 1"), "{text}");
        assert!(text.contains("teleport_watch_reconnects_total 1"), "{text}");
        assert!(
            text.contains("teleport_watch_events_total{kind=\"access_request\",op=\"delete\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("teleport_watch_last_event_timestamp_seconds "),
            "{text}"
        );
        assert!(
            !text.contains("teleport_watch_last_event_timestamp_seconds 0.0"),
            "{text}"
        );
    }
}
