//! The room page, `/r/:room`: rendered completely on the server with the
//! latest messages, then hydrated for live updates, presence, typing,
//! history on scroll and no-reload posting. When the database is restored
//! underneath an open page, its room reloads here by itself.

use std::time::Duration;

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    api::{has_older, load_room, older_messages, ApiError, RoomSnapshot, PAGE_SIZE},
    browser,
    state::{Live, RoomFeed},
    ui::{
        composer::{Composer, Hydrated},
        conn_status::ConnStatus,
        message_list::MessageList,
        presence_bar::PresenceBar,
        room_list::{MenuOpen, Seen},
    },
};

#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let room = move || params.read().get("room").unwrap_or_default();
    let snapshot = Resource::new(room, load_room);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading messages…"</p> }>
            <ErrorBoundary fallback=|errors| {
                view! {
                    <main class="load-error">
                        <h1>"This room could not be opened"</h1>
                        <ul>
                            {move || {
                                errors
                                    .get()
                                    .into_iter()
                                    .map(|(_, e)| view! { <li>{e.to_string()}</li> })
                                    .collect_view()
                            }}
                        </ul>
                        <p>
                            <a href="/r/lobby">"Go to #lobby"</a>
                        </p>
                    </main>
                }
            }>
                {move || Suspend::new(async move {
                    snapshot.await.map(|snapshot| view! { <ChatRoom snapshot /> })
                })}
            </ErrorBoundary>
        </Suspense>
    }
}

#[component]
fn ChatRoom(snapshot: RoomSnapshot) -> impl IntoView {
    let live = expect_context::<Live>();
    let hydrated = expect_context::<Hydrated>().0;
    let seen = expect_context::<Seen>().0;
    let query = use_query_map();
    let (initial_error, initial_draft) = query.with_untracked(|q| {
        let draft = q.get("draft").unwrap_or_default();
        let error = q
            .get("error")
            .and_then(|code| ApiError::from_code(&code, &draft))
            .map(|e| e.to_string());
        (error, draft)
    });
    let room = snapshot.room.clone();
    let has_older = has_older(&snapshot.messages);
    let feed = RoomFeed::new(
        snapshot.room.clone(),
        snapshot.messages,
        snapshot.announcements,
        has_older,
        snapshot.epoch.clone(),
    );
    provide_context(feed);
    if live.announcements_epoch.with_value(String::is_empty) {
        live.announcements_epoch.set_value(snapshot.epoch);
    }

    let me = snapshot.me;
    if let Some(name) = me.name {
        if live.me.with_untracked(String::is_empty) {
            live.me.set(name);
        }
    }
    // Only on a change: a room page coming on screen must not wake the one
    // leaving (its views read these).
    if live.author.get_untracked() != me.author {
        live.author.set(me.author);
    }
    if live.moderator.get_untracked() != me.moderator {
        live.moderator.set(me.moderator);
    }
    live.edit_window_ms
        .set_value(i64::try_from(me.edit_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX));

    // Browser only (effects do not run on the server).
    Effect::new(move |_| {
        live.enter(feed);
        for a in feed.announcements.get_value() {
            live.add_announcement(a);
        }

        let typing = set_interval(
            move || {
                if let Some((now, _)) = browser::clock() {
                    feed.prune_typing(now);
                }
            },
            Duration::from_secs(1),
        );
        on_cleanup(move || {
            if let Ok(h) = typing {
                h.clear();
            }
        });
    });
    {
        let room = room.clone();
        on_cleanup(move || live.leave(&room));
    }
    // The database was restored: load the room's newest page again.
    Effect::new(move |_| {
        if feed.stale.get() {
            reload(live, feed);
        }
    });
    // Reading the newest message with the tab visible: caught up.
    {
        let room = room.clone();
        Effect::new(move |_| {
            if feed.at_bottom.get() && !live.hidden.get() {
                let last = feed.messages.with(|m| m.last().map_or(0, |m| m.seq));
                feed.caught_up();
                if seen.with_untracked(|s| s.get(&room) != Some(&last)) {
                    seen.update(|s| {
                        s.insert(room.clone(), last);
                    });
                    browser::save_seen(&seen.get_untracked());
                }
            }
        });
    }

    let menu_open = expect_context::<MenuOpen>().0;
    // The server wrote the title from the path; the browser keeps it
    // counting what arrived while the tab was hidden. Read defensively: it
    // may run once more as this page goes.
    {
        let room = room.clone();
        crate::ui::title::keep(move || {
            crate::ui::title::room(&room, feed.unread.try_get().unwrap_or(0))
        });
    }
    view! {
        <main
            class="chat"
            data-room=room.clone()
            data-hydrated=move || hydrated.get().to_string()
            data-ready=move || feed.ready.get().to_string()
            data-epoch=move || feed.epoch.get()
        >
            <header class="topbar">
                <button
                    type="button"
                    class="menu"
                    aria-controls="rooms"
                    aria-expanded=move || menu_open.get().to_string()
                    on:click=move |_| menu_open.update(|o| *o = !*o)
                >
                    "Rooms"
                </button>
                <h1>
                    <span aria-hidden="true">"#"</span>
                    {room.clone()}
                </h1>
                <PresenceBar />
                <ConnStatus />
            </header>
            <MessageList />
            <Composer initial_error initial_draft form_id=snapshot.form_id />
        </main>
    }
}

/// Loads a stale room's newest page and hands it to the page state; tries
/// again every 2 s while the server cannot answer and the page is open.
fn reload(live: Live, feed: RoomFeed) {
    let Some(room) = feed.room.try_get_value() else {
        return;
    };
    leptos::task::spawn_local(async move {
        match older_messages(room, i64::MAX).await {
            Ok(page) => live.reloaded(feed, page.messages, page.epoch, PAGE_SIZE as usize),
            Err(_) => {
                // Without a window there is nothing to reload into.
                let _ = set_timeout(
                    move || {
                        if feed.is_stale() {
                            reload(live, feed);
                        }
                    },
                    Duration::from_secs(2),
                );
            }
        }
    });
}
