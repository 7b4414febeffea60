//! The decoder-style transformer of the diffusion LMs people run — LLaDA, Dream and dllm's A2D
//! conversions of Qwen2 and Qwen3 — under a diffusion model's attention mask instead of a causal
//! one.
//!
//! They are one network with different flags and tensor names: a token embedding; `layers`
//! pre-norm blocks of RMSNorm → grouped-query attention with rotary positions (θ from the
//! config; q/k/v biases in Qwen2 and Dream; a per-head RMSNorm of q and k before the rotary in
//! Qwen3) → residual, then RMSNorm → SwiGLU MLP `down(silu(gate(x)) ⊙ up(x))` → residual; a
//! final RMSNorm and the head (tied to the embedding or not) to raw logits.
//!
//! Follows transformers 4.57 `models/qwen3/modeling_qwen3.py` and `models/qwen2/modeling_qwen2.py`
//! (`Qwen3RMSNorm`, `Qwen3Attention`, `apply_rotary_pos_emb`, `rotate_half`, `repeat_kv`,
//! `Qwen3MLP`), which dllm's `dllm/pipelines/a2d/models/qwen3/modeling_qwen3.py` runs with a
//! padding-only mask; dllm's `dllm/pipelines/llada/models/modeling_llada.py` (`LLaDALlamaBlock`,
//! `RotaryEmbedding`, `RMSLayerNorm`) and `dllm/pipelines/dream/models/modeling_dream.py`
//! compute the same functions under other names. Written again here for burn.
//!
//! The architectures' own files ([`super::qwen`], [`super::llada`]) read each `config.json` into
//! a [`TransformerConfig`] and name the tensors ([`Architecture::key`]); this file builds and runs
//! the network and checks a checkpoint's header against the config before a tensor is read.
//! Grouped-query attention never copies the shared keys: the queries of the heads that share a
//! key/value head are stacked along the sequence axis and meet that head's keys in one matmul.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, FloatDType, Int, Tensor, TensorData};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::Serialize;

use super::dit::{KvCache, LayerCache, attention_bias};
use super::layers::{apply_rotary, rotary_tables};
use super::load::{
    Assembled, LoadError, QuantPart, TensorBytes, TensorRole, TensorSlot, TensorSource,
    build_every_stage, check_layout, decode, fill_layout, torch_weight, write_safetensors_under,
};
use super::quant::{
    QUANT_BLOCK, QuantFormat, Quantization, dequantize, quantize_matrix, quantized_keys,
    quantized_shapes, quantized_tensor,
};
use crate::config::{Attention, ConfigError};

/// Which published architecture a [`TransformerConfig`] came from: it decides the tensor names
/// and what the CLI and the page call the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// dllm's A2D conversion of Qwen3 (`model_type` `a2d-qwen3`): q/k RMSNorm, no biases.
    A2dQwen3,
    /// dllm's A2D conversion of Qwen2 / Qwen2.5 (`a2d-qwen2`): q/k/v biases.
    A2dQwen2,
    /// Dream (`Dream`): Qwen2.5's layout, position i − 1 predicting token i.
    Dream,
    /// LLaDA (`llada`): OLMo's names for a LLaMA-style network.
    Llada,
}

impl Architecture {
    /// The `model_type` config.json carries.
    pub fn model_type(self) -> &'static str {
        match self {
            Architecture::A2dQwen3 => "a2d-qwen3",
            Architecture::A2dQwen2 => "a2d-qwen2",
            Architecture::Dream => "Dream",
            Architecture::Llada => "llada",
        }
    }

    /// The checkpoint key of `tensor`, in this architecture's names.
    pub fn key(self, tensor: Key) -> String {
        match self {
            Architecture::Llada => super::llada::key(tensor),
            _ => super::qwen::key(tensor),
        }
    }
}

/// A tensor of the network, named in no architecture's words ([`Architecture::key`] names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// The token embedding `[V, d]`.
    Embedding,
    /// A projection of block `layer`; `bias` asks for its bias instead of its weight.
    Linear {
        /// The block.
        layer: usize,
        /// Which projection.
        projection: Projection,
        /// The bias rather than the weight.
        bias: bool,
    },
    /// An RMSNorm scale of block `layer`.
    Norm {
        /// The block.
        layer: usize,
        /// Which norm.
        norm: BlockNorm,
    },
    /// The final RMSNorm `[d]`.
    FinalNorm,
    /// The output head `[V, d]` (absent when tied to the embedding).
    Head,
}

/// The linear layers of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// Queries, `[h·Dh, d]`.
    Query,
    /// Keys, `[kv·Dh, d]`.
    Key,
    /// Values, `[kv·Dh, d]`.
    Value,
    /// Attention output, `[d, h·Dh]`.
    Output,
    /// The MLP's gated branch (under SiLU), `[m, d]`.
    Gate,
    /// The MLP's linear branch, `[m, d]`.
    Up,
    /// The MLP's output, `[d, m]`.
    Down,
}

/// The RMSNorms of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockNorm {
    /// Before attention, `[d]`.
    Attention,
    /// Before the MLP, `[d]`.
    Mlp,
    /// Per head over the queries, `[Dh]` (Qwen3).
    Query,
    /// Per head over the keys, `[Dh]` (Qwen3).
    Key,
}

/// The network's shape and flags, whatever config.json they were read from. Field names follow
/// transformers' Qwen configs; [`super::llada`] maps OLMo's names onto them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransformerConfig {
    /// The published architecture.
    pub architecture: Architecture,
    /// Rows of the embedding and of the head: the tokenizer's vocabulary, padded (Qwen pads
    /// 151,669 tokens to 151,936 rows; LLaDA's `embedding_size`).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads; each serves `num_attention_heads / num_key_value_heads` query heads.
    pub num_key_value_heads: usize,
    /// Size of one head (Qwen3 sets it apart from `hidden_size / num_attention_heads`).
    pub head_dim: usize,
    /// Base of the rotary frequencies.
    pub rope_theta: f64,
    /// The RMSNorms' epsilon.
    pub rms_norm_eps: f64,
    /// Whether q, k and v carry biases (Qwen2, Dream).
    pub qkv_bias: bool,
    /// Whether q and k pass a per-head RMSNorm before the rotary (Qwen3).
    pub qk_norm: bool,
    /// Whether the head is the embedding (no head tensor in the checkpoint).
    pub tie_word_embeddings: bool,
    /// Whether position i's logits come out at row i − 1 (Dream; `shift_logits` in llama.cpp's
    /// converter): the denoiser realigns them, the samplers never see the shift.
    pub shift_logits: bool,
    /// The longest canvas (`max_position_embeddings`).
    pub max_position_embeddings: usize,
    /// Block size of the block-causal (BD3-LM) variants; `None`: bidirectional.
    pub block_size: Option<usize>,
    /// The mask token, when config.json names it (`mask_token_id`).
    pub mask_token_id: Option<u32>,
    /// How the matrices are stored, when `unmask quantize` wrote them ([`super::quant`]).
    pub quantization: Option<Quantization>,
}

impl TransformerConfig {
    /// Checks every size against [`crate::limits`] and every relation the forward pass relies
    /// on, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::limits::{self, check};
        let sizes = [
            ("vocab_size", self.vocab_size, limits::MAX_VOCAB_SIZE),
            ("hidden_size", self.hidden_size, limits::MAX_HIDDEN_DIM),
            (
                "intermediate_size",
                self.intermediate_size,
                limits::MAX_MLP_DIM,
            ),
            (
                "num_hidden_layers",
                self.num_hidden_layers,
                limits::MAX_BLOCKS,
            ),
            (
                "num_attention_heads",
                self.num_attention_heads,
                limits::MAX_HEADS,
            ),
            (
                "num_key_value_heads",
                self.num_key_value_heads,
                limits::MAX_HEADS,
            ),
            ("head_dim", self.head_dim, limits::MAX_HIDDEN_DIM),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                limits::MAX_MODEL_LENGTH,
            ),
        ];
        for (field, value, max) in sizes {
            check(field, value, max)?;
            if value == 0 {
                return Err(ConfigError::Unsupported {
                    field,
                    value: "0".into(),
                    hint: "it must be positive",
                });
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(ConfigError::Unsupported {
                field: "num_key_value_heads",
                value: self.num_key_value_heads.to_string(),
                hint: "it must divide num_attention_heads (grouped-query attention)",
            });
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ConfigError::Unsupported {
                field: "head_dim",
                value: self.head_dim.to_string(),
                hint: "it must be even (the rotary embedding rotates pairs)",
            });
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.rope_theta) {
            return Err(ConfigError::Unsupported {
                field: "rope_theta",
                value: self.rope_theta.to_string(),
                hint: "it must be a positive number",
            });
        }
        if !positive(self.rms_norm_eps) {
            return Err(ConfigError::Unsupported {
                field: "rms_norm_eps",
                value: self.rms_norm_eps.to_string(),
                hint: "it must be a positive number",
            });
        }
        if let Some(b) = self.block_size {
            check("block_size", b, limits::MAX_MODEL_LENGTH)?;
            if b == 0 {
                return Err(ConfigError::Unsupported {
                    field: "block_size",
                    value: "0".into(),
                    hint: "it must be positive",
                });
            }
        }
        if let Some(q) = self.quantization {
            if q.block_size != QUANT_BLOCK {
                return Err(ConfigError::Unsupported {
                    field: "quantization",
                    value: format!("block_size {}", q.block_size),
                    hint: "the blocks hold 32 weights",
                });
            }
            let inputs = [
                self.hidden_size,
                self.num_attention_heads * self.head_dim,
                self.intermediate_size,
            ];
            if let Some(n) = inputs.iter().find(|n| !n.is_multiple_of(QUANT_BLOCK)) {
                return Err(ConfigError::Unsupported {
                    field: "quantization",
                    value: format!("{} (a matrix with {n} inputs)", q.format.name()),
                    hint: "every matrix's input size must be a multiple of the block of 32",
                });
            }
        }
        if let Some(m) = self
            .mask_token_id
            .filter(|&m| m as usize >= self.vocab_size)
        {
            return Err(ConfigError::Unsupported {
                field: "mask_token_id",
                value: m.to_string(),
                hint: "it must be below vocab_size",
            });
        }
        Ok(())
    }

    /// How the model attends when sampling.
    pub fn attention(&self) -> Attention {
        match self.block_size {
            Some(block_size) => Attention::BlockCausal { block_size },
            None => Attention::Bidirectional,
        }
    }

    /// Every tensor a checkpoint holds, with its shape in PyTorch's layout, in a fixed order:
    /// the [`Stage`]s' tensors one stage after the other.
    pub fn layout(&self) -> Vec<TensorSlot> {
        self.stages()
            .flat_map(|stage| self.stage_layout(stage))
            .collect()
    }

    /// The stages a network of this config is built in, in order ([`Assembly`]).
    pub fn stages(&self) -> impl Iterator<Item = Stage> + use<> {
        let blocks = self.num_hidden_layers;
        std::iter::successors(Some(Stage::Embedding), move |&stage| {
            (stage != Stage::Top).then(|| stage.next(blocks))
        })
    }

    /// The tensors `stage` builds from, in PyTorch's layout.
    pub fn stage_layout(&self, stage: Stage) -> Vec<TensorSlot> {
        self.stage_tensors(stage)
            .into_iter()
            .map(|(_, slot)| slot)
            .collect()
    }

    /// Every tensor a checkpoint holds, each with the [`Key`] naming it in no architecture's
    /// words: [`TransformerConfig::layout`] with its keys (what a converter from another
    /// naming, as [`super::gguf_import`], maps through).
    pub fn keyed_layout(&self) -> Vec<(Key, TensorSlot)> {
        self.stages()
            .flat_map(|stage| self.stage_tensors(stage))
            .collect()
    }

    /// [`TransformerConfig::stage_layout`], each slot with its [`Key`].
    fn stage_tensors(&self, stage: Stage) -> Vec<(Key, TensorSlot)> {
        let arch = self.architecture;
        let (d, m, v, dh) = (
            self.hidden_size,
            self.intermediate_size,
            self.vocab_size,
            self.head_dim,
        );
        let keyed = |key: Key, shape: Vec<usize>, role| (key, slot(arch.key(key), shape, role));
        let layer = match stage {
            Stage::Embedding => {
                return vec![keyed(Key::Embedding, vec![v, d], TensorRole::Embedding)];
            }
            Stage::Top => {
                let mut slots = vec![keyed(Key::FinalNorm, vec![d], TensorRole::Norm)];
                if !self.tie_word_embeddings {
                    slots.push(keyed(
                        Key::Head,
                        vec![v, d],
                        TensorRole::Weight { fan_in: d },
                    ));
                }
                return slots;
            }
            Stage::Block(layer) => layer,
        };
        let (q, kv) = (self.num_attention_heads * dh, self.num_key_value_heads * dh);
        let norm = |norm, n| keyed(Key::Norm { layer, norm }, vec![n], TensorRole::Norm);
        let linear = |projection, bias| Key::Linear {
            layer,
            projection,
            bias,
        };
        let mut slots = vec![norm(BlockNorm::Attention, d)];
        let projections = [
            (Projection::Query, d, q, self.qkv_bias),
            (Projection::Key, d, kv, self.qkv_bias),
            (Projection::Value, d, kv, self.qkv_bias),
            (Projection::Output, q, d, false),
        ];
        let mlp = [
            (Projection::Gate, d, m),
            (Projection::Up, d, m),
            (Projection::Down, m, d),
        ];
        for (projection, fan_in, out, bias) in projections {
            slots.push(keyed(
                linear(projection, false),
                vec![out, fan_in],
                TensorRole::Weight { fan_in },
            ));
            if bias {
                slots.push(keyed(
                    linear(projection, true),
                    vec![out],
                    TensorRole::Bias { fan_in },
                ));
            }
        }
        if self.qk_norm {
            slots.push(norm(BlockNorm::Query, dh));
            slots.push(norm(BlockNorm::Key, dh));
        }
        slots.push(norm(BlockNorm::Mlp, d));
        for (projection, fan_in, out) in mlp {
            slots.push(keyed(
                linear(projection, false),
                vec![out, fan_in],
                TensorRole::Weight { fan_in },
            ));
        }
        slots
    }

    /// The tensors as a checkpoint of this config stores them: [`TransformerConfig::layout`],
    /// with each matrix (the embedding included) replaced by its quantized values and scales
    /// when the config is quantized.
    pub fn stored_layout(&self) -> Vec<TensorSlot> {
        self.stored(self.layout())
    }

    /// The keys of the stored tensors `stage` reads: what to fetch before building it.
    pub fn stage_keys(&self, stage: Stage) -> Vec<String> {
        self.stored(self.stage_layout(stage))
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    /// `logical` as this config stores it (quantized matrices as values and scales).
    fn stored(&self, logical: Vec<TensorSlot>) -> Vec<TensorSlot> {
        let Some(q) = self.quantization else {
            return logical;
        };
        let mut stored = Vec::with_capacity(logical.len() * 2);
        for logical in logical {
            match logical.matrix() {
                Some((rows, cols)) => {
                    let (values_key, scales_key) = quantized_keys(&logical.name);
                    let (values, scales) = quantized_shapes(q.format, rows, cols);
                    let part = |name, shape: [usize; 2], part| {
                        slot(name, shape.to_vec(), TensorRole::Quantized(part))
                    };
                    stored.push(part(values_key, values, QuantPart::Values(q.format)));
                    stored.push(part(scales_key, scales, QuantPart::Scales));
                }
                None => stored.push(logical),
            }
        }
        stored
    }

    /// Parameters the checkpoint holds, counted in `u64` (an 8B count wraps `usize` in wasm32).
    pub fn parameter_count(&self) -> u64 {
        super::load::layout_parameters(&self.layout())
    }

    /// Bytes of the largest tensor on a device that holds floats in `float_bytes` (the
    /// embedding, in every published shape): it must fit one GPU storage buffer. A quantized
    /// matrix is one buffer of its values and its scales.
    pub fn largest_tensor_bytes(&self, float_bytes: u64) -> u64 {
        self.layout()
            .iter()
            .map(|s| {
                let elements = s.shape.iter().map(|&x| x as u64).product::<u64>();
                match (self.quantization, s.matrix()) {
                    (Some(q), Some((rows, cols))) => {
                        let (values, scales) = quantized_shapes(q.format, rows, cols);
                        let size = |[a, b]: [usize; 2]| a as u64 * b as u64;
                        size(values) + 2 * size(scales)
                    }
                    _ => elements.saturating_mul(float_bytes),
                }
            })
            .max()
            .unwrap_or(0)
    }

    /// Bytes a loader holds at once while building the largest [`Stage`] ([`Assembly`]): the
    /// stage's tensors as stored, floats counted as f32 (the most they take), plus its largest
    /// tensor decoded to f32, twice (a linear layer is transposed into a copy). With `expand`
    /// false (a GPU), a quantized matrix goes to the device as stored and is never decoded.
    pub fn stage_peak_bytes(&self, expand: bool) -> u64 {
        let elements = |slot: &TensorSlot| slot.shape.iter().map(|&x| x as u64).product::<u64>();
        self.stages()
            .map(|stage| {
                let stored: u64 = self
                    .stored(self.stage_layout(stage))
                    .iter()
                    .map(|slot| match slot.role {
                        TensorRole::Quantized(QuantPart::Values(_)) => elements(slot),
                        TensorRole::Quantized(QuantPart::Scales) => 2 * elements(slot),
                        _ => 4 * elements(slot),
                    })
                    .sum();
                let decoded = self
                    .stage_layout(stage)
                    .iter()
                    .filter(|slot| expand || self.quantization.is_none() || slot.matrix().is_none())
                    .map(elements)
                    .max()
                    .unwrap_or(0);
                stored.saturating_add(decoded.saturating_mul(8))
            })
            .max()
            .unwrap_or(0)
    }

    /// Elements of the largest tensor (the embedding, in every published shape): it must fit
    /// one GPU storage buffer.
    pub fn largest_tensor_elements(&self) -> u64 {
        self.layout()
            .iter()
            .map(|s| s.shape.iter().map(|&x| x as u64).product::<u64>())
            .max()
            .unwrap_or(0)
    }
}

fn slot(name: String, shape: Vec<usize>, role: TensorRole) -> TensorSlot {
    TensorSlot {
        name,
        shape,
        role,
        zero_init: false,
    }
}

/// RMSNorm, `x / √(mean(x²) + ε) · weight` over the last axis, computed in f32 whatever the
/// device computes in: in f16, `mean(x²)` overflows once activations pass 256.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Scale, `[n]`.
    pub weight: Param<Tensor<1>>,
    /// ε.
    pub eps: f64,
}

impl RmsNorm {
    /// Normalises `x` over its last axis.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(FloatDType::F32);
        let inv_rms = (x.clone().square().mean_dim(D - 1) + self.eps)
            .sqrt()
            .recip();
        let normed = (x * inv_rms).cast(FloatDType::from(dtype));
        normed * self.weight.val().unsqueeze::<D>()
    }
}

/// One block.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    /// Before attention.
    pub attention_norm: RmsNorm,
    /// Queries, `[d] → [h·Dh]`.
    pub q_proj: Linear,
    /// Keys, `[d] → [kv·Dh]`.
    pub k_proj: Linear,
    /// Values, `[d] → [kv·Dh]`.
    pub v_proj: Linear,
    /// Attention output, `[h·Dh] → [d]`.
    pub o_proj: Linear,
    /// Per-head query norm (Qwen3).
    pub q_norm: Option<RmsNorm>,
    /// Per-head key norm (Qwen3).
    pub k_norm: Option<RmsNorm>,
    /// Before the MLP.
    pub mlp_norm: RmsNorm,
    /// The gated branch, `[d] → [m]`.
    pub gate_proj: Linear,
    /// The linear branch, `[d] → [m]`.
    pub up_proj: Linear,
    /// The MLP's output, `[m] → [d]`.
    pub down_proj: Linear,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Size of a head.
    pub head_dim: usize,
}

impl DecoderBlock {
    /// One block on `x` `[B, L, d]` with rotary tables `rope`, an additive attention `bias`
    /// `[1, 1, L, Lk]`, and an optional KV cache whose first `store` rows of `x` join it.
    fn forward(
        &self,
        x: Tensor<3>,
        rope: &(Tensor<4>, Tensor<4>),
        bias: Option<&Tensor<4>>,
        cache: Option<&mut LayerCache>,
        store: usize,
    ) -> Tensor<3> {
        let [b, l, _] = x.dims();
        let (h, kv, dh) = (self.heads, self.kv_heads, self.head_dim);
        let y = self.attention_norm.forward(x.clone());
        let split = |proj: &Linear, n: usize, norm: &Option<RmsNorm>| {
            let t = proj.forward(y.clone()).reshape([b, l, n, dh]);
            let t = match norm {
                Some(norm) => norm.forward(t),
                None => t,
            };
            t.swap_dims(1, 2) // [B, n, L, Dh]
        };
        let (cos, sin) = rope;
        let q = apply_rotary(split(&self.q_proj, h, &self.q_norm), cos, sin);
        let k = apply_rotary(split(&self.k_proj, kv, &self.k_norm), cos, sin);
        let v = split(&self.v_proj, kv, &None);
        let (k_all, v_all) = match cache {
            Some(c) => c.extend(k, v, store),
            None => (k, v),
        };
        let lk = k_all.dims()[2];
        let group = h / kv;
        // Query head j·group + g reads key/value head j (`repeat_kv`): stack each group's
        // queries along the sequence axis instead of repeating the keys.
        let q = q.reshape([b, kv, group * l, dh]);
        let mut scores = q.matmul(k_all.swap_dims(2, 3)) / (dh as f64).sqrt();
        if let Some(bias) = bias {
            scores = (scores.reshape([b, h, l, lk]) + bias.clone()).reshape([b, kv, group * l, lk]);
        }
        let attended = softmax(scores, 3)
            .matmul(v_all) // [B, kv, group·L, Dh]
            .reshape([b, h, l, dh])
            .swap_dims(1, 2)
            .reshape([b, l, h * dh]);
        let x = x + self.o_proj.forward(attended);
        let y = self.mlp_norm.forward(x.clone());
        let mlp = self
            .down_proj
            .forward(silu(self.gate_proj.forward(y.clone())) * self.up_proj.forward(y));
        x + mlp
    }
}

/// The whole network.
#[derive(Module, Debug)]
pub struct Transformer {
    /// The token embedding, `[V, d]`.
    pub embedding: Param<Tensor<2>>,
    /// The blocks.
    pub blocks: Vec<DecoderBlock>,
    /// The final norm.
    pub norm: RmsNorm,
    /// The head `[d] → [V]`; `None`: tied to the embedding.
    pub head: Option<Linear>,
    /// Base of the rotary frequencies.
    pub rope_theta: f64,
    /// Whether position i's logits come out at row i − 1.
    pub shift_logits: bool,
}

impl Transformer {
    /// Rows of the embedding.
    pub fn vocab_size(&self) -> usize {
        self.embedding.val().dims()[0]
    }

    fn head_dim(&self) -> usize {
        self.blocks.first().map_or(2, |b| b.head_dim)
    }

    /// Raw logits `[B, L, V]` for `tokens` `[B, L]` at absolute positions `start..start + L`.
    ///
    /// With a cache, `start` must equal its length: the rows attend to the cached positions and
    /// to each other under `attention`, and the first `store` rows join the cache. Without one,
    /// `start` only shifts the rotary positions.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        attention: Attention,
        start: usize,
        mut cache: Option<&mut KvCache>,
        store: usize,
    ) -> Tensor<3> {
        let device = tokens.device();
        let [b, l] = tokens.dims();
        let rope = rotary_tables(start, l, self.head_dim(), self.rope_theta, &device);
        let key_start = if cache.is_some() { 0 } else { start };
        let bias = attention_bias(attention, start, l, key_start, &device);
        let embedding = self.embedding.val();
        let d = embedding.dims()[1];
        // A quantized embedding's rows come out dequantized (a no-op on a float one).
        let mut x = embedding
            .clone()
            .select(0, tokens.reshape([b * l]))
            .dequantize()
            .reshape([b, l, d]);
        let n = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            let layer = cache.as_deref_mut().map(|c| c.layer(n, i));
            x = block.forward(x, &rope, bias.as_ref(), layer, store);
        }
        if let Some(c) = cache {
            c.advance(store);
        }
        let x = self.norm.forward(x);
        match &self.head {
            Some(head) => head.forward(x),
            None => {
                let v = embedding.dims()[0];
                x.reshape([b * l, d])
                    .matmul(embedding.transpose())
                    .reshape([b, l, v])
            }
        }
    }
}

/// A checkpoint's tensors across its shards (`model-0000N-of-0000M.safetensors`), by key.
pub struct Shards<'a> {
    files: Vec<SafeTensors<'a>>,
    index: HashMap<String, usize>,
}

impl<'a> Shards<'a> {
    /// Parses every shard's header; a key in two shards is an error.
    pub fn new(shards: &'a [Vec<u8>]) -> Result<Self, LoadError> {
        let files = shards
            .iter()
            .map(|bytes| SafeTensors::deserialize(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let index = super::load::file_of_keys(files.iter().map(SafeTensors::names))?;
        Ok(Self { files, index })
    }

    /// The tensor stored under `key`.
    pub fn view(&self, key: &str) -> Option<TensorView<'a>> {
        let file = self.files.get(*self.index.get(key)?)?;
        file.tensor(key).ok()
    }

    /// The tensor stored under `key`, or the error naming it.
    fn get(&self, key: &str) -> Result<TensorView<'a>, LoadError> {
        self.view(key).ok_or_else(|| LoadError::MissingKey {
            key: key.to_owned(),
        })
    }
}

impl TensorSource for Shards<'_> {
    fn info(&self, key: &str) -> Option<(Dtype, Vec<usize>)> {
        let view = self.view(key)?;
        Some((view.dtype(), view.shape().to_vec()))
    }

    /// Sorted, so that the first unexpected key reported is the same on every run.
    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.index.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }
}

impl TensorBytes for Shards<'_> {
    fn view(&self, key: &str) -> Option<TensorView<'_>> {
        Shards::view(self, key)
    }
}

/// Tensors a checkpoint may hold beside the weights, checked by shape and never read: rotary
/// frequencies some exports keep as buffers (recomputed here), and the head of a tied model
/// written out anyway (transformers ties it to the embedding at load, as this does).
fn buffer_shape(key: &str, config: &TransformerConfig) -> Option<Vec<usize>> {
    if key.ends_with("rotary_emb.inv_freq") {
        return Some(vec![config.head_dim / 2]);
    }
    (config.tie_word_embeddings
        && config.quantization.is_none()
        && key == config.architecture.key(Key::Head))
    .then(|| vec![config.vocab_size, config.hidden_size])
}

/// Checks the checkpoint's header against `config` both ways, before a tensor is read: every
/// tensor the config implies is there with its shape and a readable dtype, and every tensor
/// there is one the config implies (or a rotary buffer).
pub fn check_header(
    config: &TransformerConfig,
    header: &dyn TensorSource,
) -> Result<(), LoadError> {
    check_layout(
        &config.stored_layout(),
        header,
        "",
        |key| buffer_shape(key, config),
        |key| {
            if key.contains(".layers.") || key.contains(".blocks.") {
                format!(" (num_hidden_layers = {})", config.num_hidden_layers)
            } else {
                String::new()
            }
        },
    )
}

/// Reads checked tensors onto a device.
struct Reader<'s> {
    /// One copy of the reading code for every source (the page's size).
    source: &'s dyn TensorBytes,
    device: &'s Device,
    quantization: Option<Quantization>,
    /// Whether quantized matrices are expanded to f32 at load (the CPU backend, see
    /// [`super::quant`]) rather than kept quantized on the device.
    expand: bool,
}

impl Reader<'_> {
    fn view(&self, key: &str) -> Result<TensorView<'_>, LoadError> {
        self.source.view(key).ok_or_else(|| LoadError::MissingKey {
            key: key.to_owned(),
        })
    }

    /// The quantized matrix stored for `weight`: its values' and scales' views, `[rows, cols]`.
    fn quantized(
        &self,
        weight: &str,
        format: QuantFormat,
    ) -> Result<(String, TensorView<'_>, TensorView<'_>, usize, usize), LoadError> {
        let (values_key, scales_key) = quantized_keys(weight);
        let (values, scales) = (self.view(&values_key)?, self.view(&scales_key)?);
        let rows = values.shape().first().copied().unwrap_or(0);
        let cols = values.shape().get(1).map_or(0, |c| c * format.per_byte());
        Ok((values_key, values, scales, rows, cols))
    }

    /// The matrix stored under `weight` as f32 values and its `[rows, cols]` (PyTorch's layout),
    /// expanded from its quantized form where the checkpoint is quantized.
    fn matrix_values(&self, weight: &str) -> Result<(Vec<f32>, [usize; 2]), LoadError> {
        match self.quantization {
            Some(q) => {
                let (key, values, scales, rows, cols) = self.quantized(weight, q.format)?;
                let w = dequantize(&key, values.data(), scales.data(), rows, cols, q.format)?;
                Ok((w, [rows, cols]))
            }
            None => {
                let (values, shape) = self.values(weight)?;
                Ok((values, [shape[0], shape[1]]))
            }
        }
    }

    /// The matrix stored under `weight` (`[rows, cols]` in PyTorch's layout): on a GPU a
    /// quantized one's bytes go to the device as they are.
    fn matrix(&self, weight: &str) -> Result<Tensor<2>, LoadError> {
        match self.quantization {
            Some(q) if !self.expand => {
                let (key, values, scales, rows, cols) = self.quantized(weight, q.format)?;
                let t = quantized_tensor(
                    &key,
                    values.data(),
                    scales.data(),
                    rows,
                    cols,
                    q.format,
                    self.device,
                )?;
                Ok(t)
            }
            _ => {
                let (values, shape) = self.matrix_values(weight)?;
                Ok(Tensor::from_data(
                    TensorData::new(values, shape),
                    self.device,
                ))
            }
        }
    }

    fn values(&self, key: &str) -> Result<(Vec<f32>, Vec<usize>), LoadError> {
        let view = self.view(key)?;
        Ok((decode(key, &view)?, view.shape().to_vec()))
    }

    fn vector(&self, key: &str) -> Result<Tensor<1>, LoadError> {
        let (values, _) = self.values(key)?;
        let n = values.len();
        Ok(Tensor::from_data(TensorData::new(values, [n]), self.device))
    }

    fn norm(&self, key: &str, eps: f64) -> Result<RmsNorm, LoadError> {
        Ok(RmsNorm {
            weight: Param::from_tensor(self.vector(key)?),
            eps,
        })
    }

    /// PyTorch's `[out, in]` weight (and bias) as burn's `[in, out]` linear layer.
    fn linear(&self, weight: &str, bias: Option<&str>) -> Result<Linear, LoadError> {
        let weight = match self.quantization {
            // Transposed as a view: the blocks run along the input axis either way.
            Some(_) if !self.expand => self.matrix(weight)?.transpose(),
            _ => {
                let (values, [rows, cols]) = self.matrix_values(weight)?;
                torch_weight(values, cols, rows, self.device)
            }
        };
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias: bias
                .map(|key| self.vector(key).map(Param::from_tensor))
                .transpose()?,
        })
    }
}

/// The part of a network one stage of loading builds (a transformer's [`Assembly`], a DiT's
/// [`super::load::DitAssembly`]): the embedding, each block, then what follows the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The token embedding (the head too, when tied).
    Embedding,
    /// Block `i`.
    Block(usize),
    /// What follows the blocks: the final norm and the head.
    Top,
}

impl Stage {
    /// The stage after this one in a network of `blocks` blocks (the last is [`Stage::Top`]).
    pub fn next(self, blocks: usize) -> Stage {
        match self {
            Stage::Embedding if blocks > 0 => Stage::Block(0),
            Stage::Block(i) if i + 1 < blocks => Stage::Block(i + 1),
            _ => Stage::Top,
        }
    }
}

/// A network being built a [`Stage`] at a time, each from its own tensors: a loader that cannot
/// hold the whole checkpoint fetches the next stage's [`Assembly::keys`], builds it, and drops
/// those bytes before the next (the page does, from Cache Storage);
/// [`load_transformer`] builds every stage from the checkpoint in memory.
pub struct Assembly {
    config: TransformerConfig,
    device: Device,
    /// Whether quantized matrices are expanded to f32 at load (the CPU backend, see
    /// [`super::quant`]) rather than kept quantized on the device.
    expand: bool,
    stage: Stage,
    embedding: Option<Tensor<2>>,
    blocks: Vec<DecoderBlock>,
}

impl Assembly {
    /// Starts building the network `config` describes on `device`, after checking the
    /// checkpoint's `header` against it both ways ([`check_header`]): no tensor is read before
    /// every tensor is known to be where the config puts it.
    pub fn new(
        config: &TransformerConfig,
        header: &dyn TensorSource,
        device: &Device,
    ) -> Result<Self, LoadError> {
        check_header(config, header)?;
        Ok(Self {
            config: config.clone(),
            device: device.clone(),
            expand: crate::backend::is_host(device),
            stage: Stage::Embedding,
            embedding: None,
            blocks: Vec::with_capacity(config.num_hidden_layers),
        })
    }

    /// The keys to fetch for the next stage.
    pub fn keys(&self) -> Vec<String> {
        self.config.stage_keys(self.stage)
    }

    /// Builds the next stage from `source` (which holds at least its [`Assembly::keys`]).
    pub fn build(
        mut self,
        source: &dyn TensorBytes,
    ) -> Result<Assembled<Self, Transformer>, LoadError> {
        let config = &self.config;
        let r = Reader {
            source,
            device: &self.device,
            quantization: config.quantization,
            expand: self.expand,
        };
        let arch = config.architecture;
        let eps = config.rms_norm_eps;
        match self.stage {
            Stage::Embedding => {
                self.embedding = Some(r.matrix(&arch.key(Key::Embedding))?);
            }
            Stage::Block(layer) => {
                let linear = |projection, bias: bool| {
                    let key = |bias| {
                        arch.key(Key::Linear {
                            layer,
                            projection,
                            bias,
                        })
                    };
                    r.linear(&key(false), bias.then(|| key(true)).as_deref())
                };
                let norm = |norm| r.norm(&arch.key(Key::Norm { layer, norm }), eps);
                let qkv = config.qkv_bias;
                let block = DecoderBlock {
                    attention_norm: norm(BlockNorm::Attention)?,
                    q_proj: linear(Projection::Query, qkv)?,
                    k_proj: linear(Projection::Key, qkv)?,
                    v_proj: linear(Projection::Value, qkv)?,
                    o_proj: linear(Projection::Output, false)?,
                    q_norm: config.qk_norm.then(|| norm(BlockNorm::Query)).transpose()?,
                    k_norm: config.qk_norm.then(|| norm(BlockNorm::Key)).transpose()?,
                    mlp_norm: norm(BlockNorm::Mlp)?,
                    gate_proj: linear(Projection::Gate, false)?,
                    up_proj: linear(Projection::Up, false)?,
                    down_proj: linear(Projection::Down, false)?,
                    heads: config.num_attention_heads,
                    kv_heads: config.num_key_value_heads,
                    head_dim: config.head_dim,
                };
                self.blocks.push(block);
            }
            Stage::Top => {
                let norm = r.norm(&arch.key(Key::FinalNorm), eps)?;
                let head = (!config.tie_word_embeddings)
                    .then(|| r.linear(&arch.key(Key::Head), None))
                    .transpose()?;
                // Built first of all: always there by now.
                let embedding = self.embedding.ok_or_else(|| LoadError::MissingKey {
                    key: arch.key(Key::Embedding),
                })?;
                return Ok(Assembled::Done(Transformer {
                    embedding: Param::from_tensor(embedding),
                    blocks: self.blocks,
                    norm,
                    head,
                    rope_theta: config.rope_theta,
                    shift_logits: config.shift_logits,
                }));
            }
        }
        self.stage = self.stage.next(config.num_hidden_layers);
        Ok(Assembled::More(self))
    }
}

/// Builds the network `config` describes from its checkpoint's shards, on `device`, after
/// [`check_header`] has found every tensor where the config puts it.
pub fn load_transformer(
    config: &TransformerConfig,
    shards: &[Vec<u8>],
    device: &Device,
) -> Result<Transformer, LoadError> {
    let shards = Shards::new(shards)?;
    build_every_stage(Assembly::new(config, &shards, device)?, |a| {
        a.build(&shards)
    })
}

/// The checkpoint of `config` (unquantized, in `shards`) with every matrix block-quantized as
/// `format` ([`super::quant`]'s layout), as one safetensors file; norms and biases are copied as
/// they are stored. Each matrix is expanded to f32 one at a time; the shards and the output
/// (twice, while it is serialised) are held whole. `config` gets its `quantization` set by the
/// caller, in config.json.
pub fn quantize_checkpoint(
    config: &TransformerConfig,
    shards: &[Vec<u8>],
    format: QuantFormat,
) -> Result<Vec<u8>, LoadError> {
    let shards = Shards::new(shards)?;
    check_header(config, &shards)?;
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for logical in config.layout() {
        let view = shards.get(&logical.name)?;
        match logical.matrix() {
            Some((rows, cols)) => {
                let values = decode(&logical.name, &view)?;
                let q = quantize_matrix(&logical.name, &values, rows, cols, format)?;
                let (values_key, scales_key) = quantized_keys(&logical.name);
                let (values_shape, scales_shape) = quantized_shapes(format, rows, cols);
                tensors.push((values_key, format.dtype(), values_shape.to_vec(), q.values));
                tensors.push((scales_key, Dtype::F16, scales_shape.to_vec(), q.scales));
            }
            None => tensors.push((
                logical.name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )),
        }
    }
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// How far [`random_checkpoint`]'s norm scales stray from one (uniformly, either way).
const RANDOM_NORM_JITTER: f64 = 0.1;

/// A checkpoint of `config` with random weights and the architecture's key names, as one
/// safetensors file (benchmarks, `unmask init --preset`, tests): matrices and biases uniform
/// with the variance of N(0, 1/fan_in), so activations keep their scale through the blocks, the
/// embedding with unit variance, norm scales 1 ± 0.1 so that they matter. Deterministic in
/// `seed`; stored as `dtype` (F32, F16 or BF16).
pub fn random_checkpoint(
    config: &TransformerConfig,
    seed: u64,
    dtype: Dtype,
) -> Result<Vec<u8>, LoadError> {
    let tensors = fill_layout(config.layout(), seed, |slot, rng| {
        let u = rng.uniform() - 0.5;
        match slot.role {
            TensorRole::Norm => (1.0 + u * 2.0 * RANDOM_NORM_JITTER) as f32,
            TensorRole::Embedding => (u * 12f64.sqrt()) as f32,
            TensorRole::Weight { fan_in } | TensorRole::Bias { fan_in } => {
                (u * (12.0 / fan_in as f64).sqrt()) as f32
            }
            // A logical layout holds no stored parts.
            TensorRole::Quantized(_) => 0.0,
        }
    });
    write_safetensors_under(&tensors, "", dtype)
}
