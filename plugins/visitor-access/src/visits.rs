//! Visits: registration, the residents' answers, cancellation, reading and listing —
//! the state machine of [`crate::visit`] written down with its indexes and events.

use crate::blocklist;
use crate::events;
use crate::keys;
use crate::passes;
use crate::residents;
use crate::store::{Session, Store, page, page_size};
use crate::validate;
use crate::visit::{Action, Canceller, Visit, VisitStatus, apply};
use courtyard_sdk::Error;
use serde::Deserialize;

/// A visit by id, as stored.
pub fn load<S: Store>(s: &mut Session<'_, S>, visit_id: &str) -> Result<Option<Visit>, Error> {
    s.get(&keys::visit(visit_id))
}

/// A visit by id, as stored, or `not_found`.
pub fn load_required<S: Store>(s: &mut Session<'_, S>, visit_id: &str) -> Result<Visit, Error> {
    load(s, visit_id)?.ok_or_else(|| {
        Error::not_found(format!(
            "no visit {visit_id:?} in this community (closed visits are removed retention_days after they close)"
        ))
    })
}

/// Writes down the change from `before` to `after` (the visit, its deadline, its open
/// indexes, its closing time).
fn commit<S: Store>(s: &mut Session<'_, S>, before: &Visit, after: &Visit) -> Result<(), Error> {
    if before.status != after.status {
        if let Some(deadline) = before.deadline() {
            s.delete(&keys::due(deadline, &before.visit_id))?;
        }
        if let Some(deadline) = after.deadline() {
            s.put(&keys::due(deadline, &after.visit_id), &true)?;
        }
        if before.status.is_open() && !after.status.is_open() {
            s.delete(&format!(
                "{}{}",
                keys::phone_open(&after.phone),
                after.visit_id
            ))?;
            if let Some(face) = &after.face_ref {
                s.delete(&format!("{}{}", keys::face_open(face), after.visit_id))?;
            }
            let closed = after.closed_at_ms.unwrap_or(s.now_ms);
            s.put(&keys::done(closed, &after.visit_id), &true)?;
        }
    }
    s.put(&keys::visit(&after.visit_id), after)
}

/// Writes an expiry down and emits its event.
fn commit_expiry<S: Store>(s: &mut Session<'_, S>, before: &Visit) -> Result<Visit, Error> {
    let after = apply(before, &Action::Expire, s.now_ms)?;
    commit(s, before, &after)?;
    s.emit(
        events::VISIT_EXPIRED,
        &events::expired(&after, before.status),
    )?;
    Ok(after)
}

/// The visit as it stands now. A visit past its deadline is written down as expired
/// (with its event) while this call's budget of such events lasts; beyond it the
/// answer is the same but the writing is left to the next read or the sweep.
pub fn touch<S: Store>(s: &mut Session<'_, S>, visit: Visit) -> Result<Visit, Error> {
    if visit.due_at(s.now_ms).is_none() {
        return Ok(visit);
    }
    if s.take_touch_event() {
        commit_expiry(s, &visit)
    } else {
        Ok(visit.effective(s.now_ms))
    }
}

/// Expires `visit` if it is due, for the sweep (not limited by the touch budget).
/// Returns whether it expired.
pub fn expire_if_due<S: Store>(s: &mut Session<'_, S>, visit: &Visit) -> Result<bool, Error> {
    if visit.due_at(s.now_ms).is_none() {
        return Ok(false);
    }
    commit_expiry(s, visit)?;
    Ok(true)
}

/// The open visits whose ids are listed under `prefix` (a phone's or a face's).
pub fn open_visits<S: Store>(s: &mut Session<'_, S>, prefix: &str) -> Result<Vec<Visit>, Error> {
    let mut open = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = s.scan(prefix, after.as_deref(), 200)?;
        let full = batch.len() == 200;
        for (key, _) in batch {
            let id = &key[prefix.len()..];
            if let Some(visit) = load(s, id)? {
                let visit = touch(s, visit)?;
                if visit.status.is_open() {
                    open.push(visit);
                }
            }
            after = Some(key);
        }
        if !full {
            return Ok(open);
        }
    }
}

/// `register-visit`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// The visitor's name.
    pub visitor_name: String,
    /// The visitor's phone.
    pub phone: String,
    /// The visitor's face template id or hash.
    #[serde(default)]
    pub face_ref: Option<String>,
    /// The unit visited.
    pub unit: String,
    /// The window: from (ms since the epoch, inclusive).
    pub from_ms: i64,
    /// The window: to (ms since the epoch, exclusive).
    pub to_ms: i64,
    /// What for.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// `register-visit`: a visitor asks to visit a unit in a window; the visit is pending
/// until a resident of the unit answers, for at most `pending_ttl_minutes` and never
/// past the end of the window.
pub fn register<S: Store>(s: &mut Session<'_, S>, input: RegisterInput) -> Result<Visit, Error> {
    let now = s.now_ms;
    let visitor_name = validate::name("visitor_name", &input.visitor_name)?;
    let purpose = validate::note("purpose", input.purpose.as_deref())?;
    // Phones and faces in canonical form from here on: stored, indexed and compared so.
    let phone = validate::canonical_phone(&input.phone);
    let face_ref = match &input.face_ref {
        Some(face) => Some(validate::face_ref("face_ref", face)?),
        None if s.config.require_face_ref => {
            return Err(Error::invalid_input(
                "this community requires a face reference (face_ref) with every registration: register the visitor's face in the mini-program first",
            ));
        }
        None => None,
    };
    validate::window(&s.config, now, input.from_ms, input.to_ms)?;
    if !residents::has_residents(s, &input.unit)? {
        return Err(Error::not_found(format!(
            "unit {:?} has no registered resident to confirm the visit; check the unit, or ask the property office to register its residents",
            input.unit
        )));
    }
    if let Some(entry) = blocklist::blocking(s, Some(&phone), face_ref.as_deref())? {
        return Err(Error::conflict(format!(
            "registration refused: {}",
            entry.describe()
        )));
    }
    let max = s.config.max_open_visits_per_visitor as usize;
    let mut prefixes = vec![("phone number", keys::phone_open(&phone))];
    if let Some(face) = &face_ref {
        prefixes.push(("face reference", keys::face_open(face)));
    }
    for (what, prefix) in prefixes {
        let open = open_visits(s, &prefix)?;
        if open.len() >= max {
            let ids: Vec<&str> = open.iter().map(|v| v.visit_id.as_str()).collect();
            return Err(Error::conflict(format!(
                "this visitor's {what} already has {} open visits ({}); the community allows {max} (max_open_visits_per_visitor): cancel one or wait for it to end",
                open.len(),
                ids.join(", ")
            )));
        }
    }

    let visit_id = keys::visit_id(s.next_seq(keys::SEQ_VISIT)?);
    let respond_by_ms = (now + s.config.pending_ttl_ms()).min(input.to_ms);
    let visit = Visit {
        visit_id: visit_id.clone(),
        status: VisitStatus::Pending,
        visitor_name,
        phone,
        face_ref,
        unit: input.unit,
        purpose,
        from_ms: input.from_ms,
        to_ms: input.to_ms,
        registered_at_ms: now,
        respond_by_ms,
        ..Visit::default()
    };
    s.put(&keys::visit(&visit_id), &visit)?;
    s.put(
        &format!("{}{visit_id}", keys::unit_visits(&visit.unit)),
        &true,
    )?;
    s.put(
        &format!("{}{visit_id}", keys::phone_visits(&visit.phone)),
        &true,
    )?;
    s.put(
        &format!("{}{visit_id}", keys::phone_open(&visit.phone)),
        &true,
    )?;
    if let Some(face) = &visit.face_ref {
        s.put(&format!("{}{visit_id}", keys::face_open(face)), &true)?;
        s.put(&keys::face_latest(face), &visit_id)?;
    }
    s.put(&keys::due(respond_by_ms, &visit_id), &true)?;
    s.emit(events::VISIT_REGISTERED, &events::registered(&visit))?;
    Ok(visit)
}

/// `get-visit`'s input, and the visit-naming part of other inputs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitRef {
    /// The visit.
    pub visit_id: String,
}

/// `get-visit`: the visit as it stands now.
pub fn get<S: Store>(s: &mut Session<'_, S>, input: VisitRef) -> Result<Visit, Error> {
    let visit = load_required(s, &input.visit_id)?;
    touch(s, visit)
}

/// `confirm-visit`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmInput {
    /// The visit.
    pub visit_id: String,
    /// The resident confirming.
    pub resident_id: String,
}

/// `confirm-visit`: a resident of the unit confirms a pending visit, which gets its
/// pass. Refused when the resident is not of that unit, the visit is not pending (or
/// is past its respond-by time), or the visitor is on the blocklist.
pub fn confirm<S: Store>(s: &mut Session<'_, S>, input: ConfirmInput) -> Result<Visit, Error> {
    let before = load_required(s, &input.visit_id)?;
    residents::require_resident(
        s,
        &before.unit,
        &input.resident_id,
        "confirm",
        &before.visit_id,
    )?;
    let mut after = apply(
        &before,
        &Action::Confirm {
            resident_id: input.resident_id,
        },
        s.now_ms,
    )?;
    if let Some(entry) = blocklist::blocking(s, Some(&before.phone), before.face_ref.as_deref())? {
        return Err(Error::conflict(format!(
            "cannot confirm visit {}: {}",
            before.visit_id,
            entry.describe()
        )));
    }
    passes::issue(s, &mut after)?;
    commit(s, &before, &after)?;
    s.emit(events::VISIT_CONFIRMED, &events::confirmed(&after))?;
    Ok(after)
}

/// `refuse-visit`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefuseInput {
    /// The visit.
    pub visit_id: String,
    /// The resident refusing.
    pub resident_id: String,
    /// Why, for the visitor.
    #[serde(default)]
    pub note: Option<String>,
}

/// `refuse-visit`: a resident of the unit refuses a pending visit (final).
pub fn refuse<S: Store>(s: &mut Session<'_, S>, input: RefuseInput) -> Result<Visit, Error> {
    let before = load_required(s, &input.visit_id)?;
    residents::require_resident(
        s,
        &before.unit,
        &input.resident_id,
        "refuse",
        &before.visit_id,
    )?;
    let note = validate::note("note", input.note.as_deref())?;
    let after = apply(
        &before,
        &Action::Refuse {
            resident_id: input.resident_id,
            note,
        },
        s.now_ms,
    )?;
    commit(s, &before, &after)?;
    s.emit(events::VISIT_REFUSED, &events::refused(&after))?;
    Ok(after)
}

/// `cancel-visit`'s input: who cancels is one of `phone` (the visitor, proving it with
/// the visit's phone number), `resident_id` (a resident of the unit) or `staff_id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    /// The visit.
    pub visit_id: String,
    /// The visitor's phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// A resident of the unit.
    #[serde(default)]
    pub resident_id: Option<String>,
    /// A member of staff.
    #[serde(default)]
    pub staff_id: Option<String>,
    /// Why.
    #[serde(default)]
    pub note: Option<String>,
}

/// `cancel-visit`: the visitor, a resident of the unit or staff cancels a pending or
/// confirmed visit (final; a confirmed visit's pass stops opening gates).
pub fn cancel<S: Store>(s: &mut Session<'_, S>, input: CancelInput) -> Result<Visit, Error> {
    let before = load_required(s, &input.visit_id)?;
    let id = before.visit_id.clone();
    let by = match (input.phone, input.resident_id, input.staff_id) {
        (Some(phone), None, None) => {
            if validate::canonical_phone(&phone) != validate::canonical_phone(&before.phone) {
                return Err(Error::conflict(format!(
                    "cannot cancel visit {id}: the phone number given is not the visitor's; the visitor cancels with the phone number they registered with"
                )));
            }
            Canceller::Visitor
        }
        (None, Some(resident), None) => {
            residents::require_resident(s, &before.unit, &resident, "cancel", &id)?;
            Canceller::Resident(resident)
        }
        (None, None, Some(staff)) => Canceller::Staff(staff),
        _ => {
            return Err(Error::invalid_input(
                "say who cancels with exactly one of phone (the visitor), resident_id or staff_id",
            ));
        }
    };
    let note = validate::note("note", input.note.as_deref())?;
    let after = apply(&before, &Action::Cancel { by, note }, s.now_ms)?;
    commit(s, &before, &after)?;
    s.emit(
        events::VISIT_CANCELLED,
        &events::cancelled(&after, before.status),
    )?;
    Ok(after)
}

/// `list-visits`' input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Only this unit's visits.
    #[serde(default)]
    pub unit: Option<String>,
    /// Only this phone's visits.
    #[serde(default)]
    pub phone: Option<String>,
    /// Only visits in this status (as they stand now).
    #[serde(default)]
    pub status: Option<VisitStatus>,
    /// The `next` of the previous page (a visit id).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `list-visits`' output.
#[derive(Debug, serde::Serialize)]
pub struct ListOutput {
    /// The visits, oldest first.
    pub visits: Vec<Visit>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

/// `list-visits`: a page of visits, oldest first, by unit and/or phone and status.
pub fn list<S: Store>(s: &mut Session<'_, S>, input: ListInput) -> Result<ListOutput, Error> {
    let phone = input.phone.as_deref().map(validate::canonical_phone);
    let (prefix, by_index) = match (&input.unit, &phone) {
        (Some(unit), _) => (keys::unit_visits(unit), true),
        (None, Some(phone)) => (keys::phone_visits(phone), true),
        (None, None) => (keys::VISITS.to_owned(), false),
    };
    let limit = page_size(input.limit);
    let status = input.status;
    let page = page(s, &prefix, input.after.as_deref(), limit, |s, id, value| {
        let visit = if by_index {
            match load(s, id)? {
                Some(visit) => visit,
                None => return Ok(None),
            }
        } else {
            serde_json::from_value(value)
                .map_err(|e| Error::internal(format!("bad visit record {id:?}: {e}")))?
        };
        let visit = touch(s, visit)?;
        let keep = phone.as_ref().is_none_or(|p| *p == visit.phone)
            && status.is_none_or(|st| st == visit.status);
        Ok(keep.then_some(visit))
    })?;
    Ok(ListOutput {
        visits: page.items,
        next: page.next,
    })
}

/// Removes a closed visit and everything that points at it (for retention).
pub fn purge<S: Store>(s: &mut Session<'_, S>, visit: &Visit) -> Result<(), Error> {
    let id = &visit.visit_id;
    s.delete(&keys::visit(id))?;
    s.delete(&format!("{}{id}", keys::unit_visits(&visit.unit)))?;
    s.delete(&format!("{}{id}", keys::phone_visits(&visit.phone)))?;
    s.delete(&format!("{}{id}", keys::phone_open(&visit.phone)))?;
    if let Some(face) = &visit.face_ref {
        s.delete(&format!("{}{id}", keys::face_open(face)))?;
        let latest = keys::face_latest(face);
        if s.get::<String>(&latest)?.as_deref() == Some(id.as_str()) {
            s.delete(&latest)?;
        }
    }
    if let Some(code) = &visit.pass_code {
        let key = keys::pass(code);
        if s.get::<String>(&key)?.as_deref() == Some(id.as_str()) {
            s.delete(&key)?;
        }
    }
    if let Some(deadline) = visit.deadline() {
        s.delete(&keys::due(deadline, id))?;
    }
    if let Some(closed) = visit.closed_at_ms {
        s.delete(&keys::done(closed, id))?;
    }
    Ok(())
}
