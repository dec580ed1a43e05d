//! `POST /discord/interactions`: hands the raw delivery to
//! [`crate::interactions::Endpoint`] (which verifies and reads it), clicks
//! and submits to the [`crate::review::Desk`], and serves the answer. Off
//! (404) without `[discord] public_key`.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::{AppState, error_response};
use crate::interactions::{self, Incoming};
use crate::review::{InteractionLabels, Outcome};

pub(super) async fn deliver(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let Some(key) = state.config.load().discord.public_key else {
        return error_response(
            StatusCode::NOT_FOUND,
            "interactions are off: set [discord] public_key to the application's public key",
            Vec::new(),
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let accepted = state.interactions.accept(
        &key,
        header("x-signature-timestamp"),
        header("x-signature-ed25519"),
        &body,
        SystemTime::now(),
    );
    let m = &state.review_metrics;
    let count = |kind: &'static str, outcome: &'static str| {
        m.interactions
            .get_or_create(&InteractionLabels {
                r#type: kind,
                outcome,
            })
            .inc();
    };
    let incoming = match accepted {
        Ok(i) => i,
        Err(refusal) => {
            count("unknown", refusal.label());
            if refusal.status() == 401 {
                m.signature_failures.inc();
            }
            tracing::debug!(reason = %refusal, "interaction delivery refused");
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return error_response(status, refusal.to_string(), Vec::new());
        }
    };
    let kind = incoming.kind().label();
    let desk = state.desk.get().cloned();
    let answer = match incoming {
        Incoming::Ping => {
            count(kind, "pong");
            interactions::pong()
        }
        Incoming::Replayed(_) => {
            count(kind, "replayed");
            interactions::ephemeral("This interaction was already handled.")
        }
        Incoming::Other => {
            count(kind, "unsupported");
            interactions::ephemeral(
                "This bot only handles its Approve and Deny buttons. Review access requests with the \"Review request\" link or `tsh request review`.",
            )
        }
        Incoming::Click(_) | Incoming::Submit(..) if desk.is_none() => {
            count(kind, "not_ready");
            interactions::ephemeral(&Outcome::NotReady.text(""))
        }
        Incoming::Click(acting) => {
            let Some(desk) = desk else {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            };
            let (answer, outcome) = desk.click(&acting).await;
            count(kind, outcome);
            answer
        }
        Incoming::Submit(acting, reason) => {
            let Some(desk) = desk else {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            };
            let answer = desk.answer_submit(acting, reason).await;
            let deferred = answer.get("type").and_then(serde_json::Value::as_u64) == Some(5);
            count(kind, if deferred { "deferred" } else { "answered" });
            answer
        }
    };
    m.first_answer.observe(arrived.elapsed().as_secs_f64());
    Json(answer).into_response()
}
