//! Test support (feature `testing`): deterministic keys, hand-made signed
//! messages, and [`Cluster`], an in-memory, deterministic multi-instance
//! harness with virtual time.
//!
//! [`Cluster`] is the seed of a simulator: message delivery goes through a
//! pluggable [`LinkPolicy`] (delay or drop per message), nodes can be crashed
//! and restarted from their WAL, and all scheduling is ordered by
//! `(time, sequence number)` with a seeded [`SplitMix64`], so a run is a pure
//! function of its seed and policy.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;

use crate::{
    Anchor, Certificate, CertificateKind, Config, Consensus, Digest, Evidence, Input, Message,
    MessageError, Output, Proposal, Validator, ValidatorIndex, ValidatorSet, View, Vote, VoteKind,
    WalEntry,
};

pub use crate::machine::BrokenVariant;

mod net;
pub mod reconfig;
pub mod sim;
pub mod wan;

/// Namespace used by all test fixtures.
pub const TEST_NAMESPACE: [u8; 32] = [7u8; 32];

/// Genesis payload used by all test fixtures.
pub fn genesis_payload() -> Digest {
    Digest(*blake3::hash(b"cairn test genesis").as_bytes())
}

/// The genesis anchor (view 0) used by all test fixtures.
pub fn genesis() -> Anchor {
    Anchor {
        view: 0,
        payload: genesis_payload(),
    }
}

/// `n` deterministic signing keys (key `i` derives from `i`).
pub fn keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let seed = blake3::derive_key("cairn consensus test key", &(i as u64).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect()
}

/// A validator set over `keys` with the given powers (same length).
///
/// # Panics
/// If the set is invalid (test helper).
pub fn validator_set(keys: &[SigningKey], powers: &[u64]) -> ValidatorSet {
    assert_eq!(keys.len(), powers.len());
    ValidatorSet::new(
        keys.iter()
            .zip(powers)
            .map(|(k, p)| Validator {
                public_key: k.verifying_key(),
                voting_power: *p,
            })
            .collect(),
    )
    .expect("valid test set")
}

/// Test timings: leader timeout 1000 ms, notarization timeout 2000 ms, nullify
/// retry 500 ms, 10 views ahead.
pub fn test_config(set: ValidatorSet, signer: Option<SigningKey>) -> Config {
    Config {
        namespace: TEST_NAMESPACE,
        validators: set,
        signer,
        leader_timeout_ms: 1_000,
        notarization_timeout_ms: 2_000,
        nullify_retry_ms: 500,
        views_ahead_max: 10,
    }
}

/// The mock application's block digest: `blake3(view_le ‖ parent_view_le ‖ parent)`.
pub fn payload_for(view: View, parent_view: View, parent: Digest) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(&view.to_le_bytes());
    h.update(&parent_view.to_le_bytes());
    h.update(&parent.0);
    Digest(*h.finalize().as_bytes())
}

/// The mock application's proposal for `view` extending `(parent_view, parent)`.
pub fn mock_proposal(view: View, parent_view: View, parent: Digest) -> Proposal {
    Proposal {
        view,
        parent_view,
        parent,
        payload: payload_for(view, parent_view, parent),
    }
}

/// Keys + set for hand-made signed messages in step-table tests.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// All validators' keys, by index.
    pub keys: Vec<SigningKey>,
    /// The validator set.
    pub set: ValidatorSet,
    /// The namespace votes are signed under.
    pub namespace: [u8; 32],
}

impl Fixture {
    /// `powers.len()` validators with the given voting powers.
    pub fn new(powers: &[u64]) -> Fixture {
        let keys = keys(powers.len());
        let set = validator_set(&keys, powers);
        Fixture {
            keys,
            set,
            namespace: TEST_NAMESPACE,
        }
    }

    /// A [`test_config`] for validator `me` (`None` = observer).
    pub fn config(&self, me: Option<ValidatorIndex>) -> Config {
        test_config(self.set.clone(), me.map(|i| self.keys[i as usize].clone()))
    }

    /// A started machine for `me` at genesis, plus its start outputs.
    pub fn machine(&self, me: Option<ValidatorIndex>, now_ms: u64) -> (Consensus, Vec<Output>) {
        let mut m = Consensus::new(self.config(me), genesis(), &[]).expect("valid config");
        let out = m.start(now_ms);
        (m, out)
    }

    /// `signer`'s vote.
    pub fn vote(&self, signer: ValidatorIndex, kind: VoteKind) -> Vote {
        Vote::sign(&self.namespace, kind, signer, &self.keys[signer as usize])
    }

    /// `signer`'s vote as a message.
    pub fn vote_msg(&self, signer: ValidatorIndex, kind: VoteKind) -> Message {
        Message::Vote(self.vote(signer, kind))
    }

    /// A certificate signed by `signers` (sorted and deduplicated here).
    pub fn cert(&self, kind: CertificateKind, signers: &[ValidatorIndex]) -> Certificate {
        let vk = kind.vote_kind();
        let set: BTreeSet<ValidatorIndex> = signers.iter().copied().collect();
        Certificate {
            kind,
            signatures: set
                .into_iter()
                .map(|s| (s, self.vote(s, vk.clone()).signature))
                .collect(),
        }
    }

    /// [`Fixture::cert`] as a message.
    pub fn cert_msg(&self, kind: CertificateKind, signers: &[ValidatorIndex]) -> Message {
        Message::Certificate(self.cert(kind, signers))
    }
}

/// A small deterministic PRNG (SplitMix64) so the harness needs no `rand`.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`; slight modulo bias is fine here).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// Decides the fate of one message copy: `Some(delay_ms)` or `None` (drop).
/// Arguments: `(from, to, message, now_ms, rng)`.
pub type LinkPolicy = Box<dyn FnMut(usize, usize, &Message, u64, &mut SplitMix64) -> Option<u64>>;

/// A link policy with a fixed base delay plus uniform jitter in `0..=jitter_ms`.
pub fn fixed_latency(base_ms: u64, jitter_ms: u64) -> LinkPolicy {
    Box::new(move |_, _, _, _, rng| Some(base_ms + rng.below(jitter_ms + 1)))
}

/// A scheduled harness event.
#[derive(Clone, Debug)]
pub enum Event {
    /// Deliver a message (as encoded bytes, decoded on arrival) to node `to`.
    Deliver {
        /// Sender index.
        from: usize,
        /// Receiver index.
        to: usize,
        /// Borsh bytes.
        bytes: Vec<u8>,
    },
    /// A node's timer; stale if the node re-armed since (`generation` differs).
    Timer {
        /// Node index.
        node: usize,
        /// Timer generation at scheduling time.
        generation: u64,
    },
    /// An application answer (`Proposed` / `Validated`) for node `node`.
    App {
        /// Node index.
        node: usize,
        /// The input to feed.
        input: Input,
        /// Incarnation (restart count) the request came from.
        incarnation: u64,
    },
}

/// One simulated node (host + machine).
pub struct SimNode {
    /// Config used to (re)build the machine.
    pub config: Config,
    /// The machine; `None` while crashed.
    pub machine: Option<Consensus>,
    /// Durable WAL (every `Persist` entry, in order).
    pub wal: Vec<WalEntry>,
    /// Host's last finalized block (the anchor used on restart).
    pub anchor: Anchor,
    /// Finalized chain as walked by the host: view → payload.
    pub finalized: BTreeMap<View, Digest>,
    /// Number of `Finalized` outputs.
    pub finalized_outputs: usize,
    /// Number of `Notarized` outputs.
    pub notarized_outputs: usize,
    /// Errors returned by `handle`.
    pub errors: Vec<MessageError>,
    /// `Evidence` outputs.
    pub evidence: Vec<Evidence>,
    /// Timer generation (bumped on every `SetTimer` and on crash).
    pub timer_generation: u64,
    /// Restart count.
    pub incarnation: u64,
    /// Whether the mock app answers `Validate` with `valid: true` only when the
    /// payload matches [`payload_for`] (always true for honest nodes).
    pub app_checks_payload: bool,
}

/// Deterministic in-memory network of `n` consensus instances.
pub struct Cluster {
    /// Virtual time (ms).
    pub now: u64,
    /// The nodes, by validator index (observers may follow validators).
    pub nodes: Vec<SimNode>,
    /// Every block ever built: payload → proposal (a global block store the
    /// hosts use to walk parents of finalized blocks).
    pub blocks: BTreeMap<Digest, Proposal>,
    /// Message fate policy.
    pub link: LinkPolicy,
    /// Delay of mock-app answers (ms).
    pub app_delay_ms: u64,
    /// Harness RNG.
    pub rng: SplitMix64,
    /// Safety violations detected while walking finalized chains.
    pub violations: Vec<String>,
    /// Number of events processed.
    pub steps: u64,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
}

impl Cluster {
    /// A cluster of validators with `powers`, all started at time 0, using
    /// [`test_config`], [`fixed_latency`]`(10, 5)` and a 5 ms app delay.
    pub fn new(powers: &[u64], seed: u64) -> Cluster {
        let fixture = Fixture::new(powers);
        let configs = (0..powers.len())
            .map(|i| fixture.config(Some(i as ValidatorIndex)))
            .collect();
        Cluster::with_configs(configs, seed)
    }

    /// A cluster from explicit configs (not started; call [`Cluster::start_all`]).
    pub fn with_configs(configs: Vec<Config>, seed: u64) -> Cluster {
        let nodes = configs
            .into_iter()
            .map(|config| SimNode {
                config,
                machine: None,
                wal: Vec::new(),
                anchor: genesis(),
                finalized: BTreeMap::new(),
                finalized_outputs: 0,
                notarized_outputs: 0,
                errors: Vec::new(),
                evidence: Vec::new(),
                timer_generation: 0,
                incarnation: 0,
                app_checks_payload: true,
            })
            .collect();
        Cluster {
            now: 0,
            nodes,
            blocks: BTreeMap::new(),
            link: fixed_latency(10, 5),
            app_delay_ms: 5,
            rng: SplitMix64::new(seed),
            violations: Vec::new(),
            steps: 0,
            queue: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Starts every node except those listed in `down`.
    pub fn start_all(&mut self, down: &[usize]) {
        for i in 0..self.nodes.len() {
            if !down.contains(&i) {
                self.restart(i);
            }
        }
    }

    /// (Re)builds node `i` from its WAL and host anchor, and starts it.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut machine =
            Consensus::new(node.config.clone(), node.anchor, &node.wal).expect("restart from WAL");
        node.incarnation += 1;
        let out = machine.start(self.now);
        node.machine = Some(machine);
        self.apply(i, out);
    }

    /// Crashes node `i`: drops its machine and pending timer; its WAL,
    /// anchor and finalized chain survive.
    pub fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.machine = None;
        node.timer_generation += 1;
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    /// Performs `outputs` of node `i` in order.
    pub fn apply(&mut self, i: usize, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Persist(entry) => self.nodes[i].wal.push(entry),
                Output::Broadcast(message) => {
                    let bytes = message.encode();
                    for to in 0..self.nodes.len() {
                        if to == i {
                            continue;
                        }
                        if let Some(delay) = (self.link)(i, to, &message, self.now, &mut self.rng) {
                            let at = self.now + delay;
                            self.schedule(
                                at,
                                Event::Deliver {
                                    from: i,
                                    to,
                                    bytes: bytes.clone(),
                                },
                            );
                        }
                    }
                }
                Output::SetTimer { deadline_ms } => {
                    let node = &mut self.nodes[i];
                    node.timer_generation += 1;
                    let generation = node.timer_generation;
                    let at = deadline_ms.max(self.now);
                    self.schedule(
                        at,
                        Event::Timer {
                            node: i,
                            generation,
                        },
                    );
                }
                Output::BuildProposal {
                    view,
                    parent_view,
                    parent,
                } => {
                    let p = mock_proposal(view, parent_view, parent);
                    self.blocks.insert(p.payload, p);
                    let at = self.now + self.app_delay_ms;
                    let incarnation = self.nodes[i].incarnation;
                    self.schedule(
                        at,
                        Event::App {
                            node: i,
                            input: Input::Proposed {
                                view,
                                payload: p.payload,
                                now_ms: at,
                            },
                            incarnation,
                        },
                    );
                }
                Output::Validate(p) => {
                    let valid = !self.nodes[i].app_checks_payload
                        || p.payload == payload_for(p.view, p.parent_view, p.parent);
                    let at = self.now + self.app_delay_ms;
                    let incarnation = self.nodes[i].incarnation;
                    self.schedule(
                        at,
                        Event::App {
                            node: i,
                            input: Input::Validated {
                                proposal: p,
                                valid,
                                now_ms: at,
                            },
                            incarnation,
                        },
                    );
                }
                Output::Notarized(_) => self.nodes[i].notarized_outputs += 1,
                Output::Finalized(cert) => self.on_finalized(i, cert),
                Output::ViewChanged { .. } => {}
                Output::Evidence(evidence) => self.nodes[i].evidence.push(evidence),
            }
        }
    }

    fn on_finalized(&mut self, i: usize, cert: Certificate) {
        let CertificateKind::Finalization(p) = cert.kind else {
            self.violations
                .push(format!("node {i}: Finalized with a non-finalization"));
            return;
        };
        let node = &mut self.nodes[i];
        node.finalized_outputs += 1;
        if p.view <= node.anchor.view {
            self.violations.push(format!(
                "node {i}: Finalized view {} not above {}",
                p.view, node.anchor.view
            ));
            return;
        }
        // Walk parents down to the previous anchor.
        let mut chain = vec![(p.view, p.payload)];
        let mut cur = p;
        while cur.parent_view > node.anchor.view {
            match self.blocks.get(&cur.parent) {
                Some(parent) if parent.view == cur.parent_view => {
                    chain.push((parent.view, parent.payload));
                    cur = *parent;
                }
                _ => {
                    self.violations.push(format!(
                        "node {i}: unknown parent {} of view {}",
                        cur.parent, cur.view
                    ));
                    return;
                }
            }
        }
        if cur.parent_view != node.anchor.view || cur.parent != node.anchor.payload {
            self.violations.push(format!(
                "node {i}: finalized view {} does not extend the previous finalized block (view {})",
                p.view, node.anchor.view
            ));
        }
        for (v, d) in chain {
            node.finalized.insert(v, d);
        }
        node.anchor = Anchor {
            view: p.view,
            payload: p.payload,
        };
    }

    /// Processes the next event; returns `false` when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.queue.pop_first() else {
            return false;
        };
        self.now = self.now.max(at);
        self.steps += 1;
        let (i, input) = match event {
            Event::Deliver { from: _, to, bytes } => {
                let message = match Message::decode(&bytes) {
                    Ok(m) => m,
                    Err(e) => {
                        self.nodes[to].errors.push(e);
                        return true;
                    }
                };
                (
                    to,
                    Input::Message {
                        message,
                        now_ms: self.now,
                    },
                )
            }
            Event::Timer { node, generation } => {
                if self.nodes[node].timer_generation != generation {
                    return true;
                }
                (node, Input::Timeout { now_ms: self.now })
            }
            Event::App {
                node,
                input,
                incarnation,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return true;
                }
                (node, input)
            }
        };
        let Some(machine) = self.nodes[i].machine.as_mut() else {
            return true; // crashed: the event is lost
        };
        match machine.handle(input) {
            Ok(out) => self.apply(i, out),
            Err(e) => self.nodes[i].errors.push(e),
        }
        true
    }

    /// Runs until `done(self)` holds (checked after every event), the queue
    /// empties, or virtual time passes `deadline_ms`. Returns whether `done` held.
    pub fn run_until(&mut self, deadline_ms: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.now > deadline_ms || !self.step() {
                return done(self);
            }
        }
    }

    /// Lowest host-finalized view among the nodes in `among`.
    pub fn min_finalized_view(&self, among: &[usize]) -> View {
        among
            .iter()
            .map(|i| self.nodes[*i].anchor.view)
            .min()
            .unwrap_or(0)
    }

    /// Checks agreement: for every view finalized by two nodes the payloads
    /// are equal, and no violation was recorded. Returns a description of the
    /// first problem.
    pub fn check_safety(&self) -> Result<(), String> {
        if let Some(v) = self.violations.first() {
            return Err(v.clone());
        }
        let mut seen: BTreeMap<View, (usize, Digest)> = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for (v, d) in &node.finalized {
                match seen.get(v) {
                    Some((j, other)) if other != d => {
                        return Err(format!(
                            "view {v}: node {i} finalized {d}, node {j} finalized {other}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(*v, (i, *d));
                    }
                }
            }
        }
        Ok(())
    }

    /// Errors that are peer faults, across all nodes.
    pub fn peer_faults(&self) -> Vec<(usize, MessageError)> {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                n.errors
                    .iter()
                    .filter(|e| e.is_peer_fault())
                    .map(move |e| (i, e.clone()))
            })
            .collect()
    }
}
