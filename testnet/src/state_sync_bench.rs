//! State sync against full replay on a long chain (issue 16): the machinery of
//! `tests/state_sync.rs` (a live chain with many genesis accounts) and of [`run`] (a chain
//! made by the history fabricator, [`crate::fabricate`]), shared by both.
//!
//! [`run`] generates a testnet of 4 validators and 4 full nodes, fabricates `blocks` blocks
//! of `transfers_per_block` transfers into the stores of the validators and of full node 4,
//! starts the validators on it and full node 4 with `--byzantine corrupt-chunks` (it serves
//! every snapshot chunk with a byte flipped; a full node, because validators are never banned
//! for their score: `node/src/network/mod.rs`, "Reputation"), waits until the validators
//! finalize new blocks on top of it and each of validators 0 and 1 and node 4 holds a
//! snapshot past the fabricated head, then starts, one at a time:
//!
//! 1. a full node that joins by state sync from 3 peers (validators 0 and 1, node 4);
//! 2. a full node that joins by state sync from 1 peer (validator 0);
//! 3. a full node that replays the whole chain from validator 0 (`sync.state_sync = false`,
//!    `sync.reverify_signatures = true`: every certificate and every transaction signature
//!    is checked).
//!
//! Each must reach the tip validator 0 had when it started and agree with validator 0 on
//! its head block's hash and state root ([`join_and_check`]); the first must have banned the
//! corrupt peer ([`check_banned`]). Time to the tip and bytes received (the
//! `cairn_state_sync_bytes_received_total` and `cairn_sync_bytes_received_total` metrics)
//! are reported for each. Needs a debug `cairn-node` built with the `byzantine` feature
//! (`--byzantine` exists only there), or a release build with debug assertions on
//! (`CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_node::config::NodeConfig;
use cairn_rpc::RpcClient;
use serde::Serialize;

use crate::fabricate::{FabricateOptions, FabricateReport, fabricate};
use crate::{
    GenerateOptions, LocalTestnet, Manifest, find_node_binary, free_port_ranges, generate,
    scrape_metric,
};

/// How often the waits poll, milliseconds.
pub const POLL_MS: u64 = 200;

/// Polls `f` every [`POLL_MS`] until it is true or `timeout` has passed.
///
/// # Errors
/// `timeout` passed, naming `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// The node's latest height (0 while it does not answer).
pub async fn height(c: &RpcClient) -> u64 {
    c.status().await.map(|s| s.latest_height).unwrap_or(0)
}

/// Rewrites `home/config.toml` through `f`.
///
/// # Errors
/// The config does not load or cannot be written.
pub fn edit_config(home: &Path, f: impl FnOnce(&mut NodeConfig)) -> Result<()> {
    let path = home.join("config.toml");
    let mut c = NodeConfig::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    f(&mut c);
    std::fs::write(&path, c.to_toml()).with_context(|| format!("writing {}", path.display()))
}

/// Waits until each of `homes` holds a complete snapshot (a manifest) of a height at least
/// `min_height`.
///
/// # Errors
/// One does not within `timeout`.
pub async fn wait_for_snapshots(homes: &[&Path], min_height: u64, timeout: Duration) -> Result<()> {
    for home in homes {
        let snaps = home.join("snapshots");
        wait_until(
            &format!("a snapshot at or above {min_height} in {}", snaps.display()),
            timeout,
            || async {
                cairn_ledger::snapshot::list_snapshots(&snaps)
                    .map(|l| {
                        l.iter()
                            .any(|(h, p)| *h >= min_height && p.join("manifest").is_file())
                    })
                    .unwrap_or(false)
            },
        )
        .await?;
    }
    Ok(())
}

/// How a node joined, and what it cost.
#[derive(Clone, Debug, Serialize)]
pub struct JoinFigures {
    /// What was measured ("state sync, 3 peers (1 corrupt)", ...).
    pub what: String,
    /// Validator 0's height when the node started: the tip it had to reach.
    pub tip: u64,
    /// Seconds from starting the node to its reaching `tip`.
    pub secs: f64,
    /// Height of the snapshot it installed (0: it replayed every block).
    pub snapshot_height: u64,
    /// Bytes of snapshot chunks and manifests received.
    pub state_sync_bytes: u64,
    /// Bytes of block sync responses received.
    pub block_sync_bytes: u64,
}

impl JoinFigures {
    /// Bytes received by both kinds of sync.
    pub fn bytes(&self) -> u64 {
        self.state_sync_bytes + self.block_sync_bytes
    }
}

/// Starts node `i` of `net` (with `args`), waits until it is at or past validator 0's height
/// (`reference`) at the start, then checks that it joined as expected
/// (`by_state_sync`: a snapshot of height at least `snapshot_min`; else none) and that it
/// agrees with `reference` on its head block's hash and state root.
///
/// # Errors
/// It does not reach the tip within `timeout`, joined the other way, or disagrees.
#[allow(clippy::too_many_arguments)]
pub async fn join_and_check(
    net: &mut LocalTestnet,
    i: usize,
    what: &str,
    args: &[&str],
    reference: &RpcClient,
    by_state_sync: bool,
    snapshot_min: u64,
    timeout: Duration,
) -> Result<JoinFigures> {
    let entry = net.manifest.nodes[i].clone();
    let client = RpcClient::new(&entry.rpc_url)?;
    let tip = height(reference).await;
    let started = Instant::now();
    net.start_node_with_args(i, args)?;
    wait_until(
        &format!("{what}: node {i} to reach height {tip}"),
        timeout,
        || async { height(&client).await >= tip },
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let http = reqwest::Client::new();
    let metric = |name: &'static str| {
        let (http, url) = (http.clone(), entry.rpc_url.clone());
        async move {
            scrape_metric(&http, &url, name)
                .await
                .ok()
                .flatten()
                .unwrap_or(0.0)
        }
    };
    let figures = JoinFigures {
        what: what.to_string(),
        tip,
        secs,
        snapshot_height: metric("cairn_state_sync_height").await as u64,
        state_sync_bytes: metric("cairn_state_sync_bytes_received_total").await as u64,
        block_sync_bytes: metric("cairn_sync_bytes_received_total").await as u64,
    };
    if by_state_sync && figures.snapshot_height < snapshot_min {
        bail!(
            "{what}: did not join by state sync (snapshot height {}, expected at least {snapshot_min})",
            figures.snapshot_height
        );
    }
    if !by_state_sync && figures.snapshot_height != 0 {
        bail!(
            "{what}: state-synced (snapshot height {}) but must replay",
            figures.snapshot_height
        );
    }
    // It agrees with the reference on its head block (hash, so the state root too): a block
    // it holds, past the snapshot it installed (whose body it does not hold).
    wait_until(
        &format!("{what}: node {i} to commit a block past its snapshot"),
        timeout,
        || async { height(&client).await > figures.snapshot_height },
    )
    .await?;
    let h = height(&client).await;
    let mine = client
        .block_hashes_by_height(h)
        .await?
        .with_context(|| format!("{what}: node {i} has no block {h}"))?;
    let theirs = reference
        .block_hashes_by_height(h)
        .await?
        .with_context(|| format!("{what}: the reference has no block {h}"))?;
    if mine.hash != theirs.hash || mine.header.state_root != theirs.header.state_root {
        bail!(
            "{what}: block {h} differs: {} (state root {}) against the reference's {} ({})",
            mine.hash,
            mine.header.state_root,
            theirs.hash,
            theirs.header.state_root
        );
    }
    eprintln!(
        "{what}: tip {tip} reached in {secs:.1} s; snapshot height {}; state sync {} bytes + \
         block sync {} bytes",
        figures.snapshot_height, figures.state_sync_bytes, figures.block_sync_bytes
    );
    Ok(figures)
}

/// Checks that the node at `home` (answering on `client`) saw a bad chunk from
/// `corrupt_peer`, banned it, and is no longer connected to it.
///
/// # Errors
/// Any of the three is not so.
pub async fn check_banned(home: &Path, client: &RpcClient, corrupt_peer: &str) -> Result<()> {
    let log = std::fs::read_to_string(home.join("node.log"))?;
    if !log
        .lines()
        .any(|l| l.contains("bad chunk") && l.contains(corrupt_peer))
    {
        bail!("the joiner saw no bad chunk from the corrupt peer {corrupt_peer}");
    }
    if !log
        .lines()
        .any(|l| l.contains("banned") && l.contains(corrupt_peer))
    {
        bail!("the corrupt peer {corrupt_peer} was not banned");
    }
    let peers = client.peers().await?;
    if peers.iter().any(|p| p.peer_id == corrupt_peer) {
        bail!("still connected to the banned peer {corrupt_peer}: {peers:?}");
    }
    Ok(())
}

/// What [`run`] does.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Directory for the testnet (must not hold one).
    pub out: PathBuf,
    /// Blocks to fabricate.
    pub blocks: u64,
    /// Transfers per fabricated block (each funds a fresh account).
    pub transfers_per_block: u32,
    /// Funded demo accounts that send the fabricated transfers.
    pub senders: usize,
    /// Snapshot interval of the validators, blocks.
    pub snapshot_interval_blocks: u64,
    /// Snapshot chunk target, bytes.
    pub snapshot_chunk_bytes: u32,
    /// Longest wait for any one step (the chain, snapshots, a node to reach the tip).
    pub wait_max: Duration,
    /// The `cairn-node` binary ([`find_node_binary`] if `None`).
    pub node_bin: Option<PathBuf>,
    /// Fabrication progress on stderr.
    pub progress: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            out: PathBuf::from("state-sync-bench"),
            blocks: 100_000,
            transfers_per_block: 10,
            senders: 16,
            snapshot_interval_blocks: 20,
            snapshot_chunk_bytes: 128 * 1024,
            wait_max: Duration::from_secs(3600),
            node_bin: None,
            progress: false,
        }
    }
}

impl BenchOptions {
    /// Checks the options.
    ///
    /// # Errors
    /// No senders, a zero snapshot interval or one above `blocks`, a zero wait.
    pub fn validate(&self) -> Result<()> {
        if self.senders == 0 {
            bail!("at least one sender");
        }
        if self.snapshot_interval_blocks == 0 || self.snapshot_interval_blocks > self.blocks {
            bail!(
                "the snapshot interval must be 1..=blocks ({}), got {}",
                self.blocks,
                self.snapshot_interval_blocks
            );
        }
        if self.wait_max.is_zero() {
            bail!("the wait must be positive");
        }
        Ok(())
    }
}

/// What [`run`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Accounts in the state (genesis accounts, validators' fee accounts and fabricated
    /// recipients).
    pub accounts: u64,
    /// The fabrication.
    pub fabricated: FabricateReport,
    /// Height validator 0 had reached when the first joiner started.
    pub chain_height: u64,
    /// The three joins, in the order run.
    pub joins: Vec<JoinFigures>,
}

impl BenchReport {
    /// A Markdown table of the joins.
    pub fn table(&self) -> String {
        let mut s = format!(
            "fabricated {} blocks ({} transfers) in {:.1} s, copied in {:.1} s, {} bytes of \
             database; {} accounts\n\n\
             | how | tip | time to tip (s) | snapshot height | state sync bytes | block sync bytes | bytes received |\n\
             |---|---|---|---|---|---|---|\n",
            self.fabricated.blocks_written,
            self.fabricated.transfers_written,
            self.fabricated.build_secs,
            self.fabricated.copy_secs,
            self.fabricated.db_bytes,
            self.accounts
        );
        for j in &self.joins {
            s.push_str(&format!(
                "| {} | {} | {:.1} | {} | {} | {} | {} |\n",
                j.what,
                j.tip,
                j.secs,
                j.snapshot_height,
                j.state_sync_bytes,
                j.block_sync_bytes,
                j.bytes()
            ));
        }
        s
    }
}

/// Runs the benchmark (module docs). Every node it started is stopped when it returns.
///
/// # Errors
/// Bad options, generation or fabrication failures, a node that does not reach the tip or
/// disagrees, a corrupt peer not banned.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport> {
    opts.validate()?;
    let (validators, full_nodes) = (4, 4);
    let (p2p_port, rpc_port) = free_port_ranges(validators + full_nodes);
    let manifest = generate(&GenerateOptions {
        validators,
        full_nodes,
        out: opts.out.clone(),
        chain_id: "cairn-history".into(),
        accounts: opts.senders,
        balance: 1_000_000_000_000_000,
        p2p_port,
        rpc_port,
        ..GenerateOptions::default()
    })?;
    let (corrupt, joiner3, joiner1, replay) = (4, 5, 6, 7);
    let addr = |i: usize| manifest.nodes[i].p2p_addr.clone();
    for (i, node) in manifest.nodes.iter().enumerate() {
        edit_config(&node.home, |c| {
            c.sync.snapshot_interval_blocks = opts.snapshot_interval_blocks;
            c.sync.snapshot_chunk_bytes = opts.snapshot_chunk_bytes;
            c.sync.state_sync_min_gap_blocks = opts.snapshot_interval_blocks;
            if i > corrupt {
                c.p2p.discovery = false;
                c.sync.snapshot_interval_blocks = 0;
            }
            if i == joiner3 {
                c.p2p.bootstrap = vec![addr(0), addr(1), addr(corrupt)];
                c.sync.state_sync_peers_min = 3;
            }
            if i == joiner1 {
                c.p2p.bootstrap = vec![addr(0)];
                c.sync.state_sync_peers_min = 1;
            }
            if i == replay {
                c.p2p.bootstrap = vec![addr(0)];
                c.sync.state_sync = false;
                c.sync.reverify_signatures = true;
            }
        })?;
    }
    let fabricated = fabricate(&FabricateOptions {
        dir: opts.out.clone(),
        blocks: opts.blocks,
        transfers_per_block: opts.transfers_per_block,
        copy_to: vec![corrupt],
        progress: opts.progress,
    })?;
    eprintln!(
        "fabricated {} blocks in {:.1} s (head {}, state root {})",
        fabricated.blocks_written,
        fabricated.build_secs,
        fabricated.head_hash,
        fabricated.state_root
    );
    let manifest = Manifest::load(&opts.out)?;
    let reference = RpcClient::new(&manifest.nodes[0].rpc_url)?;
    let node_bin = opts.node_bin.clone().unwrap_or_else(find_node_binary);
    let mut net = LocalTestnet::new(manifest.clone(), node_bin);
    for i in 0..validators {
        net.start_node(i)?;
    }
    net.start_node_with_args(corrupt, &["--byzantine", "corrupt-chunks"])?;
    // The validators accept the fabricated chain: they finalize new blocks on it, and each
    // provider makes a snapshot past it.
    let past = opts.blocks + opts.snapshot_interval_blocks;
    let t = Instant::now();
    wait_until(
        &format!("the validators to finalize past the fabricated head to {past}"),
        opts.wait_max,
        || async { height(&reference).await >= past },
    )
    .await?;
    eprintln!(
        "validators at height {past} after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let homes: Vec<&Path> = [0, 1, corrupt]
        .iter()
        .map(|&i| manifest.nodes[i].home.as_path())
        .collect();
    wait_for_snapshots(&homes, opts.blocks + 1, opts.wait_max).await?;
    let chain_height = height(&reference).await;

    let mut joins = Vec::new();
    for (i, what, by_state_sync) in [
        (joiner3, "state sync, 3 peers (1 corrupt)", true),
        (joiner1, "state sync, 1 peer", true),
        (
            replay,
            "full replay, 1 peer (signatures re-verified)",
            false,
        ),
    ] {
        joins.push(
            join_and_check(
                &mut net,
                i,
                what,
                &[],
                &reference,
                by_state_sync,
                opts.blocks + 1,
                opts.wait_max,
            )
            .await?,
        );
    }
    let joiner = RpcClient::new(&manifest.nodes[joiner3].rpc_url)?;
    check_banned(
        &manifest.nodes[joiner3].home,
        &joiner,
        &manifest.nodes[corrupt].peer_id,
    )
    .await?;
    net.stop_all();
    let accounts = opts.senders as u64
        + validators as u64
        + fabricated.head_height * u64::from(opts.transfers_per_block);
    Ok(BenchReport {
        accounts,
        fabricated,
        chain_height,
        joins,
    })
}
