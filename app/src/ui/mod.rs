//! Components, one per file; pages live in `pages/`.

mod chat_state;
mod composer;
mod conn_status;
mod message_item;
pub mod pages;

pub use chat_state::{ChatState, ConnState, Pending};

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Meta, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

/// The HTML document around the app (server side only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/chat.css" />
        <Title text="Chat" />
        <Meta name="color-scheme" content="light dark" />
        <Meta name="description" content="A small real-time chat" />
        <Router>
            <Routes fallback=pages::NotFound>
                <Route path=path!("/") view=pages::ChatPage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}
