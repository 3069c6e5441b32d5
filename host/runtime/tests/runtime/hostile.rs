//! Hostile plugins (issue 17): pooled memory handed from one instance to the next
//! carries nothing over.

use super::{ok, runtime_in};
use courtyard_runtime::{Limits, Runtime};
use serde_json::{Value, json};
use std::time::Instant;

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
