//! The live connection's status, shown unobtrusively in the header.

use leptos::prelude::*;

use super::{ChatState, ConnState};

#[component]
pub fn ConnStatus() -> impl IntoView {
    let state = expect_context::<ChatState>();
    let conn = move || state.conn.get();
    let key = move || match conn() {
        ConnState::Idle => "idle",
        ConnState::Connecting => "connecting",
        ConnState::Live => "live",
        ConnState::Reconnecting => "reconnecting",
    };
    let text = move || match conn() {
        ConnState::Idle | ConnState::Live => "",
        ConnState::Connecting => "Connecting…",
        ConnState::Reconnecting => "Connection lost. Reconnecting…",
    };
    view! {
        <p class="conn" data-state=key role="status" aria-live="polite">
            <span class="dot" aria-hidden="true"></span>
            <span class="text">{text}</span>
        </p>
        <noscript>
            <p class="conn">"Live updates need JavaScript: reload to see new messages."</p>
        </noscript>
    }
}
