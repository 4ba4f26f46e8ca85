//! The `concord` binary and server crate: commands, the demo, operations, pre-annotation
//! from an exported model in shards.
//! One test binary per crate: each binary links the crate's whole dependency tree again
//! (disk and link time in CI); the files are its modules.

mod cli;
mod common;
mod demo;
mod ops;
mod portable;
