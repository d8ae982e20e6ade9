//! Criterion micro-benchmarks of the ledger: transaction decode and signature verification
//! (single and batch), block execution, block commit to RocksDB, the transactions Merkle
//! root and the state root update.
//!
//! Names follow `crate::op/param=value`; figures are recorded in `docs/benchmarks.md`.
//!
//! ```text
//! cargo bench -p cairn-ledger --bench ledger -- --warm-up-time 1 --measurement-time 3
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;

use cairn_ledger::*;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

const CHAIN: &str = "cairn-bench";
/// Transactions in the block-level benchmarks (the default `block_txs_max`).
const BLOCK_TXS: usize = 10_000;

fn key(i: u64) -> SigningKey {
    SigningKey::from_bytes(&Hash::derive("cairn bench key", &[&i.to_le_bytes()]).0)
}

/// `n` transfers from `n` distinct funded senders (nonce 0), to `n` distinct recipients,
/// and the genesis accounts funding them.
fn transfers(n: usize) -> (Vec<SignedTransaction>, Vec<(Address, Account)>) {
    let mut txs = Vec::with_capacity(n);
    let mut accounts = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let k = key(i);
        let sender = Address::from_public_key(&k.verifying_key());
        accounts.push((
            sender,
            Account {
                balance: 1_000_000,
                nonce: 0,
            },
        ));
        let recipient = Address(Hash::derive("cairn bench recipient", &[&i.to_le_bytes()]).0);
        txs.push(
            TransactionBody {
                chain_id: CHAIN.into(),
                sender,
                fee: 10,
                nonce: 0,
                expiry_height: 1_000_000,
                action: cairn_ledger::Action::Transfer {
                    recipient,
                    amount: 1_000,
                },
            }
            .sign(&k),
        );
    }
    (txs, accounts)
}

fn genesis_block(accounts: &[(Address, Account)]) -> Block {
    Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height: 0,
            view: 0,
            parent_hash: Hash::derive("genesis file", &[b"bench"]),
            proposer: Address::default(),
            timestamp_ms: 0,
            txs_root: txs_root(&[]),
            signed_txs_root: cairn_ledger::signed_txs_root_of(&[]),
            state_root: LtHash::of_accounts(accounts.iter().map(|(a, acc)| (a, acc))).root(),
        },
        transactions: vec![],
    }
}

/// The child of `parent` holding `txs`, with roots matching `diff`.
fn child(parent: &BlockHeader, txs: Vec<SignedTransaction>, diff: &StateDiff) -> Block {
    let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height: parent.height + 1,
            view: parent.view + 1,
            parent_hash: parent.hash(),
            proposer: Address([0xaa; 32]),
            timestamp_ms: parent.timestamp_ms + 1,
            txs_root: txs_root(&hashes),
            signed_txs_root: cairn_ledger::signed_txs_root_of(&txs),
            state_root: diff.state_root(),
        },
        transactions: txs,
    }
}

fn tx_decode(c: &mut Criterion) {
    let (txs, _) = transfers(1);
    let bytes = txs[0].encode();
    let mut g = c.benchmark_group("ledger::tx_decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        b.iter(|| SignedTransaction::decode(black_box(&bytes)).unwrap())
    });
    g.finish();
}

fn tx_verify(c: &mut Criterion) {
    let (txs, _) = transfers(1024);
    let mut g = c.benchmark_group("ledger::tx_verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        b.iter(|| black_box(&txs[0]).verify(CHAIN).unwrap())
    });
    g.bench_function("decode_and_verify", |b| {
        let bytes = txs[0].encode();
        b.iter(|| {
            SignedTransaction::decode(black_box(&bytes))
                .unwrap()
                .verify(CHAIN)
                .unwrap()
        })
    });
    for size in [64usize, 1024] {
        let batch = &txs[..size];
        g.throughput(Throughput::Elements(size as u64));
        // The batch path (`cairn_ledger::verify_transactions`, ZIP-215, same verdicts as
        // one `verify` each).
        g.bench_with_input(
            BenchmarkId::new("batch", format!("size={size}")),
            batch,
            |b, batch| {
                b.iter(|| {
                    let verdicts = verify_transactions(black_box(batch), CHAIN);
                    assert!(verdicts.iter().all(Result::is_ok));
                })
            },
        );
        // One `verify` per transaction, for comparison.
        g.bench_with_input(
            BenchmarkId::new("loop", format!("size={size}")),
            batch,
            |b, batch| {
                b.iter(|| {
                    for tx in black_box(batch) {
                        tx.verify(CHAIN).unwrap();
                    }
                })
            },
        );
        // ed25519-dalek's verify_strict, the previous rule, for comparison.
        let sigs: Vec<Signature> = batch
            .iter()
            .map(|t| Signature::from_bytes(&t.signature))
            .collect();
        let keys: Vec<VerifyingKey> = batch
            .iter()
            .map(|t| t.body.sender.public_key().unwrap())
            .collect();
        g.bench_function(
            BenchmarkId::new("dalek_verify_strict_loop", format!("size={size}")),
            |b| {
                b.iter(|| {
                    for ((t, sig), key) in batch.iter().zip(&sigs).zip(&keys) {
                        key.verify_strict(t.hash().as_bytes(), sig).unwrap();
                    }
                })
            },
        );
    }
    g.finish();
}

fn execute(c: &mut Criterion) {
    let (txs, accounts) = transfers(BLOCK_TXS);
    let state: BTreeMap<Address, Account> = accounts.iter().copied().collect();
    let genesis = genesis_block(&accounts);
    let lthash = LtHash::of_accounts(accounts.iter().map(|(a, acc)| (a, acc)));
    let diff = execute_block(
        &state,
        lthash.clone(),
        &child(
            &genesis.header,
            txs.clone(),
            &StateDiff::empty(lthash.clone()),
        ),
    )
    .unwrap();
    let block = child(&genesis.header, txs, &diff);

    let mut g = c.benchmark_group("ledger::execute_block");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BLOCK_TXS as u64));
    // In-memory parent state (BTreeMap); no signature checks (as in the node).
    g.bench_function(format!("txs={BLOCK_TXS}"), |b| {
        b.iter(|| execute_block(&state, lthash.clone(), black_box(&block)).unwrap())
    });
    g.finish();
}

fn commit(c: &mut Criterion) {
    let (txs, accounts) = transfers(BLOCK_TXS);
    let genesis = genesis_block(&accounts);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), genesis.header.parent_hash).unwrap();
    store.init_genesis(&genesis, &accounts).unwrap();
    let lthash = store.lthash().unwrap();
    let first = child(
        &genesis.header,
        txs.clone(),
        &StateDiff::empty(lthash.clone()),
    );
    let diff = execute_block(&store, lthash, &first).unwrap();
    let certificate = vec![0u8; 300];

    let mut g = c.benchmark_group("ledger::commit_block");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BLOCK_TXS as u64));
    // One synced WriteBatch: block, hash and tx indices, 20,000 changed accounts
    // (senders, recipients; + proposer), lthash, certificate, head. Every iteration commits
    // the next height with the same transactions and diff (commit does not re-execute).
    g.bench_function(format!("txs={BLOCK_TXS}"), |b| {
        b.iter_batched(
            || child(&store.head().unwrap().unwrap(), txs.clone(), &diff),
            |block| {
                store
                    .commit_block(&block, &diff, Some(&certificate))
                    .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn merkle(c: &mut Criterion) {
    let hashes: Vec<Hash> = (0..BLOCK_TXS as u64)
        .map(|i| Hash::derive("cairn bench tx", &[&i.to_le_bytes()]))
        .collect();
    let mut g = c.benchmark_group("ledger::txs_root");
    g.throughput(Throughput::Elements(BLOCK_TXS as u64));
    g.bench_function(format!("txs={BLOCK_TXS}"), |b| {
        b.iter(|| txs_root(black_box(&hashes)))
    });
    g.finish();
}

fn state_root(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger::state_root_update");
    for n in [1_000u64, 20_000] {
        let changes: Vec<(Address, Account, Account)> = (0..n)
            .map(|i| {
                let a = Address(Hash::derive("cairn bench account", &[&i.to_le_bytes()]).0);
                let old = Account {
                    balance: 1_000_000,
                    nonce: i,
                };
                let new = Account {
                    balance: 998_990,
                    nonce: i + 1,
                };
                (a, old, new)
            })
            .collect();
        let base = LtHash::of_accounts(changes.iter().map(|(a, old, _)| (a, old)));
        g.throughput(Throughput::Elements(n));
        // `n` account changes folded into the parent's lattice hash, then the root: the
        // per-block state root work for a block touching `n` accounts.
        g.bench_function(format!("accounts={n}"), |b| {
            b.iter(|| {
                let mut h = base.clone();
                for (a, old, new) in black_box(&changes) {
                    h.update(a, old, new);
                }
                h.root()
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches, tx_decode, tx_verify, execute, commit, merkle, state_root
);
criterion_main!(benches);
