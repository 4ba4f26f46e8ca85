//! Per-project write generations: a counter per project, bumped after every committed write
//! that changes what a project's derived figures are computed from (answers, gold, items,
//! members, labels, model versions and their predictions). Callers cache figures keyed by the
//! generation they read before computing: the bump follows the commit, so a cached value is
//! never newer than its key claims, and any later write makes it unreachable.

use std::collections::HashMap;
use std::sync::Mutex;

use concord_domain::ProjectId;

#[derive(Default)]
pub(crate) struct Generations {
    counters: Mutex<HashMap<u64, u64>>,
}

impl Generations {
    pub(crate) fn bump(&self, project: u64) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry(project).or_insert(0) += 1;
        }
    }

    fn get(&self, project: u64) -> Option<u64> {
        self.counters
            .lock()
            .ok()
            .map(|c| c.get(&project).copied().unwrap_or(0))
    }
}

impl crate::Store {
    /// The project's write generation in this process; `None` when it cannot be read (then
    /// nothing may be cached). Changes after every committed write to the project's data.
    pub fn project_generation(&self, project: ProjectId) -> Option<u64> {
        self.generations.get(project.0)
    }
}
