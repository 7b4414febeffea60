//! A property test of the `unmask` binary against hostile input: seeded cases of mutated model
//! folders and hostile arguments — zero and huge lengths, NaN knobs, 100k-character prompts,
//! prompts of only `[MASK]`, paths that are not UTF-8 — each ends with exit code 1 or 2 and a
//! message, never a panic (101) and never a signal. Every hostile size is refused as bad input
//! (exit 2) by the checks that run before the first model call, naming what is wrong.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture_dir, fixture_file};
use unmask::rng::Rng;

/// Cases run; at least [`MIN_REFUSED`] of them must be refused (some mutations are harmless).
const CASES: usize = 600;
const MIN_REFUSED: usize = 500;

/// What one case should end with.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// A hostile size or knob: refused as bad input (2) with a message containing this text.
    Refused(&'static str),
    /// Anything but a crash: success, or 1/2 with a message.
    NoCrash,
}

struct Case {
    /// Arguments after `generate`.
    args: Vec<OsString>,
    expect: Expect,
}

fn os(s: impl Into<String>) -> OsString {
    OsString::from(s.into())
}

/// Hostile values for the config's size fields.
const HUGE: [u64; 5] = [
    1_000_000_000,
    9_223_372_036_854_775_807,
    u64::MAX,
    1 << 32,
    1 << 40,
];

/// The config with `field` set to `value` (a JSON value).
fn config_with(field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut config: serde_json::Value =
        serde_json::from_slice(&fixture_file("config.json")).unwrap();
    config[field] = value;
    config.to_string().into_bytes()
}

/// A model folder under `root` holding `files` (name, bytes).
fn folder(root: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

/// Case `i` of the seeded stream.
fn case(i: usize, rng: &mut Rng, root: &Path) -> Case {
    let good = fixture_dir();
    let model = |dir: &Path| vec![os("--model"), dir.as_os_str().to_owned()];
    let prompt = |p: &str| vec![os("--prompt"), os(p)];
    let with = |mut a: Vec<OsString>, b: Vec<OsString>| {
        a.extend(b);
        a
    };
    // A short run, so that a folder that does load is really run.
    let basic = |dir: &Path| {
        with(
            model(dir),
            vec![
                os("--prompt"),
                os("the old man"),
                os("--gen-length"),
                os("8"),
            ],
        )
    };
    let (config, weights, tokenizer) = (
        fixture_file("config.json"),
        fixture_file("model.safetensors"),
        fixture_file("tokenizer.json"),
    );
    match rng.below(8) {
        // A config size the weights do not back, or an absurd one.
        0 => {
            let field = [
                "n_blocks",
                "hidden_dim",
                "vocab_size",
                "model_length",
                "n_heads",
                "cond_dim",
            ][rng.below(6)];
            let value = HUGE[rng.below(HUGE.len())];
            let dir = folder(
                root,
                &format!("config-{i}"),
                &[
                    ("config.json", config_with(field, value.into())),
                    ("model.safetensors", weights),
                    ("tokenizer.json", tokenizer),
                ],
            );
            // Above usize (u64::MAX fits; JSON numbers past it do not parse) or above the limits:
            // either way config.json is named.
            Case {
                args: basic(&dir),
                expect: Expect::Refused("config.json"),
            }
        }
        // A config size that is plausible but disagrees with the weights.
        1 => {
            let (field, value) = [
                ("n_blocks", 3),
                ("n_blocks", 1),
                ("hidden_dim", 64),
                ("vocab_size", 45),
            ][rng.below(4)];
            let dir = folder(
                root,
                &format!("mismatch-{i}"),
                &[
                    ("config.json", config_with(field, value.into())),
                    ("model.safetensors", weights),
                    ("tokenizer.json", tokenizer),
                ],
            );
            Case {
                args: basic(&dir),
                expect: Expect::Refused(if field == "vocab_size" {
                    "vocab"
                } else {
                    "model.safetensors"
                }),
            }
        }
        // Damaged files: cut short, or bytes flipped.
        2 => {
            let which = rng.below(3);
            let mut files = [
                ("config.json", config),
                ("model.safetensors", weights),
                ("tokenizer.json", tokenizer),
            ];
            let bytes = &mut files[which].1;
            if rng.below(2) == 0 {
                bytes.truncate(rng.below(bytes.len()));
            } else {
                for _ in 0..1 + rng.below(8) {
                    // Mostly the first bytes: the JSON's structure, the safetensors header.
                    let at = rng.below(bytes.len().min(512));
                    bytes[at] = rng.next_u64() as u8;
                }
            }
            let dir = folder(root, &format!("damaged-{i}"), &files);
            Case {
                args: basic(&dir),
                expect: Expect::NoCrash,
            }
        }
        // Huge or zero lengths on the good model.
        3 => {
            let (flag, value, said) = [
                // Above the knob table's bound, or above the model's context: gen_length named.
                ("--gen-length", "18446744073709551615", "gen_length"),
                ("--gen-length", "1000000000", "gen_length"),
                ("--gen-length", "33", "model_length"),
                ("--steps", "0", "steps"),
                ("--steps", "18446744073709551615", "steps"),
                ("--block-length", "0", "block_length"),
                ("--block-length", "18446744073709551615", "block_length"),
                ("--top-k", "0", "top_k"),
            ][rng.below(8)];
            // `steps` is read by llada and mdlm (bd3's first-hitting and ar take one token a step).
            let sampler = if flag == "--steps" {
                ["llada", "mdlm"][rng.below(2)]
            } else {
                ["llada", "mdlm", "bd3", "ar"][rng.below(4)]
            };
            let mut args = with(model(&good), prompt("the old man"));
            args.extend([os("--sampler"), os(sampler), os(format!("{flag}={value}"))]);
            if flag != "--gen-length" {
                args.extend([os("--gen-length"), os("8")]);
            }
            // A knob the sampler does not read is refused too, as bad input.
            Case {
                args,
                expect: Expect::Refused(
                    if flag == "--block-length" && sampler != "llada" && sampler != "bd3" {
                        "block_length"
                    } else {
                        said
                    },
                ),
            }
        }
        // NaN, infinite and out-of-range knobs.
        4 => {
            let (flag, value, said) = [
                ("--temperature", "NaN", "temperature"),
                ("--temperature", "inf", "temperature"),
                ("--temperature", "-1", "temperature"),
                ("--top-p", "NaN", "top_p"),
                ("--top-p", "0", "top_p"),
                ("--top-p", "1.5", "top_p"),
                ("--cfg", "NaN", "cfg"),
                ("--cfg", "1e300", "cfg"),
                ("--threshold", "NaN", "threshold"),
                ("--threshold", "-0.5", "threshold"),
            ][rng.below(10)];
            let mut args = with(model(&good), prompt("the old man"));
            args.extend([
                os("--sampler"),
                os("llada"),
                os("--gen-length"),
                os("8"),
                os(format!("{flag}={value}")),
            ]);
            Case {
                args,
                expect: Expect::Refused(said),
            }
        }
        // Prompts: very long, only masks, empty.
        5 => {
            let long = "the old man saw a cat ".repeat(100_000 / 22 + 1);
            let masks = "[MASK]".repeat(1 + rng.below(40));
            let (text, expect) = [
                (long.as_str(), Expect::Refused("model_length")),
                (masks.as_str(), Expect::NoCrash),
                ("", Expect::Refused("prompt is empty")),
                ("[MASK]", Expect::NoCrash),
            ][rng.below(4)];
            let sampler = ["llada", "mdlm", "bd3", "ar"][rng.below(4)];
            let mut args = with(model(&good), prompt(text));
            args.extend([os("--sampler"), os(sampler), os("--gen-length"), os("4")]);
            // Only the samplers that count steps take --steps (the others refuse it).
            if matches!(sampler, "llada" | "mdlm") {
                args.extend([os("--steps"), os("4")]);
            }
            Case { args, expect }
        }
        // Paths that are not UTF-8, or lead nowhere.
        6 => {
            let path = match rng.below(3) {
                0 => OsString::from_vec(vec![0xff, 0xfe, b'/', 0x80]),
                1 => root
                    .join(OsString::from_vec(vec![b'm', 0xc3, 0x28]))
                    .into_os_string(),
                _ => os("/nonexistent/model"),
            };
            Case {
                args: vec![
                    os("--model"),
                    path,
                    os("--prompt"),
                    os("the old man"),
                    os("--gen-length"),
                    os("8"),
                ],
                expect: Expect::Refused("cannot read"),
            }
        }
        // A folder with one file missing, or a directory where a file should be.
        _ => {
            let missing = ["config.json", "model.safetensors", "tokenizer.json"][rng.below(3)];
            let files: Vec<(&str, Vec<u8>)> = [
                ("config.json", config),
                ("model.safetensors", weights),
                ("tokenizer.json", tokenizer),
            ]
            .into_iter()
            .filter(|(name, _)| *name != missing)
            .collect();
            let dir = folder(root, &format!("missing-{i}"), &files);
            if rng.below(2) == 0 {
                std::fs::create_dir_all(dir.join(missing)).unwrap();
            }
            Case {
                args: basic(&dir),
                expect: Expect::Refused(missing),
            }
        }
    }
}

#[test]
fn hostile_model_folders_and_arguments_end_with_a_message_never_a_crash() {
    let root = std::env::temp_dir().join(format!("unmask-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let mut rng = Rng::new(13);
    let mut refused = 0;
    for i in 0..CASES {
        let Case { args, expect } = case(i, &mut rng, &root);
        // For messages: each argument cut to 60 characters (one prompt is 100k).
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().chars().take(60).collect())
            .collect();
        let out = Command::new(env!("CARGO_BIN_EXE_unmask"))
            .arg("generate")
            .args(&args)
            .args(["--quiet", "--seed", &i.to_string()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=2)) && !err.contains("panicked"),
            "case {i} {shown:?} ended with {:?}: {err}",
            out.status
        );
        if code != Some(0) {
            refused += 1;
            assert!(
                err.starts_with("error: "),
                "case {i} {shown:?}: no message: {err}"
            );
        }
        if let Expect::Refused(said) = expect {
            assert_eq!(
                code,
                Some(2),
                "case {i} {shown:?} was not refused as bad input: {err}"
            );
            assert!(
                err.contains(said),
                "case {i} {shown:?}: the message does not name {said:?}: {err}"
            );
        }
    }
    std::fs::remove_dir_all(&root).ok();
    assert!(
        refused >= MIN_REFUSED,
        "only {refused} of {CASES} hostile cases were refused"
    );
}
