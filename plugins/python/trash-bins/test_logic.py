"""Unit tests of the trash-bins logic; run natively: python3 -m unittest (scripts/test does)."""

import unittest

import logic

CONFIG = {"full_at_percent": 80, "disinfect_every_hours": 24, "lid_open_alert_minutes": 10}
T0 = 1_800_000_000_000


def new_bin():
    return logic.register(None, "b-1", "Building 3", "kitchen", T0)


class TrashBinTests(unittest.TestCase):
    def test_register_refuses_unknown_streams(self):
        with self.assertRaises(logic.Refused) as e:
            logic.register(None, "b-1", "x", "glass", T0)
        self.assertEqual(e.exception.kind, "invalid-input")

    def test_reregistering_keeps_readings(self):
        b, _ = logic.report(new_bin(), 50, "closed", T0, CONFIG)
        moved = logic.register(b, "b-1", "Building 4", "other", T0)
        self.assertEqual((moved["location"], moved["fill_percent"]), ("Building 4", 50))

    def test_crossing_the_threshold_emits_full_once(self):
        b, ev = logic.report(new_bin(), 79, "closed", T0, CONFIG)
        self.assertEqual(ev, [])
        b, ev = logic.report(b, 85, "closed", T0 + 1, CONFIG)
        self.assertEqual([k for k, _ in ev], ["trash-bins.full"])
        b, ev = logic.report(b, 90, "closed", T0 + 2, CONFIG)
        self.assertEqual(ev, [])
        self.assertTrue(logic.status(b, T0, CONFIG)["needs_emptying"])

    def test_emptying_resets_the_level(self):
        b, _ = logic.report(new_bin(), 95, "closed", T0, CONFIG)
        b, ev = logic.emptied(b, "staff-7", T0 + 5)
        self.assertEqual(b["fill_percent"], 0)
        self.assertEqual(ev[0][0], "trash-bins.emptied")
        b, ev = logic.report(b, 81, "closed", T0 + 6, CONFIG)
        self.assertEqual([k for k, _ in ev], ["trash-bins.full"])

    def test_a_lid_left_open_alerts_once_per_opening(self):
        b, ev = logic.report(new_bin(), 10, "open", T0, CONFIG)
        self.assertEqual(ev, [])
        b, ev = logic.report(b, 10, "open", T0 + 9 * logic.MINUTE_MS, CONFIG)
        self.assertEqual(ev, [])
        b, ev = logic.report(b, 10, "open", T0 + 10 * logic.MINUTE_MS, CONFIG)
        self.assertEqual([k for k, _ in ev], ["trash-bins.lid-left-open"])
        b, ev = logic.report(b, 10, "open", T0 + 30 * logic.MINUTE_MS, CONFIG)
        self.assertEqual(ev, [])
        b, _ = logic.report(b, 10, "closed", T0 + 31 * logic.MINUTE_MS, CONFIG)
        b, ev = logic.report(b, 10, "open", T0 + 32 * logic.MINUTE_MS, CONFIG)
        self.assertEqual(ev, [])
        self.assertEqual(b["lid_opened_at_ms"], T0 + 32 * logic.MINUTE_MS)

    def test_disinfection_falls_due_after_the_interval(self):
        b = new_bin()
        self.assertFalse(logic.status(b, T0 + 23 * logic.HOUR_MS, CONFIG)["disinfection_due"])
        self.assertTrue(logic.status(b, T0 + 24 * logic.HOUR_MS, CONFIG)["disinfection_due"])
        b, _ = logic.disinfected(b, "sprayer", T0 + 24 * logic.HOUR_MS)
        self.assertFalse(logic.status(b, T0 + 25 * logic.HOUR_MS, CONFIG)["disinfection_due"])

    def test_due_lists_what_staff_should_do(self):
        full, _ = logic.report(new_bin(), 90, "open", T0, CONFIG)
        quiet = logic.register(None, "b-2", "Gate", "other", T0)
        now = T0 + 25 * logic.HOUR_MS
        statuses = [logic.status(full, now, CONFIG), logic.status(quiet, now, CONFIG)]
        self.assertEqual(
            logic.due(statuses, CONFIG),
            {"empty": ["b-1"], "disinfect": ["b-1", "b-2"], "lid_open": ["b-1"]},
        )


if __name__ == "__main__":
    unittest.main()
