//! The published diffusion LMs' `config.json`s, as presets: `unmask init --preset` writes a
//! random-weight folder of each shape and `unmask bench --preset` measures it, and the tests check
//! that the loader accepts each and derives every tensor's shape.
//!
//! No model hub is reachable where Unmask is built, so these folders are verified by shape only:
//! the values are those of the public model cards and configuration code (`Qwen/Qwen3-0.6B`,
//! `Qwen/Qwen2.5-Coder-0.5B-Instruct`, `GSAI-ML/LLaDA-8B-Instruct`, `Dream-org/Dream-v0-Instruct-7B`)
//! with the `model_type` dllm's conversions write (`a2d-qwen3`, `a2d-qwen2`). The `-bd3lm`
//! preset adds `block_size`, which dllm keeps in its sampler and trainer configs (32).

use super::transformer::TransformerConfig;
use crate::bundle::TextConfig;
use crate::config::ConfigError;

/// One published model's shape.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The name `--preset` takes.
    pub name: &'static str,
    /// Where the published folder lives (`owner/name` on the Hugging Face hub).
    pub published: &'static str,
    /// Its config.json.
    pub config: &'static str,
    /// The mask token's text in the published tokenizer.
    pub mask_token: &'static str,
    /// The mask token's id there.
    pub mask_id: u32,
}

/// Every preset.
pub const PRESETS: [Preset; 5] = [
    Preset {
        name: "a2d-qwen3-0.6b",
        published: "dllm-hub/Qwen3-0.6B-diffusion-mdlm-v0.1",
        config: include_str!("presets/a2d-qwen3-0.6b.json"),
        mask_token: "<|mask|>",
        mask_id: 151_669,
    },
    Preset {
        name: "a2d-qwen3-0.6b-bd3lm",
        published: "dllm-hub/Qwen3-0.6B-diffusion-bd3lm-v0.1",
        config: include_str!("presets/a2d-qwen3-0.6b-bd3lm.json"),
        mask_token: "<|mask|>",
        mask_id: 151_669,
    },
    Preset {
        name: "a2d-qwen2.5-coder-0.5b",
        published: "dllm-hub/Qwen2.5-Coder-0.5B-Instruct-diffusion-mdlm",
        config: include_str!("presets/a2d-qwen2.5-coder-0.5b.json"),
        mask_token: "<|mask|>",
        mask_id: 151_665,
    },
    Preset {
        name: "llada-8b",
        published: "GSAI-ML/LLaDA-8B-Instruct",
        config: include_str!("presets/llada-8b.json"),
        mask_token: "<|mdm_mask|>",
        mask_id: 126_336,
    },
    Preset {
        name: "dream-7b",
        published: "Dream-org/Dream-v0-Instruct-7B",
        config: include_str!("presets/dream-7b.json"),
        mask_token: "<|mask|>",
        mask_id: 151_666,
    },
];

impl Preset {
    /// The preset called `name`.
    pub fn find(name: &str) -> Option<&'static Preset> {
        PRESETS.iter().find(|p| p.name == name)
    }

    /// Its config, read as the loader reads a folder's.
    pub fn transformer(&self) -> Result<TransformerConfig, ConfigError> {
        match TextConfig::from_json(self.config.as_bytes())? {
            TextConfig::Transformer(c) => Ok(c),
            TextConfig::Dit(_) => Err(ConfigError::Unsupported {
                field: "model_type",
                value: self.name.into(),
                hint: "a preset of the published diffusion LMs names a transformer",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::transformer::Architecture;

    fn config(name: &str) -> TransformerConfig {
        Preset::find(name).unwrap().transformer().unwrap()
    }

    fn shape(c: &TransformerConfig, key: &str) -> Vec<usize> {
        c.layout()
            .into_iter()
            .find(|s| s.name == key)
            .unwrap_or_else(|| panic!("{key} is not in the layout"))
            .shape
    }

    #[test]
    fn a_quantized_embedding_fits_a_webgpu_binding_the_f16_one_does_not() {
        use crate::model::quant::{QuantFormat, Quantization};
        let mut c = config("a2d-qwen3-0.6b");
        // 151,936 × 1,024 at f16: 311 MB, above WebGPU's default 128 MiB binding.
        assert_eq!(c.largest_tensor_bytes(2), 151_936 * 1_024 * 2);
        c.quantization = Some(Quantization::new(QuantFormat::Q4));
        // Half a byte a weight plus an f16 scale per 32: 87.5 MB.
        assert_eq!(c.largest_tensor_bytes(2), 151_936 * 512 + 151_936 * 32 * 2);
        c.quantization = Some(Quantization::new(QuantFormat::Q8));
        assert_eq!(
            c.largest_tensor_bytes(2),
            151_936 * 1_024 + 151_936 * 32 * 2
        );
    }

    #[test]
    fn every_preset_loads_and_its_mask_fits_the_embedding() {
        for p in PRESETS {
            let c = p.transformer().unwrap();
            assert!((p.mask_id as usize) < c.vocab_size, "{}", p.name);
            if let Some(m) = c.mask_token_id {
                assert_eq!(m, p.mask_id, "{}", p.name);
            }
        }
    }

    #[test]
    fn qwen3_0_6b_has_the_published_shapes_and_size() {
        let c = config("a2d-qwen3-0.6b");
        assert_eq!(c.architecture, Architecture::A2dQwen3);
        // head_dim 128 ≠ 1024 / 16: q_proj widens the stream, o_proj narrows it back.
        assert_eq!(
            shape(&c, "model.layers.0.self_attn.q_proj.weight"),
            [2048, 1024]
        );
        assert_eq!(
            shape(&c, "model.layers.27.self_attn.k_proj.weight"),
            [1024, 1024]
        );
        assert_eq!(
            shape(&c, "model.layers.0.self_attn.o_proj.weight"),
            [1024, 2048]
        );
        assert_eq!(shape(&c, "model.layers.0.self_attn.q_norm.weight"), [128]);
        assert_eq!(
            shape(&c, "model.layers.0.mlp.down_proj.weight"),
            [1024, 3072]
        );
        assert!(
            c.layout().iter().all(|s| s.name != "lm_head.weight"),
            "tied"
        );
        assert!(!c.layout().iter().any(|s| s.name.ends_with(".bias")));
        // Qwen's model card: 0.6B parameters, 0.44B of them outside the embedding.
        let total = c.parameter_count();
        let embedding = 151_936 * 1024;
        assert!((590_000_000..610_000_000).contains(&total), "{total}");
        assert!(
            (430_000_000..450_000_000).contains(&(total - embedding)),
            "{total}"
        );
        assert_eq!(c.largest_tensor_elements(), embedding);
        assert_eq!(config("a2d-qwen3-0.6b-bd3lm").block_size, Some(32));
    }

    #[test]
    fn qwen2_5_coder_has_biases_on_q_k_v_only() {
        let c = config("a2d-qwen2.5-coder-0.5b");
        assert_eq!(c.head_dim, 64);
        assert_eq!(shape(&c, "model.layers.0.self_attn.k_proj.bias"), [128]);
        assert_eq!(shape(&c, "model.layers.0.self_attn.q_proj.bias"), [896]);
        assert!(
            c.layout()
                .iter()
                .all(|s| s.name != "model.layers.0.self_attn.o_proj.bias")
        );
        let total = c.parameter_count();
        assert!((490_000_000..500_000_000).contains(&total), "{total}");
    }

    #[test]
    fn llada_8b_and_dream_7b_have_their_published_sizes() {
        let llada = config("llada-8b");
        assert_eq!(
            shape(&llada, "model.transformer.blocks.31.ff_proj.weight"),
            [12288, 4096]
        );
        assert_eq!(
            shape(&llada, "model.transformer.ff_out.weight"),
            [126_464, 4096]
        );
        assert_eq!(llada.mask_token_id, Some(126_336));
        let total = llada.parameter_count();
        assert!((8_000_000_000..8_050_000_000).contains(&total), "{total}");
        let dream = config("dream-7b");
        assert!(dream.shift_logits);
        assert_eq!(
            shape(&dream, "model.layers.0.self_attn.v_proj.weight"),
            [512, 3584]
        );
        let total = dream.parameter_count();
        assert!((7_600_000_000..7_650_000_000).contains(&total), "{total}");
    }
}
