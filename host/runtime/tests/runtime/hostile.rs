//! Hostile plugins (issue 17): pooled memory handed from one instance to the next
//! carries nothing over, and a crowd of misbehaving calls is contained.

use super::{call, ok, runtime_in};
use courtyard_runtime::{InvokeError, Limits, Runtime};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A runtime on a fresh temporary directory (kept alive by the returned guard).
fn runtime(limits: Limits) -> (Runtime, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (runtime_in(dir.path(), limits), dir)
}

/// A random-looking 64-bit number: splitmix64 of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Reuse cycles of the pool-isolation test, per kind of instance; each is four calls.
const CYCLES: u64 = 250;
/// What `mark-memory` fills and `scan-memory` reads (see the fixture).
const MARKED: u64 = 4 << 20;
const SCANNED: u64 = 8 << 20;

/// An address a fixture returned.
fn address(out: &Value, field: &str) -> u64 {
    out[field].as_u64().expect("an address")
}

/// Pool isolation (issue 17, item 5). Community A's call fills 4 MiB of its memory
/// with a marker (`mark-memory`), community B's call grows its memory by 8 MiB and reads
/// the new pages (`scan-memory`), then the other way round, `CYCLES` times: 1,000 calls
/// on fresh instances (no warm pool: every call's instance takes a pool slot that
/// earlier instances of both communities used), then 1,000 on warm ones (misbehave
/// allows 3 calls per instance, so instances of A and B retire and pass their slots on
/// all along). New pages must be zero in any instance: no scan may see a byte that is
/// not zero, let alone a marker of this run. On fresh instances the test also checks
/// that the scanned pages cover where the previous call put its marker (all of it but
/// at most its first 64 KiB, which lie in the initial memory the pool resets from the
/// component's image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_memory_never_shows_a_marker_to_a_fresh_instance_or_another_community() {
    let seed = mix(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()));
    // Every marker of the run starts with this; a scan looks for it.
    let prefix = format!("courtyard-marker-{:016x}-", mix(seed));
    let started = Instant::now();
    for (kind, max_warm_instances) in [("fresh", 0), ("warm", 64)] {
        let (rt, _dir) = runtime(Limits {
            max_warm_instances,
            ..Limits::default()
        });
        for cycle in 0..CYCLES {
            for (turn, (marking, scanning)) in [("pool-a", "pool-b"), ("pool-b", "pool-a")]
                .into_iter()
                .enumerate()
            {
                let marker = format!("{prefix}{:016x}", mix(seed ^ mix(cycle * 2 + turn as u64)));
                let mark = ok(
                    &rt,
                    marking,
                    "misbehave",
                    "mark-memory",
                    json!({ "marker": marker }),
                )
                .await
                .output;
                assert_eq!(mark["bytes"], MARKED);
                let scan = ok(
                    &rt,
                    scanning,
                    "misbehave",
                    "scan-memory",
                    json!({ "marker": prefix }),
                )
                .await
                .output;
                assert_eq!(
                    scan,
                    json!({ "from": scan["from"], "scanned": SCANNED, "nonzero": 0, "seen": false }),
                    "{kind} instances, cycle {cycle}: {scanning} saw memory that {marking} wrote"
                );
                if kind == "fresh" {
                    let (at, from) = (address(&mark, "at"), address(&scan, "from"));
                    assert!(
                        from <= at + 64 * 1024 && at + MARKED <= from + SCANNED,
                        "the scan of [{from}, +{SCANNED}) misses the marker at [{at}, +{MARKED})"
                    );
                }
            }
        }
        println!(
            "pool isolation: {kind} instances: {} marks and {} scans, every scan clean, {:.1?} since the start",
            CYCLES * 2,
            CYCLES * 2,
            started.elapsed()
        );
    }
}

/// One hostile call: when it began (after the launch of the attack), how long it took.
#[derive(Debug)]
struct Call {
    community: String,
    op: &'static str,
    began: Duration,
    took: Duration,
}

/// `community`'s counter `name`.
async fn counter(rt: &Runtime, community: &str, name: &str) -> Value {
    ok(rt, community, "counter", "get", json!({ "name": name }))
        .await
        .output["value"]
        .clone()
}

/// VmRSS of this process, in bytes, from `/proc/self/status`.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

const MIB: u64 = 1024 * 1024;

/// Attacker communities of the concurrency test per hostile operation: each of the 200
/// makes one call (a community's calls of one plugin run one at a time, and a call that
/// waits for its turn past the queue deadline gives up as `Busy` without running: that
/// is fair sharing, tested elsewhere; here every hostile call runs).
const ATTACKERS: usize = 50;
const HOSTILE_OPS: [&str; 4] = ["spin", "hog", "crash", "recurse"];
/// The memory cap of the concurrency test.
const MEMORY_CAP: usize = 16 << 20;
/// How long after it was made a hostile call may fail, beyond its deadline.
const MARGIN: Duration = Duration::from_secs(5);
/// How much VmRSS may grow over the attack.
const RSS_GROWTH_BOUND: u64 = 256 * MIB;

/// Hostile plugins under concurrency (issue 17, item 4). 200 calls at once: 50 each of
/// `spin`, `hog` (writing every byte it gets), `crash` and `recurse`, one per attacker
/// community (256 slots, so that no call waits for one), while a neighbour community
/// increments a counter in a loop. Each call fails with its own error (timeout, memory limit, trap, stack
/// overflow) within its deadline (1 s) plus 5 s from when it was made; the
/// neighbour sees no error and loses no update; the process survives (the test ends);
/// VmRSS ends less than 256 MiB above where it was before the attack. The margin covers
/// 50 busy loops starving 2 cores (measured when 4 calls shared each community): on a 2-core machine
/// busy with other builds, calls took up to about 4 s, as a deadline counted in ticks of
/// a sleeping thread stretched to 1.8 s and a call waited up to 2 s to get running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "reads VmRSS from /proc/self/status"
)]
async fn hostile_calls_fail_with_their_own_errors_in_time_while_a_neighbour_sees_none_and_rss_stays_bounded()
 {
    let limits = Limits {
        timeout: Duration::from_secs(1),
        max_concurrency: 256,
        max_memory_bytes: MEMORY_CAP,
        ..Limits::default()
    };
    let deadline = limits.timeout;
    let (rt, _dir) = runtime(limits);

    // Warm up every path once (code paged in, the pool's first slots touched), so the
    // baseline is the process as it serves, not as it starts.
    for op in HOSTILE_OPS {
        let result = rt
            .invoke(call("warm-up", "misbehave", op, json!({ "fill": true })))
            .await;
        assert!(result.is_err(), "{op} should have failed");
    }
    ok(
        &rt,
        "neighbour",
        "counter",
        "increment",
        json!({ "name": "calls" }),
    )
    .await;
    let baseline = rss();

    let done = Arc::new(AtomicBool::new(false));
    // The neighbour's increments so far.
    let served = Arc::new(AtomicU64::new(0));
    let neighbour = {
        let (rt, done, served) = (rt.clone(), done.clone(), served.clone());
        tokio::spawn(async move {
            let (mut errors, mut slowest) = (Vec::new(), Duration::ZERO);
            while !done.load(Ordering::Relaxed) {
                let at = Instant::now();
                match rt
                    .invoke(call(
                        "neighbour",
                        "counter",
                        "increment",
                        json!({ "name": "calls" }),
                    ))
                    .await
                {
                    Ok(_) => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                slowest = slowest.max(at.elapsed());
            }
            (errors, slowest)
        })
    };
    // The peak, sampled while the attack runs (for the record; the bound is on after).
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    // Let the neighbour settle into its loop first.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Launched round by round, each community's operations rotated, so that every kind
    // runs beside every other at any time.
    let launched = Instant::now();
    let served_before = served.load(Ordering::Relaxed);
    let mut attack = Vec::new();
    for round in 0..HOSTILE_OPS.len() {
        for attacker in 0..ATTACKERS {
            let op = HOSTILE_OPS[(round + attacker) % HOSTILE_OPS.len()];
            let community = format!("attacker-{attacker:02}-{round}");
            let rt = rt.clone();
            attack.push(tokio::spawn(async move {
                let began = Instant::now();
                let result = rt
                    .invoke(call(&community, "misbehave", op, json!({ "fill": true })))
                    .await;
                let call = Call {
                    community,
                    op,
                    began: began - launched,
                    took: began.elapsed(),
                };
                (call, result)
            }));
        }
    }
    // Everything is gathered first, so that a failure shows the whole attack.
    let (mut wrong, mut late) = (Vec::new(), Vec::new());
    let (mut slowest, mut last_began) = (std::collections::BTreeMap::new(), Duration::ZERO);
    for task in attack {
        let (call, result) = task.await.expect("hostile call task");
        let Call {
            community,
            op,
            began,
            took,
        } = call;
        let own = match &result {
            Ok(_) => false,
            Err(err) => match op {
                "spin" => matches!(err, InvokeError::Timeout { limit, .. } if *limit == deadline),
                "hog" => {
                    matches!(err, InvokeError::MemoryLimit { limit, .. } if *limit == MEMORY_CAP)
                }
                "crash" => matches!(err, InvokeError::Trap { message, .. }
                    if message.contains("misbehave was asked to crash")),
                _ => matches!(err, InvokeError::StackOverflow { .. }),
            },
        };
        if !own {
            wrong.push(match result {
                Ok(out) => format!("{community}: {op} returned {}", out.output),
                Err(e) => format!("{community}: {op} failed with another error: {e}"),
            });
        }
        if took > deadline + MARGIN {
            late.push(format!("{community}: {op} failed after {took:.2?}"));
        }
        let max = slowest.entry(op).or_insert(Duration::ZERO);
        *max = (*max).max(took);
        last_began = last_began.max(began);
    }
    let attack_took = launched.elapsed();
    let served_during = served.load(Ordering::Relaxed) - served_before;

    done.store(true, Ordering::Relaxed);
    let (errors, neighbour_slowest) = neighbour.await.expect("neighbour task");
    let calls = served.load(Ordering::Relaxed);
    let peak = sampler.join().expect("sampler");
    let after = rss();
    println!(
        "attack: {} hostile calls in as many communities in {attack_took:.2?}, the last began {last_began:.2?} after the launch; slowest by operation: {slowest:.2?}",
        ATTACKERS * HOSTILE_OPS.len()
    );
    println!(
        "neighbour: {calls} increments, {served_during} during the attack, {} errors, slowest {neighbour_slowest:.2?}; VmRSS baseline {} MiB, peak sampled {} MiB, after {} MiB",
        errors.len(),
        baseline / MIB,
        peak / MIB,
        after / MIB
    );

    assert!(wrong.is_empty(), "{} calls: {wrong:#?}", wrong.len());
    assert!(late.is_empty(), "{} calls: {late:#?}", late.len());
    assert!(errors.is_empty(), "the neighbour saw errors: {errors:?}");
    assert!(
        served_during > 0,
        "the neighbour was not served during the attack"
    );
    assert_eq!(
        counter(&rt, "neighbour", "calls").await,
        calls + 1,
        "the neighbour lost an update"
    );
    // The bound: the 50 hogs write 16 MiB each, up to 50 at once (one per community),
    // in as many pool slots. After the attack every instance is gone, and the pool must
    // have given its slots' pages back (it reserves address space, not resident
    // memory): what stays is threads' stacks and allocators' caches (about 30 MiB,
    // measured). 256 MiB leaves room for other tests of this binary running in the same
    // process meanwhile, and fails if the pages of 16 or more of those slots stayed.
    assert!(
        after.saturating_sub(baseline) < RSS_GROWTH_BOUND,
        "VmRSS grew from {} MiB to {} MiB over the attack",
        baseline / MIB,
        after / MIB
    );
}
