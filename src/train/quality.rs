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
//! With a judge — an autoregressive model, our shipped `ar/` — every sample also gets its
//! perplexity under the judge (exp of the mean negative log-likelihood of the generated tokens
//! given the prompt and the tokens before them): the measure diffusion-LM papers report as
//! "generative perplexity". Each sample records its model calls, so samplers compare in calls
//! per token too.
//!
//! [`reference`] scores held-out text of the same length the same way, so every number has a
//! human baseline beside it.
//!
//! Words are lowercase runs of letters, with inner apostrophes (`don't`, `lord's`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::bundle::{Bundle, VectorBundle};
use crate::config::Attention;
use crate::engine::Generation;
use crate::sampler::diffusion_lm::{VectorRun, VectorSettings};
use crate::sampler::probs::subs_probs;
use crate::sampler::{Draw, SampleError, SamplerKind, Settings};
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
    /// Model calls the generation made (0 for held-out text).
    #[serde(default)]
    pub model_calls: usize,
    /// Tokens generated.
    #[serde(default)]
    pub tokens: usize,
    /// Summed negative log-likelihood of the generated tokens under the judge, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_nll: Option<f64>,
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
    /// Model calls per generated token, over all samples (0 for held-out text).
    #[serde(default)]
    pub calls_per_token: f64,
    /// The judge's perplexity over all generated tokens: exp(Σ NLL / tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_perplexity: Option<f64>,
}

impl Scores {
    /// Known-word share over all `samples`, longest repeat in any, mean repeated n-gram share,
    /// calls per token and the judge's perplexity over all of them.
    fn of(samples: &[QualitySample]) -> Self {
        let words: usize = samples.iter().map(|s| s.words).sum();
        let known: usize = samples.iter().map(|s| s.known_words).sum();
        let repeated: f64 = samples.iter().map(|s| s.repeated_ngrams).sum();
        let tokens: usize = samples.iter().map(|s| s.tokens).sum();
        let calls: usize = samples.iter().map(|s| s.model_calls).sum();
        let nll: Option<f64> = samples.iter().map(|s| s.judge_nll).sum();
        Scores {
            known_word_share: known as f64 / words.max(1) as f64,
            longest_repeat: samples.iter().map(|s| s.longest_repeat).max().unwrap_or(0),
            repeated_ngrams: repeated / samples.len().max(1) as f64,
            calls_per_token: calls as f64 / tokens.max(1) as f64,
            judge_perplexity: nll.map(|n| (n / tokens.max(1) as f64).exp()),
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
        )?;
        if let Some(p) = self.judge_perplexity {
            write!(f, ", perplexity under the judge {p:.1}")?;
        }
        if self.calls_per_token > 0.0 {
            write!(f, ", {:.2} model calls per token", self.calls_per_token)?;
        }
        Ok(())
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
        model_calls: 0,
        tokens: ids.len(),
        judge_nll: None,
    }
}

/// Why a judge cannot score.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// The judge is not autoregressive.
    #[error("the judge must be an autoregressive (causal) model, like www/models/default/ar")]
    NotAutoregressive,
    /// The judge reads another vocabulary.
    #[error(
        "the judge's vocabulary has {judge} tokens and the model's {model}: they must share a tokenizer"
    )]
    Vocabulary {
        /// The judge's.
        judge: usize,
        /// The judged model's.
        model: usize,
    },
    /// The judge's forward failed.
    #[error(transparent)]
    Model(#[from] crate::network::ModelError),
}

/// Summed negative log-likelihood of `ids[from..]` under the autoregressive `judge` (checked by
/// [`check_judge`]), each token given the ones before it (position 0, with nothing before it, is
/// never scored). The mask is excluded from the judge's softmax (SUBS), as its training loss
/// excludes it.
fn judge_nll(judge: &Bundle, ids: &[u32], from: usize) -> Result<f64, JudgeError> {
    let from = from.max(1);
    if ids.len() <= from {
        return Ok(0.0);
    }
    let logits = pollster::block_on(judge.model.logits(&[ids], 0.0))?;
    let mask = judge.codec.mask_id();
    Ok((from..ids.len())
        .map(|i| -subs_probs(logits.row(i - 1), mask)[ids[i] as usize].ln())
        .sum())
}

/// Checks that `judge` can score text of a model with `vocab_size` tokens.
fn check_judge(judge: &Bundle, vocab_size: usize) -> Result<(), JudgeError> {
    if judge.config.attention() != Attention::Causal {
        return Err(JudgeError::NotAutoregressive);
    }
    if judge.config.vocab_size() != vocab_size {
        return Err(JudgeError::Vocabulary {
            judge: judge.config.vocab_size(),
            model: vocab_size,
        });
    }
    Ok(())
}

/// Scores held-out `documents` (the validation split) as [`check`] scores generations, under
/// `judge` when given (the passage's first token is its context).
pub fn reference<S: AsRef<str>>(
    documents: &[S],
    codec: &TextCodec,
    vocabulary: &HashSet<String>,
    judge: Option<&Bundle>,
) -> Result<ReferenceScores, QualityError> {
    reference_of_length(documents, codec, vocabulary, judge, GEN_LENGTH)
}

/// [`reference`] on passages of `length` tokens: the baseline of generations that long.
pub fn reference_of_length<S: AsRef<str>>(
    documents: &[S],
    codec: &TextCodec,
    vocabulary: &HashSet<String>,
    judge: Option<&Bundle>,
    length: usize,
) -> Result<ReferenceScores, QualityError> {
    if let Some(j) = judge {
        check_judge(j, codec.vocab_size())?;
    }
    let mut samples = Vec::with_capacity(PROMPTS.len());
    for doc in documents {
        if samples.len() == PROMPTS.len() {
            break;
        }
        let ids = codec.encode(doc.as_ref())?;
        if let Some(passage) = ids.get(..length) {
            let mut sample = score("", 0, passage, codec.decode(passage), vocabulary);
            if let Some(j) = judge {
                sample.judge_nll = Some(judge_nll(j, passage, 1)?);
                sample.tokens = passage.len() - 1;
            }
            samples.push(sample);
        }
    }
    Ok(ReferenceScores {
        passages: samples.len(),
        scores: Scores::of(&samples),
    })
}

/// What can stop a quality check.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    /// A generation failed.
    #[error(transparent)]
    Sample(#[from] SampleError),
    /// The judge cannot score.
    #[error(transparent)]
    Judge(#[from] JudgeError),
    /// Held-out text did not tokenize.
    #[error(transparent)]
    Text(#[from] TextError),
}

/// Runs the check with `settings` (the sampler and its knobs; `gen_length` is set to
/// [`GEN_LENGTH`], one step per token where the sampler counts steps) at temperature 1 and
/// nucleus `top_p`, each prompt with its own seed; every sample is scored under `judge` when
/// given.
pub fn check(
    bundle: &mut Bundle,
    settings: &Settings,
    top_p: f64,
    vocabulary: &HashSet<String>,
    judge: Option<&Bundle>,
) -> Result<QualityReport, QualityError> {
    let spec = bundle.model_spec();
    if let Some(j) = judge {
        check_judge(j, spec.vocab_size)?;
    }
    let mut samples = Vec::with_capacity(PROMPTS.len());
    for (seed, prompt) in PROMPTS.iter().enumerate() {
        let mut settings = settings.clone();
        settings.set_gen_length(GEN_LENGTH);
        if settings.steps().is_some() {
            settings.set_steps(GEN_LENGTH);
        }
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
        let start = canvas.prompt_len().min(canvas.tokens().len());
        let generated = &canvas.tokens()[start..];
        let completion = bundle.codec.decode(generated);
        let mut sample = score(prompt, seed as u64, generated, completion, vocabulary);
        sample.model_calls = run.sampler().progress().model_calls;
        if let Some(j) = judge {
            sample.judge_nll = Some(judge_nll(j, canvas.tokens(), start)?);
        }
        samples.push(sample);
    }
    Ok(QualityReport {
        sampler: settings.sampler(),
        scores: Scores::of(&samples),
        samples,
    })
}

/// The check's result for a Diffusion-LM model: one sequence per prompt, as long as the model's
/// positions allow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorQualityReport {
    /// Reverse steps per sample.
    pub steps: usize,
    /// Whether the clamping trick was on.
    pub clamp: bool,
    /// Scores over all samples.
    #[serde(flatten)]
    pub scores: Scores,
    /// Every sample.
    pub samples: Vec<QualitySample>,
}

/// Runs the check on a Diffusion-LM model: each prompt, with its own seed, fills the rest of the
/// model's positions in `settings.steps` reverse steps; every sample is scored under `judge`
/// when given (the measure the paper calls lm-score).
pub fn check_vectors(
    bundle: &mut VectorBundle,
    settings: &VectorSettings,
    vocabulary: &HashSet<String>,
    judge: Option<&Bundle>,
) -> Result<VectorQualityReport, QualityError> {
    let spec = bundle.config.vector_spec();
    if let Some(j) = judge {
        check_judge(j, spec.vocab_size)?;
    }
    let mut samples = Vec::with_capacity(PROMPTS.len());
    for (seed, prompt) in PROMPTS.iter().enumerate() {
        let prompt_ids = bundle.codec.encode(prompt)?;
        let settings = VectorSettings {
            gen_length: spec.model_length.saturating_sub(prompt_ids.len()),
            seed: seed as u64,
            ..settings.clone()
        };
        let mut run = VectorRun::new(&settings, &prompt_ids, &spec).map_err(SampleError::from)?;
        let mut last = None;
        while let Some(step) = pollster::block_on(run.step(&mut bundle.denoiser))? {
            last = Some(step);
        }
        let ids = last.map(|s| s.ids).unwrap_or_default();
        let start = prompt_ids.len().min(ids.len());
        let generated = &ids[start..];
        let completion = bundle.codec.decode(generated);
        let mut sample = score(prompt, seed as u64, generated, completion, vocabulary);
        sample.model_calls = run.total_steps();
        if let Some(j) = judge {
            sample.judge_nll = Some(judge_nll(j, &ids, start)?);
        }
        samples.push(sample);
    }
    Ok(VectorQualityReport {
        steps: settings.steps,
        clamp: settings.clamp,
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
