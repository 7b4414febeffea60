//! The one place that names a burn backend.
//!
//! `cpu` is burn's pure-Rust `flex` backend (native and wasm); `wgpu` is burn's WebGPU backend
//! (Vulkan, Metal or DX12 natively, WebGPU in the browser). The wgpu runtime can be initialised
//! once per process, so the device is kept after the first successful start.

#[cfg(feature = "wgpu")]
use std::sync::OnceLock;

use burn::tensor::Device;
use thiserror::Error;

/// Which backend runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's `flex` CPU backend.
    Cpu,
    /// burn's wgpu backend.
    Wgpu,
}

impl BackendKind {
    /// The name the CLI and the page use.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(BackendKind::Cpu),
            "wgpu" | "webgpu" | "gpu" => Ok(BackendKind::Wgpu),
            other => Err(BackendError::Unknown(other.to_owned())),
        }
    }
}

/// What can go wrong starting a backend.
#[derive(Debug, Error)]
pub enum BackendError {
    /// No GPU adapter, or the runtime refused to start.
    #[error(
        "no usable GPU through wgpu ({0}); use the cpu backend, or install a Vulkan driver (Debian: mesa-vulkan-drivers)"
    )]
    Wgpu(String),
    /// This build has no wgpu backend.
    #[error(
        "this build of Unmask has no wgpu backend (built without the `wgpu` feature); use the cpu backend"
    )]
    NotBuilt,
    /// A name that is no backend.
    #[error("unknown backend `{0}`: use cpu or wgpu")]
    Unknown(String),
}

#[cfg(feature = "wgpu")]
static WGPU: OnceLock<Device> = OnceLock::new();

/// Starts `kind`, asynchronously (the only way in a browser).
pub async fn init_async(kind: BackendKind) -> Result<Device, BackendError> {
    match kind {
        BackendKind::Cpu => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => {
            if let Some(device) = WGPU.get() {
                return Ok(device.clone());
            }
            let device = Device::wgpu_options()
                .init_async()
                .await
                .map_err(|e| BackendError::Wgpu(e.to_string()))?;
            Ok(WGPU.get_or_init(|| device).clone())
        }
        #[cfg(not(feature = "wgpu"))]
        BackendKind::Wgpu => Err(BackendError::NotBuilt),
    }
}

/// Starts `kind`, blocking (native only). One thread at a time starts a device: two threads
/// starting wgpu at once (parallel tests) would both set it up, which its EGL layer refuses.
#[cfg(not(target_family = "wasm"))]
pub fn init(kind: BackendKind) -> Result<Device, BackendError> {
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = STARTING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    pollster::block_on(init_async(kind))
}

/// Makes `device` create every float tensor in f16 — weights converted as they load, half the
/// GPU memory (the 170M checkpoints' 679 MB become 340 MB) — where it supports f16 (WebGPU's
/// `shader-f16`). Must run before the first tensor on the device; returns whether f16 is on.
pub fn use_half_precision(device: &mut Device) -> bool {
    device.supports_dtype(burn::tensor::FloatDType::F16)
        && device.configure(burn::tensor::FloatDType::F16).is_ok()
}

/// Whether `device` computes in host memory (the CPU backend): reading its tensors back is a
/// copy, not a transfer.
pub fn is_host(device: &Device) -> bool {
    *device == Device::flex()
}

/// A short human description of a device, for messages.
pub fn describe(device: &Device) -> String {
    format!("{device:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip_and_unknown_is_an_error() {
        for kind in [BackendKind::Cpu, BackendKind::Wgpu] {
            assert_eq!(kind.name().parse::<BackendKind>().unwrap(), kind);
        }
        let err = "tpu".parse::<BackendKind>().unwrap_err();
        assert!(err.to_string().contains("cpu or wgpu"));
    }
}
