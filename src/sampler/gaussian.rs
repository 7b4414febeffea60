//! Gaussian diffusion's arithmetic: the noise schedule, the forward process in closed form and the
//! reverse process's mean and variance — what the DDPM and DDIM samplers and the ε-prediction
//! objective share. Everything here is f64 on the CPU (an image is 64 numbers); the network runs
//! on the device.
//!
//! Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239 (§2, eqs. 4,
//! 6, 7, 11; `hojonathanho/diffusion` `diffusion_tf/diffusion_utils_2.py`): β linear from 1e-4 to
//! 0.02 over T = 1000, ᾱ_t = Π_{s≤t}(1 − β_s), q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I), the
//! posterior q(x_{t−1} | x_t, x₀) with mean μ̃ and variance β̃_t. The cosine schedule is Nichol &
//! Dhariwal, "Improved Denoising Diffusion Probabilistic Models", arXiv:2102.09672 (§3.2, eq. 17,
//! s = 0.008, β clipped at 0.999). DDIM is Song, Meng & Ermon, arXiv:2010.02502 (eq. 12, η). The
//! sqrt schedule is Diffusion-LM's (Li et al., arXiv:2205.14217, §4.2 and Appendix A;
//! `XiangLi1999/Diffusion-LM` `improved_diffusion/gaussian_diffusion.py`,
//! `get_named_beta_schedule("sqrt")`): ᾱ(τ) = 1 − √(τ + 10⁻⁴), which adds noise fast at first —
//! word vectors, unlike pixels, are told apart after a little noise. A schedule is respaced to
//! fewer steps as `improved_diffusion/respace.py` does ([`Schedule::respace`]).
//!
//! Times are indices `0..T` (the paper's t − 1); ᾱ before the first step is 1.

use serde::{Deserialize, Serialize};

/// The paper's number of steps.
pub const DEFAULT_STEPS: usize = 1000;
/// The paper's first β.
pub const LINEAR_BETA_START: f64 = 1e-4;
/// The paper's last β.
pub const LINEAR_BETA_END: f64 = 0.02;
/// The cosine schedule's offset s.
pub const COSINE_OFFSET: f64 = 0.008;
/// The cosine schedule's largest β (Nichol & Dhariwal clip there to avoid a singularity at T).
pub const COSINE_MAX_BETA: f64 = 0.999;
/// The sqrt schedule's offset: ᾱ(τ) = 1 − √(τ + offset).
pub const SQRT_OFFSET: f64 = 1e-4;
/// The sqrt schedule's largest β (as the cosine schedule's; the reference's
/// `betas_for_alpha_bar` default).
pub const SQRT_MAX_BETA: f64 = 0.999;
/// Most steps a schedule may have.
pub const MAX_STEPS: usize = 100_000;
/// x̂₀ is clipped to the data's range, [−1, 1] (the reference's `clip_denoised`).
pub const DATA_RANGE: f64 = 1.0;

/// How β grows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BetaSchedule {
    /// β linear from [`LINEAR_BETA_START`] to [`LINEAR_BETA_END`] (Ho et al.).
    Linear,
    /// ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2) / ᾱ(0) (Nichol & Dhariwal).
    Cosine,
    /// ᾱ(τ) = 1 − √(τ + 10⁻⁴) (Diffusion-LM).
    Sqrt,
}

/// The variance of each reverse step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variance {
    /// σ_t² = β_t, the reference's "fixedlarge" (the upper bound of Ho et al. §3.2).
    Beta,
    /// σ_t² = β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), "fixedsmall" (the lower bound).
    Posterior,
}

impl Variance {
    /// Both, in the order the page offers them.
    pub const ALL: [Variance; 2] = [Variance::Beta, Variance::Posterior];

    /// The name in settings files, links and flags.
    pub fn name(self) -> &'static str {
        match self {
            Variance::Beta => "beta",
            Variance::Posterior => "posterior",
        }
    }

    /// The variance called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// A schedule's numbers, indexed by time `0..T`.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// β_t.
    pub betas: Vec<f64>,
    /// ᾱ_t.
    pub alpha_bars: Vec<f64>,
}

/// A schedule that cannot be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("a noise schedule needs 1 to {MAX_STEPS} steps, got {0}")]
pub struct ScheduleError(pub usize);

/// β_i = min(1 − ᾱ((i + 1)/T) / ᾱ(i/T), `max_beta`) for a continuous ᾱ(τ) on [0, 1]
/// (Nichol & Dhariwal's `betas_for_alpha_bar`).
fn betas_for_alpha_bar(steps: usize, max_beta: f64, alpha_bar: impl Fn(f64) -> f64) -> Vec<f64> {
    let t = |i: usize| i as f64 / steps as f64;
    (0..steps)
        .map(|i| (1.0 - alpha_bar(t(i + 1)) / alpha_bar(t(i))).min(max_beta))
        .collect()
}

impl Schedule {
    /// `kind` over `steps` steps.
    pub fn new(kind: BetaSchedule, steps: usize) -> Result<Self, ScheduleError> {
        if !(1..=MAX_STEPS).contains(&steps) {
            return Err(ScheduleError(steps));
        }
        let betas: Vec<f64> = match kind {
            BetaSchedule::Linear => (0..steps)
                .map(|i| {
                    let f = if steps == 1 {
                        0.0
                    } else {
                        i as f64 / (steps - 1) as f64
                    };
                    LINEAR_BETA_START + f * (LINEAR_BETA_END - LINEAR_BETA_START)
                })
                .collect(),
            BetaSchedule::Cosine => betas_for_alpha_bar(steps, COSINE_MAX_BETA, |t| {
                ((t + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * std::f64::consts::FRAC_PI_2)
                    .cos()
                    .powi(2)
            }),
            BetaSchedule::Sqrt => {
                betas_for_alpha_bar(steps, SQRT_MAX_BETA, |t| 1.0 - (t + SQRT_OFFSET).sqrt())
            }
        };
        Ok(Self::from_betas(betas))
    }

    /// The schedule of `betas`, ᾱ their running product.
    fn from_betas(betas: Vec<f64>) -> Self {
        let mut alpha_bars = Vec::with_capacity(betas.len());
        let mut product = 1.0;
        for b in &betas {
            product *= 1.0 - b;
            alpha_bars.push(product);
        }
        Schedule { betas, alpha_bars }
    }

    /// The schedule over the ascending `times` alone (each below T): step k goes from ᾱ at
    /// `times[k − 1]` (1 before the first) to ᾱ at `times[k]`, β'_k = 1 − ᾱ_{times[k]} /
    /// ᾱ_{times[k−1]}, so that ᾱ' at k is ᾱ at `times[k]` and a network trained on the full
    /// schedule is asked about `times[k]` (`improved_diffusion/respace.py`, `SpacedDiffusion`).
    pub fn respace(&self, times: &[usize]) -> Self {
        let mut previous = 1.0;
        let betas = times
            .iter()
            .map(|&t| {
                let a = self.alpha_bars[t];
                let beta = 1.0 - a / previous;
                previous = a;
                beta
            })
            .collect();
        Self::from_betas(betas)
    }

    /// T.
    pub fn steps(&self) -> usize {
        self.betas.len()
    }

    /// ᾱ at `t`, and 1 before the first step (`t = None`).
    pub fn alpha_bar(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alpha_bars[t])
    }

    /// x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε: a draw of q(x_t | x₀) for the noise `eps`.
    pub fn q_sample(&self, x0: &[f64], eps: &[f64], t: usize) -> Vec<f64> {
        let a = self.alpha_bars[t];
        x0.iter()
            .zip(eps)
            .map(|(x, e)| a.sqrt() * x + (1.0 - a).sqrt() * e)
            .collect()
    }

    /// x̂₀ = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t, clipped to the data's range.
    pub fn predict_x0(&self, x_t: &[f64], eps: &[f64], t: usize) -> Vec<f64> {
        let a = self.alpha_bars[t];
        x_t.iter()
            .zip(eps)
            .map(|(x, e)| ((x - (1.0 - a).sqrt() * e) / a.sqrt()).clamp(-DATA_RANGE, DATA_RANGE))
            .collect()
    }

    /// The noise that takes `x0` to `x_t` at `t`: (x_t − √ᾱ_t x₀) / √(1 − ᾱ_t) (DDIM's ε after
    /// x̂₀ was clipped).
    pub fn eps_of(&self, x_t: &[f64], x0: &[f64], t: usize) -> Vec<f64> {
        let a = self.alpha_bars[t];
        x_t.iter()
            .zip(x0)
            .map(|(x, x0)| (x - a.sqrt() * x0) / (1.0 - a).sqrt())
            .collect()
    }

    /// The posterior mean μ̃_t(x_t, x₀) = β_t √ᾱ_{t−1} / (1 − ᾱ_t) · x₀ + (1 − ᾱ_{t−1}) √α_t /
    /// (1 − ᾱ_t) · x_t (Ho et al. eq. 7).
    pub fn posterior_mean(&self, x_t: &[f64], x0: &[f64], t: usize) -> Vec<f64> {
        let (beta, a) = (self.betas[t], self.alpha_bars[t]);
        let a_prev = self.alpha_bar(t.checked_sub(1));
        let c0 = beta * a_prev.sqrt() / (1.0 - a);
        let ct = (1.0 - a_prev) * (1.0 - beta).sqrt() / (1.0 - a);
        x0.iter()
            .zip(x_t)
            .map(|(x0, xt)| c0 * x0 + ct * xt)
            .collect()
    }

    /// σ_t² of the reverse step from `t` (0 at `t = 0`: the last step adds no noise).
    pub fn variance(&self, t: usize, kind: Variance) -> f64 {
        if t == 0 {
            return 0.0;
        }
        let beta = self.betas[t];
        match kind {
            Variance::Beta => beta,
            Variance::Posterior => {
                beta * (1.0 - self.alpha_bar(Some(t - 1))) / (1.0 - self.alpha_bars[t])
            }
        }
    }

    /// `count` times from T − 1 down to 0, evenly spaced and both ends included, so that the
    /// first step starts from pure noise (DDIM's sub-sequence τ; every time for `count = T`).
    pub fn respaced(&self, count: usize) -> Vec<usize> {
        let last = self.steps() - 1;
        let count = count.clamp(1, last + 1);
        if count == 1 {
            return vec![last];
        }
        let mut times: Vec<usize> = (0..count)
            .map(|i| (i as f64 * last as f64 / (count - 1) as f64).round() as usize)
            .collect();
        times.dedup();
        times.reverse();
        times
    }

    /// DDIM's step from `t` to `prev` (`None`: to the data): x_prev = √ᾱ_prev x̂₀ +
    /// √(1 − ᾱ_prev − σ²) ε̂ + σ z with σ = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev);
    /// returns the mean part and σ (η = 0 is deterministic, η = 1 is DDPM's posterior variance).
    pub fn ddim_step(
        &self,
        x0: &[f64],
        eps: &[f64],
        t: usize,
        prev: Option<usize>,
        eta: f64,
    ) -> (Vec<f64>, f64) {
        let a = self.alpha_bars[t];
        let a_prev = self.alpha_bar(prev);
        let sigma = eta * ((1.0 - a_prev) / (1.0 - a)).sqrt() * (1.0 - a / a_prev).max(0.0).sqrt();
        let dir = (1.0 - a_prev - sigma * sigma).max(0.0).sqrt();
        let mean = x0
            .iter()
            .zip(eps)
            .map(|(x0, e)| a_prev.sqrt() * x0 + dir * e)
            .collect();
        (mean, sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A standard normal draw (Box–Muller) from the seeded generator.
    fn normal(rng: &mut Rng) -> f64 {
        (-2.0 * rng.uniform().ln()).sqrt() * (std::f64::consts::TAU * rng.uniform()).cos()
    }

    #[test]
    fn the_schedules_match_their_papers() {
        let s = Schedule::new(BetaSchedule::Linear, DEFAULT_STEPS).unwrap();
        assert_eq!(s.betas[0], 1e-4);
        assert!((s.betas[999] - 0.02).abs() < 1e-15);
        // ᾱ_T ≈ 4e-5 for the paper's schedule: x_T is all but pure noise.
        assert!(
            s.alpha_bars[999] > 1e-5 && s.alpha_bars[999] < 1e-4,
            "{}",
            s.alpha_bars[999]
        );
        let c = Schedule::new(BetaSchedule::Cosine, DEFAULT_STEPS).unwrap();
        assert!(c.betas.iter().all(|&b| b > 0.0 && b <= COSINE_MAX_BETA));
        assert!(c.alpha_bars.windows(2).all(|w| w[1] < w[0]));
        // The cosine schedule destroys information more slowly in the middle.
        assert!(c.alpha_bars[500] > s.alpha_bars[500]);
        assert!(Schedule::new(BetaSchedule::Linear, 0).is_err());
        // Diffusion-LM's sqrt schedule, T = 2000: ᾱ_t = ᾱ((t + 1)/T) / ᾱ(0) while no β is
        // clipped; its last β is (ᾱ(1) < 0), which leaves ᾱ_T near zero.
        let q = Schedule::new(BetaSchedule::Sqrt, 2000).unwrap();
        let f = |tau: f64| 1.0 - (tau + SQRT_OFFSET).sqrt();
        for t in [0, 1, 9, 100, 1000, 1998] {
            let want = f((t + 1) as f64 / 2000.0) / f(0.0);
            assert!((q.alpha_bars[t] - want).abs() < 1e-12, "t={t}");
        }
        assert_eq!(q.betas[1999], SQRT_MAX_BETA);
        assert!(q.betas.iter().all(|&b| b > 0.0 && b <= SQRT_MAX_BETA));
        assert!(q.alpha_bars.windows(2).all(|w| w[1] < w[0]));
        assert!(q.alpha_bars[1999] < 1e-5);
        // It noises fast at first: after 1% of the steps ᾱ is under 0.91, where the cosine's
        // is still above 0.99.
        let c = Schedule::new(BetaSchedule::Cosine, 2000).unwrap();
        assert!(q.alpha_bars[19] < 0.91 && c.alpha_bars[19] > 0.99);
    }

    #[test]
    fn a_respaced_schedule_keeps_the_kept_times_alpha_bars() {
        let s = Schedule::new(BetaSchedule::Sqrt, 2000).unwrap();
        let mut times = s.respaced(200);
        times.reverse();
        assert_eq!((times[0], times[199], times.len()), (0, 1999, 200));
        let r = s.respace(&times);
        assert_eq!(r.steps(), 200);
        for (k, &t) in times.iter().enumerate() {
            assert!((r.alpha_bars[k] - s.alpha_bars[t]).abs() < 1e-12, "k={k}");
        }
        // Every time kept: the schedule itself.
        let all: Vec<usize> = (0..2000).collect();
        let same = s.respace(&all);
        assert!(
            same.betas
                .iter()
                .zip(&s.betas)
                .all(|(a, b)| (a - b).abs() < 1e-12)
        );
    }

    #[test]
    fn the_closed_form_q_has_the_iterated_chain_s_moments() {
        for kind in [BetaSchedule::Linear, BetaSchedule::Cosine] {
            let s = Schedule::new(kind, 200).unwrap();
            // Exactly: the chain x_t = √α_t x_{t−1} + √β_t ε carries a mean and a variance.
            let x0 = 0.7;
            let (mut mean, mut var) = (x0, 0.0);
            for (t, &beta) in s.betas.iter().enumerate() {
                mean *= (1.0 - beta).sqrt();
                var = (1.0 - beta) * var + beta;
                let a = s.alpha_bars[t];
                assert!((mean - a.sqrt() * x0).abs() < 1e-12, "{kind:?} t={t}");
                assert!((var - (1.0 - a)).abs() < 1e-12, "{kind:?} t={t}");
            }
            // And by sampling: many chains run step by step against the closed form at t = 120.
            let mut rng = Rng::new(7);
            let n = 20_000;
            let t = 120;
            let chain: Vec<f64> = (0..n)
                .map(|_| {
                    let mut x = x0;
                    for &beta in &s.betas[..=t] {
                        x = (1.0 - beta).sqrt() * x + beta.sqrt() * normal(&mut rng);
                    }
                    x
                })
                .collect();
            let m = chain.iter().sum::<f64>() / n as f64;
            let v = chain.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
            let a = s.alpha_bars[t];
            assert!((m - a.sqrt() * x0).abs() < 0.02, "{kind:?}: mean {m}");
            assert!((v - (1.0 - a)).abs() < 0.02, "{kind:?}: variance {v}");
            let closed = s.q_sample(&[x0], &[1.0], t)[0];
            assert!((closed - (a.sqrt() * x0 + (1.0 - a).sqrt())).abs() < 1e-15);
        }
    }

    #[test]
    fn the_true_noise_recovers_x0_and_the_posterior_sits_between() {
        let s = Schedule::new(BetaSchedule::Linear, 1000).unwrap();
        let x0 = [0.5, -0.25, 0.9];
        let eps = [0.3, -1.2, 2.0];
        for t in [0, 10, 500, 999] {
            let x_t = s.q_sample(&x0, &eps, t);
            let back = s.predict_x0(&x_t, &eps, t);
            for (a, b) in back.iter().zip(&x0) {
                assert!((a - b).abs() < 1e-9, "t={t}");
            }
            let e = s.eps_of(&x_t, &x0, t);
            assert!(e.iter().zip(&eps).all(|(a, b)| (a - b).abs() < 1e-9));
        }
        // At t = 0 the posterior mean is x₀ and nothing is added.
        let x_t = s.q_sample(&x0, &eps, 0);
        let mu = s.posterior_mean(&x_t, &x0, 0);
        assert!(mu.iter().zip(&x0).all(|(a, b)| (a - b).abs() < 1e-12));
        assert_eq!(s.variance(0, Variance::Beta), 0.0);
        assert!(s.variance(500, Variance::Posterior) < s.variance(500, Variance::Beta));
        // DDIM with η = 1 uses DDPM's posterior variance; with η = 0 none.
        let (_, sigma) = s.ddim_step(&x0, &eps, 500, Some(499), 1.0);
        assert!((sigma * sigma - s.variance(500, Variance::Posterior)).abs() < 1e-12);
        assert_eq!(s.ddim_step(&x0, &eps, 500, Some(400), 0.0).1, 0.0);
        // To the data (no previous time), DDIM returns x̂₀ itself.
        let (mean, _) = s.ddim_step(&x0, &eps, 3, None, 0.0);
        assert!(mean.iter().zip(&x0).all(|(a, b)| (a - b).abs() < 1e-12));
        assert_eq!(s.respaced(4), vec![999, 666, 333, 0]);
        assert_eq!(s.respaced(1), vec![999]);
        assert_eq!(s.respaced(1000).len(), 1000);
    }
}
