//! [`RuntimeError`]: why a plugin could not be loaded, compiled or called, and the one place
//! where runtime failures and plugin faults become USP error codes.

use std::path::PathBuf;

use usp_codec::UspErrorCode;
use usp_dm::ProviderError;

/// Why an operation of the plugin host failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The manifest could not be read or parsed.
    #[error("plugin manifest {path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
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
    /// The `.wasm` could not be compiled (corrupt or not a component).
    #[error("plugin \"{plugin}\": compiling {wasm} failed: {message}")]
    Compile {
        /// The plugin's name.
        plugin: String,
        /// The `.wasm` file.
        wasm: PathBuf,
        /// The compiler's message.
        message: String,
    },
    /// The component could not be linked or instantiated.
    #[error("plugin \"{plugin}\": instantiation failed: {message}")]
    Instantiate {
        /// The plugin's name.
        plugin: String,
        /// The engine's message.
        message: String,
    },
    /// The named plugin is not loaded.
    #[error("plugin \"{0}\" is not loaded")]
    NotLoaded(String),
    /// A plugin with this name is already loaded.
    #[error("plugin \"{0}\" is already loaded")]
    AlreadyLoaded(String),
    /// Engine set-up or file-system failure of the host itself.
    #[error("plugin host: {0}")]
    Host(String),
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
    fn unavailable_names_the_plugin() {
        let error = plugin_unavailable("time", "trap: unreachable");
        assert_eq!(error.code.code(), 7003);
        assert!(error.message.contains("plugin \"time\""));
    }
}
