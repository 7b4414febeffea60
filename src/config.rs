//! The model configuration, read from a Hugging Face `config.json`.
//!
//! Field names are those of `kuleshov-group/bd3lms` `models/hf/configuration_bd3lm.py` and of the MDLM
//! `configuration_mdlm.py`, so the published checkpoints' files load as they are. Unknown fields
//! (`auto_map`, `architectures`, `attn_backend`, …) are ignored; values this crate cannot run are a
//! [`ConfigError`] that says which field to change.

use serde::Deserialize;
use thiserror::Error;

/// Which positions a query may attend to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attention {
    /// Every position sees every position (MDLM, LLaDA).
    Bidirectional,
    /// Position `i` sees position `j` when `j / block_size <= i / block_size`, blocks counted from
    /// position 0 (BD3-LM's sampling mask).
    BlockCausal {
        /// Tokens per block.
        block_size: usize,
    },
    /// Position `i` sees positions `j <= i` (autoregressive).
    Causal,
}

impl Attention {
    /// Whether a query at absolute position `query` may attend to a key at absolute position `key`.
    pub fn allows(self, query: usize, key: usize) -> bool {
        match self {
            Attention::Bidirectional => true,
            Attention::BlockCausal { block_size } => key / block_size <= query / block_size,
            Attention::Causal => key <= query,
        }
    }

    /// Whether committed prefixes can be cached: everything a cached row attended to stays fixed.
    pub fn is_cacheable(self) -> bool {
        !matches!(self, Attention::Bidirectional)
    }

    /// A short name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            Attention::Bidirectional => "bidirectional",
            Attention::BlockCausal { .. } => "block-causal",
            Attention::Causal => "causal",
        }
    }
}

/// What can be wrong with a `config.json`.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file is not the JSON we expect.
    #[error(
        "config.json is not valid: {0}. It needs at least vocab_size, model_length, hidden_dim, cond_dim, n_blocks and n_heads"
    )]
    Json(#[from] serde_json::Error),
    /// A size above what Unmask accepts (see [`crate::limits`]).
    #[error("config.json: {0}; is this file really the model's config?")]
    TooLarge(#[from] crate::limits::TooLarge),
    /// A value the model cannot run with.
    #[error("config.json: {field} = {value} is not supported: {hint}")]
    Unsupported {
        /// The offending field.
        field: &'static str,
        /// Its value, as written.
        value: String,
        /// What would work instead.
        hint: &'static str,
    },
}

/// Tells a config key that is `null` (`Some(None)`) from one that is absent (`None`, with
/// `#[serde(default, deserialize_with = "nullable")]`): the references give the two different
/// meanings (LLaDA's `embedding_size`, a tokenizer's `bos_token`).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Which family of diffusion a model belongs to: one id, spelled the same in config.json
/// (`family`), in the page's links (`family=`), in trajectories (`kind`) and in the shipped
/// folders' names.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Discrete tokens: masked diffusion (MDLM, LLaDA), block diffusion (BD3-LM) and the
    /// autoregressive baseline, on one DiT. A folder without `family` (every published MDLM and
    /// BD3-LM checkpoint) is this.
    #[default]
    Text,
    /// Gaussian diffusion on images (DDPM, DDIM, classifier and classifier-free guidance) on a
    /// DiT over patches: the handwritten digits.
    Ddpm,
    /// Gaussian diffusion on word vectors, rounded to words (Diffusion-LM,
    /// [`crate::model::diffusion_lm`]).
    DiffusionLm,
    /// One masked-diffusion DiT over text and image tokens together (MMaDA,
    /// [`crate::unified`]): captions to digits and digits to captions.
    Unified,
}

impl Family {
    /// The id.
    pub fn name(self) -> &'static str {
        match self {
            Family::Text => "text",
            Family::Ddpm => "ddpm",
            Family::DiffusionLm => "diffusion-lm",
            Family::Unified => "unified",
        }
    }
}

/// The DiT configuration of MDLM / BD3-LM, with the reference's field names.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct ModelConfig {
    /// The family (an Unmask extension; absent in published folders: [`Family::Text`]).
    #[serde(default)]
    pub family: Family,
    /// The sampler the model was trained for (an Unmask extension), which the CLI runs when
    /// none is asked for; absent: [`ModelConfig::own_sampler`] reads it off the attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler: Option<crate::sampler::SamplerKind>,
    /// `"mdlm"`, `"bd3lm"` or anything else; decides the default attention when `cross_attn` is absent.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Rows of the embedding and of the output layer (tokenizer vocabulary, plus the mask for GPT-2).
    pub vocab_size: usize,
    /// The longest sequence the model was trained on; the canvas may not exceed it.
    pub model_length: usize,
    /// Width of the residual stream.
    pub hidden_dim: usize,
    /// Width of the conditioning vector fed to every adaLN modulation.
    pub cond_dim: usize,
    /// Number of transformer blocks.
    pub n_blocks: usize,
    /// Attention heads per block; `hidden_dim / n_heads` must be even for the rotary embedding.
    pub n_heads: usize,
    /// BD3-LM block size (tokens per block); absent for MDLM.
    #[serde(default)]
    pub block_size: Option<usize>,
    /// BD3-LM's flag for the block-diffusion (x_t ⊕ x_0) attention; at sampling time this means
    /// block-causal attention.
    #[serde(default)]
    pub cross_attn: Option<bool>,
    /// Whether blocks carry adaLN modulation (all published checkpoints do).
    #[serde(default = "default_true")]
    pub adaln: bool,
    /// Causal (autoregressive) attention.
    #[serde(default)]
    pub causal: bool,
    /// Whether the noise level conditions the network; when false the conditioning is constant.
    #[serde(default)]
    pub time_conditioning: bool,
    /// Diffusion forcing (an Unmask extension): each position takes its own noise level, fed to
    /// its own adaLN modulation; needs `causal` and `time_conditioning`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_token_noise: bool,
    /// Dropout probability during training (ignored at inference).
    #[serde(default)]
    pub dropout: f64,
    /// Mask token id, when the tokenizer does not name one (an Unmask extension; optional).
    #[serde(default)]
    pub mask_token_id: Option<u32>,
}

/// Serde's default for a switch that is on unless a file says otherwise.
pub(crate) fn default_true() -> bool {
    true
}

impl ModelConfig {
    /// Parses and validates a `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: ModelConfig = serde_json::from_slice(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value the forward pass relies on, sizes against [`crate::limits`] first, so
    /// that nothing derived from them can overflow or ask for an absurd allocation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::limits::{self, check};
        check("vocab_size", self.vocab_size, limits::MAX_VOCAB_SIZE)?;
        check("model_length", self.model_length, limits::MAX_MODEL_LENGTH)?;
        check("hidden_dim", self.hidden_dim, limits::MAX_HIDDEN_DIM)?;
        check("cond_dim", self.cond_dim, limits::MAX_COND_DIM)?;
        check("n_blocks", self.n_blocks, limits::MAX_BLOCKS)?;
        check("n_heads", self.n_heads, limits::MAX_HEADS)?;
        if let Some(block_size) = self.block_size {
            check("block_size", block_size, limits::MAX_MODEL_LENGTH)?;
        }
        let nonzero = [
            ("vocab_size", self.vocab_size),
            ("model_length", self.model_length),
            ("hidden_dim", self.hidden_dim),
            ("cond_dim", self.cond_dim),
            ("n_blocks", self.n_blocks),
            ("n_heads", self.n_heads),
        ];
        for (field, value) in nonzero {
            if value == 0 {
                return Err(ConfigError::Unsupported {
                    field,
                    value: "0".into(),
                    hint: "it must be positive",
                });
            }
        }
        if !self.hidden_dim.is_multiple_of(self.n_heads)
            || !(self.hidden_dim / self.n_heads).is_multiple_of(2)
        {
            return Err(ConfigError::Unsupported {
                field: "n_heads",
                value: self.n_heads.to_string(),
                hint: "hidden_dim / n_heads must be a whole, even head size (the rotary embedding rotates pairs)",
            });
        }
        if let Some(block_size) = self.block_size
            && (block_size == 0 || !self.model_length.is_multiple_of(block_size))
        {
            return Err(ConfigError::Unsupported {
                field: "block_size",
                value: block_size.to_string(),
                hint: "it must be positive and divide model_length",
            });
        }
        if self.block_causal() && self.block_size.is_none() {
            return Err(ConfigError::Unsupported {
                field: "block_size",
                value: "missing".into(),
                hint: "block diffusion (model_type bd3lm, or cross_attn true) needs block_size",
            });
        }
        if let Some(mask) = self
            .mask_token_id
            .filter(|&m| m as usize >= self.vocab_size)
        {
            return Err(ConfigError::Unsupported {
                field: "mask_token_id",
                value: mask.to_string(),
                hint: "it must be below vocab_size",
            });
        }
        if self.causal && self.block_causal() {
            return Err(ConfigError::Unsupported {
                field: "causal",
                value: "true".into(),
                hint: "a causal model cannot also use block-diffusion attention (cross_attn)",
            });
        }
        if self.per_token_noise && !(self.causal && self.time_conditioning && self.adaln) {
            return Err(ConfigError::Unsupported {
                field: "per_token_noise",
                value: "true".into(),
                hint: "diffusion forcing denoises each token from the ones before it, at its own noise level: it needs causal, time_conditioning and adaln true",
            });
        }
        Ok(())
    }

    fn block_causal(&self) -> bool {
        self.cross_attn
            .unwrap_or(self.model_type.as_deref() == Some("bd3lm"))
    }

    /// The attention the model was trained to sample with.
    pub fn attention(&self) -> Attention {
        if self.causal {
            Attention::Causal
        } else if let (true, Some(block_size)) = (self.block_causal(), self.block_size) {
            Attention::BlockCausal { block_size }
        } else {
            Attention::Bidirectional
        }
    }

    /// The sampler the model was trained for: config.json's `sampler`, else `forcing` for a
    /// per-token-noise model and otherwise the one its attention implies
    /// ([`SamplerKind::for_attention`](crate::sampler::SamplerKind::for_attention), as for the
    /// published MDLM and BD3-LM checkpoints).
    pub fn own_sampler(&self) -> crate::sampler::SamplerKind {
        use crate::sampler::SamplerKind;
        self.sampler.unwrap_or(if self.per_token_noise {
            SamplerKind::Forcing
        } else {
            SamplerKind::for_attention(self.attention())
        })
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_dim / self.n_heads
    }

    /// Width of the MLP's hidden layer (the reference's `mlp_ratio = 4`).
    pub fn mlp_dim(&self) -> usize {
        MLP_RATIO * self.hidden_dim
    }
}

/// The DiT's MLP expansion, fixed in the reference (`DDiTBlock(mlp_ratio=4)`).
pub const MLP_RATIO: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "vocab_size": 10, "model_length": 16, "hidden_dim": 8, "cond_dim": 4,
            "n_blocks": 1, "n_heads": 2
        })
    }

    #[test]
    fn bd3lm_config_defaults_to_block_causal_attention() {
        let mut v = base();
        v["model_type"] = "bd3lm".into();
        v["block_size"] = 4.into();
        let c = ModelConfig::from_json(v.to_string().as_bytes()).unwrap();
        assert_eq!(c.attention(), Attention::BlockCausal { block_size: 4 });
    }

    #[test]
    fn mdlm_config_is_bidirectional_and_causal_flag_wins() {
        let c = ModelConfig::from_json(base().to_string().as_bytes()).unwrap();
        assert_eq!(c.attention(), Attention::Bidirectional);
        let mut v = base();
        v["causal"] = true.into();
        let c = ModelConfig::from_json(v.to_string().as_bytes()).unwrap();
        assert_eq!(c.attention(), Attention::Causal);
    }

    #[test]
    fn a_folder_names_its_family_and_sampler_or_they_follow_from_its_attention() {
        use crate::sampler::SamplerKind;
        let c = ModelConfig::from_json(base().to_string().as_bytes()).unwrap();
        assert_eq!(
            (c.family, c.own_sampler()),
            (Family::Text, SamplerKind::Mdlm)
        );
        let mut v = base();
        v["causal"] = true.into();
        assert_eq!(
            ModelConfig::from_json(v.to_string().as_bytes())
                .unwrap()
                .own_sampler(),
            SamplerKind::Ar
        );
        v["family"] = "text".into();
        v["sampler"] = "llada".into();
        let c = ModelConfig::from_json(v.to_string().as_bytes()).unwrap();
        assert_eq!(c.own_sampler(), SamplerKind::Llada);
        v["family"] = "sculpture".into();
        let err = ModelConfig::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("sculpture"), "{err}");
    }

    #[test]
    fn odd_head_size_is_rejected_with_the_field_named() {
        let mut v = base();
        v["n_heads"] = 8.into();
        let err = ModelConfig::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("n_heads"), "{err}");
    }

    #[test]
    fn block_size_must_divide_model_length() {
        let mut v = base();
        v["block_size"] = 5.into();
        v["cross_attn"] = true.into();
        let err = ModelConfig::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("block_size"), "{err}");
    }

    #[test]
    fn absurd_sizes_are_refused_before_anything_is_built_and_llada_8b_passes() {
        for (field, value) in [
            ("n_blocks", 1_000_000_000_u64),
            ("n_blocks", 9_223_372_036_854_775_807),
            ("vocab_size", 1 << 40),
            ("model_length", 1 << 30),
            ("hidden_dim", 1 << 20),
        ] {
            let mut v = base();
            v[field] = value.into();
            let err = ModelConfig::from_json(v.to_string().as_bytes()).unwrap_err();
            assert!(matches!(err, ConfigError::TooLarge(_)), "{field}: {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
        // LLaDA-8B's shape, written as a DiT config: every size is within the limits.
        let llada = serde_json::json!({
            "vocab_size": 126464, "model_length": 4096, "hidden_dim": 4096, "cond_dim": 128,
            "n_blocks": 32, "n_heads": 32
        });
        assert!(ModelConfig::from_json(llada.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn block_causal_mask_counts_blocks_from_zero() {
        let a = Attention::BlockCausal { block_size: 4 };
        assert!(a.allows(0, 3));
        assert!(a.allows(5, 7));
        assert!(!a.allows(3, 4));
        assert!(Attention::Causal.allows(3, 3) && !Attention::Causal.allows(3, 4));
    }
}
