//! A model folder in the Hugging Face layout — `config.json`, `model.safetensors`, `tokenizer.json` —
//! read from bytes (the browser fetches them) or from a directory (the CLI). A folder of the
//! Gaussian diffusion family ([`ImageBundle`]) has no tokenizer; [`family_of`] tells them apart.

use burn::tensor::Device;
use thiserror::Error;

use crate::config::{ConfigError, Family, ModelConfig};
use crate::model::patch_dit::{
    PatchDitClassifier, PatchDitConfig, PatchDitNoise, Role, load_patch_dit,
};
use crate::model::{DitDenoiser, LoadError, load_dit};
use crate::sampler::ModelSpec;
use crate::text::{TextCodec, TextError};

/// The three files of a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Tokenizer file name.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The bytes of a model folder.
#[derive(Clone, Copy, Debug)]
pub struct ModelFiles<'a> {
    /// `config.json`.
    pub config: &'a [u8],
    /// `model.safetensors`.
    pub weights: &'a [u8],
    /// `tokenizer.json`.
    pub tokenizer: &'a [u8],
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
        "cannot read {path}: {source}; a model folder holds config.json and model.safetensors (and tokenizer.json for text)"
    )]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A ready model: its config, its tokenizer and the network on a device.
pub struct Bundle {
    /// `config.json`.
    pub config: ModelConfig,
    /// The tokenizer, special tokens resolved.
    pub codec: TextCodec,
    /// The network, ready for the samplers.
    pub model: DitDenoiser,
}

/// The facts samplers need, from a config and its tokenizer.
pub fn model_spec(config: &ModelConfig, codec: &TextCodec) -> ModelSpec {
    ModelSpec {
        vocab_size: config.vocab_size,
        model_length: config.model_length,
        mask_id: codec.mask_id(),
        eos_id: codec.eos_id(),
        attention: config.attention(),
        time_conditioning: config.time_conditioning,
    }
}

impl Bundle {
    /// Parses and checks all three files, then uploads the weights to `device`.
    pub fn from_files(files: ModelFiles<'_>, device: &Device) -> Result<Self, BundleError> {
        let config = ModelConfig::from_json(files.config)?;
        let codec = TextCodec::from_bytes(files.tokenizer, &config)?;
        let dit = load_dit(&config, files.weights, device)?;
        let spec = model_spec(&config, &codec);
        Ok(Self {
            model: DitDenoiser::new(dit, device.clone(), spec),
            config,
            codec,
        })
    }

    /// The facts samplers need about this model.
    pub fn model_spec(&self) -> ModelSpec {
        model_spec(&self.config, &self.codec)
    }

    /// Reads a model folder from disk.
    #[cfg(not(target_family = "wasm"))]
    pub fn from_dir(dir: &std::path::Path, device: &Device) -> Result<Self, BundleError> {
        Self::from_files(ModelDir::read(dir)?.files(), device)
    }
}

/// The three files of a model folder, read into memory.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// `config.json`.
    pub config: Vec<u8>,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
    /// `tokenizer.json`.
    pub tokenizer: Vec<u8>,
}

impl ModelDir {
    /// Reads `dir`'s three files.
    #[cfg(not(target_family = "wasm"))]
    pub fn read(dir: &std::path::Path) -> Result<Self, BundleError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| BundleError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        Ok(Self {
            config: read(CONFIG_FILE)?,
            weights: read(WEIGHTS_FILE)?,
            tokenizer: read(TOKENIZER_FILE)?,
        })
    }

    /// Borrowed view for [`Bundle::from_files`].
    pub fn files(&self) -> ModelFiles<'_> {
        ModelFiles {
            config: &self.config,
            weights: &self.weights,
            tokenizer: &self.tokenizer,
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
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| BundleError::Io {
                path: path.display().to_string(),
                source,
            })
        };
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
