//! Autoregressive decoding: one token per model call, left to right, with the causal KV cache.
//!
//! The baseline of the BD3-LM paper (Arriola et al., arXiv:2503.09573, the AR rows of its tables;
//! `kuleshov-group/bd3lms` `diffusion.py` `_ar_sampler`), and the limit of block diffusion with
//! block size 1. Each masked position, in order, is predicted from everything before it; a
//! mask written in the prompt is filled the same way. Stops after the first generated EOS.

use super::probs::{draw_token, subs_probs, top_tokens};
use super::{
    ArSettings, Base, CacheConflict, Candidates, Canvas, Commit, Denoiser, ModelSpec, SampleError,
    SamplerKind, SettingsError, Step, TOP_CANDIDATES, loglinear_sigma,
};

/// The AR sampler's state.
#[derive(Clone, Debug)]
pub struct Ar {
    pub(crate) base: Base,
    use_cache: bool,
    /// Positions already handed to the model's cache.
    cached_len: usize,
    eos_id: Option<u32>,
    done: bool,
}

impl Ar {
    /// Sets up the canvas; the first token must be given (there is nothing to predict it from).
    pub fn new(
        settings: &ArSettings,
        prompt: &[u32],
        spec: &ModelSpec,
    ) -> Result<Self, SettingsError> {
        let canvas = Canvas::new(prompt, settings.gen_length, spec.mask_id);
        if settings.use_cache && spec.attention != crate::config::Attention::Causal {
            return Err(SettingsError::CacheUnsupported {
                sampler: SamplerKind::Ar,
                why: CacheConflict::Attention {
                    needs: "causal",
                    has: spec.attention.name(),
                },
            });
        }
        if canvas.is_masked(0) {
            return Err(SettingsError::FirstPositionMasked);
        }
        Ok(Self {
            base: Base::new(canvas, &settings.draw, spec, false),
            use_cache: settings.use_cache,
            cached_len: 0,
            eos_id: if settings.stop_at_eos {
                spec.eos_id
            } else {
                None
            },
            done: false,
        })
    }

    /// Predicts and commits the next masked position.
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        let next = (0..self.base.canvas.len()).find(|&i| self.base.canvas.is_masked(i));
        let Some(position) = next.filter(|_| !self.done) else {
            return Ok(None);
        };
        let t = self.base.canvas.masked_count() as f64 / self.base.canvas.len() as f64;
        let sigma = loglinear_sigma(t);
        let logits = if self.use_cache {
            if self.base.progress.model_calls == 0 {
                model.reset_cache();
            }
            let commit = &self.base.canvas.tokens()[self.cached_len..position];
            self.cached_len = position;
            model.predict_cached(commit, &[], sigma).await?
        } else {
            model
                .predict(
                    &[&self.base.canvas.tokens()[..position + 1]],
                    position..position + 1,
                    sigma,
                )
                .await?
                .remove(0)
        };
        self.base.progress.model_calls += 1;
        let row = logits.row(0);
        let probs = subs_probs(row, self.base.draw.mask_id);
        let token = draw_token(row, &self.base.draw, &mut self.base.rng);
        let commits = vec![Commit {
            position,
            token,
            confidence: probs[token as usize],
        }];
        let candidates = vec![Candidates {
            position,
            top: top_tokens(&probs, TOP_CANDIDATES),
        }];
        self.base.canvas.apply(&commits);
        if self.eos_id == Some(token) && position >= self.base.canvas.prompt_len() {
            self.base.canvas.truncate(position + 1);
            self.done = true;
        }
        Ok(Some(self.base.progress.emit(
            &self.base.canvas,
            commits,
            position..position + 1,
            candidates,
        )))
    }
}
