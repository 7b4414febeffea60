//! A run of the Gaussian diffusion family as a file (`kind: "ddpm"`, format version 2): the
//! settings, and for every step the time, the noise level, x_t and x̂₀ of every image and the
//! classifier's p(y | x_t) where there was one. Nothing in it needs the model to replay.
//!
//! Pixels are stored on the diffusion's scale (−1 blank, 1 ink), rounded to [`DECIMALS`]
//! decimals: a DDPM run of 1,000 steps is then about 1 MB per image, a 20-step DDIM run 20 kB.

use serde::{Deserialize, Serialize};

use super::{TRAJECTORY_FORMAT, TRAJECTORY_VERSION, TrajectoryError};
use crate::config::Family;
use crate::network::ImageSpec;
use crate::sampler::gaussian::BetaSchedule;
use crate::sampler::image::{ImageSettings, ImageStep, MAX_IMAGES};

/// Decimals kept of every pixel value.
pub const DECIMALS: i32 = 5;

/// What the run ran on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageModelInfo {
    /// A name for the model (its folder).
    pub name: String,
    /// Pixels along a side.
    pub image_size: usize,
    /// Classes the network is conditioned on (0: unconditional).
    pub classes: usize,
    /// The diffusion's steps T.
    pub diffusion_steps: usize,
    /// Its β schedule.
    pub beta_schedule: BetaSchedule,
    /// The classifier that steered it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
}

/// Totals over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    /// Steps taken.
    pub steps: usize,
    /// Noise-predictor calls.
    pub model_calls: usize,
}

/// An image run, step by step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageTrajectory {
    /// Always [`TRAJECTORY_FORMAT`].
    pub format: String,
    /// [`TRAJECTORY_VERSION`].
    pub version: u32,
    /// Always [`Family::Ddpm`].
    pub kind: Family,
    /// The model.
    pub model: ImageModelInfo,
    /// The sampler and its knobs, seed included.
    pub settings: ImageSettings,
    /// Every step; the last one's `x` are the samples.
    pub steps: Vec<ImageStep>,
    /// Totals.
    pub stats: ImageStats,
}

fn rounded(values: &[f32]) -> Vec<f32> {
    let scale = 10f32.powi(DECIMALS);
    values.iter().map(|v| (v * scale).round() / scale).collect()
}

impl ImageTrajectory {
    /// The record of a run of `settings` on a model of `spec` named `name`, from its steps.
    pub fn new(
        name: &str,
        spec: &ImageSpec,
        classifier: Option<String>,
        settings: ImageSettings,
        steps: &[ImageStep],
    ) -> Self {
        let steps: Vec<ImageStep> = steps
            .iter()
            .map(|s| ImageStep {
                x: rounded(&s.x),
                x0: rounded(&s.x0),
                ..s.clone()
            })
            .collect();
        ImageTrajectory {
            format: TRAJECTORY_FORMAT.into(),
            version: TRAJECTORY_VERSION,
            kind: Family::Ddpm,
            model: ImageModelInfo {
                name: name.into(),
                image_size: spec.side,
                classes: spec.classes,
                diffusion_steps: spec.diffusion_steps,
                beta_schedule: spec.beta_schedule,
                classifier,
            },
            stats: ImageStats {
                steps: steps.len(),
                model_calls: steps.last().map_or(0, |s| s.model_calls),
            },
            settings,
            steps,
        }
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks an image trajectory.
    pub fn from_json(text: &str) -> Result<Self, TrajectoryError> {
        super::read_family(text, Family::Ddpm, Self::check)
    }

    /// Checks what a replay relies on: sizes within bounds, steps numbered 0, 1, … at times
    /// inside the diffusion, `count` images of the model's size in every step, every number
    /// finite and every probability in [0, 1].
    pub fn check(&self) -> Result<(), TrajectoryError> {
        use crate::limits::check;
        use crate::model::patch_dit::{MAX_CLASSES, MAX_SIDE};
        let bad = |m: String| Err(TrajectoryError::Inconsistent(m));
        let too_large = |e: crate::limits::TooLarge| TrajectoryError::Inconsistent(e.to_string());
        let m = &self.model;
        check("image_size", m.image_size, MAX_SIDE).map_err(too_large)?;
        check("classes", m.classes, MAX_CLASSES).map_err(too_large)?;
        check(
            "diffusion_steps",
            m.diffusion_steps,
            crate::sampler::gaussian::MAX_STEPS,
        )
        .map_err(too_large)?;
        self.settings
            .validate()
            .map_err(|e| TrajectoryError::Inconsistent(e.to_string()))?;
        let count = self.settings.condition().count;
        check("count", count, MAX_IMAGES).map_err(too_large)?;
        if self.steps.len() > m.diffusion_steps {
            return bad(format!(
                "{} steps in a diffusion of {}",
                self.steps.len(),
                m.diffusion_steps
            ));
        }
        let values = count * m.image_size * m.image_size;
        for (i, s) in self.steps.iter().enumerate() {
            if s.index != i {
                return bad(format!("step {i} is numbered {}", s.index));
            }
            if s.t >= m.diffusion_steps {
                return bad(format!(
                    "step {i} is at time {} of {}",
                    s.t, m.diffusion_steps
                ));
            }
            if s.x.len() != values || s.x0.len() != values {
                return bad(format!(
                    "step {i} holds {} and {} pixel values, not {count} images of {}×{}",
                    s.x.len(),
                    s.x0.len(),
                    m.image_size,
                    m.image_size
                ));
            }
            if s.x.iter().chain(&s.x0).any(|v| !v.is_finite()) {
                return bad(format!("step {i} has a pixel that is not a number"));
            }
            let unlikely = |p: f64| !(0.0..=1.0).contains(&p);
            if unlikely(s.noise_level)
                || s.class_prob
                    .as_ref()
                    .is_some_and(|p| p.len() != count || p.iter().any(|&p| unlikely(p)))
            {
                return bad(format!(
                    "step {i} has a noise level or probability outside [0, 1]"
                ));
            }
        }
        Ok(())
    }
}
