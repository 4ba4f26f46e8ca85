//! The model loop with the real all-MiniLM-L6-v2 (from `scripts/setup.sh`): zero-shot
//! pre-annotation as a background job, corrections train a new version that is more accurate,
//! versions are listed with metrics and can be rolled back, answers record the suggestion.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use concord_domain::{
    AnnotationSource, Label, ProjectId, ProjectSettings, ProjectSpec, QueueOrder, Role, TaskKind,
};
use concord_engine::{
    Engine, ExportFormat, ImportFormat, ImportOptions, Principal, Submission, TrainRequest, Trainer,
};

fn models_dir() -> PathBuf {
    std::env::var_os("CONCORD_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

const TOPICS: &[(&str, &str)] = &[
    ("sports", "games, teams, players, goals and matches"),
    ("cooking", "recipes, food, ingredients and kitchens"),
    ("finance", "money, markets, banks, prices and investing"),
];

/// Texts with their true topic. Some are hard for zero-shot on purpose (no topic words).
const TEXTS: &[(&str, usize)] = &[
    ("The striker scored twice in the cup final.", 0),
    ("The goalkeeper saved a penalty in extra time.", 0),
    ("Our team lost the match after a late red card.", 0),
    ("She won the marathon in record time.", 0),
    ("The coach dropped two players before the derby.", 0),
    ("He hit a home run in the ninth inning.", 0),
    ("Fans booed the referee at half time.", 0),
    ("The tennis final went to five sets.", 0),
    ("Simmer the onions in butter until golden.", 1),
    ("Knead the dough and let it rise for an hour.", 1),
    ("Add a pinch of salt to the boiling pasta water.", 1),
    ("Roast the chicken at 200 degrees for forty minutes.", 1),
    ("Whisk the eggs with sugar until pale.", 1),
    ("Chop the garlic finely and fry it in olive oil.", 1),
    ("The soup needs more pepper and fresh basil.", 1),
    ("Bake the cake until a skewer comes out clean.", 1),
    ("The central bank raised interest rates again.", 2),
    ("Stocks fell sharply after the earnings report.", 2),
    ("She moved her savings into an index fund.", 2),
    ("The mortgage payment went up by two hundred dollars.", 2),
    ("Bond yields climbed as inflation surprised investors.", 2),
    ("The startup raised ten million in a funding round.", 2),
    ("He paid off his credit card debt this year.", 2),
    ("The currency lost value against the dollar.", 2),
];

/// A project whose labels are the topics, described.
fn topics_spec(name: &str) -> ProjectSpec {
    ProjectSpec {
        name: name.into(),
        task: TaskKind::Classification,
        labels: TOPICS
            .iter()
            .map(|(n, d)| Label {
                description: Some(d.to_string()),
                ..Label::named(*n)
            })
            .collect(),
        guidelines: String::new(),
        settings: ProjectSettings::default(),
    }
}

/// Imports [`TEXTS`] as items 1 to 24.
fn import_texts(engine: &Engine, admin: &Principal, project: ProjectId) {
    let body: String = TEXTS
        .iter()
        .map(|(t, _)| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    let options = ImportOptions {
        format: ImportFormat::Jsonl,
        ..ImportOptions::default()
    };
    engine
        .import(admin, project, body.as_bytes(), &options, &mut |_| {})
        .unwrap();
}

fn wait_for(engine: &Engine, who: &Principal, job: u64) -> concord_engine::JobInfo {
    let start = Instant::now();
    loop {
        let info = engine.job(who, job).unwrap();
        if matches!(info.state.as_str(), "done" | "failed" | "cancelled") {
            return info;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "job {job} did not finish: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn accuracy(engine: &Engine, who: &Principal, project: ProjectId) -> (f64, u64) {
    let mut out = Vec::new();
    engine
        .export(who, project, ExportFormat::Jsonl, &mut out)
        .unwrap();
    let mut correct = 0;
    let mut version = 0;
    for (line, (_, want)) in String::from_utf8(out).unwrap().lines().zip(TEXTS) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = &v["suggestion"];
        version = s["model_version"].as_u64().unwrap();
        if s["labels"][0] == TOPICS[*want].0 {
            correct += 1;
        }
    }
    (correct as f64 / TEXTS.len() as f64, version)
}

#[test]
fn zero_shot_then_training_then_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with_models(dir.path(), Some(models_dir())).unwrap();
    let status = engine.model_status();
    assert!(status.available, "{status:?}: run scripts/setup.sh");
    let admin = engine.bootstrap_admin("admin", "correct horse").unwrap();
    let ann = engine
        .create_user(&admin, "ann", "a long password", false)
        .unwrap();
    let project = engine
        .create_project(&admin, topics_spec("Topics"))
        .unwrap();
    engine
        .set_member(&admin, project, "ann", Some(Role::Annotator))
        .unwrap();
    import_texts(&engine, &admin, project);

    // Annotators may not start jobs.
    assert!(engine.enqueue_predict(&ann, project).is_err());
    // Zero-shot pre-annotation in the background.
    let job = engine.enqueue_predict(&admin, project).unwrap();
    let info = wait_for(&engine, &admin, job);
    assert_eq!(info.state, "done", "{info:?}");
    assert_eq!((info.done, info.total), (24, 24));
    let (zero_shot, version) = accuracy(&engine, &admin, project);
    assert_eq!(version, 1);
    // Reviewers see the suggestion beside the answers.
    let reviewed = engine.review_item(&admin, project, "1").unwrap();
    assert_eq!(reviewed.suggestion.map(|s| s.model_version), Some(1));
    assert!(zero_shot >= 0.75, "zero-shot accuracy {zero_shot}");

    // The annotator sees the suggestion; accepting and correcting are both recorded. Before
    // any training, the queue opens with representative items (diversity only), saying so.
    let item = engine.next_item(&ann, project, &[]).unwrap().unwrap();
    let reason = item
        .reason
        .clone()
        .expect("active learning picked the first item");
    assert!(reason.starts_with("representative of"), "{reason}");
    let suggested = item.suggestion.clone().expect("a suggestion");
    assert_eq!(suggested.model_version, 1);
    assert!(suggested.confidence > 0.0 && suggested.confidence <= 1.0);

    // The queue order is a project setting; changing it re-orders through a prediction pass.
    let reorder = |order: QueueOrder, diversity: bool, who: &str| {
        let settings = ProjectSettings {
            queue_order: order,
            diversity,
            ..ProjectSettings::default()
        };
        engine.update_settings(&admin, project, settings).unwrap();
        let job = engine.project_jobs(&admin, project).unwrap()[0].id;
        assert_eq!(wait_for(&engine, &admin, job).state, "done");
        let user = engine
            .create_user(&admin, who, "a long password", false)
            .unwrap();
        engine
            .set_member(&admin, project, who, Some(Role::Annotator))
            .unwrap();
        engine.next_item(&user, project, &[]).unwrap().unwrap()
    };
    let least_sure = reorder(QueueOrder::LeastConfidence, false, "bob");
    let reason = least_sure.reason.unwrap();
    assert!(reason.starts_with("least confidence"), "{reason}");
    let lowest = (1..=TEXTS.len())
        .map(|i| {
            let item = engine.review_item(&admin, project, &i.to_string()).unwrap();
            item.suggestion.unwrap().confidence
        })
        .fold(f32::INFINITY, f32::min);
    assert_eq!(least_sure.suggestion.unwrap().confidence, lowest);
    let in_order = reorder(QueueOrder::Import, true, "cy");
    assert_eq!((in_order.id.as_str(), in_order.reason), ("1", None));
    reorder(QueueOrder::Auto, true, "dee");
    for (i, (_, topic)) in TEXTS.iter().enumerate() {
        engine
            .submit(
                &ann,
                project,
                Submission {
                    item_id: (i + 1).to_string(),
                    labels: vec![TOPICS[*topic].0.to_string()],
                    time_spent_ms: 500,
                },
            )
            .unwrap();
    }
    let mut out = Vec::new();
    engine
        .export(&admin, project, ExportFormat::Jsonl, &mut out)
        .unwrap();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
    let source: AnnotationSource =
        serde_json::from_value(first["annotations"][0]["source"].clone()).unwrap();
    assert!(
        matches!(
            source,
            AnnotationSource::ModelAccepted { model_version: 1 }
                | AnnotationSource::ModelCorrected { model_version: 1 }
        ),
        "{source:?}"
    );

    // The corrections train version 2; its suggestions are better.
    let job = engine
        .enqueue_train(&admin, project, TrainRequest::default())
        .unwrap();
    let info = wait_for(&engine, &admin, job);
    assert_eq!(info.state, "done", "{info:?}");
    let (trained, version) = accuracy(&engine, &admin, project);
    assert_eq!(version, 2);
    assert!(
        trained > zero_shot || trained == 1.0,
        "trained {trained} vs zero-shot {zero_shot}"
    );
    let versions = engine.model_versions(&admin, project).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].trainer, "zero_shot");
    assert_eq!(versions[1].trainer, "head");
    assert_eq!(versions[1].parent, Some(1));
    assert!(versions[1].active && !versions[0].active);
    let metrics = versions[1].metrics.as_ref().expect("held-out metrics");
    assert!(metrics.items > 0 && metrics.accuracy > 0.5, "{metrics:?}");
    assert_eq!(versions[1].train_size + metrics.items, 24);

    // Both versions count as raters on the agreement dashboard.
    let agreement = engine.agreement(&admin, project).unwrap();
    let raters: Vec<(u64, u64)> = agreement
        .model_raters
        .iter()
        .map(|r| (r.version, r.items))
        .collect();
    assert_eq!(raters, [(1, 24), (2, 24)]);
    let majority = |v: usize| agreement.model_raters[v].agrees_with_majority.unwrap();
    assert!(
        (majority(0) - zero_shot).abs() < 1e-9,
        "v1 agrees with ann as often as it is right"
    );
    assert!((majority(1) - trained).abs() < 1e-9);
    assert!(
        agreement.model_raters[1].mean_kappa.unwrap()
            >= agreement.model_raters[0].mean_kappa.unwrap()
    );

    // Full fine-tuning makes version 3: its own encoder weights, saved under their hash, and
    // every item re-embedded with them.
    let too_long = TrainRequest {
        trainer: Trainer::FineTune,
        epochs: Some(99),
    };
    assert!(engine.enqueue_train(&admin, project, too_long).is_err());
    let job = engine
        .enqueue_train(
            &admin,
            project,
            TrainRequest {
                trainer: Trainer::FineTune,
                epochs: Some(4),
            },
        )
        .unwrap();
    let info = wait_for(&engine, &admin, job);
    assert_eq!(info.state, "done", "{info:?}");
    let (tuned, version) = accuracy(&engine, &admin, project);
    assert_eq!(version, 3);
    let versions = engine.model_versions(&admin, project).unwrap();
    let v3 = &versions[2];
    assert_eq!((v3.trainer.as_str(), v3.parent), ("fine_tune", Some(2)));
    assert!(v3.metrics.is_some());
    let file = v3.params["encoder_file"].as_str().unwrap().to_string();
    let weights = dir.path().join("encoders").join(&file);
    assert_eq!(
        format!("{}.safetensors", concord_ml::file_sha256(&weights).unwrap()),
        file,
        "the weights are named by their hash"
    );
    let losses = v3.params["epoch_losses"].as_array().unwrap();
    assert_eq!(losses.len(), 4);
    assert!(losses[3].as_f64() < losses[0].as_f64(), "{losses:?}");
    assert!(tuned >= 0.75, "fine-tuned accuracy {tuned}");
    let raters = engine.agreement(&admin, project).unwrap().model_raters;
    assert_eq!(raters.len(), 3);
    assert_eq!(raters[2].items, 24, "v3 rates from its own embeddings");

    // Roll back to the zero-shot version: its suggestions come back.
    let job = engine.activate_model(&admin, project, 1).unwrap();
    assert_eq!(wait_for(&engine, &admin, job).state, "done");
    let (again, version) = accuracy(&engine, &admin, project);
    assert_eq!((again, version), (zero_shot, 1));

    // After a restart, the fine-tuned version loads its weights from disk and predicts as
    // before.
    drop(engine);
    let engine = Engine::open_with_models(dir.path(), Some(models_dir())).unwrap();
    let job = engine.activate_model(&admin, project, 3).unwrap();
    assert_eq!(wait_for(&engine, &admin, job).state, "done");
    assert_eq!(accuracy(&engine, &admin, project), (tuned, 3));
}

#[test]
fn without_a_model_the_features_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with_models(dir.path(), Some(dir.path().join("nowhere"))).unwrap();
    let status = engine.model_status();
    assert!(!status.available);
    assert!(status.reason.unwrap().contains("config.json"));
    let admin = engine.bootstrap_admin("admin", "correct horse").unwrap();
    let spec = ProjectSpec {
        name: "p".into(),
        task: TaskKind::Classification,
        labels: vec![Label::named("a"), Label::named("b")],
        guidelines: String::new(),
        settings: ProjectSettings::default(),
    };
    let project = engine.create_project(&admin, spec).unwrap();
    let err = engine.enqueue_predict(&admin, project).unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
}

#[test]
fn a_zero_shot_model_made_before_any_item_is_recalibrated_once_items_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open_with_models(dir.path(), Some(models_dir())).unwrap();
    let admin = engine.bootstrap_admin("admin", "correct horse").unwrap();
    let project = engine
        .create_project(&admin, topics_spec("Empty first"))
        .unwrap();
    let job = engine.enqueue_predict(&admin, project).unwrap();
    assert_eq!(wait_for(&engine, &admin, job).state, "done");
    import_texts(&engine, &admin, project);
    let job = engine.enqueue_predict(&admin, project).unwrap();
    assert_eq!(wait_for(&engine, &admin, job).state, "done");
    // Version 1 saw no items; version 2 is calibrated on the 24 imported ones.
    let versions = engine.model_versions(&admin, project).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1].params["calibration_items"], 24);
    assert_eq!((versions[1].parent, versions[1].active), (Some(1), true));
    let (accuracy, version) = accuracy(&engine, &admin, project);
    assert_eq!(version, 2);
    assert!(accuracy >= 0.75, "zero-shot accuracy {accuracy}");
}

/// A project chooses its encoder among the model folders: switching makes a zero-shot version
/// of the new model (its own embeddings, its own fingerprint); activating an old version
/// brings its model back.
#[test]
fn a_project_switches_between_model_folders() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let minilm = models_dir().join(concord_engine::DEFAULT_MODEL);
    let (default, random) = (
        models.join(concord_engine::DEFAULT_MODEL),
        models.join("random-bert"),
    );
    for folder in [&default, &random] {
        std::fs::create_dir_all(folder).unwrap();
        for file in ["config.json", "tokenizer.json", "sentence_bert_config.json"] {
            std::os::unix::fs::symlink(minilm.join(file), folder.join(file)).unwrap();
        }
    }
    std::os::unix::fs::symlink(
        minilm.join("model.safetensors"),
        default.join("model.safetensors"),
    )
    .unwrap();
    // Another BERT of the same shape: MiniLM's architecture with fixed-seed random weights.
    let encoder = concord_ml::Encoder::load(&minilm, &concord_ml::Device::Cpu).unwrap();
    concord_ml::reinitialize(encoder.varmap(), 7).unwrap();
    encoder
        .save_weights(&random.join("model.safetensors"))
        .unwrap();
    std::fs::create_dir_all(models.join("not-a-model")).unwrap();

    let engine = Engine::open_with_models(&dir.path().join("data"), Some(models)).unwrap();
    assert_eq!(
        engine.installed_models(),
        [concord_engine::DEFAULT_MODEL, "random-bert"]
    );
    let admin = engine.bootstrap_admin("admin", "correct horse").unwrap();
    let project = engine
        .create_project(&admin, topics_spec("Topics"))
        .unwrap();
    import_texts(&engine, &admin, project);
    let job = engine.enqueue_predict(&admin, project).unwrap();
    assert_eq!(wait_for(&engine, &admin, job).state, "done");
    let (minilm_accuracy, _) = accuracy(&engine, &admin, project);

    let with_model = |model: Option<&str>| ProjectSettings {
        model: model.map(String::from),
        ..ProjectSettings::default()
    };
    let err = engine
        .update_settings(&admin, project, with_model(Some("not-a-model")))
        .unwrap_err();
    assert!(err.to_string().contains("no model"), "{err}");
    assert!(engine
        .update_settings(&admin, project, with_model(Some("../etc")))
        .is_err());

    engine
        .update_settings(&admin, project, with_model(Some("random-bert")))
        .unwrap();
    let job = engine.project_jobs(&admin, project).unwrap()[0].id;
    assert_eq!(wait_for(&engine, &admin, job).state, "done");
    assert_eq!(
        engine.project_model_status(project).unwrap().model,
        "random-bert"
    );
    let (_, version) = accuracy(&engine, &admin, project);
    assert_eq!(version, 2);
    let versions = engine.model_versions(&admin, project).unwrap();
    assert_eq!(versions[1].params["model"], "random-bert");
    assert_eq!(versions[1].parent, Some(1));

    // Rolling back to version 1 brings MiniLM back, with exactly its suggestions.
    let job = engine.activate_model(&admin, project, 1).unwrap();
    assert_eq!(wait_for(&engine, &admin, job).state, "done");
    assert_eq!(
        engine.project_model_status(project).unwrap().model,
        concord_engine::DEFAULT_MODEL
    );
    assert_eq!(accuracy(&engine, &admin, project), (minilm_accuracy, 1));
}
