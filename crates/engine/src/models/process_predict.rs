//! The `predict` job: embeds every item with the active version's encoder (resumable), makes
//! a zero-shot version when the project has none that fits, writes one suggestion per item
//! and orders the queue.

use concord_domain::{ProjectId, TaskKind};
use concord_ml::COLD_START;
use concord_store::{ModelVersionRecord, SuggestionRecord, VersionParams};

use super::classifier::{single_label, Classifier};
use super::encoders::{fingerprint_bytes, fingerprint_from_hex};
use super::jobs::Stop;
use super::{project_model, version_model, ZERO_SHOT_TRAINER};
use crate::{now_ms, Engine, EngineError};

/// Items whose embeddings calibrate a zero-shot model.
const CALIBRATION_SAMPLE: usize = 5000;

impl Engine {
    /// Pre-annotates every item: embeddings first (resumable from `cursor`), then a zero-shot
    /// version if the project has no active one, then one suggestion per item. Returns how
    /// many suggestions were written.
    pub(super) fn process_predict(
        &self,
        id: u64,
        project: ProjectId,
        cursor: u64,
    ) -> Result<u64, Stop> {
        let record = self.project_record(project)?;
        let model = project_model(&record.spec);
        if self.imported_version_active(project, record.active_model)? {
            // Its suggestions came with the import and stand; items are embedded for the
            // next training.
            let encoder = self.inner.models.encoder(model)?;
            self.embed_items(id, project, cursor, &encoder)?;
            return Ok(0);
        }
        // A version of another model than the project's (the setting changed) or a zero-shot
        // one made before the items came is replaced by a fresh zero-shot version.
        let active = match record.active_model {
            Some(v) if !self.zero_shot_outgrown(project, v, record.next_seq)? => self
                .store()
                .model_version(project, v)?
                .filter(|r| version_model(r) == model)
                .map(|r| (v, r)),
            _ => None,
        };
        // The active version's encoder embeds what it has not seen (new items, or everything
        // after a fine-tuned version is activated); a new zero-shot model uses the base one.
        let encoder = match &active {
            Some((_, r)) => self.inner.models.encoder_for(r)?,
            None => self.inner.models.encoder(model)?,
        };
        self.embed_items(id, project, cursor, &encoder)?;
        let version = match active {
            Some((v, _)) => v,
            None => self.create_zero_shot(project)?,
        };
        let written = self.write_suggestions(project, version)?;
        self.order_queue(project, version)?;
        Ok(written)
    }

    /// Whether `version` is a zero-shot model calibrated on fewer items than the project now
    /// offers (made before an import): a fresh one is calibrated on the items instead.
    fn zero_shot_outgrown(
        &self,
        project: ProjectId,
        version: u64,
        items: u64,
    ) -> Result<bool, Stop> {
        let Some(record) = self.store().model_version(project, version)? else {
            return Ok(true);
        };
        // A version that does not record its calibration sample is kept.
        Ok(record.trainer == ZERO_SHOT_TRAINER
            && record
                .params
                .calibration_items
                .is_some_and(|calibrated| calibrated < items.min(CALIBRATION_SAMPLE as u64)))
    }

    fn create_zero_shot(&self, project: ProjectId) -> Result<u64, Stop> {
        let spec = self.project_record(project)?.spec;
        let model = project_model(&spec).to_string();
        let encoder = self.inner.models.encoder(&model)?;
        let fp = fingerprint_bytes(&encoder);
        let method = COLD_START;
        // Each label's prompts, embedded in one batch and regrouped per label.
        let prompts: Vec<Vec<String>> = spec
            .labels
            .iter()
            .map(|l| method.prompts(&l.name, l.description.as_deref()))
            .collect();
        let refs: Vec<&str> = prompts.iter().flatten().map(String::as_str).collect();
        let mut flat = encoder.embed(&refs, 16, &mut |_| {})?.into_iter();
        let prompt_embeddings: Vec<Vec<Vec<f32>>> = prompts
            .iter()
            .map(|p| flat.by_ref().take(p.len()).collect())
            .collect();
        let sample: Vec<Vec<f32>> = self
            .store()
            .embeddings(project, &fp, 0, CALIBRATION_SAMPLE)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let previous = self.project_record(project)?.active_model;
        // Priors come from the project's items; a project without items keeps them uniform.
        let (zero_shot, priors) = method.fit(&prompt_embeddings, &sample);
        let classifier = Classifier::ZeroShot { zero_shot, priors };
        let settings = zero_shot_settings(&method, prompts)?;
        let version = self.store().create_model_version(
            project,
            &ModelVersionRecord {
                trainer: ZERO_SHOT_TRAINER.into(),
                created_ms: now_ms(),
                parent: previous,
                params: VersionParams {
                    model: Some(model),
                    encoder_file: None,
                    calibration_items: Some(sample.len() as u64),
                    settings,
                },
                train_size: 0,
                train_hash: String::new(),
                labels: spec.labels.iter().map(|l| l.name.clone()).collect(),
                encoder: encoder.fingerprint().to_string(),
                metrics: None,
                classifier: serde_json::to_value(&classifier)
                    .map_err(|e| EngineError::internal("encoding the zero-shot classifier", e))?,
                name: None,
                held_out: Vec::new(),
                held_out_spans: Vec::new(),
                confirmed: None,
                auto: None,
                comparison: None,
            },
            true,
        )?;
        tracing::info!(project = %project, version, "zero-shot model created");
        Ok(version)
    }

    /// Writes the version's suggestion for every embedded item; returns how many.
    pub(super) fn write_suggestions(&self, project: ProjectId, version: u64) -> Result<u64, Stop> {
        let record = self
            .store()
            .model_version(project, version)?
            .ok_or_else(|| EngineError::NotFound("model version".into()))?;
        let fp = fingerprint_from_hex(&record.encoder);
        let classifier: Classifier = serde_json::from_value(record.classifier)
            .map_err(|e| EngineError::internal(format!("reading stored model {version}"), e))?;
        let task = self.project_record(project)?.spec.task;
        let mut from = 0;
        let mut written = 0;
        loop {
            let rows = self.store().embeddings(project, &fp, from, 2048)?;
            let Some(&(last, _)) = rows.last().map(|(s, v)| (s, v.len())).as_ref() else {
                break;
            };
            let x: Vec<Vec<f32>> = rows.iter().map(|(_, v)| v.clone()).collect();
            let probs = classifier.predict(&x);
            let now = now_ms();
            let suggestions = rows
                .iter()
                .zip(probs)
                .map(|((seq, _), p)| {
                    suggestion(task, &record.labels, p, version, now).map(|s| (*seq, s))
                })
                .collect::<Option<Vec<(u64, SuggestionRecord)>>>()
                .ok_or_else(|| {
                    // The job dispatch sends span projects to `process_predict_spans`.
                    EngineError::internal_fault(format!(
                        "item-level suggestions asked of version {version} of a span project"
                    ))
                })?;
            written += suggestions.len() as u64;
            self.store()
                .put_predictions(project, &fp, &[], &suggestions, None)?;
            from = *last + 1;
        }
        Ok(written)
    }
}

/// The suggestion `p` (per label, in `labels`' order) makes for an item of a `task` project;
/// `None` for span projects, whose suggestions are spans (`process_predict_spans`).
fn suggestion(
    task: TaskKind,
    labels: &[String],
    p: Vec<f32>,
    version: u64,
    now: u64,
) -> Option<SuggestionRecord> {
    let (chosen, confidence) = match task {
        TaskKind::Classification => {
            let (label, confidence) = single_label(labels, &p);
            (vec![label], confidence)
        }
        TaskKind::Multilabel => {
            let picked: Vec<usize> = (0..p.len()).filter(|&i| p[i] >= 0.5).collect();
            let confidence = picked.iter().map(|&i| p[i]).fold(1.0, f32::min);
            (
                picked
                    .iter()
                    .filter_map(|&i| labels.get(i).cloned())
                    .collect(),
                confidence,
            )
        }
        // Span projects predict spans per token, not one label distribution per item.
        TaskKind::Spans | TaskKind::Relations => return None,
    };
    Some(SuggestionRecord {
        labels: chosen,
        confidence,
        probabilities: p,
        version,
        created_ms: now,
        spans: Vec::new(),
        relations: Vec::new(),
    })
}

/// What a zero-shot version's settings say it is: its calibration, how its label priors were
/// estimated, its prompts (one string per label, or a list per label when there are several)
/// and how several are pooled.
fn zero_shot_settings(
    method: &concord_ml::ZeroShotMethod,
    prompts: Vec<Vec<String>>,
) -> Result<serde_json::Map<String, serde_json::Value>, EngineError> {
    let encode = |what: &str, v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| EngineError::internal(format!("encoding the zero-shot {what}"), e))
    };
    let mut settings = serde_json::Map::new();
    settings.insert(
        "calibration".into(),
        encode("calibration", serde_json::to_value(method.calibration))?,
    );
    settings.insert("priors".into(), method.priors.name().into());
    let prompts = if prompts.iter().all(|p| p.len() == 1) {
        prompts.into_iter().flatten().map(Into::into).collect()
    } else {
        settings.insert(
            "prompt_pooling".into(),
            encode("prompt pooling", serde_json::to_value(method.pooling))?,
        );
        prompts.into_iter().map(Into::into).collect()
    };
    settings.insert("prompts".into(), serde_json::Value::Array(prompts));
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_ml::{Calibration, PriorEstimate, PromptPooling, PromptSet, ZeroShotMethod};

    #[test]
    fn zero_shot_settings_say_what_the_version_is() {
        let single =
            zero_shot_settings(&COLD_START, vec![vec!["a: x".into()], vec!["b: y".into()]])
                .unwrap();
        assert_eq!(
            single["calibration"],
            serde_json::to_value(COLD_START.calibration).unwrap()
        );
        assert_eq!(single["priors"], COLD_START.priors.name());
        assert_eq!(single["prompts"], serde_json::json!(["a: x", "b: y"]));
        assert!(!single.contains_key("prompt_pooling"));

        let templates = ZeroShotMethod {
            prompts: PromptSet::Templates,
            pooling: PromptPooling::Score,
            calibration: Calibration::Centre,
            priors: PriorEstimate::DampedEm { weight: 0.5 },
        };
        let several = zero_shot_settings(
            &templates,
            vec![vec!["a".into(), "This text is a.".into()], vec!["b".into()]],
        )
        .unwrap();
        assert_eq!(several["calibration"], "centre");
        assert_eq!(several["priors"], "damped_em_0.5");
        assert_eq!(several["prompt_pooling"], "score");
        assert_eq!(
            several["prompts"],
            serde_json::json!([["a", "This text is a."], ["b"]])
        );
    }
}
