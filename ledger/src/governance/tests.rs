//! Step tests of the governance rules: every refusal reason, execution at the threshold,
//! expiry, re-checks at execution, and a property test that refused transactions change
//! nothing and accepted ones keep every invariant.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey};

use super::*;

const CHAIN: &str = "gov-test";

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&blake3::derive_key("gov test key", &[i]))
}

fn addr(i: u8) -> Address {
    Address::from_public_key(&key(i).verifying_key())
}

fn peer_id(i: u8) -> String {
    ed25519_peer_id(&blake3::derive_key("gov test peer", &[i]))
}

fn validator(i: u8, power: u64) -> ValidatorInfo {
    ValidatorInfo {
        name: format!("v{i}"),
        consensus_key: addr(100 + i),
        peer_id: peer_id(i),
        voting_power: power,
    }
}

/// Members 1, 2, 3 with threshold `k`, validators 0..n with power 1.
fn gov(k: u32, n: u8) -> Governance {
    Governance::genesis(
        vec![addr(3), addr(1), addr(2)],
        k,
        AccountsPolicy::Open,
        10,
        (0..n).map(|i| validator(i, 1)).collect(),
        ChainParams::default(),
    )
    .unwrap()
}

fn ctx(height: u64) -> GovContext<'static> {
    GovContext {
        chain_id: CHAIN,
        height,
    }
}

fn refused(r: Result<GovOutcome, GovError>) -> GovernanceError {
    match r {
        Err(GovError::Refused(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Proposes with member 1 and approves with members 2.. until executed; panics on refusal.
fn pass(
    g: &mut Governance,
    height: u64,
    action: GovAction,
    perms: &mut BTreeMap<Address, Permissions>,
) -> GovOutcome {
    let mut out = g.propose(ctx(height), addr(1), action, perms).unwrap();
    let mut member = 2;
    while !out.executed {
        out = g
            .approve(ctx(height), addr(member), out.proposal_id, perms)
            .unwrap();
        member += 1;
    }
    out
}

#[test]
fn genesis_checks_members_and_threshold() {
    let v = vec![validator(0, 1)];
    let p = ChainParams::default();
    let g = |m: Vec<Address>, k| {
        Governance::genesis(m, k, AccountsPolicy::Open, 10, v.clone(), p.clone())
    };
    assert!(
        g(vec![], 0).is_ok(),
        "no members, threshold 0: governance disabled"
    );
    assert!(matches!(
        g(vec![], 1),
        Err(GovernanceError::BadMembers { .. })
    ));
    assert!(matches!(
        g(vec![addr(1)], 0),
        Err(GovernanceError::BadMembers { .. })
    ));
    assert!(matches!(
        g(vec![addr(1)], 2),
        Err(GovernanceError::BadMembers { .. })
    ));
    assert!(matches!(
        g(vec![addr(1), addr(1)], 1),
        Err(GovernanceError::BadMembers { .. })
    ));
    let many: Vec<Address> = (0..=MEMBERS_MAX as u8).map(addr).collect();
    assert!(matches!(
        g(many, 1),
        Err(GovernanceError::BadMembers { .. })
    ));
    // Genesis is authoritative: one validator is fine, a structural error is not.
    let mut bad = validator(1, 1);
    bad.name = "no spaces allowed".into();
    assert!(matches!(
        Governance::genesis(vec![], 0, AccountsPolicy::Open, 10, vec![bad], p.clone()),
        Err(GovernanceError::BadField { field: "name", .. })
    ));
    let mut bad = validator(1, 1);
    bad.peer_id = "12D3KooWnotapeer".into();
    assert!(matches!(
        Governance::genesis(vec![], 0, AccountsPolicy::Open, 10, vec![bad], p.clone()),
        Err(GovernanceError::BadField {
            field: "peer_id",
            ..
        })
    ));
    assert!(matches!(
        Governance::genesis(vec![], 0, AccountsPolicy::Open, 0, v.clone(), p),
        Err(GovernanceError::Invalid { .. })
    ));
}

#[test]
fn disabled_governance_and_non_members_are_refused_without_change() {
    let mut perms = BTreeMap::new();
    let mut off = Governance::genesis(
        vec![],
        0,
        AccountsPolicy::Open,
        10,
        (0..4).map(|i| validator(i, 1)).collect(),
        ChainParams::default(),
    )
    .unwrap();
    let before = off.clone();
    let e = refused(off.propose(
        ctx(1),
        addr(1),
        GovAction::AddValidator(validator(9, 1)),
        &mut perms,
    ));
    assert_eq!(e, GovernanceError::Disabled);
    assert_eq!(off, before);

    let mut g = gov(2, 4);
    let before = g.clone();
    let e = refused(g.propose(
        ctx(1),
        addr(9),
        GovAction::AddValidator(validator(9, 1)),
        &mut perms,
    ));
    assert_eq!(e, GovernanceError::NotMember { account: addr(9) });
    assert_eq!(e.code(), "not_member");
    assert_eq!(g, before);
}

#[test]
fn an_action_executes_when_approvals_reach_the_threshold() {
    let mut perms = BTreeMap::new();
    let mut g = gov(2, 4);
    let out = g
        .propose(
            ctx(5),
            addr(1),
            GovAction::AddValidator(validator(4, 1)),
            &mut perms,
        )
        .unwrap();
    assert_eq!(
        out,
        GovOutcome {
            proposal_id: 1,
            executed: false,
            validators_changed: false
        }
    );
    assert_eq!(g.validators.len(), 4);
    assert_eq!(g.proposal(1).unwrap().approvals, vec![addr(1)]);
    assert_eq!(g.proposal(1).unwrap().expiry_height, 15);

    let before = g.clone();
    let e = refused(g.approve(ctx(6), addr(1), 1, &mut perms));
    assert_eq!(
        e,
        GovernanceError::AlreadyApproved {
            id: 1,
            member: addr(1)
        }
    );
    assert_eq!(g, before);

    let out = g.approve(ctx(6), addr(3), 1, &mut perms).unwrap();
    assert_eq!(
        out,
        GovOutcome {
            proposal_id: 1,
            executed: true,
            validators_changed: true
        }
    );
    assert_eq!(g.validators.len(), 5);
    assert_eq!(g.validators[4], validator(4, 1));
    assert!(g.proposals.is_empty());
    assert_eq!(g.next_proposal_id, 2);

    let e = refused(g.approve(ctx(7), addr(2), 1, &mut perms));
    assert_eq!(e, GovernanceError::UnknownProposal { id: 1 });
    g.validate().unwrap();
}

#[test]
fn a_threshold_of_one_executes_on_propose() {
    let mut perms = BTreeMap::new();
    let mut g = gov(1, 4);
    let out = g
        .propose(
            ctx(1),
            addr(2),
            GovAction::AddValidator(validator(4, 1)),
            &mut perms,
        )
        .unwrap();
    assert!(out.executed && out.validators_changed);
    assert_eq!(g.validators.len(), 5);
}

#[test]
fn expired_proposals_cannot_execute_and_are_pruned() {
    let mut perms = BTreeMap::new();
    let mut g = gov(2, 4);
    g.propose(
        ctx(5),
        addr(1),
        GovAction::AddValidator(validator(4, 1)),
        &mut perms,
    )
    .unwrap();
    // ttl 10: open through height 15.
    let before = g.clone();
    let e = refused(g.approve(ctx(16), addr(2), 1, &mut perms));
    assert_eq!(
        e,
        GovernanceError::Expired {
            id: 1,
            expiry_height: 15,
            height: 16
        }
    );
    assert_eq!(g, before);
    // The next governance transaction prunes it.
    g.propose(
        ctx(16),
        addr(1),
        GovAction::AddValidator(validator(5, 1)),
        &mut perms,
    )
    .unwrap();
    assert!(g.proposal(1).is_none());
    assert!(g.proposal(2).is_some());
    // At the last open height it still executes.
    let out = g.approve(ctx(26), addr(2), 2, &mut perms).unwrap();
    assert!(out.executed);
}

#[test]
fn open_proposals_are_bounded() {
    let mut perms = BTreeMap::new();
    let mut g = gov(3, 4);
    for i in 0..PROPOSALS_OPEN_MAX {
        let mut v = validator(60, 1);
        v.name = format!("n{i}");
        g.propose(ctx(1), addr(1), GovAction::AddValidator(v), &mut perms)
            .unwrap();
    }
    let before = g.clone();
    let e = refused(g.propose(
        ctx(1),
        addr(2),
        GovAction::AddValidator(validator(9, 1)),
        &mut perms,
    ));
    assert_eq!(
        e,
        GovernanceError::TooManyProposals {
            max: PROPOSALS_OPEN_MAX
        }
    );
    assert_eq!(g, before);
    // Once they expire there is room again.
    g.propose(
        ctx(12),
        addr(2),
        GovAction::AddValidator(validator(9, 1)),
        &mut perms,
    )
    .unwrap();
    assert_eq!(g.proposals.len(), 1);
}

#[test]
fn removals_keep_at_least_four_validators() {
    let mut perms = BTreeMap::new();
    let mut g = gov(1, 4);
    let before = g.clone();
    let e = refused(g.propose(
        ctx(1),
        addr(1),
        GovAction::RemoveValidator {
            consensus_key: addr(100),
        },
        &mut perms,
    ));
    assert_eq!(e, GovernanceError::TooFewValidators { count: 3, min: 4 });
    assert_eq!(e.code(), "too_few_validators");
    assert_eq!(g, before);

    pass(
        &mut g,
        1,
        GovAction::AddValidator(validator(4, 1)),
        &mut perms,
    );
    let out = pass(
        &mut g,
        2,
        GovAction::RemoveValidator {
            consensus_key: addr(100),
        },
        &mut perms,
    );
    assert!(out.validators_changed);
    assert_eq!(g.validators.len(), 4);
    assert!(g.validators.iter().all(|v| v.consensus_key != addr(100)));

    let e = refused(g.propose(
        ctx(3),
        addr(1),
        GovAction::RemoveValidator {
            consensus_key: addr(100),
        },
        &mut perms,
    ));
    assert_eq!(e, GovernanceError::UnknownValidator { key: addr(100) });
}

#[test]
fn small_sets_grow_one_validator_at_a_time() {
    let mut perms = BTreeMap::new();
    let mut g = gov(1, 1);
    for i in 1..6 {
        pass(
            &mut g,
            u64::from(i),
            GovAction::AddValidator(validator(i, 1)),
            &mut perms,
        );
    }
    assert_eq!(g.validators.len(), 6);
}

#[test]
fn no_validator_may_hold_a_third_of_the_power() {
    let mut perms = BTreeMap::new();
    let mut g = gov(1, 4);
    // 4 validators of power 1: power 2 gives 2 of 5 (≥ 1/3).
    let before = g.clone();
    let e = refused(g.propose(
        ctx(1),
        addr(1),
        GovAction::SetVotingPower {
            consensus_key: addr(100),
            voting_power: 2,
        },
        &mut perms,
    ));
    assert_eq!(
        e,
        GovernanceError::PowerConcentrated {
            name: "v0".into(),
            power: 2,
            total: 5
        }
    );
    assert_eq!(g, before);
    // Adding a heavy validator is refused the same way.
    let e = refused(g.propose(
        ctx(1),
        addr(1),
        GovAction::AddValidator(validator(4, 3)),
        &mut perms,
    ));
    assert!(matches!(
        e,
        GovernanceError::PowerConcentrated {
            power: 3,
            total: 7,
            ..
        }
    ));
    // 5 validators: power 2 is 2 of 6, exactly a third: still refused.
    pass(
        &mut g,
        2,
        GovAction::AddValidator(validator(4, 1)),
        &mut perms,
    );
    let e = refused(g.propose(
        ctx(3),
        addr(1),
        GovAction::SetVotingPower {
            consensus_key: addr(100),
            voting_power: 2,
        },
        &mut perms,
    ));
    assert!(matches!(
        e,
        GovernanceError::PowerConcentrated {
            power: 2,
            total: 6,
            ..
        }
    ));
    // 6 validators: 2 of 7 is below a third.
    pass(
        &mut g,
        4,
        GovAction::AddValidator(validator(5, 1)),
        &mut perms,
    );
    pass(
        &mut g,
        5,
        GovAction::SetVotingPower {
            consensus_key: addr(100),
            voting_power: 2,
        },
        &mut perms,
    );
    assert_eq!(g.validators[0].voting_power, 2);
    let e = refused(g.propose(
        ctx(6),
        addr(1),
        GovAction::SetVotingPower {
            consensus_key: addr(100),
            voting_power: 2,
        },
        &mut perms,
    ));
    assert!(matches!(e, GovernanceError::NoChange { .. }));
    let e = refused(g.propose(
        ctx(6),
        addr(1),
        GovAction::SetVotingPower {
            consensus_key: addr(101),
            voting_power: 0,
        },
        &mut perms,
    ));
    assert_eq!(e, GovernanceError::ZeroPower);
}

#[test]
fn duplicates_and_bad_keys_are_refused() {
    let mut perms = BTreeMap::new();
    let mut g = gov(1, 4);
    let before = g.clone();
    let mut v = validator(9, 1);
    v.consensus_key = addr(100);
    assert_eq!(
        refused(g.propose(ctx(1), addr(1), GovAction::AddValidator(v), &mut perms)),
        GovernanceError::DuplicateKey { key: addr(100) }
    );
    let mut v = validator(9, 1);
    v.name = "v0".into();
    assert_eq!(
        refused(g.propose(ctx(1), addr(1), GovAction::AddValidator(v), &mut perms)),
        GovernanceError::DuplicateName { name: "v0".into() }
    );
    let mut v = validator(9, 1);
    v.peer_id = peer_id(0);
    assert_eq!(
        refused(g.propose(ctx(1), addr(1), GovAction::AddValidator(v), &mut perms)),
        GovernanceError::DuplicatePeerId {
            peer_id: peer_id(0)
        }
    );
    // The identity point is a valid encoding of small order.
    let mut v = validator(9, 1);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    v.consensus_key = Address(identity);
    assert_eq!(
        refused(g.propose(ctx(1), addr(1), GovAction::AddValidator(v), &mut perms)),
        GovernanceError::BadKey {
            key: Address(identity)
        }
    );
    assert_eq!(g, before);
}

#[test]
fn a_key_rotation_needs_the_current_keys_signature() {
    let mut perms = BTreeMap::new();
    let mut g = gov(1, 4);
    let current = key(100);
    let new_key = addr(150);
    let digest = rotation_digest(CHAIN, &addr(100), &new_key);
    let good = current.sign(digest.as_bytes()).to_bytes();
    // Signed by another key, or over another chain id: refused.
    let wrong_signer = key(101).sign(digest.as_bytes()).to_bytes();
    let other_chain = current
        .sign(rotation_digest("other", &addr(100), &new_key).as_bytes())
        .to_bytes();
    let before = g.clone();
    for signature in [wrong_signer, other_chain] {
        let e = refused(g.propose(
            ctx(1),
            addr(1),
            GovAction::RotateKey {
                consensus_key: addr(100),
                new_key,
                signature,
            },
            &mut perms,
        ));
        assert_eq!(e, GovernanceError::BadRotationSignature { key: addr(100) });
    }
    // Rotating onto another validator's key: refused.
    let onto_other = current
        .sign(rotation_digest(CHAIN, &addr(100), &addr(101)).as_bytes())
        .to_bytes();
    let e = refused(g.propose(
        ctx(1),
        addr(1),
        GovAction::RotateKey {
            consensus_key: addr(100),
            new_key: addr(101),
            signature: onto_other,
        },
        &mut perms,
    ));
    assert_eq!(e, GovernanceError::DuplicateKey { key: addr(101) });
    assert_eq!(g, before);

    let out = pass(
        &mut g,
        1,
        GovAction::RotateKey {
            consensus_key: addr(100),
            new_key,
            signature: good,
        },
        &mut perms,
    );
    assert!(out.validators_changed);
    assert_eq!(g.validators[0].consensus_key, new_key);
    assert_eq!(g.validators[0].name, "v0");
}

#[test]
fn grants_and_revokes_change_permissions_and_policy_decides() {
    let mut perms = BTreeMap::new();
    let mut g = gov(2, 4);
    g.accounts = AccountsPolicy::Permissioned;
    let alice = addr(50);
    assert!(!g.may_transact(perms.permissions(&alice).unwrap()));
    let out = pass(
        &mut g,
        1,
        GovAction::Grant {
            account: alice,
            permission: Permission::Transact,
        },
        &mut perms,
    );
    assert!(out.executed && !out.validators_changed);
    assert!(g.may_transact(perms.permissions(&alice).unwrap()));
    let before = (g.clone(), perms.clone());
    let e = refused(g.propose(
        ctx(2),
        addr(1),
        GovAction::Grant {
            account: alice,
            permission: Permission::Transact,
        },
        &mut perms,
    ));
    assert!(matches!(e, GovernanceError::NoChange { .. }));
    assert_eq!((g.clone(), perms.clone()), before);
    pass(
        &mut g,
        3,
        GovAction::Revoke {
            account: alice,
            permission: Permission::Transact,
        },
        &mut perms,
    );
    assert!(!g.may_transact(perms.permissions(&alice).unwrap()));
    assert!(
        perms.is_empty(),
        "an account without permissions leaves no entry"
    );
    g.accounts = AccountsPolicy::Open;
    assert!(g.may_transact(Permissions::default()));
}

#[test]
fn a_member_change_drops_former_members_approvals() {
    let mut perms = BTreeMap::new();
    let mut g = gov(2, 4);
    // Proposal 1 approved by member 3 only.
    g.propose(
        ctx(1),
        addr(3),
        GovAction::AddValidator(validator(4, 1)),
        &mut perms,
    )
    .unwrap();
    // Members become {1, 2} with threshold 2.
    pass(
        &mut g,
        2,
        GovAction::SetMembers {
            members: vec![addr(2), addr(1)],
            threshold: 2,
        },
        &mut perms,
    );
    let mut want = vec![addr(1), addr(2)];
    want.sort();
    assert_eq!(g.members, want);
    assert!(g.proposal(1).unwrap().approvals.is_empty());
    // Member 1's approval alone no longer reaches the threshold.
    let out = g.approve(ctx(3), addr(1), 1, &mut perms).unwrap();
    assert!(!out.executed);
    let e = refused(g.approve(ctx(3), addr(3), 1, &mut perms));
    assert_eq!(e, GovernanceError::NotMember { account: addr(3) });
    for (members, threshold) in [(vec![], 1), (vec![addr(1)], 2), (vec![addr(1), addr(1)], 1)] {
        let e = refused(g.propose(
            ctx(3),
            addr(1),
            GovAction::SetMembers { members, threshold },
            &mut perms,
        ));
        assert!(matches!(e, GovernanceError::BadMembers { .. }), "{e:?}");
    }
    g.validate().unwrap();
}

#[test]
fn parameter_changes_are_range_checked() {
    let mut perms = BTreeMap::new();
    let mut g = gov(1, 4);
    let before = g.clone();
    let e = refused(g.propose(
        ctx(1),
        addr(1),
        GovAction::SetParams(ParamsUpdate {
            block_txs_max: Some(0),
            ..Default::default()
        }),
        &mut perms,
    ));
    assert!(matches!(
        e,
        GovernanceError::Param(ParamError {
            field: "block_txs_max",
            ..
        })
    ));
    let e = refused(g.propose(
        ctx(1),
        addr(1),
        GovAction::SetParams(ParamsUpdate::default()),
        &mut perms,
    ));
    assert!(matches!(e, GovernanceError::NoChange { .. }));
    // A leader timeout above the notarization timeout would stop every node applying it.
    let e = refused(g.propose(
        ctx(1),
        addr(1),
        GovAction::SetParams(ParamsUpdate {
            leader_timeout_ms: Some(ChainParams::default().notarization_timeout_ms + 1),
            ..Default::default()
        }),
        &mut perms,
    ));
    assert!(matches!(
        e,
        GovernanceError::Param(ParamError {
            field: "leader_timeout_ms",
            ..
        })
    ));
    assert_eq!(g, before);
    pass(
        &mut g,
        1,
        GovAction::SetParams(ParamsUpdate {
            block_txs_max: Some(5_000),
            ..Default::default()
        }),
        &mut perms,
    );
    assert_eq!(g.params.block_txs_max, 5_000);
    assert_eq!(
        g.params.block_bytes_max,
        ChainParams::default().block_bytes_max
    );
}

#[test]
fn an_action_is_checked_again_when_it_executes() {
    let mut perms = BTreeMap::new();
    let mut g = gov(2, 4);
    // Two proposals add validators with the same key; the second cannot execute after the first.
    g.propose(
        ctx(1),
        addr(1),
        GovAction::AddValidator(validator(4, 1)),
        &mut perms,
    )
    .unwrap();
    let mut twin = validator(4, 1);
    twin.name = "twin".into();
    twin.peer_id = peer_id(77);
    g.propose(ctx(1), addr(1), GovAction::AddValidator(twin), &mut perms)
        .unwrap();
    g.approve(ctx(2), addr(2), 1, &mut perms).unwrap();
    let before = g.clone();
    let e = refused(g.approve(ctx(2), addr(2), 2, &mut perms));
    assert_eq!(e, GovernanceError::DuplicateKey { key: addr(104) });
    assert_eq!(g, before, "a refused final approval records nothing");
}

#[test]
fn records_and_actions_round_trip_through_borsh_and_json() {
    let mut perms = BTreeMap::new();
    let mut g = gov(2, 4);
    g.propose(
        ctx(1),
        addr(1),
        GovAction::RotateKey {
            consensus_key: addr(100),
            new_key: addr(150),
            signature: [9; 64],
        },
        &mut perms,
    )
    .unwrap_err();
    g.propose(
        ctx(1),
        addr(1),
        GovAction::AddValidator(validator(4, 1)),
        &mut perms,
    )
    .unwrap();
    let bytes = borsh::to_vec(&g).unwrap();
    assert_eq!(borsh::from_slice::<Governance>(&bytes).unwrap(), g);
    let json = serde_json::to_string(&g).unwrap();
    assert_eq!(serde_json::from_str::<Governance>(&json).unwrap(), g);
    let action = GovAction::RotateKey {
        consensus_key: addr(100),
        new_key: addr(150),
        signature: [9; 64],
    };
    let json = serde_json::to_value(&action).unwrap();
    assert_eq!(
        json["rotate_key"]["signature"],
        serde_json::json!(hex::encode([9u8; 64]))
    );
    assert_eq!(serde_json::from_value::<GovAction>(json).unwrap(), action);
    let p = Permissions::default().with(Permission::Transact);
    assert_eq!(
        serde_json::to_value(p).unwrap(),
        serde_json::json!(["transact"])
    );
    assert!(p.is_known() && !Permissions(0b10).is_known());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Random governance transactions: a refusal changes nothing; an acceptance keeps
    /// every invariant, and the validator set never drops below 4 once it has 4.
    #[test]
    fn refusals_change_nothing_and_invariants_hold(
        ops in proptest::collection::vec((0u8..8, 0u8..6, 0u8..12, 1u64..4, 0u64..3), 1..60)
    ) {
        let mut perms = BTreeMap::new();
        let mut g = gov(2, 4);
        let mut height = 1;
        for (kind, who, target, power, step) in ops {
            height += step;
            let action = match kind {
                0 => GovAction::AddValidator(validator(target, power)),
                1 => GovAction::RemoveValidator { consensus_key: addr(100 + target) },
                2 => GovAction::SetVotingPower { consensus_key: addr(100 + target), voting_power: power },
                3 => GovAction::Grant { account: addr(target), permission: Permission::Transact },
                4 => GovAction::Revoke { account: addr(target), permission: Permission::Transact },
                5 => GovAction::SetMembers {
                    members: (1..=(target % 4 + 1)).map(addr).collect(),
                    threshold: (power as u32).min(u32::from(target % 4 + 1)),
                },
                _ => GovAction::SetParams(ParamsUpdate { block_txs_max: Some(power * 100), ..Default::default() }),
            };
            let before = (g.clone(), perms.clone());
            let result = if kind == 7 {
                let id = g.proposals.first().map_or(1, |p| p.id);
                g.approve(ctx(height), addr(who), id, &mut perms)
            } else {
                g.propose(ctx(height), addr(who), action, &mut perms)
            };
            match result {
                Ok(_) => {
                    g.validate().map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                    proptest::prop_assert!(g.validators.len() >= VALIDATORS_MIN);
                }
                Err(GovError::Refused(_)) => proptest::prop_assert_eq!(&(g.clone(), perms.clone()), &before),
                Err(GovError::Fatal(e)) => proptest::prop_assert!(false, "fatal: {e}"),
            }
        }
    }
}
