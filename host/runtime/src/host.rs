//! [`PluginHost`]: one wasmtime engine and epoch ticker for all plugins, the linker of the
//! `usp:dm` world plus WASI, and the registry of loaded plugins with their claims. Loading
//! checks the manifest (claims against reserved roots and other plugins, grants against the
//! approval policy), compiles out of process through the cache, checks the component's
//! imports, instantiates it and reads its schema.

use std::collections::BTreeMap;
use std::path::{Component as PathComponent, Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

use crate::bindings::{DmPlugin, DmPluginPre, HostState};
use crate::cache::load_component;
use crate::config::{HostConfig, approve};
use crate::engine::{EpochTicker, host_engine};
use crate::error::RuntimeError;
use crate::kv::KvStore;
use crate::manifest::Manifest;
use crate::provider::{Blueprint, PluginProvider, PluginStatus};
use crate::schema::overlaps;

/// Interfaces a plugin may import. WASI is linked with nothing granted (no preopens beyond the
/// manifest's approved ones, no environment beyond approved values, no network address
/// allowed, no name lookup); anything else is refused at load with its name.
const LINKED_IMPORTS: [&str; 7] = [
    "usp:dm/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Runs `usp:dm` components as data-model providers.
pub struct PluginHost {
    config: HostConfig,
    engine: Engine,
    linker: Linker<HostState>,
    _ticker: EpochTicker,
    plugins: Mutex<BTreeMap<String, Arc<PluginProvider>>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("state_dir", &self.config.state_dir)
            .finish()
    }
}

impl PluginHost {
    /// Creates the engine (pooling allocator if configured and possible), the linker and the
    /// epoch ticker thread. Must be called inside a Tokio runtime only for the later `load`s.
    pub fn new(config: HostConfig) -> Result<PluginHost, RuntimeError> {
        let engine = host_engine(config.pooling, config.max_instances)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|err| {
            RuntimeError::Linking {
                interface: "WASI",
                source: err.into(),
            }
        })?;
        DmPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(|err| {
            RuntimeError::Linking {
                interface: "usp:dm",
                source: err.into(),
            }
        })?;
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(PluginHost {
            config,
            engine,
            linker,
            _ticker: ticker,
            plugins: Mutex::new(BTreeMap::new()),
        })
    }

    /// Loads the plugin in `dir` (`manifest.toml` + the `.wasm` it names).
    pub async fn load(&self, dir: &Path) -> Result<Arc<PluginProvider>, RuntimeError> {
        let manifest = Manifest::read_dir(dir)?;
        let mut plugins = self.plugins.lock().await;
        if plugins.contains_key(&manifest.name) {
            return Err(RuntimeError::AlreadyLoaded(manifest.name));
        }
        let provider = self.start(&manifest, dir, &plugins, None).await?;
        plugins.insert(manifest.name.clone(), Arc::clone(&provider));
        tracing::info!(plugin = %manifest.name, claims = ?manifest.claims, "plugin loaded");
        Ok(provider)
    }

    /// Loads every plugin directory under `dir` (firmware-bundled plugins), in name order. One
    /// plugin failing to load does not stop the others; each result is returned and failures
    /// are logged.
    pub async fn load_dir(
        &self,
        dir: &Path,
    ) -> Vec<(PathBuf, Result<Arc<PluginProvider>, RuntimeError>)> {
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.join("manifest.toml").is_file())
                .collect(),
            Err(source) => {
                let error = RuntimeError::PluginDir {
                    dir: dir.to_path_buf(),
                    source,
                };
                tracing::error!("{error}");
                return vec![(dir.to_path_buf(), Err(error))];
            }
        };
        dirs.sort();
        let mut results = Vec::new();
        for plugin_dir in dirs {
            let result = self.load(&plugin_dir).await;
            if let Err(error) = &result {
                tracing::error!(dir = %plugin_dir.display(), "{error}");
            }
            results.push((plugin_dir, result));
        }
        results
    }

    /// Unloads a plugin: its instance is dropped and every call through providers still held
    /// elsewhere answers 7003. Its key-value store is kept (see [`PluginHost::remove_data`]).
    pub async fn unload(&self, name: &str) -> Result<(), RuntimeError> {
        let provider = self
            .plugins
            .lock()
            .await
            .remove(name)
            .ok_or_else(|| RuntimeError::NotLoaded(name.to_string()))?;
        provider.shut_down().await;
        tracing::info!(plugin = name, "plugin unloaded");
        Ok(())
    }

    /// Replaces a loaded plugin with the one in `dir` (same name). The new one is fully loaded
    /// (compiled, instantiated, schema checked) before the old one is unloaded, so a bad
    /// update leaves the old plugin running. The caller re-registers the returned provider.
    pub async fn replace(&self, dir: &Path) -> Result<Arc<PluginProvider>, RuntimeError> {
        let manifest = Manifest::read_dir(dir)?;
        let mut plugins = self.plugins.lock().await;
        let old = plugins
            .get(&manifest.name)
            .cloned()
            .ok_or_else(|| RuntimeError::NotLoaded(manifest.name.clone()))?;
        let provider = self
            .start(&manifest, dir, &plugins, Some(&manifest.name))
            .await?;
        old.shut_down().await;
        plugins.insert(manifest.name.clone(), Arc::clone(&provider));
        tracing::info!(plugin = %manifest.name, "plugin replaced");
        Ok(provider)
    }

    /// Deletes a plugin's key-value store (on uninstall). The plugin must be unloaded.
    pub async fn remove_data(&self, name: &str) -> Result<(), RuntimeError> {
        if self.plugins.lock().await.contains_key(name) {
            return Err(RuntimeError::AlreadyLoaded(name.to_string()));
        }
        self.kv_store(name).wipe().map_err(RuntimeError::Kv)
    }

    /// The status of a loaded plugin.
    pub async fn status(&self, name: &str) -> Option<PluginStatus> {
        self.plugins
            .lock()
            .await
            .get(name)
            .map(|provider| provider.status())
    }

    /// Every loaded plugin with its status, by name.
    pub async fn plugins(&self) -> Vec<(String, PluginStatus)> {
        self.plugins
            .lock()
            .await
            .iter()
            .map(|(name, provider)| (name.clone(), provider.status()))
            .collect()
    }

    /// The loaded plugin called `name`.
    pub async fn provider(&self, name: &str) -> Option<Arc<PluginProvider>> {
        self.plugins.lock().await.get(name).cloned()
    }

    fn kv_store(&self, name: &str) -> KvStore {
        KvStore::new(
            self.config
                .state_dir
                .join("plugin-data")
                .join(name)
                .join("kv"),
        )
    }

    fn check_claims(
        &self,
        manifest: &Manifest,
        plugins: &BTreeMap<String, Arc<PluginProvider>>,
        replacing: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let rejected = |claim: &str, reason: String| RuntimeError::ClaimRejected {
            plugin: manifest.name.clone(),
            claim: claim.to_string(),
            reason,
        };
        for claim in &manifest.claims {
            if let Some(root) = self
                .config
                .reserved_roots
                .iter()
                .find(|root| overlaps(claim, root))
            {
                return Err(rejected(
                    claim,
                    format!("{root} is owned by the agent core"),
                ));
            }
            for (other, provider) in plugins {
                if Some(other.as_str()) == replacing {
                    continue;
                }
                if let Some(theirs) = provider
                    .claims()
                    .iter()
                    .find(|theirs| overlaps(claim, theirs))
                {
                    return Err(rejected(
                        claim,
                        format!("overlaps {theirs} of plugin \"{other}\""),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn start(
        &self,
        manifest: &Manifest,
        dir: &Path,
        plugins: &BTreeMap<String, Arc<PluginProvider>>,
        replacing: Option<&str>,
    ) -> Result<Arc<PluginProvider>, RuntimeError> {
        self.check_claims(manifest, plugins, replacing)?;
        let approved = approve(manifest, &self.config.approval)?;
        let manifest_error = |message: String| RuntimeError::Manifest {
            path: dir.join("manifest.toml"),
            message,
        };
        if !manifest
            .wasm
            .components()
            .all(|part| matches!(part, PathComponent::Normal(_)))
        {
            return Err(manifest_error(format!(
                "wasm {} must be a relative path inside the plugin directory",
                manifest.wasm.display()
            )));
        }
        let wasm_path = dir.join(&manifest.wasm);
        let wasm = std::fs::read(&wasm_path).map_err(|source| RuntimeError::WasmRead {
            wasm: wasm_path.clone(),
            source,
        })?;
        let component = load_component(
            &self.engine,
            &self.config.compiler,
            &manifest.name,
            &wasm_path,
            &wasm,
            &self.config.cache_dir,
        )
        .await?;
        check_imports(&self.engine, &manifest.name, &component)?;
        let instantiate_error = |err: wasmtime::Error| RuntimeError::Instantiate {
            plugin: manifest.name.clone(),
            reason: format!("{err:#}"),
            source: err.into(),
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(instantiate_error)?;
        let pre = DmPluginPre::new(pre).map_err(instantiate_error)?;
        let config: BTreeMap<String, String> = approved.config.iter().cloned().collect();
        let blueprint = Blueprint {
            name: Arc::from(manifest.name.as_str()),
            engine: self.engine.clone(),
            pre,
            approved,
            claims: Arc::from(manifest.claims.clone()),
            kv: self.kv_store(&manifest.name),
            backoff: self.config.backoff,
        };
        Ok(Arc::new(PluginProvider::start(blueprint, config).await?))
    }
}

/// Refuses a component importing anything outside [`LINKED_IMPORTS`], naming the import.
fn check_imports(engine: &Engine, plugin: &str, component: &Component) -> Result<(), RuntimeError> {
    for (name, _) in component.component_type().imports(engine) {
        if !LINKED_IMPORTS.iter().any(|prefix| name.starts_with(prefix)) {
            return Err(RuntimeError::UngrantedImport {
                plugin: plugin.to_string(),
                import: name.to_string(),
            });
        }
    }
    Ok(())
}
