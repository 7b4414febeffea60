//! The network of the Gaussian diffusion family: a DiT over 2×2 patches of an image, conditioned
//! on the diffusion time and (for the noise predictor) the class — Peebles & Xie, "Scalable
//! Diffusion Models with Transformers", arXiv:2212.09748 (patchify, learned positions, adaLN-Zero
//! blocks on c = t_emb + y_emb, the null class for classifier-free guidance, a linear
//! unpatchify) — built from the very blocks of the text DiT ([`DitBlock`], [`FinalLayer`]).
//!
//! One architecture, two roles ([`Role`]): the noise predictor ε_θ(x_t, t, y) of DDPM (Ho et
//! al. 2020), and the noisy classifier p_φ(y | x_t, t) of classifier guidance (Dhariwal & Nichol
//! 2021, §4), which mean-pools the tokens before its head and sees no class.
//!
//! Checkpoint keys (no prefix; `nn.Linear` weights `[out, in]`, as in the text DiT):
//!
//! | key | shape | |
//! |---|---|---|
//! | `patch_embed.{weight,bias}` | `[d, p²]`, `[d]` | a patch's pixels to a token |
//! | `pos_embed` | `[N, d]` | one row per patch, N = (side / p)² |
//! | `t_embed.mlp.{0,2}.{weight,bias}` | `[c, 256]`, `[c, c]` | the time's sinusoidal features to c |
//! | `y_embed` | `[classes + 1, c]` | denoiser only; the last row is the null class |
//! | `blocks.{i}.*` | as the text DiT's | |
//! | `final.norm_final.weight`, `final.adaLN_modulation.*` | `[d]`, `[2d, c]` | |
//! | `final.linear.{weight,bias}` | `[p², d]` or `[classes, d]` | ε per patch, or class logits |

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::dit::{DitBlock, FinalLayer};
use super::layers::{FREQUENCY_EMBEDDING_SIZE, ROTARY_BASE, rotary_tables, timestep_features};
use super::load::{LoadError, TensorRole, TensorSlot, Weights, check_layout};
use crate::config::{ConfigError, Family, MLP_RATIO};
use crate::network::{ImageSpec, ModelError, NoisePredictor, NoisyClassifier};
use crate::sampler::gaussian::BetaSchedule;

/// Largest image side accepted.
pub const MAX_SIDE: usize = 256;
/// Most classes accepted.
pub const MAX_CLASSES: usize = crate::limits::MAX_CLASSES;

/// What the network predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The noise ε in x_t (DDPM's ε_θ).
    Denoiser,
    /// The class of x_t (classifier guidance's p_φ).
    Classifier,
}

/// `config.json` of a digits-family folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchDitConfig {
    /// Always [`Family::Ddpm`].
    pub family: Family,
    /// Noise predictor or classifier.
    pub role: Role,
    /// Pixels along a side (8 for the digits).
    pub image_size: usize,
    /// Pixels along a patch's side.
    pub patch_size: usize,
    /// Width of the residual stream.
    pub hidden_dim: usize,
    /// Width of the conditioning vector.
    pub cond_dim: usize,
    /// Transformer blocks.
    pub n_blocks: usize,
    /// Attention heads per block; `hidden_dim / n_heads` must be even (rotary pairs).
    pub n_heads: usize,
    /// Classes: the denoiser's conditions (plus a null class), the classifier's outputs.
    pub classes: usize,
    /// The diffusion's steps T.
    pub diffusion_steps: usize,
    /// The diffusion's β schedule.
    pub beta_schedule: BetaSchedule,
    /// A denoiser's noisy classifier, a folder relative to this one (`../ddpm-classifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
}

impl PatchDitConfig {
    /// A network of `role` for the 8×8 digits: 2×2 patches, 10 classes, DDPM's T = 1000 on the
    /// linear schedule, `hidden_dim` wide (and the conditioning as wide), `n_blocks` deep with
    /// `n_heads` heads. (Native only, with the digits' reader.)
    #[cfg(not(target_family = "wasm"))]
    pub fn digits(role: Role, hidden_dim: usize, n_blocks: usize, n_heads: usize) -> Self {
        Self {
            family: Family::Ddpm,
            role,
            image_size: crate::corpus::digits::SIDE,
            patch_size: 2,
            hidden_dim,
            cond_dim: hidden_dim,
            n_blocks,
            n_heads,
            classes: crate::corpus::digits::CLASSES,
            diffusion_steps: crate::sampler::gaussian::DEFAULT_STEPS,
            beta_schedule: BetaSchedule::Linear,
            classifier: None,
        }
    }

    /// Parses and checks a `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_slice(bytes)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every size against its bound and against the others.
    pub fn validate(&self) -> Result<(), ConfigError> {
        crate::limits::check("image_size", self.image_size, MAX_SIDE)?;
        crate::limits::check("classes", self.classes, MAX_CLASSES)?;
        check_trunk(
            self.hidden_dim,
            self.cond_dim,
            self.n_blocks,
            self.n_heads,
            self.diffusion_steps,
        )?;
        let bad = |field, value: usize, hint| ConfigError::Unsupported {
            field,
            value: value.to_string(),
            hint,
        };
        for (field, value) in [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
        ] {
            if value == 0 {
                return Err(bad(field, value, "it must be positive"));
            }
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(bad(
                "patch_size",
                self.patch_size,
                "it must divide image_size",
            ));
        }
        if self.role == Role::Classifier && self.classes < 2 {
            return Err(bad(
                "classes",
                self.classes,
                "a classifier needs at least two classes",
            ));
        }
        Ok(())
    }

    /// Parameters of the network (the sum over its layout).
    pub fn parameter_count(&self) -> u64 {
        super::load::layout_parameters(&self.layout())
    }

    /// Patches per image.
    pub fn tokens(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Pixels per patch.
    pub fn patch_pixels(&self) -> usize {
        self.patch_size * self.patch_size
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.image_size * self.image_size
    }

    /// Outputs per token of the head.
    fn head_out(&self) -> usize {
        match self.role {
            Role::Denoiser => self.patch_pixels(),
            Role::Classifier => self.classes,
        }
    }

    /// Whether the network reads a class (a denoiser trained with classes).
    pub fn conditional(&self) -> bool {
        self.role == Role::Denoiser && self.classes > 0
    }

    /// The id of the null class (classifier-free guidance's ∅).
    pub fn null_class(&self) -> usize {
        self.classes
    }

    /// The trunk's sizes.
    pub fn trunk(&self) -> TrunkShape {
        TrunkShape {
            input: self.patch_pixels(),
            tokens: self.tokens(),
            hidden_dim: self.hidden_dim,
            cond_dim: self.cond_dim,
            n_blocks: self.n_blocks,
            n_heads: self.n_heads,
            class_rows: self.conditional().then_some(self.classes + 1),
            head_out: self.head_out(),
            pooled: self.role == Role::Classifier,
        }
    }

    /// Every tensor of a checkpoint, in a fixed order (the table in the module docs).
    pub fn layout(&self) -> Vec<TensorSlot> {
        self.trunk().layout()
    }
}

/// The sizes of a DiT over a sequence of vectors: the digits' patches here, Diffusion-LM's word
/// vectors in [`super::diffusion_lm`]. Its keys are the table in the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrunkShape {
    /// Numbers per input vector (a patch's pixels, a word vector's dimension).
    pub input: usize,
    /// Vectors per sequence.
    pub tokens: usize,
    /// Width of the residual stream.
    pub hidden_dim: usize,
    /// Width of the conditioning vector.
    pub cond_dim: usize,
    /// Transformer blocks.
    pub n_blocks: usize,
    /// Attention heads per block.
    pub n_heads: usize,
    /// Rows of the class table `y_embed` (the classes and the null class), when the network
    /// reads a class.
    pub class_rows: Option<usize>,
    /// Outputs per vector, or per sequence when pooled.
    pub head_out: usize,
    /// Whether the head pools the sequence (a classifier).
    pub pooled: bool,
}

impl TrunkShape {
    /// Every tensor, in a fixed order.
    pub fn layout(&self) -> Vec<TensorSlot> {
        let (d, c, m) = (self.hidden_dim, self.cond_dim, MLP_RATIO * self.hidden_dim);
        let mut slots = Vec::new();
        let mut linear = |name: &str, d_in: usize, d_out: usize, zero: bool| {
            slots.push(TensorSlot {
                name: format!("{name}.weight"),
                shape: vec![d_out, d_in],
                role: TensorRole::Weight { fan_in: d_in },
                zero_init: zero,
            });
            slots.push(TensorSlot {
                name: format!("{name}.bias"),
                shape: vec![d_out],
                role: TensorRole::Bias { fan_in: d_in },
                zero_init: zero,
            });
        };
        linear("patch_embed", self.input, d, false);
        linear("t_embed.mlp.0", FREQUENCY_EMBEDDING_SIZE, c, false);
        linear("t_embed.mlp.2", c, c, false);
        for i in 0..self.n_blocks {
            let p = format!("blocks.{i}");
            linear(&format!("{p}.mlp.0"), d, m, false);
            linear(&format!("{p}.mlp.2"), m, d, false);
            linear(&format!("{p}.adaLN_modulation"), c, 6 * d, true);
        }
        linear("final.adaLN_modulation", c, 2 * d, true);
        linear("final.linear", d, self.head_out, true);
        let matrix = |name: &str, shape: [usize; 2], role| TensorSlot {
            name: name.into(),
            shape: shape.to_vec(),
            role,
            zero_init: false,
        };
        slots.push(matrix("pos_embed", [self.tokens, d], TensorRole::Embedding));
        if let Some(rows) = self.class_rows {
            slots.push(matrix("y_embed", [rows, c], TensorRole::Embedding));
        }
        for i in 0..self.n_blocks {
            let p = format!("blocks.{i}");
            slots.push(matrix(
                &format!("{p}.attn_qkv.weight"),
                [3 * d, d],
                TensorRole::Weight { fan_in: d },
            ));
            slots.push(matrix(
                &format!("{p}.attn_out.weight"),
                [d, d],
                TensorRole::Weight { fan_in: d },
            ));
            for norm in ["norm1", "norm2"] {
                slots.push(TensorSlot {
                    name: format!("{p}.{norm}.weight"),
                    shape: vec![d],
                    role: TensorRole::Norm,
                    zero_init: false,
                });
            }
        }
        slots.push(TensorSlot {
            name: "final.norm_final.weight".into(),
            shape: vec![d],
            role: TensorRole::Norm,
            zero_init: false,
        });
        slots
    }
}

/// The network.
#[derive(Module, Debug)]
pub struct PatchDit {
    /// `patch_embed`: a patch's pixels to a token.
    pub patch_embed: Linear,
    /// `pos_embed`: `[N, d]`.
    pub pos_embed: Param<Tensor<2>>,
    /// `t_embed.mlp.0`.
    pub t_mlp0: Linear,
    /// `t_embed.mlp.2`.
    pub t_mlp2: Linear,
    /// `y_embed`: `[classes + 1, c]`, the denoiser's classes and the null class.
    pub y_embed: Option<Param<Tensor<2>>>,
    /// `blocks.{i}`.
    pub blocks: Vec<DitBlock>,
    /// `final`.
    pub final_layer: FinalLayer,
    /// Pixels along a patch's side (0 where the input is not an image's patches).
    pub patch_size: usize,
    /// Whether the head pools the tokens (the classifier).
    pub pooled: bool,
}

impl PatchDit {
    /// The conditioning `silu(t_emb(t) + y_emb(y))`, `[B, c]`; `t` is the diffusion time index of
    /// each image, `classes` its class (or the null class), when the network reads one.
    fn conditioning(
        &self,
        t: &[f32],
        classes: Option<Tensor<1, Int>>,
        device: &Device,
    ) -> Tensor<2> {
        let features = Tensor::<2>::from_data(
            TensorData::new(timestep_features(t), [t.len(), FREQUENCY_EMBEDDING_SIZE]),
            device,
        );
        let mut c = self.t_mlp2.forward(silu(self.t_mlp0.forward(features)));
        if let (Some(table), Some(classes)) = (&self.y_embed, classes) {
            c = c + table.val().select(0, classes);
        }
        silu(c)
    }

    /// ε̂ `[B, pixels]` (denoiser) or class logits `[B, classes]` (classifier) for the images
    /// `x` `[B, pixels]` (row-major) at times `t`, with `classes` for a conditional denoiser.
    pub fn forward(&self, x: Tensor<2>, t: &[f32], classes: Option<Tensor<1, Int>>) -> Tensor<2> {
        let [b, pixels] = x.dims();
        let p = self.patch_size;
        let side = (pixels as f64).sqrt().round() as usize;
        let out = self.forward_tokens(patchify(x, side, p), t, classes);
        if self.pooled {
            let [_, _, k] = out.dims();
            return out.reshape([b, k]);
        }
        unpatchify(out, side, p)
    }

    /// The trunk on a sequence of vectors `x` `[B, N, input]` at times `t`: `[B, N, out]`, or
    /// `[B, 1, classes]` for a classifier (which mean-pools the sequence before its head). A
    /// sequence shorter than the trunk's positions takes the first N of them.
    pub fn forward_tokens(
        &self,
        x: Tensor<3>,
        t: &[f32],
        classes: Option<Tensor<1, Int>>,
    ) -> Tensor<3> {
        let device = x.device();
        let [_, n, _] = x.dims();
        let d = self.pos_embed.val().dims()[1];
        let positions = self.pos_embed.val().slice([0..n, 0..d]);
        let mut h = self.patch_embed.forward(x) + positions.reshape([1, n, d]);
        let cond = self.conditioning(t, classes, &device).unsqueeze_dim::<3>(1); // [B, 1, c]
        let heads = self.blocks.first().map_or(1, |blk| blk.n_heads);
        let rope = rotary_tables(0, n, d / heads, ROTARY_BASE, &device);
        for block in &self.blocks {
            h = block.forward(h, &cond, &rope, None, None, 0);
        }
        if self.pooled {
            h = h.mean_dim(1); // [B, 1, d]
        }
        self.final_layer.forward(h, &cond)
    }
}

/// `[B, side²]` row-major images to `[B, N, p²]` patches, row by row:
/// `[B, side/p, p, side/p, p]` → `[B, side/p, side/p, p, p]`.
pub fn patchify(x: Tensor<2>, side: usize, p: usize) -> Tensor<3> {
    let [b, _] = x.dims();
    let k = side / p;
    x.reshape([b, k, p, k, p])
        .swap_dims(2, 3)
        .reshape([b, k * k, p * p])
}

/// The inverse of [`patchify`].
pub fn unpatchify(patches: Tensor<3>, side: usize, p: usize) -> Tensor<2> {
    let [b, _, _] = patches.dims();
    let k = side / p;
    patches
        .reshape([b, k, k, p, p])
        .swap_dims(2, 3)
        .reshape([b, side * side])
}

/// Builds the network of `config` from safetensors bytes, after checking the header against the
/// config's layout both ways.
pub fn load_patch_dit(
    config: &PatchDitConfig,
    bytes: &[u8],
    device: &Device,
) -> Result<PatchDit, LoadError> {
    let file = safetensors::SafeTensors::deserialize(bytes)?;
    let w = Weights::new(&file, "", device);
    check_layout(
        &config.layout(),
        &file,
        "",
        |_| None,
        |name| {
            if name.starts_with("blocks.") {
                format!(" (n_blocks = {})", config.n_blocks)
            } else if name == "y_embed" {
                format!(" (role {:?}, classes {})", config.role, config.classes)
            } else {
                String::new()
            }
        },
    )?;
    let net = config.trunk().load(&w)?;
    Ok(PatchDit {
        patch_size: config.patch_size,
        ..net
    })
}

impl TrunkShape {
    /// The trunk from `w`, whose keys were checked against [`TrunkShape::layout`].
    pub(crate) fn load(&self, w: &Weights<'_>) -> Result<PatchDit, LoadError> {
        let (d, c, m) = (self.hidden_dim, self.cond_dim, MLP_RATIO * self.hidden_dim);
        let mut blocks = Vec::with_capacity(self.n_blocks);
        for i in 0..self.n_blocks {
            let p = format!("blocks.{i}");
            blocks.push(DitBlock {
                norm1: w.norm(&format!("{p}.norm1"), d)?,
                attn_qkv: w.linear(&format!("{p}.attn_qkv"), d, 3 * d, false)?,
                attn_out: w.linear(&format!("{p}.attn_out"), d, d, false)?,
                norm2: w.norm(&format!("{p}.norm2"), d)?,
                mlp0: w.linear(&format!("{p}.mlp.0"), d, m, true)?,
                mlp2: w.linear(&format!("{p}.mlp.2"), m, d, true)?,
                adaln_modulation: Some(w.linear(
                    &format!("{p}.adaLN_modulation"),
                    c,
                    6 * d,
                    true,
                )?),
                n_heads: self.n_heads,
            });
        }
        Ok(PatchDit {
            patch_embed: w.linear("patch_embed", self.input, d, true)?,
            pos_embed: Param::from_tensor(w.tensor2("pos_embed", self.tokens, d)?),
            t_mlp0: w.linear("t_embed.mlp.0", FREQUENCY_EMBEDDING_SIZE, c, true)?,
            t_mlp2: w.linear("t_embed.mlp.2", c, c, true)?,
            y_embed: match self.class_rows {
                Some(rows) => Some(Param::from_tensor(w.tensor2("y_embed", rows, c)?)),
                None => None,
            },
            blocks,
            final_layer: FinalLayer {
                norm_final: w.norm("final.norm_final", d)?,
                adaln_modulation: Some(w.linear("final.adaLN_modulation", c, 2 * d, true)?),
                linear: w.linear("final.linear", d, self.head_out, true)?,
            },
            patch_size: 0,
            pooled: self.pooled,
        })
    }
}

/// A checkpoint of `config` with PyTorch's default initialisation (DiT's adaLN-Zero: every
/// modulation and the head at zero), deterministic in `seed`: where a training run starts.
pub fn initial_patch_dit(config: &PatchDitConfig, seed: u64) -> Result<Vec<u8>, LoadError> {
    let tensors = super::load::fill_layout(config.layout(), seed, super::load::initial_value);
    super::load::write_safetensors_under(&tensors, "", safetensors::Dtype::F32)
}

/// A checkpoint of `config` whose every weight is random (the head too), for tests: outputs vary
/// with the input from the start.
pub fn random_patch_dit(config: &PatchDitConfig, seed: u64) -> Result<Vec<u8>, LoadError> {
    let tensors = super::load::fill_layout(config.layout(), seed, super::load::random_value);
    super::load::write_safetensors_under(&tensors, "", safetensors::Dtype::F32)
}

impl PatchDitConfig {
    /// What an image sampler needs to know of a noise predictor of this config.
    pub fn image_spec(&self) -> ImageSpec {
        ImageSpec {
            side: self.image_size,
            classes: if self.role == Role::Denoiser {
                self.classes
            } else {
                0
            },
            diffusion_steps: self.diffusion_steps,
            beta_schedule: self.beta_schedule,
        }
    }
}

/// Checks a batch of images and its time against a network's sizes; returns the batch size.
fn check_images(
    x: &[f32],
    images: usize,
    pixels: usize,
    t: usize,
    steps: usize,
) -> Result<usize, ModelError> {
    if images == 0 || x.len() != images * pixels {
        return Err(ModelError::Unsupported(format!(
            "{} values for {images} images of {pixels} pixels each: every image must be {pixels} values",
            x.len()
        )));
    }
    if t >= steps {
        return Err(ModelError::Unsupported(format!(
            "time {t} is outside the model's diffusion of {steps} steps"
        )));
    }
    Ok(images)
}

/// The sizes of the trunk every config over it has, checked alike (the digits' and
/// Diffusion-LM's): each within its bound and positive, and `hidden_dim / n_heads` a whole, even
/// head size (rotary pairs).
pub(crate) fn check_trunk(
    hidden_dim: usize,
    cond_dim: usize,
    n_blocks: usize,
    n_heads: usize,
    diffusion_steps: usize,
) -> Result<(), ConfigError> {
    use crate::limits::{self, check};
    let sizes = [
        ("hidden_dim", hidden_dim, limits::MAX_HIDDEN_DIM),
        ("cond_dim", cond_dim, limits::MAX_COND_DIM),
        ("n_blocks", n_blocks, limits::MAX_BLOCKS),
        ("n_heads", n_heads, limits::MAX_HEADS),
        (
            "diffusion_steps",
            diffusion_steps,
            crate::sampler::gaussian::MAX_STEPS,
        ),
    ];
    for (field, value, max) in sizes {
        check(field, value, max)?;
    }
    let bad = |field, value: usize, hint| ConfigError::Unsupported {
        field,
        value: value.to_string(),
        hint,
    };
    if let Some(&(field, value, _)) = sizes.iter().find(|(_, value, _)| *value == 0) {
        return Err(bad(field, value, "it must be positive"));
    }
    if !hidden_dim.is_multiple_of(n_heads) || !(hidden_dim / n_heads).is_multiple_of(2) {
        return Err(bad(
            "n_heads",
            n_heads,
            "hidden_dim / n_heads must be a whole, even head size",
        ));
    }
    Ok(())
}

/// A loaded noise predictor on its device: the [`NoisePredictor`] the image samplers run.
#[derive(Clone, Debug)]
pub struct PatchDitNoise {
    net: PatchDit,
    device: Device,
    spec: ImageSpec,
}

impl PatchDitNoise {
    /// Wraps a network of `config`, which must be a denoiser.
    pub fn new(config: &PatchDitConfig, net: PatchDit, device: Device) -> Result<Self, LoadError> {
        if config.role != Role::Denoiser {
            return Err(LoadError::Role {
                found: "noisy classifier",
                wanted: "noise predictor",
            });
        }
        Ok(Self {
            net,
            device,
            spec: config.image_spec(),
        })
    }

    /// The network.
    pub fn net(&self) -> &PatchDit {
        &self.net
    }
}

impl NoisePredictor for PatchDitNoise {
    fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    async fn predict_noise(
        &mut self,
        x: &[f32],
        t: usize,
        classes: &[Option<usize>],
    ) -> Result<Vec<f32>, ModelError> {
        let spec = &self.spec;
        let b = check_images(x, classes.len(), spec.pixels(), t, spec.diffusion_steps)?;
        let labels = if spec.classes == 0 {
            if classes.iter().any(Option::is_some) {
                return Err(ModelError::Unsupported(
                    "this model was trained without classes: it draws any digit".into(),
                ));
            }
            None
        } else {
            let mut ids = Vec::with_capacity(b);
            for class in classes {
                match class {
                    Some(y) if *y >= spec.classes => {
                        return Err(ModelError::Unsupported(format!(
                            "class {y} is outside the model's {} classes",
                            spec.classes
                        )));
                    }
                    Some(y) => ids.push(*y as i64),
                    None => ids.push(spec.classes as i64),
                }
            }
            Some(Tensor::<1, Int>::from_data(
                TensorData::new(ids, [b]),
                &self.device,
            ))
        };
        let images = Tensor::<2>::from_data(
            TensorData::new(x.to_vec(), [b, spec.pixels()]),
            &self.device,
        );
        let eps = self.net.forward(images, &vec![t as f32; b], labels);
        super::read_finite(eps, &self.device).await
    }
}

/// A loaded noisy classifier on its device. Its gradient ∇ₓ log p_φ(y | x_t) is burn's autodiff
/// of the very forward pass, not a hand-derived formula.
#[derive(Clone, Debug)]
pub struct PatchDitClassifier {
    net: PatchDit,
    device: Device,
    classes: usize,
    pixels: usize,
    steps: usize,
}

impl PatchDitClassifier {
    /// Wraps a network of `config`, which must be a classifier.
    pub fn new(config: &PatchDitConfig, net: PatchDit, device: Device) -> Result<Self, LoadError> {
        if config.role != Role::Classifier {
            return Err(LoadError::Role {
                found: "noise predictor",
                wanted: "noisy classifier",
            });
        }
        Ok(Self {
            net,
            device,
            classes: config.classes,
            pixels: config.pixels(),
            steps: config.diffusion_steps,
        })
    }

    /// The network.
    pub fn net(&self) -> &PatchDit {
        &self.net
    }

    /// Classes it tells apart.
    pub fn class_count(&self) -> usize {
        self.classes
    }

    /// p_φ(· | x_t) of each image: `[B · classes]` probabilities.
    pub async fn probabilities(&self, x: &[f32], t: usize) -> Result<Vec<f32>, ModelError> {
        let b = x.len() / self.pixels.max(1);
        check_images(x, b, self.pixels, t, self.steps)?;
        let images =
            Tensor::<2>::from_data(TensorData::new(x.to_vec(), [b, self.pixels]), &self.device);
        let logits = self.net.forward(images, &vec![t as f32; b], None);
        super::read_finite(burn::tensor::activation::softmax(logits, 1), &self.device).await
    }
}

impl NoisyClassifier for PatchDitClassifier {
    fn classes(&self) -> usize {
        self.class_count()
    }

    async fn log_prob_gradient(
        &mut self,
        x: &[f32],
        t: usize,
        classes: &[usize],
    ) -> Result<(Vec<f32>, Vec<f64>), ModelError> {
        let b = check_images(x, classes.len(), self.pixels, t, self.steps)?;
        if let Some(y) = classes.iter().find(|&&y| y >= self.classes) {
            return Err(ModelError::Unsupported(format!(
                "class {y} is outside the classifier's {} classes",
                self.classes
            )));
        }
        let tape = self.device.clone().autodiff();
        let images = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [b, self.pixels]), &tape)
            .require_grad();
        let logits = self.net.forward(images.clone(), &vec![t as f32; b], None);
        super::class_log_prob_gradient(images, logits, classes, &self.device).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn config(role: Role) -> PatchDitConfig {
        PatchDitConfig {
            cond_dim: 8,
            diffusion_steps: 100,
            ..PatchDitConfig::digits(role, 16, 2, 2)
        }
    }

    #[test]
    fn both_roles_load_and_give_outputs_of_their_shape_that_depend_on_every_input() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        for role in [Role::Denoiser, Role::Classifier] {
            let c = config(role);
            let net = load_patch_dit(&c, &random_patch_dit(&c, 3).unwrap(), &device).unwrap();
            let x: Vec<f32> = (0..128)
                .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let run = |x: &[f32], t: f32, y: i64| {
                let x = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [2, 64]), &device);
                let y = Tensor::<1, Int>::from_data(TensorData::new(vec![y, y], [2]), &device);
                net.forward(x, &[t, t], c.conditional().then_some(y))
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            };
            let out = run(&x, 10.0, 3);
            assert_eq!(out.len(), 2 * if role == Role::Denoiser { 64 } else { 10 });
            assert_ne!(out, run(&x, 60.0, 3), "{role:?}: time ignored");
            let mut moved = x.clone();
            moved[5] += 0.5;
            assert_ne!(out, run(&moved, 10.0, 3), "{role:?}: pixels ignored");
            if role == Role::Denoiser {
                assert_ne!(out, run(&x, 10.0, 7), "class ignored");
                // The null class is a row of its own.
                assert_ne!(out, run(&x, 10.0, 10));
            }
        }
    }

    #[test]
    fn an_untrained_denoiser_predicts_zero_noise_and_headers_are_checked_both_ways() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let c = config(Role::Denoiser);
        let net = load_patch_dit(&c, &initial_patch_dit(&c, 1).unwrap(), &device).unwrap();
        let x = Tensor::<2>::ones([1, 64], &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64], [1]), &device);
        let out = net
            .forward(x, &[5.0], Some(y))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(
            out.iter().all(|&v| v == 0.0),
            "adaLN-Zero: the head starts at zero"
        );
        // A config with another depth, or with the classifier's head: refused before building.
        let weights = initial_patch_dit(&c, 1).unwrap();
        let deeper = PatchDitConfig {
            n_blocks: 3,
            ..c.clone()
        };
        assert!(matches!(
            load_patch_dit(&deeper, &weights, &device),
            Err(LoadError::MissingKey { .. })
        ));
        let shallower = PatchDitConfig {
            n_blocks: 1,
            ..c.clone()
        };
        assert!(matches!(
            load_patch_dit(&shallower, &weights, &device),
            Err(LoadError::Unexpected { .. })
        ));
        let classifier = PatchDitConfig {
            role: Role::Classifier,
            ..c
        };
        assert!(load_patch_dit(&classifier, &weights, &device).is_err());
    }

    #[test]
    fn the_classifier_gradient_is_the_derivative_of_log_p() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let c = config(Role::Classifier);
        let net = load_patch_dit(&c, &random_patch_dit(&c, 5).unwrap(), &device).unwrap();
        let mut classifier = PatchDitClassifier::new(&c, net, device).unwrap();
        let x: Vec<f32> = (0..128)
            .map(|i| ((i * 29) % 13) as f32 / 6.0 - 1.0)
            .collect();
        let (t, labels) = (30, [4, 8]);
        let (grad, p) = pollster::block_on(classifier.log_prob_gradient(&x, t, &labels)).unwrap();
        let probs = pollster::block_on(classifier.probabilities(&x, t)).unwrap();
        for (i, &y) in labels.iter().enumerate() {
            assert!((p[i] - f64::from(probs[i * 10 + y])).abs() < 1e-5);
        }
        // Central differences of log p(y | x) in a few pixels of each image.
        let log_p = |x: &[f32], image: usize| {
            let probs = pollster::block_on(classifier.probabilities(x, t)).unwrap();
            f64::from(probs[image * 10 + labels[image]]).ln()
        };
        let h = 1e-2;
        for pixel in [0, 9, 64 + 17, 64 + 63] {
            let image = pixel / 64;
            let (mut up, mut down) = (x.clone(), x.clone());
            up[pixel] += h;
            down[pixel] -= h;
            let numeric = (log_p(&up, image) - log_p(&down, image)) / (2.0 * f64::from(h));
            let exact = f64::from(grad[pixel]);
            assert!(
                (numeric - exact).abs() < 1e-2 * exact.abs().max(0.1),
                "pixel {pixel}: autodiff {exact}, differences {numeric}"
            );
        }
        // Each image's gradient is its own: moving the second image leaves the first's alone.
        let mut moved = x.clone();
        moved[64 + 5] += 0.5;
        let (again, _) =
            pollster::block_on(classifier.log_prob_gradient(&moved, t, &labels)).unwrap();
        assert_eq!(&grad[..64], &again[..64]);
        assert_ne!(&grad[64..], &again[64..]);
    }

    #[test]
    fn the_noise_predictor_refuses_what_its_network_cannot_read() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let c = config(Role::Denoiser);
        let net = load_patch_dit(&c, &random_patch_dit(&c, 5).unwrap(), &device).unwrap();
        let mut noise = PatchDitNoise::new(&c, net.clone(), device.clone()).unwrap();
        let x = vec![0.0; 64];
        let ok = pollster::block_on(noise.predict_noise(&x, 3, &[Some(2)]));
        assert_eq!(ok.unwrap().len(), 64);
        for (x, t, class) in [
            (vec![0.0; 63], 3, Some(2)),
            (vec![0.0; 64], 100, Some(2)),
            (vec![0.0; 64], 3, Some(10)),
        ] {
            let err = pollster::block_on(noise.predict_noise(&x, t, &[class])).unwrap_err();
            assert!(matches!(err, ModelError::Unsupported(_)), "{err}");
        }
        assert!(matches!(
            PatchDitClassifier::new(&c, net, device),
            Err(LoadError::Role { .. })
        ));
    }

    #[test]
    fn patches_are_square_blocks_and_unpatchify_undoes_patchify() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [1, 64]), &device);
        let patches = patchify(t, 8, 2);
        assert_eq!(patches.dims(), [1, 16, 4]);
        let values = patches.clone().into_data().try_to_vec::<f32>().unwrap();
        // Patch 0: rows 0–1, columns 0–1; patch 1: columns 2–3; patch 4: rows 2–3.
        assert_eq!(&values[..4], &[0.0, 1.0, 8.0, 9.0]);
        assert_eq!(&values[4..8], &[2.0, 3.0, 10.0, 11.0]);
        assert_eq!(&values[16..20], &[16.0, 17.0, 24.0, 25.0]);
        let back = unpatchify(patches, 8, 2)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(back, x);
    }

    #[test]
    fn configs_are_bounded_and_consistent() {
        let ok = serde_json::to_vec(&config(Role::Denoiser)).unwrap();
        assert!(PatchDitConfig::from_json(&ok).is_ok());
        for (field, value) in [
            ("patch_size", 3_u64),
            ("n_heads", 3),
            ("n_blocks", 1 << 40),
            ("image_size", 0),
            ("diffusion_steps", 1 << 30),
        ] {
            let mut v = serde_json::to_value(config(Role::Denoiser)).unwrap();
            v[field] = value.into();
            let err = PatchDitConfig::from_json(v.to_string().as_bytes()).unwrap_err();
            assert!(err.to_string().contains(field), "{field}: {err}");
        }
    }
}
