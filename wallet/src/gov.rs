//! `cairn gov …`: governance proposals, approvals, the governance record, and key-rotation
//! signatures.

use std::fmt::Write as _;

use cairn_ledger::Action;
use cairn_ledger::governance::{
    GovAction, GovProposal, Governance, ParamsUpdate, ValidatorInfo, rotation_digest,
};
use ed25519_dalek::Signer;
use serde_json::json;

use crate::cli::{Cli, GovCommand, ProposeAction};
use crate::commands::{Output, client, load_key, submit};

/// Runs one `cairn gov` command.
pub async fn run(
    cli: &Cli,
    keyfile: &std::path::Path,
    command: &GovCommand,
) -> anyhow::Result<Output> {
    match command {
        GovCommand::Propose { action, tx } => {
            submit(cli, keyfile, Action::Propose(gov_action(action)), tx).await
        }
        GovCommand::Approve { id, tx } => {
            submit(cli, keyfile, Action::Approve { proposal_id: *id }, tx).await
        }
        GovCommand::Show { id } => {
            let record = client(cli)?
                .governance()
                .await?
                .ok_or_else(|| anyhow::anyhow!("this chain has no governance record"))?;
            match id {
                None => Ok(Output {
                    text: governance_text(&record),
                    json: serde_json::to_value(&record)?,
                }),
                Some(id) => {
                    let p = record.proposal(*id).ok_or_else(|| {
                        anyhow::anyhow!(
                            "no open governance proposal {id} (executed, expired, or never made)"
                        )
                    })?;
                    Ok(Output {
                        text: proposal_text(p, record.threshold),
                        json: serde_json::to_value(p)?,
                    })
                }
            }
        }
        GovCommand::SignRotation { new_key, chain_id } => {
            let key = load_key(cli, keyfile)?;
            let chain_id = match chain_id {
                Some(c) => c.clone(),
                None => client(cli)?.status().await?.chain_id,
            };
            let current = key.address();
            let digest = rotation_digest(&chain_id, &current, new_key);
            let signature = hex::encode(key.signing_key().sign(digest.as_bytes()).to_bytes());
            Ok(Output {
                text: format!(
                    "rotation of {current} to {new_key} on chain {chain_id}\nsignature: {signature}\npropose it with: cairn gov propose rotate-key --consensus-key {current} --new-key {new_key} --signature {signature}"
                ),
                json: json!({
                    "consensusKey": current,
                    "newKey": new_key,
                    "chainId": chain_id,
                    "signature": signature,
                }),
            })
        }
    }
}

/// The ledger action a `gov propose` subcommand names.
pub fn gov_action(action: &ProposeAction) -> GovAction {
    match action.clone() {
        ProposeAction::AddValidator {
            name,
            consensus_key,
            peer_id,
            power,
        } => GovAction::AddValidator(ValidatorInfo {
            name,
            consensus_key,
            peer_id,
            voting_power: power,
        }),
        ProposeAction::RemoveValidator { consensus_key } => {
            GovAction::RemoveValidator { consensus_key }
        }
        ProposeAction::SetPower {
            consensus_key,
            power,
        } => GovAction::SetVotingPower {
            consensus_key,
            voting_power: power,
        },
        ProposeAction::RotateKey {
            consensus_key,
            new_key,
            signature,
        } => GovAction::RotateKey {
            consensus_key,
            new_key,
            signature,
        },
        ProposeAction::SetMembers { members, threshold } => {
            GovAction::SetMembers { members, threshold }
        }
        ProposeAction::Grant {
            account,
            permission,
        } => GovAction::Grant {
            account,
            permission,
        },
        ProposeAction::Revoke {
            account,
            permission,
        } => GovAction::Revoke {
            account,
            permission,
        },
        ProposeAction::SetParams(p) => GovAction::SetParams(ParamsUpdate {
            leader_timeout_ms: p.leader_timeout_ms,
            notarization_timeout_ms: p.notarization_timeout_ms,
            nullify_retry_ms: p.nullify_retry_ms,
            block_txs_max: p.block_txs_max,
            block_bytes_max: p.block_bytes_max,
            block_interval_ms: p.block_interval_ms,
            mempool_txs_max: p.mempool_txs_max,
            mempool_bytes_max: p.mempool_bytes_max,
            mempool_sender_future_max: p.mempool_sender_future_max,
            admission_difficulty_bits: p.admission_difficulty_bits,
        }),
    }
}

fn governance_text(g: &Governance) -> String {
    let mut s = String::new();
    if g.members.is_empty() {
        s.push_str("members:   none (governance disabled: membership is frozen)\n");
    } else {
        let _ = writeln!(
            s,
            "members:   {} (threshold {})",
            g.members.len(),
            g.threshold
        );
        for m in &g.members {
            let _ = writeln!(s, "  {m}");
        }
    }
    let _ = writeln!(
        s,
        "accounts:  {}",
        serde_json::to_value(g.accounts)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "epoch:     {}", g.epoch);
    let _ = writeln!(s, "validators: {}", g.validators.len());
    for v in &g.validators {
        let _ = writeln!(
            s,
            "  {} power {} key {} peer {}",
            v.name, v.voting_power, v.consensus_key, v.peer_id
        );
    }
    let _ = write!(
        s,
        "open proposals: {} (a proposal stays open {} blocks)",
        g.proposals.len(),
        g.proposal_ttl_blocks
    );
    for p in &g.proposals {
        let _ = write!(s, "\n{}", proposal_text(p, g.threshold));
    }
    s
}

fn proposal_text(p: &GovProposal, threshold: u32) -> String {
    format!(
        "proposal {}: {} by {}\n  approvals {}/{threshold}, open until height {}\n  {}",
        p.id,
        p.action.name(),
        p.proposer,
        p.approvals.len(),
        p.expiry_height,
        serde_json::to_string(&p.action).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ParamsArgs;
    use cairn_ledger::Address;
    use cairn_ledger::governance::Permission;

    #[test]
    fn every_propose_subcommand_maps_to_its_action() {
        let a = Address([5; 32]);
        let b = Address([6; 32]);
        let cases = [
            (
                ProposeAction::RemoveValidator { consensus_key: a },
                GovAction::RemoveValidator { consensus_key: a },
            ),
            (
                ProposeAction::SetPower {
                    consensus_key: a,
                    power: 3,
                },
                GovAction::SetVotingPower {
                    consensus_key: a,
                    voting_power: 3,
                },
            ),
            (
                ProposeAction::RotateKey {
                    consensus_key: a,
                    new_key: b,
                    signature: [9; 64],
                },
                GovAction::RotateKey {
                    consensus_key: a,
                    new_key: b,
                    signature: [9; 64],
                },
            ),
            (
                ProposeAction::Revoke {
                    account: b,
                    permission: Permission::Transact,
                },
                GovAction::Revoke {
                    account: b,
                    permission: Permission::Transact,
                },
            ),
            (
                ProposeAction::SetParams(ParamsArgs {
                    block_txs_max: Some(5),
                    admission_difficulty_bits: Some(3),
                    ..ParamsArgs::default()
                }),
                GovAction::SetParams(ParamsUpdate {
                    block_txs_max: Some(5),
                    admission_difficulty_bits: Some(3),
                    ..ParamsUpdate::default()
                }),
            ),
        ];
        for (cli, ledger) in cases {
            assert_eq!(gov_action(&cli), ledger);
        }
    }

    #[test]
    fn texts_name_what_matters() {
        let g = Governance {
            members: vec![Address([1; 32])],
            threshold: 1,
            accounts: cairn_ledger::governance::AccountsPolicy::Permissioned,
            proposal_ttl_blocks: 10,
            epoch: 2,
            validators: vec![],
            params: cairn_ledger::ChainParams::default(),
            proposals: vec![GovProposal {
                id: 4,
                proposer: Address([1; 32]),
                action: GovAction::RemoveValidator {
                    consensus_key: Address([2; 32]),
                },
                approvals: vec![Address([1; 32])],
                created_height: 3,
                expiry_height: 13,
            }],
            next_proposal_id: 5,
        };
        let text = governance_text(&g);
        for needle in [
            "threshold 1",
            "permissioned",
            "epoch:     2",
            "proposal 4: remove_validator",
            "approvals 1/1",
            "until height 13",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
