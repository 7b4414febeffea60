//! The models the page ships (`www/models/default/{mdlm,bd3,ar,forcing,ddpm,ddpm-classifier}`, and
//! `diffusion-lm` and `unified`, which the CLI runs): each loads into the
//! architecture, generates with its own sampler, fits the page's size budget, and records the
//! `unmask train` commands that made it.

mod common;

use std::path::PathBuf;

use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, WEIGHTS_FILE};
use unmask::config::Attention;
use unmask::engine::Generation;
use unmask::sampler::{Knob, KnobValue, Settings};
use unmask::train::checkpoint::{Provenance, TRAINING_FILE};

/// The page's budget for one model folder.
const MAX_FOLDER_BYTES: u64 = 25 * 1024 * 1024;

fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("www/models/default")
        .join(name)
}

/// Checks that folder `name` fits the page's budget.
fn fits(name: &str) {
    let dir = folder(name);
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size <= MAX_FOLDER_BYTES, "{name} is {size} bytes");
}

/// The project's budget for everything under `www/models/`.
const MAX_MODELS_BYTES: u64 = 40 * 1000 * 1000;

#[test]
fn every_shipped_model_together_fits_the_budget() {
    fn size(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let e = e.unwrap();
                let meta = e.metadata().unwrap();
                if meta.is_dir() {
                    size(&e.path())
                } else {
                    meta.len()
                }
            })
            .sum()
    }
    let total = size(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/models"));
    assert!(total <= MAX_MODELS_BYTES, "www/models holds {total} bytes");
}

fn check(name: &str, attention: Attention) {
    let dir = folder(name);
    fits(name);
    let weights = std::fs::metadata(dir.join(WEIGHTS_FILE)).unwrap().len();
    assert!(
        weights > 1024 * 1024,
        "{name}'s weights are only {weights} bytes"
    );

    let provenance: Provenance =
        serde_json::from_slice(&std::fs::read(dir.join(TRAINING_FILE)).unwrap()).unwrap();
    assert!(provenance.run.step > 0, "{name} was never trained");
    assert!(
        provenance
            .run
            .commands
            .iter()
            .all(|c| c.contains(" train ")),
        "{name}: {:?}",
        provenance.run.commands
    );
    assert!(provenance.final_validation.perplexity.is_finite());

    let device = backend::init(BackendKind::Cpu).unwrap();
    let mut bundle = Bundle::from_dir(&dir, &device).unwrap();
    assert_eq!(bundle.config.attention(), attention, "{name}");
    assert_eq!(
        bundle.codec.mask_id(),
        3,
        "[MASK] is id 3 of the corpus tokenizer"
    );
    let spec = bundle.model_spec();
    let mut settings = Settings::for_tokens(bundle.config.own_sampler(), 16);
    if settings.has(Knob::StopAtEos) {
        settings
            .set(Knob::StopAtEos, KnobValue::Flag(false))
            .unwrap();
    }
    let mut run = Generation::new(settings, "It is a truth", &bundle.codec, &spec).unwrap();
    pollster::block_on(run.run(&mut bundle.model, |_| {})).unwrap();
    let canvas = run.sampler().canvas();
    assert!(
        canvas.tokens().iter().all(|&t| t != spec.mask_id),
        "{name} left masks"
    );
    let text = bundle.codec.decode(canvas.tokens());
    assert!(
        text.starts_with("It is a truth") && text.len() > "It is a truth".len(),
        "{name}: {text:?}"
    );
}

#[test]
fn the_shipped_mdlm_model_loads_and_generates() {
    check("mdlm", Attention::Bidirectional);
}

#[test]
fn the_shipped_bd3_model_loads_and_generates() {
    check("bd3", Attention::BlockCausal { block_size: 4 });
}

#[test]
fn the_shipped_ar_model_loads_and_generates() {
    check("ar", Attention::Causal);
}

#[test]
fn the_shipped_forcing_model_loads_and_generates() {
    check("forcing", Attention::Causal);
}

#[test]
fn the_shipped_forcing_model_s_clean_prefix_cache_gives_the_whole_window_s_rows() {
    use unmask::sampler::forcing::level_sigma;
    use unmask::sampler::{Denoiser, SamplerKind};
    let device = backend::init(BackendKind::Cpu).unwrap();
    let mut bundle = Bundle::from_dir(&folder("forcing"), &device).unwrap();
    let mask = bundle.model_spec().mask_id;
    // Twelve clean tokens, then four at falling levels (the last two masked), as a pyramid's
    // window stands mid-run.
    let mut tokens: Vec<u32> = (0..16).map(|i| 40 + 17 * i).collect();
    tokens[14] = mask;
    tokens[15] = mask;
    let levels = 8;
    let sigma: Vec<f32> = [0; 12]
        .into_iter()
        .chain([2, 4, 6, 8])
        .map(|k| level_sigma(k, levels))
        .collect();
    let whole = pollster::block_on(bundle.model.predict_levels(&tokens, 12..16, &sigma)).unwrap();
    let whole = pollster::block_on(whole.to_host()).unwrap();
    // The prefix joins the cache over two calls (as a run's prefix grows), then the rest runs.
    bundle.model.reset_cache();
    pollster::block_on(bundle.model.predict_levels_cached(
        &tokens[..5],
        &tokens[5..16],
        7..11,
        &sigma[5..],
    ))
    .unwrap();
    let cached = pollster::block_on(bundle.model.predict_levels_cached(
        &tokens[5..12],
        &tokens[12..],
        0..4,
        &sigma[12..],
    ))
    .unwrap();
    let cached = pollster::block_on(cached.to_host()).unwrap();
    let diff = common::max_abs_diff(whole.as_slice(), cached.as_slice());
    assert!(diff < 1e-4, "max |Δ| = {diff}");

    // A whole run: the same text for a seed with the cache and without.
    let generate = |bundle: &mut Bundle, cache: bool| {
        let mut settings = Settings::for_tokens(SamplerKind::Forcing, 24);
        settings.set(Knob::Cache, KnobValue::Flag(cache)).unwrap();
        settings.draw_mut().seed = 3;
        let spec = bundle.model_spec();
        let mut run = Generation::new(settings, "It is a truth", &bundle.codec, &spec).unwrap();
        pollster::block_on(run.run(&mut bundle.model, |_| {})).unwrap();
        run.sampler().canvas().tokens().to_vec()
    };
    assert_eq!(generate(&mut bundle, true), generate(&mut bundle, false));
}

#[test]
fn the_shipped_unified_model_draws_a_digit_and_captions_one() {
    use unmask::bundle::UnifiedBundle;
    use unmask::corpus::digits::read_digits;
    use unmask::sampler::maskgit::MaskGitSettings;
    use unmask::train::unified::UnifiedProvenance;
    use unmask::unified::{CaptionSettings, Layout, UnifiedRun, UnifiedTask};
    let dir = folder("unified");
    fits("unified");
    let provenance: UnifiedProvenance =
        serde_json::from_slice(&std::fs::read(dir.join(TRAINING_FILE)).unwrap()).unwrap();
    assert!(provenance.run.step > 0);
    assert_eq!(provenance.dtype, "f16");
    assert!(
        provenance
            .run
            .commands
            .iter()
            .all(|c| c.contains(" train "))
    );
    let device = backend::init(BackendKind::Cpu).unwrap();
    let mut b = UnifiedBundle::from_dir(&dir, &device).unwrap();
    let spec = unmask::sampler::Denoiser::spec(&b.model).clone();
    let mut finish = |task: &UnifiedTask| {
        let mut run = UnifiedRun::new(task, &b.layout, &b.codec, &spec).unwrap();
        while pollster::block_on(run.next(&mut b.model))
            .unwrap()
            .is_some()
        {}
        run
    };
    let drawn = finish(&UnifiedTask::T2i {
        caption: "a handwritten seven".into(),
        settings: MaskGitSettings::default(),
    });
    assert!(drawn.image().is_some(), "the image was left unfinished");
    // A validation digit's caption is text, closed by <eos> before the slot's end.
    let digit = read_digits(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/digits"),
        unmask::corpus::Split::Valid,
    )
    .unwrap()
    .remove(0);
    let captioned = finish(&UnifiedTask::Mmu {
        image: digit.pixels.to_vec(),
        settings: CaptionSettings::default(),
    });
    let answer = captioned.caption_tokens();
    assert!(!answer.is_empty() && answer.len() < Layout::MMU_ANSWER.len());
    assert!(answer.iter().all(|&t| t < b.layout.text_vocab));
}

/// The shipped digits folders: the noise predictor and the classifier it names.
mod digits {
    use super::*;
    use unmask::bundle::ImageBundle;
    use unmask::corpus::Split;
    use unmask::corpus::digits::{CLASSES, read_digits};
    use unmask::model::patch_dit::{PatchDitClassifier, PatchDitNoise};
    use unmask::sampler::image::Guidance;
    use unmask::train::image_quality::{DigitClassifier, samples};
    use unmask::train::images::ImageProvenance;

    /// DDIM steps of the samples here (the quality check uses 100).
    const STEPS: usize = 25;

    fn open() -> (PatchDitNoise, PatchDitClassifier) {
        let device = backend::init(BackendKind::Cpu).unwrap();
        let ddpm = ImageBundle::from_dir(&folder("ddpm"), &device).unwrap();
        let named = ddpm
            .config
            .classifier
            .clone()
            .expect("ddpm names its classifier");
        let classifier = ImageBundle::from_dir(&folder("ddpm").join(named), &device)
            .unwrap()
            .into_classifier()
            .unwrap();
        (ddpm.into_noise().unwrap(), classifier)
    }

    /// The clean classifier's mean probability of the class asked for, over a few samples of
    /// every class with `guidance`, same seeds whatever the guidance.
    fn target_probability(guidance: Guidance) -> f64 {
        let (mut noise, mut classifier) = open();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/digits");
        let judge = DigitClassifier::train(&read_digits(&dir, Split::Train).unwrap());
        let mut total = 0.0;
        for class in 0..CLASSES {
            let images = pollster::block_on(samples(
                &mut noise,
                Some(&mut classifier),
                class,
                guidance,
                STEPS,
            ))
            .unwrap();
            total += images
                .iter()
                .map(|i| judge.probability(i, class))
                .sum::<f64>()
                / images.len() as f64;
        }
        total / CLASSES as f64
    }

    #[test]
    fn the_shipped_digits_folders_load_record_their_training_and_fit_the_budget() {
        for name in ["ddpm", "ddpm-classifier"] {
            let dir = folder(name);
            fits(name);
            let provenance: ImageProvenance =
                serde_json::from_slice(&std::fs::read(dir.join(TRAINING_FILE)).unwrap()).unwrap();
            assert!(provenance.run.step > 0, "{name} was never trained");
            assert!(
                provenance
                    .run
                    .commands
                    .iter()
                    .all(|c| c.contains(" train "))
            );
            assert_eq!(provenance.dtype, "f16");
        }
        open();
    }

    #[test]
    fn classifier_free_guidance_draws_the_class_better_than_the_conditional_model_alone() {
        let alone = target_probability(Guidance::Free { scale: 0.0 });
        let guided = target_probability(Guidance::Free { scale: 3.0 });
        assert!(guided > alone, "w = 3: {guided}, w = 0: {alone}");
        assert!(
            alone > 0.5,
            "the conditional model reads its class: {alone}"
        );
    }

    #[test]
    fn classifier_guidance_steers_the_unconditional_model_to_the_class() {
        let unguided = target_probability(Guidance::Classifier { scale: 0.0 });
        let guided = target_probability(Guidance::Classifier { scale: 3.0 });
        assert!(guided > unguided, "s = 3: {guided}, s = 0: {unguided}");
        // Unguided, the unconditional model draws any digit: about one in ten is the class.
        assert!(unguided < 0.3, "s = 0: {unguided}");
    }
}

#[test]
fn the_shipped_diffusion_lm_model_records_its_training_and_writes_words() {
    use unmask::bundle::VectorBundle;
    use unmask::sampler::diffusion_lm::{VectorRun, VectorSettings};
    use unmask::train::quality::{vocabulary, words};
    use unmask::train::vectors::VectorProvenance;
    let name = "diffusion-lm";
    let dir = folder(name);
    fits(name);
    let provenance: VectorProvenance =
        serde_json::from_slice(&std::fs::read(dir.join(TRAINING_FILE)).unwrap()).unwrap();
    assert!(provenance.run.step > 0, "{name} was never trained");
    assert!(
        provenance
            .run
            .commands
            .iter()
            .all(|c| c.contains(" train "))
    );
    assert_eq!(provenance.dtype, "f16");
    let device = backend::init(BackendKind::Cpu).unwrap();
    let mut bundle = VectorBundle::from_dir(&dir, &device).unwrap();
    let prompt = bundle.codec.encode("It is a truth").unwrap();
    let settings = VectorSettings {
        steps: 50,
        seed: 1,
        ..VectorSettings::defaults(bundle.config.model_length - prompt.len())
    };
    let mut run = VectorRun::new(&settings, &prompt, &bundle.config.vector_spec()).unwrap();
    let mut last = None;
    while let Some(step) = pollster::block_on(run.step(&mut bundle.denoiser)).unwrap() {
        last = Some(step);
    }
    let text = bundle.codec.decode(&last.unwrap().ids);
    assert!(text.starts_with("It is a truth"), "{text}");
    // Most of what it writes are words of the corpus (the README reports the share).
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/corpus");
    let docs = unmask::corpus::read_documents(&corpus, unmask::corpus::Split::Valid).unwrap();
    let known = vocabulary(&docs);
    let written = words(&text);
    let share = written.iter().filter(|w| known.contains(*w)).count() as f64 / written.len() as f64;
    assert!(written.len() >= 8 && share > 0.5, "{share}: {text}");
}

#[test]
fn the_shipped_control_classifier_steers_the_shipped_diffusion_lm_model() {
    use unmask::bundle::VectorBundle;
    use unmask::model::diffusion_lm::{DiffusionLmClassifier, DiffusionLmConfig};
    use unmask::sampler::diffusion_lm::{Control, VectorRun, VectorSettings};
    use unmask::train::vectors::VectorProvenance;
    let name = "diffusion-lm-classifier";
    let dir = folder(name);
    fits(name);
    let provenance: VectorProvenance =
        serde_json::from_slice(&std::fs::read(dir.join(TRAINING_FILE)).unwrap()).unwrap();
    assert!(provenance.run.step > 0, "{name} was never trained");
    assert_eq!(provenance.dtype, "f16");
    // It read the shipped denoiser's word vectors, which name it back.
    assert_eq!(
        provenance.run.denoiser.as_deref(),
        Some("www/models/default/diffusion-lm")
    );
    let device = backend::init(BackendKind::Cpu).unwrap();
    let mut bundle = VectorBundle::from_dir(&folder("diffusion-lm"), &device).unwrap();
    let named = bundle.config.classifier.clone().unwrap();
    assert_eq!(
        folder("diffusion-lm").join(&named).canonicalize().unwrap(),
        dir.canonicalize().unwrap()
    );
    let config =
        DiffusionLmConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let weights = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
    let mut classifier =
        DiffusionLmClassifier::load(&config, &weights, &bundle.config, &device).unwrap();
    assert_eq!(classifier.labels(), ["austen", "bible"]);
    // Control raises the classifier's probability of each attribute against watching alone,
    // on the same seeds.
    let spec = bundle.config.vector_spec();
    let mut mean_probability = |target: &str, scale: f64| {
        let mut sum = 0.0;
        for seed in 0..3 {
            let settings = VectorSettings {
                steps: 60,
                seed,
                control: Some(Control {
                    scale,
                    ..Control::toward(target)
                }),
                ..VectorSettings::defaults(spec.model_length)
            };
            let mut run = VectorRun::new(&settings, &[], &spec).unwrap();
            let mut last = None;
            while let Some(step) =
                pollster::block_on(run.step_controlled(&mut bundle.denoiser, &mut classifier))
                    .unwrap()
            {
                last = Some(step);
            }
            sum += last.unwrap().target_probability.unwrap();
        }
        sum / 3.0
    };
    for target in ["austen", "bible"] {
        let watched = mean_probability(target, 0.0);
        let steered = mean_probability(target, 3.0);
        assert!(steered > watched, "{target}: {watched} → {steered}");
    }
}
