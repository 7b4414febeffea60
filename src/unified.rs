//! One vocabulary for text and images: the token layout of the unified family (MMaDA, Yang et
//! al. 2025, arXiv:2505.15809; `Gen-Verse/MMaDA`), on the handwritten digits.
//!
//! MMaDA appends its image tokenizer's codes after the text vocabulary with task and boundary
//! tokens (`<|t2i|>`, `<|mmu|>`, `<|soi|>`, `<|eoi|>`) and lays a sample out as in
//! `training/prompting_utils.py`: `<|t2i|> <bos> caption <eos> <|soi|> image <|eoi|>` to make
//! an image from its caption, `<|mmu|> <|soi|> image <|eoi|> <bos> caption <eos>` to caption an
//! image. At 8×8 no learned image tokenizer is needed: each pixel's grey level (0–16) is its own
//! token, `<|img_0|>` … `<|img_16|>`. A caption lives in a slot of [`CAPTION_SLOT`] positions:
//! `<bos>`, its tokens, then `<eos>` to the end of the slot (LLaDA pads its answers with EOS the
//! same way, so the model decides a caption's length), which keeps every sequence
//! [`SEQUENCE_LEN`] tokens long.
//!
//! The tokens are added to the corpus tokenizer's `tokenizer.json` ([`extend_tokenizer`]), and
//! [`Layout::of`] finds them there by name: a folder whose tokenizer lacks them is a text-only
//! model, refused by name.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::engine::Generation;
use crate::network::{Denoiser, ModelError, ModelSpec, Rows};
use crate::sampler::maskgit::{MaskGit, MaskGitSettings};
use crate::sampler::{
    Draw, Knob, LladaSettings, Remasking, SampleError, Settings, SettingsError, Step,
};
use crate::text::TextCodec;

/// Pixels of a digit (8×8; `corpus::digits::PIXELS`, which the page's build does not hold).
pub const PIXELS: usize = SIDE * SIDE;
/// Pixels along a side of a digit.
pub const SIDE: usize = 8;
/// The darkest grey level (`corpus::digits::MAX_VALUE`).
pub const MAX_VALUE: u8 = 16;
/// The digits' classes (`corpus::digits::CLASSES`).
pub const CLASSES: usize = 10;

/// The task token of text → image.
pub const T2I: &str = "<|t2i|>";
/// The task token of image → text (multimodal understanding).
pub const MMU: &str = "<|mmu|>";
/// Start of an image.
pub const SOI: &str = "<|soi|>";
/// End of an image.
pub const EOI: &str = "<|eoi|>";
/// Grey levels, each its own image token: 0 (blank) to 16 (ink).
pub const IMAGE_CODES: usize = MAX_VALUE as usize + 1;
/// Positions of a caption: `<bos>`, at most [`MAX_CAPTION_TOKENS`] tokens, then `<eos>` padding.
pub const CAPTION_SLOT: usize = 16;
/// The most tokens a caption may have: the slot less its `<bos>` and one `<eos>`.
pub const MAX_CAPTION_TOKENS: usize = CAPTION_SLOT - 2;
/// Every sequence's length: a task token, the caption slot, `<|soi|>`, 64 pixels, `<|eoi|>`.
pub const SEQUENCE_LEN: usize = 1 + CAPTION_SLOT + 1 + PIXELS + 1;

/// The name of grey level `level`'s token.
pub fn image_token_name(level: usize) -> String {
    format!("<|img_{level}|>")
}

/// The digits' names, as captions spell them.
pub const DIGIT_WORDS: [&str; CLASSES] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// Caption templates: `{w}` is the digit's word, `{n}` its numeral. Varied as the issue asks
/// ("a handwritten seven", "the digit 7", "seven, written by hand", …).
pub const CAPTION_TEMPLATES: [&str; 8] = [
    "a handwritten {w}",
    "the digit {n}",
    "{w}, written by hand",
    "the number {w}",
    "a {w} drawn by hand",
    "a picture of the digit {w}",
    "handwriting: {n}",
    "someone wrote a {w}",
];

/// Caption `template` (an index into [`CAPTION_TEMPLATES`], wrapping) for digit `label`.
pub fn caption(label: u8, template: usize) -> String {
    let digit = usize::from(label) % CLASSES;
    CAPTION_TEMPLATES[template % CAPTION_TEMPLATES.len()]
        .replace("{w}", DIGIT_WORDS[digit])
        .replace("{n}", &digit.to_string())
}

/// The digit a caption names — by word or numeral, whole words only — when it names exactly
/// one (a caption naming two digits, or none, names none).
pub fn digit_named(caption: &str) -> Option<u8> {
    let mut named = None;
    for word in caption
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let digit = DIGIT_WORDS.iter().position(|&d| d == word).or_else(|| {
            (word.len() == 1)
                .then(|| word.parse::<usize>().ok())
                .flatten()
        });
        match (named, digit) {
            (_, None) => {}
            (None, Some(d)) => named = Some(d),
            (Some(a), Some(b)) if a == b => {}
            (Some(_), Some(_)) => return None,
        }
    }
    named.map(|d| d as u8)
}

/// What a unified model's input cannot be.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum UnifiedError {
    /// The tokenizer lacks a token of the layout: not a text + image model.
    #[error(
        "the tokenizer has no {name} token: this is a text-only model; the t2i and mmu tasks need a model trained with `unmask train --objective unified`"
    )]
    MissingToken {
        /// The token's name.
        name: String,
    },
    /// The image tokens are not numbered one after another.
    #[error("the image tokens are not consecutive: {name} is id {id}, expected {expected}")]
    ImageIds {
        /// The token.
        name: String,
        /// Its id.
        id: u32,
        /// The id it should have.
        expected: u32,
    },
    /// The tokenizer has no `<bos>` or `<eos>` to frame a caption.
    #[error("the tokenizer has no beginning- or end-of-sequence token to frame a caption")]
    NoCaptionFrame,
    /// Nothing to draw from.
    #[error("the caption is empty: say what to draw, e.g. \"a handwritten seven\"")]
    EmptyCaption,
    /// A caption that spells out one of the layout's own tokens.
    #[error(
        "the caption spells out {token}, a token of the model's own; describe the digit in words"
    )]
    SpecialInCaption {
        /// The token.
        token: String,
    },
    /// A caption longer than its slot.
    #[error(
        "the caption is {tokens} tokens long; at most {MAX_CAPTION_TOKENS} fit (say it in fewer words)"
    )]
    CaptionTooLong {
        /// Its tokens.
        tokens: usize,
    },
    /// An image of the wrong size.
    #[error("an image has {PIXELS} pixels (8×8); this one has {len}")]
    ImageSize {
        /// The values given.
        len: usize,
    },
    /// A pixel off the 0–16 scale.
    #[error("pixel {index} is {value}: grey levels run from 0 (blank) to {MAX_VALUE} (ink)")]
    PixelRange {
        /// Its index, row-major.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A caption that does not encode.
    #[error("the caption cannot be encoded: {0}")]
    Encode(String),
    /// The sampler refused its settings.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// An image's 64 grey levels, checked: whole numbers on 0–16 (an image file holds numbers; a
/// fractional or negative one is refused rather than rounded).
pub fn image_from_values(values: &[f64]) -> Result<[u8; PIXELS], UnifiedError> {
    if values.len() != PIXELS {
        return Err(UnifiedError::ImageSize { len: values.len() });
    }
    let mut image = [0u8; PIXELS];
    for (index, (&value, pixel)) in values.iter().zip(&mut image).enumerate() {
        if !(value.fract() == 0.0 && (0.0..=f64::from(MAX_VALUE)).contains(&value)) {
            return Err(UnifiedError::PixelRange { index, value });
        }
        *pixel = value as u8;
    }
    Ok(image)
}

/// Where the unified family's tokens are in a vocabulary, and the sequences built from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `<|t2i|>`.
    pub t2i: u32,
    /// `<|mmu|>`.
    pub mmu: u32,
    /// `<|soi|>`.
    pub soi: u32,
    /// `<|eoi|>`.
    pub eoi: u32,
    /// `<|img_0|>`; grey level v is `image_base + v`.
    pub image_base: u32,
    /// `<bos>`, opening a caption slot.
    pub bos: u32,
    /// `<eos>`, closing a caption and padding its slot.
    pub eos: u32,
    /// The mask, shared by text and image positions (as MMaDA's).
    pub mask: u32,
    /// Ids below this are the text vocabulary (the corpus tokenizer's tokens and specials): a
    /// caption position draws from them only.
    pub text_vocab: u32,
}

impl Layout {
    /// Finds the layout's tokens in `codec`'s tokenizer.
    pub fn of(codec: &TextCodec) -> Result<Self, UnifiedError> {
        let id = |name: &str| {
            codec.token_id(name).ok_or(UnifiedError::MissingToken {
                name: name.to_owned(),
            })
        };
        let (t2i, mmu, soi, eoi) = (id(T2I)?, id(MMU)?, id(SOI)?, id(EOI)?);
        let image_base = id(&image_token_name(0))?;
        for level in 1..IMAGE_CODES {
            let name = image_token_name(level);
            let got = id(&name)?;
            let expected = image_base + level as u32;
            if got != expected {
                return Err(UnifiedError::ImageIds {
                    name,
                    id: got,
                    expected,
                });
            }
        }
        let (Some(bos), Some(eos)) = (codec.bos_id(), codec.eos_id()) else {
            return Err(UnifiedError::NoCaptionFrame);
        };
        Ok(Self {
            t2i,
            mmu,
            soi,
            eoi,
            image_base,
            bos,
            eos,
            mask: codec.mask_id(),
            text_vocab: [t2i, mmu, soi, eoi, image_base]
                .into_iter()
                .min()
                .unwrap_or(0),
        })
    }

    /// The ids of the grey levels' tokens.
    pub fn image_codes(&self) -> Range<u32> {
        self.image_base..self.image_base + IMAGE_CODES as u32
    }

    /// The token of grey level `level`.
    pub fn image_token(&self, level: u8) -> u32 {
        self.image_base + u32::from(level.min(MAX_VALUE))
    }

    /// The grey level of `token`, when it is an image token.
    pub fn level_of(&self, token: u32) -> Option<u8> {
        self.image_codes()
            .contains(&token)
            .then(|| (token - self.image_base) as u8)
    }

    /// A caption slot holding `caption`'s tokens; an empty one is the unconditional caption of
    /// classifier-free guidance.
    pub fn caption_slot(&self, caption: &[u32]) -> Result<Vec<u32>, UnifiedError> {
        if caption.len() > MAX_CAPTION_TOKENS {
            return Err(UnifiedError::CaptionTooLong {
                tokens: caption.len(),
            });
        }
        let mut slot = Vec::with_capacity(CAPTION_SLOT);
        slot.push(self.bos);
        slot.extend_from_slice(caption);
        slot.resize(CAPTION_SLOT, self.eos);
        Ok(slot)
    }

    /// A caption's tokens, encoded by `codec` and checked: not empty, fitting its slot.
    pub fn encode_caption(&self, codec: &TextCodec, text: &str) -> Result<Vec<u32>, UnifiedError> {
        let tokens = codec
            .encode(text.trim())
            .map_err(|e| UnifiedError::Encode(e.to_string()))?;
        if tokens.is_empty() {
            return Err(UnifiedError::EmptyCaption);
        }
        if let Some(&t) = tokens.iter().find(|&&t| t >= self.text_vocab) {
            return Err(UnifiedError::SpecialInCaption {
                token: codec.token_name(t).unwrap_or_else(|| t.to_string()),
            });
        }
        self.caption_slot(&tokens)?;
        Ok(tokens)
    }

    /// Text → image: `<|t2i|>`, the caption slot, `<|soi|>`, the image (masked where `None`),
    /// `<|eoi|>`.
    pub fn t2i(&self, slot: &[u32], image: Option<&[u8; PIXELS]>) -> Vec<u32> {
        let mut seq = Vec::with_capacity(SEQUENCE_LEN);
        seq.push(self.t2i);
        seq.extend_from_slice(slot);
        seq.push(self.soi);
        self.push_image(&mut seq, image);
        seq.push(self.eoi);
        seq
    }

    /// Image → text: `<|mmu|>`, `<|soi|>`, the image, `<|eoi|>`, the caption slot (its `<bos>`
    /// given and the rest masked where `None`).
    pub fn mmu(&self, image: &[u8; PIXELS], slot: Option<&[u32]>) -> Vec<u32> {
        let mut seq = Vec::with_capacity(SEQUENCE_LEN);
        seq.push(self.mmu);
        seq.push(self.soi);
        self.push_image(&mut seq, Some(image));
        seq.push(self.eoi);
        match slot {
            Some(slot) => seq.extend_from_slice(slot),
            None => {
                seq.push(self.bos);
                seq.resize(SEQUENCE_LEN, self.mask);
            }
        }
        seq
    }

    fn push_image(&self, seq: &mut Vec<u32>, image: Option<&[u8; PIXELS]>) {
        match image {
            Some(image) => seq.extend(image.iter().map(|&v| self.image_token(v))),
            None => seq.extend(std::iter::repeat_n(self.mask, PIXELS)),
        }
    }

    /// The image's positions in a text → image sequence.
    pub const T2I_IMAGE: Range<usize> = 2 + CAPTION_SLOT..2 + CAPTION_SLOT + PIXELS;
    /// The caption slot's positions in a text → image sequence.
    pub const T2I_CAPTION: Range<usize> = 1..1 + CAPTION_SLOT;
    /// The image's positions in an image → text sequence.
    pub const MMU_IMAGE: Range<usize> = 2..2 + PIXELS;
    /// The caption's positions after its `<bos>` in an image → text sequence: what it answers.
    pub const MMU_ANSWER: Range<usize> = SEQUENCE_LEN - CAPTION_SLOT + 1..SEQUENCE_LEN;

    /// The image a sequence's `positions` hold, when every one is an image token.
    pub fn image_in(&self, seq: &[u32], positions: Range<usize>) -> Option<[u8; PIXELS]> {
        let cells = seq.get(positions)?;
        let mut image = [0u8; PIXELS];
        for (pixel, &token) in image.iter_mut().zip(cells) {
            *pixel = self.level_of(token)?;
        }
        (cells.len() == PIXELS).then_some(image)
    }

    /// The caption an image → text sequence answers: its tokens up to the first `<eos>` (masks
    /// and other tokens kept as they are).
    pub fn answer<'a>(&self, seq: &'a [u32]) -> &'a [u32] {
        let answer = seq.get(Self::MMU_ANSWER).unwrap_or(&[]);
        let end = answer
            .iter()
            .position(|&t| t == self.eos)
            .unwrap_or(answer.len());
        &answer[..end]
    }
}

impl Layout {
    /// Text → image: a MaskGIT run drawing the 64 cells for `caption` (its tokens), guided
    /// against the empty caption.
    pub fn text_to_image(
        &self,
        caption: &[u32],
        settings: &MaskGitSettings,
        spec: &ModelSpec,
    ) -> Result<MaskGit, UnifiedError> {
        if caption.is_empty() {
            return Err(UnifiedError::EmptyCaption);
        }
        let prompt = self.t2i(&self.caption_slot(caption)?, None);
        let uncond = self.t2i(&self.caption_slot(&[])?, None);
        let codes = self.image_codes();
        Ok(MaskGit::new(
            settings,
            &prompt,
            &uncond,
            Self::T2I_IMAGE,
            codes,
            spec,
        )?)
    }

    /// Image → text: LLaDA's low-confidence remasking over the caption's answer positions
    /// (`steps` of them, one token a step by default), greedy. Run it through [`TextOnly`], so
    /// that a caption position draws text tokens only.
    pub fn image_to_text(
        &self,
        image: &[u8; PIXELS],
        steps: Option<usize>,
        seed: u64,
        spec: &ModelSpec,
    ) -> Result<Generation, SampleError> {
        let settings = Settings::Llada(LladaSettings {
            gen_length: 0,
            steps: steps.unwrap_or(Self::MMU_ANSWER.len()),
            block_length: None,
            remasking: Remasking::LowConfidence,
            cfg_scale: 0.0,
            threshold: None,
            draw: Draw {
                seed,
                ..Draw::at(0.0)
            },
        });
        Generation::from_ids(settings, &self.mmu(image, None), spec)
    }
}

/// Image → text's knobs (the sampler is LLaDA's low-confidence remasking, greedy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptionSettings {
    /// Steps over the caption's [`Layout::MMU_ANSWER`] positions (one token a step at most).
    pub steps: usize,
    /// Seed of every draw.
    pub seed: u64,
}

impl Default for CaptionSettings {
    /// One token a step.
    fn default() -> Self {
        Self {
            steps: Layout::MMU_ANSWER.len(),
            seed: 0,
        }
    }
}

impl CaptionSettings {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let most = Layout::MMU_ANSWER.len();
        if !(1..=most).contains(&self.steps) {
            return Err(SettingsError::OutOfRange {
                knob: Knob::Steps,
                value: self.steps.to_string(),
                expected: format!("a whole number from 1 to {most} (the caption's positions)"),
            });
        }
        Ok(())
    }
}

/// The two tasks of a text + image model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Text → image.
    #[default]
    T2i,
    /// Image → text (multimodal understanding).
    Mmu,
}

impl TaskKind {
    /// Its name in links, files and the CLI's `--task`.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::T2i => "t2i",
            TaskKind::Mmu => "mmu",
        }
    }

    /// The image's positions in this task's sequence.
    pub fn image_positions(self) -> Range<usize> {
        match self {
            TaskKind::T2i => Layout::T2I_IMAGE,
            TaskKind::Mmu => Layout::MMU_IMAGE,
        }
    }

    /// The caption's positions in this task's sequence (for image → text, those it answers).
    pub fn caption_positions(self) -> Range<usize> {
        match self {
            TaskKind::T2i => Layout::T2I_CAPTION.start + 1..Layout::T2I_CAPTION.end,
            TaskKind::Mmu => Layout::MMU_ANSWER,
        }
    }
}

/// One run of a text + image model: its task, the task's input and its knobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnifiedTask {
    /// Text → image: MaskGIT fills the 64 cells for `caption`.
    T2i {
        /// What to draw, in words ("a handwritten seven").
        caption: String,
        /// Steps, guidance, temperature and seed.
        settings: MaskGitSettings,
    },
    /// Image → text: LLaDA unmasks a caption for `image`.
    Mmu {
        /// The digit: 64 grey levels on 0–16, row by row.
        image: Vec<u8>,
        /// Steps and seed.
        settings: CaptionSettings,
    },
}

impl UnifiedTask {
    /// Which task.
    pub fn kind(&self) -> TaskKind {
        match self {
            UnifiedTask::T2i { .. } => TaskKind::T2i,
            UnifiedTask::Mmu { .. } => TaskKind::Mmu,
        }
    }

    /// The seed of every draw.
    pub fn seed(&self) -> u64 {
        match self {
            UnifiedTask::T2i { settings, .. } => settings.seed,
            UnifiedTask::Mmu { settings, .. } => settings.seed,
        }
    }

    /// Runs on `seed`.
    pub fn set_seed(&mut self, seed: u64) {
        match self {
            UnifiedTask::T2i { settings, .. } => settings.seed = seed,
            UnifiedTask::Mmu { settings, .. } => settings.seed = seed,
        }
    }

    /// Its steps.
    pub fn steps(&self) -> usize {
        match self {
            UnifiedTask::T2i { settings, .. } => settings.steps,
            UnifiedTask::Mmu { settings, .. } => settings.steps,
        }
    }
}

/// A run of either task, step by step: what the CLI, the page's worker and the tests drive.
/// Each step is a [`Step`] over the [`SEQUENCE_LEN`]-token canvas, as a text sampler's, so a
/// run records and replays as a token canvas whose image cells are grey levels.
pub struct UnifiedRun {
    sampler: TaskSampler,
    layout: Layout,
    prompt_ids: Vec<u32>,
    steps: Vec<Step>,
}

enum TaskSampler {
    Image(MaskGit),
    Caption(Box<Generation>),
}

impl UnifiedRun {
    /// Prepares `task` on a model of `spec` whose tokenizer `codec` has the tokens of `layout`;
    /// bad input (an empty or too long caption, an image off the 0–16 scale, bad knobs) is
    /// refused here, before any model call.
    pub fn new(
        task: &UnifiedTask,
        layout: &Layout,
        codec: &TextCodec,
        spec: &ModelSpec,
    ) -> Result<Self, UnifiedError> {
        let sampler = match task {
            UnifiedTask::T2i { caption, settings } => {
                let tokens = layout.encode_caption(codec, caption)?;
                TaskSampler::Image(layout.text_to_image(&tokens, settings, spec)?)
            }
            UnifiedTask::Mmu { image, settings } => {
                settings.validate()?;
                let values: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
                let image = image_from_values(&values)?;
                let generation = layout
                    .image_to_text(&image, Some(settings.steps), settings.seed, spec)
                    .map_err(|e| match e {
                        SampleError::Settings(e) => UnifiedError::Settings(e),
                        e => UnifiedError::Encode(e.to_string()),
                    })?;
                TaskSampler::Caption(Box::new(generation))
            }
        };
        let prompt_ids = match &sampler {
            TaskSampler::Image(m) => m.canvas().tokens().to_vec(),
            TaskSampler::Caption(g) => g.prompt_ids().to_vec(),
        };
        Ok(Self {
            sampler,
            layout: layout.clone(),
            prompt_ids,
            steps: Vec::new(),
        })
    }

    /// Whether steps report each masked position's most likely tokens (image → text only;
    /// MaskGIT's steps never do).
    pub fn show_candidates(&mut self, show: bool) {
        if let TaskSampler::Caption(g) = &mut self.sampler {
            g.show_candidates(show);
        }
    }

    /// Runs the next step; `None` once the image or the caption is whole. A caption position
    /// draws text tokens only ([`TextOnly`]).
    pub async fn next<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<&Step>, SampleError> {
        let step = match &mut self.sampler {
            TaskSampler::Image(m) => m.step(model).await?,
            TaskSampler::Caption(g) => {
                let mut model = TextOnly::new(model, &self.layout);
                g.next(&mut model).await?.cloned()
            }
        };
        match step {
            Some(step) => {
                self.steps.push(step);
                Ok(self.steps.last())
            }
            None => Ok(None),
        }
    }

    /// The canvas before the first step.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    /// The canvas as it stands.
    pub fn tokens(&self) -> &[u32] {
        match &self.sampler {
            TaskSampler::Image(m) => m.canvas().tokens(),
            TaskSampler::Caption(g) => g.sampler().canvas().tokens(),
        }
    }

    /// Steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Model calls so far.
    pub fn model_calls(&self) -> usize {
        self.steps.last().map_or(0, |s| s.model_calls)
    }

    /// The drawn image, once every cell is an image token (text → image).
    pub fn image(&self) -> Option<[u8; PIXELS]> {
        self.layout.image_in(self.tokens(), Layout::T2I_IMAGE)
    }

    /// The caption's tokens as they stand (image → text): the answer up to its `<eos>`.
    pub fn caption_tokens(&self) -> &[u32] {
        self.layout.answer(self.tokens())
    }
}

/// The grey level a token's text names (`<|img_5|>` → 5): how a recorded run, which keeps each
/// token's text, is drawn without its tokenizer.
pub fn level_named(text: &str) -> Option<u8> {
    let level: u8 = text
        .strip_prefix("<|img_")?
        .strip_suffix("|>")?
        .parse()
        .ok()?;
    (level <= MAX_VALUE && image_token_name(level.into()) == text).then_some(level)
}

/// A unified model seen through its text vocabulary only: every prediction's image, task and
/// boundary tokens are ruled out ([`Rows::suppress`]), as MMaDA slices its logits to the text
/// tokens for a caption.
pub struct TextOnly<'a, D> {
    model: &'a mut D,
    text_vocab: usize,
}

impl<'a, D: Denoiser> TextOnly<'a, D> {
    /// `model`, drawing only ids below `layout.text_vocab`.
    pub fn new(model: &'a mut D, layout: &Layout) -> Self {
        Self {
            model,
            text_vocab: layout.text_vocab as usize,
        }
    }

    fn others(&self) -> Range<usize> {
        self.text_vocab..self.model.spec().vocab_size
    }
}

impl<D: Denoiser> Denoiser for TextOnly<'_, D> {
    type Rows = D::Rows;

    fn spec(&self) -> &ModelSpec {
        self.model.spec()
    }

    async fn predict(
        &mut self,
        batch: &[&[u32]],
        targets: Range<usize>,
        sigma: f32,
    ) -> Result<Vec<D::Rows>, ModelError> {
        let others = self.others();
        let rows = self.model.predict(batch, targets, sigma).await?;
        Ok(rows
            .into_iter()
            .map(|r| r.suppress(others.clone()))
            .collect())
    }

    async fn predict_cached(
        &mut self,
        commit: &[u32],
        block: &[u32],
        sigma: f32,
    ) -> Result<D::Rows, ModelError> {
        let others = self.others();
        Ok(self
            .model
            .predict_cached(commit, block, sigma)
            .await?
            .suppress(others))
    }

    fn reset_cache(&mut self) {
        self.model.reset_cache();
    }
}

/// The corpus tokenizer's `tokenizer.json` with the unified family's tokens added after its
/// vocabulary (special tokens, so no text ever encodes to them): the task and boundary tokens,
/// then the grey levels.
pub fn extend_tokenizer(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("tokenizer.json: {e}"))?;
    let size = TextCodec::vocab_size_of(bytes).map_err(|e| e.to_string())?;
    let names: Vec<String> = [T2I, MMU, SOI, EOI]
        .iter()
        .map(|s| s.to_string())
        .chain((0..IMAGE_CODES).map(image_token_name))
        .collect();
    let added = json
        .get_mut("added_tokens")
        .and_then(|a| a.as_array_mut())
        .ok_or("tokenizer.json has no added_tokens list")?;
    if let Some(name) = names.iter().find(|n| {
        added
            .iter()
            .any(|t| t.get("content").and_then(|c| c.as_str()) == Some(n))
    }) {
        return Err(format!("tokenizer.json already has {name}"));
    }
    for (i, name) in names.into_iter().enumerate() {
        added.push(serde_json::json!({
            "id": size + i,
            "content": name,
            "single_word": false,
            "lstrip": false,
            "rstrip": false,
            "normalized": false,
            "special": true,
        }));
    }
    serde_json::to_vec(&json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digits_shape_is_the_corpus_s() {
        use crate::corpus::digits;
        assert_eq!(
            (PIXELS, MAX_VALUE, CLASSES),
            (digits::PIXELS, digits::MAX_VALUE, digits::CLASSES)
        );
    }

    #[test]
    fn captions_name_their_digit_and_only_it() {
        for label in 0..10u8 {
            for t in 0..CAPTION_TEMPLATES.len() {
                let c = caption(label, t);
                assert_eq!(digit_named(&c), Some(label), "{c:?}");
            }
        }
        assert_eq!(digit_named("the digit 7, or a seven"), Some(7));
        assert_eq!(digit_named("a seven or an eight"), None);
        assert_eq!(digit_named("someone wrote it"), None);
        // Whole words only: "none" and "often" hold "one" and "ten" but name nothing.
        assert_eq!(digit_named("none often 17"), None);
    }

    #[test]
    fn sequences_have_one_length_and_their_parts_where_the_ranges_say() {
        let layout = Layout {
            t2i: 100,
            mmu: 101,
            soi: 102,
            eoi: 103,
            image_base: 104,
            bos: 1,
            eos: 2,
            mask: 3,
            text_vocab: 100,
        };
        let image: [u8; PIXELS] = std::array::from_fn(|i| (i % 17) as u8);
        let slot = layout.caption_slot(&[10, 11, 12]).unwrap();
        assert_eq!(slot[..5], [1, 10, 11, 12, 2]);
        assert!(slot[4..].iter().all(|&t| t == 2));
        let t2i = layout.t2i(&slot, Some(&image));
        assert_eq!(t2i.len(), SEQUENCE_LEN);
        assert_eq!(t2i[Layout::T2I_CAPTION], slot[..]);
        assert_eq!(layout.image_in(&t2i, Layout::T2I_IMAGE), Some(image));
        assert_eq!(t2i[Layout::T2I_IMAGE.start - 1], layout.soi);
        assert_eq!(t2i[Layout::T2I_IMAGE.end], layout.eoi);
        let masked = layout.t2i(&slot, None);
        assert!(masked[Layout::T2I_IMAGE].iter().all(|&t| t == 3));
        let mmu = layout.mmu(&image, Some(&slot));
        assert_eq!(mmu.len(), SEQUENCE_LEN);
        assert_eq!(layout.image_in(&mmu, Layout::MMU_IMAGE), Some(image));
        assert_eq!(mmu[Layout::MMU_ANSWER.start - 1], layout.bos);
        assert_eq!(layout.answer(&mmu), [10, 11, 12]);
        let open = layout.mmu(&image, None);
        assert!(open[Layout::MMU_ANSWER].iter().all(|&t| t == 3));
        assert_eq!(
            layout.caption_slot(&[5; MAX_CAPTION_TOKENS + 1]),
            Err(UnifiedError::CaptionTooLong { tokens: 15 })
        );
    }

    #[test]
    fn images_are_whole_grey_levels_of_the_right_size() {
        let ok: Vec<f64> = (0..64).map(|i| (i % 17) as f64).collect();
        assert_eq!(image_from_values(&ok).unwrap()[16], 16);
        assert_eq!(
            image_from_values(&ok[..63]),
            Err(UnifiedError::ImageSize { len: 63 })
        );
        for bad in [17.0, -1.0, 2.5, f64::NAN] {
            let mut v = ok.clone();
            v[9] = bad;
            assert!(
                matches!(
                    image_from_values(&v),
                    Err(UnifiedError::PixelRange { index: 9, .. })
                ),
                "{bad}"
            );
        }
    }
}
