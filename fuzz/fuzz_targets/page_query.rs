//! `cargo fuzz run page_query` (see scripts/fuzz.sh): [`unmask::fuzzing::page_query`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| unmask::fuzzing::page_query(data));
