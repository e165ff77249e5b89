//! Turns a room's messages (and the announcements) into the rows the list
//! shows: day separators, the "new messages" divider, and messages grouped
//! under one header when the same person writes several in a row. Pure, so
//! it is unit-tested without a browser.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::datefmt;

use crate::domain::{Message, MessageKind};

/// Consecutive messages of one sender within this time share a header.
const GROUP_WINDOW: Duration = Duration::minutes(5);

#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Day { date: NaiveDate, label: String },
    Divider,
    Message { message: Message, grouped: bool },
}

impl Row {
    /// A key that changes whenever the row must be re-rendered.
    pub fn key(&self) -> String {
        match self {
            Row::Day { date, label } => format!("day:{date}:{label}"),
            Row::Divider => "divider".into(),
            // Changes to the message (edits, deletion, reactions) change
            // the key, so the row is drawn again.
            Row::Message { message, grouped } => {
                let reactions: String = message
                    .reactions
                    .iter()
                    .map(|r| format!("{}{}{}", r.emoji, r.count, if r.mine { "*" } else { "" }))
                    .collect();
                format!(
                    "{}:{}:{}:{}:{}:{}",
                    message.room,
                    message.seq,
                    grouped,
                    message.edited_at.map_or(0, |t| t.timestamp_millis()),
                    message.deleted,
                    reactions
                )
            }
        }
    }
}

/// The local calendar date of `at` (UTC when the offset is unknown).
fn local_date(at: DateTime<Utc>, offset_min: i32) -> NaiveDate {
    (at + Duration::minutes(offset_min.into())).date_naive()
}

/// "Today", "Yesterday" or e.g. "Monday, November 23" (with the year when
/// it is not this year).
pub fn day_label(date: NaiveDate, today: Option<NaiveDate>) -> String {
    match today {
        Some(t) if date == t => "Today".into(),
        Some(t) if Some(date) == t.pred_opt() => "Yesterday".into(),
        Some(t) if date.year() == t.year() => datefmt::long_day(&date, false),
        _ => datefmt::long_day(&date, true),
    }
}

/// Builds the rows. `announcements` newer than the oldest room message shown
/// are interleaved by time without changing the room's seq order.
/// `clock` is the browser's (now in ms, UTC offset in minutes).
pub fn build_rows(
    messages: &[Message],
    announcements: &[Message],
    divider: Option<i64>,
    clock: Option<(i64, i32)>,
) -> Vec<Row> {
    let offset = clock.map_or(0, |(_, o)| o);
    let today = clock
        .and_then(|(now, _)| DateTime::from_timestamp_millis(now))
        .map(|now| local_date(now, offset));
    let since = messages.first().map(|m| m.created_at);
    let mut extra = announcements
        .iter()
        .filter(|a| since.is_none_or(|s| a.created_at >= s))
        .peekable();

    let mut merged: Vec<&Message> = Vec::with_capacity(messages.len() + announcements.len());
    for m in messages {
        while let Some(a) = extra.next_if(|a| a.created_at < m.created_at) {
            merged.push(a);
        }
        merged.push(m);
    }
    merged.extend(extra);

    let mut rows = Vec::with_capacity(merged.len() + 4);
    let mut prev: Option<&Message> = None;
    let mut last_day = None;
    for m in merged {
        let day = local_date(m.created_at, offset);
        let mut breaks = false;
        if last_day != Some(day) {
            rows.push(Row::Day {
                date: day,
                label: day_label(day, today),
            });
            last_day = Some(day);
            breaks = true;
        }
        if divider.is_some_and(|d| m.room != crate::domain::ANNOUNCEMENTS && m.seq == d) {
            rows.push(Row::Divider);
            breaks = true;
        }
        let grouped = !breaks
            && m.kind == MessageKind::User
            && prev.is_some_and(|p| {
                p.kind == MessageKind::User
                    && p.sender == m.sender
                    && m.created_at - p.created_at < GROUP_WINDOW
            });
        rows.push(Row::Message {
            message: m.clone(),
            grouped,
        });
        prev = Some(m);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn msg(room: &str, seq: i64, sender: &str, at: DateTime<Utc>) -> Message {
        Message {
            room: room.into(),
            seq,
            id: uuid::Uuid::from_u128(seq as u128 + if room == "lobby" { 0 } else { 1000 }),
            kind: if room == "announcements" {
                MessageKind::Broadcast
            } else {
                MessageKind::User
            },
            sender: sender.into(),
            content: format!("m{seq}"),
            created_at: at,
            ..Default::default()
        }
    }

    fn summary(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| match r {
                Row::Day { label, .. } => format!("[{label}]"),
                Row::Divider => "---".into(),
                Row::Message { message, grouped } => {
                    format!("{}{}", if *grouped { "  " } else { "" }, message.content)
                }
            })
            .collect()
    }

    #[test]
    fn groups_days_divider_and_announcements() {
        let t = |d, h, m| Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        let messages = vec![
            msg("lobby", 1, "alice", t(23, 22, 0)),
            msg("lobby", 2, "alice", t(24, 9, 0)),
            msg("lobby", 3, "alice", t(24, 9, 1)),
            msg("lobby", 4, "bob", t(24, 9, 2)),
            msg("lobby", 5, "bob", t(24, 9, 3)),
            msg("lobby", 6, "bob", t(24, 9, 30)),
        ];
        let announcements = vec![
            msg("announcements", 1, "server", t(20, 0, 0)),
            msg("announcements", 2, "server", t(24, 9, 2)),
        ];
        let now = t(24, 12, 0).timestamp_millis();
        let rows = build_rows(&messages, &announcements, Some(5), Some((now, 0)));
        assert_eq!(
            summary(&rows),
            [
                "[Yesterday]",
                "m1",
                "[Today]",
                "m2",
                "  m3",
                "m4",
                "m2", // the announcement at 09:02 (ties go after the room's message)
                "---",
                "m5",
                "m6", // more than 5 minutes later: a new group
            ]
        );
    }

    #[test]
    fn local_dates_follow_the_offset() {
        // 23:30 UTC is already tomorrow in Tokyo (UTC+9).
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 23, 30, 0).unwrap();
        let rows = build_rows(
            &[msg("lobby", 1, "a", at)],
            &[],
            None,
            Some((at.timestamp_millis(), 540)),
        );
        assert_eq!(summary(&rows), ["[Today]", "m1"]);
        let rows = build_rows(&[msg("lobby", 1, "a", at)], &[], None, None);
        assert_eq!(summary(&rows), ["[Monday, November 23, 2026]", "m1"]);
    }
}
