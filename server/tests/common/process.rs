//! Running the `concord` binary as a child process: a command to completion with input, and
//! `concord serve` until it says where it listens. Shared by this crate's integration tests
//! (`common/mod.rs`) and the harness benches of `concord-tests` (`tests/benches/spawned`,
//! through `#[path]`), which run a binary they are given rather than this crate's own.

// Each test binary and bench that includes this file uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs `bin` with `args`, writes `stdin` to it and waits for it: whether it succeeded, and its
/// standard output and standard error.
pub fn run<S: AsRef<OsStr>>(
    bin: &Path,
    args: &[S],
    stdin: &str,
) -> std::io::Result<(bool, String, String)> {
    let mut child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Starts `concord serve` on a free port of 127.0.0.1 over `data` with the models folder
/// `models`, and waits up to `wait` until its log says where it listens: the process and its
/// base URL. The log keeps being drained afterwards, so the server never blocks on a full pipe.
pub fn serve(
    bin: &Path,
    data: &Path,
    models: &Path,
    wait: Duration,
) -> std::io::Result<(Child, String)> {
    let mut child = Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--models")
        .arg(models)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| std::io::Error::other("no stderr pipe"))?;
    let (found, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = found.send(url);
                    sent = true;
                }
            }
        }
    });
    match listening.recv_timeout(wait) {
        Ok(base) => Ok((child, base)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other(format!(
                "the server did not say where it listens within {} s",
                wait.as_secs()
            )))
        }
    }
}
