//! The scrolling message list: history on demand at the top, day
//! separators, grouping, the "new messages" divider, pending sends, who is
//! typing, and the "jump to latest" button. The scroller is a
//! `column-reverse` flexbox, so it starts at the newest message (even
//! without JavaScript) and loading older messages above never moves the view.

use leptos::{html, prelude::*};

use super::{
    composer::Hydrated,
    message_item::{Clock, MessageItem, PendingItem},
    timeline::{build_rows, Row},
};
use crate::{
    api::{older_messages, PAGE_SIZE},
    browser,
    state::{merge, Live, RoomFeed},
};

/// Within this many pixels of the newest message counts as "at the bottom".
const BOTTOM_SLACK: i32 = 40;
/// Start loading older messages this close to the top.
const TOP_SLACK: i32 = 200;

#[component]
pub fn MessageList() -> impl IntoView {
    let feed = expect_context::<RoomFeed>();
    let live = expect_context::<Live>();
    let clock = expect_context::<Clock>().0;
    // Until the page is hydrated the list is the server's static fragment
    // ([`static_rows`]); then the live, keyed list takes its place.
    let hydrated = expect_context::<Hydrated>().0;
    let scroller = NodeRef::<html::Div>::new();
    let room = feed.room.get_value();

    // The page's own announcements plus the live ones, once each.
    let build = move || {
        let mut announcements = feed.announcements.try_get_value().unwrap_or_default();
        live.announcements.with(|live| {
            for a in live {
                merge(&mut announcements, a.clone());
            }
        });
        let divider = feed.divider.try_get().flatten();
        feed.messages
            .try_with(|m| build_rows(m, &announcements, divider, clock.get()))
            .unwrap_or_default()
    };
    let rows = Memo::new(move |_| build());

    let load_older = move || {
        if feed.loading_older.get_untracked() || !feed.has_older.get_untracked() {
            return;
        }
        let Some(before) = feed.messages.with_untracked(|m| m.first().map(|m| m.seq)) else {
            return;
        };
        feed.loading_older.set(true);
        leptos::task::spawn_local(async move {
            if let Ok(older) = older_messages(feed.room.get_value(), before).await {
                feed.prepend_page(older.messages, &older.epoch, PAGE_SIZE as usize);
            }
            let _ = feed.loading_older.try_set(false);
        });
    };

    let on_scroll = move |_| {
        let Some(el) = scroller.get_untracked() else {
            return;
        };
        // In a column-reverse scroller scrollTop is 0 at the bottom and
        // negative above it.
        let top = el.scroll_top();
        let at_bottom = top > -BOTTOM_SLACK;
        if feed.at_bottom.get_untracked() != at_bottom {
            feed.at_bottom.set(at_bottom);
        }
        if el.scroll_height() - el.client_height() + top < TOP_SLACK {
            load_older();
        }
    };

    let typing = move || {
        let me = live.me.get();
        let names: Vec<String> = feed
            .typing
            .get()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| *n != me.trim())
            .collect();
        match names.as_slice() {
            [] => String::new(),
            [one] => format!("{one} is typing…"),
            [a, b] => format!("{a} and {b} are typing…"),
            _ => "Several people are typing…".to_owned(),
        }
    };

    let jump_label = move || match feed.unread.get() {
        0 => "Jump to latest ↓".to_owned(),
        1 => "1 new message ↓".to_owned(),
        n => format!("{n} new messages ↓"),
    };
    let empty = move || feed.messages.with(Vec::is_empty) && feed.pending.with(Vec::is_empty);
    let start_text = format!("This is the start of #{room}.");

    view! {
        <div class="scroller" node_ref=scroller on:scroll=on_scroll>
            <div class="timeline">
                <div class="history">
                    <Show
                        when=move || feed.has_older.get()
                        fallback=move || view! { <p class="start">{start_text.clone()}</p> }
                    >
                        <button
                            type="button"
                            class="load-older"
                            disabled=move || feed.loading_older.get()
                            on:click=move |_| load_older()
                        >
                            {move || {
                                if feed.loading_older.get() {
                                    "Loading…"
                                } else {
                                    "Load older messages"
                                }
                            }}
                        </button>
                    </Show>
                </div>
                <div
                    class="log"
                    role="log"
                    aria-live="polite"
                    aria-relevant="additions"
                    aria-label=format!("Messages in {room}")
                >
                {move || {
                    if hydrated.get() {
                        view! {
                            <ol class="messages">
                                <Show when=empty>
                                    <li class="empty">{EMPTY}</li>
                                </Show>
                                <For each=move || rows.get() key=Row::key let:row>
                                    {row_view(row)}
                                </For>
                                <For
                                    each=move || feed.pending.get()
                                    key=|p| (p.id, p.error.clone())
                                    let:pending
                                >
                                    <PendingItem pending />
                                </For>
                            </ol>
                        }
                            .into_any()
                    } else {
                        // Server-rendered, and left as it is while the page
                        // hydrates: the rows as one fragment.
                        view! { <ol class="messages" inner_html=first_rows(live, feed)></ol> }
                            .into_any()
                    }
                }}
                </div>

                <p class="typing" aria-live="polite">
                    {typing}
                </p>
            </div>
        </div>
        <button
            type="button"
            class="jump"
            class:visible=move || !feed.at_bottom.get()
            on:click=move |_| browser::scroll_to_latest()
        >
            {jump_label}
        </button>
    }
}

/// What an empty room says.
pub(super) const EMPTY: &str = "No messages yet. Say hello!";

/// One row of the live list.
pub(super) fn row_view(row: Row) -> AnyView {
    match row {
        Row::Day { label, .. } => view! {
            <li class="day">
                <span>{label}</span>
            </li>
        }
        .into_any(),
        Row::Divider => view! {
            <li class="divider">
                <span>"New messages"</span>
            </li>
        }
        .into_any(),
        Row::Message { message, grouped } => view! { <MessageItem message grouped /> }.into_any(),
    }
}

/// The rows as the server sends them ([`static_rows`]); a hole when the
/// page's frame is being rendered ([`super::page_frame`]). In the browser the
/// fragment is already in the page, so there is nothing to build.
#[cfg(feature = "ssr")]
fn first_rows(live: Live, feed: RoomFeed) -> String {
    if let Some(template) = crate::api::frame_template() {
        return template.rows_hole();
    }
    untrack(|| {
        let author = live.author.get();
        let viewer = super::static_rows::Viewer {
            author: author.as_deref(),
            moderator: live.moderator.get(),
        };
        let mut html = String::new();
        feed.messages.with(|messages| {
            let announcements = feed.announcements.get_value();
            super::static_rows::page(&mut html, messages, &announcements, &viewer);
        });
        html
    })
}

#[cfg(not(feature = "ssr"))]
fn first_rows(_: Live, _: RoomFeed) -> String {
    String::new()
}
