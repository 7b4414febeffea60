//! A llama.cpp GGUF file of a diffusion LM turned into the model folder Unmask reads
//! (`unmask import`): `config.json` in the architecture's own format, `model.safetensors` with
//! transformers' key names, `tokenizer.json` rebuilt from the file's vocabulary and
//! `tokenizer_config.json` with its chat template and special tokens.
//!
//! What llama.cpp's converter (`convert_hf_to_gguf.py`: `LLaDAModel`, `DreamModel`,
//! `Qwen2Model`, `Qwen3Model`; names from gguf-py's `tensor_mapping.py`) does is undone here:
//!
//! - Tensor names: `token_embd`, `blk.{i}.attn_{q,k,v,output}`, `attn_{q,k}_norm`, `attn_norm`,
//!   `ffn_norm`, `ffn_{gate,up,down}`, `output_norm`, `output` (absent when the head is tied)
//!   map onto [`Key`]s, which each architecture names ([`Architecture::key`]). LLaDA's `ff_proj`
//!   (the branch under SiLU) is `ffn_gate`, its `up_proj` `ffn_up`.
//! - LLaDA's q and k rows are permuted for llama.cpp's interleaved rotary (`permute` in the
//!   converter: within each head, row 2i + j comes from row j·Dh/2 + i); they are put back in
//!   transformers' halves order. Qwen2, Qwen3 and Dream use the halves order in llama.cpp too
//!   (NEOX rotary) and are not permuted.
//! - Hyperparameters come from `{arch}.block_count`, `embedding_length`, `feed_forward_length`,
//!   `attention.head_count(_kv)`, `attention.key_length` (else `embedding_length / head_count`,
//!   llama.cpp's default), `rope.freq_base`, `attention.layer_norm_rms_epsilon`,
//!   `context_length`; the vocabulary's rows from `token_embd`'s shape.
//! - The mask token is `tokenizer.ggml.mask_token_id`, else the vocabulary's `<|mask|>` /
//!   `<|mdm_mask|>`. A `qwen2` / `qwen3` file is read as dllm's A2D conversion only when it has
//!   one: without a mask token it is an autoregressive Qwen, which Unmask does not run.
//!
//! Tensors keep their precision: F32, F16 and BF16 are copied as they are; Q8_0 and Q4_0
//! matrices become Unmask's own block quantization ([`super::quant`], the same blocks of 32 with
//! an f16 scale: Q8_0's bytes split into levels and scales; Q4_0's nibbles reordered and their
//! offset of 8 removed). A file mixing the two is stored as q8 (a Q4_0 block widens to 8 bits
//! exactly); a float matrix among quantized ones is quantized by [`quantize_matrix`], and the
//! import says so. So is a Q4_0 embedding: burn gathers rows of a quantized tensor by
//! quantizing them again with 4-bit levels of ±7, which Q4_0's −8 does not survive, so the
//! embedding gets Unmask's own levels once, at import, rather than different ones per backend.
//! Other ggml types (the K-quants, …) are refused by name.

use std::collections::HashMap;

use safetensors::Dtype;
use serde_json::{Value as Json, json};
use thiserror::Error;

use super::gguf::{Blocks, GgmlType, Gguf, GgufError, TensorInfo, Value, decode, split_blocks};
use super::load::TensorSlot;
use super::quant::{
    QuantError, QuantFormat, Quantization, pack_levels, quantize_matrix, quantized_keys,
    quantized_shapes,
};
use super::transformer::{Architecture, BlockNorm, Key, Projection};
use crate::bundle::TextConfig;
use crate::config::ConfigError;

/// What can keep a GGUF file from becoming a model folder.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file itself is unreadable.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// An architecture Unmask does not run.
    #[error(
        "general.architecture is `{found}`; Unmask imports the diffusion LMs llada, dream and dllm's A2D conversions of qwen3 and qwen2{hint}"
    )]
    Architecture {
        /// The file's architecture.
        found: String,
        /// More about it, when something can be said (`"; llada-moe is a mixture of experts"`).
        hint: &'static str,
    },
    /// A Qwen file with no mask token: an autoregressive model.
    #[error(
        "this {arch} file has no mask token (no tokenizer.ggml.mask_token_id, no <|mask|> in its vocabulary): it is an autoregressive Qwen, not a diffusion LM; Unmask runs dllm's A2D conversions, whose tokenizer adds <|mask|>"
    )]
    Autoregressive {
        /// `qwen3` or `qwen2`.
        arch: String,
    },
    /// A metadata entry that describes something the network does not do.
    #[error("metadata `{key}` = {value}: {hint}")]
    Unsupported {
        /// The entry.
        key: String,
        /// Its value.
        value: String,
        /// What is supported.
        hint: &'static str,
    },
    /// The config built from the metadata is refused.
    #[error("the file's hyperparameters make an invalid config.json: {0}")]
    Config(#[from] ConfigError),
    /// A tensor the architecture needs is absent.
    #[error("the file has no tensor `{name}`, which a {arch} model of this shape needs")]
    MissingTensor {
        /// The GGUF name.
        name: String,
        /// The architecture.
        arch: &'static str,
    },
    /// A tensor the architecture does not have.
    #[error("the file holds `{name}`, which no {arch} model of this shape has")]
    UnexpectedTensor {
        /// The GGUF name.
        name: String,
        /// The architecture.
        arch: &'static str,
    },
    /// A tensor's shape disagrees with the metadata.
    #[error("tensor `{name}` has shape {found:?}, but the metadata implies {expected:?}")]
    Shape {
        /// The GGUF name.
        name: String,
        /// From the metadata (PyTorch's order).
        expected: Vec<usize>,
        /// In the file (PyTorch's order).
        found: Vec<usize>,
    },
    /// A vector (norm, bias) stored quantized.
    #[error("tensor `{name}` is a vector stored as {ty}; norms and biases are read as floats")]
    QuantizedVector {
        /// The GGUF name.
        name: String,
        /// Its type.
        ty: &'static str,
    },
    /// The vocabulary cannot be rebuilt as a tokenizer.json.
    #[error("{why}; pass the model's own tokenizer.json with --tokenizer")]
    Tokenizer {
        /// What is wrong.
        why: String,
    },
    /// A matrix that could not be quantized.
    #[error(transparent)]
    Quant(#[from] QuantError),
    /// The weights could not be written.
    #[error("cannot write model.safetensors: {0}")]
    Write(String),
}

/// What the caller may add to what the file says.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Tokens per block for a block-causal (`-bd3lm`) conversion; GGUF has no key for it.
    pub block_size: Option<usize>,
    /// Whether to rebuild `tokenizer.json` from the file's vocabulary (false: the caller
    /// brings the model's own).
    pub rebuild_tokenizer: bool,
}

/// A model folder's files, made from a GGUF file.
#[derive(Debug)]
pub struct Imported {
    /// The architecture.
    pub architecture: Architecture,
    /// `config.json`.
    pub config: Vec<u8>,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
    /// `tokenizer.json`, when rebuilt.
    pub tokenizer: Option<Vec<u8>>,
    /// `tokenizer_config.json`.
    pub tokenizer_config: Vec<u8>,
    /// How the matrices are stored.
    pub quantization: Option<QuantFormat>,
    /// What the import changed beyond the layout (a matrix quantized here, …), one line each.
    pub notes: Vec<String>,
}

/// The mask tokens the published diffusion LMs' vocabularies hold (A2D and Dream; LLaDA).
const MASK_TOKENS: [&str; 2] = ["<|mask|>", "<|mdm_mask|>"];

/// ggml's `tokenizer.ggml.token_type` values that are added tokens.
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// The pre-tokenizer regex of llama.cpp's `qwen2` label (Qwen2's `tokenizer.json`; one digit
/// at a time).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The same with up to three digits together (`llama-bpe`: LLaMA 3's).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The file's architecture, as Unmask names it.
fn architecture(g: &Gguf) -> Result<(Architecture, String), ImportError> {
    let arch = g
        .str("general.architecture")?
        .ok_or_else(|| GgufError::MissingKey {
            key: "general.architecture".into(),
        })?
        .to_owned();
    let architecture = match arch.as_str() {
        "llada" => Architecture::Llada,
        "dream" => Architecture::Dream,
        "qwen3" => Architecture::A2dQwen3,
        "qwen2" => Architecture::A2dQwen2,
        other => {
            let hint = match other {
                "llada-moe" => "; llada-moe is a mixture of experts, which is not implemented",
                "llama" | "qwen2moe" | "qwen3moe" | "gemma" | "phi3" => {
                    "; it is an autoregressive model"
                }
                _ => "",
            };
            return Err(ImportError::Architecture {
                found: other.to_owned(),
                hint,
            });
        }
    };
    Ok((architecture, arch))
}

/// The array `key` of the metadata, if present, each element read by `item` (which answers
/// what it found instead when the element is not what `expected` names).
fn array<'g, T>(
    g: &'g Gguf,
    key: &str,
    expected: &'static str,
    item: impl Fn(&'g Value) -> Result<T, &'static str>,
) -> Result<Option<Vec<T>>, GgufError> {
    let Some(v) = g.metadata.get(key) else {
        return Ok(None);
    };
    let wrong = |found| GgufError::KeyType {
        key: key.to_owned(),
        found,
        expected,
    };
    let Value::Array(items) = v else {
        return Err(wrong(v.kind()));
    };
    items
        .iter()
        .map(|i| item(i).map_err(wrong))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A string array of the metadata, if present.
fn strings<'g>(g: &'g Gguf, key: &str) -> Result<Option<Vec<&'g str>>, GgufError> {
    array(g, key, "an array of strings", |item| match item {
        Value::String(s) => Ok(s.as_str()),
        other => Err(other.kind()),
    })
}

/// An integer array of the metadata, if present.
fn integers(g: &Gguf, key: &str) -> Result<Option<Vec<i64>>, GgufError> {
    array(g, key, "an array of integers", |item| match *item {
        Value::Int(i) => Ok(i),
        Value::Uint(u) => i64::try_from(u).map_err(|_| "an integer beyond i64"),
        ref other => Err(other.kind()),
    })
}

/// An optional integer entry, as `usize`.
fn optional_usize(g: &Gguf, key: &str) -> Result<Option<usize>, GgufError> {
    match g.metadata.get(key) {
        None => Ok(None),
        Some(_) => {
            let v = g.u64(key)?;
            Ok(Some(usize::try_from(v).unwrap_or(usize::MAX)))
        }
    }
}

/// The Key a GGUF tensor name stands for.
fn key_of(name: &str) -> Option<Key> {
    match name {
        "token_embd.weight" => return Some(Key::Embedding),
        "output_norm.weight" => return Some(Key::FinalNorm),
        "output.weight" => return Some(Key::Head),
        _ => {}
    }
    let (layer, part) = name.strip_prefix("blk.")?.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (base, suffix) = part.rsplit_once('.')?;
    let bias = match suffix {
        "weight" => false,
        "bias" => true,
        _ => return None,
    };
    let norm = |norm| (!bias).then_some(Key::Norm { layer, norm });
    let linear = |projection| {
        Some(Key::Linear {
            layer,
            projection,
            bias,
        })
    };
    match base {
        "attn_norm" => norm(BlockNorm::Attention),
        "ffn_norm" => norm(BlockNorm::Mlp),
        "attn_q_norm" => norm(BlockNorm::Query),
        "attn_k_norm" => norm(BlockNorm::Key),
        "attn_q" => linear(Projection::Query),
        "attn_k" => linear(Projection::Key),
        "attn_v" => linear(Projection::Value),
        "attn_output" => linear(Projection::Output),
        "ffn_gate" => linear(Projection::Gate),
        "ffn_up" => linear(Projection::Up),
        "ffn_down" => linear(Projection::Down),
        _ => None,
    }
}

/// The GGUF name of `key` (for messages about a tensor the file lacks).
fn gguf_name(key: Key) -> String {
    match key {
        Key::Embedding => "token_embd.weight".into(),
        Key::FinalNorm => "output_norm.weight".into(),
        Key::Head => "output.weight".into(),
        Key::Norm { layer, norm } => {
            let base = match norm {
                BlockNorm::Attention => "attn_norm",
                BlockNorm::Mlp => "ffn_norm",
                BlockNorm::Query => "attn_q_norm",
                BlockNorm::Key => "attn_k_norm",
            };
            format!("blk.{layer}.{base}.weight")
        }
        Key::Linear {
            layer,
            projection,
            bias,
        } => {
            let base = match projection {
                Projection::Query => "attn_q",
                Projection::Key => "attn_k",
                Projection::Value => "attn_v",
                Projection::Output => "attn_output",
                Projection::Gate => "ffn_gate",
                Projection::Up => "ffn_up",
                Projection::Down => "ffn_down",
            };
            let part = if bias { "bias" } else { "weight" };
            format!("blk.{layer}.{base}.{part}")
        }
    }
}

/// The mask token's id: `tokenizer.ggml.mask_token_id`, else a mask token of the vocabulary.
fn mask_id(g: &Gguf, tokens: Option<&[&str]>) -> Result<Option<u32>, GgufError> {
    if g.metadata.contains_key("tokenizer.ggml.mask_token_id") {
        let id = g.u64("tokenizer.ggml.mask_token_id")?;
        return Ok(Some(u32::try_from(id).unwrap_or(u32::MAX)));
    }
    Ok(tokens.and_then(|tokens| {
        tokens
            .iter()
            .position(|t| MASK_TOKENS.contains(t))
            .map(|i| i as u32)
    }))
}

/// The hyperparameters, read once from the `{arch}.*` keys and the tensors.
struct Hyper {
    /// Blocks (`block_count`).
    layers: usize,
    /// Width of the residual stream (`embedding_length`).
    hidden: usize,
    /// Width of the MLP (`feed_forward_length`).
    mlp: usize,
    /// Query heads (`attention.head_count`).
    heads: usize,
    /// Key/value heads (`attention.head_count_kv`, else `heads`).
    kv_heads: usize,
    /// Size of a head (`attention.key_length`, else `hidden / heads`).
    head_dim: usize,
    /// `rope.freq_base`, when the file says.
    rope_theta: Option<f64>,
    /// `attention.layer_norm_rms_epsilon`, when the file says.
    rms_eps: Option<f64>,
    /// `context_length`, when the file says.
    context: Option<usize>,
    /// Rows of `token_embd`: the vocabulary, padded.
    rows: usize,
    /// Tokens of the vocabulary (LLaDA's `vocab_size`, else the token list's length).
    vocab: usize,
    /// Whether the head is the embedding (no `output.weight`).
    tied: bool,
    /// The mask token.
    mask: Option<u32>,
}

fn hyperparameters(
    g: &Gguf,
    arch: &str,
    architecture: Architecture,
    tokens: Option<&[&str]>,
) -> Result<Hyper, ImportError> {
    let key = |k: &str| format!("{arch}.{k}");
    let size = |k: &str| -> Result<usize, GgufError> {
        let v = g.u64(&key(k))?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    };
    for (k, hint) in [
        (
            "rope.scaling.type",
            "only the default rotary embedding is implemented",
        ),
        (
            "attention.sliding_window",
            "sliding-window attention is not implemented",
        ),
        ("expert_count", "mixtures of experts are not implemented"),
    ] {
        let k = key(k);
        match g.metadata.get(&k) {
            None => {}
            Some(Value::String(s)) if s == "none" => {}
            Some(Value::Uint(0)) => {}
            Some(v) => {
                return Err(ImportError::Unsupported {
                    key: k,
                    value: v.to_string(),
                    hint,
                });
            }
        }
    }
    if let Some(Value::Bool(true)) = g.metadata.get(&key("attention.causal")) {
        return Err(ImportError::Unsupported {
            key: key("attention.causal"),
            value: "true".into(),
            hint: "the file says its attention is causal: it is an autoregressive model",
        });
    }
    let shifts = architecture == Architecture::Dream;
    if let Some(v) = g.metadata.get("diffusion.shift_logits") {
        let said = match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => s.parse::<bool>().ok(),
            _ => None,
        };
        if said != Some(shifts) {
            return Err(ImportError::Unsupported {
                key: "diffusion.shift_logits".into(),
                value: v.to_string(),
                hint: if shifts {
                    "Dream's logits are shifted by one: true"
                } else {
                    "this architecture's logits are not shifted: false"
                },
            });
        }
    }
    let heads = size("attention.head_count")?;
    let hidden = size("embedding_length")?;
    let head_dim =
        optional_usize(g, &key("attention.key_length"))?.unwrap_or(hidden / heads.max(1));
    if let Some(rot) = optional_usize(g, &key("rope.dimension_count"))?
        && rot != head_dim
    {
        return Err(ImportError::Unsupported {
            key: key("rope.dimension_count"),
            value: rot.to_string(),
            hint: "partial rotary embeddings are not implemented: it must equal the head size",
        });
    }
    let embedding = g
        .tensor("token_embd.weight")
        .ok_or_else(|| ImportError::MissingTensor {
            name: "token_embd.weight".into(),
            arch: architecture.model_type(),
        })?;
    let rows = embedding.shape().first().copied().unwrap_or(0);
    let vocab = match optional_usize(g, &key("vocab_size"))? {
        Some(v) => v,
        None => tokens.map_or(rows, |t| t.len().min(rows)),
    };
    Ok(Hyper {
        layers: size("block_count")?,
        hidden,
        mlp: size("feed_forward_length")?,
        heads,
        kv_heads: optional_usize(g, &key("attention.head_count_kv"))?.unwrap_or(heads),
        head_dim,
        rope_theta: g.f64(&key("rope.freq_base"))?,
        rms_eps: g.f64(&key("attention.layer_norm_rms_epsilon"))?,
        context: optional_usize(g, &key("context_length"))?,
        rows,
        vocab,
        tied: g.tensor("output.weight").is_none(),
        mask: mask_id(g, tokens)?,
    })
}

/// config.json in the architecture's own format.
fn config_json(
    architecture: Architecture,
    h: &Hyper,
    options: &ImportOptions,
    quantization: Option<QuantFormat>,
) -> Result<Json, ImportError> {
    let mut j = match architecture {
        Architecture::Llada => {
            if h.head_dim * h.heads != h.hidden {
                return Err(ImportError::Unsupported {
                    key: "llada.attention.key_length".into(),
                    value: h.head_dim.to_string(),
                    hint: "LLaDA's heads split the width evenly: key_length · head_count = embedding_length",
                });
            }
            if options.block_size.is_some() {
                return Err(ImportError::Unsupported {
                    key: "--block-size".into(),
                    value: format!("{:?}", options.block_size),
                    hint: "LLaDA is bidirectional",
                });
            }
            json!({
                "model_type": architecture.model_type(),
                "architectures": ["LLaDAModelLM"],
                "d_model": h.hidden,
                "n_heads": h.heads,
                "n_kv_heads": h.kv_heads,
                "n_layers": h.layers,
                "mlp_hidden_size": h.mlp,
                "activation_type": "silu",
                "block_type": "llama",
                "layer_norm_type": "rms",
                "rope": true,
                "alibi": false,
                "include_bias": false,
                "include_qkv_bias": false,
                "weight_tying": h.tied,
                "vocab_size": h.vocab,
                "embedding_size": h.rows,
            })
        }
        _ => json!({
            "model_type": architecture.model_type(),
            "vocab_size": h.rows,
            "hidden_size": h.hidden,
            "intermediate_size": h.mlp,
            "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads,
            "num_key_value_heads": h.kv_heads,
            "head_dim": h.head_dim,
            "hidden_act": "silu",
            "tie_word_embeddings": h.tied,
        }),
    };
    let (theta, eps, context) = match architecture {
        Architecture::Llada => ("rope_theta", "rms_norm_eps", "max_sequence_length"),
        _ => ("rope_theta", "rms_norm_eps", "max_position_embeddings"),
    };
    if let Some(t) = h.rope_theta {
        j[theta] = json!(t);
    }
    if let Some(e) = h.rms_eps {
        j[eps] = json!(e);
    }
    if let Some(c) = h.context {
        j[context] = json!(c);
    }
    if let Some(m) = h.mask {
        j["mask_token_id"] = json!(m);
    }
    if let Some(b) = options.block_size {
        j["block_size"] = json!(b);
    }
    if let Some(format) = quantization {
        j["quantization"] =
            serde_json::to_value(Quantization::new(format)).expect("a quantization serialises");
    }
    Ok(j)
}

/// Within each head of `rows / heads` rows, row j·Dh/2 + i of transformers' order is row
/// 2i + j of llama.cpp's permuted one: the source row of each output row.
fn unpermute_rows(rows: usize, heads: usize) -> Vec<usize> {
    let dh = rows / heads.max(1);
    let half = dh / 2;
    (0..rows)
        .map(|r| {
            let (h, within) = (r / dh.max(1), r % dh.max(1));
            let (j, i) = (within / half.max(1), within % half.max(1));
            h * dh + 2 * i + j
        })
        .collect()
}

/// `bytes` (`order.len()` rows of equal length) with row r taken from row `order[r]`.
fn reorder<T: Copy>(data: &[T], order: &[usize]) -> Vec<T> {
    let row = data.len() / order.len().max(1);
    order
        .iter()
        .flat_map(|&src| &data[src * row..(src + 1) * row])
        .copied()
        .collect()
}

/// One tensor the folder stores: key, dtype, shape, byte count.
type StoredTensor = (String, Dtype, Vec<usize>, u64);

/// How one tensor of the file becomes the folder's.
#[derive(Clone, Debug)]
struct Planned {
    /// The tensor in the file.
    info: TensorInfo,
    /// Its slot in the folder's layout.
    slot: TensorSlot,
    /// The order its rows take (LLaDA's q and k), if not the file's.
    order: Option<Vec<usize>>,
    /// The folder's format for it: `Some` for a matrix of a quantized folder.
    format: Option<QuantFormat>,
    /// Whether its quantized blocks are kept as they are (else it is quantized here).
    exact: bool,
}

impl Planned {
    /// What it becomes in the folder: key, dtype, shape and byte count of each stored tensor.
    fn stored(&self) -> Vec<StoredTensor> {
        let bytes =
            |shape: &[usize], per: u64| shape.iter().map(|&d| d as u64).product::<u64>() * per;
        match (self.format, self.slot.matrix()) {
            (Some(format), Some((rows, cols))) => {
                let (values_key, scales_key) = quantized_keys(&self.slot.name);
                let (values, scales) = quantized_shapes(format, rows, cols);
                vec![
                    (
                        values_key,
                        format.dtype(),
                        values.to_vec(),
                        bytes(&values, 1),
                    ),
                    (scales_key, Dtype::F16, scales.to_vec(), bytes(&scales, 2)),
                ]
            }
            _ => {
                let shape = self.slot.shape.clone();
                let size = self.info.range.end - self.info.range.start;
                let dtype = self.info.ty.float_dtype().unwrap_or(Dtype::F32);
                vec![(self.slot.name.clone(), dtype, shape, size)]
            }
        }
    }

    /// The stored tensors' bytes, in [`Planned::stored`]'s order, from the file's `bytes`.
    fn convert(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, ImportError> {
        let reorder_all = |data: Vec<u8>| match &self.order {
            Some(order) => reorder(&data, order),
            None => data,
        };
        let (Some(format), Some((rows, cols))) = (self.format, self.slot.matrix()) else {
            return Ok(vec![reorder_all(bytes.to_vec())]);
        };
        if !self.exact {
            let mut w = decode(bytes, self.info.ty);
            if let Some(order) = &self.order {
                w = reorder(&w, order);
            }
            let q = quantize_matrix(&self.slot.name, &w, rows, cols, format)?;
            return Ok(vec![q.values, q.scales]);
        }
        let Blocks { levels, scales } = split_blocks(bytes, self.info.ty);
        let (levels, scales) = match &self.order {
            Some(order) => (reorder(&levels, order), reorder(&scales, order)),
            None => (levels, scales),
        };
        Ok(vec![pack_levels(&levels, format), scales])
    }
}

/// A GGUF file's model folder, planned from its header alone: config.json, the tokenizer's
/// files and how each tensor is stored; [`Plan::write_weights`] then converts the tensors one at
/// a time, so that a file of any size costs one tensor's memory.
#[derive(Debug)]
pub struct Plan {
    /// The architecture.
    pub architecture: Architecture,
    /// `config.json`.
    pub config: Vec<u8>,
    /// `tokenizer.json`, when rebuilt.
    pub tokenizer: Option<Vec<u8>>,
    /// `tokenizer_config.json`.
    pub tokenizer_config: Vec<u8>,
    /// How the matrices are stored.
    pub quantization: Option<QuantFormat>,
    /// What the import changes beyond the layout (a matrix quantized here, …), one line each.
    pub notes: Vec<String>,
    tensors: Vec<Planned>,
}

impl Plan {
    /// The folder's files, with `weights` written by [`Plan::write_weights`] (or its parts).
    pub fn into_imported(self, weights: Vec<u8>) -> Imported {
        Imported {
            architecture: self.architecture,
            config: self.config,
            weights,
            tokenizer: self.tokenizer,
            tokenizer_config: self.tokenizer_config,
            quantization: self.quantization,
            notes: self.notes,
        }
    }

    /// Bytes of `model.safetensors`.
    pub fn weights_len(&self) -> u64 {
        let header = self.header();
        8 + header.len() as u64
            + self
                .tensors
                .iter()
                .flat_map(Planned::stored)
                .map(|(.., n)| n)
                .sum::<u64>()
    }

    /// The safetensors header, padded as the format asks.
    fn header(&self) -> Vec<u8> {
        let stored: Vec<_> = self.tensors.iter().flat_map(Planned::stored).collect();
        let mut map = serde_json::Map::new();
        let mut offset = 0u64;
        for (name, dtype, shape, len) in &stored {
            map.insert(
                name.clone(),
                json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
            );
            offset += len;
        }
        let mut header = serde_json::to_vec(&Json::Object(map)).expect("a JSON value serialises");
        // safetensors pads the header with spaces to a multiple of 8.
        header.resize(header.len().next_multiple_of(8), b' ');
        header
    }

    /// Writes `model.safetensors` to `out`, each tensor read by `read` (from the file the plan
    /// was made from), converted and written before the next is read.
    pub fn write_weights(
        &self,
        read: &mut dyn FnMut(&TensorInfo) -> Result<Vec<u8>, GgufError>,
        out: &mut dyn std::io::Write,
    ) -> Result<(), ImportError> {
        self.write_header(out)?;
        for (index, info) in self.tensors().enumerate() {
            self.write_tensor(index, &read(info)?, out)?;
        }
        out.flush().map_err(|e| ImportError::Write(e.to_string()))
    }

    /// The file's tensors, in the order `model.safetensors` stores them: read each and pass its
    /// bytes to [`Plan::write_tensor`] after [`Plan::write_header`] (what
    /// [`Plan::write_weights`] does, for a reader that cannot be called back, e.g. an async one).
    pub fn tensors(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.iter().map(|t| &t.info)
    }

    /// Starts `model.safetensors`: its header's length and the header.
    pub fn write_header(&self, out: &mut dyn std::io::Write) -> Result<(), ImportError> {
        let io = |e: std::io::Error| ImportError::Write(e.to_string());
        let header = self.header();
        out.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&header).map_err(io)
    }

    /// Appends the stored form of tensor `index` of [`Plan::tensors`], from the file's `bytes`
    /// of it.
    pub fn write_tensor(
        &self,
        index: usize,
        bytes: &[u8],
        out: &mut dyn std::io::Write,
    ) -> Result<(), ImportError> {
        for part in self.tensors[index].convert(bytes)? {
            out.write_all(&part)
                .map_err(|e| ImportError::Write(e.to_string()))?;
        }
        Ok(())
    }
}

/// Plans the folder of the GGUF file whose header is `g` ([`Plan`]).
pub fn plan(g: &Gguf, options: &ImportOptions) -> Result<Plan, ImportError> {
    let (architecture, arch) = architecture(g)?;
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let h = hyperparameters(g, &arch, architecture, tokens.as_deref())?;
    if matches!(
        architecture,
        Architecture::A2dQwen3 | Architecture::A2dQwen2
    ) && h.mask.is_none()
    {
        return Err(ImportError::Autoregressive { arch });
    }
    let matrices_of = |ty| g.tensors.iter().any(|t| t.ty == ty && t.dims.len() == 2);
    // Q6_K has no block form of Unmask's own: its matrices are decoded and quantized to q8,
    // which holds them nearly as they are (the folder takes one format for every matrix).
    let quantization = if matrices_of(GgmlType::Q8_0) || matrices_of(GgmlType::Q6K) {
        Some(QuantFormat::Q8)
    } else if matrices_of(GgmlType::Q4_0) {
        Some(QuantFormat::Q4)
    } else {
        None
    };
    let config_value = config_json(architecture, &h, options, quantization)?;
    let config_bytes = serde_json::to_vec_pretty(&config_value).expect("a JSON value serialises");
    let config = match TextConfig::from_json(&config_bytes)? {
        TextConfig::Transformer(c) => c,
        // The JSON above always names a transformer's model_type.
        TextConfig::Dit(_) => unreachable!("a transformer config parsed as a DiT"),
    };

    // Every tensor of the file, by the name the folder gives it; each must be used.
    let model_type = architecture.model_type();
    let mut by_name: HashMap<String, &TensorInfo> = HashMap::new();
    for info in &g.tensors {
        let key = key_of(&info.name).ok_or_else(|| ImportError::UnexpectedTensor {
            name: info.name.clone(),
            arch: model_type,
        })?;
        by_name.insert(architecture.key(key), info);
    }
    let mut notes = Vec::new();
    let mut tensors = Vec::new();
    for (key, slot) in config.keyed_layout() {
        let info = by_name
            .remove(&slot.name)
            .ok_or_else(|| ImportError::MissingTensor {
                name: gguf_name(key),
                arch: model_type,
            })?;
        if info.shape() != slot.shape {
            return Err(ImportError::Shape {
                name: info.name.clone(),
                expected: slot.shape.clone(),
                found: info.shape(),
            });
        }
        let matrix = slot.matrix().is_some();
        if !matrix && info.ty.float_dtype().is_none() {
            return Err(ImportError::QuantizedVector {
                name: info.name.clone(),
                ty: info.ty.name(),
            });
        }
        let order = match (architecture, key) {
            (
                Architecture::Llada,
                Key::Linear {
                    projection: projection @ (Projection::Query | Projection::Key),
                    bias: false,
                    ..
                },
            ) => {
                let heads = if projection == Projection::Query {
                    config.num_attention_heads
                } else {
                    config.num_key_value_heads
                };
                Some(unpermute_rows(slot.shape[0], heads))
            }
            _ => None,
        };
        let format = quantization.filter(|_| matrix);
        // burn gathers rows of a quantized tensor by dequantizing and quantizing them again,
        // its 4-bit levels symmetric (±7): a block whose largest weight sits at Q4_0's −8 comes
        // back with another scale, every level rounded anew. Such an embedding is re-quantized
        // here, once, so that every backend computes the same network (the matrices keep
        // Q4_0's levels: the matmul reads them exactly).
        let gathered_q4 = key == Key::Embedding && info.ty == GgmlType::Q4_0;
        let exact = info.ty.keeps_blocks() && !gathered_q4;
        if let Some(format) = format.filter(|_| !exact) {
            notes.push(if gathered_q4 {
                format!(
                    "{} (Q4_0) re-quantized to {}: burn's row gather reads 4-bit levels as ±7, and Q4_0 uses −8",
                    info.name,
                    format.name()
                )
            } else {
                format!(
                    "{} ({}) quantized to {} here",
                    info.name,
                    info.ty.name(),
                    format.name()
                )
            });
        }
        tensors.push(Planned {
            info: info.clone(),
            slot,
            order,
            format,
            exact,
        });
    }
    if let Some(info) = by_name.values().next() {
        return Err(ImportError::UnexpectedTensor {
            name: info.name.clone(),
            arch: model_type,
        });
    }
    let tokenizer = if options.rebuild_tokenizer {
        Some(tokenizer_json(g, tokens.as_deref())?)
    } else {
        None
    };
    Ok(Plan {
        architecture,
        config: config_bytes,
        tokenizer,
        tokenizer_config: tokenizer_config_json(g, tokens.as_deref())?,
        quantization,
        notes,
        tensors,
    })
}

/// Reads the GGUF file `bytes` (whole, in memory) into a model folder's files.
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<Imported, ImportError> {
    let g = Gguf::parse(bytes)?;
    let plan = plan(&g, options)?;
    let mut weights = Vec::with_capacity(usize::try_from(plan.weights_len()).unwrap_or(0));
    plan.write_weights(
        &mut |info| Ok(bytes[info.range.start as usize..info.range.end as usize].to_vec()),
        &mut weights,
    )?;
    Ok(plan.into_imported(weights))
}

/// The token `id`'s text, if the vocabulary has it.
fn token_text(tokens: Option<&[&str]>, g: &Gguf, key: &str) -> Result<Option<String>, GgufError> {
    if !g.metadata.contains_key(key) {
        return Ok(None);
    }
    let id = g.u64(key)?;
    Ok(tokens
        .and_then(|t| t.get(id as usize))
        .map(|s| (*s).to_owned()))
}

/// tokenizer_config.json: the chat template and the special tokens' texts.
fn tokenizer_config_json(g: &Gguf, tokens: Option<&[&str]>) -> Result<Vec<u8>, ImportError> {
    let mut j = json!({ "tokenizer_class": "PreTrainedTokenizerFast" });
    for (name, key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
        ("mask_token", "tokenizer.ggml.mask_token_id"),
    ] {
        if let Some(text) = token_text(tokens, g, key)? {
            j[name] = json!(text);
        }
    }
    if j.get("mask_token").is_none()
        && let Some(id) = mask_id(g, tokens)?
        && let Some(text) = tokens.and_then(|t| t.get(id as usize))
    {
        j["mask_token"] = json!(text);
    }
    if let Some(template) = g.str("tokenizer.chat_template")? {
        j["chat_template"] = json!(template);
    }
    Ok(serde_json::to_vec_pretty(&j).expect("a JSON value serialises"))
}

/// tokenizer.json rebuilt from the vocabulary of `g` (see [`tokenizer_json`]).
pub fn rebuild_tokenizer(g: &Gguf) -> Result<Vec<u8>, ImportError> {
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    tokenizer_json(g, tokens.as_deref())
}

/// tokenizer.json rebuilt from a BPE vocabulary (`tokenizer.ggml.model` `gpt2`): the tokens,
/// their merges, the added tokens (control tokens special), and the pre-tokenizer of the
/// vocabulary's `tokenizer.ggml.pre` label (llama.cpp's `llama-vocab.cpp` names the regexes).
fn tokenizer_json(g: &Gguf, tokens: Option<&[&str]>) -> Result<Vec<u8>, ImportError> {
    let why = |why: String| ImportError::Tokenizer { why };
    let model = g.str("tokenizer.ggml.model")?;
    if model != Some("gpt2") {
        return Err(why(format!(
            "the vocabulary is {} (tokenizer.ggml.model); only byte-level BPE (gpt2) is rebuilt",
            model.map_or_else(|| "absent".to_owned(), |m| format!("`{m}`"))
        )));
    }
    let tokens = tokens.ok_or_else(|| why("the file has no tokenizer.ggml.tokens".into()))?;
    let types = integers(g, "tokenizer.ggml.token_type")?.unwrap_or_default();
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(why(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let merges = strings(g, "tokenizer.ggml.merges")?.unwrap_or_default();
    let pre = g.str("tokenizer.ggml.pre")?.unwrap_or("default");
    let byte_level = |use_regex: bool, trim_offsets: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim_offsets, "use_regex": use_regex});
    let split = |regex: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            byte_level(false, false),
        ]})
    };
    let (normalizer, pre_tokenizer, ignore_merges) = match pre {
        "gpt-2" | "default" => (Json::Null, byte_level(true, true), false),
        "qwen2" => (json!({"type": "NFC"}), split(QWEN2_REGEX), false),
        "llama-bpe" | "llama3" => (Json::Null, split(LLAMA3_REGEX), true),
        other => {
            return Err(why(format!(
                "the vocabulary's pre-tokenizer `{other}` (tokenizer.ggml.pre) is not one Unmask rebuilds (gpt-2, qwen2, llama-bpe)"
            )));
        }
    };
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        vocab.entry(token.to_string()).or_insert(json!(id));
    }
    let merges: Vec<Json> = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| json!([a, b]))
                .ok_or_else(|| why(format!("the merge `{m}` is not two tokens")))
        })
        .collect::<Result<_, _>>()?;
    let added: Vec<Json> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(**t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
        .map(|(id, &t)| {
            json!({"id": id, "content": tokens[id], "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": t == TOKEN_TYPE_CONTROL})
        })
        .collect();
    let j = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": byte_level(true, true),
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges,
        },
    });
    let bytes = serde_json::to_vec(&j).expect("a JSON value serialises");
    // Checked here, so that a folder is never written with a tokenizer that does not load.
    tokenizers::Tokenizer::from_bytes(&bytes)
        .map_err(|e| why(format!("the rebuilt tokenizer does not load: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        for name in [
            "token_embd.weight",
            "output_norm.weight",
            "output.weight",
            "blk.3.attn_q.weight",
            "blk.3.attn_q.bias",
            "blk.0.attn_k_norm.weight",
            "blk.12.ffn_down.weight",
        ] {
            let key = key_of(name).unwrap();
            assert_eq!(gguf_name(key), name);
        }
        assert_eq!(key_of("blk.0.attn_norm.bias"), None);
        assert_eq!(key_of("blk.x.attn_q.weight"), None);
        assert_eq!(key_of("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermuting_inverts_llama_cpps_permute() {
        // llama.cpp's permute: within a head, row 2i + j is row j·Dh/2 + i.
        let (heads, dh) = (2, 8);
        let rows = heads * dh;
        let permuted: Vec<usize> = (0..rows)
            .map(|r| {
                let (h, w) = (r / dh, r % dh);
                let (i, j) = (w / 2, w % 2);
                h * dh + j * dh / 2 + i
            })
            .collect();
        // `permuted[r]` is the original row stored at r; undoing it gives 0..rows back.
        let order = unpermute_rows(rows, heads);
        assert_eq!(reorder(&permuted, &order), (0..rows).collect::<Vec<_>>());
    }
}
