//! `courtyard plugin new`: writes a buildable starting point for a plugin in Rust,
//! Python or JavaScript, wired to this repository's SDKs, WIT and pinned build tools.

use anyhow::{Context as _, Result, bail};
use courtyard_registry::PluginName;
use std::path::{Path, PathBuf};

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the `courtyard-sdk` crate.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

const MANIFEST: &str = include_str!("../templates/manifest.json");
const README: &str = include_str!("../templates/README.md");
const RUST_CARGO: &str = include_str!("../templates/rust/Cargo.toml");
const RUST_LIB: &str = include_str!("../templates/rust/lib.rs");
const RUST_BUILD: &str = include_str!("../templates/rust/build.sh");
const PYTHON_APP: &str = include_str!("../templates/python/app.py");
const PYTHON_BUILD: &str = include_str!("../templates/python/build.sh");
const JS_PLUGIN: &str = include_str!("../templates/js/plugin.js");
const JS_BUILD: &str = include_str!("../templates/js/build.sh");

/// The Courtyard repository this binary was built from, if it is still there.
pub fn default_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes a new plugin named `name` in `dir/name`; returns its directory.
pub fn new_plugin(name: &str, lang: Lang, dir: &Path, repo: &Path) -> Result<PathBuf> {
    let name = PluginName::new(name)?;
    let repo = repo.canonicalize().with_context(|| {
        format!(
            "the Courtyard repository {} does not exist; pass --repo",
            repo.display()
        )
    })?;
    if !repo.join("wit/world.wit").exists() {
        bail!(
            "{} is not the Courtyard repository (no wit/world.wit); pass --repo",
            repo.display()
        );
    }
    let target = dir.join(name.as_str());
    if target.exists() {
        bail!("{} already exists", target.display());
    }
    let fill = |template: &str| {
        template
            .replace("{{name}}", name.as_str())
            .replace("{{crate}}", &name.as_str().replace('-', "_"))
            .replace("{{repo}}", &repo.display().to_string())
            .replace(
                "{{lang}}",
                match lang {
                    Lang::Rust => "Rust",
                    Lang::Python => "Python",
                    Lang::Js => "JavaScript",
                },
            )
    };
    let files: Vec<(&str, &str)> = match lang {
        Lang::Rust => vec![
            ("Cargo.toml", RUST_CARGO),
            ("src/lib.rs", RUST_LIB),
            ("build.sh", RUST_BUILD),
        ],
        Lang::Python => vec![("app.py", PYTHON_APP), ("build.sh", PYTHON_BUILD)],
        Lang::Js => vec![("plugin.js", JS_PLUGIN), ("build.sh", JS_BUILD)],
    };
    for (path, template) in files
        .into_iter()
        .chain([("manifest.json", MANIFEST), ("README.md", README)])
    {
        let file = target.join(path);
        std::fs::create_dir_all(file.parent().unwrap_or(&target))?;
        std::fs::write(&file, fill(template))
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            target.join("build.sh"),
            std::fs::Permissions::from_mode(0o755),
        )?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_gets_a_manifest_that_the_registry_accepts() -> Result<()> {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let dir = tempfile::tempdir()?;
            let target = new_plugin("door-bell", lang, dir.path(), &default_repo())?;
            let manifest = std::fs::read_to_string(target.join("manifest.json"))?;
            courtyard_registry::PreparedManifest::parse(&manifest)?;
            assert!(!manifest.contains("{{"), "unfilled placeholder");
            assert!(target.join("build.sh").exists());
        }
        Ok(())
    }

    #[test]
    fn bad_names_and_existing_directories_are_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(new_plugin("Door Bell", Lang::Rust, dir.path(), &default_repo()).is_err());
        new_plugin("door-bell", Lang::Rust, dir.path(), &default_repo())?;
        let err =
            new_plugin("door-bell", Lang::Js, dir.path(), &default_repo()).expect_err("exists");
        assert!(err.to_string().contains("already exists"), "{err}");
        Ok(())
    }
}
