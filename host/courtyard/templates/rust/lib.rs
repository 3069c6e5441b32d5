//! {{name}}: a Courtyard plugin. See the integrator's guide, docs/integrators.md.

use courtyard_sdk::{Context, Error, Plugin, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GreetInput {
    name: String,
}

#[derive(Debug, PartialEq, Serialize)]
struct GreetOutput {
    message: String,
    greetings: u64,
}

#[derive(Debug, Deserialize)]
struct Config {
    greeting: String,
}

/// The logic, apart from the host, so that `cargo test` runs it natively.
fn greet(config: &Config, input: GreetInput, greetings_before: u64) -> Result<GreetOutput, Error> {
    if input.name.trim().is_empty() {
        return Err(Error::invalid_input("name must not be blank"));
    }
    Ok(GreetOutput {
        message: format!("{}, {}!", config.greeting, input.name.trim()),
        greetings: greetings_before + 1,
    })
}

#[derive(Debug)]
struct Component;

impl Plugin for Component {
    fn invoke(_ctx: &Context, operation: &str, input: Value) -> Result<Value, Error> {
        match operation {
            "greet" => courtyard_sdk::handle(input, |input: GreetInput| {
                let config: Config = courtyard_sdk::config::get()?;
                let before: u64 = courtyard_sdk::state::get("greetings")?.unwrap_or(0);
                let output = greet(&config, input, before)?;
                courtyard_sdk::state::put("greetings", &output.greetings)?;
                courtyard_sdk::events::emit("{{name}}.greeted", &serde_json::json!({ "name": output.message }))?;
                Ok(output)
            }),
            other => Err(Error::not_found(format!("{{name}} has no operation {other:?}"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
courtyard_sdk::export_plugin!(Component);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_and_counts() {
        let config = Config { greeting: "Hello".into() };
        let out = greet(&config, GreetInput { name: "Mrs Wang".into() }, 4).expect("greet");
        assert_eq!(out, GreetOutput { message: "Hello, Mrs Wang!".into(), greetings: 5 });
    }

    #[test]
    fn blank_names_are_invalid() {
        let config = Config { greeting: "Hello".into() };
        assert!(matches!(greet(&config, GreetInput { name: " ".into() }, 0), Err(Error::InvalidInput(_))));
    }
}
