// Remote-controlled lights for residents over 60: the domain logic, pure functions over
// plain objects, unit-tested natively with `node --test` (logic.test.js).
//
// A light record:
//   { light, unit, resident, on, lastChangeMs, lastUsedMs, schedule: {on, off} | null,
//     lastScheduledMs, alertedForMs }

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

export class Refused extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

/** Minutes after local midnight for "HH:MM". */
export function parseClock(text) {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  if (!m) throw new Refused('invalid-input', `times are "HH:MM" (24-hour), not ${JSON.stringify(text)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

export function register(existing, light, unit, resident, nowMs) {
  if (existing) return { ...existing, unit, resident };
  return { light, unit, resident, on: false, lastChangeMs: nowMs, lastUsedMs: nowMs, schedule: null, lastScheduledMs: null, alertedForMs: null };
}

/** A switch from the resident's remote, a wall switch, or the lamp's own report. */
export function switchLight(record, on, source, nowMs) {
  const events = [];
  const next = { ...record, on, lastChangeMs: record.on === on ? record.lastChangeMs : nowMs };
  // Any switching by a person counts as the resident being active; the schedule does not.
  if (source !== 'schedule') {
    next.lastUsedMs = nowMs;
    next.alertedForMs = null;
  }
  if (record.on !== on) events.push(['lights.switched', { light: record.light, unit: record.unit, on, source }]);
  return [next, events];
}

export function setSchedule(record, onAt, offAt) {
  if (onAt === null && offAt === null) return { ...record, schedule: null };
  const on = parseClock(onAt);
  const off = parseClock(offAt);
  if (on === off) throw new Refused('invalid-input', 'the on and off times must differ');
  return { ...record, schedule: { on: onAt, off: offAt } };
}

/** Local minutes after midnight of `nowMs` in a zone `offsetMinutes` east of UTC. */
function localMinutes(nowMs, offsetMinutes) {
  const local = nowMs + offsetMinutes * MINUTE_MS;
  return Math.floor((((local % DAY_MS) + DAY_MS) % DAY_MS) / MINUTE_MS);
}

/** Whether the schedule wants the light on at local minute `m`. */
export function scheduledOn(schedule, m) {
  const on = parseClock(schedule.on);
  const off = parseClock(schedule.off);
  return on < off ? m >= on && m < off : m >= on || m < off;
}

/**
 * The switching the schedules want now: a command for each scheduled light whose state
 * differs. Applied to the records (the lamps are told through the returned commands).
 */
export function applySchedules(records, nowMs, offsetMinutes) {
  const m = localMinutes(nowMs, offsetMinutes);
  const commands = [];
  const changed = [];
  const events = [];
  for (const r of records) {
    if (!r.schedule) continue;
    const want = scheduledOn(r.schedule, m);
    if (want !== r.on) {
      const [next, ev] = switchLight(r, want, 'schedule', nowMs);
      changed.push({ ...next, lastScheduledMs: nowMs });
      events.push(...ev);
      commands.push({ light: r.light, on: want });
    }
  }
  return { commands, changed, events };
}

/**
 * The daily "lights were used" check: residents whose lights nobody switched for
 * `inactiveHours`. Each inactivity period alerts once (`lights.no-activity`, for
 * alert-rules); switching a light ends it.
 */
export function dailyCheck(records, nowMs, inactiveHours) {
  const limit = inactiveHours * 60 * MINUTE_MS;
  const inactive = [];
  const changed = [];
  const events = [];
  for (const r of records) {
    const idle = nowMs - r.lastUsedMs;
    if (idle < limit) continue;
    const hours = Math.floor(idle / (60 * MINUTE_MS));
    inactive.push({ light: r.light, unit: r.unit, resident: r.resident, hours });
    if (r.alertedForMs !== r.lastUsedMs) {
      changed.push({ ...r, alertedForMs: r.lastUsedMs });
      events.push(['lights.no-activity', { light: r.light, unit: r.unit, resident: r.resident, hours }]);
    }
  }
  return { inactive, changed, events };
}

export function view(r) {
  return { light: r.light, unit: r.unit, resident: r.resident, on: r.on, schedule: r.schedule };
}
