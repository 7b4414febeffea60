//! Messages between the page and its model worker, as JSON text (one `serde_json` string per
//! `postMessage`; dropped files travel beside it as `File` objects).
//!
//! The worker says [`FromWorker::Booted`] once its wasm has started; the page sends nothing before
//! that. Then: [`ToWorker::Start`] picks the backend, [`ToWorker::Load`] loads a model,
//! [`ToWorker::Generate`] streams one [`FromWorker::Step`] per sampler step and ends with
//! [`FromWorker::Done`], [`FromWorker::Cancelled`] or [`FromWorker::Failed`].
//!
//! Every family speaks the same messages: a run asks for a [`Job`] (a prompt and a text sampler,
//! an image chain, or a Diffusion-LM chain over word vectors), and its opening, steps and record
//! carry the family's own payload ([`Opening`], [`RunStep`], [`AnyTrajectory`]).

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::chat::Message;
use crate::config::Family;
use crate::network::{ImageSpec, VectorSpec};
use crate::sampler::diffusion_lm::{VectorSettings, VectorStep};
use crate::sampler::image::{ImageSettings, ImageStep};
use crate::sampler::{ModelSpec, Settings, Step};
use crate::trajectory::AnyTrajectory;
use crate::unified::UnifiedTask;

use super::source::ModelSource;
use super::state::BackendChoice;

/// Page → worker.
// Externally tagged (serde's default), not `tag = "type"`: internally tagged enums buffer their
// content, which cannot read the trajectory's integer map keys back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToWorker {
    /// Start a backend (once per worker: a new choice means a new worker).
    Start {
        /// The reader's preference.
        backend: BackendChoice,
        /// Whether WebGPU may hold the weights in f16 where the adapter supports it.
        half: bool,
    },
    /// Load a model; for [`ModelSource::Files`] the three files come with the message.
    Load {
        /// The page's id for this load (replies carry it, so a superseded load is ignored).
        load: u32,
        /// Where from.
        source: ModelSource,
        /// For a load the page starts by itself (opening a link, following a sampler): the
        /// most bytes of weights it may download. Larger weights are not fetched: the worker
        /// answers [`FromWorker::Held`] and the reader decides. Files already in the browser's
        /// cache do not count. `None`: the reader asked for this model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        /// How a text model is to attend, when not as its config says ([`PageState::attention`]
        /// and [`super::source::page_attention`]).
        ///
        /// [`PageState::attention`]: super::PageState::attention
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attention: Option<crate::config::Attention>,
    },
    /// Run a sampler.
    Generate {
        /// The page's id for this run.
        run: u32,
        /// What to run.
        job: Job,
        /// The model to run on: the one loaded last, or (in a race across samplers on the
        /// default models) another, which the worker loads and keeps beside it.
        model: ModelSource,
    },
    /// Compile the backend's kernels for `job` ahead of the reader's Run: one silent step of it
    /// on the held model. Shaders compile on a pipeline's first use, and on a slow adapter that
    /// first step costs ten of the later ones. Nothing runs when `model` is not held or on the
    /// CPU backend (it compiles nothing); [`FromWorker::Warmed`] answers either way.
    Warm {
        /// The run the page would start now.
        job: Job,
        /// The model it would run on.
        model: ModelSource,
    },
    /// Stop a run after its current step.
    Cancel {
        /// Which run.
        run: u32,
    },
}

/// What one run is asked to do, in its family's terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Text: a prompt (`[MASK]` in it infills) and a text sampler.
    Text {
        /// Prompt text; in a chat, the reader's new message.
        prompt: String,
        /// Sampler and knobs.
        settings: Settings,
        /// A chat: the messages before `prompt` (system first, then the turns so far). The
        /// worker renders them and `prompt`, as the user's turn, through the model's chat
        /// template, and the run's reply is cut where the model ends its turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat: Option<Vec<Message>>,
    },
    /// Images: a reverse chain of Gaussian diffusion, its class and guidance.
    Ddpm {
        /// Chain and knobs.
        settings: ImageSettings,
    },
    /// Words: Diffusion-LM's reverse chain over word vectors, with its prompt and control.
    DiffusionLm {
        /// The words that hold the first positions.
        prompt: String,
        /// Chain and knobs.
        settings: VectorSettings,
    },
    /// Text and images on one model: a caption drawn as a digit, or a digit captioned.
    Unified {
        /// The task, its input and its knobs.
        task: UnifiedTask,
    },
}

impl Job {
    /// Its family.
    pub fn family(&self) -> Family {
        match self {
            Job::Text { .. } => Family::Text,
            Job::Ddpm { .. } => Family::Ddpm,
            Job::DiffusionLm { .. } => Family::DiffusionLm,
            Job::Unified { .. } => Family::Unified,
        }
    }

    /// The seed of every draw.
    pub fn seed(&self) -> u64 {
        match self {
            Job::Text { settings, .. } => settings.seed(),
            Job::Ddpm { settings } => settings.seed(),
            Job::DiffusionLm { settings, .. } => settings.seed,
            Job::Unified { task } => task.seed(),
        }
    }

    /// Runs on `seed` (a race shares the first run's).
    pub fn set_seed(&mut self, seed: u64) {
        match self {
            Job::Text { settings, .. } => settings.draw_mut().seed = seed,
            Job::Ddpm { settings } => settings.condition_mut().seed = seed,
            Job::DiffusionLm { settings, .. } => settings.seed = seed,
            Job::Unified { task } => task.set_seed(seed),
        }
    }

    /// The text sampler's settings, for a text job.
    pub fn text(&self) -> Option<&Settings> {
        match self {
            Job::Text { settings, .. } => Some(settings),
            Job::Ddpm { .. } | Job::DiffusionLm { .. } | Job::Unified { .. } => None,
        }
    }

    /// The chain's settings, for an image job.
    pub fn images(&self) -> Option<&ImageSettings> {
        match self {
            Job::Ddpm { settings } => Some(settings),
            Job::Text { .. } | Job::DiffusionLm { .. } | Job::Unified { .. } => None,
        }
    }

    /// The chain's settings, for a Diffusion-LM job.
    pub fn vectors(&self) -> Option<&VectorSettings> {
        match self {
            Job::DiffusionLm { settings, .. } => Some(settings),
            Job::Text { .. } | Job::Ddpm { .. } | Job::Unified { .. } => None,
        }
    }

    /// The task, for a text + image job.
    pub fn unified(&self) -> Option<&UnifiedTask> {
        match self {
            Job::Unified { task } => Some(task),
            Job::Text { .. } | Job::Ddpm { .. } | Job::DiffusionLm { .. } => None,
        }
    }
}

/// What a loaded network is, by family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A denoiser of tokens.
    Text(ModelSpec),
    /// A noise predictor of images, with the noisy classifier its folder names.
    Ddpm {
        /// What the image samplers see.
        spec: ImageSpec,
        /// The classifier for guidance and the p(y | x_t) plot, when the folder names one.
        classifier: Option<ClassifierStatus>,
    },
    /// A Diffusion-LM denoiser of word vectors, with the control classifier its folder names.
    DiffusionLm {
        /// What its sampler sees.
        spec: VectorSpec,
        /// The control classifier, when the folder names one.
        classifier: Option<ClassifierStatus>,
        /// The attributes control may steer toward (the loaded classifier's labels).
        labels: Vec<String>,
    },
    /// A denoiser of text and image tokens in one vocabulary ([`crate::unified`]).
    Unified(ModelSpec),
}

/// The noisy classifier beside an image model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassifierStatus {
    /// Loaded.
    Loaded {
        /// Where from.
        name: String,
        /// Classes it tells apart.
        classes: usize,
    },
    /// Named by the model's folder but not loaded: classifier guidance is off, the rest works.
    Failed {
        /// Where from.
        name: String,
        /// Why.
        message: String,
    },
}

/// What a loaded model is, for the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadedModel {
    /// Its name (source).
    pub name: String,
    /// What the samplers see.
    pub network: Network,
    /// Parameter count.
    pub parameters: u64,
    /// `hidden_dim`, `n_blocks`, `n_heads` in words.
    pub shape: String,
    /// Seconds from the load request to a ready model.
    #[serde(with = "crate::float_json")]
    pub load_seconds: f64,
    /// The sampler the model's authors chat with, when its folder has a chat template
    /// ([`crate::chat::chat_settings`]); `None`: no chat for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Settings>,
    /// When its weights were read a block at a time rather than whole (a text model from Cache
    /// Storage or a dropped file): the most bytes of them held in memory at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamed: Option<u64>,
    /// How it attends unless the reader asks otherwise, for a model that may attend otherwise
    /// (the transformers: [`crate::page::source::page_attention`]); `None` for a DiT, which
    /// runs as it was trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_attention: Option<crate::config::Attention>,
}

impl LoadedModel {
    /// Its family.
    pub fn family(&self) -> Family {
        match self.network {
            Network::Text(_) => Family::Text,
            Network::Ddpm { .. } => Family::Ddpm,
            Network::DiffusionLm { .. } => Family::DiffusionLm,
            Network::Unified(_) => Family::Unified,
        }
    }

    /// The text denoiser's spec, for a text model.
    pub fn text_spec(&self) -> Option<&ModelSpec> {
        match &self.network {
            Network::Text(spec) => Some(spec),
            Network::Ddpm { .. } | Network::DiffusionLm { .. } | Network::Unified(_) => None,
        }
    }
}

/// A run's state before its first step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Opening {
    /// The canvas: prompt then masks.
    Text {
        /// The mask id of the model it runs on.
        mask_id: u32,
        /// The prompt's ids (masks to infill included).
        prompt_ids: Vec<u32>,
        /// Prompt then masks.
        canvas: Vec<u32>,
        /// Text of the ids on that canvas.
        vocab: Vec<(u32, String)>,
    },
    /// Pure noise x_T.
    Ddpm {
        /// Pixels along a side.
        side: usize,
        /// Images drawn together.
        count: usize,
        /// x_T, `[count · side²]`.
        #[serde(with = "crate::float_json::f32s")]
        x: Vec<f32>,
        /// Steps the run will take.
        steps: usize,
    },
    /// Noise x_T at every position after the prompt.
    DiffusionLm {
        /// The prompt's ids, which hold the first positions but its gaps.
        prompt_ids: Vec<u32>,
        /// The mask token: the prompt's gaps.
        #[serde(default)]
        mask_id: Option<u32>,
        /// Positions generated after it.
        gen_length: usize,
        /// Text of the prompt's ids.
        vocab: Vec<(u32, String)>,
        /// Steps the run will take.
        steps: usize,
    },
}

/// One step of a run, in its family's terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStep {
    /// Commits and candidates.
    Text {
        /// The step.
        step: Step,
        /// Text of token ids not sent before in this run.
        vocab: Vec<(u32, String)>,
    },
    /// x_t and x̂₀.
    Ddpm(ImageStep),
    /// Each position's word, its distance and what changed.
    DiffusionLm {
        /// The step.
        step: VectorStep,
        /// Text of word ids not sent before in this run.
        vocab: Vec<(u32, String)>,
    },
}

impl RunStep {
    /// The step's 0-based number.
    pub fn index(&self) -> usize {
        match self {
            RunStep::Text { step, .. } => step.index,
            RunStep::Ddpm(step) => step.index,
            RunStep::DiffusionLm { step, .. } => step.index,
        }
    }
}

/// Worker → page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's wasm runs and listens.
    Booted,
    /// A backend is up.
    Ready {
        /// Which one.
        backend: BackendKind,
        /// The adapter or CPU, in words.
        detail: String,
        /// Why WebGPU was not used, when it was wanted and is not.
        fallback: Option<String>,
        /// Whether float tensors are f16.
        half: bool,
    },
    /// Download progress of one file.
    Progress {
        /// Which load.
        load: u32,
        /// File name.
        file: String,
        /// Bytes so far.
        loaded: u64,
        /// Bytes in all, when the server says.
        total: Option<u64>,
        /// Whether it came from the browser's cache.
        cached: bool,
    },
    /// A model is ready.
    Loaded {
        /// Which load.
        load: u32,
        /// What it is.
        model: LoadedModel,
    },
    /// A run was accepted: its state before the first step.
    Started {
        /// Which run.
        run: u32,
        /// The canvas or the noise.
        opening: Opening,
    },
    /// One step of a run.
    Step {
        /// Which run.
        run: u32,
        /// The step.
        step: RunStep,
        /// Milliseconds since the run started.
        #[serde(with = "crate::float_json")]
        elapsed_ms: f64,
    },
    /// A run finished.
    Done {
        /// Which run.
        run: u32,
        /// The whole record (for export).
        trajectory: Box<AnyTrajectory>,
        /// Milliseconds the run took.
        #[serde(with = "crate::float_json")]
        elapsed_ms: f64,
        /// A chat run's reply: the text generated before the model ended its turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply: Option<String>,
    },
    /// Something the reader should know about a load that goes on (a file not kept in the
    /// browser's cache for lack of quota).
    Note {
        /// Which load.
        load: u32,
        /// What, in words.
        message: String,
    },
    /// A load stopped before downloading weights larger than its limit.
    Held {
        /// Which load.
        load: u32,
        /// The file.
        file: String,
        /// Its size (the server's `Content-Length`), or at least this many bytes when the server
        /// did not say.
        bytes: u64,
        /// The limit it is over.
        limit: u64,
    },
    /// A [`ToWorker::Warm`] step ran (or could not: it is only a warm-up, never an error).
    Warmed {
        /// Milliseconds it took: mostly the kernels' compilation.
        #[serde(with = "crate::float_json")]
        elapsed_ms: f64,
    },
    /// A run stopped on request.
    Cancelled {
        /// Which run.
        run: u32,
    },
    /// Something failed; `run` says which run, if any.
    Failed {
        /// The run, or `None` for loading and start-up.
        run: Option<u32>,
        /// The load, for a failed load.
        load: Option<u32>,
        /// What was being done ("load", "generate", "start").
        stage: String,
        /// What happened and what to do.
        message: String,
        /// Whether the device failed rather than the input (a lost GPU, a failed readback,
        /// non-finite numbers): the page reruns the run on the CPU.
        #[serde(default)]
        device_fault: bool,
        /// For settings that do not describe a run, the link key of the knob to change (the
        /// page names its control).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        knob: Option<String>,
    },
}

/// A message as JSON text. Every float field survives NaN and infinity
/// ([`crate::float_json`]) and every map key is a string or an integer, so this cannot fail
/// today; if a later field ever makes it, the other side gets a `failed` message saying so
/// instead of a panic.
fn to_json(message: &impl Serialize) -> String {
    serde_json::to_string(message).unwrap_or_else(|e| {
        serde_json::json!({ "failed": {
            "run": null, "load": null, "stage": "message",
            "message": format!("a message between the page and its worker could not be written: {e}"),
        }})
        .to_string()
    })
}

impl ToWorker {
    /// As JSON text.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

impl FromWorker {
    /// As JSON text.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Role;
    use crate::sampler::SamplerKind;

    #[test]
    fn messages_round_trip_as_json() {
        let m = ToWorker::Generate {
            run: 3,
            job: Job::Text {
                prompt: "<b>hi</b> [MASK]".into(),
                settings: Settings::defaults(SamplerKind::Llada),
                chat: None,
            },
            model: ModelSource::Default.for_sampler(SamplerKind::Llada),
        };
        assert_eq!(serde_json::from_str::<ToWorker>(&m.to_json()).unwrap(), m);
        let m = FromWorker::Failed {
            run: None,
            load: Some(2),
            stage: "load".into(),
            message: "404".into(),
            device_fault: false,
            knob: None,
        };
        assert_eq!(serde_json::from_str::<FromWorker>(&m.to_json()).unwrap(), m);
        assert!(m.to_json().starts_with(r#"{"failed":"#));
    }

    #[test]
    fn a_finished_run_with_its_trajectory_survives_the_trip() {
        use crate::trajectory::{
            ModelInfo, Stats, TRAJECTORY_FORMAT, TRAJECTORY_VERSION, Trajectory,
        };
        // The vocabulary is keyed by token id: JSON object keys are strings, which an internally
        // tagged enum could not read back.
        let trajectory = Trajectory {
            format: TRAJECTORY_FORMAT.into(),
            version: TRAJECTORY_VERSION,
            kind: crate::config::Family::Text,
            model: ModelInfo {
                name: "tiny".into(),
                vocab_size: 8,
                mask_id: 7,
                attention: crate::config::Attention::Bidirectional,
                model_length: 8,
            },
            settings: Settings::defaults(SamplerKind::Llada),
            prompt: "a".into(),
            prompt_ids: vec![1],
            vocab: [(1, "a".to_string()), (7, "[MASK]".into())]
                .into_iter()
                .collect(),
            steps: Vec::new(),
            text: "a".into(),
            completion: String::new(),
            final_ids: vec![1],
            stats: Stats::default(),
        };
        let m = FromWorker::Done {
            run: 1,
            trajectory: Box::new(AnyTrajectory::Text(trajectory)),
            elapsed_ms: 2.5,
            reply: None,
        };
        assert_eq!(serde_json::from_str::<FromWorker>(&m.to_json()).unwrap(), m);
    }

    /// One message of every kind, each float field set to `x` (NaN, ±∞ or a number).
    fn every_message(x: f64) -> (Vec<ToWorker>, Vec<FromWorker>) {
        use crate::sampler::image::{Condition, Guidance};
        use crate::sampler::{Candidates, Commit, Step, TopToken};
        use crate::trajectory::Trajectory;
        use crate::trajectory::images::ImageTrajectory;
        let settings = Settings::Llada(crate::sampler::LladaSettings {
            cfg_scale: x,
            threshold: Some(x),
            draw: crate::sampler::Draw {
                temperature: x,
                top_k: None,
                top_p: Some(x),
                seed: 1,
            },
            ..Default::default()
        });
        let step = Step {
            index: 0,
            model_calls: 1,
            commits: vec![Commit {
                position: 1,
                token: 2,
                confidence: x,
            }],
            canvas: vec![1, 2],
            masked: vec![false, false],
            block: [1, 2],
            candidates: vec![Candidates {
                position: 1,
                top: vec![TopToken { token: 2, prob: x }],
            }],
            levels: vec![],
        };
        let spec = ModelSpec {
            vocab_size: 8,
            model_length: 8,
            mask_id: 7,
            eos_id: None,
            attention: crate::config::Attention::Causal,
            time_conditioning: false,
            per_token_noise: false,
        };
        let trajectory = Trajectory {
            format: crate::trajectory::TRAJECTORY_FORMAT.into(),
            version: crate::trajectory::TRAJECTORY_VERSION,
            kind: crate::config::Family::Text,
            model: crate::trajectory::ModelInfo {
                name: "tiny".into(),
                vocab_size: 8,
                mask_id: 7,
                attention: spec.attention,
                model_length: 8,
            },
            settings: settings.clone(),
            prompt: "a".into(),
            prompt_ids: vec![1],
            vocab: [(1, "a".to_string())].into_iter().collect(),
            steps: vec![step.clone()],
            text: "a b".into(),
            completion: " b".into(),
            final_ids: vec![1, 2],
            stats: Default::default(),
        };
        let image_settings = ImageSettings::Ddim {
            steps: 2,
            eta: x,
            condition: Condition {
                class: Some(3),
                guidance: Guidance::Classifier { scale: x },
                count: 1,
                seed: 4,
            },
        };
        let image_spec = ImageSpec {
            side: 1,
            classes: 10,
            diffusion_steps: 4,
            beta_schedule: crate::sampler::gaussian::BetaSchedule::Linear,
        };
        let image_step = ImageStep {
            index: 0,
            model_calls: 1,
            t: 3,
            noise_level: x,
            x: vec![x as f32],
            x0: vec![x as f32],
            class_prob: Some(vec![x]),
        };
        let image_trajectory = ImageTrajectory::new(
            "digits",
            &image_spec,
            Some("../c".into()),
            image_settings.clone(),
            std::slice::from_ref(&image_step),
        );
        let vector_spec = VectorSpec {
            vocab_size: 8,
            embed_dim: 2,
            model_length: 4,
            diffusion_steps: 10,
            beta_schedule: crate::sampler::gaussian::BetaSchedule::Sqrt,
        };
        let vector_settings = VectorSettings {
            steps: 1,
            control: Some(crate::sampler::diffusion_lm::Control {
                target: "bible".into(),
                scale: x,
                fluency: x,
            }),
            ..VectorSettings::defaults(1)
        };
        let vector_step = VectorStep {
            index: 0,
            t: 0,
            noise_level: x,
            ids: vec![4, 5],
            distance: vec![x as f32, 0.5],
            changed: vec![1],
            target_probability: Some(x),
            nearest: vec![crate::sampler::diffusion_lm::NearWords {
                position: 1,
                top: vec![crate::sampler::diffusion_lm::NearWord {
                    token: 5,
                    prob: x,
                    distance: x,
                }],
            }],
        };
        let vector_trajectory = crate::trajectory::vectors::VectorTrajectory {
            format: crate::trajectory::TRAJECTORY_FORMAT.into(),
            version: crate::trajectory::TRAJECTORY_VERSION,
            kind: Family::DiffusionLm,
            model: crate::trajectory::vectors::VectorModelInfo {
                name: "words".into(),
                vocab_size: 8,
                embed_dim: 2,
                model_length: 4,
                diffusion_steps: 10,
                beta_schedule: crate::sampler::gaussian::BetaSchedule::Sqrt,
                classifier: Some("../c".into()),
                mask_id: None,
            },
            settings: vector_settings.clone(),
            prompt: "It".into(),
            prompt_ids: vec![4],
            vocab: [(4, "It".to_string()), (5, " was".to_string())].into(),
            steps: vec![vector_step.clone()],
            texts: vec![" was".into()],
            text: " was".into(),
        };
        let to = vec![
            ToWorker::Start {
                backend: BackendChoice::Auto,
                half: true,
            },
            ToWorker::Load {
                load: 1,
                source: ModelSource::Default,
                limit: None,
                attention: None,
            },
            ToWorker::Load {
                load: 2,
                source: ModelSource::Hub("o/n".into()),
                limit: Some(100_000_000),
                attention: Some(crate::config::Attention::BlockCausal { block_size: 32 }),
            },
            ToWorker::Generate {
                run: 1,
                job: Job::Text {
                    prompt: "a".into(),
                    settings: settings.clone(),
                    chat: None,
                },
                model: ModelSource::Hub("o/n".into()),
            },
            ToWorker::Warm {
                job: Job::Text {
                    prompt: "and you?".into(),
                    settings: settings.clone(),
                    chat: Some(vec![
                        Message::new(Role::System, "Be brief."),
                        Message::new(Role::User, "hi"),
                        Message::new(Role::Assistant, "hello"),
                    ]),
                },
                model: ModelSource::Default,
            },
            ToWorker::Generate {
                run: 2,
                job: Job::Ddpm {
                    settings: image_settings.clone(),
                },
                model: ModelSource::Default,
            },
            ToWorker::Generate {
                run: 3,
                job: Job::DiffusionLm {
                    prompt: "It was".into(),
                    settings: vector_settings.clone(),
                },
                model: ModelSource::Default,
            },
            ToWorker::Generate {
                run: 4,
                job: Job::Unified {
                    task: crate::unified::UnifiedTask::T2i {
                        caption: "a handwritten seven".into(),
                        settings: crate::sampler::maskgit::MaskGitSettings {
                            cfg_scale: x,
                            ..Default::default()
                        },
                    },
                },
                model: ModelSource::Default,
            },
            ToWorker::Warm {
                job: Job::Unified {
                    task: crate::unified::UnifiedTask::Mmu {
                        image: (0..64).map(|i| (i % 17) as u8).collect(),
                        settings: Default::default(),
                    },
                },
                model: ModelSource::Default,
            },
            ToWorker::Cancel { run: 1 },
        ];
        let from = vec![
            FromWorker::Booted,
            FromWorker::Ready {
                backend: BackendKind::Wgpu,
                detail: "gpu".into(),
                fallback: None,
                half: false,
            },
            FromWorker::Progress {
                load: 1,
                file: "model.safetensors".into(),
                loaded: 3,
                total: Some(9),
                cached: false,
            },
            FromWorker::Loaded {
                load: 1,
                model: LoadedModel {
                    name: "tiny".into(),
                    network: Network::Text(spec),
                    parameters: 10,
                    shape: "1 block".into(),
                    load_seconds: x,
                    chat: Some(settings.clone()),
                    streamed: Some(31_457_280),
                    default_attention: Some(crate::config::Attention::BlockCausal {
                        block_size: 32,
                    }),
                },
            },
            FromWorker::Loaded {
                load: 2,
                model: LoadedModel {
                    name: "digits".into(),
                    network: Network::Ddpm {
                        spec: image_spec.clone(),
                        classifier: Some(ClassifierStatus::Failed {
                            name: "../c".into(),
                            message: "404".into(),
                        }),
                    },
                    parameters: 10,
                    shape: "1 block".into(),
                    load_seconds: x,
                    chat: None,
                    streamed: None,
                    default_attention: None,
                },
            },
            FromWorker::Loaded {
                load: 3,
                model: LoadedModel {
                    name: "words".into(),
                    network: Network::DiffusionLm {
                        spec: vector_spec.clone(),
                        classifier: Some(ClassifierStatus::Loaded {
                            name: "../c".into(),
                            classes: 2,
                        }),
                        labels: vec!["austen".into(), "bible".into()],
                    },
                    parameters: 10,
                    shape: "1 block".into(),
                    load_seconds: x,
                    chat: None,
                    streamed: None,
                    default_attention: None,
                },
            },
            FromWorker::Started {
                run: 3,
                opening: Opening::DiffusionLm {
                    prompt_ids: vec![4],
                    mask_id: Some(3),
                    gen_length: 1,
                    vocab: vec![(4, "It".into())],
                    steps: 1,
                },
            },
            FromWorker::Step {
                run: 3,
                step: RunStep::DiffusionLm {
                    step: vector_step.clone(),
                    vocab: vec![(5, " was".into())],
                },
                elapsed_ms: x,
            },
            FromWorker::Done {
                run: 3,
                trajectory: Box::new(AnyTrajectory::DiffusionLm(vector_trajectory)),
                elapsed_ms: x,
                reply: None,
            },
            FromWorker::Started {
                run: 1,
                opening: Opening::Text {
                    mask_id: 7,
                    prompt_ids: vec![1],
                    canvas: vec![1, 7],
                    vocab: vec![(1, "a".into())],
                },
            },
            FromWorker::Started {
                run: 2,
                opening: Opening::Ddpm {
                    side: 1,
                    count: 1,
                    x: vec![x as f32],
                    steps: 2,
                },
            },
            FromWorker::Step {
                run: 1,
                step: RunStep::Text {
                    step,
                    vocab: vec![(2, "b".into())],
                },
                elapsed_ms: x,
            },
            FromWorker::Step {
                run: 2,
                step: RunStep::Ddpm(image_step),
                elapsed_ms: x,
            },
            FromWorker::Done {
                run: 1,
                trajectory: Box::new(AnyTrajectory::Text(trajectory)),
                elapsed_ms: x,
                reply: Some("Hello <there>".into()),
            },
            FromWorker::Done {
                run: 2,
                trajectory: Box::new(AnyTrajectory::Ddpm(image_trajectory)),
                elapsed_ms: x,
                reply: None,
            },
            FromWorker::Warmed { elapsed_ms: x },
            FromWorker::Note {
                load: 2,
                message: "not kept".into(),
            },
            FromWorker::Held {
                load: 2,
                file: "model.safetensors".into(),
                bytes: 335_000_000,
                limit: 100_000_000,
            },
            FromWorker::Cancelled { run: 1 },
            FromWorker::Failed {
                run: Some(1),
                load: None,
                stage: "generate".into(),
                message: "the GPU failed".into(),
                device_fault: true,
                knob: Some("steps".into()),
            },
        ];
        (to, from)
    }

    #[test]
    fn every_message_with_nan_or_infinite_numbers_still_parses() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5] {
            let (to, from) = every_message(x);
            // Parsed back and written again, each gives the same text (NaN ≠ NaN rules out ==).
            for m in to {
                let json = m.to_json();
                let back: ToWorker =
                    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
                assert_eq!(back.to_json(), json);
            }
            for m in from {
                let json = m.to_json();
                let back: FromWorker =
                    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
                assert_eq!(back.to_json(), json);
                if x.is_finite() {
                    assert_eq!(back, m);
                }
            }
        }
    }
}
