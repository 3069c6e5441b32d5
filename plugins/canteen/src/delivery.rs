//! Delivery runs: the staff give a courier (a staff member or a volunteer) a batch of
//! delivery orders of one meal; the courier leaves with the ready meals and marks each one
//! delivered.
//!
//! An order is on at most one run, ever at a time: assigning an order that is already on
//! a run is a conflict, whoever asks. To give it to another courier the staff take it off
//! its run first (`unassign-delivery`), which is allowed until the run leaves.

use crate::events::{self, OrderEvent};
use crate::menu::{self, Slot};
use crate::orders::{self, Action, Fulfilment, Item, Order, OrderActionInput, OrderState};
use crate::store::{self, Store, keys};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// The most orders on one run (each is announced with an event; the host caps a call's
/// events at 64).
pub const MAX_ORDERS_PER_RUN: usize = 30;
/// The most runs in one meal slot (run numbers have three digits).
pub const MAX_RUNS_PER_SLOT: u32 = 999;

/// A run, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// `{date}-{slot}-run-{number}`, e.g. `2099-12-01-lunch-run-001`.
    pub run_id: String,
    /// The meal's date.
    pub date: String,
    /// The meal slot.
    pub slot: Slot,
    /// Who delivers.
    pub courier: String,
    /// The orders on it, in the order given (unassigned orders are removed; cancelled
    /// ones stay, so the courier sees them).
    pub order_ids: Vec<String>,
    /// The staff's note for the courier.
    pub note: Option<String>,
    /// When it was made.
    pub created_at_ms: i64,
    /// When it left the canteen (`start-run`).
    pub started_at_ms: Option<i64>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Made, not left yet.
    Assigned,
    /// Left; some orders are still out for delivery.
    Out,
    /// Left; every order is delivered or cancelled.
    Completed,
}

/// One stop of a run, as operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stop {
    /// The order.
    pub order_id: String,
    /// Its state.
    pub state: OrderState,
    /// Who gets it.
    pub resident_id: String,
    /// Their name.
    pub resident_name: String,
    /// Where.
    pub address: Option<String>,
    /// Their phone.
    pub phone: Option<String>,
    /// What to hand over.
    pub items: Vec<Item>,
    /// The resident's note.
    pub note: Option<String>,
}

/// A run as operations return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    /// The run.
    pub run_id: String,
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// Who delivers.
    pub courier: String,
    /// The staff's note.
    pub note: Option<String>,
    /// Where the run is.
    pub status: RunStatus,
    /// Its orders, in delivery order.
    pub stops: Vec<Stop>,
}

/// A run id, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    /// The meal's date.
    pub date: String,
    /// The slot.
    pub slot: Slot,
    /// The number within the slot.
    pub seq: u32,
}

impl RunRef {
    /// Parses `2099-12-01-lunch-run-001`; not-found if it is not a run id.
    pub fn parse(id: &str) -> Result<Self, Error> {
        let (date, slot, seq) = menu::parse_slot_id(id, "-run-", 3).ok_or_else(|| {
            Error::not_found(format!(
                "there is no delivery run {id:?}; run ids look like 2099-12-01-lunch-run-001"
            ))
        })?;
        Ok(Self { date, slot, seq })
    }

    /// The id.
    pub fn id(&self) -> String {
        format!("{}-{}-run-{:03}", self.date, self.slot, self.seq)
    }

    /// The state key.
    pub fn key(&self) -> String {
        keys::run(&self.date, self.slot, self.seq)
    }
}

fn load(store: &mut impl Store, run_id: &str) -> Result<Run, Error> {
    let r = RunRef::parse(run_id)?;
    store::load(store, &r.key())?
        .ok_or_else(|| Error::not_found(format!("there is no delivery run {run_id:?}")))
}

fn save(store: &mut impl Store, run: &Run) -> Result<(), Error> {
    let r = RunRef::parse(&run.run_id)?;
    store::save(store, &r.key(), run)
}

fn view(store: &mut impl Store, run: Run) -> Result<RunView, Error> {
    let mut stops = Vec::with_capacity(run.order_ids.len());
    for id in &run.order_ids {
        let o = orders::load(store, id)?;
        stops.push(Stop {
            order_id: o.order_id,
            state: o.state,
            resident_id: o.resident_id,
            resident_name: o.resident_name,
            address: o.address,
            phone: o.phone,
            items: o.items,
            note: o.note,
        });
    }
    let status = if run.started_at_ms.is_none() {
        RunStatus::Assigned
    } else if stops.iter().all(|s| s.state.is_final()) {
        RunStatus::Completed
    } else {
        RunStatus::Out
    };
    Ok(RunView {
        run_id: run.run_id,
        date: run.date,
        slot: run.slot,
        courier: run.courier,
        note: run.note,
        status,
        stops,
    })
}

/// A conflict unless `order` may be put on a run.
fn ensure_assignable(order: &Order) -> Result<(), Error> {
    let id = &order.order_id;
    if order.fulfilment == Fulfilment::Pickup {
        return Err(Error::conflict(format!(
            "order {id} is a pick-up order; only delivery orders go on delivery runs"
        )));
    }
    match order.state {
        OrderState::Accepted | OrderState::Ready => match (&order.run_id, &order.courier) {
            (Some(run), Some(courier)) => Err(Error::conflict(format!(
                "order {id} is already assigned to run {run} (courier {courier}); an order is never assigned twice: take it off that run first (unassign-delivery) to give it to someone else"
            ))),
            _ => Ok(()),
        },
        OrderState::Placed => Err(Error::conflict(format!(
            "order {id} is placed but not accepted yet; accept it first (accept-order), then assign it"
        ))),
        state => Err(Error::conflict(format!(
            "order {id} is {state}; only accepted or ready orders can be assigned to a run"
        ))),
    }
}

/// Input of `assign-delivery`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignInput {
    /// Who delivers (a staff member's or volunteer's name or id).
    pub courier: String,
    /// The delivery orders, in delivery order; all of one meal.
    pub order_ids: Vec<String>,
    /// A note for the courier.
    #[serde(default)]
    pub note: Option<String>,
    /// Who assigns, for the events.
    #[serde(default)]
    pub actor: Option<String>,
}

/// `assign-delivery`: makes a delivery run of accepted or ready delivery orders of one
/// meal for a courier, and announces each with `canteen.delivery-assigned`. All or
/// nothing: one order that cannot be assigned refuses the whole run.
pub fn assign(store: &mut impl Store, now_ms: i64, input: AssignInput) -> Result<RunView, Error> {
    if input.order_ids.is_empty() || input.order_ids.len() > MAX_ORDERS_PER_RUN {
        return Err(Error::invalid_input(format!(
            "a run has 1 to {MAX_ORDERS_PER_RUN} orders; this one has {}",
            input.order_ids.len()
        )));
    }
    for (i, id) in input.order_ids.iter().enumerate() {
        if input.order_ids[..i].contains(id) {
            return Err(Error::invalid_input(format!("order {id} is listed twice")));
        }
    }
    let mut batch = Vec::with_capacity(input.order_ids.len());
    for id in &input.order_ids {
        batch.push(orders::load(store, id)?);
    }
    let first = &batch[0];
    let (date, slot) = (first.date.clone(), first.slot);
    if let Some(other) = batch.iter().find(|o| o.date != date || o.slot != slot) {
        return Err(Error::invalid_input(format!(
            "a run serves one meal: order {} is for {} on {}, order {} for {} on {}; make one run per meal",
            first.order_id, slot, date, other.order_id, other.slot, other.date
        )));
    }
    for order in &batch {
        ensure_assignable(order)?;
    }
    let seq = store::next_seq(
        store,
        &keys::run_seq(&date, slot),
        MAX_RUNS_PER_SLOT,
        || {
            format!(
                "{slot} on {date} already has {MAX_RUNS_PER_SLOT} delivery runs, the most one slot can have"
            )
        },
    )?;
    let run_ref = RunRef {
        date: date.clone(),
        slot,
        seq,
    };
    let run = Run {
        run_id: run_ref.id(),
        date,
        slot,
        courier: input.courier,
        order_ids: input.order_ids,
        note: input.note,
        created_at_ms: now_ms,
        started_at_ms: None,
    };
    save(store, &run)?;
    for mut order in batch {
        order.courier = Some(run.courier.clone());
        order.run_id = Some(run.run_id.clone());
        orders::save(store, &order)?;
        let event = OrderEvent::of(&order, input.actor.as_deref(), now_ms);
        store::emit(store, events::DELIVERY_ASSIGNED, &event)?;
    }
    view(store, run)
}

/// Input of `unassign-delivery`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnassignInput {
    /// The order.
    pub order_id: String,
    /// Why (the courier is ill, the route changed), for the event.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who, for the event.
    #[serde(default)]
    pub actor: Option<String>,
}

/// `unassign-delivery`: takes an order off its run before the run leaves, so that it can
/// be assigned again. Emits `canteen.delivery-unassigned` (naming the courier it had).
pub fn unassign(store: &mut impl Store, now_ms: i64, input: UnassignInput) -> Result<Order, Error> {
    let mut order = orders::load(store, &input.order_id)?;
    let id = &order.order_id;
    let Some(run_id) = order.run_id.clone() else {
        return Err(Error::conflict(format!(
            "order {id} is not assigned to any delivery run"
        )));
    };
    if !matches!(order.state, OrderState::Accepted | OrderState::Ready) {
        return Err(Error::conflict(format!(
            "order {id} is {}; only an order that has not left the canteen can be taken off its run",
            order.state
        )));
    }
    let mut run = load(store, &run_id)?;
    run.order_ids.retain(|o| o != id);
    save(store, &run)?;
    let mut event = OrderEvent::of(&order, input.actor.as_deref(), now_ms);
    event.reason = input.reason;
    order.courier = None;
    order.run_id = None;
    orders::save(store, &order)?;
    store::emit(store, events::DELIVERY_UNASSIGNED, &event)?;
    Ok(order)
}

/// Input of `start-run` and `get-run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunIdInput {
    /// The run.
    pub run_id: String,
    /// Who, for the history (start-run only).
    #[serde(default)]
    pub actor: Option<String>,
}

/// `start-run`: the courier leaves with the run's ready orders: each becomes
/// out-for-delivery (`canteen.order-out-for-delivery`). Cancelled orders are skipped; any
/// other order that is not ready refuses the whole start.
pub fn start(store: &mut impl Store, now_ms: i64, input: RunIdInput) -> Result<RunView, Error> {
    let mut run = load(store, &input.run_id)?;
    if run.started_at_ms.is_some() {
        return Err(Error::conflict(format!(
            "delivery run {} has already left the canteen; mark its orders delivered (mark-delivered)",
            run.run_id
        )));
    }
    let mut leaving = Vec::new();
    for id in &run.order_ids {
        let mut order = orders::load(store, id)?;
        if order.state == OrderState::Cancelled {
            continue;
        }
        order.apply(Action::StartDelivery, now_ms, input.actor.as_deref())?;
        leaving.push(order);
    }
    if leaving.is_empty() {
        return Err(Error::conflict(format!(
            "delivery run {} has no order to deliver (all of them were cancelled or taken off the run)",
            run.run_id
        )));
    }
    for order in &leaving {
        orders::save(store, order)?;
        orders::announce(store, order, input.actor.as_deref(), now_ms)?;
    }
    run.started_at_ms = Some(now_ms);
    save(store, &run)?;
    view(store, run)
}

/// `mark-delivered`: the courier handed an out-for-delivery order to the resident.
pub fn mark_delivered(
    store: &mut impl Store,
    now_ms: i64,
    input: OrderActionInput,
) -> Result<Order, Error> {
    orders::transition(store, now_ms, input, Action::MarkDelivered)
}

/// Input of `get-run`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetRunInput {
    /// The run.
    pub run_id: String,
}

/// `get-run`: a run with its stops, for the courier.
pub fn get(store: &mut impl Store, input: GetRunInput) -> Result<RunView, Error> {
    let run = load(store, &input.run_id)?;
    view(store, run)
}

/// Input of `list-runs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRunsInput {
    /// The meal's date.
    pub date: String,
    /// Only this slot.
    #[serde(default)]
    pub slot: Option<Slot>,
    /// Only this courier's runs.
    #[serde(default)]
    pub courier: Option<String>,
}

/// Output of `list-runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListRunsOutput {
    /// The runs, by slot and number.
    pub runs: Vec<RunView>,
}

/// `list-runs`: a day's delivery runs (a courier's, with `courier`).
pub fn list(store: &mut impl Store, input: ListRunsInput) -> Result<ListRunsOutput, Error> {
    menu::parse_date(&input.date)?;
    let prefix = match input.slot {
        Some(slot) => keys::run_slot_prefix(&input.date, slot),
        None => keys::run_day_prefix(&input.date),
    };
    let mut runs = Vec::new();
    for (_, run) in store::scan_all::<Run>(store, &prefix)? {
        if input.courier.as_ref().is_none_or(|c| &run.courier == c) {
            runs.push(view(store, run)?);
        }
    }
    Ok(ListRunsOutput { runs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::PlaceOrderInput;
    use crate::testing::*;
    use Fulfilment::{Delivery, Pickup};
    use OrderState::*;

    fn assign_input(courier: &str, ids: &[&str]) -> AssignInput {
        AssignInput {
            courier: courier.into(),
            order_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            note: None,
            actor: None,
        }
    }

    fn run_id_input(id: &str) -> RunIdInput {
        RunIdInput {
            run_id: id.into(),
            actor: None,
        }
    }

    fn unassign_input(order_id: &str, reason: Option<&str>) -> UnassignInput {
        UnassignInput {
            order_id: order_id.into(),
            reason: reason.map(str::to_owned),
            actor: None,
        }
    }

    fn get_run(s: &mut MemoryStore, run_id: &str) -> RunView {
        get(
            s,
            GetRunInput {
                run_id: run_id.into(),
            },
        )
        .expect("get run")
    }

    fn list_runs(s: &mut MemoryStore, slot: Option<Slot>, courier: Option<&str>) -> Vec<RunView> {
        let input = ListRunsInput {
            date: DAY.into(),
            slot,
            courier: courier.map(str::to_owned),
        };
        list(s, input).expect("list runs").runs
    }

    /// A ready delivery order of `r-old` ([`order_in_state`]), and a second order placed
    /// with `second` (its slot's menu published first, if it is not lunch) and moved on
    /// with `actions`: the store and the two ids.
    fn ready_and_second(
        second: PlaceOrderInput,
        actions: &[Action],
    ) -> (MemoryStore, String, String) {
        let (mut s, a) = order_in_state(Delivery, Ready);
        if second.slot != Slot::Lunch {
            set_menu_for(&mut s, DAY, second.slot);
        }
        let b = place_id(&mut s, &Config::default(), second);
        advance(&mut s, &b, actions);
        (s, a, b)
    }

    #[test]
    fn run_ids_parse() {
        let r = RunRef::parse("2099-12-01-dinner-run-007").expect("id");
        assert_eq!((r.slot, r.seq), (Slot::Dinner, 7));
        assert_eq!(r.id(), "2099-12-01-dinner-run-007");
        for bad in [
            "2099-12-01-dinner-run-7",
            "2099-12-01-dinner-0007",
            "run-001",
            "2099-12-01-tea-run-001",
        ] {
            assert_not_found(RunRef::parse(bad), "there is no delivery run");
        }
    }

    #[test]
    fn the_full_delivery_story() {
        let (mut s, a, b) = ready_and_second(
            order_input("r-limited", Delivery, &[("rice", 1)]),
            &[Action::Accept],
        );
        let run = assign(&mut s, NOW, assign_input("volunteer Li", &[&a, &b])).expect("assign");
        assert_eq!(run.run_id, "2099-12-01-lunch-run-001");
        assert_eq!(run.status, RunStatus::Assigned);
        assert_eq!(run.stops.len(), 2);
        assert_eq!(
            run.stops[0].address.as_deref(),
            Some("Building 1, Room 101")
        );
        let assigned: Vec<_> = s
            .events
            .iter()
            .filter(|(k, _)| k == events::DELIVERY_ASSIGNED)
            .collect();
        assert_eq!(assigned.len(), 2);
        assert_eq!(assigned[0].1["courier"], "volunteer Li");
        assert_eq!(assigned[0].1["run_id"], "2099-12-01-lunch-run-001");
        // b is only accepted: the run cannot leave yet.
        assert_conflict(
            s.call(|s| start(s, NOW, run_id_input(&run.run_id))),
            &format!("order {b} is accepted, not ready yet"),
        );
        advance(&mut s, &b, &[Action::MarkReady]);
        let started = start(&mut s, NOW, run_id_input(&run.run_id)).expect("start");
        assert_eq!(started.status, RunStatus::Out);
        assert!(started.stops.iter().all(|st| st.state == OutForDelivery));
        assert_conflict(
            start(&mut s, NOW, run_id_input(&run.run_id)),
            "already left the canteen",
        );
        for id in [&a, &b] {
            let o = mark_delivered(&mut s, NOW, action_input(id)).expect("delivered");
            assert_eq!(o.state, Delivered);
        }
        assert_eq!(get_run(&mut s, &run.run_id).status, RunStatus::Completed);
        assert_eq!(
            s.events
                .iter()
                .filter(|(k, _)| k == events::ORDER_DELIVERED)
                .count(),
            2
        );
    }

    #[test]
    fn an_order_is_never_assigned_twice() {
        let (mut s, a) = order_in_state(Delivery, Accepted);
        assign(&mut s, NOW, assign_input("Li", &[&a])).expect("first");
        let before = s.clone();
        for courier in ["Li", "Zhao"] {
            assert_conflict(
                s.call(|s| assign(s, NOW, assign_input(courier, &[&a]))),
                &format!(
                    "order {a} is already assigned to run 2099-12-01-lunch-run-001 (courier Li)"
                ),
            );
        }
        assert_eq!(s.data, before.data);
        // Taken off its run, it can go to someone else.
        let o = unassign(&mut s, NOW, unassign_input(&a, Some("Li is ill"))).expect("unassign");
        assert_eq!((o.courier, o.run_id), (None, None));
        let (kind, payload) = s.events.last().expect("event");
        assert_eq!(kind, events::DELIVERY_UNASSIGNED);
        assert_eq!(payload["courier"], "Li");
        assert_eq!(payload["reason"], "Li is ill");
        assert!(get_run(&mut s, "2099-12-01-lunch-run-001").stops.is_empty());
        let run = assign(&mut s, NOW, assign_input("Zhao", &[&a])).expect("again");
        assert_eq!(run.run_id, "2099-12-01-lunch-run-002");
        assert_conflict(
            unassign(&mut s, NOW, unassign_input(&a, None))
                .and_then(|_| unassign(&mut s, NOW, unassign_input(&a, None))),
            "is not assigned to any delivery run",
        );
    }

    #[test]
    fn a_run_is_all_or_nothing() {
        let (mut s, a, p) = ready_and_second(
            order_input("r-young", Pickup, &[("rice", 1)]),
            &[Action::Accept],
        );
        let before = s.clone();
        assert_conflict(
            s.call(|s| assign(s, NOW, assign_input("Li", &[&a, &p]))),
            "is a pick-up order",
        );
        assert_eq!(s.data, before.data, "a was not assigned either");
        assert_invalid(
            assign(&mut s, NOW, assign_input("Li", &[&a, &a])),
            "listed twice",
        );
        assert_invalid(
            assign(&mut s, NOW, assign_input("Li", &[])),
            "1 to 30 orders",
        );
        assert_not_found(
            assign(&mut s, NOW, assign_input("Li", &["2099-12-01-lunch-0099"])),
            "there is no order",
        );
    }

    #[test]
    fn a_run_serves_one_meal() {
        let mut dinner = order_input("r-limited", Delivery, &[("rice", 1)]);
        dinner.slot = Slot::Dinner;
        let (mut s, a, d) = ready_and_second(dinner, &[Action::Accept]);
        assert_invalid(
            assign(&mut s, NOW, assign_input("Li", &[&a, &d])),
            "a run serves one meal",
        );
    }

    /// `assign-delivery`, `unassign-delivery`, `start-run` and `mark-delivered` from every
    /// state a delivery order can be in.
    #[test]
    fn run_operations_from_every_state() {
        for from in reachable_states(Delivery) {
            // assign-delivery
            let (mut s, id) = order_in_state(Delivery, from);
            let r = s.call(|s| assign(s, NOW, assign_input("Li", &[&id])));
            match from {
                Accepted | Ready => assert!(r.is_ok(), "assign from {from}: {r:?}"),
                Placed => assert_conflict(r, "accept it first (accept-order)"),
                _ => assert_conflict(r, "only accepted or ready orders can be assigned"),
            }

            // unassign-delivery, on an order assigned while it was accepted or ready.
            let (mut s, id) = assigned_order_in_state(from);
            let r = s.call(|s| unassign(s, NOW, unassign_input(&id, None)));
            match from {
                Accepted | Ready => assert!(r.is_ok(), "unassign from {from}: {r:?}"),
                Placed => assert_conflict(r, "is not assigned to any delivery run"),
                _ => assert_conflict(
                    r,
                    "only an order that has not left the canteen can be taken off",
                ),
            }

            // start-run, with the order on a run (where it can be).
            let (mut s, id) = assigned_order_in_state(from);
            if let Some(run_id) = orders::load(&mut s, &id).expect("order").run_id {
                let before = s.clone();
                let r = s.call(|s| start(s, NOW, run_id_input(&run_id)));
                match from {
                    Ready => assert_eq!(r.map(|v| v.stops[0].state), Ok(OutForDelivery)),
                    Accepted => {
                        assert_conflict(r, "mark it ready (mark-ready) or take it off the run")
                    }
                    Cancelled => assert_conflict(r, "has no order to deliver"),
                    // The run of an order out for delivery or delivered has left.
                    OutForDelivery | Delivered => assert_conflict(r, "already left the canteen"),
                    other => panic!("{other} cannot be on a run"),
                }
                if from != Ready {
                    assert_eq!(s.data, before.data);
                }
            } else {
                assert_eq!(from, Placed, "every other state was reached through a run");
            }

            // mark-delivered
            let (mut s, id) = assigned_order_in_state(from);
            let r = s.call(|s| mark_delivered(s, NOW, action_input(&id)));
            match from {
                OutForDelivery => assert_eq!(r.map(|o| o.state), Ok(Delivered)),
                Ready => assert_conflict(r, "start its delivery run first (start-run)"),
                Placed | Accepted => assert_conflict(r, "has not left the canteen yet"),
                Delivered => assert_conflict(r, "is already delivered"),
                _ => assert_conflict(r, "nothing more can happen to it"),
            }
        }
    }

    #[test]
    fn cancelled_orders_stay_on_their_run_and_are_skipped() {
        let (mut s, a, b) = ready_and_second(
            order_input("r-limited", Delivery, &[("rice", 1)]),
            &[Action::Accept, Action::MarkReady],
        );
        let run = assign(&mut s, NOW, assign_input("Li", &[&a, &b])).expect("assign");
        orders::cancel(
            &mut s,
            &Config::default(),
            NOW,
            cancel_input(&b, orders::Role::Staff),
        )
        .expect("cancel");
        let started = start(&mut s, NOW, run_id_input(&run.run_id)).expect("start");
        let states: Vec<_> = started.stops.iter().map(|st| st.state).collect();
        assert_eq!(states, [OutForDelivery, Cancelled]);
        // A failed delivery: the staff cancel it, and the run completes.
        orders::cancel(
            &mut s,
            &Config::default(),
            NOW,
            cancel_input(&a, orders::Role::Staff),
        )
        .expect("cancel");
        assert_eq!(get_run(&mut s, &run.run_id).status, RunStatus::Completed);
    }

    #[test]
    fn list_runs_by_day_and_courier() {
        let (mut s, a, b) = ready_and_second(
            order_input("r-limited", Delivery, &[("rice", 1)]),
            &[Action::Accept],
        );
        assign(&mut s, NOW, assign_input("Li", &[&a])).expect("li");
        assign(&mut s, NOW, assign_input("Zhao", &[&b])).expect("zhao");
        assert_eq!(list_runs(&mut s, None, None).len(), 2);
        let zhao = list_runs(&mut s, Some(Slot::Lunch), Some("Zhao"));
        assert_eq!(zhao.len(), 1);
        assert_eq!(zhao[0].stops[0].order_id, b);
        assert!(list_runs(&mut s, Some(Slot::Dinner), None).is_empty());
    }
}
