//! The worked examples of `docs/plugins/*.md` run as written: every `curl` step is sent to
//! a real host (fresh data directory, one host per page), and the response body must
//! match the ```json block that follows it (`courtyard-doc-examples` parses the pages and
//! compares the bodies; the guest SDK runs the same steps natively).

use crate::Host;
use anyhow::{Result, bail};
use courtyard_doc_examples::{difference, doc_steps};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/plugins")
}

async fn run_page(page: &Path) -> Result<usize> {
    let markdown = std::fs::read_to_string(page)?;
    let steps = doc_steps(&markdown);
    if steps.is_empty() {
        bail!("{} has no worked example", page.display());
    }
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), &[])?;
    let client = host.client();
    for step in &steps {
        if !step.authorized {
            bail!(
                "{}:{}: the curl step sends no `Authorization: Bearer $TOKEN`",
                page.display(),
                step.line
            );
        }
        let path = format!(
            "/v1/communities/{}/plugins/{}/invoke/{}",
            step.community, step.plugin, step.operation
        );
        let mut request = client.post(host.url(&path)).json(&step.input);
        if let Some(key) = &step.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let Ok(actual) = serde_json::from_str::<Value>(&text) else {
            bail!(
                "{}:{}: the response is not JSON: {text}",
                page.display(),
                step.line
            );
        };
        if let Some(diff) = difference(&step.expected, &actual) {
            bail!(
                "{}:{}: POST {path} answered {status}: {diff}",
                page.display(),
                step.line
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
