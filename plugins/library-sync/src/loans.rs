//! Loans: borrowing by scanning a book code and a resident card, returns, renewals and
//! overdue detection.
//!
//! A copy's loan life cycle (with [`crate::shelf::Held`]):
//!
//! ```text
//!   on the shelf (slot) ──borrow──▶ on loan ──return {slot}──▶ on the shelf (slot)
//!                                    │  ▲   ──return {}─────▶ not held (handed to staff)
//!                                    └──┘ renew
//! ```
//!
//! Overdue is not a stored state: a loan is overdue when `now_ms` is past its `due_ms`,
//! computed whenever a loan is read. The `sweep-overdue` operation (called by a workflow on
//! a cron schedule) emits `library-sync.overdue` for overdue loans, once per loan and
//! again every `overdue_reminder_days`.

use crate::cards::{self, Card};
use crate::catalogue::{self, LibraryStatus};
use crate::config::Call;
use crate::shelf::{self, Held};
use crate::store::{Store, emit, load, purge_replays, save, scan};
use crate::time::{days_after, fmt_utc};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Emitted by `borrow`.
pub const BORROWED_EVENT: &str = "library-sync.book-borrowed";
/// Emitted by `return`.
pub const RETURNED_EVENT: &str = "library-sync.book-returned";
/// Emitted by `renew`.
pub const RENEWED_EVENT: &str = "library-sync.book-renewed";
/// Emitted by `sweep-overdue`.
pub const OVERDUE_EVENT: &str = "library-sync.overdue";

const LOAN_PREFIX: &str = "loan/";
const SEQ_KEY: &str = "seq/loan";

/// The state key of an open loan.
pub fn loan_key(loan_id: &str) -> String {
    format!("{LOAN_PREFIX}{loan_id}")
}

/// The state key of a returned loan.
pub fn done_key(loan_id: &str) -> String {
    format!("done/{loan_id}")
}

/// One loan (open under `loan/{id}`, returned under `done/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loan {
    /// `L` and eight digits, in the order loans were made.
    pub loan_id: String,
    /// The copy lent.
    pub copy_id: String,
    /// Its title when it was borrowed.
    pub title: String,
    /// The card it was lent to.
    pub card: String,
    /// When it was borrowed.
    pub borrowed_ms: i64,
    /// When it is due back.
    pub due_ms: i64,
    /// How many times it was renewed.
    pub renewals: u32,
    /// When it was returned, once it is.
    pub returned_ms: Option<i64>,
    /// The slot it was returned into, if any.
    pub returned_slot: Option<u32>,
    /// How many overdue notices the sweep sent.
    pub notices: u32,
    /// When the sweep last sent one (cleared by a renewal).
    pub notified_ms: Option<i64>,
}

impl Loan {
    /// Whether the loan is open and past due at `now_ms`.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        self.returned_ms.is_none() && now_ms > self.due_ms
    }
}

/// The open loan `loan_id`; an internal error if it is missing (the records that name an
/// open loan are written together with it).
pub fn require_open(store: &mut impl Store, loan_id: &str) -> Result<Loan, Error> {
    load(store, &loan_key(loan_id))?
        .ok_or_else(|| Error::internal(format!("open loan {loan_id} is missing")))
}

/// A loan as operations answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanView {
    /// The loan.
    pub loan_id: String,
    /// The copy.
    pub copy_id: String,
    /// Its title.
    pub title: String,
    /// The card.
    pub card: String,
    /// When it was borrowed.
    pub borrowed_ms: i64,
    /// When it is due back.
    pub due_ms: i64,
    /// Renewals so far.
    pub renewals: u32,
    /// Renewals still allowed by the community's `max_renewals` (0 once returned).
    pub renewals_left: u32,
    /// Whether it is open and past due now.
    pub overdue: bool,
    /// Whole days past due now, rounded up (0 when not overdue).
    pub days_overdue: u32,
    /// When it was returned; `null` while open.
    pub returned_ms: Option<i64>,
}

impl LoanView {
    /// The view of `loan` at the call's `now_ms`.
    pub fn of(loan: &Loan, call: &Call) -> Self {
        let open = loan.returned_ms.is_none();
        let overdue = loan.is_overdue(call.now_ms);
        Self {
            loan_id: loan.loan_id.clone(),
            copy_id: loan.copy_id.clone(),
            title: loan.title.clone(),
            card: loan.card.clone(),
            borrowed_ms: loan.borrowed_ms,
            due_ms: loan.due_ms,
            renewals: loan.renewals,
            renewals_left: if open {
                call.config.max_renewals.saturating_sub(loan.renewals)
            } else {
                0
            },
            overdue,
            days_overdue: if overdue {
                days_after(loan.due_ms, call.now_ms)
            } else {
                0
            },
            returned_ms: loan.returned_ms,
        }
    }
}

/// The next loan id, from the counter in state.
fn next_loan_id(store: &mut impl Store) -> Result<String, Error> {
    let n = load::<u64>(store, SEQ_KEY)?.unwrap_or(0) + 1;
    save(store, SEQ_KEY, &n)?;
    Ok(format!("L{n:08}"))
}

/// The input of `borrow`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BorrowInput {
    /// The book code scanned.
    pub copy_id: String,
    /// The resident card scanned.
    pub card: String,
}

/// The answer of `borrow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorrowOutput {
    /// The new loan.
    pub loan: LoanView,
    /// The slot the copy is taken from (the shelf opens its door).
    pub slot: u32,
}

#[derive(Debug, Serialize)]
struct BorrowedEvent<'a> {
    loan_id: &'a str,
    copy_id: &'a str,
    title: &'a str,
    card: &'a str,
    slot: u32,
    due_ms: i64,
}

/// `borrow`: lends a copy on the shelf to a card. Refused when the card is unknown
/// (`not_found`) or deactivated, the book code is unknown (`not_found`), the copy is out on
/// loan, not on the shelf or withdrawn by the library, the card has `max_loans` books
/// already, or (with `block_when_overdue`) the card has an overdue book (`conflict`).
pub fn borrow(
    store: &mut impl Store,
    call: &Call,
    input: BorrowInput,
) -> Result<BorrowOutput, Error> {
    let mut card = cards::require_active(store, &input.card)?;
    let record = catalogue::require(store, &input.copy_id)?;
    let what = record.describe();
    let slot = match shelf::load_held(store, &input.copy_id)? {
        Some(Held::OnShelf { slot }) => slot,
        Some(Held::OnLoan {
            loan_id,
            card: holder,
        }) => {
            let loan = require_open(store, &loan_id)?;
            let due = fmt_utc(loan.due_ms);
            return Err(Error::conflict(if holder == input.card {
                format!("{what} is already on loan to this card ({loan_id}, due {due})")
            } else {
                format!(
                    "{what} is out on loan (due {due}): choose another book, or borrow it once \
                     it is returned"
                )
            }));
        }
        None => {
            return Err(Error::conflict(format!(
                "{what} is not on the shelf: it may be at the library or not placed yet; ask \
                 staff"
            )));
        }
    };
    if record.status == LibraryStatus::Withdrawn {
        return Err(Error::conflict(format!(
            "the library withdrew {what}: it cannot be borrowed; staff will take it off the \
             shelf"
        )));
    }
    let limit = call.config.max_loans;
    if card.loans.len() >= limit as usize {
        return Err(Error::conflict(format!(
            "card {:?} already has {} books on loan, the limit of this community (config \
             max_loans = {limit}): return one first",
            input.card,
            card.loans.len()
        )));
    }
    if call.config.block_when_overdue {
        for loan_id in &card.loans {
            let loan = require_open(store, loan_id)?;
            if loan.is_overdue(call.now_ms) {
                return Err(Error::conflict(format!(
                    "card {:?} has an overdue book: {} was due {}; return it before borrowing \
                     another",
                    input.card,
                    catalogue::describe(&loan.copy_id, &loan.title),
                    fmt_utc(loan.due_ms)
                )));
            }
        }
    }

    let loan = Loan {
        loan_id: next_loan_id(store)?,
        copy_id: record.copy_id.clone(),
        title: record.title.clone(),
        card: input.card.clone(),
        borrowed_ms: call.now_ms,
        due_ms: call.now_ms.saturating_add(call.config.loan_ms()),
        renewals: 0,
        returned_ms: None,
        returned_slot: None,
        notices: 0,
        notified_ms: None,
    };
    save(store, &loan_key(&loan.loan_id), &loan)?;
    card.loans.push(loan.loan_id.clone());
    save(store, &cards::key(&card.card), &card)?;
    shelf::free_slot(store, slot)?;
    let held = Held::OnLoan {
        loan_id: loan.loan_id.clone(),
        card: card.card.clone(),
    };
    save(store, &shelf::held_key(&loan.copy_id), &held)?;
    emit(
        store,
        BORROWED_EVENT,
        &BorrowedEvent {
            loan_id: &loan.loan_id,
            copy_id: &loan.copy_id,
            title: &loan.title,
            card: &loan.card,
            slot,
            due_ms: loan.due_ms,
        },
    )?;
    Ok(BorrowOutput {
        loan: LoanView::of(&loan, call),
        slot,
    })
}

/// The input of `return`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnInput {
    /// The book code scanned.
    pub copy_id: String,
    /// The empty slot the copy is put back into; without it, the copy is handed to staff
    /// and is not on the shelf.
    #[serde(default)]
    pub slot: Option<u32>,
}

/// The answer of `return`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnOutput {
    /// The closed loan.
    pub loan: LoanView,
    /// The slot the copy is in now, if it went back on the shelf.
    pub slot: Option<u32>,
    /// Whole days it came back late (0: on time).
    pub days_late: u32,
    /// Whether the library withdrew it (staff must send it back).
    pub withdrawn: bool,
    /// What staff should do next, if anything.
    pub action: Option<String>,
}

#[derive(Debug, Serialize)]
struct ReturnedEvent<'a> {
    loan_id: &'a str,
    copy_id: &'a str,
    title: &'a str,
    card: &'a str,
    slot: Option<u32>,
    days_late: u32,
    withdrawn: bool,
}

/// `return`: closes the open loan of a copy, whoever brings it back (a deactivated card's
/// books are accepted too), and puts the copy into the given empty slot.
pub fn return_copy(
    store: &mut impl Store,
    call: &Call,
    input: ReturnInput,
) -> Result<ReturnOutput, Error> {
    if let Some(slot) = input.slot {
        shelf::check_slot(call.config, slot)?;
    }
    let record = catalogue::require(store, &input.copy_id)?;
    let what = record.describe();
    let loan_id = match shelf::load_held(store, &input.copy_id)? {
        Some(Held::OnLoan { loan_id, .. }) => loan_id,
        Some(Held::OnShelf { slot }) => {
            return Err(Error::conflict(format!(
                "{what} is not on loan: it is on the shelf in slot {slot}"
            )));
        }
        None => {
            return Err(Error::conflict(format!(
                "{what} is not on loan (and not on the shelf): nothing to return"
            )));
        }
    };
    let mut loan = require_open(store, &loan_id)?;
    if let Some(slot) = input.slot {
        shelf::require_free_slot(store, slot)?;
    }
    let mut card: Card = cards::load_card(store, &loan.card)?
        .ok_or_else(|| Error::internal(format!("the card of loan {loan_id} is missing")))?;

    let days_late = days_after(loan.due_ms, call.now_ms);
    loan.returned_ms = Some(call.now_ms);
    loan.returned_slot = input.slot;
    store.delete(&loan_key(&loan_id))?;
    save(store, &done_key(&loan_id), &loan)?;
    card.loans.retain(|l| *l != loan_id);
    save(store, &cards::key(&card.card), &card)?;
    match input.slot {
        Some(slot) => shelf::shelve(store, &loan.copy_id, slot)?,
        None => store.delete(&shelf::held_key(&loan.copy_id))?,
    }
    let withdrawn = record.status == LibraryStatus::Withdrawn;
    let action = withdrawn.then(|| {
        format!(
            "the library withdrew {what}: take it off the shelf and send it back to the library"
        )
    });
    emit(
        store,
        RETURNED_EVENT,
        &ReturnedEvent {
            loan_id: &loan.loan_id,
            copy_id: &loan.copy_id,
            title: &loan.title,
            card: &loan.card,
            slot: input.slot,
            days_late,
            withdrawn,
        },
    )?;
    Ok(ReturnOutput {
        loan: LoanView::of(&loan, call),
        slot: input.slot,
        days_late,
        withdrawn,
        action,
    })
}

/// The input of `renew`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewInput {
    /// The book code.
    pub copy_id: String,
    /// The card it is on loan to.
    pub card: String,
}

#[derive(Debug, Serialize)]
struct RenewedEvent<'a> {
    loan_id: &'a str,
    copy_id: &'a str,
    card: &'a str,
    renewals: u32,
    due_ms: i64,
}

/// `renew`: extends a loan to `loan_days` from now (never earlier than it was due).
/// Refused when the card is unknown or deactivated, the copy is not on loan to that card,
/// the library withdrew the copy, the loan was renewed `max_renewals` times, or it is
/// overdue by more than `renew_overdue_days`.
pub fn renew(store: &mut impl Store, call: &Call, input: RenewInput) -> Result<LoanView, Error> {
    cards::require_active(store, &input.card)?;
    let record = catalogue::require(store, &input.copy_id)?;
    let what = record.describe();
    let loan_id = match shelf::load_held(store, &input.copy_id)? {
        Some(Held::OnLoan { loan_id, card }) if card == input.card => loan_id,
        Some(Held::OnLoan { .. }) => {
            return Err(Error::conflict(format!(
                "{what} is not on loan to card {:?}: only its borrower can renew it",
                input.card
            )));
        }
        Some(Held::OnShelf { slot }) => {
            return Err(Error::conflict(format!(
                "{what} is not on loan: it is on the shelf in slot {slot}"
            )));
        }
        None => {
            return Err(Error::conflict(format!("{what} is not on loan")));
        }
    };
    let mut loan = require_open(store, &loan_id)?;
    if record.status == LibraryStatus::Withdrawn {
        return Err(Error::conflict(format!(
            "the library withdrew {what}: the loan cannot be renewed; return the book by {}",
            fmt_utc(loan.due_ms)
        )));
    }
    let max = call.config.max_renewals;
    if loan.renewals >= max {
        return Err(Error::conflict(format!(
            "loan {loan_id} of {what} was already renewed {} times, the limit of this community \
             (config max_renewals = {max}): return the book",
            loan.renewals
        )));
    }
    let late = days_after(loan.due_ms, call.now_ms);
    let grace = call.config.renew_overdue_days;
    if late > grace {
        return Err(Error::conflict(format!(
            "loan {loan_id} of {what} is {late} days overdue; renewal is allowed up to {grace} \
             days overdue (config renew_overdue_days): return the book"
        )));
    }
    loan.renewals += 1;
    loan.due_ms = loan
        .due_ms
        .max(call.now_ms.saturating_add(call.config.loan_ms()));
    loan.notified_ms = None;
    save(store, &loan_key(&loan_id), &loan)?;
    emit(
        store,
        RENEWED_EVENT,
        &RenewedEvent {
            loan_id: &loan.loan_id,
            copy_id: &loan.copy_id,
            card: &loan.card,
            renewals: loan.renewals,
            due_ms: loan.due_ms,
        },
    )?;
    Ok(LoanView::of(&loan, call))
}

/// How many loans one scan of state reads.
const SCAN_CHUNK: u32 = 200;
/// How many open loans one listing or sweep call reads at most (the call has a CPU
/// deadline); the answer's `next` continues from there.
const SCAN_BUDGET: u32 = 1000;

/// Walks the open loans after `after` in id order, calling `visit` on each until it
/// answers `false` or [`SCAN_BUDGET`] loans were read. Returns how many were read and,
/// when the walk stopped before the last open loan, the id to continue after.
fn walk_open_loans<S: Store>(
    store: &mut S,
    after: Option<&str>,
    mut visit: impl FnMut(&mut S, Loan) -> Result<bool, Error>,
) -> Result<(u32, Option<String>), Error> {
    let mut cursor = after.map(loan_key);
    let mut scanned = 0u32;
    loop {
        let page: Vec<(String, Loan)> = scan(store, LOAN_PREFIX, cursor.as_deref(), SCAN_CHUNK)?;
        let exhausted = page.len() < SCAN_CHUNK as usize;
        for (key, loan) in page {
            scanned += 1;
            let loan_id = loan.loan_id.clone();
            cursor = Some(key);
            let go_on = visit(store, loan)?;
            if !go_on || scanned >= SCAN_BUDGET {
                let more = !store.scan(LOAN_PREFIX, cursor.as_deref(), 1)?.is_empty();
                return Ok((scanned, more.then_some(loan_id)));
            }
        }
        if exhausted {
            return Ok((scanned, None));
        }
    }
}

/// The input of `list-overdue` and `sweep-overdue`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverdueInput {
    /// Continue after this loan id (the `next` of the previous answer).
    #[serde(default)]
    pub after: Option<String>,
    /// At most this many loans listed / notified.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One overdue loan, as `list-overdue` lists it and `library-sync.overdue` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueItem {
    /// The loan.
    pub loan_id: String,
    /// The copy.
    pub copy_id: String,
    /// Its title.
    pub title: String,
    /// The card.
    pub card: String,
    /// The card holder's unit, when registered.
    pub unit: Option<String>,
    /// When it was due.
    pub due_ms: i64,
    /// Whole days past due, rounded up.
    pub days_overdue: u32,
    /// Overdue notices sent so far.
    pub notices: u32,
}

fn unit_of(
    store: &mut impl Store,
    units: &mut BTreeMap<String, Option<String>>,
    card: &str,
) -> Result<Option<String>, Error> {
    if let Some(unit) = units.get(card) {
        return Ok(unit.clone());
    }
    let unit = cards::load_card(store, card)?.and_then(|c| c.unit);
    units.insert(card.to_owned(), unit.clone());
    Ok(unit)
}

fn overdue_item(loan: &Loan, unit: Option<String>, now_ms: i64) -> OverdueItem {
    OverdueItem {
        loan_id: loan.loan_id.clone(),
        copy_id: loan.copy_id.clone(),
        title: loan.title.clone(),
        card: loan.card.clone(),
        unit,
        due_ms: loan.due_ms,
        days_overdue: days_after(loan.due_ms, now_ms),
        notices: loan.notices,
    }
}

/// The answer of `list-overdue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOverdueOutput {
    /// Overdue loans, by loan id (oldest first).
    pub loans: Vec<OverdueItem>,
    /// The loan id to continue after, when there may be more.
    pub next: Option<String>,
}

/// `list-overdue`: the open loans past due now (computed from `now_ms`), a page at a time.
pub fn list_overdue(
    store: &mut impl Store,
    call: &Call,
    input: OverdueInput,
) -> Result<ListOverdueOutput, Error> {
    let limit = input.limit.unwrap_or(50).clamp(1, 100) as usize;
    let mut loans = Vec::new();
    let mut units = BTreeMap::new();
    let (_, next) = walk_open_loans(store, input.after.as_deref(), |store, loan| {
        if loan.is_overdue(call.now_ms) {
            let unit = unit_of(store, &mut units, &loan.card)?;
            loans.push(overdue_item(&loan, unit, call.now_ms));
        }
        Ok(loans.len() < limit)
    })?;
    Ok(ListOverdueOutput { loans, next })
}

/// The answer of `sweep-overdue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepOutput {
    /// `library-sync.overdue` events emitted.
    pub notified: u32,
    /// Open loans looked at.
    pub scanned: u32,
    /// The loan id to continue after (call again with `after`), when the sweep stopped
    /// before the last open loan.
    pub next: Option<String>,
    /// Replay records of idempotency keys purged (older than `replay_retention_days`).
    pub replays_purged: u32,
}

/// How many replay records one `sweep-overdue` call looks at, to purge the old ones.
pub const REPLAY_PURGE_BUDGET: u32 = 500;

/// `sweep-overdue`: emits `library-sync.overdue` for each open loan past due that has not
/// been notified yet, or was last notified `overdue_reminder_days` ago or more (when that
/// is not 0). Called by a workflow on a cron schedule; at most `limit` (≤ 50) events per
/// call. Each call also purges a slice of replay records older than
/// `replay_retention_days` (see [`crate::store::purge_replays`]).
pub fn sweep_overdue(
    store: &mut impl Store,
    call: &Call,
    input: OverdueInput,
) -> Result<SweepOutput, Error> {
    let limit = input.limit.unwrap_or(50).clamp(1, 50);
    let reminder_ms = i64::from(call.config.overdue_reminder_days) * crate::config::DAY_MS;
    let mut notified = 0u32;
    let mut units = BTreeMap::new();
    let (scanned, next) = walk_open_loans(store, input.after.as_deref(), |store, mut loan| {
        if !loan.is_overdue(call.now_ms) {
            return Ok(true);
        }
        let due_for_notice = match loan.notified_ms {
            None => true,
            Some(at) => reminder_ms > 0 && call.now_ms.saturating_sub(at) >= reminder_ms,
        };
        if due_for_notice {
            loan.notices += 1;
            loan.notified_ms = Some(call.now_ms);
            save(store, &loan_key(&loan.loan_id), &loan)?;
            let unit = unit_of(store, &mut units, &loan.card)?;
            emit(
                store,
                OVERDUE_EVENT,
                &overdue_item(&loan, unit, call.now_ms),
            )?;
            notified += 1;
        }
        Ok(notified < limit)
    })?;
    let replays_purged = purge_replays(
        store,
        call.now_ms,
        call.config.replay_retention_ms(),
        REPLAY_PURGE_BUDGET,
    )?;
    Ok(SweepOutput {
        notified,
        scanned,
        next,
        replays_purged,
    })
}
