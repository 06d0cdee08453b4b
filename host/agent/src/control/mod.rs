//! The local control socket `uspctl` talks to.
//!
//! Layout:
//! - [`frame`]: length-prefixed frames and the hello carrying the agent's Endpoint ID.

pub mod frame;
