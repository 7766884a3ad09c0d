//! Dates — a Unix timestamp as a UTC calendar date and time, for report names and pages
//! (Howard Hinnant's `civil_from_days`; no time zone, no dependency).

/// `YYYY-MM-DD` of `ms` since the Unix epoch, in UTC.
pub fn utc_date(ms: i64) -> String {
    let (year, month, day) = civil(ms.div_euclid(86_400_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DD HH:MM UTC` of `ms` since the Unix epoch.
pub fn utc_minute(ms: i64) -> String {
    let minute_of_day = ms.rem_euclid(86_400_000) / 60_000;
    format!("{} {:02}:{:02} UTC", utc_date(ms), minute_of_day / 60, minute_of_day % 60)
}

/// The (year, month, day) of `days` since 1970-01-01.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_minute(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc_date(-86_400_000), "1969-12-31");
    }
}
