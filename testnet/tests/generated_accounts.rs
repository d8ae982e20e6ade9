//! A testnet whose genesis generates its accounts (`generated_accounts`): 4 validators
//! derive the same 5,000 accounts at first start, agree on the genesis state, accept a
//! transfer signed by a generated key, and the load generator draws its senders and
//! recipients from all of them with no funding phase.
//!
//! Needs the binaries built (`cargo build --workspace --bins --features cairn-node/byzantine`).

use std::time::{Duration, Instant};

use cairn_rpc::RpcClient;
use cairn_testnet::sample::Distribution;
use cairn_testnet::throughput::{self, ThroughputConfig};
use cairn_testnet::{GENERATED_BALANCE, LocalTestnet, find_node_binary, generate, test_options};
use cairn_wallet::{KeyFile, build_transfer};

const ACCOUNTS: u64 = 5_000;
const WAIT_MAX: Duration = Duration::from_secs(120);

async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < WAIT_MAX {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {WAIT_MAX:?} waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_accounts_are_funded_spendable_and_loadable() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = test_options(dir.path().join("net"), "cairn-generated", 2);
    opts.generated_accounts = ACCOUNTS;
    let m = generate(&opts).unwrap();
    let generated = m
        .generated_accounts
        .expect("the manifest names the generated accounts");
    assert_eq!(generated.count, ACCOUNTS);
    let mut net = LocalTestnet::start(m.clone(), find_node_binary()).unwrap();
    let clients: Vec<RpcClient> = m
        .nodes
        .iter()
        .map(|n| RpcClient::with_timeout(&n.rpc_url, Duration::from_secs(5)).unwrap())
        .collect();
    for c in &clients {
        wait_until("a finalized block on every node", || async {
            c.status().await.is_ok_and(|s| s.latest_height >= 1)
        })
        .await;
    }
    // Every node derived the same genesis state (the genesis block's hash names its root).
    let genesis_blocks: Vec<_> =
        futures::future::join_all(clients.iter().map(|c| c.block_hashes_by_height(0)))
            .await
            .into_iter()
            .map(|b| b.unwrap().unwrap().hash)
            .collect();
    assert!(
        genesis_blocks.windows(2).all(|w| w[0] == w[1]),
        "{genesis_blocks:?}"
    );

    // Generated accounts anywhere in the range hold their balance.
    let (from, to) = (4_321u64, 17u64);
    for i in [0, from, ACCOUNTS - 1] {
        let a = clients[1].account(&generated.address(i)).await.unwrap();
        assert_eq!((a.balance, a.nonce), (GENERATED_BALANCE, 0), "account {i}");
    }
    // Beyond the range there is nothing.
    let outside = clients[1]
        .account(&generated.address(ACCOUNTS))
        .await
        .unwrap();
    assert_eq!(outside.balance, 0);

    // A transfer signed by a generated key is accepted and finalized.
    let key = KeyFile::from_seed(&generated.secret_key(from));
    assert_eq!(key.address(), generated.address(from));
    let tx = build_transfer(
        &key,
        &m.chain_id,
        generated.address(to),
        1_000,
        1,
        0,
        u64::MAX,
    );
    clients[2].send_transaction(&tx).await.unwrap();
    wait_until("the transfer to be final", || async {
        clients[0]
            .account(&generated.address(to))
            .await
            .is_ok_and(|a| a.balance == GENERATED_BALANCE + 1_000)
    })
    .await;
    let sender = clients[0].account(&generated.address(from)).await.unwrap();
    assert_eq!(
        (sender.balance, sender.nonce),
        (GENERATED_BALANCE - 1_001, 1)
    );

    // The load generator draws from the whole space: no funding, distinct senders.
    let report = throughput::run(
        &m,
        &ThroughputConfig {
            rate: 100.0,
            duration: Duration::from_secs(3),
            drain: Duration::from_secs(30),
            seed: 9,
            progress: false,
            distribution: Some(Distribution::Zipf(1.0)),
            ..ThroughputConfig::default()
        },
        tokio::sync::watch::channel(false).1,
    )
    .await
    .unwrap();
    assert_eq!(report.accounts, ACCOUNTS);
    assert_eq!(report.distribution, "zipf:1");
    assert_eq!(report.sent, 300);
    assert_eq!(report.finalized, 300, "{}", report.summary());
    // Zipf over 5,000 accounts: hot senders repeat, but far more than one is used.
    assert!(
        report.senders > 50 && report.senders < 300,
        "{}",
        report.senders
    );

    // Each node warned that the keys are public.
    net.stop_all();
    for n in &m.nodes {
        let log = std::fs::read_to_string(n.home.join("node.log")).unwrap();
        assert!(
            log.contains("the genesis has generated accounts"),
            "{}: no warning in its log",
            n.name
        );
    }
}
