//! `POST /discord/interactions`: hands the raw delivery to
//! [`crate::interactions::Endpoint`] (which verifies it and says what to
//! answer) and serves the answer. Off (404) without `[discord] public_key`.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppState, OutcomeLabels, error_response};

pub(super) async fn deliver(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = state.config.load().discord.public_key else {
        return error_response(
            StatusCode::NOT_FOUND,
            "interactions are off: set [discord] public_key to the application's public key",
            Vec::new(),
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let answered = state.interactions.answer(
        &key,
        header("x-signature-timestamp"),
        header("x-signature-ed25519"),
        &body,
        SystemTime::now(),
    );
    let count = |outcome| {
        state
            .metrics
            .interactions
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    };
    match answered {
        Ok((answer, how)) => {
            count(how.label());
            Json(answer).into_response()
        }
        Err(refusal) => {
            count(refusal.label());
            tracing::debug!(reason = %refusal, "interaction delivery refused");
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            error_response(status, refusal.to_string(), Vec::new())
        }
    }
}
