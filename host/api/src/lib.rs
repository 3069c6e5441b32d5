//! The HTTP API: the only Courtyard crate that knows HTTP.
//!
//! [`router`] builds the axum `Router` over an [`AppState`]; the binary serves it and
//! the tests drive it directly. Errors go through [`ApiError`], which renders the JSON
//! error body of `API.md`.

mod auth;
mod communities;
mod error;
mod openapi;
mod registry;
mod workflows;

pub use auth::{Caller, Rate, RateLimits};
pub use error::{ApiError, ErrorBody, ErrorResponse};

use auth::{MemberOf, Operator};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::IntoResponse;
use axum::{Json, Router};
use courtyard_runtime::{Invocation, Runtime};
use courtyard_tenancy::Tenancy;
use courtyard_workflow::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use openapi::{CommunityErrors, TokenErrors};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The largest request body accepted, in bytes (413 beyond).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a request may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The plugin runtime.
    pub runtime: Runtime,
    /// The workflow engine.
    pub engine: Engine,
    /// The district: communities, enablements, tokens, audit log.
    pub tenancy: Arc<Tenancy>,
    /// The rate limits of tokens and communities.
    pub limits: Arc<RateLimits>,
    request_ids: Arc<RequestIds>,
    /// The Prometheus recorder's handle, for `/metrics` (none: nothing recorded).
    metrics: Option<PrometheusHandle>,
    /// How long a request may take before it is answered with 503.
    request_timeout: Duration,
    /// The published plugin packages (none: publishing is off).
    packages: Option<Arc<courtyard_registry::PackageStore>>,
}

impl AppState {
    /// The state over a runtime, its workflow engine and the district's tenancy,
    /// with no rate limits.
    pub fn new(runtime: Runtime, engine: Engine, tenancy: Arc<Tenancy>) -> Self {
        Self {
            runtime,
            engine,
            tenancy,
            limits: Arc::new(RateLimits::none()),
            request_ids: Arc::new(RequestIds::new()),
            metrics: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            packages: None,
        }
    }

    /// Stores published plugin packages in `packages` (`POST /v1/plugins`).
    pub fn with_packages(mut self, packages: Arc<courtyard_registry::PackageStore>) -> Self {
        self.packages = Some(packages);
        self
    }

    /// Answers a request that takes longer than `timeout` with 503 (the work it
    /// started, such as a plugin call, still runs to its own end); zero: no limit.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Limits each token's and each community's request rate (429 beyond).
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Arc::new(limits);
        self
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

/// The routes and their OpenAPI description, built together.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(registry::list))
        // Packages are larger than other bodies: their own limit, on their own route.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(registry::publish))
                .layer(DefaultBodyLimit::max(registry::MAX_PACKAGE_BYTES)),
        )
        .routes(routes!(registry::versions))
        .routes(routes!(registry::version))
        .routes(routes!(communities::list, communities::create))
        .routes(routes!(communities::get, communities::update))
        .routes(routes!(communities::plugins))
        .routes(routes!(
            communities::plugin,
            communities::enable,
            communities::disable
        ))
        .routes(routes!(invoke))
        .routes(routes!(communities::alarms))
        .routes(routes!(communities::tokens, communities::create_token))
        .routes(routes!(communities::revoke_token))
        .routes(routes!(communities::audit))
        .routes(routes!(
            communities::all_tokens,
            communities::create_any_token
        ))
        .routes(routes!(communities::revoke_any_token))
        .routes(routes!(communities::all_audit))
        .routes(routes!(workflows::list))
        .routes(routes!(workflows::apply, workflows::get, workflows::remove))
        .routes(routes!(workflows::enable))
        .routes(routes!(workflows::disable))
        .routes(routes!(workflows::start))
        .routes(routes!(workflows::ingest))
        .routes(routes!(workflows::runs))
        .routes(routes!(workflows::run))
}

/// The OpenAPI 3.1 document of the API, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The router of the whole API, with `/openapi.json` and the interactive API page at
/// `/docs` (Swagger UI, its assets compiled into the binary).
pub fn router(state: AppState) -> Router {
    let (routes, document) = api().split_for_parts();
    routes
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .with_state(state)
}

/// Liveness: open to anyone, and says nothing about the district.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    responses((status = 200, description = "The host is up", body = Object))
)]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: whether the host can serve requests that read or write its store. Open
/// to anyone, like `/healthz`, for load balancers and supervisors: 503
/// `store_unavailable` (with `Retry-After`) while the store refuses operations after a
/// failed write, until the host has recovered.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "system",
    responses(
        (status = 200, description = "The host is ready: its store reads and writes", body = Object),
        (status = 503, description = "The store has failed; the host recovers by itself once the disk takes writes again", body = crate::error::ErrorResponse),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .runtime
        .store_health()
        .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?;
    Ok(Json(json!({ "status": "ready", "store": "ok" })))
}

/// Prometheus metrics (text exposition format), for the operator.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"), TokenErrors),
    security(("bearer" = []))
)]
async fn metrics(State(state): State<AppState>, _: Operator) -> impl IntoResponse {
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

async fn request_timeout(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if state.request_timeout.is_zero() {
        return next.run(request).await;
    }
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(state.request_timeout).into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
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

#[utoipa::path(
    post,
    path = "/v1/communities/{community}/plugins/{plugin}/invoke/{operation}",
    tag = "invoke",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("plugin" = String, Path, description = "The plugin name (`canteen`)"), ("operation" = String, Path, description = "The operation"), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried call apply once (1 to 200 visible ASCII characters)")),
    request_body(content = Object, description = "The operation's input, as its schema in the manifest says"),
    responses((status = 200, description = "The operation's output", body = Object), (status = 409, description = "The plugin refused: a conflict", body = ErrorResponse), (status = 503, description = "The plugin ran out of time or memory, or is unavailable", body = ErrorResponse), CommunityErrors),
    security(("bearer" = []))
)]
async fn invoke(
    State(state): State<AppState>,
    MemberOf { community, .. }: MemberOf,
    Path((_, plugin, operation)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
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
