//! The message form. With WASM it sends through the `post_message` server
//! function without a reload (pending, then confirmed; on failure the text
//! stays with a Retry) and tells the room that you are typing. Without WASM
//! the very same form is a plain HTML form posting to that server function.

use leptos::{ev, html, prelude::*, server_fn::ServerFn};
use uuid::Uuid;

use crate::{
    api::{post_message, set_name, ApiError, PostMessage},
    browser,
    domain::{
        content_chars, ClientFrame, MessageBody, MessageKind, SenderName, MAX_CONTENT_CHARS,
        MAX_SENDER_CHARS, TYPING_SEND_EVERY_MS,
    },
    state::{Live, Pending, RoomFeed},
};

/// Set once the page has hydrated (WASM running).
#[derive(Clone, Copy)]
pub struct Hydrated(pub RwSignal<bool>);

#[component]
pub fn Composer(
    /// An error to show from a failed no-JS post.
    initial_error: Option<String>,
    /// The unsent text of a failed no-JS post.
    initial_draft: String,
    /// Idempotency key for the no-JS form.
    form_id: Uuid,
) -> impl IntoView {
    let live = expect_context::<Live>();
    let feed = expect_context::<RoomFeed>();
    let hydrated = expect_context::<Hydrated>().0;
    let draft = RwSignal::new(initial_draft.clone());
    let error = RwSignal::new(initial_error);
    let textarea = NodeRef::<html::Textarea>::new();
    let last_typing = StoredValue::new(0i64);
    let count = move || draft.with(|d| content_chars(d));
    let over = move || count() > MAX_CONTENT_CHARS;
    let room = feed.room.get_value();

    let send = move || {
        let sender = live.me.get_untracked();
        let content = draft.get_untracked();
        let checked =
            SenderName::parse(&sender).and_then(|s| MessageBody::parse(&content).map(|c| (s, c)));
        match checked {
            Err(e) => error.set(Some(e.to_string())),
            Ok((sender, content)) => {
                error.set(None);
                let pending = Pending {
                    id: browser::new_uuid(),
                    sender: sender.as_str().to_owned(),
                    content: content.as_str().to_owned(),
                    error: None,
                };
                feed.pending.update(|p| p.push(pending.clone()));
                feed.divider.set(None);
                draft.set(String::new());
                browser::scroll_to_latest();
                submit(live, feed, pending);
            }
        }
        if let Some(t) = textarea.get_untracked() {
            let _ = t.focus();
        }
    };

    let on_keydown = move |ev: ev::KeyboardEvent| {
        // 229 / isComposing: the key belongs to an IME composition (e.g.
        // confirming a Japanese conversion); it must not send.
        let composing = ev.is_composing() || ev.key_code() == 229;
        if ev.key() == "Enter" && !ev.shift_key() && !composing {
            ev.prevent_default();
            send();
        }
        // Up in an empty box edits your last message, as in most chat apps.
        if ev.key() == "ArrowUp" && !composing && draft.with_untracked(String::is_empty) {
            if let Some(seq) = last_editable(live, feed) {
                ev.prevent_default();
                feed.editing.set(Some(seq));
            }
        }
    };

    let on_input = move |ev: ev::Event| {
        draft.set(event_target_value(&ev));
        let now = browser::clock().map_or(0, |(now, _)| now);
        if now - last_typing.get_value() >= TYPING_SEND_EVERY_MS
            && !live.me.with_untracked(|m| m.trim().is_empty())
        {
            last_typing.set_value(now);
            live.send(ClientFrame::Typing {
                room: feed.room.get_value(),
            });
        }
    };

    let action = <PostMessage as ServerFn>::PATH;
    view! {
        <form
            class="composer"
            method="post"
            action=action
            on:submit=move |e: ev::SubmitEvent| {
                e.prevent_default();
                send();
            }
        >
            <input type="hidden" name="room" value=room.clone() />
            <input type="hidden" name="id" value=form_id.to_string() />
            <div class="name-row">
                <label for="sender">"Name"</label>
                <input
                    id="sender"
                    name="sender"
                    type="text"
                    required
                    maxlength=MAX_SENDER_CHARS.to_string()
                    autocomplete="nickname"
                    placeholder="Your name"
                    value=live.me.get_untracked()
                    prop:value=move || live.me.get()
                    on:input=move |ev| live.me.set(event_target_value(&ev))
                    on:change=move |_| rename(live, error)
                />
            </div>
            <div class="input-row">
                <label for="content" class="visually-hidden">
                    "Message"
                </label>
                <textarea
                    id="content"
                    name="content"
                    node_ref=textarea
                    required
                    rows="1"
                    placeholder=format!("Message #{room}")
                    // Without WASM the browser enforces the limit (UTF-16 units,
                    // so never more than the server's 2000 characters).
                    maxlength=move || (!hydrated.get()).then(|| MAX_CONTENT_CHARS.to_string())
                    aria-describedby="composer-hint composer-error"
                    aria-invalid=move || over().to_string()
                    prop:value=move || draft.get()
                    on:input=on_input
                    on:keydown=on_keydown
                >
                    {initial_draft}
                </textarea>
                <button type="submit" class="send" disabled=over>
                    "Send"
                </button>
            </div>
            <p class="hint" id="composer-hint">
                <span class="counter" class:over=over>
                    {count}
                    " / "
                    {MAX_CONTENT_CHARS}
                </span>
                <span class="keys">" · Enter to send, Shift+Enter for a new line"</span>
            </p>
            <p class="error" id="composer-error" role="alert">
                {move || error.get()}
            </p>
        </form>
    }
}

/// Sends a pending message through the server function.
fn submit(live: Live, feed: RoomFeed, pending: Pending) {
    leptos::task::spawn_local(async move {
        let result = post_message(
            feed.room.get_value(),
            pending.sender.clone(),
            pending.content.clone(),
            Some(pending.id.to_string()),
        )
        .await;
        match result {
            Ok(message) => feed.confirm(message, live.author.get_untracked().as_deref(), false),
            // Too fast: say so, keep the text, and send it again by itself
            // once the server's wait is over (the same id: stored once).
            Err(ApiError::RateLimited { retry_after_ms }) => {
                let secs = retry_after_ms.div_ceil(1000).max(1);
                feed.fail(pending.id, format!("Slow down: sending again in {secs} s…"));
                let id = pending.id;
                let _ = set_timeout(
                    move || retry(live, feed, id),
                    std::time::Duration::from_millis(retry_after_ms.max(100)),
                );
            }
            Err(e) => feed.fail(pending.id, e.to_string()),
        }
    });
}

/// Takes the name in the name field for this browser's session; someone
/// else's name is refused with a message, and the field goes back.
fn rename(live: Live, error: RwSignal<Option<String>>) {
    let name = live.me.get_untracked();
    if name.trim().is_empty() {
        return;
    }
    leptos::task::spawn_local(async move {
        // The page may be gone by the time the answer comes.
        match set_name(name).await {
            Ok(me) => {
                let _ = error.try_set(None);
                if let Some(name) = me.name {
                    live.send(ClientFrame::Hello { name });
                }
            }
            Err(e) => {
                let _ = error.try_set(Some(e.to_string()));
            }
        }
    });
}

/// Your newest message that may still be edited (not deleted, within the
/// edit window as far as this page can tell; the server has the last word).
fn last_editable(live: Live, feed: RoomFeed) -> Option<i64> {
    let me = live.author.get_untracked()?;
    feed.messages.with_untracked(|list| {
        list.iter()
            .rev()
            .find(|m| m.kind == MessageKind::User && !m.deleted && m.author.as_deref() == Some(&me))
            .map(|m| m.seq)
    })
}

/// Sends a failed message again with the same id (the server stores it once).
/// Does nothing if the room's page is gone or the message was sent meanwhile.
pub fn retry(live: Live, feed: RoomFeed, id: Uuid) {
    let mut again = None;
    let _ = feed.pending.try_update(|list| {
        if let Some(p) = list.iter_mut().find(|p| p.id == id) {
            p.error = None;
            again = Some(p.clone());
        }
    });
    if let Some(p) = again {
        submit(live, feed, p);
    }
}
