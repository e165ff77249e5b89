//! Reading the timestamps on the wire (`"2026-11-28T17:30:38.123Z"`, RFC 3339)
//! without chrono's general-purpose parser. chrono's `Deserialize` goes
//! through its format-item interpreter (about 15 KB of the browser's WASM
//! before compression); the server only ever writes RFC 3339, so this reads
//! exactly that: a date, `T` (or a space), a time with an optional fraction
//! (nanoseconds kept), and `Z` or a `±hh:mm` offset.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{de::Error, Deserialize, Deserializer};

/// `#[serde(deserialize_with = "wire_time::required")]`
pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&text).ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text}")))
}

/// `#[serde(default, deserialize_with = "wire_time::optional")]`
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match <Option<std::borrow::Cow<'de, str>>>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text}"))),
    }
}

/// An RFC 3339 timestamp, or `None` if `text` is not one.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        digits(&b[0..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let mut rest = &b[19..];
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        // Digits past nanoseconds are dropped, as chrono drops them.
        let kept = len.min(9);
        nanos = digits(&fraction[..kept])? * 10u32.pow(9 - kept as u32);
        rest = &fraction[len..];
    }
    let offset_secs = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let secs = i64::from(digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60);
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => return None,
    };
    // A leap second (`:60`), as chrono keeps it: second 59, past 10^9 ns.
    let (second, nanos) = if second == 60 {
        (59, nanos + 1_000_000_000)
    } else {
        (second, nanos)
    };
    let local = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    Some(local.and_utc() - TimeDelta::seconds(offset_secs))
}

/// ASCII digits as a number; `None` if any byte is not a digit.
fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use chrono::{SecondsFormat, TimeZone};

    use super::*;

    #[test]
    fn reads_what_chrono_writes() {
        let times = [
            Utc.with_ymd_and_hms(2026, 11, 28, 17, 30, 38).unwrap(),
            Utc.timestamp_millis_opt(1_764_351_038_123).unwrap(),
            Utc.timestamp_nanos(1_764_351_038_123_456_789),
            Utc.timestamp_nanos(1_764_351_038_000_001_000),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap(),
        ];
        for t in times {
            for format in [
                SecondsFormat::Secs,
                SecondsFormat::Millis,
                SecondsFormat::Micros,
                SecondsFormat::Nanos,
                SecondsFormat::AutoSi,
            ] {
                for z in [true, false] {
                    let text = t.to_rfc3339_opts(format, z);
                    let want = DateTime::parse_from_rfc3339(&text).unwrap().to_utc();
                    assert_eq!(parse(&text), Some(want), "{text}");
                }
            }
            // serde's own encoding of the type, the one on the wire.
            let json = serde_json::to_string(&t).unwrap();
            let mut de = serde_json::Deserializer::from_str(&json);
            assert_eq!(required(&mut de).unwrap(), t, "{json}");
        }
    }

    #[test]
    fn offsets_and_fractions_agree_with_chrono() {
        for text in [
            "2026-11-28T17:30:38+09:00",
            "2026-11-28T02:30:38.5-05:30",
            "2026-11-28 17:30:38.000000001z",
            "2026-12-31T23:59:60Z",
            "2026-11-28T17:30:38.1234567890Z",
        ] {
            let want = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            assert_eq!(parse(text), Some(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_rfc_3339() {
        for text in [
            "",
            "2026-11-28",
            "2026-11-28T17:30:38",
            "2026-11-28T17:30:38.Z",
            "2026-02-30T17:30:38Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T17:30:38+0900",
            "2026-11-28X17:30:38Z",
            "2026-1a-28T17:30:38Z",
            "2026-11-28T17:30:38Z ",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
            assert!(DateTime::parse_from_rfc3339(text).is_err(), "{text:?}");
        }
        let mut de = serde_json::Deserializer::from_str("\"yesterday\"");
        let err = required(&mut de).unwrap_err().to_string();
        assert!(err.contains("not an RFC 3339 time: yesterday"), "{err}");
    }

    #[test]
    fn optional_reads_null_and_a_time() {
        let mut de = serde_json::Deserializer::from_str("null");
        assert_eq!(optional(&mut de).unwrap(), None);
        let mut de = serde_json::Deserializer::from_str("\"1970-01-01T00:00:01Z\"");
        assert_eq!(
            optional(&mut de).unwrap(),
            Some(Utc.timestamp_opt(1, 0).unwrap())
        );
    }
}
