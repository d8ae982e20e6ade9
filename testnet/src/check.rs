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
//! 5. **Participation, epoch by epoch.** The validator set changes by governance at epoch
//!    boundaries, so every height is checked against the set of its epoch. The epochs come
//!    from `getEpochProof {epoch}` for epochs 0, 1, … (at most [`EPOCHS_MAX`]) on the node
//!    holding the most blocks, until it has no proof or the boundary is above the compared
//!    range: epoch `e` holds the heights after epoch `e - 1`'s boundary (after genesis for
//!    epoch 0) up to its own boundary, and the heights after the last boundary belong to the
//!    running epoch. Each proof must name the set the previous one decided (genesis's for
//!    epoch 0), with boundaries ascending. Every node must serve that set from
//!    `getValidators {height}` at the first and last height of each epoch, and, where it
//!    holds an ended epoch's boundary, a `getEpochProof` with the same boundary and sets whose
//!    proof verifies. Then, at every height, the header's `proposer` is in its epoch's set;
//!    every certificate served by `getFinalization` certifies the agreed block at its height
//!    and verifies against its epoch's set under `cairn_consensus::epoch_namespace(genesis
//!    hash, epoch)` (quorum power, every signature), and its `signers` (indices into that
//!    epoch's set) are the certificate's; a height without a certificate of its own
//!    (finalized together with a descendant) must be covered by the next certificate above it
//!    in the same epoch or, for the last heights of an ended epoch, by the epoch's proof.
//!    The boundary block of an ended epoch is always checked through its proof
//!    (`StoredEpochProof::verify`: a finalization by the epoch's set of the boundary itself or
//!    of an empty suffix block on it, which is never committed, with the suffix headers
//!    linking down to the agreed boundary block); a node stores a certificate of its own at
//!    the boundary only when the proof finalized the boundary directly. Every validator must
//!    have proposed at least one block and signed at least one certificate (or the
//!    finalization of a proof over a suffix block) in the heights it was in the set, if it
//!    was in the set at every checked height, or in the set of an epoch spanning at least
//!    [`PARTICIPATION_ROTATIONS`] × that set's size heights (three rotations of the leader
//!    schedule, which restarts in every epoch); other validators (in the set of short
//!    epochs only, such as one added shortly before the check or removed shortly after it
//!    joined) get a note. A chain with no block after genesis is a violation.
//!
//! Each violation names a node and a height where there is one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_genesis::Genesis;
use cairn_ledger::{Address, Hash};
use cairn_node::sync::StoredEpochProof;
use cairn_rpc::{
    BlockInfo, EpochProofInfo, FinalizationInfo, RpcClient, Status, ValidatorInfo, ValidatorsAt,
};
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
    /// Heights finalized by their epoch's proof that it ended (the boundary block and the
    /// heights below it with no certificate of their own, when the proof's finalization is of
    /// an empty suffix block on the boundary, which is never committed); not counted in
    /// `heights_finalized_by_descendant`.
    pub heights_finalized_by_epoch_proof: u64,
    /// Epochs in the checked heights (`getEpochProof`; the last one may be running).
    pub epochs: u64,
    /// Proofs that an epoch ended verified (`getEpochProof`, each node holding the boundary).
    pub epoch_proofs_checked: u64,
    /// `getValidators {height}` answers compared with the epoch's set (first and last height
    /// of each epoch, on every node).
    pub epoch_sets_checked: u64,
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
            "epochs: {} ({} proofs that an epoch ended verified, {} heights finalized by one; {} getValidators answers matched)\n",
            self.epochs,
            self.epoch_proofs_checked,
            self.heights_finalized_by_epoch_proof,
            self.epoch_sets_checked
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

    // 5. Participation, epoch by epoch.
    participation(
        &mut rep, &genesis, &clients, &names, &reachable, &chains, &reference,
    )
    .await;
    rep.signers_checked = true;
    rep.ok = rep.violations.is_empty();
    rep.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(rep)
}

/// Most epochs the check walks with `getEpochProof` (epochs 0, 1, … until a node has no proof
/// of an epoch's end). Heights after the last walked epoch's boundary are then left out of
/// step 5, with a note.
pub const EPOCHS_MAX: u64 = 10_000;

/// A validator that was not in the set at every checked height is required to have proposed a
/// block and signed a certificate only if it was in the set of an epoch spanning at least this
/// many rotations of the leader schedule: `PARTICIPATION_ROTATIONS × the epoch's set size`
/// heights (views restart at 1 in every epoch and leaders rotate by view, so a shorter epoch
/// may end before a healthy validator's turn comes).
pub const PARTICIPATION_ROTATIONS: u64 = 3;

/// An ended epoch as `getEpochProof` serves it.
#[derive(Clone, Debug)]
struct EndedEpoch {
    epoch: u64,
    boundary_height: u64,
    validators: Vec<ValidatorInfo>,
    next_validators: Vec<ValidatorInfo>,
}

impl From<&EpochProofInfo> for EndedEpoch {
    fn from(p: &EpochProofInfo) -> Self {
        EndedEpoch {
            epoch: p.epoch,
            boundary_height: p.boundary_height,
            validators: p.validators.clone(),
            next_validators: p.next_validators.clone(),
        }
    }
}

/// The heights `first..=last` of one epoch within the checked range, and its set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct EpochSpan {
    epoch: u64,
    first: u64,
    last: u64,
    /// `last` is the epoch's boundary (the epoch ended, with a proof); false for the epoch
    /// running at the checked tip.
    ended: bool,
    validators: Vec<ValidatorInfo>,
}

/// Maps heights `1..=top` to epochs from the ended epochs `ended` (epochs 0, 1, … in order,
/// each with a boundary at or below `top`): epoch `e` holds the heights after epoch `e - 1`'s
/// boundary (after genesis for epoch 0) up to its own boundary, with the set the previous
/// epoch's boundary decided (genesis's for epoch 0), which its proof must name. When
/// `complete` (no ended epoch has its boundary at or below `top` beyond `ended`), the heights
/// after the last boundary belong to the running epoch, with the last boundary's next set.
///
/// Stops at the first ended epoch that does not follow on (returned as the problem); the
/// heights from there on are then in no span.
fn epoch_spans(
    genesis: &[ValidatorInfo],
    ended: &[EndedEpoch],
    top: u64,
    complete: bool,
) -> (Vec<EpochSpan>, Option<String>) {
    let mut spans = Vec::new();
    let mut set = genesis.to_vec();
    let mut first = 1;
    for (k, e) in ended.iter().enumerate() {
        let k = k as u64;
        let problem = if e.epoch != k {
            Some(format!("the proof of epoch {k} is for epoch {}", e.epoch))
        } else if e.boundary_height < first {
            Some(format!(
                "epoch {k}'s boundary height {} is not above the previous boundary {}",
                e.boundary_height,
                first - 1
            ))
        } else if e.boundary_height > top {
            Some(format!(
                "epoch {k}'s boundary height {} is above the checked tip {top}",
                e.boundary_height
            ))
        } else if e.validators != set {
            Some(format!(
                "epoch {k}'s proof names the set [{}], but the previous epoch's boundary decided [{}]",
                set_names(&e.validators),
                set_names(&set)
            ))
        } else {
            None
        };
        if problem.is_some() {
            return (spans, problem);
        }
        spans.push(EpochSpan {
            epoch: k,
            first,
            last: e.boundary_height,
            ended: true,
            validators: std::mem::replace(&mut set, e.next_validators.clone()),
        });
        first = e.boundary_height + 1;
    }
    if complete && first <= top {
        spans.push(EpochSpan {
            epoch: ended.len() as u64,
            first,
            last: top,
            ended: false,
            validators: set,
        });
    }
    (spans, None)
}

/// The span holding height `h` (spans ascending and contiguous).
fn span_of(spans: &[EpochSpan], h: u64) -> Option<&EpochSpan> {
    let i = spans.partition_point(|s| s.last < h);
    spans.get(i).filter(|s| s.first <= h)
}

/// Per validator name: whether it must have proposed a block and signed a certificate (it
/// was in the set at every height of `spans`, or in the set of an epoch spanning at least
/// [`PARTICIPATION_ROTATIONS`] × that set's size heights), and the heights it was in the set.
fn participation_expected(spans: &[EpochSpan]) -> BTreeMap<String, (bool, u64)> {
    let total: u64 = spans.iter().map(|s| s.last + 1 - s.first).sum();
    let mut out: BTreeMap<String, (bool, u64)> = BTreeMap::new();
    for s in spans {
        let len = s.last + 1 - s.first;
        let long = len >= PARTICIPATION_ROTATIONS * s.validators.len() as u64;
        for v in &s.validators {
            let e = out.entry(v.name.clone()).or_default();
            e.0 |= long;
            e.1 += len;
        }
    }
    for e in out.values_mut() {
        e.0 |= e.1 == total;
    }
    out
}

fn set_names(set: &[ValidatorInfo]) -> String {
    set.iter()
        .map(|v| v.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The consensus set of `validators` (set order, keys from their addresses).
fn consensus_set(validators: &[ValidatorInfo]) -> Result<cairn_consensus::ValidatorSet, String> {
    let vs = validators
        .iter()
        .map(|v| {
            Ok(cairn_consensus::Validator {
                public_key: cairn_consensus::VerifyingKey::from_bytes(&v.address.0)
                    .map_err(|e| format!("validator {}: {e}", v.name))?,
                voting_power: v.voting_power,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    cairn_consensus::ValidatorSet::new(vs).map_err(|e| e.to_string())
}

/// Checks `info` (`getEpochProof`) proves that `boundary` (the agreed block at its boundary
/// height) was the last block of its epoch, whose set is `set`, on the chain with namespace
/// `namespace` (the genesis hash): the boundary is the agreed block, and the stored proof
/// (a finalization by `set` under the epoch's namespace of the boundary or of an empty suffix
/// block on it, with the suffix headers) verifies. Returns the decoded proof.
fn verify_epoch_proof(
    info: &EpochProofInfo,
    boundary: &BlockInfo,
    namespace: &[u8; 32],
    set: &cairn_consensus::ValidatorSet,
) -> Result<StoredEpochProof, String> {
    if info.boundary_height != boundary.header.height || info.boundary_hash != boundary.hash {
        return Err(format!(
            "its boundary {} at height {} is not the agreed block {} at height {}",
            info.boundary_hash, info.boundary_height, boundary.hash, boundary.header.height
        ));
    }
    let bytes = hex::decode(&info.proof).map_err(|e| format!("proof is not hex: {e}"))?;
    let stored: StoredEpochProof = borsh::from_slice(&bytes)
        .map_err(|e| format!("proof is not a borsh StoredEpochProof: {e}"))?;
    stored.verify(&boundary.header, boundary.hash, namespace, info.epoch, set)?;
    Ok(stored)
}

/// Step 5 (see the module documentation).
async fn participation(
    rep: &mut CheckReport,
    genesis: &Genesis,
    clients: &[Arc<RpcClient>],
    names: &[String],
    reachable: &[usize],
    chains: &[Vec<BlockInfo>],
    reference: &[BlockInfo],
) {
    let namespace = genesis.hash().0;
    let top = reference.len().saturating_sub(1) as u64;
    let genesis_set: Vec<ValidatorInfo> = genesis
        .validators
        .iter()
        .map(|v| ValidatorInfo {
            name: v.name.clone(),
            address: v.consensus_key,
            peer_id: v.peer_id.clone(),
            voting_power: v.voting_power,
        })
        .collect();
    for v in &genesis_set {
        rep.proposers.insert(v.name.clone(), 0);
        rep.signers.insert(v.name.clone(), 0);
    }
    if top == 0 {
        rep.violation(
            None,
            Some(0),
            "no block is finalized after genesis: no validator proposed or signed",
        );
        return;
    }

    // The epochs, from the node holding the most blocks.
    let Some(&walker) = reachable.iter().max_by_key(|&&i| chains[i].len()) else {
        return;
    };
    let mut proofs: Vec<EpochProofInfo> = Vec::new();
    let mut complete = false;
    for e in 0..EPOCHS_MAX {
        match retry(|| clients[walker].epoch_proof(e)).await {
            Ok(None) => {
                complete = true;
                break;
            }
            // Ended after the compared range: the running epoch there.
            Ok(Some(p)) if p.boundary_height > top => {
                complete = true;
                break;
            }
            Ok(Some(p)) => proofs.push(p),
            Err(err) => {
                rep.violation(
                    Some(&names[walker]),
                    None,
                    format!("getEpochProof {e} failed: {err}"),
                );
                break;
            }
        }
    }
    let ended: Vec<EndedEpoch> = proofs.iter().map(EndedEpoch::from).collect();
    let (spans, problem) = epoch_spans(&genesis_set, &ended, top, complete);
    if let Some(p) = problem {
        rep.violation(Some(&names[walker]), None, format!("getEpochProof: {p}"));
    }
    let covered = spans.last().map_or(0, |s| s.last);
    if covered < top {
        rep.notes.push(format!(
            "heights {}..={top} are in no known epoch (epochs walked: {}, at most {EPOCHS_MAX}): their proposers and certificates are not checked",
            covered + 1,
            proofs.len()
        ));
    }
    rep.epochs = spans.len() as u64;

    // Every node serves each epoch's set for its first and last height, and the same end of
    // each ended epoch (with a proof that verifies).
    for &i in reachable {
        let node = names[i].as_str();
        let node_top = chains[i].len().saturating_sub(1) as u64;
        for s in &spans {
            let mut heights = vec![s.first];
            if s.last != s.first {
                heights.push(s.last);
            }
            for h in heights.into_iter().filter(|&h| h <= node_top) {
                rep.epoch_sets_checked += 1;
                match retry(|| clients[i].validators_at(ValidatorsAt::Height(h))).await {
                    Ok(Some(v)) if v == s.validators => {}
                    Ok(Some(v)) => rep.violation(
                        Some(node),
                        Some(h),
                        format!(
                            "getValidators at this height serves [{}], not epoch {}'s set [{}]",
                            set_names(&v),
                            s.epoch,
                            set_names(&s.validators)
                        ),
                    ),
                    Ok(None) => rep.violation(
                        Some(node),
                        Some(h),
                        "getValidators at this finalized height returns null",
                    ),
                    Err(e) => rep.violation(
                        Some(node),
                        Some(h),
                        format!("getValidators at this height failed: {e}"),
                    ),
                }
            }
            if !s.ended || i == walker || s.last > node_top {
                continue;
            }
            let w = &proofs[s.epoch as usize];
            match retry(|| clients[i].epoch_proof(s.epoch)).await {
                Ok(Some(p)) => {
                    if p.epoch != w.epoch
                        || p.boundary_height != w.boundary_height
                        || p.boundary_hash != w.boundary_hash
                        || p.validators != w.validators
                        || p.next_validators != w.next_validators
                    {
                        rep.violation(
                            Some(node),
                            Some(s.last),
                            format!(
                                "getEpochProof {}: boundary {} at {} with sets [{}] → [{}], but {} serves boundary {} at {} with [{}] → [{}]",
                                s.epoch,
                                p.boundary_hash,
                                p.boundary_height,
                                set_names(&p.validators),
                                set_names(&p.next_validators),
                                names[walker],
                                w.boundary_hash,
                                w.boundary_height,
                                set_names(&w.validators),
                                set_names(&w.next_validators)
                            ),
                        );
                    } else if let Err(e) = consensus_set(&s.validators).and_then(|set| {
                        verify_epoch_proof(&p, &reference[s.last as usize], &namespace, &set)
                    }) {
                        rep.violation(
                            Some(node),
                            Some(s.last),
                            format!("proof that epoch {} ended does not verify: {e}", s.epoch),
                        );
                    } else {
                        rep.epoch_proofs_checked += 1;
                    }
                }
                Ok(None) => rep.violation(
                    Some(node),
                    Some(s.last),
                    format!(
                        "holds epoch {}'s boundary block but serves no proof that the epoch ended",
                        s.epoch
                    ),
                ),
                Err(e) => rep.violation(
                    Some(node),
                    Some(s.last),
                    format!("getEpochProof {} failed: {e}", s.epoch),
                ),
            }
        }
    }

    // Proposers and certificates, each against its epoch's set and namespace.
    let mut sets = Vec::with_capacity(spans.len());
    for s in &spans {
        for v in &s.validators {
            rep.proposers.entry(v.name.clone()).or_insert(0);
            rep.signers.entry(v.name.clone()).or_insert(0);
        }
        sets.push(match consensus_set(&s.validators) {
            Ok(set) => Some(set),
            Err(e) => {
                rep.violation(
                    None,
                    Some(s.first),
                    format!("epoch {}'s set is not a valid validator set: {e}", s.epoch),
                );
                None
            }
        });
    }
    // Heights with no certificate of their own, waiting for the next certificate of their
    // epoch (or its proof that it ended) to cover them.
    let mut uncovered: Vec<u64> = Vec::new();
    let mut boundary_certified = false;
    for h in 1..=covered {
        let Some(s) = span_of(&spans, h) else {
            break; // not reached: the spans cover 1..=covered
        };
        let k = s.epoch as usize;
        if h == s.first {
            boundary_certified = false;
        }
        let b = &reference[h as usize];
        match s.validators.iter().find(|v| v.address == b.header.proposer) {
            Some(v) => *rep.proposers.entry(v.name.clone()).or_default() += 1,
            None => rep.violation(
                None,
                Some(h),
                format!(
                    "proposer {} is not a validator of epoch {}",
                    b.header.proposer, s.epoch
                ),
            ),
        }
        let Some(set) = &sets[k] else {
            continue; // reported above
        };
        if let Some(&i) = reachable.iter().find(|&&i| chains[i].len() as u64 > h) {
            let node = names[i].as_str();
            match retry(|| clients[i].finalization(h)).await {
                Ok(Some(info)) => {
                    rep.certificates_checked += 1;
                    match check_certificate(
                        &info,
                        b,
                        &cairn_consensus::epoch_namespace(&namespace, s.epoch),
                        set,
                    ) {
                        Err(e) => {
                            rep.violation(Some(node), Some(h), format!("{e} (epoch {})", s.epoch))
                        }
                        Ok(signers) => {
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
                            for s_index in signers {
                                if let Some(v) = s.validators.get(s_index as usize) {
                                    *rep.signers.entry(v.name.clone()).or_default() += 1;
                                }
                            }
                            // This certificate finalizes every uncovered ancestor below it
                            // in its epoch too.
                            rep.heights_finalized_by_descendant += uncovered.len() as u64;
                            uncovered.clear();
                            boundary_certified = h == s.last;
                        }
                    }
                }
                Ok(None) => uncovered.push(h),
                Err(e) => {
                    rep.violation(Some(node), Some(h), format!("getFinalization failed: {e}"))
                }
            }
        }
        if h != s.last || !s.ended {
            continue;
        }
        // The boundary: the proof that the epoch ended finalizes it (directly, or through an
        // empty suffix block on it that is never committed), and with it every height of the
        // epoch still uncovered.
        match verify_epoch_proof(&proofs[k], b, &namespace, set) {
            Ok(stored) => {
                rep.epoch_proofs_checked += 1;
                if !boundary_certified {
                    for (s_index, _) in &stored.proof.finalization.signatures {
                        if let Some(v) = s.validators.get(*s_index as usize) {
                            *rep.signers.entry(v.name.clone()).or_default() += 1;
                        }
                    }
                    rep.heights_finalized_by_epoch_proof += uncovered.len() as u64;
                }
                uncovered.clear();
            }
            Err(e) => rep.violation(
                Some(&names[walker]),
                Some(h),
                format!("proof that epoch {} ended does not verify: {e}", s.epoch),
            ),
        }
        for u in uncovered.drain(..) {
            rep.violation(
                None,
                Some(u),
                format!(
                    "finalized block with no certificate of epoch {} at its height or a later one, and no valid proof that the epoch ended",
                    s.epoch
                ),
            );
        }
    }
    for h in uncovered {
        rep.violation(
            None,
            Some(h),
            "finalized block with no finalization certificate at its height or any later one",
        );
    }

    // Every validator proposed and signed, where it was in the set long enough to.
    for (name, (required, heights)) in participation_expected(&spans) {
        if !required {
            rep.notes.push(format!(
                "{name} was a validator for {heights} heights, in no epoch of {PARTICIPATION_ROTATIONS} leader rotations or more: not required to propose or sign (proposed {}, signed {})",
                rep.proposers.get(&name).copied().unwrap_or(0),
                rep.signers.get(&name).copied().unwrap_or(0)
            ));
            continue;
        }
        if rep.proposers.get(&name).copied().unwrap_or(0) == 0 {
            rep.violation(
                Some(&name),
                None,
                format!("validator proposed no block in the {heights} heights of 1..={covered} it was a validator for"),
            );
        }
        if rep.signers.get(&name).copied().unwrap_or(0) == 0 {
            rep.violation(
                Some(&name),
                None,
                format!("validator signed no finalization certificate in the {heights} heights of 1..={covered} it was a validator for"),
            );
        }
    }
}

/// Checks a served certificate: it decodes, finalizes the agreed block `b`, verifies under
/// `namespace` against `set` (quorum power, every signature). Returns its signers (indices
/// into `set`).
fn check_certificate(
    info: &FinalizationInfo,
    b: &BlockInfo,
    namespace: &[u8; 32],
    set: &cairn_consensus::ValidatorSet,
) -> Result<Vec<u16>, String> {
    let cert = hex::decode(&info.certificate)
        .ok()
        .and_then(|bytes| borsh::from_slice::<cairn_consensus::Certificate>(&bytes).ok())
        .ok_or("certificate is not a borsh Certificate")?;
    let certified = match &cert.kind {
        cairn_consensus::CertificateKind::Finalization(p) => Some(p.payload.0),
        _ => None,
    };
    if certified != Some(b.hash.0) || info.block_hash != b.hash {
        return Err(format!("certificate does not finalize block {}", b.hash));
    }
    cert.verify(namespace, set)
        .map_err(|e| format!("certificate does not verify: {e}"))?;
    Ok(cert.signatures.iter().map(|(i, _)| *i).collect())
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

    fn v(name: &str, k: u8) -> ValidatorInfo {
        ValidatorInfo {
            name: name.into(),
            address: Address([k; 32]),
            peer_id: format!("peer-{k}"),
            voting_power: 1,
        }
    }

    fn set(names: &[(&str, u8)]) -> Vec<ValidatorInfo> {
        names.iter().map(|&(n, k)| v(n, k)).collect()
    }

    fn ended(
        epoch: u64,
        boundary: u64,
        from: &[ValidatorInfo],
        to: &[ValidatorInfo],
    ) -> EndedEpoch {
        EndedEpoch {
            epoch,
            boundary_height: boundary,
            validators: from.to_vec(),
            next_validators: to.to_vec(),
        }
    }

    #[test]
    fn heights_map_to_epochs_between_boundaries() {
        let s0 = set(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
        let s1 = set(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]);
        let s2 = set(&[("b", 2), ("c", 3), ("d", 4), ("e", 5)]);
        let proofs = [ended(0, 10, &s0, &s1), ended(1, 11, &s1, &s2)];
        let (spans, problem) = epoch_spans(&s0, &proofs, 40, true);
        assert_eq!(problem, None);
        let ranges: Vec<(u64, u64, u64, bool)> = spans
            .iter()
            .map(|s| (s.epoch, s.first, s.last, s.ended))
            .collect();
        assert_eq!(
            ranges,
            [(0, 1, 10, true), (1, 11, 11, true), (2, 12, 40, false)]
        );
        assert_eq!(spans[0].validators, s0);
        assert_eq!(spans[1].validators, s1);
        assert_eq!(spans[2].validators, s2);
        for (h, e) in [(1, 0), (9, 0), (10, 0), (11, 1), (12, 2), (40, 2)] {
            assert_eq!(span_of(&spans, h).map(|s| s.epoch), Some(e), "height {h}");
        }
        assert_eq!(span_of(&spans, 0), None);
        assert_eq!(span_of(&spans, 41), None);

        // No proof: genesis's set throughout; the last boundary at the tip: no running epoch.
        let (spans, _) = epoch_spans(&s0, &[], 5, true);
        assert_eq!(spans.len(), 1);
        assert_eq!(
            (spans[0].first, spans[0].last, spans[0].ended),
            (1, 5, false)
        );
        let (spans, _) = epoch_spans(&s0, &proofs[..1], 10, true);
        assert_eq!(spans.len(), 1);
        assert!(spans[0].ended);
        // The walk stopped early (failed or bounded): no running epoch is assumed.
        let (spans, problem) = epoch_spans(&s0, &proofs[..1], 40, false);
        assert_eq!((spans.len(), problem), (1, None));
        assert_eq!(span_of(&spans, 11), None);
    }

    #[test]
    fn a_proof_chain_that_does_not_follow_on_is_a_problem() {
        let s0 = set(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
        let s1 = set(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]);
        // Epoch 1's proof names a set that is not the one epoch 0's boundary decided.
        let (spans, problem) = epoch_spans(
            &s0,
            &[ended(0, 10, &s0, &s1), ended(1, 20, &s0, &s1)],
            30,
            true,
        );
        assert_eq!(spans.len(), 1);
        assert!(problem.unwrap().contains("epoch 1's proof names the set"));
        // Epoch 0's proof names another set than genesis's.
        let (spans, problem) = epoch_spans(&s0, &[ended(0, 10, &s1, &s0)], 30, true);
        assert!(spans.is_empty());
        assert!(problem.is_some());
        // Boundaries not ascending, at genesis, or above the tip; proofs out of order.
        for bad in [
            vec![ended(0, 10, &s0, &s1), ended(1, 10, &s1, &s0)],
            vec![ended(0, 0, &s0, &s1)],
            vec![ended(0, 31, &s0, &s1)],
            vec![ended(1, 10, &s0, &s1)],
        ] {
            let (_, problem) = epoch_spans(&s0, &bad, 30, true);
            assert!(problem.is_some(), "{bad:?}");
        }
    }

    #[test]
    fn participation_is_required_of_members_of_the_whole_run_or_of_a_long_epoch() {
        let s0 = set(&[("a", 1), ("b", 2), ("c", 3), ("d", 4)]);
        let s1 = set(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]);
        let s2 = set(&[("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6)]);
        // Epoch 0: heights 1..=20 (4 validators: 12 needed); epoch 1: 21..=25 (5: 15 needed,
        // short); epoch 2: 26..=40 (5: 15 heights, long enough).
        let proofs = [ended(0, 20, &s0, &s1), ended(1, 25, &s1, &s2)];
        let (spans, _) = epoch_spans(&s0, &proofs, 40, true);
        let expected = participation_expected(&spans);
        let got: Vec<(&str, bool, u64)> = expected
            .iter()
            .map(|(n, &(r, h))| (n.as_str(), r, h))
            .collect();
        assert_eq!(
            got,
            [
                ("a", true, 25), // a long epoch 0, removed later
                ("b", true, 40), // the whole run
                ("c", true, 40),
                ("d", true, 40),
                ("e", true, 20), // the short epoch 1 and the long epoch 2
                ("f", true, 15), // exactly 3 rotations of 5
            ]
        );
        // Ending one height earlier, f's only epoch is too short; e's too.
        let (spans, _) = epoch_spans(&s0, &proofs, 39, true);
        let expected = participation_expected(&spans);
        assert_eq!(expected["f"], (false, 14));
        assert_eq!(expected["e"], (false, 19));
        assert_eq!(expected["b"], (true, 39));
        // A validator of every height is required even when every epoch is short.
        let (spans, _) = epoch_spans(&s0, &[ended(0, 2, &s0, &s1)], 4, true);
        let expected = participation_expected(&spans);
        assert_eq!(expected["a"], (true, 4));
        assert_eq!(expected["e"], (false, 2));
    }

    #[test]
    fn consensus_sets_are_built_in_set_order_from_the_addresses() {
        let keys: Vec<ValidatorInfo> = (1u8..=4)
            .map(|k| {
                let key = cairn_consensus::SigningKey::from_bytes(&[k; 32]).verifying_key();
                ValidatorInfo {
                    address: Address(key.to_bytes()),
                    ..v(&format!("v{k}"), k)
                }
            })
            .collect();
        let s = consensus_set(&keys).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.iter().next().unwrap().public_key.to_bytes(),
            keys[0].address.0
        );
        let mut dup = keys.clone();
        dup[1].address = dup[0].address;
        assert!(consensus_set(&dup).is_err());
    }

    /// Four validators with real keys, the set, and a boundary block at height 10 with an
    /// empty suffix block on it.
    struct EpochFixture {
        keys: Vec<cairn_consensus::SigningKey>,
        validators: Vec<ValidatorInfo>,
        boundary: BlockInfo,
        suffix: cairn_ledger::BlockHeader,
    }

    const CHAIN: [u8; 32] = [9; 32];

    impl EpochFixture {
        fn new() -> Self {
            let keys: Vec<_> = (1u8..=4)
                .map(|k| cairn_consensus::SigningKey::from_bytes(&[k; 32]))
                .collect();
            let validators = keys
                .iter()
                .enumerate()
                .map(|(i, k)| ValidatorInfo {
                    address: Address(k.verifying_key().to_bytes()),
                    ..v(&format!("validator-{i}"), i as u8)
                })
                .collect();
            let empty = cairn_ledger::txs_root(&[]);
            let header = cairn_ledger::BlockHeader {
                chain_id: "c".into(),
                height: 10,
                view: 12,
                parent_hash: Hash([1; 32]),
                proposer: Address(keys[0].verifying_key().to_bytes()),
                timestamp_ms: 1,
                txs_root: Hash([2; 32]),
                signed_txs_root: Hash([3; 32]),
                state_root: Hash([4; 32]),
            };
            let boundary = BlockInfo {
                hash: header.hash(),
                header: header.clone(),
                transactions: Vec::new(),
            };
            let suffix = cairn_ledger::BlockHeader {
                height: 11,
                view: 13,
                parent_hash: boundary.hash,
                txs_root: empty,
                signed_txs_root: empty,
                ..header
            };
            EpochFixture {
                keys,
                validators,
                boundary,
                suffix,
            }
        }

        fn set(&self) -> cairn_consensus::ValidatorSet {
            consensus_set(&self.validators).unwrap()
        }

        /// A finalization of `block` signed by `signers` under `namespace`.
        fn finalization(
            &self,
            block: Hash,
            namespace: &[u8; 32],
            signers: &[u16],
        ) -> cairn_consensus::Certificate {
            let p = cairn_consensus::Proposal {
                view: 13,
                parent_view: 12,
                parent: cairn_consensus::Digest([5; 32]),
                payload: cairn_consensus::Digest(block.0),
            };
            let kind = cairn_consensus::CertificateKind::Finalization(p);
            cairn_consensus::Certificate {
                signatures: signers
                    .iter()
                    .map(|&s| {
                        let vote = cairn_consensus::Vote::sign(
                            namespace,
                            kind.vote_kind(),
                            s,
                            &self.keys[s as usize],
                        );
                        (s, vote.signature)
                    })
                    .collect(),
                kind,
            }
        }

        /// `getEpochProof` of epoch `epoch` ending at the boundary, with `proof`.
        fn info(&self, epoch: u64, proof: &StoredEpochProof) -> EpochProofInfo {
            EpochProofInfo {
                epoch,
                boundary_height: 10,
                boundary_hash: self.boundary.hash,
                validators: self.validators.clone(),
                next_validators: self.validators.clone(),
                proof: hex::encode(borsh::to_vec(proof).unwrap()),
            }
        }
    }

    #[test]
    fn an_epoch_proof_verifies_under_its_epochs_namespace_and_set_only() {
        let f = EpochFixture::new();
        let set = f.set();
        let n1 = cairn_consensus::epoch_namespace(&CHAIN, 1);
        let b = cairn_consensus::Digest(f.boundary.hash.0);
        let s = cairn_consensus::Digest(f.suffix.hash().0);
        let proof = |fin, blocks: Vec<cairn_consensus::Digest>, suffix| StoredEpochProof {
            proof: cairn_consensus::EpochProof {
                epoch: 1,
                finalization: fin,
                blocks,
            },
            suffix,
        };
        // The boundary finalized directly, and through an empty suffix block on it.
        let direct = proof(
            f.finalization(f.boundary.hash, &n1, &[0, 1, 2]),
            vec![b],
            vec![],
        );
        verify_epoch_proof(&f.info(1, &direct), &f.boundary, &CHAIN, &set).unwrap();
        let by_suffix = proof(
            f.finalization(f.suffix.hash(), &n1, &[1, 2, 3]),
            vec![s, b],
            vec![f.suffix.clone()],
        );
        let stored = verify_epoch_proof(&f.info(1, &by_suffix), &f.boundary, &CHAIN, &set).unwrap();
        assert_eq!(stored, by_suffix);

        // Signed under the chain's (epoch 0) namespace; below quorum; for another epoch.
        let genesis_ns = proof(
            f.finalization(f.boundary.hash, &CHAIN, &[0, 1, 2]),
            vec![b],
            vec![],
        );
        assert!(verify_epoch_proof(&f.info(1, &genesis_ns), &f.boundary, &CHAIN, &set).is_err());
        let thin = proof(
            f.finalization(f.boundary.hash, &n1, &[0, 1]),
            vec![b],
            vec![],
        );
        assert!(verify_epoch_proof(&f.info(1, &thin), &f.boundary, &CHAIN, &set).is_err());
        assert!(verify_epoch_proof(&f.info(2, &direct), &f.boundary, &CHAIN, &set).is_err());
        // Another set (the keys in another order).
        let mut other = f.validators.clone();
        other.rotate_left(1);
        let other = consensus_set(&other).unwrap();
        assert!(verify_epoch_proof(&f.info(1, &direct), &f.boundary, &CHAIN, &other).is_err());
        // Not the agreed boundary block; a suffix header that is not the listed one.
        let mut elsewhere = f.boundary.clone();
        elsewhere.header.timestamp_ms = 2;
        elsewhere.hash = elsewhere.header.hash();
        let err = verify_epoch_proof(&f.info(1, &direct), &elsewhere, &CHAIN, &set).unwrap_err();
        assert!(err.contains("not the agreed block"), "{err}");
        let mut forged = by_suffix.clone();
        forged.suffix[0].timestamp_ms = 2;
        assert!(verify_epoch_proof(&f.info(1, &forged), &f.boundary, &CHAIN, &set).is_err());
        // Not a proof at all.
        let mut garbage = f.info(1, &direct);
        garbage.proof = "00".into();
        assert!(verify_epoch_proof(&garbage, &f.boundary, &CHAIN, &set).is_err());
    }

    #[test]
    fn a_certificate_verifies_under_its_epochs_namespace_and_set_only() {
        let f = EpochFixture::new();
        let set = f.set();
        let n2 = cairn_consensus::epoch_namespace(&CHAIN, 2);
        let info = |cert: &cairn_consensus::Certificate| FinalizationInfo {
            height: 10,
            block_hash: f.boundary.hash,
            view: 13,
            signers: cert.signatures.iter().map(|(i, _)| *i).collect(),
            certificate: hex::encode(borsh::to_vec(cert).unwrap()),
        };
        let cert = f.finalization(f.boundary.hash, &n2, &[0, 2, 3]);
        assert_eq!(
            check_certificate(&info(&cert), &f.boundary, &n2, &set),
            Ok(vec![0, 2, 3])
        );
        // Under another epoch's namespace (genesis's, epoch 1's).
        assert!(check_certificate(&info(&cert), &f.boundary, &CHAIN, &set).is_err());
        let n1 = cairn_consensus::epoch_namespace(&CHAIN, 1);
        assert!(check_certificate(&info(&cert), &f.boundary, &n1, &set).is_err());
        // Of another block; below quorum.
        let other = f.finalization(f.suffix.hash(), &n2, &[0, 2, 3]);
        let err = check_certificate(&info(&other), &f.boundary, &n2, &set).unwrap_err();
        assert!(err.contains("does not finalize"), "{err}");
        let thin = f.finalization(f.boundary.hash, &n2, &[0, 2]);
        assert!(check_certificate(&info(&thin), &f.boundary, &n2, &set).is_err());
    }
}
