//! Decoding untrusted bytes: random, truncated, oversize and mutated input never panics and
//! always yields an error (or, for mutations that still decode, a canonical value).

mod common;

use cairn_ledger::{
    Account, Address, Block, BlockHeader, Hash, LedgerError, LtHash, SignedTransaction,
    TX_BYTES_MAX, TxLocation, txs_root,
};
use common::*;
use proptest::prelude::*;

const BLOCK_MAX: usize = 1 << 16;

fn sample_tx() -> SignedTransaction {
    transfer(1, addr(2), 12345, 6, 7)
}

fn sample_block() -> Block {
    let txs = vec![sample_tx(), transfer(2, addr(1), 1, 1, 0)];
    let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    Block {
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height: 9,
            view: 11,
            parent_hash: Hash::derive("p", &[]),
            proposer: addr(3),
            timestamp_ms: 1,
            txs_root: txs_root(&hashes),
            signed_txs_root: cairn_ledger::signed_txs_root_of(&txs),
            state_root: Hash::derive("s", &[]),
        },
        transactions: txs,
    }
}

#[test]
fn every_truncation_of_a_transaction_is_an_error() {
    let bytes = sample_tx().encode();
    for n in 0..bytes.len() {
        let err = SignedTransaction::decode(&bytes[..n]).unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::Malformed {
                    what: "transaction",
                    ..
                }
            ),
            "{n}: {err:?}"
        );
        assert!(err.is_stateless());
    }
    assert_eq!(SignedTransaction::decode(&bytes).unwrap(), sample_tx());
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = sample_tx().encode();
    bytes.push(0);
    assert!(matches!(
        SignedTransaction::decode(&bytes),
        Err(LedgerError::Malformed { .. })
    ));
    let mut bytes = sample_block().encode();
    bytes.push(0);
    assert!(matches!(
        Block::decode(&bytes, BLOCK_MAX),
        Err(LedgerError::Malformed { .. })
    ));
}

#[test]
fn every_truncation_of_a_block_is_an_error() {
    let bytes = sample_block().encode();
    for n in 0..bytes.len() {
        assert!(
            Block::decode(&bytes[..n], BLOCK_MAX).is_err(),
            "prefix {n} decoded"
        );
    }
    assert_eq!(Block::decode(&bytes, BLOCK_MAX).unwrap(), sample_block());
}

#[test]
fn oversize_is_refused_before_decoding() {
    let big = vec![0u8; TX_BYTES_MAX + 1];
    let err = SignedTransaction::decode(&big).unwrap_err();
    assert_eq!(
        err,
        LedgerError::Oversize {
            what: "transaction",
            len: TX_BYTES_MAX + 1,
            max: TX_BYTES_MAX
        }
    );
    let bytes = sample_block().encode();
    let err = Block::decode(&bytes, bytes.len() - 1).unwrap_err();
    assert!(
        matches!(err, LedgerError::Oversize { what: "block", .. }),
        "{err:?}"
    );
    // a valid transaction whose chain id is too long to be valid is still bounded
    let mut tx = sample_tx();
    tx.body.chain_id = "x".repeat(TX_BYTES_MAX);
    let err = SignedTransaction::decode(&tx.encode()).unwrap_err();
    assert!(matches!(err, LedgerError::Oversize { .. }));
}

#[test]
fn huge_length_prefixes_do_not_allocate_or_panic() {
    // chain id length u32::MAX
    let mut bytes = vec![0xff, 0xff, 0xff, 0xff];
    bytes.extend([b'a'; 100]);
    assert!(SignedTransaction::decode(&bytes).is_err());
    // a block claiming u32::MAX transactions
    let mut bytes = borsh::to_vec(&sample_block().header).unwrap();
    bytes.extend(u32::MAX.to_le_bytes());
    bytes.extend(sample_tx().encode());
    assert!(Block::decode(&bytes, BLOCK_MAX).is_err());
}

#[test]
fn invalid_utf8_chain_id_is_an_error() {
    let mut bytes = sample_tx().encode();
    bytes[4] = 0xff; // first byte of the chain id
    assert!(matches!(
        SignedTransaction::decode(&bytes),
        Err(LedgerError::Malformed { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let tx = SignedTransaction::decode(&bytes);
        if bytes.len() > TX_BYTES_MAX {
            let is_oversize = matches!(tx, Err(LedgerError::Oversize { .. }));
            prop_assert!(is_oversize);
        }
        if let Ok(tx) = tx {
            prop_assert_eq!(tx.encode(), bytes.clone());
            // and whatever decodes still has to pass verify, which must not panic either
            let _ = tx.verify(CHAIN);
        }
        if let Ok(b) = Block::decode(&bytes, BLOCK_MAX) {
            prop_assert_eq!(b.encode(), bytes.clone());
        }
        let _ = Block::decode(&bytes, 10);
        let _ = borsh::from_slice::<BlockHeader>(&bytes);
        let _ = borsh::from_slice::<Account>(&bytes);
        let _ = borsh::from_slice::<TxLocation>(&bytes);
        let _ = borsh::from_slice::<LtHash>(&bytes);
        let _ = LtHash::from_bytes(&bytes);
        let _ = Hash::from_hex(&String::from_utf8_lossy(&bytes));
        let _ = Address::from_bech32(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_transactions_never_panic_and_stay_canonical(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = sample_tx().encode();
        for (i, v) in edits {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        match SignedTransaction::decode(&bytes) {
            Ok(tx) => {
                prop_assert_eq!(tx.encode(), bytes);
                // a mutated transaction must not verify unless it is the original
                if tx != sample_tx() {
                    prop_assert!(tx.verify(CHAIN).is_err());
                }
            }
            Err(e) => prop_assert!(e.is_stateless()),
        }
    }

    #[test]
    fn mutated_blocks_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = sample_block().encode();
        for (i, v) in edits {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(b) = Block::decode(&bytes, BLOCK_MAX) {
            prop_assert_eq!(b.encode(), bytes);
        }
    }
}
