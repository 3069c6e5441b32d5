//! [`PackageStore`]: the published packages, on disk.
//!
//! Layout: `<dir>/<plugin>/owner` (who may publish versions of the name) and
//! `<dir>/<plugin>/<version>/{manifest.json, plugin.wasm}`. A version is written to a
//! temporary directory and renamed into place, so a crash never leaves half a version;
//! versions are immutable.

use crate::{Package, PackageError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why the package store failed or refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageStoreError {
    /// The file system failed.
    #[error("package store at {path}: {reason}")]
    Io {
        /// Where.
        path: String,
        /// What happened.
        reason: String,
    },
    /// This version was published already, with other contents.
    #[error(
        "{plugin} {version} is published already with other contents; versions are immutable, publish a new one"
    )]
    VersionExists {
        /// The plugin.
        plugin: String,
        /// The version.
        version: String,
    },
    /// The name belongs to someone else.
    #[error("plugin {plugin} was published by someone else; choose another name")]
    NotOwner {
        /// The plugin.
        plugin: String,
    },
    /// A stored package no longer parses (edited by hand, or from an older host).
    #[error("stored package {path} is not valid: {source}")]
    Corrupt {
        /// Where.
        path: String,
        /// Why.
        source: PackageError,
    },
}

/// What publishing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// A new version was stored.
    New,
    /// The very same version was stored already (a retried publish).
    Unchanged,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageStoreError + '_ {
    move |e| PackageStoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The published packages in a directory.
#[derive(Debug)]
pub struct PackageStore {
    dir: PathBuf,
    /// Publishes are made one at a time.
    writer: Mutex<()>,
}

impl PackageStore {
    /// The store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, PackageStoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            writer: Mutex::new(()),
        })
    }

    /// Stores `package` as published by `owner` (a token id). `may_take_any` (the
    /// operator) may publish under any name; others only under names they published
    /// first, or new ones.
    pub fn publish(
        &self,
        package: &Package,
        owner: &str,
        may_take_any: bool,
    ) -> Result<Published, PackageStoreError> {
        let _one = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let manifest = package.manifest().manifest();
        let name = manifest.name.to_string();
        let version = manifest.version.to_string();
        let plugin_dir = self.dir.join(&name);
        let owner_file = plugin_dir.join("owner");
        match std::fs::read_to_string(&owner_file) {
            // An empty file is no owner: what a crash in the middle of an older host's
            // first publish of the name could leave.
            Ok(existing) if !existing.trim().is_empty() => {
                if existing.trim() != owner && !may_take_any {
                    return Err(PackageStoreError::NotOwner { plugin: name });
                }
            }
            Ok(_) => self.claim(&plugin_dir, owner)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.claim(&plugin_dir, owner)?;
            }
            Err(e) => return Err(io(&owner_file)(e)),
        }
        let manifest_json = serde_json::to_string_pretty(manifest).unwrap_or_default();
        let target = plugin_dir.join(&version);
        if target.exists() {
            let same = std::fs::read(target.join("plugin.wasm"))
                .is_ok_and(|c| crate::Digest::of(&c) == package.digest())
                && std::fs::read_to_string(target.join("manifest.json"))
                    .is_ok_and(|m| m == manifest_json);
            return if same {
                Ok(Published::Unchanged)
            } else {
                Err(PackageStoreError::VersionExists {
                    plugin: name,
                    version,
                })
            };
        }
        let tmp = plugin_dir.join(format!(".{version}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        for (file, bytes) in [
            ("manifest.json", manifest_json.as_bytes()),
            ("plugin.wasm", package.component()),
        ] {
            let path = tmp.join(file);
            std::fs::write(&path, bytes).map_err(io(&path))?;
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        std::fs::File::open(&plugin_dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&plugin_dir))?;
        Ok(Published::New)
    }

    /// Makes `owner` the owner of the name whose directory is `plugin_dir`, durably and
    /// atomically: the `owner` file is whole or absent after a crash.
    fn claim(&self, plugin_dir: &Path, owner: &str) -> Result<(), PackageStoreError> {
        std::fs::create_dir_all(plugin_dir).map_err(io(plugin_dir))?;
        let tmp = plugin_dir.join(".owner.tmp");
        let owner_file = plugin_dir.join("owner");
        std::fs::write(&tmp, owner).map_err(io(&tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &owner_file).map_err(io(&owner_file))?;
        for dir in [plugin_dir, self.dir.as_path()] {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        Ok(())
    }

    /// The published versions of `plugin`, lowest first.
    pub fn versions(&self, plugin: &str) -> Vec<semver::Version> {
        // Only a valid plugin name is a path in the store.
        if crate::PluginName::new(plugin).is_err() {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir(self.dir.join(plugin)) else {
            return Vec::new();
        };
        let mut versions: Vec<semver::Version> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| semver::Version::parse(&e.file_name().to_string_lossy()).ok())
            .collect();
        versions.sort();
        versions
    }

    /// The names of the published plugins.
    pub fn plugins(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// One published version.
    pub fn package(
        &self,
        plugin: &str,
        version: &semver::Version,
    ) -> Result<Option<Package>, PackageStoreError> {
        if crate::PluginName::new(plugin).is_err() {
            return Ok(None);
        }
        let dir = self.dir.join(plugin).join(version.to_string());
        if !dir.is_dir() {
            return Ok(None);
        }
        let manifest = std::fs::read_to_string(dir.join("manifest.json")).map_err(io(&dir))?;
        let component = std::fs::read(dir.join("plugin.wasm")).map_err(io(&dir))?;
        Package::new(&manifest, component)
            .map(Some)
            .map_err(|source| PackageStoreError::Corrupt {
                path: dir.display().to_string(),
                source,
            })
    }

    /// The highest version of every published plugin; for a plugin whose highest
    /// version cannot be read, the error (the others are still returned).
    pub fn latest(&self) -> Vec<Result<Package, PackageStoreError>> {
        let mut packages = Vec::new();
        for plugin in self.plugins() {
            if let Some(version) = self.versions(&plugin).pop() {
                match self.package(&plugin, &version) {
                    Ok(Some(package)) => packages.push(Ok(package)),
                    Ok(None) => {}
                    Err(e) => packages.push(Err(e)),
                }
            }
        }
        packages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtyard_plugin_artifacts::COUNTER;

    fn counter(version: &str) -> Package {
        let manifest = COUNTER.manifest.replacen(
            "\"version\": \"0.1.0\"",
            &format!("\"version\": \"{version}\""),
            1,
        );
        Package::new(&manifest, COUNTER.component.to_vec()).expect("package")
    }

    /// A crash in the middle of a name's first publish, under an older host that wrote
    /// the owner file in place, could leave it empty: that is no owner, and the next
    /// publisher claims the name (atomically now: no `.owner.tmp` stays behind).
    #[test]
    fn an_empty_owner_file_is_no_owner_and_a_claim_leaves_a_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = PackageStore::open(dir.path()).expect("store");
        std::fs::create_dir_all(dir.path().join("counter")).expect("dir");
        std::fs::write(dir.path().join("counter/owner"), "").expect("empty owner");
        assert_eq!(
            store
                .publish(&counter("0.1.0"), "tok_b", false)
                .expect("an empty owner file does not block a publish"),
            Published::New
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("counter/owner")).expect("owner"),
            "tok_b"
        );
        assert!(!dir.path().join("counter/.owner.tmp").exists());
        assert!(matches!(
            store.publish(&counter("0.2.0"), "tok_c", false),
            Err(PackageStoreError::NotOwner { .. })
        ));
    }

    #[test]
    fn versions_are_immutable_names_are_owned_and_the_latest_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = PackageStore::open(dir.path()).expect("store");
        assert_eq!(
            store
                .publish(&counter("0.1.0"), "tok_a", false)
                .expect("publish"),
            Published::New
        );
        assert_eq!(
            store
                .publish(&counter("0.1.0"), "tok_a", false)
                .expect("again"),
            Published::Unchanged
        );
        assert_eq!(
            store
                .publish(&counter("0.3.0"), "tok_a", false)
                .expect("publish"),
            Published::New
        );
        assert_eq!(
            store
                .publish(&counter("0.2.0"), "tok_a", false)
                .expect("publish"),
            Published::New
        );
        // Same version, other contents.
        let other = Package::new(
            &COUNTER
                .manifest
                .replacen("\"version\": \"0.1.0\"", "\"version\": \"0.2.0\"", 1)
                .replacen("Named counters per community", "Other counters", 1),
            COUNTER.component.to_vec(),
        )
        .expect("package");
        assert!(matches!(
            store.publish(&other, "tok_a", false),
            Err(PackageStoreError::VersionExists { .. })
        ));
        // Someone else's name; the operator may.
        assert!(matches!(
            store.publish(&counter("0.4.0"), "tok_b", false),
            Err(PackageStoreError::NotOwner { .. })
        ));
        assert_eq!(
            store
                .publish(&counter("0.4.0"), "tok_op", true)
                .expect("operator"),
            Published::New
        );
        let versions: Vec<String> = store
            .versions("counter")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(versions, ["0.1.0", "0.2.0", "0.3.0", "0.4.0"]);
        let latest = PackageStore::open(dir.path())
            .expect("reopen")
            .latest()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("latest");
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].manifest().manifest().version.to_string(), "0.4.0");
        assert_eq!(latest[0].digest(), crate::Digest::of(COUNTER.component));
        // Names that are not plugin names never become paths.
        assert!(store.versions("../counter").is_empty());
        assert!(
            store
                .package("..", &"0.1.0".parse().expect("v"))
                .expect("ok")
                .is_none()
        );
    }
}
