//! burn's wgpu backend gives the CPU backend's results (Mesa lavapipe in CI).
//!
//! Without a Vulkan/Metal/DX12 adapter the test reports a skip, unless `UNMASK_REQUIRE_WGPU` is
//! set (CI sets it after installing mesa-vulkan-drivers), in which case a missing adapter fails.

mod common;

use common::{fixture_dir, ids, max_abs_diff, reference, run_all, tiny};
use unmask::backend::{self, BackendKind};
use unmask::bundle::Bundle;
use unmask::config::Attention;
use unmask::sampler::{SamplerKind, Settings};

#[test]
fn wgpu_logits_and_trajectories_match_the_cpu_backend() {
    let device = match backend::init(BackendKind::Wgpu) {
        Ok(d) => d,
        Err(e) if std::env::var_os("UNMASK_REQUIRE_WGPU").is_none() => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("UNMASK_REQUIRE_WGPU is set but wgpu did not start: {e}"),
    };
    let mut gpu = Bundle::from_dir(&fixture_dir(), &device).unwrap();
    let mut cpu = tiny();
    let tokens = ids(&reference()["tokens"]);
    for attention in [
        Attention::Bidirectional,
        Attention::BlockCausal { block_size: 4 },
        Attention::Causal,
    ] {
        gpu.model.set_attention(attention);
        cpu.model.set_attention(attention);
        let a = pollster::block_on(gpu.model.logits(&[&tokens], 0.0)).unwrap();
        let b = pollster::block_on(cpu.model.logits(&[&tokens], 0.0)).unwrap();
        let diff = max_abs_diff(a.as_slice(), b.as_slice());
        assert!(diff < 1e-3, "{attention:?}: max |Δ| = {diff}");
    }
    gpu.model
        .set_attention(Attention::BlockCausal { block_size: 4 });
    cpu.model
        .set_attention(Attention::BlockCausal { block_size: 4 });
    let mut settings = Settings::for_tokens(SamplerKind::Bd3, 12);
    settings.draw_mut().seed = 9;
    let prompt = ids(&reference()["golden"]["prompt"]);
    let on_gpu = run_all(settings.clone(), &prompt, &mut gpu.model);
    let on_cpu = run_all(settings, &prompt, &mut cpu.model);
    assert_eq!(on_gpu.last().unwrap().canvas, on_cpu.last().unwrap().canvas);
}
