//! Integration tests of the networking layer over loopback TCP (127.0.0.1, port 0).
//!
//! Every wait is bounded. Gossip is published with bounded retries because a freshly
//! connected node only learns its peers' subscriptions (and forms meshes) after a heartbeat or
//! two; `publish` is `Ok` and sends nothing while no peer is subscribed.

use std::time::Duration;

use cairn_node::network::{
    self, Acceptance, MessageId, NetworkConfig, NetworkError, NetworkEvent, NetworkHandle, Topic,
};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, sleep, timeout};

/// Upper bound of every "eventually" wait.
const WAIT: Duration = Duration::from_secs(20);
/// How long "never arrives" is observed.
const QUIET: Duration = Duration::from_millis(1500);
/// Publish attempts before giving up (each followed by a short wait for delivery).
const PUBLISH_ATTEMPTS: usize = 60;
const ATTEMPT_WAIT: Duration = Duration::from_millis(300);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn config(keypair: Keypair, listen: Multiaddr, bootstrap: Vec<Multiaddr>) -> NetworkConfig {
    NetworkConfig {
        keypair,
        listen,
        bootstrap,
        namespace: "c0ffee00".into(),
        gossip_bytes_max: 64 * 1024,
        sync_request_bytes_max: 1024,
        sync_response_bytes_max: 64 * 1024,
        sync_request_timeout_ms: 3000,
        event_queue_max: 64,
        command_queue_max: 64,
        redial_interval_ms: 200,
        connections_max: 16,
        discovery: cairn_node::network::DiscoveryConfig::disabled(),
        nat: network::NatConfig::disabled(),
        request_pacing: Default::default(),
    }
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

struct Node {
    net: NetworkHandle,
    events: Receiver<NetworkEvent>,
    /// Listen address including `/p2p/<peer id>`, usable as a bootstrap entry.
    addr: Multiaddr,
}

impl Node {
    async fn start(config: NetworkConfig) -> Node {
        let (net, events) = timeout(WAIT, network::spawn(config))
            .await
            .expect("spawn timed out")
            .expect("spawn");
        let listen = net.listen_addrs().await;
        assert!(!listen.is_empty());
        let addr = listen[0].clone().with(Protocol::P2p(net.local_peer_id()));
        Node { net, events, addr }
    }

    async fn with(keypair: Keypair, bootstrap: &[&Node]) -> Node {
        Node::start(config(
            keypair,
            loopback(),
            bootstrap.iter().map(|n| n.addr.clone()).collect(),
        ))
        .await
    }

    fn id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    /// Next gossip event within `within`, skipping other events (requests are dropped).
    async fn gossip_within(
        &mut self,
        within: Duration,
    ) -> Option<(Topic, PeerId, MessageId, Vec<u8>)> {
        let deadline = Instant::now() + within;
        loop {
            match timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.events.recv(),
            )
            .await
            {
                Ok(Some(NetworkEvent::Gossip {
                    topic,
                    source,
                    message_id,
                    data,
                })) => {
                    return Some((topic, source, message_id, data));
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Asserts that no gossip arrives for [`QUIET`].
    async fn assert_no_gossip(&mut self, what: &str) {
        if let Some((topic, source, _, data)) = self.gossip_within(QUIET).await {
            panic!(
                "{what}: unexpected gossip on {topic} from {source}: {} bytes",
                data.len()
            );
        }
    }

    /// Waits until this node is connected to every peer in `peers`.
    async fn wait_connected(&self, peers: &[PeerId]) {
        let ok = eventually(|| async {
            let connected: Vec<PeerId> = self.net.peers().await.iter().map(|p| p.peer_id).collect();
            peers.iter().all(|p| connected.contains(p))
        })
        .await;
        assert!(ok, "not connected to {peers:?} within {WAIT:?}");
    }

    /// Waits until every peer in `peers` is in this node's mesh for `topic`.
    async fn wait_mesh(&self, topic: Topic, peers: &[PeerId]) {
        let ok = eventually(|| async {
            let mesh = self.net.mesh_peers(topic).await;
            peers.iter().all(|p| mesh.contains(p))
        })
        .await;
        assert!(ok, "{peers:?} not in the {topic} mesh within {WAIT:?}");
    }
}

/// Polls `check` every 50 ms until it holds or [`WAIT`] passes.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Publishes `data` from `from` until `to` receives a gossip message (bounded attempts) and
/// returns it. The same payload is re-published: content-addressed ids make repeats after a
/// successful send no-ops.
async fn publish_until_received(
    from: &NetworkHandle,
    to: &mut Node,
    topic: Topic,
    data: &[u8],
) -> (Topic, PeerId, MessageId, Vec<u8>) {
    for _ in 0..PUBLISH_ATTEMPTS {
        from.publish(topic, data.to_vec()).await.expect("publish");
        if let Some(got) = to.gossip_within(ATTEMPT_WAIT).await {
            return got;
        }
    }
    panic!("gossip not delivered after {PUBLISH_ATTEMPTS} attempts");
}

/// A, plus B and C bootstrapping to A; waits for connections and the consensus mesh.
async fn triangle() -> (Node, Node, Node) {
    let a = Node::with(Keypair::generate_ed25519(), &[]).await;
    let b = Node::with(Keypair::generate_ed25519(), &[&a]).await;
    let c = Node::with(Keypair::generate_ed25519(), &[&a]).await;
    a.wait_connected(&[b.id(), c.id()]).await;
    b.wait_connected(&[a.id()]).await;
    c.wait_connected(&[a.id()]).await;
    a.wait_mesh(Topic::Consensus, &[b.id(), c.id()]).await;
    b.wait_mesh(Topic::Consensus, &[a.id()]).await;
    c.wait_mesh(Topic::Consensus, &[a.id()]).await;
    (a, b, c)
}

async fn shutdown(nodes: &[&Node]) {
    for n in nodes {
        timeout(WAIT, n.net.shutdown())
            .await
            .expect("shutdown timed out");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_lists_connected_peers_with_direction() {
    init_tracing();
    let (mut a, mut b, c) = triangle().await;

    let peers_a = a.net.peers().await;
    assert_eq!(peers_a.len(), 2, "{peers_a:?}");
    for p in &peers_a {
        assert!([b.id(), c.id()].contains(&p.peer_id));
        assert!(!p.outbound, "B and C dialed A");
        assert!(p.address.is_some());
    }
    let peers_b = b.net.peers().await;
    assert_eq!(peers_b.len(), 1, "B knows only A: {peers_b:?}");
    assert_eq!(peers_b[0].peer_id, a.id());
    assert!(peers_b[0].outbound);
    let a_without_p2p: Multiaddr = a
        .addr
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect();
    let got = peers_b[0].address.clone().unwrap();
    assert!(
        got == a_without_p2p || got == a.addr,
        "B's address of A: {got}"
    );

    // Lifecycle events were delivered, before any gossip.
    let mut connected = Vec::new();
    while let Ok(ev) = a.events.try_recv() {
        if let NetworkEvent::PeerConnected { peer } = ev {
            connected.push(peer);
        }
    }
    connected.sort();
    let mut expected = vec![b.id(), c.id()];
    expected.sort();
    assert_eq!(connected, expected);

    // C leaves: A sees PeerDisconnected and drops it from peers().
    shutdown(&[&c]).await;
    let got = timeout(WAIT, async {
        loop {
            match a.events.recv().await {
                Some(NetworkEvent::PeerDisconnected { peer }) => return peer,
                Some(_) => continue,
                None => panic!("event queue closed"),
            }
        }
    })
    .await
    .expect("no PeerDisconnected");
    assert_eq!(got, c.id());
    let peers_a: Vec<PeerId> = a.net.peers().await.iter().map(|p| p.peer_id).collect();
    assert_eq!(peers_a, vec![b.id()]);
    let _ = b.events.try_recv();
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_gossip_reaches_every_node_exactly_once() {
    init_tracing();
    let (mut a, mut b, mut c) = triangle().await;
    let payload = b"vote: view 7".to_vec();

    let (topic, source, id, data) =
        publish_until_received(&c.net, &mut a, Topic::Consensus, &payload).await;
    assert_eq!(
        (topic, source, data.as_slice()),
        (Topic::Consensus, c.id(), payload.as_slice())
    );
    // Not forwarded before validation.
    assert!(
        b.gossip_within(Duration::from_millis(500)).await.is_none(),
        "forwarded before Accept"
    );
    a.net.report(id, source, Acceptance::Accept).await;

    // B (not connected to C) gets it through A.
    let (topic, source, id_b, data) = b
        .gossip_within(WAIT)
        .await
        .expect("B did not receive the accepted message");
    assert_eq!(
        (topic, source, data.as_slice()),
        (Topic::Consensus, a.id(), payload.as_slice())
    );
    b.net.report(id_b, source, Acceptance::Accept).await;

    // Publishing the same payload again (from anyone) is a no-op, and nobody gets a second copy;
    // C never receives its own message.
    c.net
        .publish(Topic::Consensus, payload.clone())
        .await
        .unwrap();
    b.net
        .publish(Topic::Consensus, payload.clone())
        .await
        .unwrap();
    a.assert_no_gossip("A: duplicate").await;
    b.assert_no_gossip("B: duplicate").await;
    c.assert_no_gossip("C: own message").await;

    // The same bytes on another topic are a different message.
    let (topic, ..) = publish_until_received(&c.net, &mut a, Topic::Transactions, &payload).await;
    assert_eq!(topic, Topic::Transactions);
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_gossip_is_not_forwarded_and_penalizes_the_source() {
    init_tracing();
    let (mut a, mut b, c) = triangle().await;

    let bad = b"invalid block".to_vec();
    let (_, source, id, _) = publish_until_received(&c.net, &mut a, Topic::Blocks, &bad).await;
    assert_eq!(source, c.id());
    a.net.report(id, source, Acceptance::Reject).await;
    assert!(
        eventually(|| async { a.net.peer_score(c.id()).await.is_some_and(|s| s < 0.0) }).await,
        "C's score at A did not drop: {:?}",
        a.net.peer_score(c.id()).await
    );
    assert_eq!(a.net.stats().gossip_rejected, 1);

    // A later valid message does travel C -> A -> B, and B never sees the rejected one.
    let good = b"valid block".to_vec();
    let (_, source, id, data) = publish_until_received(&c.net, &mut a, Topic::Blocks, &good).await;
    assert_eq!(data, good);
    a.net.report(id, source, Acceptance::Accept).await;
    let (_, _, _, data) = b
        .gossip_within(WAIT)
        .await
        .expect("B did not receive the accepted message");
    assert_eq!(data, good, "B received the rejected message");
    b.assert_no_gossip("B after the accepted message").await;
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_gossip_is_not_forwarded_and_not_penalized() {
    init_tracing();
    let (mut a, mut b, c) = triangle().await;
    let (_, source, id, _) =
        publish_until_received(&c.net, &mut a, Topic::Transactions, b"stale tx").await;
    a.net.report(id, source, Acceptance::Ignore).await;
    b.assert_no_gossip("B after Ignore").await;
    assert!(a.net.peer_score(c.id()).await.is_some_and(|s| s >= 0.0));
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_gossip_is_not_delivered() {
    init_tracing();
    let small = |bootstrap: Vec<Multiaddr>| {
        let mut c = config(Keypair::generate_ed25519(), loopback(), bootstrap);
        c.gossip_bytes_max = 1024;
        c
    };
    let mut a = Node::start(small(vec![])).await;
    let b = Node::start(small(vec![a.addr.clone()])).await;
    // C, misconfigured or malicious, allows much larger messages.
    let mut big = config(
        Keypair::generate_ed25519(),
        loopback(),
        vec![a.addr.clone()],
    );
    big.gossip_bytes_max = 1024 * 1024;
    let c = Node::start(big).await;
    a.wait_connected(&[b.id(), c.id()]).await;

    // Locally, over-size publishing is refused.
    match a.net.publish(Topic::Blocks, vec![1; 1025]).await {
        Err(NetworkError::Oversize {
            len: 1025,
            max: 1024,
        }) => {}
        other => panic!("expected Oversize, got {other:?}"),
    }
    // A payload exactly at the bound is fine.
    let (_, source, id, data) =
        publish_until_received(&c.net, &mut a, Topic::Blocks, &[5; 1024]).await;
    assert_eq!(data.len(), 1024);
    a.net.report(id, source, Acceptance::Accept).await;

    // Just over A's payload bound (fits gossipsub's frame): rejected by A, never delivered.
    c.net.publish(Topic::Blocks, vec![2; 1025]).await.unwrap();
    a.assert_no_gossip("payload over gossip_bytes_max").await;
    assert!(
        eventually(|| async { a.net.stats().gossip_rejected_oversize == 1 }).await,
        "{:?}",
        a.net.stats()
    );
    // C's stream is still healthy: a valid message gets through.
    let (_, source, id, data) =
        publish_until_received(&c.net, &mut a, Topic::Blocks, b"valid").await;
    assert_eq!((source, data.as_slice()), (c.id(), b"valid".as_slice()));
    a.net.report(id, source, Acceptance::Accept).await;

    // Far over: the frame is discarded by gossipsub's codec before decoding (C's gossip stream
    // to A dies with it; honest peers share gossip_bytes_max and never send such frames).
    c.net
        .publish(Topic::Blocks, vec![3; 512 * 1024])
        .await
        .unwrap();
    a.assert_no_gossip("frame over max_transmit_size").await;
    assert_eq!(a.net.stats().gossip_rejected_oversize, 1);

    // Other peers are unaffected.
    let (_, source, _, data) =
        publish_until_received(&b.net, &mut a, Topic::Blocks, b"from b").await;
    assert_eq!((source, data.as_slice()), (b.id(), b"from b".as_slice()));
    shutdown(&[&a, &b, &c]).await;
}

/// Answers the next request on `node` with `answer(data)`; `None` drops the token.
async fn serve_one(node: &mut Node, answer: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>) -> PeerId {
    let (peer, data, token) = timeout(WAIT, async {
        loop {
            match node.events.recv().await {
                Some(NetworkEvent::Request { peer, data, token }) => return (peer, data, token),
                Some(_) => continue,
                None => panic!("event queue closed"),
            }
        }
    })
    .await
    .expect("no request arrived");
    match answer(data) {
        Some(resp) => node.net.respond(token, resp).await,
        None => drop(token),
    }
    peer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_roundtrip() {
    init_tracing();
    let mut a = Node::with(Keypair::generate_ed25519(), &[]).await;
    let mut b = Node::with(Keypair::generate_ed25519(), &[&a]).await;
    b.wait_connected(&[a.id()]).await;
    a.wait_connected(&[b.id()]).await;

    // B asks A.
    let net = b.net.clone();
    let (resp, asker) = tokio::join!(
        net.request(a.id(), b"status?".to_vec(), 1),
        serve_one(&mut a, |d| { Some([b"re: ".as_slice(), &d].concat()) })
    );
    assert_eq!(resp.unwrap(), b"re: status?");
    assert_eq!(asker, b.id());

    // A asks B (the inbound side can request too); an empty payload is fine.
    let net = a.net.clone();
    let (resp, asker) = tokio::join!(
        net.request(b.id(), Vec::new(), 1),
        serve_one(&mut b, |_| Some(vec![9; 1000]))
    );
    assert_eq!(resp.unwrap(), vec![9; 1000]);
    assert_eq!(asker, a.id());

    // A response exactly at the bound is delivered.
    let net = b.net.clone();
    let (resp, _) = tokio::join!(
        net.request(a.id(), b"max".to_vec(), 1),
        serve_one(&mut a, |_| Some(vec![1; 64 * 1024]))
    );
    assert_eq!(resp.unwrap().len(), 64 * 1024);

    // A dropped token: the requester learns there is no response.
    let net = b.net.clone();
    let (resp, _) = tokio::join!(
        net.request(a.id(), b"x".to_vec(), 1),
        serve_one(&mut a, |_| None)
    );
    assert!(
        matches!(resp, Err(NetworkError::NoResponse { peer }) if peer == a.id()),
        "{resp:?}"
    );

    // Unanswered: times out after sync_request_timeout_ms.
    let started = Instant::now();
    let net = b.net.clone();
    let (resp, _) = tokio::join!(net.request(a.id(), b"slow".to_vec(), 1), async {
        let keep = timeout(WAIT, async {
            loop {
                if let Some(NetworkEvent::Request { token, .. }) = a.events.recv().await {
                    return token;
                }
            }
        })
        .await
        .expect("no request");
        sleep(Duration::from_millis(4000)).await;
        drop(keep);
    });
    assert!(
        matches!(resp, Err(NetworkError::Timeout { peer }) if peer == a.id()),
        "{resp:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(3000 + 2500),
        "{:?}",
        started.elapsed()
    );

    // Local bounds and reachability.
    assert!(matches!(
        b.net.request(a.id(), vec![0; 1025], 1).await,
        Err(NetworkError::Oversize {
            len: 1025,
            max: 1024
        })
    ));
    let stranger = PeerId::random();
    assert!(matches!(
        b.net.request(stranger, b"x".to_vec(), 1).await,
        Err(NetworkError::PeerUnreachable { peer, .. }) if peer == stranger
    ));
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_response_is_refused_with_an_error() {
    init_tracing();
    // A may send responses up to 1 MiB; B accepts only 4 KiB.
    let mut ca = config(Keypair::generate_ed25519(), loopback(), vec![]);
    ca.sync_response_bytes_max = 1024 * 1024;
    let mut a = Node::start(ca).await;
    let mut cb = config(
        Keypair::generate_ed25519(),
        loopback(),
        vec![a.addr.clone()],
    );
    cb.sync_response_bytes_max = 4096;
    let b = Node::start(cb).await;
    b.wait_connected(&[a.id()]).await;

    // Over B's bound: B refuses it on the length prefix.
    let net = b.net.clone();
    let (resp, _) = tokio::join!(
        net.request(a.id(), b"blocks".to_vec(), 1),
        serve_one(&mut a, |_| Some(vec![7; 10_000]))
    );
    match resp {
        Err(NetworkError::Oversize {
            len: 10_000,
            max: 4096,
        }) => {}
        other => panic!("expected Oversize, got {other:?}"),
    }
    assert_eq!(b.net.stats().sync_protocol_violations, 1);

    // Over A's own bound: A refuses to send it; B sees no response.
    let net = b.net.clone();
    let (resp, _) = tokio::join!(
        net.request(a.id(), b"blocks".to_vec(), 1),
        serve_one(&mut a, |_| Some(vec![7; 1024 * 1024 + 1]))
    );
    assert!(
        matches!(resp, Err(NetworkError::NoResponse { .. })),
        "{resp:?}"
    );

    // The connection is still usable.
    let net = b.net.clone();
    let (resp, _) = tokio::join!(
        net.request(a.id(), b"ok".to_vec(), 1),
        serve_one(&mut a, |_| Some(vec![1; 4096]))
    );
    assert_eq!(resp.unwrap().len(), 4096);
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_is_reconnected_by_bootstrap_redial() {
    init_tracing();
    let key_a = Keypair::generate_ed25519();
    let a = Node::with(key_a.clone(), &[]).await;
    let mut b = Node::with(Keypair::generate_ed25519(), &[&a]).await;
    b.wait_connected(&[a.id()]).await;
    let a_id = a.id();
    let a_listen: Multiaddr = a
        .addr
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect();

    shutdown(&[&a]).await;
    drop(a);
    let gone = timeout(WAIT, async {
        loop {
            match b.events.recv().await {
                Some(NetworkEvent::PeerDisconnected { peer }) if peer == a_id => return,
                Some(_) => continue,
                None => panic!("event queue closed"),
            }
        }
    })
    .await;
    assert!(gone.is_ok(), "B did not notice A going away");
    assert!(b.net.peers().await.is_empty());

    // Let B fail a few redials, then bring A back on the same address with the same key.
    sleep(Duration::from_millis(600)).await;
    let mut a = Node::start(config(key_a, a_listen, vec![])).await;
    assert_eq!(a.id(), a_id);
    let back = timeout(WAIT, async {
        loop {
            match b.events.recv().await {
                Some(NetworkEvent::PeerConnected { peer }) if peer == a_id => return,
                Some(_) => continue,
                None => panic!("event queue closed"),
            }
        }
    })
    .await;
    assert!(back.is_ok(), "B did not redial A");
    a.wait_connected(&[b.id()]).await;
    assert!(
        b.net
            .peers()
            .await
            .iter()
            .any(|p| p.peer_id == a_id && p.outbound)
    );

    // Gossip flows again.
    let (_, source, _, _) =
        publish_until_received(&b.net, &mut a, Topic::Consensus, b"hello again").await;
    assert_eq!(source, b.id());
    shutdown(&[&a, &b]).await;
}

/// A bootstrap peer given as `/dns4/localhost/tcp/PORT/p2p/ID` is resolved and dialed, and
/// resolved again when redialed after it restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_peer_named_by_dns_is_dialed_and_redialed() {
    init_tracing();
    let key_a = Keypair::generate_ed25519();
    let a = Node::with(key_a.clone(), &[]).await;
    let a_id = a.id();
    let port = a
        .addr
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let by_name: Multiaddr = format!("/dns4/localhost/tcp/{port}/p2p/{a_id}")
        .parse()
        .unwrap();
    let mut b = Node::start(config(
        Keypair::generate_ed25519(),
        loopback(),
        vec![by_name],
    ))
    .await;
    b.wait_connected(&[a_id]).await;
    assert!(
        b.net
            .peers()
            .await
            .iter()
            .any(|p| p.peer_id == a_id && p.outbound),
        "B dialed A by name"
    );

    shutdown(&[&a]).await;
    drop(a);
    let gone = timeout(WAIT, async {
        loop {
            match b.events.recv().await {
                Some(NetworkEvent::PeerDisconnected { peer }) if peer == a_id => return,
                Some(_) => continue,
                None => panic!("event queue closed"),
            }
        }
    })
    .await;
    assert!(gone.is_ok(), "B did not notice A going away");
    sleep(Duration::from_millis(600)).await;
    let listen: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let a = Node::start(config(key_a, listen, vec![])).await;
    b.wait_connected(&[a_id]).await;
    shutdown(&[&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_event_queue_drops_gossip_and_requests_but_keeps_peer_events() {
    init_tracing();
    let mut ca = config(Keypair::generate_ed25519(), loopback(), vec![]);
    ca.event_queue_max = 1;
    let mut a = Node::start(ca).await;
    let b = Node::with(Keypair::generate_ed25519(), &[&a]).await;
    let c = Node::with(Keypair::generate_ed25519(), &[&a]).await;
    // A's queue (capacity 1) holds one PeerConnected; the other waits in the backlog.
    a.wait_connected(&[b.id(), c.id()]).await;

    let mut dropped = false;
    for i in 0..PUBLISH_ATTEMPTS {
        b.net
            .publish(Topic::Transactions, format!("tx {i}").into_bytes())
            .await
            .unwrap();
        sleep(ATTEMPT_WAIT).await;
        if a.net.stats().gossip_dropped_queue_full > 0 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "{:?}", a.net.stats());
    let resp = b.net.request(a.id(), b"x".to_vec(), 1).await;
    assert!(
        matches!(resp, Err(NetworkError::NoResponse { .. })),
        "{resp:?}"
    );
    assert_eq!(a.net.stats().requests_dropped_queue_full, 1);

    // Both lifecycle events arrive, in order, before anything else.
    let mut connected = Vec::new();
    for _ in 0..2 {
        match timeout(WAIT, a.events.recv()).await.expect("no event") {
            Some(NetworkEvent::PeerConnected { peer }) => connected.push(peer),
            other => panic!("expected PeerConnected, got {other:?}"),
        }
    }
    connected.sort();
    let mut expected = vec![b.id(), c.id()];
    expected.sort();
    assert_eq!(connected, expected);
    shutdown(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_except_bootstrap_peers() {
    init_tracing();
    let boot = Node::with(Keypair::generate_ed25519(), &[]).await;
    let mut ca = config(
        Keypair::generate_ed25519(),
        loopback(),
        vec![boot.addr.clone()],
    );
    ca.connections_max = 1;
    let a = Node::start(ca).await;
    a.wait_connected(&[boot.id()]).await;

    // A is at its limit with its bootstrap peer: an extra inbound peer is refused.
    let b = Node::with(Keypair::generate_ed25519(), &[&a]).await;
    assert!(eventually(|| async { a.net.stats().connections_closed_limit > 0 }).await);
    let peers: Vec<PeerId> = a.net.peers().await.iter().map(|p| p.peer_id).collect();
    assert_eq!(peers, vec![boot.id()]);
    shutdown(&[&a, &b, &boot]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_of_another_namespace_is_disconnected() {
    init_tracing();
    let mut a = Node::with(Keypair::generate_ed25519(), &[]).await;
    let mut cx = config(
        Keypair::generate_ed25519(),
        loopback(),
        vec![a.addr.clone()],
    );
    cx.namespace = "deadbeef".into();
    cx.redial_interval_ms = 60_000;
    let x = Node::start(cx).await;
    // A connection is made, then dropped after identify.
    let saw = timeout(WAIT, async {
        let mut connected = false;
        loop {
            match a.events.recv().await {
                Some(NetworkEvent::PeerConnected { peer }) if peer == x.id() => connected = true,
                Some(NetworkEvent::PeerDisconnected { peer }) if peer == x.id() && connected => {
                    return;
                }
                Some(_) => continue,
                None => panic!("event queue closed"),
            }
        }
    })
    .await;
    assert!(saw.is_ok(), "peer of another chain was not disconnected");
    assert!(a.net.peers().await.is_empty());
    shutdown(&[&a, &x]).await;
}
