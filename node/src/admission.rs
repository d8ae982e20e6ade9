//! Proof-of-work identities for peer admission (see `docs/admission.md`).
//!
//! A non-validator peer is admitted to the mesh only after presenting a nonce such that
//! `blake3::derive_key(`[`POW_DOMAIN`]`, genesis_hash ‖ peer_id_bytes ‖ nonce_le)` has at
//! least `D` leading zero bits, `D` = the chain's `params.admission_difficulty_bits` (genesis's,
//! as changed by governance). `D = 0` disables admission. The solution is computed once per
//! identity (and genesis) and stored beside the node key in [`POW_FILE`].
//!
//! `D` can change on a running chain (governance `set_params`). The network layer then
//! solves again, at most once per distinct higher difficulty, with [`solve_cancellable`]
//! (stopped at shutdown) and stores the stronger solution with [`store`]; see
//! `docs/admission.md` ("Learning a higher difficulty") for when it does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tracing::info;

/// blake3 derive-key context of the admission proof of work.
pub const POW_DOMAIN: &str = "cairn admission pow v1";

/// File name of the stored solution, in the node's home directory.
pub const POW_FILE: &str = "admission_pow.json";

/// Largest accepted `admission_pow.json`, bytes (checked before reading).
pub const POW_FILE_BYTES_MAX: u64 = 4096;

/// Largest difficulty this node will solve or accept (the genesis bound).
pub const DIFFICULTY_BITS_MAX: u8 = cairn_genesis::ADMISSION_DIFFICULTY_BITS_MAX;

/// The solver gives up after `SOLVE_ATTEMPTS_FACTOR · 2^D` attempts (the chance that an
/// honest search needs more is `e^-64`).
pub const SOLVE_ATTEMPTS_FACTOR: u64 = 64;

/// Interval between solver progress log lines.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Proof-of-work failures.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The difficulty exceeds [`DIFFICULTY_BITS_MAX`].
    #[error("difficulty {bits} bits exceeds the maximum of {max}")]
    Difficulty { bits: u8, max: u8 },
    /// No solution within the attempt bound.
    #[error("no solution at {bits} bits within {attempts} attempts")]
    Exhausted { bits: u8, attempts: u64 },
    /// The search was stopped (see [`solve_cancellable`]) before it found a solution.
    #[error("search at {bits} bits cancelled after {attempts} attempts")]
    Cancelled { bits: u8, attempts: u64 },
    /// The solution file could not be read or written.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// The proof-of-work hash of `nonce` for `peer` on the chain with `genesis_hash`.
pub fn pow_hash(genesis_hash: &[u8; 32], peer: &PeerId, nonce: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(POW_DOMAIN);
    h.update(genesis_hash);
    h.update(&peer.to_bytes());
    h.update(&nonce.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Leading zero bits of `hash` (0..=256).
pub fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut n = 0;
    for b in hash {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Whether `nonce` is a valid proof for `peer` at `bits` (always true at 0 bits).
pub fn verify(genesis_hash: &[u8; 32], peer: &PeerId, nonce: u64, bits: u8) -> bool {
    bits == 0 || leading_zero_bits(&pow_hash(genesis_hash, peer, nonce)) >= u32::from(bits)
}

/// The strength of `nonce` as a proof for `peer`: the leading zero bits of its hash, capped
/// at [`DIFFICULTY_BITS_MAX`]. The proof is valid at every difficulty up to this value (a
/// solution searched for `D` bits often has a few more).
pub fn proof_bits(genesis_hash: &[u8; 32], peer: &PeerId, nonce: u64) -> u8 {
    let bits = leading_zero_bits(&pow_hash(genesis_hash, peer, nonce));
    bits.min(u32::from(DIFFICULTY_BITS_MAX)) as u8
}

/// Searches nonces from 0 upwards; logs progress (attempts/s) every [`PROGRESS_INTERVAL`].
///
/// # Errors
/// [`AdmissionError::Difficulty`], [`AdmissionError::Exhausted`].
pub fn solve(genesis_hash: &[u8; 32], peer: &PeerId, bits: u8) -> Result<u64, AdmissionError> {
    solve_cancellable(genesis_hash, peer, bits, &AtomicBool::new(false))
}

/// Attempts between two checks of the cancel flag of [`solve_cancellable`] (about a
/// millisecond of hashing).
pub const CANCEL_CHECK_ATTEMPTS: u64 = 4096;

/// [`solve`] that gives up with [`AdmissionError::Cancelled`] soon (within
/// [`CANCEL_CHECK_ATTEMPTS`] attempts) after `cancel` becomes `true`. Blocking: call from
/// `spawn_blocking`.
///
/// # Errors
/// [`AdmissionError::Difficulty`], [`AdmissionError::Exhausted`],
/// [`AdmissionError::Cancelled`].
pub fn solve_cancellable(
    genesis_hash: &[u8; 32],
    peer: &PeerId,
    bits: u8,
    cancel: &AtomicBool,
) -> Result<u64, AdmissionError> {
    if bits > DIFFICULTY_BITS_MAX {
        return Err(AdmissionError::Difficulty {
            bits,
            max: DIFFICULTY_BITS_MAX,
        });
    }
    let attempts_max = SOLVE_ATTEMPTS_FACTOR << bits;
    let start = Instant::now();
    let mut last_log = start;
    for nonce in 0..attempts_max {
        if verify(genesis_hash, peer, nonce, bits) {
            info!(
                bits,
                nonce,
                attempts = nonce + 1,
                elapsed_ms = start.elapsed().as_millis() as u64,
                "admission proof of work solved"
            );
            return Ok(nonce);
        }
        if nonce % CANCEL_CHECK_ATTEMPTS == 0 && cancel.load(Ordering::Relaxed) {
            return Err(AdmissionError::Cancelled {
                bits,
                attempts: nonce,
            });
        }
        if nonce % 65_536 == 0 && last_log.elapsed() >= PROGRESS_INTERVAL {
            last_log = Instant::now();
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let rate = nonce as f64 / secs;
            let expected_s = (2f64.powi(i32::from(bits))) / rate.max(1.0);
            info!(
                bits,
                attempts = nonce,
                attempts_per_s = rate as u64,
                expected_total_s = expected_s as u64,
                "solving admission proof of work"
            );
        }
    }
    Err(AdmissionError::Exhausted {
        bits,
        attempts: attempts_max,
    })
}

/// Measures the hash rate for about `duration` (bounded by `attempts_max` attempts):
/// attempts per second.
pub fn measure_rate(duration: Duration, attempts_max: u64) -> f64 {
    let peer = PeerId::random();
    let genesis = [7u8; 32];
    let start = Instant::now();
    let mut n = 0u64;
    let mut sink = 0u32;
    while n < attempts_max {
        sink = sink.wrapping_add(leading_zero_bits(&pow_hash(&genesis, &peer, n)));
        n += 1;
        if n % 4096 == 0 && start.elapsed() >= duration {
            break;
        }
    }
    std::hint::black_box(sink);
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PowFile {
    genesis_hash: String,
    peer_id: String,
    difficulty_bits: u8,
    nonce: u64,
}

/// Reads the stored solution at `path` if it is valid for this genesis, peer and difficulty
/// (a solution for a higher difficulty also counts); otherwise solves (blocking; call from
/// `spawn_blocking`) and writes it. Returns `None` at 0 bits (admission disabled).
///
/// # Errors
/// See [`solve`]; [`AdmissionError::Io`] if the file cannot be written.
pub fn load_or_solve(
    path: &Path,
    genesis_hash: &[u8; 32],
    peer: &PeerId,
    bits: u8,
) -> Result<Option<u64>, AdmissionError> {
    if bits == 0 {
        return Ok(None);
    }
    if let Some(nonce) = load(path, genesis_hash, peer, bits) {
        info!(path = %path.display(), "using stored admission proof of work");
        return Ok(Some(nonce));
    }
    info!(bits, path = %path.display(), "solving admission proof of work for this identity (once)");
    let nonce = solve(genesis_hash, peer, bits)?;
    store(path, genesis_hash, peer, bits, nonce)?;
    Ok(Some(nonce))
}

/// Writes `nonce` (a solution at `bits` for `peer` on `genesis_hash`) to `path`, replacing
/// the file at once (written beside it, then renamed), so that a crash leaves either the
/// old file or the new one. Blocking.
///
/// # Errors
/// [`AdmissionError::Io`].
pub fn store(
    path: &Path,
    genesis_hash: &[u8; 32],
    peer: &PeerId,
    bits: u8,
    nonce: u64,
) -> Result<(), AdmissionError> {
    let io = |e: &dyn std::fmt::Display| AdmissionError::Io {
        path: path.into(),
        reason: e.to_string(),
    };
    let file = PowFile {
        genesis_hash: hex::encode(genesis_hash),
        peer_id: peer.to_string(),
        difficulty_bits: bits,
        nonce,
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| io(&e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| io(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(&e))
}

/// The solution stored at `path` if it is valid for this genesis and peer at `bits` (a
/// solution for a higher difficulty also counts); `None` otherwise (no file, larger than
/// [`POW_FILE_BYTES_MAX`], malformed, or not valid).
pub fn load(path: &Path, genesis_hash: &[u8; 32], peer: &PeerId, bits: u8) -> Option<u64> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > POW_FILE_BYTES_MAX {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let file: PowFile = serde_json::from_str(&text).ok()?;
    (file.genesis_hash == hex::encode(genesis_hash)
        && file.peer_id == peer.to_string()
        && verify(genesis_hash, peer, file.nonce, bits))
    .then_some(file.nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros() {
        let mut h = [0u8; 32];
        assert_eq!(leading_zero_bits(&h), 256);
        h[0] = 0x80;
        assert_eq!(leading_zero_bits(&h), 0);
        h[0] = 0;
        h[1] = 0x10;
        assert_eq!(leading_zero_bits(&h), 11);
    }

    #[test]
    fn solve_verify_and_binding() {
        let g = [1u8; 32];
        let peer = PeerId::random();
        let nonce = solve(&g, &peer, 10).unwrap();
        assert!(verify(&g, &peer, nonce, 10));
        // Bound to the peer id and the genesis: a search from 0 rarely finds the same nonce
        // valid elsewhere; check the hashes differ.
        assert_ne!(
            pow_hash(&g, &peer, nonce),
            pow_hash(&[2u8; 32], &peer, nonce)
        );
        assert_ne!(
            pow_hash(&g, &peer, nonce),
            pow_hash(&g, &PeerId::random(), nonce)
        );
        assert!(verify(&g, &peer, 12345, 0));
        assert!(matches!(
            solve(&g, &peer, 33),
            Err(AdmissionError::Difficulty { bits: 33, .. })
        ));
    }

    #[test]
    fn stored_solution_is_reused_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(POW_FILE);
        let g = [3u8; 32];
        let peer = PeerId::random();
        assert_eq!(load_or_solve(&path, &g, &peer, 0).unwrap(), None);
        let n = load_or_solve(&path, &g, &peer, 8).unwrap().unwrap();
        assert_eq!(load(&path, &g, &peer, 8), Some(n));
        // Another genesis or identity does not reuse it.
        assert_eq!(load(&path, &[4u8; 32], &peer, 8), None);
        assert_eq!(load(&path, &g, &PeerId::random(), 8), None);
        std::fs::write(&path, "x".repeat(POW_FILE_BYTES_MAX as usize + 1)).unwrap();
        assert_eq!(load(&path, &g, &peer, 8), None);
    }

    #[test]
    fn a_stronger_solution_replaces_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(POW_FILE);
        let g = [5u8; 32];
        let peer = PeerId::random();
        let weak = load_or_solve(&path, &g, &peer, 4).unwrap().unwrap();
        let strong = solve(&g, &peer, 10).unwrap();
        assert!(proof_bits(&g, &peer, strong) >= 10);
        if proof_bits(&g, &peer, weak) < 10 {
            assert_eq!(
                load(&path, &g, &peer, 10),
                None,
                "the weak proof is not enough"
            );
        }
        store(&path, &g, &peer, 10, strong).unwrap();
        assert_eq!(load(&path, &g, &peer, 10), Some(strong));
        // Valid at every lower difficulty too, so a restart at a lower one reuses it.
        assert_eq!(load_or_solve(&path, &g, &peer, 4).unwrap(), Some(strong));
        assert!(!dir.path().join(format!("{POW_FILE}.tmp")).exists());
    }

    #[test]
    fn proof_bits_are_the_leading_zeros_capped_at_the_maximum() {
        let g = [6u8; 32];
        let peer = PeerId::random();
        for nonce in 0..64 {
            let lz = leading_zero_bits(&pow_hash(&g, &peer, nonce));
            let bits = proof_bits(&g, &peer, nonce);
            assert_eq!(u32::from(bits), lz.min(u32::from(DIFFICULTY_BITS_MAX)));
            assert!(verify(&g, &peer, nonce, bits));
            if bits < DIFFICULTY_BITS_MAX {
                assert!(!verify(&g, &peer, nonce, bits + 1));
            }
        }
    }

    #[test]
    fn a_cancelled_search_stops_at_once() {
        let g = [7u8; 32];
        let peer = PeerId::random();
        let cancel = AtomicBool::new(true);
        let start = Instant::now();
        // 32 bits would take minutes; cancelled, it stops at the first check.
        match solve_cancellable(&g, &peer, DIFFICULTY_BITS_MAX, &cancel) {
            Err(AdmissionError::Cancelled { bits, attempts }) => {
                assert_eq!(bits, DIFFICULTY_BITS_MAX);
                assert_eq!(attempts, 0);
            }
            // The first nonce may be a solution, in which case nothing is searched.
            Ok(n) => assert_eq!(n, 0),
            other => panic!("unexpected {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        cancel.store(false, Ordering::Relaxed);
        let n = solve_cancellable(&g, &peer, 6, &cancel).unwrap();
        assert!(verify(&g, &peer, n, 6));
    }
}
