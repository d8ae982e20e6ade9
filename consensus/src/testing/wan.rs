//! Finality latency over a wide-area network (feature `testing`; see
//! `docs/scaling.md`).
//!
//! [`run_wan`] drives `n` honest instances of the real [`Consensus`] machine
//! on the simulator's virtual-time network (`net::Net`) with a wide-area link
//! model: validator `i` sits in region [`REGIONS`]`[i mod 7]` (round-robin)
//! and the one-way base latency of a link is half the published round-trip
//! time between the two regions ([`one_way_ms`], [`RTT_MS`]), plus a uniform
//! jitter and, optionally, random loss. There are no Byzantine validators, no
//! partitions, no crashes and no outsider: this is the good case, the one
//! Simplex's latency claim is about.
//!
//! For every block and every validator it measures the time from the
//! leader's proposal broadcast (the leader's Notarize vote for its block, R2)
//! to that validator's `Finalized` output covering the block, and next to it
//! the exact good-case bound of the same (leader, validator) pair on the same
//! link matrix ([`GoodCaseBound`]).
//!
//! Not modelled: bandwidth and message sizes (a 128-signature certificate
//! travels as fast as a vote), CPU time (signature checks, execution) other
//! than a fixed validation delay, and transport retransmissions (a lost copy
//! is gone; the protocol's own re-broadcasts on timeouts recover).
//!
//! A run is a pure function of its [`WanConfig`]: the jitter and loss draws
//! come from a [`SplitMix64`] seeded by [`WanConfig::seed`], and the same
//! config gives the same [`WanReport::event_hash`].

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use ed25519_dalek::SigningKey;

use super::net::{Host, LinkModel, Net, Slot, agree_height, mock_genesis, mock_payload};
use super::{SplitMix64, TEST_NAMESPACE, keys, validator_set};
use crate::{
    Anchor, CertificateKind, Config, Consensus, DEFAULT_LEADER_TIMEOUT_MS,
    DEFAULT_NOTARIZATION_TIMEOUT_MS, DEFAULT_NULLIFY_RETRY_MS, DEFAULT_VIEWS_AHEAD_MAX, Digest,
    Input, Message, MessageError, Output, Proposal, ValidatorSet, View, VoteKind,
};

/// The regions validators are placed in, round-robin (validator `i` in
/// region `i mod 7`): Azure region names with their metro area. The order
/// alternates continents so that small sets are spread out too (4
/// validators: Virginia, Netherlands, Tokyo, Washington state).
pub const REGIONS: [&str; 7] = [
    "East US (Virginia)",
    "West Europe (Netherlands)",
    "Japan East (Tokyo)",
    "West US 2 (Washington)",
    "Central India (Pune)",
    "Australia East (New South Wales)",
    "Southeast Asia (Singapore)",
];

/// Where [`RTT_MS`] comes from.
pub const RTT_SOURCE: &str = "Microsoft, \"Azure network round-trip latency statistics\", \
     https://learn.microsoft.com/en-us/azure/networking/azure-network-latency \
     (monthly P50 round-trip times; dataset of 2026-07-30, 30-day window)";

/// Published median (P50) round-trip time in ms from region `[from]` to
/// region `[to]` (indices into [`REGIONS`]; 0 on the diagonal): the Azure
/// dataset of 30 July 2026 ([`RTT_SOURCE`]), copied as published (rows are
/// the source region; the two directions of a pair differ by up to 3 ms).
/// The pairs span 53 ms (Pune–Singapore) to 265 ms (Netherlands–New South
/// Wales).
pub const RTT_MS: [[u64; 7]; 7] = [
    // EUS, WEU, JPE, WUS2, CIN, AUE, SEA
    [0, 83, 162, 71, 198, 201, 224],
    [85, 0, 233, 143, 140, 265, 169],
    [162, 234, 0, 100, 122, 103, 72],
    [73, 142, 101, 0, 210, 160, 162],
    [201, 139, 122, 211, 0, 145, 53],
    [202, 264, 104, 161, 144, 0, 95],
    [224, 169, 72, 162, 53, 95, 0],
];

/// Round-trip time (ms) assumed between two validators in the same region
/// (different availability zones). Not from the Azure dataset, which lists
/// only pairs of regions; cloud providers publish 0.3–2 ms between the
/// zones of one region (e.g. IBM Cloud's VPC latency dashboard).
pub const INTRA_REGION_RTT_MS: u64 = 2;

/// Default [`WanConfig::jitter_ms`]: every message copy gets a uniform extra
/// delay of `0..=10` ms (an assumption, not a measurement).
pub const DEFAULT_JITTER_MS: u64 = 10;
/// Default [`WanConfig::validate_ms`]: the mock application answers a
/// `Validate` (and a `BuildProposal`) after 1 ms.
pub const DEFAULT_VALIDATE_MS: u64 = 1;
/// Default [`WanConfig::heights`].
pub const DEFAULT_WAN_HEIGHTS: u64 = 30;

/// The region of each of `n` validators: `i mod 7` ([`REGIONS`]).
pub fn placement(n: usize) -> Vec<usize> {
    (0..n).map(|i| i % REGIONS.len()).collect()
}

/// One-way base latency `[from][to]` in ms between validators placed in
/// `regions` (indices into [`REGIONS`]): half the mean of the two published
/// directions of the regions' round trip, rounded to the nearest ms
/// (`(RTT[a][b] + RTT[b][a] + 2) / 4`); [`INTRA_REGION_RTT_MS`]` / 2` within
/// a region; 0 from a validator to itself.
pub fn one_way_ms(regions: &[usize]) -> Vec<Vec<u64>> {
    regions
        .iter()
        .enumerate()
        .map(|(i, a)| {
            regions
                .iter()
                .enumerate()
                .map(|(j, b)| {
                    if i == j {
                        0
                    } else if a == b {
                        INTRA_REGION_RTT_MS / 2
                    } else {
                        (RTT_MS[*a][*b] + RTT_MS[*b][*a] + 2) / 4
                    }
                })
                .collect()
        })
        .collect()
}

/// The median one-way base latency (ms) over ordered pairs of distinct
/// validators of a `[from][to]` matrix: the "message delay" `δ` that
/// latencies are expressed in. The mean of the two middle values for an
/// even count; 0 for fewer than two validators.
pub fn median_one_way_ms(one_way: &[Vec<u64>]) -> f64 {
    let mut all: Vec<u64> = Vec::new();
    for (i, row) in one_way.iter().enumerate() {
        for (j, d) in row.iter().enumerate() {
            if i != j {
                all.push(*d);
            }
        }
    }
    if all.is_empty() {
        return 0.0;
    }
    all.sort_unstable();
    let m = all.len() / 2;
    if all.len() % 2 == 1 {
        all[m] as f64
    } else {
        (all[m - 1] + all[m]) as f64 / 2.0
    }
}

/// The exact good-case finality time of Cairn's Simplex on a fixed link
/// matrix, with no jitter, no loss and equal voting power: for a leader
/// that broadcasts its proposal at time 0, when each validator can at the
/// earliest output `Finalized` for that block.
///
/// The rules it follows (crate docs, R2–R10):
///
/// * `P_j = d(ℓ, j)`: the proposal (the leader's Notarize vote) reaches `j`.
/// * `V_j = P_j + validate_ms`: `j` sends its Notarize vote once its app has
///   validated the block; `V_ℓ = 0` (the proposal is the leader's vote).
/// * `N_j`: `j` holds a notarization, either formed from the `quorum`-th
///   earliest Notarize vote to arrive (`V_k + d(k, j)`, its own at `V_j`),
///   or received as a certificate: every node that forms or first learns
///   one forwards it (R5, R10), so `N_j = min(own quorum, min_k N_k + D(k,
///   j))` with `D` the shortest relay path.
/// * `j` sends its Finalize vote at `N_j` (R6), and `Z_j` (finalization) is
///   formed from the `quorum`-th earliest of `N_k + d(k, j)`, or relayed:
///   `Z_j = min(own quorum, min_k Z_k + D(k, j))`.
///
/// So in a uniform network with one-way delay `δ`, `Z_j = 3δ +
/// validate_ms` for every `j`: Simplex's three message delays (proposal,
/// Notarize vote, Finalize vote). On a real matrix each step waits for the
/// `quorum`-th fastest path, not a median one.
///
/// Assumes each validator is in the block's view when the proposal reaches
/// it (no earlier view still running). The simulator also measures the
/// pipelined case, where a node may get view `v + 1`'s proposal before it
/// has notarized `v`, so it cannot be faster than this bound; it is a lower
/// bound for a block's own finalization, not for one implied by a
/// descendant's (counted apart in [`WanSample::implicit`]).
#[derive(Clone, Debug)]
pub struct GoodCaseBound {
    one_way: Vec<Vec<u64>>,
    relay: Vec<Vec<u64>>,
    quorum: usize,
    validate_ms: u64,
}

impl GoodCaseBound {
    /// The bound for the `[from][to]` one-way latency matrix `one_way` (ms,
    /// square, 0 on the diagonal), a quorum of `quorum` validators (`1..=n`)
    /// and a validation delay of `validate_ms`. Computes the shortest relay
    /// paths once (Floyd–Warshall, `O(n³)`).
    ///
    /// # Panics
    /// If the matrix is not square or `quorum` is not in `1..=n`.
    pub fn new(one_way: Vec<Vec<u64>>, quorum: usize, validate_ms: u64) -> GoodCaseBound {
        let n = one_way.len();
        assert!(one_way.iter().all(|r| r.len() == n), "square matrix");
        assert!((1..=n).contains(&quorum), "quorum in 1..=n");
        let mut relay = one_way.clone();
        for (i, row) in relay.iter_mut().enumerate() {
            row[i] = 0;
        }
        for k in 0..n {
            let via_k = relay[k].clone();
            for row in relay.iter_mut() {
                let to_k = row[k];
                for (cell, from_k) in row.iter_mut().zip(&via_k) {
                    *cell = (*cell).min(to_k.saturating_add(*from_k));
                }
            }
        }
        GoodCaseBound {
            one_way,
            relay,
            quorum,
            validate_ms,
        }
    }

    /// Number of validators.
    pub fn validators(&self) -> usize {
        self.one_way.len()
    }

    /// For a proposal `leader` broadcasts at time 0: when each validator
    /// (by index) finalizes it at the earliest, in ms.
    ///
    /// # Panics
    /// If `leader` is not a validator index.
    pub fn finalized_ms(&self, leader: usize) -> Vec<u64> {
        let n = self.validators();
        assert!(leader < n, "leader is a validator");
        let vote_ms: Vec<u64> = (0..n)
            .map(|j| {
                if j == leader {
                    0
                } else {
                    self.one_way[leader][j] + self.validate_ms
                }
            })
            .collect();
        let notarized = self.quorum_then_relay(&vote_ms);
        self.quorum_then_relay(&notarized)
    }

    /// Each validator's time to hold a certificate when validator `k` sends
    /// its vote at `sent[k]`: the `quorum`-th earliest arrival (its own vote
    /// at once), improved by certificates relayed along shortest paths.
    fn quorum_then_relay(&self, sent: &[u64]) -> Vec<u64> {
        let n = self.validators();
        let own: Vec<u64> = (0..n)
            .map(|j| {
                let mut arrivals: Vec<u64> = (0..n)
                    .map(|k| {
                        if k == j {
                            sent[k]
                        } else {
                            sent[k] + self.one_way[k][j]
                        }
                    })
                    .collect();
                arrivals.sort_unstable();
                arrivals[self.quorum - 1]
            })
            .collect();
        (0..n)
            .map(|j| (0..n).map(|k| own[k] + self.relay[k][j]).min().unwrap_or(0))
            .collect()
    }
}

/// What one wide-area run is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WanConfig {
    /// Seeds the jitter and loss draws.
    pub seed: u64,
    /// Number of validators `n`, each with voting power 1 (quorum
    /// `⌊2n/3⌋ + 1`).
    pub validators: usize,
    /// The run ends once every validator has finalized this many heights;
    /// samples are taken for heights `1..=heights`.
    pub heights: u64,
    /// Uniform extra delay `0..=jitter_ms` (ms) added to every message copy.
    pub jitter_ms: u64,
    /// Per-copy loss probability in ‰ (`0..=1000`).
    pub loss_permille: u64,
    /// Delay (ms) of the mock application's answers to `BuildProposal` and
    /// `Validate`.
    pub validate_ms: u64,
    /// Least time (ms) between a block's proposal and its child's, as the
    /// node's `block_interval_ms`; 0 proposes as soon as the parent is
    /// notarized (back to back, the node's behaviour under load). Like the
    /// node's, it should stay below the leader timeout (1 s), or replicas
    /// nullify views the leader is still waiting in.
    pub block_interval_ms: u64,
    /// One-way base latency `[from][to]` (ms, `n × n`); `None` places the
    /// validators round-robin in [`REGIONS`] ([`placement`],
    /// [`one_way_ms`]).
    pub one_way_ms: Option<Vec<Vec<u64>>>,
    /// Print every delivery, timer and finalization to stderr.
    pub trace: bool,
}

impl WanConfig {
    /// The defaults: [`DEFAULT_WAN_HEIGHTS`] heights, [`DEFAULT_JITTER_MS`]
    /// jitter, no loss, [`DEFAULT_VALIDATE_MS`], back-to-back blocks, the
    /// region matrix.
    pub fn new(seed: u64, validators: usize) -> WanConfig {
        WanConfig {
            seed,
            validators,
            heights: DEFAULT_WAN_HEIGHTS,
            jitter_ms: DEFAULT_JITTER_MS,
            loss_permille: 0,
            validate_ms: DEFAULT_VALIDATE_MS,
            block_interval_ms: 0,
            one_way_ms: None,
            trace: false,
        }
    }

    /// Virtual-time limit (ms) of a run: 60 s plus 10 s per height.
    pub fn time_limit_ms(&self) -> u64 {
        60_000 + self.heights.saturating_mul(10_000)
    }
}

/// One measurement: validator `validator` finalized the block of `view`
/// (at `height`), proposed by `leader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WanSample {
    /// The block's view.
    pub view: View,
    /// The block's height.
    pub height: u64,
    /// The block's proposer.
    pub leader: usize,
    /// The validator that finalized it.
    pub validator: usize,
    /// From the leader's proposal broadcast to the validator's `Finalized`
    /// output covering the block (ms of virtual time).
    pub latency_ms: u64,
    /// [`GoodCaseBound::finalized_ms`] for this (leader, validator) pair.
    pub bound_ms: u64,
    /// Finalized through a descendant's finalization, not its own.
    pub implicit: bool,
}

/// Nearest-rank percentiles of a set of durations (ms): the value at rank
/// `⌈p · len / 100⌉` of the sorted values; all 0 for an empty set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest value.
    pub max: u64,
}

impl Percentiles {
    /// Percentiles of `values` (any order).
    pub fn of(values: impl IntoIterator<Item = u64>) -> Percentiles {
        let mut v: Vec<u64> = values.into_iter().collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_unstable();
        let rank = |p: usize| v[(p * v.len()).div_ceil(100).max(1) - 1];
        Percentiles {
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: v[v.len() - 1],
        }
    }
}

/// The outcome of one wide-area run.
#[derive(Clone, Debug)]
pub struct WanReport {
    /// What was run.
    pub config: WanConfig,
    /// Region of every validator (indices into [`REGIONS`]); empty for a
    /// custom matrix.
    pub placement: Vec<usize>,
    /// Validators (each of power 1) a certificate needs.
    pub quorum: usize,
    /// [`median_one_way_ms`] of the matrix: the message delay `δ`.
    pub median_one_way_ms: f64,
    /// One sample per (height in `1..=heights`, validator).
    pub samples: Vec<WanSample>,
    /// Percentiles of [`WanSample::latency_ms`].
    pub latency: Percentiles,
    /// Percentiles of [`WanSample::bound_ms`] over the same samples.
    pub bound: Percentiles,
    /// Samples finalized through a descendant.
    pub implicit: u64,
    /// Samples below their bound (a bug in the bound or the protocol if
    /// non-zero in a run without implicit finalizations).
    pub below_bound: u64,
    /// Lowest height finalized by a validator at the end.
    pub min_height: u64,
    /// Highest view a validator entered.
    pub max_view: View,
    /// Views up to the `heights`-th block's that finalized no block
    /// (nullified, or notarized and later abandoned).
    pub skipped_views: u64,
    /// Timer expiries fed to the machines.
    pub timeouts: u64,
    /// Virtual time at the end (ms).
    pub time_ms: u64,
    /// Events processed.
    pub steps: u64,
    /// Message copies delivered.
    pub delivered: u64,
    /// Bytes of the message copies delivered (encoded messages only: no
    /// transport framing, headers or gossip overhead).
    pub delivered_bytes: u64,
    /// Message copies lost.
    pub lost: u64,
    /// blake3 over every processed event and the final chains.
    pub event_hash: [u8; 32],
    /// What went wrong, if anything: a rejected honest message, two
    /// different blocks finalized at one height, liveness, a panic.
    pub violation: Option<String>,
}

impl WanReport {
    /// Finished with every height and no violation.
    pub fn ok(&self) -> bool {
        self.violation.is_none() && self.min_height >= self.config.heights
    }

    /// Bytes received per validator per view entered (`delivered_bytes / n
    /// / max_view`): what each validator takes in for one block.
    pub fn bytes_per_validator_view(&self) -> u64 {
        self.delivered_bytes / (self.config.validators as u64 * self.max_view.max(1))
    }

    /// A latency in message delays (`ms / δ`).
    pub fn in_delays(&self, ms: u64) -> f64 {
        if self.median_one_way_ms > 0.0 {
            ms as f64 / self.median_one_way_ms
        } else {
            0.0
        }
    }
}

/// Runs one wide-area scenario to `heights` finalized heights at every
/// validator (or to its first violation, or to
/// [`WanConfig::time_limit_ms`]). Never panics: a panic inside becomes the
/// report's violation.
///
/// # Panics
/// If `validators` is 0 or a custom matrix is not `n × n`.
pub fn run_wan(cfg: &WanConfig) -> WanReport {
    let mut wan = Wan::new(cfg.clone());
    let outcome = catch_unwind(AssertUnwindSafe(|| wan.run_loop()));
    if let Err(panic) = outcome {
        let msg = super::net::panic_message(panic);
        wan.violate(format!("panic: {msg}"));
    }
    wan.report()
}

struct Node {
    slot: Slot<Consensus>,
    anchor: Anchor,
    /// `chain[h - 1]` = payload finalized at height `h`.
    chain: Vec<Digest>,
    max_view: View,
}

struct Wan {
    cfg: WanConfig,
    set: ValidatorSet,
    configs: Vec<Config>,
    placement: Vec<usize>,
    bound: GoodCaseBound,
    /// Per leader, [`GoodCaseBound::finalized_ms`] (computed when needed).
    bounds: Vec<Option<Vec<u64>>>,
    median_one_way_ms: f64,
    nodes: Vec<Node>,
    net: Net<Input>,
    genesis: Anchor,
    blocks: BTreeMap<Digest, Proposal>,
    /// When each block was built (its timestamp, for `block_interval_ms`;
    /// the first block does not wait).
    built_at: BTreeMap<Digest, u64>,
    /// When each view's leader broadcast its proposal.
    proposed_at: BTreeMap<View, u64>,
    canonical: Vec<Digest>,
    /// View of the block finalized at each height (from the first node).
    views_by_height: Vec<View>,
    samples: Vec<WanSample>,
    salt: u64,
    delivered: u64,
    delivered_bytes: u64,
    timeouts: u64,
    violation: Option<String>,
}

impl Wan {
    fn new(cfg: WanConfig) -> Wan {
        let n = cfg.validators;
        assert!(n >= 1, "at least one validator");
        let (placement, one_way) = match &cfg.one_way_ms {
            Some(m) => {
                assert!(
                    m.len() == n && m.iter().all(|r| r.len() == n),
                    "custom matrix must be n x n"
                );
                (Vec::new(), m.clone())
            }
            None => {
                let p = placement(n);
                let m = one_way_ms(&p);
                (p, m)
            }
        };
        let keys: Vec<SigningKey> = keys(n);
        let set = validator_set(&keys, &vec![1; n]);
        let quorum = set.quorum_power() as usize;
        let configs = keys
            .iter()
            .map(|k| Config {
                namespace: TEST_NAMESPACE,
                validators: set.clone(),
                signer: Some(k.clone()),
                leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
                notarization_timeout_ms: DEFAULT_NOTARIZATION_TIMEOUT_MS,
                nullify_retry_ms: DEFAULT_NULLIFY_RETRY_MS,
                views_ahead_max: DEFAULT_VIEWS_AHEAD_MAX,
            })
            .collect();
        let genesis = mock_genesis(b"cairn wan genesis");
        let link = LinkModel {
            loss_permille: cfg.loss_permille.min(1000),
            dup_permille: 0,
            reorder_permille: 0,
            latency_ms: one_way.clone(),
            jitter_ms: cfg.jitter_ms,
            app_delay_ms: cfg.validate_ms,
        };
        let net = Net::new(
            SplitMix64::new(cfg.seed ^ 0x3A17_0C0F_FEE5_1DE5),
            link,
            Vec::new(),
            cfg.trace,
        );
        let median = median_one_way_ms(&one_way);
        let bound = GoodCaseBound::new(one_way, quorum, cfg.validate_ms);
        let nodes = (0..n)
            .map(|_| Node {
                slot: Slot::new(),
                anchor: genesis,
                chain: Vec::new(),
                max_view: 0,
            })
            .collect();
        Wan {
            cfg,
            set,
            configs,
            placement,
            bound,
            bounds: vec![None; n],
            median_one_way_ms: median,
            nodes,
            net,
            genesis,
            blocks: BTreeMap::new(),
            built_at: BTreeMap::new(),
            proposed_at: BTreeMap::new(),
            canonical: Vec::new(),
            views_by_height: Vec::new(),
            samples: Vec::new(),
            salt: 0,
            delivered: 0,
            delivered_bytes: 0,
            timeouts: 0,
            violation: None,
        }
    }

    fn violate(&mut self, detail: String) {
        if self.violation.is_none() {
            self.net.trace(|| format!("VIOLATION: {detail}"));
            self.violation = Some(detail);
        }
    }

    fn done(&self) -> bool {
        self.nodes
            .iter()
            .all(|x| x.chain.len() as u64 >= self.cfg.heights)
    }

    fn feed(&mut self, i: usize, input: Input, from: Option<usize>) {
        let machine = self.nodes[i].slot.machine.as_mut().expect("running");
        match machine.handle(input) {
            Ok(out) => {
                for o in out {
                    self.perform(i, o);
                }
            }
            Err(e) => self.on_error(i, from, e),
        }
    }

    fn on_error(&mut self, i: usize, from: Option<usize>, e: MessageError) {
        self.net
            .trace(|| format!("node {i} rejects (from {from:?}): {e}"));
        // Every sender is honest here: a peer fault is a bug; stale or
        // far-ahead messages are not.
        if e.is_peer_fault() || matches!(e, MessageError::InvalidInput { .. }) {
            self.violate(format!("node {i} rejected a message from {from:?}: {e}"));
        }
    }

    fn perform(&mut self, i: usize, output: Output) {
        match output {
            Output::Persist(_) => {} // no crashes: nothing to replay
            Output::Broadcast(message) => {
                if let Message::Vote(v) = &message {
                    if let VoteKind::Notarize(p) = &v.kind {
                        if v.signer as usize == i && self.set.leader(p.view) == v.signer {
                            let now = self.net.now;
                            self.proposed_at.entry(p.view).or_insert(now);
                        }
                    }
                }
                let n = self.nodes.len();
                self.net.broadcast_bytes(i, n, message.encode().into());
            }
            Output::SetTimer { deadline_ms } => {
                let generation = self.nodes[i].slot.next_timer();
                self.net.set_timer(i, generation, deadline_ms);
            }
            Output::BuildProposal {
                view,
                parent_view,
                parent,
            } => {
                self.salt += 1;
                let height = super::sim::height_of(&parent) + 1;
                let payload = mock_payload(
                    height,
                    &[
                        &view.to_le_bytes(),
                        &parent_view.to_le_bytes(),
                        &parent.0,
                        &self.salt.to_le_bytes(),
                    ],
                );
                let p = Proposal {
                    view,
                    parent_view,
                    parent,
                    payload,
                };
                self.blocks.insert(payload, p);
                let now = self.net.now;
                let earliest = self
                    .built_at
                    .get(&parent)
                    .map_or(0, |t| t + self.cfg.block_interval_ms);
                let at = (now + self.cfg.validate_ms).max(earliest);
                self.built_at.insert(payload, at);
                self.net
                    .trace(|| format!("node {i} builds v{view} on v{parent_view} (h{height})"));
                let incarnation = self.nodes[i].slot.incarnation;
                self.net.schedule(
                    at,
                    super::net::Ev::App {
                        node: i,
                        incarnation,
                        input: Input::Proposed {
                            view,
                            payload,
                            now_ms: at,
                        },
                    },
                );
            }
            Output::Validate(p) => {
                let valid = self.app_valid(&p);
                let incarnation = self.nodes[i].slot.incarnation;
                self.net
                    .schedule_app(i, incarnation, |now_ms| Input::Validated {
                        proposal: p,
                        valid,
                        now_ms,
                    });
            }
            Output::Notarized(_) | Output::Evidence(_) => {}
            Output::Finalized(cert) => {
                if let CertificateKind::Finalization(p) = cert.kind {
                    self.on_finalized(i, p);
                } else {
                    self.violate(format!("node {i}: Finalized without a finalization"));
                }
            }
            Output::ViewChanged { view } => {
                let x = &mut self.nodes[i];
                x.max_view = x.max_view.max(view);
            }
        }
    }

    /// The block is known, its parent is known, its height is the parent's
    /// plus one.
    fn app_valid(&self, p: &Proposal) -> bool {
        let parent_height =
            if p.parent_view == self.genesis.view && p.parent == self.genesis.payload {
                Some(0)
            } else {
                self.blocks
                    .get(&p.parent)
                    .filter(|q| q.view == p.parent_view)
                    .map(|q| super::sim::height_of(&q.payload))
            };
        self.blocks.get(&p.payload) == Some(p)
            && parent_height.is_some_and(|h| super::sim::height_of(&p.payload) == h + 1)
    }

    /// Walks the newly finalized blocks (down to the node's previous
    /// anchor), checks agreement per height and records a sample for each.
    fn on_finalized(&mut self, i: usize, p: Proposal) {
        let anchor = self.nodes[i].anchor;
        let mut new = vec![p];
        let mut cur = p;
        while cur.parent_view > anchor.view {
            match self.blocks.get(&cur.parent) {
                Some(q) if q.view == cur.parent_view => {
                    new.push(*q);
                    cur = *q;
                }
                _ => {
                    self.violate(format!(
                        "node {i}: unknown parent of finalized view {}",
                        cur.view
                    ));
                    return;
                }
            }
        }
        if cur.parent != anchor.payload {
            self.violate(format!(
                "node {i}: finalized view {} does not extend its last finalized block",
                p.view
            ));
            return;
        }
        let now = self.net.now;
        for b in new.iter().rev() {
            let h = self.nodes[i].chain.len() as u64 + 1;
            if let Err(d) = agree_height(&mut self.canonical, h, b.payload) {
                self.violate(format!(
                    "height {h}: node {i} finalized {}, another node {d}",
                    b.payload
                ));
                return;
            }
            if self.views_by_height.len() < h as usize {
                self.views_by_height.push(b.view);
            }
            self.nodes[i].chain.push(b.payload);
            if h <= self.cfg.heights {
                let leader = self.set.leader(b.view) as usize;
                let Some(proposed) = self.proposed_at.get(&b.view).copied() else {
                    self.violate(format!("view {}: finalized but never proposed", b.view));
                    return;
                };
                let bound_ms = self.bound_for(leader, i);
                self.samples.push(WanSample {
                    view: b.view,
                    height: h,
                    leader,
                    validator: i,
                    latency_ms: now - proposed,
                    bound_ms,
                    implicit: b.view != p.view,
                });
            }
        }
        self.nodes[i].anchor = Anchor {
            view: p.view,
            payload: p.payload,
        };
        let height = self.nodes[i].chain.len();
        self.net
            .trace(|| format!("node {i} finalized view {} -> height {height}", p.view));
    }

    fn bound_for(&mut self, leader: usize, i: usize) -> u64 {
        if self.bounds[leader].is_none() {
            self.bounds[leader] = Some(self.bound.finalized_ms(leader));
        }
        self.bounds[leader].as_ref().expect("just computed")[i]
    }

    fn report(&mut self) -> WanReport {
        let min_height = self
            .nodes
            .iter()
            .map(|x| x.chain.len() as u64)
            .min()
            .unwrap_or(0);
        let max_view = self.nodes.iter().map(|x| x.max_view).max().unwrap_or(0);
        let last_view = self
            .views_by_height
            .get(self.cfg.heights.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(0);
        let measured = self.cfg.heights.min(self.views_by_height.len() as u64);
        let mut hasher = self.net.hasher.clone();
        for x in &self.nodes {
            hasher.update(&(x.chain.len() as u64).to_le_bytes());
            if let Some(d) = x.chain.last() {
                hasher.update(&d.0);
            }
        }
        let samples = std::mem::take(&mut self.samples);
        WanReport {
            config: self.cfg.clone(),
            placement: self.placement.clone(),
            quorum: self.set.quorum_power() as usize,
            median_one_way_ms: self.median_one_way_ms,
            latency: Percentiles::of(samples.iter().map(|s| s.latency_ms)),
            bound: Percentiles::of(samples.iter().map(|s| s.bound_ms)),
            implicit: samples.iter().filter(|s| s.implicit).count() as u64,
            below_bound: samples.iter().filter(|s| s.latency_ms < s.bound_ms).count() as u64,
            samples,
            min_height,
            max_view,
            skipped_views: last_view.saturating_sub(measured),
            timeouts: self.timeouts,
            time_ms: self.net.now,
            steps: self.net.counters.steps,
            delivered: self.delivered,
            delivered_bytes: self.delivered_bytes,
            lost: self.net.counters.dropped_loss,
            event_hash: *hasher.finalize().as_bytes(),
            violation: self.violation.clone(),
        }
    }
}

impl Host for Wan {
    type App = Input;
    type Machine = Consensus;
    const TRACE_FAULTS: bool = false;

    fn net(&mut self) -> &mut Net<Input> {
        &mut self.net
    }

    fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn slot(&mut self, i: usize) -> &mut Slot<Consensus> {
        &mut self.nodes[i].slot
    }

    fn crash_plan(&self, _j: usize) -> (usize, bool) {
        unreachable!("the WAN scenario schedules no crashes")
    }

    fn finished(&self) -> bool {
        self.violation.is_some() || self.done()
    }

    fn ran_dry(&mut self) {
        self.violate("event queue ran dry".into());
    }

    fn restart(&mut self, i: usize) {
        let config = self.configs[i].clone();
        match Consensus::new(config, self.genesis, &[]) {
            Ok(mut machine) => {
                let out = machine.start(self.net.now);
                self.nodes[i].slot.start(machine, &mut self.net.counters);
                for o in out {
                    self.perform(i, o);
                }
            }
            Err(e) => self.violate(format!("node {i} cannot start: {e}")),
        }
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: Rc<[u8]>) {
        self.delivered += 1;
        self.delivered_bytes += bytes.len() as u64;
        match Message::decode(&bytes) {
            Ok(message) => {
                let input = Input::Message {
                    message,
                    now_ms: self.net.now,
                };
                self.feed(to, input, Some(from));
            }
            Err(e) => self.on_error(to, Some(from), e),
        }
    }

    fn timeout(&mut self, node: usize) {
        self.timeouts += 1;
        self.net.trace(|| format!("timer of {node}"));
        let input = Input::Timeout {
            now_ms: self.net.now,
        };
        self.feed(node, input, None);
    }

    fn answer(&mut self, node: usize, input: Input) {
        let bytes = match &input {
            Input::Proposed { view, payload, .. } => {
                let mut b = view.to_le_bytes().to_vec();
                b.extend_from_slice(&payload.0);
                b
            }
            Input::Validated { proposal, .. } => borsh::to_vec(proposal).expect("vec"),
            _ => Vec::new(),
        };
        self.net.hash_event(3, node as u64, 0, &bytes);
        self.feed(node, input, None);
    }

    fn inject_outsider(&mut self) {}

    fn outsider_gap(&self) -> u64 {
        1
    }

    fn on_gst(&mut self) {}

    fn after_step(&mut self) {
        if self.violation.is_none() && self.net.now > self.cfg.time_limit_ms() {
            let heights: Vec<usize> = self.nodes.iter().map(|x| x.chain.len()).collect();
            self.violate(format!(
                "liveness: {} heights not reached within {} ms (heights {heights:?})",
                self.cfg.heights,
                self.cfg.time_limit_ms()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_network_bound_is_three_message_delays() {
        for n in [1usize, 4, 7, 10] {
            let delta = 50;
            let one_way: Vec<Vec<u64>> = (0..n)
                .map(|i| (0..n).map(|j| if i == j { 0 } else { delta }).collect())
                .collect();
            let quorum = n * 2 / 3 + 1;
            let bound = GoodCaseBound::new(one_way, quorum, 1);
            for leader in 0..n {
                let z = bound.finalized_ms(leader);
                let want = if n == 1 { 0 } else { 3 * delta + 1 };
                assert!(z.iter().all(|t| *t == want), "n={n}: {z:?}");
            }
        }
    }

    #[test]
    fn bound_uses_certificate_relays() {
        // Node 3 is 500 ms from everyone except node 2 (10 ms): it gets its
        // notarization and finalization relayed by node 2, not from votes.
        let m = vec![
            vec![0, 20, 20, 500],
            vec![20, 0, 20, 500],
            vec![20, 20, 0, 10],
            vec![500, 500, 10, 0],
        ];
        let bound = GoodCaseBound::new(m, 3, 0);
        let z = bound.finalized_ms(0);
        // Nodes 0..3 notarize at 40 (proposal 20 + votes 20) and finalize
        // at 60; node 3 hears both certificates from node 2 10 ms later.
        assert_eq!(z, vec![60, 60, 60, 70]);
    }

    #[test]
    fn matrix_spans_the_published_range() {
        let m = one_way_ms(&placement(REGIONS.len()));
        let off: Vec<u64> = (0..REGIONS.len())
            .flat_map(|i| {
                (0..REGIONS.len())
                    .filter(move |j| *j != i)
                    .map(move |j| (i, j))
            })
            .map(|(i, j)| m[i][j])
            .collect();
        assert_eq!(off.iter().min(), Some(&27)); // Pune–Singapore, 53 ms RTT
        assert_eq!(off.iter().max(), Some(&132)); // Netherlands–New South Wales
        for (i, row) in RTT_MS.iter().enumerate() {
            assert_eq!(row[i], 0);
            for (j, rtt) in row.iter().enumerate() {
                assert!(rtt.abs_diff(RTT_MS[j][i]) <= 3, "{i}->{j}");
            }
        }
    }

    #[test]
    fn first_block_in_a_uniform_network_meets_the_bound_exactly() {
        // No jitter, no loss: the first view overlaps no earlier one, so its
        // block is finalized at exactly 3δ + validate_ms everywhere.
        let n = 4;
        let one_way: Vec<Vec<u64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 0 } else { 40 }).collect())
            .collect();
        let cfg = WanConfig {
            jitter_ms: 0,
            heights: 3,
            one_way_ms: Some(one_way),
            ..WanConfig::new(1, n)
        };
        let r = run_wan(&cfg);
        assert!(r.ok(), "{:?}", r.violation);
        let first: Vec<&WanSample> = r.samples.iter().filter(|s| s.height == 1).collect();
        assert_eq!(first.len(), n);
        for s in first {
            assert_eq!((s.latency_ms, s.bound_ms), (121, 121), "{s:?}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of(1..=100);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50, 90, 99, 100));
        let p = Percentiles::of([7]);
        assert_eq!((p.p50, p.p99, p.max), (7, 7, 7));
        assert_eq!(Percentiles::of([]), Percentiles::default());
    }
}
