#![no_main]
//! Fuzz target: `cairn_node::fuzzing::sync_response` (see docs/fuzzing.md).
libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_node::fuzzing::sync_response(data));
