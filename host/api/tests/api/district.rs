//! Communities, enablement (config and grants), tokens, the audit log, rate limits and
//! the hardening of the HTTP edge.

use super::*;
use courtyard_api::{Rate, RateLimits};

fn put_json(path: &str, body: Value) -> Request<Body> {
    Request::put(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn patch_json(path: &str, body: Value) -> Request<Body> {
    Request::patch(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn delete(path: &str) -> Request<Body> {
    Request::delete(path).body(Body::empty()).expect("request")
}

/// `request` sent with `token`.
fn with(token: &str, mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_district_has_68_communities_that_can_be_created_read_and_renamed() {
    let app = app();
    let (status, body) = send(&app, get("/v1/communities")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body["communities"].as_array().expect("list");
    assert_eq!(list.len(), 68);
    let nanhu = list.iter().find(|c| c["id"] == "nanhu").expect("nanhu");
    // The test host loads only counter and misbehave: the seed enabled what it has.
    assert_eq!(nanhu["plugins"], json!(["counter", "misbehave"]));

    let (status, body) = send(
        &app,
        post(
            "/v1/communities",
            r#"{"id": "xinhe", "name": "新河 Xinhe"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "xinhe");
    assert_eq!(body["plugins"], json!([]));
    let (status, body) = send(
        &app,
        post("/v1/communities", r#"{"id": "xinhe", "name": "again"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(code(&body), "community_exists");
    let (status, body) = send(
        &app,
        post("/v1/communities", r#"{"id": "Bad Id", "name": "x"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("id"),
        "{body}"
    );
    let (status, _) = send(
        &app,
        post(
            "/v1/communities",
            r#"{"id": "yuhe", "name": "Yuhe", "colour": "red"}"#,
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );

    let (status, body) = send(
        &app,
        patch_json("/v1/communities/xinhe", json!({"name": "Xinhe Garden"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = send(&app, get("/v1/communities/xinhe")).await;
    assert_eq!(body["name"], "Xinhe Garden");
    // A new community is served at once: its events are accepted.
    let (status, body) = send(
        &app,
        post("/v1/communities/xinhe/events", r#"{"kind": "gate.opened"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_runs_only_where_it_is_enabled_with_its_config_and_grants() {
    let app = app();
    // beihai-road's mix has no counter.
    let (status, body) = invoke(&app, "beihai-road", "counter", "get", json!({"name": "a"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "plugin_not_enabled");
    // A made-up operation is refused as such first: it never reaches the metrics.
    let (status, body) = invoke(&app, "beihai-road", "counter", "made-up", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "operation_not_found");

    let path = "/v1/communities/beihai-road/plugins/counter";
    // Config errors name the field.
    let (status, body) = send(
        &app,
        put_json(path, json!({"config": {"step": 0, "colour": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "invalid_config");
    let details = body["error"]["details"].to_string();
    assert!(details.contains("config/step"), "{details}");
    assert!(details.contains("colour"), "{details}");
    // Only what the manifest requests can be granted; unknown capabilities are 400.
    let (status, body) = send(&app, put_json(path, json!({"grants": ["network"]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(&app, put_json(path, json!({"version": "9.9.9"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "version_not_available");

    // Enabled without the state capability: the call stops where it uses state.
    let (status, body) = send(
        &app,
        put_json(path, json!({"config": {"step": 5}, "grants": ["events"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["effective_config"]["step"], 5);
    assert_eq!(body["grants"], json!(["events"]));
    let (status, body) = invoke(
        &app,
        "beihai-road",
        "counter",
        "increment",
        json!({"name": "a"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(code(&body), "capability_not_granted");

    // Granted: the call runs with the community's config (step 5).
    let (status, body) = send(
        &app,
        put_json(
            path,
            json!({"config": {"step": 5}, "grants": ["state", "events"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = invoke(
        &app,
        "beihai-road",
        "counter",
        "increment",
        json!({"name": "a"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], 5);
    // Other communities keep the default config.
    let (_, body) = invoke(&app, "nanhu", "counter", "increment", json!({"name": "a"})).await;
    assert_eq!(body["value"], 1);

    let (status, body) = send(&app, get("/v1/communities/beihai-road/plugins")).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["plugins"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["plugin"].as_str())
        .collect();
    assert!(names.contains(&"counter"), "{body}");

    // Disabled: refused again; enabled again: the state is still there.
    let (status, _) = send(&app, delete(path)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(&app, delete(path)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = invoke(&app, "beihai-road", "counter", "get", json!({"name": "a"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&app, put_json(path, json!({}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = invoke(&app, "beihai-road", "counter", "get", json!({"name": "a"})).await;
    assert_eq!(body["value"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_step_of_a_plugin_the_community_does_not_run_fails() {
    let app = app();
    let doc = "version: 1\ntrigger: { manual: {} }\nsteps:\n  - id: count\n    call: { plugin: counter, operation: increment, input: { name: wf } }\n";
    let (status, body) = send(
        &app,
        yaml("PUT", "/v1/communities/beihai-road/workflows/count", doc),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(
        &app,
        post("/v1/communities/beihai-road/workflows/count/runs", ""),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let run = body["id"].as_str().expect("id").to_owned();
    app.engine.settle().await;
    let (_, body) = send(
        &app,
        get(&format!("/v1/communities/beihai-road/runs/{run}")),
    )
    .await;
    assert_eq!(body["status"], "failed", "{body}");
    assert!(body.to_string().contains("not-enabled"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_scoped_to_their_community_and_revocable() {
    let app = app();
    // The operator makes nanhu's admin; the admin makes a device.
    let (status, body) = send(
        &app,
        post(
            "/v1/communities/nanhu/tokens",
            r#"{"role": "admin", "label": "estate office"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let admin = body["token"].as_str().expect("secret").to_owned();
    assert!(admin.starts_with("cyt_") && admin.len() == 68, "{admin}");
    let (status, body) = send(
        &app,
        with(
            &admin,
            post("/v1/communities/nanhu/tokens", r#"{"label": "gate 3"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["role"], "device");
    let device = body["token"].as_str().expect("secret").to_owned();
    let device_id = body["id"].as_str().expect("id").to_owned();

    // An admin cannot make admins, nor tokens of another community.
    let (status, _) = send(
        &app,
        with(
            &admin,
            post("/v1/communities/nanhu/tokens", r#"{"role": "admin"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(
        &app,
        with(&admin, post("/v1/communities/sunjia/tokens", r#"{}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "community_not_found");

    // Listings never show a secret or a hash.
    let (status, body) = send(&app, with(&admin, get("/v1/communities/nanhu/tokens"))).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.to_string();
    assert!(!text.contains(&device) && !text.contains("hash"), "{text}");
    assert_eq!(body["tokens"].as_array().expect("list").len(), 2);

    // The device works in nanhu only.
    let (status, _) = send(
        &app,
        with(
            &device,
            post(
                "/v1/communities/nanhu/plugins/counter/invoke/increment",
                r#"{"name": "a"}"#,
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &app,
        with(
            &device,
            post(
                "/v1/communities/sunjia/plugins/counter/invoke/increment",
                r#"{"name": "a"}"#,
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Revoked: 401 from then on.
    let (status, _) = send(
        &app,
        with(
            &admin,
            delete(&format!("/v1/communities/nanhu/tokens/{device_id}")),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(
        &app,
        with(
            &device,
            post(
                "/v1/communities/nanhu/plugins/counter/invoke/increment",
                r#"{"name": "a"}"#,
            ),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthenticated");

    // No token, a malformed header, a made-up token: 401 with a challenge.
    let response = app
        .router
        .clone()
        .oneshot(get("/v1/communities"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    for value in ["Basic abc", "Bearer", "Bearer cyt_made_up"] {
        let mut request = get("/v1/communities");
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, value.parse().expect("header"));
        let (status, _) = send(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
    }

    // The operator makes district-wide tokens.
    let (status, body) = send(
        &app,
        post("/v1/tokens", r#"{"role": "integrator", "label": "acme"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(&app, post("/v1/tokens", r#"{"role": "device"}"#)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a device token needs its community: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_in_the_audit_log_with_who_what_and_before_after() {
    let app = app();
    let admin = app.token(Role::Admin, Some("nanhu"));
    let path = "/v1/communities/nanhu/plugins/counter";
    let (status, _) = send(
        &app,
        with(&admin, put_json(path, json!({"config": {"step": 2}}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let doc = "version: 1\ntrigger: { manual: {} }\nsteps:\n  - id: count\n    call: { plugin: counter, operation: increment, input: { name: wf } }\n";
    let mut request = yaml("PUT", "/v1/communities/nanhu/workflows/count", doc);
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {admin}").parse().expect("header"),
    );
    let (status, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(
        &app,
        with(
            &admin,
            post("/v1/communities/nanhu/workflows/count/disable", ""),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Another community's change, by the operator.
    let (status, _) = send(
        &app,
        patch_json("/v1/communities/sunjia", json!({"name": "Sunjia"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = send(&app, with(&admin, get("/v1/communities/nanhu/audit"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body["entries"].as_array().expect("entries");
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions[..3],
        ["workflow.disable", "workflow.apply", "plugin.configure"],
        "{body}"
    );
    let configure = &entries[2];
    assert_eq!(configure["target"], "nanhu/counter");
    assert_eq!(configure["actor"]["role"], "admin");
    assert_eq!(configure["before"]["config"], json!({}));
    assert_eq!(configure["after"]["config"], json!({"step": 2}));
    assert!(configure["at_ms"].as_i64().expect("at") > 0);
    assert!(!body.to_string().contains("sunjia"), "only nanhu's: {body}");

    // The district's log is the operator's.
    let (status, _) = send(&app, with(&admin, get("/v1/audit"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(&app, get("/v1/audit?limit=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["entries"][0]["action"], "community.update");
    assert_eq!(body["entries"].as_array().expect("entries").len(), 2);
    let next = body["next"].as_u64().expect("next");
    let (_, body) = send(&app, get(&format!("/v1/audit?limit=2&before={next}"))).await;
    assert_eq!(body["entries"][0]["action"], "workflow.apply", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let app = app_with(test_limits(), |runtime, engine, tenancy| {
        AppState::new(runtime, engine, tenancy).with_rate_limits(RateLimits::new(
            Rate {
                per_second: 0.5,
                burst: 3.0,
            },
            Rate {
                per_second: 0.5,
                burst: 4.0,
            },
        ))
    });
    let device = app.token(Role::Device, Some("nanhu"));
    let other = app.token(Role::Device, Some("nanhu"));
    let call = |token: &str| {
        with(
            token,
            post(
                "/v1/communities/nanhu/plugins/counter/invoke/increment",
                r#"{"name": "a"}"#,
            ),
        )
    };
    for _ in 0..3 {
        let (status, _) = send(&app, call(&device)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = app
        .router
        .clone()
        .oneshot(call(&device))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    // The token's budget is its own; the community's (4) is shared by all its callers.
    let (status, _) = send(&app, call(&other)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&app, call(&other)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("community"),
        "{body}"
    );
    // Other communities are not held back.
    let (status, _) = send(
        &app,
        post(
            "/v1/communities/sunjia/plugins/counter/invoke/increment",
            r#"{"name": "a"}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_is_refused_and_slow_requests_time_out() {
    let limits = Limits {
        max_concurrency: 1,
        ..test_limits()
    };
    let app = app_with(limits, |runtime, engine, tenancy| {
        AppState::new(runtime, engine, tenancy).with_request_timeout(Duration::from_millis(100))
    });
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let (status, body) = send(
        &app,
        post("/v1/communities/nanhu/plugins/counter/invoke/get", &deep),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "malformed_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("recursion"),
        "{body}"
    );

    // `spin` holds the one invocation slot until its CPU deadline (300 ms); a call
    // behind it waits for the slot longer than the request may take.
    let router = app.router.clone();
    let operator = app.operator.clone();
    let spinning = tokio::spawn(async move {
        let request = with(
            &operator,
            post("/v1/communities/nanhu/plugins/misbehave/invoke/spin", "{}"),
        );
        router.oneshot(request).await.expect("infallible").status()
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, body) = invoke(&app, "nanhu", "counter", "increment", json!({"name": "a"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "request_timeout");
    assert_eq!(
        spinning.await.expect("task"),
        StatusCode::SERVICE_UNAVAILABLE
    );
}
