//! The node's RPC listener as `node::run` wires it: `/metrics` content type, the `Host`
//! check, and the connection caps from `[rpc]` config.

mod common;

use std::time::{Duration, Instant};

use common::FullNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request` to the node's RPC port and reads until it closes (at most 5 s).
async fn exchange(rpc_port: u16, request: &str) -> Option<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", rpc_port))
            .await
            .ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn metrics_are_openmetrics_and_the_front_door_holds() {
    let (_keys, genesis) = common::four_validators("cairn-rpc-front", &[]);
    // A bootstrap peer that is never there: the node runs on its own.
    let nobody = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let nowhere: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", common::free_port())
        .parse()
        .unwrap();
    let node = FullNode::start_with(&genesis, &nowhere, &nobody, |c| {
        c.rpc.connections_per_ip_max = 3;
        c.rpc.connections_max = 3;
    });
    let get_metrics = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let started = Instant::now();
    let response = loop {
        let answer = exchange(node.rpc_port, get_metrics).await;
        if let Some(r) = answer.filter(|r| r.starts_with("HTTP/1.1 200")) {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/metrics not served within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(
        head.lines().any(|l| l.eq_ignore_ascii_case(
            "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        "{head}"
    );
    assert!(body.contains("cairn_height"), "{body}");
    // Every admission, reputation and connection-limit counter of the network layer
    // (`NetworkStats`) is exported (docs/admission.md, "Metrics").
    for name in [
        "cairn_peers_admitted",
        "cairn_peers_refused",
        "cairn_peer_faults",
        "cairn_peers_banned",
        "cairn_unadmitted_dropped",
        "cairn_peers_disconnected_score",
        "cairn_connections_refused_banned",
        "cairn_ips_banned",
        "cairn_connections_refused_banned_ip",
        "cairn_connections_closed_limit",
        "cairn_connections_closed_peer_limit",
        "cairn_connections_closed_ip_limit",
        "cairn_admission_proofs_solved",
        "cairn_admission_claims_ignored",
        "cairn_admission_exemptions_withdrawn",
    ] {
        assert!(
            body.lines()
                .any(|l| l.starts_with(&format!("{name}_total "))),
            "{name}_total missing: {body}"
        );
        assert!(body.contains(&format!("# HELP {name} ")), "{name}: no help");
    }
    assert!(body.ends_with("# EOF\n"), "{body}");

    // No Host: 400, on the node's routes too.
    let response = exchange(
        node.rpc_port,
        "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("answered");
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");

    // The connection cap from the config: with 3 held, a 4th is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(("127.0.0.1", node.rpc_port))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = tokio::net::TcpStream::connect(("127.0.0.1", node.rpc_port))
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), fourth.read(&mut buf))
        .await
        .expect("the connection over rpc.connections_max is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    drop(held);
    node.stop().await;
}

/// The node's own backend: an epoch that does not exist (not ended, never reached, or
/// `u64::MAX`, which has no successor) is `null`, and bad params are -32602, on a node
/// whose chain never changed its set.
#[tokio::test]
async fn epoch_queries_for_missing_epochs_are_null_and_bad_params_are_refused() {
    use cairn_rpc::{RpcClient, ValidatorsAt, codes};
    use serde_json::{Value, json};

    let (_keys, genesis) = common::four_validators("cairn-rpc-epochs", &[]);
    let nobody = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let nowhere: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", common::free_port())
        .parse()
        .unwrap();
    let node = FullNode::start(&genesis, &nowhere, &nobody);
    let client = RpcClient::with_timeout(&node.rpc_url(), Duration::from_secs(5)).unwrap();
    common::wait_until(
        Duration::from_secs(30),
        "the node's RPC answers",
        || async { client.status().await.is_ok() },
    )
    .await;

    for epoch in [0, 1, 5, u64::MAX - 1, u64::MAX] {
        assert_eq!(client.epoch_proof(epoch).await.unwrap(), None, "{epoch}");
    }
    assert_eq!(
        client
            .validators_at(ValidatorsAt::Epoch(0))
            .await
            .unwrap()
            .map(|v| v.len()),
        Some(4)
    );
    for epoch in [1, u64::MAX] {
        assert_eq!(
            client
                .validators_at(ValidatorsAt::Epoch(epoch))
                .await
                .unwrap(),
            None,
            "{epoch}"
        );
    }
    for (method, params) in [
        ("getValidators", json!({"height": 0, "epoch": 0})),
        ("getEpochProof", json!({})),
        ("getEpochProof", Value::Null),
        ("getEpochProof", json!({"epoch": "1"})),
        ("getEpochProof", json!({"epoch": -1})),
    ] {
        let err = client
            .call::<Value>(method, params.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.rpc_code(),
            Some(codes::INVALID_PARAMS),
            "{method} {params}: {err}"
        );
    }
    // Still serving.
    assert!(client.status().await.is_ok());
    node.stop().await;
}

/// A single-validator chain run by a [`FullNode`] (its consensus key seed `[51; 32]` is the
/// only validator, so it finalizes alone), with `funded` holding 10^12.
fn solo_chain(chain_id: &str, funded: cairn_ledger::Address) -> (FullNode, String) {
    let (_keys, genesis) = common::validators_genesis(
        chain_id,
        &[[51; 32]],
        &[[50; 32]],
        &[(funded, 1_000_000_000_000)],
        cairn_genesis::ChainParams::default(),
    );
    let nobody = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let nowhere: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", common::free_port())
        .parse()
        .unwrap();
    let node = FullNode::start(&genesis, &nowhere, &nobody);
    let url = node.rpc_url();
    (node, url)
}

fn transfer(
    key: &ed25519_dalek::SigningKey,
    chain_id: &str,
    nonce: u64,
    amount: u64,
) -> cairn_ledger::SignedTransaction {
    common::signed_transfer(
        key,
        chain_id,
        nonce,
        cairn_ledger::Address([0xB0; 32]),
        amount,
    )
}

/// A [`solo_chain`] for `key`'s account and a client of it, once it finalized a block.
async fn solo_client(
    chain_id: &str,
    key: &ed25519_dalek::SigningKey,
) -> (FullNode, cairn_rpc::RpcClient) {
    let me = cairn_ledger::Address::from_public_key(&key.verifying_key());
    let (node, url) = solo_chain(chain_id, me);
    let client = cairn_rpc::RpcClient::with_timeout(&url, Duration::from_secs(5)).unwrap();
    common::wait_until(
        Duration::from_secs(30),
        "the node finalizes a block",
        || async { client.status().await.is_ok_and(|s| s.latest_height >= 1) },
    )
    .await;
    (node, client)
}

/// issue 15: `getTransaction` read the store, then asked the driver about the mempool; a
/// commit in between hid an accepted transaction from both, so it read `unknown`. Each
/// transfer here is polled in a tight loop from acceptance to finality: it must read
/// `pending` until it reads `finalized`, never `unknown`. Then refusals at submission
/// (before the mempool, and by it) read `rejected` with the reason the submission gave.
#[tokio::test]
async fn accepted_transfers_never_read_unknown_and_refusals_read_rejected() {
    use cairn_rpc::TxStatus;

    const CHAIN: &str = "cairn-rpc-race";
    const TRANSFERS: u64 = 12;
    let key = ed25519_dalek::SigningKey::from_bytes(&[60; 32]);
    let (node, client) = solo_client(CHAIN, &key).await;

    let mut polls_total = 0u64;
    for nonce in 0..TRANSFERS {
        let tx = transfer(&key, CHAIN, nonce, 10 + nonce);
        let hash = client.send_transaction(&tx).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut polls = 0u64;
        loop {
            polls += 1;
            match client.transaction(&hash).await.unwrap() {
                TxStatus::Pending => {}
                TxStatus::Finalized { .. } => break,
                other => panic!(
                    "transfer {nonce} ({hash}) read {other:?} after acceptance (poll {polls})"
                ),
            }
            assert!(
                Instant::now() < deadline,
                "transfer {nonce} not final in 30 s"
            );
        }
        polls_total += polls;
    }
    assert!(
        polls_total >= TRANSFERS,
        "every transfer was polled at least once"
    );

    // Refused before the mempool: a bad signature and a wrong chain id.
    let mut forged = transfer(&key, CHAIN, TRANSFERS, 5);
    forged.body.fee += 1;
    let wrong_chain = transfer(&key, "cairn-elsewhere", TRANSFERS, 5);
    // Refused by the mempool: a nonce already used.
    let stale = transfer(&key, CHAIN, 0, 999);
    for (tx, want) in [
        (&forged, "bad_signature"),
        (&wrong_chain, "wrong_chain"),
        (&stale, "stale_nonce"),
    ] {
        let err = client.send_transaction(tx).await.unwrap_err();
        let reason = err
            .rejection_reason()
            .unwrap_or_else(|| panic!("{want}: not a rejection: {err}"))
            .to_string();
        assert_eq!(reason, want, "{err}");
        match client.transaction(&tx.hash()).await.unwrap() {
            TxStatus::Rejected { reason, .. } => assert_eq!(reason, want),
            other => panic!("refused transaction ({want}) reads {other:?}"),
        }
    }
    node.stop().await;
}

/// issue 17 (graceful overload): a submission outside its sender's nonce window is refused
/// from one state read, before any signature is checked, so refusing it costs a small
/// fraction of a transfer. Shown by a forged transfer far ahead of its sender's nonce: it
/// reads `too_far_ahead`, not `bad_signature`. In a batch, every result stays in its place.
///
/// The batch also strands nonce 2 behind the refused nonce 1. That used to freeze a single
/// validator: with a non-empty mempool it proposed (empty blocks) without waiting, finalized
/// alone and proposed again in one drain of its consensus loop, forever, so the
/// `getTransaction` calls below timed out. It now waits as for an empty mempool when no pooled
/// transaction can go in the next block (`Mempool::has_ready`).
#[tokio::test]
async fn nonce_window_refusals_come_before_signature_checks_and_keep_batch_order() {
    use cairn_rpc::TxStatus;

    const CHAIN: &str = "cairn-rpc-window";
    let key = ed25519_dalek::SigningKey::from_bytes(&[61; 32]);
    let (node, client) = solo_client(CHAIN, &key).await;

    // The default window is 64 nonces ahead of the account's (0 here).
    let ok = transfer(&key, CHAIN, 0, 1);
    let mut far_forged = transfer(&key, CHAIN, 1_000, 1);
    far_forged.body.fee += 1;
    let mut near_forged = transfer(&key, CHAIN, 1, 1);
    near_forged.body.fee += 1;
    let also_ok = transfer(&key, CHAIN, 2, 1);
    let batch = [ok, far_forged.clone(), near_forged.clone(), also_ok];
    let results = client.send_transactions(&batch).await.unwrap();
    let got: Vec<(bool, Option<&str>)> = results
        .iter()
        .map(|r| (r.accepted, r.reason.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (true, None),
            (false, Some("too_far_ahead")),
            (false, Some("bad_signature")),
            (true, None),
        ]
    );
    for (r, tx) in results.iter().zip(&batch) {
        assert_eq!(r.hash, tx.hash(), "results in submission order");
    }
    match client.transaction(&far_forged.hash()).await.unwrap() {
        TxStatus::Rejected { reason, .. } => assert_eq!(reason, "too_far_ahead"),
        other => panic!("the far-ahead transfer reads {other:?}"),
    }
    // Alone, through sendTransaction, the same.
    let err = client.send_transaction(&far_forged).await.unwrap_err();
    assert_eq!(err.rejection_reason(), Some("too_far_ahead"), "{err}");
    node.stop().await;
}
