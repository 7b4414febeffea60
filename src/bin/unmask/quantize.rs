//! `unmask quantize`: a copy of a decoder transformer's folder (LLaDA, Dream, A2D) with its
//! matrices block-quantized to 8 or 4 bits ([`unmask::model::quant`] documents the layout).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use unmask::bundle::{CONFIG_FILE, ModelDir, TOKENIZER_FILE, TextConfig, WEIGHTS_FILE};
use unmask::chat::{CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG_FILE};
use unmask::model::quant::{QuantFormat, Quantization};
use unmask::model::transformer::quantize_checkpoint;

use crate::CliError;

/// The `--format` choices.
#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// 8-bit integers, an f16 scale per 32 weights (8.5 bits a weight).
    Q8,
    /// 4-bit integers, an f16 scale per 32 weights (4.5 bits a weight).
    Q4,
}

#[derive(Args)]
pub struct QuantizeArgs {
    /// The model folder to read (config.json, weights, tokenizer files), or a Hugging Face id
    /// (owner/name[@revision]) from its cache (downloaded into it when missing).
    #[arg(long = "in", value_parser = crate::model_folder())]
    input: PathBuf,
    /// The folder to write (created; existing files are not overwritten).
    #[arg(long)]
    out: PathBuf,
    /// How the matrices are stored.
    #[arg(long, value_enum)]
    format: FormatArg,
}

pub fn run(args: QuantizeArgs) -> Result<(), CliError> {
    let input =
        |e: &dyn std::fmt::Display| CliError::Input(format!("{}: {e}", args.input.display()));
    let format = match args.format {
        FormatArg::Q8 => QuantFormat::Q8,
        FormatArg::Q4 => QuantFormat::Q4,
    };
    let dir = ModelDir::read(&args.input).map_err(|e| input(&e))?;
    let config = match TextConfig::from_json(&dir.config).map_err(|e| input(&e))? {
        TextConfig::Transformer(c) if c.quantization.is_none() => c,
        TextConfig::Transformer(c) => {
            return Err(input(&format!(
                "it is quantized already ({})",
                c.quantization.map_or("", |q| q.format.name())
            )));
        }
        TextConfig::Dit(_) => {
            return Err(input(
                &"quantize reads the decoder transformers (LLaDA, Dream, A2D); a DiT stays as it is",
            ));
        }
    };
    // The quantized config must hold too (every matrix a whole number of blocks).
    let mut quantized = config.clone();
    quantized.quantization = Some(Quantization::new(format));
    quantized.validate().map_err(|e| input(&e))?;
    let weights = quantize_checkpoint(&config, &dir.weights, format).map_err(|e| input(&e))?;
    let mut json: serde_json::Value = serde_json::from_slice(&dir.config).map_err(|e| input(&e))?;
    json["quantization"] = serde_json::to_value(Quantization::new(format))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let config_json =
        serde_json::to_vec_pretty(&json).map_err(|e| CliError::Failed(e.to_string()))?;

    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (CONFIG_FILE, config_json),
        (WEIGHTS_FILE, weights),
        (TOKENIZER_FILE, dir.tokenizer.clone()),
    ];
    if let Some(bytes) = &dir.tokenizer_config {
        files.push((TOKENIZER_CONFIG_FILE, bytes.clone()));
    }
    let jinja = args.input.join(CHAT_TEMPLATE_FILE);
    if jinja.exists() {
        let bytes = std::fs::read(&jinja)
            .map_err(|e| input(&format!("cannot read {CHAT_TEMPLATE_FILE}: {e}")))?;
        files.push((CHAT_TEMPLATE_FILE, bytes));
    }
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    crate::write_new_files(&args.out, &borrowed)?;
    let before: usize = dir.weights.iter().map(Vec::len).sum();
    outln!(
        "wrote {} ({}: {:.1} MB of weights, from {:.1} MB)",
        args.out.display(),
        format.name(),
        files[1].1.len() as f64 / 1e6,
        before as f64 / 1e6
    );
    Ok(())
}
