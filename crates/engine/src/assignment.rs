//! Who gets which item next. Each project's assignment state lives in memory, built once from
//! the store (one scan of its answers and skips) and then kept current by the engine's own
//! writes, so handing out an item never scans the database. The store stays the truth: the
//! state is dropped and rebuilt whenever something other than a submit or skip changes a
//! project's items or answers (imports, settings).
//!
//! Rules: an item goes to at most `overlap` distinct annotators (answers stored plus leases
//! held by others); an annotator never gets an item they answered or skipped; a lease lasts
//! [`LEASE_MS`] and an expired one is reclaimed, so an abandoned item returns to the pool.
//! Gold questions sit outside that pool: each annotator gets one about every `gold_every`
//! items (at a jittered, per-annotator position, so they cannot be counted off), whatever
//! the overlap, until they have answered them all.

use std::collections::HashMap;

use concord_domain::UserId;

/// How long an item handed out stays reserved for its annotator.
pub(crate) const LEASE_MS: u64 = 30 * 60 * 1000;

/// A growable set of item sequence numbers.
#[derive(Debug, Default, Clone)]
struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    fn contains(&self, seq: u64) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// Adds `seq`; false when it was already there.
    fn insert(&mut self, seq: u64) -> bool {
        let i = (seq / 64) as usize;
        if i >= self.words.len() {
            self.words.resize(i + 1, 0);
        }
        let bit = 1 << (seq % 64);
        let fresh = self.words[i] & bit == 0;
        self.words[i] |= bit;
        fresh
    }

    fn remove(&mut self, seq: u64) {
        if let Some(w) = self.words.get_mut((seq / 64) as usize) {
            *w &= !(1 << (seq % 64));
        }
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

#[derive(Debug, Default)]
struct AnnotatorState {
    answered: SeqSet,
    skipped: SeqSet,
    /// Items leased to this annotator, oldest first.
    held: Vec<u64>,
    /// Regular items answered since the last gold question was handed out.
    since_gold: u32,
    /// How many regular items come before the next gold question (0: not drawn yet).
    gold_gap: u32,
    /// Gold questions handed out so far (seeds the next gap).
    golds_served: u32,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    user: UserId,
    until_ms: u64,
}

/// One project's assignment state.
#[derive(Debug)]
pub(crate) struct ProjectAssignment {
    overlap: u32,
    items: u64,
    /// Distinct annotators with an answer, per item (saturating).
    answers: Vec<u16>,
    /// Every item below this has all the answers it needs.
    open_from: u64,
    annotators: HashMap<UserId, AnnotatorState>,
    leases: HashMap<u64, Vec<Lease>>,
    /// Gold questions, as a set and in ascending order.
    gold: SeqSet,
    gold_order: Vec<u64>,
    gold_every: u32,
    /// Items active learning puts first (in order); the rest follow in import order.
    priority: Vec<u64>,
}

/// The number of regular items before an annotator's next gold question: between half and
/// one and a half times `every`, drawn from (user, count) so it is stable across reloads.
fn gold_gap(every: u32, user: UserId, served: u32) -> u32 {
    let mut z = user.0 ^ (u64::from(served) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (every / 2 + (z % u64::from(every.max(1))) as u32).max(1)
}

impl ProjectAssignment {
    pub(crate) fn new(items: u64, overlap: u32) -> ProjectAssignment {
        ProjectAssignment {
            overlap: overlap.max(1),
            items,
            answers: vec![0; items as usize],
            open_from: 0,
            annotators: HashMap::new(),
            leases: HashMap::new(),
            gold: SeqSet::default(),
            gold_order: Vec::new(),
            gold_every: 0,
            priority: Vec::new(),
        }
    }

    /// Records a stored answer. Idempotent: a second call for the same pair changes nothing.
    pub(crate) fn answered(&mut self, user: UserId, seq: u64) {
        if seq >= self.items {
            return;
        }
        if self.count_answer(user, seq) && !self.gold.contains(seq) {
            let state = self.annotators.entry(user).or_default();
            state.since_gold = state.since_gold.saturating_add(1);
        }
        self.release(user, seq);
        self.advance_open_from();
    }

    /// Adds `user`'s answer to `seq`'s count, once per annotator; true the first time.
    fn count_answer(&mut self, user: UserId, seq: u64) -> bool {
        let fresh = self
            .annotators
            .entry(user)
            .or_default()
            .answered
            .insert(seq);
        if fresh {
            let n = &mut self.answers[seq as usize];
            *n = n.saturating_add(1);
        }
        fresh
    }

    /// Records a skip: the item leaves this annotator's queue.
    pub(crate) fn skipped(&mut self, user: UserId, seq: u64) {
        self.annotators.entry(user).or_default().skipped.insert(seq);
        self.release(user, seq);
    }

    /// Brings an annotator's skipped items back.
    pub(crate) fn clear_skips(&mut self, user: UserId) {
        if let Some(state) = self.annotators.get_mut(&user) {
            state.skipped = SeqSet::default();
        }
    }

    /// How many items `user` has answered.
    #[cfg(test)]
    fn answered_by(&self, user: UserId) -> u64 {
        self.annotators.get(&user).map_or(0, |s| s.answered.len())
    }

    /// The next item for `user`, leased to them until `now_ms + LEASE_MS`: first an item they
    /// already hold (so a reload shows the same item), then the lowest open item they have not
    /// answered or skipped. `excluded` are items the client already shows or has prefetched.
    pub(crate) fn next_for(&mut self, user: UserId, excluded: &[u64], now_ms: u64) -> Option<u64> {
        let state = self.annotators.entry(user).or_default();
        // Drop holds that expired or that another path resolved.
        let leases = &self.leases;
        state.held.retain(|seq| {
            leases
                .get(seq)
                .is_some_and(|ls| ls.iter().any(|l| l.user == user && l.until_ms > now_ms))
        });
        if let Some(seq) = state
            .held
            .iter()
            .copied()
            .find(|s| !excluded.contains(s) && !state.answered.contains(*s))
        {
            self.lease(user, seq, now_ms);
            return Some(seq);
        }
        if let Some(seq) = self.due_gold_question(user, excluded) {
            self.lease(user, seq, now_ms);
            return Some(seq);
        }
        let state = self.annotators.entry(user).or_default();
        let overlap = u64::from(self.overlap);
        let mut found = None;
        let priority = self.priority.iter().copied().filter(|s| *s < self.items);
        for seq in priority.chain(self.open_from..self.items) {
            if state.answered.contains(seq)
                || state.skipped.contains(seq)
                || self.gold.contains(seq)
            {
                continue;
            }
            let mut taken = u64::from(self.answers[seq as usize]);
            if taken >= overlap {
                continue;
            }
            if let Some(ls) = self.leases.get(&seq) {
                taken += ls
                    .iter()
                    .filter(|l| l.user != user && l.until_ms > now_ms)
                    .count() as u64;
            }
            if taken < overlap && !excluded.contains(&seq) {
                found = Some(seq);
                break;
            }
        }
        let seq = found?;
        self.lease(user, seq, now_ms);
        Some(seq)
    }

    /// A gold question for `user` if one is due and they have one left.
    fn due_gold_question(&mut self, user: UserId, excluded: &[u64]) -> Option<u64> {
        if self.gold_every == 0 || self.gold_order.is_empty() {
            return None;
        }
        let every = self.gold_every;
        let state = self.annotators.entry(user).or_default();
        if state.gold_gap == 0 {
            state.gold_gap = gold_gap(every, user, state.golds_served);
        }
        if state.since_gold < state.gold_gap {
            return None;
        }
        let seq = self.gold_order.iter().copied().find(|s| {
            !state.answered.contains(*s) && !state.skipped.contains(*s) && !excluded.contains(s)
        })?;
        state.since_gold = 0;
        state.golds_served += 1;
        state.gold_gap = gold_gap(every, user, state.golds_served);
        Some(seq)
    }

    /// Makes `seq` a gold question or a regular item again.
    pub(crate) fn set_gold_question(&mut self, seq: u64, on: bool) {
        if on {
            if self.gold.insert(seq) {
                let at = self.gold_order.partition_point(|s| *s < seq);
                self.gold_order.insert(at, seq);
            }
        } else {
            self.gold.remove(seq);
            self.gold_order.retain(|s| *s != seq);
        }
    }

    /// Puts `seqs` first in every queue (an empty list restores import order).
    pub(crate) fn set_priority(&mut self, seqs: Vec<u64>) {
        self.priority = seqs;
    }

    /// How often gold questions come (0: never).
    pub(crate) fn set_gold_every(&mut self, every: u32) {
        self.gold_every = every;
    }

    fn lease(&mut self, user: UserId, seq: u64, now_ms: u64) {
        let ls = self.leases.entry(seq).or_default();
        // Expired leases on this item are reclaimed here.
        ls.retain(|l| l.user != user && l.until_ms > now_ms);
        ls.push(Lease {
            user,
            until_ms: now_ms + LEASE_MS,
        });
        self.hold(user, seq);
    }

    /// Notes on the annotator's side that they hold `seq` (the lease itself is in `leases`).
    fn hold(&mut self, user: UserId, seq: u64) {
        let state = self.annotators.entry(user).or_default();
        if !state.held.contains(&seq) {
            state.held.push(seq);
        }
    }

    /// Ends `user`'s hold on `seq`, on both sides.
    fn release(&mut self, user: UserId, seq: u64) {
        if let Some(state) = self.annotators.get_mut(&user) {
            state.held.retain(|s| *s != seq);
        }
        if let Some(ls) = self.leases.get_mut(&seq) {
            ls.retain(|l| l.user != user);
            if ls.is_empty() {
                self.leases.remove(&seq);
            }
        }
    }

    fn advance_open_from(&mut self) {
        let overlap = self.overlap.min(u32::from(u16::MAX)) as u16;
        while self.open_from < self.items && self.answers[self.open_from as usize] >= overlap {
            self.open_from += 1;
        }
    }

    /// Adds a stored answer while loading a snapshot (items may not be counted yet).
    pub(crate) fn load_answer(&mut self, user: UserId, seq: u64) {
        if seq >= self.items {
            self.set_items(seq + 1);
        }
        self.count_answer(user, seq);
    }

    /// Adds a stored skip while loading a snapshot.
    pub(crate) fn load_skip(&mut self, user: UserId, seq: u64) {
        self.annotators.entry(user).or_default().skipped.insert(seq);
    }

    /// Sets how many items the project has (they only ever grow).
    pub(crate) fn set_items(&mut self, items: u64) {
        if items > self.items {
            self.items = items;
            self.answers.resize(items as usize, 0);
        }
    }

    /// Changes how many annotators each item needs.
    pub(crate) fn set_overlap(&mut self, overlap: u32) {
        self.overlap = overlap.max(1);
        self.open_from = 0;
        self.advance_open_from();
    }

    /// Keeps the live leases of an older state of the same project (after a reload).
    pub(crate) fn adopt_leases(&mut self, older: ProjectAssignment) {
        for (seq, ls) in older.leases {
            for l in ls {
                let fresh = self
                    .annotators
                    .get(&l.user)
                    .is_none_or(|s| !s.answered.contains(seq) && !s.skipped.contains(seq));
                if fresh && seq < self.items {
                    self.leases.entry(seq).or_default().push(l);
                    self.hold(l.user, seq);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);
    const C: UserId = UserId(3);

    #[test]
    fn each_item_goes_to_overlap_distinct_annotators_and_never_twice_to_one() {
        let mut q = ProjectAssignment::new(2, 2);
        assert_eq!(q.next_for(A, &[], 0), Some(0));
        assert_eq!(q.next_for(B, &[], 0), Some(0));
        // Item 0 is held by two annotators: the third gets item 1.
        assert_eq!(q.next_for(C, &[], 0), Some(1));
        q.answered(A, 0);
        q.answered(A, 0);
        assert_eq!(q.answered_by(A), 1);
        // A never sees item 0 again, and item 0 is full (A answered, B holds it).
        assert_eq!(q.next_for(A, &[], 0), Some(1));
        q.answered(B, 0);
        q.answered(A, 1);
        q.answered(C, 1);
        assert_eq!(q.next_for(A, &[], 0), None);
        assert_eq!(q.next_for(B, &[], 0), None);
        assert_eq!(q.open_from, 2);
    }

    #[test]
    fn a_held_item_comes_back_on_reload_unless_the_client_already_shows_it() {
        let mut q = ProjectAssignment::new(3, 1);
        assert_eq!(q.next_for(A, &[], 0), Some(0));
        assert_eq!(q.next_for(A, &[], 10), Some(0));
        // Prefetch: the client shows item 0 and asks for the one after.
        assert_eq!(q.next_for(A, &[0], 10), Some(1));
        assert_eq!(q.next_for(B, &[], 10), Some(2));
        assert_eq!(q.next_for(C, &[], 10), None);
    }

    #[test]
    fn an_expired_lease_is_reclaimed() {
        let mut q = ProjectAssignment::new(1, 1);
        assert_eq!(q.next_for(A, &[], 0), Some(0));
        assert_eq!(q.next_for(B, &[], LEASE_MS - 1), None);
        assert_eq!(q.next_for(B, &[], LEASE_MS + 1), Some(0));
        // A's lease is gone: A no longer holds it, and B does.
        assert_eq!(q.next_for(A, &[], LEASE_MS + 2), None);
    }

    #[test]
    fn skips_leave_the_queue_until_cleared() {
        let mut q = ProjectAssignment::new(2, 1);
        assert_eq!(q.next_for(A, &[], 0), Some(0));
        q.skipped(A, 0);
        assert_eq!(q.next_for(A, &[], 0), Some(1));
        q.skipped(A, 1);
        assert_eq!(q.next_for(A, &[], 0), None);
        // A skip releases the lease: someone else can take the item.
        assert_eq!(q.next_for(B, &[], 0), Some(0));
        q.clear_skips(A);
        assert_eq!(q.next_for(A, &[], 0), Some(1));
    }

    #[test]
    fn a_reload_keeps_live_leases_and_sees_new_items() {
        let mut q = ProjectAssignment::new(2, 1);
        assert_eq!(q.next_for(A, &[], 0), Some(0));
        let mut fresh = ProjectAssignment::new(0, 1);
        fresh.load_answer(C, 1);
        fresh.set_items(3);
        fresh.set_overlap(1);
        fresh.adopt_leases(q);
        assert_eq!(fresh.next_for(B, &[], 1), Some(2));
        assert_eq!(fresh.next_for(A, &[], 1), Some(0));
    }

    #[test]
    fn raising_the_overlap_reopens_finished_items() {
        let mut q = ProjectAssignment::new(1, 1);
        q.answered(A, 0);
        assert_eq!(q.next_for(B, &[], 0), None);
        q.set_overlap(2);
        assert_eq!(q.next_for(B, &[], 0), Some(0));
        assert_eq!(q.next_for(A, &[], 0), None);
    }

    #[test]
    fn priority_items_come_first_then_import_order() {
        let mut q = ProjectAssignment::new(5, 1);
        q.set_priority(vec![3, 1, 9]);
        assert_eq!(q.next_for(A, &[], 0), Some(3));
        assert_eq!(q.next_for(B, &[], 0), Some(1));
        // 9 is not an item; after the list, the lowest open item.
        assert_eq!(q.next_for(C, &[], 0), Some(0));
        q.answered(A, 3);
        assert_eq!(q.next_for(A, &[], 0), Some(2));
    }

    #[test]
    fn answers_for_unknown_items_are_ignored() {
        let mut q = ProjectAssignment::new(1, 1);
        q.answered(A, 5);
        assert_eq!(q.next_for(B, &[], 0), Some(0));
    }

    #[test]
    fn gold_questions_reach_every_annotator_between_regular_items() {
        let mut q = ProjectAssignment::new(42, 1);
        q.set_gold_every(4);
        q.set_gold_question(7, true);
        q.set_gold_question(3, true);
        let mut served: HashMap<UserId, Vec<u64>> = HashMap::new();
        let mut more = true;
        while more {
            more = false;
            for user in [A, B] {
                if let Some(seq) = q.next_for(user, &[], 0) {
                    served.entry(user).or_default().push(seq);
                    q.answered(user, seq);
                    more = true;
                }
            }
        }
        let mut regular: Vec<u64> = Vec::new();
        for user in [A, B] {
            let seqs = &served[&user];
            let golds: Vec<usize> = (0..seqs.len())
                .filter(|i| [3, 7].contains(&seqs[*i]))
                .collect();
            // Both questions, lowest first, each after at least every/2 regular items.
            assert_eq!(golds.len(), 2, "{user:?} got {seqs:?}");
            assert_eq!(seqs[golds[0]], 3);
            assert!(golds[0] >= 2 && golds[1] - golds[0] > 2, "{seqs:?}");
            regular.extend(seqs.iter().filter(|s| ![3, 7].contains(*s)));
        }
        // Every regular item went to exactly one annotator (overlap 1).
        regular.sort();
        let want: Vec<u64> = (0..42).filter(|s| ![3, 7].contains(s)).collect();
        assert_eq!(regular, want);
        // Unmarked, an item is regular again.
        q.set_gold_question(7, false);
        assert!(!q.gold.contains(7));
        assert_eq!(q.gold_order, [3]);
    }
}
