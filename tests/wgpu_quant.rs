//! Quantized weights on burn's wgpu backend (Mesa lavapipe in CI): what the device holds after
//! a load, and the logits against the CPU backend. A test binary of its own: the memory pools
//! are the device's, and another test running beside it would move them.
//!
//! Without a Vulkan/Metal/DX12 adapter the test reports a skip, unless `UNMASK_REQUIRE_WGPU` is
//! set (CI sets it), in which case a missing adapter fails.

mod common;

use common::{max_abs_diff, wgpu};
use unmask::backend::{self, BackendKind};
use unmask::bundle::Bundle;

#[test]
fn quantized_weights_stay_quantized_on_the_gpu_and_match_the_cpu_backend() {
    use unmask::bundle::{ModelFiles, TextConfig};
    use unmask::model::quant::QuantFormat;
    use unmask::model::transformer::quantize_checkpoint;
    let Some(device) = wgpu() else {
        return;
    };
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dllm/a2d-qwen2");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let TextConfig::Transformer(config) = TextConfig::from_json(&read("config.json")).unwrap()
    else {
        panic!("a2d-qwen2 read as a DiT")
    };
    let tokens: Vec<u32> = (0..12).map(|i| (i * 5 % 44) as u32).collect();
    for format in [QuantFormat::Q8, QuantFormat::Q4] {
        let weights = quantize_checkpoint(&config, &[read("model.safetensors")], format).unwrap();
        let stored: usize = safetensors::SafeTensors::deserialize(&weights)
            .unwrap()
            .tensors()
            .iter()
            .map(|(_, view)| view.data().len())
            .sum();
        let mut json: serde_json::Value = serde_json::from_slice(&read("config.json")).unwrap();
        json["quantization"] = serde_json::json!({"format": format.name(), "block_size": 32});
        let json = json.to_string().into_bytes();
        let tokenizer = read("tokenizer.json");
        let open = |device: &burn::tensor::Device| {
            Bundle::from_files(
                ModelFiles {
                    config: &json,
                    weights: std::slice::from_ref(&weights),
                    tokenizer: &tokenizer,
                    tokenizer_config: None,
                },
                device,
            )
            .unwrap()
        };
        let before = device.memory_pool_usage().map(|u| u.bytes_in_use);
        let gpu = open(&device);
        let after = device.memory_pool_usage().map(|u| u.bytes_in_use);
        // cubecl reports its pools; a backend that stopped would hide what a load expands.
        assert!(
            before.is_some() && after.is_some(),
            "wgpu reports no memory pools"
        );
        if let (Some(before), Some(after)) = (before, after) {
            // Nothing expanded at load: the device holds what the file stores (≤ 1.15×).
            let held = after.saturating_sub(before) as f64;
            eprintln!("{format:?}: {held} bytes on the device for {stored} stored");
            assert!(
                held <= 1.15 * stored as f64,
                "{format:?}: {held} bytes on the device for {stored} stored"
            );
        }
        let cpu = open(&backend::init(BackendKind::Cpu).unwrap());
        let a = pollster::block_on(gpu.model.logits(&[&tokens], 0.0)).unwrap();
        let b = pollster::block_on(cpu.model.logits(&[&tokens], 0.0)).unwrap();
        let diff = max_abs_diff(a.as_slice(), b.as_slice());
        assert!(diff < 1e-3, "{format:?}: max |Δ| = {diff}");
    }

    // A llama.cpp Q4_0 file (`unmask import`) holds the level −8, which Unmask's own q4 never
    // writes: cubecl's quantized matmul must read it as −8, as the CPU's expansion does (and the
    // embedding, whose rows burn gathers by quantizing them again at ±7, was re-quantized at
    // import so that both backends hold the same rows). After the loop, so that the memory
    // measurements above see no other load.
    use unmask::model::gguf_import::{ImportOptions, import};
    let gguf = std::fs::read(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gguf/llada.q4_0.gguf"),
    )
    .unwrap();
    let imported = import(&gguf, &ImportOptions::default()).unwrap();
    let tokenizer = std::fs::read(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dllm/llada/tokenizer.json"),
    )
    .unwrap();
    let open = |device: &burn::tensor::Device| {
        Bundle::from_files(
            ModelFiles {
                config: &imported.config,
                weights: std::slice::from_ref(&imported.weights),
                tokenizer: &tokenizer,
                tokenizer_config: None,
            },
            device,
        )
        .unwrap()
    };
    let a = pollster::block_on(open(&device).model.logits(&[&tokens], 0.0)).unwrap();
    let cpu = backend::init(BackendKind::Cpu).unwrap();
    let b = pollster::block_on(open(&cpu).model.logits(&[&tokens], 0.0)).unwrap();
    let diff = max_abs_diff(a.as_slice(), b.as_slice());
    assert!(diff < 1e-3, "imported Q4_0: max |Δ| = {diff}");
}
