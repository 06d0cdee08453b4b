//! [`DmError`]: every way the engine refuses or fails a request. Each variant names the path at
//! fault; the message layer (`usp-agent`'s `messages::error`) turns them into USP error codes, in
//! one place, because the right code sometimes depends on the message (a missing instance is
//! 7026 for Get but 7016 for Set).

use usp_codec::path::PathError;

use crate::provider::ProviderError;
use crate::registry::RegistryError;
use crate::value::ValueError;

/// An engine failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DmError {
    /// The path does not follow the grammar.
    #[error(transparent)]
    Syntax(#[from] PathError),
    /// An object, command or event path that is not in the Supported Data Model.
    #[error("{path} is not in the supported data model")]
    NotSupported {
        /// The path as requested (or the first unsupported prefix).
        path: String,
    },
    /// A parameter name the object does not define.
    #[error("{path} is not a supported parameter")]
    UnknownParam {
        /// The full parameter path.
        path: String,
    },
    /// A non-search path naming an instance that does not exist.
    #[error("{path} does not exist")]
    NoSuchObject {
        /// The instance path.
        path: String,
    },
    /// A table operation on something that is not a table (or an instance where a table was
    /// expected).
    #[error("{path} is not a table")]
    NotATable {
        /// The path.
        path: String,
    },
    /// A search expression that compares a parameter in a way its type does not allow
    /// (`[Enable=="true"]` on a boolean, `<` on a string, `~=` on a non-list).
    #[error("{path}: {reason}")]
    BadExpression {
        /// The path holding the expression.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Set (or Add) of a parameter that a Controller may not write.
    #[error("{path} is not writable")]
    ReadOnly {
        /// The parameter path.
        path: String,
    },
    /// A Set that would change a member of a non-functional unique key of an existing
    /// instance (R-KEY.1).
    #[error("{path} is a non-functional unique key and cannot change after creation")]
    FixedKey {
        /// The parameter path.
        path: String,
    },
    /// A value that does not fit the parameter.
    #[error("{path}: {source}")]
    Value {
        /// The parameter path.
        path: String,
        /// Why it does not fit.
        source: ValueError,
    },
    /// Add on a table whose instances a Controller may not create.
    #[error("{path}: instances cannot be created")]
    NotCreatable {
        /// The table path.
        path: String,
    },
    /// Delete of an instance a Controller may not delete.
    #[error("{path}: instances cannot be deleted")]
    NotDeletable {
        /// The instance path.
        path: String,
    },
    /// Command input arguments are missing or malformed (7027).
    #[error("{path}: {reason}")]
    InvalidArguments {
        /// The command path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A provider refused or failed; its code is reported as is.
    #[error("{path}: {source}")]
    Provider {
        /// The path the provider was asked about.
        path: String,
        /// The provider's error.
        source: ProviderError,
    },
    /// No provider serves the path any more (unloaded, or crashed and restarting).
    #[error("{path}: no provider serves this path")]
    Unavailable {
        /// The path.
        path: String,
    },
    /// A registry change was refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl DmError {
    /// The path (or provider name, for registry errors) the error is about.
    pub fn path(&self) -> &str {
        match self {
            DmError::Syntax(error) => &error.path,
            DmError::NotSupported { path }
            | DmError::UnknownParam { path }
            | DmError::NoSuchObject { path }
            | DmError::NotATable { path }
            | DmError::BadExpression { path, .. }
            | DmError::ReadOnly { path }
            | DmError::FixedKey { path }
            | DmError::Value { path, .. }
            | DmError::NotCreatable { path }
            | DmError::NotDeletable { path }
            | DmError::InvalidArguments { path, .. }
            | DmError::Provider { path, .. }
            | DmError::Unavailable { path } => path,
            DmError::Registry(_) => "",
        }
    }

    pub(crate) fn provider(path: impl Into<String>, source: ProviderError) -> Self {
        DmError::Provider {
            path: path.into(),
            source,
        }
    }
}
