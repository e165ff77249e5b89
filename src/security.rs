//! Response headers that keep the pages safe to embed nowhere and to sniff
//! never, and the guard that refuses cross-site form posts. The page's
//! Content-Security-Policy carries a per-render nonce, so the page's shell
//! writes it (`app::api::http::set_page_csp`) into a slot this middleware
//! hands it (`PageCsp`); every other response gets a deny-all policy here.

use std::{collections::HashSet, sync::Arc};

use app::api::{
    http::{origin_allowed, PageCsp, Peer},
    ApiError,
};
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    /// `Strict-Transport-Security: max-age` for HTTPS responses; 0: none.
    pub hsts_max_age_secs: u64,
    /// Other origins trusted like our own (`ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// The form endpoints: the server functions, `/create/`, `/join`.
    pub form_paths: Arc<HashSet<String>>,
}

/// Adds the security headers every response carries.
pub async fn headers(
    State(settings): State<Arc<SecuritySettings>>,
    mut req: Request,
    next: Next,
) -> Response {
    let https = req.extensions().get::<Peer>().is_some_and(|p| p.https);
    // Pages are GETs: only they get a slot for their policy.
    let page_csp = (req.method() == Method::GET).then(|| {
        let slot = PageCsp::default();
        req.extensions_mut().insert(slot.clone());
        slot
    });
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = page_csp
            .and_then(|slot| slot.get())
            .unwrap_or(HeaderValue::from_static(
                "default-src 'none'; frame-ancestors 'none'",
            ));
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    if https && settings.hsts_max_age_secs > 0 {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "max-age={}; includeSubDomains",
            settings.hsts_max_age_secs
        )) {
            h.insert(header::STRICT_TRANSPORT_SECURITY, v);
        }
    }
    response
}

/// Gives the refusals that tower's layers answer on their own (a body over
/// the limit, a request that took too long) the same `{"error"}` body as
/// every other refusal.
pub async fn readable_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let message = match response.status().as_u16() {
        413 => "The request is too large (at most 64 KiB).",
        408 => "The request took too long.",
        _ => return response,
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "error": message }).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Refuses (403, nothing stored) a form endpoint reached from another site.
pub async fn same_site_forms(
    State(settings): State<Arc<SecuritySettings>>,
    req: Request,
    next: Next,
) -> Response {
    let form = matches!(*req.method(), Method::POST | Method::GET)
        && settings.form_paths.contains(req.uri().path());
    if form {
        let https = req.extensions().get::<Peer>().is_some_and(|p| p.https);
        if cross_site(req.headers(), https, &settings.allowed_origins) {
            metrics::counter!("cross_site_requests_refused_total").increment(1);
            return ApiError::Forbidden(
                "This form can only be sent from this site's own pages.".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Whether a browser says this request comes from another site's page.
/// `Sec-Fetch-Site` (every current browser) is decisive; else `Origin`;
/// a request with neither (not a browser, or a very old one) is let
/// through, as it cannot be a cross-site forgery by a modern browser.
fn cross_site(headers: &HeaderMap, https: bool, allowed: &[String]) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let trusted_origin = || origin.is_some_and(|o| origin_allowed(o, host, https, allowed));
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        // Typed in, bookmarked, or our own page.
        Some("same-origin") | Some("none") => false,
        Some(_) => !trusted_origin(),
        None => origin.is_some() && !trusted_origin(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("chat.example"));
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let none: &[String] = &[];
        // Our own pages.
        assert!(!cross_site(
            &headers(&[("sec-fetch-site", "same-origin")]),
            false,
            none
        ));
        assert!(!cross_site(
            &headers(&[("origin", "http://chat.example")]),
            false,
            none
        ));
        // Another site's page.
        assert!(cross_site(
            &headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example")
            ]),
            false,
            none
        ));
        assert!(cross_site(
            &headers(&[("origin", "https://evil.example")]),
            true,
            none
        ));
        assert!(cross_site(&headers(&[("origin", "null")]), true, none));
        // A sibling subdomain is another site for a form.
        assert!(cross_site(
            &headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://x.chat.example")
            ]),
            true,
            none
        ));
        // Unless it is allowed.
        assert!(!cross_site(
            &headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://x.chat.example")
            ]),
            true,
            &["https://x.chat.example".into()]
        ));
        // Not a browser: nothing to forge.
        assert!(!cross_site(&headers(&[]), false, none));
    }
}
