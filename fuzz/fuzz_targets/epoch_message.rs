#![no_main]
//! Fuzz target: `cairn_consensus::fuzzing::epoch_message` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_consensus::fuzzing::epoch_message(data));
