//! Components, one per file; pages live in `pages/`.

mod composer;
mod conn_status;
mod datefmt;
#[cfg(feature = "ssr")]
mod head;
mod message_actions;
mod message_item;
mod message_list;
#[cfg(feature = "ssr")]
pub mod page_frame;
pub mod pages;
mod presence_bar;
mod room_list;
#[cfg(feature = "ssr")]
mod static_rows;
pub mod text;
pub mod timeline;
mod title;

use std::{collections::HashMap, time::Duration};

use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

use crate::{browser, state::Live};
use composer::Hydrated;
use message_item::Clock;
use room_list::{MenuOpen, RoomList, Seen};

/// The HTML document around the app (server side only).
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    crate::api::http::set_page_csp();
    crate::api::note_frame_nonce();
    let title = title::for_path(&crate::api::http::request_path());
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta
                    name="viewport"
                    content="width=device-width, initial-scale=1, viewport-fit=cover"
                />
                <meta name="color-scheme" content="light dark" />
                <meta name="description" content="A small real-time chat" />
                <title>{title}</title>
                <AutoReload options=options.clone() />
                <head::AssetTags options />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    let live = Live::new(String::new());
    let clock = Clock(RwSignal::new(None));
    let hydrated = RwSignal::new(false);
    let seen = Seen(RwSignal::new(HashMap::new()));
    let menu_open = RwSignal::new(false);
    provide_context(MenuOpen(menu_open));
    provide_context(live);
    provide_context(clock);
    provide_context(Hydrated(hydrated));
    provide_context(seen);

    let escape = window_event_listener(leptos::ev::keydown, move |e| {
        if e.key() == "Escape" && menu_open.get_untracked() {
            menu_open.set(false);
        }
    });
    on_cleanup(move || escape.remove());

    // Browser only: one live connection for the whole page.
    Effect::new(move |_| {
        hydrated.set(true);
        clock.0.set(browser::clock());
        // For the page's lifetime; it fails only without a window.
        let _ = set_interval(
            move || clock.0.set(browser::clock()),
            Duration::from_secs(30),
        );
        seen.0.set(browser::load_seen());
        browser::watch_visibility(live.hidden);
        live.connect();
    });

    view! {
        <Router>
            <div class="layout">
                <a
                    class="skip"
                    href="#content"
                    on:click=move |e| {
                        e.prevent_default();
                        browser::focus_composer();
                    }
                >
                    "Skip to the message box"
                </a>
                <RoomList />
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/r/:room") view=pages::RoomPage ssr=SsrMode::Async />
                    <Route path=path!("/moderate") view=pages::ModeratePage />
                </Routes>
            </div>
        </Router>
    }
}
