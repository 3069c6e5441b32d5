//! The records in state, and the one place that keeps the indexes and the drivers' busy
//! flags consistent with the rides: [`Db::save_ride`] compares a ride before and after a
//! transition and updates what follows from the difference, then emits the events of
//! the transition. See [`crate::store`] for the key layout.

use crate::config::Config;
use crate::drivers::{Candidate, Driver, DriverPool, nearest};
use crate::events::event_for;
use crate::geo::Coord;
use crate::rides::{MAX_SEQ, Ride, RideState, ride_id, ride_seq};
use crate::screens::Screen;
use crate::store::{Store, load, load_all, page_of, save};
use courtyard_sdk::{Error, Value};
use std::collections::{BTreeMap, BTreeSet};

/// State keys.
pub mod keys {
    use super::*;

    /// Prefix of screens.
    pub const SCREENS: &str = "screen/";
    /// Prefix of drivers.
    pub const DRIVERS: &str = "driver/";
    /// Prefix of rides.
    pub const RIDES: &str = "ride/";
    /// Prefix of every ride, newest first.
    pub const ALL: &str = "all/";
    /// Prefix of the deadlines of offer rounds, soonest first.
    pub const DUE: &str = "due/";
    /// The last ride number.
    pub const RIDE_SEQ: &str = "seq/ride";
    /// Where the removal of idle drivers goes on from (a driver key).
    pub const DRIVER_SWEEP_CURSOR: &str = "sweep/driver-cursor";

    /// A screen.
    pub fn screen(screen_id: &str) -> String {
        format!("{SCREENS}{screen_id}")
    }
    /// A driver.
    pub fn driver(driver_id: &str) -> String {
        format!("{DRIVERS}{driver_id}")
    }
    /// A ride.
    pub fn ride(ride_id: &str) -> String {
        format!("{RIDES}{ride_id}")
    }
    /// Sorts newest first: `99999999 - seq`, zero-padded.
    pub fn inverted(seq: u64) -> String {
        format!("{:08}", MAX_SEQ.saturating_sub(seq))
    }
    /// A ride in the list of all rides.
    pub fn all(seq: u64) -> String {
        format!("{ALL}{}", inverted(seq))
    }
    /// The prefix of a screen's history.
    pub fn history_prefix(screen_id: &str) -> String {
        format!("hist/{screen_id}/")
    }
    /// A ride in its screen's history.
    pub fn history(screen_id: &str, seq: u64) -> String {
        format!("{}{}", history_prefix(screen_id), inverted(seq))
    }
    /// The prefix of the rides in a state.
    pub fn open_prefix(state: RideState) -> String {
        format!("open/{}/", state.as_str())
    }
    /// A ride in its state's list.
    pub fn open(state: RideState, ride_id: &str) -> String {
        format!("{}{ride_id}", open_prefix(state))
    }
    /// The deadline of a ride's offer round.
    pub fn due(deadline_ms: i64, ride_id: &str) -> String {
        format!("{DUE}{:015}/{ride_id}", deadline_ms.max(0))
    }
    /// The deadline in a `due/` key.
    pub fn due_deadline(key: &str) -> Option<i64> {
        key.strip_prefix(DUE)?.split('/').next()?.parse().ok()
    }
    /// The prefix of a driver's open offers.
    pub fn offers_prefix(driver_id: &str) -> String {
        format!("offer/{driver_id}/")
    }
    /// An open offer.
    pub fn offer(driver_id: &str, ride_id: &str) -> String {
        format!("{}{ride_id}", offers_prefix(driver_id))
    }
}

/// The `due/` key of a ride, if it is waiting for an offer round to end.
pub fn due_key(ride: &Ride) -> Option<String> {
    match (ride.state, ride.times.round_deadline_ms) {
        (RideState::Offering, Some(deadline)) => Some(keys::due(deadline, &ride.ride_id)),
        _ => None,
    }
}

/// The community's records during one call: the store, the config and the call's `now`.
#[derive(Debug)]
pub struct Db<'a, S: Store> {
    store: &'a mut S,
    /// The community's configuration.
    pub config: &'a Config,
    /// The host's `now` for this call (ms since the epoch).
    pub now_ms: i64,
    /// Every driver, loaded on first need and kept in step with this call's writes.
    drivers: Option<BTreeMap<String, Driver>>,
}

impl<'a, S: Store> Db<'a, S> {
    /// The records of `store` at `now_ms`.
    pub fn new(store: &'a mut S, config: &'a Config, now_ms: i64) -> Self {
        Self {
            store,
            config,
            now_ms,
            drivers: None,
        }
    }

    /// The underlying store.
    pub fn store(&mut self) -> &mut S {
        self.store
    }

    // ---- screens -----------------------------------------------------------------------

    /// A screen, if registered.
    pub fn screen(&mut self, screen_id: &str) -> Result<Option<Screen>, Error> {
        load(self.store, &keys::screen(screen_id))
    }

    /// A screen, or `not_found`.
    pub fn require_screen(&mut self, screen_id: &str) -> Result<Screen, Error> {
        self.screen(screen_id)?.ok_or_else(|| {
            Error::not_found(format!(
                "no screen {screen_id:?} is registered in this community; register it with register-screen first"
            ))
        })
    }

    /// Stores a screen.
    pub fn put_screen(&mut self, screen: &Screen) -> Result<(), Error> {
        save(self.store, &keys::screen(&screen.screen_id), screen)
    }

    // ---- drivers -----------------------------------------------------------------------

    fn all_drivers(&mut self) -> Result<&BTreeMap<String, Driver>, Error> {
        if self.drivers.is_none() {
            let all: Vec<(String, Driver)> = load_all(self.store, keys::DRIVERS)?;
            self.drivers = Some(
                all.into_iter()
                    .map(|(_, d)| (d.driver_id.clone(), d))
                    .collect(),
            );
        }
        Ok(self.drivers.get_or_insert_default())
    }

    /// A driver, if it ever reported.
    pub fn driver(&mut self, driver_id: &str) -> Result<Option<Driver>, Error> {
        if let Some(cache) = &self.drivers {
            return Ok(cache.get(driver_id).cloned());
        }
        load(self.store, &keys::driver(driver_id))
    }

    /// A driver, or `not_found`.
    pub fn require_driver(&mut self, driver_id: &str) -> Result<Driver, Error> {
        self.driver(driver_id)?.ok_or_else(|| {
            Error::not_found(format!(
                "no driver {driver_id:?} has reported in this community; the driver app must call report-driver first"
            ))
        })
    }

    /// Stores a driver.
    pub fn put_driver(&mut self, driver: &Driver) -> Result<(), Error> {
        save(self.store, &keys::driver(&driver.driver_id), driver)?;
        if let Some(cache) = &mut self.drivers {
            cache.insert(driver.driver_id.clone(), driver.clone());
        }
        Ok(())
    }

    /// Removes the drivers not heard from for more than `max_idle_ms` (their last report)
    /// that no ride holds — not busy, no open offer — looking at no more than `budget`
    /// drivers, going on from where the previous call stopped. A removed driver comes
    /// back with its next report. Returns how many it removed.
    pub fn remove_idle_drivers(&mut self, max_idle_ms: i64, budget: u32) -> Result<u32, Error> {
        let cursor: Option<String> = load(self.store, keys::DRIVER_SWEEP_CURSOR)?;
        let (drivers, more) =
            page_of::<Driver>(self.store, keys::DRIVERS, cursor.as_deref(), budget)?;
        let mut removed = 0;
        for driver in &drivers {
            let idle = self.now_ms.saturating_sub(driver.reported_at_ms) > max_idle_ms;
            if !idle || driver.ride_id.is_some() {
                continue;
            }
            let offers = keys::offers_prefix(&driver.driver_id);
            if !self.store.scan(&offers, None, 1)?.is_empty() {
                continue;
            }
            self.store.delete(&keys::driver(&driver.driver_id))?;
            if let Some(cache) = &mut self.drivers {
                cache.remove(&driver.driver_id);
            }
            removed += 1;
        }
        match drivers.last() {
            Some(last) if more => save(
                self.store,
                keys::DRIVER_SWEEP_CURSOR,
                &keys::driver(&last.driver_id),
            )?,
            _ => self.store.delete(keys::DRIVER_SWEEP_CURSOR)?,
        }
        Ok(removed)
    }

    // ---- rides -------------------------------------------------------------------------

    /// A ride as stored, without applying timeouts.
    pub fn stored_ride(&mut self, ride_id: &str) -> Result<Option<Ride>, Error> {
        load(self.store, &keys::ride(ride_id))
    }

    /// A ride, brought up to date (a due offer round is advanced and saved), or
    /// `not_found`.
    pub fn ride(&mut self, ride_id: &str) -> Result<Ride, Error> {
        let ride = self.stored_ride(ride_id)?.ok_or_else(|| {
            Error::not_found(format!(
                "no ride {ride_id:?} in this community; ride ids look like ride-00000001 (see list-rides)"
            ))
        })?;
        self.refresh(ride)
    }

    /// Applies a due offer timeout to `ride` and saves it if that changed it.
    pub fn refresh(&mut self, mut ride: Ride) -> Result<Ride, Error> {
        let before = ride.clone();
        let (now_ms, config) = (self.now_ms, self.config);
        if ride.advance(now_ms, config, self)? {
            self.save_ride(Some(&before), &mut ride)?;
        }
        Ok(ride)
    }

    /// The id and number of a new ride.
    pub fn next_ride_id(&mut self) -> Result<(String, u64), Error> {
        let last: u64 = load(self.store, keys::RIDE_SEQ)?.unwrap_or(0);
        if last >= MAX_SEQ {
            return Err(Error::conflict(
                "this community has used every ride number (99 999 999); ask the operator to archive its rides",
            ));
        }
        let seq = last + 1;
        save(self.store, keys::RIDE_SEQ, &seq)?;
        Ok((ride_id(seq), seq))
    }

    /// Stores `after` (the ride once `before`, or new) and everything that follows from
    /// the change: the state lists, the round deadline, the drivers' open offers, the
    /// busy flag of its driver, its screen's open rides, count and history. Then emits
    /// the events of its transitions.
    pub fn save_ride(&mut self, before: Option<&Ride>, after: &mut Ride) -> Result<(), Error> {
        let id = after.ride_id.clone();
        let seq =
            ride_seq(&id).ok_or_else(|| Error::internal(format!("ride id {id:?} is malformed")))?;
        save(self.store, &keys::ride(&id), &*after)?;
        let id_value = Value::String(id.clone());

        // The lists of rides per non-final state.
        let before_state = before.map(|r| r.state);
        if before_state != Some(after.state) {
            if let Some(state) = before_state
                && !state.is_final()
            {
                self.store.delete(&keys::open(state, &id))?;
            }
            if !after.state.is_final() {
                self.store.put(&keys::open(after.state, &id), &id_value)?;
            }
        }

        // The round deadline.
        let (old_due, new_due) = (before.and_then(due_key), due_key(after));
        if old_due != new_due {
            if let Some(key) = old_due {
                self.store.delete(&key)?;
            }
            if let Some(key) = new_due {
                self.store.put(&key, &id_value)?;
            }
        }

        // The drivers' open offers.
        let old_offers: BTreeSet<&str> = before
            .map(|r| r.open_offers())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let new_offers: BTreeSet<&str> = after.open_offers().into_iter().collect();
        for driver in old_offers.difference(&new_offers) {
            self.store.delete(&keys::offer(driver, &id))?;
        }
        for driver in new_offers.difference(&old_offers) {
            self.store.put(&keys::offer(driver, &id), &id_value)?;
        }

        // The busy flag of the driver.
        let old_busy = before.and_then(|r| r.busy_driver()).map(str::to_owned);
        let new_busy = after.busy_driver().map(str::to_owned);
        if old_busy != new_busy {
            if let Some(driver_id) = old_busy
                && let Some(mut driver) = self.driver(&driver_id)?
                && driver.ride_id.as_deref() == Some(id.as_str())
            {
                driver.ride_id = None;
                self.put_driver(&driver)?;
            }
            if let Some(driver_id) = new_busy {
                let mut driver = self.driver(&driver_id)?.ok_or_else(|| {
                    Error::internal(format!("ride {id} holds unknown driver {driver_id:?}"))
                })?;
                driver.ride_id = Some(id.clone());
                self.put_driver(&driver)?;
            }
        }

        // The screen: open rides, count, history.
        if let Some(screen_id) = after.screen_id.clone() {
            let was_open = before.is_some_and(|r| r.state.rider_waiting());
            let is_open = after.state.rider_waiting();
            if before.is_none() || was_open != is_open {
                let mut screen = self.require_screen(&screen_id)?;
                screen.set_open(&id, is_open);
                if before.is_none() {
                    screen.rides_total += 1;
                    self.store.put(&keys::history(&screen_id, seq), &id_value)?;
                }
                self.put_screen(&screen)?;
            }
        }
        if before.is_none() {
            self.store.put(&keys::all(seq), &id_value)?;
        }

        // The events.
        for happening in std::mem::take(&mut after.happenings) {
            let (kind, payload) = event_for(after, &happening);
            self.store.emit(kind, &payload)?;
        }
        Ok(())
    }
}

impl<S: Store> DriverPool for Db<'_, S> {
    fn nearest(
        &mut self,
        at: Coord,
        radius_m: f64,
        limit: usize,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Candidate>, Error> {
        let (now_ms, max_age_ms) = (self.now_ms, self.config.position_max_age_ms());
        let drivers = self.all_drivers()?;
        Ok(nearest(
            drivers.values(),
            at,
            radius_m,
            limit,
            now_ms,
            max_age_ms,
            skip,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_intended() {
        assert_eq!(keys::inverted(1), "99999998");
        assert!(keys::all(2) < keys::all(1), "newest first");
        assert!(keys::history("s", 10) < keys::history("s", 9));
        assert!(keys::due(1_000, "ride-00000002") < keys::due(20_000, "ride-00000001"));
        assert_eq!(
            keys::due(4_102_444_800_000, "ride-00000001"),
            "due/004102444800000/ride-00000001"
        );
        assert_eq!(
            keys::due_deadline("due/004102444800000/ride-00000001"),
            Some(4_102_444_800_000)
        );
        assert_eq!(keys::due_deadline("open/x"), None);
        assert_eq!(keys::open(RideState::PickedUp, "r"), "open/picked_up/r");
    }
}
