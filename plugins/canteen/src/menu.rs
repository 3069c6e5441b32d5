//! Menus: one per date and meal slot, with dishes, prices in fen and a portion cap per
//! dish; when ordering for a slot closes (the cutoff, or the staff closing it by hand).
//!
//! A menu record counts the portions taken of each dish (`ordered`: live orders, and
//! orders cancelled once cooked, which are also counted as `wasted`), so the cap is
//! enforced with one read and the day's summary reads it back.

use crate::calendar::{Date, LocalDateTime};
use crate::config::Config;
use crate::events::{self, SlotClosed, SlotClosedDish};
use crate::store::{self, Store, keys};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A meal slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Breakfast.
    Breakfast,
    /// Lunch.
    Lunch,
    /// Dinner.
    Dinner,
}

impl Slot {
    /// The slots of a day, in meal order.
    pub const ALL: [Slot; 3] = [Slot::Breakfast, Slot::Lunch, Slot::Dinner];

    /// Its position in the day (used in state keys).
    pub fn index(self) -> u8 {
        match self {
            Slot::Breakfast => 0,
            Slot::Lunch => 1,
            Slot::Dinner => 2,
        }
    }

    /// Its name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Slot::Breakfast => "breakfast",
            Slot::Lunch => "lunch",
            Slot::Dinner => "dinner",
        }
    }

    /// The slot named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses the id of a numbered thing of a meal slot (an order, a delivery run):
/// `{date}-{slot}{separator}{number}`, the number of exactly `digits` digits. `None` if
/// `id` is not one.
pub fn parse_slot_id(id: &str, separator: &str, digits: usize) -> Option<(String, Slot, u32)> {
    let (rest, seq) = id.rsplit_once(separator)?;
    if seq.len() != digits || !seq.bytes().all(|b| b.is_ascii_digit()) || rest.len() < 12 {
        return None;
    }
    let (date, slot) = rest.split_at(10);
    let slot = slot.strip_prefix('-').and_then(Slot::from_name)?;
    Date::parse(date).ok()?;
    Some((date.to_owned(), slot, seq.parse().ok()?))
}

/// A menu as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Menu {
    /// The meal's date (`YYYY-MM-DD`).
    pub date: String,
    /// The meal slot.
    pub slot: Slot,
    /// The dishes, in the order the staff listed them.
    pub dishes: Vec<Dish>,
    /// When ordering closes (local `YYYY-MM-DDTHH:MM`), if not the config's default.
    #[serde(default)]
    pub cutoff_at: Option<String>,
    /// Set while the staff hold the slot closed.
    #[serde(default)]
    pub closed: Option<Closure>,
    /// Whether `canteen.slot-closed` was emitted for the current closing.
    #[serde(default)]
    pub close_notified: bool,
}

/// A dish on a menu, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dish {
    /// The dish's id on this menu.
    pub dish_id: String,
    /// Its name, for residents.
    pub name: String,
    /// Its price per portion, in fen.
    pub price_fen: u64,
    /// The most portions that may be ordered.
    pub cap: u32,
    /// The portions taken from the cap: by live (not cancelled) orders, and by orders
    /// cancelled after they were cooked (`wasted`).
    pub ordered: u32,
    /// Of `ordered`, the portions of orders cancelled once cooked (ready or out for
    /// delivery): they stay taken, so that no one orders them again.
    #[serde(default)]
    pub wasted: u32,
}

/// Who closed a slot by hand, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    /// The staff's note, shown to residents who try to order.
    pub note: Option<String>,
    /// Who closed it.
    pub actor: Option<String>,
    /// When.
    pub at_ms: i64,
}

/// Whether a slot takes orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotStatus {
    /// Orders are taken.
    Open,
    /// The staff closed it (`close-slot`).
    ClosedByStaff,
    /// Its cutoff has passed.
    PastCutoff,
}

/// A menu as operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MenuView {
    /// The meal's date.
    pub date: String,
    /// The meal slot.
    pub slot: Slot,
    /// Whether it takes orders now.
    pub status: SlotStatus,
    /// The staff's note when they closed it.
    pub closed_note: Option<String>,
    /// When ordering closes (local time).
    pub cutoff_at: String,
    /// The dishes.
    pub dishes: Vec<DishView>,
}

/// A dish as operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DishView {
    /// The dish's id.
    pub dish_id: String,
    /// Its name.
    pub name: String,
    /// Price per portion, in fen.
    pub price_fen: u64,
    /// The portion cap.
    pub cap: u32,
    /// Portions taken from the cap (orders cancelled before cooking excluded).
    pub ordered: u32,
    /// Portions left.
    pub remaining: u32,
    /// Whether none are left.
    pub sold_out: bool,
}

impl Menu {
    /// When ordering closes.
    pub fn cutoff(&self, config: &Config) -> Result<LocalDateTime, Error> {
        match &self.cutoff_at {
            Some(at) => LocalDateTime::parse(at)
                .map_err(|e| Error::internal(format!("stored cutoff of {}: {e}", self.label()))),
            None => Ok(LocalDateTime {
                date: Date::parse(&self.date).map_err(Error::internal)?,
                time: config.cutoff(self.slot)?,
            }),
        }
    }

    /// Whether it takes orders at `now_ms`.
    pub fn status(&self, config: &Config, now_ms: i64) -> Result<SlotStatus, Error> {
        if self.closed.is_some() {
            return Ok(SlotStatus::ClosedByStaff);
        }
        if now_ms >= self.cutoff(config)?.to_utc_ms(config.utc_offset_minutes) {
            return Ok(SlotStatus::PastCutoff);
        }
        Ok(SlotStatus::Open)
    }

    /// A conflict unless it takes orders at `now_ms`.
    pub fn ensure_open(&self, config: &Config, now_ms: i64) -> Result<(), Error> {
        match self.status(config, now_ms)? {
            SlotStatus::Open => Ok(()),
            SlotStatus::ClosedByStaff => {
                let note = self
                    .closed
                    .as_ref()
                    .and_then(|c| c.note.as_deref())
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                Err(Error::conflict(format!(
                    "{} is closed: the canteen staff closed ordering{note}; choose another meal, or ask the staff to reopen it",
                    self.label()
                )))
            }
            SlotStatus::PastCutoff => Err(Error::conflict(format!(
                "{} is closed: ordering closed at {} (the cutoff); choose a later meal",
                self.label(),
                self.cutoff(config)?
            ))),
        }
    }

    /// "lunch on 2099-12-01", for messages.
    pub fn label(&self) -> String {
        format!("{} on {}", self.slot, self.date)
    }

    /// The dish with id `dish_id`, or not-found naming the menu.
    pub fn dish_mut(&mut self, dish_id: &str) -> Result<&mut Dish, Error> {
        let label = self.label();
        self.dishes
            .iter_mut()
            .find(|d| d.dish_id == dish_id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "dish {dish_id:?} is not on the menu for {label}; see get-menu for what is served"
                ))
            })
    }

    /// Takes `portions` of a dish from its cap, or a conflict saying what is left.
    pub fn reserve(&mut self, dish_id: &str, portions: u32) -> Result<&Dish, Error> {
        let label = self.label();
        let dish = self.dish_mut(dish_id)?;
        let remaining = dish.cap.saturating_sub(dish.ordered);
        if remaining == 0 {
            return Err(Error::conflict(format!(
                "dish {dish_id:?} is sold out for {label} (cap {}); choose another dish",
                dish.cap
            )));
        }
        if portions > remaining {
            return Err(Error::conflict(format!(
                "only {remaining} portion(s) of dish {dish_id:?} are left for {label} (cap {}); order at most {remaining}",
                dish.cap
            )));
        }
        dish.ordered += portions;
        Ok(dish)
    }

    /// Gives `portions` of a dish back to its cap (an order cancelled before it was cooked).
    pub fn release(&mut self, dish_id: &str, portions: u32) {
        // A dish with live orders cannot be removed from its menu (see `set_menu`).
        if let Some(dish) = self.dishes.iter_mut().find(|d| d.dish_id == dish_id) {
            dish.ordered = dish.ordered.saturating_sub(portions);
        }
    }

    /// Counts `portions` of a dish as wasted (an order cancelled once cooked): they stay
    /// taken from the cap.
    pub fn waste(&mut self, dish_id: &str, portions: u32) {
        if let Some(dish) = self.dishes.iter_mut().find(|d| d.dish_id == dish_id) {
            dish.wasted = dish.wasted.saturating_add(portions).min(dish.ordered);
        }
    }

    /// The menu as operations return it.
    pub fn view(&self, config: &Config, now_ms: i64) -> Result<MenuView, Error> {
        Ok(MenuView {
            date: self.date.clone(),
            slot: self.slot,
            status: self.status(config, now_ms)?,
            closed_note: self.closed.as_ref().and_then(|c| c.note.clone()),
            cutoff_at: self.cutoff(config)?.to_string(),
            dishes: self
                .dishes
                .iter()
                .map(|d| {
                    let remaining = d.cap.saturating_sub(d.ordered);
                    DishView {
                        dish_id: d.dish_id.clone(),
                        name: d.name.clone(),
                        price_fen: d.price_fen,
                        cap: d.cap,
                        ordered: d.ordered,
                        remaining,
                        sold_out: remaining == 0,
                    }
                })
                .collect(),
        })
    }

    /// The payload of `canteen.slot-closed`.
    fn closed_event(&self, config: &Config, reason: &str) -> Result<SlotClosed, Error> {
        Ok(SlotClosed {
            date: self.date.clone(),
            slot: self.slot,
            reason: reason.to_owned(),
            note: self.closed.as_ref().and_then(|c| c.note.clone()),
            cutoff_at: self.cutoff(config)?.to_string(),
            dishes: self
                .dishes
                .iter()
                .map(|d| SlotClosedDish {
                    dish_id: d.dish_id.clone(),
                    name: d.name.clone(),
                    ordered: d.ordered,
                })
                .collect(),
        })
    }

    /// Emits `canteen.slot-closed` once per closing, if the slot is closed at `now_ms`.
    /// Returns whether it did.
    pub fn notify_if_closed(
        &mut self,
        store: &mut impl Store,
        config: &Config,
        now_ms: i64,
    ) -> Result<bool, Error> {
        if self.close_notified {
            return Ok(false);
        }
        let reason = match self.status(config, now_ms)? {
            SlotStatus::Open => return Ok(false),
            SlotStatus::ClosedByStaff => "staff",
            SlotStatus::PastCutoff => "cutoff",
        };
        store::emit(
            store,
            events::SLOT_CLOSED,
            &self.closed_event(config, reason)?,
        )?;
        self.close_notified = true;
        Ok(true)
    }
}

/// Parses a date from an input, as invalid-input.
pub fn parse_date(s: &str) -> Result<Date, Error> {
    Date::parse(s).map_err(Error::invalid_input)
}

/// The menu of a slot, or not-found.
pub fn load(store: &mut impl Store, date: &str, slot: Slot) -> Result<Menu, Error> {
    store::load(store, &keys::menu(date, slot))?.ok_or_else(|| {
        Error::not_found(format!(
            "there is no {slot} menu for {date}; the canteen staff publish menus with set-menu"
        ))
    })
}

/// Stores a menu. A menu that may still owe a `canteen.slot-closed` event moves the
/// sweep's cursor back to its date, so that the sweep finds it.
pub fn save(store: &mut impl Store, menu: &Menu) -> Result<(), Error> {
    if !menu.close_notified {
        let cursor: Option<String> = store::load(store, keys::SWEEP_CURSOR)?;
        if cursor.is_some_and(|c| c > menu.date) {
            store::save(store, keys::SWEEP_CURSOR, &menu.date)?;
        }
    }
    store::save(store, &keys::menu(&menu.date, menu.slot), menu)
}

/// Checks a menu's own cutoff: a real local time, no later than the meal's day.
fn check_cutoff(date: Date, cutoff_at: &str) -> Result<LocalDateTime, Error> {
    let cutoff = LocalDateTime::parse(cutoff_at)
        .map_err(|e| Error::invalid_input(format!("cutoff_at: {e}")))?;
    if cutoff.date > date {
        return Err(Error::invalid_input(format!(
            "cutoff_at {cutoff_at} is after the meal's day {date}; ordering must close on or before it"
        )));
    }
    Ok(cutoff)
}

/// Input of `set-menu`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMenuInput {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// The dishes (replacing the menu's dishes).
    pub dishes: Vec<DishInput>,
    /// When ordering closes, if not the config's default for the slot.
    #[serde(default)]
    pub cutoff_at: Option<String>,
}

/// A dish in `set-menu`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DishInput {
    /// The dish's id on this menu.
    pub dish_id: String,
    /// Its name.
    pub name: String,
    /// Price per portion, in fen.
    pub price_fen: u64,
    /// The portion cap.
    pub cap: u32,
}

/// `set-menu`: creates or replaces the menu of a slot. Portions already ordered are kept:
/// a dish with live orders cannot be removed, nor its cap set below them. The staff's
/// closing of the slot, if any, stays.
pub fn set_menu(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: SetMenuInput,
) -> Result<MenuView, Error> {
    let date = parse_date(&input.date)?;
    if let Some(at) = &input.cutoff_at {
        check_cutoff(date, at)?;
    }
    for (i, dish) in input.dishes.iter().enumerate() {
        if input.dishes[..i].iter().any(|d| d.dish_id == dish.dish_id) {
            return Err(Error::invalid_input(format!(
                "dish {:?} is listed twice; give each dish its own dish_id",
                dish.dish_id
            )));
        }
    }
    let key = keys::menu(&input.date, input.slot);
    let previous: Option<Menu> = store::load(store, &key)?;
    let label = format!("{} on {}", input.slot, input.date);
    let mut dishes = Vec::with_capacity(input.dishes.len());
    for d in input.dishes {
        let (ordered, wasted) = previous
            .as_ref()
            .and_then(|m| m.dishes.iter().find(|p| p.dish_id == d.dish_id))
            .map_or((0, 0), |p| (p.ordered, p.wasted));
        if d.cap < ordered {
            return Err(Error::conflict(format!(
                "the cap of dish {:?} for {label} cannot be {}: {ordered} portion(s) are already ordered; set a cap of at least {ordered}, or cancel orders first",
                d.dish_id, d.cap
            )));
        }
        dishes.push(Dish {
            dish_id: d.dish_id,
            name: d.name,
            price_fen: d.price_fen,
            cap: d.cap,
            ordered,
            wasted,
        });
    }
    if let Some(prev) = &previous {
        for old in &prev.dishes {
            if old.ordered > 0 && !dishes.iter().any(|d| d.dish_id == old.dish_id) {
                return Err(Error::conflict(format!(
                    "dish {:?} cannot be removed from the menu for {label}: {} portion(s) are ordered; keep it (with a cap of {}) or cancel those orders first",
                    old.dish_id, old.ordered, old.ordered
                )));
            }
        }
    }
    let mut menu = Menu {
        date: input.date,
        slot: input.slot,
        dishes,
        cutoff_at: input.cutoff_at,
        closed: previous.as_ref().and_then(|m| m.closed.clone()),
        close_notified: previous.as_ref().is_some_and(|m| m.close_notified),
    };
    if menu.status(config, now_ms)? == SlotStatus::Open {
        // A new cutoff in the future: the slot will close (and be announced) again.
        menu.close_notified = false;
    }
    save(store, &menu)?;
    menu.view(config, now_ms)
}

/// Input naming a slot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotInput {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
}

/// `get-menu`: the menu of a slot, with what is left of each dish.
pub fn get_menu(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: SlotInput,
) -> Result<MenuView, Error> {
    parse_date(&input.date)?;
    load(store, &input.date, input.slot)?.view(config, now_ms)
}

/// Input of `close-slot`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseSlotInput {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// Why, shown to residents who try to order.
    #[serde(default)]
    pub note: Option<String>,
    /// Who closes it.
    #[serde(default)]
    pub actor: Option<String>,
}

/// `close-slot`: the staff stop ordering for a slot now (before its cutoff). Emits
/// `canteen.slot-closed` with the portions to cook.
pub fn close_slot(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: CloseSlotInput,
) -> Result<MenuView, Error> {
    parse_date(&input.date)?;
    let mut menu = load(store, &input.date, input.slot)?;
    match menu.status(config, now_ms)? {
        SlotStatus::Open => {}
        SlotStatus::ClosedByStaff => {
            return Err(Error::conflict(format!(
                "{} is already closed by the staff; reopen it with open-slot",
                menu.label()
            )));
        }
        SlotStatus::PastCutoff => {
            return Err(Error::conflict(format!(
                "{} is already closed: its cutoff {} has passed",
                menu.label(),
                menu.cutoff(config)?
            )));
        }
    }
    menu.closed = Some(Closure {
        note: input.note,
        actor: input.actor,
        at_ms: now_ms,
    });
    menu.close_notified = false;
    menu.notify_if_closed(store, config, now_ms)?;
    save(store, &menu)?;
    menu.view(config, now_ms)
}

/// Input of `open-slot`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSlotInput {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// A new cutoff (local `YYYY-MM-DDTHH:MM`), to reopen a slot whose cutoff passed.
    #[serde(default)]
    pub cutoff_at: Option<String>,
}

/// `open-slot`: lifts the staff's closing, and/or moves the cutoff later, so that the
/// slot takes orders again.
pub fn open_slot(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: OpenSlotInput,
) -> Result<MenuView, Error> {
    let date = parse_date(&input.date)?;
    let mut menu = load(store, &input.date, input.slot)?;
    if let Some(at) = &input.cutoff_at {
        let cutoff = check_cutoff(date, at)?;
        if now_ms >= cutoff.to_utc_ms(config.utc_offset_minutes) {
            return Err(Error::invalid_input(format!(
                "cutoff_at {at} has already passed; give a later time to reopen {}",
                menu.label()
            )));
        }
    }
    let before = menu.status(config, now_ms)?;
    if before == SlotStatus::Open && input.cutoff_at.is_none() {
        return Err(Error::conflict(format!(
            "{} is already open for ordering until {}",
            menu.label(),
            menu.cutoff(config)?
        )));
    }
    if before == SlotStatus::PastCutoff && input.cutoff_at.is_none() {
        return Err(Error::conflict(format!(
            "{} closed at its cutoff {}; to reopen it, pass a later cutoff_at",
            menu.label(),
            menu.cutoff(config)?
        )));
    }
    menu.closed = None;
    if input.cutoff_at.is_some() {
        menu.cutoff_at = input.cutoff_at;
    }
    if menu.status(config, now_ms)? != SlotStatus::Open {
        return Err(Error::conflict(format!(
            "{} would still be closed: its cutoff {} has passed; pass a later cutoff_at",
            menu.label(),
            menu.cutoff(config)?
        )));
    }
    menu.close_notified = false;
    save(store, &menu)?;
    menu.view(config, now_ms)
}

/// Input of `list-menus`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMenusInput {
    /// The first date.
    pub from: String,
    /// The last date (inclusive); no limit if absent.
    #[serde(default)]
    pub to: Option<String>,
    /// Continue after this cursor (`next` of the previous page).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 21, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Output of `list-menus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListMenusOutput {
    /// The menus, by date and slot.
    pub menus: Vec<MenuView>,
    /// The cursor of the next page (`2099-12-01/lunch`), or null at the end.
    pub next: Option<String>,
}

/// The cursor of a menu in `list-menus`.
fn menu_cursor(menu: &Menu) -> String {
    format!("{}/{}", menu.date, menu.slot)
}

/// `list-menus`: menus from a date on, a page at a time.
pub fn list_menus(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: ListMenusInput,
) -> Result<ListMenusOutput, Error> {
    parse_date(&input.from)?;
    if let Some(to) = &input.to {
        parse_date(to)?;
    }
    let limit = input.limit.unwrap_or(21).clamp(1, 100);
    let start_after = match &input.after {
        Some(cursor) => {
            let bad = || {
                Error::invalid_input(format!(
                    "after {cursor:?} is not a cursor from list-menus (like 2099-12-01/lunch)"
                ))
            };
            let (date, slot) = cursor.split_once('/').ok_or_else(bad)?;
            Date::parse(date).map_err(|_| bad())?;
            let slot = Slot::from_name(slot).ok_or_else(bad)?;
            keys::menu(date, slot).max(keys::menu_day_prefix(&input.from))
        }
        // "menu/{from}/" sorts before every menu of that day and after every earlier one.
        None => keys::menu_day_prefix(&input.from),
    };
    let page: Vec<(String, Menu)> =
        store::scan(store, keys::MENU_PREFIX, Some(&start_after), limit + 1)?;
    let mut menus = Vec::new();
    let mut more = false;
    for (_, menu) in page {
        if input.to.as_ref().is_some_and(|to| menu.date > *to) {
            break;
        }
        if menus.len() == limit as usize {
            more = true;
            break;
        }
        menus.push(menu);
    }
    let next = if more {
        menus.last().map(menu_cursor)
    } else {
        None
    };
    Ok(ListMenusOutput {
        menus: menus
            .iter()
            .map(|m| m.view(config, now_ms))
            .collect::<Result<_, _>>()?,
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// The input of `open-slot` for lunch on [`DAY`], with no new cutoff.
    fn open_input() -> OpenSlotInput {
        OpenSlotInput {
            date: DAY.into(),
            slot: Slot::Lunch,
            cutoff_at: None,
        }
    }

    /// The date and slot of each menu of a page.
    fn listed(page: &ListMenusOutput) -> Vec<(&str, Slot)> {
        page.menus
            .iter()
            .map(|m| (m.date.as_str(), m.slot))
            .collect()
    }

    #[test]
    fn a_menu_is_created_replaced_and_read() {
        let mut s = MemoryStore::default();
        let c = Config::default();
        let view = set_menu(&mut s, &c, NOW, menu_input(DAY, Slot::Lunch)).expect("set");
        assert_eq!(view.status, SlotStatus::Open);
        assert_eq!(view.cutoff_at, format!("{DAY}T10:00"));
        assert_eq!(view.dishes.len(), 2);
        assert_eq!(view.dishes[0].remaining, 3);
        let read = get_menu(&mut s, &c, NOW, slot_input(DAY, Slot::Lunch)).expect("get");
        assert_eq!(read, view);
        let mut input = menu_input(DAY, Slot::Lunch);
        input.dishes.truncate(1);
        input.dishes[0].price_fen = 900;
        input.cutoff_at = Some(format!("{DAY}T09:00"));
        let view = set_menu(&mut s, &c, NOW, input).expect("replace");
        assert_eq!(view.dishes.len(), 1);
        assert_eq!(view.dishes[0].price_fen, 900);
        assert_eq!(view.cutoff_at, format!("{DAY}T09:00"));
    }

    #[test]
    fn set_menu_refuses_bad_menus() {
        let mut s = MemoryStore::default();
        let c = Config::default();
        let mut input = menu_input(DAY, Slot::Lunch);
        input.dishes[1].dish_id = input.dishes[0].dish_id.clone();
        assert_invalid(set_menu(&mut s, &c, NOW, input), "listed twice");
        let mut input = menu_input(DAY, Slot::Lunch);
        input.cutoff_at = Some("2099-12-02T09:00".into());
        assert_invalid(set_menu(&mut s, &c, NOW, input), "after the meal's day");
        let mut input = menu_input(DAY, Slot::Lunch);
        input.date = "2099-02-30".into();
        assert_invalid(set_menu(&mut s, &c, NOW, input), "does not exist");
        assert!(s.data.is_empty(), "nothing stored");
    }

    #[test]
    fn set_menu_keeps_ordered_portions_and_protects_them() {
        let mut s = lunch_menu();
        let c = Config::default();
        let mut menu = load(&mut s, DAY, Slot::Lunch).expect("menu");
        menu.reserve("tofu", 2).expect("reserve");
        save(&mut s, &menu).expect("save");
        // Lowering the cap below what is ordered is refused.
        let mut input = menu_input(DAY, Slot::Lunch);
        input.dishes[0].cap = 1;
        assert_conflict(
            set_menu(&mut s, &c, NOW, input),
            "2 portion(s) are already ordered",
        );
        // Removing an ordered dish is refused.
        let mut input = menu_input(DAY, Slot::Lunch);
        input.dishes.remove(0);
        assert_conflict(set_menu(&mut s, &c, NOW, input), "cannot be removed");
        // Replacing keeps the count.
        let view = set_menu(&mut s, &c, NOW, menu_input(DAY, Slot::Lunch)).expect("set");
        assert_eq!((view.dishes[0].ordered, view.dishes[0].remaining), (2, 1));
    }

    #[test]
    fn the_cap_is_enforced_with_a_clear_reason() {
        let mut s = lunch_menu();
        let c = Config::default();
        let mut menu = load(&mut s, DAY, Slot::Lunch).expect("menu");
        assert_conflict(menu.reserve("tofu", 4), "only 3 portion(s)");
        menu.reserve("tofu", 3).expect("all of it");
        assert_conflict(
            menu.reserve("tofu", 1),
            "sold out for lunch on 2099-12-01 (cap 3)",
        );
        assert_not_found(menu.reserve("caviar", 1), "not on the menu");
        menu.release("tofu", 2);
        assert_eq!(menu.view(&c, NOW).expect("view").dishes[0].remaining, 2);
    }

    #[test]
    fn slots_close_at_the_cutoff_in_local_time() {
        let mut s = lunch_menu();
        let c = Config::default();
        let menu = load(&mut s, DAY, Slot::Lunch).expect("menu");
        let cutoff = local_ms(&format!("{DAY}T10:00"));
        assert_eq!(menu.status(&c, cutoff - 1), Ok(SlotStatus::Open));
        assert_eq!(menu.status(&c, cutoff), Ok(SlotStatus::PastCutoff));
        assert_conflict(
            menu.ensure_open(&c, cutoff),
            "ordering closed at 2099-12-01T10:00",
        );
        // The same instant in a community on UTC is 02:00 local: still open.
        let utc = Config {
            utc_offset_minutes: 0,
            ..Config::default()
        };
        assert_eq!(menu.status(&utc, cutoff), Ok(SlotStatus::Open));
    }

    #[test]
    fn closing_by_hand_notifies_once_and_reopening_works() {
        let mut s = lunch_menu();
        let c = Config::default();
        let closed =
            close_slot(&mut s, &c, NOW, close_input(Some("kitchen inspection"))).expect("close");
        assert_eq!(closed.status, SlotStatus::ClosedByStaff);
        assert_eq!(closed.closed_note.as_deref(), Some("kitchen inspection"));
        assert_eq!(event_kinds(&s), [events::SLOT_CLOSED]);
        assert_eq!(s.events[0].1["reason"], "staff");
        let menu = load(&mut s, DAY, Slot::Lunch).expect("menu");
        assert_conflict(menu.ensure_open(&c, NOW), "kitchen inspection");
        assert_conflict(
            close_slot(&mut s, &c, NOW, close_input(None)),
            "already closed by the staff",
        );
        let view = open_slot(&mut s, &c, NOW, open_input()).expect("open");
        assert_eq!(view.status, SlotStatus::Open);
        assert_eq!(view.closed_note, None);
        assert_conflict(open_slot(&mut s, &c, NOW, open_input()), "already open");
        // Closing again announces again.
        close_slot(&mut s, &c, NOW, close_input(None)).expect("close");
        assert_eq!(s.events.len(), 2);
    }

    #[test]
    fn a_slot_past_its_cutoff_reopens_only_with_a_later_cutoff() {
        let mut s = lunch_menu();
        let c = Config::default();
        let late = local_ms(&format!("{DAY}T10:30"));
        assert_conflict(
            close_slot(&mut s, &c, late, close_input(None)),
            "cutoff 2099-12-01T10:00 has passed",
        );
        let mut open = open_input();
        assert_conflict(
            open_slot(&mut s, &c, late, open.clone()),
            "pass a later cutoff_at",
        );
        open.cutoff_at = Some(format!("{DAY}T10:15"));
        assert_invalid(open_slot(&mut s, &c, late, open.clone()), "already passed");
        open.cutoff_at = Some(format!("{DAY}T11:00"));
        let view = open_slot(&mut s, &c, late, open).expect("reopen");
        assert_eq!(
            (view.status, view.cutoff_at.as_str()),
            (SlotStatus::Open, "2099-12-01T11:00")
        );
    }

    #[test]
    fn unknown_menus_are_not_found() {
        let mut s = MemoryStore::default();
        let c = Config::default();
        assert_not_found(
            get_menu(&mut s, &c, NOW, slot_input(DAY, Slot::Dinner)),
            "set-menu",
        );
    }

    #[test]
    fn list_menus_pages_in_date_and_slot_order() {
        let mut s = MemoryStore::default();
        let c = Config::default();
        for (date, slot) in [
            ("2099-12-02", Slot::Breakfast),
            ("2099-12-01", Slot::Dinner),
            ("2099-12-01", Slot::Lunch),
            ("2099-11-30", Slot::Lunch),
            ("2099-12-03", Slot::Lunch),
        ] {
            set_menu(&mut s, &c, NOW, menu_input(date, slot)).expect("set");
        }
        let input = |after: Option<String>| ListMenusInput {
            from: "2099-12-01".into(),
            to: Some("2099-12-02".into()),
            after,
            limit: Some(2),
        };
        let page = list_menus(&mut s, &c, NOW, input(None)).expect("list");
        assert_eq!(
            listed(&page),
            [("2099-12-01", Slot::Lunch), ("2099-12-01", Slot::Dinner)]
        );
        assert_eq!(page.next.as_deref(), Some("2099-12-01/dinner"));
        let page = list_menus(&mut s, &c, NOW, input(page.next)).expect("list");
        assert_eq!(listed(&page), [("2099-12-02", Slot::Breakfast)]);
        assert_eq!(page.next, None);
        assert_invalid(
            list_menus(&mut s, &c, NOW, input(Some("x".into()))),
            "cursor",
        );
    }
}
