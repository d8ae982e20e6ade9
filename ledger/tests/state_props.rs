//! Property tests: random transfer sequences over several blocks. The incremental LtHash
//! equals the hash recomputed from scratch, supply is conserved, results agree with an
//! independent reference model, and a rejected transaction changes nothing.

mod common;

use std::collections::BTreeMap;

use cairn_ledger::{
    Account, Address, BlockBuilder, BlockContext, Layered, LtHash, SignedTransaction, StateDiff,
    StateReader, TransactionBody,
};
use common::*;
use proptest::prelude::*;

const N: usize = 5;

fn address(i: usize) -> Address {
    let mut a = [0u8; 32];
    a[0] = i as u8;
    a[31] = 0xa5;
    Address(a)
}

#[derive(Clone, Debug)]
struct Op {
    from: usize,
    to: usize,
    amount: u64,
    fee: u64,
    nonce_offset: i8,
    expired: bool,
}

fn balance() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..1_000,
        3 => 0u64..1_000_000,
        1 => (u64::MAX - 1_000)..=u64::MAX,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..N,
        0..N,
        prop_oneof![6 => 0u64..500, 2 => 0u64..100_000, 1 => Just(u64::MAX), 1 => (u64::MAX - 1000)..=u64::MAX],
        prop_oneof![6 => 0u64..20, 1 => 0u64..100_000, 1 => Just(u64::MAX)],
        prop_oneof![8 => Just(0i8), 1 => Just(-1i8), 1 => Just(1i8)],
        proptest::bool::weighted(0.05),
    )
        .prop_map(|(from, to, amount, fee, nonce_offset, expired)| Op { from, to, amount, fee, nonce_offset, expired })
}

/// Reference model of the transaction rules, written independently of `BlockBuilder`:
/// returns the error code or applies the transfer to `state`.
fn model_apply(
    state: &mut BTreeMap<Address, Account>,
    height: u64,
    proposer: Address,
    body: &TransactionBody,
) -> Result<(), &'static str> {
    if body.chain_id != CHAIN {
        return Err("wrong_chain");
    }
    if body.expiry_height < height {
        return Err("expired");
    }
    let get = |s: &BTreeMap<Address, Account>, a: &Address| s.get(a).copied().unwrap_or_default();
    let sender = get(state, &body.sender);
    if body.nonce < sender.nonce {
        return Err("stale_nonce");
    }
    if body.nonce > sender.nonce {
        return Err("future_nonce");
    }
    if sender.nonce == u64::MAX {
        return Err("nonce_exhausted");
    }
    let (recipient, amount) = (body.recipient().expect("transfers only"), body.amount());
    if u128::from(amount) + u128::from(body.fee) > u128::from(sender.balance) {
        return Err("insufficient_balance");
    }
    let mut next = state.clone();
    next.insert(
        body.sender,
        Account {
            balance: sender.balance - amount - body.fee,
            nonce: sender.nonce + 1,
        },
    );
    let r = get(&next, &recipient);
    let r_bal = r.balance.checked_add(amount).ok_or("balance_overflow")?;
    next.insert(
        recipient,
        Account {
            balance: r_bal,
            nonce: r.nonce,
        },
    );
    let p = get(&next, &proposer);
    let p_bal = p.balance.checked_add(body.fee).ok_or("balance_overflow")?;
    next.insert(
        proposer,
        Account {
            balance: p_bal,
            nonce: p.nonce,
        },
    );
    next.retain(|_, a| !a.is_empty());
    *state = next;
    Ok(())
}

fn materialize(
    base: &BTreeMap<Address, Account>,
    diffs: &[StateDiff],
) -> BTreeMap<Address, Account> {
    let mut s = base.clone();
    for d in diffs {
        apply_diff(&mut s, d);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn incremental_lthash_matches_scratch_and_supply_is_conserved(
        balances in proptest::collection::vec(balance(), N),
        nonces in proptest::collection::vec(prop_oneof![9 => Just(0u64), 1 => Just(u64::MAX)], N),
        blocks in proptest::collection::vec((proptest::collection::vec(op(), 0..12), 0..N), 1..6),
    ) {
        let genesis: BTreeMap<Address, Account> = (0..N)
            .map(|i| (address(i), Account { balance: balances[i], nonce: nonces[i] }))
            .filter(|(_, a)| !a.is_empty())
            .collect();
        let supply0 = supply(&genesis);
        let mut lthash = lthash_of(&genesis);
        let mut model = genesis.clone();
        let mut diffs: Vec<StateDiff> = Vec::new();

        for (height, (ops, proposer_idx)) in (1u64..).zip(&blocks) {
            let proposer = address(*proposer_idx);
            let layered = Layered::new(&genesis, diffs.iter().collect());
            prop_assert_eq!(&layered.lthash(&lthash_of(&genesis)), &lthash);
            let mut builder = BlockBuilder::new(&layered, lthash.clone(),
                BlockContext { chain_id: CHAIN.into(), height, proposer });
            for op in ops {
                let sender = builder.account(&address(op.from)).unwrap();
                let body = TransactionBody {
                    chain_id: CHAIN.into(),
                    sender: address(op.from),
                    fee: op.fee,
                    nonce: sender.nonce.wrapping_add_signed(op.nonce_offset.into()),
                    expiry_height: if op.expired { height - 1 } else { height + 5 },
                    action: cairn_ledger::Action::Transfer { recipient: address(op.to), amount: op.amount },
                };
                let tx = SignedTransaction { body: body.clone(), signature: [0u8; 64] };
                let before: Vec<Account> = (0..N).map(|i| builder.account(&address(i)).unwrap()).collect();
                let applied_before = builder.applied();
                let expected = model_apply(&mut model, height, proposer, &body);
                let got = builder.apply(&tx);
                match (&expected, &got) {
                    (Ok(()), Ok(())) => prop_assert_eq!(builder.applied(), applied_before + 1),
                    (Err(code), Err(e)) => {
                        prop_assert_eq!(*code, e.code());
                        prop_assert_eq!(builder.applied(), applied_before);
                        let after: Vec<Account> = (0..N).map(|i| builder.account(&address(i)).unwrap()).collect();
                        prop_assert_eq!(before, after);
                    }
                    _ => prop_assert!(false, "model {:?} vs builder {:?} for {:?}", expected, got, body),
                }
                for i in 0..N {
                    let a = address(i);
                    prop_assert_eq!(builder.account(&a).unwrap(), model.get(&a).copied().unwrap_or_default());
                }
                // the running hash equals the model's hash at every step
                prop_assert_eq!(builder.lthash(), lthash_of(&model));
            }
            let diff = builder.finish();
            lthash = diff.lthash.clone();
            diffs.push(diff);
            let full = materialize(&genesis, &diffs);
            prop_assert_eq!(&full, &model);
            prop_assert_eq!(&lthash, &lthash_of(&full));
            prop_assert_eq!(&LtHash::of_accounts(full.iter()).root(), &diffs.last().unwrap().state_root());
            prop_assert_eq!(supply(&full), supply0);
        }
        // a diff never lists an account it did not change
        let mut state = genesis.clone();
        for d in &diffs {
            for (a, acc) in &d.accounts {
                prop_assert_ne!(state.account(a).unwrap(), *acc);
            }
            apply_diff(&mut state, d);
        }
    }

    #[test]
    fn lthash_is_order_independent(
        entries in proptest::collection::btree_map(any::<[u8; 32]>(), (any::<u64>(), any::<u64>()), 0..20),
        seed in any::<u64>(),
    ) {
        let accounts: Vec<(Address, Account)> =
            entries.iter().map(|(a, (b, n))| (Address(*a), Account { balance: *b, nonce: *n })).collect();
        let forward = LtHash::of_accounts(accounts.iter().map(|(a, acc)| (a, acc)));
        let mut shuffled = accounts.clone();
        // deterministic shuffle
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut incremental = LtHash::zero();
        for (a, acc) in &shuffled {
            incremental.update(a, &Account::default(), acc);
        }
        prop_assert_eq!(&forward, &incremental);
        for (a, acc) in &accounts {
            incremental.update(a, acc, &Account::default());
        }
        prop_assert_eq!(incremental, LtHash::zero());
    }
}
