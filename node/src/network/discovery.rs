//! Peer discovery: Kademlia over admitted peers only, identify-based address learning, and
//! the bounded dialing and random-walk policy that fills a node's peer set up to
//! [`super::DiscoveryConfig::peers_target`] (see `docs/network.md`).
//!
//! - `AdmittedKad` wraps libp2p's Kademlia behaviour (`/cairn/{namespace}/kad/1.0.0`) so
//!   that only admitted peers are served: a `FIND_NODE` request from a peer that is not (yet)
//!   admitted is held (at most [`HELD_REQUESTS_PER_PEER_MAX`] per peer) until the swarm task
//!   admits it and dropped unanswered if it is refused or disconnects; record and provider
//!   requests are never served (Cairn keeps no DHT records). Routing-table inserts are
//!   manual (`BucketInserts::Manual`): the swarm task adds a peer only once it is admitted
//!   and identified as speaking this chain's Kademlia protocol, with the addresses it
//!   announced through identify (filtered by [`dialable_addrs`]).
//! - [`Candidates`] is the bounded table of peers to dial, learned from random walks
//!   (`kademlia`) or from a peer's own identify announcement (`identify`), with per-peer
//!   exponential backoff after failed dials.
//! - [`WalkSchedule`] bounds random walks: at most one per `discovery_interval_ms` while the
//!   node has fewer peers than its target, backing off (doubling, up to
//!   [`WALK_BACKOFF_FACTOR_MAX`] times the interval) once the target is met.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::kad::{self, store::MemoryStore};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tracing::debug;

use super::Counters;

/// Largest Kademlia message, sent or received, in bytes (set explicitly on the protocol;
/// libp2p's default is the same 16 KiB). A `FIND_NODE` answer carries at most
/// [`kad::K_VALUE`] (20) peers; with at most [`IDENTIFY_ADDRS_MAX`] addresses of at most a
/// few dozen bytes each, it stays well below.
pub const KAD_PACKET_BYTES_MAX: usize = 16 * 1024;

/// Bound on one Kademlia query (a random walk or a validator lookup).
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on one Kademlia request/response exchange on a stream.
pub const KAD_STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// `FIND_NODE` requests held per not-yet-admitted peer (answered once it is admitted); more
/// are dropped unanswered.
pub const HELD_REQUESTS_PER_PEER_MAX: usize = 4;

/// Most addresses kept per peer, from identify or a Kademlia answer.
pub const IDENTIFY_ADDRS_MAX: usize = 8;

/// Peers named in Kademlia answers waiting for the swarm task (drained every discovery
/// tick); beyond it the oldest are dropped.
pub const HEARD_MAX: usize = 256;

/// Most dial candidates remembered; when full, the entry with the most failed dials (then
/// the oldest) is dropped for a new one.
pub const CANDIDATES_MAX: usize = 256;

/// Most discovery dials started per discovery tick.
pub const DIALS_PER_TICK_MAX: usize = 4;

/// A candidate is forgotten after this many failed dials in a row.
pub const DIAL_FAILURES_MAX: u32 = 5;

/// Random walks back off to at most this many times `discovery_interval_ms` once the peer
/// target is met.
pub const WALK_BACKOFF_FACTOR_MAX: u32 = 32;

/// How a connected peer was found (`getPeers` `found`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerSource {
    /// Named in the configuration (`p2p.bootstrap`).
    Configured,
    /// Dialed at an address a Kademlia answer gave (a random walk, a validator lookup, or a
    /// Kademlia query's own dial).
    Kademlia,
    /// Dialed at an address the peer itself announced through identify on an earlier
    /// connection.
    Identify,
    /// It dialed us.
    Inbound,
}

impl PeerSource {
    /// Lower-case name: `configured`, `kademlia`, `identify`, `inbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerSource::Configured => "configured",
            PeerSource::Kademlia => "kademlia",
            PeerSource::Identify => "identify",
            PeerSource::Inbound => "inbound",
        }
    }
}

/// The event kad's connection handler reports to the behaviour (the type is not exported by
/// `libp2p-kad`; it is reached through the behaviour's handler type).
type KadHandlerEvent =
    <<kad::Behaviour<MemoryStore> as NetworkBehaviour>::ConnectionHandler as ConnectionHandler>::ToBehaviour;

/// What an inbound Kademlia handler event asks of us.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// `FIND_NODE`: the peers of our routing table closest to a key.
    FindNode,
    /// A record or provider request or announcement: never served.
    Record,
    /// Not a request (answers to our queries, protocol confirmation).
    Other,
}

fn ask(event: &KadHandlerEvent) -> Ask {
    match event {
        KadHandlerEvent::FindNodeReq { .. } => Ask::FindNode,
        KadHandlerEvent::GetProvidersReq { .. }
        | KadHandlerEvent::AddProvider { .. }
        | KadHandlerEvent::GetRecord { .. }
        | KadHandlerEvent::PutRecord { .. } => Ask::Record,
        _ => Ask::Other,
    }
}

/// The Kademlia protocol name of a chain: `/cairn/{namespace}/kad/1.0.0`, so that nodes of
/// different chains never share a DHT.
pub fn kad_protocol(namespace: &str) -> String {
    format!("/cairn/{namespace}/kad/1.0.0")
}

/// Kademlia behind the admission gate (module docs). The swarm task tells it each peer's
/// standing with [`AdmittedKad::admit`], [`AdmittedKad::unadmit`] and
/// [`AdmittedKad::refuse`].
pub(crate) struct AdmittedKad {
    kad: kad::Behaviour<MemoryStore>,
    /// Connected peers admitted (or exempt, or admission off): their requests are served.
    admitted: HashSet<PeerId>,
    /// Connected peers refused: their requests are dropped.
    refused: HashSet<PeerId>,
    /// Requests of connected peers not yet admitted, at most
    /// [`HELD_REQUESTS_PER_PEER_MAX`] each (keys: connected peers).
    held: HashMap<PeerId, VecDeque<(ConnectionId, KadHandlerEvent)>>,
    /// Peers (and addresses) named in `FIND_NODE` answers of admitted peers to our queries,
    /// at most [`HEARD_MAX`], oldest dropped first.
    heard: VecDeque<(PeerId, Vec<Multiaddr>)>,
    counters: Arc<Counters>,
}

impl AdmittedKad {
    /// Kademlia for the chain `namespace` with this node's id `local`: server mode, manual
    /// routing-table inserts, no records, explicit packet and time bounds.
    ///
    /// # Errors
    /// The protocol name is not a valid stream protocol (the namespace was validated, so
    /// this does not happen).
    pub(crate) fn new(
        local: PeerId,
        namespace: &str,
        counters: Arc<Counters>,
    ) -> Result<Self, libp2p::swarm::InvalidProtocol> {
        let protocol = StreamProtocol::try_from_owned(kad_protocol(namespace))?;
        let mut config = kad::Config::new(protocol);
        config
            .set_max_packet_size(KAD_PACKET_BYTES_MAX)
            .set_query_timeout(KAD_QUERY_TIMEOUT)
            .set_substreams_timeout(KAD_STREAM_TIMEOUT)
            .set_kbucket_inserts(kad::BucketInserts::Manual)
            .set_record_filtering(kad::StoreInserts::FilterBoth)
            .set_caching(kad::Caching::Disabled)
            .set_replication_interval(None)
            .set_publication_interval(None)
            .set_provider_publication_interval(None)
            // Walks are ours, bounded by `WalkSchedule`.
            .set_periodic_bootstrap_interval(None);
        // No records are ever stored (`FilterBoth`, record requests dropped); the store is
        // bounded anyway.
        let store = MemoryStore::with_config(
            local,
            kad::store::MemoryStoreConfig {
                max_records: 1,
                max_value_bytes: 1,
                max_providers_per_key: 1,
                max_provided_keys: 1,
            },
        );
        let mut kad = kad::Behaviour::with_config(local, store, config);
        // Serve (to admitted peers) whatever our external addresses: peers reach us at the
        // address they dialed or the one we announce.
        kad.set_mode(Some(kad::Mode::Server));
        Ok(AdmittedKad {
            kad,
            admitted: HashSet::new(),
            refused: HashSet::new(),
            held: HashMap::new(),
            heard: VecDeque::new(),
            counters,
        })
    }

    /// The Kademlia behaviour (queries, routing table).
    pub(crate) fn kad_mut(&mut self) -> &mut kad::Behaviour<MemoryStore> {
        &mut self.kad
    }

    /// `peer` is admitted: its held requests are answered now, later ones at once.
    pub(crate) fn admit(&mut self, peer: PeerId) {
        self.refused.remove(&peer);
        self.admitted.insert(peer);
        if let Some(held) = self.held.remove(&peer) {
            for (connection, event) in held {
                self.kad
                    .on_connection_handler_event(peer, connection, event);
            }
        }
    }

    /// `peer` is connected but no longer admitted (it lost a validator exemption and must
    /// prove): its requests are held again.
    pub(crate) fn unadmit(&mut self, peer: PeerId) {
        self.admitted.remove(&peer);
    }

    /// `peer` was refused (or banned): its requests are dropped unanswered and it leaves the
    /// routing table.
    pub(crate) fn refuse(&mut self, peer: PeerId) {
        self.admitted.remove(&peer);
        self.refused.insert(peer);
        self.drop_held(&peer);
        self.kad.remove_peer(&peer);
    }

    fn drop_held(&mut self, peer: &PeerId) {
        if let Some(held) = self.held.remove(peer) {
            for _ in held {
                Counters::inc(&self.counters.kad_requests_refused);
            }
        }
    }

    /// Takes the peers named in Kademlia answers since the last call (each with the
    /// addresses the answer gave, unfiltered).
    pub(crate) fn take_heard(&mut self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        self.heard.drain(..).collect()
    }

    /// Number of peers in the routing table.
    pub(crate) fn routing_table_len(&mut self) -> usize {
        self.kad.kbuckets().map(|b| b.num_entries()).sum()
    }

    /// Peer ids in the routing table.
    pub(crate) fn routing_table(&mut self) -> Vec<PeerId> {
        let mut peers = Vec::new();
        for bucket in self.kad.kbuckets() {
            for entry in bucket.iter() {
                peers.push(*entry.node.key.preimage());
            }
        }
        peers
    }
}

impl NetworkBehaviour for AdmittedKad {
    type ConnectionHandler = <kad::Behaviour<MemoryStore> as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.kad
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.kad
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.kad.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.kad.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(closed) = &event {
            if closed.remaining_established == 0 {
                let peer = closed.peer_id;
                self.admitted.remove(&peer);
                self.refused.remove(&peer);
                self.drop_held(&peer);
            }
        }
        self.kad.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match ask(&event) {
            Ask::Other => {
                if let KadHandlerEvent::FindNodeRes { closer_peers, .. } = &event {
                    // What an admitted peer answered to our query: dial candidates. The
                    // query itself goes on inside kad (it contacts them in turn).
                    if self.admitted.contains(&peer) {
                        for p in closer_peers.iter().take(kad::K_VALUE.get()) {
                            if self.heard.len() >= HEARD_MAX {
                                self.heard.pop_front();
                            }
                            self.heard.push_back((p.node_id, p.multiaddrs.clone()));
                        }
                    }
                }
                self.kad
                    .on_connection_handler_event(peer, connection, event)
            }
            Ask::Record => {
                Counters::inc(&self.counters.kad_requests_refused);
                debug!(%peer, "Kademlia record request; Cairn keeps no DHT records, not served");
            }
            Ask::FindNode if self.admitted.contains(&peer) => self
                .kad
                .on_connection_handler_event(peer, connection, event),
            Ask::FindNode if self.refused.contains(&peer) => {
                Counters::inc(&self.counters.kad_requests_refused);
                debug!(%peer, "Kademlia request from a refused peer; not served");
            }
            Ask::FindNode => {
                let held = self.held.entry(peer).or_default();
                if held.len() >= HELD_REQUESTS_PER_PEER_MAX {
                    Counters::inc(&self.counters.kad_requests_refused);
                    debug!(%peer, "too many Kademlia requests before admission; dropped");
                } else {
                    debug!(%peer, "Kademlia request before admission; held until admitted");
                    held.push_back((connection, event));
                }
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.kad.poll(cx)
    }
}

/// The addresses worth dialing among `addrs`, announced by (or for) `peer`: exactly
/// `/ip4|ip6/<ip>/tcp/<port>`, optionally ending in `/p2p/<peer>` (stripped; an address
/// naming another peer is dropped), neither unspecified (`0.0.0.0`, `::`) nor port 0,
/// loopback only if `allow_loopback` (a node listening on loopback: local testnets);
/// deduplicated, at most [`IDENTIFY_ADDRS_MAX`].
pub fn dialable_addrs(peer: &PeerId, addrs: &[Multiaddr], allow_loopback: bool) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    for addr in addrs {
        if out.len() >= IDENTIFY_ADDRS_MAX {
            break;
        }
        let mut parts = addr.iter();
        let ip = match parts.next() {
            Some(Protocol::Ip4(a)) => IpAddr::V4(a),
            Some(Protocol::Ip6(a)) => IpAddr::V6(a),
            _ => continue,
        };
        let port = match parts.next() {
            Some(Protocol::Tcp(p)) => p,
            _ => continue,
        };
        match parts.next() {
            None => {}
            Some(Protocol::P2p(p)) if p == *peer && parts.next().is_none() => {}
            _ => continue,
        }
        if ip.is_unspecified() || port == 0 || (ip.is_loopback() && !allow_loopback) {
            continue;
        }
        let base = Multiaddr::empty()
            .with(match ip {
                IpAddr::V4(a) => Protocol::Ip4(a),
                IpAddr::V6(a) => Protocol::Ip6(a),
            })
            .with(Protocol::Tcp(port));
        if !out.contains(&base) {
            out.push(base);
        }
    }
    out
}

/// A peer worth dialing.
#[derive(Clone, Debug)]
struct Candidate {
    addrs: Vec<Multiaddr>,
    source: PeerSource,
    failures: u32,
    next_dial: Instant,
    added: Instant,
}

/// The bounded table of dial candidates (module docs).
#[derive(Debug, Default)]
pub struct Candidates {
    map: HashMap<PeerId, Candidate>,
}

impl Candidates {
    /// Learns (or refreshes) `peer` at `addrs` (already filtered by [`dialable_addrs`]).
    /// A peer's own identify announcement replaces what Kademlia answers said of it;
    /// Kademlia answers only add addresses (up to [`IDENTIFY_ADDRS_MAX`]). When the table is
    /// full, the entry with the most failures (then the oldest) makes room. Returns whether
    /// `peer` is a new candidate (counted as found, `NetworkStats::discovery_found_*`).
    pub fn offer(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        source: PeerSource,
        now: Instant,
    ) -> bool {
        if addrs.is_empty() {
            return false;
        }
        if let Some(c) = self.map.get_mut(&peer) {
            if source == PeerSource::Identify {
                c.addrs = addrs;
                c.source = source;
            } else {
                for a in addrs {
                    if c.addrs.len() < IDENTIFY_ADDRS_MAX && !c.addrs.contains(&a) {
                        c.addrs.push(a);
                    }
                }
            }
            return false;
        }
        if self.map.len() >= CANDIDATES_MAX {
            let worst = self
                .map
                .iter()
                .max_by_key(|(_, c)| (c.failures, std::cmp::Reverse(c.added)))
                .map(|(p, _)| *p);
            if let Some(worst) = worst {
                self.map.remove(&worst);
            }
        }
        self.map.insert(
            peer,
            Candidate {
                addrs,
                source,
                failures: 0,
                next_dial: now,
                added: now,
            },
        );
        true
    }

    /// Up to `n` candidates due for a dial at `now` for which `skip` is false, those for
    /// which `first` is true (validators) first; each is not due again before `now +
    /// interval` (a failure pushes it further, [`Candidates::dial_failed`]).
    pub fn take_due(
        &mut self,
        now: Instant,
        interval: Duration,
        n: usize,
        skip: impl Fn(&PeerId) -> bool,
        first: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, Vec<Multiaddr>, PeerSource)> {
        let mut due: Vec<(bool, Instant, PeerId)> = self
            .map
            .iter()
            .filter(|(p, c)| c.next_dial <= now && !skip(p))
            .map(|(p, c)| (!first(p), c.next_dial, *p))
            .collect();
        due.sort();
        due.truncate(n);
        due.into_iter()
            .filter_map(|(_, _, p)| {
                let c = self.map.get_mut(&p)?;
                c.next_dial = now + interval;
                Some((p, c.addrs.clone(), c.source))
            })
            .collect()
    }

    /// A dial of `peer` failed: not due again before `now + interval · 2^failures` (at most
    /// 64×); forgotten after [`DIAL_FAILURES_MAX`] failures in a row.
    pub fn dial_failed(&mut self, peer: &PeerId, now: Instant, interval: Duration) {
        let Some(c) = self.map.get_mut(peer) else {
            return;
        };
        c.failures += 1;
        if c.failures >= DIAL_FAILURES_MAX {
            self.map.remove(peer);
            return;
        }
        c.next_dial = now + interval * (1u32 << c.failures.min(6));
    }

    /// `peer` connected: its failure count restarts.
    pub fn connected(&mut self, peer: &PeerId) {
        if let Some(c) = self.map.get_mut(peer) {
            c.failures = 0;
        }
    }

    /// Forgets `peer` (banned or refused).
    pub fn remove(&mut self, peer: &PeerId) {
        self.map.remove(peer);
    }

    /// Whether `peer` is a candidate.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.map.contains_key(peer)
    }

    /// The candidates' peer ids.
    pub fn peers(&self) -> Vec<PeerId> {
        self.map.keys().copied().collect()
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// When to start the next random walk (module docs).
#[derive(Debug)]
pub struct WalkSchedule {
    interval: Duration,
    factor: u32,
    next: Instant,
}

impl WalkSchedule {
    /// The first walk is due at `now`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        WalkSchedule {
            interval,
            factor: 1,
            next: now,
        }
    }

    /// Whether a walk starts at `now`; if so, the next one is due one interval later while
    /// `target_met` is false, and twice as long as the last gap (at most
    /// [`WALK_BACKOFF_FACTOR_MAX`] intervals) while it is true. (The swarm task also
    /// counts the target as met while walks find no peer it is not connected to.)
    pub fn due(&mut self, now: Instant, target_met: bool) -> bool {
        if now < self.next {
            if !target_met && self.factor > 1 {
                // Peers were lost: come back to the base rate.
                self.factor = 1;
                self.next = self.next.min(now + self.interval);
            }
            return false;
        }
        self.factor = if target_met {
            (self.factor * 2).min(WALK_BACKOFF_FACTOR_MAX)
        } else {
            1
        };
        self.next = now + self.interval * self.factor;
        true
    }

    /// The current gap between walks, in intervals.
    pub fn factor(&self) -> u32 {
        self.factor
    }
}

/// A random key for a walk: the id of a fresh random identity.
pub fn random_key() -> PeerId {
    PeerId::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_plain_tcp_addresses_of_the_peer_itself_are_dialable() {
        let peer = PeerId::random();
        let other = PeerId::random();
        let addrs = vec![
            addr("/ip4/10.0.0.1/tcp/26656"),
            addr(&format!("/ip4/10.0.0.2/tcp/26656/p2p/{peer}")),
            addr(&format!("/ip4/10.0.0.3/tcp/26656/p2p/{other}")),
            addr("/ip4/0.0.0.0/tcp/26656"),
            addr("/ip4/10.0.0.4/tcp/0"),
            addr("/ip4/127.0.0.1/tcp/26656"),
            addr("/ip4/10.0.0.5/udp/26656"),
            addr("/ip4/10.0.0.6/tcp/26656/ws"),
            addr("/dns4/example.invalid/tcp/26656"),
            addr("/ip4/10.0.0.1/tcp/26656"),
            addr("/ip6/::/tcp/1"),
            addr("/ip6/fe80::1/tcp/2"),
        ];
        let got = dialable_addrs(&peer, &addrs, false);
        assert_eq!(
            got,
            vec![
                addr("/ip4/10.0.0.1/tcp/26656"),
                addr("/ip4/10.0.0.2/tcp/26656"),
                addr("/ip6/fe80::1/tcp/2"),
            ]
        );
        // Loopback only where the node itself runs on loopback.
        let got = dialable_addrs(&peer, &addrs, true);
        assert!(got.contains(&addr("/ip4/127.0.0.1/tcp/26656")));
        // At most IDENTIFY_ADDRS_MAX.
        let many: Vec<Multiaddr> = (1..=50)
            .map(|i| addr(&format!("/ip4/10.0.1.{i}/tcp/1")))
            .collect();
        assert_eq!(
            dialable_addrs(&peer, &many, false).len(),
            IDENTIFY_ADDRS_MAX
        );
    }

    #[test]
    fn candidates_are_bounded_and_back_off() {
        let now = Instant::now();
        let interval = Duration::from_secs(1);
        let mut c = Candidates::default();
        let a = PeerId::random();
        c.offer(
            a,
            vec![addr("/ip4/10.0.0.1/tcp/1")],
            PeerSource::Kademlia,
            now,
        );
        // Nothing without addresses.
        c.offer(PeerId::random(), vec![], PeerSource::Kademlia, now);
        assert_eq!(c.len(), 1);
        let due = c.take_due(now, interval, 4, |_| false, |_| false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].2, PeerSource::Kademlia);
        // Not due again within the interval.
        assert!(
            c.take_due(now, interval, 4, |_| false, |_| false)
                .is_empty()
        );
        // A failure pushes it back 2 intervals; five forget it.
        c.dial_failed(&a, now, interval);
        assert!(
            c.take_due(now + interval, interval, 4, |_| false, |_| false)
                .is_empty()
        );
        assert_eq!(
            c.take_due(now + 2 * interval, interval, 4, |_| false, |_| false)
                .len(),
            1
        );
        for _ in 1..DIAL_FAILURES_MAX {
            c.dial_failed(&a, now, interval);
        }
        assert!(!c.contains(&a));
        // Identify replaces the addresses and the source; Kademlia only adds.
        let b = PeerId::random();
        c.offer(
            b,
            vec![addr("/ip4/10.0.0.2/tcp/1")],
            PeerSource::Kademlia,
            now,
        );
        c.offer(
            b,
            vec![addr("/ip4/10.0.0.3/tcp/1")],
            PeerSource::Identify,
            now,
        );
        c.offer(
            b,
            vec![addr("/ip4/10.0.0.4/tcp/1")],
            PeerSource::Kademlia,
            now,
        );
        let due = c.take_due(now, interval, 4, |_| false, |_| false);
        assert_eq!(
            due,
            vec![(
                b,
                vec![addr("/ip4/10.0.0.3/tcp/1"), addr("/ip4/10.0.0.4/tcp/1")],
                PeerSource::Identify
            )]
        );
        // Bounded: the table never holds more than CANDIDATES_MAX.
        for i in 0..(CANDIDATES_MAX + 10) {
            c.offer(
                PeerId::random(),
                vec![addr(&format!("/ip4/10.1.{}.{}/tcp/1", i / 250, i % 250))],
                PeerSource::Kademlia,
                now,
            );
        }
        assert_eq!(c.len(), CANDIDATES_MAX);
    }

    #[test]
    fn validators_are_dialed_first_and_skipped_peers_never() {
        let now = Instant::now();
        let mut c = Candidates::default();
        let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            c.offer(
                *p,
                vec![addr(&format!("/ip4/10.0.0.{}/tcp/1", i + 1))],
                PeerSource::Kademlia,
                now,
            );
        }
        let validator = peers[5];
        let connected = peers[4];
        let due = c.take_due(
            now,
            Duration::from_secs(1),
            2,
            |p| *p == connected,
            |p| *p == validator,
        );
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].0, validator);
        assert!(due.iter().all(|(p, _, _)| *p != connected));
    }

    #[test]
    fn walks_run_once_per_interval_below_target_and_back_off_above() {
        let start = Instant::now();
        let i = Duration::from_millis(100);
        let mut w = WalkSchedule::new(i, start);
        assert!(w.due(start, false));
        assert!(!w.due(start + i / 2, false));
        assert!(w.due(start + i, false));
        // Target met: gaps double up to the cap.
        let mut t = start + 2 * i;
        let mut gaps = Vec::new();
        for _ in 0..10 {
            assert!(w.due(t, true));
            gaps.push(w.factor());
            t += i * w.factor();
            assert!(!w.due(t - i / 2, true));
        }
        assert_eq!(gaps[..5], [2, 4, 8, 16, 32]);
        assert!(gaps.iter().all(|g| *g <= WALK_BACKOFF_FACTOR_MAX));
        // Below target again: back to one interval at most.
        assert!(!w.due(t - i / 2, false));
        assert!(w.due(t - i / 2 + i, false));
        assert_eq!(w.factor(), 1);
    }
}
