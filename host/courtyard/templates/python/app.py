"""{{name}}: a Courtyard plugin in Python. See the integrator's guide, docs/integrators.md."""

from typing import Any, Dict

from courtyard_sdk import Context, InvalidInput, Plugin, config, events, operation, state


def greet(greeting: str, name: str, greetings_before: int) -> Dict[str, Any]:
    """The logic, apart from the host, so that it can be unit-tested natively."""
    if not name.strip():
        raise InvalidInput("name must not be blank")
    return {"message": f"{greeting}, {name.strip()}!", "greetings": greetings_before + 1}


class Component(Plugin):
    @operation("greet")
    def greet(self, ctx: Context, input: Dict[str, Any]) -> Dict[str, Any]:
        output = greet(config()["greeting"], input["name"], state.get("greetings") or 0)
        state.put("greetings", output["greetings"])
        events.emit("{{name}}.greeted", {"name": input["name"]})
        return output


Handler = Component.handler()
