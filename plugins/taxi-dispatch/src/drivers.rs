//! Drivers: their last reported position and availability, and the choice of the
//! nearest drivers for an offer round.
//!
//! A driver exists from its first `report-driver` on; there is no separate sign-up (who
//! may call the operation is the host's business: device tokens). `tick` removes a driver
//! not heard from for `driver_retention_h` that no ride holds (see
//! [`crate::db::Db::remove_idle_drivers`]); its next report brings it back. A position is stamped
//! with the host's `now` when it arrives and goes stale after `position_max_age_s`.
//! A driver who has accepted a ride is busy until the ride is completed, cancelled or
//! released, whatever availability it reports meanwhile.

use crate::geo::{Coord, whole_metres};
use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// A driver as stored (and, with its status, as operations return it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Driver {
    /// The driver's id, as its app or in-car device sends it.
    pub driver_id: String,
    /// Last reported latitude.
    pub lat: f64,
    /// Last reported longitude.
    pub lon: f64,
    /// Whether the driver said it takes rides.
    pub available: bool,
    /// The car's plate, shown to the rider once the driver accepts.
    pub vehicle_plate: Option<String>,
    /// When the last report arrived (host time, ms since the epoch).
    pub reported_at_ms: i64,
    /// The ride the driver has accepted and not yet finished.
    pub ride_id: Option<String>,
}

/// What a driver can do right now, from the dispatcher's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverStatus {
    /// On a ride: gets no offers.
    Busy,
    /// Reported itself unavailable: gets no offers.
    Unavailable,
    /// Available, but its last position is too old to dispatch on: gets no offers.
    Stale,
    /// Gets offers.
    Available,
}

impl Driver {
    /// The position.
    pub fn coord(&self) -> Coord {
        Coord {
            lat: self.lat,
            lon: self.lon,
        }
    }

    /// The status at `now_ms`, with positions older than `max_age_ms` stale.
    pub fn status(&self, now_ms: i64, max_age_ms: i64) -> DriverStatus {
        if self.ride_id.is_some() {
            DriverStatus::Busy
        } else if !self.available {
            DriverStatus::Unavailable
        } else if now_ms.saturating_sub(self.reported_at_ms) > max_age_ms {
            DriverStatus::Stale
        } else {
            DriverStatus::Available
        }
    }

    /// Applies a report: a new position and availability, stamped `now_ms`. The plate is
    /// kept when the report has none.
    pub fn report(&mut self, report: &DriverReport, now_ms: i64) {
        self.lat = report.lat;
        self.lon = report.lon;
        self.available = report.available;
        if let Some(plate) = &report.vehicle_plate {
            self.vehicle_plate = Some(plate.clone());
        }
        self.reported_at_ms = now_ms;
    }
}

/// The input of `report-driver`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverReport {
    /// The driver.
    pub driver_id: String,
    /// Latitude in decimal degrees.
    pub lat: f64,
    /// Longitude in decimal degrees.
    pub lon: f64,
    /// Whether the driver takes rides now.
    pub available: bool,
    /// The car's plate (kept from earlier reports when absent).
    #[serde(default)]
    pub vehicle_plate: Option<String>,
}

impl DriverReport {
    /// Checks the position; the schema checks the rest.
    pub fn validate(&self) -> Result<(), Error> {
        Coord::new(self.lat, self.lon).map(|_| ())
    }

    /// A new driver from its first report.
    pub fn into_driver(self, now_ms: i64) -> Driver {
        Driver {
            driver_id: self.driver_id,
            lat: self.lat,
            lon: self.lon,
            available: self.available,
            vehicle_plate: self.vehicle_plate,
            reported_at_ms: now_ms,
            ride_id: None,
        }
    }
}

/// A driver who may be offered a ride, with its distance to the pickup.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The driver.
    pub driver_id: String,
    /// Great-circle distance to the pickup, in metres.
    pub distance_m: f64,
}

impl Candidate {
    /// The distance in whole metres.
    pub fn whole_metres(&self) -> u32 {
        whole_metres(self.distance_m)
    }
}

/// The drivers an offer round can draw from.
pub trait DriverPool {
    /// Up to `limit` available drivers within `radius_m` of `at`, nearest first, leaving
    /// out those for which `skip` is true.
    fn nearest(
        &mut self,
        at: Coord,
        radius_m: f64,
        limit: usize,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Candidate>, Error>;
}

/// The nearest available drivers: status [`DriverStatus::Available`] at `now_ms`, within
/// `radius_m` of `at`, not skipped; nearest first, ties broken by id so that the choice is
/// deterministic; at most `limit`.
pub fn nearest<'a>(
    drivers: impl IntoIterator<Item = &'a Driver>,
    at: Coord,
    radius_m: f64,
    limit: usize,
    now_ms: i64,
    max_age_ms: i64,
    skip: &dyn Fn(&str) -> bool,
) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = drivers
        .into_iter()
        .filter(|d| d.status(now_ms, max_age_ms) == DriverStatus::Available)
        .filter(|d| !skip(&d.driver_id))
        .filter_map(|d| {
            let distance_m = at.distance_m(d.coord());
            (distance_m <= radius_m).then(|| Candidate {
                driver_id: d.driver_id.clone(),
                distance_m,
            })
        })
        .collect();
    found.sort_by(|a, b| {
        a.distance_m
            .total_cmp(&b.distance_m)
            .then_with(|| a.driver_id.cmp(&b.driver_id))
    });
    found.truncate(limit);
    found
}

/// A driver as `list-drivers` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriverView {
    /// The stored driver.
    #[serde(flatten)]
    pub driver: Driver,
    /// Its status now.
    pub status: DriverStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 4_102_444_800_000; // 2100-01-01
    const MAX_AGE: i64 = 120_000;

    fn driver(id: &str, lat: f64, lon: f64) -> Driver {
        Driver {
            driver_id: id.into(),
            lat,
            lon,
            available: true,
            vehicle_plate: None,
            reported_at_ms: NOW,
            ride_id: None,
        }
    }

    fn here() -> Coord {
        Coord {
            lat: 36.0,
            lon: 120.0,
        }
    }

    fn ids(found: &[Candidate]) -> Vec<&str> {
        found.iter().map(|c| c.driver_id.as_str()).collect()
    }

    #[test]
    fn status_follows_ride_then_availability_then_age() {
        let mut d = driver("a", 36.0, 120.0);
        assert_eq!(d.status(NOW, MAX_AGE), DriverStatus::Available);
        assert_eq!(d.status(NOW + MAX_AGE, MAX_AGE), DriverStatus::Available);
        assert_eq!(d.status(NOW + MAX_AGE + 1, MAX_AGE), DriverStatus::Stale);
        // A report from "the future" (the host clock went back) is fresh, not an error.
        assert_eq!(d.status(NOW - 5_000, MAX_AGE), DriverStatus::Available);
        d.available = false;
        assert_eq!(
            d.status(NOW + MAX_AGE + 1, MAX_AGE),
            DriverStatus::Unavailable
        );
        d.ride_id = Some("ride-00000001".into());
        assert_eq!(d.status(NOW, MAX_AGE), DriverStatus::Busy);
        d.available = true;
        assert_eq!(d.status(NOW, MAX_AGE), DriverStatus::Busy);
    }

    #[test]
    fn a_report_moves_the_driver_and_keeps_the_plate() {
        let mut d = driver("a", 36.0, 120.0);
        d.vehicle_plate = Some("LU-B1234".into());
        d.report(
            &DriverReport {
                driver_id: "a".into(),
                lat: 36.5,
                lon: 120.5,
                available: false,
                vehicle_plate: None,
            },
            NOW + 10,
        );
        assert_eq!((d.lat, d.lon, d.available), (36.5, 120.5, false));
        assert_eq!(d.reported_at_ms, NOW + 10);
        assert_eq!(d.vehicle_plate.as_deref(), Some("LU-B1234"));
        d.report(
            &DriverReport {
                driver_id: "a".into(),
                lat: 36.5,
                lon: 120.5,
                available: true,
                vehicle_plate: Some("LU-C999".into()),
            },
            NOW + 20,
        );
        assert_eq!(d.vehicle_plate.as_deref(), Some("LU-C999"));
    }

    #[test]
    fn reports_with_bad_positions_are_refused() {
        let report = DriverReport {
            driver_id: "a".into(),
            lat: 100.0,
            lon: 0.0,
            available: true,
            vehicle_plate: None,
        };
        assert!(matches!(report.validate(), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn nearest_first_within_the_radius() {
        // 0.001 degree of latitude is about 111 m.
        let drivers = [
            driver("far", 36.02, 120.0),   // ~2224 m
            driver("near", 36.001, 120.0), // ~111 m
            driver("mid", 36.005, 120.0),  // ~556 m
        ];
        let found = nearest(&drivers, here(), 1000.0, 10, NOW, MAX_AGE, &|_| false);
        assert_eq!(ids(&found), ["near", "mid"]);
        assert_eq!(found[0].whole_metres(), 111);
        assert_eq!(found[1].whole_metres(), 556);
        let found = nearest(&drivers, here(), 3000.0, 2, NOW, MAX_AGE, &|_| false);
        assert_eq!(ids(&found), ["near", "mid"]);
        let found = nearest(&drivers, here(), 3000.0, 3, NOW, MAX_AGE, &|_| false);
        assert_eq!(ids(&found), ["near", "mid", "far"]);
    }

    #[test]
    fn the_radius_is_inclusive() {
        let drivers = [driver("a", 36.001, 120.0)];
        let d = here().distance_m(drivers[0].coord());
        assert_eq!(
            nearest(&drivers, here(), d, 1, NOW, MAX_AGE, &|_| false).len(),
            1
        );
        assert!(nearest(&drivers, here(), d - 0.01, 1, NOW, MAX_AGE, &|_| false).is_empty());
    }

    #[test]
    fn equal_distances_are_ordered_by_id() {
        let drivers = [
            driver("b", 36.001, 120.0),
            driver("a", 36.001, 120.0),
            driver("c", 35.999, 120.0),
        ];
        let found = nearest(&drivers, here(), 1000.0, 3, NOW, MAX_AGE, &|_| false);
        // b and a are at the same spot; c is at the same latitude distance on the
        // other side, which may differ in the last bits: only a-before-b is asserted.
        let order = ids(&found);
        let a = order.iter().position(|i| *i == "a").expect("a");
        let b = order.iter().position(|i| *i == "b").expect("b");
        assert!(a < b, "{order:?}");
    }

    #[test]
    fn only_available_fresh_idle_unskipped_drivers_are_chosen() {
        let mut busy = driver("busy", 36.001, 120.0);
        busy.ride_id = Some("ride-00000009".into());
        let mut off = driver("off", 36.001, 120.0);
        off.available = false;
        let mut stale = driver("stale", 36.001, 120.0);
        stale.reported_at_ms = NOW - MAX_AGE - 1;
        let drivers = [
            busy,
            off,
            stale,
            driver("skipped", 36.001, 120.0),
            driver("ok", 36.002, 120.0),
        ];
        let found = nearest(&drivers, here(), 1000.0, 10, NOW, MAX_AGE, &|id| {
            id == "skipped"
        });
        assert_eq!(ids(&found), ["ok"]);
    }

    #[test]
    fn no_drivers_no_candidates() {
        assert!(nearest(&[], here(), 1e7, 3, NOW, MAX_AGE, &|_| false).is_empty());
    }

    #[test]
    fn the_view_flattens_the_driver_and_adds_the_status() {
        let view = DriverView {
            driver: driver("a", 36.0, 120.0),
            status: DriverStatus::Stale,
        };
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["driver_id"], "a");
        assert_eq!(json["status"], "stale");
    }
}
