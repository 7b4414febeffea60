//! `unmask prepare` rebuilds the committed corpus (data/corpus/) byte for byte from the Debian
//! packages' text: run twice, it writes identical files whose checksums are the manifest's.
//!
//! The sources come from `scripts/corpus-sources.sh` (which `scripts/test.sh` runs first), in
//! `$UNMASK_CORPUS_SOURCES` or its default folder.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use unmask::config::ModelConfig;
use unmask::corpus::{self, Manifest, PrepareConfig, Split};
use unmask::text::TextCodec;

const SOURCES_ENV: &str = "UNMASK_CORPUS_SOURCES";
const OUTPUTS: [&str; 4] = [
    corpus::TRAIN_FILE,
    corpus::VALID_FILE,
    corpus::TOKENIZER_FILE,
    corpus::MANIFEST_FILE,
];
const COMMAND: &str = "cargo test --test corpus";

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(corpus::DEFAULT_OUT_DIR)
}

fn sources_dir() -> PathBuf {
    let root = PathBuf::from(
        std::env::var_os(SOURCES_ENV).unwrap_or_else(|| corpus::DEFAULT_SOURCES_DIR.into()),
    );
    for sub in [corpus::AUSTEN_SUBDIR, corpus::BIBLE_SUBDIR] {
        assert!(
            root.join(sub).is_dir(),
            "the corpus sources are missing ({} is not there): run scripts/corpus-sources.sh {} \
             (or set {SOURCES_ENV} to where it unpacked them)",
            root.join(sub).display(),
            root.display()
        );
    }
    root
}

/// A fresh folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("unmask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn prepare_into(sources: &Path, out: &Path) -> Manifest {
    let config = PrepareConfig {
        command: COMMAND.to_owned(),
        ..PrepareConfig::new(sources, out)
    };
    corpus::prepare(&config).unwrap_or_else(|e| panic!("prepare failed: {e}"))
}

/// The manifest without the command line, which names where it ran.
fn checksums_and_counts(manifest: &Manifest) -> Manifest {
    Manifest {
        command: String::new(),
        ..manifest.clone()
    }
}

#[test]
fn prepare_is_deterministic_and_matches_the_committed_corpus() {
    let sources = sources_dir();
    let (first, second) = (TempDir::new("corpus-a"), TempDir::new("corpus-b"));
    let manifest = prepare_into(&sources, &first.0);
    assert_eq!(prepare_into(&sources, &second.0), manifest);
    for file in OUTPUTS {
        let a = std::fs::read(first.0.join(file)).unwrap();
        let b = std::fs::read(second.0.join(file)).unwrap();
        assert!(a == b, "{file} differs between two runs");
    }

    // Both sources in both splits.
    for split in Split::ALL {
        let stats = &manifest.splits[split.name()];
        for source in ["austen", "bible"] {
            assert!(
                stats.by_source[source].documents > 0,
                "no {source} in {split}"
            );
        }
    }

    // What was just made is what is committed.
    let committed_dir = committed_dir();
    let committed = corpus::read_manifest(&committed_dir).unwrap();
    assert_eq!(
        manifest.sources, committed.sources,
        "the sources differ from those data/corpus/ was made from (another package version?)"
    );
    assert_eq!(
        checksums_and_counts(&manifest),
        checksums_and_counts(&committed),
        "prepare no longer reproduces data/corpus/: if the change is intended, run \
         `unmask prepare` and commit data/corpus/"
    );

    // The committed files are the ones the manifest describes.
    let tokenizer = std::fs::read(committed_dir.join(corpus::TOKENIZER_FILE)).unwrap();
    assert_eq!(sha256_hex(&tokenizer), committed.tokenizer_sha256);
    for split in Split::ALL {
        let documents = corpus::read_documents(&committed_dir, split).unwrap();
        let text: String = documents.iter().map(|d| format!("{d}\n")).collect();
        let stats = &committed.splits[split.name()];
        assert_eq!(sha256_hex(text.as_bytes()), stats.text_sha256, "{split}");
        assert_eq!(documents.len(), stats.total.documents, "{split}");
    }
}

#[test]
fn the_committed_tokenizer_serves_the_engine() {
    let dir = committed_dir();
    let manifest = corpus::read_manifest(&dir).unwrap();
    let config: ModelConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": manifest.vocab_size, "model_length": 128, "hidden_dim": 8, "cond_dim": 8,
        "n_blocks": 1, "n_heads": 1
    }))
    .unwrap();
    let json = std::fs::read(dir.join(corpus::TOKENIZER_FILE)).unwrap();
    let codec = TextCodec::from_bytes(&json, &config).unwrap();
    assert_eq!(codec.vocab_size(), corpus::DEFAULT_VOCAB_SIZE);
    assert_eq!(codec.mask_id(), 3);
    assert_eq!(codec.bos_id(), Some(1));
    assert_eq!(codec.eos_id(), Some(2));
    let sentence = "It is a truth universally acknowledged, that Yahweh said: \"Let there be light\" — 42 naïve £.";
    let ids = codec.encode_prompt(sentence).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(codec.decode(&ids), sentence);
    assert!(
        ids.len() * 2 < sentence.len(),
        "{} tokens for {} bytes",
        ids.len(),
        sentence.len()
    );
    let infill = codec.encode_prompt("Mr. [MASK] said").unwrap();
    assert_eq!(infill.iter().filter(|&&id| id == 3).count(), 1);
    // The space before the mask is the filling word's: no lone space token precedes the mask.
    let at = infill.iter().position(|&id| id == 3).unwrap();
    assert_eq!(
        infill[1..at],
        codec.encode("Mr.").unwrap()[..],
        "{infill:?}"
    );
    assert_eq!(infill[at + 1..], codec.encode(" said").unwrap()[..]);
}
