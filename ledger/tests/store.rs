//! RocksDB store: genesis, commits, indices, restart, WAL, metadata.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cairn_ledger::{
    Account, Address, Block, BlockHeader, Hash, Layered, LedgerError, LtHash, StateDiff,
    StateReader, Store, TxLocation, txs_root,
};
use common::*;

fn genesis_hash() -> Hash {
    Hash::derive("test genesis file", &[])
}

fn genesis_state() -> BTreeMap<Address, Account> {
    state(&[
        (addr(1), acct(1_000_000, 0)),
        (addr(2), acct(500, 0)),
        (addr(5), acct(7, 3)),
    ])
}

fn genesis_block() -> Block {
    Block {
        header: genesis_header(&genesis_state()),
        transactions: vec![],
    }
}

fn open_with_genesis(path: &Path) -> Store {
    let store = Store::open(path, genesis_hash()).unwrap();
    let accounts: Vec<_> = genesis_state().into_iter().collect();
    store.init_genesis(&genesis_block(), &accounts).unwrap();
    store
}

/// Builds and commits a block on top of the store's head; returns it and its diff.
fn commit_next(
    store: &Store,
    proposer: Address,
    txs: Vec<cairn_ledger::SignedTransaction>,
) -> (Block, StateDiff) {
    let head = store.head().unwrap().unwrap();
    let (block, diff) = child_block(&head, store, store.lthash().unwrap(), proposer, txs).unwrap();
    let cert = format!("cert for {}", block.header.height).into_bytes();
    store.commit_block(&block, &diff, Some(&cert)).unwrap();
    (block, diff)
}

#[test]
fn store_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<Arc<Store>>();
}

#[test]
fn fresh_store_has_no_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    assert_eq!(store.head().unwrap(), None);
    assert_eq!(store.lthash().unwrap(), LtHash::zero());
    assert_eq!(store.block_by_height(0).unwrap(), None);
    assert_eq!(store.account(&addr(1)).unwrap(), Account::default());
    assert_eq!(store.genesis_hash(), genesis_hash());
}

#[test]
fn genesis_is_written_once_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    assert_eq!(head, genesis_block().header);
    assert_eq!(store.lthash().unwrap(), lthash_of(&genesis_state()));
    assert_eq!(store.account(&addr(5)).unwrap(), acct(7, 3));
    assert_eq!(store.block_by_height(0).unwrap().unwrap(), genesis_block());
    assert_eq!(store.height_of(&genesis_block().hash()).unwrap(), Some(0));
    // same genesis again: Ok, nothing changes
    let accounts: Vec<_> = genesis_state().into_iter().collect();
    store.init_genesis(&genesis_block(), &accounts).unwrap();
    // a different genesis block is refused
    let other_state = state(&[(addr(1), acct(1, 0))]);
    let other = Block {
        header: genesis_header(&other_state),
        transactions: vec![],
    };
    let err = store
        .init_genesis(&other, &other_state.into_iter().collect::<Vec<_>>())
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::GenesisMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(store.head().unwrap().unwrap(), genesis_block().header);
}

#[test]
fn genesis_must_match_its_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    let mut accounts: Vec<_> = genesis_state().into_iter().collect();
    accounts[0].1.balance += 1;
    let err = store.init_genesis(&genesis_block(), &accounts).unwrap_err();
    assert!(
        matches!(&err, LedgerError::InvalidBlock { reason, .. } if reason.contains("state_root")),
        "{err:?}"
    );
    let mut dup: Vec<_> = genesis_state().into_iter().collect();
    dup.push(dup[0]);
    let err = store.init_genesis(&genesis_block(), &dup).unwrap_err();
    assert!(
        matches!(&err, LedgerError::InvalidBlock { reason, .. } if reason.contains("twice")),
        "{err:?}"
    );
    let mut high = genesis_block();
    high.header.height = 1;
    let accounts: Vec<_> = genesis_state().into_iter().collect();
    let err = store.init_genesis(&high, &accounts).unwrap_err();
    assert!(matches!(err, LedgerError::InvalidBlock { .. }), "{err:?}");
    assert_eq!(store.head().unwrap(), None);
    // empty accounts (default) are skipped and do not count towards the root
    let mut with_empty = accounts.clone();
    with_empty.push((addr(9), Account::default()));
    store.init_genesis(&genesis_block(), &with_empty).unwrap();
    assert_eq!(store.accounts().unwrap().len(), 3);
}

#[test]
fn genesis_mismatch_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_with_genesis(dir.path()));
    let other = Hash::derive("another chain", &[]);
    match Store::open(dir.path(), other) {
        Err(LedgerError::GenesisMismatch { expected, found }) => {
            assert_eq!(expected, other);
            assert_eq!(found, genesis_hash());
        }
        other => panic!("expected GenesisMismatch, got {other:?}"),
    }
    // the right hash still opens
    Store::open(dir.path(), genesis_hash()).unwrap();
}

#[test]
fn mismatch_is_refused_even_before_genesis_block() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), genesis_hash()).unwrap());
    let err = Store::open(dir.path(), Hash::ZERO).unwrap_err();
    assert!(matches!(err, LedgerError::GenesisMismatch { .. }));
}

#[test]
fn second_open_of_same_path_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), genesis_hash()).unwrap();
    let err = Store::open(dir.path(), genesis_hash()).unwrap_err();
    assert!(matches!(err, LedgerError::Storage { .. }), "{err:?}");
    assert!(err.is_fatal());
}

#[test]
fn commit_writes_every_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let txs = vec![
        transfer(1, addr(3), 1000, 10, 0),
        transfer(2, addr(3), 100, 1, 0),
        transfer(1, addr(4), 5, 0, 1),
    ];
    let (block, diff) = commit_next(&store, addr(6), txs.clone());
    let hash = block.hash();

    assert_eq!(store.head().unwrap().unwrap(), block.header);
    assert_eq!(store.lthash().unwrap(), diff.lthash);
    assert_eq!(store.block_by_height(1).unwrap().unwrap(), block);
    assert_eq!(store.block_by_hash(&hash).unwrap().unwrap(), block);
    assert_eq!(store.height_of(&hash).unwrap(), Some(1));
    assert_eq!(store.certificate(1).unwrap().unwrap(), b"cert for 1");
    assert_eq!(store.certificate(0).unwrap(), None);
    for (i, tx) in txs.iter().enumerate() {
        let loc = TxLocation {
            height: 1,
            index: i as u32,
        };
        assert_eq!(store.tx_location(&tx.hash()).unwrap(), Some(loc));
        assert_eq!(
            store.transaction(&tx.hash()).unwrap(),
            Some((tx.clone(), loc))
        );
    }
    assert_eq!(store.account(&addr(1)).unwrap(), acct(1_000_000 - 1015, 2));
    assert_eq!(store.account(&addr(2)).unwrap(), acct(399, 1));
    assert_eq!(store.account(&addr(3)).unwrap(), acct(1100, 0));
    assert_eq!(store.account(&addr(4)).unwrap(), acct(5, 0));
    assert_eq!(store.account(&addr(6)).unwrap(), acct(11, 0));
    // unknown things are None, not errors
    assert_eq!(store.block_by_height(2).unwrap(), None);
    assert_eq!(store.block_by_hash(&Hash::ZERO).unwrap(), None);
    assert_eq!(store.tx_location(&Hash::ZERO).unwrap(), None);
    assert_eq!(store.transaction(&Hash::ZERO).unwrap(), None);
    // stored accounts hash to the stored lthash, and supply is conserved
    assert_eq!(store.recompute_lthash().unwrap(), diff.lthash);
    let all: BTreeMap<_, _> = store.accounts().unwrap().into_iter().collect();
    assert_eq!(supply(&all), supply(&genesis_state()));
}

#[test]
fn commit_without_certificate_and_late_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    let (block, diff) =
        child_block(&head, &store, store.lthash().unwrap(), addr(6), vec![]).unwrap();
    store.commit_block(&block, &diff, None).unwrap();
    assert_eq!(store.certificate(1).unwrap(), None);
    store.put_certificate(1, b"late").unwrap();
    assert_eq!(store.certificate(1).unwrap().unwrap(), b"late");
    assert!(store.put_certificate(2, b"future").is_err());
}

#[test]
fn restart_resumes_head_balances_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (last, expected_accounts) = {
        let store = open_with_genesis(dir.path());
        commit_next(&store, addr(6), vec![transfer(1, addr(3), 1000, 10, 0)]);
        commit_next(
            &store,
            addr(6),
            vec![
                transfer(1, addr(3), 1, 1, 1),
                transfer(3, addr(1), 500, 0, 0),
            ],
        );
        let (last, _) = commit_next(&store, addr(7), vec![]);
        (last, store.accounts().unwrap())
    };
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    assert_eq!(store.head().unwrap().unwrap(), last.header);
    assert_eq!(store.head().unwrap().unwrap().height, 3);
    assert_eq!(store.accounts().unwrap(), expected_accounts);
    assert_eq!(store.account(&addr(3)).unwrap(), acct(501, 1));
    assert_eq!(store.lthash().unwrap().root(), last.header.state_root);
    store.recompute_lthash().unwrap();
    // genesis again after restart is a no-op
    let accounts: Vec<_> = genesis_state().into_iter().collect();
    store.init_genesis(&genesis_block(), &accounts).unwrap();
    assert_eq!(store.head().unwrap().unwrap().height, 3);
    // and the chain continues
    let (b4, _) = commit_next(&store, addr(6), vec![transfer(1, addr(2), 1, 0, 2)]);
    assert_eq!(b4.header.height, 4);
    assert_eq!(store.block_by_height(4).unwrap().unwrap(), b4);
}

#[test]
fn accounts_that_become_empty_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    // a hand-made diff that empties addr(5) (as a future rule might): the store deletes it
    let mut diff = StateDiff::empty(store.lthash().unwrap());
    diff.accounts.insert(addr(5), Account::default());
    diff.lthash
        .update(&addr(5), &acct(7, 3), &Account::default());
    let block = Block {
        header: BlockHeader {
            height: 1,
            parent_hash: head.hash(),
            state_root: diff.state_root(),
            txs_root: txs_root(&[]),
            signed_txs_root: cairn_ledger::signed_txs_root_of(&[]),
            ..head.clone()
        },
        transactions: vec![],
    };
    store.commit_block(&block, &diff, None).unwrap();
    assert_eq!(store.account(&addr(5)).unwrap(), Account::default());
    assert!(store.accounts().unwrap().iter().all(|(a, _)| *a != addr(5)));
    store.recompute_lthash().unwrap();
}

#[test]
#[should_panic(expected = "height")]
fn commit_of_a_non_child_height_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    let (mut block, diff) =
        child_block(&head, &store, store.lthash().unwrap(), addr(6), vec![]).unwrap();
    block.header.height = 2;
    let _ = store.commit_block(&block, &diff, None);
}

#[test]
#[should_panic(expected = "parent_hash")]
fn commit_of_a_non_child_parent_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    let (mut block, diff) =
        child_block(&head, &store, store.lthash().unwrap(), addr(6), vec![]).unwrap();
    block.header.parent_hash = Hash::ZERO;
    let _ = store.commit_block(&block, &diff, None);
}

#[test]
#[should_panic(expected = "state_root")]
fn commit_with_a_mismatched_diff_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    let (block, mut diff) =
        child_block(&head, &store, store.lthash().unwrap(), addr(6), vec![]).unwrap();
    diff.lthash = LtHash::zero();
    let _ = store.commit_block(&block, &diff, None);
}

#[test]
fn failed_commit_panic_leaves_store_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    let (block, diff) =
        child_block(&head, &store, store.lthash().unwrap(), addr(6), vec![]).unwrap();
    let mut bad = block.clone();
    bad.header.height = 5;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.commit_block(&bad, &diff, None)
    }));
    assert!(r.is_err());
    assert_eq!(store.head().unwrap().unwrap().height, 0);
    store.commit_block(&block, &diff, None).unwrap();
    assert_eq!(store.head().unwrap().unwrap().height, 1);
}

#[test]
fn layered_over_store_and_snapshot_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(dir.path());
    let head = store.head().unwrap().unwrap();
    // two notarized-but-unfinalized blocks on top of the store
    let (b1, d1) = child_block(
        &head,
        &store,
        store.lthash().unwrap(),
        addr(6),
        vec![transfer(1, addr(3), 10, 1, 0)],
    )
    .unwrap();
    let l1 = Layered::new(&store, vec![&d1]);
    let (b2, d2) = child_block(
        &b1.header,
        &l1,
        d1.lthash.clone(),
        addr(6),
        vec![transfer(1, addr(3), 10, 1, 1)],
    )
    .unwrap();
    let l2 = Layered::new(&store, vec![&d1, &d2]);
    assert_eq!(l2.account(&addr(3)).unwrap(), acct(20, 0));
    assert_eq!(l2.account(&addr(1)).unwrap(), acct(1_000_000 - 22, 2));
    assert_eq!(store.account(&addr(1)).unwrap(), acct(1_000_000, 0));

    let snap = store.snapshot();
    store.commit_block(&b1, &d1, None).unwrap();
    store.commit_block(&b2, &d2, None).unwrap();
    // the snapshot still sees genesis; the store sees block 2
    assert_eq!(snap.head().unwrap().unwrap().height, 0);
    assert_eq!(snap.lthash().unwrap(), lthash_of(&genesis_state()));
    assert_eq!(snap.account(&addr(1)).unwrap(), acct(1_000_000, 0));
    assert_eq!(store.account(&addr(1)).unwrap(), acct(1_000_000 - 22, 2));
    assert_eq!(store.snapshot().head().unwrap().unwrap(), b2.header);
    assert_eq!(store.lthash().unwrap(), d2.lthash);
}

#[test]
fn wal_orders_by_view_then_append_order_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), genesis_hash()).unwrap();
        assert!(store.wal_entries().unwrap().is_empty());
        store.wal_append(5, b"5a").unwrap();
        store.wal_append(3, b"3a").unwrap();
        store.wal_append(5, b"5b").unwrap();
        store.wal_append(3, b"3b").unwrap();
        store.wal_append(256, b"256a").unwrap();
        store.wal_append(1, b"").unwrap();
        store.wal_append(u64::MAX, b"max").unwrap();
        let got = store.wal_entries().unwrap();
        let want: Vec<(u64, Vec<u8>)> = vec![
            (1, b"".to_vec()),
            (3, b"3a".to_vec()),
            (3, b"3b".to_vec()),
            (5, b"5a".to_vec()),
            (5, b"5b".to_vec()),
            (256, b"256a".to_vec()),
            (u64::MAX, b"max".to_vec()),
        ];
        assert_eq!(got, want);
        store.wal_prune_below(5).unwrap();
        assert_eq!(store.wal_entries().unwrap(), want[3..].to_vec());
        store.wal_prune_below(0).unwrap();
        assert_eq!(store.wal_entries().unwrap().len(), 4);
    }
    // persists across restart, and appends continue the per-view order
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    store.wal_append(5, b"5c").unwrap();
    store.wal_append(4, b"4a").unwrap(); // below existing views, still allowed
    let views: Vec<(u64, Vec<u8>)> = store.wal_entries().unwrap();
    assert_eq!(
        views,
        vec![
            (4, b"4a".to_vec()),
            (5, b"5a".to_vec()),
            (5, b"5b".to_vec()),
            (5, b"5c".to_vec()),
            (256, b"256a".to_vec()),
            (u64::MAX, b"max".to_vec())
        ]
    );
    store.wal_prune_below(u64::MAX).unwrap();
    assert_eq!(
        store.wal_entries().unwrap(),
        vec![(u64::MAX, b"max".to_vec())]
    );
}

#[test]
fn wal_appends_from_many_threads_are_all_kept_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), genesis_hash()).unwrap());
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..25u8 {
                    store.wal_append(7, &[t, i]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let entries = store.wal_entries().unwrap();
    assert_eq!(entries.len(), 100);
    // each thread's entries appear in its own append order
    for t in 0..4u8 {
        let seq: Vec<u8> = entries
            .iter()
            .filter(|(_, e)| e[0] == t)
            .map(|(_, e)| e[1])
            .collect();
        assert_eq!(seq, (0..25).collect::<Vec<_>>());
    }
}

#[test]
fn meta_is_a_separate_namespace() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_with_genesis(dir.path());
        assert_eq!(store.meta_get("last_vote").unwrap(), None);
        store.meta_put("last_vote", b"v1").unwrap();
        store.meta_put("last_vote", b"v2").unwrap();
        store.meta_put("", b"empty key").unwrap();
        // cannot reach the ledger's own keys
        assert_eq!(store.meta_get("ledger/head").unwrap(), None);
        store.meta_put("ledger/head", b"garbage").unwrap();
        store.meta_put("../ledger/head", b"garbage").unwrap();
    }
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    assert_eq!(store.meta_get("last_vote").unwrap().unwrap(), b"v2");
    assert_eq!(store.meta_get("").unwrap().unwrap(), b"empty key");
    assert_eq!(store.head().unwrap().unwrap(), genesis_block().header);
}

#[test]
fn meta_scan_returns_prefix_in_order_and_respects_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = cairn_ledger::Store::open(dir.path(), cairn_ledger::Hash([3; 32])).unwrap();
    store.meta_put("evidence/2", b"b").unwrap();
    store.meta_put("evidence/1", b"a").unwrap();
    store.meta_put("evidencf", b"x").unwrap();
    store.meta_put("other", b"y").unwrap();
    let all = store.meta_scan("evidence/", 10).unwrap();
    assert_eq!(
        all,
        vec![
            ("evidence/1".to_string(), b"a".to_vec()),
            ("evidence/2".to_string(), b"b".to_vec())
        ]
    );
    assert_eq!(store.meta_scan("evidence/", 1).unwrap().len(), 1);
}

#[test]
fn wal_prunes_leave_a_bounded_number_of_memtable_range_tombstones() {
    // A node prunes once per finalized view; unflushed range tombstones would slow every
    // later WAL append (each creates an iterator, which re-fragments them all).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    let mut most = 0;
    for view in 1..=(3 * cairn_ledger::WAL_PRUNES_PER_FLUSH as u64 + 5) {
        store.wal_append(view, b"vote").unwrap();
        store.wal_append(view, b"finalize").unwrap();
        store.wal_prune_below(view).unwrap();
        most = most.max(store.wal_memtable_entries().unwrap());
        // Only the current view's entries survive each prune.
        let entries = store.wal_entries().unwrap();
        assert_eq!(
            entries,
            vec![(view, b"vote".to_vec()), (view, b"finalize".to_vec())]
        );
    }
    // Two appends and one range deletion per view; flushed every WAL_PRUNES_PER_FLUSH views.
    let bound = 3 * cairn_ledger::WAL_PRUNES_PER_FLUSH as u64;
    assert!(
        most >= bound - 3,
        "the property counts memtable entries at all ({most})"
    );
    assert!(
        most <= bound,
        "{most} entries in the WAL memtable, bound {bound}"
    );
}

/// The account read cache never serves a value other than the committed one: checked after
/// every commit against a snapshot (which reads the database, not the cache) while two
/// threads keep reading the same accounts, so reads that miss the cache race with the
/// commits that change those accounts.
#[test]
fn account_cache_agrees_with_the_database_under_concurrent_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open_with_genesis(dir.path()));
    let watched: Vec<Address> = (1..=12).map(addr).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop, watched) = (store.clone(), stop.clone(), watched.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for a in &watched {
                        store.account(a).unwrap();
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for i in 0..120u64 {
        let to = addr(2 + (i % 10) as u8);
        commit_next(&store, addr(12), vec![transfer(1, to, 1 + i, 1, i)]);
        let snap = store.snapshot();
        for a in &watched {
            assert_eq!(
                store.account(a).unwrap(),
                snap.account(a).unwrap(),
                "cached account {a} differs from the database after block {}",
                i + 1
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let snap = store.snapshot();
    for a in &watched {
        assert_eq!(store.account(a).unwrap(), snap.account(a).unwrap());
    }
    // The sender paid 120 transfers' amounts and fees.
    let paid: u64 = (0..120u64).map(|i| 1 + i + 1).sum();
    assert_eq!(
        store.account(&addr(1)).unwrap(),
        acct(1_000_000 - paid, 120)
    );
}

#[test]
fn rocksdb_figures_count_flushes_and_report_no_stall_on_an_idle_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    let before = store.rocksdb_figures().unwrap();
    assert_eq!(
        before.flush_write_bytes, 0,
        "nothing flushed yet: {before:?}"
    );
    // WAL prunes flush the WAL column family every WAL_PRUNES_PER_FLUSH prunes.
    for view in 1..=(2 * cairn_ledger::WAL_PRUNES_PER_FLUSH as u64) {
        store.wal_append(view, &[7u8; 512]).unwrap();
        store.wal_prune_below(view).unwrap();
    }
    let after = store.rocksdb_figures().unwrap();
    assert!(
        after.flush_write_bytes > 0,
        "the statistics tickers are collected: {after:?}"
    );
    assert!(!after.write_stopped);
    assert_eq!(after.stall_micros, 0, "a tiny idle database never stalls");
    assert_eq!(after.delayed_write_rate_bytes_per_s, 0);
}

// ---- pruning ---------------------------------------------------------------------------

/// The transfer block `h` carries in the pruning tests: one from key 1, nonce `h - 1`.
fn pruning_tx(h: u64) -> cairn_ledger::SignedTransaction {
    transfer(1, addr(3), 1, 1, h - 1)
}

/// A store with `n` blocks after genesis, block `h` holding [`pruning_tx`]`(h)`.
fn chain_of(path: &Path, n: u64) -> (Store, Vec<Block>) {
    let store = open_with_genesis(path);
    let blocks = (1..=n)
        .map(|h| commit_next(&store, addr(6), vec![pruning_tx(h)]).0)
        .collect();
    (store, blocks)
}

/// Checks the pruning layout (store module docs): below the lowest retained height no body
/// and no transaction index entry, but the header (linked by parent hash), the hash index
/// and the certificate; from it to the head every body and index entry.
fn assert_pruned_layout(store: &Store) {
    let head = store.head().unwrap().unwrap();
    let lowest = store.lowest_retained_height();
    assert!(lowest <= head.height, "the head's body always stays");
    assert!(store.block_by_height(0).unwrap().is_some(), "genesis stays");
    let mut parent = store.header_by_height(0).unwrap().unwrap();
    for h in 1..=head.height {
        let header = store.header_by_height(h).unwrap().unwrap();
        assert_eq!(header.height, h);
        assert_eq!(header.parent_hash, parent.hash(), "headers link at {h}");
        assert_eq!(store.height_of(&header.hash()).unwrap(), Some(h));
        assert_eq!(
            store.certificate(h).unwrap(),
            Some(format!("cert for {h}").into_bytes()),
            "certificate {h} kept"
        );
        let tx = pruning_tx(h).hash();
        if h < lowest {
            assert!(store.is_pruned(h));
            assert_eq!(store.block_by_height(h).unwrap(), None, "body {h} pruned");
            assert_eq!(store.block_by_hash(&header.hash()).unwrap(), None);
            assert_eq!(store.tx_location(&tx).unwrap(), None, "index of {h} pruned");
            assert_eq!(store.transaction(&tx).unwrap(), None);
        } else {
            assert!(!store.is_pruned(h));
            let block = store.block_by_height(h).unwrap().expect("retained body");
            assert_eq!(block.header, header);
            assert_eq!(
                store.tx_location(&tx).unwrap(),
                Some(TxLocation {
                    height: h,
                    index: 0
                })
            );
        }
        parent = header;
    }
    assert_eq!(
        store.header_by_height(head.height + 1).unwrap(),
        None,
        "nothing above the head"
    );
    // Account state is untouched by pruning.
    assert_eq!(store.recompute_lthash().unwrap(), store.lthash().unwrap());
}

#[test]
fn pruning_deletes_bodies_and_keeps_headers_certificates_indices_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blocks) = chain_of(dir.path(), 10);
    let accounts = store.accounts().unwrap();
    assert_eq!(store.lowest_retained_height(), 0, "nothing pruned yet");
    let step = store
        .prune_bodies(6, cairn_ledger::PruneLimits::default())
        .unwrap();
    assert_eq!(
        step,
        cairn_ledger::PruneStep {
            blocks: 5,
            txs: 5,
            lowest_retained_height: 6,
            remaining_blocks: 0,
        }
    );
    assert_eq!(store.lowest_retained_height(), 6);
    assert_pruned_layout(&store);
    for b in &blocks[..5] {
        assert_eq!(
            store.header_by_height(b.header.height).unwrap().unwrap(),
            b.header
        );
    }
    assert_eq!(store.block_by_height(6).unwrap().unwrap(), blocks[5]);
    assert_eq!(store.accounts().unwrap(), accounts, "state kept");
    assert_eq!(store.head().unwrap().unwrap(), blocks[9].header);
}

#[test]
fn pruning_is_idempotent_bounded_and_never_takes_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = chain_of(dir.path(), 12);
    let limits = cairn_ledger::PruneLimits {
        blocks_max: 2,
        txs_max: 100,
    };
    // At most two blocks a step; the rest is reported.
    let step = store.prune_bodies(8, limits).unwrap();
    assert_eq!((step.blocks, step.lowest_retained_height), (2, 3));
    assert_eq!(step.remaining_blocks, 5);
    assert_pruned_layout(&store);
    // One transaction per block, at most one transaction a step: one block a step (a step
    // always prunes a whole block).
    let one_tx = cairn_ledger::PruneLimits {
        blocks_max: 64,
        txs_max: 1,
    };
    let step = store.prune_bodies(8, one_tx).unwrap();
    assert_eq!(
        (step.blocks, step.txs, step.lowest_retained_height),
        (1, 1, 4)
    );
    while store.prune_bodies(8, limits).unwrap().blocks > 0 {}
    assert_eq!(store.lowest_retained_height(), 8);
    // Again, or with a lower bound: nothing to do, nothing written.
    let seq = store.write_sequence_number();
    for keep_from in [8, 5, 0] {
        let step = store.prune_bodies(keep_from, limits).unwrap();
        assert_eq!(step.blocks, 0);
        assert_eq!(step.lowest_retained_height, 8);
    }
    assert_eq!(
        store.write_sequence_number(),
        seq,
        "an idle step writes nothing"
    );
    // A bound past the head is capped at it: the head's body stays.
    while store
        .prune_bodies(u64::MAX, cairn_ledger::PruneLimits::default())
        .unwrap()
        .blocks
        > 0
    {}
    assert_eq!(store.lowest_retained_height(), 12);
    assert!(store.block_by_height(12).unwrap().is_some());
    assert_pruned_layout(&store);
    store.compact_pruned();
    assert_pruned_layout(&store);
}

#[test]
fn pruning_survives_a_restart_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = chain_of(dir.path(), 6);
        store
            .prune_bodies(4, cairn_ledger::PruneLimits::default())
            .unwrap();
    }
    let store = Store::open(dir.path(), genesis_hash()).unwrap();
    assert_eq!(store.lowest_retained_height(), 4);
    assert_pruned_layout(&store);
    for h in 7..=9 {
        commit_next(&store, addr(6), vec![pruning_tx(h)]);
    }
    store
        .prune_bodies(7, cairn_ledger::PruneLimits::default())
        .unwrap();
    assert_eq!(store.lowest_retained_height(), 7);
    assert_pruned_layout(&store);
}

/// Environment variable naming the database directory of [`prune_crash_child`].
const CRASH_DIR_ENV: &str = "CAIRN_PRUNE_CRASH_DIR";

/// Crash safety: a child process commits blocks and prunes behind them in small steps
/// (each commit followed by a step of at most 3 blocks) and is killed with SIGKILL at
/// whatever point it has reached once it reported 60 commits; the database it leaves
/// keeps the pruning layout (every step wholly done or not at all), and the chain and
/// pruning go on from it. Three rounds on one database.
#[test]
fn pruning_is_crash_safe() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    drop(open_with_genesis(dir.path()));
    for round in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "prune_crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut commits = 0;
        for line in out.lines() {
            if line.unwrap().starts_with("committed ") {
                commits += 1;
                if commits == 60 {
                    break;
                }
            }
        }
        assert_eq!(commits, 60, "round {round}: the child stopped early");
        child.kill().unwrap();
        child.wait().unwrap();
        let store = Store::open(dir.path(), genesis_hash()).unwrap();
        let head = store.head().unwrap().unwrap().height;
        assert!(head >= 60 * (round + 1), "round {round}: head {head}");
        assert!(store.lowest_retained_height() > 0, "round {round}: pruned");
        assert_pruned_layout(&store);
    }
}

/// The child of [`pruning_is_crash_safe`] (runs only with [`CRASH_DIR_ENV`] set): commits
/// and prunes until killed (at most up to height 999, where [`pruning_tx`] expires).
#[test]
#[ignore = "run by pruning_is_crash_safe in a child process"]
fn prune_crash_child() {
    let Ok(path) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&path), genesis_hash()).unwrap();
    let limits = cairn_ledger::PruneLimits {
        blocks_max: 3,
        txs_max: 100,
    };
    loop {
        let h = store.head().unwrap().unwrap().height + 1;
        if h >= 1000 {
            break;
        }
        commit_next(&store, addr(6), vec![pruning_tx(h)]);
        store.prune_bodies(h.saturating_sub(10), limits).unwrap();
        println!("committed {h}");
    }
}
