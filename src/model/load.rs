//! Reads a DiT from `model.safetensors` bytes (disk or `fetch`, it makes no difference).
//!
//! Checkpoint keys, as written by `kuleshov-group/bd3lms` and `mdlm` (PyTorch `nn.Linear` weights are
//! `[out, in]` and are transposed to burn's `[in, out]`):
//!
//! | key (after the `backbone.` prefix)            | shape          | field                                 |
//! |-----------------------------------------------|----------------|---------------------------------------|
//! | `vocab_embed.embedding`                        | `[V, d]`       | [`Dit::vocab_embed`]                  |
//! | `sigma_map.mlp.0.{weight,bias}`                | `[c, 256]`,`[c]` | [`TimestepEmbedder::mlp0`]         |
//! | `sigma_map.mlp.2.{weight,bias}`                | `[c, c]`,`[c]` | [`TimestepEmbedder::mlp2`]            |
//! | `blocks.{i}.norm1.weight`, `norm2.weight`      | `[d]`          | [`DitBlock::norm1`], `norm2`          |
//! | `blocks.{i}.attn_qkv.weight`                   | `[3d, d]`      | [`DitBlock::attn_qkv`]                |
//! | `blocks.{i}.attn_out.weight`                   | `[d, d]`       | [`DitBlock::attn_out`]                |
//! | `blocks.{i}.mlp.0.{weight,bias}`               | `[4d, d]`,`[4d]` | [`DitBlock::mlp0`]                  |
//! | `blocks.{i}.mlp.2.{weight,bias}`               | `[d, 4d]`,`[d]` | [`DitBlock::mlp2`]                   |
//! | `blocks.{i}.adaLN_modulation.{weight,bias}`    | `[6d, c]`,`[6d]` | [`DitBlock::adaln_modulation`]      |
//! | `output_layer.norm_final.weight`               | `[d]`          | [`FinalLayer::norm_final`]            |
//! | `output_layer.adaLN_modulation.{weight,bias}`  | `[2d, c]`,`[2d]` | [`FinalLayer::adaln_modulation`]    |
//! | `output_layer.linear.{weight,bias}`            | `[V, d]`,`[V]` | [`FinalLayer::linear`] (tied to the embedding when absent) |
//!
//! Tensors may be stored as f32, f16 or bf16; they are widened to f32. [`check_header`] compares
//! the file's header with the config, both ways, before a single tensor is read or built: a
//! config whose sizes the weights do not back is refused at the cost of parsing the header.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use std::collections::HashMap;
use std::ops::Range;

use safetensors::tensor::{Metadata, TensorView};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use thiserror::Error;

use super::dit::{Dit, DitBlock, FinalLayer};
use super::layers::{FREQUENCY_EMBEDDING_SIZE, LayerNorm, TimestepEmbedder};
use super::transformer::Stage;
use crate::config::ModelConfig;

/// What can go wrong reading weights.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The bytes are not a safetensors file (truncated, bad header, …).
    #[error(
        "model.safetensors is not a valid safetensors file ({0}); re-download it or re-export the checkpoint"
    )]
    Format(#[from] safetensors::SafeTensorError),
    /// A tensor the architecture needs is absent.
    #[error(
        "model.safetensors has no tensor `{key}`; is this a checkpoint of the architecture config.json names?"
    )]
    MissingKey {
        /// The full key looked for.
        key: String,
    },
    /// A tensor's shape disagrees with config.json.
    #[error(
        "tensor `{key}` has shape {found:?} but config.json implies {expected:?}; config.json and model.safetensors do not belong together"
    )]
    Shape {
        /// The key.
        key: String,
        /// Shape from the config.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor the config does not describe (more blocks than `n_blocks`, adaLN weights in a
    /// model without adaLN, …).
    #[error(
        "model.safetensors holds `{key}`, which config.json does not describe{why}; config.json and model.safetensors do not belong together"
    )]
    Unexpected {
        /// The key in the file.
        key: String,
        /// What in config.json disagrees, when that can be said (`" (n_blocks = 4)"`).
        why: String,
    },
    /// Two shards of one checkpoint hold the same tensor.
    #[error(
        "tensor `{key}` is in shard {first} and again in shard {second} (counted from 1, in name order); the shards overlap: re-download the checkpoint or re-shard it"
    )]
    Duplicate {
        /// The key.
        key: String,
        /// The first shard holding it, counted from 1.
        first: usize,
        /// The second.
        second: usize,
    },
    /// A matrix that cannot be quantized (`unmask quantize`).
    #[error(transparent)]
    Quant(#[from] super::quant::QuantError),
    /// A network of the other role: a noisy classifier where a noise predictor is needed, or
    /// the reverse.
    #[error("this folder holds a {found}, but a {wanted} is needed here")]
    Role {
        /// What the folder's config.json says it is.
        found: &'static str,
        /// What was asked for.
        wanted: &'static str,
    },
    /// A control classifier whose sizes are not its denoiser's.
    #[error(
        "the control classifier's {field} is {classifier} but the denoiser's is {denoiser}; train the classifier on this denoiser's word vectors (unmask train --objective latent-classifier --denoiser DIR)"
    )]
    Pair {
        /// The config field that differs.
        field: &'static str,
        /// The classifier's value.
        classifier: String,
        /// The denoiser's.
        denoiser: String,
    },
    /// A dtype we do not read.
    #[error("tensor `{key}` is stored as {dtype}; Unmask reads it as {expected}")]
    Dtype {
        /// The key.
        key: String,
        /// Its dtype.
        dtype: String,
        /// What it may be.
        expected: &'static str,
    },
}

/// The dtypes a float tensor may be stored as.
const FLOAT_DTYPES: &str = "f32, f16 or bf16";

/// Finds tensors by their reference name, under whatever prefix the file uses.
pub(crate) struct Weights<'a> {
    bytes: &'a dyn TensorBytes,
    pub(crate) prefix: String,
    device: &'a Device,
}

/// The prefix of a DiT checkpoint's keys: whatever precedes `vocab_embed.embedding`
/// (`backbone.` in the published ones).
fn dit_prefix(names: &dyn TensorSource) -> Result<String, LoadError> {
    const ANCHOR: &str = "vocab_embed.embedding";
    names
        .keys()
        .into_iter()
        .filter_map(|n| n.strip_suffix(ANCHOR))
        .min_by_key(|p| p.len())
        .map(str::to_owned)
        .ok_or_else(|| LoadError::MissingKey {
            key: format!("backbone.{ANCHOR}"),
        })
}

impl<'a> Weights<'a> {
    /// The tensors of `bytes` whose keys start with `prefix`.
    pub(crate) fn new(bytes: &'a dyn TensorBytes, prefix: &str, device: &'a Device) -> Self {
        Self {
            bytes,
            prefix: prefix.to_owned(),
            device,
        }
    }

    /// The tensor `name` as f32 values, checked against `expected`.
    pub(crate) fn read(&self, name: &str, expected: &[usize]) -> Result<Vec<f32>, LoadError> {
        let key = format!("{}{name}", self.prefix);
        let view = self
            .bytes
            .view(&key)
            .ok_or_else(|| LoadError::MissingKey { key: key.clone() })?;
        if view.shape() != expected {
            return Err(LoadError::Shape {
                key,
                expected: expected.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        decode(&key, &view)
    }

    pub(crate) fn tensor1(&self, name: &str, n: usize) -> Result<Tensor<1>, LoadError> {
        Ok(Tensor::from_data(
            TensorData::new(self.read(name, &[n])?, [n]),
            self.device,
        ))
    }

    pub(crate) fn tensor2(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Tensor<2>, LoadError> {
        Ok(Tensor::from_data(
            TensorData::new(self.read(name, &[rows, cols])?, [rows, cols]),
            self.device,
        ))
    }

    /// A PyTorch `nn.Linear(d_in, d_out)` stored as `{name}.weight` `[d_out, d_in]` (+ `{name}.bias`).
    pub(crate) fn linear(
        &self,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear, LoadError> {
        let weight = self.read(&format!("{name}.weight"), &[d_out, d_in])?;
        self.linear_from(weight, name, d_in, d_out, bias)
    }

    fn linear_from(
        &self,
        weight: Vec<f32>,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear, LoadError> {
        let weight = torch_weight(weight, d_in, d_out, self.device);
        let bias = if bias {
            Some(Param::from_tensor(
                self.tensor1(&format!("{name}.bias"), d_out)?,
            ))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    pub(crate) fn norm(&self, name: &str, d: usize) -> Result<LayerNorm, LoadError> {
        Ok(LayerNorm {
            weight: Param::from_tensor(self.tensor1(&format!("{name}.weight"), d)?),
        })
    }
}

/// A PyTorch `nn.Linear(d_in, d_out)` weight, stored `[d_out, d_in]`, as burn's `[d_in, d_out]`.
pub(crate) fn torch_weight(
    weight: Vec<f32>,
    d_in: usize,
    d_out: usize,
    device: &Device,
) -> Tensor<2> {
    let mut transposed = vec![0.0f32; weight.len()];
    for o in 0..d_out {
        for i in 0..d_in {
            transposed[i * d_out + o] = weight[o * d_in + i];
        }
    }
    Tensor::from_data(TensorData::new(transposed, [d_in, d_out]), device)
}

/// Where a checked header's tensors are looked up: one safetensors file, a checkpoint's shards
/// ([`super::transformer::Shards`]), or a [`Header`] read before its file's data.
pub trait TensorSource {
    /// The dtype and shape of the tensor stored under `key`.
    fn info(&self, key: &str) -> Option<(Dtype, Vec<usize>)>;
    /// Every key, in the order unexpected ones are reported.
    fn keys(&self) -> Vec<&str>;
}

/// Where tensors' bytes are read: a whole file or checkpoint in memory, or the [`Pieces`] of one
/// read a few tensors at a time.
pub trait TensorBytes {
    /// The tensor stored under `key`, when these bytes hold it.
    fn view(&self, key: &str) -> Option<TensorView<'_>>;
}

impl TensorBytes for SafeTensors<'_> {
    fn view(&self, key: &str) -> Option<TensorView<'_>> {
        self.tensor(key).ok()
    }
}

impl TensorSource for SafeTensors<'_> {
    fn info(&self, key: &str) -> Option<(Dtype, Vec<usize>)> {
        let view = self.tensor(key).ok()?;
        Some((view.dtype(), view.shape().to_vec()))
    }

    fn keys(&self) -> Vec<&str> {
        self.names()
    }
}

/// The longest header a safetensors file may have (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// Bytes of the little-endian length before a safetensors header.
pub const HEADER_LENGTH_BYTES: u64 = 8;

/// A safetensors file's header read on its own, before any of its data: each tensor's dtype,
/// shape and byte range in the file. A loader that cannot hold the whole file (the page, in
/// wasm32's 4 GiB, with a checkpoint of a gigabyte) reads the header's bytes first, checks it
/// against the config, and then fetches the tensors a few at a time as [`Pieces`]
/// ([`super::transformer::Assembly`]).
#[derive(Debug, Clone)]
pub struct Header {
    metadata: Metadata,
    /// Every tensor's key, sorted (so that the first unexpected key reported is the same on
    /// every run).
    names: Vec<String>,
    /// Where the data starts in the file: after the length and the header.
    data_start: u64,
}

impl Header {
    /// The header's length in bytes, from the file's first [`HEADER_LENGTH_BYTES`] bytes, checked
    /// against the file's `size`: what to read next, at [`HEADER_LENGTH_BYTES`].
    pub fn length(first: &[u8], size: u64) -> Result<u64, LoadError> {
        let Some(&bytes) = first.first_chunk::<8>() else {
            return Err(SafeTensorError::HeaderTooSmall.into());
        };
        let n = u64::from_le_bytes(bytes);
        if n > MAX_HEADER_BYTES {
            return Err(SafeTensorError::HeaderTooLarge.into());
        }
        if n + HEADER_LENGTH_BYTES > size {
            return Err(SafeTensorError::InvalidHeaderLength.into());
        }
        Ok(n)
    }

    /// Parses the header's bytes (the [`Header::length`] bytes after the length) of a file of
    /// `size` bytes. The tensors must fill the data exactly, as in a whole safetensors file: a
    /// truncated download is refused here, before a tensor is read.
    pub fn parse(header: &[u8], size: u64) -> Result<Self, LoadError> {
        let text = std::str::from_utf8(header).map_err(SafeTensorError::InvalidHeader)?;
        let metadata: Metadata =
            serde_json::from_str(text).map_err(SafeTensorError::InvalidHeaderDeserialization)?;
        let data_start = HEADER_LENGTH_BYTES + header.len() as u64;
        if data_start + metadata.data_len() as u64 != size {
            return Err(SafeTensorError::MetadataIncompleteBuffer.into());
        }
        let mut names = metadata.offset_keys();
        names.sort_unstable();
        Ok(Self {
            metadata,
            names,
            data_start,
        })
    }

    /// Where the bytes of the tensor stored under `key` lie in the file.
    pub fn range(&self, key: &str) -> Option<Range<u64>> {
        let (start, end) = self.metadata.info(key)?.data_offsets;
        Some(self.data_start + start as u64..self.data_start + end as u64)
    }

    /// The header of a whole safetensors file in memory.
    pub fn of_file(bytes: &[u8]) -> Result<Self, LoadError> {
        let size = bytes.len() as u64;
        let length = Self::length(bytes, size)?;
        // `length` fits in `size`, itself a slice's length.
        let end = (HEADER_LENGTH_BYTES + length) as usize;
        Self::parse(&bytes[HEADER_LENGTH_BYTES as usize..end], size)
    }
}

impl TensorSource for Header {
    fn info(&self, key: &str) -> Option<(Dtype, Vec<usize>)> {
        let info = self.metadata.info(key)?;
        Some((info.dtype, info.shape.clone()))
    }

    fn keys(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }
}

/// A checkpoint's [`Header`]s, one per file: one `model.safetensors`, or the shards a
/// `model.safetensors.index.json` names, in name order. A key in two files is an error, as in
/// [`super::transformer::Shards`], which holds whole files where this holds only their headers.
#[derive(Debug, Clone)]
pub struct Headers {
    headers: Vec<Header>,
    /// Which file holds each key.
    file_of: HashMap<String, usize>,
    /// Every key, sorted.
    names: Vec<String>,
}

/// Which of a checkpoint's files holds each key, from each file's keys in the files' order; a key
/// in two files is an error naming both (counted from 1).
pub(crate) fn file_of_keys<'k, F, K>(files: F) -> Result<HashMap<String, usize>, LoadError>
where
    F: IntoIterator<Item = K>,
    K: IntoIterator<Item = &'k str>,
{
    let mut file_of = HashMap::new();
    for (i, keys) in files.into_iter().enumerate() {
        for key in keys {
            if let Some(first) = file_of.insert(key.to_owned(), i) {
                return Err(LoadError::Duplicate {
                    key: key.to_owned(),
                    first: first + 1,
                    second: i + 1,
                });
            }
        }
    }
    Ok(file_of)
}

/// The bytes to read for some tensors of a [`Headers`]: file `file`'s bytes `range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Which file, by its place in the [`Headers`].
    pub file: usize,
    /// The bytes, neighbouring tensors merged.
    pub range: Range<u64>,
}

impl Headers {
    /// The files' headers, in the files' order; a key in two of them is an error.
    pub fn new(headers: Vec<Header>) -> Result<Self, LoadError> {
        let file_of = file_of_keys(headers.iter().map(|h| h.names.iter().map(String::as_str)))?;
        let mut names: Vec<String> = file_of.keys().cloned().collect();
        names.sort_unstable();
        Ok(Self {
            headers,
            file_of,
            names,
        })
    }

    /// The header of the file holding `key`, with the file's place.
    fn locate(&self, key: &str) -> Option<(usize, &Header)> {
        let file = *self.file_of.get(key)?;
        Some((file, &self.headers[file]))
    }

    /// What to read for the tensors `keys` (those the files hold): per file, the byte ranges in
    /// file order, neighbours merged: a request (or a cache read) each.
    pub fn runs<S: AsRef<str>>(&self, keys: &[S]) -> Vec<Run> {
        let mut ranges: Vec<Run> = keys
            .iter()
            .filter_map(|k| {
                let (file, header) = self.locate(k.as_ref())?;
                Some(Run {
                    file,
                    range: header.range(k.as_ref())?,
                })
            })
            .collect();
        ranges.sort_by_key(|r| (r.file, r.range.start));
        let mut runs: Vec<Run> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match runs.last_mut() {
                Some(last) if last.file == r.file && last.range.end == r.range.start => {
                    last.range.end = r.range.end
                }
                _ => runs.push(r),
            }
        }
        runs
    }
}

impl TensorSource for Headers {
    fn info(&self, key: &str) -> Option<(Dtype, Vec<usize>)> {
        self.locate(key)?.1.info(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }
}

/// Some of a checkpoint's tensors, read as [`Run`]s of bytes ([`Headers::runs`]).
pub struct Pieces<'h> {
    headers: &'h Headers,
    runs: Vec<(Run, Vec<u8>)>,
}

impl<'h> Pieces<'h> {
    /// The bytes read for some of `headers`' tensors, each with the run it was read for.
    pub fn new(headers: &'h Headers, runs: Vec<(Run, Vec<u8>)>) -> Self {
        Self { headers, runs }
    }

    /// Bytes held.
    pub fn len(&self) -> u64 {
        self.runs.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TensorBytes for Pieces<'_> {
    fn view(&self, key: &str) -> Option<TensorView<'_>> {
        let (file, header) = self.headers.locate(key)?;
        let info = header.metadata.info(key)?;
        let range = header.range(key)?;
        let (run, bytes) = self.runs.iter().find(|(run, bytes)| {
            run.file == file
                && run.range.start <= range.start
                && range.end <= run.range.start + bytes.len() as u64
        })?;
        let from = usize::try_from(range.start - run.range.start).ok()?;
        let to = usize::try_from(range.end - run.range.start).ok()?;
        TensorView::new(info.dtype, info.shape.clone(), &bytes[from..to]).ok()
    }
}

/// The values of a stored tensor (`key` names it in errors) as f32: f32, f16 and bf16 are read.
pub(crate) fn decode(
    key: &str,
    view: &safetensors::tensor::TensorView<'_>,
) -> Result<Vec<f32>, LoadError> {
    float_values(view.data(), view.dtype()).ok_or_else(|| LoadError::Dtype {
        key: key.to_owned(),
        dtype: format!("{:?}", view.dtype()),
        expected: FLOAT_DTYPES,
    })
}

/// Little-endian `bytes` of `dtype` as f32, when it is a float dtype Unmask reads (f32, f16,
/// bf16).
pub(crate) fn float_values(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

fn has(file: &dyn TensorSource, prefix: &str, name: &str) -> bool {
    file.info(&format!("{prefix}{name}")).is_some()
}

/// Tensors a checkpoint may hold beside its weights: the reference's persistent buffers
/// (`Rotary` registers `inv_freq`), which Unmask recomputes. Their shapes are checked; their
/// values are not read.
fn buffer_shape(name: &str, config: &ModelConfig) -> Option<Vec<usize>> {
    (name == "rotary_emb.inv_freq").then(|| vec![config.head_dim() / 2])
}

/// Checks a checkpoint's header against `config` both ways, before anything is read or built:
/// every tensor the config implies is present with its shape and a dtype Unmask reads (the output
/// head may be absent: tied to the embedding), and every tensor under the checkpoint's prefix is
/// one the config implies. `prefix` is the file's (`backbone.` in the published ones).
///
/// The config is validated first ([`ModelConfig::validate`] bounds every size), so the expected
/// layout is small whatever the file says, and the header itself is bounded by the file.
pub fn check_header(
    config: &ModelConfig,
    file: &dyn TensorSource,
    prefix: &str,
) -> Result<(), LoadError> {
    let tied = !has(file, prefix, HEAD_WEIGHT);
    let layout: Vec<TensorSlot> = checkpoint_layout(config)
        .into_iter()
        .filter(|s| !(tied && s.name == HEAD_WEIGHT))
        .collect();
    check_layout(
        &layout,
        file,
        prefix,
        |name| buffer_shape(name, config),
        |name| {
            if name.starts_with("blocks.") {
                format!(" (n_blocks = {})", config.n_blocks)
            } else if name.contains("adaLN_modulation") || name.starts_with("sigma_map.") {
                format!(" (adaln = {})", config.adaln)
            } else {
                String::new()
            }
        },
    )
}

/// Checks a checkpoint's header against the `layout` a config implies, both ways: every slot is
/// present with its shape and a readable dtype, and every tensor under `prefix` is a slot or a
/// buffer (`buffer` gives its expected shape); `why` says, for a tensor no slot describes, which
/// config field disagrees (`" (n_blocks = 4)"`).
pub(crate) fn check_layout(
    layout: &[TensorSlot],
    file: &dyn TensorSource,
    prefix: &str,
    buffer: impl Fn(&str) -> Option<Vec<usize>>,
    why: impl Fn(&str) -> String,
) -> Result<(), LoadError> {
    for slot in layout {
        let key = format!("{prefix}{}", slot.name);
        let (dtype, shape) = file
            .info(&key)
            .ok_or_else(|| LoadError::MissingKey { key: key.clone() })?;
        if shape != slot.shape {
            return Err(LoadError::Shape {
                key,
                expected: slot.shape.clone(),
                found: shape,
            });
        }
        let (readable, expected) = match slot.role {
            TensorRole::Quantized(QuantPart::Values(format)) => (
                dtype == format.dtype(),
                match format {
                    super::quant::QuantFormat::Q8 => "I8 (q8 values)",
                    super::quant::QuantFormat::Q4 => "U8 (q4 values, two to a byte)",
                },
            ),
            TensorRole::Quantized(QuantPart::Scales) => (dtype == Dtype::F16, "F16 (block scales)"),
            _ => (
                matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16),
                FLOAT_DTYPES,
            ),
        };
        if !readable {
            return Err(LoadError::Dtype {
                key,
                expected,
                dtype: format!("{:?}", dtype),
            });
        }
    }
    let expected: std::collections::HashSet<&str> =
        layout.iter().map(|s| s.name.as_str()).collect();
    for key in file.keys() {
        let Some(name) = key.strip_prefix(prefix) else {
            continue;
        };
        if expected.contains(name) {
            continue;
        }
        if let Some(shape) = buffer(name) {
            let found = file.info(key).map(|(_, s)| s).unwrap_or_default();
            if found != shape {
                return Err(LoadError::Shape {
                    key: key.to_string(),
                    expected: shape,
                    found,
                });
            }
            continue;
        }
        return Err(LoadError::Unexpected {
            key: key.to_string(),
            why: why(name),
        });
    }
    Ok(())
}

/// Builds the DiT described by `config` from safetensors bytes, on `device`, after
/// [`check_header`] has found every tensor where the config puts it.
pub fn load_dit(config: &ModelConfig, bytes: &[u8], device: &Device) -> Result<Dit, LoadError> {
    let file = SafeTensors::deserialize(bytes)?;
    build_every_stage(DitAssembly::new(config, &file, device)?, |a| a.build(&file))
}

/// Runs `build` on `assembly` stage after stage until the network is done: the loader of a
/// checkpoint held whole, whose every stage reads from the same bytes.
pub(crate) fn build_every_stage<A, M>(
    mut assembly: A,
    build: impl Fn(A) -> Result<Assembled<A, M>, LoadError>,
) -> Result<M, LoadError> {
    loop {
        match build(assembly)? {
            Assembled::More(next) => assembly = next,
            Assembled::Done(network) => return Ok(network),
        }
    }
}

/// What building a network's next stage leaves: more to build, or the network.
pub enum Assembled<A, M> {
    /// The next stage is the assembly's.
    More(A),
    /// Every stage is built.
    Done(M),
}

/// A DiT being built a [`Stage`] at a time, each from its own tensors (the page reads a large
/// checkpoint so, as it reads a transformer's: [`super::transformer::Assembly`]): the embedding
/// and the σ map, each block, then the output layer (with the embedding again when the head is
/// tied to it).
pub struct DitAssembly {
    config: ModelConfig,
    device: Device,
    prefix: String,
    /// Whether the checkpoint has no head of its own.
    tied: bool,
    stage: Stage,
    vocab_embed: Option<Tensor<2>>,
    sigma_map: Option<TimestepEmbedder>,
    blocks: Vec<DitBlock>,
}

impl DitAssembly {
    /// Starts building `config`'s DiT on `device` after checking the checkpoint's `header`
    /// against it both ways ([`check_header`]).
    pub fn new(
        config: &ModelConfig,
        header: &dyn TensorSource,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let prefix = dit_prefix(header)?;
        check_header(config, header, &prefix)?;
        Ok(Self {
            config: config.clone(),
            device: device.clone(),
            tied: !has(header, &prefix, HEAD_WEIGHT),
            prefix,
            stage: Stage::Embedding,
            vocab_embed: None,
            sigma_map: None,
            blocks: Vec::with_capacity(config.n_blocks),
        })
    }

    /// The keys to fetch for the next stage.
    pub fn keys(&self) -> Vec<String> {
        let block = match self.stage {
            Stage::Block(i) => format!("blocks.{i}."),
            _ => String::new(),
        };
        checkpoint_layout(&self.config)
            .into_iter()
            .map(|slot| slot.name)
            .filter(|name| match self.stage {
                Stage::Embedding => {
                    name.starts_with("vocab_embed.") || name.starts_with("sigma_map.")
                }
                Stage::Block(_) => name.starts_with(&block),
                Stage::Top => {
                    (name.starts_with("output_layer.") && !(self.tied && name == HEAD_WEIGHT))
                        || (self.tied && name == EMBEDDING_WEIGHT)
                }
            })
            .map(|name| format!("{}{name}", self.prefix))
            .collect()
    }

    /// Builds the next stage from `bytes` (which hold at least its [`DitAssembly::keys`]).
    pub fn build(mut self, bytes: &dyn TensorBytes) -> Result<Assembled<Self, Dit>, LoadError> {
        let w = Weights::new(bytes, &self.prefix, &self.device);
        let config = &self.config;
        let (d, c, v) = (config.hidden_dim, config.cond_dim, config.vocab_size);
        match self.stage {
            Stage::Embedding => {
                self.vocab_embed = Some(w.tensor2(EMBEDDING_WEIGHT, v, d)?);
                self.sigma_map = if config.adaln {
                    Some(TimestepEmbedder {
                        mlp0: w.linear("sigma_map.mlp.0", FREQUENCY_EMBEDDING_SIZE, c, true)?,
                        mlp2: w.linear("sigma_map.mlp.2", c, c, true)?,
                    })
                } else {
                    None
                };
            }
            Stage::Block(i) => {
                let p = format!("blocks.{i}");
                self.blocks.push(DitBlock {
                    norm1: w.norm(&format!("{p}.norm1"), d)?,
                    attn_qkv: w.linear(&format!("{p}.attn_qkv"), d, 3 * d, false)?,
                    attn_out: w.linear(&format!("{p}.attn_out"), d, d, false)?,
                    norm2: w.norm(&format!("{p}.norm2"), d)?,
                    mlp0: w.linear(&format!("{p}.mlp.0"), d, config.mlp_dim(), true)?,
                    mlp2: w.linear(&format!("{p}.mlp.2"), config.mlp_dim(), d, true)?,
                    adaln_modulation: if config.adaln {
                        Some(w.linear(&format!("{p}.adaLN_modulation"), c, 6 * d, true)?)
                    } else {
                        None
                    },
                    n_heads: config.n_heads,
                });
            }
            Stage::Top => {
                let head = "output_layer.linear";
                let linear = if self.tied {
                    // The embedding is already `[V, d]`, PyTorch's layout for `Linear(d, V)`.
                    w.linear_from(w.read(EMBEDDING_WEIGHT, &[v, d])?, head, d, v, true)?
                } else {
                    w.linear(head, d, v, true)?
                };
                let output_layer = FinalLayer {
                    norm_final: w.norm("output_layer.norm_final", d)?,
                    adaln_modulation: if config.adaln {
                        Some(w.linear("output_layer.adaLN_modulation", c, 2 * d, true)?)
                    } else {
                        None
                    },
                    linear,
                };
                // Built first of all: always there by now.
                let vocab_embed = self.vocab_embed.ok_or_else(|| LoadError::MissingKey {
                    key: format!("{}{EMBEDDING_WEIGHT}", self.prefix),
                })?;
                let dit = Dit {
                    vocab_embed: Param::from_tensor(vocab_embed),
                    sigma_map: self.sigma_map,
                    blocks: self.blocks,
                    output_layer,
                    time_conditioning: config.time_conditioning,
                    constant_cond: None,
                };
                return Ok(Assembled::Done(dit.freeze_conditioning()));
            }
        }
        self.stage = self.stage.next(config.n_blocks);
        Ok(Assembled::More(self))
    }
}

/// The token embedding's key (after the prefix).
const EMBEDDING_WEIGHT: &str = "vocab_embed.embedding";
/// The output head's weight, absent when tied to the embedding.
const HEAD_WEIGHT: &str = "output_layer.linear.weight";

/// Counts the parameters a validated config implies (the checkpoint's tensors, biases included),
/// in `u64`: `usize` is 32 bits in the browser, where an 8B model's count would wrap. The limits
/// [`ModelConfig::validate`] enforces keep every product here far inside `u64`.
pub fn parameter_count(config: &ModelConfig) -> u64 {
    let [d, c, v, m, n] = [
        config.hidden_dim,
        config.cond_dim,
        config.vocab_size,
        config.mlp_dim(),
        config.n_blocks,
    ]
    .map(|x| x as u64);
    let f = FREQUENCY_EMBEDDING_SIZE as u64;
    let adaln = config.adaln as u64;
    let sigma = adaln.saturating_mul(f * c + c + c * c + c);
    let block = (2 * d + 3 * d * d + d * d + (d * m + m) + (m * d + d))
        .saturating_add(adaln.saturating_mul(c * 6 * d + 6 * d));
    let out = d + adaln * (c * 2 * d + 2 * d) + (d * v + v);
    (v * d)
        .saturating_add(sigma)
        .saturating_add(n.saturating_mul(block))
        .saturating_add(out)
}

/// Elements of the largest tensor a config implies: the embedding or output layer (vocab ×
/// hidden) in every published shape. On a GPU it must fit one storage buffer, so the page checks
/// it against the adapter's limit before downloading the weights.
///
/// Counted in `u64` with saturation: `usize` is 32 bits in the browser, and the config is input.
pub fn largest_tensor_elements(config: &ModelConfig) -> u64 {
    let [d, c, v, ratio] = [
        config.hidden_dim,
        config.cond_dim,
        config.vocab_size,
        crate::config::MLP_RATIO,
    ]
    .map(|x| x as u64);
    let mul = |a: u64, b: u64| a.saturating_mul(b);
    let m = mul(ratio, d);
    [mul(v, d), mul(3, mul(d, d)), mul(d, m), mul(mul(c, 6), d)]
        .into_iter()
        .max()
        .unwrap_or(0)
}

/// What a checkpoint tensor is, which decides how it is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    /// The token embedding `[V, d]`.
    Embedding,
    /// A PyTorch `nn.Linear` weight `[out, in]`.
    Weight {
        /// Inputs of the layer.
        fan_in: usize,
    },
    /// A linear layer's bias `[out]`.
    Bias {
        /// Inputs of the layer.
        fan_in: usize,
    },
    /// A LayerNorm scale `[d]`.
    Norm,
    /// A stored part of a quantized matrix ([`super::quant`]); only the decoder transformers'
    /// stored layouts hold these, never a layout that is initialised or drawn at random.
    Quantized(QuantPart),
}

/// What a quantized matrix stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantPart {
    /// The integers (`qweight`).
    Values(super::quant::QuantFormat),
    /// The f16 block scales (`scales`).
    Scales,
}

/// One tensor of a checkpoint, as the reference names and shapes it.
#[derive(Clone, Debug)]
pub struct TensorSlot {
    /// Key without the `backbone.` prefix, e.g. `blocks.0.attn_qkv.weight`.
    pub name: String,
    /// Shape in PyTorch's layout.
    pub shape: Vec<usize>,
    /// What it is.
    pub role: TensorRole,
    /// Whether the reference starts it at zero: every adaLN modulation (so each block begins as
    /// the identity) and the output layer (so the first prediction is uniform).
    pub zero_init: bool,
}

/// The parameters of a layout: the sum of its tensors' element counts.
pub fn layout_parameters(slots: &[TensorSlot]) -> u64 {
    slots
        .iter()
        .map(|slot| slot.shape.iter().map(|&n| n as u64).product::<u64>())
        .sum()
}

impl TensorSlot {
    /// `[rows, cols]` when it is a matrix: the embedding or a linear layer's weight (what
    /// [`super::quant`] quantizes).
    pub fn matrix(&self) -> Option<(usize, usize)> {
        match (self.role, self.shape.as_slice()) {
            (TensorRole::Embedding | TensorRole::Weight { .. }, &[rows, cols]) => {
                Some((rows, cols))
            }
            _ => None,
        }
    }
}

/// Every tensor a checkpoint of `config` holds, in a fixed order (the table in the module docs).
pub fn checkpoint_layout(config: &ModelConfig) -> Vec<TensorSlot> {
    let (d, c, v, m) = (
        config.hidden_dim,
        config.cond_dim,
        config.vocab_size,
        config.mlp_dim(),
    );
    let mut slots = vec![TensorSlot {
        name: "vocab_embed.embedding".into(),
        shape: vec![v, d],
        role: TensorRole::Embedding,
        zero_init: false,
    }];
    let norm = |name: &str, slots: &mut Vec<TensorSlot>| {
        slots.push(TensorSlot {
            name: name.into(),
            shape: vec![d],
            role: TensorRole::Norm,
            zero_init: false,
        })
    };
    let linear = |name: &str,
                  d_in: usize,
                  d_out: usize,
                  bias: bool,
                  zero_init: bool,
                  slots: &mut Vec<TensorSlot>| {
        slots.push(TensorSlot {
            name: format!("{name}.weight"),
            shape: vec![d_out, d_in],
            role: TensorRole::Weight { fan_in: d_in },
            zero_init,
        });
        if bias {
            slots.push(TensorSlot {
                name: format!("{name}.bias"),
                shape: vec![d_out],
                role: TensorRole::Bias { fan_in: d_in },
                zero_init,
            });
        }
    };
    if config.adaln {
        linear(
            "sigma_map.mlp.0",
            FREQUENCY_EMBEDDING_SIZE,
            c,
            true,
            false,
            &mut slots,
        );
        linear("sigma_map.mlp.2", c, c, true, false, &mut slots);
    }
    for i in 0..config.n_blocks {
        let p = format!("blocks.{i}");
        norm(&format!("{p}.norm1.weight"), &mut slots);
        norm(&format!("{p}.norm2.weight"), &mut slots);
        linear(&format!("{p}.attn_qkv"), d, 3 * d, false, false, &mut slots);
        linear(&format!("{p}.attn_out"), d, d, false, false, &mut slots);
        linear(&format!("{p}.mlp.0"), d, m, true, false, &mut slots);
        linear(&format!("{p}.mlp.2"), m, d, true, false, &mut slots);
        if config.adaln {
            linear(
                &format!("{p}.adaLN_modulation"),
                c,
                6 * d,
                true,
                true,
                &mut slots,
            );
        }
    }
    norm("output_layer.norm_final.weight", &mut slots);
    if config.adaln {
        linear(
            "output_layer.adaLN_modulation",
            c,
            2 * d,
            true,
            true,
            &mut slots,
        );
    }
    linear("output_layer.linear", d, v, true, true, &mut slots);
    slots
}

/// Serialises named f32 tensors under the `backbone.` prefix, in `dtype` (F32, F16 or BF16).
pub fn write_safetensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    dtype: Dtype,
) -> Result<Vec<u8>, LoadError> {
    write_safetensors_under(tensors, DIT_PREFIX, dtype)
}

/// The prefix of the published DiT checkpoints' keys.
pub const DIT_PREFIX: &str = "backbone.";

/// Serialises named f32 tensors under `prefix`, in `dtype` (F32, F16 or BF16).
pub fn write_safetensors_under(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    prefix: &str,
    dtype: Dtype,
) -> Result<Vec<u8>, LoadError> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let bytes = match dtype {
                Dtype::F16 => values
                    .iter()
                    .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                    .collect(),
                Dtype::BF16 => values
                    .iter()
                    .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
                    .collect(),
                _ => values.iter().flat_map(|&x| x.to_le_bytes()).collect(),
            };
            (format!("{prefix}{name}"), shape.clone(), bytes)
        })
        .collect();
    let dtype = if matches!(dtype, Dtype::F16 | Dtype::BF16) {
        dtype
    } else {
        Dtype::F32
    };
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes)?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// A checkpoint with the reference's key names and random weights for `config`, as safetensors
/// bytes (benchmarks and tests). Every tensor, the zero-initialised ones included, is drawn
/// uniformly with the variance of N(0, 1/fan_in), so the outputs are varied from the start.
/// Deterministic in `seed`. A training run starts from [`initial_checkpoint`] instead.
pub fn random_checkpoint(config: &ModelConfig, seed: u64) -> Result<Vec<u8>, LoadError> {
    fill_checkpoint(config, seed, |slot, rng| {
        let scale = match slot.shape[..] {
            [_, fan_in] => 1.0 / (fan_in as f64).sqrt(),
            _ => RANDOM_VECTOR_SCALE,
        };
        // Uniform with the variance of N(0, scale²): width scale·√12 (drawn for the norms too).
        let u = (rng.uniform() - 0.5) * scale * 12f64.sqrt();
        if slot.role == TensorRole::Norm {
            1.0
        } else {
            u as f32
        }
    })
}

/// A checkpoint of `config` whose every value is `value(slot, rng)`, drawn slot by slot in
/// [`checkpoint_layout`]'s order from one generator seeded with `seed`.
fn fill_checkpoint(
    config: &ModelConfig,
    seed: u64,
    value: impl FnMut(&TensorSlot, &mut crate::rng::Rng) -> f32,
) -> Result<Vec<u8>, LoadError> {
    write_safetensors(
        &fill_layout(checkpoint_layout(config), seed, value),
        Dtype::F32,
    )
}

/// Every slot of `layout` filled with `value(slot, rng)`, slot by slot from one generator.
pub(crate) fn fill_layout(
    layout: Vec<TensorSlot>,
    seed: u64,
    mut value: impl FnMut(&TensorSlot, &mut crate::rng::Rng) -> f32,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = crate::rng::Rng::new(seed);
    layout
        .into_iter()
        .map(|slot| {
            let n: usize = slot.shape.iter().product();
            let values = (0..n).map(|_| value(&slot, &mut rng)).collect();
            (slot.name, slot.shape, values)
        })
        .collect()
}

/// Scale of the random vectors (biases) of [`random_checkpoint`].
const RANDOM_VECTOR_SCALE: f64 = 0.02;

/// The reference's initial weights for `config` (`DITBackbone`'s constructors in
/// `kuleshov-group/bd3lms` `models/dit.py`): linear weights and biases uniform in ±1/√fan_in
/// (PyTorch's `nn.Linear` default), the embedding likewise (`kaiming_uniform_(a=√5)`), LayerNorm
/// scales at one, and the adaLN modulations and the output layer at zero. Deterministic in `seed`.
pub fn initial_checkpoint(config: &ModelConfig, seed: u64) -> Result<Vec<u8>, LoadError> {
    fill_checkpoint(config, seed, initial_value)
}

/// [`initial_value`] with no slot at zero (the head and modulations drawn too): the random
/// checkpoints of tests, whose outputs vary with the input from the start.
pub(crate) fn random_value(slot: &TensorSlot, rng: &mut crate::rng::Rng) -> f32 {
    let slot = TensorSlot {
        zero_init: false,
        ..slot.clone()
    };
    initial_value(&slot, rng)
}

/// PyTorch's default initialisation of a slot, drawn from `rng` (see [`initial_checkpoint`]):
/// uniform in ±1/√fan_in, norms at one, zero-initialised slots at zero.
pub(crate) fn initial_value(slot: &TensorSlot, rng: &mut crate::rng::Rng) -> f32 {
    let bound = match slot.role {
        TensorRole::Embedding => 1.0 / (slot.shape[1] as f64).sqrt(),
        TensorRole::Weight { fan_in } | TensorRole::Bias { fan_in } => 1.0 / (fan_in as f64).sqrt(),
        TensorRole::Norm | TensorRole::Quantized(_) => 0.0,
    };
    match (slot.role, slot.zero_init) {
        (TensorRole::Norm, _) => 1.0,
        (_, true) => 0.0,
        _ => ((2.0 * rng.uniform() - 1.0) * bound) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_tensor_of_the_owt_checkpoints_is_the_embedding() {
        let config = ModelConfig::from_json(
            br#"{"model_type": "bd3lm", "vocab_size": 50258, "model_length": 1024,
                "hidden_dim": 768, "cond_dim": 128, "n_blocks": 12, "n_heads": 12,
                "block_size": 4}"#,
        )
        .unwrap();
        // 154 MB in f32: more than WebGPU's default 128 MiB storage-buffer binding.
        assert_eq!(largest_tensor_elements(&config), 50258 * 768_u64);
        // Absurd sizes saturate instead of wrapping (usize is 32 bits in the browser).
        let huge = ModelConfig {
            vocab_size: usize::MAX / 2,
            ..config
        };
        assert_eq!(largest_tensor_elements(&huge), u64::MAX);
    }
}
