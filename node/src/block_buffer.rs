//! The block buffer: block bodies this node holds before consensus asks about them, as pure
//! state (no tokio, no network; the caller supplies peers and performs fetches).
//!
//! It holds
//! - **received bodies**: sealed blocks ([`SealedBlock`]: exactly the block their header
//!   names), keyed by block hash, which is what the leader signed (its Notarize vote names
//!   the header hash). A body enters only after it was sealed, and only if it was rebuilt
//!   from a compact block whose leader vote verified, or fetched by hash because consensus
//!   asked for it (a proposal, a notarization, a finalization or a parent);
//! - **partial blocks**: compact blocks waiting for transactions ([`PartialBlocks`]);
//! - **fetches in flight**: block fetches by hash and transaction fetches for partial
//!   blocks, each bounded ([`FETCHES_IN_FLIGHT_MAX`]).
//!
//! # Bounds and eviction
//!
//! Received bodies are bounded in total ([`BUFFERED_BLOCKS_MAX`]), per proposer
//! ([`BUFFERED_PER_PROPOSER_MAX`]), per sending peer ([`BUFFERED_PER_PEER_MAX`]) and, for
//! gossip-driven (rebuilt) bodies, per view ([`BUFFERED_PER_VIEW_MAX`]). Over a bound the
//! buffer evicts an entry of the *largest* group: over the per-proposer bound, that
//! proposer's oldest body; over the per-peer bound, the oldest body of the proposer with the
//! most bodies among that peer's; over the total, the oldest body of the proposer with the
//! most bodies. Only a leader can sign a body into the buffer, and an honest leader
//! proposes one block per view, so a Byzantine proposer that floods the buffer is always
//! the largest group and evicts its own bodies, never an honest proposer's (unless honest
//! proposers hold more, in which case the flood has not taken their room). A rebuilt body
//! over its view's bound is not kept (the entries already there stay).

use std::collections::{HashMap, HashSet, VecDeque};

use cairn_ledger::{Address, Hash, SealedBlock};
use libp2p::PeerId;

use crate::compact::PartialBlocks;

/// Most received (sealed) bodies held at once. About 512 × `block_bytes_max` at worst.
pub const BUFFERED_BLOCKS_MAX: usize = 512;
/// Most received bodies of one proposer (header `proposer`) held at once; above it that
/// proposer's oldest is evicted. An honest leader has a few views in flight.
pub const BUFFERED_PER_PROPOSER_MAX: usize = 64;
/// Most received bodies delivered by one peer (gossip source of the compact block, or the
/// peer that served a fetch) held at once; above it the oldest body of the largest
/// proposer group among that peer's is evicted.
pub const BUFFERED_PER_PEER_MAX: usize = 128;
/// A gossip-driven (rebuilt) body is not kept if this many bodies of its view are held
/// already: an honest leader proposes one; an equivocating one may not evict other views'
/// bodies with more. (Fetched bodies were asked for and are always kept.)
pub const BUFFERED_PER_VIEW_MAX: usize = 2;
/// Block fetches by hash in flight at once (and, counted apart, requests for partial
/// blocks' missing transactions).
pub const FETCHES_IN_FLIGHT_MAX: usize = 8;

/// How a body reached this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Rebuilt from a compact block of `view` (leader-signed), first received from `peer`
    /// if known (a block completed later by verified transactions has no single sender).
    Rebuilt {
        /// The view it was proposed in.
        view: u64,
        /// The gossip source of the compact block, if known.
        peer: Option<PeerId>,
    },
    /// Served whole by `peer` in answer to a fetch by hash.
    Fetched {
        /// The peer that served it.
        peer: PeerId,
    },
}

impl Origin {
    fn peer(&self) -> Option<PeerId> {
        match self {
            Origin::Rebuilt { peer, .. } => *peer,
            Origin::Fetched { peer } => Some(*peer),
        }
    }
}

/// What [`BlockBuffer::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// Kept; these bodies were evicted to make room.
    Kept {
        /// Hashes of the evicted bodies.
        evicted: Vec<Hash>,
    },
    /// Already held.
    Duplicate,
    /// A rebuilt body of a view that already has [`BUFFERED_PER_VIEW_MAX`]: not kept.
    ViewFull,
}

struct Entry {
    block: SealedBlock,
    proposer: Address,
    view: u64,
    peer: Option<PeerId>,
}

/// Received bodies, partial blocks and fetches in flight (see the [module docs](self)).
#[derive(Default)]
pub struct BlockBuffer {
    bodies: HashMap<Hash, Entry>,
    /// Received bodies' hashes, oldest first (same set as `bodies`).
    order: VecDeque<Hash>,
    /// Compact blocks waiting for transactions.
    pub partials: PartialBlocks,
    fetching: HashSet<Hash>,
    tx_fetches_in_flight: usize,
}

impl BlockBuffer {
    /// An empty buffer.
    pub fn new() -> BlockBuffer {
        BlockBuffer::default()
    }

    /// Received bodies held (≤ [`BUFFERED_BLOCKS_MAX`]).
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// True if no received body is held.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// True if body `hash` is held.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.bodies.contains_key(hash)
    }

    /// Body `hash`, if held.
    pub fn get(&self, hash: &Hash) -> Option<&SealedBlock> {
        self.bodies.get(hash).map(|e| &e.block)
    }

    /// Keeps a sealed body (see the [module docs](self) for the bounds and what is
    /// evicted). Also forgets it as partial and as being fetched.
    pub fn insert(&mut self, block: SealedBlock, origin: Origin) -> Insert {
        let hash = block.hash();
        self.partials.remove(&hash);
        self.fetching.remove(&hash);
        if self.bodies.contains_key(&hash) {
            return Insert::Duplicate;
        }
        let view = block.header().view;
        let proposer = block.header().proposer;
        if matches!(origin, Origin::Rebuilt { .. }) {
            // Gossip-driven: only an equivocating leader signs a second block for its view;
            // it may not push other views' bodies out (fetched bodies were asked for).
            let same_view = self.bodies.values().filter(|e| e.view == view).count();
            if same_view >= BUFFERED_PER_VIEW_MAX {
                return Insert::ViewFull;
            }
        }
        let peer = origin.peer();
        let mut evicted = Vec::new();
        if self.count(|e| e.proposer == proposer) >= BUFFERED_PER_PROPOSER_MAX {
            evicted.extend(self.evict_oldest(|e| e.proposer == proposer));
        }
        if let Some(p) = peer
            && self.count(|e| e.peer == Some(p)) >= BUFFERED_PER_PEER_MAX
        {
            evicted.extend(self.evict_largest(|e| e.peer == Some(p)));
        }
        while self.bodies.len() >= BUFFERED_BLOCKS_MAX {
            match self.evict_largest(|_| true) {
                Some(h) => evicted.push(h),
                None => break,
            }
        }
        self.bodies.insert(
            hash,
            Entry {
                block,
                proposer,
                view,
                peer,
            },
        );
        self.order.push_back(hash);
        debug_assert_eq!(self.order.len(), self.bodies.len());
        Insert::Kept { evicted }
    }

    /// Forgets bodies and partial blocks at or below `finalized_height`.
    pub fn prune(&mut self, finalized_height: u64) {
        self.bodies
            .retain(|_, e| e.block.header().height > finalized_height);
        let bodies = &self.bodies;
        self.order.retain(|h| bodies.contains_key(h));
        self.partials.prune(finalized_height);
    }

    /// Marks block `hash` as being fetched; false if it already is or
    /// [`FETCHES_IN_FLIGHT_MAX`] fetches are in flight (then nothing changes).
    pub fn start_fetch(&mut self, hash: Hash) -> bool {
        if self.fetching.contains(&hash) || self.fetching.len() >= FETCHES_IN_FLIGHT_MAX {
            return false;
        }
        self.fetching.insert(hash)
    }

    /// Block `hash`'s fetch ended (answered, failed or its body arrived otherwise).
    pub fn end_fetch(&mut self, hash: &Hash) {
        self.fetching.remove(hash);
    }

    /// Counts a request for a partial block's missing transactions; false (nothing counted)
    /// if [`FETCHES_IN_FLIGHT_MAX`] are in flight.
    pub fn start_tx_fetch(&mut self) -> bool {
        if self.tx_fetches_in_flight >= FETCHES_IN_FLIGHT_MAX {
            return false;
        }
        self.tx_fetches_in_flight += 1;
        true
    }

    /// A transaction fetch ended.
    pub fn end_tx_fetch(&mut self) {
        assert!(
            self.tx_fetches_in_flight > 0,
            "no transaction fetch in flight"
        );
        self.tx_fetches_in_flight -= 1;
    }

    fn count(&self, f: impl Fn(&Entry) -> bool) -> usize {
        self.bodies.values().filter(|e| f(e)).count()
    }

    /// Evicts the oldest body matching `f`.
    fn evict_oldest(&mut self, f: impl Fn(&Entry) -> bool) -> Option<Hash> {
        let i = self.order.iter().position(|h| f(&self.bodies[h]))?;
        let h = self.order.remove(i).expect("position is in range");
        self.bodies.remove(&h);
        Some(h)
    }

    /// Evicts the oldest body of the proposer with the most bodies among those matching
    /// `f` (ties: the proposer whose oldest body is oldest).
    fn evict_largest(&mut self, f: impl Fn(&Entry) -> bool) -> Option<Hash> {
        let mut sizes: HashMap<Address, usize> = HashMap::new();
        for e in self.bodies.values().filter(|e| f(e)) {
            *sizes.entry(e.proposer).or_default() += 1;
        }
        let largest = sizes.values().copied().max()?;
        self.evict_oldest(|e| f(e) && sizes.get(&e.proposer) == Some(&largest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::{Block, BlockHeader, signed_txs_root_of, txs_root};

    /// A sealed empty block by proposer `p` at `height` in `view` (distinct by `salt`).
    fn body(p: u8, height: u64, view: u64, salt: u64) -> SealedBlock {
        SealedBlock::seal(Block {
            header: BlockHeader {
                chain_id: "buffer-test".into(),
                height,
                view,
                parent_hash: Hash([1; 32]),
                proposer: Address([p; 32]),
                timestamp_ms: salt,
                txs_root: txs_root(&[]),
                signed_txs_root: signed_txs_root_of(&[]),
                state_root: Hash([3; 32]),
            },
            transactions: vec![],
        })
        .unwrap()
    }

    fn fetched(peer: PeerId) -> Origin {
        Origin::Fetched { peer }
    }

    #[test]
    fn keeps_finds_deduplicates_and_prunes_by_height() {
        let mut buf = BlockBuffer::new();
        let peer = PeerId::random();
        let a = body(1, 5, 5, 0);
        let b = body(2, 6, 6, 0);
        assert!(buf.start_fetch(a.hash()));
        assert!(!buf.start_fetch(a.hash()), "one fetch per block");
        assert_eq!(
            buf.insert(a.clone(), fetched(peer)),
            Insert::Kept { evicted: vec![] }
        );
        assert!(
            buf.start_fetch(a.hash()),
            "the body arrived: no fetch in flight"
        );
        buf.end_fetch(&a.hash());
        assert_eq!(buf.insert(a.clone(), fetched(peer)), Insert::Duplicate);
        buf.insert(
            b.clone(),
            Origin::Rebuilt {
                view: 6,
                peer: None,
            },
        );
        assert_eq!(buf.get(&a.hash()), Some(&a));
        assert_eq!(buf.len(), 2);
        buf.prune(5);
        assert!(!buf.contains(&a.hash()) && buf.contains(&b.hash()));
    }

    #[test]
    fn an_equivocating_leader_keeps_at_most_two_rebuilt_bodies_per_view() {
        let mut buf = BlockBuffer::new();
        for salt in 0..2 {
            assert!(matches!(
                buf.insert(
                    body(1, 3, 3, salt),
                    Origin::Rebuilt {
                        view: 3,
                        peer: None
                    }
                ),
                Insert::Kept { .. }
            ));
        }
        assert_eq!(
            buf.insert(
                body(1, 3, 3, 9),
                Origin::Rebuilt {
                    view: 3,
                    peer: None
                }
            ),
            Insert::ViewFull
        );
        // A fetched body of that view was asked for: kept.
        assert!(matches!(
            buf.insert(body(1, 3, 3, 10), fetched(PeerId::random())),
            Insert::Kept { .. }
        ));
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn a_flooding_proposer_evicts_only_its_own_bodies() {
        let mut buf = BlockBuffer::new();
        let honest: Vec<SealedBlock> = (0..4).map(|v| body(1, 10 + v, 10 + v, 0)).collect();
        for b in &honest {
            buf.insert(
                b.clone(),
                Origin::Rebuilt {
                    view: b.header().view,
                    peer: None,
                },
            );
        }
        // Proposer 2 signs one block in each of many views.
        for v in 0..(3 * BUFFERED_PER_PROPOSER_MAX as u64) {
            let r = buf.insert(
                body(2, 100 + v, 100 + v, 0),
                Origin::Rebuilt {
                    view: 100 + v,
                    peer: None,
                },
            );
            let Insert::Kept { evicted } = r.clone() else {
                panic!("{r:?}")
            };
            for h in evicted {
                assert!(
                    honest.iter().all(|b| b.hash() != h),
                    "an honest body was evicted"
                );
            }
            assert!(buf.count(|e| e.proposer == Address([2; 32])) <= BUFFERED_PER_PROPOSER_MAX);
        }
        assert!(honest.iter().all(|b| buf.contains(&b.hash())));
        assert_eq!(buf.len(), honest.len() + BUFFERED_PER_PROPOSER_MAX);
    }

    #[test]
    fn one_peer_holds_at_most_its_bound_and_evicts_its_largest_group() {
        let mut buf = BlockBuffer::new();
        let flooder = PeerId::random();
        let other = PeerId::random();
        let honest = body(1, 7, 7, 0);
        buf.insert(honest.clone(), fetched(other));
        // Bodies of many proposers (64 each at most), all served by one peer.
        let mut n = 0u64;
        for p in 2..10u8 {
            for v in 0..40u64 {
                n += 1;
                buf.insert(body(p, 1000 + n, 1000 + n, v), fetched(flooder));
                assert!(buf.count(|e| e.peer == Some(flooder)) <= BUFFERED_PER_PEER_MAX);
            }
        }
        assert_eq!(
            buf.count(|e| e.peer == Some(flooder)),
            BUFFERED_PER_PEER_MAX
        );
        assert!(
            buf.contains(&honest.hash()),
            "another peer's body was evicted"
        );
    }

    #[test]
    fn the_total_is_bounded_and_evicts_from_the_largest_proposer() {
        let mut buf = BlockBuffer::new();
        let honest = body(1, 5, 5, 0);
        buf.insert(
            honest.clone(),
            Origin::Rebuilt {
                view: 5,
                peer: None,
            },
        );
        // Many proposers, many peers: fill past the total.
        let mut n = 0u64;
        'fill: for p in 2..=255u8 {
            for _ in 0..BUFFERED_PER_PROPOSER_MAX {
                n += 1;
                buf.insert(body(p, 100 + n, 100 + n, 0), fetched(PeerId::random()));
                assert!(buf.len() <= BUFFERED_BLOCKS_MAX);
                if n as usize > 2 * BUFFERED_BLOCKS_MAX {
                    break 'fill;
                }
            }
        }
        assert_eq!(buf.len(), BUFFERED_BLOCKS_MAX);
        assert!(
            buf.contains(&honest.hash()),
            "the smallest group was evicted"
        );
    }

    #[test]
    fn fetches_in_flight_are_bounded() {
        let mut buf = BlockBuffer::new();
        for i in 0..FETCHES_IN_FLIGHT_MAX {
            assert!(buf.start_fetch(Hash([i as u8; 32])));
            assert!(buf.start_tx_fetch());
        }
        assert!(!buf.start_fetch(Hash([200; 32])));
        assert!(!buf.start_tx_fetch());
        buf.end_fetch(&Hash([0; 32]));
        buf.end_tx_fetch();
        assert!(buf.start_fetch(Hash([200; 32])));
        assert!(buf.start_tx_fetch());
    }
}
