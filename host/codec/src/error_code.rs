//! The USP error codes (TR-369 §"Error Codes", 7000–7999) as one enum: the only place where a
//! numeric code and its default message are written down.

use std::fmt;

/// A USP error code. `code()` gives the wire value, `default_message()` the spec's meaning.
///
/// Data-model-defined (7200–7299) and vendor (7800–7999) codes are carried by
/// [`UspErrorCode::DataModel`] and [`UspErrorCode::Vendor`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UspErrorCode {
    /// 7000: the message failed; the error message explains why.
    MessageFailed,
    /// 7001: the message type is not supported.
    MessageNotSupported,
    /// 7002: the request was denied, no reason given.
    RequestDenied,
    /// 7003: internal error.
    InternalError,
    /// 7004: invalid arguments.
    InvalidArguments,
    /// 7005: resources exceeded.
    ResourcesExceeded,
    /// 7006: permission denied.
    PermissionDenied,
    /// 7007: the change would leave the endpoint in an invalid configuration.
    InvalidConfiguration,
    /// 7008: invalid path syntax.
    InvalidPathSyntax,
    /// 7009: a parameter action failed.
    ParameterActionFailed,
    /// 7010: unsupported parameter.
    UnsupportedParameter,
    /// 7011: the value cannot be converted to the parameter's type.
    InvalidType,
    /// 7012: the value is out of range or not in the enumeration.
    InvalidValue,
    /// 7013: attempt to update a non-writable parameter.
    ParamReadOnly,
    /// 7014: value conflict.
    ValueConflict,
    /// 7015: general create/update/delete failure.
    OperationError,
    /// 7016: the object does not exist.
    ObjectDoesNotExist,
    /// 7017: the object could not be created.
    ObjectCouldNotBeCreated,
    /// 7018: the object is not a table.
    ObjectNotATable,
    /// 7019: attempt to create a non-creatable object.
    ObjectNotCreatable,
    /// 7020: the object could not be updated.
    ObjectCouldNotBeUpdated,
    /// 7021: a required parameter failed.
    RequiredParamFailed,
    /// 7022: command failure.
    CommandFailure,
    /// 7023: command canceled.
    CommandCanceled,
    /// 7024: delete failure.
    DeleteFailure,
    /// 7025: an object with the same unique key exists.
    DuplicateUniqueKey,
    /// 7026: the path is not in the Supported Data Model (or, for Get, not instantiated).
    InvalidPath,
    /// 7027: invalid command arguments.
    InvalidCommandArguments,
    /// 7028: register failure.
    RegisterFailure,
    /// 7029: the path is already registered by another endpoint.
    AlreadyInUse,
    /// 7030: deregister failure.
    DeregisterFailure,
    /// 7031: the path is registered by a different endpoint.
    PathAlreadyRegistered,
    /// 7100: the Record could not be parsed.
    RecordNotParsed,
    /// 7101: a secure session (E2E) is required.
    SecureSessionRequired,
    /// 7102: secure sessions are not supported.
    SecureSessionNotSupported,
    /// 7103: segmentation and reassembly are not supported.
    SegmentationNotSupported,
    /// 7104: a Record field holds an invalid value.
    InvalidRecordValue,
    /// 7105: the session context was terminated.
    SessionContextTerminated,
    /// 7106: session context is not allowed.
    SessionContextNotAllowed,
    /// 7200–7299: a code defined by the data model (e.g. software module faults).
    DataModel(u32),
    /// 7800–7999: a vendor-defined code.
    Vendor(u32),
}

/// The table of fixed codes: one row per variant, the single source of code numbers and texts.
const FIXED: &[(UspErrorCode, u32, &str)] = &[
    (UspErrorCode::MessageFailed, 7000, "Message failed"),
    (
        UspErrorCode::MessageNotSupported,
        7001,
        "Message not supported",
    ),
    (UspErrorCode::RequestDenied, 7002, "Request denied"),
    (UspErrorCode::InternalError, 7003, "Internal error"),
    (UspErrorCode::InvalidArguments, 7004, "Invalid arguments"),
    (UspErrorCode::ResourcesExceeded, 7005, "Resources exceeded"),
    (UspErrorCode::PermissionDenied, 7006, "Permission denied"),
    (
        UspErrorCode::InvalidConfiguration,
        7007,
        "Invalid configuration",
    ),
    (UspErrorCode::InvalidPathSyntax, 7008, "Invalid path syntax"),
    (
        UspErrorCode::ParameterActionFailed,
        7009,
        "Parameter action failed",
    ),
    (
        UspErrorCode::UnsupportedParameter,
        7010,
        "Unsupported parameter",
    ),
    (UspErrorCode::InvalidType, 7011, "Invalid type"),
    (UspErrorCode::InvalidValue, 7012, "Invalid value"),
    (
        UspErrorCode::ParamReadOnly,
        7013,
        "Attempt to update non-writeable parameter",
    ),
    (UspErrorCode::ValueConflict, 7014, "Value conflict"),
    (UspErrorCode::OperationError, 7015, "Operation error"),
    (
        UspErrorCode::ObjectDoesNotExist,
        7016,
        "Object does not exist",
    ),
    (
        UspErrorCode::ObjectCouldNotBeCreated,
        7017,
        "Object could not be created",
    ),
    (UspErrorCode::ObjectNotATable, 7018, "Object is not a table"),
    (
        UspErrorCode::ObjectNotCreatable,
        7019,
        "Attempt to create non-creatable object",
    ),
    (
        UspErrorCode::ObjectCouldNotBeUpdated,
        7020,
        "Object could not be updated",
    ),
    (
        UspErrorCode::RequiredParamFailed,
        7021,
        "Required parameter failed",
    ),
    (UspErrorCode::CommandFailure, 7022, "Command failure"),
    (UspErrorCode::CommandCanceled, 7023, "Command canceled"),
    (UspErrorCode::DeleteFailure, 7024, "Delete failure"),
    (
        UspErrorCode::DuplicateUniqueKey,
        7025,
        "Object exists with duplicate key",
    ),
    (UspErrorCode::InvalidPath, 7026, "Invalid path"),
    (
        UspErrorCode::InvalidCommandArguments,
        7027,
        "Invalid command arguments",
    ),
    (UspErrorCode::RegisterFailure, 7028, "Register failure"),
    (UspErrorCode::AlreadyInUse, 7029, "Already in use"),
    (UspErrorCode::DeregisterFailure, 7030, "Deregister failure"),
    (
        UspErrorCode::PathAlreadyRegistered,
        7031,
        "Path already registered",
    ),
    (
        UspErrorCode::RecordNotParsed,
        7100,
        "Record could not be parsed",
    ),
    (
        UspErrorCode::SecureSessionRequired,
        7101,
        "Secure session required",
    ),
    (
        UspErrorCode::SecureSessionNotSupported,
        7102,
        "Secure session not supported",
    ),
    (
        UspErrorCode::SegmentationNotSupported,
        7103,
        "Segmentation and reassembly not supported",
    ),
    (
        UspErrorCode::InvalidRecordValue,
        7104,
        "Invalid value in Record field",
    ),
    (
        UspErrorCode::SessionContextTerminated,
        7105,
        "Session context terminated",
    ),
    (
        UspErrorCode::SessionContextNotAllowed,
        7106,
        "Session context not allowed",
    ),
];

/// A number that is not a USP error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a USP error code")]
pub struct UnknownErrorCode(pub u32);

impl UspErrorCode {
    /// The numeric code carried on the wire (`err_code`, fixed32).
    pub fn code(self) -> u32 {
        match self {
            UspErrorCode::DataModel(code) | UspErrorCode::Vendor(code) => code,
            fixed => FIXED
                .iter()
                .find(|(variant, _, _)| *variant == fixed)
                .map_or(7003, |(_, code, _)| *code),
        }
    }

    /// The spec's name for the code, used when no more specific message is at hand.
    pub fn default_message(self) -> &'static str {
        match self {
            UspErrorCode::DataModel(_) => "Data-model-defined error",
            UspErrorCode::Vendor(_) => "Vendor-defined error",
            fixed => FIXED
                .iter()
                .find(|(variant, _, _)| *variant == fixed)
                .map_or("Internal error", |(_, _, text)| text),
        }
    }
}

impl TryFrom<u32> for UspErrorCode {
    type Error = UnknownErrorCode;

    fn try_from(code: u32) -> Result<Self, Self::Error> {
        if let Some((variant, _, _)) = FIXED.iter().find(|(_, number, _)| *number == code) {
            return Ok(*variant);
        }
        match code {
            7200..=7299 => Ok(UspErrorCode::DataModel(code)),
            7800..=7999 => Ok(UspErrorCode::Vendor(code)),
            other => Err(UnknownErrorCode(other)),
        }
    }
}

impl fmt::Display for UspErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.default_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_code_round_trips_through_its_number() {
        for (variant, number, _) in FIXED {
            assert_eq!(variant.code(), *number);
            assert_eq!(UspErrorCode::try_from(*number), Ok(*variant));
        }
    }

    #[test]
    fn data_model_and_vendor_ranges_are_accepted() {
        assert_eq!(
            UspErrorCode::try_from(7223),
            Ok(UspErrorCode::DataModel(7223))
        );
        assert_eq!(UspErrorCode::try_from(7801), Ok(UspErrorCode::Vendor(7801)));
        assert_eq!(UspErrorCode::Vendor(7801).code(), 7801);
    }

    #[test]
    fn numbers_outside_the_usp_ranges_are_rejected() {
        assert_eq!(UspErrorCode::try_from(6999), Err(UnknownErrorCode(6999)));
        assert_eq!(UspErrorCode::try_from(7050), Err(UnknownErrorCode(7050)));
    }
}
