//! The USP agent: wiring, message handlers, built-in objects, persistence, CLI
