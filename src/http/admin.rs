//! `/admin/*`: bearer-token authorisation and the reload handler.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{AppState, RELOAD_WAIT, Refused, error_response};
use crate::secret::Secret;

/// Outcome of checking an `Authorization` header against the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No admin token configured: admin endpoints are off.
    Disabled,
    /// No bearer token in the request.
    Missing,
    /// A token that does not match.
    Wrong,
    /// The right token.
    Ok,
}

/// Checks `headers` against `token` in constant time.
pub fn authorize(token: Option<&Secret>, headers: &HeaderMap) -> Auth {
    let Some(token) = token else {
        return Auth::Disabled;
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    let bytes = value.as_bytes();
    let Some(candidate) = bytes
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case(b"bearer "))
        .map(|_| &bytes[7..])
    else {
        return Auth::Missing;
    };
    if token.matches(candidate.trim_ascii()) {
        Auth::Ok
    } else {
        Auth::Wrong
    }
}

pub(super) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let config = state.config.load();
    match authorize(config.http.admin_token.as_ref(), req.headers()) {
        Auth::Ok => next.run(req).await,
        Auth::Disabled => error_response(
            StatusCode::FORBIDDEN,
            "admin endpoints are disabled: no admin token is configured",
            vec![format!(
                "set [http] admin_token in the config file or {} to enable them",
                crate::config::env_vars::ADMIN_TOKEN
            )],
        ),
        outcome => {
            tracing::warn!(path = %req.uri().path(), missing = outcome == Auth::Missing, "rejected admin request with a missing or wrong token");
            let mut resp = error_response(
                StatusCode::UNAUTHORIZED,
                if outcome == Auth::Missing {
                    "missing bearer token: send Authorization: Bearer <admin_token>"
                } else {
                    "wrong admin token"
                },
                Vec::new(),
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"teleport-discord admin\""),
            );
            resp
        }
    }
}

#[derive(Debug, Serialize)]
struct Reloaded<'a> {
    status: &'static str,
    id: u64,
    changed: &'a [&'static str],
    restart_required: &'a [&'static str],
}

#[derive(Debug, Serialize)]
struct InProgress {
    status: &'static str,
    id: Option<u64>,
}

/// `POST /admin/reload`: hands the reload to its task and waits up to
/// [`RELOAD_WAIT`] for the report: 200 (applied), 422 (refused; the running
/// config is unchanged), or 202 when it is still under way (its outcome is
/// then at `GET /admin/reload`).
pub(super) async fn reload(State(state): State<AppState>) -> Response {
    let answer = match state.reload.request("http") {
        Ok(rx) => rx,
        Err(Refused::Busy) => {
            return error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too many reloads are waiting; the next one reads the file as it is then",
                Vec::new(),
            );
        }
        Err(Refused::ShuttingDown) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is shutting down",
                Vec::new(),
            );
        }
    };
    match tokio::time::timeout(RELOAD_WAIT, answer).await {
        Ok(Ok(report)) if report.result == "success" => Json(Reloaded {
            status: "reloaded",
            id: report.id,
            changed: &report.changed,
            restart_required: &report.restart_required,
        })
        .into_response(),
        Ok(Ok(report)) => error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            report.error.clone().unwrap_or_default(),
            report.details.clone(),
        ),
        Ok(Err(_)) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down",
            Vec::new(),
        ),
        Err(_) => {
            let mut resp = (
                StatusCode::ACCEPTED,
                Json(InProgress {
                    status: "in progress",
                    id: state.reload.status().running,
                }),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/admin/reload"));
            resp
        }
    }
}

/// `GET /admin/reload`: the reload under way, if any, and the last report.
pub(super) async fn reload_status(State(state): State<AppState>) -> Response {
    Json(state.reload.status()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(v).expect("header"),
        );
        h
    }

    #[test]
    fn authorize_cases() {
        let t = Secret::new("0123456789abcdef-admin");
        assert_eq!(authorize(None, &headers("Bearer x")), Auth::Disabled);
        assert_eq!(authorize(Some(&t), &HeaderMap::new()), Auth::Missing);
        assert_eq!(
            authorize(Some(&t), &headers("Basic 0123456789abcdef-admin")),
            Auth::Missing
        );
        assert_eq!(authorize(Some(&t), &headers("Bearer")), Auth::Missing);
        assert_eq!(
            authorize(Some(&t), &headers("Bearer 0123456789abcdef-admi")),
            Auth::Wrong
        );
        assert_eq!(
            authorize(Some(&t), &headers("Bearer 0123456789abcdef-admin")),
            Auth::Ok
        );
        assert_eq!(
            authorize(Some(&t), &headers("bearer 0123456789abcdef-admin ")),
            Auth::Ok
        );
    }
}
