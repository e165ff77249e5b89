//! The room page (today: the lobby). Rendered completely on the server with
//! the latest messages, then hydrated: live updates and no-reload posting.

use std::time::Duration;

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{load_room, ApiError, RoomSnapshot},
    browser,
    domain::DEFAULT_ROOM,
    ui::{
        composer::{Composer, Hydrated},
        conn_status::ConnStatus,
        message_item::{Clock, MessageItem, PendingItem},
        ChatState,
    },
};

#[component]
pub fn ChatPage() -> impl IntoView {
    let snapshot = Resource::new(|| (), |_| load_room(DEFAULT_ROOM.to_owned()));
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading messages…"</p> }>
            <ErrorBoundary fallback=|errors| {
                view! {
                    <main class="load-error">
                        <h1>"The chat could not be loaded"</h1>
                        <ul>
                            {move || {
                                errors
                                    .get()
                                    .into_iter()
                                    .map(|(_, e)| view! { <li>{e.to_string()}</li> })
                                    .collect_view()
                            }}
                        </ul>
                        <p><a href="/">"Try again"</a></p>
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
    let state = ChatState::new(
        snapshot.room,
        snapshot.messages,
        snapshot.me.unwrap_or_default(),
    );
    let clock = Clock(RwSignal::new(None));
    let hydrated = RwSignal::new(false);
    provide_context(state);
    provide_context(clock);
    provide_context(Hydrated(hydrated));

    // Effects run only in the browser, once the page is hydrated.
    Effect::new(move |_| {
        hydrated.set(true);
        clock.0.set(browser::clock());
        set_interval(
            move || clock.0.set(browser::clock()),
            Duration::from_secs(30),
        );
        browser::start_live(state);
    });

    let empty = move || state.messages.with(Vec::is_empty) && state.pending.with(Vec::is_empty);
    view! {
        <main class="chat" data-hydrated=move || hydrated.get().to_string()>
            <header class="topbar">
                <h1>
                    <span aria-hidden="true">"#"</span>
                    {room.clone()}
                </h1>
                <ConnStatus />
            </header>
            <div class="scroller">
                <ol
                    class="messages"
                    role="log"
                    aria-live="polite"
                    aria-relevant="additions"
                    aria-label=format!("Messages in {room}")
                >
                    <Show when=empty>
                        <li class="empty">"No messages yet. Say hello!"</li>
                    </Show>
                    <For each=move || state.messages.get() key=|m| m.seq let:message>
                        <MessageItem message />
                    </For>
                    <For
                        each=move || state.pending.get()
                        key=|p| (p.id, p.error.clone())
                        let:pending
                    >
                        <PendingItem pending />
                    </For>
                </ol>
            </div>
            <Composer initial_error initial_draft form_id=snapshot.form_id />
        </main>
    }
}
