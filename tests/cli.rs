//! The `unmask` binary end to end on the fixture model.

mod common;

use common::{fixture_dir, flat, max_abs_diff, reference, unmask};
use unmask::Trajectory;

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("unmask-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `unmask generate` on the fixture model with `args`, its trace written to `trace`: the text
/// printed and the trajectory.
fn generate(args: &[&str], trace: &std::path::Path) -> (String, Trajectory) {
    generate_on(&fixture_dir(), "the old man saw a", args, trace)
}

/// `unmask generate` on `model` after `prompt` with `args`, as [`generate`].
fn generate_on(
    model: &std::path::Path,
    prompt: &str,
    args: &[&str],
    trace: &std::path::Path,
) -> (String, Trajectory) {
    let mut all = vec![
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        prompt,
        "--trace",
        trace.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = unmask(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trajectory = Trajectory::from_json(&std::fs::read_to_string(trace).unwrap()).unwrap();
    (String::from_utf8(out.stdout).unwrap(), trajectory)
}

#[test]
fn generate_writes_the_text_and_a_trajectory_that_round_trips() {
    let (text, t) = generate(
        &[
            "--sampler",
            "bd3",
            "--gen-length",
            "12",
            "--steps",
            "12",
            "--seed",
            "4",
        ],
        &tmp("run.json"),
    );
    assert_eq!(text.trim_end(), t.text);
    assert!(t.text.starts_with("the old man saw a"));
    assert_eq!(t.steps.len(), t.stats.steps);
    assert_eq!(t.final_ids, t.steps.last().unwrap().canvas);
    assert!(t.final_ids.iter().all(|id| t.vocab.contains_key(id)));
    assert_eq!(Trajectory::from_json(&t.to_json()).unwrap(), t);
    let err = Trajectory::from_json(&t.to_json().replace("\"version\": 2", "\"version\": 99"))
        .unwrap_err();
    assert!(err.to_string().contains("version 99"));

    // Damaged files are refused before a replay could index outside a canvas.
    type Damage = fn(&mut Trajectory);
    let damages: [(&str, Damage); 4] = [
        ("numbered", |t| t.steps[1].index = 7),
        ("writes outside", |t| {
            t.steps[0].commits[0].position = 10_000
        }),
        ("gen_length", |t| t.settings.set_gen_length(usize::MAX)),
        ("block", |t| t.steps[0].block = [3, 1_000]),
    ];
    for (expected, damage) in damages {
        let mut bad = t.clone();
        damage(&mut bad);
        let err = Trajectory::from_json(&bad.to_json())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn forward_writes_logits_equal_to_the_reference() {
    let r = reference();
    let ids: Vec<String> = r["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.to_string())
        .collect();
    let out_file = tmp("logits.safetensors");
    let out = unmask(&[
        "forward",
        "--model",
        fixture_dir().to_str().unwrap(),
        "--ids",
        &ids.join(","),
        "--attention",
        "bidirectional",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&out_file).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let logits = file.tensor("logits").unwrap();
    let want = flat(&r["logits"]["bidirectional"]);
    assert_eq!(logits.shape(), &[ids.len(), want.len() / ids.len()]);
    let got: Vec<f32> = logits
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let diff = max_abs_diff(&got, &want);
    assert!(diff < 1e-4, "max |Δ| = {diff}");
}

#[test]
fn inspect_describes_the_model() {
    let out = unmask(&["inspect", "--model", fixture_dir().to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("block-causal (block_size 4)"), "{text}");
    assert!(text.contains("F32"), "{text}");
    assert!(text.contains("\"[MASK]\""), "{text}");
}

#[test]
fn bad_input_exits_nonzero_with_a_message_and_no_panic() {
    let model = fixture_dir();
    let m = model.to_str().unwrap();
    let out_file = tmp("never.safetensors");
    let out = out_file.to_str().unwrap();
    // Bad input (a missing folder, bad settings) exits 2 from `generate`; the other commands
    // report every failure with 1.
    let cases: [(&[&str], &str, i32); 6] = [
        (
            &["generate", "--model", "/nonexistent", "--prompt", "x"],
            "cannot read",
            2,
        ),
        (&["inspect", "--model", "/nonexistent"], "cannot read", 1),
        (
            &["forward", "--model", m, "--ids", "1,9999", "--out", out],
            "token id 9999 is outside",
            1,
        ),
        (
            &["generate", "--model", m, "--prompt", "  "],
            "prompt is empty",
            2,
        ),
        (
            &[
                "generate",
                "--model",
                m,
                "--prompt",
                "the cat",
                "--gen-length",
                "0",
            ],
            "nothing to generate",
            2,
        ),
        (
            &[
                "generate",
                "--model",
                m,
                "--prompt",
                "the cat",
                "--gen-length",
                "40",
                "--steps",
                "40",
            ],
            "model_length",
            2,
        ),
    ];
    for (args, expected, code) in cases {
        let out = unmask(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            err.contains(expected) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn init_writes_a_model_folder_that_loads_and_generates_and_is_never_overwritten() {
    let dir = tmp("init-small");
    let _ = std::fs::remove_dir_all(&dir);
    let out = unmask(&["init", "--preset", "small", "--out", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = dir.to_str().unwrap();
    let out = unmask(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "w5 w6",
        "--sampler",
        "bd3",
        "--gen-length",
        "8",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("w5 w6"), "{text}");
    let again = unmask(&["init", "--preset", "small", "--out", model]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwritten"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stdout of a command that must have succeeded (its stderr when it did not).
fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small corpus folder for `unmask train`: the committed validation split as both splits, and
/// the committed tokenizer.
fn small_corpus(name: &str) -> std::path::PathBuf {
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/corpus");
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to) in [
        ("valid.txt.gz", "train.txt.gz"),
        ("valid.txt.gz", "valid.txt.gz"),
        ("tokenizer.json", "tokenizer.json"),
    ] {
        std::fs::copy(committed.join(from), dir.join(to)).unwrap();
    }
    dir
}

/// [`small_corpus`] with a manifest whose training split is the validation split's counts, so
/// that each chapter's source can be read (`corpus::read_labelled_documents`).
fn labelled_small_corpus(name: &str) -> std::path::PathBuf {
    let dir = small_corpus(name);
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/corpus");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(committed.join("manifest.json")).unwrap()).unwrap();
    manifest["splits"]["train"] = manifest["splits"]["valid"].clone();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    dir
}

fn training_json(folder: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(folder.join("training.json")).unwrap()).unwrap()
}

#[test]
fn a_warm_started_run_continues_an_exported_folder_with_its_recipe_and_history() {
    let corpus = small_corpus("warm-corpus");
    let (first, second) = (tmp("warm-first"), tmp("warm-second"));
    let (first_out, second_out) = (tmp("warm-first-out"), tmp("warm-second-out"));
    for dir in [&first, &second, &first_out, &second_out] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let path = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    ok(unmask(&[
        "train",
        "--run",
        &path(&first),
        "--corpus",
        &path(&corpus),
        "--out",
        &path(&first_out),
        "--objective",
        "ar",
        "--hidden-dim",
        "16",
        "--n-blocks",
        "1",
        "--n-heads",
        "2",
        "--cond-dim",
        "8",
        "--model-length",
        "64",
        "--batch-size",
        "2",
        "--max-steps",
        "4",
        "--warmup-steps",
        "1",
        "--val-every",
        "2",
        "--val-windows",
        "2",
        "--checkpoint-every",
        "2",
    ]));
    // Another machine: only the exported folder travels, and training goes on to step 6.
    ok(unmask(&[
        "train",
        "--run",
        &path(&second),
        "--warm-start",
        &path(&first_out),
        "--max-steps",
        "6",
        "--out",
        &path(&second_out),
    ]));
    let (before, after) = (training_json(&first_out), training_json(&second_out));
    assert_eq!(before["run"]["step"], 4);
    assert_eq!(after["run"]["step"], 6);
    assert_eq!(after["run"]["model"], before["run"]["model"]);
    assert_eq!(after["run"]["train"]["lr"], before["run"]["train"]["lr"]);
    assert_eq!(after["run"]["train"]["max_steps"], 6);
    let steps = |t: &serde_json::Value| -> Vec<u64> {
        t["run"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(steps(&before), [2, 4]);
    assert_eq!(steps(&after), [2, 4, 6], "the history carries over");
    let commands = after["run"]["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 2);
    assert!(commands[1].as_str().unwrap().contains("--warm-start"));
    let weights = |d: &std::path::PathBuf| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_ne!(
        weights(&first_out),
        weights(&second_out),
        "the warm-started run did not train"
    );
    assert!(second.join("run.json").is_file());

    // A warm start keeps the recipe, never overwrites a run, and wants an exported folder.
    let refused = |args: &[&str], expected: &str| {
        let out = unmask(args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    let fresh = path(&tmp("warm-third"));
    // --forcing-sorted may change on a warm start, but it is a share, and only forcing has levels.
    for (flag, value, expected) in [
        ("--lr", "0.1", "keeps its recipe"),
        ("--forcing-sorted", "1.5", "must lie in [0, 1]"),
        ("--forcing-sorted", "0.5", "the ar objective has none"),
    ] {
        refused(
            &[
                "train",
                "--run",
                &fresh,
                "--warm-start",
                &path(&first_out),
                flag,
                value,
            ],
            expected,
        );
    }
    refused(
        &[
            "train",
            "--run",
            &path(&second),
            "--warm-start",
            &path(&first_out),
        ],
        "already holds a run",
    );
    refused(
        &[
            "train",
            "--run",
            &fresh,
            "--warm-start",
            fixture_dir().to_str().unwrap(),
        ],
        "--warm-start takes a folder exported by `unmask train --out`",
    );
    assert!(
        !tmp("warm-third").exists(),
        "a refused warm start left a run directory"
    );
}

#[test]
fn generate_without_steps_takes_one_step_per_generated_token() {
    let (_, t) = generate(
        &["--sampler", "llada", "--gen-length", "12", "--quiet"],
        &tmp("one-per-token.json"),
    );
    assert_eq!(t.settings.steps(), Some(12));
    assert_eq!(t.stats.steps, 12);
}

#[test]
fn quality_runs_the_sampler_asked_for() {
    // The shipped MDLM model is bidirectional: its own sampler (mdlm) would run, while `ar` with
    // its KV cache must be refused with a message — so the flag is not ignored.
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/models/default/mdlm");
    let corpus = small_corpus("quality-corpus");
    let out = unmask(&[
        "quality",
        "--model",
        model.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--sampler",
        "ar",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a causal model"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    // `unmask inspect … | head -0`: the reader is gone before the first line is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_unmask"))
        .args(["inspect", "--model", fixture_dir().to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn without_sampler_a_folder_runs_the_sampler_it_was_trained_for() {
    // config.json's `sampler` for the shipped folders; the attention for one without it (the
    // tiny fixture is block-causal, as the published BD3-LM folders: bd3).
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let folders = [
        (root.join("www/models/default/ar"), "ar"),
        (root.join("www/models/default/bd3"), "bd3"),
        (root.join("www/models/default/mdlm"), "mdlm"),
        (root.join("www/models/default/forcing"), "forcing"),
        (fixture_dir(), "bd3"),
    ];
    for (dir, sampler) in folders {
        let trace = tmp(&format!("own-{sampler}.json"));
        let out = unmask(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "It was a bright morning when",
            "--gen-length",
            "16",
            "--quiet",
            "--trace",
            trace.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Trajectory::from_json(&std::fs::read_to_string(&trace).unwrap()).unwrap();
        assert_eq!(t.settings.sampler().name(), sampler, "{}", dir.display());
    }
}

#[test]
fn random_presets_too_large_for_the_memory_limit_are_refused_before_allocating() {
    let dir = tmp("init-too-large");
    let _ = std::fs::remove_dir_all(&dir);
    let out = unmask(&[
        "init",
        "--preset",
        "llada-8b",
        "--memory-limit",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("8.02 B parameters") && err.contains("--memory-limit (1.0 GB)"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing is written");
    let out = unmask(&[
        "bench",
        "--preset",
        "a2d-qwen3-0.6b",
        "--memory-limit",
        "0.5",
        "--backends",
        "cpu",
        "--forward-only",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| cpu | unavailable |") && table.contains("needs about"),
        "{table}"
    );
}

#[test]
fn bench_runs_dream_and_names_the_run_its_shifted_logits_cannot_make() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dllm/dream");
    let out = unmask(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--backends",
        "cpu",
        "--lengths",
        "8",
        "--repeats",
        "1",
        "--gen-length",
        "4",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("| cpu | mdlm: 4 tokens |"), "{table}");
    assert!(
        table.contains("| cpu | ar (KV cache) | skipped: ") && table.contains("shifted"),
        "{table}"
    );
}

#[test]
fn block_causal_attention_takes_the_block_length_when_config_json_has_none() {
    // dllm's published -bd3lm folders keep their block size in the sampler, not config.json.
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dllm/a2d-qwen3");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "the cat",
            "--attention",
            "block-causal",
            "--sampler",
            "bd3",
            "--gen-length",
            "8",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        unmask(&args)
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give --block-length"), "{err}");
    let out = run(&["--block-length", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn schedule_draws_the_scheduling_matrix_and_refuses_bad_slopes() {
    let unmask = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_unmask"))
            .arg("schedule")
            .args(args)
            .output()
            .unwrap()
    };
    // Autoregressive: each token falls through both levels before the next starts.
    let out = unmask(&[
        "--schedule",
        "autoregressive",
        "--levels",
        "2",
        "--tokens",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["matrix"],
        serde_json::json!([
            [2, 2, 2],
            [1, 2, 2],
            [0, 2, 2],
            [0, 1, 2],
            [0, 0, 2],
            [0, 0, 1],
            [0, 0, 0]
        ])
    );
    // The drawing: a row per step, a shade per token, masked to clean.
    let out = unmask(&[
        "--schedule",
        "full-sequence",
        "--levels",
        "2",
        "--tokens",
        "4",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        rows,
        ["████", "▒▒▒▒", "····"],
        "half-way is the middle shade"
    );
    // Printing a matrix holds all of it: one past what a record may keep is refused by name, and
    // so is a trace of a run that long; the run itself goes ahead without --trace (tests/forcing.rs).
    let out = unmask(&[
        "--schedule",
        "autoregressive",
        "--levels",
        "8",
        "--tokens",
        "720",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("5761 steps × 720 tokens"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let trace = std::env::temp_dir().join(format!("unmask-long-{}.json", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_unmask"))
        .args(["generate", "--model"])
        .arg(root.join("www/models/default/forcing"))
        .args([
            "--prompt",
            "It was",
            "--schedule",
            "autoregressive",
            "--levels",
            "8",
        ])
        .args(["--gen-length", "720", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("more than a recorded run may hold"), "{err}");
    assert!(!trace.exists());
    // A slope past the level count, or one given to a schedule that fixes it: exit 2, named.
    for args in [
        &["--slope", "9", "--levels", "4"][..],
        &["--schedule", "autoregressive", "--slope", "2"][..],
    ] {
        let out = unmask(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("slope"),
            "{args:?}"
        );
    }
}

#[test]
fn generate_runs_diffusion_forcing_and_its_trace_holds_the_matrix() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let forcing = root.join("www/models/default/forcing");
    let run = |extra: &[&str], trace: &std::path::Path| {
        let args = [&["--gen-length", "6", "--quiet"], extra].concat();
        generate_on(&forcing, "It was a bright morning when", &args, trace).1
    };
    // Autoregressive over 3 levels: 3 steps per token, each token clean before the next starts.
    let t = run(
        &["--schedule", "autoregressive", "--levels", "3"],
        &tmp("forcing-ar.json"),
    );
    assert_eq!(t.steps.len(), 6 * 3);
    let prompt = t.prompt_ids.len();
    for (m, step) in t.steps.iter().enumerate() {
        let (token, done) = (m / 3, (m % 3 + 1) as u32);
        let want: Vec<u32> = (0..6)
            .map(|i| match i.cmp(&token) {
                std::cmp::Ordering::Less => 0,
                std::cmp::Ordering::Equal => 3 - done,
                std::cmp::Ordering::Greater => 3,
            })
            .collect();
        assert_eq!(&step.levels[prompt..], want, "step {m}");
    }
    // The JSON keeps each step's levels (a replay needs no schedule code).
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp("forcing-ar.json")).unwrap()).unwrap();
    assert_eq!(
        json["steps"][0]["levels"].as_array().unwrap().len(),
        prompt + 6
    );
    // Full-sequence: every token at the same level, so levels + 0 delay = 3 steps.
    let t = run(
        &["--schedule", "full-sequence", "--levels", "3"],
        &tmp("forcing-full.json"),
    );
    assert_eq!(t.steps.len(), 3);
    // Bad slopes and the forcing sampler on a model without per-token levels: exit 2, named.
    for (args, says) in [
        (vec!["--slope", "9", "--levels", "4"], "slope"),
        (
            vec!["--schedule", "autoregressive", "--slope", "2"],
            "slope",
        ),
    ] {
        let mut all = vec![
            "generate",
            "--model",
            forcing.to_str().unwrap(),
            "--prompt",
            "It was",
        ];
        all.extend(args.iter().copied());
        let out = unmask(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    let mdlm = root.join("www/models/default/mdlm");
    let out = unmask(&[
        "generate",
        "--model",
        mdlm.to_str().unwrap(),
        "--prompt",
        "It was",
        "--sampler",
        "forcing",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("noise level per token"), "{err}");
}

#[test]
fn quality_judges_under_an_autoregressive_model_and_runs_the_schedule_asked_for() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/models/default");
    let corpus = small_corpus("judge-corpus");
    let quality = |model: &str, judge: &str, extra: &[&str]| {
        let (model, judge) = (root.join(model), root.join(judge));
        let mut args = vec![
            "quality",
            "--model",
            model.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--judge",
            judge.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        unmask(&args)
    };
    // Full-sequence over 2 levels: two calls for 128 tokens, each sample scored by `ar/`.
    let out = quality(
        "forcing",
        "ar",
        &["--schedule", "full-sequence", "--levels", "2"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one schedule, then held-out text: {text}");
    assert!(
        lines[0].contains("schedule full-sequence, 2 levels"),
        "{text}"
    );
    assert!(lines[0].contains("0.02 model calls per token"), "{text}");
    for line in &lines {
        let perplexity: f64 = line
            .split("perplexity under the judge ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no perplexity: {line}"))
            .parse()
            .unwrap();
        assert!(perplexity.is_finite() && perplexity > 1.0, "{line}");
    }
    // A judge must be autoregressive: refused with its reason before any sample.
    let out = quality("ar", "mdlm", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("autoregressive") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn diffusion_lm_trains_resumes_exports_and_a_seed_replays_its_text() {
    let corpus = small_corpus("dlm-corpus");
    let (run, out) = (tmp("dlm-run"), tmp("dlm-out"));
    for dir in [&run, &out] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let path = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    let shape = [
        "--embed-dim",
        "8",
        "--hidden-dim",
        "16",
        "--n-blocks",
        "1",
        "--n-heads",
        "2",
        "--cond-dim",
        "8",
        "--model-length",
        "16",
        "--diffusion-steps",
        "100",
        "--batch-size",
        "2",
        "--max-steps",
        "2",
        "--warmup-steps",
        "1",
        "--val-every",
        "2",
        "--val-windows",
        "2",
        "--checkpoint-every",
        "2",
    ];
    let (run_dir, corpus_dir) = (path(&run), path(&corpus));
    let mut first = vec!["train", "--objective", "diffusion-lm", "--run", &run_dir];
    first.extend(["--corpus", &corpus_dir]);
    first.extend(shape);
    ok(unmask(&first));
    // The same run, resumed to step 4 and exported; a recipe flag is refused on a resume.
    let refused = unmask(&["train", "--run", &run_dir, "--lr", "0.1"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keeps its recipe"));
    let out_dir = path(&out);
    ok(unmask(&[
        "train",
        "--run",
        &run_dir,
        "--max-steps",
        "4",
        "--out",
        &out_dir,
    ]));
    let training = training_json(&out);
    assert_eq!(training["run"]["step"], 4);
    assert_eq!(training["run"]["model"]["family"], "diffusion-lm");
    assert_eq!(training["run"]["history"].as_array().unwrap().len(), 2);
    // Generation: a seed replays; the trace holds each step's rounded words.
    let trace = tmp("dlm-trace.json");
    let args = [
        "generate",
        "--model",
        &out_dir,
        "--quiet",
        "--steps",
        "10",
        "--gen-length",
        "8",
        "--seed",
        "5",
        "--prompt",
        "It was",
    ];
    let text = ok(unmask(&args));
    assert!(
        text.starts_with("It was") && text.trim().len() > "It was".len(),
        "{text}"
    );
    let mut traced = args.to_vec();
    traced.extend(["--trace", trace.to_str().unwrap()]);
    assert_eq!(ok(unmask(&traced)), text);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert_eq!(steps[9]["t"], 0);
    let prompt_len = steps[0]["ids"].as_array().unwrap().len() - 8;
    assert!(prompt_len > 0);
    assert_eq!(json["kind"], "diffusion-lm");
    // The trace lists each generated position's nearest words, its own word first.
    let nearest = steps[9]["nearest"].as_array().unwrap();
    assert_eq!(nearest.len(), 8);
    assert_eq!(nearest[0]["position"], prompt_len);
    assert_eq!(nearest[0]["top"][0]["token"], steps[9]["ids"][prompt_len]);
    // `[MASK]` in the prompt is a gap: filled, with the words around it held at every step.
    let infill = [
        "generate",
        "--model",
        &out_dir,
        "--quiet",
        "--steps",
        "10",
        "--seed",
        "5",
        "--gen-length",
        "0",
        "--prompt",
        "It [MASK] so",
        "--trace",
        trace.to_str().unwrap(),
    ];
    let filled = ok(unmask(&infill));
    assert!(
        filled.starts_with("It") && filled.trim_end().ends_with("so"),
        "{filled}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let prompt_ids = json["prompt_ids"].as_array().unwrap().clone();
    let mask = json["model"]["mask_id"].clone();
    let gaps: Vec<usize> = (0..prompt_ids.len())
        .filter(|&i| prompt_ids[i] == mask)
        .collect();
    assert_eq!(gaps.len(), 1, "{prompt_ids:?}");
    for step in json["steps"].as_array().unwrap() {
        for (i, id) in step["ids"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                id == &prompt_ids[i],
                !gaps.contains(&i) || id == &mask,
                "position {i}"
            );
        }
    }
    // Bad input: a flag of another family, steps past T, a canvas past the model's length.
    for (extra, expected) in [
        (
            &["--temperature", "0.5"][..],
            "--temperature is not a setting of Diffusion-LM",
        ),
        (&["--steps", "101"], "1 to 100"),
        (&["--gen-length", "17"], "model_length"),
    ] {
        let mut bad = vec!["generate", "--model", &out_dir, "--quiet"];
        bad.extend(extra);
        let err = unmask(&bad);
        let stderr = String::from_utf8_lossy(&err.stderr);
        assert!(
            !err.status.success() && stderr.contains(expected) && !stderr.contains("panicked"),
            "{extra:?}: {stderr}"
        );
    }
    // The quality check: every prompt fills the model's 16 positions, beside held-out passages
    // as long.
    let report = ok(unmask(&[
        "quality",
        "--model",
        &out_dir,
        "--corpus",
        &corpus_dir,
        "--steps",
        "5",
    ]));
    assert!(
        report.contains("diffusion-lm, 5 steps, clamping on: known words"),
        "{report}"
    );
    assert!(report.contains("passages of 16 tokens"), "{report}");
    // The text commands name the family instead of reading it as a DiT.
    let err = unmask(&["chat", "--model", &out_dir]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("family = diffusion-lm"));
    // Control needs a classifier, which this model does not name.
    let err = unmask(&["generate", "--model", &out_dir, "--control", "bible"]);
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(
        !err.status.success()
            && stderr.contains("--classifier DIR")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    control_classifier_trains_on_the_denoiser_s_vectors_and_steers(&out);
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&out);
}

/// The control classifier of the denoiser in `denoiser`: trained on its word vectors over the
/// labelled corpus, exported, then steering `generate` and scored by `quality`.
fn control_classifier_trains_on_the_denoiser_s_vectors_and_steers(denoiser: &std::path::Path) {
    let corpus = labelled_small_corpus("dlm-labelled-corpus");
    let (run, out) = (tmp("dlm-classifier-run"), tmp("dlm-classifier-out"));
    for dir in [&run, &out] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (run_dir, out_dir, corpus_dir, model) =
        (path(&run), path(&out), path(&corpus), path(denoiser));
    let mut train = vec![
        "train",
        "--objective",
        "latent-classifier",
        "--run",
        &run_dir,
    ];
    train.extend([
        "--denoiser",
        &model,
        "--corpus",
        &corpus_dir,
        "--out",
        &out_dir,
    ]);
    train.extend([
        "--hidden-dim",
        "16",
        "--n-blocks",
        "1",
        "--n-heads",
        "2",
        "--cond-dim",
        "8",
        "--batch-size",
        "4",
        "--max-steps",
        "3",
        "--warmup-steps",
        "1",
        "--val-every",
        "3",
        "--val-windows",
        "4",
    ]);
    ok(unmask(&train));
    let training = training_json(&out);
    assert_eq!(training["run"]["model"]["role"], "classifier");
    assert_eq!(training["run"]["model"]["labels"][1], "bible");
    assert_eq!(training["run"]["denoiser"], model.as_str());
    let accuracy = training["final_validation"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert!(
        !out.join("tokenizer.json").exists(),
        "a classifier reads no text"
    );
    // A classifier run's flags: the denoiser's sizes are its own; --denoiser alone is refused.
    let mut wider = train.clone();
    wider[4] = "dlm-classifier-other";
    wider.extend(["--embed-dim", "4"]);
    let err = unmask(&wider);
    assert!(
        String::from_utf8_lossy(&err.stderr)
            .contains("--embed-dim is not a flag of --objective latent-classifier")
    );
    let err = unmask(&[
        "train",
        "--objective",
        "mdlm",
        "--run",
        "x",
        "--denoiser",
        &model,
    ]);
    assert!(
        String::from_utf8_lossy(&err.stderr)
            .contains("--denoiser is a flag of --objective latent-classifier")
    );
    // Steering: the trace holds the classifier's probability of the target at every step.
    let trace = tmp("dlm-control-trace.json");
    let steered = [
        "generate",
        "--model",
        &model,
        "--classifier",
        &out_dir,
        "--control",
        "bible",
        "--control-scale",
        "3",
        "--steps",
        "12",
        "--seed",
        "2",
        "--quiet",
        "--trace",
        trace.to_str().unwrap(),
    ];
    let text = ok(unmask(&steered));
    assert!(!text.trim().is_empty());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    assert_eq!(json["settings"]["control"]["target"], "bible");
    assert_eq!(json["settings"]["control"]["fluency"], 0.01);
    for step in json["steps"].as_array().unwrap() {
        let p = step["target_probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{step}");
    }
    // Bad control: an attribute the classifier does not know, weights without a target, a
    // negative weight, control flags on another family.
    let masked = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/models/default/mdlm");
    let masked = path(&masked);
    for (args, expected) in [
        (
            vec!["--classifier", &out_dir, "--control", "shakespeare"],
            "knows austen, bible",
        ),
        (vec!["--control-scale", "2"], "give --control ATTRIBUTE"),
        (
            vec![
                "--classifier",
                &out_dir,
                "--control",
                "austen",
                "--fluency=-1",
            ],
            "fluency",
        ),
        (vec!["--classifier", &out_dir], "steers with --control"),
    ] {
        let mut bad = vec!["generate", "--model", &model, "--steps", "3"];
        bad.extend(args.iter().copied());
        let err = unmask(&bad);
        let stderr = String::from_utf8_lossy(&err.stderr);
        assert!(
            !err.status.success() && stderr.contains(expected) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    let err = unmask(&[
        "generate",
        "--model",
        &masked,
        "--prompt",
        "It",
        "--control",
        "bible",
    ]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("--control is a flag of Diffusion-LM"));
    // A denoiser as the classifier: named.
    let err = unmask(&[
        "generate",
        "--model",
        &model,
        "--classifier",
        &model,
        "--control",
        "bible",
    ]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("control classifier is needed"));
    // The quality check scores control: a row per scale and attribute.
    let report = ok(unmask(&[
        "quality",
        "--model",
        &model,
        "--corpus",
        &corpus_dir,
        "--classifier",
        &out_dir,
        "--classifier-scales",
        "0,2",
        "--control-samples",
        "1",
        "--steps",
        "12",
    ]));
    assert!(report.contains("judged by naive Bayes"), "{report}");
    let rows = report
        .lines()
        .filter(|l| l.trim_start().starts_with(['0', '2']) && l.contains('%'))
        .count();
    assert_eq!(rows, 4, "{report}");
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&out);
}
