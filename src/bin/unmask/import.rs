//! `unmask import`: a llama.cpp GGUF file of a diffusion LM (LLaDA, Dream, an A2D Qwen) as a model
//! folder every other command and the page read ([`unmask::model::gguf_import`] says what is
//! converted and how). The file is read a tensor at a time: an 8B model's 4.6 GB Q4_0 file costs
//! its header and one tensor of memory, not the file and its copies.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use unmask::bundle::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use unmask::chat::TOKENIZER_CONFIG_FILE;
use unmask::model::gguf::Gguf;
use unmask::model::gguf_import::{ImportOptions, plan};

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
    let own_tokenizer = match &args.tokenizer {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
                CliError::Input(format!("{}: not a tokenizer.json ({e})", path.display()))
            })?;
            Some(bytes)
        }
        None => None,
    };
    let mut file = std::fs::File::open(&args.input).map_err(|e| input(&e))?;
    let header = Gguf::read(&mut file).map_err(|e| input(&e))?;
    let options = ImportOptions {
        block_size: args.block_size,
        rebuild_tokenizer: own_tokenizer.is_none(),
    };
    let plan = plan(&header, &options).map_err(|e| input(&e))?;
    let tokenizer = own_tokenizer
        .or_else(|| plan.tokenizer.clone())
        .ok_or_else(|| CliError::Failed("no tokenizer was rebuilt".into()))?;

    // All or none: nothing is written while any of the folder's files exists, and the weights
    // are written under a temporary name, renamed once whole.
    let names = [
        CONFIG_FILE,
        WEIGHTS_FILE,
        TOKENIZER_FILE,
        TOKENIZER_CONFIG_FILE,
    ];
    if let Some(name) = names.iter().find(|name| args.out.join(name).exists()) {
        return Err(CliError::Failed(format!(
            "cannot write {}: it exists already (it is not overwritten)",
            args.out.join(name).display()
        )));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let partial = args.out.join(format!("{WEIGHTS_FILE}.partial"));
    let written = std::fs::File::create(&partial)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))
        .and_then(|out| {
            let mut out = BufWriter::new(out);
            plan.write_weights(&mut |info| Gguf::read_tensor(&mut file, info), &mut out)
                .map_err(|e| format!("{}: {e}", args.input.display()))?;
            out.flush()
                .map_err(|e| format!("cannot write {}: {e}", partial.display()))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(CliError::Failed(e));
    }
    let small: [(&str, &[u8]); 3] = [
        (CONFIG_FILE, &plan.config),
        (TOKENIZER_FILE, &tokenizer),
        (TOKENIZER_CONFIG_FILE, &plan.tokenizer_config),
    ];
    if let Err(e) = crate::write_new_files(&args.out, &small) {
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    std::fs::rename(&partial, args.out.join(WEIGHTS_FILE)).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            args.out.join(WEIGHTS_FILE).display()
        )
    })?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    outln!(
        "wrote {} ({}, {}: {:.1} MB of weights from a {:.1} MB GGUF file)",
        args.out.display(),
        plan.architecture.model_type(),
        plan.quantization.map_or("float", |q| q.name()),
        plan.weights_len() as f64 / 1e6,
        file_len as f64 / 1e6
    );
    for note in &plan.notes {
        outln!("  {note}");
    }
    Ok(())
}
