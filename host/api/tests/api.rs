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
use courtyard_tenancy::District;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct App {
    router: Router,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(&dir.path().join("store")).expect("sled"));
    let config = RuntimeConfig {
        limits: Limits {
            timeout: Duration::from_millis(300),
            max_memory_bytes: 16 << 20,
            ..Limits::default()
        },
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config, store).expect("runtime");
    for a in [COUNTER, MISBEHAVE] {
        runtime
            .load(&Package::new(a.manifest, a.component.to_vec()).expect("package"))
            .expect("load");
    }
    let district = Arc::new(District::reference().expect("district"));
    App {
        router: router(AppState::new(runtime, district)),
        _dir: dir,
    }
}

async fn send(app: &App, request: Request<Body>) -> (StatusCode, Value) {
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
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON body")
    };
    (status, body)
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
    assert_eq!(body["communities"], 68);
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
    let request = Request::post("/v1/communities/nanhu/plugins/counter/invoke/increment")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", "has spaces")
        .body(Body::from(r#"{"name":"meals"}"#))
        .expect("req");
    let (status, body) = send(&app, request).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_header")
    );
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
