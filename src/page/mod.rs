//! What the page knows without a browser: its URL state, the messages between the page and its
//! model worker, the state machine of its life with that worker (`session`), where a model comes
//! from, and the replay of a run that the canvas, the plots and
//! the timeline draw. Plain Rust, so the CLI's tests cover it natively; the browser glue lives in
//! `browser` and the Leptos components in `ui` (both wasm-only).

pub mod images;
pub mod memory;
pub mod parts;
pub mod protocol;
pub mod replay;
pub mod session;
pub mod source;
pub mod state;
pub mod unified;
pub mod words;

pub use images::ImageReplay;
pub use protocol::{FromWorker, Job, LoadedModel, ToWorker};
pub use replay::{Cell, CellState, Record, Replay};
pub use session::{Command, Lane, ModelStatus, RunStatus, Session, WorkerStatus};
pub use source::ModelSource;
pub use state::{BackendChoice, PageState, Theme};
pub use words::WordReplay;

/// `n` for the reader in decimal steps of a thousand, one decimal, with the unit of its step:
/// `units` for ones, thousands, millions and billions.
fn decimal(n: u64, units: [&str; 4]) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}{}", n as f64 / 1e9, units[3]),
        n if n >= 1_000_000 => format!("{:.1}{}", n as f64 / 1e6, units[2]),
        n if n >= 1_000 => format!("{:.1}{}", n as f64 / 1e3, units[1]),
        n => format!("{n}{}", units[0]),
    }
}

/// A size for the reader, in decimal units as the `autoload` limit counts them: "1.2 GB",
/// "335.0 MB", "162.6 kB", "348 B".
pub fn human_bytes(n: u64) -> String {
    decimal(n, [" B", " kB", " MB", " GB"])
}

/// A parameter count for the reader: "12.3M params".
pub fn human_count(n: u64) -> String {
    decimal(n, [" params", "k params", "M params", "B params"])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_in_decimal_units() {
        let read: Vec<String> = [0, 999, 1_000, 162_600, 100_000_000, 1_192_000_000]
            .into_iter()
            .map(super::human_bytes)
            .collect();
        assert_eq!(
            read,
            ["0 B", "999 B", "1.0 kB", "162.6 kB", "100.0 MB", "1.2 GB"]
        );
        assert_eq!(super::human_count(2_079_744), "2.1M params");
        assert_eq!(super::human_count(600), "600 params");
    }
}
