//! NAT traversal (`docs/network.md`, "NAT traversal"): AutoNAT v1 (is this node publicly
//! reachable?), circuit relay v2 (a node behind a NAT reserves a slot on a relay and is
//! reached through it; nodes that opt in serve as relays) and DCUtR (a relayed connection is
//! upgraded to a direct one by simultaneous dials), all libp2p's own protocols.
//!
//! Everything here runs behind the admission gate:
//!
//! - A relayed connection is a connection like any other to the rest of the swarm task: the
//!   peer on the other end proves its proof-of-work identity over it (or is exempt) before
//!   it sees gossip or sync, exactly as over a direct one.
//! - The relay service ([`NatConfig::relay_service`], off by default) accepts reservations
//!   and circuits only from peers this node has admitted ([`AdmittedGate`]): an unadmitted
//!   peer can neither be reached through us nor reach anyone through us. It is bounded in
//!   reservations, circuits, bytes and duration ([`RelayLimits`]).
//! - A relayed connection carries no IP address of the remote: it is not counted against
//!   the relay's IP address (per-IP limits, IP bans), see [`is_relayed`].

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, relay};

use super::NetworkError;

/// Most relays a node reserves a slot on ([`NatConfig::relays`]).
pub const RELAYS_MAX: usize = 8;

/// Most addresses announced as this node's external addresses
/// ([`NatConfig::external_addresses`]).
pub const EXTERNAL_ADDRESSES_MAX: usize = 8;

/// Largest [`RelayLimits::circuit_duration_ms`] (libp2p's relay takes whole seconds as a
/// `u32`; one day is far below that).
pub const RELAY_CIRCUIT_DURATION_MS_MAX: u64 = 86_400_000;

/// Smallest [`RelayLimits::circuit_duration_ms`] and [`RelayLimits::reservation_duration_ms`]
/// (the relay protocol counts whole seconds).
pub const RELAY_DURATION_MS_MIN: u64 = 1000;

/// Largest [`RelayLimits::reservations_max`] and [`RelayLimits::circuits_max`].
pub const RELAY_SLOTS_MAX: u32 = 4096;

/// Circuits one source peer may hold through this relay at once (libp2p compares with `>`,
/// so a peer gets at most this many plus one).
pub const RELAY_CIRCUITS_PER_PEER_MAX: usize = 4;

/// Reservations one peer may hold on this relay (libp2p compares with `>`: at most this
/// many plus one; a renewal replaces the old one).
pub const RELAY_RESERVATIONS_PER_PEER_MAX: usize = 1;

/// Burst of new circuits one source peer may open; then one per [`RELAY_RATE_INTERVAL`]
/// (token bucket).
pub const RELAY_CIRCUITS_PER_PEER_PER_INTERVAL: u32 = 30;

/// Burst of new reservations one peer may make; then one per [`RELAY_RATE_INTERVAL`]
/// (token bucket).
pub const RELAY_RESERVATIONS_PER_PEER_PER_INTERVAL: u32 = 30;

/// Refill interval of the per-peer relay rate limits (one token each).
pub const RELAY_RATE_INTERVAL: Duration = Duration::from_secs(60);

/// Bounds of the relay service (libp2p circuit relay v2, `/libp2p/circuit/relay/0.2.0/hop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held at once, over all peers, 1..=[`RELAY_SLOTS_MAX`].
    pub reservations_max: u32,
    /// How long a reservation lasts before the peer must renew it, milliseconds,
    /// [`RELAY_DURATION_MS_MIN`]..=[`RELAY_CIRCUIT_DURATION_MS_MAX`].
    pub reservation_duration_ms: u64,
    /// Circuits relayed at once, over all peers, 1..=[`RELAY_SLOTS_MAX`].
    pub circuits_max: u32,
    /// Longest life of one circuit, milliseconds (closed then; the peers reconnect),
    /// [`RELAY_DURATION_MS_MIN`]..=[`RELAY_CIRCUIT_DURATION_MS_MAX`].
    pub circuit_duration_ms: u64,
    /// Most bytes relayed over one circuit, both directions together (closed then), ≥ 1.
    pub circuit_bytes_max: u64,
}

impl Default for RelayLimits {
    /// 32 reservations of an hour, 16 circuits of at most an hour and 1 GiB each.
    fn default() -> Self {
        RelayLimits {
            reservations_max: 32,
            reservation_duration_ms: 3_600_000,
            circuits_max: 16,
            circuit_duration_ms: 3_600_000,
            circuit_bytes_max: 1 << 30,
        }
    }
}

/// NAT traversal settings of the network layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// Run AutoNAT v1 (`/libp2p/autonat/1.0.0`): ask connected peers to dial us back and
    /// serve their dial-back requests (at most 30 clients per second overall, 3 per peer;
    /// dial-backs go only to the IP address the request came from).
    pub autonat: bool,
    /// Serve as a circuit relay v2 for admitted peers, within [`NatConfig::relay_limits`].
    /// Off by default: validators should not spend bandwidth relaying.
    pub relay_service: bool,
    /// Bounds of the relay service.
    pub relay_limits: RelayLimits,
    /// Relays to reserve a slot on, each `/ip4|ip6|dns…/<host>/tcp/<port>/p2p/<relay id>`,
    /// at most [`RELAYS_MAX`]: the node listens on `<relay>/p2p-circuit` and is reachable at
    /// `<relay>/p2p-circuit/p2p/<own id>`. A lost reservation is retried every
    /// `redial_interval_ms`.
    pub relays: Vec<Multiaddr>,
    /// Run DCUtR (`/libp2p/dcutr`): try to upgrade relayed connections to direct ones by
    /// simultaneous dials (hole punching).
    pub hole_punching: bool,
    /// Addresses this node announces as its own, confirmed (a relay's reservations carry
    /// them; identify announces them), at most [`EXTERNAL_ADDRESSES_MAX`], each
    /// `/ip4|ip6/<ip>/tcp/<port>` without `/p2p`.
    pub external_addresses: Vec<Multiaddr>,
}

impl NatConfig {
    /// Everything off (no AutoNAT, no relay service, no reservations, no hole punching).
    pub fn disabled() -> Self {
        NatConfig {
            autonat: false,
            relay_service: false,
            relay_limits: RelayLimits::default(),
            relays: Vec::new(),
            hole_punching: false,
            external_addresses: Vec::new(),
        }
    }

    /// Checks every field against the bounds documented on it.
    ///
    /// # Errors
    /// [`NetworkError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<(), NetworkError> {
        let invalid = |reason: String| Err(NetworkError::InvalidConfig { reason });
        let l = &self.relay_limits;
        for (name, v) in [
            ("nat.relay_limits.reservations_max", l.reservations_max),
            ("nat.relay_limits.circuits_max", l.circuits_max),
        ] {
            if v == 0 || v > RELAY_SLOTS_MAX {
                return invalid(format!("{name}: {v} not in 1..={RELAY_SLOTS_MAX}"));
            }
        }
        for (name, v) in [
            (
                "nat.relay_limits.reservation_duration_ms",
                l.reservation_duration_ms,
            ),
            (
                "nat.relay_limits.circuit_duration_ms",
                l.circuit_duration_ms,
            ),
        ] {
            if !(RELAY_DURATION_MS_MIN..=RELAY_CIRCUIT_DURATION_MS_MAX).contains(&v) {
                return invalid(format!(
                    "{name}: {v} not in {RELAY_DURATION_MS_MIN}..={RELAY_CIRCUIT_DURATION_MS_MAX}"
                ));
            }
        }
        if l.circuit_bytes_max == 0 {
            return invalid("nat.relay_limits.circuit_bytes_max: must be at least 1".into());
        }
        if self.relays.len() > RELAYS_MAX {
            return invalid(format!(
                "nat.relays: {} relays, at most {RELAYS_MAX}",
                self.relays.len()
            ));
        }
        for addr in &self.relays {
            relay_peer(addr).map_err(|reason| NetworkError::InvalidConfig { reason })?;
        }
        if self.external_addresses.len() > EXTERNAL_ADDRESSES_MAX {
            return invalid(format!(
                "nat.external_addresses: {} addresses, at most {EXTERNAL_ADDRESSES_MAX}",
                self.external_addresses.len()
            ));
        }
        for addr in &self.external_addresses {
            let ok = matches!(
                addr.iter().collect::<Vec<_>>().as_slice(),
                [Protocol::Ip4(_) | Protocol::Ip6(_), Protocol::Tcp(p)] if *p != 0
            );
            if !ok {
                return invalid(format!(
                    "nat.external_addresses: {addr} must be /ip4|ip6/<ip>/tcp/<port>"
                ));
            }
        }
        Ok(())
    }
}

/// The relay's peer id of a [`NatConfig::relays`] entry: it must contain `/tcp`, end with
/// `/p2p/<relay id>` and not be a circuit address itself.
///
/// # Errors
/// A description of what is wrong with `addr`.
pub fn relay_peer(addr: &Multiaddr) -> Result<PeerId, String> {
    if is_relayed(addr) {
        return Err(format!("nat.relays: {addr} must not contain /p2p-circuit"));
    }
    if !addr.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
        return Err(format!("nat.relays: {addr} has no /tcp component"));
    }
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok(peer),
        _ => Err(format!("nat.relays: {addr} must end with /p2p/<relay id>")),
    }
}

/// The address this node listens on to be reached through `relay`: `<relay>/p2p-circuit`.
pub fn circuit_listen_addr(relay: &Multiaddr) -> Multiaddr {
    relay.clone().with(Protocol::P2pCircuit)
}

/// Whether `addr` goes through a relay (contains `/p2p-circuit`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The peers the relay service serves: those this node has admitted (admitted with a
/// proof, exempt, or connected while admission is off). The swarm task keeps it equal to
/// the admitted subset of its connected peers (bounded like the connection map); the relay
/// behaviour reads it, on the same task, for every reservation and circuit request.
#[derive(Clone, Debug, Default)]
pub struct AdmittedGate(Arc<Mutex<HashSet<PeerId>>>);

impl AdmittedGate {
    /// Records whether `peer` is admitted now.
    pub fn set(&self, peer: PeerId, admitted: bool) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if admitted {
            set.insert(peer);
        } else {
            set.remove(&peer);
        }
    }

    /// Whether `peer` is admitted.
    pub fn allows(&self, peer: &PeerId) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(peer)
    }

    /// Peers recorded as admitted.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no peer is recorded as admitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The libp2p relay configuration for `limits`: the admission gate first (so an
/// unadmitted peer spends no rate-limit budget), then per-peer token buckets, then
/// libp2p's own per-IP limits.
pub fn relay_config(limits: &RelayLimits, gate: AdmittedGate) -> relay::Config {
    let defaults = relay::Config::default();
    let reservation_gate = gate.clone();
    let mut config = relay::Config {
        max_reservations: limits.reservations_max as usize,
        max_reservations_per_peer: RELAY_RESERVATIONS_PER_PEER_MAX,
        reservation_duration: Duration::from_millis(limits.reservation_duration_ms),
        reservation_rate_limiters: vec![Box::new(
            move |peer: PeerId, _: &Multiaddr, _: std::time::Instant| {
                reservation_gate.allows(&peer)
            },
        )],
        max_circuits: limits.circuits_max as usize,
        max_circuits_per_peer: RELAY_CIRCUITS_PER_PEER_MAX,
        max_circuit_duration: Duration::from_millis(limits.circuit_duration_ms),
        max_circuit_bytes: limits.circuit_bytes_max,
        circuit_src_rate_limiters: vec![Box::new(
            move |peer: PeerId, _: &Multiaddr, _: std::time::Instant| gate.allows(&peer),
        )],
    };
    let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
    config = config
        .reservation_rate_per_peer(
            n(RELAY_RESERVATIONS_PER_PEER_PER_INTERVAL),
            RELAY_RATE_INTERVAL,
        )
        .circuit_src_per_peer(n(RELAY_CIRCUITS_PER_PEER_PER_INTERVAL), RELAY_RATE_INTERVAL);
    // libp2p's default per-IP limits (one reservation / circuit per minute per IP, bursts
    // of 60) come last.
    config
        .reservation_rate_limiters
        .extend(defaults.reservation_rate_limiters.into_iter().skip(1));
    config
        .circuit_src_rate_limiters
        .extend(defaults.circuit_src_rate_limiters.into_iter().skip(1));
    config
}

/// How the node reaches a peer (`getPeers` `path`): `direct` if any open connection to it
/// is direct, otherwise `relayed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionPath {
    /// At least one connection without a relay.
    Direct,
    /// Every connection goes through a relay.
    Relayed,
}

impl ConnectionPath {
    /// `direct` or `relayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionPath::Direct => "direct",
            ConnectionPath::Relayed => "relayed",
        }
    }
}

/// The reachability AutoNAT has concluded (`NetworkStats::nat_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// Not (yet) known, or AutoNAT is off.
    Unknown,
    /// Peers could dial us back at an address we announced.
    Public,
    /// Peers could not dial us back: we are behind a NAT or firewall.
    Private,
}

impl Reachability {
    /// `unknown`, `public` or `private`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }

    /// The gauge value in [`super::NetworkStats::nat_status`]: 0 unknown, 1 public,
    /// 2 private.
    pub fn code(self) -> u64 {
        match self {
            Reachability::Unknown => 0,
            Reachability::Public => 1,
            Reachability::Private => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_addr() -> Multiaddr {
        let id = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        format!("/ip4/10.0.0.1/tcp/4001/p2p/{id}").parse().unwrap()
    }

    #[test]
    fn defaults_are_valid_and_disabled_serves_nothing() {
        let c = NatConfig::disabled();
        assert!(c.validate().is_ok());
        assert!(!c.relay_service && !c.autonat && !c.hole_punching && c.relays.is_empty());
    }

    #[test]
    fn invalid_nat_configs_are_rejected() {
        let bad = |f: &dyn Fn(&mut NatConfig)| {
            let mut c = NatConfig::disabled();
            f(&mut c);
            assert!(
                matches!(c.validate(), Err(NetworkError::InvalidConfig { .. })),
                "{c:?}"
            );
        };
        bad(&|c| c.relay_limits.reservations_max = 0);
        bad(&|c| c.relay_limits.circuits_max = RELAY_SLOTS_MAX + 1);
        bad(&|c| c.relay_limits.circuit_duration_ms = 999);
        bad(&|c| c.relay_limits.circuit_duration_ms = RELAY_CIRCUIT_DURATION_MS_MAX + 1);
        bad(&|c| c.relay_limits.reservation_duration_ms = 0);
        bad(&|c| c.relay_limits.circuit_bytes_max = 0);
        bad(&|c| c.relays = vec![relay_addr(); RELAYS_MAX + 1]);
        bad(&|c| c.relays = vec!["/ip4/10.0.0.1/tcp/4001".parse().unwrap()]);
        bad(&|c| c.relays = vec![circuit_listen_addr(&relay_addr())]);
        bad(&|c| c.external_addresses = vec!["/ip4/10.0.0.1/tcp/0".parse().unwrap()]);
        bad(&|c| c.external_addresses = vec![relay_addr()]);
        let mut ok = NatConfig::disabled();
        ok.relays = vec![relay_addr(); RELAYS_MAX];
        ok.external_addresses = vec!["/ip4/192.0.2.1/tcp/26656".parse().unwrap()];
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn circuit_addresses_are_relayed_and_name_the_relay() {
        let relay = relay_addr();
        let Some(Protocol::P2p(id)) = relay.iter().last() else {
            panic!("no /p2p")
        };
        assert_eq!(relay_peer(&relay), Ok(id));
        assert!(!is_relayed(&relay));
        let listen = circuit_listen_addr(&relay);
        assert!(is_relayed(&listen));
        assert!(listen.to_string().ends_with("/p2p-circuit"));
    }

    #[test]
    fn the_relay_serves_only_admitted_peers_and_within_its_limits() {
        let gate = AdmittedGate::default();
        let limits = RelayLimits::default();
        let mut config = relay_config(&limits, gate.clone());
        assert_eq!(config.max_reservations, 32);
        assert_eq!(config.max_circuits, 16);
        assert_eq!(config.max_circuit_bytes, 1 << 30);
        assert_eq!(config.max_circuit_duration, Duration::from_secs(3600));
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let addr: Multiaddr = "/ip4/10.0.0.2/tcp/1".parse().unwrap();
        let now = std::time::Instant::now();
        let all = |ls: &mut Vec<Box<dyn relay::RateLimiter>>| {
            ls.iter_mut().all(|l| l.try_next(peer, &addr, now))
        };
        // Unadmitted: refused by the first limiter, before any budget is spent.
        assert!(!all(&mut config.reservation_rate_limiters));
        assert!(!all(&mut config.circuit_src_rate_limiters));
        gate.set(peer, true);
        assert!(all(&mut config.reservation_rate_limiters));
        assert!(all(&mut config.circuit_src_rate_limiters));
        // Withdrawn (refused, banned, disconnected): refused again.
        gate.set(peer, false);
        assert!(!all(&mut config.circuit_src_rate_limiters));
        assert!(gate.is_empty());
    }
}
