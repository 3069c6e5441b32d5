//! Builds every guest plugin of `plugins/` into a Wasm component and generates
//! constants with each component and manifest (after wasmtime's
//! `crates/test-programs/artifacts/build.rs`).
//!
//! - Rust guests: `cargo build --release --target wasm32-wasip2` of the guest workspace.
//! - Python guests: `componentize-py` from the pinned virtual environment
//!   `plugins/python/.venv` (made by `scripts/ensure-plugin-tools`).
//! - JavaScript guests: `plugins/js/build.mjs` (esbuild + componentize-js) with the pinned
//!   `plugins/js/node_modules` (made by `scripts/ensure-plugin-tools`).
//!
//! Python and JavaScript builds take seconds each, so each is skipped when a hash of its
//! inputs matches the last build's.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Copy)]
enum Lang {
    Rust,
    Python,
    Js,
}

/// Every guest: (plugin name, directory under `plugins/`, language).
/// For Rust guests the crate is named like the plugin.
const GUESTS: &[(&str, &str, Lang)] = &[
    ("counter", "counter", Lang::Rust),
    ("canteen", "canteen", Lang::Rust),
    ("library-sync", "library-sync", Lang::Rust),
    ("visitor-access", "visitor-access", Lang::Rust),
    ("taxi-dispatch", "taxi-dispatch", Lang::Rust),
    ("alert-rules", "alert-rules", Lang::Rust),
    ("misbehave", "fixtures/misbehave", Lang::Rust),
    ("trash-bins", "python/trash-bins", Lang::Python),
    ("misbehave-py", "python/fixtures/misbehave-py", Lang::Python),
    ("lights", "js/lights", Lang::Js),
    ("misbehave-js", "js/fixtures/misbehave-js", Lang::Js),
];

const SETUP_HINT: &str =
    "run `scripts/ensure-plugin-tools` (the README's commands do this for you)";

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let plugins = manifest_dir
        .parent()
        .expect("plugins/artifacts has a parent")
        .to_path_buf();
    let root = plugins
        .parent()
        .expect("plugins/ has a parent")
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let watched = [
        root.join("wit"),
        plugins.join("Cargo.toml"),
        plugins.join("Cargo.lock"),
        plugins.join("sdk"),
        plugins.join("python/sdk"),
        plugins.join("python/requirements.txt"),
        plugins.join("js/sdk"),
        plugins.join("js/build.mjs"),
        plugins.join("js/package-lock.json"),
    ];
    for path in watched
        .iter()
        .cloned()
        .chain(GUESTS.iter().map(|(_, dir, _)| plugins.join(dir)))
    {
        println!("cargo:rerun-if-changed={}", path.display());
    }

    build_rust(&plugins, &out_dir);

    let mut code = String::new();
    let mut all = Vec::new();
    for &(name, dir, lang) in GUESTS {
        let wasm = match lang {
            Lang::Rust => out_dir
                .join("guest-target/wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_"))),
            Lang::Python => {
                let inputs = [
                    plugins.join(dir),
                    plugins.join("python/sdk"),
                    plugins.join("python/requirements.txt"),
                    root.join("wit"),
                ];
                let out = out_dir.join(format!("{name}.wasm"));
                if !up_to_date(&out, &inputs) {
                    build_python(&plugins, &root, dir, &out);
                    stamp(&out, &inputs);
                }
                out
            }
            Lang::Js => {
                let inputs = [
                    plugins.join(dir),
                    plugins.join("js/sdk"),
                    plugins.join("js/build.mjs"),
                    plugins.join("js/package-lock.json"),
                    root.join("wit"),
                ];
                let out = out_dir.join(format!("{name}.wasm"));
                if !up_to_date(&out, &inputs) {
                    build_js(&plugins, &root, dir, &out);
                    stamp(&out, &inputs);
                }
                out
            }
        };
        assert!(wasm.exists(), "expected component {}", wasm.display());
        let manifest = plugins.join(dir).join("manifest.json");
        let konst = name.to_uppercase().replace('-', "_");
        code.push_str(&format!(
            "/// The `{name}` plugin (`plugins/{dir}`).\npub const {konst}: Artifact = Artifact {{\n    name: {name:?},\n    component: include_bytes!({wasm:?}),\n    component_path: {wasm:?},\n    manifest: include_str!({manifest:?}),\n}};\n\n",
            wasm = wasm.display().to_string(),
            manifest = manifest.display().to_string(),
        ));
        all.push(konst);
    }
    code.push_str(&format!(
        "/// Every guest program of `plugins/`.\npub const ALL: &[Artifact] = &[{}];\n",
        all.join(", ")
    ));
    std::fs::write(out_dir.join("artifacts.rs"), code).expect("write artifacts.rs");
}

fn build_rust(plugins: &Path, out_dir: &Path) {
    check_target_installed();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", out_dir.join("guest-target"))
        // The outer build's flags are for the host target, not for the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        // `cargo clippy` of the host sets these; the guests are linted on their own.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR");
    for (name, _, lang) in GUESTS {
        if matches!(lang, Lang::Rust) {
            cmd.arg("-p").arg(name);
        }
    }
    let status = cmd
        .status()
        .expect("failed to run cargo to build the guest plugins");
    assert!(
        status.success(),
        "building the Rust guest plugins in {} failed",
        plugins.display()
    );
}

fn build_python(plugins: &Path, root: &Path, dir: &str, out: &Path) {
    let tool = plugins.join("python/.venv/bin/componentize-py");
    assert!(
        tool.exists(),
        "componentize-py is not installed in plugins/python/.venv; {SETUP_HINT}"
    );
    let status = Command::new(&tool)
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", "plugin", "componentize", "app", "-p"])
        .arg(plugins.join(dir))
        .arg("-p")
        .arg(plugins.join("python/sdk"))
        .arg("-o")
        .arg(out)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .expect("failed to run componentize-py");
    assert!(status.success(), "componentize-py failed for plugins/{dir}");
}

fn build_js(plugins: &Path, root: &Path, dir: &str, out: &Path) {
    let js = plugins.join("js");
    assert!(
        js.join("node_modules/@bytecodealliance/componentize-js")
            .exists(),
        "componentize-js is not installed in plugins/js/node_modules; {SETUP_HINT}"
    );
    let status = Command::new("node")
        .arg(js.join("build.mjs"))
        .arg(plugins.join(dir))
        .arg(out)
        .arg(root.join("wit"))
        .current_dir(&js)
        .status()
        .expect("failed to run node (is Node.js installed?)");
    assert!(
        status.success(),
        "building plugins/{dir} with componentize-js failed"
    );
}

/// A hash of every file below `inputs` (paths and contents), in a stable order.
fn inputs_hash(inputs: &[PathBuf]) -> String {
    fn walk(path: &Path, files: &mut Vec<PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            entries.sort();
            for entry in entries {
                let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name != "__pycache__" && name != "node_modules" {
                    walk(&entry, files);
                }
            }
        } else if path.is_file() {
            files.push(path.to_path_buf());
        }
    }
    let mut files = Vec::new();
    for input in inputs {
        walk(input, &mut files);
    }
    let mut h = Sha256::new();
    for file in files {
        h.update(file.display().to_string().as_bytes());
        h.update(std::fs::read(&file).unwrap_or_default());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn up_to_date(out: &Path, inputs: &[PathBuf]) -> bool {
    out.exists()
        && std::fs::read_to_string(out.with_extension("inputs"))
            .ok()
            .as_deref()
            == Some(inputs_hash(inputs).as_str())
}

fn stamp(out: &Path, inputs: &[PathBuf]) {
    std::fs::write(out.with_extension("inputs"), inputs_hash(inputs))
        .expect("write the inputs stamp");
}

/// Fails with a clear message when the `wasm32-wasip2` standard library is missing.
fn check_target_installed() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    if let Some(sysroot) = sysroot {
        let lib = sysroot.join("lib/rustlib/wasm32-wasip2");
        if !Path::new(&lib).exists() {
            panic!(
                "the wasm32-wasip2 target is not installed; run `rustup target add wasm32-wasip2` \
                 (the README's commands do this for you)"
            );
        }
    }
}
