//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes
//! and the request and response types: the router and the document are built by the
//! same `routes!` calls (see [`crate::router`]), so a route cannot be served without
//! being described.

use crate::error::ErrorResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

/// The document's fixed parts; the paths are added by the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Courtyard",
        description = "The HTTP API of a Courtyard host: the district's communities, the plugins each runs, workflows, events, runs, tokens and the audit log. Every route but `/healthz`, `/openapi.json` and `/docs` takes a bearer token (`Authorization: Bearer <token>`). A token of one community gets the same 404 for another community's resources as for ones that do not exist. Every error is `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Liveness, metrics and this document"),
        (name = "registry", description = "The plugins the host has"),
        (name = "communities", description = "The district's communities"),
        (name = "plugins", description = "Which plugins a community runs: version, config, capability grants"),
        (name = "invoke", description = "Calling a plugin's operation"),
        (name = "workflows", description = "Workflow documents and their on/off state"),
        (name = "events", description = "Events from devices"),
        (name = "runs", description = "Workflow runs"),
        (name = "alarms", description = "Alarms of alert-rules"),
        (name = "tokens", description = "API tokens and their roles"),
        (name = "audit", description = "Who changed what, when"),
    ),
)]
pub(crate) struct ApiDoc;

/// The `bearer` security scheme every secured operation names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A Courtyard token (`cyt_…`): operator, integrator, a community's admin or device",
                    ))
                    .build(),
            ),
        );
    }
}

/// The refusals every route that takes a token can answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum TokenErrors {
    /// A malformed body, query or path.
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// No token, or one that is unknown or revoked.
    #[response(status = 401)]
    Unauthenticated(ErrorResponse),
    /// The token's role may not do this.
    #[response(status = 403)]
    Forbidden(ErrorResponse),
    /// Too many requests for the token; `Retry-After` says when to try again.
    #[response(status = 429)]
    RateLimited(ErrorResponse),
}

/// The refusals of a community's routes.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum CommunityErrors {
    /// A malformed body, query or path.
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// No token, or one that is unknown or revoked.
    #[response(status = 401)]
    Unauthenticated(ErrorResponse),
    /// A device token on an admin route, or a role that may not do this.
    #[response(status = 403)]
    Forbidden(ErrorResponse),
    /// No such community (or not the token's), plugin, workflow, run or token.
    #[response(status = 404)]
    NotFound(ErrorResponse),
    /// Too many requests for the token or the community; `Retry-After` says when.
    #[response(status = 429)]
    RateLimited(ErrorResponse),
}
