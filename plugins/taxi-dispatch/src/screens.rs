//! One-click taxi screens: each one is mapped to a pickup point. A press raises a ride
//! at that point; the screen keeps the rides it has open (rider still waiting) and a
//! count of all its rides. Its history is an index of its rides, newest first.

use crate::geo::Pickup;
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// A screen as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screen {
    /// The screen's id, as the device sends it.
    pub screen_id: String,
    /// Where its riders are picked up.
    pub pickup: Pickup,
    /// Out of service screens refuse new requests.
    pub active: bool,
    /// The rides of this screen whose rider is still waiting (offering, escalated,
    /// accepted), oldest first.
    pub open_rides: Vec<String>,
    /// How many rides the screen has raised.
    pub rides_total: u64,
    /// First registration (host time, ms since the epoch).
    pub registered_at_ms: i64,
    /// Last registration.
    pub updated_at_ms: i64,
}

/// The input of `register-screen`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterScreen {
    /// The screen.
    pub screen_id: String,
    /// Its pickup point.
    pub pickup: Pickup,
    /// In service (default) or not.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

impl Screen {
    /// Registers a new screen, or updates one: the pickup and the active flag change;
    /// its open rides, count and first registration are kept. Rides already raised keep
    /// the pickup they were raised with.
    pub fn register(
        existing: Option<Screen>,
        input: RegisterScreen,
        now_ms: i64,
    ) -> Result<Screen, Error> {
        input.pickup.validate()?;
        let pickup = Pickup {
            description: input.pickup.description.trim().to_owned(),
            ..input.pickup
        };
        Ok(match existing {
            Some(screen) => Screen {
                pickup,
                active: input.active,
                updated_at_ms: now_ms,
                ..screen
            },
            None => Screen {
                screen_id: input.screen_id,
                pickup,
                active: input.active,
                open_rides: Vec::new(),
                rides_total: 0,
                registered_at_ms: now_ms,
                updated_at_ms: now_ms,
            },
        })
    }

    /// Checks that the screen may raise one more ride.
    pub fn check_can_request(&self, max_open: u32) -> Result<(), Error> {
        if !self.active {
            return Err(Error::conflict(format!(
                "screen {:?} is out of service; staff can put it back with register-screen and \"active\": true",
                self.screen_id
            )));
        }
        let max_open = max_open.max(1);
        if self.open_rides.len() >= max_open as usize {
            let waiting = match self.open_rides.as_slice() {
                [one] => format!("a ride waiting ({one})"),
                many => format!("{} rides waiting ({})", many.len(), many.join(", ")),
            };
            let what = if max_open == 1 { "it" } else { "one" };
            return Err(Error::conflict(format!(
                "screen {:?} already has {waiting} and may have {max_open} at a time; wait for {what} or cancel {what} first",
                self.screen_id
            )));
        }
        Ok(())
    }

    /// Records whether `ride_id` is open (the rider waiting) or not.
    pub fn set_open(&mut self, ride_id: &str, open: bool) {
        let present = self.open_rides.iter().any(|r| r == ride_id);
        if open && !present {
            self.open_rides.push(ride_id.to_owned());
            self.open_rides.sort();
        } else if !open && present {
            self.open_rides.retain(|r| r != ride_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 4_102_444_800_000;

    fn input(active: bool) -> RegisterScreen {
        RegisterScreen {
            screen_id: "tower-a".into(),
            pickup: Pickup {
                lat: 36.0,
                lon: 120.0,
                description: " Tower A door ".into(),
            },
            active,
        }
    }

    #[test]
    fn registering_creates_then_updates_keeping_history() {
        let mut screen = Screen::register(None, input(true), T0).expect("new");
        assert_eq!(screen.pickup.description, "Tower A door");
        assert_eq!((screen.registered_at_ms, screen.updated_at_ms), (T0, T0));
        screen.set_open("ride-00000001", true);
        screen.rides_total = 4;
        let mut again = input(false);
        again.pickup.lat = 36.5;
        let updated = Screen::register(Some(screen), again, T0 + 5).expect("update");
        assert_eq!(updated.pickup.lat, 36.5);
        assert!(!updated.active);
        assert_eq!(updated.open_rides, ["ride-00000001"]);
        assert_eq!(updated.rides_total, 4);
        assert_eq!(
            (updated.registered_at_ms, updated.updated_at_ms),
            (T0, T0 + 5)
        );
    }

    #[test]
    fn bad_pickups_are_refused() {
        let mut bad = input(true);
        bad.pickup.lon = 200.0;
        assert!(matches!(
            Screen::register(None, bad, T0),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn inactive_or_full_screens_refuse_requests() {
        let mut screen = Screen::register(None, input(false), T0).expect("new");
        match screen.check_can_request(1) {
            Err(Error::Conflict(m)) => assert!(
                m.contains("out of service") && m.contains("register-screen"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        screen.active = true;
        assert_eq!(screen.check_can_request(1), Ok(()));
        screen.set_open("ride-00000003", true);
        match screen.check_can_request(1) {
            Err(Error::Conflict(m)) => {
                assert_eq!(
                    m,
                    "screen \"tower-a\" already has a ride waiting (ride-00000003) and may have 1 at a time; wait for it or cancel it first"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(screen.check_can_request(2), Ok(()));
    }

    #[test]
    fn open_rides_are_a_sorted_set() {
        let mut screen = Screen::register(None, input(true), T0).expect("new");
        screen.set_open("ride-00000002", true);
        screen.set_open("ride-00000001", true);
        screen.set_open("ride-00000002", true);
        assert_eq!(screen.open_rides, ["ride-00000001", "ride-00000002"]);
        screen.set_open("ride-00000001", false);
        screen.set_open("ride-00000009", false);
        assert_eq!(screen.open_rides, ["ride-00000002"]);
    }
}
