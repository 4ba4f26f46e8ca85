//! What the integration tests of the `concord` binary share.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs the `concord` binary with `args`, writes `stdin` to it and waits for it: whether it
/// succeeded, and its standard output and standard error.
pub fn concord<S: AsRef<OsStr>>(args: &[S], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run concord");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
