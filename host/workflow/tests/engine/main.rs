//! The workflow engine over the real runtime (wasmtime, components built from
//! `plugins/`), a real sled store on a temporary directory, and an injected clock:
//! schedules, delays and timeouts are tested by moving the clock, never by sleeping.

use courtyard_plugin_artifacts::{Artifact, MISBEHAVE, STANDARD};
use courtyard_registry::{EventKind, Package};
use courtyard_runtime::{Clock, Invocation, Runtime, RuntimeConfig};
use courtyard_store::SledStore;
use courtyard_tenancy::{District, SeedPlugin, Tenancy};
use courtyard_workflow::compile::{Format, parse};
use courtyard_workflow::engine::{RunQuery, RunRecord, RunStatus, RunTrigger, StepStatus};
use courtyard_workflow::{Engine, EngineConfig, WorkflowError, WorkflowName};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

mod examples;

/// 2026-11-28T00:00:00Z: 08:00 in Asia/Shanghai.
const T0: i64 = 1_795_824_000_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

#[derive(Debug)]
struct ManualClock(AtomicI64);

impl ManualClock {
    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn shared_cache() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")
}

struct Host {
    engine: Engine,
    runtime: Runtime,
    clock: Arc<ManualClock>,
}

/// Opens the store in `dir`. A host dropped just before may still be letting go of it
/// (its last tasks end a moment after the engine settles), so a lock is waited for.
fn open_store(dir: &Path) -> SledStore {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open(&dir.join("store")) {
            Ok(store) => return store,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("open sled: {e}"),
        }
    }
}

fn host_at(dir: &Path, clock: Arc<ManualClock>, config: EngineConfig) -> Host {
    let store = Arc::new(open_store(dir));
    let runtime = Runtime::new(
        RuntimeConfig {
            cache_dir: Some(shared_cache()),
            clock: clock.clone(),
            ..RuntimeConfig::default()
        },
        store.clone(),
    )
    .expect("runtime");
    // The district's standard plugins (counter among them), and a misbehaving fixture.
    for artifact in STANDARD.iter().copied().chain([MISBEHAVE]) {
        runtime.load(&package(artifact)).expect("load");
    }
    // The district's records, seeded from its file; no admission gate is set, so every
    // plugin runs everywhere (the API's tests cover the gate).
    let district = District::reference().expect("district");
    let tenancy =
        Tenancy::open(store.clone(), &district, &SeedPlugin::all_of(&runtime)).expect("tenancy");
    let engine = Engine::open(runtime.clone(), store, Arc::new(tenancy), config).expect("engine");
    engine.resume().expect("resume");
    Host {
        engine,
        runtime,
        clock,
    }
}

fn host(dir: &Path) -> Host {
    host_at(
        dir,
        Arc::new(ManualClock(AtomicI64::new(T0))),
        EngineConfig::default(),
    )
}

fn package(artifact: Artifact) -> Package {
    Package::new(artifact.manifest, artifact.component.to_vec()).expect("valid package")
}

fn name(n: &str) -> WorkflowName {
    WorkflowName::new(n).expect("name")
}

async fn apply(h: &Host, community: &str, wf: &str, yaml: &str) {
    let doc = parse(yaml, Format::Yaml).unwrap_or_else(|p| panic!("{wf}: {p}"));
    h.engine
        .apply(community, &name(wf), doc)
        .await
        .unwrap_or_else(|e| panic!("{wf}: {e}"));
}

async fn post(h: &Host, community: &str, kind: &str, payload: Value) {
    h.engine
        .ingest(
            community,
            &EventKind::new(kind).expect("kind"),
            payload,
            None,
        )
        .await
        .expect("ingest");
}

async fn counter(h: &Host, community: &str, name: &str) -> i64 {
    let result = h
        .runtime
        .invoke(Invocation {
            community: community.into(),
            plugin: "counter".into(),
            operation: "get".into(),
            input: json!({ "name": name }),
            idempotency_key: None,
            request_id: "test".into(),
            config: None,
            depth: 0,
            chain: None,
        })
        .await;
    match result {
        Ok(out) => out.output["value"].as_i64().expect("a value"),
        Err(courtyard_runtime::InvokeError::Plugin {
            kind: courtyard_runtime::PluginErrorKind::NotFound,
            ..
        }) => 0,
        Err(e) => panic!("counter/get: {e}"),
    }
}

async fn settle(h: &Host) {
    tokio::time::timeout(Duration::from_secs(60), h.engine.settle())
        .await
        .expect("the engine settles");
}

fn runs(h: &Host, community: &str, workflow: &str) -> Vec<RunRecord> {
    let mut runs = h
        .engine
        .runs(
            community,
            &RunQuery {
                workflow: Some(workflow.into()),
                limit: 200,
                ..RunQuery::default()
            },
        )
        .expect("runs");
    runs.reverse();
    runs
}

const COUNT_CAMERA: &str = r#"
version: 1
trigger:
  event:
    kind: camera.object-thrown
    when: trigger.payload.floor >= 3
steps:
  - id: count
    call:
      plugin: counter
      operation: increment
      input:
        name: "thrown-${{ trigger.payload.building }}"
        by: "${{ trigger.payload.floor }}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_starts_a_run_whose_step_reads_the_trigger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(&h, "nanhu", "count-camera", COUNT_CAMERA).await;
    post(
        &h,
        "nanhu",
        "camera.object-thrown",
        json!({"building": "b3", "floor": 7}),
    )
    .await;
    post(
        &h,
        "nanhu",
        "camera.object-thrown",
        json!({"building": "b3", "floor": 2}),
    )
    .await;
    post(
        &h,
        "sunjia",
        "camera.object-thrown",
        json!({"building": "b3", "floor": 9}),
    )
    .await;
    settle(&h).await;

    let runs = runs(&h, "nanhu", "count-camera");
    assert_eq!(runs.len(), 1, "the floor-2 event does not satisfy `when`");
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(
        matches!(&run.trigger, RunTrigger::Event { kind, .. } if kind == "camera.object-thrown")
    );
    assert_eq!(run.steps.len(), 1);
    assert_eq!(run.steps[0].status, StepStatus::Succeeded);
    assert_eq!(run.steps[0].attempts, 1);
    assert_eq!(
        run.steps[0].input,
        Some(json!({"name": "thrown-b3", "by": 7}))
    );
    assert_eq!(
        run.steps[0].output,
        Some(json!({"name": "thrown-b3", "value": 7}))
    );
    assert_eq!(counter(&h, "nanhu", "thrown-b3").await, 7);
    assert_eq!(
        counter(&h, "sunjia", "thrown-b3").await,
        0,
        "sunjia has no such workflow"
    );
    assert_eq!(h.engine.run("nanhu", &run.id).expect("run"), *run);
    assert!(matches!(
        h.engine.run("sunjia", &run.id),
        Err(WorkflowError::RunNotFound { .. })
    ));
}

const VISIT: &str = r#"
version: 1
trigger:
  event: { kind: visit.registered }
steps:
  - id: owner
    wait_for:
      event: visit.confirmed
      match: event.payload.visit == trigger.payload.visit
      timeout: 30m
    on_timeout: expired
  - id: pass
    call: { plugin: counter, operation: increment, input: { name: passes } }
    next: end
  - id: expired
    call: { plugin: counter, operation: increment, input: { name: expired } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_takes_its_own_event_or_times_out_into_its_branch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(&h, "nanhu", "visit", VISIT).await;
    post(&h, "nanhu", "visit.registered", json!({"visit": 1})).await;
    post(&h, "nanhu", "visit.registered", json!({"visit": 2})).await;
    settle(&h).await;
    let waiting = runs(&h, "nanhu", "visit");
    assert!(
        waiting.iter().all(|r| r.status == RunStatus::Waiting),
        "{waiting:#?}"
    );

    h.clock.advance(10 * MINUTE);
    post(&h, "nanhu", "visit.confirmed", json!({"visit": 1})).await;
    settle(&h).await;
    let runs_now = runs(&h, "nanhu", "visit");
    assert_eq!(runs_now[0].status, RunStatus::Succeeded);
    assert_eq!(
        runs_now[0]
            .steps
            .iter()
            .map(|s| (s.id.as_str(), s.status))
            .collect::<Vec<_>>(),
        [
            ("owner", StepStatus::Succeeded),
            ("pass", StepStatus::Succeeded)
        ]
    );
    assert_eq!(
        runs_now[0].steps[0].output.as_ref().map(|e| &e["payload"]),
        Some(&json!({"visit": 1}))
    );
    assert_eq!(
        runs_now[1].status,
        RunStatus::Waiting,
        "visit 2 is not confirmed"
    );

    // Just before the timeout nothing happens; after it, the timeout branch runs.
    h.clock.advance(20 * MINUTE - 1);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    assert_eq!(runs(&h, "nanhu", "visit")[1].status, RunStatus::Waiting);
    h.clock.advance(1);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    let run = &runs(&h, "nanhu", "visit")[1];
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        run.steps
            .iter()
            .map(|s| (s.id.as_str(), s.status))
            .collect::<Vec<_>>(),
        [
            ("owner", StepStatus::TimedOut),
            ("expired", StepStatus::Succeeded)
        ]
    );
    assert_eq!(counter(&h, "nanhu", "passes").await, 1);
    assert_eq!(counter(&h, "nanhu", "expired").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_came_before_the_wait_began_still_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(
        &h,
        "nanhu",
        "late-wait",
        r#"
version: 1
trigger: { event: { kind: order.placed } }
steps:
  - id: pause
    delay: 5m
  - id: paid
    wait_for: { event: order.paid, match: "event.payload.order == trigger.payload.order", timeout: 1h }
"#,
    )
    .await;
    post(&h, "nanhu", "order.paid", json!({"order": "o-1"})).await; // before the run: not seen
    post(&h, "nanhu", "order.placed", json!({"order": "o-1"})).await;
    post(&h, "nanhu", "order.paid", json!({"order": "o-1"})).await; // during the delay
    settle(&h).await;
    h.clock.advance(5 * MINUTE);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    let run = &runs(&h, "nanhu", "late-wait")[0];
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let RunTrigger::Event {
        seq: trigger_seq, ..
    } = run.trigger
    else {
        panic!("an event run")
    };
    let got = run.steps[1]
        .output
        .as_ref()
        .and_then(|e| e["seq"].as_u64())
        .expect("seq");
    assert!(
        got > trigger_seq,
        "the wait took the payment after the order, not the earlier one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_fires_at_the_right_instants_in_its_time_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(
        &h,
        "nanhu",
        "nightly",
        r#"
version: 1
trigger: { cron: { schedule: "0 2 * * *", time_zone: Asia/Shanghai } }
steps:
  - id: count
    call: { plugin: counter, operation: increment, input: { name: nightly } }
"#,
    )
    .await;
    // Hourly at minute 30 in Kathmandu (UTC+05:45), with seconds.
    apply(
        &h,
        "nanhu",
        "kathmandu",
        r#"
version: 1
trigger: { cron: { schedule: "0 30 * * * *", time_zone: Asia/Kathmandu } }
steps:
  - id: count
    call: { plugin: counter, operation: increment, input: { name: kathmandu } }
"#,
    )
    .await;
    let listed = h.engine.workflows("nanhu").expect("list");
    let nightly = listed.iter().find(|w| w.name == "nightly").expect("listed");
    // 02:00 in Shanghai on 2026-11-29 is 18:00 UTC on 2026-11-28.
    assert_eq!(nightly.next_fire_ms, Some(T0 + 18 * HOUR));

    h.clock.set(T0 + 18 * HOUR - 1);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    assert!(runs(&h, "nanhu", "nightly").is_empty());

    h.clock.set(T0 + 18 * HOUR);
    h.engine.tick().await.expect("tick");
    h.engine
        .tick()
        .await
        .expect("a second tick at the same instant");
    settle(&h).await;
    let fired = runs(&h, "nanhu", "nightly");
    assert_eq!(fired.len(), 1);
    assert_eq!(
        fired[0].trigger,
        RunTrigger::Cron {
            scheduled_ms: T0 + 18 * HOUR,
            catch_up: false
        }
    );
    assert_eq!(fired[0].status, RunStatus::Succeeded);
    // Kathmandu's minute 30 is UTC minute 45: 00:45 … 17:45 is 18 fires, coalesced
    // into one catch-up run because the clock jumped 18 hours at once.
    let kathmandu = runs(&h, "nanhu", "kathmandu");
    assert_eq!(kathmandu.len(), 1);
    assert_eq!(
        kathmandu[0].trigger,
        RunTrigger::Cron {
            scheduled_ms: T0 + 17 * HOUR + 45 * MINUTE,
            catch_up: true
        }
    );
    h.clock.set(T0 + 18 * HOUR + 45 * MINUTE);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    let kathmandu = runs(&h, "nanhu", "kathmandu");
    assert_eq!(kathmandu.len(), 2);
    assert_eq!(
        kathmandu[1].trigger,
        RunTrigger::Cron {
            scheduled_ms: T0 + 18 * HOUR + 45 * MINUTE,
            catch_up: false
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_missed_while_the_host_was_down_follow_the_missed_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
    {
        let h = host_at(dir.path(), clock.clone(), EngineConfig::default());
        for (wf, missed) in [("once", "run_once"), ("skip", "skip")] {
            apply(
                &h,
                "nanhu",
                wf,
                &format!(
                    "version: 1\ntrigger: {{ cron: {{ schedule: '0 2 * * *', missed: {missed} }} }}\nsteps:\n  - {{ id: count, call: {{ plugin: counter, operation: increment, input: {{ name: {wf} }} }} }}\n"
                ),
            )
            .await;
        }
    }
    // Down for three days: three 02:00 fires were missed.
    clock.set(T0 + 3 * 24 * HOUR);
    let h = host_at(dir.path(), clock, EngineConfig::default());
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    let once = runs(&h, "nanhu", "once");
    assert_eq!(once.len(), 1, "three missed fires, one catch-up run");
    assert_eq!(
        once[0].trigger,
        RunTrigger::Cron {
            scheduled_ms: T0 + 2 * 24 * HOUR + 18 * HOUR,
            catch_up: true
        }
    );
    assert!(runs(&h, "nanhu", "skip").is_empty());
    // The next fire is on time for both.
    h.clock.set(T0 + 3 * 24 * HOUR + 18 * HOUR);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    assert_eq!(runs(&h, "nanhu", "once").len(), 2);
    assert_eq!(runs(&h, "nanhu", "skip").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_run_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
    let id = {
        let h = host_at(dir.path(), clock.clone(), EngineConfig::default());
        apply(
            &h,
            "nanhu",
            "later",
            r#"
version: 1
trigger: { manual: {} }
steps:
  - id: first
    call: { plugin: counter, operation: increment, input: { name: "${{ trigger.input.name }}" } }
  - id: pause
    delay: 2h
  - id: second
    call: { plugin: counter, operation: increment, input: { name: "${{ steps.first.output.name }}" } }
"#,
        )
        .await;
        let run = h
            .engine
            .start_run("nanhu", "later", json!({"name": "later"}))
            .await
            .expect("start");
        settle(&h).await;
        let run = h.engine.run("nanhu", &run.id).expect("run");
        assert_eq!(run.status, RunStatus::Waiting);
        run.id
    };
    clock.advance(2 * HOUR);
    let h = host_at(dir.path(), clock, EngineConfig::default());
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    let run = h.engine.run("nanhu", &id).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(counter(&h, "nanhu", "later").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_and_the_error_branch_catches_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(
        &h,
        "nanhu",
        "flaky",
        r#"
version: 1
trigger: { manual: {} }
steps:
  - id: write
    call:
      plugin: misbehave
      operation: write
      input: { key: k, value: v, fail: "${{ trigger.input.fail }}" }
      retry: { max_attempts: 3, backoff: 10ms }
    on_error: recover
  - id: never
    call: { plugin: counter, operation: increment, input: { name: never } }
  - id: recover
    call: { plugin: counter, operation: increment, input: { name: "${{ steps.write.error.kind }}" } }
"#,
    )
    .await;
    for fail in ["unavailable", "conflict"] {
        h.engine
            .start_run("nanhu", "flaky", json!({"fail": fail}))
            .await
            .expect("start");
    }
    settle(&h).await;
    let runs = runs(&h, "nanhu", "flaky");
    let attempts: Vec<(String, u32)> = runs
        .iter()
        .map(|r| {
            let e = r.steps[0].error.as_ref().expect("an error");
            (e.kind.clone(), r.steps[0].attempts)
        })
        .collect();
    assert_eq!(
        attempts,
        [("unavailable".into(), 3), ("conflict".into(), 1)]
    );
    for run in &runs {
        assert_eq!(run.status, RunStatus::Succeeded, "the error branch ran");
        assert_eq!(
            run.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["write", "recover"]
        );
    }
    assert_eq!(counter(&h, "nanhu", "unavailable").await, 1);
    assert_eq!(counter(&h, "nanhu", "conflict").await, 1);
    assert_eq!(counter(&h, "nanhu", "never").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_events_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host_at(
        dir.path(),
        Arc::new(ManualClock(AtomicI64::new(T0))),
        EngineConfig {
            max_event_depth: 3,
            ..EngineConfig::default()
        },
    );
    // Each run writes with `emit`, which emits the event that triggers the workflow.
    apply(
        &h,
        "nanhu",
        "echo",
        r#"
version: 1
trigger: { event: { kind: misbehave.wrote } }
steps:
  - id: again
    call: { plugin: misbehave, operation: write, input: { key: "${{ run.id }}", value: x, emit: true } }
  - id: count
    call: { plugin: counter, operation: increment, input: { name: echoes } }
"#,
    )
    .await;
    h.runtime
        .invoke(Invocation {
            community: "nanhu".into(),
            plugin: "misbehave".into(),
            operation: "write".into(),
            input: json!({"key": "start", "value": "x", "emit": true}),
            idempotency_key: None,
            request_id: "test".into(),
            config: None,
            depth: 0,
            chain: None,
        })
        .await
        .expect("write");
    h.engine.notify_events("nanhu");
    settle(&h).await;
    let runs = runs(&h, "nanhu", "echo");
    assert_eq!(runs.iter().map(|r| r.depth).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(counter(&h, "nanhu", "echoes").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_workflow_starts_no_run_and_a_started_one_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(
        &h,
        "nanhu",
        "slow",
        r#"
version: 1
trigger: { event: { kind: door.opened } }
steps:
  - id: pause
    delay: 1m
  - id: count
    call: { plugin: counter, operation: increment, input: { name: doors } }
"#,
    )
    .await;
    post(&h, "nanhu", "door.opened", json!({})).await;
    settle(&h).await;
    h.engine
        .set_enabled("nanhu", "slow", false)
        .await
        .expect("disable");
    post(&h, "nanhu", "door.opened", json!({})).await;
    settle(&h).await;
    assert!(matches!(
        h.engine.start_run("nanhu", "slow", json!({})).await,
        Err(WorkflowError::Disabled(_))
    ));
    h.clock.advance(MINUTE);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    let runs_now = runs(&h, "nanhu", "slow");
    assert_eq!(runs_now.len(), 1);
    assert_eq!(runs_now[0].status, RunStatus::Succeeded);
    assert_eq!(counter(&h, "nanhu", "doors").await, 1);
    // Switched on again, it does not start runs for the events of its time off.
    h.engine
        .set_enabled("nanhu", "slow", true)
        .await
        .expect("enable");
    settle(&h).await;
    assert_eq!(runs(&h, "nanhu", "slow").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_events_cannot_pose_as_plugins_and_ids_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let kind = |k: &str| EventKind::new(k).expect("kind");
    assert!(matches!(
        h.engine.ingest("nanhu", &kind("counter.threshold-reached"), json!({}), None).await,
        Err(WorkflowError::ReservedKind { plugin, .. }) if plugin == "counter"
    ));
    assert!(matches!(
        h.engine
            .ingest("nanhu", &kind("camera.x"), json!([1]), None)
            .await,
        Err(WorkflowError::InvalidEvent(_))
    ));
    assert!(matches!(
        h.engine
            .ingest("nowhere", &kind("camera.x"), json!({}), None)
            .await,
        Err(WorkflowError::CommunityNotFound(_))
    ));
    let first = h
        .engine
        .ingest(
            "nanhu",
            &kind("camera.x"),
            json!({"a": 1}),
            Some("dev-1".into()),
        )
        .await
        .expect("first");
    assert!(!first.duplicate && first.seq.is_some());
    let again = h
        .engine
        .ingest(
            "nanhu",
            &kind("camera.x"),
            json!({"a": 1}),
            Some("dev-1".into()),
        )
        .await
        .expect("repeat");
    assert!(again.duplicate);
    assert!(matches!(
        h.engine
            .ingest(
                "nanhu",
                &kind("camera.x"),
                json!({"a": 2}),
                Some("dev-1".into())
            )
            .await,
        Err(WorkflowError::EventIdConflict(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_documents_are_refused_with_paths_and_nothing_is_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let doc = parse(
        "version: 1\ntrigger: {manual: {}}\nsteps:\n  - {id: a, call: {plugin: countr, operation: increment}}\n  - {id: b, call: {plugin: counter, operation: explode}}\n",
        Format::Yaml,
    )
    .expect("well-formed");
    let Err(WorkflowError::Invalid(problems)) = h.engine.apply("nanhu", &name("bad"), doc).await
    else {
        panic!("refused")
    };
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            r#"steps[0].call.plugin: unknown plugin "countr"; did you mean "counter"?"#,
            r#"steps[1].call.operation: plugin counter has no operation "explode""#,
        ]
    );
    assert!(matches!(
        h.engine.workflow("nanhu", "bad"),
        Err(WorkflowError::WorkflowNotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_and_reapplied_workflow_does_not_rewrite_the_document_old_runs_follow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let doc = |name: &str| {
        format!(
            "version: 1\ntrigger: {{ manual: {{}} }}\nsteps:\n  - {{ id: pause, delay: 1h }}\n  - {{ id: count, call: {{ plugin: counter, operation: increment, input: {{ name: {name} }} }} }}\n"
        )
    };
    apply(&h, "nanhu", "w", &doc("old")).await;
    h.engine
        .start_run("nanhu", "w", json!({}))
        .await
        .expect("start");
    settle(&h).await;
    h.engine.remove("nanhu", "w").await.expect("remove");
    apply(&h, "nanhu", "w", &doc("new")).await;
    assert_eq!(
        h.engine.workflow("nanhu", "w").expect("applied").revision,
        2
    );
    h.clock.advance(HOUR);
    h.engine.tick().await.expect("tick");
    settle(&h).await;
    assert_eq!(
        counter(&h, "nanhu", "old").await,
        1,
        "the old run follows its own document"
    );
    assert_eq!(counter(&h, "nanhu", "new").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_second_schedule_after_two_days_down_catches_up_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(
        &h,
        "nanhu",
        "often",
        "version: 1\ntrigger: { cron: { schedule: '* * * * * *', time_zone: UTC } }\nsteps:\n  - { id: count, call: { plugin: counter, operation: increment, input: { name: often } } }\n",
    )
    .await;
    h.clock.advance(2 * 24 * HOUR + 500);
    tokio::time::timeout(Duration::from_secs(10), h.engine.tick())
        .await
        .expect("the catch-up is computed, not counted")
        .expect("tick");
    h.engine
        .tick()
        .await
        .expect("a second tick at the same instant");
    settle(&h).await;
    let runs = runs(&h, "nanhu", "often");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        runs[0].trigger,
        RunTrigger::Cron {
            scheduled_ms: T0 + 2 * 24 * HOUR,
            catch_up: true
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_sees_only_events_after_the_run_started_and_after_the_previous_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    apply(
        &h,
        "nanhu",
        "two-waits",
        "version: 1\ntrigger: { manual: {} }\nsteps:\n  - { id: first, wait_for: { event: door.opened, timeout: 1h } }\n  - { id: second, wait_for: { event: door.opened, timeout: 1h } }\n",
    )
    .await;
    post(&h, "nanhu", "door.opened", json!({"n": 0})).await; // before the run
    let run = h
        .engine
        .start_run("nanhu", "two-waits", json!({}))
        .await
        .expect("start");
    settle(&h).await;
    let now = h.engine.run("nanhu", &run.id).expect("run");
    assert_eq!(
        (now.status, now.current),
        (RunStatus::Waiting, Some(0)),
        "{now:#?}"
    );
    post(&h, "nanhu", "door.opened", json!({"n": 1})).await;
    settle(&h).await;
    let now = h.engine.run("nanhu", &run.id).expect("run");
    assert_eq!(
        (now.status, now.current),
        (RunStatus::Waiting, Some(1)),
        "one event ends one wait: {now:#?}"
    );
    post(&h, "nanhu", "door.opened", json!({"n": 2})).await;
    settle(&h).await;
    let now = h.engine.run("nanhu", &run.id).expect("run");
    assert_eq!(now.status, RunStatus::Succeeded);
    let got: Vec<Value> = now
        .steps
        .iter()
        .map(|s| s.output.as_ref().expect("event")["payload"]["n"].clone())
        .collect();
    assert_eq!(got, [json!(1), json!(2)]);
}

/// A call step that had begun when the host died is repeated with the input it was
/// given then (and the same idempotency key), not with a re-rendered one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_resumed_after_a_crash_repeats_its_recorded_input() {
    use courtyard_store::{Batch, Namespace, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
    let id = {
        let h = host_at(dir.path(), clock.clone(), EngineConfig::default());
        apply(
            &h,
            "nanhu",
            "named",
            "version: 1\ntrigger: { manual: {} }\nsteps:\n  - { id: count, when: 'run.now_ms < 1795824000001', call: { plugin: counter, operation: increment, input: { name: \"${{ 'at-' + string(run.now_ms) }}\" } } }\n",
        )
        .await;
        let run = h
            .engine
            .start_run("nanhu", "named", json!({}))
            .await
            .expect("start");
        settle(&h).await;
        run.id
    };
    // Rewind the run to "the call had started, with its input recorded" — what the
    // store holds when the host dies during the call.
    {
        let store = open_store(dir.path());
        let ns = Namespace::new("nanhu", "$workflows");
        let mut run: RunRecord = serde_json::from_slice(
            &store
                .get(&ns, &format!("run/{id}"))
                .expect("get")
                .expect("run"),
        )
        .expect("json");
        assert_eq!(
            run.steps[0].input,
            Some(json!({"name": format!("at-{T0}")}))
        );
        run.status = RunStatus::Running;
        run.current = Some(0);
        run.finished_ms = None;
        run.steps[0].status = StepStatus::Running;
        run.steps[0].output = None;
        run.steps[0].attempts = 0;
        let mut b = Batch::default();
        let writes = b.writes.entry(ns).or_default();
        writes.insert(
            format!("run/{id}"),
            Some(serde_json::to_vec(&run).expect("json")),
        );
        writes.insert(format!("open/{id}"), Some(b"null".to_vec()));
        store.commit(b).expect("commit");
        store.sync().expect("sync");
    }
    // Later: `when` would now be false and the input would render differently.
    clock.advance(MINUTE);
    let h = host_at(dir.path(), clock, EngineConfig::default());
    settle(&h).await;
    let run = h.engine.run("nanhu", &id).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.steps.len(), 1);
    assert_eq!(run.steps[0].status, StepStatus::Succeeded);
    assert_eq!(
        run.steps[0].input,
        Some(json!({"name": format!("at-{T0}")}))
    );
    // The counter plugin replays the key: still one increment.
    assert_eq!(counter(&h, "nanhu", &format!("at-{T0}")).await, 1);
    assert_eq!(
        counter(&h, "nanhu", &format!("at-{}", T0 + MINUTE)).await,
        0
    );
}

/// Depth alone bounds how long a chain is, not how wide: a workflow that emits its own
/// trigger three times would start 3⁸ runs. The chain's run budget stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_events_starts_at_most_its_budget_of_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host_at(
        dir.path(),
        Arc::new(ManualClock(AtomicI64::new(T0))),
        EngineConfig {
            max_runs_per_chain: 20,
            ..EngineConfig::default()
        },
    );
    apply(
        &h,
        "nanhu",
        "fan-out",
        "version: 1\ntrigger: { event: { kind: loop.tick } }\nsteps:\n  - { id: a, emit: { kind: loop.tick } }\n  - { id: b, emit: { kind: loop.tick } }\n  - { id: c, emit: { kind: loop.tick } }\n",
    )
    .await;
    post(&h, "nanhu", "loop.tick", json!({})).await;
    settle(&h).await;
    let runs = runs(&h, "nanhu", "fan-out");
    assert_eq!(runs.len(), 20);
    let chains: std::collections::BTreeSet<Option<u64>> = runs.iter().map(|r| r.chain).collect();
    assert_eq!(chains.len(), 1, "one chain: {chains:?}");
    // Another device event is another chain, with a budget of its own.
    post(&h, "nanhu", "loop.tick", json!({})).await;
    settle(&h).await;
    assert_eq!(self::runs(&h, "nanhu", "fan-out").len(), 40);
}
