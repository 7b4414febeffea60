//! # Unmask
//!
//! See and use diffusion language models. One core for the web page (wasm32, WebGPU) and the
//! `unmask` command line:
//!
//! - [`model`]: the DiT of MDLM and BD3-LM, with the checkpoints' key names, three attention modes
//!   and an exact KV cache;
//! - [`sampler`]: LLaDA, MDLM, BD3-LM and autoregressive samplers that emit every [`sampler::Step`];
//! - [`bundle`] and [`text`]: model folders (config.json, model.safetensors, tokenizer.json) from bytes;
//! - [`chat`]: conversations through a model's own chat template, and its authors' chat sampler;
//! - [`engine`] and [`trajectory`]: a run, step by step, and its JSON record;
//! - [`backend`]: the one file that names burn's CPU and wgpu backends;
//! - `corpus` and `train` (native only): the training corpus and its tokenizer (`unmask
//!   prepare`), and `unmask train` — the MDLM, BD3-LM and AR objectives on the same DiT;
//! - [`page`]: the web page's state, worker protocol and replay (plain Rust); the browser glue
//!   (`browser`) and the Leptos components (`ui`) build for wasm32 only.
//!
//! What it does not do (yet): batching several prompts, quantised weights.

pub mod backend;
#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod bundle;
pub mod chat;
pub mod config;
#[cfg(not(target_family = "wasm"))]
pub mod corpus;
pub mod engine;
pub mod export;
pub mod float_json;
#[cfg(not(target_family = "wasm"))]
pub mod fuzzing;
#[cfg(not(target_family = "wasm"))]
pub mod hub;
pub mod limits;
pub mod model;
pub mod network;
pub mod page;
pub mod rng;
pub mod sampler;
pub mod text;
#[cfg(not(target_family = "wasm"))]
pub mod train;
pub mod trajectory;
#[cfg(target_arch = "wasm32")]
pub mod ui;
pub mod unified;

pub use backend::BackendKind;
pub use bundle::{Bundle, ModelFiles};
pub use config::{Attention, ModelConfig};
pub use engine::Generation;
pub use sampler::{Settings, Step};
pub use trajectory::Trajectory;
