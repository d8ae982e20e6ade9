//! The throughput load generator and the batch RPC against a real 4-validator local testnet:
//! `cairn-testnet load --json` funds fresh senders, offers a bounded open-loop load, and every
//! accepted transfer is finalized exactly once; `sendTransactions` answers per transaction and
//! refuses oversize or malformed batches without submitting anything; `getFinalization`
//! serves verifiable certificates and the invariant checker verifies every height's signers.
//!
//! Needs the `cairn-node` binary built (`cargo build --bins`); the test suite script does
//! that first. Bounded: at most 300 tx/s for 4 s, every wait has a deadline.

use std::time::{Duration, Instant};

use cairn_genesis::ChainParams;
use cairn_ledger::{Address, TransactionBody};
use cairn_rpc::{RpcClient, SEND_TRANSACTIONS_MAX};
use cairn_testnet::check::{self, CheckOptions};
use cairn_testnet::{GenerateOptions, LocalTestnet, find_node_binary, free_port_range, generate};
use cairn_wallet::KeyFile;
use serde_json::{Value, json};

async fn wait_height(c: &RpcClient, at_least: u64, timeout: Duration) {
    let start = Instant::now();
    loop {
        if let Ok(s) = c.status().await
            && s.latest_height >= at_least
        {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "height {at_least} not reached in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_generator_batch_rpc_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_port_range(8);
    let params = ChainParams {
        leader_timeout_ms: 1000,
        notarization_timeout_ms: 2000,
        ..ChainParams::default()
    };
    let m = generate(&GenerateOptions {
        validators: 4,
        out: dir.path().join("net"),
        chain_id: "cairn-load-test".into(),
        accounts: 4,
        p2p_port: base,
        rpc_port: base + 4,
        params,
        ..GenerateOptions::default()
    })
    .unwrap();
    let mut net = LocalTestnet::start(m.clone(), find_node_binary()).unwrap();
    let c0 = RpcClient::new(&m.nodes[0].rpc_url).unwrap();
    wait_height(&c0, 2, Duration::from_secs(60)).await;

    // sendTransactions: per-transaction answers, in order.
    let key = KeyFile::load(&m.accounts[0].key_file).unwrap();
    let nonce = c0.account(&key.address()).await.unwrap().nonce;
    let sign = |nonce: u64, chain: &str| {
        TransactionBody {
            chain_id: chain.into(),
            sender: key.address(),
            fee: 1,
            nonce,
            expiry_height: 1_000_000,
            action: cairn_ledger::Action::Transfer {
                recipient: Address([7; 32]),
                amount: 3,
            },
        }
        .sign(key.signing_key())
    };
    let batch = vec![
        sign(nonce, &m.chain_id),
        sign(nonce + 1, "another-chain"),
        sign(nonce + 1, &m.chain_id),
        sign(nonce, &m.chain_id), // same bytes as the first: a duplicate
    ];
    let results = c0.send_transactions(&batch).await.unwrap();
    let verdict: Vec<(bool, Option<&str>)> = results
        .iter()
        .map(|r| (r.accepted, r.reason.as_deref()))
        .collect();
    assert_eq!(verdict[0], (true, None));
    assert_eq!(verdict[1], (false, Some("wrong_chain")));
    assert_eq!(verdict[2], (true, None));
    assert!(!verdict[3].0, "a duplicate is refused: {verdict:?}");
    for r in [&results[0], &results[2]] {
        c0.wait_for_finality(&r.hash, 30_000, 100).await.unwrap();
    }

    // Oversize and malformed batches: -32602, nothing submitted.
    let nonce_before = c0.account(&key.address()).await.unwrap().nonce;
    let too_many: Vec<String> = (0..=SEND_TRANSACTIONS_MAX)
        .map(|i| hex::encode(sign(nonce_before + i as u64, &m.chain_id).encode()))
        .collect();
    let e = c0
        .call::<Value>("sendTransactions", json!({ "txs": too_many }))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than the limit"), "{e}");
    let good = hex::encode(sign(nonce_before, &m.chain_id).encode());
    let e = c0
        .call::<Value>("sendTransactions", json!({ "txs": [good, "zz"] }))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("txs[1]"), "{e}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c0.account(&key.address()).await.unwrap().nonce,
        nonce_before,
        "a refused batch must submit nothing"
    );

    // The load generator, as a user runs it.
    let report = run_load(
        &dir.path().join("net"),
        &[
            "--rate",
            "300",
            "--duration",
            "4s",
            "--drain",
            "30s",
            "--senders",
            "40",
        ],
    )
    .await;
    let n = |k: &str| number(&report, k);
    assert_eq!(n("sent"), 1200.0, "{report}");
    assert_eq!(n("accepted"), n("sent"), "{report}");
    assert_eq!(n("finalized"), n("accepted"), "{report}");
    assert_eq!(n("unfinalized"), 0.0, "{report}");
    assert!(n("finalized_tps") > 0.0, "{report}");
    let lat = &report["latency"];
    assert!(lat["p50_ms"].as_u64().unwrap() > 0, "{report}");
    assert!(
        lat["p50_ms"].as_u64() <= lat["p99_ms"].as_u64()
            && lat["p99_ms"].as_u64() <= lat["max_ms"].as_u64(),
        "{report}"
    );
    eprintln!("load report: {report}");

    // One sender at 2,000 tx/s outruns its window of unfinalized nonces
    // (`mempool_sender_future_max` = 64, at 60 ms or more to finality): nodes refuse with
    // `too_far_ahead`, the generator offers those again, and every transfer still finalizes
    // (a refused nonce left out would strand all later ones behind a gap).
    let report = run_load(
        &dir.path().join("net"),
        &[
            "--rate",
            "2000",
            "--duration",
            "1s",
            "--drain",
            "60s",
            "--senders",
            "1",
        ],
    )
    .await;
    let n = |k: &str| number(&report, k);
    assert!(
        n("reoffered") > 0.0,
        "no refusal for load happened: {report}"
    );
    assert!(
        report["rejections"]["too_far_ahead"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    assert_eq!(n("sent"), 2000.0, "{report}");
    assert_eq!(n("accepted"), 2000.0, "{report}");
    assert_eq!(n("finalized"), 2000.0, "{report}");
    assert_eq!(n("unfinalized"), 0.0, "{report}");
    eprintln!("load report with re-offers: {report}");

    // getFinalization: a certificate for a finalized height verifies; none for a future one.
    let tip = c0.status().await.unwrap().latest_height;
    let f = c0
        .finalization(tip)
        .await
        .unwrap()
        .expect("certificate at the tip");
    let block = c0.block_by_height(tip).await.unwrap().unwrap();
    assert_eq!(f.block_hash, block.hash);
    assert!(f.signers.len() >= 3, "a quorum of 4 is 3: {:?}", f.signers);
    assert!(c0.finalization(tip + 1000).await.unwrap().is_none());

    // The checker verifies every height's certificate and that every validator signed.
    let rep = check::check(
        &dir.path().join("net"),
        &m,
        &CheckOptions {
            wait: Duration::from_secs(30),
            ..CheckOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(rep.ok, "{}", rep.summary());
    assert!(rep.signers_checked);
    // Every height above 0 has its own certificate or was finalized with a descendant.
    assert!(rep.certificates_checked > 0);
    assert_eq!(
        rep.certificates_checked + rep.heights_finalized_by_descendant + 1,
        rep.heights_checked,
        "{}",
        rep.summary()
    );
    assert!(rep.signers.values().all(|&n| n > 0), "{:?}", rep.signers);
    net.stop_all();
}

/// Runs `cairn-testnet load DIR ARGS --json`, as a user does; asserts it succeeds and
/// returns its one JSON object.
async fn run_load(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn-testnet"))
        .args(["load"])
        .arg(dir)
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stderr}"))
}

/// Field `key` of a load report, as a number.
fn number(report: &Value, key: &str) -> f64 {
    report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing: {report}"))
}
