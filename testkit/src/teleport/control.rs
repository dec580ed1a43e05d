//! An HTTP control API over the emulator, for `demo` and manual testing
//! (plain HTTP; bind it to loopback):
//!
//! | route | what |
//! |---|---|
//! | `GET /requests` | all requests (id, user, roles, state, reasons, kind) |
//! | `POST /requests` `{"user","roles","reason","approvals","kind"}` | create a PENDING request (`approvals` needed to approve, default 1; `kind` `"UNDEFINED"` (default), `"SHORT_TERM"` or `"LONG_TERM"`) → `{"id"}` |
//! | `POST /requests/{id}/reviews` `{"author","approve","reason"}` | add a review |
//! | `POST /requests/{id}/resolve` `{"approve","reason"}` | set the state directly |
//! | `DELETE /requests/{id}` | delete (DELETE event) |
//! | `GET /requests/{id}/plugin_data/{plugin}` | stored plugin data |
//! | `POST /faults/drop_streams` | end every watch stream |
//! | `POST /faults/unavailable` `{"seconds"}` | outage |
//! | `POST /faults/rotate` | rotate the plugin's client certificate → `{"serial"}` |

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{AccessRequestKind, EmulatorError, TeleportEmulator};

#[derive(Debug, Deserialize)]
struct CreateBody {
    user: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    approvals: Option<u32>,
    /// `AccessRequestKind` by name.
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ReviewBody {
    author: String,
    approve: bool,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
struct ResolveBody {
    approve: bool,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
struct OutageBody {
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct RequestView {
    id: String,
    user: String,
    roles: Vec<String>,
    state: &'static str,
    request_reason: String,
    resolve_reason: String,
    reviews: usize,
    kind: &'static str,
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn refused(e: &EmulatorError) -> Reply {
    let code = match e {
        EmulatorError::Refused(s) if s.code() == tonic::Code::NotFound => StatusCode::NOT_FOUND,
        EmulatorError::Refused(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, Json(serde_json::json!({ "error": e.to_string() })))
}

fn ok(v: serde_json::Value) -> Reply {
    (StatusCode::OK, Json(v))
}

/// The control router for `emu`.
pub fn router(emu: Arc<TeleportEmulator>) -> Router {
    Router::new()
        .route("/requests", get(list).post(create))
        .route("/requests/{id}", axum::routing::delete(delete))
        .route("/requests/{id}/reviews", post(review))
        .route("/requests/{id}/resolve", post(resolve))
        .route("/requests/{id}/plugin_data/{plugin}", get(plugin_data))
        .route("/faults/drop_streams", post(drop_streams))
        .route("/faults/unavailable", post(unavailable))
        .route("/faults/rotate", post(rotate))
        .with_state(emu)
}

async fn list(State(emu): State<Arc<TeleportEmulator>>) -> Reply {
    let views: Vec<RequestView> = emu
        .shared
        .lock()
        .requests
        .values()
        .cloned()
        .map(|r| {
            let spec = r.spec.unwrap_or_default();
            RequestView {
                id: r.metadata.map(|m| m.name).unwrap_or_default(),
                state: crate::pb::types::RequestState::try_from(spec.state)
                    .map_or("NONE", |s| s.as_str_name()),
                reviews: spec.reviews.len(),
                kind: AccessRequestKind::try_from(spec.request_kind)
                    .map_or("UNDEFINED", |k| k.as_str_name()),
                user: spec.user,
                roles: spec.roles,
                request_reason: spec.request_reason,
                resolve_reason: spec.resolve_reason,
            }
        })
        .collect();
    ok(serde_json::json!(views))
}

async fn create(State(emu): State<Arc<TeleportEmulator>>, Json(b): Json<CreateBody>) -> Reply {
    let roles: Vec<&str> = b.roles.iter().map(String::as_str).collect();
    let approvals = b.approvals.unwrap_or(1).clamp(1, 10);
    let kind = match b.kind.as_deref() {
        None => AccessRequestKind::Undefined,
        Some(k) => match AccessRequestKind::from_str_name(k) {
            Some(kind) => kind,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({
                        "error": format!("unknown request kind {k:?} (UNDEFINED, SHORT_TERM, LONG_TERM)")
                    })),
                );
            }
        },
    };
    let id = emu.new_request(&b.user, &roles, &b.reason, (approvals, 1), kind);
    (StatusCode::CREATED, Json(serde_json::json!({ "id": id })))
}

async fn review(
    State(emu): State<Arc<TeleportEmulator>>,
    Path(id): Path<String>,
    Json(b): Json<ReviewBody>,
) -> Reply {
    match emu.add_review(&id, &b.author, b.approve, &b.reason) {
        Ok(()) => ok(serde_json::json!({})),
        Err(e) => refused(&e),
    }
}

async fn resolve(
    State(emu): State<Arc<TeleportEmulator>>,
    Path(id): Path<String>,
    Json(b): Json<ResolveBody>,
) -> Reply {
    match emu.resolve(&id, b.approve, &b.reason) {
        Ok(()) => ok(serde_json::json!({})),
        Err(e) => refused(&e),
    }
}

async fn delete(State(emu): State<Arc<TeleportEmulator>>, Path(id): Path<String>) -> Reply {
    match emu.delete_request(&id) {
        Ok(()) => ok(serde_json::json!({})),
        Err(e) => refused(&e),
    }
}

async fn plugin_data(
    State(emu): State<Arc<TeleportEmulator>>,
    Path((id, plugin)): Path<(String, String)>,
) -> Reply {
    ok(serde_json::json!(
        emu.plugin_data(&id, &plugin).unwrap_or_default()
    ))
}

async fn drop_streams(State(emu): State<Arc<TeleportEmulator>>) -> Reply {
    emu.drop_watch_streams(true);
    ok(serde_json::json!({}))
}

async fn unavailable(State(emu): State<Arc<TeleportEmulator>>, Json(b): Json<OutageBody>) -> Reply {
    let secs = if b.seconds.is_finite() {
        b.seconds.clamp(0.0, 3600.0)
    } else {
        0.0
    };
    emu.go_unavailable(Duration::from_secs_f64(secs));
    ok(serde_json::json!({}))
}

async fn rotate(State(emu): State<Arc<TeleportEmulator>>) -> Reply {
    match emu.rotate_client_cert() {
        Ok(serial) => ok(serde_json::json!({ "serial": serial })),
        Err(e) => refused(&e),
    }
}
