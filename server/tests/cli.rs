//! The `concord` binary's commands, run as a user would.

use std::io::Write;
use std::process::{Command, Stdio};

fn concord(data: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
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

#[test]
fn users_tokens_import_and_export_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, _, err) = concord(
        &data,
        &["user", "add", "--admin", "root"],
        "root-password\n",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = concord(&data, &["user", "add", "root"], "another-pass\n");
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = concord(&data, &["user", "add", "shorty"], "pw\n");
    assert!(!ok && err.contains("at least 8 characters"), "{err}");
    let (ok, token, err) = concord(&data, &["token", "add", "root"], "");
    assert!(ok, "{err}");
    assert!(
        token.trim().starts_with("cct_") && token.trim().len() == 68,
        "{token}"
    );

    // A project to import into: the demo seeding path creates one.
    let engine = concord_engine::Engine::open(&data).unwrap();
    assert!(concord::demo::seed(&engine).unwrap());
    drop(engine);

    let file = dir.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"x1\",\"text\":\"A late addition.\",\"gold\":\"neutral\"}\n",
    )
    .unwrap();
    let (ok, _, err) = concord(
        &data,
        &["import", "Demo: review sentiment", file.to_str().unwrap()],
        "",
    );
    assert!(ok, "{err}");
    assert!(err.contains("imported 1 items"), "{err}");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\":\"fine\"}\n{\"text\":\"x\",\"gold\":\"great\"}\n",
    )
    .unwrap();
    let (ok, _, err) = concord(&data, &["import", "1", bad.to_str().unwrap()], "");
    assert!(!ok);
    assert!(err.contains("line 2: gold label"), "{err}");

    let out = dir.path().join("out.csv");
    let (ok, _, err) = concord(
        &data,
        &[
            "export",
            "1",
            "--format",
            "csv",
            "-o",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(ok, "{err}");
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        csv.lines().count(),
        42,
        "header + 40 demo items + 1 imported"
    );
    assert!(csv.contains("x1,A late addition.,neutral,"));
    let (ok, stdout, _) = concord(&data, &["export", "1"], "");
    assert!(ok);
    assert_eq!(stdout.lines().count(), 41);
}

#[test]
fn a_second_process_is_refused_while_the_database_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let engine = concord_engine::Engine::open(dir.path()).unwrap();
    let (ok, _, err) = concord(dir.path(), &["export", "1"], "");
    assert!(!ok);
    assert!(err.contains("in use by another Concord process"), "{err}");
    drop(engine);
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["user", "add", "--help"],
        vec!["token", "add", "--help"],
        vec!["import", "--help"],
        vec!["export", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}
