//! The TR-181 Device:2.19 USP data model, generated from the Broadband Forum's model by
//! `tr181/generate.py` and embedded in the binary: standard objects get their schema from here
//! instead of hand-typed tables, so GetSupportedDM and value validation match the standard by
//! construction. Files are parsed on demand, one top-level object at a time, to keep start-up
//! cheap.

use serde::Deserialize;

use crate::schema::{
    ArgDef, CommandDef, Constraints, EventDef, ListFacet, ObjectAccess, ObjectDef, ParamAccess,
    ParamDef, Range, Reference, Schema, ValueChange,
};
use crate::value::ValueType;

mod index {
    include!("../tr181/index.rs");
}

pub use index::SPEC;

/// Why a TR-181 schema could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum Tr181Error {
    /// The path is not under a top-level object of the model.
    #[error("{0} is not a TR-181 Device:2.19 object")]
    UnknownObject(String),
    /// An embedded file did not parse (a build defect: regenerate the files).
    #[error("embedded TR-181 file for {name} is invalid: {source}")]
    Corrupt {
        /// Top-level object name.
        name: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An embedded file names a type that is not a TR-106 base type.
    #[error("embedded TR-181 file names unknown type {0:?}")]
    UnknownType(String),
}

/// The data-model URI GetSupportedDM reports (`data_model_inst_uri`).
pub fn data_model_uri() -> &'static str {
    SPEC
}

/// Names of the top-level objects under `Device.` the model defines (plus `Device` itself).
pub fn top_level_names() -> impl Iterator<Item = &'static str> {
    index::FILES.iter().map(|(name, _)| *name)
}

/// The standard schema of every object at or below `path` (a supported-DM object path such as
/// `Device.LocalAgent.` or `Device.IP.Interface.{i}.`). `Device.` alone yields the root object
/// only (its commands and events), not the whole model.
pub fn schema(path: &str) -> Result<Schema, Tr181Error> {
    let name = top_level_name(path).ok_or_else(|| Tr181Error::UnknownObject(path.to_string()))?;
    let file = index::FILES
        .iter()
        .find(|(file_name, _)| *file_name == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| Tr181Error::UnknownObject(path.to_string()))?;
    let parsed: File = serde_json::from_str(file).map_err(|source| Tr181Error::Corrupt {
        name: name.to_string(),
        source,
    })?;
    let mut schema = Schema::new();
    for object in parsed
        .objects
        .into_iter()
        .filter(|object| object.path.starts_with(path))
    {
        schema.insert(object.into_def()?);
    }
    if schema.is_empty() {
        return Err(Tr181Error::UnknownObject(path.to_string()));
    }
    Ok(schema)
}

fn top_level_name(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("Device.")?;
    match rest.split('.').next() {
        None | Some("") => Some("Device"),
        Some(name) => Some(name),
    }
}

#[derive(Deserialize)]
struct File {
    objects: Vec<RawObject>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    path: String,
    #[serde(default)]
    multi: bool,
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    unique_keys: Vec<Vec<String>>,
    #[serde(default)]
    fixed_keys: Vec<String>,
    #[serde(default)]
    params: Vec<RawParam>,
    #[serde(default)]
    commands: Vec<RawCommand>,
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFacets {
    #[serde(default, rename = "enum")]
    enumeration: Vec<String>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    min_length: Option<u32>,
    max_length: Option<u32>,
    list: Option<RawList>,
}

#[derive(Deserialize)]
struct RawRange {
    min: Option<String>,
    max: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawList {
    max_items: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParam {
    name: String,
    #[serde(rename = "type")]
    value_type: String,
    access: Option<String>,
    #[serde(flatten)]
    facets: RawFacets,
    #[serde(default)]
    secured: bool,
    default: Option<String>,
    value_change: Option<String>,
    reference: Option<RawReference>,
}

#[derive(Deserialize)]
struct RawReference {
    strong: bool,
    targets: Vec<String>,
}

#[derive(Deserialize)]
struct RawArg {
    name: String,
    #[serde(rename = "type")]
    value_type: String,
    #[serde(default)]
    mandatory: bool,
    #[serde(flatten)]
    facets: RawFacets,
}

#[derive(Deserialize)]
struct RawCommand {
    name: String,
    #[serde(rename = "async")]
    is_async: bool,
    input: Vec<RawArg>,
    output: Vec<RawArg>,
}

#[derive(Deserialize)]
struct RawEvent {
    name: String,
    args: Vec<RawArg>,
}

fn value_type(name: &str) -> Result<ValueType, Tr181Error> {
    ValueType::from_name(name).ok_or_else(|| Tr181Error::UnknownType(name.to_string()))
}

impl RawFacets {
    fn into_constraints(self) -> Constraints {
        Constraints {
            enumeration: self.enumeration,
            ranges: self
                .ranges
                .into_iter()
                .map(|r| Range {
                    min: r.min,
                    max: r.max,
                })
                .collect(),
            min_length: self.min_length,
            max_length: self.max_length,
            list: self.list.map(|list| ListFacet {
                max_items: list.max_items,
                max_length: None,
            }),
        }
    }
}

impl RawArg {
    fn into_def(self) -> Result<ArgDef, Tr181Error> {
        Ok(ArgDef {
            name: self.name,
            value_type: value_type(&self.value_type)?,
            mandatory: self.mandatory,
            constraints: self.facets.into_constraints(),
        })
    }
}

fn arg_defs(args: Vec<RawArg>) -> Result<Vec<ArgDef>, Tr181Error> {
    args.into_iter().map(RawArg::into_def).collect()
}

impl RawObject {
    fn into_def(self) -> Result<ObjectDef, Tr181Error> {
        let params = self
            .params
            .into_iter()
            .map(|param| {
                Ok(ParamDef {
                    value_type: value_type(&param.value_type)?,
                    access: match param.access.as_deref() {
                        Some("readWrite") => ParamAccess::ReadWrite,
                        Some("writeOnceReadOnly") => ParamAccess::WriteOnceReadOnly,
                        Some("writeOnly") => ParamAccess::WriteOnly,
                        _ => ParamAccess::ReadOnly,
                    },
                    constraints: param.facets.into_constraints(),
                    secured: param.secured,
                    default: param.default,
                    value_change: match param.value_change.as_deref() {
                        Some("willIgnore") => ValueChange::WillIgnore,
                        _ => ValueChange::Allowed,
                    },
                    reference: param.reference.map(|reference| Reference {
                        strong: reference.strong,
                        target_parents: reference.targets,
                    }),
                    name: param.name,
                })
            })
            .collect::<Result<Vec<_>, Tr181Error>>()?;
        let commands = self
            .commands
            .into_iter()
            .map(|command| {
                Ok(CommandDef {
                    name: command.name,
                    is_async: command.is_async,
                    input: arg_defs(command.input)?,
                    output: arg_defs(command.output)?,
                })
            })
            .collect::<Result<Vec<_>, Tr181Error>>()?;
        let events = self
            .events
            .into_iter()
            .map(|event| {
                Ok(EventDef {
                    name: event.name,
                    args: arg_defs(event.args)?,
                })
            })
            .collect::<Result<Vec<_>, Tr181Error>>()?;
        Ok(ObjectDef {
            path: self.path,
            multi_instance: self.multi,
            access: match self.access.as_deref() {
                Some("addDelete") => ObjectAccess::AddDelete,
                _ => ObjectAccess::ReadOnly,
            },
            unique_keys: self.unique_keys,
            fixed_keys: self.fixed_keys,
            params,
            commands,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_parses() {
        for name in top_level_names() {
            let path = if name == "Device" {
                "Device.".to_string()
            } else {
                format!("Device.{name}.")
            };
            let schema = schema(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert!(!schema.is_empty(), "{name} is empty");
        }
    }

    #[test]
    fn subscription_table_has_the_standard_keys_and_access() {
        let schema = schema("Device.LocalAgent.").unwrap();
        let subscription = schema
            .object("Device.LocalAgent.Subscription.{i}.")
            .unwrap();
        assert!(subscription.multi_instance);
        assert_eq!(subscription.access, ObjectAccess::AddDelete);
        assert_eq!(
            subscription.unique_keys,
            vec![
                vec!["Alias".to_string()],
                vec!["Recipient".to_string(), "ID".to_string()]
            ]
        );
        let alias = subscription.param("Alias").unwrap();
        assert_eq!(alias.access, ParamAccess::WriteOnceReadOnly);
        assert_eq!(alias.constraints.max_length, Some(64));
    }

    #[test]
    fn device_root_holds_reboot_and_boot_event_only() {
        let schema = schema("Device.").unwrap();
        assert_eq!(schema.len(), 1);
        let root = schema.object("Device.").unwrap();
        assert!(root.command("Reboot()").is_some());
        assert!(
            !root
                .command("SelfTestDiagnostics()")
                .unwrap()
                .input
                .iter()
                .any(|a| a.mandatory)
        );
    }

    #[test]
    fn subtree_request_is_limited_to_that_subtree() {
        let schema = schema("Device.IP.Interface.{i}.").unwrap();
        assert!(
            schema
                .objects()
                .all(|object| object.path.starts_with("Device.IP.Interface.{i}."))
        );
        assert!(
            schema
                .object("Device.IP.Interface.{i}.IPv4Address.{i}.")
                .is_some()
        );
    }

    #[test]
    fn secured_and_value_change_facets_survive_generation() {
        let schema = schema("Device.MQTT.").unwrap();
        let client = schema.object("Device.MQTT.Client.{i}.").unwrap();
        assert!(client.param("Password").unwrap().secured);
        let stats = schema.object("Device.MQTT.Client.{i}.Stats.").unwrap();
        assert!(
            stats
                .params
                .iter()
                .any(|param| param.value_change == ValueChange::WillIgnore)
        );
    }

    #[test]
    fn unknown_top_level_object_is_an_error() {
        assert!(matches!(
            schema("Device.NoSuchThing."),
            Err(Tr181Error::UnknownObject(_))
        ));
        assert!(matches!(
            schema("Other."),
            Err(Tr181Error::UnknownObject(_))
        ));
    }
}
