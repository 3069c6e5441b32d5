//! The worked example of `docs/plugins/library-sync.md`, run natively through the
//! dispatcher at two different "now"s by the SDK's runner (the end-to-end test runs it
//! against a real host with the real clock). Steps that the host's input schema refuses
//! before the plugin runs (their expected body has `details`) are skipped here.

use super::*;
use courtyard_sdk::testing::{doc_steps, run_doc_example};

const PAGE: &str = include_str!("../../../../docs/plugins/library-sync.md");

/// The text of the code block that opens at (1-based) `line` of the page.
fn block_at(line: usize) -> String {
    PAGE.lines()
        .skip(line)
        .take_while(|l| !l.trim_start().starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_at(start_ms: i64) {
    let steps = doc_steps(PAGE);
    assert!((8..=20).contains(&steps.len()), "{} steps", steps.len());
    for step in &steps {
        let line = step.line;
        assert_eq!(
            (step.community.as_str(), step.plugin.as_str()),
            ("nanhu", "library-sync"),
            "line {line}"
        );
        assert!(
            block_at(line).contains("-H 'Content-Type: application/json'"),
            "line {line}"
        );
        assert!(!step.input.is_null(), "line {line}: no -d");
    }
    let by_schema = steps.iter().filter(|s| s.refused_by_schema()).count();
    let mut w = World::new();
    let mut by_plugin = 0;
    let ran = run_doc_example(PAGE, start_ms, |ctx, input| {
        w.now = ctx.now_ms;
        let result = w.op_keyed(&ctx.operation, ctx.idempotency_key.as_deref(), input);
        by_plugin += usize::from(result.is_err());
        result
    });
    assert_eq!(ran, steps.len() - by_schema);
    assert!(
        by_schema + by_plugin >= 2,
        "the example shows at least two refusals"
    );
}

#[test]
fn the_worked_example_runs_as_written_in_2026() {
    run_at(T0);
}

#[test]
fn the_worked_example_runs_as_written_in_2035() {
    // 2035-03-15 09:30 UTC.
    run_at(2_057_563_800_000);
}
