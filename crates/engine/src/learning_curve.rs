//! A project's learning curve and the rounds of its loop: every trained version is a point
//! (the confirmed labels it was trained with → its held-out score, with a bootstrap interval),
//! an inverse power law fitted through the points says how many more labels a target score
//! needs, and each round between two trained versions records the labels added, the score
//! gained or lost and the time annotators spent on it.
//!
//! Everything is computed from stored versions and answers when asked; nothing is stored.

use concord_domain::{AutoTrigger, Interval, ProjectId, Role, Trainer};
use concord_ml::{
    label_score_intervals, span_f1_interval, span_triples_interval, CurvePoint, Evaluation,
    PowerLawFit, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED,
};
use concord_store::ModelVersionRecord;
use serde::{Deserialize, Serialize};

use crate::{Engine, EngineError, Principal, SpanMetrics};

/// Without a target in the request, the curve is asked when it reaches this share of its
/// fitted ceiling: the point of diminishing returns, past which each further gain costs far
/// more labels than the ones before (an absolute default such as 0.9 would be out of reach of
/// most hard tasks and trivially reached by easy ones).
pub const DEFAULT_TARGET_SHARE: f64 = 0.95;

/// What the curve's scores measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurveMetric {
    /// Label projects: accuracy on the held-out split.
    Accuracy,
    /// Span projects: strict micro entity F1 on the held-out split.
    SpanF1,
}

/// A held-out figure, with its 95% bootstrap interval when the version kept its held-out
/// predictions (versions stored before they were kept have the figure alone).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub value: f64,
    pub interval: Option<Interval>,
}

/// One trained version on the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePointInfo {
    pub version: u64,
    pub trainer: String,
    /// Why the loop trained it on its own (none: a person asked).
    pub auto: Option<AutoTrigger>,
    pub created_ms: u64,
    /// Confirmed labels when it was trained (training and held-out items together).
    pub labels: u64,
    /// Held-out items its score was measured on.
    pub held_out_items: u64,
    /// The curve's metric ([`LearningCurve::metric`]).
    pub score: Scored,
    /// Label projects: held-out macro-F1.
    pub macro_f1: Option<Scored>,
}

/// What a score is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// `majority label` (always answering the most common label) or `patterns` (a span
    /// project's rules).
    pub name: String,
    pub value: f64,
    /// The version on whose held-out items it was measured (the newest point).
    pub version: u64,
}

/// One round of the loop: what happened between the previous trained version (or the
/// project's start) and `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1 for the first trained version.
    pub round: u32,
    pub version: u64,
    pub trainer: String,
    pub auto: Option<AutoTrigger>,
    /// The trained version before it.
    pub previous: Option<u64>,
    /// Confirmed labels it was trained with.
    pub labels: u64,
    /// Confirmed labels since the previous version (negative when gold was withdrawn).
    pub labels_added: i64,
    /// Its score on the curve's metric, when it has held-out figures.
    pub score: Option<f64>,
    /// Its score minus the previous version's, when both have one.
    pub change: Option<f64>,
    /// Answers last saved in the round.
    pub answers: u64,
    /// Time annotators spent on those answers.
    pub annotator_ms: u64,
    /// From the previous version (the first answer, for the first round) to this one.
    pub wall_ms: Option<u64>,
    /// An automatically trained version: whether it replaced the active one.
    pub activated: Option<bool>,
}

/// Work since the newest trained version, not yet in any round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRound {
    /// Confirmed labels since (label projects; a span project's confirmed items are counted
    /// only when a version is trained).
    pub labels_added: Option<i64>,
    pub answers: u64,
    pub annotator_ms: u64,
}

/// A project's learning curve (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningCurve {
    pub metric: CurveMetric,
    /// Trained versions with held-out figures, oldest first.
    pub points: Vec<CurvePointInfo>,
    /// The inverse power law `score(n) = a − b·n^(−c)` through the points (weighted by their
    /// held-out items), when one fits.
    pub fit: Option<PowerLawFit>,
    /// Confirmed labels now (span projects: those of the newest point).
    pub labels_now: u64,
    /// The score asked about: the request's, else [`DEFAULT_TARGET_SHARE`] of the fitted
    /// ceiling (none without a fit).
    pub target: Option<f64>,
    /// Whether `target` is the default rather than the request's.
    pub target_is_default: bool,
    /// Confirmed labels at which the fitted curve reaches the target.
    pub labels_needed: Option<u64>,
    /// How many more than `labels_now` (0: the curve says it is reached).
    pub more_labels: Option<u64>,
    /// Why there is no estimate, when there is none.
    pub why_not: Option<String>,
    pub baseline: Option<Baseline>,
    /// One per trained version, oldest first.
    pub rounds: Vec<Round>,
    pub pending: Option<PendingRound>,
}

/// A trained version's place on the curve, before it is shown.
struct Measured {
    version: u64,
    record: ModelVersionRecord,
    labels: u64,
    point: Option<CurvePointInfo>,
}

impl Engine {
    /// The learning curve of `project` and the rounds of its loop (reviewers and admins).
    /// `target` is a score in (0, 1] to estimate the labels for; without one, see
    /// [`DEFAULT_TARGET_SHARE`].
    pub fn learning_curve(
        &self,
        actor: &Principal,
        project: ProjectId,
        target: Option<f64>,
    ) -> Result<LearningCurve, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        if let Some(t) = target {
            if t.is_nan() || t <= 0.0 || t > 1.0 {
                return Err(EngineError::Invalid(format!(
                    "a target score lies in (0, 1], not {t}"
                )));
            }
        }
        let record = self.project_record(project)?;
        let spans = record.spec.task.is_spans();
        let metric = if spans {
            CurveMetric::SpanF1
        } else {
            CurveMetric::Accuracy
        };
        let trained: Vec<Measured> = self
            .store()
            .model_versions(project)?
            .into_iter()
            .filter(|(_, r)| {
                [Trainer::Head, Trainer::FineTune, Trainer::SetFit]
                    .iter()
                    .any(|t| r.trainer == t.as_str())
            })
            .map(|(version, r)| measure(version, r, spans))
            .collect();
        let points: Vec<CurvePointInfo> = trained.iter().filter_map(|m| m.point.clone()).collect();
        let baseline = trained
            .iter()
            .rev()
            .find(|m| m.point.is_some())
            .and_then(|m| baseline(m, spans));
        let confirmed_now = if spans {
            None
        } else {
            Some(self.confirmed_labels(project, &record.spec)?.len() as u64)
        };
        let labels_now = confirmed_now.unwrap_or_else(|| points.last().map_or(0, |p| p.labels));
        let (rounds, pending) = self.rounds(project, &trained, confirmed_now)?;
        let curve_points: Vec<CurvePoint> = points
            .iter()
            .map(|p| CurvePoint {
                labels: p.labels as f64,
                score: p.score.value,
                weight: p.held_out_items.max(1) as f64,
            })
            .collect();
        let mut curve = LearningCurve {
            metric,
            points,
            fit: None,
            labels_now,
            target,
            target_is_default: false,
            labels_needed: None,
            more_labels: None,
            why_not: None,
            baseline,
            rounds,
            pending,
        };
        if curve.points.is_empty() {
            curve.why_not = Some("no trained version has held-out figures yet".into());
            return Ok(curve);
        }
        let fit = match PowerLawFit::fit(&curve_points) {
            Ok(fit) => fit,
            Err(e) => {
                curve.why_not = Some(e.to_string());
                return Ok(curve);
            }
        };
        let target = target.unwrap_or_else(|| {
            curve.target_is_default = true;
            DEFAULT_TARGET_SHARE * fit.a
        });
        curve.fit = Some(fit);
        curve.target = Some(target);
        match fit.labels_needed(target) {
            Some(needed) => {
                curve.labels_needed = Some(needed);
                curve.more_labels = Some(needed.saturating_sub(labels_now));
            }
            None if target >= fit.a => {
                curve.why_not = Some(format!(
                    "the fitted curve levels off at {:.3}, below the target {target:.3}",
                    fit.a
                ));
            }
            None => {
                curve.why_not = Some(format!(
                    "the fitted curve reaches {target:.3} only beyond any countable number of labels"
                ));
            }
        }
        Ok(curve)
    }

    /// The rounds between consecutive trained versions, and the work since the newest. Each
    /// answer counts in the round in which it was last saved (its time, summed over its
    /// re-annotations, goes with it).
    fn rounds(
        &self,
        project: ProjectId,
        trained: &[Measured],
        confirmed_now: Option<u64>,
    ) -> Result<(Vec<Round>, Option<PendingRound>), EngineError> {
        let ends: Vec<u64> = trained.iter().map(|m| m.record.created_ms).collect();
        // One bucket per round, then one for the work after the newest version.
        let mut answers = vec![0u64; ends.len() + 1];
        let mut time = vec![0u64; ends.len() + 1];
        let mut first_answer: Option<u64> = None;
        self.store()
            .for_each_item::<EngineError>(project, |_, _, item_answers| {
                for (_, a) in &item_answers {
                    // Versions are numbered in creation order, so `ends` ascends.
                    let bucket = ends.partition_point(|&end| end < a.updated_ms);
                    answers[bucket] += 1;
                    time[bucket] += a.time_spent_ms;
                    first_answer = Some(first_answer.map_or(a.created_ms, |f| f.min(a.created_ms)));
                }
                Ok(())
            })?;
        let mut rounds = Vec::with_capacity(trained.len());
        let mut previous: Option<&Measured> = None;
        for (i, m) in trained.iter().enumerate() {
            let score = m.point.as_ref().map(|p| p.score.value);
            let previous_score = previous
                .and_then(|p| p.point.as_ref())
                .map(|p| p.score.value);
            let start = previous.map(|p| p.record.created_ms).or(first_answer);
            rounds.push(Round {
                round: i as u32 + 1,
                version: m.version,
                trainer: m.record.trainer.clone(),
                auto: m.record.auto,
                previous: previous.map(|p| p.version),
                labels: m.labels,
                labels_added: m.labels as i64 - previous.map_or(0, |p| p.labels as i64),
                score,
                change: score.zip(previous_score).map(|(s, p)| s - p),
                answers: answers[i],
                annotator_ms: time[i],
                wall_ms: start.map(|s| m.record.created_ms.saturating_sub(s)),
                activated: m.record.comparison.as_ref().map(|c| c.activated),
            });
            previous = Some(m);
        }
        let pending = trained.last().map(|last| PendingRound {
            labels_added: confirmed_now.map(|now| now as i64 - last.labels as i64),
            answers: answers[ends.len()],
            annotator_ms: time[ends.len()],
        });
        Ok((rounds, pending))
    }
}

/// A trained version's point: its held-out predictions resampled when it kept them, else its
/// stored metrics alone; none without held-out figures.
fn measure(version: u64, record: ModelVersionRecord, spans: bool) -> Measured {
    let (held_out_items, score, macro_f1) = if spans {
        match span_f1_interval(&record.held_out_spans, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED) {
            Some(f1) => (
                record.held_out_spans.len() as u64,
                Some(with_interval(f1)),
                None,
            ),
            None => match stored::<SpanMetrics>(&record) {
                Some(m) if m.items > 0 => (m.items, Some(alone(m.micro_f1)), None),
                _ => (0, None, None),
            },
        }
    } else {
        match label_score_intervals(
            &record.held_out,
            record.labels.len(),
            BOOTSTRAP_RESAMPLES,
            BOOTSTRAP_SEED,
        ) {
            Some(s) => (
                s.items,
                Some(with_interval(s.accuracy)),
                Some(with_interval(s.macro_f1)),
            ),
            None => match stored::<Evaluation>(&record) {
                Some(m) if m.items > 0 => {
                    (m.items, Some(alone(m.accuracy)), Some(alone(m.macro_f1)))
                }
                _ => (0, None, None),
            },
        }
    };
    // Versions stored before the confirmed count was kept trained on all but the held-out
    // items they were measured on.
    let labels = record
        .confirmed
        .unwrap_or(record.train_size + held_out_items);
    let point = score.map(|score| CurvePointInfo {
        version,
        trainer: record.trainer.clone(),
        auto: record.auto,
        created_ms: record.created_ms,
        labels,
        held_out_items,
        score,
        macro_f1,
    });
    Measured {
        version,
        record,
        labels,
        point,
    }
}

/// The version's stored metrics read as `T`, when they are.
fn stored<T: serde::de::DeserializeOwned>(record: &ModelVersionRecord) -> Option<T> {
    record
        .metrics
        .as_ref()
        .and_then(|m| serde_json::from_value(m.clone()).ok())
}

fn with_interval(e: concord_ml::BootstrapEstimate) -> Scored {
    Scored {
        value: e.estimate,
        interval: Some(e.interval),
    }
}

fn alone(value: f64) -> Scored {
    Scored {
        value,
        interval: None,
    }
}

/// The reference for the newest point's held-out items: the majority-label rate (label
/// projects) or the patterns' strict F1 (span projects, when their counts were kept).
fn baseline(m: &Measured, spans: bool) -> Option<Baseline> {
    let value = if spans {
        let patterns: Vec<[u32; 3]> = m.record.held_out_spans.iter().map(|c| c.patterns).collect();
        span_triples_interval(&patterns, 0, BOOTSTRAP_SEED)?.estimate
    } else if !m.record.held_out.is_empty() {
        let mut per_class = vec![0u64; m.record.labels.len()];
        for p in &m.record.held_out {
            if let Some(n) = per_class.get_mut(p.gold as usize) {
                *n += 1;
            }
        }
        let counted: u64 = per_class.iter().sum();
        if counted == 0 {
            return None;
        }
        *per_class.iter().max()? as f64 / counted as f64
    } else {
        let evaluation: Evaluation = stored(&m.record)?;
        let top = evaluation.per_label.iter().map(|l| l.support).max()?;
        if evaluation.items == 0 {
            return None;
        }
        top as f64 / evaluation.items as f64
    };
    Some(Baseline {
        name: if spans { "patterns" } else { "majority label" }.into(),
        value,
        version: m.version,
    })
}
