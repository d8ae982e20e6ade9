#![no_main]
//! Fuzz target: `cairn_node::fuzzing::sync_request` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_node::fuzzing::sync_request(data));
