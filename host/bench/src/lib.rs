//! A USP controller load generator for benchmarking the agent
