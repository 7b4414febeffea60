//! A quality check anyone can run on a model folder: 128-token generations from 20 fixed prompts,
//! each with its own fixed seed, scored by two numbers a reader can check by eye —
//!
//! - the share of generated words found in the training corpus's vocabulary (do the tokens
//!   assemble into real words?), and
//! - the longest run of one token repeated back to back (the classic failure of weak samplers),
//! - the share of repeated 4-grams, seq-rep-4 of Welleck et al., "Neural Text Degeneration with
//!   Unlikelihood Training" (2019): a sampler that loops a phrase ("of the tribe of the tribe")
//!   writes only real words and never repeats one token, and only this number shows it.
//!
//! [`reference`] scores held-out text of the same length the same way, so every number has a
//! human baseline beside it.
//!
//! Words are lowercase runs of letters, with inner apostrophes (`don't`, `lord's`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::engine::Generation;
use crate::sampler::{Draw, SamplerKind, Settings};
use crate::text::{TextCodec, TextError};

/// Tokens generated after each prompt.
pub const GEN_LENGTH: usize = 128;

/// Nucleus p of the quality check's generations unless asked otherwise (BD3-LM's sampling
/// default, used for all samplers so that their numbers compare).
pub const TOP_P: f64 = 0.9;

/// n of the repeated n-gram share.
pub const REP_N: usize = 4;

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
    /// Share of the generated ids' [`REP_N`]-grams that repeat an earlier one.
    pub repeated_ngrams: f64,
}

/// The three numbers over a set of samples.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Scores {
    /// Share of words found in the corpus vocabulary, over all samples (below 1 even for held-out
    /// text: names and rare words that only the validation split has).
    pub known_word_share: f64,
    /// Longest run of one repeated token in any sample.
    pub longest_repeat: usize,
    /// Mean over the samples of the share of repeated [`REP_N`]-grams.
    pub repeated_ngrams: f64,
}

impl Scores {
    /// Known-word share over all `samples`, longest repeat in any, mean repeated n-gram share.
    fn of(samples: &[QualitySample]) -> Self {
        let words: usize = samples.iter().map(|s| s.words).sum();
        let known: usize = samples.iter().map(|s| s.known_words).sum();
        let repeated: f64 = samples.iter().map(|s| s.repeated_ngrams).sum();
        Scores {
            known_word_share: known as f64 / words.max(1) as f64,
            longest_repeat: samples.iter().map(|s| s.longest_repeat).max().unwrap_or(0),
            repeated_ngrams: repeated / samples.len().max(1) as f64,
        }
    }
}

impl std::fmt::Display for Scores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "known words {:.1}%, longest repeat {}, repeated {REP_N}-grams {:.1}%",
            100.0 * self.known_word_share,
            self.longest_repeat,
            100.0 * self.repeated_ngrams
        )
    }
}

/// The check's result over all prompts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QualityReport {
    /// Sampler used.
    pub sampler: SamplerKind,
    /// Scores over all samples.
    #[serde(flatten)]
    pub scores: Scores,
    /// Every sample.
    pub samples: Vec<QualitySample>,
}

/// The same scores for held-out text: the first [`GEN_LENGTH`] tokens of each of the first
/// `PROMPTS.len()` validation documents that are that long.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReferenceScores {
    /// Passages scored.
    pub passages: usize,
    /// Their scores.
    #[serde(flatten)]
    pub scores: Scores,
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

/// Share of the `n`-grams of `ids` that repeat an earlier one: 1 − distinct / all (0 when `ids`
/// holds no `n`-gram).
pub fn repeated_ngram_share(ids: &[u32], n: usize) -> f64 {
    if n == 0 || ids.len() < n {
        return 0.0;
    }
    let grams: Vec<&[u32]> = ids.windows(n).collect();
    let distinct: HashSet<&[u32]> = grams.iter().copied().collect();
    1.0 - distinct.len() as f64 / grams.len() as f64
}

/// Scores `ids` (decoded as `text`) against `vocabulary`.
fn score(
    prompt: &str,
    seed: u64,
    ids: &[u32],
    text: String,
    vocabulary: &HashSet<String>,
) -> QualitySample {
    let ws = words(&text);
    QualitySample {
        prompt: prompt.to_owned(),
        seed,
        words: ws.len(),
        known_words: ws.iter().filter(|w| vocabulary.contains(*w)).count(),
        longest_repeat: longest_run(ids),
        repeated_ngrams: repeated_ngram_share(ids, REP_N),
        completion: text,
    }
}

/// Scores held-out `documents` (the validation split) as [`check`] scores generations.
pub fn reference<S: AsRef<str>>(
    documents: &[S],
    codec: &TextCodec,
    vocabulary: &HashSet<String>,
) -> Result<ReferenceScores, TextError> {
    let mut samples = Vec::with_capacity(PROMPTS.len());
    for doc in documents {
        if samples.len() == PROMPTS.len() {
            break;
        }
        let ids = codec.encode(doc.as_ref())?;
        if let Some(passage) = ids.get(..GEN_LENGTH) {
            samples.push(score("", 0, passage, codec.decode(passage), vocabulary));
        }
    }
    Ok(ReferenceScores {
        passages: samples.len(),
        scores: Scores::of(&samples),
    })
}

/// Runs the check with `sampler` at nucleus `top_p` (temperature 1, one step per token for the
/// diffusion samplers).
pub fn check(
    bundle: &mut Bundle,
    sampler: SamplerKind,
    top_p: f64,
    vocabulary: &HashSet<String>,
) -> Result<QualityReport, crate::sampler::SampleError> {
    let spec = bundle.model_spec();
    let mut samples = Vec::with_capacity(PROMPTS.len());
    for (seed, prompt) in PROMPTS.iter().enumerate() {
        let mut settings = Settings::for_tokens(sampler, GEN_LENGTH);
        *settings.draw_mut() = Draw {
            temperature: 1.0,
            top_k: None,
            top_p: Some(top_p),
            seed: seed as u64,
        };
        let mut run = Generation::new(settings, prompt, &bundle.codec, &spec)?;
        run.show_candidates(false);
        pollster::block_on(run.run(&mut bundle.model, |_| {}))?;
        let canvas = run.sampler().canvas();
        let generated = &canvas.tokens()[canvas.prompt_len().min(canvas.tokens().len())..];
        let completion = bundle.codec.decode(generated);
        samples.push(score(
            prompt,
            seed as u64,
            generated,
            completion,
            vocabulary,
        ));
    }
    Ok(QualityReport {
        sampler,
        scores: Scores::of(&samples),
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

    #[test]
    fn repeated_ngram_share_counts_n_grams_seen_before() {
        assert_eq!(repeated_ngram_share(&[1, 2, 3], 4), 0.0);
        assert_eq!(repeated_ngram_share(&[1, 2, 3, 4, 5, 6], 4), 0.0);
        // 1234 2341 3412 4123 1234: one of five repeats.
        assert!((repeated_ngram_share(&[1, 2, 3, 4, 1, 2, 3, 4], 4) - 0.2).abs() < 1e-12);
        // A phrase loop with no token repeated back to back: nearly every 4-gram repeats.
        let looped: Vec<u32> = [7, 8, 9].iter().copied().cycle().take(30).collect();
        assert_eq!(longest_run(&looped), 1);
        assert!((repeated_ngram_share(&looped, 4) - 24.0 / 27.0).abs() < 1e-12);
    }
}
