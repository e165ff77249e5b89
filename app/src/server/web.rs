//! Small helpers for server functions that talk to the browser directly:
//! the remembered name cookie, statuses, and plain (no-JS) form posts.

use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use crate::api::ApiError;

pub const NAME_COOKIE: &str = "chat_name";
/// A no-JS error redirect carries the draft back only up to this size, to stay
/// well inside proxies' URL limits; browsers also keep it on "Back".
const MAX_DRAFT_IN_URL: usize = 6000;

/// True for a plain HTML form post (no WASM): the browser asks for HTML.
pub fn is_plain_form() -> bool {
    use_context::<Parts>()
        .and_then(|p| p.headers.get(header::ACCEPT).cloned())
        .and_then(|v| v.to_str().ok().map(|s| s.contains("text/html")))
        .unwrap_or(false)
}

pub fn set_status(error: &ApiError) {
    set_status_code(error.status());
}

pub fn set_status_code(code: u16) {
    if let Some(res) = use_context::<ResponseOptions>() {
        res.set_status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    }
}

/// Remembers the sender's name for a year, so the page can greet them and
/// mark their own messages even when rendered on the server.
pub fn remember_name(name: &str) {
    let value = format!(
        "{NAME_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        utf8_percent_encode(name, NON_ALPHANUMERIC)
    );
    if let (Some(res), Ok(v)) = (
        use_context::<ResponseOptions>(),
        HeaderValue::from_str(&value),
    ) {
        res.append_header(header::SET_COOKIE, v);
    }
}

/// The remembered name from the request's cookies.
pub fn remembered_name() -> Option<String> {
    let parts = use_context::<Parts>()?;
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == NAME_COOKIE)
        .and_then(|(_, v)| {
            percent_decode_str(v)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .filter(|s| !s.trim().is_empty())
}

/// Where a failed no-JS post is sent back to: the page, with the error code
/// and (if it fits) the unsent text, so nothing is lost.
pub fn error_location(page: &str, error: &ApiError, draft: &str) -> String {
    let mut url = format!("{page}?error={}", error.code());
    let encoded = utf8_percent_encode(draft, NON_ALPHANUMERIC).to_string();
    if !draft.is_empty() && encoded.len() <= MAX_DRAFT_IN_URL {
        url.push_str("&draft=");
        url.push_str(&encoded);
    }
    url
}
