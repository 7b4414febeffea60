//! MDLM's ancestral sampler on the log-linear schedule, with its cache.
//!
//! Sahoo et al., "Simple and Effective Masked Diffusion Language Models", arXiv:2406.07524 (§3, the
//! reverse process under SUBS), following `kuleshov-group/mdlm` `diffusion.py` (`_ddpm_update`,
//! `_ddpm_caching_update`, `_sample`).
//!
//! Time runs over `linspace(1, ε, steps + 1)`. From t to s, each masked token stays masked with
//! probability s/t (the log-linear schedule's move chance is t) and otherwise takes a draw from the
//! model's p(x0), so the number committed per step is random. When a step commits nothing and the
//! model ignores time, the next step's p(x0) would be the same: the cache reuses it and skips the
//! call (`ddpm_cache`). Masks left after the last step are filled by one argmax pass (the
//! reference's noise removal).

use super::llada::Scored;
use super::probs::{TokenDraw, draw_token, subs_probs, top_tokens};
use super::{
    Base, Candidates, Canvas, Commit, Denoiser, Logits, MdlmSettings, ModelSpec, SampleError,
    SettingsError, Step, TOP_CANDIDATES, loglinear_sigma,
};

/// The reference's smallest time, `sampling_eps`.
pub const SAMPLING_EPS: f64 = 1e-5;

/// The MDLM sampler's state.
#[derive(Clone, Debug)]
pub struct Mdlm {
    pub(crate) base: Base,
    steps: usize,
    iteration: usize,
    use_cache: bool,
    time_conditioning: bool,
    /// Logits of the last call, rows for positions `cached_from..`, while still valid.
    cached: Option<(usize, Logits)>,
    finished: bool,
}

impl Mdlm {
    /// Sets up the canvas. Unlike LLaDA's fixed schedule, `steps` may exceed the masked count: the
    /// paper samples with T ≫ L, and the cache makes the empty steps free.
    /// `steps` is bounded by [`MAX_STEPS`](super::settings::MAX_STEPS): cache hits that commit
    /// nothing run inside one `step` call.
    pub fn new(
        settings: &MdlmSettings,
        prompt: &[u32],
        spec: &ModelSpec,
    ) -> Result<Self, SettingsError> {
        let canvas = Canvas::new(prompt, settings.gen_length, spec.mask_id);
        Ok(Self {
            base: Base::new(canvas, &settings.draw, spec, false),
            steps: settings.steps,
            iteration: 0,
            use_cache: settings.use_cache,
            time_conditioning: spec.time_conditioning,
            cached: None,
            finished: false,
        })
    }

    fn time(&self, i: usize) -> f64 {
        1.0 - (1.0 - SAMPLING_EPS) * i as f64 / self.steps as f64
    }

    /// Logits for every masked position, from the cache when it is still valid.
    async fn logits<D: Denoiser>(
        &mut self,
        model: &mut D,
        masked: &[usize],
        t: f64,
    ) -> Result<(usize, Logits), SampleError> {
        if let Some(hit) = self.cached.take() {
            self.base.progress.skipped_calls += 1;
            return Ok(hit);
        }
        let first = masked[0];
        let targets = first..masked[masked.len() - 1] + 1;
        let logits = model
            .predict(&[self.base.canvas.tokens()], targets, loglinear_sigma(t))
            .await?
            .remove(0);
        self.base.progress.model_calls += 1;
        Ok((first, logits))
    }

    /// Runs one denoising step (a model call unless the cache answers it).
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        let whole = 0..self.base.canvas.len();
        loop {
            let masked = self.base.canvas.masked_in(whole.clone());
            if masked.is_empty() || self.finished {
                return Ok(None);
            }
            let noise_removal = self.iteration >= self.steps;
            let (t, s) = (self.time(self.iteration), self.time(self.iteration + 1));
            let calls_before = self.base.progress.model_calls;
            let (first, logits) = self.logits(model, &masked, t).await?;
            let mut scored = Vec::new();
            let mut candidates = Vec::with_capacity(masked.len());
            for &position in &masked {
                let row = logits.row(position - first);
                let probs = subs_probs(row, self.base.draw.mask_id);
                candidates.push(Candidates {
                    position,
                    top: top_tokens(&probs, TOP_CANDIDATES),
                });
                let token = if noise_removal {
                    let greedy = TokenDraw {
                        temperature: 0.0,
                        ..self.base.draw
                    };
                    draw_token(row, &greedy, &mut self.base.rng)
                } else if self.base.rng.uniform() < (t - s) / t {
                    draw_token(row, &self.base.draw, &mut self.base.rng)
                } else {
                    continue;
                };
                scored.push(Scored {
                    position,
                    token,
                    prob: probs[token as usize],
                    confidence: 0.0,
                });
            }
            self.iteration += 1;
            self.finished = noise_removal;
            let called = self.base.progress.model_calls > calls_before;
            if scored.is_empty() && self.use_cache && !self.time_conditioning {
                // Nothing changed: the next step would see the same input.
                self.cached = Some((first, logits));
            }
            if scored.is_empty() && !called {
                continue;
            }
            let commits: Vec<Commit> = scored
                .into_iter()
                .map(|s| Commit {
                    position: s.position,
                    token: s.token,
                    confidence: s.prob,
                })
                .collect();
            self.base.canvas.apply(&commits);
            return Ok(Some(self.base.progress.emit(
                &self.base.canvas,
                commits,
                whole,
                candidates,
            )));
        }
    }
}
