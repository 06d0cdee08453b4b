//! The syntax of USP paths (TR-369 §"Path Names"): a typed AST and its parser. Resolution
//! (what a path means in a data model) belongs to `usp-dm`; this module only says what a path
//! *is*.
//!
//! - [`ast`]: [`Path`], [`Segment`], [`Leaf`], search [`Expression`]s and reference following.
//! - [`parse`]: the hand-written parser for instantiated-DM and supported-DM paths, with errors
//!   that name the path and the byte position (reported as 7008).
//!
//! ```
//! use usp_codec::path::{Path, Segment};
//! let path = Path::parse(r#"Device.IP.Interface.[Name=="eth0"].Status"#).unwrap();
//! assert!(matches!(path.segments[3], Segment::Search(_)));
//! assert_eq!(path.to_string(), r#"Device.IP.Interface.[Name=="eth0"].Status"#);
//! ```

pub mod ast;
pub mod parse;

pub use ast::{
    Comparison, Expression, Leaf, Operand, Operator, Path, RefFollow, RefItem, RelPath, RelStep,
    Segment,
};
pub use parse::PathError;
