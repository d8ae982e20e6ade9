//! End-to-end backup and restore: a 4-validator local testnet of real `cairn-node` processes
//! under a bounded transfer load; `cairn-node backup` takes a checkpoint of a running
//! validator through its admin socket; `cairn-node restore` puts it into a new full node's
//! home; the full node starts from the restored height, catches up, and agrees with every
//! validator on every block hash.
//!
//! Needs the binaries built (`cargo build --workspace --bins --features cairn-node/byzantine`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_ledger::{Address, Hash};
use cairn_rpc::{RpcClient, TxStatus};
use cairn_testnet::{LocalTestnet, find_node_binary, free_port_ranges, generate, test_options};
use cairn_wallet::{KeyFile, build_transfer};

const WAIT_MAX: Duration = Duration::from_secs(120);
/// Bounds of the background load: transfers, and time.
const LOAD_TXS_MAX: usize = 4_000;
const LOAD_TIME_MAX: Duration = Duration::from_secs(120);

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

async fn height(c: &RpcClient) -> Option<u64> {
    c.status().await.ok().map(|s| s.latest_height)
}

/// Runs `cairn-node ARGS`; returns (success, stdout, stderr).
fn node_cmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(find_node_binary())
        .args(args)
        .output()
        .expect("run cairn-node");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn node_json(args: &[&str]) -> serde_json::Value {
    let (ok, stdout, stderr) = node_cmd(args);
    assert!(ok, "cairn-node {args:?} failed:\n{stderr}");
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("cairn-node {args:?} printed no JSON ({e}):\n{stdout}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cf_keys(stats: &serde_json::Value, name: &str) -> u64 {
    stats["columnFamilies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column family {name} in {stats}"))["keys"]
        .as_u64()
        .unwrap()
}

/// Sends transfers round-robin from every demo account to the validators until `stop`, or
/// the bounds; returns the hashes of the accepted ones.
async fn load(
    chain_id: String,
    keys: Vec<KeyFile>,
    clients: Vec<RpcClient>,
    stop: Arc<AtomicBool>,
) -> Vec<Hash> {
    let mut nonces = vec![0u64; keys.len()];
    let mut accepted = Vec::new();
    let started = Instant::now();
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed)
        && accepted.len() < LOAD_TXS_MAX
        && started.elapsed() < LOAD_TIME_MAX
    {
        for (i, key) in keys.iter().enumerate() {
            let to = Address([(200 + k % 50) as u8; 32]);
            let tx = build_transfer(key, &chain_id, to, 10, 1, nonces[i], 1_000_000);
            if clients[k % clients.len()]
                .send_transaction(&tx)
                .await
                .is_ok()
            {
                nonces[i] += 1;
                accepted.push(tx.hash());
            }
            k += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_validator_under_load_restores_into_a_full_node_that_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = test_options(dir.path().join("net"), "cairn-backup", 8);
    opts.full_nodes = 1;
    let (p2p_port, rpc_port) = free_port_ranges(5);
    opts.p2p_port = p2p_port;
    opts.rpc_port = rpc_port;
    let manifest = generate(&opts).unwrap();
    let chain_id = manifest.chain_id.clone();
    let clients: Vec<RpcClient> = manifest
        .nodes
        .iter()
        .map(|n| RpcClient::new(&n.rpc_url).unwrap())
        .collect();
    let validators = 0..4;
    let full = 4;
    let mut net = LocalTestnet::new(manifest.clone(), find_node_binary());
    for i in validators.clone() {
        net.start_node(i).unwrap();
    }
    for c in &clients[..4] {
        wait_until("every validator to finalize height 2", WAIT_MAX, || async {
            height(c).await.unwrap_or(0) >= 2
        })
        .await;
    }

    let keys: Vec<KeyFile> = manifest
        .accounts
        .iter()
        .map(|a| KeyFile::load(&a.key_file).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let loader = tokio::spawn(load(
        chain_id.clone(),
        keys,
        manifest.nodes[..4]
            .iter()
            .map(|n| RpcClient::new(&n.rpc_url).unwrap())
            .collect(),
        stop.clone(),
    ));
    let start_height = height(&clients[0]).await.unwrap();
    wait_until("blocks under load", WAIT_MAX, || async {
        height(&clients[0]).await.unwrap_or(0) >= start_height + 3
    })
    .await;

    // Backup of validator 0 while it runs (and the load goes on).
    let v0 = &manifest.nodes[0].home;
    let backup_dir = dir.path().join("backups").join("v0");
    let out = node_json(&["backup", "--home", s(v0), "--to", s(&backup_dir), "--json"]);
    let m = &out["manifest"];
    assert_eq!(m["takenFrom"], "running", "{out}");
    assert_eq!(m["chainId"], chain_id.as_str());
    assert_eq!(m["genesisHash"], manifest.genesis_hash.to_hex());
    let backup_height = m["finalizedHeight"].as_u64().unwrap();
    assert!(backup_height >= start_height + 3, "{out}");
    assert!(backup_dir.join("db").join("CURRENT").is_file());
    assert!(!dir.path().join("backups").join("v0.partial").exists());
    // The staging checkpoint beside validator 0's database is gone.
    let leftovers: Vec<_> = std::fs::read_dir(v0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn-backup"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The backup's finalized block is the chain's.
    let expected = clients[1]
        .block_hashes_by_height(backup_height)
        .await
        .unwrap()
        .unwrap()
        .hash;
    assert_eq!(m["finalizedHash"], expected.to_hex());

    // db stats of the running validator come through its admin socket.
    let stats = node_json(&["db", "stats", "--home", s(v0), "--json"]);
    assert_eq!(stats["source"], "node");
    let live_height = stats["finalizedHeight"].as_u64().unwrap();
    assert!(live_height >= backup_height);
    assert!(cf_keys(&stats, "blocks") > live_height);
    assert!(
        cf_keys(&stats, "txs") > 0,
        "transfers were finalized: {stats}"
    );

    // Restore refuses a running node's home.
    let (ok, _, stderr) = node_cmd(&["restore", "--home", s(v0), "--from", s(&backup_dir)]);
    assert!(!ok && stderr.contains("running"), "{stderr}");

    // Restore into the (never started) full node's home.
    let home = &manifest.nodes[full].home;
    let restored = node_json(&[
        "restore",
        "--home",
        s(home),
        "--from",
        s(&backup_dir),
        "--json",
    ]);
    assert_eq!(restored["head"]["finalizedHeight"], backup_height);
    assert_eq!(restored["replaced"], false);
    let offline = node_json(&["db", "stats", "--home", s(home), "--json"]);
    assert_eq!(offline["source"], "read-only");
    assert_eq!(offline["finalizedHeight"], backup_height);
    assert_eq!(
        cf_keys(&offline, "consensus_wal"),
        0,
        "the WAL is not restored"
    );
    assert_eq!(cf_keys(&offline, "blocks"), backup_height + 1);
    // A second restore needs --force.
    let (ok, _, stderr) = node_cmd(&["restore", "--home", s(home), "--from", s(&backup_dir)]);
    assert!(!ok && stderr.contains("--force"), "{stderr}");

    // The restored full node starts at the backup's height, and catches up while the load
    // goes on.
    net.start_node(full).unwrap();
    let started = Instant::now();
    let first = loop {
        if let Some(h) = height(&clients[full]).await {
            break h;
        }
        assert!(
            started.elapsed() < WAIT_MAX,
            "the restored node's RPC never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        first >= backup_height,
        "the node started from the restored database ({first} < {backup_height})"
    );
    // It opened the restored ledger at the backup's head (rather than syncing from genesis).
    let log = std::fs::read_to_string(home.join("node.log")).unwrap();
    let opened = log
        .lines()
        .find(|l| l.contains("ledger opened"))
        .expect("the node logs the ledger it opened");
    assert!(
        opened.contains(&format!("height={backup_height} ")),
        "expected the restored head {backup_height}: {opened}"
    );
    let target = height(&clients[0]).await.unwrap() + 3;
    wait_until("the restored node to catch up", WAIT_MAX, || async {
        height(&clients[full]).await.unwrap_or(0) >= target
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let accepted = loader.await.unwrap();
    assert!(
        accepted.len() > 20,
        "load ran: {} transfers",
        accepted.len()
    );

    // Every transfer accepted is finalized on the restored node too.
    let last = *accepted.last().unwrap();
    wait_until(
        "the last transfer finalized on the restored node",
        WAIT_MAX,
        || async {
            matches!(
                clients[full].transaction(&last).await,
                Ok(TxStatus::Finalized { .. })
            )
        },
    )
    .await;

    // Same block hash at every height, on every node.
    let top = height(&clients[full]).await.unwrap();
    for c in &clients[..4] {
        wait_until(
            "validators at the restored node's height",
            WAIT_MAX,
            || async { height(c).await.unwrap_or(0) >= top },
        )
        .await;
    }
    eprintln!(
        "backup at height {backup_height}, restored node started at {first}, compared 0..={top}, {} transfers accepted",
        accepted.len()
    );
    for h in 0..=top {
        let mine = clients[full]
            .block_hashes_by_height(h)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("restored node lacks block {h}"))
            .hash;
        for (i, c) in clients[..4].iter().enumerate() {
            let theirs = c.block_hashes_by_height(h).await.unwrap().unwrap().hash;
            assert_eq!(mine, theirs, "block {h}: restored node vs validator {i}");
        }
    }
    net.stop_all();
}
