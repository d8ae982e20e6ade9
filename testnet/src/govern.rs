//! Governed membership on a local testnet: adding a node home to a generated testnet, and
//! proposing and approving a governance action with the testnet's member accounts (the
//! first [`crate::DEMO_MEMBERS_MAX`] demo accounts, see [`crate::demo_governance`]).
//!
//! `cairn-testnet add-validator DIR` and `remove-validator DIR NAME` are built from these;
//! on a Docker testnet (one generated with `--docker`) they run [`docker_add_validator`] and
//! [`docker_remove_validator`], which add or take out the node's container as well.
//! docs/governance.md has the operator's walk-through.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_ledger::governance::{GovAction, ValidatorInfo};
use cairn_ledger::{Action, Address, Hash, SignedTransaction, TransactionBody};
use cairn_node::config::NodeConfig;
use cairn_node::keys;
use cairn_node::node::init_home;
use cairn_rpc::{RpcClient, TxStatus};
use serde::Serialize;

use crate::docker::{self, DockerNode};
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
    let index = plan_node(dir, &mut manifest, name, |_| true)?;
    save_manifest(dir, &manifest)?;
    Ok((manifest, index))
}

/// Writes `manifest` to `DIR/testnet.json` (beside it, then renamed over it).
pub fn save_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join("testnet.json");
    let tmp = dir.join(".testnet.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(manifest)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The name `add-validator` gives a new node by default: the first `validator-<k>`, `k` at
/// least the number of nodes, that no node of the testnet (nor one removed from a Docker
/// testnet) has.
pub fn default_name(manifest: &Manifest) -> String {
    let taken = |name: &str| {
        manifest.nodes.iter().any(|n| n.name == name)
            || manifest
                .docker
                .as_ref()
                .is_some_and(|d| d.removed.iter().any(|r| r.node.name == name))
    };
    (manifest.nodes.len()..)
        .map(|k| format!("validator-{k}"))
        .find(|n| !taken(n))
        .expect("a free name")
}

/// [`add_node`] on a loaded manifest, not saved: creates the home and appends the node;
/// its RPC port must also satisfy `rpc_port_ok` (for a Docker testnet: free on the host,
/// where the port is published). The home is the first `DIR/node-<i>`, `i` at least the
/// number of nodes, that is no node's home (nor a home of a node removed from a Docker
/// testnet).
///
/// # Errors
/// A node named `name` exists (or existed, on a Docker testnet), no port is left, the home
/// exists already, or writing it fails.
pub fn plan_node(
    dir: &Path,
    manifest: &mut Manifest,
    name: &str,
    rpc_port_ok: impl Fn(u16) -> bool,
) -> Result<usize> {
    if manifest.nodes.iter().any(|n| n.name == name) {
        bail!("the testnet already has a node named {name}");
    }
    let removed: Vec<&NodeEntry> = manifest
        .docker
        .as_ref()
        .map(|d| d.removed.iter().map(|r| &r.node).collect())
        .unwrap_or_default();
    if removed.iter().any(|n| n.name == name) {
        bail!("the testnet had a node named {name} (removed); choose another name");
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
    let mut next_free = |after: u16, ok: &dyn Fn(u16) -> bool| -> Result<u16> {
        let mut port = after.checked_add(1).context("no port left")?;
        while used.contains(&port) || !ok(port) {
            port = port.checked_add(1).context("no port left")?;
        }
        used.insert(port);
        Ok(port)
    };
    // RPC first: on a Docker testnet it is the one published on the host.
    let rpc_port = next_free(rpc_max, &rpc_port_ok)?;
    let p2p_port = next_free(p2p_max, &|_| true)?;
    let index = manifest.nodes.len();
    let dir_abs = std::path::absolute(dir)?;
    let home = (index..)
        .map(|i| dir_abs.join(format!("node-{i}")))
        .find(|h| {
            !removed
                .iter()
                .copied()
                .chain(&manifest.nodes)
                .any(|n| &n.home == h)
        })
        .expect("a home");
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
    Ok(index)
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

// ---------------------------------------------------------------------------------------------
// Docker testnets

/// Bounds of [`docker_add_validator`] and [`docker_remove_validator`].
#[derive(Clone, Debug)]
pub struct DockerMembership {
    /// The new node's RPC answering and catching up (add).
    pub catch_up: Duration,
    /// The validator set changing once governance executed.
    pub set_change: Duration,
    /// A block finalized after the change (remove: without the removed node).
    pub finality: Duration,
}

impl Default for DockerMembership {
    fn default() -> Self {
        DockerMembership {
            catch_up: Duration::from_secs(120),
            set_change: Duration::from_secs(120),
            finality: Duration::from_secs(60),
        }
    }
}

/// What a membership change did to a Docker testnet's containers.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerChange {
    /// Compose service (= node name).
    pub service: String,
    /// Container name.
    pub container: String,
    /// `running` (added and started), `created` (added with `--no-start`: in the compose file,
    /// not started) or `removed` (stopped and removed).
    pub container_state: String,
    /// Data volume (kept on removal; `down --volumes` removes it).
    pub volume: String,
    /// The node's home on the host (kept on removal).
    pub home: PathBuf,
    /// Address on the `main` network.
    pub main_ip: Ipv4Addr,
    /// RPC URL on the host.
    pub rpc_url: String,
}

/// The outcome of [`docker_add_validator`] / [`docker_remove_validator`].
#[derive(Clone, Debug)]
pub struct DockerOutcome {
    /// The node added or removed.
    pub node: NodeEntry,
    /// The governance proposal that executed.
    pub proposal: u64,
    /// The running validator set afterwards.
    pub validators: Vec<cairn_rpc::ValidatorInfo>,
    /// What happened to the container.
    pub docker: DockerChange,
}

fn change(node: &NodeEntry, d: &DockerNode, state: &str) -> DockerChange {
    DockerChange {
        service: d.service.clone(),
        container: d.container.clone(),
        container_state: state.to_string(),
        volume: d.volume.clone(),
        home: node.home.clone(),
        main_ip: d.main_ip,
        rpc_url: node.rpc_url.clone(),
    }
}

/// The RPC client of node `via` (name or index) of `m`, after checking that it answers.
async fn answering_rpc(dir: &Path, m: &Manifest, via: usize) -> Result<RpcClient> {
    let n = &m.nodes[via];
    let rpc = RpcClient::with_timeout(&n.rpc_url, Duration::from_secs(10))?;
    rpc.status().await.with_context(|| {
        format!(
            "node {} does not answer at {}: is the testnet up (`cairn-testnet up {}`)?",
            n.name,
            n.rpc_url,
            dir.display()
        )
    })?;
    Ok(rpc)
}

/// `add-validator` on a Docker testnet: generates the node ([`plan_node`]: keys, the
/// testnet's genesis; its RPC on the next port free on the host), adds its service to the
/// compose file ([`docker::plan_service`]: the network's next addresses, bootstrapping to
/// every node on both networks; the other services stay as they are), starts only that
/// service (`compose up -d --no-deps`), waits until its RPC answers and it has caught up
/// with node `via`, then proposes and approves [`GovAction::AddValidator`] with the
/// testnet's member keys through node `via`, and waits for the next epoch's set to hold it.
/// With `start` false the service is added but not started (`cairn-testnet up DIR` starts
/// it), and governance does not wait for it.
///
/// # Errors
/// Not a Docker testnet; the Docker engine is unreachable or the image missing (the message
/// names the command that builds it); node `via` does not answer; the new container does not
/// start or catch up in `bounds.catch_up` (see `cairn-testnet logs DIR NAME`); governance
/// fails or the set does not change in `bounds.set_change`.
pub async fn docker_add_validator(
    dir: &Path,
    name: Option<&str>,
    power: u64,
    via: &str,
    start: bool,
    bounds: &DockerMembership,
) -> Result<DockerOutcome> {
    let mut m = Manifest::load(dir)?;
    let dm = docker::docker_manifest(&m)?.clone();
    let compose = docker::preflight(dir, &dm).await?;
    let via = m
        .node_index(via)
        .with_context(|| format!("--via {via}: no such node"))?;
    let rpc = answering_rpc(dir, &m, via).await?;
    let name = name.map_or_else(|| default_name(&m), str::to_string);
    let index = plan_node(dir, &mut m, &name, docker::host_port_free)?;
    let d = match docker::plan_service(&mut m, index) {
        Ok(d) => d,
        Err(e) => {
            // Nothing refers to the fresh home yet.
            let _ = std::fs::remove_dir_all(&m.nodes[index].home);
            return Err(e);
        }
    };
    save_manifest(dir, &m)?;
    docker::rewrite_compose(dir, &m)?;
    let node = m.nodes[index].clone();
    eprintln!(
        "generated {} in {}: service {} at {} (main) / {} (side), RPC {}",
        node.name,
        node.home.display(),
        d.service,
        d.main_ip,
        d.side_ip,
        node.rpc_url
    );
    if start {
        compose
            .run(
                &["up", "-d", "--no-deps", &d.service],
                Duration::from_secs(300),
            )
            .await
            .with_context(|| format!("starting the container of {}", node.name))?;
        eprintln!(
            "started container {}; waiting for it to catch up",
            d.container
        );
        // Governance counts on the new validator's votes from the next epoch: it must be
        // running and synced first.
        let own = RpcClient::with_timeout(&node.rpc_url, Duration::from_secs(5))?;
        if let Err(e) = wait_caught_up(&own, &rpc, 2, bounds.catch_up).await {
            let (state, health) = docker::container_state(&d.container).await;
            return Err(e.context(format!(
                "{} did not start or catch up (container {state}, health {health}; see `cairn-testnet logs {} {}`)",
                node.name,
                dir.display(),
                d.service
            )));
        }
    } else {
        eprintln!(
            "not started: `cairn-testnet up {}` starts {}",
            dir.display(),
            d.service
        );
    }
    let action = GovAction::AddValidator(validator_info(&node, power));
    let proposal = propose_and_approve(&m, &rpc, action).await?;
    eprintln!("proposal {proposal} executed; waiting for the next epoch");
    let key = node.validator_address;
    let validators = wait_for_set(&rpc, bounds.set_change, |s| {
        s.iter().any(|v| v.address == key)
    })
    .await?;
    let state = if start { "running" } else { "created" };
    Ok(DockerOutcome {
        docker: change(&node, &d, state),
        node,
        proposal,
        validators,
    })
}

/// `remove-validator` on a Docker testnet: proposes and approves
/// [`GovAction::RemoveValidator`] through node `via` (another node if `via` is the one
/// removed), waits for the next epoch's set to lack it, then stops and removes its
/// container (its home and data volume stay), takes it out of `testnet.json` and the compose
/// file (recorded under `docker.removed`), and waits until the chain finalizes a block
/// without it.
///
/// # Errors
/// Not a Docker testnet; the engine is unreachable; no such node, or it is not in the
/// running set; governance fails; the set does not change in `bounds.set_change`; stopping
/// the container fails; or no block is finalized in `bounds.finality` afterwards.
pub async fn docker_remove_validator(
    dir: &Path,
    name: &str,
    via: &str,
    bounds: &DockerMembership,
) -> Result<DockerOutcome> {
    let mut m = Manifest::load(dir)?;
    docker::docker_manifest(&m)?;
    if let Err(e) = docker::engine_reachable().await {
        bail!("the Docker engine is unreachable ({e}); start it (or set DOCKER_HOST) and retry");
    }
    let index = m
        .node_index(name)
        .with_context(|| format!("no node {name} in {}", dir.display()))?;
    let mut via = m
        .node_index(via)
        .with_context(|| format!("--via {via}: no such node"))?;
    if via == index {
        via = usize::from(index == 0);
        if via >= m.nodes.len() {
            bail!("the testnet has no other node to govern through");
        }
        eprintln!(
            "governing through {} ({} is the node being removed)",
            m.nodes[via].name, m.nodes[index].name
        );
    }
    let rpc = answering_rpc(dir, &m, via).await?;
    let node = m.nodes[index].clone();
    let key = node.validator_address;
    let running = rpc.validators().await?;
    if !running.iter().any(|v| v.address == key) {
        bail!(
            "{} ({key}) is not in the running validator set; nothing to remove",
            node.name
        );
    }
    let action = GovAction::RemoveValidator { consensus_key: key };
    let proposal = propose_and_approve(&m, &rpc, action).await?;
    eprintln!("proposal {proposal} executed; waiting for the next epoch");
    let validators = wait_for_set(&rpc, bounds.set_change, |s| {
        s.iter().all(|v| v.address != key)
    })
    .await?;
    let d = docker::docker_manifest(&m)?.nodes[index].clone();
    let (state, _) = docker::container_state(&d.container).await;
    if state == "missing" {
        eprintln!("container {} does not exist (any more)", d.container);
    } else {
        if state == "paused" {
            docker::docker(&["unpause", &d.container]).await?;
        }
        docker::docker(&["stop", "--time", "10", &d.container])
            .await
            .with_context(|| format!("stopping container {}", d.container))?;
        docker::docker(&["rm", &d.container])
            .await
            .with_context(|| format!("removing container {}", d.container))?;
    }
    docker::unplan_service(&mut m, index)?;
    save_manifest(dir, &m)?;
    docker::rewrite_compose(dir, &m)?;
    eprintln!(
        "stopped and removed container {}; kept its home {} and data volume {} (`cairn-testnet down {} --volumes` removes the volume)",
        d.container,
        node.home.display(),
        d.volume,
        dir.display()
    );
    // The chain goes on without it.
    let start = rpc.status().await?.latest_height;
    let deadline = tokio::time::Instant::now() + bounds.finality;
    loop {
        let h = rpc.status().await.map(|s| s.latest_height).unwrap_or(start);
        if h > start {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{} is removed, but no block was finalized in {:?} since (height {start})",
                node.name,
                bounds.finality
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(DockerOutcome {
        docker: change(&node, &d, "removed"),
        node,
        proposal,
        validators,
    })
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

    /// The text of service `name` in a compose file.
    fn service(yaml: &str, name: &str) -> String {
        let head = format!("  {name}:");
        let mut lines = yaml.lines().skip_while(|l| *l != head);
        assert!(lines.next().is_some(), "no service {name}");
        let body: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).collect();
        body.join("\n")
    }

    #[test]
    fn docker_services_are_added_and_removed_without_changing_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net");
        let mut opts = crate::test_options(dir.clone(), "cairn-docker-plan", 3);
        // Nothing binds here: fixed ranges far apart keep the port arithmetic simple.
        (opts.p2p_port, opts.rpc_port) = (21_000, 23_000);
        opts.docker = Some(docker::DockerOptions {
            project: Some("cairn-plan".into()),
            image: None,
            subnet: Some("172.30.8.0/24".parse().unwrap()),
        });
        crate::generate(&opts).unwrap();
        let before = std::fs::read_to_string(dir.join(docker::COMPOSE_FILE)).unwrap();

        // Add: next addresses, next RPC port, every peer on both networks.
        let mut m = Manifest::load(&dir).unwrap();
        assert_eq!(default_name(&m), "validator-4");
        let k = plan_node(&dir, &mut m, "validator-4", |_| true).unwrap();
        let d = docker::plan_service(&mut m, k).unwrap();
        save_manifest(&dir, &m).unwrap();
        docker::rewrite_compose(&dir, &m).unwrap();
        assert_eq!(d.main_ip, Ipv4Addr::new(172, 30, 8, 14));
        assert_eq!(d.side_ip, Ipv4Addr::new(172, 30, 9, 14));
        assert_eq!(d.rpc_host_port, opts.rpc_port + 4);
        assert_eq!(d.container, "cairn-plan-validator-4");
        assert_eq!(d.bootstrap.as_ref().unwrap().len(), 8);
        assert!(m.nodes[k].home.join("data").is_dir());
        let after = std::fs::read_to_string(dir.join(docker::COMPOSE_FILE)).unwrap();
        for i in 0..4 {
            let name = format!("validator-{i}");
            assert_eq!(service(&after, &name), service(&before, &name), "{name}");
        }
        assert!(service(&after, "validator-4").contains("172.30.8.14"));
        assert!(after.contains("validator-4-data: {}"));

        // Remove validator-1: out of the manifest and the services, its volume still
        // declared, its address and name not handed out again, the others unchanged.
        let mut m = Manifest::load(&dir).unwrap();
        let r = docker::unplan_service(&mut m, 1).unwrap();
        save_manifest(&dir, &m).unwrap();
        docker::rewrite_compose(&dir, &m).unwrap();
        assert_eq!(r.node.name, "validator-1");
        let removed = std::fs::read_to_string(dir.join(docker::COMPOSE_FILE)).unwrap();
        assert!(!removed.contains("\n  validator-1:\n"));
        assert!(removed.contains("validator-1-data: {}"));
        for name in ["validator-0", "validator-2", "validator-3", "validator-4"] {
            assert_eq!(service(&removed, name), service(&after, name), "{name}");
        }
        let m = Manifest::load(&dir).unwrap();
        assert_eq!(m.nodes.len(), 4);
        assert_eq!(docker::next_host(m.docker.as_ref().unwrap()).unwrap(), 15);
        assert_eq!(default_name(&m), "validator-5");
        let mut m2 = m.clone();
        assert!(plan_node(&dir, &mut m2, "validator-1", |_| true).is_err());
        // The next home skips the ones in use and the removed node's.
        let mut m3 = m.clone();
        let k = plan_node(&dir, &mut m3, "validator-5", |_| true).unwrap();
        assert_eq!(
            m3.nodes[k].home,
            std::path::absolute(&dir).unwrap().join("node-5")
        );
        assert!(
            m3.nodes[k]
                .rpc_url
                .ends_with(&format!(":{}", opts.rpc_port + 5))
        );
        // A port predicate skips ports (e.g. taken on the host).
        let k = plan_node(&dir, &mut m3, "validator-6", |p| p != opts.rpc_port + 6).unwrap();
        assert!(
            m3.nodes[k]
                .rpc_url
                .ends_with(&format!(":{}", opts.rpc_port + 7))
        );
        assert_eq!(
            m3.nodes[k].home,
            std::path::absolute(&dir).unwrap().join("node-6")
        );
    }
}
