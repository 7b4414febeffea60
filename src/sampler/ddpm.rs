//! DDPM's ancestral sampler: from x_T ~ N(0, I), each step draws x_{t−1} ~ N(μ_θ(x_t, t), σ_t² I)
//! with μ_θ the posterior mean at the predicted x̂₀, over all T steps.
//!
//! Ho, Jain & Abbeel, arXiv:2006.11239, Algorithm 2 and §3.2 (σ_t² = β_t or β̃_t, the two
//! extremes the paper reports similar results for); `hojonathanho/diffusion`
//! `diffusion_utils_2.py` (`p_mean_variance` with x̂₀ clipped to [−1, 1], then `q_posterior`;
//! "fixedlarge" and "fixedsmall"). The last step (t = 0) adds no noise. The chain itself —
//! guidance, the draws, the steps — is [`super::image`].

use super::gaussian::{Schedule, Variance};

/// μ_θ(x_t, t) from x̂₀ (Ho et al. eq. 7 with x₀ ← x̂₀; the same as eq. 11's form in ε once x̂₀
/// is not clipped) and σ_t² of the chosen `variance`.
pub fn reverse_mean(
    schedule: &Schedule,
    x_t: &[f64],
    x0: &[f64],
    t: usize,
    variance: Variance,
) -> (Vec<f64>, f64) {
    (
        schedule.posterior_mean(x_t, x0, t),
        schedule.variance(t, variance),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::gaussian::BetaSchedule;

    #[test]
    fn the_mean_from_x0_equals_eq_11_from_the_noise_when_nothing_is_clipped() {
        let s = Schedule::new(BetaSchedule::Linear, 1000).unwrap();
        let (x0, eps) = ([0.2, -0.4], [0.1, 0.3]);
        for t in [1, 50, 700] {
            let x_t = s.q_sample(&x0, &eps, t);
            let (mean, _) = reverse_mean(&s, &x_t, &x0, t, Variance::Beta);
            // Eq. 11: μ = (x_t − β_t / √(1 − ᾱ_t) · ε) / √α_t.
            let beta = s.betas[t];
            let a = s.alpha_bars[t];
            for i in 0..2 {
                let want = (x_t[i] - beta / (1.0 - a).sqrt() * eps[i]) / (1.0 - beta).sqrt();
                assert!(
                    (mean[i] - want).abs() < 1e-9,
                    "t={t}: {} vs {want}",
                    mean[i]
                );
            }
        }
    }
}
