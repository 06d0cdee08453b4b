//! The local control socket `uspctl` talks to.
//!
//! Layout:
//! - [`server`]: the agent's listener, forwarding frames to the data-model actor.
//!
//! The framing (length-prefixed frames, the hello carrying the agent's Endpoint ID) is
//! [`usp_mtp::control`], shared with `uspctl` in usp-controller.

pub mod server;
