//! USP Records and Messages: typed wrappers over `usp-proto`, the [`UspErrorCode`] enum, and the
//! syntax of paths and search expressions. No I/O.
//!
//! Layout:
//! - [`error_code`]: the USP error codes 7000–7999 and their default messages.
//! - [`msg`]: decoding Msgs and building requests, responses and Errors.
//! - [`path`]: the syntax of USP paths and search expressions (a typed AST and its parser).
//! - [`record`]: Records, Connect/Disconnect records, and the receive-side checks (R-MTP.5).
//!
//! Start with [`record::classify`]: it is what a transport's bytes go through first.

#![deny(missing_docs)]

pub mod error_code;
pub mod msg;
pub mod path;
pub mod record;

pub use error_code::{UnknownErrorCode, UspErrorCode};
pub use record::{Inbound, MqttProtocol, Record, RecordBody, RecordError};
pub use usp_proto;
