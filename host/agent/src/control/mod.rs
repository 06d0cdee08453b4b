//! The local control socket `uspctl` talks to.
//!
//! Layout:
//! - [`frame`]: length-prefixed frames and the hello carrying the agent's Endpoint ID.
//! - [`server`]: the agent's listener, forwarding frames to the data-model actor.

pub mod frame;
pub mod server;
