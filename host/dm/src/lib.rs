//! The data-model engine: schema, path resolution, instance tables, values, transactions
//! across providers, and the [`Provider`] trait every subtree is served through.
//!
//! Layout:
//! - [`schema`]: the Supported Data Model as data (objects, parameters, commands, events).
//! - [`value`]: TR-106 value types, validation and canonical forms, semantic numbers and dates.
//! - [`provider`]: the [`Provider`] and [`Transaction`] traits, pushed [`Change`]s.
//! - [`registry`]: which provider serves which subtree; overlap rejection; the merged schema.
//! - [`model`]: [`DataModel`], the façade: registration and routing; its submodules `read`
//!   (instances, subtrees, batched reads) and `command` (checked operate).
//! - `search` (private): path resolution ([`DataModel::resolve`]), one step per path segment,
//!   search expressions, unique keys, reference following.
//! - [`txn`]: Controller writes: value and reference checks ([`DataModel::check_write`]) and
//!   [`DmTransaction`], writes across providers (prepare all, commit all).
//! - [`memory`]: [`MemoryProvider`], the schema-driven in-memory provider for built-in
//!   configuration objects, with change-set reporting for persistence and `restore`. Its
//!   private submodules: `store` (committed state), `transaction` (staging, checks, generated
//!   keys, commit), `persist` ([`StoredChange`], restore, snapshot), `keys` (the per-table
//!   unique-key index), `counts` (`*NumberOfEntries`).
//! - [`subscription`]: does a changed path match a subscription's ReferenceList entry.
//! - [`tr181`]: the standard TR-181 Device:2.19 schema, generated and embedded.
//! - [`error`]: [`DmError`], every engine failure (mapped to USP codes by the message layer).
//!
//! Module dependencies run one way (each builds only on those to its left): `value`, `schema`,
//! `provider`, `registry`, `error`, `model`, then `search`, `txn` and `subscription` on top of
//! `model`; `memory` and `tr181` need only `value`, `schema` and `provider`.
//!
//! Start reading at [`provider`] (what the engine guarantees to providers), then [`model`].
//!
//! # How the agent drives it
//!
//! ```
//! # use std::sync::Arc;
//! # use usp_dm::{ChangeSink, DataModel, MemoryProvider, ObjectDef, ParamDef, ParamAccess,
//! #     ObjectAccess, Schema, Snapshot, StoredChange, ValueType};
//! # futures_lite_block_on(async {
//! // 1. One change sink for the whole data model: provider pushes and committed Controller
//! //    writes (ValueChanged/ObjectCreated/ObjectDeleted) arrive here, for notifications.
//! let mut dm = DataModel::new(ChangeSink::new(|change| { let _ = change; }));
//!
//! // 2. Built-in objects: a MemoryProvider per schema. Its commit hook receives each committed
//! //    change set once; buffer them and write them in ONE SQLite transaction after the message.
//! let mut table = ObjectDef::new("Device.LocalAgent.Controller.{i}.");
//! table.access = ObjectAccess::AddDelete;
//! table.unique_keys = vec![vec!["Alias".into()]];
//! table.params.push(ParamDef::new("Alias", ValueType::String)
//!     .access(ParamAccess::WriteOnceReadOnly));
//! let schema: Schema = [ObjectDef::new("Device.LocalAgent."), table].into_iter().collect();
//! let pending = Arc::new(std::sync::Mutex::new(Vec::<StoredChange>::new()));
//! let sink = Arc::clone(&pending);
//! let builtin = MemoryProvider::new("builtin LocalAgent", schema)
//!     .with_commit_hook(Arc::new(move |changes: &[StoredChange]| {
//!         sink.lock().unwrap().extend_from_slice(changes)
//!     }))
//!     .with_volatile("Device.LocalAgent.Request.");
//!
//! // 3. At boot, before registering: load the rows persisted earlier.
//! builtin.restore(&Snapshot::default());
//! dm.register(Arc::new(builtin.clone())).unwrap();
//!
//! // 4. Messages: `usp_agent::messages::handle(&mut dm, &ctx, msg)` resolves with
//! //    `dm.resolve`, reads with `dm.read`, writes through `dm.begin()` … `commit()`.
//! let resolution = dm.resolve_str("Device.LocalAgent.Controller.").await.unwrap();
//! let mut tx = dm.begin();
//! tx.add(&resolution.objects[0], &Default::default()).await.unwrap();
//! tx.commit().await.unwrap();
//! assert_eq!(builtin.value("Device.LocalAgent.Controller.1.Alias").as_deref(), Some("cpe-1"));
//! assert!(!pending.lock().unwrap().is_empty());
//! # });
//! # fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut future = std::pin::pin!(future);
//! #     loop {
//! #         if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) { return out; }
//! #     }
//! # }
//! ```
//!
//! What the engine checks before a provider sees a write: the parameter exists (7010), a
//! Controller may write it (7013; [`DataModel::check_write`]), the value fits the type and
//! facets (7011/7012; [`DataModel::check_value`]), a strong reference names an existing object
//! and is rewritten with instance numbers ([`DataModel::check_reference`], R-ARC.11/12), a
//! write-once parameter is still empty, a Controller's `Alias` is non-empty and starts with a
//! letter (7012), a Set keeps a non-functional unique key at its value (R-KEY.1, 7013;
//! [`ObjectDef::fixed_keys`]), and a table allows Add/Delete (7019, 7024). A Delete releases
//! the strong references to what it deletes (R-ARC.12): they are cleared, or their row is
//! deleted too when the reference is a read-only unique-key member
//! (`Subscription.{i}.Recipient`).
//!
//! Changes committed through [`DmTransaction::commit`] are pushed to the change sink by the
//! engine (tagged with the provider's id when the data model was built with
//! [`DataModel::new_tagged`]); a Set that writes an unchanged value is pushed too, so
//! ValueChange logic compares with the previous value itself.
//!
//! Plugins come and go with [`DataModel::register`], [`DataModel::unregister`] and
//! [`DataModel::replace`]; overlapping claims are refused ([`RegistryError::Overlap`]).
//! Agent-internal writes that bypass Controller access rules (creating
//! `Device.LocalAgent.Request.{i}` rows, updating status values) go directly to the
//! [`MemoryProvider`] (`add_instance`, `set_value`, `delete_instance`); they reach the commit
//! hook (unless volatile) and push a [`Change`] to the sink.

#![deny(missing_docs)]

pub mod error;
pub mod memory;
pub mod model;
pub mod provider;
pub mod registry;
pub mod schema;
mod search;
pub mod subscription;
pub mod tr181;
pub mod txn;
pub mod value;

pub use error::DmError;
pub use memory::{CommitHook, MemoryProvider, RestoreReport, Snapshot, StoredChange};
pub use model::{DataModel, ReadRequest, Resolution, ResolvedObject, TaggedSink};
pub use provider::{
    Args, Change, ChangeSink, GetRequest, GetResponse, OperateOutcome, ParamValues, Provider,
    ProviderError, Transaction,
};
pub use registry::{ProviderId, Registry, RegistryError};
pub use schema::{
    ArgDef, CommandDef, Constraints, EventDef, ListFacet, ObjectAccess, ObjectDef, ParamAccess,
    ParamDef, Range, Reference, Schema, ValueChange,
};
pub use subscription::structural_match;
pub use txn::DmTransaction;
pub use usp_codec::path::{Leaf, Path};
pub use value::{ValueError, ValueType};
