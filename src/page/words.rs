//! The replay of a Diffusion-LM run: each step's words, how far x̂₀ was from each, what changed,
//! and the two series the page plots (the mean distance to the words, the control classifier's
//! probability of its target). Nothing is committed in this family: every position shows a word
//! at every step, and the reader watches them settle.

use std::collections::HashMap;

use super::replay::{Cell, CellState};
use crate::sampler::diffusion_lm::{VectorStep, first_free, held_positions};
use crate::trajectory::vectors::VectorTrajectory;

/// One position of a step, for the view.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// Its text (the token's, spaces included).
    pub text: String,
    /// Euclidean distance from x̂₀ there to this word's vector.
    pub distance: f32,
    /// Its share of the step's largest distance, 0 (on the word) to 1 (farthest).
    pub far: f64,
    /// Whether it differs from the previous step's word.
    pub changed: bool,
    /// Whether the prompt holds it.
    pub prompt: bool,
}

/// One of the words x̂₀ might round to at a position, for the inspector.
#[derive(Clone, Debug, PartialEq)]
pub struct NearText {
    /// Its text.
    pub text: String,
    /// p(w | x̂₀), the rounding's softmax.
    pub prob: f64,
    /// Euclidean distance from x̂₀ to its vector.
    pub distance: f64,
}

/// What the inspector tells of one position at a step.
#[derive(Clone, Debug, PartialEq)]
pub struct WordDetail {
    /// The position's word then.
    pub word: Word,
    /// The step (0-based) since which it has held that word: the last step that changed it, or
    /// 0 when none did.
    pub since: usize,
    /// How many steps up to then changed its word.
    pub changes: usize,
    /// Its most likely words under x̂₀'s rounding, most likely first (empty for the prompt's
    /// positions, and for runs that did not record them).
    pub nearest: Vec<NearText>,
}

/// The steps of one Diffusion-LM run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WordReplay {
    prompt_ids: Vec<u32>,
    /// Which positions the prompt holds (its gaps are free).
    held: Vec<bool>,
    gen_length: usize,
    vocab: HashMap<u32, String>,
    steps: Vec<VectorStep>,
    /// Steps the run will take.
    total: usize,
    /// Mean distance over the generated positions after each step.
    distances: Vec<Option<f64>>,
    /// p(target | x_{t−1}) at each step, under control.
    target_probs: Vec<Option<f64>>,
}

impl WordReplay {
    /// A run holding `prompt_ids` (but those equal to the mask id, its gaps) then `gen_length`
    /// positions, `total` steps long, the text of the prompt's ids in `vocab`.
    pub fn new(
        (prompt_ids, mask_id): (Vec<u32>, Option<u32>),
        gen_length: usize,
        vocab: Vec<(u32, String)>,
        total: usize,
    ) -> Self {
        Self {
            held: held_positions(&prompt_ids, mask_id),
            prompt_ids,
            gen_length,
            vocab: vocab.into_iter().collect(),
            total,
            ..Self::default()
        }
    }

    /// A recorded run, ready to play with no model.
    pub fn from_trajectory(t: &VectorTrajectory) -> Self {
        let vocab = t.vocab.iter().map(|(&id, s)| (id, s.clone())).collect();
        let mut r = Self::new(
            (t.prompt_ids.clone(), t.model.mask_id),
            t.settings.gen_length,
            vocab,
            t.steps.len(),
        );
        for s in &t.steps {
            r.push(s.clone(), Vec::new());
        }
        r
    }

    /// Appends the next step and the text of the ids it brings; one not of this run's length is
    /// dropped (the worker never sends one, and an imported file was checked).
    pub fn push(&mut self, step: VectorStep, vocab: Vec<(u32, String)>) {
        self.vocab.extend(vocab);
        let n = self.prompt_ids.len() + self.gen_length;
        if step.ids.len() != n || step.distance.len() != n {
            return;
        }
        self.distances.push(Some(step.mean_distance(&self.held)));
        self.target_probs.push(step.target_probability);
        self.steps.push(step);
    }

    /// Steps so far.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step has arrived.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Steps the run takes in all.
    pub fn total(&self) -> usize {
        self.total.max(self.steps.len())
    }

    /// Step `at` (clamped to the last).
    pub fn step(&self, at: usize) -> Option<&VectorStep> {
        self.steps.get(at.min(self.steps.len().checked_sub(1)?))
    }

    /// Whether the prompt holds position `i`.
    fn is_held(&self, i: usize) -> bool {
        self.held.get(i).copied().unwrap_or(false)
    }

    /// The positions at step `at`: the prompt's words, then each generated position's; before
    /// any step, the prompt alone (its gaps as the mask token).
    pub fn words(&self, at: usize) -> Vec<Word> {
        let text = |id: u32| self.vocab.get(&id).cloned().unwrap_or_default();
        let Some(step) = self.step(at) else {
            return self
                .prompt_ids
                .iter()
                .enumerate()
                .map(|(i, &id)| Word {
                    text: text(id),
                    distance: 0.0,
                    far: 0.0,
                    changed: false,
                    prompt: self.is_held(i),
                })
                .collect();
        };
        let largest = step
            .distance
            .iter()
            .enumerate()
            .filter(|&(i, _)| !self.is_held(i))
            .fold(0f32, |m, (_, &d)| m.max(d));
        step.ids
            .iter()
            .zip(&step.distance)
            .enumerate()
            .map(|(i, (&id, &d))| Word {
                text: text(id),
                distance: d,
                far: if self.is_held(i) || largest <= 0.0 {
                    0.0
                } else {
                    f64::from(d / largest)
                },
                changed: step.changed.contains(&i),
                prompt: self.is_held(i),
            })
            .collect()
    }

    /// Position `position` at step `at` (clamped to the last), for the inspector; `None` before
    /// the first step or off the canvas.
    pub fn detail(&self, position: usize, at: usize) -> Option<WordDetail> {
        let last = at.min(self.steps.len().checked_sub(1)?);
        let step = &self.steps[last];
        let word = self.words(at).into_iter().nth(position)?;
        let changed: Vec<usize> = (0..=last)
            .filter(|&i| self.steps[i].changed.contains(&position))
            .collect();
        let text = |id: u32| self.vocab.get(&id).cloned().unwrap_or_default();
        let nearest = step
            .nearest
            .iter()
            .find(|n| n.position == position)
            .map(|n| {
                n.top
                    .iter()
                    .map(|w| NearText {
                        text: text(w.token),
                        prob: w.prob,
                        distance: w.distance,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(WordDetail {
            word,
            since: changed.last().copied().unwrap_or(0),
            changes: changed.len(),
            nearest,
        })
    }

    /// The positions at step `at` as the text canvas's cells, for its pictures (SVG, PNG, the
    /// animation): a word's colour is its nearness (1 − [`Word::far`]) where a token's is its
    /// confidence, and the words that changed at that step are the fresh ones.
    pub fn cells(&self, at: usize) -> Vec<Cell> {
        self.words(at)
            .into_iter()
            .enumerate()
            .map(|(position, w)| Cell {
                position,
                state: if w.prompt {
                    CellState::Prompt
                } else {
                    CellState::Committed {
                        step: at,
                        confidence: 1.0 - w.far,
                        fresh: w.changed,
                    }
                },
                text: w.text,
                in_block: false,
                level: None,
            })
            .collect()
    }

    /// The words at step `at` from the first the run writes on (the prompt's first gap, or the
    /// first after it), joined.
    pub fn text(&self, at: usize) -> String {
        self.words(at)
            .into_iter()
            .skip(first_free(&self.held))
            .map(|w| w.text)
            .collect()
    }

    /// Mean distance to the words over the generated positions after each step.
    pub fn distance_series(&self) -> &[Option<f64>] {
        &self.distances
    }

    /// The control classifier's probability of the target at each step (`None`: no control).
    pub fn target_prob_series(&self) -> &[Option<f64>] {
        &self.target_probs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::diffusion_lm::{NearWord, NearWords};

    fn step(index: usize, ids: Vec<u32>, changed: Vec<usize>) -> VectorStep {
        VectorStep {
            index,
            t: 10 - index,
            noise_level: 0.5,
            distance: (0..ids.len()).map(|i| i as f32).collect(),
            ids,
            changed,
            target_probability: Some(0.25 * index as f64),
            nearest: Vec::new(),
        }
    }

    #[test]
    fn each_step_shows_every_word_with_its_distance_and_what_changed() {
        let vocab = vec![(1, "It".to_string())];
        let mut r = WordReplay::new((vec![1], None), 3, vocab, 2);
        assert_eq!(r.words(0).len(), 1, "before a step: the prompt alone");
        r.push(
            step(0, vec![1, 5, 6, 5], vec![]),
            vec![(5, " a".into()), (6, " b".into())],
        );
        r.push(step(1, vec![1, 5, 7, 5], vec![2]), vec![(7, " c".into())]);
        // A step of another length is dropped.
        r.push(step(2, vec![1, 5], vec![]), vec![]);
        assert_eq!((r.len(), r.total()), (2, 2));
        let words = r.words(1);
        assert_eq!(
            words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(),
            ["It", " a", " c", " a"]
        );
        assert!(words[0].prompt && !words[1].prompt);
        assert!(words[2].changed && !words[1].changed);
        // Distances 1, 2, 3 over the generated positions: the farthest is 1.
        assert_eq!(words[3].far, 1.0);
        assert!((words[1].far - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(r.text(1), " a c a");
        // As the canvas's cells: the prompt's, then each word by its nearness, the change fresh.
        let cells = r.cells(1);
        assert_eq!(cells[0].state, CellState::Prompt);
        assert_eq!(
            cells[3].state,
            CellState::Committed {
                step: 1,
                confidence: 0.0,
                fresh: false
            }
        );
        assert!(matches!(
            cells[2].state,
            CellState::Committed { fresh: true, .. }
        ));
        assert_eq!(cells[2].text, " c");
        assert_eq!(r.text(0), " a b a");
        assert_eq!(r.distance_series(), [Some(2.0), Some(2.0)]);
        assert_eq!(r.target_prob_series(), [Some(0.0), Some(0.25)]);
        // Past the end: the last step.
        assert_eq!(r.text(9), " a c a");
        // The inspector: the word, since when it has held, its nearest words (none recorded).
        let d = r.detail(2, 1).unwrap();
        assert_eq!((d.word.text.as_str(), d.since, d.changes), (" c", 1, 1));
        assert!(d.nearest.is_empty());
        assert_eq!(r.detail(1, 9).unwrap().since, 0);
        assert_eq!(r.detail(4, 1), None, "off the canvas");
        assert_eq!(
            WordReplay::new((vec![1], None), 3, vec![], 2).detail(0, 0),
            None
        );
    }

    #[test]
    fn a_prompt_s_gaps_are_written_like_the_positions_after_it() {
        // "It [MASK] so" then one more: the gap and the last position are the run's.
        let vocab = vec![(1, "It".into()), (3, "[MASK]".into()), (2, " so".into())];
        let mut r = WordReplay::new((vec![1, 3, 2], Some(3)), 1, vocab, 1);
        let before: Vec<bool> = r.words(0).iter().map(|w| w.prompt).collect();
        assert_eq!(before, [true, false, true]);
        let mut s = step(0, vec![1, 5, 2, 6], vec![]);
        s.distance = vec![9.0, 1.0, 9.0, 3.0];
        r.push(s, vec![(5, " was".into()), (6, " on".into())]);
        let words = r.words(0);
        let held: Vec<bool> = words.iter().map(|w| w.prompt).collect();
        assert_eq!(held, [true, false, true, false]);
        // The farthest free word is the last; the held ones are not measured.
        assert_eq!((words[3].far, words[0].far), (1.0, 0.0));
        assert_eq!(r.distance_series(), [Some(2.0)]);
        // The text runs from the gap on.
        assert_eq!(r.text(0), " was so on");
        assert_eq!(r.cells(0)[2].state, CellState::Prompt);
    }

    #[test]
    fn the_inspector_lists_a_position_s_nearest_words_with_their_text() {
        let mut r = WordReplay::new((vec![], None), 2, vec![], 1);
        let mut s = step(0, vec![5, 6], vec![]);
        s.nearest = vec![NearWords {
            position: 1,
            top: [(6, 0.7, 0.2), (9, 0.2, 0.9)]
                .map(|(token, prob, distance)| NearWord {
                    token,
                    prob,
                    distance,
                })
                .into(),
        }];
        r.push(
            s,
            vec![(5, " a".into()), (6, " b".into()), (9, " z".into())],
        );
        let d = r.detail(1, 0).unwrap();
        assert_eq!(
            d.nearest,
            [
                NearText {
                    text: " b".into(),
                    prob: 0.7,
                    distance: 0.2
                },
                NearText {
                    text: " z".into(),
                    prob: 0.2,
                    distance: 0.9
                }
            ]
        );
        assert!(r.detail(0, 0).unwrap().nearest.is_empty());
    }
}
