//! The invariant checker (`cairn-testnet check DIR`), over JSON-RPC only.
//!
//! 1. **Convergence.** Within `wait`, every node answers `getStatus` with the testnet's chain
//!    id and genesis hash, and is within one height of the highest node.
//! 2. **Agreement.** Every node serves every block up to its height (`getBlock`); at every
//!    height, all nodes that have it hold the same block hash and state root (a node differing
//!    from the majority is named), each node's blocks chain by parent hash, and block `h` says
//!    height `h`.
//! 3. **Acknowledged transfers.** Every transfer in `DIR/acked.jsonl` (written by
//!    [`crate::load`]) is in exactly one finalized block; no transaction is in two blocks.
//! 4. **Replay.** Replaying the finalized transfers from `genesis.json` (nonce in order, amount
//!    plus fee affordable, amount to the recipient, fee to the proposer) gives, on every node,
//!    the balance and nonce `getAccount` reports for every genesis and touched account (read
//!    between two `getStatus` calls; it must equal the replay at one of the heights in
//!    between).
//! 5. **Participation.** Every validator proposed at least one block (the `proposer` of the
//!    headers) and signed at least one finalization certificate. Every certificate served by
//!    `getFinalization` certifies the agreed block at its height and verifies against the
//!    genesis validator set (quorum power, every signature), and its `signers` are the
//!    certificate's; a height without a certificate of its own (finalized together with a
//!    descendant) must be covered by the next certificate above it.
//!
//! Each violation names a node and a height where there is one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_genesis::Genesis;
use cairn_ledger::{Address, Hash};
use cairn_rpc::{BlockInfo, RpcClient, Status};
use serde::Serialize;

use crate::Manifest;
use crate::load::read_acked;

/// How the check runs.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// How long to wait for the nodes to converge (reachable, within one height).
    pub wait: Duration,
    /// Bound on each RPC call.
    pub rpc_timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            wait: Duration::from_secs(120),
            rpc_timeout: Duration::from_secs(5),
        }
    }
}

/// One broken invariant.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// The node, where one is to blame.
    pub node: Option<String>,
    /// The height, where there is one.
    pub height: Option<u64>,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} height {}: {}",
            self.node.as_deref().unwrap_or("-"),
            self.height
                .map(|h| h.to_string())
                .unwrap_or_else(|| "-".into()),
            self.what
        )
    }
}

/// A node's tip when the check started.
#[derive(Clone, Debug, Serialize)]
pub struct NodeTip {
    /// Node name.
    pub name: String,
    /// Latest finalized height (None: unreachable).
    pub height: Option<u64>,
    /// Latest finalized hash.
    pub hash: Option<Hash>,
}

/// The result.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// No violations.
    pub ok: bool,
    /// Each node's tip after convergence.
    pub nodes: Vec<NodeTip>,
    /// Highest and lowest height among the reachable nodes.
    pub max_height: u64,
    /// Lowest height.
    pub min_height: u64,
    /// Heights compared across nodes (0..=max_height).
    pub heights_checked: u64,
    /// Block fetches.
    pub blocks_fetched: u64,
    /// Transactions in the finalized chain.
    pub transactions: u64,
    /// Acknowledged transfers recorded in `acked.jsonl`.
    pub acked: u64,
    /// Of those, finalized exactly once.
    pub acked_finalized_once: u64,
    /// Finalized transactions not in `acked.jsonl` (e.g. sent with the wallet; not a violation).
    pub finalized_not_acked: u64,
    /// Accounts compared with the replay, per node.
    pub accounts_checked: u64,
    /// Blocks proposed per validator.
    pub proposers: BTreeMap<String, u64>,
    /// Finalization certificates signed per validator (a certificate carries a quorum of
    /// Finalize votes, not necessarily every validator's).
    pub signers: BTreeMap<String, u64>,
    /// Finalization certificates fetched and verified.
    pub certificates_checked: u64,
    /// Heights with no certificate of their own, finalized together with a descendant whose
    /// certificate (the next one above) covers them.
    pub heights_finalized_by_descendant: u64,
    /// Whether signers (finalization certificates) were checked.
    pub signers_checked: bool,
    /// Remarks.
    pub notes: Vec<String>,
    /// Broken invariants.
    pub violations: Vec<Violation>,
    /// Time taken, ms.
    pub elapsed_ms: u64,
}

impl CheckReport {
    fn violation(&mut self, node: Option<&str>, height: Option<u64>, what: impl Into<String>) {
        self.violations.push(Violation {
            node: node.map(str::to_string),
            height,
            what: what.into(),
        });
    }

    /// The report as text.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            s.push_str(&format!(
                "  {:<12} height {:>7}  {}\n",
                n.name,
                n.height
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "-".into()),
                n.hash
                    .map(|h| h.to_hex())
                    .unwrap_or_else(|| "unreachable".into())
            ));
        }
        s.push_str(&format!(
            "heights 0..={} compared on {} nodes ({} blocks fetched); {} transactions finalized\n",
            self.max_height,
            self.nodes.iter().filter(|n| n.height.is_some()).count(),
            self.blocks_fetched,
            self.transactions
        ));
        s.push_str(&format!(
            "acknowledged transfers: {} recorded, {} finalized exactly once; {} finalized transactions were not recorded\n",
            self.acked, self.acked_finalized_once, self.finalized_not_acked
        ));
        s.push_str(&format!(
            "replay: {} account reads matched\n",
            self.accounts_checked
        ));
        s.push_str(&format!(
            "signers ({} certificates verified, {} heights finalized with a descendant): {}\n",
            self.certificates_checked,
            self.heights_finalized_by_descendant,
            self.signers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        s.push_str(&format!(
            "proposers: {}\n",
            self.proposers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        if self.ok {
            s.push_str("check: OK, no violations\n");
        } else {
            s.push_str(&format!("check: {} VIOLATION(S)\n", self.violations.len()));
            for v in self.violations.iter().take(200) {
                s.push_str(&format!("VIOLATION {v}\n"));
            }
            if self.violations.len() > 200 {
                s.push_str(&format!("… and {} more\n", self.violations.len() - 200));
            }
        }
        s
    }
}

async fn retry<T, F, Fut>(mut f: F) -> Result<T, cairn_rpc::ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, cairn_rpc::ClientError>>,
{
    let mut last = None;
    for attempt in 0..5 {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
            }
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Balances and nonces by height.
#[derive(Default)]
struct Replay {
    /// Per account: (from height, balance, nonce), ascending.
    history: HashMap<Address, Vec<(u64, u64, u64)>>,
    height: u64,
}

impl Replay {
    fn current(&self, a: &Address) -> (u64, u64) {
        self.history
            .get(a)
            .and_then(|v| v.last())
            .map(|&(_, b, n)| (b, n))
            .unwrap_or((0, 0))
    }

    fn set(&mut self, a: Address, h: u64, b: u64, n: u64) {
        let v = self.history.entry(a).or_default();
        match v.last_mut() {
            Some(last) if last.0 == h => *last = (h, b, n),
            _ => v.push((h, b, n)),
        }
    }

    /// Applies block `b` at its height; returns what does not replay.
    fn apply(&mut self, b: &BlockInfo) -> Vec<String> {
        let h = b.header.height;
        let mut bad = Vec::new();
        for tx in &b.transactions {
            let (bal, nonce) = self.current(&tx.sender);
            if tx.nonce != nonce {
                bad.push(format!(
                    "transaction {} of {}: nonce {} but the replay expects {}",
                    tx.hash, tx.sender, tx.nonce, nonce
                ));
            }
            let cost = tx.amount as u128 + tx.fee as u128;
            if cost > bal as u128 {
                bad.push(format!(
                    "transaction {} of {}: amount + fee {} exceeds the replayed balance {}",
                    tx.hash, tx.sender, cost, bal
                ));
            }
            self.set(
                tx.sender,
                h,
                bal.saturating_sub(cost.min(u64::MAX as u128) as u64),
                tx.nonce.max(nonce) + 1,
            );
            if let Some(recipient) = tx.recipient {
                let (rb, rn) = self.current(&recipient);
                self.set(recipient, h, rb.saturating_add(tx.amount), rn);
            }
            let (pb, pn) = self.current(&b.header.proposer);
            self.set(b.header.proposer, h, pb.saturating_add(tx.fee), pn);
        }
        self.height = h;
        bad
    }

    /// Whether (balance, nonce) is the replayed value at some height in `lo..=hi`.
    fn matches(&self, a: &Address, lo: u64, hi: u64, got: (u64, u64)) -> bool {
        let Some(v) = self.history.get(a) else {
            return got == (0, 0);
        };
        for (k, &(from, b, n)) in v.iter().enumerate() {
            let until = v
                .get(k + 1)
                .map(|x| x.0.saturating_sub(1))
                .unwrap_or(u64::MAX);
            if from <= hi && until >= lo && (b, n) == got {
                return true;
            }
        }
        // Before the first entry the account was empty.
        v.first().is_some_and(|&(from, _, _)| from > lo) && got == (0, 0)
    }
}

/// Runs every check against the testnet in `dir`.
pub async fn check(dir: &Path, m: &Manifest, opts: &CheckOptions) -> Result<CheckReport> {
    let started = Instant::now();
    let mut rep = CheckReport::default();
    let genesis = Genesis::load(&dir.join("genesis.json"))
        .with_context(|| format!("loading {}/genesis.json", dir.display()))?;
    let acked = read_acked(dir)?;
    let clients: Vec<Arc<RpcClient>> = m
        .nodes
        .iter()
        .map(|n| RpcClient::with_timeout(&n.rpc_url, opts.rpc_timeout).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = m.nodes.iter().map(|n| n.name.clone()).collect();

    // 1. Convergence.
    let mut statuses: Vec<Option<Status>>;
    loop {
        statuses = Vec::new();
        for c in &clients {
            statuses.push(c.status().await.ok());
        }
        let hs: Vec<u64> = statuses.iter().flatten().map(|s| s.latest_height).collect();
        let converged = hs.len() == clients.len()
            && hs.iter().min().copied().unwrap_or(0) + 1 >= hs.iter().max().copied().unwrap_or(0);
        if converged || started.elapsed() >= opts.wait {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let max_h = statuses
        .iter()
        .flatten()
        .map(|s| s.latest_height)
        .max()
        .unwrap_or(0);
    for (i, s) in statuses.iter().enumerate() {
        match s {
            None => rep.violation(
                Some(&names[i]),
                None,
                format!("RPC unreachable after waiting {:?} for recovery", opts.wait),
            ),
            Some(s) => {
                if s.latest_height + 1 < max_h {
                    rep.violation(
                        Some(&names[i]),
                        Some(s.latest_height),
                        format!("more than one height behind the tip {max_h} after waiting {:?} for recovery", opts.wait),
                    );
                }
                if s.chain_id != m.chain_id || s.genesis_hash != m.genesis_hash {
                    rep.violation(
                        Some(&names[i]),
                        Some(0),
                        format!(
                            "chain {} genesis {} is not the testnet's ({} {})",
                            s.chain_id, s.genesis_hash, m.chain_id, m.genesis_hash
                        ),
                    );
                }
            }
        }
    }
    rep.nodes = statuses
        .iter()
        .zip(&names)
        .map(|(s, n)| NodeTip {
            name: n.clone(),
            height: s.as_ref().map(|s| s.latest_height),
            hash: s.as_ref().map(|s| s.latest_hash),
        })
        .collect();
    rep.max_height = max_h;
    rep.min_height = statuses
        .iter()
        .flatten()
        .map(|s| s.latest_height)
        .min()
        .unwrap_or(0);
    let reachable: Vec<usize> = (0..clients.len())
        .filter(|&i| statuses[i].is_some())
        .collect();
    if reachable.is_empty() {
        rep.violation(None, None, "no node is reachable");
        rep.elapsed_ms = started.elapsed().as_millis() as u64;
        return Ok(rep);
    }

    // 2. Every block of every node up to its height.
    let mut tasks = tokio::task::JoinSet::new();
    for &i in &reachable {
        let c = clients[i].clone();
        let top = statuses[i].as_ref().map(|s| s.latest_height).unwrap_or(0);
        tasks.spawn(async move {
            let mut blocks = Vec::with_capacity(top as usize + 1);
            for h in 0..=top {
                match retry(|| c.block_by_height(h)).await {
                    Ok(Some(b)) => blocks.push(b),
                    Ok(None) => {
                        return (
                            i,
                            blocks,
                            Some((
                                h,
                                "reports this height but getBlock returns null".to_string(),
                            )),
                        );
                    }
                    Err(e) => return (i, blocks, Some((h, format!("getBlock failed: {e}")))),
                }
            }
            (i, blocks, None)
        });
    }
    let mut chains: Vec<Vec<BlockInfo>> = vec![Vec::new(); clients.len()];
    while let Some(r) = tasks.join_next().await {
        let (i, blocks, err) = r.context("block fetch task panicked")?;
        rep.blocks_fetched += blocks.len() as u64;
        if let Some((h, e)) = err {
            rep.violation(Some(&names[i]), Some(h), e);
        }
        chains[i] = blocks;
    }
    for &i in &reachable {
        for (h, b) in chains[i].iter().enumerate() {
            if b.header.height != h as u64 {
                rep.violation(
                    Some(&names[i]),
                    Some(h as u64),
                    format!(
                        "getBlock({h}) returned a block of height {}",
                        b.header.height
                    ),
                );
            }
            if h > 0 && b.header.parent_hash != chains[i][h - 1].hash {
                rep.violation(
                    Some(&names[i]),
                    Some(h as u64),
                    format!(
                        "parent hash {} is not the hash {} of its block at {}",
                        b.header.parent_hash,
                        chains[i][h - 1].hash,
                        h - 1
                    ),
                );
            }
        }
    }
    // Majority per height; the reference chain is the majority's block at each height.
    let top = reachable
        .iter()
        .map(|&i| chains[i].len())
        .max()
        .unwrap_or(0);
    let mut reference: Vec<BlockInfo> = Vec::with_capacity(top);
    for h in 0..top {
        let mut groups: BTreeMap<(Hash, Hash), Vec<usize>> = BTreeMap::new();
        for &i in &reachable {
            if let Some(b) = chains[i].get(h) {
                groups
                    .entry((b.hash, b.header.state_root))
                    .or_default()
                    .push(i);
            }
        }
        let Some((key, holders)) = groups
            .iter()
            .max_by_key(|(_, v)| v.len())
            .map(|(k, v)| (*k, v.clone()))
        else {
            break;
        };
        for (k, v) in &groups {
            if *k == key {
                continue;
            }
            for &i in v {
                rep.violation(
                    Some(&names[i]),
                    Some(h as u64),
                    format!(
                        "block hash {} / state root {} differ from {} / {} held by {} of {} nodes",
                        k.0,
                        k.1,
                        key.0,
                        key.1,
                        holders.len(),
                        groups.values().map(Vec::len).sum::<usize>()
                    ),
                );
            }
        }
        reference.push(chains[holders[0]][h].clone());
    }
    rep.heights_checked = reference.len() as u64;

    // 3. Transactions: each at most once; each acknowledged one exactly once.
    let mut seen: HashMap<Hash, Vec<u64>> = HashMap::new();
    for b in &reference {
        for tx in &b.transactions {
            seen.entry(tx.hash).or_default().push(b.header.height);
        }
    }
    rep.transactions = seen.values().map(|v| v.len() as u64).sum();
    for (h, at) in &seen {
        if at.len() > 1 {
            rep.violation(
                None,
                Some(at[1]),
                format!(
                    "transaction {h} is finalized {} times, at heights {at:?}",
                    at.len()
                ),
            );
        }
    }
    let mut acked_set: HashMap<Hash, &crate::load::AckRecord> = HashMap::new();
    for r in &acked {
        acked_set.entry(r.hash).or_insert(r);
    }
    rep.acked = acked_set.len() as u64;
    for (h, r) in &acked_set {
        match seen.get(h).map(Vec::len).unwrap_or(0) {
            1 => rep.acked_finalized_once += 1,
            0 => rep.violation(
                Some(&r.node),
                None,
                format!("transfer {h} (sender {} nonce {}) acknowledged by this node is not finalized at any height up to {}", r.sender, r.nonce, reference.len().saturating_sub(1)),
            ),
            _ => {} // reported above
        }
    }
    rep.finalized_not_acked = seen.keys().filter(|h| !acked_set.contains_key(h)).count() as u64;

    // 4. Replay.
    let mut replay = Replay::default();
    for a in &genesis.accounts {
        replay.set(a.address, 0, a.balance, 0);
    }
    for b in reference.iter().skip(1) {
        for bad in replay.apply(b) {
            rep.violation(None, Some(b.header.height), bad);
        }
    }
    let ref_node = reachable[0];
    let mut accounts: Vec<Address> = replay.history.keys().copied().collect();
    accounts.sort();
    for &i in &reachable {
        let c = &clients[i];
        let Ok(before) = retry(|| c.status()).await else {
            rep.violation(
                Some(&names[i]),
                None,
                "unreachable during the balance check",
            );
            continue;
        };
        let mut got = Vec::new();
        let mut failed = false;
        for a in &accounts {
            match retry(|| c.account(a)).await {
                Ok(acc) => got.push((a, (acc.balance, acc.nonce))),
                Err(e) => {
                    rep.violation(Some(&names[i]), None, format!("getAccount {a} failed: {e}"));
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            continue;
        }
        let Ok(after) = retry(|| c.status()).await else {
            continue;
        };
        let (lo, hi) = (before.latest_height, after.latest_height);
        // Blocks beyond the compared range: extend the replay from this node (they are compared
        // across nodes on the next check).
        while replay.height < hi {
            let h = replay.height + 1;
            let src = if chains[ref_node].len() as u64 > h {
                &clients[ref_node]
            } else {
                c
            };
            match retry(|| src.block_by_height(h)).await {
                Ok(Some(b)) => {
                    for bad in replay.apply(&b) {
                        rep.violation(Some(&names[i]), Some(h), bad);
                    }
                }
                _ => {
                    rep.violation(
                        Some(&names[i]),
                        Some(h),
                        "cannot fetch the block to extend the replay",
                    );
                    break;
                }
            }
        }
        for (a, v) in got {
            rep.accounts_checked += 1;
            if !replay.matches(a, lo, hi, v) {
                let want = replay.current(a);
                rep.violation(
                    Some(&names[i]),
                    Some(lo),
                    format!("account {a}: balance {} nonce {} but the replay gives balance {} nonce {} (heights {lo}..={hi})", v.0, v.1, want.0, want.1),
                );
            }
        }
    }

    // 5. Participation.
    let by_address: HashMap<Address, &str> = genesis
        .validators
        .iter()
        .map(|v| (v.consensus_key, v.name.as_str()))
        .collect();
    for v in &genesis.validators {
        rep.proposers.insert(v.name.clone(), 0);
    }
    for b in reference.iter().skip(1) {
        match by_address.get(&b.header.proposer) {
            Some(name) => *rep.proposers.entry(name.to_string()).or_default() += 1,
            None => rep.violation(
                None,
                Some(b.header.height),
                format!("proposer {} is not a validator", b.header.proposer),
            ),
        }
    }
    let last = reference.len().saturating_sub(1);
    for (name, n) in rep.proposers.clone() {
        if n == 0 {
            rep.violation(
                Some(&name),
                None,
                format!("validator proposed no block in heights 1..={last}"),
            );
        }
    }
    // Signers: every certificate served (getFinalization) verifies against the genesis
    // validator set and certifies the agreed block at its height; every height is covered
    // by its own certificate or, when it was finalized together with a descendant, by the
    // next certificate above it (the chain is hash-linked, checked in 2.); every validator
    // signed at least one.
    let validator_set = genesis.validator_set();
    let mut uncovered: Vec<u64> = Vec::new();
    let namespace = genesis.hash().0;
    for v in &genesis.validators {
        rep.signers.insert(v.name.clone(), 0);
    }
    for (h, b) in reference.iter().enumerate().skip(1) {
        let Some(&i) = reachable.iter().find(|&&i| chains[i].len() > h) else {
            break;
        };
        let node = names[i].as_str();
        let h = h as u64;
        let info = match retry(|| clients[i].finalization(h)).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                uncovered.push(h);
                continue;
            }
            Err(e) => {
                rep.violation(Some(node), Some(h), format!("getFinalization failed: {e}"));
                continue;
            }
        };
        rep.certificates_checked += 1;
        let cert = hex::decode(&info.certificate)
            .ok()
            .and_then(|bytes| borsh::from_slice::<cairn_consensus::Certificate>(&bytes).ok());
        let Some(cert) = cert else {
            rep.violation(
                Some(node),
                Some(h),
                "certificate is not a borsh Certificate",
            );
            continue;
        };
        let certified = match &cert.kind {
            cairn_consensus::CertificateKind::Finalization(p) => Some(p.payload.0),
            _ => None,
        };
        if certified != Some(b.hash.0) || info.block_hash != b.hash {
            rep.violation(
                Some(node),
                Some(h),
                format!("certificate does not finalize block {}", b.hash),
            );
            continue;
        }
        if let Err(e) = cert.verify(&namespace, &validator_set) {
            rep.violation(
                Some(node),
                Some(h),
                format!("certificate does not verify: {e}"),
            );
            continue;
        }
        let signers: Vec<u16> = cert.signatures.iter().map(|(i, _)| *i).collect();
        if signers != info.signers {
            rep.violation(
                Some(node),
                Some(h),
                format!(
                    "signers {:?} differ from the certificate's {signers:?}",
                    info.signers
                ),
            );
        }
        for s in signers {
            if let Some(v) = genesis.validators.get(s as usize) {
                *rep.signers.entry(v.name.clone()).or_default() += 1;
            }
        }
        // This certificate finalizes every uncovered ancestor below it too.
        rep.heights_finalized_by_descendant += uncovered.len() as u64;
        uncovered.clear();
    }
    for h in uncovered {
        rep.violation(
            None,
            Some(h),
            "finalized block with no finalization certificate at its height or any later one",
        );
    }
    for (name, n) in rep.signers.clone() {
        if n == 0 {
            rep.violation(
                Some(&name),
                None,
                format!("validator signed no finalization certificate in heights 1..={last}"),
            );
        }
    }
    rep.signers_checked = true;
    rep.ok = rep.violations.is_empty();
    rep.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_matches_any_height_in_the_window() {
        let mut r = Replay::default();
        let a = Address([1; 32]);
        r.set(a, 0, 100, 0);
        r.set(a, 5, 90, 1);
        r.set(a, 9, 80, 2);
        assert!(r.matches(&a, 0, 0, (100, 0)));
        assert!(r.matches(&a, 4, 6, (100, 0)));
        assert!(r.matches(&a, 4, 6, (90, 1)));
        assert!(!r.matches(&a, 6, 8, (100, 0)));
        assert!(r.matches(&a, 10, 12, (80, 2)));
        assert!(!r.matches(&a, 10, 12, (90, 1)));
        let b = Address([2; 32]);
        r.set(b, 7, 5, 0);
        assert!(r.matches(&b, 3, 4, (0, 0)));
        assert!(!r.matches(&b, 8, 9, (0, 0)));
        assert!(r.matches(&Address([3; 32]), 1, 2, (0, 0)));
    }
}
