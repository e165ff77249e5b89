use leptos::prelude::*;

/// 404 page (with a real 404 status when rendered on the server).
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    // After the browser's back or forward from a room, the room's title would stay.
    crate::ui::title::keep(|| crate::ui::title::APP.to_owned());
    view! {
        <main class="not-found">
            <h1>"Page not found"</h1>
            <p><a href="/r/lobby">"Back to the chat"</a></p>
        </main>
    }
}
