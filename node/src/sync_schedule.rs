//! Which block-sync ranges to ask of which peers: the pure scheduling state of the block
//! sync client ([`crate::sync_client`]). No I/O and no clock: the caller passes the time
//! (ms) and the peers' last statuses.
//!
//! - **Several peers at once.** Consecutive ranges above the finalized head go to peers
//!   whose last status says they hold the range's first block ([`PeerHead::serves_from`]):
//!   at most `in_flight_per_peer_max` to one peer and `in_flight_max` over all peers. A
//!   peer with fewer ranges in flight is asked first (then the highest head, then the
//!   lowest peer id), so the ranges spread over every holder; a pruned peer is asked for a
//!   range within one range of its lowest retained height only when no other holder has
//!   room (it may prune it before the request arrives).
//! - **In-order commit, bounded reorder buffer.** An answer that arrives before the range
//!   the head needs waits ([`RangeScheduler::arrived`]); ranges in flight and waiting
//!   together are at most twice `in_flight_max`, so no new range is asked while that many
//!   are outstanding. [`RangeScheduler::pop_ready`] hands out only the range that starts at
//!   (or below) the head's next height.
//! - **Short answers.** A server may answer fewer blocks than asked (its byte bound, an
//!   epoch's boundary block): the blocks not answered are a gap that is asked again. After
//!   an answer that ends at an epoch's boundary no later range is asked until the epoch
//!   changes ([`RangeScheduler::set_epoch`]): later blocks are certified by the next
//!   epoch's set, which this node learns by committing the boundary.
//! - **Timeouts and faults.** A range not answered within `timeout_ms` is forgotten (a late
//!   answer is ignored by its request id) and asked of another peer: a slow peer is not at
//!   fault, only avoided for [`RETRY_AVOID_MS`]. So is a peer that failed or answered
//!   `Pruned`. A range whose checks failed is judged when it is the next to commit (only
//!   then is the epoch it was checked under certainly the right one): the caller penalizes
//!   the peer, calls [`RangeScheduler::penalized`] (the peer is not asked again for
//!   [`FAULT_AVOID_MS`]), and the range is asked of another peer.

use std::collections::{BTreeMap, HashMap};

use libp2p::PeerId;

use crate::sync::SyncResponse;

/// The largest `[sync] range_in_flight_max`.
pub const RANGES_IN_FLIGHT_MAX: u32 = 32;
/// How long a peer whose range request failed, timed out or was answered `Pruned` is not
/// asked for another range, ms (not a fault: it may be slow, busy or have pruned).
pub const RETRY_AVOID_MS: u64 = 1_000;
/// How long a peer that served a range that failed its checks is not asked again, ms (it
/// is penalized too, which disconnects it at once).
pub const FAULT_AVOID_MS: u64 = 600_000;
/// Peers remembered as avoided; when full, the entry that expires first makes room.
pub const AVOIDED_PEERS_MAX: usize = 1024;

/// A peer's last status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerHead {
    /// Its finalized height.
    pub height: u64,
    /// The lowest height whose body it holds (0: all).
    pub lowest_retained_height: u64,
}

impl PeerHead {
    /// True if it holds the block at `from_height` ([`SyncResponse::serves_from`]).
    pub fn serves_from(&self, from_height: u64) -> bool {
        SyncResponse::serves_from(self.height, self.lowest_retained_height, from_height)
    }
}

/// Bounds of a [`RangeScheduler`] (from `[sync]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeLimits {
    /// Ranges in flight over all peers, 1..=[`RANGES_IN_FLIGHT_MAX`].
    pub in_flight_max: usize,
    /// Ranges in flight to one peer, ≥ 1.
    pub in_flight_per_peer_max: usize,
    /// Time from asking to the checked answer, ms, ≥ 1.
    pub timeout_ms: u64,
    /// Blocks per range, 1..=[`crate::sync::SYNC_BLOCKS_MAX`].
    pub batch_blocks: u64,
}

/// A range request to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    /// Its id: the answer is matched by it (a late answer to a forgotten request is not).
    pub id: u64,
    /// The peer to ask.
    pub peer: PeerId,
    /// The first height asked for.
    pub from_height: u64,
    /// Blocks asked for, 1..=`batch_blocks`.
    pub count: u16,
    /// The epoch its answer is checked under.
    pub epoch: u64,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    id: u64,
    peer: PeerId,
    count: u64,
    sent_ms: u64,
    epoch: u64,
}

/// A checked answer waiting for its turn to commit.
#[derive(Debug)]
pub struct Arrived<T> {
    /// The peer that served it.
    pub peer: PeerId,
    /// Its first height.
    pub from_height: u64,
    /// The height of its last block.
    pub last_height: u64,
    /// It ends at its epoch's boundary block.
    pub boundary: bool,
    /// The epoch it was checked under.
    pub epoch: u64,
    /// The answer.
    pub payload: T,
}

/// The scheduling state (see the module docs). `T` is a checked answer.
#[derive(Debug)]
pub struct RangeScheduler<T> {
    limits: RangeLimits,
    epoch: u64,
    next_id: u64,
    /// By first height; no two overlap.
    in_flight: BTreeMap<u64, InFlight>,
    /// By first height.
    ready: BTreeMap<u64, Arrived<T>>,
    /// Until when (ms) a peer is not asked.
    avoided: HashMap<PeerId, u64>,
}

impl<T> RangeScheduler<T> {
    /// An empty schedule for `epoch`.
    ///
    /// # Panics
    /// If a limit is zero (config validation refuses that).
    pub fn new(limits: RangeLimits, epoch: u64) -> RangeScheduler<T> {
        assert!(
            limits.in_flight_max >= 1
                && limits.in_flight_per_peer_max >= 1
                && limits.timeout_ms >= 1
                && limits.batch_blocks >= 1,
            "range limits must be positive: {limits:?}"
        );
        RangeScheduler {
            limits,
            epoch,
            next_id: 1,
            in_flight: BTreeMap::new(),
            ready: BTreeMap::new(),
            avoided: HashMap::new(),
        }
    }

    /// Ranges in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Ranges in flight to `peer`.
    pub fn in_flight_to(&self, peer: &PeerId) -> usize {
        self.in_flight.values().filter(|r| r.peer == *peer).count()
    }

    /// Answers waiting for their turn.
    pub fn waiting(&self) -> usize {
        self.ready.len()
    }

    /// True if a range in flight or waiting holds `height`.
    pub fn covers(&self, height: u64) -> bool {
        self.in_flight
            .iter()
            .any(|(f, r)| *f <= height && height < f + r.count)
            || self
                .ready
                .values()
                .any(|a| a.from_height <= height && height <= a.last_height)
    }

    /// The epoch changed (this node committed a boundary block): answers waiting that were
    /// checked under another epoch are dropped (nobody's fault), and ranges above the
    /// boundary may be asked again.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.ready.retain(|_, a| a.epoch == epoch);
    }

    /// Forgets requests older than `timeout_ms` (their peers are avoided for
    /// [`RETRY_AVOID_MS`], not penalized); returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<RangeRequest> {
        let timeout = self.limits.timeout_ms;
        let late: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, r)| now_ms.saturating_sub(r.sent_ms) >= timeout)
            .map(|(f, _)| *f)
            .collect();
        let mut out = Vec::new();
        for from in late {
            let r = self.in_flight.remove(&from).expect("listed above");
            self.avoid(r.peer, now_ms.saturating_add(RETRY_AVOID_MS));
            out.push(RangeRequest {
                id: r.id,
                peer: r.peer,
                from_height: from,
                count: r.count as u16,
                epoch: r.epoch,
            });
        }
        out
    }

    /// The ranges to ask now, given this node's finalized `head` and the peers' last
    /// statuses: every gap above the head not in flight or waiting, from the lowest, each
    /// to a holder of its first block with room, until a bound is reached. The caller sends
    /// each.
    pub fn schedule(
        &mut self,
        head: u64,
        heads: &HashMap<PeerId, PeerHead>,
        now_ms: u64,
    ) -> Vec<RangeRequest> {
        self.ready.retain(|_, a| a.last_height > head);
        self.avoided.retain(|_, until| *until > now_ms);
        let mut out = Vec::new();
        // Nothing above an epoch's boundary waiting to commit is asked before it commits.
        let limit = self
            .ready
            .values()
            .filter(|a| a.boundary)
            .map(|a| a.last_height)
            .min()
            .unwrap_or(u64::MAX);
        let mut per_peer: HashMap<PeerId, usize> = HashMap::new();
        for r in self.in_flight.values() {
            *per_peer.entry(r.peer).or_default() += 1;
        }
        let mut cursor = head + 1;
        while self.in_flight.len() < self.limits.in_flight_max
            && self.in_flight.len() + self.ready.len() < 2 * self.limits.in_flight_max
        {
            // The lowest height from `cursor` on that nothing covers, and how far the gap
            // goes.
            let Some((from, gap_end)) = self.gap(cursor) else {
                break;
            };
            if from > limit {
                break;
            }
            let peer = heads
                .iter()
                .filter(|(p, h)| {
                    h.serves_from(from)
                        && !self.avoided.contains_key(p)
                        && per_peer.get(p).copied().unwrap_or(0)
                            < self.limits.in_flight_per_peer_max
                })
                .min_by_key(|(p, h)| {
                    (
                        self.near_pruned_edge(h, from),
                        per_peer.get(p).copied().unwrap_or(0),
                        std::cmp::Reverse(h.height),
                        **p,
                    )
                })
                .map(|(p, h)| (*p, h.height));
            let Some((peer, peer_height)) = peer else {
                // Nobody with room holds this gap; later gaps need it first anyway.
                break;
            };
            let last = gap_end
                .min(peer_height)
                .min(from + self.limits.batch_blocks - 1)
                .min(limit);
            let count = last - from + 1;
            let id = self.next_id;
            self.next_id += 1;
            self.in_flight.insert(
                from,
                InFlight {
                    id,
                    peer,
                    count,
                    sent_ms: now_ms,
                    epoch: self.epoch,
                },
            );
            *per_peer.entry(peer).or_default() += 1;
            out.push(RangeRequest {
                id,
                peer,
                from_height: from,
                count: count as u16,
                epoch: self.epoch,
            });
            cursor = last + 1;
        }
        out
    }

    /// True if `head` pruned bodies and `from` lies within one range above its lowest
    /// retained height: it prunes on as its head grows, so the range may be gone by the
    /// time the request arrives (answered `Pruned`, a wasted round trip). Such a peer is
    /// asked only when no other holder has room.
    fn near_pruned_edge(&self, head: &PeerHead, from: u64) -> bool {
        head.lowest_retained_height > 0
            && from
                < head
                    .lowest_retained_height
                    .saturating_add(self.limits.batch_blocks)
    }

    /// The first height ≥ `cursor` that no range in flight or waiting covers, and the last
    /// height of that gap (`u64::MAX - 1` if nothing lies above it).
    fn gap(&self, mut cursor: u64) -> Option<(u64, u64)> {
        let mut spans: Vec<(u64, u64)> = self
            .in_flight
            .iter()
            .map(|(f, r)| (*f, f + r.count - 1))
            .chain(self.ready.values().map(|a| (a.from_height, a.last_height)))
            .filter(|(_, last)| *last >= cursor)
            .collect();
        spans.sort_unstable();
        for (from, last) in spans {
            if from > cursor {
                return Some((cursor, from - 1));
            }
            cursor = cursor.max(last.checked_add(1)?);
        }
        Some((cursor, u64::MAX - 1))
    }

    /// The request `id` for `from_height` was answered with blocks up to `last_height`
    /// (`None`: no blocks), checked into `payload`. Returns false (and drops it) if the
    /// request was forgotten (timed out) or checked under another epoch than the current
    /// one; an empty answer is dropped too and its peer avoided for [`RETRY_AVOID_MS`].
    pub fn arrived(
        &mut self,
        id: u64,
        from_height: u64,
        last_height: Option<u64>,
        boundary: bool,
        payload: T,
        now_ms: u64,
    ) -> bool {
        let Some(r) = self.take(id, from_height) else {
            return false;
        };
        if r.epoch != self.epoch {
            return false;
        }
        let Some(last_height) = last_height.filter(|l| *l >= from_height) else {
            self.avoid(r.peer, now_ms.saturating_add(RETRY_AVOID_MS));
            return false;
        };
        self.ready.insert(
            from_height,
            Arrived {
                peer: r.peer,
                from_height,
                last_height,
                boundary,
                epoch: r.epoch,
                payload,
            },
        );
        true
    }

    /// The request `id` for `from_height` failed (network error, refused as busy, or
    /// answered `Pruned`): forgotten, and its peer avoided for [`RETRY_AVOID_MS`]. Not a
    /// fault.
    pub fn failed(&mut self, id: u64, from_height: u64, now_ms: u64) {
        if let Some(r) = self.take(id, from_height) {
            self.avoid(r.peer, now_ms.saturating_add(RETRY_AVOID_MS));
        }
    }

    /// The next answer to commit, if it has arrived: the waiting range that starts at or
    /// below `head + 1` and reaches above `head` (answers wholly at or below the head are
    /// dropped).
    pub fn pop_ready(&mut self, head: u64) -> Option<Arrived<T>> {
        self.ready.retain(|_, a| a.last_height > head);
        let first = *self.ready.keys().next()?;
        if first > head + 1 {
            return None;
        }
        self.ready.remove(&first)
    }

    /// `peer` served a range that failed its checks: it is not asked again for
    /// [`FAULT_AVOID_MS`], and its waiting answers are dropped (asked of others).
    pub fn penalized(&mut self, peer: PeerId, now_ms: u64) {
        self.avoid(peer, now_ms.saturating_add(FAULT_AVOID_MS));
        self.ready.retain(|_, a| a.peer != peer);
    }

    fn take(&mut self, id: u64, from_height: u64) -> Option<InFlight> {
        if self.in_flight.get(&from_height).is_some_and(|r| r.id == id) {
            self.in_flight.remove(&from_height)
        } else {
            None
        }
    }

    /// `peer` is not asked for a range before `until_ms` (a later time already set stays).
    pub fn avoid(&mut self, peer: PeerId, until_ms: u64) {
        if !self.avoided.contains_key(&peer) && self.avoided.len() >= AVOIDED_PEERS_MAX {
            let first = self
                .avoided
                .iter()
                .min_by_key(|(p, until)| (**until, **p))
                .map(|(p, _)| *p);
            if let Some(p) = first {
                self.avoided.remove(&p);
            }
        }
        let until = self.avoided.entry(peer).or_insert(until_ms);
        *until = (*until).max(until_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RangeLimits {
        RangeLimits {
            in_flight_max: 4,
            in_flight_per_peer_max: 2,
            timeout_ms: 1000,
            batch_blocks: 10,
        }
    }

    fn head(height: u64, lowest_retained_height: u64) -> PeerHead {
        PeerHead {
            height,
            lowest_retained_height,
        }
    }

    fn peers(n: usize) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
        v.sort();
        v
    }

    fn spans(reqs: &[RangeRequest]) -> Vec<(u64, u16)> {
        reqs.iter().map(|r| (r.from_height, r.count)).collect()
    }

    /// Consecutive ranges go to every holder, within the per-peer and total bounds.
    #[test]
    fn consecutive_ranges_spread_over_holders_within_bounds() {
        let p = peers(3);
        let heads: HashMap<_, _> = p.iter().map(|x| (*x, head(1000, 0))).collect();
        let mut s = RangeScheduler::<()>::new(limits(), 0);
        let reqs = s.schedule(0, &heads, 0);
        assert_eq!(spans(&reqs), vec![(1, 10), (11, 10), (21, 10), (31, 10)]);
        // Each of the 3 peers got one before any got a second.
        let first3: std::collections::HashSet<_> = reqs[..3].iter().map(|r| r.peer).collect();
        assert_eq!(first3.len(), 3);
        assert_eq!(s.in_flight(), 4);
        for x in &p {
            assert!(s.in_flight_to(x) <= 2);
        }
        // Total bound reached: nothing more.
        assert!(s.schedule(0, &heads, 1).is_empty());
        // One peer only: at most 2 in flight.
        let mut s = RangeScheduler::<()>::new(limits(), 0);
        let one: HashMap<_, _> = [(p[0], head(1000, 0))].into();
        assert_eq!(spans(&s.schedule(0, &one, 0)), vec![(1, 10), (11, 10)]);
    }

    /// A range goes only to a peer that holds its first block, and never past its head.
    #[test]
    fn ranges_go_only_to_holders_and_stop_at_their_heads() {
        let p = peers(2);
        let heads: HashMap<_, _> = [(p[0], head(25, 0)), (p[1], head(3000, 1977))].into();
        let mut s = RangeScheduler::<()>::new(limits(), 0);
        let reqs = s.schedule(0, &heads, 0);
        // p[0] holds 1..=25 (two ranges, its bound), p[1] nothing below 1977.
        assert_eq!(spans(&reqs), vec![(1, 10), (11, 10)]);
        assert!(reqs.iter().all(|r| r.peer == p[0]));
        let mut s = RangeScheduler::<()>::new(limits(), 0);
        let reqs = s.schedule(20, &heads, 0);
        assert_eq!(
            spans(&reqs),
            vec![(21, 5)],
            "p[0] ends at 25; 26 is pruned at p[1]"
        );
        let reqs = s.schedule(1980, &heads, 0);
        assert_eq!(reqs.len(), 2);
        assert!(reqs.iter().all(|r| r.peer == p[1]));
        // Near a pruned peer's lowest retained height, a full peer is asked first.
        let full = PeerId::random();
        let mut heads = heads;
        heads.insert(full, head(2990, 0));
        let mut s = RangeScheduler::<()>::new(limits(), 0);
        let reqs = s.schedule(1980, &heads, 0);
        assert_eq!(
            spans(&reqs),
            vec![(1981, 10), (1991, 10), (2001, 10), (2011, 10)]
        );
        assert_eq!(
            reqs[0].peer, full,
            "1981 is within a range of p[1]'s edge 1977"
        );
        assert_eq!(reqs[1].peer, p[1], "1991 is not");
    }

    /// Early answers wait; only the one at the head's next height is handed out; short
    /// answers leave a gap that is asked again; the reorder buffer is bounded.
    #[test]
    fn in_order_commit_with_a_bounded_reorder_buffer() {
        let p = peers(2);
        let heads: HashMap<_, _> = p.iter().map(|x| (*x, head(1000, 0))).collect();
        let mut s = RangeScheduler::new(limits(), 0);
        let reqs = s.schedule(0, &heads, 0);
        assert_eq!(reqs.len(), 4);
        // Ranges 2..4 arrive first (range 2 short: 11..=15); nothing is ready.
        assert!(s.arrived(reqs[1].id, 11, Some(15), false, "b", 5));
        assert!(s.arrived(reqs[2].id, 21, Some(30), false, "c", 5));
        assert!(s.arrived(reqs[3].id, 31, Some(40), false, "d", 5));
        assert!(s.pop_ready(0).is_none());
        // The gap 16..=20 is asked first, then new ranges above, up to the total bound.
        let more = s.schedule(0, &heads, 6);
        assert_eq!(spans(&more), vec![(16, 5), (41, 10), (51, 10)]);
        assert_eq!(s.in_flight(), 4);
        // The first arrives: handed out in order, then the next, not the one after the gap.
        assert!(s.arrived(reqs[0].id, 1, Some(10), false, "a", 7));
        assert_eq!(s.pop_ready(0).unwrap().payload, "a");
        assert_eq!(s.pop_ready(10).unwrap().payload, "b");
        assert!(s.pop_ready(15).is_none(), "16..=20 is still in flight");
        // Window bound: in flight + waiting ≤ 2 × in_flight_max.
        let mut s = RangeScheduler::new(limits(), 0);
        let mut waiting = 0;
        for round in 0..10 {
            for r in s.schedule(0, &heads, round) {
                if r.from_height != 1 {
                    let last = r.from_height + u64::from(r.count) - 1;
                    assert!(s.arrived(r.id, r.from_height, Some(last), false, "x", round));
                    waiting += 1;
                }
            }
            assert!(s.in_flight() + s.waiting() <= 8);
        }
        assert_eq!(
            waiting, 7,
            "range 1 is in flight, 7 wait, then nothing more is asked"
        );
    }

    /// A timeout forgets the request (a late answer is ignored), avoids the peer for a
    /// while without penalty, and the range goes to another peer; after the avoidance
    /// ends the peer is asked again.
    #[test]
    fn timeouts_re_request_from_another_peer() {
        let p = peers(2);
        let heads: HashMap<_, _> = p.iter().map(|x| (*x, head(15, 0))).collect();
        let mut s = RangeScheduler::new(limits(), 0);
        let reqs = s.schedule(0, &heads, 0);
        assert_eq!(spans(&reqs), vec![(1, 10), (11, 5)]);
        assert!(s.expire(999).is_empty());
        let late = s.expire(1000);
        assert_eq!(late.len(), 2);
        assert!(!s.arrived(reqs[0].id, 1, Some(10), false, "late", 1001));
        // Both peers avoided: nothing to ask until RETRY_AVOID_MS passed.
        assert!(s.schedule(0, &heads, 1001).is_empty());
        let again = s.schedule(0, &heads, 1000 + RETRY_AVOID_MS);
        assert_eq!(spans(&again), vec![(1, 10), (11, 5)]);
        // One peer failing: its range goes to the other.
        let mut s = RangeScheduler::<()>::new(limits(), 0);
        let reqs = s.schedule(0, &heads, 0);
        s.failed(reqs[0].id, 1, 10);
        let again = s.schedule(0, &heads, 11);
        assert_eq!(spans(&again), vec![(1, 10)]);
        assert_ne!(again[0].peer, reqs[0].peer);
    }

    /// A peer penalized for a bad range is not asked again and its waiting answers are
    /// dropped; the range goes to another peer.
    #[test]
    fn a_penalized_peer_is_not_asked_again() {
        let p = peers(2);
        let heads: HashMap<_, _> = p.iter().map(|x| (*x, head(40, 0))).collect();
        let mut s = RangeScheduler::new(limits(), 0);
        let reqs = s.schedule(0, &heads, 0);
        for r in &reqs {
            let last = r.from_height + u64::from(r.count) - 1;
            assert!(s.arrived(r.id, r.from_height, Some(last), false, r.peer, 1));
        }
        let first = s.pop_ready(0).unwrap();
        let bad = first.payload;
        s.penalized(bad, 2);
        assert!(s.waiting() > 0);
        assert!(
            (0..4).all(|_| s.pop_ready(0).is_none()),
            "range 1 must be asked again"
        );
        let again = s.schedule(0, &heads, 3);
        assert!(!again.is_empty());
        assert!(again.iter().all(|r| r.peer != bad));
        assert_eq!(again[0].from_height, 1);
        assert!(
            s.schedule(0, &heads, FAULT_AVOID_MS - 1)
                .iter()
                .all(|r| r.peer != bad)
        );
    }

    /// Nothing above an epoch's boundary is asked before it commits; answers checked under
    /// the old epoch are dropped when the epoch changes, and late ones are ignored.
    #[test]
    fn epoch_boundaries_hold_later_ranges() {
        let p = peers(1);
        let heads: HashMap<_, _> = [(p[0], head(100, 0))].into();
        let mut s = RangeScheduler::new(limits(), 0);
        let reqs = s.schedule(0, &heads, 0);
        assert_eq!(spans(&reqs), vec![(1, 10), (11, 10)]);
        // The first ends at a boundary at 7; the second was checked under epoch 0.
        assert!(s.arrived(reqs[0].id, 1, Some(7), true, "boundary", 1));
        assert!(
            s.schedule(0, &heads, 2).is_empty(),
            "8.. is above the boundary"
        );
        assert_eq!(s.pop_ready(0).unwrap().payload, "boundary");
        s.set_epoch(1);
        // The second's answer (old epoch) is dropped on arrival.
        assert!(!s.arrived(reqs[1].id, 11, Some(20), false, "stale", 3));
        let again = s.schedule(7, &heads, 4);
        assert_eq!(spans(&again), vec![(8, 10), (18, 10)]);
        assert!(again.iter().all(|r| r.epoch == 1));
    }
}
