//! `unmask generate` on a model of the Gaussian diffusion family: DDPM or DDIM, unguided or
//! steered to `--class` by `--cfg` (classifier-free) or `--classifier-scale` (classifier
//! guidance), with a live view of the first image in block characters.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use unmask::backend;
use unmask::bundle::ImageBundle;
use unmask::model::patch_dit::{PatchDitClassifier, PatchDitNoise};
use unmask::network::{NoisePredictor, NoisyClassifier};
use unmask::sampler::gaussian::Variance;
use unmask::sampler::image::{Guidance, ImageRun, ImageSampler, ImageSettings, ImageStep};
use unmask::sampler::{Knob, KnobValue};
use unmask::train::image_quality::to_data_scale;
use unmask::trajectory::images::ImageTrajectory;

use crate::{CliError, GenerateArgs, SamplerArg, VarianceArg};

/// Pixel values of the digits' own scale, 0 (blank) to this (ink).
const DATA_MAX: f64 = unmask::corpus::digits::MAX_VALUE as f64;
/// Shades of the block-character view, blank to ink.
const SHADES: [&str; 5] = ["  ", "░░", "▒▒", "▓▓", "██"];

/// The text family's flags: given with an image model, each is refused by name.
fn text_flags(args: &GenerateArgs) -> Vec<&'static str> {
    [
        ("--prompt", args.prompt.is_some()),
        ("--gen-length", args.gen_length.is_some()),
        ("--block-length", args.block_length.is_some()),
        ("--remasking", args.remasking.is_some()),
        ("--temperature", args.temperature.is_some()),
        ("--top-k", args.top_k.is_some()),
        ("--top-p", args.top_p.is_some()),
        ("--threshold", args.threshold.is_some()),
        ("--first-hitting", args.first_hitting.is_some()),
        ("--no-cache", args.no_cache),
        ("--no-stop-at-eos", args.no_stop_at_eos),
        ("--attention", args.attention.is_some()),
        ("--clamp", args.clamp.is_some()),
        ("--control", args.control.is_some()),
        ("--control-scale", args.control_scale.is_some()),
        ("--fluency", args.fluency.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect()
}

/// Refuses the image flags on a text model.
pub fn refuse_image_flags(args: &GenerateArgs) -> Result<(), CliError> {
    let given = [
        ("--class", args.class.is_some()),
        ("--classifier", args.classifier.is_some()),
        ("--classifier-scale", args.classifier_scale.is_some()),
        ("--ddim-eta", args.ddim_eta.is_some()),
        ("--variance", args.variance.is_some()),
        ("--count", args.count.is_some()),
        ("--images", args.images.is_some()),
        ("--png", args.png.is_some()),
        ("--apng", args.apng.is_some()),
        ("--svg", args.svg.is_some()),
    ];
    match given.iter().find(|(_, g)| *g) {
        Some((flag, _)) => Err(CliError::Input(format!(
            "{flag} is a flag of the ddpm family; {} is a text model",
            args.model.display()
        ))),
        None => Ok(()),
    }
}

/// The run's settings from the flags: DDIM when `--steps` or `--ddim-eta` (or `--sampler ddim`)
/// asks for it, DDPM's whole chain otherwise; then every flag given, each through the knob table
/// (its range, and whether the chain reads it).
fn settings_of(args: &GenerateArgs) -> Result<ImageSettings, CliError> {
    let input = |m: String| CliError::Input(m);
    if args.cfg.is_some() && args.classifier_scale.is_some() {
        return Err(input(
            "--cfg and --classifier-scale are two kinds of guidance: give one (race them on the page)"
                .into(),
        ));
    }
    let sampler = match args.sampler {
        Some(SamplerArg::Ddim) => ImageSampler::Ddim,
        Some(SamplerArg::Ddpm) => ImageSampler::Ddpm,
        Some(other) => {
            return Err(input(format!(
                "--sampler {} writes text; {} is a ddpm-family model (ddpm or ddim)",
                other.name(),
                args.model.display()
            )));
        }
        None if args.steps.is_some() || args.ddim_eta.is_some() => ImageSampler::Ddim,
        None => ImageSampler::Ddpm,
    };
    match sampler {
        ImageSampler::Ddim if args.variance.is_some() => {
            return Err(input(
                "--variance chooses DDPM's σ; DDIM's is set by --ddim-eta".into(),
            ));
        }
        ImageSampler::Ddim if args.steps.is_none() => {
            return Err(input(
                "the ddim sampler needs --steps (e.g. 20, 50 or 100)".into(),
            ));
        }
        ImageSampler::Ddpm if args.steps.is_some() || args.ddim_eta.is_some() => {
            return Err(input(
                "the ddpm sampler walks all of the model's diffusion steps: drop --steps and --ddim-eta, or use --sampler ddim".into(),
            ));
        }
        _ => {}
    }
    let number = |x: f64| KnobValue::Number(x);
    let given = [
        (Knob::Steps, args.steps.map(|n| number(n as f64))),
        (Knob::Eta, args.ddim_eta.map(number)),
        (
            Knob::Variance,
            args.variance.map(|v| {
                KnobValue::Variance(match v {
                    VarianceArg::Beta => Variance::Beta,
                    VarianceArg::Posterior => Variance::Posterior,
                })
            }),
        ),
        (Knob::Class, args.class.map(|y| number(y as f64))),
        // Classifier-free guidance at w = 0 is the conditional model alone, as `cfg=0` is.
        (Knob::Cfg, args.cfg.map(number)),
        (Knob::ClassifierScale, args.classifier_scale.map(number)),
        (Knob::Count, args.count.map(|n| number(n as f64))),
        (Knob::Seed, Some(number(args.seed as f64))),
    ];
    let mut settings = ImageSettings::defaults(sampler);
    for (knob, value) in given {
        if let Some(value) = value {
            settings
                .set(knob, value)
                .map_err(|e| crate::settings_error(&e))?;
        }
    }
    Ok(settings)
}

/// The classifier folder: `--classifier`, else the one the model's config.json names (relative
/// to the model folder).
fn classifier_dir(args: &GenerateArgs, named: Option<&str>) -> Option<PathBuf> {
    args.classifier
        .clone()
        .or_else(|| named.map(|rel| args.model.join(rel)))
}

/// One image as block characters, two per pixel so that it looks square.
pub fn blocks(image: &[f64], side: usize) -> String {
    let mut out = String::new();
    for row in image.chunks(side) {
        for &v in row {
            let shade = ((v / DATA_MAX) * (SHADES.len() - 1) as f64).round() as usize;
            out.push_str(SHADES[shade.min(SHADES.len() - 1)]);
        }
        out.push('\n');
    }
    out
}

/// Draws x_t and x̂₀ of the first image side by side.
fn draw(step: &ImageStep, total: usize, side: usize) {
    let pixels = side * side;
    let x = to_data_scale(&step.x[..pixels], pixels).remove(0);
    let x0 = to_data_scale(&step.x0[..pixels], pixels).remove(0);
    let (left, right) = (blocks(&x, side), blocks(&x0, side));
    let mut out = format!(
        "\x1b[H\x1b[2Jstep {}/{}  t {}  noise {:.3}{}\n\n{:<w$}   x̂₀\n",
        step.index + 1,
        total,
        step.t,
        step.noise_level,
        step.class_prob
            .as_ref()
            .and_then(|p| p.first())
            .map(|p| format!("  p(class | x_t) {p:.3}"))
            .unwrap_or_default(),
        "x_t",
        w = 2 * side
    );
    for (l, r) in left.lines().zip(right.lines()) {
        out.push_str(&format!("{l}   {r}\n"));
    }
    let mut err = std::io::stderr();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

/// `{"images": [[…64 values…], …], "classes": [c or null, …]}`.
#[derive(serde::Serialize)]
pub(crate) struct ImagesFile {
    pub(crate) images: Vec<Vec<f64>>,
    pub(crate) classes: Vec<Option<usize>>,
}

fn open(dir: &Path, device: &burn::tensor::Device) -> Result<ImageBundle, CliError> {
    ImageBundle::from_dir(dir, device)
        .map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))
}

/// `unmask generate` on a ddpm-family folder.
pub fn generate(args: &GenerateArgs) -> Result<(), CliError> {
    let flags = text_flags(args);
    if !flags.is_empty() {
        return Err(CliError::Input(format!(
            "{} is a ddpm-family model (images): {} {} of the text family",
            args.model.display(),
            flags.join(", "),
            if flags.len() == 1 {
                "is a flag"
            } else {
                "are flags"
            }
        )));
    }
    let settings = settings_of(args)?;
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let bundle = open(&args.model, &device)?;
    let named = bundle.config.classifier.clone();
    let mut noise: PatchDitNoise = bundle
        .into_noise()
        .map_err(|e| CliError::Input(format!("{}: {e}", args.model.display())))?;
    let wants_classifier = matches!(settings.condition().guidance, Guidance::Classifier { .. })
        || args.classifier.is_some();
    let mut classifier: Option<PatchDitClassifier> = match classifier_dir(args, named.as_deref()) {
        Some(dir) if wants_classifier => {
            let c = open(&dir, &device)?
                .into_classifier()
                .map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
            Some(c)
        }
        _ => None,
    };
    let spec = noise.spec().clone();
    // Every setting is checked against the model here, before its first call.
    let mut run = ImageRun::new(
        &settings,
        &spec,
        classifier.as_ref().map(NoisyClassifier::classes),
    )
    .map_err(|e| CliError::Input(format!("{e}{}", hint(&e))))?;
    let live = !args.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let total = run.total_steps();
    let mut steps = Vec::with_capacity(total);
    while let Some(step) = pollster::block_on(run.step(&mut noise, classifier.as_mut()))? {
        if live {
            draw(&step, total, spec.side);
            std::thread::sleep(std::time::Duration::from_millis(args.delay_ms));
        }
        // Every step is kept for --trace and --apng only (a DDPM run of many images is
        // large); otherwise the last.
        if args.trace.is_none() && args.apng.is_none() {
            steps.clear();
        }
        steps.push(step);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(path) = &args.trace {
        let used = matches!(settings.condition().guidance, Guidance::Classifier { .. })
            .then(|| classifier_dir(args, named.as_deref()))
            .flatten()
            .map(|d| d.display().to_string());
        let name = args.model.display().to_string();
        let trajectory = ImageTrajectory::new(&name, &spec, used, settings.clone(), &steps);
        std::fs::write(path, trajectory.to_json())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let last = steps
        .last()
        .ok_or_else(|| CliError::Failed("the run took no step".into()))?;
    let images = to_data_scale(&last.x, spec.pixels());
    let condition = settings.condition();
    if let Some(path) = &args.images {
        let file = ImagesFile {
            classes: vec![condition.class; images.len()],
            images: images.clone(),
        };
        let json = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    write_pictures(args, &steps, spec.side)?;
    for (i, image) in images.iter().enumerate() {
        if images.len() > 1 {
            outln!("image {}", i + 1);
        }
        outln!("{}", blocks(image, spec.side).trim_end_matches('\n'));
    }
    if !args.quiet {
        eprintln!(
            "{} {} steps, {} model calls, {} image{} in {:.2}s: {:.1} steps/s on {}",
            settings.name(),
            total,
            run.model_calls(),
            images.len(),
            if images.len() == 1 { "" } else { "s" },
            elapsed,
            total as f64 / elapsed.max(1e-9),
            args.backend.name()
        );
    }
    Ok(())
}

/// Output pixels per image pixel in the pictures.
const PICTURE_SCALE: usize = 8;
/// Images per row of the PNG grid.
const GRID_COLUMNS: usize = 10;
/// Milliseconds per frame of the animation.
const FRAME_MS: u16 = 80;

/// --png, --apng and --svg.
fn write_pictures(args: &GenerateArgs, steps: &[ImageStep], side: usize) -> Result<(), CliError> {
    use unmask::export;
    let failed = |e: export::ExportError| CliError::Failed(e.to_string());
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes)
            .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
    };
    let Some(last) = steps.last() else {
        return Ok(());
    };
    let pixels = side * side;
    if let Some(path) = &args.png {
        let images: Vec<&[f32]> = last.x.chunks(pixels).collect();
        let picture = export::grid(&images, side, GRID_COLUMNS, PICTURE_SCALE).map_err(failed)?;
        write(path, &export::encode_png(&picture).map_err(failed)?)?;
    }
    if let Some(path) = &args.apng {
        let frames = export::run_frames(steps, side, PICTURE_SCALE).map_err(failed)?;
        write(
            path,
            &export::encode_apng(&frames, FRAME_MS).map_err(failed)?,
        )?;
    }
    if let Some(path) = &args.svg {
        let first = last.x.get(..pixels).unwrap_or_default();
        write(
            path,
            export::svg(first, side, PICTURE_SCALE)
                .map_err(failed)?
                .as_bytes(),
        )?;
    }
    Ok(())
}

/// What to do about a settings error, in flags.
fn hint(e: &unmask::sampler::SettingsError) -> &'static str {
    use unmask::sampler::SettingsError as E;
    match e {
        E::NoSuchClass { .. } => " (see --class)",
        E::GuidanceNeedsClass => " (add --class)",
        E::NoClassifier => " (add --classifier DIR)",
        E::UnconditionalModel => " (leave out --cfg, or use --classifier-scale)",
        _ => "",
    }
}

/// `unmask quality` on a ddpm-family folder.
pub fn quality(args: &crate::train::QualityArgs) -> crate::CliResult<()> {
    use unmask::corpus::Split;
    use unmask::train::image_quality::{self, PER_CLASS};
    if args.sampler.is_some() {
        return Err(
            "a digits model is scored with DDIM: leave out --sampler (--steps sets its steps)"
                .into(),
        );
    }
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let fail = |dir: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", dir.display());
    let bundle = ImageBundle::from_dir(&args.model, &device).map_err(|e| fail(&args.model, &e))?;
    let named = bundle.config.classifier.clone();
    let conditional = bundle.config.classes > 0;
    let mut noise = bundle.into_noise().map_err(|e| fail(&args.model, &e))?;
    let dir = args
        .classifier
        .clone()
        .or_else(|| named.map(|rel| args.model.join(rel)));
    let mut classifier = match &dir {
        Some(dir) => Some(
            ImageBundle::from_dir(dir, &device)
                .and_then(ImageBundle::into_classifier)
                .map_err(|e| fail(dir, &e))?,
        ),
        None => None,
    };
    let mut guidances = Vec::new();
    if conditional {
        guidances.extend(
            args.cfg_scales
                .iter()
                .map(|&scale| Guidance::Free { scale }),
        );
    }
    if classifier.is_some() {
        guidances.extend(
            args.classifier_scales
                .iter()
                .map(|&scale| Guidance::Classifier { scale }),
        );
    }
    if guidances.is_empty() {
        return Err(format!(
            "{} is unconditional and names no classifier: nothing steers it to a class (add --classifier DIR)",
            args.model.display()
        ));
    }
    let read =
        |split| unmask::corpus::digits::read_digits(&args.digits, split).map_err(|e| e.to_string());
    let (train, valid) = (read(Split::Train)?, read(Split::Valid)?);
    let started = Instant::now();
    let report = pollster::block_on(image_quality::check(
        &mut noise,
        classifier.as_mut(),
        &guidances,
        args.steps.unwrap_or(image_quality::DEFAULT_STEPS),
        &train,
        &valid,
    ))
    .map_err(|e| e.to_string())?;
    outln!(
        "{} (DDIM {} steps, {} samples of each class per setting, {:.1}s):",
        args.model.display(),
        report.steps,
        PER_CLASS,
        started.elapsed().as_secs_f64()
    );
    outln!("| guidance | scale | accuracy | nearest training image |");
    outln!("|---|---|---|---|");
    for s in &report.scores {
        let (kind, scale) = match s.guidance {
            Guidance::Free { scale } => ("classifier-free", scale),
            Guidance::Classifier { scale } => ("classifier", scale),
            Guidance::None => ("none", 0.0),
        };
        outln!(
            "| {kind} | {scale} | {} |",
            scored(
                s.accuracy,
                s.nearest_train_distance,
                report.validation_nearest_train_distance
            )
        );
    }
    outln!(
        "{}",
        validation_line(
            report.validation_accuracy,
            report.validation_nearest_train_distance
        )
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// `unmask inspect` on a ddpm-family folder.
pub fn inspect(dir: &Path) -> crate::CliResult<()> {
    let device = backend::init(unmask::backend::BackendKind::Cpu).map_err(|e| e.to_string())?;
    let bundle =
        ImageBundle::from_dir(dir, &device).map_err(|e| format!("{}: {e}", dir.display()))?;
    let c = &bundle.config;
    outln!("model       {}", dir.display());
    outln!("family      ddpm ({:?})", c.role);
    outln!(
        "images      {0}×{0} pixels in {1}×{1} patches: {2} tokens",
        c.image_size,
        c.patch_size,
        c.tokens()
    );
    outln!(
        "layers      {} blocks, hidden {}, {} heads, cond {}",
        c.n_blocks,
        c.hidden_dim,
        c.n_heads,
        c.cond_dim
    );
    outln!(
        "parameters  {} ({:.2}M)",
        c.parameter_count(),
        c.parameter_count() as f64 / 1e6
    );
    outln!(
        "classes     {}{}",
        c.classes,
        if c.conditional() {
            " and the null class"
        } else {
            ""
        }
    );
    outln!(
        "diffusion   T = {}, {:?} β",
        c.diffusion_steps,
        c.beta_schedule
    );
    if let Some(classifier) = &c.classifier {
        outln!("classifier  {classifier}");
    }
    Ok(())
}

/// A quality table's cells for samples the clean classifier read right `accuracy` of the time,
/// `nearest` from the training set on average, against the validation digits' `validation`.
pub(crate) fn scored(accuracy: f64, nearest: f64, validation: f64) -> String {
    format!(
        "{:.1}% | {nearest:.2} ({:.2}× validation)",
        100.0 * accuracy,
        nearest / validation.max(1e-9)
    )
}

/// The quality check's line on the validation digits themselves: the yardstick of the table.
pub(crate) fn validation_line(accuracy: f64, nearest: f64) -> String {
    format!(
        "validation split: the clean classifier's accuracy {:.1}%, nearest training image {nearest:.2}",
        100.0 * accuracy
    )
}
