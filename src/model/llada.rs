//! LLaDA (Nie et al. 2025, arXiv:2502.09992; `GSAI-ML/LLaDA-8B-Instruct`): a LLaMA-style network
//! under OLMo's names, bidirectional, the mask 126336.
//!
//! config.json is OLMo's `ModelConfig` as dllm's `dllm/pipelines/llada/models/configuration_llada.py`
//! writes it (`d_model`, `n_heads`, `n_kv_heads`, `n_layers`, `mlp_hidden_size`, `rope_theta`,
//! `weight_tying`, `embedding_size`, …); only the LLaMA block of `modeling_llada.py`
//! (`LLaDALlamaBlock`: RMSNorm, SwiGLU with `ff_proj` under SiLU times `up_proj`, rotary, no
//! biases) is implemented, and every flag that would change the forward pass is checked. Keys:
//!
//! | key | shape | |
//! |---|---|---|
//! | `model.transformer.wte.weight` | `[E, d]` | E = `embedding_size` (≥ `vocab_size`) |
//! | `model.transformer.blocks.{i}.attn_norm.weight` | `[d]` | before attention |
//! | `model.transformer.blocks.{i}.{q,k,v}_proj.weight` | `[h·Dh, d]`, `[kv·Dh, d]` | |
//! | `model.transformer.blocks.{i}.attn_out.weight` | `[d, h·Dh]` | |
//! | `model.transformer.blocks.{i}.ff_norm.weight` | `[d]` | before the MLP |
//! | `model.transformer.blocks.{i}.{ff_proj,up_proj}.weight` | `[m, d]` | gate, linear branch |
//! | `model.transformer.blocks.{i}.ff_out.weight` | `[d, m]` | |
//! | `model.transformer.ln_f.weight` | `[d]` | |
//! | `model.transformer.ff_out.weight` | `[E, d]` | absent when `weight_tying` |

use serde::Deserialize;

use super::transformer::{Architecture, BlockNorm, Key, Projection, TransformerConfig};
use crate::config::ConfigError;

/// The checkpoint key of `tensor` in OLMo's names.
pub fn key(tensor: Key) -> String {
    const ROOT: &str = "model.transformer";
    match tensor {
        Key::Embedding => format!("{ROOT}.wte.weight"),
        Key::FinalNorm => format!("{ROOT}.ln_f.weight"),
        Key::Head => format!("{ROOT}.ff_out.weight"),
        Key::Norm { layer, norm } => {
            let name = match norm {
                BlockNorm::Attention => "attn_norm",
                BlockNorm::Mlp => "ff_norm",
                BlockNorm::Query => "q_norm",
                BlockNorm::Key => "k_norm",
            };
            format!("{ROOT}.blocks.{layer}.{name}.weight")
        }
        Key::Linear {
            layer,
            projection,
            bias,
        } => {
            let name = match projection {
                Projection::Query => "q_proj",
                Projection::Key => "k_proj",
                Projection::Value => "v_proj",
                Projection::Output => "attn_out",
                Projection::Gate => "ff_proj",
                Projection::Up => "up_proj",
                Projection::Down => "ff_out",
            };
            let part = if bias { "bias" } else { "weight" };
            format!("{ROOT}.blocks.{layer}.{name}.{part}")
        }
    }
}

/// OLMo's defaults (`ModelConfig` in `configuration_llada.py`), which `LLaDAConfig` starts from
/// before config.json's fields: an absent field means these, not LLaDA's values. The published
/// config.json spells every field out, so only a hand-written one can meet them — and then it
/// describes OLMo's GPT-2-sized network (LayerNorm, sequential block, no rotary), which the
/// checks below refuse by name.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;
const DEFAULT_RMS_NORM_EPS: f64 = 1e-5;
const DEFAULT_MLP_RATIO: usize = 4;
const DEFAULT_MAX_SEQUENCE_LENGTH: usize = 1024;
/// GPT-2's 50,257 tokens padded to a multiple of 128.
const DEFAULT_EMBEDDING_SIZE: usize = 50_304;
const DEFAULT_ACTIVATION: &str = "swiglu";
const DEFAULT_BLOCK_TYPE: &str = "sequential";
const DEFAULT_LAYER_NORM_TYPE: &str = "default";

/// LLaDA's config.json, with OLMo's field names and OLMo's defaults.
#[derive(Debug, Deserialize)]
struct LladaJson {
    d_model: usize,
    n_heads: usize,
    #[serde(default)]
    n_kv_heads: Option<usize>,
    /// OLMo's older spelling of one key/value head (`effective_n_kv_heads`).
    #[serde(default)]
    multi_query_attention: Option<bool>,
    n_layers: usize,
    #[serde(default)]
    mlp_ratio: Option<usize>,
    #[serde(default)]
    mlp_hidden_size: Option<usize>,
    #[serde(default)]
    max_sequence_length: Option<usize>,
    vocab_size: usize,
    /// Absent: [`DEFAULT_EMBEDDING_SIZE`]; `null`: `vocab_size` (`embedding_size or vocab_size`
    /// in `modeling_llada.py`).
    #[serde(default, deserialize_with = "crate::config::nullable")]
    embedding_size: Option<Option<usize>>,
    #[serde(default = "crate::config::default_true")]
    weight_tying: bool,
    #[serde(default)]
    rope: bool,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rms_norm_eps: Option<f64>,
    #[serde(default)]
    include_bias: bool,
    #[serde(default)]
    include_qkv_bias: Option<bool>,
    /// `None`: follows `include_bias`.
    #[serde(default)]
    bias_for_layer_norm: Option<bool>,
    #[serde(default)]
    alibi: bool,
    #[serde(default)]
    attention_layer_norm: bool,
    #[serde(default)]
    input_emb_norm: bool,
    #[serde(default)]
    scale_logits: bool,
    #[serde(default)]
    clip_qkv: Option<f64>,
    #[serde(default = "crate::config::default_true")]
    layer_norm_with_affine: bool,
    #[serde(default)]
    block_type: Option<String>,
    #[serde(default)]
    layer_norm_type: Option<String>,
    #[serde(default)]
    activation_type: Option<String>,
    /// OLMo's default (50256, GPT-2's end of text) belongs to no LLaDA: absent, the tokenizer
    /// names the mask (`<|mdm_mask|>`, 126336 in the published models).
    #[serde(default)]
    mask_token_id: Option<u32>,
    /// Unmask's weight-only quantization (`unmask quantize`), absent in published folders.
    #[serde(default)]
    quantization: Option<super::quant::Quantization>,
}

impl LladaJson {
    /// `effective_n_kv_heads` of `configuration_llada.py`.
    fn kv_heads(&self) -> Result<usize, ConfigError> {
        match (self.n_kv_heads, self.multi_query_attention) {
            (None, Some(true)) => Ok(1),
            (None, _) => Ok(self.n_heads),
            (Some(n), None) => Ok(n),
            (Some(n), Some(mqa)) => {
                let implied = if mqa { 1 } else { self.n_heads };
                if n == implied {
                    Ok(n)
                } else {
                    Err(ConfigError::Unsupported {
                        field: "multi_query_attention",
                        value: mqa.to_string(),
                        hint: "it contradicts n_kv_heads: set one of the two (null for the other)",
                    })
                }
            }
        }
    }

    /// Rows of the embedding and of the head.
    fn embedding_size(&self) -> usize {
        match self.embedding_size {
            None => DEFAULT_EMBEDDING_SIZE,
            Some(None) => self.vocab_size,
            Some(Some(rows)) => rows,
        }
    }
}

/// Reads LLaDA's config.json.
pub fn config(bytes: &[u8]) -> Result<TransformerConfig, ConfigError> {
    let j: LladaJson = serde_json::from_slice(bytes)?;
    let unsupported = |field, value: String, hint| ConfigError::Unsupported { field, value, hint };
    let flags = [
        (
            "alibi",
            j.alibi,
            "ALiBi is not implemented: LLaDA uses rotary positions",
        ),
        (
            "include_bias",
            j.include_bias,
            "biases are not implemented: LLaDA has none",
        ),
        (
            "bias_for_layer_norm",
            j.bias_for_layer_norm.unwrap_or(j.include_bias),
            "norm biases are not implemented: LLaDA's RMSNorms have none",
        ),
        (
            "include_qkv_bias",
            j.include_qkv_bias.unwrap_or(false),
            "q/k/v biases are not implemented for LLaDA: it has none",
        ),
        (
            "attention_layer_norm",
            j.attention_layer_norm,
            "q/k layer norms are not implemented: LLaDA has none",
        ),
        (
            "input_emb_norm",
            j.input_emb_norm,
            "an embedding norm is not implemented",
        ),
        (
            "scale_logits",
            j.scale_logits,
            "scaled logits are not implemented",
        ),
        (
            "rope",
            !j.rope,
            "only rotary positions are implemented (rope: true)",
        ),
        (
            "layer_norm_with_affine",
            !j.layer_norm_with_affine,
            "only norms with a learned scale are implemented",
        ),
    ];
    for (field, wrong, hint) in flags {
        if wrong {
            let value = if field == "rope" || field == "layer_norm_with_affine" {
                "false"
            } else {
                "true"
            };
            return Err(unsupported(field, value.into(), hint));
        }
    }
    if let Some(clip) = j.clip_qkv {
        return Err(unsupported(
            "clip_qkv",
            clip.to_string(),
            "q/k/v clipping is not implemented: leave it null",
        ));
    }
    let named = [
        (
            "block_type",
            j.block_type.as_deref(),
            DEFAULT_BLOCK_TYPE,
            "llama",
            "only LLaDA's llama block is implemented",
        ),
        (
            "layer_norm_type",
            j.layer_norm_type.as_deref(),
            DEFAULT_LAYER_NORM_TYPE,
            "rms",
            "only RMSNorm is implemented",
        ),
        (
            "activation_type",
            j.activation_type.as_deref(),
            DEFAULT_ACTIVATION,
            "silu",
            "the llama block's MLP is silu(ff_proj) · up_proj (silu)",
        ),
    ];
    for (field, value, default, supported, hint) in named {
        match value {
            Some(v) if v == supported => {}
            Some(v) => return Err(unsupported(field, v.to_owned(), hint)),
            None => {
                return Err(unsupported(
                    field,
                    format!("{default} (OLMo's default: config.json leaves it out)"),
                    hint,
                ));
            }
        }
    }
    let embedding_size = j.embedding_size();
    if embedding_size < j.vocab_size {
        return Err(unsupported(
            "embedding_size",
            embedding_size.to_string(),
            "it must be at least vocab_size (the embedding is the vocabulary, padded)",
        ));
    }
    let heads = j.n_heads.max(1);
    if !j.d_model.is_multiple_of(heads) {
        return Err(unsupported(
            "n_heads",
            j.n_heads.to_string(),
            "it must divide d_model",
        ));
    }
    let config = TransformerConfig {
        architecture: Architecture::Llada,
        vocab_size: embedding_size,
        hidden_size: j.d_model,
        intermediate_size: j.mlp_hidden_size.unwrap_or(
            j.mlp_ratio
                .unwrap_or(DEFAULT_MLP_RATIO)
                .saturating_mul(j.d_model),
        ),
        num_hidden_layers: j.n_layers,
        num_attention_heads: j.n_heads,
        num_key_value_heads: j.kv_heads()?,
        head_dim: j.d_model / heads,
        rope_theta: j.rope_theta.unwrap_or(DEFAULT_ROPE_THETA),
        rms_norm_eps: j.rms_norm_eps.unwrap_or(DEFAULT_RMS_NORM_EPS),
        qkv_bias: false,
        qk_norm: false,
        tie_word_embeddings: j.weight_tying,
        shift_logits: false,
        max_position_embeddings: j.max_sequence_length.unwrap_or(DEFAULT_MAX_SEQUENCE_LENGTH),
        block_size: None,
        mask_token_id: j.mask_token_id,
        quantization: j.quantization,
    };
    config.validate()?;
    Ok(config)
}
