//! Which provider serves which part of the Supported Data Model. Providers come and go at run
//! time (plugins are installed and uninstalled), so the registry keeps, per provider, its schema
//! and claimed roots, and rebuilds the merged schema and the routing table on every change.
//!
//! A provider's *roots* are the top objects of its schema (objects whose parent it does not
//! define). Two providers overlap when they define the same object, or when one's root lies
//! inside the other's root and the other defines objects in that subtree. Nesting without
//! overlap is fine: a built-in `Device.` and a plugin's `Device.WiFi.` coexist.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::provider::Provider;
use crate::schema::{ObjectDef, Schema};

/// Identifies a registered provider; stays valid until unregistered (survives `replace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProviderId(u64);

/// Why a registry change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The provider's schema overlaps one already registered.
    #[error("provider \"{provider}\" claims {path}, already served by \"{owner}\"")]
    Overlap {
        /// The provider being registered.
        provider: String,
        /// The first conflicting object path.
        path: String,
        /// The provider that serves it.
        owner: String,
    },
    /// A schema object path is not a well-formed supported-DM object path.
    #[error("provider \"{provider}\" declares a malformed object path \"{path}\"")]
    BadPath {
        /// The provider being registered.
        provider: String,
        /// The path.
        path: String,
    },
    /// No provider with this id is registered.
    #[error("no provider registered under {0:?}")]
    Unknown(ProviderId),
}

struct Entry {
    provider: Arc<dyn Provider>,
    schema: Arc<Schema>,
    roots: Vec<String>,
}

/// The set of registered providers and the merged schema they serve.
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<ProviderId, Entry>,
    owners: HashMap<String, ProviderId>,
    merged: Schema,
    /// Child object paths of each supported object path (and of virtual parents such as
    /// `Device.` when no provider defines it).
    children: BTreeMap<String, Vec<String>>,
    next_id: u64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("providers", &self.entries.len())
            .field("objects", &self.merged.len())
            .finish()
    }
}

/// The parent supported path of a supported object path: `A.B.{i}.` → `A.`, `A.B.` → `A.`.
pub(crate) fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.strip_suffix("{i}.").unwrap_or(path);
    let trimmed = trimmed.strip_suffix('.')?;
    let cut = trimmed.rfind('.')?;
    Some(&trimmed[..=cut])
}

fn roots_of(schema: &Schema) -> Vec<String> {
    schema
        .objects()
        .filter(|object| {
            let mut parent = parent_of(&object.path);
            while let Some(path) = parent {
                if schema.object(path).is_some() {
                    return false;
                }
                parent = parent_of(path);
            }
            true
        })
        .map(|object| object.path.clone())
        .collect()
}

fn well_formed(path: &str) -> bool {
    path.ends_with('.')
        && !path.starts_with('.')
        && path[..path.len() - 1].split('.').all(|part| {
            part == "{i}"
                || (part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        })
}

impl Registry {
    /// Adds a provider. Its schema must not overlap any registered provider's.
    pub fn register(&mut self, provider: Arc<dyn Provider>) -> Result<ProviderId, RegistryError> {
        let schema = provider.schema();
        self.check(provider.name(), &schema, None)?;
        let id = ProviderId(self.next_id);
        self.next_id += 1;
        let roots = roots_of(&schema);
        self.entries.insert(
            id,
            Entry {
                provider,
                schema,
                roots,
            },
        );
        self.rebuild();
        Ok(id)
    }

    /// Removes a provider; its paths become unsupported.
    pub fn unregister(&mut self, id: ProviderId) -> Result<Arc<dyn Provider>, RegistryError> {
        let entry = self.entries.remove(&id).ok_or(RegistryError::Unknown(id))?;
        self.rebuild();
        Ok(entry.provider)
    }

    /// Swaps the provider behind `id` (a restarted or upgraded plugin). The new schema may
    /// differ but must not overlap other providers.
    pub fn replace(
        &mut self,
        id: ProviderId,
        provider: Arc<dyn Provider>,
    ) -> Result<Arc<dyn Provider>, RegistryError> {
        if !self.entries.contains_key(&id) {
            return Err(RegistryError::Unknown(id));
        }
        let schema = provider.schema();
        self.check(provider.name(), &schema, Some(id))?;
        let roots = roots_of(&schema);
        let old = self.entries.insert(
            id,
            Entry {
                provider,
                schema,
                roots,
            },
        );
        self.rebuild();
        old.map(|entry| entry.provider)
            .ok_or(RegistryError::Unknown(id))
    }

    fn check(
        &self,
        name: &str,
        schema: &Schema,
        ignore: Option<ProviderId>,
    ) -> Result<(), RegistryError> {
        let overlap = |path: &str, owner: &Entry| RegistryError::Overlap {
            provider: name.to_string(),
            path: path.to_string(),
            owner: owner.provider.name().to_string(),
        };
        for object in schema.objects() {
            if !well_formed(&object.path) {
                return Err(RegistryError::BadPath {
                    provider: name.to_string(),
                    path: object.path.clone(),
                });
            }
        }
        let new_roots = roots_of(schema);
        for (id, entry) in &self.entries {
            if Some(*id) == ignore {
                continue;
            }
            for object in schema.objects() {
                if entry.schema.object(&object.path).is_some() {
                    return Err(overlap(&object.path, entry));
                }
            }
            for new_root in &new_roots {
                for old_root in &entry.roots {
                    let new_inside_old = new_root.starts_with(old_root.as_str())
                        && entry.schema.subtree(new_root).next().is_some();
                    let old_inside_new = old_root.starts_with(new_root.as_str())
                        && schema.subtree(old_root).next().is_some();
                    if new_inside_old || old_inside_new {
                        return Err(overlap(new_root, entry));
                    }
                }
            }
        }
        Ok(())
    }

    fn rebuild(&mut self) {
        self.owners.clear();
        self.merged = Schema::new();
        self.children.clear();
        for (id, entry) in &self.entries {
            for object in entry.schema.objects() {
                self.owners.insert(object.path.clone(), *id);
                self.merged.insert(object.clone());
            }
        }
        let paths: Vec<String> = self.merged.objects().map(|o| o.path.clone()).collect();
        for path in paths {
            let mut child = path;
            while let Some(parent) = parent_of(&child).map(str::to_string) {
                let list = self.children.entry(parent.clone()).or_default();
                if list.contains(&child) {
                    break;
                }
                list.push(child);
                child = parent;
            }
        }
        for list in self.children.values_mut() {
            list.sort();
        }
    }

    /// The merged schema of every registered provider.
    pub fn schema(&self) -> &Schema {
        &self.merged
    }

    /// The object at a supported path, from whichever provider defines it.
    pub fn object(&self, supported: &str) -> Option<&ObjectDef> {
        self.merged.object(supported)
    }

    /// True when the supported object path is defined, or is a parent of defined objects
    /// (a virtual object such as `Device.` when no provider defines it).
    pub fn knows_object(&self, supported: &str) -> bool {
        self.merged.object(supported).is_some() || self.children.contains_key(supported)
    }

    /// Supported paths of the direct child objects (tables as `X.{i}.`), sorted.
    pub fn children(&self, supported: &str) -> &[String] {
        self.children.get(supported).map_or(&[], Vec::as_slice)
    }

    /// The provider serving an object (by supported path), with its id.
    pub fn owner(&self, supported: &str) -> Option<(ProviderId, &Arc<dyn Provider>)> {
        let id = self.owners.get(supported)?;
        self.entries.get(id).map(|entry| (*id, &entry.provider))
    }

    /// The provider registered under `id`.
    pub fn provider(&self, id: ProviderId) -> Option<&Arc<dyn Provider>> {
        self.entries.get(&id).map(|entry| &entry.provider)
    }

    /// Every registered provider with its id.
    pub fn providers(&self) -> impl Iterator<Item = (ProviderId, &Arc<dyn Provider>)> {
        self.entries
            .iter()
            .map(|(id, entry)| (*id, &entry.provider))
    }

    /// The roots a provider claims.
    pub fn roots(&self, id: ProviderId) -> Option<&[String]> {
        self.entries.get(&id).map(|entry| entry.roots.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryProvider;

    fn provider(name: &str, paths: &[&str]) -> Arc<dyn Provider> {
        let schema: Schema = paths.iter().map(|path| ObjectDef::new(*path)).collect();
        Arc::new(MemoryProvider::new(name, schema))
    }

    #[test]
    fn parent_of_handles_tables_and_objects() {
        assert_eq!(parent_of("Device.IP.Interface.{i}."), Some("Device.IP."));
        assert_eq!(parent_of("Device.IP."), Some("Device."));
        assert_eq!(parent_of("Device."), None);
    }

    #[test]
    fn nested_providers_without_shared_objects_coexist() {
        let mut registry = Registry::default();
        registry
            .register(provider("device", &["Device.", "Device.LocalAgent."]))
            .unwrap_or_else(|e| panic!("{e}"));
        registry
            .register(provider("wifi", &["Device.WiFi.", "Device.WiFi.SSID.{i}."]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            registry.children("Device."),
            ["Device.LocalAgent.", "Device.WiFi."]
        );
        assert_eq!(
            registry
                .owner("Device.WiFi.SSID.{i}.")
                .map(|(_, p)| p.name()),
            Some("wifi")
        );
    }

    #[test]
    fn overlapping_claims_are_rejected() {
        let mut registry = Registry::default();
        registry
            .register(provider("a", &["Device.WiFi.", "Device.WiFi.SSID.{i}."]))
            .unwrap_or_else(|e| panic!("{e}"));
        let error = registry.register(provider("b", &["Device.WiFi.SSID.{i}."]));
        assert!(matches!(error, Err(RegistryError::Overlap { .. })));
        let error = registry.register(provider("c", &["Device.", "Device.WiFi.Radio.{i}."]));
        assert!(matches!(error, Err(RegistryError::Overlap { .. })));
    }

    #[test]
    fn unregister_and_replace_update_routing() {
        let mut registry = Registry::default();
        let id = registry
            .register(provider("a", &["Device.X."]))
            .unwrap_or_else(|e| panic!("{e}"));
        registry
            .replace(id, provider("a2", &["Device.X.", "Device.X.T.{i}."]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(registry.object("Device.X.T.{i}.").is_some());
        registry.unregister(id).unwrap_or_else(|e| panic!("{e}"));
        assert!(!registry.knows_object("Device.X."));
        assert!(matches!(
            registry.unregister(id),
            Err(RegistryError::Unknown(_))
        ));
    }
}
