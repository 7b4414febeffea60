//! A run directory, and the model folder a run exports.
//!
//! ```text
//! run/
//!   run.json            RunState: the recipe, the architecture, the step, the history, the commands
//!   weights.safetensors the current weights (f32, the reference's key names)
//!   ema.safetensors     their moving average
//!   optimizer.safetensors  AdamW's moments and step
//!   tokenizer.json      the tokenizer the run was started with
//! ```
//!
//! Every file is written to a temporary name and renamed, so an interrupted save leaves the
//! previous checkpoint whole. The exported folder is the Hugging Face layout the page and
//! `unmask generate` read, plus `training.json` (how it was made).

use super::Checkpointed;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Evaluation, TrainConfig, TrainError, Trainer};
use crate::bundle::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::config::ModelConfig;

/// `run.json`'s format tag.
pub const RUN_FORMAT: &str = "unmask-train-run";
/// `run.json`'s version.
pub const RUN_VERSION: u32 = 1;
/// The run's state file.
pub const RUN_FILE: &str = "run.json";
/// Current weights.
pub const CURRENT_WEIGHTS: &str = "weights.safetensors";
/// EMA weights.
pub const EMA_WEIGHTS: &str = "ema.safetensors";
/// Optimiser state.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Provenance written next to an exported model.
pub const TRAINING_FILE: &str = "training.json";

/// One point of the run's history, logged at each validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Steps done.
    pub step: usize,
    /// Mean training loss since the previous entry.
    pub train_loss: f64,
    /// Learning rate at this step.
    pub lr: f64,
    /// Training tokens seen so far.
    pub tokens_seen: u64,
    /// Training throughput since the previous entry.
    pub tokens_per_second: f64,
    /// Validation of the EMA weights.
    pub valid: Option<Evaluation>,
    /// A sample from the EMA weights.
    pub sample: Option<String>,
}

/// Everything about a run but its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// [`RUN_FORMAT`].
    pub format: String,
    /// [`RUN_VERSION`].
    pub version: u32,
    /// The recipe.
    pub train: TrainConfig,
    /// The architecture (written as the exported `config.json`).
    pub model: ModelConfig,
    /// Steps done.
    pub step: usize,
    /// Training tokens seen.
    pub tokens_seen: u64,
    /// Seconds spent training, over all sessions.
    pub train_seconds: f64,
    /// The backend(s) it ran on, with their throughput.
    pub backends: Vec<String>,
    /// Validation history.
    pub history: Vec<HistoryEntry>,
    /// Every command line that worked on this run, in order.
    pub commands: Vec<String>,
    /// The corpus it reads (directory, and the manifest's checksum of the training text).
    pub corpus: String,
}

/// A file of a run (or of an export) that could not be read or written.
pub(crate) fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The `format` that `run.json` in `dir` declares, when there is a readable one: which kind of
/// run (text, images, Diffusion-LM) the directory holds.
pub fn run_format(dir: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    let bytes = std::fs::read(dir.join(RUN_FILE)).ok()?;
    serde_json::from_slice::<Format>(&bytes)
        .ok()
        .map(|f| f.format)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

fn read(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|e| {
        io(
            path,
            format!("{e}; is this a run directory written by `unmask train`?"),
        )
    })
}

/// A kind of run directory: what its `run.json` holds and how it is named.
pub trait RunRecord: Serialize + serde::de::DeserializeOwned {
    /// `format` in `run.json`.
    const FORMAT: &'static str;
    /// `version` in `run.json`.
    const VERSION: u32;
    /// What a reader should run to make one (for messages: "--objective unified").
    const MADE_BY: &'static str;
    /// The format and version this record declares.
    fn declared(&self) -> (&str, u32);
}

/// A saved run of kind `S`: `run.json`, the current weights, their EMA, the optimiser state
/// and the tokenizer where the kind keeps one.
pub struct SavedRun<S> {
    /// `run.json`.
    pub state: S,
    /// Current weights, EMA weights, optimiser state.
    pub tensors: [Vec<u8>; 3],
    /// `tokenizer.json`, when asked for.
    pub tokenizer: Option<Vec<u8>>,
}

/// `run.json` of the run of kind `S` in `dir`, when there is one.
pub fn read_run_state<S: RunRecord>(dir: &Path) -> Result<Option<S>, TrainError> {
    let path = dir.join(RUN_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| io(&path, format!("{e}; the run directory is damaged")))?;
    let state: S = serde_json::from_slice(&bytes).map_err(|e| {
        io(
            &path,
            format!("{e}; is this the run directory of a {} run?", S::MADE_BY),
        )
    })?;
    if state.declared() != (S::FORMAT, S::VERSION) {
        return Err(io(
            &path,
            format!(
                "not a version-{} {} file; start a new run in another directory",
                S::VERSION,
                S::FORMAT
            ),
        ));
    }
    Ok(Some(state))
}

/// The saved run in `dir`, when there is one; its tokenizer too when `with_tokenizer`.
pub fn load_run<S: RunRecord>(
    dir: &Path,
    with_tokenizer: bool,
) -> Result<Option<SavedRun<S>>, TrainError> {
    let Some(state) = read_run_state::<S>(dir)? else {
        return Ok(None);
    };
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| io(&p, format!("{e}; the run directory is damaged")))
    };
    Ok(Some(SavedRun {
        tensors: [
            read(CURRENT_WEIGHTS)?,
            read(EMA_WEIGHTS)?,
            read(OPTIMIZER_FILE)?,
        ],
        tokenizer: with_tokenizer.then(|| read(TOKENIZER_FILE)).transpose()?,
        state,
    }))
}

/// Saves a run to `dir`: `weights` and `ema` (f32 safetensors), the `optimizer` state, the
/// `tokenizer` where the kind keeps one, then `run.json` last, so that it names a step only once
/// its tensors are in place.
pub fn save_run<S: RunRecord>(
    dir: &Path,
    (weights, ema): (Vec<u8>, Vec<u8>),
    optimizer: &[u8],
    tokenizer: Option<&[u8]>,
    state: &S,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    write_atomic(&dir.join(CURRENT_WEIGHTS), &weights)?;
    write_atomic(&dir.join(EMA_WEIGHTS), &ema)?;
    write_atomic(&dir.join(OPTIMIZER_FILE), optimizer)?;
    if let Some(tokenizer) = tokenizer {
        write_atomic(&dir.join(TOKENIZER_FILE), tokenizer)?;
    }
    let json = serde_json::to_vec_pretty(state).map_err(|e| io(dir, e))?;
    write_atomic(&dir.join(RUN_FILE), &json)
}

/// The bytes of a saved run, to resume from.
#[derive(Clone, Debug)]
pub struct SavedFiles {
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
    /// Current weights.
    pub weights: Vec<u8>,
    /// EMA weights.
    pub ema: Vec<u8>,
    /// Optimiser state.
    pub optimizer: Vec<u8>,
}

/// A run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
}

impl RunDir {
    /// The directory at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Whether a run has been saved here.
    pub fn exists(&self) -> bool {
        self.path.join(RUN_FILE).is_file()
    }

    /// Reads `run.json`.
    pub fn state(&self) -> Result<RunState, TrainError> {
        let path = self.path.join(RUN_FILE);
        let state: RunState = serde_json::from_slice(&read(&path)?).map_err(|e| io(&path, e))?;
        if state.format != RUN_FORMAT || state.version != RUN_VERSION {
            return Err(io(
                &path,
                format!(
                    "not a version-{RUN_VERSION} {RUN_FORMAT} file; start a new run in another directory"
                ),
            ));
        }
        Ok(state)
    }

    /// The saved tokenizer, weights and optimiser state.
    pub fn files(&self) -> Result<SavedFiles, TrainError> {
        Ok(SavedFiles {
            tokenizer: read(&self.path.join(TOKENIZER_FILE))?,
            weights: read(&self.path.join(CURRENT_WEIGHTS))?,
            ema: read(&self.path.join(EMA_WEIGHTS))?,
            optimizer: read(&self.path.join(OPTIMIZER_FILE))?,
        })
    }

    /// Saves the trainer and `state` (whose step must be the trainer's).
    pub fn save(
        &self,
        trainer: &Trainer,
        state: &RunState,
        tokenizer: &[u8],
    ) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.path).map_err(|e| io(&self.path, e))?;
        let (weights, ema) = trainer.weights()?;
        write_atomic(&self.path.join(CURRENT_WEIGHTS), &weights)?;
        write_atomic(&self.path.join(EMA_WEIGHTS), &ema)?;
        write_atomic(&self.path.join(OPTIMIZER_FILE), &trainer.optimizer_bytes()?)?;
        write_atomic(&self.path.join(TOKENIZER_FILE), tokenizer)?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| io(&self.path, e))?;
        // Last: run.json names a step only once its tensors are in place.
        write_atomic(&self.path.join(RUN_FILE), &json)
    }
}

/// What an exported model folder records about its making (`training.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Provenance {
    /// The run's state at export.
    pub run: RunState,
    /// The validation of the exported (EMA) weights over the whole validation split.
    pub final_validation: Evaluation,
    /// How the weights are stored.
    pub dtype: String,
}

/// Writes the EMA weights as a model folder: `config.json`, `model.safetensors` (in `dtype`),
/// `tokenizer.json`, and `training.json`.
pub fn export(
    out: &Path,
    trainer: &Trainer,
    state: &RunState,
    tokenizer: &[u8],
    dtype: safetensors::Dtype,
    final_validation: Evaluation,
) -> Result<(), TrainError> {
    let provenance = Provenance {
        run: state.clone(),
        final_validation,
        dtype: dtype_name(dtype),
    };
    let weights = trainer.ema_weights(dtype)?;
    write_model_folder(out, &state.model, &weights, Some(tokenizer), &provenance)
}

/// How `dtype` is named in `training.json` (`f32`, `f16`).
pub(crate) fn dtype_name(dtype: safetensors::Dtype) -> String {
    format!("{dtype:?}").to_lowercase()
}

/// Writes an exported model folder, each file atomically: `config.json` (`config`),
/// `model.safetensors` (`weights`), `tokenizer.json` where the family has one, and
/// `training.json` (`provenance`).
pub(crate) fn write_model_folder(
    out: &Path,
    config: &impl Serialize,
    weights: &[u8],
    tokenizer: Option<&[u8]>,
    provenance: &impl Serialize,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let config = serde_json::to_vec_pretty(config).map_err(|e| io(out, e))?;
    let provenance = serde_json::to_vec_pretty(provenance).map_err(|e| io(out, e))?;
    write_atomic(&out.join(CONFIG_FILE), &config)?;
    write_atomic(&out.join(WEIGHTS_FILE), weights)?;
    if let Some(tokenizer) = tokenizer {
        write_atomic(&out.join(TOKENIZER_FILE), tokenizer)?;
    }
    write_atomic(&out.join(TRAINING_FILE), &provenance)
}
