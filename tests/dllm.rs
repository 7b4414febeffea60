//! The diffusion LMs people run — A2D Qwen3 / Qwen2, LLaDA, Dream — against their reference
//! PyTorch code: tiny random-weight folders made by `scripts/make_dllm_fixtures.py` from dllm's
//! and transformers' modeling files, with the reference's logits (`tests/fixtures/dllm/`).

mod common;

use std::path::{Path, PathBuf};

use common::{flat, ids, max_abs_diff};
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, BundleError, TextConfig, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};
use unmask::config::Attention;
use unmask::engine::Generation;
use unmask::model::LoadError;
use unmask::sampler::{Denoiser, SamplerKind, Settings};

use common::DLLM_FOLDERS as FOLDERS;

/// Largest difference from the reference's f32 logits. The reference's own eager and SDPA paths
/// differ by 4e-6; a wrong RMSNorm ε (1e-5 for 1e-6) moves them by 2e-4.
const TOLERANCE: f32 = 3e-5;

fn dir(name: &str) -> PathBuf {
    common::dllm_dir(name)
}

fn reference(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir(name).join("reference.json")).unwrap()).unwrap()
}

fn open(path: &Path) -> Result<Bundle, BundleError> {
    Bundle::from_dir(path, &backend::init(BackendKind::Cpu).unwrap())
}

fn logits(bundle: &Bundle, tokens: &[u32]) -> Vec<f32> {
    pollster::block_on(bundle.model.logits(&[tokens], 0.0))
        .unwrap()
        .as_slice()
        .to_vec()
}

#[test]
fn every_architecture_matches_its_reference_logits() {
    for name in FOLDERS {
        let r = reference(name);
        let mut bundle = open(&dir(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let tokens = ids(&r["tokens"]);
        let want = flat(&r["logits"]);
        let attention = match r["attention"].get("block_causal") {
            Some(b) => Attention::BlockCausal {
                block_size: b.as_u64().unwrap() as usize,
            },
            None => Attention::Bidirectional,
        };
        assert_eq!(bundle.model.spec().attention, attention, "{name}");
        let got = logits(&bundle, &tokens);
        let diff = max_abs_diff(&got, &want);
        assert!(diff < TOLERANCE, "{name}: max |Δ| = {diff}");
        if let Some(bidirectional) = r.get("logits_bidirectional") {
            bundle.model.set_attention(Attention::Bidirectional);
            let diff = max_abs_diff(&logits(&bundle, &tokens), &flat(bidirectional));
            assert!(diff < TOLERANCE, "{name} bidirectional: max |Δ| = {diff}");
        }
    }
}

#[test]
fn the_mask_comes_from_the_tokenizer_or_the_config_and_padding_rows_are_allowed() {
    for name in FOLDERS {
        let bundle = open(&dir(name)).unwrap();
        // `<|mask|>` is 47 in every fixture's tokenizer; LLaDA and Dream also name it in config.json.
        assert_eq!(bundle.codec.mask_id(), 47, "{name}");
        // 48 tokens index an embedding of 64 rows, as Qwen's 151,669 index 151,936.
        assert_eq!(bundle.codec.vocab_size(), 48, "{name}");
        assert_eq!(bundle.model.spec().vocab_size, 64, "{name}");
    }
}

#[test]
fn dream_samplers_read_position_i_off_row_i_minus_one() {
    let r = reference("dream");
    assert_eq!(r["shift_logits"], true);
    let mut bundle = open(&dir("dream")).unwrap();
    let tokens = ids(&r["tokens"]);
    let raw = flat(&r["logits"]);
    let v = bundle.model.spec().vocab_size;
    let row = |i: usize| &raw[i * v..(i + 1) * v];
    for targets in [0..tokens.len(), 4..9] {
        let rows =
            pollster::block_on(bundle.model.predict(&[&tokens], targets.clone(), 0.0)).unwrap();
        let got = pollster::block_on(rows[0].to_host()).unwrap();
        for (k, position) in targets.clone().enumerate() {
            // Position 0 has no row before it and keeps its own (Dream's generation_utils.py).
            let want = row(position.saturating_sub(1));
            let diff = max_abs_diff(got.row(k), want);
            assert!(diff < TOLERANCE, "position {position}: max |Δ| = {diff}");
        }
    }
    // Without the shift, position 5 would read row 5: make sure the rows differ, so the check
    // above can tell.
    assert!(max_abs_diff(row(4), row(5)) > 0.1);
}

#[test]
fn the_block_causal_variant_gives_the_same_rows_through_the_kv_cache() {
    let r = reference("a2d-qwen3-bd3lm");
    let mut bundle = open(&dir("a2d-qwen3-bd3lm")).unwrap();
    let tokens = ids(&r["tokens"]);
    let want = flat(&r["logits"]);
    let v = bundle.model.spec().vocab_size;
    let block = 4;
    bundle.model.reset_cache();
    let mut committed = 0;
    for start in (0..tokens.len()).step_by(block) {
        let rows = pollster::block_on(bundle.model.predict_cached(
            &tokens[committed..start],
            &tokens[start..start + block],
            0.0,
        ))
        .unwrap();
        committed = start;
        let got = pollster::block_on(rows.to_host()).unwrap();
        for k in 0..block {
            let position = start + k;
            let diff = max_abs_diff(got.row(k), &want[position * v..(position + 1) * v]);
            assert!(diff < TOLERANCE, "position {position}: max |Δ| = {diff}");
        }
    }
}

#[test]
fn the_authors_samplers_run_on_each_architecture() {
    for name in FOLDERS {
        let mut bundle = open(&dir(name)).unwrap();
        let spec = bundle.model_spec();
        let sampler = bundle.config.own_sampler();
        let expected = if name.ends_with("bd3lm") {
            SamplerKind::Bd3
        } else {
            SamplerKind::Llada
        };
        assert_eq!(sampler, expected, "{name}");
        let mut settings = Settings::for_tokens(sampler, 8);
        settings.draw_mut().seed = 5;
        let mut g = Generation::new(settings, "the cat", &bundle.codec, &spec).unwrap();
        pollster::block_on(g.run(&mut bundle.model, |_| {}))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let committed: usize = g.steps().iter().map(|s| s.commits.len()).sum();
        assert!(committed > 0, "{name}");
        let canvas = g.steps().last().unwrap().canvas.clone();
        assert!(!canvas.contains(&spec.mask_id), "{name}: {canvas:?}");
    }
}

/// Copies `from` into a fresh temporary folder with its weights split into shards of the given
/// key sets, and an index; returns the folder.
fn sharded(from: &str, out: &str) -> PathBuf {
    let src = dir(from);
    let dst = std::env::temp_dir().join(format!("unmask-dllm-{out}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join(WEIGHTS_FILE)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (i, part) in [first, second].iter().enumerate() {
        let shard = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView)> = part
            .iter()
            .map(|n| (n.clone(), file.tensor(n).unwrap()))
            .collect();
        std::fs::write(
            dst.join(&shard),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        for n in part.iter() {
            map.insert(n.clone(), shard.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dst.join(WEIGHTS_INDEX_FILE), index.to_string()).unwrap();
    dst
}

#[test]
fn a_sharded_checkpoint_loads_as_the_whole_one() {
    let folder = sharded("a2d-qwen2", "shards");
    let r = reference("a2d-qwen2");
    let bundle = open(&folder).unwrap();
    let diff = max_abs_diff(&logits(&bundle, &ids(&r["tokens"])), &flat(&r["logits"]));
    assert!(diff < TOLERANCE, "max |Δ| = {diff}");
    let _ = std::fs::remove_dir_all(folder);
}

#[test]
fn broken_shards_and_indexes_are_clear_errors() {
    // A shard the index names is missing.
    let folder = sharded("a2d-qwen2", "missing");
    std::fs::remove_file(folder.join("model-00002-of-00002.safetensors")).unwrap();
    let err = open(&folder).err().unwrap().to_string();
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
    // A truncated shard.
    let shard = folder.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(dir("a2d-qwen2").join(WEIGHTS_FILE)).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let err = open(&folder).err().unwrap();
    assert!(
        matches!(err, BundleError::Load(LoadError::Format(_))),
        "{err}"
    );
    // The index puts a key in a shard that does not hold it.
    let folder = sharded("a2d-qwen2", "misplaced");
    let index_path = folder.join(WEIGHTS_INDEX_FILE);
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let map = index["weight_map"].as_object_mut().unwrap();
    let key = map.keys().next().unwrap().clone();
    let wrong = if map[&key] == "model-00001-of-00002.safetensors" {
        "model-00002-of-00002.safetensors"
    } else {
        "model-00001-of-00002.safetensors"
    };
    map.insert(key.clone(), wrong.into());
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err = open(&folder).err().unwrap().to_string();
    assert!(
        err.contains(&key) && err.contains("does not hold it"),
        "{err}"
    );
    // An index naming a path outside the folder.
    std::fs::write(
        &index_path,
        r#"{"weight_map": {"a": "../model.safetensors"}}"#,
    )
    .unwrap();
    let err = open(&folder).err().unwrap().to_string();
    assert!(err.contains("../model.safetensors"), "{err}");
    let _ = std::fs::remove_dir_all(folder);
}

fn config_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir(name).join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    config.to_string().into_bytes()
}

#[test]
fn configs_the_network_cannot_run_name_the_field() {
    let cases: [(&str, Box<dyn FnOnce(&mut serde_json::Value)>, &str); 6] = [
        (
            "a2d-qwen3",
            Box::new(|c| c["model_type"] = "qwen3".into()),
            "model_type",
        ),
        (
            "a2d-qwen3",
            Box::new(|c| c["use_sliding_window"] = true.into()),
            "use_sliding_window",
        ),
        (
            "a2d-qwen2",
            Box::new(|c| c["num_key_value_heads"] = 3.into()),
            "num_key_value_heads",
        ),
        ("llada", Box::new(|c| c["alibi"] = true.into()), "alibi"),
        (
            "llada",
            Box::new(|c| c["block_type"] = "sequential".into()),
            "block_type",
        ),
        (
            "a2d-qwen3",
            Box::new(|c| c["num_hidden_layers"] = 1_000_000_000.into()),
            "num_hidden_layers",
        ),
    ];
    for (name, edit, field) in cases {
        let err = TextConfig::from_json(&config_with(name, edit))
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{name}: {err}");
    }
}

#[test]
fn a_config_the_weights_do_not_back_is_refused_before_loading() {
    let src = dir("a2d-qwen3");
    let read = |f: &str| std::fs::read(src.join(f)).unwrap();
    let weights = [read(WEIGHTS_FILE)];
    let device = backend::init(BackendKind::Cpu).unwrap();
    let load = |config: &[u8]| {
        Bundle::from_files(
            unmask::bundle::ModelFiles {
                config,
                weights: &weights,
                tokenizer: &read("tokenizer.json"),
                tokenizer_config: None,
            },
            &device,
        )
        .err()
        .map(|e| e.to_string())
    };
    let wider = config_with("a2d-qwen3", |c| c["intermediate_size"] = 96.into());
    let err = load(&wider).unwrap();
    assert!(
        err.contains("mlp.gate_proj.weight") && err.contains("[96, 32]"),
        "{err}"
    );
    let deeper = config_with("a2d-qwen3", |c| c["num_hidden_layers"] = 3.into());
    let err = load(&deeper).unwrap();
    assert!(err.contains("model.layers.2."), "{err}");
    let shallower = config_with("a2d-qwen3", |c| c["num_hidden_layers"] = 1.into());
    let err = load(&shallower).unwrap();
    assert!(
        err.contains("model.layers.1.") && err.contains("num_hidden_layers = 1"),
        "{err}"
    );
    let untied = config_with("a2d-qwen3", |c| c["tie_word_embeddings"] = false.into());
    let err = load(&untied).unwrap();
    assert!(err.contains("lm_head.weight"), "{err}");
    assert!(load(&read("config.json")).is_none());
}

/// A fixture's bundle with an edited config.json and its own weights and tokenizer.
fn bundle_with(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<Bundle, BundleError> {
    let read = |f: &str| std::fs::read(dir(name).join(f)).unwrap();
    Bundle::from_files(
        unmask::bundle::ModelFiles {
            config: &config_with(name, edit),
            weights: &[read(WEIGHTS_FILE)],
            tokenizer: &read("tokenizer.json"),
            tokenizer_config: None,
        },
        &backend::init(BackendKind::Cpu).unwrap(),
    )
}

#[test]
fn the_mask_named_in_config_json_wins_over_the_tokenizers() {
    // The fixtures' tokenizers name `<|mask|>` 47; config.json's id, where given, is taken.
    for name in ["llada", "a2d-qwen3"] {
        let bundle = bundle_with(name, |c| c["mask_token_id"] = 40.into()).unwrap();
        assert_eq!(bundle.codec.mask_id(), 40, "{name}");
        let bundle = bundle_with(name, |c| {
            c.as_object_mut().unwrap().remove("mask_token_id");
        })
        .unwrap();
        assert_eq!(bundle.codec.mask_id(), 47, "{name}");
    }
}

#[test]
fn predictions_of_no_position_or_past_the_canvas_are_errors() {
    for name in FOLDERS {
        let r = reference(name);
        let mut bundle = open(&dir(name)).unwrap();
        let tokens = ids(&r["tokens"]);
        let n = tokens.len();
        let mut predict = |batch: &[&[u32]], targets: std::ops::Range<usize>| {
            pollster::block_on(bundle.model.predict(batch, targets, 0.0)).map(|rows| rows.len())
        };
        for targets in [3..3, 0..n + 1, n..n + 2] {
            let err = predict(&[&tokens], targets.clone())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("cannot predict positions"),
                "{name} {targets:?}: {err}"
            );
        }
        let short = &tokens[..n - 1];
        let err = predict(&[&tokens, short], 0..2).unwrap_err().to_string();
        assert!(err.contains("differ in length"), "{name}: {err}");
        assert!(predict(&[], 0..1).is_err(), "{name}");
        // One position at the start: Dream's shifted rows have nothing before position 0.
        assert_eq!(predict(&[&tokens], 0..1).unwrap(), 1, "{name}");
    }
    // Dream's position 0 alone reads row 0, as it does among the others.
    let r = reference("dream");
    let mut bundle = open(&dir("dream")).unwrap();
    let rows = pollster::block_on(bundle.model.predict(&[&ids(&r["tokens"])], 0..1, 0.0)).unwrap();
    let got = pollster::block_on(rows[0].to_host()).unwrap();
    let v = bundle.model.spec().vocab_size;
    let diff = max_abs_diff(got.row(0), &flat(&r["logits"])[..v]);
    assert!(diff < TOLERANCE, "max |Δ| = {diff}");
}

#[test]
fn an_unknown_model_type_is_named_not_parsed_as_a_dit() {
    let err = TextConfig::from_json(&config_with("a2d-qwen3", |c| {
        c["model_type"] = "mamba".into()
    }))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("model_type = mamba") && !err.contains("hidden_dim"),
        "{err}"
    );
}

#[test]
fn llada_reads_absent_fields_as_the_references_defaults() {
    let without = |field: &'static str| {
        TextConfig::from_json(&config_with("llada", |c| {
            c.as_object_mut().unwrap().remove(field);
        }))
    };
    // OLMo's defaults describe another network, refused by name.
    for (field, default) in [
        ("rope", "false"),
        ("block_type", "sequential"),
        ("layer_norm_type", "default"),
        ("activation_type", "swiglu"),
    ] {
        let err = without(field).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{field} = {default}")),
            "{field}: {err}"
        );
    }
    let transformer = |c: Result<TextConfig, _>| match c.unwrap() {
        TextConfig::Transformer(t) => t,
        TextConfig::Dit(_) => panic!("read as a DiT"),
    };
    // Tied by default; 50,304 rows when embedding_size is absent, vocab_size's when null.
    assert!(transformer(without("weight_tying")).tie_word_embeddings);
    assert_eq!(transformer(without("embedding_size")).vocab_size, 50_304);
    let null = TextConfig::from_json(&config_with("llada", |c| {
        c["embedding_size"] = serde_json::Value::Null
    }));
    assert_eq!(transformer(null).vocab_size, 60);
    // One key/value head from multi_query_attention, or a clash with n_kv_heads.
    let mqa = TextConfig::from_json(&config_with("llada", |c| {
        c["multi_query_attention"] = true.into();
        c["n_kv_heads"] = serde_json::Value::Null;
    }));
    assert_eq!(transformer(mqa).num_key_value_heads, 1);
    let clash = TextConfig::from_json(&config_with("llada", |c| {
        c["multi_query_attention"] = true.into()
    }))
    .unwrap_err()
    .to_string();
    assert!(clash.contains("multi_query_attention"), "{clash}");
    // The defaults reach the header check: 50,304 rows are not the fixture's 64.
    let err = bundle_with("llada", |c| {
        c.as_object_mut().unwrap().remove("embedding_size");
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("[50304, 32]"), "{err}");
}

#[test]
fn a_tensor_in_two_shards_names_both() {
    let folder = sharded("a2d-qwen2", "duplicate");
    // The second shard also holds the first shard's first tensor.
    let read = |i: usize| {
        std::fs::read(folder.join(format!("model-0000{i}-of-00002.safetensors"))).unwrap()
    };
    let (one, two) = (read(1), read(2));
    let (one, two) = (
        safetensors::SafeTensors::deserialize(&one).unwrap(),
        safetensors::SafeTensors::deserialize(&two).unwrap(),
    );
    let mut first = one.names();
    first.sort();
    let key = first[0].to_owned();
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = two
        .names()
        .into_iter()
        .map(|n| (n.to_owned(), two.tensor(n).unwrap()))
        .collect();
    views.push((key.clone(), one.tensor(&key).unwrap()));
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(folder.join("model-00002-of-00002.safetensors"), bytes).unwrap();
    let err = open(&folder).err().unwrap().to_string();
    assert!(
        err.contains(&key) && err.contains("shard 1 and again in shard 2"),
        "{err}"
    );
    // The page's loader, holding only the shards' headers, says the same.
    let headers = (1..=2)
        .map(|i| {
            let bytes =
                std::fs::read(folder.join(format!("model-0000{i}-of-00002.safetensors"))).unwrap();
            unmask::model::Header::of_file(&bytes).unwrap()
        })
        .collect();
    let err = unmask::model::Headers::new(headers)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&key) && err.contains("shard 1 and again in shard 2"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(folder);
}

#[test]
fn mutated_transformer_folders_never_panic() {
    use unmask::fuzzing::{model_folder, pack_model_folder};
    let values = [
        serde_json::json!(0),
        serde_json::json!(1),
        serde_json::json!(3),
        serde_json::json!(-1),
        serde_json::json!(0.5),
        serde_json::json!(1u64 << 40),
        serde_json::Value::Null,
        serde_json::json!("silu"),
        serde_json::json!(true),
    ];
    let mut rng = unmask::rng::Rng::new(16);
    // The five folders, and a2d-qwen3 quantized to 4 bits.
    let read = |name: &str, f: &str| std::fs::read(dir(name).join(f)).unwrap();
    let mut folders: Vec<(&str, Vec<u8>, Vec<u8>)> = FOLDERS
        .iter()
        .map(|&name| (name, read(name, "config.json"), read(name, WEIGHTS_FILE)))
        .collect();
    let TextConfig::Transformer(qwen3) = TextConfig::from_json(&folders[0].1).unwrap() else {
        panic!("a2d-qwen3 read as a DiT")
    };
    let q4 = unmask::model::quant::QuantFormat::Q4;
    let quantized =
        unmask::model::transformer::quantize_checkpoint(&qwen3, &[folders[0].2.clone()], q4)
            .unwrap();
    let q4_config = config_with("a2d-qwen3", |c| {
        c["quantization"] = serde_json::json!({"format": "q4", "block_size": 32})
    });
    folders.push(("a2d-qwen3", q4_config, quantized));
    for (name, config, weights) in folders {
        let tokenizer = read(name, "tokenizer.json");
        let fields: Vec<String> =
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&config)
                .unwrap()
                .keys()
                .cloned()
                .collect();
        for i in 0..40 {
            let (mut c, mut w) = (config.clone(), weights.clone());
            match i % 3 {
                // One field of config.json set to a value of another kind or size.
                0 => {
                    let field = &fields[rng.below(fields.len())];
                    let mut json: serde_json::Value = serde_json::from_slice(&config).unwrap();
                    json[field.as_str()] = values[rng.below(values.len())].clone();
                    c = json.to_string().into_bytes();
                }
                // Bytes of the weights' header flipped.
                1 => {
                    for _ in 0..4 {
                        let at = rng.below(2000.min(w.len()));
                        w[at] = rng.next_u64() as u8;
                    }
                }
                // The weights cut short.
                _ => w.truncate(rng.below(w.len())),
            }
            let packed = pack_model_folder(&c, &tokenizer, &w);
            let outcome = std::panic::catch_unwind(|| model_folder(&packed));
            assert!(outcome.is_ok(), "{name}: mutation {i} panicked");
        }
    }
}

/// Builds `config`'s network the way the page does with a checkpoint too large to hold: each
/// file's header read on its own (one file, or a checkpoint's shards), then each stage from the
/// runs of bytes its keys name and nothing else. Answers the bundle and the most bytes one stage
/// held.
fn assembled(
    config: &[u8],
    files: &[Vec<u8>],
    tokenizer: &[u8],
) -> Result<(Bundle, u64), LoadError> {
    use unmask::model::load::HEADER_LENGTH_BYTES;
    use unmask::model::{Assembled, Header, Headers, Pieces};
    let device = backend::init(BackendKind::Cpu).unwrap();
    let slice = |file: usize, r: std::ops::Range<u64>| {
        files[file][r.start as usize..r.end as usize].to_vec()
    };
    let mut headers = Vec::new();
    for (i, weights) in files.iter().enumerate() {
        let size = weights.len() as u64;
        let length = Header::length(&slice(i, 0..HEADER_LENGTH_BYTES.min(size)), size)?;
        headers.push(Header::parse(
            &slice(i, HEADER_LENGTH_BYTES..HEADER_LENGTH_BYTES + length),
            size,
        )?);
    }
    let headers = Headers::new(headers)?;
    let unloaded = unmask::bundle::Unloaded::from_files(config, tokenizer, None).unwrap();
    let mut assembly = unloaded.assembly(&headers, &device)?;
    let mut held = 0;
    loop {
        let runs = headers
            .runs(&assembly.keys())
            .into_iter()
            .map(|r| {
                let bytes = slice(r.file, r.range.clone());
                (r, bytes)
            })
            .collect();
        let pieces = Pieces::new(&headers, runs);
        held = held.max(pieces.len());
        match assembly.build(&pieces)? {
            Assembled::More(next) => assembly = next,
            Assembled::Done(network) => {
                return Ok((unloaded.with_network(network, &device), held));
            }
        }
    }
}

#[test]
fn a_network_built_a_stage_at_a_time_is_the_one_read_whole() {
    let read = |dir: &Path, f: &str| std::fs::read(dir.join(f)).unwrap();
    // (name, config.json, the weights' files, the folder of its tokenizer)
    type Case = (String, Vec<u8>, Vec<Vec<u8>>, PathBuf);
    let mut cases: Vec<Case> = FOLDERS
        .iter()
        .map(|n| {
            let d = dir(n);
            (
                n.to_string(),
                read(&d, "config.json"),
                vec![read(&d, WEIGHTS_FILE)],
                d,
            )
        })
        .collect();
    // A checkpoint in two shards, read a stage at a time across them as the page reads one.
    let shards = sharded("a2d-qwen2", "staged");
    let files = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    .map(|f| read(&shards, f))
    .into();
    cases.push((
        "a2d-qwen2 in two shards".into(),
        read(&shards, "config.json"),
        files,
        shards,
    ));
    // The DiTs: the default bd3 model (its own head) and the MDLM parity fixture.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for d in [
        root.join("www/models/default/bd3"),
        root.join("tests/fixtures/tiny"),
    ] {
        let name = d.display().to_string();
        cases.push((
            name,
            read(&d, "config.json"),
            vec![read(&d, WEIGHTS_FILE)],
            d,
        ));
    }
    // A quantized checkpoint: each matrix is two tensors (values and scales), stored apart.
    let config = config_with("a2d-qwen3", |c| {
        c["quantization"] = serde_json::json!({"format": "q4", "block_size": 32})
    });
    let qwen = dir("a2d-qwen3");
    let TextConfig::Transformer(plain) =
        TextConfig::from_json(&read(&qwen, "config.json")).unwrap()
    else {
        panic!("a2d-qwen3 is a transformer");
    };
    let q4 = unmask::model::transformer::quantize_checkpoint(
        &plain,
        &[read(&qwen, WEIGHTS_FILE)],
        unmask::model::quant::QuantFormat::Q4,
    )
    .unwrap();
    cases.push(("a2d-qwen3 q4".into(), config, vec![q4], qwen));
    for (name, config, weights, folder) in cases {
        let tokenizer = read(&folder, "tokenizer.json");
        let whole = Bundle::from_files(
            unmask::bundle::ModelFiles {
                config: &config,
                weights: &weights,
                tokenizer: &tokenizer,
                tokenizer_config: None,
            },
            &backend::init(BackendKind::Cpu).unwrap(),
        )
        .unwrap();
        let (staged, held) = assembled(&config, &weights, &tokenizer).unwrap();
        let vocab = whole.config.vocab_size() as u32;
        let tokens: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % vocab.min(40)).collect();
        assert_eq!(logits(&staged, &tokens), logits(&whole, &tokens), "{name}");
        // A stage holds its own tensors only: in these folders the largest stage (a block, or
        // the DiT's output layer) is under half of the checkpoint.
        let size: usize = weights.iter().map(Vec::len).sum();
        assert!(held * 2 < size as u64, "{name}: {held} of {size}");
    }
}

#[test]
fn a_header_read_on_its_own_refuses_a_file_it_does_not_fill() {
    use unmask::model::Header;
    let weights = std::fs::read(dir("a2d-qwen3").join(WEIGHTS_FILE)).unwrap();
    let size = weights.len() as u64;
    let length = Header::length(&weights[..8], size).unwrap();
    let header = &weights[8..8 + length as usize];
    assert!(Header::parse(header, size).is_ok());
    // A download cut short, or with bytes after the data: refused before a tensor is read.
    for wrong in [size - 1, size + 1] {
        let err = Header::parse(header, wrong).unwrap_err().to_string();
        assert!(err.contains("not a valid safetensors file"), "{err}");
    }
    // A length past the file's end, or absurd; a file of fewer than eight bytes.
    assert!(Header::length(&weights[..8], length).is_err());
    assert!(Header::length(&u64::MAX.to_le_bytes(), u64::MAX).is_err());
    assert!(Header::length(&weights[..3], 3).is_err());
    assert!(Header::parse(b"{not json", size).is_err());
    // Pieces without a stage's tensors: the missing key, named.
    let header = Header::parse(header, size).unwrap();
    let config = std::fs::read(dir("a2d-qwen3").join("config.json")).unwrap();
    let TextConfig::Transformer(c) = TextConfig::from_json(&config).unwrap() else {
        panic!("a transformer");
    };
    let device = backend::init(BackendKind::Cpu).unwrap();
    let assembly = unmask::model::Assembly::new(&c, &header, &device).unwrap();
    let headers = unmask::model::Headers::new(vec![header]).unwrap();
    let empty = unmask::model::Pieces::new(&headers, Vec::new());
    let err = assembly.build(&empty).err().unwrap().to_string();
    assert!(err.contains("model.embed_tokens.weight"), "{err}");
}
