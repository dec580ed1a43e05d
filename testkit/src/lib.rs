//! teleport-discord's testkit: stand-ins for the two outside services and
//! the harnesses built on them. Used by the product's tests and benches, and
//! (behind the product's default `demo` feature) by `demo`, `emulators` and
//! `chaos`; never by the production image.
//!
//! The emulators follow Teleport's and Discord's documented behaviour, not
//! our client's convenience, and share no code with the product: they meet
//! it on the wire only.
//!
//! # Layout
//! - [`teleport`]: the Teleport Auth Service emulator (gRPC over mutual TLS),
//!   its control API, the TLS-routing Proxy, and the test PKI ([`teleport::pki`]).
//! - [`discord`]: the Discord REST emulator with Discord's rate limits and
//!   validation rules.
//! - [`sandbox`]: both emulators and a config for `start`.
//! - [`net`]: stand-ins on the way to an emulator (a slow link).
//! - [`demo`]: `teleport-discord demo`: the service against the sandbox, a
//!   scripted story, a page.
//! - [`chaos`]: the chaos runner: replicas of `start` as processes, faults,
//!   and an oracle.
//! - [`pb`]: server stubs generated from the product's trimmed protos.
//! - [`util`]: the small helpers every part shares (lock, random, temp dir).

pub mod chaos;
pub mod demo;
pub mod discord;
pub mod net;
pub mod pb;
pub mod sandbox;
pub mod teleport;
pub mod util;
