//! [`DataModel`]: the engine's façade. This module owns the data model itself (the provider
//! [`Registry`] and the change sink), registration of providers, routing of a supported path to
//! its provider and definition, and the types the façade answers with ([`ResolvedObject`],
//! [`Resolution`], [`ReadRequest`]).
//!
//! Layout (each part is an `impl DataModel` block in the module that owns it):
//! - here: construction, [`DataModel::register`] / `unregister` / `replace`, routing,
//!   [`DataModel::param_def`].
//! - `read`: instance numbers, [`DataModel::subtree`], batched [`DataModel::read`].
//! - `command`: [`DataModel::operate`], argument checks.
//! - outside this module, building on it: path resolution ([`DataModel::resolve`], the
//!   private `search` module), write checks and transactions ([`DataModel::check_write`],
//!   [`DataModel::begin`], `txn`), subscription matching (`subscription`).
//!   Nothing here depends on them, so the module graph has no loop.

use std::sync::Arc;

use usp_codec::path::Leaf;

use crate::error::DmError;
use crate::provider::{Change, ChangeSink, Provider};
use crate::registry::{ProviderId, Registry};
use crate::schema::{ObjectDef, ParamDef, Schema};

mod command;
mod read;

/// A concrete object the resolver found: an instance, a single-instance object, or (when
/// `table` is set) a table itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResolvedObject {
    /// Concrete path ending in `.`, instance numbers only (`Device.IP.Interface.2.`); for a
    /// table, the path without instance (`Device.IP.Interface.`).
    pub path: String,
    /// Supported-DM path of the object (`Device.IP.Interface.{i}.`); tables use their `{i}.`
    /// path too.
    pub supported: String,
    /// True when `path` names the table rather than one of its instances.
    pub table: bool,
}

impl ResolvedObject {
    /// A non-table object.
    pub fn object(path: impl Into<String>, supported: impl Into<String>) -> Self {
        ResolvedObject {
            path: path.into(),
            supported: supported.into(),
            table: false,
        }
    }
}

/// What a path resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The objects the object part matched, in request order (deduplicated).
    pub objects: Vec<ResolvedObject>,
    /// What the path addresses on each object (validated against the schema).
    pub leaf: Leaf,
    /// True when the path is a search path (wildcard, search expression that is not
    /// unique-key addressing, or `#*+`): matching nothing is then a success (R-MSG.4a).
    pub search: bool,
}

/// One object of a batched [`DataModel::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Concrete object path ending in `.`.
    pub object: String,
    /// Its supported path.
    pub supported: String,
    /// Parameter names to read (empty = all of the object's parameters).
    pub params: Vec<String>,
}

/// Receives every change with the id of the provider it concerns (see
/// [`DataModel::new_tagged`]).
pub type TaggedSink = Arc<dyn Fn(ProviderId, Change) + Send + Sync>;

/// The data-model engine. See the crate docs for how the agent drives it.
pub struct DataModel {
    registry: Registry,
    sink: TaggedSink,
}

impl std::fmt::Debug for DataModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataModel")
            .field("registry", &self.registry)
            .finish()
    }
}

impl Default for DataModel {
    fn default() -> Self {
        DataModel::new(ChangeSink::new(|_| {}))
    }
}

impl DataModel {
    /// An empty data model. `changes` receives every change: those providers push (given to
    /// each provider by [`Provider::attach`] at registration) and those committed through
    /// [`DataModel::begin`] transactions (pushed by the engine after commit).
    pub fn new(changes: ChangeSink) -> Self {
        DataModel::new_tagged(Arc::new(move |_, change| changes.push(change)))
    }

    /// Like [`DataModel::new`], but each change comes with the id of the provider that pushed
    /// it (or that serves the changed path). The agent needs this to match an
    /// [`Change::OperationComplete`] token, which is only unique per provider, to its
    /// `Device.LocalAgent.Request.{i}` row.
    pub fn new_tagged(changes: TaggedSink) -> Self {
        DataModel {
            registry: Registry::default(),
            sink: changes,
        }
    }

    pub(crate) fn push_change(&self, provider: ProviderId, change: Change) {
        (self.sink)(provider, change)
    }

    fn sink_for(&self, id: ProviderId) -> ChangeSink {
        let sink = Arc::clone(&self.sink);
        ChangeSink::new(move |change| sink(id, change))
    }

    /// Registers a provider (attaching the change sink). Fails on overlapping claims.
    pub fn register(&mut self, provider: Arc<dyn Provider>) -> Result<ProviderId, DmError> {
        let id = self.registry.register(Arc::clone(&provider))?;
        provider.attach(self.sink_for(id));
        Ok(id)
    }

    /// Unregisters a provider; its paths become unsupported at once.
    pub fn unregister(&mut self, id: ProviderId) -> Result<Arc<dyn Provider>, DmError> {
        Ok(self.registry.unregister(id)?)
    }

    /// Replaces the provider behind `id` (restarted or upgraded plugin); returns the old one.
    pub fn replace(
        &mut self,
        id: ProviderId,
        provider: Arc<dyn Provider>,
    ) -> Result<Arc<dyn Provider>, DmError> {
        let old = self.registry.replace(id, Arc::clone(&provider))?;
        provider.attach(self.sink_for(id));
        Ok(old)
    }

    /// The provider registry (routing, merged schema, children).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The merged Supported Data Model.
    pub fn schema(&self) -> &Schema {
        self.registry.schema()
    }

    /// The object definition at a supported path.
    pub fn object_def(&self, supported: &str) -> Option<&ObjectDef> {
        self.registry.object(supported)
    }

    pub(crate) fn owner_of(&self, supported: &str) -> Result<&Arc<dyn Provider>, DmError> {
        self.registry
            .owner(supported)
            .map(|(_, provider)| provider)
            .ok_or_else(|| DmError::Unavailable {
                path: supported.to_string(),
            })
    }

    /// The id of the provider serving a supported object path.
    pub fn owner_id(&self, supported: &str) -> Result<ProviderId, DmError> {
        self.registry
            .owner(supported)
            .map(|(id, _)| id)
            .ok_or_else(|| DmError::Unavailable {
                path: supported.to_string(),
            })
    }

    /// Finds the definition of a parameter given relative to an object, possibly through
    /// single-instance sub-objects (`Stats.BytesSent`). Returns the sub-object's supported path
    /// and concrete path with the definition.
    pub fn param_def<'a>(
        &'a self,
        object: &ResolvedObject,
        relative: &str,
    ) -> Option<(ResolvedObject, &'a ParamDef)> {
        let (prefix, name) = match relative.rfind('.') {
            Some(cut) => (&relative[..=cut], &relative[cut + 1..]),
            None => ("", relative),
        };
        let supported = format!("{}{prefix}", object.supported);
        let def = self.registry.object(&supported)?;
        let param = def.param(name)?;
        Some((
            ResolvedObject::object(format!("{}{prefix}", object.path), supported),
            param,
        ))
    }
}

#[cfg(test)]
mod tests;
