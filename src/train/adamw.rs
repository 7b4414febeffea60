//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101), the
//! references' optimiser (`torch.optim.AdamW`), with its moments kept by parameter id on the
//! training device and saved as safetensors.
//!
//! burn's own `AdamW` computes the same update; this one exists for its state: burn's optimiser
//! record is read back onto burn's default device (the GPU, where one is compiled in), while a
//! resumed run must put it where the run is — the CPU on a machine without a GPU.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::Dtype;

use crate::model::f32_values;

/// The key of `run.json`-independent metadata in the saved state: the update count.
const STEP_KEY: &str = "step";

/// AdamW's settings and state.
#[derive(Clone, Debug)]
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    /// Updates done (the bias correction's t).
    step: u64,
    /// First and second moments of each parameter, flattened.
    moments: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    /// A fresh optimiser.
    pub fn new(beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Self {
        Self {
            beta1,
            beta2,
            eps,
            weight_decay,
            step: 0,
            moments: HashMap::new(),
        }
    }

    /// One update of every parameter of `model` that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, grads: &mut GradientsParams) -> M {
        self.step += 1;
        model.map(&mut Update {
            optim: self,
            grads,
            lr,
        })
    }

    /// The state as safetensors bytes: `m.{id}` and `v.{id}` per parameter, the step in metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (id, (m, v)) in &self.moments {
            for (name, t) in [("m", m), ("v", v)] {
                let values = f32_values(t.clone().into_data())?;
                let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
                tensors.push((format!("{name}.{}", id.val()), vec![values.len()], bytes));
            }
        }
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let metadata = BTreeMap::from([(STEP_KEY.to_owned(), self.step.to_string())]);
        safetensors::serialize(views, Some(metadata.into_iter().collect()))
            .map_err(|e| e.to_string())
    }

    /// Restores the state of [`AdamW::to_bytes`] onto `device`.
    pub fn load(&mut self, bytes: &[u8], device: &Device) -> Result<(), String> {
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let step = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(STEP_KEY))
            .and_then(|s| s.parse().ok())
            .ok_or("the optimizer state has no step count")?;
        let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let mut halves: HashMap<u64, [Option<Tensor<1>>; 2]> = HashMap::new();
        for (name, view) in file.tensors() {
            let (kind, id) = name.split_once('.').ok_or("unexpected tensor name")?;
            let id: u64 = id
                .parse()
                .map_err(|_| format!("bad parameter id in `{name}`"))?;
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let n = values.len();
            let t = Tensor::from_data(TensorData::new(values, [n]), device);
            let slot = halves.entry(id).or_default();
            match kind {
                "m" => slot[0] = Some(t),
                "v" => slot[1] = Some(t),
                _ => return Err(format!("unexpected tensor `{name}`")),
            }
        }
        self.moments = halves
            .into_iter()
            .map(|(id, [m, v])| match (m, v) {
                (Some(m), Some(v)) => Ok((ParamId::from(id), (m, v))),
                _ => Err(format!("parameter {id} lacks a moment")),
            })
            .collect::<Result<_, String>>()?;
        self.step = step;
        Ok(())
    }
}

struct Update<'a> {
    optim: &'a mut AdamW,
    grads: &'a mut GradientsParams,
    lr: f64,
}

impl ModuleMapper for Update<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let o = &mut *self.optim;
        let require_grad = tensor.is_require_grad();
        let value = tensor.inner();
        let dims = value.dims();
        let n = value.shape().num_elements();
        let g = grad.reshape([n]);
        let (m, v) = o.moments.remove(&id).unwrap_or_else(|| {
            let device = g.device();
            (Tensor::zeros([n], &device), Tensor::zeros([n], &device))
        });
        let m = m.mul_scalar(o.beta1) + g.clone().mul_scalar(1.0 - o.beta1);
        let v = v.mul_scalar(o.beta2) + g.square().mul_scalar(1.0 - o.beta2);
        let t = o.step as i32;
        let m_hat = m.clone().div_scalar(1.0 - o.beta1.powi(t));
        let v_hat = v.clone().div_scalar(1.0 - o.beta2.powi(t));
        let update = (m_hat / (v_hat.sqrt() + o.eps)).reshape(dims);
        let decayed = value.mul_scalar(1.0 - self.lr * o.weight_decay);
        let mut updated = Tensor::from_inner(decayed - update.mul_scalar(self.lr));
        if require_grad {
            updated = updated.require_grad();
        }
        o.moments.insert(id, (m, v));
        Param::from_mapped_value(id, updated, mapper)
    }
}
