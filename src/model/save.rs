//! Writes a [`Dit`] (or a [`PatchDit`]) back to `model.safetensors` under the reference's key names (the table in
//! [`super::load`]), so a model trained here loads like a published checkpoint, in the page too.
//!
//! Native only: it reads the weights back synchronously, which a browser cannot do.

use burn::nn::Linear;
use burn::tensor::Tensor;
use safetensors::Dtype;

use super::diffusion_lm::DiffusionLm;
use super::dit::Dit;
use super::layers::LayerNorm;
use super::load::{LoadError, write_safetensors};
use super::patch_dit::PatchDit;

/// One tensor by name: key (without `backbone.`), PyTorch shape, values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Every weight of `dit` as the checkpoint stores it (linear weights transposed back to `[out, in]`).
pub fn dit_tensors(dit: &Dit) -> Vec<NamedTensor> {
    let mut out = vec![matrix("vocab_embed.embedding", dit.vocab_embed.val())];
    if let Some(map) = &dit.sigma_map {
        linear("sigma_map.mlp.0", &map.mlp0, &mut out);
        linear("sigma_map.mlp.2", &map.mlp2, &mut out);
    }
    blocks(&dit.blocks, &mut out);
    let head = &dit.output_layer;
    norm("output_layer.norm_final", &head.norm_final, &mut out);
    if let Some(m) = &head.adaln_modulation {
        linear("output_layer.adaLN_modulation", m, &mut out);
    }
    linear("output_layer.linear", &head.linear, &mut out);
    out
}

/// Every weight of a [`PatchDit`] under the keys of [`super::patch_dit`]'s table.
pub fn patch_dit_tensors(net: &PatchDit) -> Vec<NamedTensor> {
    let mut out = Vec::new();
    linear("patch_embed", &net.patch_embed, &mut out);
    out.push(matrix("pos_embed", net.pos_embed.val()));
    linear("t_embed.mlp.0", &net.t_mlp0, &mut out);
    linear("t_embed.mlp.2", &net.t_mlp2, &mut out);
    if let Some(table) = &net.y_embed {
        out.push(matrix("y_embed", table.val()));
    }
    blocks(&net.blocks, &mut out);
    let head = &net.final_layer;
    norm("final.norm_final", &head.norm_final, &mut out);
    if let Some(m) = &head.adaln_modulation {
        linear("final.adaLN_modulation", m, &mut out);
    }
    linear("final.linear", &head.linear, &mut out);
    out
}

/// `net` as safetensors bytes (no key prefix), stored in `dtype`.
pub fn save_patch_dit(net: &PatchDit, dtype: Dtype) -> Result<Vec<u8>, LoadError> {
    super::load::write_safetensors_under(&patch_dit_tensors(net), "", dtype)
}

/// A Diffusion-LM network as safetensors bytes (no key prefix), stored in `dtype`: the word
/// vectors (a denoiser's) and the trunk, under [`super::diffusion_lm`]'s keys.
pub fn save_diffusion_lm(net: &DiffusionLm, dtype: Dtype) -> Result<Vec<u8>, LoadError> {
    let mut tensors = Vec::new();
    if let Some(table) = &net.embedding {
        tensors.push(matrix(super::diffusion_lm::EMBEDDING_KEY, table.val()));
    }
    tensors.extend(patch_dit_tensors(&net.trunk));
    super::load::write_safetensors_under(&tensors, "", dtype)
}

/// `dit` as safetensors bytes, stored in `dtype` (F32, or F16/BF16 for half the size).
pub fn save_dit(dit: &Dit, dtype: Dtype) -> Result<Vec<u8>, LoadError> {
    write_safetensors(&dit_tensors(dit), dtype)
}

/// `blocks.{i}.*` of either network (the same block type).
fn blocks(blocks: &[super::dit::DitBlock], out: &mut Vec<NamedTensor>) {
    for (i, block) in blocks.iter().enumerate() {
        let p = format!("blocks.{i}");
        norm(&format!("{p}.norm1"), &block.norm1, out);
        norm(&format!("{p}.norm2"), &block.norm2, out);
        linear(&format!("{p}.attn_qkv"), &block.attn_qkv, out);
        linear(&format!("{p}.attn_out"), &block.attn_out, out);
        linear(&format!("{p}.mlp.0"), &block.mlp0, out);
        linear(&format!("{p}.mlp.2"), &block.mlp2, out);
        if let Some(m) = &block.adaln_modulation {
            linear(&format!("{p}.adaLN_modulation"), m, out);
        }
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    // f32_values cannot fail after its conversion to f32; an empty vector would surface as a
    // shape error when the file is serialised.
    super::f32_values(t.into_data()).unwrap_or_default()
}

fn matrix(name: &str, t: Tensor<2>) -> NamedTensor {
    let shape = t.dims().to_vec();
    (name.to_owned(), shape, values(t))
}

fn linear(name: &str, layer: &Linear, out: &mut Vec<NamedTensor>) {
    // burn keeps `[in, out]`; PyTorch's checkpoints hold `[out, in]`.
    out.push(matrix(
        &format!("{name}.weight"),
        layer.weight.val().transpose(),
    ));
    if let Some(bias) = &layer.bias {
        let b = bias.val();
        out.push((format!("{name}.bias"), b.dims().to_vec(), values(b)));
    }
}

fn norm(name: &str, layer: &LayerNorm, out: &mut Vec<NamedTensor>) {
    let w = layer.weight.val();
    out.push((format!("{name}.weight"), w.dims().to_vec(), values(w)));
}
