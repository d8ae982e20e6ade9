//! A Byzantine validator inside a real 4-process testnet (issue 13): validator-3 runs the
//! test-only Byzantine mode (`cairn-node run --byzantine equivocate,withhold,invalid`,
//! `cairn_node::byzantine`; feature `byzantine`, debug builds only). Its behaviours take
//! turns by view (`view % 3`: equivocate, withhold, invalid), so while the chain runs it
//!
//! - proposes two different signed blocks in some of its leader views and casts a conflicting
//!   vote beside every vote in those views (equivocation),
//! - publishes no proposal and no vote in others (withheld votes),
//! - proposes a correctly signed block with a wrong state root in the rest (invalid block).
//!
//! The three honest validators (f = 1 of n = 4) must keep safety (every node that holds a
//! height holds the same block), keep finalizing (every submitted transfer is finalized, the
//! views advance past several of each kind of Byzantine leader view), refuse every invalid
//! proposal (`cairn_proposals_refused_total`), finalize no block from a withheld or invalid
//! view of validator-3, and each record and serve the equivocation evidence (`getEvidence`)
//! against validator-3 and against nobody else.
//!
//! Needs the `cairn-node` binary built with the feature (`cargo build --workspace --bins
//! --features cairn-node/byzantine`, as `scripts/test.sh` does; `cargo test --workspace`
//! builds it so too, through this crate's dev-dependency). A binary without it refuses the
//! `--byzantine` flag and the test fails saying so.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_ledger::{Address, Hash};
use cairn_rpc::{RpcClient, TxStatus};
use cairn_testnet::{LocalTestnet, find_node_binary, generate, scrape_metric, test_options};
use cairn_wallet::{KeyFile, build_transfer};

/// Longest the whole run may take before the test fails (liveness bound).
const RUN_MAX: Duration = Duration::from_secs(240);
/// Views the honest validators must pass: validator-3 leads views 3, 7, 11, ... and its
/// behaviour is `view % 3`, so by view 48 it has led 12 views, four of each behaviour.
const VIEWS_MIN: f64 = 48.0;
/// Transfers submitted (to the honest validators), a few per second while the views pass.
const TRANSFERS: usize = 120;
const BYZANTINE: usize = 3;
const HONEST: [usize; 3] = [0, 1, 2];

/// Reads one Prometheus sample from a node's `/metrics` (`None` if the node is down).
async fn metric(rpc_url: &str, name: &str) -> Option<f64> {
    scrape_metric(&reqwest::Client::new(), rpc_url, name)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_validator_cannot_break_safety_stop_finality_or_hide_its_equivocations() {
    let dir = tempfile::tempdir().unwrap();
    let opts = test_options(dir.path().join("net"), "cairn-byzantine", 6);
    let manifest = generate(&opts).unwrap();
    let chain_id = manifest.chain_id.clone();
    let byzantine_address = manifest.nodes[BYZANTINE].validator_address;
    let byzantine_log = manifest.nodes[BYZANTINE].home.join("node.log");
    let clients: Vec<RpcClient> = manifest
        .nodes
        .iter()
        .map(|n| RpcClient::new(&n.rpc_url).unwrap())
        .collect();
    let urls: Vec<String> = manifest.nodes.iter().map(|n| n.rpc_url.clone()).collect();
    let mut net = LocalTestnet::new(manifest.clone(), find_node_binary());
    for i in HONEST {
        net.start_node(i).unwrap();
    }
    net.start_node_with_args(BYZANTINE, &["--byzantine", "equivocate,withhold,invalid"])
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        net.is_running(BYZANTINE),
        "the Byzantine validator exited at start: is cairn-node built with the `byzantine` \
         feature (a debug build)? See {}:\n{}",
        byzantine_log.display(),
        std::fs::read_to_string(&byzantine_log).unwrap_or_default()
    );

    let keys: Vec<KeyFile> = manifest
        .accounts
        .iter()
        .map(|a| KeyFile::load(&a.key_file).unwrap())
        .collect();
    let mut nonces = vec![0u64; keys.len()];
    let start = Instant::now();
    let mut submitted: Vec<Hash> = Vec::new();
    let mut expected: HashMap<Address, i128> = HashMap::new();
    for (k, a) in keys.iter().zip(&manifest.accounts) {
        expected.insert(k.address(), a.balance as i128);
    }
    // Submit the transfers a few at a time while the views pass, then wait for the views.
    let mut k = 0usize;
    loop {
        assert!(
            start.elapsed() < RUN_MAX,
            "liveness: after {RUN_MAX:?}, {} of {TRANSFERS} transfers submitted, honest view {:?}",
            submitted.len(),
            metric(&urls[0], "cairn_view").await
        );
        if k < TRANSFERS {
            for _ in 0..4 {
                let s = k % keys.len();
                let to = keys[(s + 1) % keys.len()].address();
                let (amount, fee) = (100 + k as u64, 1);
                let tx = build_transfer(&keys[s], &chain_id, to, amount, fee, nonces[s], 1_000_000);
                let node = HONEST[k % HONEST.len()];
                match clients[node].send_transaction(&tx).await {
                    Ok(h) => {
                        submitted.push(h);
                        nonces[s] += 1;
                        *expected.get_mut(&keys[s].address()).unwrap() -= (amount + fee) as i128;
                        *expected.get_mut(&to).unwrap() += amount as i128;
                    }
                    // A full or busy node is not a failure here; the transfer is re-signed
                    // with the same nonce next time.
                    Err(e) => eprintln!("node {node} refused a transfer: {e}"),
                }
                k += 1;
            }
        }
        let mut views_done = true;
        for i in HONEST {
            views_done &= metric(&urls[i], "cairn_view").await.unwrap_or(0.0) >= VIEWS_MIN;
        }
        if k >= TRANSFERS && views_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        submitted.len() >= TRANSFERS / 2,
        "only {} of {TRANSFERS} transfers were accepted",
        submitted.len()
    );

    // Liveness: every accepted transfer is finalized on every honest validator.
    for i in HONEST {
        for h in &submitted {
            loop {
                assert!(
                    start.elapsed() < RUN_MAX + Duration::from_secs(60),
                    "liveness: transfer {h} not finalized on validator-{i}"
                );
                if matches!(
                    clients[i].transaction(h).await,
                    Ok(TxStatus::Finalized { .. })
                ) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    // Safety: every node that holds a height holds the same block there, the Byzantine one
    // included; and no block from a withheld or invalid view of validator-3 was finalized.
    let mut heights = Vec::new();
    for i in HONEST {
        heights.push(clients[i].status().await.unwrap().latest_height);
    }
    let top = *heights.iter().min().unwrap();
    assert!(
        top >= 10,
        "honest heights {heights:?}: too few blocks finalized"
    );
    let mut byzantine_blocks = 0;
    for h in 1..=top {
        let reference = clients[0].block_by_height(h).await.unwrap().unwrap();
        for i in [1, 2, BYZANTINE] {
            if let Ok(Some(b)) = clients[i].block_by_height(h).await {
                assert_eq!(
                    b.hash, reference.hash,
                    "safety: validator-{i} and validator-0 finalized different blocks at height {h}"
                );
            }
        }
        if reference.header.proposer == byzantine_address {
            byzantine_blocks += 1;
            assert_eq!(
                reference.header.view % 3,
                0,
                "height {h}: a block of validator-3 from a withheld or invalid view (view {}) \
                 was finalized",
                reference.header.view
            );
        }
    }
    for (address, balance) in &expected {
        for i in HONEST {
            assert_eq!(
                clients[i].balance(address).await.unwrap() as i128,
                *balance,
                "validator-{i}: balance of {address}"
            );
        }
    }

    // Invalid proposals were made and every honest validator refused them.
    for i in HONEST {
        let refused = metric(&urls[i], "cairn_proposals_refused_total")
            .await
            .expect("metric");
        assert!(
            refused >= 1.0,
            "validator-{i} refused no proposal: the invalid blocks never reached it"
        );
    }

    // Every honest validator stores and serves evidence of validator-3's equivocation, and
    // none against an honest validator.
    for i in HONEST {
        let mut evidence = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            evidence = clients[i].evidence().await.unwrap();
            if evidence
                .iter()
                .any(|e| e.validator_index == BYZANTINE as u16 && e.kind == "notarize/notarize")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            evidence
                .iter()
                .any(|e| e.validator_index == BYZANTINE as u16 && e.kind == "notarize/notarize"),
            "validator-{i} holds no notarize/notarize evidence against validator-3: {evidence:?}"
        );
        assert!(
            evidence
                .iter()
                .all(|e| e.validator_index == BYZANTINE as u16),
            "validator-{i} holds evidence against an honest validator: {evidence:?}"
        );
    }

    // The behaviours really ran (the flag was not silently ignored).
    let log = std::fs::read_to_string(&byzantine_log).unwrap();
    for line in [
        "byzantine: equivocating",
        "byzantine: withholding a vote",
        "byzantine: proposing a block with a wrong state root",
    ] {
        assert!(log.contains(line), "validator-3's log lacks `{line}`");
    }
    eprintln!(
        "byzantine testnet: {} transfers finalized, height {top}, {byzantine_blocks} blocks of \
         validator-3 finalized (equivocation views only), {:.0} s",
        submitted.len(),
        start.elapsed().as_secs_f64()
    );
    net.stop_all();
}
