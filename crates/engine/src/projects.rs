//! Projects, membership and the authorization rule: global admins may do anything; everyone
//! else acts inside a project only through their role in it.

use concord_domain::{ProjectId, ProjectSettings, ProjectSpec, Role, UserId};
use concord_store::ProjectRecord;
use serde::{Deserialize, Serialize};

use crate::{now_ms, Engine, EngineError, Principal};

/// A project as a member sees it in lists: spec plus progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub id: ProjectId,
    pub spec: ProjectSpec,
    pub role: Role,
    pub total: u64,
    /// Items with as many annotations as the overlap asks for.
    pub done: u64,
    /// Items the caller has annotated.
    pub mine: u64,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub user: UserId,
    pub name: String,
    pub role: Role,
    pub done: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: UserId,
    pub name: String,
    pub is_admin: bool,
    pub disabled: bool,
}

impl Engine {
    /// The caller's role in a project, or `Forbidden` (also for projects that do not exist, so
    /// that ids cannot be probed) when it is below `needed`.
    pub fn authorize(
        &self,
        actor: &Principal,
        project: ProjectId,
        needed: Role,
    ) -> Result<Role, EngineError> {
        let role = if actor.is_admin {
            if self.store().project(project)?.is_none() {
                return Err(EngineError::NotFound("project".into()));
            }
            Role::Admin
        } else {
            self.store()
                .role(project, actor.id)?
                .ok_or(EngineError::Forbidden)?
        };
        if role < needed {
            return Err(EngineError::Forbidden);
        }
        Ok(role)
    }

    pub(crate) fn project_record(&self, project: ProjectId) -> Result<ProjectRecord, EngineError> {
        self.store()
            .project(project)?
            .ok_or_else(|| EngineError::NotFound("project".into()))
    }

    /// Refuses anyone but a global administrator (creating projects and accounts).
    pub fn require_admin(&self, actor: &Principal) -> Result<(), EngineError> {
        if actor.is_admin {
            Ok(())
        } else {
            Err(EngineError::Forbidden)
        }
    }

    /// Creates a project (global admins only); the creator becomes its admin.
    pub fn create_project(
        &self,
        actor: &Principal,
        spec: ProjectSpec,
    ) -> Result<ProjectId, EngineError> {
        self.require_admin(actor)?;
        let spec = spec.normalize()?;
        crate::models::check_patterns(&spec.settings.patterns)?;
        let record = ProjectRecord {
            spec,
            created_ms: now_ms(),
            created_by: actor.id,
            next_seq: 0,
            done: 0,
            annotations: 0,
            active_model: None,
        };
        let id = self.store().create_project(&record)?;
        tracing::info!(project = %id, name = %record.spec.name, "project created");
        Ok(id)
    }

    /// Updates labels' descriptions, colours and hotkeys, the guidelines and the settings.
    /// Labels can be added but not removed or renamed once the project has items, so stored
    /// annotations always refer to existing labels.
    pub fn update_project(
        &self,
        actor: &Principal,
        project: ProjectId,
        spec: ProjectSpec,
    ) -> Result<(), EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        let current = self.project_record(project)?;
        let spec = spec.normalize()?;
        crate::models::check_patterns(&spec.settings.patterns)?;
        if spec.task != current.spec.task {
            return Err(EngineError::Invalid(
                "a project's task kind cannot change".into(),
            ));
        }
        if current.next_seq > 0 {
            if let Some(gone) = current
                .spec
                .labels
                .iter()
                .find(|l| spec.label(&l.name).is_none())
            {
                return Err(EngineError::Invalid(format!(
                    "label {:?} cannot be removed or renamed: the project already has items",
                    gone.name
                )));
            }
        }
        if spec.settings.overlap != current.spec.settings.overlap && current.annotations > 0 {
            return Err(EngineError::Invalid(
                "overlap cannot change once annotations exist".into(),
            ));
        }
        self.store().update_project_spec(project, &spec)?;
        self.reload_assignment(project)
    }

    /// Replaces a project's workflow settings (project admins), with the checks of
    /// [`Engine::update_project`].
    pub fn update_settings(
        &self,
        actor: &Principal,
        project: ProjectId,
        settings: ProjectSettings,
    ) -> Result<(), EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        let record = self.project_record(project)?;
        let mut spec = record.spec;
        let old = spec.settings.clone();
        spec.settings = settings;
        let new_model = spec.settings.model != old.model;
        if new_model {
            if let Some(name) = &spec.settings.model {
                let installed = self.inner.models.installed();
                if !installed.contains(name) {
                    return Err(EngineError::Invalid(format!(
                        "there is no model {name:?} in the models folder (installed: {})",
                        installed.join(", ")
                    )));
                }
            }
        }
        let reorder = (old.queue_order, old.diversity)
            != (spec.settings.queue_order, spec.settings.diversity);
        let new_patterns = spec.task.is_spans() && spec.settings.patterns != old.patterns;
        self.update_project(actor, project, spec)?;
        // A new queue order takes effect through a prediction pass (suggestions come from
        // cached embeddings; nothing is re-embedded); a new model pre-annotates with a fresh
        // zero-shot version of it.
        if (reorder || new_model)
            && record.active_model.is_some()
            && self.project_model_status(project)?.available
        {
            self.enqueue_predict(actor, project)?;
        }
        // New patterns pre-annotate at once (a patterns version needs no label).
        if new_patterns && self.project_model_status(project)?.available {
            self.predict_after_pattern_change(actor, project)?;
        }
        Ok(())
    }

    /// Projects the caller belongs to (all of them for global admins), with progress.
    pub fn list_projects(&self, actor: &Principal) -> Result<Vec<ProjectSummary>, EngineError> {
        let roles: std::collections::HashMap<ProjectId, Role> =
            self.store().memberships(actor.id)?.into_iter().collect();
        let mut out = Vec::new();
        for (id, record) in self.store().projects()? {
            let role = match (roles.get(&id), actor.is_admin) {
                (_, true) => Role::Admin,
                (Some(r), false) => *r,
                (None, false) => continue,
            };
            out.push(self.summary(actor, id, record, role)?);
        }
        Ok(out)
    }

    pub fn project_summary(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<ProjectSummary, EngineError> {
        let role = self.authorize(actor, project, Role::Annotator)?;
        let record = self.project_record(project)?;
        self.summary(actor, project, record, role)
    }

    fn summary(
        &self,
        actor: &Principal,
        id: ProjectId,
        record: ProjectRecord,
        role: Role,
    ) -> Result<ProjectSummary, EngineError> {
        Ok(ProjectSummary {
            id,
            total: record.next_seq,
            done: record.done,
            mine: self.store().user_progress(id, actor.id)?,
            created_ms: record.created_ms,
            spec: record.spec,
            role,
        })
    }

    /// Finds a project by id or exact name (for the CLI).
    pub fn find_project(&self, id_or_name: &str) -> Result<ProjectId, EngineError> {
        let projects = self.store().projects()?;
        if let Ok(n) = id_or_name.parse::<u64>() {
            if let Some((id, _)) = projects.iter().find(|(id, _)| id.0 == n) {
                return Ok(*id);
            }
        }
        projects
            .iter()
            .find(|(_, r)| r.spec.name == id_or_name)
            .map(|(id, _)| *id)
            .ok_or_else(|| EngineError::NotFound(format!("project {id_or_name:?}")))
    }

    /// Adds a user to a project with a role, changes their role, or (with `None`) removes them.
    pub fn set_member(
        &self,
        actor: &Principal,
        project: ProjectId,
        user_name: &str,
        role: Option<Role>,
    ) -> Result<(), EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        let (user, _) = self
            .store()
            .user_by_name(user_name)?
            .ok_or_else(|| EngineError::NotFound(format!("user {user_name:?}")))?;
        Ok(self.store().set_member(project, user, role)?)
    }

    pub fn members(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<Vec<MemberInfo>, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let mut out = Vec::new();
        for (user, role) in self.store().members(project)? {
            // A project created from the command line (the demo project, say) records its
            // creator, the local operator, who has no account: no row to show or manage.
            let Some(account) = self.store().user(user)? else {
                continue;
            };
            let name = account.name;
            out.push(MemberInfo {
                user,
                name,
                role,
                done: self.store().user_progress(project, user)?,
            });
        }
        Ok(out)
    }

    /// All accounts (admins only).
    pub fn users(&self, actor: &Principal) -> Result<Vec<UserInfo>, EngineError> {
        self.require_admin(actor)?;
        Ok(self
            .store()
            .users()?
            .into_iter()
            .map(|(id, u)| UserInfo {
                id,
                name: u.name,
                is_admin: u.is_admin,
                disabled: u.disabled,
            })
            .collect())
    }
}
