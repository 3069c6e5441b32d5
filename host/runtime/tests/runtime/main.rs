//! Integration tests of the runtime: real wasmtime, real components built from
//! `plugins/` by `courtyard-plugin-artifacts`, real sled on a temporary directory.

use courtyard_plugin_artifacts::{Artifact, COUNTER, MISBEHAVE};
use courtyard_registry::Package;
use courtyard_runtime::{
    Clock, Compiled, Invocation, InvokeError, Limits, LogLevel, Outcome, PluginErrorKind, Runtime,
    RuntimeConfig,
};
use courtyard_store::SledStore;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod hostile;
mod languages;

#[derive(Debug)]
struct FixedClock(i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

pub(crate) const NOW: i64 = 1_764_288_000_000;

/// The compiled-component cache shared by the tests (entries are keyed by content and
/// engine, so sharing is safe): the Python and JavaScript components take seconds to
/// compile, once.
fn shared_cache() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")
}

/// A runtime over a store in `dir`, with `plugins` loaded.
fn runtime_with(dir: &Path, limits: Limits, plugins: &[Artifact]) -> Runtime {
    let store = Arc::new(SledStore::open(&dir.join("store")).expect("open sled"));
    let config = RuntimeConfig {
        limits,
        cache_dir: Some(shared_cache()),
        clock: Arc::new(FixedClock(NOW)),
    };
    let runtime = Runtime::new(config, store).expect("runtime");
    for &artifact in plugins {
        runtime.load(&package(artifact)).expect("load");
    }
    runtime
}

fn runtime_in(dir: &Path, limits: Limits) -> Runtime {
    runtime_with(dir, limits, &[COUNTER, MISBEHAVE])
}

fn package(artifact: Artifact) -> Package {
    Package::new(artifact.manifest, artifact.component.to_vec()).expect("valid package")
}

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_millis(300),
        max_memory_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    }
}

fn call(community: &str, plugin: &str, operation: &str, input: Value) -> Invocation {
    Invocation {
        community: community.into(),
        plugin: plugin.into(),
        operation: operation.into(),
        input,
        idempotency_key: None,
        request_id: "test".into(),
        config: None,
        depth: 0,
        chain: None,
    }
}

/// A runtime on a fresh temporary directory (kept alive by the returned guard).
fn fresh(limits: Limits) -> (Runtime, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (runtime_in(dir.path(), limits), dir)
}

async fn fail(rt: &Runtime, community: &str, plugin: &str, op: &str, input: Value) -> InvokeError {
    match rt.invoke(call(community, plugin, op, input)).await {
        Ok(out) => panic!("{plugin}/{op} should have failed, returned {}", out.output),
        Err(e) => e,
    }
}

async fn ok(rt: &Runtime, community: &str, plugin: &str, op: &str, input: Value) -> Outcome {
    rt.invoke(call(community, plugin, op, input))
        .await
        .unwrap_or_else(|e| panic!("{plugin}/{op} failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_state_persists_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let rt = runtime_in(dir.path(), limits());
        for _ in 0..3 {
            ok(
                &rt,
                "nanhu",
                "counter",
                "increment",
                json!({ "name": "visits" }),
            )
            .await;
        }
    }
    let rt = runtime_in(dir.path(), limits());
    let out = ok(&rt, "nanhu", "counter", "get", json!({ "name": "visits" })).await;
    assert_eq!(out.output, json!({ "name": "visits", "value": 3 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn communities_do_not_share_state() {
    let (rt, _dir) = fresh(limits());
    ok(
        &rt,
        "nanhu",
        "counter",
        "increment",
        json!({ "name": "visits" }),
    )
    .await;
    let err = fail(&rt, "sunjia", "counter", "get", json!({ "name": "visits" })).await;
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
async fn concurrent_increments_lose_no_update() {
    let (rt, _dir) = fresh(limits());
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move {
                for _ in 0..1000 {
                    ok(
                        &rt,
                        "nanhu",
                        "counter",
                        "increment",
                        json!({ "name": "shared" }),
                    )
                    .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let out = ok(&rt, "nanhu", "counter", "get", json!({ "name": "shared" })).await;
    assert_eq!(out.output["value"], 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_times_out() {
    let (rt, _dir) = fresh(limits());
    let err = fail(&rt, "nanhu", "misbehave", "spin", json!({})).await;
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err}");
    ok(&rt, "nanhu", "misbehave", "ok", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit() {
    let (rt, _dir) = fresh(limits());
    let err = fail(&rt, "nanhu", "misbehave", "hog", json!({})).await;
    assert!(
        matches!(err, InvokeError::MemoryLimit { limit, .. } if limit == 16 * 1024 * 1024),
        "{err}"
    );
    ok(&rt, "nanhu", "misbehave", "ok", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_with_the_panic_message() {
    let (rt, _dir) = fresh(limits());
    let err = fail(&rt, "nanhu", "misbehave", "crash", json!({})).await;
    match &err {
        InvokeError::Trap { message, .. } => {
            assert!(
                message.contains("misbehave was asked to crash"),
                "{message}"
            );
        }
        other => panic!("expected a trap, got {other}"),
    }
    ok(&rt, "nanhu", "misbehave", "ok", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_overflows_the_stack() {
    let (rt, _dir) = fresh(limits());
    let err = fail(&rt, "nanhu", "misbehave", "recurse", json!({})).await;
    assert!(matches!(err, InvokeError::StackOverflow { .. }), "{err}");
    ok(&rt, "nanhu", "misbehave", "ok", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_calls_are_served_while_a_plugin_spins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime_in(
        dir.path(),
        Limits {
            timeout: Duration::from_secs(3),
            ..limits()
        },
    );
    let spinning = spin_in_background(&rt, "nanhu");
    // The spinning call holds its slot for its whole deadline; these finish first.
    for i in 0..20 {
        let community = if i % 2 == 0 { "nanhu" } else { "sunjia" };
        ok(
            &rt,
            community,
            "counter",
            "increment",
            json!({ "name": "during-spin" }),
        )
        .await;
    }
    assert!(
        !spinning.is_finished(),
        "the spinning call ended before the other calls were served"
    );
    let err = spinning.await.expect("task").expect_err("spin times out");
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err}");
}

/// Starts a call of the fixture's `spin` in `community`, which runs to its deadline.
fn spin_in_background(
    rt: &Runtime,
    community: &str,
) -> tokio::task::JoinHandle<Result<Outcome, InvokeError>> {
    let (rt, community) = (rt.clone(), community.to_owned());
    tokio::spawn(async move {
        rt.invoke(call(&community, "misbehave", "spin", json!({})))
            .await
    })
}

async fn read(rt: &Runtime, key: &str) -> Value {
    ok(rt, "nanhu", "misbehave", "read", json!({ "key": key }))
        .await
        .output["value"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_committed_only_when_the_call_returns_ok() {
    let (rt, _dir) = fresh(limits());
    for (mode, kind) in [
        ("invalid-input", PluginErrorKind::InvalidInput),
        ("not-found", PluginErrorKind::NotFound),
        ("conflict", PluginErrorKind::Conflict),
        ("unavailable", PluginErrorKind::Unavailable),
        ("internal", PluginErrorKind::Internal),
    ] {
        let input = json!({ "key": mode, "value": "x", "emit": true, "fail": mode });
        let err = fail(&rt, "nanhu", "misbehave", "write", input).await;
        assert!(
            matches!(err, InvokeError::Plugin { kind: k, .. } if k == kind),
            "{err}"
        );
        assert_eq!(
            read(&rt, mode).await,
            Value::Null,
            "{mode} left a write behind"
        );
    }
    let input = json!({ "key": "trapped", "value": "x", "emit": true, "fail": "trap" });
    let err = fail(&rt, "nanhu", "misbehave", "write", input).await;
    assert!(matches!(err, InvokeError::Trap { .. }), "{err}");
    assert_eq!(read(&rt, "trapped").await, Value::Null);
    assert!(
        rt.events("nanhu", None, 100).expect("events").is_empty(),
        "failed calls emitted events"
    );

    let out = ok(
        &rt,
        "nanhu",
        "misbehave",
        "write",
        json!({ "key": "kept", "value": "v", "emit": true }),
    )
    .await;
    assert_eq!(out.events.len(), 1);
    assert_eq!(read(&rt, "kept").await, json!("v"));
    let events = rt.events("nanhu", None, 100).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.kind, "misbehave.wrote");
    assert_eq!(events[0].1.payload, json!({ "key": "kept" }));
    assert!(rt.events("sunjia", None, 100).expect("events").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_context_carries_community_key_and_the_hosts_now() {
    let (rt, _dir) = fresh(limits());
    let mut inv = call("beigong-east", "misbehave", "now", json!({}));
    inv.idempotency_key = Some("key-1".into());
    let out = rt.invoke(inv).await.expect("now");
    assert_eq!(out.output["community"], "beigong-east");
    assert_eq!(out.output["plugin"], "misbehave");
    assert_eq!(out.output["operation"], "now");
    assert_eq!(out.output["idempotency_key"], "key-1");
    assert_eq!(out.output["now_ms"], NOW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_stderr_and_log_records_are_captured_and_config_is_passed() {
    let (rt, _dir) = fresh(limits());
    let out = ok(&rt, "nanhu", "misbehave", "chatter", json!({})).await;
    assert_eq!(
        out.output,
        json!({ "config": { "greeting": "hello" } }),
        "manifest defaults"
    );
    let find = |msg: &str| out.logs.iter().find(|r| r.message == msg).map(|r| r.level);
    assert_eq!(find("a log record"), Some(LogLevel::Info));
    assert_eq!(find("a line on stdout"), Some(LogLevel::Info));
    assert_eq!(find("a line on stderr"), Some(LogLevel::Warn));

    let mut inv = call("nanhu", "misbehave", "chatter", json!({}));
    inv.config = Some(json!({ "greeting": "你好" }));
    let out = rt.invoke(inv).await.expect("chatter");
    assert_eq!(out.output, json!({ "config": { "greeting": "你好" } }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_plugins_operations_and_bad_input_are_refused_before_the_plugin_runs() {
    let (rt, _dir) = fresh(limits());
    let err = fail(&rt, "nanhu", "nope", "get", json!({})).await;
    assert!(matches!(err, InvokeError::UnknownPlugin { .. }), "{err}");
    let err = fail(&rt, "nanhu", "counter", "explode", json!({})).await;
    assert!(matches!(err, InvokeError::UnknownOperation { .. }), "{err}");
    let err = fail(
        &rt,
        "nanhu",
        "counter",
        "increment",
        json!({ "name": "x", "by": "two" }),
    )
    .await;
    match err {
        InvokeError::InvalidInput { error, .. } => {
            assert!(error.to_string().contains("/by"), "{error}")
        }
        other => panic!("expected invalid input, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_compiled_plugins_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(&dir.path().join("store")).expect("open"));
    let config = RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    };
    let first = Runtime::new(config.clone(), store.clone()).expect("runtime");
    assert_eq!(
        first.load(&package(COUNTER)).expect("load").compiled,
        Compiled::Fresh
    );
    drop(first);
    let second = Runtime::new(config, store).expect("runtime");
    assert_eq!(
        second.load(&package(COUNTER)).expect("load").compiled,
        Compiled::FromCache
    );
    ok(
        &second,
        "nanhu",
        "counter",
        "increment",
        json!({ "name": "cached" }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_idempotency_key_changes_nothing_twice() {
    let (rt, _dir) = fresh(limits());
    for _ in 0..3 {
        let mut inv = call(
            "nanhu",
            "counter",
            "increment",
            json!({ "name": "once", "by": 5 }),
        );
        inv.idempotency_key = Some("order-17".into());
        let out = rt.invoke(inv).await.expect("increment");
        assert_eq!(out.output["value"], 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_breaks_its_schema_fails_the_call_and_commits_nothing() {
    let (rt, _dir) = fresh(limits());
    let err = fail(&rt, "nanhu", "misbehave", "lie", json!({})).await;
    match &err {
        InvokeError::BadOutput { message, .. } => assert!(message.contains("id"), "{message}"),
        other => panic!("expected a bad output, got {other}"),
    }
    assert_eq!(read(&rt, "lie").await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_has_no_environment_files_or_sockets() {
    let (rt, _dir) = fresh(limits());
    let out = ok(&rt, "nanhu", "misbehave", "probe", json!({})).await;
    assert_eq!(
        out.output,
        json!({
            "env": 0,
            "args": 0,
            "read_root": false,
            "read_cwd": false,
            "write_file": false,
            "tcp_connect": false,
            "dns": false,
            "clock_after_2020": true,
        })
    );
}

/// Every misbehaving operation of the fixture is exercised above or in `hostile.rs`.
#[test]
fn every_fixture_operation_has_a_test() {
    let covered = [
        "ok",
        "spin",
        "hog",
        "crash",
        "recurse",
        "write",
        "read",
        "chatter",
        "now",
        "probe",
        "lie",
        "instance-calls",
        "mark-memory",
        "scan-memory",
    ];
    let manifest =
        courtyard_registry::PreparedManifest::parse(MISBEHAVE.manifest).expect("manifest");
    for op in manifest.manifest().operations.keys() {
        assert!(
            covered.contains(&op.as_str()),
            "fixture operation {op} has no test"
        );
    }
}

async fn instance_calls(rt: &Runtime, community: &str) -> u64 {
    ok(rt, community, "misbehave", "instance-calls", json!({}))
        .await
        .output["calls"]
        .as_u64()
        .expect("calls")
}

/// misbehave's manifest allows 3 calls per instance: an instance counts its calls in
/// linear memory, so the count shows which instance served a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reusable_instance_serves_one_community_until_its_limit_or_a_trap() {
    let (rt, _dir) = fresh(limits());
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(instance_calls(&rt, "nanhu").await);
    }
    assert_eq!(seen, [1, 2, 3, 1], "three calls, then a fresh instance");
    assert_eq!(
        instance_calls(&rt, "sunjia").await,
        1,
        "never across communities"
    );
    assert_eq!(instance_calls(&rt, "nanhu").await, 2);

    // A plugin error leaves the instance sound: it is kept.
    let e = fail(
        &rt,
        "nanhu",
        "misbehave",
        "write",
        json!({"key": "k", "value": "v", "fail": "conflict"}),
    )
    .await;
    assert!(
        matches!(
            e,
            InvokeError::Plugin {
                kind: PluginErrorKind::Conflict,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        instance_calls(&rt, "nanhu").await,
        1,
        "the failed call was the third"
    );
    // A trap or a limit hit discards it.
    fail(&rt, "nanhu", "misbehave", "crash", json!({})).await;
    assert_eq!(instance_calls(&rt, "nanhu").await, 1, "after a trap");
    fail(&rt, "nanhu", "misbehave", "spin", json!({})).await;
    assert_eq!(instance_calls(&rt, "nanhu").await, 1, "after a timeout");
    fail(&rt, "nanhu", "misbehave", "hog", json!({})).await;
    assert_eq!(
        instance_calls(&rt, "nanhu").await,
        1,
        "after the memory cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_still_gets_its_deadline_and_logs_per_call() {
    let (rt, _dir) = fresh(limits());
    assert_eq!(instance_calls(&rt, "nanhu").await, 1);
    // The second call on the same instance: only its own output is in its logs.
    let first = ok(&rt, "nanhu", "misbehave", "chatter", json!({})).await;
    let second = ok(&rt, "nanhu", "misbehave", "chatter", json!({})).await;
    assert_eq!(first.logs.len(), second.logs.len(), "{:?}", second.logs);
    assert_eq!(first.logs, second.logs);
    // A fresh deadline on every call of a reused instance.
    assert_eq!(instance_calls(&rt, "sunjia").await, 1);
    assert!(matches!(
        fail(&rt, "sunjia", "misbehave", "spin", json!({})).await,
        InvokeError::Timeout { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_warm_instances_means_a_fresh_instance_per_call() {
    let (rt, _dir) = fresh(Limits {
        max_warm_instances: 0,
        ..limits()
    });
    for _ in 0..3 {
        assert_eq!(instance_calls(&rt, "nanhu").await, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_least_recently_used_warm_instance_makes_room() {
    let (rt, _dir) = fresh(Limits {
        max_warm_instances: 2,
        ..limits()
    });
    assert_eq!(instance_calls(&rt, "nanhu").await, 1);
    assert_eq!(instance_calls(&rt, "sunjia").await, 1);
    assert_eq!(
        instance_calls(&rt, "nanhu").await,
        2,
        "nanhu's instance is warm"
    );
    assert_eq!(
        instance_calls(&rt, "beigong-east").await,
        1,
        "evicts sunjia's, the older"
    );
    assert_eq!(
        instance_calls(&rt, "sunjia").await,
        1,
        "sunjia's was evicted"
    );
    assert_eq!(instance_calls(&rt, "beigong-east").await, 2);
}

/// A caller that stops waiting (a workflow step's timeout, a client that hangs up)
/// does not free the call's slot while the call still runs.
#[tokio::test(flavor = "current_thread")]
async fn an_abandoned_call_keeps_its_slot_until_it_ends() {
    // One slot, and no warm instances: the pool has room for one instance only.
    let (rt, _dir) = fresh(Limits {
        max_concurrency: 1,
        max_warm_instances: 0,
        ..limits()
    });
    let spin = rt.invoke(call("nanhu", "misbehave", "spin", json!({})));
    assert!(
        tokio::time::timeout(Duration::from_millis(20), spin)
            .await
            .is_err()
    );
    // The spinning call holds the only slot until its deadline; this one waits for it
    // instead of failing to get an instance.
    let out = ok(
        &rt,
        "nanhu",
        "counter",
        "increment",
        json!({ "name": "after" }),
    )
    .await;
    assert_eq!(out.output["value"], 1);
}

/// Fair sharing: a call queued behind a spinning call of its own namespace waits
/// without blocking a thread and gives up at the queue deadline (`Busy`), without
/// having run; another community is served at once meanwhile; a caller's own timeout
/// fires on time while its call waits for its turn (it leaves the queue: the next
/// caller is not stuck behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_queued_behind_its_namespace_gives_up_at_its_deadline_while_others_run() {
    let (rt, _dir) = fresh(Limits {
        timeout: Duration::from_secs(2),
        max_queue_wait: Duration::from_millis(300),
        ..limits()
    });
    let spinning = spin_in_background(&rt, "nanhu");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let queued = fail(&rt, "nanhu", "misbehave", "ok", json!({})).await;
    let waited = started.elapsed();
    assert!(
        matches!(queued, InvokeError::Busy { ref community, .. } if community == "nanhu"),
        "{queued}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(1500),
        "gave up after {waited:?}"
    );
    // Another community's call of the same plugin runs at once.
    let out = ok(&rt, "sunjia", "misbehave", "ok", json!({})).await;
    assert_eq!(out.output["ok"], true);
    // A caller's timeout fires on time while its call waits behind the spin.
    let started = Instant::now();
    let timed_out = tokio::time::timeout(
        Duration::from_millis(50),
        rt.invoke(call("nanhu", "misbehave", "ok", json!({}))),
    )
    .await;
    assert!(timed_out.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let err = spinning.await.expect("task").expect_err("spin times out");
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err}");
}

/// Fair sharing: one community holds at most its share of the slots; a call beyond it
/// waits (here: gives up), while another community still gets a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_community_holds_at_most_its_share_of_the_slots() {
    let (rt, _dir) = fresh(Limits {
        timeout: Duration::from_secs(2),
        max_concurrency: 4,
        max_concurrency_per_community: 1,
        max_queue_wait: Duration::from_millis(300),
        max_warm_instances: 0,
        ..limits()
    });
    let spinning = spin_in_background(&rt, "nanhu");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another plugin (another namespace) of the same community: its share is taken.
    let err = fail(&rt, "nanhu", "counter", "increment", json!({ "name": "x" })).await;
    assert!(matches!(err, InvokeError::Busy { .. }), "{err}");
    ok(
        &rt,
        "sunjia",
        "counter",
        "increment",
        json!({ "name": "x" }),
    )
    .await;
    let err = spinning.await.expect("task").expect_err("spin times out");
    assert!(matches!(err, InvokeError::Timeout { .. }), "{err}");
}
