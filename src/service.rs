//! The pipeline behind `start`: the Teleport watch feeds the reconciler,
//! whose workers write plugin data through the Teleport client and messages
//! through the Discord delivery queue.
//!
//! ```text
//! WatchEvents ──► consume() ──► Reconciler (observed state + work queue)
//!   (teleport)      │  rules ──► amr::RuleSet          │ workers
//!                   └─ resync every [reconcile] interval ▼
//!                        TeleportStore (plugin data CAS)  DiscordMessenger ──► Delivery ──► Discord
//! ```
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
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SharedConfig};
use crate::discord::types::{ActionRow, Button, Embed, EmbedAuthor, MessagePayload};
use crate::discord::{
    AllowedMentions, Delivery, DeliveryError, DiscordClient, DiscordError, DiscordMetrics, Op,
    QueueOptions,
};
use crate::readiness::{Latch, Readiness};
use crate::reconcile::{ClusterInfo, Messenger, Reconciler, SendError};
use crate::render::MessageBody;
use crate::teleport::adapters::{TeleportStore, feed};
use crate::teleport::{
    KIND_ACCESS_MONITORING_RULE, TeleportError, WatchEvent, WatchMetrics, Watcher,
};

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

/// Messages through the Discord delivery queue.
#[derive(Debug, Clone)]
pub struct DiscordMessenger {
    delivery: Delivery,
}

impl DiscordMessenger {
    /// Wraps a running delivery queue.
    pub fn new(delivery: Delivery) -> Self {
        Self { delivery }
    }
}

/// Our rendered body as the Discord client's payload.
pub fn to_payload(body: &MessageBody) -> MessagePayload {
    MessagePayload {
        content: Some(body.content.clone()),
        embeds: body
            .embeds
            .iter()
            .flatten()
            .map(|e| Embed {
                title: Some(e.title.clone()),
                description: (!e.description.is_empty()).then(|| e.description.clone()),
                color: Some(e.color),
                author: Some(EmbedAuthor {
                    name: e.author.name.clone(),
                }),
                ..Embed::default()
            })
            .collect(),
        components: body
            .components
            .iter()
            .map(|row| ActionRow {
                kind: row.kind,
                components: row
                    .components
                    .iter()
                    .map(|b| Button {
                        kind: b.kind,
                        style: b.style,
                        label: Some(b.label.clone()),
                        url: Some(b.url.clone()),
                        custom_id: None,
                        disabled: false,
                    })
                    .collect(),
            })
            .collect(),
        allowed_mentions: AllowedMentions::default(),
        flags: None,
    }
}

/// Whether a message Discord returned shows `payload` (text and embeds).
fn shows(m: &crate::discord::Message, payload: &MessagePayload) -> bool {
    payload.content.as_deref().unwrap_or_default() == m.content
        && m.embeds.len() == payload.embeds.len()
        && m.embeds
            .iter()
            .zip(&payload.embeds)
            .all(|(a, b)| a.title == b.title && a.description == b.description)
}

fn send_error(e: DeliveryError) -> SendError {
    match e {
        // A bad token is fixed by the operator; the message must not be given up.
        DeliveryError::Discord(DiscordError::Unauthorized { message }) => {
            SendError::Retryable(format!("bot token rejected: {message}"))
        }
        e if e.is_retryable() => SendError::Retryable(e.to_string()),
        e => SendError::Permanent(e.to_string()),
    }
}

impl DiscordMessenger {
    async fn deliver(&self, op: Op) -> Result<crate::discord::Message, SendError> {
        let pending = self
            .delivery
            .enqueue(op)
            .await
            .map_err(|e| SendError::Retryable(e.to_string()))?;
        pending.wait().await.map_err(send_error)
    }
}

impl Messenger for DiscordMessenger {
    async fn create(
        &self,
        channel: &str,
        nonce: &str,
        body: &MessageBody,
    ) -> Result<String, SendError> {
        let payload = to_payload(body);
        let op = Op::Create {
            channel_id: channel.to_owned(),
            nonce: nonce.to_owned(),
            payload: payload.clone(),
        };
        let message = self.deliver(op).await?;
        // `enforce_nonce` answers a repeated create with the message the first
        // one made, showing what was true then (a poster that crashed before
        // recording it): bring it up to date.
        if !shows(&message, &payload) {
            tracing::info!(channel_id = %channel, message_id = %message.id, "create answered with an earlier message of this request; updating it");
            let op = Op::Edit {
                channel_id: channel.to_owned(),
                message_id: message.id.clone(),
                payload,
            };
            self.deliver(op).await?;
        }
        Ok(message.id)
    }

    async fn edit(
        &self,
        channel: &str,
        message: &str,
        body: &MessageBody,
    ) -> Result<(), SendError> {
        let op = Op::Edit {
            channel_id: channel.to_owned(),
            message_id: message.to_owned(),
            payload: to_payload(body),
        };
        self.deliver(op).await.map(|_| ())
    }
}

/// The reconciler as it runs in the service.
pub type ServiceReconciler = Reconciler<TeleportStore, DiscordMessenger>;

/// Metrics of the pipeline, registered before the HTTP server starts.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    watch: WatchMetrics,
    discord: DiscordMetrics,
    reconciler: Arc<std::sync::OnceLock<Arc<ServiceReconciler>>>,
}

impl ServiceMetrics {
    /// Registers every pipeline metric.
    pub fn register(registry: &mut Registry) -> Self {
        let reconciler = Arc::new(std::sync::OnceLock::new());
        registry.register_collector(Box::new(ReconcilerCollector(reconciler.clone())));
        Self {
            watch: WatchMetrics::register(registry),
            discord: DiscordMetrics::register(registry),
            reconciler,
        }
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

/// The running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// The reconciler.
    pub reconciler: Arc<ServiceReconciler>,
    /// Ends with the watch's fatal error (or `Ok` on shutdown).
    pub watch: JoinHandle<Result<(), TeleportError>>,
    /// Puts reloaded Discord and Teleport settings into effect.
    pub live: LiveSettings,
    delivery: Delivery,
    workers: JoinHandle<()>,
}

impl Pipeline {
    /// Stops taking work, lets the reconcile workers finish and the Discord
    /// queue drain within [`DRAIN`].
    pub async fn shutdown(self) {
        let _ = tokio::time::timeout(DRAIN, self.workers).await;
        let report = self.delivery.shutdown(DRAIN).await;
        if !report.drained {
            tracing::warn!(
                handed_back = report.handed_back,
                "Discord queue did not drain in time; the next start reconciles what is left"
            );
        }
    }
}

/// Connects to Discord and Teleport and starts the pipeline. `cancel` stops it.
pub async fn start(
    config: SharedConfig,
    metrics: &ServiceMetrics,
    readiness: &Readiness,
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
            tokio::spawn(recheck_token(
                client.clone(),
                discord_latch.clone(),
                cancel.clone(),
            ));
        }
    }
    let delivery = Delivery::start(client.clone(), QueueOptions::default());

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
    let store = TeleportStore::new(handle.client_cell(), crate::plugindata::PLUGIN_NAME);
    let reconciler = Arc::new(Reconciler::new(
        store,
        DiscordMessenger::new(delivery.clone()),
        config.clone(),
        ClusterInfo::from(&ping),
        replica,
    ));
    let _ = metrics.reconciler.set(reconciler.clone());
    let workers = tokio::spawn(
        reconciler
            .clone()
            .run(snapshot.reconcile.workers as usize, cancel.clone()),
    );
    let cell = handle.client_cell();
    tokio::spawn(consume(rx, reconciler.clone(), cell.clone()));
    tokio::spawn(resync(reconciler.clone(), cell, config, cancel.clone()));
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
    Ok(Pipeline {
        reconciler,
        watch: tokio::spawn(switcher.run(switches)),
        live: LiveSettings {
            discord: client,
            teleport: switch_tx,
        },
        delivery,
        workers,
    })
}

/// How long a reload waits for a new Teleport address to answer.
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
    pub async fn apply(&self, old: &Config, new: &Config) -> Result<(), NotApplied> {
        let discord_changed =
            old.discord.token != new.discord.token || old.discord.api_url != new.discord.api_url;
        let key = if old.discord.token != new.discord.token {
            "discord.token"
        } else {
            "discord.api_url"
        };
        if discord_changed {
            let probe = DiscordClient::new(&new.discord, DiscordMetrics::unregistered(), None)
                .map_err(|e| NotApplied {
                    key,
                    reason: e.to_string(),
                })?;
            match probe.check_token().await {
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
            let result = match sent {
                Ok(()) => match tokio::time::timeout(SWITCH_TIMEOUT, answer).await {
                    Ok(Ok(r)) => r.map_err(|e| e.to_string()),
                    Ok(Err(_)) => Err("the service is shutting down".to_owned()),
                    Err(_) => Err(format!(
                        "no answer from Teleport within {}s",
                        SWITCH_TIMEOUT.as_secs()
                    )),
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
                .set_credentials(new.discord.api_url.as_str(), &new.discord.token)
                .map_err(|e| NotApplied {
                    key,
                    reason: e.to_string(),
                })?;
            // Re-enables sending if the old token had been rejected.
            if let Err(e) = self.discord.check_token().await {
                tracing::warn!(error = %e, "Discord token check after the reload failed");
            }
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
        let handle = match watcher
            .start_in(Some(cell), self.tx.clone(), cancel.clone())
            .await
        {
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
        self.reconciler.set_cluster(ClusterInfo::from(&ping));
        tracing::info!(cluster = %ping.cluster_name, version = %ping.server_version, "Watch moved to the new Teleport settings");
        Ok(())
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

async fn consume(
    mut rx: mpsc::Receiver<WatchEvent>,
    reconciler: Arc<ServiceReconciler>,
    client: Arc<arc_swap::ArcSwap<crate::teleport::Client>>,
) {
    let mut rules_off_logged = false;
    while let Some(ev) = rx.recv().await {
        match ev {
            WatchEvent::Init { confirmed_kinds } => {
                if confirmed_kinds
                    .iter()
                    .any(|k| k == KIND_ACCESS_MONITORING_RULE)
                {
                    // Rules first, so the snapshot that follows is routed by them.
                    let c = crate::teleport::Client::clone(&client.load());
                    match c
                        .list_access_monitoring_rules(crate::plugindata::PLUGIN_NAME)
                        .await
                    {
                        Ok(rules) => {
                            tracing::info!(rules = rules.len(), "access monitoring rules loaded");
                            reconciler.observe_rule_list(rules.into_iter().map(rule).collect());
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot list access monitoring rules; keeping the ones loaded")
                        }
                    }
                } else if !rules_off_logged {
                    rules_off_logged = true;
                    tracing::warn!(
                        "access monitoring rules are off: the plugin's role may not watch access_monitoring_rule; role_to_recipients applies"
                    );
                }
                tracing::info!("Watcher connected");
            }
            WatchEvent::PutAccessMonitoringRule(r) => {
                let name = r.name.clone();
                let stored = reconciler.observe_rule_put(rule(r));
                tracing::info!(rule = %name, ?stored, "access monitoring rule updated");
            }
            WatchEvent::DeleteAccessMonitoringRule { name } => {
                reconciler.observe_rule_delete(&name);
                tracing::info!(rule = %name, "access monitoring rule deleted");
            }
            WatchEvent::Snapshot(list) => {
                let listed: std::collections::HashSet<String> =
                    list.iter().map(|r| r.id.clone()).collect();
                feed(&reconciler, WatchEvent::Snapshot(list));
                let r = reconciler.clone();
                tokio::spawn(async move { r.sweep(&listed).await });
            }
            other => {
                feed(&reconciler, other);
            }
        }
    }
}

fn rule(r: crate::teleport::model::AccessMonitoringRule) -> crate::amr::Rule {
    crate::amr::Rule {
        name: r.name,
        subjects: r.subjects,
        condition: r.condition,
        notification_name: r.notification_name.unwrap_or_default(),
        recipients: r.recipients,
    }
}

async fn resync(
    reconciler: Arc<ServiceReconciler>,
    client: Arc<arc_swap::ArcSwap<crate::teleport::Client>>,
    config: SharedConfig,
    cancel: CancellationToken,
) {
    loop {
        let every = config.load().reconcile.resync_interval.get();
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cancel.cancelled() => return,
        }
        let c = crate::teleport::Client::clone(&client.load());
        match c.list_access_requests(None).await {
            Ok(list) => {
                // No sweep here: while the watch is up every deletion reaches
                // us as an event; the sweep follows each (re)connect's snapshot.
                tracing::debug!(requests = list.len(), "periodic resync");
                reconciler.observe_list(list.into_iter().map(Into::into).collect());
            }
            Err(e) => tracing::warn!(error = %e, "periodic resync could not list access requests"),
        }
    }
}
