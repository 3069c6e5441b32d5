//! The audit trail: every gate check, allowed or denied, kept for `retention_days`,
//! listed a page at a time, by gate or by visit.

use crate::keys;
use crate::passes::DenyReason;
use crate::store::{Session, Store, page, page_size};
use courtyard_sdk::{Error, Value};
use serde::{Deserialize, Serialize};

/// How a visitor was identified at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// A face reference from the gate's camera.
    Face,
    /// A pass code, typed or scanned.
    PassCode,
}

/// What the gate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Let the visitor in.
    Allow,
    /// Kept the gate shut.
    Deny,
}

/// One gate check, as kept in the audit trail and returned by `gate-check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `c0000000042`.
    pub check_id: String,
    /// When.
    pub at_ms: i64,
    /// Which gate.
    pub gate_id: String,
    /// Face or pass code.
    pub method: Method,
    /// The face reference (canonical form), or the pass code as normalised
    /// (`(malformed)` when it could not be one; [`crate::gate::REFUSED_FACE`] for image
    /// data, which is never kept).
    pub credential: String,
    /// Allow or deny.
    pub decision: Decision,
    /// Why not (`null` when allowed).
    pub reason: Option<DenyReason>,
    /// For the gate's screen and the guard.
    pub message: String,
    /// The visit the credential matched, if any.
    pub visit_id: Option<String>,
    /// Its unit.
    pub unit: Option<String>,
    /// Its visitor.
    pub visitor_name: Option<String>,
    /// Until when the pass opens the gate (when allowed).
    pub valid_until_ms: Option<i64>,
}

/// The id for the next check.
pub fn next_id<S: Store>(s: &mut Session<'_, S>) -> Result<String, Error> {
    Ok(keys::check_id(s.next_seq(keys::SEQ_CHECK)?))
}

/// Writes `check` to the trail and to its gate's and visit's indexes.
pub fn record<S: Store>(s: &mut Session<'_, S>, check: &Check) -> Result<(), Error> {
    s.put(&keys::check(&check.check_id), check)?;
    s.put(
        &format!("{}{}", keys::gate_checks(&check.gate_id), check.check_id),
        check,
    )?;
    if let Some(visit) = &check.visit_id {
        s.put(
            &format!("{}{}", keys::visit_checks(visit), check.check_id),
            check,
        )?;
    }
    Ok(())
}

/// `list-checks`' input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Only this visit's checks.
    #[serde(default)]
    pub visit_id: Option<String>,
    /// Only this gate's checks.
    #[serde(default)]
    pub gate_id: Option<String>,
    /// Only allowed or only denied checks.
    #[serde(default)]
    pub decision: Option<Decision>,
    /// The `next` of the previous page (a check id).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `list-checks`' output.
#[derive(Debug, Serialize)]
pub struct ListOutput {
    /// The checks, oldest first.
    pub checks: Vec<Check>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

/// `list-checks`: a page of the trail, oldest first, filtered by visit, gate and
/// decision. The cursor is a check id, whatever the filters.
pub fn list<S: Store>(s: &mut Session<'_, S>, input: ListInput) -> Result<ListOutput, Error> {
    let prefix = match (&input.visit_id, &input.gate_id) {
        (Some(visit), _) => keys::visit_checks(visit),
        (None, Some(gate)) => keys::gate_checks(gate),
        (None, None) => keys::CHECKS.to_owned(),
    };
    let limit = page_size(input.limit);
    let gate = input.gate_id.clone();
    let decision = input.decision;
    let page = page(
        s,
        &prefix,
        input.after.as_deref(),
        limit,
        |_, _, value: Value| {
            let check: Check = serde_json::from_value(value)
                .map_err(|e| Error::internal(format!("bad check record: {e}")))?;
            let keep = gate.as_ref().is_none_or(|g| *g == check.gate_id)
                && decision.is_none_or(|d| d == check.decision);
            Ok(keep.then_some(check))
        },
    )?;
    Ok(ListOutput {
        checks: page.items,
        next: page.next,
    })
}

/// Removes up to `budget` checks made at or before `before_ms`, oldest first. Returns how many
/// went and whether older ones remain.
pub fn purge<S: Store>(
    s: &mut Session<'_, S>,
    before_ms: i64,
    budget: usize,
) -> Result<(usize, bool), Error> {
    let batch = s.scan(keys::CHECKS, None, budget as u32 + 1)?;
    let mut purged = 0;
    for (key, value) in batch {
        let check: Check = serde_json::from_value(value)
            .map_err(|e| Error::internal(format!("bad check record {key:?}: {e}")))?;
        // Check ids grow with time, so the first recent one ends the purge.
        if check.at_ms > before_ms {
            return Ok((purged, false));
        }
        if purged == budget {
            return Ok((purged, true));
        }
        s.delete(&key)?;
        s.delete(&format!(
            "{}{}",
            keys::gate_checks(&check.gate_id),
            check.check_id
        ))?;
        if let Some(visit) = &check.visit_id {
            s.delete(&format!("{}{}", keys::visit_checks(visit), check.check_id))?;
        }
        purged += 1;
    }
    Ok((purged, false))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::tests::session;
    use courtyard_sdk::testing::MemoryStore;
    use serde_json::json;

    pub(crate) fn sample_check() -> Check {
        Check {
            check_id: "c0000000001".into(),
            at_ms: 100,
            gate_id: "east-gate".into(),
            method: Method::Face,
            credential: "tpl-00000001".into(),
            decision: Decision::Deny,
            reason: Some(DenyReason::NoPass),
            message: "waiting".into(),
            visit_id: Some("v00000001".into()),
            unit: Some("3-2-501".into()),
            visitor_name: Some("Li Wei".into()),
            valid_until_ms: None,
        }
    }

    fn seed(s: &mut Session<'_, MemoryStore>) {
        for n in 1..=6u64 {
            let id = next_id(s).expect("id");
            let check = Check {
                check_id: id,
                at_ms: n as i64 * 100,
                gate_id: if n % 2 == 0 { "east-gate" } else { "west-gate" }.into(),
                decision: if n % 3 == 0 {
                    Decision::Allow
                } else {
                    Decision::Deny
                },
                visit_id: (n <= 4).then(|| format!("v0000000{}", n % 2 + 1)),
                ..sample_check()
            };
            record(s, &check).expect("record");
        }
    }

    fn ids(out: &ListOutput) -> Vec<&str> {
        out.checks.iter().map(|c| c.check_id.as_str()).collect()
    }

    /// `list-checks` with `input` as a caller sends it.
    fn listed(s: &mut Session<'_, MemoryStore>, input: Value) -> ListOutput {
        let input =
            serde_json::from_value(input.clone()).unwrap_or_else(|e| panic!("{input}: {e}"));
        list(s, input).expect("list")
    }

    #[test]
    fn lists_filter_by_visit_gate_and_decision() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1000, None);
        seed(&mut s);
        let cases = [
            (
                json!({}),
                &[
                    "c0000000001",
                    "c0000000002",
                    "c0000000003",
                    "c0000000004",
                    "c0000000005",
                    "c0000000006",
                ][..],
            ),
            (
                json!({"gate_id": "east-gate"}),
                &["c0000000002", "c0000000004", "c0000000006"],
            ),
            (
                json!({"visit_id": "v00000001"}),
                &["c0000000002", "c0000000004"],
            ),
            (
                json!({"visit_id": "v00000002", "gate_id": "west-gate"}),
                &["c0000000001", "c0000000003"],
            ),
            (
                json!({"decision": "allow"}),
                &["c0000000003", "c0000000006"],
            ),
        ];
        for (input, expected) in cases {
            let out = listed(&mut s, input.clone());
            assert_eq!(ids(&out), expected, "{input}");
            assert_eq!(out.next, None, "{input}");
        }
    }

    #[test]
    fn lists_page() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1000, None);
        seed(&mut s);
        let first = listed(&mut s, json!({"limit": 4}));
        assert_eq!(first.next.as_deref(), Some("c0000000004"));
        let second = listed(&mut s, json!({"limit": 4, "after": first.next}));
        assert_eq!(ids(&second), ["c0000000005", "c0000000006"]);
        assert_eq!(second.next, None);
    }

    #[test]
    fn purge_removes_old_checks_and_their_indexes() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1000, None);
        seed(&mut s);
        assert_eq!(purge(&mut s, 300, 2).expect("purge"), (2, true));
        assert_eq!(purge(&mut s, 300, 2).expect("purge"), (1, false));
        assert_eq!(purge(&mut s, 300, 2).expect("purge"), (0, false));
        let left = listed(&mut s, json!({}));
        assert_eq!(ids(&left), ["c0000000004", "c0000000005", "c0000000006"]);
        let visit = listed(&mut s, json!({"visit_id": "v00000002"}));
        assert!(visit.checks.is_empty(), "index copies went too");
        let gate_keys = store.data.keys().filter(|k| k.starts_with("ag/")).count();
        assert_eq!(gate_keys, 3);
    }
}
