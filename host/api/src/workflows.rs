//! Workflows, events and runs: the HTTP face of `courtyard-workflow`.

use crate::auth::{AdminOf, MemberOf};
use crate::error::ErrorResponse;
use crate::openapi::CommunityErrors;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use courtyard_registry::EventKind;
use courtyard_workflow::compile::{self, Format};
use courtyard_workflow::engine::{RunQuery, RunStatus};
use courtyard_workflow::{WorkflowError, WorkflowName};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

/// The body of `POST /v1/communities/{community}/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBody {
    /// The event's kind: dot-separated segments (`camera.object-thrown`).
    kind: String,
    /// A JSON object (`{}` when left out).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    payload: Value,
    /// An idempotency id: the same id posted again is accepted once.
    #[serde(default)]
    id: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

fn workflow_name(name: String) -> Result<WorkflowName, ApiError> {
    WorkflowName::new(name).map_err(|e| ApiError::BadPath(e.to_string()))
}

/// `GET /v1/communities/{community}/workflows`
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/workflows",
    tag = "workflows",
    params(("community" = String, Path, description = "The community id (`nanhu`)")),
    responses((status = 200, description = "The community's workflows with their on/off state", body = Object), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
) -> Result<Json<Value>, ApiError> {
    let workflows = state.engine.workflows(&community)?;
    Ok(Json(json!({ "workflows": workflows })))
}

/// `PUT /v1/communities/{community}/workflows/{workflow}`: the body is the document,
/// YAML or JSON by its content type.
#[utoipa::path(
    put,
    path = "/v1/communities/{community}/workflows/{workflow}",
    tag = "workflows",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("workflow" = String, Path, description = "The workflow name")),
    request_body(content = String, content_type = "application/yaml", description = "The workflow document, YAML (`application/yaml`) or JSON (`application/json`); schema: schemas/workflow.schema.json"),
    responses((status = 200, description = "Replaced", body = Object), (status = 201, description = "Created", body = Object), (status = 415, description = "Neither YAML nor JSON", body = ErrorResponse), (status = 422, description = "Refused; `details` says where and why", body = ErrorResponse), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn apply(
    State(state): State<AppState>,
    admin: AdminOf,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::Json(JsonRejection::BytesRejection(e)))?;
    let community = &admin.community;
    let name = workflow_name(name)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let format = match content_type.as_str() {
        "application/json" => Format::Json,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Format::Yaml,
        _ => return Err(ApiError::WorkflowMediaType),
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::InvalidWorkflow(vec!["the document is not UTF-8 text".into()]))?;
    let document =
        compile::parse(text, format).map_err(|p| ApiError::InvalidWorkflow(vec![p.to_string()]))?;
    let existed = state.engine.workflow(community, name.as_str()).is_ok();
    // Recorded in the audit log in the same batch as the change.
    let record = state
        .engine
        .apply_as(Some(&admin.caller.actor()), community, &name, document)
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(record)).into_response())
}

/// `GET /v1/communities/{community}/workflows/{workflow}`
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/workflows/{workflow}",
    tag = "workflows",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("workflow" = String, Path, description = "The workflow name")),
    responses((status = 200, description = "The workflow", body = Object), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(state.engine.workflow(&community, &name)?).into_response())
}

/// `DELETE /v1/communities/{community}/workflows/{workflow}`
#[utoipa::path(
    delete,
    path = "/v1/communities/{community}/workflows/{workflow}",
    tag = "workflows",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("workflow" = String, Path, description = "The workflow name")),
    responses((status = 204, description = "Removed"), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    admin: AdminOf,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .remove_as(Some(&admin.caller.actor()), &admin.community, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/communities/{community}/workflows/{workflow}/enable`
#[utoipa::path(
    post,
    path = "/v1/communities/{community}/workflows/{workflow}/enable",
    tag = "workflows",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("workflow" = String, Path, description = "The workflow name")),
    responses((status = 200, description = "Switched on", body = Object), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn enable(
    State(state): State<AppState>,
    admin: AdminOf,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    switch(&state, &admin, &name, true).await
}

/// `POST /v1/communities/{community}/workflows/{workflow}/disable`
#[utoipa::path(
    post,
    path = "/v1/communities/{community}/workflows/{workflow}/disable",
    tag = "workflows",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("workflow" = String, Path, description = "The workflow name")),
    responses((status = 200, description = "Switched off; started runs finish", body = Object), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn disable(
    State(state): State<AppState>,
    admin: AdminOf,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    switch(&state, &admin, &name, false).await
}

async fn switch(
    state: &AppState,
    admin: &AdminOf,
    name: &str,
    on: bool,
) -> Result<Response, ApiError> {
    let after = state
        .engine
        .set_enabled_as(Some(&admin.caller.actor()), &admin.community, name, on)
        .await?;
    Ok(Json(after).into_response())
}

/// `POST /v1/communities/{community}/workflows/{workflow}/runs`: a run by hand; the
/// body (optional) is the input, readable as `trigger.input`.
#[utoipa::path(
    post,
    path = "/v1/communities/{community}/workflows/{workflow}/runs",
    tag = "workflows",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("workflow" = String, Path, description = "The workflow name")),
    request_body(content = Option<Object>, description = "The run's input (`trigger.input`), optional"),
    responses((status = 202, description = "Started; `Location` is the run", body = Object), (status = 409, description = "The workflow is disabled", body = ErrorResponse), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
    Path((_, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::Json(JsonRejection::BytesRejection(e)))?;
    let input = if body.is_empty() {
        json!({})
    } else {
        if !headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
        {
            return Err(ApiError::Json(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let Json(value) = Json::<Value>::from_bytes(&body).map_err(ApiError::Json)?;
        value
    };
    let run = state.engine.start_run(&community, &name, input).await?;
    let mut response = (StatusCode::ACCEPTED, Json(&run)).into_response();
    if let Ok(location) =
        HeaderValue::from_str(&format!("/v1/communities/{community}/runs/{}", run.id))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `POST /v1/communities/{community}/events`: 202 once the event is durable.
#[utoipa::path(
    post,
    path = "/v1/communities/{community}/events",
    tag = "events",
    params(("community" = String, Path, description = "The community id (`nanhu`)")),
    request_body = EventBody,
    responses((status = 202, description = "Durably recorded", body = Object), (status = 409, description = "The id was used for another event", body = ErrorResponse), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    MemberOf { community, .. }: MemberOf,
    body: Result<Json<EventBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let kind = EventKind::new(body.kind)
        .map_err(|e| ApiError::Workflow(WorkflowError::InvalidEvent(e.to_string())))?;
    if let Some(id) = &body.id
        && (id.is_empty() || id.len() > 200 || !id.chars().all(|c| c.is_ascii_graphic()))
    {
        return Err(ApiError::Workflow(WorkflowError::InvalidEvent(
            "id: 1 to 200 visible ASCII characters".into(),
        )));
    }
    let accepted = state
        .engine
        .ingest(&community, &kind, body.payload, body.id)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// The query of `GET /v1/communities/{community}/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    /// Only this workflow's runs.
    workflow: Option<String>,
    /// Only runs in this state: running, waiting, succeeded, failed.
    status: Option<String>,
    /// Runs older than this run id (the `next` of the previous page).
    before: Option<String>,
    /// Page size, 1 to 200 (50).
    limit: Option<usize>,
}

/// `GET /v1/communities/{community}/runs`: newest first; `next` pages on.
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/runs",
    tag = "runs",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), RunsQuery),
    responses((status = 200, description = "Runs, newest first; `next` pages on", body = Object), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn runs(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::BadQuery(format!(
                "status {s:?}: one of running, waiting, succeeded, failed"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadQuery("limit: 1 to 200".into()));
    }
    let runs = state.engine.runs(
        &community,
        &RunQuery {
            workflow: q.workflow,
            status,
            before: q.before,
            limit,
        },
    )?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(json!({ "runs": runs, "next": next })))
}

/// `GET /v1/communities/{community}/runs/{run}`
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/runs/{run}",
    tag = "runs",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("run" = String, Path, description = "The run id")),
    responses((status = 200, description = "The run with its steps", body = Object), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn run(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
    Path((_, run)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(state.engine.run(&community, &run)?).into_response())
}
