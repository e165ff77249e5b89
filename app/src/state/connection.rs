//! The page's one live connection: the browser glue keeps a socket open
//! (reconnecting with backoff); this says what to open it with, what to
//! send when it opens (who we are, the room on screen, resuming after the
//! last seq the page holds) and what each frame does.

use futures::channel::mpsc::UnboundedSender;
use leptos::prelude::*;

use super::{ConnState, Live};
use crate::{
    browser::{self, socket::Handler},
    domain::{ClientFrame, ServerFrame, WsQuery, ANNOUNCEMENTS},
};

impl Live {
    /// Opens the page's live connection (browser only; inert on the server).
    pub fn connect(self) {
        browser::socket::run(self);
    }
}

impl Handler for Live {
    fn query(&self) -> WsQuery {
        // The socket's own room is the announcements; the room on screen is
        // subscribed to once it opens.
        WsQuery {
            room: Some(ANNOUNCEMENTS.to_owned()),
            after: Some(self.last_announcement()),
        }
    }

    fn connecting(&self, retry: bool) {
        self.conn.set(if retry {
            ConnState::Reconnecting
        } else {
            ConnState::Connecting
        });
    }

    fn opened(&self, outbox: UnboundedSender<ClientFrame>) {
        let _ = outbox.unbounded_send(ClientFrame::Hello {
            name: self.me.get_untracked(),
        });
        // A stale room is subscribed once reloaded (`Live::reloaded`).
        if let Some((feed, room)) = self.current_room().filter(|(f, _)| !f.is_stale()) {
            let _ = outbox.unbounded_send(ClientFrame::Subscribe {
                room,
                after: Some(feed.last_seq()),
            });
        }
        self.outbox.set_value(Some(outbox));
    }

    fn frame(&self, frame: ServerFrame) {
        self.apply(frame, browser::clock().map(|(now, _)| now));
    }

    fn closed(&self) {
        self.disconnected();
    }
}
