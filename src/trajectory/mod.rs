//! The versioned JSON record of a whole run: what the CLI writes with `--trace`, what the page
//! exports and replays without a model.
//!
//! Version 2 (written) names the run's family (`kind`), carries the settings as the sampler's
//! tagged type, and keeps steps small: a step holds its commits, block and candidates, and the
//! canvas only where it cannot be derived (`len`, when BD3-LM or AR cut the canvas at EOS); the
//! canvas after each step and its masked flags are rebuilt on reading. Version 1 files (flat
//! settings, whole canvases) still import. Runs of the Gaussian diffusion family (`kind:
//! "ddpm"`) have their own payload ([`images`]); [`kind_of`] reads a file's family first.

pub mod images;
pub mod unified;
pub mod vectors;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{Attention, Family};
use crate::sampler::{
    ArSettings, Bd3Order, Bd3Settings, Candidates, Commit, Draw, LladaSettings, MdlmSettings,
    Remasking, SamplerKind, Settings, Step,
};

/// The `format` field of every trajectory file.
pub const TRAJECTORY_FORMAT: &str = "unmask.trajectory";
/// The schema version this build writes.
pub const TRAJECTORY_VERSION: u32 = 2;
/// The oldest version this build reads.
pub const OLDEST_TRAJECTORY_VERSION: u32 = 1;

/// What the run ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// A name for the model (its folder or repo id).
    pub name: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// The mask id used on the canvas.
    pub mask_id: u32,
    /// The attention it ran with.
    pub attention: Attention,
    /// Context length.
    pub model_length: usize,
}

/// Totals over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Steps emitted.
    pub steps: usize,
    /// Model calls made.
    pub model_calls: usize,
    /// Calls MDLM's cache skipped.
    pub skipped_calls: usize,
    /// Tokens generated (positions that started masked and were filled).
    pub generated_tokens: usize,
}

/// A run, step by step.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    /// Always [`TRAJECTORY_FORMAT`].
    pub format: String,
    /// Schema version, [`TRAJECTORY_VERSION`].
    pub version: u32,
    /// The family of the run.
    pub kind: Family,
    /// The model.
    pub model: ModelInfo,
    /// Every sampler setting, seed included.
    pub settings: Settings,
    /// The prompt as typed.
    pub prompt: String,
    /// The prompt's token ids (BOS and masks included).
    pub prompt_ids: Vec<u32>,
    /// Text of each token id that appears on the canvas, so a replay needs no tokenizer.
    pub vocab: std::collections::BTreeMap<u32, String>,
    /// Every step.
    pub steps: Vec<Step>,
    /// The final canvas.
    pub final_ids: Vec<u32>,
    /// The final canvas decoded.
    pub text: String,
    /// The generated part decoded (after the prompt).
    pub completion: String,
    /// Totals.
    pub stats: Stats,
}

/// A trajectory file that cannot be replayed.
#[derive(Debug, Error)]
pub enum TrajectoryError {
    /// Not JSON of this schema.
    #[error("not an Unmask trajectory: {0}")]
    Json(#[from] serde_json::Error),
    /// Another format or version.
    #[error(
        "trajectory format {format:?} version {version} is not {TRAJECTORY_FORMAT:?} version {OLDEST_TRAJECTORY_VERSION} to {TRAJECTORY_VERSION}; export it again with this version of Unmask"
    )]
    Version {
        /// Its format string.
        format: String,
        /// Its version.
        version: u32,
    },
    /// A run of another family than the reader's.
    #[error("this is a {} trajectory, not a {} one", found.name(), expected.name())]
    Kind {
        /// The file's `kind`.
        found: Family,
        /// The reader's.
        expected: Family,
    },
    /// The steps contradict each other or the canvas (a hand-edited or damaged file).
    #[error("the trajectory is inconsistent: {0}; export it again")]
    Inconsistent(String),
}

impl Trajectory {
    /// Pretty JSON, in the current version.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads and checks a trajectory file of any version this build reads.
    pub fn from_json(text: &str) -> Result<Self, TrajectoryError> {
        let t: Trajectory = serde_json::from_str(text)?;
        t.check()?;
        Ok(t)
    }

    /// Checks what a replay relies on: steps numbered 0, 1, …; every canvas as long as the
    /// prompt plus `gen_length` at most (and the masked flags with it); every commit, candidate
    /// and block inside the canvas the run started with.
    ///
    /// Sizes are checked against [`crate::limits`] before anything of their size is built (a
    /// replay allocates the prompt plus `gen_length` cells), and every probability must be a
    /// number in [0, 1].
    pub fn check(&self) -> Result<(), TrajectoryError> {
        use crate::limits::{self, check};
        let bad = |m: String| Err(TrajectoryError::Inconsistent(m));
        let too_large = |e: limits::TooLarge| TrajectoryError::Inconsistent(e.to_string());
        check(
            "model_length",
            self.model.model_length,
            limits::MAX_MODEL_LENGTH,
        )
        .map_err(too_large)?;
        check("vocab_size", self.model.vocab_size, limits::MAX_VOCAB_SIZE).map_err(too_large)?;
        if self.model.mask_id as usize >= self.model.vocab_size {
            return bad(format!(
                "the mask id {} is outside the vocabulary of {} tokens",
                self.model.mask_id, self.model.vocab_size
            ));
        }
        let width = self
            .prompt_ids
            .len()
            .checked_add(self.settings.gen_length())
            .filter(|&w| w <= self.model.model_length)
            .ok_or_else(|| {
                TrajectoryError::Inconsistent(format!(
                    "prompt and gen_length exceed the model's {} positions",
                    self.model.model_length
                ))
            })?;
        for (i, step) in self.steps.iter().enumerate() {
            let len = step.canvas.len();
            if step.index != i {
                return bad(format!("step {i} is numbered {}", step.index));
            }
            if len > width || step.masked.len() != len {
                return bad(format!(
                    "step {i} has a canvas of {len} positions (at most {width}) with {} masked flags",
                    step.masked.len()
                ));
            }
            if step.block[0] > step.block[1] || step.block[1] > width {
                return bad(format!(
                    "step {i} has block {:?} outside the canvas",
                    step.block
                ));
            }
            let unlikely = |p: f64| !(0.0..=1.0).contains(&p);
            if step.commits.iter().any(|c| unlikely(c.confidence))
                || step
                    .candidates
                    .iter()
                    .flat_map(|c| &c.top)
                    .any(|t| unlikely(t.prob))
            {
                return bad(format!("step {i} has a probability that is not in [0, 1]"));
            }
            // Within the canvas the run started with: the step that cuts the canvas at EOS
            // commits (and predicted) its whole block first.
            let outside = |p: usize| p >= width;
            if step.commits.iter().any(|c| outside(c.position))
                || step.candidates.iter().any(|c| outside(c.position))
            {
                return bad(format!("step {i} writes outside its canvas"));
            }
        }
        Ok(())
    }
}

/// A run of any family: what the page exports, imports and replays. In messages it travels
/// externally tagged (`{"text": …}`, `{"ddpm": …}`); as a file it is the family's own format,
/// told apart by its `kind` ([`AnyTrajectory::from_json`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnyTrajectory {
    /// Masked or autoregressive text.
    Text(Trajectory),
    /// Gaussian diffusion on images.
    Ddpm(images::ImageTrajectory),
    /// Gaussian diffusion on word vectors.
    DiffusionLm(vectors::VectorTrajectory),
    /// Text → image or image → text on one model.
    Unified(unified::UnifiedTrajectory),
}

impl AnyTrajectory {
    /// Reads and checks a trajectory file of any family and version this build reads.
    pub fn from_json(text: &str) -> Result<Self, TrajectoryError> {
        Ok(match kind_of(text)? {
            Family::Text => AnyTrajectory::Text(Trajectory::from_json(text)?),
            Family::Ddpm => AnyTrajectory::Ddpm(images::ImageTrajectory::from_json(text)?),
            Family::DiffusionLm => {
                AnyTrajectory::DiffusionLm(vectors::VectorTrajectory::from_json(text)?)
            }
            Family::Unified => AnyTrajectory::Unified(unified::UnifiedTrajectory::from_json(text)?),
        })
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        match self {
            AnyTrajectory::Text(t) => t.to_json(),
            AnyTrajectory::Ddpm(t) => t.to_json(),
            AnyTrajectory::DiffusionLm(t) => t.to_json(),
            AnyTrajectory::Unified(t) => t.to_json(),
        }
    }

    /// Its family.
    pub fn kind(&self) -> Family {
        match self {
            AnyTrajectory::Text(_) => Family::Text,
            AnyTrajectory::Ddpm(_) => Family::Ddpm,
            AnyTrajectory::DiffusionLm(_) => Family::DiffusionLm,
            AnyTrajectory::Unified(_) => Family::Unified,
        }
    }

    /// The model's name.
    pub fn model_name(&self) -> &str {
        match self {
            AnyTrajectory::Text(t) => &t.model.name,
            AnyTrajectory::Ddpm(t) => &t.model.name,
            AnyTrajectory::DiffusionLm(t) => &t.model.name,
            AnyTrajectory::Unified(t) => &t.model.name,
        }
    }
}

/// The first fields of every version, read before the rest.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
    /// Absent before version 2: text.
    #[serde(default)]
    kind: Family,
}

/// The family of a trajectory file, read from its header alone: which reader it needs.
pub fn kind_of(text: &str) -> Result<Family, TrajectoryError> {
    let header: Header = serde_json::from_str(text)?;
    if header.format != TRAJECTORY_FORMAT
        || !(OLDEST_TRAJECTORY_VERSION..=TRAJECTORY_VERSION).contains(&header.version)
    {
        return Err(TrajectoryError::Version {
            format: header.format,
            version: header.version,
        });
    }
    Ok(header.kind)
}

/// Reads a trajectory of family `expected`, checked by `check`: the header first, so that a file
/// of another family or format is named as such before its body is parsed.
fn read_family<T: serde::de::DeserializeOwned>(
    text: &str,
    expected: Family,
    check: impl Fn(&T) -> Result<(), TrajectoryError>,
) -> Result<T, TrajectoryError> {
    let found = kind_of(text)?;
    if found != expected {
        return Err(TrajectoryError::Kind { found, expected });
    }
    let t: T = serde_json::from_str(text)?;
    check(&t)?;
    Ok(t)
}

/// One step as version 2 stores it.
#[derive(Serialize, Deserialize)]
struct StepRecord {
    index: usize,
    model_calls: usize,
    commits: Vec<Commit>,
    block: [usize; 2],
    candidates: Vec<Candidates>,
    /// The canvas length after this step, when it was cut (EOS); absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    len: Option<usize>,
    /// Each position's noise level after this step (diffusion forcing); absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    levels: Vec<u32>,
}

/// Version 2 on the wire.
#[derive(Serialize, Deserialize)]
struct V2 {
    format: String,
    version: u32,
    kind: Family,
    model: ModelInfo,
    settings: Settings,
    prompt: String,
    prompt_ids: Vec<u32>,
    vocab: std::collections::BTreeMap<u32, String>,
    steps: Vec<StepRecord>,
    final_ids: Vec<u32>,
    text: String,
    completion: String,
    stats: Stats,
}

/// Version 1's flat settings: every knob of every sampler.
#[derive(Deserialize)]
struct SettingsV1 {
    sampler: SamplerKind,
    steps: usize,
    gen_length: usize,
    block_length: Option<usize>,
    remasking: Remasking,
    #[serde(with = "crate::float_json")]
    temperature: f64,
    top_k: Option<usize>,
    #[serde(with = "crate::float_json::option", default)]
    top_p: Option<f64>,
    #[serde(with = "crate::float_json")]
    cfg_scale: f64,
    #[serde(with = "crate::float_json::option", default)]
    threshold: Option<f64>,
    first_hitting: bool,
    seed: u64,
    use_cache: bool,
    stop_at_eos: bool,
}

impl From<SettingsV1> for Settings {
    /// The knobs the sampler read, into its own type (the others were ignored in version 1).
    fn from(v: SettingsV1) -> Self {
        let draw = Draw {
            temperature: v.temperature,
            top_k: v.top_k,
            top_p: v.top_p,
            seed: v.seed,
        };
        match v.sampler {
            SamplerKind::Llada => Settings::Llada(LladaSettings {
                gen_length: v.gen_length,
                steps: v.steps,
                block_length: v.block_length,
                remasking: v.remasking,
                cfg_scale: v.cfg_scale,
                threshold: v.threshold,
                draw,
            }),
            SamplerKind::Mdlm => Settings::Mdlm(MdlmSettings {
                gen_length: v.gen_length,
                steps: v.steps,
                use_cache: v.use_cache,
                draw,
            }),
            SamplerKind::Bd3 => Settings::Bd3(Bd3Settings {
                gen_length: v.gen_length,
                block_length: v.block_length,
                order: if v.first_hitting {
                    Bd3Order::FirstHitting
                } else {
                    Bd3Order::Ranked {
                        steps: v.steps,
                        remasking: v.remasking,
                        threshold: v.threshold,
                    }
                },
                use_cache: v.use_cache,
                stop_at_eos: v.stop_at_eos,
                draw,
            }),
            SamplerKind::Ar => Settings::Ar(ArSettings {
                gen_length: v.gen_length,
                use_cache: v.use_cache,
                stop_at_eos: v.stop_at_eos,
                draw,
            }),
            // Version 1 predates diffusion forcing: its knobs were never written.
            SamplerKind::Forcing => Settings::Forcing(crate::sampler::ForcingSettings {
                gen_length: v.gen_length,
                draw,
                ..Default::default()
            }),
        }
    }
}

/// Version 1 on the wire: every step with its whole canvas and masked flags.
#[derive(Deserialize)]
struct V1 {
    model: ModelInfo,
    settings: SettingsV1,
    prompt: String,
    prompt_ids: Vec<u32>,
    vocab: std::collections::BTreeMap<u32, String>,
    steps: Vec<Step>,
    final_ids: Vec<u32>,
    text: String,
    completion: String,
    stats: Stats,
}

impl Serialize for Trajectory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut len = self
            .prompt_ids
            .len()
            .saturating_add(self.settings.gen_length());
        let steps = self
            .steps
            .iter()
            .map(|s| {
                let cut = (s.canvas.len() != len).then_some(s.canvas.len());
                len = s.canvas.len();
                StepRecord {
                    index: s.index,
                    model_calls: s.model_calls,
                    commits: s.commits.clone(),
                    block: s.block,
                    candidates: s.candidates.clone(),
                    len: cut,
                    levels: s.levels.clone(),
                }
            })
            .collect();
        V2 {
            format: self.format.clone(),
            version: TRAJECTORY_VERSION,
            kind: self.kind,
            model: self.model.clone(),
            settings: self.settings.clone(),
            prompt: self.prompt.clone(),
            prompt_ids: self.prompt_ids.clone(),
            vocab: self.vocab.clone(),
            steps,
            final_ids: self.final_ids.clone(),
            text: self.text.clone(),
            completion: self.completion.clone(),
            stats: self.stats.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Trajectory {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Buffered once, read twice: the header decides the version's layout.
        let value = serde_json::Value::deserialize(deserializer)?;
        let header = Header::deserialize(&value).map_err(D::Error::custom)?;
        if header.format != TRAJECTORY_FORMAT
            || !(OLDEST_TRAJECTORY_VERSION..=TRAJECTORY_VERSION).contains(&header.version)
        {
            return Err(D::Error::custom(TrajectoryError::Version {
                format: header.format,
                version: header.version,
            }));
        }
        if header.kind != Family::Text {
            return Err(D::Error::custom(TrajectoryError::Kind {
                found: header.kind,
                expected: Family::Text,
            }));
        }
        if header.version == 1 {
            let v = V1::deserialize(&value).map_err(D::Error::custom)?;
            return Ok(Trajectory {
                format: header.format,
                version: header.version,
                kind: Family::Text,
                model: v.model,
                settings: v.settings.into(),
                prompt: v.prompt,
                prompt_ids: v.prompt_ids,
                vocab: v.vocab,
                steps: v.steps,
                final_ids: v.final_ids,
                text: v.text,
                completion: v.completion,
                stats: v.stats,
            });
        }
        let v = V2::deserialize(&value).map_err(D::Error::custom)?;
        // Rebuild each canvas: the one before, its commits written, cut where the record says.
        // Sizes are bounded before anything of their size is built (see `Trajectory::check`).
        // (Whether they agree with each other is `Trajectory::check`'s to say.)
        use crate::limits::{MAX_MODEL_LENGTH, check};
        check("model_length", v.model.model_length, MAX_MODEL_LENGTH).map_err(D::Error::custom)?;
        let width = v.prompt_ids.len().saturating_add(v.settings.gen_length());
        check("prompt + gen_length", width, MAX_MODEL_LENGTH).map_err(D::Error::custom)?;
        let mut canvas = v.prompt_ids.clone();
        canvas.resize(width, v.model.mask_id);
        let mut steps = Vec::with_capacity(v.steps.len());
        for r in v.steps {
            for c in &r.commits {
                if let Some(slot) = canvas.get_mut(c.position) {
                    *slot = c.token;
                }
            }
            if let Some(len) = r.len {
                canvas.truncate(len);
            }
            steps.push(Step {
                index: r.index,
                model_calls: r.model_calls,
                commits: r.commits,
                masked: canvas.iter().map(|&t| t == v.model.mask_id).collect(),
                canvas: canvas.clone(),
                block: r.block,
                candidates: r.candidates,
                levels: r.levels,
            });
        }
        Ok(Trajectory {
            format: v.format,
            version: v.version,
            kind: v.kind,
            model: v.model,
            settings: v.settings,
            prompt: v.prompt,
            prompt_ids: v.prompt_ids,
            vocab: v.vocab,
            steps,
            final_ids: v.final_ids,
            text: v.text,
            completion: v.completion,
            stats: v.stats,
        })
    }
}
