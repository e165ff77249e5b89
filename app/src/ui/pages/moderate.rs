//! `/moderate`: a session becomes a moderator by entering the moderator
//! token (the `MODERATOR_TOKEN` setting). Works as a plain form too.

use leptos::{ev, prelude::*, server_fn::ServerFn};
use leptos_router::hooks::use_query_map;

use crate::{
    api::{become_moderator, BecomeModerator},
    state::Live,
};

#[component]
pub fn ModeratePage() -> impl IntoView {
    let live = expect_context::<Live>();
    let query = use_query_map();
    let (ok, refused) = query.with_untracked(|q| (q.get("ok").is_some(), q.get("error").is_some()));
    let status = RwSignal::new(if ok {
        Some(
            "You are now a moderator: messages show Delete and Ban author in their menu."
                .to_owned(),
        )
    } else {
        None
    });
    let error = RwSignal::new(refused.then(|| "That is not the moderator token.".to_owned()));
    let token = RwSignal::new(String::new());
    let on_submit = move |e: ev::SubmitEvent| {
        e.prevent_default();
        let value = token.get_untracked();
        leptos::task::spawn_local(async move {
            match become_moderator(value).await {
                Ok(me) => {
                    live.moderator.set(me.moderator);
                    error.set(None);
                    status.set(Some(
                        "You are now a moderator: messages show Delete and Ban author in their menu."
                            .into(),
                    ));
                }
                Err(e) => {
                    status.set(None);
                    error.set(Some(e.to_string()));
                }
            }
        });
    };
    let action = <BecomeModerator as ServerFn>::PATH;
    crate::ui::title::keep(|| crate::ui::title::MODERATION.to_owned());
    view! {
        <main class="moderate">
            <h1>"Moderation"</h1>
            <p>
                "Moderators can delete any message and ban an author. Enter the moderator token to become one in this browser."
            </p>
            <form method="post" action=action on:submit=on_submit>
                <label for="moderator-token">"Moderator token"</label>
                <input
                    id="moderator-token"
                    name="token"
                    type="password"
                    required
                    autocomplete="off"
                    prop:value=move || token.get()
                    on:input=move |e| token.set(event_target_value(&e))
                />
                <button type="submit">"Become a moderator"</button>
            </form>
            <p class="status" role="status">{move || status.get()}</p>
            <p class="error" role="alert">{move || error.get()}</p>
            <p>
                <a href="/r/lobby">"Back to the chat"</a>
            </p>
        </main>
    }
}
