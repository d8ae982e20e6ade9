//! Node-level integration tests of peer admission and reputation: real `cairn-node` nodes
//! (`node::run`, each on its own Tokio runtime and RocksDB home, like separate processes) form
//! a 4-validator testnet on loopback (127.0.0.1) with genesis `admission_difficulty_bits` = 8,
//! and raw libp2p peers (`network::spawn_with_admission`) play the honest full node's
//! counterparts, the unproven or wrongly proven peers, the invalid-transaction flooder and
//! the Sybil identities.
//!
//! Every wait is bounded by [`WAIT`]; the tests in this file run one at a time (a shared
//! lock) so that the finalization-rate measurement is not disturbed by the others. The Sybil
//! test measures finalized heights per second at validator 0 under its own load (a steady
//! stream of transfers, [`LOAD_TX_PER_S`]) over two 8 s windows, without and with the flood.
//!
//! `cargo test -p cairn-node --test sybil -- --nocapture` prints the measured figures.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use cairn_genesis::{ChainParams, Genesis, GenesisAccount, GenesisValidator};
use cairn_ledger::Store;
use cairn_node::admission;
use cairn_node::config::NodeConfig;
use cairn_node::keys;
use cairn_node::network::{self, AdmissionConfig, NetworkConfig, NetworkEvent, NetworkHandle};
use cairn_node::node::BAN_KEY_PREFIX;
use cairn_rpc::RpcClient;
use common::cluster::{self, Cluster, Homes};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, sleep, timeout};

/// Upper bound of every "eventually" wait.
const WAIT: Duration = Duration::from_secs(40);
/// Poll step of every wait.
const POLL: Duration = Duration::from_millis(100);
/// Genesis admission difficulty (small so that the tests are fast).
const BITS: u8 = 8;
const VALIDATORS: usize = 4;
/// Admission deadline of the validators in these tests, ms.
const DEADLINE_MS: u64 = 2000;

/// The tests of this file run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A generated loopback testnet: `VALIDATORS` validators and `full` full nodes (the
/// shared [`Cluster`], which it derefs to) and the funded account.
struct Testnet {
    cluster: Cluster,
    /// The funded genesis account's key file.
    account_key: PathBuf,
}

impl std::ops::Deref for Testnet {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for Testnet {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

impl Testnet {
    /// Generates the homes; `tweak` adjusts every node's configuration.
    fn generate(full: usize, tweak: impl Fn(&mut NodeConfig)) -> Testnet {
        let homes = Homes::generate(VALIDATORS + full, VALIDATORS, |config| {
            config.p2p.admission_deadline_ms = DEADLINE_MS;
            tweak(config);
        });
        let validators = (0..VALIDATORS)
            .map(|i| GenesisValidator {
                name: format!("validator-{i}"),
                consensus_key: homes.validator_addresses[i],
                peer_id: homes.peer_ids[i].to_string(),
                voting_power: 1,
            })
            .collect();
        let account_key = homes.dir().join("account.json");
        let account = keys::write_validator_key(&account_key, keys::random_seed()).unwrap();
        let genesis = Genesis {
            chain_id: "cairn-admission".into(),
            genesis_time_ms: cluster::now_ms(),
            validators,
            accounts: vec![GenesisAccount {
                address: account,
                balance: 1_000_000,
            }],
            params: ChainParams {
                admission_difficulty_bits: BITS,
                ..cluster::fast_params()
            },
            governance: Default::default(),
            generated_accounts: None,
        };
        Testnet {
            cluster: homes.with_genesis(genesis, WAIT),
            account_key,
        }
    }

    /// One Prometheus sample of node `i` (0 if absent or unreachable).
    async fn metric(&self, i: usize, name: &str) -> f64 {
        let Ok(Ok(mut stream)) = timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(self.rpc_addrs[i]),
        )
        .await
        else {
            return 0.0;
        };
        let request = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
        if stream.write_all(request.as_bytes()).await.is_err() {
            return 0.0;
        }
        let mut body = String::new();
        let _ = timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await;
        body.lines()
            .find_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next() == Some(name))
                    .then(|| parts.next().and_then(|v| v.parse().ok()))
                    .flatten()
            })
            .unwrap_or(0.0)
    }

    /// The `getPeers` entry of `peer` at node `i`, if connected.
    async fn peer_at(&self, i: usize, peer: &PeerId) -> Option<cairn_rpc::PeerInfo> {
        let peers = self.rpc[i].peers().await.ok()?;
        peers.into_iter().find(|p| p.peer_id == peer.to_string())
    }

    /// A raw network peer of this chain: `nonce` is its admission proof (or `None`),
    /// dialing `bootstrap`; `redial_ms` between redials.
    async fn raw_peer(
        &self,
        keypair: Keypair,
        nonce: Option<u64>,
        bootstrap: &[usize],
        redial_ms: u64,
    ) -> RawPeer {
        let genesis_hash = self.genesis.hash();
        let config = NetworkConfig {
            keypair,
            listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            bootstrap: bootstrap.iter().map(|i| self.addrs[*i].clone()).collect(),
            namespace: genesis_hash.to_hex()[..16].to_string(),
            gossip_bytes_max: 64 * 1024,
            sync_request_bytes_max: 1024,
            sync_response_bytes_max: 64 * 1024,
            sync_request_timeout_ms: 3000,
            event_queue_max: 4096,
            command_queue_max: 64,
            redial_interval_ms: redial_ms,
            connections_max: 64,
            discovery: cairn_node::network::DiscoveryConfig::disabled(),
            nat: network::NatConfig::disabled(),
            // These peers model attackers, who do not pace themselves.
            request_pacing: network::pacer::RequestPacing {
                requests_per_sec: 1_000_000,
                burst: 1_000_000,
            },
        };
        let adm = AdmissionConfig {
            difficulty_bits: BITS,
            genesis_hash: genesis_hash.0,
            exempt: self.peer_ids[..VALIDATORS].iter().copied().collect(),
            own_nonce: nonce,
            // These peers model Sybils: they keep the proof they were given (a wrong or
            // foreign one stays wrong). With solving on demand, a peer refused by the first
            // validator would solve a valid proof in milliseconds and send it to validators
            // that had not yet answered (or connected), which would then rightly admit it.
            solve_on_demand: false,
            deadline_ms: 60_000,
            ..AdmissionConfig::disabled()
        };
        let (net, events) = timeout(WAIT, network::spawn_with_admission(config, adm))
            .await
            .expect("spawn timed out")
            .expect("spawn");
        RawPeer {
            net,
            events,
            gossip: 0,
        }
    }

    fn genesis_hash(&self) -> [u8; 32] {
        self.genesis.hash().0
    }
}

/// A raw libp2p peer (network layer only).
struct RawPeer {
    net: NetworkHandle,
    events: Receiver<NetworkEvent>,
    /// Gossip messages received so far.
    gossip: usize,
}

impl RawPeer {
    fn id(&self) -> PeerId {
        self.net.local_peer_id()
    }

    /// Drains pending events, counting gossip.
    fn drain(&mut self) -> usize {
        for _ in 0..100_000 {
            match self.events.try_recv() {
                Ok(NetworkEvent::Gossip { .. }) => self.gossip += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.gossip
    }
}

fn keypair_and_id() -> (Keypair, PeerId) {
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id();
    (k, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_node_with_a_valid_proof_joins_a_4_validator_testnet_and_follows_the_chain() {
    let _serial = SERIAL.lock().await;
    let mut net = Testnet::generate(1, |_| {});
    let full = VALIDATORS;
    net.start_all();
    net.wait_height(0, 3).await;
    // The full node solved its proof at start (8 bits) and stored it.
    assert!(net.homes[full].join(admission::POW_FILE).is_file());
    let nonce = admission::load_or_solve(
        &net.homes[full].join(admission::POW_FILE),
        &net.genesis_hash(),
        &net.peer_ids[full],
        BITS,
    )
    .unwrap();
    assert!(nonce.is_some());

    // It follows the chain: reaches the validators' height and keeps up.
    let target = net.height(0).await.unwrap() + 3;
    net.wait_height(full, target).await;
    let h_full = net.height(full).await.unwrap();
    let h_val = net.height(0).await.unwrap();
    println!("full node at height {h_full}, validator 0 at {h_val}");

    // Every validator shows it as an admitted non-validator; it shows them as exempt
    // validators.
    for v in 0..VALIDATORS {
        let start = Instant::now();
        let entry = loop {
            if let Some(p) = net.peer_at(v, &net.peer_ids[full]).await {
                if p.admission.as_deref() == Some("admitted") {
                    break p;
                }
            }
            assert!(
                start.elapsed() < WAIT,
                "validator {v} does not show the full node admitted"
            );
            sleep(POLL).await;
        };
        assert!(!entry.is_validator);
        let score = entry.score.expect("score known");
        assert!(score > -10.0, "admitted full node penalized: {score}");
        let seen = net
            .peer_at(full, &net.peer_ids[v])
            .await
            .expect("connected");
        assert_eq!(seen.admission.as_deref(), Some("exempt"));
        assert!(seen.is_validator);
        assert!(net.metric(v, "cairn_peers_admitted_total").await >= 1.0);
    }
    let refused: f64 = net.metric(0, "cairn_peers_refused_total").await;
    assert_eq!(refused, 0.0);
    // And keeps following.
    net.wait_height(full, h_val + 5).await;
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_without_wrong_or_foreign_proofs_are_refused_within_the_deadline_and_get_no_gossip() {
    let _serial = SERIAL.lock().await;
    let mut net = Testnet::generate(0, |_| {});
    net.start_all();
    net.wait_height(0, 2).await;
    let genesis = net.genesis_hash();
    let mut other = genesis;
    other[0] ^= 0xff;

    let (kn, none) = keypair_and_id();
    let (kw, wrong) = keypair_and_id();
    let (ko, foreign) = keypair_and_id();
    let (kh, honest) = keypair_and_id();
    let wrong_nonce = (0..100_000u64)
        .find(|n| !admission::verify(&genesis, &wrong, *n, BITS))
        .unwrap();
    let foreign_nonce = (0..(64u64 << 16))
        .find(|n| {
            admission::verify(&other, &foreign, *n, BITS)
                && !admission::verify(&genesis, &foreign, *n, BITS)
        })
        .unwrap();
    let honest_nonce = admission::solve(&genesis, &honest, BITS).unwrap();
    // They dial every validator once (no redial).
    let all: Vec<usize> = (0..VALIDATORS).collect();
    let started = Instant::now();
    let mut bad = vec![
        net.raw_peer(kn, None, &all, 600_000).await,
        net.raw_peer(kw, Some(wrong_nonce), &all, 600_000).await,
        net.raw_peer(ko, Some(foreign_nonce), &all, 600_000).await,
    ];
    // The positive control: a peer with a valid proof gets the chain's gossip.
    let mut control = net.raw_peer(kh, Some(honest_nonce), &all, 600_000).await;

    let mut wrong_gone = None;
    let mut none_gone = None;
    while wrong_gone.is_none() || none_gone.is_none() {
        assert!(
            started.elapsed() < WAIT,
            "not refused: wrong/foreign after {wrong_gone:?}, none after {none_gone:?}"
        );
        let mut connected = [false; 3];
        for v in 0..VALIDATORS {
            for (k, id) in [none, wrong, foreign].iter().enumerate() {
                connected[k] |= net.peer_at(v, id).await.is_some();
            }
        }
        if wrong_gone.is_none() && !connected[1] && !connected[2] {
            wrong_gone = Some(started.elapsed());
        }
        if none_gone.is_none() && !connected[0] {
            none_gone = Some(started.elapsed());
        }
        sleep(POLL).await;
    }
    let (wrong_gone, none_gone) = (wrong_gone.unwrap(), none_gone.unwrap());
    println!(
        "wrong/foreign proofs gone from every validator after {wrong_gone:?}; no proof after {none_gone:?} (deadline {DEADLINE_MS} ms)"
    );
    assert!(
        wrong_gone < Duration::from_millis(DEADLINE_MS),
        "a wrong proof is refused on receipt, before the deadline"
    );
    assert!(
        none_gone >= Duration::from_millis(DEADLINE_MS - 500)
            && none_gone <= Duration::from_millis(DEADLINE_MS + 2000),
        "a missing proof is refused at the deadline: {none_gone:?}"
    );
    let mut refused = 0.0;
    for v in 0..VALIDATORS {
        refused += net.metric(v, "cairn_peers_refused_total").await;
    }
    assert_eq!(refused, 12.0, "3 peers refused by each of 4 validators");

    // The control is admitted and receives consensus gossip; the refused peers got none.
    let start = Instant::now();
    while control.drain() == 0 {
        assert!(
            start.elapsed() < WAIT,
            "the admitted control peer got no gossip"
        );
        sleep(POLL).await;
    }
    for p in &mut bad {
        assert_eq!(p.drain(), 0, "refused peer {} received gossip", p.id());
        assert!(
            p.net.peers().await.is_empty(),
            "refused peer still connected"
        );
    }
    println!("control peer received {} gossip messages", control.gossip);
    for p in bad.into_iter().chain([control]) {
        p.net.shutdown().await;
    }
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_transaction_flooder_is_banned_and_stays_banned_after_the_victim_restarts() {
    let _serial = SERIAL.lock().await;
    let mut net = Testnet::generate(0, |_| {});
    net.start_all();
    net.wait_height(0, 2).await;
    let genesis = net.genesis_hash();
    let (kf, flooder) = keypair_and_id();
    let nonce = admission::solve(&genesis, &flooder, BITS).unwrap();
    // The flooder dials only the victim (validator 0), and redials quickly.
    let mut f = net.raw_peer(kf, Some(nonce), &[0], 200).await;

    // Malformed transactions: a stateless failure, rejected by the victim's driver.
    let start = Instant::now();
    let mut sent = 0u32;
    while net.metric(0, "cairn_peers_banned_total").await < 1.0 {
        assert!(
            start.elapsed() < WAIT,
            "flooder not banned after {sent} invalid transactions"
        );
        for _ in 0..5 {
            sent += 1;
            let _ = f
                .net
                .publish(
                    network::Topic::Transactions,
                    format!("not a transaction {sent}").into_bytes(),
                )
                .await;
        }
        sleep(Duration::from_millis(50)).await;
    }
    println!(
        "flooder banned after {:?} and {sent} invalid transactions published",
        start.elapsed()
    );
    let start = Instant::now();
    while net.peer_at(0, &flooder).await.is_some() {
        assert!(start.elapsed() < WAIT, "banned flooder still connected");
        sleep(POLL).await;
    }

    // Restart the victim; the ban is in its RocksDB.
    net.stop(0).await;
    {
        let store = Store::open(
            &NodeConfig::resolve(&net.homes[0], &net.configs[0].db_dir),
            net.genesis.hash(),
        )
        .unwrap();
        let bans = store.meta_scan(BAN_KEY_PREFIX, 16).unwrap();
        assert!(
            bans.iter()
                .any(|(k, _)| *k == format!("{BAN_KEY_PREFIX}{flooder}")),
            "ban not persisted: {bans:?}"
        );
    }
    net.start(0);
    let h = net.height(1).await.unwrap();
    net.wait_height(0, h + 2).await;

    // The flooder keeps redialing (every 200 ms) and never gets back in; a fresh honest
    // peer does (the positive control).
    let (kh, honest) = keypair_and_id();
    let honest_nonce = admission::solve(&genesis, &honest, BITS).unwrap();
    let control = net.raw_peer(kh, Some(honest_nonce), &[0], 200).await;
    let observe = Instant::now();
    let mut control_admitted = false;
    while observe.elapsed() < Duration::from_secs(4) || !control_admitted {
        assert!(
            observe.elapsed() < WAIT,
            "control peer not admitted after restart"
        );
        assert!(
            net.peer_at(0, &flooder).await.is_none(),
            "banned flooder got back in after the restart"
        );
        control_admitted |= net
            .peer_at(0, &honest)
            .await
            .is_some_and(|p| p.admission.as_deref() == Some("admitted"));
        sleep(POLL).await;
    }
    f.drain();
    println!(
        "flooder stayed out for {:?} after the restart",
        observe.elapsed()
    );
    control.net.shutdown().await;
    f.net.shutdown().await;
    net.stop_all().await;
}

/// Transfers per second submitted by [`spawn_load`].
const LOAD_TX_PER_S: u64 = 20;

/// Submits transfers of 1 unit from the funded genesis account at [`LOAD_TX_PER_S`], round
/// robin over the validators, until `stop` turns true; returns (accepted, refused).
fn spawn_load(
    net: &Testnet,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    let key = keys::read_validator_key(&net.account_key).unwrap();
    let sender = cairn_ledger::Address::from_public_key(&key.verifying_key());
    let chain_id = net.genesis.chain_id.clone();
    let clients: Vec<RpcClient> = net.rpc_addrs[..VALIDATORS]
        .iter()
        .map(|a| RpcClient::with_timeout(&format!("http://{a}"), Duration::from_secs(2)).unwrap())
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / LOAD_TX_PER_S));
        let (mut nonce, mut accepted, mut refused) = (0u64, 0u64, 0u64);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return (accepted, refused),
            }
            let tx = cairn_ledger::TransactionBody {
                chain_id: chain_id.clone(),
                sender,
                fee: 1,
                nonce,
                expiry_height: 1_000_000,
                action: cairn_ledger::Action::Transfer {
                    recipient: cairn_ledger::Address([7; 32]),
                    amount: 1,
                },
            }
            .sign(&key);
            match clients[nonce as usize % clients.len()]
                .send_transaction(&tx)
                .await
            {
                Ok(_) => {
                    accepted += 1;
                    nonce += 1;
                }
                // Retried with the same nonce at the next tick.
                Err(_) => refused += 1,
            }
        }
    })
}

/// Finalized heights per second at validator 0 over `window`.
async fn finalization_rate(net: &Testnet, window: Duration) -> f64 {
    let h0 = net.height(0).await.expect("validator 0 answers");
    let t0 = Instant::now();
    // The measurement window itself; not a synchronisation.
    sleep(window).await;
    let h1 = net.height(0).await.expect("validator 0 answers");
    (h1.saturating_sub(h0)) as f64 / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_sybils_without_proofs_do_not_slow_finalization() {
    const SYBILS: usize = 100;
    const WINDOW: Duration = Duration::from_secs(8);
    let _serial = SERIAL.lock().await;
    // The default admission deadline (5 s) keeps the Sybils pending for most of the window.
    let mut net = Testnet::generate(0, |c| {
        c.p2p.admission_deadline_ms = NodeConfig::default().p2p.admission_deadline_ms
    });
    net.start_all();
    net.wait_height(0, 3).await;
    // The test's load: a steady stream of transfers through both windows.
    let (stop_load, load_stopped) = tokio::sync::watch::channel(false);
    let load = spawn_load(&net, load_stopped);
    let tx0 = net.metric(0, "cairn_txs_finalized_total").await;
    let baseline = finalization_rate(&net, WINDOW).await;
    let tx1 = net.metric(0, "cairn_txs_finalized_total").await;

    // 100 fresh identities without proofs dial the validators (25 each) at once.
    let spawned = Instant::now();
    let sybils = futures::future::join_all((0..SYBILS).map(|k| {
        let net = &net;
        async move {
            net.raw_peer(
                Keypair::generate_ed25519(),
                None,
                &[k % VALIDATORS],
                600_000,
            )
            .await
        }
    }))
    .await;
    let spawn_time = spawned.elapsed();
    let flood = finalization_rate(&net, WINDOW).await;
    let tx2 = net.metric(0, "cairn_txs_finalized_total").await;
    let _ = stop_load.send(true);
    let (accepted, refused_txs) = load.await.unwrap();
    println!(
        "finalization rate at validator 0 over {WINDOW:?}: {baseline:.2} heights/s without flood, \
         {flood:.2} heights/s with {SYBILS} unproven identities (spawned in {spawn_time:?}); \
         ratio {:.2}. Load {LOAD_TX_PER_S} transfers/s: {} then {} finalized per window \
         ({accepted} accepted, {refused_txs} refused submissions)",
        flood / baseline,
        tx1 - tx0,
        tx2 - tx1
    );
    assert!(accepted > 0, "the load submitted nothing");
    assert!(
        baseline > 0.0,
        "the testnet did not finalize without the flood"
    );
    assert!(
        flood >= 0.8 * baseline,
        "the flood slowed finalization by more than 20%: {flood:.2} vs {baseline:.2} heights/s"
    );

    // Every Sybil ends disconnected from every validator without having received gossip.
    let mut sybils = sybils;
    let start = Instant::now();
    for s in &mut sybils {
        while !s.net.peers().await.is_empty() {
            assert!(start.elapsed() < WAIT, "a Sybil is still connected");
            sleep(POLL).await;
        }
        assert_eq!(s.drain(), 0, "a Sybil received gossip");
    }
    let mut refused = 0.0;
    for v in 0..VALIDATORS {
        refused += net.metric(v, "cairn_peers_refused_total").await;
        assert_eq!(net.metric(v, "cairn_peers_admitted_total").await, 0.0);
    }
    println!(
        "{refused} Sybil connections refused at the admission deadline (the rest closed by the \
         per-IP limit of {} on arrival)",
        NodeConfig::default().p2p.connections_per_ip_max
    );
    assert!(refused >= 1.0);
    for s in sybils {
        s.net.shutdown().await;
    }
    net.stop_all().await;
}

/// An admitted peer floods validator 0 with sync range requests (32 at a time, each asking
/// for 1,024 blocks, as fast as answers come back) in two of four alternating measurement
/// windows. The requests are served on the sync server's task under the per-peer rate limit,
/// never on the driver, so validator 0's finalization rate in the flooded windows stays
/// within 10% of its rate in the windows without the flood, and the flooder is refused (`rate limited`) and penalized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_request_flood_does_not_slow_finalization() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use cairn_node::sync::{SyncRequest, SyncResponse};

    // Four windows, alternating without and with the flood (A B A B), so that a change of
    // the shared machine's background load during the test biases neither side.
    const WINDOW: Duration = Duration::from_secs(4);
    const CONCURRENT: usize = 32;
    let _serial = SERIAL.lock().await;
    let mut net = Testnet::generate(0, |_| {});
    net.start_all();
    net.wait_height(0, 3).await;
    let (stop_load, load_stopped) = tokio::sync::watch::channel(false);
    let load = spawn_load(&net, load_stopped);
    let (kf, flooder) = keypair_and_id();
    let nonce = admission::solve(&net.genesis_hash(), &flooder, BITS).unwrap();
    let f = net.raw_peer(kf, Some(nonce), &[0], 200).await;
    let start = Instant::now();
    while net
        .peer_at(0, &flooder)
        .await
        .is_none_or(|p| p.admission.as_deref() != Some("admitted"))
    {
        assert!(start.elapsed() < WAIT, "flooder not admitted");
        sleep(POLL).await;
    }
    let victim = net.peer_ids[0];
    let stop = Arc::new(AtomicBool::new(false));
    // Set during the windows without the flood.
    let paused = Arc::new(AtomicBool::new(true));
    let (sent, limited) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flood: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let (handle, stop, paused, sent, limited) = (
                f.net.clone(),
                stop.clone(),
                paused.clone(),
                sent.clone(),
                limited.clone(),
            );
            tokio::spawn(async move {
                let request = SyncRequest::Blocks {
                    from_height: 1,
                    count: 1024,
                };
                let cost = request.cost();
                let request = request.encode();
                // Bounded by the flag (set after the window) and by a count.
                for _ in 0..1_000_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if paused.load(Ordering::Relaxed) {
                        sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    match handle.request(victim, request.clone(), cost).await {
                        Ok(bytes) => {
                            if let Ok(SyncResponse::Error(e)) =
                                SyncResponse::decode(&bytes, 1 << 20)
                                && e == "rate limited"
                            {
                                limited.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // Oversize answers (a 64 KiB response bound here) and a closed
                        // connection once it is penalized: back off a little.
                        Err(_) => sleep(Duration::from_millis(10)).await,
                    }
                }
            })
        })
        .collect();
    let (mut baseline, mut flooded) = (0.0, 0.0);
    for _ in 0..2 {
        paused.store(true, Ordering::Relaxed);
        baseline += finalization_rate(&net, WINDOW).await / 2.0;
        paused.store(false, Ordering::Relaxed);
        flooded += finalization_rate(&net, WINDOW).await / 2.0;
    }
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.await.unwrap();
    }
    let _ = stop_load.send(true);
    let (accepted, _) = load.await.unwrap();
    let (sent, limited) = (
        sent.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    println!(
        "finalization rate at validator 0 over 2 x {WINDOW:?} each, alternating: {baseline:.2} \
         heights/s without, {flooded:.2} with a sync flood ({sent} range requests of 1,024 blocks sent, {limited} \
         refused as rate limited); ratio {:.2}",
        flooded / baseline
    );
    assert!(accepted > 0, "the load submitted nothing");
    assert!(baseline > 0.0);
    assert!(sent > 100, "the flood sent only {sent} requests");
    assert!(limited > 0, "the rate limit never acted");
    assert!(net.metric(0, "cairn_peer_faults_total").await >= 1.0);
    assert!(
        flooded >= 0.9 * baseline,
        "the sync flood slowed finalization by more than 10%: {flooded:.2} vs {baseline:.2} heights/s"
    );
    f.net.shutdown().await;
    net.stop_all().await;
}
