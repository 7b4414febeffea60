//! LLaDA's sampler: semi-autoregressive remasking.
//!
//! Nie et al., "Large Language Diffusion Models", arXiv:2502.09992, Algorithm 5 (low-confidence
//! remasking) as implemented in `ML-GSAI/LLaDA` `generate.py`; the confidence threshold of Wu et al.,
//! "Fast-dLLM", arXiv:2505.22618 (`NVlabs/Fast-dLLM` `llada/generate.py`); the `margin` and `entropy`
//! orders of Dream (`HKUNLP/Dream`).
//!
//! The generation region is cut into blocks of `block_length`; each block gets `steps / blocks`
//! steps. Every step runs the model on the whole canvas, predicts x0 at the block's masked
//! positions (Gumbel-max at temperature T), and commits the most confident ones: a fixed count per
//! step from [`transfer_schedule`](super::transfer_schedule), or, with a threshold τ, every one
//! whose token has probability ≥ τ and at least the most confident. Masks written in the prompt
//! are filled during the first block.

use super::probs::confidence;
use super::{
    Base, BlockSchedule, Candidates, Canvas, Commit, Denoiser, LladaSettings, ModelError,
    ModelSpec, Remasking, RowQuery, Rows, SampleError, SettingsError, Step, check_steps,
    loglinear_sigma,
};

/// A masked position's prediction.
#[derive(Clone, Debug)]
pub(crate) struct Scored {
    pub position: usize,
    pub token: u32,
    pub prob: f64,
    pub confidence: f64,
}

/// Predicts x0 at every position of `positions` (`row_of` maps a position to its row of `rows`)
/// and scores it; returns the scores and the top candidates, in position order. The draws come
/// from the run's generator before the call, in the order the positions are listed (each row's
/// token, then the `random` rule's uniform), so a seed means the same run on every backend.
pub(crate) async fn score<R: Rows>(
    rows: &R,
    row_of: impl Fn(usize) -> usize,
    positions: &[usize],
    base: &mut Base,
    remasking: Remasking,
) -> Result<(Vec<Scored>, Vec<Candidates>), SampleError> {
    let mut queries = Vec::with_capacity(positions.len());
    let mut uniforms = Vec::with_capacity(positions.len());
    for &position in positions {
        queries.push(RowQuery {
            row: row_of(position),
            draw: base.plan(),
        });
        uniforms.push(if remasking == Remasking::Random {
            base.rng.uniform()
        } else {
            0.0
        });
    }
    let request = base.request(queries, Some(remasking));
    let reduced = rows.reduce(&request).await?;
    let mut scored = Vec::with_capacity(positions.len());
    let mut candidates = Vec::with_capacity(positions.len());
    for ((&position, r), &uniform) in positions.iter().zip(&reduced).zip(&uniforms) {
        scored.push(Scored {
            position,
            token: r.token,
            prob: r.prob,
            confidence: confidence(remasking, r, uniform),
        });
        candidates.extend(base.candidates_of(position, r));
    }
    Ok((scored, candidates))
}

/// The `count` most confident predictions (earlier position first on ties), or with a threshold τ,
/// every prediction whose probability is ≥ τ (Fast-dLLM), and never fewer than the most confident.
pub(crate) fn select(mut scored: Vec<Scored>, count: usize, threshold: Option<f64>) -> Vec<Commit> {
    scored.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.position.cmp(&b.position))
    });
    let count = match threshold {
        // Fast-dLLM: every prediction at least τ probable, or else the most confident one.
        Some(tau) if scored.iter().any(|s| s.prob >= tau) => {
            scored.retain(|s| s.prob >= tau);
            scored.len()
        }
        Some(_) => 1,
        None => count,
    };
    let mut commits: Vec<Commit> = scored
        .into_iter()
        .take(count)
        .map(|s| Commit {
            position: s.position,
            token: s.token,
            confidence: s.prob,
        })
        .collect();
    commits.sort_by_key(|c| c.position);
    commits
}

/// The LLaDA sampler's state.
#[derive(Clone, Debug)]
pub struct Llada {
    pub(crate) base: Base,
    remasking: Remasking,
    threshold: Option<f64>,
    cfg_scale: f64,
    block_length: usize,
    num_blocks: usize,
    block: usize,
    schedule: BlockSchedule,
    initially_masked: usize,
}

impl Llada {
    /// Checks LLaDA's constraints (`gen_length % block_length == 0`, `steps % blocks == 0`) and sets
    /// up the canvas.
    pub fn new(
        settings: &LladaSettings,
        prompt: &[u32],
        spec: &ModelSpec,
    ) -> Result<Self, SettingsError> {
        let canvas = Canvas::new(prompt, settings.gen_length, spec.mask_id);
        let gen_length = settings.gen_length;
        let block_length = settings.block_length.unwrap_or(gen_length).max(1);
        if !gen_length.is_multiple_of(block_length) {
            return Err(SettingsError::BlocksDoNotTile {
                gen_length,
                block_length,
            });
        }
        let num_blocks = (gen_length / block_length).max(1);
        if settings.threshold.is_none() {
            check_steps(settings.steps, canvas.masked_count())?;
            if !settings.steps.is_multiple_of(num_blocks) {
                return Err(SettingsError::StepsPerBlock {
                    steps: settings.steps,
                    blocks: num_blocks,
                });
            }
        }
        Ok(Self {
            initially_masked: canvas.masked_count(),
            base: Base::new(canvas, &settings.draw, spec, true),
            remasking: settings.remasking,
            threshold: settings.threshold,
            cfg_scale: settings.cfg_scale,
            block_length,
            num_blocks,
            block: 0,
            schedule: BlockSchedule::per_block(settings.steps / num_blocks),
        })
    }

    fn block_range(&self) -> std::ops::Range<usize> {
        let start = self.base.canvas.prompt_len() + self.block * self.block_length;
        start..(start + self.block_length).min(self.base.canvas.len())
    }

    /// Masked positions this block may commit: its own, and the prompt's during the first block.
    fn active(&self) -> Vec<usize> {
        let mut active = if self.block == 0 {
            self.base.canvas.masked_in(0..self.base.canvas.prompt_len())
        } else {
            Vec::new()
        };
        active.extend(self.base.canvas.masked_in(self.block_range()));
        active
    }

    /// Runs one model call and commits what it decides.
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        let active = loop {
            if self.block >= self.num_blocks {
                return Ok(None);
            }
            let active = self.active();
            if !active.is_empty() {
                break active;
            }
            self.block += 1;
            self.schedule.next_block();
        };
        let first = active[0];
        let targets = first..active[active.len() - 1] + 1;
        let t = self.base.canvas.masked_count() as f64 / self.initially_masked.max(1) as f64;
        let sigma = loglinear_sigma(t);
        let rows = if self.cfg_scale > 0.0 {
            let uncond = self.base.canvas.unconditional();
            let mut out = model
                .predict(
                    &[self.base.canvas.tokens(), &uncond],
                    targets.clone(),
                    sigma,
                )
                .await?;
            let (Some(uncond), Some(cond)) = (out.pop(), out.pop()) else {
                return Err(ModelError::Unsupported(
                    "the model returned fewer predictions than sequences".into(),
                )
                .into());
            };
            cond.guided(uncond, self.cfg_scale)
        } else {
            model
                .predict(&[self.base.canvas.tokens()], targets.clone(), sigma)
                .await?
                .remove(0)
        };
        self.base.progress.model_calls += 1;
        let (scored, candidates) = score(
            &rows,
            |p| p - first,
            &active,
            &mut self.base,
            self.remasking,
        )
        .await?;
        let count = self.schedule.next_count(active.len());
        let commits = select(scored, count, self.threshold);
        self.base.canvas.apply(&commits);
        let block = self.block_range();
        Ok(Some(self.base.progress.emit(
            &self.base.canvas,
            commits,
            block,
            candidates,
        )))
    }
}
