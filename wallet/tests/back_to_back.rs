//! Back-to-back transfers from one key without `--nonce` against a real single-validator
//! chain (`cairn-node dev`, built beside this test: `cargo build -p cairn-node --bins`).
//!
//! issue 15: without `--nonce` the wallet took the account's finalized nonce, so a transfer
//! sent before the previous one was final reused its nonce and was refused. It now takes
//! `getAccount`'s `nextNonce` (the account nonce plus the sender's gap-free pooled run).

mod common;

use std::time::{Duration, Instant};

use common::{DevNode, show};

/// Transfers sent in a row, none waited for.
const TRANSFERS: usize = 10;

#[test]
fn ten_back_to_back_transfers_without_nonce_all_finalize() {
    let node = DevNode::start();
    let dev = node.dev_key();
    let nonce0 = node.json(&dev, &["balance"])["nonce"].as_u64().unwrap();
    let bob = cairn_ledger::Address([0xB0; 32]).to_bech32();

    let mut sent = Vec::with_capacity(TRANSFERS);
    for i in 0..TRANSFERS {
        let amount = (100 + i).to_string();
        let out = node.cairn(
            &dev,
            &["--json", "transfer", "--to", &bob, "--amount", &amount],
            &[],
        );
        assert!(
            out.status.success(),
            "transfer {i} (sent before the previous ones were final): {}",
            show(&out)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["nonce"].as_u64(),
            Some(nonce0 + i as u64),
            "transfer {i} takes the next nonce: {v}"
        );
        sent.push(v["hash"].as_str().unwrap().to_string());
    }

    // Every one of them finalizes (bounded: 60 s for all).
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, hash) in sent.iter().enumerate() {
        loop {
            let v = node.json(&dev, &["tx", hash]);
            match v["status"].as_str() {
                Some("finalized") => break,
                Some("pending") => {}
                other => panic!("transfer {i} ({hash}) reads {other:?}: {v}"),
            }
            assert!(
                Instant::now() < deadline,
                "transfer {i} not final within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let account = node.json(&dev, &["balance"]);
    assert_eq!(account["nonce"].as_u64(), Some(nonce0 + TRANSFERS as u64));
    assert_eq!(
        account["nextNonce"], account["nonce"],
        "nothing pooled any more"
    );
    let bob_balance = node.json(&dev, &["balance", &bob])["balance"].as_u64();
    let expected: u64 = (0..TRANSFERS as u64).map(|i| 100 + i).sum();
    assert_eq!(bob_balance, Some(expected));
}
