//! Resident cards. A card must be registered at this shelf before it can borrow: staff (or
//! the community's resident app, on staff's behalf) call `register-card`; a resident who
//! moves out is deactivated with `deactivate-card`, which stops borrowing and renewing but
//! still accepts returns. Cards are registered by operation rather than listed in the
//! config because they change daily, while the config is the admin's per-community
//! policy.

use crate::config::Call;
use crate::loans::{self, LoanView};
use crate::store::{Store, load, save};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// A registered card (under `card/{card}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// The card number.
    pub card: String,
    /// The resident's unit (building-unit-room), for staff chasing overdue books.
    pub unit: Option<String>,
    /// Whether the card may borrow and renew.
    pub active: bool,
    /// When it was (last) registered.
    pub registered_ms: i64,
    /// When it was deactivated, if it is.
    pub deactivated_ms: Option<i64>,
    /// Its open loans, oldest first.
    pub loans: Vec<String>,
}

/// The state key of a card.
pub fn key(card: &str) -> String {
    format!("card/{card}")
}

/// The card, if registered (active or not).
pub fn load_card(store: &mut impl Store, card: &str) -> Result<Option<Card>, Error> {
    load(store, &key(card))
}

/// The refusal for a card that was never registered.
pub fn unknown_card(card: &str) -> Error {
    Error::not_found(format!(
        "card {card:?} is not registered at this shelf: ask staff to register it \
         (register-card)"
    ))
}

/// The card, if it is registered and active; `not_found` or `conflict` otherwise.
pub fn require_active(store: &mut impl Store, card: &str) -> Result<Card, Error> {
    let found = load_card(store, card)?.ok_or_else(|| unknown_card(card))?;
    if !found.active {
        return Err(Error::conflict(format!(
            "card {card:?} was deactivated: ask staff to register it again (register-card)"
        )));
    }
    Ok(found)
}

/// A card as the card operations answer it, with its open loans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardView {
    /// The card number.
    pub card: String,
    /// The resident's unit.
    pub unit: Option<String>,
    /// Whether the card may borrow and renew.
    pub active: bool,
    /// Its open loans, oldest first.
    pub loans: Vec<LoanView>,
}

fn view(store: &mut impl Store, call: &Call, card: Card) -> Result<CardView, Error> {
    let mut views = Vec::with_capacity(card.loans.len());
    for loan_id in &card.loans {
        let loan = loans::require_open(store, loan_id)?;
        views.push(LoanView::of(&loan, call));
    }
    Ok(CardView {
        card: card.card,
        unit: card.unit,
        active: card.active,
        loans: views,
    })
}

/// The input of `register-card`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// The card number (as printed / encoded on the resident card).
    pub card: String,
    /// The resident's unit.
    #[serde(default)]
    pub unit: Option<String>,
}

/// `register-card`: registers a new card, or reactivates a deactivated one (its unit is
/// replaced). An active card is a conflict.
pub fn register(
    store: &mut impl Store,
    call: &Call,
    input: RegisterInput,
) -> Result<CardView, Error> {
    let card = match load_card(store, &input.card)? {
        Some(existing) if existing.active => {
            return Err(Error::conflict(format!(
                "card {:?} is already registered: to change its unit, deactivate it and \
                 register it again",
                input.card
            )));
        }
        Some(existing) => Card {
            unit: input.unit,
            active: true,
            registered_ms: call.now_ms,
            deactivated_ms: None,
            ..existing
        },
        None => Card {
            card: input.card,
            unit: input.unit,
            active: true,
            registered_ms: call.now_ms,
            deactivated_ms: None,
            loans: Vec::new(),
        },
    };
    save(store, &key(&card.card), &card)?;
    view(store, call, card)
}

/// The input of `deactivate-card` and `get-card`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// The card number.
    pub card: String,
}

/// `deactivate-card`: the card may no longer borrow or renew; its open loans stay open
/// (they are listed in the answer) and can be returned.
pub fn deactivate(
    store: &mut impl Store,
    call: &Call,
    input: CardInput,
) -> Result<CardView, Error> {
    let card = load_card(store, &input.card)?.ok_or_else(|| unknown_card(&input.card))?;
    if !card.active {
        return Err(Error::conflict(format!(
            "card {:?} is already deactivated",
            input.card
        )));
    }
    let card = Card {
        active: false,
        deactivated_ms: Some(call.now_ms),
        ..card
    };
    save(store, &key(&card.card), &card)?;
    view(store, call, card)
}

/// `get-card`: a card and its open loans (what the resident app shows as "my books").
pub fn get(store: &mut impl Store, call: &Call, input: CardInput) -> Result<CardView, Error> {
    let card = load_card(store, &input.card)?.ok_or_else(|| unknown_card(&input.card))?;
    view(store, call, card)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use courtyard_sdk::testing::MemoryStore;

    fn call(config: &Config, now_ms: i64) -> Call<'_> {
        Call {
            now_ms,
            key: None,
            config,
            fetch: None,
        }
    }

    fn register_input(card: &str, unit: Option<&str>) -> RegisterInput {
        RegisterInput {
            card: card.into(),
            unit: unit.map(str::to_owned),
        }
    }

    fn card_input(card: &str) -> CardInput {
        CardInput { card: card.into() }
    }

    #[test]
    fn register_deactivate_reactivate() {
        let config = Config::default();
        let mut s = MemoryStore::default();
        let registered = register(
            &mut s,
            &call(&config, 10),
            register_input("RC-1", Some("3-502")),
        )
        .expect("register");
        assert_eq!(
            registered,
            CardView {
                card: "RC-1".into(),
                unit: Some("3-502".into()),
                active: true,
                loans: vec![]
            }
        );
        let before = s.clone();
        let again = register(&mut s, &call(&config, 11), register_input("RC-1", None))
            .expect_err("already registered");
        assert!(
            matches!(&again, Error::Conflict(m) if m.contains("already registered")),
            "{again}"
        );
        assert_eq!(s, before);

        let off = deactivate(&mut s, &call(&config, 20), card_input("RC-1")).expect("deactivate");
        assert!(!off.active);
        let stored = load_card(&mut s, "RC-1").expect("load").expect("card");
        assert_eq!(stored.deactivated_ms, Some(20));
        let err = require_active(&mut s, "RC-1").expect_err("inactive");
        assert!(
            matches!(&err, Error::Conflict(m) if m.contains("deactivated") && m.contains("register-card")),
            "{err}"
        );
        let before = s.clone();
        let twice = deactivate(&mut s, &call(&config, 21), card_input("RC-1")).expect_err("twice");
        assert!(
            matches!(&twice, Error::Conflict(m) if m.contains("already deactivated")),
            "{twice}"
        );
        assert_eq!(s, before);

        let back = register(
            &mut s,
            &call(&config, 30),
            register_input("RC-1", Some("4-101")),
        )
        .expect("reactivate");
        assert_eq!((back.active, back.unit.as_deref()), (true, Some("4-101")));
        let stored = load_card(&mut s, "RC-1").expect("load").expect("card");
        assert_eq!((stored.registered_ms, stored.deactivated_ms), (30, None));
        assert!(require_active(&mut s, "RC-1").is_ok());
        crate::tests::check_store(&s);
    }

    #[test]
    fn unknown_cards_are_not_found() {
        let config = Config::default();
        let mut s = MemoryStore::default();
        for err in [
            require_active(&mut s, "RC-9").expect_err("unknown"),
            get(&mut s, &call(&config, 0), card_input("RC-9")).expect_err("unknown"),
            deactivate(&mut s, &call(&config, 0), card_input("RC-9")).expect_err("unknown"),
        ] {
            assert!(
                matches!(&err, Error::NotFound(m) if m.contains("\"RC-9\"") && m.contains("register-card")),
                "{err}"
            );
        }
        assert!(s.data.is_empty());
    }
}
