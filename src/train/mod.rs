//! Training the DiT on our own corpus: `unmask train`.
//!
//! The model trained is the very [`Dit`] the samplers and the page run (no second definition), on
//! burn's autodiff over the CPU (`flex`) or wgpu backend. The loop follows the references'
//! Lightning recipe (`kuleshov-group/mdlm` and `bd3lms` `main.py`/`diffusion.py`, configs
//! `optim`, `lr_scheduler`, `training`, `trainer`): AdamW with linear warmup then cosine decay,
//! gradient clipping by the global norm, an exponential moving average (EMA) of the weights used
//! for validation and export, and validation of the NLL bound as a perplexity.
//!
//! A run lives in a directory (see [`checkpoint`]) and resumes from it exactly: the k-th batch
//! and its noise depend only on the seed and k ([`data::Order`], [`data::mix`]).

pub mod adamw;
pub mod checkpoint;
pub mod control;
pub mod data;
pub mod image_quality;
pub mod images;
pub mod objective;
pub mod optimised;
pub mod quality;
pub mod recipe;
pub mod unified;
pub mod vectors;

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::bundle::model_spec;
use crate::config::ModelConfig;
use crate::engine::Generation;
use crate::model::{Dit, DitDenoiser, LoadError, initial_checkpoint, load_dit};
use crate::rng::Rng;
use crate::sampler::Settings;
use crate::text::TextCodec;
use data::{Order, Windows, mix};
pub use objective::{Batch, Objective, Shape, TimeSampling};
pub use optimised::Checkpointed;
pub use recipe::Recipe;

/// Stream ids mixed into the seed, so the data order, the noise and the validation draw apart.
const DATA_STREAM: u64 = 1;
const NOISE_STREAM: u64 = 2;
const VALID_STREAM: u64 = 3;

/// A text run: what the DiT learns, the shared [`Recipe`], and how it is validated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// What the model learns.
    pub objective: Objective,
    /// Batch, optimiser, schedule, EMA, checkpoints and seed (flattened: `run.json` keeps the
    /// references' flat names).
    #[serde(flatten)]
    pub recipe: Recipe,
    /// How diffusion times are drawn for the training loss.
    pub time_sampling: TimeSampling,
    /// Steps between validations (`trainer.val_check_interval`).
    pub val_every: usize,
    /// Validation windows per validation during the run (the final one reads the whole split).
    pub val_windows: usize,
}

impl TrainConfig {
    /// A run of `objective` with the default [`Recipe`].
    pub fn new(objective: Objective) -> Self {
        Self {
            objective,
            recipe: Recipe::default(),
            time_sampling: TimeSampling::ELBO,
            val_every: 200,
            val_windows: 32,
        }
    }

    /// Checks the values a run relies on.
    pub fn validate(&self, model: &ModelConfig) -> Result<(), TrainError> {
        self.recipe.validate()?;
        let bad = |m: String| Err(TrainError::Config(m));
        if self.val_every == 0 {
            return bad("val_every must be positive".into());
        }
        let t = &self.time_sampling;
        if !(0.0 < t.sampling_eps_min
            && t.sampling_eps_min < t.sampling_eps_max
            && t.sampling_eps_max <= 1.0)
        {
            return bad(
                "the diffusion times need 0 < sampling_eps_min < sampling_eps_max <= 1".into(),
            );
        }
        if !(0.0..=1.0).contains(&t.forcing_sorted) {
            return bad(format!(
                "forcing_sorted = {} is a share of windows: it must lie in [0, 1]",
                t.forcing_sorted
            ));
        }
        if t.forcing_sorted > 0.0 && self.objective != Objective::Forcing {
            return bad(format!(
                "forcing_sorted orders diffusion forcing's per-token levels; the {} objective has none",
                self.objective.name()
            ));
        }
        if model.attention() != self.objective.attention() {
            return bad(format!(
                "the model config attends {} but the {} objective needs {}; set model_type/block_size/causal to match",
                model.attention().name(),
                self.objective.name(),
                self.objective.attention().name()
            ));
        }
        Ok(())
    }
}

/// What can go wrong training.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A recipe or model setting that cannot train.
    #[error("cannot train: {0}")]
    Config(String),
    /// Too little text.
    #[error(
        "the {split} split has {tokens} tokens, fewer than one window of {len}: use a shorter model_length or more text"
    )]
    TooLittleData {
        /// Which split.
        split: &'static str,
        /// Tokens it has.
        tokens: usize,
        /// Window length.
        len: usize,
    },
    /// Weights could not be built, read or written.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A file of the run directory.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The backend failed (a readback, a device lost).
    #[error("the backend failed during training: {0}")]
    Backend(String),
    /// Generating the validation samples failed.
    #[error("sampling from the model failed: {0}")]
    Sample(String),
}

/// What one optimisation step did.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    /// The step just taken (1-based count of steps done).
    pub step: usize,
    /// Training loss before the update.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens in the batch.
    pub tokens: usize,
}

/// A validation result: the NLL (bound) per token and its perplexity.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean negative log-likelihood (bound) per token, in nats.
    pub nll: f64,
    /// `exp(nll)`.
    pub perplexity: f64,
    /// Token positions scored.
    pub tokens: usize,
}

/// A training run in memory: the model, its EMA, the optimiser and the data.
pub struct Trainer {
    /// The recipe.
    pub config: TrainConfig,
    /// The architecture.
    pub model_config: ModelConfig,
    codec: TextCodec,
    net: optimised::Optimised<Dit>,
    step: usize,
    train: Windows,
    valid: Windows,
    order: Order,
}

/// The tokenized documents of a run.
#[derive(Clone, Copy, Debug)]
pub struct Documents<'a> {
    /// Training documents.
    pub train: &'a [Vec<u32>],
    /// Validation documents.
    pub valid: &'a [Vec<u32>],
}

/// Where a run's weights come from.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// The reference's initial weights for the architecture, seeded by the recipe.
    Fresh,
    /// Saved weights (safetensors bytes), `step` steps into the run.
    From {
        /// Current weights.
        weights: &'a [u8],
        /// Their moving average.
        ema: &'a [u8],
        /// Steps already taken.
        step: usize,
    },
}

impl Trainer {
    /// A run of `config` on `model_config` over `documents`, on `device` (autodiff is switched on
    /// here), from fresh or saved weights. A resumed run also loads its optimiser state
    /// ([`Checkpointed::load_optimizer`]).
    pub fn new(
        config: TrainConfig,
        model_config: ModelConfig,
        codec: TextCodec,
        documents: Documents<'_>,
        device: &Device,
        start: Start<'_>,
    ) -> Result<Self, TrainError> {
        config.validate(&model_config)?;
        let (len, special) = (model_config.model_length, (codec.bos_id(), codec.eos_id()));
        let train = Windows::of_split(documents.train, special, len, "train")?;
        let valid = Windows::of_split(documents.valid, special, len, "validation")?;
        let (net, step) = optimised::Optimised::start(
            &config.recipe,
            device,
            start,
            || initial_checkpoint(&model_config, config.recipe.seed),
            |bytes, d| Ok(load_dit(&model_config, bytes, d)?.thaw_conditioning()),
        )?;
        let order = Order::new(mix(config.recipe.seed, DATA_STREAM), train.count());
        Ok(Self {
            config,
            model_config,
            codec,
            net,
            step,
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

    /// Training windows and validation windows.
    pub fn window_counts(&self) -> (usize, usize) {
        (self.train.count(), self.valid.count())
    }

    /// Tokens per step.
    pub fn tokens_per_step(&self) -> usize {
        self.config.recipe.batch_size * self.model_config.model_length
    }

    /// The tokenizer.
    pub fn codec(&self) -> &TextCodec {
        &self.codec
    }

    /// One optimisation step on the next batch.
    pub fn train_step(&mut self) -> Result<StepReport, TrainError> {
        let lr = self.config.recipe.lr_at(self.step);
        let b = self.config.recipe.batch_size;
        let indices: Vec<usize> = (0..b).map(|i| self.order.nth(self.step * b + i)).collect();
        let batch = self.train.batch(&indices);
        let mut rng = Rng::new(mix(
            mix(self.config.recipe.seed, NOISE_STREAM),
            self.step as u64,
        ));
        let loss = objective::loss(
            &self.net.model,
            self.config.objective,
            &batch,
            &self.config.time_sampling,
            self.codec.mask_id(),
            &mut rng,
            self.net.device(),
        );
        let loss_value = scalar(loss.clone())?;
        let grad_norm = self.net.update(loss, &self.config.recipe, self.step)?;
        self.step += 1;
        Ok(StepReport {
            step: self.step,
            loss: loss_value,
            lr,
            grad_norm,
            tokens: batch.tokens.len(),
        })
    }

    /// The NLL (bound) per token of the EMA weights on the first `windows` validation windows
    /// (all of them when `None`), with a fixed draw of the noise so evaluations compare.
    pub fn evaluate(&self, windows: Option<usize>) -> Result<Evaluation, TrainError> {
        let count = windows.unwrap_or(usize::MAX).min(self.valid.count());
        let plain = self.net.plain();
        let b = self.config.recipe.batch_size;
        let (mut total, mut tokens) = (0.0, 0usize);
        let mut rng = Rng::new(mix(self.config.recipe.seed, VALID_STREAM));
        for start in (0..count).step_by(b) {
            let indices: Vec<usize> = (start..(start + b).min(count)).collect();
            let batch = self.valid.batch(&indices);
            let loss = objective::loss(
                &self.net.ema,
                self.config.objective,
                &batch,
                &TimeSampling::ELBO,
                self.codec.mask_id(),
                &mut rng,
                &plain,
            );
            let scored = match self.config.objective {
                Objective::Ar => batch.batch * (batch.len - 1),
                _ => batch.tokens.len(),
            };
            total += scalar(loss)? * scored as f64;
            tokens += scored;
        }
        let nll = total / tokens.max(1) as f64;
        Ok(Evaluation {
            nll,
            perplexity: nll.exp(),
            tokens,
        })
    }

    /// A sample from the EMA weights: `gen_length` tokens after `prompt`, with the objective's
    /// own sampler at its paper defaults.
    pub fn sample(&self, prompt: &str, gen_length: usize, seed: u64) -> Result<String, TrainError> {
        let sampler = self.config.objective.sampler();
        let mut settings = Settings::for_tokens(sampler, gen_length);
        settings.draw_mut().seed = seed;
        let spec = model_spec(&self.model_config, &self.codec);
        let plain = self.net.plain();
        let dit = self.net.ema.clone().freeze_conditioning();
        let mut model = DitDenoiser::new(dit, plain, spec.clone());
        let mut run = Generation::new(settings, prompt, &self.codec, &spec)
            .map_err(|e| TrainError::Sample(e.to_string()))?;
        run.show_candidates(false);
        pollster::block_on(run.run(&mut model, |_| {}))
            .map_err(|e| TrainError::Sample(e.to_string()))?;
        Ok(self.codec.decode(run.sampler().canvas().tokens()))
    }
}

impl Checkpointed for Trainer {
    type Network = Dit;
    const REMEDY: &'static str = "start a new one or --warm-start";

    fn optimised(&self) -> &optimised::Optimised<Dit> {
        &self.net
    }

    fn optimised_mut(&mut self) -> &mut optimised::Optimised<Dit> {
        &mut self.net
    }

    fn save(network: &Dit, dtype: safetensors::Dtype) -> Result<Vec<u8>, crate::model::LoadError> {
        crate::model::save::save_dit(network, dtype)
    }
}

/// The moving average after update `step` (0-based) of `model`: `decay` 0 keeps no average; the
/// decay warms up (as `torch_ema` with `use_num_updates`) so that a short run's early weights do
/// not dominate it.
pub(crate) fn ema_update<M: Module>(ema: M, model: &M, decay: f64, step: usize) -> M {
    let current = model.valid();
    if decay == 0.0 {
        return current;
    }
    let n = step as f64 + 1.0;
    let decay = decay.min((1.0 + n) / (10.0 + n));
    let mut values = Collect::default();
    current.visit(&mut values);
    ema.map(&mut Blend {
        values: values.0,
        decay,
    })
}

/// Reads a one-element tensor.
pub(crate) fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    t.try_into_scalar::<f32>()
        .map(f64::from)
        .map_err(|e| TrainError::Backend(format!("{e:?}")))
}

/// The value of a count computed on the device (a classifier's right answers).
pub(crate) fn count(t: Tensor<1, Int>) -> Result<i64, TrainError> {
    t.try_into_scalar::<i64>()
        .map_err(|e| TrainError::Backend(format!("{e:?}")))
}

/// Gives the parameters the ids 0, 1, 2, … in visiting order, so that a model rebuilt from a
/// checkpoint has the ids its optimiser state and its EMA twin were saved under.
pub(crate) fn renumber<M: Module>(module: M) -> M {
    struct Renumber(u64);
    impl ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, value, mapper) = param.consume();
            self.0 += 1;
            Param::from_mapped_value(ParamId::from(self.0), value, mapper)
        }
    }
    module.map(&mut Renumber(0))
}

/// Scales all gradients by `min(1, max_norm / ‖g‖)`, ‖g‖ the norm over every parameter at once
/// (PyTorch's `clip_grad_norm_`, which Lightning's `gradient_clip_val` calls); returns ‖g‖.
pub(crate) fn clip_global_norm<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Result<f64, TrainError> {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut norm = SquaredNorm { grads, total: None };
    model.visit(&mut norm);
    let norm = match norm.total {
        Some(t) => scalar(t)?.sqrt(),
        None => 0.0,
    };
    if max_norm > 0.0 && norm > max_norm {
        model.visit(&mut Scale {
            grads,
            factor: max_norm / (norm + 1e-6),
        });
    }
    Ok(norm)
}

/// Collects every parameter's value, flattened, by id.
#[derive(Default)]
struct Collect(HashMap<ParamId, Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.0.insert(param.id, value.reshape([n]));
    }
}

/// `ema ← decay · ema + (1 − decay) · value`, parameter by parameter.
struct Blend {
    values: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(value) = self.values.remove(&param.id) else {
            return param;
        };
        let decay = self.decay;
        param.map(|ema| {
            let dims = ema.dims();
            ema.mul_scalar(decay) + value.reshape(dims).mul_scalar(1.0 - decay)
        })
    }
}
