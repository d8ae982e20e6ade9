//! Shared by each crate's `tests/fuzz_corpus.rs` (included with `#[path]`): reads the
//! committed corpus of a fuzz target and, on request, writes the crate's seed inputs into it.
//!
//! The corpus of target `t` is `fuzz/corpus/t/` (every file is one input), plus crash
//! reproducers kept as regression cases in `fuzz/regressions/t/` if that directory exists.
//! A missing or empty corpus fails the test: replaying nothing would pass vacuously.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `fuzz/` of this repository, from the including crate's manifest directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every input of `target`: the corpus files (at least one, or this panics) and the
/// regression files, each with its path, in path order.
pub fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let corpus = fuzz_dir().join("corpus").join(target);
    let mut out = read_dir(&corpus)
        .unwrap_or_else(|e| panic!("corpus {} cannot be read: {e}", corpus.display()));
    assert!(!out.is_empty(), "corpus {} is empty", corpus.display());
    let regressions = fuzz_dir().join("regressions").join(target);
    if regressions.exists() {
        out.extend(read_dir(&regressions).expect("regressions directory readable"));
    }
    out
}

fn read_dir(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            out.push((path, bytes));
        }
    }
    out.sort();
    Ok(out)
}

/// With `CAIRN_FUZZ_WRITE_SEEDS=1` in the environment, writes each of `seeds` not already
/// in the corpus of `target` as `seed-<n>` (creating the directory). Run the crate's
/// `fuzz_corpus` tests that way after a format change to regenerate the seeds.
pub fn write_seeds(target: &str, seeds: &[Vec<u8>]) {
    if std::env::var_os("CAIRN_FUZZ_WRITE_SEEDS").is_none() {
        return;
    }
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create corpus directory");
    let existing: Vec<Vec<u8>> = read_dir(&dir)
        .expect("corpus readable")
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    for (i, seed) in seeds.iter().enumerate() {
        if !existing.contains(seed) {
            std::fs::write(dir.join(format!("seed-{i}")), seed).expect("write seed");
        }
    }
}

/// Replays `target`: writes the seeds if asked (see [`write_seeds`]), runs `entry` on every
/// seed and every corpus and regression input (a panic names the file), and returns how
/// many inputs ran.
pub fn replay(target: &str, seeds: &[Vec<u8>], entry: impl Fn(&[u8])) -> usize {
    assert!(!seeds.is_empty(), "no seeds for {target}");
    write_seeds(target, seeds);
    for seed in seeds {
        entry(seed);
    }
    let inputs = inputs(target);
    for (path, bytes) in &inputs {
        eprintln!("{target}: {}", path.display());
        entry(bytes);
    }
    inputs.len()
}
