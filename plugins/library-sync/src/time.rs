//! Formatting times for messages. Times are milliseconds since the Unix epoch (UTC), as the
//! host gives `now_ms`; outputs carry them as numbers, messages as readable UTC dates.

use crate::config::DAY_MS;
use courtyard_sdk::time::civil_from_days;

/// `ms` as `YYYY-MM-DD HH:MM UTC`.
pub fn fmt_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Whole days, rounded up, from `from_ms` to `to_ms` (0 when `to_ms` is not after
/// `from_ms`): a book one hour late is one day late.
pub fn days_after(from_ms: i64, to_ms: i64) -> u32 {
    if to_ms <= from_ms {
        return 0;
    }
    let late = i128::from(to_ms) - i128::from(from_ms);
    let days = (late + i128::from(DAY_MS) - 1) / i128::from(DAY_MS);
    u32::try_from(days).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(fmt_utc(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 (a leap day in a century leap year) 12:34 UTC.
        assert_eq!(fmt_utc(951_827_640_000), "2000-02-29 12:34 UTC");
        // 2099-12-01 08:00 UTC.
        assert_eq!(fmt_utc(4_099_795_200_000), "2099-12-01 08:00 UTC");
        // Before the epoch.
        assert_eq!(fmt_utc(-DAY_MS), "1969-12-31 00:00 UTC");
    }

    #[test]
    fn days_after_rounds_up() {
        assert_eq!(days_after(0, 0), 0);
        assert_eq!(days_after(10, 5), 0);
        assert_eq!(days_after(0, 1), 1);
        assert_eq!(days_after(0, DAY_MS), 1);
        assert_eq!(days_after(0, DAY_MS + 1), 2);
        assert_eq!(days_after(i64::MIN, i64::MAX), u32::MAX);
    }
}
