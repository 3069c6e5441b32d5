//! A visit and its state machine, as pure functions of the visit and "now".
//!
//! ```text
//!            confirm (a resident of the unit)          end of window
//! pending ───────────────────────────────▶ confirmed ───────────────▶ expired
//!   │ │ │                                    │
//!   │ │ └── refuse (a resident) ─▶ refused   └── cancel ─▶ cancelled
//!   │ └──── cancel (visitor, resident, staff) ─▶ cancelled
//!   └────── no answer by respond_by_ms ─▶ expired
//! ```
//!
//! `refused`, `cancelled` and `expired` are final. Expiry needs no call: a visit past
//! its deadline *is* expired ([`Visit::effective`]); reads and the `expire-due` sweep
//! write that down.

use crate::time::rfc3339;
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// Where a visit stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VisitStatus {
    /// Registered, waiting for a resident of the unit (where every visit starts).
    #[default]
    Pending,
    /// Confirmed by a resident: it has a pass.
    Confirmed,
    /// Refused by a resident (final).
    Refused,
    /// Cancelled by the visitor, a resident or staff (final).
    Cancelled,
    /// Not answered in time, or its window ended (final).
    Expired,
}

impl VisitStatus {
    /// Every status.
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Confirmed,
        Self::Refused,
        Self::Cancelled,
        Self::Expired,
    ];

    /// Pending or confirmed.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed)
    }

    /// The status as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

/// A visit, as stored and as returned by the operations. The default is the empty
/// start of a visit: pending, nobody has answered, no pass, not closed, no entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// `v00000042`.
    pub visit_id: String,
    /// Where it stands.
    pub status: VisitStatus,
    /// The visitor's name.
    pub visitor_name: String,
    /// The visitor's phone, in canonical form.
    pub phone: String,
    /// The visitor's face template id or hash (canonical form), if registered.
    pub face_ref: Option<String>,
    /// The unit visited.
    pub unit: String,
    /// What the visit is for, as the visitor wrote it.
    pub purpose: Option<String>,
    /// The window asked for: from (inclusive), ms since the epoch.
    pub from_ms: i64,
    /// The window asked for: to (exclusive), ms since the epoch.
    pub to_ms: i64,
    /// When it was registered.
    pub registered_at_ms: i64,
    /// A resident must answer before this, or it expires.
    pub respond_by_ms: i64,
    /// The resident who confirmed or refused it.
    pub decided_by: Option<String>,
    /// When it was confirmed or refused.
    pub decided_at_ms: Option<i64>,
    /// The pass code (confirmed visits).
    pub pass_code: Option<String>,
    /// From when the pass opens the gate (the window start less the early-entry time).
    pub pass_valid_from_ms: Option<i64>,
    /// Who cancelled it: `visitor`, `resident:<id>` or `staff:<id>`.
    pub cancelled_by: Option<String>,
    /// The refusal's or cancellation's note.
    pub note: Option<String>,
    /// When it was refused, cancelled or expired.
    pub closed_at_ms: Option<i64>,
    /// How many times a gate let the visitor in.
    pub entries: u32,
    /// When a gate last let the visitor in.
    pub last_entry_ms: Option<i64>,
    /// Which gate last let the visitor in.
    pub last_gate_id: Option<String>,
}

impl Visit {
    /// The deadline of an open visit: the respond-by time while pending, the end of the
    /// window once confirmed; `None` when closed.
    pub fn deadline(&self) -> Option<i64> {
        match self.status {
            VisitStatus::Pending => Some(self.respond_by_ms),
            VisitStatus::Confirmed => Some(self.to_ms),
            _ => None,
        }
    }

    /// The deadline, if it has passed at `now` (the visit is due to expire).
    pub fn due_at(&self, now: i64) -> Option<i64> {
        self.deadline().filter(|deadline| now >= *deadline)
    }

    /// The visit as it stands at `now`: a visit past its deadline is expired (at its
    /// deadline) even before anything wrote that down.
    pub fn effective(&self, now: i64) -> Visit {
        let mut visit = self.clone();
        if let Some(at) = self.due_at(now) {
            visit.status = VisitStatus::Expired;
            visit.closed_at_ms = Some(at);
        }
        visit
    }
}

/// Who cancels a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canceller {
    /// The visitor (who proved it with the visit's phone number).
    Visitor,
    /// A resident of the unit.
    Resident(String),
    /// A member of staff.
    Staff(String),
}

impl Canceller {
    /// As stored in `cancelled_by`.
    pub fn label(&self) -> String {
        match self {
            Self::Visitor => "visitor".to_owned(),
            Self::Resident(id) => format!("resident:{id}"),
            Self::Staff(id) => format!("staff:{id}"),
        }
    }
}

/// What happens to a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A resident of the unit confirms (the caller then issues the pass).
    Confirm {
        /// The resident.
        resident_id: String,
    },
    /// A resident of the unit refuses.
    Refuse {
        /// The resident.
        resident_id: String,
        /// Why, for the visitor.
        note: Option<String>,
    },
    /// The visitor, a resident or staff cancels.
    Cancel {
        /// Who.
        by: Canceller,
        /// Why.
        note: Option<String>,
    },
    /// The deadline passed.
    Expire,
}

impl Action {
    fn verb(&self) -> &'static str {
        match self {
            Self::Confirm { .. } => "confirm",
            Self::Refuse { .. } => "refuse",
            Self::Cancel { .. } => "cancel",
            Self::Expire => "expire",
        }
    }
}

/// The visit after `action` at `now`, or a `conflict` saying why the visit's state
/// forbids it. Pure: the caller checks who may act and writes the result down.
pub fn apply(visit: &Visit, action: &Action, now: i64) -> Result<Visit, Error> {
    if let Action::Expire = action {
        return expire(visit, now);
    }
    let current = visit.effective(now);
    let mut next = current.clone();
    match (current.status, action) {
        (VisitStatus::Pending, Action::Confirm { resident_id }) => {
            next.status = VisitStatus::Confirmed;
            next.decided_by = Some(resident_id.clone());
            next.decided_at_ms = Some(now);
        }
        (VisitStatus::Pending, Action::Refuse { resident_id, note }) => {
            next.status = VisitStatus::Refused;
            next.decided_by = Some(resident_id.clone());
            next.decided_at_ms = Some(now);
            next.note = note.clone();
            next.closed_at_ms = Some(now);
        }
        (VisitStatus::Pending | VisitStatus::Confirmed, Action::Cancel { by, note }) => {
            next.status = VisitStatus::Cancelled;
            next.cancelled_by = Some(by.label());
            next.note = note.clone();
            next.closed_at_ms = Some(now);
        }
        (status, action) => return Err(refusal(&current, status, action)),
    }
    Ok(next)
}

fn expire(visit: &Visit, now: i64) -> Result<Visit, Error> {
    let id = &visit.visit_id;
    match visit.due_at(now) {
        Some(_) => Ok(visit.effective(now)),
        None => match visit.deadline() {
            Some(deadline) => Err(Error::conflict(format!(
                "visit {id} is {} until {}; it cannot expire before then",
                visit.status.as_str(),
                rfc3339(deadline)
            ))),
            None => Err(Error::conflict(format!(
                "visit {id} is already {}",
                visit.status.as_str()
            ))),
        },
    }
}

/// Why `action` is not allowed on a visit in `status`.
fn refusal(visit: &Visit, status: VisitStatus, action: &Action) -> Error {
    let id = &visit.visit_id;
    let verb = action.verb();
    let when = |at: Option<i64>| at.map(rfc3339).unwrap_or_else(|| "an unknown time".into());
    let who = visit.decided_by.as_deref().unwrap_or("a resident");
    let why = match status {
        VisitStatus::Confirmed => match action {
            Action::Refuse { .. } => format!(
                "it was already confirmed by {who} at {}; to withdraw the pass, cancel the visit (cancel-visit)",
                when(visit.decided_at_ms)
            ),
            _ => format!(
                "it was already confirmed by {who} at {}; its pass is valid until {}",
                when(visit.decided_at_ms),
                rfc3339(visit.to_ms)
            ),
        },
        VisitStatus::Refused => format!(
            "it was refused by {who} at {}; a refused visit is final, the visitor must register again",
            when(visit.closed_at_ms)
        ),
        VisitStatus::Cancelled => format!(
            "it was cancelled by {} at {}; a cancelled visit is final, the visitor must register again",
            visit.cancelled_by.as_deref().unwrap_or("someone"),
            when(visit.closed_at_ms)
        ),
        VisitStatus::Expired if visit.pass_code.is_some() => format!(
            "its pass expired at {}, the end of the visit window; the visitor must register again",
            when(visit.closed_at_ms)
        ),
        VisitStatus::Expired => format!(
            "it expired unanswered at {} (residents must answer within the community's pending_ttl_minutes and before the window ends); the visitor must register again",
            when(visit.closed_at_ms)
        ),
        // Pending allows every action; this arm is for completeness.
        VisitStatus::Pending => "it is pending".to_owned(),
    };
    Error::conflict(format!("cannot {verb} visit {id}: {why}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const T0: i64 = 4_000_000_000_000;
    const HOUR: i64 = 3_600_000;

    /// A pending visit registered at `T0` for the window `[T0 + 2h, T0 + 10h)`,
    /// answerable until `T0 + 1h`.
    pub(crate) fn pending() -> Visit {
        Visit {
            visit_id: "v00000001".into(),
            status: VisitStatus::Pending,
            visitor_name: "Li Wei".into(),
            phone: "13812345678".into(),
            face_ref: Some("sha256:abc12345".into()),
            unit: "3-2-501".into(),
            purpose: None,
            from_ms: T0 + 2 * HOUR,
            to_ms: T0 + 10 * HOUR,
            registered_at_ms: T0,
            respond_by_ms: T0 + HOUR,
            ..Visit::default()
        }
    }

    fn confirm() -> Action {
        Action::Confirm {
            resident_id: "r-wang".into(),
        }
    }
    fn refuse() -> Action {
        Action::Refuse {
            resident_id: "r-wang".into(),
            note: Some("not expecting anyone".into()),
        }
    }
    fn cancel() -> Action {
        Action::Cancel {
            by: Canceller::Visitor,
            note: None,
        }
    }

    /// A visit in `status`, reached the ordinary way.
    pub(crate) fn visit_in(status: VisitStatus) -> Visit {
        let v = pending();
        let now = T0 + 60_000;
        match status {
            VisitStatus::Pending => v,
            VisitStatus::Confirmed => {
                let mut c = apply(&v, &confirm(), now).expect("confirm");
                c.pass_code = Some("ABCDEFGH".into());
                c
            }
            VisitStatus::Refused => apply(&v, &refuse(), now).expect("refuse"),
            VisitStatus::Cancelled => apply(&v, &cancel(), now).expect("cancel"),
            VisitStatus::Expired => apply(&v, &Action::Expire, T0 + HOUR).expect("expire"),
        }
    }

    fn conflict_message(result: Result<Visit, Error>) -> String {
        match result {
            Err(Error::Conflict(m)) => m,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn pending_allows_confirm_refuse_cancel() {
        let v = pending();
        let now = T0 + 1000;
        let c = apply(&v, &confirm(), now).expect("confirm");
        assert_eq!(c.status, VisitStatus::Confirmed);
        assert_eq!(c.decided_by.as_deref(), Some("r-wang"));
        assert_eq!(c.decided_at_ms, Some(now));
        assert_eq!(c.closed_at_ms, None);

        let r = apply(&v, &refuse(), now).expect("refuse");
        assert_eq!(r.status, VisitStatus::Refused);
        assert_eq!(r.note.as_deref(), Some("not expecting anyone"));
        assert_eq!(r.closed_at_ms, Some(now));

        for by in [
            Canceller::Visitor,
            Canceller::Resident("r-wang".into()),
            Canceller::Staff("s-01".into()),
        ] {
            let label = by.label();
            let x = apply(&v, &Action::Cancel { by, note: None }, now).expect("cancel");
            assert_eq!(x.status, VisitStatus::Cancelled);
            assert_eq!(x.cancelled_by, Some(label));
            assert_eq!(x.closed_at_ms, Some(now));
        }
    }

    #[test]
    fn pending_expires_at_respond_by_not_before() {
        let v = pending();
        let msg = conflict_message(apply(&v, &Action::Expire, T0 + HOUR - 1));
        assert!(msg.contains("pending until"), "{msg}");
        let e = apply(&v, &Action::Expire, T0 + HOUR).expect("expire");
        assert_eq!(e.status, VisitStatus::Expired);
        assert_eq!(e.closed_at_ms, Some(T0 + HOUR), "closed at the deadline");
        // Applied late, it still closes at the deadline.
        let late = apply(&v, &Action::Expire, T0 + 50 * HOUR).expect("expire");
        assert_eq!(late.closed_at_ms, Some(T0 + HOUR));
    }

    #[test]
    fn confirmed_allows_cancel_and_expires_at_the_end_of_the_window() {
        let c = visit_in(VisitStatus::Confirmed);
        let now = T0 + 3 * HOUR;
        let x = apply(&c, &cancel(), now).expect("cancel");
        assert_eq!(x.status, VisitStatus::Cancelled);
        let msg = conflict_message(apply(&c, &Action::Expire, T0 + 10 * HOUR - 1));
        assert!(msg.contains("confirmed until"), "{msg}");
        let e = apply(&c, &Action::Expire, T0 + 10 * HOUR).expect("expire");
        assert_eq!(e.status, VisitStatus::Expired);
        assert_eq!(e.closed_at_ms, Some(T0 + 10 * HOUR));
        assert_eq!(
            e.pass_code.as_deref(),
            Some("ABCDEFGH"),
            "kept for the record"
        );
    }

    #[test]
    fn confirmed_refuses_confirm_and_refuse_with_the_way_out() {
        let c = visit_in(VisitStatus::Confirmed);
        let now = T0 + 3 * HOUR;
        let msg = conflict_message(apply(&c, &confirm(), now));
        assert!(
            msg.starts_with("cannot confirm visit v00000001: it was already confirmed by r-wang"),
            "{msg}"
        );
        let msg = conflict_message(apply(&c, &refuse(), now));
        assert!(msg.contains("cancel the visit (cancel-visit)"), "{msg}");
    }

    #[test]
    fn final_states_refuse_everything_with_their_reason() {
        let now = T0 + 3 * HOUR;
        let expectations = [
            (VisitStatus::Refused, "it was refused by r-wang"),
            (VisitStatus::Cancelled, "it was cancelled by visitor"),
            (VisitStatus::Expired, "it expired unanswered"),
        ];
        for (status, why) in expectations {
            let v = visit_in(status);
            for action in [confirm(), refuse(), cancel()] {
                let msg = conflict_message(apply(&v, &action, now));
                assert!(
                    msg.starts_with(&format!("cannot {} visit v00000001: {why}", action.verb())),
                    "{status:?} {action:?}: {msg}"
                );
                assert!(msg.contains("register again"), "{msg}");
            }
            let msg = conflict_message(apply(&v, &Action::Expire, now));
            assert!(
                msg.contains(&format!("already {}", status.as_str())),
                "{msg}"
            );
        }
    }

    #[test]
    fn an_expired_pass_says_so() {
        let c = visit_in(VisitStatus::Confirmed);
        let e = apply(&c, &Action::Expire, T0 + 10 * HOUR).expect("expire");
        let msg = conflict_message(apply(&e, &cancel(), T0 + 11 * HOUR));
        assert!(msg.contains("its pass expired at"), "{msg}");
    }

    #[test]
    fn a_visit_past_its_deadline_is_treated_as_expired_before_it_is_written_down() {
        let v = pending();
        let after = T0 + HOUR;
        for action in [confirm(), refuse(), cancel()] {
            let msg = conflict_message(apply(&v, &action, after));
            assert!(msg.contains("it expired unanswered"), "{msg}");
        }
        // A pending visit whose window ends before respond_by expires with the window.
        let mut short = pending();
        short.respond_by_ms = short.to_ms;
        assert_eq!(short.effective(short.to_ms).status, VisitStatus::Expired);
        assert_eq!(
            short.effective(short.to_ms - 1).status,
            VisitStatus::Pending
        );
        let c = visit_in(VisitStatus::Confirmed);
        let msg = conflict_message(apply(&c, &cancel(), T0 + 10 * HOUR));
        assert!(msg.contains("its pass expired"), "{msg}");
    }

    #[test]
    fn the_whole_table() {
        // (from, action) → allowed?
        let now = T0 + 3 * HOUR;
        for status in VisitStatus::ALL {
            let v = visit_in(status);
            for action in [confirm(), refuse(), cancel()] {
                let allowed = matches!(
                    (status, &action),
                    (VisitStatus::Pending, _) | (VisitStatus::Confirmed, Action::Cancel { .. })
                );
                // Pending at now (3h) is past respond_by (1h): use an earlier time.
                let at = if status == VisitStatus::Pending {
                    T0 + 1000
                } else {
                    now
                };
                assert_eq!(
                    apply(&v, &action, at).is_ok(),
                    allowed,
                    "{status:?} + {action:?}"
                );
            }
        }
    }

    #[test]
    fn statuses_serialise_as_in_the_api() {
        crate::tests::assert_api_names(&VisitStatus::ALL, VisitStatus::as_str);
        for status in VisitStatus::ALL {
            assert_eq!(
                status.is_open(),
                matches!(status, VisitStatus::Pending | VisitStatus::Confirmed)
            );
        }
    }
}
