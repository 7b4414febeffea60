//! The Diffusion-LM family in the CLI: `unmask generate` on its folders, with plug-and-play
//! control (see `unmask::sampler::diffusion_lm`), and `unmask train --objective diffusion-lm` or
//! `--objective latent-classifier` (see `unmask::train::vectors`), with the other runs' flags,
//! run directory and resume.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use unmask::backend;
use unmask::bundle::{TOKENIZER_FILE, VectorBundle};
use unmask::config::Family;
use unmask::corpus::{self, Split};
use unmask::model::diffusion_lm::{
    DEFAULT_DIFFUSION_STEPS, DiffusionLmClassifier, DiffusionLmConfig,
};
use unmask::model::patch_dit::Role;
use unmask::network::WordVectorDenoiser;
use unmask::sampler::diffusion_lm::{
    Control, DEFAULT_CONTROL_SCALE, DEFAULT_FLUENCY, DEFAULT_STEPS, VectorRun, VectorSettings,
    first_free,
};
use unmask::sampler::gaussian::{BetaSchedule, Variance};
use unmask::text::{Embedding, TextCodec};
use unmask::train::Checkpointed;
use unmask::train::checkpoint::run_format;
use unmask::train::vectors::{
    ClassifierData, SavedVectorRun, VECTOR_RUN_FORMAT, VECTOR_RUN_VERSION, VectorEvaluation,
    VectorHistoryEntry, VectorLoss, VectorRunState, VectorStepReport, VectorTrainConfig,
    VectorTrainer, export_vector_model, load_vector_run, save_vector_run,
};
use unmask::train::{Documents, Start};
use unmask::trajectory::vectors::VectorTrajectory;

use super::progress::{Plan, Session, speed_record, step_line, train_loop};
use super::train::{ObjectiveArg, QualityArgs, TrainArgs};
use crate::{CliError, CliResult, GenerateArgs, VarianceArg};

/// Architecture defaults of a new run: sentences of 32 tokens as 32-number vectors (the paper
/// uses 16 for E2E and 128 for ROCStories; 32 keeps 4,096 words apart at this size), the
/// trunk of the text defaults, the reference's T and schedule.
const DEFAULT_MODEL_LENGTH: usize = 32;
const DEFAULT_EMBED_DIM: usize = 32;
const DEFAULT_HIDDEN_DIM: usize = 128;
const DEFAULT_COND_DIM: usize = 128;
const DEFAULT_N_BLOCKS: usize = 4;
const DEFAULT_N_HEADS: usize = 4;
/// The control classifier's trunk: smaller than the denoiser's, as it answers one question.
const CLASSIFIER_HIDDEN_DIM: usize = 64;
const CLASSIFIER_COND_DIM: usize = 64;
const CLASSIFIER_N_BLOCKS: usize = 2;
const CLASSIFIER_N_HEADS: usize = 4;
/// Validation every this many steps unless --val-every says otherwise.
const DEFAULT_VAL_EVERY: usize = 250;
/// Validation windows unless --val-windows says otherwise.
const DEFAULT_VAL_WINDOWS: usize = 256;

/// The `generate` flags of the masked samplers and of the digits, which this family has no use
/// for.
fn refuse_other_flags(args: &GenerateArgs) -> Result<(), CliError> {
    let given = [
        ("--sampler", args.sampler.is_some()),
        ("--block-length", args.block_length.is_some()),
        ("--remasking", args.remasking.is_some()),
        ("--temperature", args.temperature.is_some()),
        ("--top-k", args.top_k.is_some()),
        ("--top-p", args.top_p.is_some()),
        ("--cfg", args.cfg.is_some()),
        ("--class", args.class.is_some()),
        ("--classifier-scale", args.classifier_scale.is_some()),
        ("--ddim-eta", args.ddim_eta.is_some()),
        ("--count", args.count.is_some()),
        ("--images", args.images.is_some()),
        ("--png", args.png.is_some()),
        ("--apng", args.apng.is_some()),
        ("--svg", args.svg.is_some()),
        ("--threshold", args.threshold.is_some()),
        ("--schedule", args.schedule.is_some()),
        ("--slope", args.slope.is_some()),
        ("--levels", args.levels.is_some()),
        ("--first-hitting", args.first_hitting.is_some()),
        ("--no-cache", args.no_cache),
        ("--no-stop-at-eos", args.no_stop_at_eos),
        ("--attention", args.attention.is_some()),
    ];
    match given.iter().find(|(_, g)| *g) {
        Some((flag, _)) => Err(CliError::Input(format!(
            "{flag} is not a setting of Diffusion-LM; {} is a diffusion-lm model (--steps, --gen-length, --clamp, --variance, --seed, --prompt, --control, --control-scale, --fluency, --classifier)",
            args.model.display()
        ))),
        None => Ok(()),
    }
}

/// `unmask generate` on a Diffusion-LM folder.
pub fn generate(args: &GenerateArgs) -> Result<(), CliError> {
    refuse_other_flags(args)?;
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let mut bundle = VectorBundle::from_dir(&args.model, &device)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.model.display())))?;
    let prompt = args.prompt.as_deref().unwrap_or("");
    // `[MASK]` in the prompt is a gap to fill.
    let prompt_ids = bundle
        .codec
        .encode_with_masks(prompt)
        .map_err(|e| CliError::Input(format!("--prompt: {e}")))?;
    let mask = bundle.codec.mask_id();
    let c = &bundle.config;
    let control = control_of(args)?;
    let (classifier_name, mut classifier) = match &control {
        Some(_) => {
            let (dir, classifier) =
                open_classifier(&args.model, args.classifier.as_deref(), c, &device)?;
            (Some(dir.display().to_string()), Some(classifier))
        }
        None if args.classifier.is_some() => {
            return Err(CliError::Input(
                "--classifier steers with --control: give an attribute (austen, bible)".into(),
            ));
        }
        None => (None, None),
    };
    let settings = VectorSettings {
        steps: args.steps.unwrap_or(DEFAULT_STEPS.min(c.diffusion_steps)),
        gen_length: args
            .gen_length
            .unwrap_or(c.model_length.saturating_sub(prompt_ids.len())),
        clamp: args.clamp.unwrap_or(true),
        variance: match args.variance {
            None | Some(VarianceArg::Beta) => Variance::Beta,
            Some(VarianceArg::Posterior) => Variance::Posterior,
        },
        seed: args.seed,
        control,
    };
    let spec = c.vector_spec();
    let mut run = VectorRun::infilling(&settings, &prompt_ids, Some(mask), &spec)
        .map_err(|e| CliError::Input(e.to_string()))?;
    let held = run.held();
    let start = first_free(&held);
    // A trace holds each position's nearest words, as the page's inspector shows them.
    run.show_candidates(args.trace.is_some());
    let live = !args.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut steps = Vec::with_capacity(run.total_steps());
    while let Some(step) = pollster::block_on(async {
        match classifier.as_mut() {
            Some(c) => run.step_controlled(&mut bundle.denoiser, c).await,
            None => run.step(&mut bundle.denoiser).await,
        }
    })
    .map_err(CliError::from)?
    {
        if live {
            let words = bundle.codec.decode(&step.ids[start..]);
            eprint!("\r\x1b[2K{:>4} t={:<5} {}", step.index + 1, step.t, words);
            std::thread::sleep(std::time::Duration::from_millis(args.delay_ms));
        }
        steps.push(step);
    }
    if live {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    let last = steps
        .last()
        .ok_or_else(|| CliError::Failed("the run took no step".into()))?;
    let text = bundle.codec.decode(&last.ids[start..]);
    // The prompt as typed, or with gaps, what precedes the first.
    let head = if start < prompt_ids.len() {
        bundle.codec.decode(&prompt_ids[..start])
    } else {
        prompt.to_string()
    };
    if let Some(path) = &args.trace {
        let trajectory = VectorTrajectory::new(
            &args.model.display().to_string(),
            &spec,
            classifier_name,
            settings.clone(),
            (prompt, &prompt_ids),
            steps.clone(),
            &bundle.codec,
        );
        std::fs::write(path, trajectory.to_json())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    outln!("{head}{text}");
    if !args.quiet {
        let control = match (&settings.control, last.target_probability) {
            (Some(c), Some(p)) => format!(", p({} | x) {p:.3} at the last step", c.target),
            _ => String::new(),
        };
        eprintln!(
            "{} steps in {seconds:.2} s ({:.1} steps/s), mean distance to the words {:.3}{control}",
            steps.len(),
            steps.len() as f64 / seconds.max(1e-9),
            last.mean_distance(&held)
        );
    }
    Ok(())
}

/// The control the flags ask for: `--control ATTRIBUTE` (or `none`) with its weights.
fn control_of(args: &GenerateArgs) -> Result<Option<Control>, CliError> {
    match args.control.as_deref() {
        None | Some("none") => {
            match [
                ("--control-scale", args.control_scale.is_some()),
                ("--fluency", args.fluency.is_some()),
            ]
            .iter()
            .find(|(_, given)| *given)
            {
                Some((flag, _)) => Err(CliError::Input(format!(
                    "{flag} weighs control: give --control ATTRIBUTE (austen, bible)"
                ))),
                None => Ok(None),
            }
        }
        Some(target) => Ok(Some(Control {
            target: target.into(),
            scale: args.control_scale.unwrap_or(DEFAULT_CONTROL_SCALE),
            fluency: args.fluency.unwrap_or(DEFAULT_FLUENCY),
        })),
    }
}

/// The control classifier and its folder: `--classifier DIR`, or the folder the model's
/// config.json names (relative to the model's folder).
fn open_classifier(
    model: &Path,
    given: Option<&Path>,
    denoiser: &DiffusionLmConfig,
    device: &burn::tensor::Device,
) -> Result<(PathBuf, DiffusionLmClassifier), CliError> {
    let dir = match (given, &denoiser.classifier) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(named)) => model.join(named),
        (None, None) => {
            return Err(CliError::Input(format!(
                "control steers with a control classifier, and {} names none in its config.json: give --classifier DIR (unmask train --objective latent-classifier makes one)",
                model.display()
            )));
        }
    };
    match unmask::bundle::control_classifier_from_dir(&dir, denoiser, device) {
        Ok(classifier) => Ok((dir, classifier)),
        Err(e) => Err(CliError::Input(format!(
            "control classifier {}: {e}",
            dir.display()
        ))),
    }
}

/// Whether `dir` holds a Diffusion-LM run (its run.json says so).
pub fn holds_run(dir: &Path) -> bool {
    run_format(dir).as_deref() == Some(VECTOR_RUN_FORMAT)
}

fn new_run(
    args: &TrainArgs,
    vocab_size: usize,
    denoiser: Option<(&Path, &DiffusionLmConfig)>,
) -> CliResult<VectorRunState> {
    let objective = match denoiser {
        None => "diffusion-lm",
        Some(_) => "latent-classifier",
    };
    let mut other = vec![
        ("--label-dropout", args.label_dropout.is_some()),
        ("--unconditional", args.unconditional),
        ("--patch-size", args.patch_size.is_some()),
        ("--block-size", args.block_size.is_some()),
        ("--warm-start", args.warm_start.is_some()),
        ("--forcing-sorted", args.forcing_sorted.is_some()),
    ];
    if denoiser.is_some() {
        // The classifier reads the denoiser's vectors over its diffusion.
        other.extend([
            ("--classifier", args.classifier.is_some()),
            ("--embed-dim", args.embed_dim.is_some()),
            ("--model-length", args.model_length.is_some()),
            ("--diffusion-steps", args.diffusion_steps.is_some()),
            ("--beta-schedule", args.beta_schedule.is_some()),
        ]);
    }
    if let Some((flag, _)) = other.iter().find(|(_, given)| *given) {
        return Err(format!("{flag} is not a flag of --objective {objective}"));
    }
    let model = match denoiser {
        None => DiffusionLmConfig {
            family: Family::DiffusionLm,
            role: Role::Denoiser,
            vocab_size,
            embed_dim: args.embed_dim.unwrap_or(DEFAULT_EMBED_DIM),
            model_length: args.model_length.unwrap_or(DEFAULT_MODEL_LENGTH),
            hidden_dim: args.hidden_dim.unwrap_or(DEFAULT_HIDDEN_DIM),
            cond_dim: args.cond_dim.unwrap_or(DEFAULT_COND_DIM),
            n_blocks: args.n_blocks.unwrap_or(DEFAULT_N_BLOCKS),
            n_heads: args.n_heads.unwrap_or(DEFAULT_N_HEADS),
            diffusion_steps: args.diffusion_steps.unwrap_or(DEFAULT_DIFFUSION_STEPS),
            beta_schedule: args.beta_schedule.map_or(BetaSchedule::Sqrt, Into::into),
            labels: Vec::new(),
            classifier: args.classifier.clone(),
        },
        Some((_, d)) => DiffusionLmConfig {
            role: Role::Classifier,
            hidden_dim: args.hidden_dim.unwrap_or(CLASSIFIER_HIDDEN_DIM),
            cond_dim: args.cond_dim.unwrap_or(CLASSIFIER_COND_DIM),
            n_blocks: args.n_blocks.unwrap_or(CLASSIFIER_N_BLOCKS),
            n_heads: args.n_heads.unwrap_or(CLASSIFIER_N_HEADS),
            labels: corpus::SOURCES.iter().map(|s| s.to_string()).collect(),
            classifier: None,
            ..d.clone()
        },
    };
    model.validate().map_err(|e| e.to_string())?;
    let train = VectorTrainConfig {
        recipe: args.recipe(),
        val_every: args.val_every.unwrap_or(DEFAULT_VAL_EVERY),
        val_windows: args.val_windows.unwrap_or(DEFAULT_VAL_WINDOWS),
    };
    train.validate().map_err(|e| e.to_string())?;
    Ok(VectorRunState {
        format: VECTOR_RUN_FORMAT.into(),
        version: VECTOR_RUN_VERSION,
        train,
        model,
        step: 0,
        tokens_seen: 0,
        train_seconds: 0.0,
        backends: Vec::new(),
        history: Vec::new(),
        commands: Vec::new(),
        corpus: args.corpus.display().to_string(),
        denoiser: denoiser.map(|(dir, _)| dir.display().to_string()),
    })
}

/// The denoiser folder a classifier run reads: its config and word vectors, and its tokenizer.
fn read_denoiser(dir: &Path) -> CliResult<(DiffusionLmConfig, Vec<f32>, Vec<u8>)> {
    let cpu = backend::init(backend::BackendKind::Cpu).map_err(|e| e.to_string())?;
    let bundle = VectorBundle::from_dir(dir, &cpu).map_err(|e| {
        format!(
            "--denoiser {}: {e}; it must be a Diffusion-LM denoiser folder (unmask train --objective diffusion-lm --out DIR)",
            dir.display()
        )
    })?;
    let tokenizer = std::fs::read(dir.join(TOKENIZER_FILE))
        .map_err(|e| format!("{}: {e}", dir.join(TOKENIZER_FILE).display()))?;
    Ok((
        bundle.config,
        bundle.denoiser.embedding().to_vec(),
        tokenizer,
    ))
}

/// Each document of a split, tokenized, with its source's index among `labels`.
fn tokenize_labelled(
    codec: &TextCodec,
    corpus: &Path,
    split: Split,
    labels: &[String],
) -> CliResult<(Vec<Vec<u32>>, Vec<usize>)> {
    let docs = corpus::read_labelled_documents(corpus, split).map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(docs.len());
    let mut classes = Vec::with_capacity(docs.len());
    for (text, source) in &docs {
        ids.push(codec.encode(text).map_err(|e| e.to_string())?);
        classes.push(labels.iter().position(|l| l == source).ok_or_else(|| {
            format!(
                "the corpus's source {source} is not one of the classifier's labels ({})",
                labels.join(", ")
            )
        })?);
    }
    Ok((ids, classes))
}

fn tokenize(codec: &TextCodec, corpus: &Path, split: Split) -> CliResult<Vec<Vec<u32>>> {
    let docs = corpus::read_documents(corpus, split).map_err(|e| e.to_string())?;
    docs.iter()
        .map(|d| codec.encode(d).map_err(|e| e.to_string()))
        .collect()
}

/// `unmask train --objective diffusion-lm`, new or resumed.
pub fn train(args: TrainArgs) -> CliResult<()> {
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let saved = load_vector_run(&args.run).map_err(|e| e.to_string())?;
    let resuming = saved.is_some();
    // A classifier run's denoiser, when a new run has read it already.
    let mut read = None;
    let (mut state, tokenizer, tensors) = match saved {
        Some(SavedVectorRun {
            mut state,
            tokenizer,
            tensors,
        }) => {
            args.resume(&mut state.train.recipe)?;
            (state, tokenizer, Some(tensors))
        }
        None if matches!(args.objective, Some(ObjectiveArg::LatentClassifier)) => {
            let dir = args.denoiser.as_deref().ok_or(
                "--objective latent-classifier needs --denoiser DIR: the Diffusion-LM folder whose word vectors it reads",
            )?;
            let (config, vectors, tokenizer) = read_denoiser(dir)?;
            let state = new_run(&args, config.vocab_size, Some((dir, &config)))?;
            read = Some((config, vectors));
            (state, tokenizer, None)
        }
        None => {
            if args.denoiser.is_some() {
                return Err("--denoiser is a flag of --objective latent-classifier".into());
            }
            let path = args.corpus.join(TOKENIZER_FILE);
            let tokenizer = std::fs::read(&path).map_err(|e| {
                format!(
                    "{}: {e}; prepare the corpus first with `unmask prepare`",
                    path.display()
                )
            })?;
            let vocab_size = TextCodec::vocab_size_of(&tokenizer)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            (new_run(&args, vocab_size, None)?, tokenizer, None)
        }
    };
    state
        .commands
        .push(std::env::args().collect::<Vec<_>>().join(" "));
    let codec = TextCodec::for_embedding(
        &tokenizer,
        Embedding {
            rows: state.model.vocab_size,
            padded: false,
            mask_token_id: None,
        },
    )
    .map_err(|e| e.to_string())?;
    let corpus = PathBuf::from(&state.corpus);
    let mut embedding = Vec::new();
    let ((train_docs, train_labels), (valid_docs, valid_labels)) = match &state.denoiser {
        None => (
            (tokenize(&codec, &corpus, Split::Train)?, Vec::new()),
            (tokenize(&codec, &corpus, Split::Valid)?, Vec::new()),
        ),
        Some(dir) => {
            let (config, vectors) = match read {
                Some(read) => read,
                None => {
                    let (config, vectors, _) = read_denoiser(Path::new(dir))?;
                    (config, vectors)
                }
            };
            state
                .model
                .check_pair(&config)
                .map_err(|e| format!("--denoiser {dir}: {e}"))?;
            embedding = vectors;
            let labels = &state.model.labels;
            (
                tokenize_labelled(&codec, &corpus, Split::Train, labels)?,
                tokenize_labelled(&codec, &corpus, Split::Valid, labels)?,
            )
        }
    };
    let classifier = state.denoiser.as_ref().map(|_| ClassifierData {
        embedding: &embedding,
        train_labels: &train_labels,
        valid_labels: &valid_labels,
    });
    let start = match &tensors {
        None => Start::Fresh,
        Some([weights, ema, _]) => Start::From {
            weights,
            ema,
            step: state.step,
        },
    };
    let mut trainer = VectorTrainer::new(
        state.train.clone(),
        state.model.clone(),
        Documents {
            train: &train_docs,
            valid: &valid_docs,
        },
        (codec.bos_id(), codec.eos_id()),
        classifier,
        &device,
        start,
    )
    .map_err(|e| e.to_string())?;
    if let Some([_, _, optimizer]) = tensors {
        trainer
            .load_optimizer(optimizer)
            .map_err(|e| e.to_string())?;
    }
    let (n_train, n_valid) = trainer.window_counts();
    let r = &state.train.recipe;
    eprintln!(
        "{} {} run: {} parameters, {} windows of {} tokens per step, {n_train} training windows ({:.1} epochs planned), {n_valid} validation windows; {} at step {}/{} on {}",
        if resuming { "resuming the" } else { "new" },
        match state.model.role {
            Role::Denoiser => "diffusion-lm",
            Role::Classifier => "latent-classifier",
        },
        state.model.parameter_count(),
        r.batch_size,
        state.model.model_length,
        (r.max_steps * r.batch_size) as f64 / n_train as f64,
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
        seen: state.tokens_seen,
    };
    let mut run = Run {
        args: &args,
        trainer: &mut trainer,
        state: &mut state,
        tokenizer: &tokenizer,
    };
    train_loop(&mut run, plan, args.time_limit_minutes)?;
    if let Some(out) = &args.out {
        let evaluation = trainer.evaluate().map_err(|e| e.to_string())?;
        let dtype = if args.half {
            safetensors::Dtype::F16
        } else {
            safetensors::Dtype::F32
        };
        let saved = load_vector_run(&args.run)
            .map_err(|e| e.to_string())?
            .ok_or("the run directory vanished before the export")?;
        export_vector_model(out, &trainer, &saved.state, &tokenizer, dtype, evaluation)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "exported {} ({})",
            out.display(),
            describe_evaluation(&evaluation)
        );
    }
    Ok(())
}

fn describe(l: &VectorLoss) -> String {
    if l.classification > 0.0 {
        return format!("cross-entropy {:.4}", l.classification);
    }
    format!(
        "loss {:.4}: x₀-MSE {:.4}, rounding {:.4}, prior {:.4}",
        l.total(),
        l.mse,
        l.rounding,
        l.prior
    )
}

fn describe_evaluation(e: &VectorEvaluation) -> String {
    match e.accuracy {
        Some(a) => format!("{}, accuracy {:.1}%", describe(&e.loss), a * 100.0),
        None => describe(&e.loss),
    }
}

/// A Diffusion-LM run (denoiser or control classifier) as the shared loop drives it.
struct Run<'a> {
    args: &'a TrainArgs,
    trainer: &'a mut VectorTrainer,
    state: &'a mut VectorRunState,
    tokenizer: &'a [u8],
}

impl Session for Run<'_> {
    type Report = VectorStepReport;
    type Losses = VectorLoss;
    const UNIT: &'static str = "tokens";

    fn train_step(&mut self) -> CliResult<(VectorStepReport, usize, u64)> {
        let report = self.trainer.train_step().map_err(|e| e.to_string())?;
        let units = report.tokens as u64;
        self.state.step = report.step;
        self.state.tokens_seen += units;
        let step = report.step;
        Ok((report, step, units))
    }

    fn describe(&self, r: &VectorStepReport) -> (f64, String) {
        let loss = match self.state.model.role {
            Role::Denoiser => format!("loss {:.4} (mse {:.4})", r.loss.total(), r.loss.mse),
            Role::Classifier => format!("cross-entropy {:.4}", r.loss.classification),
        };
        let line = step_line(&loss, r.lr, r.grad_norm);
        (r.loss.total(), line)
    }

    fn add(losses: &mut VectorLoss, r: &VectorStepReport) {
        losses.add(&r.loss, 1.0);
    }

    fn validate(
        &mut self,
        r: &VectorStepReport,
        losses: VectorLoss,
        steps: usize,
        rate: f64,
    ) -> CliResult<String> {
        let valid: VectorEvaluation = self.trainer.evaluate().map_err(|e| e.to_string())?;
        let entry = VectorHistoryEntry {
            step: r.step,
            train_loss: losses.divided(steps.max(1) as f64),
            lr: r.lr,
            tokens_seen: self.state.tokens_seen,
            tokens_per_second: rate,
            valid,
        };
        let line = format!(
            "step {}: train {}; validation {}",
            r.step,
            describe(&entry.train_loss),
            describe_evaluation(&valid)
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
            None,
        ));
        save_vector_run(&self.args.run, self.trainer, &saved, self.tokenizer)
            .map_err(|e| e.to_string())
    }
}

/// `unmask quality` on a Diffusion-LM folder: the text check's 20 prompts, each filling the rest
/// of the model's positions, against held-out passages as long.
pub fn quality(args: &QualityArgs) -> CliResult<()> {
    use unmask::train::quality;
    if args.sampler.is_some() || args.schedule.is_some() || args.slope.is_some() {
        return Err(
            "a Diffusion-LM model has one sampler: drop --sampler, --schedule and --slope".into(),
        );
    }
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let mut bundle = VectorBundle::from_dir(&args.model, &device)
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let judge = match &args.judge {
        Some(dir) => Some(
            unmask::Bundle::from_dir(dir, &device)
                .map_err(|e| format!("--judge {}: {e}", dir.display()))?,
        ),
        None => None,
    };
    let docs = corpus::read_documents(&args.corpus, Split::Train).map_err(|e| e.to_string())?;
    let vocabulary = quality::vocabulary(&docs);
    let settings = VectorSettings {
        steps: args.steps.unwrap_or(DEFAULT_STEPS),
        ..VectorSettings::defaults(0)
    };
    let started = Instant::now();
    let report = quality::check_vectors(&mut bundle, &settings, &vocabulary, judge.as_ref())
        .map_err(|e| e.to_string())?;
    outln!(
        "diffusion-lm, {} steps, clamping {}: {} ({:.0} s)",
        report.steps,
        if report.clamp { "on" } else { "off" },
        report.scores,
        started.elapsed().as_secs_f64()
    );
    for s in report.samples.iter().filter(|_| args.verbose) {
        outln!("  {}|{}", s.prompt, s.completion);
    }
    let held_out = corpus::read_documents(&args.corpus, Split::Valid).map_err(|e| e.to_string())?;
    let length = bundle.config.model_length;
    let reference = quality::reference_of_length(
        &held_out,
        &bundle.codec,
        &vocabulary,
        judge.as_ref(),
        length,
    )
    .map_err(|e| e.to_string())?;
    outln!(
        "held-out text ({} passages of {length} tokens): {}",
        reference.passages,
        reference.scores
    );
    let named = bundle.config.classifier.is_some() || args.classifier.is_some();
    let control = if named {
        Some(control_quality(
            args,
            &mut bundle,
            &device,
            &vocabulary,
            &settings,
        )?)
    } else {
        outln!(
            "no control classifier: give --classifier DIR to score control (unmask train --objective latent-classifier makes one)"
        );
        None
    };
    if let Some(path) = &args.json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            quality: &'a unmask::train::quality::VectorQualityReport,
            #[serde(skip_serializing_if = "Option::is_none")]
            control: Option<unmask::train::control::ControlReport>,
        }
        let report = Report {
            quality: &report,
            control,
        };
        let json = serde_json::to_vec_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The control check: each scale's success (judged by naive Bayes on the training split's
/// tokens, not the guidance classifier) and known words, printed as a table.
fn control_quality(
    args: &QualityArgs,
    bundle: &mut VectorBundle,
    device: &burn::tensor::Device,
    vocabulary: &std::collections::HashSet<String>,
    settings: &VectorSettings,
) -> CliResult<unmask::train::control::ControlReport> {
    use unmask::train::control::{SourceJudge, check_control, judge_accuracy};
    use unmask::train::data::Windows;
    let (_, mut classifier) = open_classifier(
        &args.model,
        args.classifier.as_deref(),
        &bundle.config,
        device,
    )
    .map_err(|e| match e {
        CliError::Input(m) | CliError::Failed(m) => m,
    })?;
    let labels = classifier.labels().to_vec();
    let (train, train_labels) =
        tokenize_labelled(&bundle.codec, &args.corpus, Split::Train, &labels)?;
    let documents: Vec<(Vec<u32>, usize)> = train.into_iter().zip(train_labels).collect();
    let judge = SourceJudge::fit(&documents, labels.clone(), bundle.config.vocab_size);
    let (valid, valid_labels) =
        tokenize_labelled(&bundle.codec, &args.corpus, Split::Valid, &labels)?;
    let len = bundle.config.model_length;
    let (windows, window_labels) =
        Windows::labelled(&valid, &valid_labels, (None, None), len, "validation")
            .map_err(|e| e.to_string())?;
    let passages: Vec<(Vec<u32>, usize)> = (0..windows.count())
        .map(|i| (windows.window(i).to_vec(), window_labels[i]))
        .collect();
    let accuracy = judge_accuracy(&judge, &passages);
    let started = Instant::now();
    let report = check_control(
        bundle,
        &mut classifier,
        &judge,
        accuracy,
        settings,
        (
            &args.classifier_scales,
            args.fluency.unwrap_or(DEFAULT_FLUENCY),
        ),
        args.control_samples,
        vocabulary,
    )
    .map_err(|e| e.to_string())?;
    outln!(
        "control ({} samples each, judged by naive Bayes on the training split's tokens: {:.1}% right on {} held-out passages of {len} tokens; {:.0} s):",
        report.samples,
        accuracy * 100.0,
        passages.len(),
        started.elapsed().as_secs_f64()
    );
    outln!("  scale  fluency  target   success  known words  p(target) at the end");
    for r in &report.rows {
        outln!(
            "  {:<5}  {:<7}  {:<7}  {:>6.0}%  {:>10.1}%  {:.3}",
            r.scale,
            r.fluency,
            r.target,
            r.success * 100.0,
            r.known_word_share * 100.0,
            r.classifier_probability
        );
    }
    for (scale, target, texts) in report.texts.iter().filter(|_| args.verbose) {
        for t in texts {
            outln!("  [{scale} {target}] {t}");
        }
    }
    Ok(report)
}
