//! The text + image family on the command line (see `unmask::unified`): `unmask train
//! --objective unified` on the digits and the corpus, and `unmask generate --task t2i|mmu`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use unmask::backend;
use unmask::bundle::{TOKENIZER_FILE, UnifiedBundle};
use unmask::corpus::Split;
use unmask::corpus::digits;
use unmask::sampler::maskgit::MaskGitSettings;
use unmask::text::TextCodec;
use unmask::train::Checkpointed;
use unmask::train::Start;
use unmask::train::checkpoint::{SavedRun, load_run, run_format};
use unmask::train::objective::Shape;
use unmask::train::unified::{
    UNIFIED_RUN_FORMAT, UNIFIED_RUN_VERSION, UnifiedData, UnifiedEvaluation, UnifiedHistoryEntry,
    UnifiedProvenance, UnifiedRunState, UnifiedStepReport, UnifiedTrainConfig, UnifiedTrainer,
    encode_captions, export_unified_model, save_unified_run,
};
use unmask::trajectory::unified::UnifiedTrajectory;
use unmask::unified::{
    CaptionSettings, Layout, UnifiedError, UnifiedRun, UnifiedTask, extend_tokenizer,
    image_from_values,
};

use super::images::blocks;
use super::progress::{Plan, Session, speed_record, step_line, train_loop};
use super::train::TrainArgs;
use crate::{CliError, CliResult, GenerateArgs, TaskArg};

/// Architecture defaults of a new unified run: the default text models' shape.
const DEFAULT_HIDDEN_DIM: usize = 128;
const DEFAULT_N_BLOCKS: usize = 4;
const DEFAULT_N_HEADS: usize = 4;
const DEFAULT_COND_DIM: usize = 64;
/// Validation every this many steps unless --val-every says otherwise.
const DEFAULT_VAL_EVERY: usize = 250;

/// Whether `dir` holds a unified run.
pub fn holds_run(dir: &Path) -> bool {
    run_format(dir).as_deref() == Some(UNIFIED_RUN_FORMAT)
}

fn new_run(args: &TrainArgs, vocab_size: usize) -> CliResult<UnifiedRunState> {
    let refused = [
        ("--block-size", args.block_size.is_some()),
        ("--model-length", args.model_length.is_some()),
        ("--val-windows", args.val_windows.is_some()),
        ("--label-dropout", args.label_dropout.is_some()),
        ("--unconditional", args.unconditional),
        ("--patch-size", args.patch_size.is_some()),
        ("--diffusion-steps", args.diffusion_steps.is_some()),
        ("--beta-schedule", args.beta_schedule.is_some()),
        ("--classifier", args.classifier.is_some()),
        ("--embed-dim", args.embed_dim.is_some()),
        ("--denoiser", args.denoiser.is_some()),
        ("--forcing-sorted", args.forcing_sorted.is_some()),
    ];
    if let Some((flag, _)) = refused.iter().find(|(_, given)| *given) {
        return Err(format!("{flag} is not a flag of --objective unified"));
    }
    let mut train = UnifiedTrainConfig::new(args.recipe());
    train.batch_mmu = args.batch_mmu.unwrap_or(train.batch_mmu);
    train.batch_lm = args.batch_lm.unwrap_or(train.batch_lm);
    train.val_every = args.val_every.unwrap_or(DEFAULT_VAL_EVERY);
    train.validate().map_err(|e| e.to_string())?;
    let model = UnifiedTrainConfig::model_config(
        vocab_size,
        Shape {
            model_length: unmask::unified::SEQUENCE_LEN,
            hidden_dim: args.hidden_dim.unwrap_or(DEFAULT_HIDDEN_DIM),
            cond_dim: args.cond_dim.unwrap_or(DEFAULT_COND_DIM),
            n_blocks: args.n_blocks.unwrap_or(DEFAULT_N_BLOCKS),
            n_heads: args.n_heads.unwrap_or(DEFAULT_N_HEADS),
        },
    );
    model.validate().map_err(|e| e.to_string())?;
    let manifest = digits::read_manifest(&args.digits).map_err(|e| e.to_string())?;
    Ok(UnifiedRunState {
        format: UNIFIED_RUN_FORMAT.into(),
        version: UNIFIED_RUN_VERSION,
        train,
        model,
        step: 0,
        sequences_seen: 0,
        train_seconds: 0.0,
        backends: Vec::new(),
        history: Vec::new(),
        commands: Vec::new(),
        data: format!(
            "digits {} (training split sha256 {}); corpus {}",
            args.digits.display(),
            manifest.sha256[0],
            args.corpus.display()
        ),
    })
}

/// A new run on the weights of the exported unified folder `--warm-start` (its EMA weights as
/// both the weights and their average, a fresh optimizer, step 0): its architecture, tokenizer
/// and the commands that made it, this command's recipe.
fn warm_start(args: &TrainArgs) -> CliResult<(UnifiedRunState, Vec<u8>, Vec<u8>)> {
    let folder = args.warm_start.as_deref().ok_or("no --warm-start folder")?;
    if let Some(flag) = [
        ("--hidden-dim", args.hidden_dim.is_some()),
        ("--n-blocks", args.n_blocks.is_some()),
        ("--n-heads", args.n_heads.is_some()),
        ("--cond-dim", args.cond_dim.is_some()),
    ]
    .iter()
    .find_map(|(flag, given)| given.then_some(flag))
    {
        return Err(format!(
            "{flag}: a warm start keeps the architecture of {}",
            folder.display()
        ));
    }
    let read = |name: &str| {
        let path = folder.join(name);
        std::fs::read(&path).map_err(|e| {
            format!(
                "{}: {e}; --warm-start takes a folder exported by `unmask train --objective unified --out`",
                path.display()
            )
        })
    };
    let training = folder.join(unmask::train::checkpoint::TRAINING_FILE);
    let provenance: UnifiedProvenance =
        serde_json::from_slice(&read(unmask::train::checkpoint::TRAINING_FILE)?).map_err(|e| {
            format!(
                "{}: {e}; not a text + image model's record",
                training.display()
            )
        })?;
    let tokenizer = read(TOKENIZER_FILE)?;
    let vocab_size = TextCodec::vocab_size_of(&tokenizer).map_err(|e| e.to_string())?;
    let mut state = new_run(args, vocab_size)?;
    state.model = provenance.run.model;
    // The commands that made the weights it starts from come first in its record.
    state.commands = provenance.run.commands;
    Ok((state, tokenizer, read(unmask::bundle::WEIGHTS_FILE)?))
}

/// `unmask train --objective unified`, new, resumed or warm-started.
pub fn train(args: TrainArgs) -> CliResult<()> {
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let saved: Option<SavedRun<UnifiedRunState>> =
        load_run(&args.run, true).map_err(|e| e.to_string())?;
    let resuming = saved.is_some();
    let (mut state, tokenizer, tensors, optimizer) = match saved {
        Some(_) if args.warm_start.is_some() => {
            return Err(format!(
                "{} already holds a run: resume it without --warm-start, or choose a new --run directory",
                args.run.display()
            ));
        }
        Some(saved) => {
            let mut state = saved.state;
            args.resume(&mut state.train.recipe)?;
            let tokenizer = saved
                .tokenizer
                .ok_or("the run directory has no tokenizer.json")?;
            let [weights, ema, optimizer] = saved.tensors;
            (state, tokenizer, Some([weights, ema]), Some(optimizer))
        }
        None if args.warm_start.is_some() => {
            let (state, tokenizer, weights) = warm_start(&args)?;
            (state, tokenizer, Some([weights.clone(), weights]), None)
        }
        None => {
            let path = args.corpus.join(TOKENIZER_FILE);
            let corpus_tokenizer = std::fs::read(&path).map_err(|e| {
                format!(
                    "{}: {e}; prepare the corpus first with `unmask prepare`",
                    path.display()
                )
            })?;
            let tokenizer = extend_tokenizer(&corpus_tokenizer)?;
            let vocab_size = TextCodec::vocab_size_of(&tokenizer).map_err(|e| e.to_string())?;
            (new_run(&args, vocab_size)?, tokenizer, None, None)
        }
    };
    state
        .commands
        .push(std::env::args().collect::<Vec<_>>().join(" "));
    let codec = TextCodec::from_bytes(&tokenizer, &state.model).map_err(|e| e.to_string())?;
    let layout = Layout::of(&codec).map_err(|e| e.to_string())?;
    let captions = encode_captions(|text| codec.encode(text)).map_err(|e| e.to_string())?;
    let read = |split| digits::read_digits(&args.digits, split).map_err(|e| e.to_string());
    let tokenize = |split| super::train::tokenize(&codec, &args.corpus, split);
    let (train_text, valid_text) = (tokenize(Split::Train)?, tokenize(Split::Valid)?);
    let data = UnifiedData {
        train: read(Split::Train)?,
        valid: read(Split::Valid)?,
        train_text: &train_text,
        valid_text: &valid_text,
    };
    let start = match &tensors {
        None => Start::Fresh,
        Some([weights, ema]) => Start::From {
            weights,
            ema,
            step: state.step,
        },
    };
    let mut trainer = UnifiedTrainer::new(
        state.train.clone(),
        state.model.clone(),
        layout,
        captions,
        data,
        &device,
        start,
    )
    .map_err(|e| e.to_string())?;
    if let Some(optimizer) = optimizer {
        trainer
            .load_optimizer(optimizer)
            .map_err(|e| e.to_string())?;
    }
    let (n_train, n_valid) = trainer.digit_counts();
    let r = &state.train.recipe;
    eprintln!(
        "{} unified run: {} parameters, {} sequences per step ({} t2i, {} mmu, {} text), {} training digits, {} validation digits; {} at step {}/{} on {}",
        if resuming { "resuming the" } else { "new" },
        unmask::model::parameter_count(&state.model),
        trainer.sequences_per_step(),
        r.batch_size,
        state.train.batch_mmu,
        state.train.batch_lm,
        n_train,
        n_valid,
        args.run.display(),
        state.step,
        r.max_steps,
        args.backend.name(),
    );
    let plan = Plan {
        step: state.step,
        max_steps: state.train.recipe.max_steps,
        val_every: state.train.val_every,
        checkpoint_every: state.train.recipe.checkpoint_every,
        seen: state.sequences_seen,
    };
    let mut run = Run {
        args: &args,
        trainer: &mut trainer,
        state: &mut state,
        tokenizer: &tokenizer,
    };
    train_loop(&mut run, plan, args.time_limit_minutes)?;
    if let Some(out) = &args.out {
        let state = load_run::<UnifiedRunState>(&args.run, false)
            .map_err(|e| e.to_string())?
            .ok_or("the run directory vanished before the export")?
            .state;
        let evaluation = trainer.evaluate().map_err(|e| e.to_string())?;
        let dtype = if args.half {
            safetensors::Dtype::F16
        } else {
            safetensors::Dtype::F32
        };
        export_unified_model(out, &trainer, &state, &tokenizer, dtype, evaluation)
            .map_err(|e| e.to_string())?;
        eprintln!("exported {} ({})", out.display(), describe(&evaluation));
    }
    Ok(())
}

fn describe(e: &UnifiedEvaluation) -> String {
    format!(
        "validation t2i {:.4} nats per masked pixel, mmu {:.4} and text {:.4} nats per token, {} digits",
        e.t2i, e.mmu, e.lm, e.digits
    )
}

/// A unified run as the shared loop drives it.
struct Run<'a> {
    args: &'a TrainArgs,
    trainer: &'a mut UnifiedTrainer,
    state: &'a mut UnifiedRunState,
    tokenizer: &'a [u8],
}

impl Session for Run<'_> {
    type Report = UnifiedStepReport;
    type Losses = f64;
    const UNIT: &'static str = "sequences";

    fn train_step(&mut self) -> CliResult<(UnifiedStepReport, usize, u64)> {
        let report = self.trainer.train_step().map_err(|e| e.to_string())?;
        let units = report.sequences as u64;
        self.state.step = report.step;
        self.state.sequences_seen += units;
        let step = report.step;
        Ok((report, step, units))
    }

    fn describe(&self, r: &UnifiedStepReport) -> (f64, String) {
        let line = step_line(&format!("loss {:.4}", r.loss), r.lr, r.grad_norm);
        (r.loss, line)
    }

    fn add(losses: &mut f64, r: &UnifiedStepReport) {
        *losses += r.loss;
    }

    fn validate(
        &mut self,
        r: &UnifiedStepReport,
        losses: f64,
        steps: usize,
        rate: f64,
    ) -> CliResult<String> {
        let valid = self.trainer.evaluate().map_err(|e| e.to_string())?;
        let entry = UnifiedHistoryEntry {
            step: r.step,
            train_loss: losses / steps.max(1) as f64,
            lr: r.lr,
            sequences_seen: self.state.sequences_seen,
            sequences_per_second: rate,
            valid,
        };
        let line = format!(
            "step {}: train loss {:.4}, {}",
            r.step,
            entry.train_loss,
            describe(&valid)
        );
        self.state.history.push(entry);
        Ok(line)
    }

    fn save(&self, seconds: f64, seen: u64) -> CliResult<()> {
        let mut saved = self.state.clone();
        saved.train_seconds += seconds;
        saved.backends.push(speed_record(
            self.args.backend.name(),
            Self::UNIT,
            (seen, seconds),
            Some(self.trainer.sequences_per_step()),
        ));
        save_unified_run(&self.args.run, self.trainer, &saved, self.tokenizer)
            .map_err(|e| e.to_string())
    }
}

/// The flags of the other families, refused here by name.
fn refuse_other_flags(args: &GenerateArgs) -> Result<(), CliError> {
    let others = [
        ("--sampler", args.sampler.is_some()),
        ("--gen-length", args.gen_length.is_some()),
        ("--block-length", args.block_length.is_some()),
        ("--remasking", args.remasking.is_some()),
        ("--top-k", args.top_k.is_some()),
        ("--top-p", args.top_p.is_some()),
        ("--class", args.class.is_some()),
        ("--classifier", args.classifier.is_some()),
        ("--classifier-scale", args.classifier_scale.is_some()),
        ("--control", args.control.is_some()),
        ("--schedule", args.schedule.is_some()),
        ("--levels", args.levels.is_some()),
        ("--png", args.png.is_some()),
        ("--apng", args.apng.is_some()),
        ("--svg", args.svg.is_some()),
    ];
    match others.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(CliError::Input(format!(
            "{flag} is not a flag of a text + image model (--task t2i takes --prompt, --steps, --cfg, --temperature, --count, --seed, --images and --trace; --task mmu takes --image, --steps, --seed and --trace)"
        ))),
        None => Ok(()),
    }
}

/// `unmask generate` on a unified folder: `--task t2i` draws `--count` digits for the caption
/// `--prompt`; `--task mmu` captions the digit in `--image`. `--trace` records the (first) run.
pub fn generate(args: &GenerateArgs) -> Result<(), CliError> {
    refuse_other_flags(args)?;
    let Some(task) = args.task else {
        return Err(CliError::Input(format!(
            "{} is a text + image model: give --task t2i (with --prompt, a caption) or --task mmu (with --image)",
            args.model.display()
        )));
    };
    // Bad input is refused before the weights load.
    let count = args.count.unwrap_or(1);
    let task = match (task, &args.image) {
        (TaskArg::Mmu, None) => {
            return Err(CliError::Input(
                "--task mmu captions an image: give --image FILE.json (64 values on 0–16, or a samples file)".into(),
            ));
        }
        (TaskArg::Mmu, Some(path)) => UnifiedTask::Mmu {
            image: read_image(path)?.to_vec(),
            settings: CaptionSettings {
                steps: args.steps.unwrap_or(CaptionSettings::default().steps),
                seed: args.seed,
            },
        },
        (TaskArg::T2i, Some(_)) => {
            return Err(CliError::Input(
                "--image is what --task mmu captions; --task t2i draws from --prompt".into(),
            ));
        }
        (TaskArg::T2i, None) => {
            if !(1..=unmask::sampler::image::MAX_IMAGES).contains(&count) {
                return Err(CliError::Input(format!(
                    "--count {count}: draw 1 to {} images",
                    unmask::sampler::image::MAX_IMAGES
                )));
            }
            let defaults = MaskGitSettings::default();
            UnifiedTask::T2i {
                caption: args.prompt.clone().unwrap_or_default(),
                settings: MaskGitSettings {
                    steps: args.steps.unwrap_or(defaults.steps),
                    cfg_scale: args.cfg.unwrap_or(defaults.cfg_scale),
                    temperature: args.temperature.unwrap_or(defaults.temperature),
                    seed: args.seed,
                },
            }
        }
    };
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let mut bundle = UnifiedBundle::from_dir(&args.model, &device)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.model.display())))?;
    let spec = unmask::sampler::Denoiser::spec(&bundle.model).clone();
    let started = Instant::now();
    // One run per image, each on the next seed; the first is the one a trace records.
    let mut runs = Vec::with_capacity(count);
    for i in 0..count {
        let mut task = task.clone();
        task.set_seed(args.seed.wrapping_add(i as u64));
        let mut run =
            UnifiedRun::new(&task, &bundle.layout, &bundle.codec, &spec).map_err(unified_input)?;
        run.show_candidates(args.trace.is_some() && i == 0);
        while pollster::block_on(run.next(&mut bundle.model))?.is_some() {}
        runs.push(run);
    }
    if let (Some(path), Some(first)) = (&args.trace, runs.first()) {
        let name = args.model.display().to_string();
        let trajectory = UnifiedTrajectory::new(&name, &spec, &task, first, &bundle.codec);
        std::fs::write(path, trajectory.to_json())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let calls: usize = runs.iter().map(UnifiedRun::model_calls).sum();
    match &task {
        UnifiedTask::T2i { caption, .. } => {
            let images = runs
                .iter()
                .map(|r| {
                    r.image()
                        .map(|i| i.map(f64::from).to_vec())
                        .ok_or_else(|| CliError::Failed("the run left masked cells".into()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(path) = &args.images {
                let file = super::images::ImagesFile {
                    classes: vec![unmask::unified::digit_named(caption).map(usize::from); count],
                    images: images.clone(),
                };
                let json = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
                std::fs::write(path, json)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            for (i, image) in images.iter().enumerate() {
                if count > 1 {
                    outln!("image {}", i + 1);
                }
                outln!("{}", blocks(image, digits::SIDE).trim_end_matches('\n'));
            }
            if !args.quiet {
                eprintln!(
                    "t2i: {count} image{} of {caption:?}, {calls} model calls in {:.2}s on {}",
                    if count == 1 { "" } else { "s" },
                    started.elapsed().as_secs_f64(),
                    args.backend.name()
                );
            }
        }
        UnifiedTask::Mmu { .. } => {
            let run = &runs[0];
            outln!("{}", bundle.codec.decode(run.caption_tokens()).trim());
            if !args.quiet {
                eprintln!(
                    "mmu: {} steps in {:.2}s on {}",
                    run.steps().len(),
                    started.elapsed().as_secs_f64(),
                    args.backend.name()
                );
            }
        }
    }
    Ok(())
}

fn unified_input(e: UnifiedError) -> CliError {
    match e {
        UnifiedError::Settings(e) => crate::settings_error(&e),
        e => CliError::Input(e.to_string()),
    }
}

/// `--image`: 64 values on 0–16 as a JSON array, or a samples file (`{"images": [[…]]}`), whose
/// first image is taken.
fn read_image(path: &PathBuf) -> Result<[u8; digits::PIXELS], CliError> {
    let input = |m: String| CliError::Input(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| input(e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| input(format!("not JSON: {e}")))?;
    let values = match &json {
        serde_json::Value::Array(_) => &json,
        serde_json::Value::Object(o) => o
            .get("images")
            .and_then(|i| i.get(0))
            .ok_or_else(|| input("a samples file with no image under \"images\"".into()))?,
        _ => {
            return Err(input(
                "expected 64 values, or {\"images\": [[64 values]]}".into(),
            ));
        }
    };
    let values: Vec<f64> = values
        .as_array()
        .ok_or_else(|| input("an image is an array of 64 numbers".into()))?
        .iter()
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| input(format!("{v} is not a number")))
        })
        .collect::<Result<_, _>>()?;
    image_from_values(&values).map_err(|e| input(e.to_string()))
}

/// `unmask quality` on a unified folder: t2i accuracy and novelty at each of --cfg-scales, mmu
/// caption accuracy on the validation digits.
pub fn quality(args: &crate::train::QualityArgs) -> CliResult<()> {
    use unmask::train::image_quality::PER_CLASS;
    if args.sampler.is_some() {
        return Err(
            "a text + image model is scored with MaskGIT (t2i) and LLaDA (mmu): leave out --sampler"
                .into(),
        );
    }
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let mut bundle = UnifiedBundle::from_dir(&args.model, &device)
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let read = |split| digits::read_digits(&args.digits, split).map_err(|e| e.to_string());
    let (train, valid) = (read(Split::Train)?, read(Split::Valid)?);
    let steps = args.steps.unwrap_or(MaskGitSettings::default().steps);
    let started = Instant::now();
    let layout = bundle.layout.clone();
    let report = pollster::block_on(unmask::train::unified::check(
        &mut bundle.model,
        &layout,
        &bundle.codec,
        &args.cfg_scales,
        steps,
        PER_CLASS,
        &train,
        &valid,
    ))
    .map_err(|e| e.to_string())?;
    outln!(
        "{} (t2i: MaskGIT {} steps, {} samples of each digit per scale, captions from every template; {:.1}s):",
        args.model.display(),
        steps,
        PER_CLASS,
        started.elapsed().as_secs_f64()
    );
    outln!("| cfg w | t2i accuracy | nearest training image |");
    outln!("|---|---|---|");
    for s in &report.t2i {
        outln!(
            "| {} | {} |",
            s.cfg_scale,
            super::images::scored(
                s.accuracy,
                s.nearest_train_distance,
                report.validation_nearest_train_distance
            )
        );
    }
    outln!(
        "{}",
        super::images::validation_line(
            report.validation_accuracy,
            report.validation_nearest_train_distance
        )
    );
    outln!(
        "mmu: {:.1}% of the {} validation digits' captions name their digit",
        100.0 * report.mmu_accuracy,
        report.captions.len()
    );
    if args.verbose {
        for (label, caption) in &report.captions {
            outln!("  {label}: {caption}");
        }
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// `unmask inspect` on a unified folder: the network and where its joint vocabulary's tokens are.
pub fn inspect(dir: &Path) -> CliResult<()> {
    let device = backend::init(unmask::backend::BackendKind::Cpu).map_err(|e| e.to_string())?;
    let b = UnifiedBundle::from_dir(dir, &device).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (c, l) = (&b.config, &b.layout);
    outln!("model       {}", dir.display());
    outln!("type        text + image (unified), MMaDA-style masked diffusion");
    outln!(
        "layers      {} blocks, hidden {}, {} heads, cond {}; {} parameters",
        c.n_blocks,
        c.hidden_dim,
        c.n_heads,
        c.cond_dim,
        unmask::model::parameter_count(c)
    );
    outln!(
        "vocabulary  {} tokens: text 0–{}, <|t2i|> {}, <|mmu|> {}, <|soi|> {}, <|eoi|> {}, grey levels {}–{}",
        c.vocab_size,
        l.text_vocab - 1,
        l.t2i,
        l.mmu,
        l.soi,
        l.eoi,
        l.image_codes().start,
        l.image_codes().end - 1
    );
    outln!(
        "sequences   {} tokens; a caption holds at most {} tokens; mask id {}",
        c.model_length,
        unmask::unified::MAX_CAPTION_TOKENS,
        l.mask
    );
    Ok(())
}
