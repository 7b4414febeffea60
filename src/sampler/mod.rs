//! Samplers: how a canvas of masks becomes text, one model call at a time.
//!
//! Every sampler ([`llada`], [`mdlm`], [`bd3`], [`ar`]) is a state machine over a [`Canvas`]: each
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
pub mod llada;
pub mod mdlm;
pub mod probs;

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::network::{Denoiser, Logits, ModelError, ModelSpec};

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
}

impl SamplerKind {
    /// All of them, in the order the CLI lists them.
    pub const ALL: [SamplerKind; 4] = [
        SamplerKind::Llada,
        SamplerKind::Mdlm,
        SamplerKind::Bd3,
        SamplerKind::Ar,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            SamplerKind::Llada => "llada",
            SamplerKind::Mdlm => "mdlm",
            SamplerKind::Bd3 => "bd3",
            SamplerKind::Ar => "ar",
        }
    }
}

/// A setting a sampler may read: the page shows, and the URL carries, only the ones the chosen
/// sampler uses, and [`check_common`] refuses the ones it would silently ignore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    /// [`Settings::steps`].
    Steps,
    /// [`Settings::block_length`].
    BlockLength,
    /// [`Settings::remasking`].
    Remasking,
    /// [`Settings::cfg_scale`].
    Cfg,
    /// [`Settings::threshold`].
    Threshold,
    /// [`Settings::first_hitting`].
    FirstHitting,
    /// [`Settings::use_cache`].
    Cache,
    /// [`Settings::stop_at_eos`].
    StopAtEos,
}

impl SamplerKind {
    /// Whether this sampler reads `knob` (temperature, top-k, top-p, seed and `gen_length` are
    /// read by all of them). `bd3` reads `steps` and `remasking` only without first-hitting.
    pub fn uses(self, knob: Knob) -> bool {
        use SamplerKind::*;
        match knob {
            Knob::Steps => matches!(self, Llada | Mdlm | Bd3),
            Knob::BlockLength | Knob::Remasking | Knob::Threshold => matches!(self, Llada | Bd3),
            Knob::Cfg => self == Llada,
            Knob::FirstHitting => self == Bd3,
            Knob::StopAtEos => matches!(self, Bd3 | Ar),
            Knob::Cache => matches!(self, Mdlm | Bd3 | Ar),
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

/// Every knob of every sampler; each sampler reads the ones it has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Which sampler.
    pub sampler: SamplerKind,
    /// Denoising steps over the whole generation (LLaDA's `steps`; MDLM's `T`).
    pub steps: usize,
    /// Masks appended after the prompt.
    pub gen_length: usize,
    /// LLaDA's semi-autoregressive block; `None` means one block of `gen_length`. For `bd3` it must
    /// equal the model's block size when given.
    pub block_length: Option<usize>,
    /// Ranking of positions to commit (LLaDA rules, also inside BD3 blocks).
    pub remasking: Remasking,
    /// Softmax temperature of the prediction; 0 takes the argmax.
    #[serde(with = "crate::float_json")]
    pub temperature: f64,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Nucleus: keep the smallest set of tokens whose probability reaches p.
    #[serde(with = "crate::float_json::option", default)]
    pub top_p: Option<f64>,
    /// Classifier-free guidance scale s: logits = un + (s + 1)(cond − un); 0 is off.
    #[serde(with = "crate::float_json")]
    pub cfg_scale: f64,
    /// Fast-dLLM: commit every masked position of the block whose predicted token is at least τ
    /// probable (always at least the most confident one).
    #[serde(with = "crate::float_json::option", default)]
    pub threshold: Option<f64>,
    /// BD3-LM first-hitting: one uniformly chosen masked position per step.
    pub first_hitting: bool,
    /// Seed of every random draw.
    pub seed: u64,
    /// Use the KV cache (`bd3`, `ar`) or MDLM's skip-unchanged cache (`mdlm`).
    pub use_cache: bool,
    /// Stop after the first generated EOS (`bd3`, `ar`: variable length).
    pub stop_at_eos: bool,
}

impl Settings {
    /// The papers' defaults for `sampler`: greedy low-confidence LLaDA, MDLM at temperature 1,
    /// BD3-LM first-hitting with nucleus p = 0.9 as in its scripts, plain AR sampling.
    pub fn defaults(sampler: SamplerKind) -> Self {
        Settings {
            sampler,
            steps: 64,
            gen_length: 64,
            block_length: None,
            remasking: Remasking::LowConfidence,
            temperature: if sampler == SamplerKind::Llada {
                0.0
            } else {
                1.0
            },
            top_k: None,
            top_p: if sampler == SamplerKind::Bd3 {
                Some(0.9)
            } else {
                None
            },
            cfg_scale: 0.0,
            threshold: None,
            first_hitting: sampler == SamplerKind::Bd3,
            seed: 0,
            use_cache: true,
            stop_at_eos: true,
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
    #[error("{0}")]
    Settings(String),
}

fn bad(message: impl Into<String>) -> SampleError {
    SampleError::Settings(message.into())
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
    pub(crate) draw: probs::Draw,
    pub(crate) rng: crate::rng::Rng,
}

impl Base {
    fn new(canvas: Canvas, settings: &Settings, spec: &ModelSpec, gumbel: bool) -> Self {
        Self {
            canvas,
            progress: Progress::default(),
            draw: probs::Draw::new(settings, spec, gumbel),
            rng: crate::rng::Rng::new(settings.seed),
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

/// Largest classifier-free guidance scale accepted; LLaDA's experiments use 0–3, and beyond this
/// the f32 guided logits lose all precision.
pub const MAX_CFG_SCALE: f64 = 100.0;

/// Checks the prompt and lengths every sampler shares.
fn check_common(prompt: &[u32], settings: &Settings, spec: &ModelSpec) -> Result<(), SampleError> {
    if prompt.is_empty() {
        return Err(bad(
            "the prompt is empty: give some text to continue, or [MASK] tokens to fill",
        ));
    }
    let prompt_masks = prompt.iter().filter(|&&t| t == spec.mask_id).count();
    if settings.gen_length == 0 && prompt_masks == 0 {
        return Err(bad(
            "gen_length is 0 and the prompt has no [MASK]: nothing to generate; raise gen_length",
        ));
    }
    if let Some(&t) = prompt.iter().find(|&&t| t as usize >= spec.vocab_size) {
        return Err(bad(format!(
            "token id {t} is outside the vocabulary of {} tokens",
            spec.vocab_size
        )));
    }
    let total = prompt.len().saturating_add(settings.gen_length);
    if total > spec.model_length {
        return Err(bad(format!(
            "prompt ({} tokens) + gen_length ({}) = {total} exceeds the model's {} positions (model_length); shorten one of them",
            prompt.len(),
            settings.gen_length,
            spec.model_length
        )));
    }
    if !(settings.temperature >= 0.0 && settings.temperature.is_finite()) {
        return Err(bad(format!(
            "temperature must be ≥ 0, got {}",
            settings.temperature
        )));
    }
    if let Some(p) = settings.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(bad(format!("top_p must be in (0, 1], got {p}")));
    }
    if settings.top_k == Some(0) {
        return Err(bad("top_k must be at least 1"));
    }
    if let Some(t) = settings.threshold
        && !(0.0..=1.0).contains(&t)
    {
        return Err(bad(format!("threshold must be in [0, 1], got {t}")));
    }
    if !(0.0..=MAX_CFG_SCALE).contains(&settings.cfg_scale) {
        return Err(bad(format!(
            "cfg scale must be in [0, {MAX_CFG_SCALE}], got {}",
            settings.cfg_scale
        )));
    }
    let kv_cached = matches!(settings.sampler, SamplerKind::Bd3 | SamplerKind::Ar);
    if kv_cached && settings.use_cache && spec.time_conditioning {
        return Err(bad(
            "this model is time-conditioned: cached keys and values would keep the noise level they were made with; turn the cache off (--no-cache; on the page, untick \"cache\")",
        ));
    }
    let unused = [
        ("cfg", settings.cfg_scale > 0.0, Knob::Cfg),
        ("threshold", settings.threshold.is_some(), Knob::Threshold),
        (
            "block_length",
            settings.block_length.is_some(),
            Knob::BlockLength,
        ),
    ];
    for (name, set, knob) in unused {
        if set && !settings.sampler.uses(knob) {
            let users: Vec<&str> = SamplerKind::ALL
                .iter()
                .filter(|s| s.uses(knob))
                .map(|s| s.name())
                .collect();
            return Err(bad(format!(
                "the {} sampler has no {name} setting (it belongs to {}); leave it out",
                settings.sampler.name(),
                users.join(" and ")
            )));
        }
    }
    Ok(())
}

/// Checks that `steps` can be spread over `masked` tokens.
fn check_steps(steps: usize, masked: usize) -> Result<(), SampleError> {
    if steps == 0 {
        return Err(bad("steps must be at least 1"));
    }
    if steps > masked {
        return Err(bad(format!(
            "steps ({steps}) is larger than the number of masked tokens ({masked}); use at most {masked} steps"
        )));
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
}

impl AnySampler {
    /// Validates `settings` against the prompt and model and builds the sampler.
    pub fn new(settings: &Settings, prompt: &[u32], spec: &ModelSpec) -> Result<Self, SampleError> {
        check_common(prompt, settings, spec)?;
        Ok(match settings.sampler {
            SamplerKind::Llada => AnySampler::Llada(llada::Llada::new(settings, prompt, spec)?),
            SamplerKind::Mdlm => AnySampler::Mdlm(mdlm::Mdlm::new(settings, prompt, spec)?),
            SamplerKind::Bd3 => AnySampler::Bd3(bd3::Bd3::new(settings, prompt, spec)?),
            SamplerKind::Ar => AnySampler::Ar(ar::Ar::new(settings, prompt, spec)?),
        })
    }

    /// Runs at most one model call; `None` once the canvas is finished.
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        match self {
            AnySampler::Llada(s) => s.step(model).await,
            AnySampler::Mdlm(s) => s.step(model).await,
            AnySampler::Bd3(s) => s.step(model).await,
            AnySampler::Ar(s) => s.step(model).await,
        }
    }

    fn base(&self) -> &Base {
        match self {
            AnySampler::Llada(s) => &s.base,
            AnySampler::Mdlm(s) => &s.base,
            AnySampler::Bd3(s) => &s.base,
            AnySampler::Ar(s) => &s.base,
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
