//! The deterministic fault simulator (feature `testing`; see `SIMULATOR.md`).
//!
//! [`run_seed`] drives `n` instances of the real [`Consensus`] machine — plus
//! a second instance for a Twins validator — through a fault schedule derived
//! from one `u64` seed ([`Scenario::generate`]):
//!
//! * **Network:** virtual time; per-link base latency and jitter; random loss
//!   (up to [`SimConfig::max_loss_permille`]), duplication and reordering;
//!   1–3 partitions (2 or 3 sides) that form and heal; messages in flight
//!   across a partition are lost.
//! * **Crashes:** honest validators crash and restart from what they
//!   persisted (WAL entries and the finalized chain); half of the crashes cut
//!   an output batch at a random point, so only a prefix of its effects
//!   (persists, sends) happened.
//! * **Validators** with unequal voting power; up to `f` of them Byzantine
//!   ([`Behaviour`]): equivocating leader, double voter, silent leader,
//!   votes for unknown/invalid blocks with bad signatures, Twins. An outsider
//!   injects messages from non-validators, forged certificates and garbage.
//! * **Mock app:** a block's payload encodes its height
//!   (`payload[..8] = parent height + 1`, little endian), the rest is a hash
//!   with a fresh salt per build; validation checks the block is known, its
//!   parent is known and the height is right.
//!
//! After every step it checks ([`ViolationKind`]): no two different blocks
//! finalized at the same height (or view) by honest nodes, every honest
//! finalized chain links up and is a prefix of the others, no honest
//! validator signs two conflicting votes in one view (across restarts),
//! honest messages are never rejected, every `Evidence` output verifies and
//! accuses a faulty validator, restarts from the WAL succeed, no panic.
//! Liveness: once the last partition healed and every crashed node restarted
//! (GST), every honest node finalizes [`SimConfig::liveness_heights`] more
//! heights within [`SimConfig::liveness_bound_ms`], and the run ends when all
//! honest nodes have at least [`SimConfig::min_heights`] heights.
//!
//! A run is a pure function of its [`SimConfig`]: same seed, same
//! [`SeedReport::event_hash`].

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ed25519_dalek::SigningKey;

use super::net::{
    Host, LinkModel, Net, OUTSIDER, SignedVotes, Slot, agree_at, agree_height, first_fork,
    gen_crashes, gen_partitions, gst_ms, judge_rejection, mock_genesis, mock_payload,
    panic_message,
};
use super::{BrokenVariant, SplitMix64, TEST_NAMESPACE, keys, test_config, validator_set};
use crate::{
    Anchor, Certificate, CertificateKind, Consensus, Digest, Evidence, Input, Message,
    MessageError, Output, Proposal, ValidatorIndex, ValidatorSet, View, Vote, VoteKind, WalEntry,
};

/// Default [`SimConfig::min_heights`].
pub const DEFAULT_MIN_HEIGHTS: u64 = 50;
/// Default [`SimConfig::liveness_heights`].
pub const DEFAULT_LIVENESS_HEIGHTS: u64 = 20;
/// Default [`SimConfig::liveness_bound_ms`].
pub const DEFAULT_LIVENESS_BOUND_MS: u64 = 120_000;
/// Default [`SimConfig::max_loss_permille`] (30 %).
pub const DEFAULT_MAX_LOSS_PERMILLE: u64 = 300;

/// What one simulated run is asked to do. Everything else is derived from
/// `seed` ([`Scenario::generate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed: the whole run is a function of it (and the fields below).
    pub seed: u64,
    /// Number of validators `n` (`f = (n - 1) / 3`).
    pub validators: usize,
    /// The run ends once every honest node finalized this many heights.
    pub min_heights: u64,
    /// Liveness: after GST every honest node finalizes this many more heights…
    pub liveness_heights: u64,
    /// …within this much virtual time (ms); otherwise a
    /// [`ViolationKind::Liveness`] violation.
    pub liveness_bound_ms: u64,
    /// Upper bound of the per-seed message loss rate, in ‰.
    pub max_loss_permille: u64,
    /// Whether up to `f` validators are Byzantine.
    pub byzantine: bool,
    /// Run a deliberately broken protocol on every instance.
    pub broken: Option<BrokenVariant>,
    /// Print every event and the effects it caused to stderr.
    pub trace: bool,
}

impl SimConfig {
    /// The defaults: 50 heights, 20 heights within 120 s after GST, loss up to
    /// 30 %, Byzantine validators on, no broken variant, no trace.
    pub fn new(seed: u64, validators: usize) -> SimConfig {
        SimConfig {
            seed,
            validators,
            min_heights: DEFAULT_MIN_HEIGHTS,
            liveness_heights: DEFAULT_LIVENESS_HEIGHTS,
            liveness_bound_ms: DEFAULT_LIVENESS_BOUND_MS,
            max_loss_permille: DEFAULT_MAX_LOSS_PERMILLE,
            byzantine: true,
            broken: None,
            trace: false,
        }
    }

    /// `f`: the number of faulty validators tolerated.
    pub fn faults_tolerated(&self) -> usize {
        self.validators.saturating_sub(1) / 3
    }

    /// The one-line command that replays this run (add `--trace` to see
    /// every event).
    pub fn replay_command(&self) -> String {
        let mut cmd = format!(
            "cargo run -p cairn-consensus --release --features testing --example sim -- --seed {} --validators {}",
            self.seed, self.validators
        );
        if let Some(b) = self.broken {
            cmd.push_str(&format!(" --broken {}", broken_name(b)));
        }
        if !self.byzantine {
            cmd.push_str(" --no-byzantine");
        }
        if self.min_heights != DEFAULT_MIN_HEIGHTS {
            cmd.push_str(&format!(" --heights {}", self.min_heights));
        }
        if self.liveness_heights != DEFAULT_LIVENESS_HEIGHTS {
            cmd.push_str(&format!(" --liveness-heights {}", self.liveness_heights));
        }
        if self.liveness_bound_ms != DEFAULT_LIVENESS_BOUND_MS {
            cmd.push_str(&format!(" --liveness-ms {}", self.liveness_bound_ms));
        }
        if self.max_loss_permille != DEFAULT_MAX_LOSS_PERMILLE {
            cmd.push_str(&format!(" --max-loss {}", self.max_loss_permille));
        }
        cmd
    }
}

/// Command-line name of a broken variant (`weak-quorum`, `no-persist`,
/// `ignore-parent`; the epoch variants `wrong-epoch-cert` and `early-switch`
/// only matter in the reconfiguration simulator, `testing::reconfig`).
pub fn broken_name(b: BrokenVariant) -> &'static str {
    match b {
        BrokenVariant::WeakQuorum => "weak-quorum",
        BrokenVariant::VoteNotPersisted => "no-persist",
        BrokenVariant::IgnoreParentRule => "ignore-parent",
        BrokenVariant::AcceptPreviousEpochCertificates => "wrong-epoch-cert",
        BrokenVariant::SwitchOnNotarization => "early-switch",
    }
}

/// Inverse of [`broken_name`].
pub fn parse_broken(name: &str) -> Option<BrokenVariant> {
    [
        BrokenVariant::WeakQuorum,
        BrokenVariant::VoteNotPersisted,
        BrokenVariant::IgnoreParentRule,
    ]
    .into_iter()
    .find(|b| broken_name(*b) == name)
}

/// How a Byzantine validator misbehaves. Its host runs the real machine and
/// rewrites what it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    /// As leader, proposes two different valid blocks in one view and sends
    /// one to some peers, the other to the rest (some get both).
    Equivocate,
    /// Sends conflicting votes to different peers: a second Notarize for
    /// another block, a Nullify or a second Finalize next to its Finalize.
    DoubleVote,
    /// Never sends its proposals.
    SilentLeader,
    /// Proposes invalid or unknown blocks (unknown payload, wrong height,
    /// un-notarized parent), votes for unknown blocks in the current and
    /// future views, and sends copies of its votes with corrupted signatures.
    InvalidVotes,
    /// Two honest instances share its key; partitions put them on different
    /// sides.
    Twins,
}

impl Behaviour {
    /// Every behaviour.
    pub const ALL: [Behaviour; 5] = [
        Behaviour::Equivocate,
        Behaviour::DoubleVote,
        Behaviour::SilentLeader,
        Behaviour::InvalidVotes,
        Behaviour::Twins,
    ];
}

/// A partition: from `start_ms` to `end_ms` instances on different sides
/// cannot reach each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Forms at (virtual ms).
    pub start_ms: u64,
    /// Heals at.
    pub end_ms: u64,
    /// Side of every instance (index = instance).
    pub side: Vec<u8>,
}

/// A crash of an honest instance and its restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashPlan {
    /// Instance index.
    pub instance: usize,
    /// Crash time.
    pub at_ms: u64,
    /// Restart time.
    pub restart_ms: u64,
    /// Crash in the middle of the next output batch instead of between
    /// batches: only a random prefix of the batch is performed.
    pub mid_batch: bool,
}

/// The fault schedule of one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Voting power per validator.
    pub powers: Vec<u64>,
    /// Byzantine validators (at most `f`, power within the safety bound).
    pub faulty: BTreeMap<ValidatorIndex, Behaviour>,
    /// Validator of every instance (`0..n`, then the Twins' second instance).
    pub instances: Vec<ValidatorIndex>,
    /// Per-copy loss probability (‰).
    pub loss_permille: u64,
    /// Per-copy duplication probability (‰).
    pub dup_permille: u64,
    /// Per-copy probability (‰) of an extra delay of up to 400 ms (reordering).
    pub reorder_permille: u64,
    /// Base latency `[from][to]` in ms.
    pub latency_ms: Vec<Vec<u64>>,
    /// Uniform jitter added to every copy, `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Delay of the mock app's answers.
    pub app_delay_ms: u64,
    /// Partitions, in time order, not overlapping.
    pub partitions: Vec<Partition>,
    /// Crashes of honest instances.
    pub crashes: Vec<CrashPlan>,
    /// Global stabilization time: the last partition healed and every
    /// crashed instance restarted.
    pub gst_ms: u64,
    /// Mean interval between outsider injections.
    pub outsider_interval_ms: u64,
}

impl Scenario {
    /// Derives the schedule from `cfg.seed` (independently of how the run
    /// unfolds).
    pub fn generate(cfg: &SimConfig) -> Scenario {
        let n = cfg.validators;
        assert!(n >= 1, "at least one validator");
        let f = cfg.faults_tolerated();
        let mut rng = SplitMix64::new(cfg.seed ^ 0x5CE7_A210_C0FF_EE00);
        let powers = gen_powers(n, f, &mut rng);

        let mut faulty = BTreeMap::new();
        if cfg.byzantine && f > 0 {
            let k = if rng.below(4) < 3 {
                f
            } else {
                rng.below(f as u64 + 1) as usize
            };
            let mut candidates: Vec<ValidatorIndex> = (0..n as ValidatorIndex).collect();
            for _ in 0..k {
                let v = candidates.remove(rng.below(candidates.len() as u64) as usize);
                let mut b = Behaviour::ALL[rng.below(5) as usize];
                if b == Behaviour::Twins && faulty.values().any(|x| *x == Behaviour::Twins) {
                    b = Behaviour::ALL[rng.below(4) as usize];
                }
                faulty.insert(v, b);
            }
        }
        let mut instances: Vec<ValidatorIndex> = (0..n as ValidatorIndex).collect();
        let twin = faulty
            .iter()
            .find(|(_, b)| **b == Behaviour::Twins)
            .map(|(v, _)| *v);
        if let Some(t) = twin {
            instances.push(t);
        }
        let m = instances.len();

        let link = LinkModel::generate(&mut rng, m, cfg.max_loss_permille);

        let (chaos_ms, windows) = gen_partitions(&mut rng, |rng| {
            let sides = if m >= 3 && rng.below(4) == 0 { 3 } else { 2 };
            let mut side: Vec<u8> = (0..m).map(|_| rng.below(sides) as u8).collect();
            if side.iter().all(|s| *s == side[0]) {
                let i = rng.below(m as u64) as usize;
                side[i] = (side[i] + 1) % sides as u8;
            }
            if let Some(t) = twin {
                // The Twins' instances always sit on different sides.
                let other = (side[t as usize] as u64 + 1 + rng.below(sides - 1)) % sides;
                side[m - 1] = other as u8;
            }
            side
        });
        let partitions: Vec<Partition> = windows
            .into_iter()
            .map(|(start_ms, end_ms, side)| Partition {
                start_ms,
                end_ms,
                side,
            })
            .collect();

        let honest: Vec<usize> = (0..m)
            .filter(|i| !faulty.contains_key(&instances[*i]))
            .collect();
        let crashes: Vec<CrashPlan> = gen_crashes(&mut rng, &honest, chaos_ms)
            .into_iter()
            .map(|(instance, at_ms, restart_ms, mid_batch)| CrashPlan {
                instance,
                at_ms,
                restart_ms,
                mid_batch,
            })
            .collect();
        let gst_ms = gst_ms(
            partitions.iter().map(|p| p.end_ms),
            crashes.iter().map(|c| c.restart_ms),
        );
        Scenario {
            powers,
            faulty,
            instances,
            loss_permille: link.loss_permille,
            dup_permille: link.dup_permille,
            reorder_permille: link.reorder_permille,
            latency_ms: link.latency_ms,
            jitter_ms: link.jitter_ms,
            app_delay_ms: link.app_delay_ms,
            partitions,
            crashes,
            gst_ms,
            outsider_interval_ms: 150 + rng.below(850),
        }
    }
}

/// Unequal powers (1..=9, not all equal) such that any `f` validators may fail: with `B`
/// the power of the `f` heaviest, `total - B >= quorum` (liveness) and
/// `2 * quorum - total > B` (two quorums share more than `B`: safety).
fn gen_powers(n: usize, f: usize, rng: &mut SplitMix64) -> Vec<u64> {
    loop {
        let powers: Vec<u64> = (0..n).map(|_| 1 + rng.below(9)).collect();
        let total: u64 = powers.iter().sum();
        let quorum = total * 2 / 3 + 1;
        let mut sorted = powers.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let worst: u64 = sorted[..f].iter().sum();
        let unequal = n == 1 || powers.iter().any(|p| *p != powers[0]);
        if unequal && total - worst >= quorum && 2 * quorum > total + worst {
            return powers;
        }
    }
}

/// Which invariant a run broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViolationKind {
    /// Two honest nodes finalized different blocks at one height (or view),
    /// or a node finalized a block that does not extend its previous one.
    ConflictingFinalization,
    /// A finalized chain does not link up (unknown parent, wrong height,
    /// finalized view not increasing).
    BrokenChain,
    /// An honest validator signed two conflicting votes in one view.
    DoubleSign,
    /// An honest message was rejected as a peer fault, or an app answer as
    /// host misuse.
    HonestRejected,
    /// An `Evidence` output does not verify or accuses an honest validator.
    BadEvidence,
    /// `Consensus::new` refused an honest node's own WAL.
    RestartFailed,
    /// Honest nodes did not finalize enough heights in time after GST.
    Liveness,
    /// The machine (or the harness) panicked.
    Panic,
}

/// The first invariant violation of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub kind: ViolationKind,
    /// Virtual time.
    pub at_ms: u64,
    /// Step number (events processed).
    pub step: u64,
    /// Human-readable details.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} at {} ms (step {}): {}",
            self.kind, self.at_ms, self.step, self.detail
        )
    }
}

/// Counters of one run (summed in a [`Summary`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events processed.
    pub steps: u64,
    /// Message copies delivered to a running instance.
    pub delivered: u64,
    /// Copies lost to random loss.
    pub dropped_loss: u64,
    /// Copies lost to partitions (at send or delivery time).
    pub dropped_partition: u64,
    /// Extra copies (duplication).
    pub duplicated: u64,
    /// Copies given an extra delay (reordering).
    pub reordered: u64,
    /// Partitions formed.
    pub partitions: u64,
    /// Crashes (including mid-batch ones).
    pub crashes: u64,
    /// Crashes that cut an output batch.
    pub crashes_mid_batch: u64,
    /// Restarts from the WAL.
    pub restarts: u64,
    /// Messages sent or withheld by Byzantine hosts beyond honest behaviour.
    pub byzantine_messages: u64,
    /// Messages injected by the outsider.
    pub outsider_messages: u64,
    /// Peer-fault rejections at honest nodes.
    pub rejected: u64,
    /// `Evidence` outputs at honest nodes.
    pub evidence: u64,
    /// Timer expiries fed to machines.
    pub timeouts: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.delivered += o.delivered;
        self.dropped_loss += o.dropped_loss;
        self.dropped_partition += o.dropped_partition;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.partitions += o.partitions;
        self.crashes += o.crashes;
        self.crashes_mid_batch += o.crashes_mid_batch;
        self.restarts += o.restarts;
        self.byzantine_messages += o.byzantine_messages;
        self.outsider_messages += o.outsider_messages;
        self.rejected += o.rejected;
        self.evidence += o.evidence;
        self.timeouts += o.timeouts;
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct SeedReport {
    /// What was run.
    pub config: SimConfig,
    /// The derived schedule.
    pub scenario: Scenario,
    /// Lowest finalized height among honest nodes at the end.
    pub min_height: u64,
    /// Highest view reached by an honest node.
    pub max_view: View,
    /// Virtual time at the end (ms).
    pub time_ms: u64,
    /// Worst time after GST an honest node took to finalize
    /// `liveness_heights` more heights (`None` if GST was not reached).
    pub liveness_ms: Option<u64>,
    /// Counters.
    pub stats: Stats,
    /// blake3 over every processed event: equal for equal configs.
    pub event_hash: [u8; 32],
    /// The first violation, if any (the run stops there).
    pub violation: Option<Violation>,
}

impl SeedReport {
    /// No violation.
    pub fn ok(&self) -> bool {
        self.violation.is_none()
    }

    /// One line: seed, result, heights, faults.
    pub fn one_line(&self) -> String {
        let s = &self.stats;
        let byz: Vec<String> = self
            .scenario
            .faulty
            .iter()
            .map(|(v, b)| format!("{v}:{b:?}"))
            .collect();
        format!(
            "seed {} n={} {}: heights>={} views<={} t={}ms gst={}ms live={} loss={}‰ partitions={} crashes={} (mid-batch {}) byzantine=[{}] evidence={} rejected={} hash={}",
            self.config.seed,
            self.config.validators,
            if self.ok() { "ok" } else { "FAILED" },
            self.min_height,
            self.max_view,
            self.time_ms,
            self.scenario.gst_ms,
            self.liveness_ms
                .map_or_else(|| "-".to_string(), |l| format!("{l}ms")),
            self.scenario.loss_permille,
            s.partitions,
            s.crashes,
            s.crashes_mid_batch,
            byz.join(","),
            s.evidence,
            s.rejected,
            hex::encode(&self.event_hash[..8]),
        )
    }

    /// For a failed run: the seed, the violation and the replay command.
    pub fn failure_message(&self) -> String {
        match &self.violation {
            None => format!("seed {} passed", self.config.seed),
            Some(v) => format!(
                "simulation FAILED: seed {} (n={}): {v}\n  replay: {}",
                self.config.seed,
                self.config.validators,
                self.config.replay_command()
            ),
        }
    }
}

/// Runs one seed to completion (or to its first violation). Never panics:
/// a panic inside becomes a [`ViolationKind::Panic`] violation.
pub fn run_seed(cfg: &SimConfig) -> SeedReport {
    let mut sim = Sim::new(cfg.clone());
    let outcome = catch_unwind(AssertUnwindSafe(|| sim.run()));
    if let Err(panic) = outcome {
        let msg = panic_message(panic);
        sim.violation = Some(Violation {
            kind: ViolationKind::Panic,
            at_ms: sim.net.now,
            step: sim.net.counters.steps,
            detail: msg,
        });
    }
    sim.report()
}

/// Aggregate over many seeds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Sum over seeds of the lowest honest finalized height.
    pub heights: u64,
    /// Lowest such height of any seed (`u64::MAX` before the first).
    pub min_height: Option<u64>,
    /// Total virtual time (ms).
    pub virtual_ms: u64,
    /// Worst post-GST liveness time seen (ms).
    pub worst_liveness_ms: u64,
    /// Every seed's post-GST liveness time (ms), for percentiles.
    pub liveness_ms: Vec<u64>,
    /// Summed counters.
    pub stats: Stats,
    /// Seeds per Byzantine behaviour.
    pub behaviours: BTreeMap<Behaviour, u64>,
    /// Seeds per broken-out violation kind.
    pub violations: BTreeMap<ViolationKind, u64>,
    /// Failed seeds (up to 20 kept), with their messages.
    pub failures: Vec<(u64, String)>,
}

impl Summary {
    /// Adds one seed's report.
    pub fn add(&mut self, r: &SeedReport) {
        self.seeds += 1;
        self.heights += r.min_height;
        self.min_height = Some(
            self.min_height
                .map_or(r.min_height, |m| m.min(r.min_height)),
        );
        self.virtual_ms += r.time_ms;
        self.worst_liveness_ms = self.worst_liveness_ms.max(r.liveness_ms.unwrap_or(0));
        if let Some(l) = r.liveness_ms {
            self.liveness_ms.push(l);
        }
        self.stats.add(&r.stats);
        for b in r.scenario.faulty.values() {
            *self.behaviours.entry(*b).or_default() += 1;
        }
        if let Some(v) = &r.violation {
            *self.violations.entry(v.kind).or_default() += 1;
            if self.failures.len() < 20 {
                self.failures.push((r.config.seed, r.failure_message()));
            }
        }
    }

    /// Number of failed seeds.
    pub fn failed(&self) -> u64 {
        self.violations.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(f, "seeds run:          {}", self.seeds)?;
        writeln!(
            f,
            "heights finalized:  {} (lowest honest height per seed: min {}, mean {:.1})",
            self.heights,
            self.min_height.unwrap_or(0),
            self.heights as f64 / self.seeds.max(1) as f64
        )?;
        let mut live = self.liveness_ms.clone();
        live.sort_unstable();
        let pct = |p: usize| {
            live.get((live.len() * p / 100).min(live.len().saturating_sub(1)))
                .map_or(0.0, |ms| *ms as f64 / 1000.0)
        };
        writeln!(
            f,
            "virtual time:       {:.1} s total; time for 20 heights after GST: p50 {:.1} s, \
             p99 {:.1} s, max {:.1} s",
            self.virtual_ms as f64 / 1000.0,
            pct(50),
            pct(99),
            self.worst_liveness_ms as f64 / 1000.0
        )?;
        writeln!(f, "events processed:   {}", s.steps)?;
        writeln!(
            f,
            "faults injected:    {} partitions, {} crashes ({} mid-batch), {} restarts, \
             {} copies lost, {} cut by partitions, {} duplicated, {} reordered",
            s.partitions,
            s.crashes,
            s.crashes_mid_batch,
            s.restarts,
            s.dropped_loss,
            s.dropped_partition,
            s.duplicated,
            s.reordered
        )?;
        let byz: Vec<String> = self
            .behaviours
            .iter()
            .map(|(b, c)| format!("{b:?} {c}"))
            .collect();
        writeln!(
            f,
            "byzantine:          validators [{}]; {} byzantine messages, {} outsider messages, \
             {} rejected by honest nodes, {} evidence records",
            byz.join(", "),
            s.byzantine_messages,
            s.outsider_messages,
            s.rejected,
            s.evidence
        )?;
        let v: Vec<String> = self
            .violations
            .iter()
            .map(|(k, c)| format!("{k:?} {c}"))
            .collect();
        writeln!(
            f,
            "violations:         {} seeds failed{}",
            self.failed(),
            if v.is_empty() {
                String::new()
            } else {
                format!(" [{}]", v.join(", "))
            }
        )?;
        for (_, msg) in &self.failures {
            writeln!(f, "{msg}")?;
        }
        Ok(())
    }
}

/// Runs `seeds` on `threads` threads (seeds are independent; the summary
/// adds reports in seed order). With `stop_on_failure`, seeds above the
/// lowest failing one are skipped — the lowest failing seed is still found
/// deterministically. `progress` is called with each report as it finishes.
pub fn run_many(
    base: &SimConfig,
    seeds: std::ops::Range<u64>,
    threads: usize,
    stop_on_failure: bool,
    progress: &(dyn Fn(&SeedReport) + Sync),
) -> Summary {
    let next = AtomicU64::new(seeds.start);
    let stop_at = AtomicU64::new(u64::MAX);
    let reports: Mutex<BTreeMap<u64, SeedReport>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= seeds.end || seed > stop_at.load(Ordering::SeqCst) {
                        break;
                    }
                    let cfg = SimConfig {
                        seed,
                        ..base.clone()
                    };
                    let report = run_seed(&cfg);
                    if stop_on_failure && !report.ok() {
                        stop_at.fetch_min(seed, Ordering::SeqCst);
                    }
                    progress(&report);
                    reports.lock().expect("no poisoning").insert(seed, report);
                }
            });
        }
    });
    let stop = stop_at.load(Ordering::SeqCst);
    let mut summary = Summary::default();
    for (seed, r) in reports.into_inner().expect("no poisoning") {
        if seed <= stop {
            summary.add(&r);
        }
    }
    summary
}

/// The simulator's genesis: height 0.
pub fn sim_genesis() -> Anchor {
    mock_genesis(b"cairn sim genesis")
}

/// Height encoded in a mock-app payload (genesis = 0).
pub fn height_of(payload: &Digest) -> u64 {
    u64::from_le_bytes(payload.0[..8].try_into().expect("8 bytes"))
}

struct Inst {
    validator: ValidatorIndex,
    behaviour: Option<Behaviour>,
    config: crate::Config,
    slot: Slot<Consensus>,
    wal: Vec<WalEntry>,
    anchor: Anchor,
    /// `chain[h - 1]` = payload finalized at height `h`.
    chain: Vec<Digest>,
    signed: BTreeMap<View, SignedVotes>,
    height_at_gst: u64,
    live_after_ms: Option<u64>,
    max_view: View,
}

impl Inst {
    fn honest(&self) -> bool {
        self.behaviour.is_none()
    }
}

struct Sim {
    cfg: SimConfig,
    scenario: Scenario,
    set: ValidatorSet,
    keys: Vec<SigningKey>,
    outsider_key: SigningKey,
    genesis: Anchor,
    insts: Vec<Inst>,
    net: Net<Input>,
    blocks: BTreeMap<Digest, Proposal>,
    salt: u64,
    /// First payload any honest node finalized at each height / view.
    canonical: Vec<Digest>,
    canonical_views: BTreeMap<View, Digest>,
    stats: Stats,
    violation: Option<Violation>,
    gst: Option<u64>,
    deadline_live: u64,
    deadline_total: u64,
}

fn brief(m: &Message) -> String {
    fn p(p: &Proposal) -> String {
        format!(
            "v{}<-v{} h{} {}",
            p.view,
            p.parent_view,
            height_of(&p.payload),
            &hex::encode(&p.payload.0[8..11])
        )
    }
    match m {
        Message::Vote(v) => match &v.kind {
            VoteKind::Notarize(x) => format!("Notarize({}) by {}", p(x), v.signer),
            VoteKind::Nullify(w) => format!("Nullify(v{w}) by {}", v.signer),
            VoteKind::Finalize(x) => format!("Finalize({}) by {}", p(x), v.signer),
        },
        Message::Certificate(c) => {
            let signers: Vec<u16> = c.signatures.iter().map(|s| s.0).collect();
            match &c.kind {
                CertificateKind::Notarization(x) => format!("Notarization({}) {signers:?}", p(x)),
                CertificateKind::Nullification(w) => format!("Nullification(v{w}) {signers:?}"),
                CertificateKind::Finalization(x) => format!("Finalization({}) {signers:?}", p(x)),
            }
        }
    }
}

impl Host for Sim {
    type App = Input;
    type Machine = Consensus;
    const TRACE_FAULTS: bool = true;

    fn net(&mut self) -> &mut Net<Input> {
        &mut self.net
    }

    fn node_count(&self) -> usize {
        self.insts.len()
    }

    fn slot(&mut self, i: usize) -> &mut Slot<Consensus> {
        &mut self.insts[i].slot
    }

    fn crash_plan(&self, j: usize) -> (usize, bool) {
        let plan = &self.scenario.crashes[j];
        (plan.instance, plan.mid_batch)
    }

    fn finished(&self) -> bool {
        self.violation.is_some() || self.done()
    }

    fn ran_dry(&mut self) {
        self.violate(ViolationKind::Liveness, "event queue ran dry".into());
    }

    fn restart(&mut self, i: usize) {
        let x = &mut self.insts[i];
        let anchor = x.anchor;
        x.wal.retain(|e| e.view() > anchor.view);
        match Consensus::new(x.config.clone(), anchor, &x.wal) {
            Ok(mut machine) => {
                machine.set_broken_variant(self.cfg.broken);
                let out = machine.start(self.net.now);
                let view = machine.view();
                x.slot.start(machine, &mut self.net.counters);
                self.net.trace(|| {
                    format!(
                        "node {i} (re)starts at view {view}, anchor view {}",
                        anchor.view
                    )
                });
                self.apply(i, out);
            }
            Err(e) => self.violate(
                ViolationKind::RestartFailed,
                format!("node {i} cannot restart from its WAL: {e}"),
            ),
        }
    }

    fn deliver(&mut self, from: usize, to: usize, bytes: Rc<[u8]>) {
        self.stats.delivered += 1;
        match Message::decode(&bytes) {
            Ok(message) => {
                self.net
                    .trace(|| format!("{from:>2} -> {to:<2} {}", brief(&message)));
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
        self.stats.timeouts += 1;
        self.net.trace(|| format!("timer of {node}"));
        self.feed(
            node,
            Input::Timeout {
                now_ms: self.net.now,
            },
            None,
        );
    }

    fn answer(&mut self, node: usize, input: Input) {
        let bytes = match &input {
            Input::Proposed { view, payload, .. } => {
                let mut b = view.to_le_bytes().to_vec();
                b.extend_from_slice(&payload.0);
                b
            }
            Input::Validated {
                proposal, valid, ..
            } => {
                let mut b = borsh::to_vec(proposal).expect("vec");
                b.push(u8::from(*valid));
                b
            }
            _ => Vec::new(),
        };
        self.net.hash_event(3, node as u64, 0, &bytes);
        self.net
            .trace(|| format!("app answer to {node}: {input:?}"));
        self.feed(node, input, None);
    }

    fn inject_outsider(&mut self) {
        self.send_outsider_message();
    }

    fn outsider_gap(&self) -> u64 {
        self.scenario.outsider_interval_ms * 2
    }

    fn on_gst(&mut self) {
        for x in &mut self.insts {
            x.height_at_gst = x.chain.len() as u64;
        }
        let honest = self.honest_indices();
        let lowest = honest
            .iter()
            .map(|i| self.insts[*i].height_at_gst)
            .min()
            .unwrap_or(0);
        let needed = self
            .cfg
            .min_heights
            .saturating_sub(lowest)
            .max(self.cfg.liveness_heights);
        let rounds = needed.div_ceil(self.cfg.liveness_heights.max(1));
        self.gst = Some(self.net.now);
        self.deadline_live = self.net.now + self.cfg.liveness_bound_ms;
        self.deadline_total = self.net.now + self.cfg.liveness_bound_ms * rounds;
        self.net
            .trace(|| "GST: all partitions healed, all nodes up".into());
    }

    fn after_step(&mut self) {
        self.check_deadlines();
    }
}

impl Sim {
    fn new(cfg: SimConfig) -> Sim {
        let scenario = Scenario::generate(&cfg);
        let n = cfg.validators;
        let all_keys = keys(n + 1);
        let keys: Vec<SigningKey> = all_keys[..n].to_vec();
        let outsider_key = all_keys[n].clone();
        let set = validator_set(&keys, &scenario.powers);
        let genesis = sim_genesis();
        let insts = scenario
            .instances
            .iter()
            .map(|v| Inst {
                validator: *v,
                behaviour: scenario.faulty.get(v).copied(),
                config: test_config(set.clone(), Some(keys[*v as usize].clone())),
                slot: Slot::new(),
                wal: Vec::new(),
                anchor: genesis,
                chain: Vec::new(),
                signed: BTreeMap::new(),
                height_at_gst: 0,
                live_after_ms: None,
                max_view: 0,
            })
            .collect();
        let link = LinkModel {
            loss_permille: scenario.loss_permille,
            dup_permille: scenario.dup_permille,
            reorder_permille: scenario.reorder_permille,
            latency_ms: scenario.latency_ms.clone(),
            jitter_ms: scenario.jitter_ms,
            app_delay_ms: scenario.app_delay_ms,
        };
        let sides = scenario.partitions.iter().map(|p| p.side.clone()).collect();
        let net = Net::new(
            SplitMix64::new(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0123_4567),
            link,
            sides,
            cfg.trace,
        );
        Sim {
            cfg,
            scenario,
            set,
            keys,
            outsider_key,
            genesis,
            insts,
            net,
            blocks: BTreeMap::new(),
            salt: 0,
            canonical: Vec::new(),
            canonical_views: BTreeMap::new(),
            stats: Stats::default(),
            violation: None,
            gst: None,
            deadline_live: u64::MAX,
            deadline_total: u64::MAX,
        }
    }

    fn violate(&mut self, kind: ViolationKind, detail: String) {
        if self.violation.is_none() {
            self.net.trace(|| format!("VIOLATION {kind:?}: {detail}"));
            self.violation = Some(Violation {
                kind,
                at_ms: self.net.now,
                step: self.net.counters.steps,
                detail,
            });
        }
    }

    fn honest_indices(&self) -> Vec<usize> {
        (0..self.insts.len())
            .filter(|i| self.insts[*i].honest())
            .collect()
    }

    fn run(&mut self) {
        let partitions: Vec<(u64, u64)> = self
            .scenario
            .partitions
            .iter()
            .map(|p| (p.start_ms, p.end_ms))
            .collect();
        let crashes: Vec<(u64, u64)> = self
            .scenario
            .crashes
            .iter()
            .map(|c| (c.at_ms, c.restart_ms))
            .collect();
        let first = self.net.rng.below(self.scenario.outsider_interval_ms * 2);
        self.net
            .schedule_faults(&partitions, &crashes, first, self.scenario.gst_ms);
        self.run_loop();
    }

    fn done(&self) -> bool {
        self.gst.is_some()
            && self.insts.iter().filter(|x| x.honest()).all(|x| {
                x.chain.len() as u64
                    >= self
                        .cfg
                        .min_heights
                        .max(x.height_at_gst + self.cfg.liveness_heights)
            })
    }

    fn check_deadlines(&mut self) {
        if self.net.now > self.deadline_live {
            let late: Vec<String> = self
                .insts
                .iter()
                .enumerate()
                .filter(|(_, x)| {
                    x.honest()
                        && (x.chain.len() as u64) < x.height_at_gst + self.cfg.liveness_heights
                })
                .map(|(i, x)| {
                    format!(
                        "node {i} at height {} (was {} at GST)",
                        x.chain.len(),
                        x.height_at_gst
                    )
                })
                .collect();
            if !late.is_empty() {
                self.violate(
                    ViolationKind::Liveness,
                    format!(
                        "{} heights not finalized within {} ms after GST ({} ms): {}",
                        self.cfg.liveness_heights,
                        self.cfg.liveness_bound_ms,
                        self.gst.unwrap_or(0),
                        late.join("; ")
                    ),
                );
                return;
            }
            self.deadline_live = u64::MAX;
        }
        if self.net.now > self.deadline_total {
            let heights: Vec<usize> = self
                .insts
                .iter()
                .filter(|x| x.honest())
                .map(|x| x.chain.len())
                .collect();
            self.violate(
                ViolationKind::Liveness,
                format!(
                    "{} heights not reached by {} ms (honest heights {heights:?})",
                    self.cfg.min_heights, self.deadline_total
                ),
            );
        }
    }

    fn feed(&mut self, i: usize, input: Input, from: Option<usize>) {
        let machine = self.insts[i].slot.machine.as_mut().expect("running");
        match machine.handle(input) {
            Ok(out) => self.apply(i, out),
            Err(e) => self.on_error(i, from, e),
        }
    }

    fn on_error(&mut self, i: usize, from: Option<usize>, e: MessageError) {
        if !self.insts[i].honest() {
            return;
        }
        self.net
            .trace(|| format!("node {i} rejects (from {from:?}): {e}"));
        let honest_sender = from.filter(|f| *f != OUTSIDER && self.insts[*f].honest());
        if let Some(detail) = judge_rejection(i, honest_sender, &e, &e, &mut self.stats.rejected) {
            self.violate(ViolationKind::HonestRejected, detail);
        }
    }

    fn apply(&mut self, i: usize, outputs: Vec<Output>) {
        let cut = self.batch_cut(i, outputs.len());
        for (k, output) in outputs.into_iter().enumerate() {
            if cut == Some(k) {
                break;
            }
            self.perform(i, output);
        }
        if let Some(k) = cut {
            self.crash_mid_batch(i, k, " of its batch");
        }
    }

    fn perform(&mut self, i: usize, output: Output) {
        let honest = self.insts[i].honest();
        match output {
            Output::Persist(entry) => {
                let WalEntry::Voted(vote) = &entry;
                if honest {
                    self.record_signed(i, vote);
                }
                self.insts[i].wal.push(entry);
            }
            Output::Broadcast(message) => {
                if honest {
                    if let Message::Vote(v) = &message {
                        if v.signer == self.insts[i].validator {
                            self.record_signed(i, v);
                        }
                    }
                    self.broadcast(i, &message);
                } else {
                    self.byzantine_broadcast(i, message);
                }
            }
            Output::SetTimer { deadline_ms } => {
                let generation = self.insts[i].slot.next_timer();
                self.net.set_timer(i, generation, deadline_ms);
            }
            Output::BuildProposal {
                view,
                parent_view,
                parent,
            } => {
                let p = self.build_block(view, parent_view, parent, height_of(&parent) + 1);
                self.net.trace(|| {
                    format!(
                        "node {i} builds v{view} on v{parent_view} (h{})",
                        height_of(&p.payload)
                    )
                });
                let incarnation = self.insts[i].slot.incarnation;
                self.net
                    .schedule_app(i, incarnation, |now_ms| Input::Proposed {
                        view,
                        payload: p.payload,
                        now_ms,
                    });
            }
            Output::Validate(p) => {
                let valid = self.app_valid(&p);
                let incarnation = self.insts[i].slot.incarnation;
                self.net
                    .schedule_app(i, incarnation, |now_ms| Input::Validated {
                        proposal: p,
                        valid,
                        now_ms,
                    });
            }
            Output::Notarized(_) => {}
            Output::Finalized(cert) => {
                if honest {
                    self.on_finalized(i, cert);
                }
            }
            Output::ViewChanged { view } => {
                let x = &mut self.insts[i];
                x.max_view = x.max_view.max(view);
            }
            Output::Evidence(evidence) => self.on_evidence(i, evidence),
        }
    }

    /// I1–I4 across restarts: the host remembers every vote an honest
    /// validator ever persisted or sent.
    fn record_signed(&mut self, i: usize, vote: &Vote) {
        let w = vote.kind.view();
        let conflict = self.insts[i]
            .signed
            .entry(w)
            .or_default()
            .record(&vote.kind);
        if let Some(what) = conflict {
            let incarnation = self.insts[i].slot.incarnation;
            self.violate(
                ViolationKind::DoubleSign,
                format!(
                    "honest validator {} (node {i}, incarnation {incarnation}) signed {what} in view {w}",
                    vote.signer
                ),
            );
        }
    }

    fn on_evidence(&mut self, i: usize, evidence: Evidence) {
        if !self.insts[i].honest() {
            return;
        }
        self.stats.evidence += 1;
        let accused = evidence.signer();
        self.net.trace(|| {
            format!(
                "node {i} reports evidence against {accused}: {:?} in view {}",
                evidence.equivocation(),
                evidence.view()
            )
        });
        if let Err(e) = evidence.verify(&TEST_NAMESPACE, &self.set) {
            self.violate(
                ViolationKind::BadEvidence,
                format!("node {i} emitted evidence that does not verify: {e}"),
            );
        } else if Evidence::decode(&evidence.encode()).as_ref() != Ok(&evidence) {
            self.violate(
                ViolationKind::BadEvidence,
                "evidence codec round trip".into(),
            );
        } else if !self.scenario.faulty.contains_key(&accused) {
            self.violate(
                ViolationKind::BadEvidence,
                format!(
                    "node {i} accused honest validator {accused} (view {})",
                    evidence.view()
                ),
            );
        }
    }

    /// Walks the newly finalized blocks (down to the node's previous
    /// anchor), checks they link up with the right heights, and that every
    /// height / view agrees with what any honest node finalized there.
    fn on_finalized(&mut self, i: usize, cert: Certificate) {
        let CertificateKind::Finalization(p) = cert.kind else {
            self.violate(
                ViolationKind::BrokenChain,
                format!("node {i}: Finalized without a finalization"),
            );
            return;
        };
        let anchor = self.insts[i].anchor;
        if p.view <= anchor.view {
            self.violate(
                ViolationKind::BrokenChain,
                format!(
                    "node {i}: finalized view {} not above {}",
                    p.view, anchor.view
                ),
            );
            return;
        }
        let mut new = vec![p];
        let mut cur = p;
        while cur.parent_view > anchor.view {
            match self.blocks.get(&cur.parent) {
                Some(q) if q.view == cur.parent_view => {
                    new.push(*q);
                    cur = *q;
                }
                _ => {
                    self.violate(
                        ViolationKind::BrokenChain,
                        format!(
                            "node {i}: unknown parent {} of finalized view {}",
                            cur.parent, cur.view
                        ),
                    );
                    return;
                }
            }
        }
        if cur.parent_view != anchor.view || cur.parent != anchor.payload {
            self.violate(
                ViolationKind::ConflictingFinalization,
                format!(
                    "node {i}: finalized block of view {} (height {}) does not extend its previous \
                     finalized block (view {}, height {})",
                    p.view,
                    height_of(&p.payload),
                    anchor.view,
                    self.insts[i].chain.len()
                ),
            );
            return;
        }
        for b in new.iter().rev() {
            let h = self.insts[i].chain.len() as u64 + 1;
            if height_of(&b.payload) != h {
                self.violate(
                    ViolationKind::BrokenChain,
                    format!(
                        "node {i}: block of view {} encodes height {} but is finalized at height {h}",
                        b.view,
                        height_of(&b.payload)
                    ),
                );
                return;
            }
            if let Err(d) = agree_height(&mut self.canonical, h, b.payload) {
                self.violate(
                    ViolationKind::ConflictingFinalization,
                    format!(
                        "height {h}: node {i} finalized {} (view {}), another honest node finalized {d}",
                        b.payload, b.view
                    ),
                );
                return;
            }
            if let Err(d) = agree_at(&mut self.canonical_views, b.view, b.payload) {
                self.violate(
                    ViolationKind::ConflictingFinalization,
                    format!(
                        "view {}: node {i} finalized {}, another honest node {d}",
                        b.view, b.payload
                    ),
                );
                return;
            }
            self.insts[i].chain.push(b.payload);
        }
        self.insts[i].anchor = Anchor {
            view: p.view,
            payload: p.payload,
        };
        let height = self.insts[i].chain.len() as u64;
        self.net
            .trace(|| format!("node {i} finalized view {} -> height {height}", p.view));
        if let Some(gst) = self.gst {
            let x = &mut self.insts[i];
            if x.live_after_ms.is_none() && height >= x.height_at_gst + self.cfg.liveness_heights {
                x.live_after_ms = Some(self.net.now - gst);
            }
        }
    }

    fn build_block(
        &mut self,
        view: View,
        parent_view: View,
        parent: Digest,
        height: u64,
    ) -> Proposal {
        self.salt += 1;
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
        self.blocks.insert(p.payload, p);
        p
    }

    /// The honest app: the block is known (its body "arrived"), its parent
    /// is known, and its height is the parent's plus one.
    fn app_valid(&self, p: &Proposal) -> bool {
        if self.blocks.get(&p.payload) != Some(p) {
            return false;
        }
        let parent_known = (p.parent_view == self.genesis.view && p.parent == self.genesis.payload)
            || self
                .blocks
                .get(&p.parent)
                .is_some_and(|q| q.view == p.parent_view);
        parent_known && height_of(&p.payload) == height_of(&p.parent) + 1
    }

    fn random_digest(&mut self) -> Digest {
        let mut d = [0u8; 32];
        for chunk in d.chunks_mut(8) {
            chunk.copy_from_slice(&self.net.rng.next_u64().to_le_bytes());
        }
        Digest(d)
    }

    fn sign(&self, signer: ValidatorIndex, kind: VoteKind) -> Vote {
        Vote::sign(&TEST_NAMESPACE, kind, signer, &self.keys[signer as usize])
    }

    fn broadcast(&mut self, from: usize, message: &Message) {
        let nodes = self.insts.len();
        self.net
            .broadcast_bytes(from, nodes, message.encode().into());
    }

    fn send(&mut self, from: usize, to: usize, message: &Message) {
        self.net.send_bytes(from, to, message.encode().into());
    }

    /// Sends `a` to some peers and `b` to the others; some get both.
    fn split_send(&mut self, from: usize, a: &Message, b: &Message) {
        for to in 0..self.insts.len() {
            if to == from {
                continue;
            }
            match self.net.rng.below(8) {
                0..=2 => self.send(from, to, a),
                3..=5 => self.send(from, to, b),
                6 => {
                    self.send(from, to, a);
                    self.send(from, to, b);
                }
                _ => {
                    self.send(from, to, b);
                    self.send(from, to, a);
                }
            }
        }
        self.stats.byzantine_messages += 1;
    }

    /// The Byzantine host: its machine is honest; what leaves is rewritten.
    fn byzantine_broadcast(&mut self, i: usize, message: Message) {
        let behaviour = self.insts[i].behaviour.expect("byzantine");
        let me = self.insts[i].validator;
        let vote = match &message {
            Message::Vote(v) if v.signer == me => v.clone(),
            _ => return self.broadcast(i, &message),
        };
        let w = vote.kind.view();
        let proposal = match vote.kind {
            VoteKind::Notarize(p) if self.set.leader(w) == me => Some(p),
            _ => None,
        };
        match behaviour {
            Behaviour::Twins => self.broadcast(i, &message),
            Behaviour::SilentLeader => {
                if proposal.is_some() {
                    self.stats.byzantine_messages += 1;
                    self.net
                        .trace(|| format!("byzantine {i} withholds its proposal for v{w}"));
                } else {
                    self.broadcast(i, &message);
                }
            }
            Behaviour::Equivocate => match proposal {
                Some(p) => {
                    let other =
                        self.build_block(p.view, p.parent_view, p.parent, height_of(&p.payload));
                    let second = Message::Vote(self.sign(me, VoteKind::Notarize(other)));
                    self.net
                        .trace(|| format!("byzantine {i} equivocates in v{w}"));
                    self.split_send(i, &message, &second);
                }
                None => self.broadcast(i, &message),
            },
            Behaviour::DoubleVote => match vote.kind {
                VoteKind::Notarize(p) | VoteKind::Finalize(p) => {
                    let other =
                        self.build_block(p.view, p.parent_view, p.parent, height_of(&p.payload));
                    let kind = match vote.kind {
                        VoteKind::Notarize(_) => VoteKind::Notarize(other),
                        _ if self.net.rng.below(2) == 0 => VoteKind::Nullify(w),
                        _ => VoteKind::Finalize(other),
                    };
                    let second = Message::Vote(self.sign(me, kind));
                    self.split_send(i, &message, &second);
                }
                VoteKind::Nullify(_) => self.broadcast(i, &message),
            },
            Behaviour::InvalidVotes => {
                if let Some(p) = proposal {
                    let bad = match self.net.rng.below(3) {
                        0 => Proposal {
                            payload: self.random_digest(),
                            ..p
                        },
                        1 => self.build_block(
                            p.view,
                            p.parent_view,
                            p.parent,
                            height_of(&p.payload) + 1,
                        ),
                        _ => {
                            let parent = self.random_digest();
                            self.build_block(w, w - 1, parent, height_of(&p.payload))
                        }
                    };
                    let bad = Message::Vote(self.sign(me, VoteKind::Notarize(bad)));
                    self.broadcast(i, &bad);
                } else {
                    self.broadcast(i, &message);
                }
                let jv = w + self.net.rng.below(4);
                let unknown = Proposal {
                    view: jv,
                    parent_view: jv - 1,
                    parent: self.random_digest(),
                    payload: self.random_digest(),
                };
                let kind = if self.net.rng.below(2) == 0 {
                    VoteKind::Notarize(unknown)
                } else {
                    VoteKind::Finalize(unknown)
                };
                let junk = Message::Vote(self.sign(me, kind));
                self.broadcast(i, &junk);
                let mut forged = vote;
                let byte = self.net.rng.below(64) as usize;
                forged.signature[byte] ^= 1 << self.net.rng.below(8);
                self.broadcast(i, &Message::Vote(forged));
                self.stats.byzantine_messages += 3;
            }
        }
    }

    /// Messages from outside the validator set: non-validator signatures,
    /// unknown signer indices, corrupted signatures, forged or sub-quorum
    /// certificates, undecodable bytes.
    fn send_outsider_message(&mut self) {
        let to = self.net.rng.below(self.insts.len() as u64) as usize;
        let view = self.insts[to].slot.machine.as_ref().map_or(1, |m| m.view());
        let n = self.cfg.validators as u64;
        let s = self.net.rng.below(n) as ValidatorIndex;
        let bytes: Vec<u8> = match self.net.rng.below(7) {
            0 => Message::Vote(Vote::sign(
                &TEST_NAMESPACE,
                VoteKind::Nullify(view),
                s,
                &self.outsider_key,
            ))
            .encode(),
            1 => {
                let idx = (n + self.net.rng.below(100)) as ValidatorIndex;
                Message::Vote(Vote::sign(
                    &TEST_NAMESPACE,
                    VoteKind::Nullify(view),
                    idx,
                    &self.outsider_key,
                ))
                .encode()
            }
            2 => {
                let mut v = self.sign(s, VoteKind::Nullify(view));
                let byte = self.net.rng.below(64) as usize;
                v.signature[byte] ^= 1 << self.net.rng.below(8);
                Message::Vote(v).encode()
            }
            3 => {
                let p = Proposal {
                    view,
                    parent_view: view - 1,
                    parent: self.random_digest(),
                    payload: self.random_digest(),
                };
                let kind = CertificateKind::Notarization(p);
                let vk = kind.vote_kind();
                let signatures = (0..n as ValidatorIndex)
                    .map(|k| {
                        (
                            k,
                            Vote::sign(&TEST_NAMESPACE, vk.clone(), k, &self.outsider_key)
                                .signature,
                        )
                    })
                    .collect();
                Message::Certificate(Certificate { kind, signatures }).encode()
            }
            4 => {
                let v = self.sign(s, VoteKind::Nullify(view));
                Message::Certificate(Certificate {
                    kind: CertificateKind::Nullification(view),
                    signatures: vec![(s, v.signature)],
                })
                .encode()
            }
            5 => {
                let v = self.sign(s, VoteKind::Nullify(view));
                Message::Certificate(Certificate {
                    kind: CertificateKind::Nullification(view),
                    signatures: vec![(s, v.signature); n as usize],
                })
                .encode()
            }
            _ => {
                let len = self.net.rng.below(120) as usize;
                (0..len).map(|_| self.net.rng.next_u64() as u8).collect()
            }
        };
        self.stats.outsider_messages += 1;
        self.net.send_bytes(OUTSIDER, to, bytes.into());
    }

    /// The counters, with those the network keeps.
    fn stats(&self) -> Stats {
        let c = &self.net.counters;
        Stats {
            steps: c.steps,
            dropped_loss: c.dropped_loss,
            dropped_partition: c.dropped_partition,
            duplicated: c.duplicated,
            reordered: c.reordered,
            partitions: c.partitions,
            crashes: c.crashes,
            crashes_mid_batch: c.crashes_mid_batch,
            restarts: c.restarts,
            ..self.stats.clone()
        }
    }

    fn report(&mut self) -> SeedReport {
        let honest = self.honest_indices();
        let min_height = honest
            .iter()
            .map(|i| self.insts[*i].chain.len() as u64)
            .min()
            .unwrap_or(0);
        if self.violation.is_none() {
            // Prefix check across all honest pairs (also guaranteed
            // incrementally by the per-height check).
            let chains: Vec<(usize, &[Digest])> = honest
                .iter()
                .map(|i| (*i, &self.insts[*i].chain[..]))
                .collect();
            if let Some((a, b)) = first_fork(&chains) {
                self.violate(
                    ViolationKind::ConflictingFinalization,
                    format!("node {a}'s finalized chain is not a prefix of node {b}'s"),
                );
            }
        }
        let mut hasher = self.net.hasher.clone();
        for x in &self.insts {
            hasher.update(&(x.chain.len() as u64).to_le_bytes());
            if let Some(d) = x.chain.last() {
                hasher.update(&d.0);
            }
        }
        let liveness_ms = if self.gst.is_some() {
            honest
                .iter()
                .map(|i| self.insts[*i].live_after_ms)
                .collect::<Option<Vec<u64>>>()
                .and_then(|v| v.into_iter().max())
        } else {
            None
        };
        SeedReport {
            config: self.cfg.clone(),
            scenario: self.scenario.clone(),
            min_height,
            max_view: honest
                .iter()
                .map(|i| self.insts[*i].max_view)
                .max()
                .unwrap_or(0),
            time_ms: self.net.now,
            liveness_ms,
            stats: self.stats(),
            event_hash: *hasher.finalize().as_bytes(),
            violation: self.violation.clone(),
        }
    }
}
