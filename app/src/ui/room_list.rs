//! The room list: rooms with recent activity (newest first) with this
//! browser's unread counts, and a form to join or create a room by name.
//! A drawer on phones (Escape closes it).

use std::collections::HashMap;

use leptos::{ev, prelude::*};
use leptos_router::{
    components::A,
    hooks::{use_location, use_navigate},
};

use crate::{
    api::list_rooms,
    domain::{RoomId, RoomSummary, DEFAULT_ROOM},
};

/// Last seq seen per room in this browser (kept in localStorage).
#[derive(Clone, Copy)]
pub struct Seen(pub RwSignal<HashMap<String, i64>>);

/// Whether the room list drawer is open (phones).
#[derive(Clone, Copy)]
pub struct MenuOpen(pub RwSignal<bool>);

/// How often the room list refreshes itself.
const REFRESH_MS: u64 = 15_000;

/// The room in a `/r/:room` path (empty for any other path).
pub(super) fn room_of(path: &str) -> String {
    path.strip_prefix("/r/")
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned()
}

/// Lives beside the routes (not inside a room page), so it stays put while
/// the reader switches rooms.
#[component]
pub fn RoomList() -> impl IntoView {
    let seen = expect_context::<Seen>().0;
    let open = expect_context::<MenuOpen>().0;
    let location = use_location();
    let current = Memo::new(move |_| room_of(&location.pathname.get()));
    let refresh = RwSignal::new(0u32);
    let rooms = Resource::new(move || (refresh.get(), current.get()), |_| list_rooms());

    Effect::new(move |_| {
        let handle = set_interval(
            move || refresh.update(|n| *n += 1),
            std::time::Duration::from_millis(REFRESH_MS),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });

    let join_error = RwSignal::new(None::<String>);
    let join_name = RwSignal::new(String::new());
    let navigate = use_navigate();
    let on_join = move |e: ev::SubmitEvent| {
        e.prevent_default();
        match RoomId::parse_typed(&join_name.get_untracked()) {
            Ok(room) => {
                join_error.set(None);
                join_name.set(String::new());
                open.set(false);
                navigate(&format!("/r/{room}"), Default::default());
            }
            Err(e) => join_error.set(Some(e.to_string())),
        }
    };

    let list = move |rooms: Vec<RoomSummary>| {
        let here = current.get_untracked();
        let mut rooms = rooms;

        for must in [DEFAULT_ROOM, here.as_str()] {
            if !must.is_empty() && !rooms.iter().any(|r| r.name == must) {
                rooms.push(RoomSummary {
                    name: must.to_owned(),
                    last_seq: 0,
                    last_active_at: chrono::DateTime::UNIX_EPOCH,
                });
            }
        }
        rooms.dedup_by(|a, b| a.name == b.name);
        view! {
            <ul class="room-links">
                {rooms
                    .into_iter()
                    .map(|r| {
                        // <A> marks the current room with aria-current itself.
                        let name = r.name.clone();
                        let last_seq = r.last_seq;
                        // Read with `try_get`: the link's attribute effects
                        // can outlive this list's owner for a moment when the
                        // list is replaced (seen with `erase_components`), and
                        // reading a disposed signal panics.
                        let unread = Signal::derive(move || {
                            if current.with(|c| *c == name) {
                                return 0;
                            }
                            seen.with(|s| s.get(&name).map_or(0, |last| (last_seq - last).max(0)))
                        });

                        let label = {
                            let name = r.name.clone();
                            move || match unread.try_get().unwrap_or(0) {
                                0 => format!("#{name}"),
                                n => format!("#{name}, {n} unread"),
                            }
                        };
                        view! {
                            <li>
                                <A
                                    href=format!("/r/{}", r.name)
                                    attr:aria-label=label
                                    on:click=move |_| open.set(false)
                                >
                                    <span class="hash" aria-hidden="true">
                                        "#"
                                    </span>
                                    <span class="name">{r.name.clone()}</span>
                                    <Show when=move || { unread.try_get().unwrap_or(0) > 0 }>
                                        <span class="badge" aria-hidden="true">
                                            {move || unread.try_get().unwrap_or(0).min(99)}
                                        </span>
                                    </Show>
                                </A>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        }
    };

    view! {
        <nav id="rooms" class="rooms" class:open=open aria-label="Rooms">
            <h2>"Rooms"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading rooms…"</p> }>
                {move || {
                    Suspend::new(async move {
                        rooms.await.map(list)
                    })
                }}
            </Transition>
            <form class="join" action="/join" method="get" on:submit=on_join>
                <label for="join-room">"Join or create a room"</label>
                <div class="join-row">
                    <input
                        id="join-room"
                        name="room"
                        type="text"
                        required
                        maxlength="32"
                        autocomplete="off"
                        placeholder="room-name"
                        aria-describedby="join-hint join-error"
                        prop:value=move || join_name.get()
                        on:input=move |ev| join_name.set(event_target_value(&ev))
                    />
                    <button type="submit">"Go"</button>
                </div>
                <p class="hint" id="join-hint">
                    "a-z, 0-9, - and _"
                </p>
                <p class="error" id="join-error" role="alert">
                    {move || join_error.get()}
                </p>
            </form>
        </nav>
    }
}
