//! Generated Rust types for the USP wire format.
//!
//! Layout:
//! - [`usp`]: the USP Message (`usp-msg.proto`, package `usp`).
//! - [`usp_record`]: the USP Record (`usp-record.proto`, package `usp_record`), including the
//!   USP 1.5 routing fields `originator_id` (14) and `destination_id` (15).
//!
//! The `.proto` files are the source of truth; the Rust code is generated at build time by
//! `build.rs`. Higher layers use `usp-codec`, which wraps these types.

#![allow(missing_docs, reason = "generated code")]
#![allow(clippy::all, reason = "generated code")]

/// The USP Message (package `usp`).
pub mod usp {
    include!(concat!(env!("OUT_DIR"), "/usp.rs"));
}

/// The USP Record (package `usp_record`).
pub mod usp_record {
    include!(concat!(env!("OUT_DIR"), "/usp_record.rs"));
}

pub use prost::Message;
