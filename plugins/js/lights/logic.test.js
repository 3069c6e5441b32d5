// Unit tests of the lights logic: node --test plugins/js/lights/ (scripts/test runs them).
import test from 'node:test';
import assert from 'node:assert/strict';
import { Refused, applySchedules, dailyCheck, parseClock, register, scheduledOn, setSchedule, switchLight } from './logic.js';

const T0 = Date.UTC(2030, 0, 1, 0, 0); // 08:00 in UTC+8
const HOUR = 3_600_000;
const light = () => register(null, 'l-1', '3-201', 'r-9', T0);

test('clock times are HH:MM', () => {
  assert.equal(parseClock('07:30'), 450);
  for (const bad of ['7:30', '24:00', '12:60', 'noon']) assert.throws(() => parseClock(bad), Refused);
});

test('switching by a person counts as activity, by the schedule not', () => {
  let [r, ev] = switchLight(light(), true, 'remote', T0 + HOUR);
  assert.equal(r.lastUsedMs, T0 + HOUR);
  assert.deepEqual(ev.map(([k]) => k), ['lights.switched']);
  [r, ev] = switchLight(r, true, 'remote', T0 + 2 * HOUR);
  assert.deepEqual(ev, [], 'no change, no event');
  [r] = switchLight(r, false, 'schedule', T0 + 3 * HOUR);
  assert.equal(r.lastUsedMs, T0 + 2 * HOUR);
});

test('schedules span midnight', () => {
  const s = { on: '18:00', off: '06:30' };
  assert.equal(scheduledOn(s, 17 * 60), false);
  assert.equal(scheduledOn(s, 23 * 60), true);
  assert.equal(scheduledOn(s, 6 * 60), true);
  assert.equal(scheduledOn(s, 7 * 60), false);
  assert.throws(() => setSchedule(light(), '08:00', '08:00'), Refused);
});

test('applying schedules switches only lights in the wrong state, in local time', () => {
  const r = setSchedule(light(), '07:00', '09:00');
  const { commands, changed } = applySchedules([r], T0, 480); // 08:00 local
  assert.deepEqual(commands, [{ light: 'l-1', on: true }]);
  assert.equal(changed[0].on, true);
  assert.deepEqual(applySchedules(changed, T0, 480).commands, []);
  assert.deepEqual(applySchedules([r], T0, 0).commands, [], '00:00 in UTC is outside 07:00-09:00');
});

test('the daily check alerts once per inactivity period', () => {
  const r = light();
  assert.deepEqual(dailyCheck([r], T0 + 23 * HOUR, 24).inactive, []);
  const first = dailyCheck([r], T0 + 25 * HOUR, 24);
  assert.deepEqual(first.inactive, [{ light: 'l-1', unit: '3-201', resident: 'r-9', hours: 25 }]);
  assert.deepEqual(first.events.map(([k]) => k), ['lights.no-activity']);
  const again = dailyCheck(first.changed, T0 + 49 * HOUR, 24);
  assert.equal(again.inactive.length, 1);
  assert.deepEqual(again.events, [], 'already alerted for this period');
  const [used] = switchLight(first.changed[0], true, 'remote', T0 + 50 * HOUR);
  assert.deepEqual(dailyCheck([used], T0 + 51 * HOUR, 24).inactive, []);
});
