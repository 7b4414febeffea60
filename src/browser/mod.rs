//! Browser glue (wasm32 only): the model [`worker`] that runs the samplers off the main thread,
//! its [`client`] on the page side, and [`fetch`] with progress and Cache Storage.

pub mod client;
pub mod fetch;
pub mod worker;

use wasm_bindgen::{JsCast, JsValue};

/// A JS error or value in words.
pub fn js_error(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

/// Milliseconds since the time origin of this window or worker.
pub fn now_ms() -> f64 {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
        .map_or_else(js_sys::Date::now, |p| p.now())
}
