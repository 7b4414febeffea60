//! What a run asks of its sampler: one settings type per sampler, and one table of knobs.
//!
//! [`Settings`] is a serde-tagged enum (`"sampler": "llada"`, …) whose arms hold only the knobs
//! that sampler reads, beside the [`Draw`] section every sampler shares (temperature, top-k,
//! top-p, seed): a combination a sampler would ignore cannot be written at all. BD3-LM's two ways
//! of choosing positions are an enum too ([`Bd3Order`]), so a first-hitting run has no steps or
//! threshold to ignore.
//!
//! [`KNOBS`] is the one table of every knob — its name in links, label, help, range and default —
//! read by the page's link parser and writer, its controls, the CLI and [`Settings::validate`]:
//! no range is written twice. [`Settings::get`] and [`Settings::set`] reach a knob by name,
//! `None` / [`SettingsError::NoSuchKnob`] where the sampler has none.

use serde::{Deserialize, Serialize};

use super::forcing::{MAX_LEVELS, Schedule};
use super::gaussian::Variance;
use super::{Remasking, SamplerKind, SettingsError};

/// Steps accepted at most: MDLM samples with T ≫ L (its paper's longest schedule is T = 5000), and
/// its cache makes the empty steps free; this bounds them.
pub const MAX_STEPS: usize = 100_000;
/// Longest generation accepted (the model's `model_length` caps it further).
pub const MAX_GEN_LENGTH: usize = crate::limits::MAX_MODEL_LENGTH;
/// Largest top-k (beyond any vocabulary Unmask loads).
pub const MAX_TOP_K: usize = crate::limits::MAX_VOCAB_SIZE;
/// Highest softmax temperature.
pub const MAX_TEMPERATURE: f64 = 10.0;
/// Largest classifier-free guidance scale; LLaDA's experiments use 0–3, and beyond this the f32
/// guided logits lose all precision.
pub const MAX_CFG_SCALE: f64 = 100.0;
/// Largest seed (2^53 − 1: exact in JavaScript numbers too, so a link carries it unchanged).
pub const MAX_SEED: u64 = (1 << 53) - 1;
/// Largest class id a link or a flag may name (the model's own count is checked at the run).
pub const MAX_CLASS: usize = crate::limits::MAX_CLASSES - 1;

/// How every sampler draws a token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Draw {
    /// Softmax temperature of the prediction; 0 takes the argmax.
    #[serde(with = "crate::float_json")]
    pub temperature: f64,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Nucleus: keep the smallest set of tokens whose probability reaches p.
    #[serde(with = "crate::float_json::option", default)]
    pub top_p: Option<f64>,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Draw {
    /// Sampling at `temperature`, no filters, seed 0.
    pub fn at(temperature: f64) -> Self {
        Draw {
            temperature,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }
}

/// LLaDA's semi-autoregressive remasking (with Fast-dLLM's threshold and classifier-free
/// guidance).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LladaSettings {
    /// Masks appended after the prompt.
    pub gen_length: usize,
    /// Denoising steps over the whole generation (`steps`), shared equally by the blocks.
    pub steps: usize,
    /// The semi-autoregressive block; `None` is one block of `gen_length`.
    pub block_length: Option<usize>,
    /// Which masked positions are committed first.
    pub remasking: Remasking,
    /// Classifier-free guidance scale s: logits = un + (s + 1)(cond − un); 0 is off.
    #[serde(with = "crate::float_json")]
    pub cfg_scale: f64,
    /// Fast-dLLM: commit every masked position of the block whose token is at least τ probable
    /// (always at least the most confident one); the step count then only bounds nothing.
    #[serde(with = "crate::float_json::option", default)]
    pub threshold: Option<f64>,
    /// Temperature, filters, seed.
    pub draw: Draw,
}

/// MDLM's ancestral sampler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MdlmSettings {
    /// Masks appended after the prompt.
    pub gen_length: usize,
    /// Denoising steps T; may exceed the masks (the paper's T ≫ L).
    pub steps: usize,
    /// Skip the model call of a step whose input did not change (`ddpm_cache`).
    pub use_cache: bool,
    /// Temperature, filters, seed.
    pub draw: Draw,
}

/// How BD3-LM picks the positions it fills inside a block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Bd3Order {
    /// One uniformly chosen masked position per step (Zheng et al., arXiv:2409.02908; the
    /// BD3-LM scripts' default).
    FirstHitting,
    /// LLaDA's rules inside each block: a scheduled number of the most confident per step.
    Ranked {
        /// Steps over the whole generation, shared by the blocks in proportion to their masks.
        steps: usize,
        /// Which masked positions are committed first.
        remasking: Remasking,
        /// Fast-dLLM's threshold (see [`LladaSettings::threshold`]).
        #[serde(with = "crate::float_json::option", default)]
        threshold: Option<f64>,
    },
}

/// BD3-LM's block-by-block sampler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bd3Settings {
    /// Masks appended after the prompt.
    pub gen_length: usize,
    /// The block: a block-causal model's own when `None` (and it must equal it when given); a
    /// bidirectional model, run semi-autoregressively without the cache, needs one.
    pub block_length: Option<usize>,
    /// First-hitting, or ranked positions.
    pub order: Bd3Order,
    /// Use the block KV cache.
    pub use_cache: bool,
    /// Stop after the block that generated the first EOS.
    pub stop_at_eos: bool,
    /// Temperature, filters, seed.
    pub draw: Draw,
}

/// Autoregressive decoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArSettings {
    /// Tokens generated after the prompt.
    pub gen_length: usize,
    /// Use the causal KV cache.
    pub use_cache: bool,
    /// Stop after the first generated EOS.
    pub stop_at_eos: bool,
    /// Temperature, filters, seed.
    pub draw: Draw,
}

/// Diffusion forcing's sampler (Chen et al. 2024): every token its own noise level, falling
/// along a scheduling matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForcingSettings {
    /// Masks appended after the prompt: the tokens the schedule covers. May exceed the model's
    /// context: the model then sees a window sliding along the canvas.
    pub gen_length: usize,
    /// How the levels fall: the pyramid and its slope, or one of its two ends.
    pub schedule: Schedule,
    /// Noise levels S, fully masked down to clean: the steps each token takes.
    pub levels: usize,
    /// Keep the keys and values of the window's clean prefix (causal attention: a clean token's
    /// never change) instead of running the whole window every call. Exact; on by default.
    #[serde(default = "crate::config::default_true")]
    pub use_cache: bool,
    /// Temperature, filters, seed.
    pub draw: Draw,
}

/// Tokens generated by default.
const DEFAULT_GEN_LENGTH: usize = 64;
/// Diffusion forcing's levels by default: few, as text takes a token in one draw.
pub const DEFAULT_LEVELS: usize = 8;
/// The pyramid's slope by default: each token starts one step after the one before it.
pub const DEFAULT_SLOPE: f64 = 1.0;

impl Default for LladaSettings {
    /// LLaDA's `generate.py`: greedy (temperature 0), low-confidence remasking, one block.
    fn default() -> Self {
        LladaSettings {
            gen_length: DEFAULT_GEN_LENGTH,
            steps: DEFAULT_GEN_LENGTH,
            block_length: None,
            remasking: Remasking::LowConfidence,
            cfg_scale: 0.0,
            threshold: None,
            draw: Draw::at(0.0),
        }
    }
}

impl Default for MdlmSettings {
    /// MDLM's sampler at temperature 1, one step per token, with its cache.
    fn default() -> Self {
        MdlmSettings {
            gen_length: DEFAULT_GEN_LENGTH,
            steps: DEFAULT_GEN_LENGTH,
            use_cache: true,
            draw: Draw::at(1.0),
        }
    }
}

impl Default for Bd3Settings {
    /// The BD3-LM scripts: first-hitting, nucleus p = 0.9, the KV cache, stop at EOS.
    fn default() -> Self {
        Bd3Settings {
            gen_length: DEFAULT_GEN_LENGTH,
            block_length: None,
            order: Bd3Order::FirstHitting,
            use_cache: true,
            stop_at_eos: true,
            draw: Draw {
                top_p: Some(0.9),
                ..Draw::at(1.0)
            },
        }
    }
}

impl Default for ForcingSettings {
    /// The pyramid at slope 1 over 8 levels, plain sampling at temperature 1.
    fn default() -> Self {
        ForcingSettings {
            gen_length: DEFAULT_GEN_LENGTH,
            schedule: Schedule::Pyramid {
                slope: DEFAULT_SLOPE,
            },
            levels: DEFAULT_LEVELS,
            use_cache: true,
            draw: Draw::at(1.0),
        }
    }
}

impl Default for ArSettings {
    /// Plain sampling at temperature 1 with the KV cache, stopping at EOS.
    fn default() -> Self {
        ArSettings {
            gen_length: DEFAULT_GEN_LENGTH,
            use_cache: true,
            stop_at_eos: true,
            draw: Draw::at(1.0),
        }
    }
}

/// A run's sampler and every knob it reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sampler", rename_all = "lowercase")]
pub enum Settings {
    /// [`LladaSettings`].
    Llada(LladaSettings),
    /// [`MdlmSettings`].
    Mdlm(MdlmSettings),
    /// [`Bd3Settings`].
    Bd3(Bd3Settings),
    /// [`ArSettings`].
    Ar(ArSettings),
    /// [`ForcingSettings`].
    Forcing(ForcingSettings),
}

/// A knob: something a sampler may read, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Knob {
    /// Denoising steps.
    Steps,
    /// Tokens generated after the prompt.
    GenLength,
    /// The semi-autoregressive block.
    BlockLength,
    /// Remasking rule.
    Remasking,
    /// Softmax temperature.
    Temperature,
    /// Top-k filter.
    TopK,
    /// Nucleus filter.
    TopP,
    /// Classifier-free guidance scale.
    Cfg,
    /// Fast-dLLM threshold.
    Threshold,
    /// BD3-LM first-hitting.
    FirstHitting,
    /// The KV cache (bd3, ar) or MDLM's skip-unchanged cache.
    Cache,
    /// Stop at EOS.
    StopAtEos,
    /// Seed of every draw.
    Seed,
    /// DDIM's η.
    Eta,
    /// DDPM's σ_t² choice.
    Variance,
    /// The class an image run draws.
    Class,
    /// Classifier guidance's scale s.
    ClassifierScale,
    /// Images drawn together.
    Count,
    /// Diffusion forcing's schedule.
    Schedule,
    /// The pyramid's slope.
    Slope,
    /// Diffusion forcing's level count.
    Levels,
}

/// What values a knob takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KnobKind {
    /// A whole number in `min..=max`.
    Whole {
        /// Smallest.
        min: u64,
        /// Largest.
        max: u64,
    },
    /// A real number in `min..=max`, offered in steps of `step`.
    Real {
        /// Smallest.
        min: f64,
        /// Largest.
        max: f64,
        /// The controls' increment.
        step: f64,
    },
    /// On or off.
    Flag,
    /// One of the remasking rules.
    Remasking,
    /// One of DDPM's two variances.
    Variance,
    /// One of diffusion forcing's schedules.
    Schedule,
}

/// One knob's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KnobValue {
    /// A number (whole numbers too).
    Number(f64),
    /// A flag.
    Flag(bool),
    /// A remasking rule.
    Remasking(Remasking),
    /// A reverse-step variance.
    Variance(Variance),
    /// A forcing schedule (the pyramid with its slope).
    Schedule(Schedule),
    /// An optional knob switched off (`none` in links, an empty field on the page).
    Off,
}

/// Everything about one knob: the table row every front end reads.
#[derive(Clone, Copy, Debug)]
pub struct KnobSpec {
    /// Which knob.
    pub knob: Knob,
    /// Its name in links and messages (`steps`, `gen`, `top_p`, …).
    pub key: &'static str,
    /// Its name in settings files and the reference code (`gen_length`, `cfg_scale`, …).
    pub field: &'static str,
    /// The page's label.
    pub label: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Its values.
    pub kind: KnobKind,
    /// Whether it can be off.
    pub optional: bool,
}

/// Every knob, in the order the page shows them.
pub static KNOBS: [KnobSpec; 21] = [
    KnobSpec {
        knob: Knob::Steps,
        key: "steps",
        field: "steps",
        label: "steps",
        help: "Denoising steps over the whole generation (LLaDA steps, MDLM T, DDIM's steps)",
        kind: KnobKind::Whole {
            min: 1,
            max: MAX_STEPS as u64,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::GenLength,
        key: "gen",
        field: "gen_length",
        label: "length",
        help: "Masked tokens generated after the prompt (gen_length)",
        kind: KnobKind::Whole {
            min: 0,
            max: MAX_GEN_LENGTH as u64,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::BlockLength,
        key: "block",
        field: "block_length",
        label: "block",
        help: "Semi-autoregressive block length (empty: one block; bd3: the model's block size)",
        kind: KnobKind::Whole {
            min: 1,
            max: MAX_GEN_LENGTH as u64,
        },
        optional: true,
    },
    KnobSpec {
        knob: Knob::Remasking,
        key: "remasking",
        field: "remasking",
        label: "remasking",
        help: "Which masked positions are committed first",
        kind: KnobKind::Remasking,
        optional: false,
    },
    KnobSpec {
        knob: Knob::Temperature,
        key: "temperature",
        field: "temperature",
        label: "temperature",
        help: "Softmax temperature; 0 takes the most likely token",
        kind: KnobKind::Real {
            min: 0.0,
            max: MAX_TEMPERATURE,
            step: 0.1,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::TopK,
        key: "top_k",
        field: "top_k",
        label: "top-k",
        help: "Keep only the k most likely tokens (empty: off)",
        kind: KnobKind::Whole {
            min: 1,
            max: MAX_TOP_K as u64,
        },
        optional: true,
    },
    KnobSpec {
        knob: Knob::TopP,
        key: "top_p",
        field: "top_p",
        label: "top-p",
        help: "Nucleus: the smallest set of tokens reaching probability p (empty: off)",
        kind: KnobKind::Real {
            min: f64::MIN_POSITIVE,
            max: 1.0,
            step: 0.01,
        },
        optional: true,
    },
    KnobSpec {
        knob: Knob::Cfg,
        key: "cfg",
        field: "cfg_scale",
        label: "cfg",
        help: "Classifier-free guidance scale (0: off)",
        kind: KnobKind::Real {
            min: 0.0,
            max: MAX_CFG_SCALE,
            step: 0.1,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::Threshold,
        key: "threshold",
        field: "threshold",
        label: "threshold",
        help: "Fast-dLLM: commit every position at least this probable (empty: off)",
        kind: KnobKind::Real {
            min: 0.0,
            max: 1.0,
            step: 0.01,
        },
        optional: true,
    },
    KnobSpec {
        knob: Knob::FirstHitting,
        key: "first_hitting",
        field: "first_hitting",
        label: "first-hitting",
        help: "BD3-LM: one uniformly chosen position per step",
        kind: KnobKind::Flag,
        optional: false,
    },
    KnobSpec {
        knob: Knob::Cache,
        key: "cache",
        field: "use_cache",
        label: "cache",
        help: "KV cache (bd3, ar, forcing's clean prefix) or MDLM's skip-unchanged cache",
        kind: KnobKind::Flag,
        optional: false,
    },
    KnobSpec {
        knob: Knob::StopAtEos,
        key: "eos",
        field: "stop_at_eos",
        label: "stop at EOS",
        help: "End the text at the first end-of-sequence token",
        kind: KnobKind::Flag,
        optional: false,
    },
    KnobSpec {
        knob: Knob::Seed,
        key: "seed",
        field: "seed",
        label: "seed",
        help: "Seed of every random draw: the same seed gives the same run",
        kind: KnobKind::Whole {
            min: 0,
            max: MAX_SEED,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::Eta,
        key: "eta",
        field: "eta",
        label: "η",
        help: "DDIM's η: 0 deterministic, 1 the variance of DDPM's posterior",
        kind: KnobKind::Real {
            min: 0.0,
            max: 1.0,
            step: 0.1,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::Variance,
        key: "variance",
        field: "variance",
        label: "σ²",
        help: "DDPM's step variance: beta (σ² = β_t) or posterior (σ² = β̃_t)",
        kind: KnobKind::Variance,
        optional: false,
    },
    KnobSpec {
        knob: Knob::Class,
        key: "class",
        field: "class",
        label: "class",
        help: "The digit to draw (empty: any, unconditionally)",
        kind: KnobKind::Whole {
            min: 0,
            max: MAX_CLASS as u64,
        },
        optional: true,
    },
    KnobSpec {
        knob: Knob::ClassifierScale,
        key: "classifier_scale",
        field: "classifier_scale",
        label: "classifier scale",
        help: "Classifier guidance: the noisy classifier's gradient times s steers each step (empty: off)",
        kind: KnobKind::Real {
            min: 0.0,
            max: super::image::MAX_GUIDANCE_SCALE,
            step: 0.5,
        },
        optional: true,
    },
    KnobSpec {
        knob: Knob::Count,
        key: "count",
        field: "count",
        label: "images",
        help: "Images drawn together, each from its own noise",
        kind: KnobKind::Whole {
            min: 1,
            max: super::image::MAX_IMAGES as u64,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::Schedule,
        key: "schedule",
        field: "schedule",
        label: "schedule",
        help: "Diffusion forcing: pyramid (each token trails the one before), autoregressive or full-sequence",
        kind: KnobKind::Schedule,
        optional: false,
    },
    KnobSpec {
        knob: Knob::Slope,
        key: "slope",
        field: "slope",
        label: "slope",
        help: "Steps by which each token trails the one before it: 0 full-sequence, the level count autoregressive",
        kind: KnobKind::Real {
            min: 0.0,
            max: MAX_LEVELS as f64,
            step: 0.25,
        },
        optional: false,
    },
    KnobSpec {
        knob: Knob::Levels,
        key: "levels",
        field: "levels",
        label: "levels",
        help: "Diffusion forcing's noise levels, fully masked down to clean: the steps each token takes",
        kind: KnobKind::Whole {
            min: 1,
            max: MAX_LEVELS as u64,
        },
        optional: false,
    },
];

impl Knob {
    /// Its row of [`KNOBS`].
    pub fn spec(self) -> &'static KnobSpec {
        KNOBS.iter().find(|s| s.knob == self).unwrap_or(&KNOBS[0])
    }

    /// Its name in links.
    pub fn key(self) -> &'static str {
        self.spec().key
    }

    /// Its name in settings files and messages (the reference code's).
    pub fn field(self) -> &'static str {
        self.spec().field
    }
}

impl KnobSpec {
    /// Whether `value` is one this knob takes.
    pub fn admits(&self, value: KnobValue) -> bool {
        match (self.kind, value) {
            (_, KnobValue::Off) => self.optional,
            (KnobKind::Whole { min, max }, KnobValue::Number(x)) => {
                x.fract() == 0.0 && x >= min as f64 && x <= max as f64
            }
            (KnobKind::Real { min, max, .. }, KnobValue::Number(x)) => x >= min && x <= max,
            (KnobKind::Flag, KnobValue::Flag(_)) => true,
            (KnobKind::Remasking, KnobValue::Remasking(_)) => true,
            (KnobKind::Variance, KnobValue::Variance(_)) => true,
            (KnobKind::Schedule, KnobValue::Schedule(_)) => true,
            _ => false,
        }
    }

    /// The values it takes, in words, for messages.
    pub fn expected(&self) -> String {
        let off = if self.optional { ", or none" } else { "" };
        match self.kind {
            KnobKind::Whole { min, max } => format!("a whole number from {min} to {max}{off}"),
            KnobKind::Real { min, max, .. } => {
                let low = if min == f64::MIN_POSITIVE {
                    "above 0".to_string()
                } else {
                    format!("from {min}")
                };
                format!("a number {low} to {max}{off}")
            }
            KnobKind::Flag => "1 or 0".into(),
            KnobKind::Remasking => {
                let names: Vec<&str> = Remasking::ALL.iter().map(|r| r.name()).collect();
                format!("one of {}", names.join(", "))
            }
            KnobKind::Variance => {
                format!("one of {}", Variance::ALL.map(Variance::name).join(", "))
            }
            KnobKind::Schedule => {
                format!("one of {}", Schedule::NAMES.join(", "))
            }
        }
    }
}

fn number(x: usize) -> KnobValue {
    KnobValue::Number(x as f64)
}

fn optional(x: Option<f64>) -> KnobValue {
    x.map_or(KnobValue::Off, KnobValue::Number)
}

impl Settings {
    /// The papers' defaults for `sampler` ([`LladaSettings::default`] and the others).
    pub fn defaults(sampler: SamplerKind) -> Self {
        match sampler {
            SamplerKind::Llada => Settings::Llada(LladaSettings::default()),
            SamplerKind::Mdlm => Settings::Mdlm(MdlmSettings::default()),
            SamplerKind::Bd3 => Settings::Bd3(Bd3Settings::default()),
            SamplerKind::Ar => Settings::Ar(ArSettings::default()),
            SamplerKind::Forcing => Settings::Forcing(ForcingSettings::default()),
        }
    }

    /// `sampler`'s defaults for `gen_length` tokens, in one step per token where it counts steps.
    pub fn for_tokens(sampler: SamplerKind, gen_length: usize) -> Self {
        let mut s = Settings::defaults(sampler);
        s.set_gen_length(gen_length);
        s.set_steps(gen_length.clamp(1, MAX_STEPS));
        s
    }

    /// Sets the step count where the sampler has one (nothing for first-hitting BD3 and AR).
    pub fn set_steps(&mut self, n: usize) {
        match self {
            Settings::Llada(s) => s.steps = n,
            Settings::Mdlm(s) => s.steps = n,
            Settings::Bd3(Bd3Settings {
                order: Bd3Order::Ranked { steps, .. },
                ..
            }) => *steps = n,
            _ => {}
        }
    }

    /// Which sampler.
    pub fn sampler(&self) -> SamplerKind {
        match self {
            Settings::Llada(_) => SamplerKind::Llada,
            Settings::Mdlm(_) => SamplerKind::Mdlm,
            Settings::Bd3(_) => SamplerKind::Bd3,
            Settings::Ar(_) => SamplerKind::Ar,
            Settings::Forcing(_) => SamplerKind::Forcing,
        }
    }

    /// The draw section.
    pub fn draw(&self) -> &Draw {
        match self {
            Settings::Llada(s) => &s.draw,
            Settings::Mdlm(s) => &s.draw,
            Settings::Bd3(s) => &s.draw,
            Settings::Ar(s) => &s.draw,
            Settings::Forcing(s) => &s.draw,
        }
    }

    /// The draw section, to change.
    pub fn draw_mut(&mut self) -> &mut Draw {
        match self {
            Settings::Llada(s) => &mut s.draw,
            Settings::Mdlm(s) => &mut s.draw,
            Settings::Bd3(s) => &mut s.draw,
            Settings::Ar(s) => &mut s.draw,
            Settings::Forcing(s) => &mut s.draw,
        }
    }

    /// Tokens generated after the prompt.
    pub fn gen_length(&self) -> usize {
        match self {
            Settings::Llada(s) => s.gen_length,
            Settings::Mdlm(s) => s.gen_length,
            Settings::Bd3(s) => s.gen_length,
            Settings::Ar(s) => s.gen_length,
            Settings::Forcing(s) => s.gen_length,
        }
    }

    /// Sets the tokens generated after the prompt.
    pub fn set_gen_length(&mut self, n: usize) {
        match self {
            Settings::Llada(s) => s.gen_length = n,
            Settings::Mdlm(s) => s.gen_length = n,
            Settings::Bd3(s) => s.gen_length = n,
            Settings::Ar(s) => s.gen_length = n,
            Settings::Forcing(s) => s.gen_length = n,
        }
    }

    /// Diffusion forcing's level count, for its sampler.
    pub fn levels(&self) -> Option<usize> {
        match self {
            Settings::Forcing(s) => Some(s.levels),
            _ => None,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.draw().seed
    }

    /// Denoising steps, where the sampler counts them (not first-hitting BD3, not AR).
    pub fn steps(&self) -> Option<usize> {
        match self.get(Knob::Steps)? {
            KnobValue::Number(x) => Some(x as usize),
            _ => None,
        }
    }

    /// Whether this sampler has `knob` as its settings stand (a first-hitting BD3 run has no
    /// steps; switching first-hitting off gives it some).
    pub fn has(&self, knob: Knob) -> bool {
        self.get(knob).is_some()
    }

    /// `knob`'s value, or `None` when this sampler has no such knob.
    pub fn get(&self, knob: Knob) -> Option<KnobValue> {
        let draw = self.draw();
        match knob {
            Knob::GenLength => return Some(number(self.gen_length())),
            Knob::Temperature => return Some(KnobValue::Number(draw.temperature)),
            Knob::TopK => return Some(optional(draw.top_k.map(|k| k as f64))),
            Knob::TopP => return Some(optional(draw.top_p)),
            Knob::Seed => return Some(KnobValue::Number(draw.seed as f64)),
            _ => {}
        }
        match (self, knob) {
            (Settings::Llada(s), Knob::Steps) => Some(number(s.steps)),
            (Settings::Llada(s), Knob::BlockLength) => {
                Some(optional(s.block_length.map(|b| b as f64)))
            }
            (Settings::Llada(s), Knob::Remasking) => Some(KnobValue::Remasking(s.remasking)),
            (Settings::Llada(s), Knob::Cfg) => Some(KnobValue::Number(s.cfg_scale)),
            (Settings::Llada(s), Knob::Threshold) => Some(optional(s.threshold)),
            (Settings::Mdlm(s), Knob::Steps) => Some(number(s.steps)),
            (Settings::Mdlm(s), Knob::Cache) => Some(KnobValue::Flag(s.use_cache)),
            (Settings::Bd3(s), Knob::BlockLength) => {
                Some(optional(s.block_length.map(|b| b as f64)))
            }
            (Settings::Bd3(s), Knob::FirstHitting) => {
                Some(KnobValue::Flag(matches!(s.order, Bd3Order::FirstHitting)))
            }
            (Settings::Bd3(s), Knob::Cache) => Some(KnobValue::Flag(s.use_cache)),
            (Settings::Bd3(s), Knob::StopAtEos) => Some(KnobValue::Flag(s.stop_at_eos)),
            (
                Settings::Bd3(Bd3Settings {
                    order:
                        Bd3Order::Ranked {
                            steps,
                            remasking,
                            threshold,
                        },
                    ..
                }),
                knob,
            ) => match knob {
                Knob::Steps => Some(number(*steps)),
                Knob::Remasking => Some(KnobValue::Remasking(*remasking)),
                Knob::Threshold => Some(optional(*threshold)),
                _ => None,
            },
            (Settings::Ar(s), Knob::Cache) => Some(KnobValue::Flag(s.use_cache)),
            (Settings::Ar(s), Knob::StopAtEos) => Some(KnobValue::Flag(s.stop_at_eos)),
            (Settings::Forcing(s), Knob::Schedule) => Some(KnobValue::Schedule(s.schedule)),
            (
                Settings::Forcing(ForcingSettings {
                    schedule: Schedule::Pyramid { slope },
                    ..
                }),
                Knob::Slope,
            ) => Some(KnobValue::Number(*slope)),
            (Settings::Forcing(s), Knob::Levels) => Some(number(s.levels)),
            (Settings::Forcing(s), Knob::Cache) => Some(KnobValue::Flag(s.use_cache)),
            _ => None,
        }
    }

    /// Sets `knob`, checked against its row of [`KNOBS`]; refused when the sampler has no such
    /// knob (as its settings stand: a first-hitting BD3 run takes no steps) or the value is out
    /// of range. Switching BD3's first-hitting off ranks positions with `steps` of one per token.
    pub fn set(&mut self, knob: Knob, value: KnobValue) -> Result<(), SettingsError> {
        let spec = knob.spec();
        let sampler = self.sampler();
        let out_of_range = || SettingsError::OutOfRange {
            knob,
            value: describe(value),
            expected: spec.expected(),
        };
        if let (Settings::Forcing(s), Knob::Slope) = (&*self, knob)
            && !matches!(s.schedule, Schedule::Pyramid { .. })
        {
            return Err(SettingsError::FixedSlope {
                schedule: s.schedule.name(),
            });
        }
        if !self.has(knob) {
            return Err(SettingsError::NoSuchKnob {
                sampler: sampler.name(),
                knob,
            });
        }
        if !spec.admits(value) {
            return Err(out_of_range());
        }
        let whole = |v: KnobValue| match v {
            KnobValue::Number(x) => Some(x as usize),
            _ => None,
        };
        let real = |v: KnobValue| match v {
            KnobValue::Number(x) => Some(x),
            _ => None,
        };
        let flag = matches!(value, KnobValue::Flag(true));
        let gen_length = self.gen_length();
        match knob {
            Knob::GenLength => self.set_gen_length(whole(value).unwrap_or(0)),
            Knob::Temperature => self.draw_mut().temperature = real(value).unwrap_or(0.0),
            Knob::TopK => self.draw_mut().top_k = whole(value),
            Knob::TopP => self.draw_mut().top_p = real(value),
            Knob::Seed => self.draw_mut().seed = real(value).unwrap_or(0.0) as u64,
            _ => {}
        }
        match (self, knob) {
            (Settings::Llada(s), Knob::Steps) => s.steps = whole(value).unwrap_or(1),
            (Settings::Llada(s), Knob::BlockLength) => s.block_length = whole(value),
            (Settings::Llada(s), Knob::Remasking) => {
                if let KnobValue::Remasking(r) = value {
                    s.remasking = r
                }
            }
            (Settings::Llada(s), Knob::Cfg) => s.cfg_scale = real(value).unwrap_or(0.0),
            (Settings::Llada(s), Knob::Threshold) => s.threshold = real(value),
            (Settings::Mdlm(s), Knob::Steps) => s.steps = whole(value).unwrap_or(1),
            (Settings::Mdlm(s), Knob::Cache) => s.use_cache = flag,
            (Settings::Bd3(s), Knob::BlockLength) => s.block_length = whole(value),
            (Settings::Bd3(s), Knob::FirstHitting) => {
                let first_hitting = matches!(s.order, Bd3Order::FirstHitting);
                if flag != first_hitting {
                    s.order = if flag {
                        Bd3Order::FirstHitting
                    } else {
                        Bd3Order::Ranked {
                            steps: gen_length.max(1),
                            remasking: Remasking::LowConfidence,
                            threshold: None,
                        }
                    };
                }
            }
            (Settings::Bd3(s), Knob::Cache) => s.use_cache = flag,
            (Settings::Bd3(s), Knob::StopAtEos) => s.stop_at_eos = flag,
            (
                Settings::Bd3(Bd3Settings {
                    order:
                        Bd3Order::Ranked {
                            steps,
                            remasking,
                            threshold,
                        },
                    ..
                }),
                knob,
            ) => match (knob, value) {
                (Knob::Steps, _) => *steps = whole(value).unwrap_or(1),
                (Knob::Remasking, KnobValue::Remasking(r)) => *remasking = r,
                (Knob::Threshold, _) => *threshold = real(value),
                _ => {}
            },
            (Settings::Ar(s), Knob::Cache) => s.use_cache = flag,
            (Settings::Ar(s), Knob::StopAtEos) => s.stop_at_eos = flag,
            (Settings::Forcing(s), Knob::Schedule) => {
                if let KnobValue::Schedule(schedule) = value {
                    s.schedule = schedule
                }
            }
            (
                Settings::Forcing(ForcingSettings {
                    schedule: Schedule::Pyramid { slope },
                    ..
                }),
                Knob::Slope,
            ) => *slope = real(value).unwrap_or(DEFAULT_SLOPE),
            (Settings::Forcing(s), Knob::Levels) => s.levels = whole(value).unwrap_or(1),
            (Settings::Forcing(s), Knob::Cache) => s.use_cache = flag,
            _ => {}
        }
        Ok(())
    }

    /// Checks every knob against its row of [`KNOBS`] (NaN, infinite and out-of-range values
    /// included). What depends on the prompt and the model is the samplers' to check.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for spec in &KNOBS {
            if let Some(value) = self.get(spec.knob)
                && !spec.admits(value)
            {
                return Err(SettingsError::OutOfRange {
                    knob: spec.knob,
                    value: describe(value),
                    expected: spec.expected(),
                });
            }
        }
        Ok(())
    }

    /// These settings for another sampler: its defaults for the same length in one step per
    /// token, with this run's seed.
    pub fn switched(&self, sampler: SamplerKind) -> Settings {
        let mut next = Settings::for_tokens(sampler, self.gen_length());
        next.draw_mut().seed = self.seed();
        next
    }
}

/// A value as a message shows it.
pub(crate) fn describe(value: KnobValue) -> String {
    match value {
        KnobValue::Number(x) => format!("{x}"),
        KnobValue::Flag(b) => format!("{}", b as u8),
        KnobValue::Remasking(r) => r.name().into(),
        KnobValue::Variance(v) => v.name().into(),
        KnobValue::Schedule(s) => s.name().into(),
        KnobValue::Off => "none".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sampler_has_exactly_the_knobs_its_settings_hold() {
        let has = |s: &Settings| -> Vec<&str> {
            KNOBS
                .iter()
                .filter(|k| s.has(k.knob))
                .map(|k| k.key)
                .collect()
        };
        let shared = ["gen", "temperature", "top_k", "top_p", "seed"];
        let with = |own: &[&'static str]| {
            let mut all: Vec<&str> = KNOBS
                .iter()
                .map(|k| k.key)
                .filter(|k| shared.contains(k) || own.contains(k))
                .collect();
            all.dedup();
            all
        };
        let llada = Settings::defaults(SamplerKind::Llada);
        assert_eq!(
            has(&llada),
            with(&["steps", "block", "remasking", "cfg", "threshold"])
        );
        let mdlm = Settings::defaults(SamplerKind::Mdlm);
        assert_eq!(has(&mdlm), with(&["steps", "cache"]));
        let mut bd3 = Settings::defaults(SamplerKind::Bd3);
        assert_eq!(has(&bd3), with(&["block", "first_hitting", "cache", "eos"]));
        // Ranked BD3 gains LLaDA's rules and a step count of one per token.
        bd3.set(Knob::FirstHitting, KnobValue::Flag(false)).unwrap();
        assert_eq!(
            has(&bd3),
            with(&[
                "steps",
                "block",
                "remasking",
                "threshold",
                "first_hitting",
                "cache",
                "eos"
            ])
        );
        assert_eq!(bd3.steps(), Some(64));
        let ar = Settings::defaults(SamplerKind::Ar);
        assert_eq!(has(&ar), with(&["cache", "eos"]));
        // Diffusion forcing: the slope belongs to the pyramid only.
        let mut forcing = Settings::defaults(SamplerKind::Forcing);
        assert_eq!(
            has(&forcing),
            with(&["schedule", "slope", "levels", "cache"])
        );
        forcing
            .set(
                Knob::Schedule,
                KnobValue::Schedule(Schedule::Autoregressive),
            )
            .unwrap();
        assert_eq!(has(&forcing), with(&["schedule", "levels", "cache"]));
        assert!(matches!(
            forcing.set(Knob::Slope, KnobValue::Number(2.0)),
            Err(SettingsError::FixedSlope {
                schedule: "autoregressive"
            })
        ));
    }

    #[test]
    fn set_refuses_missing_knobs_and_values_outside_the_table() {
        let mut mdlm = Settings::defaults(SamplerKind::Mdlm);
        let err = mdlm.set(Knob::Cfg, KnobValue::Number(2.0)).unwrap_err();
        assert!(
            matches!(
                err,
                SettingsError::NoSuchKnob {
                    knob: Knob::Cfg,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("llada"), "{err}");
        for (knob, value) in [
            (Knob::Temperature, KnobValue::Number(f64::NAN)),
            (Knob::Temperature, KnobValue::Number(-1.0)),
            (Knob::TopP, KnobValue::Number(0.0)),
            (Knob::Steps, KnobValue::Number(0.0)),
            (Knob::Steps, KnobValue::Number(2.5)),
            (Knob::Seed, KnobValue::Number(1e300)),
            (Knob::Steps, KnobValue::Off),
        ] {
            let err = mdlm.set(knob, value).unwrap_err();
            assert!(
                matches!(err, SettingsError::OutOfRange { .. }),
                "{knob:?} {value:?}: {err}"
            );
            assert!(err.to_string().contains(knob.field()), "{err}");
        }
        mdlm.set(Knob::TopP, KnobValue::Off).unwrap();
        mdlm.set(Knob::Steps, KnobValue::Number(500.0)).unwrap();
        assert_eq!(mdlm.steps(), Some(500));
        // A value written around `set` is still caught.
        if let Settings::Mdlm(s) = &mut mdlm {
            s.draw.temperature = f64::INFINITY;
        }
        assert!(mdlm.validate().is_err());
    }

    #[test]
    fn settings_files_carry_the_sampler_as_a_tag_and_only_its_knobs() {
        let json = serde_json::to_value(Settings::defaults(SamplerKind::Bd3)).unwrap();
        assert_eq!(json["sampler"], "bd3");
        assert_eq!(json["order"]["kind"], "first-hitting");
        assert!(
            json.get("steps").is_none() && json.get("cfg_scale").is_none(),
            "{json}"
        );
        for sampler in SamplerKind::ALL {
            let s = Settings::defaults(sampler);
            let back: Settings = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
            assert_eq!(back, s);
        }
    }
}
