//! llama.cpp's GGUF files (`unmask import`): files written by gguf-py from the dllm fixtures
//! (`scripts/make_gguf_fixtures.py`, `tests/fixtures/gguf/`) become folders that compute the
//! reference's logits; quantized ones hold exactly what gguf-py reads back; the vocabulary
//! rebuilds the tokenizer it came from; damaged files are clear errors.

mod common;

use std::path::PathBuf;

use common::{flat, ids, max_abs_diff, unmask};
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, ModelFiles, TextConfig};
use unmask::model::gguf::{Gguf, decode};
use unmask::model::gguf_import::{ImportError, ImportOptions, Imported, import, rebuild_tokenizer};
use unmask::model::quant::{QuantFormat, dequantize, quantized_keys};
use unmask::model::{Architecture, TransformerConfig};

/// As tests/dllm.rs: the reference's own eager and SDPA paths differ by 4e-6.
const TOLERANCE: f32 = 3e-5;
/// F16 matrices move the fixtures' logits (of size ~3) by up to ~1e-2.
const F16_TOLERANCE: f32 = 3e-2;

fn gguf_file(name: &str) -> Vec<u8> {
    std::fs::read(gguf_path(name)).unwrap()
}

fn gguf_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

fn reference(folder: &str) -> serde_json::Value {
    let path = common::dllm_dir(folder).join("reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn imported(name: &str) -> Imported {
    let options = ImportOptions {
        rebuild_tokenizer: true,
        ..ImportOptions::default()
    };
    import(&gguf_file(name), &options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn open(i: &Imported) -> Bundle {
    Bundle::from_files(
        ModelFiles {
            config: &i.config,
            weights: std::slice::from_ref(&i.weights),
            tokenizer: i.tokenizer.as_deref().unwrap(),
            tokenizer_config: Some(&i.tokenizer_config),
        },
        &backend::init(BackendKind::Cpu).unwrap(),
    )
    .unwrap()
}

fn logits(bundle: &Bundle, tokens: &[u32]) -> Vec<f32> {
    pollster::block_on(bundle.model.logits(&[tokens], 0.0))
        .unwrap()
        .as_slice()
        .to_vec()
}

fn transformer(config: &[u8]) -> TransformerConfig {
    match TextConfig::from_json(config).unwrap() {
        TextConfig::Transformer(c) => c,
        TextConfig::Dit(_) => panic!("read as a DiT"),
    }
}

#[test]
fn every_architecture_imports_to_its_reference_logits() {
    let cases = [
        ("llada.gguf", "llada", Architecture::Llada, TOLERANCE),
        ("dream.gguf", "dream", Architecture::Dream, TOLERANCE),
        (
            "a2d-qwen3.gguf",
            "a2d-qwen3",
            Architecture::A2dQwen3,
            TOLERANCE,
        ),
        (
            "a2d-qwen2.gguf",
            "a2d-qwen2",
            Architecture::A2dQwen2,
            TOLERANCE,
        ),
        (
            "dream.f16.gguf",
            "dream",
            Architecture::Dream,
            F16_TOLERANCE,
        ),
    ];
    for (file, folder, architecture, tolerance) in cases {
        let i = imported(file);
        assert_eq!(i.architecture, architecture, "{file}");
        assert_eq!(i.quantization, None, "{file}");
        // The shape the folder's own config.json gives, read back from the GGUF metadata
        // (Qwen3's head_dim of 16 is not hidden / heads = 8: `attention.key_length`).
        let got = transformer(&i.config);
        let want =
            transformer(&std::fs::read(common::dllm_dir(folder).join("config.json")).unwrap());
        let shape = |c: &TransformerConfig| {
            (
                c.vocab_size,
                c.hidden_size,
                c.intermediate_size,
                c.num_hidden_layers,
                c.num_attention_heads,
                c.num_key_value_heads,
                c.head_dim,
                c.tie_word_embeddings,
                c.qkv_bias,
                c.qk_norm,
                c.shift_logits,
                c.max_position_embeddings,
            )
        };
        assert_eq!(shape(&got), shape(&want), "{file}");
        // GGUF stores both as f32.
        assert!((got.rms_norm_eps - want.rms_norm_eps).abs() < want.rms_norm_eps * 1e-6);
        assert_eq!(got.rope_theta as f32, want.rope_theta as f32, "{file}");
        assert_eq!(got.mask_token_id, Some(47), "{file}");

        let r = reference(folder);
        let bundle = open(&i);
        assert_eq!(bundle.codec.mask_id(), 47, "{file}");
        let diff = max_abs_diff(&logits(&bundle, &ids(&r["tokens"])), &flat(&r["logits"]));
        assert!(diff < tolerance, "{file}: max |Δ| = {diff}");
    }
}

#[test]
fn llada_q_and_k_are_put_back_in_transformers_order() {
    // The converter permutes LLaDA's q/k rows; imported without undoing it, the rotary pairs the
    // wrong coordinates and the logits move far beyond the tolerance. Check that the undone
    // rows are the fixture's rows, not only that the logits agree.
    let i = imported("llada.gguf");
    let got = safetensors::SafeTensors::deserialize(&i.weights).unwrap();
    let original = std::fs::read(common::dllm_dir("llada").join("model.safetensors")).unwrap();
    let want = safetensors::SafeTensors::deserialize(&original).unwrap();
    for key in [
        "model.transformer.blocks.0.q_proj.weight",
        "model.transformer.blocks.1.k_proj.weight",
    ] {
        assert_eq!(
            got.tensor(key).unwrap().data(),
            want.tensor(key).unwrap().data(),
            "{key}"
        );
    }
}

/// The f32 values of `key` in a safetensors file.
fn f32s(file: &safetensors::SafeTensors, key: &str) -> Vec<f32> {
    file.tensor(key)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn quantized_files_hold_exactly_what_gguf_py_reads_back() {
    for (file, folder, format) in [
        ("a2d-qwen3.q8_0.gguf", "a2d-qwen3", QuantFormat::Q8),
        ("llada.q4_0.gguf", "llada", QuantFormat::Q4),
    ] {
        let i = imported(file);
        assert_eq!(i.quantization, Some(format), "{file}");
        // A Q4_0 embedding alone gets Unmask's levels (burn's row gather reads 4-bit levels as
        // ±7); every other matrix keeps the file's.
        let requantized = format == QuantFormat::Q4;
        if requantized {
            assert_eq!(i.notes.len(), 1, "{file}: {:?}", i.notes);
            assert!(
                i.notes[0].starts_with("token_embd.weight (Q4_0) re-quantized"),
                "{:?}",
                i.notes
            );
        } else {
            assert!(i.notes.is_empty(), "{file}: {:?}", i.notes);
        }
        let embedding = TextConfig::from_json(&i.config)
            .map(|c| match c {
                TextConfig::Transformer(c) => c
                    .architecture
                    .key(unmask::model::transformer::Key::Embedding),
                TextConfig::Dit(_) => panic!("a DiT"),
            })
            .unwrap();
        let mut dequantized = std::collections::HashMap::new();
        let config = transformer(&i.config);
        assert_eq!(config.quantization.map(|q| q.format), Some(format));
        let expected_bytes =
            std::fs::read(gguf_path(&file.replace(".gguf", ".expected.safetensors"))).unwrap();
        let expected = safetensors::SafeTensors::deserialize(&expected_bytes).unwrap();
        let stored = safetensors::SafeTensors::deserialize(&i.weights).unwrap();
        let mut lowest = 0i8;
        for (key, view) in expected.tensors() {
            let &[rows, cols] = view.shape() else {
                panic!("{key}: {:?}", view.shape())
            };
            let (values_key, scales_key) = quantized_keys(&key);
            let values = stored.tensor(&values_key).unwrap();
            let scales = stored.tensor(&scales_key).unwrap();
            if format == QuantFormat::Q4 {
                lowest = lowest.min(
                    values
                        .data()
                        .iter()
                        .flat_map(|&b| [((b << 4) as i8) >> 4, (b as i8) >> 4])
                        .min()
                        .unwrap(),
                );
            }
            let got = dequantize(&key, values.data(), scales.data(), rows, cols, format).unwrap();
            let want = f32s(&expected, &key);
            let diff = max_abs_diff(&got, &want);
            if requantized && key == embedding {
                // Within half a level of the new scale (8/7 of Q4_0's), plus f16 rounding.
                let largest = want.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(
                    diff > 0.0 && diff <= largest / 7.0 * 0.51,
                    "{file} {key}: {diff}"
                );
            } else {
                assert_eq!(diff, 0.0, "{file} {key}");
            }
            dequantized.insert(key, got);
        }
        if format == QuantFormat::Q4 {
            // Q4_0 gives each block's largest weight the level −8, which Unmask's own q4 never
            // writes: the import must carry it through.
            assert_eq!(lowest, -8, "{file}");
        }

        // The quantized folder computes what a float folder of its weights computes (gguf-py's
        // values, the re-quantized embedding's own).
        let original = std::fs::read(common::dllm_dir(folder).join("model.safetensors")).unwrap();
        let original = safetensors::SafeTensors::deserialize(&original).unwrap();
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (key, view) in original.tensors() {
            let bytes = match dequantized.get(&key) {
                Some(w) => w.iter().flat_map(|x| x.to_le_bytes()).collect(),
                None => view.data().to_vec(),
            };
            tensors.push((key, view.shape().to_vec(), bytes));
        }
        let float_weights = common::serialize_tensors(&tensors, safetensors::Dtype::F32);
        let float_config = std::fs::read(common::dllm_dir(folder).join("config.json")).unwrap();
        let tokenizer = std::fs::read(common::dllm_dir(folder).join("tokenizer.json")).unwrap();
        let float = Bundle::from_files(
            ModelFiles {
                config: &float_config,
                weights: &[float_weights],
                tokenizer: &tokenizer,
                tokenizer_config: None,
            },
            &backend::init(BackendKind::Cpu).unwrap(),
        )
        .unwrap();
        let tokens = ids(&reference(folder)["tokens"]);
        let diff = max_abs_diff(&logits(&open(&i), &tokens), &logits(&float, &tokens));
        assert!(diff < TOLERANCE, "{file}: max |Δ| = {diff}");
    }
}

#[test]
fn a_q6_k_head_is_stored_at_eight_bits_and_the_q4_0_matrices_widen_exactly() {
    // As llama-quantize writes a Q4_0 file: Q4_0 matrices, the head in Q6_K.
    let bytes = gguf_file("a2d-qwen3-q6k.gguf");
    let i = imported("a2d-qwen3-q6k.gguf");
    assert_eq!(i.quantization, Some(QuantFormat::Q8));
    assert!(
        i.notes
            .iter()
            .any(|n| n.starts_with("output.weight (Q6_K) quantized to q8")),
        "{:?}",
        i.notes
    );
    let g = Gguf::parse(&bytes).unwrap();
    let stored = safetensors::SafeTensors::deserialize(&i.weights).unwrap();
    let read = |gguf_name: &str, key: &str| {
        let t = g.tensor(gguf_name).unwrap();
        let want = decode(&bytes[t.range.start as usize..t.range.end as usize], t.ty);
        let (values_key, scales_key) = quantized_keys(key);
        let (values, scales) = (
            stored.tensor(&values_key).unwrap(),
            stored.tensor(&scales_key).unwrap(),
        );
        let [rows, cols] = values.shape() else {
            panic!("{key}")
        };
        let got = dequantize(
            key,
            values.data(),
            scales.data(),
            *rows,
            *cols,
            QuantFormat::Q8,
        )
        .unwrap();
        (got, want)
    };
    // A Q4_0 matrix widens to q8 exactly.
    let (got, want) = read(
        "blk.0.ffn_gate.weight",
        "model.layers.0.mlp.gate_proj.weight",
    );
    assert_eq!(max_abs_diff(&got, &want), 0.0);
    // The Q6_K head is within half a q8 level of what the file holds.
    let (got, want) = read("output.weight", "lm_head.weight");
    let largest = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = max_abs_diff(&got, &want);
    assert!(diff > 0.0 && diff <= largest / 127.0 * 0.51, "{diff}");
    // And the folder runs.
    let bundle = open(&i);
    let logits = logits(&bundle, &[1, 2, 3, 63, 63]);
    assert!(logits.iter().all(|x| x.is_finite()));
}

#[test]
fn the_vocabulary_rebuilds_the_tokenizer_it_came_from() {
    let bytes = gguf_file("bpe-vocab.gguf");
    let g = Gguf::parse(&bytes).unwrap();
    let rebuilt = tokenizers::Tokenizer::from_bytes(rebuild_tokenizer(&g).unwrap()).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let original =
        tokenizers::Tokenizer::from_file(root.join("www/models/default/bd3/tokenizer.json"))
            .unwrap();
    let texts = [
        "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
        "In the beginning God created the heavens and the earth.\n\n  2 Now the earth was formless",
        "Mr. Darcy's 10,000 a year — \"isn't it?\" she said;<eos> 12345 tabs\tand  double  spaces",
    ];
    for text in texts {
        let want = original.encode(text, false).unwrap();
        let got = rebuilt.encode(text, false).unwrap();
        assert_eq!(got.get_ids(), want.get_ids(), "{text}");
        assert_eq!(
            rebuilt.decode(got.get_ids(), false).unwrap(),
            original.decode(want.get_ids(), false).unwrap()
        );
    }
    assert_eq!(rebuilt.get_vocab_size(true), original.get_vocab_size(true));
}

/// `bytes` with the first occurrence of `from` replaced by `to` (same length).
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{:?} not in the file", String::from_utf8_lossy(from)));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

fn error(bytes: &[u8]) -> String {
    match import(bytes, &ImportOptions::default()) {
        Ok(_) => panic!("imported"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn damaged_and_foreign_files_are_clear_errors() {
    let llada = gguf_file("llada.q4_0.gguf");
    // Cut anywhere: never a panic, always a message.
    for cut in [
        0,
        3,
        4,
        10,
        24,
        40,
        200,
        1000,
        llada.len() / 2,
        llada.len() - 1,
    ] {
        let message = error(&llada[..cut]);
        assert!(
            message.contains("truncated") || message.contains("not a GGUF file"),
            "cut at {cut}: {message}"
        );
    }
    assert!(error(b"GGML0000").contains("not a GGUF file"));

    // A K-quant tensor: named, with the way out.
    let mut info = b"blk.0.attn_q.weight".to_vec();
    info.extend(2u32.to_le_bytes());
    info.extend(32u64.to_le_bytes());
    info.extend(32u64.to_le_bytes());
    let (mut q4k, mut q6k) = (info.clone(), info.clone());
    info.extend(2u32.to_le_bytes());
    q4k.extend(12u32.to_le_bytes());
    q6k.extend(14u32.to_le_bytes());
    let message = error(&patched(&llada, &info, &q4k));
    assert!(
        message.contains("`blk.0.attn_q.weight` is stored as Q4_K"),
        "{message}"
    );
    assert!(message.contains("--pure"), "{message}");
    // Q6_K is read, in super-blocks of 256: a row of 32 cannot hold one.
    let message = error(&patched(&llada, &info, &q6k));
    assert!(
        message.contains("rows of 32 are not whole blocks of 256 (Q6_K)"),
        "{message}"
    );

    // An autoregressive architecture.
    let message = error(&patched(
        &llada,
        b"\x05\0\0\0\0\0\0\0llada",
        b"\x05\0\0\0\0\0\0\0llama",
    ));
    assert!(
        message.contains("`llama`") && message.contains("autoregressive"),
        "{message}"
    );

    // A Qwen without a mask token is an autoregressive Qwen.
    let qwen = gguf_file("a2d-qwen3.q8_0.gguf");
    let no_mask = patched(
        &patched(
            &qwen,
            b"tokenizer.ggml.mask_token_id",
            b"tokenizer.ggml.mask_token_ix",
        ),
        b"<|mask|>",
        b"<|mast|>",
    );
    assert!(matches!(
        import(&no_mask, &ImportOptions::default()),
        Err(ImportError::Autoregressive { .. })
    ));

    // A count no file holds, refused before anything is reserved for it.
    let mut huge = llada.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let message = error(&huge);
    assert!(message.contains("tensor count"), "{message}");

    // Metadata that disagrees with the tensors: named.
    let mut key = b"qwen3.feed_forward_length".to_vec();
    key.extend(4u32.to_le_bytes()); // u32
    let (mut from, mut to) = (key.clone(), key);
    from.extend(64u32.to_le_bytes());
    to.extend(96u32.to_le_bytes());
    let message = error(&patched(&qwen, &from, &to));
    assert!(
        message.contains("blk.0.ffn_gate.weight") && message.contains("[96, 32]"),
        "{message}"
    );

    // Dream's shift, contradicted.
    let dream = gguf_file("dream.gguf");
    let message = error(&patched(
        &dream,
        b"dream.attention.causal",
        b"diffusion.shift_logits",
    ));
    assert!(message.contains("diffusion.shift_logits"), "{message}");
}

#[test]
fn the_cli_writes_a_folder_that_generates_and_never_overwrites() {
    let out = std::env::temp_dir().join(format!("unmask-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let input = gguf_path("llada.q4_0.gguf");
    let tokenizer = common::dllm_dir("llada").join("tokenizer.json");
    let args = [
        "import",
        "--in",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
    ];
    let run = unmask(&args);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("llada, q4"), "{stdout}");
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(&tokenizer).unwrap()
    );
    let generate = unmask(&[
        "generate",
        "--model",
        out.to_str().unwrap(),
        "--sampler",
        "llada",
        "--prompt",
        "the cat",
        "--gen-length",
        "8",
        "--steps",
        "4",
        "--quiet",
    ]);
    assert!(
        generate.status.success(),
        "{}",
        String::from_utf8_lossy(&generate.stderr)
    );
    // A file cut short: refused before anything is written.
    let cut = out.with_extension("cut.gguf");
    let bytes = gguf_file("llada.q4_0.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let elsewhere = out.with_extension("never");
    let run = unmask(&[
        "import",
        "--in",
        cut.to_str().unwrap(),
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("truncated"));
    assert!(!elsewhere.exists());
    let _ = std::fs::remove_file(&cut);
    // A second import into the same folder is refused and leaves it as it was.
    let again = unmask(&args);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let _ = std::fs::remove_dir_all(&out);
}
