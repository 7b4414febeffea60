//! Qwen's layout, as three diffusion LMs publish it: dllm's A2D conversions of Qwen3
//! (`a2d-qwen3`, e.g. `dllm-hub/Qwen3-0.6B-diffusion-mdlm-v0.1` and its `-bd3lm` sibling) and of
//! Qwen2 / Qwen2.5 (`a2d-qwen2`), and Dream (`Dream`, `Dream-org/Dream-v0-Instruct-7B`).
//!
//! config.json uses transformers' `Qwen3Config` / `Qwen2Config` field names, with transformers'
//! defaults where a field is absent (4.57 `configuration_qwen3.py`, `configuration_qwen2.py`);
//! dllm's `dllm/pipelines/a2d/models/qwen3/` and `dllm/pipelines/dream/models/configuration_dream.py`
//! add `model_type`, the mask id and the block size. Keys are transformers' own:
//!
//! | key | shape | |
//! |---|---|---|
//! | `model.embed_tokens.weight` | `[V, d]` | |
//! | `model.layers.{i}.input_layernorm.weight` | `[d]` | before attention |
//! | `model.layers.{i}.self_attn.{q,k,v}_proj.{weight,bias}` | `[h·Dh, d]`, `[kv·Dh, d]` | biases in Qwen2 and Dream |
//! | `model.layers.{i}.self_attn.o_proj.weight` | `[d, h·Dh]` | |
//! | `model.layers.{i}.self_attn.{q,k}_norm.weight` | `[Dh]` | Qwen3 |
//! | `model.layers.{i}.post_attention_layernorm.weight` | `[d]` | before the MLP |
//! | `model.layers.{i}.mlp.{gate,up,down}_proj.weight` | `[m, d]`, `[m, d]`, `[d, m]` | |
//! | `model.norm.weight` | `[d]` | |
//! | `lm_head.weight` | `[V, d]` | absent when `tie_word_embeddings` |

use serde::Deserialize;

use super::transformer::{Architecture, BlockNorm, Key, Projection, TransformerConfig};
use crate::config::ConfigError;

/// The checkpoint key of `tensor` in transformers' Qwen names.
pub fn key(tensor: Key) -> String {
    match tensor {
        Key::Embedding => "model.embed_tokens.weight".into(),
        Key::FinalNorm => "model.norm.weight".into(),
        Key::Head => "lm_head.weight".into(),
        Key::Norm { layer, norm } => {
            let name = match norm {
                BlockNorm::Attention => "input_layernorm",
                BlockNorm::Mlp => "post_attention_layernorm",
                BlockNorm::Query => "self_attn.q_norm",
                BlockNorm::Key => "self_attn.k_norm",
            };
            format!("model.layers.{layer}.{name}.weight")
        }
        Key::Linear {
            layer,
            projection,
            bias,
        } => {
            let name = match projection {
                Projection::Query => "self_attn.q_proj",
                Projection::Key => "self_attn.k_proj",
                Projection::Value => "self_attn.v_proj",
                Projection::Output => "self_attn.o_proj",
                Projection::Gate => "mlp.gate_proj",
                Projection::Up => "mlp.up_proj",
                Projection::Down => "mlp.down_proj",
            };
            let part = if bias { "bias" } else { "weight" };
            format!("model.layers.{layer}.{name}.{part}")
        }
    }
}

/// transformers' defaults (`Qwen3Config.__init__`).
const DEFAULT_ROPE_THETA: f64 = 10_000.0;
const DEFAULT_RMS_NORM_EPS: f64 = 1e-6;
const DEFAULT_MAX_POSITIONS: usize = 32_768;
/// Qwen3's `head_dim` when config.json leaves it out.
const QWEN3_DEFAULT_HEAD_DIM: usize = 128;

/// A Qwen-layout config.json, with transformers' field names.
#[derive(Debug, Deserialize)]
struct QwenJson {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default)]
    num_key_value_heads: Option<usize>,
    #[serde(default)]
    head_dim: Option<usize>,
    #[serde(default)]
    max_position_embeddings: Option<usize>,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rms_norm_eps: Option<f64>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    use_sliding_window: bool,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    mask_token_id: Option<u32>,
    /// dllm's BD3-LM conversions: tokens per block.
    #[serde(default)]
    block_size: Option<usize>,
    /// Unmask's weight-only quantization (`unmask quantize`), absent in published folders.
    #[serde(default)]
    quantization: Option<super::quant::Quantization>,
}

/// Reads a Qwen-layout config.json as `architecture` (one of the three this file serves).
pub fn config(architecture: Architecture, bytes: &[u8]) -> Result<TransformerConfig, ConfigError> {
    let j: QwenJson = serde_json::from_slice(bytes)?;
    let unsupported = |field, value: String, hint| ConfigError::Unsupported { field, value, hint };
    if j.use_sliding_window {
        return Err(unsupported(
            "use_sliding_window",
            "true".into(),
            "sliding-window attention is not implemented; every published diffusion LM sets it false",
        ));
    }
    if let Some(scaling) = j.rope_scaling.as_ref().filter(|v| !v.is_null()) {
        return Err(unsupported(
            "rope_scaling",
            scaling.to_string(),
            "only the default rotary embedding is implemented (null)",
        ));
    }
    if let Some(act) = j.hidden_act.as_deref().filter(|a| *a != "silu") {
        return Err(unsupported(
            "hidden_act",
            act.to_owned(),
            "the MLP is SwiGLU: silu",
        ));
    }
    let qwen3 = architecture == Architecture::A2dQwen3;
    if qwen3 && j.attention_bias {
        return Err(unsupported(
            "attention_bias",
            "true".into(),
            "Qwen3 with attention biases (o_proj's too) is not implemented; the published models have none",
        ));
    }
    if architecture == Architecture::Dream && j.block_size.is_some() {
        return Err(unsupported(
            "block_size",
            format!("{:?}", j.block_size),
            "Dream is bidirectional: leave block_size out",
        ));
    }
    let heads = j.num_attention_heads.max(1);
    let head_dim = match (j.head_dim, qwen3) {
        (Some(h), _) => h,
        (None, true) => QWEN3_DEFAULT_HEAD_DIM,
        (None, false) => j.hidden_size / heads,
    };
    let config = TransformerConfig {
        architecture,
        vocab_size: j.vocab_size,
        hidden_size: j.hidden_size,
        intermediate_size: j.intermediate_size,
        num_hidden_layers: j.num_hidden_layers,
        num_attention_heads: j.num_attention_heads,
        num_key_value_heads: j.num_key_value_heads.unwrap_or(j.num_attention_heads),
        head_dim,
        rope_theta: j.rope_theta.unwrap_or(DEFAULT_ROPE_THETA),
        rms_norm_eps: j.rms_norm_eps.unwrap_or(DEFAULT_RMS_NORM_EPS),
        // Qwen2 (and Dream) hard-code biases on q, k and v; Qwen3 has none.
        qkv_bias: !qwen3,
        qk_norm: qwen3,
        tie_word_embeddings: j.tie_word_embeddings,
        shift_logits: architecture == Architecture::Dream,
        max_position_embeddings: j.max_position_embeddings.unwrap_or(DEFAULT_MAX_POSITIONS),
        block_size: j.block_size,
        mask_token_id: j.mask_token_id,
        quantization: j.quantization,
    };
    // After `validate`, which bounds both factors: the product cannot overflow.
    config.validate()?;
    if !qwen3 && j.hidden_size != heads * head_dim {
        return Err(unsupported(
            "head_dim",
            head_dim.to_string(),
            "Qwen2 and Dream need hidden_size = num_attention_heads · head_dim",
        ));
    }
    Ok(config)
}
