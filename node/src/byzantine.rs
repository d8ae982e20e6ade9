//! A deliberately Byzantine validator, for tests only.
//!
//! Compiled only with the cargo feature `byzantine` **and** `debug_assertions` (a test
//! build): an optimized (release) binary never contains it, whatever its features. With it,
//! `cairn-node run --byzantine equivocate,withhold,invalid` (or `CAIRN_BYZANTINE`) turns the
//! node's validator into an attacker that still holds a real validator key, so the honest
//! validators of a real multi-process testnet can be shown to keep safety and liveness
//! against up to `f` such validators (`testnet/tests/byzantine_validator.rs`).
//!
//! The behaviours of a [`Plan`] take turns by view: in view `v` the node acts as
//! `plan.behaviours[v % len]`:
//!
//! | behaviour | as the view's leader | as a replica |
//! |---|---|---|
//! | [`Behaviour::Equivocate`] | proposes two different blocks (same parent, timestamps 1 ms apart), each with its own signed Notarize vote | every Notarize and Finalize vote it casts goes out with a conflicting one (another payload); a Nullify goes out with a Finalize for a made-up proposal |
//! | [`Behaviour::Withhold`] | publishes neither its proposal nor any vote | publishes none of its votes |
//! | [`Behaviour::Invalid`] | proposes a block with a wrong state root, correctly signed: only execution shows it is wrong | votes honestly |
//!
//! Every conflicting pair is an [`cairn_consensus::Equivocation`] honest validators detect,
//! store and gossip as evidence; the invalid block is refused by execution
//! (`cairn_proposals_refused_total`) and its view nullified.
//!
//! Two serving behaviours work on any node, validator or not: `corrupt-chunks` (every
//! state-snapshot chunk served with a byte flipped) and `corrupt-ranges` (every block-sync
//! range served with a bit of each block's state root flipped, so its certificates do not
//! verify; `node/tests/block_sync.rs`).

use std::str::FromStr;

use cairn_consensus::{Digest, Proposal, ValidatorIndex, View, Vote, VoteKind};
use cairn_ledger::SealedBlock;
use ed25519_dalek::SigningKey;

/// Key-derivation context of the made-up payloads of conflicting votes.
const TWIST_CONTEXT: &str = "cairn byzantine test twist v1";

/// One way the Byzantine validator misbehaves (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Two proposals per leader view; a conflicting vote beside every vote.
    Equivocate,
    /// No proposal, no votes.
    Withhold,
    /// A correctly signed proposal whose state root is wrong.
    Invalid,
}

impl Behaviour {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Equivocate => "equivocate",
            Behaviour::Withhold => "withhold",
            Behaviour::Invalid => "invalid",
        }
    }
}

/// Which behaviours take turns, by view. Non-empty, at most one of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    behaviours: Vec<Behaviour>,
    /// `corrupt-chunks`: serve every state-snapshot chunk with a byte flipped (any node,
    /// validator or not; `crate::snapshots::SnapshotServe`). Independent of the consensus
    /// behaviours, which may then be empty.
    corrupt_chunks: bool,
    /// `corrupt-ranges`: serve every block-sync range with a bit of each block's state root
    /// flipped, so none of its certificates verifies (any node; `crate::sync_server::run`).
    /// Independent of the consensus behaviours, like `corrupt_chunks`.
    corrupt_ranges: bool,
}

/// Why a `--byzantine` value does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// Not one of `equivocate`, `withhold`, `invalid`, `corrupt-chunks`, `corrupt-ranges`.
    #[error(
        "unknown byzantine behaviour `{name}` (expected equivocate, withhold, invalid, corrupt-chunks or corrupt-ranges)"
    )]
    Unknown {
        /// The word given.
        name: String,
    },
    /// A behaviour named twice.
    #[error("byzantine behaviour `{name}` named twice")]
    Duplicate {
        /// The behaviour.
        name: String,
    },
    /// Nothing named.
    #[error("no byzantine behaviour named")]
    Empty,
}

impl FromStr for Plan {
    type Err = PlanError;

    /// Parses a comma-separated list, e.g. `equivocate,withhold,invalid`.
    fn from_str(s: &str) -> Result<Plan, PlanError> {
        let mut behaviours = Vec::new();
        let mut corrupt_chunks = false;
        let mut corrupt_ranges = false;
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let serving = match word {
                "corrupt-chunks" => Some(&mut corrupt_chunks),
                "corrupt-ranges" => Some(&mut corrupt_ranges),
                _ => None,
            };
            if let Some(flag) = serving {
                if *flag {
                    return Err(PlanError::Duplicate {
                        name: word.to_string(),
                    });
                }
                *flag = true;
                continue;
            }
            let b = match word {
                "equivocate" => Behaviour::Equivocate,
                "withhold" => Behaviour::Withhold,
                "invalid" => Behaviour::Invalid,
                other => {
                    return Err(PlanError::Unknown {
                        name: other.to_string(),
                    });
                }
            };
            if behaviours.contains(&b) {
                return Err(PlanError::Duplicate {
                    name: word.to_string(),
                });
            }
            behaviours.push(b);
        }
        if behaviours.is_empty() && !corrupt_chunks && !corrupt_ranges {
            return Err(PlanError::Empty);
        }
        Ok(Plan {
            behaviours,
            corrupt_chunks,
            corrupt_ranges,
        })
    }
}

impl Plan {
    /// Whether it names a consensus behaviour (only a validator can carry those out).
    pub fn has_consensus_behaviours(&self) -> bool {
        !self.behaviours.is_empty()
    }

    /// Whether snapshot chunks are served corrupt.
    pub fn corrupt_chunks(&self) -> bool {
        self.corrupt_chunks
    }

    /// Whether block-sync ranges are served corrupt.
    pub fn corrupt_ranges(&self) -> bool {
        self.corrupt_ranges
    }

    /// The behaviour in `view`: `behaviours[view % len]`.
    pub fn in_view(&self, view: View) -> Behaviour {
        self.behaviours[(view % self.behaviours.len() as u64) as usize]
    }
}

/// The Byzantine validator's means: its plan and its own consensus key.
pub struct Byzantine {
    plan: Plan,
    namespace: [u8; 32],
    me: ValidatorIndex,
    key: SigningKey,
}

impl Byzantine {
    /// A Byzantine validator `me` signing with `key` under `namespace` (the genesis hash).
    pub fn new(plan: Plan, namespace: [u8; 32], me: ValidatorIndex, key: SigningKey) -> Byzantine {
        Byzantine {
            plan,
            namespace,
            me,
            key,
        }
    }

    /// The behaviour in `view`.
    pub fn in_view(&self, view: View) -> Behaviour {
        self.plan.in_view(view)
    }

    /// True if `vote` is this validator's own.
    pub fn is_mine(&self, vote: &Vote) -> bool {
        vote.signer == self.me
    }

    /// Signs `kind` with this validator's key.
    pub fn sign(&self, kind: VoteKind) -> Vote {
        Vote::sign(&self.namespace, kind, self.me, &self.key)
    }

    /// A vote that conflicts with `vote` (an equivocation honest validators detect), or
    /// `None` for a Nullify in view 0 (no proposal can be made up there).
    pub fn conflicting(&self, vote: &Vote) -> Option<Vote> {
        let kind = match &vote.kind {
            VoteKind::Notarize(p) => VoteKind::Notarize(twisted(p)),
            VoteKind::Finalize(p) => VoteKind::Finalize(twisted(p)),
            VoteKind::Nullify(view) if *view > 0 => VoteKind::Finalize(Proposal {
                view: *view,
                parent_view: view - 1,
                parent: Digest([0; 32]),
                payload: twist(Digest(view.to_le_bytes().repeat(4).try_into().ok()?)),
            }),
            VoteKind::Nullify(_) => return None,
        };
        Some(self.sign(kind))
    }
}

/// A second block for the same view and parent as `block`, differing in its timestamp only:
/// a valid block, so the two proposals are both correct and conflict.
pub fn twin(block: &SealedBlock) -> SealedBlock {
    let mut b = block.block().clone();
    b.header.timestamp_ms = b.header.timestamp_ms.saturating_add(1);
    SealedBlock::seal(b).expect("the body is unchanged, so it still matches its roots")
}

/// `block` with one bit of its state root flipped: its body still matches its header's
/// transaction roots, so only executing it shows it is wrong.
pub fn corrupt(block: SealedBlock) -> SealedBlock {
    let mut block = block.into_block();
    block.header.state_root.0[0] ^= 1;
    SealedBlock::seal(block).expect("the body is unchanged, so it still matches its roots")
}

fn twisted(p: &Proposal) -> Proposal {
    Proposal {
        payload: twist(p.payload),
        ..*p
    }
}

fn twist(d: Digest) -> Digest {
    Digest(blake3::derive_key(TWIST_CONTEXT, &d.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::Equivocation;

    fn byz(plan: &str) -> Byzantine {
        Byzantine::new(
            plan.parse().unwrap(),
            [7; 32],
            3,
            SigningKey::from_bytes(&[9; 32]),
        )
    }

    #[test]
    fn plans_parse_and_take_turns_by_view() {
        let plan: Plan = "equivocate, withhold,invalid".parse().unwrap();
        let seen: Vec<_> = (0..6).map(|v| plan.in_view(v)).collect();
        use Behaviour::*;
        assert_eq!(
            seen,
            [Equivocate, Withhold, Invalid, Equivocate, Withhold, Invalid]
        );
        assert_eq!(
            "withhold,lie".parse::<Plan>(),
            Err(PlanError::Unknown { name: "lie".into() })
        );
        assert_eq!(
            "invalid,invalid".parse::<Plan>(),
            Err(PlanError::Duplicate {
                name: "invalid".into()
            })
        );
        assert_eq!(" , ".parse::<Plan>(), Err(PlanError::Empty));
        let serving: Plan = "corrupt-ranges".parse().unwrap();
        assert!(serving.corrupt_ranges() && !serving.corrupt_chunks());
        assert!(!serving.has_consensus_behaviours());
        assert_eq!(
            "corrupt-ranges,corrupt-ranges".parse::<Plan>(),
            Err(PlanError::Duplicate {
                name: "corrupt-ranges".into()
            })
        );
        let both: Plan = "corrupt-chunks,corrupt-ranges,withhold".parse().unwrap();
        assert!(both.corrupt_ranges() && both.corrupt_chunks() && both.has_consensus_behaviours());
    }

    #[test]
    fn every_conflicting_vote_is_a_provable_equivocation() {
        let b = byz("equivocate");
        let p = Proposal {
            view: 8,
            parent_view: 7,
            parent: Digest([1; 32]),
            payload: Digest([2; 32]),
        };
        for (kind, expected) in [
            (VoteKind::Notarize(p), Equivocation::Notarize),
            (VoteKind::Finalize(p), Equivocation::Finalize),
            (VoteKind::Nullify(8), Equivocation::NullifyFinalize),
        ] {
            let vote = b.sign(kind);
            let other = b.conflicting(&vote).expect("a conflicting vote");
            let evidence = cairn_consensus::Evidence::new(vote, other).expect("evidence");
            assert_eq!(evidence.equivocation(), Some(expected));
            assert_eq!(evidence.signer(), 3);
        }
        assert!(b.conflicting(&b.sign(VoteKind::Nullify(0))).is_none());
    }

    #[test]
    fn twins_and_corrupt_blocks_differ_from_the_original() {
        let block = SealedBlock::seal(cairn_ledger::Block {
            header: cairn_ledger::BlockHeader {
                chain_id: "t".into(),
                height: 1,
                view: 1,
                parent_hash: cairn_ledger::Hash::ZERO,
                proposer: cairn_ledger::Address([0; 32]),
                timestamp_ms: 5,
                txs_root: cairn_ledger::txs_root(&[]),
                signed_txs_root: cairn_ledger::signed_txs_root_of(&[]),
                state_root: cairn_ledger::Hash::ZERO,
            },
            transactions: vec![],
        })
        .unwrap();
        assert_ne!(twin(&block).hash(), block.hash());
        assert_eq!(twin(&block).header().view, block.header().view);
        let bad = corrupt(block.clone());
        assert_ne!(bad.hash(), block.hash());
        assert_eq!(bad.header().txs_root, block.header().txs_root);
    }
}
