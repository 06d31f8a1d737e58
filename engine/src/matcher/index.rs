//! The matching keys of the awaiting notifications' message ids, to their slots: a map from
//! (carrier, key) to slot that stores no key. Most keys are found by a 32-bit hash of
//! theirs, and the one found is checked against the message ids of the entry it leads to
//! (the caller's `holds`), so a hash shared by two keys is never taken for a match. A key
//! whose hash already leads to another key's entry is kept whole in a small overflow map
//! instead, and so are the keys of an entry two of whose own keys share a hash: `holds` could
//! not tell those apart.
//!
//! Holds as a map would: inserting a key present replaces its slot; at most one slot per key.

use std::collections::hash_map::Entry;

use foldhash::{HashMap, HashMapExt};

use super::Key;

#[derive(Debug)]
pub(super) struct Index {
    by_hash: HashMap<u32, u32>,
    overflow: HashMap<Key, u32>,
}

impl Index {
    pub fn new() -> Index {
        Index {
            by_hash: HashMap::new(),
            overflow: HashMap::new(),
        }
    }

    /// The slot of `key`, whose hash is `h`. `holds(slot)`: whether that slot's entry has
    /// `key` among its keys.
    pub fn get(&self, h: u32, key: &Key, holds: impl Fn(u32) -> bool) -> Option<u32> {
        if let Some(&slot) = self.by_hash.get(&h) {
            if holds(slot) {
                return Some(slot);
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get(key).copied()
    }

    pub fn remove(&mut self, h: u32, key: &Key, holds: impl Fn(u32) -> bool) -> Option<u32> {
        if let Entry::Occupied(e) = self.by_hash.entry(h) {
            if holds(*e.get()) {
                return Some(e.remove());
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.remove(key)
    }

    /// Removes `key`, which [`Index::get`] just found at `slot`: without checking again,
    /// since a key kept whole never has its slot under its hash as well.
    pub fn remove_found(&mut self, h: u32, key: &Key, slot: u32) {
        match self.by_hash.entry(h) {
            Entry::Occupied(e) if *e.get() == slot => {
                e.remove();
            }
            _ => {
                self.overflow.remove(key);
            }
        }
    }

    /// Maps `key` to `slot`. `holds` as for [`Index::get`]; `alone`: whether no two keys of
    /// `slot`'s entry share a hash.
    pub fn insert(
        &mut self,
        h: u32,
        key: &Key,
        slot: u32,
        holds: impl Fn(u32) -> bool,
        alone: bool,
    ) {
        match self.by_hash.get(&h).copied() {
            // The key is there: it moves to `slot`.
            Some(other) if holds(other) => {
                if alone {
                    self.by_hash.insert(h, slot);
                } else {
                    self.by_hash.remove(&h);
                    self.overflow.insert(key.clone(), slot);
                }
            }
            // Another key has the hash.
            Some(_) => {
                self.overflow.insert(key.clone(), slot);
            }
            None if alone => {
                if !self.overflow.is_empty() {
                    self.overflow.remove(key);
                }
                self.by_hash.insert(h, slot);
            }
            None => {
                self.overflow.insert(key.clone(), slot);
            }
        }
    }

    /// Keys kept whole, for tests.
    #[cfg(test)]
    pub fn overflowed(&self) -> usize {
        self.overflow.len()
    }

    /// Gives back the memory of a peak (a map never shrinks by itself), as
    /// [`super::shrink`] does.
    pub fn shrink(&mut self) {
        super::shrink!(self.by_hash, self.overflow);
    }
}
