//! MaskGIT's parallel decoding (Chang et al. 2022, "MaskGIT: Masked Generative Image
//! Transformer", arXiv:2202.04200), as MMaDA draws images (`Gen-Verse/MMaDA`
//! `models/modeling_mmada.py` `t2i_generate`, `models/sampling.py` `mask_by_random_topk` and the
//! cosine `mask_schedule`), written again here:
//!
//! at step k of K, every masked image position draws a token from softmax of its logits —
//! guided as `(1 + w)·cond − w·uncond` when w > 0, the unconditional sequence being the prompt
//! with an empty caption and the same image so far — over the image codes only (MMaDA slices its
//! logits the same way); known positions keep theirs. Then `⌊N·cos(π/2·(k+1)/K)⌋` positions
//! (N the image's, at least 1 and fewer than those still masked) go back to the mask: those
//! with the lowest `ln p(drawn) + τ·(1 − (k+1)/K)·g`, g standard Gumbel noise. The others are
//! committed; the last step commits every one. So the image fills in along a cosine, the
//! surest cells first, and a known cell never changes.
//!
//! The draws come from the run's seeded generator, position by position, so a seed gives the
//! same image on every backend.

use std::f64::consts::FRAC_PI_2;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::probs::{inverse_cdf, subs_probs};
use super::{
    Canvas, Commit, Denoiser, Knob, ModelSpec, Progress, Rows, SampleError, SettingsError, Step,
};
use crate::network::Logits;
use crate::rng::Rng;

/// MMaDA's steps of text → image by default (`timesteps`).
pub const DEFAULT_STEPS: usize = 15;
/// MMaDA's guidance scale by default (`guidance_scale` in its README's command).
pub const DEFAULT_CFG: f64 = 3.5;
/// MaskGIT's choice temperature by default (MMaDA's `generation_temperature`).
pub const DEFAULT_TEMPERATURE: f64 = 1.0;
/// The most steps a run may take.
pub const MAX_STEPS: usize = 1_000;

/// How MaskGIT fills an image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskGitSettings {
    /// K, the steps (each one model call, two with guidance).
    pub steps: usize,
    /// w of classifier-free guidance, `(1 + w)·cond − w·uncond`; 0 runs the conditional
    /// prediction alone.
    #[serde(with = "crate::float_json")]
    pub cfg_scale: f64,
    /// τ, the Gumbel noise on the confidences that decides what is re-masked, annealed by
    /// `1 − (k+1)/K`; 0 keeps the most probable draws.
    #[serde(with = "crate::float_json")]
    pub temperature: f64,
    /// Seed of every draw.
    pub seed: u64,
}

impl Default for MaskGitSettings {
    /// MMaDA's: 15 steps, w = 3.5, τ = 1.
    fn default() -> Self {
        Self {
            steps: DEFAULT_STEPS,
            cfg_scale: DEFAULT_CFG,
            temperature: DEFAULT_TEMPERATURE,
            seed: 0,
        }
    }
}

impl MaskGitSettings {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |knob, value: f64, expected: &str| {
            Err(SettingsError::OutOfRange {
                knob,
                value: value.to_string(),
                expected: expected.into(),
            })
        };
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return bad(
                Knob::Steps,
                self.steps as f64,
                &format!("a whole number from 1 to {MAX_STEPS}"),
            );
        }
        if !(self.cfg_scale.is_finite() && self.cfg_scale >= 0.0) {
            return bad(Knob::Cfg, self.cfg_scale, "a finite number ≥ 0");
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(Knob::Temperature, self.temperature, "a finite number ≥ 0");
        }
        Ok(())
    }
}

/// Positions re-masked after step `k` (0-based) of `steps` when `masked` are still masked out of
/// `n` image positions: `⌊n·cos(π/2·(k+1)/K)⌋`, at least 1 and at most `masked − 1`, and none
/// after the last step.
pub fn remasked_count(k: usize, steps: usize, n: usize, masked: usize) -> usize {
    if k + 1 >= steps || masked == 0 {
        return 0;
    }
    let ratio = (k + 1) as f64 / steps as f64;
    let count = (n as f64 * (FRAC_PI_2 * ratio).cos()).floor() as usize;
    count.min(masked.saturating_sub(1)).max(1)
}

/// A MaskGIT run over the image positions of a sequence.
#[derive(Clone, Debug)]
pub struct MaskGit {
    canvas: Canvas,
    /// The unconditional twin of the sequence: its image positions follow the canvas's.
    uncond: Vec<u32>,
    image: Range<usize>,
    codes: Range<u32>,
    settings: MaskGitSettings,
    k: usize,
    rng: Rng,
    progress: Progress,
}

impl MaskGit {
    /// A run filling `prompt`'s masked positions inside `image` with tokens from `codes`;
    /// `uncond` is the prompt's unconditional twin (guidance's), of the same length.
    pub fn new(
        settings: &MaskGitSettings,
        prompt: &[u32],
        uncond: &[u32],
        image: Range<usize>,
        codes: Range<u32>,
        spec: &ModelSpec,
    ) -> Result<Self, SettingsError> {
        settings.validate()?;
        if prompt.len() > spec.model_length {
            return Err(SettingsError::TooLong {
                prompt: prompt.len(),
                gen_length: 0,
                model_length: spec.model_length,
            });
        }
        if let Some(&token) = prompt
            .iter()
            .chain(uncond)
            .find(|&&t| t as usize >= spec.vocab_size)
        {
            return Err(SettingsError::TokenOutsideVocabulary {
                token,
                vocab_size: spec.vocab_size,
            });
        }
        if codes.end as usize > spec.vocab_size || codes.is_empty() {
            return Err(SettingsError::TokenOutsideVocabulary {
                token: codes.end.saturating_sub(1),
                vocab_size: spec.vocab_size,
            });
        }
        let canvas = Canvas::new(prompt, 0, spec.mask_id);
        if image.end > prompt.len() || uncond.len() != prompt.len() {
            return Err(SettingsError::NothingToGenerate);
        }
        if canvas.masked_in(image.clone()).is_empty()
            || canvas.masked_count() != canvas.masked_in(image.clone()).len()
        {
            // Every masked position must be an image position, and one at least.
            return Err(SettingsError::NothingToGenerate);
        }
        Ok(Self {
            canvas,
            uncond: uncond.to_vec(),
            image,
            codes,
            settings: settings.clone(),
            k: 0,
            rng: Rng::new(settings.seed),
            progress: Progress::default(),
        })
    }

    /// The canvas as it stands.
    pub fn canvas(&self) -> &Canvas {
        &self.canvas
    }

    /// Calls and steps so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Runs step k: one prediction (two with guidance), draws for every masked cell, and the
    /// re-masking. `None` once the image is whole.
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        let masked = self.canvas.masked_in(self.image.clone());
        if self.k >= self.settings.steps || masked.is_empty() {
            return Ok(None);
        }
        let logits = self.predict(model).await?;
        // Every masked cell's draw, then its confidence, in position order.
        let anneal =
            self.settings.temperature * (1.0 - (self.k + 1) as f64 / self.settings.steps as f64);
        let mut drawn: Vec<(usize, u32, f64, f64)> = Vec::with_capacity(masked.len());
        for &position in &masked {
            let row = logits.row(position - self.image.start);
            // No mask among the grey levels: plain softmax.
            let probs = subs_probs(row, u32::MAX);
            let log_weights: Vec<f64> = row.iter().map(|&l| f64::from(l)).collect();
            let level = inverse_cdf(&log_weights, self.rng.uniform());
            let p = probs[level];
            let g = gumbel(self.rng.uniform());
            let confidence = p.ln() + anneal * g;
            drawn.push((position, self.codes.start + level as u32, p, confidence));
        }
        let n = self.image.len();
        let remask = remasked_count(self.k, self.settings.steps, n, masked.len());
        // The `remask` least confident go back to the mask (ties: the later position).
        let mut order: Vec<usize> = (0..drawn.len()).collect();
        order.sort_by(|&a, &b| drawn[a].3.total_cmp(&drawn[b].3).then(b.cmp(&a)));
        let mut keep = vec![true; drawn.len()];
        for &i in order.iter().take(remask) {
            keep[i] = false;
        }
        let commits: Vec<Commit> = drawn
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(&(position, token, p, _), _)| Commit {
                position,
                token,
                confidence: p,
            })
            .collect();
        self.canvas.apply(&commits);
        self.k += 1;
        Ok(Some(self.progress.emit(
            &self.canvas,
            commits,
            self.image.clone(),
            Vec::new(),
        )))
    }

    /// The image positions' logits over the codes, guided when w > 0.
    async fn predict<D: Denoiser>(&mut self, model: &mut D) -> Result<Logits, SampleError> {
        let cond = self.canvas.tokens().to_vec();
        let rows = if self.settings.cfg_scale > 0.0 {
            let mut uncond = self.uncond.clone();
            uncond[self.image.clone()].copy_from_slice(&cond[self.image.clone()]);
            let mut rows = model
                .predict(&[&cond, &uncond], self.image.clone(), 0.0)
                .await?;
            self.progress.model_calls += 2;
            let uncond = rows.pop();
            let cond = rows.pop();
            match (cond, uncond) {
                (Some(c), Some(u)) => c.guided(u, self.settings.cfg_scale),
                _ => return Err(missing_rows()),
            }
        } else {
            self.progress.model_calls += 1;
            model
                .predict(&[&cond], self.image.clone(), 0.0)
                .await?
                .pop()
                .ok_or_else(missing_rows)?
        };
        let codes = self.codes.start as usize..self.codes.end as usize;
        Ok(rows.columns(codes).await?)
    }
}

fn missing_rows() -> SampleError {
    crate::network::ModelError::Unsupported("the model returned no rows".into()).into()
}

/// Standard Gumbel noise from a uniform draw, `−ln(−ln u)`, kept finite at the ends.
fn gumbel(u: f64) -> f64 {
    let u = u.clamp(1e-20, 1.0 - 1e-16);
    -(-u.ln()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remask_count_follows_the_cosine_within_its_bounds() {
        // K = 15 over 64 cells, MMaDA's default: ⌊64·cos(π/2·1/15)⌋ = ⌊63.65⌋ after the first.
        assert_eq!(remasked_count(0, 15, 64, 64), 63);
        // ⌊64·cos(π/2·13/15)⌋ = ⌊13.3⌋.
        assert_eq!(remasked_count(12, 15, 64, 30), 13);
        // ⌊64·cos(π/4)⌋ = 45, half-way through two steps.
        assert_eq!(remasked_count(0, 2, 64, 64), 45);
        // Never more than all but one of the masked (⌊64·cos(π/2·8/15)⌋ = 42 > 39) …
        assert_eq!(remasked_count(7, 15, 64, 40), 39);
        // … and never none before the last step, even with one cell left.
        assert_eq!(remasked_count(13, 15, 64, 1), 1);
    }

    #[test]
    fn the_last_step_commits_everything() {
        for masked in [1, 10, 64] {
            assert_eq!(remasked_count(14, 15, 64, masked), 0);
        }
        assert_eq!(remasked_count(0, 1, 64, 64), 0);
    }
}
