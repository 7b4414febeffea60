//! Messages between the page and its model worker, as JSON text (one `serde_json` string per
//! `postMessage`; dropped files travel beside it as `File` objects).
//!
//! The worker says [`FromWorker::Booted`] once its wasm has started; the page sends nothing before
//! that. Then: [`ToWorker::Start`] picks the backend, [`ToWorker::Load`] loads a model,
//! [`ToWorker::Generate`] streams one [`FromWorker::Step`] per sampler step and ends with
//! [`FromWorker::Done`], [`FromWorker::Cancelled`] or [`FromWorker::Failed`].

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::sampler::{ModelSpec, Settings, Step};
use crate::trajectory::Trajectory;

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
    },
    /// Run a sampler.
    Generate {
        /// The page's id for this run.
        run: u32,
        /// Prompt text.
        prompt: String,
        /// Sampler and knobs.
        settings: Settings,
        /// The model to run on: the one loaded last, or (in a race across samplers on the
        /// default models) another, which the worker loads and keeps beside it.
        model: ModelSource,
    },
    /// Stop a run after its current step.
    Cancel {
        /// Which run.
        run: u32,
    },
}

/// What a loaded model is, for the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadedModel {
    /// Its name (source).
    pub name: String,
    /// What the samplers see.
    pub spec: ModelSpec,
    /// Parameter count.
    pub parameters: u64,
    /// `hidden_dim`, `n_blocks`, `n_heads` in words.
    pub shape: String,
    /// Seconds from the load request to a ready model.
    #[serde(with = "crate::float_json")]
    pub load_seconds: f64,
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
    /// A run was accepted: its prompt and the canvas before the first step.
    Started {
        /// Which run.
        run: u32,
        /// The mask id of the model it runs on.
        mask_id: u32,
        /// The prompt's ids (masks to infill included).
        prompt_ids: Vec<u32>,
        /// Prompt then masks.
        canvas: Vec<u32>,
        /// Text of the ids on that canvas.
        vocab: Vec<(u32, String)>,
    },
    /// One step of a run.
    Step {
        /// Which run.
        run: u32,
        /// The step.
        step: Step,
        /// Text of token ids not sent before in this run.
        vocab: Vec<(u32, String)>,
        /// Milliseconds since the run started.
        #[serde(with = "crate::float_json")]
        elapsed_ms: f64,
    },
    /// A run finished.
    Done {
        /// Which run.
        run: u32,
        /// The whole record (for export).
        trajectory: Box<Trajectory>,
        /// Milliseconds the run took.
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
    use crate::sampler::SamplerKind;

    #[test]
    fn messages_round_trip_as_json() {
        let m = ToWorker::Generate {
            run: 3,
            prompt: "<b>hi</b> [MASK]".into(),
            settings: Settings::defaults(SamplerKind::Llada),
            model: ModelSource::Default.for_sampler(SamplerKind::Llada),
        };
        assert_eq!(serde_json::from_str::<ToWorker>(&m.to_json()).unwrap(), m);
        let m = FromWorker::Failed {
            run: None,
            load: Some(2),
            stage: "load".into(),
            message: "404".into(),
            device_fault: false,
        };
        assert_eq!(serde_json::from_str::<FromWorker>(&m.to_json()).unwrap(), m);
        assert!(m.to_json().starts_with(r#"{"failed":"#));
    }

    #[test]
    fn a_finished_run_with_its_trajectory_survives_the_trip() {
        use crate::trajectory::{ModelInfo, Stats, TRAJECTORY_FORMAT, TRAJECTORY_VERSION};
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
            trajectory: Box::new(trajectory),
            elapsed_ms: 2.5,
        };
        assert_eq!(serde_json::from_str::<FromWorker>(&m.to_json()).unwrap(), m);
    }

    /// One message of every kind, each float field set to `x` (NaN, ±∞ or a number).
    fn every_message(x: f64) -> (Vec<ToWorker>, Vec<FromWorker>) {
        use crate::sampler::{Candidates, Commit, Step, TopToken};
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
        };
        let spec = ModelSpec {
            vocab_size: 8,
            model_length: 8,
            mask_id: 7,
            eos_id: None,
            attention: crate::config::Attention::Causal,
            time_conditioning: false,
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
        let to = vec![
            ToWorker::Start {
                backend: BackendChoice::Auto,
                half: true,
            },
            ToWorker::Load {
                load: 1,
                source: ModelSource::Default,
            },
            ToWorker::Generate {
                run: 1,
                prompt: "a".into(),
                settings,
                model: ModelSource::Hub("o/n".into()),
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
                    spec,
                    parameters: 10,
                    shape: "1 block".into(),
                    load_seconds: x,
                },
            },
            FromWorker::Started {
                run: 1,
                mask_id: 7,
                prompt_ids: vec![1],
                canvas: vec![1, 7],
                vocab: vec![(1, "a".into())],
            },
            FromWorker::Step {
                run: 1,
                step,
                vocab: vec![(2, "b".into())],
                elapsed_ms: x,
            },
            FromWorker::Done {
                run: 1,
                trajectory: Box::new(trajectory),
                elapsed_ms: x,
            },
            FromWorker::Cancelled { run: 1 },
            FromWorker::Failed {
                run: Some(1),
                load: None,
                stage: "generate".into(),
                message: "the GPU failed".into(),
                device_fault: true,
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
