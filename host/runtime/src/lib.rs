//! The WebAssembly plugin runtime: runs usp:dm components as data-model providers
