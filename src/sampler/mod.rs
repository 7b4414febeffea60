//! Samplers: how a canvas of masks becomes text, one model call at a time.
//!
//! Every sampler ([`llada`], [`mdlm`], [`bd3`], [`ar`], [`forcing`]) is a state machine over a [`Canvas`]: each
//! call of `step` runs the model at most once and returns the [`Step`] it produced, or `None` when
//! the canvas is done. Samplers never render; the page, the CLI and the tests all consume the same
//! steps. The model is reached through the [`Denoiser`] trait, so tests can drive a sampler with a
//! fake predictor and the browser can await its GPU.
//!
//! Rules every sampler keeps: the mask token is never a prediction (its logit is −∞ before the
//! softmax, MDLM's SUBS parameterisation); prompt tokens never change; a mask anywhere in the
//! prompt is filled in place; all randomness comes from the seeded [`Rng`](crate::rng::Rng) on the
//! CPU in f64, so the same seed gives the same trajectory on every backend.

pub mod ar;
pub mod bd3;
pub mod ddim;
pub mod ddpm;
pub mod diffusion_lm;
pub mod forcing;
pub mod gaussian;
pub mod image;
mod image_knobs;
pub mod llada;
pub mod maskgit;
pub mod mdlm;
pub mod probs;
pub mod settings;

pub use settings::{
    ArSettings, Bd3Order, Bd3Settings, Draw, ForcingSettings, KNOBS, Knob, KnobKind, KnobSpec,
    KnobValue, LladaSettings, MdlmSettings, Settings,
};

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Attention;
pub use crate::network::{
    Denoiser, Logits, ModelError, ModelSpec, Reduce, Reduced, RowDraw, RowQuery, Rows,
};

/// Which sampler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// LLaDA's semi-autoregressive remasking sampler (with Fast-dLLM's threshold).
    Llada,
    /// MDLM's ancestral sampler with its cache.
    Mdlm,
    /// BD3-LM's block-by-block sampler with the KV cache.
    Bd3,
    /// Autoregressive, one token per call.
    Ar,
    /// Diffusion forcing: every token its own noise level, on a scheduling matrix.
    Forcing,
}

impl SamplerKind {
    /// All of them, in the order the CLI lists them.
    pub const ALL: [SamplerKind; 5] = [
        SamplerKind::Llada,
        SamplerKind::Mdlm,
        SamplerKind::Bd3,
        SamplerKind::Ar,
        SamplerKind::Forcing,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Llada => "llada",
            SamplerKind::Mdlm => "mdlm",
            SamplerKind::Bd3 => "bd3",
            SamplerKind::Ar => "ar",
            SamplerKind::Forcing => "forcing",
        }
    }

    /// The sampler a model of one noise level per sequence is made for, read off its attention:
    /// `mdlm` for bidirectional, `bd3` for block-causal, `ar` for causal.
    pub fn for_attention(attention: Attention) -> Self {
        match attention {
            Attention::Bidirectional => SamplerKind::Mdlm,
            Attention::BlockCausal { .. } => SamplerKind::Bd3,
            Attention::Causal => SamplerKind::Ar,
        }
    }
}

/// How LLaDA-style samplers rank the masked positions they could commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remasking {
    /// Probability of the predicted token (LLaDA `low_confidence`).
    LowConfidence,
    /// A uniform draw (LLaDA `random`).
    Random,
    /// Top-1 minus top-2 probability (Dream `topk_margin`).
    Margin,
    /// Negative entropy of the distribution (Dream `entropy`).
    Entropy,
}

impl Remasking {
    /// Every rule, in the order the page lists them.
    pub const ALL: [Remasking; 4] = [
        Remasking::LowConfidence,
        Remasking::Random,
        Remasking::Margin,
        Remasking::Entropy,
    ];

    /// Its name in links, the CLI and settings files.
    pub fn name(self) -> &'static str {
        match self {
            Remasking::LowConfidence => "low-confidence",
            Remasking::Random => "random",
            Remasking::Margin => "margin",
            Remasking::Entropy => "entropy",
        }
    }

    /// The rule called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Remasking::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Why a run's cache cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheConflict {
    /// σ changes the output, so cached keys and values would keep the noise level they were
    /// made with.
    TimeConditioned,
    /// The sampler's cache needs this attention and the model has another.
    Attention {
        /// What the cache needs.
        needs: &'static str,
        /// What the model has.
        has: &'static str,
    },
}

/// Settings that do not describe a run on this prompt and model. Core messages name the setting
/// by its key (`steps`, `cache`); each front end adds how to change it there ([`Self::fix`]).
#[derive(Clone, Debug, PartialEq, Error)]
pub enum SettingsError {
    /// A knob the sampler does not read.
    #[error("the {sampler} sampler has no {} setting (it belongs to {})", knob.field(), users_of(*knob))]
    NoSuchKnob {
        /// The sampler's name.
        sampler: &'static str,
        /// The knob.
        knob: Knob,
    },
    /// A value outside its knob's range (NaN and infinities included).
    #[error("{}: expected {expected}, got {value}", knob.field())]
    OutOfRange {
        /// The knob.
        knob: Knob,
        /// The value, as given.
        value: String,
        /// What it takes.
        expected: String,
    },
    /// Nothing to condition on.
    #[error("the prompt is empty: give some text to continue, or [MASK] tokens to fill")]
    EmptyPrompt,
    /// The prompt could not be tokenized.
    #[error("the prompt could not be tokenized: {0}")]
    Tokenize(String),
    /// No masks anywhere.
    #[error("gen_length is 0 and the prompt has no [MASK]: nothing to generate; raise gen_length")]
    NothingToGenerate,
    /// A prompt id the model has no row for.
    #[error("token id {token} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutsideVocabulary {
        /// The id.
        token: u32,
        /// The model's vocabulary.
        vocab_size: usize,
    },
    /// Prompt and generation exceed the context.
    #[error(
        "prompt ({prompt} tokens) + gen_length ({gen_length}) exceeds the model's {model_length} positions (model_length); shorten one of them"
    )]
    TooLong {
        /// Prompt tokens.
        prompt: usize,
        /// Tokens asked for.
        gen_length: usize,
        /// The model's context.
        model_length: usize,
    },
    /// More steps than masks to commit.
    #[error(
        "steps ({steps}) is larger than the number of masked tokens ({masked}); use at most {masked} steps"
    )]
    TooManySteps {
        /// Steps asked for.
        steps: usize,
        /// Masks on the canvas.
        masked: usize,
    },
    /// LLaDA's blocks must tile the generation.
    #[error("gen_length ({gen_length}) must be a multiple of block_length ({block_length})")]
    BlocksDoNotTile {
        /// Tokens asked for.
        gen_length: usize,
        /// The block.
        block_length: usize,
    },
    /// LLaDA shares the steps equally among its blocks.
    #[error(
        "steps ({steps}) must be a multiple of the number of blocks ({blocks} = gen_length / block_length)"
    )]
    StepsPerBlock {
        /// Steps asked for.
        steps: usize,
        /// Blocks.
        blocks: usize,
    },
    /// A block-diffusion model samples with the block size it was trained with.
    #[error(
        "this block-diffusion model was trained with block_size {model}; block_length {asked} does not match (leave it out)"
    )]
    BlockSizeMismatch {
        /// The model's.
        model: usize,
        /// Asked for.
        asked: usize,
    },
    /// bd3 on a bidirectional model needs a block to walk.
    #[error("bd3 on a bidirectional model needs a block_length")]
    NeedsBlockLength,
    /// The sampler cannot run on this kind of model.
    #[error("the {} sampler needs a diffusion model and this one is autoregressive; use the ar sampler", sampler.name())]
    NeedsDiffusionModel {
        /// The sampler.
        sampler: SamplerKind,
    },
    /// The cache cannot serve this model.
    #[error("{}; turn the cache off", match why {
        CacheConflict::TimeConditioned => "this model is time-conditioned: cached keys and values would keep the noise level they were made with".to_string(),
        CacheConflict::Attention { needs, has } => format!("the {} sampler's cache needs a {needs} model and this one is {has}", sampler.name()),
    })]
    CacheUnsupported {
        /// The sampler.
        sampler: SamplerKind,
        /// Why.
        why: CacheConflict,
    },
    /// A Gaussian sampler's knob (the images', Diffusion-LM's) outside its range.
    #[error("{field}: expected {expected}, got {value}")]
    ImageKnob {
        /// The knob.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it takes.
        expected: String,
    },
    /// A class the network was not trained on.
    #[error("class {class} is not one of the model's {classes} classes")]
    NoSuchClass {
        /// Asked for.
        class: usize,
        /// The model's.
        classes: usize,
    },
    /// Guidance steers to a class, and none was given.
    #[error("guidance steers the sample to a class: give one")]
    GuidanceNeedsClass,
    /// Classifier guidance without a classifier.
    #[error("classifier guidance needs a noisy classifier, and this model names none")]
    NoClassifier,
    /// Diffusion-LM's control without a control classifier.
    #[error(
        "control steers the sentence with a control classifier, and none was given; give one or turn control off"
    )]
    ControlNeedsClassifier,
    /// An attribute the control classifier does not know.
    #[error("the control classifier knows {known}, not {target:?}")]
    NoSuchAttribute {
        /// Asked for.
        target: String,
        /// The classifier's labels, listed.
        known: String,
    },
    /// Classifier-free guidance on a network trained without classes.
    #[error(
        "classifier-free guidance needs a model trained with classes; this one is unconditional"
    )]
    UnconditionalModel,
    /// An autoregressive run has nothing to predict position 0 from.
    #[error("the ar sampler cannot fill position 0: start the prompt with a token")]
    FirstPositionMasked,
    /// The forcing sampler on a model trained with one noise level per sequence.
    #[error(
        "the forcing sampler needs a model trained with a noise level per token (unmask train --objective forcing); this one takes one level per sequence: use its own sampler ({own})"
    )]
    NeedsPerTokenNoise {
        /// The model's own sampler.
        own: &'static str,
    },
    /// A diffusion-forcing model run by a sampler that gives one level per sequence.
    #[error(
        "this model was trained with a noise level per token (diffusion forcing); the {} sampler gives one per sequence: use the forcing sampler", sampler.name()
    )]
    NeedsForcing {
        /// The sampler asked for.
        sampler: SamplerKind,
    },
    /// The schedule cannot be laid out.
    #[error(transparent)]
    Schedule(#[from] forcing::ScheduleError),
    /// A slope for a schedule that fixes its own.
    #[error(
        "the {schedule} schedule fixes its slope (full-sequence 0, autoregressive the level count); a slope shapes the pyramid: use the pyramid schedule"
    )]
    FixedSlope {
        /// The schedule's name.
        schedule: &'static str,
    },
    /// One step of the schedule moves tokens farther apart than the model sees at once.
    #[error(
        "a step of this schedule works on tokens {span} positions apart, more than the model's window of {model_length} (model_length); use a steeper slope (each token trailing the one before by more steps) or a shorter gen_length"
    )]
    ForcingWindow {
        /// Positions from the first to the last token one step works on.
        span: usize,
        /// The model's context.
        model_length: usize,
    },
}

/// The samplers that have `knob`, for messages ("llada and bd3").
fn users_of(knob: Knob) -> String {
    let mut users: Vec<&str> = SamplerKind::ALL
        .iter()
        .filter(|&&s| {
            let mut settings = Settings::defaults(s);
            // BD3's ranked order has LLaDA's knobs.
            let _ = settings.set(Knob::FirstHitting, KnobValue::Flag(false));
            settings.has(knob)
        })
        .map(|s| s.name())
        .collect();
    users.extend(
        image::ImageSampler::ALL
            .iter()
            .filter(|&&s| image::ImageSettings::defaults(s).has(knob))
            .map(|s| s.name()),
    );
    match users.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => users.join(""),
    }
}

/// What to change to get past a [`SettingsError`]: a knob, and its new value where one is
/// implied (`None`: leave it out, or choose another value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fix {
    /// The knob.
    pub knob: Knob,
    /// Its new value, when the error implies one.
    pub to: Option<KnobValue>,
}

impl SettingsError {
    /// The knob to change, for front ends to name in their own terms (a CLI flag, a checkbox).
    pub fn fix(&self) -> Option<Fix> {
        let fix = |knob, to| Some(Fix { knob, to });
        match self {
            SettingsError::NoSuchKnob { knob, .. } | SettingsError::OutOfRange { knob, .. } => {
                fix(*knob, None)
            }
            SettingsError::NothingToGenerate | SettingsError::TooLong { .. } => {
                fix(Knob::GenLength, None)
            }
            SettingsError::TooManySteps { .. } | SettingsError::StepsPerBlock { .. } => {
                fix(Knob::Steps, None)
            }
            SettingsError::BlocksDoNotTile { .. } | SettingsError::NeedsBlockLength => {
                fix(Knob::BlockLength, None)
            }
            SettingsError::BlockSizeMismatch { .. } => fix(Knob::BlockLength, Some(KnobValue::Off)),
            SettingsError::CacheUnsupported { .. } => {
                fix(Knob::Cache, Some(KnobValue::Flag(false)))
            }
            SettingsError::ImageKnob { field, .. } => KNOBS
                .iter()
                .find(|k| k.field == *field)
                .and_then(|k| fix(k.knob, None)),
            SettingsError::NoSuchClass { .. } | SettingsError::GuidanceNeedsClass => {
                fix(Knob::Class, None)
            }
            SettingsError::NoClassifier => fix(Knob::ClassifierScale, Some(KnobValue::Off)),
            SettingsError::Schedule(
                forcing::ScheduleError::Levels { .. } | forcing::ScheduleError::TooLarge { .. },
            ) => fix(Knob::Levels, None),
            SettingsError::Schedule(forcing::ScheduleError::Slope { .. })
            | SettingsError::ForcingWindow { .. } => fix(Knob::Slope, None),
            SettingsError::FixedSlope { .. } => fix(Knob::Schedule, None),
            SettingsError::UnconditionalModel => fix(Knob::Cfg, Some(KnobValue::Number(0.0))),
            _ => None,
        }
    }
}

/// Bad settings or a failing model.
#[derive(Debug, Error)]
pub enum SampleError {
    /// The model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The settings do not describe a run.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// A token committed at a position in one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Canvas position.
    pub position: usize,
    /// The token written.
    pub token: u32,
    /// The model's probability of that token when it was chosen.
    #[serde(with = "crate::float_json")]
    pub confidence: f64,
}

/// A token and its probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopToken {
    /// Token id.
    pub token: u32,
    /// Probability.
    #[serde(with = "crate::float_json")]
    pub prob: f64,
}

/// The most likely tokens at a masked position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidates {
    /// Canvas position.
    pub position: usize,
    /// Top candidates, most likely first.
    pub top: Vec<TopToken>,
}

/// Candidates shown per masked position.
pub const TOP_CANDIDATES: usize = 5;

/// What one step did and the canvas after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 0-based step number.
    pub index: usize,
    /// Model calls so far, this step's included.
    pub model_calls: usize,
    /// Tokens written this step.
    pub commits: Vec<Commit>,
    /// The canvas after this step (masked positions hold the mask id).
    pub canvas: Vec<u32>,
    /// Which canvas positions are still masked.
    pub masked: Vec<bool>,
    /// The current block, `[start, end)`.
    pub block: [usize; 2],
    /// Top candidates at the positions of the current block that were masked when the model ran.
    pub candidates: Vec<Candidates>,
    /// Each canvas position's noise level after this step, 0 (clean) to the schedule's level
    /// count (the forcing sampler's record, one row of its scheduling matrix; empty for the
    /// other samplers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<u32>,
}

/// The sequence being denoised: prompt then generation region.
#[derive(Clone, Debug, PartialEq)]
pub struct Canvas {
    tokens: Vec<u32>,
    fixed: Vec<bool>,
    mask_id: u32,
    prompt_len: usize,
}

impl Canvas {
    /// `prompt` (masks in it are to be filled) followed by `gen_length` masks.
    pub fn new(prompt: &[u32], gen_length: usize, mask_id: u32) -> Self {
        let mut tokens = prompt.to_vec();
        tokens.extend(std::iter::repeat_n(mask_id, gen_length));
        let fixed = tokens.iter().map(|&t| t != mask_id).collect();
        Self {
            tokens,
            fixed,
            mask_id,
            prompt_len: prompt.len(),
        }
    }

    /// Token ids, masks included.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Canvas length.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the canvas is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Length of the prompt.
    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    /// The mask id.
    pub fn mask_id(&self) -> u32 {
        self.mask_id
    }

    /// Whether position `i` holds a given prompt token (never to change).
    pub fn is_fixed(&self, i: usize) -> bool {
        self.fixed[i]
    }

    /// Whether position `i` is masked.
    pub fn is_masked(&self, i: usize) -> bool {
        self.tokens[i] == self.mask_id
    }

    /// Masked positions in `range`, ascending.
    pub fn masked_in(&self, range: Range<usize>) -> Vec<usize> {
        range.filter(|&i| self.is_masked(i)).collect()
    }

    /// Number of masked positions.
    pub fn masked_count(&self) -> usize {
        self.tokens.iter().filter(|&&t| t == self.mask_id).count()
    }

    /// Writes `token` at masked position `position`.
    fn commit(&mut self, position: usize, token: u32) {
        debug_assert!(self.is_masked(position) && !self.fixed[position]);
        self.tokens[position] = token;
    }

    /// Writes every commit.
    fn apply(&mut self, commits: &[Commit]) {
        for c in commits {
            self.commit(c.position, c.token);
        }
    }

    /// Per-position masked flags.
    pub fn masked_flags(&self) -> Vec<bool> {
        self.tokens.iter().map(|&t| t == self.mask_id).collect()
    }

    /// Shortens the canvas to `len` (BD3-LM and AR stopping at EOS).
    fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
        self.fixed.truncate(len);
    }

    /// The prompt with its given tokens replaced by masks (the unconditional input of CFG).
    fn unconditional(&self) -> Vec<u32> {
        let mut out = self.tokens.clone();
        out[..self.prompt_len].fill(self.mask_id);
        out
    }
}

/// What every sampler carries: the canvas, its counters, how it draws a token, its random stream.
#[derive(Clone, Debug)]
pub struct Base {
    /// The sequence being denoised.
    pub canvas: Canvas,
    /// Steps and calls so far.
    pub progress: Progress,
    pub(crate) draw: probs::TokenDraw,
    pub(crate) rng: crate::rng::Rng,
    /// Candidates reported per predicted position ([`TOP_CANDIDATES`], or 0 when nothing shows
    /// them: then no step computes them).
    pub(crate) candidates: usize,
    vocab: usize,
}

impl Base {
    fn new(canvas: Canvas, draw: &Draw, spec: &ModelSpec, gumbel: bool) -> Self {
        Self {
            canvas,
            progress: Progress::default(),
            draw: probs::TokenDraw::new(draw, spec.mask_id, gumbel),
            rng: crate::rng::Rng::new(draw.seed),
            candidates: TOP_CANDIDATES,
            vocab: spec.vocab_size,
        }
    }

    /// The randomness of the next row's token, from the run's generator.
    pub(crate) fn plan(&mut self) -> RowDraw {
        probs::plan_draw(&self.draw, self.vocab, &mut self.rng)
    }

    /// Whether steps report candidates.
    pub(crate) fn shows_candidates(&self) -> bool {
        self.candidates > 0
    }

    /// The candidates a reduced row reports for `position`, when steps report them.
    pub(crate) fn candidates_of(&self, position: usize, reduced: &Reduced) -> Option<Candidates> {
        self.shows_candidates()
            .then(|| Candidates::of(position, reduced))
    }

    /// A request for `rows` under the run's draw settings, with the numbers `ranking` ranks by.
    pub(crate) fn request(&self, rows: Vec<RowQuery>, ranking: Option<Remasking>) -> Reduce {
        Reduce {
            mask_id: self.draw.mask_id,
            temperature: self.draw.temperature,
            top_k: self.draw.top_k,
            top_p: self.draw.top_p,
            rows,
            margin: ranking == Some(Remasking::Margin),
            entropy: ranking == Some(Remasking::Entropy),
            candidates: self.candidates,
        }
    }
}

impl Candidates {
    /// The candidates a reduced row reports for `position`.
    pub(crate) fn of(position: usize, reduced: &Reduced) -> Self {
        Candidates {
            position,
            top: reduced
                .top
                .iter()
                .map(|&(token, prob)| TopToken { token, prob })
                .collect(),
        }
    }
}

/// Counters every sampler keeps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Steps emitted.
    pub steps: usize,
    /// Model calls made.
    pub model_calls: usize,
    /// Model calls MDLM's cache made unnecessary.
    pub skipped_calls: usize,
}

impl Progress {
    /// Builds the step that follows, counting it.
    fn emit(
        &mut self,
        canvas: &Canvas,
        commits: Vec<Commit>,
        block: Range<usize>,
        candidates: Vec<Candidates>,
    ) -> Step {
        let step = Step {
            index: self.steps,
            model_calls: self.model_calls,
            commits,
            canvas: canvas.tokens().to_vec(),
            masked: canvas.masked_flags(),
            block: [block.start, block.end],
            candidates,
            levels: Vec::new(),
        };
        self.steps += 1;
        step
    }
}

/// Tokens per step when `masked` tokens are spread over `steps` steps: equal shares, the
/// remainder one each over the first steps (LLaDA `get_num_transfer_tokens`).
pub fn transfer_schedule(masked: usize, steps: usize) -> Vec<usize> {
    let steps = steps.max(1);
    let (base, rem) = (masked / steps, masked % steps);
    (0..steps).map(|i| base + usize::from(i < rem)).collect()
}

/// Tokens to commit per step inside a block, on LLaDA's linear schedule: at a block's first step its
/// masked count is spread evenly over the block's steps (never more steps than masks).
#[derive(Clone, Debug)]
pub(crate) struct BlockSchedule {
    steps: usize,
    /// `Some(total)`: a block gets `steps · masked / total` steps (blocks of unequal mask counts,
    /// as BD3's first and last blocks); `None`: every block gets `steps`.
    total_masked: Option<usize>,
    counts: Vec<usize>,
    step: usize,
}

impl BlockSchedule {
    /// Every block gets `steps_per_block` steps (LLaDA: `steps / num_blocks`).
    pub(crate) fn per_block(steps_per_block: usize) -> Self {
        Self {
            steps: steps_per_block,
            total_masked: None,
            counts: Vec::new(),
            step: 0,
        }
    }

    /// `steps` shared among blocks in proportion to their masks.
    pub(crate) fn proportional(steps: usize, total_masked: usize) -> Self {
        Self {
            steps,
            total_masked: Some(total_masked.max(1)),
            counts: Vec::new(),
            step: 0,
        }
    }

    /// Forgets the finished block; the next count starts a new one.
    pub(crate) fn next_block(&mut self) {
        self.counts.clear();
    }

    /// How many of the block's `masked` positions to commit now.
    pub(crate) fn next_count(&mut self, masked: usize) -> usize {
        if self.counts.is_empty() {
            let steps = match self.total_masked {
                Some(total) => (self.steps * masked).div_ceil(total),
                None => self.steps,
            };
            self.counts = transfer_schedule(masked, steps.clamp(1, masked.max(1)));
            self.step = 0;
        }
        let count = self.counts.get(self.step).copied().unwrap_or(masked);
        self.step += 1;
        count
    }
}

/// MDLM's log-linear noise: σ(t) = −ln(1 − (1 − ε)t), the network's time input.
pub fn loglinear_sigma(t: f64) -> f32 {
    const EPS: f64 = 1e-3;
    (-(1.0 - (1.0 - EPS) * t).ln()) as f32
}

/// Checks what every sampler shares: the knobs against [`KNOBS`], the prompt and the lengths
/// against the model, and a KV cache against time conditioning.
fn check_common(
    prompt: &[u32],
    settings: &Settings,
    spec: &ModelSpec,
) -> Result<(), SettingsError> {
    settings.validate()?;
    if prompt.is_empty() {
        return Err(SettingsError::EmptyPrompt);
    }
    let prompt_masks = prompt.iter().filter(|&&t| t == spec.mask_id).count();
    let gen_length = settings.gen_length();
    if gen_length == 0 && prompt_masks == 0 {
        return Err(SettingsError::NothingToGenerate);
    }
    if let Some(&token) = prompt.iter().find(|&&t| t as usize >= spec.vocab_size) {
        return Err(SettingsError::TokenOutsideVocabulary {
            token,
            vocab_size: spec.vocab_size,
        });
    }
    let forcing = settings.sampler() == SamplerKind::Forcing;
    if forcing != spec.per_token_noise {
        return Err(if forcing {
            SettingsError::NeedsPerTokenNoise {
                own: SamplerKind::for_attention(spec.attention).name(),
            }
        } else {
            SettingsError::NeedsForcing {
                sampler: settings.sampler(),
            }
        });
    }
    // Diffusion forcing rolls a window along the canvas: it may outgrow the context.
    if !forcing && prompt.len().saturating_add(gen_length) > spec.model_length {
        return Err(SettingsError::TooLong {
            prompt: prompt.len(),
            gen_length,
            model_length: spec.model_length,
        });
    }
    let kv_cached = matches!(
        settings,
        Settings::Bd3(Bd3Settings {
            use_cache: true,
            ..
        }) | Settings::Ar(ArSettings {
            use_cache: true,
            ..
        })
    );
    if kv_cached && spec.time_conditioning {
        return Err(SettingsError::CacheUnsupported {
            sampler: settings.sampler(),
            why: CacheConflict::TimeConditioned,
        });
    }
    Ok(())
}

/// Checks that `steps` can be spread over `masked` tokens.
fn check_steps(steps: usize, masked: usize) -> Result<(), SettingsError> {
    if steps > masked {
        return Err(SettingsError::TooManySteps { steps, masked });
    }
    Ok(())
}

/// The sampler a [`Settings`] asks for, ready to step.
#[derive(Clone, Debug)]
pub enum AnySampler {
    /// [`llada::Llada`].
    Llada(llada::Llada),
    /// [`mdlm::Mdlm`].
    Mdlm(mdlm::Mdlm),
    /// [`bd3::Bd3`].
    Bd3(bd3::Bd3),
    /// [`ar::Ar`].
    Ar(ar::Ar),
    /// [`forcing::Forcing`].
    Forcing(forcing::Forcing),
}

impl AnySampler {
    /// Validates `settings` against the prompt and model and builds the sampler.
    pub fn new(settings: &Settings, prompt: &[u32], spec: &ModelSpec) -> Result<Self, SampleError> {
        check_common(prompt, settings, spec)?;
        Ok(match settings {
            Settings::Llada(s) => AnySampler::Llada(llada::Llada::new(s, prompt, spec)?),
            Settings::Mdlm(s) => AnySampler::Mdlm(mdlm::Mdlm::new(s, prompt, spec)?),
            Settings::Bd3(s) => AnySampler::Bd3(bd3::Bd3::new(s, prompt, spec)?),
            Settings::Ar(s) => AnySampler::Ar(ar::Ar::new(s, prompt, spec)?),
            Settings::Forcing(s) => AnySampler::Forcing(forcing::Forcing::new(s, prompt, spec)?),
        })
    }

    /// Runs at most one model call; `None` once the canvas is finished.
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        match self {
            AnySampler::Llada(s) => s.step(model).await,
            AnySampler::Mdlm(s) => s.step(model).await,
            AnySampler::Bd3(s) => s.step(model).await,
            AnySampler::Ar(s) => s.step(model).await,
            AnySampler::Forcing(s) => s.step(model).await,
        }
    }

    /// Whether steps report each position's most likely tokens (the page's inspector and
    /// `--trace` show them; a quiet run, a quality check or a training sample does not compute
    /// them).
    pub fn show_candidates(&mut self, show: bool) {
        self.base_mut().candidates = if show { TOP_CANDIDATES } else { 0 };
    }

    /// Whether a run that keeps every step (the page, a trace) may hold this one: diffusion
    /// forcing's matrix within [`forcing::MAX_MATRIX_CELLS`]; the other samplers' steps are
    /// bounded by their settings.
    pub fn check_recordable(&self) -> Result<(), SettingsError> {
        match self {
            AnySampler::Forcing(f) => Ok(f.matrix().check_recordable()?),
            AnySampler::Llada(_) | AnySampler::Mdlm(_) | AnySampler::Bd3(_) | AnySampler::Ar(_) => {
                Ok(())
            }
        }
    }

    fn base_mut(&mut self) -> &mut Base {
        match self {
            AnySampler::Llada(s) => &mut s.base,
            AnySampler::Mdlm(s) => &mut s.base,
            AnySampler::Bd3(s) => &mut s.base,
            AnySampler::Ar(s) => &mut s.base,
            AnySampler::Forcing(s) => &mut s.base,
        }
    }

    fn base(&self) -> &Base {
        match self {
            AnySampler::Llada(s) => &s.base,
            AnySampler::Mdlm(s) => &s.base,
            AnySampler::Bd3(s) => &s.base,
            AnySampler::Ar(s) => &s.base,
            AnySampler::Forcing(s) => &s.base,
        }
    }

    /// The canvas as it stands.
    pub fn canvas(&self) -> &Canvas {
        &self.base().canvas
    }

    /// Counters.
    pub fn progress(&self) -> &Progress {
        &self.base().progress
    }
}
