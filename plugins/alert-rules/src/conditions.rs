//! Conditions on the fields of an event's payload: a small declarative list — a field path,
//! an operator and a value — not an expression language.
//!
//! - A field path is dot-separated: `count`, `location.zone`, `objects.0.type` (a numeric
//!   segment indexes an array).
//! - Operators: `eq`, `ne`, `gt`, `gte`, `lt`, `lte`, `in`, `exists`.
//! - Every operator except `exists` needs the field to be present: a missing field (or a
//!   `null`) fails the condition. `exists` with `value: false` holds when the field is missing.
//! - `gt`/`gte`/`lt`/`lte` compare numbers only; `eq`/`ne`/`in` compare JSON values, numbers
//!   by value (`1` equals `1.0`).
//! - A rule's conditions are combined with `all` (every one holds, the default) or `any`
//!   (at least one holds). An empty list always holds.

use courtyard_sdk::{Error, Value};
use serde::{Deserialize, Serialize};

/// The most conditions a rule may have.
pub const MAX_CONDITIONS: usize = 20;
/// The most values an `in` condition may list.
pub const MAX_IN_VALUES: usize = 100;
/// The longest field path.
pub const MAX_PATH: usize = 128;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Exists,
}

impl Op {
    /// The operator as written in a rule.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::In => "in",
            Self::Exists => "exists",
        }
    }
}

/// How a rule combines its conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// Every condition holds.
    #[default]
    All,
    /// At least one condition holds.
    Any,
}

/// One condition: `field` `op` `value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The dot-separated path of a payload field.
    pub field: String,
    /// The operator.
    pub op: Op,
    /// What the field is compared with; for `exists`, whether the field must be present
    /// (`true` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl Condition {
    /// A condition from its parts (for templates and tests).
    pub fn new(field: &str, op: Op, value: Value) -> Self {
        Self {
            field: field.to_owned(),
            op,
            value: Some(value),
        }
    }

    /// Checks that the condition is well formed and fills in `exists`'s default value.
    /// `n` is its 1-based position, for messages.
    pub fn normalise(mut self, n: usize) -> Result<Self, Error> {
        if !is_field_path(&self.field) {
            return Err(Error::invalid_input(format!(
                "condition {n}: field {:?} is not a field path; write dot-separated names of \
                 letters, digits, '_' and '-' such as \"count\" or \"location.zone\"",
                self.field
            )));
        }
        let op = self.op.as_str();
        let value = self.value.take().filter(|v| !v.is_null());
        self.value = Some(match (self.op, value) {
            (Op::Exists, None) => Value::Bool(true),
            (Op::Exists, Some(v @ Value::Bool(_))) => v,
            (Op::Exists, Some(_)) => {
                return Err(Error::invalid_input(format!(
                    "condition {n}: `exists` takes true or false as its value (or none, meaning true)"
                )));
            }
            (Op::Gt | Op::Gte | Op::Lt | Op::Lte, Some(v @ Value::Number(_))) => v,
            (Op::Gt | Op::Gte | Op::Lt | Op::Lte, _) => {
                return Err(Error::invalid_input(format!(
                    "condition {n}: `{op}` compares numbers; give a number as its value"
                )));
            }
            (Op::In, Some(Value::Array(values)))
                if !values.is_empty()
                    && values.len() <= MAX_IN_VALUES
                    && values.iter().all(|v| !v.is_null()) =>
            {
                Value::Array(values)
            }
            (Op::In, _) => {
                return Err(Error::invalid_input(format!(
                    "condition {n}: `in` takes a list of 1 to {MAX_IN_VALUES} values (no null)"
                )));
            }
            (Op::Eq | Op::Ne, Some(v)) => v,
            (Op::Eq | Op::Ne, None) => {
                return Err(Error::invalid_input(format!(
                    "condition {n}: `{op}` needs a value that is not null (use `exists` to test \
                     whether a field is there)"
                )));
            }
        });
        Ok(self)
    }

    /// Whether the condition holds for `payload`; when it does not, why.
    pub fn check(&self, payload: &Value) -> Result<(), String> {
        let expected = self.value.as_ref().unwrap_or(&Value::Bool(true));
        let field = &self.field;
        let op = self.op.as_str();
        let actual = lookup(payload, field);
        if self.op == Op::Exists {
            let want = expected.as_bool().unwrap_or(true);
            return match (actual, want) {
                (Some(_), true) | (None, false) => Ok(()),
                (None, true) => Err(format!("{field} is missing")),
                (Some(v), false) => Err(format!("{field} is present ({})", show(v))),
            };
        }
        let Some(actual) = actual else {
            return Err(format!("{field} is missing"));
        };
        let holds = match self.op {
            Op::Eq => same(actual, expected),
            Op::Ne => !same(actual, expected),
            Op::In => expected
                .as_array()
                .is_some_and(|values| values.iter().any(|v| same(actual, v))),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                let (Some(a), Some(b)) = (actual.as_f64(), expected.as_f64()) else {
                    return Err(format!(
                        "{field} is {}, not a number that `{op}` can compare",
                        show(actual)
                    ));
                };
                match self.op {
                    Op::Gt => a > b,
                    Op::Gte => a >= b,
                    Op::Lt => a < b,
                    _ => a <= b,
                }
            }
            Op::Exists => unreachable!("handled above"),
        };
        if holds {
            Ok(())
        } else {
            Err(format!(
                "{field} is {}, not {op} {}",
                show(actual),
                show(expected)
            ))
        }
    }
}

/// Whether `conditions`, combined with `mode`, hold for `payload`; when they do not, why.
pub fn check_all(conditions: &[Condition], mode: MatchMode, payload: &Value) -> Result<(), String> {
    if conditions.is_empty() {
        return Ok(());
    }
    let mut failures = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        match (condition.check(payload), mode) {
            (Ok(()), MatchMode::Any) => return Ok(()),
            (Ok(()), MatchMode::All) => {}
            (Err(why), MatchMode::All) => return Err(format!("condition {}: {why}", i + 1)),
            (Err(why), MatchMode::Any) => failures.push(format!("condition {}: {why}", i + 1)),
        }
    }
    match mode {
        MatchMode::All => Ok(()),
        MatchMode::Any => Err(format!("no condition holds ({})", failures.join("; "))),
    }
}

/// Checks and normalises a rule's conditions.
pub fn normalise_all(conditions: Vec<Condition>) -> Result<Vec<Condition>, Error> {
    if conditions.len() > MAX_CONDITIONS {
        return Err(Error::invalid_input(format!(
            "a rule has at most {MAX_CONDITIONS} conditions; this one has {}",
            conditions.len()
        )));
    }
    conditions
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.normalise(i + 1))
        .collect()
}

/// Whether `path` is a field path: dot-separated segments of ASCII letters, digits, `_`, `-`.
pub fn is_field_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH
        && path.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// The value at `path` in `payload`; `None` when missing or `null`.
pub fn lookup<'v>(payload: &'v Value, path: &str) -> Option<&'v Value> {
    let mut at = payload;
    for seg in path.split('.') {
        at = match at {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!at.is_null()).then_some(at)
}

/// JSON equality, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// A value for a message, shortened when long.
fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        let short: String = text.chars().take(57).collect();
        format!("{short}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(field: &str, op: Op, value: Value) -> Condition {
        Condition::new(field, op, value)
            .normalise(1)
            .expect("valid")
    }

    fn holds(c: &Condition, payload: Value) -> bool {
        c.check(&payload).is_ok()
    }

    #[test]
    fn eq_compares_json_values_and_numbers_by_value() {
        let c = cond("open", Op::Eq, json!(true));
        assert!(holds(&c, json!({"open": true})));
        assert!(!holds(&c, json!({"open": false})));
        assert!(
            !holds(&c, json!({"open": "true"})),
            "no coercion of strings"
        );
        let n = cond("floor", Op::Eq, json!(15));
        assert!(holds(&n, json!({"floor": 15.0})));
        let s = cond("zone", Op::Eq, json!("north-gate"));
        assert!(holds(&s, json!({"zone": "north-gate"})));
        assert_eq!(
            s.check(&json!({"zone": "south"})),
            Err("zone is \"south\", not eq \"north-gate\"".to_owned())
        );
    }

    #[test]
    fn ne_needs_the_field_and_a_different_value() {
        let c = cond("plate", Op::Ne, json!("UNKNOWN"));
        assert!(holds(&c, json!({"plate": "ZA12345"})));
        assert!(!holds(&c, json!({"plate": "UNKNOWN"})));
        assert_eq!(c.check(&json!({})), Err("plate is missing".to_owned()));
        assert!(!holds(&c, json!({"plate": null})), "null counts as missing");
    }

    #[test]
    fn ordering_operators_compare_numbers() {
        let cases = [
            (Op::Gt, [false, false, true]),
            (Op::Gte, [false, true, true]),
            (Op::Lt, [true, false, false]),
            (Op::Lte, [true, true, false]),
        ];
        for (op, expected) in cases {
            let c = cond("count", op, json!(10));
            for (value, want) in [9, 10, 11].into_iter().zip(expected) {
                assert_eq!(holds(&c, json!({ "count": value })), want, "{op:?} {value}");
            }
            assert!(
                holds(&cond("bpm", op, json!(40.5)), json!({"bpm": 40.5}))
                    == matches!(op, Op::Gte | Op::Lte)
            );
            let err = c.check(&json!({"count": "12"})).expect_err("string");
            assert!(err.contains("not a number"), "{err}");
            assert_eq!(c.check(&json!({})), Err("count is missing".to_owned()));
        }
    }

    #[test]
    fn in_matches_any_listed_value() {
        let c = cond("object", Op::In, json!(["vehicle", "tricycle", 3]));
        assert!(holds(&c, json!({"object": "tricycle"})));
        assert!(holds(&c, json!({"object": 3.0})));
        assert!(!holds(&c, json!({"object": "person"})));
        assert!(!holds(&c, json!({})));
    }

    #[test]
    fn exists_tests_presence_both_ways() {
        let present = Condition {
            field: "household".into(),
            op: Op::Exists,
            value: None,
        }
        .normalise(1)
        .expect("valid");
        assert_eq!(present.value, Some(json!(true)), "defaults to true");
        assert!(holds(&present, json!({"household": "3-1502"})));
        assert!(holds(&present, json!({"household": 0})));
        assert!(!holds(&present, json!({"household": null})));
        assert!(!holds(&present, json!({})));
        let absent = cond("error", Op::Exists, json!(false));
        assert!(holds(&absent, json!({})));
        assert_eq!(
            absent.check(&json!({"error": "lens"})),
            Err("error is present (\"lens\")".to_owned())
        );
    }

    #[test]
    fn paths_reach_nested_objects_and_arrays() {
        let payload = json!({"location": {"zone": "b2"}, "objects": [{"type": "bottle"}]});
        assert_eq!(lookup(&payload, "location.zone"), Some(&json!("b2")));
        assert_eq!(lookup(&payload, "objects.0.type"), Some(&json!("bottle")));
        assert_eq!(lookup(&payload, "objects.1.type"), None);
        assert_eq!(lookup(&payload, "objects.x"), None);
        assert_eq!(lookup(&payload, "location.zone.deeper"), None);
        assert!(is_field_path("a.b_c.d-9"));
        for bad in ["", ".a", "a.", "a..b", "a b", "a/b", &"a".repeat(129)] {
            assert!(!is_field_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn all_and_any_combine_conditions() {
        let conds = vec![
            cond("bpm", Op::Lt, json!(40)),
            cond("bpm", Op::Gt, json!(130)),
        ];
        assert!(check_all(&conds, MatchMode::Any, &json!({"bpm": 35})).is_ok());
        assert!(check_all(&conds, MatchMode::Any, &json!({"bpm": 150})).is_ok());
        let err = check_all(&conds, MatchMode::Any, &json!({"bpm": 72})).expect_err("normal");
        assert_eq!(
            err,
            "no condition holds (condition 1: bpm is 72, not lt 40; condition 2: bpm is 72, not gt 130)"
        );
        let both = vec![
            cond("count", Op::Gte, json!(10)),
            cond("zone", Op::Exists, json!(true)),
        ];
        assert!(check_all(&both, MatchMode::All, &json!({"count": 12, "zone": "a"})).is_ok());
        assert_eq!(
            check_all(&both, MatchMode::All, &json!({"count": 12})),
            Err("condition 2: zone is missing".to_owned())
        );
        assert!(check_all(&[], MatchMode::All, &json!({})).is_ok());
        assert!(check_all(&[], MatchMode::Any, &json!({})).is_ok());
    }

    #[test]
    fn malformed_conditions_are_refused_with_a_fix() {
        let bad = [
            (
                Condition::new("count", Op::Gt, json!("10")),
                "compares numbers",
            ),
            (
                Condition {
                    field: "count".into(),
                    op: Op::Lt,
                    value: None,
                },
                "compares numbers",
            ),
            (Condition::new("zone", Op::In, json!([])), "list of 1 to"),
            (Condition::new("zone", Op::In, json!("a")), "list of 1 to"),
            (
                Condition::new("zone", Op::In, json!(["a", null])),
                "no null",
            ),
            (
                Condition::new("zone", Op::Exists, json!("yes")),
                "true or false",
            ),
            (
                Condition {
                    field: "zone".into(),
                    op: Op::Eq,
                    value: None,
                },
                "needs a value",
            ),
            (Condition::new("zone", Op::Ne, Value::Null), "needs a value"),
            (
                Condition::new("zone..x", Op::Eq, json!(1)),
                "not a field path",
            ),
        ];
        for (c, needle) in bad {
            match c.clone().normalise(3) {
                Err(Error::InvalidInput(m)) => {
                    assert!(
                        m.contains(needle) && m.starts_with("condition 3"),
                        "{c:?}: {m}"
                    )
                }
                other => panic!("{c:?} gave {other:?}"),
            }
        }
        let many = vec![Condition::new("a", Op::Eq, json!(1)); MAX_CONDITIONS + 1];
        assert!(matches!(normalise_all(many), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn long_values_are_shortened_in_reasons() {
        let c = cond("note", Op::Eq, json!("x"));
        let err = c
            .check(&json!({"note": "y".repeat(100)}))
            .expect_err("differs");
        assert!(err.contains("..."), "{err}");
    }
}
