//! # Networking layer
//!
//! Owns the node's libp2p [`Swarm`](libp2p::Swarm) and everything that touches sockets:
//! TCP transport secured with Noise and multiplexed with Yamux, gossipsub (v1.1, unsigned
//! messages: `ValidationMode::Anonymous`, Ethereum's `StrictNoSign`, with content-hash
//! message ids), the sync request-response protocol, identify, ping and (unless
//! [`DiscoveryConfig::enabled`] is false) Kademlia over admitted peers. One
//! spawned task (the *swarm task*) owns the swarm; the rest of the node talks to it only
//! through a cloneable [`NetworkHandle`] (bounded command queue) and receives
//! [`NetworkEvent`]s from a bounded event queue returned by [`spawn`].
//!
//! ## Gossip topics
//!
//! | [`Topic`] | gossipsub topic string |
//! |---|---|
//! | [`Topic::Transactions`] | `/cairn/{namespace}/tx/1` |
//! | [`Topic::Consensus`] | `/cairn/{namespace}/consensus/2` |
//! | [`Topic::Blocks`] | `/cairn/{namespace}/block/4` |
//! | [`Topic::Evidence`] | `/cairn/{namespace}/evidence/2` |
//!
//! `namespace` is [`NetworkConfig::namespace`] (a short genesis hash in hex), so nodes of
//! different chains never share a topic. Identify advertises protocol version
//! `/cairn/{namespace}/7` with agent `cairn/0.1`; a peer advertising another protocol
//! version is disconnected (version 2 made gossip unsigned, version 3 gossips compact
//! blocks and adds the transactions-by-index sync request, version 4 has block header v2
//! with `signed_txs_root` and compact blocks that carry the leader's signed proposal,
//! version 5 epochs, version 6 sync protocol 5 with pruned peers' lowest retained height).
//! Block topic version 3 carries `crate::compact::CompactBlock`s with the leader's Notarize
//! vote (version 2 had none; version 1 carried full blocks).
//!
//! Every gossip message is validated by the application: the swarm task delivers it as
//! [`NetworkEvent::Gossip`] and gossipsub forwards it to other peers only after
//! [`NetworkHandle::report`] says [`Acceptance::Accept`]. [`Acceptance::Reject`] lowers the
//! forwarding peer's gossipsub score (P4 "invalid message deliveries": weight −10 per
//! squared counter, decay 0.9/s; at the default thresholds a peer stops getting our gossip at
//! score −10, cannot publish to us at −50 and is ignored entirely at −80).
//! [`Acceptance::Ignore`] drops the message without penalty. A report must arrive within
//! [`VALIDATION_WINDOW`] (≈10 s) of receipt; later reports are no-ops and the message is not
//! forwarded. Message ids are content-addressed: the first 20 bytes of
//! `blake3(topic ‖ 0x00 ‖ data)`, so the same payload on the same topic is delivered (and
//! forwarded) at most once per node within gossipsub's 60 s duplicate-cache window, no matter
//! how many peers or publishers send it. A node never receives its own publications.
//!
//! ## Sync protocol `/cairn/{namespace}/sync/6`
//!
//! One request and one response per stream, each framed as a `u32` **big-endian** payload
//! length followed by exactly that many bytes. The length is checked against
//! [`NetworkConfig::sync_request_bytes_max`] / [`NetworkConfig::sync_response_bytes_max`]
//! *before* anything is allocated or read; an over-long frame is a protocol violation and
//! fails the stream. The requester writes its frame and closes its write half; the responder
//! answers with one frame (or closes without one, see [`NetworkError::NoResponse`]). The
//! whole exchange, including stream negotiation, is bounded by
//! [`NetworkConfig::sync_request_timeout_ms`] on both sides; at most
//! [`SYNC_STREAMS_PER_CONNECTION_MAX`] concurrent sync streams exist per connection. The
//! payload is opaque to this module.
//!
//! ## Admission `/cairn/{namespace}/admission/2`
//!
//! When the required difficulty ([`AdmissionConfig::difficulty_bits`] at start, then each
//! [`NetworkHandle::set_admission_difficulty`]) is non-zero, a peer that is not exempt (a
//! validator of the current set, [`AdmissionConfig::validators`] then each
//! [`NetworkHandle::exempt`], or statically exempt, [`AdmissionConfig::exempt`]) must
//! prove a proof-of-work identity (see
//! [`crate::admission`]) before it takes part in gossip. Each non-exempt node sends its
//! proof to every peer as soon as a connection is established (so admission is mutual and
//! takes one round trip): one request frame of exactly [`ADMISSION_REQUEST_BYTES`] bytes
//! (the nonce, `u64` little-endian), answered by one frame of exactly
//! [`ADMISSION_RESPONSE_BYTES`] bytes `[status, required_bits]`: `status` 0 admitted, 1
//! refused; `required_bits` the responder's current difficulty. Frames are framed like the
//! sync protocol (the length is checked before anything is read); a response of another
//! length or status is ignored (logged). Version 2 added `required_bits` (version 1 answered
//! one status byte); the two versions do not talk to each other.
//!
//! Until admitted, the peer's gossipsub application-specific score is
//! [`APP_SCORE_UNADMITTED`] (weight 1), far below the graylist threshold: gossipsub neither
//! sends it gossip nor processes its messages or control traffic (subscriptions are still
//! recorded, so the mesh forms at the next heartbeat after admission, when the score
//! becomes 0). The application sees neither [`NetworkEvent::PeerConnected`] nor gossip nor
//! sync requests from an unadmitted peer. A peer that has not proved within
//! [`AdmissionConfig::deadline_ms`] of connecting, or whose proof is wrong (wrong length,
//! too few zero bits, made for another peer id or another genesis), is disconnected.
//! A difficulty of 0 disables admission (the default of `ChainParams`): every peer is
//! admitted at once.
//!
//! ### Runtime changes of the difficulty
//!
//! Admission is decided once per connected peer, for as long as it stays connected (at
//! least one connection open); a peer that reconnects proves again against the difficulty
//! of that moment. So after [`NetworkHandle::set_admission_difficulty`]:
//!
//! - peers already admitted (or exempt, or connected while admission was off) stay
//!   admitted; proofs received from now on are checked against the new value;
//! - from 0 to D > 0: connected peers stay (status `disabled`), new ones must prove D;
//! - from D to 0: connected peers still pending are admitted at once (status `disabled`,
//!   [`NetworkEvent::PeerConnected`] delivered); peers already refused are still
//!   disconnected and admitted when they reconnect;
//! - from D to D′: pending peers must prove D′.
//!
//! The node's own proof follows the same value: a non-exempt node whose proof is weaker than
//! the difficulty its own committed chain now requires solves again (see below).
//!
//! ### Learning a higher difficulty (re-solving)
//!
//! A node that has no proof and whose own difficulty is 0 (admission off on its chain
//! view) still sends the empty proof (nonce 0) unless it is exempt, so that a peer requiring
//! more refuses it and says how much. When a response refuses our proof with
//! `required_bits` above our proof's strength ([`crate::admission::proof_bits`]), the node
//! solves again for `required_bits` (blocking solver in `spawn_blocking`, bounded by
//! `SOLVE_ATTEMPTS_FACTOR · 2^bits` attempts, cancelled at shutdown) only if
//!
//! - the refusing peer is trusted: exempt (a validator of the current set, which follows
//!   [`NetworkHandle::exempt`]) or a bootstrap peer ([`NetworkConfig::bootstrap`], chosen by
//!   the operator). Claims of other peers are ignored (counted in
//!   [`NetworkStats::admission_claims_ignored`]): any identity can claim 32 bits;
//! - `required_bits` ≤ [`crate::admission::DIFFICULTY_BITS_MAX`] (the largest difficulty
//!   governance can set; larger claims are ignored and counted);
//! - no solve was started for `required_bits` or more before (one solve per distinct
//!   higher value, strictly increasing, so at most `DIFFICULTY_BITS_MAX` solves while the
//!   node runs; a failed solve is not retried). One solve runs at a time; a higher trusted
//!   claim that arrives meanwhile is solved for after it.
//!
//! [`NetworkHandle::set_admission_difficulty`] is trusted the same way (it is this node's
//! own committed chain). A solved proof replaces the node's proof, is written to
//! [`AdmissionConfig::pow_file`] (if set) and is sent at once to connected peers that have not
//! answered our proof yet; a peer that already refused us disconnects us, and the new proof
//! goes out on the next connection (bootstrap peers are redialed every
//! [`NetworkConfig::redial_interval_ms`]). Counted in
//! [`NetworkStats::admission_proofs_solved`]; [`NetworkHandle::admission_info`] shows the
//! state. Exempt nodes (validators) never solve.
//!
//! ### Exemptions follow the validator set
//!
//! The exempt set is [`AdmissionConfig::exempt`] (static, for as long as the node runs)
//! plus the current validator set: [`AdmissionConfig::validators`] at start, replaced by
//! each [`NetworkHandle::exempt`] (the driver passes each new epoch's full set). A peer
//! added is exempt from then on (a connected one still pending at once). A connected peer
//! removed whose status is `exempt`:
//!
//! - becomes `admitted` at once if it sent a proof valid at the current difficulty (a
//!   non-exempt node sends its proof on every connection, and an exempt peer's proof is
//!   kept for this even though it is not needed);
//! - otherwise becomes `pending` ([`NetworkEvent::PeerDisconnected`] delivered, gossip and
//!   sync requests from it dropped, application score [`APP_SCORE_UNADMITTED`]) and must
//!   prove within [`AdmissionConfig::deadline_ms`] of the withdrawal; past the deadline it
//!   is refused and disconnected like any pending peer. It is not banned: losing an
//!   exemption is not a fault. It may reconnect and prove.
//! - With admission off it becomes `disabled` (as every peer is admitted then).
//!
//! Peers admitted with a proof (or connected while admission was off) keep their status.
//! Counted in [`NetworkStats::admission_exemptions_withdrawn`].
//!
//! When this node itself loses its exemption (a validator removed from the set goes on as a
//! full node), it proves from then on: if its proof is valid at its current difficulty (or
//! that is 0) it sends it (or the empty proof) at once to every connected peer; otherwise it
//! solves for its current difficulty as in "Learning a higher difficulty" (bounded,
//! cancelled at shutdown, once per value) and sends the proof to every connected peer when
//! it is found. Its peers apply the same set change at about the same time (each when it
//! starts the epoch), so a proof solved within their deadline keeps its connections; a
//! slower solve costs it the connections whose deadline passed, and the proof goes out on
//! the next ones (bootstrap peers are redialed).
//!
//! ## Reputation
//!
//! Every [`ADMISSION_SWEEP_INTERVAL`], an admitted (or, with admission disabled, any)
//! non-validator peer whose gossipsub score is below [`SCORE_DISCONNECT`] is disconnected;
//! below [`SCORE_BAN`], or at its [`SCORE_STRIKES_BAN`]th low-score disconnect, it is banned
//! for [`AdmissionConfig::ban_duration_ms`]: its connections are closed as soon as they are
//! established. Bans start from [`AdmissionConfig::initial_bans`] and each new one is passed
//! to [`AdmissionConfig::ban_sink`] for persistence. Exempt peers (validators of the
//! current set) are never disconnected or banned for their score (logged at `warn`). The per-peer
//! admission map has the keys of the connection map (bounded by `connections_max` plus the
//! bootstrap peers); bans and strikes are bounded by [`BANS_MAX`] / [`STRIKES_MAX`].
//!
//! Each banned identity is counted against the IP addresses it was connected from; when more
//! than [`AdmissionConfig::banned_identities_per_ip_max`] banned identities share one IP
//! address, the address is banned for [`AdmissionConfig::ban_duration_ms`]: connections of
//! non-validator peers from it are closed as soon as they are established, and its connected
//! non-validator peers are disconnected. IP bans start from
//! [`AdmissionConfig::initial_ip_bans`] and each new one is passed to
//! [`AdmissionConfig::ip_ban_sink`]. The IP address of a bootstrap peer or of a validator
//! (exempt peer) that connected since start is never banned (an address stays protected
//! after its validator leaves the set, until a restart), and an exempt peer or bootstrap
//! peer is never refused for its IP address (loopback testnets run every validator on
//! 127.0.0.1). Bounded by
//! [`IP_BANS_MAX`], [`IPS_TRACKED_MAX`], [`VALIDATOR_IPS_MAX`].
//!
//! ## Discovery `/cairn/{namespace}/kad/1.0.0`
//!
//! With [`NetworkConfig::discovery`] enabled, libp2p's Kademlia runs in server mode behind
//! the admission gate ([`discovery`], `docs/network.md`): a `FIND_NODE` request of a peer not
//! yet admitted is held (at most [`discovery::HELD_REQUESTS_PER_PEER_MAX`]) and answered
//! once the peer is admitted, or dropped unanswered if it is refused, banned or disconnects
//! ([`NetworkStats::kad_requests_refused`]); record and provider requests are never served.
//! The routing table takes only admitted peers that announced this protocol through
//! identify, with the addresses they announced ([`discovery::dialable_addrs`]); a refused or
//! banned peer leaves it. Every [`DiscoveryConfig::interval_ms`] the swarm task dials up to
//! [`discovery::DIALS_PER_TICK_MAX`] candidates (from walks and identify) while fewer than
//! [`DiscoveryConfig::peers_target`] peers are connected and starts at most one random walk
//! (backing off once the target is met); a validator also looks up and dials the validators
//! of its set it misses. A connection of a new peer beyond [`DiscoveryConfig::peers_max`]
//! is closed at once (bootstrap peers and validators excepted). Kademlia messages are at
//! most [`discovery::KAD_PACKET_BYTES_MAX`] bytes. [`PeerInfo::found`] says how each peer was
//! found.
//!
//! ## NAT traversal
//!
//! [`NetworkConfig::nat`] ([`nat`]): AutoNAT v1 ([`NatConfig::autonat`]; the verdict in
//! [`NetworkStats::nat_status`]), circuit relay v2 (reservations on
//! [`NatConfig::relays`], listened on as `<relay>/p2p-circuit`; a relay service for
//! admitted peers only with [`NatConfig::relay_service`], bounded by [`RelayLimits`]) and
//! DCUtR hole punching ([`NatConfig::hole_punching`]). A relayed connection goes through
//! admission like a direct one and has no remote IP for per-IP limits and IP bans;
//! [`PeerInfo::path`] says whether a peer is reached directly or only through a relay.
//!
//! ## Bounds
//!
//! - Gossip payload: at most [`NetworkConfig::gossip_bytes_max`] bytes. Enforced on
//!   [`NetworkHandle::publish`] ([`NetworkError::Oversize`]) and on receipt (reported `Reject`,
//!   never delivered). Gossipsub's frame limit (`max_transmit_size`) is
//!   `gossip_bytes_max + GOSSIP_FRAME_OVERHEAD_BYTES` so that the signed envelope and control
//!   messages fit; larger frames are discarded by the gossipsub codec before decoding, and
//!   libp2p then closes that peer's inbound gossip stream, so a peer sending such frames stops
//!   reaching us with gossip until it reconnects. Honest peers share `gossip_bytes_max` (it
//!   derives from genesis) and never send such frames.
//! - The listen port must be free: libp2p listens with `SO_REUSEPORT`, so [`spawn`] first
//!   probes the port with a plain socket and fails with [`NetworkError::Transport`] if another
//!   process listens there (instead of silently sharing inbound connections with it).
//! - Sync request / response payloads: see above.
//! - Event queue: [`NetworkConfig::event_queue_max`] events; command queue:
//!   [`NetworkConfig::command_queue_max`] commands.
//! - Connections: [`NetworkConfig::connections_max`] established connections overall.
//!   A connection established beyond the limit is closed at once (counted in
//!   [`NetworkStats::connections_closed_limit`]) unless its peer is a bootstrap peer:
//!   bootstrap peers (normally the validator set) are always admitted.
//! - Per peer: [`AdmissionConfig::connections_per_peer_max`] established connections; per
//!   remote IP address: [`AdmissionConfig::connections_per_ip_max`] established connections
//!   of non-validator peers. Connections beyond either are closed at once (counted in
//!   [`NetworkStats::connections_closed_peer_limit`] /
//!   [`NetworkStats::connections_closed_ip_limit`]). Exempt peers (validators of the
//!   current set) and bootstrap peers are exempt from both and are not counted against an IP
//!   address.
//! - Idle connections are closed after [`IDLE_CONNECTION_TIMEOUT`]; a connection whose ping
//!   times out is closed. Bootstrap peers are redialed every
//!   [`NetworkConfig::redial_interval_ms`] while disconnected.
//!
//! ## Queue-full policy
//!
//! The swarm task never waits on the application. Events are offered with `try_send`:
//!
//! - [`NetworkEvent::Gossip`] that does not fit is dropped, reported to gossipsub as
//!   `Ignore` (not forwarded, no penalty for the sender) and counted in
//!   [`NetworkStats::gossip_dropped_queue_full`] (logged at `warn`).
//! - [`NetworkEvent::Request`] that does not fit is dropped: its stream is closed without a
//!   response, so the requester sees [`NetworkError::NoResponse`]; counted in
//!   [`NetworkStats::requests_dropped_queue_full`].
//! - [`NetworkEvent::PeerConnected`] / [`NetworkEvent::PeerDisconnected`] are never dropped:
//!   they wait in an internal backlog that is flushed as soon as the queue has room. A
//!   connect/disconnect pair of the same peer that is still in the backlog cancels out, so
//!   the backlog holds at most one event per peer. While the backlog is non-empty, gossip and
//!   requests are treated as "queue full", so the application never sees gossip from a peer
//!   before that peer's `PeerConnected`.
//! - If the application dropped the event receiver, every gossip message is reported
//!   `Ignore` and every request is dropped.
//!
//! Commands go the other way through a bounded queue. [`NetworkHandle::publish`] and
//! [`NetworkHandle::request`] fail fast with [`NetworkError::QueueFull`] when it is full;
//! [`NetworkHandle::report`], [`NetworkHandle::respond`] and the query methods wait for room
//! (the swarm task drains the queue continuously, so the wait is short).
//!
//! ## Shutdown
//!
//! [`NetworkHandle::shutdown`] (or dropping every handle) stops the swarm task: it closes
//! the listeners and connections (waiting at most [`SHUTDOWN_GRACE`] for them to close
//! cleanly), drops the swarm, closes the event queue (the receiver then yields `None`) and
//! only then returns. Afterwards every handle method fails with [`NetworkError::Shutdown`]
//! or is a no-op, and the listen port is free again.

pub(crate) mod codec;
pub mod discovery;
pub mod dns;
pub mod nat;
pub mod pacer;
mod worker;

pub use discovery::PeerSource;
pub use nat::{ConnectionPath, NatConfig, Reachability, RelayLimits};

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, gossipsub, request_response};
use tokio::sync::{mpsc, oneshot, watch};

/// Gossipsub heartbeat interval. Short so that meshes form within a second on small
/// testnets.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(300);

/// Number of heartbeats a received message stays in gossipsub's message cache
/// (≈10 s, see [`VALIDATION_WINDOW`]).
const HISTORY_LENGTH: usize = 34;

/// How long after receipt a [`NetworkHandle::report`] still takes effect (the lifetime of a
/// message in gossipsub's message cache: 34 heartbeats of 300 ms). Later reports are no-ops
/// (logged at `debug`) and the message is neither forwarded nor penalized.
pub const VALIDATION_WINDOW: Duration = Duration::from_millis(300 * HISTORY_LENGTH as u64);

/// Bytes allowed on top of [`NetworkConfig::gossip_bytes_max`] in a single gossipsub frame
/// (protobuf envelope, signature, key, topic, and IHAVE/IWANT control messages of up to
/// 5000 message ids).
pub const GOSSIP_FRAME_OVERHEAD_BYTES: usize = 128 * 1024;

/// Maximum concurrent sync streams (inbound + outbound) per connection; more requests fail
/// with [`NetworkError::PeerUnreachable`].
pub const SYNC_STREAMS_PER_CONNECTION_MAX: usize = 64;

/// Connections without any active protocol stream (gossipsub keeps mesh connections
/// active) are closed after this long.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Upper bound on how long [`NetworkHandle::shutdown`] waits for connections to close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// How long [`spawn`] waits for the listener to come up before failing with
/// [`NetworkError::Transport`].
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra time [`NetworkHandle::request`] waits for the swarm task beyond
/// [`NetworkConfig::sync_request_timeout_ms`] before giving up on its own.
const REQUEST_TIMEOUT_SLACK: Duration = Duration::from_secs(2);

/// Longest a sync request waits for this node's own pacing of a peer
/// ([`NetworkConfig::request_pacing`]) before it is sent; a longer wait refuses it
/// ([`NetworkError::Paced`]) so that the caller asks another peer or tries later instead of
/// queueing without bound.
pub const PACING_WAIT_MAX: Duration = Duration::from_secs(2);

/// Identify agent string.
pub const AGENT_VERSION: &str = "cairn/0.1";

/// Longest accepted [`NetworkConfig::namespace`], in characters.
pub const NAMESPACE_LEN_MAX: usize = 64;

/// Exact size of an admission request payload (the nonce, `u64` little-endian).
pub const ADMISSION_REQUEST_BYTES: usize = 8;

/// Exact size of an admission response payload: `[status, required_bits]`, status `0`
/// admitted or `1` refused, `required_bits` the responder's current difficulty.
pub const ADMISSION_RESPONSE_BYTES: usize = 2;

/// Most peers exempt from admission at once: [`AdmissionConfig::exempt`] and the validator
/// set ([`AdmissionConfig::validators`], then each [`NetworkHandle::exempt`]) together (a
/// validator set is far smaller).
pub const ADMISSION_EXEMPT_MAX: usize = 4096;

/// Gossipsub application-specific score of a connected peer that has not (yet) been
/// admitted. With application weight 1 this alone is far below the graylist threshold
/// (−80), and no positive topic score (capped at 30) can lift it above.
pub const APP_SCORE_UNADMITTED: f64 = -1000.0;

/// How often pending admission deadlines are checked.
pub const ADMISSION_SWEEP_INTERVAL: Duration = Duration::from_millis(200);

/// How long a refused peer stays connected (to receive our refusal) before we disconnect it.
pub const ADMISSION_REFUSED_LINGER: Duration = Duration::from_millis(300);

/// Below this gossipsub score an admitted (non-validator) peer is disconnected. The score
/// includes P4 (−10 per squared invalid delivery, decaying 0.9/s), driven by the
/// application's [`Acceptance::Reject`] reports of stateless failures.
pub const SCORE_DISCONNECT: f64 = -100.0;

/// Below this gossipsub score an admitted (non-validator) peer is banned for
/// [`AdmissionConfig::ban_duration_ms`]. Genesis validators are never banned (logged).
pub const SCORE_BAN: f64 = -400.0;

/// A peer disconnected for a low score this many times (since start, or since the strike
/// table was last reset) is banned even if its score never fell below [`SCORE_BAN`]
/// (its score is remembered across reconnects, so a flooder that keeps reconnecting
/// keeps being disconnected).
pub const SCORE_STRIKES_BAN: u32 = 3;

/// Most peers with strikes remembered; when full, the table is reset.
pub const STRIKES_MAX: usize = 4096;

/// Most peers with [`PeerFault`] penalties remembered; when full, the table is reset.
pub const PENALTIES_MAX: usize = 4096;

/// Most banned peers remembered; when full, the ban expiring first is dropped.
pub const BANS_MAX: usize = 4096;

/// Receives each new ban (peer, expiry in ms since the Unix epoch) so that it can be
/// persisted; called on the swarm task, so it must be quick.
pub type BanSink = std::sync::Arc<dyn Fn(PeerId, u64) + Send + Sync>;

/// Receives each new IP ban (address, expiry in ms since the Unix epoch) so that it can be
/// persisted; called on the swarm task, so it must be quick.
pub type IpBanSink = std::sync::Arc<dyn Fn(std::net::IpAddr, u64) + Send + Sync>;

/// Most banned IP addresses remembered; when full, the IP ban expiring first is dropped.
pub const IP_BANS_MAX: usize = 4096;

/// Most IP addresses whose banned identities are counted (towards
/// [`AdmissionConfig::banned_identities_per_ip_max`]); when full, the count is reset.
pub const IPS_TRACKED_MAX: usize = 4096;

/// Most IP addresses remembered as genesis validators' addresses (never banned).
pub const VALIDATOR_IPS_MAX: usize = 4096;

/// Default of [`AdmissionConfig::connections_per_peer_max`], connections.
pub const DEFAULT_CONNECTIONS_PER_PEER_MAX: u32 = 2;

/// Default of [`AdmissionConfig::connections_per_ip_max`], connections.
pub const DEFAULT_CONNECTIONS_PER_IP_MAX: u32 = 16;

/// Default of [`AdmissionConfig::banned_identities_per_ip_max`], identities.
pub const DEFAULT_BANNED_IDENTITIES_PER_IP_MAX: u32 = 3;

/// Peer admission and reputation settings; see the module docs.
/// [`AdmissionConfig::disabled`] turns admission off (reputation bans still apply).
#[derive(Clone)]
pub struct AdmissionConfig {
    /// Required leading zero bits at start (the `admission_difficulty_bits` in force: genesis's
    /// as changed by governance); 0 disables admission. At most
    /// [`crate::admission::DIFFICULTY_BITS_MAX`]. Changed at runtime with
    /// [`NetworkHandle::set_admission_difficulty`].
    pub difficulty_bits: u8,
    /// The genesis hash the proofs are bound to.
    pub genesis_hash: [u8; 32],
    /// Peers admitted without a proof for as long as the node runs, whatever the validator
    /// set (static exemptions, e.g. from the operator's configuration; `node::run` puts the
    /// validators in [`AdmissionConfig::validators`] instead). Together with `validators`,
    /// at most [`ADMISSION_EXEMPT_MAX`].
    pub exempt: std::collections::HashSet<PeerId>,
    /// The validator set's peers exempt at start (the running epoch's set): admitted
    /// without a proof until [`NetworkHandle::exempt`] replaces them with a new epoch's set
    /// (exemptions follow the current set; see the module docs, "Exemptions follow the
    /// validator set").
    pub validators: std::collections::HashSet<PeerId>,
    /// This node's proof (nonce); `None` if this node is exempt or admission is disabled.
    /// Replaced at runtime by a stronger one when the node solves again (see the module
    /// docs).
    pub own_nonce: Option<u64>,
    /// Where a proof solved at runtime is stored (`<home>/admission_pow.json`, the file
    /// [`crate::admission::load_or_solve`] reads at start); `None`: kept in memory only.
    pub pow_file: Option<std::path::PathBuf>,
    /// Whether this node solves a new proof when a validator or bootstrap peer refuses its
    /// proof and demands more bits (module docs). `true` for every node; `false` keeps the
    /// proof it has whatever peers demand (tests model a peer that cannot or will not
    /// solve with it).
    pub solve_on_demand: bool,
    /// How long a connected peer has to prove, milliseconds, ≥ 1.
    pub deadline_ms: u64,
    /// How long a ban lasts, milliseconds, ≥ 1.
    pub ban_duration_ms: u64,
    /// Bans in force at start (peer, expiry in ms since the Unix epoch), e.g. loaded from
    /// storage; at most [`BANS_MAX`] are kept.
    pub initial_bans: Vec<(PeerId, u64)>,
    /// Called with each new ban, for persistence.
    pub ban_sink: Option<BanSink>,
    /// Established connections per non-validator peer, ≥ 1 (further ones are closed at
    /// once). Genesis validators and bootstrap peers are exempt.
    pub connections_per_peer_max: u32,
    /// Established connections of non-validator peers per remote IP address, ≥ 1 (further
    /// ones are closed at once). Genesis validators and bootstrap peers are exempt and not
    /// counted.
    pub connections_per_ip_max: u32,
    /// When more than this many identities seen on one IP address have been banned, the IP
    /// address itself is banned for [`AdmissionConfig::ban_duration_ms`], ≥ 1. IP addresses
    /// of genesis validators and bootstrap peers are never banned.
    pub banned_identities_per_ip_max: u32,
    /// IP bans in force at start (address, expiry in ms since the Unix epoch), e.g. loaded
    /// from storage; at most [`IP_BANS_MAX`] are kept.
    pub initial_ip_bans: Vec<(std::net::IpAddr, u64)>,
    /// Called with each new IP ban, for persistence.
    pub ip_ban_sink: Option<IpBanSink>,
}

impl std::fmt::Debug for BanSinkDebug<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

struct BanSinkDebug<'a>(&'a Option<BanSink>);

impl fmt::Debug for AdmissionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionConfig")
            .field("difficulty_bits", &self.difficulty_bits)
            .field("exempt", &self.exempt.len())
            .field("validators", &self.validators.len())
            .field("own_nonce", &self.own_nonce)
            .field("pow_file", &self.pow_file)
            .field("solve_on_demand", &self.solve_on_demand)
            .field("deadline_ms", &self.deadline_ms)
            .field("ban_duration_ms", &self.ban_duration_ms)
            .field("initial_bans", &self.initial_bans.len())
            .field("ban_sink", &BanSinkDebug(&self.ban_sink))
            .field("connections_per_peer_max", &self.connections_per_peer_max)
            .field("connections_per_ip_max", &self.connections_per_ip_max)
            .field(
                "banned_identities_per_ip_max",
                &self.banned_identities_per_ip_max,
            )
            .field("initial_ip_bans", &self.initial_ip_bans.len())
            .field("ip_ban_sink", &self.ip_ban_sink.is_some())
            .finish()
    }
}

impl AdmissionConfig {
    /// Admission off: every peer is admitted at once.
    pub fn disabled() -> Self {
        AdmissionConfig {
            difficulty_bits: 0,
            genesis_hash: [0; 32],
            exempt: Default::default(),
            validators: Default::default(),
            own_nonce: None,
            pow_file: None,
            solve_on_demand: true,
            deadline_ms: 5000,
            ban_duration_ms: 3_600_000,
            initial_bans: Vec::new(),
            ban_sink: None,
            connections_per_peer_max: DEFAULT_CONNECTIONS_PER_PEER_MAX,
            connections_per_ip_max: DEFAULT_CONNECTIONS_PER_IP_MAX,
            banned_identities_per_ip_max: DEFAULT_BANNED_IDENTITIES_PER_IP_MAX,
            initial_ip_bans: Vec::new(),
            ip_ban_sink: None,
        }
    }

    /// Whether admission is on.
    pub fn enabled(&self) -> bool {
        self.difficulty_bits > 0
    }

    fn validate(&self) -> Result<(), NetworkError> {
        let invalid = |reason: String| Err(NetworkError::InvalidConfig { reason });
        if self.difficulty_bits > crate::admission::DIFFICULTY_BITS_MAX {
            return invalid(format!(
                "admission.difficulty_bits: {} exceeds {}",
                self.difficulty_bits,
                crate::admission::DIFFICULTY_BITS_MAX
            ));
        }
        if self.exempt.union(&self.validators).count() > ADMISSION_EXEMPT_MAX {
            return invalid(format!(
                "admission.exempt: more than {ADMISSION_EXEMPT_MAX} peers (with validators)"
            ));
        }
        if self.deadline_ms == 0 {
            return invalid("admission.deadline_ms: must be at least 1".into());
        }
        if self.ban_duration_ms == 0 {
            return invalid("admission.ban_duration_ms: must be at least 1".into());
        }
        for (name, v) in [
            ("connections_per_peer_max", self.connections_per_peer_max),
            ("connections_per_ip_max", self.connections_per_ip_max),
            (
                "banned_identities_per_ip_max",
                self.banned_identities_per_ip_max,
            ),
        ] {
            if v == 0 {
                return invalid(format!("admission.{name}: must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Where a connected peer stands in admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionStatus {
    /// Admission is disabled: every peer counts as admitted.
    Disabled,
    /// A validator of the current set (or statically exempt): admitted without proof.
    Exempt,
    /// Proved its identity.
    Admitted,
    /// Connected, proof not yet received.
    Pending,
    /// Proof missing past the deadline or wrong; being disconnected.
    Refused,
}

impl AdmissionStatus {
    /// Whether the peer takes part in gossip and sync.
    pub fn is_admitted(self) -> bool {
        matches!(self, Self::Disabled | Self::Exempt | Self::Admitted)
    }

    /// Lower-case name (`disabled`, `exempt`, `admitted`, `pending`, `refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Exempt => "exempt",
            Self::Admitted => "admitted",
            Self::Pending => "pending",
            Self::Refused => "refused",
        }
    }
}

/// The node's own admission state, as returned by [`NetworkHandle::admission_info`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionInfo {
    /// The difficulty required of peers now (0: admission off).
    pub difficulty_bits: u8,
    /// The strength of this node's own proof ([`crate::admission::proof_bits`]); `None` if it
    /// has none.
    pub own_proof_bits: Option<u8>,
    /// The difficulty of the solve running now, if any.
    pub solving_bits: Option<u8>,
    /// Whether this node itself is exempt (a validator of the current set, or statically
    /// exempt): it proves nothing while it is.
    pub exempt: bool,
}

/// Configuration of the networking layer. All fields are required; check with
/// [`NetworkConfig::validate`] (also done by [`spawn`]).
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The node's ed25519 key; its public key is the node's [`PeerId`].
    pub keypair: libp2p::identity::Keypair,
    /// TCP address to listen on, e.g. `/ip4/0.0.0.0/tcp/26656`; port 0 picks a free port
    /// (see [`NetworkHandle::listen_addrs`]). Must contain a `/tcp` component and no `/p2p`.
    pub listen: Multiaddr,
    /// Peers to connect to: each address ends with `/p2p/<peer id>` and contains `/tcp`.
    /// Each is dialed at start and redialed every `redial_interval_ms` while disconnected.
    /// Entries naming the local peer are ignored. Bootstrap peers are exempt from
    /// `connections_max`.
    pub bootstrap: Vec<Multiaddr>,
    /// Chain namespace used in topic and protocol names (short genesis hash hex):
    /// 1..=[`NAMESPACE_LEN_MAX`] characters of `[A-Za-z0-9._-]`.
    pub namespace: String,
    /// Largest gossip payload in bytes (≥ 1), on publish and on receipt.
    pub gossip_bytes_max: usize,
    /// Largest sync request payload in bytes, 1..=`u32::MAX`.
    pub sync_request_bytes_max: usize,
    /// Largest sync response payload in bytes, 1..=`u32::MAX`.
    pub sync_response_bytes_max: usize,
    /// Bound on one sync exchange (stream open, request, response), milliseconds, ≥ 1.
    pub sync_request_timeout_ms: u64,
    /// Capacity of the event queue returned by [`spawn`], in events, ≥ 1.
    pub event_queue_max: usize,
    /// Capacity of the handle → swarm task command queue, in commands, ≥ 1.
    pub command_queue_max: usize,
    /// Interval between redial attempts to disconnected bootstrap peers, milliseconds, ≥ 1.
    pub redial_interval_ms: u64,
    /// Maximum established connections (inbound + outbound), ≥ 1; see the module docs.
    pub connections_max: u32,
    /// Peer discovery (Kademlia over admitted peers, identify address learning, peer
    /// targets); [`DiscoveryConfig::disabled`] turns it off.
    pub discovery: DiscoveryConfig,
    /// NAT traversal (AutoNAT, circuit relay v2, DCUtR); [`NatConfig::disabled`] turns it
    /// all off.
    pub nat: NatConfig,
    /// Pacing of the sync requests this node sends each peer ([`pacer`]): keeps an honest
    /// node below its peers' sync-server rate limits however busy it is.
    pub request_pacing: pacer::RequestPacing,
}

/// Peer discovery settings (module docs, "Discovery"; `docs/network.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Run Kademlia (`/cairn/{namespace}/kad/1.0.0`), random walks and discovery dials.
    /// `false`: the node reaches only its bootstrap peers and those that dial it, and
    /// serves no Kademlia requests.
    pub enabled: bool,
    /// Connected peers the node looks for: below it, it dials discovered peers (at most
    /// [`discovery::DIALS_PER_TICK_MAX`] per `interval_ms`) and walks once per
    /// `interval_ms`; at or above it, it stops dialing and walks back off. ≤ `peers_max`.
    pub peers_target: u32,
    /// Most connected peers: a connection of a new peer beyond it is closed at once
    /// (counted in [`NetworkStats::connections_closed_peers_max`]) unless the peer is a
    /// bootstrap peer or a validator of the current set. ≥ 1.
    pub peers_max: u32,
    /// Discovery tick, milliseconds, ≥ 1: at most one random walk and
    /// [`discovery::DIALS_PER_TICK_MAX`] discovery dials per tick.
    pub interval_ms: u64,
}

impl DiscoveryConfig {
    /// Discovery off; `peers_max` unbounded (only `connections_max` applies).
    pub fn disabled() -> Self {
        DiscoveryConfig {
            enabled: false,
            peers_target: 0,
            peers_max: u32::MAX,
            interval_ms: 1000,
        }
    }
}

impl NetworkConfig {
    /// Checks every field against the bounds documented on it.
    ///
    /// # Errors
    /// [`NetworkError::InvalidConfig`] naming the first offending field.
    pub fn validate(&self) -> Result<(), NetworkError> {
        let invalid = |reason: String| Err(NetworkError::InvalidConfig { reason });
        if self.keypair.key_type() != libp2p::identity::KeyType::Ed25519 {
            return invalid("keypair: must be ed25519".into());
        }
        if !self.listen.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
            return invalid(format!("listen: {} has no /tcp component", self.listen));
        }
        if self.listen.iter().any(|p| matches!(p, Protocol::P2p(_))) {
            return invalid(format!("listen: {} must not contain /p2p", self.listen));
        }
        if dns::is_dns(&self.listen) {
            return invalid(format!(
                "listen: {} must be an IP address, not a DNS name",
                self.listen
            ));
        }
        for addr in &self.bootstrap {
            split_peer_addr(addr).map_err(|reason| NetworkError::InvalidConfig { reason })?;
            if dns::is_dnsaddr(addr) {
                return invalid(format!(
                    "bootstrap: {addr}: /dnsaddr is not supported (use /dns4, /dns6 or /dns)"
                ));
            }
        }
        let ns = &self.namespace;
        if ns.is_empty()
            || ns.len() > NAMESPACE_LEN_MAX
            || !ns
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return invalid(format!(
                "namespace: {ns:?} must be 1..={NAMESPACE_LEN_MAX} characters of [A-Za-z0-9._-]"
            ));
        }
        self.request_pacing
            .validate()
            .map_err(|reason| NetworkError::InvalidConfig { reason })?;
        if self.gossip_bytes_max == 0 || self.gossip_bytes_max > u32::MAX as usize {
            return invalid("gossip_bytes_max: must be in 1..=u32::MAX".into());
        }
        for (name, v) in [
            ("sync_request_bytes_max", self.sync_request_bytes_max),
            ("sync_response_bytes_max", self.sync_response_bytes_max),
        ] {
            if v == 0 || v > u32::MAX as usize {
                return invalid(format!(
                    "{name}: must be in 1..=u32::MAX (u32 length prefix)"
                ));
            }
        }
        for (name, v) in [
            ("sync_request_timeout_ms", self.sync_request_timeout_ms),
            ("redial_interval_ms", self.redial_interval_ms),
            ("event_queue_max", self.event_queue_max as u64),
            ("command_queue_max", self.command_queue_max as u64),
            ("connections_max", u64::from(self.connections_max)),
            ("discovery.peers_max", u64::from(self.discovery.peers_max)),
            ("discovery.interval_ms", self.discovery.interval_ms),
        ] {
            if v == 0 {
                return invalid(format!("{name}: must be at least 1"));
            }
        }
        self.nat.validate()?;
        if self.discovery.peers_target > self.discovery.peers_max {
            return invalid(format!(
                "discovery.peers_target: {} exceeds peers_max {}",
                self.discovery.peers_target, self.discovery.peers_max
            ));
        }
        Ok(())
    }

    /// The gossipsub topic string of `topic` in this namespace.
    pub fn topic_name(&self, topic: Topic) -> String {
        format!(
            "/cairn/{}/{}/{}",
            self.namespace,
            topic.short_name(),
            topic.version()
        )
    }

    /// The sync protocol name in this namespace: `/cairn/{namespace}/sync/6` (version 6
    /// adds state-snapshot offers and chunks; version 5: the status answer carries the
    /// lowest retained height and a pruned range is answered `Pruned`; version 4 added epoch
    /// proofs to synced blocks; version 2 added `SyncRequest::BlockTransactions`; version 3
    /// serves block header v2).
    pub fn sync_protocol(&self) -> String {
        format!("/cairn/{}/sync/6", self.namespace)
    }
}

/// Splits `.../p2p/<peer id>` into the peer id and the address without the `/p2p` suffix.
fn split_peer_addr(addr: &Multiaddr) -> Result<(PeerId, Multiaddr), String> {
    let mut base = addr.clone();
    match base.pop() {
        Some(Protocol::P2p(peer)) => {
            if !base.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
                return Err(format!("bootstrap: {addr} has no /tcp component"));
            }
            Ok((peer, base))
        }
        _ => Err(format!("bootstrap: {addr} must end with /p2p/<peer id>")),
    }
}

/// A gossip topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Signed transactions: `/cairn/{namespace}/tx/1`.
    Transactions,
    /// Consensus messages (proposals, votes, certificates) in their epoch's envelope
    /// (`cairn_consensus::EpochMessage`): `/cairn/{namespace}/consensus/2`.
    Consensus,
    /// Compact blocks (header, transaction hashes and the leader's signed proposal,
    /// `crate::compact::CompactBlock`): `/cairn/{namespace}/block/4`.
    Blocks,
    /// Equivocation evidence records with their epoch (`crate::driver::EpochEvidence`, at
    /// most `EpochEvidence::BYTES_MAX` = 302 bytes): `/cairn/{namespace}/evidence/2`.
    Evidence,
}

impl Topic {
    /// All topics; the node subscribes to each.
    pub const ALL: [Topic; 4] = [
        Topic::Transactions,
        Topic::Consensus,
        Topic::Blocks,
        Topic::Evidence,
    ];

    fn short_name(self) -> &'static str {
        match self {
            Topic::Transactions => "tx",
            Topic::Consensus => "consensus",
            Topic::Blocks => "block",
            Topic::Evidence => "evidence",
        }
    }

    /// Payload format version, the last part of the topic string.
    fn version(self) -> u32 {
        match self {
            // Block 4, consensus 2, evidence 2: payloads carry their epoch.
            Topic::Blocks => 4,
            Topic::Consensus | Topic::Evidence => 2,
            Topic::Transactions => 1,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// The application's verdict on a [`NetworkEvent::Gossip`] message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Acceptance {
    /// Valid: gossipsub forwards it to mesh peers (never back to the source).
    Accept,
    /// Invalid through the sender's fault (bad signature, malformed): not forwarded and the
    /// forwarding peer is penalized in gossipsub's peer score.
    Reject,
    /// Not useful for state-dependent reasons (stale, duplicate, unknown parent): dropped,
    /// not forwarded, no penalty.
    Ignore,
}

impl From<Acceptance> for gossipsub::MessageAcceptance {
    fn from(a: Acceptance) -> Self {
        match a {
            Acceptance::Accept => gossipsub::MessageAcceptance::Accept,
            Acceptance::Reject => gossipsub::MessageAcceptance::Reject,
            Acceptance::Ignore => gossipsub::MessageAcceptance::Ignore,
        }
    }
}

/// A provable misbehaviour of a peer outside gossip validation (where
/// [`Acceptance::Reject`] already penalizes): each lowers the peer's gossipsub
/// application-specific score by [`PeerFault::penalty`], cumulatively, until
/// [`SCORE_DISCONNECT`] / [`SCORE_BAN`] act on it (validators are never disconnected or
/// banned for their score; the fault is logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerFault {
    /// Served a block body that is not the one its header commits to, or another block
    /// than the one asked for.
    BadBlockBody,
    /// Gossiped a block not signed by its view's leader.
    ForgedProposal,
    /// Served a sync response with a certificate that does not verify, or blocks that do
    /// not match their headers.
    BadSyncResponse,
    /// Sent more sync requests than its rate allows.
    AbusiveRequests,
    /// Served a state-snapshot chunk that is not the one the manifest it was asked under
    /// names (length, blake3 hash or contents), or offered a snapshot whose certificate
    /// does not verify.
    BadSnapshotChunk,
}

impl PeerFault {
    /// Points subtracted from the peer's application score for one fault. A body or
    /// certificate forgery is deliberate (an honest node serves only what it verified), so
    /// one costs a disconnect ([`SCORE_DISCONNECT`] is −100) and four a ban
    /// ([`SCORE_BAN`] is −400); a request over the rate limit costs a tenth of that.
    pub fn penalty(self) -> f64 {
        match self {
            PeerFault::BadBlockBody | PeerFault::ForgedProposal | PeerFault::BadSyncResponse => {
                100.0
            }
            PeerFault::AbusiveRequests => 10.0,
            // A chunk is asked for by its manifest's id and checked against the blake3 hash
            // that manifest lists, and Noise authenticates every byte in transit: no honest
            // node can serve a wrong one, so one is a ban at once.
            PeerFault::BadSnapshotChunk => 500.0,
        }
    }

    /// Short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerFault::BadBlockBody => "bad_block_body",
            PeerFault::ForgedProposal => "forged_proposal",
            PeerFault::BadSyncResponse => "bad_sync_response",
            PeerFault::AbusiveRequests => "abusive_requests",
            PeerFault::BadSnapshotChunk => "bad_snapshot_chunk",
        }
    }
}

/// Opaque, content-addressed id of a received gossip message (20 bytes; see module docs).
/// Pass it back to [`NetworkHandle::report`]. Displays as hex.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(gossipsub::MessageId);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Opaque handle to answer one inbound sync request with [`NetworkHandle::respond`].
/// Dropping it without responding closes the stream without a response (the requester sees
/// [`NetworkError::NoResponse`]). It expires [`NetworkConfig::sync_request_timeout_ms`] after
/// the request arrived.
#[derive(Debug)]
pub struct ResponseToken(request_response::ResponseChannel<Vec<u8>>);

/// Something that happened on the network; received from the queue returned by [`spawn`].
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message passed gossipsub's checks (signature, size, duplicates) and awaits
    /// application validation. Must be answered with [`NetworkHandle::report`]`(message_id,
    /// source, ..)` within [`VALIDATION_WINDOW`].
    Gossip {
        /// The topic it was published on.
        topic: Topic,
        /// The peer that forwarded it to us (not necessarily its author); the one penalized
        /// on `Reject`.
        source: PeerId,
        /// Content-addressed id to report with.
        message_id: MessageId,
        /// Payload, at most [`NetworkConfig::gossip_bytes_max`] bytes.
        data: Vec<u8>,
    },
    /// A sync request; answer with [`NetworkHandle::respond`] within
    /// [`NetworkConfig::sync_request_timeout_ms`].
    Request {
        /// The requesting peer.
        peer: PeerId,
        /// Request payload, at most [`NetworkConfig::sync_request_bytes_max`] bytes.
        data: Vec<u8>,
        /// Where to send the response.
        token: ResponseToken,
    },
    /// The first connection to `peer` was established.
    PeerConnected {
        /// The peer.
        peer: PeerId,
    },
    /// The last connection to `peer` was closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
}

/// A connected peer, as returned by [`NetworkHandle::peers`].
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// The peer's id.
    pub peer_id: PeerId,
    /// Remote address of our oldest connection to it: the dialed address if outbound, the
    /// remote socket address (not necessarily dialable) if inbound. Always `Some` for TCP.
    pub address: Option<Multiaddr>,
    /// Whether that connection was dialed by us.
    pub outbound: bool,
    /// Where the peer stands in admission.
    pub admission: AdmissionStatus,
    /// Our gossipsub score of the peer (includes the application-specific admission score),
    /// if gossipsub knows it.
    pub score: Option<f64>,
    /// How the peer was found (of its oldest connection still open).
    pub found: PeerSource,
    /// Whether we reach it directly (any open connection without a relay) or only through
    /// a relay.
    pub path: ConnectionPath,
}

/// The discovery state, as returned by [`NetworkHandle::discovery_info`] (diagnostics and
/// tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryInfo {
    /// Whether discovery runs.
    pub enabled: bool,
    /// Peers in the Kademlia routing table (admitted peers only).
    pub routing_table: Vec<PeerId>,
    /// Peers known as dial candidates (from walks or identify).
    pub candidates: Vec<PeerId>,
    /// The current gap between random walks, in `interval_ms` (1 below the target, up to
    /// [`discovery::WALK_BACKOFF_FACTOR_MAX`] above).
    pub walk_backoff_factor: u32,
}

/// Errors of the networking layer.
///
/// Classes: transient ([`NetworkError::is_transient`]: retry later or elsewhere), peer fault
/// ([`NetworkError::is_peer_fault`]: the remote misbehaved, or the caller passed over-size
/// data), fatal ([`NetworkError::is_fatal`]: the network layer is unusable).
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Transient: the peer did not answer a sync request within
    /// [`NetworkConfig::sync_request_timeout_ms`].
    #[error("request to {peer} timed out")]
    Timeout {
        /// The peer asked.
        peer: PeerId,
    },
    /// Transient: not connected to the peer, the connection dropped, the peer does not speak
    /// the sync protocol, or too many concurrent streams.
    #[error("peer {peer} unreachable: {reason}")]
    PeerUnreachable {
        /// The peer.
        peer: PeerId,
        /// Human-readable cause.
        reason: String,
    },
    /// Transient: the peer closed a sync stream without a response (it was overloaded, its
    /// application dropped the [`ResponseToken`], or the response would have exceeded the
    /// peer's own bound). A closure in the last fifth of the timeout window (the responder's
    /// own timer expiring) is reported as [`NetworkError::Timeout`] instead.
    #[error("peer {peer} closed the request without a response")]
    NoResponse {
        /// The peer.
        peer: PeerId,
    },
    /// Transient: a bounded queue is full; `queue` names it (`"command"` for the handle's
    /// command queue, `"gossip peer send queues"` when every peer's send queue is full).
    #[error("{queue} queue is full")]
    QueueFull {
        /// Which queue.
        queue: &'static str,
    },
    /// Transient: this node has sent `peer` as many sync requests as its pacing allows
    /// ([`NetworkConfig::request_pacing`]); the request would have had to wait `wait_ms`
    /// (more than [`PACING_WAIT_MAX`]) and was not sent. Nobody's fault.
    #[error("request to {peer} not sent: pacing would delay it {wait_ms} ms")]
    Paced {
        /// The peer.
        peer: PeerId,
        /// The wait the request would have needed, ms.
        wait_ms: u64,
    },
    /// Peer fault (or caller bug for local input): a payload of `len` bytes exceeds the
    /// `max`-byte bound. Returned by [`NetworkHandle::publish`] / [`NetworkHandle::request`]
    /// for over-size local input (nothing sent) and by [`NetworkHandle::request`] when the
    /// peer announced an over-size response (refused before reading it).
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    Oversize {
        /// Actual or announced length in bytes.
        len: usize,
        /// The bound in bytes.
        max: usize,
    },
    /// Peer fault: the peer broke the wire protocol (e.g. truncated frame).
    #[error("protocol violation by {peer}: {reason}")]
    ProtocolViolation {
        /// The offending peer.
        peer: PeerId,
        /// Human-readable cause.
        reason: String,
    },
    /// Fatal: the transport could not be set up (listen failed, swarm construction failed).
    #[error("transport error: {reason}")]
    Transport {
        /// Human-readable cause.
        reason: String,
    },
    /// Fatal: [`NetworkConfig::validate`] failed.
    #[error("invalid network config: {reason}")]
    InvalidConfig {
        /// Which field and why.
        reason: String,
    },
    /// Fatal: the swarm task has stopped.
    #[error("network is shut down")]
    Shutdown,
}

impl NetworkError {
    /// Worth retrying later or with another peer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::PeerUnreachable { .. }
                | Self::NoResponse { .. }
                | Self::QueueFull { .. }
                | Self::Paced { .. }
        )
    }

    /// The remote (or, for local over-size input, the caller) is at fault.
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, Self::Oversize { .. } | Self::ProtocolViolation { .. })
    }

    /// The network layer cannot be used (any more).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Transport { .. } | Self::InvalidConfig { .. } | Self::Shutdown
        )
    }
}

/// Counters of the networking layer (monotonic since [`spawn`]; two discovery gauges, marked
/// as such, are values); read with [`NetworkHandle::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Gossip messages dropped (and reported `Ignore`) because the event queue was full or
    /// closed.
    pub gossip_dropped_queue_full: u64,
    /// Inbound sync requests dropped (closed without a response) because the event queue was
    /// full or closed.
    pub requests_dropped_queue_full: u64,
    /// Sync requests this node held back before sending, to stay within its pacing of
    /// that peer ([`NetworkConfig::request_pacing`]).
    pub requests_paced: u64,
    /// Sync requests this node did not send because pacing would have held them back longer
    /// than [`PACING_WAIT_MAX`] ([`NetworkError::Paced`]).
    pub requests_paced_refused: u64,
    /// Received gossip messages larger than `gossip_bytes_max` (reported `Reject`).
    pub gossip_rejected_oversize: u64,
    /// Gossip messages reported `Reject` by the application.
    pub gossip_rejected: u64,
    /// Connections closed because `connections_max` was reached.
    pub connections_closed_limit: u64,
    /// Sync streams that failed through a peer's protocol violation (over-size or truncated
    /// frames), in either direction.
    pub sync_protocol_violations: u64,
    /// Peers admitted after a valid proof of work.
    pub peers_admitted: u64,
    /// Peers refused admission (wrong proof or none within the deadline).
    pub peers_refused: u64,
    /// Gossip messages or sync requests from unadmitted peers that were dropped.
    pub unadmitted_dropped: u64,
    /// Peers banned for a low score.
    pub peers_banned: u64,
    /// Peers disconnected for a score below [`SCORE_DISCONNECT`] (bans included).
    pub peers_disconnected_score: u64,
    /// Connections from banned peers closed at once.
    pub connections_refused_banned: u64,
    /// IP addresses banned (more than `banned_identities_per_ip_max` banned identities).
    pub ips_banned: u64,
    /// Connections of non-validator peers from banned IP addresses closed at once.
    pub connections_refused_banned_ip: u64,
    /// Connections closed because the peer had `connections_per_peer_max` already.
    pub connections_closed_peer_limit: u64,
    /// Connections closed because their IP address had `connections_per_ip_max` already.
    pub connections_closed_ip_limit: u64,
    /// Provable peer faults recorded with [`NetworkHandle::penalize`].
    pub peer_faults: u64,
    /// Proofs of work this node solved while running, for a higher difficulty (see the
    /// module docs, "Learning a higher difficulty").
    pub admission_proofs_solved: u64,
    /// Refusals of our proof demanding more bits than it has that started no solve: the
    /// refusing peer was neither a validator nor a bootstrap peer, or the demand exceeded
    /// [`crate::admission::DIFFICULTY_BITS_MAX`].
    pub admission_claims_ignored: u64,
    /// Connected peers whose exemption was withdrawn ([`NetworkHandle::exempt`] with a set
    /// without them) while let in as exempt: each became admitted (it had sent a valid
    /// proof), pending, or (admission off) `disabled`.
    pub admission_exemptions_withdrawn: u64,
    /// Kademlia requests never served: record and provider requests (Cairn keeps no DHT
    /// records), and `FIND_NODE` requests of peers that were refused, disconnected before
    /// admission or sent more than [`discovery::HELD_REQUESTS_PER_PEER_MAX`] before it.
    pub kad_requests_refused: u64,
    /// Random walks (and validator lookups) started.
    pub discovery_walks: u64,
    /// Dials of discovered peers started.
    pub discovery_dials: u64,
    /// Connections of new peers closed because `peers_max` peers were connected.
    pub connections_closed_peers_max: u64,
    /// Dials of discovered peers that failed (the dial could not start, or the connection
    /// attempt failed); each pushes the candidate back ([`discovery::Candidates::dial_failed`]).
    pub discovery_dial_failures: u64,
    /// New dial candidates learned from Kademlia answers (a peer not yet a candidate).
    pub discovery_found_kademlia: u64,
    /// New dial candidates learned from a peer's own identify announcement.
    pub discovery_found_identify: u64,
    /// Peers connected (their first connection), by how they were found ([`PeerSource`]):
    /// named in `p2p.bootstrap`.
    pub peers_connected_configured: u64,
    /// Peers connected, dialed at an address a Kademlia answer gave.
    pub peers_connected_kademlia: u64,
    /// Peers connected, dialed at an address they announced through identify.
    pub peers_connected_identify: u64,
    /// Peers connected that dialed us.
    pub peers_connected_inbound: u64,
    /// Gauge, not a counter: peers in the Kademlia routing table at the last discovery tick
    /// (0 with discovery off; at most 256 buckets of 20).
    pub discovery_routing_table_peers: u64,
    /// Gauge, not a counter: dial candidates at the last discovery tick (at most
    /// [`discovery::CANDIDATES_MAX`]).
    pub discovery_candidates: u64,
    /// What AutoNAT concluded about this node's reachability ([`Reachability::code`]: 0
    /// unknown, 1 public, 2 private); a gauge, not a counter.
    pub nat_status: u64,
    /// Relay reservations this node holds now on relays ([`NatConfig::relays`]); a gauge.
    pub relay_reservations_held: u64,
    /// Reservations our relay service accepted (new or renewed).
    pub relay_reservations_served: u64,
    /// Reservations our relay service denied (unadmitted peer, limits reached).
    pub relay_reservations_denied: u64,
    /// Circuits our relay service opened.
    pub relay_circuits_served: u64,
    /// Circuits our relay service denied (unadmitted source, no reservation, limits).
    pub relay_circuits_denied: u64,
    /// Relayed connections DCUtR upgraded to direct ones.
    pub dcutr_upgrades: u64,
    /// DCUtR attempts that failed (the connection stays relayed).
    pub dcutr_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    gossip_dropped_queue_full: AtomicU64,
    requests_dropped_queue_full: AtomicU64,
    requests_paced: AtomicU64,
    requests_paced_refused: AtomicU64,
    gossip_rejected_oversize: AtomicU64,
    gossip_rejected: AtomicU64,
    connections_closed_limit: AtomicU64,
    sync_protocol_violations: AtomicU64,
    peers_admitted: AtomicU64,
    peers_refused: AtomicU64,
    unadmitted_dropped: AtomicU64,
    peers_banned: AtomicU64,
    peers_disconnected_score: AtomicU64,
    connections_refused_banned: AtomicU64,
    ips_banned: AtomicU64,
    connections_refused_banned_ip: AtomicU64,
    connections_closed_peer_limit: AtomicU64,
    connections_closed_ip_limit: AtomicU64,
    peer_faults: AtomicU64,
    admission_proofs_solved: AtomicU64,
    admission_claims_ignored: AtomicU64,
    admission_exemptions_withdrawn: AtomicU64,
    kad_requests_refused: AtomicU64,
    discovery_walks: AtomicU64,
    discovery_dials: AtomicU64,
    connections_closed_peers_max: AtomicU64,
    discovery_dial_failures: AtomicU64,
    discovery_found_kademlia: AtomicU64,
    discovery_found_identify: AtomicU64,
    peers_connected_configured: AtomicU64,
    peers_connected_kademlia: AtomicU64,
    peers_connected_identify: AtomicU64,
    peers_connected_inbound: AtomicU64,
    discovery_routing_table_peers: AtomicU64,
    discovery_candidates: AtomicU64,
    nat_status: AtomicU64,
    relay_reservations_held: AtomicU64,
    relay_reservations_served: AtomicU64,
    relay_reservations_denied: AtomicU64,
    relay_circuits_served: AtomicU64,
    relay_circuits_denied: AtomicU64,
    dcutr_upgrades: AtomicU64,
    dcutr_failures: AtomicU64,
}

impl Counters {
    fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a gauge (a value, not a count).
    fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Counts a peer's first connection under how it was found.
    fn peer_connected(&self, found: PeerSource) {
        Self::inc(match found {
            PeerSource::Configured => &self.peers_connected_configured,
            PeerSource::Kademlia => &self.peers_connected_kademlia,
            PeerSource::Identify => &self.peers_connected_identify,
            PeerSource::Inbound => &self.peers_connected_inbound,
        });
    }

    fn snapshot(&self) -> NetworkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetworkStats {
            gossip_dropped_queue_full: get(&self.gossip_dropped_queue_full),
            requests_dropped_queue_full: get(&self.requests_dropped_queue_full),
            requests_paced: get(&self.requests_paced),
            requests_paced_refused: get(&self.requests_paced_refused),
            gossip_rejected_oversize: get(&self.gossip_rejected_oversize),
            gossip_rejected: get(&self.gossip_rejected),
            connections_closed_limit: get(&self.connections_closed_limit),
            sync_protocol_violations: get(&self.sync_protocol_violations),
            peers_admitted: get(&self.peers_admitted),
            peers_refused: get(&self.peers_refused),
            unadmitted_dropped: get(&self.unadmitted_dropped),
            peers_banned: get(&self.peers_banned),
            peers_disconnected_score: get(&self.peers_disconnected_score),
            connections_refused_banned: get(&self.connections_refused_banned),
            ips_banned: get(&self.ips_banned),
            connections_refused_banned_ip: get(&self.connections_refused_banned_ip),
            connections_closed_peer_limit: get(&self.connections_closed_peer_limit),
            connections_closed_ip_limit: get(&self.connections_closed_ip_limit),
            peer_faults: get(&self.peer_faults),
            admission_proofs_solved: get(&self.admission_proofs_solved),
            admission_claims_ignored: get(&self.admission_claims_ignored),
            admission_exemptions_withdrawn: get(&self.admission_exemptions_withdrawn),
            kad_requests_refused: get(&self.kad_requests_refused),
            discovery_walks: get(&self.discovery_walks),
            discovery_dials: get(&self.discovery_dials),
            connections_closed_peers_max: get(&self.connections_closed_peers_max),
            discovery_dial_failures: get(&self.discovery_dial_failures),
            discovery_found_kademlia: get(&self.discovery_found_kademlia),
            discovery_found_identify: get(&self.discovery_found_identify),
            peers_connected_configured: get(&self.peers_connected_configured),
            peers_connected_kademlia: get(&self.peers_connected_kademlia),
            peers_connected_identify: get(&self.peers_connected_identify),
            peers_connected_inbound: get(&self.peers_connected_inbound),
            discovery_routing_table_peers: get(&self.discovery_routing_table_peers),
            discovery_candidates: get(&self.discovery_candidates),
            nat_status: get(&self.nat_status),
            relay_reservations_held: get(&self.relay_reservations_held),
            relay_reservations_served: get(&self.relay_reservations_served),
            relay_reservations_denied: get(&self.relay_reservations_denied),
            relay_circuits_served: get(&self.relay_circuits_served),
            relay_circuits_denied: get(&self.relay_circuits_denied),
            dcutr_upgrades: get(&self.dcutr_upgrades),
            dcutr_failures: get(&self.dcutr_failures),
        }
    }
}

/// Commands from handles to the swarm task.
enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Report {
        id: MessageId,
        source: PeerId,
        acceptance: Acceptance,
    },
    Request {
        peer: PeerId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    },
    Respond {
        token: ResponseToken,
        data: Vec<u8>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    MeshPeers {
        topic: Topic,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    PeerScore {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    Penalize {
        peer: PeerId,
        fault: PeerFault,
    },
    Exempt {
        peers: Vec<PeerId>,
    },
    AdmissionInfo {
        reply: oneshot::Sender<AdmissionInfo>,
    },
    DiscoveryInfo {
        reply: oneshot::Sender<DiscoveryInfo>,
    },
    Shutdown,
}

/// Cloneable handle to the swarm task. Cheap to clone; the swarm task stops when
/// [`NetworkHandle::shutdown`] is called or every handle is dropped.
#[derive(Clone)]
pub struct NetworkHandle {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    gossip_bytes_max: usize,
    sync_request_bytes_max: usize,
    sync_response_bytes_max: usize,
    request_timeout: Duration,
    /// Pacing of sync requests per peer, shared by every clone of the handle (a short
    /// critical section: one hash-map entry updated).
    pacer: Arc<std::sync::Mutex<pacer::RequestPacer>>,
    /// The pacer's clock: ms are counted from here.
    pacer_epoch: tokio::time::Instant,
    /// The required admission difficulty (latest value wins; read by the swarm task).
    difficulty: Arc<watch::Sender<u8>>,
    /// Becomes `true` once the swarm task has dropped the swarm.
    stopped: watch::Receiver<bool>,
    /// gossipsub's own metrics (prefix `cairn_gossipsub`), among them per-topic messages and
    /// bytes sent (publishes and forwards) and received; read by `GET /metrics`.
    gossip_registry: Arc<prometheus_client::registry::Registry>,
}

impl fmt::Debug for NetworkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkHandle")
            .field("local_peer_id", &self.local_peer_id)
            .finish_non_exhaustive()
    }
}

impl NetworkHandle {
    /// This node's peer id (derived from [`NetworkConfig::keypair`]).
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// gossipsub's metrics registry (prefix `cairn_gossipsub`: per-topic
    /// `topic_msg_sent_counts`, `topic_msg_sent_bytes`, `topic_msg_recv_counts`,
    /// `topic_msg_recv_bytes`, mesh sizes, …), encoded after the node's own by `GET /metrics`.
    pub fn gossip_registry(&self) -> Arc<prometheus_client::registry::Registry> {
        self.gossip_registry.clone()
    }

    /// Counters since [`spawn`] (no round trip to the swarm task).
    pub fn stats(&self) -> NetworkStats {
        self.counters.snapshot()
    }

    /// Queues a command without waiting; `QueueFull` / `Shutdown` otherwise.
    fn try_command(&self, cmd: Command) -> Result<(), NetworkError> {
        self.commands.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetworkError::QueueFull { queue: "command" },
            mpsc::error::TrySendError::Closed(_) => NetworkError::Shutdown,
        })
    }

    /// Waits for room in the command queue; `false` if the swarm task has stopped.
    async fn command(&self, cmd: Command) -> bool {
        self.commands.send(cmd).await.is_ok()
    }

    /// Publishes `data` (at most [`NetworkConfig::gossip_bytes_max`] bytes) on `topic` to all
    /// connected peers subscribed to it (flood publish). Never delivered to this node itself.
    ///
    /// Returns `Ok` without sending when no peer is subscribed yet (logged at `debug`; the
    /// same data may be published again later), and `Ok` when the same data was already
    /// published or received on this topic within the last 60 s (content-addressed ids).
    ///
    /// # Errors
    /// [`NetworkError::Oversize`] (nothing sent), [`NetworkError::QueueFull`] (command queue
    /// or every peer's send queue full), [`NetworkError::Shutdown`].
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetworkError> {
        if data.len() > self.gossip_bytes_max {
            return Err(NetworkError::Oversize {
                len: data.len(),
                max: self.gossip_bytes_max,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.try_command(Command::Publish { topic, data, reply })?;
        rx.await.unwrap_or(Err(NetworkError::Shutdown))
    }

    /// Reports the application's verdict on a [`NetworkEvent::Gossip`] message; call exactly
    /// once per message, with the event's `message_id` and `source`, within
    /// [`VALIDATION_WINDOW`]. `Accept` forwards it, `Reject` penalizes `source`, `Ignore`
    /// drops it. Waits for room in the command queue; a no-op after shutdown.
    pub async fn report(&self, id: MessageId, source: PeerId, acceptance: Acceptance) {
        self.command(Command::Report {
            id,
            source,
            acceptance,
        })
        .await;
    }

    /// Records a provable fault of `peer` (see [`PeerFault`]): lowers its application
    /// score. Does not wait; dropped if the command queue is full (the next fault counts).
    pub fn penalize(&self, peer: PeerId, fault: PeerFault) {
        let _ = self.try_command(Command::Penalize { peer, fault });
    }

    /// Sets the validators exempt from admission to exactly `peers` (a new epoch's full
    /// set), replacing [`AdmissionConfig::validators`] or the previous call's set; peers in
    /// [`AdmissionConfig::exempt`] stay exempt whatever the set. Exemptions follow the
    /// current set (see the module docs, "Exemptions follow the validator set"):
    ///
    /// - a newly exempt connected peer still pending is exempt at once (announced with
    ///   [`NetworkEvent::PeerConnected`]);
    /// - a connected peer that loses its exemption and had been let in as exempt becomes
    ///   admitted if it sent a proof valid at the current difficulty, otherwise pending
    ///   ([`NetworkEvent::PeerDisconnected`] delivered): it must prove within
    ///   [`AdmissionConfig::deadline_ms`] or is disconnected, not banned (with admission
    ///   off it stays, status `disabled`);
    /// - if this node itself loses its exemption (a removed validator), it proves from now
    ///   on: it sends its proof to its connected peers, solving one first (in the
    ///   background, at the current difficulty) if it has none strong enough.
    ///
    /// Beyond [`ADMISSION_EXEMPT_MAX`] exempt peers, further peers are not exempt (logged).
    /// Never blocks (dropped if the command queue is full; the next epoch sends its set
    /// again).
    pub fn exempt(&self, peers: Vec<PeerId>) {
        let _ = self.try_command(Command::Exempt { peers });
    }

    /// Sets the admission difficulty required of peers from now on to `bits` leading zero
    /// bits (0 disables admission): the governed `admission_difficulty_bits` of the chain
    /// state this node committed. Peers already admitted stay admitted (admission is decided
    /// once per peer for as long as it stays connected); proofs received from now on are
    /// checked against `bits`; from non-zero to 0, pending peers are admitted at once. If
    /// this node is not exempt and its own proof is weaker than `bits`, it solves again in
    /// the background (see the module docs, "Runtime changes of the difficulty").
    ///
    /// `bits` above [`crate::admission::DIFFICULTY_BITS_MAX`] is ignored (the previous value
    /// stays; logged at `warn`): governance cannot set such a value, so it is a caller bug,
    /// and requiring more than any peer will solve would lock every new peer out.
    ///
    /// Never blocks and is never lost: the latest value is handed to the swarm task through a
    /// watch channel (not the bounded command queue), so calls in quick succession apply
    /// the last one. A no-op after shutdown.
    pub fn set_admission_difficulty(&self, bits: u8) {
        if bits > crate::admission::DIFFICULTY_BITS_MAX {
            tracing::warn!(
                bits,
                max = crate::admission::DIFFICULTY_BITS_MAX,
                "admission difficulty above the maximum; ignored"
            );
            return;
        }
        self.difficulty.send_replace(bits);
    }

    /// The node's admission state as the swarm task sees it now: the difficulty it requires
    /// (after any [`NetworkHandle::set_admission_difficulty`] it has applied), the strength
    /// of its own proof and the solve running, if any. `None` after shutdown.
    pub async fn admission_info(&self) -> Option<AdmissionInfo> {
        let (reply, rx) = oneshot::channel();
        if !self.command(Command::AdmissionInfo { reply }).await {
            return None;
        }
        rx.await.ok()
    }

    /// The discovery state now (routing table, candidates, walk backoff). `None` after
    /// shutdown.
    pub async fn discovery_info(&self) -> Option<DiscoveryInfo> {
        let (reply, rx) = oneshot::channel();
        if !self.command(Command::DiscoveryInfo { reply }).await {
            return None;
        }
        rx.await.ok()
    }

    /// Sends a sync request (at most [`NetworkConfig::sync_request_bytes_max`] bytes) to a
    /// connected `peer` and waits for its response (at most
    /// [`NetworkConfig::sync_response_bytes_max`] bytes), for at most
    /// [`NetworkConfig::sync_request_timeout_ms`] (plus a small slack for the swarm task).
    /// Does not dial: the peer must be connected.
    ///
    /// Paced ([`pacer`]): the request costs `cost` tokens of this peer's bucket
    /// ([`crate::sync::request_cost`]); when the bucket is short it waits for them first,
    /// up to [`PACING_WAIT_MAX`], and beyond that it is refused with
    /// [`NetworkError::Paced`] without being sent, so the caller asks another peer or later.
    ///
    /// # Errors
    /// Transient: [`NetworkError::Timeout`], [`NetworkError::PeerUnreachable`] (not connected,
    /// connection lost, protocol unsupported, too many streams),
    /// [`NetworkError::NoResponse`], [`NetworkError::QueueFull`]. Peer fault:
    /// [`NetworkError::Oversize`] (our request too large — nothing sent — or the peer's
    /// response announced more than the bound), [`NetworkError::ProtocolViolation`].
    /// Fatal: [`NetworkError::Shutdown`].
    pub async fn request(
        &self,
        peer: PeerId,
        data: Vec<u8>,
        cost: u32,
    ) -> Result<Vec<u8>, NetworkError> {
        if data.len() > self.sync_request_bytes_max {
            return Err(NetworkError::Oversize {
                len: data.len(),
                max: self.sync_request_bytes_max,
            });
        }
        let now_ms = self.pacer_epoch.elapsed().as_millis() as u64;
        let pace = self
            .pacer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(peer, now_ms, cost, PACING_WAIT_MAX.as_millis() as u64);
        match pace {
            pacer::Pace::SendAfterMs(0) => {}
            pacer::Pace::SendAfterMs(wait_ms) => {
                self.counters.requests_paced.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            }
            pacer::Pace::Refuse { wait_ms } => {
                self.counters
                    .requests_paced_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Err(NetworkError::Paced { peer, wait_ms });
            }
        }
        let (reply, rx) = oneshot::channel();
        self.try_command(Command::Request { peer, data, reply })?;
        match tokio::time::timeout(self.request_timeout + REQUEST_TIMEOUT_SLACK, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NetworkError::Shutdown),
            Err(_) => Err(NetworkError::Timeout { peer }),
        }
    }

    /// Answers an inbound [`NetworkEvent::Request`] with `data`. If `data` exceeds
    /// [`NetworkConfig::sync_response_bytes_max`] it is not sent: the stream is closed
    /// without a response (logged at `warn`; the requester sees
    /// [`NetworkError::NoResponse`]). A response after the request expired is dropped
    /// (logged at `debug`). Waits for room in the command queue; a no-op after shutdown.
    pub async fn respond(&self, token: ResponseToken, data: Vec<u8>) {
        if data.len() > self.sync_response_bytes_max {
            tracing::warn!(
                len = data.len(),
                max = self.sync_response_bytes_max,
                "sync response exceeds sync_response_bytes_max; closing the stream without a response"
            );
            drop(token);
            return;
        }
        self.command(Command::Respond { token, data }).await;
    }

    /// Currently connected peers, one entry per peer. Empty after shutdown.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let (reply, rx) = oneshot::channel();
        if !self.command(Command::Peers { reply }).await {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Addresses the node is currently listening on (with the actual port if configured
    /// with port 0; without `/p2p`). Empty after shutdown.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let (reply, rx) = oneshot::channel();
        if !self.command(Command::ListenAddrs { reply }).await {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Peers in this node's gossipsub mesh for `topic` (diagnostics and tests). Empty after
    /// shutdown.
    pub async fn mesh_peers(&self, topic: Topic) -> Vec<PeerId> {
        let (reply, rx) = oneshot::channel();
        if !self.command(Command::MeshPeers { topic, reply }).await {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// This node's gossipsub score of `peer` (`None` if unknown or after shutdown). Scores
    /// below −10 / −50 / −80 stop gossip to, publishing to, and all gossip from the peer.
    pub async fn peer_score(&self, peer: PeerId) -> Option<f64> {
        let (reply, rx) = oneshot::channel();
        if !self.command(Command::PeerScore { peer, reply }).await {
            return None;
        }
        rx.await.ok().flatten()
    }

    /// Stops the swarm task gracefully (see module docs) and returns once the swarm is
    /// dropped and its listen port released. Idempotent; returns at once if already stopped.
    pub async fn shutdown(&self) {
        // Fails only if the task is already stopping; either way, wait for it to finish.
        let _ = self.commands.send(Command::Shutdown).await;
        let mut stopped = self.stopped.clone();
        // Err: the task is gone without setting the flag (it panicked); nothing to wait for.
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// Validates `config`, builds the swarm, starts listening on [`NetworkConfig::listen`],
/// dials the bootstrap peers and spawns the swarm task on the current Tokio runtime.
/// Returns once the listener has an address (at most [`LISTEN_TIMEOUT`]), with the handle
/// and the event queue (capacity [`NetworkConfig::event_queue_max`]).
///
/// # Errors
/// [`NetworkError::InvalidConfig`]; [`NetworkError::Transport`] if the swarm cannot be
/// built or the listener cannot be opened (e.g. port in use).
pub async fn spawn(
    config: NetworkConfig,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    spawn_with_admission(config, AdmissionConfig::disabled()).await
}

/// [`spawn`] with peer admission configured by `admission` (see the module docs).
///
/// # Errors
/// As [`spawn`]; [`NetworkError::InvalidConfig`] also for an invalid `admission`.
pub async fn spawn_with_admission(
    config: NetworkConfig,
    admission: AdmissionConfig,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    config.validate()?;
    admission.validate()?;
    let counters = Arc::new(Counters::default());
    let (cmd_tx, cmd_rx) = mpsc::channel(config.command_queue_max);
    let (event_tx, event_rx) = mpsc::channel(config.event_queue_max);
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let (difficulty_tx, difficulty_rx) = watch::channel(admission.difficulty_bits);
    let handle = NetworkHandle {
        local_peer_id: config.keypair.public().to_peer_id(),
        commands: cmd_tx,
        counters: counters.clone(),
        gossip_bytes_max: config.gossip_bytes_max,
        sync_request_bytes_max: config.sync_request_bytes_max,
        sync_response_bytes_max: config.sync_response_bytes_max,
        request_timeout: Duration::from_millis(config.sync_request_timeout_ms),
        pacer: Arc::new(std::sync::Mutex::new(pacer::RequestPacer::new(
            config.request_pacing,
        ))),
        pacer_epoch: tokio::time::Instant::now(),
        difficulty: Arc::new(difficulty_tx),
        stopped: stopped_rx,
        gossip_registry: Arc::default(),
    };
    let mut gossip_registry = prometheus_client::registry::Registry::with_prefix("cairn_gossipsub");
    let worker = worker::Worker::start(
        config,
        admission,
        difficulty_rx,
        cmd_rx,
        event_tx,
        counters,
        stopped_tx,
        &mut gossip_registry,
    )
    .await?;
    let mut handle = handle;
    handle.gossip_registry = Arc::new(gossip_registry);
    tokio::spawn(worker.run());
    Ok((handle, event_rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NetworkConfig {
        NetworkConfig {
            keypair: libp2p::identity::Keypair::generate_ed25519(),
            listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            bootstrap: vec![],
            namespace: "0123abcd".into(),
            gossip_bytes_max: 1024,
            sync_request_bytes_max: 1024,
            sync_response_bytes_max: 4096,
            sync_request_timeout_ms: 1000,
            event_queue_max: 16,
            command_queue_max: 16,
            redial_interval_ms: 100,
            connections_max: 8,
            discovery: DiscoveryConfig::disabled(),
            nat: super::NatConfig::disabled(),
            request_pacing: Default::default(),
        }
    }

    #[test]
    fn valid_config_passes() {
        config().validate().unwrap();
        let mut c = config();
        let peer = PeerId::random();
        c.bootstrap = vec![
            format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}").parse().unwrap(),
            format!("/dns4/validator-1/tcp/1/p2p/{peer}")
                .parse()
                .unwrap(),
        ];
        c.validate().unwrap();
        let (p, base) = split_peer_addr(&c.bootstrap[0]).unwrap();
        assert_eq!(p, peer);
        assert_eq!(base.to_string(), "/ip4/127.0.0.1/tcp/1");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        type Mutator = fn(&mut NetworkConfig);
        let cases: Vec<(&str, Mutator)> = vec![
            ("listen", |c| {
                c.listen = "/ip4/127.0.0.1/udp/1".parse().unwrap()
            }),
            ("listen", |c| {
                c.listen = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", PeerId::random())
                    .parse()
                    .unwrap()
            }),
            ("bootstrap", |c| {
                c.bootstrap = vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()]
            }),
            ("bootstrap", |c| {
                c.bootstrap = vec![
                    format!("/ip4/127.0.0.1/p2p/{}", PeerId::random())
                        .parse()
                        .unwrap(),
                ]
            }),
            ("listen", |c| {
                c.listen = "/dns4/localhost/tcp/1".parse().unwrap()
            }),
            ("bootstrap", |c| {
                c.bootstrap = vec![
                    format!("/dnsaddr/example.org/tcp/1/p2p/{}", PeerId::random())
                        .parse()
                        .unwrap(),
                ]
            }),
            ("namespace", |c| c.namespace = String::new()),
            ("namespace", |c| c.namespace = "a/b".into()),
            ("namespace", |c| {
                c.namespace = "x".repeat(NAMESPACE_LEN_MAX + 1)
            }),
            ("gossip_bytes_max", |c| c.gossip_bytes_max = 0),
            ("sync_request_bytes_max", |c| c.sync_request_bytes_max = 0),
            ("sync_response_bytes_max", |c| {
                c.sync_response_bytes_max = u32::MAX as usize + 1
            }),
            ("sync_request_timeout_ms", |c| c.sync_request_timeout_ms = 0),
            ("redial_interval_ms", |c| c.redial_interval_ms = 0),
            ("event_queue_max", |c| c.event_queue_max = 0),
            ("command_queue_max", |c| c.command_queue_max = 0),
            ("connections_max", |c| c.connections_max = 0),
            ("discovery.peers_max", |c| c.discovery.peers_max = 0),
            ("discovery.interval_ms", |c| c.discovery.interval_ms = 0),
            ("discovery.peers_target", |c| {
                c.discovery.peers_max = 4;
                c.discovery.peers_target = 5
            }),
        ];
        for (field, mutate) in cases {
            let mut c = config();
            mutate(&mut c);
            match c.validate() {
                Err(NetworkError::InvalidConfig { reason }) => {
                    assert!(
                        reason.starts_with(field),
                        "{field}: unexpected reason {reason}"
                    )
                }
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn names() {
        let c = config();
        assert_eq!(c.topic_name(Topic::Transactions), "/cairn/0123abcd/tx/1");
        assert_eq!(
            c.topic_name(Topic::Consensus),
            "/cairn/0123abcd/consensus/2"
        );
        assert_eq!(c.topic_name(Topic::Blocks), "/cairn/0123abcd/block/4");
        assert_eq!(c.sync_protocol(), "/cairn/0123abcd/sync/6");
    }

    #[test]
    fn admission_limits_must_be_at_least_one() {
        AdmissionConfig::disabled().validate().unwrap();
        type Mutator = fn(&mut AdmissionConfig);
        let cases: Vec<(&str, Mutator)> = vec![
            ("admission.connections_per_peer_max", |a| {
                a.connections_per_peer_max = 0
            }),
            ("admission.connections_per_ip_max", |a| {
                a.connections_per_ip_max = 0
            }),
            ("admission.banned_identities_per_ip_max", |a| {
                a.banned_identities_per_ip_max = 0
            }),
        ];
        for (field, mutate) in cases {
            let mut a = AdmissionConfig::disabled();
            mutate(&mut a);
            match a.validate() {
                Err(NetworkError::InvalidConfig { reason }) => {
                    assert!(reason.starts_with(field), "{field}: {reason}")
                }
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_classes_are_disjoint_and_total() {
        let peer = PeerId::random();
        let all = [
            NetworkError::Timeout { peer },
            NetworkError::PeerUnreachable {
                peer,
                reason: String::new(),
            },
            NetworkError::NoResponse { peer },
            NetworkError::QueueFull { queue: "command" },
            NetworkError::Oversize { len: 2, max: 1 },
            NetworkError::ProtocolViolation {
                peer,
                reason: String::new(),
            },
            NetworkError::Transport {
                reason: String::new(),
            },
            NetworkError::InvalidConfig {
                reason: String::new(),
            },
            NetworkError::Shutdown,
        ];
        for e in &all {
            let classes = [e.is_transient(), e.is_peer_fault(), e.is_fatal()];
            assert_eq!(classes.iter().filter(|c| **c).count(), 1, "{e:?}");
        }
    }

    #[tokio::test]
    async fn spawn_listens_and_shuts_down() {
        let (net, mut events) = spawn(config()).await.unwrap();
        let addrs = net.listen_addrs().await;
        assert!(!addrs.is_empty());
        assert!(net.peers().await.is_empty());
        // No peers: publishing is not an error.
        net.publish(Topic::Blocks, b"x".to_vec()).await.unwrap();
        assert!(matches!(
            net.publish(Topic::Blocks, vec![0; 1025]).await,
            Err(NetworkError::Oversize {
                len: 1025,
                max: 1024
            })
        ));
        assert!(matches!(
            net.request(PeerId::random(), b"x".to_vec(), 1).await,
            Err(NetworkError::PeerUnreachable { .. })
        ));
        net.shutdown().await;
        assert!(
            events.recv().await.is_none(),
            "event queue closes on shutdown"
        );
        assert!(matches!(
            net.publish(Topic::Blocks, b"y".to_vec()).await,
            Err(NetworkError::Shutdown)
        ));
        assert!(net.peers().await.is_empty());
        net.shutdown().await; // idempotent
    }

    /// Waits (bounded) until `net`'s admission state satisfies `done`.
    async fn wait_info(
        net: &NetworkHandle,
        done: impl Fn(&AdmissionInfo) -> bool,
    ) -> AdmissionInfo {
        let start = std::time::Instant::now();
        loop {
            let info = net.admission_info().await.expect("running");
            if done(&info) {
                return info;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{info:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_raised_difficulty_is_solved_once_and_stored_and_out_of_range_values_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let pow_file = dir.path().join(crate::admission::POW_FILE);
        let c = config();
        let local = c.keypair.public().to_peer_id();
        let genesis = [3u8; 32];
        let adm = AdmissionConfig {
            genesis_hash: genesis,
            pow_file: Some(pow_file.clone()),
            ..AdmissionConfig::disabled()
        };
        let (net, _events) = spawn_with_admission(c, adm).await.unwrap();
        assert_eq!(
            net.admission_info().await,
            Some(AdmissionInfo {
                difficulty_bits: 0,
                own_proof_bits: None,
                solving_bits: None,
                exempt: false,
            })
        );
        // This node's chain now requires 6 bits: of peers, and of this node's own proof.
        net.set_admission_difficulty(6);
        let info = wait_info(&net, |i| i.own_proof_bits.is_some()).await;
        assert_eq!(info.difficulty_bits, 6);
        assert!(info.own_proof_bits.unwrap() >= 6, "{info:?}");
        assert_eq!(net.stats().admission_proofs_solved, 1);
        let stored = crate::admission::load(&pow_file, &genesis, &local, 6).expect("stored");
        assert!(crate::admission::verify(&genesis, &local, stored, 6));
        // Lower: the proof suffices, nothing is solved. Above the maximum: ignored.
        net.set_admission_difficulty(5);
        net.set_admission_difficulty(crate::admission::DIFFICULTY_BITS_MAX + 1);
        let info = wait_info(&net, |i| i.difficulty_bits == 5).await;
        assert_eq!(info.solving_bits, None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(net.admission_info().await.unwrap().difficulty_bits, 5);
        assert_eq!(net.stats().admission_proofs_solved, 1);
        net.shutdown().await;
        // After shutdown: a no-op.
        net.set_admission_difficulty(7);
        assert_eq!(net.admission_info().await, None);
    }

    #[tokio::test]
    async fn an_exempt_node_never_solves() {
        let c = config();
        let local = c.keypair.public().to_peer_id();
        let adm = AdmissionConfig {
            exempt: [local].into(),
            ..AdmissionConfig::disabled()
        };
        let (net, _events) = spawn_with_admission(c, adm).await.unwrap();
        net.set_admission_difficulty(8);
        let info = wait_info(&net, |i| i.difficulty_bits == 8).await;
        assert_eq!(info.solving_bits, None);
        assert_eq!(info.own_proof_bits, None);
        assert_eq!(net.stats().admission_proofs_solved, 0);
        net.shutdown().await;
    }

    /// A validator removed from the set (`exempt` with a set without it) proves from then
    /// on: it solves for the difficulty in force (it had no proof); a static exemption stays.
    #[tokio::test]
    async fn a_node_that_leaves_the_validator_set_solves_at_the_current_difficulty() {
        let c = config();
        let local = c.keypair.public().to_peer_id();
        let other = PeerId::random();
        let adm = AdmissionConfig {
            genesis_hash: [5; 32],
            difficulty_bits: 6,
            validators: [local, other].into(),
            ..AdmissionConfig::disabled()
        };
        let (net, _events) = spawn_with_admission(c, adm).await.unwrap();
        let info = net.admission_info().await.unwrap();
        assert!(info.exempt, "{info:?}");
        // The same set again, or a set that keeps it: nothing changes.
        net.exempt(vec![local, other]);
        net.exempt(vec![local]);
        let info = net.admission_info().await.unwrap();
        assert!(info.exempt && info.solving_bits.is_none(), "{info:?}");
        assert_eq!(net.stats().admission_proofs_solved, 0);
        // Removed: it solves for the 6 bits its chain requires.
        net.exempt(vec![other]);
        let info = wait_info(&net, |i| i.own_proof_bits.is_some()).await;
        assert!(!info.exempt, "{info:?}");
        assert!(info.own_proof_bits.unwrap() >= 6, "{info:?}");
        assert_eq!(net.stats().admission_proofs_solved, 1);
        // No connected peer lost an exemption.
        assert_eq!(net.stats().admission_exemptions_withdrawn, 0);
        net.shutdown().await;

        // Statically exempt: no validator set takes that away.
        let c = config();
        let local = c.keypair.public().to_peer_id();
        let adm = AdmissionConfig {
            genesis_hash: [5; 32],
            difficulty_bits: 6,
            exempt: [local].into(),
            ..AdmissionConfig::disabled()
        };
        let (net, _events) = spawn_with_admission(c, adm).await.unwrap();
        net.exempt(vec![]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let info = net.admission_info().await.unwrap();
        assert!(info.exempt && info.solving_bits.is_none(), "{info:?}");
        assert_eq!(info.own_proof_bits, None);
        assert_eq!(net.stats().admission_proofs_solved, 0);
        net.shutdown().await;
    }

    #[test]
    fn static_exemptions_and_validators_are_bounded_together() {
        let mut a = AdmissionConfig::disabled();
        a.exempt = (0..ADMISSION_EXEMPT_MAX)
            .map(|_| PeerId::random())
            .collect();
        a.validators = a.exempt.iter().take(10).copied().collect();
        a.validate().unwrap();
        a.validators.insert(PeerId::random());
        assert!(matches!(
            a.validate(),
            Err(NetworkError::InvalidConfig { reason }) if reason.starts_with("admission.exempt")
        ));
    }

    /// A runtime waits for its blocking tasks when dropped; a 32-bit solve left running would
    /// hold it for minutes. Shutdown cancels it.
    #[test]
    fn shutdown_cancels_a_running_solve() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let solving = rt.block_on(async {
                let adm = AdmissionConfig {
                    genesis_hash: [4; 32],
                    ..AdmissionConfig::disabled()
                };
                let (net, _events) = spawn_with_admission(config(), adm).await.unwrap();
                net.set_admission_difficulty(crate::admission::DIFFICULTY_BITS_MAX);
                let info = wait_info(&net, |i| {
                    i.solving_bits.is_some() || i.own_proof_bits.is_some()
                })
                .await;
                net.shutdown().await;
                info.solving_bits
            });
            drop(rt);
            let _ = done_tx.send(solving);
        });
        let solving = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the runtime waited for the solve: it was not cancelled");
        assert_eq!(solving, Some(crate::admission::DIFFICULTY_BITS_MAX));
    }

    #[tokio::test]
    async fn listen_failure_is_a_transport_error() {
        let (a, _ev) = spawn(config()).await.unwrap();
        let mut c = config();
        c.listen = a.listen_addrs().await[0].clone();
        assert!(matches!(
            spawn(c).await,
            Err(NetworkError::Transport { .. })
        ));
        a.shutdown().await;
    }
}
