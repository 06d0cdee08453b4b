//! The data-model engine: schema, path resolution, instance tables, values, transactions
//! across providers, and the [`Provider`] trait every subtree is served through.
//!
//! Layout:
//! - [`schema`]: the Supported Data Model as data (objects, parameters, commands, events).
//! - [`value`]: TR-106 value types and validation of string values against them.
//! - [`provider`]: the [`Provider`] and [`Transaction`] traits, pushed [`Change`]s.
//! - [`tr181`]: the standard TR-181 Device:2.19 schema, generated and embedded.
//!
//! Start reading at [`provider`]: it states what the engine guarantees to providers.

#![deny(missing_docs)]

pub mod provider;
pub mod schema;
pub mod tr181;
pub mod value;

pub use provider::{
    Args, Change, ChangeSink, GetRequest, GetResponse, OperateOutcome, ParamValues, Provider,
    ProviderError, Transaction,
};
pub use schema::{
    ArgDef, CommandDef, Constraints, EventDef, ListFacet, ObjectAccess, ObjectDef, ParamAccess,
    ParamDef, Range, Reference, Schema, ValueChange,
};
pub use value::ValueType;
