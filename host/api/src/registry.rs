//! The plugin registry: what plugins the host has, and their manifests.

use crate::auth::Caller;
use crate::error::ErrorResponse;
use crate::openapi::TokenErrors;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

fn plugin_not_found(plugin: &str) -> ApiError {
    ApiError::NotFound {
        code: "plugin_not_found",
        message: format!("the registry has no plugin {plugin:?}; see GET /v1/plugins"),
    }
}

/// `GET /v1/plugins` (any token): every plugin, with its version and what it does.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "registry",
    responses((status = 200, description = "Every plugin the host has", body = Object), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn list(State(state): State<AppState>, _: Caller) -> Json<Value> {
    let plugins: Vec<Value> = state
        .runtime
        .plugins()
        .iter()
        .filter_map(|name| state.runtime.manifest(name))
        .map(|m| {
            let m = m.manifest();
            json!({
                "name": m.name,
                "version": m.version.to_string(),
                "description": m.description,
                "operations": m.operations.keys().collect::<Vec<_>>(),
                "capabilities": m.capabilities,
            })
        })
        .collect();
    Json(json!({ "plugins": plugins }))
}

/// `GET /v1/plugins/{plugin}` (any token): its versions.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}",
    tag = "registry",
    params(("plugin" = String, Path, description = "The plugin name (`canteen`)")),
    responses((status = 200, description = "The plugin's versions", body = Object), (status = 404, description = "No such plugin", body = ErrorResponse), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn versions(
    State(state): State<AppState>,
    _: Caller,
    Path(plugin): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let manifest = state
        .runtime
        .manifest(&plugin)
        .ok_or_else(|| plugin_not_found(&plugin))?;
    let m = manifest.manifest();
    Ok(Json(json!({
        "name": m.name,
        "description": m.description,
        "versions": [m.version.to_string()],
    })))
}

/// `GET /v1/plugins/{plugin}/{version}` (any token): that version's manifest.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}/{version}",
    tag = "registry",
    params(("plugin" = String, Path, description = "The plugin name (`canteen`)"), ("version" = String, Path, description = "The version (`0.1.0`)")),
    responses((status = 200, description = "The manifest of that version", body = Object), (status = 404, description = "No such plugin or version", body = ErrorResponse), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn version(
    State(state): State<AppState>,
    _: Caller,
    Path((plugin, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let manifest = state
        .runtime
        .manifest(&plugin)
        .ok_or_else(|| plugin_not_found(&plugin))?;
    if manifest.manifest().version.to_string() != version {
        return Err(ApiError::NotFound {
            code: "version_not_found",
            message: format!("the registry has no version {version:?} of {plugin}"),
        });
    }
    Ok(Json(
        serde_json::to_value(manifest.manifest()).unwrap_or(Value::Null),
    ))
}
