//! What samplers and networks agree on, and nothing else: the facts a sampler needs about a
//! model ([`ModelSpec`]), the [`Denoiser`] trait it calls, the [`Rows`] of logits it gets back
//! (left where the network computed them, and reduced there to a token and a few numbers per row
//! by a [`Reduce`] request) and the [`ModelError`] a call can fail with. Samplers (`sampler`) depend on this module, never on a
//! network; networks (`model`) implement it, never reaching into a sampler; tests drive samplers
//! with a fake [`Denoiser`].

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Attention;

/// What a sampler needs to know about the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Logits per position.
    pub vocab_size: usize,
    /// Longest canvas the model takes.
    pub model_length: usize,
    /// The mask token (from the tokenizer or config, never a literal).
    pub mask_id: u32,
    /// End of sequence, where the tokenizer has one (BD3-LM and AR stop there).
    pub eos_id: Option<u32>,
    /// How the model attends; block-causal carries the model's block size.
    pub attention: Attention,
    /// Whether σ changes the output (when false, MDLM's cache may skip calls).
    pub time_conditioning: bool,
    /// Whether each position takes its own noise level (a diffusion-forcing model: causal, and
    /// run by the forcing sampler through [`Denoiser::predict_levels`]).
    #[serde(default)]
    pub per_token_noise: bool,
}

/// Row-major logits `[rows, vocab]` on the host: what a fake [`Denoiser`] returns, and what a
/// device's [`Rows`] become when a request needs every value (top-p).
#[derive(Clone, Debug, PartialEq)]
pub struct Logits {
    data: Vec<f32>,
    rows: usize,
    vocab: usize,
}

impl Logits {
    /// Wraps `rows · vocab` values.
    pub fn new(data: Vec<f32>, rows: usize, vocab: usize) -> Self {
        debug_assert_eq!(data.len(), rows * vocab);
        Self { data, rows, vocab }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// One row.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.vocab..(i + 1) * self.vocab]
    }

    /// All values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Splits `n` equal stacked batches into one `Logits` each.
    pub fn split(self, n: usize) -> Vec<Logits> {
        let rows = self.rows / n.max(1);
        self.data
            .chunks(rows * self.vocab)
            .map(|c| Logits::new(c.to_vec(), rows, self.vocab))
            .collect()
    }
}

/// How one row's token is drawn. The randomness is drawn beforehand from the sampler's seeded
/// generator on the CPU, in the order the samplers always drew it, so a seed gives the same run
/// wherever the reduction happens.
#[derive(Clone, Debug, PartialEq)]
pub enum RowDraw {
    /// The most likely token (temperature 0, MDLM's final pass).
    Greedy,
    /// Inverse-CDF: the first token, in vocabulary order, whose cumulative weight reaches
    /// `u ·` the row's total, `u` uniform in [0, 1).
    Categorical(f64),
    /// Gumbel-max (LLaDA): `argmax(l / T − ln(−ln u))`, one uniform per vocabulary entry.
    Gumbel(Vec<f64>),
}

/// One row to reduce.
#[derive(Clone, Debug, PartialEq)]
pub struct RowQuery {
    /// Its row in the prediction.
    pub row: usize,
    /// How its token is drawn.
    pub draw: RowDraw,
}

/// What a sampler asks of a prediction's rows: a token each, with the numbers it ranks and shows
/// them by. Computed where the logits are, so what crosses back to the CPU is O(rows × candidates),
/// not O(rows × vocabulary).
#[derive(Clone, Debug, PartialEq)]
pub struct Reduce {
    /// The mask token: its logit is −∞ before every softmax (SUBS), so it is never predicted.
    pub mask_id: u32,
    /// Softmax temperature of the draws (greedy rows ignore it).
    pub temperature: f64,
    /// Draws keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Draws keep only the smallest most-likely set with mass ≥ p.
    pub top_p: Option<f64>,
    /// The rows, in the order their results come back.
    pub rows: Vec<RowQuery>,
    /// Whether to compute each row's margin (Dream's `topk_margin` order).
    pub margin: bool,
    /// Whether to compute each row's negative entropy (Dream's `entropy` order).
    pub entropy: bool,
    /// The most likely tokens to return per row (0: none; the inspector shows them).
    pub candidates: usize,
}

/// One row's result, under the untempered SUBS distribution p = softmax(logits), p(mask) = 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduced {
    /// The token drawn.
    pub token: u32,
    /// p(token).
    pub prob: f64,
    /// p of the most likely token minus p of the second (Dream's `topk_margin`; 0 unless asked
    /// for).
    pub margin: f64,
    /// Σ p ln p (0 unless asked for).
    pub neg_entropy: f64,
    /// The most likely tokens with their p, most likely first.
    pub top: Vec<(u32, f64)>,
}

/// A prediction's rows of logits, wherever they live: [`Logits`] on the host, or a device tensor
/// (`model::DeviceRows`) reduced by kernels on the device.
#[allow(async_fn_in_trait)]
pub trait Rows: Sized {
    /// Number of rows.
    fn rows(&self) -> usize;

    /// Classifier-free guidance: `uncond + (s + 1)(self − uncond)` (LLaDA `generate.py`), kept
    /// finite.
    fn guided(self, uncond: Self, scale: f64) -> Self;

    /// Draws and scores the rows `request` names. A NaN or infinity in a reduced row is a
    /// [`ModelError::NonFinite`].
    async fn reduce(&self, request: &Reduce) -> Result<Vec<Reduced>, ModelError>;

    /// Every row's logits of the tokens `columns` only, read to the host and checked for NaN
    /// and infinities (MMaDA slices its logits to the image codes: a draw over 17 grey levels
    /// reads 17 numbers a row, not the vocabulary).
    async fn columns(&self, columns: Range<usize>) -> Result<Logits, ModelError>;

    /// The same rows with the tokens `columns` ruled out: their logits at [`SUPPRESSED_LOGIT`]
    /// (a caption position of the unified family never draws an image token).
    fn suppress(self, columns: Range<usize>) -> Self;
}

/// The logit of a token a sampler rules out: finite, so that no backend meets `inf − inf`, and
/// low enough that its probability is 0 in f32.
pub const SUPPRESSED_LOGIT: f32 = -1.0e9;

/// The model as samplers see it: distributions over the vocabulary for positions of a canvas.
#[allow(async_fn_in_trait)] // Futures are awaited in place; wasm futures are not Send anyway.
pub trait Denoiser {
    /// Where its predictions live.
    type Rows: Rows;

    /// Facts about the model.
    fn spec(&self) -> &ModelSpec;

    /// Logits predicting positions `targets` of each sequence of `batch` (all the same length),
    /// computed over the whole sequence under the model's attention without the cache. An
    /// autoregressive model reads position `i` off row `i − 1`.
    async fn predict(
        &mut self,
        batch: &[&[u32]],
        targets: Range<usize>,
        sigma: f32,
    ) -> Result<Vec<Self::Rows>, ModelError>;

    /// Cached prediction: `commit` (finished tokens right after the cached ones) joins the cache, and
    /// `block` (the tokens being denoised, right after them) is run without being stored. Returns
    /// one row per `block` position; an autoregressive model takes an empty `block` and returns the
    /// one row predicting the position after `commit`.
    async fn predict_cached(
        &mut self,
        commit: &[u32],
        block: &[u32],
        sigma: f32,
    ) -> Result<Self::Rows, ModelError>;

    /// Logits predicting positions `targets` of `tokens`, each position `i` under its own noise
    /// level `sigma[i]` (diffusion forcing: one σ per token, `sigma.len() == tokens.len()`).
    /// Row `r` predicts position `targets.start + r` from itself and the positions before it
    /// (the model's causal attention), without the cache. Models trained with one level per
    /// sequence answer [`ModelError::Unsupported`].
    async fn predict_levels(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<Self::Rows, ModelError> {
        let _ = (tokens, targets, sigma);
        Err(ModelError::one_level_per_sequence())
    }

    /// [`Self::predict_levels`] through the KV cache, for a causal model: `clean` (tokens at
    /// level 0 right after the cached ones) joins the cache, and `rest` (the window's tokens
    /// after them, each at its level `sigma[i]`) runs without being stored. Row `r` predicts
    /// position `targets.start + r` of `rest`. A clean token under causal attention sees only
    /// clean tokens before it, so its keys and values never change: the rows equal the uncached
    /// call's over the whole window.
    async fn predict_levels_cached(
        &mut self,
        clean: &[u32],
        rest: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<Self::Rows, ModelError> {
        let _ = (clean, rest, targets, sigma);
        Err(ModelError::one_level_per_sequence())
    }

    /// Empties the cache.
    fn reset_cache(&mut self);
}

/// What can go wrong running the model.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The canvas is longer than the model's context.
    #[error(
        "the sequence has {len} tokens but the model takes at most {max} (model_length); shorten the prompt or gen_length"
    )]
    TooLong {
        /// Tokens asked for.
        len: usize,
        /// `model_length`.
        max: usize,
    },
    /// A request the model cannot serve.
    #[error("{0}")]
    Unsupported(String),
    /// The positions asked for are empty or run past the canvas (a sampler's bug, never a
    /// user's: reported rather than a panic inside the backend).
    #[error("cannot predict positions {start}..{end} of a {len}-token canvas: {why}")]
    Targets {
        /// First position asked for.
        start: usize,
        /// One past the last.
        end: usize,
        /// The canvas's length.
        len: usize,
        /// What is wrong with them.
        why: &'static str,
    },
    /// The backend failed (device lost, readback error).
    #[error("the {backend} backend failed: {message}")]
    Backend {
        /// Which backend.
        backend: String,
        /// Its words.
        message: String,
    },
    /// The network returned NaN or infinite logits: a faulty kernel or driver, or broken weights.
    #[error(
        "the {backend} backend returned {count} non-finite logits (NaN or infinity){}",
        step.map(|s| format!(" at step {s}")).unwrap_or_default()
    )]
    NonFinite {
        /// Which backend.
        backend: String,
        /// How many of the values read back were not finite.
        count: usize,
        /// The sampler step whose model call it was, once known.
        step: Option<usize>,
    },
}

impl ModelError {
    /// A noise level per token asked of a model trained with one per sequence.
    pub fn one_level_per_sequence() -> Self {
        ModelError::Unsupported(
            "this model takes one noise level per sequence, not one per token; the forcing sampler needs a model trained with `unmask train --objective forcing`".into(),
        )
    }

    /// Names the sampler step the failing call belonged to.
    pub fn at_step(self, index: usize) -> Self {
        match self {
            ModelError::NonFinite { backend, count, .. } => ModelError::NonFinite {
                backend,
                count,
                step: Some(index),
            },
            other => other,
        }
    }

    /// Whether the device, not the input, is at fault (a failed readback, a lost device or
    /// non-finite numbers): the page reruns such a run on the CPU.
    pub fn is_device_fault(&self) -> bool {
        matches!(
            self,
            ModelError::Backend { .. } | ModelError::NonFinite { .. }
        )
    }
}

/// What an image sampler needs to know about its network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Pixels along a side.
    pub side: usize,
    /// Classes the network is conditioned on (0: unconditional); class `classes` is the null
    /// class of classifier-free guidance.
    pub classes: usize,
    /// The diffusion's steps T.
    pub diffusion_steps: usize,
    /// Its β schedule.
    pub beta_schedule: crate::sampler::gaussian::BetaSchedule,
}

impl ImageSpec {
    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.side * self.side
    }
}

/// The noise predictor ε_θ(x_t, t, y) of Gaussian diffusion, as image samplers see it.
#[allow(async_fn_in_trait)]
pub trait NoisePredictor {
    /// Facts about the network.
    fn spec(&self) -> &ImageSpec;

    /// ε̂ for each image of `x` (`[B · pixels]`, row-major, on the diffusion's scale) at time
    /// index `t`, each with its class (`None`: the null class).
    async fn predict_noise(
        &mut self,
        x: &[f32],
        t: usize,
        classes: &[Option<usize>],
    ) -> Result<Vec<f32>, ModelError>;
}

/// What Diffusion-LM's sampler needs to know about its denoiser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorSpec {
    /// Words the vectors stand for (rows of EMB).
    pub vocab_size: usize,
    /// d, numbers per word vector.
    pub embed_dim: usize,
    /// Positions of a sequence at most.
    pub model_length: usize,
    /// The diffusion's steps T.
    pub diffusion_steps: usize,
    /// Its β schedule.
    pub beta_schedule: crate::sampler::gaussian::BetaSchedule,
}

/// Diffusion-LM's denoiser f_θ(x_t, t) ≈ x₀ over word vectors, as its sampler sees it.
#[allow(async_fn_in_trait)]
pub trait WordVectorDenoiser {
    /// Facts about the network.
    fn spec(&self) -> &VectorSpec;

    /// The word vectors EMB, `[vocab_size · embed_dim]`, row-major: what x̂₀ is rounded to.
    fn embedding(&self) -> &[f32];

    /// x̂₀ for the sequence `x` (`[n · embed_dim]`, n ≤ `model_length`) at time index `t`.
    async fn predict_x0(&mut self, x: &[f32], t: usize) -> Result<Vec<f32>, ModelError>;
}

/// The noisy classifier p_φ(y | x_t, t) of classifier guidance.
#[allow(async_fn_in_trait)]
pub trait NoisyClassifier {
    /// Classes it tells apart.
    fn classes(&self) -> usize;

    /// The classes' names, in the order of its outputs (their numbers unless it has names).
    fn labels(&self) -> Vec<String> {
        (0..self.classes()).map(|c| c.to_string()).collect()
    }

    /// For each image of `x` at time `t`: ∇ₓ log p_φ(y | x_t) for its class `y`, and p_φ(y | x_t).
    async fn log_prob_gradient(
        &mut self,
        x: &[f32],
        t: usize,
        classes: &[usize],
    ) -> Result<(Vec<f32>, Vec<f64>), ModelError>;
}
