//! teleport-discord: Teleport Access Requests in Discord.
//!
//! # Layout
//! - [`amr`]: access monitoring rules and their condition language.
//! - [`config`]: the TOML file (upstream-compatible), environment overrides,
//!   validation, reload diffs.
//! - [`secret`]: the [`secret::Secret`] wrapper that keeps tokens out of logs.
//! - [`sync`]: the one way a `Mutex` is locked.
//! - [`backoff`]: the one pure retry-delay function every retry loop uses.
//! - [`readiness`]: named readiness latches that components set; `/readyz` reads them.
//! - [`metrics`]: the Prometheus registry, build info, process metrics.
//! - [`plugindata`]: what we store per request in Teleport plugin data (upstream layout).
//! - [`reconcile`]: the level-triggered controller (work queue, plans, records).
//! - [`fence`]: whether this replica may send to Discord now.
//! - [`lease`]: the leader lease in Teleport that opens and closes the fence.
//! - [`render`]: access-request state → Discord message (text, review embeds, limits, escaping).
//! - [`logging`]: tracing setup from `[log]`, with a reloadable level.
//! - [`healthcheck`]: the `healthcheck` verb (a std-only HTTP probe for container health checks).
//! - [`http`]: the axum router (`/healthz`, `/readyz`, `/metrics`, `/admin/reload`,
//!   `/discord/interactions`).
//! - [`interactions`]: Discord's interactions endpoint: signature, replay, reading clicks and submits.
//! - [`notify`]: direct notices: the requester's DM on resolution, access list review reminders.
//! - [`review`]: reviews from Discord: the clicker's Teleport user, the review submitted for them, the answer.
//! - [`service`]: the pipeline: Teleport watch → reconciler → Discord delivery.
//! - [`app`]: the long-running service (`start`): listener, signals, reload, shutdown.
//! - [`check`]: the connectivity part of `teleport-discord check`.
//! - `demo` (feature `demo`): hands the service to the testkit's `demo`.
//! - [`cli`]: command-line definitions shared by `main.rs` and tests.
//! - [`version`]: build identification.
//! - [`discord`]: the Discord REST client, rate limiter and delivery queue.
//! - [`teleport`]: the Teleport gRPC client, credentials and the supervised watch.

pub mod adapters;
pub mod amr;
pub mod app;
pub mod backoff;
pub mod check;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod discord;
pub mod fence;
pub mod healthcheck;
pub mod http;
pub mod interactions;
pub mod lease;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod plugindata;
pub mod readiness;
pub mod reconcile;
pub mod reload;
pub mod render;
pub mod review;
pub mod secret;
pub mod service;
pub mod sync;
pub mod tasks;
pub mod teleport;
pub mod version;
