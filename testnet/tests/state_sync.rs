//! End-to-end state sync: 4 validators whose genesis funds many accounts (50,000 here;
//! `CAIRN_STATE_SYNC_ACCOUNTS` and `CAIRN_STATE_SYNC_BLOCKS` scale it up) run a chain;
//! every node snapshots the state every `SNAPSHOT_EVERY` blocks. Then, one at a time:
//!
//! 1. a fresh full node joins by state sync from 3 peers (validators 0 and 1 and a full
//!    node that serves corrupt chunks, `--byzantine corrupt-chunks`): it reaches the tip,
//!    agrees with the validators on block hashes (so on state roots) after the snapshot,
//!    and bans the corrupt peer;
//! 2. a fresh full node joins by state sync from 1 peer (validator 0);
//! 3. a fresh full node replays the whole chain (`sync.state_sync = false`).
//!
//! It prints the time to reach the tip and the bytes each received (the
//! `cairn_state_sync_bytes_received` and `cairn_sync_bytes_received` metrics); the figures
//! are in docs/network.md. The joins and checks are
//! [`cairn_testnet::state_sync_bench`]'s, shared with the benchmark on a fabricated history
//! (`tests/state_sync_fabricated.rs`).
//!
//! Needs the binaries built (`cargo build --workspace --bins --features cairn-node/byzantine`).

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_genesis::{Genesis, GenesisAccount};
use cairn_ledger::Address;
use cairn_rpc::RpcClient;
use cairn_testnet::state_sync_bench::{
    check_banned, edit_config, height, join_and_check, wait_for_snapshots, wait_until,
};
use cairn_testnet::{LocalTestnet, find_node_binary, free_port_ranges, generate, test_options};

const WAIT_MAX: Duration = Duration::from_secs(600);
/// Snapshot interval of every node, blocks.
const SNAPSHOT_EVERY: u64 = 50;
/// Snapshot chunk target, bytes (small, so that a 50,000-account state is ~10 chunks).
const CHUNK_BYTES: u32 = 256 * 1024;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Adds `n` funded accounts (no keys) to the genesis of every node.
fn fund_accounts(out: &Path, homes: &[&Path], n: u64) -> Genesis {
    let mut g = Genesis::load(&out.join("genesis.json")).unwrap();
    g.accounts.extend((0..n).map(|i| GenesisAccount {
        address: Address(*blake3::hash(&i.to_le_bytes()).as_bytes()),
        balance: 1_000 + i,
    }));
    g.validate().unwrap();
    let text = g.to_json_pretty();
    std::fs::write(out.join("genesis.json"), &text).unwrap();
    for h in homes {
        std::fs::write(h.join("genesis.json"), &text).unwrap();
    }
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_joins_by_state_sync_from_three_peers_one_corrupt() {
    let accounts = env_or("CAIRN_STATE_SYNC_ACCOUNTS", 50_000);
    let blocks = env_or("CAIRN_STATE_SYNC_BLOCKS", 2 * SNAPSHOT_EVERY + 20);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let mut opts = test_options(out.clone(), "cairn-statesync", 2);
    opts.full_nodes = 4;
    let (p2p_port, rpc_port) = free_port_ranges(8);
    opts.p2p_port = p2p_port;
    opts.rpc_port = rpc_port;
    let manifest = generate(&opts).unwrap();
    let homes: Vec<&Path> = manifest.nodes.iter().map(|n| n.home.as_path()).collect();
    let t = Instant::now();
    let genesis = fund_accounts(&out, &homes, accounts);
    eprintln!(
        "genesis with {} accounts written in {:?}",
        genesis.accounts.len(),
        t.elapsed()
    );
    let (corrupt, joiner3, joiner1, replay) = (4, 5, 6, 7);
    let addr = |i: usize| manifest.nodes[i].p2p_addr.clone();
    for (i, home) in homes.iter().enumerate() {
        edit_config(home, |c| {
            c.sync.snapshot_interval_blocks = SNAPSHOT_EVERY;
            c.sync.snapshot_chunk_bytes = CHUNK_BYTES;
            c.sync.state_sync_min_gap_blocks = 20;
            if i == joiner3 || i == joiner1 || i == replay {
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
            }
        })
        .unwrap();
    }
    let clients: Vec<RpcClient> = manifest
        .nodes
        .iter()
        .map(|n| RpcClient::new(&n.rpc_url).unwrap())
        .collect();
    let mut net = LocalTestnet::new(manifest.clone(), find_node_binary());
    for i in 0..4 {
        net.start_node(i).unwrap();
    }
    net.start_node_with_args(corrupt, &["--byzantine", "corrupt-chunks"])
        .unwrap();
    let t = Instant::now();
    wait_until(&format!("height {blocks}"), WAIT_MAX, || async {
        height(&clients[0]).await >= blocks
    })
    .await
    .unwrap();
    eprintln!("chain at height {blocks} after {:?}", t.elapsed());
    // Every provider holds a snapshot (the validators' newest and the corrupt node's).
    let newest = blocks / SNAPSHOT_EVERY * SNAPSHOT_EVERY;
    wait_for_snapshots(
        &[homes[0], homes[1], homes[corrupt]],
        newest.saturating_sub(SNAPSHOT_EVERY),
        WAIT_MAX,
    )
    .await
    .unwrap();

    let mut figures = Vec::new();
    for (i, what, by_state_sync) in [
        (joiner3, "state sync, 3 peers (1 corrupt)", true),
        (joiner1, "state sync, 1 peer", true),
        (replay, "full replay, 1 peer", false),
    ] {
        // It reaches the tip and agrees with validator 0 on a block after its snapshot
        // (hash and state root).
        let f = join_and_check(
            &mut net,
            i,
            what,
            &[],
            &clients[0],
            by_state_sync,
            SNAPSHOT_EVERY,
            WAIT_MAX,
        )
        .await
        .unwrap();
        figures.push(f);
    }
    // The joiner from 3 peers banned the corrupt one.
    check_banned(
        homes[joiner3],
        &clients[joiner3],
        &manifest.nodes[corrupt].peer_id,
    )
    .await
    .unwrap();
    eprintln!(
        "| how | accounts | chain height | time to tip (s) | snapshot height | bytes received |"
    );
    for f in figures {
        eprintln!(
            "| {} | {} | {blocks}+ | {:.1} | {} | {} |",
            f.what,
            genesis.accounts.len(),
            f.secs,
            f.snapshot_height,
            f.bytes()
        );
    }
    net.stop_all();
}
