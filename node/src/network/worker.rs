//! The swarm task: owns the libp2p swarm, executes [`Command`]s and turns swarm events into
//! [`NetworkEvent`]s according to the queue-full policy of the module docs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::gossipsub::{
    self, IdentTopic, MessageAuthenticity, PublishError, TopicHash, ValidationMode,
};
use libp2p::kad;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, dcutr, identify, noise, ping, relay, tcp,
    yamux,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, trace, warn};

use super::codec::{FrameError, SyncCodec};
use super::discovery::{self, AdmittedKad, Candidates, PeerSource, WalkSchedule};
use super::nat::{self, AdmittedGate, ConnectionPath, Reachability};
use super::{
    ADMISSION_EXEMPT_MAX, ADMISSION_REFUSED_LINGER, ADMISSION_REQUEST_BYTES,
    ADMISSION_RESPONSE_BYTES, ADMISSION_SWEEP_INTERVAL, AGENT_VERSION, APP_SCORE_UNADMITTED,
    AdmissionConfig, AdmissionInfo, AdmissionStatus, BANS_MAX, Command, Counters, DiscoveryInfo,
    GOSSIP_FRAME_OVERHEAD_BYTES, HEARTBEAT_INTERVAL, HISTORY_LENGTH, IDLE_CONNECTION_TIMEOUT,
    IP_BANS_MAX, IPS_TRACKED_MAX, LISTEN_TIMEOUT, MessageId, NetworkConfig, NetworkError,
    NetworkEvent, PENALTIES_MAX, PeerInfo, ResponseToken, SCORE_BAN, SCORE_DISCONNECT,
    SCORE_STRIKES_BAN, SHUTDOWN_GRACE, STRIKES_MAX, SYNC_STREAMS_PER_CONNECTION_MAX, Topic,
    VALIDATOR_IPS_MAX, split_peer_addr,
};

/// Gossipsub mesh degree and bounds, sized for 4–10 node networks.
const MESH_N: usize = 6;
const MESH_N_LOW: usize = 2;
const MESH_N_HIGH: usize = 12;
const MESH_OUTBOUND_MIN: usize = 1;
/// Heartbeats whose messages are advertised in IHAVE gossip.
const HISTORY_GOSSIP: usize = 3;
/// Delay before the first heartbeat (the libp2p default of 5 s slows mesh formation).
const HEARTBEAT_INITIAL_DELAY: Duration = Duration::from_millis(100);
/// Length of a content-addressed message id in bytes.
const MESSAGE_ID_LEN: usize = 20;
/// Concurrent admission streams per connection (one proof each way is all that is needed).
const ADMISSION_STREAMS_PER_CONNECTION_MAX: usize = 4;
/// Admission response status: admitted.
const ADMISSION_ADMITTED: u8 = 0;
/// Admission response status: refused.
const ADMISSION_REFUSED: u8 = 1;
/// Delay before AutoNAT's first probe (libp2p's default is 15 s).
const AUTONAT_BOOT_DELAY: Duration = Duration::from_secs(5);

/// The admission response `[status, required_bits]`.
fn admission_response(admitted: bool, required_bits: u8) -> Vec<u8> {
    let status = if admitted {
        ADMISSION_ADMITTED
    } else {
        ADMISSION_REFUSED
    };
    vec![status, required_bits]
}

/// Parses an admission response: `(admitted, required_bits)`, or `None` if it is not exactly
/// [`ADMISSION_RESPONSE_BYTES`] bytes with a known status.
fn parse_admission_response(response: &[u8]) -> Option<(bool, u8)> {
    let [status, bits] = <[u8; ADMISSION_RESPONSE_BYTES]>::try_from(response).ok()?;
    match status {
        ADMISSION_ADMITTED => Some((true, bits)),
        ADMISSION_REFUSED => Some((false, bits)),
        _ => None,
    }
}

/// What to do about a demand that this node's proof have `claim` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// Solve for `claim` bits now.
    Solve,
    /// Solve for it after the solve running now.
    Queue,
    /// Nothing; the reason, for the log.
    Ignore(&'static str),
}

impl Claim {
    /// Whether the claim was ignored for being untrusted or out of range (the cases counted
    /// in `NetworkStats::admission_claims_ignored`).
    fn is_suspect(self) -> bool {
        matches!(
            self,
            Claim::Ignore(IGNORE_UNTRUSTED) | Claim::Ignore(IGNORE_ABOVE_MAX)
        )
    }
}

const IGNORE_UNTRUSTED: &str =
    "demanded by a peer that is neither a validator nor a bootstrap peer";
const IGNORE_ABOVE_MAX: &str = "demand above DIFFICULTY_BITS_MAX";

/// The re-solve policy (module docs, "Learning a higher difficulty"): solve for `claim` bits
/// only if this node proves at all (`local_exempt` false), its proof is weaker, the claim is
/// in range and `trusted` (a validator, a bootstrap peer or this node's own chain), and no
/// solve for `claim` or more was started before (`attempted`, the highest difficulty solved
/// for so far, 0 if none); while one runs (`solving`), a higher claim waits.
fn judge_claim(
    claim: u8,
    trusted: bool,
    local_exempt: bool,
    own_bits: Option<u8>,
    attempted: u8,
    solving: Option<u8>,
) -> Claim {
    if local_exempt {
        return Claim::Ignore("this node is exempt (a validator) and proves nothing");
    }
    if claim == 0 || own_bits.is_some_and(|own| claim <= own) {
        return Claim::Ignore("our proof already has that many bits");
    }
    if claim > crate::admission::DIFFICULTY_BITS_MAX {
        return Claim::Ignore(IGNORE_ABOVE_MAX);
    }
    if !trusted {
        return Claim::Ignore(IGNORE_UNTRUSTED);
    }
    if claim <= attempted {
        return Claim::Ignore("a solve for that many bits or more was already started");
    }
    if solving.is_some() {
        return Claim::Queue;
    }
    Claim::Solve
}

/// Sets its flag when dropped: stops a running solve when the swarm task ends.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The outcome of a background solve: the difficulty and the nonce found.
type SolveOutcome = (u8, Result<u64, crate::admission::AdmissionError>);

/// This node's own proof and the re-solve state (see [`judge_claim`]).
struct OwnProof {
    /// The strength of `AdmissionConfig::own_nonce` (`None` if there is none).
    bits: Option<u8>,
    /// The highest difficulty a solve was started for (0: none).
    attempted: u8,
    /// The difficulty being solved for now.
    solving: Option<u8>,
    /// The highest trusted claim waiting for the running solve to end (0: none).
    queued: u8,
    /// Where solved proofs are stored.
    pow_file: Option<PathBuf>,
    results_tx: mpsc::Sender<SolveOutcome>,
    results: mpsc::Receiver<SolveOutcome>,
    cancel: CancelOnDrop,
    /// Verdicts of connected peers on our proof (`true` admitted), from their responses;
    /// keys are a subset of the connection map's.
    verdicts: HashMap<PeerId, bool>,
}

/// Admission state of one connected peer.
#[derive(Clone, Copy, Debug)]
struct PeerAdmission {
    status: AdmissionStatus,
    /// When the peer connected or lost its exemption (`Pending`), or was refused
    /// (`Refused`).
    since: Instant,
    /// The proof (nonce) an `Exempt` peer sent, kept so that it is admitted without delay
    /// if it loses its exemption and the proof is valid then (see [`after_withdrawal`]).
    proof: Option<u64>,
}

/// The status of a connected peer whose exemption is withdrawn (module docs, "Exemptions
/// follow the validator set"), given its status now, whether admission is on and whether the
/// proof it sent (if any) is valid at the current difficulty. Only `Exempt` peers change:
/// the others were admitted (or not) on their own merits.
fn after_withdrawal(status: AdmissionStatus, enabled: bool, proof_valid: bool) -> AdmissionStatus {
    match status {
        AdmissionStatus::Exempt if !enabled => AdmissionStatus::Disabled,
        AdmissionStatus::Exempt if proof_valid => AdmissionStatus::Admitted,
        AdmissionStatus::Exempt => AdmissionStatus::Pending,
        other => other,
    }
}

/// The exempt set after [`super::NetworkHandle::exempt`]`(validators)`: the static
/// exemptions plus `validators`, at most `max` peers (static ones first); the validators left
/// out for the bound are returned too.
fn exempt_set(
    fixed: &HashSet<PeerId>,
    validators: impl IntoIterator<Item = PeerId>,
    max: usize,
) -> (HashSet<PeerId>, Vec<PeerId>) {
    let mut set: HashSet<PeerId> = fixed.iter().copied().take(max).collect();
    let mut left_out = Vec::new();
    for peer in validators {
        if set.contains(&peer) {
            continue;
        }
        if set.len() >= max {
            left_out.push(peer);
            continue;
        }
        set.insert(peer);
    }
    (set, left_out)
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    admission: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Kademlia behind the admission gate; absent when discovery is off.
    discovery: Toggle<AdmittedKad>,
    /// Circuit relay v2 client: dials `/p2p-circuit` addresses and holds reservations
    /// (always present; it does nothing unless a relayed address is dialed or listened on).
    relay_client: relay::client::Behaviour,
    /// Circuit relay v2 service for admitted peers; absent unless `nat.relay_service`.
    relay: Toggle<relay::Behaviour>,
    /// DCUtR hole punching; absent unless `nat.hole_punching`.
    dcutr: Toggle<dcutr::Behaviour>,
    /// AutoNAT v1; absent unless `nat.autonat`.
    autonat: Toggle<autonat::Behaviour>,
}

/// `blake3(topic ‖ 0x00 ‖ data)[..20]`.
fn message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(message.topic.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&message.data);
    gossipsub::MessageId::from(&hasher.finalize().as_bytes()[..MESSAGE_ID_LEN])
}

fn transport_err(what: &str, e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Transport {
        reason: format!("{what}: {e}"),
    }
}

/// Peer scoring: only P4 (invalid deliveries, driven by `Reject`) and a small P2 reward for
/// first deliveries; no IP-colocation penalty (testnets run many nodes on one host) and no
/// mesh-delivery-rate penalties (topics can be quiet for long stretches).
fn score_params(
    topics: &[TopicHash],
) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 1.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    };
    let params = gossipsub::PeerScoreParams {
        topics: topics.iter().map(|t| (t.clone(), topic.clone())).collect(),
        ip_colocation_factor_weight: 0.0,
        // The application score carries admission: 0 once admitted (or exempt),
        // `APP_SCORE_UNADMITTED` before.
        app_specific_weight: 1.0,
        ..Default::default()
    };
    (params, gossipsub::PeerScoreThresholds::default())
}

/// The gossipsub configuration: unsigned messages with content-hash ids, validated by the
/// application before forwarding, bounded in size.
fn gossip_config(config: &NetworkConfig) -> Result<gossipsub::Config, NetworkError> {
    gossipsub::ConfigBuilder::default()
        .heartbeat_interval(HEARTBEAT_INTERVAL)
        .heartbeat_initial_delay(HEARTBEAT_INITIAL_DELAY)
        // No author, sequence number or signature on messages (Ethereum's consensus p2p
        // spec calls it StrictNoSign). Every Cairn payload authenticates itself:
        // transactions and votes carry their signers' signatures, blocks are bound to a
        // signed proposal by hash, evidence is a pair of signed votes. A gossipsub
        // signature would only say which node first published the bytes, and checking it
        // cost one ed25519 verification per received copy of every message, duplicates
        // included (the codec checks it before the duplicate filter). The sending peer
        // is still authenticated by Noise and scored; message ids are content hashes.
        .validation_mode(ValidationMode::Anonymous)
        // Anonymous messages have no author, so gossipsub would treat a message whose
        // content id matches one this node published (its own message forwarded back, or
        // the same certificate formed and published by another validator) as a forged
        // "self-origin" message and penalise the peer that sent it, until validators
        // graylisted each other and views timed out. Such a message is a plain duplicate.
        .allow_self_origin(true)
        .validate_messages()
        .message_id_fn(message_id)
        .max_transmit_size(
            config
                .gossip_bytes_max
                .saturating_add(GOSSIP_FRAME_OVERHEAD_BYTES),
        )
        .mesh_n(MESH_N)
        .mesh_n_low(MESH_N_LOW)
        .mesh_n_high(MESH_N_HIGH)
        .mesh_outbound_min(MESH_OUTBOUND_MIN)
        .history_length(HISTORY_LENGTH)
        .history_gossip(HISTORY_GOSSIP)
        .flood_publish(true)
        .build()
        .map_err(|e| transport_err("gossipsub config", e))
}

fn build_behaviour(
    config: &NetworkConfig,
    admission_config: &AdmissionConfig,
    topics: &[TopicHash],
    counters: &Arc<Counters>,
    relay_client: relay::client::Behaviour,
    relay_gate: &AdmittedGate,
    gossip_registry: &mut prometheus_client::registry::Registry,
) -> Result<Behaviour, NetworkError> {
    let gossip_config = gossip_config(config)?;
    let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
        .map_err(|e| transport_err("gossipsub", e))?
        // Per-topic message and byte counts as sent on the wire (publishes and forwards) and
        // received: the cost of consensus per block (docs/scaling.md, "Validator count").
        // gossipsub's own figures (bounded: it tracks at most `max_topics` topics).
        .with_metrics(gossip_registry, gossipsub::MetricsConfig::default());
    let (params, thresholds) = score_params(topics);
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(|e| transport_err("gossipsub peer score", e))?;

    let protocol = StreamProtocol::try_from_owned(config.sync_protocol())
        .map_err(|e| transport_err("sync protocol", e))?;
    let codec = SyncCodec {
        request_max: config.sync_request_bytes_max,
        response_max: config.sync_response_bytes_max,
    };
    let sync = request_response::Behaviour::with_codec(
        codec,
        [(protocol, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(Duration::from_millis(config.sync_request_timeout_ms))
            .with_max_concurrent_streams(SYNC_STREAMS_PER_CONNECTION_MAX),
    );
    let admission_protocol =
        StreamProtocol::try_from_owned(format!("/cairn/{}/admission/2", config.namespace))
            .map_err(|e| transport_err("admission protocol", e))?;
    let admission = request_response::Behaviour::with_codec(
        SyncCodec {
            request_max: ADMISSION_REQUEST_BYTES,
            response_max: ADMISSION_RESPONSE_BYTES,
        },
        [(admission_protocol, ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(Duration::from_millis(admission_config.deadline_ms))
            .with_max_concurrent_streams(ADMISSION_STREAMS_PER_CONNECTION_MAX),
    );
    let identify = identify::Behaviour::new(
        identify::Config::new(protocol_version(config), config.keypair.public())
            .with_agent_version(AGENT_VERSION.into()),
    );
    let discovery = if config.discovery.enabled {
        Some(
            AdmittedKad::new(
                config.keypair.public().to_peer_id(),
                &config.namespace,
                counters.clone(),
            )
            .map_err(|e| transport_err("kad protocol", e))?,
        )
    } else {
        None
    };
    let local = config.keypair.public().to_peer_id();
    let nat = &config.nat;
    let relay = nat.relay_service.then(|| {
        relay::Behaviour::new(
            local,
            nat::relay_config(&nat.relay_limits, relay_gate.clone()),
        )
    });
    let dcutr = nat.hole_punching.then(|| dcutr::Behaviour::new(local));
    let autonat = nat.autonat.then(|| {
        autonat::Behaviour::new(
            local,
            autonat::Config {
                // Private networks (a permissioned chain's LAN, the NAT test's namespaces)
                // are as much a place to be reachable in as the public Internet.
                only_global_ips: false,
                boot_delay: AUTONAT_BOOT_DELAY,
                ..Default::default()
            },
        )
    });
    Ok(Behaviour {
        gossipsub,
        sync,
        admission,
        identify,
        ping: ping::Behaviour::default(),
        discovery: Toggle::from(discovery),
        relay_client,
        relay: Toggle::from(relay),
        dcutr: Toggle::from(dcutr),
        autonat: Toggle::from(autonat),
    })
}

/// Identify's protocol version; peers announcing another one are disconnected. Version 2:
/// gossip messages are unsigned (version 1 signed them; the two cannot exchange gossip).
/// Version 3: blocks are gossiped compact (`block/2` topic) and the sync protocol (`sync/2`)
/// serves transactions by index. Version 4: block header v2 (`signed_txs_root`), compact
/// blocks carry the leader's signed proposal (`block/3`), sync protocol `sync/3`. Version 5:
/// epochs (`consensus/2`, `block/4`, `evidence/2` carry the epoch; `sync/4` epoch proofs).
/// Version 6: `sync/5` (a status answer carries the lowest height whose body the peer
/// holds; a pruned range is answered `Pruned`).
/// Version 7: state snapshots (`sync/6`).
fn protocol_version(config: &NetworkConfig) -> String {
    format!("/cairn/{}/7", config.namespace)
}

/// Connections we accepted (not closed for exceeding the limit), per peer, oldest first.
type Connections = HashMap<PeerId, Vec<(ConnectionId, ConnectedPoint)>>;
type RequestReply = oneshot::Sender<Result<Vec<u8>, NetworkError>>;

pub(crate) struct Worker {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    /// Lifecycle events waiting for room in the event queue (at most one per peer).
    backlog: VecDeque<NetworkEvent>,
    counters: Arc<Counters>,
    topic_hashes: HashMap<Topic, TopicHash>,
    topics_by_hash: HashMap<TopicHash, Topic>,
    /// Bootstrap peers and their addresses (without `/p2p`).
    bootstrap: Vec<(PeerId, Vec<Multiaddr>)>,
    connections: Connections,
    /// `exempt` is the exempt set in force: the static exemptions (`static_exempt`) plus
    /// the current validator set.
    admission: AdmissionConfig,
    /// [`AdmissionConfig::exempt`] as configured: exempt whatever the validator set.
    static_exempt: HashSet<PeerId>,
    /// Admission state of each peer in `connections` (same keys, so bounded by the
    /// connection limit plus the bootstrap peers).
    peer_admission: HashMap<PeerId, PeerAdmission>,
    /// Banned peers and their ban expiry (ms since the Unix epoch), at most [`BANS_MAX`].
    bans: HashMap<PeerId, u64>,
    /// Low-score disconnects per peer, at most [`STRIKES_MAX`] entries.
    strikes: HashMap<PeerId, u32>,
    /// Accumulated [`super::PeerFault`] penalties by peer (at most [`PENALTIES_MAX`]).
    penalties: HashMap<PeerId, f64>,
    /// Banned IP addresses and their ban expiry (ms since the Unix epoch), at most
    /// [`IP_BANS_MAX`].
    ip_bans: HashMap<IpAddr, u64>,
    /// Identities banned since start, by the IP addresses they were connected from; at most
    /// [`IPS_TRACKED_MAX`] addresses (reset when full), each with at most
    /// `banned_identities_per_ip_max + 1` identities (the address is banned at that point).
    banned_by_ip: HashMap<IpAddr, HashSet<PeerId>>,
    /// IP addresses never banned: those of bootstrap peers, plus those genesis validators
    /// connected from (at most [`VALIDATOR_IPS_MAX`] of the latter).
    protected_ips: HashSet<IpAddr>,
    /// Connections closed for exceeding `connections_max` (their close is not reported).
    over_limit: HashSet<ConnectionId>,
    /// Outbound sync requests awaiting their outcome, with their start time.
    pending_requests: HashMap<OutboundRequestId, (Instant, RequestReply)>,
    listener: ListenerId,
    listen_addrs: Vec<Multiaddr>,
    listen_error: Option<String>,
    protocol_version: String,
    gossip_bytes_max: usize,
    connections_max: u32,
    redial_interval: Duration,
    /// The latest resolution of each bootstrap peer's DNS addresses (`super::dns`), at most
    /// one entry per bootstrap peer.
    resolved: HashMap<PeerId, Vec<Multiaddr>>,
    /// Bootstrap peers whose DNS addresses are being resolved (one resolution each at most).
    resolving: HashSet<PeerId>,
    /// Resolutions from their tasks; capacity the number of bootstrap peers, so a task's
    /// send never waits.
    resolved_tx: mpsc::Sender<(PeerId, Vec<Multiaddr>)>,
    resolved_rx: mpsc::Receiver<(PeerId, Vec<Multiaddr>)>,
    request_timeout: Duration,
    /// Set to `true` once the swarm is dropped (see [`super::NetworkHandle::shutdown`]).
    stopped: watch::Sender<bool>,
    /// The required difficulty set by [`super::NetworkHandle::set_admission_difficulty`].
    difficulty: watch::Receiver<u8>,
    /// `false` once every handle (and so the difficulty's sender) is gone.
    difficulty_open: bool,
    own_proof: OwnProof,
    local_peer: PeerId,
    /// How each connected peer was found (keys: the connection map's).
    found: HashMap<PeerId, PeerSource>,
    /// What each connected peer announced through identify: its dialable addresses and
    /// whether it speaks this chain's Kademlia protocol (keys: a subset of the connection
    /// map's).
    identified: HashMap<PeerId, (Vec<Multiaddr>, bool)>,
    /// Discovery dials in flight, with the source of the address and when they started
    /// (at most `DIALS_PER_TICK_MAX` per tick; entries older than `DIALING_STALE` dropped).
    dialing: HashMap<PeerId, (PeerSource, Instant)>,
    candidates: Candidates,
    walk: WalkSchedule,
    /// The random walk or validator lookup running, if any (one at a time).
    walk_in_flight: Option<kad::QueryId>,
    /// Round-robin position among missing validators for lookups.
    lookup_cursor: usize,
    /// Whether the last finished walk found a peer this node was not connected to (walks
    /// back off while they find none).
    walk_found_new: bool,
    discovery_interval: Duration,
    peers_target: usize,
    peers_max: usize,
    /// This chain's Kademlia protocol name.
    kad_protocol: String,
    /// Whether loopback addresses are worth dialing (this node listens on loopback).
    allow_loopback: bool,
    /// The peers the relay service serves (the admitted ones; see [`nat::AdmittedGate`]).
    relay_gate: AdmittedGate,
    /// Relays to hold a reservation on (`nat.relays`): relay id and address, at most
    /// [`nat::RELAYS_MAX`].
    relays: Vec<(PeerId, Multiaddr)>,
    /// Our listeners on relays (`<relay>/p2p-circuit`), by listener, with the relay's id (at
    /// most one per entry of `relays`).
    relay_listeners: HashMap<ListenerId, PeerId>,
    /// Relays on which we hold a reservation now (a subset of `relays`' ids).
    reservations: HashSet<PeerId>,
}

/// A discovery dial with no outcome after this long is forgotten (its connection, if it
/// comes, counts as found by Kademlia).
const DIALING_STALE: Duration = Duration::from_secs(30);

impl Worker {
    /// Builds the swarm, subscribes, listens (waiting for the first address) and dials the
    /// bootstrap peers.
    // Settings, the handle's channel ends and the metrics registry, each consumed once here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        config: NetworkConfig,
        admission: AdmissionConfig,
        difficulty: watch::Receiver<u8>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetworkEvent>,
        counters: Arc<Counters>,
        stopped: watch::Sender<bool>,
        gossip_registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Self, NetworkError> {
        let local = config.keypair.public().to_peer_id();
        let mut topic_hashes = HashMap::new();
        let mut topics_by_hash = HashMap::new();
        for topic in Topic::ALL {
            let hash = IdentTopic::new(config.topic_name(topic)).hash();
            topic_hashes.insert(topic, hash.clone());
            topics_by_hash.insert(hash, topic);
        }
        let hashes: Vec<TopicHash> = topics_by_hash.keys().cloned().collect();
        let mut admission = admission;
        let static_exempt = std::mem::take(&mut admission.exempt);
        let validators = std::mem::take(&mut admission.validators);
        // `validate` bounded the union, so nothing is left out here.
        admission.exempt = exempt_set(&static_exempt, validators, ADMISSION_EXEMPT_MAX).0;
        let relay_gate = AdmittedGate::default();
        let mut bans = HashMap::new();
        for (peer, until) in admission.initial_bans.iter().take(BANS_MAX) {
            if !admission.exempt.contains(peer) {
                bans.insert(*peer, *until);
            }
        }
        let mut protected_ips: HashSet<IpAddr> =
            config.bootstrap.iter().filter_map(ip_of).collect();
        let mut ip_bans = HashMap::new();
        for (ip, until) in admission.initial_ip_bans.iter().take(IP_BANS_MAX) {
            if !protected_ips.contains(ip) {
                ip_bans.insert(*ip, *until);
            }
        }
        protected_ips.shrink_to_fit();

        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| transport_err("tcp transport", e))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| transport_err("relay client transport", e))?
            .with_behaviour(|_, relay_client| {
                build_behaviour(
                    &config,
                    &admission,
                    &hashes,
                    &counters,
                    relay_client,
                    &relay_gate,
                    gossip_registry,
                )
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .map_err(|e| transport_err("behaviour", e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();

        for topic in Topic::ALL {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&IdentTopic::new(config.topic_name(topic)))
                .map_err(|e| transport_err("gossipsub subscribe", e))?;
        }

        let mut bootstrap: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
        for addr in &config.bootstrap {
            let (peer, base) =
                split_peer_addr(addr).map_err(|reason| NetworkError::InvalidConfig { reason })?;
            if peer == local {
                debug!(%addr, "ignoring bootstrap entry naming this node");
                continue;
            }
            match bootstrap.iter_mut().find(|(p, _)| *p == peer) {
                Some((_, addrs)) => addrs.push(base),
                None => bootstrap.push((peer, vec![base])),
            }
        }

        ensure_port_free(&config.listen)?;
        let listener = swarm
            .listen_on(config.listen.clone())
            .map_err(|e| transport_err(&format!("listen on {}", config.listen), e))?;

        let own_bits = admission
            .own_nonce
            .map(|n| crate::admission::proof_bits(&admission.genesis_hash, &local, n));
        let (results_tx, results) = mpsc::channel(1);
        let own_proof = OwnProof {
            bits: own_bits,
            attempted: 0,
            solving: None,
            queued: 0,
            pow_file: admission.pow_file.clone(),
            results_tx,
            results,
            cancel: CancelOnDrop(Arc::new(AtomicBool::new(false))),
            verdicts: HashMap::new(),
        };
        let (resolved_tx, resolved_rx) = mpsc::channel(bootstrap.len().max(1));
        let mut worker = Worker {
            swarm,
            commands,
            events,
            backlog: VecDeque::new(),
            counters,
            topic_hashes,
            topics_by_hash,
            bootstrap,
            connections: HashMap::new(),
            admission,
            static_exempt,
            peer_admission: HashMap::new(),
            bans,
            strikes: HashMap::new(),
            penalties: HashMap::new(),
            ip_bans,
            banned_by_ip: HashMap::new(),
            protected_ips,
            over_limit: HashSet::new(),
            pending_requests: HashMap::new(),
            listener,
            listen_addrs: Vec::new(),
            listen_error: None,
            protocol_version: protocol_version(&config),
            gossip_bytes_max: config.gossip_bytes_max,
            connections_max: config.connections_max,
            redial_interval: Duration::from_millis(config.redial_interval_ms),
            resolved: HashMap::new(),
            resolving: HashSet::new(),
            resolved_tx,
            resolved_rx,
            request_timeout: Duration::from_millis(config.sync_request_timeout_ms),
            stopped,
            difficulty,
            difficulty_open: true,
            own_proof,
            local_peer: local,
            found: HashMap::new(),
            identified: HashMap::new(),
            dialing: HashMap::new(),
            candidates: Candidates::default(),
            walk: WalkSchedule::new(
                Duration::from_millis(config.discovery.interval_ms),
                Instant::now(),
            ),
            walk_in_flight: None,
            lookup_cursor: 0,
            walk_found_new: true,
            discovery_interval: Duration::from_millis(config.discovery.interval_ms),
            peers_target: config.discovery.peers_target as usize,
            peers_max: config.discovery.peers_max as usize,
            kad_protocol: discovery::kad_protocol(&config.namespace),
            allow_loopback: ip_of(&config.listen).is_some_and(|ip| ip.is_loopback()),
            relay_gate,
            relays: Vec::new(),
            relay_listeners: HashMap::new(),
            reservations: HashSet::new(),
        };
        for addr in config.nat.relays.iter().take(nat::RELAYS_MAX) {
            let relay =
                nat::relay_peer(addr).map_err(|reason| NetworkError::InvalidConfig { reason })?;
            if relay != local && !worker.relays.iter().any(|(r, _)| *r == relay) {
                worker.relays.push((relay, addr.clone()));
            }
        }
        for addr in config
            .nat
            .external_addresses
            .iter()
            .take(nat::EXTERNAL_ADDRESSES_MAX)
        {
            worker.swarm.add_external_address(addr.clone());
        }

        let listening = tokio::time::timeout(LISTEN_TIMEOUT, async {
            while worker.listen_addrs.is_empty() && worker.listen_error.is_none() {
                let event = worker.swarm.select_next_some().await;
                worker.on_swarm_event(event);
            }
        })
        .await;
        if let Some(reason) = worker.listen_error.take() {
            return Err(transport_err(
                &format!("listen on {}", config.listen),
                reason,
            ));
        }
        if listening.is_err() {
            return Err(transport_err(
                &format!("listen on {}", config.listen),
                "timed out",
            ));
        }
        worker.redial();
        Ok(worker)
    }

    /// The swarm task body; returns after a graceful shutdown.
    pub(crate) async fn run(mut self) {
        let mut redial = tokio::time::interval(self.redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(ADMISSION_SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut discover = tokio::time::interval(self.discovery_interval);
        discover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A second sender so that a reserved permit does not borrow `self`.
        let events = self.events.clone();
        loop {
            tokio::select! {
                permit = events.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => self.backlog.clear(),
                },
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = redial.tick() => self.redial(),
                Some((peer, addrs)) = self.resolved_rx.recv() => self.on_resolved(peer, addrs),
                _ = sweep.tick() => self.sweep_admission(),
                _ = discover.tick() => self.discovery_tick(),
                changed = self.difficulty.changed(), if self.difficulty_open => match changed {
                    Ok(()) => {
                        let bits = *self.difficulty.borrow_and_update();
                        self.set_difficulty(bits);
                    }
                    Err(_) => self.difficulty_open = false,
                },
                Some((bits, result)) = self.own_proof.results.recv() => {
                    self.on_solved(bits, result)
                }
            }
        }
        info!("network shutting down");
        // Stop a solve still running (it checks the flag about every millisecond).
        self.own_proof.cancel.0.store(true, Ordering::Relaxed);
        // Refuse further commands; queued ones are dropped (their callers see `Shutdown`).
        self.commands.close();
        let Worker {
            mut swarm,
            listener,
            pending_requests,
            events: worker_events,
            commands,
            stopped,
            ..
        } = self;
        drop(commands);
        drop(pending_requests);
        drop(events);
        drop(worker_events);
        swarm.remove_listener(listener);
        let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = swarm.disconnect_peer_id(peer);
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while swarm.network_info().connection_counters().num_established() > 0 {
                let event = swarm.select_next_some().await;
                trace!(?event, "swarm event during shutdown");
            }
        })
        .await;
        drop(swarm);
        stopped.send_replace(true);
        info!("network stopped");
    }

    /// Dials every disconnected bootstrap peer at its IP addresses and the latest resolution
    /// of its DNS addresses, and starts resolving those again (`super::dns`).
    fn redial(&mut self) {
        self.listen_on_relays();
        let disconnected: Vec<PeerId> = self
            .bootstrap
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !self.swarm.is_connected(p))
            .collect();
        for peer in disconnected {
            self.resolve_bootstrap(peer);
            self.dial_bootstrap(peer);
        }
    }

    /// Listens on `<relay>/p2p-circuit` for every relay of `nat.relays` without a listener
    /// (at start and after a reservation is lost or refused; called every
    /// `redial_interval_ms`). The relay client dials the relay and asks for a reservation.
    fn listen_on_relays(&mut self) {
        let missing: Vec<(PeerId, Multiaddr)> = self
            .relays
            .iter()
            .filter(|(relay, _)| !self.relay_listeners.values().any(|r| r == relay))
            .cloned()
            .collect();
        for (relay, addr) in missing {
            match self.swarm.listen_on(nat::circuit_listen_addr(&addr)) {
                Ok(id) => {
                    debug!(%relay, "asking the relay for a reservation");
                    self.relay_listeners.insert(id, relay);
                }
                Err(e) => debug!(%relay, error = %e, "cannot listen on the relay"),
            }
        }
    }

    /// Starts resolving `peer`'s DNS bootstrap addresses, unless it has none or a
    /// resolution is in flight; the result arrives in [`Self::on_resolved`].
    fn resolve_bootstrap(&mut self, peer: PeerId) {
        let Some((_, addrs)) = self.bootstrap.iter().find(|(p, _)| *p == peer) else {
            return;
        };
        let names: Vec<Multiaddr> = addrs
            .iter()
            .filter(|a| super::dns::is_dns(a))
            .cloned()
            .collect();
        if names.is_empty() || !self.resolving.insert(peer) {
            return;
        }
        let tx = self.resolved_tx.clone();
        tokio::spawn(async move {
            let mut found = Vec::new();
            for name in &names {
                found.extend(super::dns::resolve(name).await);
            }
            let _ = tx.send((peer, found)).await;
        });
    }

    fn on_resolved(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        self.resolving.remove(&peer);
        if addrs.is_empty() {
            debug!(%peer, "bootstrap peer's DNS names resolved to nothing");
            return;
        }
        trace!(%peer, ?addrs, "bootstrap peer resolved");
        self.resolved.insert(peer, addrs);
        if !self.swarm.is_connected(&peer) {
            self.dial_bootstrap(peer);
        }
    }

    /// Dials the bootstrap peer `peer` at its IP addresses and its latest resolved ones.
    fn dial_bootstrap(&mut self, peer: PeerId) {
        let Some((_, addrs)) = self.bootstrap.iter().find(|(p, _)| *p == peer) else {
            return;
        };
        let mut dial: Vec<Multiaddr> = addrs
            .iter()
            .filter(|a| !super::dns::is_dns(a))
            .cloned()
            .collect();
        if let Some(resolved) = self.resolved.get(&peer) {
            dial.extend(resolved.iter().cloned());
        }
        if dial.is_empty() {
            return; // only DNS names, not resolved yet
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(dial)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        match self.swarm.dial(opts) {
            Ok(()) => debug!(%peer, "dialing bootstrap peer"),
            Err(DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => debug!(%peer, error = %e, "cannot dial bootstrap peer"),
        }
    }

    fn is_bootstrap(&self, peer: &PeerId) -> bool {
        self.bootstrap.iter().any(|(p, _)| p == peer)
    }

    /// Genesis validators and bootstrap peers: exempt from per-peer and per-IP limits and
    /// from IP bans.
    fn is_privileged(&self, peer: &PeerId) -> bool {
        self.admission.exempt.contains(peer) || self.is_bootstrap(peer)
    }

    /// Why a new connection of `peer` from `ip` must be closed at once (IP ban, per-peer or
    /// per-IP limit), if it must; increments the matching counter.
    fn connection_refusal(&self, peer: &PeerId, ip: Option<IpAddr>) -> Option<&'static str> {
        if self.is_privileged(peer) {
            return None;
        }
        if let Some(ip) = ip {
            if self.ip_bans.get(&ip).is_some_and(|until| *until > now_ms()) {
                Counters::inc(&self.counters.connections_refused_banned_ip);
                return Some("IP address banned");
            }
        }
        let per_peer = self.connections.get(peer).map_or(0, Vec::len);
        if per_peer >= self.admission.connections_per_peer_max as usize {
            Counters::inc(&self.counters.connections_closed_peer_limit);
            return Some("connections_per_peer_max reached");
        }
        if let Some(ip) = ip {
            let per_ip: usize = self
                .connections
                .iter()
                .filter(|(p, _)| !self.is_privileged(p))
                .flat_map(|(_, conns)| conns.iter())
                .filter(|(_, endpoint)| endpoint_ip(endpoint) == Some(ip))
                .count();
            if per_ip >= self.admission.connections_per_ip_max as usize {
                Counters::inc(&self.counters.connections_closed_ip_limit);
                return Some("connections_per_ip_max reached");
            }
        }
        None
    }

    /// Counts the newly banned `peer` against the IP addresses it is connected from; bans an
    /// address once more than `banned_identities_per_ip_max` banned identities share it, and
    /// disconnects its non-validator peers.
    fn count_ban_against_ips(&mut self, peer: PeerId, now: u64) {
        let ips: HashSet<IpAddr> = self
            .connections
            .get(&peer)
            .into_iter()
            .flatten()
            .filter_map(|(_, endpoint)| endpoint_ip(endpoint))
            .collect();
        for ip in ips {
            if self.protected_ips.contains(&ip) {
                continue;
            }
            if self.banned_by_ip.len() >= IPS_TRACKED_MAX && !self.banned_by_ip.contains_key(&ip) {
                self.banned_by_ip.clear();
            }
            let identities = self.banned_by_ip.entry(ip).or_default();
            identities.insert(peer);
            let count = identities.len();
            if count <= self.admission.banned_identities_per_ip_max as usize {
                continue;
            }
            self.banned_by_ip.remove(&ip);
            let until = now.saturating_add(self.admission.ban_duration_ms);
            if self.ip_bans.len() >= IP_BANS_MAX && !self.ip_bans.contains_key(&ip) {
                if let Some(first) = self
                    .ip_bans
                    .iter()
                    .min_by_key(|(_, u)| **u)
                    .map(|(a, _)| *a)
                {
                    self.ip_bans.remove(&first);
                }
            }
            self.ip_bans.insert(ip, until);
            Counters::inc(&self.counters.ips_banned);
            warn!(%ip, banned_identities = count, until_ms = until, "IP address banned: too many banned identities");
            if let Some(sink) = &self.admission.ip_ban_sink {
                sink(ip, until);
            }
            let on_ip: Vec<PeerId> = self
                .connections
                .iter()
                .filter(|(p, conns)| {
                    !self.is_privileged(p) && conns.iter().any(|(_, e)| endpoint_ip(e) == Some(ip))
                })
                .map(|(p, _)| *p)
                .collect();
            for p in on_ip {
                let _ = self.swarm.disconnect_peer_id(p);
            }
        }
    }

    // ---- events to the application -------------------------------------------------------

    /// Offers a gossip or request event; `false` (event dropped) if the queue is full or
    /// closed, or if lifecycle events are still waiting (to keep per-peer ordering).
    fn offer(&mut self, event: NetworkEvent) -> bool {
        self.backlog.is_empty() && self.events.try_send(event).is_ok()
    }

    /// Emits a lifecycle event, never dropping it while the receiver exists (see the
    /// queue-full policy).
    fn emit_lifecycle(&mut self, event: NetworkEvent) {
        let event = if self.backlog.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(ev)) => ev,
            }
        } else {
            event
        };
        let peer = lifecycle_peer(&event);
        // Pending events of one peer alternate, so a pending one is the opposite: cancel.
        if let Some(pos) = self.backlog.iter().position(|e| lifecycle_peer(e) == peer) {
            self.backlog.remove(pos);
        } else {
            self.backlog.push_back(event);
        }
    }

    // ---- commands --------------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let _ = reply.send(self.publish(topic, data));
            }
            Command::Report {
                id,
                source,
                acceptance,
            } => {
                if acceptance == super::Acceptance::Reject {
                    Counters::inc(&self.counters.gossip_rejected);
                }
                let known = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id.0, &source, acceptance.into());
                if !known {
                    debug!(message_id = %id, "report for a message no longer in the cache (late or repeated report)");
                }
            }
            Command::Request { peer, data, reply } => {
                if !self.swarm.is_connected(&peer) {
                    let _ = reply.send(Err(NetworkError::PeerUnreachable {
                        peer,
                        reason: "not connected".into(),
                    }));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, data);
                self.pending_requests.insert(id, (Instant::now(), reply));
            }
            Command::Respond { token, data } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(token.0, data)
                    .is_err()
                {
                    debug!("sync response dropped: the request expired or its connection closed");
                }
            }
            Command::Peers { reply } => {
                let peers = self
                    .connections
                    .iter()
                    .filter_map(|(peer, conns)| {
                        let (_, endpoint) = conns.first()?;
                        Some(PeerInfo {
                            peer_id: *peer,
                            address: Some(endpoint.get_remote_address().clone()),
                            outbound: endpoint.is_dialer(),
                            admission: self.admission_status(peer),
                            score: self.swarm.behaviour().gossipsub.peer_score(peer),
                            found: self.found.get(peer).copied().unwrap_or(PeerSource::Inbound),
                            path: if conns.iter().any(|(_, e)| !e.is_relayed()) {
                                ConnectionPath::Direct
                            } else {
                                ConnectionPath::Relayed
                            },
                        })
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::MeshPeers { topic, reply } => {
                let hash = &self.topic_hashes[&topic];
                let _ = reply.send(
                    self.swarm
                        .behaviour()
                        .gossipsub
                        .mesh_peers(hash)
                        .copied()
                        .collect(),
                );
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::Penalize { peer, fault } => self.penalize(peer, fault),
            Command::Exempt { peers } => self.set_exempt(peers),
            Command::AdmissionInfo { reply } => {
                let _ = reply.send(AdmissionInfo {
                    difficulty_bits: self.admission.difficulty_bits,
                    own_proof_bits: self.own_proof.bits,
                    solving_bits: self.own_proof.solving,
                    exempt: self.local_exempt(),
                });
            }
            Command::DiscoveryInfo { reply } => {
                let walk_backoff_factor = self.walk.factor();
                let candidates = self.candidates.peers();
                let (enabled, routing_table) = match self.swarm.behaviour_mut().discovery.as_mut() {
                    Some(kad) => (true, kad.routing_table()),
                    None => (false, Vec::new()),
                };
                let _ = reply.send(DiscoveryInfo {
                    enabled,
                    routing_table,
                    candidates,
                    walk_backoff_factor,
                });
            }
            Command::Shutdown => unreachable!("handled by the run loop"),
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) -> Result<(), NetworkError> {
        let len = data.len();
        let hash = self.topic_hashes[&topic].clone();
        match self.swarm.behaviour_mut().gossipsub.publish(hash, data) {
            Ok(id) => {
                debug!(%topic, message_id = %id, len, "published");
                Ok(())
            }
            Err(PublishError::NoPeersSubscribedToTopic) => {
                debug!(%topic, len, "publish: no peer subscribed to the topic yet; not sent");
                Ok(())
            }
            Err(PublishError::Duplicate) => {
                debug!(%topic, len, "publish: identical message already published or received");
                Ok(())
            }
            Err(PublishError::MessageTooLarge) => Err(NetworkError::Oversize {
                len,
                max: self.gossip_bytes_max,
            }),
            Err(PublishError::AllQueuesFull(peers)) => {
                warn!(%topic, peers, "publish: every peer's send queue is full");
                Err(NetworkError::QueueFull {
                    queue: "gossip peer send queues",
                })
            }
            Err(e) => Err(transport_err("gossipsub publish", e)),
        }
    }

    // ---- swarm events ----------------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Admission(event)) => self.on_admission(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Discovery(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                self.on_relay_client(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => self.on_relay(event),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.on_dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.on_autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => {
                if let Err(e) = event.result {
                    debug!(peer = %event.peer, error = %e, "ping failed; closing connection");
                    self.swarm.close_connection(event.connection);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if self
                    .bans
                    .get(&peer_id)
                    .is_some_and(|until| *until > now_ms())
                {
                    Counters::inc(&self.counters.connections_refused_banned);
                    debug!(peer = %peer_id, "connection from a banned peer; closing");
                    self.over_limit.insert(connection_id);
                    self.swarm.close_connection(connection_id);
                    return;
                }
                if !self.connections.contains_key(&peer_id)
                    && self.connections.len() >= self.peers_max
                    && !self.is_privileged(&peer_id)
                {
                    Counters::inc(&self.counters.connections_closed_peers_max);
                    debug!(peer = %peer_id, peers = self.connections.len(), max = self.peers_max, "peers_max reached; closing");
                    self.over_limit.insert(connection_id);
                    self.swarm.close_connection(connection_id);
                    self.dialing.remove(&peer_id);
                    return;
                }
                let total: usize = self.connections.values().map(Vec::len).sum();
                if total >= self.connections_max as usize && !self.is_bootstrap(&peer_id) {
                    Counters::inc(&self.counters.connections_closed_limit);
                    warn!(peer = %peer_id, total, max = self.connections_max, "connection limit reached; closing");
                    self.over_limit.insert(connection_id);
                    self.swarm.close_connection(connection_id);
                    return;
                }
                let ip = endpoint_ip(&endpoint);
                if let Some(reason) = self.connection_refusal(&peer_id, ip) {
                    debug!(peer = %peer_id, ip = ?ip, reason, "closing connection");
                    self.over_limit.insert(connection_id);
                    self.swarm.close_connection(connection_id);
                    return;
                }
                if let Some(ip) = ip {
                    if self.admission.exempt.contains(&peer_id)
                        && self.protected_ips.len() < VALIDATOR_IPS_MAX
                    {
                        // A genesis validator's address is never banned.
                        self.protected_ips.insert(ip);
                        self.banned_by_ip.remove(&ip);
                        if self.ip_bans.remove(&ip).is_some() {
                            warn!(%ip, peer = %peer_id, "a genesis validator connected from a banned IP address; lifting the IP ban");
                        }
                    }
                }
                debug!(peer = %peer_id, address = %endpoint.get_remote_address(), outbound = endpoint.is_dialer(), "connection established");
                let found = if self.is_bootstrap(&peer_id) {
                    PeerSource::Configured
                } else if !endpoint.is_dialer() {
                    PeerSource::Inbound
                } else if let Some((source, _)) = self.dialing.remove(&peer_id) {
                    source
                } else {
                    // Dialed by a Kademlia query at an address another peer gave.
                    PeerSource::Kademlia
                };
                let conns = self.connections.entry(peer_id).or_default();
                conns.push((connection_id, endpoint));
                if conns.len() == 1 {
                    self.counters.peer_connected(found);
                    self.found.insert(peer_id, found);
                    self.candidates.connected(&peer_id);
                    self.on_first_connection(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                if self.over_limit.remove(&connection_id) {
                    return;
                }
                debug!(peer = %peer_id, cause = ?cause, "connection closed");
                let Some(conns) = self.connections.get_mut(&peer_id) else {
                    return;
                };
                conns.retain(|(id, _)| *id != connection_id);
                if conns.is_empty() {
                    self.connections.remove(&peer_id);
                    self.relay_gate.set(peer_id, false);
                    self.found.remove(&peer_id);
                    self.identified.remove(&peer_id);
                    self.own_proof.verdicts.remove(&peer_id);
                    // The application saw `PeerConnected` only for admitted peers.
                    let admitted = self
                        .peer_admission
                        .remove(&peer_id)
                        .is_some_and(|a| a.status.is_admitted());
                    if admitted {
                        self.emit_lifecycle(NetworkEvent::PeerDisconnected { peer: peer_id });
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                addresses,
            } if self.relay_listeners.contains_key(&listener_id) => {
                let relay = self.relay_listeners.remove(&listener_id);
                self.listen_addrs.retain(|a| !addresses.contains(a));
                if let Some(relay) = relay {
                    self.reservations.remove(&relay);
                    self.counters
                        .relay_reservations_held
                        .store(self.reservations.len() as u64, Ordering::Relaxed);
                    info!(%relay, reason = ?reason.err().map(|e| e.to_string()), "relay listener closed; retrying at the next redial");
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if listener_id == self.listener => {
                let reason = match reason {
                    Ok(()) => "listener closed".to_string(),
                    Err(e) => e.to_string(),
                };
                warn!(%reason, "p2p listener closed");
                self.listen_addrs.clear();
                self.listen_error = Some(reason);
            }
            SwarmEvent::ListenerError { listener_id, error } if listener_id != self.listener => {
                debug!(%error, "relay listener error");
            }
            SwarmEvent::ListenerError { error, .. } => {
                warn!(%error, "p2p listener error");
                if self.listen_addrs.is_empty() {
                    self.listen_error = Some(error.to_string());
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
                if let Some(peer) = peer_id {
                    if self.dialing.remove(&peer).is_some() {
                        Counters::inc(&self.counters.discovery_dial_failures);
                        self.candidates
                            .dial_failed(&peer, Instant::now(), self.discovery_interval);
                    }
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                debug!(%send_back_addr, %error, "incoming connection failed");
            }
            other => trace!(event = ?other, "swarm event"),
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let Some(&topic) = self.topics_by_hash.get(&message.topic) else {
                    debug!(topic = %message.topic, "gossip on an unknown topic; ignoring");
                    self.validate(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
                    return;
                };
                if message.data.len() > self.gossip_bytes_max {
                    Counters::inc(&self.counters.gossip_rejected_oversize);
                    warn!(peer = %propagation_source, %topic, len = message.data.len(), max = self.gossip_bytes_max, "oversize gossip; rejecting");
                    self.validate(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Reject,
                    );
                    return;
                }
                if !self.admission_status(&propagation_source).is_admitted() {
                    Counters::inc(&self.counters.unadmitted_dropped);
                    debug!(peer = %propagation_source, %topic, "gossip from an unadmitted peer; ignoring");
                    self.validate(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
                    return;
                }
                let event = NetworkEvent::Gossip {
                    topic,
                    source: propagation_source,
                    message_id: MessageId(message_id.clone()),
                    data: message.data,
                };
                if !self.offer(event) {
                    Counters::inc(&self.counters.gossip_dropped_queue_full);
                    warn!(%topic, peer = %propagation_source, "event queue full; dropping gossip (reported Ignore)");
                    self.validate(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                debug!(peer = %peer_id, %topic, "peer subscribed")
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                debug!(peer = %peer_id, %topic, "peer unsubscribed")
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                debug!(peer = %peer_id, "peer does not support gossipsub")
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                debug!(peer = %peer_id, ?failed_messages, "slow gossipsub peer")
            }
        }
    }

    fn validate(
        &mut self,
        id: &gossipsub::MessageId,
        source: &PeerId,
        acceptance: gossipsub::MessageAcceptance,
    ) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acceptance);
    }

    fn on_sync(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.admission_status(&peer).is_admitted() {
                        // Dropping the channel closes the stream without a response.
                        Counters::inc(&self.counters.unadmitted_dropped);
                        debug!(%peer, "sync request from an unadmitted peer; dropping");
                        return;
                    }
                    let event = NetworkEvent::Request {
                        peer,
                        data: request,
                        token: ResponseToken(channel),
                    };
                    if !self.offer(event) {
                        // Dropping the token closes the stream without a response.
                        Counters::inc(&self.counters.requests_dropped_queue_full);
                        warn!(%peer, "event queue full; dropping sync request");
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let pending = self.pending_requests.remove(&request_id);
                let mut error = self.outbound_error(peer, error);
                // Both sides run the same timer; when the responder's fires first it closes
                // the stream without a response. Late in the window, that is our timeout.
                if let (NetworkError::NoResponse { .. }, Some((started, _))) = (&error, &pending) {
                    if started.elapsed() >= self.request_timeout * 4 / 5 {
                        error = NetworkError::Timeout { peer };
                    }
                }
                debug!(%peer, %error, "sync request failed");
                if let Some((_, reply)) = pending {
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e) if FrameError::from_io(&e).is_some() => {
                    Counters::inc(&self.counters.sync_protocol_violations);
                    warn!(%peer, error = %e, "sync protocol violation by peer");
                }
                error => debug!(%peer, %error, "inbound sync request failed"),
            },
            request_response::Event::ResponseSent { peer, .. } => {
                trace!(%peer, "sync response sent")
            }
        }
    }

    fn outbound_error(&self, peer: PeerId, error: OutboundFailure) -> NetworkError {
        let unreachable = |reason: &str| NetworkError::PeerUnreachable {
            peer,
            reason: reason.into(),
        };
        match error {
            OutboundFailure::DialFailure => unreachable("dial failed"),
            OutboundFailure::Timeout => NetworkError::Timeout { peer },
            OutboundFailure::ConnectionClosed => unreachable("connection closed"),
            OutboundFailure::UnsupportedProtocols => {
                unreachable("peer does not support the sync protocol")
            }
            OutboundFailure::Io(e) => match FrameError::from_io(&e) {
                Some(FrameError::TooLarge { len, max }) => {
                    Counters::inc(&self.counters.sync_protocol_violations);
                    NetworkError::Oversize {
                        len: *len,
                        max: *max,
                    }
                }
                Some(FrameError::NoResponse) => NetworkError::NoResponse { peer },
                Some(f @ FrameError::Truncated { .. }) => {
                    Counters::inc(&self.counters.sync_protocol_violations);
                    NetworkError::ProtocolViolation {
                        peer,
                        reason: f.to_string(),
                    }
                }
                None => NetworkError::PeerUnreachable {
                    peer,
                    reason: e.to_string(),
                },
            },
        }
    }

    // ---- admission -------------------------------------------------------------------------

    /// The admission status of a connected peer (if unknown: `Disabled` while admission is
    /// off, otherwise `Pending`, not admitted). A peer keeps the status it got while it stays
    /// connected, across difficulty changes (see [`Self::set_difficulty`]).
    fn admission_status(&self, peer: &PeerId) -> AdmissionStatus {
        self.peer_admission.get(peer).map_or(
            if self.admission.enabled() {
                AdmissionStatus::Pending
            } else {
                AdmissionStatus::Disabled
            },
            |a| a.status,
        )
    }

    /// Whether this node is exempt from admission (a validator): it proves nothing.
    fn local_exempt(&self) -> bool {
        self.admission.exempt.contains(&self.local_peer)
    }

    /// The proof this node sends on a new connection: its own nonce; without one, while its
    /// own difficulty is 0 and it is not exempt, the empty proof (nonce 0, valid at 0 bits),
    /// so that a peer requiring more refuses it and says how much; otherwise none.
    fn proof_to_send(&self) -> Option<u64> {
        match self.admission.own_nonce {
            Some(nonce) => Some(nonce),
            None if !self.admission.enabled() && !self.local_exempt() => Some(0),
            None => None,
        }
    }

    fn send_proof(&mut self, peer: PeerId, nonce: u64) {
        self.swarm
            .behaviour_mut()
            .admission
            .send_request(&peer, nonce.to_le_bytes().to_vec());
    }

    /// [`super::NetworkHandle::set_admission_difficulty`]: the difficulty required from now
    /// on. Admitted peers stay admitted; from non-zero to 0, pending peers are admitted at
    /// once. This node's own chain requires `bits` of it too, so a weaker own proof is solved
    /// again.
    fn set_difficulty(&mut self, bits: u8) {
        let old = self.admission.difficulty_bits;
        if bits == old {
            return;
        }
        self.admission.difficulty_bits = bits;
        info!(old, new = bits, "admission difficulty changed");
        if bits == 0 {
            let pending: Vec<PeerId> = self
                .peer_admission
                .iter()
                .filter(|(_, a)| a.status == AdmissionStatus::Pending)
                .map(|(p, _)| *p)
                .collect();
            for peer in pending {
                if let Some(a) = self.peer_admission.get_mut(&peer) {
                    a.status = AdmissionStatus::Disabled;
                }
                let score = self.admitted_app_score(&peer);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, score);
                info!(%peer, "pending peer admitted: admission is now disabled");
                self.update_discovery(peer);
                self.emit_lifecycle(NetworkEvent::PeerConnected { peer });
            }
        }
        self.consider_claim(bits, None);
    }

    /// A demand that our proof have `claim` bits, from a refusal by `from` or (`None`) from
    /// this node's own chain; starts, queues or ignores a solve (see [`judge_claim`]).
    fn consider_claim(&mut self, claim: u8, from: Option<PeerId>) {
        let trusted =
            from.is_none_or(|p| self.admission.exempt.contains(&p) || self.is_bootstrap(&p));
        let verdict = judge_claim(
            claim,
            trusted,
            self.local_exempt(),
            self.own_proof.bits,
            self.own_proof.attempted,
            self.own_proof.solving,
        );
        let verdict = match verdict {
            Claim::Solve | Claim::Queue if !self.admission.solve_on_demand => Claim::Ignore(
                "this node does not solve on demand (AdmissionConfig::solve_on_demand)",
            ),
            v => v,
        };
        match verdict {
            Claim::Solve => self.start_solve(claim),
            Claim::Queue => {
                self.own_proof.queued = self.own_proof.queued.max(claim);
                info!(bits = claim, peer = ?from, solving = ?self.own_proof.solving, "higher admission difficulty demanded; solving for it after the running solve");
            }
            Claim::Ignore(reason) => {
                if from.is_some() && verdict.is_suspect() {
                    Counters::inc(&self.counters.admission_claims_ignored);
                    warn!(bits = claim, peer = ?from, reason, "not solving for the admission difficulty a peer demands");
                } else {
                    debug!(bits = claim, peer = ?from, reason, "no new admission proof needed");
                }
            }
        }
    }

    /// Solves for `bits` on a blocking thread; the outcome arrives in [`Self::on_solved`].
    fn start_solve(&mut self, bits: u8) {
        self.own_proof.attempted = bits;
        self.own_proof.solving = Some(bits);
        info!(bits, own_bits = ?self.own_proof.bits, "solving a new admission proof of work for a higher difficulty");
        let tx = self.own_proof.results_tx.clone();
        let cancel = self.own_proof.cancel.0.clone();
        let path = self.own_proof.pow_file.clone();
        let genesis = self.admission.genesis_hash;
        let peer = self.local_peer;
        tokio::task::spawn_blocking(move || {
            let result = crate::admission::solve_cancellable(&genesis, &peer, bits, &cancel);
            if let (Ok(nonce), Some(path)) = (&result, &path) {
                if let Err(e) = crate::admission::store(path, &genesis, &peer, bits, *nonce) {
                    warn!(error = %e, "cannot store the new admission proof of work; using it anyway");
                }
            }
            // Fails only if the swarm task is gone.
            let _ = tx.blocking_send((bits, result));
        });
    }

    /// A background solve ended: adopt the proof, offer it to connected peers that have not
    /// answered ours yet, and solve for a higher claim that arrived meanwhile.
    fn on_solved(&mut self, bits: u8, result: Result<u64, crate::admission::AdmissionError>) {
        self.own_proof.solving = None;
        match result {
            Ok(nonce) => {
                let strength = crate::admission::proof_bits(
                    &self.admission.genesis_hash,
                    &self.local_peer,
                    nonce,
                );
                Counters::inc(&self.counters.admission_proofs_solved);
                info!(bits, strength, nonce, "new admission proof of work ready");
                if self.own_proof.bits.is_none_or(|own| strength > own) {
                    self.admission.own_nonce = Some(nonce);
                    self.own_proof.bits = Some(strength);
                }
                let unanswered: Vec<PeerId> = self
                    .connections
                    .keys()
                    .filter(|p| !self.own_proof.verdicts.contains_key(*p))
                    .copied()
                    .collect();
                if let Some(nonce) = self.admission.own_nonce {
                    for peer in unanswered {
                        self.send_proof(peer, nonce);
                    }
                }
            }
            Err(crate::admission::AdmissionError::Cancelled { .. }) => {
                debug!(bits, "admission proof of work search cancelled")
            }
            Err(e) => {
                warn!(bits, error = %e, "admission proof of work search failed; not retried for this difficulty")
            }
        }
        let queued = std::mem::take(&mut self.own_proof.queued);
        if queued > 0 {
            // Only trusted claims are queued.
            self.consider_claim(queued, None);
        }
    }

    /// First connection of `peer`: decide its admission state, penalize it in gossipsub until
    /// it proves, send our own proof.
    fn on_first_connection(&mut self, peer: PeerId) {
        let status = if !self.admission.enabled() {
            AdmissionStatus::Disabled
        } else if self.admission.exempt.contains(&peer) {
            AdmissionStatus::Exempt
        } else {
            AdmissionStatus::Pending
        };
        self.peer_admission.insert(
            peer,
            PeerAdmission {
                status,
                since: Instant::now(),
                proof: None,
            },
        );
        if self.admission.enabled() {
            // Exempt peers keep their fault penalties only; pending ones are graylisted.
            let score = if status == AdmissionStatus::Pending {
                APP_SCORE_UNADMITTED
            } else {
                self.admitted_app_score(&peer)
            };
            if !self
                .swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(&peer, score)
            {
                warn!(%peer, "gossipsub does not know the peer; cannot set its admission score");
            }
        }
        if let Some(nonce) = self.proof_to_send() {
            self.send_proof(peer, nonce);
        }
        self.update_discovery(peer);
        if status.is_admitted() {
            self.emit_lifecycle(NetworkEvent::PeerConnected { peer });
        }
    }

    /// Checks `peer`'s proof; `true` if the peer is (now) admitted.
    fn check_proof(&mut self, peer: PeerId, request: &[u8]) -> bool {
        let Some(state) = self.peer_admission.get(&peer).copied() else {
            return false;
        };
        let nonce = <[u8; ADMISSION_REQUEST_BYTES]>::try_from(request)
            .ok()
            .map(u64::from_le_bytes);
        match state.status {
            AdmissionStatus::Exempt => {
                // Not needed now; kept in case the peer loses its exemption.
                if let (Some(a), Some(n)) = (self.peer_admission.get_mut(&peer), nonce) {
                    a.proof = Some(n);
                }
                true
            }
            AdmissionStatus::Disabled | AdmissionStatus::Admitted => true,
            AdmissionStatus::Refused => false,
            AdmissionStatus::Pending => {
                let valid = nonce.is_some_and(|n| {
                    crate::admission::verify(
                        &self.admission.genesis_hash,
                        &peer,
                        n,
                        self.admission.difficulty_bits,
                    )
                });
                if valid {
                    self.admit(peer);
                } else {
                    self.refuse(peer, "invalid proof of work");
                }
                valid
            }
        }
    }

    /// [`super::NetworkHandle::exempt`]: the exempt set becomes the static exemptions plus
    /// `validators`. Connected pending peers that gain an exemption are exempt at once;
    /// connected exempt peers that lose it are admitted (valid proof sent) or pending; if
    /// this node loses its own exemption it starts proving (module docs, "Exemptions follow
    /// the validator set").
    fn set_exempt(&mut self, validators: Vec<PeerId>) {
        let was_exempt = self.local_exempt();
        let (exempt, left_out) = exempt_set(&self.static_exempt, validators, ADMISSION_EXEMPT_MAX);
        for peer in left_out {
            warn!(%peer, max = ADMISSION_EXEMPT_MAX, "admission exemptions full; validator peer not exempt");
        }
        let old = std::mem::replace(&mut self.admission.exempt, exempt);
        let added: Vec<PeerId> = self.admission.exempt.difference(&old).copied().collect();
        let removed: Vec<PeerId> = old.difference(&self.admission.exempt).copied().collect();
        if !added.is_empty() || !removed.is_empty() {
            info!(
                exempt = self.admission.exempt.len(),
                added = added.len(),
                removed = removed.len(),
                "admission exemptions follow the new validator set"
            );
        }
        for peer in added {
            self.on_exemption_granted(peer);
        }
        for peer in removed {
            self.on_exemption_withdrawn(peer);
        }
        if was_exempt && !self.local_exempt() {
            self.on_local_exemption_lost();
        }
    }

    /// `peer` became exempt: if it is connected and still pending, it is exempt at once.
    fn on_exemption_granted(&mut self, peer: PeerId) {
        let pending = self
            .peer_admission
            .get(&peer)
            .is_some_and(|a| a.status == AdmissionStatus::Pending);
        if !pending {
            return;
        }
        if let Some(a) = self.peer_admission.get_mut(&peer) {
            a.status = AdmissionStatus::Exempt;
        }
        let score = self.admitted_app_score(&peer);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        info!(%peer, "peer exempt from admission (validator of a new epoch)");
        self.update_discovery(peer);
        self.emit_lifecycle(NetworkEvent::PeerConnected { peer });
    }

    /// `peer` lost its exemption: if it is connected with status `Exempt`, it is admitted
    /// if the proof it sent is valid now, otherwise it must prove within the deadline from
    /// now (it is refused and disconnected after that, never banned).
    fn on_exemption_withdrawn(&mut self, peer: PeerId) {
        let Some(state) = self.peer_admission.get(&peer).copied() else {
            return;
        };
        let proof_valid = state.proof.is_some_and(|n| {
            crate::admission::verify(
                &self.admission.genesis_hash,
                &peer,
                n,
                self.admission.difficulty_bits,
            )
        });
        let status = after_withdrawal(state.status, self.admission.enabled(), proof_valid);
        if status == state.status {
            return;
        }
        Counters::inc(&self.counters.admission_exemptions_withdrawn);
        if let Some(a) = self.peer_admission.get_mut(&peer) {
            a.status = status;
            a.since = Instant::now();
            a.proof = None;
        }
        self.update_discovery(peer);
        match status {
            AdmissionStatus::Pending => {
                info!(%peer, deadline_ms = self.admission.deadline_ms, "peer no longer exempt from admission (left the validator set); it must prove its identity");
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, APP_SCORE_UNADMITTED);
                // The application sees only admitted peers (see `ConnectionClosed`).
                self.emit_lifecycle(NetworkEvent::PeerDisconnected { peer });
            }
            _ => {
                // Admitted (its proof) or Disabled (admission off): stays in, score unchanged.
                info!(%peer, status = status.as_str(), "peer no longer exempt from admission (left the validator set); admitted");
            }
        }
    }

    /// This node left the validator set: it proves its identity from now on. A proof valid
    /// at its own difficulty (or, at difficulty 0, its proof or the empty one) goes to every
    /// connected peer at once; otherwise it solves for that difficulty first
    /// ([`Self::consider_claim`], as for a raised difficulty) and [`Self::on_solved`] sends
    /// the proof to every connected peer.
    fn on_local_exemption_lost(&mut self) {
        let bits = self.admission.difficulty_bits;
        // Peers answered nothing of ours while we were exempt that matters now: whatever they
        // said, the proof (once there is one) goes to all of them.
        self.own_proof.verdicts.clear();
        let ready = bits == 0 || self.own_proof.bits.is_some_and(|own| own >= bits);
        info!(
            difficulty_bits = bits,
            own_bits = ?self.own_proof.bits,
            ready,
            "this node is no longer exempt from admission (left the validator set); proving its identity to its peers"
        );
        if !ready {
            self.consider_claim(bits, None);
            return;
        }
        if let Some(nonce) = self.proof_to_send() {
            let peers: Vec<PeerId> = self.connections.keys().copied().collect();
            for peer in peers {
                self.send_proof(peer, nonce);
            }
        }
    }

    fn admit(&mut self, peer: PeerId) {
        if let Some(a) = self.peer_admission.get_mut(&peer) {
            a.status = AdmissionStatus::Admitted;
        }
        Counters::inc(&self.counters.peers_admitted);
        info!(%peer, "peer admitted (valid proof of work)");
        self.update_discovery(peer);
        let score = self.admitted_app_score(&peer);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
        self.emit_lifecycle(NetworkEvent::PeerConnected { peer });
    }

    /// Marks a pending peer refused; [`Self::sweep_admission`] disconnects it after
    /// [`ADMISSION_REFUSED_LINGER`] (so that it can receive our refusal).
    fn refuse(&mut self, peer: PeerId, reason: &str) {
        let Some(a) = self.peer_admission.get_mut(&peer) else {
            return;
        };
        if a.status != AdmissionStatus::Pending {
            return;
        }
        a.status = AdmissionStatus::Refused;
        a.since = Instant::now();
        Counters::inc(&self.counters.peers_refused);
        self.update_discovery(peer);
        self.candidates.remove(&peer);
        warn!(%peer, reason, "peer refused admission; disconnecting");
    }

    /// Lowers `peer`'s application score by the fault's penalty. Penalties accumulate across
    /// reconnects (at most [`PENALTIES_MAX`] peers remembered; when full, the table is
    /// reset) and take effect only once the peer is admitted (a pending peer's score is the
    /// admission penalty).
    fn penalize(&mut self, peer: PeerId, fault: super::PeerFault) {
        if self.penalties.len() >= PENALTIES_MAX && !self.penalties.contains_key(&peer) {
            self.penalties.clear();
        }
        let total = {
            let p = self.penalties.entry(peer).or_insert(0.0);
            *p += fault.penalty();
            *p
        };
        Counters::inc(&self.counters.peer_faults);
        warn!(%peer, fault = fault.as_str(), penalty_total = total, "peer fault");
        let admitted = self.peer_admission.get(&peer).is_some_and(|a| {
            matches!(
                a.status,
                AdmissionStatus::Admitted | AdmissionStatus::Disabled | AdmissionStatus::Exempt
            )
        });
        if admitted {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .set_application_score(&peer, -total);
        }
    }

    /// The application score of an admitted peer: minus its recorded fault penalties.
    fn admitted_app_score(&self, peer: &PeerId) -> f64 {
        -self.penalties.get(peer).copied().unwrap_or(0.0)
    }

    /// Disconnects admitted non-validator peers whose gossipsub score fell below
    /// [`SCORE_DISCONNECT`] and bans those below [`SCORE_BAN`]; expires old bans.
    fn sweep_reputation(&mut self) {
        let now = now_ms();
        self.bans.retain(|_, until| *until > now);
        self.ip_bans.retain(|_, until| *until > now);
        let mut low = Vec::new();
        for (peer, a) in &self.peer_admission {
            // Unadmitted peers carry the admission penalty; they are handled by the deadline.
            if !matches!(
                a.status,
                AdmissionStatus::Admitted | AdmissionStatus::Disabled
            ) {
                continue;
            }
            if let Some(score) = self.swarm.behaviour().gossipsub.peer_score(peer) {
                if score < SCORE_DISCONNECT {
                    low.push((*peer, score));
                }
            }
        }
        for (peer, score) in low {
            if self.admission.exempt.contains(&peer) {
                warn!(%peer, score, "validator peer has a low score; never banned or disconnected for it");
                continue;
            }
            Counters::inc(&self.counters.peers_disconnected_score);
            if self.strikes.len() >= STRIKES_MAX && !self.strikes.contains_key(&peer) {
                self.strikes.clear();
            }
            let strikes = {
                let s = self.strikes.entry(peer).or_insert(0);
                *s = s.saturating_add(1);
                *s
            };
            if score < SCORE_BAN || strikes >= SCORE_STRIKES_BAN {
                self.strikes.remove(&peer);
                let until = now.saturating_add(self.admission.ban_duration_ms);
                if self.bans.len() >= BANS_MAX {
                    if let Some(first) = self.bans.iter().min_by_key(|(_, u)| **u).map(|(p, _)| *p)
                    {
                        self.bans.remove(&first);
                    }
                }
                self.bans.insert(peer, until);
                Counters::inc(&self.counters.peers_banned);
                warn!(%peer, score, strikes, until_ms = until, "peer banned for a low score");
                if let Some(sink) = &self.admission.ban_sink {
                    sink(peer, until);
                }
                self.count_ban_against_ips(peer, now);
                // A banned peer leaves the routing table and is not dialed again.
                if let Some(kad) = self.swarm.behaviour_mut().discovery.as_mut() {
                    kad.refuse(peer);
                }
                self.candidates.remove(&peer);
            } else {
                warn!(%peer, score, strikes, "peer disconnected for a low score");
            }
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Refuses pending peers past the deadline and disconnects refused ones (also once
    /// admission has been turned off: they were refused before); then applies reputation.
    fn sweep_admission(&mut self) {
        self.sweep_reputation();
        let enabled = self.admission.enabled();
        let deadline = Duration::from_millis(self.admission.deadline_ms);
        let mut late = Vec::new();
        let mut drop = Vec::new();
        for (peer, a) in &self.peer_admission {
            match a.status {
                AdmissionStatus::Pending if enabled && a.since.elapsed() >= deadline => {
                    late.push(*peer)
                }
                AdmissionStatus::Refused if a.since.elapsed() >= ADMISSION_REFUSED_LINGER => {
                    drop.push(*peer)
                }
                _ => {}
            }
        }
        for peer in late {
            self.refuse(peer, "no proof of work within the deadline");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        for peer in drop {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_admission(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let admitted = self.check_proof(peer, &request);
                    let answer = admission_response(admitted, self.admission.difficulty_bits);
                    if self
                        .swarm
                        .behaviour_mut()
                        .admission
                        .send_response(channel, answer)
                        .is_err()
                    {
                        debug!(%peer, "admission response dropped: stream closed");
                    }
                }
                request_response::Message::Response { response, .. } => {
                    self.on_admission_response(peer, &response)
                }
            },
            request_response::Event::OutboundFailure { peer, error, .. } => match error {
                OutboundFailure::UnsupportedProtocols => {
                    debug!(%peer, "peer does not speak admission/2 (another version or chain)")
                }
                error => debug!(%peer, %error, "sending our admission proof failed"),
            },
            request_response::Event::InboundFailure { peer, error, .. } => {
                if let request_response::InboundFailure::Io(e) = &error {
                    if FrameError::from_io(e).is_some() {
                        self.refuse(peer, "malformed admission frame");
                        return;
                    }
                }
                debug!(%peer, %error, "inbound admission exchange failed")
            }
            request_response::Event::ResponseSent { peer, .. } => {
                trace!(%peer, "admission response sent")
            }
        }
    }

    /// A peer's answer to our proof: remember the verdict; a refusal demanding more bits than
    /// our proof has may start a solve (see [`Self::consider_claim`]).
    fn on_admission_response(&mut self, peer: PeerId, response: &[u8]) {
        let Some((admitted, required_bits)) = parse_admission_response(response) else {
            warn!(%peer, len = response.len(), "malformed admission response; ignored");
            return;
        };
        if self.connections.contains_key(&peer) {
            self.own_proof.verdicts.insert(peer, admitted);
        }
        if admitted {
            debug!(%peer, required_bits, "peer accepted our admission proof");
            return;
        }
        warn!(%peer, required_bits, own_bits = ?self.own_proof.bits, "peer refused our admission proof");
        self.consider_claim(required_bits, Some(peer));
    }

    fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event {
            debug!(peer = %peer_id, agent = %info.agent_version, protocol = %info.protocol_version, "identified peer");
            if info.protocol_version != self.protocol_version {
                warn!(
                    peer = %peer_id,
                    theirs = %info.protocol_version,
                    ours = %self.protocol_version,
                    "peer runs another chain or protocol version; disconnecting"
                );
                let _ = self.swarm.disconnect_peer_id(peer_id);
                return;
            }
            if !self.connections.contains_key(&peer_id) {
                return;
            }
            let addrs =
                discovery::dialable_addrs(&peer_id, &info.listen_addrs, self.allow_loopback);
            let speaks_kad = info
                .protocols
                .iter()
                .any(|p| p.as_ref() == self.kad_protocol);
            self.identified.insert(peer_id, (addrs, speaks_kad));
            self.update_discovery(peer_id);
        }
    }

    // ---- NAT traversal ---------------------------------------------------------------------

    fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                if !renewal {
                    info!(relay = %relay_peer_id, "relay reservation accepted; reachable through the relay");
                }
                if self.relays.iter().any(|(r, _)| *r == relay_peer_id) {
                    self.reservations.insert(relay_peer_id);
                }
                self.counters
                    .relay_reservations_held
                    .store(self.reservations.len() as u64, Ordering::Relaxed);
            }
            other => debug!(event = ?other, "relay client event"),
        }
    }

    fn on_relay(&mut self, event: relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed,
            } => {
                Counters::inc(&self.counters.relay_reservations_served);
                debug!(peer = %src_peer_id, renewed, "relay: reservation accepted");
            }
            relay::Event::ReservationReqDenied { src_peer_id, .. } => {
                Counters::inc(&self.counters.relay_reservations_denied);
                debug!(peer = %src_peer_id, admitted = self.relay_gate.allows(&src_peer_id), "relay: reservation denied");
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                Counters::inc(&self.counters.relay_circuits_served);
                debug!(src = %src_peer_id, dst = %dst_peer_id, "relay: circuit opened");
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                ..
            } => {
                Counters::inc(&self.counters.relay_circuits_denied);
                debug!(src = %src_peer_id, dst = %dst_peer_id, "relay: circuit denied");
            }
            other => trace!(event = ?other, "relay event"),
        }
    }

    fn on_dcutr(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(connection) => {
                Counters::inc(&self.counters.dcutr_upgrades);
                info!(peer = %event.remote_peer_id, ?connection, "hole punching upgraded a relayed connection to a direct one");
            }
            Err(error) => {
                Counters::inc(&self.counters.dcutr_failures);
                info!(peer = %event.remote_peer_id, %error, "hole punching failed; the connection stays relayed");
            }
        }
    }

    fn on_autonat(&mut self, event: autonat::Event) {
        if let autonat::Event::StatusChanged { old, new } = event {
            let reachability = match &new {
                autonat::NatStatus::Public(_) => Reachability::Public,
                autonat::NatStatus::Private => Reachability::Private,
                autonat::NatStatus::Unknown => Reachability::Unknown,
            };
            self.counters
                .nat_status
                .store(reachability.code(), Ordering::Relaxed);
            info!(
                ?old,
                ?new,
                reachability = reachability.as_str(),
                "AutoNAT: reachability changed"
            );
        }
    }

    // ---- discovery -------------------------------------------------------------------------

    /// Tells the Kademlia gate `peer`'s standing now: an admitted peer's requests are served
    /// and, once it has announced through identify that it speaks this chain's Kademlia
    /// protocol, it enters the routing table with the addresses it announced (replacing
    /// those it had) and becomes a dial candidate (for when it disconnects); a pending peer's
    /// requests are held; a refused one's dropped, and it leaves the routing table.
    fn update_discovery(&mut self, peer: PeerId) {
        let status = self.peer_admission.get(&peer).map(|a| a.status);
        // The relay service follows admission exactly (same call sites).
        self.relay_gate
            .set(peer, status.is_some_and(AdmissionStatus::is_admitted));
        let bootstrap = self.is_bootstrap(&peer);
        let Some(kad) = self.swarm.behaviour_mut().discovery.as_mut() else {
            return;
        };
        match status {
            Some(s) if s.is_admitted() => {
                kad.admit(peer);
                if let Some((addrs, true)) = self.identified.get(&peer) {
                    if !addrs.is_empty() {
                        let k = kad.kad_mut();
                        k.remove_peer(&peer);
                        for a in addrs {
                            k.add_address(&peer, a.clone());
                        }
                        if !bootstrap
                            && self.candidates.offer(
                                peer,
                                addrs.clone(),
                                PeerSource::Identify,
                                Instant::now(),
                            )
                        {
                            Counters::inc(&self.counters.discovery_found_identify);
                        }
                    }
                }
            }
            Some(AdmissionStatus::Refused) => kad.refuse(peer),
            Some(_) => kad.unadmit(peer),
            None => {}
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => {
                if let kad::QueryResult::GetClosestPeers(result) = result {
                    let peers = match result {
                        Ok(ok) => ok.peers,
                        Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                    };
                    let now = Instant::now();
                    let found = peers.len();
                    let new = peers.iter().any(|p| {
                        p.peer_id != self.local_peer && !self.connections.contains_key(&p.peer_id)
                    });
                    for p in peers {
                        if p.peer_id == self.local_peer
                            || self.bans.get(&p.peer_id).is_some_and(|u| *u > now_ms())
                        {
                            continue;
                        }
                        let addrs =
                            discovery::dialable_addrs(&p.peer_id, &p.addrs, self.allow_loopback);
                        if self
                            .candidates
                            .offer(p.peer_id, addrs, PeerSource::Kademlia, now)
                        {
                            Counters::inc(&self.counters.discovery_found_kademlia);
                        }
                    }
                    debug!(
                        found,
                        candidates = self.candidates.len(),
                        last = step.last,
                        "random walk step"
                    );
                    if self.walk_in_flight == Some(id) {
                        self.walk_found_new |= new;
                        if step.last {
                            self.walk_in_flight = None;
                        }
                    }
                }
            }
            other => trace!(event = ?other, "kademlia event"),
        }
    }

    /// One discovery tick (module docs of [`discovery`]): below `peers_target` connected
    /// peers, dial up to [`discovery::DIALS_PER_TICK_MAX`] due candidates; a validator also
    /// dials (and looks up) the validators of its set it is not connected to; start a random
    /// walk (or a lookup of a missing validator) if one is due and none is running.
    fn discovery_tick(&mut self) {
        if !self.swarm.behaviour().discovery.is_enabled() {
            return;
        }
        let now = Instant::now();
        self.dialing.retain(|_, (_, t)| t.elapsed() < DIALING_STALE);
        let heard = self
            .swarm
            .behaviour_mut()
            .discovery
            .as_mut()
            .map(|kad| kad.take_heard())
            .unwrap_or_default();
        let banned_now = now_ms();
        for (peer, addrs) in heard {
            if peer == self.local_peer
                || self.is_bootstrap(&peer)
                || self.bans.get(&peer).is_some_and(|u| *u > banned_now)
            {
                continue;
            }
            let addrs = discovery::dialable_addrs(&peer, &addrs, self.allow_loopback);
            if self
                .candidates
                .offer(peer, addrs, PeerSource::Kademlia, now)
            {
                Counters::inc(&self.counters.discovery_found_kademlia);
            }
        }
        let connected = self.connections.len();
        let below = connected < self.peers_target;
        let missing_validators: Vec<PeerId> = if self.local_exempt() {
            self.admission
                .exempt
                .iter()
                .filter(|p| **p != self.local_peer && !self.connections.contains_key(p))
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        let dials = if below {
            (self.peers_target - connected).min(discovery::DIALS_PER_TICK_MAX)
        } else if !missing_validators.is_empty() {
            discovery::DIALS_PER_TICK_MAX
        } else {
            0
        };
        if dials > 0 {
            let due = {
                let connections = &self.connections;
                let dialing = &self.dialing;
                let bans = &self.bans;
                let bootstrap = &self.bootstrap;
                let missing = &missing_validators;
                let local = self.local_peer;
                self.candidates.take_due(
                    now,
                    self.discovery_interval,
                    dials,
                    |p| {
                        *p == local
                            || connections.contains_key(p)
                            || dialing.contains_key(p)
                            || bootstrap.iter().any(|(b, _)| b == p)
                            || bans.get(p).is_some_and(|u| *u > banned_now)
                            || (!below && !missing.contains(p))
                    },
                    |p| missing.contains(p),
                )
            };
            for (peer, addrs, source) in due {
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        Counters::inc(&self.counters.discovery_dials);
                        debug!(%peer, source = source.as_str(), "dialing a discovered peer");
                        self.dialing.insert(peer, (source, now));
                    }
                    Err(DialError::DialPeerConditionFalse(_)) => {}
                    Err(e) => {
                        debug!(%peer, error = %e, "cannot dial a discovered peer");
                        Counters::inc(&self.counters.discovery_dial_failures);
                        self.candidates
                            .dial_failed(&peer, now, self.discovery_interval);
                    }
                }
            }
        }
        // Satisfied: the target is met (and no validator is missing), or the last walk found
        // nobody new (a small network, or a validator that is offline): walks back off.
        let satisfied = (!below && missing_validators.is_empty()) || !self.walk_found_new;
        let table_len = self
            .swarm
            .behaviour_mut()
            .discovery
            .as_mut()
            .map_or(0, |kad| kad.routing_table_len());
        Counters::set(
            &self.counters.discovery_routing_table_peers,
            table_len as u64,
        );
        Counters::set(
            &self.counters.discovery_candidates,
            self.candidates.len() as u64,
        );
        let table_empty = table_len == 0;
        // With an empty routing table there is nobody to ask: wait (the bootstrap peers
        // enter it once admitted and identified).
        if self.walk_in_flight.is_none() && !table_empty && self.walk.due(now, satisfied) {
            self.walk_found_new = false;
            let key = if missing_validators.is_empty() {
                discovery::random_key()
            } else {
                self.lookup_cursor = self.lookup_cursor.wrapping_add(1);
                missing_validators[self.lookup_cursor % missing_validators.len()]
            };
            if let Some(kad) = self.swarm.behaviour_mut().discovery.as_mut() {
                let id = kad.kad_mut().get_closest_peers(key);
                self.walk_in_flight = Some(id);
                Counters::inc(&self.counters.discovery_walks);
                trace!(%key, "random walk started");
            }
        }
    }
}

/// libp2p listens with `SO_REUSEPORT`, so a second node on the same port would silently share
/// it (the kernel splits inbound connections between them). Refuse that: probe with a plain
/// socket, which cannot bind next to a live listener. Port 0 and non-IP addresses are not
/// checked.
fn ensure_port_free(addr: &Multiaddr) -> Result<(), NetworkError> {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if port != 0 => std::net::TcpListener::bind((ip, port))
            .map(drop)
            .map_err(|e| transport_err(&format!("listen on {addr}"), e)),
        _ => Ok(()),
    }
}

/// The IP address in `addr` (its first `/ip4` or `/ip6` component), if any.
/// The remote IP address of a connection, `None` for a relayed one (its address is the
/// relay's, or none: a relayed peer is not counted against, or banned by, the relay's IP).
fn endpoint_ip(endpoint: &ConnectedPoint) -> Option<IpAddr> {
    if endpoint.is_relayed() {
        return None;
    }
    ip_of(endpoint.get_remote_address())
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lifecycle_peer(event: &NetworkEvent) -> Option<PeerId> {
    match event {
        NetworkEvent::PeerConnected { peer } | NetworkEvent::PeerDisconnected { peer } => {
            Some(*peer)
        }
        _ => None,
    }
}

#[cfg(test)]
mod gossip_config_tests {
    use super::*;

    /// Messages are unsigned (the payloads carry their own signatures), and a message with
    /// the content of one this node published is a duplicate, not a fault of the peer that
    /// forwards it: without `allow_self_origin`, gossipsub penalised such peers until the
    /// validators of a loaded testnet graylisted each other and views timed out.
    #[test]
    fn gossip_is_unsigned_and_own_content_is_not_a_fault() {
        let config = NetworkConfig {
            keypair: libp2p::identity::Keypair::generate_ed25519(),
            listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            bootstrap: Vec::new(),
            namespace: "0123456789abcdef".into(),
            gossip_bytes_max: 64 * 1024,
            sync_request_bytes_max: 1024,
            sync_response_bytes_max: 64 * 1024,
            sync_request_timeout_ms: 3000,
            event_queue_max: 64,
            command_queue_max: 64,
            redial_interval_ms: 200,
            connections_max: 16,
            discovery: super::super::DiscoveryConfig::disabled(),
            nat: crate::network::NatConfig::disabled(),
            request_pacing: Default::default(),
        };
        let c = gossip_config(&config).expect("valid gossipsub config");
        assert!(matches!(c.validation_mode(), ValidationMode::Anonymous));
        assert!(c.allow_self_origin());
        assert!(c.validate_messages());
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;

    const MAX: u8 = crate::admission::DIFFICULTY_BITS_MAX;

    #[test]
    fn responses_are_exactly_two_bytes_with_a_known_status() {
        assert_eq!(admission_response(true, 0), vec![0, 0]);
        assert_eq!(admission_response(false, 24), vec![1, 24]);
        assert_eq!(parse_admission_response(&[0, 7]), Some((true, 7)));
        assert_eq!(parse_admission_response(&[1, 32]), Some((false, 32)));
        for bad in [
            &[][..],
            &[0],
            &[1],
            &[2, 8],
            &[255, 0],
            &[0, 8, 0],
            &[1, 8, 8],
        ] {
            assert_eq!(parse_admission_response(bad), None, "{bad:?}");
        }
        assert_eq!(admission_response(false, 9).len(), ADMISSION_RESPONSE_BYTES);
    }

    #[test]
    fn claims_are_solved_once_per_higher_trusted_value() {
        // A trusted demand above our proof: solve.
        assert_eq!(judge_claim(8, true, false, Some(4), 0, None), Claim::Solve);
        // No proof yet (admission was off): solve.
        assert_eq!(judge_claim(6, true, false, None, 0, None), Claim::Solve);
        // While solving 8, the same value again is not solved twice; a higher one waits.
        assert!(matches!(
            judge_claim(8, true, false, Some(4), 8, Some(8)),
            Claim::Ignore(_)
        ));
        assert_eq!(
            judge_claim(10, true, false, Some(4), 8, Some(8)),
            Claim::Queue
        );
        // After a failed solve for 8, neither 8 nor less is tried again; more is.
        assert!(matches!(
            judge_claim(8, true, false, Some(4), 8, None),
            Claim::Ignore(_)
        ));
        assert!(matches!(
            judge_claim(7, true, false, Some(4), 8, None),
            Claim::Ignore(_)
        ));
        assert_eq!(judge_claim(9, true, false, Some(4), 8, None), Claim::Solve);
        // Our proof already suffices (a refusal for another reason), or nothing is demanded.
        assert!(matches!(
            judge_claim(4, true, false, Some(4), 0, None),
            Claim::Ignore(_)
        ));
        assert!(matches!(
            judge_claim(0, true, false, None, 0, None),
            Claim::Ignore(_)
        ));
    }

    #[test]
    fn withdrawn_exemptions_admit_a_proven_peer_and_make_the_others_prove() {
        use AdmissionStatus::*;
        // Let in as exempt: admitted with a valid proof, pending without.
        assert_eq!(after_withdrawal(Exempt, true, true), Admitted);
        assert_eq!(after_withdrawal(Exempt, true, false), Pending);
        // Admission off: every peer is in.
        assert_eq!(after_withdrawal(Exempt, false, false), Disabled);
        // Peers not let in by their exemption keep their status.
        for status in [Disabled, Admitted, Pending, Refused] {
            for (enabled, valid) in [(true, true), (true, false), (false, false)] {
                assert_eq!(after_withdrawal(status, enabled, valid), status);
            }
        }
    }

    #[test]
    fn the_exempt_set_is_the_static_one_plus_exactly_the_current_validators() {
        let fixed: HashSet<PeerId> = [PeerId::random()].into();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let (set, left_out) = exempt_set(&fixed, [a, b], 8);
        assert_eq!(set, fixed.iter().copied().chain([a, b]).collect());
        assert!(left_out.is_empty());
        // The next set replaces the previous one; static exemptions stay.
        let (set, _) = exempt_set(&fixed, [b, c], 8);
        assert_eq!(set, fixed.iter().copied().chain([b, c]).collect());
        assert!(!set.contains(&a));
        let (set, _) = exempt_set(&fixed, Vec::new(), 8);
        assert_eq!(set, fixed);
        // A static peer named again counts once; beyond the bound, validators are left out.
        let (set, left_out) = exempt_set(&fixed, fixed.iter().copied().chain([a, b, c]), 3);
        assert_eq!(set.len(), 3);
        assert!(fixed.is_subset(&set));
        assert_eq!(left_out.len(), 1);
    }

    #[test]
    fn untrusted_out_of_range_and_exempt_claims_start_nothing() {
        // Any identity can claim 32 bits: only trusted claims count.
        let untrusted = judge_claim(MAX, false, false, Some(4), 0, None);
        assert_eq!(untrusted, Claim::Ignore(IGNORE_UNTRUSTED));
        assert!(untrusted.is_suspect());
        let above = judge_claim(MAX + 1, true, false, Some(4), 0, None);
        assert_eq!(above, Claim::Ignore(IGNORE_ABOVE_MAX));
        assert!(above.is_suspect());
        assert_eq!(judge_claim(u8::MAX, true, false, None, 0, None), above);
        // A validator proves nothing, whoever asks.
        let exempt = judge_claim(8, true, true, None, 0, None);
        assert!(matches!(exempt, Claim::Ignore(_)) && !exempt.is_suspect());
        // The largest trusted value is solved (bounded by the attempt bound).
        assert_eq!(
            judge_claim(MAX, true, false, Some(4), 0, None),
            Claim::Solve
        );
    }
}
