//! Governed membership on a local testnet: adding a node home to a generated testnet, and
//! proposing and approving a governance action with the testnet's member accounts (the
//! first [`crate::DEMO_MEMBERS_MAX`] demo accounts, see [`crate::demo_governance`]).
//!
//! `cairn-testnet add-validator DIR` and `remove-validator DIR NAME` are built from these;
//! docs/governance.md has the operator's walk-through.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_ledger::governance::{GovAction, ValidatorInfo};
use cairn_ledger::{Action, Address, Hash, SignedTransaction, TransactionBody};
use cairn_node::config::NodeConfig;
use cairn_node::keys;
use cairn_node::node::init_home;
use cairn_rpc::{RpcClient, TxStatus};

use crate::{Manifest, NodeEntry};

/// How long a governance transaction may take to finalize, ms.
pub const TX_FINALITY_TIMEOUT_MS: u64 = 60_000;
/// Blocks a governance transaction stays valid.
pub const TX_EXPIRY_BLOCKS: u64 = 1_000;
/// Fee of each governance transaction, base units.
pub const TX_FEE: u64 = 1;

/// `(host, port)` of a `/ip4/<host>/tcp/<port>/...` address or a `http://<host>:<port>`
/// URL.
fn host_port(addr: &str) -> Option<(String, u16)> {
    if let Some(rest) = addr.strip_prefix("/ip4/") {
        let mut parts = rest.split('/');
        let host = parts.next()?;
        (parts.next()? == "tcp").then_some(())?;
        return Some((host.to_string(), parts.next()?.parse().ok()?));
    }
    let rest = addr.strip_prefix("http://")?;
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

/// Adds node `name` to the testnet in `dir`: a home `DIR/node-<i>` with fresh keys, the
/// testnet's genesis, a config bootstrapping to every node already in the manifest, and the
/// first p2p and RPC ports above the highest p2p and RPC ports the manifest uses that no
/// node of the manifest uses for anything. The node is recorded
/// in `testnet.json` as a full node (its consensus key is in no set yet): governance makes
/// it a validator ([`propose_and_approve`] with [`GovAction::AddValidator`] of
/// [`validator_info`]). Returns the updated manifest and the node's index.
///
/// # Errors
/// No testnet in `dir`, a node named `name` exists, or writing the home fails.
pub fn add_node(dir: &Path, name: &str) -> Result<(Manifest, usize)> {
    let mut manifest = Manifest::load(dir)?;
    if manifest.nodes.iter().any(|n| n.name == name) {
        bail!("the testnet already has a node named {name}");
    }
    let mut host = "127.0.0.1".to_string();
    let (mut p2p_max, mut rpc_max) = (0u16, 0u16);
    let mut used = std::collections::BTreeSet::new();
    for n in &manifest.nodes {
        let (h, p) = host_port(&n.p2p_addr)
            .with_context(|| format!("node {}: p2p address {}", n.name, n.p2p_addr))?;
        let (_, r) = host_port(&n.rpc_url)
            .with_context(|| format!("node {}: RPC URL {}", n.name, n.rpc_url))?;
        host = h;
        p2p_max = p2p_max.max(p);
        rpc_max = rpc_max.max(r);
        used.extend([p, r]);
    }
    // The p2p and RPC ranges may be adjacent (p2p 26656.., RPC right after): skip every
    // port a node uses.
    let mut next_free = |after: u16| -> Result<u16> {
        let mut port = after.checked_add(1).context("no port left")?;
        while used.contains(&port) {
            port = port.checked_add(1).context("no port left")?;
        }
        used.insert(port);
        Ok(port)
    };
    let p2p_port = next_free(p2p_max)?;
    let rpc_port = next_free(rpc_max)?;
    let index = manifest.nodes.len();
    let home = std::path::absolute(dir)?.join(format!("node-{index}"));
    if home.exists() {
        bail!("{} exists already", home.display());
    }
    let mut config = NodeConfig {
        moniker: name.to_string(),
        ..NodeConfig::default()
    };
    config.p2p.listen = format!("/ip4/{host}/tcp/{p2p_port}");
    config.p2p.bootstrap = manifest.nodes.iter().map(|n| n.p2p_addr.clone()).collect();
    config.rpc.listen = format!("{host}:{rpc_port}")
        .parse()
        .context("rpc address")?;
    let info = init_home(&home, &config, None)?;
    let genesis = std::fs::read(dir.join("genesis.json")).context("reading genesis.json")?;
    std::fs::write(home.join("genesis.json"), genesis)?;
    manifest.nodes.push(NodeEntry {
        name: name.to_string(),
        home,
        rpc_url: format!("http://{host}:{rpc_port}"),
        p2p_addr: format!("/ip4/{host}/tcp/{p2p_port}/p2p/{}", info.peer_id),
        peer_id: info.peer_id.to_string(),
        validator_address: info.validator_address,
        full_node: true,
    });
    std::fs::write(
        dir.join("testnet.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok((manifest, index))
}

/// The governance record entry that makes `node` a validator with `voting_power`.
pub fn validator_info(node: &NodeEntry, voting_power: u64) -> ValidatorInfo {
    ValidatorInfo {
        name: node.name.clone(),
        consensus_key: node.validator_address,
        peer_id: node.peer_id.clone(),
        voting_power,
    }
}

/// Signs and submits one transaction of `key` carrying `action` at `rpc`, and waits for it
/// to finalize.
async fn submit(
    rpc: &RpcClient,
    chain_id: &str,
    key: &ed25519_dalek::SigningKey,
    action: Action,
) -> Result<Hash> {
    let sender = Address::from_public_key(&key.verifying_key());
    let account = rpc.account(&sender).await?;
    let height = rpc.status().await?.latest_height;
    let tx: SignedTransaction = TransactionBody {
        chain_id: chain_id.to_string(),
        sender,
        fee: TX_FEE,
        nonce: account.nonce,
        expiry_height: height + TX_EXPIRY_BLOCKS,
        action,
    }
    .sign(key);
    let hash = rpc
        .send_transaction(&tx)
        .await
        .with_context(|| format!("submitting a governance transaction of {sender}"))?;
    match rpc
        .wait_for_finality(&hash, TX_FINALITY_TIMEOUT_MS, 200)
        .await?
    {
        TxStatus::Finalized { .. } => Ok(hash),
        other => bail!("governance transaction {hash} of {sender}: {other:?}"),
    }
}

/// Proposes `action` with the testnet's first member account and approves it with as many
/// further members as the threshold needs, through the node at `rpc`, each transaction
/// waited for until final. Returns the proposal id. The action has executed when this
/// returns; a validator-set change takes effect at the next epoch.
///
/// # Errors
/// The chain has no governance, the testnet's member keys are not the chain's members, or
/// a transaction is refused or does not finalize in [`TX_FINALITY_TIMEOUT_MS`].
pub async fn propose_and_approve(
    manifest: &Manifest,
    rpc: &RpcClient,
    action: GovAction,
) -> Result<u64> {
    let record = rpc
        .governance()
        .await?
        .context("the chain has no governance record")?;
    let mut members = Vec::new();
    for account in &manifest.accounts {
        if record.members.contains(&account.address) {
            members.push(
                keys::read_validator_key(&account.key_file)
                    .with_context(|| format!("reading {}", account.key_file.display()))?,
            );
        }
    }
    let threshold = record.threshold as usize;
    if threshold == 0 || members.len() < threshold {
        bail!(
            "the testnet holds {} member keys, the chain needs {threshold} approvals",
            members.len()
        );
    }
    let id = record.next_proposal_id;
    submit(
        rpc,
        &manifest.chain_id,
        &members[0],
        Action::Propose(action),
    )
    .await?;
    for key in &members[1..threshold] {
        submit(
            rpc,
            &manifest.chain_id,
            key,
            Action::Approve { proposal_id: id },
        )
        .await?;
    }
    Ok(id)
}

/// Polls `getStatus` of the node at `node` until its finalized height reaches that of the
/// node at `reference` (minus `slack` blocks), at most `timeout`: a new validator's node
/// must be up and caught up before governance counts on its votes.
///
/// # Errors
/// The timeout passed (the heights last seen are in the message).
pub async fn wait_caught_up(
    node: &RpcClient,
    reference: &RpcClient,
    slack: u64,
    timeout: Duration,
) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let target = reference.status().await?.latest_height;
        let mine = node.status().await.ok().map(|s| s.latest_height);
        if let Some(h) = mine
            && h + slack >= target
        {
            return Ok(h);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the node did not catch up in {timeout:?} (at {mine:?}, the chain at {target})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `getValidators` at `rpc` every 200 ms until `done` holds for the set, at most
/// `timeout`.
///
/// # Errors
/// The timeout passed (the last set seen is in the message).
pub async fn wait_for_set(
    rpc: &RpcClient,
    timeout: Duration,
    done: impl Fn(&[cairn_rpc::ValidatorInfo]) -> bool,
) -> Result<Vec<cairn_rpc::ValidatorInfo>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = Vec::new();
    loop {
        if let Ok(set) = rpc.validators().await {
            if done(&set) {
                return Ok(set);
            }
            last = set;
        }
        if tokio::time::Instant::now() >= deadline {
            let names: Vec<&str> = last.iter().map(|v| v.name.as_str()).collect();
            bail!("the validator set did not change in {timeout:?} (still {names:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_reads_multiaddrs_and_urls() {
        assert_eq!(
            host_port("/ip4/127.0.0.1/tcp/26656/p2p/12D3KooW"),
            Some(("127.0.0.1".into(), 26656))
        );
        assert_eq!(
            host_port("http://127.0.0.1:8545"),
            Some(("127.0.0.1".into(), 8545))
        );
        assert_eq!(host_port("/dns/x/tcp/1"), None);
        assert_eq!(host_port("http://nohost"), None);
    }
}
