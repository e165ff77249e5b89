//! One message in the list: sender, time and text (with safe links). Text
//! is always rendered as text, never HTML, so markup shows literally.

use chrono::{DateTime, Duration, Utc};
use leptos::prelude::*;

use super::{
    composer, datefmt,
    message_actions::{Actions, Editor, Reactions},
    text,
};
use crate::{
    domain::{Message, MessageKind},
    state::{Live, Pending, RoomFeed},
};

/// The browser clock (ms, UTC offset in minutes), set once the page is
/// hydrated and refreshed every 30 s. `None` while server-rendered: times
/// and days then show in UTC.
#[derive(Clone, Copy)]
pub struct Clock(pub RwSignal<Option<(i64, i32)>>);

#[component]
pub fn MessageItem(message: Message, grouped: bool) -> impl IntoView {
    let live = expect_context::<Live>();
    let feed = expect_context::<RoomFeed>();
    let clock = expect_context::<Clock>().0;
    let author = message.author.clone();
    // Read with `try_`: while the router swaps pages, the leaving page's
    // views may still be asked once.
    let own = Signal::derive(move || {
        author.is_some()
            && live
                .author
                .try_with(|me| me.as_deref() == author.as_deref())
                .unwrap_or(false)
    });
    let created_at = message.created_at;
    let label = move || time_label(created_at, clock.get());
    let title = move || full_time(created_at, clock.get());
    let broadcast = message.kind == MessageKind::Broadcast;
    let deleted = message.deleted;
    let sender_label = if broadcast {
        format!("📣 {}", message.sender)
    } else {
        message.sender.clone()
    };
    let seq = message.seq;
    let editing = move || feed.editing.try_get().flatten() == Some(seq);
    let edited = message.edited_at.map(|at| {
        view! {
            <span class="edited" title=move || full_time(at, clock.get())>
                "(edited)"
            </span>
        }
    });
    let body = {
        let message = message.clone();
        move || {
            if deleted {
                view! { <p class="body tombstone">"Message deleted"</p> }.into_any()
            } else if editing() {
                view! { <Editor message=message.clone() /> }.into_any()
            } else {
                view! { <p class="body">{text::render(&message.content)}</p> }.into_any()
            }
        }
    };
    let changeable = !broadcast && !deleted;
    view! {
        <li
            class="msg"
            class:own=move || own.try_get().unwrap_or(false)
            class:broadcast=broadcast
            class:grouped=grouped
            class:deleted=deleted
            data-seq=message.seq
            data-id=message.id.to_string()
            data-author=message.author.clone()
            // A long press (or right click) opens the message's menu.
            on:contextmenu=move |e: leptos::ev::MouseEvent| {
                if changeable && crate::browser::open_menu_within(&e) {
                    e.prevent_default();
                }
            }
        >
            <div class="meta">
                <span class="sender">{sender_label}</span>
                <time
                    datetime=machine_time(created_at)
                    title=title
                >
                    {label}
                </time>
                {edited}
            </div>
            {body}
            // Type-erased: the message item's view type stays shallow.
            {changeable.then(|| view! { <Reactions message=message.clone() /> }.into_any())}
            {changeable.then(|| view! { <Actions message=message.clone() own /> }.into_any())}
        </li>
    }
}

#[component]
pub fn PendingItem(pending: Pending) -> impl IntoView {
    let feed = expect_context::<RoomFeed>();
    let live = expect_context::<Live>();
    let id = pending.id;
    let failed = pending.error.is_some();
    let retry = move |_| composer::retry(live, feed, id);
    view! {
        <li
            class="msg own pending"
            class:failed=failed
            aria-busy=(!failed).to_string()
            data-id=id.to_string()
        >
            <div class="meta">
                <span class="sender">{pending.sender}</span>
                <span class="state">{if failed { "Not sent" } else { "Sending…" }}</span>
            </div>
            <p class="body">{pending.content}</p>
            {pending
                .error
                .map(|e| {
                    view! {
                        <p class="send-error" role="alert">
                            {e}
                            " "
                            <button type="button" class="retry" on:click=retry>
                                "Retry"
                            </button>
                        </p>
                    }
                })}
        </li>
    }
}

/// "just now", "5 min ago", "14:03" (today), "Nov 3, 14:03" (older), in the
/// browser's local time; "14:03 UTC" before the browser clock is known.
pub fn time_label(at: DateTime<Utc>, clock: Option<(i64, i32)>) -> String {
    let Some((now_ms, offset_min)) = clock else {
        return format!("{} UTC", datefmt::hm(&at.naive_utc()));
    };
    let now = DateTime::from_timestamp_millis(now_ms).unwrap_or(at);
    let age = now - at;
    if age < Duration::minutes(1) {
        return "just now".into();
    }
    if age < Duration::hours(1) {
        return format!("{} min ago", age.num_minutes());
    }
    let offset = Duration::minutes(offset_min.into());
    let local = (at + offset).naive_utc();
    let today = (now + offset).naive_utc().date();
    if local.date() == today {
        datefmt::hm(&local)
    } else {
        datefmt::short_date_hm(&local)
    }
}

/// A `<time datetime>` value: UTC, to the millisecond.
pub(super) fn machine_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn full_time(at: DateTime<Utc>, clock: Option<(i64, i32)>) -> String {
    match clock {
        Some((_, offset_min)) => {
            datefmt::full(&(at + Duration::minutes(offset_min.into())).naive_utc())
        }
        None => format!("{} UTC", datefmt::full(&at.naive_utc())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn labels() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let ms = |d: DateTime<Utc>| d.timestamp_millis();
        assert_eq!(time_label(at, None), "10:00 UTC");
        assert_eq!(
            time_label(at, Some((ms(at + Duration::seconds(20)), 0))),
            "just now"
        );
        assert_eq!(
            time_label(at, Some((ms(at + Duration::minutes(5)), 0))),
            "5 min ago"
        );
        // Tokyo is UTC+9: 10:00 UTC is 19:00 there, same local day.
        assert_eq!(
            time_label(at, Some((ms(at + Duration::hours(2)), 540))),
            "19:00"
        );
        assert_eq!(
            time_label(at, Some((ms(at + Duration::days(3)), 540))),
            "Nov 24, 19:00"
        );
    }
}
