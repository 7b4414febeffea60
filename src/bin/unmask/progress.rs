//! The training loop every `unmask train` run shares ([`train_loop`] over a [`Session`]) and its
//! progress: an `indicatif` bar on a terminal, a line every [`LOG_EVERY`] steps in a log.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::CliResult;

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

/// Where a run stands and how often it validates and saves: what [`train_loop`] counts.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Steps done.
    pub step: usize,
    /// The run's last step.
    pub max_steps: usize,
    /// Steps between validations.
    pub val_every: usize,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Units (tokens, images, sequences) seen over the whole run.
    pub seen: u64,
}

/// One kind of training run as [`train_loop`] drives it: a trainer and its `run.json` state.
pub trait Session {
    /// What one step reports.
    type Report;
    /// Training losses summed since the last validation.
    type Losses: Default;
    /// What the run counts: "tokens", "images", "sequences".
    const UNIT: &'static str;
    /// One step: its report, the steps now done and the units it saw. The state moves with it.
    fn train_step(&mut self) -> CliResult<(Self::Report, usize, u64)>;
    /// The report's loss (a non-finite one stops the run) and its line: "loss … lr … |g| …".
    fn describe(&self, report: &Self::Report) -> (f64, String);
    /// Adds the report's loss to the window's.
    fn add(losses: &mut Self::Losses, report: &Self::Report);
    /// Validates, records the history entry of the `steps` steps since the last one (their
    /// `losses`, at `rate` units a second), and returns the line to print.
    fn validate(
        &mut self,
        report: &Self::Report,
        losses: Self::Losses,
        steps: usize,
        rate: f64,
    ) -> CliResult<String>;
    /// Saves the run, this session having trained `seconds` over `seen` units so far.
    fn save(&self, seconds: f64, seen: u64) -> CliResult<()>;
}

/// A step's progress line: its loss (already written, e.g. `loss 2.1234`), the learning rate and
/// the gradient's norm before clipping.
pub fn step_line(loss: &str, lr: f64, grad_norm: f64) -> String {
    format!("{loss} lr {lr:.2e} |g| {grad_norm:.2}")
}

/// What a run's record keeps of a session on `backend`: its speed in `unit`s a second over
/// `seconds`, and the steps it took when a step sees `per_step` units.
pub fn speed_record(
    backend: &str,
    unit: &str,
    (seen, seconds): (u64, f64),
    per_step: Option<usize>,
) -> String {
    let speed = format!("{backend}: {:.0} {unit}/s", seen as f64 / seconds.max(1e-9));
    match per_step {
        Some(n) => format!("{speed} over {} steps", seen / n.max(1) as u64),
        None => speed,
    }
}

/// The loop every `unmask train` run shares: steps from `plan.step` until `plan.max_steps` or
/// `time_limit_minutes`, a progress line a step, a validation every `val_every` steps and at
/// the end, a checkpoint every `checkpoint_every` steps, at the end and when the time runs out.
pub fn train_loop<S: Session>(
    run: &mut S,
    mut plan: Plan,
    time_limit_minutes: Option<f64>,
) -> CliResult<()> {
    let deadline = deadline(time_limit_minutes);
    let progress = Progress::new(plan.step, plan.max_steps);
    let session = Instant::now();
    let session_start = plan.seen;
    let mut window = (S::Losses::default(), 0usize, Instant::now(), plan.seen);
    let mut saved_at = plan.step;
    let save = |run: &S, seen: u64| run.save(session.elapsed().as_secs_f64(), seen - session_start);
    while plan.step < plan.max_steps {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            progress.println(&format!("time limit reached at step {}", plan.step));
            break;
        }
        let (report, step, units) = run.train_step()?;
        plan.step = step;
        plan.seen += units;
        let (loss, line) = run.describe(&report);
        check_loss(loss, step, saved_at)?;
        S::add(&mut window.0, &report);
        window.1 += 1;
        let rate = (plan.seen - session_start) as f64 / session.elapsed().as_secs_f64().max(1e-9);
        progress.step(step, &format!("{line} {rate:.0} {}/s", S::UNIT));
        let done = step >= plan.max_steps;
        if step % plan.val_every == 0 || done {
            let seconds = window.2.elapsed().as_secs_f64().max(1e-9);
            let rate = (plan.seen - window.3) as f64 / seconds;
            let losses = std::mem::take(&mut window.0);
            progress.println(&run.validate(&report, losses, window.1, rate)?);
            window = (S::Losses::default(), 0, Instant::now(), plan.seen);
        }
        if step % plan.checkpoint_every == 0 || done {
            save(run, plan.seen)?;
            saved_at = step;
        }
    }
    if saved_at != plan.step || plan.step == 0 {
        save(run, plan.seen)?;
    }
    progress.finish();
    Ok(())
}
