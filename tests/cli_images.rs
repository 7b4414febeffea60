//! `unmask generate` on ddpm-family folders: images out, one flag table across families, and a
//! clear refusal (exit 2) for every flag or value the model cannot take.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture_dir;
use unmask::model::patch_dit::{PatchDitConfig, Role, random_patch_dit};

fn unmask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_unmask"))
        .args(args)
        .output()
        .unwrap()
}

fn config(role: Role, classes: usize, classifier: Option<&str>) -> PatchDitConfig {
    PatchDitConfig {
        cond_dim: 16,
        classes,
        diffusion_steps: 50,
        classifier: classifier.map(str::to_owned),
        ..PatchDitConfig::digits(role, 16, 1, 2)
    }
}

fn write_folder(dir: &Path, config: &PatchDitConfig, weights: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_vec(config).unwrap()).unwrap();
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
}

/// A conditional noise predictor that names its classifier, the classifier, and an
/// unconditional predictor, all with random weights, under a fresh directory.
fn folders() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!("unmask-cli-images-{}-{n}", std::process::id()));
    let ddpm = config(Role::Denoiser, 10, Some("../classifier"));
    write_folder(
        &root.join("ddpm"),
        &ddpm,
        &random_patch_dit(&ddpm, 1).unwrap(),
    );
    let classifier = config(Role::Classifier, 10, None);
    write_folder(
        &root.join("classifier"),
        &classifier,
        &random_patch_dit(&classifier, 2).unwrap(),
    );
    let plain = config(Role::Denoiser, 0, None);
    write_folder(
        &root.join("unconditional"),
        &plain,
        &random_patch_dit(&plain, 3).unwrap(),
    );
    root
}

#[derive(serde::Deserialize)]
struct Images {
    images: Vec<Vec<f64>>,
    classes: Vec<Option<usize>>,
}

/// Runs generate on `model` with `args`, expecting success; the images file it wrote.
fn draw(model: &Path, args: &[&str]) -> Images {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_file = model.with_extension(format!("{n}.json"));
    let mut all = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--quiet",
        "--images",
        out_file.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = unmask(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The terminal view: block characters, eight rows of eight two-character pixels per image.
    let shown = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = shown.lines().filter(|l| !l.starts_with("image")).collect();
    assert!(rows.iter().all(|r| r.chars().count() == 16), "{shown}");
    serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap()
}

#[test]
fn generate_writes_images_on_the_data_scale_and_a_seed_repeats_them() {
    let root = folders();
    let ddpm = root.join("ddpm");
    let inspect = unmask(&["inspect", "--model", ddpm.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&inspect.stdout);
    assert!(said.contains("family      ddpm (Denoiser)"), "{said}");
    assert!(said.contains("classifier  ../classifier"), "{said}");
    let a = draw(&ddpm, &["--class", "3", "--count", "3", "--seed", "5"]);
    assert_eq!(a.images.len(), 3);
    assert_eq!(a.classes, vec![Some(3); 3]);
    for image in &a.images {
        assert_eq!(image.len(), 64);
        assert!(image.iter().all(|v| (0.0..=16.0).contains(v)));
    }
    let again = draw(&ddpm, &["--class", "3", "--count", "3", "--seed", "5"]);
    assert_eq!(a.images, again.images, "one seed, one sample");
    let other = draw(&ddpm, &["--class", "3", "--count", "3", "--seed", "6"]);
    assert_ne!(a.images, other.images);
    // DDIM in a few steps, with either guidance; classifier guidance finds the classifier the
    // config names.
    for args in [
        &["--steps", "5", "--class", "1"][..],
        &["--steps", "5", "--class", "1", "--cfg", "2"],
        &["--steps", "5", "--class", "1", "--classifier-scale", "2"],
        &["--sampler", "ddpm", "--variance", "posterior"],
    ] {
        assert_eq!(draw(&ddpm, args).images.len(), 1, "{args:?}");
    }
    let unguided = draw(&ddpm, &["--steps", "5", "--class", "1", "--seed", "2"]);
    let guided = draw(
        &ddpm,
        &[
            "--steps",
            "5",
            "--class",
            "1",
            "--seed",
            "2",
            "--classifier-scale",
            "5",
        ],
    );
    assert_ne!(unguided.images, guided.images, "the classifier steers");
    // --trace writes the run: every step's x_t and x̂₀, the last one the samples.
    let trace = root.join("run.json");
    let traced = draw(
        &ddpm,
        &[
            "--steps",
            "6",
            "--class",
            "2",
            "--classifier-scale",
            "1",
            "--count",
            "2",
            "--trace",
            trace.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let t = unmask::trajectory::images::ImageTrajectory::from_json(&text).unwrap();
    assert_eq!((t.steps.len(), t.stats.model_calls), (6, 6));
    assert!(t.model.classifier.is_some());
    let last = &t.steps[5];
    assert!(last.class_prob.as_ref().is_some_and(|p| p.len() == 2));
    for (image, stored) in traced.images.iter().zip(last.x.chunks(64)) {
        for (a, b) in image.iter().zip(stored) {
            let b = ((f64::from(*b) + 1.0) * 8.0).clamp(0.0, 16.0);
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }
    // Pictures: the samples as a PNG grid, the run as an APNG of six frames, an SVG.
    let (png, apng, svg) = (root.join("s.png"), root.join("r.png"), root.join("s.svg"));
    draw(
        &ddpm,
        &[
            "--steps",
            "6",
            "--count",
            "3",
            "--png",
            png.to_str().unwrap(),
            "--apng",
            apng.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
    );
    let read = |path: &Path| {
        let decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(path).unwrap()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        (
            info.width,
            info.height,
            info.animation_control().map_or(1, |a| a.num_frames),
        )
    };
    // Cells of 8 × 8 pixels drawn 8× with 2-pixel gaps: three in a row, one row.
    assert_eq!(read(&png), (2 + 3 * 66, 2 + 66, 1));
    assert_eq!(read(&apng), (2 + 2 * 66, 2 + 66, 6));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    // The text reader names the family instead of failing on a missing field.
    let err = unmask::Trajectory::from_json(&text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ddpm trajectory"), "{err}");
    // A damaged file is refused: a step with a pixel missing.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["steps"][3]["x0"].as_array_mut().unwrap().pop();
    let err = unmask::trajectory::images::ImageTrajectory::from_json(&v.to_string()).unwrap_err();
    assert!(err.to_string().contains("step 3"), "{err}");
    let unconditional = draw(&root.join("unconditional"), &["--steps", "5"]);
    assert_eq!(unconditional.classes, vec![None]);
    // Classifier guidance steers an unconditional model to the classifier's classes.
    let classifier = root.join("classifier");
    let steered = draw(
        &root.join("unconditional"),
        &[
            "--steps",
            "5",
            "--class",
            "9",
            "--classifier-scale",
            "3",
            "--classifier",
            classifier.to_str().unwrap(),
        ],
    );
    assert_eq!(steered.classes, vec![Some(9)]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn flags_and_values_a_ddpm_model_cannot_take_exit_2_with_the_reason() {
    let root = folders();
    let ddpm = root.join("ddpm");
    let plain = root.join("unconditional");
    let text = fixture_dir();
    let refusals: [(&Path, &[&str], &str); 12] = [
        (&ddpm, &["--prompt", "hello"], "--prompt"),
        (&ddpm, &["--top-p", "0.9"], "--top-p"),
        (&ddpm, &["--class", "10"], "class 10"),
        (&ddpm, &["--cfg", "1"], "--class"),
        (
            &ddpm,
            &["--class", "1", "--cfg", "1", "--classifier-scale", "1"],
            "one",
        ),
        (&ddpm, &["--sampler", "mdlm"], "ddpm or ddim"),
        (&ddpm, &["--sampler", "ddpm", "--steps", "5"], "--steps"),
        (&ddpm, &["--steps", "5", "--variance", "beta"], "--ddim-eta"),
        (&ddpm, &["--steps", "5000"], "steps"),
        (&plain, &["--class", "1", "--cfg", "2"], "class"),
        (
            &plain,
            &["--class", "1", "--classifier-scale", "2"],
            "--classifier",
        ),
        (&text, &["--prompt", "the", "--class", "1"], "ddpm family"),
    ];
    for (model, args, says) in refusals {
        let mut all = vec!["generate", "--model", model.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = unmask(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A classifier folder where a noise predictor belongs, and the reverse.
    let classifier = root.join("classifier");
    for (model, extra) in [
        (&classifier, vec![]),
        (
            &ddpm,
            vec![
                "--class",
                "1",
                "--classifier-scale",
                "1",
                "--classifier",
                plain.to_str().unwrap(),
            ],
        ),
    ] {
        let mut all = vec!["generate", "--model", model.to_str().unwrap()];
        all.extend(extra);
        let out = unmask(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("this folder holds a"), "{err}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn nan_weights_are_a_clear_failure_not_a_panic() {
    let root = folders();
    let dir = root.join("nan");
    let c = config(Role::Denoiser, 10, None);
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = c
        .layout()
        .iter()
        .map(|slot| {
            let n = slot.shape.iter().product();
            (slot.name.clone(), slot.shape.clone(), vec![f32::NAN; n])
        })
        .collect();
    let weights =
        unmask::model::load::write_safetensors_under(&tensors, "", safetensors::Dtype::F32)
            .unwrap();
    write_folder(&dir, &c, &weights);
    let out = unmask(&["generate", "--model", dir.to_str().unwrap(), "--steps", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("non-finite"), "{err}");
    // A wrong-sized image set in the weights (another image_size) is refused before any call.
    let mut bigger = config(Role::Denoiser, 10, None);
    bigger.image_size = 16;
    write_folder(
        &root.join("bigger"),
        &bigger,
        &random_patch_dit(&c, 1).unwrap(),
    );
    let out = unmask(&["generate", "--model", root.join("bigger").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("pos_embed"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}
