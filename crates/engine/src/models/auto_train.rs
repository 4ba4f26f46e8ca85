//! The loop that trains itself: when the job worker finds no job queued, it looks at each
//! project whose auto-training is on (`ProjectSettings::auto_train`) and queues at most one
//! training — a fine-tuning when the confirmed labels reached a milestone no fine-tuned version
//! was trained at yet, else a few-shot (SetFit-style) tuning at a few-shot milestone no tuned
//! version served yet (single-label classification), else a head when there are at least
//! `every` more confirmed labels than the last training saw. The training job itself decides
//! whether the new version replaces the active one (only when it is not worse on the
//! held-out split).
//!
//! Counting confirmed labels reads every item of a project, so the worker counts only when
//! enough may have changed since its last count: each answer adds at most one confirmed
//! label, so while the project's annotation rows grew by less than the labels still missing
//! nothing is read; other writes (gold set by reviewers, imports) are picked up by a recount
//! at most once per [`RECOUNT_AFTER`] after the project's write generation moved.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use concord_domain::{
    AutoTrainSettings, AutoTrigger, JobSpec, JobState, ProjectId, TaskKind, TrainParams, Trainer,
};
use concord_store::{JobRecord, ModelVersionRecord, ProjectRecord};

use super::jobs::WhenQueued;
use super::{has_model, project_model, span_model, ZERO_SHOT_TRAINER};
use crate::{Engine, EngineError, Principal};

/// How long after a count the worker counts again when the project changed in ways its
/// annotation rows do not show (gold set in review, an import of gold labels).
const RECOUNT_AFTER: Duration = Duration::from_secs(60);

/// What the worker saw at its last count of a project's confirmed labels.
#[derive(Debug, Clone, Copy)]
struct LastCount {
    /// `ProjectRecord::annotations` then.
    annotations: u64,
    /// The project's write generation then.
    generation: Option<u64>,
    confirmed: u64,
    at: Instant,
    /// The confirmed labels that would queue a training, as far as the worker knew then.
    threshold: u64,
}

impl LastCount {
    /// Whether the project may have reached `threshold` confirmed labels since this count.
    fn may_have_reached(
        &self,
        threshold: u64,
        record: &ProjectRecord,
        generation: Option<u64>,
    ) -> bool {
        // Each new answer adds at most one confirmed label.
        let reachable = self
            .confirmed
            .saturating_add(record.annotations.saturating_sub(self.annotations));
        let other_writes = self.generation != generation && self.at.elapsed() >= RECOUNT_AFTER;
        reachable >= threshold || other_writes
    }
}

/// The worker's memory of its last counts, per project (in memory only: after a restart
/// each project is counted once again).
#[derive(Default)]
pub(crate) struct AutoTrainCounts {
    last: Mutex<HashMap<ProjectId, LastCount>>,
}

impl AutoTrainCounts {
    fn get(&self, project: ProjectId) -> Option<LastCount> {
        self.last.lock().ok()?.get(&project).copied()
    }

    fn set(&self, project: ProjectId, count: LastCount) {
        if let Ok(mut last) = self.last.lock() {
            last.insert(project, count);
        }
    }
}

/// What a project was trained on so far, as the decision needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TrainedSoFar {
    /// Confirmed labels seen by the last training that counts: the active trained version's,
    /// or a later automatic attempt's (even one not activated or failed, so that a candidate
    /// that lost is not retrained at every new label). `None`: nothing trained yet.
    pub base: Option<u64>,
    /// Confirmed labels of each fine-tuned version when it was trained.
    pub fine_tuned_at: Vec<u64>,
    /// Milestones the worker already queued a fine-tuning for (whatever came of it).
    pub milestones_queued: Vec<u64>,
    /// Confirmed labels of each few-shot tuned version when it was trained.
    pub few_shot_at: Vec<u64>,
    /// Few-shot milestones the worker already queued a tuning for.
    pub few_shot_queued: Vec<u64>,
}

impl TrainedSoFar {
    /// The largest milestone reached at `confirmed` labels that no fine-tuning served yet.
    fn pending_milestone(&self, settings: &AutoTrainSettings, confirmed: u64) -> Option<u64> {
        settings
            .fine_tune_at
            .iter()
            .map(|&m| u64::from(m))
            .filter(|&m| m <= confirmed)
            .filter(|m| !self.served(*m))
            .max()
    }

    fn served(&self, milestone: u64) -> bool {
        self.fine_tuned_at.iter().any(|&f| f >= milestone)
            || self.milestones_queued.contains(&milestone)
    }

    /// The largest few-shot milestone reached at `confirmed` labels that no tuned version
    /// (few-shot or fine-tuned, at or past it) served and no earlier job was queued for.
    fn pending_few_shot(&self, settings: &AutoTrainSettings, confirmed: u64) -> Option<u64> {
        settings
            .few_shot_at
            .iter()
            .map(|&m| u64::from(m))
            .filter(|&m| m <= confirmed)
            .filter(|m| !self.few_shot_served(*m))
            .max()
    }

    fn few_shot_served(&self, milestone: u64) -> bool {
        self.few_shot_at
            .iter()
            .chain(&self.fine_tuned_at)
            .any(|&f| f >= milestone)
            || self.few_shot_queued.contains(&milestone)
    }

    /// The fewest confirmed labels at which [`next_auto_training`] queues something.
    pub(super) fn threshold(&self, settings: &AutoTrainSettings, minimum: u64) -> u64 {
        let every = u64::from(settings.every);
        let head = match self.base {
            Some(base) => base.saturating_add(every),
            None => every,
        };
        let milestone = settings
            .fine_tune_at
            .iter()
            .map(|&m| u64::from(m))
            .filter(|m| !self.served(*m))
            .min()
            .unwrap_or(u64::MAX);
        let few_shot = settings
            .few_shot_at
            .iter()
            .map(|&m| u64::from(m))
            .filter(|m| !self.few_shot_served(*m))
            .min()
            .unwrap_or(u64::MAX);
        head.min(milestone).min(few_shot).max(minimum)
    }
}

/// The training the worker queues for a project with `confirmed` confirmed labels, if any:
/// a fine-tuning at a milestone not yet served comes first (it also retrains the head), then
/// a few-shot tuning at a few-shot milestone not yet served, else a head once `every` labels
/// were added since the last training (with nothing trained yet: `every` labels, and never
/// fewer than the `minimum` training needs).
pub(super) fn next_auto_training(
    settings: &AutoTrainSettings,
    confirmed: u64,
    minimum: u64,
    so_far: &TrainedSoFar,
) -> Option<TrainParams> {
    if !settings.enabled || confirmed < minimum {
        return None;
    }
    if let Some(milestone) = so_far.pending_milestone(settings, confirmed) {
        return Some(TrainParams {
            trainer: Trainer::FineTune,
            epochs: None,
            auto: Some(AutoTrigger::Milestone {
                milestone,
                labels: confirmed,
            }),
        });
    }
    if let Some(milestone) = so_far.pending_few_shot(settings, confirmed) {
        return Some(TrainParams {
            trainer: Trainer::SetFit,
            epochs: None,
            auto: Some(AutoTrigger::Milestone {
                milestone,
                labels: confirmed,
            }),
        });
    }
    let every = u64::from(settings.every);
    let due = match so_far.base {
        Some(base) => confirmed >= base.saturating_add(every),
        None => confirmed >= every,
    };
    due.then_some(TrainParams {
        trainer: Trainer::Head,
        epochs: None,
        auto: Some(AutoTrigger::Every { labels: confirmed }),
    })
}

/// The labels an automatic trigger counted.
fn trigger_labels(trigger: &AutoTrigger) -> u64 {
    match trigger {
        AutoTrigger::Every { labels } | AutoTrigger::Milestone { labels, .. } => *labels,
    }
}

/// What `project` was trained on so far, from its versions and its automatic jobs.
fn trained_so_far(
    record: &ProjectRecord,
    versions: &[(u64, ModelVersionRecord)],
    jobs: &[&JobRecord],
) -> TrainedSoFar {
    let trained = |r: &ModelVersionRecord| {
        has_model(r) && r.trainer != ZERO_SHOT_TRAINER && r.trainer != span_model::PATTERNS_TRAINER
    };
    // Versions from before `confirmed` was kept count what they trained on.
    let seen = |r: &ModelVersionRecord| r.confirmed.unwrap_or(r.train_size);
    let active = record
        .active_model
        .and_then(|a| versions.iter().find(|(v, _)| *v == a))
        .filter(|(_, r)| trained(r))
        .map(|(_, r)| seen(r));
    let mut so_far = TrainedSoFar {
        base: active,
        ..TrainedSoFar::default()
    };
    for (_, r) in versions {
        if r.trainer == Trainer::FineTune.as_str() {
            so_far.fine_tuned_at.push(seen(r));
        } else if r.trainer == Trainer::SetFit.as_str() {
            so_far.few_shot_at.push(seen(r));
        }
    }
    for job in jobs {
        let Ok(JobSpec::Train(TrainParams {
            trainer,
            auto: Some(trigger),
            ..
        })) = job.spec()
        else {
            continue;
        };
        so_far.base = so_far.base.max(Some(trigger_labels(&trigger)));
        if let AutoTrigger::Milestone { milestone, .. } = trigger {
            if trainer == Trainer::SetFit {
                so_far.few_shot_queued.push(milestone);
            } else {
                so_far.milestones_queued.push(milestone);
            }
        }
    }
    so_far
}

impl Engine {
    /// Queues the next automatic training of one project, if one is due (see the module
    /// documentation). Only when no job is queued or running, so people's jobs go first and
    /// the worker acts on one project at a time. Returns whether it queued a job.
    pub(super) fn queue_auto_training(&self) -> bool {
        match self.try_queue_auto_training() {
            Ok(queued) => queued,
            Err(e) => {
                tracing::warn!(error = %e, "automatic training: cannot check the projects");
                false
            }
        }
    }

    fn try_queue_auto_training(&self) -> Result<bool, EngineError> {
        let jobs = self.store().jobs()?;
        if jobs
            .iter()
            .any(|(_, j)| matches!(j.state, JobState::Queued | JobState::Running))
        {
            return Ok(false);
        }
        for (project, record) in self.store().projects()? {
            let mut settings = record.spec.settings.auto_train.clone();
            if !settings.enabled || record.spec.task == TaskKind::Multilabel {
                continue;
            }
            // Few-shot tuning is for single-label classification.
            if record.spec.task != TaskKind::Classification {
                settings.few_shot_at.clear();
            }
            let settings = &settings;
            let generation = self.store().project_generation(project);
            let last = self.inner.jobs.auto_counts.get(project);
            // Nothing more is read while the last count shows no training can be due.
            if last.is_some_and(|l| !l.may_have_reached(l.threshold, &record, generation)) {
                continue;
            }
            // Without a model nothing can train (a few file checks; no version is read).
            if !self
                .inner
                .models
                .status(project_model(&record.spec))
                .available
            {
                continue;
            }
            let own_jobs: Vec<&JobRecord> = jobs
                .iter()
                .filter(|(_, j)| j.project == project)
                .map(|(_, j)| j)
                .collect();
            let versions = self.store().model_versions(project)?;
            let so_far = trained_so_far(&record, &versions, &own_jobs);
            let minimum = minimum_for(record.spec.task);
            let threshold = so_far.threshold(settings, minimum);
            if let Some(l) = last {
                if !l.may_have_reached(threshold, &record, generation) {
                    self.inner
                        .jobs
                        .auto_counts
                        .set(project, LastCount { threshold, ..l });
                    continue;
                }
            }
            let confirmed = match record.spec.task {
                TaskKind::Spans | TaskKind::Relations => {
                    self.confirmed_spans(project, &record.spec)?.len()
                }
                _ => self.confirmed_labels(project, &record.spec)?.len(),
            } as u64;
            self.inner.jobs.auto_counts.set(
                project,
                LastCount {
                    annotations: record.annotations,
                    generation,
                    confirmed,
                    at: Instant::now(),
                    threshold,
                },
            );
            let Some(params) = next_auto_training(settings, confirmed, minimum, &so_far) else {
                continue;
            };
            // The worker acts for the installation, as the local operator does.
            match self.enqueue_job(
                &Principal::local(),
                project,
                JobSpec::Train(params),
                WhenQueued::Refuse,
            ) {
                Ok(job) => {
                    tracing::info!(job, project = %project, trainer = params.trainer.as_str(), auto = ?params.auto, confirmed, "automatic training queued");
                    return Ok(true);
                }
                Err(e) => {
                    tracing::warn!(project = %project, error = %e, "automatic training not queued");
                }
            }
        }
        Ok(false)
    }
}

/// The confirmed labels (items, for spans) a training of `task` needs.
fn minimum_for(task: TaskKind) -> u64 {
    match task {
        TaskKind::Spans | TaskKind::Relations => {
            super::process_train_spans::MIN_TRAINING_ITEMS as u64
        }
        _ => super::process_train::MIN_TRAINING_LABELS as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(every: u32, milestones: &[u32]) -> AutoTrainSettings {
        AutoTrainSettings {
            enabled: true,
            every,
            fine_tune_at: milestones.to_vec(),
            few_shot_at: Vec::new(),
        }
    }

    fn few_shot(milestone: u64, labels: u64) -> Option<TrainParams> {
        Some(TrainParams {
            trainer: Trainer::SetFit,
            epochs: None,
            auto: Some(AutoTrigger::Milestone { milestone, labels }),
        })
    }

    #[test]
    fn a_few_shot_milestone_queues_one_tuning_unless_a_fine_tuning_comes_first_or_served_it() {
        let s = AutoTrainSettings {
            few_shot_at: vec![50],
            ..settings(20, &[100])
        };
        let so_far = TrainedSoFar {
            base: Some(40),
            ..TrainedSoFar::default()
        };
        assert_eq!(so_far.threshold(&s, 10), 50);
        assert_eq!(next_auto_training(&s, 49, 10, &so_far), None);
        assert_eq!(next_auto_training(&s, 50, 10, &so_far), few_shot(50, 50));
        // Once tuned at 50, the head goes on every 20 labels until the fine-tuning milestone.
        let tuned = TrainedSoFar {
            base: Some(50),
            few_shot_at: vec![50],
            few_shot_queued: vec![50],
            ..TrainedSoFar::default()
        };
        assert_eq!(next_auto_training(&s, 69, 10, &tuned), None);
        assert_eq!(next_auto_training(&s, 70, 10, &tuned), head(70));
        assert_eq!(next_auto_training(&s, 100, 10, &tuned), fine_tune(100, 100));
        // Labels imported past both milestones: the fine-tuning comes first and serves both.
        assert_eq!(
            next_auto_training(&s, 120, 10, &so_far),
            fine_tune(100, 120)
        );
        let fine_tuned = TrainedSoFar {
            base: Some(120),
            fine_tuned_at: vec![120],
            milestones_queued: vec![100],
            ..TrainedSoFar::default()
        };
        assert_eq!(next_auto_training(&s, 139, 10, &fine_tuned), None);
        assert_eq!(next_auto_training(&s, 140, 10, &fine_tuned), head(140));
        // A few-shot milestone whose tuning was queued (and failed or lost) is not queued again.
        let tried = TrainedSoFar {
            base: Some(50),
            few_shot_queued: vec![50],
            ..TrainedSoFar::default()
        };
        assert_eq!(next_auto_training(&s, 60, 10, &tried), None);
    }

    fn head(labels: u64) -> Option<TrainParams> {
        Some(TrainParams {
            trainer: Trainer::Head,
            epochs: None,
            auto: Some(AutoTrigger::Every { labels }),
        })
    }

    fn fine_tune(milestone: u64, labels: u64) -> Option<TrainParams> {
        Some(TrainParams {
            trainer: Trainer::FineTune,
            epochs: None,
            auto: Some(AutoTrigger::Milestone { milestone, labels }),
        })
    }

    #[test]
    fn a_head_is_trained_after_every_n_new_labels_and_never_below_the_minimum() {
        let s = settings(20, &[100]);
        let nothing = TrainedSoFar::default();
        assert_eq!(next_auto_training(&s, 19, 10, &nothing), None);
        assert_eq!(next_auto_training(&s, 20, 10, &nothing), head(20));
        // `every` below the training minimum waits for the minimum.
        let small = settings(5, &[]);
        assert_eq!(next_auto_training(&small, 7, 10, &nothing), None);
        assert_eq!(next_auto_training(&small, 10, 10, &nothing), head(10));
        let trained = TrainedSoFar {
            base: Some(30),
            ..TrainedSoFar::default()
        };
        assert_eq!(next_auto_training(&s, 49, 10, &trained), None);
        assert_eq!(next_auto_training(&s, 50, 10, &trained), head(50));
        assert_eq!(trained.threshold(&s, 10), 50);
        let off = AutoTrainSettings {
            enabled: false,
            ..s
        };
        assert_eq!(next_auto_training(&off, 500, 10, &trained), None);
    }

    #[test]
    fn a_milestone_queues_one_fine_tuning_for_the_largest_milestone_reached() {
        let s = settings(20, &[100, 300, 1000]);
        let so_far = TrainedSoFar {
            base: Some(95),
            ..TrainedSoFar::default()
        };
        assert_eq!(so_far.threshold(&s, 10), 100);
        assert_eq!(next_auto_training(&s, 99, 10, &so_far), None);
        assert_eq!(
            next_auto_training(&s, 100, 10, &so_far),
            fine_tune(100, 100)
        );
        // Labels imported past two milestones at once: one fine-tuning, at the larger.
        assert_eq!(
            next_auto_training(&s, 350, 10, &so_far),
            fine_tune(300, 350)
        );
        // A fine-tuned version at 350 labels served 100 and 300: the head goes on.
        let tuned = TrainedSoFar {
            base: Some(350),
            fine_tuned_at: vec![350],
            milestones_queued: vec![300],
            ..TrainedSoFar::default()
        };
        assert_eq!(next_auto_training(&s, 369, 10, &tuned), None);
        assert_eq!(next_auto_training(&s, 370, 10, &tuned), head(370));
        assert_eq!(tuned.threshold(&s, 10), 370);
        // A milestone whose fine-tuning was queued (and failed or lost) is not queued again.
        let tried = TrainedSoFar {
            base: Some(100),
            fine_tuned_at: Vec::new(),
            milestones_queued: vec![100],
            ..TrainedSoFar::default()
        };
        assert_eq!(next_auto_training(&s, 110, 10, &tried), None);
        assert_eq!(next_auto_training(&s, 120, 10, &tried), head(120));
    }

    fn job(trigger: AutoTrigger) -> JobRecord {
        let spec = JobSpec::Train(TrainParams {
            trainer: Trainer::Head,
            epochs: None,
            auto: Some(trigger),
        });
        JobRecord::queued(ProjectId(1), &spec, concord_domain::UserId(0), 1)
    }

    #[test]
    fn a_candidate_that_lost_still_moves_the_base_so_the_next_try_waits_for_n_labels() {
        let record = ProjectRecord {
            spec: concord_domain::ProjectSpec {
                name: "p".into(),
                task: TaskKind::Classification,
                labels: Vec::new(),
                guidelines: String::new(),
                settings: Default::default(),
                relation_labels: Vec::new(),
            },
            created_ms: 0,
            created_by: concord_domain::UserId(0),
            next_seq: 0,
            done: 0,
            annotations: 0,
            active_model: None,
        };
        let lost = job(AutoTrigger::Every { labels: 40 });
        let milestone = job(AutoTrigger::Milestone {
            milestone: 100,
            labels: 104,
        });
        let so_far = trained_so_far(&record, &[], &[&lost]);
        assert_eq!(so_far.base, Some(40));
        let so_far = trained_so_far(&record, &[], &[&lost, &milestone]);
        assert_eq!(so_far.base, Some(104));
        assert_eq!(so_far.milestones_queued, vec![100]);
    }
}
