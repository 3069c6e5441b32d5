//! The operations of the manifest: their inputs and outputs, and [`invoke`], which runs
//! one against a [`Store`] at a given `now`. The component glue in `lib.rs` only binds
//! this to the host; the unit tests and the worked example of the docs call it directly.

use crate::config::Config;
use crate::db::{Db, due_key, keys};
use crate::drivers::{Driver, DriverReport, DriverView};
use crate::geo::{Pickup, whole_metres};
use crate::replay;
use crate::rides::{CancelledBy, CompletedBy, Completer, Ride, RideState, Source, ride_seq};
use crate::screens::{RegisterScreen, Screen};
use crate::store::{Store, page_of, page_of_ids};
use courtyard_sdk::{Error, Value, handle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Every operation, as named in the manifest.
pub const OPERATIONS: [&str; 17] = [
    "register-screen",
    "get-screen",
    "list-screens",
    "screen-history",
    "report-driver",
    "get-driver",
    "list-drivers",
    "request-ride",
    "get-ride",
    "list-rides",
    "accept-ride",
    "release-ride",
    "pick-up",
    "complete-ride",
    "cancel-ride",
    "reoffer-ride",
    "tick",
];

/// The operations that change state on purpose, and so keep replay records.
pub const MUTATING: [&str; 10] = [
    "register-screen",
    "report-driver",
    "request-ride",
    "accept-ride",
    "release-ride",
    "pick-up",
    "complete-ride",
    "cancel-ride",
    "reoffer-ride",
    "tick",
];

/// Default page size of listings.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size of listings (each listed ride is brought up to date, which may emit
/// one event; the host allows 64 per call).
pub const MAX_LIMIT: u32 = 50;
/// Default number of due rides one `tick` handles.
pub const DEFAULT_TICK_LIMIT: u32 = 20;
/// Largest number of due rides one `tick` handles (each may emit one event; the host
/// allows 64 per call).
pub const MAX_TICK_LIMIT: u32 = 50;
/// How many open offers `get-driver` and `report-driver` return.
pub const MAX_OFFERS_SHOWN: u32 = 20;
/// How many replay records one `tick` looks at for purging.
pub const REPLAY_SWEEP_BUDGET: u32 = 500;
/// How many drivers one `tick` looks at for removing idle ones.
pub const DRIVER_SWEEP_BUDGET: u32 = 200;

/// What the host says about the call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The host's now, ms since the epoch.
    pub now_ms: i64,
    /// The caller's idempotency key.
    pub idempotency_key: Option<&'a str>,
}

// ---- inputs ------------------------------------------------------------------------------

/// `{"screen_id": ...}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScreenIdInput {
    /// The screen.
    pub screen_id: String,
}

/// `{"driver_id": ...}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverIdInput {
    /// The driver.
    pub driver_id: String,
}

/// `{"ride_id": ...}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideIdInput {
    /// The ride.
    pub ride_id: String,
}

/// A page request: continue after `after` (the `next` of the previous page).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageInput {
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// Page size, 1 to 50 (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The input of `screen-history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryInput {
    /// The screen.
    pub screen_id: String,
    /// The `next` of the previous page (a ride id).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The input of `list-rides`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRidesInput {
    /// Only rides in this (non-final) state, oldest first; without it, every ride,
    /// newest first.
    #[serde(default)]
    pub state: Option<RideState>,
    /// The `next` of the previous page (a ride id).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The input of `request-ride`: a screen, or a pickup point (a phone).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRideInput {
    /// The screen pressed.
    #[serde(default)]
    pub screen_id: Option<String>,
    /// The pickup point sent by a phone.
    #[serde(default)]
    pub pickup: Option<Pickup>,
    /// The app's reference of the rider.
    #[serde(default)]
    pub rider_ref: Option<String>,
    /// A note for the driver.
    #[serde(default)]
    pub note: Option<String>,
}

/// `{"ride_id": ..., "driver_id": ...}`: accept, pick up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RideDriverInput {
    /// The ride.
    pub ride_id: String,
    /// The driver acting.
    pub driver_id: String,
}

/// The input of `release-ride`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseInput {
    /// The ride.
    pub ride_id: String,
    /// Its driver.
    pub driver_id: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The input of `complete-ride`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteInput {
    /// The ride.
    pub ride_id: String,
    /// The driver or staff.
    pub by: CompletedBy,
    /// The driver (when `by` is `driver`).
    #[serde(default)]
    pub driver_id: Option<String>,
}

/// The input of `cancel-ride`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    /// The ride.
    pub ride_id: String,
    /// The rider or staff.
    pub by: CancelledBy,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The input of `tick`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TickInput {
    /// How many due rides to handle, 1 to 50 (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
}

// ---- outputs -----------------------------------------------------------------------------

/// A page of screens.
#[derive(Debug, Serialize)]
pub struct ScreenPage {
    /// The screens, by id.
    pub screens: Vec<Screen>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// A page of drivers.
#[derive(Debug, Serialize)]
pub struct DriverPage {
    /// The drivers, by id.
    pub drivers: Vec<DriverView>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// A page of rides.
#[derive(Debug, Serialize)]
pub struct RidePage {
    /// The rides.
    pub rides: Vec<Ride>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// A screen's history page.
#[derive(Debug, Serialize)]
pub struct HistoryPage {
    /// The screen.
    pub screen_id: String,
    /// Its rides, newest first.
    pub rides: Vec<Ride>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// An open offer, as its driver sees it.
#[derive(Debug, Serialize)]
pub struct OfferView {
    /// The ride.
    pub ride_id: String,
    /// Where to pick up.
    pub pickup: Pickup,
    /// The rider's note.
    pub note: Option<String>,
    /// The round that offered it to this driver.
    pub round: u32,
    /// The driver's distance to the pickup now, in metres.
    pub distance_m: u32,
    /// When the ride's current round ends.
    pub round_deadline_ms: Option<i64>,
}

/// A driver with its open offers.
#[derive(Debug, Serialize)]
pub struct DriverDetail {
    /// The driver and its status.
    #[serde(flatten)]
    pub view: DriverView,
    /// The rides offered to it and still open, oldest first.
    pub offers: Vec<OfferView>,
}

/// What a `tick` did.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TickOutput {
    /// Due rides handled.
    pub due_handled: u32,
    /// Of those, offered to a new round of drivers.
    pub reoffered: u32,
    /// Of those, escalated to staff.
    pub escalated: u32,
    /// Whether more rides are due (call again).
    pub more: bool,
    /// The next round deadline still pending, if any.
    pub next_due_ms: Option<i64>,
    /// Replay records purged.
    pub replays_purged: u32,
    /// Drivers removed: not heard from for `driver_retention_h`, and held by no ride.
    pub drivers_removed: u32,
}

// ---- the operations ----------------------------------------------------------------------

fn limit(requested: Option<u32>) -> u32 {
    requested.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn cursor_seq(after: &str) -> Result<u64, Error> {
    ride_seq(after).ok_or_else(|| {
        Error::invalid_input(format!(
            "after {after:?} is not a ride id; pass the `next` of the previous page"
        ))
    })
}

/// `register-screen`: creates or updates a screen.
pub fn register_screen<S: Store>(db: &mut Db<S>, input: RegisterScreen) -> Result<Screen, Error> {
    let existing = db.screen(&input.screen_id)?;
    let screen = Screen::register(existing, input, db.now_ms)?;
    db.put_screen(&screen)?;
    Ok(screen)
}

/// A page of the records under `prefix`, stored under `key(id)`, by id: the records and
/// the `next` cursor (the last id, when more follow).
fn records_page<S: Store, T: DeserializeOwned>(
    db: &mut Db<S>,
    prefix: &str,
    key: fn(&str) -> String,
    id: fn(&T) -> &str,
    input: PageInput,
) -> Result<(Vec<T>, Option<String>), Error> {
    let after = input.after.map(|a| key(&a));
    let (records, more) = page_of(db.store(), prefix, after.as_deref(), limit(input.limit))?;
    let next = if more {
        records.last().map(|r| id(r).to_owned())
    } else {
        None
    };
    Ok((records, next))
}

/// A page of an index of ride ids under `prefix`, after the key `after`: the rides, each
/// brought up to date, and the `next` cursor (the last ride id, when more follow).
fn rides_page<S: Store>(
    db: &mut Db<S>,
    prefix: &str,
    after: Option<String>,
    requested: Option<u32>,
) -> Result<(Vec<Ride>, Option<String>), Error> {
    let (ids, more) = page_of_ids(db.store(), prefix, after.as_deref(), limit(requested))?;
    let next = if more { ids.last().cloned() } else { None };
    let rides = ids.iter().map(|id| db.ride(id)).collect::<Result<_, _>>()?;
    Ok((rides, next))
}

/// Brings ride `ride_id` up to date, applies `transition` to it and saves what it
/// changed (a transition that changes nothing saves and emits nothing).
fn transition<S: Store>(
    db: &mut Db<S>,
    ride_id: &str,
    transition: impl FnOnce(&mut Ride, &mut Db<S>) -> Result<(), Error>,
) -> Result<Ride, Error> {
    let ride = db.ride(ride_id)?;
    apply(db, ride, transition)
}

/// Applies `transition` to `ride` as it is and saves what it changed.
fn apply<S: Store>(
    db: &mut Db<S>,
    mut ride: Ride,
    transition: impl FnOnce(&mut Ride, &mut Db<S>) -> Result<(), Error>,
) -> Result<Ride, Error> {
    let before = ride.clone();
    transition(&mut ride, db)?;
    if ride != before {
        db.save_ride(Some(&before), &mut ride)?;
    }
    Ok(ride)
}

/// `list-screens`: screens by id.
pub fn list_screens<S: Store>(db: &mut Db<S>, input: PageInput) -> Result<ScreenPage, Error> {
    let (screens, next) = records_page(
        db,
        keys::SCREENS,
        keys::screen,
        |s: &Screen| &s.screen_id,
        input,
    )?;
    Ok(ScreenPage { screens, next })
}

/// `screen-history`: a screen's rides, newest first.
pub fn screen_history<S: Store>(db: &mut Db<S>, input: HistoryInput) -> Result<HistoryPage, Error> {
    db.require_screen(&input.screen_id)?;
    let after = match &input.after {
        Some(a) => Some(keys::history(&input.screen_id, cursor_seq(a)?)),
        None => None,
    };
    let prefix = keys::history_prefix(&input.screen_id);
    let (rides, next) = rides_page(db, &prefix, after, input.limit)?;
    Ok(HistoryPage {
        screen_id: input.screen_id,
        rides,
        next,
    })
}

fn driver_detail<S: Store>(db: &mut Db<S>, driver: Driver) -> Result<DriverDetail, Error> {
    let prefix = keys::offers_prefix(&driver.driver_id);
    let (ids, _) = page_of_ids(db.store(), &prefix, None, MAX_OFFERS_SHOWN)?;
    let mut offers = Vec::new();
    for id in ids {
        let ride = db.ride(&id)?;
        // A due round may just have closed the offer (escalation).
        let Some(offer) = ride
            .offered
            .iter()
            .find(|o| o.driver_id == driver.driver_id)
            .filter(|_| ride.state == RideState::Offering)
        else {
            continue;
        };
        offers.push(OfferView {
            ride_id: ride.ride_id.clone(),
            distance_m: whole_metres(driver.coord().distance_m(ride.pickup.coord())),
            round: offer.round,
            note: ride.note.clone(),
            round_deadline_ms: ride.times.round_deadline_ms,
            pickup: ride.pickup,
        });
    }
    // Re-read: bringing the rides up to date never changes the driver, but be exact.
    let driver = db.driver(&driver.driver_id)?.unwrap_or(driver);
    let status = driver.status(db.now_ms, db.config.position_max_age_ms());
    Ok(DriverDetail {
        view: DriverView { driver, status },
        offers,
    })
}

/// `report-driver`: a driver's position and availability; answers with its open offers.
pub fn report_driver<S: Store>(
    db: &mut Db<S>,
    report: DriverReport,
) -> Result<DriverDetail, Error> {
    report.validate()?;
    let driver = match db.driver(&report.driver_id)? {
        Some(mut driver) => {
            driver.report(&report, db.now_ms);
            driver
        }
        None => report.into_driver(db.now_ms),
    };
    db.put_driver(&driver)?;
    driver_detail(db, driver)
}

/// `get-driver`: a driver, its status and open offers.
pub fn get_driver<S: Store>(db: &mut Db<S>, input: DriverIdInput) -> Result<DriverDetail, Error> {
    let driver = db.require_driver(&input.driver_id)?;
    driver_detail(db, driver)
}

/// `list-drivers`: drivers by id, with their status.
pub fn list_drivers<S: Store>(db: &mut Db<S>, input: PageInput) -> Result<DriverPage, Error> {
    let (drivers, next) = records_page(
        db,
        keys::DRIVERS,
        keys::driver,
        |d: &Driver| &d.driver_id,
        input,
    )?;
    let (now_ms, max_age) = (db.now_ms, db.config.position_max_age_ms());
    let drivers = drivers
        .into_iter()
        .map(|driver| DriverView {
            status: driver.status(now_ms, max_age),
            driver,
        })
        .collect();
    Ok(DriverPage { drivers, next })
}

/// `request-ride`: a screen press or a phone request; offered at once.
pub fn request_ride<S: Store>(db: &mut Db<S>, input: RequestRideInput) -> Result<Ride, Error> {
    let (source, screen_id, pickup) = match (input.screen_id, input.pickup) {
        (Some(screen_id), None) => {
            let screen = db.require_screen(&screen_id)?;
            screen.check_can_request(db.config.max_open_rides_per_screen)?;
            (Source::Screen, Some(screen_id), screen.pickup)
        }
        (None, Some(pickup)) => {
            pickup.validate()?;
            let pickup = Pickup {
                description: pickup.description.trim().to_owned(),
                ..pickup
            };
            (Source::Phone, None, pickup)
        }
        _ => {
            return Err(Error::invalid_input(
                "give either screen_id (a screen press) or pickup (a phone request), not both",
            ));
        }
    };
    let (ride_id, _) = db.next_ride_id()?;
    let mut ride = Ride::new(
        ride_id,
        source,
        screen_id,
        input.rider_ref,
        input.note,
        pickup,
        db.now_ms,
    );
    let (now_ms, config) = (db.now_ms, db.config);
    ride.start_offering(now_ms, config, db)?;
    db.save_ride(None, &mut ride)?;
    Ok(ride)
}

/// `list-rides`: rides in a non-final state (oldest first), or every ride (newest first).
pub fn list_rides<S: Store>(db: &mut Db<S>, input: ListRidesInput) -> Result<RidePage, Error> {
    let (prefix, after) = match input.state {
        Some(state) if state.is_final() => {
            return Err(Error::invalid_input(format!(
                "rides cannot be listed by the final state {state}; list every ride (no state) or use screen-history"
            )));
        }
        Some(state) => (
            keys::open_prefix(state),
            input.after.as_deref().map(|a| keys::open(state, a)),
        ),
        None => (
            keys::ALL.to_owned(),
            match input.after.as_deref() {
                Some(a) => Some(keys::all(cursor_seq(a)?)),
                None => None,
            },
        ),
    };
    let (rides, next) = rides_page(db, &prefix, after, input.limit)?;
    Ok(RidePage { rides, next })
}

/// `accept-ride`: the first offered driver to accept wins. A driver the ride is already
/// offered to accepts the ride as stored, before a round that has run out is advanced: its
/// offer is still open, so the ride is neither offered to new drivers nor escalated first.
/// Any other accept sees the ride brought up to date (a new round may offer it the ride).
pub fn accept_ride<S: Store>(db: &mut Db<S>, input: RideDriverInput) -> Result<Ride, Error> {
    let accept = |ride: &mut Ride, db: &mut Db<S>| {
        let driver = db.driver(&input.driver_id)?;
        let busy_with = driver.as_ref().and_then(|d| d.ride_id.clone());
        let plate = driver.and_then(|d| d.vehicle_plate);
        ride.accept(&input.driver_id, busy_with.as_deref(), plate, db.now_ms)?;
        Ok(())
    };
    if let Some(ride) = db.stored_ride(&input.ride_id)?
        && ride.state == RideState::Offering
        && ride.was_offered_to(&input.driver_id)
    {
        return apply(db, ride, accept);
    }
    transition(db, &input.ride_id, accept)
}

/// `release-ride`: the driver gives an accepted ride back; it is offered again.
pub fn release_ride<S: Store>(db: &mut Db<S>, input: ReleaseInput) -> Result<Ride, Error> {
    transition(db, &input.ride_id, |ride, db| {
        let (now_ms, config) = (db.now_ms, db.config);
        ride.release(&input.driver_id, input.reason, now_ms, config, db)
    })
}

/// `pick-up`: the driver has the rider in the car.
pub fn pick_up<S: Store>(db: &mut Db<S>, input: RideDriverInput) -> Result<Ride, Error> {
    transition(db, &input.ride_id, |ride, db| {
        ride.pick_up(&input.driver_id, db.now_ms)
    })
}

/// `complete-ride`: by the driver, or by staff for a driver who cannot.
pub fn complete_ride<S: Store>(db: &mut Db<S>, input: CompleteInput) -> Result<Ride, Error> {
    let by = match (input.by, input.driver_id) {
        (CompletedBy::Driver, Some(driver_id)) => Completer::Driver(driver_id),
        (CompletedBy::Driver, None) => {
            return Err(Error::invalid_input(
                "by \"driver\" needs the driver_id of the ride's driver",
            ));
        }
        (CompletedBy::Staff, _) => Completer::Staff,
    };
    transition(db, &input.ride_id, |ride, db| ride.complete(&by, db.now_ms))
}

/// `cancel-ride`: by the rider or staff, before the pick-up.
pub fn cancel_ride<S: Store>(db: &mut Db<S>, input: CancelInput) -> Result<Ride, Error> {
    transition(db, &input.ride_id, |ride, db| {
        ride.cancel(input.by, input.reason, db.now_ms)
    })
}

/// `reoffer-ride`: staff offer an escalated ride again from round 1.
pub fn reoffer_ride<S: Store>(db: &mut Db<S>, input: RideIdInput) -> Result<Ride, Error> {
    transition(db, &input.ride_id, |ride, db| {
        let (now_ms, config) = (db.now_ms, db.config);
        ride.reoffer(now_ms, config, db)
    })
}

/// `tick`: advances the rides whose offer round has run out (soonest first, at most
/// `limit`), purges a slice of old replay records and removes a slice of drivers not
/// heard from for `driver_retention_h`.
pub fn tick<S: Store>(db: &mut Db<S>, input: TickInput) -> Result<TickOutput, Error> {
    let limit = input
        .limit
        .unwrap_or(DEFAULT_TICK_LIMIT)
        .clamp(1, MAX_TICK_LIMIT);
    let mut out = TickOutput {
        due_handled: 0,
        reoffered: 0,
        escalated: 0,
        more: false,
        next_due_ms: None,
        replays_purged: 0,
        drivers_removed: 0,
    };
    let entries = db.store().scan(keys::DUE, None, limit + 1)?;
    for (key, id) in entries {
        let Some(deadline) = keys::due_deadline(&key) else {
            db.store().delete(&key)?;
            continue;
        };
        if deadline > db.now_ms {
            break;
        }
        if out.due_handled >= limit {
            out.more = true;
            break;
        }
        out.due_handled += 1;
        let ride = match id.as_str() {
            Some(id) => db.stored_ride(id)?,
            None => None,
        };
        let Some(ride) = ride else {
            db.store().delete(&key)?;
            continue;
        };
        let was = ride.state;
        let ride = db.refresh(ride)?;
        match ride.state {
            RideState::Escalated if was != RideState::Escalated => out.escalated += 1,
            RideState::Offering if due_key(&ride).as_deref() != Some(key.as_str()) => {
                out.reoffered += 1;
            }
            _ => {}
        }
        // An index entry that does not match its ride is stale: drop it.
        if due_key(&ride).as_deref() != Some(key.as_str()) {
            db.store().delete(&key)?;
        }
    }
    let next = db.store().scan(keys::DUE, None, 1)?;
    out.next_due_ms = next.first().and_then(|(k, _)| keys::due_deadline(k));
    let (now_ms, retention) = (db.now_ms, db.config.replay_retention_ms());
    out.replays_purged = replay::purge(db.store(), now_ms, retention, REPLAY_SWEEP_BUDGET)?;
    let max_idle = db.config.driver_retention_ms();
    out.drivers_removed = db.remove_idle_drivers(max_idle, DRIVER_SWEEP_BUDGET)?;
    Ok(out)
}

/// Runs `operation` with `input` against `store`, as the host would.
pub fn invoke<S: Store>(
    store: &mut S,
    config: &Config,
    call: Call<'_>,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    if MUTATING.contains(&operation) {
        replay::once(
            store,
            operation,
            call.idempotency_key,
            input,
            call.now_ms,
            |store, input| route(store, config, call.now_ms, operation, input),
        )
    } else {
        route(store, config, call.now_ms, operation, input)
    }
}

fn route<S: Store>(
    store: &mut S,
    config: &Config,
    now_ms: i64,
    operation: &str,
    input: Value,
) -> Result<Value, Error> {
    let db = &mut Db::new(store, config, now_ms);
    match operation {
        "register-screen" => handle(input, |i| register_screen(db, i)),
        "get-screen" => handle(input, |i: ScreenIdInput| db.require_screen(&i.screen_id)),
        "list-screens" => handle(input, |i| list_screens(db, i)),
        "screen-history" => handle(input, |i| screen_history(db, i)),
        "report-driver" => handle(input, |i| report_driver(db, i)),
        "get-driver" => handle(input, |i| get_driver(db, i)),
        "list-drivers" => handle(input, |i| list_drivers(db, i)),
        "request-ride" => handle(input, |i| request_ride(db, i)),
        "get-ride" => handle(input, |i: RideIdInput| db.ride(&i.ride_id)),
        "list-rides" => handle(input, |i| list_rides(db, i)),
        "accept-ride" => handle(input, |i| accept_ride(db, i)),
        "release-ride" => handle(input, |i| release_ride(db, i)),
        "pick-up" => handle(input, |i| pick_up(db, i)),
        "complete-ride" => handle(input, |i| complete_ride(db, i)),
        "cancel-ride" => handle(input, |i| cancel_ride(db, i)),
        "reoffer-ride" => handle(input, |i| reoffer_ride(db, i)),
        "tick" => handle(input, |i| tick(db, i)),
        other => Err(Error::not_found(format!(
            "taxi-dispatch has no operation {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests;
