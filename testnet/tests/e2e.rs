//! End-to-end: a 4-validator local testnet of real `cairn-node` processes on 127.0.0.1 finalizes
//! wallet-signed transfers submitted over JSON-RPC, survives kill -9 of one validator (which
//! catches up through block sync on restart), and refuses bad input without changing state.
//!
//! Needs the `cairn-node` and `cairn` binaries built (`cargo build --bins`); the test suite
//! script does that first.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cairn_ledger::{Address, Hash, SignedTransaction, TransactionBody};
use cairn_rpc::{RpcClient, TxStatus};
use cairn_testnet::{LocalTestnet, find_node_binary, generate, scrape_metric, test_options};
use cairn_wallet::{KeyFile, build_transfer};

const WAIT_MAX: Duration = Duration::from_secs(120);

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

/// Reads one Prometheus sample from a node's `/metrics`.
async fn metric(rpc_url: &str, name: &str) -> f64 {
    scrape_metric(&reqwest::Client::new(), rpc_url, name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("metric {name} missing from {rpc_url}/metrics"))
}

struct Sender {
    key: KeyFile,
    address: Address,
    nonce: u64,
}

/// Signs a transfer exactly as `cairn transfer` does (the wallet library's builder).
fn transfer(
    s: &mut Sender,
    chain_id: &str,
    to: Address,
    amount: u64,
    fee: u64,
) -> SignedTransaction {
    let tx = build_transfer(&s.key, chain_id, to, amount, fee, s.nonce, 1_000_000);
    s.nonce += 1;
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_finalize_transfers_survive_a_crash_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let opts = test_options(dir.path().join("net"), "cairn-e2e", 8);
    let manifest = generate(&opts).unwrap();
    let chain_id = manifest.chain_id.clone();
    let clients: Vec<RpcClient> = manifest
        .nodes
        .iter()
        .map(|n| RpcClient::new(&n.rpc_url).unwrap())
        .collect();
    let mut net = LocalTestnet::start(manifest.clone(), find_node_binary()).unwrap();

    let mut senders: Vec<Sender> = manifest
        .accounts
        .iter()
        .map(|a| {
            let key = KeyFile::load(&a.key_file).unwrap();
            Sender {
                address: key.address(),
                key,
                nonce: 0,
            }
        })
        .collect();
    let fresh: Vec<Address> = (0..4u8).map(|i| Address([200 + i; 32])).collect();

    for c in &clients {
        wait_until("every node to finalize height 1", WAIT_MAX, || async {
            height(c).await.unwrap_or(0) >= 1
        })
        .await;
    }

    let mut submitted: Vec<SignedTransaction> = Vec::new();
    let mut k = 0usize;
    let mut submit_round = |senders: &mut Vec<Sender>,
                            count: usize,
                            nodes: &[usize],
                            submitted: &mut Vec<SignedTransaction>| {
        let mut batch = Vec::new();
        for _ in 0..count {
            let si = k % senders.len();
            let to = if k % 3 == 0 {
                fresh[k % fresh.len()]
            } else {
                senders[(si + 1) % senders.len()].address
            };
            let tx = transfer(
                &mut senders[si],
                &chain_id,
                to,
                100 + (k as u64 % 50),
                1 + (k as u64 % 3),
            );
            batch.push((nodes[k % nodes.len()], tx));
            k += 1;
        }
        for (_, tx) in &batch {
            submitted.push(tx.clone());
        }
        batch
    };

    // Phase 1: all four nodes up.
    for (node, tx) in submit_round(&mut senders, 100, &[0, 1, 2, 3], &mut submitted) {
        clients[node]
            .send_transaction(&tx)
            .await
            .unwrap_or_else(|e| panic!("node {node} refused {}: {e}", tx.hash()));
    }
    let last = submitted.last().unwrap().hash();
    wait_until("phase 1 finalized", WAIT_MAX, || async {
        matches!(
            clients[0].transaction(&last).await,
            Ok(TxStatus::Finalized { .. })
        )
    })
    .await;

    // Phase 2: kill -9 validator 3; the other three keep finalizing.
    net.kill_node(3).unwrap();
    let h_before = height(&clients[0]).await.unwrap();
    for (node, tx) in submit_round(&mut senders, 60, &[0, 1, 2], &mut submitted) {
        clients[node]
            .send_transaction(&tx)
            .await
            .unwrap_or_else(|e| panic!("node {node} refused {}: {e}", tx.hash()));
    }
    let last = submitted.last().unwrap().hash();
    wait_until(
        "phase 2 finalized with one validator down",
        WAIT_MAX,
        || async {
            matches!(
                clients[1].transaction(&last).await,
                Ok(TxStatus::Finalized { .. })
            )
        },
    )
    .await;
    for c in &clients[..3] {
        wait_until(
            "3 more heights finalized with validator 3 down",
            WAIT_MAX,
            || async { height(c).await.unwrap_or(0) >= h_before + 3 },
        )
        .await;
    }
    let h_down = height(&clients[0]).await.unwrap();
    assert!(
        clients[3].status().await.is_err(),
        "validator 3 should be down"
    );

    // Phase 3: restart it; it catches up through block sync, re-checking every transaction
    // signature (the default trusts certified blocks' signatures: the docker and load tests
    // and `cairn-testnet bench` exercise that path).
    net.start_node_with_args(3, &["--sync.reverify-signatures", "true"])
        .unwrap();
    let target = height(&clients[0]).await.unwrap();
    wait_until("validator 3 to catch up", WAIT_MAX, || async {
        height(&clients[3]).await.unwrap_or(0) >= target
    })
    .await;
    // gossipsub's per-topic wire counters are on /metrics: validator 0 has sent votes and
    // certificates, and (as a leader of some views) compact blocks.
    let text = reqwest::get(format!("{}/metrics", manifest.nodes[0].rpc_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sent = cairn_testnet::bench::gossip_sent(&text);
    for topic in ["consensus", "block"] {
        let (msgs, bytes) = sent.get(topic).copied().unwrap_or_default();
        assert!(
            msgs >= 1.0 && bytes > msgs,
            "validator 0 sent {msgs} {topic} messages, {bytes} bytes: {sent:?}"
        );
    }
    let synced = metric(&manifest.nodes[3].rpc_url, "cairn_blocks_synced_total").await;
    eprintln!(
        "validator 3 was down for heights {h_before}..{h_down}; caught up to {target} with {synced} blocks through block sync"
    );
    assert!(synced >= 1.0, "validator 3 caught up without block sync");

    // Phase 4: all four again, including the restarted one.
    for (node, tx) in submit_round(&mut senders, 60, &[3, 2, 1, 0], &mut submitted) {
        clients[node]
            .send_transaction(&tx)
            .await
            .unwrap_or_else(|e| panic!("node {node} refused {}: {e}", tx.hash()));
    }
    assert!(submitted.len() >= 200);

    for tx in &submitted {
        let h = tx.hash();
        wait_until("every transfer finalized", WAIT_MAX, || async {
            matches!(
                clients[0].transaction(&h).await,
                Ok(TxStatus::Finalized { .. })
            )
        })
        .await;
    }
    // And one through the `cairn` binary itself, waiting for finality.
    let cairn = find_node_binary().with_file_name("cairn");
    let last_sender = senders.len() - 1;
    let out = std::process::Command::new(&cairn)
        .args(["--json", "--rpc", &manifest.nodes[2].rpc_url, "--keyfile"])
        .arg(&manifest.accounts[last_sender].key_file)
        .args([
            "transfer",
            "--to",
            &fresh[1].to_string(),
            "--amount",
            "777",
            "--fee",
            "2",
            "--wait",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e} (build it with `cargo build --bins`)",
                cairn.display()
            )
        });
    assert!(
        out.status.success(),
        "cairn transfer failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cli_hash = Hash::from_hex(v["hash"].as_str().unwrap()).unwrap();
    assert!(
        matches!(
            clients[0].transaction(&cli_hash).await.unwrap(),
            TxStatus::Finalized { .. }
        ),
        "{v}"
    );
    senders[last_sender].nonce += 1;
    let cli_tx = clients[0]
        .block_by_height(match clients[0].transaction(&cli_hash).await.unwrap() {
            TxStatus::Finalized { height, .. } => height,
            _ => unreachable!(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        cli_tx
            .transactions
            .iter()
            .any(|t| t.hash == cli_hash && t.amount == 777)
    );
    let cli_submitted = cli_hash;
    let tip = height(&clients[0]).await.unwrap();
    for c in &clients {
        wait_until("all nodes at the tip", WAIT_MAX, || async {
            height(c).await.unwrap_or(0) >= tip
        })
        .await;
    }

    // Same block hash and state root at every height on every node; each transfer exactly once.
    let mut seen: HashMap<Hash, usize> = HashMap::new();
    let genesis = cairn_genesis::Genesis::load(&dir.path().join("net/genesis.json")).unwrap();
    let mut replay: BTreeMap<Address, (u64, u64)> = genesis
        .accounts
        .iter()
        .map(|a| (a.address, (a.balance, 0u64)))
        .collect();
    for h in 0..=tip {
        let b0 = clients[0]
            .block_by_height(h)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node 0 lacks height {h}"));
        for (i, c) in clients.iter().enumerate().skip(1) {
            let b = c
                .block_by_height(h)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("node {i} lacks height {h}"));
            assert_eq!(
                b.hash, b0.hash,
                "block hash differs at height {h} on node {i}"
            );
            assert_eq!(
                b.header.state_root, b0.header.state_root,
                "state root differs at height {h} on node {i}"
            );
        }
        for tx in &b0.transactions {
            *seen.entry(tx.hash).or_default() += 1;
            let s = replay.entry(tx.sender).or_default();
            assert_eq!(s.1, tx.nonce, "replay nonce mismatch");
            s.0 -= tx.amount + tx.fee;
            s.1 += 1;
            let recipient = tx.recipient.expect("the test sends transfers only");
            replay.entry(recipient).or_default().0 += tx.amount;
            replay.entry(b0.header.proposer).or_default().0 += tx.fee;
        }
    }
    assert_eq!(seen.get(&cli_submitted), Some(&1), "the CLI transfer");
    seen.remove(&cli_submitted);
    for tx in &submitted {
        assert_eq!(
            seen.get(&tx.hash()),
            Some(&1),
            "transfer {} finalized {:?} times",
            tx.hash(),
            seen.get(&tx.hash())
        );
    }
    assert_eq!(
        seen.len(),
        submitted.len(),
        "blocks hold transactions nobody submitted"
    );
    for (addr, (balance, nonce)) in &replay {
        for (i, c) in clients.iter().enumerate() {
            let a = c.account(addr).await.unwrap();
            assert_eq!(
                (a.balance, a.nonce),
                (*balance, *nonce),
                "account {addr} on node {i} differs from the replay"
            );
        }
    }

    // Bad input changes nothing.
    let victim = &mut senders[0];
    let before = clients[0].account(&victim.address).await.unwrap();
    let tip = height(&clients[0]).await.unwrap();
    let to = fresh[0];
    let mut cases: Vec<(&str, SignedTransaction)> = Vec::new();
    let mut bad_sig = transfer(victim, &chain_id, to, 5, 1);
    victim.nonce -= 1;
    bad_sig.signature[10] ^= 0x40;
    cases.push(("bad_signature", bad_sig));
    let wrong_chain = transfer(victim, "another-chain", to, 5, 1);
    victim.nonce -= 1;
    cases.push(("wrong_chain", wrong_chain));
    victim.nonce -= 1; // reuse the last finalized nonce
    let reused = transfer(victim, &chain_id, to, 5, 1);
    cases.push(("stale_nonce", reused));
    let overdraft = transfer(victim, &chain_id, to, before.balance, 1);
    victim.nonce -= 1;
    cases.push(("insufficient_balance", overdraft));
    let mut expired_body = TransactionBody {
        chain_id: chain_id.clone(),
        sender: victim.address,
        fee: 1,
        nonce: victim.nonce,
        expiry_height: 0,
        action: cairn_ledger::Action::Transfer {
            recipient: to,
            amount: 5,
        },
    };
    expired_body.expiry_height = tip.saturating_sub(1);
    cases.push(("expired", expired_body.sign(victim.key.signing_key())));
    for (want, tx) in cases {
        let err = clients[1].send_transaction(&tx).await.expect_err(want);
        assert_eq!(err.rejection_reason(), Some(want), "{want}: got {err}");
    }
    let err = clients[1]
        .call::<serde_json::Value>("sendTransaction", serde_json::json!(["zz-not-hex"]))
        .await
        .expect_err("malformed hex");
    assert_eq!(err.rpc_code(), Some(-32602), "malformed hex: {err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in &clients {
        assert_eq!(
            c.account(&victim.address).await.unwrap(),
            before,
            "bad input changed the account"
        );
    }
    net.stop_all();
}
