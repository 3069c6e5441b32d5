//! Communities, the plugins each runs, their tokens, their alarms and the audit log.

use crate::auth::{AdminOf, Caller, Operator};
use crate::error::ErrorResponse;
use crate::openapi::{CommunityErrors, TokenErrors};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use courtyard_registry::Capability;
use courtyard_tenancy::{
    AuditEntry, CommunityId, CommunityRecord, Enablement, NewToken, Role, TokenInfo,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

fn created(location: String, body: impl Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn refused(
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<String>,
) -> ApiError {
    ApiError::Refused {
        status,
        code,
        message,
        details,
    }
}

// ----- communities -----

/// A community with its scenario mix.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CommunityView {
    #[serde(flatten)]
    record: CommunityRecord,
    /// The plugins it runs, by name.
    plugins: Vec<String>,
}

/// Communities.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CommunityList {
    communities: Vec<CommunityView>,
}

fn view(state: &AppState, record: CommunityRecord) -> CommunityView {
    let plugins = state
        .tenancy
        .enabled(record.id.as_str())
        .iter()
        .map(|e| e.plugin.to_string())
        .collect();
    CommunityView { record, plugins }
}

/// `GET /v1/communities`: every community for the operator; their own for a community's
/// admin.
#[utoipa::path(
    get,
    path = "/v1/communities",
    tag = "communities",
    responses((status = 200, description = "Every community (the operator) or the caller's own (an admin)", body = CommunityList), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CommunityList>, ApiError> {
    let communities: Vec<CommunityView> = match caller.role() {
        Role::Operator => state
            .tenancy
            .communities()
            .into_iter()
            .map(|c| view(&state, c))
            .collect(),
        Role::Admin => caller
            .0
            .community
            .as_ref()
            .and_then(|c| state.tenancy.community(c.as_str()))
            .map(|c| vec![view(&state, c)])
            .unwrap_or_default(),
        Role::Device | Role::Integrator => {
            return Err(ApiError::Forbidden(
                "only the operator and community admins may list communities",
            ));
        }
    };
    Ok(Json(CommunityList { communities }))
}

/// The body of `POST /v1/communities`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCommunity {
    id: CommunityId,
    name: String,
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "name: 1 to 100 characters, not only spaces".into(),
        ));
    }
    Ok(name.to_owned())
}

/// `POST /v1/communities` (operator): a new community, with no plugins yet.
#[utoipa::path(
    post,
    path = "/v1/communities",
    tag = "communities",
    request_body = NewCommunity,
    responses((status = 201, description = "Created, with no plugins", body = CommunityView), (status = 409, description = "The id is taken", body = ErrorResponse), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Operator(caller): Operator,
    body: Result<Json<NewCommunity>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let name = check_name(&body.name)?;
    let record = state
        .tenancy
        .create_community(&caller.actor(), body.id, name)?;
    Ok(created(
        format!("/v1/communities/{}", record.id),
        view(&state, record),
    ))
}

/// `GET /v1/communities/{community}`
#[utoipa::path(
    get,
    path = "/v1/communities/{community}",
    tag = "communities",
    params(("community" = String, Path, description = "The community id (`nanhu`)")),
    responses((status = 200, description = "The community and its scenario mix", body = CommunityView), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
) -> Result<Json<CommunityView>, ApiError> {
    let record = state
        .tenancy
        .community(&community)
        .ok_or_else(|| ApiError::CommunityNotFound(community.clone()))?;
    Ok(Json(view(&state, record)))
}

/// The body of `PATCH /v1/communities/{community}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommunityPatch {
    name: String,
}

/// `PATCH /v1/communities/{community}`: renames it.
#[utoipa::path(
    patch,
    path = "/v1/communities/{community}",
    tag = "communities",
    params(("community" = String, Path, description = "The community id (`nanhu`)")),
    request_body = CommunityPatch,
    responses((status = 200, description = "Renamed", body = CommunityView), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    admin: AdminOf,
    body: Result<Json<CommunityPatch>, JsonRejection>,
) -> Result<Json<CommunityView>, ApiError> {
    let Json(body) = body?;
    let name = check_name(&body.name)?;
    let record = state
        .tenancy
        .update_community(&admin.caller.actor(), &admin.community, name)?;
    Ok(Json(view(&state, record)))
}

// ----- plugins of a community -----

/// A plugin as a community runs it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnablementView {
    plugin: String,
    /// The version pinned (none: whichever the host has).
    version: Option<String>,
    /// The version the host has.
    loaded_version: Option<String>,
    /// What the community set.
    #[schema(value_type = Object)]
    config: Map<String, Value>,
    /// The config the plugin sees: the community's over the manifest's defaults.
    effective_config: Value,
    /// The capabilities granted.
    #[schema(value_type = Vec<String>)]
    grants: BTreeSet<Capability>,
    /// The capabilities the manifest requests.
    #[schema(value_type = Vec<String>)]
    requested: Vec<Capability>,
    /// The origins the plugin may send HTTP requests to (with `http` granted).
    allowed_hosts: Vec<String>,
    updated_ms: i64,
}

/// The plugins a community runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnablementList {
    plugins: Vec<EnablementView>,
}

fn enablement_view(state: &AppState, e: &Enablement) -> EnablementView {
    let manifest = state.runtime.manifest(e.plugin.as_str());
    let effective_config = manifest
        .as_ref()
        .and_then(|m| m.config_with(&e.config).ok())
        .unwrap_or_else(|| Value::Object(e.config.clone()));
    EnablementView {
        plugin: e.plugin.to_string(),
        version: e.version.as_ref().map(ToString::to_string),
        loaded_version: manifest.as_ref().map(|m| m.manifest().version.to_string()),
        config: e.config.clone(),
        effective_config,
        grants: e.grants.clone(),
        requested: manifest
            .map(|m| m.manifest().capabilities.clone())
            .unwrap_or_default(),
        allowed_hosts: e.allowed_hosts.clone(),
        updated_ms: e.updated_ms,
    }
}

/// `GET /v1/communities/{community}/plugins`
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/plugins",
    tag = "plugins",
    params(("community" = String, Path, description = "The community id (`nanhu`)")),
    responses((status = 200, description = "The plugins the community runs", body = EnablementList), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn plugins(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
) -> Json<EnablementList> {
    let plugins: Vec<EnablementView> = state
        .tenancy
        .enabled(&community)
        .iter()
        .map(|e| enablement_view(&state, e))
        .collect();
    Json(EnablementList { plugins })
}

fn not_enabled(community: &str, plugin: &str) -> ApiError {
    ApiError::NotFound {
        code: "plugin_not_enabled",
        message: format!("plugin {plugin} is not enabled in community {community}"),
    }
}

/// `GET /v1/communities/{community}/plugins/{plugin}`
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/plugins/{plugin}",
    tag = "plugins",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("plugin" = String, Path, description = "The plugin name (`canteen`)")),
    responses((status = 200, description = "How the community runs the plugin", body = EnablementView), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn plugin(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
    Path((_, plugin)): Path<(String, String)>,
) -> Result<Json<EnablementView>, ApiError> {
    let e = state
        .tenancy
        .enablement(&community, &plugin)
        .ok_or_else(|| not_enabled(&community, &plugin))?;
    Ok(Json(enablement_view(&state, &e)))
}

/// The body of `PUT /v1/communities/{community}/plugins/{plugin}`. The whole
/// enablement: what is left out takes its default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnableBody {
    /// Pin this version (it must be the one the host has); none: follow the host.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    version: Option<semver::Version>,
    /// Top-level config keys over the manifest's defaults; none: the defaults.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    config: Option<Map<String, Value>>,
    /// The capabilities granted (`state`, `events`, `http`); none: every capability
    /// the manifest requests.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    grants: Option<BTreeSet<Capability>>,
    /// With `http` granted: the origins the plugin may send requests to
    /// (`https://library.example`, `http://10.0.0.5:8080`); none: nowhere.
    #[serde(default)]
    allowed_hosts: Vec<String>,
}

/// `PUT /v1/communities/{community}/plugins/{plugin}`: enables the plugin, or changes
/// its version pin, config or grants. 201 when newly enabled, 200 otherwise.
#[utoipa::path(
    put,
    path = "/v1/communities/{community}/plugins/{plugin}",
    tag = "plugins",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("plugin" = String, Path, description = "The plugin name (`canteen`)")),
    request_body = EnableBody,
    responses((status = 200, description = "Reconfigured", body = EnablementView), (status = 201, description = "Enabled", body = EnablementView), (status = 422, description = "A version the host does not have, a config its schema refuses (`details` names the fields), or a grant the manifest does not request", body = ErrorResponse), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn enable(
    State(state): State<AppState>,
    admin: AdminOf,
    Path((_, plugin)): Path<(String, String)>,
    body: Result<Json<EnableBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let community = &admin.community;
    let manifest = state
        .runtime
        .manifest(&plugin)
        .ok_or_else(|| crate::registry::plugin_not_found(&plugin))?;
    let loaded = &manifest.manifest().version;
    if let Some(version) = &body.version
        && version != loaded
    {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "version_not_available",
            format!("version: the host has {plugin} {loaded}, not {version}"),
            vec![],
        ));
    }
    let config = body.config.unwrap_or_default();
    // Checked against the plugin's config schema, which never fetches a remote `$ref`.
    if let Err(e) = manifest.config_with(&config) {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            format!(
                "the config does not match the config schema of {plugin}; `details` says where"
            ),
            // `at /max_loans: …` becomes `config/max_loans: …`.
            e.problems
                .iter()
                .map(|p| format!("config{}", p.strip_prefix("at ").unwrap_or(p)))
                .collect(),
        ));
    }
    let requested: BTreeSet<Capability> =
        manifest.manifest().capabilities.iter().copied().collect();
    let grants = body.grants.unwrap_or_else(|| requested.clone());
    let extra: Vec<String> = grants
        .difference(&requested)
        .map(|c| {
            format!(
                "grants: {plugin} does not request `{}`",
                capability_name(*c)
            )
        })
        .collect();
    if !extra.is_empty() {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_grants",
            format!(
                "a community can only grant what the manifest of {plugin} requests: {}",
                requested
                    .iter()
                    .map(|c| capability_name(*c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            extra,
        ));
    }
    let mut problems = Vec::new();
    let mut allowed_hosts = Vec::new();
    for (i, host) in body.allowed_hosts.iter().enumerate() {
        match courtyard_runtime::Origin::parse(host) {
            Ok(origin) => allowed_hosts.push(origin.to_string()),
            Err(e) => problems.push(format!("allowed_hosts[{i}]: {e}")),
        }
    }
    if !allowed_hosts.is_empty() && !grants.contains(&Capability::Http) {
        problems.push("allowed_hosts: only a plugin granted `http` sends requests".into());
    }
    if !problems.is_empty() {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_grants",
            "the allowed hosts were refused; `details` says which".into(),
            problems,
        ));
    }
    allowed_hosts.sort();
    allowed_hosts.dedup();
    let enablement = Enablement {
        plugin: manifest.manifest().name.clone(),
        version: body.version,
        config,
        grants,
        allowed_hosts,
        updated_ms: 0,
    };
    let new = state
        .tenancy
        .enable(&admin.caller.actor(), community, enablement)?;
    // No instance made under the old setting serves another call.
    state.runtime.drop_warm(community, &plugin);
    let e = state
        .tenancy
        .enablement(community, &plugin)
        .ok_or_else(|| {
            ApiError::Tenancy(courtyard_tenancy::TenancyError::NoCommunity(
                community.clone(),
            ))
        })?;
    let view = enablement_view(&state, &e);
    if new {
        Ok(created(
            format!("/v1/communities/{community}/plugins/{plugin}"),
            view,
        ))
    } else {
        Ok(Json(view).into_response())
    }
}

/// `DELETE /v1/communities/{community}/plugins/{plugin}`: disables it; its state is
/// kept for when it is enabled again.
#[utoipa::path(
    delete,
    path = "/v1/communities/{community}/plugins/{plugin}",
    tag = "plugins",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("plugin" = String, Path, description = "The plugin name (`canteen`)")),
    responses((status = 204, description = "Disabled; its state is kept"), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn disable(
    State(state): State<AppState>,
    admin: AdminOf,
    Path((_, plugin)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state
        .tenancy
        .disable(&admin.caller.actor(), &admin.community, &plugin)?
    {
        state.runtime.drop_warm(&admin.community, &plugin);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_enabled(&admin.community, &plugin))
    }
}

fn capability_name(c: Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ----- alarms -----

/// The query of `GET /v1/communities/{community}/alarms`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmsQuery {
    /// Comma-separated states (`open,acknowledged`).
    state: Option<String>,
    /// Comma-separated severities.
    severity: Option<String>,
    /// One rule's alarms.
    rule: Option<String>,
    /// Continue after this alarm id.
    after: Option<String>,
    /// Page size.
    limit: Option<u32>,
}

/// `GET /v1/communities/{community}/alarms`: the alarms of alert-rules (which must be
/// enabled), newest first, filtered by the query.
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/alarms",
    tag = "alarms",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), AlarmsQuery),
    responses((status = 200, description = "Alarms of alert-rules (its `list-alarms` output)", body = Object), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn alarms(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
    query: Result<Query<AlarmsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let mut input = Map::new();
    let list = |s: &str| -> Value { s.split(',').map(|p| Value::from(p.trim())).collect() };
    if let Some(s) = &q.state {
        input.insert("states".into(), list(s));
    }
    if let Some(s) = &q.severity {
        input.insert("severities".into(), list(s));
    }
    if let Some(r) = q.rule {
        input.insert("rule".into(), r.into());
    }
    if let Some(a) = q.after {
        input.insert("after".into(), a.into());
    }
    if let Some(l) = q.limit {
        input.insert("limit".into(), l.into());
    }
    let outcome = state
        .runtime
        .invoke(courtyard_runtime::Invocation {
            community: community.clone(),
            plugin: "alert-rules".into(),
            operation: "list-alarms".into(),
            input: Value::Object(input),
            idempotency_key: None,
            request_id: state.request_ids.next(),
            config: None,
            depth: 0,
            chain: None,
        })
        .await
        .map_err(|e| match e {
            // The query became the operation's input: its schema problems are the
            // query's.
            courtyard_runtime::InvokeError::InvalidInput { error, .. } => {
                ApiError::BadQuery(error.problems.join("; "))
            }
            e => e.into(),
        })?;
    Ok(Json(outcome.output).into_response())
}

// ----- tokens -----

/// A token, with its secret (only in the answer that created it).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedToken {
    /// The bearer secret: shown this once, stored only as a hash.
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

impl From<NewToken> for CreatedToken {
    fn from(t: NewToken) -> Self {
        Self {
            token: t.secret,
            info: t.info,
        }
    }
}

fn check_label(label: Option<String>) -> Result<String, ApiError> {
    let label = label.unwrap_or_default();
    if label.chars().count() > 100 {
        return Err(ApiError::BadRequest("label: at most 100 characters".into()));
    }
    Ok(label)
}

/// Tokens (never their secrets).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenList {
    tokens: Vec<TokenInfo>,
}

/// The body of `POST /v1/communities/{community}/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCommunityToken {
    /// `device` (the default) or, for the operator, `admin`.
    #[serde(default)]
    role: Option<Role>,
    /// What the token is for ("gate 3 camera box").
    #[serde(default)]
    label: Option<String>,
}

/// `GET /v1/communities/{community}/tokens`
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/tokens",
    tag = "tokens",
    params(("community" = String, Path, description = "The community id (`nanhu`)")),
    responses((status = 200, description = "The community's tokens (never their secrets)", body = TokenList), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn tokens(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
) -> Json<TokenList> {
    Json(TokenList {
        tokens: state.tenancy.tokens(Some(&community)),
    })
}

/// `POST /v1/communities/{community}/tokens`: a device token (admins), or an admin
/// token (the operator).
#[utoipa::path(
    post,
    path = "/v1/communities/{community}/tokens",
    tag = "tokens",
    params(("community" = String, Path, description = "The community id (`nanhu`)")),
    request_body = NewCommunityToken,
    responses((status = 201, description = "Created; the secret is in this answer only", body = CreatedToken), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    admin: AdminOf,
    body: Result<Json<NewCommunityToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let role = body.role.unwrap_or(Role::Device);
    match (admin.caller.role(), role) {
        (_, Role::Device) | (Role::Operator, Role::Admin) => {}
        (Role::Operator, _) => {
            return Err(ApiError::BadRequest(
                "role: a community's tokens are `device` or `admin`; make operator and integrator tokens at /v1/tokens".into(),
            ));
        }
        _ => {
            return Err(ApiError::Forbidden(
                "a community's admin creates device tokens; admin tokens come from the operator",
            ));
        }
    }
    let community =
        CommunityId::new(admin.community.clone()).map_err(|e| ApiError::BadPath(e.to_string()))?;
    let token = state.tenancy.create_token(
        &admin.caller.actor(),
        role,
        Some(community),
        check_label(body.label)?,
    )?;
    let location = format!(
        "/v1/communities/{}/tokens/{}",
        admin.community, token.info.id
    );
    Ok(created(location, CreatedToken::from(token)))
}

fn token_not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: "token_not_found",
        message: format!("there is no token {id:?} here"),
    }
}

/// `DELETE /v1/communities/{community}/tokens/{token}`: revokes one of the community's
/// tokens (an admin: its devices').
#[utoipa::path(
    delete,
    path = "/v1/communities/{community}/tokens/{token}",
    tag = "tokens",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), ("token" = String, Path, description = "The token id (`tok_…`)")),
    responses((status = 204, description = "Revoked"), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    admin: AdminOf,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let token = state
        .tenancy
        .token(&id)
        .filter(|t| {
            t.community
                .as_ref()
                .is_some_and(|c| c.as_str() == admin.community)
        })
        .ok_or_else(|| token_not_found(&id))?;
    if admin.caller.role() != Role::Operator && token.role != Role::Device {
        return Err(ApiError::Forbidden(
            "a community's admin revokes device tokens; admin tokens are the operator's to revoke",
        ));
    }
    state.tenancy.revoke_token(&admin.caller.actor(), &id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/tokens` (operator): every token.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    responses((status = 200, description = "Every token (never their secrets)", body = TokenList), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn all_tokens(State(state): State<AppState>, _: Operator) -> Json<TokenList> {
    Json(TokenList {
        tokens: state.tenancy.tokens(None),
    })
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTokenBody {
    role: Role,
    #[serde(default)]
    community: Option<CommunityId>,
    #[serde(default)]
    label: Option<String>,
}

/// `POST /v1/tokens` (operator): a token of any role.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    request_body = NewTokenBody,
    responses((status = 201, description = "Created; the secret is in this answer only", body = CreatedToken), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn create_any_token(
    State(state): State<AppState>,
    Operator(caller): Operator,
    body: Result<Json<NewTokenBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let token = state.tenancy.create_token(
        &caller.actor(),
        body.role,
        body.community,
        check_label(body.label)?,
    )?;
    let location = format!("/v1/tokens/{}", token.info.id);
    Ok(created(location, CreatedToken::from(token)))
}

/// `DELETE /v1/tokens/{token}` (operator).
#[utoipa::path(
    delete,
    path = "/v1/tokens/{token}",
    tag = "tokens",
    params(("token" = String, Path, description = "The token id (`tok_…`)")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token", body = ErrorResponse), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn revoke_any_token(
    State(state): State<AppState>,
    Operator(caller): Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .tenancy
        .revoke_token(&caller.actor(), &id)?
        .ok_or_else(|| token_not_found(&id))?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- audit -----

/// The query of the audit routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Entries before this `seq`.
    before: Option<u64>,
    /// Page size, 1 to 200 (50).
    limit: Option<usize>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `before` for the next page (none: the last page).
    next: Option<u64>,
}

fn audit_page(
    state: &AppState,
    community: Option<&str>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadQuery("limit: 1 to 200".into()));
    }
    let entries = state.tenancy.audit(community, q.before, limit)?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage { entries, next }))
}

/// `GET /v1/communities/{community}/audit`: the community's changes, newest first.
#[utoipa::path(
    get,
    path = "/v1/communities/{community}/audit",
    tag = "audit",
    params(("community" = String, Path, description = "The community id (`nanhu`)"), AuditQuery),
    responses((status = 200, description = "The community's changes, newest first", body = AuditPage), CommunityErrors),
    security(("bearer" = []))
)]
pub(crate) async fn audit(
    State(state): State<AppState>,
    AdminOf { community, .. }: AdminOf,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    audit_page(&state, Some(&community), query)
}

/// `GET /v1/audit` (operator): every change, newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "Every change, newest first", body = AuditPage), TokenErrors),
    security(("bearer" = []))
)]
pub(crate) async fn all_audit(
    State(state): State<AppState>,
    _: Operator,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    audit_page(&state, None, query)
}
