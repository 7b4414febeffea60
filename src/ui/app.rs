//! The page's state, its link with the model worker and the layout.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::backend::BackendKind;
use crate::browser::client::{ModelWorker, WorkerEvent};
use crate::page::protocol::{FromWorker, LoadedModel, ToWorker};
use crate::page::replay::Replay;
use crate::page::source::ModelSource;
use crate::page::state::{BackendChoice, PageState};
use crate::sampler::Settings;
use crate::trajectory::Trajectory;

use super::canvas::{Inspector, TokenCanvas};
use super::controls::{Controls, ModelPanel, SharePanel};
use super::plots::Plots;
use super::timeline::Timeline;

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
        /// Why not WebGPU, when wanted.
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
    /// Its settings.
    pub settings: Settings,
    /// The model it runs on (resolved: a default becomes the shipped folder).
    pub model: String,
    /// Where that model comes from (to run the lane again).
    pub source: ModelSource,
    /// Waiting for a restarted worker's model to run again (after WebGPU failed mid-run).
    pub awaiting_rerun: bool,
    /// Steps so far.
    pub replay: Replay,
    /// State.
    pub status: RunStatus,
    /// Milliseconds the worker has spent on it.
    pub elapsed_ms: f64,
    /// The finished record, for export.
    pub trajectory: Option<Trajectory>,
}

impl Lane {
    /// A short label: sampler and its main knobs.
    pub fn label(&self) -> String {
        let s = &self.settings;
        let mut label = s.sampler().name().to_string();
        if let Some(steps) = s.steps() {
            label.push_str(&format!(" · {steps} steps"));
        }
        if s.get(crate::sampler::Knob::FirstHitting) == Some(crate::sampler::KnobValue::Flag(true))
        {
            label.push_str(" · first-hitting");
        }
        label
    }

    /// Committed tokens per second of model time up to step `at`.
    pub fn tokens_per_second(&self, at: usize) -> Option<f64> {
        let n = self.replay.committed_through(at);
        let ms = self.step_ms(at)?;
        (ms > 0.0).then(|| n as f64 * 1000.0 / ms)
    }

    fn step_ms(&self, at: usize) -> Option<f64> {
        let last = self.replay.len().checked_sub(1)?;
        if at >= last {
            Some(self.elapsed_ms)
        } else {
            Some(self.elapsed_ms * (at + 1) as f64 / (last + 1) as f64)
        }
    }
}

/// Everything the components share (all `Copy` handles).
#[derive(Clone, Copy)]
pub struct Ctx {
    /// The link-carried state.
    pub state: RwSignal<PageState>,
    /// Messages about the URL or the page itself.
    pub notices: RwSignal<Vec<String>>,
    /// Backend.
    pub worker_status: RwSignal<WorkerStatus>,
    /// Model.
    pub model: RwSignal<ModelStatus>,
    /// Runs shown (one, or two in a race).
    pub lanes: RwSignal<Vec<Lane>>,
    /// Timeline position (a step index, shared by the lanes of a race).
    pub cursor: RwSignal<usize>,
    /// Whether the timeline plays.
    pub playing: RwSignal<bool>,
    /// Inspected cell: lane and position.
    pub selected: RwSignal<Option<(usize, usize)>>,
    /// Whether the reader asked for less motion.
    pub reduced_motion: RwSignal<bool>,
    worker: StoredValue<Option<ModelWorker>, LocalStorage>,
    next_run: StoredValue<u32>,
    /// Files dropped on the page (kept to reload after a backend switch).
    dropped: StoredValue<Option<js_sys::Array>, LocalStorage>,
    /// Whether WebGPU already failed once in this page (then the CPU is used).
    gpu_failed: StoredValue<Option<String>>,
    /// Id of the newest load request; replies to older ones are ignored.
    load_id: StoredValue<u32>,
    /// What the newest load request asked for, resolved (a default becomes the shipped folder
    /// of the first run's sampler).
    loading: StoredValue<Option<ModelSource>>,
    /// Workers replaced after a crash, to stop retrying a worker that cannot start.
    crashes: StoredValue<u32>,
}

/// Crashed workers replaced before the page gives up and says so.
const MAX_WORKER_RESTARTS: u32 = 3;

/// The context, from any component.
pub fn ctx() -> Ctx {
    expect_context::<Ctx>()
}

impl Ctx {
    /// Longest lane, in steps.
    pub fn max_steps(&self) -> usize {
        self.lanes
            .with(|l| l.iter().map(|l| l.replay.len()).max().unwrap_or(0))
    }

    /// Plays, or pauses; playing from the end starts over.
    pub fn toggle_play(&self) {
        let last = self.last_step();
        if !self.playing.get_untracked() && self.cursor.get_untracked() >= last {
            self.cursor.set(0);
        }
        self.playing.update(|p| *p = !*p);
    }

    /// Pauses and moves the timeline by `delta` steps.
    pub fn step_by(&self, delta: isize) {
        self.playing.set(false);
        let last = self.last_step() as isize;
        let cur = self.cursor.get_untracked() as isize;
        self.cursor
            .set((cur + delta).clamp(0, last.max(0)) as usize);
    }

    /// Index of the last recorded step (0 before any).
    pub fn last_step(&self) -> usize {
        self.max_steps().saturating_sub(1)
    }

    /// Whether any run is still going.
    pub fn busy(&self) -> bool {
        self.lanes.with(|l| l.iter().any(|l| !l.status.is_final()))
    }

    /// Whether a model is ready.
    pub fn model_ready(&self) -> bool {
        self.model.with(|m| matches!(m, ModelStatus::Loaded(_)))
    }

    fn send(&self, msg: &ToWorker, files: Option<&js_sys::Array>) {
        self.worker.with_value(|w| {
            if let Some(w) = w {
                w.send(msg, files)
            }
        });
    }

    /// (Re)starts the worker on the preferred backend and loads the current model.
    pub fn restart_worker(&self) {
        let this = *self;
        // Runs in flight die with the old worker.
        self.end_unfinished(RunStatus::Cancelled);
        self.worker.set_value(None);
        self.worker_status.set(WorkerStatus::Starting);
        match ModelWorker::spawn(move |event| this.on_worker_event(event)) {
            Ok(w) => self.worker.set_value(Some(w)),
            Err(e) => {
                self.worker_status.set(WorkerStatus::Failed(e));
                return;
            }
        }
        let backend = if self.gpu_failed.get_value().is_some() {
            BackendChoice::Cpu
        } else {
            self.state.with_untracked(|s| s.backend)
        };
        let half = !self.state.with_untracked(|s| s.full_precision);
        self.send(&ToWorker::Start { backend, half }, None);
        self.load_model(self.state.with_untracked(|s| s.model.clone()));
    }

    /// Asks the worker for a model (the default: the one trained for the current sampler).
    pub fn load_model(&self, source: ModelSource) {
        let source = self
            .state
            .with_untracked(|s| source.for_sampler(s.settings.sampler()));
        self.loading.set_value(Some(source.clone()));
        let files = match &source {
            ModelSource::Files(_) => self.dropped.get_value(),
            _ => None,
        };
        let load = self.load_id.get_value() + 1;
        self.load_id.set_value(load);
        self.model.set(ModelStatus::Loading {
            source: source.to_string(),
            file: String::new(),
            loaded: 0,
            total: None,
            cached: false,
        });
        self.send(&ToWorker::Load { load, source }, files.as_ref());
    }

    /// Loads files the reader dropped.
    pub fn load_dropped(&self, files: js_sys::Array, label: String) {
        self.dropped.set_value(Some(files));
        let source = ModelSource::Files(label);
        self.state.update(|s| s.model = source.clone());
        self.load_model(source);
    }

    /// Loads the model the first run's sampler needs when that changed: on the default models,
    /// switching from `bd3` to `ar` swaps the block-diffusion model for the autoregressive one.
    pub fn follow_sampler(&self) {
        let (model, wanted) = self
            .state
            .with_untracked(|s| (s.model.clone(), s.model.for_sampler(s.settings.sampler())));
        let current = self.loading.get_value();
        if current.is_some() && current.as_ref() != Some(&wanted) {
            self.load_model(model);
        }
    }

    /// Starts a run (two for a race) with the current prompt and settings.
    pub fn run(&self) {
        self.cancel();
        let model = self.state.with_untracked(|s| s.model.clone());
        let (prompt, mut runs) = self.state.with_untracked(|s| {
            let mut runs = vec![s.settings.clone()];
            if let Some(b) = &s.race {
                // Same prompt, same seed: only the sampler differs.
                let mut b = b.clone();
                b.draw_mut().seed = s.settings.seed();
                runs.push(b);
            }
            (s.prompt.clone(), runs)
        });
        let mut lanes = Vec::new();
        for settings in runs.drain(..) {
            let id = self.next_run.get_value() + 1;
            self.next_run.set_value(id);
            let source = model.for_sampler(settings.sampler());
            lanes.push(Lane {
                id,
                settings: settings.clone(),
                model: source.to_string(),
                source: source.clone(),
                awaiting_rerun: false,
                replay: Replay::default(),
                status: RunStatus::Queued,
                elapsed_ms: 0.0,
                trajectory: None,
            });
            self.send(
                &ToWorker::Generate {
                    run: id,
                    prompt: prompt.clone(),
                    settings,
                    model: source,
                },
                None,
            );
        }
        self.lanes.set(lanes);
        self.cursor.set(0);
        self.selected.set(None);
        self.playing.set(true);
    }

    /// Stops the runs in progress.
    pub fn cancel(&self) {
        let live: Vec<u32> = self.lanes.with_untracked(|l| {
            l.iter()
                .filter(|l| !l.status.is_final())
                .map(|l| l.id)
                .collect()
        });
        for run in live {
            self.send(&ToWorker::Cancel { run }, None);
        }
    }

    /// Shows a recorded run (no model needed).
    pub fn import(&self, t: Trajectory) {
        self.cancel();
        let lane = Lane {
            id: 0,
            settings: t.settings.clone(),
            model: t.model.name.clone(),
            source: ModelSource::Default,
            awaiting_rerun: false,
            replay: Replay::from_trajectory(&t),
            status: RunStatus::Imported,
            elapsed_ms: 0.0,
            trajectory: Some(t.clone()),
        };
        self.state.update(|s| {
            s.prompt = t.prompt.clone();
            // Through the link's own rules, so the page's link stays one it would accept.
            let query = PageState {
                settings: t.settings.clone(),
                race: None,
                ..PageState::default()
            }
            .to_query();
            s.settings = PageState::from_query(&query).0.settings;
            s.race = None;
        });
        self.follow_sampler();
        self.lanes.set(vec![lane]);
        self.cursor.set(0);
        self.playing.set(true);
    }

    fn lane_mut(&self, run: u32, f: impl FnOnce(&mut Lane)) {
        self.lanes.update(|lanes| {
            if let Some(l) = lanes.iter_mut().find(|l| l.id == run) {
                f(l)
            }
        });
    }

    fn on_worker_event(&self, event: WorkerEvent) {
        match event {
            WorkerEvent::Message(msg) => self.on_message(msg),
            WorkerEvent::Crashed(why) => self.on_crash(why),
        }
    }

    /// Ends every run still queued or running with `status`.
    fn end_unfinished(&self, status: RunStatus) {
        self.lanes.update(|lanes| {
            for l in lanes.iter_mut().filter(|l| !l.status.is_final()) {
                l.status = status.clone();
            }
        });
    }

    fn on_crash(&self, why: String) {
        let on_gpu = self.gpu_failed.get_value().is_none()
            && self.worker_status.with_untracked(|s| match s {
                WorkerStatus::Ready { backend, .. } => *backend == BackendKind::Wgpu,
                // Crashed while starting: WebGPU only if that is what it was starting.
                WorkerStatus::Starting => {
                    self.state.with_untracked(|s| s.backend) == BackendChoice::Auto
                }
                WorkerStatus::Failed(_) => false,
            });
        let crashes = self.crashes.get_value();
        if on_gpu && crashes < MAX_WORKER_RESTARTS {
            // WebGPU failed (no adapter in the runtime, device lost): the runs in flight are
            // done again on the CPU.
            self.crashes.set_value(crashes + 1);
            return self.rerun_on_cpu(&why, None);
        }
        // Runs in flight and the model are lost with the worker.
        self.end_unfinished(RunStatus::Failed(why.clone()));
        self.model.set(ModelStatus::None);
        let crashes = self.crashes.get_value() + 1;
        self.crashes.set_value(crashes);
        if crashes <= MAX_WORKER_RESTARTS {
            self.restart_worker();
        } else {
            self.worker.set_value(None);
            self.worker_status.set(WorkerStatus::Failed(format!(
                "{why} (the model worker failed {crashes} times; reload the page)"
            )));
        }
    }

    /// Restarts the worker on the CPU and runs again, with the same settings and seed, every run
    /// still going and `failed` (the run the GPU broke): WebGPU failed under it (a lost device,
    /// non-finite numbers), and the CPU gives the same tokens.
    fn rerun_on_cpu(&self, why: &str, failed: Option<u32>) {
        // The first line says it; a backend's error may go on with its causes and a backtrace.
        let why = why.lines().next().unwrap_or_default();
        self.gpu_failed.set_value(Some(format!(
            "WebGPU failed ({why}); the run was done again on the CPU"
        )));
        let again: Vec<u32> = self.lanes.with_untracked(|lanes| {
            lanes
                .iter()
                .filter(|l| !l.status.is_final() || Some(l.id) == failed)
                .map(|l| l.id)
                .collect()
        });
        self.restart_worker();
        self.lanes.update(|lanes| {
            for l in lanes.iter_mut().filter(|l| again.contains(&l.id)) {
                l.status = RunStatus::Queued;
                l.replay = Replay::default();
                l.elapsed_ms = 0.0;
                l.awaiting_rerun = true;
            }
        });
        self.cursor.set(0);
    }

    /// Sends the lanes waiting for a rerun to the (new) worker, under new run ids.
    fn send_reruns(&self) {
        let mut sends = Vec::new();
        self.lanes.update(|lanes| {
            for l in lanes.iter_mut().filter(|l| l.awaiting_rerun) {
                let id = self.next_run.get_value() + 1;
                self.next_run.set_value(id);
                l.id = id;
                l.awaiting_rerun = false;
                sends.push(ToWorker::Generate {
                    run: id,
                    prompt: self.state.with_untracked(|s| s.prompt.clone()),
                    settings: l.settings.clone(),
                    model: l.source.clone(),
                });
            }
        });
        for msg in sends {
            self.send(&msg, None);
        }
        self.playing.set(true);
    }

    fn on_message(&self, msg: FromWorker) {
        match msg {
            FromWorker::Booted => {}
            FromWorker::Ready {
                backend,
                detail,
                fallback,
                half,
            } => self.worker_status.set(WorkerStatus::Ready {
                backend,
                detail,
                fallback: fallback.or_else(|| self.gpu_failed.get_value()),
                half,
            }),
            FromWorker::Progress { load, .. } | FromWorker::Loaded { load, .. }
                if load != self.load_id.get_value() => {}
            FromWorker::Failed {
                load: Some(load), ..
            } if load != self.load_id.get_value() => {}
            FromWorker::Progress {
                file,
                loaded,
                total,
                cached,
                ..
            } => self.model.update(|m| {
                if let ModelStatus::Loading { source, .. } = m {
                    *m = ModelStatus::Loading {
                        source: source.clone(),
                        file,
                        loaded,
                        total,
                        cached,
                    };
                }
            }),
            FromWorker::Loaded { model, .. } => {
                self.model.set(ModelStatus::Loaded(model));
                if self
                    .lanes
                    .with_untracked(|l| l.iter().any(|l| l.awaiting_rerun))
                {
                    return self.send_reruns();
                }
                if self.state.with_untracked(|s| s.autoplay)
                    && self.lanes.with_untracked(Vec::is_empty)
                {
                    self.run();
                }
            }
            FromWorker::Started {
                run,
                mask_id,
                prompt_ids,
                canvas,
                vocab,
            } => {
                self.lane_mut(run, |l| {
                    l.replay = Replay::new(prompt_ids, canvas, mask_id);
                    l.replay.add_vocab(vocab);
                    l.status = RunStatus::Running;
                });
            }
            FromWorker::Step {
                run,
                step,
                vocab,
                elapsed_ms,
            } => {
                let first = step.index == 0;
                self.lane_mut(run, |l| {
                    l.replay.add_vocab(vocab);
                    l.replay.push(step);
                    l.elapsed_ms = elapsed_ms;
                });
                if self.reduced_motion.get_untracked() {
                    self.cursor.set(self.last_step());
                }
                if first {
                    mark_after_paint("unmask:first-step");
                }
            }
            FromWorker::Done {
                run,
                trajectory,
                elapsed_ms,
            } => self.lane_mut(run, |l| {
                l.status = RunStatus::Done;
                l.elapsed_ms = elapsed_ms;
                l.trajectory = Some(*trajectory);
            }),
            FromWorker::Cancelled { run } => {
                self.lane_mut(run, |l| l.status = RunStatus::Cancelled)
            }
            FromWorker::Failed {
                run: Some(run),
                message,
                device_fault: true,
                ..
            } if self.gpu_failed.get_value().is_none() => self.rerun_on_cpu(&message, Some(run)),
            FromWorker::Failed {
                run: Some(run),
                message,
                ..
            } => self.lane_mut(run, |l| l.status = RunStatus::Failed(message)),
            FromWorker::Failed {
                load: Some(_),
                message,
                ..
            } => self.model.set(ModelStatus::Failed(message)),
            FromWorker::Failed {
                run: None,
                stage,
                message,
                ..
            } => match stage.as_str() {
                "load" => self.model.set(ModelStatus::Failed(message)),
                "panic" => self.on_crash(message),
                _ => self.worker_status.set(WorkerStatus::Failed(message)),
            },
        }
    }
}

/// Records a performance mark once the browser has painted the current DOM.
fn mark_after_paint(name: &'static str) {
    request_animation_frame(move || {
        request_animation_frame(move || {
            if let Some(p) = window().performance() {
                let _ = p.mark(name);
            }
        })
    });
}

fn media_matches(query: &str) -> bool {
    window()
        .match_media(query)
        .ok()
        .flatten()
        .is_some_and(|m| m.matches())
}

/// Mounts the page on `<body>`.
pub fn mount() {
    std::panic::set_hook(Box::new(|info| {
        // A panic leaves this wasm instance unusable: say so on the page, as text, and in the
        // console, rather than leave a frozen widget.
        let message = format!("Unmask stopped: {info}. Reload the page to start again.");
        web_sys::console::error_1(&message.clone().into());
        let doc = document();
        if let (Ok(p), Some(body)) = (doc.create_element("p"), doc.body()) {
            p.set_class_name("notice error fatal");
            p.set_text_content(Some(&message));
            let _ = body.prepend_with_node_1(&p);
        }
    }));
    leptos::mount::mount_to_body(App);
}

/// The page.
#[component]
pub fn App() -> impl IntoView {
    let search = window().location().search().unwrap_or_default();
    let (state, notices) = PageState::from_query(&search);
    let ctx = Ctx {
        state: RwSignal::new(state),
        notices: RwSignal::new(notices),
        worker_status: RwSignal::new(WorkerStatus::Starting),
        model: RwSignal::new(ModelStatus::None),
        lanes: RwSignal::new(Vec::new()),
        cursor: RwSignal::new(0),
        playing: RwSignal::new(false),
        selected: RwSignal::new(None),
        reduced_motion: RwSignal::new(media_matches("(prefers-reduced-motion: reduce)")),
        worker: StoredValue::new_local(None),
        next_run: StoredValue::new(0),
        dropped: StoredValue::new_local(None),
        gpu_failed: StoredValue::new(None),
        load_id: StoredValue::new(0),
        loading: StoredValue::new(None),
        crashes: StoredValue::new(0),
    };
    provide_context(ctx);
    ctx.restart_worker();

    // Keep the address bar in step with the state, so a reload or a copied URL reproduces it.
    Effect::new(move |_| {
        let query = ctx.state.with(|s| s.to_query());
        let url = format!("?{query}");
        if let Ok(h) = window().history() {
            let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    });

    // Theme on the root element.
    Effect::new(move |_| {
        let theme = ctx.state.with(|s| s.theme.name());
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-theme", theme);
        }
    });

    let embed = move || ctx.state.with(|s| s.embed);
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        let Some(dt) = ev.data_transfer() else { return };
        let Some(list) = dt.files() else { return };
        if list.length() == 0 {
            return;
        }
        let files = js_sys::Array::new();
        let mut names = Vec::new();
        for i in 0..list.length() {
            if let Some(f) = list.get(i) {
                names.push(f.name());
                files.push(f.unchecked_ref());
            }
        }
        let label = names
            .iter()
            .find(|n| n.ends_with(".safetensors"))
            .cloned()
            .unwrap_or_else(|| names.join(", "));
        ctx.load_dropped(files, label);
    };

    // Player keys anywhere but in a text field or on a control that takes them itself.
    let _keys = window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
        if ev.default_prevented() || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        let busy_target = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|e| {
                matches!(
                    e.tag_name().as_str(),
                    "INPUT" | "TEXTAREA" | "SELECT" | "BUTTON"
                )
            });
        if busy_target {
            return;
        }
        match ev.key().as_str() {
            " " | "k" => ctx.toggle_play(),
            "ArrowLeft" | "j" => ctx.step_by(-1),
            "ArrowRight" | "l" => ctx.step_by(1),
            _ => return,
        }
        ev.prevent_default();
    });

    view! {
        <div
            class="unmask"
            class:embed=embed
            on:dragover=|ev: web_sys::DragEvent| ev.prevent_default()
            on:drop=on_drop
        >
            <Header/>
            <Notices/>
            <Show when=move || !embed()>
                <Controls/>
            </Show>
            <Lanes/>
            <Timeline/>
            <Show when=move || !embed()>
                <div class="panels">
                    <ModelPanel/>
                    <SharePanel/>
                </div>
            </Show>
            <Show when=embed>
                <EmbedBar/>
            </Show>
        </div>
    }
}

#[component]
fn Header() -> impl IntoView {
    let ctx = ctx();
    let badge = move || match ctx.worker_status.get() {
        WorkerStatus::Starting => ("starting", "starting…".to_string(), String::new()),
        WorkerStatus::Ready {
            backend,
            detail,
            fallback,
            half,
        } => {
            let name = match (backend, half) {
                (BackendKind::Wgpu, true) => "WebGPU · f16",
                (BackendKind::Wgpu, false) => "WebGPU",
                (BackendKind::Cpu, _) if ctx.gpu_failed.get_value().is_some() => {
                    "CPU · WebGPU failed"
                }
                (BackendKind::Cpu, _) => "CPU",
            };
            let title = match fallback {
                Some(f) => format!("{detail} — {f}"),
                None => detail,
            };
            (backend.name(), name.to_string(), title)
        }
        WorkerStatus::Failed(e) => ("failed", "no backend".to_string(), e),
    };
    let model = move || match ctx.model.get() {
        ModelStatus::None => String::new(),
        ModelStatus::Loading { source, .. } => format!("loading {source}…"),
        ModelStatus::Loaded(m) => format!("{} · {}", m.name, human_count(m.parameters)),
        ModelStatus::Failed(_) => "model failed to load".into(),
    };
    view! {
        <header class="top">
            <h1><span class="logo">"▚"</span>" Unmask"</h1>
            <span class="model-name" data-testid="model-name">{model}</span>
            <span
                class=move || format!("badge backend-{}", badge().0)
                data-testid="backend"
                data-backend=move || badge().0
                title=move || badge().2
            >
                {move || badge().1}
            </span>
        </header>
    }
}

/// "12.3M" for parameter counts.
pub fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B params", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M params", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k params", n as f64 / 1e3),
        n => format!("{n} params"),
    }
}

#[component]
fn Notices() -> impl IntoView {
    let ctx = ctx();
    let fallback = move || match ctx.worker_status.get() {
        WorkerStatus::Ready {
            fallback: Some(f), ..
        } => Some(f),
        _ => None,
    };
    view! {
        <div class="notices" role="status" aria-live="polite">
            {move || {
                ctx.notices
                    .get()
                    .into_iter()
                    .map(|n| view! { <p class="notice warn">"Ignored in the link: "{n}</p> })
                    .collect_view()
            }}
            {move || fallback().map(|f| view! { <p class="notice info" data-testid="fallback">{f}</p> })}
            {move || match ctx.worker_status.get() {
                WorkerStatus::Failed(e) => {
                    Some(view! { <p class="notice error" data-testid="worker-error">{e}</p> })
                }
                _ => None,
            }}
            {move || match ctx.model.get() {
                ModelStatus::Failed(e) => {
                    Some(view! { <p class="notice error" data-testid="model-error">{e}</p> })
                }
                _ => None,
            }}
        </div>
    }
}

#[component]
fn Lanes() -> impl IntoView {
    let ctx = ctx();
    let count = move || ctx.lanes.with(Vec::len);
    view! {
        <section class="lanes" class:race=move || { count() > 1 }>
            <Show
                when=move || { count() > 0 }
                fallback=move || view! { <Placeholder/> }
            >
                {move || (0..count()).map(|lane| view! { <LaneView lane/> }).collect_view()}
            </Show>
        </section>
    }
}

#[component]
fn Placeholder() -> impl IntoView {
    let ctx = ctx();
    view! {
        <div class="lane placeholder">
            <p>
                {move || if ctx.model_ready() {
                    "Press Run: the masks will resolve into text, step by step."
                } else {
                    "Loading the model…"
                }}
            </p>
        </div>
    }
}

#[component]
fn LaneView(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let get = move |f: &dyn Fn(&Lane) -> String| {
        ctx.lanes.with(|l| l.get(lane).map(f).unwrap_or_default())
    };
    let status = move || get(&|l| l.status.name().to_string());
    let error = move || {
        ctx.lanes.with(|l| match l.get(lane).map(|l| &l.status) {
            Some(RunStatus::Failed(e)) => Some(e.clone()),
            _ => None,
        })
    };
    let at = move || {
        let cursor = ctx.cursor.get();
        ctx.lanes.with(|l| {
            l.get(lane)
                .map_or(0, |l| cursor.min(l.replay.len().saturating_sub(1)))
        })
    };
    let counters = move || {
        let at = at();
        ctx.lanes.with(|lanes| {
            let Some(l) = lanes.get(lane) else {
                return Vec::new();
            };
            let step = l.replay.step(at);
            let calls = step.map_or(0, |s| s.model_calls);
            let masked = step.map_or(0, |s| s.masked.iter().filter(|&&m| m).count());
            let tps = l
                .tokens_per_second(at)
                .map_or("–".into(), |t| format!("{t:.1}"));
            vec![
                (
                    "step",
                    format!(
                        "{}/{}",
                        if l.replay.is_empty() { 0 } else { at + 1 },
                        l.replay.len()
                    ),
                ),
                ("model calls", calls.to_string()),
                ("masked", masked.to_string()),
                ("tokens/s", tps),
            ]
        })
    };
    let text = move || {
        ctx.lanes.with(|l| {
            l.get(lane)
                .and_then(|l| l.trajectory.as_ref().map(|t| t.text.clone()))
                .unwrap_or_default()
        })
    };
    // In a race on two models (the default ones, per sampler), each lane says which it ran on.
    let model = move || {
        ctx.lanes.with(|l| {
            let mixed = l.iter().any(|o| o.model != l[0].model);
            l.get(lane).filter(|_| mixed).map(|l| l.model.clone())
        })
    };
    view! {
        <article
            class="lane"
            data-testid="lane"
            data-status=status
            data-steps=move || ctx.lanes.with(|l| l.get(lane).map_or(0, |l| l.replay.len()))
            data-masked=move || {
                ctx.lanes.with(|l| {
                    l.get(lane)
                        .map(|l| serde_json::to_string(&l.replay.masked_series()).unwrap_or_default())
                        .unwrap_or_default()
                })
            }
            data-text=text
            data-generated=move || {
                ctx.lanes.with(|l| l.get(lane).map_or(0, |l| l.replay.committed_through(usize::MAX)))
            }
            data-elapsed-ms=move || ctx.lanes.with(|l| l.get(lane).map_or(0.0, |l| l.elapsed_ms))
        >
            <header class="lane-head">
                <h2>{move || get(&|l| l.label())}</h2>
                {move || model().map(|m| view! { <span class="lane-model" data-testid="lane-model">{m}</span> })}
                <span class=move || format!("run-status {}", status())>{status}</span>
                <dl class="counters">
                    {move || {
                        counters()
                            .into_iter()
                            .map(|(k, v)| view! { <div><dt>{k}</dt><dd>{v}</dd></div> })
                            .collect_view()
                    }}
                </dl>
            </header>
            {move || error().map(|e| view! { <p class="notice error" data-testid="run-error">{e}</p> })}
            <TokenCanvas lane/>
            <Inspector lane/>
            <Plots lane/>
        </article>
    }
}

#[component]
fn EmbedBar() -> impl IntoView {
    let ctx = ctx();
    let href = move || {
        ctx.state.with(|s| {
            super::controls::page_link(&PageState {
                embed: false,
                ..s.clone()
            })
        })
    };
    view! {
        <div class="embed-bar">
            <button
                class="primary"
                disabled=move || !ctx.model_ready() || ctx.busy()
                on:click=move |_| ctx.run()
            >
                "Run again"
            </button>
            <a href=href target="_blank" rel="noopener">"Open in Unmask ↗"</a>
        </div>
    }
}
