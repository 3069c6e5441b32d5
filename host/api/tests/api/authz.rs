//! The authorization matrix: every route of the OpenAPI document (which the router is
//! built from) × every role × its own community and another. The policy of each route
//! is written down here, independently of the code; a route the table does not know
//! fails the test, so a new route cannot ship without its policy.

use super::*;
use courtyard_api::openapi;
use std::collections::BTreeMap;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Anyone, without a token.
    Public,
    /// Any valid token.
    AnyToken,
    /// The operator only.
    Operator,
    /// Integrators and the operator.
    Publisher,
    /// The operator, and community admins (who see their own community only).
    OperatorOrAdmin,
    /// The community's admin and the operator.
    CommunityAdmin,
    /// The community's devices, its admin and the operator.
    CommunityMember,
}

/// The policy of every route: `(method, path template)`.
fn policy(method: &str, path: &str) -> Option<Policy> {
    use Policy::*;
    Some(match (method, path) {
        ("GET", "/healthz") | ("GET", "/readyz") => Public,
        ("GET", "/metrics") => Operator,
        ("GET", "/v1/plugins" | "/v1/plugins/{plugin}" | "/v1/plugins/{plugin}/{version}") => {
            AnyToken
        }
        ("POST", "/v1/plugins") => Publisher,
        ("GET", "/v1/communities") => OperatorOrAdmin,
        ("POST", "/v1/communities") => Operator,
        ("GET" | "POST", "/v1/tokens") | ("DELETE", "/v1/tokens/{token}") => Operator,
        ("GET", "/v1/audit") => Operator,
        ("POST", "/v1/communities/{community}/plugins/{plugin}/invoke/{operation}")
        | ("POST", "/v1/communities/{community}/events") => CommunityMember,
        (_, p) if p.starts_with("/v1/communities/{community}") => CommunityAdmin,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Operator,
    Integrator,
    Admin,
    Device,
}

/// What the matrix expects of one call.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Past the authorization checks (any answer but 401, 403 and the community 404).
    Allowed,
    Unauthenticated,
    Forbidden,
    /// Exactly the answer for a community that does not exist.
    Hidden,
}

fn expect(policy: Policy, who: Who, own: bool) -> Expect {
    use Expect::*;
    if policy == Policy::Public {
        return Allowed;
    }
    if who == Who::Nobody {
        return Unauthenticated;
    }
    match policy {
        Policy::Public | Policy::AnyToken => Allowed,
        Policy::Operator => {
            if who == Who::Operator {
                Allowed
            } else {
                Forbidden
            }
        }
        Policy::Publisher => match who {
            Who::Operator | Who::Integrator => Allowed,
            _ => Forbidden,
        },
        Policy::OperatorOrAdmin => match who {
            Who::Operator | Who::Admin => Allowed,
            _ => Forbidden,
        },
        Policy::CommunityAdmin | Policy::CommunityMember => match (who, own) {
            (Who::Operator, _) => Allowed,
            (Who::Integrator, _) | (_, false) => Hidden,
            (Who::Admin, true) => Allowed,
            (Who::Device, true) if policy == Policy::CommunityMember => Allowed,
            (Who::Device, true) => Forbidden,
            (Who::Nobody, true) => Unauthenticated,
        },
    }
}

/// The methods of a path item, as in the document.
fn operations(item: &utoipa::openapi::PathItem) -> Vec<&'static str> {
    [
        ("GET", item.get.is_some()),
        ("PUT", item.put.is_some()),
        ("POST", item.post.is_some()),
        ("DELETE", item.delete.is_some()),
        ("PATCH", item.patch.is_some()),
        ("HEAD", item.head.is_some()),
        ("OPTIONS", item.options.is_some()),
        ("TRACE", item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, on)| on.then_some(m))
    .collect()
}

/// Resources that exist in both communities, so that "hidden" is tested against real
/// things, not only against missing ones.
struct Fixture {
    /// Tokens (ids) to revoke, per community.
    targets: BTreeMap<&'static str, Vec<String>>,
    /// A run per community.
    runs: BTreeMap<&'static str, String>,
}

async fn fixture(app: &App) -> Fixture {
    let doc = "version: 1\ntrigger: { manual: {} }\nsteps:\n  - id: count\n    call: { plugin: counter, operation: increment, input: { name: authz } }\n";
    let mut runs = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for community in ["nanhu", "sunjia"] {
        let (status, _) = send(
            app,
            yaml(
                "PUT",
                &format!("/v1/communities/{community}/workflows/authz"),
                doc,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = send(
            app,
            post(
                &format!("/v1/communities/{community}/workflows/authz/runs"),
                "",
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        runs.insert(community, body["id"].as_str().expect("id").to_owned());
        // Enough tokens for every caller that may revoke one.
        let ids = (0..8)
            .map(|_| {
                app.tenancy
                    .create_token(
                        &Actor::host(),
                        Role::Device,
                        Some(courtyard_tenancy::CommunityId::new(community).expect("id")),
                        "revoke me".into(),
                    )
                    .expect("token")
                    .info
                    .id
            })
            .collect();
        targets.insert(community, ids);
    }
    app.engine.settle().await;
    Fixture { targets, runs }
}

/// The concrete path of a template for `community`.
fn concrete(template: &str, community: &str, fixture: &mut Fixture) -> String {
    let mut path = template
        .replace("{community}", community)
        .replace("{plugin}", "counter")
        .replace("{version}", "0.1.0")
        .replace("{operation}", "increment")
        .replace("{workflow}", "authz");
    if path.contains("{run}") {
        let run = fixture
            .runs
            .get(community)
            .cloned()
            .unwrap_or_else(|| "r-none".into());
        path = path.replace("{run}", &run);
    }
    if path.contains("{token}") {
        let key = if community == "sunjia" {
            "sunjia"
        } else {
            "nanhu"
        };
        let id = fixture
            .targets
            .get_mut(key)
            .and_then(Vec::pop)
            .unwrap_or_else(|| "tok_none".into());
        path = path.replace("{token}", &id);
    }
    path
}

fn request(method: &str, path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    builder = match token {
        Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => builder.header(header::AUTHORIZATION, "none"),
    };
    let body = if matches!(method, "POST" | "PUT" | "PATCH") {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
        Body::from(r#"{"name": "authz"}"#)
    } else {
        Body::empty()
    };
    builder.body(body).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_every_role_own_and_other_community() {
    let app = app();
    let mut fixture = fixture(&app).await;
    let tokens = [
        (Who::Nobody, None),
        (Who::Operator, Some(app.operator.clone())),
        (Who::Integrator, Some(app.token(Role::Integrator, None))),
        (Who::Admin, Some(app.token(Role::Admin, Some("nanhu")))),
        (Who::Device, Some(app.token(Role::Device, Some("nanhu")))),
    ];
    let document = openapi();
    let mut failures = Vec::new();
    let mut cases = 0;
    for (template, item) in &document.paths.paths {
        for method in operations(item) {
            let Some(policy) = policy(method, template) else {
                failures.push(format!(
                    "{method} {template}: no policy in the test's table"
                ));
                continue;
            };
            let scoped = template.contains("{community}");
            for (who, token) in &tokens {
                for own in [true, false] {
                    if !scoped && !own {
                        continue;
                    }
                    cases += 1;
                    let community = if own { "nanhu" } else { "sunjia" };
                    let path = concrete(template, community, &mut fixture);
                    let want = expect(policy, *who, own);
                    let (status, body) = send(&app, request(method, &path, token.as_deref())).await;
                    let code = body["error"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let ok = match want {
                        Expect::Allowed => {
                            !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
                                && code != "community_not_found"
                                && code != "route_not_found"
                                && code != "method_not_allowed"
                        }
                        Expect::Unauthenticated => status == StatusCode::UNAUTHORIZED,
                        Expect::Forbidden => status == StatusCode::FORBIDDEN,
                        Expect::Hidden => {
                            // The same answer as for a community that does not exist.
                            let missing = concrete(template, "atlantis", &mut fixture);
                            let (s2, b2) =
                                send(&app, request(method, &missing, token.as_deref())).await;
                            status == StatusCode::NOT_FOUND
                                && code == "community_not_found"
                                && s2 == status
                                && serde_json::from_str::<Value>(
                                    &body.to_string().replace(community, "atlantis"),
                                )
                                .ok()
                                    == Some(b2)
                        }
                    };
                    if !ok {
                        failures.push(format!(
                            "{method} {path} as {who:?} ({}): expected {want:?}, got {status} {body}",
                            if own { "own" } else { "other" }
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 5 callers, and own/other for the community routes: far more than a handful.
    assert!(cases > 250, "only {cases} cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_describes_every_route_and_nothing_else() {
    let app = app();
    let document = openapi();
    let (status, served) = send(&app, request("GET", "/openapi.json", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served, serde_json::to_value(&document).expect("json"));
    // Every documented operation is routed (with the operator's token nothing is
    // refused for who the caller is, so only a missing route can say so).
    let mut fixture = fixture(&app).await;
    let mut count = 0;
    for (template, item) in &document.paths.paths {
        for method in operations(item) {
            count += 1;
            let path = concrete(template, "nanhu", &mut fixture);
            let (status, body) = send(&app, request(method, &path, Some(&app.operator))).await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                code != "route_not_found"
                    && code != "method_not_allowed"
                    && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status} {body}"
            );
            // Every operation but liveness and readiness names the bearer scheme.
            let secured =
                served["paths"][template.as_str()][method.to_ascii_lowercase()]["security"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty());
            assert_eq!(
                secured,
                !matches!(template.as_str(), "/healthz" | "/readyz"),
                "{method} {template}"
            );
        }
    }
    // The API of API.md, the district issue and readiness: a new route changes this
    // count, and needs its line in the policy table of the matrix.
    assert_eq!(count, 35, "operations in the document");
    // A route the document does not have is not served.
    for (method, path) in [
        ("GET", "/v1/secrets"),
        ("DELETE", "/v1/communities/nanhu"),
        ("POST", "/healthz"),
    ] {
        let (status, _) = send(&app, request(method, path, Some(&app.operator))).await;
        assert!(
            matches!(
                status,
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            ),
            "{method} {path}: {status}"
        );
    }
    // The interactive page is served from the binary, without a token.
    let response = app
        .router
        .clone()
        .oneshot(Request::get("/docs/").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let html = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(
        String::from_utf8_lossy(&html).contains("swagger"),
        "not Swagger UI"
    );
}
