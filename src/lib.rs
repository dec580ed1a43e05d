//! teleport-discord: Teleport Access Requests in Discord.
//!
//! # Layout
//! - [`config`]: the TOML file (upstream-compatible), environment overrides,
//!   validation, reload diffs.
//! - [`secret`]: the [`secret::Secret`] wrapper that keeps tokens out of logs.
//! - [`backoff`]: the one pure retry-delay function every retry loop uses.
//! - [`readiness`]: named readiness latches that components set; `/readyz` reads them.
//! - [`metrics`]: the Prometheus registry, build info, process metrics.
//! - [`logging`]: tracing setup from `[log]`, with a reloadable level.
//! - [`http`]: the axum router (`/healthz`, `/readyz`, `/metrics`, `/admin/reload`).
//! - [`app`]: the long-running service (`start`): listener, signals, reload, shutdown.
//! - [`cli`]: command-line definitions shared by `main.rs` and tests.
//! - [`version`]: build identification.
//! - [`discord`]: the Discord REST client, rate limiter and delivery queue.
//! - [`emulators`]: Teleport and Discord stand-ins for tests and `demo`.

pub mod app;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod discord;
pub mod emulators;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod readiness;
pub mod secret;
pub mod version;
