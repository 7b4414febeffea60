//! Diffusion-LM's networks: text as continuous word vectors under Gaussian diffusion — Li, Thickstun,
//! Gulrajani, Liang & Hashimoto, "Diffusion-LM Improves Controllable Text Generation",
//! arXiv:2205.14217 (§4.1: the embedding EMB(w) learned end to end; §4.2: f_θ predicts x₀;
//! `XiangLi1999/Diffusion-LM` `improved-diffusion/improved_diffusion/transformer_model2.py`: an
//! up-projection of each position's vector to the transformer's width, the transformer, a
//! down-projection back to the vector's dimension).
//!
//! The transformer is the DiT trunk of the digits ([`PatchDit`], [`TrunkShape`]) over the
//! sequence's positions: `patch_embed` is the up-projection d → hidden, `final.linear` the
//! down-projection hidden → d, the time conditions every block through adaLN rather than being
//! added to the input as the reference does. Two roles ([`Role`]):
//! - the denoiser f_θ(x_t, t) ≈ x₀, with the word vectors EMB `[V, d]` that it reads and rounds
//!   with (the logits of a vector x are x·EMBᵀ, the reference's tied `lm_head`);
//! - the control classifier p_φ(c | x_t, t) of plug-and-play control (§5.2), which pools the
//!   positions before its head, reads the denoiser's vectors and holds none of its own.
//!
//! Checkpoint keys: `word_embedding.weight` `[V, d]` (denoiser only), then the trunk's table in
//! [`super::patch_dit`] with p² read as d and N as the sequence's positions.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::load::{LoadError, TensorRole, TensorSlot, Weights, check_layout};
use super::patch_dit::{PatchDit, Role, TrunkShape};
use crate::config::{ConfigError, Family};
use crate::network::{ModelError, NoisyClassifier, VectorSpec, WordVectorDenoiser};
use crate::sampler::gaussian::BetaSchedule;

/// The reference's diffusion steps T.
pub const DEFAULT_DIFFUSION_STEPS: usize = 2000;
/// Key of the word vectors.
pub const EMBEDDING_KEY: &str = "word_embedding.weight";
/// Largest word-vector dimension accepted (the paper uses 16 to 128).
pub const MAX_EMBED_DIM: usize = 4096;

/// `config.json` of a Diffusion-LM folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffusionLmConfig {
    /// Always [`Family::DiffusionLm`].
    pub family: Family,
    /// The denoiser, or the control classifier.
    pub role: Role,
    /// Rows of the word-vector table: the tokenizer's vocabulary.
    pub vocab_size: usize,
    /// d, the word vectors' dimension (the reference's `in_channels`).
    pub embed_dim: usize,
    /// Positions of a sequence.
    pub model_length: usize,
    /// Width of the residual stream.
    pub hidden_dim: usize,
    /// Width of the conditioning vector.
    pub cond_dim: usize,
    /// Transformer blocks.
    pub n_blocks: usize,
    /// Attention heads per block; `hidden_dim / n_heads` must be even (rotary pairs).
    pub n_heads: usize,
    /// The diffusion's steps T.
    pub diffusion_steps: usize,
    /// The diffusion's β schedule (`sqrt` in the reference).
    pub beta_schedule: BetaSchedule,
    /// The classifier's attribute values, in the order of its outputs (`["austen", "bible"]`);
    /// none for the denoiser.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A denoiser's control classifier, a folder relative to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
}

impl DiffusionLmConfig {
    /// Parses and checks a `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_slice(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every size against its bound and against the others.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::limits::{self, check};
        let bad = |field, value: String, hint| ConfigError::Unsupported { field, value, hint };
        if self.family != Family::DiffusionLm {
            return Err(bad(
                "family",
                self.family.name().into(),
                "a Diffusion-LM folder says \"family\": \"diffusion-lm\"",
            ));
        }
        check("vocab_size", self.vocab_size, limits::MAX_VOCAB_SIZE)?;
        check("embed_dim", self.embed_dim, MAX_EMBED_DIM)?;
        check("model_length", self.model_length, limits::MAX_MODEL_LENGTH)?;
        check("labels", self.labels.len(), limits::MAX_CLASSES)?;
        for (field, value) in [
            ("vocab_size", self.vocab_size),
            ("embed_dim", self.embed_dim),
            ("model_length", self.model_length),
        ] {
            if value == 0 {
                return Err(bad(field, value.to_string(), "it must be positive"));
            }
        }
        super::patch_dit::check_trunk(
            self.hidden_dim,
            self.cond_dim,
            self.n_blocks,
            self.n_heads,
            self.diffusion_steps,
        )?;
        match self.role {
            Role::Classifier if self.labels.len() < 2 => Err(bad(
                "labels",
                format!("{:?}", self.labels),
                "a classifier names at least two attribute values",
            )),
            Role::Denoiser if !self.labels.is_empty() => Err(bad(
                "labels",
                format!("{:?}", self.labels),
                "only a classifier has labels",
            )),
            _ => Ok(()),
        }
    }

    /// The trunk's sizes.
    pub fn trunk(&self) -> TrunkShape {
        let classifier = self.role == Role::Classifier;
        TrunkShape {
            input: self.embed_dim,
            tokens: self.model_length,
            hidden_dim: self.hidden_dim,
            cond_dim: self.cond_dim,
            n_blocks: self.n_blocks,
            n_heads: self.n_heads,
            class_rows: None,
            head_out: if classifier {
                self.labels.len()
            } else {
                self.embed_dim
            },
            pooled: classifier,
        }
    }

    /// Every tensor of a checkpoint: the word vectors (a denoiser's), then the trunk's.
    pub fn layout(&self) -> Vec<TensorSlot> {
        let mut slots = Vec::new();
        if self.role == Role::Denoiser {
            slots.push(TensorSlot {
                name: EMBEDDING_KEY.into(),
                shape: vec![self.vocab_size, self.embed_dim],
                role: TensorRole::Embedding,
                zero_init: false,
            });
        }
        slots.extend(self.trunk().layout());
        slots
    }

    /// Checks that this classifier reads the word vectors of `denoiser` over its diffusion.
    pub fn check_pair(&self, denoiser: &DiffusionLmConfig) -> Result<(), LoadError> {
        let pairs = [
            ("vocab_size", self.vocab_size, denoiser.vocab_size),
            ("embed_dim", self.embed_dim, denoiser.embed_dim),
            ("model_length", self.model_length, denoiser.model_length),
            (
                "diffusion_steps",
                self.diffusion_steps,
                denoiser.diffusion_steps,
            ),
        ];
        for (field, classifier, denoiser) in pairs {
            if classifier != denoiser {
                return Err(LoadError::Pair {
                    field,
                    classifier: classifier.to_string(),
                    denoiser: denoiser.to_string(),
                });
            }
        }
        if self.beta_schedule != denoiser.beta_schedule {
            return Err(LoadError::Pair {
                field: "beta_schedule",
                classifier: format!("{:?}", self.beta_schedule),
                denoiser: format!("{:?}", denoiser.beta_schedule),
            });
        }
        Ok(())
    }

    /// Parameters of the network.
    pub fn parameter_count(&self) -> u64 {
        super::load::layout_parameters(&self.layout())
    }
}

/// A Diffusion-LM network: the denoiser with its word vectors, or the control classifier.
#[derive(Module, Debug)]
pub struct DiffusionLm {
    /// `word_embedding.weight`, EMB `[V, d]`: the denoiser's alone.
    pub embedding: Option<Param<Tensor<2>>>,
    /// The trunk over the positions.
    pub trunk: PatchDit,
}

impl DiffusionLm {
    /// EMB(w) of the tokens `ids` `[B, L]`: `[B, L, d]` (zeros for a classifier, which has no
    /// vectors: the caller embeds with the denoiser's).
    pub fn embed(&self, ids: Tensor<2, Int>) -> Option<Tensor<3>> {
        let table = self.embedding.as_ref()?.val();
        let [b, l] = ids.dims();
        let d = table.dims()[1];
        Some(table.select(0, ids.reshape([b * l])).reshape([b, l, d]))
    }

    /// The denoiser's x̂₀ `[B, L, d]` for `x_t` `[B, L, d]` at the time index `t` of each
    /// sequence; the classifier's logits `[B, 1, classes]`.
    pub fn forward(&self, x_t: Tensor<3>, t: &[f32]) -> Tensor<3> {
        self.trunk.forward_tokens(x_t, t, None)
    }

    /// The tied logits x·EMBᵀ `[B, L, V]` of vectors `x` `[B, L, d]`: rounding's scores (the
    /// reference's `get_logits`); `None` for a classifier.
    pub fn logits(&self, x: Tensor<3>) -> Option<Tensor<3>> {
        let table = self.embedding.as_ref()?.val();
        let [b, l, d] = x.dims();
        let v = table.dims()[0];
        Some(
            x.reshape([b * l, d])
                .matmul(table.transpose())
                .reshape([b, l, v]),
        )
    }

    /// The row of EMB nearest to each of `x`'s vectors `[B, L, d]` in Euclidean distance, `[B, L]`
    /// (the clamping trick's rounding, the reference's `denoised_fn_round`); `None` for a
    /// classifier.
    pub fn nearest(&self, x: Tensor<3>) -> Option<Tensor<2, Int>> {
        let table = self.embedding.as_ref()?.val();
        let [b, l, _] = x.dims();
        let v = table.dims()[0];
        // ‖x − e‖² = ‖x‖² − 2 x·e + ‖e‖²: ‖x‖² is the same for every row.
        let norms = table.powi_scalar(2).sum_dim(1).reshape([1, 1, v]);
        let dist = norms - self.logits(x)? * 2.0;
        Some(dist.argmin(2).reshape([b, l]))
    }
}

/// Builds the network of `config` from safetensors bytes, after checking the header against the
/// config's layout both ways.
pub fn load_diffusion_lm(
    config: &DiffusionLmConfig,
    bytes: &[u8],
    device: &Device,
) -> Result<DiffusionLm, LoadError> {
    let file = safetensors::SafeTensors::deserialize(bytes)?;
    check_layout(
        &config.layout(),
        &file,
        "",
        |_| None,
        |name| {
            if name.starts_with("blocks.") {
                format!(" (n_blocks = {})", config.n_blocks)
            } else if name == EMBEDDING_KEY {
                format!(" (role {:?})", config.role)
            } else {
                String::new()
            }
        },
    )?;
    let w = Weights::new(&file, "", device);
    let embedding = match config.role {
        Role::Denoiser => Some(Param::from_tensor(w.tensor2(
            EMBEDDING_KEY,
            config.vocab_size,
            config.embed_dim,
        )?)),
        Role::Classifier => None,
    };
    Ok(DiffusionLm {
        embedding,
        trunk: config.trunk().load(&w)?,
    })
}

/// A checkpoint of `config` where a training run starts, deterministic in `seed`: the trunk as
/// the digits' (adaLN-Zero: the modulations and the head at zero), the word vectors N(0, 1) as
/// PyTorch's `nn.Embedding` starts them.
pub fn initial_diffusion_lm(config: &DiffusionLmConfig, seed: u64) -> Result<Vec<u8>, LoadError> {
    checkpoint(config, seed, super::load::initial_value)
}

/// A checkpoint of `config` whose every weight is random (the head too), for tests.
pub fn random_diffusion_lm(config: &DiffusionLmConfig, seed: u64) -> Result<Vec<u8>, LoadError> {
    checkpoint(config, seed, super::load::random_value)
}

/// A checkpoint of `config`: the word vectors N(0, 1), every other slot drawn by `trunk`.
fn checkpoint(
    config: &DiffusionLmConfig,
    seed: u64,
    trunk: fn(&TensorSlot, &mut crate::rng::Rng) -> f32,
) -> Result<Vec<u8>, LoadError> {
    let tensors = super::load::fill_layout(config.layout(), seed, |slot, rng| {
        if slot.name == EMBEDDING_KEY {
            crate::sampler::image::normal(rng) as f32
        } else {
            trunk(slot, rng)
        }
    });
    super::load::write_safetensors_under(&tensors, "", safetensors::Dtype::F32)
}

impl DiffusionLmConfig {
    /// What the sampler needs to know of a denoiser of this config.
    pub fn vector_spec(&self) -> VectorSpec {
        VectorSpec {
            vocab_size: self.vocab_size,
            embed_dim: self.embed_dim,
            model_length: self.model_length,
            diffusion_steps: self.diffusion_steps,
            beta_schedule: self.beta_schedule,
        }
    }
}

/// A loaded denoiser on its device, with its word vectors on the CPU too (the sampler rounds
/// there): the [`WordVectorDenoiser`] Diffusion-LM's sampler runs.
#[derive(Clone, Debug)]
pub struct DiffusionLmDenoiser {
    net: DiffusionLm,
    device: Device,
    spec: VectorSpec,
    embedding: Vec<f32>,
}

impl DiffusionLmDenoiser {
    /// The denoiser of `config` from its safetensors `bytes`, on `device`.
    pub fn load(
        config: &DiffusionLmConfig,
        bytes: &[u8],
        device: &Device,
    ) -> Result<Self, LoadError> {
        if config.role != Role::Denoiser {
            return Err(LoadError::Role {
                found: "control classifier",
                wanted: "denoiser",
            });
        }
        let net = load_diffusion_lm(config, bytes, device)?;
        let file = safetensors::SafeTensors::deserialize(bytes)?;
        let view = file.tensor(EMBEDDING_KEY)?;
        let embedding = super::load::decode(EMBEDDING_KEY, &view)?;
        Ok(Self {
            net,
            device: device.clone(),
            spec: config.vector_spec(),
            embedding,
        })
    }

    /// The network.
    pub fn net(&self) -> &DiffusionLm {
        &self.net
    }
}

impl WordVectorDenoiser for DiffusionLmDenoiser {
    fn spec(&self) -> &VectorSpec {
        &self.spec
    }

    fn embedding(&self) -> &[f32] {
        &self.embedding
    }

    async fn predict_x0(&mut self, x: &[f32], t: usize) -> Result<Vec<f32>, ModelError> {
        let d = self.spec.embed_dim;
        let n = x.len() / d;
        if n == 0 || x.len() != n * d || n > self.spec.model_length {
            return Err(ModelError::Unsupported(format!(
                "{} values are not a sequence of at most {} vectors of {d}",
                x.len(),
                self.spec.model_length
            )));
        }
        if t >= self.spec.diffusion_steps {
            return Err(ModelError::Unsupported(format!(
                "time {t} is outside the model's diffusion of {} steps",
                self.spec.diffusion_steps
            )));
        }
        let x = Tensor::<3>::from_data(TensorData::new(x.to_vec(), [1, n, d]), &self.device);
        let x0 = self.net.forward(x, &[t as f32]);
        super::read_finite(x0, &self.device).await
    }
}

/// A loaded control classifier p_φ(c | x_t, t) on its device, checked against the denoiser it
/// steers. Its gradient is burn's autodiff of the very forward pass.
#[derive(Clone, Debug)]
pub struct DiffusionLmClassifier {
    net: DiffusionLm,
    device: Device,
    labels: Vec<String>,
    embed_dim: usize,
    model_length: usize,
    steps: usize,
}

impl DiffusionLmClassifier {
    /// The classifier of `config` from its safetensors `bytes`, on `device`, for the denoiser of
    /// `denoiser`: both must read the same word vectors over the same diffusion.
    pub fn load(
        config: &DiffusionLmConfig,
        bytes: &[u8],
        denoiser: &DiffusionLmConfig,
        device: &Device,
    ) -> Result<Self, LoadError> {
        if config.role != Role::Classifier {
            return Err(LoadError::Role {
                found: "denoiser",
                wanted: "control classifier",
            });
        }
        config.check_pair(denoiser)?;
        Ok(Self {
            net: load_diffusion_lm(config, bytes, device)?,
            device: device.clone(),
            labels: config.labels.clone(),
            embed_dim: config.embed_dim,
            model_length: config.model_length,
            steps: config.diffusion_steps,
        })
    }

    /// The attribute values it tells apart, in the order of its outputs.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The sequences of `x` (`[B · n · d]`, B = `count`) as a tensor on `device`, after checking
    /// the sizes and the time.
    fn sequences(
        &self,
        x: &[f32],
        count: usize,
        t: usize,
        device: &Device,
    ) -> Result<Tensor<3>, ModelError> {
        let d = self.embed_dim;
        let n = x.len() / (count * d).max(1);
        if count == 0 || n == 0 || n > self.model_length || x.len() != count * n * d {
            return Err(ModelError::Unsupported(format!(
                "{} values are not {count} sequences of at most {} vectors of {d}",
                x.len(),
                self.model_length
            )));
        }
        if t >= self.steps {
            return Err(ModelError::Unsupported(format!(
                "time {t} is outside the model's diffusion of {} steps",
                self.steps
            )));
        }
        Ok(Tensor::<3>::from_data(
            TensorData::new(x.to_vec(), [count, n, d]),
            device,
        ))
    }

    /// p_φ(· | x_t, t) of each of `count` sequences in `x`: `[count · labels]` probabilities.
    pub async fn probabilities(
        &self,
        x: &[f32],
        count: usize,
        t: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let x = self.sequences(x, count, t, &self.device)?;
        let logits = self.net.forward(x, &vec![t as f32; count]);
        super::read_finite(burn::tensor::activation::softmax(logits, 2), &self.device).await
    }
}

impl NoisyClassifier for DiffusionLmClassifier {
    fn classes(&self) -> usize {
        self.labels.len()
    }

    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    async fn log_prob_gradient(
        &mut self,
        x: &[f32],
        t: usize,
        classes: &[usize],
    ) -> Result<(Vec<f32>, Vec<f64>), ModelError> {
        let b = classes.len();
        if let Some(c) = classes.iter().find(|&&c| c >= self.labels.len()) {
            return Err(ModelError::Unsupported(format!(
                "attribute {c} is outside the classifier's {} labels",
                self.labels.len()
            )));
        }
        let tape = self.device.clone().autodiff();
        let x = self.sequences(x, b, t, &tape)?.require_grad();
        let logits = self.net.forward(x.clone(), &vec![t as f32; b]);
        let labels = logits.dims()[2];
        let logits = logits.reshape([b, labels]);
        super::class_log_prob_gradient(x, logits, classes, &self.device).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny(role: Role) -> DiffusionLmConfig {
        DiffusionLmConfig {
            family: Family::DiffusionLm,
            role,
            vocab_size: 11,
            embed_dim: 4,
            model_length: 6,
            hidden_dim: 16,
            cond_dim: 16,
            n_blocks: 1,
            n_heads: 2,
            diffusion_steps: 50,
            beta_schedule: BetaSchedule::Sqrt,
            labels: match role {
                Role::Classifier => vec!["austen".into(), "bible".into()],
                Role::Denoiser => vec![],
            },
            classifier: None,
        }
    }

    #[test]
    fn a_checkpoint_round_trips_and_rounding_finds_each_word_s_own_vector() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let config = tiny(Role::Denoiser);
        let bytes = random_diffusion_lm(&config, 3).unwrap();
        let net = load_diffusion_lm(&config, &bytes, &device).unwrap();
        let ids: Vec<i64> = vec![0, 3, 5, 10, 7, 7];
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, 6]), &device);
        let x = net.embed(ids.clone()).unwrap();
        assert_eq!(x.dims(), [1, 6, 4]);
        // A word's own vector is its nearest row.
        let back = net.nearest(x.clone()).unwrap();
        assert_eq!(
            back.into_data().iter::<i64>().collect::<Vec<_>>(),
            ids.into_data().iter::<i64>().collect::<Vec<_>>()
        );
        assert_eq!(net.logits(x.clone()).unwrap().dims(), [1, 6, 11]);
        assert_eq!(net.forward(x, &[7.0]).dims(), [1, 6, 4]);
        // Saved and read back: the same checkpoint.
        let again = crate::model::save::save_diffusion_lm(&net, safetensors::Dtype::F32).unwrap();
        assert_eq!(again, bytes);
        // The classifier: no vectors of its own, one score per label.
        let c = tiny(Role::Classifier);
        let net = load_diffusion_lm(&c, &random_diffusion_lm(&c, 4).unwrap(), &device).unwrap();
        assert!(net.embedding.is_none());
        let x = Tensor::<3>::zeros([2, 6, 4], &device);
        assert_eq!(net.forward(x, &[0.0, 9.0]).dims(), [2, 1, 2]);
        // A denoiser's checkpoint is not a classifier's.
        let err = load_diffusion_lm(&c, &bytes, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not belong together"), "{err}");
    }

    #[test]
    fn nan_weights_are_a_model_error_not_a_sentence() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let config = tiny(Role::Denoiser);
        let tensors = super::super::load::fill_layout(config.layout(), 2, |slot, rng| {
            if slot.name == "final.linear.weight" {
                f32::NAN
            } else {
                super::super::load::initial_value(slot, rng)
            }
        });
        let bytes =
            super::super::load::write_safetensors_under(&tensors, "", safetensors::Dtype::F32)
                .unwrap();
        let mut net = DiffusionLmDenoiser::load(&config, &bytes, &device).unwrap();
        let x = vec![0.5; 6 * 4];
        let err = pollster::block_on(net.predict_x0(&x, 3)).unwrap_err();
        assert!(matches!(err, ModelError::NonFinite { .. }), "{err}");
        // Sizes the network was not built for are refused too.
        assert!(pollster::block_on(net.predict_x0(&x[..5], 3)).is_err());
        assert!(pollster::block_on(net.predict_x0(&x, 50)).is_err());
    }

    #[test]
    fn configs_are_checked_field_by_field() {
        let ok = tiny(Role::Denoiser);
        assert!(ok.validate().is_ok());
        let cases: [(&str, DiffusionLmConfig); 5] = [
            (
                "n_heads",
                DiffusionLmConfig {
                    n_heads: 3,
                    ..ok.clone()
                },
            ),
            (
                "embed_dim",
                DiffusionLmConfig {
                    embed_dim: 0,
                    ..ok.clone()
                },
            ),
            (
                "labels",
                DiffusionLmConfig {
                    labels: vec!["a".into()],
                    ..ok.clone()
                },
            ),
            (
                "labels",
                DiffusionLmConfig {
                    labels: vec!["a".into()],
                    ..tiny(Role::Classifier)
                },
            ),
            (
                "family",
                DiffusionLmConfig {
                    family: Family::Text,
                    ..ok.clone()
                },
            ),
        ];
        for (field, c) in cases {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        let json = serde_json::to_vec(&ok).unwrap();
        assert_eq!(DiffusionLmConfig::from_json(&json).unwrap(), ok);
    }

    #[test]
    fn the_control_classifier_s_gradient_is_its_own_and_it_must_match_its_denoiser() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let c = tiny(Role::Classifier);
        let bytes = random_diffusion_lm(&c, 6).unwrap();
        let denoiser = tiny(Role::Denoiser);
        let mut net = DiffusionLmClassifier::load(&c, &bytes, &denoiser, &device).unwrap();
        assert_eq!(net.labels(), ["austen", "bible"]);
        // Five of the six positions: a shorter sentence than the model's.
        let x: Vec<f32> = (0..5 * 4)
            .map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let (gradient, p) = pollster::block_on(net.log_prob_gradient(&x, 12, &[1])).unwrap();
        let probs = pollster::block_on(net.probabilities(&x, 1, 12)).unwrap();
        assert!((p[0] - f64::from(probs[1])).abs() < 1e-6, "{p:?} {probs:?}");
        let log_p = |x: &[f32]| {
            let probs = pollster::block_on(net.probabilities(x, 1, 12)).unwrap();
            f64::from(probs[1]).ln()
        };
        for i in [0, 9, 19] {
            let h = 1e-2;
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (log_p(&up) - log_p(&down)) / (2.0 * f64::from(h));
            let exact = f64::from(gradient[i]);
            assert!(
                (numeric - exact).abs() < 1e-2 * (1.0 + exact.abs()),
                "number {i}: autodiff {exact}, differences {numeric}"
            );
        }
        // Sizes and labels it cannot read are refused.
        assert!(pollster::block_on(net.log_prob_gradient(&x, 12, &[2])).is_err());
        assert!(pollster::block_on(net.log_prob_gradient(&x[..3], 12, &[1])).is_err());
        assert!(pollster::block_on(net.log_prob_gradient(&x, 50, &[1])).is_err());
        // A classifier of another denoiser, or a denoiser in its place.
        let wider = DiffusionLmConfig {
            embed_dim: 8,
            ..denoiser.clone()
        };
        let err = DiffusionLmClassifier::load(&c, &bytes, &wider, &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("embed_dim is 4 but the denoiser's is 8"),
            "{err}"
        );
        let err = DiffusionLmClassifier::load(&denoiser, &bytes, &denoiser, &device)
            .unwrap_err()
            .to_string();
        assert!(err.contains("control classifier is needed"), "{err}");
    }
}
