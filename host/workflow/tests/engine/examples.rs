//! The example workflows of `workflows/` at the repository root, each applied to a
//! community of a host with the standard plugins and driven through its scenario
//! with the manual clock: devices post events, staff and residents call plugin
//! operations (`runtime.invoke`, as their apps do through the API), and every wait
//! is taken both ways (answered in time, timed out). The assertions look at the
//! runs, the events the runs emit and the plugins' state.

use super::*;
use StepStatus::{Failed, Skipped, Succeeded, TimedOut, Waiting};
use courtyard_runtime::{EmittedEvent, InvokeError, PluginErrorKind};
use courtyard_workflow::engine::StepRecord;
use std::collections::BTreeSet;
use std::path::PathBuf;

const DAY: i64 = 24 * HOUR;

/// One file of `workflows/`.
struct Example {
    /// The workflow's name: the file's stem.
    name: &'static str,
    /// The document.
    yaml: String,
}

fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

/// Reads `workflows/<name>.yaml`. The tests below get their workflow only through
/// this function, called with the name as a literal: the coverage test finds the
/// names in this file's source.
fn example(name: &'static str) -> Example {
    let path = workflows_dir().join(format!("{name}.yaml"));
    let yaml = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Example { name, yaml }
}

async fn apply_example(h: &Host, community: &str, example: &Example) {
    apply(h, community, example.name, &example.yaml).await;
}

fn invocation(community: &str, plugin: &str, operation: &str, input: Value) -> Invocation {
    Invocation {
        community: community.into(),
        plugin: plugin.into(),
        operation: operation.into(),
        input,
        idempotency_key: None,
        request_id: format!("test/{plugin}/{operation}"),
        config: None,
        depth: 0,
        chain: None,
    }
}

/// A plugin call by a person or a device (as through the API); it must succeed.
async fn call(h: &Host, community: &str, plugin: &str, operation: &str, input: Value) -> Value {
    h.runtime
        .invoke(invocation(community, plugin, operation, input))
        .await
        .unwrap_or_else(|e| panic!("{plugin} {operation}: {e}"))
        .output
}

/// A plugin call that must fail.
async fn call_err(
    h: &Host,
    community: &str,
    plugin: &str,
    operation: &str,
    input: Value,
) -> InvokeError {
    match h
        .runtime
        .invoke(invocation(community, plugin, operation, input))
        .await
    {
        Ok(out) => panic!("{plugin} {operation} succeeded: {}", out.output),
        Err(e) => e,
    }
}

/// The events of `kind` in the community's stream, oldest first.
fn emitted(h: &Host, community: &str, kind: &str) -> Vec<EmittedEvent> {
    h.runtime
        .events(community, None, 100_000)
        .expect("read the stream")
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.kind == kind)
        .collect()
}

/// The payloads of the events of `kind` that the workflow emitted.
fn emitted_by(h: &Host, community: &str, workflow: &str, kind: &str) -> Vec<Value> {
    let events = emitted(h, community, kind);
    for e in &events {
        assert_eq!(e.source, format!("workflow:{workflow}"), "{e:?}");
    }
    events.into_iter().map(|e| e.payload).collect()
}

fn trail(run: &RunRecord) -> Vec<(&str, StepStatus)> {
    run.steps
        .iter()
        .map(|s| (s.id.as_str(), s.status))
        .collect()
}

fn step<'a>(run: &'a RunRecord, id: &str) -> &'a StepRecord {
    run.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:#?}"))
}

fn output<'a>(run: &'a RunRecord, id: &str) -> &'a Value {
    step(run, id)
        .output
        .as_ref()
        .unwrap_or_else(|| panic!("step {id} has no output: {run:#?}"))
}

/// The payload of the event that started the run.
fn trigger_payload(run: &RunRecord) -> &Value {
    match &run.trigger {
        RunTrigger::Event { payload, .. } => payload,
        other => panic!("not an event run: {other:?}"),
    }
}

/// The runs of an event-triggered workflow, one per `key`, in that order: each
/// started by the event whose payload has that `field`.
fn runs_by(
    h: &Host,
    community: &str,
    workflow: &str,
    field: &str,
    keys: &[&str],
) -> Vec<RunRecord> {
    let all = runs(h, community, workflow);
    assert_eq!(all.len(), keys.len(), "{all:#?}");
    keys.iter()
        .map(|key| {
            all.iter()
                .find(|r| trigger_payload(r)[field] == *key)
                .unwrap_or_else(|| panic!("no run for {field} {key}: {all:#?}"))
                .clone()
        })
        .collect()
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
        .to_owned()
}

async fn tick_and_settle(h: &Host) {
    h.engine.tick().await.expect("tick");
    settle(h).await;
}

#[test]
fn every_example_workflow_has_a_test() {
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(workflows_dir()).expect("workflows/ exists") {
        let path = entry.expect("entry").path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .expect("a UTF-8 name")
            .to_owned();
        let stem = file.strip_suffix(".yaml").unwrap_or_else(|| {
            panic!("workflows/{file}: only <workflow-name>.yaml files belong there")
        });
        WorkflowName::new(stem).unwrap_or_else(|e| panic!("workflows/{file}: {e}"));
        let yaml = std::fs::read_to_string(&path).expect("read");
        assert!(
            yaml.starts_with("# "),
            "workflows/{file} starts with a comment block saying what it does"
        );
        parse(&yaml, Format::Yaml).unwrap_or_else(|p| panic!("workflows/{file}: {p}"));
        on_disk.insert(stem.to_owned());
    }
    assert!(!on_disk.is_empty(), "workflows/ has examples");

    let source = include_str!("examples.rs");
    let needle = concat!("example", "(\"");
    let tested: BTreeSet<String> = source
        .match_indices(needle)
        .map(|(at, _)| {
            let rest = &source[at + needle.len()..];
            rest[..rest.find('"').expect("a closing quote")].to_owned()
        })
        .collect();
    let untested: Vec<_> = on_disk.difference(&tested).collect();
    let missing: Vec<_> = tested.difference(&on_disk).collect();
    assert!(
        untested.is_empty() && missing.is_empty(),
        "workflows without a test: {untested:?}; tested names without a file: {missing:?}"
    );
}

/// The cells of a Markdown table row, trimmed, with `\|` read as `|` and the
/// surrounding backticks of a code cell removed.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().expect("a cell").push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().expect("a cell").push(c),
        }
    }
    cells
        .iter()
        .map(|c| {
            let c = c.trim();
            c.strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .unwrap_or(c)
                .to_owned()
        })
        .collect()
}

/// The body rows of the table between `<!-- {marker}` and `<!-- /{marker} -->`.
fn documented_rows(doc: &str, marker: &str) -> Vec<(String, String)> {
    let start = doc
        .find(&format!("<!-- {marker}"))
        .unwrap_or_else(|| panic!("docs/workflows.md has no {marker} table"));
    let end = doc[start..]
        .find(&format!("<!-- /{marker} -->"))
        .unwrap_or_else(|| panic!("the {marker} table is not closed"));
    let rows: Vec<(String, String)> = doc[start..start + end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|l| {
            let cells = cells(l);
            assert_eq!(cells.len(), 2, "{l}");
            (cells[0].clone(), cells[1].clone())
        })
        .collect();
    assert!(rows.len() >= 5, "the {marker} table has its examples");
    rows
}

#[test]
fn every_documented_expression_gives_its_value() {
    use courtyard_workflow::expr::{Cel, Template, Vars};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/workflows.md");
    let doc = std::fs::read_to_string(&path).expect("docs/workflows.md");
    let context = doc
        .split("<!-- cel-context -->")
        .nth(1)
        .and_then(|rest| rest.split("```json").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("the context block");
    let context: Value = serde_json::from_str(context).expect("the context is JSON");
    let mut vars = Vars::new();
    for (name, value) in context.as_object().expect("an object") {
        vars.set(name, value.clone());
    }

    let mut wrong = Vec::new();
    for (source, expected) in documented_rows(&doc, "cel-examples") {
        let got = Cel::compile(&source).and_then(|cel| cel.eval(&vars));
        let ok = match (expected.as_str(), &got) {
            ("error", got) => got.is_err(),
            (expected, Ok(got)) => {
                serde_json::from_str::<Value>(expected).expect("a JSON value") == *got
            }
            (_, Err(_)) => false,
        };
        if !ok {
            wrong.push(format!("{source}: documented {expected}, got {got:?}"));
        }
    }
    for (template, expected) in documented_rows(&doc, "template-examples") {
        let value: Value = serde_json::from_str(&template).expect("a JSON template");
        let got = Template::compile(&value)
            .map_err(|(path, message)| format!("{path}: {message}"))
            .and_then(|t| t.render(&vars));
        let expected: Value = serde_json::from_str(&expected).expect("a JSON value");
        if got.as_ref() != Ok(&expected) {
            wrong.push(format!("{template}: documented {expected}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/workflows.md is wrong:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------
// thrown-object-alarm

fn throw(window: &str) -> Value {
    json!({
        "camera": "cam-b3-east",
        "building": "3",
        "floor": 15,
        "window": window,
        "household": format!("3-15{window}"),
        "object": "bottle",
    })
}

const THROWN_TITLE: &str = "Object thrown from building 3, floor 15, window 02 (household 3-1502)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrown_object_alarm_ends_when_a_guard_acknowledges_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("thrown-object-alarm");
    apply_example(&h, "nanhu", &wf).await;

    post(&h, "nanhu", "camera.object-thrown", throw("02")).await;
    settle(&h).await;
    let run = runs(&h, "nanhu", wf.name).remove(0);
    assert_eq!(run.status, RunStatus::Waiting, "{run:#?}");
    assert_eq!(
        trail(&run),
        [
            ("raise", Succeeded),
            ("alarm", Succeeded),
            ("alert_guards", Succeeded),
            ("acknowledged", Waiting)
        ]
    );
    assert_eq!(output(&run, "raise")["results"][0]["outcome"], "raised");
    let alarm = text(&output(&run, "alarm")["id"]);
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.staff"),
        [json!({
            "alarm": alarm,
            "severity": "critical",
            "message": THROWN_TITLE,
            "camera": "cam-b3-east",
        })]
    );

    // A second throw from the same window updates the open alarm, and a report
    // without a window fires no rule: those runs skip everything after `ingest`.
    h.clock.advance(MINUTE);
    post(&h, "nanhu", "camera.object-thrown", throw("02")).await;
    post(
        &h,
        "nanhu",
        "camera.object-thrown",
        json!({"camera": "cam-b3-east", "building": "3", "floor": 15}),
    )
    .await;
    settle(&h).await;
    let all = runs(&h, "nanhu", wf.name);
    assert_eq!(all.len(), 3);
    for (run, outcome) in all[1..].iter().zip(["updated", "no-match"]) {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        assert_eq!(output(run, "raise")["results"][0]["outcome"], outcome);
        assert_eq!(run.steps.len(), 6);
        assert!(
            run.steps[1..].iter().all(|s| s.status == Skipped),
            "{run:#?}"
        );
    }
    assert_eq!(emitted(&h, "nanhu", "notify.staff").len(), 1);

    // Three minutes after the throw a guard acknowledges it in the duty app.
    h.clock.advance(2 * MINUTE);
    let acked = call(
        &h,
        "nanhu",
        "alert-rules",
        "acknowledge-alarm",
        json!({"id": alarm, "by": "guard-wang", "note": "on my way to building 3"}),
    )
    .await;
    assert_eq!(acked["state"], "acknowledged");
    settle(&h).await;
    let run = h.engine.run("nanhu", &run.id).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(
        trail(&run),
        [
            ("raise", Succeeded),
            ("alarm", Succeeded),
            ("alert_guards", Succeeded),
            ("acknowledged", Succeeded)
        ]
    );
    let ack = output(&run, "acknowledged");
    assert_eq!(ack["kind"], "alert-rules.alarm-acknowledged");
    assert_eq!(ack["payload"]["acknowledged"]["by"], "guard-wang");

    // The 5 minutes pass: nothing more happens.
    h.clock.advance(5 * MINUTE);
    tick_and_settle(&h).await;
    assert_eq!(h.engine.run("nanhu", &run.id).expect("run"), run);
    assert!(emitted(&h, "nanhu", "notify.escalation").is_empty());
    let now = call(
        &h,
        "nanhu",
        "alert-rules",
        "get-alarm",
        json!({"id": alarm}),
    )
    .await;
    assert_eq!(now["state"], "acknowledged");
    assert_eq!(now["escalated_at_ms"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrown_object_alarm_escalates_when_nobody_acknowledges_within_5_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("thrown-object-alarm");
    apply_example(&h, "nanhu", &wf).await;
    post(&h, "nanhu", "camera.object-thrown", throw("02")).await;
    settle(&h).await;
    let run = runs(&h, "nanhu", wf.name).remove(0);
    let alarm = text(&output(&run, "alarm")["id"]);

    h.clock.advance(5 * MINUTE - 1);
    tick_and_settle(&h).await;
    assert_eq!(
        h.engine.run("nanhu", &run.id).expect("run").status,
        RunStatus::Waiting
    );
    assert!(emitted(&h, "nanhu", "notify.escalation").is_empty());

    h.clock.advance(1);
    tick_and_settle(&h).await;
    let run = h.engine.run("nanhu", &run.id).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(
        trail(&run),
        [
            ("raise", Succeeded),
            ("alarm", Succeeded),
            ("alert_guards", Succeeded),
            ("acknowledged", TimedOut),
            ("escalate", Succeeded),
            ("notify_manager", Succeeded)
        ]
    );
    assert_eq!(
        step(&run, "acknowledged")
            .error
            .as_ref()
            .map(|e| e.kind.as_str()),
        Some("timed-out")
    );
    assert_eq!(
        *output(&run, "escalate"),
        json!({"escalated": [alarm], "more": false})
    );
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.escalation"),
        [json!({
            "alarm": alarm,
            "message": format!("Not acknowledged within 5 minutes: {THROWN_TITLE}"),
            "window": "3-15-02",
            "raised_at_ms": T0,
        })]
    );
    // alert-rules has the alarm escalated, at its due time, and said so once.
    let now = call(
        &h,
        "nanhu",
        "alert-rules",
        "get-alarm",
        json!({"id": alarm}),
    )
    .await;
    assert_eq!(now["state"], "escalated");
    assert_eq!(now["escalated_at_ms"], T0 + 5 * MINUTE);
    let escalated = emitted(&h, "nanhu", "alert-rules.alarm-escalated");
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].payload["id"], alarm.as_str());

    // A late acknowledgement is recorded by alert-rules; the run is over.
    h.clock.advance(MINUTE);
    call(
        &h,
        "nanhu",
        "alert-rules",
        "acknowledge-alarm",
        json!({"id": alarm, "by": "guard-li"}),
    )
    .await;
    settle(&h).await;
    assert_eq!(h.engine.run("nanhu", &run.id).expect("run"), run);
    assert_eq!(runs(&h, "nanhu", wf.name).len(), 1);
}

// ---------------------------------------------------------------------------------
// visitor-confirmation

async fn register_visit(h: &Host, visitor: &str, phone: &str) -> String {
    let visit = call(
        h,
        "nanhu",
        "visitor-access",
        "register-visit",
        json!({
            "visitor_name": visitor,
            "phone": phone,
            "unit": "3-2-501",
            "from_ms": T0 + 2 * HOUR,
            "to_ms": T0 + 6 * HOUR,
            "purpose": "Visiting my grandmother",
        }),
    )
    .await;
    assert_eq!(visit["status"], "pending");
    text(&visit["visit_id"])
}

async fn register_wang_fang(h: &Host) {
    call(
        h,
        "nanhu",
        "visitor-access",
        "register-resident",
        json!({"unit": "3-2-501", "resident_id": "r-wang", "name": "Wang Fang"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_confirmation_sends_the_pass_when_a_resident_confirms_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("visitor-confirmation");
    apply_example(&h, "nanhu", &wf).await;
    register_wang_fang(&h).await;
    let li_wei = register_visit(&h, "Li Wei", "13812345678").await;
    let zhang_min = register_visit(&h, "Zhang Min", "13712345678").await;
    settle(&h).await;

    let started = runs_by(&h, "nanhu", wf.name, "visit_id", &[&li_wei, &zhang_min]);
    for run in &started {
        assert_eq!(run.status, RunStatus::Waiting);
        assert_eq!(
            trail(run),
            [("ask_residents", Succeeded), ("confirmed", Waiting)]
        );
    }
    // The two runs go on side by side: their events come in either order.
    let mut asks = emitted_by(&h, "nanhu", wf.name, "notify.residents");
    asks.sort_by_key(|a| a["visit_id"].as_str().map(str::to_owned));
    assert_eq!(
        asks,
        [
            json!({
                "unit": "3-2-501",
                "visit_id": li_wei,
                "message": "Li Wei (138****5678) asks to visit; confirm or refuse within 30 minutes",
                "purpose": "Visiting my grandmother",
                "from_ms": T0 + 2 * HOUR,
                "to_ms": T0 + 6 * HOUR,
            }),
            json!({
                "unit": "3-2-501",
                "visit_id": zhang_min,
                "message": "Zhang Min (137****5678) asks to visit; confirm or refuse within 30 minutes",
                "purpose": "Visiting my grandmother",
                "from_ms": T0 + 2 * HOUR,
                "to_ms": T0 + 6 * HOUR,
            }),
        ]
    );

    // Ten minutes later Wang Fang confirms Li Wei's visit in the resident app; the
    // plugin issues the pass.
    h.clock.advance(10 * MINUTE);
    let confirmed = call(
        &h,
        "nanhu",
        "visitor-access",
        "confirm-visit",
        json!({"visit_id": li_wei, "resident_id": "r-wang"}),
    )
    .await;
    let pass = text(&confirmed["pass_code"]);
    settle(&h).await;

    let run = h.engine.run("nanhu", &started[0].id).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(
        trail(&run),
        [
            ("ask_residents", Succeeded),
            ("confirmed", Succeeded),
            ("send_pass", Succeeded)
        ]
    );
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.visitor"),
        [json!({
            "visit_id": li_wei,
            "phone": "13812345678",
            "pass_code": pass,
            "valid_from_ms": T0 + 2 * HOUR - 15 * MINUTE,
            "valid_until_ms": T0 + 6 * HOUR,
            "message": format!("Your visit to 3-2-501 is confirmed; show pass {pass} at the gate"),
        })]
    );
    // Zhang Min's run is not woken by Li Wei's confirmation.
    let other = h.engine.run("nanhu", &started[1].id).expect("run");
    assert_eq!(other.status, RunStatus::Waiting);
    let visit = call(
        &h,
        "nanhu",
        "visitor-access",
        "get-visit",
        json!({"visit_id": li_wei}),
    )
    .await;
    assert_eq!(visit["status"], "confirmed");
    assert_eq!(visit["pass_code"], pass.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_confirmation_cancels_a_visit_nobody_answers_within_30_minutes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("visitor-confirmation");
    apply_example(&h, "nanhu", &wf).await;
    register_wang_fang(&h).await;
    let zhang_min = register_visit(&h, "Zhang Min", "13712345678").await;
    let sun_hao = register_visit(&h, "Sun Hao", "13612345678").await;
    settle(&h).await;

    // Wang Fang refuses Sun Hao's visit, and never answers Zhang Min.
    h.clock.advance(5 * MINUTE);
    call(
        &h,
        "nanhu",
        "visitor-access",
        "refuse-visit",
        json!({"visit_id": sun_hao, "resident_id": "r-wang", "note": "We are not at home"}),
    )
    .await;
    settle(&h).await;
    h.clock.advance(25 * MINUTE - 1);
    tick_and_settle(&h).await;
    let started = runs_by(&h, "nanhu", wf.name, "visit_id", &[&zhang_min, &sun_hao]);
    assert!(
        started.iter().all(|r| r.status == RunStatus::Waiting),
        "{started:#?}"
    );

    h.clock.advance(1);
    tick_and_settle(&h).await;
    let unanswered = h.engine.run("nanhu", &started[0].id).expect("run");
    assert_eq!(unanswered.status, RunStatus::Succeeded, "{unanswered:#?}");
    assert_eq!(
        trail(&unanswered),
        [
            ("ask_residents", Succeeded),
            ("confirmed", TimedOut),
            ("check_visit", Succeeded),
            ("cancel_unanswered", Succeeded),
            ("tell_visitor", Succeeded)
        ]
    );
    let visit = call(
        &h,
        "nanhu",
        "visitor-access",
        "get-visit",
        json!({"visit_id": zhang_min}),
    )
    .await;
    assert_eq!(visit["status"], "cancelled");
    assert_eq!(visit["cancelled_by"], "staff:visitor-desk");
    assert_eq!(
        visit["note"],
        "No resident confirmed the visit within 30 minutes"
    );
    let cancelled = emitted(&h, "nanhu", "visitor-access.visit-cancelled");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].payload["visit_id"], zhang_min.as_str());
    assert_eq!(cancelled[0].payload["was"], "pending");
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.visitor"),
        [json!({
            "visit_id": zhang_min,
            "phone": "13712345678",
            "message": "Nobody at 3-2-501 confirmed your visit in time; please register again",
        })]
    );

    // The refused visit is left as it is.
    let refused = h.engine.run("nanhu", &started[1].id).expect("run");
    assert_eq!(refused.status, RunStatus::Succeeded, "{refused:#?}");
    assert_eq!(
        trail(&refused),
        [
            ("ask_residents", Succeeded),
            ("confirmed", TimedOut),
            ("check_visit", Succeeded),
            ("cancel_unanswered", Skipped),
            ("tell_visitor", Skipped)
        ]
    );
    assert_eq!(output(&refused, "check_visit")["status"], "refused");

    // A confirmation after the cancellation is refused: no pass for Zhang Min.
    let late = call_err(
        &h,
        "nanhu",
        "visitor-access",
        "confirm-visit",
        json!({"visit_id": zhang_min, "resident_id": "r-wang"}),
    )
    .await;
    assert!(
        matches!(
            late,
            InvokeError::Plugin {
                kind: PluginErrorKind::Conflict,
                ..
            }
        ),
        "{late}"
    );
}

// ---------------------------------------------------------------------------------
// nightly-bookshelf

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nightly_bookshelf_runs_at_2am_in_shanghai_and_catches_up_once_after_downtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock(AtomicI64::new(T0)));
    let wf = example("nightly-bookshelf");
    let loan = {
        let h = host_at(dir.path(), clock.clone(), EngineConfig::default());
        apply_example(&h, "nanhu", &wf).await;
        // The library's connector syncs a page of the catalogue; staff shelve the
        // copy and register a card; a resident borrows the book (due in 30 days).
        call(
            &h,
            "nanhu",
            "library-sync",
            "sync",
            json!({
                "cursor": null,
                "changes": [{"copy_id": "BK-0001", "revision": 1, "status": "active",
                             "title": "Camel Xiangzi", "author": "Lao She"}],
                "next_cursor": "feed-0001",
            }),
        )
        .await;
        call(
            &h,
            "nanhu",
            "library-sync",
            "place",
            json!({"copy_id": "BK-0001", "slot": 1}),
        )
        .await;
        call(
            &h,
            "nanhu",
            "library-sync",
            "register-card",
            json!({"card": "RC-1001", "unit": "3-502"}),
        )
        .await;
        let borrowed = call(
            &h,
            "nanhu",
            "library-sync",
            "borrow",
            json!({"copy_id": "BK-0001", "card": "RC-1001"}),
        )
        .await;
        assert_eq!(borrowed["loan"]["due_ms"], T0 + 30 * DAY);

        // 08:00 in Shanghai now; the next 02:00 there is 18:00 UTC.
        let listed = h.engine.workflows("nanhu").expect("list");
        assert_eq!(listed[0].name, wf.name);
        assert_eq!(listed[0].next_fire_ms, Some(T0 + 18 * HOUR));
        clock.set(T0 + 18 * HOUR - 1);
        tick_and_settle(&h).await;
        assert!(runs(&h, "nanhu", wf.name).is_empty());
        clock.set(T0 + 18 * HOUR);
        tick_and_settle(&h).await;
        let fired = runs(&h, "nanhu", wf.name);
        assert_eq!(fired.len(), 1);
        let run = &fired[0];
        assert_eq!(
            run.trigger,
            RunTrigger::Cron {
                scheduled_ms: T0 + 18 * HOUR,
                catch_up: false
            }
        );
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        assert_eq!(
            trail(run),
            [
                ("overdue", Succeeded),
                ("overdue_more", Skipped),
                ("sync_status", Succeeded),
                ("sync_stale", Skipped),
                ("report", Succeeded)
            ]
        );
        assert_eq!(output(run, "overdue")["notified"], 0);
        assert_eq!(output(run, "sync_status")["last_synced_ms"], T0);
        assert_eq!(
            emitted_by(&h, "nanhu", wf.name, "bookshelf.nightly-report"),
            [json!({"overdue_notified": 0, "scheduled_ms": T0 + 18 * HOUR, "catch_up": false})]
        );
        assert!(emitted(&h, "nanhu", "library-sync.overdue").is_empty());
        text(&borrowed["loan"]["loan_id"])
    };

    // The host is down for 39 nights; when it is back, one catch-up run stands for
    // the missed fires. The book is 10 days late, and the catalogue 40 days old.
    clock.set(T0 + 40 * DAY);
    let h = host_at(dir.path(), clock.clone(), EngineConfig::default());
    tick_and_settle(&h).await;
    let all = runs(&h, "nanhu", wf.name);
    assert_eq!(all.len(), 2, "{all:#?}");
    let run = &all[1];
    assert_eq!(
        run.trigger,
        RunTrigger::Cron {
            scheduled_ms: T0 + 39 * DAY + 18 * HOUR,
            catch_up: true
        }
    );
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(
        trail(run),
        [
            ("overdue", Succeeded),
            ("overdue_more", Skipped),
            ("sync_status", Succeeded),
            ("sync_stale", Succeeded),
            ("report", Succeeded)
        ]
    );
    let overdue = emitted(&h, "nanhu", "library-sync.overdue");
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].payload["loan_id"], loan.as_str());
    assert_eq!(overdue[0].payload["card"], "RC-1001");
    assert_eq!(overdue[0].payload["days_overdue"], 10);
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.staff"),
        [json!({
            "team": "library",
            "message": "The bookshelf's catalogue has not been synced with the city library for more than two days",
            "last_synced_ms": T0,
            "cursor": "feed-0001",
        })]
    );
    let reports = emitted_by(&h, "nanhu", wf.name, "bookshelf.nightly-report");
    assert_eq!(
        reports[1],
        json!({"overdue_notified": 1, "scheduled_ms": T0 + 39 * DAY + 18 * HOUR, "catch_up": true})
    );

    // The next night is on time, and the loan is not notified again so soon.
    clock.set(T0 + 40 * DAY + 18 * HOUR);
    tick_and_settle(&h).await;
    let all = runs(&h, "nanhu", wf.name);
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[2].trigger,
        RunTrigger::Cron {
            scheduled_ms: T0 + 40 * DAY + 18 * HOUR,
            catch_up: false
        }
    );
    assert_eq!(output(&all[2], "overdue")["notified"], 0);
    assert_eq!(emitted(&h, "nanhu", "library-sync.overdue").len(), 1);
}

// ---------------------------------------------------------------------------------
// elderly-meal-delivery

const LUNCH: &str = "2026-11-28";

async fn open_the_canteen(h: &Host) {
    call(
        h,
        "nanhu",
        "canteen",
        "set-menu",
        json!({
            "date": LUNCH,
            "slot": "lunch",
            "dishes": [
                {"dish_id": "braised-tofu", "name": "Braised tofu", "price_fen": 800, "cap": 40},
                {"dish_id": "rice", "name": "Rice", "price_fen": 200, "cap": 100},
            ],
        }),
    )
    .await;
    for resident in [
        json!({"resident_id": "r-1001", "name": "Zhang Guiying", "birth_date": "1948-03-15",
               "address": "Building 3, Unit 2, Room 401", "phone": "139 1234 5678"}),
        json!({"resident_id": "r-1002", "name": "Wang Fang", "birth_date": "1990-07-01",
               "address": "Building 5, Unit 1, Room 202"}),
        json!({"resident_id": "r-1003", "name": "Li Shu", "birth_date": "1944-05-20",
               "address": "Building 7, Unit 1, Room 102"}),
        json!({"resident_id": "r-1004", "name": "Chen Jun", "birth_date": "1980-01-01",
               "address": "Building 2, Unit 3, Room 301", "mobility_limited": true}),
    ] {
        call(h, "nanhu", "canteen", "register-resident", resident).await;
    }
}

async fn order(h: &Host, resident: &str, fulfilment: &str) -> String {
    let order = call(
        h,
        "nanhu",
        "canteen",
        "place-order",
        json!({
            "resident_id": resident,
            "date": LUNCH,
            "slot": "lunch",
            "fulfilment": fulfilment,
            "items": [{"dish_id": "braised-tofu", "portions": 1}, {"dish_id": "rice", "portions": 1}],
        }),
    )
    .await;
    text(&order["order_id"])
}

async fn order_state(h: &Host, order_id: &str) -> Value {
    call(
        h,
        "nanhu",
        "canteen",
        "get-order",
        json!({"order_id": order_id}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elderly_meal_delivery_follows_a_delivery_order_until_it_is_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("elderly-meal-delivery");
    apply_example(&h, "nanhu", &wf).await;
    open_the_canteen(&h).await;
    let delivery = order(&h, "r-1001", "delivery").await;
    let pickup = order(&h, "r-1002", "pickup").await;
    settle(&h).await;

    // A pick-up order starts no run.
    let started = runs_by(&h, "nanhu", wf.name, "order_id", &[&delivery]);
    let run = &started[0];
    assert_eq!(run.status, RunStatus::Waiting, "{run:#?}");
    assert_eq!(
        trail(run),
        [
            ("accept", Succeeded),
            ("assign", Succeeded),
            ("tell_courier", Succeeded),
            ("delivered", Waiting)
        ]
    );
    let placed = order_state(&h, &delivery).await;
    assert_eq!(placed["state"], "accepted");
    assert_eq!(placed["courier"], "volunteer-liu");
    let run_id = text(&placed["run_id"]);
    assert_eq!(run_id, "2026-11-28-lunch-run-001");
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.courier"),
        [json!({
            "courier": "volunteer-liu",
            "run_id": run_id,
            "order_id": delivery,
            "meal": "lunch on 2026-11-28",
            "resident": "Zhang Guiying",
            "address": "Building 3, Unit 2, Room 401",
            "phone": "139 1234 5678",
        })]
    );

    // The kitchen cooks, the courier leaves and hands the meal over.
    h.clock.advance(3 * HOUR);
    call(
        &h,
        "nanhu",
        "canteen",
        "mark-ready",
        json!({"order_id": delivery, "actor": "chef-zhou"}),
    )
    .await;
    call(
        &h,
        "nanhu",
        "canteen",
        "start-run",
        json!({"run_id": run_id, "actor": "volunteer-liu"}),
    )
    .await;
    settle(&h).await;
    assert_eq!(
        h.engine.run("nanhu", &run.id).expect("run").status,
        RunStatus::Waiting
    );
    h.clock.advance(20 * MINUTE);
    call(
        &h,
        "nanhu",
        "canteen",
        "mark-delivered",
        json!({"order_id": delivery, "actor": "volunteer-liu"}),
    )
    .await;
    settle(&h).await;

    let run = h.engine.run("nanhu", &run.id).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(
        trail(&run),
        [
            ("accept", Succeeded),
            ("assign", Succeeded),
            ("tell_courier", Succeeded),
            ("delivered", Succeeded),
            ("tell_family", Succeeded)
        ]
    );
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.family"),
        [json!({
            "resident_id": "r-1001",
            "message": "The lunch of 2026-11-28 was delivered by volunteer-liu",
            "delivered_at_ms": T0 + 3 * HOUR + 20 * MINUTE,
        })]
    );
    assert!(emitted(&h, "nanhu", "notify.staff").is_empty());
    assert_eq!(order_state(&h, &delivery).await["state"], "delivered");
    assert_eq!(order_state(&h, &pickup).await["state"], "placed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elderly_meal_delivery_tells_the_staff_about_refused_and_undelivered_orders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("elderly-meal-delivery");
    apply_example(&h, "nanhu", &wf).await;
    open_the_canteen(&h).await;
    // Zhang Guiying cancels her order before the workflow gets to it.
    let cancelled_at_once = order(&h, "r-1001", "delivery").await;
    call(
        &h,
        "nanhu",
        "canteen",
        "cancel-order",
        json!({"order_id": cancelled_at_once, "by": "resident", "reason": "ordered by mistake"}),
    )
    .await;
    let never_delivered = order(&h, "r-1003", "delivery").await;
    let cancelled_later = order(&h, "r-1004", "delivery").await;
    settle(&h).await;

    let started = runs_by(
        &h,
        "nanhu",
        wf.name,
        "order_id",
        &[&cancelled_at_once, &never_delivered, &cancelled_later],
    );
    let refused = &started[0];
    assert_eq!(refused.status, RunStatus::Succeeded, "{refused:#?}");
    assert_eq!(
        trail(refused),
        [("accept", Failed), ("report_problem", Succeeded)]
    );
    let error = step(refused, "accept").error.clone().expect("an error");
    assert_eq!(error.kind, "conflict");
    assert!(error.message.contains("cancelled"), "{}", error.message);
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.staff"),
        [json!({"team": "canteen", "order_id": cancelled_at_once, "message": error.message})]
    );
    for run in &started[1..] {
        assert_eq!(run.status, RunStatus::Waiting, "{run:#?}");
    }

    // The staff cancel Chen Jun's meal once it is on its run (he went to hospital).
    h.clock.advance(HOUR);
    call(
        &h,
        "nanhu",
        "canteen",
        "cancel-order",
        json!({"order_id": cancelled_later, "by": "staff", "reason": "in hospital", "actor": "manager-gao"}),
    )
    .await;
    h.clock.advance(DAY - HOUR - 1);
    tick_and_settle(&h).await;
    for run in &started[1..] {
        let run = h.engine.run("nanhu", &run.id).expect("run");
        assert_eq!(run.status, RunStatus::Waiting, "{run:#?}");
    }

    // A day after the orders, neither was delivered.
    h.clock.advance(1);
    tick_and_settle(&h).await;
    let late = h.engine.run("nanhu", &started[1].id).expect("run");
    assert_eq!(late.status, RunStatus::Succeeded, "{late:#?}");
    assert_eq!(
        trail(&late),
        [
            ("accept", Succeeded),
            ("assign", Succeeded),
            ("tell_courier", Succeeded),
            ("delivered", TimedOut),
            ("check_order", Succeeded),
            ("report_late", Succeeded)
        ]
    );
    let staff = emitted_by(&h, "nanhu", wf.name, "notify.staff");
    assert_eq!(staff.len(), 2);
    assert_eq!(
        staff[1],
        json!({
            "team": "canteen",
            "order_id": never_delivered,
            "state": "accepted",
            "message": format!("Order {never_delivered} for Li Shu is still accepted a day after it was placed"),
        })
    );
    let cancelled = h.engine.run("nanhu", &started[2].id).expect("run");
    assert_eq!(cancelled.status, RunStatus::Succeeded, "{cancelled:#?}");
    assert_eq!(
        trail(&cancelled),
        [
            ("accept", Succeeded),
            ("assign", Succeeded),
            ("tell_courier", Succeeded),
            ("delivered", TimedOut),
            ("check_order", Succeeded),
            ("report_late", Skipped)
        ]
    );
    assert_eq!(output(&cancelled, "check_order")["state"], "cancelled");
}

// ---------------------------------------------------------------------------------
// wristband-alarm

fn band(kind: &str, extra: Value) -> Value {
    let mut payload = json!({"type": kind, "wristband": "wb-0042", "resident": "r-1001"});
    if let (Some(p), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        p.extend(extra);
    }
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wristband_alarm_tells_family_and_staff_and_ends_when_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("wristband-alarm");
    apply_example(&h, "nanhu", &wf).await;

    // A first high reading: the rule wants two within 10 minutes.
    post(
        &h,
        "nanhu",
        "wristband.report",
        band("heart-rate", json!({"bpm": 152})),
    )
    .await;
    // Reports the workflow does not handle start no run.
    post(
        &h,
        "nanhu",
        "wristband.report",
        band("battery", json!({"level": 5})),
    )
    .await;
    post(
        &h,
        "nanhu",
        "wristband.report",
        json!({"wristband": "wb-0042", "bpm": 150}),
    )
    .await;
    settle(&h).await;
    let first = runs(&h, "nanhu", wf.name);
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0].status, RunStatus::Succeeded);
    assert_eq!(output(&first[0], "ingest")["kind"], "wristband.heart-rate");
    assert_eq!(
        output(&first[0], "ingest")["results"][0]["outcome"],
        "pending"
    );
    assert!(first[0].steps[1..].iter().all(|s| s.status == Skipped));

    h.clock.advance(2 * MINUTE);
    post(
        &h,
        "nanhu",
        "wristband.report",
        band("heart-rate", json!({"bpm": 155})),
    )
    .await;
    settle(&h).await;
    let run = runs(&h, "nanhu", wf.name).remove(1);
    assert_eq!(run.status, RunStatus::Waiting, "{run:#?}");
    assert_eq!(
        trail(&run),
        [
            ("ingest", Succeeded),
            ("alarm", Succeeded),
            ("tell_family", Succeeded),
            ("tell_staff", Succeeded),
            ("acknowledged", Waiting)
        ]
    );
    let alarm = output(&run, "alarm");
    assert_eq!(alarm["rule"], "heart-rate-out-of-range");
    assert_eq!(alarm["severity"], "critical");
    let id = text(&alarm["id"]);
    let title = "Heart rate 155 bpm for r-1001 (wristband wb-0042)";
    assert_eq!(alarm["title"], title);
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.family"),
        [json!({"resident": "r-1001", "alarm": id, "message": title})]
    );
    assert_eq!(
        emitted_by(&h, "nanhu", wf.name, "notify.staff"),
        [
            json!({"team": "elderly-care", "resident": "r-1001", "alarm": id,
                "severity": "critical", "message": title})
        ]
    );

    // A nurse acknowledges a minute later.
    h.clock.advance(MINUTE);
    call(
        &h,
        "nanhu",
        "alert-rules",
        "acknowledge-alarm",
        json!({"id": id, "by": "nurse-chen", "note": "calling her now"}),
    )
    .await;
    settle(&h).await;
    let run = h.engine.run("nanhu", &run.id).expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(step(&run, "acknowledged").status, Succeeded);
    assert_eq!(run.steps.len(), 5);
    h.clock.advance(5 * MINUTE);
    tick_and_settle(&h).await;
    assert!(emitted(&h, "nanhu", "notify.escalation").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wristband_alarm_escalates_an_unacknowledged_fall_and_spares_the_family_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let h = host(dir.path());
    let wf = example("wristband-alarm");
    apply_example(&h, "nanhu", &wf).await;
    apply_example(&h, "sunjia", &wf).await;
    // Sunjia's admin made falls a warning.
    let rule = call(
        &h,
        "sunjia",
        "alert-rules",
        "update-rule",
        json!({"id": "wristband-fall", "changes": {"severity": "warning"}}),
    )
    .await;
    assert_eq!(rule["severity"], "warning");

    for community in ["nanhu", "sunjia"] {
        post(&h, community, "wristband.report", band("fall", json!({}))).await;
    }
    settle(&h).await;
    let nanhu = runs(&h, "nanhu", wf.name).remove(0);
    let sunjia = runs(&h, "sunjia", wf.name).remove(0);
    assert_eq!(
        trail(&nanhu),
        [
            ("ingest", Succeeded),
            ("alarm", Succeeded),
            ("tell_family", Succeeded),
            ("tell_staff", Succeeded),
            ("acknowledged", Waiting)
        ]
    );
    assert_eq!(
        trail(&sunjia),
        [
            ("ingest", Succeeded),
            ("alarm", Succeeded),
            ("tell_family", Skipped),
            ("tell_staff", Succeeded),
            ("acknowledged", Waiting)
        ]
    );
    assert!(emitted(&h, "sunjia", "notify.family").is_empty());
    assert_eq!(
        emitted_by(&h, "sunjia", wf.name, "notify.staff")[0]["severity"],
        "warning"
    );
    assert_eq!(emitted_by(&h, "nanhu", wf.name, "notify.family").len(), 1);

    // Nobody acknowledges either within 5 minutes.
    h.clock.advance(5 * MINUTE);
    tick_and_settle(&h).await;
    for (community, run, family) in [("nanhu", &nanhu, Succeeded), ("sunjia", &sunjia, Skipped)] {
        let run = h.engine.run(community, &run.id).expect("run");
        assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
        assert_eq!(
            trail(&run),
            [
                ("ingest", Succeeded),
                ("alarm", Succeeded),
                ("tell_family", family),
                ("tell_staff", Succeeded),
                ("acknowledged", TimedOut),
                ("recheck", Succeeded),
                ("escalate", Succeeded)
            ]
        );
        // Reading the alarm escalated it, as of its rule's 2 minutes.
        let alarm = output(&run, "recheck");
        assert_eq!(alarm["state"], "escalated");
        assert_eq!(alarm["escalated_at_ms"], T0 + 2 * MINUTE);
        let id = text(&alarm["id"]);
        assert_eq!(
            emitted_by(&h, community, wf.name, "notify.escalation"),
            [json!({
                "resident": "r-1001",
                "alarm": id,
                "state": "escalated",
                "message": "Nobody acknowledged within 5 minutes: Fall detected for r-1001 (wristband wb-0042)",
            })]
        );
        let escalated = emitted(&h, community, "alert-rules.alarm-escalated");
        assert_eq!(escalated.len(), 1);
        assert_eq!(escalated[0].payload["id"], id.as_str());
    }
}
