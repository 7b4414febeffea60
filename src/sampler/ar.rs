//! Autoregressive decoding: one token per model call, left to right, with the causal KV cache.
//!
//! The baseline of the BD3-LM paper (Arriola et al., arXiv:2503.09573, the AR rows of its tables;
//! `kuleshov-group/bd3lms` `diffusion.py` `_ar_sampler`), and the limit of block diffusion with
//! block size 1. Each masked position, in order, is predicted from everything before it; a
//! mask written in the prompt is filled the same way. Stops after the first generated EOS.

use super::{
    ArSettings, Base, CacheConflict, Candidates, Canvas, Commit, Denoiser, ModelError, ModelSpec,
    RowQuery, Rows, SampleError, SamplerKind, SettingsError, Step, loglinear_sigma,
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
        let rows = if self.use_cache {
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
        let query = RowQuery {
            row: 0,
            draw: self.base.plan(),
        };
        let reduced = rows.reduce(&self.base.request(vec![query], None)).await?;
        let Some(r) = reduced.first() else {
            return Err(ModelError::Unsupported("the reduction returned no row".into()).into());
        };
        let token = r.token;
        let commits = vec![Commit {
            position,
            token,
            confidence: r.prob,
        }];
        let candidates: Vec<Candidates> =
            self.base.candidates_of(position, r).into_iter().collect();
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
