//! The samplers' per-row reduction on the device, where the logits are: SUBS (the mask's logit
//! → −∞, MDLM arXiv:2406.07524 §3.2), softmax, the drawn token (greedy, inverse-CDF, or LLaDA's
//! Gumbel-max with the noise uploaded), p(token), Dream's margin and entropy, the top candidates
//! and the non-finite check, as burn tensor ops on whatever backend holds the rows. One readback
//! per call of `7 + 2·candidates` f32 per row (and the top-p window's) replaces the `vocabulary`
//! f32 per row the host reduction needs (`sampler::probs`, the f64 reference these ops are tested
//! against).
//!
//! On the CPU backend the logits are in host memory already and the rows go through the host's
//! f64 loop instead, which costs less there than the kernels' launches; the kernels are tested
//! on it all the same.
//!
//! Top-k and top-p need each row's leading tokens in order. Nothing is sorted: the device finds
//! each row's [`NUCLEUS_WINDOW`] most likely tokens by bisection on a threshold and writes them
//! out by prefix sums ([`top_window`]), and the host sorts that window and draws from the kept
//! set when it lies within it (the same kept set and draw as `sampler::probs`), reading a row
//! whole only when its kept set is wider (a flat distribution under top-p, a larger top-k).
//! The categorical draw's cumulative sums go block by block ([`prefix_sums`]): cubecl's
//! `cumsum` costs O(vocabulary²) a row.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::{DType, Device, FloatDType, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::network::{Logits, ModelError, Reduce, Reduced, RowDraw, Rows, SUPPRESSED_LOGIT};
use crate::sampler::probs::{MIN_TEMPERATURE, gumbel_max, inverse_cdf, reduce_rows};

/// Columns of the packed readback before the candidates: token, p(token), margin, Σ p ln p,
/// the row's count of non-finite logits, and its untempered and tempered log-normalisers.
const FIXED_COLUMNS: usize = 7;

/// Rows of logits `[rows, vocab]` on a device, reduced there.
#[derive(Clone, Debug)]
pub struct DeviceRows {
    logits: Tensor<2>,
    device: Device,
    read_back: Arc<AtomicU64>,
}

impl DeviceRows {
    /// Wraps `[rows, vocab]` logits; bytes read back are added to `read_back`.
    pub fn new(logits: Tensor<2>, device: Device, read_back: Arc<AtomicU64>) -> Self {
        Self {
            logits,
            device,
            read_back,
        }
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.logits.dims()[1]
    }

    /// Reads `t` back, counting its bytes.
    async fn read<const D: usize>(&self, t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
        let values = super::read_values(t, &self.device).await?;
        self.count_read(&values);
        Ok(values)
    }

    fn count_read(&self, values: &[f32]) {
        self.read_back
            .fetch_add(4 * values.len() as u64, Ordering::Relaxed);
    }

    /// Every value on the host, checked for NaN and infinities (parity checks, top-p).
    pub async fn to_host(&self) -> Result<Logits, ModelError> {
        let [rows, vocab] = self.logits.dims();
        let values = super::read_finite(self.logits.clone(), &self.device).await?;
        self.count_read(&values);
        Ok(Logits::new(values, rows, vocab))
    }

    /// The requested rows read whole (checked for NaN and infinities as they are read) and
    /// reduced on the host: the CPU backend's path, and the device's for rows too small for the
    /// kernels or with a kept set wider than the window.
    async fn reduce_on_host(&self, request: &Reduce) -> Result<Vec<Reduced>, ModelError> {
        let index: Vec<i32> = request.rows.iter().map(|q| q.row as i32).collect();
        let n = index.len();
        let picked = self.logits.clone().select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &self.device),
        );
        let host = DeviceRows::new(picked, self.device.clone(), self.read_back.clone())
            .to_host()
            .await?;
        let renumbered = Reduce {
            rows: request
                .rows
                .iter()
                .enumerate()
                .map(|(i, q)| crate::network::RowQuery {
                    row: i,
                    draw: q.draw.clone(),
                })
                .collect(),
            ..request.clone()
        };
        Ok(reduce_rows(&host, &renumbered))
    }
}

impl Rows for DeviceRows {
    fn rows(&self) -> usize {
        self.logits.dims()[0]
    }

    fn guided(self, uncond: Self, scale: f64) -> Self {
        let s = scale as f32;
        let cond = self.logits.cast(FloatDType::F32);
        let uncond = uncond.logits.cast(FloatDType::F32);
        let guided = (uncond.clone() + (cond - uncond) * (s + 1.0)).clamp(f32::MIN, f32::MAX);
        Self {
            logits: guided,
            ..self
        }
    }

    async fn reduce(&self, request: &Reduce) -> Result<Vec<Reduced>, ModelError> {
        if crate::backend::is_host(&self.device) {
            // The logits are in host memory already: the f64 loop costs less than the kernels'
            // launches (BENCHMARKS.md, "sampling on the device").
            self.reduce_on_host(request).await
        } else {
            self.reduce_with_kernels(request).await
        }
    }

    async fn columns(&self, columns: Range<usize>) -> Result<Logits, ModelError> {
        let [rows, vocab] = self.logits.dims();
        let start = columns.start.min(vocab);
        let len = columns.end.min(vocab).saturating_sub(start);
        if len == 0 {
            return Ok(Logits::new(Vec::new(), rows, 0));
        }
        let picked = self.logits.clone().narrow(1, start, len);
        let values = super::read_finite(picked, &self.device).await?;
        self.count_read(&values);
        Ok(Logits::new(values, rows, len))
    }

    fn suppress(self, columns: Range<usize>) -> Self {
        let vocab = self.logits.dims()[1];
        let mut bias = vec![0.0f32; vocab];
        let end = columns.end.min(vocab);
        for x in &mut bias[columns.start.min(end)..end] {
            *x = SUPPRESSED_LOGIT;
        }
        let logits = self.logits.cast(FloatDType::F32);
        let bias = Tensor::<2>::from_data(TensorData::new(bias, [1, vocab]), &logits.device());
        // The bias swamps the logit, so the sum is the suppressed value to f32's precision.
        Self {
            logits: logits + bias,
            ..self
        }
    }
}

impl DeviceRows {
    /// The reduction as tensor ops on the rows' device, whatever it is (tests run it on the CPU
    /// backend too).
    pub async fn reduce_with_kernels(&self, request: &Reduce) -> Result<Vec<Reduced>, ModelError> {
        let n = request.rows.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let [rows, vocab] = self.logits.dims();
        if let Some(q) = request.rows.iter().find(|q| q.row >= rows) {
            return Err(ModelError::Unsupported(format!(
                "row {} asked of a prediction with {rows} rows",
                q.row
            )));
        }
        if let Some(q) = request.rows.iter().find(|q| match &q.draw {
            RowDraw::Gumbel(u) => u.len() != vocab,
            _ => false,
        }) {
            return Err(ModelError::Unsupported(format!(
                "row {}: Gumbel draws must number the vocabulary's {vocab}",
                q.row
            )));
        }
        let plan = Plan::new(request, vocab);
        if plan.whole {
            return self.reduce_on_host(request).await;
        }
        let packed = self.read(self.kernels(request, &plan)).await?;
        let count: usize = packed
            .chunks(plan.stride)
            .map(|row| row[NON_FINITE].max(0.0) as usize)
            .sum();
        if count > 0 {
            return Err(ModelError::NonFinite {
                backend: crate::backend::describe(&self.device),
                count,
                step: None,
            });
        }
        let mut reduced = Vec::with_capacity(n);
        let mut whole = Vec::new();
        for (i, (q, row)) in request
            .rows
            .iter()
            .zip(packed.chunks(plan.stride))
            .enumerate()
        {
            let mut r = Reduced {
                token: row[TOKEN] as u32,
                prob: row[PROB] as f64,
                margin: row[MARGIN] as f64,
                neg_entropy: row[NEG_ENTROPY] as f64,
                top: (0..plan.shown)
                    .map(|j| {
                        let at = FIXED_COLUMNS + j;
                        (row[at + plan.shown] as u32, row[at] as f64)
                    })
                    .collect(),
            };
            if let Some(w) = plan.window {
                let at = FIXED_COLUMNS + 2 * plan.shown;
                let window = Window {
                    filled: row[at] as usize,
                    exact: row[at + 1] as usize,
                    complete: row[at + 2] > 0.5,
                    values: &row[at + WINDOW_COLUMNS..at + WINDOW_COLUMNS + w],
                    ids: &row[at + WINDOW_COLUMNS + w..at + WINDOW_COLUMNS + 2 * w],
                };
                match window.draw(row[LOG_TEMPERED_TOTAL], request, &q.draw) {
                    Some(Nucleus::Drawn(token, tempered)) => {
                        r.token = token;
                        r.prob =
                            (tempered as f64 * request.temperature - row[LOG_TOTAL] as f64).exp();
                    }
                    Some(Nucleus::Greedy) => {}
                    None => whole.push(i),
                }
            }
            reduced.push(r);
        }
        if !whole.is_empty() {
            // Kept sets wider than the window: those rows whole, on the host.
            let wide = Reduce {
                rows: whole.iter().map(|&i| request.rows[i].clone()).collect(),
                ..request.clone()
            };
            for (&i, r) in whole.iter().zip(self.reduce_on_host(&wide).await?) {
                reduced[i] = r;
            }
        }
        Ok(reduced)
    }
}

/// Column of the packed readback: the drawn (or most likely) token.
const TOKEN: usize = 0;
/// Column: p(token).
const PROB: usize = 1;
/// Column: the margin, when asked for.
const MARGIN: usize = 2;
/// Column: Σ p ln p, when asked for.
const NEG_ENTROPY: usize = 3;
/// Column: the row's count of non-finite logits.
const NON_FINITE: usize = 4;
/// Column: log Σ exp(logits), the untempered normaliser.
const LOG_TOTAL: usize = 5;
/// Column: log Σ exp(logits / T), the tempered one (top-p's mass).
const LOG_TEMPERED_TOTAL: usize = 6;

/// Tokens read back per row under top-k or top-p: the host draws from them when the kept set
/// lies within them, and reads the row whole when it does not (a flat distribution under top-p,
/// a top-k larger than the window).
pub const NUCLEUS_WINDOW: usize = 256;

/// Columns of the window before its values and ids: how many entries it holds, how many of
/// them lead the row exactly, and whether it holds every token that can be drawn.
const WINDOW_COLUMNS: usize = 3;

/// Rounds of bisection on each row's window threshold: 32 halvings close the interval
/// [max − [`WINDOW_DEPTH`], max + 1] to adjacent floats for tempered logits of magnitude ≳ 10⁻¹.
const THRESHOLD_ROUNDS: usize = 32;

/// Tempered logits further than this below their row's largest are left out of its window:
/// e⁻⁶⁴ of the top token's weight, which neither an f64 uniform nor a Gumbel draw can reach.
const WINDOW_DEPTH: f32 = 64.0;

/// The shape of one reduction: which columns it packs.
struct Plan {
    /// Candidates per row.
    shown: usize,
    /// Top tokens ranked on the device (candidates, margin).
    ranked: usize,
    /// Under top-k or top-p: the tempered top tokens read back per row.
    window: Option<usize>,
    /// Whether the rows are read whole instead: the kernels' columns would be as many as the
    /// vocabulary, or top-k alone keeps more than the window holds.
    whole: bool,
    /// Columns per row.
    stride: usize,
    /// Whether any row draws (at a temperature above greedy).
    sampled: bool,
}

impl Plan {
    fn new(request: &Reduce, vocab: usize) -> Self {
        let sampled = request.temperature >= MIN_TEMPERATURE
            && request.rows.iter().any(|q| q.draw != RowDraw::Greedy);
        let shown = request.candidates.min(vocab);
        let ranked = shown.max(if request.margin { 2 } else { 0 }).min(vocab);
        let filtered = sampled && (request.top_k.is_some() || request.top_p.is_some());
        let window = filtered.then(|| {
            NUCLEUS_WINDOW
                .min(request.top_k.unwrap_or(vocab))
                .min(vocab)
                .max(1)
        });
        let stride = FIXED_COLUMNS + 2 * shown + window.map_or(0, |w| WINDOW_COLUMNS + 2 * w);
        let beyond = request.top_p.is_none()
            && request
                .top_k
                .is_some_and(|k| k > NUCLEUS_WINDOW && k < vocab);
        Plan {
            shown,
            ranked,
            window: window.filter(|_| !beyond),
            whole: stride >= vocab || (filtered && beyond),
            stride,
            sampled,
        }
    }
}

impl DeviceRows {
    /// The reduction's kernels: one `[rows, stride]` tensor to read back.
    fn kernels(&self, request: &Reduce, plan: &Plan) -> Tensor<2> {
        let n = request.rows.len();
        let vocab = self.vocab();
        let device = &self.device;
        let f32s = |values: Vec<f32>, shape: [usize; 2]| {
            Tensor::<2>::from_data(TensorData::new(values, shape), (device, DType::F32))
        };
        let flags = |f: &dyn Fn(&RowDraw) -> bool| {
            let flags: Vec<f32> = request
                .rows
                .iter()
                .map(|q| f32::from(u8::from(f(&q.draw))))
                .collect();
            f32s(flags, [n, 1]).greater_elem(0.5)
        };
        let index: Vec<i32> = request.rows.iter().map(|q| q.row as i32).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), device);
        let raw = self.logits.clone().select(0, index).cast(FloatDType::F32);
        let non_finite = raw
            .clone()
            .is_finite()
            .bool_not()
            .cast(FloatDType::F32)
            .sum_dim(1);
        let mask = request.mask_id as usize;
        // SUBS: the mask is never predicted.
        let x = if mask < vocab {
            raw.slice_fill([0..n, mask..mask + 1], f32::NEG_INFINITY)
        } else {
            raw
        };
        let max = x.clone().max_dim(1);
        let shifted = x.clone() - max.clone();
        let log_sum = shifted.clone().exp().sum_dim(1).log();
        let log_p = shifted - log_sum.clone();
        let p = log_p.clone().exp();
        let log_total = max + log_sum;

        // The tokens: the most likely for every row, replaced where a row draws otherwise (under
        // top-k or top-p the host draws from the window read back below).
        let mut token = x.clone().argmax(1);
        let zeros = || Tensor::<2>::zeros([n, 1], (device, DType::F32));
        let mut log_tempered_total = zeros();
        let mut window = Vec::new();
        if plan.sampled {
            let tempered = x.clone() / request.temperature as f32;
            let top = tempered.clone().max_dim(1);
            if let Some(w) = plan.window {
                log_tempered_total =
                    (tempered.clone() - top.clone()).exp().sum_dim(1).log() + top.clone();
                window = top_window(tempered, top, w).to_vec();
            } else {
                let categorical = |d: &RowDraw| matches!(d, RowDraw::Categorical(_));
                if request.rows.iter().any(|q| categorical(&q.draw)) {
                    // The first token whose cumulative weight reaches u · total: the count of
                    // those below it.
                    let cumulative = prefix_sums((tempered.clone() - top).exp());
                    let total = cumulative.clone().narrow(1, vocab - 1, 1);
                    let u: Vec<f32> = request
                        .rows
                        .iter()
                        .map(|q| match q.draw {
                            // u = 0 would stop on a leading token of weight 0.
                            RowDraw::Categorical(u) => (u as f32).max(f32::MIN_POSITIVE),
                            _ => 0.5,
                        })
                        .collect();
                    let target = total * f32s(u, [n, 1]);
                    let drawn = cumulative
                        .lower(target.expand([n, vocab]))
                        .int()
                        .sum_dim(1)
                        .clamp_max(vocab as i32 - 1);
                    token = token.mask_where(flags(&categorical), drawn);
                }
                let gumbel = |d: &RowDraw| matches!(d, RowDraw::Gumbel(_));
                if request.rows.iter().any(|q| gumbel(&q.draw)) {
                    // g = −ln(−ln u) from the generator's f64 uniforms, uploaded in f32.
                    let mut noise = Vec::with_capacity(n * vocab);
                    for q in &request.rows {
                        match &q.draw {
                            RowDraw::Gumbel(u) => {
                                noise.extend(u.iter().map(|&u| -((-u.ln()).ln()) as f32))
                            }
                            _ => noise.extend(std::iter::repeat_n(0.0, vocab)),
                        }
                    }
                    let drawn = (tempered + f32s(noise, [n, vocab])).argmax(1);
                    token = token.mask_where(flags(&gumbel), drawn);
                }
            }
        }

        let prob = p.clone().gather(1, token.clone());
        let (top, top_ids) = top_by_max(p.clone(), plan.ranked);
        let margin = match &top {
            Some(top) if request.margin && plan.ranked >= 2 => {
                top.clone().narrow(1, 0, 1) - top.clone().narrow(1, 1, 1)
            }
            _ => zeros(),
        };
        let neg_entropy = if request.entropy {
            // 0 · ln 0 is 0: the mask's −∞ is clamped to the least finite value first.
            (p * log_p.clamp_min(f32::MIN)).sum_dim(1)
        } else {
            zeros()
        };
        let mut columns = vec![
            token.cast(FloatDType::F32),
            prob,
            margin,
            neg_entropy,
            non_finite,
            log_total,
            log_tempered_total,
        ];
        if let (Some(top), Some(ids)) = (top, top_ids)
            && plan.shown > 0
        {
            columns.push(top.narrow(1, 0, plan.shown));
            columns.push(ids.narrow(1, 0, plan.shown).cast(FloatDType::F32));
        }
        columns.extend(window);
        Tensor::cat(columns, 1)
    }
}

/// The `k` largest values of each row and their indices, most likely first, by `k` passes of a
/// row maximum (burn's `topk` sorts whole rows on some backends; candidates need five).
fn top_by_max(values: Tensor<2>, k: usize) -> (Option<Tensor<2>>, Option<Tensor<2, Int>>) {
    if k == 0 {
        return (None, None);
    }
    let [n, vocab] = values.dims();
    let iota = Tensor::<1, Int>::arange(0..vocab as i64, &values.device())
        .reshape([1, vocab])
        .expand([n, vocab]);
    let (mut tops, mut ids) = (Vec::with_capacity(k), Vec::with_capacity(k));
    let mut rest = values;
    for i in 0..k {
        let (top, id) = rest.clone().max_dim_with_indices(1);
        if i + 1 < k {
            let taken = iota.clone().equal(id.clone().expand([n, vocab]));
            rest = rest.mask_fill(taken, f32::NEG_INFINITY);
        }
        tops.push(top);
        ids.push(id);
    }
    (Some(Tensor::cat(tops, 1)), Some(Tensor::cat(ids, 1)))
}

/// What the host makes of a row's window.
enum Nucleus {
    /// The token drawn, and its tempered logit.
    Drawn(u32, f32),
    /// The row is greedy: the device's most likely token stands.
    Greedy,
}

/// A row's window as read back: the tokens with the largest tempered logits, in vocabulary
/// order (not by value).
struct Window<'a> {
    /// Entries written; the rest of `values` and `ids` is padding.
    filled: usize,
    /// How many of the entries, sorted by value (ties to the lower id), are the row's leading
    /// tokens in the same order: all of them unless the threshold's interval held several
    /// values and the window could not take them all.
    exact: usize,
    /// Whether the window holds every token within [`WINDOW_DEPTH`] of the row's largest.
    complete: bool,
    values: &'a [f32],
    ids: &'a [f32],
}

impl Window<'_> {
    /// Top-k and top-p on the host: the kept set as `sampler::probs` keeps it (the tokens whose
    /// cumulative tempered mass stays within p, at least the top one, at most top-k), and the
    /// draw from it. `None` when the kept set may reach past what the window holds exactly.
    fn draw(&self, log_tempered_total: f32, request: &Reduce, draw: &RowDraw) -> Option<Nucleus> {
        if matches!(draw, RowDraw::Greedy) {
            return Some(Nucleus::Greedy);
        }
        let (values, ids) = (self.values, self.ids);
        let mut order: Vec<usize> = (0..self.filled.min(values.len())).collect();
        order.sort_by(|&a, &b| {
            values[b]
                .total_cmp(&values[a])
                .then(ids[a].total_cmp(&ids[b]))
        });
        let within = match request.top_p {
            Some(top_p) => {
                let mut mass = 0.0;
                order
                    .iter()
                    .take_while(|&&j| {
                        mass += (values[j] as f64 - log_tempered_total as f64).exp();
                        mass <= top_p
                    })
                    .count()
            }
            None => order.len(),
        };
        let cap = request.top_k.unwrap_or(usize::MAX).max(1);
        if within == order.len() && cap > order.len() && !self.complete {
            // Every token of the window is kept: the kept set may hold more than the window.
            return None;
        }
        let keep = within.max(1).min(cap);
        if keep > self.exact.min(order.len()) {
            return None;
        }
        let mut kept: Vec<(u32, f32)> = order[..keep]
            .iter()
            .map(|&j| (ids[j] as u32, values[j]))
            .collect();
        // Vocabulary order, as the host's walk and its Gumbel noise go.
        kept.sort_by_key(|&(id, _)| id);
        let log_weights: Vec<f64> = kept.iter().map(|&(_, v)| v as f64).collect();
        let pick = match draw {
            RowDraw::Greedy => return Some(Nucleus::Greedy),
            RowDraw::Gumbel(uniforms) => {
                let noise: Vec<f64> = kept.iter().map(|&(id, _)| uniforms[id as usize]).collect();
                gumbel_max(&log_weights, &noise)
            }
            RowDraw::Categorical(u) => inverse_cdf(&log_weights, *u),
        };
        let (token, value) = kept[pick];
        Some(Nucleus::Drawn(token, value))
    }
}

/// Each row's `w` largest entries of `x` (`[n, v]`, tempered logits, whose row maxima are
/// `max`, `[n, 1]`), ties to the lower id, as the window's columns: `[filled, exact, complete]`, then the values and the ids (as f32) in
/// vocabulary order. No sort: burn sorts by reading rows back on its GPU backends (and every
/// sort it can dispatch to weighs 2 MB of the page's code), so each row's threshold is found by
/// bisection on counts (`x ≥ t`), and the entries at or above it are written to their slots by
/// prefix sums and a scatter: the strictly greater ones first, then the threshold's ties in
/// vocabulary order while slots are left.
fn top_window(x: Tensor<2>, max: Tensor<2>, w: usize) -> [Tensor<2>; 5] {
    let [n, v] = x.dims();
    let device = x.device();
    let width = w as f32;
    // Invariant: at least w entries ≥ lo, fewer than w entries ≥ hi.
    let mut lo = max.clone() - WINDOW_DEPTH;
    let mut hi = max.clone() + max.abs() * 1e-6 + 1.0;
    for _ in 0..THRESHOLD_ROUNDS {
        let mid = (lo.clone() + hi.clone()) * 0.5;
        let enough = x
            .clone()
            .greater_equal(mid.clone().expand([n, v]))
            .float()
            .sum_dim(1)
            .greater_equal_elem(width);
        lo = lo.mask_where(enough.clone(), mid.clone());
        hi = hi.mask_where(enough.bool_not(), mid);
    }
    let strict = x.clone().greater_equal(hi.expand([n, v]));
    let tied = x
        .clone()
        .greater_equal(lo.expand([n, v]))
        .bool_and(strict.clone().bool_not());
    let (s, t) = (strict.clone().float(), tied.clone().float());
    let strict_count = s.clone().sum_dim(1);
    let total = strict_count.clone() + t.clone().sum_dim(1);
    let s_slot = prefix_sums(s) - 1.0;
    let t_slot = prefix_sums(t) + strict_count.clone().expand([n, v]) - 1.0;
    let slot = Tensor::<2>::full([n, v], width, (&device, DType::F32))
        .mask_where(
            tied.clone().bool_and(t_slot.clone().lower_elem(width)),
            t_slot,
        )
        .mask_where(strict, s_slot)
        .clamp(0.0, width)
        .int();
    // Whether the entries between the bounds are one value (or none): then the ties written are
    // the lowest ids of that value, as a sort would keep them.
    let spread = x
        .clone()
        .mask_fill(tied.clone().bool_not(), f32::NEG_INFINITY)
        .max_dim(1)
        - x.clone()
            .mask_fill(tied.bool_not(), f32::INFINITY)
            .min_dim(1);
    let whole = total
        .clone()
        .lower_equal_elem(width)
        .bool_or(spread.lower_equal_elem(0.0));
    let filled = total.clone().clamp_max(width);
    let exact = strict_count.mask_where(whole, filled.clone());
    let complete = total.lower_elem(width).float();
    let iota = Tensor::<1, Int>::arange(0..v as i64, &device)
        .float()
        .reshape([1, v])
        .expand([n, v]);
    let out = || Tensor::<2>::zeros([n, w + 1], (&device, DType::F32));
    let values = out()
        .scatter(1, slot.clone(), x, IndexingUpdateOp::Assign)
        .narrow(1, 0, w);
    let ids = out()
        .scatter(1, slot, iota, IndexingUpdateOp::Assign)
        .narrow(1, 0, w);
    [filled, exact, complete, values, ids]
}

/// Block width of [`prefix_sums`]' levels.
const SCAN_BLOCK: usize = 32;

/// Inclusive prefix sums along each row of `x` (`[n, v]`), block by block: each block of
/// [`SCAN_BLOCK`] summed within itself, then offset by the sum of the blocks before it (the
/// blocks' totals summed the same way, one level up). cubecl's `cumsum` adds every output's whole
/// prefix, O(v²) a row (1.2·10¹⁰ additions a row at Qwen's 151,936 tokens); this costs
/// O(v·[`SCAN_BLOCK`]) there, in four levels at that vocabulary, and O(v) on the CPU.
fn prefix_sums(x: Tensor<2>) -> Tensor<2> {
    let [n, v] = x.dims();
    if v <= SCAN_BLOCK {
        return x.cumsum(1);
    }
    let device = x.device();
    let blocks = v.div_ceil(SCAN_BLOCK);
    let padded = blocks * SCAN_BLOCK;
    let x = if padded > v {
        let pad = Tensor::<2>::zeros([n, padded - v], (&device, DType::F32));
        Tensor::cat(vec![x, pad], 1)
    } else {
        x
    };
    let within = x.reshape([n, blocks, SCAN_BLOCK]).cumsum(2);
    let totals = within
        .clone()
        .narrow(2, SCAN_BLOCK - 1, 1)
        .reshape([n, blocks]);
    // Each block's offset: the sum of the blocks before it.
    let before = Tensor::cat(
        vec![
            Tensor::<2>::zeros([n, 1], (&device, DType::F32)),
            prefix_sums(totals).narrow(1, 0, blocks - 1),
        ],
        1,
    );
    (within
        + before
            .reshape([n, blocks, 1])
            .expand([n, blocks, SCAN_BLOCK]))
    .reshape([n, padded])
    .narrow(1, 0, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::RowQuery;
    use crate::rng::Rng;
    use crate::sampler::probs::reduce_row;

    const ROWS: usize = 48;
    const VOCAB: usize = 2000;
    const MASK: u32 = (VOCAB - 1) as u32;

    /// Rows of spread-out logits, the mask's the largest (SUBS must still never pick it).
    fn logits(seed: u64) -> Logits {
        let mut rng = Rng::new(seed);
        let data = (0..ROWS * VOCAB)
            .map(|i| {
                if i % VOCAB == MASK as usize {
                    50.0
                } else {
                    (rng.uniform() * 8.0 - 4.0) as f32
                }
            })
            .collect();
        Logits::new(data, ROWS, VOCAB)
    }

    fn on_device(host: &Logits) -> DeviceRows {
        let device = Device::flex();
        let t = Tensor::<2>::from_data(
            TensorData::new(host.as_slice().to_vec(), [host.rows(), host.vocab()]),
            (&device, DType::F32),
        );
        DeviceRows::new(t, device, Arc::default())
    }

    fn request(draws: impl Fn(&mut Rng) -> RowDraw, candidates: usize) -> Reduce {
        let mut rng = Rng::new(99);
        Reduce {
            mask_id: MASK,
            temperature: 0.8,
            top_k: None,
            top_p: None,
            // Every other row, in a shuffled order.
            rows: (0..ROWS / 2)
                .map(|i| RowQuery {
                    row: (i * 7) % ROWS,
                    draw: draws(&mut rng),
                })
                .collect(),
            margin: true,
            entropy: true,
            candidates,
        }
    }

    /// The device's reduction of `request` against the host's f64 one, row by row.
    fn agree(host: &Logits, request: &Reduce) {
        let device = pollster::block_on(on_device(host).reduce_with_kernels(request)).unwrap();
        assert_eq!(device.len(), request.rows.len());
        for (q, got) in request.rows.iter().zip(&device) {
            let want = reduce_row(host.row(q.row), request, &q.draw);
            assert_eq!(got.token, want.token, "row {}: {:?}", q.row, q.draw);
            assert_ne!(got.token, MASK);
            let close = |a: f64, b: f64, what: &str| {
                // f32 sums over the vocabulary against f64 ones.
                assert!(
                    (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                    "row {} {what}: {a} vs {b}",
                    q.row
                )
            };
            close(got.prob, want.prob, "p(token)");
            close(got.margin, want.margin, "margin");
            close(got.neg_entropy, want.neg_entropy, "Σ p ln p");
            assert_eq!(got.top.len(), request.candidates);
            for (g, w) in got.top.iter().zip(&want.top) {
                assert_eq!(g.0, w.0, "row {} candidates", q.row);
                close(g.1, w.1, "candidate p");
            }
        }
    }

    #[test]
    fn greedy_rows_agree_with_the_host() {
        agree(&logits(1), &request(|_| RowDraw::Greedy, 5));
    }

    #[test]
    fn categorical_draws_agree_with_the_host_with_and_without_top_k() {
        let host = logits(2);
        let mut r = request(|rng| RowDraw::Categorical(rng.uniform()), 0);
        agree(&host, &r);
        r.top_k = Some(3);
        agree(&host, &r);
        // The ends of the unit interval still land on tokens the filters keep.
        for u in [0.0, 1.0 - f64::EPSILON] {
            r.rows
                .iter_mut()
                .for_each(|q| q.draw = RowDraw::Categorical(u));
            agree(&host, &r);
        }
    }

    #[test]
    fn gumbel_draws_agree_with_the_host_and_mix_with_greedy_rows() {
        let host = logits(3);
        let mut r = request(
            |rng| {
                if rng.uniform() < 0.3 {
                    RowDraw::Greedy
                } else {
                    RowDraw::Gumbel((0..VOCAB).map(|_| rng.uniform()).collect())
                }
            },
            2,
        );
        agree(&host, &r);
        r.top_k = Some(10);
        agree(&host, &r);
    }

    #[test]
    fn top_p_draws_from_the_nucleus_window_or_reads_a_flat_row_whole() {
        // Odd rows peaked (the nucleus fits the window), even rows flat (it does not).
        let flat = logits(4);
        let data: Vec<f32> = (0..ROWS * VOCAB)
            .map(|i| {
                let l = flat.as_slice()[i];
                if (i / VOCAB) % 2 == 1 && i % VOCAB != MASK as usize {
                    l * 4.0
                } else {
                    l
                }
            })
            .collect();
        let host = Logits::new(data, ROWS, VOCAB);
        for draws in [
            |rng: &mut Rng| RowDraw::Categorical(rng.uniform()),
            |rng: &mut Rng| RowDraw::Gumbel((0..VOCAB).map(|_| rng.uniform()).collect()),
        ] {
            for top_k in [None, Some(40), Some(200)] {
                let mut r = request(draws, 5);
                r.top_p = Some(0.6);
                r.top_k = top_k;
                agree(&host, &r);
            }
            // The peaked rows alone read back far less than their logits.
            let mut r = request(draws, 5);
            r.top_p = Some(0.6);
            r.rows.retain(|q| q.row % 2 == 1);
            let rows = on_device(&host);
            pollster::block_on(rows.reduce_with_kernels(&r)).unwrap();
            let per_row = rows.read_back.load(Ordering::Relaxed) / r.rows.len() as u64;
            assert!(per_row < 2 * VOCAB as u64, "{per_row} bytes per row");
        }
    }

    fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        pollster::block_on(super::super::read_values(t, &Device::flex())).unwrap()
    }

    fn tensor(values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
        Tensor::<2>::from_data(
            TensorData::new(values, shape),
            (&Device::flex(), DType::F32),
        )
    }

    #[test]
    fn blocked_prefix_sums_equal_a_running_sum() {
        let mut rng = Rng::new(11);
        for v in [1, 2, 31, 32, 33, 64, 65, 1025, 2000] {
            let data: Vec<f32> = (0..3 * v).map(|_| rng.uniform() as f32).collect();
            let got = host_values(prefix_sums(tensor(data.clone(), [3, v])));
            for (row, sums) in data.chunks(v).zip(got.chunks(v)) {
                let mut running = 0.0f64;
                for (&x, &s) in row.iter().zip(sums) {
                    running += f64::from(x);
                    // f32 sums against f64 ones.
                    let close = (f64::from(s) - running).abs() < 1e-6 * (1.0 + running);
                    assert!(close, "v = {v}: {s} vs {running}");
                }
            }
        }
    }

    #[test]
    fn the_window_holds_each_row_s_largest_with_ties_to_the_lower_id() {
        let (v, w) = (300, 8);
        let mut rng = Rng::new(12);
        let rows: Vec<Vec<f32>> = vec![
            // Spread out: no ties.
            (0..v).map(|_| rng.uniform() as f32 * 10.0).collect(),
            // Five values: the threshold falls inside a group of ties.
            (0..v)
                .map(|_| (rng.uniform() * 5.0).floor() as f32)
                .collect(),
            // All equal: the lowest ids.
            vec![1.5; v],
            // One token far above the rest: nothing else within the depth.
            (0..v).map(|i| if i == 77 { 100.0 } else { 0.0 }).collect(),
            // Minus infinity (SUBS) among them.
            (0..v)
                .map(|i| {
                    if i % 3 == 0 {
                        f32::NEG_INFINITY
                    } else {
                        (i % 11) as f32
                    }
                })
                .collect(),
        ];
        let n = rows.len();
        let x = tensor(rows.concat(), [n, v]);
        let max = x.clone().max_dim(1);
        let columns: Vec<Vec<f32>> = top_window(x, max, w).into_iter().map(host_values).collect();
        let [filled, exact, complete, values, ids] = &columns[..] else {
            unreachable!()
        };
        for (r, row) in rows.iter().enumerate() {
            // The row's order as a sort gives it: by value, ties to the lower id.
            let mut order: Vec<usize> = (0..v).filter(|&i| row[i].is_finite()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let within = order
                .iter()
                .filter(|&&i| row[i] >= row[order[0]] - WINDOW_DEPTH)
                .count();
            assert_eq!(filled[r] as usize, within.min(w), "row {r}");
            assert_eq!(complete[r] > 0.5, within < w, "row {r}");
            let mut got: Vec<(f32, u32)> = (0..filled[r] as usize)
                .map(|j| (values[r * w + j], ids[r * w + j] as u32))
                .collect();
            assert!(
                got.iter().all(|&(x, id)| row[id as usize] == x),
                "row {r}: {got:?}"
            );
            got.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let exact = exact[r] as usize;
            assert_eq!(
                exact,
                within.min(w),
                "row {r}: the bisection closes on one value"
            );
            let want: Vec<u32> = order[..exact].iter().map(|&i| i as u32).collect();
            let got: Vec<u32> = got[..exact].iter().map(|g| g.1).collect();
            assert_eq!(got, want, "row {r}");
        }
    }

    #[test]
    fn ties_and_top_k_beyond_the_window_draw_as_the_host_does() {
        // Logits on a coarse grid: many ties at every threshold.
        let grid: Vec<f32> = logits(13)
            .as_slice()
            .iter()
            .map(|&l| if l > 40.0 { l } else { (l * 2.0).round() / 2.0 })
            .collect();
        let host = Logits::new(grid, ROWS, VOCAB);
        for draws in [
            |rng: &mut Rng| RowDraw::Categorical(rng.uniform()),
            |rng: &mut Rng| RowDraw::Gumbel((0..VOCAB).map(|_| rng.uniform()).collect()),
        ] {
            for (top_k, top_p) in [
                (Some(1), None),
                (Some(7), None),
                (None, Some(0.3)),
                (Some(30), Some(0.5)),
            ] {
                let mut r = request(draws, 3);
                (r.top_k, r.top_p) = (top_k, top_p);
                agree(&host, &r);
            }
            // A top-k wider than the window: the rows are read whole.
            let mut r = request(draws, 0);
            r.top_k = Some(NUCLEUS_WINDOW + 1);
            let rows = on_device(&host);
            let device = pollster::block_on(rows.reduce_with_kernels(&r)).unwrap();
            let per_row = rows.read_back.load(Ordering::Relaxed) / r.rows.len() as u64;
            assert_eq!(per_row, 4 * VOCAB as u64);
            for (q, got) in r.rows.iter().zip(&device) {
                assert_eq!(got.token, reduce_row(host.row(q.row), &r, &q.draw).token);
            }
        }
    }

    #[test]
    fn what_crosses_back_is_a_few_numbers_per_row_not_the_vocabulary() {
        let host = logits(5);
        for candidates in [0, 5] {
            let rows = on_device(&host);
            let r = request(|rng| RowDraw::Categorical(rng.uniform()), candidates);
            pollster::block_on(rows.reduce_with_kernels(&r)).unwrap();
            let per_row = rows.read_back.load(Ordering::Relaxed) / r.rows.len() as u64;
            // The aim of the speed issue: ≤ 64 bytes per row plus the candidates shown.
            assert!(
                per_row <= 64 + 8 * candidates as u64,
                "{per_row} bytes per row with {candidates} candidates"
            );
            assert!(per_row < 4 * VOCAB as u64);
        }
    }

    #[test]
    fn a_non_finite_logit_in_a_reduced_row_is_an_error() {
        let mut data = logits(6).as_slice().to_vec();
        data[7 * VOCAB + 11] = f32::NAN;
        data[7 * VOCAB + 12] = f32::INFINITY;
        let host = Logits::new(data, ROWS, VOCAB);
        let r = request(|_| RowDraw::Greedy, 0);
        assert!(r.rows.iter().any(|q| q.row == 7));
        match pollster::block_on(on_device(&host).reduce_with_kernels(&r)) {
            Err(ModelError::NonFinite { count, .. }) => assert_eq!(count, 2),
            other => panic!("expected NonFinite, got {other:?}"),
        }
        // Rows that are not reduced are not read.
        let mut fine = r.clone();
        fine.rows.retain(|q| q.row != 7);
        assert!(pollster::block_on(on_device(&host).reduce_with_kernels(&fine)).is_ok());
    }

    #[test]
    fn guidance_on_the_device_equals_the_host_s() {
        let (cond, uncond) = (logits(7), logits(8));
        let host = cond.clone().guided(uncond.clone(), 2.5);
        let device = on_device(&cond).guided(on_device(&uncond), 2.5);
        let device = pollster::block_on(device.to_host()).unwrap();
        let diff = host
            .as_slice()
            .iter()
            .zip(device.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "max |Δ| = {diff}");
    }
}
