//! `unmask prepare`: the training corpus and its tokenizer from the Debian packages'
//! public-domain text (see `unmask::corpus`).

use std::path::PathBuf;
use std::time::Instant;

use unmask::corpus::{self, PrepareConfig};

/// Arguments of `unmask prepare`.
#[derive(clap::Args)]
pub struct Args {
    /// janeaustenr's data folder (holds Rdata.rdb), as unpacked by scripts/corpus-sources.sh.
    #[arg(long, default_value_os_t = PathBuf::from(corpus::DEFAULT_SOURCES_DIR).join(corpus::AUSTEN_SUBDIR))]
    austen: PathBuf,
    /// The engWEB2015eb SWORD module folder (holds ot.bzs … nt.bzz), as unpacked by
    /// scripts/corpus-sources.sh.
    #[arg(long, default_value_os_t = PathBuf::from(corpus::DEFAULT_SOURCES_DIR).join(corpus::BIBLE_SUBDIR))]
    bible: PathBuf,
    /// Output folder: train.txt.gz, valid.txt.gz, tokenizer.json, manifest.json.
    #[arg(long, default_value = corpus::DEFAULT_OUT_DIR)]
    out: PathBuf,
    /// Tokens in the tokenizer, special tokens included.
    #[arg(long, default_value_t = corpus::DEFAULT_VOCAB_SIZE)]
    vocab_size: usize,
    /// Expected share of chapters held out for validation (in steps of 1/256).
    #[arg(long, default_value_t = corpus::DEFAULT_VALID_SHARE)]
    valid_share: f64,
}

/// Prepares the corpus and prints what it holds.
pub fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    let config = PrepareConfig {
        command: format!(
            "unmask prepare --out {} --vocab-size {} --valid-share {}",
            args.out.display(),
            args.vocab_size,
            args.valid_share
        ),
        austen: args.austen,
        bible: args.bible,
        out: args.out,
        vocab_size: args.vocab_size,
        valid_share: args.valid_share,
    };
    let manifest = corpus::prepare(&config).map_err(|e| e.to_string())?;
    for (name, split) in &manifest.splits {
        let sources: Vec<String> = split
            .by_source
            .iter()
            .map(|(source, s)| format!("{source} {}", s.documents))
            .collect();
        outln!(
            "{name:5}  {:5} documents ({}), {:.2} MB, {} words, {} tokens ({:.2} bytes/token)",
            split.total.documents,
            sources.join(", "),
            split.total.bytes as f64 / 1e6,
            split.total.words,
            split.tokens,
            split.total.bytes as f64 / split.tokens.max(1) as f64,
        );
    }
    outln!(
        "wrote {} ({} tokens) in {:.1}s",
        config.out.display(),
        manifest.vocab_size,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
