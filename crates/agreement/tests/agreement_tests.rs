//! Agreement statistics against published cases, edge cases and properties.
//! One test binary per crate: each binary links the crate's whole dependency tree again
//! (disk and link time in CI); the files are its modules.

mod edge_cases;
mod properties;
mod published_cases;
mod relation_properties;
