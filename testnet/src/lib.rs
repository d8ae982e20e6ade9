//! # cairn-testnet
//!
//! Local testnets: generation of keys, configs and one shared genesis with funded demo
//! accounts, and a process supervisor that runs the validators on 127.0.0.1 ports; the same
//! testnet in Docker ([`docker`]), with fault injection ([`chaos`]), a bounded transfer load
//! ([`load`]) and an invariant checker over JSON-RPC ([`check`]).
//!
//! Layout written by [`generate`]:
//! ```text
//! DIR/testnet.json              manifest: chain id, nodes (home, RPC URL, p2p address, peer id), accounts
//! DIR/genesis.json              the shared genesis
//! DIR/node-<i>/                 each node's home (config.toml, keys, data/, node.log); validators
//!                               first, then full nodes
//! DIR/accounts/account-<i>.json funded demo accounts, wallet key-file format (0600)
//! DIR/docker-compose.yml, .env  with `--docker` (see [`docker`])
//! DIR/swarm-stack.yml, swarm/   with `--swarm`; DIR/k8s/cairn.yaml with `--k8s` (see [`cluster`])
//! DIR/acked.jsonl               transfers acknowledged by `sendTransaction`, written by [`load`]
//! DIR/dashboard.html            every node's live dashboard side by side, written by [`dashboard`]
//! ```

pub mod bench;
pub mod bound;
pub mod chaos;
pub mod charts;
pub mod check;
pub mod cluster;
pub mod dashboard;
pub mod docker;
pub mod fabricate;
pub mod govern;
pub mod load;
pub mod progress;
pub mod sample;
pub mod state_sync_bench;
pub mod throughput;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisValidator};
use cairn_ledger::Address;
use cairn_node::config::NodeConfig;
use cairn_node::keys;
use cairn_node::node::init_home;
use serde::{Deserialize, Serialize};

/// Most validators a local testnet generates.
pub const VALIDATORS_MAX: usize = 64;
/// Most demo accounts a local testnet generates.
pub const ACCOUNTS_MAX: usize = 100_000;
/// Most full (non-voting) nodes a local testnet generates.
pub const FULL_NODES_MAX: usize = 16;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Number of validators (1..=[`VALIDATORS_MAX`]).
    pub validators: usize,
    /// Output directory (must not contain a testnet already).
    pub out: PathBuf,
    /// Chain id.
    pub chain_id: String,
    /// Funded demo accounts (0..=[`ACCOUNTS_MAX`]).
    pub accounts: usize,
    /// Balance of each demo account, base units.
    pub balance: u64,
    /// Host address the nodes bind and dial.
    pub host: String,
    /// First p2p port; validator i uses `p2p_port + i`.
    pub p2p_port: u16,
    /// First RPC port; validator i uses `rpc_port + i`.
    pub rpc_port: u16,
    /// Chain parameters for the genesis.
    pub params: ChainParams,
    /// Non-voting full nodes (0..=[`FULL_NODES_MAX`]): homes with keys whose consensus key is
    /// not in the genesis, after the validators in [`Manifest::nodes`], bootstrapping to every
    /// validator.
    pub full_nodes: usize,
    /// Also write `docker-compose.yml` (see [`docker::write_compose`]).
    pub docker: Option<docker::DockerOptions>,
    /// Report progress on stderr (see [`progress`]): a bar on a terminal, plain lines
    /// otherwise. Off by default (tests, library callers).
    pub progress: bool,
    /// Accounts the genesis generates from a random seed (its `generated_accounts`
    /// section; 0: none, at most [`cairn_genesis::GENERATED_ACCOUNTS_MAX`]), each funded with
    /// [`GENERATED_BALANCE`]. Their keys are public (test chains only); the load generator
    /// signs for them ([`throughput`]).
    pub generated_accounts: u64,
}

/// Balance of each generated account of a testnet, base units (20,000,000 of them still
/// fit in a u64 beside the demo accounts).
pub const GENERATED_BALANCE: u64 = 1_000_000_000;

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            validators: 4,
            out: PathBuf::from("testnet"),
            chain_id: "cairn-local".into(),
            accounts: 10,
            balance: 1_000_000_000_000,
            host: "127.0.0.1".into(),
            p2p_port: 26656,
            rpc_port: 8545,
            params: ChainParams::default(),
            full_nodes: 0,
            docker: None,
            progress: false,
            generated_accounts: 0,
        }
    }
}

/// Most demo accounts that are governance members of a generated testnet.
pub const DEMO_MEMBERS_MAX: usize = 3;

/// The governance section of a generated testnet: the first [`DEMO_MEMBERS_MAX`] demo
/// accounts are the members, a majority of them must approve (2 of 3), accounts are open.
/// No demo accounts: no members (membership frozen).
pub fn demo_governance(accounts: &[AccountEntry]) -> cairn_genesis::GenesisGovernance {
    let members: Vec<_> = accounts
        .iter()
        .take(DEMO_MEMBERS_MAX)
        .map(|a| a.address)
        .collect();
    let threshold = if members.is_empty() {
        0
    } else {
        (members.len() / 2 + 1) as u32
    };
    cairn_genesis::GenesisGovernance {
        members,
        threshold,
        ..Default::default()
    }
}

/// One node in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Validator name.
    pub name: String,
    /// Home directory.
    pub home: PathBuf,
    /// RPC URL.
    pub rpc_url: String,
    /// p2p multiaddr including `/p2p/<peer id>`.
    pub p2p_addr: String,
    /// libp2p peer id.
    pub peer_id: String,
    /// Consensus key address (for a full node: its key, which is not in the genesis).
    pub validator_address: Address,
    /// A non-voting full node (its consensus key is not in the genesis).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_node: bool,
}

/// One funded demo account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountEntry {
    /// Address.
    pub address: Address,
    /// Key file (wallet format).
    pub key_file: PathBuf,
    /// Genesis balance.
    pub balance: u64,
}

/// `testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: cairn_ledger::Hash,
    /// Nodes: the validators, then any full nodes.
    pub nodes: Vec<NodeEntry>,
    /// Funded accounts.
    pub accounts: Vec<AccountEntry>,
    /// Docker deployment, if generated with `--docker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<docker::DockerManifest>,
    /// The genesis's generated accounts (seed included: their keys are public), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_accounts: Option<cairn_genesis::GeneratedAccounts>,
}

impl Manifest {
    /// Reads `DIR/testnet.json`.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let p = dir.join("testnet.json");
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {} (run `cairn-testnet generate` first?)",
                p.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    }

    /// The validators (nodes that are not full nodes).
    pub fn validators(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.iter().filter(|n| !n.full_node)
    }

    /// Index of the node named `name` (or given as its index, e.g. `2`).
    pub fn node_index(&self, name: &str) -> Option<usize> {
        if let Ok(i) = name.parse::<usize>() {
            return (i < self.nodes.len()).then_some(i);
        }
        self.nodes.iter().position(|n| n.name == name)
    }
}

/// Writes a complete testnet into `opts.out`.
pub fn generate(opts: &GenerateOptions) -> Result<Manifest> {
    if opts.validators == 0 || opts.validators > VALIDATORS_MAX {
        bail!(
            "--validators must be 1..={VALIDATORS_MAX}, got {}",
            opts.validators
        );
    }
    if opts.full_nodes > FULL_NODES_MAX {
        bail!(
            "--full-nodes must be at most {FULL_NODES_MAX}, got {}",
            opts.full_nodes
        );
    }
    if opts.accounts > ACCOUNTS_MAX {
        bail!(
            "--accounts must be at most {ACCOUNTS_MAX}, got {}",
            opts.accounts
        );
    }
    if opts.out.join("testnet.json").exists() {
        bail!(
            "{} already holds a testnet; remove it or choose another --out",
            opts.out.display()
        );
    }
    let out = std::path::absolute(&opts.out)
        .with_context(|| format!("resolving {}", opts.out.display()))?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // Identities first: every config needs every peer's address.
    let total = opts.validators + opts.full_nodes;
    let progress = progress::Progress::new(
        opts.progress,
        "generating keys",
        Some((total + opts.accounts) as u64),
    );
    let mut idents = Vec::new();
    for i in 0..total {
        let node_seed = keys::random_seed();
        let validator_seed = keys::random_seed();
        let peer_id = keys::libp2p_keypair(node_seed).public().to_peer_id();
        idents.push((node_seed, validator_seed, peer_id, i));
    }
    let p2p_addr = |i: usize, peer: &libp2p_identity::PeerId| {
        format!(
            "/ip4/{}/tcp/{}/p2p/{}",
            opts.host,
            opts.p2p_port as usize + i,
            peer
        )
    };
    let mut nodes = Vec::new();
    let mut validators = Vec::new();
    for (node_seed, validator_seed, peer_id, i) in &idents {
        let full_node = *i >= opts.validators;
        let name = if full_node {
            format!("full-{}", i - opts.validators)
        } else {
            format!("validator-{i}")
        };
        let home = out.join(format!("node-{i}"));
        let mut config = NodeConfig {
            moniker: name.clone(),
            ..NodeConfig::default()
        };
        config.p2p.listen = format!("/ip4/{}/tcp/{}", opts.host, opts.p2p_port as usize + i);
        // Validators dial each other; full nodes dial every validator.
        config.p2p.bootstrap = idents
            .iter()
            .filter(|(_, _, _, j)| j != i && *j < opts.validators)
            .map(|(_, _, p, j)| {
                p2p_addr(
                    *j,
                    &libp2p_identity::PeerId::from_bytes(&p.to_bytes()).expect("peer id"),
                )
            })
            .collect();
        config.rpc.listen = format!("{}:{}", opts.host, opts.rpc_port as usize + i)
            .parse()
            .context("rpc address")?;
        let info = init_home(&home, &config, Some((*node_seed, *validator_seed)))?;
        assert_eq!(info.peer_id, *peer_id);
        if !full_node {
            validators.push(GenesisValidator {
                name: name.clone(),
                consensus_key: info.validator_address,
                peer_id: peer_id.to_string(),
                voting_power: 1,
            });
        }
        nodes.push(NodeEntry {
            name,
            home,
            rpc_url: format!("http://{}:{}", opts.host, opts.rpc_port as usize + i),
            p2p_addr: format!(
                "/ip4/{}/tcp/{}/p2p/{}",
                opts.host,
                opts.p2p_port as usize + i,
                peer_id
            ),
            peer_id: peer_id.to_string(),
            validator_address: info.validator_address,
            full_node,
        });
        progress.inc(1);
    }
    let mut accounts = Vec::new();
    for i in 0..opts.accounts {
        let key_file = out.join("accounts").join(format!("account-{i}.json"));
        let address = keys::write_validator_key(&key_file, keys::random_seed())?;
        accounts.push(AccountEntry {
            address,
            key_file,
            balance: opts.balance,
        });
        progress.inc(1);
    }
    progress.finish(format!("{total} nodes, {} demo accounts", opts.accounts));
    let genesis = Genesis {
        chain_id: opts.chain_id.clone(),
        genesis_time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64,
        validators,
        accounts: accounts
            .iter()
            .map(|a| GenesisAccount {
                address: a.address,
                balance: a.balance,
            })
            .collect(),
        params: opts.params.clone(),
        governance: demo_governance(&accounts),
        generated_accounts: (opts.generated_accounts > 0).then(|| {
            cairn_genesis::GeneratedAccounts {
                count: opts.generated_accounts,
                balance: GENERATED_BALANCE,
                seed: cairn_ledger::Hash(keys::random_seed()),
            }
        }),
    };
    genesis.validate().context("generated genesis is invalid")?;
    let text = genesis.to_json_pretty();
    std::fs::write(out.join("genesis.json"), &text)?;
    for n in &nodes {
        std::fs::write(n.home.join("genesis.json"), &text)?;
    }
    let mut manifest = Manifest {
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
        nodes,
        accounts,
        docker: None,
        generated_accounts: genesis.generated_accounts,
    };
    if let Some(d) = &opts.docker {
        manifest.docker = Some(docker::write_compose(&out, &manifest, d, opts.rpc_port)?);
    }
    std::fs::write(
        out.join("testnet.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

/// Finds the `cairn-node` binary: `$CAIRN_NODE_BIN`, else beside the running executable (or
/// its parent, for test binaries in `target/*/deps`), else `cairn-node` on `PATH`.
pub fn find_node_binary() -> PathBuf {
    if let Ok(p) = std::env::var("CAIRN_NODE_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("cairn-node");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("cairn-node")
}

/// Nodes (validators and full nodes) running as child processes.
pub struct LocalTestnet {
    /// The manifest.
    pub manifest: Manifest,
    node_bin: PathBuf,
    children: Vec<Option<Child>>,
}

impl LocalTestnet {
    /// The nodes of `manifest`, none started yet ([`LocalTestnet::start_node`] starts one).
    pub fn new(manifest: Manifest, node_bin: PathBuf) -> LocalTestnet {
        let n = manifest.nodes.len();
        LocalTestnet {
            manifest,
            node_bin,
            children: (0..n).map(|_| None).collect(),
        }
    }

    /// Starts every node of `manifest` as `cairn-node run`, logging to `<home>/node.log`.
    pub fn start(manifest: Manifest, node_bin: PathBuf) -> Result<LocalTestnet> {
        let n = manifest.nodes.len();
        let mut t = LocalTestnet::new(manifest, node_bin);
        for i in 0..n {
            t.start_node(i)?;
        }
        Ok(t)
    }

    /// Adds `entry` (e.g. a node [`govern::add_node`] generated) to the nodes this testnet
    /// runs, not started; returns its index.
    pub fn push_node(&mut self, entry: NodeEntry) -> usize {
        self.manifest.nodes.push(entry);
        self.children.push(None);
        self.children.len() - 1
    }

    /// Starts (or restarts) node `i`.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        self.start_node_with_args(i, &[])
    }

    /// Starts (or restarts) node `i` with extra `cairn-node run` flags (config overrides such
    /// as `--sync.reverify-signatures true`).
    pub fn start_node_with_args(&mut self, i: usize, extra: &[&str]) -> Result<()> {
        assert!(self.children[i].is_none(), "node {i} is already running");
        let home = &self.manifest.nodes[i].home;
        let log_path = home.join("node.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(&self.node_bin)
            .arg("run")
            .arg("--home")
            .arg(home)
            .args(extra)
            .env_remove("CAIRN_HOME")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} (build it with `cargo build -p cairn-node`, or set CAIRN_NODE_BIN)", self.node_bin.display()))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGKILLs node `i` (a crash: no clean shutdown).
    pub fn kill_node(&mut self, i: usize) -> Result<()> {
        if let Some(mut c) = self.children[i].take() {
            c.kill().context("kill")?;
            c.wait().context("wait")?;
        }
        Ok(())
    }

    /// SIGTERMs node `i` and waits up to `timeout` for it to exit, then SIGKILLs it.
    pub fn stop_node(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let Some(mut c) = self.children[i].take() else {
            return Ok(());
        };
        #[cfg(unix)]
        unsafe {
            // SAFETY: plain kill(2) on our own child's pid.
            libc_kill(c.id() as i32, 15);
        }
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if c.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        c.kill()?;
        c.wait()?;
        Ok(())
    }

    /// Whether node `i` is running (it has not exited).
    pub fn is_running(&mut self, i: usize) -> bool {
        match &mut self.children[i] {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Process id of node `i`, if it was started and has not been reaped.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(|c| c.id())
    }

    /// Peak resident memory of node `i` since it started, bytes (`VmHWM` of
    /// `/proc/<pid>/status`; Linux only, `None` elsewhere or if it is not running).
    pub fn peak_rss_bytes(&self, i: usize) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(i)?)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Resident memory of node `i` now (`VmRSS`), bytes, if it runs.
    pub fn rss_bytes(&self, i: usize) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(i)?)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Stops every node gracefully.
    pub fn stop_all(&mut self) {
        for i in 0..self.children.len() {
            let _ = self.stop_node(i, Duration::from_secs(10));
        }
    }
}

impl Drop for LocalTestnet {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(unix)]
unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Two base ports `(p2p, rpc)` such that `p2p .. p2p + n` and `rpc .. rpc + n` are free on
/// 127.0.0.1 right now and the two ranges do not overlap (see [`free_port_range`]).
pub fn free_port_ranges(n: usize) -> (u16, u16) {
    let p2p = free_port_range(n);
    for _ in 0..200 {
        let rpc = free_port_range(n);
        if usize::from(rpc.abs_diff(p2p)) >= n {
            return (p2p, rpc);
        }
    }
    panic!("no two disjoint ranges of {n} free ports found on 127.0.0.1");
}

/// Options for a test testnet of 4 validators in `out`: `accounts` demo accounts of
/// 10,000,000 base units each, free loopback ports ([`free_port_ranges`]), and timeouts
/// short enough that a test sees a few view changes in seconds (leader 1,000 ms,
/// notarization 2,000 ms, nullify retry 500 ms).
pub fn test_options(out: PathBuf, chain_id: &str, accounts: usize) -> GenerateOptions {
    let (p2p_port, rpc_port) = free_port_ranges(4);
    GenerateOptions {
        validators: 4,
        out,
        chain_id: chain_id.into(),
        accounts,
        balance: 10_000_000,
        p2p_port,
        rpc_port,
        params: ChainParams {
            leader_timeout_ms: 1000,
            notarization_timeout_ms: 2000,
            nullify_retry_ms: 500,
            ..ChainParams::default()
        },
        ..GenerateOptions::default()
    }
}

/// The value of the unlabelled sample `name` in Prometheus or OpenMetrics text (a line
/// `name value`), if there is one and it parses.
pub fn parse_metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        rest.starts_with(' ').then(|| rest.trim().parse().ok())?
    })
}

/// Reads the unlabelled sample `name` from the node's `GET {rpc_url}/metrics` with `http`:
/// `Ok(None)` if the node serves no such sample.
///
/// # Errors
/// The node does not answer or answers with an error status.
pub async fn scrape_metric(
    http: &reqwest::Client,
    rpc_url: &str,
    name: &str,
) -> Result<Option<f64>, reqwest::Error> {
    let text = http
        .get(format!("{rpc_url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(parse_metric(&text, name))
}

/// Ports [`free_port_range`] hands out: below Linux's default ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768..=60999), so that no outgoing
/// connection of another test or node takes a port between the check and the node's bind.
/// Picking from the ephemeral range raced: a client socket grabbed a checked port and the
/// node then failed with "address already in use".
pub const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A base port `p` such that `p .. p + n` are all free on 127.0.0.1 right now, from
/// [`TEST_PORTS`]. Within one process no port is handed out twice (a process-wide cursor
/// that starts at a random offset and moves past every range it returns), so parallel
/// tests of one binary never collide; a range held by another process is skipped by the
/// bind check. Tries at most 400 ranges.
///
/// # Panics
/// `n` is 0 or larger than 1,000, or no free range is found.
pub fn free_port_range(n: usize) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    assert!((1..=1000).contains(&n), "port range of {n} ports");
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    let n32 = n as u32;
    if CURSOR.load(Ordering::Relaxed) == u32::MAX {
        use rand::Rng;
        let start = rand::thread_rng().gen_range(0..span);
        let _ = CURSOR.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..400 {
        let offset = CURSOR.fetch_add(n32, Ordering::Relaxed) % span;
        if offset + n32 > span {
            continue; // the range would run past the end; the cursor wraps next time
        }
        let base = TEST_PORTS.start + offset as u16;
        let held: Vec<_> = (0..n as u16)
            .map_while(|k| std::net::TcpListener::bind(("127.0.0.1", base + k)).ok())
            .collect();
        if held.len() == n {
            return base;
        }
    }
    panic!("no {n} consecutive free ports found on 127.0.0.1 in {TEST_PORTS:?}");
}

/// One free port on 127.0.0.1 (see [`free_port_range`]).
pub fn free_port() -> u16 {
    free_port_range(1)
}
