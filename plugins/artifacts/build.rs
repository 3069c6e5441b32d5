//! Builds the guest workspace (`plugins/`) for `wasm32-wasip2` and generates constants
//! with each plugin's component and manifest (after wasmtime's
//! `crates/test-programs/artifacts/build.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every guest crate: (plugin name, crate name, directory under `plugins/`).
const GUESTS: &[(&str, &str, &str)] = &[
    ("counter", "counter", "counter"),
    ("misbehave", "misbehave", "fixtures/misbehave"),
];

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

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );
    println!("cargo:rerun-if-changed={}", plugins.join("sdk").display());
    for (_, _, dir) in GUESTS {
        println!("cargo:rerun-if-changed={}", plugins.join(dir).display());
    }

    check_target_installed();

    let target_dir = out_dir.join("guest-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer build's flags are for the host target, not for the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_PROFILE_RELEASE_DEBUG")
        .env_remove("CARGO_BUILD_TARGET")
        // `cargo clippy` of the host sets these; the guests are linted on their own.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR");
    for (_, krate, _) in GUESTS {
        cmd.arg("-p").arg(krate);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo to build the guest plugins");
    assert!(
        status.success(),
        "building the guest plugins in {} failed",
        plugins.display()
    );

    let mut code = String::new();
    let mut all = Vec::new();
    for (name, krate, dir) in GUESTS {
        let wasm = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", krate.replace('-', "_")));
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
