//! What every trainer holds alike: the network being trained (on the autodiff device), its
//! moving average and AdamW's state, and the update that moves all three. The trainers differ in
//! their data and loss only.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use safetensors::Dtype;

use super::checkpoint::OPTIMIZER_FILE;
use super::{Recipe, Start, TrainError, adamw, clip_global_norm, ema_update, renumber};
use crate::model::LoadError;

/// A network under training, its EMA and the optimiser.
pub struct Optimised<M> {
    /// The network, tracked by autodiff.
    pub model: M,
    /// Its moving average: what validation scores and an export writes.
    pub ema: M,
    optim: adamw::AdamW,
    device: Device,
}

impl<M: Module> Optimised<M> {
    /// A run's network and its EMA from `start` — the `fresh` checkpoint for both, or the saved
    /// ones — read by `load` on `device` with autodiff switched on, and `recipe`'s fresh
    /// optimiser (a resumed run then loads its state: [`Optimised::load_optimizer`]). Answers
    /// the steps already taken too.
    pub fn start(
        recipe: &Recipe,
        device: &Device,
        start: Start<'_>,
        fresh: impl FnOnce() -> Result<Vec<u8>, LoadError>,
        load: impl Fn(&[u8], &Device) -> Result<M, LoadError>,
    ) -> Result<(Self, usize), TrainError> {
        let initial;
        let (weights, ema, step) = match start {
            Start::Fresh => {
                initial = fresh()?;
                (&initial[..], &initial[..], 0)
            }
            Start::From { weights, ema, step } => (weights, ema, step),
        };
        let device = device.clone().autodiff();
        let plain = device.clone().inner();
        let net = Self {
            model: renumber(load(weights, &plain)?).train(),
            ema: renumber(load(ema, &plain)?),
            optim: recipe.optimizer(),
            device,
        };
        Ok((net, step))
    }

    /// The device the loss is computed on (autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same device without autodiff: where the EMA is scored.
    pub fn plain(&self) -> Device {
        self.device.clone().inner()
    }

    /// Update `step` (0-based) from `loss` of [`Optimised::model`]: the gradient, clipped to
    /// `recipe`'s norm, an AdamW step at the recipe's rate for `step`, then the EMA. Answers the
    /// gradient's norm before clipping.
    pub fn update(
        &mut self,
        loss: Tensor<1>,
        recipe: &Recipe,
        step: usize,
    ) -> Result<f64, TrainError> {
        let mut grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let grad_norm = clip_global_norm(&self.model, &mut grads, recipe.gradient_clip_val)?;
        self.model = self
            .optim
            .step(recipe.lr_at(step), self.model.clone(), &mut grads);
        self.ema = ema_update(self.ema.clone(), &self.model, recipe.ema, step);
        Ok(grad_norm)
    }

    /// The current weights and the EMA weights written by `save` in f32.
    pub fn weights(
        &self,
        save: impl Fn(&M, Dtype) -> Result<Vec<u8>, LoadError>,
    ) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
        Ok((
            save(&self.model.valid(), Dtype::F32)?,
            save(&self.ema, Dtype::F32)?,
        ))
    }

    /// The optimiser's state (safetensors bytes).
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>, TrainError> {
        self.optim
            .to_bytes()
            .map_err(|e| TrainError::Backend(format!("saving the optimizer state: {e}")))
    }

    /// Restores the optimiser's state from [`Optimised::optimizer_bytes`]; `remedy` says what to
    /// do when it is damaged.
    pub fn load_optimizer(&mut self, bytes: Vec<u8>, remedy: &str) -> Result<(), TrainError> {
        self.optim
            .load(&bytes, &self.plain())
            .map_err(|e| TrainError::File {
                path: OPTIMIZER_FILE.into(),
                message: format!("{e}; the run directory is damaged: {remedy}"),
            })
    }
}

/// A trainer whose network is an [`Optimised`]: what a run directory saves and restores, and what
/// an export writes, alike for every objective. A trainer names its network, how it is written,
/// and what to do when its saved optimiser state is damaged; the rest is here.
pub trait Checkpointed {
    /// The network trained.
    type Network: Module;
    /// What the reader should do when a run directory's optimiser state is damaged.
    const REMEDY: &'static str;

    /// The network, its average and its optimiser.
    fn optimised(&self) -> &Optimised<Self::Network>;

    /// The same, to restore.
    fn optimised_mut(&mut self) -> &mut Optimised<Self::Network>;

    /// `network` as `model.safetensors` bytes in `dtype`.
    fn save(network: &Self::Network, dtype: Dtype) -> Result<Vec<u8>, LoadError>;

    /// The current weights and the EMA weights (f32 safetensors).
    fn weights(&self) -> Result<(Vec<u8>, Vec<u8>), TrainError> {
        self.optimised().weights(Self::save)
    }

    /// The EMA weights as `model.safetensors` bytes in `dtype`: what an export writes.
    fn ema_weights(&self, dtype: Dtype) -> Result<Vec<u8>, TrainError> {
        Ok(Self::save(&self.optimised().ema, dtype)?)
    }

    /// The optimiser's state (safetensors bytes).
    fn optimizer_bytes(&self) -> Result<Vec<u8>, TrainError> {
        self.optimised().optimizer_bytes()
    }

    /// Restores the optimiser's state from [`Checkpointed::optimizer_bytes`].
    fn load_optimizer(&mut self, bytes: Vec<u8>) -> Result<(), TrainError> {
        self.optimised_mut().load_optimizer(bytes, Self::REMEDY)
    }
}
