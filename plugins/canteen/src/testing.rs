//! Fixtures and assertions shared by the unit tests.

pub use crate::config::Config;
pub use crate::orders::{self, Action, Fulfilment, OrderState, Role, place};
pub use courtyard_sdk::testing::MemoryStore;

use crate::calendar::LocalDateTime;
use crate::delivery;
use crate::eligibility::{self, RegisterInput};
use crate::menu::{self, CloseSlotInput, DishInput, SetMenuInput, Slot, SlotInput};
use crate::orders::{CancelOrderInput, ItemInput, Order, OrderActionInput, PlaceOrderInput};
use courtyard_sdk::Error;
use std::fmt::Debug;

/// "Now" in most tests: 2099-11-30T12:00 in UTC+8 (the default offset).
pub const NOW: i64 = 4_099_694_400_000;
/// The day most tests order for.
pub const DAY: &str = "2099-12-01";

#[test]
fn now_is_what_it_says() {
    assert_eq!(local_ms("2099-11-30T12:00"), NOW);
}

/// A local time (UTC+8) in ms.
pub fn local_ms(at: &str) -> i64 {
    LocalDateTime::parse(at).expect("local time").to_utc_ms(480)
}

/// A menu with tofu (800 fen, cap 3) and rice (200 fen, cap 20).
pub fn menu_input(date: &str, slot: Slot) -> SetMenuInput {
    SetMenuInput {
        date: date.into(),
        slot,
        dishes: vec![
            DishInput {
                dish_id: "tofu".into(),
                name: "Braised tofu".into(),
                price_fen: 800,
                cap: 3,
            },
            DishInput {
                dish_id: "rice".into(),
                name: "Rice".into(),
                price_fen: 200,
                cap: 20,
            },
        ],
        cutoff_at: None,
    }
}

/// Publishes [`menu_input`] at [`NOW`].
pub fn set_menu_for(s: &mut MemoryStore, date: &str, slot: Slot) {
    menu::set_menu(s, &Config::default(), NOW, menu_input(date, slot)).expect("set menu");
}

/// A store with nothing but [`menu_input`] for lunch on [`DAY`].
pub fn lunch_menu() -> MemoryStore {
    let mut s = MemoryStore::default();
    set_menu_for(&mut s, DAY, Slot::Lunch);
    s
}

/// The input of `close-slot` for lunch on [`DAY`].
pub fn close_input(note: Option<&str>) -> CloseSlotInput {
    CloseSlotInput {
        date: DAY.into(),
        slot: Slot::Lunch,
        note: note.map(str::to_owned),
        actor: None,
    }
}

/// Names a slot.
pub fn slot_input(date: &str, slot: Slot) -> SlotInput {
    SlotInput {
        date: date.into(),
        slot,
    }
}

/// A registration.
pub fn register_input(id: &str, birth_date: &str, mobility_limited: bool) -> RegisterInput {
    RegisterInput {
        resident_id: id.into(),
        name: format!("Resident {id}"),
        birth_date: birth_date.into(),
        address: "Building 1, Room 101".into(),
        phone: Some("139 0000 0000".into()),
        mobility_limited,
    }
}

/// The lunch menu of [`DAY`] and three residents: `r-old` (69, may have meals delivered),
/// `r-young` (29, may not) and `r-limited` (29, mobility-limited: may).
pub fn setup() -> MemoryStore {
    let mut s = lunch_menu();
    let c = Config::default();
    for (id, birth, limited) in [
        ("r-old", "2030-01-01", false),
        ("r-young", "2070-01-01", false),
        ("r-limited", "2070-01-01", true),
    ] {
        eligibility::register(&mut s, &c, NOW, register_input(id, birth, limited))
            .expect("register");
    }
    s
}

/// An order for lunch on [`DAY`].
pub fn order_input(
    resident: &str,
    fulfilment: Fulfilment,
    items: &[(&str, u32)],
) -> PlaceOrderInput {
    PlaceOrderInput {
        resident_id: resident.into(),
        date: DAY.into(),
        slot: Slot::Lunch,
        fulfilment,
        items: items
            .iter()
            .map(|(dish, portions)| ItemInput {
                dish_id: (*dish).into(),
                portions: *portions,
            })
            .collect(),
        note: None,
        actor: None,
    }
}

/// Places `input` at [`NOW`]; the new order's id.
pub fn place_id(s: &mut MemoryStore, config: &Config, input: PlaceOrderInput) -> String {
    place(s, config, NOW, input)
        .unwrap_or_else(|e| panic!("place: {e}"))
        .order_id
}

/// The input of a one-order operation.
pub fn action_input(order_id: &str) -> OrderActionInput {
    OrderActionInput {
        order_id: order_id.into(),
        actor: None,
    }
}

/// The input of `cancel-order`.
pub fn cancel_input(order_id: &str, by: Role) -> CancelOrderInput {
    CancelOrderInput {
        order_id: order_id.into(),
        by,
        reason: None,
        actor: None,
    }
}

/// Runs one action on an order the way its operation does (`start-run` is applied to the
/// order alone here; `delivery` tests the run).
pub fn run_action(s: &mut MemoryStore, order_id: &str, action: Action) -> Result<Order, Error> {
    match action {
        Action::Cancel(by) => {
            orders::cancel(s, &Config::default(), NOW, cancel_input(order_id, by))
        }
        other => orders::transition(s, NOW, action_input(order_id), other),
    }
}

/// Applies actions that must succeed.
pub fn advance(s: &mut MemoryStore, order_id: &str, actions: &[Action]) {
    for action in actions {
        run_action(s, order_id, *action)
            .unwrap_or_else(|e| panic!("{action:?} on {order_id}: {e}"));
    }
}

/// The states an order of this kind can reach.
pub fn reachable_states(f: Fulfilment) -> Vec<OrderState> {
    use OrderState::*;
    match f {
        Fulfilment::Pickup => vec![Placed, Accepted, Ready, PickedUp, Cancelled],
        Fulfilment::Delivery => vec![
            Placed,
            Accepted,
            Ready,
            OutForDelivery,
            Delivered,
            Cancelled,
        ],
    }
}

fn assign(s: &mut MemoryStore, order_id: &str) {
    delivery::assign(
        s,
        NOW,
        delivery::AssignInput {
            courier: "Li".into(),
            order_ids: vec![order_id.into()],
            note: None,
            actor: None,
        },
    )
    .expect("assign");
}

fn start_run_of(s: &mut MemoryStore, order_id: &str) {
    let run_id = orders::load(s, order_id)
        .expect("order")
        .run_id
        .expect("on a run");
    delivery::start(
        s,
        NOW,
        delivery::RunIdInput {
            run_id,
            actor: None,
        },
    )
    .expect("start run");
}

/// [`setup`] plus one order of `r-old` (one tofu) driven to `state` the way the canteen
/// would: delivery orders out for delivery or delivered went through a run; a cancelled
/// order was cancelled by the staff while placed. Not assigned otherwise.
pub fn order_in_state(f: Fulfilment, state: OrderState) -> (MemoryStore, String) {
    use OrderState::*;
    let mut s = setup();
    let id = place_id(
        &mut s,
        &Config::default(),
        order_input("r-old", f, &[("tofu", 1)]),
    );
    match state {
        Placed => {}
        Accepted => advance(&mut s, &id, &[Action::Accept]),
        Ready => advance(&mut s, &id, &[Action::Accept, Action::MarkReady]),
        PickedUp => advance(
            &mut s,
            &id,
            &[Action::Accept, Action::MarkReady, Action::MarkPickedUp],
        ),
        OutForDelivery | Delivered => {
            advance(&mut s, &id, &[Action::Accept, Action::MarkReady]);
            assign(&mut s, &id);
            start_run_of(&mut s, &id);
            if state == Delivered {
                advance(&mut s, &id, &[Action::MarkDelivered]);
            }
        }
        Cancelled => advance(&mut s, &id, &[Action::Cancel(Role::Staff)]),
    }
    assert_eq!(orders::load(&mut s, &id).expect("order").state, state);
    (s, id)
}

/// A delivery order in `state` that is on a run wherever it can be: assigned while
/// accepted or ready; a cancelled one was cancelled by the staff while on its run.
pub fn assigned_order_in_state(state: OrderState) -> (MemoryStore, String) {
    use OrderState::*;
    match state {
        Accepted | Ready => {
            let (mut s, id) = order_in_state(Fulfilment::Delivery, state);
            assign(&mut s, &id);
            (s, id)
        }
        Cancelled => {
            let (mut s, id) = order_in_state(Fulfilment::Delivery, Accepted);
            assign(&mut s, &id);
            advance(&mut s, &id, &[Action::Cancel(Role::Staff)]);
            (s, id)
        }
        other => order_in_state(Fulfilment::Delivery, other),
    }
}

/// Portions of a dish ordered on the lunch menu of [`DAY`].
pub fn menu_ordered(s: &mut MemoryStore, dish: &str) -> u32 {
    menu::load(s, DAY, Slot::Lunch)
        .expect("menu")
        .dishes
        .iter()
        .find(|d| d.dish_id == dish)
        .expect("dish")
        .ordered
}

/// The kinds of the events emitted so far.
pub fn event_kinds(s: &MemoryStore) -> Vec<&str> {
    s.events.iter().map(|(kind, _)| kind.as_str()).collect()
}

/// Asserts what the host refuses and the in-memory store lets through: every state key is
/// 1 to 512 bytes long and every event payload is a JSON object.
pub fn assert_host_limits(s: &MemoryStore) {
    for key in s.data.keys() {
        assert!(!key.is_empty() && key.len() <= 512, "bad key {key:?}");
    }
    for (kind, payload) in &s.events {
        assert!(payload.is_object(), "{kind}: event payloads are objects");
    }
}

fn assert_error<T: Debug>(r: Result<T, Error>, kind: &str, needle: &str) {
    let (got_kind, message) = match &r {
        Err(Error::Conflict(m)) => ("conflict", m),
        Err(Error::InvalidInput(m)) => ("invalid_input", m),
        Err(Error::NotFound(m)) => ("not_found", m),
        other => panic!("expected {kind} containing {needle:?}, got {other:?}"),
    };
    assert_eq!(got_kind, kind, "{message}");
    assert!(
        message.contains(needle),
        "{message:?} does not contain {needle:?}"
    );
}

/// Asserts a conflict whose message contains `needle`.
pub fn assert_conflict<T: Debug>(r: Result<T, Error>, needle: &str) {
    assert_error(r, "conflict", needle);
}

/// Asserts an invalid-input whose message contains `needle`.
pub fn assert_invalid<T: Debug>(r: Result<T, Error>, needle: &str) {
    assert_error(r, "invalid_input", needle);
}

/// Asserts a not-found whose message contains `needle`.
pub fn assert_not_found<T: Debug>(r: Result<T, Error>, needle: &str) {
    assert_error(r, "not_found", needle);
}
