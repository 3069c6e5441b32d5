//! Rules: which events raise alarms, and how. Each community keeps its own rules in state
//! (`rule/{id}`), created one by one or installed from a [template](crate::templates).
//!
//! A rule names an event `kind`, [conditions](crate::conditions) on the payload, a
//! [trigger](crate::windows::Trigger) (each event, a duration, a count in a window), a
//! severity, a dedupe key and a title ([placeholders](crate::placeholders)), a cooldown and
//! an escalation delay.

use crate::conditions::{Condition, MatchMode, normalise_all};
use crate::config::Config;
use crate::placeholders::Template;
use crate::store::{Store, keys, load, mark, save};
use crate::templates;
use crate::windows::{MAX_SECONDS, Trigger};
use courtyard_sdk::Error;
use serde::{Deserialize, Deserializer, Serialize};

/// The most rules one event kind may have (an event is checked against all of them).
pub const MAX_RULES_PER_KIND: usize = 20;
/// The longest rule name.
pub const MAX_NAME: usize = 100;
/// The longest rule description.
pub const MAX_DESCRIPTION: usize = 500;

/// How urgent an alarm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// A rule as `create-rule` takes it (and as a template holds it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    #[serde(default)]
    pub trigger: Trigger,
    pub severity: Severity,
    pub dedupe_key: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub cooldown_seconds: u32,
    #[serde(default)]
    pub escalate_after_seconds: Option<u32>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A rule as it is stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub conditions: Vec<Condition>,
    #[serde(rename = "match")]
    pub match_mode: MatchMode,
    pub trigger: Trigger,
    pub severity: Severity,
    pub dedupe_key: String,
    pub title: String,
    pub cooldown_seconds: u32,
    pub escalate_after_seconds: Option<u32>,
    pub enabled: bool,
    /// The template the rule was installed from.
    pub template: Option<String>,
    /// Bumped by every change (unique across the community's rules).
    pub revision: u64,
    /// The revision at which what the rule matches (kind, conditions, match, trigger,
    /// dedupe key) last changed: duration and count windows restart then.
    pub window_revision: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Changes to a rule (`update-rule`, and `install-template`'s adjustments). Absent fields
/// stay as they are; `escalate_after_seconds: null` turns escalation off.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub conditions: Option<Vec<Condition>>,
    #[serde(rename = "match")]
    pub match_mode: Option<MatchMode>,
    pub trigger: Option<Trigger>,
    pub severity: Option<Severity>,
    pub dedupe_key: Option<String>,
    pub title: Option<String>,
    pub cooldown_seconds: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub escalate_after_seconds: Option<Option<u32>>,
    pub enabled: Option<bool>,
}

/// A field that may be present with `null`: `Some(None)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

impl RuleChanges {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `update-rule`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    pub id: String,
    #[serde(default)]
    pub expected_revision: Option<u64>,
    pub changes: RuleChanges,
}

/// `get-rule`'s and `delete-rule`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdInput {
    pub id: String,
}

/// `delete-rule`'s output.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Deleted {
    pub id: String,
    pub deleted: bool,
}

/// `list-rules`' input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `list-rules`' output.
#[derive(Debug, PartialEq, Serialize)]
pub struct RuleList {
    pub rules: Vec<Rule>,
    pub next: Option<String>,
}

/// `install-template`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallInput {
    pub template: String,
    /// The new rule's id (default: the template's id).
    #[serde(default)]
    pub id: Option<String>,
    /// Adjustments to the template before it is installed.
    #[serde(default)]
    pub changes: Option<RuleChanges>,
}

/// Whether `id` is a rule id: 1–63 lowercase letters, digits and `-`, not starting with `-`.
pub fn is_rule_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && !id.starts_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Whether `kind` is an event kind as the host defines it: dot-separated segments of
/// lowercase letters, digits, `-` and `_`, starting with a letter.
pub fn is_event_kind(kind: &str) -> bool {
    (1..=127).contains(&kind.len())
        && kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind.split('.').all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        })
}

impl Rule {
    /// A new rule from a spec (not yet checked or stored).
    fn from_spec(spec: RuleSpec, template: Option<String>, now_ms: i64) -> Self {
        let title = spec.title.unwrap_or_else(|| spec.name.clone());
        Self {
            id: spec.id,
            name: spec.name,
            description: spec.description,
            kind: spec.kind,
            conditions: spec.conditions,
            match_mode: spec.match_mode,
            trigger: spec.trigger,
            severity: spec.severity,
            dedupe_key: spec.dedupe_key,
            title,
            cooldown_seconds: spec.cooldown_seconds,
            escalate_after_seconds: spec.escalate_after_seconds,
            enabled: spec.enabled,
            template,
            revision: 0,
            window_revision: 0,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// What the rule matches: its windows restart when this changes.
    fn matching(&self) -> (String, Vec<Condition>, MatchMode, Trigger, String) {
        (
            self.kind.clone(),
            self.conditions.clone(),
            self.match_mode,
            self.trigger,
            self.dedupe_key.clone(),
        )
    }

    /// Applies `changes`; returns whether what the rule matches changed.
    fn apply(&mut self, changes: RuleChanges) -> bool {
        let before = self.matching();
        // Every field of the changes (the pattern names them all), set when present.
        macro_rules! set {
            ($($field:ident),* $(,)?) => {
                let RuleChanges { $($field),* } = changes;
                $(if let Some(v) = $field { self.$field = v; })*
            };
        }
        set!(
            name,
            description,
            kind,
            conditions,
            match_mode,
            trigger,
            severity,
            dedupe_key,
            title,
            cooldown_seconds,
            escalate_after_seconds,
            enabled,
        );
        before != self.matching()
    }

    /// Checks every field (the input schema checks most of this already; templates and
    /// updates come through here too) and normalises the conditions.
    pub fn check(&mut self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::invalid_input(m));
        if !is_rule_id(&self.id) {
            return bad(format!(
                "rule id {:?} is not valid: use 1 to 63 lowercase letters, digits and '-'",
                self.id
            ));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_NAME {
            return bad(format!(
                "rule {}: name must have 1 to {MAX_NAME} characters",
                self.id
            ));
        }
        if self.description.chars().count() > MAX_DESCRIPTION {
            return bad(format!(
                "rule {}: description must have at most {MAX_DESCRIPTION} characters",
                self.id
            ));
        }
        if !is_event_kind(&self.kind) {
            return bad(format!(
                "rule {}: kind {:?} is not an event kind; write dot-separated lowercase \
                 segments such as \"camera.crowd-detected\"",
                self.id, self.kind
            ));
        }
        self.conditions =
            normalise_all(std::mem::take(&mut self.conditions)).map_err(|e| prefix(&self.id, e))?;
        self.trigger.check().map_err(|e| prefix(&self.id, e))?;
        if let Err(why) = Template::parse(&self.dedupe_key) {
            return bad(format!("rule {}: dedupe_key {why}", self.id));
        }
        if self.dedupe_key.is_empty() {
            return bad(format!(
                "rule {}: dedupe_key is empty; name the fields that tell one incident from \
                 another, such as \"{{camera}}\" or \"{{plate}}:{{zone}}\"",
                self.id
            ));
        }
        if let Err(why) = Template::parse(&self.title) {
            return bad(format!("rule {}: title {why}", self.id));
        }
        if self.cooldown_seconds > MAX_SECONDS {
            return bad(format!(
                "rule {}: cooldown_seconds must be at most {MAX_SECONDS} (7 days)",
                self.id
            ));
        }
        if let Some(delay) = self.escalate_after_seconds
            && !(1..=MAX_SECONDS).contains(&delay)
        {
            return bad(format!(
                "rule {}: escalate_after_seconds must be 1 to {MAX_SECONDS} (7 days), or null \
                 for no escalation",
                self.id
            ));
        }
        Ok(())
    }

    /// The parsed dedupe key template (checked when the rule was stored).
    pub fn dedupe_template(&self) -> Result<Template, Error> {
        Template::parse(&self.dedupe_key).map_err(|why| {
            Error::internal(format!(
                "stored rule {} has a bad dedupe_key: {why}",
                self.id
            ))
        })
    }

    /// The parsed title template (checked when the rule was stored).
    pub fn title_template(&self) -> Result<Template, Error> {
        Template::parse(&self.title).map_err(|why| {
            Error::internal(format!("stored rule {} has a bad title: {why}", self.id))
        })
    }
}

fn prefix(id: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput(m) => Error::invalid_input(format!("rule {id}: {m}")),
        other => other,
    }
}

fn unknown_rule(id: &str) -> Error {
    Error::not_found(format!(
        "unknown rule {id:?}: list-rules shows this community's rules"
    ))
}

/// The rule `id`, or not-found.
pub fn get(store: &mut impl Store, input: IdInput) -> Result<Rule, Error> {
    load(store, &keys::rule(&input.id))?.ok_or_else(|| unknown_rule(&input.id))
}

/// The next rule revision (a counter in state).
fn next_revision(store: &mut impl Store) -> Result<u64, Error> {
    let revision = load::<u64>(store, keys::REVISION)?.unwrap_or(0) + 1;
    save(store, keys::REVISION, &revision)?;
    Ok(revision)
}

fn rule_count(store: &mut impl Store) -> Result<u32, Error> {
    Ok(load::<u32>(store, keys::RULE_COUNT)?.unwrap_or(0))
}

/// Refuses a new rule of `kind` when the community or the kind has too many.
fn check_room(store: &mut impl Store, config: &Config, kind: &str) -> Result<(), Error> {
    let count = rule_count(store)?;
    if count >= config.max_rules {
        return Err(Error::conflict(format!(
            "this community has {count} rules, its maximum (config max_rules); delete a rule \
             or raise max_rules first"
        )));
    }
    let same_kind = store.scan(&keys::by_kind_prefix(kind), None, MAX_RULES_PER_KIND as u32)?;
    if same_kind.len() >= MAX_RULES_PER_KIND {
        return Err(Error::conflict(format!(
            "event kind {kind} already has {MAX_RULES_PER_KIND} rules, the most one kind may \
             have; merge or delete some first"
        )));
    }
    Ok(())
}

/// Checks and stores a new rule.
fn insert(store: &mut impl Store, config: &Config, mut rule: Rule) -> Result<Rule, Error> {
    rule.check()?;
    if store.get(&keys::rule(&rule.id))?.is_some() {
        return Err(Error::conflict(format!(
            "rule {:?} already exists: change it with update-rule, or choose another id",
            rule.id
        )));
    }
    check_room(store, config, &rule.kind)?;
    rule.revision = next_revision(store)?;
    rule.window_revision = rule.revision;
    save(store, &keys::rule(&rule.id), &rule)?;
    mark(store, &keys::by_kind(&rule.kind, &rule.id))?;
    let count = rule_count(store)? + 1;
    save(store, keys::RULE_COUNT, &count)?;
    Ok(rule)
}

/// `create-rule`.
pub fn create(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    spec: RuleSpec,
) -> Result<Rule, Error> {
    insert(store, config, Rule::from_spec(spec, None, now_ms))
}

/// `update-rule`.
pub fn update(store: &mut impl Store, now_ms: i64, input: UpdateInput) -> Result<Rule, Error> {
    if input.changes.is_empty() {
        return Err(Error::invalid_input(
            "changes is empty: name at least one field to change",
        ));
    }
    let key = keys::rule(&input.id);
    let mut rule: Rule = load(store, &key)?.ok_or_else(|| unknown_rule(&input.id))?;
    if let Some(expected) = input.expected_revision
        && expected != rule.revision
    {
        return Err(Error::conflict(format!(
            "rule {} is at revision {}, not {expected}: someone changed it since you read it; \
             read it again with get-rule and retry",
            rule.id, rule.revision
        )));
    }
    let old_kind = rule.kind.clone();
    let window_changed = rule.apply(input.changes);
    rule.check()?;
    if rule.kind != old_kind {
        let same_kind = store.scan(
            &keys::by_kind_prefix(&rule.kind),
            None,
            MAX_RULES_PER_KIND as u32,
        )?;
        if same_kind.len() >= MAX_RULES_PER_KIND {
            return Err(Error::conflict(format!(
                "event kind {} already has {MAX_RULES_PER_KIND} rules, the most one kind may have",
                rule.kind
            )));
        }
        store.delete(&keys::by_kind(&old_kind, &rule.id))?;
        mark(store, &keys::by_kind(&rule.kind, &rule.id))?;
    }
    rule.revision = next_revision(store)?;
    if window_changed {
        rule.window_revision = rule.revision;
    }
    rule.updated_at_ms = now_ms;
    save(store, &key, &rule)?;
    Ok(rule)
}

/// `delete-rule`. The rule's alarms stay, and can still be acknowledged and cleared.
pub fn delete(store: &mut impl Store, input: IdInput) -> Result<Deleted, Error> {
    let key = keys::rule(&input.id);
    let rule: Rule = load(store, &key)?.ok_or_else(|| unknown_rule(&input.id))?;
    store.delete(&key)?;
    store.delete(&keys::by_kind(&rule.kind, &rule.id))?;
    let count = rule_count(store)?.saturating_sub(1);
    save(store, keys::RULE_COUNT, &count)?;
    Ok(Deleted {
        id: rule.id,
        deleted: true,
    })
}

/// `list-rules`: a page of rules in id order, optionally of one kind.
pub fn list(store: &mut impl Store, input: ListInput) -> Result<RuleList, Error> {
    let limit = input.limit.unwrap_or(50).clamp(1, 100);
    let (prefix, mut rules) = match &input.kind {
        Some(kind) => (keys::by_kind_prefix(kind), Vec::new()),
        None => (keys::RULE.to_owned(), Vec::new()),
    };
    let after = input.after.as_deref().map(|a| format!("{prefix}{a}"));
    let mut page = store.scan(&prefix, after.as_deref(), limit + 1)?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    for (key, value) in page {
        let id = &key[prefix.len()..];
        let rule: Rule = if input.kind.is_some() {
            load(store, &keys::rule(id))?
                .ok_or_else(|| Error::internal(format!("index names a missing rule {id}")))?
        } else {
            serde_json::from_value(value)
                .map_err(|e| Error::internal(format!("rule {id} is unreadable: {e}")))?
        };
        rules.push(rule);
    }
    let next = if more {
        rules.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(RuleList { rules, next })
}

/// The rules of `kind`, in id order.
pub fn for_kind(store: &mut impl Store, kind: &str) -> Result<Vec<Rule>, Error> {
    let prefix = keys::by_kind_prefix(kind);
    let ids = store.scan(&prefix, None, MAX_RULES_PER_KIND as u32)?;
    let mut rules = Vec::with_capacity(ids.len());
    for (key, _) in ids {
        if let Some(rule) = load::<Rule>(store, &keys::rule(&key[prefix.len()..]))? {
            rules.push(rule);
        }
    }
    Ok(rules)
}

/// `install-template`: a template as a new rule, with optional adjustments.
pub fn install(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: InstallInput,
) -> Result<Rule, Error> {
    let template = templates::find(&input.template).ok_or_else(|| {
        Error::not_found(format!(
            "unknown template {:?}: list-templates shows the built-in templates",
            input.template
        ))
    })?;
    let mut spec = template.rule;
    if let Some(id) = input.id {
        spec.id = id;
    }
    let mut rule = Rule::from_spec(spec, Some(template.id.to_owned()), now_ms);
    if let Some(changes) = input.changes {
        rule.apply(changes);
    }
    insert(store, config, rule)
}

/// Installs the configured `default_templates` not installed before (see
/// [`Config::default_templates`]). Runs at the start of every call; costs one read when
/// there is nothing to do.
pub fn seed_defaults(store: &mut impl Store, config: &Config, now_ms: i64) -> Result<(), Error> {
    let mut seeded: Vec<String> = load(store, keys::SEEDED)?.unwrap_or_default();
    let missing: Vec<&String> = config
        .default_templates
        .iter()
        .filter(|t| !seeded.contains(t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for id in missing {
        if let Some(template) = templates::find(id)
            && store.get(&keys::rule(template.id))?.is_none()
        {
            let rule = Rule::from_spec(template.rule, Some(template.id.to_owned()), now_ms);
            match insert(store, config, rule) {
                // A full community keeps what it has; the template can be installed later.
                Ok(_) | Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        seeded.push(id.clone());
    }
    save(store, keys::SEEDED, &seeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Op;
    use crate::tests::{conflict, count, invalid, not_found};
    use courtyard_sdk::Value;
    use courtyard_sdk::testing::MemoryStore;
    use serde_json::json;

    fn no_defaults() -> Config {
        Config {
            default_templates: vec![],
            ..Config::default()
        }
    }

    /// A change to a spec, for the table of bad rules.
    type Edit = Box<dyn Fn(&mut RuleSpec)>;

    fn id(id: &str) -> IdInput {
        IdInput { id: id.into() }
    }

    /// `update-rule`'s input, with the changes as JSON.
    fn upd(id: &str, expected_revision: Option<u64>, changes: Value) -> UpdateInput {
        UpdateInput {
            id: id.into(),
            expected_revision,
            changes: serde_json::from_value(changes).expect("changes"),
        }
    }

    /// `install-template`'s input, with the changes as JSON.
    fn installing(template: &str, id: Option<&str>, changes: Option<Value>) -> InstallInput {
        InstallInput {
            template: template.into(),
            id: id.map(str::to_owned),
            changes: changes.map(|c| serde_json::from_value(c).expect("changes")),
        }
    }

    pub(crate) fn spec(id: &str) -> RuleSpec {
        serde_json::from_value(json!({
            "id": id,
            "name": "Smoke",
            "kind": "sensor.smoke",
            "conditions": [{"field": "ppm", "op": "gte", "value": 300}],
            "severity": "critical",
            "dedupe_key": "{sensor}"
        }))
        .expect("spec")
    }

    #[test]
    fn create_fills_defaults_and_indexes_by_kind() {
        let mut s = MemoryStore::default();
        let rule = create(&mut s, &no_defaults(), 5, spec("smoke")).expect("created");
        assert_eq!(rule.title, "Smoke", "the title defaults to the name");
        assert_eq!(rule.trigger, Trigger::Each {});
        assert_eq!(rule.match_mode, MatchMode::All);
        assert!(rule.enabled);
        assert_eq!((rule.revision, rule.window_revision), (1, 1));
        assert_eq!((rule.created_at_ms, rule.updated_at_ms), (5, 5));
        assert_eq!(
            for_kind(&mut s, "sensor.smoke").expect("rules"),
            std::slice::from_ref(&rule)
        );
        assert_eq!(get(&mut s, id("smoke")), Ok(rule));
    }

    #[test]
    fn exists_conditions_are_stored_with_their_value() {
        let mut s = MemoryStore::default();
        let mut sp = spec("smoke");
        sp.conditions = vec![Condition {
            field: "ppm".into(),
            op: Op::Exists,
            value: None,
        }];
        let rule = create(&mut s, &no_defaults(), 0, sp).expect("created");
        assert_eq!(rule.conditions[0].value, Some(json!(true)));
    }

    #[test]
    fn a_duplicate_id_is_a_conflict() {
        let mut s = MemoryStore::default();
        create(&mut s, &no_defaults(), 0, spec("smoke")).expect("created");
        let m = conflict(create(&mut s, &no_defaults(), 0, spec("smoke")));
        assert!(
            m.contains("already exists") && m.contains("update-rule"),
            "{m}"
        );
    }

    #[test]
    fn bad_rules_are_invalid_input_naming_the_rule() {
        let mut s = MemoryStore::default();
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|r| r.id = "Bad Id".into()), "rule id"),
            (Box::new(|r| r.name = " ".into()), "name must"),
            (Box::new(|r| r.description = "x".repeat(501)), "description"),
            (Box::new(|r| r.kind = "Camera".into()), "not an event kind"),
            (
                Box::new(|r| r.kind = "camera..x".into()),
                "not an event kind",
            ),
            (
                Box::new(|r| r.dedupe_key = "{camera".into()),
                "dedupe_key has an unclosed",
            ),
            (
                Box::new(|r| r.dedupe_key = String::new()),
                "dedupe_key is empty",
            ),
            (
                Box::new(|r| r.title = Some("x}".into())),
                "title has a lone",
            ),
            (
                Box::new(|r| r.cooldown_seconds = MAX_SECONDS + 1),
                "cooldown_seconds",
            ),
            (
                Box::new(|r| r.escalate_after_seconds = Some(0)),
                "escalate_after_seconds",
            ),
            (
                Box::new(|r| {
                    r.trigger = Trigger::Count {
                        count: 0,
                        window_seconds: 5,
                    }
                }),
                "trigger.count",
            ),
            (
                Box::new(|r| r.conditions = vec![Condition::new("ppm", Op::Gt, json!("x"))]),
                "condition 1",
            ),
        ];
        for (change, needle) in cases {
            let mut sp = spec("smoke");
            change(&mut sp);
            match create(&mut s, &no_defaults(), 0, sp) {
                Err(Error::InvalidInput(m)) => assert!(m.contains(needle), "{needle}: {m}"),
                other => panic!("{needle}: {other:?}"),
            }
        }
        assert_eq!(count(&s, ""), 0, "nothing stored");
    }

    #[test]
    fn limits_on_rules_are_conflicts() {
        let mut s = MemoryStore::default();
        let config = Config {
            max_rules: 2,
            ..no_defaults()
        };
        create(&mut s, &config, 0, spec("a")).expect("a");
        create(&mut s, &config, 0, spec("b")).expect("b");
        let m = conflict(create(&mut s, &config, 0, spec("c")));
        assert!(m.contains("max_rules"), "{m}");
        delete(&mut s, id("a")).expect("deleted");
        create(&mut s, &config, 0, spec("c")).expect("room again");

        let mut s = MemoryStore::default();
        for i in 0..MAX_RULES_PER_KIND {
            create(&mut s, &no_defaults(), 0, spec(&format!("r{i}"))).expect("room");
        }
        let m = conflict(create(&mut s, &no_defaults(), 0, spec("one-too-many")));
        assert!(m.contains("sensor.smoke already has 20 rules"), "{m}");
    }

    #[test]
    fn update_applies_changes_and_bumps_revisions() {
        let mut s = MemoryStore::default();
        create(&mut s, &no_defaults(), 0, spec("smoke")).expect("created");
        create(&mut s, &no_defaults(), 0, spec("other")).expect("created");
        let changes = json!({"severity": "warning", "escalate_after_seconds": 60});
        let rule = update(&mut s, 9, upd("smoke", Some(1), changes)).expect("updated");
        assert_eq!(rule.severity, Severity::Warning);
        assert_eq!(rule.escalate_after_seconds, Some(60));
        assert_eq!(
            (rule.revision, rule.window_revision, rule.updated_at_ms),
            (3, 1, 9)
        );

        let changes = json!({"escalate_after_seconds": null, "dedupe_key": "{sensor}:{room}"});
        let rule = update(&mut s, 10, upd("smoke", None, changes)).expect("updated");
        assert_eq!(
            rule.escalate_after_seconds, None,
            "null turns escalation off"
        );
        assert_eq!(
            (rule.revision, rule.window_revision),
            (4, 4),
            "matching changed"
        );
    }

    #[test]
    fn update_refusals() {
        let mut s = MemoryStore::default();
        create(&mut s, &no_defaults(), 0, spec("smoke")).expect("created");
        let m = not_found(update(&mut s, 0, upd("nope", None, json!({"name": "x"}))));
        assert!(m.starts_with("unknown rule \"nope\""), "{m}");
        let m = conflict(update(
            &mut s,
            0,
            upd("smoke", Some(7), json!({"name": "x"})),
        ));
        assert!(
            m.contains("revision 1, not 7") && m.contains("get-rule"),
            "{m}"
        );
        invalid(update(&mut s, 0, upd("smoke", None, json!({}))));
        let m = invalid(update(
            &mut s,
            0,
            upd("smoke", None, json!({"dedupe_key": "{"})),
        ));
        assert!(m.contains("dedupe_key"), "{m}");
        assert_eq!(
            get(&mut s, id("smoke")).expect("rule").revision,
            1,
            "unchanged"
        );
        assert!(
            serde_json::from_value::<RuleChanges>(json!({"id": "x"})).is_err(),
            "no unknown fields"
        );
    }

    #[test]
    fn changing_the_kind_moves_the_index() {
        let mut s = MemoryStore::default();
        create(&mut s, &no_defaults(), 0, spec("smoke")).expect("created");
        update(&mut s, 0, upd("smoke", None, json!({"kind": "sensor.gas"}))).expect("updated");
        assert!(for_kind(&mut s, "sensor.smoke").expect("rules").is_empty());
        assert_eq!(for_kind(&mut s, "sensor.gas").expect("rules").len(), 1);
    }

    #[test]
    fn delete_removes_the_rule_and_unknown_is_not_found() {
        let mut s = MemoryStore::default();
        create(&mut s, &no_defaults(), 0, spec("smoke")).expect("created");
        assert_eq!(
            delete(&mut s, id("smoke")),
            Ok(Deleted {
                id: "smoke".into(),
                deleted: true
            })
        );
        assert!(for_kind(&mut s, "sensor.smoke").expect("rules").is_empty());
        for result in [
            delete(&mut s, id("smoke")).map(|_| ()),
            get(&mut s, id("smoke")).map(|_| ()),
        ] {
            assert!(not_found(result).contains("unknown rule"));
        }
    }

    #[test]
    fn list_pages_in_id_order_and_filters_by_kind() {
        let mut s = MemoryStore::default();
        for id in ["c", "a", "b"] {
            create(&mut s, &no_defaults(), 0, spec(id)).expect("created");
        }
        let mut gas = spec("gas");
        gas.kind = "sensor.gas".into();
        create(&mut s, &no_defaults(), 0, gas).expect("created");
        // (kind, after, limit) → the ids of the page and its `next`.
        let pages = [
            (None, None, Some(2), ["a", "b"], Some("b")),
            (None, Some("b"), Some(2), ["c", "gas"], None),
            (Some("sensor.smoke"), Some("a"), None, ["b", "c"], None),
        ];
        for (kind, after, limit, ids, next) in pages {
            let input = ListInput {
                kind: kind.map(str::to_owned),
                after: after.map(str::to_owned),
                limit,
            };
            let page = list(&mut s, input).expect("list");
            let listed: Vec<&str> = page.rules.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(
                (listed, page.next.as_deref()),
                (ids.to_vec(), next),
                "{kind:?} after {after:?}"
            );
        }
    }

    #[test]
    fn install_takes_an_id_and_changes() {
        let mut s = MemoryStore::default();
        let changes = json!({"severity": "critical", "cooldown_seconds": 60});
        let input = installing("illegal-parking", Some("parking-north"), Some(changes));
        let rule = install(&mut s, &no_defaults(), 3, input).expect("installed");
        assert_eq!(rule.id, "parking-north");
        assert_eq!(rule.template.as_deref(), Some("illegal-parking"));
        assert_eq!(
            (rule.severity, rule.cooldown_seconds),
            (Severity::Critical, 60)
        );
        assert_eq!(rule.kind, "camera.illegal-parking");
        let m = not_found(install(
            &mut s,
            &no_defaults(),
            3,
            installing("nope", None, None),
        ));
        assert!(m.contains("list-templates"), "{m}");
        let bad = installing("wristband-fall", None, Some(json!({"title": "{"})));
        invalid(install(&mut s, &no_defaults(), 3, bad));
    }

    #[test]
    fn every_template_installs() {
        let mut s = MemoryStore::default();
        for t in templates::all() {
            let rule = install(&mut s, &no_defaults(), 0, installing(t.id, None, None))
                .unwrap_or_else(|e| panic!("{}: {e}", t.id));
            assert_eq!(rule.id, t.id);
        }
    }

    #[test]
    fn defaults_are_seeded_once_and_deleting_one_keeps_it_deleted() {
        let mut s = MemoryStore::default();
        let config = Config::default();
        seed_defaults(&mut s, &config, 1).expect("seeded");
        let all = templates::all();
        assert_eq!(count(&s, keys::RULE), all.len());
        delete(&mut s, id("wristband-fall")).expect("deleted");
        seed_defaults(&mut s, &config, 2).expect("seeded");
        assert_eq!(count(&s, keys::RULE), all.len() - 1, "not brought back");

        // A template added to the config later is installed then; an existing rule of the
        // same id is kept as it is.
        let mut s = MemoryStore::default();
        let few = Config {
            default_templates: vec!["object-thrown".into()],
            ..Config::default()
        };
        seed_defaults(&mut s, &few, 0).expect("seeded");
        let mut mine = spec("manhole-open");
        mine.name = "Mine".into();
        create(&mut s, &few, 0, mine).expect("created");
        let more = Config {
            default_templates: vec![
                "object-thrown".into(),
                "manhole-open".into(),
                "wristband-fall".into(),
            ],
            ..Config::default()
        };
        seed_defaults(&mut s, &more, 0).expect("seeded");
        assert_eq!(count(&s, keys::RULE), 3);
        assert_eq!(get(&mut s, id("manhole-open")).expect("rule").name, "Mine");
    }

    #[test]
    fn seeding_into_a_full_community_skips() {
        let mut s = MemoryStore::default();
        let config = Config {
            max_rules: 2,
            ..Config::default()
        };
        seed_defaults(&mut s, &config, 0).expect("seeded");
        assert_eq!(count(&s, keys::RULE), 2);
    }

    #[test]
    fn ids_and_kinds() {
        for ok in ["a", "crowd-gathering", "r2d2"] {
            assert!(is_rule_id(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_rule_id(bad), "{bad}");
        }
        for ok in ["camera.object-thrown", "a", "wristband.heart_rate", "x.9a"] {
            assert!(is_event_kind(ok), "{ok}");
        }
        for bad in ["", "9a", "a.", ".a", "a..b", "A.b", "a.-b"] {
            assert!(!is_event_kind(bad), "{bad}");
        }
    }
}
