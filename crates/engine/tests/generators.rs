//! Generative models as pre-annotators, in process: SmolLM2-135M-Instruct (the real GGUF file
//! `scripts/setup.sh --test` puts in `models/gguf/`) labels the topics project by scoring each
//! label's words, with demonstrations from the nearest confirmed training-split items, and its
//! run becomes a version with trainer `llm` measured on the held-out items like any other.
//!
//! The topics texts are ids 1 to 24; the held-out split (a hash of the item id) holds items 7,
//! 8, 9, 10, 19 and 22.

use crate::common;

use common::{error_kind, export_jsonl, topic_of, topics_spec, wait_for, TestEngine, TEXTS};
use concord_domain::{ErrorKind, GenerateParams, JobState, TaskKind};
use concord_engine::ImportFormat;

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1";

/// The topics project with every item's true topic imported as gold.
fn topics_with_gold(env: &TestEngine) -> concord_domain::ProjectId {
    let project = env.create_project(topics_spec("topics"));
    let body: String = TEXTS
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            format!(
                "{}\n",
                serde_json::json!({ "id": (i + 1).to_string(), "text": text, "gold": topic_of(i + 1) })
            )
        })
        .collect();
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .expect("import the topics with gold");
    project
}

#[test]
fn a_gguf_generator_labels_every_item_as_a_measured_llm_version() {
    let env = TestEngine::with_models();
    let listed = env.engine.generators();
    let smol = listed
        .iter()
        .find(|g| g.name == SMOLLM2)
        .unwrap_or_else(|| {
            panic!("{SMOLLM2} not listed in {listed:?}: run scripts/setup.sh --test")
        });
    assert_eq!(
        (smol.kind, smol.architecture.as_deref(), smol.supported),
        ("gguf", Some("llama"), true)
    );
    let project = topics_with_gold(&env);
    let job = env
        .engine
        .enqueue_generate(
            &env.admin,
            project,
            GenerateParams {
                generator: SMOLLM2.into(),
                shots: Some(2),
            },
        )
        .expect("queue the generator");
    let info = wait_for(&env.engine, &env.admin, job);
    assert_eq!(info.state, JobState::Done, "{:?}", info.error);
    let result = info.result.expect("a result");
    assert_eq!(result["trainer"], "llm");
    assert_eq!(result["suggestions"], 24);
    assert_eq!(result["test_size"], 6, "{result}");

    let versions = env
        .engine
        .model_versions(&env.admin, project)
        .expect("versions");
    let version = versions.last().expect("the generator's version");
    assert_eq!(version.trainer, "llm");
    assert_eq!(version.name.as_deref(), Some(SMOLLM2));
    assert_eq!(version.params["generator"], SMOLLM2);
    assert_eq!(version.params["architecture"], "llama");
    assert_eq!(version.params["shots"], 2);
    assert!(
        version.params["gguf_sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64),
        "{}",
        version.params
    );
    // The 18 training items give the demonstrations and decide the calibration; the 6
    // held-out ones only measure.
    assert_eq!(version.train_size, 18);
    let metrics = version.metrics.as_ref().expect("held-out metrics");
    assert_eq!(metrics.items, 6, "{metrics:?}");
    // Every item carries the version's suggestion, a distribution over the three topics.
    let lines = export_jsonl(&env.engine, &env.admin, project);
    assert_eq!(lines.len(), 24);
    for line in &lines {
        let s = &line["suggestion"];
        assert_eq!(s["model_version"], version.version, "{line}");
        let label = s["labels"][0].as_str().expect("a label");
        assert!(["sports", "cooking", "finance"].contains(&label));
    }
}

#[test]
fn unknown_generators_and_other_task_kinds_are_refused() {
    let env = TestEngine::with_models();
    let project = topics_with_gold(&env);
    let unknown = env.engine.enqueue_generate(
        &env.admin,
        project,
        GenerateParams {
            generator: "no-such-model".into(),
            shots: None,
        },
    );
    assert_eq!(error_kind(unknown), ErrorKind::NotFound);
    let too_many = env.engine.enqueue_generate(
        &env.admin,
        project,
        GenerateParams {
            generator: SMOLLM2.into(),
            shots: Some(GenerateParams::MAX_SHOTS + 1),
        },
    );
    assert_eq!(error_kind(too_many), ErrorKind::InvalidInput);
    let mut spans = topics_spec("entities");
    spans.task = TaskKind::Spans;
    let spans = env.create_project(spans);
    let refused = env.engine.enqueue_generate(
        &env.admin,
        spans,
        GenerateParams {
            generator: SMOLLM2.into(),
            shots: None,
        },
    );
    assert_eq!(error_kind(refused), ErrorKind::InvalidInput);
}
