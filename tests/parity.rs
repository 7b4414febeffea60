//! The Rust DiT against the independent NumPy reference (`scripts/make_fixture.py`): logits in
//! three attention modes, the KV cache, stored dtypes, and golden greedy trajectories.

mod common;

use common::{fixture_file, flat, ids, max_abs_diff, reference, run_all, tiny};
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, ModelFiles};
use unmask::config::Attention;
use unmask::sampler::{Bd3Order, Bd3Settings, Denoiser, Draw, LladaSettings, Remasking, Settings};

const TOLERANCE: f32 = 1e-4;

#[test]
fn logits_match_the_reference_in_every_attention_mode() {
    let r = reference();
    let tokens = ids(&r["tokens"]);
    let mut bundle = tiny();
    let bs = bundle.config.block_size().unwrap();
    for (name, attention) in [
        ("bidirectional", Attention::Bidirectional),
        ("block-causal", Attention::BlockCausal { block_size: bs }),
        ("causal", Attention::Causal),
    ] {
        bundle.model.set_attention(attention);
        let logits = pollster::block_on(bundle.model.logits(&[&tokens], 0.0)).unwrap();
        let diff = max_abs_diff(logits.as_slice(), &flat(&r["logits"][name]));
        assert!(diff < TOLERANCE, "{name}: max |Δ| = {diff}");
    }
}

#[test]
fn attention_modes_really_differ() {
    // Guards the test above: if the masks were ignored all three references would agree.
    let r = reference();
    let bi = flat(&r["logits"]["bidirectional"]);
    let bc = flat(&r["logits"]["block-causal"]);
    assert!(max_abs_diff(&bi, &bc) > 0.1);
}

#[test]
fn kv_cached_blocks_equal_the_uncached_forward() {
    let r = reference();
    let tokens = ids(&r["tokens"]);
    let mut bundle = tiny();
    let bs = bundle.config.block_size().unwrap();
    let full = pollster::block_on(bundle.model.logits(&[&tokens], 0.0)).unwrap();
    let v = full.vocab();
    bundle.model.reset_cache();
    // Feed block by block: each call stores the previous block and denoises the next one.
    let mut prev: &[u32] = &[];
    for start in (0..tokens.len()).step_by(bs) {
        let block = &tokens[start..(start + bs).min(tokens.len())];
        let got = pollster::block_on(bundle.model.predict_cached(prev, block, 0.0)).unwrap();
        let got = pollster::block_on(got.to_host()).unwrap();
        let want = &full.as_slice()[start * v..(start + block.len()) * v];
        let diff = max_abs_diff(got.as_slice(), want);
        assert!(diff < TOLERANCE, "block at {start}: max |Δ| = {diff}");
        prev = block;
    }
}

#[test]
fn causal_kv_cache_equals_the_uncached_forward() {
    let r = reference();
    let tokens = ids(&r["tokens"]);
    let mut bundle = tiny();
    bundle.model.set_attention(Attention::Causal);
    let full = pollster::block_on(bundle.model.logits(&[&tokens], 0.0)).unwrap();
    let v = full.vocab();
    for (i, &t) in tokens.iter().enumerate().take(8) {
        let got = pollster::block_on(bundle.model.predict_cached(&[t], &[], 0.0)).unwrap();
        let got = pollster::block_on(got.to_host()).unwrap();
        let diff = max_abs_diff(got.as_slice(), &full.as_slice()[i * v..(i + 1) * v]);
        assert!(diff < TOLERANCE, "position {i}: max |Δ| = {diff}");
    }
}

/// Rewrites the fixture's weights with every tensor stored as `dtype`, and (for comparison) as f32
/// holding the same rounded values.
fn reencode(dtype: safetensors::Dtype) -> (Vec<u8>, Vec<u8>) {
    let bytes = fixture_file("model.safetensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut narrow = Vec::new();
    let mut wide = Vec::new();
    for (name, view) in file.tensors() {
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let (stored, rounded): (Vec<u8>, Vec<f32>) = match dtype {
            safetensors::Dtype::F16 => {
                let h: Vec<half::f16> = values.iter().map(|&x| half::f16::from_f32(x)).collect();
                (
                    h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    h.iter().map(|x| x.to_f32()).collect(),
                )
            }
            _ => {
                let h: Vec<half::bf16> = values.iter().map(|&x| half::bf16::from_f32(x)).collect();
                (
                    h.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    h.iter().map(|x| x.to_f32()).collect(),
                )
            }
        };
        narrow.push((name.clone(), view.shape().to_vec(), stored));
        wide.push((
            name,
            view.shape().to_vec(),
            rounded
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>(),
        ));
    }
    (
        common::serialize_tensors(&narrow, dtype),
        common::serialize_tensors(&wide, safetensors::Dtype::F32),
    )
}

#[test]
fn f16_and_bf16_checkpoints_load_as_their_f32_values() {
    let r = reference();
    let tokens = ids(&r["tokens"]);
    let device = backend::init(BackendKind::Cpu).unwrap();
    let config = fixture_file("config.json");
    let tokenizer = fixture_file("tokenizer.json");
    for dtype in [safetensors::Dtype::F16, safetensors::Dtype::BF16] {
        let (narrow, wide) = reencode(dtype);
        let load = |weights: &[u8]| {
            let b = Bundle::from_files(
                ModelFiles {
                    config: &config,
                    weights: &[weights.to_vec()],
                    tokenizer: &tokenizer,
                    tokenizer_config: None,
                },
                &device,
            )
            .unwrap();
            pollster::block_on(b.model.logits(&[&tokens], 0.0)).unwrap()
        };
        let (a, b) = (load(&narrow), load(&wide));
        assert_eq!(a.as_slice(), b.as_slice(), "{dtype:?} widened differently");
        // And they are close to the f32 model (rounding the weights is all that changed).
        let diff = max_abs_diff(a.as_slice(), &flat(&r["logits"]["block-causal"]));
        let bound = if dtype == safetensors::Dtype::F16 {
            0.5
        } else {
            3.0
        }; // 11 vs 8 mantissa bits; logits reach ±11
        assert!(diff > 0.0 && diff < bound, "{dtype:?}: max |Δ| = {diff}");
    }
}

fn golden_steps(v: &serde_json::Value) -> Vec<(usize, u32)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s[0].as_u64().unwrap() as usize,
                s[1].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

#[test]
fn greedy_llada_trajectory_equals_the_reference() {
    let r = reference();
    let g = &r["golden"];
    let mut bundle = tiny();
    bundle.model.set_attention(Attention::Bidirectional);
    let gen_length = g["gen_length"].as_u64().unwrap() as usize;
    let settings = Settings::Llada(LladaSettings {
        gen_length,
        steps: gen_length,
        block_length: Some(g["llada"]["block_length"].as_u64().unwrap() as usize),
        ..LladaSettings::default()
    });
    let steps = run_all(settings, &ids(&g["prompt"]), &mut bundle.model);
    let got: Vec<(usize, u32)> = steps
        .iter()
        .map(|s| (s.commits[0].position, s.commits[0].token))
        .collect();
    assert!(steps.iter().all(|s| s.commits.len() == 1));
    assert_eq!(got, golden_steps(&g["llada"]["steps"]));
    assert_eq!(steps.last().unwrap().canvas, ids(&g["llada"]["final"]));
}

#[test]
fn greedy_bd3_trajectory_equals_the_reference_with_and_without_cache() {
    let r = reference();
    let g = &r["golden"];
    let gen_length = g["gen_length"].as_u64().unwrap() as usize;
    for use_cache in [true, false] {
        let mut bundle = tiny();
        let settings = Settings::Bd3(Bd3Settings {
            gen_length,
            order: Bd3Order::Ranked {
                steps: gen_length,
                remasking: Remasking::LowConfidence,
                threshold: None,
            },
            use_cache,
            draw: Draw::at(0.0),
            ..Bd3Settings::default()
        });
        let steps = run_all(settings, &ids(&g["prompt"]), &mut bundle.model);
        let got: Vec<(usize, u32)> = steps
            .iter()
            .flat_map(|s| s.commits.iter().map(|c| (c.position, c.token)))
            .collect();
        assert!(steps.iter().all(|s| s.commits.len() == 1));
        assert_eq!(
            got,
            golden_steps(&g["bd3"]["steps"]),
            "use_cache = {use_cache}"
        );
        assert_eq!(steps.last().unwrap().canvas, ids(&g["bd3"]["final"]));
    }
}

#[test]
fn prompt_text_tokenizes_with_bos_and_masks_in_place() {
    let bundle = tiny();
    let codec = &bundle.codec;
    let ids = codec.encode_prompt("The cat [MASK] on the [MASK]").unwrap();
    let mask = codec.mask_id();
    assert_eq!(ids[0], codec.bos_id().unwrap());
    assert_eq!(ids.len(), 7);
    assert_eq!(ids[3], mask);
    assert_eq!(ids[6], mask);
    assert_eq!(codec.decode(&ids), "the cat [MASK] on the [MASK]");
    assert_eq!(codec.token_text(mask), "[MASK]");
}

#[test]
fn a_tokenizer_without_a_mask_gets_the_last_embedding_row_as_in_gpt2_checkpoints() {
    // Drop [MASK] from the fixture tokenizer: 47 tokens for a 48-row embedding, as GPT-2's 50257
    // tokens are for the MDLM/BD3-LM checkpoints' 50258 rows.
    let mut tok: serde_json::Value =
        serde_json::from_slice(&fixture_file("tokenizer.json")).unwrap();
    tok["model"]["vocab"]
        .as_object_mut()
        .unwrap()
        .remove("[MASK]");
    tok["added_tokens"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["content"] != "[MASK]");
    let config = unmask::ModelConfig::from_json(&fixture_file("config.json")).unwrap();
    let codec = unmask::text::TextCodec::from_bytes(tok.to_string().as_bytes(), &config).unwrap();
    assert_eq!(codec.mask_id() as usize, config.vocab_size - 1);
    let ids = codec.encode_prompt("the [MASK] sat").unwrap();
    assert_eq!(ids[2], codec.mask_id());
    assert_eq!(codec.decode(&ids), "the [MASK] sat");
}

#[test]
fn a_time_conditioned_model_reads_sigma_like_the_reference() {
    let r = reference();
    let tokens = ids(&r["tokens"]);
    let mut config: serde_json::Value =
        serde_json::from_slice(&fixture_file("config.json")).unwrap();
    config["time_conditioning"] = true.into();
    config["cross_attn"] = false.into();
    let device = backend::init(BackendKind::Cpu).unwrap();
    let weights = fixture_file("model.safetensors");
    let tokenizer = fixture_file("tokenizer.json");
    let config = config.to_string();
    let files = ModelFiles {
        config: config.as_bytes(),
        weights: std::slice::from_ref(&weights),
        tokenizer: &tokenizer,
        tokenizer_config: None,
    };
    let bundle = Bundle::from_files(files, &device).unwrap();
    let sigma = r["time_conditioned"]["sigma"].as_f64().unwrap() as f32;
    let got = pollster::block_on(bundle.model.logits(&[&tokens], sigma)).unwrap();
    let diff = max_abs_diff(
        got.as_slice(),
        &flat(&r["time_conditioned"]["bidirectional"]),
    );
    assert!(diff < TOLERANCE, "max |Δ| = {diff}");
    // σ matters: at σ = 0 the same model gives the constant-conditioning logits.
    let at_zero = pollster::block_on(bundle.model.logits(&[&tokens], 0.0)).unwrap();
    assert!(max_abs_diff(at_zero.as_slice(), &flat(&r["logits"]["bidirectional"])) < TOLERANCE);
    assert!(max_abs_diff(got.as_slice(), at_zero.as_slice()) > 1e-2);
}
