//! The `predict` job of span projects: the active version's spans for every item, each with
//! its confidence, and the item's certainty for active learning. A trained version (a token
//! classifier) keeps predicting once active — in a relations project, with the relations
//! its relation classifier finds between the spans it suggests
//! (`process_train_relations.rs`); before one exists, the project's patterns make a
//! "patterns" version, made again when the patterns — or how they fare on confirmed items —
//! changed. A version imported with its suggestions (no model) keeps them. Items are
//! embedded on the way (for the queue's diversity), and each batch's
//! embeddings, suggestions and the job's progress are one transaction, so a restart resumes
//! after the last stored batch.

use std::collections::HashSet;

use concord_domain::tokens::Token;
use concord_domain::{ProjectId, ProjectSpec, Span, SuggestedSpan};
use concord_ml::TokenClassifier;
use concord_store::{JobProgress, ModelVersionRecord, SuggestionRecord, VersionParams};

use super::encoders::fingerprint_bytes;
use super::jobs::Stop;
use super::patterns::{compile, CompiledPatterns, PatternCheck};
use super::process_train_relations::{suggest_relations, RelationVersion};
use super::span_metrics::span_metrics;
use super::span_model::{suggested_spans, words, ConfirmedItem, SpanModel, PATTERNS_TRAINER};
use super::{project_model, version_model};
use crate::{now_ms, Engine, EngineError};

/// Items read, predicted and stored per batch (and per progress update).
const BATCH: usize = 32;
/// Encoder windows per forward pass when predicting tags.
const WINDOWS_PER_PASS: usize = 32;

impl Engine {
    /// Pre-annotates every item of a span project with its active version (a patterns one
    /// when no trained version is active and the project has patterns), from `cursor` on, and
    /// orders the queue. Without any version, items are only embedded. Returns how many
    /// suggestions were written.
    pub(super) fn process_predict_spans(
        &self,
        id: u64,
        project: ProjectId,
        cursor: u64,
    ) -> Result<u64, Stop> {
        let record = self.project_record(project)?;
        let spec = record.spec;
        let model = project_model(&spec);
        if self.imported_version_active(project, record.active_model)? {
            // Its suggestions came with the import and stand; items are embedded for the
            // queue's diversity and the next training.
            let encoder = self.inner.models.encoder(model)?;
            self.embed_items(id, project, cursor, &encoder)?;
            return Ok(0);
        }
        // A version of another model than the project's (the setting changed) no longer
        // predicts.
        let active = match record.active_model {
            Some(v) => self
                .store()
                .model_version(project, v)?
                .filter(|r| version_model(r) == model)
                .map(|r| (v, r)),
            None => None,
        };
        let version = match active {
            Some((v, r)) if r.trainer != PATTERNS_TRAINER => Some(v),
            patterns => self.patterns_version(project, &spec, patterns)?,
        };
        let Some(version) = version else {
            let encoder = self.inner.models.encoder(model)?;
            self.embed_items(id, project, cursor, &encoder)?;
            return Ok(0);
        };
        let written = self.predict_spans(id, project, version, cursor)?;
        self.order_queue(project, version)?;
        Ok(written)
    }

    /// The patterns version to predict with: `current` (the active patterns version) while
    /// the project's patterns and their checks on confirmed items are what it recorded, else
    /// a new one, made active. `None` when the project has no patterns and no patterns
    /// version is active.
    fn patterns_version(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
        current: Option<(u64, ModelVersionRecord)>,
    ) -> Result<Option<u64>, Stop> {
        let patterns = &spec.settings.patterns;
        if patterns.is_empty() && current.is_none() {
            return Ok(None);
        }
        let compiled = compile(patterns)?;
        // Rules are measured only where people answered without taking a suggestion as it
        // was: accepted suggestions would confirm the very rules that made them.
        let mut confirmed = self.confirmed_spans(project, spec)?;
        confirmed.retain(|c| !c.accepted_suggestion);
        let checks = compiled.check(
            confirmed
                .iter()
                .map(|c| (c.text.as_str(), c.tokens.as_slice(), c.spans.as_slice())),
        );
        if let Some((v, r)) = &current {
            if let Ok(SpanModel::Patterns {
                patterns: recorded,
                checks: recorded_checks,
            }) = SpanModel::read(*v, r.classifier.clone())
            {
                if recorded == *patterns && recorded_checks == checks {
                    return Ok(Some(*v));
                }
            }
        }
        let metrics = if confirmed.is_empty() {
            None
        } else {
            let m = pattern_metrics(spec, &compiled, &checks, &confirmed)?;
            Some(
                serde_json::to_value(m)
                    .map_err(|e| EngineError::internal("encoding pattern metrics", e))?,
            )
        };
        let model = project_model(spec).to_string();
        let encoder = self.inner.models.encoder(&model)?;
        let mut settings = serde_json::Map::new();
        settings.insert(
            "rules".into(),
            serde_json::Value::Array(
                patterns
                    .iter()
                    .zip(&checks)
                    .map(|(p, c)| {
                        serde_json::json!({
                            "label": p.label,
                            "kind": p.kind.as_str(),
                            "pattern": p.pattern,
                            "case_insensitive": p.case_insensitive,
                            "matched": c.matched,
                            "correct": c.correct,
                            "confidence": c.describe(),
                        })
                    })
                    .collect(),
            ),
        );
        let classifier = SpanModel::Patterns {
            patterns: patterns.clone(),
            checks,
        };
        let version = self.store().create_model_version(
            project,
            &ModelVersionRecord {
                trainer: PATTERNS_TRAINER.into(),
                created_ms: now_ms(),
                parent: current.as_ref().map(|(v, _)| *v),
                params: VersionParams {
                    model: Some(model),
                    settings,
                    ..VersionParams::default()
                },
                // Rules are not fitted: the confirmed items only measured them.
                train_size: 0,
                train_hash: String::new(),
                labels: spec.labels.iter().map(|l| l.name.clone()).collect(),
                encoder: encoder.fingerprint().to_string(),
                metrics,
                classifier: serde_json::to_value(&classifier)
                    .map_err(|e| EngineError::internal("encoding the patterns version", e))?,
                name: Some(PATTERNS_TRAINER.into()),
                held_out: Vec::new(),
                held_out_spans: Vec::new(),
                confirmed: None,
                auto: None,
                comparison: None,
            },
            true,
        )?;
        tracing::info!(project = %project, version, patterns = patterns.len(), "patterns version created");
        Ok(Some(version))
    }

    /// Writes `version`'s suggestion for every item from `cursor` on, embedding with its
    /// encoder the items that have no embedding from it; a batch per transaction with the
    /// job's progress. Returns how many suggestions were written.
    pub(super) fn predict_spans(
        &self,
        id: u64,
        project: ProjectId,
        version: u64,
        cursor: u64,
    ) -> Result<u64, Stop> {
        let record = self
            .store()
            .model_version(project, version)?
            .ok_or_else(|| EngineError::NotFound("model version".into()))?;
        let span_model = SpanModel::read(version, record.classifier.clone())?;
        // A relations version's relation classifier, suggesting relations between the spans.
        let relation_model = RelationVersion::of(&record.classifier).map(|r| r.classifier);
        let project_record = self.project_record(project)?;
        let overlapping = project_record.spec.settings.overlapping_spans;
        let encoder = self.inner.models.encoder_for(&record)?;
        let fp = fingerprint_bytes(&encoder);
        let predictor = match span_model {
            SpanModel::Patterns { patterns, checks } => {
                Predictor::Rules(compile(&patterns)?, checks)
            }
            SpanModel::TokenClassifier { classifier } => Predictor::Tokens(classifier),
        };
        let have: HashSet<u64> = self
            .store()
            .embedded_seqs(project, &fp)?
            .into_iter()
            .collect();
        let total = project_record.next_seq;
        self.store().update_job(id, |j| {
            j.total = total;
            j.done = cursor;
        })?;
        let mut next = cursor;
        let mut written = 0;
        loop {
            self.check_cancel(id)?;
            let batch = self.store().texts_from(project, next, BATCH)?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            let mut tokens = Vec::with_capacity(batch.len());
            for (seq, _) in &batch {
                let item = self
                    .store()
                    .item(project, *seq)?
                    .ok_or_else(|| EngineError::NotFound(format!("item {seq}")))?;
                tokens.push(item.tokens().into_owned());
            }
            let now = now_ms();
            let spans: Vec<(Vec<SuggestedSpan>, f32)> = match &predictor {
                Predictor::Rules(compiled, checks) => batch
                    .iter()
                    .zip(&tokens)
                    .map(|((_, text), tokens)| {
                        let found = compiled.find(text, tokens);
                        let spans = compiled.suggest(&found, checks, overlapping);
                        // A rule knows nothing of what it did not match: the item is as
                        // certain as its least trusted suggestion.
                        let certainty = spans.iter().map(|s| s.confidence).fold(1.0, f32::min);
                        (spans, certainty)
                    })
                    .collect(),
                Predictor::Tokens(classifier) => {
                    let item_words: Vec<Vec<&str>> = batch
                        .iter()
                        .zip(&tokens)
                        .map(|((_, text), tokens)| words(text, tokens))
                        .collect();
                    classifier
                        .predict(&encoder, &item_words, WINDOWS_PER_PASS)?
                        .into_iter()
                        .zip(&tokens)
                        .map(|(p, tokens)| {
                            (
                                suggested_spans(tokens, &p.spans, &classifier.labels),
                                1.0 - p.uncertainty,
                            )
                        })
                        .collect()
                }
            };
            let relations = match &relation_model {
                Some(classifier) => {
                    let items: Vec<(Vec<&str>, &[Token], &[SuggestedSpan])> = batch
                        .iter()
                        .zip(&tokens)
                        .zip(&spans)
                        .map(|(((_, text), tokens), (spans, _))| {
                            (words(text, tokens), tokens.as_slice(), spans.as_slice())
                        })
                        .collect();
                    suggest_relations(classifier, &encoder, &items)?
                }
                None => vec![Vec::new(); batch.len()],
            };
            let suggestions: Vec<(u64, SuggestionRecord)> = batch
                .iter()
                .zip(spans.into_iter().zip(relations))
                .map(|((seq, _), ((spans, certainty), relations))| {
                    (
                        *seq,
                        SuggestionRecord {
                            labels: Vec::new(),
                            confidence: certainty,
                            probabilities: Vec::new(),
                            version,
                            created_ms: now,
                            spans,
                            relations,
                        },
                    )
                })
                .collect();
            let todo: Vec<&(u64, String)> =
                batch.iter().filter(|(s, _)| !have.contains(s)).collect();
            let texts: Vec<&str> = todo.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = if texts.is_empty() {
                Vec::new()
            } else {
                encoder.embed(&texts, WINDOWS_PER_PASS, &mut |_| {})?
            };
            let embeddings: Vec<(u64, Vec<f32>)> =
                todo.iter().map(|(s, _)| *s).zip(vectors).collect();
            next = last + 1;
            written += suggestions.len() as u64;
            self.store().put_predictions(
                project,
                &fp,
                &embeddings,
                &suggestions,
                Some(JobProgress {
                    job: id,
                    cursor: next,
                    done: next,
                }),
            )?;
        }
        Ok(written)
    }
}

/// What makes a version's spans.
enum Predictor {
    /// Its patterns, compiled, with their checks (their suggestions' confidence).
    Rules(CompiledPatterns, Vec<PatternCheck>),
    Tokens(TokenClassifier),
}

/// How the patterns do on every confirmed item (rules are not fitted to them, so none needs
/// holding out).
fn pattern_metrics(
    spec: &ProjectSpec,
    compiled: &CompiledPatterns,
    checks: &[PatternCheck],
    confirmed: &[ConfirmedItem],
) -> Result<super::span_metrics::SpanMetrics, EngineError> {
    let labels: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
    let predicted: Vec<Vec<Span>> = confirmed
        .iter()
        .map(|c| {
            let found = compiled.find(&c.text, &c.tokens);
            compiled
                .suggest(&found, checks, spec.settings.overlapping_spans)
                .into_iter()
                .map(|s| Span::new(s.start, s.end, s.label))
                .collect()
        })
        .collect();
    let gold: Vec<Vec<Span>> = confirmed.iter().map(|c| c.spans.clone()).collect();
    span_metrics(&labels, &predicted, &gold)
}
