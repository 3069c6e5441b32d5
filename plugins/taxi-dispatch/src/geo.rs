//! Positions on the Earth and great-circle distances between them.
//!
//! Distances use the haversine formula on a sphere with the Earth's mean radius
//! (IUGG, 6 371 008.8 m). Over the few kilometres a taxi is dispatched across, the
//! error against the WGS-84 ellipsoid is below 0.5 %, far less than GPS noise in a
//! street canyon, and the formula stays well conditioned for short distances.

use courtyard_sdk::Error;
use serde::{Deserialize, Serialize};

/// The Earth's mean radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS-84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coord {
    /// Latitude, -90 (south pole) to 90 (north pole).
    pub lat: f64,
    /// Longitude, -180 to 180 (east positive).
    pub lon: f64,
}

impl Coord {
    /// A checked position: both numbers finite and in range. The host's schemas already
    /// refuse out-of-range input; this guards the logic against anything else.
    pub fn new(lat: f64, lon: f64) -> Result<Self, Error> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(Error::invalid_input(format!(
                "latitude {lat} is out of range; it must be between -90 and 90 (decimal degrees)"
            )));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(Error::invalid_input(format!(
                "longitude {lon} is out of range; it must be between -180 and 180 (decimal degrees)"
            )));
        }
        Ok(Self { lat, lon })
    }

    /// The great-circle distance to `other`, in metres.
    pub fn distance_m(self, other: Coord) -> f64 {
        distance_m(self, other)
    }
}

/// The great-circle (haversine) distance between two positions, in metres.
pub fn distance_m(a: Coord, b: Coord) -> f64 {
    let (phi1, phi2) = (a.lat.to_radians(), b.lat.to_radians());
    let d_phi = phi2 - phi1;
    let d_lambda = (b.lon - a.lon).to_radians();
    let h = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    // `min` guards asin against rounding just above 1 for antipodal points.
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A distance rounded to whole metres, as operations report it.
pub fn whole_metres(metres: f64) -> u32 {
    // Distances on Earth are below 20 040 km, so the cast never saturates.
    metres.round().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// Where a rider is picked up: a position and what the driver should look for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pickup {
    /// Latitude in decimal degrees.
    pub lat: f64,
    /// Longitude in decimal degrees.
    pub lon: f64,
    /// For the driver: "Tower A main door, 288 Ningxia Road".
    pub description: String,
}

impl Pickup {
    /// Checks the position and the description.
    pub fn validate(&self) -> Result<(), Error> {
        Coord::new(self.lat, self.lon)?;
        let description = self.description.trim();
        if description.is_empty() {
            return Err(Error::invalid_input(
                "the pickup description is empty; say where the driver should stop (\"Tower A main door\")",
            ));
        }
        Ok(())
    }

    /// The position.
    pub fn coord(&self) -> Coord {
        Coord {
            lat: self.lat,
            lon: self.lon,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(lat: f64, lon: f64) -> Coord {
        Coord::new(lat, lon).expect("valid coordinate")
    }

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn a_point_is_at_distance_zero_from_itself() {
        let p = c(36.0671, 120.3826);
        assert_eq!(distance_m(p, p), 0.0);
    }

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        // R * pi / 180
        close(distance_m(c(0.0, 0.0), c(1.0, 0.0)), 111_195.08, 0.01);
        close(distance_m(c(36.0, 120.0), c(37.0, 120.0)), 111_195.08, 0.01);
    }

    #[test]
    fn a_degree_of_longitude_shrinks_with_latitude() {
        close(distance_m(c(0.0, 0.0), c(0.0, 1.0)), 111_195.08, 0.01);
        // At 60 degrees a degree of longitude is about half as long (a great circle is
        // slightly shorter than the parallel).
        let d = distance_m(c(60.0, 0.0), c(60.0, 1.0));
        close(d, 55_597.5, 5.0);
    }

    #[test]
    fn the_classic_nashville_to_los_angeles_distance() {
        // Rosetta Code's reference: 2887.2599506 km with R = 6372.8 km; scaled to the
        // mean radius.
        let d = distance_m(c(36.12, -86.67), c(33.94, -118.40));
        close(d, 2_887_259.950_6 * EARTH_RADIUS_M / 6_372_800.0, 0.01);
    }

    #[test]
    fn distance_is_symmetric() {
        let (a, b) = (c(36.0671, 120.3826), c(36.0712, 120.3931));
        assert_eq!(distance_m(a, b), distance_m(b, a));
    }

    #[test]
    fn distance_is_short_across_the_antimeridian() {
        close(distance_m(c(0.0, 179.5), c(0.0, -179.5)), 111_195.08, 0.01);
    }

    #[test]
    fn antipodes_are_half_a_circumference_apart() {
        close(
            distance_m(c(0.0, 0.0), c(0.0, 180.0)),
            std::f64::consts::PI * EARTH_RADIUS_M,
            0.01,
        );
        close(
            distance_m(c(90.0, 0.0), c(-90.0, 0.0)),
            std::f64::consts::PI * EARTH_RADIUS_M,
            0.01,
        );
    }

    #[test]
    fn short_city_distances_are_precise() {
        // 0.001 degree of latitude is about 111 m.
        close(
            distance_m(c(36.0671, 120.3826), c(36.0681, 120.3826)),
            111.195,
            0.001,
        );
    }

    #[test]
    fn out_of_range_coordinates_are_refused_with_the_range() {
        for (lat, lon) in [
            (90.1, 0.0),
            (-90.1, 0.0),
            (0.0, 180.1),
            (0.0, -180.1),
            (f64::NAN, 0.0),
            (0.0, f64::INFINITY),
        ] {
            match Coord::new(lat, lon) {
                Err(Error::InvalidInput(m)) => assert!(m.contains("between"), "{m}"),
                other => panic!("({lat}, {lon}) gave {other:?}"),
            }
        }
        assert!(Coord::new(90.0, 180.0).is_ok());
        assert!(Coord::new(-90.0, -180.0).is_ok());
    }

    #[test]
    fn pickups_need_a_description() {
        let mut p = Pickup {
            lat: 36.0,
            lon: 120.0,
            description: "  ".into(),
        };
        assert!(matches!(p.validate(), Err(Error::InvalidInput(m)) if m.contains("description")));
        p.description = "Tower A".into();
        assert_eq!(p.validate(), Ok(()));
        p.lat = 91.0;
        assert!(matches!(p.validate(), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn whole_metres_rounds() {
        assert_eq!(whole_metres(411.5), 412);
        assert_eq!(whole_metres(411.49), 411);
        assert_eq!(whole_metres(-1.0), 0);
    }
}
