//! `unmask prepare`: the training corpus and its tokenizer from the Debian packages'
//! public-domain text (see `unmask::corpus`), or with `--digits` the handwritten digits from the
//! scikit-learn wheel (`unmask::corpus::digits`).

use std::path::PathBuf;
use std::time::Instant;

use unmask::corpus::{self, PrepareConfig, digits};

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
    /// Output folder: train.txt.gz, valid.txt.gz, tokenizer.json, manifest.json [default:
    /// data/corpus; with --digits, data/digits: train.csv.gz, valid.csv.gz, manifest.json].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Tokens in the tokenizer, special tokens included.
    #[arg(long, default_value_t = corpus::DEFAULT_VOCAB_SIZE)]
    vocab_size: usize,
    /// Expected share of chapters (or digits) held out for validation, in steps of 1/256
    /// [default: 0.05; with --digits, 0.1].
    #[arg(long)]
    valid_share: Option<f64>,
    /// Prepare the 8×8 handwritten digits instead of the text corpus.
    #[arg(long)]
    digits: bool,
    /// With --digits: also write the page's real digits (one validation image per class, from the
    /// prepared files) to this file, as www/models/default/ddpm/examples.json ships them.
    #[arg(long, requires = "digits")]
    examples: Option<PathBuf>,
    /// The scikit-learn wheel holding the digits, as scripts/digits-source.sh downloads it.
    #[arg(long, default_value_os_t = PathBuf::from(digits::DEFAULT_WHEEL_DIR).join(digits::WHEEL_FILE))]
    wheel: PathBuf,
}

/// Prepares the corpus and prints what it holds.
pub fn run(args: Args) -> Result<(), String> {
    let started = Instant::now();
    if args.digits {
        return prepare_digits(&args, started);
    }
    let out = args.out.unwrap_or_else(|| corpus::DEFAULT_OUT_DIR.into());
    let valid_share = args.valid_share.unwrap_or(corpus::DEFAULT_VALID_SHARE);
    let config = PrepareConfig {
        command: format!(
            "unmask prepare --out {} --vocab-size {} --valid-share {}",
            out.display(),
            args.vocab_size,
            valid_share
        ),
        austen: args.austen,
        bible: args.bible,
        out,
        vocab_size: args.vocab_size,
        valid_share,
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

/// `unmask prepare --digits`.
fn prepare_digits(args: &Args, started: Instant) -> Result<(), String> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| digits::DEFAULT_DIGITS_DIR.into());
    let valid_share = args
        .valid_share
        .unwrap_or(digits::DEFAULT_DIGITS_VALID_SHARE);
    let command = format!(
        "unmask prepare --digits --out {} --valid-share {valid_share}",
        out.display()
    );
    let manifest = digits::prepare_digits(&args.wheel, &out, valid_share, &command)
        .map_err(|e| e.to_string())?;
    for (split, counts) in corpus::Split::ALL.iter().zip(&manifest.per_class) {
        outln!(
            "{:5}  {:4} images, per class {counts:?}",
            split.name(),
            counts.iter().sum::<usize>()
        );
    }
    if let Some(file) = &args.examples {
        let valid = digits::read_digits(&out, corpus::Split::Valid).map_err(|e| e.to_string())?;
        let json = serde_json::to_string(&digits::examples(&valid)).map_err(|e| e.to_string())?;
        std::fs::write(file, json + "\n").map_err(|e| format!("{}: {e}", file.display()))?;
        outln!("wrote {}", file.display());
    }
    outln!(
        "wrote {} in {:.1}s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
