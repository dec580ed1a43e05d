//! Readiness: named latches that components flip, read by `GET /readyz`, the
//! `teleport_discord_ready` metric and the `Plugin is ready` log line.
//!
//! A component registers once ([`Readiness::register`]) and starts not ready
//! with a reason; the service is ready only when every registered latch is.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    /// The leader lease's role, once known.
    role: Mutex<Option<&'static str>>,
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
    gate: Arc<Mutex<Gate>>,
}

/// Whether a latch's updates reach the component (a stand-by latch's do not
/// until it takes over), and the state it last asked for.
#[derive(Debug)]
struct Gate {
    active: bool,
    ready: bool,
    reason: String,
}

/// A snapshot, as `/readyz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// `"ready"` or `"not ready"`.
    pub status: &'static str,
    /// Per component.
    pub components: BTreeMap<&'static str, ComponentReport>,
    /// This replica's role in the leader lease (`leader`, `standby`,
    /// `solo`), once known. A standby is ready: it serves and watches, and
    /// takes over when the leader goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
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
                role: Mutex::new(None),
                changed,
            }),
        }
    }

    /// Adds a component, not ready, with the reason it is not ready yet.
    pub fn register(&self, name: &'static str, reason: impl Into<String>) -> Latch {
        let reason = reason.into();
        self.update(name, false, reason.clone());
        Latch {
            name,
            readiness: self.clone(),
            gate: Arc::new(Mutex::new(Gate {
                active: true,
                ready: false,
                reason,
            })),
        }
    }

    fn update(&self, name: &'static str, ready: bool, reason: String) {
        let all_ready = {
            let mut states = crate::sync::lock(&self.inner.states);
            states.insert(name, State { ready, reason });
            states.values().all(|s| s.ready)
        };
        self.inner.changed.send_replace(all_ready);
    }

    /// Records this replica's role in the leader lease (shown by `/readyz`).
    pub fn set_role(&self, role: &'static str) {
        *crate::sync::lock(&self.inner.role) = Some(role);
    }

    /// The current state of every component.
    pub fn report(&self) -> Report {
        let role = *crate::sync::lock(&self.inner.role);
        let states = crate::sync::lock(&self.inner.states);
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
            role,
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
        self.set(true, String::new());
    }

    /// Marks the component not ready, saying why.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        self.set(false, reason.into());
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        crate::sync::lock(&self.gate)
    }

    fn set(&self, ready: bool, reason: String) {
        let mut gate = self.gate();
        gate.ready = ready;
        gate.reason.clone_from(&reason);
        if gate.active {
            self.readiness.update(self.name, ready, reason);
        }
    }

    /// A latch for the same component whose updates are held back until it
    /// [takes over](Self::take_over): for a replacement (a new Teleport
    /// watch) that must not touch readiness unless it is adopted.
    pub fn standby(&self) -> Latch {
        Latch {
            name: self.name,
            readiness: self.readiness.clone(),
            gate: Arc::new(Mutex::new(Gate {
                active: false,
                ready: false,
                reason: "starting".to_owned(),
            })),
        }
    }

    /// Silences `old` for good and makes this latch's state the component's.
    pub fn take_over(&self, old: &Latch) {
        old.gate().active = false;
        let mut gate = self.gate();
        gate.active = true;
        self.readiness
            .update(self.name, gate.ready, gate.reason.clone());
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
    fn a_standby_latch_counts_only_after_taking_over() {
        let r = Readiness::new();
        let old = r.register("teleport", "connecting");
        old.set_ready();
        let new = old.standby();
        new.set_not_ready("connecting elsewhere");
        assert!(r.is_ready(), "a stand-by latch changes nothing");
        new.set_ready();
        new.take_over(&old);
        old.set_not_ready("shutting down");
        assert!(r.is_ready(), "the replaced latch is silenced");
        new.set_not_ready("stream lost");
        assert!(!r.is_ready());
        assert_eq!(
            r.report().components["teleport"].reason.as_deref(),
            Some("stream lost")
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
