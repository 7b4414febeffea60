//! The page's wasm entry. In a window it mounts the Leptos app; in the model worker (the same
//! module, imported by `www/worker.js`) it does nothing, and the worker script calls
//! `workerStart` instead.

#[cfg(target_arch = "wasm32")]
fn main() {
    use wasm_bindgen::JsCast;
    if js_sys::global().dyn_into::<web_sys::Window>().is_ok() {
        unmask::ui::mount();
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "unmask-web is the page's entry and builds for wasm32: run scripts/run.sh (see README)"
    );
    std::process::exit(2);
}
