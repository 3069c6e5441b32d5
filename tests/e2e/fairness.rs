//! One community cannot stall another: community A floods the host with calls that
//! hog their namespace (looping calls that run to their CPU deadline; many concurrent
//! calls to one namespace), while community B keeps calling its own plugin. B is
//! measured against a control: the same number of connections flooding a route that
//! does no plugin work (the load generator shares the machine's cores with the host,
//! so an idle baseline would measure the load generator, not the host's fairness).

use super::{Host, UNLIMITED, fixture_plugins};
use anyhow::{Context as _, Result, ensure};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long each phase runs.
const PHASE: Duration = Duration::from_secs(4);
/// The host's limits in these tests (its defaults).
const TIMEOUT: Duration = Duration::from_millis(1000);
const QUEUE_WAIT: Duration = Duration::from_millis(1000);
/// What the host may add to a call's queue wait and CPU deadline before it answers
/// (instantiation, the commit and its flush, HTTP, a loaded 2-core machine).
const MARGIN: Duration = Duration::from_millis(1500);

/// B's calls during a phase: latencies of its answers, and any that were not 200.
struct Neighbour {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

impl Neighbour {
    fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }
}

/// Community B (`beigong-east`) increments its counter, one call at a time, until
/// `stop`.
async fn neighbour(host_url: String, token: String, stop: Arc<AtomicBool>) -> Result<Neighbour> {
    let c = super::client_with(&token);
    let url = format!("{host_url}/v1/communities/beigong-east/plugins/counter/invoke/increment");
    let mut out = Neighbour {
        latencies: Vec::new(),
        errors: Vec::new(),
    };
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let r = c.post(&url).json(&json!({ "name": "fair" })).send().await?;
        let status = r.status().as_u16();
        let body = r.text().await?;
        out.latencies.push(started.elapsed());
        if status != 200 {
            out.errors.push(format!("{status} {body}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(out)
}

/// Runs `connections` clients that each send `request` in a loop for one phase, and B
/// beside them; returns B's results and every flood answer's (status, latency).
async fn phase(
    host: &Host,
    connections: usize,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + Clone + 'static,
) -> Result<(Neighbour, Vec<(u16, Duration)>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..connections {
        let (c, stop, request) = (host.client(), stop.clone(), request.clone());
        flood.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let r = request(&c).send().await?;
                let status = r.status().as_u16();
                let _ = r.bytes().await?;
                answers.push((status, started.elapsed()));
            }
            anyhow::Ok(answers)
        }));
    }
    // Let the flood build up before B is measured.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = tokio::spawn(neighbour(
        host.base.clone(),
        host.token.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(PHASE).await;
    stop.store(true, Ordering::SeqCst);
    let b = b.await??;
    let mut answers = Vec::new();
    for f in flood {
        answers.extend(f.await??);
    }
    Ok((b, answers))
}

/// The pass criterion: while community A sends 100 concurrent looping calls,
/// and then 128 concurrent calls to one namespace, community B's p99 stays within 3× of
/// its p99 under a control flood of the same 100 (128) connections on `/healthz`, with
/// zero errors; every call of A is answered within the host's queue wait plus its CPU
/// deadline plus [`MARGIN`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_community_leaves_its_neighbour_within_3x_of_a_control_flood() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = fixture_plugins(dir.path())?;
    let mut flags = vec!["--plugins", plugins.to_str().context("path")?];
    flags.extend_from_slice(UNLIMITED);
    let host = Host::start(dir.path(), &flags)?;
    host.enable("nanhu", "misbehave").await?;
    let healthz = host.url("/healthz");
    let spin = host.url("/v1/communities/nanhu/plugins/misbehave/invoke/spin");
    let increment = host.url("/v1/communities/nanhu/plugins/counter/invoke/increment");
    let bound = QUEUE_WAIT + TIMEOUT + MARGIN;

    for (connections, name) in [(100, "looping calls"), (128, "calls to one namespace")] {
        let url = healthz.clone();
        let (control, _) = phase(&host, connections, move |c| c.get(&url)).await?;
        let (b, a) = if name == "looping calls" {
            let url = spin.clone();
            phase(&host, connections, move |c| c.post(&url).json(&json!({}))).await?
        } else {
            let url = increment.clone();
            phase(&host, connections, move |c| {
                c.post(&url).json(&json!({ "name": "hot" }))
            })
            .await?
        };
        eprintln!(
            "{name}: B's p99 {:?} over {} calls (control {:?} over {}); A: {} answers, slowest {:?}",
            b.p99(),
            b.latencies.len(),
            control.p99(),
            control.latencies.len(),
            a.len(),
            a.iter().map(|(_, d)| *d).max().unwrap_or_default(),
        );
        ensure!(control.errors.is_empty(), "control: {:?}", control.errors);
        ensure!(b.errors.is_empty(), "{name}: B got errors: {:?}", b.errors);
        ensure!(
            b.p99() <= control.p99() * 3,
            "{name}: B's p99 {:?} is above 3 × the control's {:?}",
            b.p99(),
            control.p99()
        );
        for (status, took) in &a {
            ensure!(
                *took <= bound,
                "{name}: a call of A was answered after {took:?}, past {bound:?}"
            );
            ensure!(
                matches!(status, 200 | 503),
                "{name}: a call of A got {status}"
            );
        }
    }
    Ok(())
}
