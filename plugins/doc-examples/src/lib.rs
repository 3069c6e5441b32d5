//! The worked examples of Courtyard's plugin doc pages (`docs/plugins/*.md`): a parser of
//! their `curl` steps and a matcher of the expected answers, shared by the host's
//! end-to-end test (which sends them to a real host) and the guest SDK's `testing` module
//! (which runs them natively against a plugin).
//!
//! A step is a ```sh block with one `curl` call of an invoke URL, followed by a ```json
//! block with the expected response body; in it, the string `"<any>"` matches any value.

use serde_json::Value;

/// The first difference between `expected` and `actual`, where the string `"<any>"` in
/// `expected` matches any value; `None` when they match.
pub fn difference(expected: &Value, actual: &Value) -> Option<String> {
    fn walk(expected: &Value, actual: &Value, at: &str) -> Option<String> {
        match (expected, actual) {
            (Value::String(s), _) if s == "<any>" => None,
            (Value::Object(e), Value::Object(a)) => e
                .keys()
                .chain(a.keys().filter(|k| !e.contains_key(*k)))
                .find_map(|k| match (e.get(k), a.get(k)) {
                    (Some(ev), Some(av)) => walk(ev, av, &format!("{at}/{k}")),
                    (Some(ev), None) => Some(format!("{at}/{k}: expected {ev}, missing")),
                    (None, Some(av)) => Some(format!("{at}/{k}: unexpected {av}")),
                    (None, None) => None,
                }),
            (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
                .iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (ev, av))| walk(ev, av, &format!("{at}/{i}"))),
            (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => None,
            _ if expected == actual => None,
            _ => Some(format!("{at}: expected {expected}, got {actual}")),
        }
    }
    walk(expected, actual, "")
}

/// One worked-example step of a doc page: a `curl` call of an operation and the body the
/// host answers (see `docs/integrators.md` for the format).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The line of the `curl` block in the page.
    pub line: usize,
    /// The community in the URL.
    pub community: String,
    /// The plugin in the URL.
    pub plugin: String,
    /// The operation in the URL.
    pub operation: String,
    /// Whether the step sends an `Authorization` header (every documented call does).
    pub authorized: bool,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The `-d` body.
    pub input: Value,
    /// The expected response body.
    pub expected: Value,
}

impl Step {
    /// Whether the host refuses this step by the input schema, before the plugin runs
    /// (its expected error has `details`): only a host can check it.
    pub fn refused_by_schema(&self) -> bool {
        self.expected.pointer("/error/details").is_some()
    }
}

/// The words of a shell command line in the restricted form of the examples: words
/// separated by blanks, `'…'` and `"…"` quoting (no escapes, no expansion), `\` line
/// continuations.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // The quote that opened the current quoted part (' or "), if any.
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        let quoted = quote.is_some();
        match c {
            '\'' | '"' if quote.is_none_or(|q| q == c) => {
                quote = if quoted { None } else { Some(c) };
                in_word = true;
            }
            '\\' if !quoted && chars.peek() == Some(&'\n') => {
                chars.next();
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The worked-example steps of a doc page. Panics, naming the line, on a malformed step.
pub fn doc_steps(markdown: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut pending: Option<Step> = None;
    let mut block: Option<(String, usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            match block.take() {
                None => block = Some((info.trim().to_owned(), i + 1, String::new())),
                Some((info, start, text)) => {
                    if info == "sh" && text.trim_start().starts_with("curl ") {
                        assert!(
                            pending.is_none(),
                            "line {start}: the previous curl step has no ```json block"
                        );
                        pending = Some(parse_curl(start, &text));
                    } else if info == "json"
                        && let Some(mut step) = pending.take()
                    {
                        step.expected = serde_json::from_str(&text).unwrap_or_else(|e| {
                            panic!("line {start}: the expected body is not JSON: {e}")
                        });
                        steps.push(step);
                    }
                }
            }
        } else if let Some((_, _, text)) = block.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    assert!(pending.is_none(), "the last curl step has no ```json block");
    steps
}

fn parse_curl(line: usize, text: &str) -> Step {
    let words = words(text);
    let mut url = None;
    let mut idempotency_key = None;
    let mut authorized = false;
    let mut input = Value::Null;
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" => {}
            "-X" => {
                it.next();
            }
            "-H" => {
                let header = it
                    .next()
                    .unwrap_or_else(|| panic!("line {line}: -H without a header"));
                if let Some((name, value)) = header.split_once(':') {
                    if name.trim().eq_ignore_ascii_case("idempotency-key") {
                        idempotency_key = Some(value.trim().to_owned());
                    }
                    if name.trim().eq_ignore_ascii_case("authorization") {
                        authorized = true;
                    }
                }
            }
            "-d" => {
                let body = it
                    .next()
                    .unwrap_or_else(|| panic!("line {line}: -d without a body"));
                input = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("line {line}: the -d body is not JSON: {e}"));
            }
            other => url = Some(other.to_owned()),
        }
    }
    let url = url.unwrap_or_else(|| panic!("line {line}: no URL"));
    let parts: Vec<&str> = url.split('/').collect();
    // localhost:8080 / v1 / communities / {c} / plugins / {p} / invoke / {op}
    assert!(
        parts.len() == 8
            && parts[2] == "communities"
            && parts[4] == "plugins"
            && parts[6] == "invoke",
        "line {line}: not an invoke URL: {url}"
    );
    Step {
        line,
        community: parts[3].to_owned(),
        plugin: parts[5].to_owned(),
        operation: parts[7].to_owned(),
        authorized,
        idempotency_key,
        input,
        expected: Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn doc_steps_are_parsed_and_compared() {
        let page = "```sh\ncurl -s -X POST localhost:8080/v1/communities/nanhu/plugins/p/invoke/op \\\n  -H 'Content-Type: application/json' -H 'Idempotency-Key: k-1' \\\n  -d '{\"a\": \"b c\"}'\n```\n\n```json\n{\"ok\": \"<any>\"}\n```\n";
        let steps = doc_steps(page);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            (steps[0].community.as_str(), steps[0].operation.as_str()),
            ("nanhu", "op")
        );
        assert_eq!(steps[0].plugin, "p");
        assert_eq!(steps[0].idempotency_key.as_deref(), Some("k-1"));
        assert_eq!(steps[0].input, json!({ "a": "b c" }));
        assert_eq!(difference(&steps[0].expected, &json!({ "ok": [1] })), None);
        assert!(difference(&steps[0].expected, &json!({ "ok": 1, "x": 2 })).is_some());
    }

    #[test]
    #[should_panic(expected = "no ```json block")]
    fn a_step_without_its_expected_body_is_refused() {
        doc_steps("```sh\ncurl -s localhost:8080/v1/communities/c/plugins/p/invoke/op\n```\n");
    }
}
