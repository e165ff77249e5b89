//! The browser entry point: hydrates the server-rendered page. Nothing else
//! lives here; components and client logic are in the `app` crate.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // The release build aborts on a panic without running any hook
    // (`panic=immediate-abort`), so only a debug build carries one.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
