//! The document's title. The server writes it into the head from the
//! request's path: the head is sent before the page below it renders, so it
//! cannot wait for the page to say. In the browser each page sets it while
//! it is on screen (a room's with its unread count).

use leptos::prelude::*;

/// Every page but a room's and the moderation page's (a missing page's too).
pub const APP: &str = "Chat";
pub const MODERATION: &str = "Moderation · Chat";

/// A room's title, with the messages that arrived while the tab was hidden.
pub fn room(room: &str, unread: u32) -> String {
    match unread {
        0 => format!("#{room} · {APP}"),
        n => format!("({n}) #{room} · {APP}"),
    }
}

/// The title the page at `path` starts with.
#[cfg(any(feature = "ssr", test))]
pub fn for_path(path: &str) -> String {
    use crate::domain::RoomId;
    if let Ok(id) = RoomId::parse(&super::room_list::room_of(path)) {
        return room(id.as_str(), 0);
    }
    if path.trim_end_matches('/') == "/moderate" {
        return MODERATION.to_owned();
    }
    APP.to_owned()
}

/// Keeps the document's title at `title` while the calling component lives
/// (browser only; the server wrote the first one).
pub fn keep(title: impl Fn() -> String + Send + Sync + 'static) {
    keep_boxed(Box::new(title));
}

/// Boxed, so one effect is compiled for every page instead of one per page.
fn keep_boxed(title: Box<dyn Fn() -> String + Send + Sync>) {
    Effect::new(move |_| document().set_title(&title()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_starts_with_the_title_it_keeps() {
        assert_eq!(for_path("/r/lobby"), "#lobby · Chat");
        assert_eq!(for_path("/r/lobby/"), room("lobby", 0));
        assert_eq!(for_path("/moderate"), MODERATION);
        // No room by that name can exist: the page says so under the app's title.
        assert_eq!(for_path("/r/Not%20a%20room"), "Chat");
        assert_eq!(for_path("/r/"), "Chat");
        assert_eq!(for_path("/no/such/page"), "Chat");
        assert_eq!(room("lobby", 3), "(3) #lobby · Chat");
    }
}
