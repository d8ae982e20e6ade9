//! Coalescing signature verification: the transactions a node receives from every source
//! (RPC submissions, gossip batches) are verified here, once, in shared batches.
//!
//! # Why
//!
//! [`cairn_ledger::verify_transactions`] checks many signatures with one batch equation, and
//! its cost per signature falls with the batch size (curve25519-dalek uses Straus below 190
//! points and Pippenger above; each call also pays a hand-off to a blocking thread and a
//! wake-up). Transactions arrive in small groups: a wallet sends one, the load generator's
//! 10 ms ticks and the 10 ms gossip linger deliver tens. Verified group by group, a loaded
//! 4-validator testnet spent most of its signature time in small Straus batches
//! (`docs/throughput.md`, "Where the time goes").
//!
//! # Design
//!
//! A job is a group of transactions and a reply channel. Jobs enter a bounded queue
//! ([`VERIFIER_QUEUE_JOBS_MAX`]; senders wait for room, which is the backpressure). One
//! collector task takes jobs until it holds [`VERIFY_BATCH_TXS_TARGET`] transactions or the
//! first job has waited [`VERIFY_LINGER_MS`], then verifies them together on a blocking
//! thread. At most `threads` batches run at once; while all are busy the collector keeps
//! taking jobs (up to [`VERIFY_BATCH_TXS_MAX`] transactions), so batches grow with load and
//! stay small (fast) when the node is idle.
//!
//! Verdicts are exactly [`cairn_ledger::verify_transactions`]'s for each job's transactions
//! (the rule gives the same verdict whatever the grouping), returned in job order.
//!
//! # State warm-up
//!
//! With a store ([`Verifier::spawn_with_store`]), each batch's valid transactions have their
//! senders' and recipients' accounts read into the store's account cache
//! ([`cairn_ledger::Store::prefetch_accounts`], one sorted `MultiGet`) on the same blocking
//! thread, before the verdicts go out. Every transaction a node admits passes through here
//! first, so mempool admission, block building and the execution of a proposal later read
//! those accounts from memory on the consensus thread instead of from RocksDB: with millions
//! of accounts drawn uniformly, nearly every such read missed every cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_ledger::{Address, HashedTx, LedgerError, Store, VerifiedTx};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most jobs waiting in the queue. Each job is bounded by its source (an RPC batch by
/// `cairn_rpc::SEND_TRANSACTIONS_MAX`, a gossip batch by `TX_BATCH_TXS_MAX`).
pub const VERIFIER_QUEUE_JOBS_MAX: usize = 1024;

/// A batch is dispatched as soon as it holds this many transactions.
pub const VERIFY_BATCH_TXS_TARGET: usize = cairn_ledger::VERIFY_BATCH_CHUNK;

/// While every verification thread is busy, the collector keeps adding jobs to the next
/// batch up to this many transactions, then waits (and the queue fills).
pub const VERIFY_BATCH_TXS_MAX: usize = 4 * cairn_ledger::VERIFY_BATCH_CHUNK;

/// Longest a job waits for others to share its batch, in milliseconds. Adds at most this
/// to a transaction's submit-to-finalized latency at each node that verifies it.
pub const VERIFY_LINGER_MS: u64 = 10;

/// The verdicts of one job: one per transaction, in submission order; a valid transaction
/// comes back as a [`VerifiedTx`] (its id and signed hash carried, never recomputed).
pub struct Verified {
    /// `results[i]` is the verdict on the job's `i`-th transaction.
    pub results: Vec<Result<VerifiedTx, LedgerError>>,
}

/// The verifier stopped (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the signature verifier has stopped")]
pub struct VerifierStopped;

struct Job {
    txs: Vec<HashedTx>,
    reply: oneshot::Sender<Verified>,
}

/// Counters of the work done (for tests and metrics).
#[derive(Default, Debug)]
pub struct VerifierStats {
    /// Batches verified.
    pub batches: AtomicU64,
    /// Transactions verified.
    pub txs: AtomicU64,
}

/// Handle to the verifier task; cheap to clone. The task stops when every handle is dropped.
#[derive(Clone)]
pub struct Verifier {
    jobs: mpsc::Sender<Job>,
    stats: Arc<VerifierStats>,
}

impl Verifier {
    /// Starts the collector on the current tokio runtime; batches are verified for
    /// `chain_id` on at most `threads` (≥ 1) blocking threads at once.
    pub fn spawn(chain_id: String, threads: usize) -> Verifier {
        Verifier::start(chain_id, threads, None)
    }

    /// [`Verifier::spawn`], and each batch's valid transactions warm `store`'s account
    /// cache (module docs, "State warm-up").
    pub fn spawn_with_store(chain_id: String, threads: usize, store: Arc<Store>) -> Verifier {
        Verifier::start(chain_id, threads, Some(store))
    }

    fn start(chain_id: String, threads: usize, store: Option<Arc<Store>>) -> Verifier {
        assert!(threads >= 1, "the verifier needs at least one thread");
        let (tx, rx) = mpsc::channel(VERIFIER_QUEUE_JOBS_MAX);
        let stats = Arc::new(VerifierStats::default());
        tokio::spawn(collect(rx, chain_id, threads, stats.clone(), store));
        Verifier { jobs: tx, stats }
    }

    /// Verifies `txs` (signature, chain id and its size, as
    /// [`cairn_ledger::SignedTransaction::verify`]); waits for room in the queue, then for
    /// the verdicts.
    ///
    /// Errors: [`VerifierStopped`] if the verifier task has ended.
    pub async fn verify(&self, txs: Vec<HashedTx>) -> Result<Verified, VerifierStopped> {
        if txs.is_empty() {
            return Ok(Verified {
                results: Vec::new(),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { txs, reply })
            .await
            .map_err(|_| VerifierStopped)?;
        answer.await.map_err(|_| VerifierStopped)
    }

    /// Work done so far.
    pub fn stats(&self) -> &VerifierStats {
        &self.stats
    }
}

async fn collect(
    mut rx: mpsc::Receiver<Job>,
    chain_id: String,
    threads: usize,
    stats: Arc<VerifierStats>,
    store: Option<Arc<Store>>,
) {
    let permits = Arc::new(Semaphore::new(threads));
    let chain_id: Arc<str> = chain_id.into();
    while let Some(first) = rx.recv().await {
        let mut count = first.txs.len();
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(VERIFY_LINGER_MS);
        let mut open = true;
        while count < VERIFY_BATCH_TXS_TARGET {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => {
                    count += job.txs.len();
                    jobs.push(job);
                }
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break, // lingered long enough
            }
        }
        let permit = loop {
            tokio::select! {
                biased;
                permit = permits.clone().acquire_owned() => {
                    break permit.expect("the semaphore is never closed");
                }
                job = rx.recv(), if open && count < VERIFY_BATCH_TXS_MAX => match job {
                    Some(job) => {
                        count += job.txs.len();
                        jobs.push(job);
                    }
                    None => open = false,
                },
            }
        };
        let chain_id = chain_id.clone();
        let stats = stats.clone();
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_jobs(jobs, &chain_id, &stats, store.as_deref());
        });
        if !open {
            break;
        }
    }
}

/// Verifies every job's transactions with one [`cairn_ledger::verify_hashed`] call, warms
/// `store`'s account cache with the valid ones' senders and recipients (if a store is
/// given), and answers each job with its share, in order.
fn verify_jobs(jobs: Vec<Job>, chain_id: &str, stats: &VerifierStats, store: Option<&Store>) {
    let lens: Vec<usize> = jobs.iter().map(|j| j.txs.len()).collect();
    let total: usize = lens.iter().sum();
    let mut all = Vec::with_capacity(total);
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        all.extend(job.txs);
        replies.push(job.reply);
    }
    let results = cairn_ledger::verify_hashed(all, chain_id);
    assert_eq!(results.len(), total, "one verdict per transaction");
    if let Some(store) = store {
        let addresses: Vec<Address> = results
            .iter()
            .flatten()
            .flat_map(|v| v.tx().body.touched_accounts())
            .collect();
        // A warm-up only: a failed read here is met again, and reported, where it matters.
        if let Err(e) = store.prefetch_accounts(&addresses) {
            tracing::debug!(error = %e, "account prefetch failed");
        }
    }
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.txs.fetch_add(total as u64, Ordering::Relaxed);
    let mut results = results.into_iter();
    for (len, reply) in lens.into_iter().zip(replies) {
        let verified = Verified {
            results: results.by_ref().take(len).collect(),
        };
        // The asker may have gone away (a closed RPC connection): nothing to do.
        let _ = reply.send(verified);
    }
}

/// Most threads [`verify_parallel`] uses.
pub const VERIFY_THREADS_MAX: usize = 8;

/// [`cairn_ledger::verify_hashed`] split over up to `available_parallelism()` (at most
/// [`VERIFY_THREADS_MAX`]) scoped threads, each taking at least two batches' worth, for the
/// big inputs that have a whole node waiting on them (a block's unverified transactions, a
/// sync response of up to 1,024 blocks). Same verdicts, same order. Runs on the caller's
/// (blocking) thread plus the scoped ones.
pub fn verify_parallel(txs: Vec<HashedTx>, chain_id: &str) -> Vec<Result<VerifiedTx, LedgerError>> {
    let per_thread_min = 2 * cairn_ledger::VERIFY_BATCH_CHUNK;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(VERIFY_THREADS_MAX)
        .min(txs.len() / per_thread_min)
        .max(1);
    if threads == 1 {
        return cairn_ledger::verify_hashed(txs, chain_id);
    }
    let chunk = txs.len().div_ceil(threads);
    let mut parts: Vec<Vec<HashedTx>> = Vec::with_capacity(threads);
    let mut txs = txs.into_iter();
    loop {
        let part: Vec<HashedTx> = txs.by_ref().take(chunk).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || cairn_ledger::verify_hashed(part, chain_id)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a verification thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Address, SignedTransaction, TransactionBody};
    use ed25519_dalek::SigningKey;

    const CHAIN: &str = "cairn-verifier-test";

    fn tx(seed: u64) -> SignedTransaction {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&seed.to_le_bytes());
        secret[31] = 0x77;
        let key = SigningKey::from_bytes(&secret);
        TransactionBody {
            chain_id: CHAIN.into(),
            sender: Address::from_public_key(&key.verifying_key()),
            fee: 1,
            nonce: 0,
            expiry_height: 100,
            action: cairn_ledger::Action::Transfer {
                recipient: Address([9; 32]),
                amount: seed,
            },
        }
        .sign(&key)
    }

    /// Many concurrent jobs, some with bad signatures or another chain's id: each gets back
    /// its own transactions with exactly the verdicts of verifying them alone, and the
    /// jobs were coalesced into fewer batches than jobs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn coalesced_verdicts_equal_the_single_verdicts_per_job() {
        let verifier = Verifier::spawn(CHAIN.into(), 2);
        let mut tasks = Vec::new();
        for j in 0..40u64 {
            let mut txs: Vec<SignedTransaction> = (0..7).map(|i| tx(j * 100 + i)).collect();
            if j % 3 == 0 {
                txs[2].body.fee += 1; // signature no longer matches
            }
            if j % 5 == 0 {
                txs[4].signature[63] ^= 0x40;
            }
            if j % 7 == 0 {
                txs[6] = {
                    let mut t = tx(j * 100 + 6);
                    t.body.chain_id = "other-chain".into();
                    t
                };
            }
            let v = verifier.clone();
            tasks.push(tokio::spawn(async move {
                let expected: Vec<_> = txs.iter().map(|t| t.verify(CHAIN)).collect();
                let sent = txs.clone();
                let got = v
                    .verify(txs.into_iter().map(HashedTx::new).collect())
                    .await
                    .unwrap();
                let verdicts: Vec<_> = got
                    .results
                    .iter()
                    .map(|r| r.as_ref().map(|_| ()).map_err(Clone::clone))
                    .collect();
                assert_eq!(verdicts, expected, "job {j}");
                for (r, t) in got.results.iter().zip(&sent) {
                    if let Ok(v) = r {
                        assert_eq!(v.tx(), t, "job {j} got another job's transactions");
                    }
                }
                got.results.iter().filter(|r| r.is_err()).count()
            }));
        }
        let mut bad = 0;
        for t in tasks {
            bad += t.await.unwrap();
        }
        assert_eq!(bad, 14 + 8 + 6, "bad transactions found");
        let batches = verifier.stats().batches.load(Ordering::Relaxed);
        assert_eq!(verifier.stats().txs.load(Ordering::Relaxed), 40 * 7);
        assert!(batches < 40, "40 concurrent jobs took {batches} batches");
    }

    #[test]
    fn verify_parallel_gives_the_sequential_verdicts_in_order() {
        // Enough for several threads on any machine with more than one core.
        let n = 3 * 2 * cairn_ledger::VERIFY_BATCH_CHUNK + 7;
        let mut txs: Vec<SignedTransaction> = (0..n as u64).map(tx).collect();
        for i in [0, 600, n / 2, n - 1] {
            txs[i].signature[33] ^= 0x10;
        }
        let parallel = verify_parallel(txs.iter().cloned().map(HashedTx::new).collect(), CHAIN);
        let sequential = cairn_ledger::verify_transactions(&txs, CHAIN);
        assert_eq!(
            parallel
                .iter()
                .map(|r| r.as_ref().map(|_| ()).map_err(Clone::clone))
                .collect::<Vec<_>>(),
            sequential
        );
        for (r, t) in parallel.iter().zip(&txs) {
            if let Ok(v) = r {
                assert_eq!(v.tx(), t, "out of order");
            }
        }
        let bad: Vec<usize> = parallel
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.is_err().then_some(i))
            .collect();
        assert_eq!(bad, vec![0, 600, n / 2, n - 1]);
        assert!(verify_parallel(Vec::new(), CHAIN).is_empty());
    }

    #[tokio::test]
    async fn an_empty_job_needs_no_batch() {
        let verifier = Verifier::spawn(CHAIN.into(), 1);
        let got = verifier.verify(Vec::new()).await.unwrap();
        assert!(got.results.is_empty());
        assert_eq!(verifier.stats().batches.load(Ordering::Relaxed), 0);
    }
}
