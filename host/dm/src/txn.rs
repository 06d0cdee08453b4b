//! [`DmTransaction`]: one set of Controller writes spanning any number of providers. Provider
//! transactions are begun lazily (one per provider touched); [`DmTransaction::commit`] prepares
//! all of them and only then commits them, so a refusal by any provider changes nothing.
//! Dropping a `DmTransaction` drops (= aborts) every provider transaction.
//!
//! Every write is checked against the schema before the provider sees it (R-ENC.6): unknown
//! parameter 7010, not writable 7013, wrong type 7011, out of range 7012, non-creatable table
//! 7019, non-deletable instance. A Set may not change a non-functional unique key (R-KEY.1), and
//! a Delete releases the strong references to the deleted instance (R-ARC.12, see
//! [`DmTransaction::delete`]).
//!
//! This module owns Controller writes: the checks ([`DataModel::check_write`],
//! [`DataModel::check_value`], [`DataModel::check_reference`]) and [`DataModel::begin`] are
//! defined here, on top of [`crate::model`], which does not depend on this module.

use std::collections::BTreeMap;

use usp_codec::path::Path;

use crate::error::DmError;
use crate::model::{DataModel, ResolvedObject};
use crate::provider::{Change, ParamValues, Transaction};
use crate::registry::ProviderId;
use crate::schema::ParamAccess;
use crate::value::ValueError;

/// A transaction across providers. See the module docs.
pub struct DmTransaction<'a> {
    dm: &'a DataModel,
    open: BTreeMap<ProviderId, Box<dyn Transaction>>,
    changes: Vec<(ProviderId, Change)>,
}

impl std::fmt::Debug for DmTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmTransaction")
            .field("providers", &self.open.len())
            .field("changes", &self.changes.len())
            .finish()
    }
}

impl<'a> DmTransaction<'a> {
    pub(crate) fn new(dm: &'a DataModel) -> Self {
        DmTransaction {
            dm,
            open: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    async fn provider_tx(
        &mut self,
        supported: &str,
        path: &str,
    ) -> Result<&mut Box<dyn Transaction>, DmError> {
        let id = self.dm.owner_id(supported)?;
        if !self.open.contains_key(&id) {
            let provider = self.dm.owner_of(supported)?;
            let tx = provider
                .begin()
                .await
                .map_err(|error| DmError::provider(path, error))?;
            self.open.insert(id, tx);
        }
        self.open.get_mut(&id).ok_or_else(|| DmError::Unavailable {
            path: path.to_string(),
        })
    }

    /// Writes one parameter (`relative` may go through single-instance sub-objects).
    /// Returns the canonical value written. A failed write leaves the transaction as it was.
    pub async fn set(
        &mut self,
        object: &ResolvedObject,
        relative: &str,
        value: &str,
    ) -> Result<String, DmError> {
        if object.table {
            return Err(DmError::NotSupported {
                path: format!("{}{relative}", object.path),
            });
        }
        let value = self.dm.check_write(object, relative, value)?;
        let value = self.dm.check_reference(object, relative, &value).await?;
        let path = format!("{}{relative}", object.path);
        let Some((sub, def)) = self.dm.param_def(object, relative) else {
            return Err(DmError::UnknownParam { path });
        };
        let name = def.name.clone();
        if def.access == ParamAccess::WriteOnceReadOnly {
            // Written once (at Add or by a first Set), read-only afterwards (TP 1.104).
            let current = self.dm.read_param(&sub, &name).await?;
            if !current.is_empty() {
                return Err(DmError::ReadOnly { path });
            }
        }
        if self
            .dm
            .object_def(&sub.supported)
            .is_some_and(|object| object.is_fixed_key(&name))
        {
            // R-KEY.1: a non-functional key keeps the value it was created with; giving it that
            // same value again is not a change. (An empty value was never a valid key, so
            // assigning one is not a change either.)
            let current = self.dm.read_param(&sub, &name).await?;
            if !current.is_empty() && current != value {
                return Err(DmError::FixedKey { path });
            }
        }
        let tx = self.provider_tx(&sub.supported, &path).await?;
        tx.set(&sub.path, &name, &value)
            .await
            .map_err(|error| DmError::provider(&path, error))?;
        let id = self.dm.owner_id(&sub.supported)?;
        self.changes.push((
            id,
            Change::ValueChanged {
                path,
                value: value.clone(),
            },
        ));
        Ok(value)
    }

    /// Creates an instance in a table; returns the new instance number. Values are checked
    /// for type and facets here; whether the Controller may give them (read-only parameters,
    /// 7013) is the caller's check ([`DataModel::check_write`]), because the agent may fill
    /// read-only values itself (`Subscription.{i}.Recipient`).
    pub async fn add(
        &mut self,
        table: &ResolvedObject,
        params: &ParamValues,
    ) -> Result<u32, DmError> {
        if !table.table {
            return Err(DmError::NotATable {
                path: table.path.clone(),
            });
        }
        let def = self
            .dm
            .object_def(&table.supported)
            .ok_or_else(|| DmError::NotSupported {
                path: table.path.clone(),
            })?;
        if !def.access.can_add() {
            return Err(DmError::NotCreatable {
                path: table.path.clone(),
            });
        }
        let instance_like = ResolvedObject::object(&table.path, &table.supported);
        let mut checked = ParamValues::new();
        for (name, value) in params {
            let value = self.dm.check_value(&instance_like, name, value)?;
            let value = self
                .dm
                .check_reference(&instance_like, name, &value)
                .await?;
            checked.insert(name.clone(), value);
        }
        let path = table.path.clone();
        let tx = self.provider_tx(&table.supported, &path).await?;
        let number = tx
            .add(&path, &checked)
            .await
            .map_err(|error| DmError::provider(&path, error))?;
        let id = self.dm.owner_id(&table.supported)?;
        self.changes.push((
            id,
            Change::ObjectCreated {
                path: format!("{path}{number}."),
            },
        ));
        Ok(number)
    }

    /// Deletes an instance and everything below it, then releases the strong references to it
    /// elsewhere (R-ARC.12): cleared, or their row deleted with it when the reference is a
    /// read-only unique-key member (`Subscription.{i}.Recipient`, TP-469 1.78).
    pub async fn delete(&mut self, object: &ResolvedObject) -> Result<(), DmError> {
        let def = self.dm.object_def(&object.supported);
        if object.table || !def.is_some_and(|def| def.multi_instance) {
            return Err(DmError::NotATable {
                path: object.path.clone(),
            });
        }
        if !def.is_some_and(|def| def.access.can_delete()) {
            return Err(DmError::NotDeletable {
                path: object.path.clone(),
            });
        }
        if self.deleted_here(&object.path) {
            // Already gone with an earlier deletion of this transaction (its parent, or a
            // Controller whose Subscription it was): deleting it is done.
            return Ok(());
        }
        self.remove(object).await?;
        self.release_references(object).await
    }

    /// Deletes an instance without the Controller's access checks (also used for the rows a
    /// deletion takes with it, see [`DmTransaction::release_references`]).
    async fn remove(&mut self, object: &ResolvedObject) -> Result<(), DmError> {
        // Instances of nested tables go with their parent; each gets its own ObjectDeletion
        // (a subscription may watch only the nested table). Listed before the delete, while
        // they still exist.
        let nested: Vec<ResolvedObject> = self
            .dm
            .subtree(object, 0)
            .await?
            .into_iter()
            .filter(|below| below.path != object.path && below.supported.ends_with(".{i}."))
            .collect();
        let path = object.path.clone();
        let tx = self.provider_tx(&object.supported, &path).await?;
        tx.delete(&path)
            .await
            .map_err(|error| DmError::provider(&path, error))?;
        let id = self.dm.owner_id(&object.supported)?;
        self.changes.push((id, Change::ObjectDeleted { path }));
        for below in nested {
            // A subtree mounted by another provider is not deleted with this one.
            if self.dm.owner_id(&below.supported)? == id {
                self.changes
                    .push((id, Change::ObjectDeleted { path: below.path }));
            }
        }
        Ok(())
    }

    /// R-ARC.12 for a deleted instance: every strong reference to it (or to anything below
    /// it) is released. A reference that is a read-only member of its row's unique key names
    /// what the row exists for (`Subscription.{i}.Recipient`, TP-469 1.78), so that row is
    /// deleted too; any other strong reference is cleared, or loses the item for a list.
    ///
    /// Only parameters whose target parents lie in the deleted table are examined (found from
    /// the schema), so a delete costs one read per instance of the few referencing tables;
    /// strong references declared without target parents are not followed.
    async fn release_references(&mut self, deleted: &ResolvedObject) -> Result<(), DmError> {
        let table = deleted.supported.trim_end_matches("{i}.").to_string();
        let referrers: Vec<(String, String, bool)> = self
            .dm
            .schema()
            .objects()
            .flat_map(|def| {
                def.params.iter().filter_map(|param| {
                    let reference = param.reference.as_ref().filter(|r| r.strong)?;
                    let into_table = reference
                        .target_parents
                        .iter()
                        .any(|parent| parent.starts_with(&table));
                    into_table.then(|| {
                        let owns_row = param.access == ParamAccess::ReadOnly
                            && def
                                .unique_keys
                                .iter()
                                .flatten()
                                .any(|key| key == &param.name);
                        (def.path.clone(), param.name.clone(), owns_row)
                    })
                })
            })
            .collect();
        for (supported, name, owns_row) in referrers {
            let pattern = supported.replace("{i}", "*");
            // A referring object nobody serves (or under a parent that is gone) has no rows.
            let Ok(resolution) = self.dm.resolve_str(&pattern).await else {
                continue;
            };
            for row in resolution.objects {
                if row.path.starts_with(&deleted.path) || self.deleted_here(&row.path) {
                    continue;
                }
                // A row that cannot be read now (its plugin restarting) cannot be released;
                // it must not block the delete either.
                let Ok(value) = self.dm.read_param(&row, &name).await else {
                    continue;
                };
                let items: Vec<&str> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .collect();
                if !items.iter().any(|item| self.dangling(&deleted.path, item)) {
                    continue;
                }
                if owns_row && row.supported.ends_with("{i}.") {
                    Box::pin(self.remove(&row)).await?;
                    Box::pin(self.release_references(&row)).await?;
                } else {
                    // The value read is the committed one: items released earlier in this
                    // transaction (another deleted target) must stay released.
                    let kept: Vec<&str> = items
                        .into_iter()
                        .filter(|item| !self.dangling(&deleted.path, item))
                        .collect();
                    self.write_released(&row, &name, &kept.join(",")).await?;
                }
            }
        }
        Ok(())
    }

    /// Whether the reference `item` points at or below `deleted`, or at something this
    /// transaction deleted before.
    fn dangling(&self, deleted: &str, item: &str) -> bool {
        let target = format!("{}.", item.trim_end_matches('.'));
        target.starts_with(deleted) || self.deleted_here(&target)
    }

    /// Whether this transaction already deleted `path` or an instance above it.
    fn deleted_here(&self, path: &str) -> bool {
        self.changes.iter().any(|(_, change)| {
            matches!(change, Change::ObjectDeleted { path: gone } if path.starts_with(gone.as_str()))
        })
    }

    /// Writes the released value of a reference (no access or reference check: the Agent
    /// clears what the Controller's delete left dangling).
    async fn write_released(
        &mut self,
        row: &ResolvedObject,
        name: &str,
        value: &str,
    ) -> Result<(), DmError> {
        let path = format!("{}{name}", row.path);
        let tx = self.provider_tx(&row.supported, &path).await?;
        tx.set(&row.path, name, value)
            .await
            .map_err(|error| DmError::provider(&path, error))?;
        let id = self.dm.owner_id(&row.supported)?;
        self.changes.push((
            id,
            Change::ValueChanged {
                path,
                value: value.to_string(),
            },
        ));
        Ok(())
    }

    /// The changes made so far (not yet committed).
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().map(|(_, change)| change)
    }

    /// Prepares every provider transaction, then commits them all. On a prepare failure
    /// nothing is committed. After a successful commit the changes are pushed to the data
    /// model's change sink and returned.
    pub async fn commit(mut self) -> Result<Vec<Change>, DmError> {
        for (id, tx) in self.open.iter_mut() {
            if let Err(error) = tx.prepare().await {
                let name = self
                    .dm
                    .registry()
                    .provider(*id)
                    .map(|provider| provider.name().to_string())
                    .unwrap_or_default();
                return Err(DmError::provider(format!("provider {name}"), error));
            }
        }
        let open = std::mem::take(&mut self.open);
        for (_, tx) in open {
            // A commit failure after a successful prepare is an I/O fault of that provider;
            // the others are already committed and cannot be rolled back.
            tx.commit()
                .await
                .map_err(|error| DmError::provider("commit", error))?;
        }
        let changes = std::mem::take(&mut self.changes);
        let mut out = Vec::with_capacity(changes.len());
        for (id, change) in changes {
            self.dm.push_change(id, change.clone());
            out.push(change);
        }
        Ok(out)
    }
}

impl DataModel {
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::{MemoryProvider, Snapshot};
    use crate::schema::{
        Constraints, ListFacet, ObjectAccess, ObjectDef, ParamDef, Reference, Schema,
    };
    use crate::value::{ValueError, ValueType};

    fn table(path: &str, keys: &[&[&str]], params: Vec<ParamDef>) -> ObjectDef {
        let mut object = ObjectDef::new(path);
        object.access = ObjectAccess::AddDelete;
        object.unique_keys = keys
            .iter()
            .map(|key| key.iter().map(|name| name.to_string()).collect())
            .collect();
        object.params = params;
        object
    }

    fn strong(param: ParamDef) -> ParamDef {
        let mut param = param;
        param.reference = Some(Reference {
            strong: true,
            target_parents: vec!["Device.A.Ctl.".into()],
        });
        param
    }

    fn rw(name: &str) -> ParamDef {
        ParamDef::new(name, ValueType::String).access(ParamAccess::ReadWrite)
    }

    /// A Controller-like table, a Subscription-like table keyed on a read-only strong reference
    /// plus a non-functional `ID`, and a table with an ordinary and a list strong reference.
    fn schema() -> Schema {
        let alias =
            || ParamDef::new("Alias", ValueType::String).access(ParamAccess::WriteOnceReadOnly);
        let ctl = table(
            "Device.A.Ctl.{i}.",
            &[&["Alias"], &["EndpointID"]],
            vec![alias(), rw("EndpointID")],
        );
        let mut sub = table(
            "Device.A.Sub.{i}.",
            &[&["Alias"], &["Recipient", "ID"]],
            vec![
                alias(),
                strong(ParamDef::new("Recipient", ValueType::String)),
                rw("ID"),
            ],
        );
        sub.fixed_keys = vec!["ID".into()];
        let link = table(
            "Device.A.Link.{i}.",
            &[&["Alias"]],
            vec![
                alias(),
                strong(rw("Owner")),
                strong(rw("Peers").constraints(Constraints {
                    list: Some(ListFacet::default()),
                    ..Constraints::default()
                })),
            ],
        );
        [ObjectDef::new("Device.A."), ctl, sub, link]
            .into_iter()
            .collect()
    }

    fn model() -> (DataModel, MemoryProvider) {
        let provider = MemoryProvider::new("a", schema());
        let mut snapshot = Snapshot::default();
        let rows: [(&str, &[(&str, &str)]); 6] = [
            ("Device.A.Ctl.1.", &[("Alias", "c1"), ("EndpointID", "one")]),
            ("Device.A.Ctl.2.", &[("Alias", "c2"), ("EndpointID", "two")]),
            (
                "Device.A.Sub.1.",
                &[
                    ("Alias", "s1"),
                    ("Recipient", "Device.A.Ctl.1"),
                    ("ID", "x"),
                ],
            ),
            (
                "Device.A.Sub.2.",
                &[
                    ("Alias", "s2"),
                    ("Recipient", "Device.A.Ctl.2"),
                    ("ID", "x"),
                ],
            ),
            (
                "Device.A.Link.1.",
                &[
                    ("Alias", "l1"),
                    ("Owner", "Device.A.Ctl.1"),
                    ("Peers", "Device.A.Ctl.2,Device.A.Ctl.1"),
                ],
            ),
            (
                "Device.A.Link.2.",
                &[("Alias", "l2"), ("Owner", "Device.A.Ctl.2"), ("Peers", "")],
            ),
        ];
        for (object, params) in rows {
            snapshot.instances.push(object.to_string());
            for (name, value) in params {
                snapshot
                    .params
                    .push((format!("{object}{name}"), value.to_string()));
            }
        }
        provider.restore(&snapshot);
        let mut dm = DataModel::default();
        dm.register(Arc::new(provider.clone()))
            .unwrap_or_else(|error| panic!("{error}"));
        (dm, provider)
    }

    fn instance(path: &str, supported: &str) -> ResolvedObject {
        ResolvedObject::object(path, supported)
    }

    #[tokio::test]
    async fn r_key_1_a_non_functional_key_keeps_its_value_after_creation() {
        let (dm, provider) = model();
        let sub = instance("Device.A.Sub.1.", "Device.A.Sub.{i}.");
        let mut tx = dm.begin();
        let refused = tx.set(&sub, "ID", "y").await;
        assert!(
            matches!(refused, Err(DmError::FixedKey { .. })),
            "{refused:?}"
        );
        // Giving the key its own value again changes nothing and is accepted.
        assert_eq!(tx.set(&sub, "ID", "x").await.ok().as_deref(), Some("x"));
        let committed = tx.commit().await;
        assert!(committed.is_ok(), "{committed:?}");
        assert_eq!(provider.value("Device.A.Sub.1.ID").as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn a_functional_key_may_change() {
        let (dm, provider) = model();
        let ctl = instance("Device.A.Ctl.1.", "Device.A.Ctl.{i}.");
        let mut tx = dm.begin();
        assert!(tx.set(&ctl, "EndpointID", "uno").await.is_ok());
        assert!(tx.commit().await.is_ok());
        assert_eq!(
            provider.value("Device.A.Ctl.1.EndpointID").as_deref(),
            Some("uno")
        );
    }

    #[tokio::test]
    async fn r_arc_12_deleting_a_target_deletes_rows_keyed_on_it_and_clears_other_references() {
        let (dm, provider) = model();
        let mut tx = dm.begin();
        let deleted = tx
            .delete(&instance("Device.A.Ctl.1.", "Device.A.Ctl.{i}."))
            .await;
        assert!(deleted.is_ok(), "{deleted:?}");
        let changes = tx.commit().await.unwrap_or_else(|error| panic!("{error}"));
        // The subscription of Ctl.1 went with it (its Recipient is a read-only key member)...
        assert!(changes.contains(&Change::ObjectDeleted {
            path: "Device.A.Sub.1.".into()
        }));
        assert_eq!(provider.value("Device.A.Sub.1.ID"), None);
        // ...the one of Ctl.2 stayed.
        assert_eq!(provider.value("Device.A.Sub.2.ID").as_deref(), Some("x"));
        // Writable references are cleared, lists lose the item.
        assert_eq!(provider.value("Device.A.Link.1.Owner").as_deref(), Some(""));
        assert_eq!(
            provider.value("Device.A.Link.1.Peers").as_deref(),
            Some("Device.A.Ctl.2")
        );
        assert_eq!(
            provider.value("Device.A.Link.2.Owner").as_deref(),
            Some("Device.A.Ctl.2")
        );
        assert!(changes.contains(&Change::ValueChanged {
            path: "Device.A.Link.1.Owner".into(),
            value: String::new(),
        }));
    }

    #[tokio::test]
    async fn two_targets_deleted_together_are_both_released_from_a_list() {
        let (dm, provider) = model();
        let mut tx = dm.begin();
        for ctl in ["Device.A.Ctl.1.", "Device.A.Ctl.2."] {
            let deleted = tx.delete(&instance(ctl, "Device.A.Ctl.{i}.")).await;
            assert!(deleted.is_ok(), "{deleted:?}");
        }
        assert!(tx.commit().await.is_ok());
        assert_eq!(provider.value("Device.A.Link.1.Peers").as_deref(), Some(""));
        assert_eq!(provider.value("Device.A.Link.2.Owner").as_deref(), Some(""));
        assert_eq!(provider.value("Device.A.Sub.1.ID"), None);
        assert_eq!(provider.value("Device.A.Sub.2.ID"), None);
    }

    #[tokio::test]
    async fn deleting_a_row_already_taken_by_a_released_reference_is_done() {
        let (dm, provider) = model();
        let mut tx = dm.begin();
        let first = tx
            .delete(&instance("Device.A.Ctl.2.", "Device.A.Ctl.{i}."))
            .await;
        assert!(first.is_ok(), "{first:?}");
        // Sub.2 went with Ctl.2; naming it in the same Delete is not a failure.
        let second = tx
            .delete(&instance("Device.A.Sub.2.", "Device.A.Sub.{i}."))
            .await;
        assert!(second.is_ok(), "{second:?}");
        assert!(tx.commit().await.is_ok());
        assert_eq!(provider.value("Device.A.Sub.2.ID"), None);
        assert_eq!(provider.value("Device.A.Sub.1.ID").as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn an_alias_must_be_non_empty_and_start_with_a_letter() {
        let (dm, _) = model();
        let ctl = instance("Device.A.Ctl.", "Device.A.Ctl.{i}.");
        for bad in ["", "1st", "-x", " wan"] {
            let refused = dm.check_write(&ctl, "Alias", bad);
            assert!(
                matches!(
                    refused,
                    Err(DmError::Value {
                        source: ValueError::BadAlias { .. },
                        ..
                    })
                ),
                "{bad:?}: {refused:?}"
            );
        }
        for good in ["wan", "cpe-7", "Z"] {
            assert!(dm.check_write(&ctl, "Alias", good).is_ok(), "{good:?}");
        }
    }

    #[tokio::test]
    async fn a_complete_key_that_matches_nothing_is_an_empty_search_for_get_instances() {
        let (dm, _) = model();
        let text = r#"Device.A.Ctl.[EndpointID=="nobody"]."#;
        assert!(matches!(
            dm.resolve_str(text).await,
            Err(DmError::NoSuchObject { .. })
        ));
        let found = dm
            .resolve_search_str(text)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(found.objects.is_empty());
    }
}
