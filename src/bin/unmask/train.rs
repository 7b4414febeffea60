//! `unmask train`: start, resume and export a training run (see `unmask::train`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use unmask::backend::{self, BackendKind};
use unmask::bundle::TOKENIZER_FILE;
use unmask::config::ModelConfig;
use unmask::corpus::{self, Split};
use unmask::model::parameter_count;
use unmask::sampler::{SamplerKind, Settings};
use unmask::text::TextCodec;
use unmask::train::Checkpointed;
use unmask::train::checkpoint::{self, HistoryEntry, RunDir, RunState};
use unmask::train::{Documents, Objective, Recipe, Shape, Start, StepReport, TrainConfig, Trainer};

use super::progress::{Plan, Session, speed_record, step_line, train_loop};
use crate::CliResult;
use crate::schedule::{ScheduleArg, forcing_knobs};

/// Prompt of the samples printed at each validation.
const SAMPLE_PROMPT: &str = "It is a truth universally acknowledged";
/// Tokens generated for each validation sample.
const SAMPLE_TOKENS: usize = 48;

#[derive(Clone, Copy, ValueEnum)]
pub enum ObjectiveArg {
    /// Masked diffusion (bidirectional): for the llada and mdlm samplers.
    Mdlm,
    /// Block diffusion (block-causal): for the bd3 sampler.
    Bd3,
    /// Autoregressive (causal): for the ar sampler.
    Ar,
    /// Diffusion forcing (causal, a noise level per token): for the forcing sampler.
    Forcing,
    /// Gaussian diffusion's noise predictor on the digits (DDPM's L_simple with label dropout).
    Ddpm,
    /// The noisy classifier of classifier guidance, on the digits.
    Classifier,
    /// Diffusion-LM: Gaussian diffusion on learned word vectors, rounded to words.
    DiffusionLm,
    /// Diffusion-LM's control classifier: a text's source (austen, bible) from its noised word
    /// vectors, those of the --denoiser folder.
    LatentClassifier,
    /// One masked-diffusion DiT over text and image tokens (MMaDA): captioned digits both ways
    /// and plain text, from --digits and --corpus.
    Unified,
}

impl ObjectiveArg {
    /// Whether it trains an image network.
    pub fn is_image(self) -> bool {
        matches!(self, ObjectiveArg::Ddpm | ObjectiveArg::Classifier)
    }
}

/// Arguments of `unmask train`. The model and recipe flags set up a new run; a run directory
/// that already holds a run resumes with its own recipe (only --max-steps, and for diffusion
/// forcing --forcing-sorted, may change).
#[derive(Args)]
pub struct TrainArgs {
    /// Run directory: created by a new run, resumed from when it holds one.
    #[arg(long)]
    pub run: PathBuf,
    /// Prepared corpus (`unmask prepare`): train/valid text and tokenizer.json.
    #[arg(long, default_value = "data/corpus")]
    pub corpus: PathBuf,
    /// Export the EMA weights as a model folder here when the run stops (done or time limit).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Store the exported weights in f16 (half the size).
    #[arg(long)]
    pub half: bool,
    /// Stop and save after this many minutes; the same command resumes.
    #[arg(long)]
    pub time_limit_minutes: Option<f64>,
    /// Backend.
    #[arg(long, default_value = "cpu")]
    pub backend: BackendKind,
    /// Start the run directory from an exported model folder (its training.json and weights):
    /// how a run continues on a machine without its run directory. AdamW's moments restart.
    #[arg(long)]
    pub warm_start: Option<PathBuf>,
    /// Objective of a new run.
    #[arg(long, value_enum)]
    pub objective: Option<ObjectiveArg>,
    /// Prepared digits (`unmask prepare --digits`), for the ddpm and classifier objectives.
    #[arg(long, default_value = unmask::corpus::digits::DEFAULT_DIGITS_DIR)]
    pub digits: PathBuf,
    /// Share of steps a digit is trained on the null class (ddpm; classifier-free guidance's
    /// p_uncond; 0 with --unconditional).
    #[arg(long)]
    pub label_dropout: Option<f64>,
    /// Train the noise predictor without classes (ddpm).
    #[arg(long)]
    pub unconditional: bool,
    /// Pixels along a patch's side (ddpm, classifier).
    #[arg(long)]
    pub patch_size: Option<usize>,
    /// The diffusion's steps T (ddpm, classifier).
    #[arg(long)]
    pub diffusion_steps: Option<usize>,
    /// The β schedule (ddpm, classifier).
    #[arg(long, value_enum)]
    pub beta_schedule: Option<super::BetaScheduleArg>,
    /// The noisy classifier folder recorded in the exported config.json, relative to --out
    /// (ddpm): the sampler's classifier when --classifier is not given.
    #[arg(long)]
    pub classifier: Option<String>,
    /// Block size (bd3).
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Dimension of the word vectors (diffusion-lm) [default: 32].
    #[arg(long)]
    pub embed_dim: Option<usize>,
    /// The Diffusion-LM folder whose word vectors the control classifier reads
    /// (latent-classifier).
    #[arg(long)]
    pub denoiser: Option<PathBuf>,
    /// Window length in tokens (`model_length`).
    #[arg(long)]
    pub model_length: Option<usize>,
    /// Width of the residual stream.
    #[arg(long)]
    pub hidden_dim: Option<usize>,
    /// Transformer blocks.
    #[arg(long)]
    pub n_blocks: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub n_heads: Option<usize>,
    /// Width of the adaLN conditioning.
    #[arg(long)]
    pub cond_dim: Option<usize>,
    /// Windows per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Warmup steps.
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Total steps (may be raised when resuming, to train longer).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// EMA decay.
    #[arg(long)]
    pub ema: Option<f64>,
    /// Global gradient-norm clip (0: off).
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// AdamW weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Steps between validations.
    #[arg(long)]
    pub val_every: Option<usize>,
    /// Validation windows per validation during the run.
    #[arg(long)]
    pub val_windows: Option<usize>,
    /// Steps between checkpoints.
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Seed of the weights, data order and noise.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Image → text sequences per step (unified) [default: --batch-size, as many as text →
    /// image].
    #[arg(long)]
    pub batch_mmu: Option<usize>,
    /// Corpus windows per step (unified) [default: a quarter of --batch-size].
    #[arg(long)]
    pub batch_lm: Option<usize>,
    /// Diffusion forcing: the share of windows whose per-token levels are sorted to rise along
    /// the window, as the autoregressive and pyramid schedules leave it [default: 0, independent
    /// levels]. A warm start or a resumed run may change it (a fine-tune of another
    /// distribution).
    #[arg(long)]
    pub forcing_sorted: Option<f64>,
}

/// Architecture defaults of a new run (sized for 2 CPU cores: see README "Default models").
const DEFAULT_MODEL_LENGTH: usize = 256;
const DEFAULT_HIDDEN_DIM: usize = 128;
const DEFAULT_N_BLOCKS: usize = 4;
const DEFAULT_N_HEADS: usize = 4;
const DEFAULT_COND_DIM: usize = 64;
const DEFAULT_BLOCK_SIZE: usize = 4;

impl TrainArgs {
    /// The shared recipe of a new run: the flags given, the defaults elsewhere.
    pub fn recipe(&self) -> Recipe {
        let d = Recipe::default();
        Recipe {
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(d.lr),
            warmup_steps: self.warmup_steps.unwrap_or(d.warmup_steps),
            max_steps: self.max_steps.unwrap_or(d.max_steps),
            ema: self.ema.unwrap_or(d.ema),
            gradient_clip_val: self.grad_clip.unwrap_or(d.gradient_clip_val),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            checkpoint_every: self.checkpoint_every.unwrap_or(d.checkpoint_every),
            seed: self.seed.unwrap_or(d.seed),
            ..d
        }
    }

    fn recipe_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--objective", self.objective.is_some()),
            ("--label-dropout", self.label_dropout.is_some()),
            ("--unconditional", self.unconditional),
            ("--patch-size", self.patch_size.is_some()),
            ("--diffusion-steps", self.diffusion_steps.is_some()),
            ("--beta-schedule", self.beta_schedule.is_some()),
            ("--block-size", self.block_size.is_some()),
            ("--model-length", self.model_length.is_some()),
            ("--embed-dim", self.embed_dim.is_some()),
            ("--hidden-dim", self.hidden_dim.is_some()),
            ("--n-blocks", self.n_blocks.is_some()),
            ("--n-heads", self.n_heads.is_some()),
            ("--cond-dim", self.cond_dim.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--warmup-steps", self.warmup_steps.is_some()),
            ("--ema", self.ema.is_some()),
            ("--grad-clip", self.grad_clip.is_some()),
            ("--weight-decay", self.weight_decay.is_some()),
            ("--val-every", self.val_every.is_some()),
            ("--val-windows", self.val_windows.is_some()),
            ("--checkpoint-every", self.checkpoint_every.is_some()),
            ("--seed", self.seed.is_some()),
            ("--batch-mmu", self.batch_mmu.is_some()),
            ("--batch-lm", self.batch_lm.is_some()),
        ];
        given
            .into_iter()
            .filter(|(_, g)| *g)
            .map(|(f, _)| f)
            .collect()
    }

    /// A resumed run's recipe as this command may change it: `--max-steps` only; any other
    /// recipe flag is refused by name.
    pub(crate) fn resume(&self, recipe: &mut Recipe) -> CliResult<()> {
        let flags = self.recipe_flags();
        if !flags.is_empty() {
            return Err(format!(
                "a resumed run keeps its recipe: drop {} (only --max-steps may change) or start a new --run directory",
                flags.join(", ")
            ));
        }
        if let Some(max_steps) = self.max_steps {
            recipe.max_steps = max_steps;
        }
        Ok(())
    }

    fn new_run(&self, vocab_size: usize) -> CliResult<(TrainConfig, ModelConfig)> {
        let objective = match self.objective {
            None => return Err("a new run needs --objective (mdlm, bd3, ar or forcing on the corpus; ddpm or classifier on the digits)".into()),
            Some(ObjectiveArg::Mdlm) => Objective::Mdlm,
            Some(ObjectiveArg::Ar) => Objective::Ar,
            Some(ObjectiveArg::Forcing) => Objective::Forcing,
            Some(ObjectiveArg::Bd3) => Objective::Bd3 {
                block_size: self.block_size.unwrap_or(DEFAULT_BLOCK_SIZE),
            },
            Some(ObjectiveArg::Ddpm | ObjectiveArg::Classifier) => {
                return Err("the image objectives train on the digits, not the corpus".into());
            }
            Some(
                ObjectiveArg::DiffusionLm | ObjectiveArg::LatentClassifier | ObjectiveArg::Unified,
            ) => {
                return Err("the Diffusion-LM and unified objectives are trained by their own runs".into());
            }
        };
        let model = objective.model_config(
            vocab_size,
            Shape {
                model_length: self.model_length.unwrap_or(DEFAULT_MODEL_LENGTH),
                hidden_dim: self.hidden_dim.unwrap_or(DEFAULT_HIDDEN_DIM),
                cond_dim: self.cond_dim.unwrap_or(DEFAULT_COND_DIM),
                n_blocks: self.n_blocks.unwrap_or(DEFAULT_N_BLOCKS),
                n_heads: self.n_heads.unwrap_or(DEFAULT_N_HEADS),
            },
        );
        model.validate().map_err(|e| e.to_string())?;
        let mut train = TrainConfig::new(objective);
        train.recipe = self.recipe();
        train.val_every = self.val_every.unwrap_or(train.val_every);
        train.val_windows = self.val_windows.unwrap_or(train.val_windows);
        train.time_sampling.forcing_sorted = self.forcing_sorted.unwrap_or(0.0);
        train.validate(&model).map_err(|e| e.to_string())?;
        Ok((train, model))
    }
}

pub(crate) fn tokenize(codec: &TextCodec, corpus: &Path, split: Split) -> CliResult<Vec<Vec<u32>>> {
    let docs = corpus::read_documents(corpus, split).map_err(|e| e.to_string())?;
    docs.iter()
        .map(|d| codec.encode(d).map_err(|e| e.to_string()))
        .collect()
}

type Weights = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// The tokenizer, state and weights (as both current and EMA) of an exported model folder.
fn warm_start(folder: &Path) -> CliResult<(Vec<u8>, RunState, Weights)> {
    let read = |name: &str| {
        let path = folder.join(name);
        std::fs::read(&path).map_err(|e| {
            format!(
                "{}: {e}; --warm-start takes a folder exported by `unmask train --out`",
                path.display()
            )
        })
    };
    let provenance: checkpoint::Provenance =
        serde_json::from_slice(&read(checkpoint::TRAINING_FILE)?)
            .map_err(|e| format!("{}: {e}", folder.join(checkpoint::TRAINING_FILE).display()))?;
    let weights = read(unmask::bundle::WEIGHTS_FILE)?;
    Ok((
        read(TOKENIZER_FILE)?,
        provenance.run,
        (weights.clone(), weights, None),
    ))
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// `unmask train`.
pub fn run(args: TrainArgs) -> CliResult<()> {
    if matches!(args.objective, Some(ObjectiveArg::Unified)) || super::unified::holds_run(&args.run)
    {
        return super::unified::train(args);
    }
    if let Some(flag) = [
        ("--batch-mmu", args.batch_mmu),
        ("--batch-lm", args.batch_lm),
    ]
    .iter()
    .find_map(|(flag, given)| given.map(|_| flag))
    {
        return Err(format!("{flag} is a flag of --objective unified"));
    }
    if matches!(
        args.objective,
        Some(ObjectiveArg::DiffusionLm | ObjectiveArg::LatentClassifier)
    ) || super::vectors::holds_run(&args.run)
    {
        return super::vectors::train(args);
    }
    if args.embed_dim.is_some() {
        return Err("--embed-dim is a flag of --objective diffusion-lm".into());
    }
    if args.denoiser.is_some() {
        return Err("--denoiser is a flag of --objective latent-classifier".into());
    }
    if args.objective.is_some_and(ObjectiveArg::is_image)
        || super::train_images::holds_image_run(&args.run)
    {
        return super::train_images::run(args);
    }
    let image_flags = [
        ("--label-dropout", args.label_dropout.is_some()),
        ("--unconditional", args.unconditional),
        ("--patch-size", args.patch_size.is_some()),
        ("--diffusion-steps", args.diffusion_steps.is_some()),
        ("--beta-schedule", args.beta_schedule.is_some()),
        ("--classifier", args.classifier.is_some()),
    ];
    if let Some((flag, _)) = image_flags.iter().find(|(_, given)| *given) {
        return Err(format!(
            "{flag} is a flag of the image objectives (--objective ddpm or classifier)"
        ));
    }
    let dir = RunDir::new(&args.run);
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let resuming = dir.exists();
    let (tokenizer, mut state, weights) = if resuming || args.warm_start.is_some() {
        let flags = args.recipe_flags();
        if !flags.is_empty() {
            return Err(format!(
                "a resumed or warm-started run keeps its recipe: drop {} (only --max-steps and --forcing-sorted may change) or start a new --run directory",
                flags.join(", ")
            ));
        }
        let (tokenizer, mut state, weights) = match (&args.warm_start, resuming) {
            (Some(_), true) => {
                return Err(format!(
                    "{} already holds a run: resume it without --warm-start, or choose a new --run directory",
                    args.run.display()
                ));
            }
            (Some(folder), false) => warm_start(folder)?,
            (None, _) => {
                let state = dir.state().map_err(|e| e.to_string())?;
                let saved = dir.files().map_err(|e| e.to_string())?;
                (
                    saved.tokenizer,
                    state,
                    (saved.weights, saved.ema, Some(saved.optimizer)),
                )
            }
        };
        if let Some(max_steps) = args.max_steps {
            state.train.recipe.max_steps = max_steps;
        }
        if let Some(share) = args.forcing_sorted {
            state.train.time_sampling.forcing_sorted = share;
            state
                .train
                .validate(&state.model)
                .map_err(|e| e.to_string())?;
        }
        (tokenizer, state, Some(weights))
    } else {
        let path = args.corpus.join(TOKENIZER_FILE);
        let tokenizer = std::fs::read(&path).map_err(|e| {
            format!(
                "{}: {e}; prepare the corpus first with `unmask prepare`",
                path.display()
            )
        })?;
        let vocab_size =
            TextCodec::vocab_size_of(&tokenizer).map_err(|e| format!("{}: {e}", path.display()))?;
        let (train, model) = args.new_run(vocab_size)?;
        let state = RunState {
            format: checkpoint::RUN_FORMAT.into(),
            version: checkpoint::RUN_VERSION,
            train,
            model,
            step: 0,
            tokens_seen: 0,
            train_seconds: 0.0,
            backends: Vec::new(),
            history: Vec::new(),
            commands: Vec::new(),
            corpus: args.corpus.display().to_string(),
        };
        (tokenizer, state, None)
    };
    state.commands.push(command_line());
    let codec = TextCodec::from_bytes(&tokenizer, &state.model).map_err(|e| e.to_string())?;
    let corpus = PathBuf::from(&state.corpus);
    let started = Instant::now();
    let train_docs = tokenize(&codec, &corpus, Split::Train)?;
    let valid_docs = tokenize(&codec, &corpus, Split::Valid)?;
    eprintln!(
        "corpus {}: {} training and {} validation tokens, tokenized in {:.1} s",
        corpus.display(),
        train_docs.iter().map(Vec::len).sum::<usize>(),
        valid_docs.iter().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    let start = match &weights {
        None => Start::Fresh,
        Some((weights, ema, _)) => Start::From {
            weights,
            ema,
            step: state.step,
        },
    };
    let documents = Documents {
        train: &train_docs,
        valid: &valid_docs,
    };
    let mut trainer = Trainer::new(
        state.train.clone(),
        state.model.clone(),
        codec,
        documents,
        &device,
        start,
    )
    .map_err(|e| e.to_string())?;
    if let Some((_, _, Some(optimizer))) = weights {
        trainer
            .load_optimizer(optimizer)
            .map_err(|e| e.to_string())?;
    }
    let (train_windows, valid_windows) = trainer.window_counts();
    eprintln!(
        "{} {} model: {} parameters, {} × {} tokens per step, {} training windows ({:.2} epochs planned), {} validation windows; {} at step {}/{} on {}",
        match (resuming, &args.warm_start) {
            (true, _) => "resuming the".to_string(),
            (false, Some(folder)) => format!("warm-started from {}: a new", folder.display()),
            (false, None) => "new".to_string(),
        },
        state.train.objective.name(),
        parameter_count(&state.model),
        state.train.recipe.batch_size,
        state.model.model_length,
        train_windows,
        (state.train.recipe.max_steps * state.train.recipe.batch_size) as f64
            / train_windows as f64,
        valid_windows,
        args.run.display(),
        state.step,
        state.train.recipe.max_steps,
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
        dir: &dir,
        trainer: &mut trainer,
        state: &mut state,
        tokenizer: &tokenizer,
    };
    train_loop(&mut run, plan, args.time_limit_minutes)?;
    if let Some(out) = &args.out {
        // The saved state: its history, time and backends span every session of the run.
        let state = dir.state().map_err(|e| e.to_string())?;
        if !trainer.is_done() {
            eprintln!(
                "exporting at step {} of {}: the same command resumes the run and exports again",
                trainer.step(),
                state.train.recipe.max_steps
            );
        }
        eprintln!("validating the EMA weights on the whole validation split…");
        let evaluation = trainer.evaluate(None).map_err(|e| e.to_string())?;
        let dtype = if args.half {
            safetensors::Dtype::F16
        } else {
            safetensors::Dtype::F32
        };
        checkpoint::export(out, &trainer, &state, &tokenizer, dtype, evaluation)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "exported {} (validation NLL {:.4} nats/token, perplexity ≤ {:.2} over {} tokens)",
            out.display(),
            evaluation.nll,
            evaluation.perplexity,
            evaluation.tokens
        );
    }
    Ok(())
}

/// A text run as the shared loop drives it.
struct Run<'a> {
    args: &'a TrainArgs,
    dir: &'a RunDir,
    trainer: &'a mut Trainer,
    state: &'a mut RunState,
    tokenizer: &'a [u8],
}

impl Session for Run<'_> {
    type Report = StepReport;
    type Losses = f64;
    const UNIT: &'static str = "tokens";

    fn train_step(&mut self) -> CliResult<(StepReport, usize, u64)> {
        let report = self.trainer.train_step().map_err(|e| e.to_string())?;
        let units = report.tokens as u64;
        self.state.step = report.step;
        self.state.tokens_seen += units;
        let step = report.step;
        Ok((report, step, units))
    }

    fn describe(&self, r: &StepReport) -> (f64, String) {
        let line = step_line(&format!("loss {:.4}", r.loss), r.lr, r.grad_norm);
        (r.loss, line)
    }

    fn add(losses: &mut f64, r: &StepReport) {
        *losses += r.loss;
    }

    fn validate(
        &mut self,
        r: &StepReport,
        losses: f64,
        steps: usize,
        rate: f64,
    ) -> CliResult<String> {
        let evaluation = self
            .trainer
            .evaluate(Some(self.state.train.val_windows))
            .map_err(|e| e.to_string())?;
        let sample = self
            .trainer
            .sample(SAMPLE_PROMPT, SAMPLE_TOKENS, r.step as u64)
            .map_err(|e| e.to_string())?;
        let entry = HistoryEntry {
            step: r.step,
            train_loss: losses / steps.max(1) as f64,
            lr: r.lr,
            tokens_seen: self.state.tokens_seen,
            tokens_per_second: rate,
            valid: Some(evaluation),
            sample: Some(sample.clone()),
        };
        let line = format!(
            "step {}: train loss {:.4}, validation NLL {:.4} (perplexity ≤ {:.2}, {} tokens)\n  sample: {}",
            r.step,
            entry.train_loss,
            evaluation.nll,
            evaluation.perplexity,
            evaluation.tokens,
            sample.replace('\n', " ")
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
            Some(self.trainer.tokens_per_step()),
        ));
        self.dir
            .save(self.trainer, &saved, self.tokenizer)
            .map_err(|e| e.to_string())
    }
}

/// Arguments of `unmask quality`.
#[derive(Args)]
pub struct QualityArgs {
    /// Model folder, or a Hugging Face id (owner/name[@revision]) from its cache (downloaded into
    /// it when missing).
    #[arg(long, value_parser = crate::model_folder())]
    pub model: PathBuf,
    /// Prepared corpus whose training text defines the known words.
    #[arg(long, default_value = "data/corpus")]
    pub corpus: PathBuf,
    /// Sampler [default: the one the model was trained for: mdlm for a bidirectional model, bd3
    /// for a block-causal one, ar for a causal one].
    #[arg(long, value_enum)]
    pub sampler: Option<super::SamplerArg>,
    /// Nucleus p of every generation (lower trades variety for safer words; the repeated 4-gram
    /// share shows what it costs).
    #[arg(long, default_value_t = unmask::train::quality::TOP_P)]
    pub top_p: f64,
    /// Backend.
    #[arg(long, default_value = "cpu")]
    pub backend: BackendKind,
    /// An autoregressive model folder (the shipped www/models/default/ar) under which every
    /// sample's perplexity is measured, beside held-out text's.
    #[arg(long, value_parser = crate::model_folder())]
    pub judge: Option<PathBuf>,
    /// Diffusion forcing's schedule (forcing) [default: each of autoregressive, pyramid and
    /// full-sequence in turn].
    #[arg(long, value_enum)]
    pub schedule: Option<super::schedule::ScheduleArg>,
    /// The pyramid's slope (forcing) [default: 1].
    #[arg(long)]
    pub slope: Option<f64>,
    /// Noise levels (forcing) [default: 8].
    #[arg(long)]
    pub levels: Option<usize>,
    /// Write the report (every sample) as JSON here (the last schedule's, for forcing without
    /// --schedule).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print every sample.
    #[arg(long)]
    pub verbose: bool,
    /// Prepared digits (ddpm family): the clean classifier's training split and the baseline.
    #[arg(long, default_value = unmask::corpus::digits::DEFAULT_DIGITS_DIR)]
    pub digits: PathBuf,
    /// Steps of every sample: DDIM's (ddpm family) [default: 100], the reverse chain's
    /// (diffusion-lm) [default: 200].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Classifier-free guidance scales to score (ddpm family).
    #[arg(long, value_delimiter = ',', default_value = "0,1,3")]
    pub cfg_scales: Vec<f64>,
    /// Classifier guidance scales to score (ddpm family; needs a classifier), or control scales
    /// S (diffusion-lm; needs a control classifier; 0 is no control).
    #[arg(long, value_delimiter = ',', default_value = "0,1,3,10")]
    pub classifier_scales: Vec<f64>,
    /// Noisy classifier folder (ddpm family), or the control classifier (diffusion-lm)
    /// [default: the one the model's config.json names].
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Samples per control scale and attribute (diffusion-lm).
    #[arg(long, default_value_t = 10)]
    pub control_samples: usize,
    /// λ, control's fluency weight (diffusion-lm) [default: 0.01].
    #[arg(long)]
    pub fluency: Option<f64>,
}

/// `unmask quality`.
pub fn quality(args: QualityArgs) -> CliResult<()> {
    use unmask::train::quality;
    match unmask::bundle::read_family(&args.model)
        .map_err(|e| format!("{}: {e}", args.model.display()))?
    {
        unmask::config::Family::DiffusionLm => return super::vectors::quality(&args),
        _ if args.fluency.is_some() => {
            return Err(
                "--fluency weighs Diffusion-LM's control: it is not a flag of this model's family"
                    .into(),
            );
        }
        unmask::config::Family::Ddpm => return super::images::quality(&args),
        unmask::config::Family::Unified => return super::unified::quality(&args),
        unmask::config::Family::Text => {}
    }
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let mut bundle = unmask::Bundle::from_dir(&args.model, &device)
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let docs = corpus::read_documents(&args.corpus, Split::Train).map_err(|e| e.to_string())?;
    let vocabulary = quality::vocabulary(&docs);
    let sampler = match args.sampler {
        None => bundle.config.own_sampler(),
        Some(arg) => arg.text().ok_or_else(|| {
            format!(
                "--sampler {} draws images: unmask quality of a digits model takes no --sampler",
                arg.name()
            )
        })?,
    };
    let judge = match &args.judge {
        Some(dir) => Some(
            unmask::Bundle::from_dir(dir, &device)
                .map_err(|e| format!("--judge {}: {e}", dir.display()))?,
        ),
        None => None,
    };
    let forcing_flags = args.schedule.is_some() || args.slope.is_some() || args.levels.is_some();
    if forcing_flags && sampler != SamplerKind::Forcing {
        return Err("--schedule, --slope and --levels are the forcing sampler's".into());
    }
    // Diffusion forcing without --schedule: each schedule in turn, from one end to the other.
    let schedules: Vec<Option<ScheduleArg>> = match (sampler, args.schedule) {
        (SamplerKind::Forcing, None) if args.slope.is_none() => vec![
            Some(ScheduleArg::Autoregressive),
            Some(ScheduleArg::Pyramid),
            Some(ScheduleArg::FullSequence),
        ],
        (_, schedule) => vec![schedule],
    };
    let mut report = None;
    for schedule in schedules {
        let mut settings = Settings::for_tokens(sampler, quality::GEN_LENGTH);
        for (knob, value) in forcing_knobs(schedule, args.slope, args.levels) {
            if let Some(value) = value {
                settings.set(knob, value).map_err(|e| e.to_string())?;
            }
        }
        let r = quality::check(
            &mut bundle,
            &settings,
            args.top_p,
            &vocabulary,
            judge.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        for s in r.samples.iter().filter(|_| args.verbose) {
            outln!(
                "[seed {}] {} ‖ {}\n  known words {}/{}, longest repeat {}, repeated {}-grams {:.1}%",
                s.seed,
                s.prompt,
                s.completion.replace('\n', " "),
                s.known_words,
                s.words,
                s.longest_repeat,
                quality::REP_N,
                100.0 * s.repeated_ngrams
            );
        }
        let schedule = match &settings {
            Settings::Forcing(f) => format!(", schedule {}, {} levels", f.schedule, f.levels),
            _ => String::new(),
        };
        outln!(
            "{} ({} sampler{schedule}, {} prompts × {} tokens, top-p {}): {}",
            args.model.display(),
            sampler.name(),
            r.samples.len(),
            quality::GEN_LENGTH,
            args.top_p,
            r.scores
        );
        report = Some(r);
    }
    let held_out = corpus::read_documents(&args.corpus, Split::Valid).map_err(|e| e.to_string())?;
    let reference = quality::reference(&held_out, &bundle.codec, &vocabulary, judge.as_ref())
        .map_err(|e| e.to_string())?;
    outln!(
        "held-out text ({} validation passages × {} tokens): {}",
        reference.passages,
        quality::GEN_LENGTH,
        reference.scores
    );
    if let (Some(path), Some(report)) = (&args.json, &report) {
        let json = serde_json::to_vec_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
