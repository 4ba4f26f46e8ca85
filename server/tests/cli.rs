//! The `concord` binary's commands, run as a user would.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// `concord` with `args` over the data dir `data`.
fn concord(data: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.extend([OsStr::new("--data-dir"), data.as_os_str()]);
    common::concord(&all, stdin)
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
    assert!(concord::demo::seed(&engine).unwrap().is_some());
    drop(engine);

    let file = dir.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"id\":\"x1\",\"text\":\"A late addition.\",\"gold\":\"neutral\"}\n",
    )
    .unwrap();
    let (ok, _, err) = concord(
        &data,
        &["import", concord::demo::DEMO_NAME, file.to_str().unwrap()],
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
        302,
        "header + 300 demo items + 1 imported"
    );
    assert!(csv.contains("x1,A late addition.,neutral,"));
    let (ok, stdout, _) = concord(&data, &["export", "1"], "");
    assert!(ok);
    assert_eq!(stdout.lines().count(), 301);
}

/// `concord agreement --ratings FILE --categories …`: a scale value nobody chose changes Gwet's
/// AC1 and Brennan–Prediger as irrCAC's `categories=` does. The published case R irr `anxiety`,
/// raters 2 and 3 (../shared/agreement), is on a 1–6 scale with 5 unused; irrCAC 0.4.4 gives
/// AC1 0.011201235998455 over the values present and 0.055768663322514 over 1–6,
/// Brennan–Prediger 0 and 0.04.
#[test]
fn agreement_of_a_ratings_file_on_a_declared_scale() {
    let cases =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/agreement/published_cases.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cases).unwrap_or_else(|e| {
            panic!("{}: {e} (shared/ beside the repository)", cases.display())
        }))
        .unwrap();
    let matrix = doc["cases"]["R_irr_anxiety_raters2_3"]["matrix"]
        .as_array()
        .unwrap();
    let mut csv = String::from("rater2,rater3\n");
    for row in matrix {
        let row = row.as_array().unwrap();
        csv.push_str(&format!("{},{}\n", row[0], row[1]));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("anxiety.csv");
    std::fs::write(&file, csv).unwrap();
    let data = dir.path().join("unused");
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["agreement", "--ratings", file.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let (ok, out, err) = concord(&data, &args, "");
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let coefficient = |v: &serde_json::Value, name: &str| {
        v["report"][name]["coefficient"]["value"].as_f64().unwrap()
    };
    let present = run(&[]);
    let declared = run(&["--categories", "1,2,3,4,5,6"]);
    assert_eq!(
        present["categories"],
        serde_json::json!(["1", "2", "3", "4", "6"])
    );
    assert_eq!(
        declared["categories"],
        serde_json::json!(["1", "2", "3", "4", "5", "6"])
    );
    for (v, ac1, bp) in [
        (&present, 0.011_201_235_998_455_04, 0.0),
        (&declared, 0.055_768_663_322_514_03, 0.04),
    ] {
        assert!((coefficient(v, "gwet_ac1") - ac1).abs() < 1e-12, "{v}");
        assert!(
            (coefficient(v, "brennan_prediger") - bp).abs() < 1e-12,
            "{v}"
        );
    }
    let (ok, _, err) = concord(
        &data,
        &[
            "agreement",
            "--ratings",
            file.to_str().unwrap(),
            "--categories",
            "1,2,3,4,5",
        ],
        "",
    );
    assert!(!ok);
    assert!(err.contains("\"6\" is not one of the categories"), "{err}");
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
        vec!["agreement", "--help"],
        vec!["predict", "--help"],
        vec!["models", "export", "--help"],
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
