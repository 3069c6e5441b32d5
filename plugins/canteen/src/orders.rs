//! Orders and their state machine.
//!
//! ```text
//!                    accept-order   mark-ready          mark-picked-up
//!   place-order ──▶ placed ──▶ accepted ──▶ ready ─────────────────────▶ picked-up   (pick-up orders)
//!                                             │ start-run       mark-delivered
//!                                             └──────▶ out-for-delivery ──────▶ delivered (delivery orders)
//!
//!   cancel-order: by the resident from placed, while the slot takes orders; by the staff
//!   from placed, accepted, ready and out-for-delivery (a failed delivery). Delivered,
//!   picked-up and cancelled are final.
//! ```
//!
//! Cancelling a placed or accepted order returns its portions to the dishes' caps; the
//! portions of an order cancelled once cooked (ready or out for delivery) stay taken, and
//! are counted as wasted. Assignment to a delivery run
//! (see [`crate::delivery`]) is not a state: it is allowed while a delivery order is accepted
//! or ready, and only once.

use crate::config::Config;
use crate::eligibility;
use crate::events::{self, OrderEvent};
use crate::menu::{self, Slot};
use crate::store::{self, Store, keys};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most orders one meal slot can take (order numbers have four digits).
pub const MAX_ORDERS_PER_SLOT: u32 = 9999;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderState {
    /// Placed by or for the resident; the kitchen has not accepted it.
    Placed,
    /// Accepted by the kitchen.
    Accepted,
    /// Cooked and packed.
    Ready,
    /// With its courier (delivery orders).
    OutForDelivery,
    /// Handed to the resident (final).
    Delivered,
    /// Collected at the canteen (final; pick-up orders).
    PickedUp,
    /// Cancelled (final).
    Cancelled,
}

impl OrderState {
    /// Every state, in the order of the happy paths.
    pub const ALL: [OrderState; 7] = [
        OrderState::Placed,
        OrderState::Accepted,
        OrderState::Ready,
        OrderState::OutForDelivery,
        OrderState::Delivered,
        OrderState::PickedUp,
        OrderState::Cancelled,
    ];

    /// Its name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            OrderState::Placed => "placed",
            OrderState::Accepted => "accepted",
            OrderState::Ready => "ready",
            OrderState::OutForDelivery => "out-for-delivery",
            OrderState::Delivered => "delivered",
            OrderState::PickedUp => "picked-up",
            OrderState::Cancelled => "cancelled",
        }
    }

    /// Whether nothing can happen to the order any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderState::Delivered | OrderState::PickedUp | OrderState::Cancelled
        )
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the meal reaches the resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fulfilment {
    /// Collected at the canteen.
    Pickup,
    /// Delivered to the resident's registered address (eligible residents only).
    Delivery,
}

/// Who cancels an order. Until the host attaches roles to tokens, the calling app says
/// which it is (the residents' mini-program sends `resident`, the staff console `staff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The resident (or their family, in the mini-program).
    Resident,
    /// Canteen staff.
    Staff,
}

/// A change asked of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `accept-order`.
    Accept,
    /// `mark-ready`.
    MarkReady,
    /// `mark-picked-up`.
    MarkPickedUp,
    /// `start-run`, for each order of the run.
    StartDelivery,
    /// `mark-delivered`.
    MarkDelivered,
    /// `cancel-order`.
    Cancel(Role),
}

/// The state machine: the state an order in `from` moves to under `action`, or why it
/// cannot (a phrase that follows "order X ", saying what to do instead).
pub fn next_state(
    from: OrderState,
    fulfilment: Fulfilment,
    action: Action,
) -> Result<OrderState, String> {
    use Fulfilment::{Delivery, Pickup};
    use OrderState::*;
    let already = |what: &str| format!("is already {what}");
    let is_final = || format!("is already {from}; nothing more can happen to it");
    match action {
        Action::Accept => match from {
            Placed => Ok(Accepted),
            Accepted => Err(already("accepted")),
            Ready | OutForDelivery => Err(format!("is already {from}; it was accepted before")),
            Delivered | PickedUp | Cancelled => Err(is_final()),
        },
        Action::MarkReady => match from {
            Accepted => Ok(Ready),
            Placed => Err("is placed but not accepted yet; accept it first (accept-order)".into()),
            Ready => Err(already("ready")),
            OutForDelivery => Err("is already out for delivery".into()),
            Delivered | PickedUp | Cancelled => Err(is_final()),
        },
        Action::MarkPickedUp => match (from, fulfilment) {
            (_, Delivery) => Err(
                "is a delivery order; it reaches the resident with its delivery run (start-run, then mark-delivered)"
                    .into(),
            ),
            (Ready, Pickup) => Ok(PickedUp),
            (Placed | Accepted, Pickup) => {
                Err(format!("is {from}, not ready yet; mark it ready first (mark-ready)"))
            }
            (PickedUp, Pickup) => Err(already("picked up")),
            (OutForDelivery, Pickup) => Err("is already out for delivery".into()),
            (Delivered | Cancelled, Pickup) => Err(is_final()),
        },
        Action::StartDelivery => match (from, fulfilment) {
            (_, Pickup) => Err("is a pick-up order; it is not delivered".into()),
            (Ready, Delivery) => Ok(OutForDelivery),
            (Placed | Accepted, Delivery) => Err(format!(
                "is {from}, not ready yet; mark it ready (mark-ready) or take it off the run (unassign-delivery)"
            )),
            (OutForDelivery, Delivery) => Err("is already out for delivery".into()),
            (_, Delivery) => Err(is_final()),
        },
        Action::MarkDelivered => match (from, fulfilment) {
            (_, Pickup) => Err("is a pick-up order; use mark-picked-up when it is collected".into()),
            (OutForDelivery, Delivery) => Ok(Delivered),
            (Ready, Delivery) => Err(
                "is ready but has not left the canteen; start its delivery run first (start-run)".into(),
            ),
            (Placed | Accepted, Delivery) => Err(format!(
                "is {from}; it has not left the canteen yet"
            )),
            (Delivered, Delivery) => Err(already("delivered")),
            (_, Delivery) => Err(is_final()),
        },
        Action::Cancel(role) => match (from, role) {
            (Cancelled, _) => Err(already("cancelled")),
            (Delivered | PickedUp, _) => Err(format!("is already {from}; it can no longer be cancelled")),
            (Placed, _) => Ok(Cancelled),
            (Accepted | Ready | OutForDelivery, Role::Staff) => Ok(Cancelled),
            (Accepted | Ready | OutForDelivery, Role::Resident) => Err(format!(
                "is already {from}: the kitchen is working on it, so a resident can no longer cancel it; ask the canteen staff to cancel it"
            )),
        },
    }
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The dish.
    pub dish_id: String,
    /// Its name when ordered.
    pub name: String,
    /// How many portions.
    pub portions: u32,
    /// The price per portion when ordered, in fen.
    pub price_fen: u64,
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The state entered.
    pub state: OrderState,
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// Who, as the caller said.
    pub actor: Option<String>,
}

/// An order, as stored and as operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// `{date}-{slot}-{number}`, e.g. `2099-12-01-lunch-0001`.
    pub order_id: String,
    /// Who ordered.
    pub resident_id: String,
    /// Their name when ordered.
    pub resident_name: String,
    /// The meal's date.
    pub date: String,
    /// The meal slot.
    pub slot: Slot,
    /// Pick-up or delivery.
    pub fulfilment: Fulfilment,
    /// Where to deliver (delivery orders; the registered address when ordered).
    pub address: Option<String>,
    /// The resident's phone when ordered.
    pub phone: Option<String>,
    /// What was ordered.
    pub items: Vec<Item>,
    /// The delivery fee charged, in fen.
    pub delivery_fee_fen: u64,
    /// Items plus fee, in fen.
    pub total_fen: u64,
    /// The resident's note for the kitchen or courier.
    pub note: Option<String>,
    /// The current state.
    pub state: OrderState,
    /// The courier of its delivery run, once assigned.
    pub courier: Option<String>,
    /// Its delivery run, once assigned.
    pub run_id: Option<String>,
    /// Who cancelled it.
    pub cancelled_by: Option<Role>,
    /// Why, as given.
    pub cancel_reason: Option<String>,
    /// Every state it entered, oldest first.
    pub history: Vec<Transition>,
}

impl Order {
    /// Applies `action` (state and history), or a conflict naming the order and what to do.
    pub fn apply(
        &mut self,
        action: Action,
        now_ms: i64,
        actor: Option<&str>,
    ) -> Result<OrderState, Error> {
        let from = self.state;
        let to = next_state(from, self.fulfilment, action)
            .map_err(|why| Error::conflict(format!("order {} {why}", self.order_id)))?;
        self.state = to;
        self.history.push(Transition {
            state: to,
            at_ms: now_ms,
            actor: actor.map(str::to_owned),
        });
        Ok(from)
    }

    /// Whether it holds portions (is not cancelled).
    pub fn is_live(&self) -> bool {
        self.state != OrderState::Cancelled
    }
}

/// An order id, parsed: which slot and number it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// The number within the slot.
    pub seq: u32,
}

impl OrderRef {
    /// Parses `2099-12-01-lunch-0001`; not-found if it is not an order id.
    pub fn parse(id: &str) -> Result<Self, Error> {
        let (date, slot, seq) = menu::parse_slot_id(id, "-", 4).ok_or_else(|| {
            Error::not_found(format!(
                "there is no order {id:?}; order ids look like 2099-12-01-lunch-0001"
            ))
        })?;
        Ok(Self { date, slot, seq })
    }

    /// The id.
    pub fn id(&self) -> String {
        format!("{}-{}-{:04}", self.date, self.slot, self.seq)
    }

    /// The state key.
    pub fn key(&self) -> String {
        keys::order(&self.date, self.slot, self.seq)
    }
}

/// The order with id `order_id`, or not-found.
pub fn load(store: &mut impl Store, order_id: &str) -> Result<Order, Error> {
    let r = OrderRef::parse(order_id)?;
    store::load(store, &r.key())?
        .ok_or_else(|| Error::not_found(format!("there is no order {order_id:?}")))
}

/// Stores an order.
pub fn save(store: &mut impl Store, order: &Order) -> Result<(), Error> {
    let r = OrderRef::parse(&order.order_id)?;
    store::save(store, &r.key(), order)
}

/// Emits the event of the state `order` just entered.
pub fn announce(
    store: &mut impl Store,
    order: &Order,
    actor: Option<&str>,
    now_ms: i64,
) -> Result<(), Error> {
    store::emit(
        store,
        events::for_state(order.state),
        &OrderEvent::of(order, actor, now_ms),
    )
}

/// An item of `place-order`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// The dish.
    pub dish_id: String,
    /// Portions (at least 1).
    pub portions: u32,
}

/// Input of `place-order`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderInput {
    /// The registered resident ordering.
    pub resident_id: String,
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// Pick-up or delivery.
    pub fulfilment: Fulfilment,
    /// What to order.
    pub items: Vec<ItemInput>,
    /// A note for the kitchen or the courier.
    #[serde(default)]
    pub note: Option<String>,
    /// Who places it for the resident (a staff member taking a phone call), for the
    /// history; absent when the resident orders in the app.
    #[serde(default)]
    pub actor: Option<String>,
}

/// `place-order`: a registered resident orders dishes of an open slot for pick-up or (if
/// eligible) delivery. Takes the portions from the dishes' caps and emits
/// `canteen.order-placed`.
pub fn place(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: PlaceOrderInput,
) -> Result<Order, Error> {
    menu::parse_date(&input.date)?;
    for (i, item) in input.items.iter().enumerate() {
        if input.items[..i].iter().any(|it| it.dish_id == item.dish_id) {
            return Err(Error::invalid_input(format!(
                "dish {:?} is listed twice; give its total portions in one item",
                item.dish_id
            )));
        }
    }
    if input.items.is_empty() || input.items.iter().any(|i| i.portions == 0) {
        return Err(Error::invalid_input(
            "an order needs at least one item of at least one portion",
        ));
    }
    let mut menu = menu::load(store, &input.date, input.slot)?;
    menu.ensure_open(config, now_ms)?;
    let resident = eligibility::load(store, &input.resident_id)?;
    if input.fulfilment == Fulfilment::Delivery {
        eligibility::ensure_delivery_allowed(
            &resident,
            config,
            eligibility::today(config, now_ms),
        )?;
    }
    let portions: u32 = input.items.iter().map(|i| i.portions).sum();
    if portions > config.max_portions_per_order {
        return Err(Error::conflict(format!(
            "an order may have at most {} portions in this community; this one has {portions}; split it or order less",
            config.max_portions_per_order
        )));
    }
    if config.one_order_per_slot {
        let prefix = keys::resident_slot_prefix(&resident.resident_id, &input.date, input.slot);
        for (_, order_id) in store::scan::<String>(store, &prefix, None, store::MAX_SCAN)? {
            let existing = load(store, &order_id)?;
            if existing.is_live() {
                return Err(Error::conflict(format!(
                    "resident {:?} already has order {} ({}) for {}; cancel it before ordering again, or ask the staff to change it",
                    resident.resident_id,
                    existing.order_id,
                    existing.state,
                    menu.label()
                )));
            }
        }
    }
    let mut items = Vec::with_capacity(input.items.len());
    for item in &input.items {
        let dish = menu.reserve(&item.dish_id, item.portions)?;
        items.push(Item {
            dish_id: dish.dish_id.clone(),
            name: dish.name.clone(),
            portions: item.portions,
            price_fen: dish.price_fen,
        });
    }
    let seq_key = keys::order_seq(&input.date, input.slot);
    let seq = store::next_seq(store, &seq_key, MAX_ORDERS_PER_SLOT, || {
        format!(
            "{} already has {MAX_ORDERS_PER_SLOT} orders, the most one slot can take",
            menu.label()
        )
    })?;
    let order_ref = OrderRef {
        date: input.date.clone(),
        slot: input.slot,
        seq,
    };
    let delivery = input.fulfilment == Fulfilment::Delivery;
    let delivery_fee_fen = if delivery { config.delivery_fee_fen } else { 0 };
    let total_fen = items
        .iter()
        .map(|i| i.price_fen * u64::from(i.portions))
        .sum::<u64>()
        + delivery_fee_fen;
    let order = Order {
        order_id: order_ref.id(),
        resident_id: resident.resident_id.clone(),
        resident_name: resident.name.clone(),
        date: input.date.clone(),
        slot: input.slot,
        fulfilment: input.fulfilment,
        address: delivery.then(|| resident.address.clone()),
        phone: resident.phone.clone(),
        items,
        delivery_fee_fen,
        total_fen,
        note: input.note,
        state: OrderState::Placed,
        courier: None,
        run_id: None,
        cancelled_by: None,
        cancel_reason: None,
        history: vec![Transition {
            state: OrderState::Placed,
            at_ms: now_ms,
            actor: input.actor.clone(),
        }],
    };
    save(store, &order)?;
    store::save(
        store,
        &keys::resident_order(&resident.resident_id, &input.date, input.slot, seq),
        &order.order_id,
    )?;
    menu::save(store, &menu)?;
    announce(store, &order, input.actor.as_deref(), now_ms)?;
    Ok(order)
}

/// Input of the operations that move one order on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderActionInput {
    /// The order.
    pub order_id: String,
    /// Who does it (a staff member's or volunteer's name), for the history.
    #[serde(default)]
    pub actor: Option<String>,
}

/// Moves one order on with `action` and announces it.
pub fn transition(
    store: &mut impl Store,
    now_ms: i64,
    input: OrderActionInput,
    action: Action,
) -> Result<Order, Error> {
    let mut order = load(store, &input.order_id)?;
    order.apply(action, now_ms, input.actor.as_deref())?;
    save(store, &order)?;
    announce(store, &order, input.actor.as_deref(), now_ms)?;
    Ok(order)
}

/// Input of `cancel-order`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelOrderInput {
    /// The order.
    pub order_id: String,
    /// Whether the resident or the staff cancel.
    pub by: Role,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who, for the history.
    #[serde(default)]
    pub actor: Option<String>,
}

/// `cancel-order`: the resident cancels a placed order while its slot takes orders; the
/// staff cancel any order that is not delivered, picked up or cancelled. The portions of
/// a placed or accepted order go back to the dishes' caps; those of an order already
/// cooked (ready, out for delivery) stay taken and are counted as wasted, so they are not
/// sold twice. An order on a delivery run stays listed on it, as cancelled, so the courier
/// sees it.
pub fn cancel(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: CancelOrderInput,
) -> Result<Order, Error> {
    let mut order = load(store, &input.order_id)?;
    let from = order.apply(Action::Cancel(input.by), now_ms, input.actor.as_deref())?;
    order.cancelled_by = Some(input.by);
    order.cancel_reason = input.reason.clone();
    let mut menu = menu::load(store, &order.date, order.slot)?;
    if input.by == Role::Resident {
        let why = match menu.status(config, now_ms)? {
            menu::SlotStatus::Open => None,
            menu::SlotStatus::PastCutoff => Some(format!(
                "ordering for {} closed at {} (the cutoff)",
                menu.label(),
                menu.cutoff(config)?
            )),
            menu::SlotStatus::ClosedByStaff => Some(format!(
                "the canteen staff closed ordering for {}{}",
                menu.label(),
                menu.closed
                    .as_ref()
                    .and_then(|c| c.note.as_deref())
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            )),
        };
        if let Some(why) = why {
            return Err(Error::conflict(format!(
                "order {} can no longer be cancelled by the resident: {why}; ask the canteen staff to cancel it",
                order.order_id
            )));
        }
    }
    let cooked = matches!(from, OrderState::Ready | OrderState::OutForDelivery);
    for item in &order.items {
        if cooked {
            menu.waste(&item.dish_id, item.portions);
        } else {
            menu.release(&item.dish_id, item.portions);
        }
    }
    menu::save(store, &menu)?;
    save(store, &order)?;
    let mut event = OrderEvent::of(&order, input.actor.as_deref(), now_ms);
    event.from_state = Some(from);
    event.cancelled_by = Some(input.by);
    event.reason = input.reason;
    store::emit(store, events::ORDER_CANCELLED, &event)?;
    Ok(order)
}

/// Input of `get-order`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderIdInput {
    /// The order.
    pub order_id: String,
}

/// `get-order`.
pub fn get(store: &mut impl Store, input: OrderIdInput) -> Result<Order, Error> {
    load(store, &input.order_id)
}

/// Input of `list-orders`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListOrdersInput {
    /// The meal's date.
    pub date: String,
    /// Only this slot.
    #[serde(default)]
    pub slot: Option<Slot>,
    /// Only orders in this state.
    #[serde(default)]
    pub state: Option<OrderState>,
    /// Only pick-up or only delivery orders.
    #[serde(default)]
    pub fulfilment: Option<Fulfilment>,
    /// Only this resident's orders.
    #[serde(default)]
    pub resident_id: Option<String>,
    /// Continue after this order id (`next` of the previous page).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (default 50, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Output of `list-orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListOrdersOutput {
    /// Orders in slot and number order.
    pub orders: Vec<Order>,
    /// The cursor of the next page, or null at the end. With filters a page may hold
    /// fewer orders than `limit` and still have a next page.
    pub next: Option<String>,
}

/// How many stored orders one `list-orders` call examines at most.
const LIST_SCAN_BUDGET: usize = 2000;

/// `list-orders`: a day's orders, filtered, a page at a time.
pub fn list(store: &mut impl Store, input: ListOrdersInput) -> Result<ListOrdersOutput, Error> {
    menu::parse_date(&input.date)?;
    let limit = input.limit.unwrap_or(50).clamp(1, 100) as usize;
    let prefix = match input.slot {
        Some(slot) => keys::order_slot_prefix(&input.date, slot),
        None => keys::order_day_prefix(&input.date),
    };
    let mut after = match &input.after {
        Some(id) => {
            let r = OrderRef::parse(id).map_err(|_| {
                Error::invalid_input(format!("after {id:?} is not an order id from list-orders"))
            })?;
            if r.date != input.date {
                return Err(Error::invalid_input(format!(
                    "after {id:?} is an order of another day than {}",
                    input.date
                )));
            }
            Some(r.key())
        }
        None => None,
    };
    let matches = |o: &Order| {
        input.state.is_none_or(|s| o.state == s)
            && input.fulfilment.is_none_or(|f| o.fulfilment == f)
            && input
                .resident_id
                .as_ref()
                .is_none_or(|r| &o.resident_id == r)
    };
    let mut orders = Vec::new();
    let mut examined = 0;
    let mut last_examined: Option<String> = None;
    loop {
        let page: Vec<(String, Order)> =
            store::scan(store, &prefix, after.as_deref(), store::MAX_SCAN)?;
        let exhausted = page.len() < store::MAX_SCAN as usize;
        for (key, order) in page {
            if orders.len() == limit {
                // There is at least one more order after the page.
                let next = orders.last().map(|o: &Order| o.order_id.clone());
                return Ok(ListOrdersOutput { orders, next });
            }
            if examined == LIST_SCAN_BUDGET {
                return Ok(ListOrdersOutput {
                    orders,
                    next: last_examined,
                });
            }
            examined += 1;
            last_examined = Some(order.order_id.clone());
            after = Some(key);
            if matches(&order) {
                orders.push(order);
            }
        }
        if exhausted {
            return Ok(ListOrdersOutput { orders, next: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use Fulfilment::{Delivery, Pickup};
    use OrderState::*;

    const ACTIONS: [Action; 7] = [
        Action::Accept,
        Action::MarkReady,
        Action::MarkPickedUp,
        Action::StartDelivery,
        Action::MarkDelivered,
        Action::Cancel(Role::Resident),
        Action::Cancel(Role::Staff),
    ];

    /// The table of allowed transitions, written out independently of `next_state`.
    fn allowed(from: OrderState, f: Fulfilment, action: Action) -> Option<OrderState> {
        match (from, f, action) {
            (Placed, _, Action::Accept) => Some(Accepted),
            (Accepted, _, Action::MarkReady) => Some(Ready),
            (Ready, Pickup, Action::MarkPickedUp) => Some(PickedUp),
            (Ready, Delivery, Action::StartDelivery) => Some(OutForDelivery),
            (OutForDelivery, Delivery, Action::MarkDelivered) => Some(Delivered),
            (Placed, _, Action::Cancel(_)) => Some(Cancelled),
            (Accepted | Ready | OutForDelivery, _, Action::Cancel(Role::Staff)) => Some(Cancelled),
            _ => None,
        }
    }

    /// What a refusal must tell the caller, for each refused case.
    fn expected_reason(from: OrderState, f: Fulfilment, action: Action) -> &'static str {
        match (from, f, action) {
            (_, Delivery, Action::MarkPickedUp) => "is a delivery order",
            (_, Pickup, Action::StartDelivery) => "is a pick-up order",
            (_, Pickup, Action::MarkDelivered) => "use mark-picked-up",
            (Cancelled, _, Action::Cancel(_)) => "is already cancelled",
            (Delivered | PickedUp, _, Action::Cancel(_)) => "can no longer be cancelled",
            (_, _, Action::Cancel(Role::Resident)) => "ask the canteen staff to cancel it",
            (PickedUp, Pickup, Action::MarkPickedUp) => "is already picked up",
            (Delivered, Delivery, Action::MarkDelivered) => "is already delivered",
            (Delivered | PickedUp | Cancelled, _, _) => "nothing more can happen to it",
            (Accepted, _, Action::Accept) => "is already accepted",
            (_, _, Action::Accept) => "it was accepted before",
            (Placed, _, Action::MarkReady) => "accept it first (accept-order)",
            (Ready, _, Action::MarkReady) => "is already ready",
            (
                OutForDelivery,
                _,
                Action::MarkReady | Action::StartDelivery | Action::MarkPickedUp,
            ) => "is already out for delivery",
            (Placed | Accepted, _, Action::MarkPickedUp) => "mark it ready first (mark-ready)",
            (Placed | Accepted, _, Action::StartDelivery) => {
                "take it off the run (unassign-delivery)"
            }
            (Ready, _, Action::MarkDelivered) => "start its delivery run first (start-run)",
            (Placed | Accepted, _, Action::MarkDelivered) => "has not left the canteen yet",
            other => panic!("no expected reason for {other:?}"),
        }
    }

    #[test]
    fn the_state_machine_is_exactly_the_table() {
        let mut allowed_count = 0;
        for from in OrderState::ALL {
            for f in [Pickup, Delivery] {
                for action in ACTIONS {
                    let got = next_state(from, f, action);
                    match allowed(from, f, action) {
                        Some(to) => {
                            assert_eq!(got, Ok(to), "{from} {f:?} {action:?}");
                            allowed_count += 1;
                        }
                        None => {
                            let why =
                                got.expect_err(&format!("{from} {f:?} {action:?} must be refused"));
                            let want = expected_reason(from, f, action);
                            assert!(
                                why.contains(want),
                                "{from} {f:?} {action:?}: {why:?} lacks {want:?}"
                            );
                        }
                    }
                }
            }
        }
        // accept ×2, ready ×2, picked-up, start, delivered; cancel by the resident ×2 (placed)
        // and by the staff ×8 (placed, accepted, ready, out-for-delivery; both kinds).
        assert_eq!(allowed_count, 17);
    }

    #[test]
    fn final_states_accept_nothing() {
        for from in OrderState::ALL.into_iter().filter(|s| s.is_final()) {
            for f in [Pickup, Delivery] {
                for action in ACTIONS {
                    assert!(next_state(from, f, action).is_err(), "{from} {action:?}");
                }
            }
        }
    }

    #[test]
    fn order_ids_parse() {
        let r = OrderRef::parse("2099-12-01-lunch-0042").expect("id");
        assert_eq!(
            (r.date.as_str(), r.slot, r.seq),
            ("2099-12-01", Slot::Lunch, 42)
        );
        assert_eq!(r.id(), "2099-12-01-lunch-0042");
        assert_eq!(r.key(), "order/2099-12-01/1/0042");
        for bad in [
            "2099-12-01-lunch-42",
            "2099-12-01-brunch-0001",
            "2099-02-30-lunch-0001",
            "2099-12-01lunch-0001",
            "x",
            "",
            "2099-12-01-lunch-00a1",
        ] {
            assert_not_found(OrderRef::parse(bad), "there is no order");
        }
    }

    // -- place-order ------------------------------------------------------------------

    #[test]
    fn placing_takes_portions_and_announces() {
        let mut s = setup();
        let c = Config::default();
        let order = place(
            &mut s,
            &c,
            NOW,
            order_input("r-old", Delivery, &[("tofu", 2), ("rice", 1)]),
        )
        .expect("place");
        assert_eq!(order.order_id, "2099-12-01-lunch-0001");
        assert_eq!(order.state, Placed);
        assert_eq!(order.total_fen, 2 * 800 + 200);
        assert_eq!(order.address.as_deref(), Some("Building 1, Room 101"));
        assert_eq!(order.items[0].name, "Braised tofu");
        assert_eq!(menu_ordered(&mut s, "tofu"), 2);
        assert_eq!(event_kinds(&s), [events::ORDER_PLACED]);
        assert_eq!(s.events[0].1["order_id"], "2099-12-01-lunch-0001");
        assert_eq!(s.events[0].1["state"], "placed");
        let second = place(
            &mut s,
            &c,
            NOW,
            order_input("r-young", Pickup, &[("tofu", 1)]),
        )
        .expect("place");
        assert_eq!(second.order_id, "2099-12-01-lunch-0002");
        assert_eq!(second.address, None);
        assert_eq!(
            get(
                &mut s,
                OrderIdInput {
                    order_id: order.order_id.clone()
                }
            ),
            Ok(order)
        );
    }

    #[test]
    fn the_delivery_fee_applies_to_delivery_only() {
        let mut s = setup();
        let c = Config {
            delivery_fee_fen: 300,
            ..Config::default()
        };
        let d = place(
            &mut s,
            &c,
            NOW,
            order_input("r-old", Delivery, &[("rice", 1)]),
        )
        .expect("d");
        assert_eq!((d.delivery_fee_fen, d.total_fen), (300, 500));
        let p = place(
            &mut s,
            &c,
            NOW,
            order_input("r-young", Pickup, &[("rice", 1)]),
        )
        .expect("p");
        assert_eq!((p.delivery_fee_fen, p.total_fen), (0, 200));
    }

    #[test]
    fn sold_out_and_short_dishes_are_conflicts_that_change_nothing() {
        let mut s = setup();
        let c = Config::default();
        place(
            &mut s,
            &c,
            NOW,
            order_input("r-old", Pickup, &[("tofu", 3)]),
        )
        .expect("all tofu");
        let before = s.clone();
        let r = s.call(|s| {
            place(
                s,
                &c,
                NOW,
                order_input("r-young", Pickup, &[("rice", 1), ("tofu", 1)]),
            )
        });
        assert_conflict(
            r,
            "dish \"tofu\" is sold out for lunch on 2099-12-01 (cap 3)",
        );
        assert_eq!(s.data, before.data, "the rice was not taken");
        assert_eq!(s.events.len(), before.events.len());
    }

    #[test]
    fn closed_slots_are_conflicts() {
        let mut s = setup();
        let c = Config::default();
        let after_cutoff = local_ms("2099-12-01T10:00");
        assert_conflict(
            place(
                &mut s,
                &c,
                after_cutoff,
                order_input("r-old", Pickup, &[("tofu", 1)]),
            ),
            "ordering closed at 2099-12-01T10:00 (the cutoff)",
        );
        menu::close_slot(&mut s, &c, NOW, close_input(Some("gas repair"))).expect("close");
        assert_conflict(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-old", Pickup, &[("tofu", 1)]),
            ),
            "closed ordering (gas repair)",
        );
    }

    #[test]
    fn unknown_things_are_not_found() {
        let mut s = setup();
        let c = Config::default();
        assert_not_found(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-nobody", Pickup, &[("tofu", 1)]),
            ),
            "register-resident",
        );
        assert_not_found(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-old", Pickup, &[("caviar", 1)]),
            ),
            "not on the menu",
        );
        let mut input = order_input("r-old", Pickup, &[("tofu", 1)]);
        input.slot = Slot::Dinner;
        assert_not_found(
            place(&mut s, &c, NOW, input),
            "there is no dinner menu for 2099-12-01",
        );
        assert_not_found(
            get(
                &mut s,
                OrderIdInput {
                    order_id: "2099-12-01-lunch-0009".into(),
                },
            ),
            "there is no order",
        );
    }

    #[test]
    fn delivery_is_for_the_eligible_only() {
        let mut s = setup();
        let c = Config::default();
        assert_conflict(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-young", Delivery, &[("tofu", 1)]),
            ),
            "cannot order delivery: under 60 and not registered as mobility-limited",
        );
        assert!(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-limited", Delivery, &[("tofu", 1)])
            )
            .is_ok()
        );
        assert!(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-old", Delivery, &[("tofu", 1)])
            )
            .is_ok()
        );
        let off = Config {
            delivery_enabled: false,
            ..Config::default()
        };
        let mut input = order_input("r-old", Delivery, &[("rice", 1)]);
        input.slot = Slot::Dinner;
        set_menu_for(&mut s, DAY, Slot::Dinner);
        assert_conflict(place(&mut s, &off, NOW, input), "does not deliver");
    }

    #[test]
    fn order_size_and_duplicates_are_limited() {
        let mut s = setup();
        let c = Config {
            max_portions_per_order: 2,
            ..Config::default()
        };
        assert_conflict(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-old", Pickup, &[("tofu", 2), ("rice", 1)]),
            ),
            "at most 2 portions",
        );
        assert_invalid(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-old", Pickup, &[("tofu", 1), ("tofu", 1)]),
            ),
            "listed twice",
        );
        assert_invalid(
            place(&mut s, &c, NOW, order_input("r-old", Pickup, &[])),
            "at least one item",
        );
    }

    #[test]
    fn one_live_order_per_resident_and_slot() {
        let mut s = setup();
        let c = Config::default();
        let first = place(
            &mut s,
            &c,
            NOW,
            order_input("r-old", Pickup, &[("tofu", 1)]),
        )
        .expect("first");
        assert_conflict(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-old", Pickup, &[("rice", 1)]),
            ),
            "already has order 2099-12-01-lunch-0001 (placed) for lunch on 2099-12-01",
        );
        cancel(
            &mut s,
            &Config::default(),
            NOW,
            cancel_input(&first.order_id, Role::Resident),
        )
        .expect("cancel");
        assert!(
            place(
                &mut s,
                &c,
                NOW,
                order_input("r-old", Pickup, &[("rice", 1)])
            )
            .is_ok()
        );
        let lenient = Config {
            one_order_per_slot: false,
            ..Config::default()
        };
        assert!(
            place(
                &mut s,
                &lenient,
                NOW,
                order_input("r-old", Pickup, &[("rice", 1)])
            )
            .is_ok()
        );
    }

    // -- the operations on every reachable state ------------------------------------

    #[test]
    fn every_order_operation_from_every_reachable_state() {
        let ops: [(&str, Action); 7] = [
            ("accept-order", Action::Accept),
            ("mark-ready", Action::MarkReady),
            ("mark-picked-up", Action::MarkPickedUp),
            ("start-run", Action::StartDelivery),
            ("mark-delivered", Action::MarkDelivered),
            ("cancel-order/resident", Action::Cancel(Role::Resident)),
            ("cancel-order/staff", Action::Cancel(Role::Staff)),
        ];
        let mut checked = 0;
        for f in [Pickup, Delivery] {
            for from in reachable_states(f) {
                for (op, action) in ops {
                    let (mut s, order_id) = order_in_state(f, from);
                    let before = s.clone();
                    let result = s.call(|s| run_action(s, &order_id, action));
                    match allowed(from, f, action) {
                        Some(to) => {
                            let order =
                                result.unwrap_or_else(|e| panic!("{op} from {from} ({f:?}): {e}"));
                            assert_eq!(order.state, to, "{op} from {from}");
                            assert_eq!(order.history.last().map(|t| t.state), Some(to));
                            let kind = s.events.last().map(|(k, _)| k.clone());
                            assert_eq!(
                                kind.as_deref(),
                                Some(events::for_state(to)),
                                "{op} from {from}"
                            );
                        }
                        None => {
                            let e = result
                                .expect_err(&format!("{op} from {from} ({f:?}) must be refused"));
                            let Error::Conflict(message) = &e else {
                                panic!("{op} from {from}: {e:?} is not a conflict")
                            };
                            assert!(message.contains(&order_id), "{message} names the order");
                            assert!(
                                message.contains(expected_reason(from, f, action)),
                                "{op} from {from} ({f:?}): {message}"
                            );
                            assert_eq!(s.data, before.data, "{op} from {from} changed state");
                            assert_eq!(s.events, before.events);
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, (5 + 6) * 7);
    }

    #[test]
    fn cancelling_returns_the_portions_of_uncooked_orders_only() {
        for f in [Pickup, Delivery] {
            for from in [Placed, Accepted, Ready, OutForDelivery] {
                if f == Pickup && from == OutForDelivery {
                    continue;
                }
                let (mut s, order_id) = order_in_state(f, from);
                assert_eq!(menu_ordered(&mut s, "tofu"), 1);
                let mut input = cancel_input(&order_id, Role::Staff);
                input.reason = Some("resident in hospital".into());
                let order = cancel(&mut s, &Config::default(), NOW, input).expect("cancel");
                assert_eq!(order.cancelled_by, Some(Role::Staff));
                assert_eq!(order.cancel_reason.as_deref(), Some("resident in hospital"));
                let cooked = matches!(from, Ready | OutForDelivery);
                assert_eq!(
                    menu_ordered(&mut s, "tofu"),
                    u32::from(cooked),
                    "{from} {f:?}"
                );
                let menu = menu::load(&mut s, DAY, Slot::Lunch).expect("menu");
                assert_eq!(menu.dishes[0].wasted, u32::from(cooked), "{from} {f:?}");
                let (kind, payload) = s.events.last().expect("event");
                assert_eq!(kind, events::ORDER_CANCELLED);
                assert_eq!(payload["from_state"], from.name());
                assert_eq!(payload["cancelled_by"], "staff");
                assert_eq!(payload["reason"], "resident in hospital");
            }
        }
    }

    #[test]
    fn a_resident_cancels_only_a_placed_order() {
        let (mut s, id) = order_in_state(Pickup, Placed);
        let order = cancel(
            &mut s,
            &Config::default(),
            NOW,
            cancel_input(&id, Role::Resident),
        )
        .expect("cancel");
        assert_eq!(
            (order.state, order.cancelled_by),
            (Cancelled, Some(Role::Resident))
        );
        let (mut s, id) = order_in_state(Pickup, Accepted);
        assert_conflict(
            s.call(|s| {
                cancel(
                    s,
                    &Config::default(),
                    NOW,
                    cancel_input(&id, Role::Resident),
                )
            }),
            "ask the canteen staff to cancel it",
        );
        assert_eq!(menu_ordered(&mut s, "tofu"), 1);
    }

    /// Reviewer's sequence: a dish with cap 1, its order out on a delivery run, the staff
    /// cancel it (a failed delivery). The portion was cooked: it must not go back on sale.
    #[test]
    fn staff_cancelling_a_cooked_order_does_not_put_its_portions_back_on_sale() {
        for (f, from) in [
            (Delivery, OutForDelivery),
            (Delivery, Ready),
            (Pickup, Ready),
        ] {
            let (mut s, id) = order_in_state(f, from);
            let c = Config::default();
            let mut one_tofu = menu_input(DAY, Slot::Lunch);
            one_tofu.dishes[0].cap = 1;
            menu::set_menu(&mut s, &c, NOW, one_tofu).expect("cap 1");
            cancel(
                &mut s,
                &Config::default(),
                NOW,
                cancel_input(&id, Role::Staff),
            )
            .expect("failed delivery");
            assert_eq!(menu_ordered(&mut s, "tofu"), 1, "{from} {f:?}");
            assert_conflict(
                s.call(|s| place(s, &c, NOW, order_input("r-young", Pickup, &[("tofu", 1)]))),
                "dish \"tofu\" is sold out",
            );
            let summary = crate::summary::day_summary(
                &mut s,
                &c,
                NOW,
                crate::summary::DaySummaryInput { date: DAY.into() },
            )
            .expect("summary");
            let tofu = &summary.slots[0].dishes[0];
            assert_eq!(
                (tofu.ordered, tofu.wasted, tofu.remaining),
                (1, 1, 0),
                "{from} {f:?}"
            );
            // Republishing the menu keeps the wasted portions taken.
            let mut two_tofu = menu_input(DAY, Slot::Lunch);
            two_tofu.dishes[0].cap = 2;
            let view = menu::set_menu(&mut s, &c, NOW, two_tofu).expect("cap 2");
            assert_eq!((view.dishes[0].ordered, view.dishes[0].remaining), (1, 1));
            assert_eq!(
                menu::load(&mut s, DAY, Slot::Lunch).expect("menu").dishes[0].wasted,
                1
            );
        }
    }

    /// A resident may cancel only while the slot takes orders; the staff may still.
    #[test]
    fn a_resident_cancels_only_while_the_slot_is_open() {
        let c = Config::default();
        let (mut s, id) = order_in_state(Pickup, Placed);
        let cutoff = local_ms("2099-12-01T10:00");
        assert_conflict(
            s.call(|s| {
                cancel(
                    s,
                    &Config::default(),
                    cutoff,
                    cancel_input(&id, Role::Resident),
                )
            }),
            "order 2099-12-01-lunch-0001 can no longer be cancelled by the resident: ordering for lunch on 2099-12-01 closed at 2099-12-01T10:00 (the cutoff); ask the canteen staff to cancel it",
        );
        assert_eq!(menu_ordered(&mut s, "tofu"), 1);
        let order = cancel(
            &mut s,
            &Config::default(),
            cutoff,
            cancel_input(&id, Role::Staff),
        )
        .expect("staff");
        assert_eq!(order.cancelled_by, Some(Role::Staff));

        let (mut s, id) = order_in_state(Pickup, Placed);
        menu::close_slot(&mut s, &c, NOW, close_input(Some("gas repair"))).expect("close");
        assert_conflict(
            s.call(|s| {
                cancel(
                    s,
                    &Config::default(),
                    NOW,
                    cancel_input(&id, Role::Resident),
                )
            }),
            "can no longer be cancelled by the resident: the canteen staff closed ordering for lunch on 2099-12-01 (gas repair); ask the canteen staff to cancel it",
        );
        assert!(
            cancel(
                &mut s,
                &Config::default(),
                NOW,
                cancel_input(&id, Role::Staff)
            )
            .is_ok()
        );
    }

    #[test]
    fn staff_placing_a_phone_order_are_recorded() {
        let mut s = setup();
        let mut input = order_input("r-old", Pickup, &[("rice", 1)]);
        input.actor = Some("staff Wang".into());
        let order = place(&mut s, &Config::default(), NOW, input).expect("place");
        assert_eq!(order.history[0].actor.as_deref(), Some("staff Wang"));
        assert_eq!(s.events[0].1["actor"], "staff Wang");
    }

    #[test]
    fn the_history_records_every_step_with_its_actor() {
        let (mut s, id) = order_in_state(Pickup, Ready);
        let order = transition(
            &mut s,
            NOW + 5,
            OrderActionInput {
                order_id: id,
                actor: Some("wang".into()),
            },
            Action::MarkPickedUp,
        )
        .expect("picked up");
        let states: Vec<_> = order.history.iter().map(|t| t.state).collect();
        assert_eq!(states, [Placed, Accepted, Ready, PickedUp]);
        let last = order.history.last().expect("last");
        assert_eq!((last.at_ms, last.actor.as_deref()), (NOW + 5, Some("wang")));
        assert_eq!(s.events.last().expect("event").1["actor"], "wang");
    }

    // -- list-orders -----------------------------------------------------------------

    #[test]
    fn list_orders_filters_and_pages() {
        let mut s = setup();
        let c = Config {
            one_order_per_slot: false,
            ..Config::default()
        };
        set_menu_for(&mut s, DAY, Slot::Dinner);
        for (who, f, slot) in [
            ("r-old", Delivery, Slot::Lunch),
            ("r-young", Pickup, Slot::Lunch),
            ("r-old", Pickup, Slot::Dinner),
            ("r-limited", Delivery, Slot::Lunch),
        ] {
            let mut input = order_input(who, f, &[("rice", 1)]);
            input.slot = slot;
            place(&mut s, &c, NOW, input).expect("place");
        }
        let all = |after: Option<String>, limit| ListOrdersInput {
            date: DAY.into(),
            slot: None,
            state: None,
            fulfilment: None,
            resident_id: None,
            after,
            limit: Some(limit),
        };
        let page = list(&mut s, all(None, 2)).expect("list");
        let ids: Vec<_> = page.orders.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["2099-12-01-lunch-0001", "2099-12-01-lunch-0002"]);
        assert_eq!(page.next.as_deref(), Some("2099-12-01-lunch-0002"));
        let page = list(&mut s, all(page.next, 2)).expect("list");
        let ids: Vec<_> = page.orders.iter().map(|o| o.order_id.as_str()).collect();
        assert_eq!(ids, ["2099-12-01-lunch-0003", "2099-12-01-dinner-0001"]);
        assert_eq!(page.next, None);
        let mut input = all(None, 50);
        input.fulfilment = Some(Delivery);
        assert_eq!(list(&mut s, input).expect("list").orders.len(), 2);
        let mut input = all(None, 50);
        input.resident_id = Some("r-old".into());
        input.slot = Some(Slot::Dinner);
        let page = list(&mut s, input).expect("list");
        assert_eq!(page.orders.len(), 1);
        assert_eq!(page.orders[0].order_id, "2099-12-01-dinner-0001");
        let mut input = all(None, 50);
        input.state = Some(Accepted);
        assert!(list(&mut s, input).expect("list").orders.is_empty());
        assert_invalid(
            list(&mut s, all(Some("2099-12-02-lunch-0001".into()), 5)),
            "another day",
        );
        assert_invalid(list(&mut s, all(Some("nope".into()), 5)), "not an order id");
    }
}
