//! The model worker: a dedicated Web Worker that owns the backend, the model and the runs, so the
//! page stays responsive while the GPU (or the CPU fallback) works.
//!
//! `www/worker.js` imports the same wasm module as the page and calls [`start`]. Each run is an
//! async task stepping a [`Generation`] (text) or an [`ImageRun`] (digits) on its own fork of the
//! model (same weights, its own KV cache), so the two runs of a race interleave step by step.
//! Between steps a task yields to the event loop, which is where a `cancel` message gets in.
//!
//! A digits model (`family: "ddpm"`) loads with the noisy classifier its config names beside it;
//! a classifier that fails to load turns classifier guidance off and says why, the rest runs.
//!
//! It holds at most two models: the one loaded last, and the one a race's second run needs when
//! it differs (on the default models, an `ar` run raced against `bd3` runs on another model).

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use js_sys::{Array, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{DedicatedWorkerGlobalScope, File, MessageEvent};

use crate::backend::{self, BackendKind};
use crate::bundle::{
    Bundle, CONFIG_FILE, ImageBundle, ShardIndex, TOKENIZER_FILE, TextConfig, TextNetwork,
    UnifiedBundle, Unloaded, VectorBundle, WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
    control_classifier_from_files, family_of,
};
use crate::chat::{
    CHAT_TEMPLATE_FILE, ChatTemplate, Conversation, Message, Role, TOKENIZER_CONFIG_FILE,
    chat_settings, end_of_turn_ids, reply_text,
};
use crate::config::{Attention, Family};
use crate::engine::Generation;
use crate::model::diffusion_lm::{DiffusionLmClassifier, DiffusionLmConfig};
use crate::model::gguf::{Gguf, HEADER_CHUNK, Prefix};
use crate::model::gguf_import::{ImportOptions, Imported, plan};
use crate::model::load::HEADER_LENGTH_BYTES;
use crate::model::patch_dit::{PatchDitClassifier, PatchDitConfig, PatchDitNoise};
use crate::model::{Assembled, Header, Headers, Pieces, TensorSource};
use crate::network::NoisePredictor;
use crate::page::memory::check_memory;
use crate::page::protocol::{
    ClassifierStatus, FromWorker, Job, LoadedModel, Network, Opening, RunStep, ToWorker,
};
use crate::page::source::{
    DroppedWeights, GPT2_TOKENIZER_URL, ModelSource, classify_dropped, classify_dropped_gguf,
    dropped_shards, page_attention,
};
use crate::page::state::BackendChoice;
use crate::sampler::diffusion_lm::{VectorRun, VectorSettings};
use crate::sampler::image::{ImageRun, ImageSettings};
use crate::trajectory::AnyTrajectory;
use crate::trajectory::images::ImageTrajectory;
use crate::trajectory::unified::UnifiedTrajectory;
use crate::trajectory::vectors::VectorTrajectory;
use crate::unified::{UnifiedError, UnifiedRun, UnifiedTask};

use super::fetch::{Stored, fetch_file};
use super::{js_error, now_ms};

/// The GPT-2 vocabulary plus the appended mask row.
const GPT2_MASKED_VOCAB: usize = 50258;

struct State {
    /// Start and load requests, handled one after the other (a load needs the backend).
    queue: VecDeque<(ToWorker, Option<Array>)>,
    /// Whether a task is working through `queue`.
    draining: bool,
    device: Option<burn::tensor::Device>,
    /// The WebGPU adapter's largest storage buffer binding, when running on it.
    gpu_max_binding: Option<u64>,
    /// Whether weights are held in f16.
    half: bool,
    /// The models held: the one loaded last first, then at most one a race asked for.
    models: Vec<Held>,
    cancelled: HashSet<u32>,
}

/// A loaded model and where it came from.
struct Held {
    source: ModelSource,
    bundle: Rc<Loaded>,
}

/// A model of either family, on the backend.
enum Loaded {
    /// A text denoiser with its tokenizer.
    Text(Box<TextHeld>),
    /// A digits noise predictor and the classifier its folder names.
    Ddpm(Box<Digits>),
    /// A Diffusion-LM denoiser and the control classifier its folder names.
    DiffusionLm(Box<Words>),
    /// A denoiser of text and image tokens with its tokenizer and layout.
    Unified(Box<UnifiedBundle>),
}

/// A text model and, for a chat model, its template.
struct TextHeld {
    bundle: Bundle,
    /// The most weight bytes held at once while loading, when read a stage at a time.
    streamed: Option<u64>,
    /// The chat template, or why this model cannot chat (no template, or one that does not
    /// parse).
    template: Result<ChatTemplate, String>,
}

impl TextHeld {
    /// The generation `job` asks for, and for a chat the ids that end the reply. A chat's
    /// prompt is the conversation through the model's template, the reader's message last.
    fn generation(
        &self,
        prompt: &str,
        settings: crate::sampler::Settings,
        chat: Option<Vec<Message>>,
    ) -> Result<(Generation, Option<Vec<u32>>), Unprepared> {
        let spec = self.bundle.model_spec();
        let codec = &self.bundle.codec;
        let Some(mut messages) = chat else {
            let generation = Generation::new(settings, prompt, codec, &spec)?;
            return Ok((generation, None));
        };
        let template = self
            .template
            .as_ref()
            .map_err(|e| Unprepared::Chat(e.clone()))?;
        messages.push(Message::new(Role::User, prompt));
        let chat_error = |e: crate::chat::ChatError| Unprepared::Chat(e.to_string());
        let (text, ids) = Conversation::from(messages)
            .prompt(template, codec)
            .map_err(chat_error)?;
        let generation = Generation::from_ids(settings, &ids, &spec)?.with_prompt_text(text);
        Ok((generation, Some(end_of_turn_ids(codec))))
    }
}

/// Why a text run could not start.
enum Unprepared {
    /// The settings do not describe a run on this model.
    Sample(crate::sampler::SampleError),
    /// The chat's prompt could not be made.
    Chat(String),
}

impl From<crate::sampler::SampleError> for Unprepared {
    fn from(e: crate::sampler::SampleError) -> Self {
        Self::Sample(e)
    }
}

/// A digits model.
struct Digits {
    config: PatchDitConfig,
    noise: PatchDitNoise,
    /// The classifier and where it came from, when it loaded.
    classifier: Option<(String, PatchDitClassifier)>,
    /// What the page is told about it.
    classifier_status: Option<ClassifierStatus>,
}

/// A Diffusion-LM model.
struct Words {
    bundle: VectorBundle,
    /// The control classifier and where it came from, when it loaded.
    classifier: Option<(String, DiffusionLmClassifier)>,
    /// What the page is told about it.
    classifier_status: Option<ClassifierStatus>,
}

/// Most models held at once (the page's model and a race's second one).
const MAX_HELD: usize = 2;

impl State {
    /// The held model loaded from `source`, if any.
    fn held(&self, source: &ModelSource) -> Option<Rc<Loaded>> {
        self.models
            .iter()
            .find(|h| &h.source == source)
            .map(|h| h.bundle.clone())
    }

    /// Holds `bundle` as the page's model; an older copy of the same source is dropped, and of
    /// the others only the newest stays (a race's model).
    fn hold_loaded(&mut self, source: ModelSource, bundle: Loaded) {
        self.models.retain(|h| h.source != source);
        self.models.insert(
            0,
            Held {
                source,
                bundle: Rc::new(bundle),
            },
        );
        self.models.truncate(MAX_HELD);
    }

    /// Holds `bundle` beside the page's model (replacing any other second model).
    fn hold_beside(&mut self, source: ModelSource, bundle: Loaded) -> Rc<Loaded> {
        let bundle = Rc::new(bundle);
        self.models.truncate(MAX_HELD - 1);
        self.models.push(Held {
            source,
            bundle: bundle.clone(),
        });
        bundle
    }
}

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post(msg: &FromWorker) {
    let _ = scope().post_message(&JsValue::from_str(&msg.to_json()));
}

fn fail(run: Option<u32>, stage: &str, message: impl Into<String>) {
    post(&FromWorker::Failed {
        run,
        load: None,
        stage: stage.into(),
        message: message.into(),
        device_fault: false,
        knob: None,
    });
}

/// A run whose settings do not describe a run on this model: the message, and the knob to change.
fn fail_settings(run: u32, e: &crate::sampler::SettingsError) {
    post(&FromWorker::Failed {
        run: Some(run),
        load: None,
        stage: "generate".into(),
        message: e.to_string(),
        device_fault: false,
        knob: e.fix().map(|f| f.knob.key().to_owned()),
    });
}

/// Entry point, called by `worker.js` once the module is instantiated.
#[wasm_bindgen(js_name = workerStart)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        // The instance is unusable after a panic: the page replaces this worker.
        fail(None, "panic", format!("the model worker crashed: {info}"));
    }));
    let state = Rc::new(RefCell::new(State {
        queue: VecDeque::new(),
        draining: false,
        device: None,
        gpu_max_binding: None,
        half: false,
        models: Vec::new(),
        cancelled: HashSet::new(),
    }));
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let json = Reflect::get(&data, &"json".into())
            .ok()
            .and_then(|j| j.as_string())
            .unwrap_or_default();
        let files = Reflect::get(&data, &"files".into())
            .ok()
            .and_then(|f| f.dyn_into::<Array>().ok());
        match serde_json::from_str::<ToWorker>(&json) {
            Ok(msg) => handle(state.clone(), msg, files),
            Err(e) => fail(None, "message", format!("unreadable message: {e}")),
        }
    });
    scope().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    post(&FromWorker::Booted);
}

fn handle(state: Rc<RefCell<State>>, msg: ToWorker, files: Option<Array>) {
    if let ToWorker::Cancel { run } = msg {
        state.borrow_mut().cancelled.insert(run);
        return;
    }
    let start = {
        let mut s = state.borrow_mut();
        s.queue.push_back((msg, files));
        !std::mem::replace(&mut s.draining, true)
    };
    if start {
        spawn_local(drain(state));
    }
}

/// Handles queued requests in order: a load waits for the backend, a run for the model. Runs
/// themselves go on in their own tasks, so two can interleave and a cancel gets in between steps.
async fn drain(state: Rc<RefCell<State>>) {
    loop {
        let next = state.borrow_mut().queue.pop_front();
        let Some((msg, files)) = next else {
            state.borrow_mut().draining = false;
            return;
        };
        match msg {
            ToWorker::Start { backend, half } => start_backend(state.clone(), backend, half).await,
            ToWorker::Load {
                load: id,
                source,
                limit,
                attention,
            } => {
                // A newer load already queued makes this one moot: skip its download.
                if state
                    .borrow()
                    .queue
                    .iter()
                    .any(|(m, _)| matches!(m, ToWorker::Load { .. }))
                {
                    continue;
                }
                let t0 = now_ms();
                match load(&state, Some(id), &source, files, limit, attention).await {
                    Ok(bundle) => {
                        let mut model = describe(&bundle, &source);
                        model.load_seconds = (now_ms() - t0) / 1000.0;
                        state.borrow_mut().hold_loaded(source, bundle);
                        post(&FromWorker::Loaded { load: id, model });
                    }
                    Err(LoadStop::Held { file, bytes, limit }) => post(&FromWorker::Held {
                        load: id,
                        file,
                        bytes,
                        limit,
                    }),
                    Err(LoadStop::Failed(message)) => post(&FromWorker::Failed {
                        run: None,
                        load: Some(id),
                        stage: "load".into(),
                        message,
                        device_fault: false,
                        knob: None,
                    }),
                }
            }
            ToWorker::Generate { run, job, model } => {
                // Here, in order, so the race's two runs share one load of a second model.
                match model_for(&state, &model).await {
                    Ok(loaded) => {
                        let name = model.to_string();
                        match (job, &*loaded) {
                            (
                                Job::Text {
                                    prompt,
                                    settings,
                                    chat,
                                },
                                Loaded::Text(_),
                            ) => spawn_local(generate(
                                state.clone(),
                                run,
                                (prompt, settings, chat),
                                loaded,
                                name,
                            )),
                            (Job::Ddpm { settings }, Loaded::Ddpm(_)) => {
                                spawn_local(draw(state.clone(), run, settings, loaded, name))
                            }
                            (Job::DiffusionLm { prompt, settings }, Loaded::DiffusionLm(_)) => {
                                spawn_local(write_words(
                                    state.clone(),
                                    run,
                                    (prompt, settings),
                                    loaded,
                                    name,
                                ))
                            }
                            (Job::Unified { task }, Loaded::Unified(_)) => {
                                spawn_local(unify(state.clone(), run, task, loaded, name))
                            }
                            (job, held) => fail(
                                Some(run),
                                "generate",
                                format!(
                                    "{name} is a {} model and this run is a {} run; load a {} model",
                                    held.family().name(),
                                    job.family().name(),
                                    job.family().name()
                                ),
                            ),
                        }
                    }
                    Err(e) => fail(Some(run), "load", e),
                }
            }
            ToWorker::Warm { job, model } => {
                let (held, host) = {
                    let s = state.borrow();
                    (
                        s.held(&model),
                        s.device.as_ref().is_none_or(backend::is_host),
                    )
                };
                match held {
                    // The CPU backend compiles nothing: a step now would only make a Run
                    // clicked meanwhile wait for it.
                    Some(loaded) if !host => spawn_local(warm(job, loaded)),
                    _ => post(&FromWorker::Warmed { elapsed_ms: 0.0 }),
                }
            }
            ToWorker::Cancel { run } => {
                state.borrow_mut().cancelled.insert(run);
            }
        }
    }
}

/// Whether `navigator.gpu` gives an adapter (asked before burn is, so a browser without one
/// falls back cleanly instead of failing inside the runtime), and its largest storage binding.
async fn webgpu_adapter() -> Result<u64, String> {
    let navigator: JsValue = scope().navigator().into();
    let gpu = Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser has no WebGPU (navigator.gpu is missing)".into());
    }
    let request = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or("navigator.gpu.requestAdapter is missing")?;
    let promise: Promise = request
        .call0(&gpu)
        .map_err(|e| js_error(&e))?
        .dyn_into()
        .map_err(|e| js_error(&e))?;
    let adapter = JsFuture::from(promise).await.map_err(|e| js_error(&e))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("WebGPU is present but offers no adapter (GPU blocked or disabled)".into());
    }
    let limits = Reflect::get(&adapter, &"limits".into()).unwrap_or(JsValue::UNDEFINED);
    let limit = |name: &str| {
        Reflect::get(&limits, &name.into())
            .ok()
            .and_then(|v| v.as_f64())
            .map_or(u64::MAX, |v| v as u64)
    };
    Ok(limit("maxStorageBufferBindingSize").min(limit("maxBufferSize")))
}

async fn start_backend(state: Rc<RefCell<State>>, choice: BackendChoice, half: bool) {
    let mut fallback = None;
    let mut kind = BackendKind::Cpu;
    let mut max_binding = None;
    if choice == BackendChoice::Auto {
        match webgpu_adapter().await {
            Ok(limit) => {
                kind = BackendKind::Wgpu;
                max_binding = Some(limit);
            }
            Err(why) => fallback = Some(why),
        }
    }
    let device = match backend::init_async(kind).await {
        Ok(d) => d,
        Err(e) if kind == BackendKind::Wgpu => {
            fallback = Some(e.to_string());
            kind = BackendKind::Cpu;
            match backend::init_async(kind).await {
                Ok(d) => d,
                Err(e) => return fail(None, "start", e.to_string()),
            }
        }
        Err(e) => return fail(None, "start", e.to_string()),
    };
    let mut device = device;
    let half = half && kind == BackendKind::Wgpu && backend::use_half_precision(&mut device);
    let detail = backend::describe(&device);
    let mut s = state.borrow_mut();
    s.gpu_max_binding = max_binding.filter(|_| kind == BackendKind::Wgpu);
    s.half = half;
    s.device = Some(device);
    drop(s);
    post(&FromWorker::Ready {
        backend: kind,
        detail,
        fallback,
        half,
    });
}

/// A dropped GGUF file as a model folder's files ([`crate::model::gguf_import`]), read from
/// disk a piece at a time: the header from a growing prefix, then each tensor, converted and
/// appended to the weights before the next is read — the weights are held, never the file.
async fn import_dropped_gguf(
    state: &Rc<RefCell<State>>,
    file: &File,
    rebuild_tokenizer: bool,
) -> Result<Imported, String> {
    let stored = Stored::Dropped(file.clone());
    let len = stored.size();
    let mut want = HEADER_CHUNK.min(len);
    let header = loop {
        let prefix = stored.read(0..want).await.map_err(|e| e.to_string())?;
        match Gguf::from_prefix(&prefix, len).map_err(|e| e.to_string())? {
            Prefix::Header(header) => break header,
            Prefix::Read(more) => want = more,
        }
    };
    let options = ImportOptions {
        block_size: None,
        rebuild_tokenizer,
    };
    let plan = plan(&header, &options).map_err(|e| e.to_string())?;
    // Refused before a tensor is read, as a folder's config is before its download.
    check_fits(
        state,
        &TextConfig::from_json(&plan.config).map_err(|e| e.to_string())?,
    )?;
    let mut weights = Vec::with_capacity(usize::try_from(plan.weights_len()).unwrap_or(0));
    plan.write_header(&mut weights).map_err(|e| e.to_string())?;
    for (index, info) in plan.tensors().enumerate() {
        let bytes = stored
            .read(info.range.clone())
            .await
            .map_err(|e| e.to_string())?;
        plan.write_tensor(index, &bytes, &mut weights)
            .map_err(|e| e.to_string())?;
    }
    Ok(plan.into_imported(weights))
}

async fn file_bytes(file: &File) -> Result<Vec<u8>, String> {
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("cannot read {}: {}", file.name(), js_error(&e)))?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// The model a run asked for: a held one, or else `source` loaded now and held beside the page's.
async fn model_for(state: &Rc<RefCell<State>>, source: &ModelSource) -> Result<Rc<Loaded>, String> {
    if let Some(bundle) = state.borrow().held(source) {
        return Ok(bundle);
    }
    if matches!(source, ModelSource::Files(_)) {
        return Err("the dropped files are no longer loaded; drop them on the page again".into());
    }
    let bundle = load(state, None, source, None, None, None)
        .await
        .map_err(|e| format!("{source}: {}", e.message()))?;
    Ok(state.borrow_mut().hold_beside(source.clone(), bundle))
}

impl Loaded {
    fn family(&self) -> Family {
        match self {
            Loaded::Text(_) => Family::Text,
            Loaded::Ddpm(_) => Family::Ddpm,
            Loaded::DiffusionLm(_) => Family::DiffusionLm,
            Loaded::Unified(_) => Family::Unified,
        }
    }
}

/// What the page shows of a model.
fn describe(loaded: &Loaded, source: &ModelSource) -> LoadedModel {
    match loaded {
        Loaded::Text(text) => {
            let bundle = &text.bundle;
            let c = &bundle.config;
            // As it runs: its config's attention, or the page's ([`page_attention`]).
            let spec = bundle.model_spec();
            let attention = spec.attention;
            LoadedModel {
                name: source.to_string(),
                network: Network::Text(spec),
                parameters: c.parameter_count(),
                shape: match c {
                    TextConfig::Dit(d) => format!(
                        "{} blocks × {} wide, {} heads, {} attention",
                        d.n_blocks,
                        d.hidden_dim,
                        d.n_heads,
                        attention.name()
                    ),
                    TextConfig::Transformer(t) => format!(
                        "{}: {} blocks × {} wide, {}/{} heads, {} attention",
                        t.architecture.model_type(),
                        t.num_hidden_layers,
                        t.hidden_size,
                        t.num_attention_heads,
                        t.num_key_value_heads,
                        attention.name()
                    ),
                },
                load_seconds: 0.0,
                chat: match (&text.template, c) {
                    (Ok(_), TextConfig::Transformer(t)) => Some(chat_settings(t, attention)),
                    _ => None,
                },
                streamed: text.streamed,
                default_attention: match c {
                    TextConfig::Transformer(_) => page_attention(&source.to_string(), c, None)
                        .ok()
                        .map(|(a, _)| a),
                    TextConfig::Dit(_) => None,
                },
            }
        }
        Loaded::Ddpm(d) => {
            let c = &d.config;
            LoadedModel {
                name: source.to_string(),
                network: Network::Ddpm {
                    spec: d.noise.spec().clone(),
                    classifier: d.classifier_status.clone(),
                },
                parameters: c.parameter_count(),
                shape: format!(
                    "{} blocks × {} wide, {} heads, {}×{} patches, T = {}",
                    c.n_blocks,
                    c.hidden_dim,
                    c.n_heads,
                    c.patch_size,
                    c.patch_size,
                    c.diffusion_steps
                ),
                load_seconds: 0.0,
                chat: None,
                streamed: None,
                default_attention: None,
            }
        }
        Loaded::Unified(u) => {
            let c = &u.config;
            LoadedModel {
                name: source.to_string(),
                network: Network::Unified(crate::sampler::Denoiser::spec(&u.model).clone()),
                parameters: crate::model::parameter_count(c),
                shape: format!(
                    "{} blocks × {} wide, {} heads, {} positions: a caption and an 8×8 digit in one vocabulary",
                    c.n_blocks, c.hidden_dim, c.n_heads, c.model_length
                ),
                load_seconds: 0.0,
                chat: None,
                streamed: None,
                default_attention: None,
            }
        }
        Loaded::DiffusionLm(w) => {
            let c = &w.bundle.config;
            LoadedModel {
                name: source.to_string(),
                network: Network::DiffusionLm {
                    spec: c.vector_spec(),
                    classifier: w.classifier_status.clone(),
                    labels: w
                        .classifier
                        .as_ref()
                        .map(|(_, k)| k.labels().to_vec())
                        .unwrap_or_default(),
                },
                parameters: c.parameter_count(),
                shape: format!(
                    "{} blocks × {} wide, {} heads, {} positions of {}-number word vectors, T = {}",
                    c.n_blocks,
                    c.hidden_dim,
                    c.n_heads,
                    c.model_length,
                    c.embed_dim,
                    c.diffusion_steps
                ),
                load_seconds: 0.0,
                chat: None,
                streamed: None,
                default_attention: None,
            }
        }
    }
}

/// Why a load ended without a model.
enum LoadStop {
    /// It failed: what happened and what to do.
    Failed(String),
    /// Its weights are larger than the load's limit: not downloaded.
    Held {
        /// The file.
        file: String,
        /// Its size, at least.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
}

impl LoadStop {
    /// The download of weights `file` that stopped with `e`: held back when over the limit.
    fn fetch(file: &str, e: super::fetch::FetchError) -> Self {
        match e {
            super::fetch::FetchError::OverLimit { bytes, limit, .. } => LoadStop::Held {
                file: file.into(),
                bytes,
                limit,
            },
            e => LoadStop::Failed(e.to_string()),
        }
    }

    /// In words.
    fn message(&self) -> String {
        match self {
            LoadStop::Failed(m) => m.clone(),
            LoadStop::Held { file, bytes, limit } => {
                format!("{file} is {bytes} bytes, over the {limit} downloaded without asking")
            }
        }
    }
}

impl From<String> for LoadStop {
    fn from(message: String) -> Self {
        LoadStop::Failed(message)
    }
}

impl From<&str> for LoadStop {
    fn from(message: &str) -> Self {
        LoadStop::Failed(message.to_owned())
    }
}

/// A checkpoint's weights as the page holds them: `model.safetensors`, or the shards of
/// `model.safetensors.index.json` (each file by name), read a run of bytes at a time.
struct Weights {
    files: Vec<(String, Stored)>,
    index: Option<ShardIndex>,
}

impl Weights {
    /// One file.
    fn one(name: &str, file: Stored) -> Self {
        Self {
            files: vec![(name.to_owned(), file)],
            index: None,
        }
    }

    /// Whether every byte is in memory already (nothing is read from a cache or a disk).
    fn in_memory(&self) -> bool {
        self.files
            .iter()
            .all(|(_, f)| matches!(f, Stored::Memory(_)))
    }

    /// Each file's header, read before its data, checked against the index where there is one.
    async fn headers(&self) -> Result<Headers, String> {
        let mut headers = Vec::with_capacity(self.files.len());
        for (name, file) in &self.files {
            let read = async |range| file.read(range).await.map_err(|e| e.to_string());
            let size = file.size();
            let in_file = |e: crate::model::LoadError| format!("{name}: {e}");
            let length = Header::length(&read(0..HEADER_LENGTH_BYTES.min(size)).await?, size)
                .map_err(in_file)?;
            let header = read(HEADER_LENGTH_BYTES..HEADER_LENGTH_BYTES + length).await?;
            headers.push(Header::parse(&header, size).map_err(in_file)?);
        }
        if let Some(index) = &self.index {
            let named: Vec<(&str, &dyn TensorSource)> = self
                .files
                .iter()
                .zip(&headers)
                .map(|((name, _), h)| (name.as_str(), h as &dyn TensorSource))
                .collect();
            index.check(&named).map_err(|e| e.to_string())?;
        }
        Headers::new(headers).map_err(|e| e.to_string())
    }
}

/// The checkpoint of the folder whose files are at `url(name)`: `model.safetensors`, or where
/// the folder has none, the shards its `model.safetensors.index.json` names, each downloaded
/// (and kept) on its own. `limit` bounds the bytes of them all: an index that states its total
/// above it downloads nothing.
async fn download_checkpoint(
    progress: Option<u32>,
    url: &dyn Fn(&str) -> String,
    limit: Option<u64>,
) -> Result<Weights, LoadStop> {
    let whole = match download_file(progress, &url(WEIGHTS_FILE), WEIGHTS_FILE, limit).await {
        Ok(file) => return Ok(Weights::one(WEIGHTS_FILE, file)),
        Err(e) if e.is_not_found() => e,
        Err(e) => return Err(LoadStop::fetch(WEIGHTS_FILE, e)),
    };
    let index = match download_raw(progress, &url(WEIGHTS_INDEX_FILE), WEIGHTS_INDEX_FILE).await {
        Ok(bytes) => ShardIndex::from_json(&bytes).map_err(|e| e.to_string())?,
        // Neither: the weights' own 404 says what is missing.
        Err(e) if e.is_not_found() => return Err(whole.to_string().into()),
        Err(e) => return Err(e.to_string().into()),
    };
    let files = index.files().map_err(|e| e.to_string())?;
    if let (Some(bytes), Some(limit)) = (index.total_size(), limit)
        && bytes > limit
    {
        return Err(LoadStop::Held {
            file: format!("the {} shards of {WEIGHTS_INDEX_FILE}", files.len()),
            bytes,
            limit,
        });
    }
    let mut left = limit;
    let mut shards = Vec::with_capacity(files.len());
    for file in files {
        let stored = match download_file(progress, &url(&file), &file, left).await {
            Ok(stored) => stored,
            Err(e) if e.is_not_found() => {
                return Err(format!("{WEIGHTS_INDEX_FILE} names {file}: {e}").into());
            }
            Err(e) => return Err(LoadStop::fetch(&file, e)),
        };
        left = left.map(|l| l.saturating_sub(stored.size()));
        shards.push((file, stored));
    }
    Ok(Weights {
        files: shards,
        index: Some(index),
    })
}

/// The dropped weights ([`DroppedWeights`]) among `files`: one file, or an index and its shards.
async fn dropped_weights(
    files: &[File],
    names: &[String],
    weights: &DroppedWeights,
) -> Result<Weights, String> {
    Ok(match weights {
        DroppedWeights::File(i) => Weights::one(&names[*i], Stored::Dropped(files[*i].clone())),
        DroppedWeights::Sharded { index, shards } => {
            let index = ShardIndex::from_json(&file_bytes(&files[*index]).await?)
                .map_err(|e| e.to_string())?;
            let ordered =
                dropped_shards(&index.files().map_err(|e| e.to_string())?, names, shards)?;
            Weights {
                files: ordered
                    .into_iter()
                    .map(|i| (names[i].clone(), Stored::Dropped(files[i].clone())))
                    .collect(),
                index: Some(index),
            }
        }
    })
}

/// Reads a model from `source` onto the backend. `progress` is the page's load id when the page
/// shows the download (a race's second model loads without a bar); `limit`, for a load the page
/// started by itself, the most bytes of weights it may download; `attention`, how a text model
/// is to attend when not as its config says ([`page_attention`]). The config decides the
/// family: a digits folder needs no tokenizer, and brings the classifier it names.
async fn load(
    state: &Rc<RefCell<State>>,
    progress: Option<u32>,
    source: &ModelSource,
    files: Option<Array>,
    limit: Option<u64>,
    attention: Option<Attention>,
) -> Result<Loaded, LoadStop> {
    let device = state
        .borrow()
        .device
        .clone()
        .ok_or("no backend yet: the page starts one before loading")?;
    if let Some(again) = reattend(state, progress, source, attention)? {
        return Ok(again);
    }
    let (config, weights, tokenizer, special, jinja) = match (source, files) {
        (ModelSource::Files(_), Some(files)) => {
            let files: Vec<File> = files.iter().filter_map(|f| f.dyn_into().ok()).collect();
            let names: Vec<String> = files.iter().map(|f| f.name()).collect();
            if let Some(gguf) = classify_dropped_gguf(&names) {
                let gguf = gguf?;
                let own_tokenizer = match gguf.tokenizer {
                    Some(t) => Some(file_bytes(&files[t]).await?),
                    None => None,
                };
                let imported =
                    import_dropped_gguf(state, &files[gguf.file], own_tokenizer.is_none())
                        .await
                        .map_err(|e| format!("{}: {e}", names[gguf.file]))?;
                let tokenizer = own_tokenizer
                    .or(imported.tokenizer)
                    .ok_or("the GGUF file's vocabulary was not rebuilt")?;
                (
                    imported.config,
                    Weights::one(&names[gguf.file], Stored::Memory(imported.weights)),
                    tokenizer,
                    Some(imported.tokenizer_config),
                    None,
                )
            } else {
                let dropped = classify_dropped(&names)?;
                let config = file_bytes(&files[dropped.config]).await?;
                let family = family_of(&config).map_err(|e| e.to_string())?;
                if family != Family::Text {
                    let DroppedWeights::File(weights) = dropped.weights else {
                        return Err(format!(
                            "a {} checkpoint is one model.safetensors, not shards",
                            family.name()
                        )
                        .into());
                    };
                    let weights = file_bytes(&files[weights]).await?;
                    if family == Family::Ddpm {
                        return Ok(load_digits(progress, source, &config, &weights, &device).await?);
                    }
                    let tokenizer = dropped.tokenizer.ok_or(format!(
                        "a {} folder reads its tokens with its tokenizer.json: drop it too",
                        family.name()
                    ))?;
                    let tokenizer = file_bytes(&files[tokenizer]).await?;
                    let files = (&config[..], &weights[..], &tokenizer[..]);
                    if family == Family::Unified {
                        return Ok(load_unified(files, &device)?);
                    }
                    return Ok(load_words(progress, source, files, &device).await?);
                }
                let text = TextConfig::from_json(&config).map_err(|e| e.to_string())?;
                check_fits(state, &text)?;
                let tokenizer = match dropped.tokenizer {
                    Some(t) => file_bytes(&files[t]).await?,
                    None => {
                        fallback_tokenizer(progress, &text, "no tokenizer file was dropped").await?
                    }
                };
                let mut special = None;
                let mut jinja = None;
                for (index, into) in [
                    (dropped.tokenizer_config, &mut special),
                    (dropped.chat_template, &mut jinja),
                ] {
                    if let Some(i) = index {
                        *into = Some(file_bytes(&files[i]).await?);
                    }
                }
                let weights = dropped_weights(&files, &names, &dropped.weights).await?;
                (config, weights, tokenizer, special, jinja)
            }
        }
        (ModelSource::Files(_), None) => return Err("the dropped files did not arrive".into()),
        (source, _) => {
            let url = |f: &str| source.file_url(f).expect("a URL source");
            let config = download(progress, &url(CONFIG_FILE), CONFIG_FILE).await?;
            let family = family_of(&config).map_err(|e| e.to_string())?;
            if family != Family::Text {
                let weights = download_file(progress, &url(WEIGHTS_FILE), WEIGHTS_FILE, limit)
                    .await
                    .map_err(|e| LoadStop::fetch(WEIGHTS_FILE, e))?;
                let weights = weights.into_bytes().await.map_err(|e| e.to_string())?;
                if family == Family::Ddpm {
                    return Ok(load_digits(progress, source, &config, &weights, &device).await?);
                }
                let tokenizer = download(progress, &url(TOKENIZER_FILE), TOKENIZER_FILE).await?;
                let files = (&config[..], &weights[..], &tokenizer[..]);
                if family == Family::Unified {
                    return Ok(load_unified(files, &device)?);
                }
                return Ok(load_words(progress, source, files, &device).await?);
            }
            let text = TextConfig::from_json(&config).map_err(|e| e.to_string())?;
            check_fits(state, &text)?;
            let tokenizer = match download_raw(progress, &url(TOKENIZER_FILE), TOKENIZER_FILE).await
            {
                Ok(t) => t,
                Err(e) if e.is_not_found() => {
                    fallback_tokenizer(progress, &text, "the folder has no tokenizer.json").await?
                }
                Err(e) => return Err(e.to_string().into()),
            };
            let weights = download_checkpoint(progress, &url, limit).await?;
            // The transformers' folders name BOS and EOS there (the DiT's never have one).
            let (special, jinja) = if matches!(text, TextConfig::Transformer(_)) {
                let optional =
                    async |file: &str| match download_raw(progress, &url(file), file).await {
                        Ok(bytes) => Ok(Some(bytes)),
                        Err(e) if e.is_not_found() => Ok(None),
                        Err(e) => Err(e.to_string()),
                    };
                let special = optional(TOKENIZER_CONFIG_FILE).await?;
                // Newer saves keep the template beside tokenizer_config.json.
                let inline = special
                    .as_deref()
                    .is_some_and(|b| ChatTemplate::from_tokenizer_config(b, None, None).is_ok());
                let jinja = if inline {
                    None
                } else {
                    optional(CHAT_TEMPLATE_FILE).await?
                };
                (special, jinja)
            } else {
                (None, None)
            };
            (config, weights, tokenizer, special, jinja)
        }
    };
    let unloaded =
        Unloaded::from_files(&config, &tokenizer, special.as_deref()).map_err(|e| e.to_string())?;
    let (network, held) = assemble(&unloaded, &weights, &device).await?;
    let streamed = (!weights.in_memory()).then_some(held);
    let mut bundle = unloaded.with_network(network, &device);
    let (attention, note) = page_attention(&source.to_string(), &bundle.config, attention)?;
    if attention != bundle.config.attention() {
        bundle.model.set_attention(attention);
    }
    if let (Some(message), Some(load)) = (note, progress) {
        post(&FromWorker::Note { load, message });
    }
    let jinja = match jinja.map(String::from_utf8) {
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => return Err(format!("{CHAT_TEMPLATE_FILE} is not UTF-8 text").into()),
        None => None,
    };
    let template = ChatTemplate::from_tokenizer_config(
        special.as_deref().unwrap_or(b"{}"),
        jinja.as_deref(),
        Some(&bundle.codec),
    )
    .map_err(|e| e.to_string());
    Ok(Loaded::Text(Box::new(TextHeld {
        bundle,
        streamed,
        template,
    })))
}

/// The text model held from `source` under the `attention` asked for, when it is held under
/// another: the same weights (not read again), a denoiser of its own attending anew.
fn reattend(
    state: &Rc<RefCell<State>>,
    progress: Option<u32>,
    source: &ModelSource,
    attention: Option<Attention>,
) -> Result<Option<Loaded>, String> {
    let Some(held) = state.borrow().held(source) else {
        return Ok(None);
    };
    let Loaded::Text(text) = &*held else {
        return Ok(None);
    };
    let (attention, note) = page_attention(&source.to_string(), &text.bundle.config, attention)?;
    if attention == text.bundle.model_spec().attention {
        return Ok(None);
    }
    let mut model = text.bundle.model.fork();
    model.set_attention(attention);
    if let (Some(message), Some(load)) = (note, progress) {
        post(&FromWorker::Note { load, message });
    }
    Ok(Some(Loaded::Text(Box::new(TextHeld {
        bundle: Bundle {
            config: text.bundle.config.clone(),
            codec: text.bundle.codec.clone(),
            model,
        },
        streamed: text.streamed,
        template: text.template.clone(),
    }))))
}

/// Builds a text model's network from its weights `file` a stage at a time
/// ([`Unloaded::assembly`]): the header first, checked against the config before a tensor is
/// read, then each stage's tensors, read, put on `device` and dropped before the next. A
/// gigabyte checkpoint is never held whole in wasm memory; answers the network and the most
/// weight bytes held at once.
async fn assemble(
    unloaded: &Unloaded,
    weights: &Weights,
    device: &burn::tensor::Device,
) -> Result<(TextNetwork, u64), String> {
    let headers = weights.headers().await?;
    let mut assembly = unloaded
        .assembly(&headers, device)
        .map_err(|e| e.to_string())?;
    let mut held = 0;
    loop {
        let mut runs = Vec::new();
        for run in headers.runs(&assembly.keys()) {
            let bytes = weights.files[run.file].1.read(run.range.clone()).await;
            runs.push((run, bytes.map_err(|e| e.to_string())?));
        }
        let pieces = Pieces::new(&headers, runs);
        held = held.max(pieces.len());
        match assembly.build(&pieces).map_err(|e| e.to_string())? {
            Assembled::More(next) => assembly = next,
            Assembled::Done(network) => return Ok((network, held)),
        }
    }
}

/// A digits noise predictor from its files, and the classifier its config names beside it.
async fn load_digits(
    progress: Option<u32>,
    source: &ModelSource,
    config: &[u8],
    weights: &[u8],
    device: &burn::tensor::Device,
) -> Result<Loaded, String> {
    let bundle = ImageBundle::from_files(config, weights, device).map_err(|e| e.to_string())?;
    let config = bundle.config.clone();
    let noise = bundle.into_noise().map_err(|e| {
        format!("{e}: this folder is a noisy classifier; load the ddpm model that names it")
    })?;
    let (classifier, classifier_status) = classifier_beside(
        config.classifier.as_ref(),
        source,
        "classifier guidance",
        PatchDitClassifier::class_count,
        |at| async move { load_classifier(progress, &at, device).await },
    )
    .await;
    Ok(Loaded::Ddpm(Box::new(Digits {
        config,
        noise,
        classifier,
        classifier_status,
    })))
}

/// A text + image model from its files (config, weights, tokenizer).
fn load_unified(
    (config, weights, tokenizer): (&[u8], &[u8], &[u8]),
    device: &burn::tensor::Device,
) -> Result<Loaded, String> {
    let bundle =
        UnifiedBundle::from_files(config, tokenizer, weights, device).map_err(|e| e.to_string())?;
    Ok(Loaded::Unified(Box::new(bundle)))
}

/// A Diffusion-LM denoiser from its files (config, weights, tokenizer), and the control
/// classifier its config names beside it.
async fn load_words(
    progress: Option<u32>,
    source: &ModelSource,
    (config, weights, tokenizer): (&[u8], &[u8], &[u8]),
    device: &burn::tensor::Device,
) -> Result<Loaded, String> {
    let bundle =
        VectorBundle::from_files(config, weights, tokenizer, device).map_err(|e| e.to_string())?;
    let denoiser = &bundle.config;
    let (classifier, classifier_status) = classifier_beside(
        denoiser.classifier.as_ref(),
        source,
        "control",
        |c: &DiffusionLmClassifier| c.labels().len(),
        |at| async move { load_control(progress, &at, denoiser, device).await },
    )
    .await;
    Ok(Loaded::DiffusionLm(Box::new(Words {
        bundle,
        classifier,
        classifier_status,
    })))
}

/// The control classifier in the folder `at`, for the denoiser of `denoiser`.
async fn load_control(
    progress: Option<u32>,
    at: &ModelSource,
    denoiser: &DiffusionLmConfig,
    device: &burn::tensor::Device,
) -> Result<DiffusionLmClassifier, String> {
    let (config, weights) = classifier_files(progress, at).await?;
    control_classifier_from_files(&config, &weights, denoiser, device).map_err(|e| e.to_string())
}

/// The classifier a model's config names (`named`, a folder beside `source`), read by `load`,
/// and what the page is told of it: loaded with its `classes`, or why not and that `what` is off
/// (the model itself works without it).
async fn classifier_beside<C, F>(
    named: Option<&String>,
    source: &ModelSource,
    what: &str,
    classes: impl Fn(&C) -> usize,
    load: impl FnOnce(ModelSource) -> F,
) -> (Option<(String, C)>, Option<ClassifierStatus>)
where
    F: std::future::Future<Output = Result<C, String>>,
{
    let Some(named) = named else {
        return (None, None);
    };
    let Some(at) = source.beside(named) else {
        let message =
            format!("the classifier `{named}` cannot be found beside {source}; {what} is off");
        let name = named.clone();
        return (None, Some(ClassifierStatus::Failed { name, message }));
    };
    let name = at.to_string();
    match load(at).await {
        Ok(c) => {
            let status = ClassifierStatus::Loaded {
                name: name.clone(),
                classes: classes(&c),
            };
            (Some((name, c)), Some(status))
        }
        Err(message) => {
            let message = format!("{name}: {message}; {what} is off");
            (None, Some(ClassifierStatus::Failed { name, message }))
        }
    }
}

/// A classifier folder's `config.json` and `model.safetensors`.
async fn classifier_files(
    progress: Option<u32>,
    at: &ModelSource,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let url = |f: &str| at.file_url(f).ok_or("dropped files name no folder");
    let config = download(progress, &url(CONFIG_FILE)?, "classifier config.json").await?;
    let weights = download(
        progress,
        &url(WEIGHTS_FILE)?,
        "classifier model.safetensors",
    )
    .await?;
    Ok((config, weights))
}

/// The noisy classifier in the folder `at`.
async fn load_classifier(
    progress: Option<u32>,
    at: &ModelSource,
    device: &burn::tensor::Device,
) -> Result<PatchDitClassifier, String> {
    let (config, weights) = classifier_files(progress, at).await?;
    ImageBundle::from_files(&config, &weights, device)
        .and_then(ImageBundle::into_classifier)
        .map_err(|e| e.to_string())
}

/// Refuses, before any weights are downloaded, a model that does not fit the page's memory or is
/// too large for its CPU fallback ([`check_memory`]), or whose largest tensor cannot be one
/// buffer on this GPU (where the tab would otherwise fail deep inside the runtime).
fn check_fits(state: &Rc<RefCell<State>>, config: &TextConfig) -> Result<(), String> {
    let on_cpu = state.borrow().device.as_ref().is_none_or(backend::is_host);
    check_memory(config, on_cpu)?;
    let Some(max) = state.borrow().gpu_max_binding else {
        return Ok(());
    };
    let bytes = config.largest_tensor_bytes(bytes_per_weight(state));
    if bytes > max {
        return Err(format!(
            "this model's largest tensor is {:.0} MB, more than this GPU's largest buffer ({:.0} MB); tick \"force CPU\" to run it on the CPU",
            bytes as f64 / 1e6,
            max as f64 / 1e6
        ));
    }
    Ok(())
}

/// Bytes per weight on the device.
fn bytes_per_weight(state: &Rc<RefCell<State>>) -> u64 {
    if state.borrow().half { 2 } else { 4 }
}

/// GPT-2's tokenizer for the GPT-2-based checkpoints that ship none.
async fn fallback_tokenizer(
    progress: Option<u32>,
    config: &TextConfig,
    why: &str,
) -> Result<Vec<u8>, String> {
    if !matches!(config, TextConfig::Dit(_)) || config.vocab_size() != GPT2_MASKED_VOCAB {
        return Err(format!(
            "{why}, and its vocabulary ({} tokens) is not GPT-2's plus a mask ({GPT2_MASKED_VOCAB}); add its tokenizer.json",
            config.vocab_size()
        ));
    }
    download(progress, GPT2_TOKENIZER_URL, "tokenizer.json (GPT-2)").await
}

/// The file at `url`, whole in memory.
async fn download_raw(
    progress: Option<u32>,
    url: &str,
    file: &str,
) -> Result<Vec<u8>, super::fetch::FetchError> {
    download_file(progress, url, file, None)
        .await?
        .into_bytes()
        .await
}

/// The file at `url`, stopping before it when larger than `limit` bytes: a large one of
/// another origin is left in Cache Storage to be read a range at a time ([`Stored`]).
async fn download_file(
    progress: Option<u32>,
    url: &str,
    file: &str,
    limit: Option<u64>,
) -> Result<Stored, super::fetch::FetchError> {
    fetch_file(
        url,
        limit,
        &mut |loaded, total, cached| {
            if let Some(load) = progress {
                post(&FromWorker::Progress {
                    load,
                    file: file.into(),
                    loaded,
                    total,
                    cached,
                })
            }
        },
        &mut |message| {
            if let Some(load) = progress {
                post(&FromWorker::Note { load, message })
            }
        },
    )
    .await
}

async fn download(progress: Option<u32>, url: &str, file: &str) -> Result<Vec<u8>, String> {
    download_raw(progress, url, file)
        .await
        .map_err(|e| e.to_string())
}

/// Resolves on the next turn of the event loop, after the messages already queued (a `cancel`
/// gets in here). A message to ourselves through a `MessageChannel` rather than `setTimeout(0)`,
/// which browsers clamp to 4 ms once nested: that clamp alone was most of a small model's step.
async fn yield_now() {
    let promise = Promise::new(&mut |resolve, _| match web_sys::MessageChannel::new() {
        Ok(channel) => {
            channel.port1().set_onmessage(Some(&resolve));
            let _ = channel.port2().post_message(&JsValue::NULL);
        }
        Err(_) => {
            let _ = scope().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Whether a failure is the GPU's (lost, unreadable, non-finite numbers): the page recovers from
/// that on the CPU; the CPU failing, or bad input, is the reader's to fix.
fn device_fault(state: &Rc<RefCell<State>>, e: &crate::sampler::SampleError) -> bool {
    let on_gpu = state.borrow().gpu_max_binding.is_some();
    on_gpu && matches!(e, crate::sampler::SampleError::Model(m) if m.is_device_fault())
}

fn failed_run(state: &Rc<RefCell<State>>, run: u32, e: crate::sampler::SampleError) {
    if let crate::sampler::SampleError::Settings(e) = &e {
        return fail_settings(run, e);
    }
    post(&FromWorker::Failed {
        run: Some(run),
        load: None,
        stage: "generate".into(),
        device_fault: device_fault(state, &e),
        message: e.to_string(),
        knob: None,
    });
}

/// The messages of a token-canvas run (text, or text + image), each carrying the text of the
/// token ids it shows that the run has not sent before.
struct TokenTexts<'a> {
    codec: &'a crate::text::TextCodec,
    run: u32,
    known: HashSet<u32>,
}

impl<'a> TokenTexts<'a> {
    fn new(codec: &'a crate::text::TextCodec, run: u32) -> Self {
        Self {
            codec,
            run,
            known: HashSet::new(),
        }
    }

    /// The texts of `ids` not sent yet.
    fn fresh(&mut self, ids: impl Iterator<Item = u32>) -> Vec<(u32, String)> {
        ids.filter(|&id| self.known.insert(id))
            .map(|id| (id, self.codec.token_text(id)))
            .collect()
    }

    /// The run's start: `prompt_ids` of the model's `mask_id`, then `canvas`.
    fn opening(&mut self, mask_id: u32, prompt_ids: &[u32], canvas: &[u32]) -> FromWorker {
        FromWorker::Started {
            run: self.run,
            opening: Opening::Text {
                mask_id,
                prompt_ids: prompt_ids.to_vec(),
                canvas: canvas.to_vec(),
                vocab: self.fresh(canvas.iter().copied()),
            },
        }
    }

    /// One step, `elapsed_ms` into the run: its canvas's and candidates' new texts with it.
    fn step(&mut self, step: &crate::sampler::Step, elapsed_ms: f64) -> FromWorker {
        let candidates = step.candidates.iter().flat_map(|c| &c.top);
        let ids = step
            .canvas
            .iter()
            .copied()
            .chain(candidates.map(|t| t.token));
        FromWorker::Step {
            run: self.run,
            step: RunStep::Text {
                vocab: self.fresh(ids),
                step: step.clone(),
            },
            elapsed_ms,
        }
    }
}

/// A text job: the prompt, the sampler, and a chat's messages before the prompt.
type TextJob = (String, crate::sampler::Settings, Option<Vec<Message>>);

async fn generate(
    state: Rc<RefCell<State>>,
    run: u32,
    (prompt, settings, chat): TextJob,
    loaded: Rc<Loaded>,
    name: String,
) {
    let Loaded::Text(text) = &*loaded else {
        return fail(Some(run), "generate", "not a text model");
    };
    let bundle = &text.bundle;
    let spec = bundle.model_spec();
    let mut model = bundle.model.fork();
    let (mut generation, end_of_turn) = match text.generation(&prompt, settings, chat) {
        Ok(g) => g,
        Err(Unprepared::Sample(e)) => return failed_run(&state, run, e),
        Err(Unprepared::Chat(e)) => return fail(Some(run), "generate", e),
    };
    // The page keeps every step (the timeline, the matrix, the trajectory).
    if let Err(e) = generation.check_recordable() {
        return fail_settings(run, &e);
    }
    let t0 = now_ms();
    let mut texts = TokenTexts::new(&bundle.codec, run);
    let canvas = generation.sampler().canvas().tokens();
    post(&texts.opening(spec.mask_id, generation.prompt_ids(), canvas));
    loop {
        if state.borrow_mut().cancelled.remove(&run) {
            return post(&FromWorker::Cancelled { run });
        }
        match generation.next(&mut model).await {
            Ok(Some(step)) => post(&texts.step(step, now_ms() - t0)),
            Ok(None) => {
                let trajectory = generation.trajectory(&name, &bundle.codec, &spec);
                let reply = end_of_turn.map(|ends| {
                    let tokens = generation.sampler().canvas().tokens();
                    let generated = tokens.get(generation.prompt_ids().len()..).unwrap_or(&[]);
                    reply_text(&bundle.codec, generated, &ends)
                });
                return post(&FromWorker::Done {
                    run,
                    trajectory: Box::new(AnyTrajectory::Text(trajectory)),
                    elapsed_ms: now_ms() - t0,
                    reply,
                });
            }
            Err(e) => return failed_run(&state, run, e),
        }
        yield_now().await;
    }
}

/// The silent steps of `job` on `loaded` up to its first model call, so the kernels that call
/// needs are compiled before the reader asks for the run ([`ToWorker::Warm`]). Whatever fails here fails again,
/// and is reported, in the run itself.
async fn warm(job: Job, loaded: Rc<Loaded>) {
    let t0 = now_ms();
    match (job, &*loaded) {
        (
            Job::Text {
                prompt,
                settings,
                chat,
            },
            Loaded::Text(text),
        ) => {
            if let Ok((mut generation, _)) = text.generation(&prompt, settings, chat) {
                let mut model = text.bundle.model.fork();
                // Up to the first step that calls the model (diffusion forcing's first steps
                // may draw nothing).
                while let Ok(Some(step)) = generation.next(&mut model).await {
                    if step.model_calls > 0 {
                        break;
                    }
                }
            }
        }
        (Job::Unified { task }, Loaded::Unified(u)) => {
            let spec = crate::sampler::Denoiser::spec(&u.model).clone();
            if let Ok(mut unified_run) = UnifiedRun::new(&task, &u.layout, &u.codec, &spec) {
                let mut model = u.model.fork();
                let _ = unified_run.next(&mut model).await;
            }
        }
        (Job::Ddpm { settings }, Loaded::Ddpm(digits)) => {
            let mut noise = digits.noise.clone();
            let mut classifier = digits.classifier.as_ref().map(|(_, c)| c.clone());
            let classes = classifier.as_ref().map(PatchDitClassifier::class_count);
            if let Ok(mut image_run) = ImageRun::new(&settings, noise.spec(), classes) {
                let _ = image_run.step(&mut noise, classifier.as_mut()).await;
            }
        }
        _ => {}
    }
    post(&FromWorker::Warmed {
        elapsed_ms: now_ms() - t0,
    });
}

/// Runs Diffusion-LM's reverse chain, one denoiser call per step (and, under control, the
/// classifier's gradient steps), sending each step's words.
async fn write_words(
    state: Rc<RefCell<State>>,
    run: u32,
    (prompt, settings): (String, VectorSettings),
    loaded: Rc<Loaded>,
    name: String,
) {
    let Loaded::DiffusionLm(words) = &*loaded else {
        return fail(Some(run), "generate", "not a Diffusion-LM model");
    };
    let bundle = &words.bundle;
    let spec = bundle.config.vector_spec();
    // `[MASK]` in the prompt is a gap to fill.
    let prompt_ids = match bundle.codec.encode_with_masks(&prompt) {
        Ok(ids) => ids,
        Err(e) => return fail(Some(run), "generate", format!("the prompt: {e}")),
    };
    let mask_id = bundle.codec.mask_id();
    let mut vector_run = match VectorRun::infilling(&settings, &prompt_ids, Some(mask_id), &spec) {
        Ok(r) => r,
        Err(e) => return fail_settings(run, &e),
    };
    // The inspector shows each position's nearest words.
    vector_run.show_candidates(true);
    let mut denoiser = bundle.denoiser.clone();
    let (classifier_name, mut classifier) = match &words.classifier {
        Some((n, c)) => (Some(n.clone()), Some(c.clone())),
        None => (None, None),
    };
    let mut known: HashSet<u32> = prompt_ids.iter().copied().collect();
    let text_of = |ids: Vec<u32>| -> Vec<(u32, String)> {
        ids.into_iter()
            .map(|id| (id, bundle.codec.token_text(id)))
            .collect()
    };
    let t0 = now_ms();
    post(&FromWorker::Started {
        run,
        opening: Opening::DiffusionLm {
            prompt_ids: prompt_ids.clone(),
            mask_id: Some(mask_id),
            gen_length: settings.gen_length,
            vocab: text_of(known.iter().copied().collect()),
            steps: vector_run.total_steps(),
        },
    });
    let mut steps = Vec::with_capacity(vector_run.total_steps());
    loop {
        if state.borrow_mut().cancelled.remove(&run) {
            return post(&FromWorker::Cancelled { run });
        }
        match vector_run
            .step_with(&mut denoiser, classifier.as_mut())
            .await
        {
            Ok(Some(step)) => {
                let fresh: Vec<u32> = step.words().filter(|&id| known.insert(id)).collect();
                post(&FromWorker::Step {
                    run,
                    step: RunStep::DiffusionLm {
                        step: step.clone(),
                        vocab: text_of(fresh),
                    },
                    elapsed_ms: now_ms() - t0,
                });
                steps.push(step);
            }
            Ok(None) => {
                let steered = settings.control.is_some();
                let trajectory = VectorTrajectory::new(
                    &name,
                    &spec,
                    classifier_name.filter(|_| steered),
                    settings,
                    (&prompt, &prompt_ids),
                    steps,
                    &bundle.codec,
                );
                return post(&FromWorker::Done {
                    run,
                    trajectory: Box::new(AnyTrajectory::DiffusionLm(trajectory)),
                    elapsed_ms: now_ms() - t0,
                    reply: None,
                });
            }
            Err(e) => return failed_run(&state, run, e),
        }
        yield_now().await;
    }
}

/// Runs a text + image task: MaskGIT drawing a caption's digit, or LLaDA captioning a digit, one
/// step of the token canvas at a time (each a [`RunStep::Text`], as a text run's).
async fn unify(
    state: Rc<RefCell<State>>,
    run: u32,
    task: UnifiedTask,
    loaded: Rc<Loaded>,
    name: String,
) {
    let Loaded::Unified(u) = &*loaded else {
        return fail(Some(run), "generate", "not a text + image model");
    };
    let spec = crate::sampler::Denoiser::spec(&u.model).clone();
    let mut unified_run = match UnifiedRun::new(&task, &u.layout, &u.codec, &spec) {
        Ok(r) => r,
        Err(UnifiedError::Settings(e)) => return fail_settings(run, &e),
        Err(e) => return fail(Some(run), "generate", e.to_string()),
    };
    let mut model = u.model.fork();
    let t0 = now_ms();
    let mut texts = TokenTexts::new(&u.codec, run);
    let canvas = unified_run.prompt_ids();
    post(&texts.opening(spec.mask_id, canvas, canvas));
    loop {
        if state.borrow_mut().cancelled.remove(&run) {
            return post(&FromWorker::Cancelled { run });
        }
        match unified_run.next(&mut model).await {
            Ok(Some(step)) => post(&texts.step(step, now_ms() - t0)),
            Ok(None) => {
                let trajectory =
                    UnifiedTrajectory::new(&name, &spec, &task, &unified_run, &u.codec);
                return post(&FromWorker::Done {
                    run,
                    trajectory: Box::new(AnyTrajectory::Unified(trajectory)),
                    elapsed_ms: now_ms() - t0,
                    reply: None,
                });
            }
            Err(e) => return failed_run(&state, run, e),
        }
        yield_now().await;
    }
}

/// Runs an image chain on a digits model, one noise-predictor call per step.
async fn draw(
    state: Rc<RefCell<State>>,
    run: u32,
    settings: ImageSettings,
    loaded: Rc<Loaded>,
    name: String,
) {
    let Loaded::Ddpm(digits) = &*loaded else {
        return fail(Some(run), "generate", "not a digits model");
    };
    let spec = digits.noise.spec().clone();
    let mut noise = digits.noise.clone();
    let (classifier_name, mut classifier) = match &digits.classifier {
        Some((n, c)) => (Some(n.clone()), Some(c.clone())),
        None => (None, None),
    };
    let classes = classifier.as_ref().map(PatchDitClassifier::class_count);
    let mut image_run = match ImageRun::new(&settings, &spec, classes) {
        Ok(r) => r,
        Err(e) => return fail_settings(run, &e),
    };
    let t0 = now_ms();
    post(&FromWorker::Started {
        run,
        opening: Opening::Ddpm {
            side: spec.side,
            count: settings.condition().count,
            x: image_run.images().iter().map(|&v| v as f32).collect(),
            steps: image_run.total_steps(),
        },
    });
    let mut steps = Vec::with_capacity(image_run.total_steps());
    loop {
        if state.borrow_mut().cancelled.remove(&run) {
            return post(&FromWorker::Cancelled { run });
        }
        match image_run.step(&mut noise, classifier.as_mut()).await {
            Ok(Some(step)) => {
                post(&FromWorker::Step {
                    run,
                    step: RunStep::Ddpm(step.clone()),
                    elapsed_ms: now_ms() - t0,
                });
                steps.push(step);
            }
            Ok(None) => {
                let trajectory =
                    ImageTrajectory::new(&name, &spec, classifier_name, settings, &steps);
                return post(&FromWorker::Done {
                    run,
                    trajectory: Box::new(AnyTrajectory::Ddpm(trajectory)),
                    elapsed_ms: now_ms() - t0,
                    reply: None,
                });
            }
            Err(e) => return failed_run(&state, run, e),
        }
        yield_now().await;
    }
}
