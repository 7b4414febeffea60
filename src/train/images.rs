//! Training the Gaussian diffusion family's networks on the digits: `unmask train --objective
//! ddpm` (the noise predictor) or `--objective classifier` (the noisy classifier of guidance).
//!
//! - The noise predictor learns DDPM's L_simple = E_{t, x₀, ε} ‖ε − ε_θ(√ᾱ_t x₀ + √(1 − ᾱ_t) ε,
//!   t, y)‖² (Ho et al. 2020, arXiv:2006.11239, Algorithm 1, t uniform over 0..T), with the label
//!   replaced by the null class with probability `label_dropout` so that one network is both
//!   ε_θ(x_t, y) and ε_θ(x_t, ∅) — classifier-free guidance's training (Ho & Salimans 2022,
//!   arXiv:2207.12598, Algorithm 1; `p_uncond` 0.1–0.2 there).
//! - The noisy classifier learns the cross-entropy of the digit's class at the same noised x_t
//!   (Dhariwal & Nichol 2021, arXiv:2105.05233, §4.1; `openai/guided-diffusion`
//!   `scripts/classifier_train.py`, which draws t uniformly too).
//!
//! Everything else is the text trainer's machinery, not a copy of it: the [`Recipe`], AdamW
//! ([`super::adamw`]), the global-norm clip, the EMA, the data order and the seeded noise streams
//! ([`super::data`]), and the atomic run directory ([`super::checkpoint`]). A run resumes exactly:
//! the k-th batch and its noise depend only on the seed and k.

use super::Checkpointed;
use std::path::Path;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::checkpoint::{
    RunRecord, dtype_name, load_run, read_run_state, save_run, write_model_folder,
};
use super::data::{Order, mix};
use super::optimised::Optimised;
use super::{Recipe, Start, TrainError, count, scalar};
use crate::corpus::digits::Digit;
use crate::model::patch_dit::{PatchDit, PatchDitConfig, Role, initial_patch_dit, load_patch_dit};
use crate::model::save::save_patch_dit;
use crate::rng::Rng;
use crate::sampler::gaussian::Schedule;

/// Stream ids mixed into the seed (as the text trainer's): data order, noise, validation draw.
const DATA_STREAM: u64 = 1;
const NOISE_STREAM: u64 = 2;
const VALID_STREAM: u64 = 3;

/// `run.json`'s format tag for an image run.
pub const IMAGE_RUN_FORMAT: &str = "unmask-train-images-run";
/// Its version.
pub const IMAGE_RUN_VERSION: u32 = 1;
/// The label-dropout rate of classifier-free guidance's training when none is given.
pub const DEFAULT_LABEL_DROPOUT: f64 = 0.1;

/// What an image network learns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ImageObjective {
    /// DDPM's L_simple, with label dropout for classifier-free guidance.
    Ddpm {
        /// Probability of training a step's image on the null class (`p_uncond`); 0 with an
        /// unconditional model.
        label_dropout: f64,
    },
    /// The noisy classifier's cross-entropy.
    Classifier,
}

impl ImageObjective {
    /// Its name, as `--objective` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ImageObjective::Ddpm { .. } => "ddpm",
            ImageObjective::Classifier => "classifier",
        }
    }

    /// The network role it trains.
    pub fn role(self) -> Role {
        match self {
            ImageObjective::Ddpm { .. } => Role::Denoiser,
            ImageObjective::Classifier => Role::Classifier,
        }
    }
}

/// An image run: the objective, the shared [`Recipe`] and how often to validate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageTrainConfig {
    /// What the network learns.
    pub objective: ImageObjective,
    /// Batch, optimiser, schedule, EMA, checkpoints and seed.
    #[serde(flatten)]
    pub recipe: Recipe,
    /// Steps between validations.
    pub val_every: usize,
}

impl ImageTrainConfig {
    /// Checks the recipe and that it fits `model`.
    pub fn validate(&self, model: &PatchDitConfig) -> Result<(), TrainError> {
        self.recipe.validate()?;
        let bad = |m: String| Err(TrainError::Config(m));
        if self.val_every == 0 {
            return bad("val_every must be positive".into());
        }
        if self.objective.role() != model.role {
            return bad(format!(
                "the {} objective trains a {:?} but the model config is a {:?}",
                self.objective.name(),
                self.objective.role(),
                model.role
            ));
        }
        if let ImageObjective::Ddpm { label_dropout } = self.objective
            && !(0.0..=1.0).contains(&label_dropout)
        {
            return bad(format!("label_dropout {label_dropout} must be in [0, 1]"));
        }
        Ok(())
    }
}

/// A validation of the EMA weights over the whole validation split, with one fixed draw of times
/// and noise so that evaluations compare.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageEvaluation {
    /// Mean loss: ε-MSE per pixel, or cross-entropy in nats per image.
    pub loss: f64,
    /// The classifier's accuracy on the noised images (classifier runs only).
    pub accuracy: Option<f64>,
    /// Images scored.
    pub images: usize,
}

/// What one optimisation step did.
#[derive(Clone, Copy, Debug)]
pub struct ImageStepReport {
    /// Steps done, this one included.
    pub step: usize,
    /// Training loss before the update.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Images in the batch.
    pub images: usize,
}

/// A batch of noised digits: what the network sees and what it must say.
struct NoisedBatch {
    /// x_t, `[B · pixels]`.
    x_t: Vec<f32>,
    /// The time of each image.
    t: Vec<f32>,
    /// ε drawn for each pixel.
    eps: Vec<f32>,
    /// The digit's class, or the null class where it was dropped.
    labels: Vec<i64>,
}

/// Noises `digits` at uniform times with fresh ε from `rng`; with `dropout` > 0, labels become
/// `null` with that probability.
fn noise(
    digits: &[&Digit],
    schedule: &Schedule,
    dropout: f64,
    null: i64,
    rng: &mut Rng,
) -> NoisedBatch {
    let mut batch = NoisedBatch {
        x_t: Vec::new(),
        t: Vec::new(),
        eps: Vec::new(),
        labels: Vec::new(),
    };
    for digit in digits {
        let t = rng.below(schedule.steps());
        let x0: Vec<f64> = digit.scaled().iter().map(|&v| f64::from(v)).collect();
        let eps: Vec<f64> = x0
            .iter()
            .map(|_| crate::sampler::image::normal(rng))
            .collect();
        let x_t = schedule.q_sample(&x0, &eps, t);
        batch.x_t.extend(x_t.iter().map(|&v| v as f32));
        batch.eps.extend(eps.iter().map(|&v| v as f32));
        batch.t.push(t as f32);
        let dropped = dropout > 0.0 && rng.uniform() < dropout;
        batch.labels.push(if dropped {
            null
        } else {
            i64::from(digit.label)
        });
    }
    batch
}

/// The loss of `net` on a noised batch, `[1]`, differentiable when `net` is on an autodiff
/// device; also the number of correct classifications for a classifier.
fn loss(
    net: &PatchDit,
    config: &PatchDitConfig,
    batch: &NoisedBatch,
    device: &Device,
) -> (Tensor<1>, Option<Tensor<1, Int>>) {
    let b = batch.t.len();
    let pixels = config.pixels();
    let x_t = Tensor::<2>::from_data(TensorData::new(batch.x_t.clone(), [b, pixels]), device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(batch.labels.clone(), [b]), device);
    match config.role {
        Role::Denoiser => {
            let eps =
                Tensor::<2>::from_data(TensorData::new(batch.eps.clone(), [b, pixels]), device);
            let predicted = net.forward(x_t, &batch.t, config.conditional().then_some(labels));
            ((predicted - eps).powi_scalar(2).mean(), None)
        }
        Role::Classifier => {
            let logits = net.forward(x_t, &batch.t, None);
            let correct = logits
                .clone()
                .argmax(1)
                .reshape([b])
                .equal(labels.clone())
                .int()
                .sum();
            let picked = log_softmax(logits, 1).gather(1, labels.reshape([b, 1]));
            (picked.mean().neg(), Some(correct))
        }
    }
}

/// An image run in memory: the network, its EMA, the optimiser and the digits.
pub struct ImageTrainer {
    /// The recipe.
    pub config: ImageTrainConfig,
    /// The architecture.
    pub model_config: PatchDitConfig,
    net: Optimised<PatchDit>,
    step: usize,
    schedule: Schedule,
    train: Vec<Digit>,
    valid: Vec<Digit>,
    order: Order,
}

impl ImageTrainer {
    /// A run of `config` on `model_config` over the `train` digits (validated on `valid`), on
    /// `device` (autodiff is switched on here).
    pub fn new(
        config: ImageTrainConfig,
        model_config: PatchDitConfig,
        train: Vec<Digit>,
        valid: Vec<Digit>,
        device: &Device,
        start: Start<'_>,
    ) -> Result<Self, TrainError> {
        config.validate(&model_config)?;
        for (split, digits) in [("train", &train), ("validation", &valid)] {
            if digits.is_empty() {
                return Err(TrainError::Config(format!(
                    "the {split} split has no digits"
                )));
            }
        }
        if model_config.pixels() != crate::corpus::digits::PIXELS {
            return Err(TrainError::Config(format!(
                "the digits are {side}×{side} but image_size is {}",
                model_config.image_size,
                side = crate::corpus::digits::SIDE
            )));
        }
        if let Some(d) = train
            .iter()
            .chain(&valid)
            .find(|d| usize::from(d.label) >= model_config.classes.max(1))
        {
            return Err(TrainError::Config(format!(
                "a digit of class {} but the model has {} classes",
                d.label, model_config.classes
            )));
        }
        let schedule = Schedule::new(model_config.beta_schedule, model_config.diffusion_steps)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let (net, step) = Optimised::start(
            &config.recipe,
            device,
            start,
            || initial_patch_dit(&model_config, config.recipe.seed),
            |bytes, d| load_patch_dit(&model_config, bytes, d),
        )?;
        let order = Order::new(mix(config.recipe.seed, DATA_STREAM), train.len());
        Ok(Self {
            config,
            model_config,
            net,
            step,
            schedule,
            train,
            valid,
            order,
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

    /// Training and validation images.
    pub fn image_counts(&self) -> (usize, usize) {
        (self.train.len(), self.valid.len())
    }

    /// The label dropped to in classifier-free training.
    fn null_label(&self) -> i64 {
        self.model_config.null_class() as i64
    }

    fn dropout(&self) -> f64 {
        match self.config.objective {
            ImageObjective::Ddpm { label_dropout } if self.model_config.conditional() => {
                label_dropout
            }
            _ => 0.0,
        }
    }

    /// One optimisation step on the next batch.
    pub fn train_step(&mut self) -> Result<ImageStepReport, TrainError> {
        let r = &self.config.recipe;
        let lr = r.lr_at(self.step);
        let b = r.batch_size;
        let mut rng = Rng::new(mix(mix(r.seed, NOISE_STREAM), self.step as u64));
        let digits: Vec<&Digit> = (0..b)
            .map(|i| &self.train[self.order.nth(self.step * b + i)])
            .collect();
        let batch = noise(
            &digits,
            &self.schedule,
            self.dropout(),
            self.null_label(),
            &mut rng,
        );
        let (loss, _) = loss(
            &self.net.model,
            &self.model_config,
            &batch,
            self.net.device(),
        );
        let loss_value = scalar(loss.clone())?;
        let grad_norm = self.net.update(loss, r, self.step)?;
        self.step += 1;
        Ok(ImageStepReport {
            step: self.step,
            loss: loss_value,
            lr,
            grad_norm,
            images: b,
        })
    }

    /// The EMA weights' loss (and a classifier's accuracy) over the whole validation split, at
    /// times and noise drawn once from the seed. Labels are never dropped here: the conditional
    /// prediction is what is scored.
    pub fn evaluate(&self) -> Result<ImageEvaluation, TrainError> {
        let plain = self.net.plain();
        let mut rng = Rng::new(mix(self.config.recipe.seed, VALID_STREAM));
        let (mut total, mut correct) = (0.0, 0i64);
        for chunk in self.valid.chunks(self.config.recipe.batch_size) {
            let digits: Vec<&Digit> = chunk.iter().collect();
            let batch = noise(&digits, &self.schedule, 0.0, self.null_label(), &mut rng);
            let (loss, right) = loss(&self.net.ema, &self.model_config, &batch, &plain);
            total += scalar(loss)? * chunk.len() as f64;
            if let Some(right) = right {
                correct += count(right)?;
            }
        }
        let images = self.valid.len();
        Ok(ImageEvaluation {
            loss: total / images as f64,
            accuracy: (self.model_config.role == Role::Classifier)
                .then(|| correct as f64 / images as f64),
            images,
        })
    }
}

impl Checkpointed for ImageTrainer {
    type Network = PatchDit;
    const REMEDY: &'static str = "start a new one";

    fn optimised(&self) -> &Optimised<PatchDit> {
        &self.net
    }

    fn optimised_mut(&mut self) -> &mut Optimised<PatchDit> {
        &mut self.net
    }

    fn save(
        network: &PatchDit,
        dtype: safetensors::Dtype,
    ) -> Result<Vec<u8>, crate::model::LoadError> {
        save_patch_dit(network, dtype)
    }
}

/// One point of an image run's history, logged at each validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageHistoryEntry {
    /// Steps done.
    pub step: usize,
    /// Mean training loss since the previous entry.
    pub train_loss: f64,
    /// Learning rate at this step.
    pub lr: f64,
    /// Training images seen so far.
    pub images_seen: u64,
    /// Training throughput since the previous entry.
    pub images_per_second: f64,
    /// Validation of the EMA weights.
    pub valid: ImageEvaluation,
}

/// Everything about an image run but its tensors (`run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRunState {
    /// [`IMAGE_RUN_FORMAT`].
    pub format: String,
    /// [`IMAGE_RUN_VERSION`].
    pub version: u32,
    /// The recipe.
    pub train: ImageTrainConfig,
    /// The architecture (written as the exported `config.json`).
    pub model: PatchDitConfig,
    /// Steps done.
    pub step: usize,
    /// Training images seen.
    pub images_seen: u64,
    /// Seconds spent training, over all sessions.
    pub train_seconds: f64,
    /// The backend(s) it ran on, with their throughput.
    pub backends: Vec<String>,
    /// Validation history.
    pub history: Vec<ImageHistoryEntry>,
    /// Every command line that worked on this run, in order.
    pub commands: Vec<String>,
    /// The prepared digits it reads, with the manifest's checksum of the training split.
    pub data: String,
}

/// A saved run's current weights, their EMA and the optimiser state (safetensors bytes).
pub type SavedTensors = [Vec<u8>; 3];

impl RunRecord for ImageRunState {
    const FORMAT: &'static str = IMAGE_RUN_FORMAT;
    const VERSION: u32 = IMAGE_RUN_VERSION;
    const MADE_BY: &'static str = "--objective ddpm or classifier";
    fn declared(&self) -> (&str, u32) {
        (&self.format, self.version)
    }
}

/// `run.json` of the image run in `dir`, when there is one.
pub fn image_run_state(dir: &Path) -> Result<Option<ImageRunState>, TrainError> {
    read_run_state(dir)
}

/// The saved state of an image run in `dir`, when there is one: `run.json`, the weights, their
/// EMA and the optimiser state.
pub fn load_image_run(dir: &Path) -> Result<Option<(ImageRunState, SavedTensors)>, TrainError> {
    Ok(load_run(dir, false)?.map(|run| (run.state, run.tensors)))
}

/// Saves the trainer and `state` (whose step must be the trainer's) to `dir`, `run.json` last.
pub fn save_image_run(
    dir: &Path,
    trainer: &ImageTrainer,
    state: &ImageRunState,
) -> Result<(), TrainError> {
    save_run(
        dir,
        trainer.weights()?,
        &trainer.optimizer_bytes()?,
        None,
        state,
    )
}

/// What an exported image-model folder records about its making (`training.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageProvenance {
    /// The run's state at export.
    pub run: ImageRunState,
    /// The validation of the exported (EMA) weights.
    pub final_validation: ImageEvaluation,
    /// How the weights are stored.
    pub dtype: String,
}

/// Writes the EMA weights as a model folder: `config.json` (with `classifier` set when given),
/// `model.safetensors` in `dtype`, and `training.json`.
pub fn export_image_model(
    out: &Path,
    trainer: &ImageTrainer,
    state: &ImageRunState,
    dtype: safetensors::Dtype,
    final_validation: ImageEvaluation,
) -> Result<(), TrainError> {
    let provenance = ImageProvenance {
        run: state.clone(),
        final_validation,
        dtype: dtype_name(dtype),
    };
    let weights = trainer.ema_weights(dtype)?;
    write_model_folder(out, &state.model, &weights, None, &provenance)
}
