//! End-to-end tests of the real `courtyard` binary: HTTP on loopback, SIGKILL and
//! restart on the same data directory.

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod cli;
mod crash;
mod disk;
mod docs;
mod fairness;
mod scaffold;
mod workflows;

/// Flags of a host without rate limits, for the tests that load it as fast as they
/// can: they test durability, and the rate limits have tests of their own.
const UNLIMITED: &[&str] = &["--rate-per-token", "0", "--rate-per-community", "0"];

/// A running `courtyard serve`.
struct Host {
    child: Child,
    base: String,
    /// The operator token the host wrote on its first start.
    token: String,
}

/// The compiled-plugin cache shared by the hosts of these tests, so that the Python and
/// JavaScript plugins are compiled once, not once per host.
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")
}

/// Starts one host first, alone, so that it fills the shared cache before the tests'
/// hosts start in parallel.
fn warm_cache() -> Result<()> {
    static WARM: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut warm = WARM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !*warm {
        let dir = tempfile::tempdir()?;
        Host::spawn(dir.path(), &[])?;
        *warm = true;
    }
    Ok(())
}

impl Host {
    /// Starts the binary on a free port and waits until it listens.
    fn start(data_dir: &Path, extra: &[&str]) -> Result<Self> {
        warm_cache()?;
        Self::spawn(data_dir, extra)
    }

    fn spawn(data_dir: &Path, extra: &[&str]) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_courtyard"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--cache-dir")
            .arg(shared_cache())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn courtyard")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .context("courtyard exited before listening")??;
        let base = line
            .strip_prefix("courtyard listening on ")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        let token = std::fs::read_to_string(data_dir.join("operator.token"))
            .context("the host wrote no operator.token")?
            .trim()
            .to_owned();
        Ok(Self { child, base, token })
    }

    /// An HTTP client that sends the operator's token.
    fn client(&self) -> reqwest::Client {
        client_with(&self.token)
    }

    /// Enables `plugin` in `community` with its defaults, as an admin would.
    async fn enable(&self, community: &str, plugin: &str) -> Result<()> {
        let response = self
            .client()
            .put(self.url(&format!("/v1/communities/{community}/plugins/{plugin}")))
            .json(&json!({}))
            .send()
            .await?;
        let status = response.status().as_u16();
        if status != 201 && status != 200 {
            bail!(
                "enabling {plugin} in {community}: {status} {}",
                response.text().await?
            );
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn kill9(mut self) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that sends `token`.
fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("client")
}

async fn invoke(
    c: &reqwest::Client,
    host: &Host,
    community: &str,
    plugin: &str,
    op: &str,
    input: Value,
) -> Result<(u16, Value)> {
    let url = host.url(&format!(
        "/v1/communities/{community}/plugins/{plugin}/invoke/{op}"
    ));
    let response = c.post(url).json(&input).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// Writes the misbehaving fixture as a plugin package directory for `--plugins`.
fn fixture_plugins(dir: &Path) -> Result<PathBuf> {
    let root = dir.join("extra-plugins");
    let pkg = root.join("misbehave");
    std::fs::create_dir_all(&pkg)?;
    std::fs::write(
        pkg.join("manifest.json"),
        courtyard_plugin_artifacts::MISBEHAVE.manifest,
    )?;
    std::fs::write(
        pkg.join("plugin.wasm"),
        courtyard_plugin_artifacts::MISBEHAVE.component,
    )?;
    Ok(root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_healthz_and_the_example_plugin() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), &[])?;
    let c = host.client();
    // Liveness needs no token.
    let health: Value = client_with("none")
        .get(host.url("/healthz"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(health["status"], "ok");
    // A fresh data directory is a district of 68 communities, and the operator's token
    // is in a file only its owner can read.
    let communities: Value = c
        .get(host.url("/v1/communities"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        communities["communities"].as_array().map(Vec::len),
        Some(68)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("operator.token"))?.permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "operator.token mode {mode:o}");
    let anonymous = client_with("none")
        .get(host.url("/v1/communities"))
        .send()
        .await?;
    assert_eq!(anonymous.status().as_u16(), 401);

    let (status, body) = invoke(
        &c,
        &host,
        "beigong-east",
        "counter",
        "increment",
        json!({ "name": "visitors" }),
    )
    .await?;
    assert_eq!(
        (status, body),
        (200, json!({ "name": "visitors", "value": 1 }))
    );
    let (status, body) = invoke(
        &c,
        &host,
        "nowhere",
        "counter",
        "get",
        json!({ "name": "x" }),
    )
    .await?;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("community_not_found"))
    );
    // The binary records metrics and serves them in Prometheus' text format.
    let metrics = c.get(host.url("/metrics")).send().await?.text().await?;
    assert!(
        metrics.contains("courtyard_invocations_total{")
            && metrics.contains("courtyard_invocation_duration_seconds_bucket{"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), UNLIMITED)?;
    let acked = Arc::new(AtomicU64::new(0));
    let stop_at = 150;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, url, acked) = (
            host.client(),
            host.url("/v1/communities/nanhu/plugins/counter/invoke/increment"),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Keep calling until the host dies under us.
            while let Ok(r) = c.post(&url).json(&json!({ "name": "meals" })).send().await {
                if r.status().as_u16() == 200 {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < stop_at {
        if Instant::now() > deadline {
            bail!(
                "only {} increments acknowledged in 60 s",
                acked.load(Ordering::SeqCst)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Kill in the middle of the batch: requests are in flight.
    host.kill9()?;
    let acknowledged = acked.load(Ordering::SeqCst);
    for t in tasks {
        t.await?;
    }
    // Every acknowledged increment is there; in-flight ones may or may not be.
    let acknowledged_after = acked.load(Ordering::SeqCst);
    let host = Host::start(dir.path(), &[])?;
    let (status, body) = invoke(
        &host.client(),
        &host,
        "nanhu",
        "counter",
        "get",
        json!({ "name": "meals" }),
    )
    .await?;
    assert_eq!(status, 200);
    let value = body["value"].as_u64().context("value")?;
    assert!(
        value >= acknowledged_after,
        "lost acknowledged writes: {value} < {acknowledged_after}"
    );
    assert!(
        value <= acknowledged_after + 4,
        "more increments than requests: {value} (acknowledged {acknowledged})"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_fails_alone_while_the_host_serves_others() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = fixture_plugins(dir.path())?;
    let host = Host::start(
        dir.path(),
        &[
            "--plugins",
            plugins.to_str().context("path")?,
            "--timeout-ms",
            // Long enough that the 20 calls below finish first even on a loaded machine.
            "5000",
        ],
    )?;
    host.enable("nanhu", "misbehave").await?;
    let c = host.client();
    let spinning = {
        let (c, url) = (
            c.clone(),
            host.url("/v1/communities/nanhu/plugins/misbehave/invoke/spin"),
        );
        tokio::spawn(async move { c.post(url).json(&json!({})).send().await })
    };
    for i in 0..20 {
        let community = if i % 2 == 0 { "nanhu" } else { "sunjia" };
        let (status, _) = invoke(
            &c,
            &host,
            community,
            "counter",
            "increment",
            json!({ "name": "busy" }),
        )
        .await?;
        assert_eq!(status, 200);
    }
    assert!(
        !spinning.is_finished(),
        "the looping call should still be running"
    );
    let response = spinning.await??;
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "plugin_timeout");
    for (op, code) in [
        ("hog", "plugin_memory_limit"),
        ("recurse", "plugin_stack_overflow"),
        ("crash", "plugin_failed"),
    ] {
        let (status, body) = invoke(&c, &host, "nanhu", "misbehave", op, json!({})).await?;
        assert_eq!(body["error"]["code"], code, "{op}: {status} {body}");
    }
    let health = c.get(host.url("/healthz")).send().await?;
    assert_eq!(health.status().as_u16(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_operator_token_file_gets_a_new_token_at_the_next_start() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), &[])?;
    let first = host.token.clone();
    drop(host);
    // Kept across a restart while valid…
    let host = Host::start(dir.path(), &[])?;
    assert_eq!(host.token, first);
    drop(host);
    // …and made anew when the file is gone (access to the data directory is the proof).
    std::fs::remove_file(dir.path().join("operator.token"))?;
    let host = Host::start(dir.path(), &[])?;
    assert_ne!(host.token, first);
    let response = host
        .client()
        .get(host.url("/v1/communities"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = fixture_plugins(dir.path())?;
    let mut host = Host::start(
        dir.path(),
        &[
            "--plugins",
            plugins.to_str().context("path")?,
            "--timeout-ms",
            "1500",
        ],
    )?;
    host.enable("nanhu", "misbehave").await?;
    let (status, _) = invoke(
        &host.client(),
        &host,
        "nanhu",
        "counter",
        "increment",
        json!({ "name": "x" }),
    )
    .await?;
    assert_eq!(status, 200);
    // A call that runs until its 1.5 s deadline is in flight when the signal comes.
    let in_flight = {
        let (c, url) = (
            host.client(),
            host.url("/v1/communities/nanhu/plugins/misbehave/invoke/spin"),
        );
        tokio::spawn(async move { c.post(url).json(&json!({})).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(host.child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    // It gets its answer (the deadline's 503), not a broken connection.
    let response = in_flight
        .await?
        .context("the in-flight request lost its answer")?;
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = response.json().await?;
    assert_eq!(body["error"]["code"], "plugin_timeout");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = host.child.try_wait()? {
            assert!(status.success(), "exit status {status}");
            break;
        }
        if Instant::now() > deadline {
            bail!("courtyard did not stop within 20 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_drives_a_host_without_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), &[])?;
    let pid = host.child.id().to_string();
    let token = host.token.clone();
    let token2 = token.clone();
    let base = host.base.clone();
    let first = base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_courtyard"))
            .args([
                "bench",
                "--seconds",
                "2",
                "--concurrency",
                "2",
                "--communities",
                "3",
                "--host-pid",
                &pid,
                "--token",
                &token,
                "--url",
            ])
            .arg(&first)
            .output()
    })
    .await??;
    let report = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "bench failed: {report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "refused (4xx): 0",
        "errors (5xx, transport): 0",
        "latency ms: p50",
        "host RSS: ",
    ] {
        assert!(report.contains(line), "no {line:?} in:\n{report}");
    }
    let requests: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no request count")?;
    assert!(requests > 0, "{report}");

    // Events through the 3-step workflow: every accepted event's run finishes.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_courtyard"))
            .args([
                "bench",
                "--mix",
                "workflow",
                "--seconds",
                "2",
                "--concurrency",
                "2",
                "--communities",
                "3",
                "--token",
                &token2,
                "--url",
            ])
            .arg(&base)
            .output()
    })
    .await??;
    drop(host);
    let report = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "bench --mix workflow failed: {report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "refused (4xx): 0",
        "errors (5xx, transport): 0",
        "workflow runs: ",
    ] {
        assert!(report.contains(line), "no {line:?} in:\n{report}");
    }
    Ok(())
}
