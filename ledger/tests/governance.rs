//! Governance through blocks and the store: permissioned transfers, grants and revokes,
//! member-only governance transactions, the state root covering governance and
//! permissions, persistence across a restart.

mod common;

use cairn_ledger::governance::{
    AccountsPolicy, GovAction, Governance, Permission, Permissions, ValidatorInfo, ed25519_peer_id,
};
use cairn_ledger::{
    Action, Address, Block, BlockBuilder, BlockContext, BlockHeader, BlockLimits, ChainParams,
    Hash, InitialState, Layered, LedgerError, SignedTransaction, StateReader, Store,
    TransactionBody, validate_block,
};
use common::*;

fn peer_id(i: u8) -> String {
    ed25519_peer_id(&[i; 32])
}

fn governance() -> Governance {
    Governance::genesis(
        vec![addr(1), addr(2)],
        2,
        AccountsPolicy::Permissioned,
        100,
        (0..4)
            .map(|i| ValidatorInfo {
                name: format!("v{i}"),
                consensus_key: addr(50 + i),
                peer_id: peer_id(i),
                voting_power: 1,
            })
            .collect(),
        ChainParams::default(),
    )
    .unwrap()
}

fn gov_tx(from: u8, nonce: u64, action: Action) -> SignedTransaction {
    TransactionBody {
        chain_id: CHAIN.into(),
        sender: addr(from),
        fee: 1,
        nonce,
        expiry_height: 1000,
        action,
    }
    .sign(&key(from))
}

struct Chain {
    _dir: tempfile::TempDir,
    store: Store,
    head: BlockHeader,
}

impl Chain {
    fn new() -> Chain {
        let accounts = vec![
            (addr(1), acct(1_000, 0)),
            (addr(2), acct(1_000, 0)),
            (addr(3), acct(1_000, 0)),
        ];
        let permissions = vec![(addr(1), Permissions::default().with(Permission::Transact))];
        let g = governance();
        let initial = InitialState {
            accounts: &accounts,
            permissions: &permissions,
            governance: Some(&g),
        };
        let mut header = genesis_header(&state(&accounts));
        header.state_root = initial.lthash().root();
        let genesis = Block {
            header: header.clone(),
            transactions: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), header.parent_hash).unwrap();
        store.init_genesis_state(&genesis, initial).unwrap();
        Chain {
            _dir: dir,
            store,
            head: header,
        }
    }

    fn builder(&self) -> BlockBuilder<'_> {
        BlockBuilder::new(
            &self.store,
            self.store.lthash().unwrap(),
            BlockContext {
                chain_id: CHAIN.into(),
                height: self.head.height + 1,
                proposer: addr(9),
            },
        )
    }

    /// Builds, validates and commits a block of `txs`; every one must apply.
    fn commit(&mut self, txs: Vec<SignedTransaction>) -> cairn_ledger::StateDiff {
        let (block, diff) = child_block(
            &self.head,
            &self.store,
            self.store.lthash().unwrap(),
            addr(9),
            txs,
        )
        .unwrap();
        let limits = BlockLimits {
            block_txs_max: 100,
            block_bytes_max: 1 << 20,
        };
        let checked = validate_block(
            &self.head,
            &self.store,
            self.store.lthash().unwrap(),
            &block,
            &limits,
        )
        .unwrap();
        assert_eq!(checked, diff);
        self.store.commit_block(&block, &diff, None).unwrap();
        self.head = block.header;
        diff
    }

    /// Applies `tx` to a fresh builder expecting a refusal with `code`; nothing changes.
    fn refused(&self, tx: &SignedTransaction, code: &str) {
        let mut b = self.builder();
        let before = b.lthash();
        let e = b.apply(tx).unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        assert_eq!(b.applied(), 0);
        assert_eq!(b.lthash(), before);
        let diff = b.finish();
        assert!(diff.accounts.is_empty() && diff.permissions.is_empty());
        assert!(diff.governance.is_none());
    }
}

#[test]
fn permissioned_transfers_follow_grants_and_revokes() {
    let mut chain = Chain::new();
    let grant = GovAction::Grant {
        account: addr(3),
        permission: Permission::Transact,
    };
    // Without `transact`, addr(3) may not send; addr(1) may.
    chain.refused(&transfer(3, addr(4), 5, 1, 0), "not_permitted");
    chain.commit(vec![transfer(1, addr(4), 5, 1, 0)]);

    // A non-member may not propose; a member proposes, another approves.
    chain.refused(&gov_tx(3, 0, Action::Propose(grant.clone())), "not_member");
    let diff = chain.commit(vec![gov_tx(1, 1, Action::Propose(grant.clone()))]);
    let g = diff.governance.expect("a proposal changes the record");
    assert_eq!(g.proposals.len(), 1);
    assert!(diff.permissions.is_empty(), "not executed yet");
    chain.refused(
        &gov_tx(1, 2, Action::Approve { proposal_id: 1 }),
        "already_approved",
    );
    chain.refused(
        &gov_tx(2, 0, Action::Approve { proposal_id: 7 }),
        "unknown_proposal",
    );
    let diff = chain.commit(vec![gov_tx(2, 0, Action::Approve { proposal_id: 1 })]);
    assert_eq!(
        diff.permissions.get(&addr(3)),
        Some(&Permissions::default().with(Permission::Transact))
    );
    assert!(!diff.validators_changed);
    assert_eq!(
        chain.store.permissions(&addr(3)).unwrap(),
        Permissions::default().with(Permission::Transact)
    );
    // The fee moved to the proposer; the member's nonce moved on.
    assert_eq!(chain.store.account(&addr(2)).unwrap(), acct(999, 1));

    chain.commit(vec![transfer(3, addr(4), 5, 1, 0)]);
    assert_eq!(chain.store.account(&addr(4)).unwrap().balance, 10);

    let revoke = GovAction::Revoke {
        account: addr(3),
        permission: Permission::Transact,
    };
    chain.commit(vec![
        gov_tx(1, 2, Action::Propose(revoke)),
        gov_tx(2, 1, Action::Approve { proposal_id: 2 }),
    ]);
    assert_eq!(
        chain.store.permissions(&addr(3)).unwrap(),
        Permissions::default()
    );
    chain.refused(&transfer(3, addr(4), 5, 1, 1), "not_permitted");
    // The stored state hash still equals the one recomputed from scratch.
    chain.store.recompute_lthash().unwrap();
}

#[test]
fn validator_changes_are_flagged_and_survive_a_restart() {
    let mut chain = Chain::new();
    let add = GovAction::AddValidator(ValidatorInfo {
        name: "v4".into(),
        consensus_key: addr(60),
        peer_id: peer_id(4),
        voting_power: 1,
    });
    let remove = GovAction::RemoveValidator {
        consensus_key: addr(51),
    };
    assert_eq!(
        chain
            .store
            .epoch_record(0)
            .unwrap()
            .unwrap()
            .validators
            .len(),
        4
    );
    chain.commit(vec![gov_tx(1, 0, Action::Propose(add))]);
    assert_eq!(chain.store.governance().unwrap().unwrap().epoch, 0);
    // Two set changes in one block: one boundary, one epoch bump.
    let diff = chain.commit(vec![
        gov_tx(2, 0, Action::Approve { proposal_id: 1 }),
        gov_tx(1, 1, Action::Propose(remove)),
        gov_tx(2, 1, Action::Approve { proposal_id: 2 }),
    ]);
    assert!(diff.validators_changed);
    let g = chain.store.governance().unwrap().unwrap();
    assert_eq!(g.epoch, 1);
    let names: Vec<&str> = g.validators.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["v0", "v2", "v3", "v4"]);
    // The epoch records: epoch 0 from genesis, epoch 1 from the boundary at height 2.
    let e0 = chain.store.epoch_record(0).unwrap().unwrap();
    let e1 = chain.store.epoch_record(1).unwrap().unwrap();
    assert_eq!((e0.first_height, e0.validators.len()), (1, 4));
    assert_eq!((e1.first_height, e1.anchor), (3, chain.head.hash()));
    assert_eq!(e1.validators, g.validators);
    assert!(chain.store.epoch_record(2).unwrap().is_none());
    for (height, epoch) in [(0, 0), (1, 0), (2, 0), (3, 1), (99, 1)] {
        assert_eq!(
            chain.store.epoch_at_height(height).unwrap().unwrap().epoch,
            epoch,
            "height {height}"
        );
    }
    // A block without a set change is no boundary.
    let diff = chain.commit(vec![gov_tx(
        1,
        2,
        Action::Transfer {
            recipient: addr(2),
            amount: 1,
        },
    )]);
    assert!(!diff.validators_changed);
    assert_eq!(chain.store.governance().unwrap().unwrap().epoch, 1);

    // A layered reader on top of the store sees the newest record of its diffs.
    let empty = cairn_ledger::StateDiff::empty(chain.store.lthash().unwrap());
    let layered = Layered::new(&chain.store, vec![&diff, &empty]);
    assert_eq!(
        layered.governance().unwrap().unwrap().validators,
        g.validators
    );

    // Reopen: the record comes back from disk, and the state hash matches.
    let Chain {
        _dir: dir, store, ..
    } = chain;
    let genesis_hash = store.genesis_hash();
    drop(store);
    let store = Store::open(dir.path(), genesis_hash).unwrap();
    assert_eq!(store.governance().unwrap().unwrap(), g);
    store.recompute_lthash().unwrap();
}

#[test]
fn a_block_with_a_forged_governance_state_root_is_invalid() {
    let chain = Chain::new();
    let grant = GovAction::Grant {
        account: addr(3),
        permission: Permission::Transact,
    };
    let (mut block, _) = child_block(
        &chain.head,
        &chain.store,
        chain.store.lthash().unwrap(),
        addr(9),
        vec![
            gov_tx(1, 0, Action::Propose(grant)),
            gov_tx(2, 0, Action::Approve { proposal_id: 1 }),
        ],
    )
    .unwrap();
    block.header.state_root = Hash::derive("forged", &[]);
    let limits = BlockLimits {
        block_txs_max: 100,
        block_bytes_max: 1 << 20,
    };
    let e = validate_block(
        &chain.head,
        &chain.store,
        chain.store.lthash().unwrap(),
        &block,
        &limits,
    )
    .unwrap_err();
    assert!(matches!(e, LedgerError::InvalidBlock { .. }), "{e}");
}

#[test]
fn a_state_without_governance_refuses_governance_transactions() {
    let parent = state(&[(addr(1), acct(100, 0))]);
    let mut b = BlockBuilder::new(
        &parent,
        lthash_of(&parent),
        BlockContext {
            chain_id: CHAIN.into(),
            height: 1,
            proposer: addr(9),
        },
    );
    let e = b
        .apply(&gov_tx(1, 0, Action::Approve { proposal_id: 1 }))
        .unwrap_err();
    assert_eq!(e.code(), "governance_disabled");
    // Transfers are open.
    b.apply(&transfer(1, Address([4; 32]), 5, 1, 0)).unwrap();
}
