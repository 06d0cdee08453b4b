//! Write USP data-model plugins in Rust. A plugin is a WebAssembly component (target
//! `wasm32-wasip2`) that serves one or more subtrees of the TR-181 data model inside the agent's
//! sandbox. This crate hides the `usp:dm` WIT contract: implement [`Plugin`], describe the schema
//! with the [`Schema`] builder, and call [`export_plugin!`].
//!
//! Layout:
//! - [`schema`]: the typed schema builder ([`Schema`], [`Object`], [`Param`], [`Arg`]).
//! - [`value`]: TR-106 typed values ([`Tr106`], [`DateTime`], [`Base64`], [`HexBinary`]).
//! - [`fault`]: [`Fault`] and [`ErrorCode`], the USP errors a plugin reports.
//! - [`path`]: [`ObjectPath`], concrete paths matched against `{i}` patterns.
//! - [`table`]: [`Table`], instance-numbered rows for multi-instance objects.
//! - [`plugin`]: the [`Plugin`] and [`Transaction`] traits, [`Values`], async commands.
//! - [`host`]: the agent's services (log, pushed changes and events, key-value store, config).
//!
//! What the agent guarantees: every path passed to a plugin is concrete and inside the
//! plugin's schema; every written value has the parameter's type and satisfies its facets
//! (enumeration, range, length). The plugin checks only its own semantic rules.
//!
//! # A complete plugin
//!
//! `Cargo.toml`: a `cdylib` depending on `usp-sdk`; build with
//! `cargo build --release --target wasm32-wasip2`. The agent loads the `.wasm` next to a
//! `manifest.toml` that claims `Device.X_EXAMPLE_Fan.`.
//!
//! ```
//! use std::cell::{Cell, RefCell};
//! use usp_sdk::{
//!     AsyncCommands, ErrorCode, Fault, Object, ObjectPath, Outcome, Param, Plugin, Schema,
//!     Table, Tr106, Transaction, Type, Values, Args, host,
//! };
//!
//! #[derive(Default)]
//! struct Fans {
//!     speeds: RefCell<Table<u32>>,
//!     commands: AsyncCommands,
//! }
//!
//! impl Plugin for Fans {
//!     fn schema(&self) -> Schema {
//!         Schema::new()
//!             .object(Object::new("Device.X_EXAMPLE_Fan.").param(Param::new("Count", Type::UnsignedInt)))
//!             .object(
//!                 Object::new("Device.X_EXAMPLE_Fan.Fan.{i}.")
//!                     .param(Param::new("Speed", Type::UnsignedInt).writable().range(Some(0), Some(5000)))
//!                     .command("Spin()", true, vec![], vec![]),
//!             )
//!     }
//!
//!     fn instances(&self, table: &ObjectPath) -> Result<Vec<u32>, Fault> {
//!         match table.matches::<0>("Device.X_EXAMPLE_Fan.Fan.") {
//!             Some([]) => Ok(self.speeds.borrow().instances()),
//!             None => Err(Fault::invalid_path(table)),
//!         }
//!     }
//!
//!     fn get(&self, object: &ObjectPath) -> Result<Values, Fault> {
//!         if object.matches::<0>("Device.X_EXAMPLE_Fan.").is_some() {
//!             return Ok(Values::new().with("Count", self.speeds.borrow().len() as u32));
//!         }
//!         let [fan] = object.matches("Device.X_EXAMPLE_Fan.Fan.{i}.").ok_or_else(|| Fault::invalid_path(object))?;
//!         let speeds = self.speeds.borrow();
//!         let speed = speeds.get(fan).ok_or_else(|| Fault::no_such_object(object))?;
//!         Ok(Values::new().with("Speed", *speed))
//!     }
//!
//!     fn begin(&self) -> Box<dyn Transaction> {
//!         Box::new(SpeedChange { staged: Vec::new() })
//!     }
//!
//!     fn operate(&self, object: &ObjectPath, name: &str, _key: &str, _input: &Args) -> Result<Outcome, Fault> {
//!         let pending = self.commands.start();
//!         let token = pending.token();
//!         pending.complete(Ok(Args::new()));
//!         Ok(Outcome::Started(token))
//!     }
//! }
//!
//! struct SpeedChange {
//!     staged: Vec<(u32, u32)>,
//! }
//!
//! impl Transaction for SpeedChange {
//!     fn set(&mut self, object: &ObjectPath, param: &str, value: &str) -> Result<(), Fault> {
//!         let [fan] = object.matches("Device.X_EXAMPLE_Fan.Fan.{i}.").ok_or_else(|| Fault::read_only(object.param(param)))?;
//!         let speed = u32::parse_param(object.param(param), value)?;
//!         if speed % 100 != 0 {
//!             return Err(Fault::invalid_value(object.param(param), value, "must be a multiple of 100"));
//!         }
//!         self.staged.push((fan, speed));
//!         Ok(())
//!     }
//!
//!     fn commit(self: Box<Self>) -> Result<(), Fault> {
//!         for (fan, speed) in self.staged {
//!             host::notify_value_changed(&format!("Device.X_EXAMPLE_Fan.Fan.{fan}.Speed"), &speed.to_tr106());
//!         }
//!         Ok(())
//!     }
//! }
//!
//! usp_sdk::export_plugin!(Fans::default());
//! # fn main() {}
//! ```

#![deny(missing_docs)]

pub mod fault;
pub mod host;
pub mod path;
pub mod plugin;
pub mod schema;
pub mod table;
pub mod value;

pub use fault::{ErrorCode, Fault};
pub use path::ObjectPath;
pub use plugin::{Args, AsyncCommands, Outcome, Pending, Plugin, Transaction, Values};
pub use schema::{Access, Arg, Object, Param, Schema, TableAccess};
pub use table::Table;
pub use value::{Base64, DateTime, HexBinary, Tr106, Type};

/// Bindings generated from the `usp:dm` WIT; used by [`export_plugin!`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "dm-plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_dm_plugin",
        default_bindings_module: "usp_sdk::bindings",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::exports::usp::dm::provider::{Guest, Transaction as WitTransaction};
    pub use crate::bindings::usp::dm::types;
    pub use crate::plugin::TransactionResource;
    pub use crate::plugin::bridge;
}

/// Exports a plugin from the component. Give it an expression that builds the plugin; it is
/// evaluated once, at the first call from the agent. Expands to nothing outside `wasm32`, so a
/// plugin crate can run its unit tests natively.
///
/// ```ignore
/// usp_sdk::export_plugin!(MyPlugin::default());
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($make:expr) => {
        // Only a wasm32 build is a component; native builds (unit tests of the plugin's own
        // logic) get no exports, so the host-side linker never sees component symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct UspSdkExport;

            ::std::thread_local! {
                static PLUGIN: ::std::boxed::Box<dyn $crate::Plugin> = ::std::boxed::Box::new($make);
            }

            impl $crate::__private::Guest for UspSdkExport {
                type Transaction = $crate::__private::TransactionResource;

                fn describe() -> $crate::__private::types::Schema {
                    PLUGIN.with(|plugin| $crate::__private::bridge::describe(&**plugin))
                }

                fn instances(table: ::std::string::String) -> ::std::result::Result<::std::vec::Vec<u32>, $crate::__private::types::Fault> {
                    PLUGIN.with(|plugin| $crate::__private::bridge::instances(&**plugin, table))
                }

                fn get(
                    requests: ::std::vec::Vec<$crate::__private::types::GetRequest>,
                ) -> ::std::vec::Vec<::std::result::Result<::std::vec::Vec<$crate::__private::types::ParamValue>, $crate::__private::types::Fault>> {
                    PLUGIN.with(|plugin| $crate::__private::bridge::get(&**plugin, requests))
                }

                fn begin() -> $crate::__private::WitTransaction {
                    PLUGIN.with(|plugin| $crate::__private::bridge::begin(&**plugin))
                }

                fn operate(
                    command: ::std::string::String,
                    command_key: ::std::string::String,
                    input: ::std::vec::Vec<$crate::__private::types::ParamValue>,
                ) -> ::std::result::Result<$crate::__private::types::OperateOutcome, $crate::__private::types::Fault> {
                    PLUGIN.with(|plugin| $crate::__private::bridge::operate(&**plugin, command, command_key, input))
                }
            }

            $crate::bindings::export_dm_plugin!(UspSdkExport with_types_in $crate::bindings);
        };
    };
}
