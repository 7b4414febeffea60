//! Fuzzes the weight loader and the config parser: arbitrary bytes must give `Ok` or a clear
//! error, never a panic. `cargo fuzz run load_model` (seed corpus: tests/fixtures/tiny).
#![no_main]

use libfuzzer_sys::fuzz_target;
use unmask::backend::{BackendKind, init};
use unmask::config::ModelConfig;
use unmask::model::load_dit;

const CONFIG: &[u8] = include_bytes!("../../tests/fixtures/tiny/config.json");

fuzz_target!(|data: &[u8]| {
    let _ = ModelConfig::from_json(data);
    let (Ok(config), Ok(device)) = (ModelConfig::from_json(CONFIG), init(BackendKind::Cpu)) else {
        return;
    };
    let _ = load_dit(&config, data, &device);
});
