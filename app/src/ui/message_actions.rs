//! What people can do to a message: react (chips under it, and the set in
//! its menu), edit their own (in place; Up in an empty composer starts it,
//! Escape cancels), delete their own (or any, as a moderator) after a
//! confirmation, and, for moderators, ban its author. The menu is a
//! `<details>` that opens on hover, keyboard focus or a long press; without
//! JavaScript it still opens, and "Delete" is a plain form.

use leptos::{ev, html, prelude::*, server_fn::ServerFn};

use crate::{
    api::{ban_author, delete_message, edit_message, react, DeleteMessage},
    domain::{content_chars, Message, REACTIONS},
    state::{Live, RoomFeed},
};

/// The reactions under a message, as toggles with their counts.
#[component]
pub fn Reactions(message: Message) -> impl IntoView {
    let live = expect_context::<Live>();
    let feed = expect_context::<RoomFeed>();
    let id = message.id.to_string();
    (!message.reactions.is_empty()).then(|| {
        let chips = message
            .reactions
            .into_iter()
            .map(|r| {
                let id = id.clone();
                let emoji = r.emoji.clone();
                let people = if r.count == 1 { "person" } else { "people" };
                view! {
                    <li>
                        <button
                            type="button"
                            class="chip"
                            aria-pressed=r.mine.to_string()
                            aria-label=format!("{} {} {people}", r.emoji, r.count)
                            on:click=move |_| toggle(live, feed, id.clone(), emoji.clone())
                        >
                            <span aria-hidden="true">{r.emoji.clone()}</span>
                            <span class="count" aria-hidden="true">{r.count}</span>
                        </button>
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="reactions" aria-label="Reactions">{chips}</ul> }
    })
}

fn toggle(live: Live, feed: RoomFeed, id: String, emoji: String) {
    leptos::task::spawn_local(async move {
        if let Ok(event) = react(id, emoji).await {
            feed.confirm(event, live.author.get_untracked().as_deref(), false);
        }
    });
}

/// What is being confirmed in a message's menu.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Confirm {
    Nothing,
    Delete,
    Ban,
}

/// The message's menu.
#[component]
pub fn Actions(message: Message, own: Signal<bool>) -> impl IntoView {
    let live = expect_context::<Live>();
    let feed = expect_context::<RoomFeed>();
    let menu = NodeRef::<html::Details>::new();
    let confirm = RwSignal::new(Confirm::Nothing);
    // The menu's contents are drawn when it opens (a page shows many
    // messages, few menus); only the Delete form is there from the start,
    // so it works without JavaScript.
    let open = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let remove_recent = RwSignal::new(true);
    let id = message.id.to_string();
    let seq = message.seq;
    let created_ms = message.created_at.timestamp_millis();
    let author = message.author.clone();
    // The page's clock is unknown while server-rendered and hydrating, so
    // both render the same; it is set right after.
    let clock = expect_context::<super::message_item::Clock>().0;
    let hydrated = expect_context::<super::composer::Hydrated>().0;
    // Editing needs the page's script; deleting works without it.
    let may_edit = move || {
        hydrated.try_get().unwrap_or(false)
            && own.try_get().unwrap_or(false)
            && clock.try_get().flatten().is_none_or(|(now, _)| {
                now - created_ms < live.edit_window_ms.try_get_value().unwrap_or(0)
            })
    };
    let moderator = move || live.moderator.try_get().unwrap_or(false);
    let may_delete = move || own.try_get().unwrap_or(false) || moderator();
    let may_ban = {
        let author = author.clone();
        move || moderator() && author.is_some() && !own.try_get().unwrap_or(true)
    };
    // Also called when an answer comes back, when the message (or its
    // page) may be gone: every write is a `try_`.
    let close = move || {
        if let Some(d) = menu.try_get_untracked().flatten() {
            d.set_open(false);
        }
        let _ = confirm.try_set(Confirm::Nothing);
        let _ = error.try_set(None);
    };
    let on_keydown = move |e: ev::KeyboardEvent| {
        if e.key() == "Escape" {
            close();
        }
    };
    let react_buttons = {
        let id = id.clone();
        move || {
            REACTIONS
                .iter()
                .map(|emoji| {
                    let (id, emoji) = (id.clone(), (*emoji).to_owned());
                    let label = format!("React with {emoji}");
                    view! {
                        <button
                            type="button"
                            class="react"
                            aria-label=label
                            on:click=move |_| {
                                toggle(live, feed, id.clone(), emoji.clone());
                                close();
                            }
                        >
                            {emoji.clone()}
                        </button>
                    }
                })
                .collect_view()
        }
    };
    let delete = {
        let id = id.clone();
        move || {
            let id = id.clone();
            leptos::task::spawn_local(async move {
                match delete_message(id, None).await {
                    Ok(event) => {
                        feed.confirm(event, live.author.get_untracked().as_deref(), false);
                        close();
                    }
                    Err(e) => {
                        let _ = error.try_set(Some(e.to_string()));
                    }
                }
            });
        }
    };
    let ban = {
        let author = author.clone().unwrap_or_default();
        move || {
            let author = author.clone();
            let remove = remove_recent.get_untracked();
            leptos::task::spawn_local(async move {
                match ban_author(author, remove).await {
                    Ok(_) => close(),
                    Err(e) => {
                        let _ = error.try_set(Some(e.to_string()));
                    }
                }
            });
        }
    };
    let page = format!("/r/{}", message.room);
    let delete_action = <DeleteMessage as ServerFn>::PATH;
    view! {
        <details
            class="actions"
            node_ref=menu
            on:keydown=on_keydown
            on:toggle=move |_| {
                let _ = open.try_set(menu.try_get_untracked().flatten().is_some_and(|d| d.open()));
            }
        >
            <summary aria-label="Message actions">
                <span aria-hidden="true">"⋯"</span>
            </summary>
            <div class="menu" role="group" aria-label="Message actions">
                <Show when=move || open.try_get().unwrap_or(false)>
                    <div class="react-row">{react_buttons.clone()}</div>
                </Show>
                <Show when=move || open.try_get().unwrap_or(false) && may_edit()>
                    <button
                        type="button"
                        class="edit"
                        on:click=move |_| {
                            feed.editing.set(Some(seq));
                            close();
                        }
                    >
                        "Edit"
                    </button>
                </Show>
                <Show when=may_delete>
                    <form
                        method="post"
                        action=delete_action
                        class="delete"
                        on:submit=move |e: ev::SubmitEvent| {
                            e.prevent_default();
                            confirm.set(Confirm::Delete);
                        }
                    >
                        <input type="hidden" name="id" value=id.clone() />
                        <input type="hidden" name="page" value=page.clone() />
                        <button type="submit">"Delete"</button>
                    </form>
                </Show>
                <Show when=may_ban.clone()>
                    <button type="button" class="ban" on:click=move |_| confirm.set(Confirm::Ban)>
                        "Ban author…"
                    </button>
                </Show>
                <Show when=move || confirm.try_get() == Some(Confirm::Delete)>
                    <div class="confirm" role="alertdialog" aria-label="Delete this message?">
                        <p>"Delete this message for everyone?"</p>
                        <button type="button" class="danger" on:click={
                            let delete = delete.clone();
                            move |_| delete()
                        }>
                            "Delete"
                        </button>
                        <button type="button" on:click=move |_| close()>
                            "Cancel"
                        </button>
                    </div>
                </Show>
                <Show when=move || confirm.try_get() == Some(Confirm::Ban)>
                    <div class="confirm" role="alertdialog" aria-label="Ban this author?">
                        <p>"Ban this author? Their posts are refused and their pages disconnected."</p>
                        <label>
                            <input
                                type="checkbox"
                                prop:checked=move || remove_recent.get()
                                on:change=move |e| remove_recent.set(event_target_checked(&e))
                            />
                            " Also delete their messages of the last 24 hours"
                        </label>
                        <button type="button" class="danger" on:click={
                            let ban = ban.clone();
                            move |_| ban()
                        }>
                            "Ban"
                        </button>
                        <button type="button" on:click=move |_| close()>
                            "Cancel"
                        </button>
                    </div>
                </Show>
                <p class="error" role="alert">{move || error.try_get().flatten()}</p>
            </div>
        </details>
    }
}

/// A message's text, being edited in place.
#[component]
pub fn Editor(message: Message) -> impl IntoView {
    let live = expect_context::<Live>();
    let feed = expect_context::<RoomFeed>();
    let draft = RwSignal::new(message.content.clone());
    let error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    let area = NodeRef::<html::Textarea>::new();
    let id = message.id.to_string();
    // Focus the box, cursor at the end, as it opens.
    Effect::new(move |_| {
        if let Some(area) = area.get() {
            let _ = area.focus();
            let end = area.value().len() as u32;
            let _ = area.set_selection_range(end, end);
        }
    });
    let cancel = move || {
        feed.editing.set(None);
        crate::browser::focus_composer();
    };
    let save = move || {
        if saving.get_untracked() {
            return;
        }
        let content = draft.get_untracked();
        if content_chars(&content) == 0 {
            error.set(Some(
                "Write something, or delete the message instead.".into(),
            ));
            return;
        }
        saving.set(true);
        let id = id.clone();
        leptos::task::spawn_local(async move {
            match edit_message(id, content).await {
                Ok(event) => {
                    feed.confirm(event, live.author.get_untracked().as_deref(), false);
                    let _ = feed.editing.try_set(None);
                    crate::browser::focus_composer();
                }
                Err(e) => {
                    let _ = error.try_set(Some(e.to_string()));
                }
            }
            let _ = saving.try_set(false);
        });
    };
    let on_keydown = {
        let save = save.clone();
        move |e: ev::KeyboardEvent| {
            let composing = e.is_composing() || e.key_code() == 229;
            if e.key() == "Escape" {
                e.prevent_default();
                cancel();
            } else if e.key() == "Enter" && !e.shift_key() && !composing {
                e.prevent_default();
                save();
            }
        }
    };
    view! {
        <div class="editor">
            <label class="visually-hidden" for=format!("edit-{}", message.seq)>
                "Edit message"
            </label>
            <textarea
                id=format!("edit-{}", message.seq)
                node_ref=area
                rows="2"
                prop:value=move || draft.get()
                on:input=move |e| draft.set(event_target_value(&e))
                on:keydown=on_keydown
            ></textarea>
            <div class="editor-actions">
                <span class="hint">"Enter to save · Escape to cancel"</span>
                <button type="button" on:click=move |_| cancel()>
                    "Cancel"
                </button>
                <button type="button" class="save" disabled=move || saving.get() on:click={
                    let save = save.clone();
                    move |_| save()
                }>
                    "Save"
                </button>
            </div>
            <p class="error" role="alert">{move || error.get()}</p>
        </div>
    }
}
