//! Prometheus metrics of Discord delivery, all named `discord_*`. Labels are
//! bounded: operation kind, outcome, 429 scope, retry reason (never channel IDs).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The metrics; cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct DiscordMetrics {
    queue_depth: Gauge,
    in_flight: Gauge,
    operations: Family<OpLabels, Counter>,
    rate_limited: Family<ScopeLabels, Counter>,
    retries: Family<ReasonLabels, Counter>,
    invalid_requests: Gauge,
    latency: Family<KindLabels, Histogram>,
}

impl Default for DiscordMetrics {
    fn default() -> Self {
        Self::unregistered()
    }
}

impl DiscordMetrics {
    /// Creates the metrics without registering them (tests, benchmarks).
    pub fn unregistered() -> Self {
        Self {
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            operations: Family::default(),
            rate_limited: Family::default(),
            retries: Family::default(),
            invalid_requests: Gauge::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
            }),
        }
    }

    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        registry.register(
            "discord_queue_depth",
            "Operations waiting in the Discord delivery queue",
            m.queue_depth.clone(),
        );
        registry.register(
            "discord_in_flight",
            "Discord operations being sent (including waits for rate limits)",
            m.in_flight.clone(),
        );
        registry.register(
            "discord_operations",
            "Discord operations answered, by kind (create, edit) and outcome",
            m.operations.clone(),
        );
        registry.register(
            "discord_rate_limited",
            "429 answers received from Discord, by scope",
            m.rate_limited.clone(),
        );
        registry.register(
            "discord_retries",
            "Discord requests retried, by reason",
            m.retries.clone(),
        );
        registry.register(
            "discord_invalid_requests_window",
            "401/403/non-shared 429 answers in the last 10 minutes (Discord bans at 10,000)",
            m.invalid_requests.clone(),
        );
        registry.register(
            "discord_operation_duration_seconds",
            "Time from enqueue to Discord's final answer, by kind",
            m.latency.clone(),
        );
        m
    }

    pub(crate) fn set_queue_depth(&self, n: usize) {
        self.queue_depth.set(n as i64);
    }
    pub(crate) fn in_flight_inc(&self) {
        self.in_flight.inc();
    }
    pub(crate) fn in_flight_dec(&self) {
        self.in_flight.dec();
    }
    pub(crate) fn operation(&self, kind: &'static str, outcome: &'static str, seconds: f64) {
        self.operations
            .get_or_create(&OpLabels { kind, outcome })
            .inc();
        self.latency
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }
    pub(crate) fn rate_limited(&self, scope: &'static str) {
        self.rate_limited
            .get_or_create(&ScopeLabels { scope })
            .inc();
    }
    pub(crate) fn retry(&self, reason: &'static str) {
        self.retries.get_or_create(&ReasonLabels { reason }).inc();
    }
    pub(crate) fn set_invalid_requests(&self, n: usize) {
        self.invalid_requests.set(n as i64);
    }

    /// 429s received so far, all scopes (for tests and benchmarks).
    pub fn rate_limited_total(&self) -> u64 {
        ["global", "user", "shared", "unknown"]
            .iter()
            .map(|scope| {
                self.rate_limited
                    .get_or_create(&ScopeLabels { scope })
                    .get()
            })
            .sum()
    }

    /// Retries so far, all reasons.
    pub fn retries_total(&self) -> u64 {
        ["transport", "server", "rate_limited"]
            .iter()
            .map(|reason| self.retries.get_or_create(&ReasonLabels { reason }).get())
            .sum()
    }
}
