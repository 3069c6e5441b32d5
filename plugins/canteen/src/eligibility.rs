//! Registered residents and who may order delivery.
//!
//! Residents are registered by the canteen staff with an operation (`register-resident`),
//! not listed in the config: the list changes every week (a fall, a recovery, a new
//! neighbour), carries personal data that does not belong in a community's plugin config,
//! and is kept per community in the plugin's own state. Eligibility is decided at the
//! moment of ordering from the registered birth date (full years in the community's local
//! time at `now_ms`) and the mobility-limited flag, against the community's config.

use crate::calendar::Date;
use crate::config::Config;
use crate::store::{self, Store, keys};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// A registered resident, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resident {
    /// The community's id for the resident (a card number, a household id).
    pub resident_id: String,
    /// Their name, for the kitchen and the courier.
    pub name: String,
    /// Their birth date (`YYYY-MM-DD`).
    pub birth_date: String,
    /// Where meals are delivered (building, unit, room).
    pub address: String,
    /// A phone number for the courier.
    pub phone: Option<String>,
    /// Registered by the staff as having limited mobility.
    pub mobility_limited: bool,
}

/// Whether a resident may order delivery, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    /// Their age in full years today.
    pub age: i32,
    /// Whether they may order delivery.
    pub eligible: bool,
    /// Why, for a person ("aged 60 or over", "under 60 and not registered as
    /// mobility-limited").
    pub reason: String,
}

/// Decides delivery eligibility on `today` (the community's local date).
pub fn delivery_eligibility(
    resident: &Resident,
    config: &Config,
    today: Date,
) -> Result<Eligibility, Error> {
    let born = Date::parse(&resident.birth_date).map_err(|e| {
        Error::internal(format!(
            "stored birth date of {}: {e}",
            resident.resident_id
        ))
    })?;
    let age = born.age_on(today);
    let (eligible, reason) = if !config.delivery_enabled {
        (
            false,
            "the canteen does not deliver in this community (delivery_enabled is off)".to_owned(),
        )
    } else if let Some(min) = config.delivery_min_age
        && age >= min as i32
    {
        (true, format!("aged {min} or over"))
    } else if resident.mobility_limited && config.delivery_for_mobility_limited {
        (true, "registered as mobility-limited".to_owned())
    } else {
        let mut why = Vec::new();
        if let Some(min) = config.delivery_min_age {
            why.push(format!("under {min}"));
        }
        if config.delivery_for_mobility_limited {
            why.push("not registered as mobility-limited".to_owned());
        }
        if why.is_empty() {
            why.push("no delivery criterion is configured (delivery_min_age is null and delivery_for_mobility_limited is off)".to_owned());
        }
        (false, why.join(" and "))
    };
    Ok(Eligibility {
        age,
        eligible,
        reason,
    })
}

/// A conflict unless the resident may order delivery today.
pub fn ensure_delivery_allowed(
    resident: &Resident,
    config: &Config,
    today: Date,
) -> Result<(), Error> {
    let e = delivery_eligibility(resident, config, today)?;
    if e.eligible {
        return Ok(());
    }
    let hint = if config.delivery_enabled {
        "; order for pick-up instead, or have the canteen staff register them as mobility-limited (register-resident)"
    } else {
        "; order for pick-up instead"
    };
    Err(Error::conflict(format!(
        "resident {:?} ({}) cannot order delivery: {}{hint}",
        resident.resident_id, resident.name, e.reason
    )))
}

/// A resident as operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResidentView {
    /// The stored record.
    #[serde(flatten)]
    pub resident: Resident,
    /// Age in full years today.
    pub age: i32,
    /// Whether they may order delivery today.
    pub delivery_eligible: bool,
    /// Why.
    pub eligibility: String,
}

impl ResidentView {
    /// The view of `resident` on `today`.
    pub fn of(resident: Resident, config: &Config, today: Date) -> Result<Self, Error> {
        let e = delivery_eligibility(&resident, config, today)?;
        Ok(Self {
            resident,
            age: e.age,
            delivery_eligible: e.eligible,
            eligibility: e.reason,
        })
    }
}

/// The community's local date at `now_ms`.
pub fn today(config: &Config, now_ms: i64) -> Date {
    Date::local_today(now_ms, config.utc_offset_minutes)
}

/// The registered resident, or not-found saying how to register them.
pub fn load(store: &mut impl Store, resident_id: &str) -> Result<Resident, Error> {
    store::load(store, &keys::resident(resident_id))?.ok_or_else(|| {
        Error::not_found(format!(
            "resident {resident_id:?} is not registered with the canteen; the staff register residents with register-resident"
        ))
    })
}

/// Input of `register-resident`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// The community's id for the resident.
    pub resident_id: String,
    /// Their name.
    pub name: String,
    /// Their birth date.
    pub birth_date: String,
    /// Where meals are delivered.
    pub address: String,
    /// A phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Limited mobility (default false).
    #[serde(default)]
    pub mobility_limited: bool,
}

/// `register-resident`: registers a resident, or replaces their registration.
pub fn register(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: RegisterInput,
) -> Result<ResidentView, Error> {
    let born = Date::parse(&input.birth_date)
        .map_err(|e| Error::invalid_input(format!("birth_date: {e}")))?;
    let today = today(config, now_ms);
    if born > today {
        return Err(Error::invalid_input(format!(
            "birth_date {} is in the future (today is {today})",
            input.birth_date
        )));
    }
    let resident = Resident {
        resident_id: input.resident_id,
        name: input.name,
        birth_date: input.birth_date,
        address: input.address,
        phone: input.phone,
        mobility_limited: input.mobility_limited,
    };
    store::save(store, &keys::resident(&resident.resident_id), &resident)?;
    ResidentView::of(resident, config, today)
}

/// Input of `get-resident`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidentIdInput {
    /// The resident.
    pub resident_id: String,
}

/// `get-resident`: a registered resident and whether they may order delivery today.
pub fn get(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: ResidentIdInput,
) -> Result<ResidentView, Error> {
    let resident = load(store, &input.resident_id)?;
    ResidentView::of(resident, config, today(config, now_ms))
}

/// Input of `list-residents`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListInput {
    /// Continue after this resident id (`next` of the previous page).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 50, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Output of `list-residents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListOutput {
    /// Residents in id order.
    pub residents: Vec<ResidentView>,
    /// The cursor of the next page, or null at the end.
    pub next: Option<String>,
}

/// `list-residents`: registered residents in id order, a page at a time.
pub fn list(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: ListInput,
) -> Result<ListOutput, Error> {
    let limit = input.limit.unwrap_or(50).clamp(1, 100);
    let after = input.after.as_deref().map(keys::resident);
    let mut page: Vec<(String, Resident)> =
        store::scan(store, keys::RESIDENT_PREFIX, after.as_deref(), limit + 1)?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let today = today(config, now_ms);
    let residents = page
        .into_iter()
        .map(|(_, r)| ResidentView::of(r, config, today))
        .collect::<Result<Vec<_>, _>>()?;
    let next = if more {
        residents.last().map(|r| r.resident.resident_id.clone())
    } else {
        None
    };
    Ok(ListOutput { residents, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn resident(birth: &str, mobility_limited: bool) -> Resident {
        Resident {
            resident_id: "r-1".into(),
            name: "Zhang Wei".into(),
            birth_date: birth.into(),
            address: "Building 3, Room 401".into(),
            phone: None,
            mobility_limited,
        }
    }

    fn today() -> Date {
        Date::parse("2099-12-01").expect("date")
    }

    /// The decision for [`resident`] `(birth, mobility_limited)` on [`today`].
    fn decide(birth: &str, mobility_limited: bool, config: &Config) -> Eligibility {
        delivery_eligibility(&resident(birth, mobility_limited), config, today()).expect("e")
    }

    #[test]
    fn age_qualifies_from_the_birthday_on() {
        let c = Config::default();
        let e = decide("2039-12-01", false, &c);
        assert_eq!(
            (e.age, e.eligible, e.reason.as_str()),
            (60, true, "aged 60 or over")
        );
        let e = decide("2039-12-02", false, &c);
        assert_eq!(e.age, 59);
        assert!(!e.eligible);
        assert_eq!(e.reason, "under 60 and not registered as mobility-limited");
    }

    #[test]
    fn mobility_limited_qualifies_at_any_age_unless_switched_off() {
        let c = Config::default();
        let e = decide("2060-01-01", true, &c);
        assert_eq!(
            (e.eligible, e.reason.as_str()),
            (true, "registered as mobility-limited")
        );
        let c = Config {
            delivery_for_mobility_limited: false,
            ..Config::default()
        };
        let e = decide("2060-01-01", true, &c);
        assert_eq!((e.eligible, e.reason.as_str()), (false, "under 60"));
    }

    #[test]
    fn config_switches() {
        let old = resident("1990-01-01", false);
        let off = Config {
            delivery_enabled: false,
            ..Config::default()
        };
        let e = decide("1990-01-01", false, &off);
        assert!(!e.eligible);
        assert_conflict(
            ensure_delivery_allowed(&old, &off, today()),
            "does not deliver",
        );
        let no_age = Config {
            delivery_min_age: None,
            ..Config::default()
        };
        let e = decide("1990-01-01", false, &no_age);
        assert_eq!(
            (e.eligible, e.reason.as_str()),
            (false, "not registered as mobility-limited")
        );
        let nothing = Config {
            delivery_min_age: None,
            delivery_for_mobility_limited: false,
            ..Config::default()
        };
        let e = decide("1990-01-01", false, &nothing);
        assert!(e.reason.contains("no delivery criterion"), "{}", e.reason);
        let seventy = Config {
            delivery_min_age: Some(70),
            ..Config::default()
        };
        assert!(decide("2029-12-01", false, &seventy).eligible);
        assert!(!decide("2030-12-01", false, &seventy).eligible);
    }

    #[test]
    fn refusals_say_what_to_do() {
        let c = Config::default();
        assert_conflict(
            ensure_delivery_allowed(&resident("2070-05-05", false), &c, today()),
            "cannot order delivery: under 60 and not registered as mobility-limited; order for pick-up instead",
        );
        assert!(ensure_delivery_allowed(&resident("1970-05-05", false), &c, today()).is_ok());
    }

    #[test]
    fn register_get_and_list() {
        let mut s = MemoryStore::default();
        let c = Config::default();
        let view = register(&mut s, &c, NOW, register_input("r-2", "2030-01-01", false))
            .expect("register");
        assert_eq!((view.age, view.delivery_eligible), (69, true));
        register(&mut s, &c, NOW, register_input("r-1", "2070-01-01", false)).expect("register");
        // Re-registering replaces.
        let view =
            register(&mut s, &c, NOW, register_input("r-1", "2070-01-01", true)).expect("again");
        assert!(view.delivery_eligible);
        assert_eq!(
            get(
                &mut s,
                &c,
                NOW,
                ResidentIdInput {
                    resident_id: "r-1".into()
                }
            ),
            Ok(view)
        );
        assert_not_found(
            get(
                &mut s,
                &c,
                NOW,
                ResidentIdInput {
                    resident_id: "r-9".into(),
                },
            ),
            "register-resident",
        );
        let page = list(
            &mut s,
            &c,
            NOW,
            ListInput {
                after: None,
                limit: Some(1),
            },
        )
        .expect("list");
        assert_eq!(page.residents[0].resident.resident_id, "r-1");
        assert_eq!(page.next.as_deref(), Some("r-1"));
        let page = list(
            &mut s,
            &c,
            NOW,
            ListInput {
                after: page.next,
                limit: Some(1),
            },
        )
        .expect("list");
        assert_eq!(page.residents[0].resident.resident_id, "r-2");
        assert_eq!(page.next, None);
    }

    #[test]
    fn register_refuses_impossible_birth_dates() {
        let mut s = MemoryStore::default();
        let c = Config::default();
        assert_invalid(
            register(&mut s, &c, NOW, register_input("r-1", "2099-12-25", false)),
            "in the future",
        );
        assert_invalid(
            register(&mut s, &c, NOW, register_input("r-1", "1950-02-29", false)),
            "does not exist",
        );
        assert!(s.data.is_empty());
    }
}
