//! The networks that predict tokens — the DiT of MDLM / BD3-LM ([`dit`], its pieces in
//! [`layers`], checkpoints in [`load`]) and the decoder transformer of LLaDA, Dream and the A2D
//! Qwen models ([`transformer`], their configs and names in [`qwen`] and [`llada`]) — and the
//! [`NetworkDenoiser`] that lets the samplers call either.

pub mod diffusion_lm;
pub mod dit;
pub mod gguf;
pub mod gguf_import;
pub mod layers;
pub mod llada;
pub mod load;
pub mod patch_dit;
pub mod presets;
pub mod quant;
pub mod qwen;
pub mod reduce;
#[cfg(not(target_family = "wasm"))]
pub mod save;
pub mod transformer;

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::{Device, Int, Tensor, TensorData};

pub use dit::{Dit, KvCache};
pub use load::{
    Assembled, DitAssembly, Header, Headers, LoadError, Pieces, Run, TensorBytes, TensorSource,
    checkpoint_layout, initial_checkpoint, largest_tensor_elements, load_dit, parameter_count,
    random_checkpoint,
};
pub use reduce::DeviceRows;
pub use transformer::{
    Architecture, Assembly, Stage, Transformer, TransformerConfig, load_transformer,
};

use crate::config::Attention;
pub use crate::network::ModelError;
use crate::network::{Denoiser, Logits, ModelSpec};

/// A network that maps token ids to raw logits, with a KV cache: what [`NetworkDenoiser`] needs.
pub trait Network: Clone {
    /// Raw logits `[B, L, V]` for `tokens` `[B, L]` at absolute positions `start..start + L`,
    /// under `attention`, noise level `sigma` per sequence, or per position (`B · L` values) for
    /// a network trained with per-token noise (ignored by networks without time conditioning).
    /// With a cache, `start` is its length and the first `store` rows join it.
    fn logits(
        &self,
        tokens: Tensor<2, Int>,
        sigma: &[f32],
        attention: Attention,
        start: usize,
        cache: Option<&mut KvCache>,
        store: usize,
    ) -> Tensor<3>;

    /// Whether position i's logits come out at row i − 1 (Dream); position 0 then reads row 0,
    /// as Dream's `generation_utils.py` does.
    fn shifts_logits(&self) -> bool {
        false
    }
}

impl Network for Dit {
    fn logits(
        &self,
        tokens: Tensor<2, Int>,
        sigma: &[f32],
        attention: Attention,
        start: usize,
        cache: Option<&mut KvCache>,
        store: usize,
    ) -> Tensor<3> {
        self.forward(tokens, sigma, attention, start, cache, store)
    }
}

impl Network for Transformer {
    fn logits(
        &self,
        tokens: Tensor<2, Int>,
        _sigma: &[f32],
        attention: Attention,
        start: usize,
        cache: Option<&mut KvCache>,
        store: usize,
    ) -> Tensor<3> {
        self.forward(tokens, attention, start, cache, store)
    }

    fn shifts_logits(&self) -> bool {
        self.shift_logits
    }
}

/// A loaded network on a device, with its KV cache: the [`Denoiser`] every sampler runs on.
pub struct NetworkDenoiser<N> {
    network: N,
    device: Device,
    spec: ModelSpec,
    cache: KvCache,
    read_back: Arc<AtomicU64>,
}

/// The DiT of MDLM and BD3-LM as a [`Denoiser`].
pub type DitDenoiser = NetworkDenoiser<Dit>;
/// The decoder transformer of LLaDA, Dream and the A2D models as a [`Denoiser`].
pub type TransformerDenoiser = NetworkDenoiser<Transformer>;

impl<N: Network> NetworkDenoiser<N> {
    /// Wraps a model; `spec.attention` decides how it attends.
    pub fn new(network: N, device: Device, spec: ModelSpec) -> Self {
        Self {
            network,
            device,
            spec,
            cache: KvCache::default(),
            read_back: Arc::default(),
        }
    }

    /// Bytes its predictions have read back to the host so far (`unmask bench` reports them per
    /// step).
    pub fn bytes_read_back(&self) -> u64 {
        self.read_back.load(Ordering::Relaxed)
    }

    fn rows(&self, logits: Tensor<2>) -> DeviceRows {
        DeviceRows::new(logits, self.device.clone(), self.read_back.clone())
    }

    /// Rows `rows` of a one-sequence pass's logits `[1, L, V]`.
    fn rows_of_one(&self, logits: Tensor<3>, rows: Range<usize>) -> DeviceRows {
        let [_, _, v] = logits.dims();
        self.rows(
            logits
                .narrow(1, rows.start, rows.len())
                .reshape([rows.len(), v]),
        )
    }

    /// A second denoiser on the same weights (burn tensors are shared, not copied) with its own
    /// empty KV cache, so two runs can interleave on one model (the page's race).
    pub fn fork(&self) -> Self {
        Self::new(self.network.clone(), self.device.clone(), self.spec.clone())
    }

    /// The network.
    pub fn network(&self) -> &N {
        &self.network
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Attends with `attention` from now on (parity checks run a model in several modes).
    pub fn set_attention(&mut self, attention: Attention) {
        self.spec.attention = attention;
        self.cache = KvCache::default();
    }

    fn tokens(&self, batch: &[&[u32]]) -> Tensor<2, Int> {
        let l = batch.first().map_or(0, |s| s.len());
        let ids: Vec<i32> = batch
            .iter()
            .flat_map(|s| s.iter().map(|&t| t as i32))
            .collect();
        Tensor::from_data(TensorData::new(ids, [batch.len(), l]), &self.device)
    }

    fn check_len(&self, len: usize) -> Result<(), ModelError> {
        if len > self.spec.model_length {
            return Err(ModelError::TooLong {
                len,
                max: self.spec.model_length,
            });
        }
        Ok(())
    }

    /// Rejects ids the embedding has no row for (a GPU gather would read garbage).
    fn check_ids<'a>(&self, ids: impl IntoIterator<Item = &'a u32>) -> Result<(), ModelError> {
        match ids
            .into_iter()
            .find(|&&t| t as usize >= self.spec.vocab_size)
        {
            Some(t) => Err(ModelError::Unsupported(format!(
                "token id {t} is outside the model's vocabulary of {} tokens",
                self.spec.vocab_size
            ))),
            None => Ok(()),
        }
    }

    /// What a per-token-noise call needs: a model trained for it, rows inside `tokens`, one σ a
    /// token, and ids inside the vocabulary.
    fn check_levels(
        &self,
        tokens: &[u32],
        targets: &Range<usize>,
        sigma: &[f32],
    ) -> Result<(), ModelError> {
        if !self.spec.per_token_noise {
            return Err(ModelError::one_level_per_sequence());
        }
        check_targets(&[tokens], targets)?;
        if sigma.len() != tokens.len() {
            return Err(ModelError::Unsupported(format!(
                "{} noise levels for {} tokens: diffusion forcing takes one per token",
                sigma.len(),
                tokens.len()
            )));
        }
        self.check_ids(tokens)
    }

    /// Raw logits for every position of every sequence, `[B·L·V]`, without the cache — as the
    /// network computes them (a shifting network's row i is position i + 1's).
    pub async fn logits(&self, batch: &[&[u32]], sigma: f32) -> Result<Logits, ModelError> {
        let l = batch.first().map_or(0, |s| s.len());
        check_targets(batch, &(0..l))?;
        self.check_len(l)?;
        self.check_ids(batch.iter().flat_map(|s| s.iter()))?;
        let out = self.network.logits(
            self.tokens(batch),
            &vec![sigma; batch.len()],
            self.spec.attention,
            0,
            None,
            0,
        );
        read(out, &self.device).await
    }
}

/// Rejects a prediction no network pass can serve: no sequences, sequences of different
/// lengths, or target positions that are empty or past the canvas.
fn check_targets(batch: &[&[u32]], targets: &Range<usize>) -> Result<(), ModelError> {
    let len = batch.first().map_or(0, |s| s.len());
    let wrong = |why| {
        Err(ModelError::Targets {
            start: targets.start,
            end: targets.end,
            len,
            why,
        })
    };
    if batch.is_empty() {
        wrong("the batch holds no sequence")
    } else if batch.iter().any(|s| s.len() != len) {
        wrong("the batch's sequences differ in length")
    } else if targets.is_empty() {
        wrong("no position asked for")
    } else if targets.end > len {
        wrong("past the canvas's end")
    } else {
        Ok(())
    }
}

/// The values of read-back tensor data as f32, whatever the device computed in (a half-precision
/// device, see `backend::use_half_precision`, returns f16).
pub fn f32_values(data: TensorData) -> Result<Vec<f32>, String> {
    let data = if data.dtype() == burn::tensor::DType::F32 {
        data
    } else {
        data.convert::<f32>()
    };
    data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

/// Reads a tensor back to the host as f32; a failed readback is a [`ModelError::Backend`].
pub(crate) async fn read_values<const D: usize>(
    t: Tensor<D>,
    device: &Device,
) -> Result<Vec<f32>, ModelError> {
    let failed = |message: String| ModelError::Backend {
        backend: crate::backend::describe(device),
        message,
    };
    let data = t
        .into_data_async()
        .await
        .map_err(|e| failed(format!("{e:?}")))?;
    f32_values(data).map_err(failed)
}

/// Reads a tensor back to the host; a NaN or infinity anywhere is a [`ModelError::NonFinite`]
/// (never handed to a sampler, whose probabilities or images it would poison).
pub(crate) async fn read_finite<const D: usize>(
    t: Tensor<D>,
    device: &Device,
) -> Result<Vec<f32>, ModelError> {
    let values = read_values(t, device).await?;
    let count = values.iter().filter(|x| !x.is_finite()).count();
    if count > 0 {
        return Err(ModelError::NonFinite {
            backend: crate::backend::describe(device),
            count,
            step: None,
        });
    }
    Ok(values)
}

/// A noisy classifier's ∇ₓ log p(y | x) and p(y | x) for each row's class in `classes`, from
/// its `logits` `[B, classes]` computed from `x`, the one leaf of an autodiff device that records
/// a tape (the weights stay constants of the graph): burn's autodiff of the forward pass itself,
/// read back to the host from `device`.
pub(crate) async fn class_log_prob_gradient<const D: usize>(
    x: Tensor<D>,
    logits: Tensor<2>,
    classes: &[usize],
    device: &Device,
) -> Result<(Vec<f32>, Vec<f64>), ModelError> {
    let b = classes.len();
    let labels: Vec<i64> = classes.iter().map(|&y| y as i64).collect();
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [b, 1]), &logits.device());
    let log_p = burn::tensor::activation::log_softmax(logits, 1).gather(1, labels);
    // Rows do not interact, so the gradient of the sum is each row's own gradient.
    let grads = log_p.clone().sum().backward();
    let gradient = x.grad(&grads).ok_or_else(|| ModelError::Backend {
        backend: crate::backend::describe(device),
        message: "autodiff returned no gradient for the classifier's input".into(),
    })?;
    let gradient = read_finite(gradient, device).await?;
    let log_p = read_finite(log_p.inner(), device).await?;
    Ok((
        gradient,
        log_p.iter().map(|&l| f64::from(l).exp()).collect(),
    ))
}

/// Reads `[B, L, V]` logits back to the host, checked by [`read_finite`].
async fn read(logits: Tensor<3>, device: &Device) -> Result<Logits, ModelError> {
    let [b, l, v] = logits.dims();
    Ok(Logits::new(read_finite(logits, device).await?, b * l, v))
}

impl<N: Network> Denoiser for NetworkDenoiser<N> {
    type Rows = DeviceRows;

    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    async fn predict(
        &mut self,
        batch: &[&[u32]],
        targets: Range<usize>,
        sigma: f32,
    ) -> Result<Vec<DeviceRows>, ModelError> {
        let len = batch.first().map_or(0, |s| s.len());
        check_targets(batch, &targets)?;
        let (fed, rows) = if self.spec.attention == Attention::Causal {
            if targets.start == 0 {
                return Err(ModelError::Unsupported(
                    "an autoregressive model cannot predict position 0; start the prompt with a token".into(),
                ));
            }
            (targets.end - 1, targets.start - 1..targets.end - 1)
        } else {
            (len, targets.clone())
        };
        self.check_len(fed)?;
        self.check_ids(batch.iter().flat_map(|s| s.iter()))?;
        let cut: Vec<&[u32]> = batch.iter().map(|s| &s[..fed]).collect();
        let out = self.network.logits(
            self.tokens(&cut),
            &vec![sigma; batch.len()],
            self.spec.attention,
            0,
            None,
            0,
        );
        // A causal pass is shifted already (row i − 1 predicts position i, `rows` above).
        let shift = self.network.shifts_logits() && self.spec.attention != Attention::Causal;
        let out = if shift && rows.start == 0 {
            // Position 0 has no row before it and reads its own (Dream's `generation_utils.py`).
            let first = out.clone().narrow(1, 0, 1);
            match rows.end - 1 {
                0 => first,
                rest => Tensor::cat(vec![first, out.narrow(1, 0, rest)], 1),
            }
        } else if shift {
            out.narrow(1, rows.start - 1, rows.len())
        } else {
            out.narrow(1, rows.start, rows.len())
        };
        let [b, n, v] = out.dims();
        Ok((0..b)
            .map(|i| self.rows(out.clone().narrow(0, i, 1).reshape([n, v])))
            .collect())
    }

    async fn predict_cached(
        &mut self,
        commit: &[u32],
        block: &[u32],
        sigma: f32,
    ) -> Result<DeviceRows, ModelError> {
        let attention = self.spec.attention;
        if !attention.is_cacheable() {
            return Err(ModelError::Unsupported(
                "a bidirectional model has no KV cache: every position sees the whole canvas; run without the cache".into(),
            ));
        }
        if self.network.shifts_logits() {
            return Err(ModelError::Unsupported(
                "a model whose logits are shifted by one (Dream) runs without the KV cache".into(),
            ));
        }
        let causal = attention == Attention::Causal;
        if causal != block.is_empty() {
            return Err(ModelError::Unsupported(if causal {
                "an autoregressive model predicts the next position from the committed tokens alone; pass no block".into()
            } else {
                "a block-diffusion model needs the block to denoise".into()
            }));
        }
        let start = self.cache.len();
        let fed: Vec<u32> = commit.iter().chain(block).copied().collect();
        if fed.is_empty() {
            return Err(ModelError::Unsupported(
                "nothing to run: no tokens to commit and no block".into(),
            ));
        }
        self.check_len(start + fed.len())?;
        self.check_ids(&fed)?;
        let out = self.network.logits(
            self.tokens(&[&fed]),
            &[sigma],
            attention,
            start,
            Some(&mut self.cache),
            commit.len(),
        );
        let rows = if causal {
            fed.len() - 1..fed.len()
        } else {
            commit.len()..fed.len()
        };
        Ok(self.rows_of_one(out, rows))
    }

    async fn predict_levels(
        &mut self,
        tokens: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<DeviceRows, ModelError> {
        self.check_levels(tokens, &targets, sigma)?;
        self.check_len(tokens.len())?;
        let out = self.network.logits(
            self.tokens(&[tokens]),
            sigma,
            self.spec.attention,
            0,
            None,
            0,
        );
        Ok(self.rows_of_one(out, targets))
    }

    async fn predict_levels_cached(
        &mut self,
        clean: &[u32],
        rest: &[u32],
        targets: Range<usize>,
        sigma: &[f32],
    ) -> Result<DeviceRows, ModelError> {
        self.check_levels(rest, &targets, sigma)?;
        if self.spec.attention != Attention::Causal {
            return Err(ModelError::Unsupported(format!(
                "a clean prefix is cached under causal attention only, and this model is {}; run without the cache",
                self.spec.attention.name()
            )));
        }
        let start = self.cache.len();
        self.check_len(start + clean.len() + rest.len())?;
        self.check_ids(clean)?;
        let fed: Vec<u32> = clean.iter().chain(rest).copied().collect();
        // A clean token sits at σ = 0, as the uncached call would have it.
        let levels: Vec<f32> = std::iter::repeat_n(0.0, clean.len())
            .chain(sigma.iter().copied())
            .collect();
        let out = self.network.logits(
            self.tokens(&[&fed]),
            &levels,
            Attention::Causal,
            start,
            Some(&mut self.cache),
            clean.len(),
        );
        let shift = clean.len();
        Ok(self.rows_of_one(out, targets.start + shift..targets.end + shift))
    }

    fn reset_cache(&mut self) {
        self.cache = KvCache::default();
    }
}
