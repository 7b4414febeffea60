//! The three training objectives and their losses, on the same [`Dit`] the samplers run.
//!
//! - **MDLM** (Sahoo et al., "Simple and Effective Masked Diffusion Language Models",
//!   arXiv:2406.07524, §3; `kuleshov-group/mdlm` `diffusion.py` `_forward_pass_diffusion`): one
//!   time t per sequence, every token masked with probability (1 − ε)t (the log-linear schedule),
//!   the SUBS parameterization (the mask is never predicted; unmasked tokens are copied, so they
//!   cost nothing), and the continuous-time ELBO weight σ'(t)/expm1(σ(t)), which is exactly 1/t
//!   for the log-linear schedule.
//! - **BD3-LM** (Arriola et al., "Block Diffusion", arXiv:2503.09573, §3–4; `kuleshov-group/bd3lms`
//!   `diffusion.py`): the same loss with one t per block, computed for all blocks at once on
//!   `[x_t ; x_0]` under the block-diffusion mask ([`Dit::forward_block_diffusion`]). The t of the
//!   training loss may be clipped to `[sampling_eps_min, sampling_eps_max]` (the paper's
//!   variance-reducing schedules); the validation bound always uses the full range.
//! - **AR**: next-token cross-entropy under causal attention (the papers' AR baseline).
//! - **Diffusion forcing** (Chen et al., "Diffusion Forcing: Next-token Prediction Meets
//!   Full-Sequence Diffusion", arXiv:2407.01392, §3; `buoyancy99/diffusion-forcing`
//!   `algorithms/diffusion_forcing/df_base.py`, independent noise levels per frame in training),
//!   in the absorbing-mask form: every token draws its own t_i, is masked with probability
//!   (1 − ε)t_i, and tells the network its own σ(t_i) (per-position adaLN); the network attends
//!   causally and predicts each position's clean token from itself and the tokens before it; the
//!   loss is the per-token ELBO Σ 1[masked]·CE/t_i.
//!
//! Every loss is an average over all `B·L` token positions (all `B·(L−1)` predictions for AR), so
//! its exponential is the perplexity (bound) per token, as the papers report it.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::config::{Attention, ModelConfig};
use crate::model::Dit;
use crate::rng::Rng;
use crate::sampler::loglinear_sigma;

/// The ε of the log-linear schedule: a token is masked with probability (1 − ε)t, so that even at
/// t = 1 the schedule's σ stays finite (`noise.eps` in the references' configs, 1e-3).
pub const NOISE_EPS: f64 = 1e-3;

/// Added to the mask token's logit before the softmax: SUBS never predicts the mask. Finite, so
/// that no backend meets `inf − inf`.
const MASK_LOGIT_PENALTY: f32 = -1.0e9;

/// What the model learns to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Objective {
    /// Masked diffusion over the whole sequence (bidirectional attention).
    Mdlm,
    /// Block diffusion with blocks of `block_size` tokens.
    Bd3 {
        /// Tokens per block.
        block_size: usize,
    },
    /// Autoregressive next-token prediction (causal attention).
    Ar,
    /// Diffusion forcing: a noise level per token, a causal denoiser.
    Forcing,
}

impl Objective {
    /// The sampler a model trained on this objective is for (written to its config.json).
    pub fn sampler(self) -> crate::sampler::SamplerKind {
        use crate::sampler::SamplerKind;
        match self {
            Objective::Mdlm => SamplerKind::Mdlm,
            Objective::Bd3 { .. } => SamplerKind::Bd3,
            Objective::Ar => SamplerKind::Ar,
            Objective::Forcing => SamplerKind::Forcing,
        }
    }

    /// The attention the trained model samples with.
    pub fn attention(self) -> Attention {
        match self {
            Objective::Mdlm => Attention::Bidirectional,
            Objective::Bd3 { block_size } => Attention::BlockCausal { block_size },
            Objective::Ar | Objective::Forcing => Attention::Causal,
        }
    }

    /// The `config.json` of a model trained with this objective: `model_type`, `block_size`,
    /// `cross_attn` and `causal` set for its attention, adaLN on, no time conditioning (as the
    /// references' OWT models) except for diffusion forcing, whose levels per token are its
    /// input; no dropout.
    pub fn model_config(self, vocab_size: usize, shape: Shape) -> ModelConfig {
        let block_size = match self {
            Objective::Bd3 { block_size } => Some(block_size),
            _ => None,
        };
        ModelConfig {
            family: crate::config::Family::Text,
            sampler: Some(self.sampler()),
            model_type: Some(
                match self {
                    Objective::Mdlm => "mdlm",
                    Objective::Bd3 { .. } => "bd3lm",
                    Objective::Ar => "ar",
                    Objective::Forcing => "forcing",
                }
                .into(),
            ),
            vocab_size,
            model_length: shape.model_length,
            hidden_dim: shape.hidden_dim,
            cond_dim: shape.cond_dim,
            n_blocks: shape.n_blocks,
            n_heads: shape.n_heads,
            block_size,
            cross_attn: block_size.map(|_| true),
            adaln: true,
            causal: self.attention() == Attention::Causal,
            time_conditioning: self == Objective::Forcing,
            per_token_noise: self == Objective::Forcing,
            dropout: 0.0,
            mask_token_id: None,
        }
    }

    /// A short name (`mdlm`, `bd3`, `ar`, `forcing`).
    pub fn name(self) -> &'static str {
        match self {
            Objective::Mdlm => "mdlm",
            Objective::Bd3 { .. } => "bd3",
            Objective::Ar => "ar",
            Objective::Forcing => "forcing",
        }
    }
}

/// The size of a model to train (the `config.json` fields of the same names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Tokens per window, the longest canvas the model will take.
    pub model_length: usize,
    /// Width of the residual stream.
    pub hidden_dim: usize,
    /// Width of the adaLN conditioning.
    pub cond_dim: usize,
    /// Transformer blocks.
    pub n_blocks: usize,
    /// Attention heads.
    pub n_heads: usize,
}

/// How diffusion times are drawn for the loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeSampling {
    /// Smallest t (`training.sampling_eps` / `sampling_eps_min`): the 1/t weight stays bounded.
    pub sampling_eps_min: f64,
    /// Largest t (`sampling_eps_max`); 1 is the unclipped ELBO.
    pub sampling_eps_max: f64,
    /// Stratify the draws of a batch over [0, 1) (`training.antithetic_sampling`): same
    /// expectation, lower variance.
    pub antithetic_sampling: bool,
    /// Diffusion forcing: the share of windows whose per-token times are sorted to rise along
    /// the window — early tokens cleaner than late ones, the shape the autoregressive and
    /// pyramid schedules give a window at sampling (D2F's rising per-block mask ratios, in
    /// `zhijie-group/Discrete-Diffusion-Forcing`). Each token's time is still uniform; only
    /// their order changes. 0 (absent in older runs): independent levels, the reference's.
    #[serde(default)]
    pub forcing_sorted: f64,
}

impl TimeSampling {
    /// The references' defaults: t ∈ [1e-3, 1], antithetic.
    pub const ELBO: TimeSampling = TimeSampling {
        sampling_eps_min: 1e-3,
        sampling_eps_max: 1.0,
        antithetic_sampling: true,
        forcing_sorted: 0.0,
    };

    /// One time in `[sampling_eps_min, sampling_eps_max]`, drawn on its own (never stratified).
    pub fn draw_one(&self, rng: &mut Rng) -> f64 {
        self.sampling_eps_min + (self.sampling_eps_max - self.sampling_eps_min) * rng.uniform()
    }

    /// `n` times in `[sampling_eps_min, sampling_eps_max]`.
    pub fn draw(&self, n: usize, rng: &mut Rng) -> Vec<f64> {
        let offset = rng.uniform();
        (0..n)
            .map(|i| {
                let u = if self.antithetic_sampling {
                    (offset + i as f64 / n as f64).fract()
                } else {
                    rng.uniform()
                };
                self.sampling_eps_min + (self.sampling_eps_max - self.sampling_eps_min) * u
            })
            .collect()
    }
}

/// A training batch: `batch` windows of `len` clean tokens, row-major.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The clean tokens x_0, `[batch · len]`.
    pub tokens: Vec<u32>,
    /// Windows.
    pub batch: usize,
    /// Tokens per window.
    pub len: usize,
}

/// The noised input of a diffusion loss, built on the host.
struct Noised {
    /// x_t.
    tokens: Vec<u32>,
    /// Per position: 1/t where masked, 0 where not (SUBS copies unmasked tokens for free).
    weights: Vec<f32>,
    /// σ per sequence, or per position for diffusion forcing (the network's time input; ignored
    /// without time conditioning).
    sigma: Vec<f32>,
}

/// Masks `batch` with one t per `group` consecutive tokens of each window (the whole window for
/// MDLM, a block for BD3-LM).
fn noise(batch: &Batch, group: usize, times: &TimeSampling, mask_id: u32, rng: &mut Rng) -> Noised {
    let groups_per_window = batch.len.div_ceil(group);
    let t = times.draw(batch.batch * groups_per_window, rng);
    let mut tokens = batch.tokens.clone();
    let mut weights = vec![0.0f32; tokens.len()];
    for (i, (token, weight)) in tokens.iter_mut().zip(&mut weights).enumerate() {
        let (window, position) = (i / batch.len, i % batch.len);
        let t = t[window * groups_per_window + position / group];
        if rng.uniform() < (1.0 - NOISE_EPS) * t {
            *token = mask_id;
            *weight = (1.0 / t) as f32;
        }
    }
    let sigma = (0..batch.batch)
        .map(|w| loglinear_sigma(t[w * groups_per_window]))
        .collect();
    Noised {
        tokens,
        weights,
        sigma,
    }
}

/// Diffusion forcing's noise: every token its own t_i (independent draws: a stratified sweep
/// would tie the level to the position; in a share `forcing_sorted` of the windows the same
/// draws sorted to rise along the window), masked with probability (1 − ε)t_i, weighted 1/t_i
/// where masked; each position's σ(t_i) is the network's input, masked or not.
fn noise_per_token(batch: &Batch, times: &TimeSampling, mask_id: u32, rng: &mut Rng) -> Noised {
    let mut tokens = batch.tokens.clone();
    let mut weights = vec![0.0f32; tokens.len()];
    let mut sigma = Vec::with_capacity(tokens.len());
    let mut t = Vec::with_capacity(tokens.len());
    for _ in 0..batch.batch {
        let start = t.len();
        t.extend((0..batch.len).map(|_| times.draw_one(rng)));
        if times.forcing_sorted > 0.0 && rng.uniform() < times.forcing_sorted {
            t[start..].sort_by(f64::total_cmp);
        }
    }
    for ((token, weight), &t) in tokens.iter_mut().zip(&mut weights).zip(&t) {
        if rng.uniform() < (1.0 - NOISE_EPS) * t {
            *token = mask_id;
            *weight = (1.0 / t) as f32;
        }
        sigma.push(loglinear_sigma(t));
    }
    Noised {
        tokens,
        weights,
        sigma,
    }
}

fn ids(tokens: &[u32], shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    let data: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// log p(target) per position: `logits` `[B, L, V]` with the mask excluded, `targets` `[B, L]`.
pub(crate) fn target_log_probs(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask_id: u32,
) -> Tensor<2> {
    let [b, l, v] = logits.dims();
    let device = logits.device();
    let mut penalty = vec![0.0f32; v];
    if let Some(p) = penalty.get_mut(mask_id as usize) {
        *p = MASK_LOGIT_PENALTY;
    }
    let penalty = Tensor::<3>::from_data(TensorData::new(penalty, [1, 1, v]), &device);
    log_softmax(logits + penalty, 2)
        .gather(2, targets.reshape([b, l, 1]))
        .reshape([b, l])
}

/// The loss of `objective` on `batch`: a one-element tensor, the mean negative log-likelihood
/// (bound) per token, differentiable when `dit` is on an autodiff device.
pub fn loss(
    dit: &Dit,
    objective: Objective,
    batch: &Batch,
    times: &TimeSampling,
    mask_id: u32,
    rng: &mut Rng,
    device: &Device,
) -> Tensor<1> {
    let (b, l) = (batch.batch, batch.len);
    let clean = ids(&batch.tokens, [b, l], device);
    match objective {
        Objective::Ar => {
            let logits = dit.forward(clean.clone(), &vec![0.0; b], Attention::Causal, 0, None, 0);
            let predicted = logits.narrow(1, 0, l - 1);
            let targets = clean.narrow(1, 1, l - 1);
            target_log_probs(predicted, targets, mask_id).mean().neg()
        }
        Objective::Forcing => {
            let noised = noise_per_token(batch, times, mask_id, rng);
            let xt = ids(&noised.tokens, [b, l], device);
            let logits = dit.forward(xt, &noised.sigma, Attention::Causal, 0, None, 0);
            let weights = Tensor::<2>::from_data(TensorData::new(noised.weights, [b, l]), device);
            (target_log_probs(logits, clean, mask_id) * weights)
                .mean()
                .neg()
        }
        Objective::Mdlm | Objective::Bd3 { .. } => {
            let group = match objective {
                Objective::Bd3 { block_size } => block_size,
                _ => l,
            };
            let noised = noise(batch, group, times, mask_id, rng);
            let xt = ids(&noised.tokens, [b, l], device);
            let logits = match objective {
                Objective::Bd3 { block_size } => {
                    let both = Tensor::cat(vec![xt, clean.clone()], 1);
                    dit.forward_block_diffusion(both, &noised.sigma, block_size)
                }
                _ => dit.forward(xt, &noised.sigma, Attention::Bidirectional, 0, None, 0),
            };
            let weights = Tensor::<2>::from_data(TensorData::new(noised.weights, [b, l]), device);
            (target_log_probs(logits, clean, mask_id) * weights)
                .mean()
                .neg()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antithetic_times_cover_the_interval_evenly() {
        let mut rng = Rng::new(3);
        let mut t = TimeSampling::ELBO.draw(8, &mut rng);
        t.sort_by(f64::total_cmp);
        for pair in t.windows(2) {
            let gap = (pair[1] - pair[0]) / (1.0 - 1e-3);
            assert!((gap - 1.0 / 8.0).abs() < 1e-9, "{t:?}");
        }
        assert!(t.iter().all(|&x| (1e-3..=1.0).contains(&x)));
    }

    #[test]
    fn sorted_forcing_levels_rise_along_the_window_and_independent_ones_do_not() {
        let batch = Batch {
            tokens: vec![7; 4 * 64],
            batch: 4,
            len: 64,
        };
        let rises = |sigma: &[f32]| sigma.windows(2).all(|w| w[0] <= w[1]);
        let mut times = TimeSampling::ELBO;
        for (share, sorted_windows) in [(1.0, 4), (0.0, 0)] {
            times.forcing_sorted = share;
            let noised = noise_per_token(&batch, &times, 3, &mut Rng::new(5));
            let sorted = noised.sigma.chunks(64).filter(|w| rises(w)).count();
            assert_eq!(sorted, sorted_windows, "share {share}");
            // Masked where the level says so, weighted only there, whatever the order.
            for (token, weight) in noised.tokens.iter().zip(&noised.weights) {
                assert_eq!(*token == 3, *weight > 0.0);
            }
        }
    }

    #[test]
    fn noise_masks_one_block_at_one_rate_and_weights_only_masked_tokens() {
        let batch = Batch {
            tokens: (0..4096).map(|i| 10 + (i % 7)).collect(),
            batch: 2,
            len: 2048,
        };
        let times = TimeSampling {
            antithetic_sampling: false,
            ..TimeSampling::ELBO
        };
        let noised = noise(&batch, 1024, &times, 3, &mut Rng::new(9));
        for (token, weight) in noised.tokens.iter().zip(&noised.weights) {
            assert_eq!(*token == 3, *weight > 0.0);
        }
        // Each 1024-token block has its own weight 1/t, shared by all its masked tokens.
        for block in noised.weights.chunks(1024) {
            let masked: Vec<f32> = block.iter().copied().filter(|&w| w > 0.0).collect();
            assert!(masked.windows(2).all(|w| w[0] == w[1]));
            if let Some(&w) = masked.first() {
                let rate = masked.len() as f64 / 1024.0;
                let expected = (1.0 - NOISE_EPS) / w as f64;
                assert!((rate - expected).abs() < 0.06, "rate {rate} vs {expected}");
            }
        }
    }
}
