//! Who the caller is, for every request: their session (a request
//! extension, `app::api::Session`) from the session cookie or an
//! `Authorization: Bearer` token; a browser opening a page without one gets
//! a new session and its cookie. With `AUTH=alb-oidc` the identity comes
//! from the load balancer's verified sign-in header instead.

use std::sync::Arc;

use app::api::{
    http::{cookie_value, session_cookie, Peer},
    Session,
};
use app::domain::SESSION_COOKIE;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::Response,
};
use server::{identity::Sessions, TrustSettings};

/// How identities are established.
#[derive(Clone)]
pub enum Auth {
    Sessions,
    AlbOidc(Arc<server::auth::alb::AlbVerifier>),
}

#[derive(Clone)]
pub struct Identify {
    pub auth: Auth,
    pub sessions: Sessions,
    pub trust: Arc<TrustSettings>,
}

/// The middleware.
pub async fn identify(State(ctx): State<Identify>, mut req: Request, next: Next) -> Response {
    let mut new_token = None;
    let session = match &ctx.auth {
        Auth::Sessions => {
            let token =
                bearer(req.headers()).or_else(|| cookie_value(req.headers(), SESSION_COOKIE));
            let known = match token {
                Some(token) => ctx.sessions.resolve(&token).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "session lookup failed");
                    None
                }),
                None => None,
            };
            match known {
                Some(session) => Some(session),
                None if opens_a_page(&req) => match ctx.sessions.create().await {
                    Ok((token, session)) => {
                        new_token = Some(token);
                        Some(session)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "session not created");
                        None
                    }
                },
                None => None,
            }
        }
        Auth::AlbOidc(verifier) => signed_in(&ctx, verifier, req.headers()).await,
    };
    if let Some(session) = session {
        req.extensions_mut().insert(session);
    }
    let https = req.extensions().get::<Peer>().is_some_and(|p| p.https);
    let mut response = next.run(req).await;
    if let Some(token) = new_token {
        if let Ok(value) = HeaderValue::from_str(&session_cookie(&token, https)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A page a browser opens (where a new visitor gets a session).
fn opens_a_page(req: &Request) -> bool {
    let path = req.uri().path();
    req.method() == Method::GET && (path == "/" || path.starts_with("/r/") || path == "/moderate")
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The session of the identity the load balancer signed in, if its header
/// verifies.
async fn signed_in(
    ctx: &Identify,
    verifier: &server::auth::alb::AlbVerifier,
    headers: &HeaderMap,
) -> Option<Session> {
    let data = headers.get("x-amzn-oidc-data")?.to_str().ok()?;
    let identity = match verifier.verify(data).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(error = %e, "refused a sign-in header");
            return None;
        }
    };
    let moderator = ctx
        .trust
        .moderators
        .iter()
        .any(|m| *m == identity.subject || identity.email.as_deref() == Some(m.as_str()));
    match ctx.sessions.for_subject(&identity.subject, moderator).await {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::warn!(error = %e, "signed-in session not loaded");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc123"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc123"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  xyz "),
        );
        assert_eq!(bearer(&h).as_deref(), Some("xyz"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcg=="),
        );
        assert_eq!(bearer(&h), None);
    }
}
