//! CEL expressions and JSON templates.
//!
//! Conditions and mappings are CEL (<https://cel.dev>), through the `cel` crate: a
//! well-known language that cannot loop forever. A JSON template is a JSON value in
//! which a string `"${{ expr }}"` is replaced by the expression's value (any JSON
//! type), and `${{ expr }}` inside a longer string by the value's text.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A compiled CEL expression with its source.
#[derive(Clone)]
pub struct Cel {
    source: Arc<str>,
    program: Arc<cel::Program>,
    /// The top-level variables it reads: only these are converted for an evaluation.
    variables: Arc<[String]>,
}

/// CEL's standard library, built once: building it takes longer than evaluating a
/// typical condition.
static STDLIB: std::sync::LazyLock<Arc<cel::Env>> =
    std::sync::LazyLock::new(|| Arc::new(cel::Env::stdlib()));

impl std::fmt::Debug for Cel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cel").field(&self.source).finish()
    }
}

/// What an expression refers to: its free variables and the steps it reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    /// Top-level variables (`trigger`, `steps`, …).
    pub variables: BTreeSet<String>,
    /// Step ids read through `steps.<id>` or `steps["<id>"]`.
    pub steps: BTreeSet<String>,
    /// How deep list macros (comprehensions) nest: 0 for none, 1 for `l.all(x, …)`.
    pub nesting: usize,
}

impl Cel {
    /// Compiles `source`; the error is the parser's message.
    pub fn compile(source: &str) -> Result<Self, String> {
        if source.len() > 4096 {
            return Err("the expression is longer than 4096 characters".into());
        }
        let program = cel::Program::compile(source).map_err(|e| {
            e.to_string()
                .lines()
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join(" ")
        })?;
        let mut cel = Self {
            source: source.into(),
            program: Arc::new(program),
            variables: Arc::from(Vec::new()),
        };
        cel.variables = cel.references().variables.into_iter().collect();
        Ok(cel)
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables and steps the expression reads.
    pub fn references(&self) -> References {
        let mut refs = References::default();
        let mut bound = BTreeSet::new();
        walk(self.program.expression(), &mut bound, &mut refs, 0);
        refs
    }

    /// Evaluates the expression over `vars`.
    pub fn eval(&self, vars: &Vars) -> Result<Value, String> {
        let mut ctx = cel::Context::with_env(STDLIB.clone());
        for name in self.variables.iter() {
            if let Some(value) = vars.0.get(name) {
                ctx.add_variable_from_value(name.clone(), to_cel(value));
            }
        }
        let value = self
            .program
            .execute(&ctx)
            .map_err(|e| format!("`{}`: {e}", self.source))?;
        from_cel(&value).map_err(|e| format!("`{}`: {e}", self.source))
    }

    /// Evaluates a condition: it must give a bool.
    pub fn test(&self, vars: &Vars) -> Result<bool, String> {
        match self.eval(vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!(
                "`{}` gave {}, not true or false",
                self.source,
                kind_of(&other)
            )),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn walk(e: &IdedExpr, bound: &mut BTreeSet<String>, refs: &mut References, depth: usize) {
    match &e.expr {
        Expr::Ident(name) => {
            if !bound.contains(name) {
                refs.variables.insert(name.clone());
            }
        }
        Expr::Select(select) => {
            if let Expr::Ident(root) = &select.operand.expr
                && root == "steps"
                && !bound.contains(root)
            {
                refs.steps.insert(select.field.clone());
            }
            walk(&select.operand, bound, refs, depth);
        }
        Expr::Call(call) => {
            // steps["x"]
            if call.func_name == "_[_]"
                && let [target, key] = call.args.as_slice()
                && let Expr::Ident(root) = &target.expr
                && root == "steps"
                && let Expr::Literal(lit) = &key.expr
                && let cel::common::ast::LiteralValue::String(s) = lit
            {
                refs.steps.insert(s.to_string());
            }
            if let Some(target) = &call.target {
                walk(target, bound, refs, depth);
            }
            for arg in &call.args {
                walk(arg, bound, refs, depth);
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, refs, depth);
            walk(&c.accu_init, bound, refs, depth);
            let depth = depth + 1;
            refs.nesting = refs.nesting.max(depth);
            let mut inner = bound.clone();
            inner.insert(c.iter_var.clone());
            if let Some(v) = &c.iter_var2 {
                inner.insert(v.clone());
            }
            inner.insert(c.accu_var.clone());
            walk(&c.loop_cond, &mut inner, refs, depth);
            walk(&c.loop_step, &mut inner, refs, depth);
            walk(&c.result, &mut inner, refs, depth);
        }
        Expr::List(list) => {
            for el in &list.elements {
                walk(el, bound, refs, depth);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                walk_entry(&entry.expr, bound, refs, depth);
            }
        }
        Expr::Struct(st) => {
            for entry in &st.entries {
                walk_entry(&entry.expr, bound, refs, depth);
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entry(e: &EntryExpr, bound: &mut BTreeSet<String>, refs: &mut References, depth: usize) {
    match e {
        EntryExpr::StructField(f) => walk(&f.value, bound, refs, depth),
        EntryExpr::MapEntry(m) => {
            walk(&m.key, bound, refs, depth);
            walk(&m.value, bound, refs, depth);
        }
    }
}

/// The variables an expression is evaluated over, as JSON.
#[derive(Debug, Default, Clone)]
pub struct Vars(BTreeMap<String, Value>);

impl Vars {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name`.
    pub fn set(&mut self, name: &str, value: Value) -> &mut Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
}

/// JSON to CEL. JSON integers become CEL `int` (signed) when they fit, so that
/// `payload.floor > 2` compares like with like.
pub fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                cel::Value::UInt(u)
            } else {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let map: std::collections::HashMap<cel::objects::Key, cel::Value> = map
                .iter()
                .map(|(k, v)| (cel::objects::Key::from(k.clone()), to_cel(v)))
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

/// CEL to JSON. Timestamps become RFC 3339 text, durations seconds.
pub fn from_cel(value: &cel::Value) -> Result<Value, String> {
    Ok(match value {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => Value::from(*i),
        cel::Value::UInt(u) => Value::from(*u),
        cel::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or("the value is not a finite number")?,
        cel::Value::String(s) => Value::String(s.to_string()),
        cel::Value::List(items) => {
            Value::Array(items.iter().map(from_cel).collect::<Result<_, _>>()?)
        }
        cel::Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    cel::objects::Key::String(s) => s.to_string(),
                    cel::objects::Key::Int(i) => i.to_string(),
                    cel::objects::Key::Uint(u) => u.to_string(),
                    cel::objects::Key::Bool(b) => b.to_string(),
                };
                out.insert(key, from_cel(v)?);
            }
            Value::Object(out)
        }
        cel::Value::Timestamp(t) => Value::String(t.to_rfc3339()),
        cel::Value::Duration(d) => Value::from(d.num_milliseconds() as f64 / 1000.0),
        other => {
            return Err(format!(
                "a {:?} value cannot be written as JSON",
                other.type_of()
            ));
        }
    })
}

/// A JSON template (see the module docs), compiled.
#[derive(Debug, Clone)]
pub enum Template {
    /// A value with no expression in it.
    Literal(Value),
    /// `"${{ expr }}"`: the expression's value.
    Expr(Cel),
    /// A string with expressions inside: their values as text.
    Text(Vec<Part>),
    /// A list of templates.
    List(Vec<Template>),
    /// A map of templates.
    Map(Vec<(String, Template)>),
}

/// A piece of a [`Template::Text`].
#[derive(Debug, Clone)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// An expression.
    Expr(Cel),
}

impl Template {
    /// Compiles a template. Errors carry the JSON path below `value` (`.a.b[2]`).
    pub fn compile(value: &Value) -> Result<Self, (String, String)> {
        Self::compile_at(value, String::new())
    }

    fn compile_at(value: &Value, path: String) -> Result<Self, (String, String)> {
        Ok(match value {
            Value::String(s) if s.contains("${{") => {
                let parts = split(s).map_err(|m| (path.clone(), m))?;
                let mut compiled = Vec::new();
                for part in parts {
                    compiled.push(match part {
                        RawPart::Text(t) => Part::Text(t),
                        RawPart::Expr(e) => Part::Expr(Cel::compile(&e).map_err(|m| {
                            (
                                path.clone(),
                                format!("invalid CEL in `${{{{ {e} }}}}`: {m}"),
                            )
                        })?),
                    });
                }
                match compiled.as_slice() {
                    [Part::Expr(e)] => Self::Expr(e.clone()),
                    _ => Self::Text(compiled),
                }
            }
            Value::Array(items) => Self::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::compile_at(v, format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Self::Map(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Self::compile_at(v, format!("{path}.{k}"))?)))
                    .collect::<Result<_, (String, String)>>()?,
            ),
            other => Self::Literal(other.clone()),
        })
    }

    /// Every expression in the template.
    pub fn expressions(&self) -> Vec<&Cel> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Cel>) {
        match self {
            Self::Literal(_) => {}
            Self::Expr(e) => out.push(e),
            Self::Text(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Expr(e) => Some(e),
                Part::Text(_) => None,
            })),
            Self::List(items) => items.iter().for_each(|t| t.collect(out)),
            Self::Map(entries) => entries.iter().for_each(|(_, t)| t.collect(out)),
        }
    }

    /// The template's value over `vars`.
    pub fn render(&self, vars: &Vars) -> Result<Value, String> {
        Ok(match self {
            Self::Literal(v) => v.clone(),
            Self::Expr(e) => e.eval(vars)?,
            Self::Text(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => match e.eval(vars)? {
                            Value::String(s) => out.push_str(&s),
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(out)
            }
            Self::List(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(vars))
                    .collect::<Result<_, _>>()?,
            ),
            Self::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(vars)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
}

enum RawPart {
    Text(String),
    Expr(String),
}

fn split(s: &str) -> Result<Vec<RawPart>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        if start > 0 {
            parts.push(RawPart::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 3..];
        let end = after.find("}}").ok_or("`${{` without a closing `}}`")?;
        let expr = after[..end].trim();
        if expr.is_empty() {
            return Err("an empty `${{ }}`".into());
        }
        parts.push(RawPart::Expr(expr.to_owned()));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(RawPart::Text(rest.to_owned()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.set("trigger", json!({"kind": "camera.object-thrown", "payload": {"floor": 7, "building": "3", "big": 18446744073709551615u64}}));
        v.set(
            "steps",
            json!({"raise": {"output": {"alarm": {"id": "a-1"}}}}),
        );
        v
    }

    #[test]
    fn json_integers_compare_with_cel_ints() {
        let c = Cel::compile("trigger.payload.floor > 2 && trigger.payload.floor < 10")
            .expect("compile");
        assert!(c.test(&vars()).expect("eval"));
        let c = Cel::compile("trigger.payload.big > 0u").expect("compile");
        assert!(c.test(&vars()).expect("eval"));
    }

    #[test]
    fn a_condition_must_give_a_bool() {
        let c = Cel::compile("trigger.payload.floor").expect("compile");
        let err = c.test(&vars()).expect_err("not a bool");
        assert!(err.contains("not true or false"), "{err}");
    }

    #[test]
    fn templates_keep_types_and_interpolate_text() {
        let t = Template::compile(&json!({
            "alarm": "${{ steps.raise.output.alarm.id }}",
            "floor": "${{ trigger.payload.floor }}",
            "where": "building ${{ trigger.payload.building }}, floor ${{trigger.payload.floor}}",
            "list": ["${{ trigger.payload.floor + 1 }}", true],
            "plain": "no expression"
        }))
        .expect("compile");
        assert_eq!(
            t.render(&vars()).expect("render"),
            json!({"alarm": "a-1", "floor": 7, "where": "building 3, floor 7", "list": [8, true], "plain": "no expression"})
        );
    }

    #[test]
    fn template_errors_give_the_path() {
        let (path, msg) = Template::compile(&json!({"a": [1, "${{ 1 + }}"]})).expect_err("bad CEL");
        assert_eq!(path, ".a[1]");
        assert!(msg.contains("invalid CEL"), "{msg}");
        let (_, msg) = Template::compile(&json!("${{ x")).expect_err("unclosed");
        assert!(msg.contains("closing"), "{msg}");
    }

    #[test]
    fn references_find_variables_and_steps_but_not_bound_names() {
        let c = Cel::compile(
            "steps.raise.output.ok && steps[\"notify\"].output.sent && trigger.payload.items.exists(x, x > 1) && vars.limit > 0",
        )
        .expect("compile");
        let refs = c.references();
        assert_eq!(
            refs.variables.into_iter().collect::<Vec<_>>(),
            ["steps", "trigger", "vars"]
        );
        assert_eq!(
            refs.steps.into_iter().collect::<Vec<_>>(),
            ["notify", "raise"]
        );
    }

    #[test]
    fn missing_keys_are_errors_not_panics() {
        let c = Cel::compile("trigger.payload.nope == 1").expect("compile");
        assert!(c.eval(&vars()).is_err());
        let c = Cel::compile("has(trigger.payload.nope)").expect("compile");
        assert_eq!(c.eval(&vars()).expect("eval"), json!(false));
    }
}
