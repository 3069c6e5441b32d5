//! The community's blocklist, kept by staff: a phone number or a face reference on it
//! cannot register a visit, cannot have one confirmed, and is denied at every gate.

use crate::keys;
use crate::store::{Session, Store, page, page_size};
use crate::time::rfc3339;
use crate::validate;
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// What an entry blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockKind {
    /// A phone number.
    Phone,
    /// A face reference.
    Face,
}

impl BlockKind {
    /// As in the API and the state keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Face => "face",
        }
    }

    /// As in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Phone => "phone number",
            Self::Face => "face reference",
        }
    }
}

/// A blocklist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEntry {
    /// What it blocks.
    pub kind: BlockKind,
    /// The phone number or face reference.
    pub value: String,
    /// Why, for staff.
    pub reason: String,
    /// The member of staff who added it.
    pub added_by: String,
    /// When.
    pub added_at_ms: i64,
    /// When it stops applying; `None`: until removed.
    pub until_ms: Option<i64>,
}

impl BlockEntry {
    /// Whether it applies at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.until_ms.is_none_or(|until| now < until)
    }

    /// A description for refusals and denials (without the value).
    pub fn describe(&self) -> String {
        let until = match self.until_ms {
            Some(until) => format!(" until {}", rfc3339(until)),
            None => String::new(),
        };
        format!(
            "this visitor's {} is on the community's blocklist{until} (added by {} at {}); staff can remove it with blocklist-remove",
            self.kind.noun(),
            self.added_by,
            rfc3339(self.added_at_ms)
        )
    }
}

/// An entry as listed: with whether it applies now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: BlockEntry,
    /// Whether it applies now.
    pub active: bool,
}

/// The target of an add or a remove: exactly one of `phone` and `face_ref`, in
/// canonical form.
fn target(phone: Option<String>, face_ref: Option<String>) -> Result<(BlockKind, String), Error> {
    match (phone, face_ref) {
        (Some(phone), None) => Ok((BlockKind::Phone, validate::canonical_phone(&phone))),
        (None, Some(face)) => Ok((BlockKind::Face, validate::face_ref("face_ref", &face)?)),
        _ => Err(Error::invalid_input(
            "give exactly one of phone and face_ref",
        )),
    }
}

/// `blocklist-add`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddInput {
    /// A phone number to block.
    #[serde(default)]
    pub phone: Option<String>,
    /// A face reference to block.
    #[serde(default)]
    pub face_ref: Option<String>,
    /// Why.
    pub reason: String,
    /// The member of staff.
    pub by: String,
    /// Until when; absent: until removed.
    #[serde(default)]
    pub until_ms: Option<i64>,
}

/// `blocklist-add`: adds (or replaces) an entry.
pub fn add<S: Store>(s: &mut Session<'_, S>, input: AddInput) -> Result<ListedEntry, Error> {
    let (kind, value) = target(input.phone, input.face_ref)?;
    let reason = validate::name("reason", &input.reason)?;
    if let Some(until) = input.until_ms
        && until <= s.now_ms
    {
        return Err(Error::invalid_input(format!(
            "until_ms ({}) is not in the future (now is {}); leave it out to block until removed",
            rfc3339(until),
            rfc3339(s.now_ms)
        )));
    }
    let entry = BlockEntry {
        kind,
        value,
        reason,
        added_by: input.by,
        added_at_ms: s.now_ms,
        until_ms: input.until_ms,
    };
    s.put(&keys::blocked(kind.as_str(), &entry.value), &entry)?;
    Ok(ListedEntry {
        active: entry.active(s.now_ms),
        entry,
    })
}

/// `blocklist-remove`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveInput {
    /// The phone number to unblock.
    #[serde(default)]
    pub phone: Option<String>,
    /// The face reference to unblock.
    #[serde(default)]
    pub face_ref: Option<String>,
    /// The member of staff.
    pub by: String,
}

/// `blocklist-remove`'s output.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct RemoveOutput {
    /// What the entry blocked.
    pub kind: BlockKind,
    /// The phone number or face reference.
    pub value: String,
    /// Always `true`.
    pub removed: bool,
    /// The member of staff.
    pub removed_by: String,
}

/// `blocklist-remove`: removes an entry.
pub fn remove<S: Store>(s: &mut Session<'_, S>, input: RemoveInput) -> Result<RemoveOutput, Error> {
    let (kind, value) = target(input.phone, input.face_ref)?;
    let key = keys::blocked(kind.as_str(), &value);
    if !s.exists(&key)? {
        return Err(Error::not_found(format!(
            "this {} is not on the blocklist",
            kind.noun()
        )));
    }
    s.delete(&key)?;
    Ok(RemoveOutput {
        kind,
        value,
        removed: true,
        removed_by: input.by,
    })
}

/// `list-blocklist`'s input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Only phones or only faces.
    #[serde(default)]
    pub kind: Option<BlockKind>,
    /// The `next` of the previous page (with the same `kind`).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `list-blocklist`'s output.
#[derive(Debug, Serialize)]
pub struct ListOutput {
    /// The entries: faces then phones, each by value.
    pub entries: Vec<ListedEntry>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

/// `list-blocklist`: a page of entries.
pub fn list<S: Store>(s: &mut Session<'_, S>, input: ListInput) -> Result<ListOutput, Error> {
    let prefix = match input.kind {
        Some(kind) => format!("{}{}/", keys::BLOCKLIST, kind.as_str()),
        None => keys::BLOCKLIST.to_owned(),
    };
    let limit = page_size(input.limit);
    let now = s.now_ms;
    let page = page(s, &prefix, input.after.as_deref(), limit, |_, _, value| {
        let entry: BlockEntry = serde_json::from_value(value)
            .map_err(|e| Error::internal(format!("bad blocklist record: {e}")))?;
        Ok(Some(ListedEntry {
            active: entry.active(now),
            entry,
        }))
    })?;
    Ok(ListOutput {
        entries: page.items,
        next: page.next,
    })
}

/// The entry that blocks `phone` or `face` now, if any (the phone's first); both are
/// compared in canonical form.
pub fn blocking<S: Store>(
    s: &mut Session<'_, S>,
    phone: Option<&str>,
    face: Option<&str>,
) -> Result<Option<BlockEntry>, Error> {
    let candidates = [
        phone.map(|p| keys::blocked("phone", &validate::canonical_phone(p))),
        face.map(|f| keys::blocked("face", &validate::canonical_face_ref(f))),
    ];
    for key in candidates.into_iter().flatten() {
        if let Some(entry) = s.get::<BlockEntry>(&key)?
            && entry.active(s.now_ms)
        {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::session;
    use courtyard_sdk::testing::MemoryStore;

    fn add_phone(phone: &str, until_ms: Option<i64>) -> AddInput {
        AddInput {
            phone: Some(phone.into()),
            face_ref: None,
            reason: "harassed residents".into(),
            by: "s-zhao".into(),
            until_ms,
        }
    }

    #[test]
    fn add_block_remove() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1000, None);
        assert_eq!(
            blocking(&mut s, Some("139"), Some("tpl-0001x")).expect("read"),
            None
        );
        let added = add(&mut s, add_phone("139", None)).expect("add");
        assert!(added.active);
        assert_eq!(added.entry.kind, BlockKind::Phone);
        let hit = blocking(&mut s, Some("139"), None)
            .expect("read")
            .expect("blocked");
        assert!(
            hit.describe()
                .contains("phone number is on the community's blocklist")
        );
        assert!(hit.describe().contains("blocklist-remove"));
        add(
            &mut s,
            AddInput {
                phone: None,
                face_ref: Some("tpl-0001x".into()),
                reason: "x".into(),
                by: "s-zhao".into(),
                until_ms: None,
            },
        )
        .expect("add face");
        assert_eq!(
            blocking(&mut s, None, Some("tpl-0001x"))
                .expect("read")
                .map(|e| e.kind),
            Some(BlockKind::Face)
        );
        let listed = list(&mut s, ListInput::default()).expect("list");
        assert_eq!(listed.entries.len(), 2);
        let phones = list(
            &mut s,
            ListInput {
                kind: Some(BlockKind::Phone),
                ..ListInput::default()
            },
        )
        .expect("list");
        assert_eq!(phones.entries.len(), 1);
        let removed = remove(
            &mut s,
            RemoveInput {
                phone: Some("139".into()),
                face_ref: None,
                by: "s-zhao".into(),
            },
        )
        .expect("remove");
        assert!(removed.removed);
        assert_eq!(blocking(&mut s, Some("139"), None).expect("read"), None);
        let err = remove(
            &mut s,
            RemoveInput {
                phone: Some("139".into()),
                face_ref: None,
                by: "s-zhao".into(),
            },
        )
        .expect_err("gone");
        assert!(matches!(err, Error::NotFound(m) if m.contains("not on the blocklist")));
    }

    #[test]
    fn temporary_entries_lapse() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1000, None);
        add(&mut s, add_phone("139", Some(2000))).expect("add");
        assert!(blocking(&mut s, Some("139"), None).expect("read").is_some());
        s.now_ms = 2000;
        assert!(blocking(&mut s, Some("139"), None).expect("read").is_none());
        let listed = list(&mut s, ListInput::default()).expect("list");
        assert!(!listed.entries[0].active);
        let err = add(&mut s, add_phone("139", Some(2000))).expect_err("past");
        assert!(matches!(err, Error::InvalidInput(m) if m.contains("not in the future")));
    }

    #[test]
    fn targets_must_be_exactly_one_and_faces_are_checked() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 1000, None);
        let both = AddInput {
            phone: Some("139".into()),
            face_ref: Some("tpl-0001x".into()),
            reason: "x".into(),
            by: "s".into(),
            until_ms: None,
        };
        assert!(
            matches!(add(&mut s, both), Err(Error::InvalidInput(m)) if m.contains("exactly one"))
        );
        let image = AddInput {
            phone: None,
            face_ref: Some("data:image/png;base64,iVBORw0KGgo".into()),
            reason: "x".into(),
            by: "s".into(),
            until_ms: None,
        };
        assert!(
            matches!(add(&mut s, image), Err(Error::InvalidInput(m)) if m.contains("never an image"))
        );
        let blank = AddInput {
            reason: " ".into(),
            ..add_phone("139", None)
        };
        assert!(matches!(add(&mut s, blank), Err(Error::InvalidInput(_))));
        assert!(store.data.is_empty());
    }
}
