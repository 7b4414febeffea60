//! How well Diffusion-LM's plug-and-play control steers: the share of samples a judge of clean
//! text assigns to the attribute asked for (the paper's "control success", Li et al. 2022,
//! arXiv:2205.14217, §7.1, which judges with a classifier other than the one that guides).
//!
//! The judge is multinomial naive Bayes over the tokenizer's ids (Manning, Raghavan & Schütze,
//! *Introduction to Information Retrieval*, §13.2), fitted on the training split with each
//! chapter's source, add-one smoothing and a uniform prior: it reads finished text only, never
//! the latents, and shares nothing with the guidance classifier. The uniform prior keeps the
//! corpus's mix (more Bible than Austen) out of its verdicts.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::quality::{QualityError, words};
use crate::bundle::VectorBundle;
use crate::model::diffusion_lm::DiffusionLmClassifier;
use crate::sampler::SampleError;
use crate::sampler::diffusion_lm::{Control, VectorRun, VectorSettings};

/// Add-one (Laplace) smoothing of the judge's token counts.
const SMOOTHING: f64 = 1.0;

/// A naive-Bayes judge of a text's source.
#[derive(Clone, Debug)]
pub struct SourceJudge {
    labels: Vec<String>,
    /// log p(token | class), `[class][token]`.
    log_likelihood: Vec<Vec<f64>>,
}

impl SourceJudge {
    /// Fits the judge on `documents`, each its token ids and its class (an index into
    /// `labels`), over a vocabulary of `vocab_size` ids.
    pub fn fit(documents: &[(Vec<u32>, usize)], labels: Vec<String>, vocab_size: usize) -> Self {
        let mut counts = vec![vec![SMOOTHING; vocab_size]; labels.len()];
        for (ids, class) in documents {
            let Some(row) = counts.get_mut(*class) else {
                continue;
            };
            for &id in ids {
                if let Some(c) = row.get_mut(id as usize) {
                    *c += 1.0;
                }
            }
        }
        let log_likelihood = counts
            .into_iter()
            .map(|row| {
                let total: f64 = row.iter().sum();
                row.into_iter().map(|c| (c / total).ln()).collect()
            })
            .collect();
        Self {
            labels,
            log_likelihood,
        }
    }

    /// The classes' names.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The class whose tokens explain `ids` best (ids outside the vocabulary are skipped).
    pub fn classify(&self, ids: &[u32]) -> usize {
        let score = |row: &Vec<f64>| -> f64 {
            ids.iter()
                .filter_map(|&id| row.get(id as usize))
                .sum::<f64>()
        };
        let mut best = (f64::NEG_INFINITY, 0);
        for (class, row) in self.log_likelihood.iter().enumerate() {
            let s = score(row);
            if s > best.0 {
                best = (s, class);
            }
        }
        best.1
    }
}

/// One setting's result for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlRow {
    /// S, the classifier's weight (0: no control).
    pub scale: f64,
    /// λ, the fluency weight.
    pub fluency: f64,
    /// The attribute asked for.
    pub target: String,
    /// Share of samples the judge assigns to the target.
    pub success: f64,
    /// Share of the samples' words found in the corpus's vocabulary.
    pub known_word_share: f64,
    /// Mean of the guidance classifier's probability of the target at the last step.
    pub classifier_probability: f64,
}

/// The control check of a model: a row per scale and target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlReport {
    /// Reverse steps per sample.
    pub steps: usize,
    /// Samples per scale and target (seeds 0, 1, …).
    pub samples: usize,
    /// The judge's accuracy on held-out passages of the model's length.
    pub judge_accuracy: f64,
    /// The results.
    pub rows: Vec<ControlRow>,
    /// Every setting's texts: scale, target, samples.
    pub texts: Vec<(f64, String, Vec<String>)>,
}

/// The judge's accuracy on `passages` (ids, class).
pub fn judge_accuracy(judge: &SourceJudge, passages: &[(Vec<u32>, usize)]) -> f64 {
    let right = passages
        .iter()
        .filter(|(ids, class)| judge.classify(ids) == *class)
        .count();
    right as f64 / passages.len().max(1) as f64
}

/// Samples `samples` sentences of the model's whole length per scale in `scales` and per label
/// of the classifier, steered toward that label at `fluency` (scale 0 steers nothing), the rest
/// as `settings` say, and scores each setting's success under `judge` and its known words.
#[allow(clippy::too_many_arguments)]
pub fn check_control(
    bundle: &mut VectorBundle,
    classifier: &mut DiffusionLmClassifier,
    judge: &SourceJudge,
    judge_accuracy: f64,
    settings: &VectorSettings,
    (scales, fluency): (&[f64], f64),
    samples: usize,
    vocabulary: &HashSet<String>,
) -> Result<ControlReport, QualityError> {
    let spec = bundle.config.vector_spec();
    let labels = classifier.labels().to_vec();
    let mut rows = Vec::new();
    let mut texts = Vec::new();
    for &scale in scales {
        // Scale 0 only watches: its samples are the same for every target (seeds alike), and
        // each label's run reads the classifier's probability of that label.
        for target in &labels {
            let mut ids = Vec::with_capacity(samples);
            let mut probability = 0.0;
            for seed in 0..samples {
                let settings = VectorSettings {
                    gen_length: spec.model_length,
                    seed: seed as u64,
                    control: Some(Control {
                        target: target.clone(),
                        scale,
                        fluency,
                    }),
                    ..settings.clone()
                };
                let mut run = VectorRun::new(&settings, &[], &spec).map_err(SampleError::from)?;
                let mut last = None;
                while let Some(step) =
                    pollster::block_on(run.step_controlled(&mut bundle.denoiser, classifier))?
                {
                    last = Some(step);
                }
                let last = last.ok_or_else(|| {
                    SampleError::Model(crate::network::ModelError::Unsupported(
                        "the run took no step".into(),
                    ))
                })?;
                probability += last.target_probability.unwrap_or(0.0);
                ids.push(last.ids);
            }
            let decoded: Vec<String> = ids.iter().map(|s| bundle.codec.decode(s)).collect();
            let (mut all, mut known) = (0usize, 0usize);
            for text in &decoded {
                for w in words(text) {
                    all += 1;
                    known += usize::from(vocabulary.contains(&w));
                }
            }
            let class = judge.labels().iter().position(|l| l == target);
            let judged = ids
                .iter()
                .filter(|s| Some(judge.classify(s)) == class)
                .count();
            let n = samples.max(1) as f64;
            rows.push(ControlRow {
                scale,
                fluency,
                target: target.clone(),
                success: judged as f64 / n,
                known_word_share: known as f64 / all.max(1) as f64,
                classifier_probability: probability / n,
            });
            texts.push((scale, target.clone(), decoded));
        }
    }
    Ok(ControlReport {
        steps: settings.steps,
        samples,
        judge_accuracy,
        rows,
        texts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_judge_names_the_source_whose_tokens_a_text_uses() {
        // Class 0 writes ids 0–4, class 1 ids 5–9; id 10 is unseen by both.
        let docs: Vec<(Vec<u32>, usize)> = (0..20u32)
            .map(|i| {
                let class = (i % 2) as usize;
                (
                    (0..30).map(|j| (i + j) % 5 + 5 * class as u32).collect(),
                    class,
                )
            })
            .collect();
        let judge = SourceJudge::fit(&docs, vec!["a".into(), "b".into()], 11);
        assert_eq!(judge.classify(&[0, 1, 2]), 0);
        assert_eq!(judge.classify(&[7, 8, 9, 10]), 1);
        // Mostly one source's words with one of the other's: the majority wins.
        assert_eq!(judge.classify(&[5, 6, 7, 1]), 1);
        // Ids past the vocabulary are skipped, not a panic.
        assert_eq!(judge.classify(&[4, 4000]), 0);
        assert_eq!(judge_accuracy(&judge, &docs), 1.0);
        let flipped: Vec<(Vec<u32>, usize)> =
            docs.iter().map(|(ids, c)| (ids.clone(), 1 - c)).collect();
        assert_eq!(judge_accuracy(&judge, &flipped), 0.0);
    }
}
