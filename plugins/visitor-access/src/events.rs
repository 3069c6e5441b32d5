//! The events the plugin emits (each declared in `manifest.json`), for workflows: tell
//! the resident a visitor registered, send the visitor the pass code, alert the guard
//! room when a gate denies someone.

use crate::audit::Check;
use crate::validate::mask_phone;
use crate::visit::{Visit, VisitStatus};
use serde_json::{Value, json};

/// A visitor registered; a workflow notifies the unit's residents. The phone is masked.
pub const VISIT_REGISTERED: &str = "visitor-access.visit-registered";
/// A resident confirmed; a workflow sends the visitor the pass code.
pub const VISIT_CONFIRMED: &str = "visitor-access.visit-confirmed";
/// A resident refused; a workflow tells the visitor.
pub const VISIT_REFUSED: &str = "visitor-access.visit-refused";
/// The visitor, a resident or staff cancelled.
pub const VISIT_CANCELLED: &str = "visitor-access.visit-cancelled";
/// A pending visit went unanswered, or a pass reached the end of its window.
pub const VISIT_EXPIRED: &str = "visitor-access.visit-expired";
/// A gate let a visitor in.
pub const GATE_ALLOWED: &str = "visitor-access.gate-allowed";
/// A gate denied someone.
pub const GATE_DENIED: &str = "visitor-access.gate-denied";

/// Every kind, as declared in the manifest.
pub const ALL: [&str; 7] = [
    VISIT_REGISTERED,
    VISIT_CONFIRMED,
    VISIT_REFUSED,
    VISIT_CANCELLED,
    VISIT_EXPIRED,
    GATE_ALLOWED,
    GATE_DENIED,
];

/// The payload of [`VISIT_REGISTERED`].
pub fn registered(v: &Visit) -> Value {
    json!({
        "visit_id": v.visit_id,
        "unit": v.unit,
        "visitor_name": v.visitor_name,
        "phone_masked": mask_phone(&v.phone),
        "purpose": v.purpose,
        "from_ms": v.from_ms,
        "to_ms": v.to_ms,
        "respond_by_ms": v.respond_by_ms,
    })
}

/// The payload of [`VISIT_CONFIRMED`].
pub fn confirmed(v: &Visit) -> Value {
    json!({
        "visit_id": v.visit_id,
        "unit": v.unit,
        "resident_id": v.decided_by,
        "visitor_name": v.visitor_name,
        "phone": v.phone,
        "pass_code": v.pass_code,
        "pass_valid_from_ms": v.pass_valid_from_ms,
        "to_ms": v.to_ms,
    })
}

/// The payload of [`VISIT_REFUSED`].
pub fn refused(v: &Visit) -> Value {
    json!({
        "visit_id": v.visit_id,
        "unit": v.unit,
        "resident_id": v.decided_by,
        "visitor_name": v.visitor_name,
        "phone": v.phone,
        "note": v.note,
    })
}

/// The payload of [`VISIT_CANCELLED`]; `was` is the status before.
pub fn cancelled(v: &Visit, was: VisitStatus) -> Value {
    json!({
        "visit_id": v.visit_id,
        "unit": v.unit,
        "cancelled_by": v.cancelled_by,
        "was": was.as_str(),
        "visitor_name": v.visitor_name,
        "phone": v.phone,
        "note": v.note,
    })
}

/// The payload of [`VISIT_EXPIRED`]; `was` is the status before.
pub fn expired(v: &Visit, was: VisitStatus) -> Value {
    json!({
        "visit_id": v.visit_id,
        "unit": v.unit,
        "was": was.as_str(),
        "visitor_name": v.visitor_name,
        "phone": v.phone,
        "expired_at_ms": v.closed_at_ms,
    })
}

/// The payload of [`GATE_ALLOWED`] and [`GATE_DENIED`]: the audit record, without
/// the credential (a face reference or a pass code has no business in the stream).
pub fn gate(check: &Check) -> Value {
    json!({
        "check_id": check.check_id,
        "gate_id": check.gate_id,
        "method": check.method,
        "decision": check.decision,
        "reason": check.reason,
        "message": check.message,
        "visit_id": check.visit_id,
        "unit": check.unit,
        "at_ms": check.at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::visit::tests::visit_in;

    fn manifest_events() -> serde_json::Map<String, Value> {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/manifest.json"))
            .expect("manifest.json");
        let manifest: Value = serde_json::from_str(&text).expect("JSON");
        manifest["events"].as_object().expect("events").clone()
    }

    /// Every payload has exactly the properties its manifest schema lists, all required.
    fn assert_matches_schema(kind: &str, payload: &Value) {
        let events = manifest_events();
        let schema = &events[kind]["payload"];
        let props = schema["properties"].as_object().expect("properties");
        let mut keys: Vec<&String> = payload.as_object().expect("object").keys().collect();
        let mut declared: Vec<&String> = props.keys().collect();
        keys.sort_unstable();
        declared.sort_unstable();
        assert_eq!(keys, declared, "{kind}");
        let required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required.len(), declared.len(), "{kind}: all required");
    }

    #[test]
    fn every_kind_is_declared_and_payloads_match() {
        let events = manifest_events();
        let mut declared: Vec<&str> = events.keys().map(String::as_str).collect();
        declared.sort_unstable();
        let mut ours = ALL.to_vec();
        ours.sort_unstable();
        assert_eq!(declared, ours);
        let v = visit_in(VisitStatus::Confirmed);
        assert_matches_schema(VISIT_REGISTERED, &registered(&v));
        assert_matches_schema(VISIT_CONFIRMED, &confirmed(&v));
        assert_matches_schema(VISIT_REFUSED, &refused(&v));
        assert_matches_schema(VISIT_CANCELLED, &cancelled(&v, VisitStatus::Pending));
        assert_matches_schema(VISIT_EXPIRED, &expired(&v, VisitStatus::Pending));
        let check = crate::audit::tests::sample_check();
        assert_matches_schema(GATE_ALLOWED, &gate(&check));
        assert_matches_schema(GATE_DENIED, &gate(&check));
        assert_eq!(registered(&v)["phone_masked"], "138****5678");
    }
}
