//! Who is in the room now: a count, and the names in a disclosure (Escape
//! closes it). Shown once the live connection reports it.

use leptos::{ev, html, prelude::*};

use crate::state::RoomFeed;

#[component]
pub fn PresenceBar() -> impl IntoView {
    let feed = expect_context::<RoomFeed>();
    let details = NodeRef::<html::Details>::new();
    let count = move || feed.presence.with(|(_, c)| *c);
    let summary = move || match count() {
        1 => "1 here".to_owned(),
        n => format!("{n} here"),
    };
    let close_on_escape = move |e: ev::KeyboardEvent| {
        if e.key() == "Escape" {
            if let Some(d) = details.get_untracked() {
                d.set_open(false);
            }
        }
    };
    view! {
        <Show when=move || feed.ready.get()>
            <details class="presence" node_ref=details on:keydown=close_on_escape>
                <summary aria-label=move || format!("{}: show who", summary())>
                    <span aria-hidden="true">"● "</span>
                    {summary}
                </summary>
                <ul class="people" aria-label="People here">
                    <For
                        each=move || feed.presence.with(|(names, _)| names.clone())
                        key=|n| n.clone()
                        let:name
                    >
                        <li>{name}</li>
                    </For>
                    <Show when=move || {
                        feed.presence.with(|(names, c)| *c as usize > names.len())
                    }>
                        <li class="muted">
                            {move || {
                                let n = feed.presence.with(|(names, c)| *c as usize - names.len());
                                if n == 1 { "and 1 guest".to_owned() } else { format!("and {n} guests") }
                            }}
                        </li>
                    </Show>
                </ul>
            </details>
        </Show>
    }
}
