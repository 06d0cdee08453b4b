//! The plugin's `describe()` output as a `usp_dm::Schema`, and the checks made at load: every
//! object lies inside the manifest's claims, claims stay clear of core-owned roots and other
//! plugins, and standard (non-`X_`) objects match TR-181 Device:2.19 in parameter names, types
//! and access.

use std::collections::BTreeMap;

use usp_dm::{
    ArgDef, CommandDef, Constraints, EventDef, ListFacet, ObjectAccess, ObjectDef, ParamAccess,
    ParamDef, Range, Reference, Schema, ValueChange, ValueType,
};

use crate::bindings::usp::dm::types as wit;
use crate::error::RuntimeError;

fn value_type(value_type: wit::ValueType) -> ValueType {
    match value_type {
        wit::ValueType::String => ValueType::String,
        wit::ValueType::Boolean => ValueType::Boolean,
        wit::ValueType::Int => ValueType::Int,
        wit::ValueType::UnsignedInt => ValueType::UnsignedInt,
        wit::ValueType::Long => ValueType::Long,
        wit::ValueType::UnsignedLong => ValueType::UnsignedLong,
        wit::ValueType::DateTime => ValueType::DateTime,
        wit::ValueType::Base64 => ValueType::Base64,
        wit::ValueType::HexBinary => ValueType::HexBinary,
        wit::ValueType::Decimal => ValueType::Decimal,
    }
}

fn constraints(constraints: wit::Constraints) -> Constraints {
    Constraints {
        enumeration: constraints.enumeration,
        ranges: constraints
            .ranges
            .into_iter()
            .map(|range| Range {
                min: range.min,
                max: range.max,
            })
            .collect(),
        min_length: constraints.min_length,
        max_length: constraints.max_length,
        list: constraints.list.map(|list| ListFacet {
            max_items: list.max_items,
            max_length: list.max_length,
        }),
    }
}

fn param(param: wit::ParamDef) -> ParamDef {
    ParamDef {
        name: param.name,
        value_type: value_type(param.type_),
        access: match param.access {
            wit::ParamAccess::ReadOnly => ParamAccess::ReadOnly,
            wit::ParamAccess::ReadWrite => ParamAccess::ReadWrite,
            wit::ParamAccess::WriteOnceReadOnly => ParamAccess::WriteOnceReadOnly,
            wit::ParamAccess::WriteOnly => ParamAccess::WriteOnly,
        },
        constraints: constraints(param.constraints),
        secured: param.flags.contains(wit::ParamFlags::SECURED),
        default: param.default_value,
        value_change: if param.flags.contains(wit::ParamFlags::VALUE_CHANGE_IGNORED) {
            ValueChange::WillIgnore
        } else {
            ValueChange::Allowed
        },
        reference: param.reference.map(|reference| Reference {
            strong: reference.strong,
            target_parents: reference.target_parents,
        }),
    }
}

fn arg(arg: wit::ArgDef) -> ArgDef {
    ArgDef {
        name: arg.name,
        value_type: value_type(arg.type_),
        mandatory: arg.mandatory,
        constraints: constraints(arg.constraints),
    }
}

fn object(object: wit::ObjectDef) -> ObjectDef {
    ObjectDef {
        multi_instance: object.path.ends_with("{i}."),
        path: object.path,
        access: match object.access {
            wit::ObjectAccess::ReadOnly => ObjectAccess::ReadOnly,
            wit::ObjectAccess::AddDelete => ObjectAccess::AddDelete,
            wit::ObjectAccess::AddOnly => ObjectAccess::AddOnly,
            wit::ObjectAccess::DeleteOnly => ObjectAccess::DeleteOnly,
        },
        unique_keys: object.unique_keys,
        // The WIT schema does not say which keys are functional: plugin keys may change.
        fixed_keys: Vec::new(),
        params: object.params.into_iter().map(param).collect(),
        commands: object
            .commands
            .into_iter()
            .map(|command| CommandDef {
                name: command.name,
                is_async: command.is_async,
                input: command.input.into_iter().map(arg).collect(),
                output: command.output.into_iter().map(arg).collect(),
            })
            .collect(),
        events: object
            .events
            .into_iter()
            .map(|event| EventDef {
                name: event.name,
                args: event.args.into_iter().map(arg).collect(),
            })
            .collect(),
    }
}

/// True when one path is a prefix of (or equal to) the other: their subtrees overlap.
pub fn overlaps(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Converts and checks a `describe()` result for plugin `plugin` claiming `claims`.
pub(crate) fn from_wit(
    plugin: &str,
    claims: &[String],
    described: wit::Schema,
) -> Result<Schema, RuntimeError> {
    let rejected = |reason: String| RuntimeError::SchemaRejected {
        plugin: plugin.to_string(),
        reason,
    };
    if described.objects.is_empty() {
        return Err(rejected("describe() returned no object".into()));
    }
    let mut schema = Schema::new();
    for described_object in described.objects {
        let path = described_object.path.clone();
        if !path.starts_with("Device.") || !path.ends_with('.') || path.contains("..") {
            return Err(rejected(format!(
                "{path:?} is not a supported-DM object path"
            )));
        }
        if !claims.iter().any(|claim| path.starts_with(claim.as_str())) {
            return Err(rejected(format!(
                "{path} lies outside the claimed subtrees {claims:?}"
            )));
        }
        if schema.object(&path).is_some() {
            return Err(rejected(format!("{path} is described twice")));
        }
        schema.insert(object(described_object));
    }
    check_standard(&schema).map_err(|mismatch| rejected(mismatch.to_string()))?;
    Ok(schema)
}

/// A path is vendor-defined when one of its names starts with `X_` (TR-106 vendor extension).
fn is_vendor(path: &str) -> bool {
    path.split('.').any(|name| name.starts_with("X_"))
}

fn access_name(access: ParamAccess) -> &'static str {
    match access {
        ParamAccess::ReadOnly => "readOnly",
        ParamAccess::ReadWrite => "readWrite",
        ParamAccess::WriteOnceReadOnly => "writeOnceReadOnly",
        ParamAccess::WriteOnly => "writeOnly",
    }
}

/// How a described object or parameter departs from TR-181 Device:2.19.
#[derive(Debug, thiserror::Error)]
enum NotStandard {
    /// The top-level object is not in the standard.
    #[error("{path}: not a TR-181 Device:2.19 object ({source})")]
    UnknownTop {
        /// The described object.
        path: String,
        /// Why the standard has no such object.
        #[source]
        source: usp_dm::tr181::Tr181Error,
    },
    /// The object is not in the standard and has no vendor (`X_`) name.
    #[error("{0} is not a TR-181 Device:2.19 object (vendor objects need an X_ name)")]
    UnknownObject(String),
    /// A standard parameter is described with another type.
    #[error("{path} has type {described}, TR-181 says {standard}")]
    Type {
        /// The parameter.
        path: String,
        /// The type the plugin described.
        described: &'static str,
        /// The standard's type.
        standard: &'static str,
    },
    /// A standard parameter is described with another access.
    #[error("{path} has access {described}, TR-181 says {standard}")]
    Access {
        /// The parameter.
        path: String,
        /// The access the plugin described.
        described: &'static str,
        /// The standard's access.
        standard: &'static str,
    },
}

/// Standard objects must exist in TR-181 2.19 and their parameters must have the standard's
/// type and access. A parameter the standard does not define is let through with a warning:
/// parameters deleted from 2.19 (such as `Device.Time.NTPServer1`) still exist on devices.
fn check_standard(schema: &Schema) -> Result<(), NotStandard> {
    let mut standard: BTreeMap<String, Schema> = BTreeMap::new();
    for object in schema.objects().filter(|object| !is_vendor(&object.path)) {
        let top = object.path.split('.').take(2).collect::<Vec<_>>().join(".") + ".";
        if !standard.contains_key(&top) {
            let loaded = usp_dm::tr181::schema(&top).map_err(|source| NotStandard::UnknownTop {
                path: object.path.clone(),
                source,
            })?;
            standard.insert(top.clone(), loaded);
        }
        let reference = standard
            .get(&top)
            .and_then(|loaded| loaded.object(&object.path))
            .ok_or_else(|| NotStandard::UnknownObject(object.path.clone()))?;
        for param in &object.params {
            match reference.param(&param.name) {
                Some(expected) => {
                    if expected.value_type != param.value_type {
                        return Err(NotStandard::Type {
                            path: format!("{}{}", object.path, param.name),
                            described: param.value_type.name(),
                            standard: expected.value_type.name(),
                        });
                    }
                    if expected.access != param.access {
                        return Err(NotStandard::Access {
                            path: format!("{}{}", object.path, param.name),
                            described: access_name(param.access),
                            standard: access_name(expected.access),
                        });
                    }
                }
                None if param.name.starts_with("X_") => {}
                None => tracing::warn!(
                    path = %format!("{}{}", object.path, param.name),
                    "parameter is not in TR-181 Device:2.19"
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_constraints() -> wit::Constraints {
        wit::Constraints {
            enumeration: vec![],
            ranges: vec![],
            min_length: None,
            max_length: None,
            list: None,
        }
    }

    fn described(path: &str, params: &[(&str, wit::ValueType, wit::ParamAccess)]) -> wit::Schema {
        wit::Schema {
            objects: vec![wit::ObjectDef {
                path: path.to_string(),
                access: wit::ObjectAccess::ReadOnly,
                unique_keys: vec![],
                params: params
                    .iter()
                    .map(|(name, type_, access)| wit::ParamDef {
                        name: name.to_string(),
                        type_: *type_,
                        access: *access,
                        constraints: no_constraints(),
                        flags: wit::ParamFlags::VALUE_CHANGE_IGNORED,
                        default_value: None,
                        reference: None,
                    })
                    .collect(),
                commands: vec![],
                events: vec![],
            }],
        }
    }

    #[test]
    fn standard_object_with_matching_params_converts() {
        let schema = from_wit(
            "time",
            &["Device.Time.".to_string()],
            described(
                "Device.Time.",
                &[(
                    "Enable",
                    wit::ValueType::Boolean,
                    wit::ParamAccess::ReadWrite,
                )],
            ),
        )
        .unwrap();
        let object = schema.object("Device.Time.").unwrap();
        assert_eq!(object.params[0].access, ParamAccess::ReadWrite);
        assert_eq!(object.params[0].value_change, ValueChange::WillIgnore);
    }

    #[test]
    fn wrong_type_or_access_of_a_standard_param_is_rejected_naming_it() {
        let claims = ["Device.Time.".to_string()];
        let wrong_type = from_wit(
            "time",
            &claims,
            described(
                "Device.Time.",
                &[(
                    "Enable",
                    wit::ValueType::String,
                    wit::ParamAccess::ReadWrite,
                )],
            ),
        );
        assert!(
            wrong_type
                .unwrap_err()
                .to_string()
                .contains("Device.Time.Enable has type string")
        );
        let wrong_access = from_wit(
            "time",
            &claims,
            described(
                "Device.Time.",
                &[(
                    "Status",
                    wit::ValueType::String,
                    wit::ParamAccess::ReadWrite,
                )],
            ),
        );
        assert!(
            wrong_access
                .unwrap_err()
                .to_string()
                .contains("Device.Time.Status has access readWrite")
        );
    }

    #[test]
    fn objects_outside_claims_and_unknown_standard_objects_are_rejected() {
        let outside = from_wit(
            "p",
            &["Device.X_A.".to_string()],
            described("Device.X_B.", &[]),
        );
        assert!(
            outside
                .unwrap_err()
                .to_string()
                .contains("outside the claimed")
        );
        let unknown = from_wit(
            "p",
            &["Device.Time.".to_string()],
            described("Device.Time.Bogus.", &[]),
        );
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("Device.Time.Bogus.")
        );
        assert!(
            from_wit(
                "p",
                &["Device.X_A.".to_string()],
                described("Device.X_A.B.", &[])
            )
            .is_ok()
        );
    }

    #[test]
    fn overlap_is_prefix_in_either_direction() {
        assert!(overlaps(
            "Device.LocalAgent.",
            "Device.LocalAgent.Controller."
        ));
        assert!(overlaps("Device.IP.", "Device.IP."));
        assert!(!overlaps("Device.IP.", "Device.IPsec."));
    }
}
