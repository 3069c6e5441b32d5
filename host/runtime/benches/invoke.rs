//! The invocation path, measured beside raw wasmtime in the same run:
//! `cargo bench -p courtyard-runtime` (see `docs/performance.md`).
//!
//! - `raw-wasmtime/*`: the baseline, no Courtyard code: an `InstancePre` of the same
//!   component on an engine configured like Courtyard's (pooling allocator, epochs),
//!   a store with an empty WASI context, `instantiate` and a typed call of
//!   `handler.invoke`, or the typed call alone on a live instance;
//! - `courtyard/*`: `Runtime::invoke` — input schema check, a fresh (or, for `warm`, a
//!   reused) instance with deadline and memory cap, the call, the output schema check,
//!   the commit of the call's writes and the flush that makes them durable.
//!
//! The payload of the `ok` operations is a ~1 KB JSON document.

use courtyard_plugin_artifacts::{Artifact, COUNTER, MISBEHAVE, MISBEHAVE_PY};
use courtyard_registry::Package;
use courtyard_runtime::{Invocation, Limits, Runtime, RuntimeConfig};
use courtyard_store::SledStore;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentType, InstancePre, Lift, Linker, Lower, ResourceTable, TypedFunc,
};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A ~1 KB input.
fn payload() -> Value {
    json!({
        "camera": "cam-b3-east",
        "building": "3",
        "floor": 15,
        "window": "02",
        "household": "3-1502",
        "object": "bottle",
        "detections": (0..14).map(|i| json!({"frame": i, "x": 0.25 + f64::from(i) / 100.0, "y": 0.5, "w": 0.02, "h": 0.04, "score": 0.93})).collect::<Vec<_>>(),
    })
}

// ---- the raw wasmtime baseline ------------------------------------------------------

#[derive(ComponentType, Lower)]
#[component(record)]
struct CallContext {
    community: String,
    plugin: String,
    operation: String,
    #[component(name = "idempotency-key")]
    idempotency_key: Option<String>,
    #[component(name = "now-ms")]
    now_ms: i64,
    #[component(name = "request-id")]
    request_id: String,
}

#[derive(ComponentType, Lift)]
#[component(variant)]
enum PluginError {
    #[component(name = "invalid-input")]
    InvalidInput(String),
    #[component(name = "not-found")]
    NotFound(String),
    #[component(name = "conflict")]
    Conflict(String),
    #[component(name = "unavailable")]
    Unavailable(String),
    #[component(name = "internal")]
    Internal(String),
}

impl PluginError {
    fn message(&self) -> &str {
        match self {
            Self::InvalidInput(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::Unavailable(m)
            | Self::Internal(m) => m,
        }
    }
}

struct Raw {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Raw {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

type Invoke = TypedFunc<(CallContext, String, String), (Result<String, PluginError>,)>;

struct Baseline {
    engine: Engine,
    pre: InstancePre<Raw>,
}

impl Baseline {
    fn new(artifact: Artifact) -> Self {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .max_core_instances_per_component(64)
            .max_memories_per_component(16)
            .max_tables_per_component(64)
            .total_core_instances(64 * 16)
            .total_memories(64 * 4)
            .total_tables(64 * 16)
            .max_memory_size(64 << 20);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true);
        let engine = Engine::new(&config).expect("engine");
        let component = Component::new(&engine, artifact.component).expect("compile");
        let mut linker: Linker<Raw> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
        // The Courtyard imports are never called by `ok`: stubs that trap.
        for (name, item) in component.component_type().imports(&engine) {
            let (true, ComponentItem::ComponentInstance(instance)) =
                (name.starts_with("courtyard:plugin/"), item.ty)
            else {
                continue;
            };
            let mut stubs = linker.instance(name).expect("instance");
            for (func, item) in instance.exports(&engine) {
                if let ComponentItem::ComponentFunc(_) = item.ty {
                    stubs
                        .func_new(func, |_, _, _, _| {
                            Err(wasmtime::Error::msg("not provided by the baseline"))
                        })
                        .expect("stub");
                }
            }
        }
        let pre = linker.instantiate_pre(&component).expect("pre");
        Self { engine, pre }
    }

    fn store(&self) -> Store<Raw> {
        let mut store = Store::new(
            &self.engine,
            Raw {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        store.set_epoch_deadline(u64::MAX / 2);
        store
    }

    fn instantiate(&self, store: &mut Store<Raw>) -> Invoke {
        let instance = self.pre.instantiate(&mut *store).expect("instantiate");
        let handler = instance
            .get_export_index(&mut *store, None, "courtyard:plugin/handler@0.1.0")
            .expect("handler");
        let invoke = instance
            .get_export_index(&mut *store, Some(&handler), "invoke")
            .expect("invoke");
        instance
            .get_typed_func(&mut *store, invoke)
            .expect("typed invoke")
    }

    fn call(store: &mut Store<Raw>, invoke: &Invoke, input: &str) {
        let ctx = CallContext {
            community: "nanhu".into(),
            plugin: "misbehave".into(),
            operation: "ok".into(),
            idempotency_key: None,
            now_ms: 1_795_824_000_000,
            request_id: "bench".into(),
        };
        let (out,) = invoke
            .call(&mut *store, (ctx, "ok".into(), input.to_owned()))
            .expect("call");
        if let Err(e) = out {
            panic!("ok failed: {}", e.message());
        }
    }
}

// ---- Courtyard ------------------------------------------------------------------------

/// The artifact's package, its manifest allowing instance reuse when `reuse`.
fn package(artifact: Artifact, reuse: bool) -> Package {
    let mut manifest: Value = serde_json::from_str(artifact.manifest).expect("manifest");
    let object = manifest.as_object_mut().expect("object");
    if reuse {
        object.insert("instance_reuse".into(), json!({ "max_calls": 100_000 }));
    } else {
        object.remove("instance_reuse");
    }
    Package::new(&manifest.to_string(), artifact.component.to_vec()).expect("package")
}

struct Host {
    runtime: Runtime,
    _dir: tempfile::TempDir,
}

fn host(reuse: bool) -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(&dir.path().join("store")).expect("sled"));
    let runtime = Runtime::new(
        RuntimeConfig {
            limits: Limits {
                max_warm_instances: if reuse { 64 } else { 0 },
                ..Limits::default()
            },
            cache_dir: Some(std::env::temp_dir().join("courtyard-bench-cache")),
            ..RuntimeConfig::default()
        },
        store,
    )
    .expect("runtime");
    for artifact in [MISBEHAVE, MISBEHAVE_PY, COUNTER] {
        runtime.load(&package(artifact, reuse)).expect("load");
    }
    Host { runtime, _dir: dir }
}

fn invocation(plugin: &str, operation: &str, input: &Value) -> Invocation {
    Invocation {
        community: "nanhu".into(),
        plugin: plugin.into(),
        operation: operation.into(),
        input: input.clone(),
        idempotency_key: None,
        request_id: "bench".into(),
        config: None,
        depth: 0,
        chain: None,
    }
}

fn benches(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let input = payload();
    let text = input.to_string();
    assert!((900..1300).contains(&text.len()), "{} bytes", text.len());

    let mut group = c.benchmark_group("rust");
    group.measurement_time(Duration::from_secs(4));
    let raw = Baseline::new(MISBEHAVE);
    group.bench_function("raw-wasmtime/instantiate+call ok 1KB", |b| {
        b.iter(|| {
            let mut store = raw.store();
            let invoke = raw.instantiate(&mut store);
            Baseline::call(&mut store, &invoke, &text);
        });
    });
    group.bench_function("raw-wasmtime/call ok 1KB on a live instance", |b| {
        let mut store = raw.store();
        let invoke = raw.instantiate(&mut store);
        b.iter(|| Baseline::call(&mut store, &invoke, &text));
    });
    for (label, reuse) in [("fresh", false), ("warm", true)] {
        let h = host(reuse);
        let cases: [(&str, &str, &str, Value); 3] = [
            ("ok 1KB", "misbehave", "ok", input.clone()),
            (
                "counter increment (state write, durable)",
                "counter",
                "increment",
                json!({ "name": "bench" }),
            ),
            (
                "counter get (state read)",
                "counter",
                "get",
                json!({ "name": "bench" }),
            ),
        ];
        for (name, plugin, op, input) in cases {
            tokio
                .block_on(h.runtime.invoke(invocation(plugin, op, &input)))
                .expect("warm-up call");
            group.bench_function(format!("courtyard/{label}/{name}"), |b| {
                b.iter(|| {
                    tokio
                        .block_on(h.runtime.invoke(invocation(plugin, op, &input)))
                        .expect("call")
                });
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("python");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(6));
    let raw = Baseline::new(MISBEHAVE_PY);
    group.bench_function("raw-wasmtime/instantiate+call ok 1KB", |b| {
        b.iter(|| {
            let mut store = raw.store();
            let invoke = raw.instantiate(&mut store);
            Baseline::call(&mut store, &invoke, &text);
        });
    });
    group.bench_function("raw-wasmtime/call ok 1KB on a live instance", |b| {
        let mut store = raw.store();
        let invoke = raw.instantiate(&mut store);
        b.iter(|| Baseline::call(&mut store, &invoke, &text));
    });
    for (label, reuse) in [("fresh", false), ("warm", true)] {
        let h = host(reuse);
        tokio
            .block_on(h.runtime.invoke(invocation("misbehave-py", "ok", &input)))
            .expect("warm-up call");
        group.bench_function(format!("courtyard/{label}/ok 1KB"), |b| {
            b.iter(|| {
                tokio
                    .block_on(h.runtime.invoke(invocation("misbehave-py", "ok", &input)))
                    .expect("call")
            });
        });
    }
    group.finish();
}

criterion_group!(invoke, benches);
criterion_main!(invoke);
