//! A model folder in the Hugging Face layout — `config.json`, `model.safetensors` (or
//! `model.safetensors.index.json` and its shards), `tokenizer.json` — read from bytes (the
//! browser fetches them) or from a directory (the CLI). A folder of the
//! Gaussian diffusion family ([`ImageBundle`]) has no tokenizer; [`family_of`] tells them apart.

use std::ops::Range;

use burn::tensor::Device;
use thiserror::Error;

use crate::chat::SpecialTokens;
use crate::config::{Attention, ConfigError, Family, ModelConfig};
use crate::model::diffusion_lm::{DiffusionLmClassifier, DiffusionLmConfig, DiffusionLmDenoiser};
use crate::model::patch_dit::{
    PatchDitClassifier, PatchDitConfig, PatchDitNoise, Role, load_patch_dit,
};
use crate::model::{
    Architecture, Assembled, Assembly, DeviceRows, Dit, DitAssembly, DitDenoiser, LoadError,
    TensorBytes, TensorSource, Transformer, TransformerConfig, TransformerDenoiser,
    largest_tensor_elements, llada, load_dit, load_transformer, parameter_count, qwen,
};
use crate::network::{Denoiser, Logits, ModelError};
use crate::sampler::{ModelSpec, SamplerKind};
use crate::text::{Embedding, TextCodec, TextError};

/// The three files of a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a checkpoint split into shards (`model-00001-of-00004.safetensors`, …), as
/// transformers' `save_pretrained` writes it: `{"weight_map": {key: file}}`.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The bytes of a model folder.
#[derive(Clone, Copy, Debug)]
pub struct ModelFiles<'a> {
    /// `config.json`.
    pub config: &'a [u8],
    /// `model.safetensors`, or the shards its index names, sorted by name.
    pub weights: &'a [Vec<u8>],
    /// `tokenizer.json`.
    pub tokenizer: &'a [u8],
    /// `tokenizer_config.json`, where the folder has one: its `bos_token` and `eos_token` decide
    /// the prompt's BOS and where runs stop.
    pub tokenizer_config: Option<&'a [u8]>,
}

/// What can go wrong opening a model folder.
#[derive(Debug, Error)]
pub enum BundleError {
    /// `config.json`.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `model.safetensors`.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `tokenizer.json`.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A file could not be read.
    #[error(
        "cannot read {path}: {source}; a model folder holds config.json and model.safetensors (or model.safetensors.index.json and its shards), and tokenizer.json for text"
    )]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The shard index is not what transformers writes, or disagrees with the shards.
    #[error("model.safetensors.index.json: {0}")]
    Index(String),
    /// `tokenizer_config.json`.
    #[error(transparent)]
    TokenizerConfig(#[from] crate::chat::ChatError),
    /// The DiT is one file.
    #[error(
        "this checkpoint is split into {shards} shards, but a DiT (MDLM / BD3-LM) checkpoint is one model.safetensors"
    )]
    Sharded {
        /// How many.
        shards: usize,
    },
    /// A text + image folder's tokenizer lacks the joint vocabulary.
    #[error(transparent)]
    Unified(#[from] crate::unified::UnifiedError),
}

/// A text model's `config.json`, whichever network it describes: the DiT of MDLM and BD3-LM
/// (the published MDLM/BD3-LM folders and Unmask's defaults) or the decoder transformer of
/// LLaDA, Dream and the A2D Qwen models, told apart by `model_type`.
#[derive(Clone, Debug, PartialEq)]
pub enum TextConfig {
    /// `bd3lm`, `mdlm`, `ar`: [`ModelConfig`].
    Dit(ModelConfig),
    /// `a2d-qwen3`, `a2d-qwen2`, `Dream`, `llada`: [`TransformerConfig`].
    Transformer(TransformerConfig),
}

/// The `model_type`s of the published families Unmask has no network for, with what to say.
const UNSUPPORTED_MODEL_TYPES: [&str; 6] =
    ["qwen2", "qwen3", "llama", "qwen3_moe", "llada_moe", "rnd1"];

/// The `model_type`s of the DiT's folders (the published MDLM / BD3-LM ones, Unmask's own).
const DIT_MODEL_TYPES: [&str; 3] = ["mdlm", "bd3lm", "ar"];

impl TextConfig {
    /// Parses and validates a text model's `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        #[derive(serde::Deserialize)]
        struct Declared {
            #[serde(default)]
            model_type: Option<String>,
            #[serde(default)]
            hidden_dim: Option<serde_json::Value>,
            #[serde(default)]
            family: Family,
        }
        let declared: Declared = serde_json::from_slice(bytes)?;
        if declared.family != Family::Text {
            return Err(ConfigError::Unsupported {
                field: "family",
                value: declared.family.name().to_owned(),
                hint: match declared.family {
                    Family::Ddpm => {
                        "this folder draws digits: `unmask generate` runs it, not a text command"
                    }
                    Family::Unified => {
                        "a text + image folder: `unmask generate --task t2i` or `--task mmu` runs it"
                    }
                    _ => {
                        "a Diffusion-LM folder: `unmask generate` runs it; the page and the text commands take masked-diffusion and transformer text models"
                    }
                },
            });
        }
        let transformer = |c| Ok(Self::Transformer(c));
        match declared.model_type.as_deref() {
            _ if declared.hidden_dim.is_some() => Ok(Self::Dit(ModelConfig::from_json(bytes)?)),
            Some("a2d-qwen3") => transformer(qwen::config(Architecture::A2dQwen3, bytes)?),
            Some("a2d-qwen2") => transformer(qwen::config(Architecture::A2dQwen2, bytes)?),
            Some("Dream" | "dream") => transformer(qwen::config(Architecture::Dream, bytes)?),
            Some("llada" | "LLaDA") => transformer(llada::config(bytes)?),
            Some(t) if UNSUPPORTED_MODEL_TYPES.contains(&t) => Err(ConfigError::Unsupported {
                field: "model_type",
                value: t.to_owned(),
                hint: "Unmask runs the diffusion LMs a2d-qwen3, a2d-qwen2, Dream and llada, and its own DiT (bd3lm, mdlm, ar); autoregressive and mixture-of-experts checkpoints are not among them",
            }),
            // A DiT config is told by `hidden_dim` (above); any other type is a network Unmask
            // does not know, which the DiT's parser would only call a malformed DiT.
            Some(t) if !DIT_MODEL_TYPES.contains(&t) => Err(ConfigError::Unsupported {
                field: "model_type",
                value: t.to_owned(),
                hint: "Unmask knows a2d-qwen3, a2d-qwen2, Dream and llada, and its own DiT (bd3lm, mdlm, ar)",
            }),
            _ => Ok(Self::Dit(ModelConfig::from_json(bytes)?)),
        }
    }

    /// Rows of the embedding (the logits per position).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Dit(c) => c.vocab_size,
            Self::Transformer(c) => c.vocab_size,
        }
    }

    /// The longest canvas.
    pub fn model_length(&self) -> usize {
        match self {
            Self::Dit(c) => c.model_length,
            Self::Transformer(c) => c.max_position_embeddings,
        }
    }

    /// How the model attends when sampling.
    pub fn attention(&self) -> Attention {
        match self {
            Self::Dit(c) => c.attention(),
            Self::Transformer(c) => c.attention(),
        }
    }

    /// Tokens per block of a block-diffusion model.
    pub fn block_size(&self) -> Option<usize> {
        match self {
            Self::Dit(c) => c.block_size,
            Self::Transformer(c) => c.block_size,
        }
    }

    /// The sampler the CLI runs when none is asked for: the DiT's own (see
    /// [`ModelConfig::own_sampler`]); for the transformers, LLaDA's semi-autoregressive
    /// low-confidence remasking (what LLaDA's and dllm's A2D-MDLM authors sample with) or BD3-LM's
    /// block sampler for the block-causal variants.
    pub fn own_sampler(&self) -> SamplerKind {
        match self {
            Self::Dit(c) => c.own_sampler(),
            Self::Transformer(c) => match c.attention() {
                Attention::BlockCausal { .. } => SamplerKind::Bd3,
                _ => SamplerKind::Llada,
            },
        }
    }

    /// Whether σ changes the output.
    pub fn time_conditioning(&self) -> bool {
        match self {
            Self::Dit(c) => c.time_conditioning,
            Self::Transformer(_) => false,
        }
    }

    /// Whether each position takes its own noise level (a diffusion-forcing DiT).
    pub fn per_token_noise(&self) -> bool {
        match self {
            Self::Dit(c) => c.per_token_noise,
            Self::Transformer(_) => false,
        }
    }

    /// The mask id config.json names, if it names one.
    pub fn mask_token_id(&self) -> Option<u32> {
        match self {
            Self::Dit(c) => c.mask_token_id,
            Self::Transformer(c) => c.mask_token_id,
        }
    }

    /// Parameters the checkpoint holds.
    pub fn parameter_count(&self) -> u64 {
        match self {
            Self::Dit(c) => parameter_count(c),
            Self::Transformer(c) => c.parameter_count(),
        }
    }

    /// Bytes of the largest tensor on a device that holds floats in `float_bytes`: it must fit
    /// one GPU storage buffer (a quantized one is smaller).
    pub fn largest_tensor_bytes(&self, float_bytes: u64) -> u64 {
        match self {
            Self::Dit(c) => largest_tensor_elements(c).saturating_mul(float_bytes),
            Self::Transformer(c) => c.largest_tensor_bytes(float_bytes),
        }
    }

    /// What loading and running the model takes of the page's memory (wasm32: 4 GiB in all),
    /// estimated from config.json before anything is downloaded; `on_cpu`: the CPU fallback,
    /// which keeps every weight there as f32, where WebGPU keeps them on the GPU.
    pub fn page_memory(&self, on_cpu: bool) -> PageMemory {
        let f32s = |n: u64| n.saturating_mul(4);
        let resident = if on_cpu {
            f32s(self.parameter_count())
        } else {
            0
        };
        let loading = match self {
            // The file whole (f32 at most), and a tensor decoded with its transposed copy.
            Self::Dit(c) => f32s(parameter_count(c))
                .saturating_add(f32s(largest_tensor_elements(c)).saturating_mul(2)),
            Self::Transformer(c) => c.stage_peak_bytes(on_cpu),
        };
        PageMemory { resident, loading }
    }

    /// What the model is, in a few words (`bd3lm DiT`, `a2d-qwen3`).
    pub fn describe(&self) -> String {
        match self {
            Self::Dit(c) => format!("{} DiT", c.model_type.as_deref().unwrap_or("MDLM/BD3-LM")),
            Self::Transformer(c) => c.architecture.model_type().to_owned(),
        }
    }

    /// The tokenizer's constraints: how many rows the embedding has, whether the tokenizer may
    /// have fewer (the published transformers pad theirs), the mask id config.json names.
    pub fn embedding(&self) -> Embedding {
        Embedding {
            rows: self.vocab_size(),
            padded: matches!(self, Self::Transformer(_)),
            mask_token_id: self.mask_token_id(),
        }
    }
}

/// A text network on a device, whichever it is.
pub enum TextModel {
    /// MDLM / BD3-LM.
    Dit(DitDenoiser),
    /// LLaDA, Dream, A2D.
    Transformer(TransformerDenoiser),
}

macro_rules! each {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            TextModel::Dit($m) => $body,
            TextModel::Transformer($m) => $body,
        }
    };
}

impl TextModel {
    /// A second denoiser on the same weights with its own empty KV cache (the page's race).
    pub fn fork(&self) -> Self {
        match self {
            Self::Dit(m) => Self::Dit(m.fork()),
            Self::Transformer(m) => Self::Transformer(m.fork()),
        }
    }

    /// Attends with `attention` from now on.
    pub fn set_attention(&mut self, attention: Attention) {
        each!(self, m => m.set_attention(attention))
    }

    /// Raw logits `[B·L·V]` without the cache (see [`crate::model::NetworkDenoiser::logits`]).
    pub async fn logits(&self, batch: &[&[u32]], sigma: f32) -> Result<Logits, ModelError> {
        each!(self, m => m.logits(batch, sigma).await)
    }

    /// Bytes read back to the host so far.
    pub fn bytes_read_back(&self) -> u64 {
        each!(self, m => m.bytes_read_back())
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        each!(self, m => m.device())
    }
}

impl Denoiser for TextModel {
    type Rows = DeviceRows;

    fn spec(&self) -> &ModelSpec {
        each!(self, m => m.spec())
    }

    async fn predict(
        &mut self,
        batch: &[&[u32]],
        targets: Range<usize>,
        sigma: f32,
    ) -> Result<Vec<DeviceRows>, ModelError> {
        each!(self, m => m.predict(batch, targets, sigma).await)
    }

    async fn predict_cached(
        &mut self,
        commit: &[u32],
        block: &[u32],
        sigma: f32,
    ) -> Result<DeviceRows, ModelError> {
        each!(self, m => m.predict_cached(commit, block, sigma).await)
    }

    async fn predict_levels(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<DeviceRows, ModelError> {
        each!(self, m => m.predict_levels(tokens, targets, sigma).await)
    }

    async fn predict_levels_cached(
        &mut self,
        clean: &[u32],
        rest: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<DeviceRows, ModelError> {
        each!(self, m => m.predict_levels_cached(clean, rest, targets, sigma).await)
    }

    fn reset_cache(&mut self) {
        each!(self, m => m.reset_cache())
    }
}

/// A text model's network being built a stage at a time ([`Unloaded::assembly`]). Boxed: the
/// two differ in size, and one moves through every stage.
pub enum TextAssembly {
    /// An MDLM/BD3-LM DiT.
    Dit(Box<DitAssembly>),
    /// LLaDA, Dream or an A2D model.
    Transformer(Box<Assembly>),
}

/// A text model's network, built.
pub enum TextNetwork {
    /// An MDLM/BD3-LM DiT.
    Dit(Box<Dit>),
    /// LLaDA, Dream or an A2D model.
    Transformer(Box<Transformer>),
}

impl TextAssembly {
    /// The keys to fetch for the next stage.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Self::Dit(a) => a.keys(),
            Self::Transformer(a) => a.keys(),
        }
    }

    /// Builds the next stage from `bytes` (which hold at least its [`TextAssembly::keys`]).
    pub fn build(self, bytes: &dyn TensorBytes) -> Result<Assembled<Self, TextNetwork>, LoadError> {
        Ok(match self {
            Self::Dit(a) => match a.build(bytes)? {
                Assembled::More(a) => Assembled::More(Self::Dit(Box::new(a))),
                Assembled::Done(dit) => Assembled::Done(TextNetwork::Dit(Box::new(dit))),
            },
            Self::Transformer(a) => match a.build(bytes)? {
                Assembled::More(a) => Assembled::More(Self::Transformer(Box::new(a))),
                Assembled::Done(t) => Assembled::Done(TextNetwork::Transformer(Box::new(t))),
            },
        })
    }
}

/// A model's cost in the page's memory ([`TextConfig::page_memory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageMemory {
    /// Bytes its weights keep there while it runs: all of them as f32 on the CPU fallback,
    /// none on WebGPU.
    pub resident: u64,
    /// Bytes held at once on top of those while it loads (a DiT's file whole, a transformer's
    /// largest stage: [`TransformerConfig::stage_peak_bytes`]).
    pub loading: u64,
}

/// A ready model: its config, its tokenizer and the network on a device.
pub struct Bundle {
    /// `config.json`.
    pub config: TextConfig,
    /// The tokenizer, special tokens resolved.
    pub codec: TextCodec,
    /// The network, ready for the samplers.
    pub model: TextModel,
}

/// The facts samplers need, from a DiT config and its tokenizer.
pub fn model_spec(config: &ModelConfig, codec: &TextCodec) -> ModelSpec {
    text_spec(&TextConfig::Dit(config.clone()), codec)
}

/// The facts samplers need, from any text config and its tokenizer.
pub fn text_spec(config: &TextConfig, codec: &TextCodec) -> ModelSpec {
    ModelSpec {
        vocab_size: config.vocab_size(),
        model_length: config.model_length(),
        mask_id: codec.mask_id(),
        eos_id: codec.eos_id(),
        attention: config.attention(),
        time_conditioning: config.time_conditioning(),
        per_token_noise: config.per_token_noise(),
    }
}

/// A text model's config and tokenizer, read and checked before its weights: the page reads
/// a large transformer's weights a stage at a time ([`crate::model::Assembly`]) between the two.
pub struct Unloaded {
    /// `config.json`.
    pub config: TextConfig,
    /// The tokenizer, special tokens resolved.
    pub codec: TextCodec,
}

impl Unloaded {
    /// Parses and checks `config.json`, `tokenizer.json` and, where there is one,
    /// `tokenizer_config.json`.
    pub fn from_files(
        config: &[u8],
        tokenizer: &[u8],
        tokenizer_config: Option<&[u8]>,
    ) -> Result<Self, BundleError> {
        let config = TextConfig::from_json(config)?;
        let mut codec = TextCodec::for_embedding(tokenizer, config.embedding())?;
        if let Some(bytes) = tokenizer_config {
            codec = codec.with_special_tokens(&SpecialTokens::from_tokenizer_config(bytes)?);
        }
        Ok(Self { config, codec })
    }

    /// The bundle with its weights, read from `weights` (one file, or a transformer's shards)
    /// onto `device`.
    pub fn load(self, weights: &[Vec<u8>], device: &Device) -> Result<Bundle, BundleError> {
        let network = match &self.config {
            TextConfig::Dit(c) => {
                let [weights] = weights else {
                    return Err(BundleError::Sharded {
                        shards: weights.len(),
                    });
                };
                TextNetwork::Dit(Box::new(load_dit(c, weights, device)?))
            }
            TextConfig::Transformer(c) => {
                TextNetwork::Transformer(Box::new(load_transformer(c, weights, device)?))
            }
        };
        Ok(self.with_network(network, device))
    }

    /// Starts building the network a stage at a time from its checkpoint's `header`, checked
    /// against the config first: a large checkpoint never held whole (the page's loader).
    pub fn assembly(
        &self,
        header: &dyn TensorSource,
        device: &Device,
    ) -> Result<TextAssembly, LoadError> {
        Ok(match &self.config {
            TextConfig::Dit(c) => TextAssembly::Dit(Box::new(DitAssembly::new(c, header, device)?)),
            TextConfig::Transformer(c) => {
                TextAssembly::Transformer(Box::new(Assembly::new(c, header, device)?))
            }
        })
    }

    /// The bundle of a network built on `device` (a stage at a time, or whole by
    /// [`Unloaded::load`]).
    pub fn with_network(self, network: TextNetwork, device: &Device) -> Bundle {
        let spec = text_spec(&self.config, &self.codec);
        let device = device.clone();
        let model = match network {
            TextNetwork::Dit(dit) => TextModel::Dit(DitDenoiser::new(*dit, device, spec)),
            TextNetwork::Transformer(t) => {
                TextModel::Transformer(TransformerDenoiser::new(*t, device, spec))
            }
        };
        Bundle {
            config: self.config,
            codec: self.codec,
            model,
        }
    }
}

impl Bundle {
    /// Parses and checks all three files, then uploads the weights to `device`.
    pub fn from_files(files: ModelFiles<'_>, device: &Device) -> Result<Self, BundleError> {
        Unloaded::from_files(files.config, files.tokenizer, files.tokenizer_config)?
            .load(files.weights, device)
    }

    /// The facts samplers need about this model, as it runs now (its attention after
    /// [`TextModel::set_attention`]).
    pub fn model_spec(&self) -> ModelSpec {
        crate::sampler::Denoiser::spec(&self.model).clone()
    }

    /// Reads a model folder from disk.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_dir(dir: &std::path::Path, device: &Device) -> Result<Self, BundleError> {
        Self::from_files(ModelDir::read(dir)?.files(), device)
    }
}

/// A unified (text + image) model: the DiT over the joint vocabulary, its tokenizer and where
/// the image, task and boundary tokens are in it ([`crate::unified`]).
pub struct UnifiedBundle {
    /// `config.json`.
    pub config: ModelConfig,
    /// The tokenizer of the joint vocabulary.
    pub codec: TextCodec,
    /// Its tokens' layout.
    pub layout: crate::unified::Layout,
    /// The network, ready for the samplers.
    pub model: DitDenoiser,
}

impl UnifiedBundle {
    /// Parses and checks `config.json` (family `unified`) and `tokenizer.json` (the joint
    /// vocabulary), then uploads the weights to `device`.
    pub fn from_files(
        config: &[u8],
        tokenizer: &[u8],
        weights: &[u8],
        device: &Device,
    ) -> Result<Self, BundleError> {
        let family = family_of(config)?;
        if family != Family::Unified {
            return Err(ConfigError::Unsupported {
                field: "family",
                value: family.name().to_owned(),
                hint: "the t2i and mmu tasks need a text + image model (family unified, `unmask train --objective unified`)",
            }
            .into());
        }
        let config = ModelConfig::from_json(config)?;
        let codec = TextCodec::from_bytes(tokenizer, &config)?;
        let layout = crate::unified::Layout::of(&codec)?;
        let dit = load_dit(&config, weights, device)?;
        let spec = model_spec(&config, &codec);
        Ok(Self {
            model: DitDenoiser::new(dit, device.clone(), spec),
            config,
            codec,
            layout,
        })
    }

    /// Reads a model folder from disk.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_dir(dir: &std::path::Path, device: &Device) -> Result<Self, BundleError> {
        let files = ModelDir::read(dir)?;
        let files = files.files();
        let [weights] = files.weights else {
            return Err(BundleError::Sharded {
                shards: files.weights.len(),
            });
        };
        Self::from_files(files.config, files.tokenizer, weights, device)
    }
}

/// The three files of a model folder, read into memory.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// `config.json`.
    pub config: Vec<u8>,
    /// `model.safetensors`, or the shards of `model.safetensors.index.json`, sorted by name.
    pub weights: Vec<Vec<u8>>,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
    /// `tokenizer_config.json`, if the folder has one.
    pub tokenizer_config: Option<Vec<u8>>,
}

/// File `name` of the folder `dir`, or the error naming its path.
#[cfg(not(target_family = "wasm"))]
fn read_in(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, BundleError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|source| BundleError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct ShardIndex {
    #[serde(default)]
    metadata: IndexMetadata,
    weight_map: std::collections::BTreeMap<String, String>,
}

/// The index's `metadata`, as transformers writes it.
#[derive(Clone, Debug, Default, serde::Deserialize)]
struct IndexMetadata {
    /// The tensors' bytes in all shards (without the shards' headers).
    #[serde(default)]
    total_size: Option<u64>,
}

impl ShardIndex {
    /// Parses an index.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        serde_json::from_slice(bytes).map_err(|e| BundleError::Index(e.to_string()))
    }

    /// The tensors' bytes across the shards, where the index says (`metadata.total_size`): what a
    /// download will weigh, known before any shard is fetched.
    pub fn total_size(&self) -> Option<u64> {
        self.metadata.total_size
    }

    /// The shard files it names, each once, sorted by name; each must be a `.safetensors` file
    /// beside the index.
    pub fn files(&self) -> Result<Vec<String>, BundleError> {
        let mut files: Vec<String> = self.weight_map.values().cloned().collect();
        files.sort();
        files.dedup();
        if let Some(bad) = files.iter().find(|f| {
            f.contains('/')
                || f.contains('\\')
                || f.starts_with('.')
                || !f.ends_with(".safetensors")
        }) {
            return Err(BundleError::Index(format!(
                "it names `{bad}`; shards are .safetensors files beside it"
            )));
        }
        if files.is_empty() {
            return Err(BundleError::Index("its weight_map is empty".into()));
        }
        Ok(files)
    }

    /// Checks that every key it maps to a shard is in that shard (`shards`: each file's name and
    /// what it holds: the whole file, or its header alone).
    pub fn check(&self, shards: &[(&str, &dyn TensorSource)]) -> Result<(), BundleError> {
        for (key, file) in &self.weight_map {
            let Some((_, held)) = shards.iter().find(|(name, _)| name == file) else {
                return Err(BundleError::Index(format!(
                    "`{key}` is in `{file}`, which was not read"
                )));
            };
            if held.info(key).is_none() {
                return Err(BundleError::Index(format!(
                    "it puts `{key}` in `{file}`, which does not hold it; the shards and the index are from different checkpoints"
                )));
            }
        }
        Ok(())
    }
}

impl ModelDir {
    /// Reads `dir`'s files: `model.safetensors`, or else the index and its shards.
    #[cfg(not(target_family = "wasm"))]
    pub fn read(dir: &std::path::Path) -> Result<Self, BundleError> {
        let read = |name: &str| read_in(dir, name);
        let weights = if dir.join(WEIGHTS_FILE).exists() || !dir.join(WEIGHTS_INDEX_FILE).exists() {
            vec![read(WEIGHTS_FILE)?]
        } else {
            let index = ShardIndex::from_json(&read(WEIGHTS_INDEX_FILE)?)?;
            let files = index.files()?;
            let shards = files
                .iter()
                .map(|f| read(f))
                .collect::<Result<Vec<_>, _>>()?;
            let headers = shards
                .iter()
                .map(|bytes| crate::model::Header::of_file(bytes))
                .collect::<Result<Vec<_>, _>>()?;
            let named: Vec<(&str, &dyn TensorSource)> = files
                .iter()
                .map(String::as_str)
                .zip(headers.iter().map(|h| h as &dyn TensorSource))
                .collect();
            index.check(&named)?;
            shards
        };
        let optional = |name: &str| {
            if dir.join(name).exists() {
                read(name).map(Some)
            } else {
                Ok(None)
            }
        };
        Ok(Self {
            config: read(CONFIG_FILE)?,
            weights,
            tokenizer: read(TOKENIZER_FILE)?,
            tokenizer_config: optional(crate::chat::TOKENIZER_CONFIG_FILE)?,
        })
    }

    /// Borrowed view for [`Bundle::from_files`].
    pub fn files(&self) -> ModelFiles<'_> {
        ModelFiles {
            config: &self.config,
            weights: &self.weights,
            tokenizer: &self.tokenizer,
            tokenizer_config: self.tokenizer_config.as_deref(),
        }
    }
}

/// `dir`'s `config.json`, and the family it declares.
#[cfg(not(target_family = "wasm"))]
pub fn read_family(dir: &std::path::Path) -> Result<Family, BundleError> {
    let path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).map_err(|source| BundleError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(family_of(&bytes)?)
}

/// The family a `config.json` declares; a config without `family` (every published MDLM and
/// BD3-LM folder) is [`Family::Text`].
pub fn family_of(config: &[u8]) -> Result<Family, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Declared {
        #[serde(default)]
        family: Family,
    }
    Ok(serde_json::from_slice::<Declared>(config)?.family)
}

/// A network of the Gaussian diffusion family, whichever role its folder holds.
pub enum ImageNetwork {
    /// ε_θ: what the image samplers run.
    Noise(PatchDitNoise),
    /// p_φ(y | x_t): what classifier guidance steers with.
    Classifier(PatchDitClassifier),
}

/// A ready image model: its config and its network on a device.
pub struct ImageBundle {
    /// `config.json`.
    pub config: PatchDitConfig,
    /// The network.
    pub network: ImageNetwork,
}

/// A Diffusion-LM folder: its config, its tokenizer and its denoiser on a device.
pub struct VectorBundle {
    /// `config.json`.
    pub config: DiffusionLmConfig,
    /// `tokenizer.json`, whose vocabulary the word vectors index.
    pub codec: TextCodec,
    /// The denoiser.
    pub denoiser: DiffusionLmDenoiser,
}

impl VectorBundle {
    /// Parses and checks the three files against each other, then uploads the weights.
    pub fn from_files(
        config: &[u8],
        weights: &[u8],
        tokenizer: &[u8],
        device: &Device,
    ) -> Result<Self, BundleError> {
        let config = DiffusionLmConfig::from_json(config)?;
        let codec = TextCodec::for_embedding(
            tokenizer,
            Embedding {
                rows: config.vocab_size,
                padded: false,
                mask_token_id: None,
            },
        )?;
        let denoiser = DiffusionLmDenoiser::load(&config, weights, device)?;
        Ok(Self {
            config,
            codec,
            denoiser,
        })
    }

    /// Reads a Diffusion-LM folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    #[cfg(not(target_family = "wasm"))]
    pub fn from_dir(dir: &std::path::Path, device: &Device) -> Result<Self, BundleError> {
        let read = |name: &str| read_in(dir, name);
        Self::from_files(
            &read(CONFIG_FILE)?,
            &read(WEIGHTS_FILE)?,
            &read(TOKENIZER_FILE)?,
            device,
        )
    }
}

/// A Diffusion-LM control classifier from its `config.json` and `model.safetensors`, checked
/// against the denoiser of `denoiser` that it steers.
pub fn control_classifier_from_files(
    config: &[u8],
    weights: &[u8],
    denoiser: &DiffusionLmConfig,
    device: &Device,
) -> Result<DiffusionLmClassifier, BundleError> {
    let config = DiffusionLmConfig::from_json(config)?;
    Ok(DiffusionLmClassifier::load(
        &config, weights, denoiser, device,
    )?)
}

/// [`control_classifier_from_files`] of the folder `dir`.
#[cfg(not(target_family = "wasm"))]
pub fn control_classifier_from_dir(
    dir: &std::path::Path,
    denoiser: &DiffusionLmConfig,
    device: &Device,
) -> Result<DiffusionLmClassifier, BundleError> {
    let read = |name: &str| read_in(dir, name);
    control_classifier_from_files(&read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?, denoiser, device)
}

impl ImageBundle {
    /// Parses and checks `config.json` and the weights' header against it, then uploads them.
    pub fn from_files(config: &[u8], weights: &[u8], device: &Device) -> Result<Self, BundleError> {
        let config = PatchDitConfig::from_json(config)?;
        let net = load_patch_dit(&config, weights, device)?;
        let network = match config.role {
            Role::Denoiser => {
                ImageNetwork::Noise(PatchDitNoise::new(&config, net, device.clone())?)
            }
            Role::Classifier => {
                ImageNetwork::Classifier(PatchDitClassifier::new(&config, net, device.clone())?)
            }
        };
        Ok(Self { config, network })
    }

    /// Reads an image model folder (`config.json`, `model.safetensors`) from disk.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_dir(dir: &std::path::Path, device: &Device) -> Result<Self, BundleError> {
        let read = |name: &str| read_in(dir, name);
        Self::from_files(&read(CONFIG_FILE)?, &read(WEIGHTS_FILE)?, device)
    }

    /// The noise predictor, or why this folder is not one.
    pub fn into_noise(self) -> Result<PatchDitNoise, BundleError> {
        match self.network {
            ImageNetwork::Noise(n) => Ok(n),
            ImageNetwork::Classifier(_) => Err(BundleError::Load(LoadError::Role {
                found: "noisy classifier",
                wanted: "noise predictor",
            })),
        }
    }

    /// The noisy classifier, or why this folder is not one.
    pub fn into_classifier(self) -> Result<PatchDitClassifier, BundleError> {
        match self.network {
            ImageNetwork::Classifier(c) => Ok(c),
            ImageNetwork::Noise(_) => Err(BundleError::Load(LoadError::Role {
                found: "noise predictor",
                wanted: "noisy classifier",
            })),
        }
    }
}
