//! What the page knows without a browser: its URL state, the messages between the page and its
//! model worker, the state machine of its life with that worker (`session`), where a model comes
//! from, and the replay of a run that the canvas, the plots and
//! the timeline draw. Plain Rust, so the CLI's tests cover it natively; the browser glue lives in
//! `browser` and the Leptos components in `ui` (both wasm-only).

pub mod images;
pub mod protocol;
pub mod replay;
pub mod session;
pub mod source;
pub mod state;

pub use images::ImageReplay;
pub use protocol::{FromWorker, Job, LoadedModel, ToWorker};
pub use replay::{Cell, CellState, Record, Replay};
pub use session::{Command, Lane, ModelStatus, RunStatus, Session, WorkerStatus};
pub use source::ModelSource;
pub use state::{BackendChoice, PageState, Theme};
