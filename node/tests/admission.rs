//! Integration tests of proof-of-work peer admission, reputation bans, IP bans and connection
//! limits on the networking layer, over loopback TCP (127.0.0.1, port 0). Every wait is
//! bounded.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_node::admission;
use cairn_node::network::{
    self, Acceptance, AdmissionConfig, AdmissionStatus, NetworkConfig, NetworkEvent, NetworkHandle,
    Topic,
};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, sleep, timeout};

/// Upper bound of every "eventually" wait.
const WAIT: Duration = Duration::from_secs(20);
const GENESIS: [u8; 32] = [9; 32];
const OTHER_GENESIS: [u8; 32] = [1; 32];
const BITS: u8 = 8;

fn config(keypair: Keypair, bootstrap: Vec<Multiaddr>) -> NetworkConfig {
    NetworkConfig {
        keypair,
        listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        bootstrap,
        namespace: "adm1ss10n".into(),
        gossip_bytes_max: 64 * 1024,
        sync_request_bytes_max: 1024,
        sync_response_bytes_max: 64 * 1024,
        sync_request_timeout_ms: 3000,
        event_queue_max: 1024,
        command_queue_max: 64,
        // Dial once at start; no redial within a test.
        redial_interval_ms: 600_000,
        connections_max: 256,
        discovery: cairn_node::network::DiscoveryConfig::disabled(),
        nat: network::NatConfig::disabled(),
        request_pacing: Default::default(),
    }
}

fn admission(exempt: &[PeerId], own_nonce: Option<u64>, deadline_ms: u64) -> AdmissionConfig {
    AdmissionConfig {
        difficulty_bits: BITS,
        genesis_hash: GENESIS,
        exempt: exempt.iter().copied().collect(),
        own_nonce,
        deadline_ms,
        ban_duration_ms: 60_000,
        initial_bans: Vec::new(),
        ban_sink: None,
        ..AdmissionConfig::disabled()
    }
}

struct Node {
    net: NetworkHandle,
    events: Receiver<NetworkEvent>,
    addr: Multiaddr,
}

impl Node {
    async fn start(keypair: Keypair, bootstrap: &[&Node], adm: AdmissionConfig) -> Node {
        let cfg = config(keypair, bootstrap.iter().map(|n| n.addr.clone()).collect());
        Node::start_config(cfg, adm).await
    }

    async fn start_redialing(keypair: Keypair, bootstrap: &[&Node], adm: AdmissionConfig) -> Node {
        let mut cfg = config(keypair, bootstrap.iter().map(|n| n.addr.clone()).collect());
        cfg.redial_interval_ms = 200;
        Node::start_config(cfg, adm).await
    }

    async fn start_config(cfg: NetworkConfig, adm: AdmissionConfig) -> Node {
        let (net, events) = timeout(WAIT, network::spawn_with_admission(cfg, adm))
            .await
            .expect("spawn timed out")
            .expect("spawn");
        let addr = net.listen_addrs().await[0]
            .clone()
            .with(Protocol::P2p(net.local_peer_id()));
        Node { net, events, addr }
    }

    /// Drains pending events; returns the gossip payloads and connected peers seen.
    fn drain(&mut self) -> (Vec<Vec<u8>>, Vec<PeerId>) {
        let mut gossip = Vec::new();
        let mut connected = Vec::new();
        for _ in 0..10_000 {
            match self.events.try_recv() {
                Ok(NetworkEvent::Gossip { data, .. }) => gossip.push(data),
                Ok(NetworkEvent::PeerConnected { peer }) => connected.push(peer),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (gossip, connected)
    }

    async fn status_of(&self, peer: PeerId) -> Option<AdmissionStatus> {
        self.net
            .peers()
            .await
            .into_iter()
            .find(|p| p.peer_id == peer)
            .map(|p| p.admission)
    }
}

fn keypair_and_id() -> (Keypair, PeerId) {
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id();
    (k, id)
}

/// A nonce that is not a valid proof for `peer` on [`GENESIS`].
fn wrong_nonce(peer: &PeerId) -> u64 {
    (0..100_000)
        .find(|n| !admission::verify(&GENESIS, peer, *n, BITS))
        .expect("almost every nonce is wrong")
}

/// A valid proof for `peer` on [`OTHER_GENESIS`] that is not valid on [`GENESIS`].
fn other_genesis_nonce(peer: &PeerId) -> u64 {
    (0..(64u64 << 16))
        .find(|n| {
            admission::verify(&OTHER_GENESIS, peer, *n, BITS)
                && !admission::verify(&GENESIS, peer, *n, BITS)
        })
        .expect("a proof for the other genesis exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_proof_is_admitted_mutually_and_gossips() {
    let (kv, validator) = keypair_and_id();
    let (kf, full) = keypair_and_id();
    let nonce = admission::solve(&GENESIS, &full, BITS).unwrap();
    let mut v = Node::start(kv, &[], admission(&[validator], None, 3000)).await;
    let mut f = Node::start(kf, &[&v], admission(&[validator], Some(nonce), 3000)).await;

    let start = Instant::now();
    loop {
        let at_v = v.status_of(full).await;
        let at_f = f.status_of(validator).await;
        if at_v == Some(AdmissionStatus::Admitted) && at_f == Some(AdmissionStatus::Exempt) {
            break;
        }
        assert!(start.elapsed() < WAIT, "not admitted: {at_v:?} / {at_f:?}");
        sleep(Duration::from_millis(50)).await;
    }
    let score = v
        .net
        .peers()
        .await
        .into_iter()
        .find(|p| p.peer_id == full)
        .and_then(|p| p.score)
        .expect("score known");
    assert!(
        score > -10.0,
        "admitted peer must not be penalized: {score}"
    );
    assert_eq!(v.net.stats().peers_admitted, 1);
    assert_eq!(v.net.stats().peers_refused, 0);

    // Gossip flows both ways.
    let mut v_got = false;
    let mut f_got = false;
    for i in 0..100u32 {
        if !f_got {
            let _ = v
                .net
                .publish(Topic::Blocks, format!("v{i}").into_bytes())
                .await;
        }
        if !v_got {
            let _ = f
                .net
                .publish(Topic::Blocks, format!("f{i}").into_bytes())
                .await;
        }
        sleep(Duration::from_millis(200)).await;
        f_got |= !f.drain().0.is_empty();
        v_got |= !v.drain().0.is_empty();
        if v_got && f_got {
            break;
        }
    }
    assert!(f_got, "admitted full node receives the validator's gossip");
    assert!(v_got, "validator receives the admitted full node's gossip");
    f.net.shutdown().await;
    v.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_foreign_proofs_are_refused_and_get_no_gossip() {
    const DEADLINE_MS: u64 = 3000;
    let (kv, validator) = keypair_and_id();
    let mut v = Node::start(kv, &[], admission(&[validator], None, DEADLINE_MS)).await;
    let (kn, none) = keypair_and_id();
    let (kw, wrong) = keypair_and_id();
    let (ko, foreign) = keypair_and_id();
    let started = Instant::now();
    let mut peers = vec![
        Node::start(kn, &[&v], admission(&[validator], None, DEADLINE_MS)).await,
        Node::start(
            kw,
            &[&v],
            admission(&[validator], Some(wrong_nonce(&wrong)), DEADLINE_MS),
        )
        .await,
        Node::start(
            ko,
            &[&v],
            admission(
                &[validator],
                Some(other_genesis_nonce(&foreign)),
                DEADLINE_MS,
            ),
        )
        .await,
    ];

    let mut wrong_refused_at = None;
    let mut none_gone_at = None;
    let mut i = 0u32;
    while started.elapsed() < WAIT {
        i += 1;
        // The validator keeps publishing; no unadmitted peer may receive any of it.
        let _ = v
            .net
            .publish(Topic::Blocks, format!("m{i}").into_bytes())
            .await;
        let connected: Vec<PeerId> = v.net.peers().await.iter().map(|p| p.peer_id).collect();
        if wrong_refused_at.is_none()
            && !connected.contains(&wrong)
            && !connected.contains(&foreign)
            && v.net.stats().peers_refused >= 2
        {
            wrong_refused_at = Some(started.elapsed());
        }
        if none_gone_at.is_none() && !connected.contains(&none) && v.net.stats().peers_refused >= 3
        {
            none_gone_at = Some(started.elapsed());
        }
        if wrong_refused_at.is_some() && none_gone_at.is_some() {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    let wrong_refused_at = wrong_refused_at.expect("wrong proofs refused");
    let none_gone_at = none_gone_at.expect("peer without proof refused");
    println!(
        "wrong/foreign proofs refused after {wrong_refused_at:?}; no proof after {none_gone_at:?}"
    );
    assert!(
        wrong_refused_at < Duration::from_millis(DEADLINE_MS),
        "a wrong proof is refused at once, not at the deadline: {wrong_refused_at:?}"
    );
    assert!(
        none_gone_at >= Duration::from_millis(DEADLINE_MS - 500)
            && none_gone_at < Duration::from_millis(DEADLINE_MS + 3000),
        "a missing proof is refused at the deadline: {none_gone_at:?}"
    );
    assert_eq!(v.net.stats().peers_admitted, 0);
    let (_, connected) = v.drain();
    let refused: HashSet<PeerId> = [none, wrong, foreign].into();
    assert!(
        connected.iter().all(|p| !refused.contains(p)),
        "the application never saw an unadmitted peer connect: {connected:?}"
    );
    for p in &mut peers {
        let (gossip, _) = p.drain();
        assert!(gossip.is_empty(), "an unadmitted peer received gossip");
        p.net.shutdown().await;
    }
    v.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_gossip_flooder_is_banned_and_stays_banned_after_restart() {
    let (kv, validator) = keypair_and_id();
    let (kf, flooder) = keypair_and_id();
    let nonce = admission::solve(&GENESIS, &flooder, BITS).unwrap();
    let banned: Arc<Mutex<Vec<(PeerId, u64)>>> = Arc::default();
    let sink_bans = banned.clone();
    let mut adm_v = admission(&[validator], None, 3000);
    adm_v.ban_sink = Some(Arc::new(move |p, until| {
        sink_bans.lock().unwrap().push((p, until))
    }));
    let mut v = Node::start(kv.clone(), &[], adm_v.clone()).await;
    // The flooder redials quickly after each disconnect.
    let f = Node::start_redialing(
        kf.clone(),
        &[&v],
        admission(&[validator], Some(nonce), 3000),
    )
    .await;

    // The flooder publishes distinct invalid transactions; the victim's application rejects
    // every one (a stateless failure).
    let start = Instant::now();
    let mut i = 0u32;
    let mut rejected = 0u32;
    while v.net.stats().peers_banned == 0 {
        assert!(
            start.elapsed() < WAIT,
            "flooder not banned; rejected {rejected}, stats {:?}",
            v.net.stats()
        );
        i += 1;
        let _ = f
            .net
            .publish(Topic::Transactions, format!("garbage {i}").into_bytes())
            .await;
        for _ in 0..1000 {
            match v.events.try_recv() {
                Ok(NetworkEvent::Gossip {
                    source, message_id, ..
                }) => {
                    v.net.report(message_id, source, Acceptance::Reject).await;
                    rejected += 1;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    println!(
        "banned after {:?} and {rejected} rejected messages",
        start.elapsed()
    );
    let bans = banned.lock().unwrap().clone();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].0, flooder);
    let gone = Instant::now();
    while v.status_of(flooder).await.is_some() {
        assert!(gone.elapsed() < WAIT, "banned peer still connected");
        sleep(Duration::from_millis(50)).await;
    }
    f.net.shutdown().await;
    v.net.shutdown().await;

    // Restart the victim with the persisted bans: the flooder cannot get back in.
    let mut adm_v2 = adm_v;
    adm_v2.initial_bans = bans;
    let v2 = Node::start(kv, &[], adm_v2).await;
    let f2 = Node::start(kf, &[&v2], admission(&[validator], Some(nonce), 3000)).await;
    let start = Instant::now();
    while v2.net.stats().connections_refused_banned == 0 {
        assert!(
            start.elapsed() < WAIT,
            "banned peer's connection not refused"
        );
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_millis(500)).await;
    assert!(v2.status_of(flooder).await.is_none(), "banned peer got in");
    f2.net.shutdown().await;
    v2.net.shutdown().await;
}

/// Publishes `n` messages from `from` to `to` at 50 ms intervals; returns how many arrived
/// within the run plus 1 s, and their mean latency.
async fn gossip_run(from: &Node, to: &mut Node, tag: &str, n: u32) -> (u32, Duration) {
    let mut sent = std::collections::HashMap::new();
    let mut got = 0u32;
    let mut total = Duration::ZERO;
    let end_by = Instant::now() + Duration::from_millis(50 * u64::from(n) + 1000);
    let mut i = 0u32;
    while Instant::now() < end_by {
        if i < n {
            let data = format!("{tag}{i}").into_bytes();
            sent.insert(data.clone(), Instant::now());
            let _ = from.net.publish(Topic::Consensus, data).await;
            i += 1;
        }
        sleep(Duration::from_millis(50)).await;
        for data in to.drain().0 {
            if let Some(t) = sent.remove(&data) {
                got += 1;
                total += t.elapsed();
            }
        }
        if got == n {
            break;
        }
    }
    (got, total / got.max(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_sybils_without_proofs_do_not_disturb_validator_gossip() {
    const SYBILS: usize = 100;
    const MESSAGES: u32 = 40;
    const DEADLINE_MS: u64 = 2000;
    let (ka, a_id) = keypair_and_id();
    let (kb, b_id) = keypair_and_id();
    let vals = [a_id, b_id];
    let a = Node::start(ka, &[], admission(&vals, None, DEADLINE_MS)).await;
    let mut b = Node::start(kb, &[&a], admission(&vals, None, DEADLINE_MS)).await;
    // Wait for the mesh: the first message through.
    let start = Instant::now();
    while gossip_run(&a, &mut b, "warmup", 1).await.0 == 0 {
        assert!(start.elapsed() < WAIT, "validators never formed a mesh");
    }
    let (base_got, base_latency) = gossip_run(&a, &mut b, "base", MESSAGES).await;

    let mut sybils = Vec::new();
    for _ in 0..SYBILS {
        sybils.push(
            Node::start(
                Keypair::generate_ed25519(),
                &[&a],
                admission(&vals, None, DEADLINE_MS),
            )
            .await,
        );
    }
    let (flood_got, flood_latency) = gossip_run(&a, &mut b, "flood", MESSAGES).await;
    println!(
        "validator gossip: without flood {base_got}/{MESSAGES} delivered, mean latency {base_latency:?}; \
         with {SYBILS} sybils {flood_got}/{MESSAGES}, mean latency {flood_latency:?}"
    );
    assert_eq!(base_got, MESSAGES);
    assert_eq!(
        flood_got, MESSAGES,
        "the flood must not stop validator gossip"
    );
    // All 100 come from 127.0.0.1: beyond `connections_per_ip_max` they are closed on
    // arrival, the rest are refused at the admission deadline.
    let start = Instant::now();
    let gone = |s: network::NetworkStats| s.peers_refused + s.connections_closed_ip_limit;
    while gone(a.net.stats()) < SYBILS as u64 {
        assert!(
            start.elapsed() < WAIT,
            "sybils not all refused: {:?}",
            a.net.stats()
        );
        sleep(Duration::from_millis(100)).await;
    }
    let stats = a.net.stats();
    println!(
        "all {SYBILS} sybils gone after {:?}: {} closed by the per-IP limit, {} refused at the deadline",
        start.elapsed(),
        stats.connections_closed_ip_limit,
        stats.peers_refused
    );
    assert_eq!(
        stats.peers_refused,
        u64::from(network::DEFAULT_CONNECTIONS_PER_IP_MAX)
    );
    assert_eq!(a.net.stats().peers_admitted, 0);
    for s in &mut sybils {
        assert!(s.drain().0.is_empty(), "a sybil received gossip");
    }
    for s in sybils {
        s.net.shutdown().await;
    }
    b.net.shutdown().await;
    a.net.shutdown().await;
}

/// Publishes distinct garbage transactions from every flooder while `victim` rejects every
/// gossip message it receives, until `done(victim stats)` or [`WAIT`].
async fn flood_until(
    victim: &mut Node,
    flooders: &[Node],
    done: impl Fn(&network::NetworkStats) -> bool,
) -> u32 {
    let start = Instant::now();
    let mut i = 0u32;
    let mut rejected = 0u32;
    while !done(&victim.net.stats()) {
        assert!(
            start.elapsed() < WAIT,
            "flood did not reach its goal; rejected {rejected}, stats {:?}",
            victim.net.stats()
        );
        for f in flooders {
            i += 1;
            let _ = f
                .net
                .publish(Topic::Transactions, format!("garbage {i}").into_bytes())
                .await;
        }
        for _ in 0..1000 {
            match victim.events.try_recv() {
                Ok(NetworkEvent::Gossip {
                    source, message_id, ..
                }) => {
                    victim
                        .net
                        .report(message_id, source, Acceptance::Reject)
                        .await;
                    rejected += 1;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    rejected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_identities_sharing_an_ip_ban_the_ip_but_never_a_validator() {
    const IDENTITIES_MAX: u32 = 2;
    let (kv, victim) = keypair_and_id();
    let (kw, validator) = keypair_and_id();
    let exempt = [victim, validator];
    let ip_bans: Arc<Mutex<Vec<(std::net::IpAddr, u64)>>> = Arc::default();
    let sink = ip_bans.clone();
    let mut adm_v = admission(&exempt, None, 3000);
    adm_v.banned_identities_per_ip_max = IDENTITIES_MAX;
    adm_v.ip_ban_sink = Some(Arc::new(move |ip, until| {
        sink.lock().unwrap().push((ip, until))
    }));
    // The victim has no bootstrap peers, so 127.0.0.1 is not protected as a bootstrap
    // address; no validator has connected from it yet either.
    let mut v = Node::start(kv.clone(), &[], adm_v.clone()).await;

    // IDENTITIES_MAX + 1 flooders with valid proofs, all from 127.0.0.1.
    let mut flooders = Vec::new();
    for _ in 0..=IDENTITIES_MAX {
        let (kf, f) = keypair_and_id();
        let nonce = admission::solve(&GENESIS, &f, BITS).unwrap();
        flooders
            .push(Node::start_redialing(kf, &[&v], admission(&exempt, Some(nonce), 3000)).await);
    }
    let rejected = flood_until(&mut v, &flooders, |s| s.ips_banned >= 1).await;
    let stats = v.net.stats();
    println!("IP banned after {rejected} rejected messages; stats {stats:?}");
    assert_eq!(
        stats.peers_banned,
        u64::from(IDENTITIES_MAX) + 1,
        "the IP is banned at the first banned identity over the bound"
    );
    let bans = ip_bans.lock().unwrap().clone();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].0, "127.0.0.1".parse::<std::net::IpAddr>().unwrap());

    // A fresh identity with a valid proof from the banned IP is refused at once.
    let (kh, honest) = keypair_and_id();
    let nonce = admission::solve(&GENESIS, &honest, BITS).unwrap();
    let before = v.net.stats().connections_refused_banned_ip;
    let h = Node::start(kh.clone(), &[&v], admission(&exempt, Some(nonce), 3000)).await;
    let start = Instant::now();
    while v.net.stats().connections_refused_banned_ip == before {
        assert!(
            start.elapsed() < WAIT,
            "connection from a banned IP not refused"
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert!(
        v.status_of(honest).await.is_none(),
        "peer from a banned IP got in"
    );
    h.net.shutdown().await;

    // A genesis validator from the same IP is never refused.
    let w = Node::start(kw, &[&v], admission(&exempt, None, 3000)).await;
    let start = Instant::now();
    while v.status_of(validator).await != Some(AdmissionStatus::Exempt) {
        assert!(start.elapsed() < WAIT, "validator refused for its IP");
        sleep(Duration::from_millis(50)).await;
    }
    w.net.shutdown().await;
    for f in flooders {
        f.net.shutdown().await;
    }
    v.net.shutdown().await;

    // Restarted with the persisted IP ban, the victim refuses the address again.
    let mut adm_v2 = adm_v;
    adm_v2.initial_ip_bans = bans;
    let v2 = Node::start(kv, &[], adm_v2).await;
    let h2 = Node::start(kh, &[&v2], admission(&exempt, Some(nonce), 3000)).await;
    let start = Instant::now();
    while v2.net.stats().connections_refused_banned_ip == 0 {
        assert!(
            start.elapsed() < WAIT,
            "persisted IP ban not applied after restart"
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert!(v2.status_of(honest).await.is_none());
    h2.net.shutdown().await;
    v2.net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_limited_except_for_validators() {
    const PER_IP_MAX: u32 = 3;
    const PEERS: usize = 5;
    let (kv, victim) = keypair_and_id();
    let (kw, validator) = keypair_and_id();
    let exempt = [victim, validator];
    let mut adm_v = admission(&exempt, None, 10_000);
    adm_v.connections_per_ip_max = PER_IP_MAX;
    let v = Node::start(kv, &[], adm_v).await;
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let (k, id) = keypair_and_id();
        let nonce = admission::solve(&GENESIS, &id, BITS).unwrap();
        peers.push(Node::start(k, &[&v], admission(&exempt, Some(nonce), 10_000)).await);
    }
    let start = Instant::now();
    while v.net.stats().connections_closed_ip_limit < (PEERS as u64 - u64::from(PER_IP_MAX)) {
        assert!(
            start.elapsed() < WAIT,
            "per-IP limit not enforced: {:?}",
            v.net.stats()
        );
        sleep(Duration::from_millis(50)).await;
    }
    let w = Node::start(kw, &[&v], admission(&exempt, None, 10_000)).await;
    let start = Instant::now();
    while v.status_of(validator).await != Some(AdmissionStatus::Exempt) {
        assert!(
            start.elapsed() < WAIT,
            "validator refused by the per-IP limit"
        );
        sleep(Duration::from_millis(50)).await;
    }
    let connected = v.net.peers().await;
    let non_validators = connected.iter().filter(|p| p.peer_id != validator).count();
    println!(
        "per-IP limit {PER_IP_MAX}: {non_validators} of {PEERS} peers kept; stats {:?}",
        v.net.stats()
    );
    assert_eq!(non_validators, PER_IP_MAX as usize);
    assert_eq!(
        v.net.stats().connections_closed_ip_limit,
        (PEERS - PER_IP_MAX as usize) as u64
    );
    for p in peers {
        p.net.shutdown().await;
    }
    w.net.shutdown().await;
    v.net.shutdown().await;
}

/// A validator added by governance: a connected peer without a proof, pending admission,
/// is exempt once the node learns the new set (`NetworkHandle::exempt`), is announced to the
/// application and receives gossip; a peer never exempted stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_peer_exempted_at_runtime_is_admitted_at_once() {
    const DEADLINE_MS: u64 = 30_000;
    let (kv, validator) = keypair_and_id();
    let mut v = Node::start(kv, &[], admission(&[validator], None, DEADLINE_MS)).await;
    let (kn, newcomer) = keypair_and_id();
    let (ko, other) = keypair_and_id();
    let mut n = Node::start(kn, &[&v], admission(&[validator], None, DEADLINE_MS)).await;
    let o = Node::start(ko, &[&v], admission(&[validator], None, DEADLINE_MS)).await;
    let start = Instant::now();
    while v.status_of(newcomer).await != Some(AdmissionStatus::Pending)
        || v.status_of(other).await != Some(AdmissionStatus::Pending)
    {
        assert!(start.elapsed() < WAIT, "the peers never connected");
        sleep(Duration::from_millis(50)).await;
    }
    v.drain();
    v.net.exempt(vec![newcomer]);
    while v.status_of(newcomer).await != Some(AdmissionStatus::Exempt) {
        assert!(start.elapsed() < WAIT, "the exempted peer stayed pending");
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(v.status_of(other).await, Some(AdmissionStatus::Pending));
    let (_, connected) = v.drain();
    assert_eq!(
        connected,
        vec![newcomer],
        "announced once exempt, the other not at all"
    );
    // Gossip reaches the exempted peer (it joins the mesh once its score allows).
    let mut received = false;
    for i in 0..100 {
        let _ = v
            .net
            .publish(Topic::Blocks, format!("e{i}").into_bytes())
            .await;
        sleep(Duration::from_millis(100)).await;
        if !n.drain().0.is_empty() {
            received = true;
            break;
        }
    }
    assert!(received, "the exempted peer received no gossip");
    for node in [n, o, v] {
        node.net.shutdown().await;
    }
}

/// Admission settings at `bits` leading zero bits (instead of [`BITS`]).
fn admission_at(
    bits: u8,
    exempt: &[PeerId],
    own_nonce: Option<u64>,
    deadline_ms: u64,
) -> AdmissionConfig {
    AdmissionConfig {
        difficulty_bits: bits,
        ..admission(exempt, own_nonce, deadline_ms)
    }
}

/// Waits (bounded) until `node` applied the required difficulty `bits`.
async fn wait_difficulty(node: &Node, bits: u8) {
    let start = Instant::now();
    loop {
        let info = node.net.admission_info().await.expect("running");
        if info.difficulty_bits == bits {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "difficulty {bits} never applied: {info:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until `node` sees `peer` with `status`.
async fn wait_status(node: &Node, peer: PeerId, status: AdmissionStatus, what: &str) {
    let start = Instant::now();
    loop {
        let now = node.status_of(peer).await;
        if now == Some(status) {
            return;
        }
        assert!(start.elapsed() < WAIT, "{what}: {now:?}, not {status:?}");
        sleep(Duration::from_millis(50)).await;
    }
}

/// Drains pending events; returns the peers connected and disconnected, in order.
fn lifecycle(node: &mut Node) -> (Vec<PeerId>, Vec<PeerId>) {
    let mut connected = Vec::new();
    let mut disconnected = Vec::new();
    for _ in 0..10_000 {
        match node.events.try_recv() {
            Ok(NetworkEvent::PeerConnected { peer }) => connected.push(peer),
            Ok(NetworkEvent::PeerDisconnected { peer }) => disconnected.push(peer),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (connected, disconnected)
}

/// A keypair whose empty proof (nonce 0) is below `bits`, so that it is refused at `bits`.
fn keypair_refused_at(bits: u8) -> (Keypair, PeerId) {
    (0..1000)
        .map(|_| keypair_and_id())
        .find(|(_, id)| admission::proof_bits(&GENESIS, id, 0) < bits)
        .expect("almost every identity's nonce 0 is below a few bits")
}

/// Governance raises the difficulty (`set_admission_difficulty`, from 4 to 8 bits): a peer
/// admitted before keeps its connection and status; a joining peer whose stored proof was
/// made for 4 bits is refused, learns the 8 bits from the refusal (`[1, 8]`), solves again,
/// stores the new proof in its pow file and is admitted on its redial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_difficulty_refuses_a_stale_proof_which_is_solved_again_and_admitted() {
    const LOW: u8 = 4;
    const HIGH: u8 = 8;
    let (kv, validator) = keypair_and_id();
    let (ka, early) = keypair_and_id();
    let (kb, late) = keypair_and_id();
    let mut v = Node::start(kv, &[], admission_at(LOW, &[validator], None, 5000)).await;
    let a_nonce = admission::solve(&GENESIS, &early, LOW).unwrap();
    let mut a = Node::start(
        ka,
        &[&v],
        admission_at(LOW, &[validator], Some(a_nonce), 5000),
    )
    .await;
    wait_status(&v, early, AdmissionStatus::Admitted, "early peer admitted").await;
    wait_status(&a, validator, AdmissionStatus::Exempt, "validator exempt").await;
    lifecycle(&mut v);
    lifecycle(&mut a);

    v.net.set_admission_difficulty(HIGH);
    wait_difficulty(&v, HIGH).await;

    // The late peer's proof is good for LOW bits but not for HIGH, and is what its pow file
    // holds (as after a start on a chain state that still said LOW).
    let stale = (0..u64::MAX)
        .find(|n| (LOW..HIGH).contains(&admission::proof_bits(&GENESIS, &late, *n)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pow_file = dir.path().join(admission::POW_FILE);
    admission::store(&pow_file, &GENESIS, &late, LOW, stale).unwrap();
    let mut adm_b = admission_at(LOW, &[validator], Some(stale), 5000);
    adm_b.pow_file = Some(pow_file.clone());
    let started = Instant::now();
    let b = Node::start_redialing(kb, &[&v], adm_b).await;
    wait_status(
        &v,
        late,
        AdmissionStatus::Admitted,
        "late peer admitted after re-solving",
    )
    .await;
    println!(
        "stale proof refused, solved again and admitted after {:?}",
        started.elapsed()
    );

    assert!(
        v.net.stats().peers_refused >= 1,
        "the stale proof was refused first"
    );
    assert_eq!(v.net.stats().peers_admitted, 2);
    assert_eq!(
        b.net.stats().admission_proofs_solved,
        1,
        "exactly one solve"
    );
    let info = b.net.admission_info().await.unwrap();
    assert!(
        info.own_proof_bits.is_some_and(|bits| bits >= HIGH),
        "{info:?}"
    );
    assert_eq!(info.solving_bits, None);
    assert_eq!(
        info.difficulty_bits, LOW,
        "what b requires is its own chain's business"
    );
    let stored = admission::load(&pow_file, &GENESIS, &late, HIGH).expect("new proof stored");
    assert!(admission::verify(&GENESIS, &late, stored, HIGH));

    // The early peer never left.
    assert_eq!(v.status_of(early).await, Some(AdmissionStatus::Admitted));
    assert_eq!(a.status_of(validator).await, Some(AdmissionStatus::Exempt));
    let (connected, disconnected) = lifecycle(&mut v);
    assert_eq!(
        connected,
        vec![late],
        "only the late peer is announced, once admitted"
    );
    assert!(
        !disconnected.contains(&early),
        "the early peer stayed connected"
    );
    let (_, disconnected) = lifecycle(&mut a);
    assert!(
        disconnected.is_empty(),
        "the early peer kept its connection"
    );
    for node in [b, a, v] {
        node.net.shutdown().await;
    }
}

/// Admission off, on, off at runtime: peers connected while it was off stay; a new peer
/// without a proof sends the empty one, is refused with the required bits, solves and is
/// admitted on its redial; when admission is turned off again a pending peer is admitted at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_turned_on_and_off_at_runtime() {
    const ON: u8 = 6;
    let (kv, validator) = keypair_and_id();
    let (ka, before) = keypair_and_id();
    let (kc, joiner) = keypair_refused_at(ON);
    let (kp, pending) = keypair_and_id();
    let mut v = Node::start(kv, &[], admission_at(0, &[validator], None, 30_000)).await;
    let a = Node::start(ka, &[&v], admission_at(0, &[validator], None, 30_000)).await;
    wait_status(
        &v,
        before,
        AdmissionStatus::Disabled,
        "peer connected while off",
    )
    .await;

    v.net.set_admission_difficulty(ON);
    wait_difficulty(&v, ON).await;
    lifecycle(&mut v);

    // The joiner's chain view still says 0: it has no proof and sends nonce 0.
    let joined = Instant::now();
    let c = Node::start_redialing(kc, &[&v], admission_at(0, &[validator], None, 30_000)).await;
    wait_status(
        &v,
        joiner,
        AdmissionStatus::Admitted,
        "joiner admitted after solving",
    )
    .await;
    println!(
        "empty proof refused, solved and admitted after {:?}",
        joined.elapsed()
    );
    assert!(
        v.net.stats().peers_refused >= 1,
        "the empty proof was refused first"
    );
    assert_eq!(c.net.stats().admission_proofs_solved, 1);
    let info = c.net.admission_info().await.unwrap();
    assert!(info.own_proof_bits.is_some_and(|b| b >= ON), "{info:?}");
    assert_eq!(v.status_of(before).await, Some(AdmissionStatus::Disabled));

    // A peer that does not prove (its chain requires ON bits, it has no proof) waits.
    let p = Node::start(kp, &[&v], admission_at(ON, &[validator], None, 30_000)).await;
    wait_status(&v, pending, AdmissionStatus::Pending, "pending peer").await;
    let (connected, _) = lifecycle(&mut v);
    assert!(!connected.contains(&pending));

    let off = Instant::now();
    v.net.set_admission_difficulty(0);
    wait_status(
        &v,
        pending,
        AdmissionStatus::Disabled,
        "pending peer admitted at once",
    )
    .await;
    println!(
        "pending peer admitted {:?} after admission was turned off",
        off.elapsed()
    );
    let (connected, disconnected) = lifecycle(&mut v);
    assert_eq!(connected, vec![pending], "announced once admitted");
    assert!(disconnected.is_empty(), "{disconnected:?}");
    assert_eq!(v.status_of(before).await, Some(AdmissionStatus::Disabled));
    assert_eq!(v.status_of(joiner).await, Some(AdmissionStatus::Admitted));
    for node in [p, c, a, v] {
        node.net.shutdown().await;
    }
}

/// Only validators and bootstrap peers can make a node solve: a refusal demanding 30 bits
/// from a peer that is neither starts nothing (counted), while a validator's demand for 8
/// bits is solved once, after which that validator admits the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_validators_and_bootstrap_peers_can_make_a_node_solve() {
    const OWN: u8 = 4;
    const LIAR: u8 = 30;
    const HIGH: u8 = 8;
    let (kb, node) = keypair_and_id();
    let (kx, _liar) = keypair_and_id();
    let (kw, validator) = keypair_and_id();
    let nonce = (0..u64::MAX)
        .find(|n| (OWN..HIGH).contains(&admission::proof_bits(&GENESIS, &node, *n)))
        .unwrap();
    let b = Node::start(
        kb,
        &[],
        admission_at(OWN, &[validator], Some(nonce), 30_000),
    )
    .await;
    // The liar dials b (so it is not b's bootstrap peer) and requires 30 bits of it.
    let x = Node::start(kx, &[&b], admission_at(LIAR, &[validator], None, 30_000)).await;
    let start = Instant::now();
    while b.net.stats().admission_claims_ignored == 0 {
        assert!(start.elapsed() < WAIT, "the liar's refusal never arrived");
        sleep(Duration::from_millis(50)).await;
    }
    println!(
        "untrusted 30-bit demand ignored after {:?}",
        start.elapsed()
    );
    let info = b.net.admission_info().await.unwrap();
    assert_eq!(
        info.solving_bits, None,
        "no solve for an untrusted demand: {info:?}"
    );
    assert_eq!(b.net.stats().admission_proofs_solved, 0);
    assert_eq!(
        info.own_proof_bits,
        Some(admission::proof_bits(&GENESIS, &node, nonce))
    );

    // A validator (exempt at b, though not its bootstrap peer) requiring 8 bits.
    let asked = Instant::now();
    let w = Node::start_redialing(kw, &[&b], admission_at(HIGH, &[validator], None, 30_000)).await;
    wait_status(
        &w,
        node,
        AdmissionStatus::Admitted,
        "b admitted by the validator",
    )
    .await;
    println!(
        "validator's 8-bit demand solved and b admitted after {:?}",
        asked.elapsed()
    );
    assert_eq!(b.net.stats().admission_proofs_solved, 1);
    assert!(w.net.stats().peers_refused >= 1);
    let info = b.net.admission_info().await.unwrap();
    assert!(
        info.own_proof_bits.is_some_and(|bits| bits >= HIGH),
        "{info:?}"
    );
    for n in [w, x, b] {
        n.net.shutdown().await;
    }
}

/// A node with `solve_on_demand: false` keeps its proof when even a validator demands more:
/// nothing is solved and the validator's refusal stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_solve_on_demand_keeps_its_proof_and_stays_refused() {
    const OWN: u8 = 4;
    const HIGH: u8 = 8;
    let (kb, node) = keypair_and_id();
    let (kw, validator) = keypair_and_id();
    let nonce = (0..u64::MAX)
        .find(|n| (OWN..HIGH).contains(&admission::proof_bits(&GENESIS, &node, *n)))
        .unwrap();
    let b = Node::start(
        kb,
        &[],
        AdmissionConfig {
            solve_on_demand: false,
            ..admission_at(OWN, &[validator], Some(nonce), 30_000)
        },
    )
    .await;
    let w = Node::start(kw, &[&b], admission_at(HIGH, &[validator], None, 30_000)).await;
    let start = Instant::now();
    while w.net.stats().peers_refused == 0 {
        assert!(
            start.elapsed() < WAIT,
            "the validator never refused b's 4-bit proof"
        );
        sleep(Duration::from_millis(50)).await;
    }
    // The refusal (demanding 8 bits) reaches b at once; a solve for 8 bits takes
    // milliseconds, so one second is ample time for a node that solves on demand to have
    // solved (only_validators_and_bootstrap_peers_can_make_a_node_solve shows it does).
    sleep(Duration::from_secs(1)).await;
    let info = b.net.admission_info().await.unwrap();
    assert_eq!(info.solving_bits, None, "no solve: {info:?}");
    assert_eq!(b.net.stats().admission_proofs_solved, 0);
    assert_eq!(
        info.own_proof_bits,
        Some(admission::proof_bits(&GENESIS, &node, nonce))
    );
    for n in [w, b] {
        n.net.shutdown().await;
    }
}

/// Waits (bounded) until `node` no longer has `peer` connected.
async fn wait_gone(node: &Node, peer: PeerId, what: &str) {
    let start = Instant::now();
    while let Some(status) = node.status_of(peer).await {
        assert!(
            start.elapsed() < WAIT,
            "{what}: still connected, {status:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// A validator removed by governance loses its exemption (`NetworkHandle::exempt` with the
/// new set, which lacks it): a peer let in as exempt that sent a valid proof is admitted at
/// once and keeps its connection; one without a proof becomes pending (the application is
/// told it is gone), is refused at the admission deadline and disconnected, and is not
/// banned. The node's own static exemption stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_leave_the_validator_set_must_prove_or_are_disconnected() {
    const DEADLINE_MS: u64 = 1500;
    let (kv, validator) = keypair_and_id();
    let (kp, proven) = keypair_and_id();
    let (kn, unproven) = keypair_and_id();
    let mut v = Node::start(kv, &[], admission(&[validator], None, DEADLINE_MS)).await;
    // Both joined the set before they connect (as after an epoch change).
    v.net.exempt(vec![validator, proven, unproven]);
    v.net.admission_info().await.expect("exemptions applied");
    // Neither is exempt in its own view: `proven` sends its proof on connecting, `unproven`
    // (no proof, admission on) sends nothing.
    let p_nonce = admission::solve(&GENESIS, &proven, BITS).unwrap();
    let p = Node::start(
        kp,
        &[&v],
        admission(&[validator], Some(p_nonce), DEADLINE_MS),
    )
    .await;
    let kn_bytes = kn.to_protobuf_encoding().unwrap();
    let n = Node::start(kn, &[&v], admission(&[validator], None, DEADLINE_MS)).await;
    wait_status(&v, proven, AdmissionStatus::Exempt, "proven peer exempt").await;
    wait_status(
        &v,
        unproven,
        AdmissionStatus::Exempt,
        "unproven peer exempt",
    )
    .await;
    wait_status(&p, validator, AdmissionStatus::Exempt, "validator exempt").await;
    // The proven peer sent its proof on connecting: one round trip on loopback.
    sleep(Duration::from_millis(500)).await;
    let (connected, _) = lifecycle(&mut v);
    assert_eq!(
        connected.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([proven, unproven]),
        "both announced as exempt"
    );
    assert_eq!(v.net.stats().peers_admitted, 0, "exempt, not admitted");

    // The next epoch's set has neither.
    let withdrawn = Instant::now();
    v.net.exempt(vec![validator]);
    wait_status(
        &v,
        proven,
        AdmissionStatus::Admitted,
        "a proven peer is admitted when it loses its exemption",
    )
    .await;
    wait_status(
        &v,
        unproven,
        AdmissionStatus::Pending,
        "an unproven peer must prove when it loses its exemption",
    )
    .await;
    let (connected, disconnected) = lifecycle(&mut v);
    assert!(connected.is_empty(), "{connected:?}");
    assert_eq!(
        disconnected,
        vec![unproven],
        "the application is told the pending peer is gone"
    );

    // Past the deadline (from the withdrawal) the unproven peer is refused and disconnected.
    wait_gone(&v, unproven, "the unproven peer past the deadline").await;
    let gone = withdrawn.elapsed();
    println!("un-exempted peer without a proof disconnected {gone:?} after the withdrawal");
    assert!(
        gone >= Duration::from_millis(DEADLINE_MS),
        "disconnected before the deadline: {gone:?}"
    );
    assert_eq!(v.net.stats().peers_refused, 1);
    assert_eq!(
        v.net.stats().peers_banned,
        0,
        "losing an exemption is no fault"
    );
    assert_eq!(v.net.stats().connections_refused_banned, 0);
    // The proven peer kept its connection and status all along; the validator its own.
    assert_eq!(v.status_of(proven).await, Some(AdmissionStatus::Admitted));
    assert_eq!(p.status_of(validator).await, Some(AdmissionStatus::Exempt));
    let (_, disconnected) = lifecycle(&mut v);
    assert!(!disconnected.contains(&proven), "{disconnected:?}");
    // Not banned: the same identity with a valid proof is admitted on its next connection.
    n.net.shutdown().await;
    let kn = Keypair::from_protobuf_encoding(&kn_bytes).unwrap();
    let n_nonce = admission::solve(&GENESIS, &unproven, BITS).unwrap();
    let n = Node::start(
        kn,
        &[&v],
        admission(&[validator], Some(n_nonce), DEADLINE_MS),
    )
    .await;
    wait_status(
        &v,
        unproven,
        AdmissionStatus::Admitted,
        "the un-exempted peer, back with a proof",
    )
    .await;
    for node in [n, p, v] {
        node.net.shutdown().await;
    }
}

/// This node is the validator removed: exempt in its own view and its peer's (no proof, as
/// validators solve nothing), it loses the exemption on both sides (each applies the new set
/// at its epoch start), solves for the difficulty in force, sends the proof and is admitted
/// on the same connection, which it keeps past the admission deadline: a removed validator
/// goes on as a connected full node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_from_the_validator_set_proves_and_stays_connected() {
    const DEADLINE_MS: u64 = 3000;
    let (kv, validator) = keypair_and_id();
    let (kr, removed) = keypair_and_id();
    let mut v = Node::start(kv, &[], admission(&[validator], None, DEADLINE_MS)).await;
    v.net.exempt(vec![validator, removed]);
    v.net.admission_info().await.expect("exemptions applied");
    let r = Node::start(kr, &[&v], admission(&[validator], None, DEADLINE_MS)).await;
    r.net.exempt(vec![validator, removed]);
    wait_status(
        &v,
        removed,
        AdmissionStatus::Exempt,
        "validator r exempt at v",
    )
    .await;
    wait_status(&r, validator, AdmissionStatus::Exempt, "v exempt at r").await;
    sleep(Duration::from_millis(300)).await;
    assert_eq!(
        r.net.stats().admission_proofs_solved,
        0,
        "validators solve nothing"
    );
    lifecycle(&mut v);

    // The next epoch's set lacks r: its peer applies that first, then r itself.
    let removed_at = Instant::now();
    v.net.exempt(vec![validator]);
    wait_status(&v, removed, AdmissionStatus::Pending, "r must prove at v").await;
    r.net.exempt(vec![validator]);
    wait_status(
        &v,
        removed,
        AdmissionStatus::Admitted,
        "r admitted with the proof it solved",
    )
    .await;
    println!(
        "removed validator solved, proved and was admitted {:?} after the set change",
        removed_at.elapsed()
    );
    assert_eq!(r.net.stats().admission_proofs_solved, 1);
    let info = r.net.admission_info().await.unwrap();
    assert!(info.own_proof_bits.is_some_and(|b| b >= BITS), "{info:?}");
    // Still connected past the deadline, on the same connection (announced once more at v
    // when admitted, never disconnected at r).
    sleep(Duration::from_millis(DEADLINE_MS + 500)).await;
    assert_eq!(v.status_of(removed).await, Some(AdmissionStatus::Admitted));
    assert_eq!(r.status_of(validator).await, Some(AdmissionStatus::Exempt));
    assert_eq!(v.net.stats().peers_refused, 0);
    let (connected, disconnected) = lifecycle(&mut v);
    assert_eq!(connected, vec![removed], "announced again once admitted");
    assert_eq!(disconnected, vec![removed], "gone while it had to prove");
    for node in [r, v] {
        node.net.shutdown().await;
    }
}
