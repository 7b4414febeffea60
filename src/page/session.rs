//! The page's life with its model worker, as a state machine in plain Rust: which backend runs,
//! which model is loaded or loading, the runs shown (one, or two in a race), and every reaction
//! to what the worker says — stale loads ignored, a crash replacing the worker, WebGPU failing
//! under a run (a lost device, non-finite numbers) rerunning it on the CPU.
//!
//! [`Session`] never touches a browser: each transition returns the [`Command`]s the shell
//! (`ui::app`) carries out — start or stop the worker, post a message, play the timeline — so the
//! native tests below drive every path the page takes.

use crate::backend::BackendKind;
use crate::sampler::image::Guidance;
use crate::sampler::{Knob, KnobValue};
use crate::trajectory::AnyTrajectory;
use crate::unified::UnifiedTask;

use super::images::ImageReplay;
use super::protocol::{FromWorker, Job, LoadedModel, Opening, RunStep, ToWorker};
use super::replay::{Record, Replay};
use super::source::ModelSource;
use super::state::{BackendChoice, PageState};
use super::words::WordReplay;

/// Where the backend stands.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerStatus {
    /// Starting.
    Starting,
    /// Running on a backend.
    Ready {
        /// Which.
        backend: BackendKind,
        /// In words.
        detail: String,
        /// Why not WebGPU, when it was wanted.
        fallback: Option<String>,
        /// Weights in f16.
        half: bool,
    },
    /// Failed to start.
    Failed(String),
}

/// Where the model stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelStatus {
    /// Nothing asked yet.
    None,
    /// Downloading / uploading.
    Loading {
        /// What.
        source: String,
        /// Current file.
        file: String,
        /// Bytes so far.
        loaded: u64,
        /// Bytes in all.
        total: Option<u64>,
        /// From the browser's cache.
        cached: bool,
    },
    /// Not downloaded: its weights are larger than the page fetches by itself
    /// ([`PageState::autoload_mb`]); [`Session::load_held`] fetches them when the reader says so.
    Held {
        /// What.
        source: ModelSource,
        /// The file.
        file: String,
        /// Its size in bytes (at least).
        bytes: u64,
        /// The limit it is over.
        limit: u64,
    },
    /// Ready.
    Loaded(LoadedModel),
    /// Failed; the page keeps working (and keeps any previous model).
    Failed(String),
}

/// How a run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Sent, waiting for the worker.
    Queued,
    /// Steps are arriving.
    Running,
    /// Finished.
    Done,
    /// Stopped by the reader.
    Cancelled,
    /// Failed with a message.
    Failed(String),
    /// Loaded from a trajectory file.
    Imported,
}

impl RunStatus {
    /// Whether no more steps will come.
    pub fn is_final(&self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// A word for `data-status` and the badge.
    pub fn name(&self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Failed(_) => "failed",
            RunStatus::Imported => "imported",
        }
    }
}

/// One lane of the page: a run live or replayed.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    /// The worker's run id (0 for imported runs).
    pub id: u32,
    /// What it runs: a prompt and a text sampler, or an image chain.
    pub job: Job,
    /// The model it runs on (resolved: a default becomes the shipped folder).
    pub model: String,
    /// Where that model comes from (to run the lane again).
    pub source: ModelSource,
    /// Waiting to be sent to the worker: a new run, or one to run again on a restarted worker
    /// (after WebGPU failed under it).
    pub to_send: bool,
    /// Steps so far.
    pub record: Record,
    /// State.
    pub status: RunStatus,
    /// Milliseconds the worker has spent on it.
    pub elapsed_ms: f64,
    /// The finished record, for export.
    pub trajectory: Option<AnyTrajectory>,
}

impl Lane {
    /// A short label: sampler and its main knobs.
    pub fn label(&self) -> String {
        match &self.job {
            Job::Text { settings: s, .. } => {
                let mut label = s.sampler().name().to_string();
                if let Some(steps) = s.steps() {
                    label.push_str(&format!(" · {steps} steps"));
                }
                if s.get(Knob::FirstHitting) == Some(KnobValue::Flag(true)) {
                    label.push_str(" · first-hitting");
                }
                label
            }
            Job::Ddpm { settings: s } => {
                let mut label = s.name().to_string();
                if let Some(KnobValue::Number(n)) = s.get(Knob::Steps) {
                    label.push_str(&format!(" · {n} steps"));
                }
                let c = s.condition();
                match c.class {
                    Some(y) => label.push_str(&format!(" · class {y}")),
                    None => label.push_str(" · any class"),
                }
                match c.guidance {
                    Guidance::None => {}
                    Guidance::Free { scale } => label.push_str(&format!(" · cfg {scale}")),
                    Guidance::Classifier { scale } => {
                        label.push_str(&format!(" · classifier {scale}"))
                    }
                }
                label
            }
            Job::Unified { task } => match task {
                UnifiedTask::T2i { settings: s, .. } => {
                    format!("text → image · {} steps · cfg {}", s.steps, s.cfg_scale)
                }
                UnifiedTask::Mmu { settings: s, .. } => {
                    format!("image → text · {} steps", s.steps)
                }
            },
            Job::DiffusionLm { settings: s, .. } => {
                let mut label = format!("diffusion-lm · {} steps", s.steps);
                if !s.clamp {
                    label.push_str(" · no clamping");
                }
                if let Some(c) = &s.control {
                    label.push_str(&format!(" · toward {} ×{}", c.target, c.scale));
                }
                label
            }
        }
    }

    /// The token replay, for a text lane.
    pub fn text(&self) -> Option<&Replay> {
        self.record.text()
    }

    /// The image replay, for an image lane.
    pub fn images(&self) -> Option<&ImageReplay> {
        self.record.images()
    }

    /// The word replay, for a Diffusion-LM lane.
    pub fn words(&self) -> Option<&WordReplay> {
        self.record.words()
    }

    /// Committed tokens per second of model time up to step `at` (text lanes).
    pub fn tokens_per_second(&self, at: usize) -> Option<f64> {
        let n = self.text()?.committed_through(at);
        let ms = self.step_ms(at)?;
        (ms > 0.0).then(|| n as f64 * 1000.0 / ms)
    }

    /// Steps per second of model time up to step `at`.
    pub fn steps_per_second(&self, at: usize) -> Option<f64> {
        let n = at.min(self.record.len().checked_sub(1)?) + 1;
        let ms = self.step_ms(at)?;
        (ms > 0.0).then(|| n as f64 * 1000.0 / ms)
    }

    fn step_ms(&self, at: usize) -> Option<f64> {
        let last = self.record.len().checked_sub(1)?;
        if at >= last {
            Some(self.elapsed_ms)
        } else {
            Some(self.elapsed_ms * (at + 1) as f64 / (last + 1) as f64)
        }
    }
}

/// The page's label of the knob a link calls `key`.
fn knob_label(key: &str) -> Option<&'static str> {
    crate::sampler::KNOBS
        .iter()
        .find(|k| k.key == key)
        .map(|k| k.label)
}

/// What the shell must do after a transition.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Stop the worker (if any) and start a new one; report a failure with
    /// [`Session::spawn_failed`].
    Spawn,
    /// Post a message to the worker.
    Send(ToWorker),
    /// Post a message with the files the reader dropped beside it.
    SendWithDropped(ToWorker),
    /// Play the timeline from its first step (a new run, an import).
    Play,
    /// A step arrived (`first`: the run's first, for the page's performance mark).
    Stepped {
        /// Whether it is step 0.
        first: bool,
    },
    /// A chat run finished: the reader's message and the model's reply join the conversation
    /// ([`PageState::add_exchange`]).
    Replied {
        /// What the reader said.
        message: String,
        /// What the model answered.
        reply: String,
    },
}

/// Crashed workers replaced before the page gives up and says so.
pub const MAX_WORKER_RESTARTS: u32 = 3;

/// The page's worker, model and runs, and the counters that tell replies apart.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The backend.
    pub worker: WorkerStatus,
    /// The model.
    pub model: ModelStatus,
    /// What the reader should know about the model's load (e.g. a file not kept in the
    /// browser's cache); cleared by the next load.
    pub model_notes: Vec<String>,
    /// The runs shown.
    pub lanes: Vec<Lane>,
    next_run: u32,
    /// Id of the newest load request; replies to older ones are ignored.
    load_id: u32,
    /// What the newest load asked for, resolved (a default becomes the shipped folder of the
    /// first run's sampler).
    loading: Option<ModelSource>,
    /// Why WebGPU failed in this page, once it has (the CPU is used from then on).
    gpu_failed: Option<String>,
    /// Workers replaced after a crash.
    crashes: u32,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            worker: WorkerStatus::Starting,
            model: ModelStatus::None,
            model_notes: Vec::new(),
            lanes: Vec::new(),
            next_run: 0,
            load_id: 0,
            loading: None,
            gpu_failed: None,
            crashes: 0,
        }
    }
}

impl Session {
    /// Whether any run is still going.
    pub fn busy(&self) -> bool {
        self.lanes.iter().any(|l| !l.status.is_final())
    }

    /// Whether a model is ready.
    pub fn model_ready(&self) -> bool {
        matches!(self.model, ModelStatus::Loaded(_))
    }

    /// Longest lane, in steps.
    pub fn max_steps(&self) -> usize {
        self.lanes.iter().map(|l| l.record.len()).max().unwrap_or(0)
    }

    /// Why WebGPU failed under this page, if it did.
    pub fn gpu_failed(&self) -> Option<&str> {
        self.gpu_failed.as_deref()
    }

    /// (Re)starts the worker on the preferred backend — the CPU once WebGPU has failed — and
    /// loads the page's model. Runs in flight die with the old worker.
    pub fn restart(&mut self, state: &PageState) -> Vec<Command> {
        self.end_unfinished(RunStatus::Cancelled);
        self.worker = WorkerStatus::Starting;
        let backend = if self.gpu_failed.is_some() {
            BackendChoice::Cpu
        } else {
            state.backend
        };
        let mut effects = vec![
            Command::Spawn,
            Command::Send(ToWorker::Start {
                backend,
                half: !state.full_precision,
            }),
        ];
        let limit = Some(state.autoload_bytes());
        effects.extend(self.request_load(state.model.clone(), state, limit));
        effects
    }

    /// The worker could not even be started.
    pub fn spawn_failed(&mut self, why: String) {
        self.worker = WorkerStatus::Failed(why);
    }

    /// Asks the worker for the model the reader chose (the default: the one shipped for the
    /// first run's family and sampler), whatever its size.
    pub fn load_model(&mut self, source: ModelSource, state: &PageState) -> Vec<Command> {
        self.request_load(source, state, None)
    }

    /// Downloads the model held back for its size, now that the reader asked for it.
    pub fn load_held(&mut self, state: &PageState) -> Vec<Command> {
        match &self.model {
            ModelStatus::Held { source, .. } => {
                let source = source.clone();
                self.request_load(source, state, None)
            }
            _ => Vec::new(),
        }
    }

    /// Asks the worker for a model; `limit`: the most bytes of weights it may download
    /// without the reader (a load the page starts by itself).
    fn request_load(
        &mut self,
        source: ModelSource,
        state: &PageState,
        limit: Option<u64>,
    ) -> Vec<Command> {
        let source = source.for_job(&state.job());
        self.model_notes.clear();
        self.loading = Some(source.clone());
        self.load_id += 1;
        self.model = ModelStatus::Loading {
            source: source.to_string(),
            file: String::new(),
            loaded: 0,
            total: None,
            cached: false,
        };
        let dropped = matches!(source, ModelSource::Files(_));
        let msg = ToWorker::Load {
            load: self.load_id,
            source,
            limit,
            attention: state.attention,
        };
        vec![if dropped {
            Command::SendWithDropped(msg)
        } else {
            Command::Send(msg)
        }]
    }

    /// Loads the model the first run needs when that changed: on the default models, switching
    /// from `bd3` to `ar` swaps the block-diffusion model for the autoregressive one, and
    /// switching to the digits loads the DDPM model.
    pub fn follow_sampler(&mut self, state: &PageState) -> Vec<Command> {
        let wanted = state.model.for_job(&state.job());
        match &self.loading {
            Some(current) if *current != wanted => {
                let limit = Some(state.autoload_bytes());
                self.request_load(state.model.clone(), state, limit)
            }
            _ => Vec::new(),
        }
    }

    /// Starts a run (two for a race) with the page's prompt and settings; a race shares the
    /// first run's seed.
    pub fn run(&mut self, state: &PageState) -> Vec<Command> {
        let mut effects = self.cancel();
        self.lanes = state
            .jobs()
            .into_iter()
            .map(|job| {
                let source = state.model.for_job(&job);
                Lane {
                    id: 0,
                    model: source.to_string(),
                    source,
                    record: Record::empty(job.family()),
                    job,
                    to_send: true,
                    status: RunStatus::Queued,
                    elapsed_ms: 0.0,
                    trajectory: None,
                }
            })
            .collect();
        effects.extend(self.send_waiting());
        effects
    }

    /// Sends every lane waiting to run, each under a new run id.
    fn send_waiting(&mut self) -> Vec<Command> {
        let mut effects = Vec::new();
        for l in self.lanes.iter_mut().filter(|l| l.to_send) {
            self.next_run += 1;
            l.id = self.next_run;
            l.to_send = false;
            effects.push(Command::Send(ToWorker::Generate {
                run: l.id,
                job: l.job.clone(),
                model: l.source.clone(),
            }));
        }
        effects.push(Command::Play);
        effects
    }

    /// Stops the runs in progress (each after its current step).
    pub fn cancel(&mut self) -> Vec<Command> {
        self.lanes
            .iter()
            .filter(|l| !l.status.is_final())
            .map(|l| Command::Send(ToWorker::Cancel { run: l.id }))
            .collect()
    }

    /// Shows a recorded run (no model needed).
    pub fn import(&mut self, t: AnyTrajectory) -> Vec<Command> {
        let mut effects = self.cancel();
        let (job, record) = match &t {
            AnyTrajectory::Text(t) => (
                Job::Text {
                    prompt: t.prompt.clone(),
                    settings: t.settings.clone(),
                    chat: None,
                },
                Record::Text(Replay::from_trajectory(t)),
            ),
            AnyTrajectory::Ddpm(t) => (
                Job::Ddpm {
                    settings: t.settings.clone(),
                },
                Record::Ddpm(ImageReplay::from_trajectory(t)),
            ),
            AnyTrajectory::DiffusionLm(t) => (
                Job::DiffusionLm {
                    prompt: t.prompt.clone(),
                    settings: t.settings.clone(),
                },
                Record::DiffusionLm(WordReplay::from_trajectory(t)),
            ),
            AnyTrajectory::Unified(t) => {
                let mut replay =
                    Replay::new(t.prompt_ids.clone(), t.prompt_ids.clone(), t.model.mask_id);
                replay.add_vocab(t.vocab.iter().map(|(&k, v)| (k, v.clone())));
                for step in &t.steps {
                    replay.push(step.clone());
                }
                (
                    Job::Unified {
                        task: t.task.clone(),
                    },
                    Record::Text(replay),
                )
            }
        };
        self.lanes = vec![Lane {
            id: 0,
            job,
            model: t.model_name().to_owned(),
            source: ModelSource::Default,
            to_send: false,
            record,
            status: RunStatus::Imported,
            elapsed_ms: 0.0,
            trajectory: Some(t),
        }];
        effects.push(Command::Play);
        effects
    }

    fn lane_mut(&mut self, run: u32, f: impl FnOnce(&mut Lane)) {
        if let Some(l) = self.lanes.iter_mut().find(|l| l.id == run) {
            f(l)
        }
    }

    /// Ends every run still queued or running with `status`.
    fn end_unfinished(&mut self, status: RunStatus) {
        for l in self.lanes.iter_mut().filter(|l| !l.status.is_final()) {
            l.status = status.clone();
        }
    }

    /// Whether the worker is (or was starting) on WebGPU, and WebGPU has not failed yet.
    fn on_gpu(&self, state: &PageState) -> bool {
        self.gpu_failed.is_none()
            && match &self.worker {
                WorkerStatus::Ready { backend, .. } => *backend == BackendKind::Wgpu,
                // Crashed while starting: WebGPU only if that is what it was starting.
                WorkerStatus::Starting => state.backend == BackendChoice::Auto,
                WorkerStatus::Failed(_) => false,
            }
    }

    /// The worker died outside any message (a trap, a script that did not load, a panic).
    pub fn on_crash(&mut self, why: String, state: &PageState) -> Vec<Command> {
        if self.on_gpu(state) && self.crashes < MAX_WORKER_RESTARTS {
            // WebGPU failed (no adapter in the runtime, a lost device): the runs in flight are
            // done again on the CPU.
            self.crashes += 1;
            return self.rerun_on_cpu(&why, None, state);
        }
        // Runs in flight and the model are lost with the worker.
        self.end_unfinished(RunStatus::Failed(why.clone()));
        self.model = ModelStatus::None;
        self.crashes += 1;
        if self.crashes <= MAX_WORKER_RESTARTS {
            self.restart(state)
        } else {
            self.worker = WorkerStatus::Failed(format!(
                "{why} (the model worker failed {} times; reload the page)",
                self.crashes
            ));
            Vec::new()
        }
    }

    /// Restarts the worker on the CPU and runs again, with the same settings and seed, every run
    /// still going and `failed` (the run the GPU broke): WebGPU failed under it, and the CPU gives
    /// the same tokens.
    fn rerun_on_cpu(&mut self, why: &str, failed: Option<u32>, state: &PageState) -> Vec<Command> {
        // The first line says it; a backend's error may go on with its causes and a backtrace.
        let why = why.lines().next().unwrap_or_default();
        self.gpu_failed = Some(format!(
            "WebGPU failed ({why}); the run was done again on the CPU"
        ));
        let again: Vec<u32> = self
            .lanes
            .iter()
            .filter(|l| !l.status.is_final() || Some(l.id) == failed)
            .map(|l| l.id)
            .collect();
        let effects = self.restart(state);
        for l in self.lanes.iter_mut().filter(|l| again.contains(&l.id)) {
            l.status = RunStatus::Queued;
            l.record = Record::empty(l.job.family());
            l.elapsed_ms = 0.0;
            l.to_send = true;
        }
        effects
    }

    /// A message from the worker.
    pub fn on_message(&mut self, msg: FromWorker, state: &PageState) -> Vec<Command> {
        match msg {
            FromWorker::Booted => {}
            FromWorker::Ready {
                backend,
                detail,
                fallback,
                half,
            } => {
                self.worker = WorkerStatus::Ready {
                    backend,
                    detail,
                    fallback: fallback.or_else(|| self.gpu_failed.clone()),
                    half,
                }
            }
            FromWorker::Progress { load, .. }
            | FromWorker::Loaded { load, .. }
            | FromWorker::Held { load, .. }
            | FromWorker::Note { load, .. }
                if load != self.load_id => {}
            FromWorker::Note { message, .. } => self.model_notes.push(message),
            FromWorker::Held {
                file, bytes, limit, ..
            } => {
                if let Some(source) = self.loading.clone() {
                    self.model = ModelStatus::Held {
                        source,
                        file,
                        bytes,
                        limit,
                    };
                }
            }
            FromWorker::Failed {
                load: Some(load), ..
            } if load != self.load_id => {}
            FromWorker::Progress {
                file,
                loaded,
                total,
                cached,
                ..
            } => {
                if let ModelStatus::Loading { source, .. } = &self.model {
                    self.model = ModelStatus::Loading {
                        source: source.clone(),
                        file,
                        loaded,
                        total,
                        cached,
                    };
                }
            }
            FromWorker::Loaded { model, .. } => {
                self.model = ModelStatus::Loaded(model);
                if self.lanes.iter().any(|l| l.to_send) {
                    return self.send_waiting();
                }
                if self.lanes.is_empty() {
                    if state.autoplay {
                        return self.run(state);
                    }
                    // While the reader reads: the first step's kernels compile now, not after
                    // Run.
                    let job = state.job();
                    let model = state.model.for_job(&job);
                    return vec![Command::Send(ToWorker::Warm { job, model })];
                }
            }
            FromWorker::Warmed { .. } => {}
            FromWorker::Started { run, opening } => self.lane_mut(run, |l| {
                let levels = match &l.job {
                    Job::Text { settings, .. } => settings.levels(),
                    Job::Ddpm { .. } | Job::DiffusionLm { .. } | Job::Unified { .. } => None,
                };
                l.record = match opening {
                    Opening::Text {
                        mask_id,
                        prompt_ids,
                        canvas,
                        vocab,
                    } => {
                        let mut replay =
                            Replay::new(prompt_ids, canvas, mask_id).with_levels(levels);
                        replay.add_vocab(vocab);
                        Record::Text(replay)
                    }
                    Opening::Ddpm {
                        side,
                        count,
                        x,
                        steps,
                    } => Record::Ddpm(ImageReplay::new(side, count, x, steps)),
                    Opening::DiffusionLm {
                        prompt_ids,
                        mask_id,
                        gen_length,
                        vocab,
                        steps,
                    } => Record::DiffusionLm(WordReplay::new(
                        (prompt_ids, mask_id),
                        gen_length,
                        vocab,
                        steps,
                    )),
                };
                l.status = RunStatus::Running;
            }),
            FromWorker::Step {
                run,
                step,
                elapsed_ms,
            } => {
                let first = step.index() == 0;
                let mut known = false;
                self.lane_mut(run, |l| {
                    known = true;
                    match (&mut l.record, step) {
                        (Record::Text(r), RunStep::Text { step, vocab }) => {
                            r.add_vocab(vocab);
                            r.push(step);
                        }
                        (Record::Ddpm(r), RunStep::Ddpm(step)) => r.push(step),
                        (Record::DiffusionLm(r), RunStep::DiffusionLm { step, vocab }) => {
                            r.push(step, vocab)
                        }
                        // A step of the other family cannot come from this run's worker.
                        _ => {}
                    }
                    l.elapsed_ms = elapsed_ms;
                });
                if known {
                    return vec![Command::Stepped { first }];
                }
            }
            FromWorker::Done {
                run,
                trajectory,
                elapsed_ms,
                reply,
            } => {
                self.lane_mut(run, |l| {
                    l.status = RunStatus::Done;
                    l.elapsed_ms = elapsed_ms;
                    l.trajectory = Some(*trajectory);
                });
                // The first lane's reply continues the chat (a race's second is shown beside).
                if let (Some(reply), Some(first)) = (reply, self.lanes.first())
                    && first.id == run
                    && let Job::Text {
                        prompt,
                        chat: Some(_),
                        ..
                    } = &first.job
                {
                    return vec![Command::Replied {
                        message: prompt.clone(),
                        reply,
                    }];
                }
            }
            FromWorker::Cancelled { run } => {
                self.lane_mut(run, |l| l.status = RunStatus::Cancelled)
            }
            FromWorker::Failed {
                run: Some(run),
                message,
                device_fault: true,
                ..
            } if self.gpu_failed.is_none() && self.lanes.iter().any(|l| l.id == run) => {
                return self.rerun_on_cpu(&message, Some(run), state);
            }
            FromWorker::Failed {
                run: Some(run),
                message,
                knob,
                ..
            } => {
                let message = match knob.as_deref().and_then(knob_label) {
                    Some(label) => format!("{message} — change “{label}” above"),
                    None => message,
                };
                self.lane_mut(run, |l| l.status = RunStatus::Failed(message))
            }
            FromWorker::Failed {
                load: Some(_),
                message,
                ..
            } => self.model = ModelStatus::Failed(message),
            FromWorker::Failed {
                run: None,
                stage,
                message,
                ..
            } => match stage.as_str() {
                "load" => self.model = ModelStatus::Failed(message),
                "panic" => return self.on_crash(message, state),
                _ => self.worker = WorkerStatus::Failed(message),
            },
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Attention;
    use crate::page::protocol::Network;
    use crate::sampler::{ModelSpec, SamplerKind, Settings, Step};

    fn state(query: &str) -> PageState {
        PageState::from_query(query).0
    }

    fn loaded(load: u32) -> FromWorker {
        FromWorker::Loaded {
            load,
            model: LoadedModel {
                name: "m".into(),
                network: Network::Text(ModelSpec {
                    vocab_size: 8,
                    model_length: 64,
                    mask_id: 7,
                    eos_id: None,
                    attention: Attention::Bidirectional,
                    time_conditioning: false,
                    per_token_noise: false,
                }),
                parameters: 1,
                shape: "tiny".into(),
                load_seconds: 0.1,
                chat: None,
                streamed: None,
                default_attention: None,
            },
        }
    }

    fn ready(backend: BackendKind) -> FromWorker {
        FromWorker::Ready {
            backend,
            detail: backend.name().into(),
            fallback: None,
            half: false,
        }
    }

    fn step(run: u32, index: usize) -> FromWorker {
        FromWorker::Step {
            run,
            step: RunStep::Text {
                step: Step {
                    index,
                    model_calls: index + 1,
                    commits: Vec::new(),
                    canvas: vec![1, 7],
                    masked: vec![false, true],
                    block: [1, 2],
                    candidates: Vec::new(),
                    levels: Vec::new(),
                },
                vocab: Vec::new(),
            },
            elapsed_ms: 1.0,
        }
    }

    /// The runs an effect list starts, with their settings.
    fn generates(effects: &[Command]) -> Vec<(u32, Settings)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Command::Send(ToWorker::Generate {
                    run,
                    job: Job::Text { settings, .. },
                    ..
                }) => Some((*run, settings.clone())),
                _ => None,
            })
            .collect()
    }

    fn starts(effects: &[Command]) -> Vec<BackendChoice> {
        effects
            .iter()
            .filter_map(|e| match e {
                Command::Send(ToWorker::Start { backend, .. }) => Some(*backend),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_fresh_page_starts_the_worker_and_loads_its_sampler_s_model() {
        let page = state("sampler=ar&gen=8");
        let mut s = Session::default();
        let effects = s.restart(&page);
        assert_eq!(effects[0], Command::Spawn);
        assert_eq!(starts(&effects), vec![BackendChoice::Auto]);
        assert!(effects.iter().any(|e| matches!(
            e,
            Command::Send(ToWorker::Load { load: 1, source: ModelSource::Url(u), .. }) if u.ends_with("/default/ar/")
        )));
        assert!(matches!(s.model, ModelStatus::Loading { .. }));
        // Autoplay off: a loaded model waits for Run, and meanwhile the worker compiles the
        // kernels of the run Run would start, on the model it would run on.
        let effects = s.on_message(loaded(1), &page);
        assert_eq!(
            effects,
            vec![Command::Send(ToWorker::Warm {
                job: page.job(),
                model: page.model.for_job(&page.job()),
            })]
        );
        assert!(matches!(
            &effects[0],
            Command::Send(ToWorker::Warm { model: ModelSource::Url(u), .. }) if u.ends_with("/default/ar/")
        ));
        assert!(s.model_ready() && s.lanes.is_empty());
        // Its answer changes nothing.
        let warmed = FromWorker::Warmed { elapsed_ms: 5.0 };
        let before = s.clone();
        assert!(s.on_message(warmed, &page).is_empty());
        assert_eq!(s, before);
    }

    /// A finished run's record (the session keeps it for export; its content does not matter
    /// here).
    fn record() -> crate::trajectory::Trajectory {
        use crate::trajectory::{ModelInfo, Stats, TRAJECTORY_FORMAT, TRAJECTORY_VERSION};
        crate::trajectory::Trajectory {
            format: TRAJECTORY_FORMAT.into(),
            version: TRAJECTORY_VERSION,
            kind: crate::config::Family::Text,
            model: ModelInfo {
                name: "m".into(),
                vocab_size: 8,
                mask_id: 7,
                attention: Attention::Bidirectional,
                model_length: 8,
            },
            settings: Settings::defaults(SamplerKind::Llada),
            prompt: "a".into(),
            prompt_ids: vec![1],
            vocab: Default::default(),
            steps: Vec::new(),
            text: "a".into(),
            completion: String::new(),
            final_ids: vec![1],
            stats: Stats::default(),
        }
    }

    #[test]
    fn a_chat_reply_of_the_first_lane_continues_the_conversation() {
        let page = state(
            "chat=1&user=hi&assistant=hello&prompt=and%20you&sampler=llada&gen=8&b.sampler=bd3",
        );
        let mut s = Session::default();
        s.restart(&page);
        s.on_message(loaded(1), &page);
        s.run(&page);
        let (first, second) = (s.lanes[0].id, s.lanes[1].id);
        let done = |run, reply: Option<&str>| FromWorker::Done {
            run,
            trajectory: Box::new(AnyTrajectory::Text(record())),
            elapsed_ms: 1.0,
            reply: reply.map(Into::into),
        };
        // The race's second reply is shown in its lane, not added to the chat.
        assert!(s.on_message(done(second, Some("other")), &page).is_empty());
        assert_eq!(
            s.on_message(done(first, Some("fine")), &page),
            vec![Command::Replied {
                message: "and you".into(),
                reply: "fine".into()
            }]
        );
        assert_eq!(s.lanes[0].status, RunStatus::Done);
        // A plain run's Done carries no reply and continues nothing.
        let plain = state("sampler=llada&gen=8");
        s.run(&plain);
        let id = s.lanes[0].id;
        assert!(s.on_message(done(id, None), &plain).is_empty());
    }

    #[test]
    fn a_link_never_downloads_large_weights_by_itself() {
        let page = state("autoplay=1&embed=1&model=o%2Fbig&autoload=50");
        let mut s = Session::default();
        let effects = s.restart(&page);
        let load = |effects: &[Command]| {
            effects.iter().find_map(|e| match e {
                Command::Send(ToWorker::Load {
                    load,
                    source,
                    limit,
                    ..
                }) => Some((*load, source.clone(), *limit)),
                _ => None,
            })
        };
        let big = ModelSource::Hub("o/big".into());
        assert_eq!(load(&effects), Some((1, big.clone(), Some(50_000_000))));
        let held = FromWorker::Held {
            load: 1,
            file: "model.safetensors".into(),
            bytes: 335_000_000,
            limit: 50_000_000,
        };
        // Autoplay waits for the reader: nothing runs, the size is shown.
        assert!(s.on_message(held, &page).is_empty());
        assert_eq!(
            s.model,
            ModelStatus::Held {
                source: big.clone(),
                file: "model.safetensors".into(),
                bytes: 335_000_000,
                limit: 50_000_000,
            }
        );
        assert!(s.lanes.is_empty() && !s.model_ready());
        // The reader's click downloads it whatever its size, and autoplay then runs.
        let effects = s.load_held(&page);
        assert_eq!(load(&effects), Some((2, big, None)));
        let effects = s.on_message(loaded(2), &page);
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Command::Send(ToWorker::Generate { .. })))
        );
        // A note about the load in progress is kept until the next load; one about an older
        // load is not.
        let note = |load| FromWorker::Note {
            load,
            message: "model.safetensors is not kept".into(),
        };
        s.on_message(note(1), &page);
        assert!(s.model_notes.is_empty());
        s.on_message(note(2), &page);
        assert_eq!(s.model_notes, ["model.safetensors is not kept"]);
        // A model the reader picks is never held.
        let effects = s.load_model(ModelSource::Hub("o/other".into()), &page);
        assert_eq!(load(&effects).map(|l| l.2), Some(None));
        assert!(
            s.model_notes.is_empty(),
            "a new load starts without the old notes"
        );
        assert!(s.load_held(&page).is_empty(), "nothing is held any more");
    }

    #[test]
    fn replies_to_a_superseded_load_are_ignored() {
        let page = state("autoplay=1");
        let mut s = Session::default();
        s.restart(&page);
        s.load_model(ModelSource::Hub("o/n".into()), &page);
        // Load 1's progress, failure and success come late: load 2 is what the page waits for.
        s.on_message(
            FromWorker::Failed {
                run: None,
                load: Some(1),
                stage: "load".into(),
                message: "404".into(),
                device_fault: false,
                knob: None,
            },
            &page,
        );
        assert!(s.on_message(loaded(1), &page).is_empty());
        assert!(matches!(s.model, ModelStatus::Loading { .. }));
        // Load 2 arrives and, with autoplay, the run starts.
        let effects = s.on_message(loaded(2), &page);
        assert_eq!(generates(&effects).len(), 1);
        assert!(effects.contains(&Command::Play));
    }

    #[test]
    fn a_race_runs_two_lanes_on_one_seed_and_steps_reach_their_lane() {
        let page = state("sampler=bd3&seed=5&b.sampler=llada&b.steps=8&gen=16");
        let mut s = Session::default();
        s.restart(&page);
        s.on_message(loaded(1), &page);
        let runs = generates(&s.run(&page));
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].1.seed(), 5);
        assert_eq!(runs[1].1.seed(), 5);
        assert_eq!(runs[1].1.sampler(), SamplerKind::Llada);
        let (a, b) = (runs[0].0, runs[1].0);
        assert_eq!(
            s.on_message(step(a, 0), &page),
            vec![Command::Stepped { first: true }]
        );
        s.on_message(step(a, 1), &page);
        s.on_message(step(b, 0), &page);
        assert_eq!(s.lanes[0].record.len(), 2);
        assert_eq!(s.lanes[1].record.len(), 1);
        // A step of a run no lane has (cancelled and replaced) changes nothing.
        assert!(s.on_message(step(99, 0), &page).is_empty());
        assert!(s.busy());
        // A new run cancels the ones in flight.
        let effects = s.run(&page);
        assert!(effects.contains(&Command::Send(ToWorker::Cancel { run: a })));
        assert!(effects.contains(&Command::Send(ToWorker::Cancel { run: b })));
    }

    #[test]
    fn webgpu_failing_under_a_run_reruns_it_on_the_cpu_with_the_same_settings() {
        let page = state("sampler=bd3&b.sampler=ar&gen=8&seed=2");
        let mut s = Session::default();
        s.restart(&page);
        s.on_message(ready(BackendKind::Wgpu), &page);
        s.on_message(loaded(1), &page);
        let first = generates(&s.run(&page));
        s.on_message(step(first[0].0, 0), &page);
        // The first lane's GPU returns NaN: both lanes go back to the queue, the worker restarts
        // on the CPU and loads the model again.
        let effects = s.on_message(
            FromWorker::Failed {
                run: Some(first[0].0),
                load: None,
                stage: "generate".into(),
                message: "the wgpu backend returned 4 non-finite logits at step 1\nmore".into(),
                device_fault: true,
                knob: None,
            },
            &page,
        );
        assert_eq!(effects[0], Command::Spawn);
        assert_eq!(starts(&effects), vec![BackendChoice::Cpu]);
        assert!(
            s.lanes
                .iter()
                .all(|l| l.status == RunStatus::Queued && l.record.is_empty())
        );
        // The CPU worker comes up: the badge's reason names WebGPU's failure, first line only.
        s.on_message(ready(BackendKind::Cpu), &page);
        match &s.worker {
            WorkerStatus::Ready {
                fallback: Some(f), ..
            } => {
                assert_eq!(
                    f,
                    "WebGPU failed (the wgpu backend returned 4 non-finite logits at step 1); the run was done again on the CPU"
                )
            }
            other => panic!("{other:?}"),
        }
        // Its model loads: the same two runs go again, under new ids.
        let again = generates(&s.on_message(loaded(2), &page));
        assert_eq!(again.len(), 2);
        assert_eq!(
            again.iter().map(|r| &r.1).collect::<Vec<_>>(),
            first.iter().map(|r| &r.1).collect::<Vec<_>>()
        );
        assert!(
            again
                .iter()
                .all(|(id, _)| first.iter().all(|(old, _)| old != id))
        );
        // A second failure, now on the CPU, is the run's own: no third attempt.
        let effects = s.on_message(
            FromWorker::Failed {
                run: Some(again[0].0),
                load: None,
                stage: "generate".into(),
                message: "the cpu backend returned 4 non-finite logits".into(),
                device_fault: false,
                knob: None,
            },
            &page,
        );
        assert!(effects.is_empty());
        assert!(matches!(s.lanes[0].status, RunStatus::Failed(_)));
    }

    #[test]
    fn crashes_rerun_on_the_cpu_once_then_fail_the_runs_then_give_up() {
        let page = state("gen=8");
        let mut s = Session::default();
        s.restart(&page);
        s.on_message(ready(BackendKind::Wgpu), &page);
        s.on_message(loaded(1), &page);
        s.run(&page);
        // A lost device kills the worker mid-run: rerun on the CPU.
        let effects = s.on_crash("device lost".into(), &page);
        assert_eq!(starts(&effects), vec![BackendChoice::Cpu]);
        assert!(s.lanes[0].to_send);
        s.on_message(ready(BackendKind::Cpu), &page);
        s.on_message(loaded(2), &page);
        // Crashes on the CPU fail the run and restart the worker, a few times only.
        for _ in 1..MAX_WORKER_RESTARTS {
            let effects = s.on_crash("trap".into(), &page);
            assert_eq!(starts(&effects), vec![BackendChoice::Cpu]);
        }
        assert!(matches!(s.lanes[0].status, RunStatus::Failed(_)));
        assert!(s.on_crash("trap".into(), &page).is_empty());
        assert!(matches!(&s.worker, WorkerStatus::Failed(m) if m.contains("failed 4 times")));
    }

    #[test]
    fn a_new_sampler_on_the_default_models_loads_its_own_model() {
        let mut page = state("sampler=bd3");
        let mut s = Session::default();
        s.restart(&page);
        assert!(s.follow_sampler(&page).is_empty());
        page.settings = page.settings.switched(SamplerKind::Ar);
        let effects = s.follow_sampler(&page);
        assert!(matches!(
            &effects[..],
            [Command::Send(ToWorker::Load { load: 2, source: ModelSource::Url(u), .. })] if u.ends_with("/default/ar/")
        ));
        // Dropped files travel with their load.
        let effects = s.load_model(ModelSource::Files("model.safetensors".into()), &page);
        assert!(matches!(
            &effects[..],
            [Command::SendWithDropped(ToWorker::Load { .. })]
        ));
    }

    fn digits_loaded(load: u32) -> FromWorker {
        use crate::page::protocol::ClassifierStatus;
        FromWorker::Loaded {
            load,
            model: LoadedModel {
                name: "./models/default/ddpm/".into(),
                network: Network::Ddpm {
                    spec: crate::network::ImageSpec {
                        side: 2,
                        classes: 10,
                        diffusion_steps: 10,
                        beta_schedule: crate::sampler::gaussian::BetaSchedule::Linear,
                    },
                    classifier: Some(ClassifierStatus::Loaded {
                        name: "./models/default/ddpm-classifier/".into(),
                        classes: 10,
                    }),
                },
                parameters: 1,
                shape: "tiny".into(),
                load_seconds: 0.1,
                chat: None,
                streamed: None,
                default_attention: None,
            },
        }
    }

    fn image_step(run: u32, index: usize) -> FromWorker {
        FromWorker::Step {
            run,
            step: RunStep::Ddpm(crate::sampler::image::ImageStep {
                index,
                model_calls: index + 1,
                t: 9 - index,
                noise_level: 0.5,
                x: vec![0.25; 4],
                x0: vec![1.0; 4],
                class_prob: Some(vec![0.5]),
            }),
            elapsed_ms: 2.0 * (index + 1) as f64,
        }
    }

    #[test]
    fn a_digits_link_loads_the_digits_model_and_races_two_guidances_on_one_seed() {
        let page = state("family=ddpm&class=7&classifier_scale=3&seed=1&b.sampler=ddim&b.cfg=2");
        let mut s = Session::default();
        let effects = s.restart(&page);
        assert!(effects.iter().any(|e| matches!(
            e,
            Command::Send(ToWorker::Load { source: ModelSource::Url(u), .. }) if u.ends_with("/default/ddpm/")
        )));
        s.on_message(digits_loaded(1), &page);
        let jobs: Vec<(u32, Job)> = s
            .run(&page)
            .into_iter()
            .filter_map(|e| match e {
                Command::Send(ToWorker::Generate { run, job, .. }) => Some((run, job)),
                _ => None,
            })
            .collect();
        assert_eq!(jobs.len(), 2);
        let guidance: Vec<Guidance> = jobs
            .iter()
            .map(|(_, j)| j.images().unwrap().condition().guidance)
            .collect();
        assert_eq!(
            guidance,
            [
                Guidance::Classifier { scale: 3.0 },
                Guidance::Free { scale: 2.0 }
            ]
        );
        assert!(
            jobs.iter()
                .all(|(_, j)| j.seed() == 1 && j.images().unwrap().condition().class == Some(7))
        );
        assert_eq!(
            s.lanes[0].label(),
            "ddim · 50 steps · class 7 · classifier 3"
        );
        // The opening and the steps land in their lane's image record.
        let a = jobs[0].0;
        s.on_message(
            FromWorker::Started {
                run: a,
                opening: Opening::Ddpm {
                    side: 2,
                    count: 1,
                    x: vec![0.0; 4],
                    steps: 50,
                },
            },
            &page,
        );
        assert_eq!(s.lanes[0].status, RunStatus::Running);
        assert_eq!(
            s.on_message(image_step(a, 0), &page),
            vec![Command::Stepped { first: true }]
        );
        s.on_message(image_step(a, 1), &page);
        let images = s.lanes[0].images().expect("an image lane");
        assert_eq!((images.len(), images.total()), (2, 50));
        assert_eq!(images.class_prob_series(), &[Some(0.5), Some(0.5)]);
        assert!(s.lanes[0].text().is_none());
        assert_eq!(s.lanes[0].steps_per_second(1), Some(500.0));
        // A text step sent to an image lane changes nothing.
        s.on_message(step(a, 2), &page);
        assert_eq!(s.lanes[0].record.len(), 2);
        // Settings the model refuses: the core's message, and the control to change named.
        let b = jobs[1].0;
        let e = crate::sampler::SettingsError::NoSuchClass {
            class: 7,
            classes: 5,
        };
        s.on_message(
            FromWorker::Failed {
                run: Some(b),
                load: None,
                stage: "generate".into(),
                message: e.to_string(),
                device_fault: false,
                knob: e.fix().map(|f| f.knob.key().to_owned()),
            },
            &page,
        );
        assert_eq!(
            s.lanes[1].status,
            RunStatus::Failed(
                "class 7 is not one of the model's 5 classes — change “class” above".into()
            )
        );
    }

    #[test]
    fn an_imported_image_trajectory_replays_without_a_model() {
        use crate::trajectory::images::ImageTrajectory;
        let settings = crate::sampler::image::ImageSettings::defaults(
            crate::sampler::image::ImageSampler::Ddim,
        );
        let spec = crate::network::ImageSpec {
            side: 2,
            classes: 10,
            diffusion_steps: 10,
            beta_schedule: crate::sampler::gaussian::BetaSchedule::Linear,
        };
        let steps: Vec<_> = (0..3)
            .map(|i| match image_step(0, i) {
                FromWorker::Step {
                    step: RunStep::Ddpm(s),
                    ..
                } => s,
                _ => unreachable!(),
            })
            .collect();
        let t = ImageTrajectory::new("digits", &spec, None, settings.clone(), &steps);
        let mut s = Session::default();
        let effects = s.import(AnyTrajectory::Ddpm(t));
        assert_eq!(effects, vec![Command::Play]);
        assert_eq!(s.lanes[0].status, RunStatus::Imported);
        assert_eq!(s.lanes[0].job, Job::Ddpm { settings });
        assert_eq!(s.lanes[0].images().map(ImageReplay::len), Some(3));
        assert_eq!(s.max_steps(), 3);
    }

    #[test]
    fn a_words_link_loads_the_words_model_races_control_and_fills_its_word_record() {
        use crate::page::protocol::ClassifierStatus;
        use crate::sampler::diffusion_lm::VectorStep;
        let page = state(
            "family=diffusion-lm&prompt=It&seed=4&steps=20&gen=2&control=bible&b.control=none",
        );
        let mut s = Session::default();
        let effects = s.restart(&page);
        assert!(effects.iter().any(|e| matches!(
            e,
            Command::Send(ToWorker::Load { source: ModelSource::Url(u), .. }) if u.ends_with("/default/diffusion-lm/")
        )));
        let loaded = FromWorker::Loaded {
            load: 1,
            model: LoadedModel {
                name: "./models/default/diffusion-lm/".into(),
                network: Network::DiffusionLm {
                    spec: crate::network::VectorSpec {
                        vocab_size: 8,
                        embed_dim: 2,
                        model_length: 4,
                        diffusion_steps: 20,
                        beta_schedule: crate::sampler::gaussian::BetaSchedule::Sqrt,
                    },
                    classifier: Some(ClassifierStatus::Loaded {
                        name: "./models/default/diffusion-lm-classifier/".into(),
                        classes: 2,
                    }),
                    labels: vec!["austen".into(), "bible".into()],
                },
                parameters: 1,
                shape: "tiny".into(),
                load_seconds: 0.1,
                chat: None,
                streamed: None,
                default_attention: None,
            },
        };
        s.on_message(loaded, &page);
        let jobs: Vec<(u32, Job)> = s
            .run(&page)
            .into_iter()
            .filter_map(|e| match e {
                Command::Send(ToWorker::Generate { run, job, .. }) => Some((run, job)),
                _ => None,
            })
            .collect();
        assert_eq!(jobs.len(), 2);
        assert!(
            jobs.iter()
                .all(|(_, j)| j.seed() == 4 && j.family() == crate::config::Family::DiffusionLm)
        );
        assert_eq!(
            s.lanes[0].label(),
            "diffusion-lm · 20 steps · toward bible ×1"
        );
        assert_eq!(s.lanes[1].label(), "diffusion-lm · 20 steps");
        let a = jobs[0].0;
        s.on_message(
            FromWorker::Started {
                run: a,
                opening: Opening::DiffusionLm {
                    prompt_ids: vec![1],
                    mask_id: None,
                    gen_length: 2,
                    vocab: vec![(1, "It".into())],
                    steps: 20,
                },
            },
            &page,
        );
        let word_step = |index: usize, ids: Vec<u32>| FromWorker::Step {
            run: a,
            step: RunStep::DiffusionLm {
                step: VectorStep {
                    index,
                    t: 19 - index,
                    noise_level: 0.9,
                    distance: vec![0.0, 1.0, 3.0],
                    changed: if index == 0 { vec![] } else { vec![2] },
                    ids,
                    target_probability: Some(0.6),
                    nearest: Vec::new(),
                },
                vocab: vec![(2, " was".into()), (3, " is".into()), (4, " so".into())],
            },
            elapsed_ms: 4.0,
        };
        assert_eq!(
            s.on_message(word_step(0, vec![1, 2, 3]), &page),
            vec![Command::Stepped { first: true }]
        );
        s.on_message(word_step(1, vec![1, 2, 4]), &page);
        let words = s.lanes[0].words().expect("a words lane");
        assert_eq!((words.len(), words.total()), (2, 20));
        assert_eq!(words.text(1), " was so");
        assert_eq!(words.target_prob_series(), &[Some(0.6), Some(0.6)]);
        assert!(words.words(1)[2].changed);
        assert!(s.lanes[0].text().is_none() && s.lanes[0].images().is_none());
        // A text step sent to a words lane changes nothing.
        s.on_message(step(a, 2), &page);
        assert_eq!(s.lanes[0].record.len(), 2);
    }
}
