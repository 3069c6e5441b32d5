//! Gate checks: a gate sends a face reference or a pass code and gets allow or deny
//! with a reason; every check that reaches the plugin is evaluated at its time (never
//! replayed, whatever its idempotency key) and kept in the audit trail.

use crate::audit::{self, Check, Decision, Method};
use crate::blocklist;
use crate::events;
use crate::keys;
use crate::passes::{self, DenyReason};
use crate::store::{Session, Store};
use crate::validate;
use crate::visit::Visit;
use crate::visits;
use courtyard_sdk::Error;
use serde::Deserialize;

/// `gate-check`'s input: exactly one of `face_ref` and `pass_code`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    /// The gate.
    pub gate_id: String,
    /// The face reference the gate's camera matched.
    #[serde(default)]
    pub face_ref: Option<String>,
    /// The pass code typed or scanned.
    #[serde(default)]
    pub pass_code: Option<String>,
}

/// What a credential matched: the visit (as it stands now), and whether it opens the
/// gate (a greeting) or not (a reason and a message).
type Outcome = (Option<Visit>, Result<String, (DenyReason, String)>);

fn judged<S: Store>(s: &mut Session<'_, S>, visit: Visit) -> Result<Outcome, Error> {
    let visit = visits::touch(s, visit)?;
    let verdict = passes::evaluate(&visit, s.now_ms);
    Ok((Some(visit), verdict))
}

fn by_code<S: Store>(s: &mut Session<'_, S>, code: &str) -> Result<Outcome, Error> {
    let unknown = || {
        Ok((
            None,
            Err((
                DenyReason::Unknown,
                "no visit has this pass code; check the code, or register the visit".to_owned(),
            )),
        ))
    };
    let Some(id) = passes::visit_of(s, code)? else {
        return unknown();
    };
    match visits::load(s, &id)? {
        Some(visit) => judged(s, visit),
        None => unknown(),
    }
}

fn by_face<S: Store>(s: &mut Session<'_, S>, face: &str) -> Result<Outcome, Error> {
    // The open visits first: one of them may open the gate now.
    let mut best: Option<Outcome> = None;
    for visit in visits::open_visits(s, &keys::face_open(face))? {
        let verdict = passes::evaluate(&visit, s.now_ms);
        let rank = |o: &Outcome| match &o.1 {
            Ok(_) => 0,
            Err((reason, _)) => 1 + reason.rank(),
        };
        let candidate = (Some(visit), verdict);
        if best.as_ref().is_none_or(|b| rank(&candidate) < rank(b)) {
            best = Some(candidate);
        }
    }
    if let Some(outcome) = best {
        return Ok(outcome);
    }
    // Otherwise the latest visit says why not (refused, cancelled, expired).
    if let Some(id) = s.get::<String>(&keys::face_latest(face))?
        && let Some(visit) = visits::load(s, &id)?
    {
        return judged(s, visit);
    }
    Ok((
        None,
        Err((
            DenyReason::Unknown,
            "no visit is registered with this face; the visitor registers in the access-control mini-program".to_owned(),
        )),
    ))
}

/// What an audit record shows as the credential of a `face_ref` that is not a face
/// reference (image data, never kept).
pub const REFUSED_FACE: &str = "(refused: not a face reference)";

/// `gate-check`: allow or deny, with the reason, kept in the audit trail. Never
/// replayed: every call is a check, evaluated against the state at its time.
///
/// A face reference that is not one (image data: the gate's integration is broken) is
/// a check denied as `invalid-credential`, recorded without the value (shown as
/// [`REFUSED_FACE`]); a refusal (400) would leave no trace, since the host discards
/// the writes of a failed call. A pass code that cannot be one (wrong length or
/// letters) is a check denied as `unknown`. Face references are matched in
/// [canonical form](validate::canonical_face_ref).
pub fn check<S: Store>(s: &mut Session<'_, S>, input: CheckInput) -> Result<Check, Error> {
    let (method, credential, (visit, verdict)) = match (input.face_ref, input.pass_code) {
        (Some(face), None) => match validate::face_ref_problem(&face) {
            None => {
                let face = validate::canonical_face_ref(&face);
                let outcome = by_face(s, &face)?;
                (Method::Face, face, outcome)
            }
            Some(problem) => (
                Method::Face,
                REFUSED_FACE.to_owned(),
                (
                    None,
                    Err((DenyReason::InvalidCredential, problem.message("face_ref"))),
                ),
            ),
        },
        (None, Some(typed)) => match validate::normalize_pass_code(&typed) {
            Some(code) => {
                let outcome = by_code(s, &code)?;
                (Method::PassCode, code, outcome)
            }
            None => (
                Method::PassCode,
                "(malformed)".to_owned(),
                (
                    None,
                    Err((
                        DenyReason::Unknown,
                        format!(
                            "this is not a pass code: pass codes have {} letters and digits",
                            validate::PASS_LEN
                        ),
                    )),
                ),
            ),
        },
        _ => {
            return Err(Error::invalid_input(
                "give exactly one of face_ref and pass_code",
            ));
        }
    };

    // The blocklist overrides everything: the face shown, and the visit's phone and face.
    let face = match (method, &verdict) {
        (Method::Face, Err((DenyReason::InvalidCredential, _))) => None,
        (Method::Face, _) => Some(credential.clone()),
        (Method::PassCode, _) => visit.as_ref().and_then(|v| v.face_ref.clone()),
    };
    let phone = visit.as_ref().map(|v| v.phone.clone());
    let verdict = match blocklist::blocking(s, phone.as_deref(), face.as_deref())? {
        Some(entry) => Err((DenyReason::Blocklisted, entry.describe())),
        None => verdict,
    };

    let (decision, reason, message) = match verdict {
        Ok(greeting) => (Decision::Allow, None, greeting),
        Err((reason, message)) => (Decision::Deny, Some(reason), message),
    };
    let check = Check {
        check_id: audit::next_id(s)?,
        at_ms: s.now_ms,
        gate_id: input.gate_id,
        method,
        credential,
        decision,
        reason,
        message,
        visit_id: visit.as_ref().map(|v| v.visit_id.clone()),
        unit: visit.as_ref().map(|v| v.unit.clone()),
        visitor_name: visit.as_ref().map(|v| v.visitor_name.clone()),
        valid_until_ms: match decision {
            Decision::Allow => visit.as_ref().map(|v| v.to_ms),
            Decision::Deny => None,
        },
    };
    if let (Decision::Allow, Some(mut visit)) = (decision, visit) {
        // An allowed visit is confirmed and within its window: stored as it stands.
        visit.entries += 1;
        visit.last_entry_ms = Some(s.now_ms);
        visit.last_gate_id = Some(check.gate_id.clone());
        s.put(&keys::visit(&visit.visit_id), &visit)?;
    }
    audit::record(s, &check)?;
    let kind = match decision {
        Decision::Allow => events::GATE_ALLOWED,
        Decision::Deny => events::GATE_DENIED,
    };
    s.emit(kind, &events::gate(&check))?;
    Ok(check)
}
