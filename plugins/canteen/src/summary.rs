//! The day's summary for the canteen staff: orders per slot and state, portions per dish,
//! takings, and the deliveries still outstanding.

use crate::config::Config;
use crate::menu::{self, Menu, Slot, SlotStatus};
use crate::orders::{Fulfilment, Order, OrderState};
use crate::store::{self, Store, keys};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// Orders counted per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Placed, not accepted.
    pub placed: u32,
    /// Accepted.
    pub accepted: u32,
    /// Ready.
    pub ready: u32,
    /// Out for delivery.
    #[serde(rename = "out-for-delivery")]
    pub out_for_delivery: u32,
    /// Delivered.
    pub delivered: u32,
    /// Picked up.
    #[serde(rename = "picked-up")]
    pub picked_up: u32,
    /// Cancelled.
    pub cancelled: u32,
}

impl StateCounts {
    fn add(&mut self, state: OrderState) {
        let n = match state {
            OrderState::Placed => &mut self.placed,
            OrderState::Accepted => &mut self.accepted,
            OrderState::Ready => &mut self.ready,
            OrderState::OutForDelivery => &mut self.out_for_delivery,
            OrderState::Delivered => &mut self.delivered,
            OrderState::PickedUp => &mut self.picked_up,
            OrderState::Cancelled => &mut self.cancelled,
        };
        *n += 1;
    }
}

/// Portions of one dish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DishPortions {
    /// The dish.
    pub dish_id: String,
    /// Its name.
    pub name: String,
    /// Its cap.
    pub cap: u32,
    /// Portions taken from the cap: by live orders, and by orders cancelled once cooked.
    pub ordered: u32,
    /// Of `ordered`, the portions of orders cancelled once cooked (ready or out for
    /// delivery): cooked for no one.
    pub wasted: u32,
    /// Portions that can still be ordered (`cap` − `ordered`).
    pub remaining: u32,
}

/// One meal slot of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotSummary {
    /// The slot.
    pub slot: Slot,
    /// Whether it takes orders now.
    pub status: SlotStatus,
    /// When ordering closes (local time).
    pub cutoff_at: String,
    /// Orders per state.
    pub orders: StateCounts,
    /// Live (not cancelled) orders for pick-up.
    pub pickup_orders: u32,
    /// Live orders for delivery.
    pub delivery_orders: u32,
    /// Portions per dish.
    pub dishes: Vec<DishPortions>,
    /// The totals of live orders, in fen.
    pub takings_fen: u64,
}

/// A delivery order not delivered (nor cancelled) yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutstandingDelivery {
    /// The order.
    pub order_id: String,
    /// Its slot.
    pub slot: Slot,
    /// Its state.
    pub state: OrderState,
    /// Who gets it.
    pub resident_name: String,
    /// Where.
    pub address: Option<String>,
    /// Its run, once assigned.
    pub run_id: Option<String>,
    /// Its courier, once assigned.
    pub courier: Option<String>,
}

/// Output of `day-summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaySummary {
    /// The day.
    pub date: String,
    /// The slots that have a menu, in meal order.
    pub slots: Vec<SlotSummary>,
    /// How many delivery orders are not delivered (nor cancelled) yet.
    pub deliveries_outstanding: u32,
    /// How many of those are on no run yet.
    pub deliveries_unassigned: u32,
    /// Those orders, by slot and number.
    pub outstanding: Vec<OutstandingDelivery>,
}

/// Input of `day-summary`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaySummaryInput {
    /// The day.
    pub date: String,
}

/// `day-summary`: the day at a glance.
pub fn day_summary(
    store: &mut impl Store,
    config: &Config,
    now_ms: i64,
    input: DaySummaryInput,
) -> Result<DaySummary, Error> {
    menu::parse_date(&input.date)?;
    let menus: Vec<(String, Menu)> = store::scan_all(store, &keys::menu_day_prefix(&input.date))?;
    let mut slots = Vec::with_capacity(menus.len());
    for (_, menu) in &menus {
        slots.push(SlotSummary {
            slot: menu.slot,
            status: menu.status(config, now_ms)?,
            cutoff_at: menu.cutoff(config)?.to_string(),
            orders: StateCounts::default(),
            pickup_orders: 0,
            delivery_orders: 0,
            dishes: menu
                .dishes
                .iter()
                .map(|d| DishPortions {
                    dish_id: d.dish_id.clone(),
                    name: d.name.clone(),
                    cap: d.cap,
                    ordered: d.ordered,
                    wasted: d.wasted,
                    remaining: d.cap.saturating_sub(d.ordered),
                })
                .collect(),
            takings_fen: 0,
        });
    }
    let mut outstanding = Vec::new();
    for (_, order) in store::scan_all::<Order>(store, &keys::order_day_prefix(&input.date))? {
        let Some(slot) = slots.iter_mut().find(|s| s.slot == order.slot) else {
            return Err(Error::internal(format!(
                "order {} has no menu",
                order.order_id
            )));
        };
        slot.orders.add(order.state);
        if !order.is_live() {
            continue;
        }
        slot.takings_fen += order.total_fen;
        match order.fulfilment {
            Fulfilment::Pickup => slot.pickup_orders += 1,
            Fulfilment::Delivery => slot.delivery_orders += 1,
        }
        if order.fulfilment == Fulfilment::Delivery && !order.state.is_final() {
            outstanding.push(OutstandingDelivery {
                order_id: order.order_id,
                slot: order.slot,
                state: order.state,
                resident_name: order.resident_name,
                address: order.address,
                run_id: order.run_id,
                courier: order.courier,
            });
        }
    }
    Ok(DaySummary {
        date: input.date,
        slots,
        deliveries_outstanding: outstanding.len() as u32,
        deliveries_unassigned: outstanding.iter().filter(|o| o.run_id.is_none()).count() as u32,
        outstanding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery;
    use crate::orders::{Action, Role};
    use crate::testing::*;
    use Fulfilment::{Delivery, Pickup};

    #[test]
    fn an_empty_day_has_no_slots() {
        let mut s = setup();
        let c = Config::default();
        let mut summary_of = |date: &str| {
            let input = DaySummaryInput { date: date.into() };
            day_summary(&mut s, &c, NOW, input)
        };
        let sum = summary_of("2099-12-05").expect("sum");
        assert!(sum.slots.is_empty());
        assert_eq!(sum.deliveries_outstanding, 0);
        assert_invalid(summary_of("2099-13-01"), "does not exist");
    }

    #[test]
    fn counts_portions_takings_and_outstanding_deliveries() {
        let mut s = setup();
        let c = Config {
            one_order_per_slot: false,
            max_portions_per_order: 10,
            ..Config::default()
        };
        set_menu_for(&mut s, DAY, Slot::Dinner);
        let mut dinner = order_input("r-old", Delivery, &[("rice", 3)]);
        dinner.slot = Slot::Dinner;
        let [o1, o2, o3, o4, o5] = [
            order_input("r-old", Delivery, &[("tofu", 2)]),
            order_input("r-limited", Delivery, &[("rice", 1)]),
            order_input("r-young", Pickup, &[("tofu", 1), ("rice", 2)]),
            order_input("r-young", Pickup, &[("rice", 1)]),
            dinner,
        ]
        .map(|input| place_id(&mut s, &c, input));
        advance(&mut s, &o1, &[Action::Accept, Action::MarkReady]);
        advance(&mut s, &o2, &[Action::Accept]);
        delivery::assign(
            &mut s,
            NOW,
            delivery::AssignInput {
                courier: "Li".into(),
                order_ids: vec![o1.clone()],
                note: None,
                actor: None,
            },
        )
        .expect("assign");
        advance(
            &mut s,
            &o3,
            &[Action::Accept, Action::MarkReady, Action::MarkPickedUp],
        );
        orders::cancel(
            &mut s,
            &Config::default(),
            NOW,
            cancel_input(&o4, Role::Resident),
        )
        .expect("cancel");

        let sum = day_summary(&mut s, &c, NOW, DaySummaryInput { date: DAY.into() }).expect("sum");
        assert_eq!(sum.slots.len(), 2);
        let lunch = &sum.slots[0];
        assert_eq!(lunch.slot, Slot::Lunch);
        assert_eq!(
            lunch.orders,
            StateCounts {
                placed: 0,
                accepted: 1,
                ready: 1,
                picked_up: 1,
                cancelled: 1,
                ..StateCounts::default()
            }
        );
        assert_eq!((lunch.pickup_orders, lunch.delivery_orders), (1, 2));
        let portions: Vec<_> = lunch
            .dishes
            .iter()
            .map(|d| (d.dish_id.as_str(), d.ordered, d.remaining))
            .collect();
        assert_eq!(portions, [("tofu", 3, 0), ("rice", 3, 17)]);
        assert_eq!(lunch.takings_fen, 2 * 800 + 200 + (800 + 2 * 200));
        let dinner = &sum.slots[1];
        assert_eq!(dinner.orders.placed, 1);
        assert_eq!(sum.deliveries_outstanding, 3);
        assert_eq!(sum.deliveries_unassigned, 2);
        let ids: Vec<_> = sum
            .outstanding
            .iter()
            .map(|o| o.order_id.as_str())
            .collect();
        assert_eq!(ids, [o1.as_str(), o2.as_str(), o5.as_str()]);
        assert_eq!(sum.outstanding[0].courier.as_deref(), Some("Li"));
        let json = serde_json::to_value(&sum).expect("json");
        assert_eq!(json["slots"][0]["orders"]["picked-up"], 1);
    }
}
