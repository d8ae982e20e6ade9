//! A loopback testnet of in-process nodes: each runs `node::run` (as the binary's `main`
//! does) on its own Tokio runtime thread with its own RocksDB home, like a separate
//! process. The tests that need one (`epochs`, `sybil`) generate the homes
//! ([`Homes::generate`]), build their genesis from the nodes' keys, and turn both into a
//! [`Cluster`] ([`Homes::with_genesis`]), whose nodes they start, stop and poll.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_genesis::{ChainParams, Genesis};
use cairn_ledger::Address;
use cairn_node::config::NodeConfig;
use cairn_node::{keys, node};
use cairn_rpc::RpcClient;
use ed25519_dalek::SigningKey;
use libp2p::{Multiaddr, PeerId};
use tokio::time::{Instant, sleep, timeout};

/// Poll step of the cluster's waits.
pub const POLL: Duration = Duration::from_millis(100);

/// Chain parameters with short consensus timeouts for loopback tests (leader 1 s,
/// notarization 2 s, nullify retry 0.5 s), the rest default.
pub fn fast_params() -> ChainParams {
    ChainParams {
        leader_timeout_ms: 1000,
        notarization_timeout_ms: 2000,
        nullify_retry_ms: 500,
        ..ChainParams::default()
    }
}

/// Now, in ms since the Unix epoch (a genesis time).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A node started with `node::run` on its own runtime thread (2 workers).
pub struct RunningNode {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), node::NodeError>>,
}

impl RunningNode {
    /// Starts node `i` (the thread is named `node-{i}`) from `home` with `config`.
    pub fn start(i: usize, home: PathBuf, config: NodeConfig) -> RunningNode {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("node-{i}"))
            .spawn(move || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(node::run(&home, config, async move {
                        let _ = stopped.await;
                    }))
            })
            .unwrap();
        RunningNode { stop, thread }
    }

    /// Stops the node and waits at most `limit` for `node::run` to return (its RocksDB is
    /// closed afterwards); panics, naming node `i`, if it does not, failed or panicked.
    pub async fn stop(self, i: usize, limit: Duration) {
        let _ = self.stop.send(());
        let thread = self.thread;
        let joined = timeout(limit, tokio::task::spawn_blocking(move || thread.join()))
            .await
            .unwrap_or_else(|_| panic!("node {i} did not stop"))
            .unwrap();
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("node {i} failed: {e}"),
            Err(_) => panic!("node {i} panicked"),
        }
    }
}

/// Initialized homes of a loopback testnet (no genesis yet): every node has fresh random
/// node and consensus keys, a p2p and an RPC port on 127.0.0.1, and bootstraps to the first
/// `bootstrap` nodes (not itself).
pub struct Homes {
    dir: tempfile::TempDir,
    pub homes: Vec<PathBuf>,
    pub configs: Vec<NodeConfig>,
    /// Each node's libp2p peer id.
    pub peer_ids: Vec<PeerId>,
    /// Each node's p2p address with `/p2p/<peer id>`.
    pub addrs: Vec<Multiaddr>,
    pub rpc_addrs: Vec<SocketAddr>,
    /// Each node's consensus key, and its address (as genesis and governance name it).
    pub keys: Vec<SigningKey>,
    pub validator_addresses: Vec<Address>,
}

impl Homes {
    /// The temporary directory holding the homes (removed with the cluster).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// `total` homes `node-{i}` (moniker `node-{i}`) in a fresh temporary directory. Every
    /// config redials every 500 ms and polls sync heads every 500 ms; `tweak` adjusts each
    /// config last, before the home is initialized.
    pub fn generate(total: usize, bootstrap: usize, tweak: impl Fn(&mut NodeConfig)) -> Homes {
        let dir = tempfile::tempdir().unwrap();
        let mut seeds = Vec::new();
        let mut peer_ids = Vec::new();
        let mut addrs = Vec::new();
        let mut rpc_addrs = Vec::new();
        for _ in 0..total {
            let node_seed = keys::random_seed();
            let peer = keys::libp2p_keypair(node_seed).public().to_peer_id();
            seeds.push((node_seed, keys::random_seed()));
            let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", super::free_port())
                .parse()
                .unwrap();
            peer_ids.push(peer);
            addrs.push(addr);
            rpc_addrs.push(format!("127.0.0.1:{}", super::free_port()).parse().unwrap());
        }
        let mut homes = Vec::new();
        let mut configs = Vec::new();
        let mut validator_addresses = Vec::new();
        for i in 0..total {
            let home = dir.path().join(format!("node-{i}"));
            let mut config = NodeConfig {
                moniker: format!("node-{i}"),
                ..NodeConfig::default()
            };
            let mut listen = addrs[i].clone();
            listen.pop();
            config.p2p.listen = listen.to_string();
            config.p2p.bootstrap = (0..bootstrap)
                .filter(|j| *j != i)
                .map(|j| addrs[j].to_string())
                .collect();
            config.p2p.redial_interval_ms = 500;
            config.rpc.listen = rpc_addrs[i];
            config.sync.interval_ms = 500;
            // Nodes start one by one here; state sync has its own test
            // (testnet/tests/state_sync.rs).
            config.sync.state_sync = false;
            tweak(&mut config);
            let info = node::init_home(&home, &config, Some(seeds[i])).unwrap();
            assert_eq!(info.peer_id, peer_ids[i]);
            validator_addresses.push(info.validator_address);
            homes.push(home);
            configs.push(config);
        }
        let keys = seeds
            .iter()
            .map(|(_, v)| SigningKey::from_bytes(v))
            .collect();
        Homes {
            dir,
            homes,
            configs,
            peer_ids,
            addrs,
            rpc_addrs,
            keys,
            validator_addresses,
        }
    }

    /// A genesis whose validators are the first `validators` homes (voting power 1 each,
    /// named `validator-{i}`), funding `accounts`, with `params`.
    #[allow(dead_code)] // not every test crate that shares this module uses it
    pub fn genesis(
        &self,
        chain_id: &str,
        validators: usize,
        accounts: &[(Address, u64)],
        params: ChainParams,
    ) -> Genesis {
        Genesis {
            chain_id: chain_id.into(),
            genesis_time_ms: now_ms(),
            validators: (0..validators)
                .map(|i| cairn_genesis::GenesisValidator {
                    name: format!("validator-{i}"),
                    consensus_key: self.validator_addresses[i],
                    peer_id: self.peer_ids[i].to_string(),
                    voting_power: 1,
                })
                .collect(),
            accounts: accounts
                .iter()
                .map(|&(address, balance)| cairn_genesis::GenesisAccount { address, balance })
                .collect(),
            params,
            governance: Default::default(),
            generated_accounts: None,
        }
    }

    /// Validates `genesis`, writes it into every home and returns the cluster, none of its
    /// nodes running; `wait` bounds its waits (stopping a node, reaching a height).
    pub fn with_genesis(self, genesis: Genesis, wait: Duration) -> Cluster {
        genesis.validate().unwrap();
        for home in &self.homes {
            std::fs::write(home.join("genesis.json"), genesis.to_json_pretty()).unwrap();
        }
        let rpc = self
            .rpc_addrs
            .iter()
            .map(|a| {
                RpcClient::with_timeout(&format!("http://{a}"), Duration::from_secs(5)).unwrap()
            })
            .collect();
        Cluster {
            running: (0..self.homes.len()).map(|_| None).collect(),
            _dir: self.dir,
            homes: self.homes,
            configs: self.configs,
            peer_ids: self.peer_ids,
            addrs: self.addrs,
            rpc_addrs: self.rpc_addrs,
            keys: self.keys,
            validator_addresses: self.validator_addresses,
            genesis,
            rpc,
            wait,
        }
    }
}

/// A loopback testnet of in-process nodes with their genesis written (see the module
/// docs); the fields are those of its [`Homes`], its genesis, RPC clients and running nodes.
pub struct Cluster {
    _dir: tempfile::TempDir,
    pub homes: Vec<PathBuf>,
    pub configs: Vec<NodeConfig>,
    pub peer_ids: Vec<PeerId>,
    /// P2p addresses with `/p2p/<peer id>`.
    pub addrs: Vec<Multiaddr>,
    pub rpc_addrs: Vec<SocketAddr>,
    /// Each node's consensus key and its address.
    pub keys: Vec<SigningKey>,
    pub validator_addresses: Vec<Address>,
    pub genesis: Genesis,
    /// Each node's RPC client (5 s timeout).
    pub rpc: Vec<RpcClient>,
    pub running: Vec<Option<RunningNode>>,
    /// Bound of every wait.
    pub wait: Duration,
}

impl Cluster {
    pub fn start(&mut self, i: usize) {
        assert!(self.running[i].is_none(), "node {i} already running");
        let node = RunningNode::start(i, self.homes[i].clone(), self.configs[i].clone());
        self.running[i] = Some(node);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.homes.len() {
            self.start(i);
        }
    }

    /// Stops node `i` (if running) and waits (bounded) for `node::run` to return; its
    /// RocksDB is closed afterwards.
    pub async fn stop(&mut self, i: usize) {
        if let Some(r) = self.running[i].take() {
            r.stop(i, self.wait).await;
        }
    }

    pub async fn stop_all(&mut self) {
        for i in 0..self.homes.len() {
            self.stop(i).await;
        }
    }

    /// Node `i`'s RPC port.
    pub fn rpc_port(&self, i: usize) -> u16 {
        self.rpc_addrs[i].port()
    }

    /// Node `i`'s finalized height (`None` if it does not answer).
    pub async fn height(&self, i: usize) -> Option<u64> {
        self.rpc[i].status().await.ok().map(|s| s.latest_height)
    }

    /// Waits until node `i` has finalized `height`.
    pub async fn wait_height(&self, i: usize, height: u64) {
        let start = Instant::now();
        loop {
            let h = self.height(i).await;
            if h.is_some_and(|h| h >= height) {
                return;
            }
            assert!(
                start.elapsed() < self.wait,
                "node {i} did not reach height {height} (at {h:?})"
            );
            sleep(POLL).await;
        }
    }
}
