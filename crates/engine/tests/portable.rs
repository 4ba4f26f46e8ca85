//! A version exported as a portable model file: only project administrators export, only
//! single-label classification versions with a model are exported, and (with the real
//! all-MiniLM-L6-v2) the exported model, loaded on its own from the file, predicts exactly what
//! the predict job stored.

use crate::common;

use common::{
    error_kind, export_jsonl, import_texts, models_dir, spec, topic_of, topics_spec, TestEngine,
    TEXTS, TOPICS,
};
use concord_domain::{ErrorKind, ProjectId, ProjectSettings, Role, TaskKind};
use concord_engine::{PortableModel, DEFAULT_MODEL, PORTABLE_MODEL_FORMAT};

/// What an import of another tool's suggestions stores for an item (the label does not
/// matter here).
fn imported_suggestion(version: u64) -> concord_store::SuggestionRecord {
    concord_store::SuggestionRecord {
        labels: Vec::new(),
        confidence: 0.5,
        probabilities: Vec::new(),
        version,
        created_ms: 0,
        spans: Vec::new(),
        relations: Vec::new(),
    }
}

#[test]
fn only_admins_export_and_only_single_label_classification_versions() {
    let env = TestEngine::new();
    let labels = env.create_classification_project("labels", &["a", "b"]);
    env.import_texts(labels, ["the first text", "the second text"]);
    let spans = env.create_project(spec(
        "spans",
        TaskKind::Spans,
        &["person"],
        ProjectSettings::default(),
    ));
    env.import_texts(spans, ["Ann met Bob"]);
    let (env, imported) =
        env.with_external_suggestion(labels, "other-tool", &["a", "b"], imported_suggestion);
    let (env, span_version) =
        env.with_external_suggestion(spans, "tagger", &["person"], imported_suggestion);

    let ann = env.member(labels, "ann", Role::Annotator);
    assert_eq!(
        error_kind(env.engine.export_model(&ann, labels, imported)),
        ErrorKind::Forbidden
    );
    let refusal = |project: ProjectId, version: u64| -> String {
        match env.engine.export_model(&env.admin, project, version) {
            Ok(model) => panic!("exported {model:?}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
                e.to_string()
            }
        }
    };
    let message = refusal(labels, imported);
    assert!(
        message.starts_with(&format!(
            "version {imported} of project \"labels\" is an imported version"
        )),
        "{message}"
    );
    assert!(
        message.ends_with("only single-label classification versions can be exported yet"),
        "{message}"
    );
    let message = refusal(spans, span_version);
    assert!(
        message.contains(&format!(
            "version {span_version} of project \"spans\" is a span version"
        )),
        "{message}"
    );
    assert_eq!(
        error_kind(env.engine.export_model(&env.admin, labels, 99)),
        ErrorKind::NotFound
    );
}

#[test]
fn an_exported_version_predicts_on_its_own_what_the_predict_job_stored() {
    let env = TestEngine::with_models();
    let project = env.create_project(topics_spec("topics"));
    import_texts(&env, project);
    env.predict(project);
    check_exported(&env, project, 1, "zero_shot");

    // A trained head, activated by training, which refreshes every item's suggestion.
    let ann = env.member(project, "ann", Role::Annotator);
    for id in 1..=TEXTS.len() {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    env.train(project);
    check_exported(&env, project, 2, "head");
}

/// Exports `version` (the active one), writes it to a file, reads and loads it on its own and
/// checks its predictions against the suggestions the engine stored for every item.
fn check_exported(env: &TestEngine, project: ProjectId, version: u64, trainer: &str) {
    let model = env
        .engine
        .export_model(&env.admin, project, version)
        .expect("export the version");
    assert_eq!(model.format, PORTABLE_MODEL_FORMAT);
    assert_eq!(
        (
            model.project.as_str(),
            model.version,
            model.trainer.as_str()
        ),
        ("topics", version, trainer)
    );
    assert_eq!(model.classifier["kind"], trainer, "{}", model.classifier);
    let topics: Vec<&str> = TOPICS.iter().map(|(name, _)| *name).collect();
    assert_eq!(model.labels, topics);
    assert_eq!(model.encoder.model, DEFAULT_MODEL);
    assert_eq!(model.encoder.weights, None);
    // The encoder is referenced: each file of the model folder by its SHA-256.
    let names: Vec<&str> = model
        .encoder
        .files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        names[..3],
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    let models = models_dir();
    for file in &model.encoder.files {
        let path = models.join(DEFAULT_MODEL).join(&file.name);
        assert_eq!(
            file.sha256,
            concord_ml::file_sha256(&path).expect("hash the file"),
            "{}",
            file.name
        );
    }

    // Through the file and back, then loaded on its own (files checked, encoder loaded anew).
    let path = env.dir.path().join(format!("model-{version}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&model).unwrap()).unwrap();
    let read = PortableModel::read(&path).expect("read the model file");
    assert_eq!(
        (&read.labels, &read.encoder, &read.classifier["kind"]),
        (&model.labels, &model.encoder, &model.classifier["kind"])
    );
    let predictor = read
        .load(Some(models.as_path()), env.dir.path())
        .expect("load the exported model");

    // The job embedded the 24 items in import order in forward passes of the same size, and
    // the exported classifier is the stored one: the same texts in the same order give the
    // very same label and probability.
    let texts: Vec<&str> = TEXTS.iter().map(|(text, _)| *text).collect();
    let predictions = predictor.predict(&texts).expect("predict");
    let stored = export_jsonl(&env.engine, &env.admin, project);
    assert_eq!(predictions.len(), stored.len());
    for (p, line) in predictions.iter().zip(&stored) {
        let suggestion = &line["suggestion"];
        assert_eq!(suggestion["labels"], serde_json::json!([p.label]), "{line}");
        // The export writes the f32 confidence widened to f64: narrowed, it is that f32.
        assert_eq!(
            suggestion["confidence"].as_f64().map(|c| c as f32),
            Some(p.score),
            "{line}"
        );
        assert_eq!(p.probabilities.len(), TOPICS.len());
        assert!(
            (p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "{p:?}"
        );
    }
}
