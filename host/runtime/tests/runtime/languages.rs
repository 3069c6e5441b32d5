//! Plugins in Python (componentize-py) and JavaScript (componentize-js) run in the same
//! host, with the same state, the same sandbox and the same limits as Rust plugins.

use super::{NOW, Runtime, fail, ok, runtime_with};
use courtyard_plugin_artifacts::{LIGHTS, MISBEHAVE_JS, MISBEHAVE_PY, TRASH_BINS};
use courtyard_runtime::{InvokeError, Limits, PluginErrorKind};
use serde_json::json;
use std::time::Duration;

fn limits() -> Limits {
    // The default memory cap; a deadline generous enough for an interpreter, tight
    // enough to test quickly.
    Limits {
        timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_plugin_serves_and_keeps_state_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let rt = runtime_with(dir.path(), limits(), &[TRASH_BINS]);
        let out = ok(
            &rt,
            "nanhu",
            "trash-bins",
            "register-bin",
            json!({ "bin": "b-1", "location": "Building 3", "stream": "kitchen" }),
        )
        .await;
        assert_eq!(out.output["fill_percent"], 0);
        let out = ok(
            &rt,
            "nanhu",
            "trash-bins",
            "report",
            json!({ "bin": "b-1", "fill_percent": 85, "lid": "closed" }),
        )
        .await;
        assert_eq!(out.output["needs_emptying"], true);
        assert_eq!(
            out.events.len(),
            1,
            "crossing the threshold emits trash-bins.full"
        );
        assert_eq!(out.events[0].kind, "trash-bins.full");
    }
    let rt = runtime_with(dir.path(), limits(), &[TRASH_BINS]);
    let out = ok(
        &rt,
        "nanhu",
        "trash-bins",
        "status",
        json!({ "bin": "b-1" }),
    )
    .await;
    assert_eq!(out.output["fill_percent"], 85);
    let err = fail(
        &rt,
        "sunjia",
        "trash-bins",
        "status",
        json!({ "bin": "b-1" }),
    )
    .await;
    assert!(
        matches!(
            err,
            InvokeError::Plugin {
                kind: PluginErrorKind::NotFound,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_plugin_serves_and_keeps_state_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let rt = runtime_with(dir.path(), limits(), &[LIGHTS]);
        ok(
            &rt,
            "nanhu",
            "lights",
            "register-light",
            json!({ "light": "l-1", "unit": "3-201", "resident": "r-9" }),
        )
        .await;
        let out = ok(
            &rt,
            "nanhu",
            "lights",
            "switch",
            json!({ "light": "l-1", "on": true, "source": "remote" }),
        )
        .await;
        assert_eq!(out.output["on"], true);
        assert_eq!(out.events[0].kind, "lights.switched");
        let err = fail(
            &rt,
            "nanhu",
            "lights",
            "set-schedule",
            json!({ "light": "l-1", "on_at": "25:00", "off_at": "06:00" }),
        )
        .await;
        assert!(
            matches!(
                err,
                InvokeError::Plugin {
                    kind: PluginErrorKind::InvalidInput,
                    ..
                }
            ),
            "{err}"
        );
    }
    let rt = runtime_with(dir.path(), limits(), &[LIGHTS]);
    let out = ok(&rt, "nanhu", "lights", "status", json!({ "light": "l-1" })).await;
    assert_eq!(out.output["on"], true);
    // The host's "now" reaches JavaScript as a number of milliseconds.
    let out = ok(&rt, "nanhu", "lights", "daily-check", json!({})).await;
    assert_eq!(
        out.output,
        json!({ "inactive": [] }),
        "switched at NOW = {NOW}, so not inactive"
    );
}

/// Loops, memory bombs and crashes fail the call as they do in Rust. Unbounded recursion
/// fails cleanly too, in the language's own way: `expected_recursion` says how.
async fn limits_apply(rt: &Runtime, plugin: &str, expected_recursion: fn(&InvokeError) -> bool) {
    let out = ok(rt, "nanhu", plugin, "count", json!({})).await;
    assert_eq!(out.output, json!({ "count": 1 }));
    let err = fail(rt, "nanhu", plugin, "spin", json!({})).await;
    assert!(
        matches!(err, InvokeError::Timeout { .. }),
        "{plugin} spin: {err}"
    );
    let err = fail(rt, "nanhu", plugin, "hog", json!({})).await;
    assert!(
        matches!(err, InvokeError::MemoryLimit { .. }),
        "{plugin} hog: {err}"
    );
    let err = fail(rt, "nanhu", plugin, "crash", json!({})).await;
    assert!(
        matches!(err, InvokeError::Trap { .. }),
        "{plugin} crash: {err}"
    );
    let err = fail(rt, "nanhu", plugin, "recurse", json!({})).await;
    assert!(expected_recursion(&err), "{plugin} recurse: {err}");
    // None of that left anything behind, and the plugin still serves.
    let out = ok(rt, "nanhu", plugin, "count", json!({})).await;
    assert_eq!(out.output, json!({ "count": 2 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_limits_apply_to_python_plugins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime_with(dir.path(), limits(), &[MISBEHAVE_PY]);
    // CPython keeps its frames on the heap: with the recursion limit lifted, the memory
    // cap stops it.
    limits_apply(&rt, "misbehave-py", |e| {
        matches!(e, InvokeError::MemoryLimit { .. })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_limits_apply_to_javascript_plugins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime_with(dir.path(), limits(), &[MISBEHAVE_JS]);
    // SpiderMonkey stops runaway recursion itself with an InternalError, which the SDK
    // returns as an internal plugin error.
    limits_apply(&rt, "misbehave-js", |e| {
        matches!(e, InvokeError::Plugin { kind: PluginErrorKind::Internal, message, .. } if message.contains("too much recursion"))
    })
    .await;
}
