//! The plugin registry: what plugins the host has, and their manifests.

use crate::auth::{Caller, Publisher};
use crate::error::ErrorResponse;
use crate::openapi::TokenErrors;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use courtyard_registry::{Digest, Package, PackageStoreError, PluginName, Published};
use courtyard_tenancy::Role;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The 404 of a plugin the registry does not have.
pub(crate) fn plugin_not_found(plugin: &str) -> ApiError {
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
    // Parsed, so that the name is safe as a path in the package store.
    let plugin = PluginName::new(plugin.clone())
        .map_err(|_| plugin_not_found(&plugin))?
        .to_string();
    let loaded = state.runtime.manifest(&plugin);
    let mut versions: Vec<semver::Version> = state
        .packages
        .as_ref()
        .map(|p| p.versions(&plugin))
        .unwrap_or_default();
    if let Some(m) = &loaded {
        versions.push(m.manifest().version.clone());
    }
    versions.sort();
    versions.dedup();
    if versions.is_empty() {
        return Err(plugin_not_found(&plugin));
    }
    Ok(Json(json!({
        "name": plugin,
        "description": loaded.as_ref().map(|m| m.manifest().description.clone()),
        "versions": versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "running": loaded.map(|m| m.manifest().version.to_string()),
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
    let plugin = PluginName::new(plugin.clone())
        .map_err(|_| plugin_not_found(&plugin))?
        .to_string();
    let not_found = || ApiError::NotFound {
        code: "version_not_found",
        message: format!("the registry has no version {version:?} of {plugin}"),
    };
    if let Some(loaded) = state.runtime.manifest(&plugin)
        && loaded.manifest().version.to_string() == version
    {
        return Ok(Json(
            serde_json::to_value(loaded.manifest()).unwrap_or(Value::Null),
        ));
    }
    let parsed = semver::Version::parse(&version).map_err(|_| not_found())?;
    let package = state
        .packages
        .as_ref()
        .map(|p| p.package(&plugin, &parsed))
        .transpose()
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .flatten()
        .ok_or_else(not_found)?;
    Ok(Json(
        serde_json::to_value(package.manifest().manifest()).unwrap_or(Value::Null),
    ))
}

/// The largest plugin package accepted, in bytes (components of Python and JavaScript
/// plugins carry their interpreter: 12 to 20 MB).
pub const MAX_PACKAGE_BYTES: usize = 64 * 1024 * 1024;

/// The parts of `POST /v1/plugins` (`multipart/form-data`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct PublishForm {
    /// The manifest (`manifest.json`).
    #[schema(value_type = Object)]
    manifest: String,
    /// The component (`plugin.wasm`).
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
}

/// What was published.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PublishedView {
    name: String,
    version: String,
    /// `sha256:…` of the component.
    digest: String,
    /// Whether this version now runs (the highest version runs).
    running: bool,
}

fn invalid_package(message: String) -> ApiError {
    ApiError::Refused {
        status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_package",
        message,
        details: vec![],
    }
}

/// `POST /v1/plugins` (integrators, the operator): publishes a plugin package. The
/// component is compiled and checked against the plugin world before it is stored;
/// the highest published version of a plugin is the one that runs. 201 for a new
/// version, 200 for the same version again.
#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "registry",
    request_body(content = PublishForm, content_type = "multipart/form-data", description = "`manifest` (JSON) and `component` (the Wasm component): `curl -F manifest=@manifest.json -F component=@plugin.wasm`"),
    responses(
        (status = 200, description = "This very version was published already", body = PublishedView),
        (status = 201, description = "Published", body = PublishedView),
        (status = 409, description = "The version exists with other contents, or the name is someone else's", body = ErrorResponse),
        (status = 413, description = "Larger than 64 MiB", body = ErrorResponse),
        (status = 422, description = "Not a valid package: the manifest, or a component that does not compile or fit the plugin world", body = ErrorResponse),
        TokenErrors
    ),
    security(("bearer" = []))
)]
pub(crate) async fn publish(
    State(state): State<AppState>,
    Publisher(caller): Publisher,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let Some(packages) = state.packages.clone() else {
        return Err(ApiError::Refused {
            status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
            code: "publishing_disabled",
            message: "this host has no package store".into(),
            details: vec![],
        });
    };
    let mut multipart = multipart.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (mut manifest, mut component) = (None, None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
    {
        match field.name() {
            Some("manifest") => {
                manifest = Some(field.text().await.map_err(|e| multipart_error(&e))?);
            }
            Some("component") => {
                component = Some(field.bytes().await.map_err(|e| multipart_error(&e))?);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown part {:?}: send `manifest` and `component`",
                    other.unwrap_or_default()
                )));
            }
        }
    }
    let (Some(manifest), Some(component)) = (manifest, component) else {
        return Err(ApiError::BadRequest(
            "send two parts: `manifest` (manifest.json) and `component` (plugin.wasm)".into(),
        ));
    };
    let package =
        Package::new(&manifest, component.to_vec()).map_err(|e| invalid_package(e.to_string()))?;
    let (name, version) = {
        let m = package.manifest().manifest();
        (m.name.to_string(), m.version.clone())
    };
    let runtime = state.runtime.clone();
    let operator = caller.role() == Role::Operator;
    let owner = caller.0.id.clone();
    // The plugins the host ships (and `--plugins` packages) are the operator's: an
    // integrator cannot publish a version that would replace them everywhere.
    if !operator && runtime.manifest(&name).is_some() && packages.versions(&name).is_empty() {
        return Err(ApiError::Refused {
            status: axum::http::StatusCode::CONFLICT,
            code: "plugin_owned",
            message: format!(
                "{name} is a plugin the host ships; only the operator publishes its versions"
            ),
            details: vec![],
        });
    }
    let tenancy = state.tenancy.clone();
    let actor = caller.actor();
    let digest = Digest::of(&component).to_string();
    let audit = json!({ "name": name, "version": version.to_string(), "digest": digest });
    let (published, running) = tokio::task::spawn_blocking(move || {
        // One publish at a time: compiling is heavy, and each may replace a running plugin.
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Compiled and checked before it is stored, so that a stored version always loads.
        runtime
            .check(&package)
            .map_err(|e| invalid_package(e.to_string()))?;
        let published = packages
            .publish(&package, &owner, operator)
            .map_err(|e| match e {
                PackageStoreError::VersionExists { .. } | PackageStoreError::NotOwner { .. } => {
                    ApiError::Refused {
                        status: axum::http::StatusCode::CONFLICT,
                        code: if matches!(e, PackageStoreError::NotOwner { .. }) {
                            "plugin_owned"
                        } else {
                            "version_exists"
                        },
                        message: e.to_string(),
                        details: vec![],
                    }
                }
                // The disk refused the files (full, read-only): the host is sound.
                e @ PackageStoreError::Io { .. } => ApiError::StoreUnavailable(e.to_string()),
                e => ApiError::Internal(e.to_string()),
            })?;
        if published == Published::New {
            // Recorded here, with the publish: an answer that times out does not lose it.
            let m = package.manifest().manifest();
            tenancy.record(
                &actor,
                None,
                "plugin.publish",
                format!("{}@{}", m.name, m.version),
                None,
                Some(audit),
            )?;
        }
        runtime
            .load_if_newer(&package)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let running = runtime
            .manifest(package.manifest().manifest().name.as_str())
            .is_some_and(|loaded| {
                loaded.manifest().version == package.manifest().manifest().version
            });
        Ok::<_, ApiError>((published, running))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let view = PublishedView {
        name: name.clone(),
        version: version.to_string(),
        digest: digest.clone(),
        running,
    };
    if published == Published::Unchanged {
        return Ok(Json(view).into_response());
    }
    let mut response = (axum::http::StatusCode::CREATED, Json(view)).into_response();
    if let Ok(location) =
        axum::http::HeaderValue::from_str(&format!("/v1/plugins/{name}/{version}"))
    {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::Refused {
            status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("a package may have at most {MAX_PACKAGE_BYTES} bytes"),
            details: vec![],
        }
    } else {
        ApiError::BadRequest(e.body_text())
    }
}
