//! Offline signing end to end against a real single-validator chain (`cairn-node dev`, built
//! beside this test: `cargo build -p cairn-node --bins`): `transfer --offline` with the node
//! unreachable, `decode`, `send --wait` until finalized; the node's plaintext dev-account key
//! file (the format testnet demo accounts use) works unchanged, and an encrypted copy of it
//! signs too.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{DevNode, cairn_at, node_binary, show};

#[test]
fn offline_sign_decode_send_finalized_on_a_dev_chain() {
    let node = DevNode::start();
    let dev = node.dev_key();
    let status = node.json(&dev, &["status"]);
    let chain_id = status["chainId"].as_str().unwrap().to_string();
    let expiry = (status["latestHeight"].as_u64().unwrap() + 1000).to_string();
    let me = node.json(&dev, &["address"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    let nonce0 = node.json(&dev, &["balance"])["nonce"].as_u64().unwrap();
    let bob = cairn_ledger::Address([0xB0; 32]).to_bech32();

    // Offline: the node is unreachable (port 9) and is never needed.
    let dead = "http://127.0.0.1:9";
    let sign = |nonce: u64, amount: &str, extra: &[&str]| -> Output {
        let n = nonce.to_string();
        let args = [
            &[
                "transfer",
                "--offline",
                "--to",
                &bob,
                "--amount",
                amount,
                "--nonce",
                &n,
                "--chain-id",
                &chain_id,
                "--expiry-height",
                &expiry,
            ][..],
            extra,
        ]
        .concat();
        cairn_at(dead, node.home.path(), &dev, &args, &[])
    };
    let out = sign(nonce0, "5", &[]);
    assert!(out.status.success(), "{}", show(&out));
    let tx_hex = String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_string();
    assert!(
        tx_hex.len() > 300 && tx_hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{tx_hex}"
    );

    // Each of the three fields is required, with a usage error naming it.
    for missing in ["--nonce", "--chain-id", "--expiry-height"] {
        let mut args = vec!["transfer", "--offline", "--to", &bob, "--amount", "1"];
        let n = nonce0.to_string();
        for (flag, value) in [
            ("--nonce", n.as_str()),
            ("--chain-id", chain_id.as_str()),
            ("--expiry-height", expiry.as_str()),
        ] {
            if flag != missing {
                args.extend([flag, value]);
            }
        }
        let out = cairn_at(dead, node.home.path(), &dev, &args, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(missing),
            "{missing}: {}",
            show(&out)
        );
    }

    // decode: every field, the hash, and the signature verdict.
    let out = cairn_at(dead, node.home.path(), &dev, &["decode", &tx_hex], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "signature valid",
        &format!("sender:        {me}"),
        &format!("recipient:     {bob}"),
        "amount:        5",
        &format!("nonce:         {nonce0}"),
        &format!("chain id:      {chain_id}"),
        &format!("expiry height: {expiry}"),
        "fee:           1",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    let d = node.json(&dev, &["decode", &tx_hex]);
    assert_eq!(d["signatureValid"], true);
    assert_eq!(d["amount"], 5);
    assert_eq!(d["kind"], "transfer");
    // A changed amount byte: decodes, but the signature does not verify.
    let mut bytes = hex::decode(&tx_hex).unwrap();
    let amount_at = bytes.len() - 64 - 8;
    assert_eq!(bytes[amount_at], 5);
    bytes[amount_at] = 6;
    let forged = hex::encode(&bytes);
    let f = node.json(&dev, &["decode", &forged]);
    assert_eq!(
        (f["signatureValid"].as_bool(), f["amount"].as_u64()),
        (Some(false), Some(6))
    );
    let out = node.cairn(&dev, &["decode", &forged], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("signature INVALID"),
        "{}",
        show(&out)
    );
    // send refuses it locally; garbage is refused too.
    let out = node.cairn(&dev, &["send", &forged], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));
    let out = node.cairn(&dev, &["decode", "zz12"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    // send FILE --wait: finalized on the chain.
    let tx_file = node.home.path().join("tx1.hex");
    std::fs::write(&tx_file, format!("{tx_hex}\n")).unwrap();
    let sent = node.json(&dev, &["send", tx_file.to_str().unwrap(), "--wait"]);
    assert_eq!(sent["finality"]["status"], "finalized", "{sent}");
    assert_eq!(sent["hash"], d["hash"]);
    assert_eq!(node.json(&dev, &["balance", &bob])["balance"], 5);
    let tx = node.json(&dev, &["tx", d["hash"].as_str().unwrap()]);
    assert_eq!(tx["status"], "finalized");

    // --out FILE, from an encrypted copy of the dev key, then `send` (text mode) --wait.
    let pw = node.home.path().join("pw");
    std::fs::write(&pw, "dev pass\n").unwrap();
    let enc = node.home.path().join("dev-encrypted.json");
    let out = node.cairn(
        &dev,
        &[
            "key",
            "import",
            "--from",
            dev.to_str().unwrap(),
            "--out",
            enc.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let tx2_file = node.home.path().join("tx2.hex");
    let n1 = (nonce0 + 1).to_string();
    let out = cairn_at(
        dead,
        node.home.path(),
        &enc,
        &[
            "transfer",
            "--offline",
            "--to",
            &bob,
            "--amount",
            "7",
            "--nonce",
            &n1,
            "--chain-id",
            &chain_id,
            "--expiry-height",
            &expiry,
            "--out",
            tx2_file.to_str().unwrap(),
        ],
        &[("CAIRN_PASSWORD", "dev pass")],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cairn send"));
    // The encrypted key needs its passphrase: without one (and no terminal) it fails.
    let out = cairn_at(
        dead,
        node.home.path(),
        &enc,
        &[
            "transfer",
            "--offline",
            "--to",
            &bob,
            "--amount",
            "7",
            "--nonce",
            &n1,
            "--chain-id",
            &chain_id,
            "--expiry-height",
            &expiry,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let out = node.cairn(&dev, &["send", tx2_file.to_str().unwrap(), "--wait"], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("submitted") && text.contains("finalized at height"),
        "{text}"
    );
    assert_eq!(node.json(&dev, &["balance", &bob])["balance"], 12);

    // The plaintext dev key still signs online transfers with no passphrase.
    let t = node.json(&dev, &["transfer", "--to", &bob, "--amount", "1", "--wait"]);
    assert_eq!(t["finality"]["status"], "finalized");
    assert_eq!(node.json(&dev, &["balance", &bob])["balance"], 13);
}

/// `cairn-node` runs with a validator key encrypted by `cairn key change-password`, given
/// `--key-password-file`; without it, it refuses to start and says what to pass.
#[test]
fn dev_node_runs_with_an_encrypted_validator_key() {
    let home = tempfile::tempdir().unwrap();
    let chain = home.path().join("chain");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let rpc = format!("http://127.0.0.1:{port}");
    let start = |extra: &[&str]| -> Child {
        Command::new(node_binary())
            .arg("dev")
            .arg("--home")
            .arg(&chain)
            .arg("--rpc.listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env_remove("CAIRN_HOME")
            .env_remove("CAIRN_KEY_PASSWORD_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cairn-node dev")
    };
    let height = |keyfile: &Path| -> Option<u64> {
        let out = cairn_at(&rpc, home.path(), keyfile, &["--json", "status"], &[]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap()["latestHeight"].as_u64())
            .flatten()
    };
    let wait_height = |keyfile: &Path, above: u64| -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(h) = height(keyfile).filter(|h| *h > above) {
                return h;
            }
            assert!(Instant::now() < deadline, "no height above {above} in 60 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // First run creates the home (plaintext keys) and makes blocks.
    let mut node = start(&[]);
    let vkey = chain.join("validator_key.json");
    let h1 = wait_height(&vkey, 0);
    let _ = node.kill();
    let _ = node.wait();

    // Encrypt the validator key in place with the wallet.
    let pw = home.path().join("validator.pw");
    std::fs::write(&pw, "validator pass\n").unwrap();
    let out = cairn_at(
        &rpc,
        home.path(),
        &vkey,
        &[
            "key",
            "change-password",
            "--new-password-file",
            pw.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&vkey).unwrap()).unwrap();
    assert_eq!(file["kind"], "cairn-keystore");

    // Without the passphrase file: refuses to start, saying what to pass.
    let out = start(&[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--key-password-file"), "{err}");

    // With it: the validator signs blocks again.
    let mut node = start(&["--key-password-file", pw.to_str().unwrap()]);
    let h2 = wait_height(&vkey, h1);
    let _ = node.kill();
    let _ = node.wait();
    assert!(h2 > h1);
}
