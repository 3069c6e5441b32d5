//! The admin's CLI drives a real host over HTTP: the daily work of a community's admin,
//! from a fresh data directory.

use crate::Host;
use anyhow::{Context as _, Result, ensure};
use serde_json::Value;
use std::process::Command;

/// Runs `courtyard <args>` against `host` with `token`; returns stdout, or fails with
/// stderr.
fn courtyard(host: &Host, token: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_courtyard"))
        .args(args)
        .env("COURTYARD_URL", &host.base)
        .env("COURTYARD_TOKEN", token)
        .output()
        .context("run courtyard")?;
    let stdout = String::from_utf8(output.stdout)?;
    ensure!(
        output.status.success(),
        "courtyard {}: {}\n{stdout}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

/// The same, expecting a failure; returns stderr.
fn courtyard_fails(host: &Host, token: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_courtyard"))
        .args(args)
        .env("COURTYARD_URL", &host.base)
        .env("COURTYARD_TOKEN", token)
        .output()?;
    ensure!(
        !output.status.success(),
        "courtyard {} succeeded",
        args.join(" ")
    );
    Ok(String::from_utf8(output.stderr)?)
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_does_an_admins_daily_work() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), &[])?;
    let operator = host.token.clone();

    let list = courtyard(&host, &operator, &["community", "list"])?;
    ensure!(list.contains("68 communities"), "{list}");
    ensure!(
        list.contains("nanhu") && list.contains("alert-rules"),
        "{list}"
    );

    // The operator makes nanhu's admin; from here on the admin works alone.
    let admin = json(&courtyard(
        &host,
        &operator,
        &[
            "token", "create", "nanhu", "--role", "admin", "--label", "office",
        ],
    )?)?;
    let admin = admin["token"].as_str().context("secret")?.to_owned();

    // A plugin with a config file, and a config the schema refuses.
    let config = dir.path().join("counter.yaml");
    std::fs::write(&config, "step: 10\n")?;
    let enabled = json(&courtyard(
        &host,
        &admin,
        &[
            "plugin",
            "enable",
            "nanhu",
            "counter",
            "--config",
            config.to_str().context("path")?,
        ],
    )?)?;
    ensure!(enabled["effective_config"]["step"] == 10, "{enabled}");
    std::fs::write(&config, "step: 0\n")?;
    let refused = courtyard_fails(
        &host,
        &admin,
        &[
            "plugin",
            "enable",
            "nanhu",
            "counter",
            "--config",
            config.to_str().context("path")?,
        ],
    )?;
    ensure!(
        refused.contains("422") && refused.contains("config/step"),
        "{refused}"
    );

    // A workflow: apply, switch off and on, then an event from a device starts a run.
    let workflow = dir.path().join("count-gates.yaml");
    std::fs::write(
        &workflow,
        "version: 1\ntrigger:\n  event: { kind: gate.opened }\nsteps:\n  - id: count\n    call: { plugin: counter, operation: increment, input: { name: gates } }\n",
    )?;
    let applied = json(&courtyard(
        &host,
        &admin,
        &[
            "workflow",
            "apply",
            "nanhu",
            workflow.to_str().context("path")?,
        ],
    )?)?;
    ensure!(applied["name"] == "count-gates", "{applied}");
    courtyard(
        &host,
        &admin,
        &["workflow", "disable", "nanhu", "count-gates"],
    )?;
    let listed = courtyard(&host, &admin, &["workflow", "list", "nanhu"])?;
    ensure!(listed.contains("\"enabled\": false"), "{listed}");
    courtyard(
        &host,
        &admin,
        &["workflow", "enable", "nanhu", "count-gates"],
    )?;

    let device = json(&courtyard(
        &host,
        &admin,
        &["token", "create", "nanhu", "--label", "east gate"],
    )?)?;
    let device = device["token"].as_str().context("secret")?.to_owned();
    let accepted = json(&courtyard(
        &host,
        &device,
        &[
            "event",
            "post",
            "nanhu",
            "gate.opened",
            "--payload",
            r#"{"gate": "east"}"#,
        ],
    )?)?;
    ensure!(accepted["duplicate"] == false, "{accepted}");
    // A device cannot do an admin's work.
    let refused = courtyard_fails(&host, &device, &["workflow", "list", "nanhu"])?;
    ensure!(refused.contains("403"), "{refused}");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let runs = courtyard(
            &host,
            &admin,
            &["runs", "nanhu", "--workflow", "count-gates"],
        )?;
        if runs.contains("succeeded") {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no run succeeded: {runs}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The step used nanhu's config: one increment of 10.
    let count = crate::invoke(
        &crate::client_with(&device),
        &host,
        "nanhu",
        "counter",
        "get",
        serde_json::json!({"name": "gates"}),
    )
    .await?;
    ensure!(count.1["value"] == 10, "{count:?}");

    // The admin reads the community's alarms and its audit log; the district's log is
    // the operator's.
    let alarms = json(&courtyard(
        &host,
        &admin,
        &["alarms", "nanhu", "--state", "raised,acknowledged"],
    )?)?;
    ensure!(alarms["alarms"].is_array(), "{alarms}");
    let audit = courtyard(&host, &admin, &["audit", "nanhu"])?;
    ensure!(
        audit.contains("workflow.enable") && audit.contains("plugin.configure"),
        "{audit}"
    );
    let refused = courtyard_fails(&host, &admin, &["audit"])?;
    ensure!(refused.contains("403"), "{refused}");
    ensure!(courtyard(&host, &operator, &["audit"])?.contains("token.create"));

    // Switched off in the community: the plugin is refused there.
    courtyard(&host, &admin, &["plugin", "disable", "nanhu", "counter"])?;
    let plugins = courtyard(&host, &admin, &["plugin", "list", "nanhu"])?;
    ensure!(!plugins.contains("\"counter\""), "{plugins}");
    Ok(())
}
