//! `cargo fuzz run trajectory` (see scripts/fuzz.sh): [`unmask::fuzzing::trajectory`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unmask::fuzzing::trajectory(data));
