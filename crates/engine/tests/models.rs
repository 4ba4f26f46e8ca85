//! The model loop with the real all-MiniLM-L6-v2 (from `scripts/setup.sh`): zero-shot
//! pre-annotation as a background job, corrections train a new version that is more accurate
//! on items it never saw, versions are listed with metrics and roll back without re-embedding,
//! answers record the suggestion (none in blind mode), and a job interrupted by a restart
//! resumes after its last stored batch.

use crate::common;

use common::{
    default_encoder_key, error_kind, export_jsonl, finish, import_texts, models_dir, topic_of,
    topics_spec, without_auto_train, TestEngine, TEXTS,
};
use concord_domain::{
    AnnotationSource, ErrorKind, JobState, ProjectId, ProjectSettings, QueueOrder, Role,
};
use concord_engine::{Engine, ImportFormat, Principal, TrainRequest, Trainer};

/// An item's suggestion as the export carries it: labels, confidence, model version.
type Shown = (Vec<String>, f64, u64);

/// Every item's suggestion, by item (1 to 24).
fn suggestions(engine: &Engine, who: &Principal, project: ProjectId) -> Vec<Shown> {
    export_jsonl(engine, who, project)
        .iter()
        .map(|line| {
            let s = &line["suggestion"];
            let labels = s["labels"]
                .as_array()
                .expect("every item has a suggestion")
                .iter()
                .map(|l| l.as_str().expect("a label").to_string())
                .collect();
            (
                labels,
                s["confidence"].as_f64().expect("a confidence"),
                s["model_version"].as_u64().expect("a version"),
            )
        })
        .collect()
}

/// The share of `items` (ids, 1-based) whose suggestion is their true topic.
fn accuracy_on(shown: &[Shown], items: &[usize]) -> f64 {
    let correct = items
        .iter()
        .filter(|&&id| shown[id - 1].0 == [topic_of(id)])
        .count();
    correct as f64 / items.len() as f64
}

/// The version that made every suggestion (all the same).
fn version_of(shown: &[Shown]) -> u64 {
    let version = shown[0].2;
    assert!(shown.iter().all(|s| s.2 == version), "{shown:?}");
    version
}

/// Items the annotator never labels, so no version trains on them: two of each topic.
const HELD_OUT: [usize; 6] = [7, 8, 15, 16, 23, 24];

/// The item whose cached embedding the rollback check replaces (see below).
const MARKED: usize = 24;

#[test]
fn zero_shot_then_training_then_rollback() {
    let env = TestEngine::with_models();
    let project = env.create_project(topics_spec("Topics"));
    let ann = env.member(project, "ann", Role::Annotator);
    import_texts(&env, project);
    let all: Vec<usize> = (1..=TEXTS.len()).collect();
    let labelled: Vec<usize> = all
        .iter()
        .copied()
        .filter(|id| !HELD_OUT.contains(id))
        .collect();

    // Annotators may not start jobs.
    assert_eq!(
        error_kind(env.engine.enqueue_predict(&ann, project)),
        ErrorKind::Forbidden
    );
    // Zero-shot pre-annotation in the background.
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    let info = finish(&env.engine, &env.admin, job);
    assert_eq!((info.done, info.total), (24, 24));
    let zero_shot_shown = suggestions(&env.engine, &env.admin, project);
    assert_eq!(version_of(&zero_shot_shown), 1);
    let zero_shot = accuracy_on(&zero_shot_shown, &all);
    // Reviewers see the suggestion beside the answers.
    let reviewed = env.engine.review_item(&env.admin, project, "1").unwrap();
    assert_eq!(reviewed.suggestion.map(|s| s.model_version), Some(1));
    assert!(zero_shot >= 0.75, "zero-shot accuracy {zero_shot}");

    // The annotator sees the suggestion. Before any training, the queue opens with
    // representative items (diversity only), saying so.
    let item = env.engine.next_item(&ann, project, &[]).unwrap().unwrap();
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
        let settings = without_auto_train(ProjectSettings {
            queue_order: order,
            diversity,
            ..ProjectSettings::default()
        });
        env.engine
            .update_settings(&env.admin, project, settings)
            .unwrap();
        let job = env.engine.project_jobs(&env.admin, project).unwrap()[0].id;
        finish(&env.engine, &env.admin, job);
        let user = env.member(project, who, Role::Annotator);
        env.engine.next_item(&user, project, &[]).unwrap().unwrap()
    };
    let least_sure = reorder(QueueOrder::LeastConfidence, false, "bob");
    let reason = least_sure.reason.unwrap();
    assert!(reason.starts_with("least confidence"), "{reason}");
    let lowest = (1..=TEXTS.len())
        .map(|i| {
            let item = env
                .engine
                .review_item(&env.admin, project, &i.to_string())
                .unwrap();
            item.suggestion.unwrap().confidence
        })
        .fold(f32::INFINITY, f32::min);
    assert_eq!(least_sure.suggestion.unwrap().confidence, lowest);
    let in_order = reorder(QueueOrder::Import, true, "cy");
    assert_eq!((in_order.id.as_str(), in_order.reason), ("1", None));
    reorder(QueueOrder::Auto, true, "dee");

    // Blind mode hides the model's suggestion from annotators (reviewers still see it), and
    // an answer given there is the annotator's own.
    let blind = |on: bool| {
        without_auto_train(ProjectSettings {
            blind: on,
            ..ProjectSettings::default()
        })
    };
    env.engine
        .update_settings(&env.admin, project, blind(true))
        .unwrap();
    let hidden = env.engine.item_for_annotation(&ann, project, "1").unwrap();
    assert_eq!(hidden.suggestion, None, "blind mode showed a suggestion");
    let next = env.engine.next_item(&ann, project, &[]).unwrap().unwrap();
    assert_eq!(next.suggestion, None, "blind mode showed a suggestion");
    let for_review = env.engine.review_item(&env.admin, project, "1").unwrap();
    assert_eq!(for_review.suggestion.map(|s| s.model_version), Some(1));
    env.answer(&ann, project, "1", &[topic_of(1)]);
    env.engine
        .update_settings(&env.admin, project, blind(false))
        .unwrap();
    let shown = env.engine.item_for_annotation(&ann, project, "2").unwrap();
    let shown = shown
        .suggestion
        .expect("outside blind mode the suggestion shows");
    assert_eq!(shown.labels, zero_shot_shown[1].0);
    assert!(
        shown.validation.starts_with("zero-shot") && shown.validation.contains("not validated"),
        "{}",
        shown.validation
    );

    // The annotator labels every item but the held-out ones; each answer records whether it
    // accepted or corrected the suggestion it was shown.
    for &id in labelled.iter().filter(|&&id| id != 1) {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    let lines = export_jsonl(&env.engine, &env.admin, project);
    let (mut accepted, mut corrected) = (0, 0);
    for &id in &labelled {
        let answers = lines[id - 1]["annotations"].as_array().unwrap();
        assert_eq!(answers.len(), 1, "item {id}");
        let source: AnnotationSource =
            serde_json::from_value(answers[0]["source"].clone()).unwrap();
        let expected = if id == 1 {
            AnnotationSource::Human
        } else if zero_shot_shown[id - 1].0 == [topic_of(id)] {
            accepted += 1;
            AnnotationSource::ModelAccepted { model_version: 1 }
        } else {
            corrected += 1;
            AnnotationSource::ModelCorrected { model_version: 1 }
        };
        assert_eq!(source, expected, "item {id}");
    }
    // Zero-shot (raw cosine to the label descriptions, `concord_ml::COLD_START`) gets all but
    // one of these texts right, so all but one answer accepted it (corrections are the subject
    // of `corrections_teach_what_the_label_descriptions_got_wrong`).
    assert_eq!((accepted, corrected), (labelled.len() - 2, 1));

    // The answers train version 2. On items no version trained on it is at least as
    // accurate as zero-shot, which leaves it no room to be better here (see
    // `corrections_teach_what_the_label_descriptions_got_wrong` for a project where it has).
    let job = env
        .engine
        .enqueue_train(&env.admin, project, TrainRequest::default())
        .unwrap();
    finish(&env.engine, &env.admin, job);
    let head_shown = suggestions(&env.engine, &env.admin, project);
    assert_eq!(version_of(&head_shown), 2);
    let (zero_shot_held_out, trained_held_out) = (
        accuracy_on(&zero_shot_shown, &HELD_OUT),
        accuracy_on(&head_shown, &HELD_OUT),
    );
    assert!(
        trained_held_out >= zero_shot_held_out,
        "on held-out items: trained {trained_held_out} vs zero-shot {zero_shot_held_out}"
    );
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].trainer.as_str(), "zero_shot");
    assert_eq!(versions[1].trainer.as_str(), "head");
    assert_eq!(versions[1].parent, Some(1));
    assert!(versions[1].active && !versions[0].active);
    let metrics = versions[1].metrics.as_ref().expect("held-out metrics");
    assert!(metrics.items > 0 && metrics.accuracy > 0.5, "{metrics:?}");
    assert_eq!(
        versions[1].train_size + metrics.items,
        labelled.len() as u64
    );
    // The trained version's suggestions say they rest on its held-out figures.
    let shown = env.engine.item_for_annotation(&ann, project, "7").unwrap();
    let validation = shown.suggestion.expect("a suggestion").validation;
    let want = format!(
        "held-out accuracy {:.0}% (macro F1 {:.2}) on {} confirmed items",
        100.0 * metrics.accuracy,
        metrics.macro_f1,
        metrics.items
    );
    assert!(validation.starts_with(&want), "{validation}");

    // Both versions count as raters on the agreement dashboard, over the labelled items.
    let agreement = env.engine.agreement(&env.admin, project).unwrap();
    let raters: Vec<(u64, u64)> = agreement
        .model_raters
        .iter()
        .map(|r| (r.version, r.items))
        .collect();
    let n = labelled.len() as u64;
    assert_eq!(raters, [(1, n), (2, n)]);
    let majority = |v: usize| agreement.model_raters[v].agrees_with_majority.unwrap();
    assert!(
        (majority(0) - accuracy_on(&zero_shot_shown, &labelled)).abs() < 1e-9,
        "v1 agrees with ann as often as it is right"
    );
    assert!((majority(1) - accuracy_on(&head_shown, &labelled)).abs() < 1e-9);
    assert!(
        agreement.model_raters[1].mean_kappa.unwrap()
            >= agreement.model_raters[0].mean_kappa.unwrap()
    );

    // Full fine-tuning makes version 3: its own encoder weights, saved under their hash, and
    // every item re-embedded with them.
    let too_long = TrainRequest {
        trainer: Trainer::FineTune,
        epochs: Some(99),
        auto: None,
    };
    assert_eq!(
        error_kind(env.engine.enqueue_train(&env.admin, project, too_long)),
        ErrorKind::InvalidInput
    );
    env.train_with(
        project,
        TrainRequest {
            trainer: Trainer::FineTune,
            epochs: Some(4),
            auto: None,
        },
    );
    let tuned_shown = suggestions(&env.engine, &env.admin, project);
    assert_eq!(version_of(&tuned_shown), 3);
    let tuned = accuracy_on(&tuned_shown, &all);
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    let v3 = &versions[2];
    assert_eq!((v3.trainer.as_str(), v3.parent), ("fine_tune", Some(2)));
    assert!(v3.metrics.is_some());
    let file = v3.params["encoder_file"].as_str().unwrap().to_string();
    let weights = env.dir.path().join("encoders").join(&file);
    assert_eq!(
        format!("{}.safetensors", concord_ml::file_sha256(&weights).unwrap()),
        file,
        "the weights are named by their hash"
    );
    // Every epoch's loss is a number (a NaN is stored as null) and the last is below the
    // first.
    let losses: Vec<f64> = v3.params["epoch_losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_f64()
                .filter(|l| l.is_finite())
                .unwrap_or_else(|| panic!("epoch loss {l} is not a finite number"))
        })
        .collect();
    assert_eq!(losses.len(), 4);
    assert!(losses[3] < losses[0], "{losses:?}");
    assert!(tuned >= 0.75, "fine-tuned accuracy {tuned}");
    let raters = env
        .engine
        .agreement(&env.admin, project)
        .unwrap()
        .model_raters;
    assert_eq!(raters.len(), 3);
    assert_eq!(raters[2].items, n, "v3 rates from its own embeddings");

    // Rolling back re-uses the cached embeddings of version 1's encoder. To see that nothing
    // is embedded again, the cached row of one item is replaced (with the engine stopped) by
    // its negation: a re-embedding would restore it; the cache makes that item's suggestion
    // move.
    let key = default_encoder_key();
    let marked_seq = MARKED as u64 - 1;
    let (env, ()) = env.with_store(|store| {
        let row = store.embeddings_at(project, &key, &[marked_seq]).unwrap();
        let row = row[0].clone().expect("the item is embedded");
        let negated: Vec<f32> = row.iter().map(|v| -v).collect();
        store
            .put_predictions(project, &key, &[(marked_seq, negated)], &[], None)
            .unwrap();
    });
    // After this restart, roll back to the zero-shot version: every other item gets exactly
    // its suggestion back.
    let job = env.engine.activate_model(&env.admin, project, 1).unwrap();
    finish(&env.engine, &env.admin, job);
    let again = suggestions(&env.engine, &env.admin, project);
    assert_eq!(version_of(&again), 1);
    for id in all.iter().copied().filter(|&id| id != MARKED) {
        assert_eq!(again[id - 1], zero_shot_shown[id - 1], "item {id}");
    }
    assert_ne!(
        (&again[MARKED - 1].0, again[MARKED - 1].1),
        (
            &zero_shot_shown[MARKED - 1].0,
            zero_shot_shown[MARKED - 1].1
        ),
        "item {MARKED} was embedded again instead of read from the cache"
    );

    // The fine-tuned version loads its weights from disk after the restart and predicts as
    // before.
    let job = env.engine.activate_model(&env.admin, project, 3).unwrap();
    finish(&env.engine, &env.admin, job);
    assert_eq!(suggestions(&env.engine, &env.admin, project), tuned_shown);
}

/// Labels described as the wrong topics (each label gets the next one's description), so
/// zero-shot, which knows only the descriptions, is wrong where the annotator is right; the
/// annotator's corrections teach version 2 what the labels mean, which it applies to items it
/// never saw.
#[test]
fn corrections_teach_what_the_label_descriptions_got_wrong() {
    let env = TestEngine::with_models();
    let mut spec = topics_spec("Misdescribed");
    let descriptions: Vec<Option<String>> =
        spec.labels.iter().map(|l| l.description.clone()).collect();
    for (i, label) in spec.labels.iter_mut().enumerate() {
        label.description = descriptions[(i + 1) % descriptions.len()].clone();
    }
    let project = env.create_project(spec);
    let ann = env.member(project, "ann", Role::Annotator);
    import_texts(&env, project);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    let zero_shot_shown = suggestions(&env.engine, &env.admin, project);
    assert_eq!(version_of(&zero_shot_shown), 1);

    // The annotator labels every item but the held-out ones, correcting the suggestions.
    let labelled: Vec<usize> = (1..=TEXTS.len())
        .filter(|id| !HELD_OUT.contains(id))
        .collect();
    for &id in &labelled {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    let lines = export_jsonl(&env.engine, &env.admin, project);
    let mut corrected = 0;
    for &id in &labelled {
        let source: AnnotationSource =
            serde_json::from_value(lines[id - 1]["annotations"][0]["source"].clone()).unwrap();
        let expected = if zero_shot_shown[id - 1].0 == [topic_of(id)] {
            AnnotationSource::ModelAccepted { model_version: 1 }
        } else {
            corrected += 1;
            AnnotationSource::ModelCorrected { model_version: 1 }
        };
        assert_eq!(source, expected, "item {id}");
    }
    assert!(corrected > 0, "the descriptions misled zero-shot nowhere");

    let job = env
        .engine
        .enqueue_train(&env.admin, project, TrainRequest::default())
        .unwrap();
    finish(&env.engine, &env.admin, job);
    let trained_shown = suggestions(&env.engine, &env.admin, project);
    assert_eq!(version_of(&trained_shown), 2);
    let (zero_shot, trained) = (
        accuracy_on(&zero_shot_shown, &HELD_OUT),
        accuracy_on(&trained_shown, &HELD_OUT),
    );
    assert!(
        trained > zero_shot,
        "on held-out items: trained {trained} vs zero-shot {zero_shot}"
    );
}

/// Items in [`a_predict_job_interrupted_by_a_restart_resumes_after_its_last_stored_batch`]:
/// several of the job's batches.
const RESUME_ITEMS: usize = 320;

#[test]
fn a_predict_job_interrupted_by_a_restart_resumes_after_its_last_stored_batch() {
    let env = TestEngine::with_models();
    let project = env.create_project(topics_spec("Resume"));
    let body: String = (0..RESUME_ITEMS)
        .map(|i| {
            let (text, _) = TEXTS[i % TEXTS.len()];
            format!(
                "{}\n",
                serde_json::json!({ "text": format!("{text} ({i})") })
            )
        })
        .collect();
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .unwrap();
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    // Stop the worker as soon as a first batch is stored; it finishes the batch it is on.
    let start = std::time::Instant::now();
    loop {
        let info = env.engine.job(&env.admin, job).unwrap();
        assert!(
            matches!(info.state, JobState::Queued | JobState::Running),
            "the job ended before it could be interrupted: {info:?}"
        );
        if info.done > 0 {
            env.engine.shutdown_jobs();
            break;
        }
        assert!(start.elapsed().as_secs() < 300, "no batch stored: {info:?}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let key = default_encoder_key();
    let (env, stored) = env.with_store(|store| {
        let stored = store.embedded_seqs(project, &key).unwrap();
        // The first stored item's cached row is replaced by its negation: a job that embedded
        // it again would restore it.
        let row = store.embeddings_at(project, &key, &[0]).unwrap()[0]
            .clone()
            .expect("item 1 was embedded");
        let negated: Vec<f32> = row.iter().map(|v| -v).collect();
        store
            .put_predictions(project, &key, &[(0, negated.clone())], &[], None)
            .unwrap();
        (stored, negated)
    });
    let (stored, marker) = stored;
    let cursor = stored.len() as u64;
    assert!(
        cursor > 0 && cursor < RESUME_ITEMS as u64,
        "the job was not interrupted mid-way ({cursor} of {RESUME_ITEMS} embedded)"
    );
    assert_eq!(stored, (0..cursor).collect::<Vec<u64>>(), "whole batches");

    // The reopened engine resumes the same job, which finishes the rest.
    let info = finish(&env.engine, &env.admin, job);
    assert_eq!(
        (info.done, info.total),
        (RESUME_ITEMS as u64, RESUME_ITEMS as u64)
    );
    assert_eq!(
        env.engine.project_jobs(&env.admin, project).unwrap().len(),
        1
    );
    assert_eq!(
        suggestions(&env.engine, &env.admin, project).len(),
        RESUME_ITEMS
    );
    let (_env, (embedded, first)) = env.with_store(|store| {
        (
            store.embedded_seqs(project, &key).unwrap(),
            store.embeddings_at(project, &key, &[0]).unwrap()[0].clone(),
        )
    });
    assert_eq!(embedded, (0..RESUME_ITEMS as u64).collect::<Vec<u64>>());
    assert_eq!(first, Some(marker), "a stored batch was embedded again");
}

#[test]
fn without_a_model_the_features_say_why() {
    let nowhere = tempfile::tempdir().unwrap();
    let env = TestEngine::with_models_from(nowhere.path().join("nowhere"));
    let status = env.engine.model_status();
    assert!(!status.available);
    assert!(status.reason.unwrap().contains("config.json"));
    let project = env.create_project(topics_spec("p"));
    let err = env.engine.enqueue_predict(&env.admin, project).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("unavailable"), "{err}");
}

#[test]
fn a_zero_shot_model_made_before_any_item_is_recalibrated_once_items_arrive() {
    let env = TestEngine::with_models();
    let project = env.create_project(topics_spec("Empty first"));
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    import_texts(&env, project);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    // Version 1 saw no items; version 2 is calibrated on the 24 imported ones.
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1].params["calibration_items"], 24);
    assert_eq!((versions[1].parent, versions[1].active), (Some(1), true));
    let shown = suggestions(&env.engine, &env.admin, project);
    assert_eq!(version_of(&shown), 2);
    let all: Vec<usize> = (1..=TEXTS.len()).collect();
    let accuracy = accuracy_on(&shown, &all);
    assert!(accuracy >= 0.75, "zero-shot accuracy {accuracy}");
}

/// A project chooses its encoder among the model folders: switching makes a zero-shot version
/// of the new model (its own embeddings, its own fingerprint); activating an old version
/// brings its model back.
#[test]
fn a_project_switches_between_model_folders() {
    let folders = tempfile::tempdir().unwrap();
    let models = folders.path().join("models");
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

    let env = TestEngine::with_models_from(models);
    assert_eq!(
        env.engine.installed_models(),
        [concord_engine::DEFAULT_MODEL, "random-bert"]
    );
    let project = env.create_project(topics_spec("Topics"));
    import_texts(&env, project);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    let minilm_shown = suggestions(&env.engine, &env.admin, project);

    let with_model = |model: Option<&str>| {
        without_auto_train(ProjectSettings {
            model: model.map(String::from),
            ..ProjectSettings::default()
        })
    };
    let err = env
        .engine
        .update_settings(&env.admin, project, with_model(Some("not-a-model")))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("no model"), "{err}");
    assert_eq!(
        error_kind(
            env.engine
                .update_settings(&env.admin, project, with_model(Some("../etc")))
        ),
        ErrorKind::InvalidInput
    );

    env.engine
        .update_settings(&env.admin, project, with_model(Some("random-bert")))
        .unwrap();
    let job = env.engine.project_jobs(&env.admin, project).unwrap()[0].id;
    finish(&env.engine, &env.admin, job);
    assert_eq!(
        env.engine.project_model_status(project).unwrap().model,
        "random-bert"
    );
    assert_eq!(
        version_of(&suggestions(&env.engine, &env.admin, project)),
        2
    );
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(versions[1].params["model"], "random-bert");
    assert_eq!(versions[1].parent, Some(1));

    // Rolling back to version 1 brings MiniLM back, with exactly its suggestions.
    let job = env.engine.activate_model(&env.admin, project, 1).unwrap();
    finish(&env.engine, &env.admin, job);
    assert_eq!(
        env.engine.project_model_status(project).unwrap().model,
        concord_engine::DEFAULT_MODEL
    );
    assert_eq!(suggestions(&env.engine, &env.admin, project), minilm_shown);
}
