//! `unmask import`: a llama.cpp GGUF file of a diffusion LM (LLaDA, Dream, an A2D Qwen) as a model
//! folder every other command and the page read ([`unmask::model::gguf_import`] says what is
//! converted and how).

use std::path::PathBuf;

use clap::Args;
use unmask::bundle::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use unmask::chat::TOKENIZER_CONFIG_FILE;
use unmask::model::gguf_import::{ImportOptions, import};

use crate::CliError;

#[derive(Args)]
pub struct ImportArgs {
    /// The GGUF file to read (F32, F16, BF16, Q8_0 or Q4_0 tensors).
    #[arg(long = "in")]
    input: PathBuf,
    /// The folder to write (created; existing files are not overwritten).
    #[arg(long)]
    out: PathBuf,
    /// The model's own tokenizer.json, used instead of one rebuilt from the file's vocabulary.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Tokens per block of a block-causal conversion (dllm's `-bd3lm` models: 32); GGUF files do
    /// not record it.
    #[arg(long)]
    block_size: Option<usize>,
}

pub fn run(args: ImportArgs) -> Result<(), CliError> {
    let input =
        |e: &dyn std::fmt::Display| CliError::Input(format!("{}: {e}", args.input.display()));
    let bytes = std::fs::read(&args.input).map_err(|e| input(&e))?;
    let own_tokenizer = match &args.tokenizer {
        Some(path) => Some(
            std::fs::read(path).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    if let Some(tokenizer) = &own_tokenizer {
        tokenizers::Tokenizer::from_bytes(tokenizer).map_err(|e| {
            CliError::Input(format!(
                "{}: not a tokenizer.json ({e})",
                args.tokenizer
                    .as_ref()
                    .map_or_else(String::new, |p| p.display().to_string())
            ))
        })?;
    }
    let options = ImportOptions {
        block_size: args.block_size,
        rebuild_tokenizer: own_tokenizer.is_none(),
    };
    let imported = import(&bytes, &options).map_err(|e| input(&e))?;
    let tokenizer = own_tokenizer
        .or(imported.tokenizer)
        .ok_or_else(|| CliError::Failed("no tokenizer was rebuilt".into()))?;
    let files: [(&str, &[u8]); 4] = [
        (CONFIG_FILE, &imported.config),
        (WEIGHTS_FILE, &imported.weights),
        (TOKENIZER_FILE, &tokenizer),
        (TOKENIZER_CONFIG_FILE, &imported.tokenizer_config),
    ];
    crate::write_new_files(&args.out, &files)?;
    outln!(
        "wrote {} ({}, {}: {:.1} MB of weights from a {:.1} MB GGUF file)",
        args.out.display(),
        imported.architecture.model_type(),
        imported.quantization.map_or("float", |q| q.name()),
        imported.weights.len() as f64 / 1e6,
        bytes.len() as f64 / 1e6
    );
    for note in &imported.notes {
        outln!("  {note}");
    }
    Ok(())
}
