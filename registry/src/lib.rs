//! Plugin packages: the manifest that describes a plugin, its validation, and content
//! addressing of the component it ships.
//!
//! A package is a manifest plus a Wasm component. [`Manifest`] is parsed, not merely
//! validated: its ids are newtypes that cannot hold an invalid value, unknown fields are
//! refused, and every JSON Schema it carries is compiled when the manifest is parsed,
//! so a [`Package`] in hand is one the host can load. The JSON Schema of the manifest
//! itself, published as `schemas/plugin-manifest.schema.json`, is generated from these
//! types ([`manifest_schema`]).

mod ids;
mod manifest;
mod store;

pub use ids::{Capability, EventKind, IdError, OperationName, PluginName};
pub use manifest::{
    EventDecl, InputError, InstanceReuse, Manifest, ManifestError, Operation, PreparedManifest,
    manifest_schema,
};
pub use store::{PackageStore, PackageStoreError, Published};

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::sync::Arc;

/// The SHA-256 of a component's bytes: its identity in the registry and in the
/// host's cache of compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest as lowercase hex, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Why a package was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The manifest is not valid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The component bytes are not a valid WebAssembly component.
    #[error("the component of plugin {plugin} is not a valid WebAssembly component: {reason}")]
    InvalidComponent {
        /// The plugin named by the manifest.
        plugin: PluginName,
        /// What the validator found.
        reason: String,
    },
}

/// A plugin package: a parsed manifest and the component it describes.
#[derive(Debug, Clone)]
pub struct Package {
    manifest: Arc<PreparedManifest>,
    component: Arc<[u8]>,
    digest: Digest,
}

impl Package {
    /// Parses `manifest_json` and checks that `component` is a valid component.
    ///
    /// Whether the component fits the `plugin` world of `wit/` is checked by the
    /// runtime when it loads the package, against the real linker.
    pub fn new(manifest_json: &str, component: impl Into<Arc<[u8]>>) -> Result<Self, PackageError> {
        let manifest = PreparedManifest::parse(manifest_json)?;
        let component = component.into();
        let mut validator =
            wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
        let parsed = validator.validate_all(&component);
        let is_component = wasmparser::Parser::is_component(&component);
        if let Err(e) = parsed {
            return Err(PackageError::InvalidComponent {
                plugin: manifest.manifest().name.clone(),
                reason: e.to_string(),
            });
        }
        if !is_component {
            return Err(PackageError::InvalidComponent {
                plugin: manifest.manifest().name.clone(),
                reason: "this is a core module, not a component; build for wasm32-wasip2 or run `wasm-tools component new`"
                    .to_owned(),
            });
        }
        let digest = Digest::of(&component);
        Ok(Self {
            manifest: Arc::new(manifest),
            component,
            digest,
        })
    }

    /// The manifest, with its schemas compiled.
    pub fn manifest(&self) -> &Arc<PreparedManifest> {
        &self.manifest
    }

    /// The component's bytes.
    pub fn component(&self) -> &[u8] {
        &self.component
    }

    /// The content address of the component.
    pub fn digest(&self) -> Digest {
        self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn core_modules_are_refused() {
        // The smallest valid core module: magic and version.
        let module = b"\0asm\x01\0\0\0".to_vec();
        let manifest = courtyard_plugin_artifacts::COUNTER.manifest;
        let err = Package::new(manifest, module).expect_err("a core module is not a component");
        assert!(err.to_string().contains("not a component"), "{err}");
    }

    #[test]
    fn garbage_is_refused() {
        let manifest = courtyard_plugin_artifacts::COUNTER.manifest;
        let err = Package::new(manifest, b"not wasm".to_vec()).expect_err("garbage");
        assert!(
            matches!(err, PackageError::InvalidComponent { .. }),
            "{err}"
        );
    }

    #[test]
    fn the_standard_plugins_are_valid_packages() {
        for artifact in courtyard_plugin_artifacts::ALL {
            let package = Package::new(artifact.manifest, artifact.component.to_vec())
                .unwrap_or_else(|e| panic!("{}: {e}", artifact.name));
            assert_eq!(package.manifest().manifest().name.as_str(), artifact.name);
        }
    }
}
