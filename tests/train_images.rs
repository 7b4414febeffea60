//! Training the digits family: both objectives lower their loss in a few steps, a run resumes
//! exactly, and an exported folder loads and draws.

use std::path::Path;

use unmask::backend::{self, BackendKind};
use unmask::bundle::ImageBundle;
use unmask::corpus::Split;
use unmask::corpus::digits::{Digit, read_digits};
use unmask::model::patch_dit::{PatchDitClassifier, PatchDitConfig, Role};
use unmask::sampler::image::{Condition, ImageRun, ImageSettings};
use unmask::train::Checkpointed;
use unmask::train::images::{
    IMAGE_RUN_FORMAT, IMAGE_RUN_VERSION, ImageObjective, ImageRunState, ImageTrainConfig,
    ImageTrainer, export_image_model, load_image_run, save_image_run,
};
use unmask::train::{Recipe, Start};

fn digits(split: Split) -> Vec<Digit> {
    read_digits(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits"),
        split,
    )
    .unwrap()
}

fn model(role: Role) -> PatchDitConfig {
    PatchDitConfig {
        diffusion_steps: 100,
        ..PatchDitConfig::digits(role, 32, 2, 2)
    }
}

fn recipe(objective: ImageObjective, steps: usize) -> ImageTrainConfig {
    ImageTrainConfig {
        objective,
        recipe: Recipe {
            batch_size: 32,
            lr: 3e-3,
            warmup_steps: 5,
            max_steps: steps,
            ema: 0.0,
            seed: 4,
            ..Recipe::default()
        },
        val_every: steps,
    }
}

fn trainer(objective: ImageObjective, steps: usize, start: Start<'_>) -> ImageTrainer {
    let device = backend::init(BackendKind::Cpu).unwrap();
    ImageTrainer::new(
        recipe(objective, steps),
        model(objective.role()),
        digits(Split::Train),
        digits(Split::Valid),
        &device,
        start,
    )
    .unwrap()
}

const DDPM: ImageObjective = ImageObjective::Ddpm { label_dropout: 0.2 };

#[test]
fn a_few_steps_lower_the_loss_of_both_objectives() {
    for (objective, steps) in [(DDPM, 40), (ImageObjective::Classifier, 150)] {
        let mut t = trainer(objective, steps, Start::Fresh);
        let before = t.evaluate().unwrap();
        while !t.is_done() {
            t.train_step().unwrap();
        }
        let after = t.evaluate().unwrap();
        assert!(
            after.loss < 0.9 * before.loss,
            "{}: {} → {}",
            objective.name(),
            before.loss,
            after.loss
        );
        if objective == ImageObjective::Classifier {
            // Ten classes start at chance: ln 10 nats, about a tenth right.
            assert!((before.loss - 10f64.ln()).abs() < 0.1, "{}", before.loss);
            assert!(after.accuracy.unwrap() > before.accuracy.unwrap());
        } else {
            // adaLN-Zero: the untrained predictor says ε = 0, so its error is ε's variance, 1.
            assert!((before.loss - 1.0).abs() < 0.05, "{}", before.loss);
        }
    }
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let mut whole = trainer(DDPM, 6, Start::Fresh);
    while !whole.is_done() {
        whole.train_step().unwrap();
    }
    let mut first = trainer(DDPM, 6, Start::Fresh);
    for _ in 0..3 {
        first.train_step().unwrap();
    }
    let dir = std::env::temp_dir().join(format!("unmask-image-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = ImageRunState {
        format: IMAGE_RUN_FORMAT.into(),
        version: IMAGE_RUN_VERSION,
        train: first.config.clone(),
        model: first.model_config.clone(),
        step: first.step(),
        images_seen: 96,
        train_seconds: 0.0,
        backends: vec![],
        history: vec![],
        commands: vec![],
        data: "data/digits".into(),
    };
    save_image_run(&dir, &first, &state).unwrap();
    let (saved, [weights, ema, optimizer]) = load_image_run(&dir).unwrap().unwrap();
    assert_eq!(saved, state);
    let mut second = trainer(
        DDPM,
        6,
        Start::From {
            weights: &weights,
            ema: &ema,
            step: saved.step,
        },
    );
    second.load_optimizer(optimizer).unwrap();
    while !second.is_done() {
        second.train_step().unwrap();
    }
    assert_eq!(second.weights().unwrap(), whole.weights().unwrap());

    // The exported folder loads as a noise predictor and draws images of the digits' size.
    let out = dir.join("export");
    let evaluation = second.evaluate().unwrap();
    export_image_model(&out, &second, &state, safetensors::Dtype::F16, evaluation).unwrap();
    let device = backend::init(BackendKind::Cpu).unwrap();
    let mut noise = ImageBundle::from_dir(&out, &device)
        .unwrap()
        .into_noise()
        .unwrap();
    let spec = unmask::network::NoisePredictor::spec(&noise).clone();
    let settings = ImageSettings::Ddim {
        steps: 5,
        eta: 0.0,
        condition: Condition {
            class: Some(3),
            count: 2,
            ..Condition::default()
        },
    };
    let mut run = ImageRun::new(&settings, &spec, None).unwrap();
    let mut steps = 0;
    while let Some(step) =
        pollster::block_on(run.step(&mut noise, None::<&mut PatchDitClassifier>)).unwrap()
    {
        assert_eq!(step.x.len(), 2 * 64);
        steps += 1;
    }
    assert_eq!(steps, 5);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recipe_that_does_not_fit_the_network_is_refused() {
    let device = backend::init(BackendKind::Cpu).unwrap();
    let attempt = |objective: ImageObjective, role: Role| {
        ImageTrainer::new(
            recipe(objective, 4),
            model(role),
            digits(Split::Train),
            digits(Split::Valid),
            &device,
            Start::Fresh,
        )
        .err()
        .map(|e| e.to_string())
    };
    let wrong_role = attempt(ImageObjective::Classifier, Role::Denoiser).unwrap();
    assert!(wrong_role.contains("classifier"), "{wrong_role}");
    let dropout = attempt(ImageObjective::Ddpm { label_dropout: 1.5 }, Role::Denoiser).unwrap();
    assert!(dropout.contains("label_dropout"), "{dropout}");
    assert!(attempt(DDPM, Role::Denoiser).is_none());
}
