//! The worked examples of `docs/plugins/*.md` run as written: every ```sh block holding a
//! `curl` command is sent to a real host (fresh data directory, one host per page), and
//! the response body must match the ```json block that follows it. In the expected JSON,
//! the string `"<any>"` matches any value.

use crate::Host;
use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One example step of a page.
#[derive(Debug)]
struct Step {
    line: usize,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    expected: Value,
}

/// The fenced code blocks of a markdown text: (info string, first line number, content).
fn code_blocks(markdown: &str) -> Vec<(String, usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some((rest.trim().to_owned(), i + 1, String::new())),
            }
        } else if let Some((_, _, content)) = current.as_mut() {
            content.push_str(line);
            content.push('\n');
        }
    }
    blocks
}

fn parse_curl(line: usize, command: &str) -> Result<Step> {
    let joined = command.replace("\\\n", " ");
    let words =
        shell_words::split(joined.trim()).with_context(|| format!("line {line}: cannot split"))?;
    let mut words = words.into_iter();
    if words.next().as_deref() != Some("curl") {
        bail!("line {line}: not a curl command");
    }
    let (mut method, mut url, mut headers, mut body) = ("GET".to_owned(), None, Vec::new(), None);
    while let Some(word) = words.next() {
        match word.as_str() {
            "-s" | "--silent" => {}
            "-X" => method = words.next().context("-X needs a method")?,
            "-H" => {
                let header = words.next().context("-H needs a header")?;
                let (name, value) = header
                    .split_once(':')
                    .context("a header is `Name: value`")?;
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-d" | "--data" => body = Some(words.next().context("-d needs a body")?),
            other if url.is_none() && !other.starts_with('-') => url = Some(other.to_owned()),
            other => bail!("line {line}: unsupported curl argument {other:?}"),
        }
    }
    let url = url.with_context(|| format!("line {line}: no URL"))?;
    let path = url
        .strip_prefix("localhost:8080")
        .or_else(|| url.strip_prefix("http://localhost:8080"))
        .with_context(|| format!("line {line}: examples call localhost:8080, not {url}"))?
        .to_owned();
    Ok(Step {
        line,
        method,
        path,
        headers,
        body,
        expected: Value::Null,
    })
}

fn steps(markdown: &str) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut pending: Option<Step> = None;
    for (info, line, content) in code_blocks(markdown) {
        match info.as_str() {
            "sh" | "bash" | "shell" if content.trim_start().starts_with("curl ") => {
                if let Some(step) = pending.take() {
                    bail!(
                        "line {}: a curl example without an expected ```json block",
                        step.line
                    );
                }
                pending = Some(parse_curl(line, &content)?);
            }
            "json" => {
                if let Some(mut step) = pending.take() {
                    step.expected = serde_json::from_str(&content)
                        .with_context(|| format!("line {line}: the expected body is not JSON"))?;
                    steps.push(step);
                }
            }
            _ => {}
        }
    }
    if let Some(step) = pending {
        bail!(
            "line {}: a curl example without an expected ```json block",
            step.line
        );
    }
    Ok(steps)
}

/// Whether `actual` matches `expected`, where `"<any>"` matches anything; the first
/// difference otherwise, as a JSON pointer and the two values.
fn difference(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::String(s), _) if s == "<any>" => None,
        (Value::Object(e), Value::Object(a)) => {
            for key in e.keys().chain(a.keys()) {
                let path = format!("{at}/{key}");
                match (e.get(key), a.get(key)) {
                    (Some(ev), Some(av)) => {
                        if let Some(d) = difference(ev, av, &path) {
                            return Some(d);
                        }
                    }
                    (Some(ev), None) => return Some(format!("{path}: expected {ev}, missing")),
                    (None, Some(av)) => return Some(format!("{path}: unexpected {av}")),
                    (None, None) => {}
                }
            }
            None
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some(format!(
                    "{at}: expected {} items, got {}: {actual}",
                    e.len(),
                    a.len()
                ));
            }
            e.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (ev, av))| difference(ev, av, &format!("{at}/{i}")))
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => None,
        _ if expected == actual => None,
        _ => Some(format!("{at}: expected {expected}, got {actual}")),
    }
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plugins")
}

async fn run_page(page: &Path) -> Result<usize> {
    let markdown = std::fs::read_to_string(page)?;
    let steps = steps(&markdown)?;
    if steps.is_empty() {
        bail!("{} has no worked example", page.display());
    }
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), &[])?;
    let client = crate::client();
    for step in &steps {
        let method = reqwest::Method::from_bytes(step.method.as_bytes())?;
        let mut request = client.request(method, host.url(&step.path));
        for (name, value) in &step.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &step.body {
            request = request.body(body.clone());
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let actual: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}:{}: the response is not JSON: {text}",
                page.display(),
                step.line
            )
        })?;
        if let Some(diff) = difference(&step.expected, &actual, "") {
            bail!(
                "{}:{}: {} {} answered {status}: {diff}",
                page.display(),
                step.line,
                step.method,
                step.path
            );
        }
    }
    Ok(steps.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_pages_examples_run_as_written() -> Result<()> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(docs_dir())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.retain(|p| p.extension().is_some_and(|e| e == "md"));
    pages.sort();
    assert!(!pages.is_empty(), "no pages in docs/plugins");
    let mut failures = Vec::new();
    for page in &pages {
        if let Err(e) = run_page(page).await {
            failures.push(format!("{e:#}"));
        }
    }
    assert!(
        failures.is_empty(),
        "examples that do not run as written:\n{}",
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn the_example_parser_reads_the_documented_format() -> Result<()> {
    let page = "text\n```sh\ncurl -s -X POST localhost:8080/v1/x \\\n  -H 'Content-Type: application/json' -H 'Idempotency-Key: k1' \\\n  -d '{\"a\": 1}'\n```\n\n```json\n{\"b\": \"<any>\"}\n```\n";
    let parsed = steps(page)?;
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].method, "POST");
    assert_eq!(parsed[0].path, "/v1/x");
    assert_eq!(
        parsed[0].headers[1],
        ("Idempotency-Key".to_owned(), "k1".to_owned())
    );
    assert_eq!(parsed[0].body.as_deref(), Some("{\"a\": 1}"));
    assert!(difference(&parsed[0].expected, &serde_json::json!({ "b": [1, 2] }), "").is_none());
    assert!(
        difference(
            &parsed[0].expected,
            &serde_json::json!({ "b": 1, "c": 2 }),
            ""
        )
        .is_some()
    );
    assert!(
        steps("```sh\ncurl -s localhost:8080/x\n```\n").is_err(),
        "a step without its expected body"
    );
    Ok(())
}
