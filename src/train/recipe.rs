//! The optimisation recipe every trainer shares — text DiT or image network — with the
//! references' config names (`kuleshov-group/mdlm` `configs/`: `optim.*`, `lr_scheduler.*`,
//! `training.ema`, `trainer.*`, `loader.*`): AdamW, linear warmup then cosine decay, global-norm
//! clipping and an EMA of the weights.

use serde::{Deserialize, Serialize};

use super::TrainError;

/// How a network is optimised, whatever it learns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Examples per step (`loader.global_batch_size`): windows of text, or images.
    pub batch_size: usize,
    /// Peak learning rate (`optim.lr`).
    pub lr: f64,
    /// Steps of linear warmup from 0 to `lr` (`lr_scheduler.num_warmup_steps`).
    pub warmup_steps: usize,
    /// Length of the run (`trainer.max_steps`); the cosine reaches its floor here.
    pub max_steps: usize,
    /// Floor of the cosine decay, as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// AdamW's decoupled weight decay (`optim.weight_decay`).
    pub weight_decay: f64,
    /// AdamW β₁ (`optim.beta1`).
    pub beta1: f64,
    /// AdamW β₂ (`optim.beta2`).
    pub beta2: f64,
    /// AdamW ε (`optim.eps`).
    pub eps: f64,
    /// Largest global gradient norm (`trainer.gradient_clip_val`); 0 turns clipping off.
    pub gradient_clip_val: f64,
    /// Decay of the weights' moving average (`training.ema`); 0 keeps no average.
    pub ema: f64,
    /// Steps between checkpoints.
    pub checkpoint_every: usize,
    /// Seed of the initial weights, the data order and the noise.
    pub seed: u64,
}

impl Default for Recipe {
    /// The references' optimiser settings (lr 3e-4, β = (0.9, 0.999), ε = 1e-8, no weight decay,
    /// clip 1.0, EMA 0.9999 — lower here for short runs).
    fn default() -> Self {
        Self {
            batch_size: 8,
            lr: 3e-4,
            warmup_steps: 100,
            max_steps: 1000,
            min_lr_ratio: 0.1,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            gradient_clip_val: 1.0,
            ema: 0.999,
            checkpoint_every: 100,
            seed: 0,
        }
    }
}

impl Recipe {
    /// The learning rate at `step`: linear warmup, then cosine decay to `min_lr_ratio · lr`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.max_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
    }

    /// A fresh AdamW with this recipe's β, ε and weight decay.
    pub fn optimizer(&self) -> super::adamw::AdamW {
        super::adamw::AdamW::new(self.beta1, self.beta2, self.eps, self.weight_decay)
    }

    /// Checks the values every run relies on.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.into()));
        if self.batch_size == 0 || self.max_steps == 0 || self.checkpoint_every == 0 {
            return bad("batch_size, max_steps and checkpoint_every must be positive");
        }
        let positive = |x: f64| x > 0.0 && x.is_finite();
        let not_negative = |x: f64| x >= 0.0 && x.is_finite();
        if !positive(self.lr) || !(0.0..1.0).contains(&self.ema) {
            return bad("lr must be positive and ema in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio)
            || !(0.0..1.0).contains(&self.beta1)
            || !(0.0..1.0).contains(&self.beta2)
            || !positive(self.eps)
            || !not_negative(self.weight_decay)
            || !not_negative(self.gradient_clip_val)
        {
            return bad(
                "min_lr_ratio must be in [0, 1], beta1 and beta2 in [0, 1), eps positive, weight_decay and gradient_clip_val not negative",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_linearly_then_decays_to_its_floor() {
        let r = Recipe {
            lr: 1.0,
            warmup_steps: 4,
            max_steps: 14,
            min_lr_ratio: 0.1,
            ..Recipe::default()
        };
        assert_eq!(r.lr_at(0), 0.25);
        assert_eq!(r.lr_at(3), 1.0);
        assert_eq!(r.lr_at(4), 1.0);
        assert!(
            (r.lr_at(9) - 0.55).abs() < 1e-12,
            "half way down the cosine"
        );
        assert!((r.lr_at(14) - 0.1).abs() < 1e-12);
        assert!(
            (r.lr_at(1000) - 0.1).abs() < 1e-12,
            "the floor holds after the end"
        );
    }

    #[test]
    fn impossible_recipes_are_refused() {
        assert!(Recipe::default().validate().is_ok());
        for broken in [
            Recipe {
                batch_size: 0,
                ..Recipe::default()
            },
            Recipe {
                lr: f64::NAN,
                ..Recipe::default()
            },
            Recipe {
                ema: 1.0,
                ..Recipe::default()
            },
            Recipe {
                beta2: 1.5,
                ..Recipe::default()
            },
            Recipe {
                checkpoint_every: 0,
                ..Recipe::default()
            },
        ] {
            assert!(broken.validate().is_err(), "{broken:?}");
        }
    }
}
