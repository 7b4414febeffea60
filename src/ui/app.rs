//! The page's shell: the [`Session`] in a signal, the model worker it drives, and the layout.
//! What happens on each worker event is `page::session`'s to decide; this file carries out the
//! [`Command`]s and renders.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::backend::BackendKind;
use crate::browser::client::{ModelWorker, WorkerEvent};
use crate::config::Family;
use crate::page::protocol::FromWorker;
use crate::page::session::{Command, Lane, ModelStatus, RunStatus, Session, WorkerStatus};
use crate::page::source::ModelSource;
use crate::page::state::PageState;
use crate::trajectory::AnyTrajectory;

use super::canvas::{Inspector, ScheduleHeatmap, TokenCanvas};
use super::controls::{Controls, ModelPanel, SharePanel};
use super::digits::{DigitsPlots, DigitsView, ForwardView};
use super::plots::Plots;
use super::timeline::Timeline;
use super::unified::UnifiedView;
use super::words::{WordsInspector, WordsPlots, WordsView};

/// Everything the components share (all `Copy` handles).
#[derive(Clone, Copy)]
pub struct Ctx {
    /// The link-carried state.
    pub state: RwSignal<PageState>,
    /// Messages about the URL or the page itself.
    pub notices: RwSignal<Vec<String>>,
    /// Backend, model and runs.
    pub session: RwSignal<Session>,
    /// Timeline position (a step index, shared by the lanes of a race).
    pub cursor: RwSignal<usize>,
    /// Whether the timeline plays.
    pub playing: RwSignal<bool>,
    /// Inspected cell: lane and position.
    pub selected: RwSignal<Option<(usize, usize)>>,
    /// Whether the reader asked for less motion.
    pub reduced_motion: RwSignal<bool>,
    worker: StoredValue<Option<ModelWorker>, LocalStorage>,
    /// Files dropped on the page (kept to reload after a backend switch).
    dropped: StoredValue<Option<js_sys::Array>, LocalStorage>,
}

/// The context, from any component.
pub fn ctx() -> Ctx {
    expect_context::<Ctx>()
}

impl Ctx {
    /// The backend (tracked).
    pub fn worker_status(&self) -> WorkerStatus {
        self.session.with(|s| s.worker.clone())
    }

    /// The model (tracked).
    pub fn model_status(&self) -> ModelStatus {
        self.session.with(|s| s.model.clone())
    }

    /// Reads the lanes (tracked).
    pub fn lanes_with<R>(&self, f: impl FnOnce(&Vec<Lane>) -> R) -> R {
        self.session.with(|s| f(&s.lanes))
    }

    /// Longest lane, in steps.
    pub fn max_steps(&self) -> usize {
        self.session.with(Session::max_steps)
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
        self.session.with(Session::busy)
    }

    /// Whether a model is ready.
    pub fn model_ready(&self) -> bool {
        self.session.with(Session::model_ready)
    }

    /// Runs a transition of the session and carries out what it asks.
    fn transition(&self, f: impl FnOnce(&mut Session, &PageState) -> Vec<Command>) {
        let state = self.state.get_untracked();
        let mut effects = Vec::new();
        self.session.update(|s| effects = f(s, &state));
        self.carry_out(effects);
    }

    /// Carries out a transition's effects. Kept out of line: every transition shares it, rather
    /// than each call site's copy of `transition` inlining its own (the page's size).
    #[inline(never)]
    fn carry_out(&self, effects: Vec<Command>) {
        for effect in effects {
            self.apply(effect);
        }
    }

    fn apply(&self, effect: Command) {
        match effect {
            Command::Spawn => {
                let this = *self;
                self.worker.set_value(None);
                match ModelWorker::spawn(move |event| this.on_worker_event(event)) {
                    Ok(w) => self.worker.set_value(Some(w)),
                    Err(e) => self.session.update(|s| s.spawn_failed(e)),
                }
            }
            Command::Send(msg) => self.send(&msg, None),
            Command::SendWithDropped(msg) => {
                let files = self.dropped.get_value();
                self.send(&msg, files.as_ref());
            }
            Command::Play => {
                self.cursor.set(0);
                self.selected.set(None);
                self.playing.set(true);
            }
            Command::Stepped { first } => {
                if self.reduced_motion.get_untracked() {
                    self.cursor.set(self.last_step());
                }
                if first {
                    mark_after_paint("unmask:first-step");
                }
            }
            Command::Replied { message, reply } => {
                self.state.update(|s| s.add_exchange(message, reply));
            }
        }
    }

    fn send(&self, msg: &crate::page::protocol::ToWorker, files: Option<&js_sys::Array>) {
        self.worker.with_value(|w| {
            if let Some(w) = w {
                w.send(msg, files)
            }
        });
    }

    /// (Re)starts the worker on the preferred backend and loads the current model.
    pub fn restart_worker(&self) {
        self.transition(Session::restart);
    }

    /// Asks the worker for a model (the default: the one trained for the current sampler).
    pub fn load_model(&self, source: ModelSource) {
        self.transition(|s, state| s.load_model(source, state));
    }

    /// Loads files the reader dropped.
    pub fn load_dropped(&self, files: js_sys::Array, label: String) {
        self.dropped.set_value(Some(files));
        let source = ModelSource::Files(label);
        self.state.update(|s| s.model = source.clone());
        self.load_model(source);
    }

    /// Downloads the model held back for its size.
    pub fn load_held(&self) {
        self.transition(Session::load_held);
    }

    /// Loads the model the first run's sampler needs when that changed.
    pub fn follow_sampler(&self) {
        self.transition(Session::follow_sampler);
    }

    /// Starts a run (two for a race) with the current prompt and settings.
    pub fn run(&self) {
        self.transition(Session::run);
    }

    /// Stops the runs in progress.
    pub fn cancel(&self) {
        self.transition(|s, _| s.cancel());
    }

    /// Shows a recorded run (no model needed), with its family, prompt and settings in the
    /// page's link.
    pub fn import(&self, t: AnyTrajectory) {
        self.state.update(|s| match &t {
            AnyTrajectory::Text(t) => {
                s.family = Family::Text;
                s.prompt = t.prompt.clone();
                s.settings = t.settings.clone();
                s.race = None;
            }
            AnyTrajectory::Ddpm(t) => {
                s.family = Family::Ddpm;
                s.ddpm = t.settings.clone();
                s.ddpm_race = None;
            }
            AnyTrajectory::DiffusionLm(t) => {
                s.family = Family::DiffusionLm;
                s.prompt = t.prompt.clone();
                s.words = t.settings.clone();
                s.words_race = None;
            }
            AnyTrajectory::Unified(t) => {
                s.family = Family::Unified;
                s.unified.set_task(&t.task);
                s.unified_race = None;
            }
        });
        self.follow_sampler();
        self.transition(|s, _| s.import(t));
    }

    /// Switches the page to `family`: its settings as they were, and its model.
    pub fn switch_family(&self, family: Family) {
        if self.state.with_untracked(|s| s.family) == family {
            return;
        }
        self.cancel();
        self.state.update(|s| s.family = family);
        self.follow_sampler();
    }

    fn on_worker_event(&self, event: WorkerEvent) {
        match event {
            WorkerEvent::Message(msg) => {
                // The load's phases, as performance marks beside "unmask:first-step" (the
                // page's bench reads them: where the time to the first painted step goes).
                let phase = match &msg {
                    FromWorker::Ready { .. } => Some("unmask:backend-ready"),
                    FromWorker::Loaded { .. } => Some("unmask:model-loaded"),
                    FromWorker::Started { .. } => Some("unmask:run-started"),
                    FromWorker::Warmed { .. } => Some("unmask:warmed"),
                    // Only a run's first step: the rest would ask the timeline for nothing.
                    FromWorker::Step { step, .. } if step.index() == 0 => {
                        Some("unmask:step-received")
                    }
                    _ => None,
                };
                if let Some(name) = phase {
                    mark_once(name);
                }
                self.transition(|s, state| s.on_message(msg, state))
            }
            WorkerEvent::Crashed(why) => self.transition(|s, state| s.on_crash(why, state)),
        }
    }
}

/// Records a performance mark now, unless one of that name exists already.
pub fn mark_once(name: &str) {
    if let Some(p) = window().performance()
        && p.get_entries_by_name(name).length() == 0
    {
        let _ = p.mark(name);
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
        session: RwSignal::new(Session::default()),
        cursor: RwSignal::new(0),
        playing: RwSignal::new(false),
        selected: RwSignal::new(None),
        reduced_motion: RwSignal::new(media_matches("(prefers-reduced-motion: reduce)")),
        worker: StoredValue::new_local(None),
        dropped: StoredValue::new_local(None),
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
            .find(|n| {
                let n = n.to_ascii_lowercase();
                n.ends_with(".safetensors") || n.ends_with(".gguf")
            })
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
            <Show when=move || !embed() && ctx.state.with(|s| s.family == Family::Ddpm)>
                <ForwardView/>
            </Show>
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
    let badge = move || match ctx.worker_status() {
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
                (BackendKind::Cpu, _) if ctx.session.with(|s| s.gpu_failed().is_some()) => {
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
    let model = move || match ctx.model_status() {
        ModelStatus::None => String::new(),
        ModelStatus::Loading { source, .. } => format!("loading {source}…"),
        ModelStatus::Held { source, .. } => format!("{source}: not loaded yet"),
        ModelStatus::Loaded(m) => {
            format!("{} · {}", m.name, crate::page::human_count(m.parameters))
        }
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

#[component]
fn Notices() -> impl IntoView {
    let ctx = ctx();
    let fallback = move || match ctx.worker_status() {
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
            {move || match ctx.worker_status() {
                WorkerStatus::Failed(e) => {
                    Some(view! { <p class="notice error" data-testid="worker-error">{e}</p> })
                }
                _ => None,
            }}
            {move || {
                ctx.session
                    .with(|s| s.model_notes.clone())
                    .into_iter()
                    .map(|n| view! { <p class="notice info" data-testid="model-note">{n}</p> })
                    .collect_view()
            }}
            {move || match ctx.model_status() {
                ModelStatus::Failed(e) => {
                    Some(view! { <p class="notice error" data-testid="model-error">{e}</p> }.into_any())
                }
                ModelStatus::Held { file, bytes, limit, .. } => Some(view! {
                    <p class="notice info" data-testid="held">
                        {format!(
                            "This model's {file} is {}, more than the {} this page downloads without asking. ",
                            crate::page::human_bytes(bytes),
                            crate::page::human_bytes(limit)
                        )}
                        <button class="primary" data-testid="load-held" on:click=move |_| ctx.load_held()>
                            {format!("Load {}", crate::page::human_bytes(bytes))}
                        </button>
                    </p>
                }.into_any()),
                _ => None,
            }}
        </div>
    }
}

#[component]
fn Lanes() -> impl IntoView {
    let ctx = ctx();
    let count = move || ctx.lanes_with(Vec::len);
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
    let family = move || ctx.state.with(|s| s.family);
    view! {
        <div class="lane placeholder">
            <p>
                {move || match (ctx.model_ready(), family()) {
                    (false, _) => "Loading the model…",
                    (true, Family::Text) => "Press Run: the masks will resolve into text, step by step.",
                    (true, Family::Unified) => "Press Run: the digit's cells, or the caption's words, will unmask step by step.",
                    (true, Family::Ddpm) => "Press Run: a digit will emerge from the noise, step by step.",
                    (true, Family::DiffusionLm) => "Press Run: every word drifts from noise at once, rounded to the nearest word at each step.",
                }}
            </p>
        </div>
    }
}

#[component]
fn LaneView(lane: usize) -> impl IntoView {
    let ctx = ctx();
    let get = move |f: &dyn Fn(&Lane) -> String| {
        ctx.lanes_with(|l| l.get(lane).map(f).unwrap_or_default())
    };
    let status = move || get(&|l| l.status.name().to_string());
    let error = move || {
        ctx.lanes_with(|l| match l.get(lane).map(|l| &l.status) {
            Some(RunStatus::Failed(e)) => Some(e.clone()),
            _ => None,
        })
    };
    let family = move || ctx.lanes_with(|l| l.get(lane).map(|l| l.job.family()));
    let at = move || {
        let cursor = ctx.cursor.get();
        ctx.lanes_with(|l| {
            l.get(lane)
                .map_or(0, |l| cursor.min(l.record.len().saturating_sub(1)))
        })
    };
    let counters = move || {
        let at = at();
        ctx.lanes_with(|lanes| {
            let Some(l) = lanes.get(lane) else {
                return Vec::new();
            };
            let len = l.record.len();
            let mut counters = vec![(
                "step",
                format!(
                    "{}/{}",
                    if len == 0 { 0 } else { at + 1 },
                    match (l.images(), l.words()) {
                        (Some(r), _) => r.total(),
                        (_, Some(r)) => r.total(),
                        _ => len,
                    }
                ),
            )];
            if let Some(r) = l.text() {
                let step = r.step(at);
                let calls = step.map_or(0, |s| s.model_calls);
                let masked = step.map_or(0, |s| s.masked.iter().filter(|&&m| m).count());
                let tps = l
                    .tokens_per_second(at)
                    .map_or("–".into(), |t| format!("{t:.1}"));
                counters.extend([
                    ("model calls", calls.to_string()),
                    ("masked", masked.to_string()),
                    ("tokens/s", tps),
                ]);
            }
            if let Some(r) = l.words() {
                let step = r.step(at);
                counters.extend([
                    ("t", step.map_or("–".into(), |s| s.t.to_string())),
                    (
                        "noise",
                        step.map_or("–".into(), |s| format!("{:.3}", s.noise_level)),
                    ),
                    (
                        "changed",
                        step.map_or("–".into(), |s| s.changed.len().to_string()),
                    ),
                    (
                        "steps/s",
                        l.steps_per_second(at)
                            .map_or("–".into(), |t| format!("{t:.1}")),
                    ),
                ]);
            }
            if let Some(r) = l.images() {
                let step = r.step(at);
                counters.extend([
                    ("t", step.map_or("–".into(), |s| s.t.to_string())),
                    (
                        "noise",
                        step.map_or("–".into(), |s| format!("{:.3}", s.noise_level)),
                    ),
                    (
                        "steps/s",
                        l.steps_per_second(at)
                            .map_or("–".into(), |t| format!("{t:.1}")),
                    ),
                ]);
            }
            counters
        })
    };
    let text = move || {
        ctx.lanes_with(|l| {
            l.get(lane)
                .and_then(|l| match &l.trajectory {
                    Some(AnyTrajectory::Text(t)) => Some(t.text.clone()),
                    Some(AnyTrajectory::DiffusionLm(t)) => Some(t.text.clone()),
                    Some(AnyTrajectory::Unified(t)) => Some(t.caption.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        })
    };
    // In a race on two models (the default ones, per sampler), each lane says which it ran on.
    let model = move || {
        ctx.lanes_with(|l| {
            let mixed = l.iter().any(|o| o.model != l[0].model);
            l.get(lane).filter(|_| mixed).map(|l| l.model.clone())
        })
    };
    let text_attr = move |f: &dyn Fn(&crate::page::Replay) -> String| {
        ctx.lanes_with(|l| {
            l.get(lane)
                .and_then(|l| l.text())
                .map(f)
                .unwrap_or_default()
        })
    };
    view! {
        <article
            class="lane"
            data-testid="lane"
            data-family=move || family().map_or("", |f| f.name())
            data-status=status
            data-steps=move || ctx.lanes_with(|l| l.get(lane).map_or(0, |l| l.record.len()))
            data-masked=move || text_attr(&|r| serde_json::to_string(&r.masked_series()).unwrap_or_default())
            data-text=text
            data-generated=move || text_attr(&|r| r.committed_through(usize::MAX).to_string())
            data-samples=move || {
                ctx.lanes_with(|l| {
                    l.get(lane)
                        .filter(|l| l.status.is_final())
                        .and_then(|l| l.images()?.samples().map(|x| serde_json::to_string(x).unwrap_or_default()))
                        .unwrap_or_default()
                })
            }
            data-elapsed-ms=move || ctx.lanes_with(|l| l.get(lane).map_or(0.0, |l| l.elapsed_ms))
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
            {move || match family() {
                Some(Family::Ddpm) => view! {
                    <DigitsView lane/>
                    <DigitsPlots lane/>
                }
                .into_any(),
                Some(Family::DiffusionLm) => view! {
                    <WordsView lane/>
                    <WordsInspector lane/>
                    <WordsPlots lane/>
                }
                .into_any(),
                Some(Family::Unified) => view! {
                    <UnifiedView lane/>
                    <TokenCanvas lane/>
                    <Inspector lane/>
                    <Plots lane/>
                }
                .into_any(),
                _ => view! {
                    <ScheduleHeatmap lane/>
                    <TokenCanvas lane/>
                    <Inspector lane/>
                    <Plots lane/>
                }
                .into_any(),
            }}
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
