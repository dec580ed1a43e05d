//! The reconciler's ports, each adapted in one place: [`teleport`] turns
//! watch events into observations and serves plugin data; [`discord`] turns
//! message operations into work for the Discord delivery queue. Neither
//! client module knows the reconciler, and the reconciler knows neither
//! client.

pub mod discord;
pub mod teleport;
