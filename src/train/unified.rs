//! The unified objective (`unmask train --objective unified`): one bidirectional DiT over the
//! joint vocabulary of [`crate::unified`], one masked-token loss over three tasks, as MMaDA trains
//! (Yang et al. 2025, arXiv:2505.15809; `Gen-Verse/MMaDA` `training/utils.py`
//! `mask_or_random_replace_tokens`, `train_mmada.py`):
//!
//! - **text → image** (t2i): a digit's caption, then its 64 pixels, `n = max(1, round(64·p))` of
//!   them masked with `p = cos(π·u/2)`, `u ~ U(0, 1)` (MaskGIT's cosine schedule); the caption
//!   is dropped (left empty) with probability [`DEFAULT_CAPTION_DROPOUT`], so the same network
//!   predicts unconditionally for classifier-free guidance. Its term is the plain mean
//!   cross-entropy over the masked pixels.
//! - **image → text** (mmu): the pixels, then the caption's slot, each answer position masked
//!   with `p = (1 − ε)u + ε`; each masked position's cross-entropy is weighted 1/p (the masked
//!   diffusion ELBO, as LLaDA's fine-tuning) and averaged over the answer positions.
//! - **language** (lm): a window of the corpus, masked as MDLM masks it, weighted 1/p, averaged
//!   over the window.
//!
//! The loss is `w_t2i·t2i + w_lm·lm + w_mmu·mmu` with MMaDA's weights 1, 0.1 and 1. No time
//! conditioning (MMaDA's LLaDA backbone has none): the network reads the noise level off the
//! masks.

use super::Checkpointed;
use std::f64::consts::FRAC_PI_2;

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::data::{Order, Windows, mix};
use super::objective::{NOISE_EPS, Objective, Shape, target_log_probs};
use super::optimised::Optimised;
use super::{Recipe, Start, TrainError, scalar};
use crate::config::{Family, ModelConfig};
use crate::corpus::digits::{Digit, PIXELS};
use crate::model::{Dit, initial_checkpoint, load_dit, save::save_dit};
use crate::rng::Rng;
use crate::unified::{CAPTION_TEMPLATES, Layout, SEQUENCE_LEN};

/// Stream ids mixed into the seed (as the text runs').
const DATA_STREAM: u64 = 1;
const NOISE_STREAM: u64 = 2;
const VALID_STREAM: u64 = 3;
const LM_STREAM: u64 = 4;

/// MMaDA's share of t2i captions dropped for classifier-free guidance.
pub const DEFAULT_CAPTION_DROPOUT: f64 = 0.1;

/// The three tasks' weights in the loss (MMaDA's `t2i_coeff`, `lm_coeff`, `mmu_coeff`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskWeights {
    /// Text → image.
    pub t2i: f64,
    /// Plain text.
    pub lm: f64,
    /// Image → text.
    pub mmu: f64,
}

impl Default for TaskWeights {
    /// MMaDA's: 1, 0.1, 1.
    fn default() -> Self {
        Self {
            t2i: 1.0,
            lm: 0.1,
            mmu: 1.0,
        }
    }
}

/// A unified run's recipe: `recipe.batch_size` t2i sequences a step, with `batch_mmu` image →
/// text and `batch_lm` text sequences beside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnifiedTrainConfig {
    /// Optimiser, schedule, EMA, checkpoints, seed; its batch size is the t2i batch.
    #[serde(flatten)]
    pub recipe: Recipe,
    /// Image → text sequences per step.
    pub batch_mmu: usize,
    /// Corpus windows per step.
    pub batch_lm: usize,
    /// Share of t2i captions left empty (classifier-free guidance's unconditional half).
    pub caption_dropout: f64,
    /// The tasks' weights.
    pub weights: TaskWeights,
    /// Steps between validations.
    pub val_every: usize,
}

impl UnifiedTrainConfig {
    /// The default mix for a t2i batch of `recipe.batch_size`: as many mmu sequences, a quarter
    /// as many corpus windows (MMaDA's language task is the smallest).
    pub fn new(recipe: Recipe) -> Self {
        let b = recipe.batch_size;
        Self {
            recipe,
            batch_mmu: b,
            batch_lm: (b / 4).max(1),
            caption_dropout: DEFAULT_CAPTION_DROPOUT,
            weights: TaskWeights::default(),
            val_every: 200,
        }
    }

    /// Checks the values a run relies on.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.recipe.validate()?;
        let bad = |m: String| Err(TrainError::Config(m));
        if !(0.0..1.0).contains(&self.caption_dropout) {
            return bad(format!(
                "caption_dropout = {}: a share in [0, 1)",
                self.caption_dropout
            ));
        }
        let w = self.weights;
        if ![w.t2i, w.lm, w.mmu]
            .iter()
            .all(|x| x.is_finite() && *x >= 0.0)
        {
            return bad("the task weights must be finite and not negative".into());
        }
        if self.val_every == 0 {
            return bad("val_every must be positive".into());
        }
        Ok(())
    }

    /// The DiT's `config.json` for a joint vocabulary of `vocab_size` tokens: MDLM's
    /// bidirectional network without time conditioning, family `unified`.
    pub fn model_config(vocab_size: usize, shape: Shape) -> ModelConfig {
        let mut config = Objective::Mdlm.model_config(
            vocab_size,
            Shape {
                model_length: SEQUENCE_LEN,
                ..shape
            },
        );
        config.family = Family::Unified;
        config.sampler = None;
        config.model_type = Some("unified".into());
        config
    }
}

/// The number of pixels a t2i sequence masks at draw `u`: `max(1, round(64·cos(π·u/2)))`.
pub fn t2i_masked_count(u: f64) -> usize {
    ((PIXELS as f64 * (FRAC_PI_2 * u).cos()).round() as usize).clamp(1, PIXELS)
}

/// One step's sequences, noised, with each position's loss weight (the task weights and the
/// averaging folded in).
#[derive(Clone, Debug)]
pub struct UnifiedBatch {
    /// Clean sequences, `[rows · SEQUENCE_LEN]`: t2i rows, then mmu, then lm.
    pub clean: Vec<u32>,
    /// The same, masked.
    pub noised: Vec<u32>,
    /// Each position's weight: 0 where nothing is predicted.
    pub weights: Vec<f32>,
    /// Rows of each task: t2i, mmu, lm.
    pub rows: [usize; 3],
}

/// What a batch draws from.
pub struct Sources<'a> {
    /// The token layout.
    pub layout: &'a Layout,
    /// Each digit's captions, encoded: `[label][template]`.
    pub captions: &'a [Vec<Vec<u32>>],
    /// Corpus windows of [`SEQUENCE_LEN`] tokens.
    pub windows: &'a Windows,
}

impl UnifiedBatch {
    /// Builds a batch: the t2i `digits`, the mmu `captioned` digits, the `lm` corpus windows,
    /// noised from `rng`, with `config`'s caption dropout and weights.
    pub fn new(
        sources: &Sources<'_>,
        t2i: &[&Digit],
        mmu: &[&Digit],
        lm: &[usize],
        config: &UnifiedTrainConfig,
        rng: &mut Rng,
    ) -> Self {
        let layout = sources.layout;
        let mask = layout.mask;
        let rows = [t2i.len(), mmu.len(), lm.len()];
        let total = rows.iter().sum::<usize>() * SEQUENCE_LEN;
        let mut clean = Vec::with_capacity(total);
        let mut noised = Vec::with_capacity(total);
        let mut weights = Vec::with_capacity(total);
        let caption_of = |digit: &Digit, rng: &mut Rng| {
            let options = &sources.captions[usize::from(digit.label)];
            options[rng.below(options.len())].clone()
        };
        // Text → image: the masked pixels' plain mean over the whole t2i batch.
        let mut t2i_masked = Vec::new();
        for digit in t2i {
            let caption = caption_of(digit, rng);
            let dropped = rng.uniform() < config.caption_dropout;
            // Every caption fits its slot (checked in `UnifiedTrainer::new`).
            let slot = layout
                .caption_slot(if dropped { &[] } else { &caption })
                .unwrap_or_default();
            let seq = layout.t2i(&slot, Some(&digit.pixels));
            let n = t2i_masked_count(rng.uniform());
            let chosen = choose(Layout::T2I_IMAGE.len(), n, rng);
            let mut x = seq.clone();
            let mut w = vec![0.0f32; SEQUENCE_LEN];
            for i in chosen {
                let p = Layout::T2I_IMAGE.start + i;
                x[p] = mask;
                w[p] = 1.0;
            }
            t2i_masked.push(n);
            clean.extend(seq);
            noised.extend(x);
            weights.extend(w);
        }
        let t2i_total = t2i_masked.iter().sum::<usize>().max(1) as f32;
        for w in &mut weights {
            *w *= config.weights.t2i as f32 / t2i_total;
        }
        // Image → text: 1/p for each masked answer position, averaged over the answers.
        let answer_scale =
            config.weights.mmu / (mmu.len().max(1) * Layout::MMU_ANSWER.len()) as f64;
        for digit in mmu {
            let caption = caption_of(digit, rng);
            let slot = layout.caption_slot(&caption).unwrap_or_default();
            let seq = layout.mmu(&digit.pixels, Some(&slot));
            let p = (1.0 - NOISE_EPS) * rng.uniform() + NOISE_EPS;
            let mut x = seq.clone();
            let mut w = vec![0.0f32; SEQUENCE_LEN];
            for i in Layout::MMU_ANSWER {
                if rng.uniform() < p {
                    x[i] = mask;
                    w[i] = (answer_scale / p) as f32;
                }
            }
            clean.extend(seq);
            noised.extend(x);
            weights.extend(w);
        }
        // Language: MDLM's masking and 1/p, averaged over the window.
        let lm_scale = config.weights.lm / (lm.len().max(1) * SEQUENCE_LEN) as f64;
        for &i in lm {
            let seq = sources.windows.window(i);
            let p = (1.0 - NOISE_EPS) * rng.uniform() + NOISE_EPS;
            for &token in seq {
                let masked = rng.uniform() < p;
                clean.push(token);
                noised.push(if masked { mask } else { token });
                weights.push(if masked { (lm_scale / p) as f32 } else { 0.0 });
            }
        }
        Self {
            clean,
            noised,
            weights,
            rows,
        }
    }

    /// Sequences in the batch.
    pub fn len(&self) -> usize {
        self.rows.iter().sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `n` distinct indices below `len`, drawn uniformly (a partial Fisher–Yates shuffle).
fn choose(len: usize, n: usize, rng: &mut Rng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..len).collect();
    for i in 0..n.min(len) {
        let j = i + rng.below(len - i);
        all.swap(i, j);
    }
    all.truncate(n.min(len));
    all
}

/// The loss of `batch` per task, `[t2i, mmu, lm]` (each weighted), and their sum: the tensor to
/// differentiate.
pub fn loss(
    dit: &Dit,
    batch: &UnifiedBatch,
    mask_id: u32,
    device: &Device,
) -> (Tensor<1>, [Tensor<1>; 3]) {
    let b = batch.len();
    let l = SEQUENCE_LEN;
    let ids = |tokens: &[u32]| {
        let data: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        Tensor::<2, Int>::from_data(TensorData::new(data, [b, l]), device)
    };
    let logits = dit.forward(
        ids(&batch.noised),
        &vec![0.0; b],
        crate::config::Attention::Bidirectional,
        0,
        None,
        0,
    );
    let weights = Tensor::<2>::from_data(TensorData::new(batch.weights.clone(), [b, l]), device);
    let nll = target_log_probs(logits, ids(&batch.clean), mask_id).neg() * weights;
    let mut start = 0;
    let parts = batch.rows.map(|rows| {
        let part = if rows == 0 {
            Tensor::<1>::zeros([1], device)
        } else {
            nll.clone().narrow(0, start, rows).sum()
        };
        start += rows;
        part
    });
    (nll.sum(), parts)
}

/// A validation of the EMA weights: each task's loss, unweighted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnifiedEvaluation {
    /// Text → image: mean cross-entropy per masked pixel, in nats.
    pub t2i: f64,
    /// Image → text: the ELBO per answer position, in nats.
    pub mmu: f64,
    /// Language: the ELBO per token, in nats.
    pub lm: f64,
    /// Validation digits scored.
    pub digits: usize,
}

/// What one optimisation step did.
#[derive(Clone, Copy, Debug)]
pub struct UnifiedStepReport {
    /// Steps done.
    pub step: usize,
    /// The weighted loss before the update.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Sequences in the batch.
    pub sequences: usize,
}

/// A unified run in memory.
pub struct UnifiedTrainer {
    /// The recipe.
    pub config: UnifiedTrainConfig,
    /// The architecture.
    pub model_config: ModelConfig,
    layout: Layout,
    captions: Vec<Vec<Vec<u32>>>,
    net: Optimised<Dit>,
    step: usize,
    train: Vec<Digit>,
    valid: Vec<Digit>,
    train_text: Windows,
    valid_text: Windows,
    order: Order,
    text_order: Order,
}

/// A unified run's data: digits and tokenized corpus documents of each split.
pub struct UnifiedData<'a> {
    /// Training digits.
    pub train: Vec<Digit>,
    /// Validation digits.
    pub valid: Vec<Digit>,
    /// Training documents.
    pub train_text: &'a [Vec<u32>],
    /// Validation documents.
    pub valid_text: &'a [Vec<u32>],
}

impl UnifiedTrainer {
    /// A run of `config` on `model_config`, with `layout`'s tokens and each digit's `captions`
    /// (`[label][template]`, encoded), over `data`, on `device` (autodiff switched on here).
    pub fn new(
        config: UnifiedTrainConfig,
        model_config: ModelConfig,
        layout: Layout,
        captions: Vec<Vec<Vec<u32>>>,
        data: UnifiedData<'_>,
        device: &Device,
        start: Start<'_>,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let bad = |m: String| Err(TrainError::Config(m));
        if model_config.model_length != SEQUENCE_LEN {
            return bad(format!(
                "a unified model reads sequences of {SEQUENCE_LEN} tokens; model_length is {}",
                model_config.model_length
            ));
        }
        if model_config.vocab_size < layout.image_codes().end as usize {
            return bad(format!(
                "vocab_size {} has no room for the image tokens (up to id {})",
                model_config.vocab_size,
                layout.image_codes().end - 1
            ));
        }
        if captions.len() != crate::corpus::digits::CLASSES || captions.iter().any(|c| c.is_empty())
        {
            return bad("every digit needs at least one caption".into());
        }
        if let Some(long) = captions
            .iter()
            .flatten()
            .find(|c| c.is_empty() || layout.caption_slot(c).is_err())
        {
            return bad(format!(
                "a caption of {} tokens: each needs 1 to {} (its slot holds <bos> and <eos> too)",
                long.len(),
                crate::unified::MAX_CAPTION_TOKENS
            ));
        }
        for (split, digits) in [("train", &data.train), ("validation", &data.valid)] {
            if digits.is_empty() {
                return bad(format!("the {split} split has no digits"));
            }
        }
        let special = (Some(layout.bos), Some(layout.eos));
        let train_text = Windows::of_split(data.train_text, special, SEQUENCE_LEN, "train")?;
        let valid_text = Windows::of_split(data.valid_text, special, SEQUENCE_LEN, "validation")?;
        let (net, step) = Optimised::start(
            &config.recipe,
            device,
            start,
            || initial_checkpoint(&model_config, config.recipe.seed),
            |bytes, d| Ok(load_dit(&model_config, bytes, d)?.thaw_conditioning()),
        )?;
        let seed = config.recipe.seed;
        let order = Order::new(mix(seed, DATA_STREAM), data.train.len());
        let text_order = Order::new(mix(seed, LM_STREAM), train_text.count());
        Ok(Self {
            config,
            model_config,
            layout,
            captions,
            net,
            step,
            train: data.train,
            valid: data.valid,
            train_text,
            valid_text,
            order,
            text_order,
        })
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Whether the run has reached `max_steps`.
    pub fn is_done(&self) -> bool {
        self.step >= self.config.recipe.max_steps
    }

    /// Training and validation digits.
    pub fn digit_counts(&self) -> (usize, usize) {
        (self.train.len(), self.valid.len())
    }

    /// Sequences per step.
    pub fn sequences_per_step(&self) -> usize {
        self.config.recipe.batch_size + self.config.batch_mmu + self.config.batch_lm
    }

    fn sources<'a>(&'a self, windows: &'a Windows) -> Sources<'a> {
        Sources {
            layout: &self.layout,
            captions: &self.captions,
            windows,
        }
    }

    /// One optimisation step.
    pub fn train_step(&mut self) -> Result<UnifiedStepReport, TrainError> {
        let c = &self.config;
        let (b, bm, bl) = (c.recipe.batch_size, c.batch_mmu, c.batch_lm);
        let lr = c.recipe.lr_at(self.step);
        let mut rng = Rng::new(mix(mix(c.recipe.seed, NOISE_STREAM), self.step as u64));
        // t2i and mmu read the digits in one order, each its own stretch of it.
        let per_step = b + bm;
        let picks: Vec<usize> = (0..per_step)
            .map(|i| self.order.nth(self.step * per_step + i))
            .collect();
        let lm: Vec<usize> = (0..bl)
            .map(|i| self.text_order.nth(self.step * bl + i))
            .collect();
        let digits: Vec<&Digit> = picks.iter().map(|&i| &self.train[i]).collect();
        let batch = UnifiedBatch::new(
            &self.sources(&self.train_text),
            &digits[..b],
            &digits[b..],
            &lm,
            &self.config,
            &mut rng,
        );
        let (total, _) = loss(&self.net.model, &batch, self.layout.mask, self.net.device());
        let value = scalar(total.clone())?;
        let grad_norm = self.net.update(total, &self.config.recipe, self.step)?;
        self.step += 1;
        Ok(UnifiedStepReport {
            step: self.step,
            loss: value,
            lr,
            grad_norm,
            sequences: batch.len(),
        })
    }

    /// Each task's loss on the EMA weights over the validation digits (each once as t2i and
    /// once as mmu, captions kept) and as many validation windows (at most), with the noise
    /// drawn once from the seed.
    pub fn evaluate(&self) -> Result<UnifiedEvaluation, TrainError> {
        let plain = self.net.plain();
        let mut rng = Rng::new(mix(self.config.recipe.seed, VALID_STREAM));
        let unweighted = UnifiedTrainConfig {
            caption_dropout: 0.0,
            weights: TaskWeights {
                t2i: 1.0,
                lm: 1.0,
                mmu: 1.0,
            },
            ..self.config.clone()
        };
        let chunk = self.config.recipe.batch_size.max(1);
        let windows = self.valid_text.count();
        let (mut sums, mut counts) = ([0.0; 3], [0usize; 3]);
        for (k, digits) in self.valid.chunks(chunk).enumerate() {
            let digits: Vec<&Digit> = digits.iter().collect();
            let lm: Vec<usize> = (k * chunk..(k + 1) * chunk)
                .take(digits.len())
                .filter(|&i| i < windows)
                .collect();
            let batch = UnifiedBatch::new(
                &self.sources(&self.valid_text),
                &digits,
                &digits,
                &lm,
                &unweighted,
                &mut rng,
            );
            let (_, parts) = loss(&self.net.ema, &batch, self.layout.mask, &plain);
            for (task, part) in parts.into_iter().enumerate() {
                let n = batch.rows[task];
                if n > 0 {
                    // Each part is a mean over its rows: weight it by them.
                    sums[task] += scalar(part)? * n as f64;
                    counts[task] += n;
                }
            }
        }
        let mean = |t: usize| sums[t] / counts[t].max(1) as f64;
        Ok(UnifiedEvaluation {
            t2i: mean(0),
            mmu: mean(1),
            lm: mean(2),
            digits: self.valid.len(),
        })
    }
}

impl Checkpointed for UnifiedTrainer {
    type Network = Dit;
    const REMEDY: &'static str = "start a new one in another --run directory";

    fn optimised(&self) -> &Optimised<Dit> {
        &self.net
    }

    fn optimised_mut(&mut self) -> &mut Optimised<Dit> {
        &mut self.net
    }

    fn save(network: &Dit, dtype: safetensors::Dtype) -> Result<Vec<u8>, crate::model::LoadError> {
        save_dit(network, dtype)
    }
}

/// `format` of a unified run's `run.json`.
pub const UNIFIED_RUN_FORMAT: &str = "unmask-train-unified-run";
/// Its version.
pub const UNIFIED_RUN_VERSION: u32 = 1;

/// One point of a unified run's history, logged at each validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnifiedHistoryEntry {
    /// Steps done.
    pub step: usize,
    /// Mean weighted training loss since the previous entry.
    pub train_loss: f64,
    /// Learning rate at this step.
    pub lr: f64,
    /// Sequences seen so far.
    pub sequences_seen: u64,
    /// Training throughput since the previous entry.
    pub sequences_per_second: f64,
    /// Validation of the EMA weights.
    pub valid: UnifiedEvaluation,
}

/// Everything about a unified run but its tensors and tokenizer (`run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnifiedRunState {
    /// [`UNIFIED_RUN_FORMAT`].
    pub format: String,
    /// [`UNIFIED_RUN_VERSION`].
    pub version: u32,
    /// The recipe.
    pub train: UnifiedTrainConfig,
    /// The architecture (the exported `config.json`).
    pub model: ModelConfig,
    /// Steps done.
    pub step: usize,
    /// Sequences seen.
    pub sequences_seen: u64,
    /// Seconds spent training, over all sessions.
    pub train_seconds: f64,
    /// The backend(s) it ran on, with their throughput.
    pub backends: Vec<String>,
    /// Validation history.
    pub history: Vec<UnifiedHistoryEntry>,
    /// Every command line that worked on this run, in order.
    pub commands: Vec<String>,
    /// The digits and the corpus it reads, with their checksums.
    pub data: String,
}

impl super::checkpoint::RunRecord for UnifiedRunState {
    const FORMAT: &'static str = UNIFIED_RUN_FORMAT;
    const VERSION: u32 = UNIFIED_RUN_VERSION;
    const MADE_BY: &'static str = "--objective unified";
    fn declared(&self) -> (&str, u32) {
        (&self.format, self.version)
    }
}

/// What an exported unified folder records about its making (`training.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnifiedProvenance {
    /// The run's state at export.
    pub run: UnifiedRunState,
    /// The validation of the exported (EMA) weights.
    pub final_validation: UnifiedEvaluation,
    /// How the weights are stored.
    pub dtype: String,
}

/// Saves the trainer, its tokenizer and `state` to the run directory `dir`.
pub fn save_unified_run(
    dir: &std::path::Path,
    trainer: &UnifiedTrainer,
    state: &UnifiedRunState,
    tokenizer: &[u8],
) -> Result<(), TrainError> {
    super::checkpoint::save_run(
        dir,
        trainer.weights()?,
        &trainer.optimizer_bytes()?,
        Some(tokenizer),
        state,
    )
}

/// Writes the EMA weights as a model folder: `config.json`, `model.safetensors` in `dtype`, the
/// joint vocabulary's `tokenizer.json` and `training.json`.
pub fn export_unified_model(
    out: &std::path::Path,
    trainer: &UnifiedTrainer,
    state: &UnifiedRunState,
    tokenizer: &[u8],
    dtype: safetensors::Dtype,
    final_validation: UnifiedEvaluation,
) -> Result<(), TrainError> {
    let provenance = UnifiedProvenance {
        run: state.clone(),
        final_validation,
        dtype: super::checkpoint::dtype_name(dtype),
    };
    let weights = trainer.ema_weights(dtype)?;
    super::checkpoint::write_model_folder(out, &state.model, &weights, Some(tokenizer), &provenance)
}

/// Each digit's captions from every template, encoded by `encode` (`[label][template]`).
pub fn encode_captions<E>(
    mut encode: impl FnMut(&str) -> Result<Vec<u32>, E>,
) -> Result<Vec<Vec<Vec<u32>>>, E> {
    (0..crate::corpus::digits::CLASSES as u8)
        .map(|label| {
            (0..CAPTION_TEMPLATES.len())
                .map(|t| encode(&crate::unified::caption(label, t)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_t2i_mask_count_follows_the_cosine_and_never_falls_to_zero() {
        assert_eq!(t2i_masked_count(0.0), 64);
        assert_eq!(t2i_masked_count(1.0), 1);
        assert_eq!(t2i_masked_count(0.5), 45); // 64·cos(π/4) = 45.25
        assert_eq!(t2i_masked_count(0.999), 1);
        let mut last = usize::MAX;
        for i in 0..=100 {
            let n = t2i_masked_count(i as f64 / 100.0);
            assert!(n <= last && (1..=64).contains(&n));
            last = n;
        }
    }

    #[test]
    fn chosen_indices_are_distinct_and_in_range() {
        let mut rng = Rng::new(4);
        for n in [1, 7, 64] {
            let mut c = choose(64, n, &mut rng);
            c.sort_unstable();
            c.dedup();
            assert_eq!(c.len(), n);
            assert!(c.iter().all(|&i| i < 64));
        }
    }
}

/// The t2i scores of one guidance scale.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct T2iScore {
    /// w.
    pub cfg_scale: f64,
    /// The clean classifier's accuracy on the samples (the digit the caption names).
    pub accuracy: f64,
    /// The accuracy per class asked for.
    pub per_class: Vec<f64>,
    /// The samples' mean distance to their nearest training image.
    pub nearest_train_distance: f64,
}

/// What `unmask quality` reports for a unified model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnifiedQualityReport {
    /// MaskGIT steps of every t2i sample.
    pub steps: usize,
    /// Samples of each class per scale.
    pub per_class: usize,
    /// One entry per guidance scale.
    pub t2i: Vec<T2iScore>,
    /// The clean classifier's accuracy on the validation split: the baseline of the t2i rows.
    pub validation_accuracy: f64,
    /// The validation images' mean distance to their nearest training image.
    pub validation_nearest_train_distance: f64,
    /// Share of the validation digits whose caption names their digit (mmu).
    pub mmu_accuracy: f64,
    /// Every validation digit's label and caption, in order.
    pub captions: Vec<(u8, String)>,
}

/// Scores a unified model both ways (issue 19's aims): `per_class` t2i samples of each digit at
/// each of `cfg_scales` (sample i of a class captioned by template i, seeded by i) read by a
/// clean classifier fitted to `train`, with their nearest-training distance against
/// `valid`'s; and the caption of every `valid` digit (greedy) checked for naming its digit.
#[allow(clippy::too_many_arguments)]
pub async fn check<D: crate::network::Denoiser>(
    model: &mut D,
    layout: &Layout,
    codec: &crate::text::TextCodec,
    cfg_scales: &[f64],
    steps: usize,
    per_class: usize,
    train: &[Digit],
    valid: &[Digit],
) -> Result<UnifiedQualityReport, TrainError> {
    use super::image_quality::{DigitClassifier, mean_nearest_distance};
    use crate::corpus::digits::CLASSES;
    use crate::sampler::maskgit::MaskGitSettings;
    use crate::unified::{CaptionSettings, UnifiedRun, UnifiedTask};
    let classifier = DigitClassifier::train(train);
    let spec = model.spec().clone();
    // Each task to its end, through the driver the page and the CLI use.
    let mut finish = async |task: &UnifiedTask| -> Result<UnifiedRun, TrainError> {
        let failed = |e: String| TrainError::Sample(format!("{}: {e}", task.kind().name()));
        let mut run =
            UnifiedRun::new(task, layout, codec, &spec).map_err(|e| failed(e.to_string()))?;
        run.show_candidates(false);
        while run
            .next(model)
            .await
            .map_err(|e| failed(e.to_string()))?
            .is_some()
        {}
        Ok(run)
    };
    let mut t2i = Vec::new();
    for &cfg_scale in cfg_scales {
        let mut images = Vec::new();
        let mut per = Vec::new();
        for class in 0..CLASSES {
            let mut right = 0;
            for i in 0..per_class {
                let task = UnifiedTask::T2i {
                    caption: crate::unified::caption(class as u8, i),
                    settings: MaskGitSettings {
                        steps,
                        cfg_scale,
                        seed: i as u64,
                        ..MaskGitSettings::default()
                    },
                };
                let pixels = finish(&task)
                    .await?
                    .image()
                    .map(|p| p.map(f64::from).to_vec())
                    .unwrap_or_else(|| vec![0.0; PIXELS]);
                right += usize::from(classifier.predict(&pixels) == class);
                images.push(pixels);
            }
            per.push(right as f64 / per_class.max(1) as f64);
        }
        t2i.push(T2iScore {
            cfg_scale,
            accuracy: per.iter().sum::<f64>() / per.len() as f64,
            per_class: per,
            nearest_train_distance: mean_nearest_distance(&images, train),
        });
    }
    let valid_images: Vec<Vec<f64>> = valid
        .iter()
        .map(|d| d.pixels.map(f64::from).to_vec())
        .collect();
    let mut captions = Vec::with_capacity(valid.len());
    let mut named = 0;
    for digit in valid {
        let task = UnifiedTask::Mmu {
            image: digit.pixels.to_vec(),
            settings: CaptionSettings::default(),
        };
        let caption = codec.decode(finish(&task).await?.caption_tokens());
        named += usize::from(crate::unified::digit_named(&caption) == Some(digit.label));
        captions.push((digit.label, caption.trim().to_owned()));
    }
    Ok(UnifiedQualityReport {
        steps,
        per_class,
        t2i,
        validation_accuracy: classifier.accuracy(valid),
        validation_nearest_train_distance: mean_nearest_distance(&valid_images, train),
        mmu_accuracy: named as f64 / valid.len().max(1) as f64,
        captions,
    })
}
