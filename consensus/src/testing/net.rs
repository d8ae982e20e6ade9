//! Machinery shared by the seeded simulators `testing::sim` (one epoch) and
//! `testing::reconfig` (many epochs): the fault schedule's draws (link model,
//! partition windows, crashes, GST), the virtual-time event queue with its
//! network model (latency, jitter, loss, duplication, reordering,
//! partitions), crash / restart bookkeeping with mid-batch crashes, the
//! shared event loop ([`Host`]), and the safety checks both apply (votes
//! signed across restarts, agreement on what was finalized, ledger
//! prefixes, judging rejections).
//!
//! Everything here draws from the simulator's [`SplitMix64`] in a fixed
//! order, so a run stays a pure function of its seed.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use super::SplitMix64;
use crate::{Anchor, Digest, MessageError, Proposal, VoteKind};

/// Sender id of messages injected by the outsider (not a node).
pub(crate) const OUTSIDER: usize = usize::MAX;

/// Per-link message model of one seed.
#[derive(Clone, Debug)]
pub(crate) struct LinkModel {
    /// Per-copy loss probability (‰).
    pub loss_permille: u64,
    /// Per-copy duplication probability (‰).
    pub dup_permille: u64,
    /// Per-copy probability (‰) of an extra delay of up to 400 ms.
    pub reorder_permille: u64,
    /// Base latency `[from][to]` in ms.
    pub latency_ms: Vec<Vec<u64>>,
    /// Uniform jitter added to every copy, `0..=jitter_ms`.
    pub jitter_ms: u64,
    /// Delay of the mock app's answers (ms).
    pub app_delay_ms: u64,
}

impl LinkModel {
    /// Draws the model for `m` nodes, in this order: loss `0..=max_loss`
    /// ‰, duplication `0..=50` ‰, reordering `0..=100` ‰, latency
    /// `2..=41` ms per link, jitter `0..=20` ms, app delay `1..=10` ms.
    pub(crate) fn generate(rng: &mut SplitMix64, m: usize, max_loss_permille: u64) -> LinkModel {
        let loss_permille = rng.below(max_loss_permille + 1);
        let dup_permille = rng.below(51);
        let reorder_permille = rng.below(101);
        let latency_ms = (0..m)
            .map(|_| (0..m).map(|_| 2 + rng.below(40)).collect())
            .collect();
        let jitter_ms = rng.below(21);
        let app_delay_ms = 1 + rng.below(10);
        LinkModel {
            loss_permille,
            dup_permille,
            reorder_permille,
            latency_ms,
            jitter_ms,
            app_delay_ms,
        }
    }
}

/// The chaos period (6–20 s of virtual time) and 1–3 partitions in it:
/// partition `j` forms in the first third of slot `j` and lasts between a
/// third of what is left of the slot and all of it. `sides` draws the side
/// of every node right after each window is drawn. Returns `(chaos_ms,
/// [(start_ms, end_ms, sides)])`.
pub(crate) fn gen_partitions(
    rng: &mut SplitMix64,
    mut sides: impl FnMut(&mut SplitMix64) -> Vec<u8>,
) -> (u64, Vec<(u64, u64, Vec<u8>)>) {
    let chaos_ms = 6_000 + rng.below(14_001);
    let count = 1 + rng.below(3);
    let mut partitions = Vec::new();
    for j in 0..count {
        let slot_start = j * chaos_ms / count;
        let slot_end = (j + 1) * chaos_ms / count;
        let start_ms = slot_start + rng.below((slot_end - slot_start) / 3);
        let remaining = slot_end - start_ms;
        let end_ms = start_ms + remaining / 3 + rng.below(remaining * 2 / 3);
        partitions.push((start_ms, end_ms, sides(rng)));
    }
    (chaos_ms, partitions)
}

/// 1–3 crashes of nodes drawn from `honest` (none if it is empty) within
/// `0..chaos_ms`, each restarting 200 ms to 6.2 s later (at the latest at
/// `chaos_ms`), half of them mid-batch: `(node, at_ms, restart_ms,
/// mid_batch)`.
pub(crate) fn gen_crashes(
    rng: &mut SplitMix64,
    honest: &[usize],
    chaos_ms: u64,
) -> Vec<(usize, u64, u64, bool)> {
    let mut crashes = Vec::new();
    if !honest.is_empty() {
        for _ in 0..1 + rng.below(3) {
            let node = honest[rng.below(honest.len() as u64) as usize];
            let at_ms = rng.below(chaos_ms);
            let restart_ms = (at_ms + 200 + rng.below(6_000)).min(chaos_ms);
            crashes.push((node, at_ms, restart_ms, rng.below(2) == 0));
        }
    }
    crashes
}

/// GST: the last partition healed and every crashed node restarted (0 if
/// there is neither).
pub(crate) fn gst_ms(heals: impl Iterator<Item = u64>, restarts: impl Iterator<Item = u64>) -> u64 {
    heals.chain(restarts).max().unwrap_or(0)
}

/// A mock-app genesis (view 0, height 0) named by `label`.
pub(crate) fn mock_genesis(label: &[u8]) -> Anchor {
    let mut payload = [0u8; 32];
    payload[8..].copy_from_slice(&blake3::hash(label).as_bytes()[..24]);
    Anchor {
        view: 0,
        payload: Digest(payload),
    }
}

/// A mock-app payload: `height` (little endian) in the first 8 bytes, then
/// 24 bytes of the blake3 hash of `parts`.
pub(crate) fn mock_payload(height: u64, parts: &[&[u8]]) -> Digest {
    let mut h = blake3::Hasher::new();
    for part in parts {
        h.update(part);
    }
    let mut payload = [0u8; 32];
    payload[..8].copy_from_slice(&height.to_le_bytes());
    payload[8..].copy_from_slice(&h.finalize().as_bytes()[..24]);
    Digest(payload)
}

/// The message of a caught panic.
pub(crate) fn panic_message(panic: Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// An event of the virtual-time queue. `A` is what a simulator's app (or
/// host) answers a node with.
pub(crate) enum Ev<A> {
    /// A message copy arrives.
    Deliver {
        from: usize,
        to: usize,
        bytes: Rc<[u8]>,
    },
    /// A node's timer fires (stale unless `generation` is its latest).
    Timer { node: usize, generation: u64 },
    /// An answer for a node (stale after a restart: `incarnation`).
    App {
        node: usize,
        incarnation: u64,
        input: A,
    },
    /// Partition `j` forms.
    PartitionStart(usize),
    /// Partition `j` heals.
    PartitionHeal(usize),
    /// Crash `j` happens (or is armed for the next batch).
    Crash(usize),
    /// Crash `j`'s node restarts.
    Restart(usize),
    /// The outsider injects a message.
    Outsider,
    /// Global stabilization time.
    Gst,
}

/// Counters the shared machinery keeps.
#[derive(Clone, Debug, Default)]
pub(crate) struct NetCounters {
    /// Events processed.
    pub steps: u64,
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
    /// Restarts (incarnations after the first).
    pub restarts: u64,
}

/// The simulated network: virtual time, the event queue (ordered by time,
/// then by scheduling order), the seeded RNG, partitions, the link model
/// and the hash over every processed event.
pub(crate) struct Net<A> {
    /// Virtual time (ms).
    pub now: u64,
    /// The run's RNG.
    pub rng: SplitMix64,
    /// The partition in force, if any.
    pub partition: Option<usize>,
    /// Counters.
    pub counters: NetCounters,
    /// blake3 over every processed event.
    pub hasher: blake3::Hasher,
    /// The link model.
    pub link: LinkModel,
    /// Side of every node, per partition.
    sides: Vec<Vec<u8>>,
    queue: BTreeMap<(u64, u64), Ev<A>>,
    seq: u64,
    trace: bool,
}

impl<A> Net<A> {
    /// An empty queue at time 0.
    pub(crate) fn new(rng: SplitMix64, link: LinkModel, sides: Vec<Vec<u8>>, trace: bool) -> Self {
        Net {
            now: 0,
            rng,
            partition: None,
            counters: NetCounters::default(),
            hasher: blake3::Hasher::new(),
            link,
            sides,
            queue: BTreeMap::new(),
            seq: 0,
            trace,
        }
    }

    /// Prints `line` to stderr with the time and step, when tracing.
    pub(crate) fn trace(&self, line: impl FnOnce() -> String) {
        if self.trace {
            eprintln!(
                "[{:>7} ms #{:>6}] {}",
                self.now,
                self.counters.steps,
                line()
            );
        }
    }

    /// Queues `ev` at `at` (after what is already queued at `at`).
    pub(crate) fn schedule(&mut self, at: u64, ev: Ev<A>) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Queues the fault schedule, in this order: every partition's
    /// `(start, heal)`, every crash's `(crash, restart)`, the first outsider
    /// injection and GST.
    pub(crate) fn schedule_faults(
        &mut self,
        partitions: &[(u64, u64)],
        crashes: &[(u64, u64)],
        first_outsider_ms: u64,
        gst_ms: u64,
    ) {
        for (j, (start, end)) in partitions.iter().enumerate() {
            self.schedule(*start, Ev::PartitionStart(j));
            self.schedule(*end, Ev::PartitionHeal(j));
        }
        for (j, (at, restart)) in crashes.iter().enumerate() {
            self.schedule(*at, Ev::Crash(j));
            self.schedule(*restart, Ev::Restart(j));
        }
        self.schedule(first_outsider_ms, Ev::Outsider);
        self.schedule(gst_ms, Ev::Gst);
    }

    /// Takes the next event, advancing time and the step counter.
    pub(crate) fn next_event(&mut self) -> Option<Ev<A>> {
        let ((at, _), ev) = self.queue.pop_first()?;
        self.now = self.now.max(at);
        self.counters.steps += 1;
        Some(ev)
    }

    /// Adds an event to the hash: its tag, the time, two numbers, bytes.
    pub(crate) fn hash_event(&mut self, tag: u8, a: u64, b: u64, bytes: &[u8]) {
        self.hasher.update(&[tag]);
        self.hasher.update(&self.now.to_le_bytes());
        self.hasher.update(&a.to_le_bytes());
        self.hasher.update(&b.to_le_bytes());
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// Whether the partition in force separates nodes `a` and `b` (never
    /// the outsider).
    pub(crate) fn partitioned(&self, a: usize, b: usize) -> bool {
        match self.partition {
            Some(j) if a != OUTSIDER && b != OUTSIDER => {
                let side = &self.sides[j];
                side[a] != side[b]
            }
            _ => false,
        }
    }

    /// Sends one message: lost to a partition or random loss, else one or
    /// two copies, each after the link's latency (5 ms from the outsider)
    /// plus jitter, sometimes plus up to 400 ms more.
    pub(crate) fn send_bytes(&mut self, from: usize, to: usize, bytes: Rc<[u8]>) {
        if self.partitioned(from, to) {
            self.counters.dropped_partition += 1;
            return;
        }
        if self.rng.below(1000) < self.link.loss_permille {
            self.counters.dropped_loss += 1;
            return;
        }
        let copies = if self.rng.below(1000) < self.link.dup_permille {
            self.counters.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let base = if from == OUTSIDER {
                5
            } else {
                self.link.latency_ms[from][to]
            };
            let mut delay = base + self.rng.below(self.link.jitter_ms + 1);
            if self.rng.below(1000) < self.link.reorder_permille {
                self.counters.reordered += 1;
                delay += self.rng.below(400);
            }
            self.schedule(
                self.now + delay,
                Ev::Deliver {
                    from,
                    to,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    /// Sends `bytes` from `from` to every other of `nodes` nodes.
    pub(crate) fn broadcast_bytes(&mut self, from: usize, nodes: usize, bytes: Rc<[u8]>) {
        for to in 0..nodes {
            if to != from {
                self.send_bytes(from, to, bytes.clone());
            }
        }
    }

    /// Schedules a timer event for `node` at `deadline_ms` (not before now).
    pub(crate) fn set_timer(&mut self, node: usize, generation: u64, deadline_ms: u64) {
        self.schedule(deadline_ms.max(self.now), Ev::Timer { node, generation });
    }

    /// Schedules an app answer `input(at)` for `node` after the app delay
    /// (`at` is its delivery time).
    pub(crate) fn schedule_app(
        &mut self,
        node: usize,
        incarnation: u64,
        input: impl FnOnce(u64) -> A,
    ) {
        let at = self.now + self.link.app_delay_ms;
        self.schedule(
            at,
            Ev::App {
                node,
                incarnation,
                input: input(at),
            },
        );
    }
}

/// A node's lifecycle: its running machine (`None` while crashed), its
/// timer generation, its incarnation (restarts) and whether a crash is
/// armed for its next output batch.
pub(crate) struct Slot<M> {
    /// The running machine.
    pub machine: Option<M>,
    /// Latest timer generation (older timer events are stale).
    pub timer_gen: u64,
    /// Starts so far (older app answers are stale).
    pub incarnation: u64,
    /// Crash in the middle of the next output batch.
    pub crash_armed: bool,
}

impl<M> Slot<M> {
    /// Not started yet.
    pub(crate) fn new() -> Self {
        Slot {
            machine: None,
            timer_gen: 0,
            incarnation: 0,
            crash_armed: false,
        }
    }

    /// Whether the node runs.
    pub(crate) fn running(&self) -> bool {
        self.machine.is_some()
    }

    /// A new timer generation (invalidating the pending timer).
    pub(crate) fn next_timer(&mut self) -> u64 {
        self.timer_gen += 1;
        self.timer_gen
    }

    /// Runs `machine` as a new incarnation; counts a restart after the
    /// first start.
    pub(crate) fn start(&mut self, machine: M, counters: &mut NetCounters) {
        self.incarnation += 1;
        if self.incarnation > 1 {
            counters.restarts += 1;
        }
        self.machine = Some(machine);
    }
}

/// A simulator on the shared event loop: it owns a [`Net`] and a [`Slot`]
/// per node, and handles what the loop hands it.
pub(crate) trait Host {
    /// What the app (or host) answers a node with.
    type App;
    /// The node's state machine.
    type Machine;
    /// Whether fault events (partitions, armed crashes) are traced.
    const TRACE_FAULTS: bool;

    /// The network.
    fn net(&mut self) -> &mut Net<Self::App>;
    /// Number of nodes.
    fn node_count(&self) -> usize;
    /// Node `i`'s lifecycle.
    fn slot(&mut self, i: usize) -> &mut Slot<Self::Machine>;
    /// Crash `j` of the schedule: `(node, mid_batch)`.
    fn crash_plan(&self, j: usize) -> (usize, bool);
    /// Whether the run is over (a violation, or done).
    fn finished(&self) -> bool;
    /// The queue ran dry before the run was done.
    fn ran_dry(&mut self);
    /// (Re)starts node `i` from what it persisted.
    fn restart(&mut self, i: usize);
    /// A message copy reached running node `to` across no partition.
    fn deliver(&mut self, from: usize, to: usize, bytes: Rc<[u8]>);
    /// Running node `node`'s current timer fired.
    fn timeout(&mut self, node: usize);
    /// An answer for running node `node` of the current incarnation.
    fn answer(&mut self, node: usize, input: Self::App);
    /// The outsider injects a message.
    fn inject_outsider(&mut self);
    /// Upper bound (exclusive) of the random part of the gap between
    /// outsider injections; the gap is `1 + below(bound)` ms.
    fn outsider_gap(&self) -> u64;
    /// GST: every node is up, no partition.
    fn on_gst(&mut self);
    /// Called after every processed event.
    fn after_step(&mut self) {}

    /// Starts every node, then processes events until [`Host::finished`].
    fn run_loop(&mut self) {
        for i in 0..self.node_count() {
            self.restart(i);
        }
        while !self.finished() {
            let Some(ev) = self.net().next_event() else {
                self.ran_dry();
                break;
            };
            self.process(ev);
            self.after_step();
        }
    }

    /// Processes one event.
    fn process(&mut self, ev: Ev<Self::App>) {
        match ev {
            Ev::Deliver { from, to, bytes } => {
                let net = self.net();
                net.hash_event(1, from as u64, to as u64, &bytes);
                if net.partitioned(from, to) {
                    net.counters.dropped_partition += 1;
                    return;
                }
                if !self.slot(to).running() {
                    return; // crashed: lost
                }
                self.deliver(from, to, bytes);
            }
            Ev::Timer { node, generation } => {
                let slot = self.slot(node);
                if slot.timer_gen != generation || !slot.running() {
                    return;
                }
                self.net().hash_event(2, node as u64, 0, &[]);
                self.timeout(node);
            }
            Ev::App {
                node,
                incarnation,
                input,
            } => {
                let slot = self.slot(node);
                if slot.incarnation != incarnation || !slot.running() {
                    return;
                }
                self.answer(node, input);
            }
            Ev::PartitionStart(j) => {
                let net = self.net();
                net.hash_event(4, j as u64, 0, &[]);
                net.partition = Some(j);
                net.counters.partitions += 1;
                if Self::TRACE_FAULTS {
                    let side = net.sides[j].clone();
                    net.trace(|| format!("partition {j} forms: sides {side:?}"));
                }
            }
            Ev::PartitionHeal(j) => {
                let net = self.net();
                net.hash_event(5, j as u64, 0, &[]);
                if net.partition == Some(j) {
                    net.partition = None;
                    if Self::TRACE_FAULTS {
                        net.trace(|| format!("partition {j} heals"));
                    }
                }
            }
            Ev::Crash(j) => {
                self.net().hash_event(6, j as u64, 0, &[]);
                let (i, mid_batch) = self.crash_plan(j);
                if !self.slot(i).running() {
                    return;
                }
                if mid_batch {
                    if Self::TRACE_FAULTS {
                        self.net()
                            .trace(|| format!("node {i} will crash during its next batch"));
                    }
                    self.slot(i).crash_armed = true;
                } else {
                    self.crash(i);
                }
            }
            Ev::Restart(j) => {
                self.net().hash_event(7, j as u64, 0, &[]);
                let (i, _) = self.crash_plan(j);
                self.recover(i);
            }
            Ev::Outsider => {
                self.net().hash_event(8, 0, 0, &[]);
                self.inject_outsider();
                let gap = self.outsider_gap();
                let net = self.net();
                let next = net.now + 1 + net.rng.below(gap);
                net.schedule(next, Ev::Outsider);
            }
            Ev::Gst => {
                let net = self.net();
                net.hash_event(9, 0, 0, &[]);
                net.partition = None;
                for i in 0..self.node_count() {
                    self.recover(i);
                }
                self.on_gst();
            }
        }
    }

    /// Crashes node `i` now: its machine, pending timer and armed crash
    /// are gone.
    fn crash(&mut self, i: usize) {
        self.net().trace(|| format!("node {i} CRASHES"));
        let slot = self.slot(i);
        slot.machine = None;
        slot.timer_gen += 1;
        slot.crash_armed = false;
        self.net().counters.crashes += 1;
    }

    /// Carries out an armed crash that no batch came along for, then
    /// restarts node `i` if it is down.
    fn recover(&mut self, i: usize) {
        if self.slot(i).crash_armed {
            // No batch came along: crash between batches instead.
            self.crash(i);
        }
        if !self.slot(i).running() {
            self.restart(i);
        }
    }

    /// Where an output batch of `len` outputs is cut by an armed crash:
    /// only the outputs before the returned index happen.
    fn batch_cut(&mut self, i: usize, len: usize) -> Option<usize> {
        if self.slot(i).crash_armed {
            Some(self.net().rng.below(len as u64 + 1) as usize)
        } else {
            None
        }
    }

    /// After a batch cut at `k` outputs: counts and carries out the crash.
    fn crash_mid_batch(&mut self, i: usize, k: usize, what: &str) {
        self.net()
            .trace(|| format!("node {i} crashes after {k} outputs{what}"));
        self.net().counters.crashes_mid_batch += 1;
        self.crash(i);
    }
}

/// Votes an honest validator signed in one view (across restarts).
#[derive(Clone, Debug, Default)]
pub(crate) struct SignedVotes {
    notarize: Option<Proposal>,
    nullify: bool,
    finalize: Option<Proposal>,
}

impl SignedVotes {
    /// Records a vote; returns what it conflicts with (I1–I4): two
    /// different Notarize or Finalize votes, Notarize after Nullify,
    /// Finalize and Nullify.
    pub(crate) fn record(&mut self, kind: &VoteKind) -> Option<&'static str> {
        match kind {
            VoteKind::Notarize(p) => {
                let c = if self.notarize.is_some_and(|q| q != *p) {
                    Some("two different Notarize votes")
                } else if self.nullify && self.notarize.is_none() {
                    Some("a Notarize vote after its Nullify")
                } else {
                    None
                };
                self.notarize = Some(*p);
                c
            }
            VoteKind::Nullify(_) => {
                let c = self
                    .finalize
                    .is_some()
                    .then_some("Finalize and Nullify votes");
                self.nullify = true;
                c
            }
            VoteKind::Finalize(p) => {
                let c = if self.finalize.is_some_and(|q| q != *p) {
                    Some("two different Finalize votes")
                } else if self.nullify {
                    Some("Nullify and Finalize votes")
                } else {
                    None
                };
                self.finalize = Some(*p);
                c
            }
        }
    }
}

/// Agreement at height `h` (1-based) of a ledger of first-seen payloads:
/// records `d` if the height is new, else `Err` with what was there when
/// it differs. Heights are recorded in order.
pub(crate) fn agree_height(first: &mut Vec<Digest>, h: u64, d: Digest) -> Result<(), Digest> {
    match first.get(h as usize - 1) {
        Some(x) if *x != d => Err(*x),
        Some(_) => Ok(()),
        None => {
            first.push(d);
            Ok(())
        }
    }
}

/// Agreement at `key` of first-seen payloads: records `d` if the key is
/// new, else `Err` with what was there when it differs.
pub(crate) fn agree_at<K: Ord>(
    first: &mut BTreeMap<K, Digest>,
    key: K,
    d: Digest,
) -> Result<(), Digest> {
    match first.get(&key) {
        Some(x) if *x != d => Err(*x),
        Some(_) => Ok(()),
        None => {
            first.insert(key, d);
            Ok(())
        }
    }
}

/// The first pair `(a, b)` of nodes (in order) whose ledger `a` is not
/// longer than `b`'s and yet not a prefix of it.
pub(crate) fn first_fork(ledgers: &[(usize, &[Digest])]) -> Option<(usize, usize)> {
    for (a, x) in ledgers {
        for (b, y) in ledgers {
            if x.len() <= y.len() && x[..] != y[..x.len()] {
                return Some((*a, *b));
            }
        }
    }
    None
}

/// Judges a rejection at an honest node `i`: counts peer faults in
/// `rejected`; returns the detail of a violation when the sender
/// (`honest_sender`) was honest, or when a host input was refused.
/// `shown` is the error as reported.
pub(crate) fn judge_rejection(
    i: usize,
    honest_sender: Option<usize>,
    source: &MessageError,
    shown: &dyn fmt::Display,
    rejected: &mut u64,
) -> Option<String> {
    if source.is_peer_fault() {
        *rejected += 1;
        honest_sender.map(|f| format!("node {i} rejected a message of honest node {f}: {shown}"))
    } else if matches!(source, MessageError::InvalidInput { .. }) {
        Some(format!("node {i} rejected a host input: {shown}"))
    } else {
        None
    }
}
