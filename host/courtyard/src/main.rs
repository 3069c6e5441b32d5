//! `courtyard`: the Courtyard host.
//!
//! `courtyard serve` opens (or creates) a data directory, loads the standard plugins
//! (and any plugin packages in `--plugins`), and serves the HTTP API.

mod bench;
mod cli;
mod recovery;
mod scaffold;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use courtyard_api::{AppState, Rate, RateLimits, router};
use courtyard_registry::{Package, PackageStore};
use courtyard_runtime::{Compiled, Limits, Runtime, RuntimeConfig};
use courtyard_store::{SledStore, Store};
use courtyard_tenancy::{Actor, District, Role, SeedPlugin, Tenancy};
use courtyard_workflow::{Engine, EngineConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "courtyard",
    version,
    about = "The Courtyard plugin host for residential communities"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the district's HTTP API.
    Serve(ServeArgs),
    /// Work on plugins: start a new one; publish it; enable, configure or disable it in a
    /// community.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// The district's communities.
    Community {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(subcommand)]
        command: cli::CommunityCommand,
    },
    /// A community's workflows: apply, switch on and off, run by hand.
    Workflow {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(subcommand)]
        command: cli::WorkflowCommand,
    },
    /// Events, as a device sends them.
    Event {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(subcommand)]
        command: cli::EventCommand,
    },
    /// A community's workflow runs (newest first), or one run with its steps.
    Runs {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(flatten)]
        args: cli::RunsArgs,
    },
    /// A community's alarms (from alert-rules).
    Alarms {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(flatten)]
        args: cli::AlarmsArgs,
    },
    /// The audit log: who changed what, when (a community's, or the whole district's).
    Audit {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(flatten)]
        args: cli::AuditArgs,
    },
    /// A community's tokens: create one for a device, list, revoke.
    Token {
        #[command(flatten)]
        connection: cli::Connection,
        #[command(subcommand)]
        command: cli::TokenCommand,
    },
    /// Drive a running host with the district's everyday traffic and report throughput,
    /// latency percentiles, errors and the host's memory.
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
        /// The district file whose communities to use; the repository's when not given.
        #[arg(long)]
        district: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Over the API: list, enable, disable, publish.
    #[command(flatten)]
    Admin(cli::PluginAdmin),
    /// Write a buildable starting point for a new plugin: a manifest, an example
    /// operation with its unit test, and `build.sh`, which builds `plugin.wasm`.
    New {
        /// The plugin's name (lowercase letters, digits and '-').
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: scaffold::Lang,
        /// Where to create the plugin's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Courtyard repository (for the SDKs, the WIT and the build tools).
        #[arg(long, default_value_os_t = scaffold::default_repo())]
        repo: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The data directory: the store and the cache of compiled plugins.
    #[arg(long, env = "COURTYARD_DATA_DIR", default_value = "./courtyard-data")]
    data_dir: PathBuf,
    /// Where compiled plugins are cached; `<data-dir>/cache` when not given. Entries are
    /// keyed by content and engine, so hosts may share one.
    #[arg(long, env = "COURTYARD_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "COURTYARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A district file (TOML); the repository's `district.toml` when not given.
    #[arg(long, env = "COURTYARD_DISTRICT")]
    district: Option<PathBuf>,
    /// A directory of extra plugin packages: every sub-directory with a
    /// `manifest.json` and a `plugin.wasm` (a component) is loaded.
    #[arg(long, env = "COURTYARD_PLUGINS")]
    plugins: Option<PathBuf>,
    /// CPU deadline of one plugin invocation, in milliseconds.
    #[arg(long, env = "COURTYARD_TIMEOUT_MS", default_value_t = 1000)]
    timeout_ms: u64,
    /// Memory cap of one plugin instance, in MiB.
    #[arg(long, env = "COURTYARD_MAX_MEMORY_MIB", default_value_t = 64)]
    max_memory_mib: usize,
    /// Wasm stack limit of one plugin invocation, in KiB.
    #[arg(long, env = "COURTYARD_MAX_STACK_KIB", default_value_t = 512)]
    max_stack_kib: usize,
    /// Invocations run at once (more wait for a slot).
    #[arg(long, env = "COURTYARD_MAX_CONCURRENCY", default_value_t = 64)]
    max_concurrency: u32,
    /// Invocations one community may run at once (its further calls wait), so that one
    /// busy or hostile community cannot take every slot.
    #[arg(
        long,
        env = "COURTYARD_MAX_CONCURRENCY_PER_COMMUNITY",
        default_value_t = 8
    )]
    max_concurrency_per_community: u32,
    /// How long a call may wait for its turn (its namespace, its community's share, a
    /// slot), in milliseconds, before it is answered 503 `busy` without having run.
    #[arg(long, env = "COURTYARD_MAX_QUEUE_WAIT_MS", default_value_t = 1000)]
    max_queue_wait_ms: u64,
    /// Idle plugin instances kept for reuse, for plugins whose manifest allows it
    /// (`instance_reuse`); 0 gives every call a fresh instance.
    #[arg(long, env = "COURTYARD_MAX_WARM_INSTANCES", default_value_t = 64)]
    max_warm_instances: u32,
    /// Requests per second one token may make (twice that in a burst); 0: no limit.
    #[arg(long, env = "COURTYARD_RATE_PER_TOKEN", default_value_t = 200)]
    rate_per_token: u32,
    /// Requests per second from one community's devices to its routes, together (twice
    /// that in a burst; its admin and the operator are not counted); 0: no limit.
    #[arg(long, env = "COURTYARD_RATE_PER_COMMUNITY", default_value_t = 500)]
    rate_per_community: u32,
    /// How long one request may take, in seconds, before it is answered with 503; 0: no
    /// limit.
    #[arg(long, env = "COURTYARD_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Log format.
    #[arg(long, env = "COURTYARD_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sled=warn,wasmtime=warn,cranelift=warn")
    });
    // Colours only for a person at a terminal, not in files, pipes and CI logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            dir,
            repo,
        }) => {
            let target = scaffold::new_plugin(&name, lang, &dir, &repo)?;
            println!("created {}", target.display());
            println!(
                "next: {}/build.sh, then `courtyard serve --plugins {}`",
                target.display(),
                dir.display()
            );
            Ok(())
        }
        Command::Plugin(PluginCommand::Admin(command)) => block_on(cli::plugin(command)),
        Command::Community {
            connection,
            command,
        } => block_on(cli::community(&connection, command)),
        Command::Workflow {
            connection,
            command,
        } => block_on(cli::workflow(&connection, command)),
        Command::Event {
            connection,
            command,
        } => block_on(cli::event(&connection, command)),
        Command::Runs { connection, args } => block_on(cli::runs(&connection, args)),
        Command::Alarms { connection, args } => block_on(cli::alarms(&connection, args)),
        Command::Audit { connection, args } => block_on(cli::audit(&connection, args)),
        Command::Token {
            connection,
            command,
        } => block_on(cli::token(&connection, command)),
        Command::Bench { args, district } => {
            let district = match district {
                Some(path) => District::parse(&std::fs::read_to_string(&path)?)?,
                None => District::reference()?,
            };
            let ids = district
                .communities
                .iter()
                .map(|c| c.id.to_string())
                .collect();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(bench::run(args, ids))
        }
        Command::Serve(args) => {
            init_tracing(args.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(serve(args))
        }
    }
}

/// Runs a command of the admin's CLI.
fn block_on(command: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}

/// Reads the extra plugin packages of `dir`.
fn read_packages(dir: &Path) -> Result<Vec<Package>> {
    let mut packages = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the plugin directory {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        if !path.is_dir() || !path.join("manifest.json").exists() {
            continue;
        }
        if !path.join("plugin.wasm").exists() {
            bail!(
                "{}: no plugin.wasm next to manifest.json; build the plugin first",
                path.display()
            );
        }
        let manifest = std::fs::read_to_string(path.join("manifest.json"))
            .with_context(|| format!("{}: cannot read manifest.json", path.display()))?;
        let component = std::fs::read(path.join("plugin.wasm"))
            .with_context(|| format!("{}: cannot read plugin.wasm", path.display()))?;
        packages.push(
            Package::new(&manifest, component).with_context(|| format!("{}", path.display()))?,
        );
    }
    Ok(packages)
}

async fn serve(args: ServeArgs) -> Result<()> {
    let started = std::time::Instant::now();
    // Installed first, so that nothing recorded during start-up is lost.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
            1.0, 2.5,
        ])?
        .install_recorder()?;
    let district = match &args.district {
        Some(path) => District::parse(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )?,
        None => District::reference()?,
    };
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let store: Arc<dyn Store> = Arc::new(SledStore::open(&args.data_dir.join("store"))?);
    let limits = Limits {
        timeout: Duration::from_millis(args.timeout_ms),
        max_memory_bytes: args.max_memory_mib * 1024 * 1024,
        max_wasm_stack: args.max_stack_kib * 1024,
        max_concurrency: args.max_concurrency,
        max_concurrency_per_community: args.max_concurrency_per_community,
        max_queue_wait: Duration::from_millis(args.max_queue_wait_ms),
        max_warm_instances: args.max_warm_instances,
    };
    if args.timeout_ms == 0
        || args.max_memory_mib == 0
        || args.max_concurrency == 0
        || args.max_concurrency_per_community == 0
    {
        bail!(
            "--timeout-ms, --max-memory-mib, --max-concurrency and --max-concurrency-per-community must be above 0"
        );
    }
    let config = RuntimeConfig {
        limits,
        cache_dir: Some(
            args.cache_dir
                .clone()
                .unwrap_or_else(|| args.data_dir.join("cache")),
        ),
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config, store.clone())?;

    let mut packages = Vec::new();
    for artifact in courtyard_plugin_artifacts::STANDARD {
        packages.push(Package::new(
            artifact.manifest,
            artifact.component.to_vec(),
        )?);
    }
    if let Some(dir) = &args.plugins {
        packages.extend(read_packages(dir)?);
    }
    let mut compiled_any = false;
    for package in &packages {
        let report = runtime.load(package)?;
        compiled_any |= report.compiled == Compiled::Fresh;
        let how = match report.compiled {
            Compiled::Fresh => "compiled",
            Compiled::FromCache => "from cache",
        };
        tracing::info!(
            plugin = %report.plugin,
            version = %report.version,
            digest = %report.digest,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "loaded plugin ({how})"
        );
    }

    // Published packages: the highest version of each, where it is newer than what is
    // loaded already. A stored version was checked when it was published; one that
    // no longer loads (a host upgrade changed the world) is skipped, loudly.
    let packages = Arc::new(PackageStore::open(&args.data_dir.join("packages"))?);
    for package in packages.latest() {
        let package = match package {
            Ok(package) => package,
            Err(e) => {
                tracing::error!(error = %e, "a published plugin cannot be read; skipped");
                continue;
            }
        };
        let m = package.manifest().manifest();
        if runtime
            .manifest(m.name.as_str())
            .is_some_and(|loaded| loaded.manifest().version >= m.version)
        {
            continue;
        }
        match runtime.load(&package) {
            Ok(report) => {
                compiled_any |= report.compiled == Compiled::Fresh;
                tracing::info!(plugin = %report.plugin, version = %report.version, "loaded published plugin");
            }
            Err(e) => tracing::error!(error = %e, "a published plugin does not load; skipped"),
        }
    }

    if compiled_any {
        // Compiling (the Python and JavaScript components above all) leaves hundreds
        // of MiB of freed heap that the allocator keeps; give it back.
        release_free_heap();
    }
    // The district: seeded from its file on the first start, data after that.
    let seeds = SeedPlugin::all_of(&runtime);
    let tenancy = Arc::new(Tenancy::open(store.clone(), &district, &seeds)?);
    runtime.set_admission(tenancy.clone())?;
    let token_file = args.data_dir.join("operator.token");
    // The file holds a valid operator token, or gets a new one: a first start, a crash
    // between making the token and writing the file, a file deleted to recover access.
    let file_token_valid = std::fs::read_to_string(&token_file)
        .ok()
        .and_then(|t| tenancy.authenticate(t.trim()))
        .is_some_and(|t| t.role == Role::Operator);
    if !file_token_valid {
        let token =
            tenancy.create_token(&Actor::host(), Role::Operator, None, "first start".into())?;
        write_secret(&token_file, &token.secret)?;
        tracing::info!(
            path = %token_file.display(),
            "created an operator token; it is in this file (owner-only), and nowhere else"
        );
    } else {
        tracing::info!(path = %token_file.display(), "the operator token is in this file");
    }
    let engine = Engine::open(
        runtime.clone(),
        store.clone(),
        tenancy.clone(),
        EngineConfig::default(),
    )?;
    // Resumes the runs a previous process left unfinished, and dispatches the events
    // it accepted but had not dispatched yet.
    engine.start()?;
    let limits = RateLimits::new(
        Rate::per_second(args.rate_per_token),
        Rate::per_second(args.rate_per_community),
    );
    let state = AppState::new(runtime, engine, tenancy.clone())
        .with_packages(packages)
        .with_metrics(metrics)
        .with_rate_limits(limits)
        .with_request_timeout(Duration::from_secs(args.request_timeout_secs));
    let app = router(state);
    let listener = match recovery::inherited_listener()? {
        // A restart in place (see `recovery`): the same socket, never closed.
        Some(listener) => tokio::net::TcpListener::from_std(listener)?,
        None => tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?,
    };
    let kept = recovery::KeptListener::of(&listener)?;
    let local = listener.local_addr()?;
    tracing::info!(
        communities = tenancy.community_count(),
        data_dir = %args.data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "serving {} on http://{local}",
        tenancy.name()
    );
    // The one line on stdout: scripts and tests read the address from it. Nobody may
    // be reading any more after a restart in place (see `recovery`): not an error.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "courtyard listening on http://{local}").and_then(|()| out.flush());
    }
    let (restart_tx, mut restart_rx) = tokio::sync::oneshot::channel();
    let store_dir = args.data_dir.join("store");
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = recovery::store_recovered(store, &store_dir) => {
                let _ = restart_tx.send(());
            }
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    if restart_rx.try_recv().is_ok() {
        return Err(recovery::restart_in_place(kept));
    }
    tracing::info!("stopped");
    Ok(())
}

/// Writes a secret to a new file only its owner may read.
fn write_secret(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

/// Returns the allocator's free heap memory to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap() {
    // SAFETY: `malloc_trim` only releases memory that is free; it has no preconditions
    // and touches no memory the program uses.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish before exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
