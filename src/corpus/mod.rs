//! The training corpus: public-domain English from two Debian packages, cleaned into one document
//! per chapter, split into training and validation text, and a byte-level BPE tokenizer trained
//! on the training text (`unmask prepare`).
//!
//! Sources (fetched and unpacked by `scripts/corpus-sources.sh`, without installing them):
//!
//! - Jane Austen's six novels, from `r-cran-janeaustenr` (Project Gutenberg's text in an R
//!   lazy-load database): `austen.rs`, read by `rdata.rs`;
//! - the World English Bible with the deuterocanon, from `sword-text-web` (the SWORD zText
//!   module `engWEB2015eb`, OSIS markup): `bible.rs`, read by `sword.rs`.
//!
//! Every document is normalized the same way: curly quotes become straight ones (‘’ → ', “” → "),
//! whitespace runs become one space (paragraphs joined by a space), ends trimmed; empty
//! documents are skipped. A document goes to the validation split when the first byte of
//! SHA-256(`source/book/chapter`) is below `valid_share` × 256, so the split of a chapter never
//! depends on the others (`austen/emma/19`: chapters count through a whole novel, whose volumes
//! each restart at "CHAPTER I"; `bible/Gen/1`: OSIS book ids and chapter numbers). The output
//! folder holds:
//!
//! - [`TRAIN_FILE`], [`VALID_FILE`]: one document per line, in source, book and chapter order,
//!   gzip without a timestamp at a fixed level (the same bytes every run);
//! - [`TOKENIZER_FILE`]: the tokenizer ([`bpe`]), trained on the training split only;
//! - [`MANIFEST_FILE`]: the [`Manifest`] — checksums of the sources and outputs, counts, settings.

mod austen;
mod bible;
pub mod bpe;
pub mod digits;
mod rdata;
mod sword;
mod zip;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The training split's documents, gzip-compressed, one per line.
pub const TRAIN_FILE: &str = "train.txt.gz";
/// The validation split's documents, gzip-compressed, one per line.
pub const VALID_FILE: &str = "valid.txt.gz";
/// The tokenizer, in Hugging Face's format.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// What was made from what, as pretty JSON ([`Manifest`]).
pub const MANIFEST_FILE: &str = "manifest.json";
/// Where the corpus is kept in the repository.
pub const DEFAULT_OUT_DIR: &str = "data/corpus";
/// Where `scripts/corpus-sources.sh` unpacks the sources unless told otherwise.
pub const DEFAULT_SOURCES_DIR: &str = "/var/tmp/unmask-corpus";
/// janeaustenr's data folder, inside the sources folder.
pub const AUSTEN_SUBDIR: &str = "r-cran-janeaustenr/usr/lib/R/site-library/janeaustenr/data";
/// The WEB module's folder, inside the sources folder.
pub const BIBLE_SUBDIR: &str = "sword-text-web/usr/share/sword/modules/texts/ztext/engWEB2015eb";
/// Tokens in the tokenizer, special tokens included.
pub const DEFAULT_VOCAB_SIZE: usize = 4096;
/// Expected share of documents in the validation split.
pub const DEFAULT_VALID_SHARE: f64 = 0.05;

/// The script that fetches the sources (named in error messages).
const SOURCES_SCRIPT: &str = "scripts/corpus-sources.sh";
/// gzip level of the split files (fixed: the level changes the bytes).
const GZIP_LEVEL: u32 = 9;
/// The split test reads one byte of the key's hash: shares come in steps of 1/256.
const SPLIT_HASH_RANGE: f64 = 256.0;
/// Byte-level BPE starts from the 256 byte symbols.
const BYTE_ALPHABET: usize = 256;

/// What can go wrong while preparing or reading the corpus.
#[derive(Debug, Error)]
pub enum CorpusError {
    /// A source file is not there.
    #[error(
        "{} is missing: run {SOURCES_SCRIPT} (it downloads and unpacks the Debian packages), or point --austen/--bible at its folders",
        path.display()
    )]
    MissingSource {
        /// The file looked for.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// janeaustenr's database is not what the parser knows.
    #[error(
        "{} is not janeaustenr's data as expected: {detail}; fetch r-cran-janeaustenr again with {SOURCES_SCRIPT}",
        path.display()
    )]
    Austen {
        /// The database.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The SWORD module is not what the parser knows.
    #[error(
        "{}.* is not the engWEB2015eb module as expected: {detail}; fetch sword-text-web again with {SOURCES_SCRIPT}",
        path.display()
    )]
    Bible {
        /// The testament's files, without extension.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Training, writing or loading the tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A split lacks one of the sources.
    #[error("the {split} split has no {origin} documents: choose another --valid-share")]
    EmptySplit {
        /// The split.
        split: Split,
        /// The source it lacks.
        origin: &'static str,
    },
    /// A setting is out of range.
    #[error("{0}")]
    Settings(String),
    /// A prepared corpus file is not there.
    #[error("{} is missing: run `unmask prepare --out {}` first", path.display(), dir.display())]
    MissingCorpus {
        /// The file looked for.
        path: PathBuf,
        /// The corpus folder.
        dir: PathBuf,
    },
    /// The scikit-learn wheel holding the digits is not there.
    #[error("{} is missing: run scripts/digits-source.sh (it downloads the scikit-learn wheel from PyPI), or point --wheel at it", path.display())]
    MissingWheel {
        /// The wheel looked for.
        path: PathBuf,
    },
    /// The prepared digits are not there.
    #[error("{} is missing: run `unmask prepare --digits --out {}` first", path.display(), dir.display())]
    MissingDigits {
        /// The file looked for.
        path: PathBuf,
        /// The digits folder.
        dir: PathBuf,
    },
    /// A prepared corpus file is damaged.
    #[error("{} is damaged ({detail}): run `unmask prepare` again", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// The two splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// What the tokenizer and the model learn from.
    Train,
    /// Held out, for validation loss.
    Valid,
}

impl Split {
    /// Both splits, training first.
    pub const ALL: [Split; 2] = [Split::Train, Split::Valid];

    /// Position in [`Split::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            Split::Train => 0,
            Split::Valid => 1,
        }
    }

    /// `train` or `valid`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
        }
    }

    /// The split's file in the corpus folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Split::Train => TRAIN_FILE,
            Split::Valid => VALID_FILE,
        }
    }

    /// The split of the document with this key (`source/book/chapter`): validation when the first
    /// byte of the key's SHA-256 is below `valid_share` × 256.
    pub fn of_key(key: &str, valid_share: f64) -> Split {
        let threshold = (valid_share * SPLIT_HASH_RANGE).round();
        if f64::from(Sha256::digest(key.as_bytes())[0]) < threshold {
            Split::Valid
        } else {
            Split::Train
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What [`prepare`] reads, writes and how.
#[derive(Clone, Debug)]
pub struct PrepareConfig {
    /// janeaustenr's `data/` folder (holds `Rdata.rdb`).
    pub austen: PathBuf,
    /// The engWEB2015eb module folder (holds `ot.bzs`, … `nt.bzz`).
    pub bible: PathBuf,
    /// The output folder (created if missing).
    pub out: PathBuf,
    /// Tokens in the tokenizer, special tokens included.
    pub vocab_size: usize,
    /// Expected share of documents in the validation split, in steps of 1/256.
    pub valid_share: f64,
    /// The command line that asked for this, recorded in the manifest.
    pub command: String,
}

impl PrepareConfig {
    /// The defaults, with the sources where `scripts/corpus-sources.sh <sources>` puts them.
    pub fn new(sources: &Path, out: impl Into<PathBuf>) -> Self {
        Self {
            austen: sources.join(AUSTEN_SUBDIR),
            bible: sources.join(BIBLE_SUBDIR),
            out: out.into(),
            vocab_size: DEFAULT_VOCAB_SIZE,
            valid_share: DEFAULT_VALID_SHARE,
            command: String::new(),
        }
    }
}

/// What `manifest.json` records: enough to check that a rerun gives the same corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The command that wrote the corpus (the source folders left out: the checksums below pin
    /// the sources wherever they are).
    pub command: String,
    /// Tokens in the tokenizer.
    pub vocab_size: usize,
    /// The validation share asked for.
    pub valid_share: f64,
    /// Every source file read, in reading order.
    pub sources: Vec<SourceFile>,
    /// SHA-256 of `tokenizer.json`.
    pub tokenizer_sha256: String,
    /// Per split (`train`, `valid`).
    pub splits: BTreeMap<String, SplitStats>,
}

/// A source file and its checksum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    /// `austen` or `bible`.
    pub source: String,
    /// The file, relative to that source's folder.
    pub file: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// One split's file and counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// The gzip file in the corpus folder.
    pub file: String,
    /// SHA-256 of the uncompressed text (independent of the gzip implementation).
    pub text_sha256: String,
    /// All sources together.
    #[serde(flatten)]
    pub total: TextStats,
    /// Tokens under the new tokenizer (no BOS/EOS).
    pub tokens: usize,
    /// Per source.
    pub by_source: BTreeMap<String, TextStats>,
}

/// Sizes of some text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextStats {
    /// Documents (lines).
    pub documents: usize,
    /// Bytes of UTF-8, one newline per document included.
    pub bytes: usize,
    /// Whitespace-separated words.
    pub words: usize,
}

impl TextStats {
    fn add(&mut self, text: &str) {
        self.documents += 1;
        self.bytes += text.len() + 1;
        self.words += text.split_whitespace().count();
    }
}

/// The sources, in the order `prepare` writes each split's documents.
pub const SOURCES: [&str; 2] = [austen::SOURCE, bible::SOURCE];

/// One split's documents and per-source counts, while they are gathered.
#[derive(Default)]
struct Gathered {
    texts: Vec<String>,
    by_source: BTreeMap<&'static str, TextStats>,
}

/// One chapter of one book.
struct Document {
    source: &'static str,
    book: String,
    chapter: usize,
    text: String,
}

impl Document {
    fn new(source: &'static str, book: &str, chapter: usize, text: String) -> Self {
        Self {
            source,
            book: book.to_owned(),
            chapter,
            text,
        }
    }

    /// `source/book/chapter`: what decides the split.
    fn key(&self) -> String {
        format!("{}/{}/{}", self.source, self.book, self.chapter)
    }
}

/// Reads the sources, writes the splits, trains the tokenizer and writes the manifest.
pub fn prepare(config: &PrepareConfig) -> Result<Manifest, CorpusError> {
    if !(config.valid_share > 0.0 && config.valid_share < 1.0) {
        return Err(CorpusError::Settings(format!(
            "--valid-share must be between 0 and 1, not {}",
            config.valid_share
        )));
    }
    let smallest = bpe::SPECIAL_TOKENS.len() + BYTE_ALPHABET;
    if config.vocab_size <= smallest {
        return Err(CorpusError::Settings(format!(
            "--vocab-size must exceed {smallest} (the special tokens and the 256 bytes)"
        )));
    }
    let mut sources = Vec::new();
    for (origin, dir, files) in [
        (austen::SOURCE, &config.austen, austen::source_files()),
        (bible::SOURCE, &config.bible, bible::source_files()),
    ] {
        for file in files {
            sources.push(SourceFile {
                source: origin.to_owned(),
                sha256: sha256_hex(&read_source(&dir.join(&file))?),
                file,
            });
        }
    }
    let mut documents = austen::read(&config.austen)?;
    documents.extend(bible::read(&config.bible)?);
    documents.retain(|d| !d.text.is_empty());

    let mut gathered: [Gathered; 2] = Default::default();
    for document in documents {
        let split = Split::of_key(&document.key(), config.valid_share);
        let into = &mut gathered[split.index()];
        into.by_source
            .entry(document.source)
            .or_default()
            .add(&document.text);
        into.texts.push(document.text);
    }
    for (split, gathered) in Split::ALL.into_iter().zip(&gathered) {
        for origin in SOURCES {
            if !gathered.by_source.contains_key(origin) {
                return Err(CorpusError::EmptySplit { split, origin });
            }
        }
    }

    std::fs::create_dir_all(&config.out).map_err(|source| CorpusError::Write {
        path: config.out.clone(),
        source,
    })?;
    let train = &gathered[Split::Train.index()].texts;
    let tokenizer_json = bpe::train(train, config.vocab_size)?;
    write_file(&config.out.join(TOKENIZER_FILE), tokenizer_json.as_bytes())?;
    let tokenizer = bpe::load(&tokenizer_json)?;

    let mut splits = BTreeMap::new();
    for (split, gathered) in Split::ALL.into_iter().zip(&gathered) {
        let mut total = TextStats::default();
        for counts in gathered.by_source.values() {
            total.documents += counts.documents;
            total.bytes += counts.bytes;
            total.words += counts.words;
        }
        let stats = SplitStats {
            file: split.file_name().to_owned(),
            text_sha256: write_split(&config.out.join(split.file_name()), &gathered.texts)?,
            total,
            tokens: bpe::count_tokens(&tokenizer, &gathered.texts)?,
            by_source: gathered
                .by_source
                .iter()
                .map(|(origin, counts)| (origin.to_string(), *counts))
                .collect(),
        };
        splits.insert(split.name().to_owned(), stats);
    }
    let manifest = Manifest {
        command: config.command.clone(),
        vocab_size: config.vocab_size,
        valid_share: config.valid_share,
        sources,
        tokenizer_sha256: sha256_hex(tokenizer_json.as_bytes()),
        splits,
    };
    let mut json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CorpusError::Settings(format!("cannot serialize the manifest: {e}")))?;
    json.push('\n');
    write_file(&config.out.join(MANIFEST_FILE), json.as_bytes())?;
    Ok(manifest)
}

/// A corpus file that cannot be read: missing (prepare it first) or unreadable.
fn unreadable(dir: &Path, path: &Path, source: std::io::Error) -> CorpusError {
    match source.kind() {
        std::io::ErrorKind::NotFound => CorpusError::MissingCorpus {
            path: path.to_owned(),
            dir: dir.to_owned(),
        },
        _ => CorpusError::Read {
            path: path.to_owned(),
            source,
        },
    }
}

/// The documents of one split of a prepared corpus, one string each, in file order.
pub fn read_documents(dir: &Path, split: Split) -> Result<Vec<String>, CorpusError> {
    let path = dir.join(split.file_name());
    let file = std::fs::File::open(&path).map_err(|e| unreadable(dir, &path, e))?;
    let mut text = String::new();
    GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| CorpusError::Damaged {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// The documents of one split with the source each came from (`austen`, `bible`): the files keep
/// no labels, but `prepare` writes each split's documents source by source in [`SOURCES`]' order
/// and the manifest counts them (`by_source`), so the first counts' worth of lines are the first
/// source's. Refused when the counts and the file disagree.
pub fn read_labelled_documents(
    dir: &Path,
    split: Split,
) -> Result<Vec<(String, &'static str)>, CorpusError> {
    let documents = read_documents(dir, split)?;
    let manifest = read_manifest(dir)?;
    let path = dir.join(split.file_name());
    let damaged = |detail: String| CorpusError::Damaged {
        path: path.clone(),
        detail,
    };
    let stats = manifest
        .splits
        .get(split.name())
        .ok_or_else(|| damaged(format!("the manifest has no {} split", split.name())))?;
    let mut labels = Vec::with_capacity(documents.len());
    for origin in SOURCES {
        let count = stats.by_source.get(origin).map_or(0, |s| s.documents);
        labels.extend(std::iter::repeat_n(origin, count));
    }
    if labels.len() != documents.len() {
        return Err(damaged(format!(
            "the manifest counts {} documents, the file holds {}; prepare the corpus again",
            labels.len(),
            documents.len()
        )));
    }
    Ok(documents.into_iter().zip(labels).collect())
}

/// The manifest of a prepared corpus.
pub fn read_manifest(dir: &Path) -> Result<Manifest, CorpusError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| unreadable(dir, &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| CorpusError::Damaged {
        path,
        detail: e.to_string(),
    })
}

/// Straight quotes, single spaces, no leading or trailing space.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201C}' | '\u{201D}' => '"',
            c => c,
        }));
    }
    out
}

/// Reads a source file; a missing one says how to fetch the sources.
fn read_source(path: &Path) -> Result<Vec<u8>, CorpusError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CorpusError::MissingSource {
            path: path.to_owned(),
        },
        _ => CorpusError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CorpusError> {
    std::fs::write(path, bytes).map_err(|source| CorpusError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes documents one per line as deterministic gzip (no name, no timestamp, fixed level);
/// returns the SHA-256 of the uncompressed text.
fn write_split(path: &Path, documents: &[String]) -> Result<String, CorpusError> {
    let failed = |source| CorpusError::Write {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::create(path).map_err(failed)?;
    let mut gzip = GzBuilder::new()
        .mtime(0)
        .write(std::io::BufWriter::new(file), Compression::new(GZIP_LEVEL));
    let mut hasher = Sha256::new();
    for document in documents {
        for bytes in [document.as_bytes(), b"\n"] {
            hasher.update(bytes);
            gzip.write_all(bytes).map_err(failed)?;
        }
    }
    gzip.finish().map_err(failed)?.flush().map_err(failed)?;
    Ok(hex(&hasher.finalize()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_quotes_and_whitespace() {
        assert_eq!(
            normalize("  \u{201C}It\u{2019}s\u{201D},\n\tsaid   \u{2018}she\u{2019}. \u{2014} \n"),
            "\"It's\", said 'she'. \u{2014}"
        );
        assert_eq!(normalize(" \n\t "), "");
    }

    #[test]
    fn each_committed_document_s_source_adds_up_to_the_manifest_s_counts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/corpus");
        let manifest = read_manifest(&dir).unwrap();
        for split in Split::ALL {
            let labelled = read_labelled_documents(&dir, split).unwrap();
            let stats = &manifest.splits[split.name()];
            for origin in SOURCES {
                // Bytes and words per source: only the right boundary between the sources adds
                // up to both.
                let mut counted = TextStats::default();
                for (text, _) in labelled.iter().filter(|(_, o)| *o == origin) {
                    counted.add(text);
                }
                assert_eq!(counted, stats.by_source[origin], "{split:?} {origin}");
            }
        }
    }

    #[test]
    fn splits_are_stable_and_near_the_share() {
        // Fixed keys give fixed splits, forever (the committed corpus depends on it).
        assert_eq!(
            Split::of_key("bible/Gen/1", DEFAULT_VALID_SHARE),
            Split::Train
        );
        assert_eq!(
            Split::of_key("bible/Gen/4", DEFAULT_VALID_SHARE),
            Split::Valid
        );
        let keys: Vec<String> = (1..=4000).map(|i| format!("test/book/{i}")).collect();
        let valid = |share: f64| {
            keys.iter()
                .filter(|k| Split::of_key(k, share) == Split::Valid)
                .count()
        };
        let share = valid(DEFAULT_VALID_SHARE) as f64 / keys.len() as f64;
        assert!((0.035..0.065).contains(&share), "{share}");
        // A larger share only moves documents into validation.
        for key in &keys {
            if Split::of_key(key, DEFAULT_VALID_SHARE) == Split::Valid {
                assert_eq!(Split::of_key(key, 0.2), Split::Valid);
            }
        }
        assert_eq!(valid(1.0), keys.len());
    }

    #[test]
    fn split_files_round_trip_and_are_byte_identical() {
        let dir = std::env::temp_dir().join(format!("unmask-corpus-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let documents = vec!["First \"one\".".to_owned(), "Second — ünïcode.".to_owned()];
        let path = dir.join(TRAIN_FILE);
        let sha = write_split(&path, &documents).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert_eq!(write_split(&path, &documents).unwrap(), sha);
        assert_eq!(std::fs::read(&path).unwrap(), first);
        assert_eq!(
            sha,
            sha256_hex("First \"one\".\nSecond — ünïcode.\n".as_bytes())
        );
        assert_eq!(read_documents(&dir, Split::Train).unwrap(), documents);
        let missing = read_documents(&dir, Split::Valid).unwrap_err();
        assert!(missing.to_string().contains("unmask prepare"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
