//! Reconfiguration scenarios for the seeded simulator (feature `testing`;
//! see `SIMULATOR.md`): [`run_reconfig`] drives a pool of nodes, each running
//! the real [`Epochs`] driver (and so the real [`crate::Consensus`] per
//! epoch), through scripted validator-set changes under the faults of
//! `testing::sim`: latency, jitter, loss, duplication, reordering,
//! partitions, crashes (also mid-batch) with restart from the WAL, an
//! outsider that injects garbage and replays certificates under other
//! epochs, and up to one Byzantine identity that stays below a third of the
//! power of **every** epoch's set.
//!
//! * **Pool:** [`POOL`] identities, each one node; an identity has a key per
//!   *key version* (rotation = same identity, new key). Identities outside
//!   the running epoch's set follow it as observers.
//! * **Scripts** ([`ReconfigKind`]): add a validator, remove one, change
//!   powers, rotate keys, remove the proposer of the boundary block ("the
//!   current leader"), or change membership in every one of 50 epochs.
//! * **Mock app:** a payload's first 8 bytes are its tree height. In epoch
//!   `e`, the first block built at height `>= trigger[e]` on an ordinary
//!   parent is the boundary and carries change `e`; every child of a
//!   boundary or suffix block is an (empty) suffix block. Validation checks
//!   the block, its parent, the height, the epoch, the kind and the set
//!   change it carries.
//!
//! Checked after every step ([`ReconfigViolationKind`]): no two different
//! blocks committed at one height, or finalized at one (epoch, height) or
//! (epoch, view), by honest nodes; every honest node agrees on each epoch's
//! last block `L` and on `S_{e+1}`; every epoch proof verifies; a
//! certificate output in epoch `e` verifies under `S_e`/`N_e` and under no
//! neighbouring epoch's set and namespace; no honest validator signs
//! conflicting votes; liveness after GST.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use ed25519_dalek::SigningKey;

use super::net::{
    Host, LinkModel, Net, OUTSIDER, SignedVotes, Slot, agree_at, agree_height, first_fork,
    gen_crashes, gen_partitions, gst_ms, judge_rejection, mock_genesis, mock_payload,
    panic_message,
};
use super::sim::height_of;
use super::{BrokenVariant, SplitMix64};
use crate::epoch::{
    BlockKind, Epoch, EpochInput, EpochMessage, EpochOutput, EpochParams, EpochProof, Epochs,
    SUFFIX_BLOCKS_MAX, epoch_namespace,
};
use crate::{
    Anchor, Certificate, CertificateKind, Digest, Message, Output, Proposal, Validator,
    ValidatorSet, View, Vote, VoteKind, WalEntry,
};

/// Number of identities (nodes) in the pool.
pub const POOL: usize = 6;
/// Chain namespace of the reconfiguration simulator.
pub const RECONFIG_NAMESPACE: [u8; 32] = [0x5e; 32];
/// Default liveness bound after GST (ms), plus [`PER_EPOCH_MS`] per epoch
/// still to go.
pub const DEFAULT_BOUND_MS: u64 = 120_000;
/// Extra virtual time allowed per epoch still to run at GST.
pub const PER_EPOCH_MS: u64 = 10_000;
/// Epochs of the churn script.
pub const CHURN_EPOCHS: usize = 50;

/// Which set changes a run scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReconfigKind {
    /// Each change adds a validator (4 → 5 → 6), then a power change.
    AddValidator,
    /// Each change removes a validator (6 → 5 → 4), then a power change.
    RemoveValidator,
    /// Each change draws new powers.
    ChangePower,
    /// Each change rotates one or two validators' keys.
    RotateKey,
    /// The first two changes remove the validator that built the boundary
    /// block (the leader of its view), the third adds one back.
    RemoveLeader,
    /// A new random membership (4–6 of the pool, new powers, rotations) in
    /// each of [`CHURN_EPOCHS`] epochs.
    Churn,
}

impl ReconfigKind {
    /// Every kind.
    pub const ALL: [ReconfigKind; 6] = [
        ReconfigKind::AddValidator,
        ReconfigKind::RemoveValidator,
        ReconfigKind::ChangePower,
        ReconfigKind::RotateKey,
        ReconfigKind::RemoveLeader,
        ReconfigKind::Churn,
    ];
}

/// A Byzantine identity's behaviour (its host rewrites what its honest
/// driver sends in the running epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ByzBehaviour {
    /// As leader, sends two different valid proposals to different peers.
    Equivocate,
    /// Sends a conflicting vote next to each Notarize / Finalize.
    DoubleVote,
    /// Never sends its proposals.
    SilentLeader,
}

/// What one reconfiguration run is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconfigConfig {
    /// The seed.
    pub seed: u64,
    /// The script; `None` derives it from the seed.
    pub kind: Option<ReconfigKind>,
    /// Whether one identity may be Byzantine.
    pub byzantine: bool,
    /// Upper bound of the per-seed loss rate (‰).
    pub max_loss_permille: u64,
    /// Liveness bound after GST (ms), plus [`PER_EPOCH_MS`] per epoch left.
    pub bound_ms: u64,
    /// A deliberately broken variant on every node.
    pub broken: Option<BrokenVariant>,
    /// Check every `EpochEnded` proof ([`ReconfigViolationKind::BadEpochProof`]).
    /// Off only to show that a broken switch is also caught by its effects
    /// (disagreement on `L`, conflicting commits).
    pub check_proofs: bool,
    /// Print every event to stderr.
    pub trace: bool,
}

impl ReconfigConfig {
    /// Defaults: kind from the seed, Byzantine on, loss up to 20 %.
    pub fn new(seed: u64) -> ReconfigConfig {
        ReconfigConfig {
            seed,
            kind: None,
            byzantine: true,
            max_loss_permille: 200,
            bound_ms: DEFAULT_BOUND_MS,
            broken: None,
            check_proofs: true,
            trace: false,
        }
    }

    /// The one-line replay command.
    pub fn replay_command(&self) -> String {
        let mut cmd = format!(
            "cargo run -p cairn-consensus --release --features testing --example sim -- --reconfig --seed {}",
            self.seed
        );
        if let Some(k) = self.kind {
            cmd.push_str(&format!(" --kind {}", kind_name(k)));
        }
        if let Some(b) = self.broken {
            cmd.push_str(&format!(" --broken {}", super::sim::broken_name(b)));
        }
        if !self.byzantine {
            cmd.push_str(" --no-byzantine");
        }
        if !self.check_proofs {
            cmd.push_str(" --no-proof-check");
        }
        cmd
    }
}

/// Command-line name of a script.
pub fn kind_name(k: ReconfigKind) -> &'static str {
    match k {
        ReconfigKind::AddValidator => "add",
        ReconfigKind::RemoveValidator => "remove",
        ReconfigKind::ChangePower => "power",
        ReconfigKind::RotateKey => "rotate",
        ReconfigKind::RemoveLeader => "remove-leader",
        ReconfigKind::Churn => "churn",
    }
}

/// Inverse of [`kind_name`].
pub fn parse_kind(name: &str) -> Option<ReconfigKind> {
    ReconfigKind::ALL
        .into_iter()
        .find(|k| kind_name(*k) == name)
}

/// One member of a scripted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// Identity (node) index `< POOL`.
    pub id: usize,
    /// Key version of the identity.
    pub key_version: u32,
    /// Voting power.
    pub power: u64,
}

/// A scripted change, applied by the boundary block of its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The next set, fixed in advance.
    To(Vec<Member>),
    /// Remove the identity that built the boundary block.
    RemoveProposer,
    /// Add the lowest pool identity that is not a member (power 1).
    AddBack,
}

/// The schedule of one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconfigScenario {
    /// The script.
    pub kind: ReconfigKind,
    /// The genesis set `S_0`.
    pub initial: Vec<Member>,
    /// Change `e` ends epoch `e`.
    pub changes: Vec<Change>,
    /// `trigger[e]`: lowest tree height of epoch `e`'s boundary.
    pub triggers: Vec<u64>,
    /// The Byzantine identity, if any.
    pub byzantine: Option<(usize, ByzBehaviour)>,
    /// Loss (‰), duplication (‰), reordering (‰).
    pub loss_permille: u64,
    /// Duplication probability (‰).
    pub dup_permille: u64,
    /// Extra-delay probability (‰).
    pub reorder_permille: u64,
    /// Base latency per link (ms).
    pub latency_ms: Vec<Vec<u64>>,
    /// Jitter (ms).
    pub jitter_ms: u64,
    /// App answer delay (ms).
    pub app_delay_ms: u64,
    /// Partitions `(start, end, side per node)`.
    pub partitions: Vec<(u64, u64, Vec<u8>)>,
    /// Crashes `(node, at, restart, mid_batch)` of honest nodes.
    pub crashes: Vec<(usize, u64, u64, bool)>,
    /// GST.
    pub gst_ms: u64,
    /// Committed heights the run must reach (`> ` the last trigger).
    pub min_heights: u64,
}

fn set_ok(members: &[Member], byz: Option<usize>) -> bool {
    let total: u64 = members.iter().map(|m| m.power).sum();
    let q = total * 2 / 3 + 1;
    let b: u64 = members
        .iter()
        .filter(|m| Some(m.id) == byz)
        .map(|m| m.power)
        .sum();
    let n = members.len();
    (b == 0 || n >= 4) && total - b >= q && 2 * q > total + b
}

/// Draws powers for `ids` so the set tolerates the Byzantine identity.
fn gen_set(
    ids: &[usize],
    versions: &[u32; POOL],
    byz: Option<usize>,
    rng: &mut SplitMix64,
) -> Vec<Member> {
    for attempt in 0..200 {
        let members: Vec<Member> = ids
            .iter()
            .map(|id| Member {
                id: *id,
                key_version: versions[*id],
                power: if attempt < 150 { 1 + rng.below(9) } else { 1 },
            })
            .collect();
        if set_ok(&members, byz) {
            return members;
        }
    }
    panic!("no valid powers for {ids:?} with byzantine {byz:?}");
}

impl ReconfigScenario {
    /// Derives the schedule from the seed.
    pub fn generate(cfg: &ReconfigConfig) -> ReconfigScenario {
        let mut rng = SplitMix64::new(cfg.seed ^ 0x7EC0_F16E_0000_0001);
        let kind = cfg
            .kind
            .unwrap_or(ReconfigKind::ALL[(cfg.seed % 6) as usize]);
        let byzantine = (cfg.byzantine && rng.below(4) < 3).then(|| {
            let b = [
                ByzBehaviour::Equivocate,
                ByzBehaviour::DoubleVote,
                ByzBehaviour::SilentLeader,
            ][rng.below(3) as usize];
            (rng.below(POOL as u64) as usize, b)
        });
        let byz = byzantine.map(|b| b.0);
        let mut versions = [0u32; POOL];
        let all: Vec<usize> = (0..POOL).collect();
        let (initial, changes) = match kind {
            ReconfigKind::AddValidator => {
                let s0 = gen_set(&all[..4], &versions, byz, &mut rng);
                let s1 = gen_set(&all[..5], &versions, byz, &mut rng);
                let s2 = gen_set(&all[..6], &versions, byz, &mut rng);
                let s3 = gen_set(&all[..6], &versions, byz, &mut rng);
                (s0, vec![Change::To(s1), Change::To(s2), Change::To(s3)])
            }
            ReconfigKind::RemoveValidator => {
                let mut ids = all.clone();
                let s0 = gen_set(&ids, &versions, byz, &mut rng);
                let mut changes = Vec::new();
                for _ in 0..2 {
                    ids.remove(rng.below(ids.len() as u64) as usize);
                    changes.push(Change::To(gen_set(&ids, &versions, byz, &mut rng)));
                }
                changes.push(Change::To(gen_set(&ids, &versions, byz, &mut rng)));
                (s0, changes)
            }
            ReconfigKind::ChangePower => {
                let ids = &all[..4 + rng.below(3) as usize];
                let s0 = gen_set(ids, &versions, byz, &mut rng);
                let changes = (0..3)
                    .map(|_| Change::To(gen_set(ids, &versions, byz, &mut rng)))
                    .collect();
                (s0, changes)
            }
            ReconfigKind::RotateKey => {
                let ids = &all[..4 + rng.below(3) as usize];
                let s0 = gen_set(ids, &versions, byz, &mut rng);
                let mut changes = Vec::new();
                let mut prev = s0.clone();
                for _ in 0..3 {
                    for _ in 0..1 + rng.below(2) {
                        let k = rng.below(prev.len() as u64) as usize;
                        versions[prev[k].id] += 1;
                        prev[k].key_version = versions[prev[k].id];
                    }
                    changes.push(Change::To(prev.clone()));
                }
                (s0, changes)
            }
            ReconfigKind::RemoveLeader => {
                let s0: Vec<Member> = all
                    .iter()
                    .map(|id| Member {
                        id: *id,
                        key_version: 0,
                        power: 1,
                    })
                    .collect();
                (
                    s0,
                    vec![
                        Change::RemoveProposer,
                        Change::RemoveProposer,
                        Change::AddBack,
                    ],
                )
            }
            ReconfigKind::Churn => {
                let s0 = gen_set(&all[..4], &versions, byz, &mut rng);
                let mut changes = Vec::new();
                for _ in 0..CHURN_EPOCHS {
                    let size = 4 + rng.below(3) as usize;
                    let mut ids = all.clone();
                    while ids.len() > size {
                        ids.remove(rng.below(ids.len() as u64) as usize);
                    }
                    if rng.below(4) == 0 {
                        let id = ids[rng.below(ids.len() as u64) as usize];
                        versions[id] += 1;
                    }
                    changes.push(Change::To(gen_set(&ids, &versions, byz, &mut rng)));
                }
                (s0, changes)
            }
        };
        let mut triggers = Vec::new();
        let mut h = 0;
        for _ in 0..changes.len() {
            h += if kind == ReconfigKind::Churn {
                1 + rng.below(3)
            } else {
                4 + rng.below(8)
            };
            triggers.push(h);
        }
        let min_heights = h + 5;
        let link = LinkModel::generate(&mut rng, POOL, cfg.max_loss_permille);
        let (chaos_ms, partitions) = gen_partitions(&mut rng, |rng| {
            let mut side: Vec<u8> = (0..POOL).map(|_| rng.below(2) as u8).collect();
            if side.iter().all(|s| *s == side[0]) {
                side[0] ^= 1;
            }
            side
        });
        let honest: Vec<usize> = (0..POOL).filter(|i| Some(*i) != byz).collect();
        let crashes = gen_crashes(&mut rng, &honest, chaos_ms);
        let gst_ms = gst_ms(partitions.iter().map(|p| p.1), crashes.iter().map(|c| c.2));
        ReconfigScenario {
            kind,
            initial,
            changes,
            triggers,
            byzantine,
            loss_permille: link.loss_permille,
            dup_permille: link.dup_permille,
            reorder_permille: link.reorder_permille,
            latency_ms: link.latency_ms,
            jitter_ms: link.jitter_ms,
            app_delay_ms: link.app_delay_ms,
            partitions,
            crashes,
            gst_ms,
            min_heights,
        }
    }
}

/// Which invariant a reconfiguration run broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReconfigViolationKind {
    /// Two honest nodes committed different blocks at one height, or
    /// finalized different blocks at one (epoch, height) or (epoch, view),
    /// or a finalized block does not extend the node's previous one.
    ConflictingFinalization,
    /// A finalized chain does not link up (unknown parent, wrong height or
    /// epoch).
    BrokenChain,
    /// Honest nodes ended an epoch with different `L` or different `S_{e+1}`.
    EpochDisagreement,
    /// An `EpochEnded` proof does not verify against the node's own set.
    BadEpochProof,
    /// A certificate output in epoch `e` does not verify under `S_e`/`N_e`,
    /// or verifies under another epoch's set and namespace.
    WrongEpochCertificate,
    /// An honest validator signed conflicting votes in one (epoch, view).
    DoubleSign,
    /// An honest message or host input was rejected as a fault.
    HonestRejected,
    /// A restart from the WAL failed.
    RestartFailed,
    /// Not all honest nodes reached the scripted epochs and heights in time.
    Liveness,
    /// A panic.
    Panic,
}

/// The first violation of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconfigViolation {
    /// Which invariant.
    pub kind: ReconfigViolationKind,
    /// Virtual time (ms).
    pub at_ms: u64,
    /// Details.
    pub detail: String,
}

impl fmt::Display for ReconfigViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at {} ms: {}", self.kind, self.at_ms, self.detail)
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconfigStats {
    /// Events processed.
    pub steps: u64,
    /// Copies lost (loss or partition).
    pub dropped: u64,
    /// Crashes.
    pub crashes: u64,
    /// Crashes that cut a batch.
    pub crashes_mid_batch: u64,
    /// Restarts.
    pub restarts: u64,
    /// Epoch switches at honest nodes.
    pub epoch_switches: u64,
    /// Switches by observers (nodes outside the ended epoch's set).
    pub observer_switches: u64,
    /// Epochs ended through a suffix block's finalization.
    pub ended_by_suffix: u64,
    /// Longest suffix in any proof.
    pub max_suffix: u64,
    /// `CatchUp` outputs answered with a proof.
    pub catch_ups: u64,
    /// Messages the Byzantine host sent beyond honest behaviour.
    pub byzantine_messages: u64,
    /// Outsider messages (garbage and cross-epoch replays).
    pub outsider_messages: u64,
    /// Certificates checked against neighbouring epochs.
    pub cross_epoch_checks: u64,
    /// Peer-fault rejections at honest nodes.
    pub rejected: u64,
}

/// The outcome of one reconfiguration seed.
#[derive(Clone, Debug)]
pub struct ReconfigReport {
    /// What was run.
    pub config: ReconfigConfig,
    /// The schedule.
    pub scenario: ReconfigScenario,
    /// Lowest epoch among honest nodes at the end.
    pub min_epoch: Epoch,
    /// Lowest committed height among honest nodes.
    pub min_height: u64,
    /// Virtual end time (ms).
    pub time_ms: u64,
    /// Counters.
    pub stats: ReconfigStats,
    /// blake3 over every processed event.
    pub event_hash: [u8; 32],
    /// The first violation.
    pub violation: Option<ReconfigViolation>,
}

impl ReconfigReport {
    /// No violation.
    pub fn ok(&self) -> bool {
        self.violation.is_none()
    }

    /// One line summary.
    pub fn one_line(&self) -> String {
        format!(
            "reconfig seed {} {:?} {}: epochs>={} heights>={} t={}ms gst={}ms loss={}‰ byz={:?} switches={} (observers {}, by suffix {}, max suffix {}) catch-ups={} crashes={} restarts={} rejected={} hash={}",
            self.config.seed,
            self.scenario.kind,
            if self.ok() { "ok" } else { "FAILED" },
            self.min_epoch,
            self.min_height,
            self.time_ms,
            self.scenario.gst_ms,
            self.scenario.loss_permille,
            self.scenario.byzantine,
            self.stats.epoch_switches,
            self.stats.observer_switches,
            self.stats.ended_by_suffix,
            self.stats.max_suffix,
            self.stats.catch_ups,
            self.stats.crashes,
            self.stats.restarts,
            self.stats.rejected,
            hex::encode(&self.event_hash[..8])
        )
    }

    /// The seed, the violation and the replay command.
    pub fn failure_message(&self) -> String {
        match &self.violation {
            None => format!("reconfig seed {} passed", self.config.seed),
            Some(v) => format!(
                "reconfiguration simulation FAILED: seed {}: {v}\n  replay: {}",
                self.config.seed,
                self.config.replay_command()
            ),
        }
    }
}

/// Runs one seed; never panics (a panic becomes a violation).
pub fn run_reconfig(cfg: &ReconfigConfig) -> ReconfigReport {
    let mut sim = RSim::new(cfg.clone());
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| sim.run())) {
        let msg = panic_message(panic);
        let now = sim.net.now;
        sim.violation.get_or_insert(ReconfigViolation {
            kind: ReconfigViolationKind::Panic,
            at_ms: now,
            detail: msg,
        });
    }
    sim.report()
}

/// The key of `id` at `version`.
pub fn pool_key(id: usize, version: u32) -> SigningKey {
    let mut m = [0u8; 12];
    m[..8].copy_from_slice(&(id as u64).to_le_bytes());
    m[8..].copy_from_slice(&version.to_le_bytes());
    SigningKey::from_bytes(&blake3::derive_key("cairn reconfig sim key", &m))
}

/// The [`ValidatorSet`] of scripted members (in order).
pub fn members_set(members: &[Member]) -> ValidatorSet {
    ValidatorSet::new(
        members
            .iter()
            .map(|m| Validator {
                public_key: pool_key(m.id, m.key_version).verifying_key(),
                voting_power: m.power,
            })
            .collect(),
    )
    .expect("scripted sets are valid")
}

fn params() -> EpochParams {
    EpochParams {
        chain_namespace: RECONFIG_NAMESPACE,
        leader_timeout_ms: 1_000,
        notarization_timeout_ms: 2_000,
        nullify_retry_ms: 500,
        views_ahead_max: 10,
    }
}

fn genesis() -> Anchor {
    mock_genesis(b"cairn reconfig genesis")
}

/// A block of the mock app.
#[derive(Clone, Debug)]
struct Block {
    proposal: Proposal,
    epoch: Epoch,
    kind: BlockKind,
    /// For a boundary: the next set.
    next: Option<Vec<Member>>,
    builder: usize,
}

/// What a node keeps durable.
#[derive(Clone, Debug)]
struct Durable {
    epoch: Epoch,
    set: Vec<Member>,
    epoch_anchor: Anchor,
    /// Last block finalized in the running epoch (the epoch anchor at first).
    anchor: Anchor,
    wal: Vec<WalEntry>,
    /// Ended, next epoch not started yet: `(L, S_{e+1})`.
    ended: Option<(Digest, Vec<Member>)>,
    /// Every ended epoch's proof (the ledger keeps them all).
    proofs: VecDeque<EpochProof>,
    /// Committed ledger: `committed[h - 1]`.
    committed: Vec<Digest>,
}

struct Node {
    slot: Slot<Epochs>,
    durable: Durable,
    /// (epoch, view) -> votes signed (across restarts).
    signed: BTreeMap<(Epoch, View), SignedVotes>,
}

/// What the host answers a node with.
enum Answer {
    /// An app answer.
    Input(EpochInput),
    /// Start the next epoch (after an `EpochEnded`).
    NextEpoch(Epoch),
}

struct RSim {
    cfg: ReconfigConfig,
    sc: ReconfigScenario,
    nodes: Vec<Node>,
    net: Net<Answer>,
    blocks: BTreeMap<Digest, Block>,
    salt: u64,
    /// Committed ledger: first block committed at each height.
    canonical: Vec<Digest>,
    /// First block finalized at (epoch, height) and (epoch, view).
    finalized_at: BTreeMap<(Epoch, u64), Digest>,
    finalized_views: BTreeMap<(Epoch, View), Digest>,
    /// Agreed end of each epoch: `(L, S_{e+1})`.
    ends: BTreeMap<Epoch, (Digest, Vec<Member>)>,
    /// Sets per epoch as decided (for cross-epoch checks).
    sets: BTreeMap<Epoch, ValidatorSet>,
    checked_certs: BTreeSet<(Epoch, View, u8, Digest)>,
    /// Recent honest certificates (for outsider replays), at most 64.
    recent_certs: VecDeque<(Epoch, Certificate)>,
    stats: ReconfigStats,
    violation: Option<ReconfigViolation>,
    gst: Option<u64>,
    deadline: u64,
}

impl Host for RSim {
    type App = Answer;
    type Machine = Epochs;
    const TRACE_FAULTS: bool = false;

    fn net(&mut self) -> &mut Net<Answer> {
        &mut self.net
    }

    fn node_count(&self) -> usize {
        POOL
    }

    fn slot(&mut self, i: usize) -> &mut Slot<Epochs> {
        &mut self.nodes[i].slot
    }

    fn crash_plan(&self, j: usize) -> (usize, bool) {
        let (i, _, _, mid) = self.sc.crashes[j];
        (i, mid)
    }

    fn finished(&self) -> bool {
        self.violation.is_some() || self.done()
    }

    fn ran_dry(&mut self) {
        self.violate(
            ReconfigViolationKind::Liveness,
            "event queue ran dry".into(),
        );
    }

    /// Restart from durable state: the WAL of the running epoch, the last
    /// finalized block, and an ended epoch whose successor had not started.
    fn restart(&mut self, i: usize) {
        // A crash between `Finalized` and `EpochEnded` (mid-batch): the
        // last finalized block is a boundary or suffix block.
        let d = self.nodes[i].durable.clone();
        let mut durable = d.clone();
        if durable.ended.is_none() {
            if let Some(b) = self.blocks.get(&d.anchor.payload) {
                if b.epoch == d.epoch && b.kind != BlockKind::Ordinary && d.anchor != d.epoch_anchor
                {
                    let l = self.boundary_below(d.anchor.payload);
                    let next = self.blocks[&l].next.clone().expect("boundary");
                    self.commit_up_to(i, l);
                    durable.ended = Some((l, next));
                }
            }
        }
        if let Some((l, next)) = durable.ended.take() {
            durable.epoch += 1;
            durable.set = next;
            durable.epoch_anchor = Anchor {
                view: 0,
                payload: l,
            };
            durable.anchor = durable.epoch_anchor;
            durable.wal.clear();
        }
        let committed = self.nodes[i].durable.committed.clone();
        durable.committed = committed;
        self.nodes[i].durable = durable.clone();
        let key = self.key_for(i, &durable.set);
        match Epochs::new(
            params(),
            durable.epoch,
            members_set(&durable.set),
            key,
            durable.epoch_anchor,
            durable.anchor,
            &durable.wal,
        ) {
            Ok(mut driver) => {
                driver.set_broken_variant(self.cfg.broken);
                if let Some(prev) = durable.epoch.checked_sub(1).and_then(|e| self.sets.get(&e)) {
                    driver.set_previous_verifier(Some((
                        epoch_namespace(&RECONFIG_NAMESPACE, durable.epoch - 1),
                        prev.clone(),
                    )));
                }
                let kept = durable
                    .proofs
                    .len()
                    .saturating_sub(crate::epoch::EPOCH_PROOFS_KEPT);
                for p in durable.proofs.iter().skip(kept) {
                    driver.remember_proof(p.clone());
                }
                let out = driver.start(self.net.now);
                self.nodes[i].slot.start(driver, &mut self.net.counters);
                self.net
                    .trace(|| format!("node {i} (re)starts in epoch {}", durable.epoch));
                self.apply(i, out);
            }
            Err(e) => self.violate(
                ReconfigViolationKind::RestartFailed,
                format!("node {i} cannot restart: {e}"),
            ),
        }
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: Rc<[u8]>) {
        match EpochMessage::decode(&bytes) {
            Ok(message) => {
                self.net.trace(|| {
                    format!(
                        "{from:>2} -> {to:<2} e{} {}",
                        message.epoch,
                        brief(&message.message)
                    )
                });
                let input = EpochInput::Message {
                    message,
                    now_ms: self.net.now,
                };
                self.feed(to, input, Some(from));
            }
            Err(_) => {
                if self.honest(to) {
                    self.stats.rejected += 1;
                }
                if from != OUTSIDER && self.honest(from) {
                    self.violate(
                        ReconfigViolationKind::HonestRejected,
                        format!("node {to} could not decode a message of honest node {from}"),
                    );
                }
            }
        }
    }

    fn timeout(&mut self, node: usize) {
        self.feed(
            node,
            EpochInput::Timeout {
                now_ms: self.net.now,
            },
            None,
        );
    }

    fn answer(&mut self, node: usize, answer: Answer) {
        match answer {
            Answer::Input(input) => {
                let tag = format!("{input:?}");
                self.net.hash_event(3, node as u64, 0, tag.as_bytes());
                self.net.trace(|| format!("app answer to {node}: {tag}"));
                self.feed(node, input, None);
            }
            Answer::NextEpoch(epoch) => {
                self.net.hash_event(10, node as u64, epoch, &[]);
                self.start_next(node, epoch);
            }
        }
    }

    /// Garbage, or an honest certificate replayed under another epoch
    /// (the target's running epoch, or a neighbour).
    fn inject_outsider(&mut self) {
        let to = self.net.rng.below(POOL as u64) as usize;
        let bytes: Vec<u8> = if self.recent_certs.is_empty() || self.net.rng.below(5) == 0 {
            let len = self.net.rng.below(100) as usize;
            (0..len).map(|_| self.net.rng.next_u64() as u8).collect()
        } else {
            let k = self.net.rng.below(self.recent_certs.len() as u64) as usize;
            let (e, cert) = self.recent_certs[k].clone();
            let target = self.nodes[to].durable.epoch;
            let epoch = if target != e { target } else { e + 1 };
            EpochMessage {
                epoch,
                message: Message::Certificate(cert),
            }
            .encode()
        };
        self.stats.outsider_messages += 1;
        self.net.send_bytes(OUTSIDER, to, bytes.into());
    }

    fn outsider_gap(&self) -> u64 {
        800
    }

    fn on_gst(&mut self) {
        let lowest = (0..POOL)
            .filter(|i| self.honest(*i))
            .map(|i| self.nodes[i].durable.epoch)
            .min()
            .unwrap_or(0);
        let left = self.target_epoch().saturating_sub(lowest);
        self.gst = Some(self.net.now);
        self.deadline = self.net.now + self.cfg.bound_ms + PER_EPOCH_MS * left;
        self.net.trace(|| "GST".into());
    }

    fn after_step(&mut self) {
        if self.net.now > self.deadline && self.violation.is_none() && !self.done() {
            let state: Vec<String> = (0..POOL)
                .filter(|i| self.honest(*i))
                .map(|i| {
                    let d = &self.nodes[i].durable;
                    format!("node {i}: epoch {} height {}", d.epoch, d.committed.len())
                })
                .collect();
            self.violate(
                ReconfigViolationKind::Liveness,
                format!(
                    "epoch {} / height {} not reached by {} ms: {}",
                    self.target_epoch(),
                    self.sc.min_heights,
                    self.deadline,
                    state.join("; ")
                ),
            );
        }
    }
}

impl RSim {
    fn new(cfg: ReconfigConfig) -> RSim {
        let sc = ReconfigScenario::generate(&cfg);
        let g = genesis();
        let nodes = (0..POOL)
            .map(|_| Node {
                slot: Slot::new(),
                durable: Durable {
                    epoch: 0,
                    set: sc.initial.clone(),
                    epoch_anchor: g,
                    anchor: g,
                    wal: Vec::new(),
                    ended: None,
                    proofs: VecDeque::new(),
                    committed: Vec::new(),
                },
                signed: BTreeMap::new(),
            })
            .collect();
        let mut sets = BTreeMap::new();
        sets.insert(0, members_set(&sc.initial));
        let link = LinkModel {
            loss_permille: sc.loss_permille,
            dup_permille: sc.dup_permille,
            reorder_permille: sc.reorder_permille,
            latency_ms: sc.latency_ms.clone(),
            jitter_ms: sc.jitter_ms,
            app_delay_ms: sc.app_delay_ms,
        };
        let sides = sc.partitions.iter().map(|p| p.2.clone()).collect();
        let net = Net::new(
            SplitMix64::new(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xE90C),
            link,
            sides,
            cfg.trace,
        );
        RSim {
            cfg,
            sc,
            nodes,
            net,
            blocks: BTreeMap::new(),
            salt: 0,
            canonical: Vec::new(),
            finalized_at: BTreeMap::new(),
            finalized_views: BTreeMap::new(),
            ends: BTreeMap::new(),
            sets,
            checked_certs: BTreeSet::new(),
            recent_certs: VecDeque::new(),
            stats: ReconfigStats::default(),
            violation: None,
            gst: None,
            deadline: u64::MAX,
        }
    }

    fn honest(&self, i: usize) -> bool {
        self.sc.byzantine.map(|b| b.0) != Some(i)
    }

    fn violate(&mut self, kind: ReconfigViolationKind, detail: String) {
        if self.violation.is_none() {
            self.net.trace(|| format!("VIOLATION {kind:?}: {detail}"));
            self.violation = Some(ReconfigViolation {
                kind,
                at_ms: self.net.now,
                detail,
            });
        }
    }

    fn target_epoch(&self) -> Epoch {
        self.sc.changes.len() as Epoch
    }

    fn run(&mut self) {
        let partitions: Vec<(u64, u64)> = self.sc.partitions.iter().map(|p| (p.0, p.1)).collect();
        let crashes: Vec<(u64, u64)> = self.sc.crashes.iter().map(|c| (c.1, c.2)).collect();
        let first = 1 + self.net.rng.below(800);
        self.net
            .schedule_faults(&partitions, &crashes, first, self.sc.gst_ms);
        self.run_loop();
    }

    fn done(&self) -> bool {
        self.gst.is_some()
            && (0..POOL).filter(|i| self.honest(*i)).all(|i| {
                let d = &self.nodes[i].durable;
                d.epoch >= self.target_epoch() && d.committed.len() as u64 >= self.sc.min_heights
            })
    }

    fn feed(&mut self, i: usize, input: EpochInput, from: Option<usize>) {
        let driver = self.nodes[i].slot.machine.as_mut().expect("running");
        match driver.handle(input) {
            Ok(out) => self.apply(i, out),
            Err(e) => {
                if !self.honest(i) {
                    return;
                }
                self.net
                    .trace(|| format!("node {i} rejects (from {from:?}): {e}"));
                let crate::epoch::EpochError::Message { source, .. } = &e else {
                    self.violate(
                        ReconfigViolationKind::HonestRejected,
                        format!("node {i}: {e}"),
                    );
                    return;
                };
                let honest_sender = from.filter(|f| *f != OUTSIDER && self.honest(*f));
                if let Some(detail) =
                    judge_rejection(i, honest_sender, source, &e, &mut self.stats.rejected)
                {
                    self.violate(ReconfigViolationKind::HonestRejected, detail);
                }
            }
        }
    }

    fn key_for(&self, i: usize, set: &[Member]) -> Option<SigningKey> {
        set.iter()
            .find(|m| m.id == i)
            .map(|m| pool_key(i, m.key_version))
    }

    fn boundary_below(&self, mut d: Digest) -> Digest {
        loop {
            let b = &self.blocks[&d];
            if b.kind == BlockKind::Boundary {
                return d;
            }
            d = b.proposal.parent;
        }
    }

    fn apply(&mut self, i: usize, outputs: Vec<EpochOutput>) {
        let cut = self.batch_cut(i, outputs.len());
        for (k, output) in outputs.into_iter().enumerate() {
            if cut == Some(k) || self.violation.is_some() {
                break;
            }
            self.perform(i, output);
        }
        if let Some(k) = cut {
            self.crash_mid_batch(i, k, "");
        }
    }

    fn perform(&mut self, i: usize, output: EpochOutput) {
        let honest = self.honest(i);
        match output {
            EpochOutput::Consensus { epoch, output } => self.perform_consensus(i, epoch, output),
            EpochOutput::EpochEnded {
                epoch,
                last_block,
                proof,
            } => self.on_epoch_ended(i, epoch, last_block, proof),
            EpochOutput::EpochStarted { epoch, anchor, .. } => {
                let d = &mut self.nodes[i].durable;
                if d.epoch != epoch {
                    d.epoch = epoch;
                    d.epoch_anchor = anchor;
                    d.anchor = anchor;
                    d.wal.clear();
                }
            }
            EpochOutput::BlockNeeded { epoch, payload } => {
                if let Some(b) = self.blocks.get(&payload) {
                    let input = EpochInput::Block {
                        epoch,
                        proposal: b.proposal,
                        kind: b.kind,
                    };
                    let incarnation = self.nodes[i].slot.incarnation;
                    self.net
                        .schedule_app(i, incarnation, |_| Answer::Input(input));
                }
            }
            EpochOutput::CatchUp { epoch } => {
                let peer = self.net.rng.below(POOL as u64) as usize;
                // The peer's host serves the proof from its ledger, which
                // keeps every epoch's proof (a state-sync stand-in).
                let proof = self.nodes[peer]
                    .slot
                    .machine
                    .as_ref()
                    .and_then(|_| {
                        self.nodes[peer]
                            .durable
                            .proofs
                            .iter()
                            .find(|p| p.epoch == epoch)
                    })
                    .cloned();
                if let (Some(p), true) = (proof, peer != i) {
                    if honest {
                        self.stats.catch_ups += 1;
                    }
                    let m = EpochMessage {
                        epoch,
                        message: Message::Certificate(p.finalization),
                    };
                    self.net.send_bytes(peer, i, m.encode().into());
                }
            }
        }
    }

    fn perform_consensus(&mut self, i: usize, epoch: Epoch, output: Output) {
        let honest = self.honest(i);
        match output {
            Output::Persist(entry) => {
                let WalEntry::Voted(vote) = &entry;
                if honest {
                    self.record_signed(i, epoch, vote);
                }
                if self.nodes[i].durable.epoch == epoch {
                    self.nodes[i].durable.wal.push(entry);
                }
            }
            Output::Broadcast(message) => {
                if honest {
                    if let Message::Vote(v) = &message {
                        self.record_signed(i, epoch, v);
                    }
                    if let Message::Certificate(c) = &message {
                        self.recent_certs.push_back((epoch, c.clone()));
                        if self.recent_certs.len() > 64 {
                            self.recent_certs.pop_front();
                        }
                    }
                    self.broadcast(i, epoch, &message);
                } else {
                    self.byzantine_broadcast(i, epoch, message);
                }
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
                let (p, kind) = self.build(i, epoch, view, parent_view, parent);
                let incarnation = self.nodes[i].slot.incarnation;
                self.net.trace(|| {
                    format!(
                        "node {i} builds e{epoch} v{view} h{} {kind:?}",
                        height_of(&p.payload)
                    )
                });
                self.net.schedule_app(i, incarnation, |now_ms| {
                    Answer::Input(EpochInput::Proposed {
                        epoch,
                        view,
                        payload: p.payload,
                        kind,
                        now_ms,
                    })
                });
            }
            Output::Validate(p) => {
                let verdict = self.validate(i, epoch, &p);
                let incarnation = self.nodes[i].slot.incarnation;
                self.net.schedule_app(i, incarnation, |now_ms| {
                    Answer::Input(EpochInput::Validated {
                        epoch,
                        proposal: p,
                        verdict,
                        now_ms,
                    })
                });
            }
            Output::Notarized(cert) => {
                if honest {
                    self.check_cert_epoch(i, epoch, &cert);
                }
            }
            Output::Finalized(cert) => {
                if honest {
                    self.check_cert_epoch(i, epoch, &cert);
                    self.on_finalized(i, epoch, &cert);
                }
            }
            Output::ViewChanged { .. } | Output::Evidence(_) => {}
        }
    }

    /// The set the node runs in `epoch` (its own view of it).
    fn node_set(&self, i: usize) -> Vec<Member> {
        self.nodes[i].durable.set.clone()
    }

    /// The kind and next set of a block built by `builder` on `parent` in
    /// `epoch`, with the node's own set `set` (`None`: too long a suffix).
    fn expected(
        &self,
        epoch: Epoch,
        parent: &Digest,
        height: u64,
        builder: usize,
        set: &[Member],
    ) -> Option<(BlockKind, Option<Vec<Member>>)> {
        let parent_kind = match self.blocks.get(parent) {
            Some(b) if b.epoch == epoch => b.kind,
            _ => BlockKind::Ordinary, // the epoch's anchor
        };
        if parent_kind != BlockKind::Ordinary {
            let mut depth = 0;
            let mut cur = *parent;
            while self.blocks[&cur].kind == BlockKind::Suffix {
                depth += 1;
                cur = self.blocks[&cur].proposal.parent;
            }
            return (depth < SUFFIX_BLOCKS_MAX).then_some((BlockKind::Suffix, None));
        }
        let e = epoch as usize;
        if e < self.sc.changes.len() && height >= self.sc.triggers[e] {
            let next = match &self.sc.changes[e] {
                Change::To(s) => s.clone(),
                Change::RemoveProposer => {
                    let mut s: Vec<Member> = set.to_vec();
                    s.retain(|m| m.id != builder);
                    s
                }
                Change::AddBack => {
                    let mut s: Vec<Member> = set.to_vec();
                    if let Some(id) = (0..POOL).find(|id| !s.iter().any(|m| m.id == *id)) {
                        s.push(Member {
                            id,
                            key_version: 0,
                            power: 1,
                        });
                    }
                    s
                }
            };
            return Some((BlockKind::Boundary, Some(next)));
        }
        Some((BlockKind::Ordinary, None))
    }

    fn build(
        &mut self,
        i: usize,
        epoch: Epoch,
        view: View,
        parent_view: View,
        parent: Digest,
    ) -> (Proposal, BlockKind) {
        let height = height_of(&parent) + 1;
        let set = self.node_set(i);
        let (kind, next) = self
            .expected(epoch, &parent, height, i, &set)
            .unwrap_or((BlockKind::Suffix, None));
        let p = self.new_block(epoch, view, parent_view, parent, height, kind, next, i);
        (p, kind)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_block(
        &mut self,
        epoch: Epoch,
        view: View,
        parent_view: View,
        parent: Digest,
        height: u64,
        kind: BlockKind,
        next: Option<Vec<Member>>,
        builder: usize,
    ) -> Proposal {
        self.salt += 1;
        let payload = mock_payload(
            height,
            &[
                &epoch.to_le_bytes(),
                &view.to_le_bytes(),
                &parent.0,
                &self.salt.to_le_bytes(),
            ],
        );
        let proposal = Proposal {
            view,
            parent_view,
            parent,
            payload,
        };
        self.blocks.insert(
            proposal.payload,
            Block {
                proposal,
                epoch,
                kind,
                next,
                builder,
            },
        );
        proposal
    }

    /// The honest app's verdict.
    fn validate(&self, i: usize, epoch: Epoch, p: &Proposal) -> Option<BlockKind> {
        let b = self.blocks.get(&p.payload)?;
        if b.proposal != *p || b.epoch != epoch {
            return None;
        }
        let anchor = self.nodes[i].durable.epoch_anchor;
        let parent_ok = (p.parent == anchor.payload && p.parent_view == anchor.view)
            || self
                .blocks
                .get(&p.parent)
                .is_some_and(|q| q.epoch == epoch && q.proposal.view == p.parent_view);
        if !parent_ok || height_of(&p.payload) != height_of(&p.parent) + 1 {
            return None;
        }
        let set = self.node_set(i);
        let (kind, next) =
            self.expected(epoch, &p.parent, height_of(&p.payload), b.builder, &set)?;
        (kind == b.kind && next == b.next).then_some(kind)
    }

    /// A certificate output in `epoch` verifies under `S_epoch`/`N_epoch`
    /// and under no neighbouring epoch's set and namespace.
    fn check_cert_epoch(&mut self, i: usize, epoch: Epoch, cert: &Certificate) {
        let (tag, payload) = match &cert.kind {
            CertificateKind::Notarization(p) => (0, p.payload),
            CertificateKind::Nullification(_) => (1, Digest::ZERO),
            CertificateKind::Finalization(p) => (2, p.payload),
        };
        if !self
            .checked_certs
            .insert((epoch, cert.view(), tag, payload))
        {
            return;
        }
        self.stats.cross_epoch_checks += 1;
        let own = members_set(&self.nodes[i].durable.set);
        if let Err(e) = cert.verify(&epoch_namespace(&RECONFIG_NAMESPACE, epoch), &own) {
            self.violate(
                ReconfigViolationKind::WrongEpochCertificate,
                format!(
                    "node {i} output a certificate of view {} in epoch {epoch} that does not verify under S_{epoch}/N_{epoch}: {e}",
                    cert.view()
                ),
            );
            return;
        }
        // Another epoch's (set, namespace) must not accept it, whether the
        // signer indices are read in that set or in this one.
        for other in [epoch.wrapping_sub(1), epoch + 1] {
            let Some(set) = self.sets.get(&other).cloned() else {
                continue;
            };
            let ns = epoch_namespace(&RECONFIG_NAMESPACE, other);
            if cert.verify(&ns, &set).is_ok() || cert.verify(&ns, &own).is_ok() {
                self.violate(
                    ReconfigViolationKind::WrongEpochCertificate,
                    format!(
                        "a certificate of epoch {epoch} (view {}) also verifies under epoch {other}'s namespace",
                        cert.view()
                    ),
                );
                return;
            }
        }
    }

    fn on_finalized(&mut self, i: usize, epoch: Epoch, cert: &Certificate) {
        let CertificateKind::Finalization(p) = cert.kind else {
            return;
        };
        if self.nodes[i].durable.epoch != epoch {
            return;
        }
        let anchor = self.nodes[i].durable.anchor;
        let mut new = vec![p.payload];
        let mut cur = p;
        while cur.parent != anchor.payload {
            match self.blocks.get(&cur.parent) {
                Some(q)
                    if q.epoch == epoch
                        && q.proposal.view == cur.parent_view
                        && q.proposal.view > anchor.view =>
                {
                    new.push(q.proposal.payload);
                    cur = q.proposal;
                }
                _ => {
                    self.violate(
                        ReconfigViolationKind::ConflictingFinalization,
                        format!(
                            "node {i}: finalized e{epoch} v{} (h{}) does not extend its previous finalized block (v{}, h{})",
                            p.view,
                            height_of(&p.payload),
                            anchor.view,
                            height_of(&anchor.payload)
                        ),
                    );
                    return;
                }
            }
        }
        if self.blocks.get(&p.payload).is_none_or(|b| b.epoch != epoch) {
            self.violate(
                ReconfigViolationKind::BrokenChain,
                format!(
                    "node {i}: finalized unknown block of view {} in epoch {epoch}",
                    p.view
                ),
            );
            return;
        }
        for d in new.iter().rev() {
            let b = self.blocks[d].clone();
            let h = height_of(d);
            let mut conflict = None;
            if let Err(x) = agree_at(&mut self.finalized_at, (epoch, h), *d) {
                conflict = Some(format!(
                    "epoch {epoch} height {h}: node {i} finalized {d}, another honest node {x}"
                ));
            }
            let view = b.proposal.view;
            if let Err(x) = agree_at(&mut self.finalized_views, (epoch, view), *d) {
                conflict = Some(format!(
                    "epoch {epoch} view {view}: node {i} finalized {d}, another honest node {x}"
                ));
            }
            if let Some(detail) = conflict {
                self.violate(ReconfigViolationKind::ConflictingFinalization, detail);
                return;
            }
            if b.kind != BlockKind::Suffix {
                self.commit(i, *d);
            }
        }
        self.nodes[i].durable.anchor = Anchor {
            view: p.view,
            payload: p.payload,
        };
    }

    /// Appends `d` to node `i`'s ledger (it must be the next height).
    fn commit(&mut self, i: usize, d: Digest) {
        let h = height_of(&d);
        let ledger = &mut self.nodes[i].durable.committed;
        if h <= ledger.len() as u64 && ledger[h as usize - 1] == d {
            return;
        }
        if h != ledger.len() as u64 + 1 {
            let have = ledger.len();
            self.violate(
                ReconfigViolationKind::BrokenChain,
                format!("node {i} commits height {h} after height {have}"),
            );
            return;
        }
        ledger.push(d);
        if let Err(x) = agree_height(&mut self.canonical, h, d) {
            self.violate(
                ReconfigViolationKind::ConflictingFinalization,
                format!("height {h}: node {i} committed {d}, another honest node {x}"),
            );
        }
    }

    /// Commits the ancestry of `l` above the node's ledger.
    fn commit_up_to(&mut self, i: usize, l: Digest) {
        let have = self.nodes[i].durable.committed.len() as u64;
        let mut chain = Vec::new();
        let mut cur = l;
        while height_of(&cur) > have {
            chain.push(cur);
            match self.blocks.get(&cur) {
                Some(b) => cur = b.proposal.parent,
                None => break,
            }
        }
        for d in chain.into_iter().rev() {
            self.commit(i, d);
        }
    }

    fn on_epoch_ended(&mut self, i: usize, epoch: Epoch, l: Digest, proof: EpochProof) {
        if !self.honest(i) {
            // The Byzantine node's driver is honest: follow it anyway.
            let next = self.blocks.get(&l).and_then(|b| b.next.clone());
            if let Some(next) = next {
                self.nodes[i].durable.ended = Some((l, next));
                self.schedule_next(i, epoch + 1);
            }
            return;
        }
        let set = members_set(&self.nodes[i].durable.set);
        let blocks = &self.blocks;
        let check = self.cfg.check_proofs;
        if let Err(e) = proof.verify(&RECONFIG_NAMESPACE, &set, |d| {
            blocks
                .get(d)
                .filter(|b| b.epoch == epoch)
                .map(|b| (b.proposal.parent, b.kind))
        }) && check
        {
            self.violate(
                ReconfigViolationKind::BadEpochProof,
                format!("node {i}: proof of the end of epoch {epoch} does not verify: {e}"),
            );
            return;
        }
        let Some(next) = self.blocks.get(&l).and_then(|b| b.next.clone()) else {
            self.violate(
                ReconfigViolationKind::BadEpochProof,
                format!("node {i}: epoch {epoch} ended at a block that is not a boundary"),
            );
            return;
        };
        match self.ends.get(&epoch) {
            Some((l0, s0)) if *l0 != l || *s0 != next => {
                let detail = format!(
                    "epoch {epoch}: node {i} ended at {l} (h{}) with set {next:?}, another honest node at {l0} (h{}) with {s0:?}",
                    height_of(&l),
                    height_of(l0)
                );
                self.violate(ReconfigViolationKind::EpochDisagreement, detail);
                return;
            }
            Some(_) => {}
            None => {
                self.ends.insert(epoch, (l, next.clone()));
                self.sets.insert(epoch + 1, members_set(&next));
            }
        }
        let suffix = proof.blocks.len() as u64 - 1;
        self.stats.max_suffix = self.stats.max_suffix.max(suffix);
        if suffix > 0 {
            self.stats.ended_by_suffix += 1;
        }
        self.stats.epoch_switches += 1;
        if !self.nodes[i].durable.set.iter().any(|m| m.id == i) {
            self.stats.observer_switches += 1;
        }
        self.commit_up_to(i, l);
        let d = &mut self.nodes[i].durable;
        d.ended = Some((l, next));
        // The ledger keeps every epoch's proof (the driver only the last
        // EPOCH_PROOFS_KEPT): older ones are served by the host (CatchUp).
        d.proofs.push_back(proof);
        self.net
            .trace(|| format!("node {i} ends epoch {epoch} at h{}", height_of(&l)));
        self.schedule_next(i, epoch + 1);
    }

    fn schedule_next(&mut self, i: usize, epoch: Epoch) {
        let incarnation = self.nodes[i].slot.incarnation;
        self.net
            .schedule_app(i, incarnation, |_| Answer::NextEpoch(epoch));
    }

    fn start_next(&mut self, i: usize, epoch: Epoch) {
        let Some((l, next)) = self.nodes[i].durable.ended.clone() else {
            return;
        };
        let key = self.key_for(i, &next);
        let driver = self.nodes[i].slot.machine.as_mut().expect("running");
        match driver.start_next_epoch(epoch, members_set(&next), key, self.net.now) {
            Ok(out) => {
                let d = &mut self.nodes[i].durable;
                d.ended = None;
                d.epoch = epoch;
                d.set = next;
                d.epoch_anchor = Anchor {
                    view: 0,
                    payload: l,
                };
                d.anchor = d.epoch_anchor;
                d.wal.clear();
                self.apply(i, out);
            }
            Err(e) => self.violate(
                ReconfigViolationKind::HonestRejected,
                format!("node {i} cannot start epoch {epoch}: {e}"),
            ),
        }
    }

    /// I1–I4 per (epoch, view), across restarts.
    fn record_signed(&mut self, i: usize, epoch: Epoch, vote: &Vote) {
        let w = vote.kind.view();
        let conflict = self.nodes[i]
            .signed
            .entry((epoch, w))
            .or_default()
            .record(&vote.kind);
        if conflict.is_some() {
            self.violate(
                ReconfigViolationKind::DoubleSign,
                format!("honest node {i} signed conflicting votes in epoch {epoch} view {w}"),
            );
        }
    }

    fn sign_as(&self, i: usize, epoch: Epoch, kind: VoteKind) -> Option<Vote> {
        let set = &self.nodes[i].durable.set;
        let idx = set.iter().position(|m| m.id == i)?;
        let key = pool_key(i, set[idx].key_version);
        Some(Vote::sign(
            &epoch_namespace(&RECONFIG_NAMESPACE, epoch),
            kind,
            idx as u16,
            &key,
        ))
    }

    fn byzantine_broadcast(&mut self, i: usize, epoch: Epoch, message: Message) {
        let (_, behaviour) = self.sc.byzantine.expect("byzantine");
        let vote = match &message {
            Message::Vote(v) if self.nodes[i].durable.epoch == epoch => v.clone(),
            _ => return self.broadcast(i, epoch, &message),
        };
        let w = vote.kind.view();
        let leader = members_set(&self.nodes[i].durable.set).leader(w) == vote.signer;
        let proposal = match vote.kind {
            VoteKind::Notarize(p) if leader => Some(p),
            _ => None,
        };
        match (behaviour, proposal, &vote.kind) {
            (ByzBehaviour::SilentLeader, Some(_), _) => {
                self.stats.byzantine_messages += 1;
            }
            (ByzBehaviour::Equivocate, Some(p), _) => {
                let other = self.twin_block(&p);
                if let Some(second) = self.sign_as(i, epoch, VoteKind::Notarize(other)) {
                    self.split_send(i, epoch, &message, &Message::Vote(second));
                } else {
                    self.broadcast(i, epoch, &message);
                }
            }
            (ByzBehaviour::DoubleVote, _, VoteKind::Notarize(p) | VoteKind::Finalize(p)) => {
                let other = self.twin_block(p);
                let kind = match vote.kind {
                    VoteKind::Notarize(_) => VoteKind::Notarize(other),
                    _ => VoteKind::Nullify(w),
                };
                match self.sign_as(i, epoch, kind) {
                    Some(second) => self.split_send(i, epoch, &message, &Message::Vote(second)),
                    None => self.broadcast(i, epoch, &message),
                }
            }
            _ => self.broadcast(i, epoch, &message),
        }
    }

    /// Another valid block with the same parent, kind and set change.
    fn twin_block(&mut self, p: &Proposal) -> Proposal {
        let b = self.blocks[&p.payload].clone();
        self.new_block(
            b.epoch,
            p.view,
            p.parent_view,
            p.parent,
            height_of(&p.payload),
            b.kind,
            b.next,
            b.builder,
        )
    }

    fn split_send(&mut self, from: usize, epoch: Epoch, a: &Message, b: &Message) {
        for to in 0..POOL {
            if to == from {
                continue;
            }
            match self.net.rng.below(7) {
                0..=2 => self.send(from, to, epoch, a),
                3..=5 => self.send(from, to, epoch, b),
                _ => {
                    self.send(from, to, epoch, a);
                    self.send(from, to, epoch, b);
                }
            }
        }
        self.stats.byzantine_messages += 1;
    }

    fn broadcast(&mut self, from: usize, epoch: Epoch, message: &Message) {
        let bytes: Rc<[u8]> = EpochMessage {
            epoch,
            message: message.clone(),
        }
        .encode()
        .into();
        self.net.broadcast_bytes(from, POOL, bytes);
    }

    fn send(&mut self, from: usize, to: usize, epoch: Epoch, message: &Message) {
        let m = EpochMessage {
            epoch,
            message: message.clone(),
        };
        self.net.send_bytes(from, to, m.encode().into());
    }

    /// The counters, with those the network keeps.
    fn stats(&self) -> ReconfigStats {
        let c = &self.net.counters;
        ReconfigStats {
            steps: c.steps,
            dropped: c.dropped_loss + c.dropped_partition,
            crashes: c.crashes,
            crashes_mid_batch: c.crashes_mid_batch,
            restarts: c.restarts,
            ..self.stats.clone()
        }
    }

    fn report(&mut self) -> ReconfigReport {
        let honest: Vec<usize> = (0..POOL).filter(|i| self.honest(*i)).collect();
        if self.violation.is_none() {
            let ledgers: Vec<(usize, &[Digest])> = honest
                .iter()
                .map(|i| (*i, &self.nodes[*i].durable.committed[..]))
                .collect();
            if let Some((a, b)) = first_fork(&ledgers) {
                self.violate(
                    ReconfigViolationKind::ConflictingFinalization,
                    format!("node {a}'s ledger is not a prefix of node {b}'s"),
                );
            }
        }
        let mut hasher = self.net.hasher.clone();
        for x in &self.nodes {
            hasher.update(&x.durable.epoch.to_le_bytes());
            hasher.update(&(x.durable.committed.len() as u64).to_le_bytes());
        }
        ReconfigReport {
            config: self.cfg.clone(),
            scenario: self.sc.clone(),
            min_epoch: honest
                .iter()
                .map(|i| self.nodes[*i].durable.epoch)
                .min()
                .unwrap_or(0),
            min_height: honest
                .iter()
                .map(|i| self.nodes[*i].durable.committed.len() as u64)
                .min()
                .unwrap_or(0),
            time_ms: self.net.now,
            stats: self.stats(),
            event_hash: *hasher.finalize().as_bytes(),
            violation: self.violation.clone(),
        }
    }
}

fn brief(m: &Message) -> String {
    match m {
        Message::Vote(v) => match &v.kind {
            VoteKind::Notarize(p) => format!(
                "Notarize(v{} h{}) by {}",
                p.view,
                height_of(&p.payload),
                v.signer
            ),
            VoteKind::Nullify(w) => format!("Nullify(v{w}) by {}", v.signer),
            VoteKind::Finalize(p) => format!(
                "Finalize(v{} h{}) by {}",
                p.view,
                height_of(&p.payload),
                v.signer
            ),
        },
        Message::Certificate(c) => match &c.kind {
            CertificateKind::Notarization(p) => {
                format!("Notarization(v{} h{})", p.view, height_of(&p.payload))
            }
            CertificateKind::Nullification(w) => format!("Nullification(v{w})"),
            CertificateKind::Finalization(p) => {
                format!("Finalization(v{} h{})", p.view, height_of(&p.payload))
            }
        },
    }
}
