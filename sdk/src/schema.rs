//! A typed builder for the plugin's schema: objects, parameters, commands and events, with
//! TR-181 access rights and value facets. [`Plugin::schema`](crate::Plugin::schema) returns it
//! once; the agent answers GetSupportedDM from it and validates every write against it.

use crate::bindings::usp::dm::types as wit;
use crate::value::Type;

/// Access of a parameter for Controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    ReadOnly,
    /// Read and write.
    ReadWrite,
    /// Written once (at Add or by the first Set), read only afterwards.
    WriteOnceReadOnly,
    /// Write only; reads return an empty string.
    WriteOnly,
}

/// Add/Delete rights on a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableAccess {
    /// Controllers cannot add or delete instances.
    ReadOnly,
    /// Controllers can add and delete instances.
    AddDelete,
    /// Controllers can add instances only.
    AddOnly,
    /// Controllers can delete instances only.
    DeleteOnly,
}

/// One parameter.
#[derive(Debug, Clone)]
pub struct Param {
    def: wit::ParamDef,
}

fn no_constraints() -> wit::Constraints {
    wit::Constraints {
        enumeration: Vec::new(),
        ranges: Vec::new(),
        min_length: None,
        max_length: None,
        list: None,
    }
}

impl Param {
    /// A read-only parameter of type `value_type`.
    pub fn new(name: &str, value_type: Type) -> Self {
        Param {
            def: wit::ParamDef {
                name: name.to_string(),
                type_: value_type.into(),
                access: wit::ParamAccess::ReadOnly,
                constraints: no_constraints(),
                flags: wit::ParamFlags::empty(),
                default_value: None,
                reference: None,
            },
        }
    }

    /// Makes it writable by Controllers.
    pub fn writable(mut self) -> Self {
        self.def.access = wit::ParamAccess::ReadWrite;
        self
    }

    /// Sets the access explicitly.
    pub fn access(mut self, access: Access) -> Self {
        self.def.access = match access {
            Access::ReadOnly => wit::ParamAccess::ReadOnly,
            Access::ReadWrite => wit::ParamAccess::ReadWrite,
            Access::WriteOnceReadOnly => wit::ParamAccess::WriteOnceReadOnly,
            Access::WriteOnly => wit::ParamAccess::WriteOnly,
        };
        self
    }

    /// Restricts values (or list items) to these.
    pub fn enumeration(mut self, values: &[&str]) -> Self {
        self.def.constraints.enumeration = values.iter().map(|value| value.to_string()).collect();
        self
    }

    /// Restricts numeric values to `min..=max` (either bound may be `None`).
    pub fn range(mut self, min: Option<i64>, max: Option<i64>) -> Self {
        self.def.constraints.ranges.push(wit::Range {
            min: min.map(|bound| bound.to_string()),
            max: max.map(|bound| bound.to_string()),
        });
        self
    }

    /// Limits the length in characters (strings) or bytes (binary types).
    pub fn max_length(mut self, max: u32) -> Self {
        self.def.constraints.max_length = Some(max);
        self
    }

    /// Makes the value a comma-separated list of items of the type.
    pub fn list(mut self, max_items: Option<u32>, max_length: Option<u32>) -> Self {
        self.def.constraints.list = Some(wit::ListFacet {
            max_items,
            max_length,
        });
        self
    }

    /// The value on creation when an Add does not give one.
    pub fn default_value(mut self, value: &str) -> Self {
        self.def.default_value = Some(value.to_string());
        self
    }

    /// Reads as empty for roles without the secured privilege.
    pub fn secured(mut self) -> Self {
        self.def.flags |= wit::ParamFlags::SECURED;
        self
    }

    /// The value changes without a push (counters, uptime): ValueChange is not reported.
    pub fn volatile(mut self) -> Self {
        self.def.flags |= wit::ParamFlags::VALUE_CHANGE_IGNORED;
        self
    }

    /// Marks the value as a path reference into `targets` (strong or weak).
    pub fn reference(mut self, strong: bool, targets: &[&str]) -> Self {
        self.def.reference = Some(wit::Reference {
            strong,
            target_parents: targets.iter().map(|target| target.to_string()).collect(),
        });
        self
    }
}

/// One argument of a command or event.
#[derive(Debug, Clone)]
pub struct Arg {
    def: wit::ArgDef,
}

impl Arg {
    /// An optional argument.
    pub fn new(name: &str, value_type: Type) -> Self {
        Arg {
            def: wit::ArgDef {
                name: name.to_string(),
                type_: value_type.into(),
                mandatory: false,
                constraints: no_constraints(),
            },
        }
    }

    /// Makes an input argument mandatory (the agent answers 7027 when it is missing).
    pub fn mandatory(mut self) -> Self {
        self.def.mandatory = true;
        self
    }
}

/// One object (single-instance, or a table when the path ends in `{i}.`).
#[derive(Debug, Clone)]
pub struct Object {
    def: wit::ObjectDef,
}

impl Object {
    /// An object at a supported-DM path (`Device.IP.Interface.{i}.`).
    pub fn new(path: &str) -> Self {
        Object {
            def: wit::ObjectDef {
                path: path.to_string(),
                access: wit::ObjectAccess::ReadOnly,
                unique_keys: Vec::new(),
                params: Vec::new(),
                commands: Vec::new(),
                events: Vec::new(),
            },
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, param: Param) -> Self {
        self.def.params.push(param.def);
        self
    }

    /// Sets the Add/Delete rights of a table.
    pub fn table_access(mut self, access: TableAccess) -> Self {
        self.def.access = match access {
            TableAccess::ReadOnly => wit::ObjectAccess::ReadOnly,
            TableAccess::AddDelete => wit::ObjectAccess::AddDelete,
            TableAccess::AddOnly => wit::ObjectAccess::AddOnly,
            TableAccess::DeleteOnly => wit::ObjectAccess::DeleteOnly,
        };
        self
    }

    /// Adds a unique key made of these parameters.
    pub fn unique_key(mut self, params: &[&str]) -> Self {
        self.def
            .unique_keys
            .push(params.iter().map(|param| param.to_string()).collect());
        self
    }

    /// Adds a command (`name` ends in `()`).
    pub fn command(
        mut self,
        name: &str,
        is_async: bool,
        input: Vec<Arg>,
        output: Vec<Arg>,
    ) -> Self {
        self.def.commands.push(wit::CommandDef {
            name: name.to_string(),
            is_async,
            input: input.into_iter().map(|arg| arg.def).collect(),
            output: output.into_iter().map(|arg| arg.def).collect(),
        });
        self
    }

    /// Adds an event (`name` ends in `!`).
    pub fn event(mut self, name: &str, args: Vec<Arg>) -> Self {
        self.def.events.push(wit::EventDef {
            name: name.to_string(),
            args: args.into_iter().map(|arg| arg.def).collect(),
        });
        self
    }
}

/// The whole schema of a plugin.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    objects: Vec<wit::ObjectDef>,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Self {
        Schema::default()
    }

    /// Adds an object.
    pub fn object(mut self, object: Object) -> Self {
        self.objects.push(object.def);
        self
    }

    /// Supported-DM paths of the objects, in the order they were added.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.objects.iter().map(|object| object.path.as_str())
    }

    /// Names of the parameters of the object at `path`, if it is in the schema.
    pub fn params_of(&self, path: &str) -> Option<Vec<&str>> {
        self.objects
            .iter()
            .find(|object| object.path == path)
            .map(|object| {
                object
                    .params
                    .iter()
                    .map(|param| param.name.as_str())
                    .collect()
            })
    }
}

impl From<Schema> for wit::Schema {
    fn from(schema: Schema) -> Self {
        wit::Schema {
            objects: schema.objects,
        }
    }
}

impl From<Type> for wit::ValueType {
    fn from(value_type: Type) -> Self {
        match value_type {
            Type::String => wit::ValueType::String,
            Type::Boolean => wit::ValueType::Boolean,
            Type::Int => wit::ValueType::Int,
            Type::UnsignedInt => wit::ValueType::UnsignedInt,
            Type::Long => wit::ValueType::Long,
            Type::UnsignedLong => wit::ValueType::UnsignedLong,
            Type::DateTime => wit::ValueType::DateTime,
            Type::Base64 => wit::ValueType::Base64,
            Type::HexBinary => wit::ValueType::HexBinary,
            Type::Decimal => wit::ValueType::Decimal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_objects_and_params_in_order() {
        let schema = Schema::new()
            .object(
                Object::new("Device.Time.").param(Param::new("Enable", Type::Boolean).writable()),
            )
            .object(
                Object::new("Device.X_EXAMPLE_Fan.{i}.")
                    .param(Param::new("Speed", Type::UnsignedInt).range(Some(0), Some(5000))),
            );
        assert_eq!(
            schema.paths().collect::<Vec<_>>(),
            ["Device.Time.", "Device.X_EXAMPLE_Fan.{i}."]
        );
        assert_eq!(schema.params_of("Device.Time."), Some(vec!["Enable"]));
        let wit: wit::Schema = schema.into();
        assert_eq!(wit.objects[0].params[0].access, wit::ParamAccess::ReadWrite);
        assert_eq!(
            wit.objects[1].params[0].constraints.ranges[0]
                .max
                .as_deref(),
            Some("5000")
        );
    }
}
