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
//! This file is the schedule; the forcing sampler and the per-position-conditioned model that
//! run it come next (issue 17).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The most levels a schedule has (the reference samples with tens).
pub const MAX_LEVELS: usize = 1_000;
/// The most levels × tokens × steps a matrix may hold: the page draws it, the trajectory keeps
/// each step's row.
pub const MAX_MATRIX_CELLS: usize = 4_000_000;

/// How the tokens' noise levels fall, step by step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schedule", rename_all = "kebab-case")]
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

/// A schedule that cannot be laid out.
#[derive(Debug, Error, PartialEq)]
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
    /// The matrix would be too large to keep.
    #[error(
        "{steps} steps × {tokens} tokens is more than a schedule may hold ({MAX_MATRIX_CELLS} cells); use fewer levels, a gentler slope or fewer tokens"
    )]
    TooLarge {
        /// Its rows.
        steps: usize,
        /// Its columns.
        tokens: usize,
    },
}

impl Schedule {
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
        let delay = |i: usize| (i as f64 * slope).floor() as usize;
        let steps = levels + delay(tokens - 1) + 1;
        if steps.saturating_mul(tokens) > MAX_MATRIX_CELLS {
            return Err(ScheduleError::TooLarge { steps, tokens });
        }
        let delays: Vec<usize> = (0..tokens).map(delay).collect();
        let levels_at = (0..steps)
            .flat_map(|m| {
                delays
                    .iter()
                    .map(move |&d| (levels + d).saturating_sub(m).min(levels) as u32)
            })
            .collect();
        Ok(SchedulingMatrix {
            levels,
            tokens,
            levels_at,
        })
    }
}

/// `K[m, i]`: each token's noise level (0 clean … `levels` fully masked) at each sampling step;
/// the first row is all `levels`, the last all 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulingMatrix {
    levels: usize,
    tokens: usize,
    /// Row by row.
    levels_at: Vec<u32>,
}

impl SchedulingMatrix {
    /// The level count `S`.
    pub fn levels(&self) -> usize {
        self.levels
    }

    /// The token count `H`.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Its rows: one more than the sampling steps it takes.
    pub fn rows(&self) -> usize {
        self.levels_at.len() / self.tokens
    }

    /// Row `m`: every token's level before step `m` (after step `m − 1`).
    pub fn row(&self, m: usize) -> &[u32] {
        &self.levels_at[m * self.tokens..(m + 1) * self.tokens]
    }

    /// The tokens whose level falls between rows `m` and `m + 1`, each with its two levels: the
    /// tokens step `m` works on (the others are left alone, as in the reference).
    pub fn falls(&self, m: usize) -> impl Iterator<Item = (usize, u32, u32)> + '_ {
        self.row(m)
            .iter()
            .zip(self.row(m + 1))
            .enumerate()
            .filter(|(_, (from, to))| to < from)
            .map(|(i, (&from, &to))| (i, from, to))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn column(k: &SchedulingMatrix, i: usize) -> Vec<u32> {
        (0..k.rows()).map(|m| k.row(m)[i]).collect()
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
                assert_eq!(k.row(m)[i], want, "K[{m}, {i}]");
            }
        }
        assert_eq!(k.row(0), &[4, 4, 4, 4, 4, 4]);
        assert_eq!(k.row(2), &[2, 3, 4, 4, 4, 4]);
        assert_eq!(k.row(k.rows() - 1), &[0; 6]);
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
            assert!(k.row(0).iter().all(|&l| l == 5), "{schedule:?}");
            assert!(k.row(k.rows() - 1).iter().all(|&l| l == 0), "{schedule:?}");
            for i in 0..k.tokens() {
                let c = column(&k, i);
                assert!(
                    c.windows(2).all(|w| w[1] <= w[0]),
                    "{schedule:?}: token {i}: {c:?}"
                );
                // One level a step once it starts: S falls, then clean.
                assert_eq!(c.windows(2).filter(|w| w[1] < w[0]).count(), 5);
            }
            // Every step moves some token: no idle rows.
            for m in 0..k.rows() - 1 {
                assert!(
                    k.falls(m).count() > 0,
                    "{schedule:?}: step {m} moves nothing"
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
            let row = ar.row(m);
            assert!(
                row[..m / 3].iter().all(|&l| l == 0) && row[m / 3 + 1..].iter().all(|&l| l == 3)
            );
        }
        let full = Schedule::FullSequence.matrix(3, 4).unwrap();
        assert_eq!(full.rows(), 4);
        for m in 0..3 {
            assert_eq!(full.falls(m).count(), 4);
            assert!(full.row(m).iter().all(|&l| l as usize == 3 - m));
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
        assert!(matches!(
            err(Schedule::Autoregressive, 1_000, 4_096),
            ScheduleError::TooLarge { .. }
        ));
        assert!(
            err(Schedule::Autoregressive, 1_000, 4_096)
                .to_string()
                .contains("4096001 steps × 4096 tokens")
        );
    }
}
