//! [`DataModel`]: the engine's façade. It owns the provider [`Registry`], resolves paths (one
//! resolver for every message), expands subtrees, reads parameters in batches (one provider call
//! per provider per request), validates values and runs commands. Writes go through
//! [`DmTransaction`], started with [`DataModel::begin`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use usp_codec::path::{Leaf, Path, Segment};

use crate::error::DmError;
use crate::provider::{
    Args, Change, ChangeSink, GetRequest, OperateOutcome, ParamValues, Provider,
};
use crate::registry::{ProviderId, Registry};
use crate::schema::{ObjectDef, ParamAccess, ParamDef, Schema};
use crate::search::{self, Cursor};
use crate::txn::DmTransaction;
use crate::value::ValueError;

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

    /// Parses and resolves a path.
    pub async fn resolve_str(&self, text: &str) -> Result<Resolution, DmError> {
        let path = Path::parse(text)?;
        self.resolve(&path).await
    }

    /// Resolves a parsed path against the Instantiated Data Model: expands instances,
    /// wildcards, search expressions, unique keys and references, and checks the leaf
    /// against the schema.
    pub async fn resolve(&self, path: &Path) -> Result<Resolution, DmError> {
        self.resolve_with(path, false).await
    }

    /// Like [`DataModel::resolve_str`], but an expression naming a complete unique key is a
    /// search too: when it matches nothing the result is empty instead of
    /// [`DmError::NoSuchObject`]. GetInstances uses it: a path with `[...]` is a Search Path by
    /// the grammar, and a Search Path that matches nothing is an empty success (R-MSG.4a,
    /// digest §4.6).
    pub async fn resolve_search_str(&self, text: &str) -> Result<Resolution, DmError> {
        let path = Path::parse(text)?;
        self.resolve_with(&path, true).await
    }

    async fn resolve_with(&self, path: &Path, keys_as_search: bool) -> Result<Resolution, DmError> {
        let text = path.to_string();
        let mut segments = path.segments.iter();
        let Some(Segment::Name(root)) = segments.next() else {
            return Err(DmError::NotSupported { path: text });
        };
        let root = format!("{root}.");
        if !self.registry.knows_object(&root) {
            return Err(DmError::NotSupported { path: text });
        }
        let mut cursors = vec![Cursor {
            path: root.clone(),
            supported: root.clone(),
            table: false,
        }];
        // The supported path reached so far, kept even when nothing matched so that names
        // after an empty search are still checked (R-GET.0: unsupported → 7026).
        let mut template = Some((root, false));
        let mut search = false;
        for segment in segments {
            if let Some((supported, table)) = &template {
                template = match segment {
                    Segment::Follow(_) => None,
                    other => Some(self.step_supported(supported, *table, other, &text)?),
                };
            }
            let (next, was_search) =
                search::step(self, &cursors, segment, &text, search, keys_as_search).await?;
            search |= was_search;
            cursors = next;
        }
        let leaf = path.leaf.clone();
        if let Some((supported, table)) = &template {
            self.check_leaf(supported, *table, &leaf, &text)?;
        }
        let mut objects: Vec<ResolvedObject> = Vec::with_capacity(cursors.len());
        let mut seen = std::collections::HashSet::new();
        for cursor in cursors {
            self.check_leaf(&cursor.supported, cursor.table, &leaf, &text)?;
            if seen.insert(cursor.path.clone()) {
                objects.push(ResolvedObject {
                    path: cursor.path,
                    supported: cursor.supported,
                    table: cursor.table,
                });
            }
        }
        Ok(Resolution {
            objects,
            leaf,
            search,
        })
    }

    /// The supported path after one segment; fails when the schema has no such object.
    pub(crate) fn step_supported(
        &self,
        supported: &str,
        table: bool,
        segment: &Segment,
        text: &str,
    ) -> Result<(String, bool), DmError> {
        let unsupported = || DmError::NotSupported {
            path: text.to_string(),
        };
        match segment {
            Segment::Name(name) => {
                if table {
                    return Err(unsupported());
                }
                let object = format!("{supported}{name}.");
                if self.registry.knows_object(&object) {
                    return Ok((object, false));
                }
                let table_path = format!("{object}{{i}}.");
                if self.registry.object(&table_path).is_some() {
                    return Ok((table_path, true));
                }
                Err(unsupported())
            }
            Segment::Instance(_)
            | Segment::Wildcard
            | Segment::Search(_)
            | Segment::Placeholder => {
                if table {
                    Ok((supported.to_string(), false))
                } else {
                    Err(unsupported())
                }
            }
            Segment::Follow(_) => Err(unsupported()),
        }
    }

    fn check_leaf(
        &self,
        supported: &str,
        table: bool,
        leaf: &Leaf,
        text: &str,
    ) -> Result<(), DmError> {
        if matches!(leaf, Leaf::Object) {
            return Ok(());
        }
        let object = if table {
            None
        } else {
            self.registry.object(supported)
        };
        let found = match leaf {
            Leaf::Object => true,
            Leaf::Param(name) => object.is_some_and(|o| o.param(name).is_some()),
            Leaf::Command(name) => object.is_some_and(|o| o.command(name).is_some()),
            Leaf::Event(name) => object.is_some_and(|o| o.event(name).is_some()),
        };
        if found {
            Ok(())
        } else if matches!(leaf, Leaf::Param(_)) {
            Err(DmError::UnknownParam {
                path: text.to_string(),
            })
        } else {
            Err(DmError::NotSupported {
                path: text.to_string(),
            })
        }
    }

    /// Instance numbers of a concrete table path (`Device.IP.Interface.`), ascending.
    pub async fn instances(&self, table: &str, supported: &str) -> Result<Vec<u32>, DmError> {
        let provider = self.owner_of(supported)?;
        let mut numbers = provider
            .instances(table)
            .await
            .map_err(|error| DmError::provider(table, error))?;
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }

    /// Whether instance `number` of the concrete table path exists.
    pub async fn has_instance(
        &self,
        table: &str,
        supported: &str,
        number: u32,
    ) -> Result<bool, DmError> {
        let provider = self.owner_of(supported)?;
        provider
            .has_instance(table, number)
            .await
            .map_err(|error| DmError::provider(table, error))
    }

    /// The objects of a subtree, in path order: `start` itself (or, for a table, its
    /// instances) and the sub-objects and instances below, down to `max_depth` levels
    /// (R-GET.5: 0 = unlimited, 1 = only the object itself, 2 = plus its children, ...).
    pub async fn subtree(
        &self,
        start: &ResolvedObject,
        max_depth: u32,
    ) -> Result<Vec<ResolvedObject>, DmError> {
        let max_depth = if max_depth == 0 { u32::MAX } else { max_depth };
        let mut out = Vec::new();
        let mut stack: Vec<(ResolvedObject, u32)> = Vec::new();
        if start.table {
            let numbers = self.instances(&start.path, &start.supported).await?;
            for number in numbers.into_iter().rev() {
                stack.push((
                    ResolvedObject::object(format!("{}{number}.", start.path), &start.supported),
                    1,
                ));
            }
        } else {
            stack.push((start.clone(), 1));
        }
        while let Some((object, depth)) = stack.pop() {
            let children = self.registry.children(&object.supported);
            let mut below = Vec::new();
            if depth < max_depth {
                for child in children {
                    let name_part = &child[object.supported.len()..];
                    if let Some(name) = name_part.strip_suffix(".{i}.") {
                        let table = format!("{}{name}.", object.path);
                        let numbers = self.instances(&table, child).await?;
                        for number in numbers {
                            below.push(ResolvedObject::object(format!("{table}{number}."), child));
                        }
                    } else {
                        below.push(ResolvedObject::object(
                            format!("{}{name_part}", object.path),
                            child,
                        ));
                    }
                }
            }
            out.push(object);
            for child in below.into_iter().rev() {
                stack.push((child, depth + 1));
            }
        }
        Ok(out)
    }

    /// Reads parameters of many objects: one provider call per provider, answers in request
    /// order. Parameters not in the schema are dropped and write-only ones read as "".
    pub async fn read(&self, requests: &[ReadRequest]) -> Vec<Result<ParamValues, DmError>> {
        let mut answers: Vec<Option<Result<ParamValues, DmError>>> =
            (0..requests.len()).map(|_| None).collect();
        let mut batches: BTreeMap<ProviderId, Vec<usize>> = BTreeMap::new();
        // Searches read thousands of instances of the same object: look each supported path
        // up once.
        let mut routes: HashMap<&str, Option<(ProviderId, &ObjectDef)>> = HashMap::new();
        for (index, request) in requests.iter().enumerate() {
            let route = *routes.entry(request.supported.as_str()).or_insert_with(|| {
                let def = self.registry.object(&request.supported)?;
                let (id, _) = self.registry.owner(&request.supported)?;
                Some((id, def))
            });
            match route {
                Some((id, def)) if !def.params.is_empty() => {
                    batches.entry(id).or_default().push(index)
                }
                // Virtual objects (no definition) and objects without parameters.
                _ => answers[index] = Some(Ok(ParamValues::new())),
            }
        }
        for (id, indices) in batches {
            let Some(provider) = self.registry.provider(id) else {
                continue;
            };
            let calls: Vec<GetRequest> = indices
                .iter()
                .map(|index| GetRequest {
                    object: requests[*index].object.clone(),
                    params: requests[*index].params.clone(),
                })
                .collect();
            let mut results = provider.get(&calls).await.into_iter();
            for index in indices {
                let request = &requests[index];
                let def = routes
                    .get(request.supported.as_str())
                    .copied()
                    .flatten()
                    .map(|(_, def)| def);
                let answer = match (results.next(), def) {
                    (Some(Ok(values)), Some(def)) => Ok(filter_read(def, &request.params, values)),
                    (Some(Ok(_)), None) => Ok(ParamValues::new()),
                    (Some(Err(error)), _) => Err(DmError::provider(&request.object, error)),
                    (None, _) => Err(DmError::provider(
                        &request.object,
                        crate::provider::ProviderError::new(
                            usp_codec::UspErrorCode::InternalError,
                            format!("provider \"{}\" returned too few answers", provider.name()),
                        ),
                    )),
                };
                answers[index] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Ok(ParamValues::new())))
            .collect()
    }

    /// Reads the same parameters of many objects that share one supported path (the
    /// instances a search expression tests): one route lookup, one provider call, the object
    /// paths moved into the call rather than copied.
    pub(crate) async fn read_objects(
        &self,
        supported: &str,
        objects: Vec<String>,
        params: &[String],
    ) -> Vec<Result<ParamValues, DmError>> {
        let count = objects.len();
        let def = match self.registry.object(supported) {
            Some(def) if !def.params.is_empty() => def,
            _ => return (0..count).map(|_| Ok(ParamValues::new())).collect(),
        };
        let provider = match self.owner_of(supported) {
            Ok(provider) => provider,
            Err(error) => return (0..count).map(|_| Err(error.clone())).collect(),
        };
        let calls: Vec<GetRequest> = objects
            .into_iter()
            .map(|object| GetRequest {
                object,
                params: params.to_vec(),
            })
            .collect();
        let mut results = provider.get(&calls).await.into_iter();
        calls
            .iter()
            .map(|call| match results.next() {
                Some(Ok(values)) => Ok(filter_read(def, params, values)),
                Some(Err(error)) => Err(DmError::provider(&call.object, error)),
                None => Err(DmError::provider(
                    &call.object,
                    crate::provider::ProviderError::new(
                        usp_codec::UspErrorCode::InternalError,
                        format!("provider \"{}\" returned too few answers", provider.name()),
                    ),
                )),
            })
            .collect()
    }

    /// Reads one parameter of one object.
    pub async fn read_param(
        &self,
        object: &ResolvedObject,
        param: &str,
    ) -> Result<String, DmError> {
        let request = ReadRequest {
            object: object.path.clone(),
            supported: object.supported.clone(),
            params: vec![param.to_string()],
        };
        let mut answers = self.read(std::slice::from_ref(&request)).await;
        match answers.pop() {
            Some(Ok(mut values)) => Ok(values.remove(param).unwrap_or_default()),
            Some(Err(error)) => Err(error),
            None => Ok(String::new()),
        }
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

    /// Validates one value a Controller writes (R-ENC.6; before any provider is called):
    /// 7010 unknown, 7013 not writable, 7011/7012 bad value. Returns the canonical value.
    /// Write-once parameters pass here; [`DmTransaction::set`] checks they are still unset.
    pub fn check_write(
        &self,
        object: &ResolvedObject,
        relative: &str,
        value: &str,
    ) -> Result<String, DmError> {
        let path = format!("{}{relative}", object.path);
        let Some((_, def)) = self.param_def(object, relative) else {
            return Err(DmError::UnknownParam { path });
        };
        if def.access == ParamAccess::ReadOnly {
            return Err(DmError::ReadOnly { path });
        }
        // The TR-181 Alias data type (digest §3.3): a Controller's value must be non-empty and
        // start with a letter. Checked for Controller writes only: the Agent's own `cpe-N`
        // values satisfy it by construction.
        if def.is_alias()
            && !value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
        {
            return Err(DmError::Value {
                path,
                source: ValueError::BadAlias {
                    value: value.to_string(),
                },
            });
        }
        self.check_value(object, relative, value)
    }

    /// Validates a value against the parameter's type and facets only (no access rule): what
    /// the engine checks for every value it hands to a provider, including values the agent
    /// fills in itself. Returns the canonical value.
    pub fn check_value(
        &self,
        object: &ResolvedObject,
        relative: &str,
        value: &str,
    ) -> Result<String, DmError> {
        let path = format!("{}{relative}", object.path);
        let Some((_, def)) = self.param_def(object, relative) else {
            return Err(DmError::UnknownParam { path });
        };
        def.check(value)
            .map_err(|source| DmError::Value { path, source })
    }

    /// R-ARC.12: a strong reference must point at an existing object (inside the
    /// parameter's target parents, when it names any); weak references are not checked.
    /// References may use unique-key addressing (R-ARC.11) but are stored and reported with
    /// instance numbers, so the canonical value (without trailing dots) is returned.
    pub async fn check_reference(
        &self,
        object: &ResolvedObject,
        relative: &str,
        value: &str,
    ) -> Result<String, DmError> {
        let Some((_, def)) = self.param_def(object, relative) else {
            return Ok(value.to_string());
        };
        let Some(reference) = def.reference.as_ref().filter(|reference| reference.strong) else {
            return Ok(value.to_string());
        };
        let mut canonical = Vec::new();
        for item in value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let target = format!("{}.", item.trim_end_matches('.'));
            let found = match Path::parse(&target) {
                Ok(path) => match Box::pin(self.resolve(&path)).await {
                    Ok(resolution) => resolution.objects.into_iter().find(|found| {
                        !found.table
                            && (reference.target_parents.is_empty()
                                || reference
                                    .target_parents
                                    .iter()
                                    .any(|parent| found.supported.starts_with(parent.as_str())))
                    }),
                    Err(_) => None,
                },
                Err(_) => None,
            };
            let Some(found) = found else {
                return Err(DmError::Value {
                    path: format!("{}{relative}", object.path),
                    source: crate::value::ValueError::NoSuchTarget {
                        value: item.to_string(),
                    },
                });
            };
            canonical.push(found.path.trim_end_matches('.').to_string());
        }
        Ok(canonical.join(","))
    }

    /// Starts a transaction for Set/Add/Delete across providers.
    pub fn begin(&self) -> DmTransaction<'_> {
        DmTransaction::new(self)
    }

    /// Runs a command on one object after checking its arguments (R-OPR.5: missing mandatory
    /// input → 7027; R-OPR.6: unknown inputs are dropped; inputs are type-checked).
    pub async fn operate(
        &self,
        object: &ResolvedObject,
        command: &str,
        command_key: &str,
        input: &Args,
    ) -> Result<OperateOutcome, DmError> {
        let path = format!("{}{command}", object.path);
        let def = self
            .registry
            .object(&object.supported)
            .and_then(|def| def.command(command))
            .ok_or_else(|| DmError::NotSupported { path: path.clone() })?;
        let mut checked = Args::new();
        for arg in &def.input {
            match input.get(&arg.name) {
                Some(value) => {
                    let value = crate::value::check(arg.value_type, &arg.constraints, value)
                        .map_err(|error| DmError::InvalidArguments {
                            path: path.clone(),
                            reason: format!("argument {}: {error}", arg.name),
                        })?;
                    checked.insert(arg.name.clone(), value);
                }
                None if arg.mandatory => {
                    return Err(DmError::InvalidArguments {
                        path,
                        reason: format!("mandatory argument {} is missing", arg.name),
                    });
                }
                None => {}
            }
        }
        // Table-valued arguments (`Rule.{i}.Name`) are passed through as given.
        for (name, value) in input {
            if name.contains('.') && !checked.contains_key(name) {
                checked.insert(name.clone(), value.clone());
            }
        }
        let provider = self.owner_of(&object.supported)?;
        provider
            .operate(&path, command_key, checked)
            .await
            .map_err(|error| DmError::provider(path, error))
    }
}

/// Keeps the schema's parameters (and only those asked for) and blanks write-only values.
fn filter_read(def: &ObjectDef, params: &[String], values: ParamValues) -> ParamValues {
    values
        .into_iter()
        .filter_map(|(name, value)| {
            let param = def.param(&name)?;
            if !params.is_empty() && !params.contains(&name) {
                return None;
            }
            let value = if param.access == ParamAccess::WriteOnly {
                String::new()
            } else {
                value
            };
            Some((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryProvider, Snapshot};
    use crate::provider::{GetResponse, ProviderError, Transaction};
    use crate::schema::{Constraints, ListFacet, ObjectAccess};
    use crate::value::ValueType;
    use async_trait::async_trait;
    use usp_codec::UspErrorCode;

    fn rw(name: &str, value_type: ValueType) -> ParamDef {
        ParamDef::new(name, value_type).access(ParamAccess::ReadWrite)
    }

    fn schema() -> Schema {
        let mut item = ObjectDef::new("Device.X.Item.{i}.");
        item.access = ObjectAccess::AddDelete;
        item.unique_keys = vec![vec!["Name".into()]];
        item.params = vec![
            rw("Name", ValueType::String),
            rw("Value", ValueType::UnsignedInt),
            rw("Enable", ValueType::Boolean),
            rw("When", ValueType::DateTime),
            rw("Peers", ValueType::String).constraints(Constraints {
                list: Some(ListFacet::default()),
                ..Constraints::default()
            }),
        ];
        [ObjectDef::new("Device.X."), item].into_iter().collect()
    }

    /// Rows stored in non-canonical forms on purpose, as a plugin might report them.
    fn data() -> Snapshot {
        let mut snapshot = Snapshot::default();
        let rows = [
            (
                "a",
                "0123",
                "1",
                "2021-06-06T10:00:00+02:00",
                "Device.X.Item.2,Device.X.Item.3",
            ),
            ("b", "5", "false", "0001-01-01T00:00:00Z", ""),
            ("c", "+7", "true", "2030-01-01T00:00:00Z", "Device.X.Item.1"),
        ];
        for (index, (name, value, enable, when, peers)) in rows.into_iter().enumerate() {
            let object = format!("Device.X.Item.{}.", index + 1);
            for (param, text) in [
                ("Name", name),
                ("Value", value),
                ("Enable", enable),
                ("When", when),
                ("Peers", peers),
            ] {
                snapshot
                    .params
                    .push((format!("{object}{param}"), text.to_string()));
            }
            snapshot.instances.push(object);
        }
        snapshot
    }

    fn model() -> (DataModel, MemoryProvider) {
        let provider = MemoryProvider::new("x", schema());
        provider.restore(&data());
        let mut dm = DataModel::default();
        dm.register(Arc::new(provider.clone()))
            .unwrap_or_else(|error| panic!("{error}"));
        (dm, provider)
    }

    async fn paths(dm: &DataModel, text: &str) -> Vec<String> {
        match dm.resolve_str(text).await {
            Ok(resolution) => resolution.objects.into_iter().map(|o| o.path).collect(),
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[tokio::test]
    async fn comparisons_are_semantic_by_type() {
        let (dm, _) = model();
        assert_eq!(
            paths(&dm, "Device.X.Item.[Value==123].").await,
            ["Device.X.Item.1."]
        );
        assert_eq!(
            paths(&dm, "Device.X.Item.[Value>=+5&&Value<100].").await,
            ["Device.X.Item.2.", "Device.X.Item.3."]
        );
        assert_eq!(
            paths(&dm, "Device.X.Item.[Enable==true].").await,
            ["Device.X.Item.1.", "Device.X.Item.3."]
        );
        assert_eq!(
            paths(&dm, "Device.X.Item.[When==2021-06-06T08:00:00Z].").await,
            ["Device.X.Item.1."]
        );
        assert_eq!(
            paths(&dm, "Device.X.Item.[When!=0001-01-01T00:00:00Z].").await,
            ["Device.X.Item.1.", "Device.X.Item.3."]
        );
        assert_eq!(
            paths(&dm, r#"Device.X.Item.[Peers~="Device.X.Item.3"]."#).await,
            ["Device.X.Item.1."]
        );
    }

    #[tokio::test]
    async fn type_misuse_in_expressions_is_a_syntax_error() {
        let (dm, _) = model();
        for text in [
            r#"Device.X.Item.[Enable=="true"]."#,
            r#"Device.X.Item.[Name==a]."#,
            r#"Device.X.Item.[Name<"a"]."#,
            r#"Device.X.Item.[Value=="5"]."#,
            r#"Device.X.Item.[Name~="a"]."#,
            "Device.X.Item.[When<0001-01-01T00:00:00Z].",
        ] {
            let error = dm.resolve_str(text).await.err();
            assert!(
                matches!(error, Some(DmError::BadExpression { .. })),
                "{text}: {error:?}"
            );
        }
        let error = dm.resolve_str("Device.X.Item.[Missing==1].").await.err();
        assert!(
            matches!(error, Some(DmError::NotSupported { .. })),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn references_are_followed_item_by_item() {
        let (dm, _) = model();
        assert_eq!(
            paths(&dm, "Device.X.Item.1.Peers+.").await,
            ["Device.X.Item.2."]
        );
        assert_eq!(
            paths(&dm, "Device.X.Item.1.Peers#2+.").await,
            ["Device.X.Item.3."]
        );
        let all = dm
            .resolve_str("Device.X.Item.1.Peers#*+.Name")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(all.search);
        assert_eq!(all.objects.len(), 2);
        assert_eq!(
            paths(&dm, r#"Device.X.Item.[Peers+.Name=="a"]."#).await,
            ["Device.X.Item.3."]
        );
        assert!(paths(&dm, "Device.X.Item.2.Peers+.").await.is_empty());
    }

    #[tokio::test]
    async fn unique_key_addressing_is_not_a_search() {
        let (dm, _) = model();
        let found = dm
            .resolve_str(r#"Device.X.Item.[Name=="b"]."#)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!found.search);
        let missing = dm.resolve_str(r#"Device.X.Item.[Name=="zz"]."#).await.err();
        assert!(
            matches!(missing, Some(DmError::NoSuchObject { .. })),
            "{missing:?}"
        );
        let search = dm
            .resolve_str(r#"Device.X.Item.[Name=="zz"&&Value==1]."#)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(search.search && search.objects.is_empty());
    }

    #[tokio::test]
    async fn unsupported_and_malformed_paths_are_rejected() {
        let (dm, _) = model();
        assert!(matches!(
            dm.resolve_str("Device.Y.").await,
            Err(DmError::NotSupported { .. })
        ));
        assert!(matches!(
            dm.resolve_str("Device.X.[Name==\"a\"].").await,
            Err(DmError::NotSupported { .. })
        ));
        assert!(matches!(
            dm.resolve_str("Device.X.Item.1.Nope").await,
            Err(DmError::UnknownParam { .. })
        ));
        assert!(matches!(dm.resolve_str("Device.X.Item.").await, Ok(r) if r.objects[0].table));
        assert!(matches!(
            dm.resolve_str("Device.X.Item.[].").await,
            Err(DmError::Syntax(_))
        ));
    }

    #[tokio::test]
    async fn subscription_references_with_expressions_use_current_data() {
        let (dm, _) = model();
        let reference =
            Path::parse("Device.X.Item.[Enable==true].Value").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            dm.reference_matches(&reference, "Device.X.Item.3.Value")
                .await
                .unwrap_or(false)
        );
        assert!(
            !dm.reference_matches(&reference, "Device.X.Item.2.Value")
                .await
                .unwrap_or(true)
        );
        let object = Path::parse("Device.X.").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            dm.reference_matches(&object, "Device.X.Item.2.Name")
                .await
                .unwrap_or(false)
        );
    }

    /// Test provider (labelled stand-in for a plugin whose storage refuses to commit): its
    /// transactions accept writes and fail at prepare.
    struct RefusingProvider(MemoryProvider);

    struct RefusingTransaction;

    #[async_trait]
    impl Transaction for RefusingTransaction {
        async fn set(&mut self, _: &str, _: &str, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn add(&mut self, _: &str, _: &ParamValues) -> Result<u32, ProviderError> {
            Ok(1)
        }
        async fn delete(&mut self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn prepare(&mut self) -> Result<(), ProviderError> {
            Err(ProviderError::new(UspErrorCode::InternalError, "disk full"))
        }
        async fn commit(self: Box<Self>) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    #[async_trait]
    impl Provider for RefusingProvider {
        fn name(&self) -> &str {
            "refusing"
        }
        fn schema(&self) -> Arc<Schema> {
            self.0.schema()
        }
        async fn instances(&self, table: &str) -> Result<Vec<u32>, ProviderError> {
            self.0.instances(table).await
        }
        async fn get(&self, requests: &[GetRequest]) -> Vec<GetResponse> {
            self.0.get(requests).await
        }
        async fn begin(&self) -> Result<Box<dyn Transaction>, ProviderError> {
            Ok(Box::new(RefusingTransaction))
        }
        async fn operate(
            &self,
            command: &str,
            _: &str,
            _: Args,
        ) -> Result<OperateOutcome, ProviderError> {
            Err(ProviderError::new(UspErrorCode::CommandFailure, command))
        }
    }

    #[tokio::test]
    async fn a_refused_prepare_commits_nothing_anywhere() {
        let (mut dm, provider) = model();
        let mut other = ObjectDef::new("Device.Z.");
        other.params = vec![rw("Level", ValueType::Int)];
        let refusing = RefusingProvider(MemoryProvider::new("z", [other].into_iter().collect()));
        dm.register(Arc::new(refusing))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tx = dm.begin();
        let item = ResolvedObject::object("Device.X.Item.2.", "Device.X.Item.{i}.");
        tx.set(&item, "Value", "9")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let z = ResolvedObject::object("Device.Z.", "Device.Z.");
        tx.set(&z, "Level", "-3")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(tx.commit().await, Err(DmError::Provider { .. })));
        assert_eq!(
            provider.value("Device.X.Item.2.Value").as_deref(),
            Some("5")
        );
    }

    #[tokio::test]
    async fn deleting_an_instance_reports_its_nested_instances_deleted_too() {
        let mut item = ObjectDef::new("Device.X.Item.{i}.");
        item.access = ObjectAccess::AddDelete;
        let mut part = ObjectDef::new("Device.X.Item.{i}.Part.{i}.");
        part.access = ObjectAccess::AddDelete;
        let schema = [ObjectDef::new("Device.X."), item, part]
            .into_iter()
            .collect();
        let provider = MemoryProvider::new("x", schema);
        let mut snapshot = Snapshot::default();
        for object in [
            "Device.X.Item.1.",
            "Device.X.Item.1.Part.1.",
            "Device.X.Item.1.Part.2.",
            "Device.X.Item.2.",
            "Device.X.Item.2.Part.1.",
        ] {
            snapshot.instances.push(object.to_string());
        }
        provider.restore(&snapshot);
        let mut dm = DataModel::default();
        dm.register(Arc::new(provider))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tx = dm.begin();
        tx.delete(&ResolvedObject::object(
            "Device.X.Item.1.",
            "Device.X.Item.{i}.",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let deleted: Vec<String> = tx
            .commit()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .filter_map(|change| match change {
                Change::ObjectDeleted { path } => Some(path),
                _ => None,
            })
            .collect();
        assert_eq!(
            deleted,
            [
                "Device.X.Item.1.",
                "Device.X.Item.1.Part.1.",
                "Device.X.Item.1.Part.2."
            ]
        );
    }

    #[tokio::test]
    async fn unregistering_makes_paths_unsupported() {
        let (mut dm, _) = model();
        let id = dm
            .owner_id("Device.X.Item.{i}.")
            .unwrap_or_else(|e| panic!("{e}"));
        dm.unregister(id).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            dm.resolve_str("Device.X.Item.1.").await,
            Err(DmError::NotSupported { .. })
        ));
    }

    #[tokio::test]
    async fn subtree_respects_depth_and_tables() {
        let (dm, _) = model();
        let root = ResolvedObject::object("Device.X.", "Device.X.");
        assert_eq!(dm.subtree(&root, 1).await.map(|v| v.len()).ok(), Some(1));
        assert_eq!(dm.subtree(&root, 0).await.map(|v| v.len()).ok(), Some(4));
        let table = dm
            .resolve_str("Device.X.Item.")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            dm.subtree(&table.objects[0], 1).await.map(|v| v.len()).ok(),
            Some(3)
        );
    }

    #[tokio::test]
    async fn writes_are_validated_before_the_provider() {
        let (dm, _) = model();
        let item = ResolvedObject::object("Device.X.Item.1.", "Device.X.Item.{i}.");
        let mut tx = dm.begin();
        assert!(matches!(
            tx.set(&item, "Value", "-1").await,
            Err(DmError::Value { .. })
        ));
        assert!(matches!(
            tx.set(&item, "Nope", "1").await,
            Err(DmError::UnknownParam { .. })
        ));
        let table = ResolvedObject {
            path: "Device.X.Item.".into(),
            supported: "Device.X.Item.{i}.".into(),
            table: true,
        };
        let bad = ParamValues::from([("Enable".to_string(), "maybe".to_string())]);
        assert!(matches!(
            tx.add(&table, &bad).await,
            Err(DmError::Value { .. })
        ));
        assert!(matches!(
            tx.delete(&table).await,
            Err(DmError::NotATable { .. })
        ));
    }
}
