//! The small pieces of the DiT: weight-only LayerNorm, adaLN modulation, the sinusoidal timestep
//! embedding and the rotary position embedding.
//!
//! Each follows the function of the same name in `kuleshov-group/bd3lms`
//! `models/hf/modeling_bd3lm.py` (`LayerNorm`, `modulate`, `TimestepEmbedder`, `Rotary`,
//! `rotate_half`), written again here for burn. [`gelu_tanh`] is PyTorch's `GELU(approximate='tanh')`
//! written without `tanh`, which overflows to NaN on some WebGPU drivers.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};

/// `F.layer_norm`'s default epsilon, which the reference uses.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// Size of the sinusoidal timestep features (`frequency_embedding_size` in the reference).
pub const FREQUENCY_EMBEDDING_SIZE: usize = 256;

/// Longest period of the sinusoidal timestep embedding (`max_period`).
pub const TIMESTEP_MAX_PERIOD: f64 = 10_000.0;

/// Base of the rotary embedding's frequencies in the DiT (`Rotary(dim, base=10_000)`); the
/// decoder transformers read theirs from config.json (`rope_theta`).
pub const ROTARY_BASE: f64 = 10_000.0;

/// LayerNorm without a bias: `layer_norm(x) * weight`, normalised over the last axis.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale, `[dim]` (`norm1.weight`).
    pub weight: Param<Tensor<1>>,
}

impl LayerNorm {
    /// `x`: `[B, L, d]` → `[B, L, d]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, _, d] = x.dims();
        let mean = x.clone().mean_dim(2); // [B, L, 1]
        let centred = x - mean;
        let var = centred.clone().square().mean_dim(2); // biased, like F.layer_norm
        let normed = centred / (var + LAYER_NORM_EPS).sqrt();
        normed * self.weight.val().reshape([1, 1, d])
    }
}

/// √(2/π), of the tanh approximation of GELU.
const GELU_SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh approximation of GELU.
const GELU_CUBIC: f64 = 0.044_715;

/// GELU's tanh approximation (Hendrycks & Gimpel 2016, PyTorch `GELU(approximate='tanh')`):
/// `½·x·(1 + tanh(u))` with `u = √(2/π)·(x + 0.044715·x³)`, computed as `x / (1 + e)` for
/// `x ≥ 0` and `x·e / (1 + e)` below, with `e = exp(−2|u|)` in (0, 1] — the same function,
/// algebraically, but with no overflow anywhere.
///
/// burn's `gelu_approximate` calls WGSL's `tanh`, which Chromium's WebGPU on SwiftShader
/// evaluates as a ratio of exponentials: at `u ≳ 44` (pre-activations `x ≳ 9.5`, which trained
/// models reach on some tokens) it returns NaN, and the NaN spreads to the whole logits row (cubecl
/// guards `tanh` on macOS only). Native Vulkan, lavapipe and the CPU never showed it.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let u = (x.clone() + x.clone() * x.clone() * x.clone() * GELU_CUBIC) * GELU_SQRT_2_OVER_PI;
    let e = (u.abs() * -2.0).exp();
    let numerator = e.clone().mask_fill(x.clone().greater_equal_elem(0.0), 1.0);
    x * numerator / (e + 1.0)
}

/// `x * (1 + scale) + shift`, with `shift`, `scale`: `[B, 1, d]`.
pub fn modulate(x: Tensor<3>, shift: Tensor<3>, scale: Tensor<3>) -> Tensor<3> {
    x * (scale + 1.0) + shift
}

/// Splits an adaLN output `[B, Lc, n·d]` into `n` chunks of `[B, Lc, d]`, in the reference's
/// order (`Lc` is 1 for one conditioning per sequence, `L` for one per position).
pub fn chunks(modulation: Tensor<3>, n: usize) -> Vec<Tensor<3>> {
    let [_, _, nd] = modulation.dims();
    let d = nd / n;
    (0..n)
        .map(|i| modulation.clone().narrow(2, i * d, d))
        .collect()
}

/// Maps the noise level σ to the conditioning vector: sinusoidal features → Linear → SiLU → Linear
/// (`sigma_map.mlp.{0,2}`). The backbone applies one more SiLU to the result.
#[derive(Module, Debug)]
pub struct TimestepEmbedder {
    /// `mlp.0`: `[256] → [cond_dim]`.
    pub mlp0: Linear,
    /// `mlp.2`: `[cond_dim] → [cond_dim]`.
    pub mlp2: Linear,
}

impl TimestepEmbedder {
    /// The conditioning `silu(sigma_map(σ))` for each batch element: `[B, cond_dim]`.
    pub fn forward(&self, sigma: &[f32], device: &Device) -> Tensor<2> {
        let features = timestep_features(sigma);
        let t = Tensor::<2>::from_data(
            TensorData::new(features, [sigma.len(), FREQUENCY_EMBEDDING_SIZE]),
            device,
        );
        silu(self.mlp2.forward(silu(self.mlp0.forward(t))))
    }
}

/// `[cos(σ·f_0..f_{h-1}), sin(σ·f_0..f_{h-1})]` with `f_i = exp(-ln(max_period)·i/h)`, flattened
/// over the batch. Computed in f32, as the reference does.
pub fn timestep_features(sigma: &[f32]) -> Vec<f32> {
    let half = FREQUENCY_EMBEDDING_SIZE / 2;
    let mut out = Vec::with_capacity(sigma.len() * FREQUENCY_EMBEDDING_SIZE);
    for &s in sigma {
        let args: Vec<f32> = (0..half)
            .map(|i| {
                let freq = (-(TIMESTEP_MAX_PERIOD.ln() as f32) * i as f32 / half as f32).exp();
                s * freq
            })
            .collect();
        out.extend(args.iter().map(|a| a.cos()));
        out.extend(args.iter().map(|a| a.sin()));
    }
    out
}

/// Rotary tables for absolute positions `start..start + len`: `(cos, sin)`, each `[1, 1, len, head_dim]`,
/// in the half-split layout of `rotate_half` (frequencies repeated over both halves), with the
/// frequencies `base^(−2i/head_dim)`. Computed in f32, as the references do (transformers'
/// `_compute_default_rope_parameters`, OLMo's `RotaryEmbedding`), so long positions round alike.
pub fn rotary_tables(
    start: usize,
    len: usize,
    head_dim: usize,
    base: f64,
    device: &Device,
) -> (Tensor<4>, Tensor<4>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1.0 / (base as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(len * head_dim);
    let mut sin = Vec::with_capacity(len * head_dim);
    for pos in start..start + len {
        for _ in 0..2 {
            for f in &inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let shape = [1, 1, len, head_dim];
    (
        Tensor::from_data(TensorData::new(cos, shape), device),
        Tensor::from_data(TensorData::new(sin, shape), device),
    )
}

/// `x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [-x2, x1]`; `x`: `[B, H, L, Dh]`.
pub fn apply_rotary(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [_, _, _, dh] = x.dims();
    let half = dh / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_tanh_is_the_tanh_approximation_and_finite_where_tanh_overflows() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let xs = [
            -1.0e30f32, -200.0, -12.0, -9.6, -3.0, -0.5, 0.0, 0.5, 3.0, 9.6, 12.0, 200.0, 1.0e30,
        ];
        let got = gelu_tanh(Tensor::<1>::from_floats(xs, &device))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (&x, &y) in xs.iter().zip(&got) {
            let x64 = x as f64;
            let u = GELU_SQRT_2_OVER_PI * (x64 + GELU_CUBIC * x64 * x64 * x64);
            let want = 0.5 * x64 * (1.0 + u.tanh());
            assert!(y.is_finite(), "gelu({x}) = {y}");
            let tolerance = 1e-6 * want.abs().max(1.0);
            assert!(
                (y as f64 - want).abs() <= tolerance,
                "gelu({x}) = {y}, want {want}"
            );
        }
    }
}
