//! Trajectory files: version 2 round-trips compactly (canvases and masked flags rebuilt from the
//! commits, the EOS cut kept), and version-1 files still import and replay.

mod common;

use common::{Fake, fixture_dir, run_all, tiny};
use unmask::Trajectory;
use unmask::config::{Attention, Family};
use unmask::engine::Generation;
use unmask::page::Replay;
use unmask::sampler::{Bd3Order, Knob, KnobValue, SamplerKind, Settings};

fn v1(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(format!("../trajectories/v1-{name}.json"))).unwrap()
}

#[test]
fn version_1_files_import_with_their_settings_and_replay() {
    for (name, sampler) in [("ar", SamplerKind::Ar), ("bd3", SamplerKind::Bd3)] {
        let t = Trajectory::from_json(&v1(name)).unwrap();
        assert_eq!((t.version, t.kind), (1, Family::Text));
        assert_eq!(t.settings.sampler(), sampler);
        assert_eq!((t.settings.gen_length(), t.settings.seed()), (8, 3));
        if let Settings::Bd3(b) = &t.settings {
            assert_eq!(b.order, Bd3Order::FirstHitting);
            assert_eq!(b.draw.top_p, Some(0.9));
        }
        let replay = Replay::from_trajectory(&t);
        assert_eq!(replay.len(), t.steps.len());
        let last = replay.cells(replay.len());
        assert!(
            last.iter().all(|c| !c.text.is_empty()),
            "{name}: masks left"
        );
        // Written again it is version 2, and reads back as the same run.
        let again = Trajectory::from_json(&t.to_json()).unwrap();
        assert_eq!(again.version, 2);
        assert_eq!(
            Trajectory {
                version: 1,
                ..again
            },
            t
        );
    }
}

#[test]
fn version_2_keeps_only_what_cannot_be_derived_and_round_trips_an_eos_cut() {
    let bundle = tiny();
    let prompt = [1, 14, 15, 9];
    for sampler in [SamplerKind::Bd3, SamplerKind::Ar] {
        let attention = match sampler {
            SamplerKind::Ar => Attention::Causal,
            _ => Attention::BlockCausal { block_size: 4 },
        };
        let vocab = bundle.config.vocab_size();
        // Call the third generated token EOS: the run stops there and the canvas is cut.
        let mut settings = Settings::for_tokens(sampler, 20);
        settings
            .set(Knob::StopAtEos, KnobValue::Flag(false))
            .unwrap();
        let free = run_all(settings.clone(), &prompt, &mut Fake::new(attention, vocab));
        let mut model = Fake::new(attention, vocab);
        model.spec.eos_id = Some(free[2].commits[0].token);
        settings
            .set(Knob::StopAtEos, KnobValue::Flag(true))
            .unwrap();
        let mut g = Generation::from_ids(settings, &prompt, &model.spec.clone()).unwrap();
        pollster::block_on(g.run(&mut model, |_| {})).unwrap();
        let spec = model.spec.clone();
        let t = g.trajectory("fake", &bundle.codec, &spec);
        let full = prompt.len() + 20;
        assert!(t.final_ids.len() < full, "{sampler:?}: no EOS cut");
        let json = t.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["version"], 2);
        assert_eq!(value["kind"], "text");
        let records = value["steps"].as_array().unwrap();
        assert!(
            records
                .iter()
                .all(|s| s.get("canvas").is_none() && s.get("masked").is_none())
        );
        assert_eq!(records.iter().filter(|s| s.get("len").is_some()).count(), 1);
        let back = Trajectory::from_json(&json).unwrap();
        for (a, b) in back.steps.iter().zip(&t.steps) {
            assert_eq!(a, b, "{sampler:?}: step {}", b.index);
        }
        assert_eq!(back, t, "{sampler:?}");
    }
}
