//! Integration tests of peer discovery on the networking layer (Kademlia over admitted peers
//! only, identify address learning, peer targets), over loopback TCP (127.0.0.1, port 0).
//! Every wait is bounded.

use std::collections::HashSet;
use std::time::Duration;

use cairn_node::admission;
use cairn_node::metrics::{DISCOVERY_METRICS, Metrics};
use cairn_node::network::{
    self, AdmissionConfig, DiscoveryConfig, NetworkConfig, NetworkHandle, PeerSource,
};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::time::{Instant, sleep, timeout};

/// Upper bound of every "eventually" wait.
const WAIT: Duration = Duration::from_secs(30);
const GENESIS: [u8; 32] = [7; 32];
const BITS: u8 = 8;

fn discovery(peers_target: u32) -> DiscoveryConfig {
    DiscoveryConfig {
        enabled: true,
        peers_target,
        peers_max: 32,
        interval_ms: 100,
    }
}

fn config(
    keypair: Keypair,
    bootstrap: Vec<Multiaddr>,
    discovery: DiscoveryConfig,
) -> NetworkConfig {
    NetworkConfig {
        keypair,
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap,
        namespace: "d1sc0very".into(),
        gossip_bytes_max: 64 * 1024,
        sync_request_bytes_max: 1024,
        sync_response_bytes_max: 64 * 1024,
        sync_request_timeout_ms: 3000,
        event_queue_max: 1024,
        command_queue_max: 64,
        redial_interval_ms: 200,
        connections_max: 64,
        discovery,
        nat: network::NatConfig::disabled(),
        request_pacing: Default::default(),
    }
}

struct Node {
    net: NetworkHandle,
    // Kept so that the event queue stays open.
    _events: tokio::sync::mpsc::Receiver<network::NetworkEvent>,
    addr: Multiaddr,
}

impl Node {
    async fn start(cfg: NetworkConfig, adm: AdmissionConfig) -> Node {
        let (net, events) = timeout(WAIT, network::spawn_with_admission(cfg, adm))
            .await
            .expect("spawn timed out")
            .expect("spawn");
        let addr = net.listen_addrs().await[0]
            .clone()
            .with(Protocol::P2p(net.local_peer_id()));
        Node {
            net,
            _events: events,
            addr,
        }
    }

    fn id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    async fn connected(&self) -> HashSet<PeerId> {
        self.net
            .peers()
            .await
            .into_iter()
            .map(|p| p.peer_id)
            .collect()
    }
}

/// Admission on at [`BITS`] bits; `proof` is this node's nonce (`None`: it proves nothing).
fn admission_on(proof: Option<u64>) -> AdmissionConfig {
    AdmissionConfig {
        difficulty_bits: BITS,
        genesis_hash: GENESIS,
        own_nonce: proof,
        solve_on_demand: false,
        deadline_ms: 1500,
        ..AdmissionConfig::disabled()
    }
}

fn keypair_with_proof() -> (Keypair, u64) {
    let k = Keypair::generate_ed25519();
    let nonce = admission::solve(&GENESIS, &k.public().to_peer_id(), BITS).unwrap();
    (k, nonce)
}

/// The value of the sample `name` (with its labels) in OpenMetrics text; panics if absent.
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// Waits (at most [`WAIT`]) until `done` holds, checking every 100 ms; panics with `what`.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// Six nodes in a line, each bootstrapping only to its predecessor, find each other through
/// Kademlia until each has its target of 4 peers; `getPeers`' `found` tells configured,
/// Kademlia and inbound peers apart. With discovery off, the same line stays a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_of_nodes_fills_every_peer_set_through_kademlia() {
    const N: usize = 6;
    const TARGET: u32 = 4;
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..N {
        let bootstrap = if i == 0 {
            vec![]
        } else {
            vec![nodes[i - 1].addr.clone()]
        };
        let cfg = config(Keypair::generate_ed25519(), bootstrap, discovery(TARGET));
        nodes.push(Node::start(cfg, AdmissionConfig::disabled()).await);
    }
    // The last node's discovery metrics as `GET /metrics` renders them, at its start.
    let metrics = Metrics::new();
    metrics.catch_up_network(&nodes[N - 1].net.stats());
    let before = metrics.render();
    for (i, node) in nodes.iter().enumerate() {
        eventually(&format!("node {i} has {TARGET} peers"), || async {
            node.connected().await.len() >= TARGET as usize
        })
        .await;
    }
    // Each node named only its predecessor: every other peer it has was found, by a
    // discovery dial (`kademlia` or `identify`) on one side and `inbound` on the other.
    let mut discovered = 0;
    for (i, node) in nodes.iter().enumerate() {
        for p in node.net.peers().await {
            if i > 0 && p.peer_id == nodes[i - 1].id() {
                assert_eq!(p.found, PeerSource::Configured, "node {i}: {p:?}");
            } else {
                assert_ne!(p.found, PeerSource::Configured, "node {i}: {p:?}");
            }
            if matches!(p.found, PeerSource::Kademlia | PeerSource::Identify) {
                discovered += 1;
            }
        }
    }
    // At least TARGET peers each, N - 1 configured links: the rest were dialed through
    // discovery.
    assert!(
        discovered >= N - 1,
        "only {discovered} discovered connections"
    );
    let last = nodes.last().unwrap();
    // Walks ran and, with the target met, back off.
    let stats = last.net.stats();
    assert!(stats.discovery_walks > 0, "{stats:?}");
    eventually("the last node's walks back off", || async {
        last.net.discovery_info().await.unwrap().walk_backoff_factor > 1
    })
    .await;
    let info = last.net.discovery_info().await.unwrap();
    assert!(info.enabled);
    assert!(info.routing_table.len() >= TARGET as usize, "{info:?}");
    // The discovery metrics are exported and moved: walks ran, the routing table filled
    // (the gauge is set at each discovery tick, so wait for one), and the peers beyond the
    // one configured were found by discovery (dialed by the last node, or dialing it).
    let start = Instant::now();
    let after = loop {
        metrics.catch_up_network(&last.net.stats());
        let text = metrics.render();
        if sample(&text, "cairn_discovery_routing_table_peers") >= TARGET as u64 {
            break text;
        }
        assert!(
            start.elapsed() < WAIT,
            "routing table gauge never set:\n{text}"
        );
        sleep(Duration::from_millis(100)).await;
    };
    for name in DISCOVERY_METRICS {
        assert!(
            after.contains(&format!("# HELP {name} ")),
            "{name}:\n{after}"
        );
    }
    let walks = "cairn_discovery_walks_total";
    assert!(
        sample(&after, walks) > sample(&before, walks),
        "{before}\n{after}"
    );
    assert!(sample(&after, "cairn_peers_connected_total{found=\"configured\"}") >= 1);
    let found: u64 = ["kademlia", "identify", "inbound"]
        .iter()
        .map(|f| {
            sample(
                &after,
                &format!("cairn_peers_connected_total{{found=\"{f}\"}}"),
            )
        })
        .sum();
    assert!(found >= TARGET as u64 - 1, "{after}");
    assert!(sample(&after, "cairn_discovery_candidates") > 0, "{after}");
    for n in &nodes {
        n.net.shutdown().await;
    }

    // Discovery off: a line stays a line.
    let mut line: Vec<Node> = Vec::new();
    for i in 0..4 {
        let bootstrap = if i == 0 {
            vec![]
        } else {
            vec![line[i - 1].addr.clone()]
        };
        let cfg = config(
            Keypair::generate_ed25519(),
            bootstrap,
            DiscoveryConfig::disabled(),
        );
        line.push(Node::start(cfg, AdmissionConfig::disabled()).await);
    }
    for i in 1..4 {
        let (a, b) = (&line[i - 1], &line[i]);
        eventually("the line is connected", || async {
            b.connected().await.contains(&a.id())
        })
        .await;
    }
    sleep(Duration::from_secs(2)).await;
    let end = &line[3];
    assert_eq!(
        end.connected().await,
        HashSet::from([line[2].id()]),
        "without discovery the end of a line knows only its bootstrap peer"
    );
    assert_eq!(end.net.stats().discovery_walks, 0);
    assert!(!end.net.discovery_info().await.unwrap().enabled);
    for n in &line {
        n.net.shutdown().await;
    }
}

/// Admission on: three admitted nodes share a DHT. A peer that proves nothing, and one whose
/// proof is wrong, connect to one of them and walk the DHT for long past the admission
/// deadline; they learn no address from it and never enter its routing table, while an
/// admitted newcomer with the same bootstrap learns both other nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unadmitted_peer_learns_no_addresses_from_the_dht() {
    let (ka, na) = keypair_with_proof();
    let a = Node::start(config(ka, vec![], discovery(8)), admission_on(Some(na))).await;
    let mut members = vec![a.id()];
    let mut others = Vec::new();
    for _ in 0..2 {
        let (k, n) = keypair_with_proof();
        let node = Node::start(
            config(k, vec![a.addr.clone()], discovery(8)),
            admission_on(Some(n)),
        )
        .await;
        members.push(node.id());
        others.push(node);
    }
    let (b, c) = (others[0].id(), others[1].id());
    eventually("A's routing table holds B and C", || async {
        let rt = a.net.discovery_info().await.unwrap().routing_table;
        rt.contains(&b) && rt.contains(&c)
    })
    .await;

    // X proves nothing; Y sends a wrong proof. Both run discovery against A.
    let (kx, _) = keypair_with_proof();
    let x = Node::start(
        config(kx, vec![a.addr.clone()], discovery(8)),
        admission_on(None),
    )
    .await;
    let ky = Keypair::generate_ed25519();
    let y_id = ky.public().to_peer_id();
    let wrong = (0..100_000u64)
        .find(|n| !admission::verify(&GENESIS, &y_id, *n, BITS))
        .unwrap();
    let y = Node::start(
        config(ky, vec![a.addr.clone()], discovery(8)),
        admission_on(Some(wrong)),
    )
    .await;

    // A admits neither; both keep redialing and asking past several deadlines.
    eventually("A refused both", || async {
        a.net.stats().peers_refused >= 2
    })
    .await;
    sleep(Duration::from_secs(4)).await;
    for (name, n) in [("X", &x), ("Y", &y)] {
        let info = n.net.discovery_info().await.unwrap();
        let known: HashSet<PeerId> = info
            .candidates
            .iter()
            .chain(info.routing_table.iter())
            .copied()
            .collect();
        assert!(
            !known.contains(&b) && !known.contains(&c),
            "{name} learned an address from the DHT: {info:?}"
        );
        let connected = n.connected().await;
        assert!(
            !connected.contains(&b) && !connected.contains(&c),
            "{name} reached a peer it could only have learned from the DHT: {connected:?}"
        );
        assert!(n.net.stats().discovery_walks > 0, "{name} never walked");
    }
    let rt: HashSet<PeerId> = a
        .net
        .discovery_info()
        .await
        .unwrap()
        .routing_table
        .into_iter()
        .collect();
    assert!(!rt.contains(&x.id()) && !rt.contains(&y_id), "{rt:?}");
    // They did ask: A held and dropped their requests.
    let stats = a.net.stats();
    assert!(stats.kad_requests_refused >= 2, "{stats:?}");

    // Control: an admitted newcomer with the same single bootstrap learns B and C.
    let (kd, nd) = keypair_with_proof();
    let d = Node::start(
        config(kd, vec![a.addr.clone()], discovery(8)),
        admission_on(Some(nd)),
    )
    .await;
    eventually("the admitted newcomer reaches B and C", || async {
        let connected = d.connected().await;
        connected.contains(&b) && connected.contains(&c)
    })
    .await;
    let found: Vec<(PeerId, PeerSource)> = d
        .net
        .peers()
        .await
        .into_iter()
        .map(|p| (p.peer_id, p.found))
        .collect();
    for (peer, source) in &found {
        if *peer == a.id() {
            assert_eq!(*source, PeerSource::Configured);
        } else if *peer == b || *peer == c {
            assert!(
                matches!(
                    source,
                    PeerSource::Kademlia | PeerSource::Identify | PeerSource::Inbound
                ),
                "{found:?}"
            );
        }
    }
    for n in [&a, &x, &y, &d].into_iter().chain(others.iter()) {
        n.net.shutdown().await;
    }
}

/// `peers_max`: a node at its maximum closes connections of further peers (bootstrap peers
/// excepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_peers_max_are_closed() {
    let hub = Node::start(
        config(
            Keypair::generate_ed25519(),
            vec![],
            DiscoveryConfig {
                enabled: true,
                peers_target: 1,
                peers_max: 2,
                interval_ms: 100,
            },
        ),
        AdmissionConfig::disabled(),
    )
    .await;
    let mut spokes = Vec::new();
    for _ in 0..4 {
        let cfg = config(
            Keypair::generate_ed25519(),
            vec![hub.addr.clone()],
            DiscoveryConfig::disabled(),
        );
        spokes.push(Node::start(cfg, AdmissionConfig::disabled()).await);
    }
    eventually("the hub refused connections beyond peers_max", || async {
        hub.net.stats().connections_closed_peers_max >= 2
    })
    .await;
    sleep(Duration::from_millis(500)).await;
    assert!(hub.connected().await.len() <= 2);
    for n in spokes.iter().chain([&hub]) {
        n.net.shutdown().await;
    }
}
