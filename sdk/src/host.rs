//! The agent's services, callable from any plugin method: logging, pushed changes and events,
//! the persistent key-value store and granted configuration values.

use crate::bindings::usp::dm::host as wit;
use crate::bindings::usp::dm::types;
use crate::fault::Fault;
use crate::plugin::{Args, to_param_values};

/// Severity of a log line.
pub use types::Level;

/// Writes a line to the agent's log, tagged with the plugin's name.
pub fn log(level: Level, message: &str) {
    wit::log(level, message);
}

/// Reports that a parameter (concrete path) took a new value (ValueChange).
pub fn notify_value_changed(path: &str, value: &str) {
    wit::notify(&[types::Change::ValueChanged(types::ParamValueAt {
        path: path.to_string(),
        value: value.to_string(),
    })]);
}

/// Reports that an instance (concrete path ending in `.`) appeared (ObjectCreation).
pub fn notify_object_created(path: &str) {
    wit::notify(&[types::Change::ObjectCreated(path.to_string())]);
}

/// Reports that an instance (concrete path ending in `.`) disappeared (ObjectDeletion).
pub fn notify_object_deleted(path: &str) {
    wit::notify(&[types::Change::ObjectDeleted(path.to_string())]);
}

/// Fires an event declared in the schema: `object` ends in `.`, `name` ends in `!`.
pub fn emit_event(object: &str, name: &str, args: &Args) {
    wit::emit_event(object, name, &to_param_values(args));
}

/// A configuration value granted to the plugin by its manifest.
pub fn config(key: &str) -> Option<String> {
    wit::config_get(key)
}

/// The plugin's persistent key-value store (survives restarts; bounded by the agent).
pub mod kv {
    use super::{Fault, wit};
    use crate::fault::ErrorCode;

    /// The stored bytes for `key`.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        wit::kv_get(key)
    }

    /// The stored value for `key`, if present and valid UTF-8.
    pub fn get_string(key: &str) -> Option<String> {
        get(key).and_then(|bytes| String::from_utf8(bytes).ok())
    }

    /// Stores `value` under `key`.
    pub fn set(key: &str, value: &[u8]) -> Result<(), Fault> {
        wit::kv_set(key, value)
            .map_err(|fault| Fault::new(ErrorCode::Other(fault.code), fault.message))
    }

    /// Removes `key`.
    pub fn delete(key: &str) -> Result<(), Fault> {
        wit::kv_delete(key).map_err(|fault| Fault::new(ErrorCode::Other(fault.code), fault.message))
    }
}
