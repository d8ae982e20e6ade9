//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use cairn_ledger::{
    Account, Address, Block, BlockHeader, Hash, LedgerError, LtHash, SignedTransaction,
    StateReader, TransactionBody, execute_block, txs_root,
};
use ed25519_dalek::SigningKey;

pub const CHAIN: &str = "cairn-test";

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn addr(n: u8) -> Address {
    Address::from_public_key(&key(n).verifying_key())
}

/// A signed transfer from key `from` on [`CHAIN`], expiring at height 1000.
pub fn transfer(from: u8, to: Address, amount: u64, fee: u64, nonce: u64) -> SignedTransaction {
    TransactionBody {
        chain_id: CHAIN.into(),
        sender: addr(from),
        fee,
        nonce,
        expiry_height: 1000,
        action: cairn_ledger::Action::Transfer {
            recipient: to,
            amount,
        },
    }
    .sign(&key(from))
}

pub fn state(entries: &[(Address, Account)]) -> BTreeMap<Address, Account> {
    entries.iter().copied().collect()
}

pub fn acct(balance: u64, nonce: u64) -> Account {
    Account { balance, nonce }
}

pub fn lthash_of(state: &BTreeMap<Address, Account>) -> LtHash {
    LtHash::of_accounts(state.iter())
}

/// A genesis header for `state` (height 0, no transactions).
pub fn genesis_header(state: &BTreeMap<Address, Account>) -> BlockHeader {
    BlockHeader {
        chain_id: CHAIN.into(),
        height: 0,
        view: 0,
        parent_hash: Hash::derive("test genesis file", &[]),
        proposer: Address::default(),
        timestamp_ms: 0,
        txs_root: txs_root(&[]),
        signed_txs_root: cairn_ledger::signed_txs_root_of(&[]),
        state_root: lthash_of(state).root(),
    }
}

/// A correct child block of `parent` with `txs`, executed on `state`/`lthash`.
pub fn child_block(
    parent: &BlockHeader,
    state: &dyn StateReader,
    lthash: LtHash,
    proposer: Address,
    txs: Vec<SignedTransaction>,
) -> Result<(Block, cairn_ledger::StateDiff), (usize, LedgerError)> {
    let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::hash).collect();
    let mut block = Block {
        header: BlockHeader {
            chain_id: parent.chain_id.clone(),
            height: parent.height + 1,
            view: parent.view + 1,
            parent_hash: parent.hash(),
            proposer,
            timestamp_ms: parent.timestamp_ms + 1000,
            txs_root: txs_root(&hashes),
            signed_txs_root: cairn_ledger::signed_txs_root_of(&txs),
            state_root: Hash::ZERO,
        },
        transactions: txs,
    };
    let diff = execute_block(state, lthash, &block)?;
    block.header.state_root = diff.state_root();
    Ok((block, diff))
}

/// Applies a diff to a materialized state (default accounts removed).
pub fn apply_diff(state: &mut BTreeMap<Address, Account>, diff: &cairn_ledger::StateDiff) {
    for (a, acc) in &diff.accounts {
        if acc.is_empty() {
            state.remove(a);
        } else {
            state.insert(*a, *acc);
        }
    }
}

pub fn supply(state: &BTreeMap<Address, Account>) -> u128 {
    state.values().map(|a| u128::from(a.balance)).sum()
}
