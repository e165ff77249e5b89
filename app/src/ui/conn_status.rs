//! The live connection's status, shown unobtrusively in the header.

use leptos::prelude::*;

use crate::state::{ConnState, Live, RoomFeed};

const NO_SCRIPT: &str =
    r#"<p class="conn">Live updates need JavaScript: reload to see new messages.</p>"#;

#[component]
pub fn ConnStatus() -> impl IntoView {
    let live = expect_context::<Live>();
    let feed = expect_context::<RoomFeed>();
    // "live" once the socket is open and this room's backlog has arrived.
    let state = move || match live.conn.get() {
        ConnState::Live if !feed.ready.get() => ConnState::Connecting,
        s => s,
    };
    let key = move || match state() {
        ConnState::Idle => "idle",
        ConnState::Connecting => "connecting",
        ConnState::Live => "live",
        ConnState::Reconnecting => "reconnecting",
    };
    let text = move || match state() {
        ConnState::Idle | ConnState::Live => "",
        ConnState::Connecting => "Connecting…",
        ConnState::Reconnecting => "Connection lost. Reconnecting…",
    };
    view! {
        <p class="conn" data-state=key role="status">
            <span class="dot" aria-hidden="true"></span>
            <span class="text">{text}</span>
        </p>
        // As markup, not elements: a browser running scripts reads a
        // `<noscript>`'s content as text, and a page built in the browser
        // (after navigating from another route) must hold the same.
        <noscript inner_html=NO_SCRIPT></noscript>
    }
}
