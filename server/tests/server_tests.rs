//! The `concord` binary and server crate: commands, the demo, operations.
//! One test binary per crate: each binary links the crate's whole dependency tree again
//! (disk and link time in CI); the files are its modules.

mod cli;
mod common;
mod demo;
mod ops;
