// {{name}}: a Courtyard plugin in JavaScript. See the integrator's guide, docs/integrators.md.
import * as courtyard from 'courtyard-sdk';

/** The logic, apart from the host. */
export function greet(greeting, name, greetingsBefore) {
  if (!name.trim()) throw courtyard.invalidInput('name must not be blank');
  return { message: `${greeting}, ${name.trim()}!`, greetings: greetingsBefore + 1 };
}

export const handler = courtyard.handler({
  greet: (ctx, input) => {
    const output = greet(courtyard.config().greeting, input.name, courtyard.state.get('greetings') ?? 0);
    courtyard.state.put('greetings', output.greetings);
    courtyard.emit('{{name}}.greeted', { name: input.name });
    return output;
  },
});
