//! Workflows through the real binary: documents applied over HTTP, events posted by
//! devices, SIGKILL in the middle of a batch, and a restart on the same data directory.

use crate::{Host, invoke};
use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) async fn put_yaml(
    c: &reqwest::Client,
    host: &Host,
    community: &str,
    name: &str,
    yaml: &str,
) -> Result<(u16, Value)> {
    let r = c
        .put(host.url(&format!("/v1/communities/{community}/workflows/{name}")))
        .header("content-type", "application/yaml")
        .body(yaml.to_owned())
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await?))
}

/// Every run of `workflow`, oldest first.
pub(crate) async fn all_runs(
    c: &reqwest::Client,
    host: &Host,
    community: &str,
    workflow: &str,
) -> Result<Vec<Value>> {
    let mut runs = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut url = format!("/v1/communities/{community}/runs?workflow={workflow}&limit=200");
        if let Some(b) = &before {
            url.push_str(&format!("&before={b}"));
        }
        let page: Value = c.get(host.url(&url)).send().await?.json().await?;
        let list = page["runs"].as_array().context("runs")?;
        runs.extend(list.iter().cloned());
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
    }
    runs.reverse();
    Ok(runs)
}

async fn counter(c: &reqwest::Client, host: &Host, name: &str) -> Result<u64> {
    let (status, body) =
        invoke(c, host, "nanhu", "counter", "get", json!({ "name": name })).await?;
    Ok(if status == 404 {
        0
    } else {
        body["value"].as_u64().context("value")?
    })
}

const READINGS: &str = r#"
version: 1
trigger: { event: { kind: meter.reading } }
steps:
  - id: count
    call: { plugin: counter, operation: increment, input: { name: readings } }
  - id: settle
    delay: 1s
  - id: per_device
    call:
      plugin: counter
      operation: increment
      input: { name: "${{ 'device-' + string(trigger.payload.device) }}" }
"#;

/// The issue's "done when": events posted over HTTP, SIGKILL in the middle of the
/// batch, restart; every accepted event is processed, and no step's effect is applied
/// twice (the runs' calls repeat after the restart, with their idempotency keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_survive_sigkill_and_no_step_applies_twice() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), crate::UNLIMITED)?;
    let c = host.client();
    let (status, body) = put_yaml(&c, &host, "nanhu", "readings", READINGS).await?;
    assert_eq!(status, 201, "{body}");

    let accepted: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for device in 0..4u32 {
        let (c, url, accepted) = (
            host.client(),
            host.url("/v1/communities/nanhu/events"),
            accepted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("meter-{device}-{n}");
                let body = json!({"kind": "meter.reading", "id": id, "payload": {"device": device, "n": n}});
                match c.post(&url).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 202 => {
                        accepted.lock().expect("lock").insert(id);
                    }
                    Ok(r) => panic!("event refused: {}", r.status()),
                    Err(_) => break, // the host died under us
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.lock().expect("lock").len() < 200 {
        if Instant::now() > deadline {
            bail!(
                "only {} events accepted in 60 s",
                accepted.lock().expect("lock").len()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Killed with events in flight and runs in every state: calling, delayed, done.
    host.kill9()?;
    for t in tasks {
        t.await?;
    }
    let accepted = accepted.lock().expect("lock").clone();

    let host = Host::start(dir.path(), &[])?;
    // Every run finishes: the delays resume as durable timers.
    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = loop {
        let runs = all_runs(&c, &host, "nanhu", "readings").await?;
        if runs.len() >= accepted.len() && runs.iter().all(|r| r["status"] == "succeeded") {
            break runs;
        }
        if Instant::now() > deadline {
            let unfinished: Vec<&Value> = runs
                .iter()
                .filter(|r| r["status"] != "succeeded")
                .take(3)
                .collect();
            bail!(
                "{} runs for {} accepted events; unfinished: {unfinished:#?}",
                runs.len(),
                accepted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One run per recorded event, and every accepted event was recorded.
    let ids: Vec<String> = runs
        .iter()
        .map(|r| {
            r["trigger"]["id"]
                .as_str()
                .map(str::to_owned)
                .context("trigger id")
        })
        .collect::<Result<_>>()?;
    let distinct: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct.len(), ids.len(), "an event started two runs");
    assert!(
        accepted.is_subset(&distinct),
        "accepted events without a run: {:?}",
        accepted.difference(&distinct).take(5).collect::<Vec<_>>()
    );
    assert!(
        runs.len() <= accepted.len() + 4,
        "more runs than events posted"
    );
    // Each step's effect once per run, though some calls ran twice around the kill.
    assert_eq!(counter(&c, &host, "readings").await?, runs.len() as u64);
    let mut per_device: BTreeMap<String, u64> = BTreeMap::new();
    for run in &runs {
        let device = run["trigger"]["payload"]["device"]
            .as_u64()
            .context("device")?;
        *per_device.entry(format!("device-{device}")).or_default() += 1;
    }
    for (name, expected) in per_device {
        assert_eq!(counter(&c, &host, &name).await?, expected, "{name}");
    }
    Ok(())
}

/// Every example in `workflows/` is accepted by the real host; a broken document is
/// refused with a message that points at the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_workflows_apply_and_broken_ones_are_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host = Host::start(dir.path(), &[])?;
    let c = host.client();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let mut applied = Vec::new();
    for entry in std::fs::read_dir(&examples)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("name")?
            .to_owned();
        let (status, body) = put_yaml(
            &c,
            &host,
            "beigong-east",
            &name,
            &std::fs::read_to_string(&path)?,
        )
        .await?;
        assert_eq!(status, 201, "{name}: {body}");
        applied.push(name);
    }
    assert!(applied.len() >= 5, "{applied:?}");
    let listed: Value = c
        .get(host.url("/v1/communities/beigong-east/workflows"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        listed["workflows"].as_array().map(Vec::len),
        Some(applied.len())
    );

    let broken = READINGS.replace(
        "plugin: counter, operation: increment, input: { name: readings }",
        "plugin: countr, operation: increment",
    );
    let (status, body) = put_yaml(&c, &host, "beigong-east", "broken", &broken).await?;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["details"],
        json!([r#"steps[0].call.plugin: unknown plugin "countr"; did you mean "counter"?"#])
    );
    Ok(())
}
