//! Room pages filled into kept frames ([`app::ui::page_frame`]): a room page
//! request makes the page's reads (the viewer's messages, the room list),
//! and when the room's kept frame was rendered with the same rooms listed
//! in the same order, the same epoch and history button, the page is that
//! frame with this viewer's rows and data, the room list's data, a form id
//! and a fresh CSP nonce written into its holes. Only otherwise does Leptos
//! render: the page once as a frame (kept), then filled like any other. The
//! rooms are listed by activity, so a frame is rendered again when a post
//! into another room reorders them, not for posts into the room on top.
//!
//! Pages with a query (a plain form's error and draft), other paths, and
//! whatever the frame cannot hold (a room that does not exist, a failed
//! read, a refused frame) are rendered whole, as without frames.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use app::{
    api::{http::PageCsp, read_room, FrameTemplate, Session, SharedBackend, ROOMS_LISTED},
    domain::RoomId,
    ui::page_frame::Frame,
};
use axum::{
    body::Body,
    extract::Request,
    http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode},
    response::Response,
};
use server::sync::lock;
use tower::{Layer, Service, ServiceExt};

/// Frames kept at most (one per room page path); about 30 KB each.
const MAX_FRAMES: usize = 256;
/// The largest page a frame is cut from.
const MAX_PAGE: usize = 4 << 20;

/// Says on each page from a frame whether the frame was kept or rendered
/// for it (`Server-Timing`, which browsers show beside the request).
const KEPT: HeaderValue = HeaderValue::from_static(r#"frame;desc="kept""#);
const RENDERED: HeaderValue = HeaderValue::from_static(r#"frame;desc="rendered""#);

/// Serves room pages from kept frames; wraps the Leptos page routes.
#[derive(Clone)]
pub struct FrameLayer {
    backend: SharedBackend,
    frames: Arc<Mutex<HashMap<String, Arc<Kept>>>>,
}

impl FrameLayer {
    pub fn new(backend: SharedBackend) -> Self {
        Self {
            backend,
            frames: Arc::default(),
        }
    }

    fn kept(&self, path: &str) -> Option<Arc<Kept>> {
        lock(&self.frames).get(path).cloned()
    }

    fn keep(&self, path: String, kept: Arc<Kept>) {
        let mut frames = lock(&self.frames);
        if frames.len() >= MAX_FRAMES && !frames.contains_key(&path) {
            // Any one: a frame is only a render saved.
            if let Some(old) = frames.keys().next().cloned() {
                frames.remove(&old);
            }
        }
        frames.insert(path, kept);
    }
}

impl<S> Layer<S> for FrameLayer {
    type Service = Frames<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Frames {
            inner,
            layer: self.clone(),
        }
    }
}

/// A frame and the headers its render answered with.
struct Kept {
    frame: Frame,
    headers: HeaderMap,
}

/// The service [`FrameLayer`] makes.
#[derive(Clone)]
pub struct Frames<S> {
    inner: S,
    layer: FrameLayer,
}

impl<S> Service<Request> for Frames<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone is the one that is not yet ready.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let Some(room) = room_page(&req) else {
            return Box::pin(ready.oneshot(req));
        };
        let layer = self.layer.clone();
        Box::pin(async move { Ok(page(layer, ready, room, req).await) })
    }
}

/// The room a request asks the page of, if a frame can answer it: a GET of
/// `/r/<room>` exactly, with no query.
fn room_page(req: &Request) -> Option<RoomId> {
    if req.method() != Method::GET || req.uri().query().is_some() {
        return None;
    }
    RoomId::parse(req.uri().path().strip_prefix("/r/")?).ok()
}

async fn page<S>(layer: FrameLayer, render: S, room: RoomId, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let (parts, body) = req.into_parts();
    let backend = &*layer.backend;
    let session = parts.extensions.get::<Session>();
    let reads = tokio::try_join!(
        read_room(backend, room, session),
        backend.rooms(ROOMS_LISTED)
    );
    // The render reads again and answers with the error page.
    let Ok((snapshot, rooms)) = reads else {
        return whole(render, parts, body).await;
    };
    let path = parts.uri.path();
    let (kept, how) = match layer.kept(path) {
        Some(kept) if kept.frame.fits(&snapshot, &rooms) => (kept, KEPT),
        _ => {
            let template = FrameTemplate::new(snapshot.clone(), rooms.clone());
            match cut(render.clone(), &parts, template).await {
                Ok(kept) => {
                    metrics::counter!("page_frames_rendered_total").increment(1);
                    let kept = Arc::new(kept);
                    layer.keep(path.to_owned(), kept.clone());
                    (kept, RENDERED)
                }
                Err(why) => {
                    tracing::warn!(%path, "page rendered whole: {why}");
                    return whole(render, parts, body).await;
                }
            }
        }
    };
    let nonce = leptos::nonce::Nonce::new().to_string();
    if let Some(slot) = parts.extensions.get::<PageCsp>() {
        if let Some(csp) = app::api::http::page_csp(&parts, &nonce) {
            slot.set(csp);
        }
    }
    let mut response = Response::new(Body::from(kept.frame.fill(&snapshot, &rooms, &nonce)));
    *response.headers_mut() = kept.headers.clone();
    response
        .headers_mut()
        .insert(header::HeaderName::from_static("server-timing"), how);
    response
}

/// The page rendered whole, as without frames.
async fn whole<S>(render: S, parts: Parts, body: Body) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    unwrap(render.oneshot(Request::from_parts(parts, body)).await)
}

/// Renders the page from `template` and cuts it into a frame.
async fn cut<S>(render: S, parts: &Parts, template: Arc<FrameTemplate>) -> Result<Kept, String>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send,
{
    let mut parts = parts.clone();
    parts.extensions.insert(template.clone());
    // The frame's own policy slot: the render fills it, nobody reads it.
    parts.extensions.insert(PageCsp::default());
    let response = unwrap(
        render
            .oneshot(Request::from_parts(parts, Body::empty()))
            .await,
    );
    if response.status() != StatusCode::OK {
        return Err(format!("the frame's render answered {}", response.status()));
    }
    let (mut head, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_PAGE)
        .await
        .map_err(|e| format!("the frame's render failed: {e}"))?;
    let html = std::str::from_utf8(&bytes).map_err(|e| format!("the frame is not UTF-8: {e}"))?;
    let frame = Frame::cut(html, &template)?;
    head.headers.remove(header::CONTENT_LENGTH);
    Ok(Kept {
        frame,
        headers: head.headers,
    })
}

fn unwrap(result: Result<Response, Infallible>) -> Response {
    match result {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
