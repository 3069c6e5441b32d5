// The lights plugin component: operations over logic.js and the host's state.
import * as courtyard from 'courtyard-sdk';
import * as logic from './logic.js';

const { state, emit, config, notFound, invalidInput } = courtyard;

function load(light) {
  const record = state.get(`light/${light}`);
  if (record === undefined) throw notFound(`no light ${JSON.stringify(light)} is registered in this community; register it with register-light`);
  return record;
}

function all() {
  const records = [];
  let after;
  for (;;) {
    const page = state.list('light/', after, 500);
    records.push(...page.map(([, r]) => r));
    if (page.length < 500) return records;
    after = page[page.length - 1][0];
  }
}

function refusals(fn) {
  try {
    return fn();
  } catch (e) {
    if (e instanceof logic.Refused) throw invalidInput(e.message);
    throw e;
  }
}

/** Runs a state-changing operation once per idempotency key. */
function once(ctx, fn) {
  const key = ctx.idempotencyKey === undefined ? undefined : `idem/${ctx.idempotencyKey}`;
  if (key !== undefined) {
    const previous = state.get(key);
    if (previous !== undefined) return previous;
  }
  const output = fn();
  if (key !== undefined) state.put(key, output);
  return output;
}

function save(records, events) {
  for (const r of records) state.put(`light/${r.light}`, r);
  for (const [kind, payload] of events) emit(kind, payload);
}

export const handler = courtyard.handler({
  'register-light': (ctx, input) => {
    const record = logic.register(state.get(`light/${input.light}`), input.light, input.unit, input.resident, ctx.nowMs);
    save([record], []);
    return logic.view(record);
  },
  switch: (ctx, input) =>
    once(ctx, () => {
      const [record, events] = logic.switchLight(load(input.light), input.on, input.source, ctx.nowMs);
      save([record], events);
      return logic.view(record);
    }),
  'set-schedule': (ctx, input) => {
    const record = refusals(() => logic.setSchedule(load(input.light), input.on_at, input.off_at));
    save([record], []);
    return logic.view(record);
  },
  status: (ctx, input) => logic.view(load(input.light)),
  'apply-schedules': (ctx) =>
    once(ctx, () => {
      const { commands, changed, events } = logic.applySchedules(all(), ctx.nowMs, config().utc_offset_minutes);
      save(changed, events);
      return { commands };
    }),
  'daily-check': (ctx) =>
    once(ctx, () => {
      const { inactive, changed, events } = logic.dailyCheck(all(), ctx.nowMs, config().inactive_hours);
      save(changed, events);
      return { inactive };
    }),
});
