//! The one error type of the HTTP API. Every error response is
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`: a 4xx says what the
//! caller got wrong; a 5xx says nothing internal, and the cause is logged.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use courtyard_runtime::{InvokeError, PluginErrorKind};
use courtyard_workflow::WorkflowError;
use serde::Serialize;

/// An error answered over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No community with that id.
    #[error("no community {0:?}")]
    CommunityNotFound(String),
    /// No route for the path.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body could not be read as JSON.
    #[error(transparent)]
    Json(#[from] JsonRejection),
    /// A header the caller sent is invalid.
    #[error("invalid header {name}: {reason}")]
    BadHeader {
        /// The header.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Anything the runtime said.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// Anything the workflow engine said.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// A workflow document that could not be read (each detail is `path: problem`).
    #[error("invalid workflow: {}", .0.join("; "))]
    InvalidWorkflow(Vec<String>),
    /// A workflow document sent with a content type other than JSON or YAML.
    #[error("unsupported workflow content type")]
    WorkflowMediaType,
    /// A path parameter is not well formed.
    #[error("bad path: {0}")]
    BadPath(String),
    /// The query string is not acceptable.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// No token, or not a valid one (401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// A valid token whose role may not do this (403).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Too many requests for the token or the community (429).
    #[error("rate limited ({scope})")]
    RateLimited {
        /// `token` or `community`.
        scope: &'static str,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The body is well-formed JSON that the route cannot accept (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A request that names something that does not exist (404) with its own code.
    #[error("{message}")]
    NotFound {
        /// The machine-readable code (`plugin_not_found`, `token_not_found`…).
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// A request the route understood and refused for what it asks (409 or 422).
    #[error("{message}")]
    Refused {
        /// 409 or 422.
        status: StatusCode,
        /// The machine-readable code.
        code: &'static str,
        /// For a person.
        message: String,
        /// `path: problem` lines.
        details: Vec<String>,
    },
    /// The request took longer than the host allows (503).
    #[error("request timed out after {0:?}")]
    RequestTimeout(std::time::Duration),
    /// The disk refused a write outside the store (a published package's files): 503
    /// `store_unavailable`, like a failed store.
    #[error("the disk refused a write: {0}")]
    StoreUnavailable(String),
    /// A failure of the host that the caller cannot fix (500; logged).
    #[error("internal: {0}")]
    Internal(String),
    /// Anything the tenancy said.
    #[error(transparent)]
    Tenancy(#[from] courtyard_tenancy::TenancyError),
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable: `community_not_found`, `invalid_config`, `rate_limited`, …
    pub code: String,
    /// For a person: what was wrong, and (for a 4xx) what to do instead.
    pub message: String,
    /// `path: problem` lines, when there are several problems (schemas, documents).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl ApiError {
    /// The status, the machine-readable code, the message for a person and details.
    fn parts(&self) -> (StatusCode, &'static str, String, Vec<String>) {
        use InvokeError as I;
        match self {
            Self::CommunityNotFound(c) => (
                StatusCode::NOT_FOUND,
                "community_not_found",
                format!("there is no community {c:?}"),
                vec![],
            ),
            Self::RouteNotFound(p) => (
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("there is no route {p}; see /openapi.json"),
                vec![],
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".into(),
                vec![],
            ),
            Self::BadHeader { name, reason } => (
                StatusCode::BAD_REQUEST,
                "invalid_header",
                format!("header {name}: {reason}"),
                vec![],
            ),
            Self::Json(rejection) => json_rejection(rejection),
            Self::InvalidWorkflow(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workflow",
                "the workflow document was refused; `details` says where and why".into(),
                problems.clone(),
            ),
            Self::WorkflowMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the workflow as YAML (`Content-Type: application/yaml`) or JSON (`application/json`)".into(),
                vec![],
            ),
            Self::BadPath(reason) => (
                StatusCode::BAD_REQUEST,
                "invalid_path",
                reason.clone(),
                vec![],
            ),
            Self::BadQuery(reason) => (
                StatusCode::BAD_REQUEST,
                "invalid_query",
                reason.clone(),
                vec![],
            ),
            Self::Workflow(e) => workflow_error(e),
            Self::Unauthenticated(reason) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                (*reason).to_owned(),
                vec![],
            ),
            Self::Forbidden(reason) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                (*reason).to_owned(),
                vec![],
            ),
            Self::RateLimited { scope, retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many requests for this {scope}; try again in {retry_after} s (Retry-After)"
                ),
                vec![],
            ),
            Self::RequestTimeout(limit) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "the request took longer than the host's limit of {} s; what it started may still finish",
                    limit.as_secs()
                ),
                vec![],
            ),
            Self::StoreUnavailable(_) => store_unavailable(),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; the host log has the details".into(),
                vec![],
            ),
            Self::BadRequest(reason) => (

                StatusCode::BAD_REQUEST,
                "bad_request",
                reason.clone(),
                vec![],
            ),
            Self::NotFound { code, message } => (StatusCode::NOT_FOUND, code, message.clone(), vec![]),
            Self::Refused {
                status,
                code,
                message,
                details,
            } => (*status, code, message.clone(), details.clone()),
            Self::Tenancy(e) => {
                use courtyard_tenancy::TenancyError as T;
                match e {
                    T::CommunityExists(c) => (
                        StatusCode::CONFLICT,
                        "community_exists",
                        format!("community {c} exists already"),
                        vec![],
                    ),
                    T::NoCommunity(c) => (
                        StatusCode::NOT_FOUND,
                        "community_not_found",
                        format!("there is no community {c:?}"),
                        vec![],
                    ),
                    T::BadScope(reason) => (
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        reason.clone(),
                        vec![],
                    ),
                    T::Store(_) => store_unavailable(),
                    T::Corrupt { .. } => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error; the host log has the details".into(),
                        vec![],
                    ),
                }
            }
            Self::Invoke(e) => match e {
                I::UnknownPlugin { plugin } => (
                    StatusCode::NOT_FOUND,
                    "plugin_not_found",
                    format!("there is no plugin {plugin:?}"),
                    vec![],
                ),
                I::UnknownOperation { plugin, operation } => (
                    StatusCode::NOT_FOUND,
                    "operation_not_found",
                    format!("plugin {plugin} has no operation {operation:?}"),
                    vec![],
                ),
                I::InvalidInput {
                    plugin,
                    operation,
                    error,
                } => (
                    StatusCode::BAD_REQUEST,
                    "invalid_input",
                    format!("the input does not match the input schema of {plugin}/{operation}"),
                    error.problems.clone(),
                ),
                I::Plugin {
                    kind,
                    message,
                    plugin,
                    operation,
                } => match kind {
                    PluginErrorKind::InvalidInput => (
                        StatusCode::BAD_REQUEST,
                        "invalid_input",
                        message.clone(),
                        vec![],
                    ),
                    PluginErrorKind::NotFound => {
                        (StatusCode::NOT_FOUND, "not_found", message.clone(), vec![])
                    }
                    PluginErrorKind::Conflict => {
                        (StatusCode::CONFLICT, "conflict", message.clone(), vec![])
                    }
                    PluginErrorKind::Unavailable => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        message.clone(),
                        vec![],
                    ),
                    PluginErrorKind::Internal => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "plugin_failed",
                        format!(
                            "plugin {plugin} failed in {operation}; the host log has the details"
                        ),
                        vec![],
                    ),
                },
                I::Timeout { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "plugin_timeout",
                    e.to_string(),
                    vec![],
                ),
                I::MemoryLimit { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "plugin_memory_limit",
                    e.to_string(),
                    vec![],
                ),
                I::StackOverflow { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "plugin_stack_overflow",
                    e.to_string(),
                    vec![],
                ),
                I::Trap {
                    plugin, operation, ..
                }
                | I::BadOutput {
                    plugin, operation, ..
                } => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "plugin_failed",
                    format!("plugin {plugin} failed in {operation}; the host log has the details"),
                    vec![],
                ),
                I::NotEnabled { community, plugin } => (
                    StatusCode::NOT_FOUND,
                    "plugin_not_enabled",
                    format!("plugin {plugin} is not enabled in community {community}"),
                    vec![],
                ),
                I::VersionUnavailable { .. } => (
                    StatusCode::CONFLICT,
                    "version_unavailable",
                    format!("{e}; the community's admin can pin the version the host has"),
                    vec![],
                ),
                I::CapabilityDenied { .. } => (
                    StatusCode::FORBIDDEN,
                    "capability_not_granted",
                    format!("{e}; the community's admin can grant it (PUT …/plugins/{{plugin}})"),
                    vec![],
                ),
                I::Busy { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!("{e}; try again in a moment (Retry-After)"),
                    vec![],
                ),
                I::Store(_) => store_unavailable(),
                I::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the host log has the details".into(),
                    vec![],
                ),
            },
        }
    }
}

fn workflow_error(e: &WorkflowError) -> (StatusCode, &'static str, String, Vec<String>) {
    use WorkflowError as W;
    match e {
        W::CommunityNotFound(c) => (
            StatusCode::NOT_FOUND,
            "community_not_found",
            format!("there is no community {c:?}"),
            vec![],
        ),
        W::WorkflowNotFound { workflow, .. } => (
            StatusCode::NOT_FOUND,
            "workflow_not_found",
            format!("there is no workflow {workflow:?} in this community"),
            vec![],
        ),
        W::RunNotFound { run, .. } => (
            StatusCode::NOT_FOUND,
            "run_not_found",
            format!("there is no run {run:?} in this community"),
            vec![],
        ),
        W::Invalid(problems) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
            "the workflow document was refused; `details` says where and why".into(),
            problems.iter().map(ToString::to_string).collect(),
        ),
        W::Disabled(name) => (
            StatusCode::CONFLICT,
            "workflow_disabled",
            format!("workflow {name:?} is disabled; enable it to start runs"),
            vec![],
        ),
        W::ReservedKind { .. } => (
            StatusCode::BAD_REQUEST,
            "reserved_event_kind",
            format!("{e}; post a kind of your own, such as `camera.object-thrown`"),
            vec![],
        ),
        W::InvalidEvent(reason) => (
            StatusCode::BAD_REQUEST,
            "invalid_event",
            reason.clone(),
            vec![],
        ),
        W::EventIdConflict(_) => (
            StatusCode::CONFLICT,
            "event_id_conflict",
            e.to_string(),
            vec![],
        ),
        W::Store(_) => store_unavailable(),
        W::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the host log has the details".into(),
            vec![],
        ),
    }
}

/// A store that could not read or write (a failed disk, a full one): 503 with
/// `Retry-After`, never a 2xx, and never a 500 (the host is sound; its disk is not).
/// The host fences the store after such a failure and recovers by itself once the disk
/// takes writes again (`/readyz` says when).
fn store_unavailable() -> (StatusCode, &'static str, String, Vec<String>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the host's store cannot read or write right now; nothing of this request was \
         acknowledged; try again later (Retry-After)"
            .into(),
        vec![],
    )
}

fn json_rejection(rejection: &JsonRejection) -> (StatusCode, &'static str, String, Vec<String>) {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`".into(),
            vec![],
        ),
        JsonRejection::JsonSyntaxError(e) => (
            StatusCode::BAD_REQUEST,
            "malformed_json",
            e.body_text(),
            vec![],
        ),
        // Well-formed JSON that does not fit the route: an unknown field, a wrong type.
        JsonRejection::JsonDataError(e) => (
            StatusCode::BAD_REQUEST,
            "invalid_body",
            e.body_text(),
            vec![],
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is larger than the limit of {} bytes",
                crate::MAX_BODY_BYTES
            ),
            vec![],
        ),
        other => (other.status(), "bad_request", other.body_text(), vec![]),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = self.parts();
        if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
        } else {
            tracing::debug!(code, error = %self, "request refused");
        }
        let mut response = (
            status,
            Json(ErrorResponse {
                error: ErrorBody {
                    code: code.to_owned(),
                    message,
                    details,
                },
            }),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE
            && matches!(code, "unavailable" | "busy" | "store_unavailable")
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::RateLimited { retry_after, .. } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"courtyard\""),
            );
        }
        response
    }
}
