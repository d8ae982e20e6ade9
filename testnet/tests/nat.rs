//! NAT traversal with real address translation: Linux network namespaces joined by veth
//! pairs, a router namespace doing iptables MASQUERADE between a private LAN and a public
//! network, and real `cairn-node` processes started inside them with `ip netns exec`.
//!
//! ```text
//!   public ns (198.18.0.1)                router ns                 private ns (10.77.0.2)
//!   validators 0,1,2 + relay  ── veth ── 198.18.0.2 | 10.77.0.1 ── veth ── validator 3
//!                                         MASQUERADE 10.77.0.0/24 out of the public side,
//!                                         unsolicited inbound SYNs dropped
//! ```
//!
//! The public side has no route to the private LAN, so nobody there can dial validator 3.
//! Validator 3 names only the relay (`p2p.bootstrap`, `p2p.relays`) and runs no discovery;
//! the relay (a full node with `p2p.relay_service`) gives it a reservation, and the public
//! validators reach it at `<relay>/p2p-circuit/p2p/<validator 3>`. Two runs:
//!
//! 1. hole punching on: DCUtR upgrades the relayed connections to direct ones (TCP
//!    simultaneous open through the router's mapping); the test reports which it did
//!    (`getPeers` `path` at validator 3, after up to [`PATHS_WAIT`] for all to be direct) and
//!    asserts that at least one did.
//! 2. hole punching off: the connections stay relayed.
//!
//! In both, validator 3 must vote (its key among the signers of finalization certificates)
//! and the chain must finalize. The test reaches the nodes' RPC over management veth links
//! from the host (host ↔ public, host ↔ private; the private node's peer-to-peer traffic
//! uses its default route through the router). It needs root and `ip`/`iptables`; without
//! them it skips with a message. Namespaces and links carry a per-run suffix and are
//! removed by a guard on drop, also when the test fails. Every wait is bounded.
//!
//! Needs the `cairn-node` binary built (`cargo build --workspace --bins`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_node::config::NodeConfig;
use cairn_rpc::RpcClient;
use cairn_testnet::{find_node_binary, free_port_ranges, generate, test_options};

/// Bound on each wait (connections, votes, finalization).
const WAIT_MAX: Duration = Duration::from_secs(90);
/// How long the run with hole punching waits for every path to become direct (the paths are
/// reported either way).
const PATHS_WAIT: Duration = Duration::from_secs(30);
/// Blocks the chain must finalize with validator 3 taking part, per run.
const BLOCKS_MIN: u64 = 5;
const PUBLIC_IP: &str = "198.18.0.1";
const ROUTER_PUBLIC_IP: &str = "198.18.0.2";
const PRIVATE_IP: &str = "10.77.0.2";
const ROUTER_PRIVATE_IP: &str = "10.77.0.1";

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The namespaces and host links of one test run; removed on drop.
struct Netns {
    public: String,
    router: String,
    private: String,
    /// Host-side ends of the management links (deleting one deletes its peer).
    host_links: Vec<String>,
    /// Host-side management addresses of the public and private namespaces.
    mgmt_public: String,
    mgmt_private: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for link in &self.host_links {
            let _ = sh(&["ip", "link", "del", link]);
        }
        for ns in [&self.public, &self.router, &self.private] {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

impl Netns {
    /// Creates the topology of the module docs; `Err` if this machine cannot (not root, no
    /// `ip netns`, no iptables): the test then skips.
    fn create() -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        // Management subnets 100.64.k.0/30 and 100.64.k.4/30 (shared address space, unused
        // on this host), k from the process id.
        let k = 64 + (id % 60);
        let net = Netns {
            public: format!("cnat{id}pub"),
            router: format!("cnat{id}rtr"),
            private: format!("cnat{id}prv"),
            host_links: vec![format!("cn{id}hp"), format!("cn{id}hv")],
            mgmt_public: format!("100.{k}.77.2"),
            mgmt_private: format!("100.{k}.77.6"),
        };
        for ns in [&net.public, &net.router, &net.private] {
            sh(&["ip", "netns", "add", ns])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        let (p, r, v) = (&net.public, &net.router, &net.private);
        // public <-> router
        sh(&[
            "ip", "-n", p, "link", "add", "eth0", "type", "veth", "peer", "name", "wan", "netns", r,
        ])?;
        sh(&[
            "ip",
            "-n",
            p,
            "addr",
            "add",
            &format!("{PUBLIC_IP}/24"),
            "dev",
            "eth0",
        ])?;
        sh(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            &format!("{ROUTER_PUBLIC_IP}/24"),
            "dev",
            "wan",
        ])?;
        // private <-> router
        sh(&[
            "ip", "-n", v, "link", "add", "eth0", "type", "veth", "peer", "name", "lan", "netns", r,
        ])?;
        sh(&[
            "ip",
            "-n",
            v,
            "addr",
            "add",
            &format!("{PRIVATE_IP}/24"),
            "dev",
            "eth0",
        ])?;
        sh(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            &format!("{ROUTER_PRIVATE_IP}/24"),
            "dev",
            "lan",
        ])?;
        for (ns, dev) in [(p, "eth0"), (r, "wan"), (r, "lan"), (v, "eth0")] {
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        sh(&[
            "ip",
            "-n",
            v,
            "route",
            "add",
            "default",
            "via",
            ROUTER_PRIVATE_IP,
        ])?;
        sh(&[
            "ip",
            "netns",
            "exec",
            r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])?;
        sh(&[
            "ip",
            "netns",
            "exec",
            r,
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            "10.77.0.0/24",
            "-o",
            "wan",
            "-j",
            "MASQUERADE",
        ])?;
        // Like most NAT routers (home gateways, carrier-grade NAT), drop unsolicited inbound
        // TCP connection attempts on the public side silently instead of answering them with
        // a reset: packets of a mapping the private side opened are translated and forwarded
        // before they reach INPUT, so only SYNs that match no mapping end here. TCP hole
        // punching depends on it: the public peer's SYN, when it reaches the router before
        // validator 3's own SYN has opened the mapping, must stay pending (and be
        // retransmitted) rather than be refused, so that the two SYNs meet as a TCP
        // simultaneous open. (With Linux's default reset, the public peer's dial was refused
        // at once, validator 3's SYN then reached the peer's listening socket as a new inbound
        // connection, both ends took the responder's role in the security handshake, and
        // every upgrade stalled.)
        sh(&[
            "ip", "netns", "exec", r, "iptables", "-A", "INPUT", "-i", "wan", "-p", "tcp", "--syn",
            "-j", "DROP",
        ])?;
        // Management links host <-> public, host <-> private (RPC only).
        for (i, (link, ns, ns_ip)) in [
            (&net.host_links[0], p, &net.mgmt_public),
            (&net.host_links[1], v, &net.mgmt_private),
        ]
        .into_iter()
        .enumerate()
        {
            let host_ip = format!("100.{k}.77.{}", 1 + 4 * i);
            sh(&[
                "ip", "link", "add", link, "type", "veth", "peer", "name", "mgmt", "netns", ns,
            ])?;
            sh(&["ip", "addr", "add", &format!("{host_ip}/30"), "dev", link])?;
            sh(&["ip", "link", "set", link, "up"])?;
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                "mgmt",
            ])?;
            sh(&["ip", "-n", ns, "link", "set", "mgmt", "up"])?;
        }
        Ok(net)
    }
}

/// Node processes of one run; killed on drop.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(bin: &Path, ns: &str, home: &Path) -> Child {
    let log = std::fs::File::create(home.join("node.log")).unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin)
        .arg("run")
        .arg("--home")
        .arg(home)
        .env_remove("CAIRN_HOME")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn wait_until<F, Fut>(what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < WAIT_MAX {
        if f().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out after {WAIT_MAX:?} waiting for {what}");
}

/// What one run saw.
#[derive(Debug)]
struct Outcome {
    /// `getPeers` `path` at validator 3 for each public validator.
    paths: Vec<String>,
    /// Time from start until validator 3 signed a finalization certificate.
    first_vote: Duration,
    /// Height finalized with validator 3's vote, and certificates it signed among the
    /// last `BLOCKS_MIN` blocks.
    height: u64,
    signed: usize,
    /// Validator 3's `cairn_dcutr_upgrades_total` at the end.
    upgrades: u64,
}

/// One sample of `name` in `url`'s `/metrics` (0 if absent).
async fn metric(url: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

async fn run(net: &Netns, dir: &Path, hole_punching: bool) -> Outcome {
    let mut opts = test_options(dir.to_path_buf(), "cairn-nat", 2);
    let (p2p, rpc) = free_port_ranges(5);
    opts.p2p_port = p2p;
    opts.rpc_port = rpc;
    opts.full_nodes = 1;
    let manifest = generate(&opts).unwrap();
    assert_eq!(manifest.nodes.len(), 5);
    let relay = 4;
    let natted = 3;
    let p2p_port = |i: usize| p2p + i as u16;
    let relay_addr = format!(
        "/ip4/{PUBLIC_IP}/tcp/{}/p2p/{}",
        p2p_port(relay),
        manifest.nodes[relay].peer_id
    );
    let circuit_addr = format!(
        "{relay_addr}/p2p-circuit/p2p/{}",
        manifest.nodes[natted].peer_id
    );
    let mut rpc_urls = Vec::new();
    for (i, node) in manifest.nodes.iter().enumerate() {
        let path = node.home.join("config.toml");
        let mut c = NodeConfig::load(&path).unwrap();
        let (ip, mgmt) = if i == natted {
            (PRIVATE_IP, &net.mgmt_private)
        } else {
            (PUBLIC_IP, &net.mgmt_public)
        };
        c.p2p.listen = format!("/ip4/{ip}/tcp/{}", p2p_port(i));
        c.rpc.listen = format!("0.0.0.0:{}", rpc + i as u16).parse().unwrap();
        rpc_urls.push(format!("http://{mgmt}:{}", rpc + i as u16));
        c.p2p.hole_punching = hole_punching;
        let public_peers: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| {
                format!(
                    "/ip4/{PUBLIC_IP}/tcp/{}/p2p/{}",
                    p2p_port(j),
                    manifest.nodes[j].peer_id
                )
            })
            .collect();
        if i == natted {
            c.p2p.bootstrap = vec![relay_addr.clone()];
            c.p2p.relays = vec![relay_addr.clone()];
            c.p2p.discovery = false;
        } else if i == relay {
            c.p2p.bootstrap = public_peers;
            c.p2p.relay_service = true;
            c.p2p.external_addresses = vec![format!("/ip4/{PUBLIC_IP}/tcp/{}", p2p_port(i))];
        } else {
            c.p2p.bootstrap = public_peers;
            c.p2p.bootstrap.push(relay_addr.clone());
            c.p2p.bootstrap.push(circuit_addr.clone());
        }
        c.validate().unwrap();
        std::fs::write(&path, c.to_toml()).unwrap();
    }
    let bin = find_node_binary();
    let mut nodes = Nodes(Vec::new());
    for (i, node) in manifest.nodes.iter().enumerate() {
        let ns = if i == natted {
            &net.private
        } else {
            &net.public
        };
        nodes.0.push(start(&bin, ns, &node.home));
    }
    let clients: Vec<RpcClient> = rpc_urls
        .iter()
        .map(|u| RpcClient::new(u).unwrap())
        .collect();
    let started = Instant::now();
    let v3 = &clients[natted];
    let public_ids: Vec<String> = (0..3).map(|j| manifest.nodes[j].peer_id.clone()).collect();
    wait_until(
        "validator 3 to connect to the three public validators",
        || async {
            let peers = v3.peers().await.unwrap_or_default();
            public_ids
                .iter()
                .all(|id| peers.iter().any(|p| &p.peer_id == id))
        },
    )
    .await;
    // Validator 3's key among the signers of a finalization certificate.
    let v3_address = manifest.nodes[natted].validator_address;
    let mut first_vote = None;
    let mut signed = 0;
    let mut height = 0;
    let mut from = 1;
    let deadline = Instant::now() + WAIT_MAX * 2;
    while Instant::now() < deadline {
        let h = v3.status().await.map(|s| s.latest_height).unwrap_or(0);
        if from <= h {
            let count = (h + 1 - from).min(cairn_rpc::BLOCK_SUMMARIES_MAX);
            for b in clients[0]
                .block_summaries(Some(from), count)
                .await
                .unwrap_or_default()
            {
                if b.height < from {
                    continue;
                }
                if b.signers.as_ref().is_some_and(|s| s.contains(&v3_address)) {
                    first_vote.get_or_insert(started.elapsed());
                    signed += 1;
                }
                from = b.height + 1;
            }
        }
        height = h;
        if first_vote.is_some() && signed >= 2 && height > BLOCKS_MIN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Give hole punching its attempts (it starts as soon as a relayed connection is up; an
    // attempt whose two dials did not meet is retried, up to 3 per connection, after the
    // stalled handshake times out): poll until every path is direct, for at most
    // PATHS_WAIT.
    let paths_of = |peers: Vec<cairn_rpc::PeerInfo>| -> Vec<String> {
        public_ids
            .iter()
            .map(|id| {
                peers
                    .iter()
                    .find(|p| &p.peer_id == id)
                    .and_then(|p| p.path.clone())
                    .unwrap_or_else(|| "disconnected".into())
            })
            .collect()
    };
    let paths_deadline = Instant::now() + PATHS_WAIT;
    let paths = loop {
        let paths = paths_of(v3.peers().await.unwrap_or_default());
        if !hole_punching || paths.iter().all(|p| p == "direct") || Instant::now() >= paths_deadline
        {
            break paths;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let log =
        std::fs::read_to_string(manifest.nodes[natted].home.join("node.log")).unwrap_or_default();
    for line in log.lines().filter(|l| {
        l.contains("AutoNAT") || l.contains("hole punching") || l.contains("relay reservation")
    }) {
        eprintln!("  validator 3: {line}");
    }
    let outcome = Outcome {
        paths,
        upgrades: metric(&rpc_urls[natted], "cairn_dcutr_upgrades_total").await,
        first_vote: first_vote.unwrap_or_else(|| {
            panic!("validator 3 never signed a finalization certificate (height {height})")
        }),
        height,
        signed,
    };
    // The other validators finalized the same chain.
    let h0 = clients[0].status().await.unwrap().latest_height;
    assert!(h0 >= BLOCKS_MIN, "validator 0 at height {h0}");
    drop(nodes);
    outcome
}

fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"] {
        if PathBuf::from(tool).exists() {
            return None;
        }
    }
    Some("no iptables".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_behind_a_nat_votes_and_finalizes_relayed_and_hole_punched() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: the NAT test needs root, ip netns and iptables ({why})");
        return;
    }
    let net = match Netns::create() {
        Ok(net) => net,
        Err(e) => {
            eprintln!("SKIPPED: cannot build the namespaces ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, hole_punching) in [true, false].into_iter().enumerate() {
        let o = run(&net, &dir.path().join(format!("run{i}")), hole_punching).await;
        eprintln!(
            "NAT run, hole punching {}: validator 3 reaches the public validators {:?} ({} upgrades counted); first signed a finalization {:.1} s after start; signed {} certificates up to height {}",
            if hole_punching { "on" } else { "off" },
            o.paths,
            o.upgrades,
            o.first_vote.as_secs_f64(),
            o.signed,
            o.height
        );
        assert!(o.signed >= 1 && o.height > BLOCKS_MIN, "{o:?}");
        if hole_punching {
            // The router drops unsolicited SYNs as most NATs do, so the two dials of a hole
            // punch meet as a TCP simultaneous open: at least one relayed connection must
            // have become direct (all three usually do; a punch whose dials missed each other
            // on this loaded machine is retried, and the report above says what came of it).
            assert!(
                o.paths.iter().any(|p| p == "direct"),
                "hole punching upgraded no relayed connection to a direct one: {o:?}"
            );
            let direct = o.paths.iter().filter(|p| *p == "direct").count() as u64;
            assert!(
                o.upgrades >= direct,
                "cairn_dcutr_upgrades_total counts fewer upgrades than direct paths: {o:?}"
            );
        } else {
            assert!(
                o.paths.iter().all(|p| p == "relayed"),
                "without hole punching validator 3 can reach them only through the relay: {o:?}"
            );
        }
    }
}
