//! The events the plugin emits (declared in `manifest.json`), built from what a ride's
//! transitions did ([`Happening`]). Every payload names the ride and its screen (null for
//! phone rides) and carries `at_ms`, the host time of the transition.

use crate::rides::{Happening, Ride};
use courtyard_sdk::{Value, json};

/// A ride was requested (before any offer).
pub const RIDE_REQUESTED: &str = "taxi-dispatch.ride-requested";
/// A round offered a ride to drivers.
pub const RIDE_OFFERED: &str = "taxi-dispatch.ride-offered";
/// A driver accepted a ride.
pub const RIDE_ACCEPTED: &str = "taxi-dispatch.ride-accepted";
/// The driver gave an accepted ride back.
pub const RIDE_RELEASED: &str = "taxi-dispatch.ride-released";
/// No driver accepted: staff must act.
pub const RIDE_ESCALATED: &str = "taxi-dispatch.ride-escalated";
/// The rider got in.
pub const RIDE_PICKED_UP: &str = "taxi-dispatch.ride-picked-up";
/// The ride is done.
pub const RIDE_COMPLETED: &str = "taxi-dispatch.ride-completed";
/// The ride was cancelled.
pub const RIDE_CANCELLED: &str = "taxi-dispatch.ride-cancelled";

/// Every kind, as declared in the manifest.
pub const ALL: [&str; 8] = [
    RIDE_REQUESTED,
    RIDE_OFFERED,
    RIDE_ACCEPTED,
    RIDE_RELEASED,
    RIDE_ESCALATED,
    RIDE_PICKED_UP,
    RIDE_COMPLETED,
    RIDE_CANCELLED,
];

/// The kind and payload of the event for `happening`, which happened to `ride`.
pub fn event_for(ride: &Ride, happening: &Happening) -> (&'static str, Value) {
    let (ride_id, screen_id) = (&ride.ride_id, &ride.screen_id);
    match happening {
        Happening::Requested => (
            RIDE_REQUESTED,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "source": ride.source,
                "pickup": ride.pickup,
                "note": ride.note,
                "at_ms": ride.times.requested_ms,
            }),
        ),
        Happening::Offered {
            round,
            radius_m,
            drivers,
            expires_at_ms,
            at_ms,
        } => (
            RIDE_OFFERED,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "round": round,
                "radius_m": radius_m,
                "pickup": ride.pickup,
                "note": ride.note,
                "drivers": drivers
                    .iter()
                    .map(|o| json!({"driver_id": o.driver_id, "distance_m": o.distance_m}))
                    .collect::<Vec<_>>(),
                "expires_at_ms": expires_at_ms,
                "at_ms": at_ms,
            }),
        ),
        Happening::Accepted {
            driver_id,
            vehicle_plate,
            at_ms,
        } => (
            RIDE_ACCEPTED,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "driver_id": driver_id,
                "vehicle_plate": vehicle_plate,
                "pickup": ride.pickup,
                "at_ms": at_ms,
            }),
        ),
        Happening::Released(release) => (
            RIDE_RELEASED,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "driver_id": release.driver_id,
                "reason": release.reason,
                "at_ms": release.at_ms,
            }),
        ),
        Happening::Escalated {
            reason,
            rounds,
            radius_m,
            drivers_offered,
            at_ms,
        } => (
            RIDE_ESCALATED,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "pickup": ride.pickup,
                "reason": reason,
                "rounds": rounds,
                "radius_m": radius_m,
                "drivers_offered": drivers_offered,
                "at_ms": at_ms,
            }),
        ),
        Happening::PickedUp { driver_id, at_ms } => (
            RIDE_PICKED_UP,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "driver_id": driver_id,
                "at_ms": at_ms,
            }),
        ),
        Happening::Completed {
            driver_id,
            by,
            at_ms,
        } => (
            RIDE_COMPLETED,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "driver_id": driver_id,
                "completed_by": by,
                "at_ms": at_ms,
            }),
        ),
        Happening::Cancelled {
            from,
            by,
            reason,
            driver_id,
            at_ms,
        } => (
            RIDE_CANCELLED,
            json!({
                "ride_id": ride_id,
                "screen_id": screen_id,
                "previous_state": from,
                "cancelled_by": by,
                "reason": reason,
                "driver_id": driver_id,
                "at_ms": at_ms,
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{declared, sorted};

    #[test]
    fn every_kind_is_declared_in_the_manifest_and_nothing_else() {
        assert_eq!(declared("events"), sorted(&ALL));
    }
}
