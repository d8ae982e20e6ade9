//! Fuzzing entry point for `genesis.json` parsing and validation.
//!
//! Not part of the API: called by the cargo-fuzz target `genesis_json` in `fuzz/` and by
//! `tests/fuzz_corpus.rs`, which replays the committed corpus `fuzz/corpus/genesis_json/`
//! on stable. Never panics on any input; `assert!`s the properties in its docs. See
//! `docs/fuzzing.md`.

use crate::{GENESIS_FILE_BYTES_MAX, Genesis};

/// `Genesis::from_json` on `data` as [`Genesis::load`] would see it (at most
/// [`GENESIS_FILE_BYTES_MAX`] bytes of UTF-8; anything else is refused before parsing).
///
/// A genesis that parses is valid (`validate` passes again); its pretty JSON parses back to
/// an equal value with the same hash; its hash does not depend on account order; deriving
/// the validator set (same length as the file's list), the initial accounts, the state root
/// and the genesis block never panics, and the block's parent hash is the genesis hash.
pub fn genesis_json(data: &[u8]) {
    if data.len() as u64 > GENESIS_FILE_BYTES_MAX {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(genesis) = Genesis::from_json(text) else {
        return;
    };
    assert!(
        genesis.validate().is_ok(),
        "from_json returned an invalid genesis"
    );
    let hash = genesis.hash();
    let again = Genesis::from_json(&genesis.to_json_pretty()).expect("pretty JSON parses back");
    assert_eq!(again, genesis, "JSON round trip changed the genesis");
    assert_eq!(again.hash(), hash);
    let mut reversed = genesis.clone();
    reversed.accounts.reverse();
    assert_eq!(reversed.hash(), hash, "hash depends on account order");
    assert_eq!(genesis.validator_set().len(), genesis.validators.len());
    assert_eq!(genesis.initial_accounts().len(), genesis.accounts.len());
    let _ = genesis.state_root();
    let block = genesis.genesis_block();
    assert_eq!(block.header.parent_hash, hash);
    assert_eq!(block.header.height, 0);
}

/// Valid genesis files to seed the corpus: the documented example
/// (`testdata/genesis.example.json`) and a variant with every parameter given.
/// `tests/fuzz_corpus.rs` writes them to `fuzz/corpus/genesis_json/seed-*` when run with
/// `CAIRN_FUZZ_WRITE_SEEDS=1`.
pub fn seeds() -> Vec<Vec<u8>> {
    let example = include_str!("../testdata/genesis.example.json");
    let mut out = vec![example.as_bytes().to_vec()];
    if let Ok(mut g) = Genesis::from_json(example) {
        g.params.admission_difficulty_bits = 8;
        g.accounts.reverse();
        out.push(g.to_json_pretty().into_bytes());
    }
    out
}
