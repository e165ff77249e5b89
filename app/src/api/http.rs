//! Small helpers for server functions that talk to the browser directly:
//! the remembered name cookie, statuses, and plain (no-JS) form posts.

use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use cookie::Cookie;
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::ApiError;
use crate::domain::SESSION_COOKIE;

/// Who sent a request: the client's address and whether it reached us over
/// TLS, as the binary's middleware works them out from the connection and
/// (only through the configured number of trusted proxies) from
/// `X-Forwarded-For` / `X-Forwarded-Proto`. A request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub ip: std::net::IpAddr,
    pub https: bool,
}

/// Whether `origin` (an `Origin` header) is this site's own origin (the
/// same scheme and host as the request) or in `allowed` (`*` allows any).
/// Used by the WebSocket's origin check and the cross-site form guard.
pub fn origin_allowed(origin: &str, host: Option<&str>, https: bool, allowed: &[String]) -> bool {
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let scheme = if https { "https" } else { "http" };
    host.is_some_and(|host| {
        origin
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
    })
}

/// The page's Content-Security-Policy, with this render's nonce: scripts
/// only from the nonced hydration script and what it imports
/// (`'strict-dynamic'`), the WASM it compiles (`'wasm-unsafe-eval'`),
/// everything else from this origin (and its WebSocket) only, never framed.
/// Called from the page shell while it renders; the security middleware puts
/// it on the response ([`PageCsp`]).
pub fn set_page_csp() {
    let Some(parts) = use_context::<Parts>() else {
        return;
    };
    let Some(slot) = parts.extensions.get::<PageCsp>() else {
        return;
    };
    let nonce = leptos::nonce::use_nonce()
        .map(|n| n.to_string())
        .unwrap_or_default();
    if let Some(value) = page_csp(&parts, &nonce) {
        slot.set(value);
    }
}

/// The policy for a page requested with `parts` whose scripts carry `nonce`
/// (also used by the binary for pages filled from a kept frame).
pub fn page_csp(parts: &Parts, nonce: &str) -> Option<HeaderValue> {
    let https = parts.extensions.get::<Peer>().is_some_and(|p| p.https);
    let socket = match parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        Some(host) if https => format!(" wss://{host}"),
        Some(host) => format!(" ws://{host}"),
        None => String::new(),
    };
    // `cargo leptos watch` reloads the page over a socket of its own.
    let dev = if std::env::var_os("LEPTOS_WATCH").is_some() {
        " ws: wss:"
    } else {
        ""
    };
    let csp = format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{socket}{dev}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&csp).ok()
}

/// A page's policy on its way from the render to the response: the
/// security middleware puts an empty one in each page request's
/// extensions, the shell fills it ([`set_page_csp`]), and the middleware
/// sets it on the response (responses without one get a deny-all policy).
/// Not leptos_axum's `ResponseOptions`: through those the header was now and
/// then missing (a few pages in a hundred under the browser tests), and the
/// page went out with the deny-all policy and never hydrated.
#[derive(Debug, Clone, Default)]
pub struct PageCsp(std::sync::Arc<std::sync::OnceLock<HeaderValue>>);

impl PageCsp {
    pub fn set(&self, value: HeaderValue) {
        let _ = self.0.set(value);
    }

    pub fn get(&self) -> Option<HeaderValue> {
        self.0.get().cloned()
    }
}

/// A `Set-Cookie` value for the session token: script-proof (`HttpOnly`),
/// same-site, `Secure` over HTTPS, kept a year.
pub fn session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}")
}

/// The path of the page being rendered ("" outside a request).
pub fn request_path() -> String {
    use_context::<Parts>().map_or_else(String::new, |p| p.uri.path().to_owned())
}

/// The current request's [`Peer`], inside a server function.
pub fn peer() -> Option<Peer> {
    use_context::<Parts>()?.extensions.get::<Peer>().copied()
}

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

/// The error's status (and `Retry-After`, when it has one) on the response.
pub fn set_status(error: &ApiError) {
    set_status_code(error.status());
    if let (Some(secs), Some(res)) = (error.retry_after_secs(), use_context::<ResponseOptions>()) {
        res.insert_header(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

pub fn set_status_code(code: u16) {
    if let Some(res) = use_context::<ResponseOptions>() {
        res.set_status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    }
}

/// A cookie's (percent-decoded) value from a request's `Cookie` headers.
pub fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_percent_decoded() {
        let mut h = axum::http::HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; chat_name=%E3%81%82%20b"),
        );
        assert_eq!(cookie_value(&h, "chat_name").as_deref(), Some("あ b"));
        assert_eq!(cookie_value(&h, "missing"), None);
    }

    #[test]
    fn origins_match_on_scheme_and_host() {
        let none: &[String] = &[];
        let host = Some("chat.example");
        assert!(origin_allowed("https://chat.example", host, true, none));
        assert!(!origin_allowed("http://chat.example", host, true, none));
        assert!(!origin_allowed("https://chat.example", host, false, none));
        assert!(!origin_allowed(
            "https://chat.example.evil",
            host,
            true,
            none
        ));
        assert!(!origin_allowed("null", host, true, none));
        assert!(!origin_allowed("https://chat.example", None, true, none));
        assert!(origin_allowed(
            "https://app.example",
            host,
            true,
            &["https://app.example".into()]
        ));
        assert!(origin_allowed(
            "https://x.example",
            host,
            false,
            &["*".into()]
        ));
    }

    #[test]
    fn error_locations_carry_code_and_draft() {
        let url = error_location("/r/lobby", &ApiError::Unavailable, "a b&c");
        assert_eq!(url, "/r/lobby?error=unavailable&draft=a%20b%26c");
        let long = "x".repeat(MAX_DRAFT_IN_URL + 1);
        assert_eq!(
            error_location("/", &ApiError::Unavailable, &long),
            "/?error=unavailable"
        );
    }
}
