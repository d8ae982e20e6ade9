//! End to end: the `cairn` binary against the real `cairn-rpc` server on 127.0.0.1:0,
//! backed by a small in-memory chain that applies transfers (one block per transaction).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use cairn_ledger::governance::{
    AccountsPolicy, GovContext, GovError, Governance, Permissions, ValidatorInfo, ed25519_peer_id,
};
use cairn_ledger::{
    Action, Address, Block, BlockHeader, ChainParams, Hash, LedgerError, SignedTransaction,
    txs_root,
};
use cairn_rpc::{
    AccountInfo, PeerInfo, RpcBackend, RpcError, RpcServerConfig, RpcServerHandle, Status,
    TxStatus, async_trait,
};
use serde_json::Value;

const CHAIN: &str = "cairn-e2e";

#[derive(Default)]
struct Chain {
    accounts: HashMap<Address, (u64, u64)>,
    blocks: Vec<Block>,
    txs: HashMap<Hash, TxStatus>,
    /// The real governance rules over a record the test sets (`None`: no governance).
    governance: Option<Governance>,
    permissions: BTreeMap<Address, Permissions>,
}

struct MemNode {
    chain: Mutex<Chain>,
}

impl MemNode {
    fn new() -> Arc<MemNode> {
        let genesis = Block {
            header: BlockHeader {
                chain_id: CHAIN.into(),
                height: 0,
                view: 0,
                parent_hash: Hash::ZERO,
                proposer: Address::default(),
                timestamp_ms: 0,
                txs_root: txs_root(&[]),
                signed_txs_root: cairn_ledger::signed_txs_root_of(&[]),
                state_root: Hash::ZERO,
            },
            transactions: vec![],
        };
        Arc::new(MemNode {
            chain: Mutex::new(Chain {
                blocks: vec![genesis],
                ..Chain::default()
            }),
        })
    }

    fn fund(&self, address: Address, amount: u64) {
        self.chain
            .lock()
            .unwrap()
            .accounts
            .entry(address)
            .or_default()
            .0 += amount;
    }

    fn account_of(&self, address: Address) -> (u64, u64) {
        self.chain
            .lock()
            .unwrap()
            .accounts
            .get(&address)
            .copied()
            .unwrap_or_default()
    }
}

#[async_trait]
impl RpcBackend for MemNode {
    async fn status(&self) -> Result<Status, RpcError> {
        let c = self.chain.lock().unwrap();
        let head = c.blocks.last().unwrap();
        Ok(Status {
            chain_id: CHAIN.into(),
            genesis_hash: c.blocks[0].hash(),
            latest_height: head.header.height,
            latest_hash: head.hash(),
            latest_state_root: head.header.state_root,
            peer_count: 0,
            syncing: false,
            node_version: "test".into(),
            rpc_version: cairn_rpc::RPC_VERSION,
            validator_name: None,
            epoch: 0,
            view: 0,
            mempool_txs: 0,
            finality_latency_ms: None,
            lowest_retained_height: 0,
            upcoming_leaders: Vec::new(),
        })
    }

    async fn account(&self, address: Address) -> Result<AccountInfo, RpcError> {
        let (balance, nonce) = self.account_of(address);
        Ok(AccountInfo {
            address,
            balance,
            nonce,
            next_nonce: nonce,
            permissions: Default::default(),
        })
    }

    async fn submit_transaction(&self, tx: SignedTransaction) -> Result<Hash, RpcError> {
        tx.verify(CHAIN)?;
        let hash = tx.hash();
        let b = &tx.body;
        let mut c = self.chain.lock().unwrap();
        let height = c.blocks.len() as u64;
        let (balance, nonce) = c.accounts.get(&b.sender).copied().unwrap_or_default();
        if b.nonce < nonce {
            return Err(LedgerError::StaleNonce {
                tx: hash,
                expected: nonce,
                got: b.nonce,
            }
            .into());
        }
        if b.nonce > nonce {
            return Err(LedgerError::FutureNonce {
                tx: hash,
                expected: nonce,
                got: b.nonce,
            }
            .into());
        }
        if b.expiry_height < height {
            return Err(LedgerError::Expired {
                tx: hash,
                expiry_height: b.expiry_height,
                height,
            }
            .into());
        }
        let needed = b.spend();
        if needed > u128::from(balance) {
            return Err(LedgerError::InsufficientBalance {
                tx: hash,
                balance,
                needed,
            }
            .into());
        }
        if let Action::Propose(_) | Action::Approve { .. } = &b.action {
            let c = &mut *c;
            let g = c
                .governance
                .as_mut()
                .ok_or_else(|| LedgerError::Governance {
                    tx: hash,
                    error: Box::new(cairn_ledger::governance::GovernanceError::Disabled),
                })?;
            let mut next = g.clone();
            let ctx = GovContext {
                chain_id: CHAIN,
                height,
            };
            let result = match &b.action {
                Action::Propose(action) => {
                    next.propose(ctx, b.sender, action.clone(), &mut c.permissions)
                }
                Action::Approve { proposal_id } => {
                    next.approve(ctx, b.sender, *proposal_id, &mut c.permissions)
                }
                Action::Transfer { .. } => unreachable!(),
            };
            match result {
                Ok(_) => *g = next,
                Err(GovError::Refused(error)) => {
                    return Err(LedgerError::Governance {
                        tx: hash,
                        error: Box::new(error),
                    }
                    .into());
                }
                Err(GovError::Fatal(e)) => return Err(e.into()),
            }
        }
        c.accounts
            .insert(b.sender, (balance - (b.amount() + b.fee), nonce + 1));
        if let Some(recipient) = b.recipient() {
            c.accounts.entry(recipient).or_default().0 += b.amount();
        }
        let parent = c.blocks.last().unwrap().hash();
        let block = Block {
            header: BlockHeader {
                chain_id: CHAIN.into(),
                height,
                view: height,
                parent_hash: parent,
                proposer: Address::default(),
                timestamp_ms: 1_700_000_000_000 + height,
                txs_root: txs_root(&[hash]),
                signed_txs_root: cairn_ledger::signed_txs_root_of(std::slice::from_ref(&tx)),
                state_root: Hash([height as u8; 32]),
            },
            transactions: vec![tx.clone()],
        };
        c.txs.insert(
            hash,
            TxStatus::Finalized {
                height,
                index: 0,
                block_hash: block.hash(),
            },
        );
        c.blocks.push(block);
        Ok(hash)
    }

    async fn transaction(&self, hash: Hash) -> Result<TxStatus, RpcError> {
        Ok(self
            .chain
            .lock()
            .unwrap()
            .txs
            .get(&hash)
            .cloned()
            .unwrap_or(TxStatus::Unknown))
    }

    async fn block_by_height(&self, height: u64) -> Result<Option<Block>, RpcError> {
        Ok(usize::try_from(height)
            .ok()
            .and_then(|h| self.chain.lock().unwrap().blocks.get(h).cloned()))
    }

    async fn block_by_hash(&self, hash: Hash) -> Result<Option<Block>, RpcError> {
        Ok(self
            .chain
            .lock()
            .unwrap()
            .blocks
            .iter()
            .find(|b| b.hash() == hash)
            .cloned())
    }

    async fn validators(&self) -> Result<Vec<cairn_rpc::ValidatorInfo>, RpcError> {
        Ok(vec![])
    }

    async fn governance(&self) -> Result<Option<Governance>, RpcError> {
        Ok(self.chain.lock().unwrap().governance.clone())
    }

    async fn peers(&self) -> Result<Vec<PeerInfo>, RpcError> {
        Ok(vec![])
    }
}

struct Env {
    server: RpcServerHandle,
    node: Arc<MemNode>,
    home: tempfile::TempDir,
}

impl Env {
    async fn start() -> Env {
        let node = MemNode::new();
        let config = RpcServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..RpcServerConfig::default()
        };
        let server = cairn_rpc::spawn(config, node.clone()).await.unwrap();
        Env {
            server,
            node,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn keyfile(&self) -> std::path::PathBuf {
        self.home.path().join("key.json")
    }

    /// Runs `cairn --rpc <server> --keyfile <tmp> ARGS` with a clean environment.
    async fn cairn(&self, args: &[&str]) -> Output {
        cairn_at(&self.server.url(), &self.keyfile(), self.home.path(), args).await
    }

    async fn cairn_json(&self, args: &[&str]) -> Value {
        let out = self.cairn(&[&["--json"], args].concat()).await;
        assert!(
            out.status.success(),
            "cairn {args:?} failed: {}",
            show(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout not JSON ({e}): {}", show(&out)))
    }
}

async fn cairn_at(rpc: &str, keyfile: &Path, home: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.env_remove("CAIRN_RPC")
        .env_remove("CAIRN_KEYFILE")
        .env("HOME", home);
    cmd.arg("--rpc")
        .arg(rpc)
        .arg("--keyfile")
        .arg(keyfile)
        .args(args);
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("cairn finished")
        .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn one_json_line(out: &Output) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "one JSON object on stdout: {}",
        show(out)
    );
    serde_json::from_str(&stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_balance_transfer_wait_tx_block_status() {
    let env = Env::start().await;

    // keygen writes a 0600 key file; address reads it back.
    let k = env.cairn_json(&["keygen", "--insecure-plaintext"]).await;
    let me: Address = k["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(k["keyfile"], env.keyfile().to_str().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(env.keyfile())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert_eq!(
        env.cairn_json(&["address"]).await["address"],
        me.to_bech32()
    );
    let refused = env.cairn(&["keygen"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already exists"),
        "{}",
        show(&refused)
    );

    env.node.fund(me, 1000);
    let bob = Address([0xB0; 32]);

    // Own balance by default.
    let b = env.cairn_json(&["balance"]).await;
    assert_eq!(
        (b["balance"].as_u64(), b["nonce"].as_u64()),
        (Some(1000), Some(0))
    );

    // Transfer, waiting for finality; nonce, chain id and expiry come from the node.
    let t = env
        .cairn_json(&[
            "transfer",
            "--to",
            &bob.to_bech32(),
            "--amount",
            "250",
            "--wait",
        ])
        .await;
    let hash = t["hash"].as_str().unwrap().to_string();
    assert_eq!(t["finality"]["status"], "finalized");
    assert_eq!(t["finality"]["height"], 1);
    assert_eq!((t["nonce"].as_u64(), t["fee"].as_u64()), (Some(0), Some(1)));
    assert_eq!(t["chainId"], CHAIN);
    assert_eq!(t["expiryHeight"], 1000, "latest height 0 + 1000");
    assert_eq!(env.node.account_of(me), (749, 1));
    assert_eq!(env.node.account_of(bob), (250, 0));

    // Text mode, second transfer: nonce 1 is fetched.
    let out = env
        .cairn(&[
            "transfer",
            "--to",
            &bob.to_bech32(),
            "--amount",
            "9",
            "--fee",
            "0",
            "--wait",
        ])
        .await;
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("submitted") && text.contains("finalized at height 2"),
        "{text}"
    );
    assert_eq!(env.node.account_of(me), (740, 2));

    // Balances through the binary.
    let b = env.cairn_json(&["balance", &bob.to_bech32()]).await;
    assert_eq!(b["balance"], 259);
    let out = env.cairn(&["balance"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("balance: 740") && text.contains("nonce:   2"),
        "{text}"
    );

    // tx, block, status.
    let s = env.cairn_json(&["tx", &hash]).await;
    assert_eq!(
        (
            s["status"].as_str(),
            s["height"].as_u64(),
            s["hash"].as_str()
        ),
        (Some("finalized"), Some(1), Some(&*hash))
    );
    let unknown = env.cairn_json(&["tx", &Hash([1; 32]).to_hex()]).await;
    assert_eq!(unknown["status"], "unknown");
    let latest = env.cairn_json(&["block"]).await;
    assert_eq!(latest["header"]["height"], 2);
    let b1 = env.cairn_json(&["block", "1"]).await;
    assert_eq!(b1["transactions"][0]["hash"], hash.as_str());
    let by_hash = env
        .cairn_json(&["block", b1["hash"].as_str().unwrap()])
        .await;
    assert_eq!(by_hash, b1);
    let out = env.cairn(&["block", "1"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&hash),
        "{}",
        show(&out)
    );
    let missing = env.cairn(&["--json", "block", "99"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        one_json_line(&missing)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no finalized block at height 99")
    );
    let st = env.cairn_json(&["status"]).await;
    assert_eq!(
        (st["chainId"].as_str(), st["latestHeight"].as_u64()),
        (Some(CHAIN), Some(2))
    );

    // Without --wait the hash is printed and the transfer applies.
    let t = env
        .cairn_json(&["transfer", "--to", &bob.to_bech32(), "--amount", "1"])
        .await;
    assert!(t.get("finality").is_none());
    assert_eq!(
        env.cairn_json(&["tx", t["hash"].as_str().unwrap()]).await["status"],
        "finalized"
    );
    env.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_and_unreachable_node_exit_non_zero() {
    let env = Env::start().await;
    let k = env.cairn_json(&["keygen", "--insecure-plaintext"]).await;
    let me: Address = k["address"].as_str().unwrap().parse().unwrap();
    env.node.fund(me, 100);
    let bob = Address([0xB0; 32]).to_bech32();

    // Insufficient balance: exit 4, reason in the message (text) and in the JSON error.
    let out = env
        .cairn(&["transfer", "--to", &bob, "--amount", "100"])
        .await;
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: transaction rejected: insufficient_balance: "),
        "{err}"
    );
    assert!(
        err.contains("amount + fee = 101 exceeds balance 100"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = env
        .cairn(&["--json", "transfer", "--to", &bob, "--amount", "100"])
        .await;
    assert_eq!(out.status.code(), Some(4));
    let e = one_json_line(&out);
    assert_eq!(e["error"]["kind"], "rejected");
    assert_eq!(e["error"]["reason"], "insufficient_balance");
    assert_eq!(e["error"]["code"], -32010);
    assert_eq!(e["error"]["exitCode"], 4);
    assert!(out.stderr.is_empty(), "{}", show(&out));

    // Explicit nonce / chain id / expiry are used as given (and the node judges them).
    let out = env
        .cairn(&["transfer", "--to", &bob, "--amount", "1", "--nonce", "5"])
        .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("future_nonce"),
        "{}",
        show(&out)
    );
    let out = env
        .cairn(&[
            "transfer",
            "--to",
            &bob,
            "--amount",
            "1",
            "--chain-id",
            "other",
            "--expiry-height",
            "10",
        ])
        .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong_chain"),
        "{}",
        show(&out)
    );
    assert_eq!(env.node.account_of(me), (100, 0), "nothing applied");

    // Node unreachable: exit 3 with a clear message.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let out = cairn_at(&dead, &env.keyfile(), env.home.path(), &["balance"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach node at {dead}/: connection refused")),
        "{err}"
    );
    let out = cairn_at(
        &dead,
        &env.keyfile(),
        env.home.path(),
        &["--json", "status"],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(one_json_line(&out)["error"]["kind"], "unreachable");

    // No key file: exit 1, says how to fix it.
    let nokey = env.home.path().join("none.json");
    let out = cairn_at(
        &env.server.url(),
        &nokey,
        env.home.path(),
        &["transfer", "--to", &bob, "--amount", "1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cairn keygen"),
        "{}",
        show(&out)
    );

    // Usage error: exit 2.
    let out = env
        .cairn(&["transfer", "--to", "cairn1nope", "--amount", "1"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    env.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_default_path_env_and_force() {
    let env = Env::start().await;
    // Default key file under $HOME/.cairn, created 0700/0600.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.env_remove("CAIRN_RPC")
        .env_remove("CAIRN_KEYFILE")
        .env("HOME", env.home.path());
    let out = cmd
        .args(["keygen", "--insecure-plaintext", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let path = env.home.path().join(".cairn/key.json");
    assert_eq!(one_json_line(&out)["keyfile"], path.to_str().unwrap());
    let first = cairn_wallet::KeyFile::load(&path).unwrap().address();

    // CAIRN_KEYFILE and CAIRN_RPC are honoured.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.env("HOME", env.home.path())
        .env("CAIRN_KEYFILE", &path)
        .env("CAIRN_RPC", env.server.url());
    env.node.fund(first, 5);
    let out = cmd.args(["balance", "--json"]).output().await.unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(one_json_line(&out)["balance"], 5);

    // --out with --force replaces the key.
    let out = env
        .cairn(&[
            "keygen",
            "--insecure-plaintext",
            "--out",
            path.to_str().unwrap(),
            "--force",
            "--json",
        ])
        .await;
    assert!(out.status.success(), "{}", show(&out));
    let second = cairn_wallet::KeyFile::load(&path).unwrap().address();
    assert_ne!(first, second);
    assert_eq!(one_json_line(&out)["address"], second.to_bech32());
    env.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gov_propose_approve_show_and_refusals() {
    let env = Env::start().await;
    // Two members: the default key file (alice) and bob; threshold 2.
    let alice: Address = env.cairn_json(&["keygen", "--insecure-plaintext"]).await["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let bob_file = env.home.path().join("bob.json");
    let bob: Address = env
        .cairn_json(&[
            "keygen",
            "--insecure-plaintext",
            "--out",
            bob_file.to_str().unwrap(),
        ])
        .await["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let validators = (0..4u8)
        .map(|i| ValidatorInfo {
            name: format!("v{i}"),
            consensus_key: Address::from_public_key(
                &ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]).verifying_key(),
            ),
            peer_id: ed25519_peer_id(&[i + 50; 32]),
            voting_power: 1,
        })
        .collect();
    env.node.chain.lock().unwrap().governance = Some(
        Governance::genesis(
            vec![alice, bob],
            2,
            AccountsPolicy::Open,
            100,
            validators,
            ChainParams::default(),
        )
        .unwrap(),
    );
    env.node.fund(alice, 100);
    env.node.fund(bob, 100);

    // alice proposes a grant; it waits for a second approval.
    let carol = Address([0xcc; 32]).to_bech32();
    let r = env
        .cairn_json(&["gov", "propose", "grant", "--account", &carol, "--wait"])
        .await;
    assert_eq!(r["kind"], "propose");
    assert_eq!(r["action"]["propose"]["grant"]["permission"], "transact");
    let shown = env.cairn_json(&["gov", "show"]).await;
    assert_eq!(shown["threshold"], 2);
    assert_eq!(shown["proposals"][0]["id"], 1);
    assert_eq!(
        shown["proposals"][0]["approvals"].as_array().unwrap().len(),
        1
    );
    let text = env.cairn(&["gov", "show", "1"]).await;
    assert!(text.status.success(), "{}", show(&text));
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("proposal 1: grant"),
        "{}",
        show(&text)
    );

    // alice approving again is refused with its code, exit 4, and nothing changes.
    let out = env.cairn(&["--json", "gov", "approve", "1"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert_eq!(one_json_line(&out)["error"]["reason"], "already_approved");

    // bob approves with his key file: executed, the proposal is gone, carol holds transact.
    let out = cairn_at(
        &env.server.url(),
        &bob_file,
        env.home.path(),
        &["--json", "gov", "approve", "1", "--wait"],
    )
    .await;
    assert!(out.status.success(), "{}", show(&out));
    let r = one_json_line(&out);
    assert_eq!(r["kind"], "approve");
    let shown = env.cairn_json(&["gov", "show"]).await;
    assert!(shown["proposals"].as_array().unwrap().is_empty());
    let carol_addr: Address = carol.parse().unwrap();
    assert!(
        env.node.chain.lock().unwrap().permissions[&carol_addr]
            .contains(cairn_ledger::governance::Permission::Transact)
    );

    // An unknown proposal, and a bad action, are refused with their codes.
    let out = env.cairn(&["--json", "gov", "approve", "9"]).await;
    assert_eq!(one_json_line(&out)["error"]["reason"], "unknown_proposal");
    let out = env
        .cairn(&[
            "--json",
            "gov",
            "propose",
            "set-members",
            "--member",
            &carol,
            "--threshold",
            "2",
        ])
        .await;
    assert_eq!(one_json_line(&out)["error"]["reason"], "bad_members");
    let out = env.cairn(&["gov", "show", "7"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    // sign-rotation prints a signature the ledger accepts for that rotation.
    let new_key = Address([0x42; 32]).to_bech32();
    let r = env
        .cairn_json(&["gov", "sign-rotation", "--new-key", &new_key])
        .await;
    let sig = hex::decode(r["signature"].as_str().unwrap()).unwrap();
    let digest =
        cairn_ledger::governance::rotation_digest(CHAIN, &alice, &new_key.parse().unwrap());
    alice
        .public_key()
        .unwrap()
        .verify_strict(
            digest.as_bytes(),
            &ed25519_dalek::Signature::from_slice(&sig).unwrap(),
        )
        .unwrap();
}
