//! Loading the WebAssembly data-model plugins at start: the first-party ones built with the
//! agent and/or a configured directory, with the grants `[plugins]` approves. Components are
//! compiled by a short-lived child process (`usp-agent __compile <wasm> <cache-dir>`), so the
//! compiler's memory never stays in the agent. A plugin that fails to load, or whose claims
//! clash with another provider, is logged and left out; the agent runs without it.

use std::sync::Arc;
use std::time::Duration;

use usp_dm::{DataModel, Provider};
use usp_runtime::{ApprovalPolicy, HostConfig, PluginHost, RuntimeError};

use crate::config::Config;

/// Starts the plugin host and registers every plugin that loads; `None` when no plugins are
/// configured. Keep the host alive as long as the data model uses its providers.
pub(crate) async fn load(
    config: &Config,
    dm: &mut DataModel,
) -> Result<Option<PluginHost>, RuntimeError> {
    let mut dirs = Vec::new();
    if config.plugins.bundled {
        dirs.push(std::path::PathBuf::from(
            usp_runtime::artifacts::BUNDLED_PLUGINS_DIR,
        ));
    }
    dirs.extend(config.plugin_dir());
    if dirs.is_empty() {
        return Ok(None);
    }
    let readable_dirs = config.plugin_readable_dirs();
    if config.plugins.readable_dirs.is_none() && !readable_dirs.is_empty() {
        // Say so: the approval is a default, and it covers the `dir` plugins too.
        tracing::info!(
            dirs = ?readable_dirs,
            "plugins may preopen these directories read-only ([plugins] readable_dirs not set: the bundled plugins' default)"
        );
    }
    let mut host_config = HostConfig::new(config.state_dir())?;
    host_config.approval = ApprovalPolicy {
        readable_dirs,
        env: config.plugins.env.clone(),
        allow_config: config.plugins.allow_config,
        max_memory: config.plugins.max_memory,
        max_deadline: Duration::from_millis(config.plugins.max_deadline_ms),
    };
    let host = PluginHost::new(host_config)?;
    for dir in dirs {
        for (path, loaded) in host.load_dir(&dir).await {
            match loaded {
                Ok(provider) => {
                    let name = provider.name().to_string();
                    match dm.register(Arc::clone(&provider) as Arc<dyn Provider>) {
                        Ok(_) => tracing::info!(plugin = %name, "plugin registered"),
                        Err(error) => {
                            tracing::error!(plugin = %name, %error, "plugin left out");
                            if let Err(error) = host.unload(&name).await {
                                tracing::warn!(plugin = %name, %error, "could not unload");
                            }
                        }
                    }
                }
                Err(error) => {
                    let hint = match &error {
                        RuntimeError::GrantDenied { grant, .. }
                            if grant.starts_with("preopen ") =>
                        {
                            "; to grant it, list the directory (or a parent) in [plugins] readable_dirs of the config file"
                        }
                        RuntimeError::GrantDenied { .. } => {
                            "; the [plugins] section of the config file decides what plugins may be granted"
                        }
                        _ => "",
                    };
                    tracing::error!(dir = %path.display(), "plugin failed to load: {error}{hint}");
                }
            }
        }
    }
    Ok(Some(host))
}
