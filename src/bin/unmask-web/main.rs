//! The page's wasm entry. In a window it mounts the Leptos app; in the model worker (the same
//! module, imported by `www/worker.js`) it only initialises, and the worker script calls
//! `workerStart`.

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// The static constructors the linker collects (cubecl registers its IR dialects this way).
    fn __wasm_call_ctors();
}

#[cfg(target_arch = "wasm32")]
fn main() {
    // Running the constructors here, once per instance, tells wasm-ld this module is not
    // "command-style"; otherwise it wraps every export — each event handler, timer and promise
    // callback — in a fresh constructor run, which cost ~0.6 s per call (see the `inventory`
    // crate's notes on WebAssembly constructors).
    // SAFETY: called first, once per instance, before any code that reads what they register.
    unsafe { __wasm_call_ctors() };
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
