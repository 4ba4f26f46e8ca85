//! Pre-annotation beyond one machine, with the real binary: a version exported as a model file,
//! shards of an input predicted from it without a database, and the parts merged by the
//! importer's external-model option — against one run over the whole input. Needs the real
//! all-MiniLM-L6-v2 (`scripts/setup.sh` puts it in `models/`; `CONCORD_TEST_MODELS` names
//! another models folder).

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use concord_domain::{AutoTrainSettings, JobState, Label, ProjectSettings, ProjectSpec, TaskKind};
use concord_engine::{Engine, ItemInput, Principal};
use serde_json::Value;

/// The models folder of `scripts/setup.sh`, or `CONCORD_TEST_MODELS`.
fn models_dir() -> PathBuf {
    std::env::var_os("CONCORD_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

const TOPICS: [(&str, &str); 3] = [
    ("sports", "games, teams, players, goals and matches"),
    ("cooking", "recipes, food, ingredients and kitchens"),
    ("finance", "money, markets, banks, prices and investing"),
];

/// Seven items, so that two shards hold four and three.
const ITEMS: [(&str, &str); 7] = [
    ("s1", "The striker scored twice in the cup final."),
    ("c1", "Simmer the onions in butter until golden."),
    ("f1", "The central bank raised interest rates again."),
    ("s2", "The goalkeeper saved a penalty in extra time."),
    ("c2", "Knead the dough and let it rise for an hour."),
    ("f2", "Stocks fell sharply after the earnings report."),
    ("s3", "She won the marathon in record time."),
];

fn topics_spec(name: &str) -> ProjectSpec {
    let defaults = ProjectSettings::default();
    // Nothing but the jobs the test queues.
    let settings = ProjectSettings {
        auto_train: AutoTrainSettings {
            enabled: false,
            ..defaults.auto_train
        },
        ..defaults
    };
    ProjectSpec {
        name: name.into(),
        task: TaskKind::Classification,
        labels: TOPICS
            .iter()
            .map(|(topic, description)| Label {
                description: Some(description.to_string()),
                ..Label::named(*topic)
            })
            .collect(),
        guidelines: String::new(),
        settings,
        relation_labels: Vec::new(),
    }
}

/// A data directory with the project `topics` holding [`ITEMS`] and its zero-shot version 1
/// (a predict job's), and the empty projects `merged` and `whole` to import parts into; the
/// database is closed when this returns.
fn data_with_a_version(data: &Path, models: &Path) {
    let engine = Engine::open_with_models(data, Some(models.to_path_buf())).expect("open");
    let status = engine.model_status();
    assert!(status.available, "{status:?}: run scripts/setup.sh");
    let admin = engine
        .bootstrap_admin("root", "root-password")
        .expect("first admin");
    let topics = engine
        .create_project(&admin, topics_spec("topics"))
        .expect("create topics");
    for name in ["merged", "whole"] {
        engine
            .create_project(&admin, topics_spec(name))
            .expect("create a project to import into");
    }
    let items = ITEMS
        .iter()
        .map(|(id, text)| ItemInput {
            text: text.to_string(),
            id: Some(id.to_string()),
            meta: Default::default(),
            gold: None,
        })
        .collect();
    engine
        .import_items(&admin, topics, items, false)
        .expect("import the items");
    let job = engine.enqueue_predict(&admin, topics).expect("predict");
    wait_done(&engine, &admin, job);
    // The database closes once the last handle goes; a background thread may hold one for a
    // moment, and the commands below run after it has let go.
    let _ = engine.shutdown();
}

fn wait_done(engine: &Engine, who: &Principal, job: u64) {
    let start = Instant::now();
    loop {
        let info = engine.job(who, job).expect("job");
        if info.state.is_finished() {
            assert_eq!(info.state, JobState::Done, "{info:?}");
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{info:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn concord(args: &[&OsStr]) -> (bool, String, String) {
    common::concord(args, "")
}

/// The items as JSONL, with a blank line (which no shard counts) after the second.
fn input_jsonl() -> String {
    let mut out = String::new();
    for (i, (id, text)) in ITEMS.iter().enumerate() {
        out.push_str(&format!(
            "{}\n",
            serde_json::json!({ "id": id, "text": text })
        ));
        if i == 1 {
            out.push('\n');
        }
    }
    out
}

/// A data directory with the version and `model.json` exported from it by `concord models
/// export`, in `dir`.
fn exported(dir: &Path, models: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    data_with_a_version(&data, models);
    let model = dir.join("model.json");
    let (ok, _, err) = concord(&[
        OsStr::new("models"),
        OsStr::new("export"),
        OsStr::new("topics"),
        OsStr::new("1"),
        OsStr::new("-o"),
        model.as_os_str(),
        OsStr::new("--models"),
        models.as_os_str(),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("wrote version 1 of project \"topics\""),
        "{err}"
    );
    (data, model)
}

/// `concord predict --model MODEL --input INPUT --shard SHARD --output OUTPUT`.
fn predict(
    model: &Path,
    models: &Path,
    input: &Path,
    shard: &str,
    output: &Path,
) -> (bool, String, String) {
    concord(&[
        OsStr::new("predict"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--models"),
        models.as_os_str(),
        OsStr::new("--input"),
        input.as_os_str(),
        OsStr::new("--shard"),
        OsStr::new(shard),
        OsStr::new("--output"),
        output.as_os_str(),
    ])
}

/// The elements of `first` and `second` taken in turn, as shard 0 and shard 1 of two hold the
/// input's items.
fn in_turn<T: Clone>(first: &[T], second: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(first.len() + second.len());
    for (i, a) in first.iter().enumerate() {
        out.push(a.clone());
        out.extend(second.get(i).cloned());
    }
    out
}

fn lines(jsonl: &str) -> Vec<Value> {
    jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Whether two probabilities agree. A shard embeds its items in batches of other items than
/// one run does, padded to another length, and padding moves an embedding's last bits (within
/// 1e-5, `concord-ml`'s tiny.rs); the zero-shot temperature (0.05) scales those twenty-fold.
/// So the bytes may differ in a score's last digits; labels, ids and texts may not.
fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-5,
        _ => false,
    }
}

#[test]
fn two_shards_merged_are_what_one_run_writes_and_import_alike() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir();
    let (data, model) = exported(dir.path(), &models);
    let input = dir.path().join("items.jsonl");
    std::fs::write(&input, input_jsonl()).unwrap();

    let run = |shard: &str, name: &str| -> (PathBuf, Vec<Value>) {
        let output = dir.path().join(name);
        let (ok, _, err) = predict(&model, &models, &input, shard, &output);
        assert!(ok, "{err}");
        let text = std::fs::read_to_string(&output).unwrap();
        (output, lines(&text))
    };
    let (whole_file, whole) = run("0/1", "whole.jsonl");
    let (part0_file, part0) = run("0/2", "part-0.jsonl");
    let (part1_file, part1) = run("1/2", "part-1.jsonl");
    assert_eq!((whole.len(), part0.len(), part1.len()), (7, 4, 3));

    // Shard I holds items I, I + N, …: laid back in turn, the parts are the input's order.
    let merged = in_turn(&part0, &part1);
    assert_eq!(merged.len(), ITEMS.len());
    for ((id, text), (one, shard)) in ITEMS.iter().zip(whole.iter().zip(&merged)) {
        // In input order, with the input's ids and texts.
        assert_eq!(one["id"], *id);
        assert_eq!(one["text"], *text);
        for field in ["id", "text", "gold"] {
            assert_eq!(one[field], shard[field], "{one} / {shard}");
        }
        assert!(close(&one["score"], &shard["score"]), "{one} / {shard}");
    }
    for line in &whole {
        assert!(
            TOPICS.iter().any(|(topic, _)| line["gold"] == *topic),
            "{line}"
        );
    }

    // One run embeds the items as the predict job did (the same texts, in the same order and
    // batches): its labels and scores are the job's suggestions, exactly.
    let export = |project: &str| -> Vec<Value> {
        let (ok, out, err) = concord(&[
            OsStr::new("export"),
            OsStr::new(project),
            OsStr::new("--data-dir"),
            data.as_os_str(),
        ]);
        assert!(ok, "{err}");
        lines(&out)
    };
    for (one, item) in whole.iter().zip(export("topics")) {
        let suggestion = &item["suggestion"];
        assert_eq!(
            suggestion["labels"],
            Value::Array(vec![one["gold"].clone()]),
            "{item}"
        );
        assert_eq!(
            suggestion["confidence"].as_f64().map(|c| c as f32),
            one["score"].as_f64().map(|s| s as f32),
            "{item}"
        );
    }

    // Merged by the importer's external-model option: the same items with the same
    // suggestions as the one run imported alike.
    let merged_file = dir.path().join("merged.jsonl");
    let parts = [part0_file, part1_file].map(|f| std::fs::read_to_string(f).unwrap());
    let first: Vec<&str> = parts[0].lines().collect();
    let second: Vec<&str> = parts[1].lines().collect();
    let merged_lines: String = in_turn(&first, &second)
        .into_iter()
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&merged_file, merged_lines).unwrap();
    for (project, file) in [("merged", &merged_file), ("whole", &whole_file)] {
        let (ok, _, err) = concord(&[
            OsStr::new("import"),
            OsStr::new(project),
            file.as_os_str(),
            OsStr::new("--labels-as"),
            OsStr::new("model"),
            OsStr::new("--labels-name"),
            OsStr::new("minilm-zero-shot"),
            OsStr::new("--data-dir"),
            data.as_os_str(),
        ]);
        assert!(ok, "{err}");
        assert!(
            err.contains("stored 7 suggestions as model version 1"),
            "{err}"
        );
    }
    let (merged, whole) = (export("merged"), export("whole"));
    assert_eq!(merged.len(), ITEMS.len());
    for (a, b) in merged.iter().zip(&whole) {
        assert_eq!((&a["id"], &a["text"]), (&b["id"], &b["text"]));
        // Suggestions, not gold labels.
        assert_eq!(a["gold"], Value::Null, "{a}");
        let (x, y) = (&a["suggestion"], &b["suggestion"]);
        assert_eq!(x["labels"], y["labels"], "{a} / {b}");
        assert_eq!(x["model_version"], y["model_version"], "{a} / {b}");
        assert!(close(&x["confidence"], &y["confidence"]), "{a} / {b}");
    }
}

#[test]
fn wrong_encoder_files_shards_and_lines_are_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let models = models_dir();
    let (_data, model) = exported(dir.path(), &models);
    let input = dir.path().join("items.jsonl");
    std::fs::write(&input, input_jsonl()).unwrap();
    let output = dir.path().join("part.jsonl");
    let refused = |model: &Path, input: &Path, shard: &str| -> String {
        let (ok, _, err) = predict(model, &models, input, shard, &output);
        assert!(!ok, "{err}");
        assert!(!output.exists(), "a refused run wrote {}", output.display());
        err
    };

    // A model file whose tokenizer.json is not the one installed: refused before any item,
    // naming the file.
    let mut tampered: Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let files = tampered["encoder"]["files"].as_array_mut().unwrap();
    let tokenizer = files
        .iter_mut()
        .find(|f| f["name"] == "tokenizer.json")
        .expect("the tokenizer is named");
    tokenizer["sha256"] = Value::from("0".repeat(64));
    let tampered_file = dir.path().join("tampered.json");
    std::fs::write(&tampered_file, tampered.to_string()).unwrap();
    let err = refused(tampered_file.as_path(), input.as_path(), "0/1");
    assert!(
        err.contains("tokenizer.json has SHA-256") && err.contains(&"0".repeat(64)),
        "{err}"
    );

    // Shards count from 0: of two, the second is 1/2.
    let err = refused(model.as_path(), input.as_path(), "2/2");
    assert!(err.contains("shard 2/2 does not exist"), "{err}");

    // A line that is not JSON fails every shard, its own or not, with its number; so does a
    // line without an id.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"text\": \"fine\"}\n{\"id\": \"b\", \"text\": \"fine too\"}\n{\"id\": \"c\", \"text\": \n",
    )
    .unwrap();
    for shard in ["0/2", "1/2"] {
        let err = refused(model.as_path(), bad.as_path(), shard);
        assert!(err.contains("line 3: not a JSON object"), "{shard}: {err}");
    }
    std::fs::write(
        &bad,
        "{\"id\": \"a\", \"text\": \"fine\"}\n{\"text\": \"no id\"}\n",
    )
    .unwrap();
    let err = refused(model.as_path(), bad.as_path(), "0/1");
    assert!(err.contains("line 2: no field \"id\""), "{err}");
}
