//! Sampler behaviour with a fake predictor: schedules, invariants, caches, seeds.

mod common;

use common::{Fake, run_all};
use unmask::config::Attention;
use unmask::sampler::{
    Bd3Order, Bd3Settings, Knob, KnobValue, Remasking, SamplerKind, Settings, Step,
};

const VOCAB: usize = 50;
const PROMPT: [u32; 5] = [3, 14, 15, 9, 26];

/// `sampler`'s defaults for `gen_length` tokens in `steps` steps (where it counts them), not
/// stopping at EOS.
fn settings(sampler: SamplerKind, gen_length: usize, steps: usize) -> Settings {
    let mut s = Settings::for_tokens(sampler, gen_length);
    s.set_steps(steps);
    set_if(&mut s, Knob::StopAtEos, KnobValue::Flag(false));
    s
}

/// Sets `knob` where the sampler has it.
fn set_if(s: &mut Settings, knob: Knob, value: KnobValue) {
    if s.has(knob) {
        s.set(knob, value).unwrap();
    }
}

fn set(s: &mut Settings, knob: Knob, value: KnobValue) {
    s.set(knob, value).unwrap();
}

fn fake_for(sampler: SamplerKind) -> Fake {
    match sampler {
        SamplerKind::Bd3 => Fake::new(Attention::BlockCausal { block_size: 4 }, VOCAB),
        SamplerKind::Ar => Fake::new(Attention::Causal, VOCAB),
        SamplerKind::Forcing => Fake::forcing(VOCAB),
        _ => Fake::new(Attention::Bidirectional, VOCAB),
    }
}

fn all_runs() -> Vec<(SamplerKind, Vec<Step>)> {
    let mut out = Vec::new();
    for sampler in SamplerKind::ALL {
        for temperature in [0.0, 1.0] {
            let mut s = settings(sampler, 16, 16);
            s.draw_mut().temperature = temperature;
            if sampler == SamplerKind::Llada {
                set(&mut s, Knob::BlockLength, KnobValue::Number(8.0));
            }
            out.push((sampler, run_all(s, &PROMPT, &mut fake_for(sampler))));
        }
    }
    out
}

#[test]
fn llada_commits_follow_the_linear_schedule() {
    // Two blocks of 8 with 8 steps: 4 steps per block, 2 tokens each.
    let mut s = settings(SamplerKind::Llada, 16, 8);
    set(&mut s, Knob::BlockLength, KnobValue::Number(8.0));
    let steps = run_all(s, &PROMPT, &mut fake_for(SamplerKind::Llada));
    let counts: Vec<usize> = steps.iter().map(|s| s.commits.len()).collect();
    assert_eq!(counts, vec![2; 8]);
    // An uneven split puts the remainder first: 10 tokens over 4 steps.
    let steps = run_all(
        settings(SamplerKind::Llada, 10, 4),
        &PROMPT,
        &mut fake_for(SamplerKind::Llada),
    );
    let counts: Vec<usize> = steps.iter().map(|s| s.commits.len()).collect();
    assert_eq!(counts, vec![3, 3, 2, 2]);
}

#[test]
fn llada_commits_only_inside_the_current_block() {
    let mut s = settings(SamplerKind::Llada, 12, 12);
    set(&mut s, Knob::BlockLength, KnobValue::Number(4.0));
    let steps = run_all(s, &PROMPT, &mut fake_for(SamplerKind::Llada));
    for step in &steps {
        for c in &step.commits {
            assert!(
                (step.block[0]..step.block[1]).contains(&c.position),
                "{c:?} outside {:?}",
                step.block
            );
        }
    }
    let starts: Vec<usize> = steps.iter().map(|s| s.block[0]).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn prompt_tokens_never_change() {
    for (sampler, steps) in all_runs() {
        for step in &steps {
            assert_eq!(
                &step.canvas[..PROMPT.len()],
                &PROMPT,
                "{sampler:?} step {}",
                step.index
            );
        }
    }
}

#[test]
fn masked_count_never_increases_and_every_run_finishes() {
    for (sampler, steps) in all_runs() {
        let counts: Vec<usize> = steps
            .iter()
            .map(|s| s.masked.iter().filter(|&&m| m).count())
            .collect();
        assert!(
            counts.windows(2).all(|w| w[1] <= w[0]),
            "{sampler:?}: {counts:?}"
        );
        assert_eq!(counts.last(), Some(&0), "{sampler:?} left masks");
        let total: usize = steps.iter().map(|s| s.commits.len()).sum();
        assert_eq!(total, 16, "{sampler:?}");
    }
}

#[test]
fn the_mask_token_is_never_committed() {
    // The fake gives the mask the largest logit everywhere.
    for (sampler, steps) in all_runs() {
        for c in steps.iter().flat_map(|s| &s.commits) {
            assert_ne!(
                c.token,
                (VOCAB - 1) as u32,
                "{sampler:?} committed the mask"
            );
        }
    }
}

#[test]
fn bd3_never_writes_a_later_block() {
    let steps = run_all(
        settings(SamplerKind::Bd3, 16, 16),
        &PROMPT,
        &mut fake_for(SamplerKind::Bd3),
    );
    for step in &steps {
        for c in &step.commits {
            assert!((step.block[0]..step.block[1]).contains(&c.position));
        }
        assert!(
            step.masked[step.block[1]..].iter().all(|&m| m),
            "a later block was written at step {}",
            step.index
        );
        assert_eq!(step.block[0] % 4, 0, "blocks are counted from position 0");
    }
}

#[test]
fn cached_bd3_and_ar_equal_uncached() {
    for sampler in [SamplerKind::Bd3, SamplerKind::Ar] {
        for first_hitting in [false, true] {
            let mut s = settings(sampler, 16, 16);
            set_if(&mut s, Knob::FirstHitting, KnobValue::Flag(first_hitting));
            let mut cached_model = fake_for(sampler);
            let cached = run_all(s.clone(), &PROMPT, &mut cached_model);
            set(&mut s, Knob::Cache, KnobValue::Flag(false));
            let mut plain_model = fake_for(sampler);
            let plain = run_all(s, &PROMPT, &mut plain_model);
            assert_eq!(cached, plain, "{sampler:?}");
            assert_eq!(
                cached_model.cached_calls, cached_model.calls,
                "{sampler:?} did not use the cache"
            );
            assert_eq!(plain_model.cached_calls, 0);
        }
    }
}

#[test]
fn ar_equals_bd3_with_block_size_one() {
    let mut s = settings(SamplerKind::Ar, 12, 12);
    s.draw_mut().temperature = 1.0;
    s.draw_mut().seed = 5;
    let ar = run_all(s.clone(), &PROMPT, &mut Fake::new(Attention::Causal, VOCAB));
    // Ranked, one step per token: first-hitting would spend a draw choosing the one position.
    let bd3_settings = Settings::Bd3(Bd3Settings {
        gen_length: 12,
        block_length: None,
        order: Bd3Order::Ranked {
            steps: 12,
            remasking: Remasking::LowConfidence,
            threshold: None,
        },
        use_cache: true,
        stop_at_eos: false,
        draw: s.draw().clone(),
    });
    let bd3 = run_all(
        bd3_settings,
        &PROMPT,
        &mut Fake::new(Attention::BlockCausal { block_size: 1 }, VOCAB),
    );
    let commits = |steps: &[Step]| steps.iter().map(|s| s.commits.clone()).collect::<Vec<_>>();
    assert_eq!(commits(&ar), commits(&bd3));
    assert_eq!(ar.last().unwrap().canvas, bd3.last().unwrap().canvas);
}

#[test]
fn threshold_commits_at_least_one_per_step() {
    // τ = 1 is never reached: exactly one (the most confident) per step.
    let mut s = settings(SamplerKind::Llada, 8, 8);
    set(&mut s, Knob::Threshold, KnobValue::Number(1.0));
    let steps = run_all(s.clone(), &PROMPT, &mut fake_for(SamplerKind::Llada));
    assert_eq!(steps.len(), 8);
    assert!(steps.iter().all(|s| s.commits.len() == 1));
    // A τ between the first step's confidences: the median.
    let mut first: Vec<f64> = steps[0].candidates.iter().map(|c| c.top[0].prob).collect();
    first.sort_by(f64::total_cmp);
    let median = first[first.len() / 2];
    // τ = 0 is always reached: the whole block in one call.
    set(&mut s, Knob::Threshold, KnobValue::Number(0.0));
    let steps = run_all(s.clone(), &PROMPT, &mut fake_for(SamplerKind::Llada));
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].commits.len(), 8);
    // Other rankings still threshold on the probability (entropy scores are ≤ 0).
    let mut entropy = s.clone();
    set(
        &mut entropy,
        Knob::Remasking,
        KnobValue::Remasking(Remasking::Entropy),
    );
    assert_eq!(
        run_all(entropy, &PROMPT, &mut fake_for(SamplerKind::Llada)).len(),
        1
    );
    // In between, adaptive: every step at least one, fewer calls than tokens.
    set(&mut s, Knob::Threshold, KnobValue::Number(median));
    let steps = run_all(s, &PROMPT, &mut fake_for(SamplerKind::Llada));
    assert!(steps.iter().all(|s| !s.commits.is_empty()));
    assert!(steps.len() < 8 && steps.len() > 1, "{} steps", steps.len());
    assert_eq!(steps.iter().map(|s| s.commits.len()).sum::<usize>(), 8);
}

#[test]
fn seeded_runs_reproduce_and_seeds_differ() {
    for sampler in SamplerKind::ALL {
        let mut s = settings(sampler, 16, 16);
        s.draw_mut().temperature = 1.0;
        set_if(
            &mut s,
            Knob::Remasking,
            KnobValue::Remasking(Remasking::Random),
        );
        s.draw_mut().seed = 42;
        let a = run_all(s.clone(), &PROMPT, &mut fake_for(sampler));
        let b = run_all(s.clone(), &PROMPT, &mut fake_for(sampler));
        assert_eq!(a, b, "{sampler:?}");
        s.draw_mut().seed = 43;
        let c = run_all(s, &PROMPT, &mut fake_for(sampler));
        assert_ne!(
            a.last().unwrap().canvas,
            c.last().unwrap().canvas,
            "{sampler:?}: the seed changed nothing"
        );
    }
}

#[test]
fn mdlm_cache_skips_calls_without_changing_the_result() {
    let mut s = settings(SamplerKind::Mdlm, 8, 64);
    s.draw_mut().seed = 3;
    let mut cached_model = fake_for(SamplerKind::Mdlm);
    let cached = run_all(s.clone(), &PROMPT, &mut cached_model);
    set(&mut s, Knob::Cache, KnobValue::Flag(false));
    let mut plain_model = fake_for(SamplerKind::Mdlm);
    let plain = run_all(s, &PROMPT, &mut plain_model);
    let canvas = |steps: &[Step]| steps.last().unwrap().canvas.clone();
    assert_eq!(canvas(&cached), canvas(&plain));
    assert!(
        cached_model.calls < plain_model.calls,
        "{} vs {}",
        cached_model.calls,
        plain_model.calls
    );
    // Every step with the cache either called the model or committed something.
    let calls: Vec<usize> = cached.iter().map(|s| s.model_calls).collect();
    for (i, step) in cached.iter().enumerate() {
        let called = i == 0 || calls[i] > calls[i - 1];
        assert!(called || !step.commits.is_empty());
    }
}

#[test]
fn masks_in_the_prompt_are_filled_in_place() {
    let mask = (VOCAB - 1) as u32;
    let prompt = [3, 14, mask, 9, mask, 26];
    for sampler in SamplerKind::ALL {
        let s = settings(sampler, 8, 10);
        let steps = run_all(s, &prompt, &mut fake_for(sampler));
        let last = steps.last().unwrap();
        assert!(
            !last.masked[2] && !last.masked[4],
            "{sampler:?} left a prompt mask"
        );
        for i in [0, 1, 3, 5] {
            assert_eq!(last.canvas[i], prompt[i]);
        }
    }
}

#[test]
fn steps_carry_top_candidates_for_masked_positions() {
    let steps = run_all(
        settings(SamplerKind::Llada, 8, 8),
        &PROMPT,
        &mut fake_for(SamplerKind::Llada),
    );
    let first = &steps[0];
    assert_eq!(first.candidates.len(), 8);
    for c in &first.candidates {
        assert_eq!(c.top.len(), 5);
        assert!(c.top.windows(2).all(|w| w[0].prob >= w[1].prob));
        assert!(c.top.iter().all(|t| t.token != (VOCAB - 1) as u32));
    }
    // The committed token is the top candidate at temperature 0.
    let c = &first.commits[0];
    let cand = first
        .candidates
        .iter()
        .find(|x| x.position == c.position)
        .unwrap();
    assert_eq!(cand.top[0].token, c.token);
    assert!((cand.top[0].prob - c.confidence).abs() < 1e-12);
}

#[test]
fn cfg_changes_the_prediction_only_when_enabled() {
    let s = settings(SamplerKind::Llada, 8, 8);
    let plain = run_all(s.clone(), &PROMPT, &mut fake_for(SamplerKind::Llada));
    let mut with_cfg = s;
    set(&mut with_cfg, Knob::Cfg, KnobValue::Number(2.0));
    let guided = run_all(with_cfg, &PROMPT, &mut fake_for(SamplerKind::Llada));
    assert_ne!(plain.last().unwrap().canvas, guided.last().unwrap().canvas);
}

#[test]
fn bd3_and_ar_stop_at_the_first_generated_eos() {
    for sampler in [SamplerKind::Bd3, SamplerKind::Ar] {
        let s = settings(sampler, 24, 24);
        let free = run_all(s.clone(), &PROMPT, &mut fake_for(sampler));
        // Call the token generated third "EOS" and run again, stopping there.
        let eos = free[2].commits[0].token;
        let mut model = fake_for(sampler);
        model.spec.eos_id = Some(eos);
        let mut stopping = s.clone();
        set(&mut stopping, Knob::StopAtEos, KnobValue::Flag(true));
        let stopped = run_all(stopping, &PROMPT, &mut model);
        let last = stopped.last().unwrap();
        let first_eos = free
            .last()
            .unwrap()
            .canvas
            .iter()
            .skip(PROMPT.len())
            .position(|&t| t == eos)
            .unwrap();
        let cut = PROMPT.len() + first_eos + 1;
        assert_eq!(
            last.canvas,
            free.last().unwrap().canvas[..cut],
            "{sampler:?}"
        );
        assert!(
            last.masked.iter().all(|&m| !m),
            "{sampler:?}: the cut canvas still has masks"
        );
        assert!(last.block[1] <= last.canvas.len());
    }
}
