//! The published JSON Schema of the plugin manifest is generated from the Rust types;
//! this test fails when `schemas/plugin-manifest.schema.json` has drifted from them.
//! Regenerate with `COURTYARD_BLESS=1 cargo test -p courtyard-registry --test schema`.

use courtyard_registry::manifest_schema;
use std::path::PathBuf;

fn published() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/plugin-manifest.schema.json")
}

#[test]
fn the_published_manifest_schema_matches_the_types() {
    let generated = serde_json::to_string_pretty(&manifest_schema()).expect("schema") + "\n";
    let path = published();
    if std::env::var_os("COURTYARD_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is out of date; regenerate it with `COURTYARD_BLESS=1 cargo test -p courtyard-registry --test schema`",
        path.display()
    );
}

#[test]
fn every_plugin_manifest_in_the_repository_satisfies_the_published_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(published()).expect("read schema"))
            .expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    for artifact in courtyard_plugin_artifacts::ALL {
        let manifest: serde_json::Value = serde_json::from_str(artifact.manifest).expect("JSON");
        let errors: Vec<String> = validator
            .iter_errors(&manifest)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", artifact.name);
    }
}
