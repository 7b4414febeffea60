//! A quality check anyone can run on a model folder: 128-token generations from 20 fixed prompts,
//! each with its own fixed seed, scored by two numbers a reader can check by eye —
//!
//! - the share of generated words found in the training corpus's vocabulary (do the tokens
//!   assemble into real words?), and
//! - the longest run of one token repeated back to back (the classic failure of weak samplers).
//!
//! Words are lowercase runs of letters, with inner apostrophes (`don't`, `lord's`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::config::Attention;
use crate::engine::Generation;
use crate::sampler::{SamplerKind, Settings};

/// Tokens generated after each prompt.
pub const GEN_LENGTH: usize = 128;

/// Nucleus p of every quality-check generation (BD3-LM's sampling default, used for all three
/// samplers so that their numbers compare).
pub const TOP_P: f64 = 0.9;

/// The fixed prompts; prompt `i` is sampled with seed `i`.
pub const PROMPTS: [&str; 20] = [
    "It is a truth universally acknowledged",
    "In the beginning",
    "She was",
    "The next morning",
    "And the Lord said to Moses,",
    "Mr. Darcy",
    "My dear Emma,",
    "When they came to the city",
    "Her father",
    "The king of Israel",
    "It was a",
    "Blessed are",
    "Anne Elliot",
    "They walked",
    "I cannot",
    "The house",
    "He answered,",
    "Elizabeth",
    "On the third day",
    "There was",
];

/// One generation and its scores.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QualitySample {
    /// The prompt.
    pub prompt: String,
    /// Its seed.
    pub seed: u64,
    /// The generated text (prompt excluded).
    pub completion: String,
    /// Words generated.
    pub words: usize,
    /// Of which in the corpus vocabulary.
    pub known_words: usize,
    /// Longest run of one repeated token in the generated ids.
    pub longest_repeat: usize,
}

/// The check's result over all prompts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QualityReport {
    /// Sampler used.
    pub sampler: SamplerKind,
    /// Share of generated words found in the corpus vocabulary, over all samples.
    pub known_word_share: f64,
    /// Longest run of one repeated token in any sample.
    pub longest_repeat: usize,
    /// Every sample.
    pub samples: Vec<QualitySample>,
}

/// The words of `text`: lowercase letter runs, apostrophes kept inside a word.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let inner_apostrophe =
            c == '\'' && !word.is_empty() && chars.peek().is_some_and(|n| n.is_alphabetic());
        if c.is_alphabetic() || inner_apostrophe {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Every word of the documents.
pub fn vocabulary<S: AsRef<str>>(documents: &[S]) -> HashSet<String> {
    documents.iter().flat_map(|d| words(d.as_ref())).collect()
}

/// Longest run of one value repeated back to back (0 for an empty slice).
pub fn longest_run(ids: &[u32]) -> usize {
    let mut best = 0;
    let mut run = 0;
    for (i, id) in ids.iter().enumerate() {
        run = if i > 0 && ids[i - 1] == *id {
            run + 1
        } else {
            1
        };
        best = best.max(run);
    }
    best
}

/// The sampler a model was trained for: `mdlm` for bidirectional, `bd3` for block-causal, `ar`
/// for causal attention.
pub fn native_sampler(attention: Attention) -> SamplerKind {
    match attention {
        Attention::Bidirectional => SamplerKind::Mdlm,
        Attention::BlockCausal { .. } => SamplerKind::Bd3,
        Attention::Causal => SamplerKind::Ar,
    }
}

/// Runs the check with `sampler` (nucleus [`TOP_P`], one step per token for the diffusion samplers).
pub fn check(
    bundle: &mut Bundle,
    sampler: SamplerKind,
    vocabulary: &HashSet<String>,
) -> Result<QualityReport, crate::sampler::SampleError> {
    let spec = bundle.model_spec();
    let mut samples = Vec::with_capacity(PROMPTS.len());
    for (seed, prompt) in PROMPTS.iter().enumerate() {
        let settings = Settings {
            gen_length: GEN_LENGTH,
            steps: GEN_LENGTH,
            seed: seed as u64,
            top_p: Some(TOP_P),
            temperature: 1.0,
            ..Settings::defaults(sampler)
        };
        let mut run = Generation::new(settings, prompt, &bundle.codec, &spec)?;
        pollster::block_on(run.run(&mut bundle.model, |_| {}))?;
        let canvas = run.sampler().canvas();
        let generated = &canvas.tokens()[canvas.prompt_len().min(canvas.tokens().len())..];
        let completion = bundle.codec.decode(generated);
        let ws = words(&completion);
        samples.push(QualitySample {
            prompt: (*prompt).to_owned(),
            seed: seed as u64,
            words: ws.len(),
            known_words: ws.iter().filter(|w| vocabulary.contains(*w)).count(),
            longest_repeat: longest_run(generated),
            completion,
        });
    }
    let words: usize = samples.iter().map(|s| s.words).sum();
    let known: usize = samples.iter().map(|s| s.known_words).sum();
    Ok(QualityReport {
        sampler,
        known_word_share: known as f64 / words.max(1) as f64,
        longest_repeat: samples.iter().map(|s| s.longest_repeat).max().unwrap_or(0),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercase_letter_runs_with_inner_apostrophes() {
        assert_eq!(
            words("\"Don't,\" said Mr. Darcy's sister -- 'twas 3 o'clock!"),
            vec![
                "don't", "said", "mr", "darcy's", "sister", "twas", "o'clock"
            ]
        );
    }

    #[test]
    fn longest_run_counts_back_to_back_repeats_only() {
        assert_eq!(longest_run(&[]), 0);
        assert_eq!(longest_run(&[5, 6, 5, 6]), 1);
        assert_eq!(longest_run(&[5, 7, 7, 7, 5, 7, 7]), 3);
    }
}
