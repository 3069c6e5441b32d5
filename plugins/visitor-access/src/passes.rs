//! Passes: the code a confirmed visit gets, and whether a visit's pass opens a gate now.
//!
//! A pass code is 8 characters of Crockford's base32 (`0-9 A-Z` without `I L O U`):
//! 40 bits drawn from the sandbox's secure random source (WASI `random`, through
//! `getrandom`) when the visit is confirmed, and stored with the visit. Nothing about
//! the visit, the community or the call's idempotency key goes into it, so it cannot
//! be computed; a replayed confirmation returns the stored visit, code included.

use crate::keys;
use crate::store::{Session, Store};
use crate::time::{duration, rfc3339};
use crate::validate::{PASS_ALPHABET, PASS_LEN};
use crate::visit::{Visit, VisitStatus};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// How many codes are drawn when a code is already taken by another visit (with 2^40
/// codes, a second draw is already rare).
const ATTEMPTS: u32 = 16;

/// The pass code of 40 random bits: 5 bits a character.
pub fn code_from_bytes(bytes: [u8; 5]) -> String {
    let bits = bytes
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    (0..PASS_LEN)
        .map(|i| PASS_ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// A pass code drawn from the secure random source.
pub fn random_code() -> Result<String, Error> {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal(format!("no secure random source for a pass code: {e}")))?;
    Ok(code_from_bytes(bytes))
}

/// Gives a just-confirmed `visit` its pass: a random code (unique among stored passes)
/// and the time from which it opens the gate. Writes the code's index.
pub fn issue<S: Store>(s: &mut Session<'_, S>, visit: &mut Visit) -> Result<(), Error> {
    issue_with(s, visit, random_code)
}

/// [`issue`] with the codes drawn by `draw`.
fn issue_with<S: Store>(
    s: &mut Session<'_, S>,
    visit: &mut Visit,
    mut draw: impl FnMut() -> Result<String, Error>,
) -> Result<(), Error> {
    for _ in 0..ATTEMPTS {
        let code = draw()?;
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
    /// The gate sent something that is not a credential (image data as a face
    /// reference).
    InvalidCredential,
}

impl DenyReason {
    /// Every reason.
    pub const ALL: [Self; 8] = [
        Self::Unknown,
        Self::Blocklisted,
        Self::NoPass,
        Self::NotYetValid,
        Self::Expired,
        Self::Refused,
        Self::Cancelled,
        Self::InvalidCredential,
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
            Self::InvalidCredential => "invalid-credential",
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
            Self::InvalidCredential => 7,
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
    fn codes_are_well_formed_and_use_every_bit() {
        assert_eq!(code_from_bytes([0; 5]), "00000000");
        assert_eq!(code_from_bytes([0xff; 5]), "ZZZZZZZZ");
        assert_eq!(code_from_bytes([0x08, 0x86, 0x42, 0x98, 0xe8]), "12345678");
        let codes: std::collections::HashSet<String> = (0..2000)
            .map(|_| {
                let code = random_code().expect("random");
                assert_eq!(
                    crate::validate::normalize_pass_code(&code).as_deref(),
                    Some(code.as_str())
                );
                code
            })
            .collect();
        assert_eq!(codes.len(), 2000, "no repeats in a small sample");
    }

    #[test]
    fn issue_writes_the_index_and_skips_taken_codes() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, T0, Some("k"));
        let mut visit = visit_in(VisitStatus::Confirmed);
        visit.pass_code = None;
        s.put(&crate::keys::pass("TAKEN000"), "v99999999")
            .expect("put");
        let mut draws = ["TAKEN000", "FREE0001"].into_iter().map(str::to_owned);
        issue_with(&mut s, &mut visit, || Ok(draws.next().expect("a draw"))).expect("issue");
        assert_eq!(visit.pass_code.as_deref(), Some("FREE0001"));
        assert_eq!(
            visit_of(&mut s, "FREE0001").expect("read").as_deref(),
            Some("v00000001")
        );
        assert_eq!(
            visit.pass_valid_from_ms,
            Some(visit.from_ms - 15 * MINUTE_MS),
            "opens early_entry_minutes before the window"
        );
        let mut other = visit_in(VisitStatus::Confirmed);
        other.visit_id = "v00000002".into();
        let e =
            issue_with(&mut s, &mut other, || Ok("TAKEN000".to_owned())).expect_err("never free");
        assert!(matches!(e, Error::Internal(m) if m.contains("no free pass code")));
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
