//! The events the canteen emits (declared in `manifest.json`), for workflows to react to:
//! tell a resident their meal is ready, send a volunteer their run, print the kitchen's
//! prep list when a slot closes.

use crate::menu::Slot;
use crate::orders::{Fulfilment, Order, OrderState, Role};
use serde::Serialize;

/// An order was placed.
pub const ORDER_PLACED: &str = "canteen.order-placed";
/// The kitchen accepted an order.
pub const ORDER_ACCEPTED: &str = "canteen.order-accepted";
/// An order is cooked and packed.
pub const ORDER_READY: &str = "canteen.order-ready";
/// A delivery order was put on a delivery run.
pub const DELIVERY_ASSIGNED: &str = "canteen.delivery-assigned";
/// A delivery order was taken off its run.
pub const DELIVERY_UNASSIGNED: &str = "canteen.delivery-unassigned";
/// A delivery order left with its courier.
pub const ORDER_OUT_FOR_DELIVERY: &str = "canteen.order-out-for-delivery";
/// A delivery order was handed to the resident.
pub const ORDER_DELIVERED: &str = "canteen.order-delivered";
/// A pick-up order was collected.
pub const ORDER_PICKED_UP: &str = "canteen.order-picked-up";
/// An order was cancelled.
pub const ORDER_CANCELLED: &str = "canteen.order-cancelled";
/// Ordering for a slot closed (cutoff or staff).
pub const SLOT_CLOSED: &str = "canteen.slot-closed";

/// Every kind, as declared in the manifest.
pub const ALL: [&str; 10] = [
    ORDER_PLACED,
    ORDER_ACCEPTED,
    ORDER_READY,
    DELIVERY_ASSIGNED,
    DELIVERY_UNASSIGNED,
    ORDER_OUT_FOR_DELIVERY,
    ORDER_DELIVERED,
    ORDER_PICKED_UP,
    ORDER_CANCELLED,
    SLOT_CLOSED,
];

/// The kind announcing that an order entered `state` (none for `placed`, which has its
/// own event with the order's contents).
pub fn for_state(state: OrderState) -> &'static str {
    match state {
        OrderState::Placed => ORDER_PLACED,
        OrderState::Accepted => ORDER_ACCEPTED,
        OrderState::Ready => ORDER_READY,
        OrderState::OutForDelivery => ORDER_OUT_FOR_DELIVERY,
        OrderState::Delivered => ORDER_DELIVERED,
        OrderState::PickedUp => ORDER_PICKED_UP,
        OrderState::Cancelled => ORDER_CANCELLED,
    }
}

/// The payload of every order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderEvent {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub resident_id: String,
    /// The meal's date.
    pub date: String,
    /// The meal slot.
    pub slot: Slot,
    /// Pick-up or delivery.
    pub fulfilment: Fulfilment,
    /// The order's state after the change.
    pub state: OrderState,
    /// The courier, for assigned delivery orders.
    pub courier: Option<String>,
    /// The delivery run, for assigned delivery orders.
    pub run_id: Option<String>,
    /// The order's total, in fen.
    pub total_fen: u64,
    /// Who made the change, as the caller said.
    pub actor: Option<String>,
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// `canteen.order-cancelled` only: the state it was cancelled from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_state: Option<OrderState>,
    /// `canteen.order-cancelled` only: whether the resident or the staff cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<Role>,
    /// `canteen.order-cancelled` only: why, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl OrderEvent {
    /// The payload for `order` as it is now.
    pub fn of(order: &Order, actor: Option<&str>, at_ms: i64) -> Self {
        Self {
            order_id: order.order_id.clone(),
            resident_id: order.resident_id.clone(),
            date: order.date.clone(),
            slot: order.slot,
            fulfilment: order.fulfilment,
            state: order.state,
            courier: order.courier.clone(),
            run_id: order.run_id.clone(),
            total_fen: order.total_fen,
            actor: actor.map(str::to_owned),
            at_ms,
            from_state: None,
            cancelled_by: None,
            reason: None,
        }
    }
}

/// The payload of `canteen.slot-closed`: the kitchen's prep list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotClosed {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// `cutoff` (the cutoff passed; found by `sweep`) or `staff` (`close-slot`).
    pub reason: String,
    /// The staff's note, if any.
    pub note: Option<String>,
    /// The slot's cutoff (local time).
    pub cutoff_at: String,
    /// Portions ordered per dish.
    pub dishes: Vec<SlotClosedDish>,
}

/// One dish in [`SlotClosed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotClosedDish {
    /// The dish.
    pub dish_id: String,
    /// Its name.
    pub name: String,
    /// Portions taken from the cap (orders cancelled before cooking excluded).
    pub ordered: u32,
}
