//! Discord delivery: a v10 REST client ([`DiscordClient`]) behind a
//! rate-limit-aware limiter ([`ratelimit`]) and a bounded, per-channel ordered
//! queue ([`Delivery`]).
//!
//! - [`client`]: reqwest, `Authorization: Bot …`, `User-Agent: DiscordBot (…)`,
//!   timeouts, retries with [`crate::backoff`], typed errors.
//! - [`ratelimit`]: per-route buckets learned from headers, the global limit,
//!   429 handling by scope, the invalid-request guard.
//! - [`queue`]: ordering, edit coalescing, fairness, backpressure, drain.
//! - [`types`]: payloads and answers.
//! - [`metrics`]: Prometheus metrics (`discord_*`).

pub mod client;
pub mod metrics;
pub mod queue;
pub mod ratelimit;
pub mod types;

use std::time::Duration;

use serde_json::Value;

pub use client::{ClientOptions, DiscordClient};
pub use metrics::DiscordMetrics;
pub use queue::{Delivery, DeliveryError, OnDone, Op, Pending, QueueOptions, ShutdownReport};
pub use types::{
    ActionRow, AllowedMentions, BotUser, Button, Channel, Embed, EmbedField, EmbedFooter, Message,
    MessagePayload,
};

/// One field error of a 400/50035 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path, e.g. `embeds.0.title`.
    pub path: String,
    /// Discord's code, e.g. `BASE_TYPE_MAX_LENGTH`.
    pub code: String,
    /// Discord's message.
    pub message: String,
}

/// What went wrong talking to Discord. The token never appears here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscordError {
    /// 401: the token is bad; the client stops sending until a token check passes.
    #[error("Discord rejected the bot token (HTTP 401): {message}")]
    Unauthorized {
        /// Discord's message.
        message: String,
    },
    /// A 4xx answer with Discord's JSON error body.
    #[error("Discord answered {status} with code {code}: {message}{}", format_fields(.fields))]
    Api {
        /// HTTP status.
        status: u16,
        /// Discord's JSON error code (10003 unknown channel, 10008 unknown message, 50013 missing permissions, 50035 invalid form body, …).
        code: u64,
        /// Discord's message.
        message: String,
        /// Field errors of a 50035 answer.
        fields: Vec<FieldError>,
    },
    /// 429s kept coming after the allowed number of waits.
    #[error("Discord kept rate limiting the request ({scope} scope, retry after {retry_after:?})")]
    RateLimited {
        /// `global`, `user` or `shared`.
        scope: String,
        /// The last `retry_after`.
        retry_after: Duration,
    },
    /// 5xx after the allowed attempts.
    #[error("Discord server error {status}")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// Timeout, connection refused or reset, after the allowed attempts.
    #[error("request to Discord failed: {0}")]
    Transport(String),
    /// Too many 401/403/429 in the last 10 minutes: not sending, to stay far from Discord's ban.
    #[error(
        "not sending: {count} invalid requests (401/403/429) in the last 10 minutes reached the guard of {limit}"
    )]
    InvalidRequestGuard {
        /// Invalid requests in the window.
        count: usize,
        /// The guard's threshold.
        limit: usize,
    },
    /// The send fence is closed: another replica holds the leader lease
    /// (or this one is losing it), so nothing was sent.
    #[error("not sending: this replica does not hold the leader lease")]
    Fenced,
    /// A 2xx answer we could not read.
    #[error("unexpected answer from Discord: {0}")]
    Decode(String),
    /// A caller error caught before sending (e.g. an ID that is not a snowflake).
    #[error("invalid request: {0}")]
    Invalid(String),
}

fn format_fields(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("; {}: {}", f.path, f.message))
        .collect()
}

impl DiscordError {
    /// Whether trying again later may succeed (5xx, transport, 429, guard).
    /// Permanent errors (most 4xx, 401) need a change before a retry.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Server { .. }
                | Self::Transport(_)
                | Self::InvalidRequestGuard { .. }
                | Self::Fenced
        )
    }

    /// Discord's JSON error code, when it sent one.
    pub fn code(&self) -> Option<u64> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// 404/10008: the message is gone (deleted by a user).
    pub fn is_unknown_message(&self) -> bool {
        self.code() == Some(10008)
    }

    /// 404/10003: the channel does not exist.
    pub fn is_unknown_channel(&self) -> bool {
        self.code() == Some(10003)
    }

    /// Builds an error from a non-2xx status and body.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let message = json
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        if status == 401 {
            return Self::Unauthorized { message };
        }
        if status >= 500 {
            return Self::Server { status };
        }
        let code = json
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut fields = Vec::new();
        if let Some(errors) = json.as_ref().and_then(|v| v.get("errors")) {
            collect_fields(errors, "", &mut fields);
        }
        Self::Api {
            status,
            code,
            message,
            fields,
        }
    }
}

fn collect_fields(node: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(obj) = node.as_object() else { return };
    for (key, child) in obj {
        if key == "_errors" {
            for e in child.as_array().map(Vec::as_slice).unwrap_or_default() {
                out.push(FieldError {
                    path: path.to_owned(),
                    code: e
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        } else {
            let p = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            collect_fields(child, &p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_errors_are_typed_with_paths() {
        let body = br#"{"code":50035,"message":"Invalid Form Body","errors":{"embeds":{"0":{"title":{"_errors":[{"code":"BASE_TYPE_MAX_LENGTH","message":"Must be 256 or fewer in length."}]}}}}}"#;
        let e = DiscordError::from_response(400, body);
        assert_eq!(e.code(), Some(50035));
        assert!(!e.is_retryable());
        let DiscordError::Api { fields, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(fields[0].path, "embeds.0.title");
        assert_eq!(fields[0].code, "BASE_TYPE_MAX_LENGTH");
        assert!(e.to_string().contains("embeds.0.title: Must be 256"), "{e}");
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert!(matches!(
            DiscordError::from_response(401, br#"{"message":"401: Unauthorized","code":0}"#),
            DiscordError::Unauthorized { .. }
        ));
        assert!(DiscordError::from_response(502, b"<html>bad gateway</html>").is_retryable());
        assert!(
            DiscordError::from_response(404, br#"{"message":"Unknown Message","code":10008}"#)
                .is_unknown_message()
        );
        assert!(
            DiscordError::from_response(404, br#"{"message":"Unknown Channel","code":10003}"#)
                .is_unknown_channel()
        );
    }
}
