//! Runs the worked example of `docs/plugins/alert-rules.md` through the plugin with the SDK's
//! runner, as the repository's doc test runs it against the host: steps in order, a fresh
//! community with the default config, the real clock (here: two different dates). Refusals
//! by the input schema cannot be run without the host; for those the plugin must refuse as
//! well.

use super::Harness;
use courtyard_sdk::Error;
use courtyard_sdk::testing::{doc_steps, run_doc_example};

const DOC: &str = include_str!("../../../../docs/plugins/alert-rules.md");

fn run_at(now_ms: i64) {
    let steps = doc_steps(DOC);
    assert!(
        (8..=20).contains(&steps.len()),
        "8 to 20 steps, not {}",
        steps.len()
    );
    let refusals = steps
        .iter()
        .filter(|s| s.expected.get("error").is_some())
        .count();
    assert!(refusals >= 2, "at least two refusals");
    // Every step is the same kind of call, with a JSON body.
    for form in [
        "curl -s -X POST localhost:8080/",
        "-H 'Content-Type: application/json'",
    ] {
        assert_eq!(DOC.matches(form).count(), steps.len(), "{form}");
    }

    let mut h = Harness::defaults();
    let ran = run_doc_example(DOC, now_ms, |ctx, input| {
        assert_eq!(
            (ctx.community.as_str(), ctx.plugin.as_str()),
            ("nanhu", "alert-rules"),
            "{}",
            ctx.request_id
        );
        h.invoke(ctx, input)
    });
    let by_schema: Vec<_> = steps.iter().filter(|s| s.refused_by_schema()).collect();
    assert_eq!(ran, steps.len() - by_schema.len());
    // The plugin's own input checks refuse what the schema refuses, whatever the state.
    for step in by_schema {
        let result = h.call_with_key(
            &step.operation,
            step.idempotency_key.as_deref(),
            step.input.clone(),
        );
        assert!(
            matches!(result, Err(Error::InvalidInput(_))),
            "line {} ({}): the schema refuses it; the plugin must too, got {result:?}",
            step.line,
            step.operation
        );
    }
}

#[test]
fn the_worked_example_runs_in_2026() {
    run_at(1_780_000_000_000); // 2026-05-28
}

#[test]
fn the_worked_example_runs_in_2035() {
    run_at(2_065_000_000_000); // 2035-06-10
}
