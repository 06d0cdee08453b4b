//! [`RuntimeError`]: why a plugin could not be loaded, compiled or called (each variant keeps
//! the underlying I/O, TOML or engine error as its source), and the one place where runtime
//! failures and plugin faults become USP error codes.

use std::path::PathBuf;

use usp_codec::UspErrorCode;
use usp_dm::ProviderError;

use crate::kv::KvError;

/// An error from wasmtime (its `Error` does not implement [`std::error::Error`], so it is kept
/// boxed through `into_boxed_dyn_error`, its cause chain intact).
pub type EngineError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an operation of the plugin host failed. Variants caused by an underlying error keep it
/// as their [`std::error::Error::source`]; their text also names it, so printing the error alone
/// stays informative.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The manifest file could not be read.
    #[error("plugin manifest {path}: {source}")]
    ManifestRead {
        /// The manifest file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML or does not have the manifest's fields.
    #[error("plugin manifest {path}: {source}")]
    ManifestSyntax {
        /// The manifest file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// The manifest parses but a value in it is not acceptable.
    #[error("plugin manifest {path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The `.wasm` named by the manifest could not be read.
    #[error("plugin wasm {wasm}: {source}")]
    WasmRead {
        /// The `.wasm` file.
        wasm: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A grant in the manifest is not approved by the agent's configuration.
    #[error("plugin \"{plugin}\": grant not approved: {grant}")]
    GrantDenied {
        /// The plugin's name.
        plugin: String,
        /// The refused grant.
        grant: String,
    },
    /// The component imports an interface the host does not grant.
    #[error("plugin \"{plugin}\" imports `{import}`, which is not granted to plugins")]
    UngrantedImport {
        /// The plugin's name.
        plugin: String,
        /// The import name.
        import: String,
    },
    /// A claimed subtree is reserved for the core or overlaps another plugin.
    #[error("plugin \"{plugin}\": claim {claim} rejected: {reason}")]
    ClaimRejected {
        /// The plugin's name.
        plugin: String,
        /// The claimed path.
        claim: String,
        /// Why (the reserved root or the other plugin).
        reason: String,
    },
    /// The schema returned by `describe()` is not acceptable.
    #[error("plugin \"{plugin}\": schema rejected: {reason}")]
    SchemaRejected {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// The compiler child process could not be started.
    #[error("plugin \"{plugin}\": compiling {wasm} failed: cannot run {program}: {source}")]
    CompilerSpawn {
        /// The plugin's name.
        plugin: String,
        /// The `.wasm` file.
        wasm: PathBuf,
        /// The compiler executable.
        program: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The compiler child process failed (corrupt `.wasm`, not a component) or wrote nothing.
    #[error("plugin \"{plugin}\": compiling {wasm} failed: {message}")]
    Compile {
        /// The plugin's name.
        plugin: String,
        /// The `.wasm` file.
        wasm: PathBuf,
        /// The compiler's message (its stderr and exit status).
        message: String,
    },
    /// The compiled code in the cache could not be loaded.
    #[error("plugin \"{plugin}\": compiling {wasm} failed: cached native code {cached}: {}", chain(.source.as_ref()))]
    CacheLoad {
        /// The plugin's name.
        plugin: String,
        /// The `.wasm` file.
        wasm: PathBuf,
        /// The cache file.
        cached: PathBuf,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// Compiling to native code failed (in the compile child process).
    #[error("compiling {wasm} failed: {}", chain(.source.as_ref()))]
    Precompile {
        /// The `.wasm` file.
        wasm: PathBuf,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// The compile cache could not be written.
    #[error("plugin host: compile cache {path}: {source}")]
    CacheIo {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The component could not be linked or instantiated, or its `describe()` failed.
    #[error("plugin \"{plugin}\": instantiation failed: {reason}")]
    Instantiate {
        /// The plugin's name.
        plugin: String,
        /// What failed, with the engine's message and the guest's stderr.
        reason: String,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// The named plugin is not loaded.
    #[error("plugin \"{0}\" is not loaded")]
    NotLoaded(String),
    /// A plugin with this name is already loaded.
    #[error("plugin \"{0}\" is already loaded")]
    AlreadyLoaded(String),
    /// The wasmtime engine could not be created with the host's settings.
    #[error("plugin host: engine: {}", chain(.0.as_ref()))]
    Engine(#[source] EngineError),
    /// The thread advancing the engine's epoch could not be started.
    #[error("plugin host: epoch ticker: {0}")]
    EpochTicker(#[source] std::io::Error),
    /// The host interfaces (WASI, `usp:dm`) could not be added to the linker.
    #[error("plugin host: linking {interface}: {}", chain(.source.as_ref()))]
    Linking {
        /// The interface being linked.
        interface: &'static str,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// A directory of plugins could not be listed.
    #[error("plugin host: plugin directory {dir}: {source}")]
    PluginDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A plugin's key-value store could not be removed.
    #[error("plugin host: {0}")]
    Kv(#[source] KvError),
    /// The path of the running executable (the compiler) could not be found.
    #[error("plugin host: cannot find the running executable: {0}")]
    CurrentExe(#[source] std::io::Error),
}

/// `error` and its causes, joined by ": " (how wasmtime's `{:#}` prints them).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let part = next.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = next.source();
    }
    text
}

/// The USP code for a fault reported by a plugin; codes outside the USP ranges become 7003.
pub(crate) fn fault_code(code: u32) -> UspErrorCode {
    UspErrorCode::try_from(code).unwrap_or(UspErrorCode::InternalError)
}

/// A fault reported by the plugin itself, as a provider error.
pub(crate) fn plugin_fault(plugin: &str, code: u32, message: &str) -> ProviderError {
    let usp_code = fault_code(code);
    if usp_code.code() == code {
        ProviderError::new(usp_code, message)
    } else {
        ProviderError::new(
            usp_code,
            format!("plugin \"{plugin}\" reported invalid error code {code}: {message}"),
        )
    }
}

/// The error every call to a failed (trapped, overrun, over-limit, restarting) plugin gets:
/// 7003 naming the plugin and the reason.
pub(crate) fn plugin_unavailable(plugin: &str, reason: &str) -> ProviderError {
    ProviderError::new(
        UspErrorCode::InternalError,
        format!("plugin \"{plugin}\" failed: {reason}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_faults_keep_usp_codes_and_replace_others_with_7003() {
        assert_eq!(
            plugin_fault("p", 7012, "bad").code,
            UspErrorCode::InvalidValue
        );
        let unknown = plugin_fault("p", 42, "odd");
        assert_eq!(unknown.code, UspErrorCode::InternalError);
        assert!(unknown.message.contains("plugin \"p\""));
        assert!(unknown.message.contains("42"));
    }

    #[test]
    fn manifest_read_errors_keep_the_io_error_as_source() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().unwrap();
        let error = crate::Manifest::read_dir(&dir.path().join("missing")).unwrap_err();
        assert!(
            matches!(error, RuntimeError::ManifestRead { .. }),
            "{error}"
        );
        let source = error.source().unwrap();
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(error.to_string().contains(&source.to_string()), "{error}");
    }

    #[test]
    fn engine_errors_print_their_cause_chain() {
        let error = RuntimeError::Engine(
            wasmtime::Error::msg("inner")
                .context("outer")
                .into_boxed_dyn_error(),
        );
        assert_eq!(error.to_string(), "plugin host: engine: outer: inner");
    }

    #[test]
    fn unavailable_names_the_plugin() {
        let error = plugin_unavailable("time", "trap: unreachable");
        assert_eq!(error.code.code(), 7003);
        assert!(error.message.contains("plugin \"time\""));
    }
}
