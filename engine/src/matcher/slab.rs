//! The awaiting notifications, by slot number, in pages of fixed size: growing adds a page
//! (no copy of what is there, nor twice the memory while it is copied), and a page whose
//! entries are all gone is given back (but one such page, kept for what comes next), so
//! that the memory a peak took (a million awaiting their receipts, a backlog after an
//! outage) returns as it settles. Freed slots are reused before new pages are added, those
//! of the lowest page first, so that the highest pages empty. The entries are also linked
//! in order of acceptance, which is the order of their receipt deadlines, so that the next
//! one due is the first: settling an entry unlinks it at once, where a queue of deadlines
//! would hold on to it until its deadline.

use std::collections::BTreeSet;

use super::entry::Entry;

const PAGE_BITS: u32 = 12;
const PAGE: usize = 1 << PAGE_BITS;
/// No slot: the end of a list.
const NIL: u32 = u32::MAX;

#[derive(Debug)]
enum Slot {
    Full(Node),
    Free { next: u32 },
}

#[derive(Debug)]
struct Node {
    /// Neighbours in order of acceptance.
    prev: u32,
    next: u32,
    entry: Entry,
}

#[derive(Debug)]
pub(super) struct Slab {
    /// `None`: a page given back, its number free for the next page added.
    pages: Vec<Option<Box<[Slot]>>>,
    /// Per page: its first free slot, each free slot naming the next of the same page.
    free: Vec<u32>,
    /// Per page: how many entries it holds.
    used: Vec<u32>,
    /// The pages that have a free slot, lowest first.
    open: BTreeSet<u32>,
    /// The one page kept while empty.
    spare: Option<usize>,
    len: usize,
    /// Oldest and newest entry.
    head: u32,
    tail: u32,
}

fn page_of(slot: u32) -> usize {
    (slot >> PAGE_BITS) as usize
}

impl Slab {
    pub fn new() -> Slab {
        Slab {
            pages: Vec::new(),
            free: Vec::new(),
            used: Vec::new(),
            open: BTreeSet::new(),
            spare: None,
            len: 0,
            head: NIL,
            tail: NIL,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn slot(&self, slot: u32) -> Option<&Slot> {
        let page = self.pages.get(page_of(slot))?.as_ref()?;
        page.get(slot as usize & (PAGE - 1))
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Slot> {
        let page = self.pages.get_mut(page_of(slot))?.as_mut()?;
        page.get_mut(slot as usize & (PAGE - 1))
    }

    fn node_mut(&mut self, slot: u32) -> Option<&mut Node> {
        match self.slot_mut(slot)? {
            Slot::Full(node) => Some(node),
            Slot::Free { .. } => None,
        }
    }

    pub fn get(&self, slot: u32) -> Option<&Entry> {
        match self.slot(slot)? {
            Slot::Full(node) => Some(&node.entry),
            Slot::Free { .. } => None,
        }
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.node_mut(slot).map(|n| &mut n.entry)
    }

    /// The entry accepted first of those still here.
    pub fn first(&self) -> Option<(u32, &Entry)> {
        Some((self.head, self.get(self.head)?))
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Entry)> {
        (self.pages.iter().zip(0u32..))
            .filter_map(|(page, p)| Some((page.as_ref()?, p << PAGE_BITS)))
            .flat_map(|(page, first)| page.iter().zip(first..))
            .filter_map(|(s, slot)| match s {
                Slot::Full(node) => Some((slot, &node.entry)),
                Slot::Free { .. } => None,
            })
    }

    /// Every entry, oldest first.
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = (u32, &Entry)> {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let Some(Slot::Full(node)) = self.slot(at) else {
                return None;
            };
            let slot = at;
            at = node.next;
            Some((slot, &node.entry))
        })
    }

    /// Stores `entry` as the newest; `Err` with it when every slot number is taken.
    pub fn push(&mut self, entry: Entry) -> Result<u32, Entry> {
        let page = match self.open.first() {
            Some(&page) => page as usize,
            None => match self.grow() {
                Some(page) => page,
                None => return Err(entry),
            },
        };
        let (slot, tail) = (self.free[page], self.tail);
        let Some(s) = self.slot_mut(slot) else {
            return Err(entry);
        };
        let Slot::Free { next } = *s else {
            // The free list names free slots only.
            return Err(entry);
        };
        *s = Slot::Full(Node {
            prev: tail,
            next: NIL,
            entry,
        });
        self.free[page] = next;
        self.used[page] += 1;
        if self.spare == Some(page) {
            self.spare = None;
        }
        if next == NIL {
            self.open.remove(&(page as u32));
        }
        match self.node_mut(tail) {
            Some(tail) => tail.next = slot,
            None => self.head = slot,
        }
        self.tail = slot;
        self.len += 1;
        Ok(slot)
    }

    pub fn remove(&mut self, slot: u32) -> Option<Entry> {
        let free = *self.free.get(page_of(slot))?;
        let s = self.slot_mut(slot)?;
        let Slot::Full(Node { prev, next, .. }) = *s else {
            return None;
        };
        let Slot::Full(node) = std::mem::replace(s, Slot::Free { next: free }) else {
            return None;
        };
        self.freed(slot, prev, next);
        Some(node.entry)
    }

    /// As [`Slab::remove`], for an entry no longer wanted: dropped where it is.
    pub fn discard(&mut self, slot: u32) -> bool {
        let Some(&free) = self.free.get(page_of(slot)) else {
            return false;
        };
        let Some(s) = self.slot_mut(slot) else {
            return false;
        };
        let Slot::Full(Node { prev, next, .. }) = *s else {
            return false;
        };
        *s = Slot::Free { next: free };
        self.freed(slot, prev, next);
        true
    }

    /// Puts `slot`, just emptied, on its page's free list and out of the order of acceptance;
    /// gives a page back if that was the page's last entry and another page is empty.
    fn freed(&mut self, slot: u32, prev: u32, next: u32) {
        let page = page_of(slot);
        if self.free[page] == NIL {
            self.open.insert(page as u32);
        }
        self.free[page] = slot;
        self.used[page] -= 1;
        self.len -= 1;
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if self.used[page] == 0 {
            // One empty page is kept: a load that hovers at a page's edge would otherwise
            // give a page back and take a new one over and over.
            match self.spare {
                None => self.spare = Some(page),
                Some(spare) if spare != page => {
                    self.spare = Some(spare.min(page));
                    self.give_back(spare.max(page));
                }
                Some(_) => {}
            }
        }
    }

    fn give_back(&mut self, page: usize) {
        self.pages[page] = None;
        self.free[page] = NIL;
        self.open.remove(&(page as u32));
        while self.pages.last().is_some_and(Option::is_none) {
            self.pages.pop();
            self.free.pop();
            self.used.pop();
        }
    }

    /// Adds a page, in the place of the lowest one given back if any, all its slots free;
    /// `None` when slot numbers would run out.
    fn grow(&mut self) -> Option<usize> {
        let page = (self.pages.iter().position(Option::is_none)).unwrap_or(self.pages.len());
        if ((page + 1) << PAGE_BITS) > NIL as usize {
            return None;
        }
        let first = (page << PAGE_BITS) as u32;
        let slots = (1..=PAGE as u32)
            .map(|i| Slot::Free {
                next: if i < PAGE as u32 { first + i } else { NIL },
            })
            .collect();
        if page == self.pages.len() {
            self.pages.push(Some(slots));
            self.free.push(first);
            self.used.push(0);
        } else {
            self.pages[page] = Some(slots);
            self.free[page] = first;
            self.used[page] = 0;
        }
        self.open.insert(page as u32);
        Some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Meta;

    fn entry(n: i64) -> Entry {
        let meta = crate::notification::sample("e").meta;
        let meta = Meta {
            transaction_id: n.to_string(),
            ..meta
        };
        Entry::new(meta, 0, &["1".to_owned()], n)
    }

    fn order(s: &Slab) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = s.head;
        while let Some(e) = s.get(at) {
            out.push(e.deadline);
            at = s.node(at).map_or(NIL, |n| n.next);
        }
        out
    }

    impl Slab {
        /// Pages holding memory.
        fn allocated(&self) -> usize {
            self.pages.iter().flatten().count()
        }

        fn node(&self, slot: u32) -> Option<&Node> {
            match self.slot(slot)? {
                Slot::Full(node) => Some(node),
                Slot::Free { .. } => None,
            }
        }
    }

    #[test]
    fn an_entry_is_no_bigger_than_planned() {
        // The matcher's memory per awaiting notification is mostly this, plus its index.
        assert!(
            std::mem::size_of::<Slot>() <= 112,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn freed_slots_are_reused_and_order_of_acceptance_kept() {
        let mut s = Slab::new();
        let slots: Vec<u32> = (0..5).map(|n| s.push(entry(n)).expect("room")).collect();
        assert_eq!(order(&s), [0, 1, 2, 3, 4]);
        assert_eq!(s.remove(slots[2]).map(|e| e.deadline), Some(2));
        assert!(s.remove(slots[2]).is_none(), "already gone");
        assert!(s.get(slots[2]).is_none());
        assert_eq!(s.remove(slots[0]).map(|e| e.deadline), Some(0));
        let again = s.push(entry(5)).expect("room");
        assert_eq!(again, slots[0], "the last freed slot first");
        assert_eq!(order(&s), [1, 3, 4, 5]);
        assert_eq!(
            s.first().map(|(slot, e)| (slot, e.deadline)),
            Some((slots[1], 1))
        );
        s.remove(slots[4]);
        assert_eq!(order(&s), [1, 3, 5]);
        assert_eq!(s.len(), 3);
        let mut seen: Vec<i64> = s.iter().map(|(_, e)| e.deadline).collect();
        seen.sort_unstable();
        assert_eq!(seen, [1, 3, 5]);
    }

    #[test]
    fn pages_are_added_as_needed_and_given_back_when_all_is_settled() {
        let mut s = Slab::new();
        let n = PAGE as i64 * 2 + 3;
        let slots: Vec<u32> = (0..n).map(|i| s.push(entry(i)).expect("room")).collect();
        assert_eq!(s.allocated(), 3);
        assert_eq!(s.iter().count(), n as usize);
        for (i, slot) in slots.iter().enumerate() {
            assert_eq!(s.get(*slot).map(|e| e.deadline), Some(i as i64));
        }
        for slot in slots {
            assert!(s.remove(slot).is_some());
        }
        assert_eq!((s.len(), s.allocated()), (0, 1));
        assert!(s.first().is_none());
        let slots: Vec<u32> = (0..PAGE as i64 + 1)
            .map(|i| s.push(entry(i)).expect("room"))
            .collect();
        let distinct: std::collections::BTreeSet<u32> = slots.iter().copied().collect();
        assert_eq!(distinct.len(), slots.len());
        assert_eq!(order(&s), (0..PAGE as i64 + 1).collect::<Vec<_>>());
    }

    #[test]
    fn pages_emptied_while_others_wait_are_given_back_but_one() {
        let mut s = Slab::new();
        let n = PAGE as i64 * 4;
        let slots: Vec<u32> = (0..n).map(|i| s.push(entry(i)).expect("room")).collect();
        assert_eq!(s.allocated(), 4);
        // The oldest settle first, as receipts come: the first page empties, and is kept
        // for what comes next.
        for slot in &slots[..PAGE] {
            assert!(s.discard(*slot));
        }
        assert_eq!(s.allocated(), 4, "one empty page is kept");
        // The second empties too: one of the two is given back.
        for slot in &slots[PAGE..2 * PAGE] {
            assert!(s.remove(*slot).is_some());
        }
        assert_eq!(s.allocated(), 3);
        assert!(s.get(slots[0]).is_none() && s.get(slots[PAGE]).is_none());
        assert!(!s.discard(slots[PAGE]), "nothing left there");
        // What waits is where it was, in order.
        for (i, slot) in slots.iter().enumerate().skip(2 * PAGE) {
            assert_eq!(s.get(*slot).map(|e| e.deadline), Some(i as i64));
        }
        assert_eq!(s.iter().count(), 2 * PAGE);
        assert_eq!(s.first().map(|(_, e)| e.deadline), Some(2 * PAGE as i64));
        // New entries go to the lowest page with room: the kept one, then the one given
        // back, under its old number; never above the highest page in use.
        let fresh: Vec<u32> = (0..2 * PAGE as i64)
            .map(|i| s.push(entry(n + i)).expect("room"))
            .collect();
        assert!(fresh.iter().all(|&slot| page_of(slot) < 2), "{fresh:?}");
        assert_eq!(s.allocated(), 4);
        assert_eq!(order(&s).last(), Some(&(n + 2 * PAGE as i64 - 1)));
        // The highest page emptied: the page vectors shrink with it.
        let high: Vec<u32> = (s.iter().map(|(slot, _)| slot))
            .filter(|&slot| page_of(slot) >= 2)
            .collect();
        assert_eq!(high.len(), 2 * PAGE);
        for slot in high {
            assert!(s.discard(slot));
        }
        assert_eq!((s.allocated(), s.pages.len()), (3, 3));
    }

    #[test]
    fn a_load_at_a_pages_edge_does_not_give_pages_back_and_take_them_again() {
        let mut s = Slab::new();
        let mut slots: Vec<u32> = (0..PAGE as i64)
            .map(|i| s.push(entry(i)).expect("room"))
            .collect();
        for i in 0..10 {
            // One more than a page, then one less.
            let over = s.push(entry(i)).expect("room");
            assert_eq!(page_of(over), 1);
            let before = s.pages[1].as_ref().map(|p| p.as_ptr());
            s.remove(over);
            assert_eq!(s.allocated(), 2, "the empty page is kept");
            assert_eq!(s.pages[1].as_ref().map(|p| p.as_ptr()), before);
        }
        for slot in slots.drain(..) {
            s.remove(slot);
        }
        assert_eq!(s.allocated(), 1);
    }
}
