//! `Device.Time.`: `Enable`, `Status`, `NTPServer1`–`NTPServer5`, `CurrentLocalTime` and
//! `LocalTimeZone`. Writable settings are validated, persisted in the plugin's key-value store
//! (so they survive agent restarts); a change of the derived `Status` is pushed on commit.
//!
//! Layout:
//! - [`validate`]: NTP server and POSIX time-zone rules.
//! - this file: the schema, the stored settings and the transaction.
//!
//! `NTPServer1`–`5` come from TR-181 up to 2.18 (2.19 moved NTP servers to
//! `Device.Time.Client.{i}.Servers`). The plugin has no NTP client of its own (the sandbox has
//! no network): `Status` is `Disabled` when `Enable` is false and `Unsynchronized` otherwise,
//! and `CurrentLocalTime` is the host's clock in UTC.

pub mod validate;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use usp_sdk::{
    DateTime, Fault, Object, ObjectPath, Param, Plugin, Schema, Tr106, Transaction, Type, Values,
    host,
};

const OBJECT: &str = "Device.Time.";
const NTP_SERVERS: [&str; 5] = [
    "NTPServer1",
    "NTPServer2",
    "NTPServer3",
    "NTPServer4",
    "NTPServer5",
];

/// The writable settings, by parameter name, as TR-106 strings.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings(BTreeMap<String, String>);

impl Settings {
    fn defaults() -> Settings {
        let mut values = BTreeMap::new();
        values.insert("Enable".to_string(), "false".to_string());
        values.insert("LocalTimeZone".to_string(), String::new());
        for name in NTP_SERVERS {
            values.insert(name.to_string(), String::new());
        }
        Settings(values)
    }

    /// The defaults overlaid with what the key-value store holds.
    fn load() -> Settings {
        let mut settings = Settings::defaults();
        for (name, value) in settings.0.iter_mut() {
            if let Some(stored) = host::kv::get_string(name) {
                *value = stored;
            }
        }
        settings
    }

    fn enabled(&self) -> bool {
        self.0.get("Enable").is_some_and(|value| value == "true")
    }

    fn status(&self) -> &'static str {
        if self.enabled() {
            "Unsynchronized"
        } else {
            "Disabled"
        }
    }
}

/// The plugin.
pub struct Time {
    settings: Rc<RefCell<Settings>>,
}

impl Default for Time {
    fn default() -> Self {
        Time {
            settings: Rc::new(RefCell::new(Settings::load())),
        }
    }
}

impl Plugin for Time {
    fn schema(&self) -> Schema {
        let mut object = Object::new(OBJECT)
            .param(Param::new("Enable", Type::Boolean).writable())
            .param(Param::new("Status", Type::String).enumeration(&[
                "Disabled",
                "Unsynchronized",
                "Synchronized",
                "Error",
            ]));
        for name in NTP_SERVERS {
            object = object.param(Param::new(name, Type::String).writable().max_length(64));
        }
        Schema::new().object(
            object
                .param(Param::new("CurrentLocalTime", Type::DateTime).volatile())
                .param(
                    Param::new("LocalTimeZone", Type::String)
                        .writable()
                        .max_length(256),
                ),
        )
    }

    fn get(&self, object: &ObjectPath) -> Result<Values, Fault> {
        if object.matches::<0>(OBJECT).is_none() {
            return Err(Fault::invalid_path(object));
        }
        let settings = self.settings.borrow();
        let mut values = Values::new();
        for (name, value) in &settings.0 {
            values.put(name, value.clone());
        }
        values.put("Status", settings.status().to_string());
        values.put("CurrentLocalTime", DateTime::now());
        Ok(values)
    }

    fn begin(&self) -> Box<dyn Transaction> {
        Box::new(TimeTransaction {
            settings: Rc::clone(&self.settings),
            staged: BTreeMap::new(),
        })
    }
}

/// Staged writes of `Device.Time.`.
struct TimeTransaction {
    settings: Rc<RefCell<Settings>>,
    staged: BTreeMap<String, String>,
}

impl Transaction for TimeTransaction {
    fn set(&mut self, object: &ObjectPath, param: &str, value: &str) -> Result<(), Fault> {
        let path = object.param(param);
        if object.matches::<0>(OBJECT).is_none() {
            return Err(Fault::invalid_path(object));
        }
        let normalised = match param {
            "Enable" => bool::parse_param(&path, value)?.to_tr106(),
            "LocalTimeZone" => {
                validate::posix_tz(value).map_err(|why| Fault::invalid_value(&path, value, why))?;
                value.to_string()
            }
            name if NTP_SERVERS.contains(&name) => {
                validate::ntp_server(value)
                    .map_err(|why| Fault::invalid_value(&path, value, why))?;
                value.to_string()
            }
            _ => return Err(Fault::read_only(path)),
        };
        self.staged.insert(param.to_string(), normalised);
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), Fault> {
        let mut settings = self.settings.borrow_mut();
        let status_before = settings.status();
        for (name, value) in &self.staged {
            host::kv::set(name, value.as_bytes())?;
        }
        settings.0.extend(self.staged);
        // The agent reports the committed parameters itself; `Status` follows from `Enable`
        // without being written, so the plugin pushes it.
        if settings.status() != status_before {
            host::notify_value_changed(&format!("{OBJECT}Status"), settings.status());
        }
        Ok(())
    }
}

usp_sdk::export_plugin!(Time::default());
