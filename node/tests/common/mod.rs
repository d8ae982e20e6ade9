//! Helpers shared by the node integration tests that run a real node (`node::run`, as the
//! binary does) against a bare network peer on loopback.

#![allow(dead_code)] // each test binary uses its own subset

pub mod cluster;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisValidator};
use cairn_ledger::Address;
use cairn_node::config::NodeConfig;
use cairn_node::network::{self, NetworkConfig, NetworkEvent, NetworkHandle};
use cairn_node::sync::{SyncRequest, SyncResponse};
use ed25519_dalek::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// A genesis with four validators, keys `[1; 32]`..`[4; 32]` (validator `i` signs with
/// `keys[i]`; its libp2p key seed is `[i + 10; 32]`), equal power, the default chain
/// parameters and `accounts` funded. Returns the keys and the genesis.
pub fn four_validators(chain_id: &str, accounts: &[(Address, u64)]) -> (Vec<SigningKey>, Genesis) {
    validators_genesis(
        chain_id,
        &[[1; 32], [2; 32], [3; 32], [4; 32]],
        &[[10; 32], [11; 32], [12; 32], [13; 32]],
        accounts,
        ChainParams::default(),
    )
}

/// A genesis whose validator `i` has consensus key seed `key_seeds[i]` and libp2p key seed
/// `peer_seeds[i]`, equal power, `params`, and `accounts` funded. Returns the signing keys
/// (by validator index) and the genesis.
pub fn validators_genesis(
    chain_id: &str,
    key_seeds: &[[u8; 32]],
    peer_seeds: &[[u8; 32]],
    accounts: &[(Address, u64)],
    params: ChainParams,
) -> (Vec<SigningKey>, Genesis) {
    assert_eq!(
        key_seeds.len(),
        peer_seeds.len(),
        "one peer seed per validator"
    );
    let keys: Vec<SigningKey> = key_seeds.iter().map(SigningKey::from_bytes).collect();
    let genesis = Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 1,
        validators: keys
            .iter()
            .zip(peer_seeds)
            .enumerate()
            .map(|(i, (k, seed))| GenesisValidator {
                name: format!("v{i}"),
                consensus_key: Address::from_public_key(&k.verifying_key()),
                peer_id: cairn_node::keys::libp2p_keypair(*seed)
                    .public()
                    .to_peer_id()
                    .to_string(),
                voting_power: 1,
            })
            .collect(),
        accounts: accounts
            .iter()
            .map(|&(address, balance)| GenesisAccount { address, balance })
            .collect(),
        params,
        governance: Default::default(),
        generated_accounts: None,
    };
    genesis.validate().unwrap();
    (keys, genesis)
}

/// `block`'s compact form carrying validator `signer`'s Notarize vote for it (signed with
/// `key` under `genesis`'s namespace); `signer` must be the leader of `block.header.view`
/// for the block to be accepted.
pub fn signed_compact(
    genesis: &Genesis,
    block: &cairn_ledger::Block,
    signer: u16,
    key: &SigningKey,
) -> cairn_node::compact::CompactBlock {
    cairn_node::compact::CompactBlock::of(block, notarize_vote(genesis, block, signer, key))
}

/// Validator `signer`'s Notarize vote (signed with `key`) for `block`, whose parent is
/// taken as proposed in view `block.header.view - 1` (genesis: view 0).
pub fn notarize_vote(
    genesis: &Genesis,
    block: &cairn_ledger::Block,
    signer: u16,
    key: &SigningKey,
) -> cairn_consensus::Vote {
    use cairn_consensus::{Digest, Proposal, Vote, VoteKind};
    let parent_view = if block.header.height == 1 {
        0
    } else {
        block.header.view - 1
    };
    let kind = VoteKind::Notarize(Proposal {
        view: block.header.view,
        parent_view,
        parent: Digest(block.header.parent_hash.0),
        payload: Digest(block.hash().0),
    });
    Vote::sign(&genesis.hash().0, kind, signer, key)
}

/// A bare network endpoint (not a validator) on loopback, in `genesis`'s namespace: its
/// handle, its event stream, its listen address and its peer id.
pub async fn spawn_peer(
    genesis: &Genesis,
    seed: u8,
) -> (
    NetworkHandle,
    mpsc::Receiver<NetworkEvent>,
    libp2p::Multiaddr,
    libp2p::PeerId,
) {
    let keypair = cairn_node::keys::libp2p_keypair([seed; 32]);
    let peer_id = keypair.public().to_peer_id();
    let (net, events) = network::spawn(NetworkConfig {
        keypair,
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap: vec![],
        namespace: genesis.hash().to_hex()[..16].to_string(),
        gossip_bytes_max: 1 << 20,
        sync_request_bytes_max: cairn_node::sync::SYNC_REQUEST_BYTES_MAX,
        sync_response_bytes_max: 1 << 20,
        sync_request_timeout_ms: 2000,
        event_queue_max: 64,
        command_queue_max: 64,
        redial_interval_ms: 1000,
        connections_max: 8,
        discovery: cairn_node::network::DiscoveryConfig::disabled(),
        nat: network::NatConfig::disabled(),
        // A raw protocol peer that tests drive (sometimes as an attacker): it does not pace
        // itself as a node does.
        request_pacing: network::pacer::RequestPacing {
            requests_per_sec: 1_000_000,
            burst: 1_000_000,
        },
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        if let Some(a) = net.listen_addrs().await.into_iter().next() {
            break a;
        }
        assert!(Instant::now() < deadline, "peer never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (net, events, addr, peer_id)
}

/// Answers every sync request reaching the peer whose `events` these are with `answer`
/// (the request decoded), in a background task; other events are dropped.
pub fn serve_requests(
    net: NetworkHandle,
    mut events: mpsc::Receiver<NetworkEvent>,
    mut answer: impl FnMut(SyncRequest) -> SyncResponse + Send + 'static,
) {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let NetworkEvent::Request { data, token, .. } = ev else {
                continue;
            };
            let response = answer(SyncRequest::decode(&data).unwrap());
            net.respond(token, response.encode()).await;
        }
    });
}

/// A full node (its consensus key is not in `genesis`) running `node::run` on its own
/// runtime, as the binary's `main` does, bootstrapped to one peer.
pub struct FullNode {
    /// Its home directory (removed on drop).
    pub home: tempfile::TempDir,
    /// Its RPC port on 127.0.0.1.
    pub rpc_port: u16,
    /// Its p2p (TCP) port on 127.0.0.1.
    pub p2p_port: u16,
    /// Its libp2p peer id.
    pub peer_id: libp2p::PeerId,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), cairn_node::node::NodeError>>>,
}

impl FullNode {
    /// Starts the node with `genesis`, bootstrapped to `peer_addr`/`peer_id`.
    pub fn start(
        genesis: &Genesis,
        peer_addr: &libp2p::Multiaddr,
        peer_id: &libp2p::PeerId,
    ) -> Self {
        Self::start_with(genesis, peer_addr, peer_id, |_| {})
    }

    /// [`FullNode::start`] with `configure` applied to the config last (after the listen
    /// addresses and the bootstrap peer are set, so it may add bootstrap peers).
    pub fn start_with(
        genesis: &Genesis,
        peer_addr: &libp2p::Multiaddr,
        peer_id: &libp2p::PeerId,
        configure: impl FnOnce(&mut NodeConfig),
    ) -> Self {
        let home = tempfile::tempdir().unwrap();
        let rpc_port = free_port();
        let p2p_port = free_port();
        let mut config = NodeConfig::default();
        config.p2p.listen = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
        config.p2p.bootstrap = vec![format!("{peer_addr}/p2p/{peer_id}")];
        config.rpc.listen = format!("127.0.0.1:{rpc_port}").parse().unwrap();
        // These tests play hostile peers that answer no head request: a fresh node would
        // wait `sync.state_sync_wait_ms` for them before starting (state sync has its own
        // test, testnet/tests/state_sync.rs).
        config.sync.state_sync = false;
        configure(&mut config);
        let info =
            cairn_node::node::init_home(home.path(), &config, Some(([50; 32], [51; 32]))).unwrap();
        std::fs::write(home.path().join("genesis.json"), genesis.to_json_pretty()).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let home_path: PathBuf = home.path().to_path_buf();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(cairn_node::node::run(&home_path, config, async {
                    let _ = stop_rx.await;
                }))
        });
        FullNode {
            home,
            rpc_port,
            p2p_port,
            peer_id: info.peer_id,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The node's p2p address with its peer id (`/ip4/127.0.0.1/tcp/<port>/p2p/<id>`).
    pub fn p2p_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", self.p2p_port, self.peer_id)
    }

    /// The node's RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// Stops the node, asserts it exited cleanly and that its store opens again (the
    /// RocksDB lock was released).
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let thread = self.thread.take().unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_store_closed(self.home.path());
    }
}

/// The node shut down cleanly: its RocksDB lock is released, so the store opens again.
pub fn assert_store_closed(home: &Path) {
    let genesis = Genesis::load(&home.join("genesis.json")).unwrap();
    let db = NodeConfig::resolve(home, &NodeConfig::default().db_dir);
    cairn_ledger::Store::open(&db, genesis.hash()).expect("store reopens after shutdown");
}

/// A free TCP port on 127.0.0.1, below the kernel's ephemeral range (Linux default
/// 32768..=60999) so that no outgoing connection takes it before the node binds it, and
/// never handed out twice in one process (a cursor from a random start). Same rule as
/// `cairn_testnet::free_port_range`, which node tests cannot depend on.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const PORTS: std::ops::Range<u16> = 20_000..32_000;
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORTS.end - PORTS.start);
    if CURSOR.load(Ordering::Relaxed) == u32::MAX {
        let start = u32::from(rand::random::<u16>()) % span;
        let _ = CURSOR.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..400 {
        let port = PORTS.start + (CURSOR.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {PORTS:?}");
}

/// The value of metric `name` (a full sample name, e.g. `cairn_evidence_total`) served at
/// `GET /metrics` on `rpc_port`.
pub async fn metric(rpc_port: u16, name: &str) -> u64 {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", rpc_port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing from /metrics"))
}

/// Polls `f` every 50 ms until it is true; panics after `limit`, naming `what`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks `node` for block `h` by hash through `net`; panics if the request fails.
pub async fn request_block(
    net: &NetworkHandle,
    node: libp2p::PeerId,
    h: cairn_ledger::Hash,
) -> Option<cairn_ledger::Block> {
    let bytes = net
        .request(node, SyncRequest::BlockByHash(h).encode(), 1)
        .await
        .unwrap();
    match SyncResponse::decode(&bytes, 1 << 20).unwrap() {
        SyncResponse::Block(b) => b,
        other => panic!("unexpected response {other:?}"),
    }
}

/// Validators 0, 1 and 2 of `keys` (a quorum of four equal validators) sign a finalization
/// of `block`, proposed in view `view` on a parent from `parent_view`.
pub fn finalization(
    keys: &[SigningKey],
    genesis: &Genesis,
    block: &cairn_ledger::Block,
    view: u64,
    parent_view: u64,
) -> cairn_consensus::Certificate {
    use cairn_consensus::{Certificate, CertificateKind, Digest, Proposal, Vote};
    let kind = CertificateKind::Finalization(Proposal {
        view,
        parent_view,
        parent: Digest(block.header.parent_hash.0),
        payload: Digest(block.hash().0),
    });
    Certificate {
        signatures: (0..3u16)
            .map(|i| {
                let vote = Vote::sign(&genesis.hash().0, kind.vote_kind(), i, &keys[i as usize]);
                (i, vote.signature)
            })
            .collect(),
        kind,
    }
}

/// A transfer of `amount` from `key`'s account to `recipient`, fee 1, expiring at height
/// 1,000,000, signed.
#[allow(dead_code)] // not every test crate that shares this module sends transfers
pub fn signed_transfer(
    key: &SigningKey,
    chain_id: &str,
    nonce: u64,
    recipient: Address,
    amount: u64,
) -> cairn_ledger::SignedTransaction {
    cairn_ledger::TransactionBody {
        chain_id: chain_id.into(),
        sender: Address::from_public_key(&key.verifying_key()),
        fee: 1,
        nonce,
        expiry_height: 1_000_000,
        action: cairn_ledger::Action::Transfer { recipient, amount },
    }
    .sign(key)
}
