//! Diffusion forcing's sampler (issue 17): the scheduling matrix drives which tokens unmask and
//! when, each model call sees every position's level, the trajectory records the matrix, and a
//! canvas longer than the model's context rolls a window along it.

mod common;

use common::{Fake, run_all};
use unmask::config::Attention;
use unmask::engine::Generation;
use unmask::sampler::forcing::{Schedule, level_sigma};
use unmask::sampler::{
    ForcingSettings, Knob, KnobValue, ModelSpec, SampleError, SamplerKind, Settings, SettingsError,
    Step,
};
use unmask::trajectory::Trajectory;

const VOCAB: usize = 40;
const MASK: u32 = VOCAB as u32 - 1;

/// The common fake as a diffusion-forcing model of context `model_length`: it records every
/// call and refuses a window past its context.
fn fake(model_length: usize) -> Fake {
    let mut fake = Fake::forcing(VOCAB);
    fake.spec.model_length = model_length;
    fake
}

fn settings(schedule: Schedule, levels: usize, gen_length: usize, seed: u64) -> Settings {
    let mut s = ForcingSettings {
        gen_length,
        schedule,
        levels,
        ..Default::default()
    };
    s.draw.seed = seed;
    Settings::Forcing(s)
}

/// Each position's level before step `index`: the prompt's 0 and the first row's `levels`, then
/// what the step before recorded.
fn before(steps: &[Step], index: usize, prompt: usize, levels: u32) -> Vec<u32> {
    match index {
        0 => (0..steps[0].levels.len())
            .map(|i| if i < prompt { 0 } else { levels })
            .collect(),
        _ => steps[index - 1].levels.clone(),
    }
}

const PROMPT: [u32; 3] = [1, 5, 6];

#[test]
fn every_step_records_one_row_of_the_matrix_and_the_canvas_ends_clean() {
    let (levels, tokens, slope) = (4, 12, 1.5);
    let schedule = Schedule::Pyramid { slope };
    let matrix = schedule.matrix(levels, tokens).unwrap();
    let steps = run_all(
        settings(schedule, levels, tokens, 3),
        &PROMPT,
        &mut fake(64),
    );
    assert_eq!(steps.len(), matrix.rows() - 1);
    for (m, step) in steps.iter().enumerate() {
        assert_eq!(&step.levels[..3], &[0, 0, 0], "the prompt is clean");
        assert_eq!(
            step.levels[3..],
            matrix.row(m + 1).collect::<Vec<_>>(),
            "step {m}"
        );
    }
    let last = steps.last().unwrap();
    assert!(last.masked.iter().all(|&m| !m), "{:?}", last.canvas);
    assert!(last.canvas.iter().all(|&t| t != MASK));
}

#[test]
fn a_token_is_committed_only_at_a_step_where_its_level_falls() {
    let levels = 6;
    for (seed, schedule) in [
        (1, Schedule::Pyramid { slope: 1.0 }),
        (2, Schedule::Pyramid { slope: 2.5 }),
        (3, Schedule::FullSequence),
    ] {
        let steps = run_all(settings(schedule, levels, 16, seed), &PROMPT, &mut fake(64));
        for (m, step) in steps.iter().enumerate() {
            let was = before(&steps, m, PROMPT.len(), levels as u32);
            for c in &step.commits {
                let (from, to) = (was[c.position], step.levels[c.position]);
                assert!(
                    to < from,
                    "{schedule:?} step {m}: {} committed at level {from} → {to}",
                    c.position
                );
                assert!(from <= levels as u32);
            }
        }
    }
}

#[test]
fn autoregressive_commits_strictly_left_to_right() {
    let steps = run_all(
        settings(Schedule::Autoregressive, 5, 10, 7),
        &PROMPT,
        &mut fake(64),
    );
    let committed: Vec<usize> = steps
        .iter()
        .flat_map(|s| s.commits.iter().map(|c| c.position))
        .collect();
    assert_eq!(committed, (3..13).collect::<Vec<_>>());
    for step in &steps {
        for c in &step.commits {
            assert!(step.canvas[..c.position].iter().all(|&t| t != MASK));
            assert!(step.canvas[c.position + 1..].iter().all(|&t| t == MASK));
        }
    }
}

#[test]
fn each_call_sees_every_position_at_its_level() {
    let levels = 4;
    let mut model = fake(64);
    let steps = run_all(
        settings(Schedule::Pyramid { slope: 1.0 }, levels, 8, 5),
        &PROMPT,
        &mut model,
    );
    let mut calls = model.level_calls.iter();
    for (m, step) in steps.iter().enumerate() {
        let called = step.model_calls > if m == 0 { 0 } else { steps[m - 1].model_calls };
        if !called {
            assert!(step.commits.is_empty());
            continue;
        }
        let call = calls.next().unwrap();
        let was = before(&steps, m, PROMPT.len(), levels as u32);
        // The window starts at 0 here (the canvas fits the context).
        let want: Vec<f32> = was[..call.tokens.len()]
            .iter()
            .map(|&k| level_sigma(k, levels))
            .collect();
        assert_eq!(call.sigma, want, "step {m}");
        assert_eq!(call.sigma[0], 0.0, "a clean token sits at σ = 0");
        for c in &step.commits {
            assert!(call.targets.contains(&c.position));
        }
    }
    assert!(calls.next().is_none());
}

#[test]
fn a_canvas_longer_than_the_context_rolls_a_window_along_it() {
    let model_length = 16;
    let gen_length = 40;
    let mut model = fake(model_length);
    let steps = run_all(
        settings(Schedule::Pyramid { slope: 2.0 }, 4, gen_length, 11),
        &PROMPT,
        &mut model,
    );
    let last = steps.last().unwrap();
    assert_eq!(last.canvas.len(), PROMPT.len() + gen_length);
    assert!(last.canvas.iter().all(|&t| t != MASK));
    // Every call fit the context (the fake asserts it), and the late ones saw a window that no
    // longer starts at the prompt: its first tokens are the clean context before the band.
    let longest = model
        .level_calls
        .iter()
        .map(|c| c.tokens.len())
        .max()
        .unwrap();
    assert_eq!(longest, model_length);
    // The window moves a quarter of the context at a time: once it leaves the prompt, every
    // call keeps at least three quarters of the context.
    for call in &model.level_calls {
        assert!(
            call.tokens.len() >= model_length * 3 / 4 || call.tokens[..3] == PROMPT,
            "a window of {} tokens",
            call.tokens.len()
        );
    }
    // ... and stays put between moves (so the cache keeps its clean prefix): a window past the
    // prompt may be shorter than the context.
    assert!(
        model
            .level_calls
            .iter()
            .any(|c| c.tokens[..3] != PROMPT && c.tokens.len() < model_length)
    );
    let late = model.level_calls.last().unwrap();
    assert_ne!(&late.tokens[..3], &PROMPT);
    assert!(late.tokens[..late.targets.start].iter().all(|&t| t != MASK));
}

#[test]
fn a_step_wider_than_the_window_is_refused_before_any_call() {
    let spec = fake(16).spec;
    let err = Generation::from_ids(settings(Schedule::FullSequence, 4, 40, 0), &PROMPT, &spec)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            SampleError::Settings(SettingsError::ForcingWindow {
                span: 40,
                model_length: 16
            })
        ),
        "{err}"
    );
}

#[test]
fn a_rollout_past_what_a_record_holds_runs_unrecorded_and_is_refused_recorded() {
    // Autoregressive at 8 levels over 720 tokens: 5,761 rows × 720 tokens, more than the
    // 4,000,000 cells a recorded run may keep.
    let (levels, tokens) = (8, 720);
    let run = settings(Schedule::Autoregressive, levels, tokens, 2);
    let mut model = fake(64);
    let spec = model.spec.clone();
    let mut recorded = Generation::from_ids(run.clone(), &PROMPT, &spec).unwrap();
    let err = recorded.check_recordable().unwrap_err();
    assert!(err.to_string().contains("5761 steps × 720 tokens"), "{err}");
    assert_eq!(err.fix().map(|f| f.knob), Some(Knob::Levels));
    // The first step refuses too, before any model call.
    assert!(pollster::block_on(recorded.next(&mut model)).is_err());
    assert_eq!(model.calls, 0);
    // Not recorded, it runs to the end holding its latest step only.
    let mut unrecorded = Generation::from_ids(run, &PROMPT, &spec).unwrap();
    unrecorded.set_recording(false);
    let mut steps = 0;
    while let Some(step) = pollster::block_on(unrecorded.next(&mut model)).unwrap() {
        assert_eq!(step.index, steps);
        steps += 1;
    }
    assert_eq!(steps, levels + levels * (tokens - 1));
    assert_eq!(unrecorded.steps().len(), 1);
    let canvas = unrecorded.sampler().canvas().tokens();
    assert_eq!(canvas.len(), PROMPT.len() + tokens);
    assert!(canvas.iter().all(|&t| t != MASK));
    // Its record has the text and the totals, and no steps.
    let codec = unmask::text::TextCodec::from_bytes(
        &common::fixture_file("tokenizer.json"),
        &unmask::config::ModelConfig::from_json(&common::fixture_file("config.json")).unwrap(),
    )
    .unwrap();
    let t = unrecorded.trajectory("fake", &codec, &spec);
    assert!(t.steps.is_empty());
    assert_eq!((t.stats.steps, t.stats.generated_tokens), (steps, tokens));
}

#[test]
fn bad_schedules_and_models_are_clear_errors() {
    let spec = fake(64).spec;
    let refuse = |settings: Settings, spec: &ModelSpec| {
        Generation::from_ids(settings, &PROMPT, spec)
            .err()
            .unwrap()
            .to_string()
    };
    let err = refuse(settings(Schedule::Pyramid { slope: 9.0 }, 4, 8, 0), &spec);
    assert!(err.contains("slope = 9"), "{err}");
    let err = refuse(settings(Schedule::FullSequence, 0, 8, 0), &spec);
    assert!(err.contains("levels"), "{err}");
    // A model with one level per sequence cannot run the forcing sampler.
    let mut mdlm = spec.clone();
    mdlm.per_token_noise = false;
    mdlm.attention = Attention::Bidirectional;
    let err = refuse(Settings::defaults(SamplerKind::Forcing), &mdlm);
    assert!(
        err.contains("noise level per token") && err.contains("mdlm"),
        "{err}"
    );
}

#[test]
fn the_clean_prefix_cache_changes_nothing_but_the_tokens_each_call_runs() {
    // In the context and rolling past it (the cache starts again whenever the window slides).
    for (schedule, levels, gen_length, model_length) in [
        (Schedule::Autoregressive, 3, 12, 64),
        (Schedule::Pyramid { slope: 1.0 }, 4, 12, 64),
        (Schedule::Pyramid { slope: 2.5 }, 4, 12, 64),
        (Schedule::FullSequence, 4, 12, 64),
        (Schedule::Pyramid { slope: 2.0 }, 4, 40, 16),
        (Schedule::Autoregressive, 2, 30, 16),
    ] {
        let mut s = settings(schedule, levels, gen_length, 7);
        let run = |s: &Settings| {
            let mut model = fake(model_length);
            let steps = run_all(s.clone(), &PROMPT, &mut model);
            (steps, model)
        };
        let (cached, cached_model) = run(&s);
        s.set(Knob::Cache, KnobValue::Flag(false)).unwrap();
        let (plain, plain_model) = run(&s);
        assert_eq!(cached, plain, "{schedule:?} over {model_length}");
        // Each call saw the same window at the same levels, and the cache served every call.
        let seen = |m: &Fake| -> Vec<_> {
            m.level_calls
                .iter()
                .map(|c| (c.tokens.clone(), c.targets.clone(), c.sigma.clone()))
                .collect()
        };
        assert_eq!(seen(&cached_model), seen(&plain_model), "{schedule:?}");
        assert_eq!(cached_model.cached_calls, cached_model.calls);
        assert_eq!(plain_model.cached_calls, 0);
        let fed = |m: &Fake| m.level_calls.iter().map(|c| c.fed).sum::<usize>();
        assert!(fed(&cached_model) < fed(&plain_model), "{schedule:?}");
        if schedule == Schedule::Autoregressive && model_length == 64 {
            // After the prompt, a call runs the token finished since the last call and the one
            // being drawn: nothing else is run twice.
            for call in &cached_model.level_calls[1..] {
                assert!(call.fed <= 2, "{} tokens run", call.fed);
            }
        }
    }
}

#[test]
fn a_bidirectional_model_is_refused_the_cache_and_runs_without_it() {
    let mut spec = fake(64).spec;
    spec.attention = Attention::Bidirectional;
    let mut s = settings(Schedule::Pyramid { slope: 1.0 }, 4, 8, 0);
    let err = Generation::from_ids(s.clone(), &PROMPT, &spec)
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            SampleError::Settings(SettingsError::CacheUnsupported {
                sampler: SamplerKind::Forcing,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("turn the cache off"), "{err}");
    s.set(Knob::Cache, KnobValue::Flag(false)).unwrap();
    assert!(Generation::from_ids(s, &PROMPT, &spec).is_ok());
}

#[test]
fn the_trajectory_keeps_every_steps_levels() {
    let s = settings(Schedule::Pyramid { slope: 1.0 }, 3, 6, 2);
    let spec = fake(64).spec;
    let mut g = Generation::from_ids(s, &PROMPT, &spec).unwrap();
    pollster::block_on(g.run(&mut fake(64), |_| {})).unwrap();
    let codec = unmask::text::TextCodec::from_bytes(
        &common::fixture_file("tokenizer.json"),
        &unmask::config::ModelConfig::from_json(&common::fixture_file("config.json")).unwrap(),
    )
    .unwrap();
    let trajectory = g.trajectory("fake", &codec, &spec);
    let json = trajectory.to_json();
    let back: Trajectory = serde_json::from_str(&json).unwrap();
    assert_eq!(back.steps, g.steps());
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value["steps"][0]["levels"],
        serde_json::json!([0, 0, 0, 2, 3, 3, 3, 3, 3])
    );
    assert_eq!(value["settings"]["schedule"]["kind"], "pyramid");
    // The page replays it with no model: the heatmap holds the opening row and one per step.
    let replay = unmask::page::replay::Replay::from_trajectory(&back);
    let heatmap = replay.heatmap().unwrap();
    assert_eq!(heatmap.rows, back.steps.len() + 1);
    assert_eq!(heatmap.columns, PROMPT.len() + 6);
}

#[test]
fn showing_candidates_changes_neither_the_text_nor_the_calls() {
    let s = settings(Schedule::Pyramid { slope: 1.5 }, 5, 12, 4);
    let spec = fake(64).spec;
    let run = |shown: bool| {
        let mut model = fake(64);
        let mut g = Generation::from_ids(s.clone(), &PROMPT, &spec).unwrap();
        g.show_candidates(shown);
        pollster::block_on(g.run(&mut model, |_| {})).unwrap();
        let last = g.steps().last().unwrap().clone();
        (last.canvas, last.model_calls, model.level_calls.len())
    };
    let (quiet, shown) = (run(false), run(true));
    assert_eq!(quiet, shown);
    // A call only where a token is drawn: at most one per token.
    assert!(quiet.1 <= 12, "{} calls", quiet.1);
}
