//! `*NumberOfEntries` parameters of a [`MemoryProvider`](super::MemoryProvider): which table each
//! counts. Their values are never stored: the store computes them on every read
//! (`Inner::counts` in the sibling `store` module), and defaults leave them out.

use crate::schema::ParamDef;
use crate::value::ValueType;

/// TR-181 count parameters whose table is not named by the parameter's prefix (the model's
/// `numEntriesParameter` exceptions in Device:2.19): parameter name → table name.
const COUNT_EXCEPTIONS: &[(&str, &str)] = &[
    ("ForwardNumberOfEntries", "Forwarding"),
    ("DeviceImageNumberOfEntries", "DeviceImageFile"),
    ("TaskCapabilityRegistryNumberOfEntries", "Registry"),
    ("ResultConflictNumberOfEntries", "Conflict"),
    ("ResultReportTableNumberOfEntries", "ReportTable"),
    ("ResultReportRowNumberOfEntries", "ResultRow"),
    ("BindingTableNumberOfEntries", "Binding"),
];

/// For a `<Table>NumberOfEntries` parameter, the name of the table it counts (a child of its
/// own object). Such a value is always the live number of rows, never a stored one, so it can
/// neither go stale nor read as an empty string; a table this provider does not serve counts 0.
pub fn counted_table(param: &ParamDef) -> Option<&str> {
    if param.value_type != ValueType::UnsignedInt {
        return None;
    }
    let table = param.name.strip_suffix("NumberOfEntries")?;
    let table = COUNT_EXCEPTIONS
        .iter()
        .find(|(name, _)| *name == param.name)
        .map_or(table, |(_, table)| table);
    (!table.is_empty()).then_some(table)
}
