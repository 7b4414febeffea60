//! Replays every committed fuzz input — the corpora in `fuzz/corpus/TARGET/` and every crash
//! ever found in `fuzz/artifacts/TARGET/` — through the fuzz targets' bodies on stable Rust, so
//! CI keeps each past finding fixed. The fuzzers themselves run from `scripts/fuzz.sh`.

use std::path::PathBuf;

use unmask::fuzzing;

/// A fuzz target's body.
type Body = fn(&[u8]);

/// Each target and its body.
const TARGETS: [(&str, Body); 3] = [
    ("model_folder", fuzzing::model_folder),
    ("trajectory", fuzzing::trajectory),
    ("page_query", fuzzing::page_query),
];

/// The files of `fuzz/KIND/TARGET/`, sorted (none when the folder is absent).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_every_past_crash_runs_without_a_panic() {
    for (target, body) in TARGETS {
        let corpus = inputs("corpus", target);
        assert!(
            corpus.iter().any(|p| p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
            "fuzz/corpus/{target}/ has no seeds: run scripts/fuzz.sh"
        );
        for path in corpus.iter().chain(&inputs("artifacts", target)) {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{target} panics on {}", path.display());
        }
    }
}

#[test]
fn a_packed_model_folder_unpacks_to_its_three_files() {
    let packed = fuzzing::pack_model_folder(b"{}", b"tok", b"weights");
    let files = fuzzing::unpack_model_folder(&packed);
    assert_eq!(
        (files.config, files.tokenizer, files.weights),
        (&b"{}"[..], &b"tok"[..], &b"weights"[..])
    );
    // Lengths that run past the end are cut, never read beyond the input.
    let files = fuzzing::unpack_model_folder(&[255, 255, 255, 255, 1, 0, 0, 0, b'x']);
    assert_eq!(
        (files.config, files.tokenizer, files.weights),
        (&b"x"[..], &b""[..], &b""[..])
    );
}
