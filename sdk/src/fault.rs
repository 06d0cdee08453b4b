//! Errors a plugin reports: [`Fault`], a USP error code with a message naming the path or
//! field at fault. The agent sends the code to the Controller unchanged.

use std::fmt;

use crate::bindings::usp::dm::types as wit;

/// The USP error codes a plugin typically reports (TR-369 "Error Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 7002: the request was denied.
    RequestDenied,
    /// 7003: internal error (I/O failure, unexpected system state).
    InternalError,
    /// 7004: invalid arguments.
    InvalidArguments,
    /// 7005: resources exceeded.
    ResourcesExceeded,
    /// 7007: the change would leave the device in an invalid configuration.
    InvalidConfiguration,
    /// 7010: unsupported parameter.
    UnsupportedParameter,
    /// 7011: the value cannot be converted to the parameter's type.
    InvalidType,
    /// 7012: the value is out of range or not allowed.
    InvalidValue,
    /// 7013: the parameter is not writable.
    ParamReadOnly,
    /// 7014: the value conflicts with another parameter.
    ValueConflict,
    /// 7016: the object does not exist.
    ObjectDoesNotExist,
    /// 7017: the object could not be created.
    ObjectCouldNotBeCreated,
    /// 7019: the object is not creatable.
    ObjectNotCreatable,
    /// 7022: the command failed.
    CommandFailure,
    /// 7024: the delete failed.
    DeleteFailure,
    /// 7026: the path is not served by this plugin.
    InvalidPath,
    /// 7027: invalid command arguments.
    InvalidCommandArguments,
    /// A data-model-defined (7200-7299) or vendor (7800-7999) code.
    Other(u32),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::RequestDenied => 7002,
            ErrorCode::InternalError => 7003,
            ErrorCode::InvalidArguments => 7004,
            ErrorCode::ResourcesExceeded => 7005,
            ErrorCode::InvalidConfiguration => 7007,
            ErrorCode::UnsupportedParameter => 7010,
            ErrorCode::InvalidType => 7011,
            ErrorCode::InvalidValue => 7012,
            ErrorCode::ParamReadOnly => 7013,
            ErrorCode::ValueConflict => 7014,
            ErrorCode::ObjectDoesNotExist => 7016,
            ErrorCode::ObjectCouldNotBeCreated => 7017,
            ErrorCode::ObjectNotCreatable => 7019,
            ErrorCode::CommandFailure => 7022,
            ErrorCode::DeleteFailure => 7024,
            ErrorCode::InvalidPath => 7026,
            ErrorCode::InvalidCommandArguments => 7027,
            ErrorCode::Other(code) => code,
        }
    }
}

/// A failure reported to the agent: a USP error code and a message naming the path or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The USP error code.
    pub code: ErrorCode,
    /// What went wrong, naming the path or field.
    pub message: String,
}

impl Fault {
    /// A fault with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Fault {
            code,
            message: message.into(),
        }
    }

    /// 7012: `value` is not acceptable for `path`, because of `why`.
    pub fn invalid_value(path: impl fmt::Display, value: &str, why: impl fmt::Display) -> Self {
        Fault::new(
            ErrorCode::InvalidValue,
            format!("{path}: invalid value \"{value}\": {why}"),
        )
    }

    /// 7016: the object does not exist.
    pub fn no_such_object(path: impl fmt::Display) -> Self {
        Fault::new(
            ErrorCode::ObjectDoesNotExist,
            format!("{path}: no such object"),
        )
    }

    /// 7026: this plugin does not serve the path.
    pub fn invalid_path(path: impl fmt::Display) -> Self {
        Fault::new(
            ErrorCode::InvalidPath,
            format!("{path}: not served by this plugin"),
        )
    }

    /// 7013: the parameter is not writable.
    pub fn read_only(path: impl fmt::Display) -> Self {
        Fault::new(ErrorCode::ParamReadOnly, format!("{path}: read-only"))
    }

    /// 7003: an I/O or system failure while serving `path`.
    pub fn internal(path: impl fmt::Display, why: impl fmt::Display) -> Self {
        Fault::new(ErrorCode::InternalError, format!("{path}: {why}"))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.code(), self.message)
    }
}

impl std::error::Error for Fault {}

impl From<Fault> for wit::Fault {
    fn from(fault: Fault) -> Self {
        wit::Fault {
            code: fault.code.code(),
            message: fault.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_names_path_and_value() {
        let fault = Fault::invalid_value("Device.Time.NTPServer1", "a b", "contains a space");
        assert_eq!(fault.code.code(), 7012);
        assert!(fault.message.contains("Device.Time.NTPServer1"));
        assert!(fault.message.contains("\"a b\""));
    }
}
