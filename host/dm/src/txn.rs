//! [`DmTransaction`]: one set of Controller writes spanning any number of providers. Provider
//! transactions are begun lazily (one per provider touched); [`DmTransaction::commit`] prepares
//! all of them and only then commits them, so a refusal by any provider changes nothing.
//! Dropping a `DmTransaction` drops (= aborts) every provider transaction.
//!
//! Every write is checked against the schema before the provider sees it (R-ENC.6): unknown
//! parameter 7010, not writable 7013, wrong type 7011, out of range 7012, non-creatable table
//! 7019, non-deletable instance.

use std::collections::BTreeMap;

use crate::error::DmError;
use crate::model::{DataModel, ResolvedObject};
use crate::provider::{Change, ParamValues, Transaction};
use crate::registry::ProviderId;
use crate::schema::ParamAccess;

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

    /// Deletes an instance and everything below it.
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
