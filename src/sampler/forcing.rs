//! Diffusion forcing's scheduling matrix (Chen et al. 2024, "Diffusion Forcing: Next-token
//! Prediction Meets Full-Sequence Diffusion", arXiv:2407.01392): every token carries its own
//! noise level, and a sampling schedule is a matrix `K[m, i]` of levels — row `m` a sampling
//! step, column `i` a token, `S` levels down to clean (0). Each step moves every token from its
//! level in row `m` to its level in row `m + 1`.
//!
//! Follows `buoyancy99/diffusion-forcing` (main branch), `algorithms/diffusion_forcing/df_base.py`
//! (`_generate_scheduling_matrix`, `_generate_pyramid_scheduling_matrix`), written again here: the
//! pyramid `K[m, i] = clip(S + ⌊i·u⌋ − m, 0, S)` for `m = 0 … S + ⌊(H − 1)·u⌋`, whose slope `u`
//! slides from full-sequence diffusion (`u = 0`: every token at the same level) to
//! autoregression (`u = S`: each token clean before the next starts).
//!
//! For text, in the absorbing-mask form, a level is the share of the way to a mask: a masked
//! token whose level falls from `k` to `k′` is unmasked with probability `(k − k′)/k`
//! ([`unmask_probability`]), so it is always unmasked by the time its level reaches 0.
//!
//! [`Forcing`] runs a schedule on a model trained with a noise level per token (`unmask train
//! --objective forcing`): before step `m` every scheduled token stands at its level in row `m`
//! (given tokens at 0), the model sees each position's level (σ of the log-linear schedule at
//! t = level/S) and predicts each position's clean token from itself and the tokens before it;
//! every still-masked token whose level falls is unmasked with [`unmask_probability`], drawn as
//! the other samplers draw (temperature, top-k/p, SUBS). A step that draws no token makes no
//! model call. Each step records every position's level, so a
//! trajectory holds the whole matrix.
//!
//! Rolling generation: the canvas may be longer than the model's context. A model call sees a
//! window of at most `model_length` positions that ends at the last token the step works on (the
//! tokens before it as context, positions counted from the window's start, as in training). The
//! window's start moves in strides of a quarter of the context ([`ROLL_STRIDES`]), as the
//! reference rolls its horizon a chunk at a time, the frames before it as context (`df_base.py`
//! `validation_step`: `curr_frame += horizon`, the window from `curr_frame + horizon −
//! n_tokens`): every call keeps at least three quarters of the
//! context, and the calls between two moves share one start, so the clean prefix's keys and
//! values stay cached. A schedule whose step would work on tokens farther apart than one window
//! is refused before the first step.
//!
//! The clean-prefix cache: under causal attention a token at level 0 sees only clean tokens
//! before it, so its keys and values never change; a call stores the window's clean prefix once
//! and runs only what follows it ([`Denoiser::predict_levels_cached`]). Exact: the rows are the
//! whole window's.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Attention;

use super::settings::ForcingSettings;
use super::{
    Base, CacheConflict, Canvas, Commit, Denoiser, ModelError, ModelSpec, RowDraw, RowQuery, Rows,
    SampleError, SamplerKind, SettingsError, Step, loglinear_sigma,
};

/// A rolling window's start moves in steps of `model_length / ROLL_STRIDES` positions.
pub const ROLL_STRIDES: usize = 4;

/// The most levels a schedule has (the reference samples with tens).
pub const MAX_LEVELS: usize = 1_000;
/// The most steps × tokens of a run that keeps every step: the page draws the matrix and a
/// trajectory holds each step's row. A run that keeps no steps (the CLI without `--trace`) has no
/// such bound: the matrix is computed a row at a time, never held.
pub const MAX_MATRIX_CELLS: usize = 4_000_000;

/// How the tokens' noise levels fall, step by step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    /// Each token trails the one before it by `slope` steps (the reference's
    /// `uncertainty_scale`): between full-sequence (0) and autoregressive (the level count).
    Pyramid {
        /// Steps by which token `i + 1` trails token `i`, from 0 to the level count.
        slope: f64,
    },
    /// One token at a time, each clean before the next starts: the pyramid at its steepest.
    Autoregressive,
    /// Every token at the same level: plain full-sequence diffusion, the pyramid laid flat.
    FullSequence,
}

impl std::fmt::Display for Schedule {
    /// Its name, and the pyramid's slope: "pyramid at slope 1", "autoregressive".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Pyramid { slope } => write!(f, "{} at slope {slope}", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// A schedule that cannot be laid out.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ScheduleError {
    /// The level count is out of range.
    #[error("levels = {levels}: a schedule has 1 to {MAX_LEVELS} noise levels")]
    Levels {
        /// What was asked.
        levels: usize,
    },
    /// No tokens to schedule.
    #[error("a schedule needs at least one token")]
    NoTokens,
    /// The pyramid's slope is out of range.
    #[error(
        "slope = {slope}: the pyramid's slope runs from 0 (full-sequence) to the level count, {levels} (autoregressive)"
    )]
    Slope {
        /// What was asked.
        slope: f64,
        /// The level count, the steepest slope.
        levels: usize,
    },
    /// A run to record (the page, `--trace`) whose matrix is too large to keep.
    #[error(
        "{steps} steps × {tokens} tokens is more than a recorded run may hold ({MAX_MATRIX_CELLS} cells: the page and --trace keep every step); use fewer levels, a gentler slope or fewer tokens, or run it with `unmask generate` without --trace"
    )]
    TooLarge {
        /// Its rows.
        steps: usize,
        /// Its columns.
        tokens: usize,
    },
}

impl Schedule {
    /// The schedules' names, in links, the CLI and messages.
    pub const NAMES: [&'static str; 3] = ["pyramid", "autoregressive", "full-sequence"];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Pyramid { .. } => Self::NAMES[0],
            Schedule::Autoregressive => Self::NAMES[1],
            Schedule::FullSequence => Self::NAMES[2],
        }
    }

    /// The schedule called `name`; the pyramid at slope `slope`.
    pub fn from_name(name: &str, slope: f64) -> Option<Self> {
        match name {
            "pyramid" => Some(Schedule::Pyramid { slope }),
            "autoregressive" => Some(Schedule::Autoregressive),
            "full-sequence" => Some(Schedule::FullSequence),
            _ => None,
        }
    }

    /// The pyramid's slope for `levels` levels: 0 for full-sequence, `levels` for autoregressive.
    pub fn slope(self, levels: usize) -> f64 {
        match self {
            Schedule::Pyramid { slope } => slope,
            Schedule::Autoregressive => levels as f64,
            Schedule::FullSequence => 0.0,
        }
    }

    /// The matrix for `tokens` tokens and `levels` levels.
    pub fn matrix(self, levels: usize, tokens: usize) -> Result<SchedulingMatrix, ScheduleError> {
        if !(1..=MAX_LEVELS).contains(&levels) {
            return Err(ScheduleError::Levels { levels });
        }
        if tokens == 0 {
            return Err(ScheduleError::NoTokens);
        }
        let slope = self.slope(levels);
        if !(0.0..=levels as f64).contains(&slope) {
            return Err(ScheduleError::Slope { slope, levels });
        }
        // Token i starts to fall at step ⌊i·u⌋ and is clean S steps later.
        let delays: Vec<usize> = (0..tokens)
            .map(|i| (i as f64 * slope).floor() as usize)
            .collect();
        let rows = levels + delays[tokens - 1] + 1;
        Ok(SchedulingMatrix {
            levels,
            rows,
            delays,
        })
    }
}

/// `K[m, i]`: each token's noise level (0 clean … `levels` fully masked) at each sampling step;
/// the first row is all `levels`, the last all 0. Held as each token's delay, `K[m, i] =
/// clip(S + delay(i) − m, 0, S)`, so a schedule of any length costs one number per token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulingMatrix {
    levels: usize,
    rows: usize,
    /// Each token's delay, ⌊i·u⌋: the step its level starts to fall.
    delays: Vec<usize>,
}

impl SchedulingMatrix {
    /// The level count `S`.
    pub fn levels(&self) -> usize {
        self.levels
    }

    /// The token count `H`.
    pub fn tokens(&self) -> usize {
        self.delays.len()
    }

    /// Its rows: one more than the sampling steps it takes.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Its cells, rows × tokens: what a run that keeps every step holds of it.
    pub fn cells(&self) -> usize {
        self.rows.saturating_mul(self.tokens())
    }

    /// `K[m, i]`.
    pub fn level(&self, m: usize, i: usize) -> u32 {
        (self.levels + self.delays[i])
            .saturating_sub(m)
            .min(self.levels) as u32
    }

    /// Row `m`: every token's level before step `m` (after step `m − 1`).
    pub fn row(&self, m: usize) -> impl Iterator<Item = u32> + '_ {
        (0..self.tokens()).map(move |i| self.level(m, i))
    }

    /// The tokens whose level falls between rows `m` and `m + 1`, each with its two levels: the
    /// tokens step `m` works on (the others are left alone, as in the reference). Those whose
    /// delay is in `m + 1 − S ..= m`, a run of neighbours (the delays never fall), found by two
    /// binary searches: a step costs the tokens it moves, not the schedule's length.
    pub fn falls(&self, m: usize) -> impl Iterator<Item = (usize, u32, u32)> + '_ {
        let start = self.delays.partition_point(|&d| d + self.levels <= m);
        let end = self.delays.partition_point(|&d| d <= m);
        (start..end).map(move |i| (i, self.level(m, i), self.level(m + 1, i)))
    }

    /// Whether a run that keeps every step may hold it ([`MAX_MATRIX_CELLS`]).
    pub fn check_recordable(&self) -> Result<(), ScheduleError> {
        if self.cells() > MAX_MATRIX_CELLS {
            return Err(ScheduleError::TooLarge {
                steps: self.rows,
                tokens: self.tokens(),
            });
        }
        Ok(())
    }
}

/// The probability that a token still masked at level `from` is unmasked as its level falls to
/// `to`: `(from − to)/from`, so that it stays masked with probability `to/from` — the masked
/// share the level stands for — and is certainly unmasked at level 0. A level that does not fall
/// unmasks nothing.
pub fn unmask_probability(from: u32, to: u32) -> f64 {
    if from == 0 || to >= from {
        0.0
    } else {
        f64::from(from - to) / f64::from(from)
    }
}

/// σ of a level: the log-linear schedule's at t = level / levels (0 for a clean token).
pub fn level_sigma(level: u32, levels: usize) -> f32 {
    loglinear_sigma(f64::from(level) / levels.max(1) as f64)
}

/// The forcing sampler's state.
#[derive(Clone, Debug)]
pub struct Forcing {
    pub(crate) base: Base,
    matrix: SchedulingMatrix,
    /// The canvas position of each of the matrix's columns: every position masked at the start.
    columns: Vec<usize>,
    /// Every canvas position's level now (given tokens stay at 0).
    levels: Vec<u32>,
    /// The next step's row of the matrix.
    row: usize,
    /// The most positions one model call sees (`model_length`).
    window: usize,
    /// Whether calls keep the window's clean prefix in the model's KV cache.
    use_cache: bool,
    /// The canvas positions whose keys and values the cache holds: a prefix of the window the
    /// last call saw (empty before the first call).
    cached: Range<usize>,
}

impl Forcing {
    /// Lays out the schedule over the canvas's masked positions, refusing one the model's window
    /// cannot serve.
    pub fn new(
        settings: &ForcingSettings,
        prompt: &[u32],
        spec: &ModelSpec,
    ) -> Result<Self, SettingsError> {
        if settings.use_cache && spec.attention != Attention::Causal {
            return Err(SettingsError::CacheUnsupported {
                sampler: SamplerKind::Forcing,
                why: CacheConflict::Attention {
                    needs: "causal",
                    has: spec.attention.name(),
                },
            });
        }
        let canvas = Canvas::new(prompt, settings.gen_length, spec.mask_id);
        let columns = canvas.masked_in(0..canvas.len());
        let matrix = settings.schedule.matrix(settings.levels, columns.len())?;
        for m in 0..matrix.rows() - 1 {
            let mut falling = matrix.falls(m).map(|(j, _, _)| columns[j]);
            if let Some(first) = falling.next() {
                let span = falling.last().unwrap_or(first) - first + 1;
                if span > spec.model_length {
                    return Err(SettingsError::ForcingWindow {
                        span,
                        model_length: spec.model_length,
                    });
                }
            }
        }
        let mut levels = vec![0; canvas.len()];
        for (&position, level) in columns.iter().zip(matrix.row(0)) {
            levels[position] = level;
        }
        Ok(Self {
            base: Base::new(canvas, &settings.draw, spec, false),
            matrix,
            columns,
            levels,
            row: 0,
            window: spec.model_length,
            use_cache: settings.use_cache,
            cached: 0..0,
        })
    }

    /// The scheduling matrix it runs.
    pub fn matrix(&self) -> &SchedulingMatrix {
        &self.matrix
    }

    /// Runs one row transition of the matrix (a model call when it draws a token).
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        let m = self.row;
        if m + 1 >= self.matrix.rows() {
            return Ok(None);
        }
        // The tokens this step works on, and which of them unmask: drawn in position order, each
        // token's move before its token, as MDLM draws.
        let mut block: Option<(usize, usize)> = None;
        let mut worked: Vec<(usize, Option<RowDraw>)> = Vec::new();
        for (j, from, to) in self.matrix.falls(m) {
            let position = self.columns[j];
            block = Some((block.map_or(position, |b| b.0), position + 1));
            if !self.base.canvas.is_masked(position) {
                continue;
            }
            let unmasks = self.base.rng.uniform() < unmask_probability(from, to);
            worked.push((position, unmasks.then(|| self.base.plan())));
        }
        // The model runs only when a token is drawn (a trace or the inspector then gets every
        // masked token's candidates), so showing them never changes the calls a run makes.
        let shown = self.base.shows_candidates();
        if worked.iter().all(|(_, draw)| draw.is_none()) {
            worked.clear();
        }
        worked.retain(|(_, draw)| shown || draw.is_some());
        let mut commits = Vec::new();
        let mut candidates = Vec::new();
        if let (Some(&(first, _)), Some(&(last, _))) = (worked.first(), worked.last()) {
            let end = last + 1;
            let start = self.window_start(first, end);
            let prediction = self.predict(model, start..end, first).await?;
            self.base.progress.model_calls += 1;
            let queries = worked
                .iter()
                .map(|(position, draw)| RowQuery {
                    row: position - first,
                    draw: draw.clone().unwrap_or(RowDraw::Greedy),
                })
                .collect();
            let reduced = prediction.reduce(&self.base.request(queries, None)).await?;
            for ((position, draw), r) in worked.iter().zip(&reduced) {
                candidates.extend(self.base.candidates_of(*position, r));
                if draw.is_some() {
                    commits.push(Commit {
                        position: *position,
                        token: r.token,
                        confidence: r.prob,
                    });
                }
            }
            self.base.canvas.apply(&commits);
        }
        self.row += 1;
        // Only the tokens that moved change level.
        for (j, _, to) in self.matrix.falls(m) {
            self.levels[self.columns[j]] = to;
        }
        let (start, end) = block.unwrap_or((0, 0));
        let mut step = self
            .base
            .progress
            .emit(&self.base.canvas, commits, start..end, candidates);
        step.levels = self.levels.clone();
        Ok(Some(step))
    }

    /// Where the window ending at `end` starts: at the first multiple of the stride from which
    /// it fits the context, or exactly one context before `end` where that start would pass
    /// `first` (a step as wide as the window; `new` checked that one window holds it).
    fn window_start(&self, first: usize, end: usize) -> usize {
        let earliest = end.saturating_sub(self.window);
        let stride = (self.window / ROLL_STRIDES).max(1);
        let aligned = earliest.div_ceil(stride) * stride;
        if aligned <= first { aligned } else { earliest }
    }

    /// The model's rows for canvas positions `first..window.end`, each position of the window
    /// at its level. With the cache, the window's clean prefix (level 0, before `first`) is fed
    /// once and kept; a window that slid starts the cache again, as its positions are counted
    /// from its new start.
    async fn predict<D: Denoiser>(
        &mut self,
        model: &mut D,
        window: Range<usize>,
        first: usize,
    ) -> Result<D::Rows, ModelError> {
        let levels = self.matrix.levels();
        let sigma = |range: Range<usize>| -> Vec<f32> {
            self.levels[range]
                .iter()
                .map(|&k| level_sigma(k, levels))
                .collect()
        };
        let tokens = self.base.canvas.tokens();
        if !self.use_cache {
            return model
                .predict_levels(
                    &tokens[window.clone()],
                    first - window.start..window.end - window.start,
                    &sigma(window),
                )
                .await;
        }
        if self.base.progress.model_calls == 0
            || self.cached.start != window.start
            || self.cached.end > first
        {
            model.reset_cache();
            self.cached = window.start..window.start;
        }
        // Levels never rise and a token at level 0 is never masked: the prefix only grows.
        let clean_end = (self.cached.end..first)
            .find(|&p| self.levels[p] != 0 || self.base.canvas.is_masked(p))
            .unwrap_or(first);
        let rows = model
            .predict_levels_cached(
                &tokens[self.cached.end..clean_end],
                &tokens[clean_end..window.end],
                first - clean_end..window.end - clean_end,
                &sigma(clean_end..window.end),
            )
            .await?;
        self.cached.end = clean_end;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(k: &SchedulingMatrix, i: usize) -> Vec<u32> {
        (0..k.rows()).map(|m| k.level(m, i)).collect()
    }

    #[test]
    fn the_pyramid_is_the_references_formula() {
        let (levels, tokens, slope) = (4, 6, 1.5);
        let k = Schedule::Pyramid { slope }.matrix(levels, tokens).unwrap();
        // S + ⌊(H − 1)·u⌋ + 1 rows: 4 + ⌊7.5⌋ + 1.
        assert_eq!(k.rows(), 12);
        for m in 0..k.rows() {
            for i in 0..tokens {
                let want = (levels as i64 + (i as f64 * slope).floor() as i64 - m as i64)
                    .clamp(0, levels as i64) as u32;
                assert_eq!(k.level(m, i), want, "K[{m}, {i}]");
            }
        }
        let row = |m| k.row(m).collect::<Vec<_>>();
        assert_eq!(row(0), [4, 4, 4, 4, 4, 4]);
        assert_eq!(row(2), [2, 3, 4, 4, 4, 4]);
        assert_eq!(row(k.rows() - 1), [0; 6]);
    }

    #[test]
    fn every_schedule_falls_from_all_masked_to_all_clean_never_rising() {
        for schedule in [
            Schedule::FullSequence,
            Schedule::Autoregressive,
            Schedule::Pyramid { slope: 0.5 },
            Schedule::Pyramid { slope: 3.0 },
        ] {
            let k = schedule.matrix(5, 9).unwrap();
            assert!(k.row(0).all(|l| l == 5), "{schedule:?}");
            assert!(k.row(k.rows() - 1).all(|l| l == 0), "{schedule:?}");
            for i in 0..k.tokens() {
                let c = column(&k, i);
                assert!(
                    c.windows(2).all(|w| w[1] <= w[0]),
                    "{schedule:?}: token {i}: {c:?}"
                );
                // One level a step once it starts: S falls, then clean.
                assert_eq!(c.windows(2).filter(|w| w[1] < w[0]).count(), 5);
            }
            // Every step moves some token: no idle rows; and the moves are exactly the tokens
            // whose level differs between the two rows.
            for m in 0..k.rows() - 1 {
                assert!(
                    k.falls(m).count() > 0,
                    "{schedule:?}: step {m} moves nothing"
                );
                let moved: Vec<(usize, u32, u32)> = (0..k.tokens())
                    .map(|i| (i, k.level(m, i), k.level(m + 1, i)))
                    .filter(|(_, from, to)| to < from)
                    .collect();
                assert_eq!(
                    k.falls(m).collect::<Vec<_>>(),
                    moved,
                    "{schedule:?}: step {m}"
                );
            }
        }
    }

    #[test]
    fn autoregressive_finishes_each_token_before_the_next_and_full_sequence_moves_all_at_once() {
        let ar = Schedule::Autoregressive.matrix(3, 4).unwrap();
        assert_eq!(ar.rows(), 3 * 4 + 1);
        for m in 0..ar.rows() - 1 {
            let moving: Vec<usize> = ar.falls(m).map(|(i, _, _)| i).collect();
            assert_eq!(moving, [m / 3], "step {m}");
            // Every token before it is clean, every token after untouched.
            let row: Vec<u32> = ar.row(m).collect();
            assert!(
                row[..m / 3].iter().all(|&l| l == 0) && row[m / 3 + 1..].iter().all(|&l| l == 3)
            );
        }
        let full = Schedule::FullSequence.matrix(3, 4).unwrap();
        assert_eq!(full.rows(), 4);
        for m in 0..3 {
            assert_eq!(full.falls(m).count(), 4);
            assert!(full.row(m).all(|l| l as usize == 3 - m));
        }
        // The pyramid's ends are the two.
        assert_eq!(Schedule::Pyramid { slope: 3.0 }.matrix(3, 4).unwrap(), ar);
        assert_eq!(Schedule::Pyramid { slope: 0.0 }.matrix(3, 4).unwrap(), full);
    }

    #[test]
    fn a_falling_level_unmasks_its_share_and_level_zero_unmasks_all() {
        assert_eq!(unmask_probability(4, 3), 0.25);
        assert_eq!(unmask_probability(4, 0), 1.0);
        assert_eq!(unmask_probability(1, 0), 1.0);
        assert_eq!(unmask_probability(3, 3), 0.0);
        assert_eq!(unmask_probability(0, 0), 0.0);
        // Staying masked all the way down: Π k′/k over the falls is 0 at the end.
        let stays: f64 = (1..=5u32)
            .rev()
            .map(|k| 1.0 - unmask_probability(k, k - 1))
            .product();
        assert_eq!(stays, 0.0);
        // Half-way down, the masked share is the level's: 3/5 of the tokens at level 3 of 5.
        let half: f64 = (4..=5u32)
            .rev()
            .map(|k| 1.0 - unmask_probability(k, k - 1))
            .product();
        assert!((half - 0.6).abs() < 1e-12);
    }

    #[test]
    fn bad_schedules_are_named() {
        let err = |s: Schedule, levels, tokens| s.matrix(levels, tokens).unwrap_err();
        assert_eq!(
            err(Schedule::FullSequence, 0, 4),
            ScheduleError::Levels { levels: 0 }
        );
        assert_eq!(err(Schedule::FullSequence, 4, 0), ScheduleError::NoTokens);
        assert!(matches!(
            err(Schedule::Pyramid { slope: -1.0 }, 4, 4),
            ScheduleError::Slope { .. }
        ));
        assert!(matches!(
            err(Schedule::Pyramid { slope: f64::NAN }, 4, 4),
            ScheduleError::Slope { .. }
        ));
        assert!(matches!(
            err(Schedule::Pyramid { slope: 5.0 }, 4, 4),
            ScheduleError::Slope { .. }
        ));
        // A schedule of any length lays out (one number per token); one too large to record is
        // refused where every step is kept.
        let long = Schedule::Autoregressive.matrix(1_000, 4_096).unwrap();
        assert_eq!((long.rows(), long.cells()), (4_096_001, 4_096_001 * 4_096));
        let refused = long.check_recordable().unwrap_err();
        assert!(matches!(refused, ScheduleError::TooLarge { .. }));
        assert!(refused.to_string().contains("4096001 steps × 4096 tokens"));
        assert!(
            Schedule::Autoregressive
                .matrix(8, 64)
                .unwrap()
                .check_recordable()
                .is_ok()
        );
    }
}
