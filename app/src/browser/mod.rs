//! Thin glue to browser APIs (WebSocket, storage, clock, crypto, focus and
//! scrolling). Real only in the `hydrate` build; on the server these are
//! inert so the layers above compile in both builds without sprinkling
//! `cfg`s. Imports only `domain`: what the page does with a frame is the
//! `state` layer's business, handed in as a [`Handler`].

use std::collections::HashMap;

use futures::channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use uuid::Uuid;

use crate::domain::{ClientFrame, ServerFrame, WsQuery};

/// What the page does with its live connection.
pub trait Handler: 'static {
    /// The `/ws` query to open with (asked again at every attempt).
    fn query(&self) -> WsQuery;
    /// An attempt starts (`retry`: after a failure).
    fn connecting(&self, retry: bool);
    /// The socket is open; frames sent into `outbox` go out on it.
    fn opened(&self, outbox: UnboundedSender<ClientFrame>);
    /// A frame arrived.
    fn frame(&self, frame: ServerFrame);
    /// The socket is gone (a new attempt follows after a backoff).
    fn closed(&self);
}

pub mod socket;

/// Scrolls the message list to the newest message.
pub fn scroll_to_latest() {
    #[cfg(feature = "hydrate")]
    if let Some(el) = document().query_selector(".scroller").ok().flatten() {
        // column-reverse: 0 is the bottom.
        el.set_scroll_top(0);
    }
}

/// Moves keyboard focus to the message box.
pub fn focus_composer() {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(el) = document()
            .get_element_by_id("content")
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    }
}

/// Opens the `details.actions` menu inside the element an event is on (a
/// long press on a message); whether there was one.
pub fn open_menu_within(event: &leptos::ev::MouseEvent) -> bool {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let menu = event
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .and_then(|el| el.query_selector("details.actions").ok().flatten());
        if let Some(menu) = menu {
            return menu.set_attribute("open", "").is_ok();
        }
        false
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = event;
        false
    }
}

/// Keeps `hidden` in step with the tab's visibility.
pub fn watch_visibility(hidden: RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    {
        hidden.set(document().hidden());
        let handle = window_event_listener_untyped("visibilitychange", move |_| {
            hidden.set(document().hidden());
        });
        // The page lives as long as the listener.
        std::mem::forget(handle);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = hidden;
}

const SEEN_KEY: &str = "chat.seen";

/// The last seq seen per room in this browser.
pub fn load_seen() -> HashMap<String, i64> {
    #[cfg(feature = "hydrate")]
    {
        let stored = window()
            .local_storage()
            .ok()
            .flatten()
            .and_then(|s| s.get_item(SEEN_KEY).ok().flatten());
        if let Some(json) = stored {
            return serde_json::from_str(&json).unwrap_or_default();
        }
    }
    HashMap::new()
}

pub fn save_seen(seen: &HashMap<String, i64>) {
    #[cfg(feature = "hydrate")]
    if let Some(storage) = window().local_storage().ok().flatten() {
        if let Ok(json) = serde_json::to_string(seen) {
            let _ = storage.set_item(SEEN_KEY, &json);
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (seen, SEEN_KEY);
}

/// A random (v4) UUID from `crypto.getRandomValues`, which unlike
/// `crypto.randomUUID` also works on plain-HTTP origins.
pub fn new_uuid() -> Uuid {
    #[cfg(feature = "hydrate")]
    {
        let mut bytes = [0u8; 16];
        let filled = web_sys::window()
            .and_then(|w| w.crypto().ok())
            .and_then(|c| c.get_random_values_with_u8_array(&mut bytes).ok())
            .is_some();
        if !filled {
            for b in bytes.iter_mut() {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
    #[cfg(not(feature = "hydrate"))]
    Uuid::nil()
}

/// The browser's clock (ms since the epoch) and its UTC offset in minutes
/// (positive east of Greenwich) at that moment.
pub fn clock() -> Option<(i64, i32)> {
    #[cfg(feature = "hydrate")]
    {
        let now = js_sys::Date::new_0();
        // getTimezoneOffset is minutes *behind* UTC.
        Some((now.get_time() as i64, -(now.get_timezone_offset() as i32)))
    }
    #[cfg(not(feature = "hydrate"))]
    None
}
