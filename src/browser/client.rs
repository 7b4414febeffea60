//! The page's handle on the model worker: spawns `worker.js` as a module worker, holds messages
//! until the worker's wasm has booted, and turns its replies (and crashes) into [`WorkerEvent`]s.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::page::protocol::{FromWorker, ToWorker};

/// The worker script, next to `index.html`.
pub const WORKER_SCRIPT: &str = "./worker.js";

/// What the worker said, or that it died.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A message.
    Message(FromWorker),
    /// The worker failed outside any message (a script that did not load, a trap).
    Crashed(String),
}

struct Shared {
    booted: bool,
    queue: Vec<JsValue>,
}

/// One live worker; dropping it terminates the worker.
pub struct ModelWorker {
    worker: Worker,
    shared: Rc<RefCell<Shared>>,
    _on_message: Closure<dyn Fn(MessageEvent)>,
    _on_error: Closure<dyn Fn(ErrorEvent)>,
}

impl ModelWorker {
    /// Starts a worker; `on_event` runs on the page's thread for every event.
    pub fn spawn(on_event: impl Fn(WorkerEvent) + 'static) -> Result<Self, String> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(WORKER_SCRIPT, &options)
            .map_err(|e| format!("cannot start the model worker: {}", super::js_error(&e)))?;
        let shared = Rc::new(RefCell::new(Shared {
            booted: false,
            queue: Vec::new(),
        }));
        let on_event = Rc::new(on_event);
        let on_message = {
            let shared = shared.clone();
            let worker = worker.clone();
            let on_event = on_event.clone();
            Closure::<dyn Fn(MessageEvent)>::new(move |e: MessageEvent| {
                let text = e.data().as_string().unwrap_or_default();
                match serde_json::from_str::<FromWorker>(&text) {
                    Ok(FromWorker::Booted) => {
                        crate::ui::app::mark_once("unmask:worker-booted");
                        let queued = {
                            let mut s = shared.borrow_mut();
                            s.booted = true;
                            std::mem::take(&mut s.queue)
                        };
                        for m in queued {
                            let _ = worker.post_message(&m);
                        }
                    }
                    Ok(msg) => on_event(WorkerEvent::Message(msg)),
                    Err(err) => on_event(WorkerEvent::Crashed(format!(
                        "unreadable message from the model worker: {err}"
                    ))),
                }
            })
        };
        let on_error = Closure::<dyn Fn(ErrorEvent)>::new(move |e: ErrorEvent| {
            e.prevent_default();
            let msg = e.message();
            on_event(WorkerEvent::Crashed(if msg.is_empty() {
                "the model worker failed to start (worker.js or the wasm module did not load)"
                    .into()
            } else {
                msg
            }));
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            shared,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Sends `msg`, with dropped files beside it when there are any.
    pub fn send(&self, msg: &ToWorker, files: Option<&Array>) {
        let envelope = Object::new();
        let _ = Reflect::set(&envelope, &"json".into(), &msg.to_json().into());
        if let Some(files) = files {
            let _ = Reflect::set(&envelope, &"files".into(), files);
        }
        let envelope: JsValue = envelope.into();
        let mut s = self.shared.borrow_mut();
        if s.booted {
            let _ = self.worker.post_message(&envelope);
        } else {
            s.queue.push(envelope);
        }
    }
}

impl Drop for ModelWorker {
    fn drop(&mut self) {
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.terminate();
    }
}
