//! The plugin manifest: what a plugin is, what it does, what it needs.

use crate::ids::{Capability, EventKind, OperationName, PluginName};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A plugin manifest (`manifest.json` beside the plugin's source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name, unique in the registry.
    pub name: PluginName,
    /// The plugin's version (semver).
    pub version: semver::Version,
    /// What the plugin does, for the admins who enable it.
    pub description: String,
    /// The operations the plugin serves, by name.
    pub operations: BTreeMap<OperationName, Operation>,
    /// The kinds of events the plugin may emit.
    #[serde(default)]
    pub events: BTreeMap<EventKind, EventDecl>,
    /// The JSON Schema of the plugin's per-community configuration. Top-level
    /// `properties` with a `default` give the configuration a community starts with.
    #[serde(default = "empty_object_schema")]
    pub config: Value,
    /// The capabilities the plugin needs.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Whether the host may serve several calls with one instance. Absent: every call
    /// gets a fresh instance (the safe default). Declare it only if the plugin keeps
    /// nothing in memory that one call could leave for the next: an instance is only
    /// ever reused within one community, and is discarded after a trap or a limit hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_reuse: Option<InstanceReuse>,
}

/// How an instance may be reused (see [`Manifest::instance_reuse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceReuse {
    /// How many calls one instance serves at most before it is replaced: 1 to 100000.
    #[schemars(range(min = 1, max = 100_000))]
    pub max_calls: u32,
}

fn empty_object_schema() -> Value {
    serde_json::json!({ "type": "object" })
}

/// One operation of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// One line on what the operation does.
    pub description: String,
    /// The JSON Schema of the operation's input.
    pub input: Value,
    /// The JSON Schema of the operation's output.
    pub output: Value,
}

/// One kind of event a plugin may emit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDecl {
    /// When the event is emitted.
    pub description: String,
    /// The JSON Schema of the event's payload.
    pub payload: Value,
}

/// The JSON Schema of [`Manifest`], as published in `schemas/plugin-manifest.schema.json`.
pub fn manifest_schema() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Manifest>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// Why a manifest was refused. Messages name the path of the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The document is not a manifest: bad JSON, an unknown or missing field, an invalid id.
    #[error("manifest: at `{path}`: {message}")]
    Parse {
        /// Where in the document (`operations.get.input`); `.` for the top.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A JSON Schema in the manifest does not compile.
    #[error("manifest of {plugin}: `{path}` is not a valid JSON Schema: {message}")]
    Schema {
        /// The plugin.
        plugin: PluginName,
        /// Which schema (`operations.get.input`, `config`).
        path: String,
        /// What the schema compiler said.
        message: String,
    },
    /// The defaults of the config schema do not satisfy the config schema.
    #[error(
        "manifest of {plugin}: the config defaults do not satisfy the config schema: {message}"
    )]
    ConfigDefaults {
        /// The plugin.
        plugin: PluginName,
        /// The first violation.
        message: String,
    },
    /// A manifest with no operations.
    #[error("manifest of {plugin}: `operations` is empty; a plugin serves at least one operation")]
    NoOperations {
        /// The plugin.
        plugin: PluginName,
    },
}

/// Why an input (or config) was refused by its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct InputError {
    /// Each problem as `at /json/pointer: message`, the first few only.
    pub problems: Vec<String>,
}

/// A manifest with its schemas compiled, ready to check inputs and configs.
pub struct PreparedManifest {
    manifest: Manifest,
    inputs: BTreeMap<OperationName, jsonschema::Validator>,
    outputs: BTreeMap<OperationName, jsonschema::Validator>,
    config: jsonschema::Validator,
    default_config: Value,
}

impl std::fmt::Debug for PreparedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedManifest")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

fn compile(
    plugin: &PluginName,
    path: String,
    schema: &Value,
) -> Result<jsonschema::Validator, ManifestError> {
    // No remote or file `$ref` is ever fetched: the crate is built without resolvers.
    jsonschema::validator_for(schema).map_err(|e| ManifestError::Schema {
        plugin: plugin.clone(),
        path,
        message: e.to_string(),
    })
}

const MAX_PROBLEMS: usize = 5;
const MAX_PROBLEM_CHARS: usize = 200;

fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn check(validator: &jsonschema::Validator, value: &Value) -> Result<(), InputError> {
    let problems: Vec<String> = validator
        .iter_errors(value)
        .take(MAX_PROBLEMS)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            // The validator's message quotes the offending value, which may be huge (an
            // image pasted where an id belongs): keep the start of it.
            format!("at {at}: {}", cut(&e.to_string(), MAX_PROBLEM_CHARS))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InputError { problems })
    }
}

impl PreparedManifest {
    /// Parses a manifest from JSON and compiles its schemas.
    pub fn parse(json: &str) -> Result<Self, ManifestError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let manifest: Manifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ManifestError::Parse {
                path,
                message: e.into_inner().to_string(),
            }
        })?;
        Self::new(manifest)
    }

    /// Compiles the schemas of a manifest.
    pub fn new(manifest: Manifest) -> Result<Self, ManifestError> {
        let name = &manifest.name;
        if manifest.operations.is_empty() {
            return Err(ManifestError::NoOperations {
                plugin: name.clone(),
            });
        }
        if let Some(reuse) = manifest.instance_reuse
            && !(1..=100_000).contains(&reuse.max_calls)
        {
            return Err(ManifestError::Parse {
                path: "instance_reuse.max_calls".into(),
                message: format!("{} is not between 1 and 100000", reuse.max_calls),
            });
        }
        let mut inputs = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        for (op, decl) in &manifest.operations {
            inputs.insert(
                op.clone(),
                compile(name, format!("operations.{op}.input"), &decl.input)?,
            );
            outputs.insert(
                op.clone(),
                compile(name, format!("operations.{op}.output"), &decl.output)?,
            );
        }
        for (kind, decl) in &manifest.events {
            compile(name, format!("events.{kind}.payload"), &decl.payload)?;
        }
        let config = compile(name, "config".to_owned(), &manifest.config)?;
        let default_config = defaults_of(&manifest.config);
        check(&config, &default_config).map_err(|e| ManifestError::ConfigDefaults {
            plugin: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            manifest,
            inputs,
            outputs,
            config,
            default_config,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether the plugin serves `operation`.
    pub fn has_operation(&self, operation: &str) -> bool {
        self.inputs.contains_key(operation)
    }

    /// Checks `input` against the input schema of `operation`. `None` when the plugin
    /// has no such operation.
    pub fn check_input(&self, operation: &str, input: &Value) -> Option<Result<(), InputError>> {
        self.inputs
            .get(operation)
            .map(|validator| check(validator, input))
    }

    /// Checks an operation's `output` against its output schema. `None` when the plugin
    /// has no such operation.
    pub fn check_output(&self, operation: &str, output: &Value) -> Option<Result<(), InputError>> {
        self.outputs
            .get(operation)
            .map(|validator| check(validator, output))
    }

    /// The configuration a community starts with: the defaults of the config schema.
    pub fn default_config(&self) -> &Value {
        &self.default_config
    }

    /// `overrides` merged over the defaults, checked against the config schema.
    pub fn config_with(
        &self,
        overrides: &serde_json::Map<String, Value>,
    ) -> Result<Value, InputError> {
        let mut config = self.default_config.clone();
        if let Value::Object(map) = &mut config {
            for (k, v) in overrides {
                map.insert(k.clone(), v.clone());
            }
        }
        check(&self.config, &config)?;
        Ok(config)
    }

    /// Whether events of `kind` are declared.
    pub fn declares_event(&self, kind: &str) -> bool {
        self.manifest.events.contains_key(kind)
    }
}

/// The object made of the `default`s of the top-level `properties` of a schema.
fn defaults_of(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, prop) in props {
            if let Some(default) = prop.get("default") {
                out.insert(name.clone(), default.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "name": "notes",
            "version": "1.2.3",
            "description": "Notes.",
            "operations": {
                "add": {
                    "description": "Adds a note.",
                    "input": { "type": "object", "properties": { "text": { "type": "string" } }, "required": ["text"] },
                    "output": { "type": "object" }
                }
            },
            "config": {
                "type": "object",
                "properties": { "max_notes": { "type": "integer", "minimum": 1, "default": 100 } }
            }
        })
    }

    fn parse(v: Value) -> Result<PreparedManifest, ManifestError> {
        PreparedManifest::parse(&v.to_string())
    }

    #[test]
    fn a_minimal_manifest_parses_with_defaults() {
        let m = parse(minimal()).expect("valid");
        assert_eq!(m.default_config(), &json!({ "max_notes": 100 }));
        assert!(m.has_operation("add"));
        assert!(!m.has_operation("remove"));
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let mut v = minimal();
        v["operations"]["add"]["inptu"] = json!({});
        let err = parse(v).expect_err("unknown field").to_string();
        assert!(err.contains("operations.add"), "{err}");
        assert!(err.contains("inptu"), "{err}");
    }

    #[test]
    fn bad_ids_are_refused_with_their_path() {
        let mut v = minimal();
        v["name"] = json!("Notes App");
        let err = parse(v).expect_err("bad name").to_string();
        assert!(err.contains("at `name`"), "{err}");
    }

    #[test]
    fn bad_versions_are_refused() {
        let mut v = minimal();
        v["version"] = json!("1.0");
        assert!(parse(v).is_err());
    }

    #[test]
    fn invalid_schemas_are_refused_naming_the_schema() {
        let mut v = minimal();
        v["operations"]["add"]["input"] = json!({ "type": "no-such-type" });
        let err = parse(v).expect_err("bad schema").to_string();
        assert!(err.contains("operations.add.input"), "{err}");
    }

    #[test]
    fn defaults_must_satisfy_the_config_schema() {
        let mut v = minimal();
        v["config"]["properties"]["max_notes"]["default"] = json!(0);
        let err = parse(v).expect_err("bad default").to_string();
        assert!(err.contains("config defaults"), "{err}");
    }

    #[test]
    fn no_operations_is_refused() {
        let mut v = minimal();
        v["operations"] = json!({});
        assert!(matches!(parse(v), Err(ManifestError::NoOperations { .. })));
    }

    #[test]
    fn instance_reuse_is_bounded() {
        let with = |max: u32| {
            format!(
                r#"{{"name":"p","version":"1.0.0","description":"d","instance_reuse":{{"max_calls":{max}}},
                "operations":{{"a":{{"description":"d","input":{{}},"output":{{}}}}}}}}"#
            )
        };
        let ok = PreparedManifest::parse(&with(1000)).expect("valid");
        assert_eq!(
            ok.manifest().instance_reuse.map(|r| r.max_calls),
            Some(1000)
        );
        for bad in [0, 100_001] {
            let err = PreparedManifest::parse(&with(bad)).expect_err("out of range");
            assert!(
                err.to_string().contains("instance_reuse.max_calls"),
                "{err}"
            );
        }
    }

    #[test]
    fn inputs_are_checked_with_pointers() {
        let m = parse(minimal()).expect("valid");
        assert_eq!(m.check_input("add", &json!({ "text": "hi" })), Some(Ok(())));
        let err = m
            .check_input("add", &json!({ "text": 5 }))
            .expect("op")
            .expect_err("bad");
        assert!(err.to_string().contains("at /text"), "{err}");
        assert_eq!(m.check_input("nope", &json!({})), None);
    }

    #[test]
    fn outputs_are_checked_against_their_schema() {
        let mut v = minimal();
        v["operations"]["add"]["output"] = json!({ "type": "object", "required": ["id"] });
        let m = parse(v).expect("valid");
        assert_eq!(m.check_output("add", &json!({ "id": 1 })), Some(Ok(())));
        let err = m
            .check_output("add", &json!({}))
            .expect("op")
            .expect_err("missing id");
        assert!(err.to_string().contains("id"), "{err}");
    }

    #[test]
    fn problems_do_not_echo_huge_values() {
        let m = parse(minimal()).expect("valid");
        let huge = "A".repeat(100_000);
        assert_eq!(
            m.check_input("add", &json!({ "text": huge.clone() })),
            Some(Ok(()))
        );
        let mut strict = minimal();
        strict["operations"]["add"]["input"]["properties"]["text"]["maxLength"] = json!(10);
        let m = parse(strict).expect("valid");
        let err = m
            .check_input("add", &json!({ "text": huge }))
            .expect("op")
            .expect_err("too long");
        assert!(
            err.to_string().len() < 400,
            "{} chars",
            err.to_string().len()
        );
    }

    #[test]
    fn config_overrides_are_merged_and_checked() {
        let m = parse(minimal()).expect("valid");
        let ok = m
            .config_with(json!({ "max_notes": 5 }).as_object().expect("object"))
            .expect("ok");
        assert_eq!(ok, json!({ "max_notes": 5 }));
        let err = m
            .config_with(json!({ "max_notes": 0 }).as_object().expect("object"))
            .expect_err("bad");
        assert!(err.to_string().contains("/max_notes"), "{err}");
    }

    #[test]
    fn remote_refs_are_never_fetched() {
        let mut v = minimal();
        v["operations"]["add"]["input"] = json!({ "$ref": "https://example.com/schema.json" });
        // Without resolvers compiled in, the reference cannot be resolved: refused.
        assert!(parse(v).is_err());
    }
}
