//! The registry: publishing packages (multipart), their versions and who may publish.

use super::*;
use courtyard_plugin_artifacts::{CANTEEN, COUNTER};

/// A `multipart/form-data` request of `parts`.
fn multipart(token: &str, parts: &[(&str, &[u8])]) -> Request<Body> {
    let boundary = "courtyard-test-boundary";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post("/v1/plugins")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrators_publish_packages_that_communities_then_enable() {
    let app = app();
    let integrator = app.token(Role::Integrator, None);
    let other = app.token(Role::Integrator, None);
    let admin = app.token(Role::Admin, Some("nanhu"));
    let package: [(&str, &[u8]); 2] = [
        ("manifest", CANTEEN.manifest.as_bytes()),
        ("component", CANTEEN.component),
    ];

    // The plugins the host ships are the operator's.
    let (status, body) = send(
        &app,
        multipart(
            &integrator,
            &[
                ("manifest", COUNTER.manifest.as_bytes()),
                ("component", COUNTER.component),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "plugin_owned");
    // Admins and devices do not publish.
    let (status, _) = send(&app, multipart(&admin, &package)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A broken package is 422, and nothing is stored.
    let (status, body) = send(
        &app,
        multipart(
            &integrator,
            &[
                ("manifest", CANTEEN.manifest.as_bytes()),
                ("component", b"\0asm\x01\0\0\0"),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "invalid_package");
    let (status, body) = send(&app, multipart(&integrator, &[("manifest", b"{}")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Packages have their own size limit, far above the 1 MiB of other bodies.
    let big = vec![0u8; 3 << 20];
    let (status, body) = send(
        &app,
        multipart(
            &integrator,
            &[
                ("manifest", CANTEEN.manifest.as_bytes()),
                ("component", &big),
            ],
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "read whole, then refused: {body}"
    );

    let (status, body) = send(&app, multipart(&integrator, &package)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "canteen");
    assert_eq!(body["running"], true);
    // Publishing the same again is harmless; other contents under the version are not.
    let (status, _) = send(&app, multipart(&integrator, &package)).await;
    assert_eq!(status, StatusCode::OK);
    let changed =
        CANTEEN
            .manifest
            .replacen("\"description\": \"", "\"description\": \"Changed. ", 1);
    let (status, body) = send(
        &app,
        multipart(
            &integrator,
            &[
                ("manifest", changed.as_bytes()),
                ("component", CANTEEN.component),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "version_exists");
    // The name is the first publisher's.
    let newer = CANTEEN
        .manifest
        .replacen("\"version\": \"0.1.0\"", "\"version\": \"0.2.0\"", 1);
    let (status, body) = send(
        &app,
        multipart(
            &other,
            &[
                ("manifest", newer.as_bytes()),
                ("component", CANTEEN.component),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "plugin_owned");
    let (status, body) = send(
        &app,
        multipart(
            &integrator,
            &[
                ("manifest", newer.as_bytes()),
                ("component", CANTEEN.component),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Any token reads the registry.
    let device = app.token(Role::Device, Some("nanhu"));
    let mut request = get("/v1/plugins/canteen");
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {device}").parse().expect("header"),
    );
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["versions"], json!(["0.1.0", "0.2.0"]));
    assert_eq!(body["running"], "0.2.0");
    let (status, body) = send(&app, get("/v1/plugins/canteen/0.1.0")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], "0.1.0");
    let (status, _) = send(&app, get("/v1/plugins/canteen/9.0.0")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A community enables it, pinned to the version that runs, and calls it.
    let (status, body) = send(
        &app,
        Request::put("/v1/communities/nanhu/plugins/canteen")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"version": "0.2.0"}"#))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let menu = json!({
        "date": "2099-12-01", "slot": "lunch",
        "dishes": [{ "dish_id": "rice", "name": "Rice", "price_fen": 200, "cap": 10 }],
    });
    let (status, body) = invoke(&app, "nanhu", "canteen", "set-menu", menu).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Each publish is in the audit log.
    let (_, body) = send(&app, get("/v1/audit")).await;
    let publishes = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "plugin.publish")
        .count();
    assert_eq!(publishes, 2, "{body}");
}
