//! `courtyard plugin new` writes a plugin that builds and runs, in each language.

use crate::Host;
use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed: {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolded_plugins_build_and_serve_in_every_language() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    for (name, lang) in [
        ("hello-rust", "rust"),
        ("hello-python", "python"),
        ("hello-js", "js"),
    ] {
        run(Command::new(env!("CARGO_BIN_EXE_courtyard"))
            .args(["plugin", "new", name, "--lang", lang, "--dir"])
            .arg(&plugins))?;
        run(Command::new(plugins.join(name).join("build.sh"))
            // The Rust scaffold's dependencies, compiled once for every run of the tests.
            .env(
                "CARGO_TARGET_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target"),
            ))?;
        ensure!(
            plugins.join(name).join("plugin.wasm").exists(),
            "{name}: no plugin.wasm"
        );
    }
    let data = dir.path().join("data");
    let host = Host::start(&data, &["--plugins", plugins.to_str().context("path")?])?;
    let c = host.client();
    for name in ["hello-rust", "hello-python", "hello-js"] {
        host.enable("nanhu", name).await?;
        let url = host.url(&format!(
            "/v1/communities/nanhu/plugins/{name}/invoke/greet"
        ));
        for expected in 1..=2 {
            let response = c
                .post(&url)
                .json(&json!({ "name": "Mrs Wang" }))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            ensure!(status.as_u16() == 200, "{name}: {status} {body}");
            ensure!(
                body == json!({ "message": "Hello, Mrs Wang!", "greetings": expected }),
                "{name}: {body}"
            );
        }
        let response = c.post(&url).json(&json!({ "name": "  " })).send().await?;
        ensure!(
            response.status().as_u16() == 400,
            "{name}: a blank name is invalid input"
        );
    }
    Ok(())
}
