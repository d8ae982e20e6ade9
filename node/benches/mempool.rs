//! Criterion micro-benchmarks of the node's mempool: insert (admission checks and
//! indexing; the signature is verified before insert and is not part of this), insert from
//! few senders with deep nonce queues (the affordability check sums each sender's pooled
//! lower nonces) and reap (filling a block through a ledger `BlockBuilder`).
//!
//! ```text
//! cargo bench -p cairn-node --bench mempool -- --warm-up-time 1 --measurement-time 3
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;

use cairn_ledger::{
    Account, Address, BlockBuilder, BlockContext, Hash, HashedTx, LtHash, TransactionBody,
    VerifiedTx, verify_hashed,
};
use cairn_node::mempool::{Mempool, MempoolConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;

const CHAIN: &str = "cairn-bench";
const TXS: usize = 10_000;
/// Transactions per sender (consecutive nonces from 0).
const PER_SENDER: usize = 10;

/// `TXS` transfers from `TXS / PER_SENDER` funded senders, each with nonces
/// `0..PER_SENDER`, in arrival order (senders interleaved), and the state funding them.
fn workload() -> (Vec<VerifiedTx>, BTreeMap<Address, Account>) {
    workload_of(TXS / PER_SENDER, PER_SENDER)
}

/// `senders * per_sender` transfers from `senders` funded senders, each with nonces
/// `0..per_sender`, in arrival order (senders interleaved), and the state funding them.
fn workload_of(senders: usize, per_sender: usize) -> (Vec<VerifiedTx>, BTreeMap<Address, Account>) {
    let keys: Vec<SigningKey> = (0..senders as u64)
        .map(|i| SigningKey::from_bytes(&Hash::derive("cairn bench key", &[&i.to_le_bytes()]).0))
        .collect();
    let mut state = BTreeMap::new();
    for k in &keys {
        state.insert(
            Address::from_public_key(&k.verifying_key()),
            Account {
                balance: 1_000_000_000,
                nonce: 0,
            },
        );
    }
    let mut txs = Vec::with_capacity(senders * per_sender);
    for nonce in 0..per_sender as u64 {
        for (i, k) in keys.iter().enumerate() {
            txs.push(
                TransactionBody {
                    chain_id: CHAIN.into(),
                    sender: Address::from_public_key(&k.verifying_key()),
                    fee: 10,
                    nonce,
                    expiry_height: 1_000_000,
                    action: cairn_ledger::Action::Transfer {
                        recipient: Address([(i % 251) as u8; 32]),
                        amount: 1_000,
                    },
                }
                .sign(k),
            );
        }
    }
    // Verified (and hashed) once, outside the measurement, as the node does on arrival.
    let txs = verify_hashed(txs.into_iter().map(HashedTx::new).collect(), CHAIN)
        .into_iter()
        .map(|r| r.expect("bench transactions verify"))
        .collect();
    (txs, state)
}

fn config() -> MempoolConfig {
    config_with(64)
}

fn config_with(sender_future_max: usize) -> MempoolConfig {
    MempoolConfig {
        txs_max: 100_000,
        bytes_max: 64 << 20,
        sender_future_max,
    }
}

fn insert(c: &mut Criterion) {
    let (txs, state) = workload();
    let mut g = c.benchmark_group("node::mempool_insert");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TXS as u64));
    // Insert TXS transactions into an empty pool (state: in-memory BTreeMap).
    g.bench_function(format!("txs={TXS}"), |b| {
        b.iter_batched(
            || (Mempool::new(config()), txs.clone()),
            |(mut pool, txs)| {
                for tx in txs {
                    pool.insert(tx, &state, CHAIN, 1).unwrap();
                }
                pool
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Few senders, each filling its nonce window in order: every insert's affordability check
/// covers all of its sender's pooled lower nonces (`depth = 64`: the default
/// `mempool_sender_future_max`; `depth = 1024`: a chain that raised it).
fn insert_deep(c: &mut Criterion) {
    let mut g = c.benchmark_group("node::mempool_insert_deep");
    g.sample_size(10);
    for (senders, depth) in [(64, 64), (8, 1024)] {
        let (txs, state) = workload_of(senders, depth);
        let n = txs.len();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("senders={senders}/depth={depth}"), |b| {
            b.iter_batched(
                || (Mempool::new(config_with(depth)), txs.clone()),
                |(mut pool, txs)| {
                    for tx in txs {
                        pool.insert(tx, &state, CHAIN, 1).unwrap();
                    }
                    assert_eq!(pool.len(), n);
                    pool
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn reap(c: &mut Criterion) {
    let (txs, state) = workload();
    let mut pool = Mempool::new(config());
    for tx in txs {
        pool.insert(tx, &state, CHAIN, 1).unwrap();
    }
    let lthash = LtHash::of_accounts(state.iter());
    let ctx = BlockContext {
        chain_id: CHAIN.into(),
        height: 1,
        proposer: Address([0xaa; 32]),
    };
    let mut g = c.benchmark_group("node::mempool_reap");
    g.sample_size(10);
    g.throughput(Throughput::Elements(TXS as u64));
    // Reap a full block of TXS from a pool holding exactly TXS (each applied to a
    // BlockBuilder on the in-memory parent state), then finish the builder (state root).
    g.bench_function(format!("txs={TXS}"), |b| {
        b.iter(|| {
            let mut builder = BlockBuilder::new(&state, lthash.clone(), ctx.clone());
            let picked = pool.reap(&mut builder, TXS, usize::MAX);
            assert_eq!(picked.len(), TXS);
            black_box(builder.finish())
        })
    });
    g.finish();
}

criterion_group!(benches, insert, insert_deep, reap);
criterion_main!(benches);
