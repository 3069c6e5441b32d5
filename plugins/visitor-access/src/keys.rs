//! The state layout: every key the plugin writes is built here.
//!
//! | key | value | what |
//! |---|---|---|
//! | `seq/visit`, `seq/check` | number | the last visit / gate-check number |
//! | `v/<visit>` | visit | a visit (`v00000042`) |
//! | `vu/<unit>/<visit>` | `true` | the visits of a unit |
//! | `vp/<phone>/<visit>` | `true` | the visits of a phone |
//! | `po/<phone>/<visit>` | `true` | the open (pending, confirmed) visits of a phone |
//! | `fo/<face>/<visit>` | `true` | the open visits of a face reference |
//! | `fl/<face>` | visit id | the latest visit registered with a face reference |
//! | `pc/<code>` | visit id | a pass code |
//! | `due/<ms>/<visit>` | `true` | an open visit's deadline (pending: respond-by; confirmed: end of window) |
//! | `done/<ms>/<visit>` | `true` | a closed visit, by closing time (for retention) |
//! | `r/<unit>/<resident>` | resident | a resident of a unit |
//! | `bl/phone/<phone>`, `bl/face/<face>` | blocklist entry | the blocklist |
//! | `a/<check>` | check | the audit trail of gate checks (`c0000000042`) |
//! | `ag/<gate>/<check>`, `av/<visit>/<check>` | check | the same, by gate and by visit |
//! | `idem/<op>/<key>` | replay | the request (operation, input) and first result of a call with an idempotency key |
//! | `idt/<ms>/<op>/<key>` | `true` | replay records by time (for their expiry) |
//!
//! Times (`<ms>`) are zero-padded to 13 digits so that key order is time order. Units,
//! residents, gates, phones and face references cannot contain `/` (the input schemas
//! and validators make sure), so a prefix ending in `/` names exactly one of them.
//! Phones and face references are in canonical form ([`crate::validate::canonical_phone`],
//! [`crate::validate::canonical_face_ref`]) in every key.

/// The counter of visits.
pub const SEQ_VISIT: &str = "seq/visit";
/// The counter of gate checks.
pub const SEQ_CHECK: &str = "seq/check";

/// The prefix of visits.
pub const VISITS: &str = "v/";
/// The prefix of deadlines of open visits.
pub const DUE: &str = "due/";
/// The prefix of closed visits by closing time.
pub const DONE: &str = "done/";
/// The prefix of residents.
pub const RESIDENTS: &str = "r/";
/// The prefix of the blocklist.
pub const BLOCKLIST: &str = "bl/";
/// The prefix of the audit trail.
pub const CHECKS: &str = "a/";
/// The prefix of replay records by time.
pub const REPLAYS_BY_TIME: &str = "idt/";

/// A time as a fixed-width key segment.
pub fn ms(at: i64) -> String {
    format!("{:013}", at.max(0))
}

/// The id of the `n`th visit.
pub fn visit_id(n: u64) -> String {
    format!("v{n:08}")
}

/// The id of the `n`th gate check.
pub fn check_id(n: u64) -> String {
    format!("c{n:010}")
}

/// A visit.
pub fn visit(id: &str) -> String {
    format!("{VISITS}{id}")
}

/// The prefix of a unit's visits.
pub fn unit_visits(unit: &str) -> String {
    format!("vu/{unit}/")
}

/// The prefix of a phone's visits.
pub fn phone_visits(phone: &str) -> String {
    format!("vp/{phone}/")
}

/// The prefix of a phone's open visits.
pub fn phone_open(phone: &str) -> String {
    format!("po/{phone}/")
}

/// The prefix of a face reference's open visits.
pub fn face_open(face: &str) -> String {
    format!("fo/{face}/")
}

/// The latest visit of a face reference.
pub fn face_latest(face: &str) -> String {
    format!("fl/{face}")
}

/// A pass code.
pub fn pass(code: &str) -> String {
    format!("pc/{code}")
}

/// An open visit's deadline.
pub fn due(at: i64, visit: &str) -> String {
    format!("{DUE}{}/{visit}", ms(at))
}

/// A closed visit, by closing time.
pub fn done(at: i64, visit: &str) -> String {
    format!("{DONE}{}/{visit}", ms(at))
}

/// The prefix of a unit's residents.
pub fn unit_residents(unit: &str) -> String {
    format!("{RESIDENTS}{unit}/")
}

/// A resident of a unit.
pub fn resident(unit: &str, resident: &str) -> String {
    format!("{RESIDENTS}{unit}/{resident}")
}

/// A blocklist entry (`kind` is `phone` or `face`).
pub fn blocked(kind: &str, value: &str) -> String {
    format!("{BLOCKLIST}{kind}/{value}")
}

/// A gate check.
pub fn check(id: &str) -> String {
    format!("{CHECKS}{id}")
}

/// The prefix of a gate's checks.
pub fn gate_checks(gate: &str) -> String {
    format!("ag/{gate}/")
}

/// The prefix of a visit's checks.
pub fn visit_checks(visit: &str) -> String {
    format!("av/{visit}/")
}

/// The replay record of an idempotency key for an operation.
pub fn replay(operation: &str, key: &str) -> String {
    format!("idem/{operation}/{key}")
}

/// The time index of a replay record.
pub fn replay_by_time(at: i64, operation: &str, key: &str) -> String {
    format!("{REPLAYS_BY_TIME}{}/{operation}/{key}", ms(at))
}

/// The time and the rest of a `<prefix><ms>/<rest>` key.
pub fn split_timed<'k>(key: &'k str, prefix: &str) -> Option<(i64, &'k str)> {
    let rest = key.strip_prefix(prefix)?;
    let (at, rest) = rest.split_once('/')?;
    Some((at.parse().ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_times_sort_as_numbers() {
        assert!(visit_id(9) < visit_id(10));
        assert!(check_id(99) < check_id(100));
        assert!(due(999, "v1") < due(1000, "v1"));
        assert_eq!(visit_id(42), "v00000042");
        assert_eq!(check_id(42), "c0000000042");
        assert_eq!(ms(-5), "0000000000000");
    }

    #[test]
    fn timed_keys_split_back() {
        assert_eq!(
            split_timed(&due(1234, "v00000001"), DUE),
            Some((1234, "v00000001"))
        );
        assert_eq!(
            split_timed(&replay_by_time(7, "gate-check", "a/b"), REPLAYS_BY_TIME),
            Some((7, "gate-check/a/b"))
        );
        assert_eq!(split_timed("due/x/v1", DUE), None);
    }
}
