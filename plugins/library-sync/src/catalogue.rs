//! The catalogue: what the city library says about each copy. The library is the source of
//! truth for titles, so only [`crate::sync`] writes these records; the shelf and the loans
//! read them.

use crate::store::{Store, load};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// The status of a copy at the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibraryStatus {
    /// In circulation and assigned to this shelf: it may be placed and borrowed.
    Active,
    /// The library places the copy somewhere else (another branch, its own counter).
    Elsewhere,
    /// Taken out of circulation (discarded, lost, recalled): it may not be placed or
    /// borrowed, and a held copy goes back to the library.
    Withdrawn,
}

impl LibraryStatus {
    /// The status as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Elsewhere => "elsewhere",
            Self::Withdrawn => "withdrawn",
        }
    }
}

/// The library's record of one copy, as of the last change the shelf applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueRecord {
    /// The book code on the copy (what the shelf's scanner reads).
    pub copy_id: String,
    /// The title.
    pub title: String,
    /// The author, when the library gives one.
    pub author: Option<String>,
    /// The ISBN, when the library gives one.
    pub isbn: Option<String>,
    /// The copy's status at the library.
    pub status: LibraryStatus,
    /// Where the library places the copy, when it says (meaningful for `elsewhere`).
    pub location: Option<String>,
    /// The library's revision of the record; a change with a revision not above this one
    /// is old news and is skipped.
    pub revision: u64,
}

impl CatalogueRecord {
    /// `copy "B-0001" ("Title")`, for messages.
    pub fn describe(&self) -> String {
        describe(&self.copy_id, &self.title)
    }
}

/// `copy "B-0001" ("Title")`, for messages.
pub fn describe(copy_id: &str, title: &str) -> String {
    format!("copy {copy_id:?} ({title:?})")
}

/// The state key of a copy's catalogue record.
pub fn key(copy_id: &str) -> String {
    format!("cat/{copy_id}")
}

/// The catalogue record of `copy_id`, if the library ever sent one.
pub fn load_record(
    store: &mut impl Store,
    copy_id: &str,
) -> Result<Option<CatalogueRecord>, Error> {
    load(store, &key(copy_id))
}

/// The catalogue record of `copy_id`, or a `not_found` that says what to do.
pub fn require(store: &mut impl Store, copy_id: &str) -> Result<CatalogueRecord, Error> {
    load_record(store, copy_id)?.ok_or_else(|| unknown_copy(copy_id))
}

/// The refusal for a book code the catalogue does not know.
pub fn unknown_copy(copy_id: &str) -> Error {
    Error::not_found(format!(
        "no book with code {copy_id:?} in this shelf's catalogue: check the code, or sync the \
         catalogue from the library first"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::save;
    use courtyard_sdk::testing::MemoryStore;

    #[test]
    fn statuses_are_snake_case_in_json() {
        for status in [
            LibraryStatus::Active,
            LibraryStatus::Elsewhere,
            LibraryStatus::Withdrawn,
        ] {
            let json = serde_json::to_value(status).expect("json");
            assert_eq!(json, status.as_str());
        }
    }

    #[test]
    fn unknown_copies_are_not_found_with_advice() {
        let mut s = MemoryStore::default();
        let err = require(&mut s, "B-9").expect_err("unknown");
        assert!(
            matches!(&err, Error::NotFound(m) if m.contains("\"B-9\"") && m.contains("sync")),
            "{err}"
        );
        let record = CatalogueRecord {
            copy_id: "B-9".into(),
            title: "T".into(),
            author: None,
            isbn: None,
            status: LibraryStatus::Active,
            location: None,
            revision: 1,
        };
        save(&mut s, &key("B-9"), &record).expect("save");
        assert_eq!(require(&mut s, "B-9"), Ok(record.clone()));
        assert_eq!(record.describe(), "copy \"B-9\" (\"T\")");
    }
}
