//! The one place where engine errors become USP error codes, and the Error message builders.
//! The code for a missing instance depends on the message: Get reports 7026 (R-GET.0: a
//! non-search path not in the Instantiated Data Model), the others 7016.

use usp_codec::UspErrorCode;
use usp_codec::msg;
use usp_codec::usp_proto::usp;
use usp_codec::usp_proto::usp::header::MsgType;
use usp_dm::{DmError, ValueError};

/// Which message an error is reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Get.
    Get,
    /// Set.
    Set,
    /// Add.
    Add,
    /// Delete.
    Delete,
    /// Operate.
    Operate,
    /// GetInstances.
    GetInstances,
    /// GetSupportedDM.
    GetSupportedDm,
}

/// The USP code for an engine error in a message.
pub fn code(error: &DmError, op: Op) -> UspErrorCode {
    match error {
        DmError::Syntax(_) | DmError::BadExpression { .. } => UspErrorCode::InvalidPathSyntax,
        DmError::NotSupported { .. } => UspErrorCode::InvalidPath,
        DmError::UnknownParam { .. } => match op {
            Op::Set | Op::Add => UspErrorCode::UnsupportedParameter,
            _ => UspErrorCode::InvalidPath,
        },
        DmError::NoSuchObject { .. } => match op {
            Op::Get => UspErrorCode::InvalidPath,
            _ => UspErrorCode::ObjectDoesNotExist,
        },
        DmError::NotATable { .. } => UspErrorCode::ObjectNotATable,
        // R-KEY.1: after creation a non-functional key is as unwritable as a read-only one.
        DmError::ReadOnly { .. } | DmError::FixedKey { .. } => UspErrorCode::ParamReadOnly,
        DmError::Value { source, .. } => match source {
            ValueError::WrongType { .. } => UspErrorCode::InvalidType,
            _ => UspErrorCode::InvalidValue,
        },
        DmError::NotCreatable { .. } => UspErrorCode::ObjectNotCreatable,
        DmError::NotDeletable { .. } => UspErrorCode::DeleteFailure,
        DmError::InvalidArguments { .. } => UspErrorCode::InvalidCommandArguments,
        DmError::Provider { source, .. } => source.code,
        DmError::Unavailable { .. } | DmError::Registry(_) => UspErrorCode::InternalError,
    }
}

/// `(code number, message)` for a response field.
pub fn describe(error: &DmError, op: Op) -> (u32, String) {
    (code(error, op).code(), error.to_string())
}

/// Permission denied (7006) for a path.
pub fn denied(path: &str, what: &str) -> (u32, String) {
    (
        UspErrorCode::PermissionDenied.code(),
        format!("{path}: permission denied ({what})"),
    )
}

/// An Error Msg with per-path errors (`param_errs`), code from the first of them.
pub fn with_params(
    msg_id: &str,
    fallback: UspErrorCode,
    message: &str,
    param_errs: Vec<usp::error::ParamError>,
) -> usp::Msg {
    let code = param_errs
        .first()
        .and_then(|first| UspErrorCode::try_from(first.err_code).ok())
        .unwrap_or(fallback);
    msg::error(msg_id, code, message, param_errs)
}

/// One `param_errs` entry.
pub fn param_error(
    path: impl Into<String>,
    code: u32,
    message: impl Into<String>,
) -> usp::error::ParamError {
    usp::error::ParamError {
        param_path: path.into(),
        err_code: code,
        err_msg: message.into(),
    }
}

/// Error 7001 for a request type the agent does not serve (Register, Notify, ...).
pub fn unsupported(msg_id: &str, msg_type: MsgType) -> usp::Msg {
    msg::error(
        msg_id,
        UspErrorCode::MessageNotSupported,
        &format!("{} is not supported by this agent", msg_type.as_str_name()),
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use usp_dm::ProviderError;

    #[test]
    fn missing_instance_is_7026_for_get_and_7016_elsewhere() {
        let error = DmError::NoSuchObject {
            path: "Device.X.9.".into(),
        };
        assert_eq!(code(&error, Op::Get), UspErrorCode::InvalidPath);
        assert_eq!(code(&error, Op::Set), UspErrorCode::ObjectDoesNotExist);
    }

    #[test]
    fn unknown_parameter_is_7010_in_writes_and_7026_in_reads() {
        let error = DmError::UnknownParam {
            path: "Device.X.Y".into(),
        };
        assert_eq!(code(&error, Op::Set), UspErrorCode::UnsupportedParameter);
        assert_eq!(code(&error, Op::Get), UspErrorCode::InvalidPath);
    }

    #[test]
    fn provider_codes_pass_through() {
        let error = DmError::Provider {
            path: "Device.X.1.".into(),
            source: ProviderError::new(UspErrorCode::DuplicateUniqueKey, "dup"),
        };
        assert_eq!(code(&error, Op::Add), UspErrorCode::DuplicateUniqueKey);
    }

    #[test]
    fn value_errors_split_into_type_and_range() {
        let wrong = DmError::Value {
            path: "Device.X.Enable".into(),
            source: ValueError::WrongType {
                expected: usp_dm::ValueType::Boolean,
                value: "maybe".into(),
            },
        };
        assert_eq!(code(&wrong, Op::Set), UspErrorCode::InvalidType);
        let range = DmError::Value {
            path: "Device.X.Port".into(),
            source: ValueError::OutOfRange { value: "0".into() },
        };
        assert_eq!(code(&range, Op::Set), UspErrorCode::InvalidValue);
    }
}
