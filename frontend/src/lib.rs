//! Concord's browser entry point: hydrates the page the server rendered, attaching the
//! reactive UI from `concord-app` to it.

// Hydration code for `concord-app`'s deep view types is instantiated here; see the same limit
// in `app/src/lib.rs`.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(concord_app::App);
}
