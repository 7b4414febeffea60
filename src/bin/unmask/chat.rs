//! `unmask chat`: a conversation with an instruction-tuned diffusion LM in the terminal, each
//! reply unmasking live (block by block for the semi-autoregressive samplers), through the
//! model's own chat template and its authors' chat sampler ([`unmask::chat`]).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, ModelDir, TextConfig};
use unmask::chat::{
    CHAT_TEMPLATE_FILE, ChatTemplate, Conversation, Role, chat_settings, end_of_turn_ids,
    reply_text,
};
use unmask::engine::Generation;
use unmask::sampler::{Denoiser, Knob, KnobValue, Settings};
use unmask::text::TextCodec;

use crate::{AttentionArg, CliError, attention_of, draw, set_knobs};

#[derive(Args)]
pub struct ChatArgs {
    /// Model folder (config.json, weights, tokenizer.json, and tokenizer_config.json with the
    /// chat template, or chat_template.jinja), or a Hugging Face id (owner/name[@revision])
    /// from its cache (downloaded into it when missing).
    #[arg(long, value_parser = crate::model_folder())]
    model: PathBuf,
    /// The system prompt opening the conversation.
    #[arg(long)]
    system: Option<String>,
    /// A user turn; repeat for several. Without any, turns are read from standard input, one
    /// line each, until it ends.
    #[arg(long)]
    message: Vec<String>,
    /// Tokens per reply [default: 128, the authors' chat scripts].
    #[arg(long)]
    gen_length: Option<usize>,
    /// Denoising steps per reply [default: one per token].
    #[arg(long)]
    steps: Option<usize>,
    /// Semi-autoregressive block [default: 32, or the model's own for block diffusion]; with
    /// `--attention block-causal`, the block of a model whose config.json has none.
    #[arg(long)]
    block_length: Option<usize>,
    /// Override the model's attention: `block-causal` runs dllm's published `-bd3lm` folders
    /// (their block size lives in the sampler: give `--block-length 32`) with BD3-LM's sampler.
    #[arg(long, value_enum)]
    attention: Option<AttentionArg>,
    /// Sampling temperature [default: 0, Dream's 0.2].
    #[arg(long)]
    temperature: Option<f64>,
    /// Nucleus sampling p [default: none, Dream's 0.95].
    #[arg(long)]
    top_p: Option<f64>,
    /// Fast-dLLM confidence threshold: commit every position at least this sure.
    #[arg(long)]
    threshold: Option<f64>,
    /// Seed of every random draw (each reply's).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
    /// Print the rendered prompt of each turn to standard error.
    #[arg(long)]
    show_prompt: bool,
    /// No live view: only the replies.
    #[arg(long)]
    quiet: bool,
    /// Pause after each step of the live view, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

/// The chat sampler with the flags given on top: a shorter reply takes one step per token and
/// a block no longer than itself unless those are given too.
fn settings_of(args: &ChatArgs, preset: Settings) -> Result<Settings, CliError> {
    let mut settings = preset;
    let number = |x: f64| KnobValue::Number(x);
    let length = args.gen_length.map(|n| number(n as f64));
    set_knobs(
        &mut settings,
        [(Knob::GenLength, length), (Knob::Steps, length)],
    )?;
    let given = [
        (Knob::Steps, args.steps.map(|n| number(n as f64))),
        (
            Knob::BlockLength,
            args.block_length.map(|n| number(n as f64)),
        ),
        (Knob::Temperature, args.temperature.map(number)),
        (Knob::TopP, args.top_p.map(number)),
        (Knob::Threshold, args.threshold.map(number)),
        (Knob::Seed, Some(number(args.seed as f64))),
    ];
    set_knobs(&mut settings, given)?;
    if let (Some(n), None, Settings::Llada(s)) = (args.gen_length, args.block_length, &mut settings)
    {
        s.block_length = s.block_length.map(|b| b.min(n));
    }
    Ok(settings)
}

/// The folder's chat template: `chat_template.jinja`, else `tokenizer_config.json`'s.
fn template_of(
    args: &ChatArgs,
    dir: &ModelDir,
    codec: &TextCodec,
) -> Result<ChatTemplate, CliError> {
    let input =
        |e: &dyn std::fmt::Display| CliError::Input(format!("{}: {e}", args.model.display()));
    let jinja = match std::fs::read_to_string(args.model.join(CHAT_TEMPLATE_FILE)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(input(&format!("cannot read {CHAT_TEMPLATE_FILE}: {e}"))),
    };
    let config = dir.tokenizer_config.as_deref().unwrap_or(b"{}");
    ChatTemplate::from_tokenizer_config(config, jinja.as_deref(), Some(codec))
        .map_err(|e| input(&e))
}

pub fn run(args: ChatArgs) -> Result<(), CliError> {
    let input =
        |e: &dyn std::fmt::Display| CliError::Input(format!("{}: {e}", args.model.display()));
    let dir = ModelDir::read(&args.model).map_err(|e| input(&e))?;
    let device = backend::init(args.backend).map_err(|e| e.to_string())?;
    let mut bundle = Bundle::from_files(dir.files(), &device).map_err(|e| input(&e))?;
    let template = template_of(&args, &dir, &bundle.codec)?;
    drop(dir);
    let TextConfig::Transformer(config) = &bundle.config else {
        return Err(input(
            &"a DiT (MDLM / BD3-LM) has no chat format: chat runs LLaDA, Dream and the A2D models; use `unmask generate`",
        ));
    };
    let attention = match args.attention {
        Some(a) => attention_of(a, &bundle.config, args.block_length).map_err(CliError::Input)?,
        None => config.attention(),
    };
    let settings = settings_of(&args, chat_settings(config, attention))?;
    bundle.model.set_attention(attention);
    let spec = bundle.model.spec().clone();
    let codec = bundle.codec.clone();
    let end_of_turn = end_of_turn_ids(&codec);
    let live = !args.quiet && std::io::stderr().is_terminal();
    let mut conversation = Conversation::new(args.system.as_deref());
    let scripted = !args.message.is_empty();
    let mut turns: Box<dyn Iterator<Item = std::io::Result<String>>> = if scripted {
        Box::new(args.message.clone().into_iter().map(Ok))
    } else {
        Box::new(std::io::stdin().lock().lines())
    };
    let interactive = !scripted && std::io::stdin().is_terminal();
    loop {
        if interactive {
            eprint!("\x1b[1myou>\x1b[0m ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = turns.next() else { break };
        let line = line.map_err(|e| format!("reading standard input: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        conversation.push(Role::User, line.trim());
        let (text, prompt) = conversation
            .prompt(&template, &codec)
            .map_err(|e| input(&e))?;
        if args.show_prompt {
            eprintln!("{text}");
        }
        let mut generation = Generation::from_ids(settings.clone(), &prompt, &spec)?;
        generation.show_candidates(false);
        bundle.model.reset_cache();
        let prompt_len = prompt.len();
        pollster::block_on(generation.run(&mut bundle.model, |step| {
            if live {
                draw(step, prompt_len, prompt_len, &codec);
                std::thread::sleep(std::time::Duration::from_millis(args.delay_ms));
            }
        }))?;
        let tokens = generation.sampler().canvas().tokens();
        let reply = reply_text(&codec, &tokens[prompt_len..], &end_of_turn);
        crate::write_line(format_args!("{reply}"));
        conversation.push(Role::Assistant, reply);
    }
    Ok(())
}
