//! Transaction rules, block execution and block validation.

mod common;

use std::collections::BTreeMap;

use cairn_ledger::{
    Account, Address, BlockBuilder, BlockContext, BlockLimits, Hash, LedgerError, LtHash,
    SignatureCheck, SignedTransaction, StateReader, TransactionBody, execute_block, txs_root,
    validate_block, validate_block_with,
};
use common::*;

const HEIGHT: u64 = 10;

fn ctx(proposer: Address) -> BlockContext {
    BlockContext {
        chain_id: CHAIN.into(),
        height: HEIGHT,
        proposer,
    }
}

fn body(from: u8, to: Address, amount: u64, fee: u64, nonce: u64) -> TransactionBody {
    transfer(from, to, amount, fee, nonce).body
}

/// Applies `tx` expecting an error; checks that nothing changed and returns the error.
fn apply_err(
    parent: &BTreeMap<Address, Account>,
    proposer: Address,
    tx: &SignedTransaction,
) -> LedgerError {
    let mut b = BlockBuilder::new(parent, lthash_of(parent), ctx(proposer));
    let err = b.apply(tx).expect_err("transaction must be rejected");
    assert_eq!(b.applied(), 0);
    let recipient = tx.body.recipient().expect("transfers only");
    for a in [tx.body.sender, recipient, proposer] {
        assert_eq!(
            b.account(&a).unwrap(),
            parent.account(&a).unwrap(),
            "state changed after {err:?}"
        );
    }
    let diff = b.finish();
    assert!(
        diff.accounts.is_empty(),
        "diff not empty after {err:?}: {diff:?}"
    );
    assert_eq!(diff.lthash, lthash_of(parent));
    err
}

#[test]
fn transfer_moves_amount_pays_fee_to_proposer_and_bumps_nonce() {
    let (alice, bob, carol) = (addr(1), addr(2), addr(3));
    let parent = state(&[(alice, acct(1000, 0))]);
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(carol));
    b.apply(&transfer(1, bob, 100, 5, 0)).unwrap();
    assert_eq!(b.applied(), 1);
    assert_eq!(b.account(&alice).unwrap(), acct(895, 1));
    assert_eq!(b.account(&bob).unwrap(), acct(100, 0));
    assert_eq!(b.account(&carol).unwrap(), acct(5, 0));
    let diff = b.finish();
    let expected = state(&[
        (alice, acct(895, 1)),
        (bob, acct(100, 0)),
        (carol, acct(5, 0)),
    ]);
    assert_eq!(diff.accounts, expected);
    assert_eq!(diff.lthash, lthash_of(&expected));
    assert_eq!(diff.state_root(), lthash_of(&expected).root());
    assert_ne!(diff.state_root(), lthash_of(&parent).root());
}

#[test]
fn consecutive_nonces_in_one_block_and_replay_is_stale() {
    let (alice, bob) = (addr(1), addr(2));
    let parent = state(&[(alice, acct(1000, 0))]);
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(9)));
    for n in 0..3 {
        b.apply(&transfer(1, bob, 10, 1, n)).unwrap();
    }
    assert_eq!(b.account(&alice).unwrap(), acct(1000 - 33, 3));
    let err = b.apply(&transfer(1, bob, 10, 1, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::StaleNonce {
                expected: 3,
                got: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(b.applied(), 3);
    assert_eq!(b.account(&alice).unwrap(), acct(1000 - 33, 3));
}

#[test]
fn self_transfer_pays_only_the_fee() {
    let alice = addr(1);
    let parent = state(&[(alice, acct(1000, 4))]);
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    b.apply(&transfer(1, alice, 700, 5, 4)).unwrap();
    let diff = b.finish();
    assert_eq!(
        diff.accounts,
        state(&[(alice, acct(995, 5)), (addr(3), acct(5, 0))])
    );
    assert_eq!(diff.lthash, lthash_of(&diff.accounts));
}

#[test]
fn self_transfer_of_whole_balance_is_allowed() {
    let alice = addr(1);
    let parent = state(&[(alice, acct(1000, 0))]);
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    b.apply(&transfer(1, alice, 990, 10, 0)).unwrap();
    assert_eq!(b.account(&alice).unwrap(), acct(990, 1));
}

#[test]
fn proposer_may_be_sender_or_recipient() {
    let (alice, bob) = (addr(1), addr(2));
    let parent = state(&[(alice, acct(1000, 0))]);
    // proposer = sender: fee comes back
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(alice));
    b.apply(&transfer(1, bob, 100, 5, 0)).unwrap();
    let diff = b.finish();
    assert_eq!(
        diff.accounts,
        state(&[(alice, acct(900, 1)), (bob, acct(100, 0))])
    );
    assert_eq!(diff.lthash, lthash_of(&diff.accounts));
    // proposer = recipient: gets amount + fee
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(bob));
    b.apply(&transfer(1, bob, 100, 5, 0)).unwrap();
    assert_eq!(b.account(&bob).unwrap(), acct(105, 0));
    // all three the same
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(alice));
    b.apply(&transfer(1, alice, 100, 5, 0)).unwrap();
    assert_eq!(b.finish().accounts, state(&[(alice, acct(1000, 1))]));
}

#[test]
fn zero_transfer_to_new_account_leaves_it_absent() {
    let alice = addr(1);
    let parent = state(&[(alice, acct(10, 0))]);
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    b.apply(&transfer(1, addr(2), 0, 0, 0)).unwrap();
    let diff = b.finish();
    // only the sender changed (nonce); recipient and proposer are not listed
    assert_eq!(diff.accounts, state(&[(alice, acct(10, 1))]));
    assert_eq!(diff.lthash, lthash_of(&diff.accounts));
}

#[test]
fn wrong_chain() {
    let parent = state(&[(addr(1), acct(1000, 0))]);
    let mut b = body(1, addr(2), 1, 1, 0);
    b.chain_id = "other-chain".into();
    let err = apply_err(&parent, addr(3), &b.sign(&key(1)));
    assert!(
        matches!(&err, LedgerError::WrongChain { expected, got, .. } if expected == CHAIN && got == "other-chain")
    );
    assert_eq!(err.code(), "wrong_chain");
}

#[test]
fn expiry_is_inclusive() {
    let parent = state(&[(addr(1), acct(1000, 0))]);
    let mut b = body(1, addr(2), 1, 1, 0);
    b.expiry_height = HEIGHT - 1;
    let err = apply_err(&parent, addr(3), &b.clone().sign(&key(1)));
    assert!(
        matches!(err, LedgerError::Expired { expiry_height, height: HEIGHT, .. } if expiry_height == HEIGHT - 1)
    );
    assert_eq!(err.code(), "expired");
    b.expiry_height = HEIGHT;
    let mut builder = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    builder.apply(&b.sign(&key(1))).unwrap();
}

#[test]
fn stale_and_future_nonce() {
    let parent = state(&[(addr(1), acct(1000, 5))]);
    let err = apply_err(&parent, addr(3), &transfer(1, addr(2), 1, 1, 4));
    assert!(
        matches!(
            err,
            LedgerError::StaleNonce {
                expected: 5,
                got: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "stale_nonce");
    let err = apply_err(&parent, addr(3), &transfer(1, addr(2), 1, 1, 6));
    assert!(
        matches!(
            err,
            LedgerError::FutureNonce {
                expected: 5,
                got: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "future_nonce");
    // an unknown sender has nonce 0
    let err = apply_err(&parent, addr(3), &transfer(7, addr(2), 0, 0, 1));
    assert!(
        matches!(
            err,
            LedgerError::FutureNonce {
                expected: 0,
                got: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn insufficient_balance_counts_amount_plus_fee() {
    let parent = state(&[(addr(1), acct(100, 0))]);
    let err = apply_err(&parent, addr(3), &transfer(1, addr(2), 95, 6, 0));
    assert!(
        matches!(
            err,
            LedgerError::InsufficientBalance {
                balance: 100,
                needed: 101,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "insufficient_balance");
    // exactly the balance is fine
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    b.apply(&transfer(1, addr(2), 95, 5, 0)).unwrap();
    assert_eq!(b.account(&addr(1)).unwrap(), acct(0, 1));
}

#[test]
fn amount_plus_fee_does_not_overflow() {
    let parent = state(&[(addr(1), acct(u64::MAX, 0))]);
    let err = apply_err(
        &parent,
        addr(3),
        &transfer(1, addr(2), u64::MAX, u64::MAX, 0),
    );
    let needed = 2 * u128::from(u64::MAX);
    assert!(
        matches!(err, LedgerError::InsufficientBalance { balance: u64::MAX, needed: n, .. } if n == needed)
    );
    let err = apply_err(&parent, addr(3), &transfer(1, addr(2), u64::MAX, 1, 0));
    assert!(
        matches!(err, LedgerError::InsufficientBalance { .. }),
        "{err:?}"
    );
}

#[test]
fn recipient_overflow() {
    let (alice, bob) = (addr(1), addr(2));
    let parent = state(&[(alice, acct(100, 0)), (bob, acct(u64::MAX - 1, 0))]);
    let err = apply_err(&parent, addr(3), &transfer(1, bob, 2, 0, 0));
    assert!(
        matches!(err, LedgerError::BalanceOverflow { address, .. } if address == bob),
        "{err:?}"
    );
    assert_eq!(err.code(), "balance_overflow");
    // up to u64::MAX exactly is fine
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    b.apply(&transfer(1, bob, 1, 0, 0)).unwrap();
    assert_eq!(b.account(&bob).unwrap().balance, u64::MAX);
}

#[test]
fn proposer_overflow_rolls_back_sender_and_recipient() {
    let (alice, bob, carol) = (addr(1), addr(2), addr(3));
    let parent = state(&[(alice, acct(100, 0)), (carol, acct(u64::MAX, 0))]);
    let err = apply_err(&parent, carol, &transfer(1, bob, 10, 1, 0));
    assert!(
        matches!(err, LedgerError::BalanceOverflow { address, .. } if address == carol),
        "{err:?}"
    );
    // a zero fee does not touch the proposer
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(carol));
    b.apply(&transfer(1, bob, 10, 0, 0)).unwrap();
}

#[test]
fn nonce_exhausted() {
    let parent = state(&[(addr(1), acct(100, u64::MAX))]);
    let err = apply_err(&parent, addr(3), &transfer(1, addr(2), 1, 1, u64::MAX));
    assert!(
        matches!(err, LedgerError::NonceExhausted { address, .. } if address == addr(1)),
        "{err:?}"
    );
    assert_eq!(err.code(), "nonce_exhausted");
}

#[test]
fn failed_transaction_does_not_disturb_later_ones() {
    let (alice, bob) = (addr(1), addr(2));
    let parent = state(&[(alice, acct(100, 0))]);
    let mut with_failure = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    let mut without = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    for b in [&mut with_failure, &mut without] {
        b.apply(&transfer(1, bob, 10, 1, 0)).unwrap();
    }
    with_failure
        .apply(&transfer(1, bob, 1000, 1, 1))
        .unwrap_err();
    with_failure.apply(&transfer(1, bob, 1, 1, 2)).unwrap_err();
    for b in [&mut with_failure, &mut without] {
        b.apply(&transfer(1, bob, 10, 1, 1)).unwrap();
    }
    assert_eq!(with_failure.applied(), 2);
    assert_eq!(with_failure.finish(), without.finish());
}

#[test]
fn builder_does_not_check_signatures() {
    // documented: the caller verified; a forged signature still executes
    let parent = state(&[(addr(1), acct(100, 0))]);
    let mut tx = transfer(1, addr(2), 10, 1, 0);
    tx.signature = [0u8; 64];
    let mut b = BlockBuilder::new(&parent, lthash_of(&parent), ctx(addr(3)));
    b.apply(&tx).unwrap();
}

#[test]
fn error_codes_are_distinct() {
    let h = Hash::ZERO;
    let a = Address::default();
    let all = [
        LedgerError::BadHex {
            reason: String::new(),
        },
        LedgerError::BadLength {
            what: "x",
            expected: 1,
            got: 2,
        },
        LedgerError::BadAddress {
            input: String::new(),
            reason: String::new(),
        },
        LedgerError::BadPublicKey { address: a },
        LedgerError::Oversize {
            what: "x",
            len: 2,
            max: 1,
        },
        LedgerError::Malformed {
            what: "x",
            reason: String::new(),
        },
        LedgerError::BadSignature { tx: h },
        LedgerError::WrongChain {
            tx: h,
            expected: String::new(),
            got: String::new(),
        },
        LedgerError::StaleNonce {
            tx: h,
            expected: 1,
            got: 0,
        },
        LedgerError::FutureNonce {
            tx: h,
            expected: 0,
            got: 1,
        },
        LedgerError::InsufficientBalance {
            tx: h,
            balance: 0,
            needed: 1,
        },
        LedgerError::BalanceOverflow { tx: h, address: a },
        LedgerError::NonceExhausted { tx: h, address: a },
        LedgerError::Expired {
            tx: h,
            expiry_height: 0,
            height: 1,
        },
        LedgerError::InvalidBlock {
            block: h,
            height: 0,
            reason: String::new(),
        },
        LedgerError::InvalidBlockTx {
            block: h,
            height: 0,
            index: 0,
            error: Box::new(LedgerError::BadSignature { tx: h }),
        },
        LedgerError::GenesisMismatch {
            expected: h,
            found: h,
        },
        LedgerError::Storage {
            reason: String::new(),
        },
        LedgerError::Corrupt {
            reason: String::new(),
        },
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(LedgerError::code).collect();
    assert_eq!(codes.len(), all.len());
    for e in &all {
        assert!(!(e.is_fatal() && e.is_stateless()), "{e:?}");
        assert!(!e.to_string().is_empty());
    }
    assert!(
        LedgerError::Storage {
            reason: String::new()
        }
        .is_fatal()
    );
    assert!(
        LedgerError::Corrupt {
            reason: String::new()
        }
        .is_fatal()
    );
    assert!(LedgerError::BadSignature { tx: h }.is_stateless());
    assert!(
        !LedgerError::StaleNonce {
            tx: h,
            expected: 1,
            got: 0
        }
        .is_stateless()
    );
}

#[test]
fn execute_block_is_all_or_nothing_and_reports_index() {
    let parent = state(&[(addr(1), acct(100, 0))]);
    let genesis = genesis_header(&parent);
    let txs = vec![
        transfer(1, addr(2), 10, 1, 0),
        transfer(1, addr(2), 10, 1, 5),
        transfer(1, addr(2), 10, 1, 1),
    ];
    let err = child_block(&genesis, &parent, lthash_of(&parent), addr(3), txs).unwrap_err();
    assert_eq!(err.0, 1);
    assert!(
        matches!(
            err.1,
            LedgerError::FutureNonce {
                expected: 1,
                got: 5,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- validate_block

struct Fixture {
    parent_state: BTreeMap<Address, Account>,
    genesis: cairn_ledger::BlockHeader,
    block: cairn_ledger::Block,
    diff: cairn_ledger::StateDiff,
}

const LIMITS: BlockLimits = BlockLimits {
    block_txs_max: 100,
    block_bytes_max: 1 << 20,
};

fn fixture() -> Fixture {
    let parent_state = state(&[(addr(1), acct(1000, 0)), (addr(2), acct(50, 2))]);
    let genesis = genesis_header(&parent_state);
    let txs = vec![
        transfer(1, addr(2), 100, 3, 0),
        transfer(2, addr(4), 20, 1, 2),
        transfer(1, addr(4), 7, 0, 1),
    ];
    let (block, diff) = child_block(
        &genesis,
        &parent_state,
        lthash_of(&parent_state),
        addr(3),
        txs,
    )
    .unwrap();
    Fixture {
        parent_state,
        genesis,
        block,
        diff,
    }
}

/// Re-roots `block` after its transactions were edited (so only the edit is wrong).
/// Recomputes both body roots of `block`'s header: the block a leader would have signed
/// with this body.
fn reroot(block: &mut cairn_ledger::Block) {
    let hashes: Vec<Hash> = block
        .transactions
        .iter()
        .map(SignedTransaction::hash)
        .collect();
    block.header.txs_root = txs_root(&hashes);
    block.header.signed_txs_root = cairn_ledger::signed_txs_root_of(&block.transactions);
}

/// Asserts `result` is a body mismatch naming `root`.
fn assert_body_mismatch(result: Result<cairn_ledger::StateDiff, LedgerError>, root: &str) {
    match result {
        Err(LedgerError::BodyMismatch { reason, .. }) => {
            assert!(
                reason.starts_with(root),
                "reason `{reason}` is not about `{root}`"
            )
        }
        other => panic!("expected BodyMismatch({root}), got {other:?}"),
    }
}

fn validate(
    f: &Fixture,
    block: &cairn_ledger::Block,
) -> Result<cairn_ledger::StateDiff, LedgerError> {
    validate_block(
        &f.genesis,
        &f.parent_state,
        lthash_of(&f.parent_state),
        block,
        &LIMITS,
    )
}

fn assert_invalid_block(result: Result<cairn_ledger::StateDiff, LedgerError>, reason_part: &str) {
    match result {
        Err(LedgerError::InvalidBlock { reason, .. }) => {
            assert!(
                reason.contains(reason_part),
                "reason `{reason}` lacks `{reason_part}`"
            )
        }
        other => panic!("expected InvalidBlock({reason_part}), got {other:?}"),
    }
}

#[test]
fn validate_accepts_a_correct_block() {
    let f = fixture();
    let diff = validate(&f, &f.block).unwrap();
    assert_eq!(diff, f.diff);
    let mut after = f.parent_state.clone();
    apply_diff(&mut after, &diff);
    assert_eq!(diff.lthash, lthash_of(&after));
    assert_eq!(supply(&after), supply(&f.parent_state));
    assert_eq!(after[&addr(3)], acct(4, 0));
}

#[test]
fn validate_accepts_an_empty_block() {
    let f = fixture();
    let (block, diff) = child_block(
        &f.genesis,
        &f.parent_state,
        lthash_of(&f.parent_state),
        addr(3),
        vec![],
    )
    .unwrap();
    assert_eq!(validate(&f, &block).unwrap(), diff);
    assert!(diff.accounts.is_empty());
    assert_eq!(diff.state_root(), f.genesis.state_root);
}

#[test]
fn validate_rejects_wrong_parent() {
    let f = fixture();
    let mut b = f.block.clone();
    b.header.parent_hash = Hash::derive("not the parent", &[]);
    assert_invalid_block(validate(&f, &b), "parent_hash");
}

#[test]
fn validate_rejects_wrong_height() {
    let f = fixture();
    for h in [0, 2, u64::MAX] {
        let mut b = f.block.clone();
        b.header.height = h;
        assert_invalid_block(validate(&f, &b), "height");
    }
    // a parent at u64::MAX has no child
    let mut parent = f.genesis.clone();
    parent.height = u64::MAX;
    let mut b = f.block.clone();
    b.header.parent_hash = parent.hash();
    assert_invalid_block(
        validate_block(
            &parent,
            &f.parent_state,
            lthash_of(&f.parent_state),
            &b,
            &LIMITS,
        ),
        "height",
    );
}

#[test]
fn validate_rejects_wrong_chain_id() {
    let f = fixture();
    let mut b = f.block.clone();
    b.header.chain_id = "other".into();
    assert_invalid_block(validate(&f, &b), "chain id");
}

#[test]
fn validate_rejects_a_body_that_is_not_the_headers() {
    let f = fixture();
    let mut b = f.block.clone();
    b.header.txs_root = Hash::derive("wrong", &[]);
    assert_body_mismatch(validate(&f, &b), "txs_root");
    let mut b = f.block.clone();
    b.header.signed_txs_root = Hash::derive("wrong", &[]);
    assert_body_mismatch(validate(&f, &b), "signed_txs_root");
    // reordering transactions changes the roots too
    let mut b = f.block.clone();
    b.transactions.swap(0, 2);
    assert_body_mismatch(validate(&f, &b), "txs_root");
    // dropping one
    let mut b = f.block.clone();
    b.transactions.pop();
    assert_body_mismatch(validate(&f, &b), "txs_root");
    // one signature bit: the ids (txs_root) still match, the signed root does not
    let mut b = f.block.clone();
    b.transactions[1].signature[0] ^= 1;
    assert_eq!(b.hash(), f.block.hash());
    assert_body_mismatch(validate(&f, &b), "signed_txs_root");
}

#[test]
fn validate_rejects_wrong_state_root() {
    let f = fixture();
    let mut b = f.block.clone();
    b.header.state_root = f.genesis.state_root;
    assert_invalid_block(validate(&f, &b), "state_root");
}

#[test]
fn validate_rejects_too_many_transactions_or_bytes() {
    let f = fixture();
    let tight = BlockLimits {
        block_txs_max: 2,
        block_bytes_max: 1 << 20,
    };
    let r = validate_block(
        &f.genesis,
        &f.parent_state,
        lthash_of(&f.parent_state),
        &f.block,
        &tight,
    );
    assert_invalid_block(r, "transactions, more than the limit of 2");
    let exact = BlockLimits {
        block_txs_max: 3,
        block_bytes_max: f.block.encode().len(),
    };
    validate_block(
        &f.genesis,
        &f.parent_state,
        lthash_of(&f.parent_state),
        &f.block,
        &exact,
    )
    .unwrap();
    let small = BlockLimits {
        block_txs_max: 3,
        block_bytes_max: f.block.encode().len() - 1,
    };
    let r = validate_block(
        &f.genesis,
        &f.parent_state,
        lthash_of(&f.parent_state),
        &f.block,
        &small,
    );
    assert_invalid_block(r, "bytes, more than the limit");
}

/// A state whose governance record holds `params` (the chain parameters in force).
struct Governed(
    BTreeMap<Address, Account>,
    std::sync::Arc<cairn_ledger::governance::Governance>,
);

impl StateReader for Governed {
    fn account(&self, address: &Address) -> Result<Account, LedgerError> {
        self.0.account(address)
    }
    fn governance(
        &self,
    ) -> Result<Option<std::sync::Arc<cairn_ledger::governance::Governance>>, LedgerError> {
        Ok(Some(self.1.clone()))
    }
}

fn governed(state: &BTreeMap<Address, Account>, txs_max: u64, bytes_max: u64) -> Governed {
    let params = cairn_ledger::ChainParams {
        block_txs_max: txs_max,
        block_bytes_max: bytes_max,
        ..Default::default()
    };
    Governed(
        state.clone(),
        std::sync::Arc::new(cairn_ledger::governance::Governance {
            members: vec![],
            threshold: 0,
            accounts: cairn_ledger::governance::AccountsPolicy::Open,
            proposal_ttl_blocks: 100,
            epoch: 0,
            validators: vec![],
            params,
            proposals: vec![],
            next_proposal_id: 1,
        }),
    )
}

#[test]
fn the_parent_states_governed_limits_apply_capped_by_the_ceiling() {
    let f = fixture();
    let len = f.block.encode().len();
    let ceiling = BlockLimits {
        block_txs_max: 3,
        block_bytes_max: 1 << 20,
    };
    let check = |parent: &Governed, ceiling: &BlockLimits| {
        validate_block(
            &f.genesis,
            parent,
            lthash_of(&f.parent_state),
            &f.block,
            ceiling,
        )
    };
    // The block (3 transactions) fits the governed limits: valid.
    check(&governed(&f.parent_state, 3, len as u64), &ceiling).unwrap();
    // Governance lowered the transaction limit below the block's count: invalid, although
    // the ceiling allows it.
    let r = check(&governed(&f.parent_state, 2, 1 << 20), &ceiling);
    assert_invalid_block(r, "transactions, more than the limit of 2");
    // ... or the byte limit.
    let r = check(&governed(&f.parent_state, 3, len as u64 - 1), &ceiling);
    assert_invalid_block(r, "bytes, more than the limit");
    // A governed value above the ceiling does not raise it.
    let low_ceiling = BlockLimits {
        block_txs_max: 2,
        block_bytes_max: 1 << 20,
    };
    let r = check(&governed(&f.parent_state, 1_000, 1 << 20), &low_ceiling);
    assert_invalid_block(r, "transactions, more than the limit of 2");
    assert_eq!(
        ceiling.at(&governed(&f.parent_state, 1_000, 512)).unwrap(),
        BlockLimits {
            block_txs_max: 3,
            block_bytes_max: 512
        }
    );
    // No governance record (a plain state): the ceiling itself.
    assert_eq!(ceiling.at(&f.parent_state).unwrap(), ceiling);
}

#[test]
fn validate_rejects_an_invalid_transaction_with_its_index() {
    let f = fixture();
    let mut b = f.block.clone();
    b.transactions[2] = transfer(1, addr(4), 7, 0, 0); // nonce 0 already used by tx 0
    reroot(&mut b);
    match validate(&f, &b) {
        Err(LedgerError::InvalidBlockTx {
            index: 2,
            error,
            height: 1,
            ..
        }) => {
            assert!(
                matches!(
                    *error,
                    LedgerError::StaleNonce {
                        expected: 1,
                        got: 0,
                        ..
                    }
                ),
                "{error:?}"
            )
        }
        other => panic!("expected InvalidBlockTx, got {other:?}"),
    }
}

#[test]
fn validate_checks_signatures_unless_told_not_to() {
    let f = fixture();
    let mut b = f.block.clone();
    b.transactions[1].signature[0] ^= 1;
    // A leader that signed this body: the transaction ids (txs_root) and the state are
    // unchanged, only the signature (and so signed_txs_root) differs.
    reroot(&mut b);
    assert_eq!(b.header.txs_root, f.block.header.txs_root);
    match validate(&f, &b) {
        Err(LedgerError::InvalidBlockTx {
            index: 1, error, ..
        }) => {
            assert!(
                matches!(*error, LedgerError::BadSignature { .. }),
                "{error:?}"
            )
        }
        other => panic!("expected InvalidBlockTx(BadSignature), got {other:?}"),
    }
    let lt = || lthash_of(&f.parent_state);
    let skip = validate_block_with(
        &f.genesis,
        &f.parent_state,
        lt(),
        &b,
        &LIMITS,
        SignatureCheck::Skip,
    );
    assert_eq!(skip.unwrap(), f.diff);
    let bad_hash = b.transactions[1].hash();
    let known_bad = |h: &Hash, _: &SignedTransaction| *h == bad_hash;
    let r = validate_block_with(
        &f.genesis,
        &f.parent_state,
        lt(),
        &b,
        &LIMITS,
        SignatureCheck::SkipVerified(&known_bad),
    );
    assert_eq!(r.unwrap(), f.diff);
    let known_other = |h: &Hash, _: &SignedTransaction| *h != bad_hash;
    let r = validate_block_with(
        &f.genesis,
        &f.parent_state,
        lt(),
        &b,
        &LIMITS,
        SignatureCheck::SkipVerified(&known_other),
    );
    assert!(
        matches!(r, Err(LedgerError::InvalidBlockTx { index: 1, .. })),
        "{r:?}"
    );
}

#[test]
fn validate_rejects_a_transaction_signed_by_someone_else() {
    let f = fixture();
    let mut b = f.block.clone();
    let forged = f.block.transactions[0].body.clone().sign(&key(9));
    b.transactions[0] = forged;
    reroot(&mut b);
    match validate(&f, &b) {
        Err(LedgerError::InvalidBlockTx {
            index: 0, error, ..
        }) => {
            assert!(matches!(*error, LedgerError::BadSignature { .. }))
        }
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

struct FailingReader;
impl StateReader for FailingReader {
    fn account(&self, _: &Address) -> Result<Account, LedgerError> {
        Err(LedgerError::Storage {
            reason: "disk on fire".into(),
        })
    }
}

#[test]
fn storage_errors_are_not_blamed_on_the_block() {
    let f = fixture();
    let r = validate_block(
        &f.genesis,
        &FailingReader,
        lthash_of(&f.parent_state),
        &f.block,
        &LIMITS,
    );
    assert!(matches!(r, Err(LedgerError::Storage { .. })), "{r:?}");
    let mut b = BlockBuilder::new(&FailingReader, LtHash::zero(), ctx(addr(3)));
    let err = b.apply(&transfer(1, addr(2), 1, 1, 0)).unwrap_err();
    assert!(err.is_fatal());
    assert_eq!(b.applied(), 0);
}

#[test]
fn execute_block_matches_builder() {
    let f = fixture();
    let diff = execute_block(&f.parent_state, lthash_of(&f.parent_state), &f.block).unwrap();
    let mut b = BlockBuilder::new(
        &f.parent_state,
        lthash_of(&f.parent_state),
        BlockContext::of_header(&f.block.header),
    );
    for tx in &f.block.transactions {
        b.apply(tx).unwrap();
    }
    assert_eq!(b.lthash(), diff.lthash);
    assert_eq!(b.finish(), diff);
}
