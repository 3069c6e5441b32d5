//! The HTTP API through the real router (no socket): real runtime, real plugins,
//! real sled on a temporary directory.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use courtyard_api::{AppState, router};
use courtyard_plugin_artifacts::{COUNTER, MISBEHAVE};
use courtyard_registry::Package;
use courtyard_runtime::{Limits, Runtime, RuntimeConfig};
use courtyard_store::SledStore;
use courtyard_tenancy::{Actor, District, Enablement, Role, SeedPlugin, Tenancy};
use courtyard_workflow::{Engine, EngineConfig};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// The process's Prometheus recorder, installed once for every test of this binary.
fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("recorder")
        })
        .clone()
}

mod authz;
mod district;
mod outbound;
mod registry;

struct App {
    router: Router,
    engine: Engine,
    runtime: Runtime,
    tenancy: Arc<Tenancy>,
    /// The operator's token, sent with every request that has none of its own.
    operator: String,
    _dir: tempfile::TempDir,
}

impl App {
    /// A new token of `role` (in `community` for admins and devices).
    fn token(&self, role: Role, community: Option<&str>) -> String {
        self.tenancy
            .create_token(
                &Actor::host(),
                role,
                community.map(|c| courtyard_tenancy::CommunityId::new(c).expect("id")),
                format!("test {role}"),
            )
            .expect("token")
            .secret
    }
}

fn app() -> App {
    app_with(test_limits(), AppState::new)
}

/// The runtime limits of the tests: short deadlines, small memories.
fn test_limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(300),
        max_memory_bytes: 16 << 20,
        ..Limits::default()
    }
}

/// The app with these runtime limits, with `state` making the state (to set its own
/// limits).
fn app_with(limits: Limits, state: impl FnOnce(Runtime, Engine, Arc<Tenancy>) -> AppState) -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(&dir.path().join("store")).expect("sled"));
    let config = RuntimeConfig {
        limits,
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config, store.clone()).expect("runtime");
    for a in [COUNTER, MISBEHAVE] {
        runtime
            .load(&Package::new(a.manifest, a.component.to_vec()).expect("package"))
            .expect("load");
    }
    let district = District::reference().expect("district");
    let seeds = SeedPlugin::all_of(&runtime);
    let tenancy = Arc::new(Tenancy::open(store.clone(), &district, &seeds).expect("tenancy"));
    runtime.set_admission(tenancy.clone()).expect("gate");
    // The fixture is not in the district's mix: nanhu and sunjia enable it, as an
    // admin would.
    for community in ["nanhu", "sunjia"] {
        tenancy
            .enable(
                &Actor::host(),
                community,
                Enablement {
                    plugin: courtyard_registry::PluginName::new("misbehave").expect("name"),
                    version: None,
                    config: serde_json::Map::new(),
                    grants: [
                        courtyard_registry::Capability::State,
                        courtyard_registry::Capability::Events,
                    ]
                    .into(),
                    allowed_hosts: Vec::new(),
                    updated_ms: 0,
                },
            )
            .expect("enable");
    }
    let engine = Engine::open(
        runtime.clone(),
        store,
        tenancy.clone(),
        EngineConfig::default(),
    )
    .expect("engine");
    let operator = tenancy
        .create_token(&Actor::host(), Role::Operator, None, "tests".into())
        .expect("operator")
        .secret;
    App {
        runtime: runtime.clone(),
        router: router(
            state(runtime, engine.clone(), tenancy.clone())
                .with_metrics(metrics())
                .with_packages(Arc::new(
                    courtyard_registry::PackageStore::open(&dir.path().join("packages"))
                        .expect("packages"),
                )),
        ),
        engine,
        tenancy,
        operator,
        _dir: dir,
    }
}

/// Sends a request, with the operator's token unless it has a token (or
/// `Authorization: none`, which sends none).
async fn send(app: &App, mut request: Request<Body>) -> (StatusCode, Value) {
    let headers = request.headers_mut();
    match headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) {
        Some(b"none") => {
            headers.remove(header::AUTHORIZATION);
        }
        Some(_) => {}
        None => {
            headers.insert(
                header::AUTHORIZATION,
                format!("Bearer {}", app.operator).parse().expect("header"),
            );
        }
    }
    let response = app
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    // Error bodies are always JSON; the few routes that answer text (metrics) come
    // back as a JSON string.
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

/// `request` with the operator's token.
fn operator(app: &App, mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", app.operator).parse().expect("header"),
    );
    request
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

async fn invoke(
    app: &App,
    community: &str,
    plugin: &str,
    op: &str,
    input: Value,
) -> (StatusCode, Value) {
    let path = format!("/v1/communities/{community}/plugins/{plugin}/invoke/{op}");
    send(app, post(&path, &input.to_string())).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers() {
    let app = app();
    let (status, body) = send(
        &app,
        Request::get("/healthz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

/// Readiness needs no token and reports a serving store. (A failed store's 503 is
/// tested end to end, on a disk the test fills or makes read-only: tests/e2e/disk.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_serving_store() {
    let app = app();
    let (status, body) = send(
        &app,
        Request::get("/readyz").body(Body::empty()).expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_returns_the_output() {
    let app = app();
    let (status, body) = invoke(
        &app,
        "nanhu",
        "counter",
        "increment",
        json!({ "name": "gate", "by": 2 }),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "name": "gate", "value": 2 }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_header_reaches_the_plugin() {
    let app = app();
    for _ in 0..2 {
        let request = Request::post("/v1/communities/nanhu/plugins/counter/invoke/increment")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", "order-1")
            .body(Body::from(r#"{"name":"meals"}"#))
            .expect("req");
        let (status, body) = send(&app, request).await;
        assert_eq!((status, body["value"].clone()), (StatusCode::OK, json!(1)));
    }
    for key in ["has spaces", "workflow:0123:count"] {
        let request = Request::post("/v1/communities/nanhu/plugins/counter/invoke/increment")
            .header(header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", key)
            .body(Body::from(r#"{"name":"meals"}"#))
            .expect("req");
        let (status, body) = send(&app, request).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_header"),
            "{key}: a workflow step's key prefix is reserved"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_404_with_their_own_codes() {
    let app = app();
    let (s, b) = invoke(&app, "atlantis", "counter", "get", json!({ "name": "x" })).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, "community_not_found")
    );
    let (s, b) = invoke(&app, "nanhu", "canteeen", "get", json!({})).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "plugin_not_found"));
    let (s, b) = invoke(&app, "nanhu", "counter", "explode", json!({})).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::NOT_FOUND, "operation_not_found")
    );
    let (s, b) = send(
        &app,
        Request::get("/v2/nothing")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "route_not_found"));
    let (s, b) = send(
        &app,
        Request::delete("/healthz")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_errors_map_to_statuses() {
    let app = app();
    let (s, b) = invoke(&app, "nanhu", "counter", "get", json!({ "name": "never" })).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "not_found"));
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("message")
            .contains("never")
    );
    for (fail, status, c) in [
        ("invalid-input", StatusCode::BAD_REQUEST, "invalid_input"),
        ("conflict", StatusCode::CONFLICT, "conflict"),
        (
            "unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (
            "internal",
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_failed",
        ),
    ] {
        let (s, b) = invoke(
            &app,
            "nanhu",
            "misbehave",
            "write",
            json!({ "key": "k", "value": "v", "fail": fail }),
        )
        .await;
        assert_eq!((s, code(&b)), (status, c), "{fail}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_503_and_traps_500_without_internals() {
    let app = app();
    for (op, c) in [
        ("spin", "plugin_timeout"),
        ("hog", "plugin_memory_limit"),
        ("recurse", "plugin_stack_overflow"),
    ] {
        let (s, b) = invoke(&app, "nanhu", "misbehave", op, json!({})).await;
        assert_eq!((s, code(&b)), (StatusCode::SERVICE_UNAVAILABLE, c), "{op}");
    }
    let (s, b) = invoke(&app, "nanhu", "misbehave", "crash", json!({})).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::INTERNAL_SERVER_ERROR, "plugin_failed")
    );
    let message = b["error"]["message"].as_str().expect("message");
    assert!(
        !message.contains("unreachable") && !message.contains("asked to crash"),
        "{message}"
    );
    let (s, _) = invoke(&app, "nanhu", "misbehave", "ok", json!({})).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_4xx_saying_what_is_wrong() {
    let app = app();
    let path = "/v1/communities/nanhu/plugins/counter/invoke/increment";
    let (s, b) = send(&app, post(path, r#"{"name": "x",}"#)).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "malformed_json"));
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("message")
            .contains("column"),
        "{b}"
    );

    let no_type = Request::post(path)
        .body(Body::from(r#"{"name":"x"}"#))
        .expect("req");
    let (s, b) = send(&app, no_type).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let (s, b) = send(&app, post(path, &big)).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (s, b) = send(&app, post(path, &deep)).await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "malformed_json"));

    let (s, b) = invoke(
        &app,
        "nanhu",
        "counter",
        "increment",
        json!({ "name": "x", "by": -1 }),
    )
    .await;
    assert_eq!((s, code(&b)), (StatusCode::BAD_REQUEST, "invalid_input"));
    let details = b["error"]["details"].as_array().expect("details");
    assert!(details[0].as_str().expect("detail").contains("/by"), "{b}");
}

fn yaml(method: &str, path: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/yaml")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

const TALLY: &str = r#"
version: 1
title: Count gate openings by gate
trigger:
  event: { kind: gate.opened, when: "trigger.payload.gate != 'test'" }
steps:
  - id: count
    call: { plugin: counter, operation: increment, input: { name: "${{ 'gate-' + trigger.payload.gate }}" } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_applied_listed_switched_and_removed() {
    let app = app();
    let path = "/v1/communities/nanhu/workflows/tally";
    let (status, body) = send(&app, yaml("PUT", path, TALLY)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["revision"].as_u64(), body["enabled"].as_bool()),
        (Some(1), Some(true))
    );
    // The same document as JSON replaces it.
    let doc: Value = serde_json::from_str(&serde_json::to_string(&body["document"]).expect("json"))
        .expect("json");
    let (status, body) = send(
        &app,
        Request::put(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(doc.to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body["revision"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{body}"
    );

    let (status, body) = send(&app, get("/v1/communities/nanhu/workflows")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["workflows"][0]["name"], "tally");
    assert_eq!(body["workflows"][0]["trigger"], "event");
    assert_eq!(body["workflows"][0]["title"], "Count gate openings by gate");
    let (_, body) = send(&app, get("/v1/communities/sunjia/workflows")).await;
    assert_eq!(body["workflows"], json!([]), "workflows are per community");

    let (status, body) = send(&app, post(&format!("{path}/disable"), "")).await;
    assert_eq!(
        (status, body["enabled"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let (status, body) = send(&app, post(&format!("{path}/runs"), "{}")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "workflow_disabled")
    );
    let (status, body) = send(&app, post(&format!("{path}/enable"), "")).await;
    assert_eq!(
        (status, body["enabled"].as_bool()),
        (StatusCode::OK, Some(true))
    );

    let (status, _) = send(
        &app,
        Request::delete(path).body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(&app, get(path)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "workflow_not_found")
    );
    let (status, body) = send(&app, get("/v1/communities/atlantis/workflows")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "community_not_found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_workflows_are_422_with_paths() {
    let app = app();
    let path = "/v1/communities/nanhu/workflows/bad";
    let (status, body) = send(
        &app,
        yaml(
            "PUT",
            path,
            "version: 1\ntrigger: {manual: {}}\nsteps:\n  - {id: a, delay: 1s}\n  - {id: b, delay: 1s}\n  - {id: c, call: {plugin: countr, operation: increment}}\n",
        ),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow")
    );
    assert_eq!(
        body["error"]["details"],
        json!([r#"steps[2].call.plugin: unknown plugin "countr"; did you mean "counter"?"#])
    );
    let (status, body) = send(
        &app,
        yaml(
            "PUT",
            path,
            "version: 1\ntrigger: {manual: {}}\nsteps: [{id: a, delai: 1s}]\n",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["details"][0]
            .as_str()
            .is_some_and(|d| d.starts_with("steps[0].delai: unknown field `delai`")),
        "{body}"
    );
    let (status, body) = send(&app, yaml("PUT", path, "version: [")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["details"][0]
            .as_str()
            .is_some_and(|d| d.starts_with("not valid YAML")),
        "{body}"
    );
    let (status, body) = send(
        &app,
        Request::put(path)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("version: 1"))
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (status, body) = send(
        &app,
        yaml("PUT", "/v1/communities/nanhu/workflows/Bad_Name", TALLY),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let (status, _) = send(&app, get(path)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_accepted_with_202_and_start_runs() {
    let app = app();
    let (status, _) = send(
        &app,
        yaml("PUT", "/v1/communities/nanhu/workflows/tally", TALLY),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let event = |body: Value| post("/v1/communities/nanhu/events", &body.to_string());
    let (status, body) = send(
        &app,
        event(json!({"kind": "gate.opened", "payload": {"gate": "east"}, "id": "cam-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["duplicate"], false);
    assert!(body["seq"].is_u64());
    let (status, body) = send(
        &app,
        event(json!({"kind": "gate.opened", "payload": {"gate": "east"}, "id": "cam-1"})),
    )
    .await;
    assert_eq!(
        (status, &body["duplicate"]),
        (StatusCode::ACCEPTED, &json!(true))
    );
    let (status, body) = send(
        &app,
        event(json!({"kind": "gate.opened", "payload": {"gate": "west"}, "id": "cam-1"})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "event_id_conflict")
    );
    let (status, body) = send(
        &app,
        event(json!({"kind": "counter.threshold-reached", "payload": {}})),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "reserved_event_kind")
    );
    let (status, body) = send(&app, event(json!({"kind": "Gate Opened"}))).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_event")
    );
    let (status, body) = send(&app, event(json!({"kind": "gate.opened", "extra": 1}))).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_body"),
        "{body}"
    );
    let (status, body) = send(&app, event(json!({"kind": "gate.opened", "payload": [1]}))).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_event")
    );

    tokio::time::timeout(Duration::from_secs(30), app.engine.settle())
        .await
        .expect("settles");
    let (status, body) = send(&app, get("/v1/communities/nanhu/runs?workflow=tally")).await;
    assert_eq!(status, StatusCode::OK);
    let runs = body["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "the duplicate started nothing: {body}");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(
        runs[0]["steps"][0]["output"],
        json!({"name": "gate-east", "value": 1})
    );
    let id = runs[0]["id"].as_str().expect("id");
    let (status, body) = send(&app, get(&format!("/v1/communities/nanhu/runs/{id}"))).await;
    assert_eq!((status, &body["id"]), (StatusCode::OK, &json!(id)));
    let (status, body) = send(&app, get(&format!("/v1/communities/sunjia/runs/{id}"))).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "run_not_found")
    );
    let (status, body) = send(&app, get("/v1/communities/nanhu/runs?status=lost")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_takes_its_input_and_runs_pages() {
    let app = app();
    let manual = "version: 1\ntrigger: {manual: {}}\nsteps:\n  - id: count\n    call: {plugin: counter, operation: increment, input: {name: \"${{ trigger.input.name }}\"}}\n";
    let (status, _) = send(
        &app,
        yaml("PUT", "/v1/communities/nanhu/workflows/by-hand", manual),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut ids = Vec::new();
    for i in 0..3 {
        let response = app
            .router
            .clone()
            .oneshot(operator(
                &app,
                post(
                    "/v1/communities/nanhu/workflows/by-hand/runs",
                    &json!({"name": format!("n{i}")}).to_string(),
                ),
            ))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let location = response.headers()[header::LOCATION]
            .to_str()
            .expect("ascii")
            .to_owned();
        ids.push(location.rsplit('/').next().expect("id").to_owned());
    }
    tokio::time::timeout(Duration::from_secs(30), app.engine.settle())
        .await
        .expect("settles");
    let (_, page1) = send(&app, get("/v1/communities/nanhu/runs?limit=2")).await;
    let ids1: Vec<&str> = page1["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids1, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let next = page1["next"].as_str().expect("a next page");
    let (_, page2) = send(
        &app,
        get(&format!("/v1/communities/nanhu/runs?limit=2&before={next}")),
    )
    .await;
    let ids2: Vec<&str> = page2["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids2, [ids[0].as_str()]);
    assert_eq!(page2["next"], Value::Null);
    assert_eq!(
        page2["runs"][0]["steps"][0]["output"],
        json!({"name": "n0", "value": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_invocations_limits_events_and_runs() {
    let app = app();
    invoke(
        &app,
        "sunjia",
        "counter",
        "increment",
        json!({ "name": "m" }),
    )
    .await;
    invoke(&app, "sunjia", "misbehave", "crash", json!({})).await;
    invoke(&app, "sunjia", "made-up-plugin", "x", json!({})).await;
    let (status, _) = send(
        &app,
        post(
            "/v1/communities/sunjia/events",
            r#"{"kind": "meter.tick", "payload": {}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let response = app
        .router
        .clone()
        .oneshot(operator(&app, get("/metrics")))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain")),
    );
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    for line in [
        r#"courtyard_invocations_total{community="sunjia",plugin="counter",operation="increment",outcome="ok"}"#,
        r#"courtyard_invocations_total{community="sunjia",plugin="misbehave",operation="crash",outcome="trap"}"#,
        r#"courtyard_plugin_limit_hits_total{plugin="misbehave",limit="trap"}"#,
        r#"courtyard_events_accepted_total{community="sunjia"}"#,
        "courtyard_invocation_duration_seconds",
    ] {
        assert!(text.contains(line), "no {line} in:\n{text}");
    }
    assert!(
        !text.contains("made-up-plugin"),
        "a caller's made-up name is not a label"
    );
}
