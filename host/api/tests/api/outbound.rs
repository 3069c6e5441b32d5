//! Outgoing HTTP as a capability: library-sync's `sync` fetches the city library's change
//! feed from a real HTTP server on loopback, only when the community granted `http` and
//! the server's origin; any other request is refused before a connection is made.

use super::*;
use axum::extract::{Query, State as AxumState};
use axum::response::IntoResponse;
use courtyard_plugin_artifacts::LIBRARY_SYNC;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A stand-in for the city library's change feed; records the cursors it was asked for.
async fn library() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let asked: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    async fn changes(
        AxumState(asked): AxumState<Arc<Mutex<Vec<Option<String>>>>>,
        Query(q): Query<HashMap<String, String>>,
    ) -> axum::response::Response {
        let cursor = q.get("cursor").cloned();
        asked.lock().expect("lock").push(cursor.clone());
        let page = match cursor.as_deref() {
            None => json!({
                "changes": [
                    {"copy_id": "QD-0001", "revision": 1, "status": "active", "title": "Camel Xiangzi"},
                    {"copy_id": "QD-0002", "revision": 1, "status": "active", "title": "Fortress Besieged"},
                ],
                "next_cursor": "c1",
                "has_more": true,
            }),
            Some(_) => json!({"changes": [], "next_cursor": "c1", "has_more": false}),
        };
        axum::Json(page).into_response()
    }
    async fn huge() -> Vec<u8> {
        vec![b' '; 5 << 20]
    }
    let app = axum::Router::new()
        .route("/api/changes", axum::routing::get(changes))
        .route("/huge/changes", axum::routing::get(huge))
        .with_state(asked.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}"), asked)
}

/// A listener that only counts the connections made to it.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (format!("http://{addr}"), count)
}

/// A listener that accepts connections and never answers.
async fn silent_listener() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

fn put_plugin(body: Value) -> Request<Body> {
    Request::put("/v1/communities/nanhu/plugins/library-sync")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_sync_fetches_only_from_the_origins_its_community_granted() {
    let app = app();
    app.runtime
        .load(
            &Package::new(LIBRARY_SYNC.manifest, LIBRARY_SYNC.component.to_vec()).expect("package"),
        )
        .expect("load");
    let (library, asked) = library().await;
    let (other, connections) = counting_listener().await;

    // Granted the library's origin; configured with another: refused, no connection.
    let (status, body) = send(
        &app,
        put_plugin(json!({
            "config": {"library_url": format!("{other}/api")},
            "grants": ["state", "events", "http"],
            "allowed_hosts": [library],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["allowed_hosts"],
        json!([format!("{library}")]),
        "{body}"
    );
    let (status, body) = invoke(&app, "nanhu", "library-sync", "sync", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("not allowed"),
        "{body}"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no connection to an origin not granted"
    );

    // The library itself: the first page, then the page after its cursor.
    let (status, body) = send(
        &app,
        put_plugin(json!({
            "config": {"library_url": format!("{library}/api")},
            "grants": ["state", "events", "http"],
            "allowed_hosts": [library],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = invoke(&app, "nanhu", "library-sync", "sync", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], 2, "{body}");
    assert_eq!(body["cursor"], "c1");
    let (status, body) = invoke(&app, "nanhu", "library-sync", "sync", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        *asked.lock().expect("lock"),
        vec![None, Some("c1".to_owned())]
    );
    let (status, body) = invoke(
        &app,
        "nanhu",
        "library-sync",
        "get-copy",
        json!({"copy_id": "QD-0002"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().contains("Fortress Besieged"), "{body}");

    // A response over the size cap fails the call (503), and nothing is applied.
    let (status, _) = send(
        &app,
        put_plugin(json!({
            "config": {"library_url": format!("{library}/huge")},
            "grants": ["state", "events", "http"],
            "allowed_hosts": [library],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = invoke(&app, "nanhu", "library-sync", "sync", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Without the `http` capability there is no outgoing HTTP at all, and origins
    // without it are refused.
    let (status, body) = send(
        &app,
        put_plugin(json!({
            "config": {"library_url": format!("{library}/api")},
            "grants": ["state", "events"],
            "allowed_hosts": [library],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = send(
        &app,
        put_plugin(json!({
            "config": {"library_url": format!("{library}/api")},
            "grants": ["state", "events"],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = asked.lock().expect("lock").len();
    let (status, body) = invoke(&app, "nanhu", "library-sync", "sync", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        asked.lock().expect("lock").len(),
        before,
        "the library was not asked"
    );
    // Origins are checked when they are granted.
    let (status, body) = send(
        &app,
        put_plugin(
            json!({"grants": ["http"], "allowed_hosts": ["ftp://x", "https://a.example/path"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );

    // A server that never answers holds the call no longer than its deadline (300 ms in
    // these tests): the guest waits inside the host, where only the request's own deadline
    // can end the wait.
    let silent = silent_listener().await;
    let (status, _) = send(
        &app,
        put_plugin(json!({
            "config": {"library_url": format!("{silent}/api")},
            "grants": ["state", "events", "http"],
            "allowed_hosts": [silent],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    let (status, body) = invoke(&app, "nanhu", "library-sync", "sync", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
