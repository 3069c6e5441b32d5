//! The workflow document: what an admin writes, in YAML or JSON.
//!
//! These types are the schema: `schemas/workflow.schema.json` is generated from them,
//! and a document that deserialises into [`Workflow`] is well-formed. What needs the
//! rest of the host to check (plugins that exist, earlier steps, CEL that compiles,
//! cron lines that parse) is checked by [`crate::compile`].

use courtyard_registry::{EventKind, IdError, OperationName, PluginName};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

courtyard_registry::id_type!(
    /// A workflow's name within its community: `thrown-object-alarm`.
    WorkflowName,
    "workflow name",
    "^[a-z][a-z0-9-]{0,62}$",
    "1 to 63 characters: lowercase letters, digits and '-', starting with a letter",
    |s| {
        (1..=63).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }
);

courtyard_registry::id_type!(
    /// A step's id: a CEL identifier (`raise_alarm`), so that expressions can say
    /// `steps.raise_alarm.output`. `end` is reserved: it is the target that ends a run.
    StepId,
    "step id",
    "^[a-z][a-z0-9_]{0,62}$",
    "1 to 63 characters: lowercase letters, digits and '_', starting with a letter (a CEL identifier); not `end`",
    |s| {
        (1..=63).contains(&s.len())
            && s != "end"
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
);

/// A span of time written for people: `500ms`, `30s`, `5m`, `2h`, `1d`, or a sum
/// such as `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(Duration);

impl Span {
    /// The longest span accepted: 30 days.
    pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

    /// The span.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The span in milliseconds.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// A span from a duration (for defaults).
    pub const fn from_duration(d: Duration) -> Self {
        Self(d)
    }
}

impl std::str::FromStr for Span {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        let bad = || IdError {
            what: "duration",
            value: text.to_owned(),
            rule: "a number and a unit (ms, s, m, h, d), or a sum such as 1h30m; at most 30d",
        };
        let mut total: u128 = 0;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let number: u128 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let millis = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total = total.saturating_add(number.saturating_mul(millis));
        }
        if total > Self::MAX.as_millis() {
            return Err(bad());
        }
        Ok(Self(Duration::from_millis(
            u64::try_from(total).map_err(|_| bad())?,
        )))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Span {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Span")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$",
            "description": "a span of time: a number and a unit (ms, s, m, h, d), or a sum such as 1h30m; at most 30d",
            "examples": ["30s", "5m", "1h30m"]
        })
    }
}

/// The document format's version. Only `1` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Version;

impl TryFrom<u32> for Version {
    type Error = String;
    fn try_from(v: u32) -> Result<Self, String> {
        if v == 1 {
            Ok(Self)
        } else {
            Err(format!(
                "unsupported workflow version {v}: this host reads version 1"
            ))
        }
    }
}

impl From<Version> for u32 {
    fn from(_: Version) -> u32 {
        1
    }
}

impl JsonSchema for Version {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Version")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "const": 1, "description": "the document format's version: 1" })
    }
}

/// A CEL expression (<https://cel.dev>), such as `trigger.payload.floor >= 3`.
/// Compiled when the workflow is applied. A YAML `true` or `false` is read as the
/// expression `true` or `false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Expression(
    /// The CEL source.
    pub String,
);

impl<'de> Deserialize<'de> for Expression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a CEL expression (a string), or true or false")]
        enum Text {
            Source(String),
            Literal(bool),
        }
        Ok(match Text::deserialize(d)? {
            Text::Source(s) => Self(s),
            Text::Literal(b) => Self(b.to_string()),
        })
    }
}

impl JsonSchema for Expression {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("Expression")
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "a CEL expression (https://cel.dev), such as `trigger.payload.floor >= 3`; true or false are read as the expressions `true` and `false`",
            "anyOf": [
                { "type": "string", "minLength": 1, "maxLength": 4096 },
                { "type": "boolean" }
            ]
        })
    }
}

/// A workflow: a trigger and the steps a run goes through.
///
/// ```yaml
/// version: 1
/// trigger:
///   event: { kind: camera.object-thrown }
/// steps:
///   - id: raise
///     call: { plugin: alert-rules, operation: ingest, input: { kind: "${{ trigger.kind }}" } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Courtyard workflow")]
pub struct Workflow {
    /// The document format's version: 1.
    pub version: Version,
    /// A one-line title for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub title: Option<String>,
    /// What the workflow is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub description: Option<String>,
    /// What starts a run. Every workflow can also be started by hand.
    pub trigger: Trigger,
    /// Constants the expressions can read as `vars.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, Value>,
    /// The steps, run in order unless a step says where to go next.
    #[schemars(length(min = 1, max = 100))]
    pub steps: Vec<Step>,
}

/// What starts a run: exactly one of `event`, `cron` or `manual`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// An event in the community's stream: posted by a device, or emitted by a plugin.
    Event(EventTrigger),
    /// A schedule.
    Cron(CronTrigger),
    /// Only by hand (`POST …/workflows/{workflow}/runs`).
    Manual(ManualTrigger),
}

/// An event trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTrigger {
    /// The event kind, such as `camera.object-thrown` or `canteen.order-placed`.
    pub kind: EventKind,
    /// A CEL condition on the event (`trigger.payload.floor >= 3`); no run starts
    /// when it is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Expression>,
}

/// A schedule trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    /// A crontab line: 5 fields (`0 2 * * *`: minute, hour, day of month, month, day of
    /// week) or 6 with seconds first (`30 0 2 * * *`).
    #[schemars(length(min = 1, max = 200))]
    pub schedule: String,
    /// The IANA time zone the schedule is read in (`Asia/Shanghai`); the district's
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// What to do with fires that were due while the host was down.
    #[serde(default)]
    pub missed: MissedFires,
}

/// What to do with the fires of a schedule that were due while the host was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissedFires {
    /// Start one run for the latest missed fire (a nightly sync catches up once).
    #[default]
    RunOnce,
    /// Drop them; wait for the next fire.
    Skip,
}

/// A manual trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualTrigger {}

/// One step: an `id` and exactly one action (`call`, `emit`, `wait_for` or `delay`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The step's id, unique in the workflow: expressions read its result as
    /// `steps.<id>`.
    pub id: StepId,
    /// What the step is for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub title: Option<String>,
    /// A CEL condition: the step is skipped when it is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Expression>,
    /// Call a plugin operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallStep>,
    /// Emit an event into the community's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit: Option<EmitStep>,
    /// Wait for an event, with a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<WaitStep>,
    /// Wait for a span of time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Span>,
    /// Where to go after this step: a later step's id, or `end`. The next step by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// For `call`: where to go when the call fails for good (after its retries): a
    /// later step's id, or `end`. Without it, a failed call fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// For `wait_for`: where to go when the wait times out: a later step's id, or
    /// `end`. Without it, a timeout fails the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<String>,
}

/// A call of a plugin operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallStep {
    /// The plugin.
    pub plugin: PluginName,
    /// The operation.
    pub operation: OperationName,
    /// The input: a JSON template, where a string `"${{ expr }}"` is replaced by the
    /// value of the CEL expression, and `${{ expr }}` inside a longer string by its
    /// text. `{}` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Retries for transient errors (the plugin is unavailable, the call timed out).
    /// Other errors are not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// The wall-clock limit of one attempt (the host's CPU limit applies as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
}

/// Retries with exponential backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// How many attempts in all, the first included: 1 to 10 (default 3).
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: u32,
    /// The wait before the second attempt; it doubles for each further one
    /// (default `1s`).
    #[serde(default = "default_backoff")]
    pub backoff: Span,
    /// The longest wait between attempts (default `1m`).
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Span,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> Span {
    Span::from_duration(Duration::from_secs(1))
}
fn default_max_backoff() -> Span {
    Span::from_duration(Duration::from_secs(60))
}

/// An event to emit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmitStep {
    /// The event kind.
    pub kind: EventKind,
    /// The payload: a JSON template (see `call.input`) that gives an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// A wait for an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// The event kind waited for.
    pub event: EventKind,
    /// A CEL condition that picks the event: `event` is the candidate, and the run's
    /// `trigger`, `steps` and `vars` are readable (`event.payload.visit_id ==
    /// steps.register.output.visit.id`). Any event of the kind when absent.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<Expression>,
    /// How long to wait.
    pub timeout: Span,
}

/// The JSON Schema of [`Workflow`], as published in `schemas/workflow.schema.json`.
pub fn workflow_schema() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Workflow>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// `schemas/workflow.schema.json` is generated from these types; regenerate it with
    /// `COURTYARD_BLESS=1 cargo test -p courtyard-workflow --lib`.
    #[test]
    fn the_published_workflow_schema_matches_the_types() {
        let generated = serde_json::to_string_pretty(&workflow_schema()).expect("schema") + "\n";
        let path = repo().join("schemas/workflow.schema.json");
        if std::env::var_os("COURTYARD_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write schema");
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{} is out of date; regenerate it with `COURTYARD_BLESS=1 cargo test -p courtyard-workflow --lib`",
            path.display()
        );
    }

    /// Editors validate against the published schema: every example must pass it, and
    /// it must refuse what the types refuse.
    #[test]
    fn the_examples_satisfy_the_published_schema_and_it_refuses_unknown_fields() {
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join("schemas/workflow.schema.json")).expect("read"),
        )
        .expect("JSON");
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let mut seen = 0;
        for entry in std::fs::read_dir(repo().join("workflows")).expect("workflows/") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let doc: Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("read"))
                    .expect("YAML");
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            seen += 1;
        }
        assert!(seen >= 5, "the five scenario examples");
        let bad = serde_json::json!({"version": 1, "trigger": {"manual": {}}, "steps": [{"id": "a", "delai": "1s"}]});
        assert!(!validator.is_valid(&bad));
        let bad = serde_json::json!({"version": 2, "trigger": {"manual": {}}, "steps": [{"id": "a", "delay": "1s"}]});
        assert!(!validator.is_valid(&bad));
    }

    #[test]
    fn spans() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
        ] {
            let span: Span = text.parse().expect(text);
            assert_eq!(span.as_millis(), ms, "{text}");
        }
        for bad in ["", "5", "m", "5x", "-5s", "1.5h", "31d", "5 m"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
        assert_eq!("90m".parse::<Span>().expect("span").to_string(), "90m");
        assert_eq!("120m".parse::<Span>().expect("span").to_string(), "2h");
    }

    #[test]
    fn a_yaml_boolean_is_the_expression_true_or_false() {
        let e: Expression = serde_json::from_value(serde_json::json!(true)).expect("bool");
        assert_eq!(e.0, "true");
        let e: Expression = serde_json::from_value(serde_json::json!("a > 1")).expect("text");
        assert_eq!(e.0, "a > 1");
        let err = serde_json::from_value::<Expression>(serde_json::json!(3)).expect_err("number");
        assert!(err.to_string().contains("a CEL expression"), "{err}");
    }

    #[test]
    fn step_ids_are_cel_identifiers_and_end_is_reserved() {
        assert!(StepId::new("raise_alarm").is_ok());
        for bad in ["end", "raise-alarm", "Raise", "1st", ""] {
            assert!(StepId::new(bad).is_err(), "{bad}");
        }
    }
}
