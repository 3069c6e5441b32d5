//! The residents of each unit: only they may confirm, refuse or cancel its visits.

use crate::keys;
use crate::store::{Session, Store, page, page_size};
use crate::validate;
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// A resident of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resident {
    /// The unit (`3-2-501`).
    pub unit: String,
    /// The resident's id (from the community's resident register or app).
    pub resident_id: String,
    /// A display name.
    pub name: Option<String>,
    /// When the resident was registered for the unit.
    pub registered_at_ms: i64,
}

/// `register-resident`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// The unit.
    pub unit: String,
    /// The resident.
    pub resident_id: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `register-resident`'s output.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct RegisterOutput {
    /// The resident as registered.
    #[serde(flatten)]
    pub resident: Resident,
    /// `false` when the resident was already registered for the unit (nothing changed
    /// but the name, when one is given).
    pub created: bool,
}

/// `register-resident`: lets a resident answer for a unit's visits. Registering again
/// keeps the first registration time and updates the name when one is given.
pub fn register<S: Store>(
    s: &mut Session<'_, S>,
    input: RegisterInput,
) -> Result<RegisterOutput, Error> {
    let name = match input.name.as_deref() {
        Some(name) => Some(validate::name("name", name)?),
        None => None,
    };
    let key = keys::resident(&input.unit, &input.resident_id);
    let existing: Option<Resident> = s.get(&key)?;
    let created = existing.is_none();
    let resident = match existing {
        Some(mut resident) => {
            if name.is_some() {
                resident.name = name;
            }
            resident
        }
        None => Resident {
            unit: input.unit,
            resident_id: input.resident_id,
            name,
            registered_at_ms: s.now_ms,
        },
    };
    s.put(&key, &resident)?;
    Ok(RegisterOutput { resident, created })
}

/// `remove-resident`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveInput {
    /// The unit.
    pub unit: String,
    /// The resident.
    pub resident_id: String,
}

/// `remove-resident`'s output.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct RemoveOutput {
    /// The unit.
    pub unit: String,
    /// The resident.
    pub resident_id: String,
    /// Always `true`.
    pub removed: bool,
}

/// `remove-resident`: the resident no longer answers for the unit. Visits already
/// confirmed keep their passes.
pub fn remove<S: Store>(s: &mut Session<'_, S>, input: RemoveInput) -> Result<RemoveOutput, Error> {
    let key = keys::resident(&input.unit, &input.resident_id);
    if !s.exists(&key)? {
        return Err(Error::not_found(format!(
            "resident {:?} is not registered for unit {:?}",
            input.resident_id, input.unit
        )));
    }
    s.delete(&key)?;
    Ok(RemoveOutput {
        unit: input.unit,
        resident_id: input.resident_id,
        removed: true,
    })
}

/// `list-residents`'s input.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Only this unit's residents.
    #[serde(default)]
    pub unit: Option<String>,
    /// The `next` of the previous page (with the same `unit`).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `list-residents`'s output.
#[derive(Debug, Serialize)]
pub struct ListOutput {
    /// The residents, by unit then id.
    pub residents: Vec<Resident>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

/// `list-residents`: a page of residents, by unit then id. Without `unit` the cursor
/// is `<unit>/<resident>`; with it, the resident id.
pub fn list<S: Store>(s: &mut Session<'_, S>, input: ListInput) -> Result<ListOutput, Error> {
    let prefix = match &input.unit {
        Some(unit) => keys::unit_residents(unit),
        None => keys::RESIDENTS.to_owned(),
    };
    let limit = page_size(input.limit);
    let page = page(s, &prefix, input.after.as_deref(), limit, |_, _, value| {
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| Error::internal(format!("bad resident record: {e}")))
    })?;
    Ok(ListOutput {
        residents: page.items,
        next: page.next,
    })
}

/// Whether `resident_id` is registered for `unit`.
pub fn is_resident<S: Store>(
    s: &mut Session<'_, S>,
    unit: &str,
    resident_id: &str,
) -> Result<bool, Error> {
    s.exists(&keys::resident(unit, resident_id))
}

/// Whether `unit` has at least one registered resident.
pub fn has_residents<S: Store>(s: &mut Session<'_, S>, unit: &str) -> Result<bool, Error> {
    Ok(!s.scan(&keys::unit_residents(unit), None, 1)?.is_empty())
}

/// Refuses (`conflict`) unless `resident_id` is a resident of `unit`.
pub fn require_resident<S: Store>(
    s: &mut Session<'_, S>,
    unit: &str,
    resident_id: &str,
    verb: &str,
    visit_id: &str,
) -> Result<(), Error> {
    if is_resident(s, unit, resident_id)? {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "resident {resident_id:?} is not registered for unit {unit:?}, so cannot {verb} visit {visit_id}; only a resident of that unit can (the property office registers residents with register-resident)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::session;
    use courtyard_sdk::testing::MemoryStore;

    fn reg(unit: &str, id: &str, name: Option<&str>) -> RegisterInput {
        RegisterInput {
            unit: unit.into(),
            resident_id: id.into(),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn register_is_idempotent_and_updates_the_name() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 10, None);
        let first = register(&mut s, reg("3-2-501", "r-wang", None)).expect("register");
        assert!(first.created);
        assert_eq!(first.resident.registered_at_ms, 10);
        s.now_ms = 20;
        let again = register(&mut s, reg("3-2-501", "r-wang", Some("Wang Fang"))).expect("again");
        assert!(!again.created);
        assert_eq!(again.resident.registered_at_ms, 10);
        assert_eq!(again.resident.name.as_deref(), Some("Wang Fang"));
        let kept = register(&mut s, reg("3-2-501", "r-wang", None)).expect("again");
        assert_eq!(kept.resident.name.as_deref(), Some("Wang Fang"));
        assert!(matches!(
            register(&mut s, reg("3-2-501", "r-x", Some("  "))),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn residents_are_per_unit() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 10, None);
        register(&mut s, reg("3-2-501", "r-wang", None)).expect("register");
        register(&mut s, reg("3-2", "r-li", None)).expect("register");
        assert!(is_resident(&mut s, "3-2-501", "r-wang").expect("read"));
        assert!(!is_resident(&mut s, "3-2", "r-wang").expect("read"));
        assert!(has_residents(&mut s, "3-2").expect("read"));
        assert!(!has_residents(&mut s, "3-2-502").expect("read"));
        let err = require_resident(&mut s, "3-2-501", "r-li", "confirm", "v00000001")
            .expect_err("not a resident");
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("\"r-li\" is not registered for unit \"3-2-501\"")),
            "{err}"
        );
        let only = list(
            &mut s,
            ListInput {
                unit: Some("3-2".into()),
                ..ListInput::default()
            },
        )
        .expect("list");
        assert_eq!(
            only.residents.len(),
            1,
            "the prefix 3-2/ does not match 3-2-501/"
        );
    }

    #[test]
    fn remove_and_list() {
        let mut store = MemoryStore::default();
        let mut s = session(&mut store, 10, None);
        for (unit, id) in [("1-1-101", "a"), ("1-1-101", "b"), ("1-1-102", "c")] {
            register(&mut s, reg(unit, id, None)).expect("register");
        }
        let page1 = list(
            &mut s,
            ListInput {
                limit: Some(2),
                ..ListInput::default()
            },
        )
        .expect("list");
        assert_eq!(page1.residents.len(), 2);
        assert_eq!(page1.next.as_deref(), Some("1-1-101/b"));
        let page2 = list(
            &mut s,
            ListInput {
                after: page1.next,
                limit: Some(2),
                ..ListInput::default()
            },
        )
        .expect("list");
        assert_eq!(page2.residents[0].resident_id, "c");
        assert_eq!(page2.next, None);

        remove(
            &mut s,
            RemoveInput {
                unit: "1-1-101".into(),
                resident_id: "a".into(),
            },
        )
        .expect("remove");
        let err = remove(
            &mut s,
            RemoveInput {
                unit: "1-1-101".into(),
                resident_id: "a".into(),
            },
        )
        .expect_err("gone");
        assert!(
            matches!(&err, Error::NotFound(m) if m.contains("\"a\" is not registered for unit \"1-1-101\""))
        );
    }
}
