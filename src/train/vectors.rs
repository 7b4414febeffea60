//! Training Diffusion-LM's networks: the denoiser (`unmask train --objective diffusion-lm`) and
//! the control classifier (`--objective latent-classifier`).
//!
//! The loss is the reference's end-to-end objective (Li et al. 2022, arXiv:2205.14217, §4.1,
//! eq. 2; `XiangLi1999/Diffusion-LM` `improved_diffusion/gaussian_diffusion.py`,
//! `training_losses_e2e`), per sequence of words w with t uniform over 0..T:
//! - x₀ ~ N(EMB(w), σ₀²) with σ₀ = √(1 − ᾱ₀), x_t = √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε;
//! - ‖f_θ(x_t, t) − x₀‖², whose target at t = 0 is EMB(w) itself (x₀-prediction);
//! - the prior term ‖√ᾱ_{T−1}·x₀‖², which keeps the vectors from growing past the noise;
//! - rounding's −log p(w | x₀) through the tied logits x₀·EMBᵀ.
//!
//! Each term is a mean over the sequence's numbers (the reference's `mean_flat`), and the
//! word vectors learn through all three.
//!
//! The control classifier p_φ(c | x_t, t) of plug-and-play control (§5.2) learns the
//! cross-entropy of each window's attribute (its source: Austen or the Bible) at x_t drawn as
//! above from the denoiser's word vectors, which stay frozen: the latents it reads are the very
//! ones the sampler makes (the reference trains its classifiers on the diffusion's noised
//! embeddings, t uniform). Windows never mix two sources ([`Windows::labelled`]).
//!
//! The machinery is the other trainers': the [`Recipe`],
//! AdamW, the clip, the EMA, the seeded data order and noise streams ([`super::data`]); a run
//! resumes exactly.

use super::Checkpointed;
use std::path::Path;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint::{RunRecord, dtype_name, load_run, save_run, write_model_folder};
use super::data::{Order, Windows, mix};
use super::optimised::Optimised;
use super::{Documents, Recipe, Start, TrainError, count, scalar};
use crate::model::diffusion_lm::{
    DiffusionLm, DiffusionLmConfig, initial_diffusion_lm, load_diffusion_lm,
};
use crate::model::patch_dit::Role;
use crate::model::save::save_diffusion_lm;
use crate::rng::Rng;
use crate::sampler::gaussian::Schedule;
use crate::sampler::image::normal;

/// Stream ids mixed into the seed (as the other trainers'): data order, noise, validation draw.
const DATA_STREAM: u64 = 1;
const NOISE_STREAM: u64 = 2;
const VALID_STREAM: u64 = 3;

/// `run.json`'s format tag for a Diffusion-LM run.
pub const VECTOR_RUN_FORMAT: &str = "unmask-train-diffusion-lm-run";
/// Its version.
pub const VECTOR_RUN_VERSION: u32 = 1;

/// A Diffusion-LM run: the shared [`Recipe`] and its validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorTrainConfig {
    /// Batch, optimiser, schedule, EMA, checkpoints and seed.
    #[serde(flatten)]
    pub recipe: Recipe,
    /// Steps between validations.
    pub val_every: usize,
    /// Validation windows scored (the first ones of the split).
    pub val_windows: usize,
}

impl VectorTrainConfig {
    /// Checks the recipe.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.recipe.validate()?;
        if self.val_every == 0 || self.val_windows == 0 {
            return Err(TrainError::Config(
                "val_every and val_windows must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// The loss's terms: the denoiser's three, each a mean per number of the sequence (the rounding
/// term per word), or the classifier's one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VectorLoss {
    /// ‖f_θ(x_t, t) − x₀‖².
    pub mse: f64,
    /// −log p(w | x₀).
    pub rounding: f64,
    /// ‖√ᾱ_{T−1}·x₀‖².
    pub prior: f64,
    /// The classifier's −log p_φ(c | x_t, t), a mean per window.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub classification: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl VectorLoss {
    /// What is minimised: their sum.
    pub fn total(&self) -> f64 {
        self.mse + self.rounding + self.prior + self.classification
    }

    /// The sum of `self` and `other` weighted by `w`.
    pub fn add(&mut self, other: &Self, w: f64) {
        self.mse += other.mse * w;
        self.rounding += other.rounding * w;
        self.prior += other.prior * w;
        self.classification += other.classification * w;
    }

    /// Each term divided by `n`.
    pub fn divided(&self, n: f64) -> Self {
        Self {
            mse: self.mse / n,
            rounding: self.rounding / n,
            prior: self.prior / n,
            classification: self.classification / n,
        }
    }
}

/// A validation of the EMA weights on the first windows of the validation split, at times and
/// noise drawn once from the seed so that evaluations compare.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorEvaluation {
    /// The mean loss.
    pub loss: VectorLoss,
    /// Windows scored.
    pub windows: usize,
    /// The classifier's share of windows whose attribute it named, at the noised latents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// What one optimisation step did.
#[derive(Clone, Copy, Debug)]
pub struct VectorStepReport {
    /// Steps done, this one included.
    pub step: usize,
    /// Training loss before the update.
    pub loss: VectorLoss,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens in the batch.
    pub tokens: usize,
}

/// A batch of windows with its times and noise.
struct Noised {
    /// The words, `[B · L]`.
    tokens: Vec<i64>,
    /// The time of each window.
    t: Vec<usize>,
    /// ε₀ of x₀ ~ N(EMB(w), σ₀²), `[B · L · d]`.
    eps0: Vec<f32>,
    /// ε of x_t, `[B · L · d]`.
    eps: Vec<f32>,
    batch: usize,
    len: usize,
}

/// Draws a time per window and the noise of every number from `rng`.
fn noise(windows: &[&[u32]], d: usize, steps: usize, rng: &mut Rng) -> Noised {
    let len = windows.first().map_or(0, |w| w.len());
    let numbers = windows.len() * len * d;
    let mut draw = |n| (0..n).map(|_| normal(rng) as f32).collect::<Vec<f32>>();
    let eps0 = draw(numbers);
    let eps = draw(numbers);
    Noised {
        tokens: windows
            .iter()
            .flat_map(|w| w.iter().map(|&id| i64::from(id)))
            .collect(),
        t: windows.iter().map(|_| rng.below(steps)).collect(),
        eps0,
        eps,
        batch: windows.len(),
        len,
    }
}

/// x₀ ~ N(mean, σ₀²) and x_t ~ q(x_t | x₀) of a noised batch around the word vectors `mean`
/// `[B, L, d]`.
fn noised_latents(
    mean: Tensor<3>,
    schedule: &Schedule,
    batch: &Noised,
    device: &Device,
) -> (Tensor<3>, Tensor<3>) {
    let [b, l, d] = mean.dims();
    let numbers =
        |v: &[f32]| Tensor::<3>::from_data(TensorData::new(v.to_vec(), [b, l, d]), device);
    let sigma0 = (1.0 - schedule.alpha_bars[0]).sqrt() as f32;
    let x0 = mean + numbers(&batch.eps0) * sigma0;
    let a = |t: usize| schedule.alpha_bars[t];
    let x_t = x0.clone() * per_window(batch, device, &|t| a(t).sqrt())
        + numbers(&batch.eps) * per_window(batch, device, &|t| (1.0 - a(t)).sqrt());
    (x0, x_t)
}

/// `f` of each window's time, `[B, 1, 1]`.
fn per_window(batch: &Noised, device: &Device, f: &dyn Fn(usize) -> f64) -> Tensor<3> {
    let values: Vec<f32> = batch.t.iter().map(|&t| f(t) as f32).collect();
    Tensor::<3>::from_data(TensorData::new(values, [batch.batch, 1, 1]), device)
}

/// The classifier's loss on a noised batch around the frozen word vectors `embedding` `[V, d]`:
/// the mean cross-entropy `[1]` of the windows' `labels`, and how many it named right (a tensor,
/// read only where it is used).
fn classifier_loss(
    net: &DiffusionLm,
    schedule: &Schedule,
    batch: &Noised,
    labels: &[usize],
    embedding: Tensor<2>,
    device: &Device,
) -> (Tensor<1>, Tensor<1, Int>) {
    let (b, l) = (batch.batch, batch.len);
    let d = embedding.dims()[1];
    let ids = Tensor::<1, Int>::from_data(TensorData::new(batch.tokens.clone(), [b * l]), device);
    let mean = embedding.select(0, ids).reshape([b, l, d]);
    let (_, x_t) = noised_latents(mean, schedule, batch, device);
    let times: Vec<f32> = batch.t.iter().map(|&t| t as f32).collect();
    let logits = net.forward(x_t, &times);
    let classes = logits.dims()[2];
    let logits = logits.reshape([b, classes]);
    let targets: Vec<i64> = labels.iter().map(|&c| c as i64).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, 1]), device);
    let correct = logits.clone().argmax(1).equal(targets.clone()).int().sum();
    let ce = log_softmax(logits, 1).gather(1, targets).mean().neg();
    (ce, correct)
}

/// The loss of `net` on a noised batch: the total `[1]` (differentiable on an autodiff device)
/// and its three terms.
fn loss(
    net: &DiffusionLm,
    schedule: &Schedule,
    batch: &Noised,
    device: &Device,
) -> Result<(Tensor<1>, [Tensor<1>; 3]), TrainError> {
    let (b, l) = (batch.batch, batch.len);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(batch.tokens.clone(), [b, l]), device);
    let no_vectors = || TrainError::Config("the network has no word vectors to train".into());
    let mean = net.embed(ids.clone()).ok_or_else(no_vectors)?;
    let (x0, x_t) = noised_latents(mean.clone(), schedule, batch, device);
    let times: Vec<f32> = batch.t.iter().map(|&t| t as f32).collect();
    let predicted = net.forward(x_t, &times);
    let at_zero = per_window(batch, device, &|t| if t == 0 { 1.0 } else { 0.0 });
    let target = x0.clone() * (at_zero.clone().neg() + 1.0) + mean * at_zero;
    let mse = (predicted - target).powi_scalar(2).mean();
    let last = schedule.alpha_bars[schedule.steps() - 1].sqrt() as f32;
    let prior = (x0.clone() * last).powi_scalar(2).mean();
    let logits = net.logits(x0).ok_or_else(no_vectors)?;
    let rounding = log_softmax(logits, 2)
        .gather(2, ids.reshape([b, l, 1]))
        .mean()
        .neg();
    let total = mse.clone() + rounding.clone() + prior.clone();
    Ok((total, [mse, rounding, prior]))
}

/// The three terms' values.
fn terms(t: [Tensor<1>; 3]) -> Result<VectorLoss, TrainError> {
    let [mse, rounding, prior] = t;
    Ok(VectorLoss {
        mse: scalar(mse)?,
        rounding: scalar(rounding)?,
        prior: scalar(prior)?,
        classification: 0.0,
    })
}

/// What a classifier run reads beside its documents.
#[derive(Clone, Copy, Debug)]
pub struct ClassifierData<'a> {
    /// The denoiser's word vectors EMB `[vocab_size · embed_dim]`, frozen.
    pub embedding: &'a [f32],
    /// Each training document's attribute: an index into the model's `labels`.
    pub train_labels: &'a [usize],
    /// Each validation document's attribute.
    pub valid_labels: &'a [usize],
}

/// A classifier run's frozen word vectors and window labels.
struct Attributes {
    embedding: Vec<f32>,
    train: Vec<usize>,
    valid: Vec<usize>,
}

/// A Diffusion-LM run in memory: the network (denoiser or classifier), its EMA, the optimiser
/// and the windows.
pub struct VectorTrainer {
    /// The recipe.
    pub config: VectorTrainConfig,
    /// The architecture.
    pub model_config: DiffusionLmConfig,
    net: Optimised<DiffusionLm>,
    step: usize,
    schedule: Schedule,
    train: Windows,
    valid: Windows,
    order: Order,
    /// The classifier's inputs; `None` for the denoiser.
    attributes: Option<Attributes>,
}

impl VectorTrainer {
    /// A run of `config` on `model_config` over the tokenized `documents` (wrapped in the
    /// `special` BOS and EOS where the tokenizer has them, cut into windows of `model_length`),
    /// on `device`. A classifier (the config's role) needs `classifier`, a denoiser none.
    pub fn new(
        config: VectorTrainConfig,
        model_config: DiffusionLmConfig,
        documents: Documents<'_>,
        special: (Option<u32>, Option<u32>),
        classifier: Option<ClassifierData<'_>>,
        device: &Device,
        start: Start<'_>,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let len = model_config.model_length;
        let (train, valid, attributes) = match (model_config.role, classifier) {
            (Role::Denoiser, None) => (
                Windows::of_split(documents.train, special, len, "train")?,
                Windows::of_split(documents.valid, special, len, "validation")?,
                None,
            ),
            (Role::Classifier, Some(data)) => {
                let (v, d) = (model_config.vocab_size, model_config.embed_dim);
                if data.embedding.len() != v * d {
                    return Err(TrainError::Config(format!(
                        "the word vectors hold {} numbers, not the {v} × {d} of the classifier's vocab_size × embed_dim",
                        data.embedding.len()
                    )));
                }
                let classes = model_config.labels.len();
                if let Some(&c) = data
                    .train_labels
                    .iter()
                    .chain(data.valid_labels)
                    .find(|&&c| c >= classes)
                {
                    return Err(TrainError::Config(format!(
                        "attribute {c} is outside the classifier's {classes} labels"
                    )));
                }
                let (train, train_labels) =
                    Windows::labelled(documents.train, data.train_labels, special, len, "train")?;
                let (valid, valid_labels) = Windows::labelled(
                    documents.valid,
                    data.valid_labels,
                    special,
                    len,
                    "validation",
                )?;
                let attributes = Attributes {
                    embedding: data.embedding.to_vec(),
                    train: train_labels,
                    valid: valid_labels,
                };
                (train, valid, Some(attributes))
            }
            (Role::Denoiser, Some(_)) => {
                return Err(TrainError::Config(
                    "a denoiser run learns its own word vectors: it takes no classifier data"
                        .into(),
                ));
            }
            (Role::Classifier, None) => {
                return Err(TrainError::Config(
                    "a classifier run needs the denoiser's word vectors and each document's attribute".into(),
                ));
            }
        };
        if let Some(&id) = documents
            .train
            .iter()
            .chain(documents.valid)
            .flatten()
            .find(|&&id| id as usize >= model_config.vocab_size)
        {
            return Err(TrainError::Config(format!(
                "token id {id} is outside the model's {} word vectors",
                model_config.vocab_size
            )));
        }
        let schedule = Schedule::new(model_config.beta_schedule, model_config.diffusion_steps)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let (net, step) = Optimised::start(
            &config.recipe,
            device,
            start,
            || initial_diffusion_lm(&model_config, config.recipe.seed),
            |bytes, d| load_diffusion_lm(&model_config, bytes, d),
        )?;
        let order = Order::new(mix(config.recipe.seed, DATA_STREAM), train.count());
        Ok(Self {
            config,
            model_config,
            net,
            step,
            schedule,
            train,
            valid,
            order,
            attributes,
        })
    }

    /// The loss of `net` on `batch` (windows `indices` of `labels`' split) on `device`: the total
    /// to minimise, its terms, and for the classifier how many it named right.
    fn batch_loss(
        &self,
        net: &DiffusionLm,
        batch: &Noised,
        labels: impl Fn(&Attributes) -> Vec<usize>,
        device: &Device,
    ) -> Result<(Tensor<1>, VectorLoss, Option<Tensor<1, Int>>), TrainError> {
        match &self.attributes {
            None => {
                let (total, parts) = loss(net, &self.schedule, batch, device)?;
                Ok((total, terms(parts)?, None))
            }
            Some(attributes) => {
                let (v, d) = (self.model_config.vocab_size, self.model_config.embed_dim);
                let embedding = Tensor::<2>::from_data(
                    TensorData::new(attributes.embedding.clone(), [v, d]),
                    device,
                );
                let labels = labels(attributes);
                let (ce, correct) =
                    classifier_loss(net, &self.schedule, batch, &labels, embedding, device);
                let loss = VectorLoss {
                    classification: scalar(ce.clone())?,
                    ..VectorLoss::default()
                };
                Ok((ce, loss, Some(correct)))
            }
        }
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Whether the run has reached `max_steps`.
    pub fn is_done(&self) -> bool {
        self.step >= self.config.recipe.max_steps
    }

    /// Training and validation windows.
    pub fn window_counts(&self) -> (usize, usize) {
        (self.train.count(), self.valid.count())
    }

    /// One optimisation step on the next batch.
    pub fn train_step(&mut self) -> Result<VectorStepReport, TrainError> {
        let r = &self.config.recipe;
        let lr = r.lr_at(self.step);
        let b = r.batch_size;
        let mut rng = Rng::new(mix(mix(r.seed, NOISE_STREAM), self.step as u64));
        let indices: Vec<usize> = (0..b).map(|i| self.order.nth(self.step * b + i)).collect();
        let windows: Vec<&[u32]> = indices.iter().map(|&i| self.train.window(i)).collect();
        let d = self.model_config.embed_dim;
        let batch = noise(&windows, d, self.schedule.steps(), &mut rng);
        let (total, loss, _) = self.batch_loss(
            &self.net.model,
            &batch,
            |a| indices.iter().map(|&i| a.train[i]).collect(),
            self.net.device(),
        )?;
        let r = self.config.recipe.clone();
        let grad_norm = self.net.update(total, &r, self.step)?;
        self.step += 1;
        Ok(VectorStepReport {
            step: self.step,
            loss,
            lr,
            grad_norm,
            tokens: b * self.train.len(),
        })
    }

    /// The validation windows scored: the first `val_windows` for the denoiser; for the
    /// classifier as many spread evenly over the split, which is written source by source.
    fn validation_windows(&self) -> Vec<usize> {
        let total = self.valid.count();
        let count = self.config.val_windows.min(total);
        match self.attributes {
            None => (0..count).collect(),
            Some(_) => (0..count).map(|i| i * total / count).collect(),
        }
    }

    /// The EMA weights' loss on the validation windows (and the classifier's accuracy).
    pub fn evaluate(&self) -> Result<VectorEvaluation, TrainError> {
        let plain = self.net.plain();
        let mut rng = Rng::new(mix(self.config.recipe.seed, VALID_STREAM));
        let indices = self.validation_windows();
        let d = self.model_config.embed_dim;
        let mut sum = VectorLoss::default();
        let mut correct = 0i64;
        for chunk in indices.chunks(self.config.recipe.batch_size) {
            let windows: Vec<&[u32]> = chunk.iter().map(|&i| self.valid.window(i)).collect();
            let batch = noise(&windows, d, self.schedule.steps(), &mut rng);
            let (_, l, right) = self.batch_loss(
                &self.net.ema,
                &batch,
                |a| chunk.iter().map(|&i| a.valid[i]).collect(),
                &plain,
            )?;
            sum.add(&l, chunk.len() as f64);
            if let Some(right) = right {
                correct += count(right)?;
            }
        }
        let n = indices.len() as f64;
        Ok(VectorEvaluation {
            loss: sum.divided(n),
            windows: indices.len(),
            accuracy: self.attributes.as_ref().map(|_| correct as f64 / n),
        })
    }
}

impl Checkpointed for VectorTrainer {
    type Network = DiffusionLm;
    const REMEDY: &'static str = "start a new one";

    fn optimised(&self) -> &Optimised<DiffusionLm> {
        &self.net
    }

    fn optimised_mut(&mut self) -> &mut Optimised<DiffusionLm> {
        &mut self.net
    }

    fn save(
        network: &DiffusionLm,
        dtype: safetensors::Dtype,
    ) -> Result<Vec<u8>, crate::model::LoadError> {
        save_diffusion_lm(network, dtype)
    }
}

/// One point of a run's history, logged at each validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorHistoryEntry {
    /// Steps done.
    pub step: usize,
    /// Mean training loss since the previous entry.
    pub train_loss: VectorLoss,
    /// Learning rate at this step.
    pub lr: f64,
    /// Training tokens seen so far.
    pub tokens_seen: u64,
    /// Training throughput since the previous entry.
    pub tokens_per_second: f64,
    /// Validation of the EMA weights.
    pub valid: VectorEvaluation,
}

/// Everything about a run but its tensors (`run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorRunState {
    /// [`VECTOR_RUN_FORMAT`].
    pub format: String,
    /// [`VECTOR_RUN_VERSION`].
    pub version: u32,
    /// The recipe.
    pub train: VectorTrainConfig,
    /// The architecture (written as the exported `config.json`).
    pub model: DiffusionLmConfig,
    /// Steps done.
    pub step: usize,
    /// Training tokens seen.
    pub tokens_seen: u64,
    /// Seconds spent training, over all sessions.
    pub train_seconds: f64,
    /// The backend(s) it ran on, with their throughput.
    pub backends: Vec<String>,
    /// Validation history.
    pub history: Vec<VectorHistoryEntry>,
    /// Every command line that worked on this run, in order.
    pub commands: Vec<String>,
    /// The prepared corpus it reads.
    pub corpus: String,
    /// A classifier run's denoiser folder, whose word vectors it reads (frozen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denoiser: Option<String>,
}

/// A saved run: `run.json`, the tokenizer, the weights, their EMA and the optimiser state.
pub struct SavedVectorRun {
    /// `run.json`.
    pub state: VectorRunState,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
    /// Current weights, EMA weights, optimiser state.
    pub tensors: [Vec<u8>; 3],
}

impl RunRecord for VectorRunState {
    const FORMAT: &'static str = VECTOR_RUN_FORMAT;
    const VERSION: u32 = VECTOR_RUN_VERSION;
    const MADE_BY: &'static str = "--objective diffusion-lm or latent-classifier";
    fn declared(&self) -> (&str, u32) {
        (&self.format, self.version)
    }
}

/// The saved run in `dir`, when there is one.
pub fn load_vector_run(dir: &Path) -> Result<Option<SavedVectorRun>, TrainError> {
    Ok(load_run(dir, true)?.map(|run| SavedVectorRun {
        state: run.state,
        tokenizer: run.tokenizer.unwrap_or_default(),
        tensors: run.tensors,
    }))
}

/// Saves the trainer, its tokenizer and `state` (whose step must be the trainer's) to `dir`,
/// `run.json` last.
pub fn save_vector_run(
    dir: &Path,
    trainer: &VectorTrainer,
    state: &VectorRunState,
    tokenizer: &[u8],
) -> Result<(), TrainError> {
    save_run(
        dir,
        trainer.weights()?,
        &trainer.optimizer_bytes()?,
        Some(tokenizer),
        state,
    )
}

/// What an exported folder records about its making (`training.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorProvenance {
    /// The run's state at export.
    pub run: VectorRunState,
    /// The validation of the exported (EMA) weights.
    pub final_validation: VectorEvaluation,
    /// How the weights are stored.
    pub dtype: String,
}

/// Writes the EMA weights as a model folder: `config.json`, `model.safetensors` in `dtype`,
/// `tokenizer.json` (a denoiser's) and `training.json`.
pub fn export_vector_model(
    out: &Path,
    trainer: &VectorTrainer,
    state: &VectorRunState,
    tokenizer: &[u8],
    dtype: safetensors::Dtype,
    final_validation: VectorEvaluation,
) -> Result<(), TrainError> {
    let provenance = VectorProvenance {
        run: state.clone(),
        final_validation,
        dtype: dtype_name(dtype),
    };
    let weights = trainer.ema_weights(dtype)?;
    // A classifier reads its denoiser's vectors, never text: it has no tokenizer of its own.
    let tokenizer = (state.model.role == Role::Denoiser).then_some(tokenizer);
    write_model_folder(out, &state.model, &weights, tokenizer, &provenance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Family;
    use crate::sampler::gaussian::BetaSchedule;

    fn config() -> DiffusionLmConfig {
        DiffusionLmConfig {
            family: Family::DiffusionLm,
            role: Role::Denoiser,
            vocab_size: 12,
            embed_dim: 8,
            model_length: 8,
            hidden_dim: 32,
            cond_dim: 32,
            n_blocks: 1,
            n_heads: 2,
            diffusion_steps: 200,
            beta_schedule: BetaSchedule::Sqrt,
            labels: vec![],
            classifier: None,
        }
    }

    /// 40 steps of 8 windows, validated on `val_windows` every 10.
    fn recipe(val_windows: usize) -> VectorTrainConfig {
        VectorTrainConfig {
            recipe: Recipe {
                batch_size: 8,
                lr: 3e-3,
                warmup_steps: 1,
                max_steps: 40,
                ema: 0.0,
                seed: 3,
                ..Recipe::default()
            },
            val_every: 10,
            val_windows,
        }
    }

    #[test]
    fn the_loss_falls_in_a_few_steps_and_a_run_resumes_exactly() {
        // A little language: counting up from a random start, modulo the vocabulary.
        let docs: Vec<Vec<u32>> = (0..40u32)
            .map(|s| (0..24).map(|i| (s + i) % 12).collect())
            .collect();
        let documents = Documents {
            train: &docs[..32],
            valid: &docs[32..],
        };
        let train = recipe(8);
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let new = |start| {
            VectorTrainer::new(
                train.clone(),
                config(),
                documents,
                (None, None),
                None,
                &device,
                start,
            )
            .unwrap()
        };
        let mut trainer = new(Start::Fresh);
        let before = trainer.evaluate().unwrap().loss;
        let mut halfway = None;
        while !trainer.is_done() {
            trainer.train_step().unwrap();
            if trainer.step() == 20 {
                let (weights, ema) = trainer.weights().unwrap();
                halfway = Some((weights, ema, trainer.optimizer_bytes().unwrap()));
            }
        }
        let after = trainer.evaluate().unwrap().loss;
        assert!(after.mse < before.mse * 0.7, "{before:?} → {after:?}");
        assert!(after.rounding < before.rounding, "{before:?} → {after:?}");
        assert!(after.total() < before.total());
        // From the step-20 checkpoint, the same last 20 steps: the same weights.
        let (weights, ema, optimizer) = halfway.unwrap();
        let mut resumed = new(Start::From {
            weights: &weights,
            ema: &ema,
            step: 20,
        });
        resumed.load_optimizer(optimizer).unwrap();
        while !resumed.is_done() {
            resumed.train_step().unwrap();
        }
        assert_eq!(resumed.weights().unwrap(), trainer.weights().unwrap());
        // Ids past the vectors are refused before a step.
        let bad = vec![vec![3u32; 20], vec![12u32; 20]];
        let err = VectorTrainer::new(
            train,
            config(),
            Documents {
                train: &bad,
                valid: &bad,
            },
            (None, None),
            None,
            &device,
            Start::Fresh,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("token id 12"), "{err}");
    }

    #[test]
    fn the_classifier_learns_the_attribute_of_noised_latents_and_needs_its_vectors() {
        // Two "sources" with words of their own: 0–5 against 6–11.
        let docs: Vec<Vec<u32>> = (0..40u32)
            .map(|s| (0..24).map(|i| (s + i) % 6 + 6 * (s % 2)).collect())
            .collect();
        let labels: Vec<usize> = (0..40).map(|s| s % 2).collect();
        let mut rng = Rng::new(4);
        let embedding: Vec<f32> = (0..12 * 8).map(|_| normal(&mut rng) as f32).collect();
        let model = DiffusionLmConfig {
            role: Role::Classifier,
            labels: vec!["low".into(), "high".into()],
            ..config()
        };
        let train = recipe(16);
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let documents = Documents {
            train: &docs[..32],
            valid: &docs[32..],
        };
        let data = ClassifierData {
            embedding: &embedding,
            train_labels: &labels[..32],
            valid_labels: &labels[32..],
        };
        let new = |data, model: &DiffusionLmConfig| {
            VectorTrainer::new(
                train.clone(),
                model.clone(),
                documents,
                (None, None),
                data,
                &device,
                Start::Fresh,
            )
        };
        let mut trainer = new(Some(data), &model).unwrap();
        let before = trainer.evaluate().unwrap();
        while !trainer.is_done() {
            trainer.train_step().unwrap();
        }
        let after = trainer.evaluate().unwrap();
        assert_eq!(after.windows, 16);
        // Validation spreads over both sources.
        let labels_seen: std::collections::BTreeSet<usize> = trainer
            .validation_windows()
            .iter()
            .map(|&i| trainer.attributes.as_ref().unwrap().valid[i])
            .collect();
        assert_eq!(labels_seen.len(), 2);
        assert!(
            after.loss.classification < before.loss.classification * 0.8,
            "{before:?} → {after:?}"
        );
        assert!(after.accuracy.unwrap() > 0.7, "{after:?}");
        assert_eq!((after.loss.mse, after.loss.rounding), (0.0, 0.0));
        // Without its vectors, with vectors of the wrong size, or given to a denoiser: refused.
        let err = |r: Result<VectorTrainer, TrainError>| r.err().unwrap().to_string();
        assert!(err(new(None, &model)).contains("word vectors"));
        let short = ClassifierData {
            embedding: &embedding[..10],
            ..data
        };
        assert!(err(new(Some(short), &model)).contains("12 × 8"));
        assert!(err(new(Some(data), &config())).contains("no classifier data"));
        let unknown = ClassifierData {
            train_labels: &[2; 32],
            ..data
        };
        assert!(err(new(Some(unknown), &model)).contains("attribute 2"));
    }
}
