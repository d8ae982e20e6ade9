//! A bounded record of recent transaction refusals, for `getTransaction`.
//!
//! Every transaction this node refused or dropped — at RPC submission (bad signature, wrong
//! chain, mempool refusals, overload), from gossip, or later from the mempool (`nonce_gap`)
//! — is recorded with its stable reason code and message, so `getTransaction` answers
//! `rejected` with the reason instead of `unknown`. At most [`REFUSALS_MAX`] records are
//! kept; the oldest is forgotten first (FIFO). A transaction admitted later (a retry after
//! `overloaded`, say) loses its record.
//!
//! Shared between the RPC backend (refusals before the mempool) and the driver (mempool
//! refusals and drops) behind a mutex held only for a map operation.

use std::collections::{HashMap, VecDeque};

use cairn_ledger::Hash;

/// Most refusals remembered (about 4 MiB at the longest messages); the oldest is forgotten
/// first. Stated in docs/wire-format.md (JSON-RPC) and docs/security.md.
pub const REFUSALS_MAX: usize = 16_384;

/// Why a transaction was refused: a stable snake_case reason code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable reason code (`bad_signature`, `stale_nonce`, `nonce_gap`, …).
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Bounded FIFO map from transaction hash to its latest [`Refusal`].
///
/// `order` holds `(sequence, hash)` in insertion order, `records` the live record of each
/// hash with the sequence of its entry in `order`. An entry of `order` whose sequence is not
/// its hash's live one is stale (the record was removed or replaced) and is skipped on
/// eviction. Both are bounded by `capacity`: `records.len() <= order.len() <= capacity`.
#[derive(Debug)]
pub struct RefusalLog {
    capacity: usize,
    records: HashMap<Hash, (u64, Refusal)>,
    order: VecDeque<(u64, Hash)>,
    next_seq: u64,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog::new(REFUSALS_MAX)
    }
}

impl RefusalLog {
    /// An empty log keeping at most `capacity` records (at least 1).
    pub fn new(capacity: usize) -> RefusalLog {
        RefusalLog {
            capacity: capacity.max(1),
            records: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// Records (or replaces) why `hash` was refused; forgets the oldest records beyond the
    /// capacity.
    pub fn record(&mut self, hash: Hash, reason: impl Into<String>, message: impl Into<String>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let refusal = Refusal {
            reason: reason.into(),
            message: message.into(),
        };
        self.records.insert(hash, (seq, refusal));
        self.order.push_back((seq, hash));
        while self.order.len() > self.capacity {
            if let Some((old_seq, old)) = self.order.pop_front()
                && self.records.get(&old).is_some_and(|(s, _)| *s == old_seq)
            {
                self.records.remove(&old);
            }
        }
    }

    /// Forgets `hash`'s record (it was admitted after all).
    pub fn forget(&mut self, hash: &Hash) {
        self.records.remove(hash);
    }

    /// The record of `hash`, if it is still kept.
    pub fn get(&self, hash: &Hash) -> Option<&Refusal> {
        self.records.get(hash).map(|(_, r)| r)
    }

    /// Records kept.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True if no record is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u32) -> Hash {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        Hash(b)
    }

    #[test]
    fn keeps_the_newest_capacity_records_fifo() {
        let mut log = RefusalLog::new(3);
        for i in 0..5 {
            log.record(h(i), "stale_nonce", format!("m{i}"));
        }
        assert_eq!(log.len(), 3);
        assert!(log.get(&h(0)).is_none() && log.get(&h(1)).is_none());
        assert_eq!(log.get(&h(4)).unwrap().message, "m4");
        assert_eq!(log.get(&h(2)).unwrap().reason, "stale_nonce");
    }

    #[test]
    fn forget_and_re_record_never_drop_a_newer_record_early() {
        let mut log = RefusalLog::new(2);
        log.record(h(1), "overloaded", "full");
        log.forget(&h(1));
        assert!(log.get(&h(1)).is_none());
        // Re-recorded: the stale first entry must not evict the new one.
        log.record(h(1), "bad_signature", "x");
        log.record(h(2), "expired", "y");
        // Order now holds (h1 stale), h1, h2 → trimmed to h1, h2; both live.
        assert_eq!(log.get(&h(1)).unwrap().reason, "bad_signature");
        assert_eq!(log.get(&h(2)).unwrap().reason, "expired");
        log.record(h(3), "expired", "z");
        assert!(log.get(&h(1)).is_none(), "the oldest goes first");
        assert!(log.get(&h(2)).is_some() && log.get(&h(3)).is_some());
        assert!(log.order.len() <= 2 && log.records.len() <= 2);
    }
}
