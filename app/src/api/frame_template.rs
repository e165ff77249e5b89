//! What a room page's frame is rendered from (`ui::page_frame` cuts the
//! rendered page into the frame): the page's data with markers in place of
//! the viewer's, handed to the render on its request.

use std::sync::{Arc, OnceLock};

use leptos::prelude::use_context;
use uuid::Uuid;

use super::{Me, RoomSnapshot};
use crate::domain::RoomSummary;

/// What a frame is rendered from, set on the request (an extension) that
/// renders it: [`super::load_room`] and [`super::list_rooms`] answer with
/// it instead of reading.
#[derive(Debug)]
pub struct FrameTemplate {
    pub snapshot: RoomSnapshot,
    pub rooms: Vec<RoomSummary>,
    /// Random: marks the holes for the viewer's name and the rows.
    token: String,
    /// The render's nonce, noted by the shell ([`note_frame_nonce`]).
    nonce: OnceLock<String>,
}

impl FrameTemplate {
    /// A template for a page showing `snapshot` (the first viewer's) with
    /// `rooms` in its room list: the viewer's identity and form id are
    /// replaced by markers.
    pub fn new(mut snapshot: RoomSnapshot, rooms: Vec<RoomSummary>) -> Arc<Self> {
        let token = Uuid::new_v4().simple().to_string();
        snapshot.me = Me {
            author: None,
            name: Some(format!("name{token}")),
            moderator: false,
            edit_window_secs: snapshot.me.edit_window_secs,
        };
        snapshot.form_id = Uuid::new_v4();
        Arc::new(Self {
            snapshot,
            rooms,
            token,
            nonce: OnceLock::new(),
        })
    }

    /// What the server-rendered list holds in the frame.
    pub fn rows_hole(&self) -> String {
        format!("rows{}", self.token)
    }

    /// The render's nonce, once noted.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.get().map(String::as_str)
    }

    pub fn note_nonce(&self, nonce: &str) {
        let _ = self.nonce.set(nonce.to_owned());
    }
}

/// The template of the page being rendered, if it is a frame.
pub fn frame_template() -> Option<Arc<FrameTemplate>> {
    use_context::<axum::http::request::Parts>()?
        .extensions
        .get::<Arc<FrameTemplate>>()
        .cloned()
}

/// Called by the shell: a frame's render notes its nonce, to be cut out.
pub fn note_frame_nonce() {
    if let (Some(template), Some(nonce)) = (frame_template(), leptos::nonce::use_nonce()) {
        template.note_nonce(&nonce);
    }
}
