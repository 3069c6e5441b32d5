//! Runs the worked example of `docs/plugins/visitor-access.md` against the logic, the
//! way the repository's docs test runs it against the host: every step in order, on a
//! fresh state per community, with the default config, at a "now" in 2026 and in 2035.
//! Steps whose expected body is a refusal by the input schema (it has `details`) never
//! reach the plugin, so the SDK's runner skips them.

use crate::config::Config;
use crate::dispatch;
use crate::store::Session;
use courtyard_sdk::testing::{MemoryStore, difference, run_doc_example};
use serde_json::json;
use std::collections::BTreeMap;

/// Runs the worked example from `start_ms`; returns how many steps ran.
fn run_at(example: &str, start_ms: i64) -> usize {
    let mut stores: BTreeMap<String, MemoryStore> = BTreeMap::new();
    run_doc_example(example, start_ms, |ctx, input| {
        assert_eq!(ctx.plugin, "visitor-access", "step {}", ctx.request_id);
        stores
            .entry(ctx.community.clone())
            .or_default()
            .call(|store| {
                let mut s = Session::new(
                    store,
                    ctx.now_ms,
                    Config::default(),
                    ctx.community.clone(),
                    ctx.idempotency_key.clone(),
                );
                dispatch(&mut s, &ctx.operation, input)
            })
    })
}

#[test]
fn the_worked_example_runs_in_2026_and_2035() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/plugins/visitor-access.md"
    );
    let doc = std::fs::read_to_string(path).expect("the doc page");
    let example = &doc[doc.find("## Worked example").expect("a worked example")..];
    // 2026-06-01T10:00:00Z and 2035-06-01T10:00:00Z.
    for start in [1_780_308_000_000, 2_064_304_800_000] {
        let n = run_at(example, start);
        assert!((8..=20).contains(&n), "8 to 20 steps, found {n}");
    }
}

/// The comparison the runner relies on: `"<any>"` matches anything, extra keys and
/// reordered arrays do not match.
#[test]
fn the_matcher() {
    assert_eq!(difference(&json!({"a": "<any>"}), &json!({"a": [1]})), None);
    assert!(difference(&json!({"a": 1}), &json!({"a": 1, "b": 2})).is_some());
    assert!(difference(&json!([1, 2]), &json!([2, 1])).is_some());
}
