//! DDIM: a non-Markovian reverse process with DDPM's marginals, run on a sub-sequence of the T
//! times for few-step sampling; η = 0 is deterministic, η = 1 recovers DDPM's posterior variance.
//!
//! Song, Meng & Ermon, "Denoising Diffusion Implicit Models", arXiv:2010.02502, eq. 12 and §4.2
//! (respacing); `openai/guided-diffusion` `ddim_sample` (ε recomputed from the clipped x̂₀). The
//! chain itself is [`super::image`].

use super::gaussian::Schedule;

/// The step from `t` to `prev` (`None`: to the data) at the predicted x̂₀: the mean of
/// x_prev and σ (see [`Schedule::ddim_step`]), with ε recomputed from x̂₀ so that a clipped
/// x̂₀ and its noise agree.
pub fn step(
    schedule: &Schedule,
    x_t: &[f64],
    x0: &[f64],
    t: usize,
    prev: Option<usize>,
    eta: f64,
) -> (Vec<f64>, f64) {
    let eps = schedule.eps_of(x_t, x0, t);
    schedule.ddim_step(x0, &eps, t, prev, eta)
}
