//! The bodies of the fuzz targets, in the library so that a stable `cargo test`
//! (`tests/fuzz_corpus.rs`) replays every committed corpus input and crash through the very code
//! the fuzzers ran (`fuzz/fuzz_targets/*.rs` call these; `scripts/fuzz.sh` runs them).
//!
//! Each takes arbitrary bytes and must return without panicking, whatever they hold; where an
//! input is accepted, it is also used (a model that loads runs a step, a trajectory that passes
//! its check is replayed, a page link is written back and read again), so the fuzzer reaches the
//! code behind each format's check.

use crate::backend::{BackendKind, init};
use crate::bundle::{Bundle, ModelFiles};
use crate::engine::Generation;
use crate::page::{PageState, Replay};
use crate::sampler::{SamplerKind, Settings};
use crate::trajectory::Trajectory;

/// Bytes of each length field in a packed model folder.
const LENGTH_BYTES: usize = 4;

/// Packs a model folder into one fuzz input: the lengths of `config.json` and `tokenizer.json`
/// (u32, little-endian), then the two files and `model.safetensors`.
pub fn pack_model_folder(config: &[u8], tokenizer: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(2 * LENGTH_BYTES + config.len() + tokenizer.len() + weights.len());
    for part in [config, tokenizer] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(config);
    out.extend_from_slice(tokenizer);
    out.extend_from_slice(weights);
    out
}

/// The three files of a packed input — config, tokenizer, weights — as borrowed slices; lengths
/// past the end are cut to what is there.
pub fn unpack_model_folder(data: &[u8]) -> PackedFolder<'_> {
    let length = |at: usize| {
        data.get(at..at + LENGTH_BYTES)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let (config_len, tokenizer_len) = (length(0), length(LENGTH_BYTES));
    let rest = data.get(2 * LENGTH_BYTES..).unwrap_or_default();
    let (config, rest) = rest.split_at(config_len.min(rest.len()));
    let (tokenizer, weights) = rest.split_at(tokenizer_len.min(rest.len()));
    PackedFolder {
        config,
        weights,
        tokenizer,
    }
}

/// The files of a packed model folder.
#[derive(Clone, Copy, Debug)]
pub struct PackedFolder<'a> {
    /// `config.json`.
    pub config: &'a [u8],
    /// `model.safetensors`.
    pub weights: &'a [u8],
    /// `tokenizer.json`.
    pub tokenizer: &'a [u8],
}

/// The model loader: `config.json`, `tokenizer.json` and `model.safetensors` from bytes, as the
/// CLI and the page open them. A folder that loads runs one step of LLaDA.
pub fn model_folder(data: &[u8]) {
    let Ok(device) = init(BackendKind::Cpu) else {
        return;
    };
    let files = unpack_model_folder(data);
    if let Ok(crate::config::Family::Ddpm) = crate::bundle::family_of(files.config) {
        return image_folder(files.config, files.weights, &device);
    }
    let weights = [files.weights.to_vec()];
    let folder = ModelFiles {
        config: files.config,
        weights: &weights,
        tokenizer: files.tokenizer,
        tokenizer_config: None,
    };
    let Ok(mut bundle) = Bundle::from_files(folder, &device) else {
        return;
    };
    let spec = bundle.model_spec();
    let settings = Settings::for_tokens(SamplerKind::Llada, 2);
    if let Ok(mut g) = Generation::new(settings, "a", &bundle.codec, &spec) {
        let _ = pollster::block_on(g.next(&mut bundle.model));
    }
}

/// A ddpm-family folder (config.json and weights; no tokenizer): one DDIM step of each role.
fn image_folder(config: &[u8], weights: &[u8], device: &burn::tensor::Device) {
    use crate::bundle::{ImageBundle, ImageNetwork};
    use crate::network::NoisePredictor;
    use crate::sampler::image::{Condition, ImageRun, ImageSettings};
    let Ok(bundle) = ImageBundle::from_files(config, weights, device) else {
        return;
    };
    let settings = ImageSettings::Ddim {
        steps: 1,
        eta: 0.0,
        condition: Condition::default(),
    };
    match bundle.network {
        ImageNetwork::Noise(mut noise) => {
            let spec = noise.spec().clone();
            if let Ok(mut run) = ImageRun::new(&settings, &spec, None) {
                let none: Option<&mut crate::model::patch_dit::PatchDitClassifier> = None;
                let _ = pollster::block_on(run.step(&mut noise, none));
            }
        }
        ImageNetwork::Classifier(classifier) => {
            let x = vec![0.0; bundle.config.pixels()];
            let _ = pollster::block_on(classifier.probabilities(&x, 0));
        }
    }
}

/// Trajectory import: a file that passes [`crate::trajectory::AnyTrajectory::from_json`] is
/// replayed as the page does: for text every cell and candidate at its first, middle and last
/// step; for images each frame and picture.
pub fn trajectory(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(crate::config::Family::Ddpm) = crate::trajectory::kind_of(text) {
        if let Ok(crate::trajectory::AnyTrajectory::Ddpm(t)) =
            crate::trajectory::AnyTrajectory::from_json(text)
        {
            let _ = t.to_json();
            // Replayed as the page does: each frame, the plots' series and the pictures.
            let replay = crate::page::images::ImageReplay::from_trajectory(&t);
            for at in [0, replay.len() / 2, replay.len()] {
                let _ = replay.frame(at);
                for kind in [
                    crate::page::images::PictureKind::View,
                    crate::page::images::PictureKind::Vector,
                ] {
                    let _ = replay.picture(at, kind);
                }
            }
            let _ = (replay.norm_series(), replay.class_prob_series());
        }
        return;
    }
    let Ok(t) = Trajectory::from_json(text) else {
        return;
    };
    let replay = Replay::from_trajectory(&t);
    for at in [0, replay.len() / 2, replay.len()] {
        for cell in replay.cells(at) {
            let _ = replay.candidates(cell.position, at);
            let _ = replay.commit_of(cell.position);
        }
        let _ = replay.committed_through(at);
    }
    let _ = (
        replay.masked_series(),
        replay.confidence_series(),
        replay.width(),
    );
}

/// The page's link: any query string reads without failing, and the state it gives is written
/// back as a link that reads again, without complaint, as the same state.
pub fn page_query(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    let (state, _) = PageState::from_query(&query);
    let written = state.to_query();
    let (again, complaints) = PageState::from_query(&written);
    assert!(
        complaints.is_empty(),
        "the page's own link {written:?} was refused: {complaints:?}"
    );
    assert_eq!(again, state, "the link {written:?} reads as another state");
}
