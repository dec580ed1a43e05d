//! Readiness: named latches that components flip, read by `GET /readyz`, the
//! `teleport_discord_ready` metric and the `Plugin is ready` log line.
//!
//! A component registers once ([`Readiness::register`]) and starts not ready
//! with a reason; the service is ready only when every registered latch is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;

/// The set of readiness latches. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    states: Mutex<BTreeMap<&'static str, State>>,
    changed: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Clone)]
struct State {
    ready: bool,
    reason: String,
}

/// One component's latch.
#[derive(Debug, Clone)]
pub struct Latch {
    name: &'static str,
    readiness: Readiness,
}

/// A snapshot, as `/readyz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// `"ready"` or `"not ready"`.
    pub status: &'static str,
    /// Per component.
    pub components: BTreeMap<&'static str, ComponentReport>,
}

/// One component in a [`Report`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ComponentReport {
    /// Whether it is ready.
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Report {
    /// Whether every component is ready.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// An empty set: with no component registered the service counts as not
    /// ready (nothing has said it can do its job).
    pub fn new() -> Self {
        let (changed, _) = tokio::sync::watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                states: Mutex::new(BTreeMap::new()),
                changed,
            }),
        }
    }

    /// Adds a component, not ready, with the reason it is not ready yet.
    pub fn register(&self, name: &'static str, reason: impl Into<String>) -> Latch {
        self.update(name, false, reason.into());
        Latch {
            name,
            readiness: self.clone(),
        }
    }

    fn update(&self, name: &'static str, ready: bool, reason: String) {
        let all_ready = {
            let mut states = self
                .inner
                .states
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            states.insert(name, State { ready, reason });
            states.values().all(|s| s.ready)
        };
        self.inner.changed.send_replace(all_ready);
    }

    /// The current state of every component.
    pub fn report(&self) -> Report {
        let states = self
            .inner
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ready = !states.is_empty() && states.values().all(|s| s.ready);
        Report {
            status: if ready { "ready" } else { "not ready" },
            components: states
                .iter()
                .map(|(name, s)| {
                    (
                        *name,
                        ComponentReport {
                            ready: s.ready,
                            reason: (!s.ready).then(|| s.reason.clone()),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Whether every registered component is ready.
    pub fn is_ready(&self) -> bool {
        self.report().is_ready()
    }

    /// A receiver that sees `true` when everything is ready, `false` otherwise.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.changed.subscribe()
    }
}

impl Latch {
    /// Marks the component ready.
    pub fn set_ready(&self) {
        self.readiness.update(self.name, true, String::new());
    }

    /// Marks the component not ready, saying why.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.readiness.update(self.name, false, reason.into());
    }

    /// The component's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Collector for Readiness {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let report = self.report();
        let family = encoder.encode_descriptor(
            "teleport_discord_ready",
            "Whether a component is ready (1) or not (0); the service is ready when all are.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let mut family = family;
        for (name, c) in &report.components {
            let labels = [("component", *name)];
            let m = family.encode_family(&labels)?;
            ConstGauge::new(i64::from(c.ready)).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_latch_is() {
        let r = Readiness::new();
        assert!(!r.is_ready(), "nothing registered is not ready");
        let a = r.register("teleport", "watch not connected");
        let b = r.register("discord", "token not checked");
        assert!(!r.is_ready());
        a.set_ready();
        assert!(!r.is_ready());
        let report = r.report();
        assert_eq!(
            report.components["discord"].reason.as_deref(),
            Some("token not checked")
        );
        assert_eq!(report.components["teleport"].reason, None);
        b.set_ready();
        assert!(r.is_ready());
        a.set_not_ready("stream dropped");
        assert!(!r.is_ready());
        assert_eq!(
            r.report().components["teleport"].reason.as_deref(),
            Some("stream dropped")
        );
    }

    #[test]
    fn subscribers_see_transitions() {
        let r = Readiness::new();
        let mut rx = r.subscribe();
        let a = r.register("x", "starting");
        assert!(!*rx.borrow_and_update());
        a.set_ready();
        assert!(rx.has_changed().unwrap_or(false));
        assert!(*rx.borrow_and_update());
    }
}
