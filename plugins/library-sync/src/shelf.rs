//! The shelf: which copy sits in which slot. The shelf is the source of truth for what is
//! physically on it; staff change it with `place` and `remove`, and loans move copies
//! between a slot and a resident ([`crate::loans`]).
//!
//! A copy is in one of three places, recorded under `held/{copy_id}`:
//!
//! | state | recorded as | how it gets there |
//! |---|---|---|
//! | not held | no `held/` key | initially; `remove`; `return` without a slot |
//! | on the shelf, in a slot | `{"state": "on_shelf", "slot": 12}` (+ `slot/0012`) | `place`; `return` with a slot |
//! | on loan | `{"state": "on_loan", "loan_id": "...", "card": "..."}` | `borrow` |
//!
//! A slot holds at most one copy (the shelf's compartments have one door each).

use crate::catalogue::{self, CatalogueRecord, LibraryStatus};
use crate::config::{Call, Config};
use crate::loans;
use crate::store::{Store, load, save, scan};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// Where the shelf holds a copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Held {
    /// In a slot of the shelf.
    OnShelf {
        /// The slot (1 to the configured `slot_count`).
        slot: u32,
    },
    /// Lent to a resident.
    OnLoan {
        /// The open loan.
        loan_id: String,
        /// The card it is lent to.
        card: String,
    },
}

/// The state key of where a copy is held.
pub fn held_key(copy_id: &str) -> String {
    format!("held/{copy_id}")
}

/// The state key of a slot (zero-padded so that slots list in order).
pub fn slot_key(slot: u32) -> String {
    format!("slot/{slot:04}")
}

const SLOT_PREFIX: &str = "slot/";

/// Where the shelf holds `copy_id`; `None` when it does not.
pub fn load_held(store: &mut impl Store, copy_id: &str) -> Result<Option<Held>, Error> {
    load(store, &held_key(copy_id))
}

/// Refuses a slot number the shelf does not have (`invalid_input`: the schema cannot know
/// the community's `slot_count`).
pub fn check_slot(config: &Config, slot: u32) -> Result<(), Error> {
    if slot == 0 || slot > config.slot_count {
        return Err(Error::invalid_input(format!(
            "slot {slot} does not exist: this shelf has slots 1 to {} (config slot_count)",
            config.slot_count
        )));
    }
    Ok(())
}

/// Refuses an occupied slot (`conflict`). The slot number must have been checked.
pub fn require_free_slot(store: &mut impl Store, slot: u32) -> Result<(), Error> {
    if let Some(occupant) = load::<String>(store, &slot_key(slot))? {
        return Err(Error::conflict(format!(
            "slot {slot} already holds copy {occupant:?}: use an empty slot"
        )));
    }
    Ok(())
}

/// Records `copy_id` as sitting in `slot`.
pub fn shelve(store: &mut impl Store, copy_id: &str, slot: u32) -> Result<(), Error> {
    save(store, &slot_key(slot), &copy_id)?;
    save(store, &held_key(copy_id), &Held::OnShelf { slot })
}

/// Frees `slot` (the caller records where the copy went).
pub fn free_slot(store: &mut impl Store, slot: u32) -> Result<(), Error> {
    store.delete(&slot_key(slot))
}

/// One copy on the shelf, as `place` and `list-shelf` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShelfItem {
    /// The slot.
    pub slot: u32,
    /// The copy.
    pub copy_id: String,
    /// Its title.
    pub title: String,
    /// Its author.
    pub author: Option<String>,
    /// Its status at the library.
    pub library_status: LibraryStatus,
    /// Whether a resident may borrow it now (it is not withdrawn by the library).
    pub borrowable: bool,
}

impl ShelfItem {
    fn new(slot: u32, record: &CatalogueRecord) -> Self {
        Self {
            slot,
            copy_id: record.copy_id.clone(),
            title: record.title.clone(),
            author: record.author.clone(),
            library_status: record.status,
            borrowable: record.status != LibraryStatus::Withdrawn,
        }
    }
}

/// The input of `place`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceInput {
    /// The copy staff put on the shelf.
    pub copy_id: String,
    /// The slot they put it in.
    pub slot: u32,
}

/// `place`: staff put a copy in an empty slot. The copy must be in the catalogue, not
/// withdrawn by the library, and not already held (on the shelf or on loan).
pub fn place(store: &mut impl Store, call: &Call, input: PlaceInput) -> Result<ShelfItem, Error> {
    check_slot(call.config, input.slot)?;
    let record = catalogue::require(store, &input.copy_id)?;
    let what = record.describe();
    match load_held(store, &input.copy_id)? {
        Some(Held::OnShelf { slot }) => {
            return Err(Error::conflict(format!(
                "{what} is already on the shelf in slot {slot}: to move it, remove it first"
            )));
        }
        Some(Held::OnLoan { loan_id, .. }) => {
            return Err(Error::conflict(format!(
                "{what} is on loan ({loan_id}): record its return with `return` (giving the \
                 slot) instead of placing it"
            )));
        }
        None => {}
    }
    if record.status == LibraryStatus::Withdrawn {
        return Err(Error::conflict(format!(
            "the library withdrew {what}: it may not be placed on the shelf; send it back to \
             the library"
        )));
    }
    require_free_slot(store, input.slot)?;
    shelve(store, &input.copy_id, input.slot)?;
    Ok(ShelfItem::new(input.slot, &record))
}

/// The input of `remove`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveInput {
    /// The copy staff take off the shelf.
    pub copy_id: String,
}

/// The answer of `remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveOutput {
    /// The copy.
    pub copy_id: String,
    /// Its title.
    pub title: String,
    /// The slot it was in (now empty).
    pub slot: u32,
    /// Its status at the library (`withdrawn`: send it back).
    pub library_status: LibraryStatus,
}

/// `remove`: staff take a copy off the shelf (to send it back to the library, to repair
/// it, after a `withdrawn_on_shelf` conflict). Only a copy sitting in a slot can be removed.
pub fn remove(
    store: &mut impl Store,
    _call: &Call,
    input: RemoveInput,
) -> Result<RemoveOutput, Error> {
    let record = catalogue::require(store, &input.copy_id)?;
    let what = record.describe();
    let slot = match load_held(store, &input.copy_id)? {
        Some(Held::OnShelf { slot }) => slot,
        Some(Held::OnLoan { loan_id, .. }) => {
            return Err(Error::conflict(format!(
                "{what} is on loan ({loan_id}), not on the shelf: it comes back through `return`"
            )));
        }
        None => {
            return Err(Error::conflict(format!("{what} is not on the shelf")));
        }
    };
    free_slot(store, slot)?;
    store.delete(&held_key(&input.copy_id))?;
    Ok(RemoveOutput {
        copy_id: record.copy_id,
        title: record.title,
        slot,
        library_status: record.status,
    })
}

/// The input of `list-shelf`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListShelfInput {
    /// Continue after this slot (the `next` of the previous page).
    #[serde(default)]
    pub after: Option<u32>,
    /// At most this many items (1 to 100, default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The answer of `list-shelf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListShelfOutput {
    /// The copies on the shelf, by slot.
    pub items: Vec<ShelfItem>,
    /// The slot to continue after, when there is more.
    pub next: Option<u32>,
}

/// `list-shelf`: what is on the shelf now, slot by slot.
pub fn list(
    store: &mut impl Store,
    _call: &Call,
    input: ListShelfInput,
) -> Result<ListShelfOutput, Error> {
    let limit = input.limit.unwrap_or(50).clamp(1, 100);
    let after = input.after.map(slot_key);
    let mut page: Vec<(String, String)> = scan(store, SLOT_PREFIX, after.as_deref(), limit + 1)?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let mut items = Vec::with_capacity(page.len());
    for (key, copy_id) in page {
        let slot: u32 = key[SLOT_PREFIX.len()..]
            .parse()
            .map_err(|_| Error::internal(format!("bad slot key {key:?}")))?;
        let record = catalogue::load_record(store, &copy_id)?.ok_or_else(|| {
            Error::internal(format!(
                "slot {slot} holds {copy_id:?}, which has no catalogue record"
            ))
        })?;
        items.push(ShelfItem::new(slot, &record));
    }
    let next = if more {
        items.last().map(|i| i.slot)
    } else {
        None
    };
    Ok(ListShelfOutput { items, next })
}

/// The input of `get-copy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyInput {
    /// The book code.
    pub copy_id: String,
}

/// Where a copy is, as `get-copy` shows it (the borrower's card is not shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Whereabouts {
    /// In a slot.
    OnShelf {
        /// The slot.
        slot: u32,
    },
    /// Lent out.
    OnLoan {
        /// The loan.
        loan_id: String,
        /// When it is due back.
        due_ms: i64,
    },
    /// Not held by the shelf.
    NotHeld,
}

/// The answer of `get-copy`: the library's record and where the shelf has the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyView {
    /// The book code.
    pub copy_id: String,
    /// The title.
    pub title: String,
    /// The author.
    pub author: Option<String>,
    /// The ISBN.
    pub isbn: Option<String>,
    /// Its status at the library.
    pub library_status: LibraryStatus,
    /// Where the library places it, when it says.
    pub library_location: Option<String>,
    /// The library's revision of the record.
    pub revision: u64,
    /// Where the shelf has it.
    pub shelf: Whereabouts,
    /// Whether a resident may borrow it now.
    pub borrowable: bool,
}

/// `get-copy`: what the kiosk shows when a book code is scanned.
pub fn get_copy(store: &mut impl Store, _call: &Call, input: CopyInput) -> Result<CopyView, Error> {
    let record = catalogue::require(store, &input.copy_id)?;
    let shelf = match load_held(store, &input.copy_id)? {
        Some(Held::OnShelf { slot }) => Whereabouts::OnShelf { slot },
        Some(Held::OnLoan { loan_id, .. }) => {
            let loan = loans::require_open(store, &loan_id)?;
            Whereabouts::OnLoan {
                loan_id,
                due_ms: loan.due_ms,
            }
        }
        None => Whereabouts::NotHeld,
    };
    let borrowable =
        matches!(shelf, Whereabouts::OnShelf { .. }) && record.status != LibraryStatus::Withdrawn;
    Ok(CopyView {
        copy_id: record.copy_id,
        title: record.title,
        author: record.author,
        isbn: record.isbn,
        library_status: record.status,
        library_location: record.location,
        revision: record.revision,
        shelf,
        borrowable,
    })
}
