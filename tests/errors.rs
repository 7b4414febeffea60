//! Bad input gets a clear error and never a panic.

mod common;

use common::{Fake, fixture_file};
use unmask::ModelConfig;
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, BundleError, ModelFiles};
use unmask::config::Attention;
use unmask::config::ConfigError;
use unmask::engine::Generation;
use unmask::model::{LoadError, random_checkpoint};
use unmask::rng::Rng;
use unmask::sampler::{Knob, KnobValue, LladaSettings, SampleError, SamplerKind, Settings};

fn open(config: &[u8], weights: &[u8], tokenizer: &[u8]) -> Result<Bundle, BundleError> {
    let device = backend::init(BackendKind::Cpu).unwrap();
    Bundle::from_files(
        ModelFiles {
            config,
            weights: &[weights.to_vec()],
            tokenizer,
            tokenizer_config: None,
        },
        &device,
    )
}

fn open_weights(weights: &[u8]) -> Result<Bundle, BundleError> {
    open(
        &fixture_file("config.json"),
        weights,
        &fixture_file("tokenizer.json"),
    )
}

/// The fixture's tensors, re-serialised through `edit`.
fn edited(edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>) -> Vec<u8> {
    let bytes = fixture_file("model.safetensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            let shape = edit(&name, view.shape().to_vec())?;
            let n: usize = shape.iter().product();
            Some((name, shape, vec![0u8; n * 4]))
        })
        .collect();
    common::serialize_tensors(&kept, safetensors::Dtype::F32)
}

#[test]
fn truncated_weights_are_a_format_error() {
    let bytes = fixture_file("model.safetensors");
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let err = open_weights(&bytes[..cut])
            .err()
            .expect("truncated file accepted");
        assert!(
            matches!(err, BundleError::Load(LoadError::Format(_))),
            "cut {cut}: {err}"
        );
        assert!(err.to_string().contains("not a valid safetensors file"));
    }
}

#[test]
fn an_oversized_header_length_is_rejected_without_allocating() {
    let mut bytes = fixture_file("model.safetensors");
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        open_weights(&bytes),
        Err(BundleError::Load(LoadError::Format(_)))
    ));
}

#[test]
fn a_missing_tensor_is_named() {
    let weights = edited(|name, shape| (!name.ends_with("blocks.1.mlp.0.bias")).then_some(shape));
    let err = open_weights(&weights).err().unwrap();
    assert!(
        err.to_string().contains("backbone.blocks.1.mlp.0.bias"),
        "{err}"
    );
}

#[test]
fn a_wrong_shape_is_named_with_both_shapes() {
    let weights = edited(|name, mut shape| {
        if name.ends_with("blocks.0.norm2.weight") {
            shape[0] += 1;
        }
        Some(shape)
    });
    match open_weights(&weights) {
        Err(BundleError::Load(LoadError::Shape {
            key,
            expected,
            found,
        })) => {
            assert_eq!(key, "backbone.blocks.0.norm2.weight");
            assert_eq!(found[0], expected[0] + 1);
        }
        other => panic!("expected a shape error, got {:?}", other.err()),
    }
}

#[test]
fn tokenizer_vocabulary_must_match_the_embedding() {
    let mut config: ModelConfig = serde_json::from_slice(&fixture_file("config.json")).unwrap();
    config.vocab_size += 3;
    let weights = random_checkpoint(&config, 0).unwrap();
    let err = open(
        &serde_json::to_vec(&config).unwrap(),
        &weights,
        &fixture_file("tokenizer.json"),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            BundleError::Text(unmask::text::TextError::VocabMismatch { .. })
        ),
        "{err}"
    );
}

#[test]
fn unsupported_or_malformed_configs_say_which_field() {
    let weights = fixture_file("model.safetensors");
    let tok = fixture_file("tokenizer.json");
    let mut bad: serde_json::Value = serde_json::from_slice(&fixture_file("config.json")).unwrap();
    bad["n_heads"] = 3.into();
    let err = open(bad.to_string().as_bytes(), &weights, &tok)
        .err()
        .unwrap();
    assert!(err.to_string().contains("n_heads"), "{err}");
    let err = open(b"{\"vocab_size\": 4}", &weights, &tok).err().unwrap();
    assert!(
        err.to_string().contains("missing field `model_length`"),
        "{err}"
    );
    bad["n_heads"] = 4.into();
    bad["mask_token_id"] = 1000.into();
    let err = open(bad.to_string().as_bytes(), &weights, &tok)
        .err()
        .unwrap();
    assert!(err.to_string().contains("mask_token_id = 1000"), "{err}");
    let err = open(&fixture_file("config.json"), &weights, b"not json")
        .err()
        .unwrap();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

/// LLaDA's defaults with `edit` applied (no checks: the samplers must make them).
fn llada(edit: impl FnOnce(&mut LladaSettings)) -> Settings {
    let mut s = LladaSettings::default();
    edit(&mut s);
    Settings::Llada(s)
}

fn start(settings: Settings, prompt: &[u32]) -> Result<Generation, SampleError> {
    let fake = Fake::new(Attention::Bidirectional, 50);
    Generation::from_ids(settings, prompt, &fake.spec)
}

#[test]
fn bad_generation_settings_are_clear_errors() {
    let cases: Vec<(Settings, Vec<u32>, &str)> = vec![
        (llada(|_| {}), vec![], "prompt is empty"),
        (
            llada(|s| s.gen_length = 0),
            vec![1, 2],
            "nothing to generate",
        ),
        (
            llada(|s| (s.gen_length, s.steps) = (8, 9)),
            vec![1, 2],
            "use at most 8 steps",
        ),
        (
            llada(|s| (s.gen_length, s.steps) = (250, 10)),
            vec![1; 10],
            "exceeds the model's 256 positions",
        ),
        (
            llada(|s| (s.gen_length, s.steps, s.block_length) = (10, 10, Some(4))),
            vec![1],
            "multiple of block_length",
        ),
        (
            llada(|s| (s.gen_length, s.steps, s.block_length) = (8, 3, Some(4))),
            vec![1],
            "multiple of the number of blocks",
        ),
        (llada(|s| s.draw.top_p = Some(1.5)), vec![1], "top_p"),
        (llada(|s| s.draw.temperature = -1.0), vec![1], "temperature"),
        (
            llada(|s| s.draw.temperature = f64::NAN),
            vec![1],
            "temperature",
        ),
        (
            llada(|s| (s.gen_length, s.steps) = (4, 4)),
            vec![99],
            "outside the vocabulary",
        ),
        (
            Settings::defaults(SamplerKind::Bd3),
            vec![1],
            "block_length",
        ),
    ];
    for (settings, prompt, expected) in cases {
        let err = start(settings, &prompt).expect_err("bad settings accepted");
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?} in {err}"
        );
    }
    // Infilling alone is fine: gen_length 0 with a mask in the prompt.
    assert!(start(llada(|s| (s.gen_length, s.steps) = (0, 1)), &[1, 49, 2]).is_ok());
}

#[test]
fn mutated_weight_files_never_panic() {
    let original = fixture_file("model.safetensors");
    let mut rng = Rng::new(99);
    for i in 0..300 {
        let mut bytes = original.clone();
        match i % 3 {
            // Flip bytes in the header, where structure lives.
            0 => {
                for _ in 0..4 {
                    let at = rng.below(800.min(bytes.len()));
                    bytes[at] = rng.next_u64() as u8;
                }
            }
            // Truncate anywhere.
            1 => bytes.truncate(rng.below(bytes.len())),
            // Rewrite the header length.
            _ => bytes[..8].copy_from_slice(&(rng.next_u64() % 4096).to_le_bytes()),
        }
        let outcome = std::panic::catch_unwind(|| open_weights(&bytes).map(|_| ()));
        assert!(outcome.is_ok(), "mutation {i} panicked");
    }
}

#[test]
fn the_model_rejects_token_ids_outside_its_vocabulary() {
    use unmask::sampler::Denoiser;
    let mut bundle = common::tiny();
    let v = bundle.config.vocab_size() as u32;
    let err = pollster::block_on(bundle.model.logits(&[&[1, v]], 0.0)).unwrap_err();
    assert!(err.to_string().contains(&format!("token id {v}")), "{err}");
    assert!(pollster::block_on(bundle.model.predict(&[&[1, v + 5]], 0..1, 0.0)).is_err());
    assert!(pollster::block_on(bundle.model.predict_cached(&[], &[v], 0.0)).is_err());
}

#[test]
fn knobs_a_sampler_does_not_have_are_refused_not_ignored() {
    // The settings types cannot hold them; setting one by name is refused with its owners.
    let mut mdlm = Settings::for_tokens(SamplerKind::Mdlm, 8);
    for (knob, message) in [
        (
            Knob::Cfg,
            "no cfg_scale setting (it belongs to llada, ddim and ddpm)",
        ),
        (
            Knob::Threshold,
            "no threshold setting (it belongs to llada and bd3)",
        ),
        (
            Knob::BlockLength,
            "no block_length setting (it belongs to llada and bd3)",
        ),
    ] {
        let err = mdlm.set(knob, KnobValue::Number(1.0)).unwrap_err();
        assert!(err.to_string().contains(message), "{knob:?}: {err}");
    }
    // Out of the table's range: refused by the sampler as well, however it was written.
    let huge_cfg = llada(|s| s.cfg_scale = 1e39);
    let err = start(huge_cfg, &[1, 2]).expect_err("accepted");
    assert!(
        err.to_string()
            .contains("cfg_scale: expected a number from 0 to 100"),
        "{err}"
    );
    let Settings::Mdlm(m) = &mut mdlm else {
        unreachable!()
    };
    m.steps = 10_000_000;
    let err = start(mdlm, &[1, 2]).expect_err("accepted");
    assert!(
        err.to_string()
            .contains("steps: expected a whole number from 1 to 100000"),
        "{err}"
    );
}

#[test]
fn kv_caches_are_refused_for_time_conditioned_models() {
    for (sampler, attention) in [
        (SamplerKind::Bd3, Attention::BlockCausal { block_size: 4 }),
        (SamplerKind::Ar, Attention::Causal),
    ] {
        let mut fake = Fake::new(attention, 50);
        fake.spec.time_conditioning = true;
        let settings = Settings::for_tokens(sampler, 8);
        let err =
            Generation::from_ids(settings.clone(), &[1, 2], &fake.spec).expect_err("accepted");
        assert!(
            err.to_string().contains("time-conditioned"),
            "{sampler:?}: {err}"
        );
        let mut uncached = settings;
        uncached.set(Knob::Cache, KnobValue::Flag(false)).unwrap();
        assert!(
            Generation::from_ids(uncached, &[1, 2], &fake.spec).is_ok(),
            "{sampler:?}"
        );
    }
}

/// The fixture's weights with `edit` applied to each tensor's f32 values.
fn with_values(edit: impl Fn(&str, &mut [f32])) -> Vec<u8> {
    let bytes = fixture_file("model.safetensors");
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let mut values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            edit(&name, &mut values);
            let data = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name, view.shape().to_vec(), data)
        })
        .collect();
    common::serialize_tensors(&tensors, safetensors::Dtype::F32)
}

#[test]
fn a_config_claiming_more_or_fewer_blocks_than_the_weights_hold_is_refused_before_loading() {
    let config = |n_blocks: u64| {
        let mut c: serde_json::Value =
            serde_json::from_slice(&fixture_file("config.json")).unwrap();
        c["n_blocks"] = n_blocks.into();
        c.to_string().into_bytes()
    };
    let (weights, tokenizer) = (
        fixture_file("model.safetensors"),
        fixture_file("tokenizer.json"),
    );
    // The fixture has two blocks. Three: the third is missing.
    let err = open(&config(3), &weights, &tokenizer).err().unwrap();
    assert!(
        matches!(&err, BundleError::Load(LoadError::MissingKey { key }) if key == "backbone.blocks.2.norm1.weight"),
        "{err}"
    );
    // One: the file's second block is one the config does not describe.
    let err = open(&config(1), &weights, &tokenizer).err().unwrap();
    match &err {
        BundleError::Load(LoadError::Unexpected { key, why }) => {
            assert!(key.starts_with("backbone.blocks.1."), "{key}");
            assert_eq!(why, " (n_blocks = 1)");
        }
        other => panic!("expected an unexpected tensor, got {other}"),
    }
    // A billion, or i64::MAX: refused by the size limits, before any layout is built (this
    // once asked the allocator for 968 GB and aborted).
    for n in [1_000_000_000, i64::MAX as u64] {
        let err = open(&config(n), &weights, &tokenizer).err().unwrap();
        assert!(
            matches!(err, BundleError::Config(ConfigError::TooLarge(_))),
            "{err}"
        );
        assert!(err.to_string().contains("n_blocks"), "{err}");
    }
}

#[test]
fn the_reference_rotary_buffer_is_accepted_and_its_shape_checked() {
    // The published checkpoints carry `backbone.rotary_emb.inv_freq` (a persistent buffer of
    // the reference's Rotary): [head_dim / 2] values, recomputed by Unmask.
    let with_buffer = |len: usize| {
        let bytes = fixture_file("model.safetensors");
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let extra = vec![0u8; len * 4];
        let mut views: Vec<_> = file.tensors();
        views.push((
            "backbone.rotary_emb.inv_freq".into(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![len], &extra)
                .unwrap(),
        ));
        safetensors::serialize(views, None).unwrap()
    };
    // hidden_dim 32 / 4 heads = 8 per head: 4 frequencies.
    assert!(open_weights(&with_buffer(4)).is_ok());
    let err = open_weights(&with_buffer(5)).err().unwrap();
    assert!(err.to_string().contains("rotary_emb.inv_freq"), "{err}");
}

#[test]
fn nan_weights_give_a_model_error_naming_the_backend_and_the_step() {
    use unmask::model::ModelError;
    let weights = with_values(|name, values| {
        if name.ends_with("output_layer.linear.bias") {
            values[5] = f32::NAN;
        }
    });
    let mut bundle = open_weights(&weights).unwrap();
    let spec = bundle.model_spec();
    let settings = Settings::for_tokens(SamplerKind::Llada, 4);
    let mut g = Generation::new(settings, "the old man", &bundle.codec, &spec).unwrap();
    let err = pollster::block_on(g.next(&mut bundle.model)).err().unwrap();
    match &err {
        SampleError::Model(ModelError::NonFinite { count, step, .. }) => {
            // Bias 5 is NaN in every predicted row.
            assert!(*count >= 1);
            assert_eq!(*step, Some(0));
        }
        other => panic!("expected non-finite logits, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("non-finite")
            && message.contains("at step 0")
            && message.contains("backend"),
        "{message}"
    );
    assert!(matches!(err, SampleError::Model(e) if e.is_device_fault()));
}

/// A recorded run of the fixture model, as JSON.
fn recorded() -> serde_json::Value {
    let mut bundle = common::tiny();
    let spec = bundle.model_spec();
    let settings = Settings::for_tokens(SamplerKind::Llada, 4);
    let mut g = Generation::new(settings, "the old man", &bundle.codec, &spec).unwrap();
    pollster::block_on(g.run(&mut bundle.model, |_| {})).unwrap();
    serde_json::to_value(g.trajectory("tiny", &bundle.codec, &spec)).unwrap()
}

#[test]
fn an_imported_trajectory_with_huge_lengths_is_refused_before_a_replay_is_built() {
    use unmask::Trajectory;
    let good = recorded();
    assert!(Trajectory::from_json(&good.to_string()).is_ok());
    // Lengths that pass "prompt + gen_length ≤ model_length" but would make the replay
    // allocate a canvas of 2^40 cells.
    let mut t = good.clone();
    t["model"]["model_length"] = (1u64 << 40).into();
    t["settings"]["gen_length"] = ((1u64 << 40) - 8).into();
    let err = Trajectory::from_json(&t.to_string()).unwrap_err();
    assert!(err.to_string().contains("model_length"), "{err}");
    // A probability that is not one.
    for bad in [
        serde_json::json!("NaN"),
        serde_json::json!(1.5),
        serde_json::json!("-inf"),
    ] {
        let mut t = good.clone();
        t["steps"][0]["commits"][0]["confidence"] = bad.clone();
        let err = Trajectory::from_json(&t.to_string()).unwrap_err();
        assert!(err.to_string().contains("probability"), "{bad}: {err}");
    }
    // A mask id outside the vocabulary.
    let mut t = good;
    t["model"]["mask_id"] = 1_000_000.into();
    assert!(Trajectory::from_json(&t.to_string()).is_err());
}
