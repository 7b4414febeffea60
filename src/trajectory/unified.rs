//! A run of the text + image family as a file (`kind: "unified"`, format version 2): the task
//! with its input and knobs, and every step over the [`SEQUENCE_LEN`]-token canvas as a text
//! sampler records it, with the text of every token on it — an image cell's text names its grey
//! level ([`crate::unified::level_named`]), so a replay needs neither the model nor its tokenizer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ModelInfo, TRAJECTORY_FORMAT, TRAJECTORY_VERSION, TrajectoryError};
use crate::config::{Attention, Family};
use crate::network::ModelSpec;
use crate::sampler::Step;
use crate::text::TextCodec;
use crate::unified::{PIXELS, SEQUENCE_LEN, UnifiedRun, UnifiedTask};

/// A text → image or image → text run, step by step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnifiedTrajectory {
    /// Always [`TRAJECTORY_FORMAT`].
    pub format: String,
    /// [`TRAJECTORY_VERSION`].
    pub version: u32,
    /// Always [`Family::Unified`].
    pub kind: Family,
    /// The model.
    pub model: ModelInfo,
    /// The task, its input and its knobs, seed included.
    pub task: UnifiedTask,
    /// The canvas before the first step.
    pub prompt_ids: Vec<u32>,
    /// Text of each token id on the canvas or among the candidates.
    pub vocab: BTreeMap<u32, String>,
    /// Every step.
    pub steps: Vec<Step>,
    /// The final canvas.
    pub final_ids: Vec<u32>,
    /// The caption: the one drawn from (text → image) or the one written (image → text).
    pub caption: String,
    /// The image: the one drawn (text → image, once whole) or the one captioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Vec<u8>>,
}

impl UnifiedTrajectory {
    /// The record of `run` (finished or not) of `task` on a model of `spec` named `name`.
    pub fn new(
        name: &str,
        spec: &ModelSpec,
        task: &UnifiedTask,
        run: &UnifiedRun,
        codec: &TextCodec,
    ) -> Self {
        let final_ids = run.tokens().to_vec();
        let vocab = run
            .prompt_ids()
            .iter()
            .chain(&final_ids)
            .copied()
            .chain(
                run.steps()
                    .iter()
                    .flat_map(|s| &s.candidates)
                    .flat_map(|c| c.top.iter().map(|t| t.token)),
            )
            .map(|id| (id, codec.token_text(id)))
            .collect();
        let (caption, image) = match task {
            UnifiedTask::T2i { caption, .. } => {
                (caption.trim().to_owned(), run.image().map(|i| i.to_vec()))
            }
            UnifiedTask::Mmu { image, .. } => (
                codec.decode(run.caption_tokens()).trim().to_owned(),
                Some(image.clone()),
            ),
        };
        Self {
            format: TRAJECTORY_FORMAT.into(),
            version: TRAJECTORY_VERSION,
            kind: Family::Unified,
            model: ModelInfo {
                name: name.into(),
                vocab_size: spec.vocab_size,
                mask_id: spec.mask_id,
                attention: Attention::Bidirectional,
                model_length: spec.model_length,
            },
            task: task.clone(),
            prompt_ids: run.prompt_ids().to_vec(),
            vocab,
            steps: run.steps().to_vec(),
            final_ids,
            caption,
            image,
        }
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks a text + image trajectory.
    pub fn from_json(text: &str) -> Result<Self, TrajectoryError> {
        super::read_family(text, Family::Unified, Self::check)
    }

    /// Checks what a replay relies on: the knobs valid, an image of 64 levels on 0–16, every
    /// canvas [`SEQUENCE_LEN`] tokens inside the vocabulary with its masked flags, steps
    /// numbered 0, 1, …, every commit and candidate on the canvas and every probability in
    /// [0, 1].
    pub fn check(&self) -> Result<(), TrajectoryError> {
        let bad = |m: String| Err(TrajectoryError::Inconsistent(m));
        let m = &self.model;
        crate::limits::check("vocab_size", m.vocab_size, crate::limits::MAX_VOCAB_SIZE)
            .map_err(|e| TrajectoryError::Inconsistent(e.to_string()))?;
        if m.mask_id as usize >= m.vocab_size {
            return bad(format!(
                "the mask id {} is outside the vocabulary of {} tokens",
                m.mask_id, m.vocab_size
            ));
        }
        let settings = match &self.task {
            UnifiedTask::T2i { settings, .. } => settings.validate(),
            UnifiedTask::Mmu { image, settings } => {
                let values: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
                crate::unified::image_from_values(&values)
                    .map_err(|e| TrajectoryError::Inconsistent(e.to_string()))?;
                settings.validate()
            }
        };
        settings.map_err(|e| TrajectoryError::Inconsistent(e.to_string()))?;
        if let Some(image) = &self.image
            && (image.len() != PIXELS || image.iter().any(|&v| v > crate::unified::MAX_VALUE))
        {
            return bad(format!("the image is not {PIXELS} grey levels on 0–16"));
        }
        let outside = |ids: &[u32]| ids.iter().any(|&t| t as usize >= m.vocab_size);
        if self.prompt_ids.len() != SEQUENCE_LEN || self.final_ids.len() != SEQUENCE_LEN {
            return bad(format!("a canvas is not {SEQUENCE_LEN} tokens"));
        }
        if outside(&self.prompt_ids) || outside(&self.final_ids) {
            return bad("a token is outside the vocabulary".into());
        }
        if self.steps.len() > self.task.steps() {
            return bad(format!(
                "{} steps in a run of {}",
                self.steps.len(),
                self.task.steps()
            ));
        }
        let unlikely = |p: f64| !(0.0..=1.0).contains(&p);
        for (i, s) in self.steps.iter().enumerate() {
            if s.index != i {
                return bad(format!("step {i} is numbered {}", s.index));
            }
            if s.canvas.len() != SEQUENCE_LEN || s.masked.len() != SEQUENCE_LEN {
                return bad(format!(
                    "step {i} has a canvas of {} positions with {} masked flags, not {SEQUENCE_LEN}",
                    s.canvas.len(),
                    s.masked.len()
                ));
            }
            if outside(&s.canvas)
                || s.commits.iter().any(|c| c.position >= SEQUENCE_LEN)
                || s.candidates.iter().any(|c| c.position >= SEQUENCE_LEN)
                || s.block[0] > s.block[1]
                || s.block[1] > SEQUENCE_LEN
            {
                return bad(format!("step {i} writes outside its canvas"));
            }
            if s.commits.iter().any(|c| unlikely(c.confidence))
                || s.candidates
                    .iter()
                    .flat_map(|c| &c.top)
                    .any(|t| unlikely(t.prob))
            {
                return bad(format!("step {i} has a probability that is not in [0, 1]"));
            }
        }
        Ok(())
    }
}
