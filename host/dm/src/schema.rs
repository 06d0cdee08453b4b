//! The schema as data: objects, parameters, commands and events of the Supported Data Model,
//! keyed by supported-DM path (`Device.IP.Interface.{i}.`). Providers describe their subtrees
//! with these types; the engine answers GetSupportedDM and validates values from them. Value
//! types and facets come from [`value`] (the facets are re-exported here), and
//! [`ParamDef::check`] hands a value to its checks.

use std::collections::BTreeMap;

use crate::value::{self, ValueError, ValueType};
pub use crate::value::{Constraints, ListFacet, Range};

/// What a Controller may do with the instances of an object (GSDM `ObjAccessType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectAccess {
    /// Instances cannot be added or deleted by a Controller.
    #[default]
    ReadOnly,
    /// Instances can be added and deleted.
    AddDelete,
    /// Instances can be added only.
    AddOnly,
    /// Instances can be deleted only.
    DeleteOnly,
}

impl ObjectAccess {
    /// Whether a Controller may Add instances.
    pub fn can_add(self) -> bool {
        matches!(self, ObjectAccess::AddDelete | ObjectAccess::AddOnly)
    }

    /// Whether a Controller may Delete instances.
    pub fn can_delete(self) -> bool {
        matches!(self, ObjectAccess::AddDelete | ObjectAccess::DeleteOnly)
    }
}

/// What a Controller may do with a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParamAccess {
    /// Read only.
    #[default]
    ReadOnly,
    /// Read and write.
    ReadWrite,
    /// Written once (at Add or by the first Set), read only afterwards (e.g. `Alias`).
    /// GetSupportedDM reports it as `PARAM_READ_WRITE`.
    WriteOnceReadOnly,
    /// Write only (reads return an empty string).
    WriteOnly,
}

/// Whether a change of a parameter's value is reported to ValueChange subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueChange {
    /// The provider pushes every change; subscriptions are honoured.
    #[default]
    Allowed,
    /// The value changes without a push (counters, uptime): ValueChange is not reported.
    WillIgnore,
}

/// How a parameter refers to other objects (path references, TR-106 `pathRef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Strong references must point at an existing object and are cleared when it is deleted;
    /// weak ones are neither checked nor changed (R-ARC.12).
    pub strong: bool,
    /// Supported-DM object paths the reference may point into (empty = anywhere).
    pub target_parents: Vec<String>,
}

/// One parameter of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDef {
    /// The parameter name, relative to its object (`Status`).
    pub name: String,
    /// TR-106 base type.
    pub value_type: ValueType,
    /// Access for Controllers.
    pub access: ParamAccess,
    /// Value facets.
    pub constraints: Constraints,
    /// Secured parameters read as empty for every role but the secured ones (passwords, keys).
    pub secured: bool,
    /// Value on creation when the Add does not give one.
    pub default: Option<String>,
    /// Whether ValueChange notifications are honoured for it.
    pub value_change: ValueChange,
    /// Set when the value is a path reference.
    pub reference: Option<Reference>,
}

impl ParamDef {
    /// A read-only parameter of the given type with no facets.
    pub fn new(name: impl Into<String>, value_type: ValueType) -> Self {
        ParamDef {
            name: name.into(),
            value_type,
            access: ParamAccess::ReadOnly,
            constraints: Constraints::default(),
            secured: false,
            default: None,
            value_change: ValueChange::Allowed,
            reference: None,
        }
    }

    /// Builder: sets the access.
    pub fn access(mut self, access: ParamAccess) -> Self {
        self.access = access;
        self
    }

    /// Builder: sets the facets.
    pub fn constraints(mut self, constraints: Constraints) -> Self {
        self.constraints = constraints;
        self
    }

    /// Builder: sets the default value.
    pub fn default_value(mut self, value: impl Into<String>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Builder: marks the parameter as secured.
    pub fn secured(mut self) -> Self {
        self.secured = true;
        self
    }

    /// Whether the parameter is of the TR-181 `Alias` data type. In TR-181 2.19 every
    /// parameter named `Alias` has that type and no other does, so the name decides.
    pub fn is_alias(&self) -> bool {
        self.name == "Alias" && self.value_type == ValueType::String
    }

    /// Builder: marks the value as changing without a push (not reported to ValueChange).
    pub fn value_change_ignored(mut self) -> Self {
        self.value_change = ValueChange::WillIgnore;
        self
    }
}

impl ParamDef {
    /// Checks a value against the parameter's type and facets; returns its canonical form
    /// (R-ENC.6: booleans become `true`/`false`, numbers lose `+` and leading zeros).
    pub fn check(&self, value: &str) -> Result<String, ValueError> {
        value::check(self.value_type, &self.constraints, value)
    }

    /// The value the parameter holds before anything sets it: the schema default, else
    /// [`zero_value`](value::zero_value). A parameter without a value does not exist in USP, and an empty string
    /// where a number, boolean or dateTime belongs breaks typed Controllers.
    pub fn initial_value(&self) -> String {
        match &self.default {
            Some(default)
                if self.constraints.list.is_some()
                    || value::canonical(self.value_type, default).is_some() =>
            {
                default.clone()
            }
            _ => value::zero_value(self.value_type, &self.constraints),
        }
    }
}

/// One input or output argument of a command, or one argument of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    /// Name relative to the command; may hold `{i}` for table arguments (`Result.{i}.SSID`).
    pub name: String,
    /// TR-106 base type.
    pub value_type: ValueType,
    /// Input arguments only: a missing mandatory argument fails the command with 7027 (R-OPR.5).
    pub mandatory: bool,
    /// Value facets.
    pub constraints: Constraints,
}

impl ArgDef {
    /// An optional argument of the given type with no facets.
    pub fn new(name: impl Into<String>, value_type: ValueType) -> Self {
        ArgDef {
            name: name.into(),
            value_type,
            mandatory: false,
            constraints: Constraints::default(),
        }
    }

    /// Builder: marks the argument as mandatory.
    pub fn mandatory(mut self) -> Self {
        self.mandatory = true;
        self
    }
}

/// A command (`Reboot()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandDef {
    /// Name including `()`.
    pub name: String,
    /// Async commands report through `Device.LocalAgent.Request.{i}` and OperationComplete.
    pub is_async: bool,
    /// Input arguments.
    pub input: Vec<ArgDef>,
    /// Output arguments.
    pub output: Vec<ArgDef>,
}

/// An event (`Boot!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDef {
    /// Name including `!`.
    pub name: String,
    /// Arguments carried in `Notify.Event.params`.
    pub args: Vec<ArgDef>,
}

/// One object of the Supported Data Model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDef {
    /// Supported-DM path with `{i}` for every table level, ending in `.`
    /// (`Device.IP.Interface.{i}.`).
    pub path: String,
    /// True for tables (the path ends in `{i}.`).
    pub multi_instance: bool,
    /// Add/Delete rights for Controllers (tables only).
    pub access: ObjectAccess,
    /// Unique key sets (USP 1.4 `unique_key_sets`): each inner list is one key.
    pub unique_keys: Vec<Vec<String>>,
    /// Writable members of non-functional unique keys (TR-181 `functional="false"`, e.g.
    /// `Subscription.{i}.ID`): R-KEY.1 forbids changing them once the instance exists, so a
    /// Set may give them only their current value. Keys that are read-only or write-once are
    /// fixed by their access already and are not listed.
    pub fixed_keys: Vec<String>,
    /// Parameters, in the order GetSupportedDM lists them.
    pub params: Vec<ParamDef>,
    /// Commands defined on the object.
    pub commands: Vec<CommandDef>,
    /// Events defined on the object.
    pub events: Vec<EventDef>,
}

impl ObjectDef {
    /// An object with no parameters, commands or events.
    pub fn new(path: impl Into<String>) -> Self {
        let path = path.into();
        ObjectDef {
            multi_instance: path.ends_with("{i}."),
            path,
            access: ObjectAccess::ReadOnly,
            unique_keys: Vec::new(),
            fixed_keys: Vec::new(),
            params: Vec::new(),
            commands: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Whether `name` is a writable member of a non-functional unique key (R-KEY.1).
    pub fn is_fixed_key(&self, name: &str) -> bool {
        self.fixed_keys.iter().any(|key| key == name)
    }

    /// The parameter called `name`, if the object has one.
    pub fn param(&self, name: &str) -> Option<&ParamDef> {
        self.params.iter().find(|param| param.name == name)
    }

    /// The command called `name` (with `()`), if the object has one.
    pub fn command(&self, name: &str) -> Option<&CommandDef> {
        self.commands.iter().find(|command| command.name == name)
    }

    /// The event called `name` (with `!`), if the object has one.
    pub fn event(&self, name: &str) -> Option<&EventDef> {
        self.events.iter().find(|event| event.name == name)
    }
}

/// A set of objects keyed by supported-DM path: one provider's subtree, or the merged
/// Supported Data Model of the whole agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    objects: BTreeMap<String, ObjectDef>,
}

impl Schema {
    /// An empty schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an object.
    pub fn insert(&mut self, object: ObjectDef) {
        self.objects.insert(object.path.clone(), object);
    }

    /// The object at a supported-DM path (`Device.IP.Interface.{i}.`).
    pub fn object(&self, supported_path: &str) -> Option<&ObjectDef> {
        self.objects.get(supported_path)
    }

    /// All objects, ordered by path (a parent sorts before its children).
    pub fn objects(&self) -> impl Iterator<Item = &ObjectDef> {
        self.objects.values()
    }

    /// Objects at or below a supported-DM object path, in path order.
    pub fn subtree<'a>(
        &'a self,
        supported_path: &'a str,
    ) -> impl Iterator<Item = &'a ObjectDef> + 'a {
        self.objects
            .range(supported_path.to_string()..)
            .take_while(move |(path, _)| path.starts_with(supported_path))
            .map(|(_, object)| object)
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when the schema holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

impl FromIterator<ObjectDef> for Schema {
    fn from_iter<T: IntoIterator<Item = ObjectDef>>(iter: T) -> Self {
        let mut schema = Schema::new();
        for object in iter {
            schema.insert(object);
        }
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_value_is_the_default_or_the_zero_of_the_type() {
        let port = ParamDef::new("Port", ValueType::UnsignedInt);
        assert_eq!(port.initial_value(), "0");
        let with_default = ParamDef::new("Port", ValueType::UnsignedInt).default_value("8443");
        assert_eq!(with_default.initial_value(), "8443");
        let broken_default = ParamDef::new("Enable", ValueType::Boolean).default_value("");
        assert_eq!(broken_default.initial_value(), "false");
    }
}
