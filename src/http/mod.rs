//! The HTTP surface, one listener:
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | liveness: 200 while the runtime is responsive |
//! | `GET /readyz` | 200 when every component is ready, else 503 naming what is not |
//! | `GET /metrics` | Prometheus (OpenMetrics) text |
//! | `POST /admin/reload` | re-read and swap the config; needs `Authorization: Bearer <admin_token>` |
//! | `GET /admin/reload` | the last reload's outcome, and whether one is running (same token) |
//! | `POST /discord/interactions` | Discord's interactions endpoint (with `[discord] public_key`): signed deliveries only |
//!
//! Every error is a JSON body `{"error": "...", "details": [...]}`. Handlers
//! never call Discord or Teleport: they read shared state or hand work over
//! (a reload to the task that owns it, [`ReloadPort`]), and the handler that
//! waits for a reload's report waits at most [`RELOAD_WAIT`].

mod admin;
mod interactions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::SharedConfig;
use crate::readiness::Readiness;

pub use admin::authorize;

/// Largest request body accepted: an interaction carries the clicked message
/// (up to 2,000 characters of content and 6,000 of embeds, JSON-escaped).
pub const BODY_LIMIT: usize = 64 * 1024;
/// Time limit for one request (but `POST /admin/reload`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `POST /admin/reload` waits for the reload's report before it
/// answers 202: longer than the longest reload (a Discord check of at most
/// 10 s, then a switch of Teleport settings of at most 30 s).
pub const RELOAD_WAIT: Duration = Duration::from_secs(45);
/// `/healthz` fails when the runtime heartbeat is older than this.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(10);

/// Every route: method and path. `openapi.yaml` must describe exactly these
/// (a test checks both this list against the router and the spec against it).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/admin/reload"),
    ("GET", "/admin/reload"),
    ("POST", "/discord/interactions"),
];

/// A finished reload, as `/admin/reload` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// Counts reloads since the start.
    pub id: u64,
    /// `sighup` or `http` (the first asker's, when several shared it).
    pub trigger: &'static str,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// When it finished, RFC 3339.
    pub finished_at: String,
    /// `success` or `failure`.
    pub result: &'static str,
    /// Config keys whose value changed.
    pub changed: Vec<&'static str>,
    /// Changed keys that take effect only after a restart.
    pub restart_required: Vec<&'static str>,
    /// Why it failed: one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every problem, each naming its key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// Whether a reload is running, and the last one's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadStatus {
    /// The ID of the reload under way, if any.
    pub running: Option<u64>,
    /// The last finished reload (none since the start: `null`).
    pub last: Option<Arc<ReloadReport>>,
}

/// Why a reload was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many reload requests are waiting already.
    Busy,
    /// The service is stopping.
    ShuttingDown,
}

/// What the HTTP surface needs of reloads (implemented by the reload task's
/// handle, `reload::Reloader`).
pub trait ReloadPort: Send + Sync + std::fmt::Debug + 'static {
    /// Asks for a reload; the receiver gets its report. The reload goes on
    /// to its end whether or not anyone still waits.
    fn request(
        &self,
        trigger: &'static str,
    ) -> Result<tokio::sync::oneshot::Receiver<Arc<ReloadReport>>, Refused>;
    /// The reload under way and the last report.
    fn status(&self) -> ReloadStatus;
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The running config.
    pub config: SharedConfig,
    /// Readiness latches.
    pub readiness: Readiness,
    /// Metrics to expose.
    pub registry: Arc<Registry>,
    /// Reloads the config.
    pub reload: Arc<dyn ReloadPort>,
    /// HTTP request metrics.
    pub metrics: HttpMetrics,
    /// Runtime liveness.
    pub heartbeat: Heartbeat,
    /// Discord's interactions endpoint and the interaction IDs it has seen.
    pub interactions: Arc<crate::interactions::Endpoint>,
    /// The review desk, once the pipeline runs (clicks before get "still
    /// connecting").
    pub desk: Arc<std::sync::OnceLock<Arc<crate::review::Desk>>>,
    /// Interaction and review metrics.
    pub review_metrics: crate::review::ReviewMetrics,
}

/// A timestamp a background task refreshes every second; a stale one means
/// the runtime is starved or stuck.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    start: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

impl Heartbeat {
    /// A fresh heartbeat.
    pub fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
    /// Records a beat now.
    pub fn beat(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
    /// Beats every second until `cancel` fires.
    pub async fn run(self, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => self.beat(),
                () = cancel.cancelled() => return,
            }
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// `http_requests_total` and `http_request_duration_seconds`, by matched route.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
}

impl HttpMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_requests",
            "HTTP requests served, by method, matched route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and matched route",
            duration.clone(),
        );
        Self { requests, duration }
    }
}

/// A JSON error body.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// One sentence.
    pub error: String,
    /// Further lines (each config problem, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// Builds a JSON error response.
pub fn error_response(
    status: StatusCode,
    error: impl Into<String>,
    details: Vec<String>,
) -> Response {
    (
        status,
        Json(ErrorBody {
            error: error.into(),
            details,
        }),
    )
        .into_response()
}

/// The router of `[review] listen_addr`: `POST /discord/interactions` and
/// `GET /healthz` only, with the same layers.
pub fn review_router(state: AppState) -> Router {
    let timeout = TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/discord/interactions", post(interactions::deliver))
        .layer(timeout)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .with_state(state)
}

/// The router with every route and layer.
pub fn router(state: AppState) -> Router {
    let timeout = |d| TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, d);
    // The reload handler bounds its own wait (RELOAD_WAIT, then 202); the
    // layer is only a backstop above it.
    let admin = Router::new()
        .route(
            "/admin/reload",
            post(admin::reload)
                .layer(timeout(RELOAD_WAIT + Duration::from_secs(5)))
                .merge(get(admin::reload_status).layer(timeout(REQUEST_TIMEOUT))),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            admin::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/discord/interactions", post(interactions::deliver))
        .layer(timeout(REQUEST_TIMEOUT))
        .merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                    Vec::new(),
                )
            },
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str)
                .to_owned();
            tracing::debug_span!("http", method = %req.method(), route)
        }))
        .with_state(state)
}

async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = tokio::time::Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = match method {
        Method::GET
        | Method::POST
        | Method::HEAD
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::OPTIONS => method.as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let response = next.run(req).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .duration
        .get_or_create(&RouteLabels { method, route })
        .observe(start.elapsed().as_secs_f64());
    response
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

async fn healthz(State(state): State<AppState>) -> Response {
    let age = state.heartbeat.age();
    if age > HEARTBEAT_STALE {
        let reason = format!("runtime heartbeat is {}s old", age.as_secs());
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unhealthy",
                reason: Some(reason),
            }),
        )
            .into_response();
    }
    Json(Health {
        status: "ok",
        reason: None,
    })
    .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let report = state.readiness.report();
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    use crate::metrics as m;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, encoded) = if m::wants_openmetrics(accept) {
        (m::OPENMETRICS_CONTENT_TYPE, m::encode(&state.registry))
    } else {
        (
            m::TEXT_CONTENT_TYPE,
            m::encode_prometheus_text(&state.registry),
        )
    };
    match encoded {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            text,
        )
            .into_response(),
        Err(_) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not encode metrics",
            Vec::new(),
        ),
    }
}

async fn not_found(req: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("no route for {}", req.uri().path()),
        Vec::new(),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p)| *p == path)
        .map(|(m, _)| *m)
        .collect();
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {} is not allowed on {path}", req.method()),
        Vec::new(),
    );
    if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}
