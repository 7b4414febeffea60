//! Runs a sampler on a model and keeps its steps: the loop the CLI, the page and the tests share.
//!
//! A [`Generation`] is created from settings and a prompt, stepped with [`Generation::next`] (one
//! model call at most, so a caller can paint, yield or cancel between steps), and turned into a
//! [`Trajectory`] at the end.

use std::collections::BTreeMap;

use crate::sampler::{AnySampler, Denoiser, ModelSpec, SampleError, Settings, SettingsError, Step};
use crate::text::TextCodec;
use crate::trajectory::{ModelInfo, Stats, TRAJECTORY_FORMAT, TRAJECTORY_VERSION, Trajectory};

/// One run in progress.
#[derive(Clone, Debug)]
pub struct Generation {
    settings: Settings,
    prompt: String,
    prompt_ids: Vec<u32>,
    sampler: AnySampler,
    /// Every step so far when recording; else the latest one only.
    steps: Vec<Step>,
    /// Whether every step is kept (the page, a trace, the tests); a run that is not recorded
    /// holds its latest step only, so a diffusion-forcing rollout of any length runs in memory
    /// proportional to its canvas.
    record: bool,
    finished: bool,
}

impl Generation {
    /// Tokenizes `prompt` and prepares the sampler `settings` asks for.
    pub fn new(
        settings: Settings,
        prompt: &str,
        codec: &TextCodec,
        spec: &ModelSpec,
    ) -> Result<Self, SampleError> {
        if prompt.trim().is_empty() {
            return Err(SettingsError::EmptyPrompt.into());
        }
        let prompt_ids = codec
            .encode_prompt(prompt)
            .map_err(|e| SettingsError::Tokenize(e.to_string()))?;
        let mut g = Self::from_ids(settings, &prompt_ids, spec)?;
        g.prompt = prompt.to_owned();
        Ok(g)
    }

    /// Prepares a run from token ids.
    pub fn from_ids(
        settings: Settings,
        prompt_ids: &[u32],
        spec: &ModelSpec,
    ) -> Result<Self, SampleError> {
        let sampler = AnySampler::new(&settings, prompt_ids, spec)?;
        Ok(Self {
            settings,
            prompt: String::new(),
            prompt_ids: prompt_ids.to_vec(),
            sampler,
            steps: Vec::new(),
            record: true,
            finished: false,
        })
    }

    /// Keeps every step (`true`, the default: the page, `--trace`, the tests), or the latest only.
    pub fn set_recording(&mut self, record: bool) {
        self.record = record;
    }

    /// Whether a recorded run may hold this one ([`AnySampler::check_recordable`]): asked before
    /// the first step of every recorded run.
    pub fn check_recordable(&self) -> Result<(), SettingsError> {
        self.sampler.check_recordable()
    }

    /// Runs the next step; `None` once the canvas is finished.
    pub async fn next<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<&Step>, SampleError> {
        if self.finished {
            return Ok(None);
        }
        if self.record && self.steps.is_empty() {
            self.check_recordable()?;
        }
        let index = self.sampler.progress().steps;
        let step = self.sampler.step(model).await.map_err(|e| match e {
            SampleError::Model(e) => SampleError::Model(e.at_step(index)),
            other => other,
        })?;
        match step {
            Some(step) => {
                if !self.record {
                    self.steps.clear();
                }
                self.steps.push(step);
                Ok(self.steps.last())
            }
            None => {
                self.finished = true;
                Ok(None)
            }
        }
    }

    /// Runs to the end, calling `on_step` after every step.
    pub async fn run<D: Denoiser>(
        &mut self,
        model: &mut D,
        mut on_step: impl FnMut(&Step),
    ) -> Result<(), SampleError> {
        while let Some(step) = self.next(model).await? {
            on_step(step);
        }
        Ok(())
    }

    /// Whether steps report each masked position's most likely tokens (on by default; off for
    /// runs nobody inspects: then no step computes them).
    pub fn show_candidates(&mut self, show: bool) {
        self.sampler.show_candidates(show);
    }

    /// Steps so far (the latest only, when not recording).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Names the text the prompt's ids came from, for the record (a run prepared
    /// [`from_ids`](Self::from_ids), e.g. a chat rendered through its template).
    pub fn with_prompt_text(mut self, text: String) -> Self {
        self.prompt = text;
        self
    }

    /// The prompt's ids.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    /// The sampler (canvas and counters).
    pub fn sampler(&self) -> &AnySampler {
        &self.sampler
    }

    /// Whether the sampler has finished.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The run as a trajectory.
    pub fn trajectory(&self, model_name: &str, codec: &TextCodec, spec: &ModelSpec) -> Trajectory {
        let canvas = self.sampler.canvas();
        let final_ids = canvas.tokens().to_vec();
        let mut vocab = BTreeMap::new();
        for &id in self.prompt_ids.iter().chain(&final_ids) {
            vocab.entry(id).or_insert_with(|| codec.token_text(id));
        }
        for c in self
            .steps
            .iter()
            .flat_map(|s| &s.candidates)
            .flat_map(|c| &c.top)
        {
            vocab
                .entry(c.token)
                .or_insert_with(|| codec.token_text(c.token));
        }
        let progress = self.sampler.progress();
        let prompt_len = canvas.prompt_len().min(final_ids.len());
        // Positions that started masked and hold a token now (BD3/AR may have cut the canvas).
        let generated = final_ids
            .iter()
            .enumerate()
            .filter(|&(i, &t)| {
                t != spec.mask_id && self.prompt_ids.get(i).is_none_or(|&p| p == spec.mask_id)
            })
            .count();
        Trajectory {
            format: TRAJECTORY_FORMAT.into(),
            version: TRAJECTORY_VERSION,
            kind: crate::config::Family::Text,
            model: ModelInfo {
                name: model_name.to_owned(),
                vocab_size: spec.vocab_size,
                mask_id: spec.mask_id,
                attention: spec.attention,
                model_length: spec.model_length,
            },
            settings: self.settings.clone(),
            prompt: self.prompt.clone(),
            prompt_ids: self.prompt_ids.clone(),
            vocab,
            // A run not recorded kept its latest step only: none is written.
            steps: if self.record {
                self.steps.clone()
            } else {
                Vec::new()
            },
            text: codec.decode(&final_ids),
            completion: codec.decode(&final_ids[prompt_len..]),
            final_ids,
            stats: Stats {
                steps: progress.steps,
                model_calls: progress.model_calls,
                skipped_calls: progress.skipped_calls,
                generated_tokens: generated,
            },
        }
    }
}
