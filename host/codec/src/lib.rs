//! USP Records and Messages: typed wrappers over `usp-proto`, the [`UspErrorCode`] enum, and the
//! syntax of paths and search expressions. No I/O.
//!
//! Layout:
//! - [`error_code`]: the USP error codes 7000–7999 and their default messages.

#![deny(missing_docs)]

pub mod error_code;

pub use error_code::{UnknownErrorCode, UspErrorCode};
pub use usp_proto;
