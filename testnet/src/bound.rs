//! This machine's own throughput bound, measured in the benchmark's run (issue 17: figures
//! comparable across runs of a machine whose speed varies).
//!
//! Every validator checks the signature of every transfer it finalizes (in a batch equation,
//! [`cairn_ledger::verify_transactions`]) and all validators of a local testnet share this
//! machine's cores. So a local testnet of `n` validators cannot finalize more than
//! `S / n` transfers per second, where `S` is the batch signature checks per second this
//! machine does on all its cores: the *signature bound*. The benchmark measures `S` just
//! before it starts the testnet (the machine is otherwise idle then) and reports every TPS
//! figure also as a fraction of `S / n`.
//!
//! The bound is an upper bound only: hashing, execution, RocksDB commits, consensus and the
//! load generator itself share the same cores, so a fraction of 1.0 is not reachable.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cairn_ledger::{Action, Address, SignedTransaction, TransactionBody};
use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use serde::Serialize;

/// Transfers each thread verifies per round (one [`cairn_ledger::verify_transactions`] call,
/// batched as the node batches them).
pub const ROUND_TXS: usize = 4096;
/// Longest measurement accepted.
pub const DURATION_MAX: Duration = Duration::from_secs(60);
/// Most threads used (one per logical CPU up to this).
pub const THREADS_MAX: usize = 64;

/// The measured signature bound.
#[derive(Clone, Debug, Serialize)]
pub struct SignatureBound {
    /// Threads that verified in parallel (this machine's logical CPUs, at most [`THREADS_MAX`]).
    pub threads: usize,
    /// Signatures checked in all, each one accepted.
    pub signatures: u64,
    /// Wall time of the measurement, s.
    pub elapsed_s: f64,
    /// `signatures / elapsed_s`: batch signature checks per second on all cores.
    pub verify_per_s: f64,
    /// Validators of the testnet measured against.
    pub validators: usize,
    /// `verify_per_s / validators`: the most transfers per second the testnet could finalize
    /// if checking signatures were all it did.
    pub bound_tps: f64,
}

impl SignatureBound {
    /// `tps` as a fraction of [`Self::bound_tps`] (0 when the bound is 0).
    pub fn fraction(&self, tps: f64) -> f64 {
        if self.bound_tps > 0.0 {
            tps / self.bound_tps
        } else {
            0.0
        }
    }
}

/// Signs `count` distinct transfers for `chain_id` from a few deterministic keys.
fn sample_transfers(count: usize, chain_id: &str, seed: u64) -> Vec<SignedTransaction> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let keys: Vec<SigningKey> = (0..16).map(|_| SigningKey::generate(&mut rng)).collect();
    let addrs: Vec<Address> = keys
        .iter()
        .map(|k| Address::from_public_key(&k.verifying_key()))
        .collect();
    (0..count)
        .map(|i| {
            let s = i % keys.len();
            TransactionBody {
                chain_id: chain_id.to_string(),
                sender: addrs[s],
                fee: 1,
                nonce: (i / keys.len()) as u64,
                expiry_height: 1_000_000,
                action: Action::Transfer {
                    recipient: addrs[(s + 1) % keys.len()],
                    amount: 1,
                },
            }
            .sign(&keys[s])
        })
        .collect()
}

/// Measures batch signature checks per second on `threads` threads for about `duration`
/// (whole rounds of [`ROUND_TXS`] transfers per thread; at least one round each), and the
/// bound for a testnet of `validators`.
///
/// # Errors
/// `threads` outside 1..=[`THREADS_MAX`], `validators` zero, `duration` over
/// [`DURATION_MAX`], or a signature that does not verify (a bug: the transfers are signed
/// correctly, so the figure would be meaningless).
pub fn measure(duration: Duration, threads: usize, validators: usize) -> Result<SignatureBound> {
    if threads == 0 || threads > THREADS_MAX {
        bail!("threads must be 1..={THREADS_MAX}");
    }
    if validators == 0 {
        bail!("validators must be at least 1");
    }
    if duration > DURATION_MAX {
        bail!("duration must be at most {DURATION_MAX:?}");
    }
    const CHAIN: &str = "cairn-bound";
    let sets: Vec<Vec<SignedTransaction>> = (0..threads)
        .map(|t| sample_transfers(ROUND_TXS, CHAIN, t as u64))
        .collect();
    let started = Instant::now();
    let counts: Vec<Result<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sets
            .iter()
            .map(|txs| {
                scope.spawn(move || {
                    let mut n = 0u64;
                    loop {
                        let verdicts = cairn_ledger::verify_transactions(txs, CHAIN);
                        if let Some((i, Err(e))) =
                            verdicts.iter().enumerate().find(|(_, v)| v.is_err())
                        {
                            bail!("signature {i} of a correctly signed set failed: {e}");
                        }
                        n += txs.len() as u64;
                        if started.elapsed() >= duration {
                            return Ok(n);
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("verify thread panicked")))
            })
            .collect()
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    let mut signatures = 0u64;
    for c in counts {
        signatures += c?;
    }
    let verify_per_s = signatures as f64 / elapsed_s;
    Ok(SignatureBound {
        threads,
        signatures,
        elapsed_s,
        verify_per_s,
        validators,
        bound_tps: verify_per_s / validators as f64,
    })
}

/// [`measure`] on every logical CPU of this machine (at most [`THREADS_MAX`]).
///
/// # Errors
/// As [`measure`].
pub fn measure_all_cores(duration: Duration, validators: usize) -> Result<SignatureBound> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(THREADS_MAX);
    measure(duration, threads, validators)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_rounds_and_divides_by_the_validators() {
        let b = measure(Duration::ZERO, 2, 4).unwrap();
        // Zero duration: exactly one round per thread.
        assert_eq!(b.signatures, 2 * ROUND_TXS as u64);
        assert_eq!(b.threads, 2);
        assert!(b.verify_per_s > 0.0);
        assert!((b.bound_tps * 4.0 - b.verify_per_s).abs() < 1e-6 * b.verify_per_s);
        assert!((b.fraction(b.bound_tps / 2.0) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_sample_transfers_verify_and_a_forged_one_does_not() {
        let mut txs = sample_transfers(64, "c", 7);
        assert!(
            cairn_ledger::verify_transactions(&txs, "c")
                .iter()
                .all(Result::is_ok)
        );
        // The sample is what the measurement checks: a tampered body must fail, or the
        // measurement could count work that was never done.
        if let Action::Transfer { amount, .. } = &mut txs[3].body.action {
            *amount += 1;
        }
        let v = cairn_ledger::verify_transactions(&txs, "c");
        assert!(v[3].is_err());
        assert_eq!(v.iter().filter(|r| r.is_err()).count(), 1);
    }

    #[test]
    fn refuses_bad_options() {
        assert!(measure(Duration::ZERO, 0, 4).is_err());
        assert!(measure(Duration::ZERO, 1, 0).is_err());
        assert!(measure(DURATION_MAX + Duration::from_secs(1), 1, 4).is_err());
    }
}
