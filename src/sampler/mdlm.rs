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
//!
//! With the cache, a call whose iteration commits nothing is not a step of its own: the
//! iterations that reuse its prediction follow in the same `step`, until one commits (so every
//! step still makes at most one call, and skipped iterations reduce nothing).

use super::{
    Base, Canvas, Commit, Denoiser, MdlmSettings, ModelSpec, RowDraw, RowQuery, Rows, SampleError,
    SettingsError, Step, loglinear_sigma,
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
            finished: false,
        })
    }

    fn time(&self, i: usize) -> f64 {
        1.0 - (1.0 - SAMPLING_EPS) * i as f64 / self.steps as f64
    }

    /// Runs one denoising step (a model call unless the cache answers it).
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        let whole = 0..self.base.canvas.len();
        let may_reuse = self.use_cache && !self.time_conditioning;
        // The prediction, rows for positions `first..`, while nothing has changed since.
        let mut held: Option<(usize, D::Rows)> = None;
        loop {
            let masked = self.base.canvas.masked_in(whole.clone());
            if masked.is_empty() || self.finished {
                return Ok(None);
            }
            let noise_removal = self.iteration >= self.steps;
            let (t, s) = (self.time(self.iteration), self.time(self.iteration + 1));
            let (first, rows) = match held.take() {
                Some(hit) => {
                    self.base.progress.skipped_calls += 1;
                    hit
                }
                None => {
                    let first = masked[0];
                    let targets = first..masked[masked.len() - 1] + 1;
                    let rows = model
                        .predict(&[self.base.canvas.tokens()], targets, loglinear_sigma(t))
                        .await?
                        .remove(0);
                    self.base.progress.model_calls += 1;
                    (first, rows)
                }
            };
            // Which masked positions move to a token, and the randomness of each token: drawn in
            // position order, each position's move before its token, as the reference does.
            let mut draws: Vec<Option<RowDraw>> = Vec::with_capacity(masked.len());
            for _ in &masked {
                draws.push(if noise_removal {
                    Some(RowDraw::Greedy)
                } else if self.base.rng.uniform() < (t - s) / t {
                    Some(self.base.plan())
                } else {
                    None
                });
            }
            self.iteration += 1;
            self.finished = noise_removal;
            let moving = draws.iter().flatten().count();
            if moving == 0 && may_reuse {
                // Nothing changed: the next iteration sees the same input.
                held = Some((first, rows));
                continue;
            }
            let shown = self.base.shows_candidates();
            // The moving rows, and with the candidates shown every masked one.
            let (mut positions, mut queries, mut moves) = (Vec::new(), Vec::new(), Vec::new());
            for (&position, draw) in masked.iter().zip(draws) {
                if shown || draw.is_some() {
                    positions.push(position);
                    moves.push(draw.is_some());
                    queries.push(RowQuery {
                        row: position - first,
                        draw: draw.unwrap_or(RowDraw::Greedy),
                    });
                }
            }
            let reduced = if queries.is_empty() {
                Vec::new()
            } else {
                rows.reduce(&self.base.request(queries, None)).await?
            };
            let mut commits = Vec::with_capacity(moving);
            let mut candidates = Vec::new();
            for ((&position, r), &moves) in positions.iter().zip(&reduced).zip(&moves) {
                candidates.extend(self.base.candidates_of(position, r));
                if moves {
                    commits.push(Commit {
                        position,
                        token: r.token,
                        confidence: r.prob,
                    });
                }
            }
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
