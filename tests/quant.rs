//! Quantized weights (`unmask quantize`): a quantized folder computes exactly what its
//! dequantized weights compute, drifts from f32 by the amounts BENCHMARKS.md reports, stays
//! quantized on the device, and bad quantized files are clear errors.

mod common;

use std::path::PathBuf;

use common::{flat, ids, max_abs_diff};
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, BundleError, ModelFiles, TextConfig};
use unmask::model::TransformerConfig;
use unmask::model::quant::{QuantFormat, QuantizedMatrix, dequantize_matrix, quantized_keys};
use unmask::model::transformer::quantize_checkpoint;

use common::{DLLM_FOLDERS as FOLDERS, unmask};
const FORMATS: [QuantFormat; 2] = [QuantFormat::Q8, QuantFormat::Q4];

fn dir(name: &str) -> PathBuf {
    common::dllm_dir(name)
}

fn read(name: &str, file: &str) -> Vec<u8> {
    std::fs::read(dir(name).join(file)).unwrap()
}

fn transformer(config: &[u8]) -> TransformerConfig {
    match TextConfig::from_json(config).unwrap() {
        TextConfig::Transformer(c) => c,
        TextConfig::Dit(_) => panic!("read as a DiT"),
    }
}

/// The fixture's config.json declaring `format`.
fn quantized_config(name: &str, format: QuantFormat) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(&read(name, "config.json")).unwrap();
    json["quantization"] = serde_json::json!({"format": format.name(), "block_size": 32});
    json.to_string().into_bytes()
}

fn load(
    config: &[u8],
    weights: Vec<u8>,
    name: &str,
    device: &burn::tensor::Device,
) -> Result<Bundle, BundleError> {
    Bundle::from_files(
        ModelFiles {
            config,
            weights: &[weights],
            tokenizer: &read(name, "tokenizer.json"),
            tokenizer_config: None,
        },
        device,
    )
}

fn logits(bundle: &Bundle, tokens: &[u32]) -> Vec<f32> {
    pollster::block_on(bundle.model.logits(&[tokens], 0.0))
        .unwrap()
        .as_slice()
        .to_vec()
}

/// The quantized checkpoint's weights expanded back to f32, under the original keys.
fn dequantized(config: &TransformerConfig, quantized: &[u8], format: QuantFormat) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(quantized).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for slot in config.layout() {
        let values = match slot.matrix() {
            Some((rows, cols)) => {
                let (v, s) = quantized_keys(&slot.name);
                let m = QuantizedMatrix {
                    values: file.tensor(&v).unwrap().data().to_vec(),
                    scales: file.tensor(&s).unwrap().data().to_vec(),
                };
                dequantize_matrix(&m, rows, cols, format).unwrap()
            }
            None => flat_f32(file.tensor(&slot.name).unwrap().data()),
        };
        tensors.push((slot.name, slot.shape, values));
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    common::serialize_tensors(&bytes, safetensors::Dtype::F32)
}

fn flat_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Every quantized tensor is found under its key, expanded and laid out where the float
/// checkpoint has it (on the CPU backend, which expands them at load; `tests/wgpu_quant.rs` holds
/// the GPU's quantized matmul to these logits, and `quant::tests` burn's reading of the bytes).
#[test]
fn a_quantized_model_computes_what_its_dequantized_weights_compute() {
    let device = backend::init(BackendKind::Cpu).unwrap();
    for name in FOLDERS {
        let config = transformer(&read(name, "config.json"));
        let reference: serde_json::Value =
            serde_json::from_slice(&read(name, "reference.json")).unwrap();
        let tokens = ids(&reference["tokens"]);
        for format in FORMATS {
            let weights =
                quantize_checkpoint(&config, &[read(name, "model.safetensors")], format).unwrap();
            let expanded = dequantized(&config, &weights, format);
            let quantized = load(&quantized_config(name, format), weights, name, &device).unwrap();
            let float = load(&read(name, "config.json"), expanded, name, &device).unwrap();
            let diff = max_abs_diff(&logits(&quantized, &tokens), &logits(&float, &tokens));
            assert!(diff < 1e-4, "{name} {format:?}: max |Δ| = {diff}");
        }
    }
}

/// Largest |Δ| of the logits from f32 per format, as a share of the largest |logit| (measured:
/// q8 2–3%, q4 31–56% on these tiny random-weight models, where every bit of the error reaches
/// the logits through two layers of width 32; BENCHMARKS.md has the table). A wrong nibble order
/// or scale drifts past 100%.
const DRIFT_BOUNDS: [(QuantFormat, f32); 2] = [(QuantFormat::Q8, 0.05), (QuantFormat::Q4, 0.6)];

#[test]
fn quantized_logits_drift_from_f32_within_bounds_q8_closer_than_q4() {
    let device = backend::init(BackendKind::Cpu).unwrap();
    for name in FOLDERS {
        let config = transformer(&read(name, "config.json"));
        let reference: serde_json::Value =
            serde_json::from_slice(&read(name, "reference.json")).unwrap();
        let tokens = ids(&reference["tokens"]);
        let want = flat(&reference["logits"]);
        let mut drifts = Vec::new();
        for (format, bound) in DRIFT_BOUNDS {
            let weights =
                quantize_checkpoint(&config, &[read(name, "model.safetensors")], format).unwrap();
            let bundle = load(&quantized_config(name, format), weights, name, &device).unwrap();
            let got = logits(&bundle, &tokens);
            // Raw rows on both sides (Dream's shift included).
            let drift = max_abs_diff(&got, &want);
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            let v = want.len() / tokens.len();
            let top = |l: &[f32], i: usize| {
                (0..v)
                    .max_by(|&a, &b| l[i * v + a].total_cmp(&l[i * v + b]))
                    .unwrap()
            };
            let same = (0..tokens.len())
                .filter(|&i| top(&got, i) == top(&want, i))
                .count();
            eprintln!(
                "{name} {}: max |Δ| = {drift:.4} of logits up to {scale:.2} ({:.1}%), top-1 kept at {same}/{} positions",
                format.name(),
                100.0 * drift / scale,
                tokens.len()
            );
            assert!(
                drift > 0.0 && drift < bound * scale,
                "{name} {format:?}: {drift} of {scale}"
            );
            drifts.push(drift);
        }
        assert!(
            drifts[0] < drifts[1],
            "{name}: q8 {} vs q4 {}",
            drifts[0],
            drifts[1]
        );
    }
}

#[test]
fn quantized_files_are_a_fraction_of_f32() {
    for name in FOLDERS {
        let original = read(name, "model.safetensors");
        let config = transformer(&read(name, "config.json"));
        let sizes: Vec<usize> = FORMATS
            .iter()
            .map(|&f| {
                quantize_checkpoint(&config, std::slice::from_ref(&original), f)
                    .unwrap()
                    .len()
            })
            .collect();
        // Matrices at 8.5 and 4.5 bits a weight, norms and biases as stored (f32 here).
        assert!(
            sizes[0] * 3 < original.len(),
            "{name}: q8 {} of {}",
            sizes[0],
            original.len()
        );
        assert!(
            sizes[1] < sizes[0] * 2 / 3,
            "{name}: q4 {} vs q8 {}",
            sizes[1],
            sizes[0]
        );
    }
}

#[test]
fn broken_quantized_folders_are_clear_errors() {
    let device = backend::init(BackendKind::Cpu).unwrap();
    let name = "a2d-qwen3";
    let config = transformer(&read(name, "config.json"));
    let weights =
        quantize_checkpoint(&config, &[read(name, "model.safetensors")], QuantFormat::Q4).unwrap();
    // The message of a load that must fail.
    let load_error = |config: &[u8], weights: Vec<u8>| {
        load(config, weights, name, &device)
            .err()
            .unwrap()
            .to_string()
    };
    // Declared q8, stored q4: half the columns.
    let err = load_error(&quantized_config(name, QuantFormat::Q8), weights.clone());
    assert!(
        err.contains("embed_tokens.qweight") && err.contains("[64, 16]"),
        "{err}"
    );
    // q8 values stored as U8 instead of I8.
    let q8 =
        quantize_checkpoint(&config, &[read(name, "model.safetensors")], QuantFormat::Q8).unwrap();
    let file = safetensors::SafeTensors::deserialize(&q8).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(key, view)| {
            let dtype = if key == "model.embed_tokens.qweight" {
                safetensors::Dtype::U8
            } else {
                view.dtype()
            };
            let view =
                safetensors::tensor::TensorView::new(dtype, view.shape().to_vec(), view.data())
                    .unwrap();
            (key, view)
        })
        .collect();
    let retyped = safetensors::serialize(views, None).unwrap();
    let err = load_error(&quantized_config(name, QuantFormat::Q8), retyped);
    assert!(
        err.contains("embed_tokens.qweight") && err.contains("I8 (q8 values)"),
        "{err}"
    );
    // Quantized weights under a config that does not say so.
    let err = load_error(&read(name, "config.json"), weights);
    assert!(err.contains("model.embed_tokens.weight"), "{err}");
    // A block size Unmask does not read.
    let mut json: serde_json::Value = serde_json::from_slice(&read(name, "config.json")).unwrap();
    json["quantization"] = serde_json::json!({"format": "q8", "block_size": 16});
    let err = TextConfig::from_json(json.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("quantization = block_size 16"), "{err}");
}

#[test]
fn unmask_quantize_writes_a_folder_that_chats_and_refuses_what_it_cannot_quantize() {
    let out = std::env::temp_dir().join(format!("unmask-quantize-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let src = dir("a2d-qwen2");
    let run = |from: &PathBuf, to: &PathBuf, format: &str| {
        unmask(&[
            "quantize",
            "--in",
            from.to_str().unwrap(),
            "--out",
            to.to_str().unwrap(),
            "--format",
            format,
        ])
    };
    let q4 = out.join("q4");
    let done = run(&src, &q4, "q4");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // The tokenizer files come along: the quantized folder chats.
    let chat = unmask(&[
        "chat",
        "--model",
        q4.to_str().unwrap(),
        "--message",
        "the cat",
        "--gen-length",
        "4",
        "--quiet",
    ]);
    assert!(
        chat.status.success(),
        "{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    let inspect = unmask(&["inspect", "--model", q4.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("weights     q4: every matrix in blocks of 32"),
        "{text}"
    );
    // Never twice, never over existing files, never a DiT.
    let again = run(&q4, &out.join("again"), "q8");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("quantized already"));
    let over = run(&src, &q4, "q8");
    assert!(!over.status.success());
    assert!(String::from_utf8_lossy(&over.stderr).contains("not overwritten"));
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    let dit = run(&tiny, &out.join("dit"), "q8");
    assert_eq!(dit.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dit.stderr).contains("a DiT stays as it is"));
    let _ = std::fs::remove_dir_all(&out);
}
