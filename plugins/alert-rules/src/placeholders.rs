//! Text templates filled from payload fields: a rule's dedupe key (`"{camera}:{window}"`,
//! `"{plate}:{zone}"`) and its alarm title (`"Crowd of {count} at {zone}"`).
//!
//! `{path}` is replaced by the payload field at that dot-separated path (strings as they are,
//! numbers and booleans as JSON writes them, except that a whole number is written without a
//! fraction: `15.0` fills in as `15`, like `15`); `{{` and `}}` are literal braces.
//!
//! A dedupe key is filled strictly: every field it names must be present with a string,
//! number or boolean, or the event does not match the rule (the ingest result says which
//! field is missing). A title is filled leniently: a missing field shows as `?`, and a title
//! longer than [`MAX_TITLE`] characters is cut there.

use crate::conditions::{is_field_path, lookup};
use courtyard_sdk::Value;

/// The longest template, and the longest filled dedupe key.
pub const MAX_LEN: usize = 200;
/// The longest filled title, in characters (payload fields may be long; the title travels
/// in every alarm event, which the host caps at 64 KiB).
pub const MAX_TITLE: usize = 500;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

impl Template {
    /// Parses `text`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().count() > MAX_LEN {
            return Err(format!("is longer than {MAX_LEN} characters"));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut path = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => path.push(c),
                            None => return Err(format!("has an unclosed {{{path}")),
                        }
                    }
                    if !is_field_path(&path) {
                        return Err(format!(
                            "has {{{path}}}, which is not a field path (write names such as \
                             {{camera}} or {{location.zone}}; {{{{ and }}}} are literal braces)"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(path));
                }
                '}' => return Err("has a lone } (write }} for a literal brace)".to_owned()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// Fills the template; a missing or non-scalar field is an error naming it.
    pub fn fill_strict(&self, payload: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => match lookup(payload, f) {
                    None => return Err(format!("field {f} is missing")),
                    Some(v) => match scalar(v) {
                        Some(text) => out.push_str(&text),
                        None => {
                            return Err(format!("field {f} is not a string, number or boolean"));
                        }
                    },
                },
            }
        }
        if out.chars().count() > MAX_LEN {
            return Err(format!("it is longer than {MAX_LEN} characters"));
        }
        Ok(out)
    }

    /// Fills the template; a missing field shows as `?`, an object or list as JSON. The
    /// result is cut at [`MAX_TITLE`] characters (the last one then being `…`).
    pub fn fill_lenient(&self, payload: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => match lookup(payload, f) {
                    None => out.push('?'),
                    Some(v) => out.push_str(&scalar(v).unwrap_or_else(|| v.to_string())),
                },
            }
            if out.len() > MAX_TITLE * 4 {
                break; // already longer than MAX_TITLE characters
            }
        }
        if let Some((cut, _)) = out.char_indices().nth(MAX_TITLE) {
            out.truncate(cut);
            out.pop();
            out.push('…');
        }
        out
    }
}

/// The largest magnitude below which every whole `f64` is exactly an `i64` (2^53).
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => match n.as_f64() {
            // 15.0 is the number 15: the same incident as `"floor": 15`.
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < EXACT_F64 => {
                Some((f as i64).to_string())
            }
            _ => Some(n.to_string()),
        },
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_fields_from_the_payload() {
        let t = Template::parse("{plate}:{zone}").expect("valid");
        assert_eq!(
            t.fill_strict(&json!({"plate": "ZA12345", "zone": "north-gate"})),
            Ok("ZA12345:north-gate".to_owned())
        );
        let nested = Template::parse("{building}-{floor}-{w.n}").expect("valid");
        assert_eq!(
            nested.fill_strict(&json!({"building": "3", "floor": 15, "w": {"n": true}})),
            Ok("3-15-true".to_owned())
        );
    }

    #[test]
    fn whole_numbers_fill_in_without_a_fraction() {
        let t = Template::parse("{building}-{floor}").expect("valid");
        for floor in [json!(15), json!(15.0), json!(15_u64)] {
            assert_eq!(
                t.fill_strict(&json!({"building": "3", "floor": floor})),
                Ok("3-15".to_owned()),
                "{floor}"
            );
        }
        for (n, text) in [
            (json!(-0.0), "0"),
            (json!(-7.0), "-7"),
            (json!(15.5), "15.5"),
            (json!(1e300), "1e+300"),
            (json!(u64::MAX), "18446744073709551615"),
        ] {
            assert_eq!(
                Template::parse("{n}")
                    .expect("valid")
                    .fill_strict(&json!({ "n": n })),
                Ok(text.to_owned()),
                "{n}"
            );
        }
        assert_eq!(
            Template::parse("floor {f}")
                .expect("valid")
                .fill_lenient(&json!({"f": 15.0})),
            "floor 15"
        );
    }

    #[test]
    fn long_titles_are_cut() {
        let t = Template::parse(&"{a}".repeat(60)).expect("valid");
        let title = t.fill_lenient(&json!({"a": "北".repeat(10_000)}));
        assert_eq!(title.chars().count(), MAX_TITLE);
        assert!(title.ends_with("北…"));
        let exact = Template::parse("{a}").expect("valid");
        let fits = "x".repeat(MAX_TITLE);
        assert_eq!(exact.fill_lenient(&json!({ "a": fits })), fits);
    }

    #[test]
    fn strict_filling_names_the_missing_field() {
        let t = Template::parse("{camera}:{window}").expect("valid");
        assert_eq!(
            t.fill_strict(&json!({"camera": "c1"})),
            Err("field window is missing".to_owned())
        );
        assert_eq!(
            t.fill_strict(&json!({"camera": "c1", "window": {"n": 2}})),
            Err("field window is not a string, number or boolean".to_owned())
        );
        let long = Template::parse("{a}").expect("valid");
        assert!(long.fill_strict(&json!({"a": "x".repeat(201)})).is_err());
    }

    #[test]
    fn lenient_filling_shows_question_marks() {
        let t = Template::parse("Crowd of {count} at {zone}").expect("valid");
        assert_eq!(t.fill_lenient(&json!({"count": 14})), "Crowd of 14 at ?");
        assert_eq!(
            Template::parse("{a}")
                .expect("valid")
                .fill_lenient(&json!({"a": [1]})),
            "[1]"
        );
    }

    #[test]
    fn braces_escape_and_constants_work() {
        let t = Template::parse("{{literal}} {x}}}").expect("valid");
        assert_eq!(
            t.fill_strict(&json!({"x": 1})),
            Ok("{literal} 1}".to_owned())
        );
        assert_eq!(
            Template::parse("all")
                .expect("valid")
                .fill_strict(&json!({})),
            Ok("all".to_owned())
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        for (bad, needle) in [
            ("{camera", "unclosed"),
            ("{}", "not a field path"),
            ("{a b}", "not a field path"),
            ("x}", "lone }"),
        ] {
            let err = Template::parse(bad).expect_err(bad);
            assert!(err.contains(needle), "{bad}: {err}");
        }
        assert!(Template::parse(&"x".repeat(201)).is_err());
    }
}
