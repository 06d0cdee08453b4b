//! The unique-key index of [`MemoryProvider`](super::MemoryProvider): for each table, which
//! instances hold which unique-key values. An Add or a Set of a key parameter looks its values
//! up here instead of reading every sibling, so its cost does not grow with the table (7025
//! refusal, R-ADD.5 generation).
//!
//! An index is kept for the committed store and one for each transaction's staged instances;
//! the transaction combines the two (see `MemoryTransaction::holder` in the sibling `transaction`
//! module).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::provider::ParamValues;
use crate::schema::ObjectDef;

/// The values of one column set, in the set's order; a missing parameter is `None`, so that two
/// instances both lacking it compare equal, as two lookups of it would.
pub(super) type KeyValues = Vec<Option<String>>;

/// Which parameter sets of a table are indexed.
#[derive(Debug)]
pub(super) struct Columns {
    /// The table's unique keys in schema order (set `k` is unique key `k`), then each member of
    /// a multi-member key that is not a key on its own: R-ADD.5 generation asks whether one
    /// member value is already taken, whatever the other members hold.
    sets: Vec<Vec<String>>,
    /// Parameter name → the set holding that parameter alone.
    single: BTreeMap<String, usize>,
}

impl Columns {
    /// The columns of a table definition; `None` when the table has no unique key.
    pub(super) fn of(def: &ObjectDef) -> Option<Columns> {
        if !def.multi_instance || def.unique_keys.is_empty() {
            return None;
        }
        let mut sets = def.unique_keys.clone();
        let mut single = BTreeMap::new();
        for (index, key) in def.unique_keys.iter().enumerate() {
            if let [name] = key.as_slice() {
                single.entry(name.clone()).or_insert(index);
            }
        }
        for name in def.unique_keys.iter().filter(|key| key.len() > 1).flatten() {
            if !single.contains_key(name) {
                single.insert(name.clone(), sets.len());
                sets.push(vec![name.clone()]);
            }
        }
        Some(Columns { sets, single })
    }

    /// The set holding parameter `name` alone (every unique-key member has one).
    pub(super) fn single(&self, name: &str) -> Option<usize> {
        self.single.get(name).copied()
    }

    /// The values of set `set` in `values`.
    pub(super) fn values(&self, set: usize, values: &ParamValues) -> KeyValues {
        self.sets
            .get(set)
            .map(|names| names.iter().map(|name| values.get(name).cloned()).collect())
            .unwrap_or_default()
    }
}

/// The index of one table: for each column set, key values → the instances holding them.
/// Several holders of one value exist only when restored rows already collided.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyIndex {
    sets: Vec<HashMap<KeyValues, BTreeSet<u32>>>,
}

impl KeyIndex {
    /// Records that instance `number` holds `values`.
    pub(super) fn insert(&mut self, columns: &Columns, number: u32, values: &ParamValues) {
        if self.sets.len() < columns.sets.len() {
            self.sets.resize_with(columns.sets.len(), HashMap::new);
        }
        for (set, holders) in self.sets.iter_mut().enumerate() {
            holders
                .entry(columns.values(set, values))
                .or_default()
                .insert(number);
        }
    }

    /// Forgets that instance `number` holds `values` (the values it was inserted with).
    pub(super) fn remove(&mut self, columns: &Columns, number: u32, values: &ParamValues) {
        for (set, holders) in self.sets.iter_mut().enumerate() {
            let key = columns.values(set, values);
            if let Some(numbers) = holders.get_mut(&key) {
                numbers.remove(&number);
                if numbers.is_empty() {
                    holders.remove(&key);
                }
            }
        }
    }

    /// The instances holding `key` in set `set`, ascending.
    pub(super) fn holders<'a>(
        &'a self,
        set: usize,
        key: &[Option<String>],
    ) -> impl Iterator<Item = u32> + 'a {
        self.sets
            .get(set)
            .and_then(|holders| holders.get(key))
            .into_iter()
            .flatten()
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ObjectDef {
        let mut def = ObjectDef::new("Device.T.{i}.");
        def.unique_keys = vec![
            vec!["Alias".into()],
            vec!["Host".into(), "Port".into()],
            vec!["Alias".into(), "Port".into()],
        ];
        def
    }

    fn row(alias: &str, host: &str, port: &str) -> ParamValues {
        [("Alias", alias), ("Host", host), ("Port", port)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn members_of_multi_member_keys_get_a_single_column_each() {
        let Some(columns) = Columns::of(&table()) else {
            panic!("a keyed table has columns");
        };
        assert_eq!(columns.single("Alias"), Some(0));
        assert_eq!(columns.single("Host"), Some(3));
        assert_eq!(columns.single("Port"), Some(4));
        assert!(Columns::of(&ObjectDef::new("Device.T.{i}.")).is_none());
    }

    #[test]
    fn holders_follow_insert_and_remove() {
        let Some(columns) = Columns::of(&table()) else {
            panic!("a keyed table has columns");
        };
        let mut index = KeyIndex::default();
        index.insert(&columns, 2, &row("a", "h", "80"));
        index.insert(&columns, 1, &row("b", "h", "80"));
        let key = columns.values(1, &row("", "h", "80"));
        assert_eq!(index.holders(1, &key).collect::<Vec<_>>(), [1, 2]);
        index.remove(&columns, 1, &row("b", "h", "80"));
        assert_eq!(index.holders(1, &key).collect::<Vec<_>>(), [2]);
        let port = columns.values(4, &row("", "", "80"));
        assert_eq!(index.holders(4, &port).collect::<Vec<_>>(), [2]);
        index.remove(&columns, 2, &row("a", "h", "80"));
        assert_eq!(index.holders(4, &port).count(), 0);
        assert!(index.sets.iter().all(HashMap::is_empty));
    }
}
