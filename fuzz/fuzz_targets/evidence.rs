#![no_main]
//! Fuzz target: `cairn_consensus::fuzzing::evidence` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_consensus::fuzzing::evidence(data));
