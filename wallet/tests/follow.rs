//! `cairn transfer --wait` and `cairn tx HASH --follow` over the node's WebSocket, against a
//! real single-validator chain (`cairn-node dev`, built beside this test:
//! `cargo build -p cairn-node --bins`). The polling fallback is covered against a node
//! without WebSocket in `e2e.rs` and, with every status change, in `cairn-rpc`'s tests.

mod common;

use common::{DevNode, show};
use serde_json::Value;

#[test]
fn wait_and_follow_use_the_websocket() {
    let node = DevNode::start();
    let dev = node.dev_key();
    let bob = cairn_ledger::Address([0xB1; 32]).to_bech32();

    // transfer --wait: finalized, learned over the WebSocket (no polling note).
    let out = node.cairn(
        &dev,
        &["transfer", "--to", &bob, "--amount", "7", "--wait"],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("finalized at height"), "{}", show(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("polling"),
        "fell back to polling: {}",
        show(&out)
    );

    // tx --follow on a transfer just sent: pending lines (maybe none), then the final one.
    let sent = node.json(&dev, &["transfer", "--to", &bob, "--amount", "8"]);
    let hash = sent["hash"].as_str().unwrap();
    let out = node.cairn(&dev, &["--json", "tx", hash, "--follow"], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (last, before) = lines.split_last().expect("at least the final status");
    for line in before {
        assert_eq!(line["status"], "pending", "{line}");
        assert_eq!(line["hash"], hash);
    }
    assert_eq!(last["status"], "finalized", "{last}");
    assert_eq!(last["hash"], hash);
    assert_eq!(last["via"], "websocket", "{last}");
    let height = last["height"].as_u64().unwrap();
    let tx = node.json(&dev, &["tx", hash]);
    assert_eq!(tx["height"].as_u64(), Some(height));

    // Following a transaction the node never sees ends at the timeout, exit status 5,
    // naming the last status.
    let nobody = "ab".repeat(32);
    let out = node.cairn(
        &dev,
        &["tx", &nobody, "--follow", "--wait-timeout-ms", "600"],
        &[],
    );
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not final after 600 ms"), "{err}");
    assert!(err.contains("last status: unknown"), "{err}");
}
