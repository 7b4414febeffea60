//! The models the page ships (`www/models/default/{mdlm,bd3,ar}`): each loads into the
//! architecture, generates with its own sampler, fits the page's size budget, and records the
//! `unmask train` commands that made it.

use std::path::PathBuf;

use unmask::backend::{self, BackendKind};
use unmask::bundle::{Bundle, WEIGHTS_FILE};
use unmask::config::Attention;
use unmask::engine::Generation;
use unmask::sampler::{Knob, KnobValue, Settings};
use unmask::train::checkpoint::{Provenance, TRAINING_FILE};

/// The page's budget for one model folder.
const MAX_FOLDER_BYTES: u64 = 25 * 1024 * 1024;

fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("www/models/default")
        .join(name)
}

fn check(name: &str, attention: Attention) {
    let dir = folder(name);
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(size <= MAX_FOLDER_BYTES, "{name} is {size} bytes");
    let weights = std::fs::metadata(dir.join(WEIGHTS_FILE)).unwrap().len();
    assert!(
        weights > 1024 * 1024,
        "{name}'s weights are only {weights} bytes"
    );

    let provenance: Provenance =
        serde_json::from_slice(&std::fs::read(dir.join(TRAINING_FILE)).unwrap()).unwrap();
    assert!(provenance.run.step > 0, "{name} was never trained");
    assert!(
        provenance
            .run
            .commands
            .iter()
            .all(|c| c.contains(" train ")),
        "{name}: {:?}",
        provenance.run.commands
    );
    assert!(provenance.final_validation.perplexity.is_finite());

    let device = backend::init(BackendKind::Cpu).unwrap();
    let mut bundle = Bundle::from_dir(&dir, &device).unwrap();
    assert_eq!(bundle.config.attention(), attention, "{name}");
    assert_eq!(
        bundle.codec.mask_id(),
        3,
        "[MASK] is id 3 of the corpus tokenizer"
    );
    let spec = bundle.model_spec();
    let mut settings = Settings::for_tokens(bundle.config.own_sampler(), 16);
    if settings.has(Knob::StopAtEos) {
        settings
            .set(Knob::StopAtEos, KnobValue::Flag(false))
            .unwrap();
    }
    let mut run = Generation::new(settings, "It is a truth", &bundle.codec, &spec).unwrap();
    pollster::block_on(run.run(&mut bundle.model, |_| {})).unwrap();
    let canvas = run.sampler().canvas();
    assert!(
        canvas.tokens().iter().all(|&t| t != spec.mask_id),
        "{name} left masks"
    );
    let text = bundle.codec.decode(canvas.tokens());
    assert!(
        text.starts_with("It is a truth") && text.len() > "It is a truth".len(),
        "{name}: {text:?}"
    );
}

#[test]
fn the_shipped_mdlm_model_loads_and_generates() {
    check("mdlm", Attention::Bidirectional);
}

#[test]
fn the_shipped_bd3_model_loads_and_generates() {
    check("bd3", Attention::BlockCausal { block_size: 4 });
}

#[test]
fn the_shipped_ar_model_loads_and_generates() {
    check("ar", Attention::Causal);
}
