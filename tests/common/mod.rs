//! Shared test helpers: the tiny fixture model and a fake predictor.
#![allow(dead_code)]

use std::ops::Range;
use std::path::PathBuf;

use unmask::backend::{self, BackendKind};
use unmask::bundle::Bundle;
use unmask::config::Attention;
use unmask::engine::Generation;
use unmask::model::ModelError;
use unmask::sampler::{Denoiser, Logits, ModelSpec, Settings, Step};

/// `tests/fixtures/tiny`, made by `scripts/make_fixture.py`.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny")
}

pub fn fixture_file(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap()
}

pub fn reference() -> serde_json::Value {
    serde_json::from_slice(&fixture_file("reference.json")).unwrap()
}

/// The fixture model on the CPU.
pub fn tiny() -> Bundle {
    Bundle::from_dir(&fixture_dir(), &backend::init(BackendKind::Cpu).unwrap()).unwrap()
}

/// Runs a generation to the end and returns its steps.
pub fn run_all<D: Denoiser>(settings: Settings, prompt: &[u32], model: &mut D) -> Vec<Step> {
    let spec = model.spec().clone();
    let mut g = Generation::from_ids(settings, prompt, &spec).unwrap();
    pollster::block_on(g.run(model, |_| {})).unwrap();
    g.steps().to_vec()
}

/// A JSON matrix (rows of numbers) flattened to f32, row-major.
pub fn flat(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect()
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A deterministic stand-in for a model: the logits at a position are a hash of the position and
/// of the clean (unmasked) tokens it may see under its attention. The mask token always gets the
/// largest logit, so a sampler that forgets SUBS is caught.
#[derive(Clone, Debug)]
pub struct Fake {
    pub spec: ModelSpec,
    cache: Vec<u32>,
    pub calls: usize,
    pub cached_calls: usize,
    /// Every per-token-noise call (diffusion forcing), in order.
    pub level_calls: Vec<LevelCall>,
    /// Logits raised by this much for these ids (a model that prefers them).
    pub boost: Option<(Range<u32>, f32)>,
}

/// One [`Denoiser::predict_levels`] call a [`Fake`] served.
#[derive(Clone, Debug)]
pub struct LevelCall {
    /// The window the call's rows see: the cached tokens, then those it ran.
    pub tokens: Vec<u32>,
    pub targets: Range<usize>,
    /// Every window position's σ (a cached one's 0, as it was stored).
    pub sigma: Vec<f32>,
    /// Tokens the call ran: the whole window without the cache, what follows it with.
    pub fed: usize,
}

impl Fake {
    pub fn new(attention: Attention, vocab: usize) -> Self {
        Fake {
            spec: ModelSpec {
                vocab_size: vocab,
                model_length: 256,
                mask_id: vocab as u32 - 1,
                eos_id: None,
                attention,
                time_conditioning: false,
                per_token_noise: false,
            },
            cache: Vec::new(),
            calls: 0,
            cached_calls: 0,
            level_calls: Vec::new(),
            boost: None,
        }
    }

    /// A diffusion-forcing model: causal, a noise level per token.
    pub fn forcing(vocab: usize) -> Self {
        let mut fake = Fake::new(Attention::Causal, vocab);
        fake.spec.time_conditioning = true;
        fake.spec.per_token_noise = true;
        fake
    }

    fn mix(mut h: u64, x: u64) -> u64 {
        h ^= x
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(h << 6)
            .wrapping_add(h >> 2);
        h.wrapping_mul(0xBF58_476D_1CE4_E5B9)
    }

    /// Logits for `position` given the whole sequence `seq` it belongs to.
    fn row(&self, seq: &[u32], position: usize) -> Vec<f32> {
        let visible = match self.spec.attention {
            Attention::Bidirectional => seq.len(),
            Attention::BlockCausal { block_size } => {
                ((position / block_size + 1) * block_size).min(seq.len())
            }
            Attention::Causal => position,
        };
        let mut h = Self::mix(17, position as u64);
        for (i, &t) in seq[..visible].iter().enumerate() {
            if t != self.spec.mask_id {
                h = Self::mix(h, (i as u64) << 32 | t as u64);
            }
        }
        (0..self.spec.vocab_size)
            .map(|v| {
                if v as u32 == self.spec.mask_id {
                    100.0
                } else {
                    let boost = match &self.boost {
                        Some((ids, by)) if ids.contains(&(v as u32)) => *by,
                        _ => 0.0,
                    };
                    (Self::mix(h, v as u64) % 10_000) as f32 / 10_000.0 * 6.0 - 3.0 + boost
                }
            })
            .collect()
    }
}

impl Denoiser for Fake {
    type Rows = Logits;

    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    async fn predict(
        &mut self,
        batch: &[&[u32]],
        targets: Range<usize>,
        _sigma: f32,
    ) -> Result<Vec<Logits>, ModelError> {
        self.calls += 1;
        Ok(batch
            .iter()
            .map(|seq| {
                let data: Vec<f32> = targets.clone().flat_map(|p| self.row(seq, p)).collect();
                Logits::new(data, targets.len(), self.spec.vocab_size)
            })
            .collect())
    }

    async fn predict_cached(
        &mut self,
        commit: &[u32],
        block: &[u32],
        _sigma: f32,
    ) -> Result<Logits, ModelError> {
        self.calls += 1;
        self.cached_calls += 1;
        self.cache.extend_from_slice(commit);
        let start = self.cache.len();
        let seq: Vec<u32> = self.cache.iter().chain(block).copied().collect();
        let positions: Vec<usize> = if block.is_empty() {
            vec![start]
        } else {
            (start..seq.len()).collect()
        };
        let data: Vec<f32> = positions.iter().flat_map(|&p| self.row(&seq, p)).collect();
        Ok(Logits::new(data, positions.len(), self.spec.vocab_size))
    }

    async fn predict_levels(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<Logits, ModelError> {
        assert!(
            self.spec.per_token_noise,
            "levels asked of a per-sequence model"
        );
        assert_eq!(sigma.len(), tokens.len());
        assert!(
            tokens.len() <= self.spec.model_length,
            "a window past the context"
        );
        assert!(!targets.is_empty() && targets.end <= tokens.len());
        self.calls += 1;
        self.level_calls.push(LevelCall {
            tokens: tokens.to_vec(),
            targets: targets.clone(),
            sigma: sigma.to_vec(),
            fed: tokens.len(),
        });
        let data: Vec<f32> = targets.clone().flat_map(|p| self.row(tokens, p)).collect();
        Ok(Logits::new(data, targets.len(), self.spec.vocab_size))
    }

    async fn predict_levels_cached(
        &mut self,
        clean: &[u32],
        rest: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<Logits, ModelError> {
        let mask = self.spec.mask_id;
        assert!(
            clean.iter().all(|&t| t != mask),
            "a masked token joined the cache"
        );
        assert_eq!(sigma.len(), rest.len());
        self.cached_calls += 1;
        self.cache.extend_from_slice(clean);
        let offset = self.cache.len();
        let window: Vec<u32> = self.cache.iter().chain(rest).copied().collect();
        let levels: Vec<f32> = std::iter::repeat_n(0.0, offset)
            .chain(sigma.iter().copied())
            .collect();
        let rows = self
            .predict_levels(
                &window,
                targets.start + offset..targets.end + offset,
                &levels,
            )
            .await?;
        if let Some(call) = self.level_calls.last_mut() {
            call.fed = clean.len() + rest.len();
        }
        Ok(rows)
    }

    fn reset_cache(&mut self) {
        self.cache.clear();
    }
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The wgpu device, or `None` (a skip) without an adapter unless `UNMASK_REQUIRE_WGPU` is set.
pub fn wgpu() -> Option<burn::tensor::Device> {
    match backend::init(BackendKind::Wgpu) {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("UNMASK_REQUIRE_WGPU").is_none() => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("UNMASK_REQUIRE_WGPU is set but wgpu did not start: {e}"),
    }
}

/// The dllm parity fixtures (`tests/fixtures/dllm/`, made by `scripts/make_dllm_fixtures.py`),
/// one per decoder-transformer architecture.
pub const DLLM_FOLDERS: [&str; 5] = [
    "a2d-qwen3",
    "a2d-qwen3-bd3lm",
    "a2d-qwen2",
    "llada",
    "dream",
];

/// The dllm fixture folder `name`.
pub fn dllm_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dllm")
        .join(name)
}

/// Runs the `unmask` binary with `args`.
pub fn unmask(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_unmask"))
        .args(args)
        .output()
        .unwrap()
}

/// A safetensors file of `tensors` (name, shape, little-endian bytes), every one of `dtype`.
pub fn serialize_tensors(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    dtype: safetensors::Dtype,
) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes).unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

// The unified family's tiny model (tests/unified.rs, tests/wgpu.rs).

/// The corpus tokenizer with the joint vocabulary added, and its codec.
pub fn joint() -> (Vec<u8>, unmask::text::TextCodec) {
    let corpus =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/corpus/tokenizer.json"))
            .unwrap();
    let bytes = unmask::unified::extend_tokenizer(&corpus).unwrap();
    let vocab = unmask::text::TextCodec::vocab_size_of(&bytes).unwrap();
    let config = unmask::train::unified::UnifiedTrainConfig::model_config(vocab, unified_shape());
    let codec = unmask::text::TextCodec::from_bytes(&bytes, &config).unwrap();
    (bytes, codec)
}

/// The tiny unified model's shape.
pub fn unified_shape() -> unmask::train::objective::Shape {
    unmask::train::objective::Shape {
        model_length: unmask::unified::SEQUENCE_LEN,
        hidden_dim: 32,
        cond_dim: 16,
        n_blocks: 1,
        n_heads: 2,
    }
}

/// Writes a fresh unified run's model folder of the tiny shape into `dir`.
pub fn tiny_unified_folder(dir: &std::path::Path) {
    let (tokenizer, codec) = joint();
    let config = unmask::train::unified::UnifiedTrainConfig::model_config(
        codec.vocab_size(),
        unified_shape(),
    );
    let weights = unmask::model::initial_checkpoint(&config, 0).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
}
