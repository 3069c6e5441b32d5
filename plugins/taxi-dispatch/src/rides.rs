//! Rides and their state machine, as pure Rust: no state, no events, no clock. Each
//! transition takes `now` and returns a refusal ([`Error::Conflict`], naming the ride
//! and what to do) or changes the ride and records what happened in
//! [`Ride::happenings`], which the storage layer turns into events.
//!
//! ```text
//!               ┌──────── timeout, more rounds: next round (wider radius) ───┐
//!               ▼                                                           │
//! request ─► offering ─────────────────────────────────────────────────────┘
//!               │  │  └─ last round times out, or no driver in any round ─► escalated
//!               │  └─ accept (an offered driver; first one wins) ─► accepted   │
//!               │                                                  │  ▲       │ reoffer (staff)
//!               │                     release (the driver) ◄───────┘  │       ▼
//!               │                     = offering again, without it     │    offering
//!               │                                                      │
//!               │                          pick-up (the driver) ◄──────┘
//!               │                                  ▼
//!               │                              picked_up ── complete (driver or staff) ─► completed
//!               └─ cancel (rider or staff) from offering, escalated or accepted ─► cancelled
//! ```
//!
//! Offers stay open across rounds: a driver offered the ride in round 1 may still
//! accept it in round 3. Each round offers it to the nearest available drivers not yet
//! offered it. A round that finds no new driver is skipped at once (the radius widens
//! without waiting); when the last round has found nobody or has timed out, the ride is
//! escalated and its offers close.

use crate::config::Config;
use crate::drivers::DriverPool;
use crate::geo::Pickup;
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// Where a ride is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RideState {
    /// Offered to drivers, waiting for an accept.
    Offering,
    /// No driver accepted in any round: staff must act (re-offer or cancel).
    Escalated,
    /// A driver accepted and is on its way.
    Accepted,
    /// The rider is in the car.
    PickedUp,
    /// Done.
    Completed,
    /// Cancelled by the rider or staff.
    Cancelled,
}

impl RideState {
    /// Every state, in life order.
    pub const ALL: [RideState; 6] = [
        Self::Offering,
        Self::Escalated,
        Self::Accepted,
        Self::PickedUp,
        Self::Completed,
        Self::Cancelled,
    ];

    /// The name used in JSON and state keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offering => "offering",
            Self::Escalated => "escalated",
            Self::Accepted => "accepted",
            Self::PickedUp => "picked_up",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether nothing can happen to the ride any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// Whether the rider is still waiting at the pickup (counts against the screen).
    pub fn rider_waiting(self) -> bool {
        matches!(self, Self::Offering | Self::Escalated | Self::Accepted)
    }

    /// Whether the ride keeps its driver busy.
    pub fn holds_driver(self) -> bool {
        matches!(self, Self::Accepted | Self::PickedUp)
    }
}

impl std::fmt::Display for RideState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who raised the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A one-click screen (the pickup is the screen's).
    Screen,
    /// A phone app (the pickup is in the request).
    Phone,
}

/// Who cancelled a ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    /// The rider, at the screen or in the app.
    Rider,
    /// Community staff.
    Staff,
}

/// Who completed a ride.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completer {
    /// The assigned driver (its id, checked).
    Driver(String),
    /// Community staff, closing a ride whose driver cannot.
    Staff,
}

/// `completed_by` of a ride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletedBy {
    /// The driver.
    Driver,
    /// Staff.
    Staff,
}

/// One offer: a driver, how far it was from the pickup, in which round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The driver.
    pub driver_id: String,
    /// Its distance to the pickup when offered, in whole metres.
    pub distance_m: u32,
    /// The round (1-based).
    pub round: u32,
}

/// A driver giving a ride back after accepting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The driver, never offered this ride again.
    pub driver_id: String,
    /// Why, as the driver said.
    pub reason: Option<String>,
    /// When.
    pub at_ms: i64,
}

/// When things happened (host time, ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Times {
    /// The request.
    pub requested_ms: i64,
    /// When the current offer round ends (only while offering).
    pub round_deadline_ms: Option<i64>,
    /// The accept of the current driver.
    pub accepted_ms: Option<i64>,
    /// The pick-up.
    pub picked_up_ms: Option<i64>,
    /// The completion.
    pub completed_ms: Option<i64>,
    /// The cancellation.
    pub cancelled_ms: Option<i64>,
    /// The (last) escalation.
    pub escalated_ms: Option<i64>,
    /// The last change.
    pub updated_ms: i64,
}

/// What a transition did, for the event stream. Each carries what its event needs as it
/// was at that moment (later transitions of the same call may change the ride).
#[derive(Debug, Clone, PartialEq)]
pub enum Happening {
    /// The ride was requested.
    Requested,
    /// A round offered the ride to drivers.
    Offered {
        /// The round (1-based).
        round: u32,
        /// Its radius in metres.
        radius_m: u32,
        /// The drivers of this round.
        drivers: Vec<Offer>,
        /// When the round ends.
        expires_at_ms: i64,
        /// When it started.
        at_ms: i64,
    },
    /// A driver accepted.
    Accepted {
        /// The driver.
        driver_id: String,
        /// Its plate.
        vehicle_plate: Option<String>,
        /// When.
        at_ms: i64,
    },
    /// The driver gave the ride back.
    Released(Release),
    /// No driver accepted: staff must act.
    Escalated {
        /// Why, for staff.
        reason: String,
        /// How many rounds were tried.
        rounds: u32,
        /// The radius of the last round.
        radius_m: u32,
        /// How many drivers were offered the ride.
        drivers_offered: usize,
        /// When.
        at_ms: i64,
    },
    /// The rider got in.
    PickedUp {
        /// The driver.
        driver_id: String,
        /// When.
        at_ms: i64,
    },
    /// The ride is done.
    Completed {
        /// The driver.
        driver_id: Option<String>,
        /// Driver or staff.
        by: CompletedBy,
        /// When.
        at_ms: i64,
    },
    /// The ride was cancelled.
    Cancelled {
        /// The state before.
        from: RideState,
        /// Rider or staff.
        by: CancelledBy,
        /// Why, as given.
        reason: Option<String>,
        /// The driver it had, if it was accepted.
        driver_id: Option<String>,
        /// When.
        at_ms: i64,
    },
}

/// A ride request and everything that happened to it. Stored as is; operations return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ride {
    /// `ride-` and eight digits, in creation order per community.
    pub ride_id: String,
    /// The state.
    pub state: RideState,
    /// Screen or phone.
    pub source: Source,
    /// The screen that raised it.
    pub screen_id: Option<String>,
    /// The phone app's reference of the rider (an app user id).
    pub rider_ref: Option<String>,
    /// A note for the driver ("wheelchair", "to the People's Hospital").
    pub note: Option<String>,
    /// Where to pick the rider up.
    pub pickup: Pickup,
    /// The current (or last) offer round, 1-based; 0 before the first.
    pub round: u32,
    /// The radius of that round, in metres.
    pub radius_m: u32,
    /// The offers since offering last (re)started, in order.
    pub offered: Vec<Offer>,
    /// The driver who accepted it.
    pub driver_id: Option<String>,
    /// That driver's plate, for the rider.
    pub vehicle_plate: Option<String>,
    /// Drivers who accepted and gave the ride back.
    pub releases: Vec<Release>,
    /// Why the ride was escalated (while escalated).
    pub escalation_reason: Option<String>,
    /// Who cancelled it.
    pub cancelled_by: Option<CancelledBy>,
    /// Why, as given.
    pub cancel_reason: Option<String>,
    /// Who completed it.
    pub completed_by: Option<CompletedBy>,
    /// When things happened.
    pub times: Times,
    /// What the transitions of this call did; drained into events when saved.
    #[serde(skip)]
    pub happenings: Vec<Happening>,
}

/// What an accept did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// This driver won the ride.
    Won,
    /// This driver had already won it (a retried accept): nothing changed.
    AlreadyYours,
}

/// The id of the `seq`-th ride of a community.
pub fn ride_id(seq: u64) -> String {
    format!("ride-{seq:08}")
}

/// The sequence number in a ride id.
pub fn ride_seq(ride_id: &str) -> Option<u64> {
    let digits = ride_id.strip_prefix("ride-")?;
    if digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// The largest sequence number a ride id can hold.
pub const MAX_SEQ: u64 = 99_999_999;

fn conflict(message: String) -> Error {
    Error::conflict(message)
}

impl Ride {
    /// A new request, not yet offered: call [`Ride::start_offering`] next.
    pub fn new(
        ride_id: String,
        source: Source,
        screen_id: Option<String>,
        rider_ref: Option<String>,
        note: Option<String>,
        pickup: Pickup,
        now_ms: i64,
    ) -> Self {
        Self {
            ride_id,
            state: RideState::Offering,
            source,
            screen_id,
            rider_ref,
            note,
            pickup,
            round: 0,
            radius_m: 0,
            offered: Vec::new(),
            driver_id: None,
            vehicle_plate: None,
            releases: Vec::new(),
            escalation_reason: None,
            cancelled_by: None,
            cancel_reason: None,
            completed_by: None,
            times: Times {
                requested_ms: now_ms,
                updated_ms: now_ms,
                ..Times::default()
            },
            happenings: vec![Happening::Requested],
        }
    }

    /// Whether `driver_id` was offered the ride (in any round since offering started).
    pub fn was_offered_to(&self, driver_id: &str) -> bool {
        self.offered.iter().any(|o| o.driver_id == driver_id)
    }

    /// Whether `driver_id` gave this ride back once (and is never offered it again).
    pub fn was_released_by(&self, driver_id: &str) -> bool {
        self.releases.iter().any(|r| r.driver_id == driver_id)
    }

    /// The driver the ride keeps busy, if any.
    pub fn busy_driver(&self) -> Option<&str> {
        if self.state.holds_driver() {
            self.driver_id.as_deref()
        } else {
            None
        }
    }

    /// The drivers whose offers are open: those offered, while offering.
    pub fn open_offers(&self) -> Vec<&str> {
        if self.state == RideState::Offering {
            self.offered.iter().map(|o| o.driver_id.as_str()).collect()
        } else {
            Vec::new()
        }
    }

    fn touch(&mut self, now_ms: i64) {
        self.times.updated_ms = now_ms;
    }

    /// (Re)starts offering from round 1 with no open offers: used for a new request, a
    /// release and a staff re-offer. The rounds that find no driver are skipped; if none
    /// finds one, the ride is escalated at once.
    pub fn start_offering(
        &mut self,
        now_ms: i64,
        config: &Config,
        pool: &mut dyn DriverPool,
    ) -> Result<(), Error> {
        self.offered.clear();
        self.run_rounds(1, now_ms, config, pool)
    }

    fn run_rounds(
        &mut self,
        first_round: u32,
        now_ms: i64,
        config: &Config,
        pool: &mut dyn DriverPool,
    ) -> Result<(), Error> {
        let last = config.rounds();
        let mut round = first_round.max(1);
        loop {
            let radius_m = config.radius_for_round(round);
            self.round = round;
            self.radius_m = radius_m;
            let skip = |id: &str| self.was_offered_to(id) || self.was_released_by(id);
            let found = pool.nearest(
                self.pickup.coord(),
                f64::from(radius_m),
                config.drivers_per_round.max(1) as usize,
                &skip,
            )?;
            if !found.is_empty() {
                let drivers: Vec<Offer> = found
                    .iter()
                    .map(|c| Offer {
                        driver_id: c.driver_id.clone(),
                        distance_m: c.whole_metres(),
                        round,
                    })
                    .collect();
                self.offered.extend(drivers.iter().cloned());
                self.state = RideState::Offering;
                let expires_at_ms = now_ms.saturating_add(config.offer_timeout_ms());
                self.times.round_deadline_ms = Some(expires_at_ms);
                self.touch(now_ms);
                self.happenings.push(Happening::Offered {
                    round,
                    radius_m,
                    drivers,
                    expires_at_ms,
                    at_ms: now_ms,
                });
                return Ok(());
            }
            if round >= last {
                self.escalate(now_ms, config);
                return Ok(());
            }
            round += 1;
        }
    }

    fn escalate(&mut self, now_ms: i64, config: &Config) {
        let reason = if self.offered.is_empty() {
            format!(
                "no available driver within {} m of the pickup in {} round(s)",
                self.radius_m, self.round
            )
        } else {
            format!(
                "no driver accepted within {} round(s) of {} s ({} driver(s) offered, up to {} m)",
                self.round,
                config.offer_timeout_s,
                self.offered.len(),
                self.radius_m
            )
        };
        self.state = RideState::Escalated;
        self.times.round_deadline_ms = None;
        self.times.escalated_ms = Some(now_ms);
        self.escalation_reason = Some(reason.clone());
        self.touch(now_ms);
        self.happenings.push(Happening::Escalated {
            reason,
            rounds: self.round,
            radius_m: self.radius_m,
            drivers_offered: self.offered.len(),
            at_ms: now_ms,
        });
    }

    /// Whether the current offer round has run out at `now_ms`.
    pub fn round_is_due(&self, now_ms: i64) -> bool {
        self.state == RideState::Offering
            && self.times.round_deadline_ms.is_some_and(|d| now_ms >= d)
    }

    /// Applies the offer timeout: when the current round has run out, starts the next
    /// round (wider) at `now_ms`, or escalates after the last. Returns whether the ride
    /// changed. Nothing happens before the deadline or in any other state.
    pub fn advance(
        &mut self,
        now_ms: i64,
        config: &Config,
        pool: &mut dyn DriverPool,
    ) -> Result<bool, Error> {
        if !self.round_is_due(now_ms) {
            return Ok(false);
        }
        if self.round >= config.rounds() {
            self.escalate(now_ms, config);
        } else {
            self.run_rounds(self.round + 1, now_ms, config, pool)?;
        }
        Ok(true)
    }

    fn final_refusal(&self, action: &str) -> Error {
        match self.state {
            RideState::Completed => conflict(format!(
                "ride {} is already completed; it cannot be {action}",
                self.ride_id
            )),
            _ => conflict(format!(
                "ride {} was cancelled; it cannot be {action}. Request a new ride instead",
                self.ride_id
            )),
        }
    }

    fn not_assigned_to(&self, driver_id: &str, action: &str) -> Error {
        conflict(format!(
            "ride {} is assigned to another driver, not to driver {driver_id:?}; only its driver can {action}",
            self.ride_id
        ))
    }

    /// A driver accepts. Allowed while offering, for a driver it was offered to and who
    /// is not busy with another ride; the first accept wins. A repeated accept by the
    /// winner changes nothing.
    pub fn accept(
        &mut self,
        driver_id: &str,
        busy_with: Option<&str>,
        vehicle_plate: Option<String>,
        now_ms: i64,
    ) -> Result<AcceptOutcome, Error> {
        match self.state {
            RideState::Offering => {
                if !self.was_offered_to(driver_id) {
                    return Err(conflict(format!(
                        "ride {} was not offered to driver {driver_id:?}; a driver can only accept rides offered to it (see get-driver)",
                        self.ride_id
                    )));
                }
                if let Some(other) = busy_with
                    && other != self.ride_id
                {
                    return Err(conflict(format!(
                        "driver {driver_id:?} is busy with ride {other}; complete or release it before accepting ride {}",
                        self.ride_id
                    )));
                }
                self.state = RideState::Accepted;
                self.driver_id = Some(driver_id.to_owned());
                self.vehicle_plate = vehicle_plate;
                self.times.accepted_ms = Some(now_ms);
                self.times.round_deadline_ms = None;
                self.touch(now_ms);
                self.happenings.push(Happening::Accepted {
                    driver_id: driver_id.to_owned(),
                    vehicle_plate: self.vehicle_plate.clone(),
                    at_ms: now_ms,
                });
                Ok(AcceptOutcome::Won)
            }
            RideState::Accepted if self.driver_id.as_deref() == Some(driver_id) => {
                Ok(AcceptOutcome::AlreadyYours)
            }
            RideState::Accepted | RideState::PickedUp | RideState::Completed => {
                if self.driver_id.as_deref() == Some(driver_id) {
                    Err(conflict(format!(
                        "ride {} is already {} by you; there is nothing to accept",
                        self.ride_id,
                        match self.state {
                            RideState::PickedUp => "picked up",
                            _ => "completed",
                        }
                    )))
                } else {
                    Err(conflict(format!(
                        "ride already taken: ride {} was accepted by another driver",
                        self.ride_id
                    )))
                }
            }
            RideState::Escalated => Err(conflict(format!(
                "ride {} is no longer offered: no driver accepted in time and it was escalated to staff; staff can re-offer it (reoffer-ride)",
                self.ride_id
            ))),
            RideState::Cancelled => Err(conflict(format!(
                "ride {} was cancelled; there is nothing to accept",
                self.ride_id
            ))),
        }
    }

    /// The assigned driver gives an accepted ride back: it is offered again from round 1,
    /// never to this driver.
    pub fn release(
        &mut self,
        driver_id: &str,
        reason: Option<String>,
        now_ms: i64,
        config: &Config,
        pool: &mut dyn DriverPool,
    ) -> Result<(), Error> {
        match self.state {
            RideState::Accepted if self.driver_id.as_deref() == Some(driver_id) => {
                let release = Release {
                    driver_id: driver_id.to_owned(),
                    reason,
                    at_ms: now_ms,
                };
                self.releases.push(release.clone());
                self.driver_id = None;
                self.vehicle_plate = None;
                self.times.accepted_ms = None;
                self.touch(now_ms);
                self.happenings.push(Happening::Released(release));
                self.start_offering(now_ms, config, pool)
            }
            RideState::Accepted => Err(self.not_assigned_to(driver_id, "release it")),
            RideState::Offering | RideState::Escalated => Err(conflict(format!(
                "ride {} has no driver yet ({}); there is nothing to release",
                self.ride_id, self.state
            ))),
            RideState::PickedUp => Err(conflict(format!(
                "ride {} is already picked up; it cannot be released. Complete it with complete-ride",
                self.ride_id
            ))),
            RideState::Completed | RideState::Cancelled => Err(self.final_refusal("released")),
        }
    }

    /// The assigned driver has the rider in the car.
    pub fn pick_up(&mut self, driver_id: &str, now_ms: i64) -> Result<(), Error> {
        match self.state {
            RideState::Accepted if self.driver_id.as_deref() == Some(driver_id) => {
                self.state = RideState::PickedUp;
                self.times.picked_up_ms = Some(now_ms);
                self.touch(now_ms);
                self.happenings.push(Happening::PickedUp {
                    driver_id: driver_id.to_owned(),
                    at_ms: now_ms,
                });
                Ok(())
            }
            RideState::Accepted => Err(self.not_assigned_to(driver_id, "pick it up")),
            RideState::Offering | RideState::Escalated => Err(conflict(format!(
                "ride {} has not been accepted yet ({}); a driver must accept it before the pick-up",
                self.ride_id, self.state
            ))),
            RideState::PickedUp => Err(conflict(format!(
                "ride {} is already picked up; complete it with complete-ride",
                self.ride_id
            ))),
            RideState::Completed | RideState::Cancelled => Err(self.final_refusal("picked up")),
        }
    }

    /// The ride is over: by its driver, or by staff closing it for a driver who cannot.
    pub fn complete(&mut self, by: &Completer, now_ms: i64) -> Result<(), Error> {
        match (self.state, by) {
            (RideState::PickedUp, Completer::Driver(d)) if self.driver_id.as_ref() != Some(d) => {
                Err(self.not_assigned_to(d, "complete it"))
            }
            (RideState::PickedUp, _) => {
                let by = match by {
                    Completer::Driver(_) => CompletedBy::Driver,
                    Completer::Staff => CompletedBy::Staff,
                };
                self.state = RideState::Completed;
                self.completed_by = Some(by);
                self.times.completed_ms = Some(now_ms);
                self.touch(now_ms);
                self.happenings.push(Happening::Completed {
                    driver_id: self.driver_id.clone(),
                    by,
                    at_ms: now_ms,
                });
                Ok(())
            }
            (RideState::Accepted, _) => Err(conflict(format!(
                "ride {} is not picked up yet; call pick-up first, or cancel-ride if the rider never got in",
                self.ride_id
            ))),
            (RideState::Offering | RideState::Escalated, _) => Err(conflict(format!(
                "ride {} has no driver yet ({}); only a picked-up ride can be completed",
                self.ride_id, self.state
            ))),
            (RideState::Completed | RideState::Cancelled, _) => {
                Err(self.final_refusal("completed"))
            }
        }
    }

    /// The rider or staff cancel before the pick-up.
    pub fn cancel(
        &mut self,
        by: CancelledBy,
        reason: Option<String>,
        now_ms: i64,
    ) -> Result<(), Error> {
        match self.state {
            from @ (RideState::Offering | RideState::Escalated | RideState::Accepted) => {
                self.state = RideState::Cancelled;
                self.cancelled_by = Some(by);
                self.cancel_reason = reason.clone();
                self.times.cancelled_ms = Some(now_ms);
                self.times.round_deadline_ms = None;
                self.touch(now_ms);
                self.happenings.push(Happening::Cancelled {
                    from,
                    by,
                    reason,
                    driver_id: self.driver_id.clone(),
                    at_ms: now_ms,
                });
                Ok(())
            }
            RideState::PickedUp => Err(conflict(format!(
                "ride {} is already picked up and can no longer be cancelled; the driver (or staff) completes it with complete-ride",
                self.ride_id
            ))),
            RideState::Completed => Err(self.final_refusal("cancelled")),
            RideState::Cancelled => Err(conflict(format!(
                "ride {} is already cancelled",
                self.ride_id
            ))),
        }
    }

    /// Staff offer an escalated ride again, from round 1, to every available driver.
    pub fn reoffer(
        &mut self,
        now_ms: i64,
        config: &Config,
        pool: &mut dyn DriverPool,
    ) -> Result<(), Error> {
        match self.state {
            RideState::Escalated => {
                self.escalation_reason = None;
                self.touch(now_ms);
                self.start_offering(now_ms, config, pool)
            }
            RideState::Completed | RideState::Cancelled => Err(self.final_refusal("re-offered")),
            state => Err(conflict(format!(
                "ride {} is {state}; only an escalated ride can be re-offered",
                self.ride_id
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::{Candidate, Driver, nearest};
    use crate::geo::Coord;

    const T0: i64 = 4_102_444_800_000; // 2100-01-01T00:00:00Z
    const S: i64 = 1000;

    /// A pool over a list of drivers, at a settable now.
    struct Pool {
        drivers: Vec<Driver>,
        now_ms: i64,
        calls: usize,
    }

    impl DriverPool for Pool {
        fn nearest(
            &mut self,
            at: Coord,
            radius_m: f64,
            limit: usize,
            skip: &dyn Fn(&str) -> bool,
        ) -> Result<Vec<Candidate>, Error> {
            self.calls += 1;
            Ok(nearest(
                &self.drivers,
                at,
                radius_m,
                limit,
                self.now_ms,
                120_000,
                skip,
            ))
        }
    }

    /// A driver `metres` north of the pickup (36.0, 120.0).
    fn driver(id: &str, metres: f64) -> Driver {
        Driver {
            driver_id: id.into(),
            lat: 36.0 + metres / 111_195.08,
            lon: 120.0,
            available: true,
            vehicle_plate: Some(format!("PLATE-{id}")),
            reported_at_ms: T0,
            ride_id: None,
        }
    }

    fn pool(drivers: &[(&str, f64)]) -> Pool {
        Pool {
            drivers: drivers.iter().map(|(id, m)| driver(id, *m)).collect(),
            now_ms: T0,
            calls: 0,
        }
    }

    /// Defaults: 2000 m, x2, cap 10 000 m, 3 drivers, 45 s, 3 rounds.
    fn config() -> Config {
        Config::default()
    }

    fn new_ride() -> Ride {
        Ride::new(
            ride_id(1),
            Source::Screen,
            Some("tower-a".into()),
            None,
            None,
            Pickup {
                lat: 36.0,
                lon: 120.0,
                description: "Tower A door".into(),
            },
            T0,
        )
    }

    fn offered_ids(ride: &Ride) -> Vec<(&str, u32)> {
        ride.offered
            .iter()
            .map(|o| (o.driver_id.as_str(), o.round))
            .collect()
    }

    /// A ride in `state`, built through the real transitions, with driver "a" (500 m)
    /// offered in round 1 and, from accepted on, assigned.
    fn ride_in(state: RideState) -> (Ride, Pool) {
        let mut p = pool(&[("a", 500.0), ("b", 900.0)]);
        let mut ride = new_ride();
        let c = config();
        ride.start_offering(T0, &c, &mut p).expect("offer");
        match state {
            RideState::Offering => {}
            RideState::Escalated => {
                let due = ride.times.round_deadline_ms.expect("deadline");
                // Nobody new appears in rounds 2 and 3: escalated at the first deadline.
                p.now_ms = due;
                assert!(ride.advance(due, &c, &mut p).expect("advance"));
            }
            RideState::Accepted => {
                ride.accept("a", None, Some("PLATE-a".into()), T0 + S)
                    .expect("accept");
            }
            RideState::PickedUp => {
                ride.accept("a", None, None, T0 + S).expect("accept");
                ride.pick_up("a", T0 + 2 * S).expect("pick up");
            }
            RideState::Completed => {
                ride.accept("a", None, None, T0 + S).expect("accept");
                ride.pick_up("a", T0 + 2 * S).expect("pick up");
                ride.complete(&Completer::Driver("a".into()), T0 + 3 * S)
                    .expect("complete");
            }
            RideState::Cancelled => {
                ride.cancel(CancelledBy::Rider, None, T0 + S)
                    .expect("cancel");
            }
        }
        assert_eq!(ride.state, state);
        ride.happenings.clear();
        (ride, p)
    }

    fn kinds(ride: &Ride) -> Vec<&'static str> {
        ride.happenings
            .iter()
            .map(|h| match h {
                Happening::Requested => "requested",
                Happening::Offered { .. } => "offered",
                Happening::Accepted { .. } => "accepted",
                Happening::Released(_) => "released",
                Happening::Escalated { .. } => "escalated",
                Happening::PickedUp { .. } => "picked_up",
                Happening::Completed { .. } => "completed",
                Happening::Cancelled { .. } => "cancelled",
            })
            .collect()
    }

    fn conflict_message(result: Result<impl std::fmt::Debug, Error>) -> String {
        match result {
            Err(Error::Conflict(m)) => m,
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    // ---- ids -------------------------------------------------------------------------

    #[test]
    fn ride_ids_round_trip() {
        assert_eq!(ride_id(1), "ride-00000001");
        assert_eq!(ride_id(MAX_SEQ), "ride-99999999");
        assert_eq!(ride_seq("ride-00000042"), Some(42));
        for bad in [
            "ride-1",
            "ride-0000000x",
            "trip-00000001",
            "ride-000000001",
            "",
        ] {
            assert_eq!(ride_seq(bad), None, "{bad}");
        }
    }

    #[test]
    fn state_properties() {
        use RideState::*;
        let waiting: Vec<_> = RideState::ALL
            .into_iter()
            .filter(|s| s.rider_waiting())
            .collect();
        assert_eq!(waiting, [Offering, Escalated, Accepted]);
        let holding: Vec<_> = RideState::ALL
            .into_iter()
            .filter(|s| s.holds_driver())
            .collect();
        assert_eq!(holding, [Accepted, PickedUp]);
        let fin: Vec<_> = RideState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(fin, [Completed, Cancelled]);
        for s in RideState::ALL {
            assert_eq!(
                serde_json::to_value(s).expect("json"),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }

    // ---- offer rounds ----------------------------------------------------------------

    #[test]
    fn the_first_round_offers_the_nearest_drivers_within_the_initial_radius() {
        let mut p = pool(&[
            ("d", 2500.0),
            ("a", 300.0),
            ("c", 1500.0),
            ("b", 800.0),
            ("e", 1999.0),
        ]);
        let mut ride = new_ride();
        ride.start_offering(T0, &config(), &mut p).expect("offer");
        assert_eq!(ride.state, RideState::Offering);
        assert_eq!((ride.round, ride.radius_m), (1, 2000));
        assert_eq!(offered_ids(&ride), [("a", 1), ("b", 1), ("c", 1)]);
        assert_eq!(ride.offered[0].distance_m, 300);
        assert_eq!(ride.times.round_deadline_ms, Some(T0 + 45 * S));
        assert_eq!(
            ride.happenings,
            [
                Happening::Requested,
                Happening::Offered {
                    round: 1,
                    radius_m: 2000,
                    drivers: ride.offered.clone(),
                    expires_at_ms: T0 + 45 * S,
                    at_ms: T0,
                }
            ]
        );
    }

    #[test]
    fn before_the_deadline_nothing_advances() {
        let (mut ride, mut p) = ride_in(RideState::Offering);
        let before = ride.clone();
        assert!(
            !ride
                .advance(T0 + 45 * S - 1, &config(), &mut p)
                .expect("advance")
        );
        assert_eq!(ride, before);
    }

    #[test]
    fn at_the_deadline_the_next_round_widens_and_offers_only_new_drivers() {
        let mut p = pool(&[("a", 500.0), ("b", 3000.0), ("c", 3900.0), ("d", 7000.0)]);
        let mut ride = new_ride();
        let c = config();
        ride.start_offering(T0, &c, &mut p).expect("offer");
        assert_eq!(offered_ids(&ride), [("a", 1)]);
        ride.happenings.clear();

        // Round 2 at its deadline: 4000 m, new drivers b and c (a already has the offer).
        let t1 = T0 + 45 * S;
        assert!(ride.advance(t1, &c, &mut p).expect("advance"));
        assert_eq!(
            (ride.state, ride.round, ride.radius_m),
            (RideState::Offering, 2, 4000)
        );
        assert_eq!(offered_ids(&ride), [("a", 1), ("b", 2), ("c", 2)]);
        assert_eq!(ride.times.round_deadline_ms, Some(t1 + 45 * S));
        assert_eq!(ride.happenings.len(), 1);
        assert!(matches!(
            &ride.happenings[0],
            Happening::Offered { round: 2, radius_m: 4000, drivers, expires_at_ms, at_ms }
                if drivers.len() == 2 && *expires_at_ms == t1 + 45 * S && *at_ms == t1
        ));
        ride.happenings.clear();

        // Round 3, noticed late (a sweep 20 s after the deadline): starts at that moment.
        let t2 = t1 + 65 * S;
        assert!(ride.advance(t2, &c, &mut p).expect("advance"));
        assert_eq!((ride.round, ride.radius_m), (3, 8000));
        assert_eq!(offered_ids(&ride)[3], ("d", 3));
        assert_eq!(ride.times.round_deadline_ms, Some(t2 + 45 * S));

        // The last round times out: escalated, offers closed.
        let t3 = t2 + 45 * S;
        ride.happenings.clear();
        assert!(ride.advance(t3, &c, &mut p).expect("advance"));
        assert_eq!(ride.state, RideState::Escalated);
        assert_eq!(ride.times.escalated_ms, Some(t3));
        assert_eq!(ride.times.round_deadline_ms, None);
        assert_eq!(kinds(&ride), ["escalated"]);
        assert!(matches!(
            &ride.happenings[0],
            Happening::Escalated { rounds: 3, radius_m: 8000, drivers_offered: 4, at_ms, .. } if *at_ms == t3
        ));
        assert!(ride.open_offers().is_empty());
        let reason = ride.escalation_reason.clone().expect("reason");
        assert!(
            reason.contains("no driver accepted within 3 round(s) of 45 s"),
            "{reason}"
        );
        assert!(
            reason.contains("4 driver(s) offered, up to 8000 m"),
            "{reason}"
        );
        // Escalated rides do not advance further.
        assert!(!ride.advance(t3 + 1000 * S, &c, &mut p).expect("advance"));
    }

    #[test]
    fn rounds_without_new_drivers_are_skipped_at_once() {
        // Nobody within 2000 or 4000 m; someone at 6000 m: round 3 right away.
        let mut p = pool(&[("far", 6000.0)]);
        let mut ride = new_ride();
        ride.start_offering(T0, &config(), &mut p).expect("offer");
        assert_eq!(
            (ride.state, ride.round, ride.radius_m),
            (RideState::Offering, 3, 8000)
        );
        assert_eq!(offered_ids(&ride), [("far", 3)]);
        assert_eq!(ride.times.round_deadline_ms, Some(T0 + 45 * S));
        assert_eq!(p.calls, 3);
    }

    #[test]
    fn no_driver_anywhere_escalates_at_once() {
        let mut p = pool(&[("too-far", 20_000.0)]);
        let mut ride = new_ride();
        ride.start_offering(T0, &config(), &mut p).expect("offer");
        assert_eq!(ride.state, RideState::Escalated);
        assert_eq!((ride.round, ride.radius_m), (3, 8000));
        assert_eq!(ride.times.escalated_ms, Some(T0));
        assert_eq!(
            ride.escalation_reason.as_deref(),
            Some("no available driver within 8000 m of the pickup in 3 round(s)")
        );
        assert_eq!(kinds(&ride), ["requested", "escalated"]);
    }

    #[test]
    fn a_round_that_finds_nobody_new_after_offers_escalates_at_the_deadline() {
        let (mut ride, mut p) = ride_in(RideState::Offering);
        let due = T0 + 45 * S;
        assert!(ride.advance(due, &config(), &mut p).expect("advance"));
        assert_eq!(ride.state, RideState::Escalated);
        assert_eq!(ride.round, 3);
        assert!(
            ride.escalation_reason
                .as_deref()
                .is_some_and(|r| r.contains("2 driver(s) offered"))
        );
    }

    #[test]
    fn drivers_per_round_limits_each_round() {
        let mut p = pool(&[("a", 100.0), ("b", 200.0), ("c", 300.0)]);
        let c = Config {
            drivers_per_round: 1,
            ..config()
        };
        let mut ride = new_ride();
        ride.start_offering(T0, &c, &mut p).expect("offer");
        assert_eq!(offered_ids(&ride), [("a", 1)]);
        ride.advance(T0 + 45 * S, &c, &mut p).expect("advance");
        assert_eq!(offered_ids(&ride), [("a", 1), ("b", 2)]);
        ride.advance(T0 + 90 * S, &c, &mut p).expect("advance");
        assert_eq!(offered_ids(&ride), [("a", 1), ("b", 2), ("c", 3)]);
        ride.advance(T0 + 135 * S, &c, &mut p).expect("advance");
        assert_eq!(ride.state, RideState::Escalated);
    }

    #[test]
    fn a_single_round_config_escalates_after_one_timeout() {
        let c = Config {
            max_rounds: 1,
            offer_timeout_s: 30,
            ..config()
        };
        let mut p = pool(&[("a", 100.0), ("far", 3000.0)]);
        let mut ride = new_ride();
        ride.start_offering(T0, &c, &mut p).expect("offer");
        assert!(!ride.advance(T0 + 30 * S - 1, &c, &mut p).expect("advance"));
        assert!(ride.advance(T0 + 30 * S, &c, &mut p).expect("advance"));
        assert_eq!(ride.state, RideState::Escalated);
        assert_eq!(ride.round, 1);
    }

    #[test]
    fn offers_stay_open_across_rounds() {
        let mut p = pool(&[("a", 500.0), ("b", 3000.0)]);
        let c = config();
        let mut ride = new_ride();
        ride.start_offering(T0, &c, &mut p).expect("offer");
        ride.advance(T0 + 45 * S, &c, &mut p).expect("advance");
        assert_eq!(ride.round, 2);
        // a, offered in round 1, accepts during round 2.
        assert_eq!(
            ride.accept("a", None, None, T0 + 50 * S),
            Ok(AcceptOutcome::Won)
        );
    }

    #[test]
    fn a_late_accept_after_escalation_is_refused() {
        let (mut ride, _) = ride_in(RideState::Escalated);
        let m = conflict_message(ride.accept("a", None, None, T0 + 100 * S));
        assert!(
            m.contains("escalated to staff") && m.contains("reoffer-ride"),
            "{m}"
        );
    }

    // ---- accept ----------------------------------------------------------------------

    #[test]
    fn offering_to_accepted_by_an_offered_driver() {
        let (mut ride, _) = ride_in(RideState::Offering);
        assert_eq!(
            ride.accept("b", None, Some("PLATE-b".into()), T0 + 5 * S),
            Ok(AcceptOutcome::Won)
        );
        assert_eq!(ride.state, RideState::Accepted);
        assert_eq!(ride.driver_id.as_deref(), Some("b"));
        assert_eq!(ride.vehicle_plate.as_deref(), Some("PLATE-b"));
        assert_eq!(ride.times.accepted_ms, Some(T0 + 5 * S));
        assert_eq!(ride.times.round_deadline_ms, None);
        assert_eq!(ride.busy_driver(), Some("b"));
        assert!(ride.open_offers().is_empty());
        assert_eq!(
            ride.happenings,
            [Happening::Accepted {
                driver_id: "b".into(),
                vehicle_plate: Some("PLATE-b".into()),
                at_ms: T0 + 5 * S
            }]
        );
    }

    #[test]
    fn the_first_accept_wins_and_later_ones_are_already_taken() {
        let (mut ride, _) = ride_in(RideState::Offering);
        ride.accept("a", None, None, T0 + S).expect("a wins");
        let m = conflict_message(ride.accept("b", None, None, T0 + 2 * S));
        assert_eq!(
            m,
            "ride already taken: ride ride-00000001 was accepted by another driver"
        );
        assert_eq!(ride.driver_id.as_deref(), Some("a"));
    }

    #[test]
    fn a_repeated_accept_by_the_winner_changes_nothing() {
        let (mut ride, _) = ride_in(RideState::Accepted);
        let before = ride.clone();
        assert_eq!(
            ride.accept("a", None, None, T0 + 9 * S),
            Ok(AcceptOutcome::AlreadyYours)
        );
        assert_eq!(ride, before);
    }

    #[test]
    fn an_accept_by_a_driver_not_offered_is_refused() {
        let (mut ride, _) = ride_in(RideState::Offering);
        let m = conflict_message(ride.accept("stranger", None, None, T0 + S));
        assert!(
            m.contains("was not offered to driver \"stranger\"") && m.contains("get-driver"),
            "{m}"
        );
        assert_eq!(ride.state, RideState::Offering);
    }

    #[test]
    fn an_accept_by_a_driver_busy_elsewhere_is_refused() {
        let (mut ride, _) = ride_in(RideState::Offering);
        let m = conflict_message(ride.accept("a", Some("ride-00000007"), None, T0 + S));
        assert!(
            m.contains("busy with ride ride-00000007") && m.contains("complete or release"),
            "{m}"
        );
        // Busy with this very ride (a stale flag) does not block.
        assert!(
            ride.accept("a", Some("ride-00000001"), None, T0 + S)
                .is_ok()
        );
    }

    #[test]
    fn accept_is_refused_in_every_other_state() {
        for (state, driver, needle) in [
            (RideState::Accepted, "b", "ride already taken"),
            (RideState::PickedUp, "b", "ride already taken"),
            (RideState::PickedUp, "a", "already picked up by you"),
            (RideState::Completed, "b", "ride already taken"),
            (RideState::Completed, "a", "already completed by you"),
            (RideState::Escalated, "a", "escalated to staff"),
            (RideState::Cancelled, "a", "was cancelled"),
        ] {
            let (mut ride, _) = ride_in(state);
            let before = ride.clone();
            let m = conflict_message(ride.accept(driver, None, None, T0 + 60 * S));
            assert!(m.contains(needle), "{state} / {driver}: {m}");
            assert!(m.contains("ride-00000001"), "{m}");
            assert_eq!(ride, before, "{state}: a refusal changes nothing");
        }
    }

    // ---- release ---------------------------------------------------------------------

    #[test]
    fn accepted_to_offering_when_the_driver_releases() {
        let (mut ride, mut p) = ride_in(RideState::Accepted);
        let c = config();
        p.now_ms = T0 + 10 * S;
        ride.release("a", Some("flat tyre".into()), T0 + 10 * S, &c, &mut p)
            .expect("release");
        assert_eq!(ride.state, RideState::Offering);
        assert_eq!(
            (ride.driver_id.clone(), ride.vehicle_plate.clone()),
            (None, None)
        );
        assert_eq!(ride.times.accepted_ms, None);
        // Offered again from round 1, to b only: a is never offered it again.
        assert_eq!(offered_ids(&ride), [("b", 1)]);
        assert_eq!(ride.round, 1);
        assert_eq!(ride.times.round_deadline_ms, Some(T0 + 55 * S));
        let release = Release {
            driver_id: "a".into(),
            reason: Some("flat tyre".into()),
            at_ms: T0 + 10 * S,
        };
        assert_eq!(ride.releases, std::slice::from_ref(&release));
        assert_eq!(
            ride.happenings,
            [
                Happening::Released(release),
                Happening::Offered {
                    round: 1,
                    radius_m: 2000,
                    drivers: ride.offered.clone(),
                    expires_at_ms: T0 + 55 * S,
                    at_ms: T0 + 10 * S,
                }
            ]
        );
        // a cannot take it back.
        let m = conflict_message(ride.accept("a", None, None, T0 + 11 * S));
        assert!(m.contains("not offered"), "{m}");
    }

    #[test]
    fn accepted_to_escalated_when_the_driver_releases_and_nobody_else_is_near() {
        let mut p = pool(&[("a", 500.0)]);
        let c = config();
        let mut ride = new_ride();
        ride.start_offering(T0, &c, &mut p).expect("offer");
        ride.accept("a", None, None, T0 + S).expect("accept");
        ride.happenings.clear();
        ride.release("a", None, T0 + 2 * S, &c, &mut p)
            .expect("release");
        assert_eq!(ride.state, RideState::Escalated);
        assert_eq!(kinds(&ride), ["released", "escalated"]);
    }

    #[test]
    fn release_is_refused_otherwise() {
        let c = config();
        for (state, driver, needle) in [
            (RideState::Accepted, "b", "assigned to another driver"),
            (RideState::Offering, "a", "has no driver yet (offering)"),
            (RideState::Escalated, "a", "has no driver yet (escalated)"),
            (RideState::PickedUp, "a", "already picked up"),
            (RideState::Completed, "a", "already completed"),
            (RideState::Cancelled, "a", "was cancelled"),
        ] {
            let (mut ride, mut p) = ride_in(state);
            let before = ride.clone();
            let m = conflict_message(ride.release(driver, None, T0 + 60 * S, &c, &mut p));
            assert!(m.contains(needle), "{state}: {m}");
            assert_eq!(ride, before);
        }
    }

    // ---- pick-up ---------------------------------------------------------------------

    #[test]
    fn accepted_to_picked_up_by_its_driver() {
        let (mut ride, _) = ride_in(RideState::Accepted);
        ride.pick_up("a", T0 + 300 * S).expect("pick up");
        assert_eq!(ride.state, RideState::PickedUp);
        assert_eq!(ride.times.picked_up_ms, Some(T0 + 300 * S));
        assert_eq!(ride.busy_driver(), Some("a"));
        assert_eq!(
            ride.happenings,
            [Happening::PickedUp {
                driver_id: "a".into(),
                at_ms: T0 + 300 * S
            }]
        );
    }

    #[test]
    fn pick_up_is_refused_otherwise() {
        for (state, driver, needle) in [
            (RideState::Accepted, "b", "assigned to another driver"),
            (
                RideState::Offering,
                "a",
                "has not been accepted yet (offering)",
            ),
            (
                RideState::Escalated,
                "a",
                "has not been accepted yet (escalated)",
            ),
            (RideState::PickedUp, "a", "already picked up"),
            (RideState::Completed, "a", "already completed"),
            (RideState::Cancelled, "a", "was cancelled"),
        ] {
            let (mut ride, _) = ride_in(state);
            let before = ride.clone();
            let m = conflict_message(ride.pick_up(driver, T0 + 60 * S));
            assert!(m.contains(needle), "{state}: {m}");
            assert_eq!(ride, before);
        }
    }

    // ---- complete --------------------------------------------------------------------

    #[test]
    fn picked_up_to_completed_by_its_driver_or_by_staff() {
        for (by, expected) in [
            (Completer::Driver("a".into()), CompletedBy::Driver),
            (Completer::Staff, CompletedBy::Staff),
        ] {
            let (mut ride, _) = ride_in(RideState::PickedUp);
            ride.complete(&by, T0 + 900 * S).expect("complete");
            assert_eq!(ride.state, RideState::Completed);
            assert_eq!(ride.completed_by, Some(expected));
            assert_eq!(ride.times.completed_ms, Some(T0 + 900 * S));
            assert_eq!(ride.busy_driver(), None);
            assert_eq!(
                ride.happenings,
                [Happening::Completed {
                    driver_id: Some("a".into()),
                    by: expected,
                    at_ms: T0 + 900 * S
                }]
            );
        }
    }

    #[test]
    fn complete_is_refused_otherwise() {
        let b = Completer::Driver("b".into());
        let a = Completer::Driver("a".into());
        for (state, by, needle) in [
            (RideState::PickedUp, &b, "assigned to another driver"),
            (RideState::Accepted, &a, "not picked up yet"),
            (RideState::Accepted, &Completer::Staff, "cancel-ride"),
            (RideState::Offering, &a, "has no driver yet (offering)"),
            (
                RideState::Escalated,
                &Completer::Staff,
                "has no driver yet (escalated)",
            ),
            (RideState::Completed, &a, "already completed"),
            (RideState::Cancelled, &Completer::Staff, "was cancelled"),
        ] {
            let (mut ride, _) = ride_in(state);
            let before = ride.clone();
            let m = conflict_message(ride.complete(by, T0 + 60 * S));
            assert!(m.contains(needle), "{state}: {m}");
            assert_eq!(ride, before);
        }
    }

    // ---- cancel ----------------------------------------------------------------------

    #[test]
    fn cancel_before_the_pick_up_by_rider_or_staff() {
        for from in [
            RideState::Offering,
            RideState::Escalated,
            RideState::Accepted,
        ] {
            for by in [CancelledBy::Rider, CancelledBy::Staff] {
                let (mut ride, _) = ride_in(from);
                ride.cancel(by, Some("changed plans".into()), T0 + 70 * S)
                    .expect("cancel");
                assert_eq!(ride.state, RideState::Cancelled);
                assert_eq!(ride.cancelled_by, Some(by));
                assert_eq!(ride.cancel_reason.as_deref(), Some("changed plans"));
                assert_eq!(ride.times.cancelled_ms, Some(T0 + 70 * S));
                assert_eq!(ride.times.round_deadline_ms, None);
                assert_eq!(ride.busy_driver(), None);
                assert!(ride.open_offers().is_empty());
                assert_eq!(
                    ride.happenings,
                    [Happening::Cancelled {
                        from,
                        by,
                        reason: Some("changed plans".into()),
                        driver_id: (from == RideState::Accepted).then(|| "a".to_owned()),
                        at_ms: T0 + 70 * S
                    }]
                );
            }
        }
    }

    #[test]
    fn cancel_is_refused_from_the_pick_up_on() {
        for (state, needle) in [
            (RideState::PickedUp, "can no longer be cancelled"),
            (RideState::Completed, "already completed"),
            (RideState::Cancelled, "already cancelled"),
        ] {
            for by in [CancelledBy::Rider, CancelledBy::Staff] {
                let (mut ride, _) = ride_in(state);
                let before = ride.clone();
                let m = conflict_message(ride.cancel(by, None, T0 + 60 * S));
                assert!(m.contains(needle), "{state}: {m}");
                assert_eq!(ride, before);
            }
        }
    }

    // ---- reoffer ---------------------------------------------------------------------

    #[test]
    fn escalated_to_offering_when_staff_reoffer() {
        let (mut ride, mut p) = ride_in(RideState::Escalated);
        let t = T0 + 600 * S;
        p.now_ms = t;
        for d in &mut p.drivers {
            d.reported_at_ms = t;
        }
        ride.reoffer(t, &config(), &mut p).expect("reoffer");
        assert_eq!(ride.state, RideState::Offering);
        assert_eq!(ride.round, 1);
        assert_eq!(ride.escalation_reason, None);
        // The same drivers are offered again: their old offers had closed.
        assert_eq!(offered_ids(&ride), [("a", 1), ("b", 1)]);
        assert_eq!(ride.times.round_deadline_ms, Some(t + 45 * S));
        assert!(matches!(
            ride.happenings.as_slice(),
            [Happening::Offered { .. }]
        ));
    }

    #[test]
    fn escalated_stays_escalated_when_a_reoffer_finds_nobody() {
        let (mut ride, mut p) = ride_in(RideState::Escalated);
        // Every position is stale by now.
        let t = T0 + 3600 * S;
        p.now_ms = t;
        ride.reoffer(t, &config(), &mut p).expect("reoffer");
        assert_eq!(ride.state, RideState::Escalated);
        assert_eq!(ride.times.escalated_ms, Some(t));
        assert_eq!(kinds(&ride), ["escalated"]);
    }

    #[test]
    fn reoffer_is_refused_unless_escalated() {
        let c = config();
        for (state, needle) in [
            (RideState::Offering, "is offering; only an escalated ride"),
            (RideState::Accepted, "is accepted; only an escalated ride"),
            (RideState::PickedUp, "is picked_up; only an escalated ride"),
            (RideState::Completed, "already completed"),
            (RideState::Cancelled, "was cancelled"),
        ] {
            let (mut ride, mut p) = ride_in(state);
            let before = ride.clone();
            let m = conflict_message(ride.reoffer(T0 + 60 * S, &c, &mut p));
            assert!(m.contains(needle), "{state}: {m}");
            assert_eq!(ride, before);
        }
    }

    // ---- timeouts outside offering -----------------------------------------------------

    #[test]
    fn only_offering_rides_advance() {
        let c = config();
        for state in RideState::ALL {
            let (mut ride, mut p) = ride_in(state);
            let changed = ride.advance(T0 + 10_000 * S, &c, &mut p).expect("advance");
            assert_eq!(changed, state == RideState::Offering, "{state}");
        }
    }

    #[test]
    fn the_stored_ride_has_no_happenings() {
        let (ride, _) = ride_in(RideState::Offering);
        let json = serde_json::to_value(&ride).expect("json");
        assert!(json.get("happenings").is_none());
        let back: Ride = serde_json::from_value(json).expect("back");
        assert_eq!(back, ride);
    }
}
