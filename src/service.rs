//! The pipeline behind `start`: the Teleport watch feeds the reconciler,
//! whose workers write plugin data through the Teleport client and messages
//! through the Discord delivery queue.
//!
//! ```text
//! WatchEvents ──► adapters::teleport::dispatch ──► Reconciler (observed state + work queue)
//!  (teleport)         rules ──► amr::RuleSet         ▲   │ workers
//! adapters::teleport::resync (periodic listing) ─────┘   │
//!                                                        ▼
//!              TeleportStore (plugin data CAS)   DiscordMessenger ──► Delivery ──► Discord
//! ```
//!
//! With several replicas, the leader lease ([`crate::lease`]) decides which
//! one sends: its role reaches the reconciler (a standby observes and
//! reconciles nothing; a new leader takes over what it observed), the
//! Discord client's fence, `/readyz` and the metrics.
//!
//! Start-up refuses to go on when Teleport cannot be reached or refuses us, or
//! when Discord rejects the token (upstream does the same); later failures
//! are retried, and only a fatal watch error (or fail-fast) ends the process.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::adapters;
use crate::adapters::discord::DiscordMessenger;
use crate::adapters::teleport::{TeleportLease, TeleportStore};
use crate::config::{Config, SharedConfig};
use crate::discord::{Delivery, DiscordClient, DiscordError, DiscordMetrics, QueueOptions};
use crate::lease::{Elector, Leadership, Role};
use crate::readiness::{Latch, Readiness};
use crate::reconcile::{ClusterInfo, Reconciler};
use crate::tasks::{Ended, Tasks};
use crate::teleport::{TeleportError, WatchEvent, WatchHandle, WatchMetrics, Watcher};

/// How long the Discord queue gets to drain on shutdown.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Why the pipeline could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Teleport refused or could not be reached at start, or the watch failed for good.
    #[error("Teleport: {0}")]
    Teleport(#[from] TeleportError),
    /// Discord rejected the token or the client could not be built.
    #[error("Discord: {0}")]
    Discord(#[from] DiscordError),
}

/// The reconciler as it runs in the service.
pub type ServiceReconciler = Reconciler<TeleportStore, DiscordMessenger>;

/// Metrics of the pipeline, registered before the HTTP server starts.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    watch: WatchMetrics,
    discord: DiscordMetrics,
    reconciler: Arc<std::sync::OnceLock<Arc<ServiceReconciler>>>,
    leadership: Arc<std::sync::OnceLock<tokio::sync::watch::Receiver<Leadership>>>,
    notify: crate::notify::NotifyMetrics,
}

impl ServiceMetrics {
    /// Registers every pipeline metric.
    pub fn register(registry: &mut Registry) -> Self {
        let reconciler = Arc::new(std::sync::OnceLock::new());
        registry.register_collector(Box::new(ReconcilerCollector(reconciler.clone())));
        let leadership = Arc::new(std::sync::OnceLock::new());
        registry.register_collector(Box::new(LeaseCollector(leadership.clone())));
        Self {
            watch: WatchMetrics::register(registry),
            discord: DiscordMetrics::register(registry),
            reconciler,
            leadership,
            notify: crate::notify::NotifyMetrics::register(registry),
        }
    }
}

#[derive(Debug)]
struct LeaseCollector(Arc<std::sync::OnceLock<tokio::sync::watch::Receiver<Leadership>>>);

impl Collector for LeaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(rx) = self.0.get() else {
            return Ok(());
        };
        let l = *rx.borrow();
        ConstGauge::new(i64::from(l.role == Role::Leader)).encode(encoder.encode_descriptor(
            "teleport_discord_leader",
            "1 while this replica holds the leader lease (the only replica sending to Discord); 0 as a standby or without a lease",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(l.transitions).encode(encoder.encode_descriptor(
            "teleport_discord_lease_transitions",
            "Times this replica started or stopped holding the leader lease",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}

#[derive(Debug)]
struct ReconcilerCollector(Arc<std::sync::OnceLock<Arc<ServiceReconciler>>>);

impl Collector for ReconcilerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(r) = self.0.get() else { return Ok(()) };
        let s = r.stats();
        let q = r.queue();
        let (rules, invalid) = r.rule_counts();
        for (name, help, v) in [
            (
                "teleport_discord_reconcile_queue_depth",
                "Requests waiting to be reconciled now",
                q.len() as f64,
            ),
            (
                "teleport_discord_reconcile_queue_delayed",
                "Requests waiting for a retry",
                q.delayed_len() as f64,
            ),
            (
                "teleport_discord_reconcile_in_flight",
                "Requests being reconciled",
                q.in_flight() as f64,
            ),
            (
                "teleport_discord_reconcile_oldest_dirty_seconds",
                "Age of the oldest request waiting to be reconciled",
                q.oldest_age().as_secs_f64(),
            ),
            (
                "teleport_discord_reconcile_awaiting_discord",
                "Requests whose Discord operations are in flight (no worker waits for them)",
                r.awaiting_discord() as f64,
            ),
            (
                "teleport_discord_requests_tracked",
                "Access requests whose latest state is held in memory",
                r.tracked() as f64,
            ),
            (
                "teleport_discord_access_monitoring_rules",
                "Access monitoring rules loaded for this plugin",
                rules as f64,
            ),
            (
                "teleport_discord_access_monitoring_rules_invalid",
                "Loaded rules whose condition does not parse",
                invalid as f64,
            ),
        ] {
            ConstGauge::new(v).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        let mut family = encoder.encode_descriptor(
            "teleport_discord_reconciles",
            "Reconciles by outcome (ok, conflict, retry)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, v) in [
            ("ok", s.ok),
            ("conflict", s.conflicts),
            ("retry", s.retries),
        ] {
            ConstCounter::new(v).encode(family.encode_family(&[("outcome", outcome)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "teleport_discord_messages",
            "Discord messages created, edited, or given up (permanent errors) by the reconciler",
            None,
            MetricType::Counter,
        )?;
        for (action, v) in [
            ("created", s.created),
            ("edited", s.edited),
            ("dropped", s.dropped),
        ] {
            ConstCounter::new(v).encode(family.encode_family(&[("action", action)])?)?;
        }
        ConstCounter::new(s.at_rest).encode(encoder.encode_descriptor(
            "teleport_discord_resync_at_rest",
            "Listed requests a resync found already shown (compared with the plugin data listing, not reconciled)",
            None,
            MetricType::Counter,
        )?)?;
        let mut family = encoder.encode_descriptor(
            "teleport_discord_rule_evaluation_errors",
            "Access monitoring rule conditions that failed to evaluate",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.rule_errors).encode(family.encode_family(&[("rule", "any")])?)?;
        Ok(())
    }
}

/// The running pipeline; every task of it is owned by the [`Tasks`] it was
/// started with.
#[derive(Debug)]
pub struct Pipeline {
    /// The reconciler.
    pub reconciler: Arc<ServiceReconciler>,
    /// Resolves with the watch's fatal error (or `Ok` once stopped).
    pub watch: oneshot::Receiver<Result<(), TeleportError>>,
    /// Puts reloaded Discord and Teleport settings into effect.
    pub live: LiveSettings,
    delivery: Delivery,
    workers: Ended,
    /// The review desk's ports, over this pipeline's clients.
    pub reviews: ReviewPorts,
}

/// The two ports of [`crate::review::Desk`].
#[derive(Clone)]
pub struct ReviewPorts {
    /// Teleport.
    pub directory: Arc<dyn crate::review::Directory>,
    /// Discord's interaction webhooks.
    pub follow_ups: Arc<dyn crate::review::FollowUps>,
}

impl std::fmt::Debug for ReviewPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewPorts").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Stops taking work (the `cancel` given to [`start`] must have fired),
    /// lets the reconcile workers finish and the Discord queue drain, each
    /// within [`DRAIN`].
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(DRAIN, self.workers.wait()).await;
        let report = self.delivery.shutdown(DRAIN).await;
        if !report.drained {
            tracing::warn!(
                handed_back = report.handed_back,
                "Discord queue did not drain in time; the next start reconciles what is left"
            );
        }
    }
}

/// Connects to Discord and Teleport and starts the pipeline's tasks on
/// `tasks`. `cancel` stops them.
pub async fn start(
    config: SharedConfig,
    metrics: &ServiceMetrics,
    readiness: &Readiness,
    tasks: &Tasks,
    cancel: CancellationToken,
    replica: String,
) -> Result<Pipeline, ServiceError> {
    let snapshot: Arc<Config> = config.load_full();
    let discord_latch = readiness.register("discord", "checking the bot token");
    let teleport_latch = readiness.register("teleport", "connecting");

    // Discord first: a rejected token stops start-up, as upstream.
    tracing::info!("Starting API health check");
    let client = DiscordClient::new(
        &snapshot.discord,
        metrics.discord.clone(),
        Some(discord_latch.clone()),
    )?;
    match client.check_token().await {
        Ok(user) => tracing::info!(bot = %user.username, "API health check finished ok"),
        Err(e @ DiscordError::Unauthorized { .. }) => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "Discord is not answering; will keep checking");
            discord_latch.set_not_ready(format!("Discord token check failed: {e}"));
            tasks.spawn(
                "discord-token-recheck",
                recheck_token(client.clone(), discord_latch.clone(), cancel.clone()),
            );
        }
    }
    tracing::info!("Checking Teleport server version");
    let (tx, rx) = mpsc::channel(1024);
    let watcher = Watcher::from_config(
        &snapshot.teleport,
        teleport_latch.clone(),
        metrics.watch.clone(),
    )?;
    let watch_cancel = cancel.child_token();
    let handle = watcher.start(tx.clone(), watch_cancel.clone()).await?;
    let ping = handle.ping().clone();
    tracing::info!(cluster = %ping.cluster_name, version = %ping.server_version, "Connected to Teleport");
    // Only now: a dispatcher ends when its queue is shut down, which a
    // start-up that failed above would never do.
    let (delivery, dispatcher) = Delivery::new(client.clone(), QueueOptions::default());
    tasks.spawn("discord-delivery", dispatcher);
    let store = TeleportStore::new(handle.client_cell(), crate::plugindata::PLUGIN_NAME);
    let reconciler = Arc::new(Reconciler::new(
        store,
        DiscordMessenger::new(delivery.clone()),
        config.clone(),
        cluster_info(&handle),
        replica.clone(),
    ));
    let _ = metrics.reconciler.set(reconciler.clone());
    let replica_name = replica.clone();
    let elector = Elector::new(
        TeleportLease::new(handle.client_cell()),
        replica,
        snapshot.lease.mode,
        snapshot.lease.ttl.get(),
        client.fence(),
    );
    let leadership = elector.subscribe();
    let notices = notices(&handle, &client, &delivery, &config, metrics, &replica_name);
    // Before any worker or event: a standby must not act even briefly.
    let initial = leadership.borrow().role;
    reconciler.set_role(initial.acts(), initial == Role::Leader);
    notices.requester.set_active(initial.acts());
    notices.reminders.set_active(initial.acts());
    let inbox = notices.requester.inbox();
    reconciler.on_requester_due(crate::reconcile::DueHook(Arc::new(move |id: &str| {
        inbox.resolved(id);
    })));
    readiness.set_role(initial.as_str());
    let _ = metrics.leadership.set(leadership.clone());
    tasks.spawn(
        "lease-role",
        follow_role(
            leadership,
            reconciler.clone(),
            readiness.clone(),
            notices.clone(),
        ),
    );
    if initial.acts() {
        let r = notices.requester.clone();
        tasks.spawn("notify-catch-up", async move { r.catch_up().await });
    }
    tasks.spawn(
        "notify-requester",
        notices.requester.clone().run(cancel.clone()),
    );
    tasks.spawn(
        "access-list-reminders",
        notices.reminders.run(cancel.clone()),
    );
    tasks.spawn("lease", elector.run(cancel.clone()));
    let workers = tasks.spawn(
        "reconcile",
        reconciler
            .clone()
            .run(snapshot.reconcile.workers as usize, cancel.clone()),
    );
    let cell = handle.client_cell();
    let reviews = ReviewPorts {
        directory: Arc::new(adapters::teleport::TeleportReviews::new(
            cell.clone(),
            ClusterInfo::from(&ping).web_proxy_url,
        )),
        follow_ups: Arc::new(adapters::discord::DiscordFollowUps::new(client.clone())),
    };
    if snapshot.review.enabled
        && !crate::teleport::client::version_at_least(
            &ping.server_version,
            crate::review::ON_BEHALF_SINCE,
        )
    {
        tracing::warn!(
            version = %ping.server_version,
            needed = crate::review::ON_BEHALF_SINCE,
            "[review] enabled = true, but this Teleport Auth Service is too old to take reviews submitted for users: clicks on Approve and Deny will be refused until it is upgraded"
        );
    }
    tasks.spawn(
        "teleport-dispatch",
        adapters::teleport::dispatch(rx, reconciler.clone(), cell.clone(), tasks.clone()),
    );
    tasks.spawn(
        "teleport-resync",
        adapters::teleport::resync(reconciler.clone(), cell, config, cancel.clone()),
    );
    let (switch_tx, switches) = mpsc::channel(1);
    let switcher = Switcher {
        current: handle,
        current_cancel: watch_cancel,
        tx,
        latch: teleport_latch,
        metrics: metrics.watch.clone(),
        reconciler: reconciler.clone(),
        cancel,
    };
    let (watch_end, watch) = oneshot::channel();
    tasks.spawn("teleport-watch", async move {
        let _ = watch_end.send(switcher.run(switches).await);
    });
    Ok(Pipeline {
        reconciler,
        watch,
        live: LiveSettings {
            discord: client,
            teleport: switch_tx,
        },
        delivery,
        workers,
        reviews,
    })
}

/// Applies the leader lease's role as it changes: to the reconciler (a
/// standby reconciles nothing; a replica that starts acting takes over what
/// it observed), `/readyz` and the log.
async fn follow_role(
    mut leadership: tokio::sync::watch::Receiver<Leadership>,
    reconciler: Arc<ServiceReconciler>,
    readiness: Readiness,
    notices: Notices,
) {
    let mut acting = leadership.borrow().role.acts();
    loop {
        let role = leadership.borrow_and_update().role;
        readiness.set_role(role.as_str());
        reconciler.set_role(role.acts(), role == Role::Leader);
        notices.requester.set_active(role.acts());
        notices.reminders.set_active(role.acts());
        match role {
            Role::Standby if acting => {
                // What was sent before the fence closed is recorded for the
                // next leader; the rest is answered "not sending" at once.
                reconciler.drain().await;
                tracing::info!(
                    "standing by: this replica does not hold the leader lease; watching, not sending"
                );
            }
            Role::Standby => {
                tracing::info!(
                    "waiting for the leader lease (another replica may hold it); watching, not sending"
                );
            }
            Role::Leader | Role::Solo if !acting => {
                let (observed, queued) = reconciler.takeover().await;
                notices.requester.catch_up().await;
                tracing::info!(
                    role = role.as_str(),
                    observed,
                    queued,
                    "taking over: reconciling what is not shown yet"
                );
            }
            Role::Leader | Role::Solo => {}
        }
        acting = role.acts();
        if leadership.changed().await.is_err() {
            return;
        }
    }
}

/// How long a switch to new Teleport settings may take to connect.
pub const SWITCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Puts reloaded settings into effect that need more than the config swap:
/// a new Discord token or API URL is checked with Discord (`GET /users/@me`)
/// and then swapped into the running client; a new Teleport address,
/// credentials or connection mode get a new watch, which must connect before
/// the old one stops. A failure refuses the reload and changes nothing.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    discord: DiscordClient,
    teleport: mpsc::Sender<Switch>,
}

#[derive(Debug)]
struct Switch {
    config: crate::config::TeleportConfig,
    reply: tokio::sync::oneshot::Sender<Result<(), TeleportError>>,
}

/// A reloaded setting that could not be put into effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplied {
    /// The config key.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl LiveSettings {
    /// Applies what changed from `old` to `new`; on error nothing changed.
    /// Bounded: the Discord check takes at most [`PROBE_TIMEOUT`], a switch
    /// of Teleport settings at most [`SWITCH_TIMEOUT`]. Dropping the future
    /// midway may leave the watch moved while the caller does not know it,
    /// so the caller runs it to the end (the reload task does).
    pub async fn apply(&self, old: &Config, new: &Config) -> Result<(), NotApplied> {
        let discord_changed =
            old.discord.token != new.discord.token || old.discord.api_url != new.discord.api_url;
        let key = if old.discord.token != new.discord.token {
            "discord.token"
        } else {
            "discord.api_url"
        };
        if discord_changed {
            match DiscordClient::probe(new.discord.api_url.as_str(), &new.discord.token).await {
                Ok(user) => {
                    tracing::info!(bot = %user.username, "new Discord settings accepted by Discord")
                }
                Err(e @ DiscordError::Unauthorized { .. }) => {
                    return Err(NotApplied {
                        key,
                        reason: format!("Discord rejected the new bot token: {e}"),
                    });
                }
                Err(e) => {
                    return Err(NotApplied {
                        key,
                        reason: format!("cannot check the new settings with Discord: {e}"),
                    });
                }
            }
        }
        if old.teleport != new.teleport {
            let key = if old.teleport.addr != new.teleport.addr {
                "teleport.addr"
            } else if old.teleport.credentials != new.teleport.credentials {
                "teleport.credentials"
            } else {
                "teleport.connect_via"
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            let sent = self
                .teleport
                .send(Switch {
                    config: new.teleport.clone(),
                    reply,
                })
                .await;
            // The switcher answers every switch within SWITCH_TIMEOUT.
            let result = match sent {
                Ok(()) => match answer.await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("the service is shutting down".to_owned()),
                },
                Err(_) => Err("the service is shutting down".to_owned()),
            };
            result.map_err(|reason| NotApplied {
                key,
                reason: format!("cannot connect with the new Teleport settings: {reason}"),
            })?;
        }
        if discord_changed {
            self.discord
                .set_verified_credentials(new.discord.api_url.as_str(), &new.discord.token)
                .map_err(|e| NotApplied {
                    key,
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }
}

/// Owns the current watch; replaces it when a reload changes `[teleport]`.
/// Ends with the current watch's fatal error, or `Ok` on shutdown.
struct Switcher {
    current: crate::teleport::WatchHandle,
    current_cancel: CancellationToken,
    tx: mpsc::Sender<WatchEvent>,
    latch: Latch,
    metrics: WatchMetrics,
    reconciler: Arc<ServiceReconciler>,
    cancel: CancellationToken,
}

impl Switcher {
    async fn run(mut self, mut switches: mpsc::Receiver<Switch>) -> Result<(), TeleportError> {
        loop {
            tokio::select! {
                r = &mut self.current.task => {
                    return r.unwrap_or_else(|join| Err(TeleportError::StreamClosed(format!("watch task failed: {join}"))));
                }
                Some(sw) = switches.recv() => {
                    let r = self.switch(sw.config).await;
                    let _ = sw.reply.send(r);
                }
            }
        }
    }

    async fn switch(&mut self, config: crate::config::TeleportConfig) -> Result<(), TeleportError> {
        let latch = self.latch.standby();
        let watcher = Watcher::from_config(&config, latch.clone(), self.metrics.clone())?;
        let cancel = self.cancel.child_token();
        let cell = self.current.client_cell();
        // Connect and ping within the deadline; until `start_in` returns the
        // shared client cell is untouched, so giving up changes nothing.
        let started = tokio::time::timeout(
            SWITCH_TIMEOUT,
            watcher.start_in(Some(cell), self.tx.clone(), cancel.clone()),
        )
        .await
        .unwrap_or_else(|_| {
            Err(TeleportError::Connect {
                addr: config.addr.to_string(),
                reason: format!("no answer within {}s", SWITCH_TIMEOUT.as_secs()),
            })
        });
        let handle = match started {
            Ok(h) => h,
            Err(e) => {
                // The cell was not touched; the old watch goes on.
                tracing::warn!(error = %e, "the new Teleport settings do not connect; keeping the current connection");
                return Err(e);
            }
        };
        // The new watch streams (and lists everything again); stop the old one.
        latch.take_over(&self.latch);
        self.latch = latch;
        self.current_cancel.cancel();
        let old = std::mem::replace(&mut self.current, handle);
        let _ = old.task.await;
        self.current.republish();
        self.current_cancel = cancel;
        let ping = self.current.ping().clone();
        self.reconciler.set_cluster(cluster_info(&self.current));
        tracing::info!(cluster = %ping.cluster_name, version = %ping.server_version, "Watch moved to the new Teleport settings");
        Ok(())
    }
}

/// The requester's DMs and the access list reminders, and their ports.
#[derive(Clone)]
struct Notices {
    requester: Arc<crate::notify::requester::RequesterNotifier<TeleportStore>>,
    reminders: Arc<crate::notify::reminders::Reminders>,
}

fn notices(
    handle: &WatchHandle,
    client: &DiscordClient,
    delivery: &Delivery,
    config: &SharedConfig,
    metrics: &ServiceMetrics,
    replica: &str,
) -> Notices {
    let cell = handle.client_cell();
    let teleport = adapters::teleport::TeleportNotices::new(
        cell.clone(),
        ClusterInfo::from(handle.ping()).web_proxy_url,
    );
    let mapping = Arc::new(crate::notify::Mapping::new(
        Arc::new(teleport.clone()),
        config.clone(),
    ));
    let direct: Arc<dyn crate::notify::DirectPort> = Arc::new(
        adapters::discord::DiscordDirect::new(client.clone(), delivery.clone()),
    );
    Notices {
        requester: crate::notify::requester::RequesterNotifier::new(
            TeleportStore::new(cell, crate::plugindata::PLUGIN_NAME),
            direct.clone(),
            mapping.clone(),
            config.clone(),
            metrics.notify.clone(),
            replica.to_owned(),
        ),
        reminders: crate::notify::reminders::Reminders::new(
            Arc::new(teleport),
            direct,
            mapping,
            config.clone(),
            metrics.notify.clone(),
        ),
    }
}

/// The cluster facts the reconciler renders with: Ping's, and our own user.
fn cluster_info(handle: &WatchHandle) -> ClusterInfo {
    ClusterInfo {
        plugin_user: handle.client_cell().load().identity().username.clone(),
        ..ClusterInfo::from(handle.ping())
    }
}

async fn recheck_token(client: DiscordClient, latch: Latch, cancel: CancellationToken) {
    let mut attempt = 0;
    loop {
        let delay = crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
            .delay(attempt, crate::backoff::random_jitter());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => return,
        }
        match client.check_token().await {
            Ok(_) => return,
            Err(e) => latch.set_not_ready(format!("Discord token check failed: {e}")),
        }
        attempt += 1;
    }
}
