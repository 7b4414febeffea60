//! The versioned JSON record of a whole run: what the CLI writes with `--trace`, what the page
//! exports and replays without a model.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Attention;
use crate::sampler::{Settings, Step};

/// The `format` field of every trajectory file.
pub const TRAJECTORY_FORMAT: &str = "unmask.trajectory";
/// The schema version this build writes and reads.
pub const TRAJECTORY_VERSION: u32 = 1;

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// Always [`TRAJECTORY_FORMAT`].
    pub format: String,
    /// Schema version, [`TRAJECTORY_VERSION`].
    pub version: u32,
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
        "trajectory format {format:?} version {version} is not {TRAJECTORY_FORMAT:?} version {TRAJECTORY_VERSION}; export it again with this version of Unmask"
    )]
    Version {
        /// Its format string.
        format: String,
        /// Its version.
        version: u32,
    },
    /// The steps contradict each other or the canvas (a hand-edited or damaged file).
    #[error("the trajectory is inconsistent: {0}; export it again")]
    Inconsistent(String),
}

impl Trajectory {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads and checks a trajectory file.
    pub fn from_json(text: &str) -> Result<Self, TrajectoryError> {
        let t: Trajectory = serde_json::from_str(text)?;
        if t.format != TRAJECTORY_FORMAT || t.version != TRAJECTORY_VERSION {
            return Err(TrajectoryError::Version {
                format: t.format,
                version: t.version,
            });
        }
        t.check()?;
        Ok(t)
    }

    /// Checks what a replay relies on: steps numbered 0, 1, …; every canvas as long as the
    /// prompt plus `gen_length` at most (and the masked flags with it); every commit and block
    /// inside its canvas.
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
            .checked_add(self.settings.gen_length)
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
            let outside = |p: usize| p >= len;
            if step.commits.iter().any(|c| outside(c.position))
                || step.candidates.iter().any(|c| outside(c.position))
            {
                return bad(format!("step {i} writes outside its canvas"));
            }
        }
        Ok(())
    }
}
