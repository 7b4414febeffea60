//! Gaussian diffusion's reverse chain on images, step by step: DDPM's ancestral sampler
//! ([`super::ddpm`]) or DDIM ([`super::ddim`]), with the guidance of either paper that steers it
//! to a class — classifier guidance (Dhariwal & Nichol, arXiv:2105.05233, Algorithm 1 for the
//! ancestral mean shift μ + s·Σ·∇ₓ log p_φ(y | x_t), Algorithm 2 for DDIM's ε − √(1 − ᾱ_t)·s·∇ₓ;
//! `openai/guided-diffusion` `condition_mean`, `condition_score`) or classifier-free guidance
//! (Ho & Salimans, arXiv:2207.12598, eq. 6: ε̃ = (1 + w)·ε_θ(x_t, y) − w·ε_θ(x_t, ∅)).
//!
//! Like the text samplers, a run is a state machine: each [`ImageRun::step`] makes one call of
//! the noise predictor (the conditional and the unconditional halves of classifier-free guidance
//! go in one batch) and at most one of the classifier, and returns an [`ImageStep`] with x_t and
//! x̂₀ of every image. Every random number comes from the seeded generator on the CPU, in f64.

use serde::{Deserialize, Serialize};

pub use super::image_knobs::{DEFAULT_DDIM_STEPS, ImageSampler};

use super::gaussian::{Schedule, Variance};
use super::{SampleError, SettingsError};
use crate::network::{ImageSpec, NoisePredictor, NoisyClassifier};
use crate::rng::Rng;

/// Largest guidance scale accepted (guided-diffusion publishes 0.5–10).
pub const MAX_GUIDANCE_SCALE: f64 = 100.0;
/// Most images sampled at once.
pub const MAX_IMAGES: usize = 4096;

/// How a run is steered to its class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Guidance {
    /// The network's own conditional (or unconditional) prediction.
    None,
    /// Classifier guidance at `scale` s, on the unconditional network.
    Classifier {
        /// s.
        #[serde(with = "crate::float_json")]
        scale: f64,
    },
    /// Classifier-free guidance at `scale` w (0 is the conditional model alone).
    Free {
        /// w.
        #[serde(with = "crate::float_json")]
        scale: f64,
    },
}

/// What every image sampler shares: what to draw and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The class to draw (`None`: any, from the unconditional model).
    pub class: Option<usize>,
    /// How the class is imposed.
    pub guidance: Guidance,
    /// Images drawn together.
    pub count: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for Condition {
    fn default() -> Self {
        Condition {
            class: None,
            guidance: Guidance::None,
            count: 1,
            seed: 0,
        }
    }
}

/// The reverse chain and its knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sampler", rename_all = "lowercase")]
pub enum ImageSettings {
    /// DDPM's ancestral sampler over all T steps.
    Ddpm {
        /// σ_t² of each step.
        variance: Variance,
        /// Class, guidance, count, seed.
        condition: Condition,
    },
    /// DDIM over `steps` of the T times.
    Ddim {
        /// Steps, evenly spaced from T − 1 to 0.
        steps: usize,
        /// η: 0 deterministic, 1 DDPM's posterior variance.
        #[serde(with = "crate::float_json")]
        eta: f64,
        /// Class, guidance, count, seed.
        condition: Condition,
    },
}

impl ImageSettings {
    /// The shared section.
    pub fn condition(&self) -> &Condition {
        match self {
            ImageSettings::Ddpm { condition, .. } | ImageSettings::Ddim { condition, .. } => {
                condition
            }
        }
    }

    /// The shared section, to change.
    pub fn condition_mut(&mut self) -> &mut Condition {
        match self {
            ImageSettings::Ddpm { condition, .. } | ImageSettings::Ddim { condition, .. } => {
                condition
            }
        }
    }

    /// The sampler's name.
    pub fn name(&self) -> &'static str {
        match self {
            ImageSettings::Ddpm { .. } => "ddpm",
            ImageSettings::Ddim { .. } => "ddim",
        }
    }
}

/// One step of an image run: the images after it and what the network saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageStep {
    /// 0-based step number.
    pub index: usize,
    /// Noise-predictor calls so far, this step's included.
    pub model_calls: usize,
    /// The time denoised from, 0..T.
    pub t: usize,
    /// √(1 − ᾱ_t): the noise's share of x_t.
    #[serde(with = "crate::float_json")]
    pub noise_level: f64,
    /// The images after this step (x at the next time; the samples after the last step),
    /// `[count · pixels]`.
    #[serde(with = "crate::float_json::f32s")]
    pub x: Vec<f32>,
    /// x̂₀ predicted at this step, `[count · pixels]`.
    #[serde(with = "crate::float_json::f32s")]
    pub x0: Vec<f32>,
    /// p_φ(y | x_t) of the target class for each image, when a classifier is at hand.
    #[serde(with = "crate::float_json::option_f64s", default)]
    pub class_prob: Option<Vec<f64>>,
}

/// A standard normal draw (Box–Muller, the cosine branch) from the seeded generator.
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    (-2.0 * rng.uniform().ln()).sqrt() * (std::f64::consts::TAU * rng.uniform()).cos()
}

/// An image run in progress.
#[derive(Clone, Debug)]
pub struct ImageRun {
    settings: ImageSettings,
    schedule: Schedule,
    /// The times to denoise from, in order.
    times: Vec<usize>,
    /// The next entry of `times`.
    at: usize,
    /// The images now, `[count · pixels]`.
    x: Vec<f64>,
    pixels: usize,
    rng: Rng,
    model_calls: usize,
}

impl ImageRun {
    /// Checks `settings` against the network (and the classes of the classifier at hand, if
    /// any) and draws x_T ~ N(0, I).
    pub fn new(
        settings: &ImageSettings,
        spec: &ImageSpec,
        classifier_classes: Option<usize>,
    ) -> Result<Self, SettingsError> {
        // Every range of the knob table (NaN and infinities included); then what the model decides.
        settings.validate()?;
        let c = settings.condition();
        let range =
            |field: &'static str, value: String, expected: String| SettingsError::ImageKnob {
                field,
                value,
                expected,
            };
        if !matches!(c.guidance, Guidance::None) && c.class.is_none() {
            return Err(SettingsError::GuidanceNeedsClass);
        }
        // Classifier guidance steers the unconditional prediction: the class is the
        // classifier's. Elsewhere it is the network's own.
        let classes = match c.guidance {
            Guidance::Classifier { .. } => classifier_classes.ok_or(SettingsError::NoClassifier)?,
            Guidance::Free { .. } if spec.classes == 0 => {
                return Err(SettingsError::UnconditionalModel);
            }
            _ => spec.classes,
        };
        if let Some(y) = c.class
            && y >= classes
        {
            return Err(SettingsError::NoSuchClass { class: y, classes });
        }
        let schedule = Schedule::new(spec.beta_schedule, spec.diffusion_steps)
            .map_err(|e| range("diffusion_steps", e.0.to_string(), e.to_string()))?;
        let times = match settings {
            ImageSettings::Ddpm { .. } => (0..schedule.steps()).rev().collect(),
            ImageSettings::Ddim { steps, .. } => {
                if !(1..=schedule.steps()).contains(steps) {
                    return Err(range(
                        "steps",
                        steps.to_string(),
                        format!("1 to {} (the model's diffusion steps)", schedule.steps()),
                    ));
                }
                schedule.respaced(*steps)
            }
        };
        let mut rng = Rng::new(c.seed);
        let pixels = spec.pixels();
        let x = (0..c.count * pixels).map(|_| normal(&mut rng)).collect();
        Ok(ImageRun {
            settings: settings.clone(),
            schedule,
            times,
            at: 0,
            x,
            pixels,
            rng,
            model_calls: 0,
        })
    }

    /// The images now, `[count · pixels]`.
    pub fn images(&self) -> &[f64] {
        &self.x
    }

    /// Steps this run takes.
    pub fn total_steps(&self) -> usize {
        self.times.len()
    }

    /// Noise-predictor calls so far.
    pub fn model_calls(&self) -> usize {
        self.model_calls
    }

    /// The settings.
    pub fn settings(&self) -> &ImageSettings {
        &self.settings
    }

    /// One reverse step: a call of the noise predictor (and of the classifier, when there is
    /// one and a class); `None` once x₀ is reached.
    pub async fn step<N: NoisePredictor, C: NoisyClassifier>(
        &mut self,
        net: &mut N,
        classifier: Option<&mut C>,
    ) -> Result<Option<ImageStep>, SampleError> {
        let Some(&t) = self.times.get(self.at) else {
            return Ok(None);
        };
        let prev = self.times.get(self.at + 1).copied();
        let c = self.settings.condition().clone();
        let x32: Vec<f32> = self.x.iter().map(|&v| v as f32).collect();
        let mut eps = self.noise(net, &x32, t, &c).await?;
        // The classifier's ∇ₓ log p(y | x_t) and p(y | x_t), where it reads this run.
        let mut gradient = None;
        let mut class_prob = None;
        if let (Some(classifier), Some(y)) = (classifier, c.class) {
            let labels = vec![y; c.count];
            let (g, p) = classifier.log_prob_gradient(&x32, t, &labels).await?;
            class_prob = Some(p);
            if let Guidance::Classifier { scale } = c.guidance {
                gradient = Some(
                    g.iter()
                        .map(|&g| scale * f64::from(g))
                        .collect::<Vec<f64>>(),
                );
            }
        }
        let s = &self.schedule;
        let next = match &self.settings {
            ImageSettings::Ddpm { variance, .. } => {
                let x0 = s.predict_x0(&self.x, &eps, t);
                let (mut mean, var) = super::ddpm::reverse_mean(s, &self.x, &x0, t, *variance);
                if let Some(g) = &gradient {
                    mean.iter_mut().zip(g).for_each(|(m, g)| *m += var * g);
                }
                let sd = var.sqrt();
                let next = mean
                    .iter()
                    .map(|m| m + sd * normal(&mut self.rng))
                    .collect();
                (next, x0)
            }
            ImageSettings::Ddim { eta, .. } => {
                if let Some(g) = &gradient {
                    let shift = (1.0 - s.alpha_bar(Some(t))).sqrt();
                    eps.iter_mut().zip(g).for_each(|(e, g)| *e -= shift * g);
                }
                let x0 = s.predict_x0(&self.x, &eps, t);
                let (mean, sigma) = super::ddim::step(s, &self.x, &x0, t, prev, *eta);
                let next = mean
                    .iter()
                    .map(|m| m + sigma * normal(&mut self.rng))
                    .collect();
                (next, x0)
            }
        };
        let (next, x0) = next;
        self.x = next;
        let index = self.at;
        self.at += 1;
        Ok(Some(ImageStep {
            index,
            model_calls: self.model_calls,
            t,
            noise_level: (1.0 - s.alpha_bar(Some(t))).sqrt(),
            x: self.x.iter().map(|&v| v as f32).collect(),
            x0: x0.iter().map(|&v| v as f32).collect(),
            class_prob,
        }))
    }

    /// ε̂ at `t` for every image, guided without a classifier when asked (the conditional and
    /// unconditional halves in one call).
    async fn noise<N: NoisePredictor>(
        &mut self,
        net: &mut N,
        x: &[f32],
        t: usize,
        c: &Condition,
    ) -> Result<Vec<f64>, SampleError> {
        let count = c.count;
        self.model_calls += 1;
        if let Guidance::Free { scale } = c.guidance {
            let both: Vec<f32> = x.iter().chain(x).copied().collect();
            let mut classes = vec![c.class; count];
            classes.extend(vec![None; count]);
            let out = net.predict_noise(&both, t, &classes).await?;
            let (cond, uncond) = out.split_at(count * self.pixels);
            return Ok(cond
                .iter()
                .zip(uncond)
                .map(|(&e, &u)| (1.0 + scale) * f64::from(e) - scale * f64::from(u))
                .collect());
        }
        // Classifier guidance steers the unconditional model (guided-diffusion's Algorithm 1):
        // at s = 0 it is an unguided run, whatever the class.
        let class = match c.guidance {
            Guidance::Classifier { .. } => None,
            _ => c.class,
        };
        let classes = vec![class; count];
        let out = net.predict_noise(x, t, &classes).await?;
        Ok(out.iter().map(|&e| f64::from(e)).collect())
    }
}
