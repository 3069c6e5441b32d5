//! `courtyard bench`: a load generator that drives a running host over HTTP with a mix of
//! the district's everyday traffic, and reports throughput, latency percentiles, errors
//! and (given its pid) the host's memory.
//!
//! The mix, spread over the communities round-robin:
//! - camera alerts: `alert-rules/ingest` of an object thrown from height (raises, then updates, an alarm);
//! - canteen orders: `canteen/register-resident` then `canteen/place-order` (pick-up, one portion);
//! - taxi calls: `taxi-dispatch/request-ride` from the community's screen, then `cancel-ride`;
//! - visitor checks: `visitor-access/gate-check` of an unknown face (a recorded deny).
//!
//! A set-up phase first, with the operator's token: in every community it uses, it enables
//! the plugins the mix needs where the community does not run them yet, creates a device
//! token (the traffic is sent as the community's devices), and publishes a menu, a screen
//! and drivers. At the end it revokes the device tokens.
//!
//! With `--mix workflow` it drives the workflow engine instead: it applies a 3-step
//! workflow (`bench-chain`: three counter increments, each a durable step) to every
//! community, posts `bench.reading` events as a device would, and after the run waits
//! until every accepted event's run has finished, reporting the end-to-end rate.

use anyhow::{Context as _, Result, bail};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What `courtyard bench` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The host to drive.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Scenario operations per second in all (each is one or two HTTP calls); 0 runs flat out.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// How many of the district's communities to spread the load over.
    #[arg(long, default_value_t = 68)]
    pub communities: usize,
    /// The host's process id, to report its memory (RSS) from /proc.
    #[arg(long)]
    pub host_pid: Option<u32>,
    /// What to send: the district's everyday plugin calls, or events through a 3-step
    /// workflow.
    #[arg(long, value_enum, default_value_t = Mix::District)]
    pub mix: Mix,
    /// The operator's token (for the set-up); read from `--token-file` when not given.
    #[arg(long, env = "COURTYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The file with the operator's token.
    #[arg(long, default_value = "courtyard-data/operator.token")]
    pub token_file: std::path::PathBuf,
}

/// The traffic `courtyard bench` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// Camera alerts, canteen orders, taxi calls and visitor checks (plugin calls).
    District,
    /// Device events, each starting a run of a 3-step workflow.
    Workflow,
}

/// The workflow of `--mix workflow`: every step a durable plugin call.
const CHAIN: &str = r#"
version: 1
title: courtyard bench, three durable steps per event
trigger: { event: { kind: bench.reading } }
steps:
  - id: total
    call: { plugin: counter, operation: increment, input: { name: "${{ trigger.payload.run + '-total' }}" } }
  - id: device
    call: { plugin: counter, operation: increment, input: { name: "${{ trigger.payload.run + '-device-' + string(trigger.payload.device) }}" } }
  - id: done
    call: { plugin: counter, operation: increment, input: { name: "${{ trigger.payload.run + '-done' }}" } }
"#;

#[derive(Debug, Clone, Copy)]
enum Scenario {
    CameraAlert,
    CanteenOrder,
    TaxiCall,
    VisitorCheck,
}

/// The mix, in tenths: 4 camera alerts, 2 canteen orders, 2 taxi calls, 2 visitor checks.
const MIX: [Scenario; 10] = [
    Scenario::CameraAlert,
    Scenario::VisitorCheck,
    Scenario::CanteenOrder,
    Scenario::CameraAlert,
    Scenario::TaxiCall,
    Scenario::CameraAlert,
    Scenario::VisitorCheck,
    Scenario::CanteenOrder,
    Scenario::CameraAlert,
    Scenario::TaxiCall,
];

struct Shared {
    client: reqwest::Client,
    base: String,
    communities: Vec<String>,
    /// The operator's token.
    operator: String,
    /// A device token per community, made by the set-up.
    devices: Mutex<std::collections::HashMap<String, (String, String)>>,
    latencies: Mutex<Histogram<u64>>,
    requests: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    next: AtomicU64,
    run: String,
    mix: Mix,
}

impl Shared {
    /// One HTTP call; records its latency and outcome. `Ok(None)` for a refusal (4xx).
    async fn call(
        &self,
        community: &str,
        plugin: &str,
        op: &str,
        body: Value,
        key: Option<String>,
    ) -> Result<Option<Value>> {
        let url = format!(
            "{}/v1/communities/{community}/plugins/{plugin}/invoke/{op}",
            self.base
        );
        let mut request = self
            .client
            .post(url)
            .bearer_auth(self.device(community))
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let started = Instant::now();
        let response = request.send().await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros);
        self.requests.fetch_add(1, Ordering::Relaxed);
        match response {
            Ok(r) if r.status().is_success() => Ok(Some(r.json().await?)),
            Ok(r) if r.status().is_client_error() => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Ok(r) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(anyhow::anyhow!("{plugin}/{op}: {}", r.status()))
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// Posts one event; records its latency and outcome.
    async fn event(&self, community: &str, body: Value) -> Result<()> {
        let url = format!("{}/v1/communities/{community}/events", self.base);
        let started = Instant::now();
        let response = self
            .client
            .post(url)
            .bearer_auth(self.device(community))
            .json(&body)
            .send()
            .await;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(micros);
        self.requests.fetch_add(1, Ordering::Relaxed);
        match response {
            Ok(r) if r.status().as_u16() == 202 => Ok(()),
            Ok(r) if r.status().is_client_error() => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(r) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                bail!("event: {}", r.status())
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    /// The device token of `community` (the operator's before the set-up made one).
    fn device(&self, community: &str) -> String {
        self.devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(community)
            .map_or_else(|| self.operator.clone(), |(_, secret)| secret.clone())
    }

    /// Sends an operator's request; fails unless it succeeds.
    async fn admin(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let r = request.bearer_auth(&self.operator).send().await?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{what}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Enables the mix's plugins where they are not enabled, and makes a device token,
    /// in `community`.
    async fn prepare(&self, community: &str) -> Result<()> {
        let needed: &[&str] = match self.mix {
            Mix::Workflow => &["counter"],
            Mix::District => &["alert-rules", "canteen", "taxi-dispatch", "visitor-access"],
        };
        let base = format!("{}/v1/communities/{community}", self.base);
        let enabled = self
            .admin(
                self.client.get(format!("{base}/plugins")),
                "listing plugins",
            )
            .await?;
        for plugin in needed {
            let on = enabled["plugins"]
                .as_array()
                .is_some_and(|l| l.iter().any(|p| p["plugin"] == *plugin));
            if !on {
                self.admin(
                    self.client
                        .put(format!("{base}/plugins/{plugin}"))
                        .json(&json!({})),
                    &format!("enabling {plugin} in {community}"),
                )
                .await?;
            }
        }
        let token = self
            .admin(
                self.client
                    .post(format!("{base}/tokens"))
                    .json(&json!({ "label": format!("courtyard bench {}", self.run) })),
                &format!("creating a device token in {community}"),
            )
            .await?;
        let (Some(id), Some(secret)) = (token["id"].as_str(), token["token"].as_str()) else {
            bail!("creating a device token in {community}: no token in {token}");
        };
        self.devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(community.to_owned(), (id.to_owned(), secret.to_owned()));
        Ok(())
    }

    /// Revokes the device tokens of the set-up.
    async fn revoke_devices(&self) -> Result<()> {
        let devices: Vec<(String, String)> = self
            .devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(c, (id, _))| (c.clone(), id.clone()))
            .collect();
        for (community, id) in devices {
            self.admin(
                self.client.delete(format!(
                    "{}/v1/communities/{community}/tokens/{id}",
                    self.base
                )),
                "revoking a device token",
            )
            .await?;
        }
        Ok(())
    }

    /// Runs the next operation of the mix.
    async fn one(&self) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let community = &self.communities[usize::try_from(n).unwrap_or(0) % self.communities.len()];
        let id = format!("{}-{n}", self.run);
        if self.mix == Mix::Workflow {
            let body = json!({
                "kind": "bench.reading",
                "id": id,
                "payload": { "run": self.run, "device": n % 16 },
            });
            let _ = self.event(community, body).await;
            return;
        }
        let scenario =
            MIX[usize::try_from(n / self.communities.len() as u64).unwrap_or(0) % MIX.len()];
        // Errors are counted by `call`; the run goes on.
        let _ = self.scenario(scenario, community, &id, n).await;
    }

    async fn scenario(&self, scenario: Scenario, community: &str, id: &str, n: u64) -> Result<()> {
        match scenario {
            Scenario::CameraAlert => {
                let body = json!({
                    "kind": "camera.object-thrown",
                    "id": format!("cam-{id}"),
                    "payload": {
                        "camera": format!("cam-b{}", n % 12),
                        "building": format!("{}", n % 12),
                        "floor": n % 30 + 1,
                        "window": format!("{:02}", n % 4),
                        "household": format!("{}-{}{:02}", n % 12, n % 30 + 1, n % 4),
                        "object": "bottle",
                    },
                });
                self.call(community, "alert-rules", "ingest", body, None)
                    .await?;
            }
            Scenario::CanteenOrder => {
                let resident = format!("r-{id}");
                let register = json!({
                    "resident_id": resident, "name": "Bench Resident", "birth_date": "1950-01-01",
                    "address": "Building 1, Room 101",
                });
                self.call(
                    community,
                    "canteen",
                    "register-resident",
                    register,
                    Some(format!("reg-{id}")),
                )
                .await?;
                let order = json!({
                    "resident_id": resident, "date": "2099-12-01", "slot": "lunch", "fulfilment": "pickup",
                    "items": [{ "dish_id": "rice", "portions": 1 }],
                });
                self.call(
                    community,
                    "canteen",
                    "place-order",
                    order,
                    Some(format!("order-{id}")),
                )
                .await?;
            }
            Scenario::TaxiCall => {
                let ride = self
                    .call(
                        community,
                        "taxi-dispatch",
                        "request-ride",
                        json!({ "screen_id": "bench-screen" }),
                        Some(format!("press-{id}")),
                    )
                    .await?;
                if let Some(ride_id) = ride.as_ref().and_then(|r| r["ride_id"].as_str()) {
                    let cancel = json!({ "ride_id": ride_id, "by": "rider", "reason": "bench" });
                    self.call(
                        community,
                        "taxi-dispatch",
                        "cancel-ride",
                        cancel,
                        Some(format!("cancel-{id}")),
                    )
                    .await?;
                }
            }
            Scenario::VisitorCheck => {
                let body =
                    json!({ "gate_id": "east-gate", "face_ref": format!("bench.face.{id}") });
                self.call(community, "visitor-access", "gate-check", body, None)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Publishes what the mix needs in every community: a menu, a taxi screen and drivers;
/// or, for `--mix workflow`, the workflow.
async fn set_up(shared: &Shared) -> Result<()> {
    for community in &shared.communities {
        shared.prepare(community).await?;
    }
    if shared.mix == Mix::Workflow {
        for community in &shared.communities {
            let url = format!(
                "{}/v1/communities/{community}/workflows/bench-chain",
                shared.base
            );
            let r = shared
                .client
                .put(url)
                .bearer_auth(&shared.operator)
                .header("content-type", "application/yaml")
                .body(CHAIN)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!(
                    "applying the bench workflow in {community}: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
        }
        return Ok(());
    }
    for community in &shared.communities {
        let menu = json!({
            "date": "2099-12-01", "slot": "lunch",
            "dishes": [{ "dish_id": "rice", "name": "Rice", "price_fen": 200, "cap": 100000 }],
        });
        let screen = json!({
            "screen_id": "bench-screen",
            "pickup": { "lat": 36.0671, "lon": 120.3826, "description": "Bench tower door" },
        });
        let steps: Vec<(&str, &str, Value)> = vec![
            ("canteen", "set-menu", menu),
            ("taxi-dispatch", "register-screen", screen),
            (
                "taxi-dispatch",
                "report-driver",
                json!({ "driver_id": "bench-cab-1", "lat": 36.068, "lon": 120.383, "available": true }),
            ),
            (
                "taxi-dispatch",
                "report-driver",
                json!({ "driver_id": "bench-cab-2", "lat": 36.069, "lon": 120.384, "available": true }),
            ),
        ];
        for (plugin, op, body) in steps {
            if shared
                .call(community, plugin, op, body, None)
                .await?
                .is_none()
            {
                bail!("set-up of {plugin}/{op} in {community} was refused");
            }
        }
    }
    Ok(())
}

/// Waits until every accepted event's run has finished its last step (the `done`
/// counters add up to the accepted events). Returns the runs and the seconds from the
/// first event to the last run's end.
async fn wait_for_runs(shared: &Shared, started: Instant, bar: &ProgressBar) -> Result<(u64, f64)> {
    let accepted = shared.requests.load(Ordering::Relaxed)
        - shared.refused.load(Ordering::Relaxed)
        - shared.errors.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut done = 0;
        for community in &shared.communities {
            let url = format!(
                "{}/v1/communities/{community}/plugins/counter/invoke/get",
                shared.base
            );
            let r = shared
                .client
                .post(url)
                .bearer_auth(shared.device(community))
                .json(&json!({ "name": format!("{}-done", shared.run) }))
                .send()
                .await?;
            if r.status().is_success() {
                let v: Value = r.json().await?;
                done += v["value"].as_u64().unwrap_or(0);
            }
        }
        if done >= accepted {
            return Ok((done, started.elapsed().as_secs_f64()));
        }
        if Instant::now() > deadline {
            bail!("only {done} of {accepted} workflow runs finished within 300 s");
        }
        bar.set_message(format!("waiting for runs: {done}/{accepted}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Runs the load generator and prints its report.
pub async fn run(args: BenchArgs, communities: Vec<String>) -> Result<()> {
    if communities.is_empty() || args.concurrency == 0 {
        bail!("--communities and --concurrency must be above 0");
    }
    let shared = Arc::new(Shared {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: args.url.trim_end_matches('/').to_owned(),
        communities: communities.into_iter().take(args.communities).collect(),
        operator: match &args.token {
            Some(token) => token.clone(),
            None => std::fs::read_to_string(&args.token_file)
                .with_context(|| {
                    format!(
                        "no --token, and cannot read {}; pass the operator's token",
                        args.token_file.display()
                    )
                })?
                .trim()
                .to_owned(),
        },
        devices: Mutex::default(),
        latencies: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")?),
        requests: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        next: AtomicU64::new(0),
        mix: args.mix,
        run: format!(
            "b{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis()
        ),
    });
    let health = shared
        .client
        .get(format!("{}/healthz", shared.base))
        .send()
        .await;
    if !health.is_ok_and(|r| r.status().is_success()) {
        bail!("no host answers at {}/healthz", shared.base);
    }
    eprintln!("setting up {} communities…", shared.communities.len());
    set_up(&shared).await?;
    shared
        .latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .reset();
    for counter in [&shared.requests, &shared.refused, &shared.errors] {
        counter.store(0, Ordering::Relaxed);
    }

    let duration = Duration::from_secs(args.seconds);
    let bar = ProgressBar::new(args.seconds);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    // At a fixed rate, each worker takes its share of the rate; flat out, workers loop.
    let per_worker = (args.rate > 0)
        .then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate as f64));
    for _ in 0..args.concurrency {
        let shared = shared.clone();
        workers.push(tokio::spawn(async move {
            let mut tick = per_worker.map(tokio::time::interval);
            while Instant::now() < deadline {
                if let Some(tick) = tick.as_mut() {
                    tick.tick().await;
                }
                shared.one().await;
            }
        }));
    }
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let done = shared.requests.load(Ordering::Relaxed);
        bar.set_position(started.elapsed().as_secs().min(args.seconds));
        bar.set_message(format!(
            "{done} requests, {:.0}/s, {} refused, {} errors",
            done as f64 / elapsed,
            shared.refused.load(Ordering::Relaxed),
            shared.errors.load(Ordering::Relaxed)
        ));
    }
    for worker in workers {
        worker.await?;
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let finished = if args.mix == Mix::Workflow {
        Some(wait_for_runs(&shared, started, &bar).await?)
    } else {
        None
    };
    shared.revoke_devices().await?;

    let h = shared
        .latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let requests = shared.requests.load(Ordering::Relaxed);
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "courtyard bench: {} communities, concurrency {}, {}",
        shared.communities.len(),
        args.concurrency,
        if args.rate > 0 {
            format!("{} operations/s", args.rate)
        } else {
            "flat out".to_owned()
        }
    );
    println!(
        "requests: {requests} in {elapsed:.1} s = {:.0}/s",
        requests as f64 / elapsed
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    if let Some((runs, seconds)) = finished {
        println!(
            "workflow runs: {runs} finished (3 durable steps each) in {seconds:.1} s = {:.0} events/s end to end",
            runs as f64 / seconds
        );
    }
    println!("refused (4xx): {}", shared.refused.load(Ordering::Relaxed));
    println!(
        "errors (5xx, transport): {}",
        shared.errors.load(Ordering::Relaxed)
    );
    match args.host_pid.and_then(rss) {
        Some((now, peak)) => println!(
            "host RSS: {:.1} MiB (peak {:.1} MiB)",
            now as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
        None => println!("host RSS: unknown (pass --host-pid)"),
    }
    Ok(())
}
