//! Calendar arithmetic on the community's local time, with no clock and no time-zone database.
//!
//! The host gives "now" as milliseconds since the Unix epoch (UTC); the community's config
//! gives its fixed offset from UTC (`utc_offset_minutes`, +480 for China Standard Time, which
//! has no daylight saving). Dates are proleptic Gregorian (`YYYY-MM-DD`); the day-number
//! conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`.

use std::fmt;

const MS_PER_MINUTE: i64 = 60_000;
const MINUTES_PER_DAY: i64 = 24 * 60;

/// The earliest year the plugin accepts in a date (birth dates of the very old included).
pub const MIN_YEAR: i32 = 1900;
/// The latest year the plugin accepts in a date.
pub const MAX_YEAR: i32 = 2999;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// The year, `MIN_YEAR..=MAX_YEAR`.
    pub year: i32,
    /// The month, 1–12.
    pub month: u32,
    /// The day of the month, 1–31.
    pub day: u32,
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Date {
    /// Parses `YYYY-MM-DD`, refusing dates that do not exist (`2099-02-30`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a date: use YYYY-MM-DD, for example 2099-12-01");
        let mut parts = s.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let (Some(year), Some(month), Some(day)) = (digits(y), digits(m), digits(d)) else {
            return Err(bad());
        };
        let year = year as i32;
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(format!(
                "{s:?} is out of range: years {MIN_YEAR} to {MAX_YEAR} are accepted"
            ));
        }
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(format!("{s:?} is not a date: that day does not exist"));
        }
        Ok(Self { year, month, day })
    }

    /// Days since 1970-01-01.
    pub fn to_days(self) -> i64 {
        courtyard_sdk::time::days_from_civil(i64::from(self.year), self.month, self.day)
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days(days: i64) -> Self {
        let (year, month, day) = courtyard_sdk::time::civil_from_days(days);
        Self {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month,
            day,
        }
    }

    /// The local date at `now_ms` in a community `utc_offset_minutes` ahead of UTC.
    pub fn local_today(now_ms: i64, utc_offset_minutes: i32) -> Self {
        let local_minutes = now_ms.div_euclid(MS_PER_MINUTE) + i64::from(utc_offset_minutes);
        Self::from_days(local_minutes.div_euclid(MINUTES_PER_DAY))
    }

    /// Full years someone born on `self` has lived on `today` (a 29 February birthday
    /// counts from 1 March in common years). Negative if `today` is before `self`.
    pub fn age_on(self, today: Date) -> i32 {
        let mut years = today.year - self.year;
        if (today.month, today.day) < (self.month, self.day) {
            years -= 1;
        }
        years
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A wall-clock time of day, in minutes after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(pub u32);

impl TimeOfDay {
    /// Parses `HH:MM` (24-hour clock).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a time of day: use HH:MM, for example 10:30");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let (Some(h), Some(m)) = (digits(h), digits(m)) else {
            return Err(bad());
        };
        if h > 23 || m > 59 {
            return Err(bad());
        }
        Ok(Self(h * 60 + m))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A local date and time of day (`YYYY-MM-DDTHH:MM`), in the community's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalDateTime {
    /// The date.
    pub date: Date,
    /// The time of day.
    pub time: TimeOfDay,
}

impl LocalDateTime {
    /// Parses `YYYY-MM-DDTHH:MM`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (date, time) = s.split_once('T').ok_or_else(|| {
            format!("{s:?} is not a local date and time: use YYYY-MM-DDTHH:MM, for example 2099-11-30T20:00")
        })?;
        Ok(Self {
            date: Date::parse(date)?,
            time: TimeOfDay::parse(time)?,
        })
    }

    /// The instant, in ms since the Unix epoch, of this local time in a community
    /// `utc_offset_minutes` ahead of UTC.
    pub fn to_utc_ms(self, utc_offset_minutes: i32) -> i64 {
        let minutes = self.date.to_days() * MINUTES_PER_DAY + i64::from(self.time.0)
            - i64::from(utc_offset_minutes);
        minutes * MS_PER_MINUTE
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{}", self.date, self.time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).expect("date")
    }

    #[test]
    fn parses_and_prints_dates() {
        assert_eq!(d("2099-12-01").to_string(), "2099-12-01");
        assert_eq!(d("2024-02-29").to_string(), "2024-02-29");
        for bad in [
            "2099-02-30",
            "2023-02-29",
            "2100-02-29",
            "2099-13-01",
            "2099-00-10",
            "2099-12-00",
            "99-12-01",
            "2099-1-01",
            "2099/12/01",
            "2099-12-01-",
            "+099-12-01",
            "1899-12-31",
            "3000-01-01",
            "",
        ] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert!(Date::parse("2000-02-29").is_ok());
    }

    #[test]
    fn day_numbers_round_trip() {
        assert_eq!(d("1970-01-01").to_days(), 0);
        assert_eq!(d("1969-12-31").to_days(), -1);
        assert_eq!(d("2000-03-01").to_days(), 11_017);
        for days in (-30_000..60_000).step_by(7) {
            assert_eq!(Date::from_days(days).to_days(), days);
        }
        assert_eq!(Date::from_days(d("1950-06-15").to_days()), d("1950-06-15"));
    }

    #[test]
    fn local_today_uses_the_offset() {
        // 2099-11-30T16:30Z is 2099-12-01T00:30 in UTC+8.
        let now = LocalDateTime::parse("2099-11-30T16:30")
            .expect("dt")
            .to_utc_ms(0);
        assert_eq!(Date::local_today(now, 0), d("2099-11-30"));
        assert_eq!(Date::local_today(now, 480), d("2099-12-01"));
        assert_eq!(Date::local_today(now, -600), d("2099-11-30"));
        assert_eq!(Date::local_today(-1, 0), d("1969-12-31"));
    }

    #[test]
    fn local_times_convert_to_utc() {
        let t = LocalDateTime::parse("2099-12-01T10:30").expect("dt");
        assert_eq!(t.to_string(), "2099-12-01T10:30");
        assert_eq!(t.to_utc_ms(480), t.to_utc_ms(0) - 480 * 60_000);
        assert_eq!(
            Date::local_today(t.to_utc_ms(480), 480),
            d("2099-12-01"),
            "a local time maps back to its own date"
        );
        for bad in [
            "2099-12-01 10:30",
            "2099-12-01T24:00",
            "2099-12-01T9:30",
            "2099-12-01T10:60",
        ] {
            assert!(LocalDateTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ages_are_full_years() {
        let born = d("1960-06-15");
        assert_eq!(born.age_on(d("2020-06-14")), 59);
        assert_eq!(born.age_on(d("2020-06-15")), 60);
        assert_eq!(born.age_on(d("2021-01-01")), 60);
        let leap = d("1960-02-29");
        assert_eq!(leap.age_on(d("2021-02-28")), 60);
        assert_eq!(leap.age_on(d("2020-02-28")), 59);
        assert_eq!(leap.age_on(d("2020-02-29")), 60);
        assert_eq!(d("2000-01-02").age_on(d("2000-01-01")), -1);
    }

    #[test]
    fn times_of_day() {
        assert_eq!(TimeOfDay::parse("00:00"), Ok(TimeOfDay(0)));
        assert_eq!(TimeOfDay::parse("23:59"), Ok(TimeOfDay(23 * 60 + 59)));
        assert_eq!(TimeOfDay(630).to_string(), "10:30");
        for bad in ["24:00", "1:00", "10:5", "10-30", "aa:bb", ""] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
    }
}
