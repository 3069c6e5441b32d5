//! Readable times for messages. Every time in the plugin is milliseconds since the Unix
//! epoch (UTC), taken from the event (`at_ms`) or from the host (`ctx.now_ms`); messages
//! show them as RFC 3339 UTC so that an admin can read them.

use courtyard_sdk::time::civil_from_days;

/// `ms` as `2099-12-01T10:00:00Z` (seconds precision, UTC).
pub fn fmt_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A duration in milliseconds as whole seconds (rounded down), for messages.
pub fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(fmt_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(
            fmt_ms(4_099_766_400_000 + 36_000_000),
            "2099-12-01T10:00:00Z"
        );
        assert_eq!(fmt_ms(1_748_772_000_999), "2025-06-01T10:00:00Z");
        assert_eq!(fmt_ms(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn whole_seconds() {
        assert_eq!(secs(1999), 1);
        assert_eq!(secs(600_000), 600);
    }
}
