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
        Ok(t)
    }
}
