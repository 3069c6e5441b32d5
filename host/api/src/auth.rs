//! Who is calling, and what they may reach.
//!
//! Every route but `/healthz`, `/openapi.json` and `/docs` needs a bearer token. The
//! handlers say what they need through the extractors of this module, so that a route
//! cannot forget to check:
//! - [`Caller`]: any valid token;
//! - [`Operator`], [`Publisher`]: district-wide roles;
//! - [`AdminOf`], [`MemberOf`]: the `{community}` of the path, for its admin (and the
//!   operator), or also its devices.
//!
//! Object-level rule: a token of community A gets for community B's resources exactly
//! the 404 it gets for a community that does not exist. A device of the community
//! gets a 403 on its admin routes. Each extraction also takes one request from the
//! token's rate budget, and a device's request on a community route one from the
//! community's (shared by all its devices; admins and the operator are not held back by
//! it).

use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use courtyard_tenancy::{Actor, Role, TokenInfo};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The holder of a valid token.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenInfo);

impl Caller {
    /// The caller, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor::of(&self.0)
    }

    /// The caller's role.
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// Whether the caller may see `community` at all (its own, or any for the operator).
    pub fn sees(&self, community: &str) -> bool {
        match self.0.role {
            Role::Operator => true,
            Role::Admin | Role::Device => self
                .0
                .community
                .as_ref()
                .is_some_and(|c| c.as_str() == community),
            Role::Integrator => false,
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(ApiError::Unauthenticated(
            "this route needs a token: send `Authorization: Bearer <token>`",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(ApiError::Unauthenticated(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = bearer(parts)?;
        let info = state
            .tenancy
            .authenticate(token)
            .ok_or(ApiError::Unauthenticated(
                "the token is not valid (unknown or revoked)",
            ))?;
        state.limits.take_token(&info.id)?;
        let caller = Caller(info);
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// The operator.
#[derive(Debug, Clone)]
pub struct Operator(pub Caller);

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role() != Role::Operator {
            return Err(ApiError::Forbidden(
                "only the district's operator may do this",
            ));
        }
        Ok(Self(caller))
    }
}

/// Someone who may publish plugins: an integrator or the operator.
#[derive(Debug, Clone)]
pub struct Publisher(pub Caller);

impl FromRequestParts<AppState> for Publisher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !matches!(caller.role(), Role::Operator | Role::Integrator) {
            return Err(ApiError::Forbidden(
                "only integrators and the operator may publish plugins",
            ));
        }
        Ok(Self(caller))
    }
}

/// The `{community}` path parameter, checked for the caller.
async fn community_for(
    parts: &mut Parts,
    state: &AppState,
    devices_too: bool,
) -> Result<(Caller, String), ApiError> {
    let caller = Caller::from_request_parts(parts, state).await?;
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::BadPath(e.body_text()))?;
    let community = params
        .get("community")
        .cloned()
        .ok_or_else(|| ApiError::BadPath("no community in the path".into()))?;
    // The same answer for "not yours" as for "does not exist".
    if !caller.sees(&community) || !state.tenancy.has_community(&community) {
        return Err(ApiError::CommunityNotFound(community));
    }
    if !devices_too && caller.role() == Role::Device {
        return Err(ApiError::Forbidden(
            "device tokens may invoke operations and post events; this route is for the community's admin",
        ));
    }
    // The community's budget is its devices': their traffic must not lock out the
    // admin (or the operator) who would revoke them.
    if caller.role() == Role::Device {
        state.limits.take_community(&community)?;
    }
    Ok((caller, community))
}

/// The community of the path, reached by its admin or the operator.
#[derive(Debug, Clone)]
pub struct AdminOf {
    /// Who.
    pub caller: Caller,
    /// The community (it exists, and the caller may administer it).
    pub community: String,
}

impl FromRequestParts<AppState> for AdminOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (caller, community) = community_for(parts, state, false).await?;
        Ok(Self { caller, community })
    }
}

/// The community of the path, reached by its devices, its admin or the operator.
#[derive(Debug, Clone)]
pub struct MemberOf {
    /// The community (it exists, and the caller belongs to it).
    pub community: String,
}

impl FromRequestParts<AppState> for MemberOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (_, community) = community_for(parts, state, true).await?;
        Ok(Self { community })
    }
}

/// A rate: requests per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second (0: no limit).
    pub per_second: f64,
    /// The burst: how many requests a quiet key may send at once.
    pub burst: f64,
}

impl Rate {
    /// `per_second` requests a second with a burst of twice that; 0 means no limit.
    pub fn per_second(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(per_second) * 2.0,
        }
    }
}

/// Token buckets per token and per community. Keys are only made for authenticated
/// callers and existing communities, so the table stays as small as the district.
#[derive(Debug)]
pub struct RateLimits {
    /// Each token's rate.
    pub per_token: Rate,
    /// Each community's rate (over all its callers).
    pub per_community: Rate,
    /// Buckets by token id.
    tokens: Mutex<HashMap<String, Bucket>>,
    /// Buckets by community.
    communities: Mutex<HashMap<String, Bucket>>,
}

/// Requests left, and when they were counted.
type Bucket = (f64, Instant);

impl RateLimits {
    /// Limits with these rates.
    pub fn new(per_token: Rate, per_community: Rate) -> Self {
        Self {
            per_token,
            per_community,
            tokens: Mutex::default(),
            communities: Mutex::default(),
        }
    }

    /// No limits.
    pub fn none() -> Self {
        Self::new(Rate::per_second(0), Rate::per_second(0))
    }

    /// Takes one request from the token's bucket, or says when to try again (429).
    fn take_token(&self, id: &str) -> Result<(), ApiError> {
        Self::take(&self.tokens, id, self.per_token, "token")
    }

    /// Takes one request from the community's bucket, or says when to try again.
    fn take_community(&self, community: &str) -> Result<(), ApiError> {
        Self::take(
            &self.communities,
            community,
            self.per_community,
            "community",
        )
    }

    fn take(
        buckets: &Mutex<HashMap<String, Bucket>>,
        key: &str,
        rate: Rate,
        scope: &'static str,
    ) -> Result<(), ApiError> {
        if rate.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(key) {
            buckets.insert(key.to_owned(), (rate.burst, now));
        }
        let Some((tokens, last)) = buckets.get_mut(key) else {
            return Ok(());
        };
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * rate.per_second).min(rate.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - *tokens) / rate.per_second);
        Err(ApiError::RateLimited {
            scope,
            retry_after: wait.as_secs().max(1),
        })
    }
}
