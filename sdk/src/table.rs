//! [`Table`]: instances of a multi-instance object keyed by instance number, with the TR-181
//! rule that numbers are never reused while the table lives.

use std::collections::BTreeMap;

/// Rows of a table by instance number. New rows get the next number above every number
/// handed out so far.
#[derive(Debug, Clone)]
pub struct Table<T> {
    rows: BTreeMap<u32, T>,
    next: u32,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            next: 1,
        }
    }
}

impl<T> Table<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row under the next free instance number and returns the number.
    pub fn insert(&mut self, row: T) -> u32 {
        let number = self.next;
        self.rows.insert(number, row);
        self.next = number.saturating_add(1);
        number
    }

    /// Puts a row under a chosen number (e.g. restored from storage).
    pub fn insert_at(&mut self, number: u32, row: T) {
        self.rows.insert(number, row);
        self.next = self.next.max(number.saturating_add(1));
    }

    /// The row with this number.
    pub fn get(&self, number: u32) -> Option<&T> {
        self.rows.get(&number)
    }

    /// The row with this number, mutably.
    pub fn get_mut(&mut self, number: u32) -> Option<&mut T> {
        self.rows.get_mut(&number)
    }

    /// Removes and returns a row.
    pub fn remove(&mut self, number: u32) -> Option<T> {
        self.rows.remove(&number)
    }

    /// Instance numbers, ascending (what `Plugin::instances` returns).
    pub fn instances(&self) -> Vec<u32> {
        self.rows.keys().copied().collect()
    }

    /// Rows with their numbers, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.rows.iter().map(|(number, row)| (*number, row))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_not_reused_after_delete() {
        let mut table = Table::new();
        assert_eq!(table.insert("a"), 1);
        assert_eq!(table.insert("b"), 2);
        table.remove(2);
        assert_eq!(table.insert("c"), 3);
        assert_eq!(table.instances(), [1, 3]);
    }

    #[test]
    fn insert_at_moves_the_next_number_past_it() {
        let mut table = Table::new();
        table.insert_at(7, ());
        assert_eq!(table.insert(()), 8);
    }
}
