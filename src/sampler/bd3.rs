//! BD3-LM's block diffusion sampler with the exact KV cache.
//!
//! Arriola et al., "Block Diffusion: Interpolating Between Autoregressive and Diffusion Language
//! Models", arXiv:2503.09573 (ICLR 2025), following `kuleshov-group/bd3lms` `diffusion.py`
//! (`_semi_ar_sampler`, first-hitting updates, nucleus sampling, stopping rules).
//!
//! Blocks of the model's `block_size` are counted from position 0. The sampler walks them left to
//! right from the first block holding a mask; a block whose masks are all filled is finished and
//! never written again. Inside a block either one uniformly chosen masked position is filled per
//! step (first-hitting, Zheng et al. arXiv:2409.02908), or LLaDA's remasking rules commit a
//! scheduled number of the most confident. With the cache, finished blocks are stored once (fed
//! together with the next block, which saves BD3-LM's separate store pass) and each step runs only
//! the current block; since a block attends only to itself and earlier finished blocks the cached
//! logits equal the uncached ones (bd3lms issue #26). Generation stops after a block that produced
//! EOS.

use super::llada::{score, select};
use super::{
    Base, Bd3Order, Bd3Settings, BlockSchedule, CacheConflict, Canvas, Commit, Denoiser, ModelSpec,
    Remasking, RowDraw, RowQuery, Rows, SampleError, SamplerKind, SettingsError, Step, check_steps,
    loglinear_sigma,
};
use crate::config::Attention;

/// The BD3 sampler's state.
#[derive(Clone, Debug)]
pub struct Bd3 {
    pub(crate) base: Base,
    remasking: Remasking,
    threshold: Option<f64>,
    first_hitting: bool,
    block_size: usize,
    block: usize,
    schedule: BlockSchedule,
    use_cache: bool,
    /// Tokens of finished blocks not yet in the model's cache.
    pending: Vec<u32>,
    eos_id: Option<u32>,
    initially_masked: usize,
    done: bool,
}

impl Bd3 {
    /// Takes the block size from the model (a block-causal model's own, or `block_length` for a
    /// bidirectional one run semi-autoregressively without cache).
    pub fn new(
        settings: &Bd3Settings,
        prompt: &[u32],
        spec: &ModelSpec,
    ) -> Result<Self, SettingsError> {
        let block_size = match (spec.attention, settings.block_length) {
            (Attention::BlockCausal { block_size }, None) => block_size,
            (Attention::BlockCausal { block_size }, Some(b)) if b == block_size => block_size,
            (Attention::BlockCausal { block_size }, Some(asked)) => {
                return Err(SettingsError::BlockSizeMismatch {
                    model: block_size,
                    asked,
                });
            }
            (Attention::Causal, _) => {
                return Err(SettingsError::NeedsDiffusionModel {
                    sampler: SamplerKind::Bd3,
                });
            }
            (Attention::Bidirectional, Some(b)) if b > 0 => {
                if settings.use_cache {
                    return Err(SettingsError::CacheUnsupported {
                        sampler: SamplerKind::Bd3,
                        why: CacheConflict::Attention {
                            needs: "block-causal",
                            has: spec.attention.name(),
                        },
                    });
                }
                b
            }
            (Attention::Bidirectional, _) => return Err(SettingsError::NeedsBlockLength),
        };
        let canvas = Canvas::new(prompt, settings.gen_length, spec.mask_id);
        let masked = canvas.masked_count();
        let (first_hitting, steps, remasking, threshold) = match settings.order {
            Bd3Order::FirstHitting => (true, masked, Remasking::LowConfidence, None),
            Bd3Order::Ranked {
                steps,
                remasking,
                threshold,
            } => {
                if threshold.is_none() {
                    check_steps(steps, masked)?;
                }
                (false, steps, remasking, threshold)
            }
        };
        let first_masked = (0..canvas.len())
            .find(|&i| canvas.is_masked(i))
            .unwrap_or(0);
        let block = first_masked / block_size;
        Ok(Self {
            pending: canvas.tokens()[..block * block_size].to_vec(),
            initially_masked: masked,
            base: Base::new(canvas, &settings.draw, spec, false),
            remasking,
            threshold,
            first_hitting,
            block_size,
            block,
            schedule: BlockSchedule::proportional(steps, masked),
            use_cache: settings.use_cache,
            eos_id: if settings.stop_at_eos {
                spec.eos_id
            } else {
                None
            },
            done: false,
        })
    }

    fn block_range(&self) -> std::ops::Range<usize> {
        let start = self.block * self.block_size;
        start..(start + self.block_size).min(self.base.canvas.len())
    }

    /// Ends the run after a finished block that generated EOS: the canvas stops right after it.
    fn stop_at_eos(&mut self, range: std::ops::Range<usize>) {
        let Some(eos) = self.eos_id else { return };
        if !self.base.canvas.masked_in(range.clone()).is_empty() {
            return;
        }
        let prompt_len = self.base.canvas.prompt_len();
        if let Some(at) = range
            .clone()
            .find(|&i| i >= prompt_len && self.base.canvas.tokens()[i] == eos)
        {
            self.base.canvas.truncate(at + 1);
            self.done = true;
        }
    }

    /// Moves past finished blocks; returns the current block's masked positions, or `None` when done.
    fn advance(&mut self) -> Option<Vec<usize>> {
        while !self.done {
            let range = self.block_range();
            if range.is_empty() {
                self.done = true;
                break;
            }
            let masked = self.base.canvas.masked_in(range.clone());
            if !masked.is_empty() {
                return Some(masked);
            }
            self.pending
                .extend_from_slice(&self.base.canvas.tokens()[range]);
            self.block += 1;
            self.schedule.next_block();
        }
        None
    }

    /// Runs one model call on the current block.
    pub async fn step<D: Denoiser>(&mut self, model: &mut D) -> Result<Option<Step>, SampleError> {
        let Some(masked) = self.advance() else {
            return Ok(None);
        };
        let range = self.block_range();
        let t = self.base.canvas.masked_count() as f64 / self.initially_masked.max(1) as f64;
        let sigma = loglinear_sigma(t);
        let rows = if self.use_cache {
            if self.base.progress.model_calls == 0 {
                model.reset_cache();
            }
            let commit = std::mem::take(&mut self.pending);
            model
                .predict_cached(&commit, &self.base.canvas.tokens()[range.clone()], sigma)
                .await?
        } else {
            let visible = &self.base.canvas.tokens()[..range.end];
            model
                .predict(&[visible], range.clone(), sigma)
                .await?
                .remove(0)
        };
        self.base.progress.model_calls += 1;
        let row_of = |p: usize| p - range.start;
        let (commits, candidates) = if self.first_hitting {
            // One uniform pick, then its token's draw; the candidates of every masked position
            // come from the same reduction when they are shown.
            let chosen = masked[self.base.rng.below(masked.len())];
            let draw = self.base.plan();
            let shown = self.base.shows_candidates();
            let positions: Vec<usize> = if shown { masked.clone() } else { vec![chosen] };
            let queries = positions
                .iter()
                .map(|&p| RowQuery {
                    row: row_of(p),
                    draw: if p == chosen {
                        draw.clone()
                    } else {
                        RowDraw::Greedy
                    },
                })
                .collect();
            let reduced = rows.reduce(&self.base.request(queries, None)).await?;
            let mut commits = Vec::with_capacity(1);
            let mut candidates = Vec::new();
            for (&position, r) in positions.iter().zip(&reduced) {
                candidates.extend(self.base.candidates_of(position, r));
                if position == chosen {
                    commits.push(Commit {
                        position,
                        token: r.token,
                        confidence: r.prob,
                    });
                }
            }
            (commits, candidates)
        } else {
            let (scored, candidates) =
                score(&rows, row_of, &masked, &mut self.base, self.remasking).await?;
            let count = self.schedule.next_count(masked.len());
            (select(scored, count, self.threshold), candidates)
        };
        self.base.canvas.apply(&commits);
        self.stop_at_eos(range.clone());
        let range = range.start..range.end.min(self.base.canvas.len());
        Ok(Some(self.base.progress.emit(
            &self.base.canvas,
            commits,
            range,
            candidates,
        )))
    }
}
