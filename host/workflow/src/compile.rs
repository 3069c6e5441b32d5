//! Reading a workflow document and checking it against the host: the static checks
//! that run when an admin applies a workflow.

use crate::document::{MissedFires, Retry, Span, StepId, Trigger, Workflow, WorkflowName};
use crate::expr::{Cel, Template};
use courtyard_registry::EventKind;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// One problem in a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The path in the document (`steps[2].call.plugin`); empty for the whole document.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

/// The document's text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML (1.2; JSON is YAML too).
    Yaml,
}

/// Parses a document. Errors name the path of the offending field.
pub fn parse(text: &str, format: Format) -> Result<Workflow, Problem> {
    let value: Value = match format {
        Format::Json => {
            serde_json::from_str(text).map_err(|e| problem("", format!("not valid JSON: {e}")))?
        }
        Format::Yaml => serde_yaml_ng::from_str(text)
            .map_err(|e| problem("", format!("not valid YAML: {e}")))?,
    };
    from_value(value)
}

/// Reads a document from a JSON value.
pub fn from_value(value: Value) -> Result<Workflow, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        problem(path, e.into_inner().to_string())
    })
}

/// What the static checks need to know about the host's plugins.
pub trait Catalog {
    /// Whether a plugin of that name is loaded.
    fn has_plugin(&self, plugin: &str) -> bool;
    /// Whether the plugin has that operation.
    fn has_operation(&self, plugin: &str, operation: &str) -> bool;
    /// The names of the loaded plugins (for "did you mean" and reserved event kinds).
    fn plugin_names(&self) -> Vec<String>;
}

/// The plugin whose event namespace `kind` is in (`alert-rules.alarm-raised` is
/// alert-rules'), if that plugin is loaded. Only the plugin may emit such events.
pub fn reserved_by(kind: &str, catalog: &dyn Catalog) -> Option<String> {
    let first = kind.split('.').next()?;
    catalog.has_plugin(first).then(|| first.to_owned())
}

/// Where a step goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The step at this index.
    Step(usize),
    /// The end of the run.
    End,
}

/// A checked cron schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The crontab line as written.
    pub line: String,
    /// The parsed schedule (6 fields).
    pub schedule: cron::Schedule,
    /// The time zone.
    pub time_zone: chrono_tz::Tz,
    /// What to do with missed fires.
    pub missed: MissedFires,
}

impl Schedule {
    /// Parses a 5- or 6-field crontab line in `time_zone`. Day-of-week numbers are
    /// crontab's (0 or 7 is Sunday, 1 Monday … 6 Saturday); names (`MON-FRI`) work too.
    pub fn parse(line: &str, time_zone: &str, missed: MissedFires) -> Result<Self, String> {
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 5 {
            fields.insert(0, "0");
        }
        if fields.len() != 6 {
            return Err(format!(
                "a schedule has 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), not {}",
                line.split_whitespace().count()
            ));
        }
        let day_of_week = crontab_days_of_week(fields[5])
            .map_err(|m| format!("invalid schedule {line:?}: day of week: {m}"))?;
        let six = format!("{} {day_of_week}", fields[..5].join(" "));
        let schedule = cron::Schedule::from_str(&six)
            .map_err(|e| format!("invalid schedule {line:?}: {e}"))?;
        let time_zone = chrono_tz::Tz::from_str(time_zone).map_err(|_| {
            format!("unknown time zone {time_zone:?} (an IANA name such as Asia/Shanghai)")
        })?;
        Ok(Self {
            line: line.to_owned(),
            schedule,
            time_zone,
            missed,
        })
    }

    /// The last fire at or before `at_ms` (Unix milliseconds).
    pub fn last_at_or_before(&self, at_ms: i64) -> Option<i64> {
        use chrono::TimeZone;
        // Fires are whole seconds: start a second later and step back.
        let probe = self
            .time_zone
            .timestamp_millis_opt(at_ms.saturating_add(1000))
            .single()?;
        let mut earlier = self.schedule.after(&probe);
        for _ in 0..4 {
            let t = earlier.next_back()?.timestamp_millis();
            if t <= at_ms {
                return Some(t);
            }
        }
        None
    }

    /// The first fire strictly after `after_ms` (Unix milliseconds).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        use chrono::TimeZone;
        let after = self.time_zone.timestamp_millis_opt(after_ms).single()?;
        self.schedule
            .after(&after)
            .next()
            .map(|t| t.timestamp_millis())
    }
}

/// Rewrites crontab's day-of-week numbers (0 or 7 Sunday … 6 Saturday) into the
/// `cron` crate's (1 Sunday … 7 Saturday); names and `*`/`?` pass unchanged.
fn crontab_days_of_week(field: &str) -> Result<String, String> {
    let number = |t: &str| -> Result<Option<u32>, String> {
        if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
            let n: u32 = t.parse().map_err(|_| format!("{t:?} is not a day"))?;
            if n > 7 {
                return Err(format!("{n} is not a day (0 or 7 is Sunday, 6 Saturday)"));
            }
            Ok(Some(n))
        } else {
            Ok(None)
        }
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step = step.map(|s| format!("/{s}")).unwrap_or_default();
        match range.split_once('-') {
            Some((a, b)) => match (number(a)?, number(b)?) {
                (Some(a), Some(b)) => {
                    let a = if a == 7 { 0 } else { a };
                    if b == 7 && a > 0 && step.is_empty() {
                        // `5-7` is Friday to Sunday: Friday-Saturday, and Sunday.
                        items.push(format!("{}-7", a + 1));
                        items.push("1".to_owned());
                    } else {
                        let b = if b == 7 { 6 } else { b };
                        if a > b {
                            return Err(format!("{range:?} runs backwards"));
                        }
                        items.push(format!("{}-{}{step}", a + 1, b + 1));
                    }
                }
                (None, None) => items.push(item.to_owned()),
                _ => return Err(format!("{range:?} mixes a number and a name")),
            },
            None => match number(range)? {
                Some(n) => items.push(format!("{}{step}", if n == 7 { 1 } else { n + 1 })),
                None => items.push(item.to_owned()),
            },
        }
    }
    Ok(items.join(","))
}

/// A checked trigger.
#[derive(Debug, Clone)]
pub enum CompiledTrigger {
    /// An event kind, with a condition.
    Event {
        /// The kind.
        kind: EventKind,
        /// The condition.
        when: Option<Cel>,
    },
    /// A schedule.
    Cron(Box<Schedule>),
    /// By hand only.
    Manual,
}

/// A checked step.
#[derive(Debug, Clone)]
pub struct CompiledStep {
    /// Its id.
    pub id: StepId,
    /// Its condition.
    pub when: Option<Cel>,
    /// What it does.
    pub action: Action,
    /// Where to go after it.
    pub next: Target,
    /// Where to go when its call fails for good.
    pub on_error: Option<Target>,
    /// Where to go when its wait times out.
    pub on_timeout: Option<Target>,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Call a plugin operation.
    Call {
        /// The plugin.
        plugin: String,
        /// The operation.
        operation: String,
        /// The input template.
        input: Template,
        /// Retries of transient errors.
        retry: Retry,
        /// The wall-clock limit of one attempt.
        timeout: Option<Duration>,
    },
    /// Emit an event.
    Emit {
        /// The kind.
        kind: EventKind,
        /// The payload template.
        payload: Template,
    },
    /// Wait for an event.
    Wait {
        /// The kind.
        kind: EventKind,
        /// The condition that picks it.
        matches: Option<Cel>,
        /// How long to wait.
        timeout: Span,
    },
    /// Wait for a span of time.
    Delay(Span),
}

/// A workflow that passed the static checks, ready to run.
#[derive(Debug, Clone)]
pub struct CompiledWorkflow {
    /// The workflow's name.
    pub name: WorkflowName,
    /// The document.
    pub document: Arc<Workflow>,
    /// The trigger.
    pub trigger: CompiledTrigger,
    /// The steps.
    pub steps: Vec<CompiledStep>,
}

impl CompiledWorkflow {
    /// The plugins the steps call.
    pub fn plugins(&self) -> BTreeSet<String> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Call { plugin, .. } => Some(plugin.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The most steps a workflow has.
pub const MAX_STEPS: usize = 100;

/// The variables every expression can read.
const COMMON_VARIABLES: [&str; 6] = ["trigger", "steps", "vars", "community", "config", "run"];

/// Checks `document` against the host and compiles it. Every problem found is
/// returned, each with its path.
pub fn compile(
    name: WorkflowName,
    document: Workflow,
    catalog: &dyn Catalog,
    default_time_zone: &str,
) -> Result<CompiledWorkflow, Vec<Problem>> {
    let mut problems = Vec::new();

    if !(1..=MAX_STEPS).contains(&document.steps.len()) {
        problems.push(problem(
            "steps",
            format!(
                "a workflow has 1 to {MAX_STEPS} steps, not {}",
                document.steps.len()
            ),
        ));
        return Err(problems);
    }
    for (path, text, max) in [
        ("title", document.title.as_deref(), 200),
        ("description", document.description.as_deref(), 4000),
    ] {
        if text.is_some_and(|t| t.chars().count() > max) {
            problems.push(problem(path, format!("at most {max} characters")));
        }
    }
    if let Trigger::Cron(c) = &document.trigger
        && c.schedule.len() > 200
    {
        problems.push(problem("trigger.cron.schedule", "at most 200 characters"));
    }
    for (i, step) in document.steps.iter().enumerate() {
        if step.title.as_ref().is_some_and(|t| t.chars().count() > 200) {
            problems.push(problem(
                format!("steps[{i}].title"),
                "at most 200 characters",
            ));
        }
    }

    for key in document.vars.keys() {
        if StepId::new(key.clone()).is_err() || key == "end" {
            problems.push(problem(
                format!("vars.{key}"),
                "a variable name is a CEL identifier: lowercase letters, digits and '_', starting with a letter",
            ));
        }
    }

    let trigger = match &document.trigger {
        Trigger::Event(t) => {
            let when = t
                .when
                .as_ref()
                .and_then(|w| check_expr(&w.0, "trigger.event.when", &[], &[], &mut problems));
            CompiledTrigger::Event {
                kind: t.kind.clone(),
                when,
            }
        }
        Trigger::Cron(c) => {
            let tz = c.time_zone.as_deref().unwrap_or(default_time_zone);
            match Schedule::parse(&c.schedule, tz, c.missed) {
                Ok(s) => CompiledTrigger::Cron(Box::new(s)),
                Err(m) => {
                    let path = if m.contains("time zone") {
                        "trigger.cron.time_zone"
                    } else {
                        "trigger.cron.schedule"
                    };
                    problems.push(problem(path, m));
                    CompiledTrigger::Manual
                }
            }
        }
        Trigger::Manual(_) => CompiledTrigger::Manual,
    };

    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, step) in document.steps.iter().enumerate() {
        if let Some(first) = index.get(step.id.as_str()) {
            problems.push(problem(
                format!("steps[{i}].id"),
                format!(
                    "duplicate step id {:?} (first used by steps[{first}])",
                    step.id.as_str()
                ),
            ));
        } else {
            index.insert(step.id.as_str(), i);
        }
    }

    let target = |from: usize,
                  field: &str,
                  value: &str,
                  problems: &mut Vec<Problem>|
     -> Option<Target> {
        if value == "end" {
            return Some(Target::End);
        }
        match index.get(value) {
            Some(&to) if to > from => Some(Target::Step(to)),
            Some(_) => {
                problems.push(problem(
                    format!("steps[{from}].{field}"),
                    format!("{value:?} is not a later step: a step can only go forward (to a later step or `end`), so every run ends"),
                ));
                None
            }
            None => {
                problems.push(problem(
                    format!("steps[{from}].{field}"),
                    format!("there is no step {value:?}"),
                ));
                None
            }
        }
    };

    let plugins = catalog.plugin_names();
    let mut steps = Vec::new();
    for (i, step) in document.steps.iter().enumerate() {
        let earlier: Vec<&str> = document.steps[..i].iter().map(|s| s.id.as_str()).collect();
        let at = |field: &str| format!("steps[{i}].{field}");
        let when = step
            .when
            .as_ref()
            .and_then(|w| check_expr(&w.0, &at("when"), &earlier, &[], &mut problems));
        let actions = [
            step.call.is_some(),
            step.emit.is_some(),
            step.wait_for.is_some(),
            step.delay.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if actions != 1 {
            problems.push(problem(
                format!("steps[{i}]"),
                format!("a step has exactly one of `call`, `emit`, `wait_for` or `delay`; this one has {actions}"),
            ));
            continue;
        }
        if step.on_error.is_some() && step.call.is_none() {
            problems.push(problem(
                at("on_error"),
                "only a `call` step has an error branch",
            ));
        }
        if step.on_timeout.is_some() && step.wait_for.is_none() {
            problems.push(problem(
                at("on_timeout"),
                "only a `wait_for` step has a timeout branch",
            ));
        }
        let action = if let Some(call) = &step.call {
            let plugin = call.plugin.as_str();
            if !catalog.has_plugin(plugin) {
                let hint = closest(plugin, &plugins)
                    .map(|p| format!("; did you mean {p:?}?"))
                    .unwrap_or_default();
                problems.push(problem(
                    at("call.plugin"),
                    format!("unknown plugin {plugin:?}{hint}"),
                ));
            } else if !catalog.has_operation(plugin, call.operation.as_str()) {
                problems.push(problem(
                    at("call.operation"),
                    format!(
                        "plugin {plugin} has no operation {:?}",
                        call.operation.as_str()
                    ),
                ));
            }
            let input = check_template(
                call.input
                    .as_ref()
                    .unwrap_or(&Value::Object(Default::default())),
                &at("call.input"),
                &earlier,
                &mut problems,
            );
            let retry = call.retry.clone().unwrap_or_default();
            if !(1..=10).contains(&retry.max_attempts) {
                problems.push(problem(at("call.retry.max_attempts"), "between 1 and 10"));
            }
            Action::Call {
                plugin: plugin.to_owned(),
                operation: call.operation.as_str().to_owned(),
                input,
                retry,
                timeout: call.timeout.map(Span::duration),
            }
        } else if let Some(emit) = &step.emit {
            if let Some(owner) = reserved_by(emit.kind.as_str(), catalog) {
                problems.push(problem(
                    at("emit.kind"),
                    format!("event kinds beginning with {owner:?}. belong to the plugin {owner}; a workflow emits kinds of its own (such as `notify.staff`)"),
                ));
            }
            let payload = check_template(
                emit.payload
                    .as_ref()
                    .unwrap_or(&Value::Object(Default::default())),
                &at("emit.payload"),
                &earlier,
                &mut problems,
            );
            Action::Emit {
                kind: emit.kind.clone(),
                payload,
            }
        } else if let Some(wait) = &step.wait_for {
            let matches = wait.matches.as_ref().and_then(|m| {
                check_expr(
                    &m.0,
                    &at("wait_for.match"),
                    &earlier,
                    &["event"],
                    &mut problems,
                )
            });
            Action::Wait {
                kind: wait.event.clone(),
                matches,
                timeout: wait.timeout,
            }
        } else if let Some(delay) = step.delay {
            Action::Delay(delay)
        } else {
            continue;
        };
        let next = match &step.next {
            Some(n) => target(i, "next", n, &mut problems).unwrap_or(Target::End),
            None if i + 1 < document.steps.len() => Target::Step(i + 1),
            None => Target::End,
        };
        let on_error = step
            .on_error
            .as_ref()
            .and_then(|t| target(i, "on_error", t, &mut problems));
        let on_timeout = step
            .on_timeout
            .as_ref()
            .and_then(|t| target(i, "on_timeout", t, &mut problems));
        steps.push(CompiledStep {
            id: step.id.clone(),
            when,
            action,
            next,
            on_error,
            on_timeout,
        });
    }

    if problems.is_empty() {
        Ok(CompiledWorkflow {
            name,
            document: Arc::new(document),
            trigger,
            steps,
        })
    } else {
        Err(problems)
    }
}

fn check_expr(
    source: &str,
    path: &str,
    earlier: &[&str],
    extra: &[&str],
    problems: &mut Vec<Problem>,
) -> Option<Cel> {
    match Cel::compile(source) {
        Ok(cel) => {
            check_references(&cel, path, earlier, extra, problems);
            Some(cel)
        }
        Err(m) => {
            problems.push(problem(path, format!("invalid CEL: {m}")));
            None
        }
    }
}

fn check_template(
    value: &Value,
    path: &str,
    earlier: &[&str],
    problems: &mut Vec<Problem>,
) -> Template {
    match Template::compile(value) {
        Ok(t) => {
            for cel in t.expressions() {
                check_references(cel, path, earlier, &[], problems);
            }
            t
        }
        Err((sub, m)) => {
            problems.push(problem(format!("{path}{sub}"), m));
            Template::Literal(Value::Null)
        }
    }
}

fn check_references(
    cel: &Cel,
    path: &str,
    earlier: &[&str],
    extra: &[&str],
    problems: &mut Vec<Problem>,
) {
    let refs = cel.references();
    if refs.nesting > 1 {
        problems.push(problem(
            path,
            format!(
                "`{}` nests a list macro (all, exists, exists_one, filter, map) inside another; one level is allowed, so that an expression's cost stays linear in its input",
                cel.source()
            ),
        ));
    }
    for var in &refs.variables {
        if !COMMON_VARIABLES.contains(&var.as_str()) && !extra.contains(&var.as_str()) {
            let mut known: Vec<&str> = COMMON_VARIABLES.to_vec();
            known.extend_from_slice(extra);
            problems.push(problem(
                path,
                format!(
                    "`{}` reads an unknown variable `{var}`; the variables are {}",
                    cel.source(),
                    known.join(", ")
                ),
            ));
        }
    }
    for step in &refs.steps {
        if !earlier.contains(&step.as_str()) {
            problems.push(problem(
                path,
                format!(
                    "`{}` reads steps.{step}, which is not an earlier step",
                    cel.source()
                ),
            ));
        }
    }
}

/// The candidate closest to `name` by edit distance, if it is close.
fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c.as_str())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plugins;
    impl Catalog for Plugins {
        fn has_plugin(&self, p: &str) -> bool {
            ["canteen", "alert-rules"].contains(&p)
        }
        fn has_operation(&self, p: &str, op: &str) -> bool {
            matches!(
                (p, op),
                ("canteen", "place-order") | ("alert-rules", "ingest")
            )
        }
        fn plugin_names(&self) -> Vec<String> {
            vec!["alert-rules".into(), "canteen".into()]
        }
    }

    fn check(yaml: &str) -> Result<CompiledWorkflow, Vec<String>> {
        let doc = parse(yaml, Format::Yaml).map_err(|p| vec![p.to_string()])?;
        compile(
            WorkflowName::new("w").expect("name"),
            doc,
            &Plugins,
            "Asia/Shanghai",
        )
        .map_err(|ps| ps.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_misspelt_plugin_is_named_with_its_path() {
        let errs = check(
            "version: 1\ntrigger: {manual: {}}\nsteps:\n  - {id: a, call: {plugin: canteen, operation: place-order}}\n  - {id: b, call: {plugin: canteen, operation: place-order}}\n  - {id: c, call: {plugin: canteeen, operation: place-order}}\n",
        )
        .expect_err("refused");
        assert_eq!(
            errs,
            [r#"steps[2].call.plugin: unknown plugin "canteeen"; did you mean "canteen"?"#]
        );
    }

    #[test]
    fn unknown_fields_and_bad_ids_name_the_path() {
        let errs = check("version: 1\ntrigger: {manual: {}}\nsteps:\n  - {id: a, cal: {}}\n")
            .expect_err("refused");
        assert!(
            errs[0].starts_with("steps[0].cal: unknown field `cal`, expected one of `id`"),
            "{errs:?}"
        );
        let errs =
            check("version: 1\ntrigger: {manual: {}}\nsteps:\n  - {id: Bad-Id, delay: 5s}\n")
                .expect_err("refused");
        assert!(errs[0].starts_with("steps[0].id: step id"), "{errs:?}");
        let errs = check("version: 2\ntrigger: {manual: {}}\nsteps: [{id: a, delay: 5s}]\n")
            .expect_err("refused");
        assert!(
            errs[0].contains("unsupported workflow version 2"),
            "{errs:?}"
        );
        let errs = check("version: 1\ntrigger: {manual: {}}\nsteps: [{id: a, delay: 5 minutes}]\n")
            .expect_err("refused");
        assert!(errs[0].starts_with("steps[0].delay: duration"), "{errs:?}");
    }

    #[test]
    fn ids_are_unique_references_point_back_and_jumps_go_forward() {
        let errs = check(
            "version: 1\ntrigger: {manual: {}}\nsteps:\n  - {id: a, delay: 1s, when: 'steps.b.output.x == 1'}\n  - {id: b, delay: 1s, next: a}\n  - {id: b, delay: 1s, next: nowhere}\n",
        )
        .expect_err("refused");
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("steps[2].id: duplicate step id \"b\" (first used by steps[1])")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with(
                "steps[0].when: `steps.b.output.x == 1` reads steps.b, which is not an earlier step"
            )),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("steps[1].next: \"a\" is not a later step")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e == "steps[2].next: there is no step \"nowhere\""),
            "{errs:?}"
        );
    }

    #[test]
    fn cron_lines_and_time_zones_are_checked() {
        let ok = check(
            "version: 1\ntrigger: {cron: {schedule: '0 2 * * *'}}\nsteps: [{id: a, delay: 1s}]\n",
        )
        .expect("5 fields");
        assert!(matches!(ok.trigger, CompiledTrigger::Cron(_)));
        check("version: 1\ntrigger: {cron: {schedule: '30 0 2 * * *', time_zone: Europe/Paris}}\nsteps: [{id: a, delay: 1s}]\n").expect("6 fields");
        let errs = check(
            "version: 1\ntrigger: {cron: {schedule: '0 25 * * *'}}\nsteps: [{id: a, delay: 1s}]\n",
        )
        .expect_err("hour 25");
        assert!(
            errs[0].starts_with("trigger.cron.schedule: invalid schedule"),
            "{errs:?}"
        );
        let errs = check(
            "version: 1\ntrigger: {cron: {schedule: '* * *'}}\nsteps: [{id: a, delay: 1s}]\n",
        )
        .expect_err("3 fields");
        assert!(errs[0].contains("5 fields"), "{errs:?}");
        let errs = check("version: 1\ntrigger: {cron: {schedule: '0 2 * * *', time_zone: Mars/Olympus}}\nsteps: [{id: a, delay: 1s}]\n").expect_err("tz");
        assert!(
            errs[0].starts_with("trigger.cron.time_zone: unknown time zone"),
            "{errs:?}"
        );
    }

    #[test]
    fn expressions_are_compiled_and_their_variables_checked() {
        let errs = check(
            "version: 1\ntrigger: {event: {kind: camera.x, when: 'payload.floor > 2'}}\nsteps:\n  - {id: a, emit: {kind: notify.staff, payload: {x: '${{ 1 + }}'}}}\n  - {id: b, emit: {kind: alert-rules.alarm-raised}}\n  - {id: c, delay: 1s, on_error: end}\n",
        )
        .expect_err("refused");
        assert!(
            errs.iter().any(|e| e.starts_with(
                "trigger.event.when: `payload.floor > 2` reads an unknown variable `payload`"
            )),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("steps[0].emit.payload.x: invalid CEL")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e
                .starts_with("steps[1].emit.kind: event kinds beginning with \"alert-rules\".")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e == "steps[2].on_error: only a `call` step has an error branch"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_step_has_exactly_one_action() {
        let errs = check("version: 1\ntrigger: {manual: {}}\nsteps: [{id: a, delay: 1s, emit: {kind: x.y}}, {id: b}]\n").expect_err("refused");
        assert!(
            errs[0].starts_with("steps[0]: a step has exactly one of"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("steps[1]: a step has exactly one of"),
            "{errs:?}"
        );
    }

    #[test]
    fn day_of_week_numbers_are_crontab_numbers() {
        // 2026-11-28 is a Saturday; 00:00 UTC.
        let saturday = 1_795_824_000_000;
        let day = 24 * 3_600_000;
        let nine = 9 * 3_600_000;
        let next = |line: &str| {
            Schedule::parse(line, "UTC", MissedFires::RunOnce)
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .next_after(saturday)
        };
        assert_eq!(
            next("0 9 * * 1"),
            Some(saturday + 2 * day + nine),
            "1 is Monday"
        );
        assert_eq!(next("0 9 * * MON"), Some(saturday + 2 * day + nine));
        assert_eq!(
            next("0 9 * * 0"),
            Some(saturday + day + nine),
            "0 is Sunday"
        );
        assert_eq!(
            next("0 9 * * 7"),
            Some(saturday + day + nine),
            "7 is Sunday too"
        );
        assert_eq!(next("0 9 * * 6"), Some(saturday + nine), "6 is Saturday");
        assert_eq!(
            next("0 9 * * 1-5"),
            Some(saturday + 2 * day + nine),
            "weekdays"
        );
        assert_eq!(
            next("0 9 * * 5-7"),
            Some(saturday + nine),
            "Friday to Sunday"
        );
        assert_eq!(
            next("0 0 9 * * 1,3"),
            Some(saturday + 2 * day + nine),
            "6 fields alike"
        );
        assert!(Schedule::parse("0 9 * * 8", "UTC", MissedFires::RunOnce).is_err());
        assert!(Schedule::parse("0 9 * * 5-2", "UTC", MissedFires::RunOnce).is_err());
    }

    #[test]
    fn the_last_fire_is_found_without_counting_the_fires() {
        let s = Schedule::parse("* * * * * *", "UTC", MissedFires::RunOnce).expect("every second");
        let t0 = 1_795_824_000_000;
        let two_days = 2 * 24 * 3_600_000;
        assert_eq!(s.last_at_or_before(t0 + two_days), Some(t0 + two_days));
        assert_eq!(
            s.last_at_or_before(t0 + two_days + 500),
            Some(t0 + two_days)
        );
        let nightly =
            Schedule::parse("0 2 * * *", "Asia/Shanghai", MissedFires::RunOnce).expect("nightly");
        // 02:00 in Shanghai is 18:00 UTC.
        assert_eq!(
            nightly.last_at_or_before(t0 + 18 * 3_600_000 - 1),
            Some(t0 - 6 * 3_600_000)
        );
    }

    #[test]
    fn nested_list_macros_and_oversized_documents_are_refused() {
        let errs = check("version: 1\ntrigger: {event: {kind: a.b, when: 'trigger.payload.l.all(x, trigger.payload.l.exists(y, x == y))'}}\nsteps: [{id: a, delay: 1s}]\n").expect_err("nested");
        assert!(errs[0].contains("nests a list macro"), "{errs:?}");
        check("version: 1\ntrigger: {event: {kind: a.b, when: 'trigger.payload.l.all(x, x > 1) && trigger.payload.l.exists(y, y > 2)'}}\nsteps: [{id: a, delay: 1s}]\n").expect("side by side is fine");
        let errs = check("version: 1\ntrigger: {manual: {}}\nsteps: []\n").expect_err("no steps");
        assert_eq!(errs, ["steps: a workflow has 1 to 100 steps, not 0"]);
        let many: String = (0..101)
            .map(|i| format!("  - {{id: s{i}, delay: 1s}}\n"))
            .collect();
        let errs = check(&format!(
            "version: 1\ntrigger: {{manual: {{}}}}\nsteps:\n{many}"
        ))
        .expect_err("101 steps");
        assert_eq!(errs, ["steps: a workflow has 1 to 100 steps, not 101"]);
    }

    #[test]
    fn five_field_lines_fire_in_their_time_zone() {
        let s = Schedule::parse("0 2 * * *", "Asia/Shanghai", MissedFires::RunOnce).expect("parse");
        // 2026-11-28T00:00:00Z is 08:00 in Shanghai; the next 02:00 there is 2026-11-28T18:00:00Z.
        let midnight_utc = 1_795_824_000_000;
        assert_eq!(
            s.next_after(midnight_utc),
            Some(midnight_utc + 18 * 3_600_000)
        );
    }
}
