//! The diffusion transformer (DiT) of MDLM and BD3-LM.
//!
//! Follows `kuleshov-group/bd3lms` `models/hf/modeling_bd3lm.py` (`DITBackbone`, `DDiTBlock`,
//! `DDitFinalLayer`): token embedding, constant or σ-dependent adaLN conditioning, `n_blocks`
//! pre-norm blocks with rotary multi-head attention and a GELU(tanh) MLP, each branch gated by
//! adaLN, then a modulated LayerNorm and a linear head to raw logits. SUBS (the mask logit at −∞)
//! is the samplers' business, as in the reference, where the diffusion code applies it.
//!
//! One forward pass serves the three attention modes of [`Attention`] and the KV cache: rows fed
//! at absolute positions `start..start + L` attend to the cached rows `0..start` and to each
//! other under the mode's rule, and the first `store` of them join the cache.
//!
//! The noise level σ conditions a sequence as a whole (MDLM, BD3-LM: one σ per sequence, the
//! adaLN modulation `[B, 1, ·]`) or each position on its own (diffusion forcing, Chen et al.
//! 2024, arXiv:2407.01392: one σ per token, the modulation `[B, L, ·]`), by the same weights.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::layers::{
    LayerNorm, ROTARY_BASE, TimestepEmbedder, apply_rotary, chunks, gelu_tanh, modulate,
    rotary_tables,
};
use crate::config::Attention;

/// Score given to a key a query may not see; finite so that no backend meets `-inf - -inf`.
pub(crate) const MASKED_SCORE: f32 = -1.0e30;

/// One transformer block (`backbone.blocks.{i}`).
#[derive(Module, Debug)]
pub struct DitBlock {
    /// `norm1`, before attention.
    pub norm1: LayerNorm,
    /// `attn_qkv`: `[d] → [3d]`, no bias, packed `(three, heads, head_dim)`.
    pub attn_qkv: Linear,
    /// `attn_out`: `[d] → [d]`, no bias.
    pub attn_out: Linear,
    /// `norm2`, before the MLP.
    pub norm2: LayerNorm,
    /// `mlp.0`: `[d] → [4d]`.
    pub mlp0: Linear,
    /// `mlp.2`: `[4d] → [d]`.
    pub mlp2: Linear,
    /// `adaLN_modulation`: `[cond] → [6d]` (shift, scale, gate for attention, then for the MLP).
    pub adaln_modulation: Option<Linear>,
    /// Attention heads.
    pub n_heads: usize,
}

/// Keys and values one block has cached: `[B, H, Lc, Dh]`, rotary already applied to the keys.
#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    keys: Option<Tensor<4>>,
    values: Option<Tensor<4>>,
}

/// The KV cache of a whole model: one [`LayerCache`] per block, all of the same length.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl KvCache {
    /// Number of positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl KvCache {
    /// Makes room for `layers` blocks (a fresh cache has none) and returns the one of block `i`.
    pub(crate) fn layer(&mut self, layers: usize, i: usize) -> &mut LayerCache {
        if self.layers.len() != layers {
            self.layers = vec![LayerCache::default(); layers];
        }
        &mut self.layers[i]
    }

    /// Counts `stored` more positions, once every block has stored them.
    pub(crate) fn advance(&mut self, stored: usize) {
        self.len += stored;
    }
}

impl LayerCache {
    /// The keys and values a query of this call sees — the cached ones, then `keys` and
    /// `values` (`[B, H, L, Dh]`) — after the first `store` rows of the call join the cache.
    pub(crate) fn extend(
        &mut self,
        keys: Tensor<4>,
        values: Tensor<4>,
        store: usize,
    ) -> (Tensor<4>, Tensor<4>) {
        let k_all = append(self.keys.as_ref(), keys.clone());
        let v_all = append(self.values.as_ref(), values.clone());
        if store > 0 {
            self.keys = Some(append(self.keys.as_ref(), keys.narrow(2, 0, store)));
            self.values = Some(append(self.values.as_ref(), values.narrow(2, 0, store)));
        }
        (k_all, v_all)
    }
}

/// Adds `extra` rows after `cached` along the sequence axis.
fn append(cached: Option<&Tensor<4>>, extra: Tensor<4>) -> Tensor<4> {
    match cached {
        Some(c) => Tensor::cat(vec![c.clone(), extra], 2),
        None => extra,
    }
}

impl DitBlock {
    /// One block on `x` `[B, L, d]` under the conditioning `cond` `[B, 1, c]` or `[B, L, c]`
    /// (already through its SiLU), rotary tables `rope`, an additive attention `bias`, and an
    /// optional KV cache whose first `store` rows of `x` join it.
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        cond: &Tensor<3>,
        rope: &(Tensor<4>, Tensor<4>),
        bias: Option<&Tensor<4>>,
        cache: Option<&mut LayerCache>,
        store: usize,
    ) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let h = self.n_heads;
        let dh = d / h;
        let modulation = self
            .adaln_modulation
            .as_ref()
            .map(|m| chunks(m.forward(cond.clone()), 6));

        // Attention branch.
        let x_skip = x.clone();
        let mut y = self.norm1.forward(x);
        if let Some(m) = &modulation {
            y = modulate(y, m[0].clone(), m[1].clone());
        }
        let qkv = self.attn_qkv.forward(y).reshape([b, l, 3, h, dh]);
        let split = |i: usize| {
            qkv.clone()
                .narrow(2, i, 1)
                .reshape([b, l, h, dh])
                .swap_dims(1, 2)
        }; // [B, H, L, Dh]
        let (cos, sin) = rope;
        let q = apply_rotary(split(0), cos, sin);
        let k = apply_rotary(split(1), cos, sin);
        let v = split(2);
        let (k_all, v_all) = match cache {
            Some(c) => c.extend(k, v, store),
            None => (k, v),
        };
        let attended = attend(q, k_all, v_all, bias); // [B, H, L, Dh]
        let attended = attended.swap_dims(1, 2).reshape([b, l, d]);
        let attn = self.attn_out.forward(attended);
        let x = match &modulation {
            Some(m) => x_skip + attn * m[2].clone(),
            None => x_skip + attn,
        };

        // MLP branch.
        let mut y = self.norm2.forward(x.clone());
        if let Some(m) = &modulation {
            y = modulate(y, m[3].clone(), m[4].clone());
        }
        let y = self.mlp2.forward(gelu_tanh(self.mlp0.forward(y)));
        match &modulation {
            Some(m) => x + y * m[5].clone(),
            None => x + y,
        }
    }
}

/// `softmax(q·kᵀ/√Dh + bias)·v` for `q` `[B, H, L, Dh]` and keys/values `[B, H, Lk, Dh]`.
///
/// On the CPU backend this is burn's fused attention (burn-flex tiles long sequences over the
/// keys with an online softmax instead of writing the `[L, Lk]` scores out; the 169.6M shape's
/// forward went from 440 / 1,570 / 8,390 ms to 314 / 1,176 / 7,152 ms at L = 64 / 256 / 1,024,
/// BENCHMARKS.md); on a GPU, where the kernels the page compiles are the ones measured and
/// tested in the browser, the three passes as written.
pub(crate) fn attend(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<&Tensor<4>>,
) -> Tensor<4> {
    let [b, h, l, dh] = q.dims();
    let lk = k.dims()[2];
    if crate::backend::is_host(&q.device()) {
        let bias = bias.map(|x| x.clone().expand([b, h, l, lk]));
        return burn::tensor::module::attention(
            q,
            k,
            v,
            None,
            bias,
            burn::tensor::ops::AttentionModuleOptions::default(),
        );
    }
    let mut scores = q.matmul(k.swap_dims(2, 3)) / (dh as f64).sqrt(); // [B, H, L, Lk]
    if let Some(bias) = bias {
        scores = scores + bias.clone();
    }
    softmax(scores, 3).matmul(v)
}

/// The output head (`backbone.output_layer`).
#[derive(Module, Debug)]
pub struct FinalLayer {
    /// `norm_final`.
    pub norm_final: LayerNorm,
    /// `adaLN_modulation`: `[cond] → [2d]` (shift, scale).
    pub adaln_modulation: Option<Linear>,
    /// `linear`: `[d] → [V]`, with bias.
    pub linear: Linear,
}

impl FinalLayer {
    /// The modulated norm and the linear head on `x` `[B, L, d]`.
    pub(crate) fn forward(&self, x: Tensor<3>, cond: &Tensor<3>) -> Tensor<3> {
        let mut y = self.norm_final.forward(x);
        if let Some(m) = &self.adaln_modulation {
            let m = chunks(m.forward(cond.clone()), 2);
            y = modulate(y, m[0].clone(), m[1].clone());
        }
        self.linear.forward(y)
    }
}

/// The whole DiT backbone.
#[derive(Module, Debug)]
pub struct Dit {
    /// `vocab_embed.embedding`: `[V, d]`.
    pub vocab_embed: Param<Tensor<2>>,
    /// `sigma_map`, present when the model uses adaLN.
    pub sigma_map: Option<TimestepEmbedder>,
    /// `blocks.{i}`.
    pub blocks: Vec<DitBlock>,
    /// `output_layer`.
    pub output_layer: FinalLayer,
    /// Whether σ changes the conditioning; when false it is computed once, at σ = 0.
    pub time_conditioning: bool,
    /// `silu(sigma_map(0))`, `[1, cond_dim]`, precomputed for models without time conditioning.
    #[module(skip)]
    pub constant_cond: Option<Tensor<2>>,
}

impl Dit {
    /// Precomputes the constant conditioning of a model without time conditioning.
    pub fn freeze_conditioning(mut self) -> Self {
        if !self.time_conditioning {
            let device = self.vocab_embed.val().device();
            self.constant_cond = self.sigma_map.as_ref().map(|s| s.forward(&[0.0], &device));
        }
        self
    }

    /// Drops the precomputed constant conditioning, so that training reaches `sigma_map` (the
    /// conditioning is recomputed from it on every pass).
    pub fn thaw_conditioning(mut self) -> Self {
        self.constant_cond = None;
        self
    }

    /// Width of the residual stream.
    pub fn hidden_dim(&self) -> usize {
        self.vocab_embed.val().dims()[1]
    }

    /// Rows of the embedding.
    pub fn vocab_size(&self) -> usize {
        self.vocab_embed.val().dims()[0]
    }

    /// The conditioning `[B, 1, c]` of one σ per sequence (`sigma` holds `b` values), or
    /// `[B, L, c]` of one per position (`b · l` values, `l > 1`; a model without time
    /// conditioning ignores them and answers `[B, 1, c]`).
    fn conditioning(&self, sigma: &[f32], b: usize, l: usize, device: &Device) -> Tensor<3> {
        let per_position = l > 1 && sigma.len() == b * l;
        let rows = if per_position { l } else { 1 };
        let cond = match (&self.constant_cond, &self.sigma_map) {
            (Some(c), _) => return c.clone().unsqueeze_dim::<3>(1).repeat_dim(0, b),
            (None, Some(map)) if self.time_conditioning => map.forward(sigma, device),
            (None, Some(map)) => {
                return map
                    .forward(&[0.0], device)
                    .unsqueeze_dim::<3>(1)
                    .repeat_dim(0, b);
            }
            // Without adaLN nothing reads the conditioning.
            (None, None) => return Tensor::zeros([b, 1, 1], device),
        };
        let [_, c] = cond.dims();
        cond.reshape([b, rows, c])
    }

    /// Raw logits `[B, L, V]` for `tokens` `[B, L]` placed at absolute positions `start..start+L`.
    ///
    /// With a cache, `start` must equal its length: the rows attend to the cached positions and to
    /// each other under `attention`, and the first `store` rows are appended to the cache. Without a
    /// cache, `start` only shifts the rotary positions. `sigma` holds one noise level per sequence
    /// (`B` values) or, for a model trained with per-token noise (diffusion forcing), one per
    /// position (`B · L` values, row-major).
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        sigma: &[f32],
        attention: Attention,
        start: usize,
        mut cache: Option<&mut KvCache>,
        store: usize,
    ) -> Tensor<3> {
        let device = tokens.device();
        let [b, l] = tokens.dims();
        let rope = rotary_tables(start, l, self.head_dim(), ROTARY_BASE, &device);
        let key_start = if cache.is_some() { 0 } else { start };
        let bias = attention_bias(attention, start, l, key_start, &device);
        let cond = self.conditioning(sigma, b, l, &device);
        let x = self.trunk(
            tokens,
            &cond,
            &rope,
            bias.as_ref(),
            cache.as_deref_mut(),
            store,
        );
        if let Some(c) = cache {
            c.advance(store);
        }
        self.output_layer.forward(x, &cond)
    }

    /// BD3-LM's vectorized training pass: `tokens` `[B, 2n]` is the noised sequence x_t followed
    /// by the clean x_0, both at rotary positions `0..n`, under the block-diffusion mask of
    /// [`block_diffusion_allows`]; returns the logits of the x_t half, `[B, n, V]`.
    ///
    /// One pass trains every block at once: block `b` of x_t sees itself (noised) and the clean
    /// blocks before it, exactly what sampling block `b` sees through the KV cache (Arriola et al.,
    /// arXiv:2503.09573, §3.2; `kuleshov-group/bd3lms` `models/dit.py` `block_diff_mask`).
    pub fn forward_block_diffusion(
        &self,
        tokens: Tensor<2, Int>,
        sigma: &[f32],
        block_size: usize,
    ) -> Tensor<3> {
        let device = tokens.device();
        let [b, two_n] = tokens.dims();
        let n = two_n / 2;
        let (cos, sin) = rotary_tables(0, n, self.head_dim(), ROTARY_BASE, &device);
        let rope = (
            Tensor::cat(vec![cos.clone(), cos], 2),
            Tensor::cat(vec![sin.clone(), sin], 2),
        );
        let bias = bias_from(two_n, two_n, &device, |q, k| {
            block_diffusion_allows(q, k, n, block_size)
        });
        // One σ per sequence: both halves share it.
        let cond = self.conditioning(&sigma[..b.min(sigma.len())], b, 1, &device);
        let x = self.trunk(tokens, &cond, &rope, bias.as_ref(), None, 0);
        self.output_layer.forward(x.narrow(1, 0, n), &cond)
    }

    fn head_dim(&self) -> usize {
        self.hidden_dim() / self.blocks.first().map_or(1, |blk| blk.n_heads)
    }

    /// Embedding and blocks: the residual stream `[B, L, d]` after the last block.
    fn trunk(
        &self,
        tokens: Tensor<2, Int>,
        cond: &Tensor<3>,
        rope: &(Tensor<4>, Tensor<4>),
        bias: Option<&Tensor<4>>,
        mut cache: Option<&mut KvCache>,
        store: usize,
    ) -> Tensor<3> {
        let [b, l] = tokens.dims();
        let d = self.hidden_dim();
        let mut x = self
            .vocab_embed
            .val()
            .select(0, tokens.reshape([b * l]))
            .reshape([b, l, d]);
        let n = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            let layer = cache.as_deref_mut().map(|c| c.layer(n, i));
            x = block.forward(x, cond, rope, bias, layer, store);
        }
        x
    }
}

/// BD3-LM's training mask over `[x_t ; x_0]` (length `2n`): a query may see a key when both are
/// in the same block of the same half (block-diagonal), when the query is in x_t and the key is
/// in an earlier block of x_0 (offset block-causal), or when both are in x_0 and the key's block
/// is not later (block-causal).
pub fn block_diffusion_allows(query: usize, key: usize, n: usize, block_size: usize) -> bool {
    let (q_clean, k_clean) = (query >= n, key >= n);
    let block = |i: usize, clean: bool| {
        if clean {
            (i - n) / block_size
        } else {
            i / block_size
        }
    };
    let (bq, bk) = (block(query, q_clean), block(key, k_clean));
    (bq == bk && q_clean == k_clean)
        || (bq > bk && k_clean && !q_clean)
        || (bq >= bk && k_clean && q_clean)
}

/// Additive attention bias `[1, 1, L, Lk]` (0 where allowed, [`MASKED_SCORE`] where not) for
/// queries at `start..start+len` and keys at `key_start..start+len`; `None` when nothing is masked.
pub(crate) fn attention_bias(
    attention: Attention,
    start: usize,
    len: usize,
    key_start: usize,
    device: &Device,
) -> Option<Tensor<4>> {
    let keys = start + len - key_start;
    bias_from(len, keys, device, |q, k| {
        attention.allows(start + q, key_start + k)
    })
}

/// The bias `[1, 1, queries, keys]` of a mask given by `allows(query_row, key_row)`; `None` when
/// it allows everything.
fn bias_from(
    queries: usize,
    keys: usize,
    device: &Device,
    allows: impl Fn(usize, usize) -> bool,
) -> Option<Tensor<4>> {
    let mut any = false;
    let mut bias = Vec::with_capacity(queries * keys);
    for q in 0..queries {
        for k in 0..keys {
            if allows(q, k) {
                bias.push(0.0f32);
            } else {
                any = true;
                bias.push(MASKED_SCORE);
            }
        }
    }
    any.then(|| Tensor::from_data(TensorData::new(bias, [1, 1, queries, keys]), device))
}

#[cfg(test)]
mod tests {
    use super::block_diffusion_allows;

    #[test]
    fn block_diffusion_mask_lets_a_noisy_block_see_only_itself_and_earlier_clean_blocks() {
        let (n, bs) = (8, 4);
        // x_t block 1 (rows 4..8): itself, and x_0 block 0 (rows 8..12), nothing else.
        let seen: Vec<usize> = (0..2 * n)
            .filter(|&k| block_diffusion_allows(5, k, n, bs))
            .collect();
        assert_eq!(seen, vec![4, 5, 6, 7, 8, 9, 10, 11]);
        // x_t block 0 sees only itself: no clean token of its own block leaks in.
        let seen: Vec<usize> = (0..2 * n)
            .filter(|&k| block_diffusion_allows(1, k, n, bs))
            .collect();
        assert_eq!(seen, vec![0, 1, 2, 3]);
        // x_0 is block-causal among itself and never sees x_t.
        let seen: Vec<usize> = (0..2 * n)
            .filter(|&k| block_diffusion_allows(12, k, n, bs))
            .collect();
        assert_eq!(seen, (8..16).collect::<Vec<_>>());
        let seen: Vec<usize> = (0..2 * n)
            .filter(|&k| block_diffusion_allows(9, k, n, bs))
            .collect();
        assert_eq!(seen, vec![8, 9, 10, 11]);
    }
}
