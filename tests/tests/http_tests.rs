//! The REST API and browser routes against the real router on port 0, by area, and errors, security, credentials, operations and assets.
//! One test binary per crate: each binary links the crate's whole dependency tree again
//! (disk and link time in CI); the files are its modules.

mod api;
mod assets;
mod authorization;
mod credentials;
mod errors;
mod ops;
