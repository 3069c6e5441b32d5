//! Passes: the code a confirmed visit gets, and whether a visit's pass opens a gate now.
//!
//! A pass code is 8 characters of Crockford's base32 (`0-9 A-Z` without `I L O U`),
//! derived — never drawn at random — from the community's `pass_secret`, the community,
//! the visit id and the confirmation's idempotency key (or, without one, the visit's
//! registration and confirmation times). The same confirmation therefore always yields
//! the same code. Without a `pass_secret`, anyone who knows the algorithm, the visit
//! id and the key can compute the code: communities should set one.

use crate::keys;
use crate::store::{Session, Store};
use crate::time::{duration, rfc3339};
use crate::validate::{PASS_ALPHABET, PASS_LEN};
use crate::visit::{Visit, VisitStatus};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// How many derivations are tried when a code is already taken by another visit.
const ATTEMPTS: u32 = 16;

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The SplitMix64 finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pass code for these inputs (`attempt` > 0 after a collision).
pub fn derive_code(
    secret: &str,
    community: &str,
    visit_id: &str,
    seed: &str,
    attempt: u32,
) -> String {
    let material = format!("{secret}\u{1f}{community}\u{1f}{visit_id}\u{1f}{seed}\u{1f}{attempt}");
    let first = mix(fnv1a(material.as_bytes()));
    // A second pass keyed by the first so that every byte affects every bit.
    let hash = mix(first ^ fnv1a(format!("{first:016x}{material}").as_bytes()));
    (0..PASS_LEN)
        .map(|i| PASS_ALPHABET[((hash >> (59 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// Gives a just-confirmed `visit` its pass: a code (unique among stored passes) and the
/// time from which it opens the gate. Writes the code's index.
pub fn issue<S: Store>(s: &mut Session<'_, S>, visit: &mut Visit) -> Result<(), Error> {
    let seed = match &s.idempotency_key {
        Some(key) => format!("key:{key}"),
        None => format!(
            "state:{}:{}",
            visit.registered_at_ms,
            visit.decided_at_ms.unwrap_or(s.now_ms)
        ),
    };
    for attempt in 0..ATTEMPTS {
        let code = derive_code(
            &s.config.pass_secret,
            &s.community,
            &visit.visit_id,
            &seed,
            attempt,
        );
        let key = keys::pass(&code);
        match s.get::<String>(&key)? {
            Some(other) if other != visit.visit_id => continue,
            _ => {
                s.put(&key, &visit.visit_id)?;
                visit.pass_code = Some(code);
                visit.pass_valid_from_ms = Some(visit.from_ms - s.config.early_entry_ms());
                return Ok(());
            }
        }
    }
    Err(Error::internal(format!(
        "no free pass code for visit {} after {ATTEMPTS} attempts",
        visit.visit_id
    )))
}

/// The visit a pass code belongs to, if any.
pub fn visit_of<S: Store>(s: &mut Session<'_, S>, code: &str) -> Result<Option<String>, Error> {
    s.get(&keys::pass(code))
}

/// Why a gate says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyReason {
    /// No visit has this pass code or face reference.
    Unknown,
    /// The visitor's phone or face reference is on the blocklist.
    Blocklisted,
    /// The visit has no pass: still waiting for the resident, or it expired unanswered.
    NoPass,
    /// The pass opens the gate only later.
    NotYetValid,
    /// The pass expired at the end of the visit window.
    Expired,
    /// The resident refused the visit.
    Refused,
    /// The visit was cancelled.
    Cancelled,
}

impl DenyReason {
    /// Every reason.
    pub const ALL: [Self; 7] = [
        Self::Unknown,
        Self::Blocklisted,
        Self::NoPass,
        Self::NotYetValid,
        Self::Expired,
        Self::Refused,
        Self::Cancelled,
    ];

    /// As in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Blocklisted => "blocklisted",
            Self::NoPass => "no-pass",
            Self::NotYetValid => "not-yet-valid",
            Self::Expired => "expired",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }

    /// Which reason to report when a face matches several visits none of which opens
    /// the gate: the one closest to a pass (lower is closer).
    pub fn rank(self) -> u8 {
        match self {
            Self::NotYetValid => 0,
            Self::NoPass => 1,
            Self::Expired => 2,
            Self::Cancelled => 3,
            Self::Refused => 4,
            Self::Blocklisted => 5,
            Self::Unknown => 6,
        }
    }
}

/// Whether `visit` (as it stands at `now`, see [`Visit::effective`]) opens a gate at
/// `now`: `Ok` with a greeting, or the reason and a message for the gate's screen and
/// the audit trail.
pub fn evaluate(visit: &Visit, now: i64) -> Result<String, (DenyReason, String)> {
    let id = &visit.visit_id;
    let unit = &visit.unit;
    let at = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "an unknown time".into());
    match visit.status {
        VisitStatus::Pending => Err((
            DenyReason::NoPass,
            format!("visit {id} to {unit} is waiting for a resident's confirmation; no pass yet"),
        )),
        VisitStatus::Expired if visit.pass_code.is_none() => Err((
            DenyReason::NoPass,
            format!(
                "visit {id} to {unit} expired unanswered at {}; the visitor must register again",
                at(visit.closed_at_ms)
            ),
        )),
        VisitStatus::Expired => Err((
            DenyReason::Expired,
            format!(
                "the pass of visit {id} to {unit} expired at {} (the end of the visit window)",
                at(visit.closed_at_ms)
            ),
        )),
        VisitStatus::Refused => Err((
            DenyReason::Refused,
            format!("a resident refused visit {id} to {unit}"),
        )),
        VisitStatus::Cancelled => Err((
            DenyReason::Cancelled,
            format!(
                "visit {id} to {unit} was cancelled by {} at {}",
                visit.cancelled_by.as_deref().unwrap_or("someone"),
                at(visit.closed_at_ms)
            ),
        )),
        VisitStatus::Confirmed => {
            let valid_from = visit.pass_valid_from_ms.unwrap_or(visit.from_ms);
            if now < valid_from {
                Err((
                    DenyReason::NotYetValid,
                    format!(
                        "the pass of visit {id} to {unit} opens the gate from {} ({} from now)",
                        rfc3339(valid_from),
                        duration((valid_from - now).div_euclid(60_000).max(1) * 60_000)
                    ),
                ))
            } else if now >= visit.to_ms {
                Err((
                    DenyReason::Expired,
                    format!(
                        "the pass of visit {id} to {unit} expired at {} (the end of the visit window)",
                        rfc3339(visit.to_ms)
                    ),
                ))
            } else {
                Ok(format!(
                    "welcome, {}: visit {id} to {unit}, pass valid until {}",
                    visit.visitor_name,
                    rfc3339(visit.to_ms)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MINUTE_MS;
    use crate::store::tests::session;
    use crate::visit::tests::{T0, visit_in};
    use courtyard_sdk::testing::MemoryStore;

    #[test]
    fn codes_are_deterministic_well_formed_and_spread() {
        let a = derive_code("", "nanhu", "v00000001", "key:confirm-1", 0);
        assert_eq!(a, derive_code("", "nanhu", "v00000001", "key:confirm-1", 0));
        assert_eq!(a.len(), PASS_LEN);
        assert_eq!(
            crate::validate::normalize_pass_code(&a).as_deref(),
            Some(a.as_str())
        );
        for other in [
            derive_code("s3cret", "nanhu", "v00000001", "key:confirm-1", 0),
            derive_code("", "sunjia", "v00000001", "key:confirm-1", 0),
            derive_code("", "nanhu", "v00000002", "key:confirm-1", 0),
            derive_code("", "nanhu", "v00000001", "key:confirm-2", 0),
            derive_code("", "nanhu", "v00000001", "key:confirm-1", 1),
        ] {
            assert_ne!(a, other);
        }
        let codes: std::collections::HashSet<String> = (0..5000)
            .map(|n| derive_code("", "nanhu", &crate::keys::visit_id(n), "state:1:2", 0))
            .collect();
        assert_eq!(codes.len(), 5000, "no collisions in a small sample");
    }

    #[test]
    fn issue_writes_the_index_and_skips_taken_codes() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, T0, Some("k"));
        let mut visit = visit_in(VisitStatus::Confirmed);
        visit.pass_code = None;
        let first = derive_code("", "nanhu", &visit.visit_id, "key:k", 0);
        s.put(&crate::keys::pass(&first), "v99999999").expect("put");
        issue(&mut s, &mut visit).expect("issue");
        let code = visit.pass_code.clone().expect("code");
        assert_eq!(code, derive_code("", "nanhu", &visit.visit_id, "key:k", 1));
        assert_eq!(
            visit_of(&mut s, &code).expect("read").as_deref(),
            Some("v00000001")
        );
        assert_eq!(
            visit.pass_valid_from_ms,
            Some(visit.from_ms - 15 * MINUTE_MS),
            "opens early_entry_minutes before the window"
        );
    }

    #[test]
    fn evaluation_of_every_status() {
        let confirmed = visit_in(VisitStatus::Confirmed);
        let mut c = confirmed.clone();
        c.pass_valid_from_ms = Some(c.from_ms - 15 * MINUTE_MS);
        let valid_from = c.pass_valid_from_ms.expect("set");
        // Before, at and after the opening, and at the end of the window.
        assert!(
            matches!(evaluate(&c, valid_from - 1), Err((DenyReason::NotYetValid, m)) if m.contains("opens the gate from"))
        );
        assert!(evaluate(&c, valid_from).is_ok());
        assert!(
            evaluate(&c, c.to_ms - 1)
                .expect("allowed")
                .starts_with("welcome, Li Wei")
        );
        assert!(matches!(
            evaluate(&c, c.to_ms),
            Err((DenyReason::Expired, _))
        ));
        let expired_pass = c.effective(c.to_ms);
        assert!(
            matches!(evaluate(&expired_pass, c.to_ms), Err((DenyReason::Expired, m)) if m.contains("end of the visit window"))
        );

        let now = T0 + 3 * 3_600_000;
        let cases = [
            (
                VisitStatus::Pending,
                DenyReason::NoPass,
                "waiting for a resident's confirmation",
            ),
            (VisitStatus::Refused, DenyReason::Refused, "refused"),
            (
                VisitStatus::Cancelled,
                DenyReason::Cancelled,
                "cancelled by visitor",
            ),
            (
                VisitStatus::Expired,
                DenyReason::NoPass,
                "expired unanswered",
            ),
        ];
        for (status, reason, text) in cases {
            match evaluate(&visit_in(status), now) {
                Err((r, m)) => {
                    assert_eq!(r, reason, "{status:?}");
                    assert!(m.contains(text), "{status:?}: {m}");
                }
                Ok(m) => panic!("{status:?} allowed: {m}"),
            }
        }
    }

    #[test]
    fn reasons_serialise_and_rank() {
        crate::tests::assert_api_names(&DenyReason::ALL, DenyReason::as_str);
        assert!(DenyReason::NotYetValid.rank() < DenyReason::NoPass.rank());
        assert!(DenyReason::NoPass.rank() < DenyReason::Expired.rank());
    }
}
