//! Backups: checkpoints of a live store, statistics, checking a copy before restoring it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use cairn_ledger::backup::{self, BackupError};
use cairn_ledger::{Account, Address, Block, Hash, StateReader, Store};
use common::*;

fn genesis_hash() -> Hash {
    Hash::derive("backup test genesis file", &[])
}

fn genesis_state() -> BTreeMap<Address, Account> {
    state(&[(addr(1), acct(1_000_000, 0)), (addr(2), acct(500, 0))])
}

fn open_with_genesis(path: &Path) -> Store {
    let store = Store::open(path, genesis_hash()).unwrap();
    let accounts: Vec<_> = genesis_state().into_iter().collect();
    let genesis = Block {
        header: genesis_header(&genesis_state()),
        transactions: vec![],
    };
    store.init_genesis(&genesis, &accounts).unwrap();
    store
}

/// Commits `n` blocks, each with one transfer from account 1 to a fresh account.
fn commit_blocks(store: &Store, n: u64) {
    for _ in 0..n {
        let head = store.head().unwrap().unwrap();
        let nonce = store.account(&addr(1)).unwrap().nonce;
        let to = Address([100 + (head.height % 100) as u8; 32]);
        let tx = transfer(1, to, 10, 1, nonce);
        let (block, diff) =
            child_block(&head, store, store.lthash().unwrap(), addr(9), vec![tx]).unwrap();
        store.commit_block(&block, &diff, Some(b"cert")).unwrap();
    }
}

fn keys(stats: &backup::DbStats, cf: &str) -> u64 {
    stats
        .column_families
        .iter()
        .find(|c| c.name == cf)
        .unwrap_or_else(|| panic!("no column family {cf}"))
        .keys
}

#[test]
fn a_checkpoint_of_a_live_store_opens_and_holds_its_head_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(&dir.path().join("db"));
    commit_blocks(&store, 5);
    store.wal_append(6, b"a vote").unwrap();
    let head = store.head().unwrap().unwrap();

    let to = dir.path().join("copy");
    let copied = store.checkpoint(&to).unwrap();
    assert_eq!(copied.finalized_height, Some(5));
    assert_eq!(copied.finalized_hash, Some(head.hash()));
    assert_eq!(copied.genesis_hash, genesis_hash());
    assert_eq!(copied.chain_id.as_deref(), Some(head.chain_id.as_str()));

    // The live store goes on; the copy does not move with it.
    commit_blocks(&store, 3);
    assert_eq!(store.head().unwrap().unwrap().height, 8);
    let verified = backup::verify(&to, genesis_hash(), Some(&head.chain_id)).unwrap();
    assert_eq!(verified, copied);

    // The copy opens as a store, with the same accounts and blocks as the live one had.
    drop(store);
    let copy = Store::open(&to, genesis_hash()).unwrap();
    assert_eq!(copy.head().unwrap().unwrap(), head);
    assert_eq!(copy.recompute_lthash().unwrap().root(), head.state_root);
    assert_eq!(copy.account(&addr(1)).unwrap().nonce, 5);
    assert_eq!(copy.wal_entries().unwrap().len(), 1);
    assert!(copy.block_by_height(6).unwrap().is_none());
}

#[test]
fn checkpoint_targets_must_be_new_absolute_paths_in_an_existing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(&dir.path().join("db"));
    let exists = dir.path().join("exists");
    std::fs::create_dir(&exists).unwrap();
    assert!(matches!(
        store.checkpoint(&exists),
        Err(BackupError::TargetExists { .. })
    ));
    assert!(matches!(
        store.checkpoint(Path::new("relative/copy")),
        Err(BackupError::NotAbsolute { .. })
    ));
    let orphan = dir.path().join("missing").join("copy");
    assert!(matches!(
        store.checkpoint(&orphan),
        Err(BackupError::NoParent { .. })
    ));
    assert!(!orphan.exists());
    // Nothing was written into the existing directory.
    assert_eq!(std::fs::read_dir(&exists).unwrap().count(), 0);
}

#[test]
fn stats_count_every_key_live_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let store = open_with_genesis(&db);
    commit_blocks(&store, 7);
    store.wal_append(8, b"x").unwrap();
    store.wal_append(8, b"y").unwrap();

    let live = store.stats().unwrap();
    assert_eq!(live.head.finalized_height, Some(7));
    // Blocks 0..=7, one hash index each, one transaction per block after genesis.
    assert_eq!(keys(&live, "blocks"), 8);
    assert_eq!(keys(&live, "block_hashes"), 8);
    assert_eq!(keys(&live, "txs"), 7);
    assert_eq!(keys(&live, "certificates"), 7);
    assert_eq!(keys(&live, "consensus_wal"), 2);
    // Genesis accounts 1 and 2, recipients, and the proposer that earned fees.
    assert_eq!(
        keys(&live, "accounts"),
        store.accounts().unwrap().len() as u64
    );
    assert_eq!(live.column_families.len(), 8);
    assert!(live.disk_bytes > 0);

    drop(store);
    let offline = backup::stats(&db).unwrap();
    assert_eq!(offline.head, live.head);
    for (a, b) in offline.column_families.iter().zip(&live.column_families) {
        assert_eq!((&a.name, a.keys), (&b.name, b.keys));
    }
}

#[test]
fn verify_refuses_other_chains_empty_and_foreign_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(&dir.path().join("db"));
    commit_blocks(&store, 2);
    let copy = dir.path().join("copy");
    store.checkpoint(&copy).unwrap();
    let chain_id = store.head().unwrap().unwrap().chain_id;

    let other = Hash::derive("another genesis", &[]);
    assert!(matches!(
        backup::verify(&copy, other, None),
        Err(BackupError::GenesisMismatch { expected, found, .. }) if expected == other && found == genesis_hash()
    ));
    assert!(matches!(
        backup::verify(&copy, genesis_hash(), Some("another-chain")),
        Err(BackupError::ChainMismatch { .. })
    ));
    backup::verify(&copy, genesis_hash(), Some(&chain_id)).unwrap();

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        backup::verify(&empty, genesis_hash(), None),
        Err(BackupError::NotADatabase { .. })
    ));
    // A RocksDB database without a genesis block: nothing to restore.
    let fresh = dir.path().join("fresh");
    drop(Store::open(&fresh, genesis_hash()).unwrap());
    assert!(matches!(
        backup::verify(&fresh, genesis_hash(), None),
        Err(BackupError::Corrupt { .. })
    ));
}

#[test]
fn forgetting_the_consensus_wal_keeps_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_genesis(&dir.path().join("db"));
    commit_blocks(&store, 3);
    store.wal_append(4, b"vote").unwrap();
    store.wal_append(5, b"vote").unwrap();
    let copy = dir.path().join("copy");
    let head = store.checkpoint(&copy).unwrap();
    assert_eq!(
        backup::forget_consensus_wal(&copy, genesis_hash()).unwrap(),
        2
    );
    let restored = Store::open(&copy, genesis_hash()).unwrap();
    assert!(restored.wal_entries().unwrap().is_empty());
    assert_eq!(
        restored.head().unwrap().unwrap().hash(),
        head.finalized_hash.unwrap()
    );
    // The live store's log is untouched.
    assert_eq!(store.wal_entries().unwrap().len(), 2);
}
