//! Whether a model fits the page, decided from its config.json before a byte of its weights is
//! downloaded: WebAssembly addresses 4 GiB, and the CPU fallback keeps every weight there.
//!
//! The estimate is [`TextConfig::page_memory`]: on WebGPU the weights live on the GPU and the
//! page holds only what a load decodes at once (a DiT's file, a transformer's largest stage); on
//! the CPU they all stay, as f32.

use crate::bundle::TextConfig;
use crate::page::human_bytes;

/// What a model may take of wasm32's 4 GiB: the rest holds the module, the tokenizer, the
/// activations, the logits and the allocator's slack.
pub const PAGE_MEMORY_LIMIT: u64 = 3_000_000_000;

/// The most f32 weights the CPU fallback runs: about 400M parameters. The page's CPU path
/// computes a few GFLOP/s (BENCHMARKS.md), so past that a single step over a 64-token canvas
/// takes tens of seconds, and the 0.6B models would also leave too little of the 4 GiB to run.
pub const CPU_WEIGHTS_LIMIT: u64 = 1_600_000_000;

/// Refuses, with the estimate in words, a model that does not fit the page or would be too slow
/// on its CPU fallback (`on_cpu`).
pub fn check_memory(config: &TextConfig, on_cpu: bool) -> Result<(), String> {
    let memory = config.page_memory(on_cpu);
    if on_cpu && memory.resident > CPU_WEIGHTS_LIMIT {
        return Err(format!(
            "this model's weights take about {} as f32 on the CPU fallback, more than the {} it runs in usefully (a step would take minutes); run it on WebGPU (untick \"force CPU\", or use a browser with WebGPU) or with the CLI",
            human_bytes(memory.resident),
            human_bytes(CPU_WEIGHTS_LIMIT)
        ));
    }
    let total = memory.resident.saturating_add(memory.loading);
    if total > PAGE_MEMORY_LIMIT {
        return Err(format!(
            "loading this model would take about {} of the page's memory, more than the {} a page may use (WebAssembly addresses 4 GiB; each tensor is decoded to f32 as it loads); quantize it (`unmask quantize --format q4`), whose matrices go to the GPU as they are, or run it with the CLI",
            human_bytes(total),
            human_bytes(PAGE_MEMORY_LIMIT)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets::Preset;
    use crate::model::quant::{QuantFormat, Quantization};

    fn preset(name: &str) -> crate::model::TransformerConfig {
        Preset::find(name).unwrap().transformer().unwrap()
    }

    #[test]
    fn the_small_models_fit_the_0_6b_needs_webgpu_and_8b_needs_quantizing() {
        let default = TextConfig::from_json(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/www/models/default/bd3/config.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(check_memory(&default, true), Ok(()));
        assert_eq!(check_memory(&default, false), Ok(()));

        let qwen = TextConfig::Transformer(preset("a2d-qwen3-0.6b"));
        assert_eq!(check_memory(&qwen, false), Ok(()));
        let err = check_memory(&qwen, true).unwrap_err();
        assert!(err.contains("2.4 GB as f32 on the CPU fallback"), "{err}");

        // LLaDA-8B: its 126,464 × 4,096 embedding alone is 2.1 GB in f32, twice while it loads.
        let mut llada = preset("llada-8b");
        let err = check_memory(&TextConfig::Transformer(llada.clone()), false).unwrap_err();
        assert!(err.contains("quantize it"), "{err}");
        llada.quantization = Some(Quantization::new(QuantFormat::Q4));
        assert_eq!(check_memory(&TextConfig::Transformer(llada), false), Ok(()));
    }
}
