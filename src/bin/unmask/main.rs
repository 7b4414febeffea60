//! `unmask`: the command line of the Unmask core — generate with any sampler (live in the terminal),
//! dump logits for parity checks, inspect a model folder, benchmark.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, ModelDir, TextConfig};
use unmask::config::Attention;
use unmask::engine::Generation;
use unmask::sampler::{
    Fix, Knob, KnobValue, Remasking, SamplerKind, Settings, SettingsError, Step,
};

/// `println!` that ends the process quietly when stdout is closed early (`unmask … | head`), as
/// Unix tools do, where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::write_line(format_args!($($arg)*)) };
}

mod bench;
mod chat;
mod download;
mod images;
mod import;
mod prepare;
mod progress;
mod quantize;
mod schedule;
mod train;
mod train_images;
mod unified;
mod vectors;

pub(crate) use download::model_folder;

#[derive(Parser)]
#[command(
    name = "unmask",
    version,
    about = "See and use diffusion language models (MDLM, LLaDA, BD3-LM)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text, showing every step as masks resolve.
    Generate(GenerateArgs),
    /// Chat with an instruction-tuned diffusion LM (LLaDA, Dream, A2D), each reply unmasking live.
    Chat(chat::ChatArgs),
    /// Write the model's logits for a sequence to a safetensors file (parity checks).
    Forward(ForwardArgs),
    /// Describe a model folder: architecture, parameters, dtypes, tokenizer.
    Inspect {
        /// Model folder (config.json, model.safetensors, tokenizer.json), or a Hugging Face id
        /// (owner/name[@revision]) from its cache (downloaded into it when missing).
        #[arg(long, value_parser = model_folder())]
        model: PathBuf,
    },
    /// Measure forward latency and sampler throughput.
    Bench(bench::BenchArgs),
    /// Write a random-weight model folder of a preset's shape (benchmarks, a fresh start).
    Init(bench::InitArgs),
    /// Write a copy of a LLaDA / Dream / A2D folder with its matrices quantized to 8 or 4 bits.
    Quantize(quantize::QuantizeArgs),
    /// Write a model folder from a llama.cpp GGUF file of LLaDA, Dream or an A2D Qwen (F32, F16,
    /// BF16, Q8_0, Q4_0).
    Import(import::ImportArgs),
    /// Train a model (MDLM, BD3-LM or AR) on the prepared corpus; resumes a run directory.
    Train(train::TrainArgs),
    /// Score a model's generations from 20 fixed prompts: known-word share, longest repeat.
    Quality(train::QualityArgs),
    /// Build the training corpus and its tokenizer from public-domain text (Austen, the WEB Bible).
    Prepare(prepare::Args),
    /// Download a model from the Hugging Face hub into its cache (resumable, checked).
    Download(download::DownloadArgs),
    /// Draw diffusion forcing's scheduling matrix: each token's noise level at each step, from
    /// full-sequence diffusion to autoregression.
    Schedule(schedule::ScheduleArgs),
}

/// The `--sampler` choices of `generate` and `quality`: the text family's four, and the
/// Gaussian diffusion family's two.
#[derive(Clone, Copy, ValueEnum)]
pub enum SamplerArg {
    Llada,
    Mdlm,
    Bd3,
    Ar,
    /// Diffusion forcing's scheduling matrix (a model trained with --objective forcing).
    Forcing,
    /// DDPM's ancestral chain over all T steps (ddpm family).
    Ddpm,
    /// DDIM over --steps of the T times (ddpm family).
    Ddim,
}

impl SamplerArg {
    /// The text sampler it names, if it names one.
    pub fn text(self) -> Option<SamplerKind> {
        match self {
            SamplerArg::Llada => Some(SamplerKind::Llada),
            SamplerArg::Mdlm => Some(SamplerKind::Mdlm),
            SamplerArg::Bd3 => Some(SamplerKind::Bd3),
            SamplerArg::Ar => Some(SamplerKind::Ar),
            SamplerArg::Forcing => Some(SamplerKind::Forcing),
            SamplerArg::Ddpm | SamplerArg::Ddim => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            SamplerArg::Llada => "llada",
            SamplerArg::Mdlm => "mdlm",
            SamplerArg::Bd3 => "bd3",
            SamplerArg::Ar => "ar",
            SamplerArg::Forcing => "forcing",
            SamplerArg::Ddpm => "ddpm",
            SamplerArg::Ddim => "ddim",
        }
    }
}

/// The `--beta-schedule` choices.
#[derive(Clone, Copy, ValueEnum)]
pub enum BetaScheduleArg {
    /// β linear from 1e-4 to 0.02 (Ho et al. 2020).
    Linear,
    /// ᾱ a squared cosine (Nichol & Dhariwal 2021).
    Cosine,
    /// ᾱ(τ) = 1 − √(τ + 10⁻⁴) (Diffusion-LM, Li et al. 2022).
    Sqrt,
}

impl From<BetaScheduleArg> for unmask::sampler::gaussian::BetaSchedule {
    fn from(arg: BetaScheduleArg) -> Self {
        match arg {
            BetaScheduleArg::Linear => Self::Linear,
            BetaScheduleArg::Cosine => Self::Cosine,
            BetaScheduleArg::Sqrt => Self::Sqrt,
        }
    }
}

/// The `--variance` choices: σ_t² = β_t or the posterior's β̃_t (Ho et al. §3.2).
#[derive(Clone, Copy, ValueEnum)]
enum VarianceArg {
    Beta,
    Posterior,
}

#[derive(Clone, Copy, ValueEnum)]
enum RemaskingArg {
    LowConfidence,
    Random,
    Margin,
    Entropy,
}

#[derive(Clone, Copy, ValueEnum)]
enum AttentionArg {
    Bidirectional,
    BlockCausal,
    Causal,
}

/// Tokens `generate` writes when --gen-length is not given.
const DEFAULT_GEN_LENGTH: usize = 64;

#[derive(Args)]
struct GenerateArgs {
    /// Model folder (config.json, model.safetensors, and tokenizer.json for text), or a Hugging
    /// Face id (owner/name[@revision]) from its cache (downloaded into it when missing).
    #[arg(long, value_parser = model_folder())]
    model: PathBuf,
    /// Prompt (text); write [MASK] anywhere to have it filled in place. For a text + image
    /// model's --task t2i, the caption of the digit to draw ("a handwritten seven").
    #[arg(long)]
    prompt: Option<String>,
    /// The task of a text + image model: t2i draws a digit for --prompt, mmu captions --image.
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// The digit --task mmu captions: a JSON file of 64 values on 0–16, or a samples file
    /// (`--images` of t2i or ddpm), whose first image is taken.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Sampler [default: the one the model was trained for: config.json's `sampler`, else `ar`
    /// for a causal model, `bd3` for block diffusion, `mdlm` for masked diffusion].
    #[arg(long, value_enum)]
    sampler: Option<SamplerArg>,
    /// Denoising steps over the whole generation [default: one per generated token, the
    /// setting LLaDA and MDLM report their best samples at, as on the page].
    #[arg(long)]
    steps: Option<usize>,
    /// Tokens to generate after the prompt (text) [default: 64].
    #[arg(long)]
    gen_length: Option<usize>,
    /// Semi-autoregressive block (llada); must match the model's for bd3.
    #[arg(long)]
    block_length: Option<usize>,
    /// Which masked positions to commit first [default: low-confidence].
    #[arg(long, value_enum)]
    remasking: Option<RemaskingArg>,
    /// Sampling temperature (0 = greedy); default 0 for llada, 1 otherwise.
    #[arg(long)]
    temperature: Option<f64>,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling p (default 0.9 for bd3).
    #[arg(long)]
    top_p: Option<f64>,
    /// Classifier-free guidance scale w (llada, ddpm) [default: 0, off]; ddpm steers to --class
    /// with (1 + w)·ε(x, y) − w·ε(x, ∅).
    #[arg(long)]
    cfg: Option<f64>,
    /// The class to draw (ddpm) [default: any, from the unconditional prediction].
    #[arg(long)]
    class: Option<usize>,
    /// Noisy classifier folder for classifier guidance (ddpm), or the control classifier
    /// (diffusion-lm) [default: the one the model's config.json names].
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Plug-and-play control (diffusion-lm): steer the sentence toward an attribute of the
    /// control classifier (austen, bible), or none [default: none].
    #[arg(long)]
    control: Option<String>,
    /// S (diffusion-lm): the weight of the control classifier's cross-entropy; 0 only watches
    /// its probability [default: 1].
    #[arg(long)]
    control_scale: Option<f64>,
    /// λ (diffusion-lm): the weight of control's fluency term Σ(x − μ)²/σ² [default: 0.01].
    #[arg(long)]
    fluency: Option<f64>,
    /// Classifier guidance scale s (ddpm): each step's mean moves by s·Σ·∇ log p(class | x_t).
    #[arg(long)]
    classifier_scale: Option<f64>,
    /// DDIM's η (ddpm family, ddim sampler): 0 deterministic, 1 DDPM's variance [default: 0].
    #[arg(long)]
    ddim_eta: Option<f64>,
    /// σ_t² of DDPM's steps (ddpm sampler) [default: beta].
    #[arg(long, value_enum)]
    variance: Option<VarianceArg>,
    /// The clamping trick (diffusion-lm): x̂₀ replaced by its nearest word vector at every step
    /// [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    clamp: Option<bool>,
    /// Images drawn together (ddpm) [default: 1].
    #[arg(long)]
    count: Option<usize>,
    /// Write the images as JSON here (ddpm): {"images": [[64 values, 0–16]], "classes": [..]}.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Draw the samples as one PNG grid here (ddpm), ten to a row.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Draw the run of the first image as an animated PNG here (ddpm): x_t beside x̂₀ per step.
    #[arg(long)]
    apng: Option<PathBuf>,
    /// Draw the first sample as SVG here (ddpm).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Fast-dLLM confidence threshold: commit every position at least this sure.
    #[arg(long)]
    threshold: Option<f64>,
    /// Diffusion forcing's schedule (forcing) [default: pyramid].
    #[arg(long, value_enum)]
    schedule: Option<schedule::ScheduleArg>,
    /// Steps by which each token trails the one before it (forcing, pyramid only), 0
    /// (full-sequence) to --levels (autoregressive) [default: 1].
    #[arg(long)]
    slope: Option<f64>,
    /// Noise levels, fully masked down to clean: the steps each token takes (forcing)
    /// [default: 8].
    #[arg(long)]
    levels: Option<usize>,
    /// BD3-LM first-hitting: one random masked position per step (bd3's default unless
    /// --steps, --remasking or --threshold is given); `--first-hitting false` ranks positions by
    /// --remasking instead.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    first_hitting: Option<bool>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
    /// Disable the KV cache (bd3, ar) and MDLM's call-skipping cache.
    #[arg(long)]
    no_cache: bool,
    /// Keep going past EOS (bd3, ar).
    #[arg(long)]
    no_stop_at_eos: bool,
    /// Write the whole trajectory as JSON.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Override the model's attention (e.g. run a block-diffusion model bidirectionally for llada).
    #[arg(long, value_enum)]
    attention: Option<AttentionArg>,
    /// No live view; print only the result.
    #[arg(long)]
    quiet: bool,
    /// Pause after each step of the live view, in milliseconds (to watch a small model write).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

/// What a text + image model is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    /// Text → image: draw a digit for a caption (MaskGIT with classifier-free guidance).
    T2i,
    /// Image → text: caption a digit (LLaDA's low-confidence remasking).
    Mmu,
}

#[derive(Args)]
struct ForwardArgs {
    /// Model folder, or a Hugging Face id (owner/name[@revision]) from its cache (downloaded into
    /// it when missing).
    #[arg(long, value_parser = model_folder())]
    model: PathBuf,
    /// Text to tokenize (BOS is prepended when the tokenizer has one).
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    text: Option<String>,
    /// Comma-separated token ids, used as they are.
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    /// Attention (default: the model's own).
    #[arg(long, value_enum)]
    attention: Option<AttentionArg>,
    /// Output file; holds one f32 tensor `logits` of shape [L, V].
    #[arg(long)]
    out: PathBuf,
    /// Backend.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
}

type CliResult<T> = Result<T, String>;

/// Why a command failed, and whose fault it was: bad input (arguments, a model folder's files)
/// exits with 2, as clap's usage errors do; a failure while running (the backend, a write) with 1.
pub enum CliError {
    /// The input was refused before anything ran.
    Input(String),
    /// Something failed while running.
    Failed(String),
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError::Failed(message)
    }
}

impl From<unmask::sampler::SampleError> for CliError {
    fn from(e: unmask::sampler::SampleError) -> Self {
        match e {
            unmask::sampler::SampleError::Settings(e) => settings_error(&e),
            e @ unmask::sampler::SampleError::Model(_) => CliError::Failed(e.to_string()),
        }
    }
}

/// Writes `files` into the folder `out` (created), all or none: a file that exists already is
/// never overwritten, and none is written while one of them would be.
pub fn write_new_files(out: &Path, files: &[(&str, &[u8])]) -> CliResult<()> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    if let Some((name, _)) = files.iter().find(|(name, _)| out.join(name).exists()) {
        return Err(format!(
            "cannot write {}: it exists already (it is not overwritten)",
            out.join(name).display()
        ));
    }
    for (name, bytes) in files {
        let path = out.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                format!(
                    "cannot write {}: {e} (it is not overwritten)",
                    path.display()
                )
            })?;
        file.write_all(bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// One line to stdout; a closed pipe ends the process with success (the reader has what it
/// wanted), any other write error with a message.
fn write_line(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate(args),
        Command::Chat(args) => chat::run(args),
        Command::Forward(args) => forward(args).map_err(CliError::from),
        Command::Inspect { model } => inspect(&model).map_err(CliError::from),
        Command::Bench(args) => bench::run(args).map_err(CliError::from),
        Command::Init(args) => bench::init(args).map_err(CliError::from),
        Command::Quantize(args) => quantize::run(args),
        Command::Import(args) => import::run(args),
        Command::Train(args) => train::run(args).map_err(CliError::from),
        Command::Quality(args) => train::quality(args).map_err(CliError::from),
        Command::Prepare(args) => prepare::run(args).map_err(CliError::from),
        Command::Download(args) => download::run(args),
        Command::Schedule(args) => schedule::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn open(dir: &Path, backend: BackendKind) -> CliResult<Bundle> {
    let device = backend::init(backend).map_err(|e| e.to_string())?;
    Bundle::from_dir(dir, &device).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The attention `arg` asks for; block-causal takes config.json's `block_size`, else `block`
/// (`--block-length`: dllm's published `-bd3lm` folders keep their block size, 32, in the
/// sampler, not in config.json).
fn attention_of(
    arg: AttentionArg,
    config: &unmask::bundle::TextConfig,
    block: Option<usize>,
) -> CliResult<Attention> {
    Ok(match arg {
        AttentionArg::Bidirectional => Attention::Bidirectional,
        AttentionArg::Causal => Attention::Causal,
        AttentionArg::BlockCausal => Attention::BlockCausal {
            block_size: match (config.block_size(), block) {
                (Some(own), _) => own,
                (None, Some(0)) => return Err("--block-length must be positive".into()),
                (None, Some(b)) => b,
                (None, None) => {
                    return Err("block-causal attention needs a block size: config.json has no block_size, so give --block-length (dllm's -bd3lm models use 32)".into());
                }
            },
        },
    })
}

/// The flag that sets `knob`, for messages.
fn flag_of(knob: Knob) -> &'static str {
    match knob {
        Knob::Steps => "--steps",
        Knob::GenLength => "--gen-length",
        Knob::BlockLength => "--block-length",
        Knob::Remasking => "--remasking",
        Knob::Temperature => "--temperature",
        Knob::TopK => "--top-k",
        Knob::TopP => "--top-p",
        Knob::Cfg => "--cfg",
        Knob::Threshold => "--threshold",
        Knob::FirstHitting => "--first-hitting",
        Knob::Cache => "--no-cache",
        Knob::StopAtEos => "--no-stop-at-eos",
        Knob::Seed => "--seed",
        Knob::Eta => "--ddim-eta",
        Knob::Variance => "--variance",
        Knob::Class => "--class",
        Knob::ClassifierScale => "--classifier-scale",
        Knob::Count => "--count",
        Knob::Schedule => "--schedule",
        Knob::Slope => "--slope",
        Knob::Levels => "--levels",
    }
}

/// A settings error with what to do about it on the command line.
pub(crate) fn settings_error(e: &SettingsError) -> CliError {
    let hint = match e.fix() {
        Some(Fix {
            knob,
            to: Some(KnobValue::Flag(false)),
        }) => format!(" (add {})", flag_of(knob)),
        Some(Fix {
            to: Some(KnobValue::Off),
            knob,
        }) => format!(" (leave out {})", flag_of(knob)),
        Some(Fix { knob, to: None }) => match e {
            SettingsError::NoSuchKnob { .. } => format!(" (leave out {})", flag_of(knob)),
            _ => format!(" (see {})", flag_of(knob)),
        },
        _ => String::new(),
    };
    CliError::Input(format!("{e}{hint}"))
}

/// The run's settings: `sampler`'s defaults for `--gen-length` tokens in one step per token, then
/// every flag given, each through the knob table (a flag the sampler has no knob for is refused).
fn settings_of(args: &GenerateArgs, sampler: SamplerKind) -> Result<Settings, CliError> {
    let mut settings = Settings::for_tokens(sampler, args.gen_length.unwrap_or(DEFAULT_GEN_LENGTH));
    let ranked = args.steps.is_some() || args.remasking.is_some() || args.threshold.is_some();
    if sampler == SamplerKind::Bd3 && args.first_hitting.is_none() && ranked {
        settings
            .set(Knob::FirstHitting, KnobValue::Flag(false))
            .map_err(|e| settings_error(&e))?;
    }
    let number = |x: f64| KnobValue::Number(x);
    let given: [(Knob, Option<KnobValue>); 12] = [
        (Knob::FirstHitting, args.first_hitting.map(KnobValue::Flag)),
        (Knob::Steps, args.steps.map(|n| number(n as f64))),
        (
            Knob::BlockLength,
            args.block_length.map(|n| number(n as f64)),
        ),
        (
            Knob::Remasking,
            args.remasking.map(|r| {
                KnobValue::Remasking(match r {
                    RemaskingArg::LowConfidence => Remasking::LowConfidence,
                    RemaskingArg::Random => Remasking::Random,
                    RemaskingArg::Margin => Remasking::Margin,
                    RemaskingArg::Entropy => Remasking::Entropy,
                })
            }),
        ),
        (Knob::Temperature, args.temperature.map(number)),
        (Knob::TopK, args.top_k.map(|k| number(k as f64))),
        (Knob::TopP, args.top_p.map(number)),
        (Knob::Cfg, args.cfg.map(number)),
        (Knob::Threshold, args.threshold.map(number)),
        (Knob::Cache, args.no_cache.then_some(KnobValue::Flag(false))),
        (
            Knob::StopAtEos,
            args.no_stop_at_eos.then_some(KnobValue::Flag(false)),
        ),
        (Knob::Seed, Some(number(args.seed as f64))),
    ];
    let forcing = schedule::forcing_knobs(args.schedule, args.slope, args.levels);
    set_knobs(&mut settings, given.into_iter().chain(forcing))?;
    Ok(settings)
}

/// Sets each knob given a value, in order; the first the sampler refuses is the error, with its
/// flag.
fn set_knobs(
    settings: &mut Settings,
    given: impl IntoIterator<Item = (Knob, Option<KnobValue>)>,
) -> Result<(), CliError> {
    for (knob, value) in given {
        if let Some(value) = value {
            settings.set(knob, value).map_err(|e| settings_error(&e))?;
        }
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> Result<(), CliError> {
    let family = unmask::bundle::read_family(&args.model)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.model.display())))?;
    if family != unmask::config::Family::Unified {
        let given = [
            ("--task", args.task.is_some()),
            ("--image", args.image.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
            return Err(CliError::Input(format!(
                "{flag} is a flag of text + image models; {} is a {} model",
                args.model.display(),
                family.name()
            )));
        }
    }
    match family {
        unmask::config::Family::Ddpm => return images::generate(&args),
        unmask::config::Family::DiffusionLm => return vectors::generate(&args),
        unmask::config::Family::Unified => return unified::generate(&args),
        unmask::config::Family::Text => {}
    }
    images::refuse_image_flags(&args)?;
    let vector_flags = [
        ("--clamp", args.clamp.is_some()),
        ("--control", args.control.is_some()),
        ("--control-scale", args.control_scale.is_some()),
        ("--fluency", args.fluency.is_some()),
    ];
    if let Some((flag, _)) = vector_flags.iter().find(|(_, given)| *given) {
        return Err(CliError::Input(format!(
            "{flag} is a flag of Diffusion-LM; {} is a masked-diffusion model",
            args.model.display()
        )));
    }
    let Some(prompt) = args.prompt.as_deref() else {
        return Err(CliError::Input(format!(
            "{} is a text model: give --prompt",
            args.model.display()
        )));
    };
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    // A folder that does not open is the reader's to fix: its message names the file and field.
    let mut bundle = Bundle::from_dir(&args.model, &device)
        .map_err(|e| CliError::Input(format!("{}: {e}", args.model.display())))?;
    if let Some(a) = args.attention {
        bundle.model.set_attention(
            attention_of(a, &bundle.config, args.block_length).map_err(CliError::Input)?,
        );
    }
    let spec = unmask::sampler::Denoiser::spec(&bundle.model).clone();
    let sampler = match args.sampler {
        None => bundle.config.own_sampler(),
        Some(arg) => arg.text().ok_or_else(|| {
            CliError::Input(format!(
                "--sampler {} draws images; {} is a text model (llada, mdlm, bd3, ar or forcing)",
                arg.name(),
                args.model.display()
            ))
        })?,
    };
    let settings = settings_of(&args, sampler)?;
    // Every setting and size is checked here, against the model, before its first call.
    let mut generation = Generation::new(settings, prompt, &bundle.codec, &spec)?;
    // Only a trace keeps each position's candidates, and every step; without one neither is
    // kept, so a diffusion-forcing rollout of any length runs in the canvas's memory.
    generation.show_candidates(args.trace.is_some());
    generation.set_recording(args.trace.is_some());
    if args.trace.is_some() {
        generation
            .check_recordable()
            .map_err(|e| settings_error(&e))?;
    }
    let live = !args.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let codec = bundle.codec.clone();
    let prompt_len = generation.prompt_ids().len();
    pollster::block_on(generation.run(&mut bundle.model, |step| {
        if live {
            draw(step, 0, prompt_len, &codec);
            std::thread::sleep(std::time::Duration::from_millis(args.delay_ms));
        }
    }))?;
    let elapsed = started.elapsed().as_secs_f64();
    let name = args.model.display().to_string();
    let trajectory = generation.trajectory(&name, &bundle.codec, &spec);
    if let Some(path) = &args.trace {
        std::fs::write(path, trajectory.to_json())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    outln!("{}", trajectory.text);
    if !args.quiet {
        let s = &trajectory.stats;
        eprintln!(
            "{} steps, {} model calls ({} skipped by cache), {} tokens in {:.2}s: {:.1} tokens/s on {}",
            s.steps,
            s.model_calls,
            s.skipped_calls,
            s.generated_tokens,
            elapsed,
            s.generated_tokens as f64 / elapsed.max(1e-9),
            args.backend.name()
        );
    }
    Ok(())
}

/// Redraws the canvas from position `from` on: prompt dimmed, masks as placeholders, this step's
/// commits highlighted by confidence (LLaDA's app colours: red < 0.3, yellow < 0.7, green), the
/// current block underlined.
fn draw(step: &Step, from: usize, prompt_len: usize, codec: &unmask::text::TextCodec) {
    let mut out = String::from("\x1b[H\x1b[2J");
    out.push_str(&format!(
        "step {}  model calls {}  masked {}\n\n",
        step.index + 1,
        step.model_calls,
        step.masked.iter().filter(|&&m| m).count()
    ));
    let cells = step.canvas.iter().zip(&step.masked).enumerate();
    for (i, (&token, &masked)) in cells.skip(from) {
        let in_block = (step.block[0]..step.block[1]).contains(&i);
        let fresh = step.commits.iter().find(|c| c.position == i);
        let text = if masked {
            "░░".to_owned()
        } else {
            codec.token_text(token)
        };
        let style = match (masked, fresh, i < prompt_len) {
            (true, _, _) => "\x1b[90m".to_owned(),
            (_, Some(c), _) if c.confidence < 0.3 => "\x1b[1;31m".to_owned(),
            (_, Some(c), _) if c.confidence < 0.7 => "\x1b[1;33m".to_owned(),
            (_, Some(_), _) => "\x1b[1;32m".to_owned(),
            (_, None, true) => "\x1b[2m".to_owned(),
            _ => String::new(),
        };
        let underline = if in_block { "\x1b[4m" } else { "" };
        out.push_str(&format!("{style}{underline}{text}\x1b[0m "));
    }
    out.push('\n');
    let mut err = std::io::stderr();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

fn forward(args: ForwardArgs) -> CliResult<()> {
    let mut bundle = open(&args.model, args.backend)?;
    if let Some(a) = args.attention {
        bundle
            .model
            .set_attention(attention_of(a, &bundle.config, None)?);
    }
    let ids = match (&args.ids, &args.text) {
        (Some(ids), _) => ids.clone(),
        (None, Some(text)) => bundle
            .codec
            .encode_prompt(text)
            .map_err(|e| e.to_string())?,
        (None, None) => return Err("give --text or --ids".into()),
    };
    if ids.is_empty() {
        return Err("the sequence is empty".into());
    }
    let logits =
        pollster::block_on(bundle.model.logits(&[&ids], 0.0)).map_err(|e| e.to_string())?;
    let bytes: Vec<u8> = logits
        .as_slice()
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![logits.rows(), logits.vocab()],
        &bytes,
    )
    .map_err(|e| e.to_string())?;
    let file = safetensors::serialize([("logits", view)], None).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, file)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    eprintln!(
        "wrote logits [{}, {}] to {}",
        logits.rows(),
        logits.vocab(),
        args.out.display()
    );
    Ok(())
}

fn inspect(dir: &Path) -> CliResult<()> {
    match unmask::bundle::read_family(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        unmask::config::Family::Ddpm => return images::inspect(dir),
        unmask::config::Family::Unified => return unified::inspect(dir),
        _ => {}
    }
    let files = ModelDir::read(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let device = backend::init(BackendKind::Cpu).map_err(|e| e.to_string())?;
    let bundle = Bundle::from_files(files.files(), &device)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let c = &bundle.config;
    let spec = bundle.model_spec();
    outln!("model       {}", dir.display());
    outln!("type        {}", c.describe());
    outln!(
        "attention   {}{}",
        spec.attention.name(),
        c.block_size()
            .map(|b| format!(" (block_size {b})"))
            .unwrap_or_default()
    );
    match c {
        TextConfig::Dit(c) => outln!(
            "layers      {} blocks, hidden {}, {} heads of {}, cond {}, mlp {}",
            c.n_blocks,
            c.hidden_dim,
            c.n_heads,
            c.head_dim(),
            c.cond_dim,
            c.mlp_dim()
        ),
        TextConfig::Transformer(t) => outln!(
            "layers      {} blocks, hidden {}, {} query / {} key-value heads of {}, mlp {}, rope θ {}{}{}{}",
            t.num_hidden_layers,
            t.hidden_size,
            t.num_attention_heads,
            t.num_key_value_heads,
            t.head_dim,
            t.intermediate_size,
            t.rope_theta,
            if t.qkv_bias { ", q/k/v bias" } else { "" },
            if t.qk_norm { ", q/k norm" } else { "" },
            if t.tie_word_embeddings {
                ", tied head"
            } else {
                ""
            },
        ),
    }
    if let TextConfig::Transformer(t) = c
        && t.shift_logits
    {
        outln!("logits      shifted: position i is read off row i − 1");
    }
    if let TextConfig::Transformer(t) = c
        && let Some(q) = t.quantization
    {
        outln!(
            "weights     {}: every matrix in blocks of {} with an f16 scale",
            q.format.name(),
            q.block_size
        );
    }
    outln!("context     {} positions", c.model_length());
    outln!("time cond.  {}", c.time_conditioning());
    outln!(
        "parameters  {} ({:.2}M)",
        c.parameter_count(),
        c.parameter_count() as f64 / 1e6
    );
    let mut dtypes = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for shard in &files.weights {
        let file = safetensors::SafeTensors::deserialize(shard).map_err(|e| e.to_string())?;
        for (_, t) in file.tensors() {
            let e = dtypes.entry(format!("{:?}", t.dtype())).or_default();
            e.0 += 1;
            e.1 += t.data().len();
        }
    }
    if files.weights.len() > 1 {
        outln!("shards      {}", files.weights.len());
    }
    for (dtype, (n, bytes)) in dtypes {
        outln!(
            "dtype       {dtype}: {n} tensors, {:.1} MB",
            bytes as f64 / 1e6
        );
    }
    let codec = &bundle.codec;
    outln!(
        "vocabulary  {} tokens (model {})",
        codec.vocab_size(),
        c.vocab_size()
    );
    outln!(
        "mask        {} {:?}",
        codec.mask_id(),
        codec.token_text(codec.mask_id())
    );
    let show = |id: Option<u32>| {
        id.map(|i| format!("{i} {:?}", codec.token_text(i)))
            .unwrap_or_else(|| "none".into())
    };
    outln!("bos         {}", show(codec.bos_id()));
    outln!("eos         {}", show(codec.eos_id()));
    Ok(())
}
