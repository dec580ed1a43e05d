//! The one integration-test binary: real listeners on 127.0.0.1, real HTTP
//! clients, the real binary for process tests.

mod cli;
mod demo;
mod deploy;
mod discord;
mod http;
mod interactions;
mod layout;
mod lease;
mod lifecycle;
mod notify;
mod proc;
mod reliability;
mod reviews;
mod scenarios;
mod security;
mod support;
mod teleport;
