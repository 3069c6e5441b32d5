//! Incremental catalogue sync with the city library.
//!
//! The library publishes its catalogue as a change feed read page by page: a page is
//! fetched *from* a cursor (`null`: from the beginning) and says which cursor comes next.
//! The shelf keeps the cursor it has reached. [`merge`] is the whole decision, as a pure
//! function of the shelf's cursor, the last page it applied, the page, and what the shelf
//! knows locally about the copies the page names; [`sync`] only loads that, calls it, and
//! writes what it decided.
//!
//! # Rules
//!
//! - **Cursors.** A page is applied only if it was fetched from the shelf's cursor; the
//!   cursor then becomes the page's `next_cursor`. A page fetched from any other cursor is
//!   refused (`conflict`) with the cursor to fetch from, except:
//! - **Replays.** The same page as the last one applied (same cursors, same changes), sent
//!   again, changes nothing and answers the first result with `replayed: true`.
//! - **Revisions.** Each change carries the library's revision of the record; a change
//!   whose revision is not above the one the shelf holds is old news and is skipped
//!   (counted in `skipped`). So re-reading the feed from the beginning (after
//!   `reset-sync`) never rolls a record back.
//! - **Titles.** The library is the source of truth for titles: every newer change
//!   replaces the record (title, author, ISBN, status, location), whatever the shelf holds.
//! - **Holdings.** The shelf is the source of truth for what is physically on it: a sync
//!   never moves, removes or lends a copy. When the library's new record contradicts what
//!   the shelf holds, the change is still applied and a conflict is reported (in the
//!   answer and as a `library-sync.sync-conflict` event) for staff to act on:
//!   - `withdrawn_on_shelf`: the library withdrew a copy that sits in a slot. It can no
//!     longer be borrowed; staff take it off the shelf and send it back.
//!   - `withdrawn_on_loan`: the library withdrew a copy that is on loan. The loan runs
//!     on but cannot be renewed; when the copy comes back, staff send it back.
//!   - `elsewhere_on_shelf` / `elsewhere_on_loan`: the library says the copy is elsewhere
//!     while the shelf holds it (or lent it). The shelf keeps it: on the shelf it stays
//!     borrowable, on loan the loan runs on; staff check the copy and ask the library to
//!     correct its record.
//!
//!   A conflict is reported when a record *becomes* withdrawn, or becomes elsewhere (or
//!   moves to another location), not again for every later revision that keeps it so.
//!   Several changes of one copy in a page are applied in order, but the conflict is
//!   judged once, between the copy's record before the page and its final record in the
//!   page: a copy withdrawn and active again within one page reports nothing.

use crate::catalogue::{self, CatalogueRecord, LibraryStatus};
use crate::config::Call;
use crate::shelf::{self, Held};
use crate::store::{Store, emit, fingerprint, load, save};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state key of [`SyncState`].
pub const STATE_KEY: &str = "sync";

/// The event emitted for each conflict.
pub const CONFLICT_EVENT: &str = "library-sync.sync-conflict";

/// One page of the library's change feed: the input of `sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// The cursor the page was fetched from; `null` for the beginning of the feed.
    pub cursor: Option<String>,
    /// The changes, oldest first.
    pub changes: Vec<Change>,
    /// The cursor to fetch the next page from.
    pub next_cursor: String,
    /// Whether the library has more changes after this page.
    #[serde(default)]
    pub has_more: bool,
}

/// One change: the library's full, current record of one copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The book code of the copy.
    pub copy_id: String,
    /// The library's revision of the record (higher is newer).
    pub revision: u64,
    /// The copy's status at the library.
    pub status: LibraryStatus,
    /// The title.
    pub title: String,
    /// The author.
    #[serde(default)]
    pub author: Option<String>,
    /// The ISBN.
    #[serde(default)]
    pub isbn: Option<String>,
    /// Where the library places the copy (for `elsewhere`).
    #[serde(default)]
    pub location: Option<String>,
}

impl Change {
    fn record(&self) -> CatalogueRecord {
        CatalogueRecord {
            copy_id: self.copy_id.clone(),
            title: self.title.clone(),
            author: self.author.clone(),
            isbn: self.isbn.clone(),
            status: self.status,
            location: self.location.clone(),
            revision: self.revision,
        }
    }
}

/// What the shelf knows locally about one copy a page names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalCopy {
    /// The catalogue record applied so far, if any.
    pub record: Option<CatalogueRecord>,
    /// Where the shelf holds the copy; `None` when it does not.
    pub held: Option<Held>,
}

/// The kind of disagreement between the library and the shelf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// The library withdrew a copy that sits on the shelf.
    WithdrawnOnShelf,
    /// The library withdrew a copy that is on loan from the shelf.
    WithdrawnOnLoan,
    /// The library says a copy is elsewhere while it sits on the shelf.
    ElsewhereOnShelf,
    /// The library says a copy is elsewhere while it is on loan from the shelf.
    ElsewhereOnLoan,
}

/// One disagreement found while applying a page, with what staff should do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Which rule.
    pub rule: ConflictRule,
    /// The copy.
    pub copy_id: String,
    /// Its title (as the library now gives it).
    pub title: String,
    /// The slot it sits in, for the `*_on_shelf` rules.
    pub slot: Option<u32>,
    /// The loan it is on, for the `*_on_loan` rules.
    pub loan_id: Option<String>,
    /// Where the library says it is, for the `elsewhere_*` rules (when it says).
    pub location: Option<String>,
    /// What happened and what to do, for staff.
    pub message: String,
}

/// The result of applying one page, as kept for replays and `sync-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSummary {
    /// The cursor the page was fetched from.
    pub from_cursor: Option<String>,
    /// The cursor after the page (its `next_cursor`).
    pub cursor: String,
    /// A fingerprint of the page, to recognise a replay.
    pub digest: String,
    /// Changes applied.
    pub applied: u32,
    /// Changes skipped as old news.
    pub skipped: u32,
    /// The conflicts reported.
    pub conflicts: Vec<Conflict>,
    /// The page's `has_more`.
    pub has_more: bool,
    /// When it was applied.
    pub synced_ms: i64,
}

/// The sync state of the shelf (under [`STATE_KEY`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The cursor reached; `None` before the first page (or after `reset-sync`).
    pub cursor: Option<String>,
    /// The last page applied.
    pub last: Option<PageSummary>,
    /// How many pages have been applied in all.
    pub pages_applied: u64,
}

/// What [`merge`] decided to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The catalogue records to store: the final record of each copy the page changed, in
    /// the order the page first changed them.
    pub updates: Vec<CatalogueRecord>,
    /// The shelf's new cursor.
    pub cursor: String,
    /// The conflicts to report, one at most per copy, judged on its final record in the
    /// page, in the order the page first changed the copies.
    pub conflicts: Vec<Conflict>,
    /// Changes applied.
    pub applied: u32,
    /// Changes skipped as old news.
    pub skipped: u32,
    /// The page's fingerprint.
    pub digest: String,
}

/// What [`merge`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// Apply the page.
    Apply(MergeOutcome),
    /// The page is the last page applied, sent again: change nothing.
    Replay,
}

/// Why [`merge`] refused a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// The page was fetched from another cursor than the shelf's.
    StaleCursor {
        /// The cursor the page was fetched from.
        page: Option<String>,
        /// The shelf's cursor.
        current: Option<String>,
    },
}

impl From<MergeError> for Error {
    fn from(e: MergeError) -> Self {
        match e {
            MergeError::StaleCursor { page, current } => {
                let advice = match &current {
                    Some(c) => format!(
                        "fetch the library's changes from cursor {c:?} and sync that page \
                         (or call reset-sync to read the whole feed again)"
                    ),
                    None => "the shelf has not synced yet: fetch the library's changes from \
                             the beginning (cursor null)"
                        .to_owned(),
                };
                Error::conflict(format!(
                    "this page was fetched from cursor {} but the shelf's catalogue is at \
                     cursor {}: {advice}",
                    fmt_cursor(page.as_deref()),
                    fmt_cursor(current.as_deref()),
                ))
            }
        }
    }
}

fn fmt_cursor(cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("{c:?}"),
        None => "null (the beginning)".to_owned(),
    }
}

/// The fingerprint of a page (its cursors and changes, canonically serialised).
pub fn page_digest(page: &Page) -> String {
    fingerprint(&serde_json::to_string(page).unwrap_or_default())
}

/// Decides what applying `page` does, given the shelf's cursor `current`, the summary of
/// the last page applied, and `local`: what the shelf knows about the copies the page
/// names (a copy missing from `local` is one the shelf knows nothing about). Pure: the same
/// arguments always give the same answer, and nothing is read or written.
pub fn merge(
    current: Option<&str>,
    last: Option<&PageSummary>,
    page: &Page,
    local: &BTreeMap<String, LocalCopy>,
) -> Result<Merge, MergeError> {
    let digest = page_digest(page);
    if let Some(last) = last
        && current == Some(last.cursor.as_str())
        && last.from_cursor == page.cursor
        && last.cursor == page.next_cursor
        && last.digest == digest
    {
        return Ok(Merge::Replay);
    }
    if page.cursor.as_deref() != current {
        return Err(MergeError::StaleCursor {
            page: page.cursor.clone(),
            current: current.map(str::to_owned),
        });
    }

    // The records as they stand while the page is applied, change by change.
    let mut working: BTreeMap<&str, CatalogueRecord> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut conflicts = Vec::new();
    let (mut applied, mut skipped) = (0u32, 0u32);
    for change in &page.changes {
        let id = change.copy_id.as_str();
        let known = local.get(id);
        let old = working
            .get(id)
            .or_else(|| known.and_then(|k| k.record.as_ref()));
        if old.is_some_and(|old| change.revision <= old.revision) {
            skipped += 1;
            continue;
        }
        if !working.contains_key(id) {
            order.push(id);
        }
        working.insert(id, change.record());
        applied += 1;
    }
    // Conflicts compare each copy's record before the page with its final record in the
    // page: a copy withdrawn and active again within one page ends active, no conflict.
    let mut updates = Vec::with_capacity(order.len());
    for id in order {
        let Some(new) = working.remove(id) else {
            continue;
        };
        let known = local.get(id);
        let before = known.and_then(|k| k.record.as_ref());
        if let Some(held) = known.and_then(|k| k.held.as_ref())
            && let Some(conflict) = conflict_for(before, &new, held)
        {
            conflicts.push(conflict);
        }
        updates.push(new);
    }
    Ok(Merge::Apply(MergeOutcome {
        updates,
        cursor: page.next_cursor.clone(),
        conflicts,
        applied,
        skipped,
        digest,
    }))
}

/// The conflict, if any, of replacing `old` by `new` for a copy the shelf holds.
fn conflict_for(
    old: Option<&CatalogueRecord>,
    new: &CatalogueRecord,
    held: &Held,
) -> Option<Conflict> {
    let was = old.map(|o| o.status);
    let (slot, loan_id) = match held {
        Held::OnShelf { slot } => (Some(*slot), None),
        Held::OnLoan { loan_id, .. } => (None, Some(loan_id.clone())),
    };
    let what = new.describe();
    let (rule, message) = match (new.status, held) {
        (LibraryStatus::Withdrawn, _) if was == Some(LibraryStatus::Withdrawn) => return None,
        (LibraryStatus::Withdrawn, Held::OnShelf { slot }) => (
            ConflictRule::WithdrawnOnShelf,
            format!(
                "the library withdrew {what} but it sits in slot {slot} of the shelf: it can no \
                 longer be borrowed; take it off the shelf (remove) and send it back to the \
                 library"
            ),
        ),
        (LibraryStatus::Withdrawn, Held::OnLoan { loan_id, card }) => (
            ConflictRule::WithdrawnOnLoan,
            format!(
                "the library withdrew {what} while it is on loan {loan_id} to card {card:?}: \
                 the loan cannot be renewed; when the book comes back, take it off the shelf \
                 and send it back to the library"
            ),
        ),
        (LibraryStatus::Elsewhere, _)
            if was == Some(LibraryStatus::Elsewhere)
                && old.is_some_and(|o| o.location == new.location) =>
        {
            return None;
        }
        (LibraryStatus::Elsewhere, held) => {
            let place = match &new.location {
                Some(location) => format!("at {location:?}"),
                None => "elsewhere".to_owned(),
            };
            let (rule, here, keeps) = match held {
                Held::OnShelf { slot } => (
                    ConflictRule::ElsewhereOnShelf,
                    format!("it sits in slot {slot} of the shelf"),
                    "the shelf keeps it and it stays borrowable",
                ),
                Held::OnLoan { loan_id, .. } => (
                    ConflictRule::ElsewhereOnLoan,
                    format!("the shelf lent it (loan {loan_id})"),
                    "the loan runs on and the copy comes back to the shelf",
                ),
            };
            (
                rule,
                format!(
                    "the library says {what} is {place}, but {here}: {keeps}; check the copy and \
                     ask the library to correct its record"
                ),
            )
        }
        (LibraryStatus::Active, _) => return None,
    };
    let location = match rule {
        ConflictRule::ElsewhereOnShelf | ConflictRule::ElsewhereOnLoan => new.location.clone(),
        ConflictRule::WithdrawnOnShelf | ConflictRule::WithdrawnOnLoan => None,
    };
    Some(Conflict {
        rule,
        copy_id: new.copy_id.clone(),
        title: new.title.clone(),
        slot,
        loan_id,
        location,
        message,
    })
}

/// The answer of `sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutput {
    /// The cursor the page was fetched from.
    pub from_cursor: Option<String>,
    /// The shelf's cursor now: fetch the next page from here.
    pub cursor: String,
    /// Changes applied.
    pub applied: u32,
    /// Changes skipped as old news.
    pub skipped: u32,
    /// Disagreements between the library and the shelf, for staff.
    pub conflicts: Vec<Conflict>,
    /// The page's `has_more`: fetch and sync the next page now.
    pub has_more: bool,
    /// Whether this was the last page sent again (nothing changed).
    pub replayed: bool,
}

impl SyncOutput {
    fn of(summary: &PageSummary, replayed: bool) -> Self {
        Self {
            from_cursor: summary.from_cursor.clone(),
            cursor: summary.cursor.clone(),
            applied: summary.applied,
            skipped: summary.skipped,
            conflicts: summary.conflicts.clone(),
            has_more: summary.has_more,
            replayed,
        }
    }
}

/// The payload of a `library-sync.sync-conflict` event.
#[derive(Debug, Serialize)]
struct ConflictEvent<'a> {
    #[serde(flatten)]
    conflict: &'a Conflict,
    /// The cursor after the page that raised it.
    cursor: &'a str,
}

/// `sync`: applies one page of the library's change feed (see the module rules).
/// The cursor the shelf has reached (`None`: the beginning of the feed).
pub fn current_cursor(store: &mut impl Store) -> Result<Option<String>, Error> {
    Ok(load::<SyncState>(store, STATE_KEY)?.and_then(|s| s.cursor))
}

pub fn sync(store: &mut impl Store, call: &Call, page: Page) -> Result<SyncOutput, Error> {
    let mut state: SyncState = load(store, STATE_KEY)?.unwrap_or_default();
    let mut local: BTreeMap<String, LocalCopy> = BTreeMap::new();
    for change in &page.changes {
        if !local.contains_key(&change.copy_id) {
            let known = LocalCopy {
                record: catalogue::load_record(store, &change.copy_id)?,
                held: shelf::load_held(store, &change.copy_id)?,
            };
            local.insert(change.copy_id.clone(), known);
        }
    }
    let outcome = match merge(state.cursor.as_deref(), state.last.as_ref(), &page, &local)? {
        Merge::Replay => {
            let last = state
                .last
                .as_ref()
                .ok_or_else(|| Error::internal("a replay without a last page"))?;
            return Ok(SyncOutput::of(last, true));
        }
        Merge::Apply(outcome) => outcome,
    };
    for record in &outcome.updates {
        save(store, &catalogue::key(&record.copy_id), record)?;
    }
    for conflict in &outcome.conflicts {
        let event = ConflictEvent {
            conflict,
            cursor: &outcome.cursor,
        };
        emit(store, CONFLICT_EVENT, &event)?;
    }
    let summary = PageSummary {
        from_cursor: page.cursor,
        cursor: outcome.cursor.clone(),
        digest: outcome.digest,
        applied: outcome.applied,
        skipped: outcome.skipped,
        conflicts: outcome.conflicts,
        has_more: page.has_more,
        synced_ms: call.now_ms,
    };
    let output = SyncOutput::of(&summary, false);
    state.cursor = Some(outcome.cursor);
    state.last = Some(summary);
    state.pages_applied += 1;
    save(store, STATE_KEY, &state)?;
    Ok(output)
}

/// The input of `sync-status` and `reset-sync` (nothing).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

/// The answer of `sync-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusOutput {
    /// The cursor to fetch the next page from; `null`: from the beginning.
    pub cursor: Option<String>,
    /// Pages applied in all.
    pub pages_applied: u64,
    /// When the last page was applied.
    pub last_synced_ms: Option<i64>,
    /// The result of the last page applied.
    pub last_page: Option<SyncOutput>,
}

/// `sync-status`: where the sync stands.
pub fn status(store: &mut impl Store, _input: NoInput) -> Result<StatusOutput, Error> {
    let state: SyncState = load(store, STATE_KEY)?.unwrap_or_default();
    Ok(StatusOutput {
        cursor: state.cursor,
        pages_applied: state.pages_applied,
        last_synced_ms: state.last.as_ref().map(|l| l.synced_ms),
        last_page: state.last.as_ref().map(|l| SyncOutput::of(l, false)),
    })
}

/// The answer of `reset-sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResetOutput {
    /// The cursor before the reset.
    pub previous_cursor: Option<String>,
    /// Always `null`: the next page is fetched from the beginning.
    pub cursor: Option<String>,
}

/// `reset-sync`: forgets the cursor, so that the next page is read from the beginning of
/// the feed (after the library reset its feed, or to check everything again). The
/// catalogue is kept: old changes are skipped by revision.
pub fn reset(store: &mut impl Store, _input: NoInput) -> Result<ResetOutput, Error> {
    let mut state: SyncState = load(store, STATE_KEY)?.unwrap_or_default();
    let previous_cursor = state.cursor.take();
    state.last = None;
    save(store, STATE_KEY, &state)?;
    Ok(ResetOutput {
        previous_cursor,
        cursor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use courtyard_sdk::testing::MemoryStore;
    use serde_json::json;

    fn change(copy_id: &str, revision: u64, status: LibraryStatus) -> Change {
        Change {
            copy_id: copy_id.into(),
            revision,
            status,
            title: format!("Title of {copy_id}"),
            author: Some("Author".into()),
            isbn: None,
            location: None,
        }
    }

    fn at(mut c: Change, location: &str) -> Change {
        c.location = Some(location.into());
        c
    }

    fn page(cursor: Option<&str>, next: &str, changes: Vec<Change>) -> Page {
        Page {
            cursor: cursor.map(str::to_owned),
            changes,
            next_cursor: next.into(),
            has_more: false,
        }
    }

    fn record(copy_id: &str, revision: u64, status: LibraryStatus) -> CatalogueRecord {
        change(copy_id, revision, status).record()
    }

    fn local(
        entries: Vec<(&str, Option<CatalogueRecord>, Option<Held>)>,
    ) -> BTreeMap<String, LocalCopy> {
        entries
            .into_iter()
            .map(|(id, record, held)| (id.to_owned(), LocalCopy { record, held }))
            .collect()
    }

    fn on_shelf(slot: u32) -> Option<Held> {
        Some(Held::OnShelf { slot })
    }

    fn on_loan(loan_id: &str) -> Option<Held> {
        Some(Held::OnLoan {
            loan_id: loan_id.into(),
            card: "RC-1".into(),
        })
    }

    fn applied(result: Result<Merge, MergeError>) -> MergeOutcome {
        match result {
            Ok(Merge::Apply(outcome)) => outcome,
            other => panic!("expected Apply, got {other:?}"),
        }
    }

    fn summary_of(p: &Page, outcome: &MergeOutcome) -> PageSummary {
        PageSummary {
            from_cursor: p.cursor.clone(),
            cursor: outcome.cursor.clone(),
            digest: outcome.digest.clone(),
            applied: outcome.applied,
            skipped: outcome.skipped,
            conflicts: outcome.conflicts.clone(),
            has_more: p.has_more,
            synced_ms: 0,
        }
    }

    use LibraryStatus::{Active, Elsewhere, Withdrawn};

    // ---- the pure merge ----

    #[test]
    fn a_first_page_from_the_beginning_applies_everything() {
        let p = page(
            None,
            "c1",
            vec![
                change("A", 1, Active),
                change("B", 4, Elsewhere),
                change("C", 2, Withdrawn),
            ],
        );
        let out = applied(merge(None, None, &p, &BTreeMap::new()));
        assert_eq!(out.cursor, "c1");
        assert_eq!((out.applied, out.skipped), (3, 0));
        assert_eq!(
            out.updates,
            vec![
                record("A", 1, Active),
                record("B", 4, Elsewhere),
                record("C", 2, Withdrawn)
            ]
        );
        assert!(out.conflicts.is_empty());
        assert_eq!(out.digest, page_digest(&p));
    }

    #[test]
    fn an_empty_page_only_moves_the_cursor() {
        let out = applied(merge(
            Some("c1"),
            None,
            &page(Some("c1"), "c2", vec![]),
            &BTreeMap::new(),
        ));
        assert_eq!(out.cursor, "c2");
        assert!(out.updates.is_empty() && out.conflicts.is_empty());
        assert_eq!((out.applied, out.skipped), (0, 0));
    }

    #[test]
    fn a_page_from_another_cursor_is_refused() {
        for (current, from) in [
            (Some("c2"), Some("c1")),
            (Some("c1"), Some("c2")),
            (Some("c1"), None),
            (None, Some("c1")),
        ] {
            let p = page(from, "c9", vec![change("A", 1, Active)]);
            assert_eq!(
                merge(current, None, &p, &BTreeMap::new()),
                Err(MergeError::StaleCursor {
                    page: from.map(str::to_owned),
                    current: current.map(str::to_owned),
                }),
                "{current:?} {from:?}"
            );
        }
    }

    #[test]
    fn stale_cursor_messages_say_where_to_fetch_from() {
        let err: Error = MergeError::StaleCursor {
            page: Some("c1".into()),
            current: Some("c2".into()),
        }
        .into();
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("\"c1\"") && m.contains("from cursor \"c2\"")),
            "{err}"
        );
        let err: Error = MergeError::StaleCursor {
            page: Some("c1".into()),
            current: None,
        }
        .into();
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("has not synced yet") && m.contains("cursor null")),
            "{err}"
        );
        let err: Error = MergeError::StaleCursor {
            page: None,
            current: Some("c2".into()),
        }
        .into();
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("null (the beginning)") && m.contains("reset-sync")),
            "{err}"
        );
    }

    #[test]
    fn the_last_page_sent_again_is_a_replay() {
        let p = page(Some("c1"), "c2", vec![change("A", 1, Active)]);
        let out = applied(merge(Some("c1"), None, &p, &BTreeMap::new()));
        let last = summary_of(&p, &out);
        // The shelf is now at c2; the same page again is a replay, whatever `local` says.
        let now_local = local(vec![("A", Some(record("A", 1, Active)), None)]);
        assert_eq!(
            merge(Some("c2"), Some(&last), &p, &now_local),
            Ok(Merge::Replay)
        );
        // The same cursors with different changes are not a replay: a stale cursor.
        let other = page(Some("c1"), "c2", vec![change("A", 2, Active)]);
        assert!(matches!(
            merge(Some("c2"), Some(&last), &other, &now_local),
            Err(MergeError::StaleCursor { .. })
        ));
        // An older page than the last one is stale too.
        let older = page(Some("c0"), "c1", vec![]);
        assert!(matches!(
            merge(Some("c2"), Some(&last), &older, &now_local),
            Err(MergeError::StaleCursor { .. })
        ));
        // After a reset (no cursor, no last page) the same page is simply stale.
        assert!(matches!(
            merge(None, None, &p, &now_local),
            Err(MergeError::StaleCursor { .. })
        ));
    }

    #[test]
    fn a_page_that_does_not_move_the_cursor_applies_again_harmlessly() {
        // The library answered "nothing new" with next_cursor == cursor.
        let p = page(Some("c1"), "c1", vec![change("A", 3, Active)]);
        let known = local(vec![("A", Some(record("A", 3, Active)), None)]);
        let out = applied(merge(Some("c1"), None, &p, &known));
        assert_eq!((out.applied, out.skipped), (0, 1));
        assert!(out.updates.is_empty());
    }

    #[test]
    fn old_revisions_are_skipped_and_newer_ones_replace() {
        let known = local(vec![
            ("A", Some(record("A", 5, Active)), None),
            ("B", Some(record("B", 5, Active)), None),
        ]);
        let mut newer = change("B", 6, Active);
        newer.title = "New title".into();
        let p = page(
            Some("c"),
            "d",
            vec![
                change("A", 4, Withdrawn),
                change("A", 5, Withdrawn),
                newer.clone(),
            ],
        );
        let out = applied(merge(Some("c"), None, &p, &known));
        assert_eq!((out.applied, out.skipped), (1, 2));
        assert_eq!(out.updates, vec![newer.record()]);
    }

    #[test]
    fn several_changes_of_one_copy_in_a_page_apply_in_order() {
        let p = page(
            None,
            "c1",
            vec![
                change("A", 1, Active),
                change("B", 1, Active),
                change("A", 3, Active),
                change("A", 2, Withdrawn), // older than the revision 3 just applied
            ],
        );
        let out = applied(merge(None, None, &p, &BTreeMap::new()));
        assert_eq!((out.applied, out.skipped), (3, 1));
        assert_eq!(
            out.updates,
            vec![record("A", 3, Active), record("B", 1, Active)]
        );
    }

    /// Reviewer's finding: conflicts were computed for every intermediate change. A copy
    /// on the shelf withdrawn at revision 2 and active again at revision 3 in the same page
    /// ends active: no conflict.
    #[test]
    fn conflicts_are_judged_on_the_final_record_of_a_copy_in_the_page() {
        let known = local(vec![("A", Some(record("A", 1, Active)), on_shelf(1))]);
        let p = page(
            None,
            "c1",
            vec![change("A", 2, Withdrawn), change("A", 3, Active)],
        );
        let out = applied(merge(None, None, &p, &known));
        assert_eq!(out.updates, vec![record("A", 3, Active)]);
        assert_eq!(out.applied, 2);
        assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
        // Elsewhere and back at the same revision order: nothing either.
        let p = page(
            None,
            "c1",
            vec![at(change("A", 2, Elsewhere), "X"), change("A", 3, Active)],
        );
        assert!(applied(merge(None, None, &p, &known)).conflicts.is_empty());
        // Withdrawn, then retitled while withdrawn: one conflict, with the final title.
        let mut retitled = change("A", 3, Withdrawn);
        retitled.title = "Retitled".into();
        let p = page(None, "c1", vec![change("A", 2, Withdrawn), retitled]);
        let out = applied(merge(None, None, &p, &known));
        assert_eq!(out.conflicts.len(), 1);
        assert_eq!(out.conflicts[0].rule, ConflictRule::WithdrawnOnShelf);
        assert_eq!(out.conflicts[0].title, "Retitled");
    }

    #[test]
    fn withdrawing_a_copy_the_shelf_does_not_hold_is_no_conflict() {
        let known = local(vec![("A", Some(record("A", 1, Active)), None)]);
        let p = page(
            None,
            "c1",
            vec![change("A", 2, Withdrawn), change("N", 1, Withdrawn)],
        );
        let out = applied(merge(None, None, &p, &known));
        assert!(out.conflicts.is_empty());
        assert_eq!(
            out.updates,
            vec![record("A", 2, Withdrawn), record("N", 1, Withdrawn)]
        );
    }

    #[test]
    fn withdrawing_a_held_copy_applies_and_reports() {
        // Where the shelf holds the copy, the rule, (slot, loan, location), and what the
        // message must mention.
        let cases = [
            (
                on_shelf(7),
                ConflictRule::WithdrawnOnShelf,
                (Some(7), None, None),
                ["slot 7", "send it back"],
            ),
            (
                on_loan("L00000009"),
                ConflictRule::WithdrawnOnLoan,
                (None, Some("L00000009"), None),
                ["cannot be renewed", "RC-1"],
            ),
        ];
        for (held, rule, (slot, loan_id, location), parts) in cases {
            let known = local(vec![("A", Some(record("A", 1, Active)), held)]);
            let out = applied(merge(
                None,
                None,
                &page(None, "c1", vec![change("A", 2, Withdrawn)]),
                &known,
            ));
            assert_eq!(out.updates, vec![record("A", 2, Withdrawn)], "{rule:?}");
            assert_eq!(out.conflicts.len(), 1, "{rule:?}");
            let c = &out.conflicts[0];
            assert_eq!(c.rule, rule);
            assert_eq!(
                (c.slot, c.loan_id.as_deref(), c.location.as_deref()),
                (slot, loan_id, location),
                "{rule:?}"
            );
            for part in parts {
                assert!(c.message.contains(part), "{rule:?}: {}", c.message);
            }
        }
    }

    #[test]
    fn elsewhere_while_held_applies_and_reports_with_the_location() {
        let known = local(vec![
            ("A", Some(record("A", 1, Active)), on_shelf(3)),
            ("B", Some(record("B", 1, Active)), on_loan("L00000002")),
        ]);
        let p = page(
            None,
            "c1",
            vec![
                at(change("A", 2, Elsewhere), "Central branch"),
                change("B", 2, Elsewhere),
            ],
        );
        let out = applied(merge(None, None, &p, &known));
        assert_eq!(out.conflicts.len(), 2);
        let (a, b) = (&out.conflicts[0], &out.conflicts[1]);
        assert_eq!(a.rule, ConflictRule::ElsewhereOnShelf);
        assert_eq!(
            (a.slot, a.location.as_deref()),
            (Some(3), Some("Central branch"))
        );
        assert!(
            a.message.contains("at \"Central branch\"") && a.message.contains("slot 3"),
            "{}",
            a.message
        );
        assert!(a.message.contains("stays borrowable"), "{}", a.message);
        assert_eq!(b.rule, ConflictRule::ElsewhereOnLoan);
        assert_eq!(
            (b.loan_id.as_deref(), b.location.as_deref()),
            (Some("L00000002"), None)
        );
        assert!(
            b.message.contains("is elsewhere") && b.message.contains("L00000002"),
            "{}",
            b.message
        );
        assert!(b.message.contains("the loan runs on"), "{}", b.message);
    }

    #[test]
    fn a_conflict_is_reported_on_the_transition_only() {
        let held_withdrawn = local(vec![("A", Some(record("A", 2, Withdrawn)), on_shelf(1))]);
        let mut retitled = change("A", 3, Withdrawn);
        retitled.title = "Retitled".into();
        let out = applied(merge(
            None,
            None,
            &page(None, "c", vec![retitled]),
            &held_withdrawn,
        ));
        assert!(out.conflicts.is_empty());
        assert_eq!(out.applied, 1);

        let held_elsewhere = local(vec![(
            "A",
            Some(at(change("A", 2, Elsewhere), "X").record()),
            on_shelf(1),
        )]);
        // Same location: nothing new to report.
        let same = applied(merge(
            None,
            None,
            &page(None, "c", vec![at(change("A", 3, Elsewhere), "X")]),
            &held_elsewhere,
        ));
        assert!(same.conflicts.is_empty());
        // Another location: reported again.
        let moved = applied(merge(
            None,
            None,
            &page(None, "c", vec![at(change("A", 3, Elsewhere), "Y")]),
            &held_elsewhere,
        ));
        assert_eq!(moved.conflicts.len(), 1);
        // Elsewhere → withdrawn is a new disagreement.
        let gone = applied(merge(
            None,
            None,
            &page(None, "c", vec![change("A", 3, Withdrawn)]),
            &held_elsewhere,
        ));
        assert_eq!(gone.conflicts[0].rule, ConflictRule::WithdrawnOnShelf);
        // Withdrawn → active → withdrawn in one page: the page ends as the record was
        // before it (withdrawn, already reported), so nothing new to report.
        let flip = applied(merge(
            None,
            None,
            &page(
                None,
                "c",
                vec![change("A", 3, Active), change("A", 4, Withdrawn)],
            ),
            &held_withdrawn,
        ));
        assert!(flip.conflicts.is_empty());
        assert_eq!(flip.updates, vec![record("A", 4, Withdrawn)]);
    }

    #[test]
    fn active_and_metadata_changes_of_held_copies_are_no_conflict() {
        let known = local(vec![
            ("A", Some(record("A", 1, Withdrawn)), on_shelf(1)),
            ("B", Some(record("B", 1, Active)), on_loan("L1")),
            ("C", None, on_shelf(2)),
        ]);
        let mut b = change("B", 2, Active);
        b.isbn = Some("9787020002207".into());
        let p = page(
            None,
            "c",
            vec![change("A", 2, Active), b, change("C", 1, Active)],
        );
        let out = applied(merge(None, None, &p, &known));
        assert!(out.conflicts.is_empty());
        assert_eq!(out.applied, 3);
    }

    #[test]
    fn merge_is_deterministic() {
        let known = local(vec![("A", Some(record("A", 1, Active)), on_shelf(7))]);
        let p = page(
            Some("c"),
            "d",
            vec![change("A", 2, Withdrawn), change("B", 1, Active)],
        );
        assert_eq!(
            merge(Some("c"), None, &p, &known),
            merge(Some("c"), None, &p, &known)
        );
    }

    // ---- the operation over a store ----

    fn call(config: &Config) -> Call<'_> {
        Call {
            now_ms: 1_000,
            key: None,
            config,
            fetch: None,
        }
    }

    #[test]
    fn sync_writes_records_cursor_and_events_and_a_replay_changes_nothing() {
        let config = Config::default();
        let mut s = MemoryStore::default();
        // A copy the shelf holds in slot 4.
        save(&mut s, &catalogue::key("A"), &record("A", 1, Active)).expect("save");
        save(&mut s, &shelf::held_key("A"), &Held::OnShelf { slot: 4 }).expect("save");
        let mut p = page(
            None,
            "c1",
            vec![change("A", 2, Withdrawn), change("B", 1, Active)],
        );
        p.has_more = true;
        let out = sync(&mut s, &call(&config), p.clone()).expect("sync");
        assert_eq!(
            (
                out.cursor.as_str(),
                out.applied,
                out.skipped,
                out.has_more,
                out.replayed
            ),
            ("c1", 2, 0, true, false)
        );
        assert_eq!(out.conflicts.len(), 1);
        assert_eq!(
            catalogue::load_record(&mut s, "A"),
            Ok(Some(record("A", 2, Withdrawn)))
        );
        assert_eq!(
            catalogue::load_record(&mut s, "B"),
            Ok(Some(record("B", 1, Active)))
        );
        // The shelf still holds A: the sync never moves copies.
        assert_eq!(
            shelf::load_held(&mut s, "A"),
            Ok(Some(Held::OnShelf { slot: 4 }))
        );
        assert_eq!(crate::tests::kinds(&s), vec![CONFLICT_EVENT]);
        let event = &s.events[0].1;
        assert_eq!(event["rule"], json!("withdrawn_on_shelf"));
        assert_eq!(event["copy_id"], json!("A"));
        assert_eq!(event["slot"], json!(4));
        assert_eq!(event["cursor"], json!("c1"));

        let before = s.clone();
        let again = sync(&mut s, &call(&config), p).expect("replay");
        assert!(again.replayed);
        assert_eq!(
            SyncOutput {
                replayed: false,
                ..again
            },
            out
        );
        assert_eq!(s, before, "a replay writes and emits nothing");

        let stale = sync(&mut s, &call(&config), page(None, "c1", vec![])).expect_err("stale");
        assert!(matches!(stale, Error::Conflict(_)));
        assert_eq!(s, before);
        crate::tests::check_store(&s);

        let status = status(&mut s, NoInput {}).expect("status");
        assert_eq!(status.cursor.as_deref(), Some("c1"));
        assert_eq!(status.pages_applied, 1);
        assert_eq!(status.last_synced_ms, Some(1_000));
        assert_eq!(status.last_page, Some(out));
    }

    #[test]
    fn reset_sync_reads_the_feed_again_without_rolling_back() {
        let config = Config::default();
        let mut s = MemoryStore::default();
        sync(
            &mut s,
            &call(&config),
            page(None, "c1", vec![change("A", 1, Active)]),
        )
        .expect("p1");
        sync(
            &mut s,
            &call(&config),
            page(Some("c1"), "c2", vec![change("A", 2, Withdrawn)]),
        )
        .expect("p2");
        let reset = reset(&mut s, NoInput {}).expect("reset");
        assert_eq!(reset.previous_cursor.as_deref(), Some("c2"));
        assert_eq!(reset.cursor, None);
        let again = sync(
            &mut s,
            &call(&config),
            page(None, "c1", vec![change("A", 1, Active)]),
        )
        .expect("from the beginning");
        assert_eq!((again.applied, again.skipped), (0, 1));
        assert_eq!(
            catalogue::load_record(&mut s, "A"),
            Ok(Some(record("A", 2, Withdrawn)))
        );
        let status = status(&mut s, NoInput {}).expect("status");
        assert_eq!(
            (status.cursor.as_deref(), status.pages_applied),
            (Some("c1"), 3)
        );
        crate::tests::check_store(&s);
    }

    #[test]
    fn status_before_any_sync() {
        let mut s = MemoryStore::default();
        assert_eq!(
            status(&mut s, NoInput {}),
            Ok(StatusOutput {
                cursor: None,
                pages_applied: 0,
                last_synced_ms: None,
                last_page: None
            })
        );
    }

    #[test]
    fn pages_parse_strictly() {
        let ok: Page = serde_json::from_value(json!({
            "cursor": null,
            "changes": [{"copy_id": "A", "revision": 1, "status": "active", "title": "T"}],
            "next_cursor": "c1"
        }))
        .expect("page");
        assert!(!ok.has_more);
        assert_eq!(ok.changes[0].author, None);
        assert!(
            serde_json::from_value::<Page>(json!({
                "cursor": null, "changes": [], "next_cursor": "c1", "extra": 1
            }))
            .is_err()
        );
        assert!(
            serde_json::from_value::<Change>(json!({
                "copy_id": "A", "revision": 1, "status": "lost", "title": "T"
            }))
            .is_err()
        );
    }
}
