//! The committed store of a [`MemoryProvider`](super::MemoryProvider): every object's values,
//! every table's instance numbers and next number, and the unique-key indexes; the path helpers
//! that map concrete paths to supported ones; the objects an instance starts with; and the
//! `*NumberOfEntries` values, counted from the store's tables on every read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Inner;
use super::counts::counted_table;
use super::keys::KeyIndex;
use crate::provider::ParamValues;
use crate::schema::{ObjectDef, Schema};

#[derive(Debug, Clone, Default)]
pub(super) struct Store {
    /// Concrete object path → its parameter values.
    pub(super) objects: BTreeMap<String, ParamValues>,
    /// Concrete table path (no instance) → its instance numbers.
    pub(super) tables: BTreeMap<String, BTreeSet<u32>>,
    /// Concrete table path → next instance number.
    pub(super) next: BTreeMap<String, u32>,
    /// Concrete table path → its unique-key index (tables with unique keys only), kept equal
    /// to what `objects` holds.
    pub(super) keys: HashMap<String, KeyIndex>,
}

/// The supported path of a concrete path: instance numbers become `{i}`.
pub fn supported_path(concrete: &str) -> String {
    let mut out = String::with_capacity(concrete.len() + 8);
    for part in concrete.split_inclusive('.') {
        let bare = part.trim_end_matches('.');
        if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str("{i}");
            out.push_str(&part[bare.len()..]);
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The table and instance number of a concrete instance path (`Device.X.3.` → `Device.X.`, 3).
pub(super) fn split_instance(path: &str) -> Option<(&str, u32)> {
    let trimmed = path.trim_end_matches('.');
    let cut = trimmed.rfind('.')?;
    let number = trimmed[cut + 1..].parse().ok()?;
    Some((&path[..=cut], number))
}

/// The initial values of an object's stored parameters (every parameter but the
/// `*NumberOfEntries` counts, which are computed on read): defaults, or the zero of the type.
pub(super) fn defaults(def: &ObjectDef) -> ParamValues {
    def.params
        .iter()
        .filter(|param| counted_table(param).is_none())
        .map(|param| (param.name.clone(), param.initial_value()))
        .collect()
}

/// Creates an instance (with defaults, sub-objects and nested table entries) in a store.
/// Returns false when its table is unknown or its parent does not exist.
pub(super) fn create_instance(schema: &Schema, store: &mut Store, path: &str) -> bool {
    let supported = supported_path(path);
    if schema.object(&supported).is_none() {
        return false;
    }
    let Some(cut) = path.trim_end_matches('.').rfind('.') else {
        return false;
    };
    let table = &path[..=cut];
    let Ok(number) = path[cut + 1..path.len() - 1].parse::<u32>() else {
        return false;
    };
    let Some(numbers) = store.tables.get_mut(table) else {
        return false;
    };
    numbers.insert(number);
    let mut objects = Vec::new();
    let mut tables = Vec::new();
    for def in schema.subtree(&supported) {
        let rest = &def.path[supported.len()..];
        match rest.matches("{i}").count() {
            0 => objects.push((format!("{path}{rest}"), defaults(def))),
            1 if rest.ends_with("{i}.") => {
                tables.push(format!("{path}{}", rest.trim_end_matches("{i}.")));
            }
            _ => {}
        }
    }
    for (object, values) in objects {
        store.objects.entry(object).or_insert(values);
    }
    for table in tables {
        store.tables.entry(table.clone()).or_default();
        store.next.entry(table).or_insert(1);
    }
    true
}

/// The value of count parameter `param` of the concrete object `object`, as `store` holds it.
fn count_of(store: &Store, object: &str, table: &str) -> String {
    store
        .tables
        .get(&format!("{object}{table}."))
        .map_or(0, BTreeSet::len)
        .to_string()
}

impl Inner {
    /// The count parameters of the concrete object `object` with the values `store` gives them.
    pub(super) fn counts(&self, store: &Store, object: &str) -> Vec<(String, String)> {
        let Some(def) = self.schema.object(&supported_path(object)) else {
            return Vec::new();
        };
        def.params
            .iter()
            .filter_map(|param| {
                let table = counted_table(param)?;
                Some((param.name.clone(), count_of(store, object, table)))
            })
            .collect()
    }
}
