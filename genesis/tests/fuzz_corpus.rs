//! Replays the committed fuzz corpus of `genesis_json` (`fuzz/corpus/genesis_json/`, see
//! docs/fuzzing.md) through the entry point the fuzzer calls, on stable, and checks that
//! the seeds are valid genesis files. `CAIRN_FUZZ_WRITE_SEEDS=1` also writes the seeds.

#[path = "../../fuzz/replay.rs"]
mod replay;

use cairn_genesis::{Genesis, fuzzing};

#[test]
fn genesis_json_corpus() {
    let seeds = fuzzing::seeds();
    assert!(seeds.len() >= 2, "both seeds build");
    for s in &seeds {
        Genesis::from_json(std::str::from_utf8(s).unwrap()).expect("seed is a valid genesis");
    }
    assert!(replay::replay("genesis_json", &seeds, fuzzing::genesis_json) > 0);
}
