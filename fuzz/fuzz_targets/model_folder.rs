//! `cargo fuzz run model_folder` (see scripts/fuzz.sh): [`unmask::fuzzing::model_folder`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unmask::fuzzing::model_folder(data));
