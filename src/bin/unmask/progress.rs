//! The training loops' progress: an `indicatif` bar on a terminal, a line every
//! [`LOG_EVERY`] steps in a log.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Steps between progress lines when stderr is not a terminal.
pub const LOG_EVERY: usize = 10;

/// A run's progress from step `done` to `total`.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
}

impl Progress {
    /// A bar on stderr when it is a terminal.
    pub fn new(done: usize, total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            // The template is a constant: it parses, or the bar keeps indicatif's default.
            if let Ok(style) = ProgressStyle::with_template(
                "step {pos}/{len} [{bar:24}] {msg} {per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("#>."));
            }
            bar.set_position(done as u64);
            bar.reset_eta();
            bar
        });
        Self { bar, total }
    }

    /// Step `step` is done; `message` says how it went.
    pub fn step(&self, step: usize, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(step as u64);
                bar.set_message(message.to_owned());
            }
            None if step.is_multiple_of(LOG_EVERY) || step == self.total => {
                eprintln!("step {step}/{} {message}", self.total);
            }
            None => {}
        }
    }

    /// A line above the bar (validations, the time limit).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Leaves the bar where it ended.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

/// When a run given `--time-limit-minutes` stops.
pub fn deadline(minutes: Option<f64>) -> Option<Instant> {
    minutes.map(|m| Instant::now() + Duration::from_secs_f64(m.max(0.0) * 60.0))
}

/// Refuses a step whose loss is not a number: the run stops with what to do, and the last
/// checkpoint (step `saved_at`) stays as it was.
pub fn check_loss(loss: f64, step: usize, saved_at: usize) -> Result<(), String> {
    if loss.is_finite() {
        return Ok(());
    }
    Err(format!(
        "the loss became {loss} at step {step}: lower --lr or --grad-clip and start a new run (the last checkpoint is step {saved_at})"
    ))
}
