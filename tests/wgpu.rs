//! burn's wgpu backend gives the CPU backend's results (Mesa lavapipe in CI).
//!
//! Without a Vulkan/Metal/DX12 adapter the test reports a skip, unless `UNMASK_REQUIRE_WGPU` is
//! set (CI sets it after installing mesa-vulkan-drivers), in which case a missing adapter fails.

mod common;

use common::{fixture_dir, ids, max_abs_diff, reference, run_all, tiny, wgpu};
use unmask::backend::{self, BackendKind};
use unmask::bundle::Bundle;
use unmask::config::Attention;
use unmask::sampler::{SamplerKind, Settings};

/// The tiny fixture model on wgpu and on the CPU backend, or `None` (a skip) as [`wgpu`].
fn fixture_on_both() -> Option<(Bundle, Bundle)> {
    let device = wgpu()?;
    Some((Bundle::from_dir(&fixture_dir(), &device).unwrap(), tiny()))
}

#[test]
fn wgpu_logits_and_trajectories_match_the_cpu_backend() {
    let Some((mut gpu, mut cpu)) = fixture_on_both() else {
        return;
    };
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

#[test]
fn wgpu_draws_the_cpu_backend_s_digit_with_and_without_classifier_guidance() {
    use unmask::model::patch_dit::{
        PatchDitClassifier, PatchDitConfig, PatchDitNoise, Role, load_patch_dit, random_patch_dit,
    };
    use unmask::sampler::image::{Condition, Guidance, ImageRun, ImageSettings};

    let Some(device) = wgpu() else {
        return;
    };
    let cpu = backend::init(BackendKind::Cpu).unwrap();
    let config = |role| PatchDitConfig {
        diffusion_steps: 100,
        ..PatchDitConfig::digits(role, 32, 2, 2)
    };
    let (dc, cc) = (config(Role::Denoiser), config(Role::Classifier));
    let (dw, cw) = (
        random_patch_dit(&dc, 7).unwrap(),
        random_patch_dit(&cc, 8).unwrap(),
    );
    let draw = |device: &burn::tensor::Device, guidance| {
        let mut noise = PatchDitNoise::new(
            &dc,
            load_patch_dit(&dc, &dw, device).unwrap(),
            device.clone(),
        )
        .unwrap();
        let mut classifier = PatchDitClassifier::new(
            &cc,
            load_patch_dit(&cc, &cw, device).unwrap(),
            device.clone(),
        )
        .unwrap();
        let settings = ImageSettings::Ddim {
            steps: 10,
            eta: 1.0,
            condition: Condition {
                class: Some(4),
                guidance,
                count: 2,
                seed: 3,
            },
        };
        let spec = unmask::network::NoisePredictor::spec(&noise).clone();
        let mut run = ImageRun::new(&settings, &spec, Some(10)).unwrap();
        let mut last = None;
        while let Some(step) =
            pollster::block_on(run.step(&mut noise, Some(&mut classifier))).unwrap()
        {
            last = Some(step);
        }
        last.unwrap()
    };
    for guidance in [
        Guidance::None,
        Guidance::Free { scale: 2.0 },
        Guidance::Classifier { scale: 3.0 },
    ] {
        let (a, b) = (draw(&device, guidance), draw(&cpu, guidance));
        let diff = max_abs_diff(&a.x, &b.x);
        assert!(diff < 1e-3, "{guidance:?}: max |Δx| = {diff}");
        let (pa, pb) = (a.class_prob.unwrap(), b.class_prob.unwrap());
        assert!(
            pa.iter().zip(&pb).all(|(x, y)| (x - y).abs() < 1e-3),
            "{pa:?} {pb:?}"
        );
    }
}

#[test]
fn the_samplers_reduction_on_wgpu_agrees_with_the_host_s() {
    use burn::tensor::{DType, Tensor, TensorData};
    use unmask::model::DeviceRows;
    use unmask::rng::Rng;
    use unmask::sampler::probs::reduce_row;
    use unmask::sampler::{Logits, Reduce, RowDraw, RowQuery, Rows};

    let Some(device) = wgpu() else {
        return;
    };
    let (rows, vocab, mask) = (32, 500, 3u32);
    let mut rng = Rng::new(21);
    let spread: Vec<f32> = (0..rows * vocab)
        .map(|_| (rng.uniform() * 10.0 - 5.0) as f32)
        .collect();
    // The same on a grid of halves: ties at every top-k / top-p threshold.
    let grid: Vec<f32> = spread.iter().map(|x| (x * 2.0).round() / 2.0).collect();
    let settings = [
        (None, None),
        (Some(7), None),
        (None, Some(0.5)),
        (Some(30), Some(0.5)),
    ];
    let cases = [spread, grid]
        .into_iter()
        .flat_map(|data| settings.map(|setting| (data.clone(), setting)));
    for (i, (data, (top_k, top_p))) in cases.enumerate() {
        let host = Logits::new(data.clone(), rows, vocab);
        let tensor =
            Tensor::<2>::from_data(TensorData::new(data, [rows, vocab]), (&device, DType::F32));
        let on_gpu = DeviceRows::new(tensor, device.clone(), Default::default());
        let request = Reduce {
            mask_id: mask,
            temperature: 0.7,
            top_k,
            top_p,
            rows: (0..rows)
                .map(|row| RowQuery {
                    row,
                    draw: match (row + i) % 3 {
                        0 => RowDraw::Greedy,
                        1 => RowDraw::Categorical(rng.uniform()),
                        _ => RowDraw::Gumbel((0..vocab).map(|_| rng.uniform()).collect()),
                    },
                })
                .collect(),
            margin: true,
            entropy: true,
            candidates: 5,
        };
        let got = pollster::block_on(on_gpu.reduce(&request)).unwrap();
        for (q, g) in request.rows.iter().zip(&got) {
            let want = reduce_row(host.row(q.row), &request, &q.draw);
            assert_eq!(g.token, want.token, "row {} ({top_k:?}, {top_p:?})", q.row);
            assert!((g.prob - want.prob).abs() < 1e-5, "row {}", q.row);
            assert!((g.margin - want.margin).abs() < 1e-5, "row {}", q.row);
            assert!(
                (g.neg_entropy - want.neg_entropy).abs() < 1e-4,
                "row {}",
                q.row
            );
            let ids = |t: &[(u32, f64)]| t.iter().map(|c| c.0).collect::<Vec<_>>();
            assert_eq!(ids(&g.top), ids(&want.top), "row {}", q.row);
        }
    }
}

#[test]
fn every_sampler_draws_the_same_run_on_wgpu_as_on_the_cpu_backend() {
    use unmask::config::Attention::{BlockCausal, Causal};
    use unmask::sampler::{Knob, KnobValue, Remasking};
    let Some((mut gpu, mut cpu)) = fixture_on_both() else {
        return;
    };
    let prompt = ids(&reference()["golden"]["prompt"]);
    for (sampler, attention) in [
        (SamplerKind::Llada, Attention::Bidirectional),
        (SamplerKind::Mdlm, Attention::Bidirectional),
        (SamplerKind::Bd3, BlockCausal { block_size: 4 }),
        (SamplerKind::Ar, Causal),
    ] {
        gpu.model.set_attention(attention);
        cpu.model.set_attention(attention);
        let mut settings = Settings::for_tokens(sampler, 8);
        settings.draw_mut().seed = 4;
        settings.draw_mut().temperature = 1.0;
        if settings.has(Knob::Remasking) {
            settings
                .set(Knob::Remasking, KnobValue::Remasking(Remasking::Margin))
                .unwrap();
        }
        let on_gpu = run_all(settings.clone(), &prompt, &mut gpu.model);
        let on_cpu = run_all(settings, &prompt, &mut cpu.model);
        let commits = |steps: &[unmask::sampler::Step]| {
            steps
                .iter()
                .map(|s| {
                    s.commits
                        .iter()
                        .map(|c| (c.position, c.token))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(commits(&on_gpu), commits(&on_cpu), "{sampler:?}");
    }
}

#[test]
fn wgpu_runs_the_cpu_backend_s_diffusion_forcing_for_a_seed() {
    // The shipped forcing model: per-position conditioning under causal attention, a pyramid
    // schedule; the same seed writes the same tokens on both backends.
    let Some(device) = wgpu() else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/models/default/forcing");
    let mut gpu = Bundle::from_dir(&dir, &device).unwrap();
    let mut cpu = Bundle::from_dir(&dir, &backend::init(BackendKind::Cpu).unwrap()).unwrap();
    let mut settings = Settings::for_tokens(SamplerKind::Forcing, 12);
    settings.draw_mut().seed = 5;
    let prompt = cpu.codec.encode_prompt("She was").unwrap();
    let on_gpu = run_all(settings.clone(), &prompt, &mut gpu.model);
    let on_cpu = run_all(settings, &prompt, &mut cpu.model);
    assert_eq!(on_gpu.last().unwrap().canvas, on_cpu.last().unwrap().canvas);
    assert_eq!(on_gpu.len(), on_cpu.len());
}

#[test]
fn wgpu_denoises_the_cpu_backend_s_word_vectors_for_a_seed() {
    // Diffusion-LM: a random denoiser of word vectors, 12 reverse steps with the clamping
    // trick; every x̂₀ is rounded on the host, so the two backends write the same words.
    use unmask::config::Family;
    use unmask::model::diffusion_lm::{
        DiffusionLmConfig, DiffusionLmDenoiser, random_diffusion_lm,
    };
    use unmask::model::patch_dit::Role;
    use unmask::sampler::diffusion_lm::{VectorRun, VectorSettings};
    use unmask::sampler::gaussian::BetaSchedule;
    let Some(device) = wgpu() else {
        return;
    };
    let config = DiffusionLmConfig {
        family: Family::DiffusionLm,
        role: Role::Denoiser,
        vocab_size: 40,
        embed_dim: 8,
        model_length: 12,
        hidden_dim: 32,
        cond_dim: 32,
        n_blocks: 2,
        n_heads: 4,
        diffusion_steps: 200,
        beta_schedule: BetaSchedule::Sqrt,
        labels: vec![],
        classifier: None,
    };
    let bytes = random_diffusion_lm(&config, 7).unwrap();
    let cpu = backend::init(BackendKind::Cpu).unwrap();
    let settings = VectorSettings {
        steps: 12,
        seed: 4,
        ..VectorSettings::defaults(9)
    };
    let mut runs = Vec::new();
    for device in [&device, &cpu] {
        let mut net = DiffusionLmDenoiser::load(&config, &bytes, device).unwrap();
        let mut run = VectorRun::new(&settings, &[3, 17, 5], &config.vector_spec()).unwrap();
        let mut steps = Vec::new();
        while let Some(step) = pollster::block_on(run.step(&mut net)).unwrap() {
            steps.push(step.ids);
        }
        runs.push((steps, run.vectors().to_vec()));
    }
    assert_eq!(runs[0].0, runs[1].0);
    let diff = runs[0]
        .1
        .iter()
        .zip(&runs[1].1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn wgpu_steers_the_shipped_words_as_the_cpu_backend_does_for_a_seed() {
    // Diffusion-LM's control on the shipped denoiser and classifier: each step's three gradient
    // steps move every number by ±0.1, the sign of its gradient (autodiff on each backend), so
    // this checks that the two backends' gradients agree in sign everywhere they matter.
    use unmask::bundle::VectorBundle;
    use unmask::model::diffusion_lm::{DiffusionLmClassifier, DiffusionLmConfig};
    use unmask::sampler::diffusion_lm::{Control, VectorRun, VectorSettings};
    let Some(device) = wgpu() else {
        return;
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/models/default");
    let read = |f: &str| std::fs::read(root.join("diffusion-lm-classifier").join(f)).unwrap();
    let classifier_config = DiffusionLmConfig::from_json(&read("config.json")).unwrap();
    let cpu = backend::init(BackendKind::Cpu).unwrap();
    let mut runs = Vec::new();
    for device in [&device, &cpu] {
        let mut bundle = VectorBundle::from_dir(&root.join("diffusion-lm"), device).unwrap();
        let mut classifier = DiffusionLmClassifier::load(
            &classifier_config,
            &read("model.safetensors"),
            &bundle.config,
            device,
        )
        .unwrap();
        let settings = VectorSettings {
            steps: 30,
            seed: 2,
            control: Some(Control {
                scale: 3.0,
                ..Control::toward("bible")
            }),
            ..VectorSettings::defaults(20)
        };
        let prompt = bundle.codec.encode("It was").unwrap();
        let mut run = VectorRun::new(&settings, &prompt, &bundle.config.vector_spec()).unwrap();
        let mut steps = Vec::new();
        while let Some(step) =
            pollster::block_on(run.step_controlled(&mut bundle.denoiser, &mut classifier)).unwrap()
        {
            steps.push((step.ids, step.target_probability.unwrap()));
        }
        runs.push(steps);
    }
    for (i, (gpu, cpu)) in runs[0].iter().zip(&runs[1]).enumerate() {
        assert_eq!(gpu.0, cpu.0, "step {i}");
        assert!(
            (gpu.1 - cpu.1).abs() < 1e-3,
            "step {i}: {} against {}",
            gpu.1,
            cpu.1
        );
    }
}

#[test]
fn wgpu_draws_and_captions_the_cpu_backend_s_digits_for_a_seed() {
    // The shipped text + image model: MaskGIT draws its cells and the caption is read through
    // the text-only restriction on both backends, from the same seeded draws on the host.
    use unmask::bundle::UnifiedBundle;
    use unmask::sampler::maskgit::MaskGitSettings;
    use unmask::unified::{CaptionSettings, UnifiedRun, UnifiedTask};
    let Some(device) = wgpu() else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/models/default/unified");
    let run = |device: &burn::tensor::Device| {
        let mut b = UnifiedBundle::from_dir(&dir, device).unwrap();
        let spec = unmask::sampler::Denoiser::spec(&b.model).clone();
        let mut go = |task: &UnifiedTask| {
            let mut run = UnifiedRun::new(task, &b.layout, &b.codec, &spec).unwrap();
            while pollster::block_on(run.next(&mut b.model))
                .unwrap()
                .is_some()
            {}
            run
        };
        let drawn = go(&UnifiedTask::T2i {
            caption: "the digit 4".into(),
            settings: MaskGitSettings {
                seed: 3,
                ..MaskGitSettings::default()
            },
        });
        let image = drawn.image().unwrap();
        let captioned = go(&UnifiedTask::Mmu {
            image: image.to_vec(),
            settings: CaptionSettings::default(),
        });
        (image, captioned.tokens().to_vec())
    };
    let on_gpu = run(&device);
    let on_cpu = run(&backend::init(BackendKind::Cpu).unwrap());
    assert_eq!(on_gpu, on_cpu);
}
