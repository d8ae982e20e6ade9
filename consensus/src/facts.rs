//! Compact chain knowledge above the last finalized view: which views are
//! known notarized (and for which payload) and which are known nullified.
//!
//! Kept separately from the per-view vote state so the parent rule can still
//! be checked across long nullification streaks after the vote state of old
//! views was pruned. Nullified views are stored as merged inclusive ranges, so
//! a streak costs one entry; notarized views cost one `(View, Digest)` entry
//! each. Everything below the last finalized view is dropped on finalization.

use std::collections::BTreeMap;

use crate::types::{Anchor, Digest, Proposal, View};

/// Outcome of the Simplex parent rule for a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParentStatus {
    /// Parent notarized and every view in between nullified.
    Valid,
    /// Some certificate is still missing; may become valid later.
    Pending,
    /// Can never become valid (parent below/conflicting with finality, or
    /// not the notarized block of its view).
    Invalid,
}

#[derive(Clone, Debug)]
pub(crate) struct Facts {
    /// The last finalized view; it is always present in `notarized`.
    floor: View,
    /// Notarized payload per view, for views `>= floor`.
    notarized: BTreeMap<View, Digest>,
    /// Disjoint, non-adjacent inclusive ranges `start -> end` of nullified
    /// views, all `> floor`.
    nullified: BTreeMap<View, View>,
}

impl Facts {
    pub(crate) fn new(anchor: Anchor) -> Facts {
        let mut notarized = BTreeMap::new();
        notarized.insert(anchor.view, anchor.payload);
        Facts {
            floor: anchor.view,
            notarized,
            nullified: BTreeMap::new(),
        }
    }

    pub(crate) fn notarized(&self, view: View) -> Option<Digest> {
        self.notarized.get(&view).copied()
    }

    /// The nullified range containing `view`, if any.
    fn range_of(&self, view: View) -> Option<(View, View)> {
        self.nullified
            .range(..=view)
            .next_back()
            .filter(|(_, end)| **end >= view)
            .map(|(s, e)| (*s, *e))
    }

    pub(crate) fn is_nullified(&self, view: View) -> bool {
        self.range_of(view).is_some()
    }

    /// Records a notarization; returns `true` if the view was not yet known
    /// notarized. A second, different payload for a view is not recorded.
    pub(crate) fn add_notarized(&mut self, view: View, payload: Digest) -> bool {
        if view < self.floor || self.notarized.contains_key(&view) {
            return false;
        }
        self.notarized.insert(view, payload);
        true
    }

    /// Records a nullification; returns `true` if it was new.
    pub(crate) fn add_nullified(&mut self, view: View) -> bool {
        if view <= self.floor || self.is_nullified(view) {
            return false;
        }
        let mut start = view;
        let mut end = view;
        // Merge with a range ending right below.
        if let Some((s, _)) = view.checked_sub(1).and_then(|below| self.range_of(below)) {
            self.nullified.remove(&s);
            start = s;
        }
        // Merge with a range starting right above.
        if let Some(above) = view.checked_add(1) {
            if let Some(e) = self.nullified.remove(&above) {
                end = e;
            }
        }
        self.nullified.insert(start, end);
        true
    }

    /// Moves the floor to a newly finalized block and forgets everything
    /// below it.
    pub(crate) fn finalize(&mut self, view: View, payload: Digest) {
        if view <= self.floor {
            return;
        }
        self.floor = view;
        self.notarized = self.notarized.split_off(&view);
        self.notarized.insert(view, payload);
        let above = self.nullified.split_off(&view);
        let mut kept: BTreeMap<View, View> = BTreeMap::new();
        // A range straddling `view` keeps only its part above `view`.
        if let Some((_, end)) = self.nullified.iter().next_back() {
            if *end > view {
                kept.insert(view + 1, *end);
            }
        }
        for (s, e) in above {
            if s > view {
                kept.insert(s, e);
            } else if e > view {
                kept.insert(view + 1, e);
            }
        }
        self.nullified = kept;
    }

    /// The Simplex parent rule for `p` (assumed well-formed:
    /// `p.parent_view < p.view`).
    pub(crate) fn parent_status(&self, p: &Proposal) -> ParentStatus {
        if p.parent_view < self.floor {
            return ParentStatus::Invalid;
        }
        match self.notarized(p.parent_view) {
            Some(d) if d == p.parent => {}
            Some(_) => return ParentStatus::Invalid,
            None => return ParentStatus::Pending,
        }
        let first = p.parent_view + 1;
        if first < p.view {
            let last = p.view - 1;
            match self.range_of(first) {
                Some((_, end)) if end >= last => {}
                _ => return ParentStatus::Pending,
            }
        }
        ParentStatus::Valid
    }

    /// The parent rule without its nullified-gap condition: only for the
    /// test-only `BrokenVariant::IgnoreParentRule`.
    pub(crate) fn parent_status_ignoring_gaps(&self, p: &Proposal) -> ParentStatus {
        if p.parent_view < self.floor {
            return ParentStatus::Invalid;
        }
        match self.notarized(p.parent_view) {
            Some(d) if d == p.parent => ParentStatus::Valid,
            Some(_) => ParentStatus::Invalid,
            None => ParentStatus::Pending,
        }
    }

    /// The parent a leader of `view` must extend: the highest notarized view
    /// below `view` such that every view in between is nullified. `None` if a
    /// view in between is neither known notarized nor known nullified (the
    /// node jumped ahead and lacks certificates).
    pub(crate) fn parent_for(&self, view: View) -> Option<(View, Digest)> {
        let mut w = view.checked_sub(1)?;
        loop {
            if w < self.floor {
                return None;
            }
            if let Some(d) = self.notarized(w) {
                return Some((w, d));
            }
            let (start, _) = self.range_of(w)?;
            // Views in [start, w] are nullified; prefer one that is also notarized.
            if let Some((nv, d)) = self.notarized.range(start..=w).next_back() {
                return Some((*nv, *d));
            }
            // start > floor, so this cannot underflow.
            w = start - 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn nullified_ranges(&self) -> Vec<(View, View)> {
        self.nullified.iter().map(|(s, e)| (*s, *e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: u8) -> Digest {
        Digest([b; 32])
    }

    #[test]
    fn ranges_merge_and_parent_walks_back() {
        let mut f = Facts::new(Anchor {
            view: 0,
            payload: d(0),
        });
        assert!(f.add_nullified(3));
        assert!(f.add_nullified(1));
        assert!(!f.add_nullified(1));
        assert_eq!(f.nullified_ranges(), vec![(1, 1), (3, 3)]);
        assert_eq!(f.parent_for(4), None, "view 2 unknown");
        assert!(f.add_nullified(2));
        assert_eq!(f.nullified_ranges(), vec![(1, 3)]);
        assert_eq!(f.parent_for(4), Some((0, d(0))));
        assert!(f.add_notarized(2, d(2)));
        assert_eq!(f.parent_for(4), Some((2, d(2))));
        let p = Proposal {
            view: 4,
            parent_view: 0,
            parent: d(0),
            payload: d(4),
        };
        assert_eq!(f.parent_status(&p), ParentStatus::Valid);
        let q = Proposal {
            view: 5,
            parent_view: 0,
            parent: d(0),
            payload: d(5),
        };
        assert_eq!(f.parent_status(&q), ParentStatus::Pending);
        let bad = Proposal { parent: d(9), ..p };
        assert_eq!(f.parent_status(&bad), ParentStatus::Invalid);
        f.finalize(2, d(2));
        assert_eq!(f.nullified_ranges(), vec![(3, 3)]);
        assert_eq!(f.parent_status(&p), ParentStatus::Invalid, "below floor");
        assert_eq!(f.parent_for(4), Some((2, d(2))));
        assert_eq!(f.notarized(0), None);
    }
}
