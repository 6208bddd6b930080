//! [`SlotSet`]: a set of slots as a bitmap, e.g. the base passages a live index has deleted or
//! replaced (tombstones), which searches skip inside the walk.

/// A set of passage slots, one bit each (125 KB per million slots).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotSet {
    words: Vec<u64>,
    len: usize,
}

impl SlotSet {
    pub fn new() -> SlotSet {
        SlotSet::default()
    }

    /// Adds `slot`; returns whether it was new.
    pub fn insert(&mut self, slot: u32) -> bool {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let new = self.words[word] & bit == 0;
        self.words[word] |= bit;
        self.len += usize::from(new);
        new
    }

    pub fn contains(&self, slot: u32) -> bool {
        self.words
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1u64 << (slot % 64)) != 0)
    }

    /// Number of slots in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::SlotSet;

    #[test]
    fn insert_counts_each_slot_once_and_contains_only_what_was_inserted() {
        let mut set = SlotSet::new();
        assert!(set.insert(3));
        assert!(set.insert(200));
        assert!(!set.insert(3));
        assert_eq!(set.len(), 2);
        assert!(set.contains(3) && set.contains(200));
        assert!(!set.contains(4) && !set.contains(199) && !set.contains(100_000));
    }
}
