//! A run as the page draws it: the steps so far (live, or from an imported trajectory) with what
//! every cell shows at any step of the timeline, and the per-step series the plots draw.

use std::collections::HashMap;
use std::fmt::Write;

use crate::sampler::{Candidates, Step};
use crate::trajectory::Trajectory;

/// How a token's text is shown in a cell: whitespace made visible.
pub fn visible(text: &str) -> String {
    text.replace('\n', "↵").replace('\t', "⇥")
}

/// What a canvas cell is at some step.
#[derive(Clone, Debug, PartialEq)]
pub enum CellState {
    /// Given by the prompt.
    Prompt,
    /// Still masked.
    Masked,
    /// Committed at `step` with the model's `confidence`; `fresh` when that is the step shown.
    Committed {
        /// Step it was committed in.
        step: usize,
        /// Probability of the token when drawn.
        confidence: f64,
        /// Committed in the step being shown.
        fresh: bool,
    },
}

/// One cell of the canvas at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// Canvas position.
    pub position: usize,
    /// The token's text (empty when masked).
    pub text: String,
    /// Its state.
    pub state: CellState,
    /// Inside the block being denoised at that step.
    pub in_block: bool,
    /// Diffusion forcing: the token's noise level at that step as a share of the way to a mask
    /// (0 clean … 1 fully masked); `None` for the other samplers.
    pub level: Option<f64>,
}

/// Diffusion forcing's scheduling matrix as recorded so far, ready to draw: one row per step
/// (the canvas before the first step, then after each), one column per canvas position, and
/// for each noise level the SVG path of its cells (unit squares; level 0, clean, is not drawn).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// Columns: the canvas width.
    pub columns: usize,
    /// Rows: the steps recorded, plus the opening row.
    pub rows: usize,
    /// Per level 1..=S: its share of S (the shade) and the path of its cells.
    pub shades: Vec<(f64, String)>,
}

/// A lane's steps, in its family's terms.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Tokens.
    Text(Replay),
    /// Images.
    Ddpm(super::images::ImageReplay),
    /// Words of Diffusion-LM.
    DiffusionLm(super::words::WordReplay),
}

impl Record {
    /// An empty record for a run of `family`, before its opening arrives.
    pub fn empty(family: crate::config::Family) -> Self {
        match family {
            // A text + image run is a token canvas too (`page::unified` draws its grid).
            crate::config::Family::Text | crate::config::Family::Unified => {
                Record::Text(Replay::default())
            }
            crate::config::Family::Ddpm => Record::Ddpm(Default::default()),
            crate::config::Family::DiffusionLm => Record::DiffusionLm(Default::default()),
        }
    }

    /// Steps so far.
    pub fn len(&self) -> usize {
        match self {
            Record::Text(r) => r.len(),
            Record::Ddpm(r) => r.len(),
            Record::DiffusionLm(r) => r.len(),
        }
    }

    /// Whether no step has arrived.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token replay, for a text run.
    pub fn text(&self) -> Option<&Replay> {
        match self {
            Record::Text(r) => Some(r),
            Record::Ddpm(_) | Record::DiffusionLm(_) => None,
        }
    }

    /// The image replay, for an image run.
    pub fn images(&self) -> Option<&super::images::ImageReplay> {
        match self {
            Record::Ddpm(r) => Some(r),
            Record::Text(_) | Record::DiffusionLm(_) => None,
        }
    }

    /// The word replay, for a Diffusion-LM run.
    pub fn words(&self) -> Option<&super::words::WordReplay> {
        match self {
            Record::DiffusionLm(r) => Some(r),
            Record::Text(_) | Record::Ddpm(_) => None,
        }
    }
}

/// The steps of one run and what they imply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    prompt_ids: Vec<u32>,
    /// The canvas before the first step (prompt, then masks).
    initial: Vec<u32>,
    mask_id: u32,
    steps: Vec<Step>,
    vocab: HashMap<u32, String>,
    /// Per position: (step, confidence) of its commit.
    commits: Vec<Option<(usize, f64)>>,
    /// Masked positions after each step (kept as steps arrive: the plots read it every frame).
    masked: Vec<usize>,
    /// Mean confidence of each step's commits.
    confidence: Vec<Option<f64>>,
    /// Diffusion forcing's level count S (its steps record each position's level).
    levels: Option<usize>,
}

impl Replay {
    /// An empty run: `prompt_ids`, and the canvas before the first step.
    pub fn new(prompt_ids: Vec<u32>, initial: Vec<u32>, mask_id: u32) -> Self {
        Self {
            prompt_ids,
            initial,
            mask_id,
            ..Self::default()
        }
    }

    /// Diffusion forcing's level count S, for a run of its sampler (its cells then show their
    /// levels).
    pub fn with_levels(mut self, levels: Option<usize>) -> Self {
        self.levels = levels.filter(|&s| s > 0);
        self
    }

    /// A recorded run, ready to play with no model.
    pub fn from_trajectory(t: &Trajectory) -> Self {
        let gen_length = t.settings.gen_length();
        let mut initial = t.prompt_ids.clone();
        initial.extend(std::iter::repeat_n(t.model.mask_id, gen_length));
        let mut r = Self::new(t.prompt_ids.clone(), initial, t.model.mask_id)
            .with_levels(t.settings.levels());
        r.add_vocab(t.vocab.iter().map(|(&k, v)| (k, v.clone())));
        for s in &t.steps {
            r.push(s.clone());
        }
        r
    }

    /// Learns token texts.
    pub fn add_vocab(&mut self, entries: impl IntoIterator<Item = (u32, String)>) {
        self.vocab.extend(entries);
    }

    /// Appends the next step.
    pub fn push(&mut self, step: Step) {
        if self.commits.len() < step.canvas.len() {
            self.commits.resize(step.canvas.len(), None);
        }
        for c in &step.commits {
            if let Some(slot) = self.commits.get_mut(c.position) {
                *slot = Some((step.index, c.confidence));
            }
        }
        self.masked.push(step.masked.iter().filter(|&&m| m).count());
        self.confidence.push((!step.commits.is_empty()).then(|| {
            step.commits.iter().map(|c| c.confidence).sum::<f64>() / step.commits.len() as f64
        }));
        self.steps.push(step);
    }

    /// Steps so far.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there are no steps yet.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The prompt's ids.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    /// Text of a token id, or `⟨id⟩` when unknown.
    pub fn text(&self, id: u32) -> String {
        self.vocab
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("⟨{id}⟩"))
    }

    /// Whether the text of `id` has been learned.
    pub fn knows(&self, id: u32) -> bool {
        self.vocab.contains_key(&id)
    }

    /// Each position's level before the first step: the given tokens clean, every mask at S.
    fn opening_levels(&self, levels: usize) -> Vec<u32> {
        self.initial
            .iter()
            .map(|&t| if t == self.mask_id { levels as u32 } else { 0 })
            .collect()
    }

    /// The scheduling matrix recorded so far, for a diffusion-forcing run.
    pub fn heatmap(&self) -> Option<Heatmap> {
        let levels = self.levels?;
        let opening = self.opening_levels(levels);
        let rows: Vec<&[u32]> = std::iter::once(opening.as_slice())
            .chain(self.steps.iter().map(|s| s.levels.as_slice()))
            .collect();
        let mut paths = vec![String::new(); levels];
        for (y, row) in rows.iter().enumerate() {
            let mut x = 0;
            while x < row.len() {
                let level = row[x];
                let run = row[x..].iter().take_while(|&&k| k == level).count();
                if let Some(path) = (level as usize)
                    .checked_sub(1)
                    .and_then(|k| paths.get_mut(k))
                {
                    // Writing to a String cannot fail.
                    let _ = write!(path, "M{x} {y}h{run}v1h-{run}z");
                }
                x += run;
            }
        }
        Some(Heatmap {
            columns: self.width(),
            rows: rows.len(),
            shades: paths
                .into_iter()
                .enumerate()
                .filter(|(_, p)| !p.is_empty())
                .map(|(k, p)| ((k + 1) as f64 / levels as f64, p))
                .collect(),
        })
    }

    /// The canvas at step `at` (clamped to the last), cell by cell; before any step, the initial
    /// canvas.
    pub fn cells(&self, at: usize) -> Vec<Cell> {
        let Some(step) = self.step(at) else {
            let opening = self.levels.map(|s| (self.opening_levels(s), s));
            return self
                .initial
                .iter()
                .enumerate()
                .map(|(i, &t)| Cell {
                    level: opening.as_ref().map(|(row, s)| row[i] as f64 / *s as f64),
                    ..self.prompt_cell(i, t)
                })
                .collect();
        };
        let at = step.index;
        step.canvas
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let in_block = (step.block[0]..step.block[1]).contains(&i);
                let given = self.prompt_ids.get(i).is_some_and(|&p| p != self.mask_id);
                let state = if given {
                    CellState::Prompt
                } else if step.masked.get(i).copied().unwrap_or(t == self.mask_id) {
                    CellState::Masked
                } else {
                    match self.commits.get(i).copied().flatten() {
                        Some((s, confidence)) if s <= at => CellState::Committed {
                            step: s,
                            confidence,
                            fresh: s == at,
                        },
                        // Filled at a later step than shown cannot happen (the canvas says not
                        // masked); treat as fresh.
                        _ => CellState::Committed {
                            step: at,
                            confidence: 0.0,
                            fresh: true,
                        },
                    }
                };
                let text = if state == CellState::Masked {
                    String::new()
                } else {
                    self.text(t)
                };
                let level = self
                    .levels
                    .zip(step.levels.get(i))
                    .map(|(s, &k)| k as f64 / s as f64);
                Cell {
                    position: i,
                    text,
                    state,
                    in_block,
                    level,
                }
            })
            .collect()
    }

    fn prompt_cell(&self, i: usize, t: u32) -> Cell {
        let masked = t == self.mask_id;
        Cell {
            position: i,
            text: if masked { String::new() } else { self.text(t) },
            state: if masked {
                CellState::Masked
            } else {
                CellState::Prompt
            },
            in_block: false,
            level: None,
        }
    }

    /// Step `at`, clamped to the last one.
    pub fn step(&self, at: usize) -> Option<&Step> {
        self.steps.get(at.min(self.steps.len().saturating_sub(1)))
    }

    /// The model's top candidates for `position` as of step `at`: from the latest step up to `at`
    /// that predicted it.
    pub fn candidates(&self, position: usize, at: usize) -> Option<&Candidates> {
        let end = at.saturating_add(1).min(self.steps.len());
        self.steps[..end]
            .iter()
            .rev()
            .find_map(|s| s.candidates.iter().find(|c| c.position == position))
    }

    /// When position `i` was committed, and how confidently.
    pub fn commit_of(&self, i: usize) -> Option<(usize, f64)> {
        self.commits.get(i).copied().flatten()
    }

    /// Masked positions after each step.
    pub fn masked_series(&self) -> &[usize] {
        &self.masked
    }

    /// Mean confidence of the tokens committed in each step (`None` for a step that committed
    /// nothing).
    pub fn confidence_series(&self) -> &[Option<f64>] {
        &self.confidence
    }

    /// Tokens committed up to and including step `at`.
    pub fn committed_through(&self, at: usize) -> usize {
        let end = at.saturating_add(1).min(self.steps.len());
        self.steps[..end].iter().map(|s| s.commits.len()).sum()
    }

    /// Canvas length (the latest step's, or the prompt's).
    pub fn width(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.canvas.len())
            .max()
            .unwrap_or(self.initial.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{Commit, TopToken};

    fn step(index: usize, canvas: &[u32], commits: &[(usize, u32)], block: [usize; 2]) -> Step {
        // Each step predicts position 3 with its own top token (4 + index).
        Step {
            index,
            model_calls: index + 1,
            commits: commits
                .iter()
                .map(|&(position, token)| Commit {
                    position,
                    token,
                    confidence: 0.5,
                })
                .collect(),
            canvas: canvas.to_vec(),
            masked: canvas.iter().map(|&t| t == 9).collect(),
            block,
            candidates: vec![Candidates {
                position: 3,
                top: vec![TopToken {
                    token: 4 + index as u32,
                    prob: 0.7,
                }],
            }],
            levels: Vec::new(),
        }
    }

    #[test]
    fn cells_follow_the_timeline() {
        // Prompt [1, 9(mask to infill)], then two generated positions; mask id 9.
        let mut r = Replay::new(vec![1, 9], vec![1, 9, 9, 9], 9);
        r.add_vocab([(1, "a".to_string()), (2, "b".into()), (3, "c".into())]);
        r.push(step(0, &[1, 2, 9, 9], &[(1, 2)], [0, 4]));
        r.push(step(1, &[1, 2, 3, 9], &[(2, 3)], [2, 4]));
        r.push(step(2, &[1, 2, 3, 4], &[(3, 4)], [2, 4]));

        let at0 = r.cells(0);
        assert_eq!(at0[0].state, CellState::Prompt);
        assert_eq!(at0[0].text, "a");
        // The infilled prompt mask is a generated token, committed (fresh) at step 0.
        assert!(matches!(
            at0[1].state,
            CellState::Committed {
                step: 0,
                fresh: true,
                ..
            }
        ));
        assert_eq!(at0[2].state, CellState::Masked);
        assert_eq!(at0[2].text, "");

        let at1 = r.cells(1);
        assert!(matches!(
            at1[1].state,
            CellState::Committed {
                step: 0,
                fresh: false,
                ..
            }
        ));
        assert!(matches!(
            at1[2].state,
            CellState::Committed {
                step: 1,
                fresh: true,
                ..
            }
        ));
        assert!(!at1[0].in_block && at1[2].in_block);
        // Unknown text is shown by id, never dropped.
        assert_eq!(r.cells(2)[3].text, "⟨4⟩");
        // Beyond the end clamps to the last step.
        assert_eq!(r.cells(99), r.cells(2));

        assert_eq!(r.masked_series(), [2, 1, 0]);
        assert_eq!(r.confidence_series(), [Some(0.5); 3]);
        assert_eq!(r.committed_through(1), 2);
        assert_eq!(r.committed_through(usize::MAX), 3);
        assert_eq!(r.candidates(3, usize::MAX).unwrap().top[0].token, 6);
        // As of a step: that step's prediction, not a later one.
        assert_eq!(r.candidates(3, 0).unwrap().top[0].token, 4);
        assert_eq!(r.candidates(3, 1).unwrap().top[0].token, 5);
        assert_eq!(r.candidates(5, 1), None);
        assert_eq!(r.commit_of(3), Some((2, 0.5)));
    }

    #[test]
    fn a_forcing_run_shows_each_cells_level_and_draws_the_matrix() {
        // Two levels; prompt [1], then three masks (id 9). The steps record the levels after them.
        let mut r = Replay::new(vec![1], vec![1, 9, 9, 9], 9).with_levels(Some(2));
        let mut s0 = step(0, &[1, 9, 9, 9], &[], [1, 2]);
        s0.levels = vec![0, 1, 2, 2];
        let mut s1 = step(1, &[1, 2, 9, 9], &[(1, 2)], [1, 3]);
        s1.levels = vec![0, 0, 1, 2];
        r.push(s0);
        r.push(s1);
        let level =
            |at: usize| -> Vec<Option<f64>> { r.cells(at).iter().map(|c| c.level).collect() };
        assert_eq!(level(0), [Some(0.0), Some(0.5), Some(1.0), Some(1.0)]);
        assert_eq!(level(1), [Some(0.0), Some(0.0), Some(0.5), Some(1.0)]);
        let h = r.heatmap().unwrap();
        assert_eq!((h.columns, h.rows), (4, 3));
        // Level 1 (shade ½): (1, row 1) and (2, row 2); level 2 (shade 1): the opening row's three
        // masks, two cells of row 1, one of row 2.
        assert_eq!(
            h.shades,
            vec![
                (0.5, "M1 1h1v1h-1zM2 2h1v1h-1z".to_string()),
                (1.0, "M1 0h3v1h-3zM2 1h2v1h-2zM3 2h1v1h-1z".to_string()),
            ]
        );
        // Before any step: the prompt clean, the masks at the top level.
        let fresh = Replay::new(vec![1], vec![1, 9], 9).with_levels(Some(4));
        let opening: Vec<Option<f64>> = fresh.cells(0).iter().map(|c| c.level).collect();
        assert_eq!(opening, [Some(0.0), Some(1.0)]);
        // Other samplers' runs have neither.
        let plain = Replay::new(vec![1], vec![1, 9], 9);
        assert_eq!(plain.heatmap(), None);
        assert_eq!(plain.cells(0)[1].level, None);
    }

    #[test]
    fn before_any_step_the_prompt_shows() {
        let r = Replay::new(vec![1, 9], vec![1, 9, 9], 9);
        let cells = r.cells(0);
        assert_eq!(cells.len(), 3);
        assert_eq!(cells[0].state, CellState::Prompt);
        assert_eq!(cells[1].state, CellState::Masked);
        assert_eq!(r.width(), 3);
    }
}
