//! Date and time text without chrono's strftime machinery, which would
//! add tens of kilobytes to the WASM bundle for a handful of formats.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn month(d: &impl Datelike) -> &'static str {
    MONTHS[d.month0() as usize]
}

/// "14:03"
pub fn hm(t: &NaiveDateTime) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// "Nov 3, 14:03"
pub fn short_date_hm(t: &NaiveDateTime) -> String {
    format!("{} {}, {}", &month(t)[..3], t.day(), hm(t))
}

/// "2026-11-03 14:03:09"
pub fn full(t: &NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// "Monday, November 23" (and ", 2026" when `with_year`).
pub fn long_day(d: &NaiveDate, with_year: bool) -> String {
    let weekday = WEEKDAYS[d.weekday().num_days_from_monday() as usize];
    if with_year {
        format!("{weekday}, {} {}, {}", month(d), d.day(), d.year())
    } else {
        format!("{weekday}, {} {}", month(d), d.day())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = NaiveDate::from_ymd_opt(2026, 11, 3)
            .unwrap()
            .and_hms_opt(4, 5, 9)
            .unwrap();
        assert_eq!(hm(&t), "04:05");
        assert_eq!(short_date_hm(&t), "Nov 3, 04:05");
        assert_eq!(full(&t), "2026-11-03 04:05:09");
        assert_eq!(long_day(&t.date(), false), "Tuesday, November 3");
        assert_eq!(long_day(&t.date(), true), "Tuesday, November 3, 2026");
    }
}
