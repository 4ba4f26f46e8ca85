//! What the integration tests of the `concord` binary share.

pub mod process;

use std::ffi::OsStr;
use std::path::Path;

/// Runs the `concord` binary with `args`, writes `stdin` to it and waits for it: whether it
/// succeeded, and its standard output and standard error.
pub fn concord<S: AsRef<OsStr>>(args: &[S], stdin: &str) -> (bool, String, String) {
    process::run(Path::new(env!("CARGO_BIN_EXE_concord")), args, stdin).expect("run concord")
}
