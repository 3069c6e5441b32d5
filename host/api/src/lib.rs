//! The HTTP API: the only Courtyard crate that knows HTTP.
//!
//! [`router`] builds the axum `Router` over an [`AppState`]; the binary serves it and
//! the tests drive it directly. Errors go through [`ApiError`], which renders the JSON
//! error body of `API.md`.

mod error;
mod workflows;

pub use error::ApiError;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use courtyard_runtime::{Invocation, Runtime};
use courtyard_tenancy::District;
use courtyard_workflow::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest request body accepted, in bytes (413 beyond).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The plugin runtime.
    pub runtime: Runtime,
    /// The workflow engine.
    pub engine: Engine,
    /// The communities served.
    pub district: Arc<District>,
    request_ids: Arc<RequestIds>,
    /// The Prometheus recorder's handle, for `/metrics` (none: nothing recorded).
    metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// The state over a runtime, its workflow engine and a district.
    pub fn new(runtime: Runtime, engine: Engine, district: Arc<District>) -> Self {
        Self {
            runtime,
            engine,
            district,
            request_ids: Arc::new(RequestIds::new()),
            metrics: None,
        }
    }

    /// Serves the metrics of this Prometheus recorder at `/metrics`.
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }
}

/// Request ids: this process's start time and a counter, unique across restarts.
#[derive(Debug)]
struct RequestIds {
    epoch: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            epoch,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!(
            "{:x}-{:x}",
            self.epoch,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// The router of the whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/communities/{community}/plugins/{plugin}/invoke/{operation}",
            post(invoke),
        )
        .route(
            "/v1/communities/{community}/workflows",
            get(workflows::list),
        )
        .route(
            "/v1/communities/{community}/workflows/{workflow}",
            put(workflows::apply)
                .get(workflows::get)
                .delete(workflows::remove),
        )
        .route(
            "/v1/communities/{community}/workflows/{workflow}/enable",
            post(workflows::enable),
        )
        .route(
            "/v1/communities/{community}/workflows/{workflow}/disable",
            post(workflows::disable),
        )
        .route(
            "/v1/communities/{community}/workflows/{workflow}/runs",
            post(workflows::start),
        )
        .route(
            "/v1/communities/{community}/events",
            post(workflows::ingest),
        )
        .route("/v1/communities/{community}/runs", get(workflows::runs))
        .route(
            "/v1/communities/{community}/runs/{run}",
            get(workflows::run),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "communities": state.district.communities.len(),
        "plugins": state.runtime.plugins(),
    }))
}

/// Prometheus metrics (text exposition format). Until tokens land (the district issue),
/// the route is open like every other: bind the host to loopback.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.as_ref().map_or_else(String::new, |handle| {
        handle.run_upkeep();
        handle.render()
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Refuses a community the district does not have (cheaply: no store access).
fn known_community(state: &AppState, community: &str) -> Result<(), ApiError> {
    match state.district.community(community) {
        Some(_) => Ok(()),
        None => Err(ApiError::CommunityNotFound(community.to_owned())),
    }
}

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 200;

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |reason: &str| ApiError::BadHeader {
        name: "Idempotency-Key",
        reason: reason.into(),
    };
    let key = value.to_str().map_err(|_| bad("must be visible ASCII"))?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(bad("must have 1 to 200 characters"));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(bad("must be visible ASCII without spaces"));
    }
    if key.starts_with(courtyard_workflow::engine::STEP_KEY_PREFIX) {
        // A workflow step's key: a caller holding it could take the step's place.
        return Err(bad(
            "keys beginning with `workflow:` are reserved for the steps of workflow runs",
        ));
    }
    Ok(Some(key.to_owned()))
}

async fn invoke(
    State(state): State<AppState>,
    Path((community, plugin, operation)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    known_community(&state, &community)?;
    let Json(input) = body?;
    let idempotency_key = idempotency_key(&headers)?;
    let request_id = state.request_ids.next();
    let outcome = state
        .runtime
        .invoke(Invocation {
            community: community.clone(),
            plugin,
            operation,
            input,
            idempotency_key,
            request_id: request_id.clone(),
            config: None,
            depth: 0,
            chain: None,
        })
        .await?;
    if !outcome.events.is_empty() {
        // Workflows may be waiting for these.
        state.engine.notify_events(&community);
    }
    let mut response = Json(outcome.output).into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    Ok(response)
}
