//! State snapshots: writing one from a store, checking chunks (corrupt, truncated,
//! duplicate, out of range, of another manifest), a wrong manifest caught by the root,
//! installing atomically (a crash leaves the store empty), pruning old snapshots.

mod common;

use std::path::Path;

use cairn_ledger::governance::{
    AccountsPolicy, Governance, Permission, Permissions, ValidatorInfo, ed25519_peer_id,
};
use cairn_ledger::snapshot::{
    self, SnapshotError, SnapshotManifest, chunk_hash, list_snapshots, prune_snapshots, read_chunk,
    read_manifest, verify_chunk,
};
use cairn_ledger::{
    Account, Address, Block, BlockHeader, ChainParams, InitialState, StateReader, Store,
};
use common::*;
use proptest::prelude::*;

fn governance() -> Governance {
    Governance::genesis(
        vec![addr(1), addr(2)],
        2,
        AccountsPolicy::Open,
        100,
        (0..4)
            .map(|i| ValidatorInfo {
                name: format!("v{i}"),
                consensus_key: addr(50 + i),
                peer_id: ed25519_peer_id(&[i; 32]),
                voting_power: 1,
            })
            .collect(),
        ChainParams::default(),
    )
    .unwrap()
}

fn numbered(n: u32) -> Address {
    let mut a = [7u8; 32];
    a[..4].copy_from_slice(&n.to_be_bytes());
    Address(a)
}

/// A genesis block and its initial state.
type GenesisState = (
    Block,
    Vec<(Address, Account)>,
    Vec<(Address, Permissions)>,
    Governance,
);

/// Genesis of `extra` numbered accounts plus the test keys 1..=3, a permission entry and
/// a governance record.
fn genesis(extra: u32) -> GenesisState {
    let mut accounts: Vec<(Address, Account)> =
        (1..=3).map(|i| (addr(i), acct(1_000_000, 0))).collect();
    accounts.extend((0..extra).map(|n| (numbered(n), acct(u64::from(n) + 1, 0))));
    let permissions = vec![(addr(1), Permissions::default().with(Permission::Transact))];
    let g = governance();
    let initial = InitialState {
        accounts: &accounts,
        permissions: &permissions,
        governance: Some(&g),
    };
    let mut header = genesis_header(&state(&accounts));
    header.state_root = initial.lthash().root();
    (
        Block {
            header,
            transactions: vec![],
        },
        accounts,
        permissions,
        g,
    )
}

fn open_genesis(path: &Path, extra: u32) -> Store {
    let (block, accounts, permissions, g) = genesis(extra);
    let store = Store::open(path, block.header.parent_hash).unwrap();
    store
        .init_genesis_state(
            &block,
            InitialState {
                accounts: &accounts,
                permissions: &permissions,
                governance: Some(&g),
            },
        )
        .unwrap();
    store
}

/// A source store at height 3 (transfers in each block).
fn source(path: &Path, extra: u32) -> Store {
    let store = open_genesis(path, extra);
    for nonce in 0..3u64 {
        let head = store.head().unwrap().unwrap();
        let txs = vec![transfer(1, addr(77), 5, 1, nonce)];
        let (block, diff) =
            child_block(&head, &store, store.lthash().unwrap(), addr(9), txs).unwrap();
        store
            .commit_block(
                &block,
                &diff,
                Some(format!("cert {}", block.header.height).as_bytes()),
            )
            .unwrap();
    }
    store
}

fn all_chunks(dir: &Path, m: &SnapshotManifest) -> Vec<Vec<u8>> {
    (0..m.chunks.len() as u32)
        .map(|i| read_chunk(dir, i).unwrap())
        .collect()
}

fn head(store: &Store) -> BlockHeader {
    store.head().unwrap().unwrap()
}

fn install_all(dest: &Store, m: &SnapshotManifest, chunks: &[Vec<u8>], order: &[usize]) {
    let id = m.id();
    let mut install = dest.begin_snapshot_install(m.clone()).unwrap();
    for &i in order {
        let c = verify_chunk(m, id, i as u32, &chunks[i]).unwrap();
        install.add_chunk(c).unwrap();
    }
    assert_eq!(install.missing(), 0);
    install.finish(Some(b"the certificate")).unwrap();
}

#[test]
fn a_snapshot_installs_into_a_fresh_store_and_equals_the_source() {
    let (src_dir, dst_dir, snaps) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let src = source(src_dir.path(), 500);
    let h = head(&src);
    let dir = snaps.path().join(h.height.to_string());
    let written = src.write_snapshot(h.height, &dir, 1024).unwrap();
    let m = read_manifest(&dir).unwrap();
    assert_eq!(m, written);
    assert_eq!(m.header, h);
    assert!(m.chunks.len() > 10, "{} chunks", m.chunks.len());
    assert_eq!(m.epochs, vec![src.epoch_record(0).unwrap().unwrap()]);
    for c in &m.chunks {
        assert!(c.bytes as usize <= 1024);
    }
    // Deterministic: a second snapshot of the same state is the same manifest.
    let again = src
        .write_snapshot(h.height, &snaps.path().join("again"), 1024)
        .unwrap();
    assert_eq!(again.id(), m.id());

    let chunks = all_chunks(&dir, &m);
    let dest = open_genesis(dst_dir.path(), 500);
    // Any order: the state hash is a sum.
    let mut order: Vec<usize> = (0..chunks.len()).rev().collect();
    order.rotate_left(3);
    install_all(&dest, &m, &chunks, &order);

    assert_eq!(head(&dest), h);
    assert_eq!(dest.lthash().unwrap(), src.lthash().unwrap());
    assert_eq!(dest.recompute_lthash().unwrap(), src.lthash().unwrap());
    assert_eq!(dest.accounts().unwrap(), src.accounts().unwrap());
    assert_eq!(
        dest.permissions(&addr(1)).unwrap(),
        src.permissions(&addr(1)).unwrap()
    );
    assert_eq!(dest.governance().unwrap(), src.governance().unwrap());
    assert_eq!(
        dest.epoch_at_height(h.height + 1).unwrap(),
        src.epoch_at_height(h.height + 1).unwrap()
    );
    assert_eq!(
        dest.certificate(h.height).unwrap().unwrap(),
        b"the certificate"
    );
    // The genesis block stays; the blocks in between are not part of a snapshot.
    assert!(dest.block_by_height(0).unwrap().is_some());
    assert!(dest.block_by_height(1).unwrap().is_none());

    // It survives a restart, and the node can go on committing on top.
    let genesis_hash = dest.genesis_hash();
    drop(dest);
    let dest = Store::open(dst_dir.path(), genesis_hash).unwrap();
    assert_eq!(head(&dest), h);
    let (block, diff) = child_block(
        &h,
        &dest,
        dest.lthash().unwrap(),
        addr(9),
        vec![transfer(1, addr(78), 5, 1, 3)],
    )
    .unwrap();
    dest.commit_block(&block, &diff, None).unwrap();
    assert_eq!(dest.recompute_lthash().unwrap(), dest.lthash().unwrap());
    // Installing over a store that moved past its genesis is refused.
    assert!(matches!(
        dest.begin_snapshot_install(m.clone()),
        Err(SnapshotError::StoreNotFresh { height: Some(4) })
    ));
}

#[test]
fn bad_chunks_are_refused_and_blamed_on_their_sender() {
    let (src_dir, dst_dir, snaps) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let src = source(src_dir.path(), 200);
    let h = head(&src);
    let dir = snaps.path().join("s");
    let m = src.write_snapshot(h.height, &dir, 1024).unwrap();
    let id = m.id();
    let chunks = all_chunks(&dir, &m);

    let mut flipped = chunks[1].clone();
    flipped[40] ^= 1;
    let truncated = chunks[1][..chunks[1].len() - 1].to_vec();
    for (index, bytes) in [
        (1u32, &flipped),
        (1, &truncated),
        (1, &chunks[2]),
        (1, &Vec::new()),
    ] {
        let e = verify_chunk(&m, id, index, bytes).unwrap_err();
        assert!(matches!(e, SnapshotError::BadChunk { index: 1, .. }), "{e}");
        assert!(e.is_peer_fault() && !e.is_fatal());
    }
    let e = verify_chunk(&m, id, m.chunks.len() as u32, &chunks[0]).unwrap_err();
    assert!(matches!(e, SnapshotError::ChunkIndex { .. }) && e.is_peer_fault());

    let dest = open_genesis(dst_dir.path(), 200);
    let mut install = dest.begin_snapshot_install(m.clone()).unwrap();
    install
        .add_chunk(verify_chunk(&m, id, 0, &chunks[0]).unwrap())
        .unwrap();
    // A duplicate is refused and changes nothing.
    assert!(matches!(
        install.add_chunk(verify_chunk(&m, id, 0, &chunks[0]).unwrap()),
        Err(SnapshotError::DuplicateChunk { index: 0 })
    ));
    // A chunk verified against another manifest is refused.
    assert!(matches!(
        install.add_chunk(verify_chunk(&m, chunk_hash(b"other"), 1, &chunks[1]).unwrap()),
        Err(SnapshotError::WrongManifest { index: 1 })
    ));
    // Finishing early is refused; the install stays open.
    let e = install.finish(None).unwrap_err();
    assert!(matches!(e, SnapshotError::Incomplete { .. }));
    for (i, c) in chunks.iter().enumerate().skip(1) {
        install
            .add_chunk(verify_chunk(&m, id, i as u32, c).unwrap())
            .unwrap();
    }
    install.finish(None).unwrap();
    assert_eq!(dest.lthash().unwrap(), src.lthash().unwrap());
}

/// Re-encodes chunk `index` with `edit` applied to its entries and puts its new hash,
/// length and range in the manifest: a manifest whose chunks all check but whose state
/// is not the header's.
fn forge(
    m: &mut SnapshotManifest,
    chunks: &mut [Vec<u8>],
    index: usize,
    edit: impl FnOnce(&mut Vec<snapshot::SnapshotEntry>),
) {
    let mut entries: Vec<snapshot::SnapshotEntry> = borsh::from_slice(&chunks[index]).unwrap();
    edit(&mut entries);
    let bytes = borsh::to_vec(&entries).unwrap();
    let info = &mut m.chunks[index];
    info.hash = chunk_hash(&bytes);
    info.bytes = bytes.len() as u32;
    info.entries = entries.len() as u32;
    info.first = entries.first().unwrap().key();
    info.last = entries.last().unwrap().key();
    chunks[index] = bytes;
}

#[test]
fn a_wrong_manifest_is_caught_by_the_root_and_leaves_the_store_empty() {
    let (src_dir, dst_dir, snaps) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let src = source(src_dir.path(), 100);
    let h = head(&src);
    let dir = snaps.path().join("s");
    let good = src.write_snapshot(h.height, &dir, 1024).unwrap();
    let good_chunks = all_chunks(&dir, &good);

    type Edit = Box<dyn FnOnce(&mut Vec<snapshot::SnapshotEntry>)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "a balance changed",
            Box::new(|e| {
                if let snapshot::SnapshotEntry::Account { account, .. } = &mut e[0] {
                    account.balance += 1;
                }
            }),
        ),
        (
            "an account dropped",
            Box::new(|e| {
                e.remove(1);
            }),
        ),
    ];
    let dest = open_genesis(dst_dir.path(), 100);
    for (what, edit) in edits {
        let (mut m, mut chunks) = (good.clone(), good_chunks.clone());
        forge(&mut m, &mut chunks, 1, edit);
        let id = m.id();
        let mut install = dest.begin_snapshot_install(m.clone()).unwrap();
        for (i, c) in chunks.iter().enumerate() {
            install
                .add_chunk(verify_chunk(&m, id, i as u32, c).unwrap())
                .unwrap();
        }
        let e = install.finish(None).unwrap_err();
        assert!(
            matches!(e, SnapshotError::RootMismatch { .. }),
            "{what}: {e}"
        );
        assert!(e.is_peer_fault());
        install.abort().unwrap();
        assert_eq!(dest.head().unwrap(), None, "{what}");
        assert!(dest.accounts().unwrap().is_empty(), "{what}");
        assert!(dest.block_by_height(0).unwrap().is_none(), "{what}");
        // The node initialises its genesis again and may try another manifest.
        let (block, accounts, permissions, g) = genesis(100);
        dest.init_genesis_state(
            &block,
            InitialState {
                accounts: &accounts,
                permissions: &permissions,
                governance: Some(&g),
            },
        )
        .unwrap();
    }
    // A manifest whose chunk ranges overlap never gets as far as an install.
    let mut m = good.clone();
    m.chunks[2].first = m.chunks[1].last;
    assert!(matches!(
        dest.begin_snapshot_install(m.clone()),
        Err(SnapshotError::BadManifest { .. })
    ));
    assert!(matches!(
        SnapshotManifest::decode(&m.encode()),
        Err(SnapshotError::BadManifest { .. })
    ));
    assert!(matches!(
        SnapshotManifest::decode(&[1, 2, 3]),
        Err(SnapshotError::Malformed { .. })
    ));
    assert!(matches!(
        SnapshotManifest::decode(&vec![0; snapshot::MANIFEST_BYTES_MAX + 1]),
        Err(SnapshotError::Oversize { .. })
    ));
    // The good one still installs.
    install_all(
        &dest,
        &good,
        &good_chunks,
        &(0..good_chunks.len()).collect::<Vec<_>>(),
    );
    assert_eq!(dest.lthash().unwrap(), src.lthash().unwrap());
}

#[test]
fn an_interrupted_install_leaves_an_empty_store_on_reopen() {
    let (src_dir, dst_dir, snaps) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let src = source(src_dir.path(), 100);
    let h = head(&src);
    let dir = snaps.path().join("s");
    let m = src.write_snapshot(h.height, &dir, 1024).unwrap();
    let chunks = all_chunks(&dir, &m);
    let dest = open_genesis(dst_dir.path(), 100);
    let genesis_hash = dest.genesis_hash();
    {
        let mut install = dest.begin_snapshot_install(m.clone()).unwrap();
        for (i, c) in chunks.iter().enumerate().take(chunks.len() / 2) {
            install
                .add_chunk(verify_chunk(&m, m.id(), i as u32, c).unwrap())
                .unwrap();
        }
        // Dropped unfinished, as by a crash.
    }
    drop(dest);
    let dest = Store::open(dst_dir.path(), genesis_hash).unwrap();
    assert_eq!(dest.head().unwrap(), None);
    assert!(dest.accounts().unwrap().is_empty());
    assert!(dest.block_by_height(0).unwrap().is_none());
    drop(dest);
    // Genesis again, then the whole install.
    let dest = open_genesis(dst_dir.path(), 100);
    install_all(&dest, &m, &chunks, &(0..chunks.len()).collect::<Vec<_>>());
    assert_eq!(head(&dest), h);
}

#[test]
fn snapshots_are_taken_only_at_the_head_and_pruned_to_the_last_few() {
    let (src_dir, snaps) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = source(src_dir.path(), 10);
    assert!(matches!(
        src.write_snapshot(2, &snaps.path().join("2"), 4096),
        Err(SnapshotError::HeadMoved {
            expected: 2,
            head: Some(3)
        })
    ));
    src.write_snapshot(3, &snaps.path().join("3"), 4096)
        .unwrap();
    // Pretend older ones exist.
    for h in [1u64, 2] {
        std::fs::create_dir(snaps.path().join(h.to_string())).unwrap();
    }
    std::fs::create_dir(snaps.path().join("9.tmp")).unwrap();
    assert_eq!(
        list_snapshots(snaps.path())
            .unwrap()
            .iter()
            .map(|(h, _)| *h)
            .collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!(prune_snapshots(snaps.path(), 2).unwrap(), vec![1]);
    assert_eq!(
        list_snapshots(snaps.path())
            .unwrap()
            .iter()
            .map(|(h, _)| *h)
            .collect::<Vec<_>>(),
        vec![3, 2]
    );
    assert!(!snaps.path().join("9.tmp").exists());
    assert!(
        list_snapshots(&snaps.path().join("none"))
            .unwrap()
            .is_empty()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Any state, any chunk size: the install's state equals the source's, and any single
    /// flipped byte of any chunk is refused.
    #[test]
    fn any_state_round_trips_and_any_flipped_byte_is_refused(
        extra in 0u32..300,
        chunk_bytes in 1024usize..6000,
        flip in any::<(usize, usize, u8)>(),
    ) {
        let (src_dir, dst_dir, snaps) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let src = source(src_dir.path(), extra);
        let h = head(&src);
        let dir = snaps.path().join("s");
        let m = src.write_snapshot(h.height, &dir, chunk_bytes).unwrap();
        let chunks = all_chunks(&dir, &m);
        let (ci, bi, bit) = (flip.0 % chunks.len(), flip.1 % chunks[flip.0 % chunks.len()].len(), 1u8 << (flip.2 % 8));
        let mut bad = chunks[ci].clone();
        bad[bi] ^= bit;
        prop_assert!(verify_chunk(&m, m.id(), ci as u32, &bad).is_err());
        let dest = open_genesis(dst_dir.path(), extra);
        install_all(&dest, &m, &chunks, &(0..chunks.len()).collect::<Vec<_>>());
        prop_assert_eq!(dest.recompute_lthash().unwrap(), src.lthash().unwrap());
        prop_assert_eq!(dest.accounts().unwrap(), src.accounts().unwrap());
    }
}
