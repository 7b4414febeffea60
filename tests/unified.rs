//! The unified text + image family (issue 19): the joint vocabulary in the tokenizer, MMaDA's
//! masking rates, MaskGIT's re-mask counts, image positions drawing image tokens only and
//! caption positions text tokens only, the loss falling, and a run that resumes exactly.

mod common;

use std::path::PathBuf;

use common::{Fake, joint, tiny_unified_folder as tiny_folder, unified_shape as shape};
use unmask::config::Attention;
use unmask::corpus::Split;
use unmask::corpus::digits::{Digit, read_digits};
use unmask::rng::Rng;
use unmask::sampler::maskgit::{MaskGitSettings, remasked_count};
use unmask::text::TextCodec;
use unmask::train::Checkpointed;
use unmask::train::Recipe;
use unmask::train::Start;
use unmask::train::data::Windows;
use unmask::train::unified::{
    Sources, UnifiedBatch, UnifiedData, UnifiedTrainConfig, UnifiedTrainer, encode_captions,
    t2i_masked_count,
};
use unmask::trajectory::AnyTrajectory;
use unmask::trajectory::unified::UnifiedTrajectory;
use unmask::unified::{
    CAPTION_SLOT, CaptionSettings, IMAGE_CODES, Layout, SEQUENCE_LEN, TextOnly, UnifiedError,
    UnifiedRun, UnifiedTask, extend_tokenizer, level_named,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn digits(split: Split) -> Vec<Digit> {
    read_digits(&root().join("data/digits"), split).unwrap()
}

#[test]
fn the_joint_vocabulary_follows_the_corpus_tokens_and_text_never_encodes_to_it() {
    let (bytes, codec) = joint();
    let layout = Layout::of(&codec).unwrap();
    // 4,096 corpus tokens, then the four task and boundary tokens, then the 17 grey levels.
    assert_eq!(layout.text_vocab, 4096);
    assert_eq!(
        [layout.t2i, layout.mmu, layout.soi, layout.eoi],
        [4096, 4097, 4098, 4099]
    );
    assert_eq!(layout.image_codes(), 4100..4100 + IMAGE_CODES as u32);
    assert_eq!(codec.vocab_size(), 4117);
    // Each added token is one token, whole; plain text never encodes to them.
    assert_eq!(codec.encode("<|img_3|>").unwrap(), [4103]);
    assert!(
        codec
            .encode("a handwritten seven, the digit 7 | <img>")
            .unwrap()
            .iter()
            .all(|&t| t < layout.text_vocab)
    );
    // A caption spelling them out is refused, not read as an image.
    assert_eq!(
        layout.encode_caption(&codec, "a <|img_3|> seven"),
        Err(UnifiedError::SpecialInCaption {
            token: "<|img_3|>".into()
        })
    );
    // Extending twice is refused; a text-only tokenizer has no layout.
    assert!(
        extend_tokenizer(&bytes)
            .unwrap_err()
            .contains("already has")
    );
    let (_, plain) = text_codec();
    assert!(matches!(
        Layout::of(&plain),
        Err(UnifiedError::MissingToken { .. })
    ));
}

fn text_codec() -> (Vec<u8>, TextCodec) {
    let bytes = std::fs::read(root().join("data/corpus/tokenizer.json")).unwrap();
    let config = unmask::config::ModelConfig::from_json(
        &std::fs::read(root().join("www/models/default/mdlm/config.json")).unwrap(),
    )
    .unwrap();
    let codec = TextCodec::from_bytes(&bytes, &config).unwrap();
    (bytes, codec)
}

#[test]
fn a_batch_masks_each_task_as_mmada_does() {
    let (_, codec) = joint();
    let layout = Layout::of(&codec).unwrap();
    let captions = encode_captions(|t| codec.encode(t)).unwrap();
    let docs: Vec<Vec<u32>> = (0..40)
        .map(|d| {
            (0..200)
                .map(|i| 10 + ((d * 31 + i * 7) % 3000) as u32)
                .collect()
        })
        .collect();
    let windows = Windows::new(&docs, Some(layout.bos), Some(layout.eos), SEQUENCE_LEN);
    let sources = Sources {
        layout: &layout,
        captions: &captions,
        windows: &windows,
    };
    let train = digits(Split::Train);
    let chosen: Vec<&Digit> = train.iter().take(400).collect();
    let lm: Vec<usize> = (0..40).collect();
    let config = UnifiedTrainConfig::new(Recipe::default());
    let batch = UnifiedBatch::new(&sources, &chosen, &chosen, &lm, &config, &mut Rng::new(3));
    assert_eq!(batch.rows, [400, 400, 40]);
    let rows = |task: usize| {
        let start: usize = batch.rows[..task].iter().sum();
        (start..start + batch.rows[task]).map(|r| r * SEQUENCE_LEN..(r + 1) * SEQUENCE_LEN)
    };
    let mask = layout.mask;
    // t2i: only pixels are masked, at least one a row, the share E[cos(πu/2)] = 2/π on average;
    // captions are whole or (one in ten) empty; the weights are a plain mean over the masked.
    let (mut masked, mut dropped, mut weight) = (0usize, 0usize, 0.0f64);
    for r in rows(0) {
        let (x, clean, w) = (
            &batch.noised[r.clone()],
            &batch.clean[r.clone()],
            &batch.weights[r],
        );
        let n = x.iter().filter(|&&t| t == mask).count();
        assert!(n >= 1);
        for (i, (&t, &c)) in x.iter().zip(clean).enumerate() {
            let pixel = Layout::T2I_IMAGE.contains(&i);
            assert_eq!(t == mask, w[i] > 0.0);
            assert!(t == c || (pixel && t == mask), "position {i}");
        }
        masked += n;
        weight += w.iter().map(|&x| f64::from(x)).sum::<f64>();
        dropped += usize::from(clean[Layout::T2I_CAPTION.start + 1] == layout.eos);
    }
    let share = masked as f64 / (400.0 * 64.0);
    assert!((share - 2.0 / std::f64::consts::PI).abs() < 0.05, "{share}");
    assert!((weight - 1.0).abs() < 1e-3, "t2i weights sum to {weight}");
    assert!(
        (20..=70).contains(&dropped),
        "{dropped} of 400 captions dropped"
    );
    // mmu: only the answer is masked, each at its row's rate, weighted 1/p over the answers.
    let mut answer_masked = 0usize;
    for r in rows(1) {
        let (x, clean, w) = (
            &batch.noised[r.clone()],
            &batch.clean[r.clone()],
            &batch.weights[r],
        );
        for (i, (&t, &c)) in x.iter().zip(clean).enumerate() {
            assert!(
                t == c || (Layout::MMU_ANSWER.contains(&i) && t == mask),
                "position {i}"
            );
            assert_eq!(t == mask, w[i] > 0.0);
        }
        answer_masked += x.iter().filter(|&&t| t == mask).count();
        // The same 1/p for every masked answer position of a row.
        let ws: Vec<f32> = w.iter().copied().filter(|&x| x > 0.0).collect();
        assert!(ws.windows(2).all(|p| p[0] == p[1]));
        assert_eq!(clean[Layout::MMU_ANSWER.start - 1], layout.bos);
    }
    let rate = answer_masked as f64 / (400.0 * Layout::MMU_ANSWER.len() as f64);
    assert!((rate - 0.5).abs() < 0.05, "mmu mask rate {rate}");
    // lm: corpus text, masked anywhere.
    for r in rows(2) {
        assert!(batch.clean[r].iter().all(|&t| t < layout.text_vocab));
    }
    // The t2i count follows the cosine at the ends.
    assert_eq!((t2i_masked_count(0.0), t2i_masked_count(1.0)), (64, 1));
}

/// A fake unified vocabulary: text ids 0–39 (mask 3, bos 1, eos 2), the four task tokens, then
/// the 17 grey levels.
fn fake_layout() -> (Layout, Fake) {
    let layout = Layout {
        t2i: 40,
        mmu: 41,
        soi: 42,
        eoi: 43,
        image_base: 44,
        bos: 1,
        eos: 2,
        mask: 3,
        text_vocab: 40,
    };
    let mut fake = Fake::new(Attention::Bidirectional, 44 + IMAGE_CODES);
    fake.spec.mask_id = 3;
    fake.spec.model_length = SEQUENCE_LEN;
    (layout, fake)
}

#[test]
fn maskgit_fills_only_pixels_with_grey_levels_along_the_cosine_and_never_changes_a_kept_cell() {
    let (layout, mut fake) = fake_layout();
    let spec = fake.spec.clone();
    for (steps, cfg) in [(15, 3.5), (4, 0.0), (1, 1.0)] {
        let settings = MaskGitSettings {
            steps,
            cfg_scale: cfg,
            ..MaskGitSettings::default()
        };
        let mut run = layout.text_to_image(&[5, 6, 7], &settings, &spec).unwrap();
        let prompt = run.canvas().tokens().to_vec();
        let mut before = prompt.clone();
        let mut k = 0;
        while let Some(step) = pollster::block_on(run.step(&mut fake)).unwrap() {
            let masked_before = before[Layout::T2I_IMAGE]
                .iter()
                .filter(|&&t| t == layout.mask)
                .count();
            let masked_after = step.canvas[Layout::T2I_IMAGE]
                .iter()
                .filter(|&&t| t == layout.mask)
                .count();
            assert_eq!(
                masked_after,
                remasked_count(k, steps, 64, masked_before),
                "steps {steps}, step {k}"
            );
            for (i, (&was, &now)) in before.iter().zip(&step.canvas).enumerate() {
                if was != layout.mask {
                    assert_eq!(was, now, "cell {i} changed");
                } else if now != layout.mask {
                    assert!(Layout::T2I_IMAGE.contains(&i), "position {i} is no pixel");
                    assert!(layout.level_of(now).is_some(), "{now} is no grey level");
                }
            }
            before = step.canvas.clone();
            k += 1;
        }
        assert_eq!(k, steps);
        assert!(layout.image_in(&before, Layout::T2I_IMAGE).is_some());
        assert_eq!(
            before[..Layout::T2I_IMAGE.start],
            prompt[..Layout::T2I_IMAGE.start]
        );
        // Guidance doubles the calls.
        let calls = run.progress().model_calls;
        assert_eq!(calls, if cfg > 0.0 { 2 * steps } else { steps });
    }
}

#[test]
fn a_seed_draws_the_same_image_and_another_seed_another() {
    let (layout, mut fake) = fake_layout();
    let spec = fake.spec.clone();
    let draw = |seed: u64, fake: &mut Fake| {
        let settings = MaskGitSettings {
            seed,
            ..MaskGitSettings::default()
        };
        let mut run = layout.text_to_image(&[5, 6], &settings, &spec).unwrap();
        while pollster::block_on(run.step(fake)).unwrap().is_some() {}
        run.canvas().tokens().to_vec()
    };
    let a = draw(1, &mut fake);
    assert_eq!(a, draw(1, &mut fake));
    assert_ne!(a, draw(2, &mut fake));
}

#[test]
fn a_caption_draws_text_tokens_only_even_where_the_model_prefers_images() {
    let (layout, mut fake) = fake_layout();
    // The fake's logits for the image tokens are made the highest of every row.
    fake.boost = Some((40..44 + IMAGE_CODES as u32, 50.0));
    let spec = fake.spec.clone();
    let image = [7u8; 64];
    let mut run = layout.image_to_text(&image, None, 0, &spec).unwrap();
    let mut model = TextOnly::new(&mut fake, &layout);
    pollster::block_on(run.run(&mut model, |_| {})).unwrap();
    let tokens = run.sampler().canvas().tokens();
    for &t in &tokens[Layout::MMU_ANSWER] {
        assert!(t < layout.text_vocab && t != layout.mask, "{t}");
    }
    // The image and the frame are untouched.
    assert_eq!(layout.image_in(tokens, Layout::MMU_IMAGE), Some(image));
    // Without the restriction the same model would have drawn image tokens.
    let mut run = layout.image_to_text(&image, None, 0, &spec).unwrap();
    pollster::block_on(run.run(&mut fake, |_| {})).unwrap();
    let tokens = run.sampler().canvas().tokens();
    assert!(
        tokens[Layout::MMU_ANSWER]
            .iter()
            .any(|&t| t >= layout.text_vocab)
    );
}

#[test]
fn bad_captions_and_images_are_named() {
    let (layout, fake) = fake_layout();
    let spec = fake.spec;
    let settings = MaskGitSettings::default();
    assert_eq!(
        layout.text_to_image(&[], &settings, &spec).unwrap_err(),
        UnifiedError::EmptyCaption
    );
    assert!(matches!(
        layout.text_to_image(&[5; CAPTION_SLOT], &settings, &spec),
        Err(UnifiedError::CaptionTooLong { tokens: 16 })
    ));
    let bad = MaskGitSettings {
        cfg_scale: f64::NAN,
        ..settings
    };
    let err = layout.text_to_image(&[5], &bad, &spec).unwrap_err();
    assert!(err.to_string().contains("cfg"), "{err}");
}

#[test]
fn a_unified_folder_runs_both_tasks_and_records_them_as_trajectories() {
    let dir = std::env::temp_dir().join(format!("unmask-unified-{}", std::process::id()));
    tiny_folder(&dir);
    let device = unmask::backend::init(unmask::backend::BackendKind::Cpu).unwrap();
    let mut bundle = unmask::bundle::UnifiedBundle::from_dir(&dir, &device).unwrap();
    let spec = unmask::sampler::Denoiser::spec(&bundle.model).clone();
    let (layout, codec) = (bundle.layout.clone(), bundle.codec.clone());
    let run = |task: &UnifiedTask, model: &mut unmask::model::DitDenoiser| {
        let mut run = UnifiedRun::new(task, &layout, &codec, &spec).unwrap();
        let mut steps = 0;
        while pollster::block_on(run.next(model)).unwrap().is_some() {
            steps += 1;
        }
        assert_eq!(steps, run.steps().len());
        run
    };
    // Text → image: every pixel a grey level, the caption slot as given.
    let t2i = UnifiedTask::T2i {
        caption: "a handwritten seven".into(),
        settings: MaskGitSettings {
            steps: 4,
            ..MaskGitSettings::default()
        },
    };
    let drawn = run(&t2i, &mut bundle.model);
    let image = drawn.image().expect("a whole image");
    assert_eq!(drawn.steps().len(), 4);
    assert_eq!(
        drawn.tokens()[..Layout::T2I_IMAGE.start],
        drawn.prompt_ids()[..Layout::T2I_IMAGE.start]
    );
    // Image → text on that image: text tokens only in the caption, the image untouched.
    let mmu = UnifiedTask::Mmu {
        image: image.to_vec(),
        settings: CaptionSettings::default(),
    };
    let captioned = run(&mmu, &mut bundle.model);
    assert!(
        captioned.tokens()[Layout::MMU_ANSWER]
            .iter()
            .all(|&t| t < layout.text_vocab)
    );
    assert_eq!(
        layout.image_in(captioned.tokens(), Layout::MMU_IMAGE),
        Some(image)
    );
    // Each run's record reads back as it was written, and replays without the model: every
    // image cell's text names its grey level.
    for (task, r) in [(&t2i, &drawn), (&mmu, &captioned)] {
        let t = UnifiedTrajectory::new("tiny", &spec, task, r, &codec);
        let back = AnyTrajectory::from_json(&t.to_json()).unwrap();
        assert_eq!(back, AnyTrajectory::Unified(t.clone()));
        let levels: Vec<Option<u8>> = t.final_ids[task.kind().image_positions()]
            .iter()
            .map(|id| level_named(&t.vocab[id]))
            .collect();
        assert_eq!(levels, image.map(Some).to_vec());
        // A damaged file is refused by what is wrong with it.
        let mut bad = t.clone();
        bad.steps[0].canvas.pop();
        let err = AnyTrajectory::from_json(&bad.to_json()).unwrap_err();
        assert!(err.to_string().contains("canvas of 82 positions"), "{err}");
        let mut bad = t.clone();
        bad.steps[0].commits[0].confidence = 1.5;
        assert!(AnyTrajectory::from_json(&bad.to_json()).is_err());
    }
    assert_eq!(
        UnifiedTrajectory::new("tiny", &spec, &t2i, &drawn, &codec).caption,
        "a handwritten seven"
    );
    // Bad input is refused before any model call, by name.
    let refused = |task: UnifiedTask| UnifiedRun::new(&task, &layout, &codec, &spec).err();
    assert_eq!(
        refused(UnifiedTask::T2i {
            caption: "  ".into(),
            settings: MaskGitSettings::default()
        }),
        Some(UnifiedError::EmptyCaption)
    );
    assert_eq!(
        refused(UnifiedTask::Mmu {
            image: vec![3; 63],
            settings: CaptionSettings::default()
        }),
        Some(UnifiedError::ImageSize { len: 63 })
    );
    assert!(matches!(
        refused(UnifiedTask::Mmu {
            image: vec![17; 64],
            settings: CaptionSettings::default()
        }),
        Some(UnifiedError::PixelRange { index: 0, .. })
    ));
    let steps = refused(UnifiedTask::Mmu {
        image: vec![0; 64],
        settings: CaptionSettings { steps: 0, seed: 0 },
    });
    assert!(
        matches!(steps, Some(UnifiedError::Settings(_))),
        "{steps:?}"
    );
    // A text folder is refused as a unified one, by its family.
    let text =
        unmask::bundle::UnifiedBundle::from_dir(&root().join("www/models/default/mdlm"), &device);
    let err = text.err().unwrap().to_string();
    assert!(err.contains("family") && err.contains("unified"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_few_steps_lower_the_loss_and_a_run_resumes_exactly() {
    let (_, codec) = joint();
    let layout = Layout::of(&codec).unwrap();
    let captions = encode_captions(|t| codec.encode(t)).unwrap();
    let docs: Vec<Vec<u32>> = (0..20)
        .map(|d| {
            (0..300)
                .map(|i| 10 + ((d * 13 + i * 5) % 500) as u32)
                .collect()
        })
        .collect();
    let train: Vec<Digit> = digits(Split::Train).into_iter().take(64).collect();
    let valid: Vec<Digit> = digits(Split::Valid).into_iter().take(16).collect();
    let config = UnifiedTrainConfig {
        batch_mmu: 8,
        batch_lm: 2,
        ..UnifiedTrainConfig::new(Recipe {
            batch_size: 8,
            lr: 3e-3,
            warmup_steps: 1,
            max_steps: 30,
            ema: 0.0,
            ..Recipe::default()
        })
    };
    let model = UnifiedTrainConfig::model_config(codec.vocab_size(), shape());
    let device = unmask::backend::init(unmask::backend::BackendKind::Cpu).unwrap();
    let trainer_with = |captions: Vec<Vec<Vec<u32>>>, start: Start<'_>| {
        UnifiedTrainer::new(
            config.clone(),
            model.clone(),
            layout.clone(),
            captions,
            UnifiedData {
                train: train.clone(),
                valid: valid.clone(),
                train_text: &docs,
                valid_text: &docs,
            },
            &device,
            start,
        )
    };
    let trainer = |start: Start<'_>| trainer_with(captions.clone(), start).unwrap();
    let mut t = trainer(Start::Fresh);
    let before = t.evaluate().unwrap();
    for _ in 0..20 {
        t.train_step().unwrap();
    }
    let after = t.evaluate().unwrap();
    assert!(after.t2i < before.t2i, "{before:?} → {after:?}");
    assert!(after.mmu < before.mmu, "{before:?} → {after:?}");
    // Resume from the saved tensors: the next steps are the uninterrupted run's.
    let (weights, ema) = t.weights().unwrap();
    let optimizer = t.optimizer_bytes().unwrap();
    let mut resumed = trainer(Start::From {
        weights: &weights,
        ema: &ema,
        step: t.step(),
    });
    resumed.load_optimizer(optimizer).unwrap();
    for _ in 0..2 {
        let a = t.train_step().unwrap();
        let b = resumed.train_step().unwrap();
        assert_eq!(a.loss, b.loss);
    }
    // A caption that does not fit its slot is refused before the first step, by its length.
    let mut long = captions.clone();
    long[3][0] = vec![10; CAPTION_SLOT - 1];
    let err = trainer_with(long, Start::Fresh)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("a caption of 15 tokens"), "{err}");
}

fn unmask(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_unmask"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_cli_draws_and_captions_and_refuses_bad_input_by_name() {
    let dir = std::env::temp_dir().join(format!("unmask-unified-cli-{}", std::process::id()));
    tiny_folder(&dir);
    let model = dir.to_str().unwrap();
    let images = dir.join("samples.json");
    let out = unmask(&[
        "generate",
        "--model",
        model,
        "--task",
        "t2i",
        "--prompt",
        "a handwritten seven",
        "--count",
        "2",
        "--steps",
        "4",
        "--images",
        images.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&images).unwrap()).unwrap();
    let drawn = file["images"].as_array().unwrap();
    assert_eq!(drawn.len(), 2);
    for image in drawn {
        let values = image.as_array().unwrap();
        assert_eq!(values.len(), 64);
        assert!(
            values
                .iter()
                .all(|v| (0.0..=16.0).contains(&v.as_f64().unwrap()))
        );
    }
    // The caption names the class, as the ddpm samples file records it.
    assert_eq!(file["classes"][0], 7);
    // The samples file captions, its first image taken; --trace records the run.
    let trace = dir.join("trace.json");
    let out = unmask(&[
        "generate",
        "--model",
        model,
        "--task",
        "mmu",
        "--image",
        images.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = std::fs::read_to_string(&trace).unwrap();
    let Ok(AnyTrajectory::Unified(t)) = AnyTrajectory::from_json(&recorded) else {
        panic!("not a unified trajectory: {recorded}");
    };
    assert_eq!(t.caption, String::from_utf8_lossy(&out.stdout).trim());
    let first: Vec<u8> = drawn[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as u8)
        .collect();
    assert_eq!(t.image, Some(first));
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let short = write("short.json", "[1, 2, 3]");
    let dark = write("dark.json", &format!("[{}17]", "0,".repeat(63)));
    let text_model = root().join("www/models/default/mdlm");
    let text_model = text_model.to_str().unwrap();
    for (args, says) in [
        (vec!["--task", "mmu", "--image", &short], "64 pixels"),
        (vec!["--task", "mmu", "--image", &dark], "pixel 63 is 17"),
        (vec!["--task", "mmu"], "give --image"),
        (vec!["--task", "t2i", "--prompt", " "], "caption is empty"),
        (vec!["--task", "t2i"], "caption is empty"),
        (vec!["--prompt", "a seven"], "give --task"),
        (
            vec!["--task", "t2i", "--prompt", "a seven", "--top-p", "0.9"],
            "--top-p is not a flag",
        ),
        (
            vec!["--task", "t2i", "--prompt", "a seven", "--cfg=-1"],
            "cfg",
        ),
        (
            vec!["--task", "t2i", "--prompt", "a seven", "--image", &short],
            "--image is what",
        ),
    ] {
        let mut all = vec!["generate", "--model", model];
        all.extend(args.iter().copied());
        let out = unmask(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The quality check draws and captions through the same driver: one row per guidance
    // scale, and the captions of every validation digit.
    let out = unmask(&[
        "quality",
        "--model",
        model,
        "--cfg-scales",
        "0,2",
        "--steps",
        "2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("| 0 |") || l.starts_with("| 2 |"))
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.contains("of the 185 validation digits' captions name their digit"),
        "{text}"
    );
    let out = unmask(&["inspect", "--model", model]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("grey levels 4100–4116"), "{text}");
    // A text-only model given a task.
    let out = unmask(&[
        "generate", "--model", text_model, "--task", "t2i", "--prompt", "a seven",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--task is a flag of text + image models"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_cli_trains_resumes_and_exports_a_unified_run() {
    let base = std::env::temp_dir().join(format!("unmask-unified-train-{}", std::process::id()));
    std::fs::remove_dir_all(&base).ok();
    let (run, out) = (base.join("run"), base.join("out"));
    let (run, out) = (run.to_str().unwrap(), out.to_str().unwrap());
    let batches = ["--batch-size", "2", "--batch-mmu", "1", "--batch-lm", "1"];
    let tiny = [
        "--hidden-dim",
        "32",
        "--n-blocks",
        "1",
        "--n-heads",
        "2",
        "--cond-dim",
        "16",
        "--val-every",
        "2",
        "--checkpoint-every",
        "2",
        "--warmup-steps",
        "1",
    ];
    let mut first = vec![
        "train",
        "--objective",
        "unified",
        "--run",
        run,
        "--max-steps",
        "2",
    ];
    first.extend(tiny);
    first.extend(batches);
    let done = unmask(&first);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // A resumed run keeps its recipe; --max-steps may grow, and --out exports.
    let refused = unmask(&["train", "--run", run, "--lr", "0.1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keeps its recipe"));
    let more = unmask(&[
        "train",
        "--run",
        run,
        "--max-steps",
        "3",
        "--half",
        "--out",
        out,
    ]);
    assert!(
        more.status.success(),
        "{}",
        String::from_utf8_lossy(&more.stderr)
    );
    let training: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("out/training.json")).unwrap()).unwrap();
    assert_eq!(training["run"]["step"], 3);
    assert_eq!(training["dtype"], "f16");
    assert_eq!(training["run"]["train"]["batch_mmu"], 1);
    assert_eq!(training["run"]["train"]["batch_lm"], 1);
    assert_eq!(training["run"]["commands"].as_array().unwrap().len(), 2);
    assert!(
        training["final_validation"]["t2i"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("out/config.json")).unwrap()).unwrap();
    assert_eq!(config["family"], "unified");
    // The export draws.
    let drawn = unmask(&[
        "generate",
        "--model",
        out,
        "--task",
        "t2i",
        "--prompt",
        "the digit 2",
        "--steps",
        "3",
        "--quiet",
    ]);
    assert!(
        drawn.status.success(),
        "{}",
        String::from_utf8_lossy(&drawn.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&drawn.stdout).lines().count(), 8);
    // A warm start takes the export's architecture, tokenizer and weights into a new run: a
    // step at a vanishing rate leaves every f16 weight as it was.
    let (warm, again) = (base.join("warm"), base.join("again"));
    let warm_args = |extra: &[&str]| {
        let mut all = vec![
            "train",
            "--objective",
            "unified",
            "--run",
            warm.to_str().unwrap(),
            "--warm-start",
            out,
            "--max-steps",
            "1",
            "--lr",
            "1e-12",
            "--warmup-steps",
            "1",
        ];
        all.extend(batches);
        all.extend(extra);
        unmask(&all)
    };
    let refused = warm_args(&["--hidden-dim", "64"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("keeps the architecture"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let warmed = warm_args(&["--half", "--out", again.to_str().unwrap()]);
    assert!(
        warmed.status.success(),
        "{}",
        String::from_utf8_lossy(&warmed.stderr)
    );
    let tensors = |dir: &std::path::Path| {
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut all: Vec<(String, Vec<f32>)> = file
            .tensors()
            .into_iter()
            .map(|(name, t)| {
                let values = t
                    .data()
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect();
                (name, values)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    };
    let (before, after) = (tensors(&base.join("out")), tensors(&again));
    assert_eq!(before.len(), after.len());
    for ((name, a), (other, b)) in before.iter().zip(&after) {
        assert_eq!(name, other);
        // A zero may change its sign; nothing moves by more than f16's rounding.
        let moved = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(moved < 1e-6, "{name} moved by {moved}");
    }
    // A second warm start into the same run directory is refused: it holds a run.
    let twice = warm_args(&[]);
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("already holds a run"),
        "{}",
        String::from_utf8_lossy(&twice.stderr)
    );
    let training: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("training.json")).unwrap()).unwrap();
    assert_eq!(training["run"]["step"], 1);
    // Its record lists the commands behind the weights it started from, then its own.
    let commands = training["run"]["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 3);
    assert!(commands[2].as_str().unwrap().contains("--warm-start"));
    // Flags of other objectives are refused by name.
    let other = base.join("other");
    let wrong = unmask(&[
        "train",
        "--objective",
        "unified",
        "--run",
        other.to_str().unwrap(),
        "--embed-dim",
        "8",
    ]);
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("--embed-dim is not a flag of --objective unified")
    );
    std::fs::remove_dir_all(&base).ok();
}
