//! How many times one transaction is hashed (blake3 of its body: the id; blake3 of body and
//! signature: the signed hash) on its way through a leader and through a validator, counted
//! with `cairn_ledger::hash_counts` (cargo feature `count-hashes`, on in this crate's tests).
//!
//! The steps are the driver's, in its order, on one thread (the verifier runs
//! `verify_hashed` on a blocking thread in the node; here it is called directly): RPC
//! decode and verification, admission, proposal building, the compact block, finalization
//! and the mempool's cleanup at the leader; gossip batch decode, verification, admission,
//! compact block reassembly, validation, finalization and cleanup at a validator.

use std::sync::Arc;

use cairn_consensus::{Digest, Proposal, Vote, VoteKind};
use cairn_ledger::{
    Account, Address, Block, BlockHeader, BlockLimits, Hash, HashedTx, LtHash, SignedTransaction,
    Store, TransactionBody, hash_counts, signed_txs_root_of, txs_root, verify_hashed,
};
use ed25519_dalek::SigningKey;

use crate::chain::Chain;
use crate::compact::{CompactBlock, PartialBlocks, Reassembly};
use crate::mempool::{Mempool, MempoolConfig};
use crate::txgossip::{decode_batch, encode_batch};

const CHAIN: &str = "cairn-hash-count";

/// A node's chain and mempool on a genesis funding `sender`.
fn node(sender: Address) -> (tempfile::TempDir, Chain, Mempool) {
    let accounts = vec![(
        sender,
        Account {
            balance: 1_000_000,
            nonce: 0,
        },
    )];
    let genesis = Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height: 0,
            view: 0,
            parent_hash: Hash([7; 32]),
            proposer: Address::default(),
            timestamp_ms: 0,
            txs_root: txs_root(&[]),
            signed_txs_root: signed_txs_root_of(&[]),
            state_root: LtHash::of_accounts(accounts.iter().map(|(a, acc)| (a, acc))).root(),
        },
        transactions: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), genesis.header.parent_hash).unwrap());
    store.init_genesis(&genesis, &accounts).unwrap();
    let limits = BlockLimits {
        block_txs_max: 100,
        block_bytes_max: 1 << 20,
    };
    let chain = Chain::open(store, CHAIN.into(), limits).unwrap();
    (dir, chain, Mempool::new(MempoolConfig::default()))
}

fn verify(txs: Vec<SignedTransaction>) -> Vec<cairn_ledger::VerifiedTx> {
    verify_hashed(txs.into_iter().map(HashedTx::new).collect(), CHAIN)
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_transaction_is_hashed_once_per_node() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let sender = Address::from_public_key(&key.verifying_key());
    let tx = TransactionBody {
        chain_id: CHAIN.into(),
        sender,
        fee: 1,
        nonce: 0,
        expiry_height: 100,
        action: cairn_ledger::Action::Transfer {
            recipient: Address([9; 32]),
            amount: 5,
        },
    }
    .sign(&key);
    let wire = tx.encode();
    let leader_key = SigningKey::from_bytes(&[4; 32]);
    let leader = Address::from_public_key(&leader_key.verifying_key());

    // The leader.
    let (_d1, mut chain, mut mempool) = node(sender);
    let head = chain.head_hash();
    hash_counts::reset();
    let received = SignedTransaction::decode(&wire).unwrap(); // RPC
    let verified = verify(vec![received]); // verifier
    let gossip = encode_batch(&[verified[0].tx().clone()]); // outbox
    let store = chain.store().clone();
    for v in verified {
        mempool.insert(v, store.as_ref(), CHAIN, 1).unwrap(); // admit_batch
    }
    let block = chain
        .build_verified(&head, 1, leader, 1, |b| mempool.reap(b, 100, 1 << 20))
        .unwrap(); // try_build
    let vote = Vote::sign(
        &[1; 32],
        VoteKind::Notarize(Proposal {
            view: 1,
            parent_view: 0,
            parent: Digest(head.0),
            payload: Digest(block.hash().0),
        }),
        0,
        &leader_key,
    );
    let compact = CompactBlock::of_sealed(0, &block, vote).encode(); // publish_own_proposal
    let committed = chain.finalize(&block.hash(), Some(b"certificate")).unwrap(); // on_finalized
    for b in &committed {
        let txs = b
            .tx_ids()
            .iter()
            .copied()
            .zip(b.block().transactions.iter().map(|t| &t.body.sender));
        mempool.remove_finalized(txs, store.as_ref(), b.header().height); // after_commit
    }
    let at_leader = hash_counts::get();
    assert_eq!(committed.len(), 1);
    assert!(mempool.is_empty());

    // A validator.
    let (_d2, mut chain, mut mempool) = node(sender);
    let store = chain.store().clone();
    let mut partials = PartialBlocks::new();
    hash_counts::reset();
    let hashed: Vec<HashedTx> = decode_batch(&gossip)
        .unwrap()
        .into_iter()
        .map(HashedTx::new)
        .filter(|t| !mempool.contains(&t.id()))
        .collect(); // on_gossip_tx
    let verified = verify_hashed(hashed, CHAIN)
        .into_iter()
        .map(|r| r.unwrap())
        .collect::<Vec<_>>(); // verifier
    assert!(partials.offer(&verified).is_empty()); // admit_batch
    for v in verified {
        mempool.insert(v, store.as_ref(), CHAIN, 1).unwrap();
    }
    let compact = CompactBlock::decode(&compact, 1 << 20, 100).unwrap(); // on_gossip_block
    let Reassembly::Complete(rebuilt) = partials.insert(compact, |h| mempool.get(h).cloned(), 0)
    else {
        panic!("the block's transaction is pooled");
    };
    let h = rebuilt.header().hash(); // on_rebuilt
    let sealed = rebuilt.seal().unwrap();
    assert_eq!(sealed.hash(), h);
    let unverified =
        sealed.hashed_txs(|id, t| mempool.get(id).is_none_or(|v| v.signature != t.signature));
    assert!(unverified.is_empty()); // insert_block
    chain
        .insert(sealed, &|id, t| {
            mempool.get(id).is_some_and(|v| v.signature == t.signature)
        })
        .unwrap();
    let committed = chain.finalize(&h, Some(b"certificate")).unwrap();
    for b in &committed {
        let txs = b
            .tx_ids()
            .iter()
            .copied()
            .zip(b.block().transactions.iter().map(|t| &t.body.sender));
        mempool.remove_finalized(txs, store.as_ref(), b.header().height);
    }
    let at_validator = hash_counts::get();
    assert!(mempool.is_empty());

    println!("hashes of one transaction: leader {at_leader:?}, validator {at_validator:?}");
    // Before the driver split (main at 7db1145), the same steps with that code's APIs,
    // counted the same way in this test profile (debug assertions on): 7 ids + 1 signed
    // hash at the leader (RPC verification, admission, a debug assertion in
    // `Mempool::insert_hashed`, `Chain::build`, `CompactBlock::of`, `Store::commit_block`,
    // `Mempool::remove_finalized`) and 7 ids + 1 signed hash at a validator (the gossip
    // filter, verification, admission and its debug assertion, `SealedBlock::seal`, the
    // commit, the mempool cleanup); 6 + 1 each without debug assertions.
    let once = hash_counts::TxHashCounts { ids: 1, signed: 1 };
    assert_eq!(at_leader, once, "leader");
    assert_eq!(at_validator, once, "validator");
}
