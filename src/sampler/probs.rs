//! Turning one row of logits into a token, a probability and a confidence, on the CPU in f64:
//! the reference the device reduction (`model::reduce`) is tested against, and the [`Rows`] of
//! host [`Logits`].
//!
//! - SUBS (MDLM, arXiv:2406.07524 §3.2): the mask token's logit is −∞, so it is never predicted.
//! - Temperature sampling by Gumbel-max in f64 (LLaDA `generate.py` `add_gumbel_noise`, whose
//!   comment cites arXiv:2409.02908 on low-precision Gumbel noise), or by inverse-CDF categorical
//!   draws for the other samplers; both sample softmax(logits / T).
//! - Top-k and nucleus (top-p, Holtzman et al. 2020) filters on the tempered distribution.
//! - Confidence scores of LLaDA (`low_confidence`, `random`) and Dream (`topk_margin`, `entropy`).

use std::ops::Range;

use super::{Remasking, TopToken};
use crate::network::{Logits, ModelError, Reduce, Reduced, RowDraw, Rows, SUPPRESSED_LOGIT};
use crate::rng::Rng;

/// How a token is drawn from a row: a run's [`Draw`](super::Draw) settings with the model's mask.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenDraw {
    /// The mask token, excluded from every prediction.
    pub mask_id: u32,
    /// Softmax temperature; 0 takes the argmax.
    pub temperature: f64,
    /// Keep the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest most-likely set with mass ≥ p.
    pub top_p: Option<f64>,
    /// Gumbel-max (LLaDA) rather than an inverse-CDF draw.
    pub gumbel: bool,
}

impl TokenDraw {
    /// The draw `settings` ask for, with the model's mask.
    pub fn new(settings: &super::Draw, mask_id: u32, gumbel: bool) -> Self {
        TokenDraw {
            mask_id,
            temperature: settings.temperature,
            top_k: settings.top_k,
            top_p: settings.top_p,
            gumbel,
        }
    }
}

/// softmax(logits) in f64 with the mask token at probability 0.
pub fn subs_probs(logits: &[f32], mask_id: u32) -> Vec<f64> {
    let mask = mask_id as usize;
    let max = logits
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != mask)
        .map(|(_, &l)| l as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut p: Vec<f64> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if i == mask {
                0.0
            } else {
                (l as f64 - max).exp()
            }
        })
        .collect();
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= total);
    p
}

/// Index of the largest value (the first one on ties), skipping `skip`.
pub fn argmax(values: &[f64], skip: Option<usize>) -> usize {
    let mut best = usize::MAX;
    let mut best_v = f64::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if Some(i) != skip && (best == usize::MAX || v > best_v) {
            best = i;
            best_v = v;
        }
    }
    best
}

/// The `n` most likely tokens, most likely first (lower id first on ties).
pub fn top_tokens(probs: &[f64], n: usize) -> Vec<TopToken> {
    let mut top: Vec<TopToken> = Vec::with_capacity(n + 1);
    for (i, &p) in probs.iter().enumerate() {
        if top.len() == n && top.last().is_some_and(|t| t.prob >= p) {
            continue;
        }
        let at = top.iter().position(|t| t.prob < p).unwrap_or(top.len());
        top.insert(
            at,
            TopToken {
                token: i as u32,
                prob: p,
            },
        );
        top.truncate(n);
    }
    top
}

/// Tempered, filtered log-weights: `logits / T`, with −∞ for the mask and for tokens the top-k /
/// top-p filters drop.
fn filtered_log_weights(logits: &[f32], draw: &TokenDraw) -> Vec<f64> {
    let mask = draw.mask_id as usize;
    let t = draw.temperature;
    let mut w: Vec<f64> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if i == mask {
                f64::NEG_INFINITY
            } else {
                l as f64 / t
            }
        })
        .collect();
    if draw.top_k.is_none() && draw.top_p.is_none() {
        return w;
    }
    let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut order: Vec<usize> = (0..w.len()).filter(|&i| w[i].is_finite()).collect();
    order.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
    let probs: Vec<f64> = order.iter().map(|&i| (w[i] - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    let mut keep = order.len();
    if let Some(k) = draw.top_k {
        keep = keep.min(k);
    }
    if let Some(p) = draw.top_p {
        // bd3lms `_nucleus_sample`: keep the tokens whose cumulative probability is ≤ p, and the top one.
        let mut mass = 0.0;
        let within = probs.iter().take_while(|&&q| {
            mass += q / total;
            mass <= p
        });
        keep = keep.min(within.count().max(1));
    }
    for &i in order.iter().skip(keep.max(1)) {
        w[i] = f64::NEG_INFINITY;
    }
    w
}

/// Temperatures below this are greedy: dividing logits by less would overflow f64.
pub const MIN_TEMPERATURE: f64 = 1e-6;

/// Draws the randomness of one row's token from `rng`, as [`draw_token`] consumes it: nothing
/// when greedy, one uniform per vocabulary entry for Gumbel-max, one uniform otherwise.
pub fn plan_draw(draw: &TokenDraw, vocab: usize, rng: &mut Rng) -> RowDraw {
    if draw.temperature < MIN_TEMPERATURE {
        RowDraw::Greedy
    } else if draw.gumbel {
        RowDraw::Gumbel((0..vocab).map(|_| rng.uniform()).collect())
    } else {
        RowDraw::Categorical(rng.uniform())
    }
}

/// The token `plan` picks from a row of logits under `draw`'s temperature and filters.
pub fn draw_row(logits: &[f32], draw: &TokenDraw, plan: &RowDraw) -> u32 {
    let u = match plan {
        RowDraw::Greedy => {
            let l: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
            return argmax(&l, Some(draw.mask_id as usize)) as u32;
        }
        RowDraw::Gumbel(uniforms) => {
            // argmax(l/T + g), g = −ln(−ln u): a draw from softmax(l/T).
            return gumbel_max(&filtered_log_weights(logits, draw), uniforms) as u32;
        }
        RowDraw::Categorical(u) => *u,
    };
    let w = filtered_log_weights(logits, draw);
    inverse_cdf(&w, u) as u32
}

/// Inverse-CDF on log-weights, in their order: the first index whose cumulative weight reaches
/// `u ·` the total (indices of weight 0, log-weight −∞, never), or the last of positive weight.
pub fn inverse_cdf(log_weights: &[f64], u: f64) -> usize {
    let max = log_weights
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = log_weights.iter().map(|&x| (x - max).exp()).collect();
    let target = u * weights.iter().sum::<f64>();
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &x) in weights.iter().enumerate() {
        if x > 0.0 {
            acc += x;
            last = i;
            if acc >= target {
                return i;
            }
        }
    }
    last
}

/// Gumbel-max on log-weights: `argmax(w − ln(−ln u))`, one uniform per weight, the first on ties.
pub fn gumbel_max(log_weights: &[f64], uniforms: &[f64]) -> usize {
    let noisy: Vec<f64> = log_weights
        .iter()
        .zip(uniforms)
        .map(|(&x, &u)| x - (-u.ln()).ln())
        .collect();
    argmax(&noisy, None)
}

/// Draws a token from a row of logits.
pub fn draw_token(logits: &[f32], draw: &TokenDraw, rng: &mut Rng) -> u32 {
    let plan = plan_draw(draw, logits.len(), rng);
    draw_row(logits, draw, &plan)
}

/// One row reduced on the host, in f64: what the device reduction must agree with.
pub fn reduce_row(logits: &[f32], request: &Reduce, plan: &RowDraw) -> Reduced {
    let draw = TokenDraw {
        mask_id: request.mask_id,
        temperature: request.temperature,
        top_k: request.top_k,
        top_p: request.top_p,
        gumbel: matches!(plan, RowDraw::Gumbel(_)),
    };
    let token = draw_row(logits, &draw, plan);
    let probs = subs_probs(logits, request.mask_id);
    let top = top_tokens(&probs, request.candidates.max(2));
    Reduced {
        token,
        prob: probs[token as usize],
        margin: if request.margin {
            top[0].prob - top.get(1).map_or(0.0, |t| t.prob)
        } else {
            0.0
        },
        neg_entropy: if request.entropy {
            neg_entropy(&probs)
        } else {
            0.0
        },
        top: top
            .iter()
            .take(request.candidates)
            .map(|t| (t.token, t.prob))
            .collect(),
    }
}

/// Σ p ln p over the tokens with p > 0.
fn neg_entropy(probs: &[f64]) -> f64 {
    probs
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p * p.ln())
        .sum()
}

impl Rows for Logits {
    fn rows(&self) -> usize {
        Logits::rows(self)
    }

    fn guided(self, uncond: Self, scale: f64) -> Self {
        let (rows, vocab) = (Logits::rows(&self), self.vocab());
        Logits::new(
            guide(self.as_slice(), uncond.as_slice(), scale),
            rows,
            vocab,
        )
    }

    async fn reduce(&self, request: &Reduce) -> Result<Vec<Reduced>, ModelError> {
        let count: usize = request
            .rows
            .iter()
            .map(|q| self.row(q.row).iter().filter(|x| !x.is_finite()).count())
            .sum();
        if count > 0 {
            return Err(ModelError::NonFinite {
                backend: "host".into(),
                count,
                step: None,
            });
        }
        Ok(reduce_rows(self, request))
    }

    async fn columns(&self, columns: Range<usize>) -> Result<Logits, ModelError> {
        let (rows, vocab) = (Logits::rows(self), self.vocab());
        let end = columns.end.min(vocab);
        let columns = columns.start.min(end)..end;
        let data: Vec<f32> = (0..rows)
            .flat_map(|r| self.row(r)[columns.clone()].iter().copied())
            .collect();
        let count = data.iter().filter(|x| !x.is_finite()).count();
        if count > 0 {
            return Err(ModelError::NonFinite {
                backend: "host".into(),
                count,
                step: None,
            });
        }
        Ok(Logits::new(data, rows, columns.len()))
    }

    fn suppress(self, columns: Range<usize>) -> Self {
        let (rows, vocab) = (Logits::rows(&self), self.vocab());
        let mut data = self.as_slice().to_vec();
        for row in data.chunks_mut(vocab.max(1)) {
            let end = columns.end.min(row.len());
            for x in &mut row[columns.start.min(end)..end] {
                *x = SUPPRESSED_LOGIT;
            }
        }
        Logits::new(data, rows, vocab)
    }
}

/// The rows `request` names, reduced on the host; the caller has checked them for NaN and
/// infinities.
pub fn reduce_rows(logits: &Logits, request: &Reduce) -> Vec<Reduced> {
    request
        .rows
        .iter()
        .map(|q| reduce_row(logits.row(q.row), request, &q.draw))
        .collect()
}

/// How sure the model is at a position, for ranking which positions to commit; larger is surer.
/// `uniform` is the draw of the `random` rule (taken from the generator before the call).
pub fn confidence(remasking: Remasking, reduced: &Reduced, uniform: f64) -> f64 {
    match remasking {
        Remasking::LowConfidence => reduced.prob,
        Remasking::Random => uniform,
        Remasking::Margin => reduced.margin,
        Remasking::Entropy => reduced.neg_entropy,
    }
}

/// Classifier-free guidance on logits: `un + (s + 1)(cond − un)` (LLaDA `generate.py`), kept
/// finite (a huge scale on huge logits would overflow f32).
pub fn guide(cond: &[f32], uncond: &[f32], scale: f64) -> Vec<f32> {
    let s = scale as f32;
    cond.iter()
        .zip(uncond)
        .map(|(&c, &u)| (u + (s + 1.0) * (c - u)).clamp(f32::MIN, f32::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_token_is_never_predicted_even_when_its_logit_is_largest() {
        let logits = [0.0f32, 5.0, 100.0, 1.0];
        let p = subs_probs(&logits, 2);
        assert_eq!(p[2], 0.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let mut rng = Rng::new(1);
        for gumbel in [false, true] {
            let d = TokenDraw {
                mask_id: 2,
                temperature: 1.0,
                top_k: None,
                top_p: None,
                gumbel,
            };
            for _ in 0..200 {
                assert_ne!(draw_token(&logits, &d, &mut rng), 2);
            }
        }
        let greedy = TokenDraw {
            mask_id: 2,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            gumbel: true,
        };
        assert_eq!(draw_token(&logits, &greedy, &mut rng), 1);
    }

    fn histogram(logits: &[f32], d: &TokenDraw) -> Vec<usize> {
        let mut rng = Rng::new(3);
        let mut seen = vec![0usize; logits.len()];
        for _ in 0..2000 {
            seen[draw_token(logits, d, &mut rng) as usize] += 1;
        }
        seen
    }

    #[test]
    fn top_p_keeps_the_tokens_whose_cumulative_mass_stays_within_p() {
        // Probabilities ≈ 0.665, 0.245, 0.045, 0.045: cumulative 0.665, 0.910, 0.955, 1.
        let logits = [3.0f32, 2.0, 0.0, 0.0];
        let d = TokenDraw {
            mask_id: 9,
            temperature: 1.0,
            top_k: None,
            top_p: Some(0.95),
            gumbel: false,
        };
        let seen = histogram(&logits, &d);
        assert!(
            seen[0] > seen[1] && seen[1] > 0 && seen[2] + seen[3] == 0,
            "{seen:?}"
        );
        // At p = 0.9 the second token would cross p: only the top one stays (bd3lms' rule).
        let seen = histogram(
            &logits,
            &TokenDraw {
                top_p: Some(0.9),
                ..d
            },
        );
        assert_eq!(seen[0], 2000, "{seen:?}");
        // The top token stays even when it alone exceeds p.
        let seen = histogram(
            &logits,
            &TokenDraw {
                top_p: Some(0.1),
                ..d
            },
        );
        assert_eq!(seen[0], 2000, "{seen:?}");
    }

    #[test]
    fn vanishing_temperatures_are_greedy_not_garbage() {
        let logits = [0.5f32, 2.0, 1.0];
        for t in [1e-310, 1e-9] {
            let d = TokenDraw {
                mask_id: 9,
                temperature: t,
                top_k: Some(2),
                top_p: Some(0.9),
                gumbel: false,
            };
            assert_eq!(histogram(&logits, &d)[1], 2000);
        }
    }

    #[test]
    fn gumbel_and_categorical_both_follow_the_tempered_softmax() {
        let logits = [1.0f32, 0.0, (3.0f32).ln()];
        for gumbel in [false, true] {
            let d = TokenDraw {
                mask_id: 99,
                temperature: 1.0,
                top_k: Some(3),
                top_p: None,
                gumbel,
            };
            let mut rng = Rng::new(11);
            let n = 20000;
            let mut seen = [0usize; 3];
            for _ in 0..n {
                seen[draw_token(&logits, &d, &mut rng) as usize] += 1;
            }
            let p = subs_probs(&logits, 99);
            for i in 0..3 {
                let f = seen[i] as f64 / n as f64;
                assert!(
                    (f - p[i]).abs() < 0.02,
                    "gumbel={gumbel} token {i}: {f} vs {}",
                    p[i]
                );
            }
        }
    }

    #[test]
    fn confidence_scores_rank_a_peaked_row_above_a_flat_one() {
        let request = Reduce {
            mask_id: 9,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            rows: Vec::new(),
            margin: true,
            entropy: true,
            candidates: 0,
        };
        let peaked_row = reduce_row(&[5.0, 0.0, 0.0], &request, &RowDraw::Greedy);
        let flat_row = reduce_row(&[0.0, 0.0, 0.0], &request, &RowDraw::Greedy);
        for r in [
            Remasking::LowConfidence,
            Remasking::Margin,
            Remasking::Entropy,
        ] {
            assert!(
                confidence(r, &peaked_row, 0.0) > confidence(r, &flat_row, 0.0),
                "{r:?}"
            );
        }
        let peaked = subs_probs(&[5.0, 0.0, 0.0], 9);
        let top = top_tokens(&peaked, 5);
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].token, 0);
        assert!(top[0].prob > top[1].prob);
    }
}
