//! Crash durability at many points: the real binary, on one data directory, is killed
//! with SIGKILL at a random moment of a mixed workload, again and again, and every
//! restart checks what the clients were told.
//!
//! Each round starts the host, checks everything acknowledged so far, runs the workload
//! from several client tasks at once — counter increments with idempotency keys, device
//! events that start 3-step workflow runs (a call, a delay, a call), tenancy changes (a
//! plugin reconfigured, enabled and disabled, device tokens made, communities made) and
//! publishes of a plugin package with a new version each time — and kills the host after
//! a delay drawn from a range that lands inside the workload. After each restart:
//!
//! - every acknowledged (2xx) increment is in the counter, and no more than the
//!   acknowledged plus the one in flight of each client; the in-flight one is retried
//!   with its key and counted once; a replayed key returns its first answer;
//! - every accepted (202) event has its run, the events in flight are posted again with
//!   their ids and start no second run, and (on most restarts, and always after the last
//!   round) every run finishes and each step's effect is in the counters exactly once per
//!   run (checked through the counter plugin's own state);
//! - every acknowledged tenancy change is visible: the config (which the plugin also
//!   uses), the plugin on or off, each token authenticates, each community exists;
//! - every acknowledged published version is listed, the highest listed one runs, and it
//!   serves calls.
//!
//! Flags (environment variables):
//! - `COURTYARD_CRASH_ROUNDS` (default 20): how many kills; raise it for a longer soak.
//! - `COURTYARD_CRASH_SEED`: the seed of the random choices (the kill moments, which
//!   restarts wait for the runs to finish). The test prints the seed it used; setting it
//!   replays those choices (the interleaving of the threads is not replayed).

use crate::workflows::{all_runs, put_yaml};
use crate::{Host, UNLIMITED, client_with};
use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The community whose counters the clients' calls increment.
const CALLS_IN: &str = "sunjia";
/// The community whose events start the workflow runs.
const EVENTS_IN: &str = "nanhu";
/// The community the tenancy changes are made in (made by the test).
const TENANT: &str = "crash-tenancy";
/// The plugin the test publishes (the counter's component under another name).
const PROBE: &str = "crash-probe";
const WORKFLOW: &str = "crash-readings";
const CALL_TASKS: usize = 3;
const EVENT_TASKS: usize = 2;
/// The host is killed this long (ms) after the workload starts: the clients are busy
/// from the first millisecond until the kill.
const KILL_AFTER_MS: (u64, u64) = (150, 1500);

const READINGS: &str = r#"
version: 1
trigger: { event: { kind: crash.reading } }
steps:
  - id: count
    call: { plugin: counter, operation: increment, input: { name: crash-readings, by: 1 } }
  - id: settle
    delay: 300ms
  - id: per_device
    call:
      plugin: counter
      operation: increment
      input: { name: "${{ 'crash-dev-' + trigger.payload.device }}", by: 1 }
"#;

/// SplitMix64: small, seeded, good enough to pick moments.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn env_u64(name: &str) -> Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) => {
            Ok(Some(v.trim().parse().with_context(|| {
                format!("{name}={v:?} is not a number")
            })?))
        }
        Err(_) => Ok(None),
    }
}

/// What the clients were told, over every round.
#[derive(Debug, Default)]
struct Ledger {
    calls: Vec<CallLedger>,
    /// Accepted event id → its device.
    events: BTreeMap<String, String>,
    /// Events whose post got no answer: (id, body), to post again.
    events_pending: Vec<(String, Value)>,
    /// The counter's `step` in the tenant: acknowledged, and in flight.
    step: u64,
    step_pending: Option<u64>,
    /// Whether `lights` runs in the tenant, and a switch in flight.
    lights: bool,
    lights_pending: Option<bool>,
    /// Device tokens of `EVENTS_IN`: (id, secret).
    tokens: Vec<(String, String)>,
    communities: BTreeSet<String>,
    /// Communities whose creation got no answer: they may or may not exist.
    communities_maybe: BTreeSet<String>,
    versions: BTreeSet<Version>,
    versions_maybe: BTreeSet<Version>,
}

/// A plugin version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u64, u64, u64);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl std::str::FromStr for Version {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<u64> = s
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("version {s:?}"))?;
        match parts[..] {
            [a, b, c] => Ok(Self(a, b, c)),
            _ => bail!("version {s:?}"),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct CallLedger {
    acked: u64,
    /// The last acknowledged key and the value it answered.
    last: Option<(String, u64)>,
    pending: Option<String>,
}

fn calls_counter(task: usize) -> String {
    format!("crash-calls-{task}")
}

async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Value)> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| format!("{status}: not JSON: {text}"))?
    };
    Ok((status, body))
}

fn invoke_url(base: &str, community: &str, plugin: &str, op: &str) -> String {
    format!("{base}/v1/communities/{community}/plugins/{plugin}/invoke/{op}")
}

/// A counter's value in `community` (0 if it was never incremented).
async fn counter(c: &reqwest::Client, base: &str, community: &str, name: &str) -> Result<u64> {
    let (status, body) = send(
        c.post(invoke_url(base, community, "counter", "get"))
            .json(&json!({ "name": name })),
    )
    .await?;
    match status {
        200 => body["value"].as_u64().context("value"),
        404 if body["error"]["code"] == "not_found" => Ok(0),
        _ => bail!("counter {name} in {community}: {status} {body}"),
    }
}

/// Every counter of `community`.
async fn counters(
    c: &reqwest::Client,
    base: &str,
    community: &str,
) -> Result<BTreeMap<String, u64>> {
    let mut all = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut input = json!({ "limit": 100 });
        if let Some(a) = &after {
            input["after"] = json!(a);
        }
        let (status, page) = send(
            c.post(invoke_url(base, community, "counter", "list"))
                .json(&input),
        )
        .await?;
        ensure!(status == 200, "list counters: {status} {page}");
        for entry in page["counters"].as_array().context("counters")? {
            all.insert(
                entry["name"].as_str().context("name")?.to_owned(),
                entry["value"].as_u64().context("value")?,
            );
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(all),
        }
    }
}

/// The probe package: the counter's component under another name and `version`.
fn probe_package(version: &str) -> Result<reqwest::multipart::Form> {
    let mut manifest: Value = serde_json::from_str(courtyard_plugin_artifacts::COUNTER.manifest)?;
    manifest["name"] = json!(PROBE);
    manifest["version"] = json!(version);
    Ok(reqwest::multipart::Form::new()
        .part(
            "manifest",
            reqwest::multipart::Part::bytes(manifest.to_string().into_bytes())
                .file_name("manifest.json"),
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(courtyard_plugin_artifacts::COUNTER.component)
                .file_name("plugin.wasm"),
        ))
}

/// The first start: the tenant, the probe plugin and the workflow.
async fn set_up(host: &Host, ledger: &mut Ledger) -> Result<()> {
    let c = host.client();
    let base = &host.base;
    let (status, body) = send(
        c.post(format!("{base}/v1/communities"))
            .json(&json!({ "id": TENANT, "name": "Crash tenancy" })),
    )
    .await?;
    ensure!(status == 201, "create {TENANT}: {status} {body}");
    let (status, body) = send(
        c.put(format!("{base}/v1/communities/{TENANT}/plugins/counter"))
            .json(&json!({ "config": { "step": 1 } })),
    )
    .await?;
    ensure!(status == 201, "enable counter: {status} {body}");
    ledger.step = 1;
    let (status, body) = send(
        c.post(format!("{base}/v1/plugins"))
            .multipart(probe_package("1.0.0")?),
    )
    .await?;
    ensure!(status == 201, "publish {PROBE}: {status} {body}");
    ledger.versions.insert(Version(1, 0, 0));
    let (status, body) = send(
        c.put(format!("{base}/v1/communities/{TENANT}/plugins/{PROBE}"))
            .json(&json!({})),
    )
    .await?;
    ensure!(status == 201, "enable {PROBE}: {status} {body}");
    let (status, body) = put_yaml(&c, host, EVENTS_IN, WORKFLOW, READINGS).await?;
    ensure!(status == 201, "apply {WORKFLOW}: {status} {body}");
    ledger.calls = vec![CallLedger::default(); CALL_TASKS];
    Ok(())
}

// ----- the workload: each task runs until the host dies under it -----

#[derive(Debug, Default)]
struct CallReport {
    acked: u64,
    last: Option<(String, u64)>,
    pending: Option<String>,
}

async fn call_task(
    c: reqwest::Client,
    base: String,
    round: usize,
    task: usize,
) -> Result<CallReport> {
    let url = invoke_url(&base, CALLS_IN, "counter", "increment");
    let mut report = CallReport::default();
    for n in 0u64.. {
        let key = format!("r{round}-c{task}-{n}");
        let sent = c
            .post(&url)
            .header("idempotency-key", &key)
            .json(&json!({ "name": calls_counter(task), "by": 1 }))
            .send()
            .await;
        let Ok(response) = sent else {
            report.pending = Some(key);
            break;
        };
        let status = response.status().as_u16();
        ensure!(
            status == 200,
            "increment {key}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        // The status is the acknowledgement; the kill may still cut the body.
        report.acked += 1;
        if let Ok(body) = response.json::<Value>().await
            && let Some(value) = body["value"].as_u64()
        {
            report.last = Some((key, value));
        }
    }
    Ok(report)
}

#[derive(Debug, Default)]
struct EventReport {
    accepted: Vec<String>,
    device: String,
    pending: Option<(String, Value)>,
}

async fn event_task(
    c: reqwest::Client,
    base: String,
    round: usize,
    task: usize,
) -> Result<EventReport> {
    let url = format!("{base}/v1/communities/{EVENTS_IN}/events");
    let device = format!("r{round}-e{task}");
    let mut report = EventReport {
        device: device.clone(),
        ..EventReport::default()
    };
    for n in 0u64.. {
        let id = format!("{device}-{n}");
        let body =
            json!({ "kind": "crash.reading", "id": id, "payload": { "device": device, "n": n } });
        match c.post(&url).json(&body).send().await {
            Ok(r) if r.status().as_u16() == 202 => report.accepted.push(id),
            Ok(r) => bail!(
                "event {id} refused: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => {
                report.pending = Some((id, body));
                break;
            }
        }
    }
    Ok(report)
}

#[derive(Debug)]
enum Change {
    Step(u64),
    Lights(bool),
    Token,
    Community(String),
}

#[derive(Debug, Default)]
struct TenancyReport {
    step: Option<u64>,
    lights: Option<bool>,
    tokens: Vec<(String, String)>,
    communities: Vec<String>,
    pending: Option<Change>,
    made: usize,
}

/// One change after another, each only after the previous one was answered.
async fn tenancy_task(
    c: reqwest::Client,
    base: String,
    round: usize,
    mut lights: bool,
) -> Result<TenancyReport> {
    let mut report = TenancyReport::default();
    for n in 0u64.. {
        let change = match n % 4 {
            0 => Change::Step((round as u64 + 1) * 100_000 + n),
            1 => Change::Lights(!lights),
            2 => Change::Token,
            _ => Change::Community(format!("crash-r{round}-{n}")),
        };
        let request = match &change {
            Change::Step(step) => c
                .put(format!("{base}/v1/communities/{TENANT}/plugins/counter"))
                .json(&json!({ "config": { "step": step } })),
            Change::Lights(true) => c
                .put(format!("{base}/v1/communities/{TENANT}/plugins/lights"))
                .json(&json!({})),
            Change::Lights(false) => {
                c.delete(format!("{base}/v1/communities/{TENANT}/plugins/lights"))
            }
            Change::Token => c
                .post(format!("{base}/v1/communities/{EVENTS_IN}/tokens"))
                .json(&json!({ "label": format!("crash r{round} {n}") })),
            Change::Community(id) => c
                .post(format!("{base}/v1/communities"))
                .json(&json!({ "id": id, "name": format!("Crash {id}") })),
        };
        let Ok((status, body)) = send(request).await else {
            report.pending = Some(change);
            break;
        };
        ensure!((200..300).contains(&status), "{change:?}: {status} {body}");
        report.made += 1;
        match change {
            Change::Step(step) => report.step = Some(step),
            Change::Lights(on) => {
                lights = on;
                report.lights = Some(on);
            }
            Change::Token => report.tokens.push((
                body["id"].as_str().context("token id")?.to_owned(),
                body["token"].as_str().context("token secret")?.to_owned(),
            )),
            Change::Community(id) => report.communities.push(id),
        }
    }
    Ok(report)
}

#[derive(Debug, Default)]
struct PublishReport {
    acked: Vec<Version>,
    pending: Option<Version>,
}

async fn publish_task(c: reqwest::Client, base: String, round: usize) -> Result<PublishReport> {
    let mut report = PublishReport::default();
    for n in 0u64.. {
        let version = Version(1, round as u64 + 1, n);
        let Ok((status, body)) = send(
            c.post(format!("{base}/v1/plugins"))
                .multipart(probe_package(&version.to_string())?),
        )
        .await
        else {
            report.pending = Some(version);
            break;
        };
        ensure!(status == 201, "publish {PROBE} {version}: {status} {body}");
        report.acked.push(version);
    }
    Ok(report)
}

/// Runs the workload against `host` and kills it after `kill_after`; folds what the
/// clients were told into the ledger. Returns a line for the log.
async fn workload(
    host: Host,
    round: usize,
    kill_after: Duration,
    ledger: &mut Ledger,
) -> Result<String> {
    let base = host.base.clone();
    let calls: Vec<_> = (0..CALL_TASKS)
        .map(|t| tokio::spawn(call_task(host.client(), base.clone(), round, t)))
        .collect();
    let events: Vec<_> = (0..EVENT_TASKS)
        .map(|t| tokio::spawn(event_task(host.client(), base.clone(), round, t)))
        .collect();
    let tenancy = tokio::spawn(tenancy_task(
        host.client(),
        base.clone(),
        round,
        ledger.lights,
    ));
    let publishes = tokio::spawn(publish_task(host.client(), base.clone(), round));
    tokio::time::sleep(kill_after).await;
    host.kill9()?;

    let (mut acked, mut pending) = ([0usize; 4], [0usize; 4]);
    for (t, task) in calls.into_iter().enumerate() {
        let report = task.await??;
        let entry = &mut ledger.calls[t];
        entry.acked += report.acked;
        entry.last = report.last.or(entry.last.take());
        entry.pending = report.pending;
        acked[0] += report.acked as usize;
        pending[0] += usize::from(entry.pending.is_some());
    }
    for task in events {
        let report = task.await??;
        acked[1] += report.accepted.len();
        for id in report.accepted {
            ledger.events.insert(id, report.device.clone());
        }
        if let Some(p) = report.pending {
            ledger.events_pending.push(p);
            pending[1] += 1;
        }
    }
    let report = tenancy.await??;
    acked[2] = report.made;
    if let Some(step) = report.step {
        ledger.step = step;
    }
    if let Some(on) = report.lights {
        ledger.lights = on;
    }
    ledger.tokens.extend(report.tokens);
    ledger.communities.extend(report.communities);
    let pending_change = report.pending.as_ref().map(|p| format!("{p:?}"));
    match report.pending {
        Some(Change::Step(step)) => ledger.step_pending = Some(step),
        Some(Change::Lights(on)) => ledger.lights_pending = Some(on),
        Some(Change::Community(id)) => {
            ledger.communities_maybe.insert(id);
        }
        Some(Change::Token) | None => {}
    }
    pending[2] += usize::from(pending_change.is_some());
    let report = publishes.await??;
    acked[3] = report.acked.len();
    ledger.versions.extend(report.acked);
    if let Some(v) = report.pending {
        ledger.versions_maybe.insert(v);
        pending[3] += 1;
    }
    Ok(format!(
        "acknowledged (in flight): calls {} ({}), events {} ({}), tenancy changes {} ({}{}), publishes {} ({})",
        acked[0],
        pending[0],
        acked[1],
        pending[1],
        acked[2],
        pending[2],
        pending_change.map(|p| format!(": {p}")).unwrap_or_default(),
        acked[3],
        pending[3],
    ))
}

// ----- the checks after a restart -----

async fn check_calls(host: &Host, ledger: &mut Ledger) -> Result<()> {
    let c = host.client();
    let url = invoke_url(&host.base, CALLS_IN, "counter", "increment");
    for (t, entry) in ledger.calls.iter_mut().enumerate() {
        let name = calls_counter(t);
        let value = counter(&c, &host.base, CALLS_IN, &name).await?;
        let in_flight = u64::from(entry.pending.is_some());
        ensure!(
            value >= entry.acked,
            "{name}: lost acknowledged increments: {value} < {} acknowledged",
            entry.acked
        );
        ensure!(
            value <= entry.acked + in_flight,
            "{name}: {value} is more than {} acknowledged + {in_flight} in flight",
            entry.acked
        );
        // The client retries its unanswered call with the same key: it counts once,
        // whether or not it had been applied before the kill.
        if let Some(key) = entry.pending.take() {
            let (status, body) = send(
                c.post(&url)
                    .header("idempotency-key", &key)
                    .json(&json!({ "name": name, "by": 1 })),
            )
            .await?;
            ensure!(status == 200, "retry {key}: {status} {body}");
            ensure!(
                body["value"] == json!(entry.acked + 1),
                "retry {key}: {body}, expected {}",
                entry.acked + 1
            );
            entry.acked += 1;
            entry.last = Some((key, entry.acked));
        }
        // A replayed acknowledged key answers its first result and adds nothing.
        if let Some((key, first)) = &entry.last {
            let (status, body) = send(
                c.post(&url)
                    .header("idempotency-key", key)
                    .json(&json!({ "name": name, "by": 1 })),
            )
            .await?;
            ensure!(
                status == 200 && body["value"] == json!(first),
                "replay {key}: {status} {body}, first answer {first}"
            );
        }
        let value = counter(&c, &host.base, CALLS_IN, &name).await?;
        ensure!(
            value == entry.acked,
            "{name}: {value} after the retries, expected exactly {}",
            entry.acked
        );
    }
    Ok(())
}

/// Posts the unanswered events again, as devices do: each is accepted (once).
async fn repost_events(host: &Host, ledger: &mut Ledger) -> Result<()> {
    let c = host.client();
    for (id, body) in std::mem::take(&mut ledger.events_pending) {
        let (status, answer) = send(
            c.post(host.url(&format!("/v1/communities/{EVENTS_IN}/events")))
                .json(&body),
        )
        .await?;
        ensure!(status == 202, "event {id} posted again: {status} {answer}");
        let device = body["payload"]["device"]
            .as_str()
            .context("device")?
            .to_owned();
        ledger.events.insert(id, device);
    }
    Ok(())
}

/// Waits until every accepted event's run has finished, then checks that each step's
/// effect is in the counters exactly once per run.
async fn check_runs(host: &Host, ledger: &Ledger) -> Result<()> {
    let c = host.client();
    let deadline = Instant::now() + Duration::from_secs(120);
    let runs = loop {
        let runs = all_runs(&c, host, EVENTS_IN, WORKFLOW).await?;
        let started: BTreeSet<&str> = runs
            .iter()
            .filter_map(|r| r["trigger"]["id"].as_str())
            .collect();
        let finished = runs
            .iter()
            .all(|r| r["status"] == "succeeded" || r["status"] == "failed");
        if finished && ledger.events.keys().all(|id| started.contains(id.as_str())) {
            break runs;
        }
        if Instant::now() > deadline {
            let unfinished: Vec<&Value> = runs
                .iter()
                .filter(|r| r["status"] != "succeeded" && r["status"] != "failed")
                .take(3)
                .collect();
            let missing: Vec<&String> = ledger
                .events
                .keys()
                .filter(|id| !started.contains(id.as_str()))
                .take(5)
                .collect();
            bail!(
                "after 120 s: {} runs for {} accepted events; without a run: {missing:?}; unfinished: {unfinished:#?}",
                runs.len(),
                ledger.events.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let failed: Vec<&Value> = runs
        .iter()
        .filter(|r| r["status"] == "failed")
        .take(3)
        .collect();
    ensure!(failed.is_empty(), "failed runs: {failed:#?}");
    let ids: Vec<&str> = runs
        .iter()
        .map(|r| r["trigger"]["id"].as_str().context("trigger id"))
        .collect::<Result<_>>()?;
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    ensure!(distinct.len() == ids.len(), "an event started two runs");
    let accepted: BTreeSet<&str> = ledger.events.keys().map(String::as_str).collect();
    ensure!(
        distinct == accepted,
        "runs of events never accepted: {:?}",
        distinct.difference(&accepted).take(5).collect::<Vec<_>>()
    );
    // Each step's effect once per run, though calls repeated around the kills.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    expected.insert("crash-readings".into(), runs.len() as u64);
    for device in ledger.events.values() {
        *expected.entry(format!("crash-dev-{device}")).or_default() += 1;
    }
    let actual: BTreeMap<String, u64> = counters(&c, &host.base, EVENTS_IN)
        .await?
        .into_iter()
        .filter(|(name, _)| name.starts_with("crash-"))
        .collect();
    ensure!(
        actual == expected,
        "step effects: counters {actual:?}, expected one per run {expected:?}"
    );
    Ok(())
}

async fn check_tenancy(host: &Host, ledger: &mut Ledger) -> Result<()> {
    let c = host.client();
    // The counter's config in the tenant: the acknowledged one, or the one in flight.
    let (status, body) =
        send(c.get(host.url(&format!("/v1/communities/{TENANT}/plugins/counter")))).await?;
    ensure!(status == 200, "counter in {TENANT}: {status} {body}");
    let step = body["config"]["step"].as_u64().context("step")?;
    ensure!(
        step == ledger.step || Some(step) == ledger.step_pending,
        "config step {step}: acknowledged {}, in flight {:?}",
        ledger.step,
        ledger.step_pending
    );
    ledger.step = step;
    ledger.step_pending = None;
    // …and the plugin's calls use it.
    let before = counter(&c, &host.base, TENANT, "probe").await?;
    let (status, body) = send(
        c.post(invoke_url(&host.base, TENANT, "counter", "increment"))
            .json(&json!({ "name": "probe" })),
    )
    .await?;
    ensure!(
        status == 200 && body["value"] == json!(before + step),
        "increment by the config's step {step} from {before}: {status} {body}"
    );

    let (status, body) =
        send(c.get(host.url(&format!("/v1/communities/{TENANT}/plugins/lights")))).await?;
    let on = match status {
        200 => true,
        404 if body["error"]["code"] == "plugin_not_enabled" => false,
        _ => bail!("lights in {TENANT}: {status} {body}"),
    };
    ensure!(
        on == ledger.lights || Some(on) == ledger.lights_pending,
        "lights {on}: acknowledged {}, in flight {:?}",
        ledger.lights,
        ledger.lights_pending
    );
    ledger.lights = on;
    ledger.lights_pending = None;

    let (status, body) =
        send(c.get(host.url(&format!("/v1/communities/{EVENTS_IN}/tokens")))).await?;
    ensure!(status == 200, "tokens: {status} {body}");
    let listed: BTreeSet<&str> = body["tokens"]
        .as_array()
        .context("tokens")?
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    for (id, secret) in &ledger.tokens {
        ensure!(listed.contains(id.as_str()), "token {id} is not listed");
        let status = client_with(secret)
            .get(host.url("/v1/plugins"))
            .send()
            .await?
            .status()
            .as_u16();
        ensure!(status == 200, "token {id} does not authenticate: {status}");
    }

    let (status, body) = send(c.get(host.url("/v1/communities"))).await?;
    ensure!(status == 200, "communities: {status} {body}");
    let listed: BTreeSet<String> = body["communities"]
        .as_array()
        .context("communities")?
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = ledger.communities.difference(&listed).collect();
    ensure!(
        missing.is_empty(),
        "acknowledged communities missing: {missing:?}"
    );
    for id in listed.iter().filter(|id| id.starts_with("crash-r")) {
        ensure!(
            ledger.communities.contains(id) || ledger.communities_maybe.contains(id),
            "community {id} was never asked for"
        );
    }
    // Seen once, it stays.
    for id in std::mem::take(&mut ledger.communities_maybe) {
        if listed.contains(&id) {
            ledger.communities.insert(id);
        }
    }
    Ok(())
}

async fn check_publishes(host: &Host, ledger: &mut Ledger) -> Result<()> {
    let c = host.client();
    let (status, body) = send(c.get(host.url(&format!("/v1/plugins/{PROBE}")))).await?;
    ensure!(status == 200, "{PROBE}: {status} {body}");
    let listed: BTreeSet<Version> = body["versions"]
        .as_array()
        .context("versions")?
        .iter()
        .map(|v| v.as_str().context("version")?.parse())
        .collect::<Result<_>>()?;
    let missing: Vec<String> = ledger
        .versions
        .difference(&listed)
        .map(ToString::to_string)
        .collect();
    ensure!(
        missing.is_empty(),
        "published versions missing: {missing:?}"
    );
    for v in &listed {
        ensure!(
            ledger.versions.contains(v) || ledger.versions_maybe.contains(v),
            "version {v} was never published"
        );
    }
    let highest = listed
        .iter()
        .next_back()
        .context("no versions")?
        .to_string();
    ensure!(
        body["running"] == json!(highest),
        "{PROBE}: the highest version {highest} should run: {body}"
    );
    for v in std::mem::take(&mut ledger.versions_maybe) {
        if listed.contains(&v) {
            ledger.versions.insert(v);
        }
    }
    // The version that runs serves calls.
    let (status, body) = send(
        c.post(invoke_url(&host.base, TENANT, PROBE, "increment"))
            .json(&json!({ "name": "runs", "by": 1 })),
    )
    .await?;
    ensure!(status == 200, "{PROBE} {highest}: {status} {body}");
    Ok(())
}

async fn check(host: &Host, ledger: &mut Ledger, wait_for_runs: bool) -> Result<()> {
    check_calls(host, ledger).await.context("calls")?;
    repost_events(host, ledger).await.context("events")?;
    check_tenancy(host, ledger).await.context("tenancy")?;
    check_publishes(host, ledger).await.context("publishes")?;
    if wait_for_runs {
        check_runs(host, ledger).await.context("runs")?;
    }
    Ok(())
}

/// The issue's "crash durability at many points" (see the module's documentation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_sigkill_at_many_moments() -> Result<()> {
    let rounds = usize::try_from(env_u64("COURTYARD_CRASH_ROUNDS")?.unwrap_or(20))?;
    let seed = match env_u64("COURTYARD_CRASH_SEED")? {
        Some(seed) => seed,
        None => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    };
    eprintln!(
        "crash: seed {seed}, {rounds} rounds (COURTYARD_CRASH_SEED={seed} replays the choices)"
    );
    let mut rng = Rng(seed);
    // The compiled-plugin cache the e2e hosts share is filled once, outside the timing.
    let warm_up = Instant::now();
    crate::warm_cache()?;
    let warm_up = warm_up.elapsed();
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let mut ledger = Ledger::default();
    for round in 0..rounds {
        let restart = Instant::now();
        let host = Host::start(dir.path(), UNLIMITED)?;
        let start_ms = restart.elapsed().as_millis();
        // Most restarts wait for every run to finish; the others start the next
        // workload at once, so that the kill may land while runs resume.
        let wait_for_runs = rng.between(0, 2) != 0;
        if round == 0 {
            set_up(&host, &mut ledger).await.context("set-up")?;
        } else {
            check(&host, &mut ledger, wait_for_runs)
                .await
                .with_context(|| format!("after kill {round} (seed {seed})"))?;
        }
        let check_ms = restart.elapsed().as_millis() - start_ms;
        let kill_after = Duration::from_millis(rng.between(KILL_AFTER_MS.0, KILL_AFTER_MS.1));
        let line = workload(host, round, kill_after, &mut ledger)
            .await
            .with_context(|| format!("round {round} (seed {seed})"))?;
        eprintln!(
            "crash: round {round}: start {start_ms} ms, checks {check_ms} ms, killed after {} ms{}; {line}",
            kill_after.as_millis(),
            if wait_for_runs || round == 0 {
                ""
            } else {
                " (runs still resuming)"
            }
        );
    }
    let host = Host::start(dir.path(), UNLIMITED)?;
    check(&host, &mut ledger, true)
        .await
        .with_context(|| format!("after the last kill (seed {seed})"))?;
    eprintln!(
        "crash: {rounds} kills survived in {:.1} s (after {:.1} s of cache warm-up): {} events, {} calls, {} tokens, {} communities, {} versions",
        started.elapsed().as_secs_f64(),
        warm_up.as_secs_f64(),
        ledger.events.len(),
        ledger.calls.iter().map(|c| c.acked).sum::<u64>(),
        ledger.tokens.len(),
        ledger.communities.len(),
        ledger.versions.len(),
    );
    Ok(())
}
