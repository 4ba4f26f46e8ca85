//! Server functions: each checks who is calling and hands over to one engine call.

use leptos::prelude::*;

use crate::wire::{
    AccountView, AgreementView, AppError, ConfusionView, ItemView, MemberView, ModelOverviewView,
    ProjectView, ReviewItemView, ReviewSummaryView, SubmitView, TokenView, UserView,
};

#[cfg(feature = "ssr")]
use crate::ssr::{blocking, context, fail, principal};
#[cfg(feature = "ssr")]
use concord_domain::ProjectId;

/// A form value the server cannot use: invalid input, with what was wrong.
#[cfg(feature = "ssr")]
fn invalid(message: String) -> AppError {
    fail(AppError::new(
        concord_domain::ErrorKind::InvalidInput,
        message,
    ))
}

#[cfg(feature = "ssr")]
fn set_cookie(value: String) {
    if let (Some(response), Ok(value)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(&value),
    ) {
        response.append_header(http::header::SET_COOKIE, value);
    }
}

/// Spends a sign-in attempt of the caller's address (and of the account `name`, when given);
/// answers 429 with `Retry-After` once either allowance is used up, before any password work.
#[cfg(feature = "ssr")]
async fn throttle_sign_in(
    ctx: &crate::ssr::ServerContext,
    name: Option<&str>,
) -> Result<(), AppError> {
    let address = crate::ssr::throttle::client_address().await;
    ctx.login_throttle
        .attempt(address, name)
        .map_err(|refused| fail(AppError::from(refused)))
}

/// The signed-in user, or `None`.
#[server]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    Ok(crate::ssr::maybe_principal().await?.map(|p| UserView {
        id: p.id.0,
        name: p.name,
        is_admin: p.is_admin,
    }))
}

/// Whether Concord still waits for its first admin (the setup link is then valid).
#[server]
pub async fn needs_setup() -> Result<bool, AppError> {
    let ctx = context()?;
    blocking(move || ctx.engine.needs_setup()).await
}

#[server]
pub async fn login(name: String, password: String) -> Result<UserView, AppError> {
    let ctx = context()?;
    throttle_sign_in(&ctx, Some(&name)).await?;
    let engine = ctx.engine.clone();
    let (who, secret) = blocking(move || engine.login(name.trim(), &password)).await?;
    set_cookie(crate::ssr::session_cookie(
        Some(&secret),
        ctx.secure_cookies,
    ));
    Ok(UserView {
        id: who.id.0,
        name: who.name,
        is_admin: who.is_admin,
    })
}

#[server]
pub async fn logout() -> Result<(), AppError> {
    let ctx = context()?;
    if let Some(secret) = crate::ssr::session_secret().await {
        let engine = ctx.engine.clone();
        blocking(move || engine.logout(&secret)).await?;
    }
    set_cookie(crate::ssr::session_cookie(None, ctx.secure_cookies));
    Ok(())
}

/// Creates the first admin with the one-time setup token printed in the server log, and signs
/// them in.
#[server]
pub async fn setup_admin(
    token: String,
    name: String,
    password: String,
) -> Result<UserView, AppError> {
    let ctx = context()?;
    throttle_sign_in(&ctx, None).await?;
    let engine = ctx.engine.clone();
    let pw = password.clone();
    let n = name.trim().to_string();
    // The engine checks the token (constant time, expiry) and creates the admin in one
    // transaction.
    blocking(move || engine.setup_admin(&token, &n, &pw)).await?;
    login(name, password).await
}

#[cfg(feature = "ssr")]
fn project_view(summary: concord_engine::ProjectSummary) -> ProjectView {
    ProjectView {
        id: summary.id.0,
        name: summary.spec.name,
        task: summary.spec.task,
        has_guidelines: !summary.spec.guidelines.trim().is_empty(),
        guidelines_html: crate::ssr::render_markdown(&summary.spec.guidelines),
        labels: summary.spec.labels,
        relation_labels: summary.spec.relation_labels,
        role: summary.role,
        overlap: summary.spec.settings.overlap,
        blind: summary.spec.settings.blind,
        auto_accept_unanimous: summary.spec.settings.auto_accept_unanimous,
        gold_every: summary.spec.settings.gold_every,
        queue_order: summary.spec.settings.queue_order,
        diversity: summary.spec.settings.diversity,
        model: summary
            .spec
            .settings
            .model
            .clone()
            .unwrap_or_else(|| concord_engine::DEFAULT_MODEL.to_string()),
        auto_train: summary.spec.settings.auto_train.clone(),
        total: summary.total,
        done: summary.done,
        mine: summary.mine,
    }
}

#[server]
pub async fn list_projects() -> Result<Vec<ProjectView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let list = blocking(move || ctx.engine.list_projects(&me)).await?;
    Ok(list.into_iter().map(project_view).collect())
}

#[server]
pub async fn get_project(id: u64) -> Result<ProjectView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || ctx.engine.project_summary(&me, ProjectId(id)))
        .await
        .map(project_view)
}

/// Creates a project from the form: labels one per line (`name` or `name: description`);
/// for a relations project, relation types one per line (`name: HEAD, … -> TAIL, …`, see
/// [`crate::pages::projects::parse_relation_lines`]).
#[server]
pub async fn create_project(
    name: String,
    task: String,
    labels: String,
    guidelines: String,
    #[server(default)] relation_types: Option<String>,
) -> Result<u64, AppError> {
    use concord_domain::{ProjectSettings, ProjectSpec, TaskKind};
    let (ctx, me) = (context()?, principal().await?);
    let task =
        TaskKind::parse(&task).ok_or_else(|| invalid(format!("unknown task kind {task:?}")))?;
    let relation_labels =
        crate::pages::projects::parse_relation_lines(relation_types.as_deref().unwrap_or(""))
            .map_err(invalid)?;
    let spec = ProjectSpec {
        name,
        task,
        labels: crate::wire::parse_label_lines(&labels),
        guidelines,
        settings: ProjectSettings::default(),
        relation_labels,
    };
    blocking(move || ctx.engine.create_project(&me, spec))
        .await
        .map(|id| id.0)
}

#[server]
pub async fn list_members(project: u64) -> Result<Vec<MemberView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let members = blocking(move || ctx.engine.members(&me, ProjectId(project))).await?;
    Ok(members
        .into_iter()
        .map(|m| MemberView {
            name: m.name,
            role: m.role,
            done: m.done,
        })
        .collect())
}

/// Adds an account to a project with a role (`annotator`, `reviewer`, `admin`) or, with role
/// `remove`, takes it out.
#[server]
pub async fn set_member(project: u64, user: String, role: String) -> Result<(), AppError> {
    use concord_domain::Role;
    let (ctx, me) = (context()?, principal().await?);
    let role = match role.as_str() {
        "remove" => None,
        r => Some(Role::parse(r).ok_or_else(|| invalid(format!("unknown role {r:?}")))?),
    };
    blocking(move || {
        ctx.engine
            .set_member(&me, ProjectId(project), user.trim(), role)
    })
    .await
}

#[server]
pub async fn list_accounts() -> Result<Vec<AccountView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let users = blocking(move || ctx.engine.users(&me)).await?;
    Ok(users
        .into_iter()
        .map(|u| AccountView {
            name: u.name,
            is_admin: u.is_admin,
            disabled: u.disabled,
        })
        .collect())
}

#[server]
pub async fn create_account(
    name: String,
    password: String,
    admin: Option<String>,
) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let is_admin = admin.is_some();
    blocking(move || {
        ctx.engine
            .create_user(&me, name.trim(), &password, is_admin)
    })
    .await
    .map(|_| ())
}

/// Creates an API token for the caller, expiring after `expires_days` when given (an empty
/// form field means never); the secret is shown once.
#[server]
pub async fn create_token(name: String, expires_days: Option<String>) -> Result<String, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let lifetime = match expires_days.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(days) => match days.parse::<u32>() {
            Ok(d) if d > 0 => Some(std::time::Duration::from_secs(u64::from(d) * 86_400)),
            _ => {
                return Err(invalid(format!(
                    "expiry {days:?} is not a positive number of days"
                )))
            }
        },
    };
    blocking(move || {
        ctx.engine
            .create_expiring_api_token(&me, me.id, name.trim(), lifetime)
    })
    .await
}

/// API tokens: every user's for an admin, otherwise the caller's own.
#[server]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let tokens = blocking(move || ctx.engine.api_tokens(&me, None)).await?;
    Ok(tokens
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            user: t.user_name,
            name: t.name,
            created_ms: t.created_ms,
            last_used_ms: t.last_used_ms,
            expires_ms: t.expires_ms,
        })
        .collect())
}

/// Revokes an API token: the caller's own, or any for an admin.
#[server]
pub async fn revoke_token(id: String) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || ctx.engine.revoke_api_token(&me, id.trim())).await
}

/// Disables (`disabled` = "true") or enables an account; admins only, never their own.
#[server]
pub async fn set_account_disabled(name: String, disabled: String) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let disabled = match disabled.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(invalid(format!(
                "disabled must be true or false, not {other:?}"
            )))
        }
    };
    blocking(move || ctx.engine.set_user_disabled(&me, name.trim(), disabled)).await
}

/// Changes a password: the caller's own (with the current one; the caller's other sessions
/// end) or, for an admin, the account named in `user`.
#[server]
pub async fn change_password(
    user: Option<String>,
    current: Option<String>,
    new_password: String,
) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    if current.is_some() {
        // Checking a current password is a sign-in attempt: it spends the same allowances.
        throttle_sign_in(&ctx, Some(&me.name)).await?;
    }
    let keep = crate::ssr::session_secret().await;
    blocking(move || {
        let target = match user.as_deref().map(str::trim) {
            None | Some("") => me.id,
            Some(name) if me.is_admin => ctx.engine.principal_by_name(name)?.id,
            Some(_) => return Err(concord_engine::EngineError::Forbidden),
        };
        ctx.engine.change_password(
            &me,
            target,
            current.as_deref(),
            &new_password,
            keep.as_deref(),
        )
    })
    .await
}

/// Ends every session of the caller, this one included; with `tokens` it revokes their API
/// tokens too.
#[server]
pub async fn sign_out_everywhere(tokens: Option<String>) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let engine = ctx.engine.clone();
    let with_tokens = tokens.is_some();
    blocking(move || engine.sign_out_everywhere(&me, me.id, with_tokens)).await?;
    set_cookie(crate::ssr::session_cookie(None, ctx.secure_cookies));
    Ok(())
}

#[cfg(feature = "ssr")]
fn suggestion_view(s: concord_engine::Suggestion) -> crate::wire::SuggestionView {
    crate::wire::SuggestionView {
        labels: s.labels,
        confidence: s.confidence,
        version: s.model_version,
        spans: s.spans,
        relations: s.relations,
        relations_preselect: s.relations_preselect,
        relations_validation: s.relations_validation,
        validation: s.validation,
        preselect: s.preselect,
        evidence: s.evidence.map(|e| e.sentence).unwrap_or_default(),
    }
}

#[cfg(feature = "ssr")]
fn item_view(item: concord_engine::QueueItem) -> ItemView {
    let (mine, mine_parts) = item
        .mine
        .map(|v| (v.labels, (v.spans, v.relations)))
        .unzip();
    let (mine_spans, mine_relations) = mine_parts.unzip();
    ItemView {
        id: item.id,
        text: item.text,
        mine,
        tokens: item.tokens,
        mine_spans,
        mine_relations,
        others: item
            .others
            .map(|cs| cs.into_iter().map(|c| (c.label, c.count)).collect()),
        suggestion: item.suggestion.map(suggestion_view),
        reason: item.reason,
    }
}

/// The caller's next item, skipping those the page already holds.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn next_item(project: u64, exclude: Vec<String>) -> Result<Option<ItemView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let item = blocking(move || ctx.engine.next_item(&me, ProjectId(project), &exclude)).await?;
    Ok(item.map(item_view))
}

/// One item with the caller's earlier answer (going back).
#[server]
pub async fn get_item(project: u64, item: String) -> Result<ItemView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        ctx.engine
            .item_for_annotation(&me, ProjectId(project), &item)
    })
    .await
    .map(item_view)
}

/// Stores an answer; returns once it is durable.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn submit_annotation(
    project: u64,
    item: String,
    labels: Vec<String>,
    time_spent_ms: u64,
) -> Result<SubmitView, AppError> {
    submit_value(project, item, labels, Vec::new(), Vec::new(), time_spent_ms).await
}

/// Stores a span project's answer: its spans (code point offsets; an empty list is the
/// answer "no entities") and, in a relations project, its relations (`from`/`to` index
/// `spans` as sent); returns once it is durable.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn submit_spans(
    project: u64,
    item: String,
    spans: Vec<concord_domain::Span>,
    #[server(default)] relations: Vec<concord_domain::Relation>,
    time_spent_ms: u64,
) -> Result<SubmitView, AppError> {
    submit_value(project, item, Vec::new(), spans, relations, time_spent_ms).await
}

/// One submit, and the caller's progress after it.
#[cfg(feature = "ssr")]
async fn submit_value(
    project: u64,
    item: String,
    labels: Vec<String>,
    spans: Vec<concord_domain::Span>,
    relations: Vec<concord_domain::Relation>,
    time_spent_ms: u64,
) -> Result<SubmitView, AppError> {
    use concord_engine::Submission;
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        let outcome = ctx.engine.submit(
            &me,
            ProjectId(project),
            Submission {
                item_id: item,
                labels,
                spans,
                time_spent_ms,
                relations,
            },
        )?;
        let summary = ctx.engine.project_summary(&me, ProjectId(project))?;
        let outcome = serde_json::to_value(outcome)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        Ok(SubmitView {
            outcome,
            mine: summary.mine,
            done: summary.done,
            total: summary.total,
        })
    })
    .await
}

#[server]
pub async fn skip_item(project: u64, item: String) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || ctx.engine.skip(&me, ProjectId(project), &item)).await
}

#[server]
pub async fn reset_skips(project: u64) -> Result<u64, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || ctx.engine.reset_skips(&me, ProjectId(project))).await
}

/// The agreement dashboard's figures (reviewers and admins).
#[server]
pub async fn project_agreement(id: u64) -> Result<AgreementView, AppError> {
    use crate::wire::{AnnotatorRow, CoefficientRow, DayRow, LabelRow};
    let (ctx, me) = (context()?, principal().await?);
    let a = blocking(move || ctx.engine.agreement(&me, ProjectId(id))).await?;
    let n = a.annotators.len();
    let coefficients = a
        .headline()
        .into_iter()
        .map(|(name, kind, c)| CoefficientRow {
            name: name.to_string(),
            value: c.value(),
            note: c.undefined_reason().map(|r| r.to_string()),
            ci: a.interval(kind),
        })
        .collect();
    let labels = a
        .report
        .per_label
        .iter()
        .map(|l| LabelRow {
            name: a.categories.get(l.category).cloned().unwrap_or_default(),
            ratings: l.ratings,
            kappa: l.fleiss_kappa.value(),
            alpha: l.krippendorff_alpha.value(),
            specific: l.specific_agreement.value(),
        })
        .collect();
    let pair_kappa = (0..n)
        .map(|g| {
            (0..n)
                .map(|h| a.pairwise_kappa.get(g, h).and_then(|c| c.value()))
                .collect()
        })
        .collect();
    let pair_shared = (0..n)
        .map(|g| {
            (0..n)
                .map(|h| {
                    a.pairwise_kappa
                        .shared_items
                        .get(g * n + h)
                        .copied()
                        .unwrap_or(0)
                })
                .collect()
        })
        .collect();
    let annotator_rows = a
        .annotator_stats
        .iter()
        .map(|s| AnnotatorRow {
            name: s.name.clone(),
            items: s.items,
            seconds_per_item: s.mean_time_ms.map(|ms| ms / 1000.0),
            kappa: s.kappa_with_others.value(),
            percent: s.percent_with_others.value(),
            gold_answered: s.gold_answered,
            gold_correct: s.gold_correct,
        })
        .collect();
    let days = a
        .over_time
        .iter()
        .map(|d| DayRow {
            day: d.day.clone(),
            items: d.items,
            alpha: d.alpha_nominal.value(),
            cumulative: d.alpha_cumulative.value(),
            percent: d.percent_pairable.value(),
        })
        .collect();
    let models = a
        .model_raters
        .iter()
        .map(|r| crate::wire::ModelRaterRow {
            version: r.version,
            trainer: r.trainer.clone(),
            items: r.items,
            mean_kappa: r.mean_kappa,
            majority: r.agrees_with_majority,
            kappas: r.kappa_with_annotators.iter().map(|c| c.value()).collect(),
        })
        .collect();
    let relations = crate::pages::agreement::relation_view(&a);
    Ok(AgreementView {
        exact_sets: a.category_definition == concord_engine::CategoryDefinition::ExactLabelSet,
        items_total: a.project_items,
        items_answered: a.project_items - a.unannotated_items,
        items_pairable: a.report.items_pairable,
        items_excluded: a.report.items_excluded,
        annotators: a.annotators,
        categories: a.categories,
        coefficients,
        labels,
        pair_kappa,
        pair_shared,
        annotator_rows,
        days,
        models,
        spans: a.spans.as_ref().map(crate::pages::agreement::span_view),
        relations,
    })
}

/// The confusion matrix of two annotators (reviewers and admins).
#[server]
pub async fn rater_confusion(
    id: u64,
    first: String,
    second: String,
) -> Result<ConfusionView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let c = blocking(move || {
        ctx.engine
            .rater_confusion(&me, ProjectId(id), &first, &second)
    })
    .await?;
    Ok(ConfusionView {
        first: c.first,
        second: c.second,
        categories: c.categories,
        counts: c.counts,
        excluded: c.items_excluded,
    })
}

/// The model folders a project may choose from (any signed-in user; names only).
#[server]
pub async fn installed_models() -> Result<Vec<String>, AppError> {
    let (ctx, _me) = (context()?, principal().await?);
    blocking(move || Ok(ctx.engine.installed_models())).await
}

/// Changes a project's workflow settings (project admins), automatic training included.
/// Checkboxes arrive only when ticked.
// One argument per form field: that is how `ActionForm` fills a server function.
#[allow(clippy::too_many_arguments)]
#[server]
pub async fn update_settings(
    project: u64,
    overlap: u32,
    gold_every: u32,
    queue_order: String,
    model: String,
    blind: Option<String>,
    auto_accept: Option<String>,
    diversity: Option<String>,
    auto_train: Option<String>,
    auto_train_every: Option<u32>,
    fine_tune_at: Option<String>,
    few_shot_at: Option<String>,
) -> Result<(), AppError> {
    use concord_domain::{AutoTrainSettings, ProjectSettings, QueueOrder};
    /// The automatic-training fields as the form sent them.
    struct SubmittedAutoTrain {
        enabled: bool,
        every: u32,
        fine_tune_at: Vec<u32>,
        few_shot_at: Option<Vec<u32>>,
    }
    let (ctx, me) = (context()?, principal().await?);
    let queue_order = QueueOrder::parse(&queue_order)
        .ok_or_else(|| invalid(format!("unknown queue order {queue_order:?}")))?;
    // A request without the automatic-training fields (an older form) keeps them as they are.
    let auto_train = match auto_train_every {
        Some(every) => Some(SubmittedAutoTrain {
            enabled: auto_train.is_some(),
            every,
            fine_tune_at: crate::wire::parse_milestones(fine_tune_at.as_deref().unwrap_or(""))
                .map_err(invalid)?,
            // A form from before the few-shot field keeps the project's milestones.
            few_shot_at: match few_shot_at {
                Some(text) => Some(crate::wire::parse_milestones(&text).map_err(invalid)?),
                None => None,
            },
        }),
        None => None,
    };
    blocking(move || {
        // The span settings have a form of their own: this one keeps them as they are.
        let current = ctx.engine.project_summary(&me, ProjectId(project))?;
        let current_auto = &current.spec.settings.auto_train;
        let auto_train = match auto_train {
            Some(a) => AutoTrainSettings {
                enabled: a.enabled,
                every: a.every,
                fine_tune_at: a.fine_tune_at,
                few_shot_at: a
                    .few_shot_at
                    .unwrap_or_else(|| current_auto.few_shot_at.clone()),
            },
            None => current_auto.clone(),
        };
        let settings = ProjectSettings {
            auto_train,
            overlap,
            blind: blind.is_some(),
            auto_accept_unanimous: auto_accept.is_some(),
            gold_every,
            queue_order,
            diversity: diversity.is_some(),
            model: (model != concord_engine::DEFAULT_MODEL).then_some(model),
            ..current.spec.settings
        };
        ctx.engine
            .update_settings(&me, ProjectId(project), settings)
    })
    .await
}

/// A span project's span settings, patterns grouped by label for the settings form. Members
/// of the project may read them, as they read the project: the span editor follows the
/// overlap policy and the threshold.
#[server]
pub async fn get_span_settings(project: u64) -> Result<crate::wire::SpanSettingsView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let summary = blocking(move || ctx.engine.project_summary(&me, ProjectId(project))).await?;
    let settings = &summary.spec.settings;
    Ok(crate::wire::SpanSettingsView {
        overlapping_spans: settings.overlapping_spans,
        accept_threshold: settings.accept_threshold,
        labels: crate::wire::patterns_by_label(&summary.spec.labels, &settings.patterns),
    })
}

/// Changes a span project's span settings (project admins): whether spans may overlap, the
/// threshold of "accept all suggestions", and the pre-annotation patterns, one row per label.
/// The other settings keep their values. The engine refuses a pattern that does not compile,
/// naming it.
#[server]
pub async fn update_span_settings(
    project: u64,
    accept_threshold: u8,
    patterns: Vec<crate::wire::LabelPatternsForm>,
    overlapping_spans: Option<String>,
) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let patterns = crate::wire::patterns_from_form(&patterns);
    blocking(move || {
        let current = ctx.engine.project_summary(&me, ProjectId(project))?;
        let settings = concord_domain::ProjectSettings {
            overlapping_spans: overlapping_spans.is_some(),
            accept_threshold,
            patterns,
            ..current.spec.settings
        };
        ctx.engine
            .update_settings(&me, ProjectId(project), settings)
    })
    .await
}

#[cfg(feature = "ssr")]
fn review_view(item: concord_engine::ReviewItem) -> ReviewItemView {
    use crate::wire::ReviewAnswerView;
    ReviewItemView {
        id: item.id,
        text: item.text,
        state: item.state.as_str().to_string(),
        answers: item
            .answers
            .into_iter()
            .map(|a| ReviewAnswerView {
                annotator: a.annotator,
                labels: a.labels,
                spans: a.spans,
                relations: a.relations,
                source: serde_json::to_value(&a.source)
                    .ok()
                    .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from))
                    .unwrap_or_default(),
                seconds: a.time_spent_ms as f64 / 1000.0,
            })
            .collect(),
        proposal: item.proposal,
        gold: item.gold,
        tokens: item.tokens,
        proposal_spans: item.proposal_spans,
        proposal_relations: item.proposal_relations,
        gold_spans: item.gold_spans,
        gold_relations: item.gold_relations,
        gold_source: item.gold_source.map(|s| s.as_str().to_string()),
        gold_question: item.gold_question,
        suggestion: item.suggestion.map(suggestion_view),
    }
}

/// The next item waiting for review after `after` (reviewers and admins).
#[server]
pub async fn review_next(
    project: u64,
    after: Option<String>,
) -> Result<Option<ReviewItemView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let item = blocking(move || {
        ctx.engine
            .review_next(&me, ProjectId(project), after.as_deref())
    })
    .await?;
    Ok(item.map(review_view))
}

/// One item as the review page shows it, whatever its state.
#[server]
pub async fn review_item(project: u64, item: String) -> Result<ReviewItemView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || ctx.engine.review_item(&me, ProjectId(project), &item))
        .await
        .map(review_view)
}

/// Sets an item's gold label (and whether it is a gold question), then returns the next item
/// waiting for review, so the page moves on in one round trip.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn resolve_item(
    project: u64,
    item: String,
    labels: Vec<String>,
    gold_question: bool,
) -> Result<Option<ReviewItemView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let next = blocking(move || {
        let project = ProjectId(project);
        ctx.engine
            .resolve(&me, project, &item, labels, Vec::new(), Some(gold_question))?;
        ctx.engine.review_next(&me, project, Some(&item))
    })
    .await?;
    Ok(next.map(review_view))
}

/// Sets a span project item's gold spans (an empty list: "no entities") and whether it is a
/// gold question, then returns the next item waiting for review.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn resolve_spans(
    project: u64,
    item: String,
    spans: Vec<concord_domain::Span>,
    gold_question: bool,
) -> Result<Option<ReviewItemView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let next = blocking(move || {
        let project = ProjectId(project);
        ctx.engine
            .resolve(&me, project, &item, Vec::new(), spans, Some(gold_question))?;
        ctx.engine.review_next(&me, project, Some(&item))
    })
    .await?;
    Ok(next.map(review_view))
}

/// Sets a relations project item's gold spans and relations (`from`/`to` index `spans` as
/// sent; checked like an annotator's answer) and whether it is a gold question, then returns
/// the next item waiting for review.
#[server(input = leptos::server_fn::codec::Json)]
pub async fn resolve_relations(
    project: u64,
    item: String,
    spans: Vec<concord_domain::Span>,
    relations: Vec<concord_domain::Relation>,
    gold_question: bool,
) -> Result<Option<ReviewItemView>, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let next = blocking(move || {
        let project = ProjectId(project);
        let value = concord_domain::AnnotationValue {
            labels: Vec::new(),
            spans,
            relations,
        };
        ctx.engine
            .resolve_value(&me, project, &item, value, Some(gold_question))?;
        ctx.engine.review_next(&me, project, Some(&item))
    })
    .await?;
    Ok(next.map(review_view))
}

/// Counts of items per review state (reviewers and admins).
#[server]
pub async fn review_summary(project: u64) -> Result<ReviewSummaryView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let s = blocking(move || ctx.engine.review_summary(&me, ProjectId(project))).await?;
    Ok(ReviewSummaryView {
        items: s.items,
        unannotated: s.unannotated,
        in_progress: s.in_progress,
        needs_review: s.needs_review,
        disagreements: s.disagreements,
        accepted: s.accepted,
        answered: s.answered,
        gold_by_review: s.gold_by_review,
        gold_imported: s.gold_imported,
        gold_questions: s.gold_questions,
    })
}

/// The project's model: status, versions with held-out metrics, recent jobs (reviewers and
/// admins).
#[server]
pub async fn model_overview(project: u64) -> Result<ModelOverviewView, AppError> {
    use crate::wire::{JobRow, VersionRow};
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        let project = ProjectId(project);
        let versions = ctx.engine.model_versions(&me, project)?;
        let jobs = ctx.engine.project_jobs(&me, project)?;
        let status = ctx.engine.project_model_status(project)?;
        let single_label = ctx.engine.project_summary(&me, project)?.spec.task
            == concord_domain::TaskKind::Classification;
        let generators = if single_label {
            ctx.engine
                .generators()
                .into_iter()
                .filter(|g| g.supported)
                .map(|g| g.name)
                .collect()
        } else {
            Vec::new()
        };
        Ok(ModelOverviewView {
            generators,
            available: status.available,
            model: status.model,
            reason: status.reason,
            versions: versions
                .into_iter()
                .map(|v| VersionRow {
                    // First: it reads `v` before the fields below move out of it.
                    relation_metrics: crate::pages::span_metrics::relation_metrics_view(&v),
                    version: v.version,
                    trainer: v.trainer,
                    train_size: v.train_size,
                    accuracy: v.metrics.as_ref().map(|m| m.accuracy),
                    macro_f1: v.metrics.as_ref().map(|m| m.macro_f1),
                    calibration_error: v.metrics.as_ref().map(|m| m.calibration_error),
                    held_out: v.metrics.as_ref().map_or(0, |m| m.items),
                    created_ms: v.created_ms,
                    active: v.active,
                    label_f1: v
                        .metrics
                        .as_ref()
                        .map(|m| {
                            v.labels
                                .iter()
                                .cloned()
                                .zip(m.per_label.iter().map(|l| l.f1))
                                .collect()
                        })
                        .unwrap_or_default(),
                    span_metrics: v.span_metrics.map(Into::into),
                    live_accepted: v.shown.accepted,
                    live_answers: v.shown.accepted + v.shown.corrected,
                    validated: v.evidence.validated,
                    evidence: v.evidence.sentence,
                    comparison: v.comparison.as_ref().map(|c| comparison_text(v.version, c)),
                    auto: v.auto.map(|a| match a {
                        concord_domain::AutoTrigger::Every { labels } => {
                            format!("retrained on its own at {labels} confirmed labels")
                        }
                        concord_domain::AutoTrigger::Milestone { milestone, labels } => format!(
                            "fine-tuned on its own at the {milestone}-label milestone ({labels} labels)"
                        ),
                    }),
                })
                .collect(),
            jobs: jobs
                .into_iter()
                .take(10)
                .map(|j| JobRow {
                    id: j.id,
                    kind: j.kind,
                    state: j.state.to_string(),
                    done: j.done,
                    total: j.total,
                    rate: j.rate,
                    eta_seconds: j.eta_seconds,
                    error: j.error,
                })
                .collect(),
        })
    })
    .await
}

/// The project's learning curve and the rounds of its loop (reviewers and admins); `target`
/// is the held-out score to estimate the labels for (default: 95% of the fitted ceiling).
#[server]
pub async fn project_learning_curve(
    project: u64,
    target: Option<f64>,
) -> Result<crate::wire::LearningCurveView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        Ok(ctx
            .engine
            .learning_curve(&me, ProjectId(project), target)?
            .into())
    })
    .await
}

/// A candidate version against the incumbent, in words: "v3 0.81 vs v2 0.78 accuracy on 40
/// held-out items: activated".
#[cfg(feature = "ssr")]
fn comparison_text(version: u64, c: &concord_domain::VersionComparison) -> String {
    let metric = match c.metric {
        concord_domain::ComparisonMetric::Accuracy => "accuracy",
        concord_domain::ComparisonMetric::SpanF1 => "strict F1",
    };
    let against = match (c.incumbent, c.incumbent_score) {
        (Some(v), Some(score)) => format!(" vs v{v} {score:.2}"),
        (Some(v), None) => format!(" (v{v} could not be scored)"),
        (None, _) => " (no version was active)".to_string(),
    };
    let outcome = match (c.activated, c.incumbent) {
        (true, _) => "activated".to_string(),
        (false, Some(v)) => format!("not activated, v{v} kept"),
        (false, None) => "not activated".to_string(),
    };
    format!(
        "v{version} {:.2}{against} {metric} on {} held-out items: {outcome}",
        c.candidate, c.items
    )
}

/// The review page's bulk-accept section: the active version (whether it is validated) and
/// the batches that can be undone (reviewers and admins).
#[server]
pub async fn bulk_accept_state(project: u64) -> Result<crate::wire::BulkAcceptStateView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        let project = ProjectId(project);
        let batches = ctx.engine.bulk_accept_batches(&me, project)?;
        let active = ctx
            .engine
            .model_versions(&me, project)?
            .into_iter()
            .find(|v| v.active)
            .map(|v| (v.version, v.evidence.validated, v.evidence.sentence));
        Ok(crate::wire::BulkAcceptStateView {
            active,
            batches: batches.into_iter().map(bulk_batch_view).collect(),
        })
    })
    .await
}

#[cfg(feature = "ssr")]
fn bulk_batch_view(b: concord_engine::BulkAcceptBatch) -> crate::wire::BulkAcceptBatchView {
    crate::wire::BulkAcceptBatchView {
        version: b.version,
        min_confidence: b.min_confidence,
        reviewer: b.reviewer,
        reviewer_name: b.reviewer_name,
        at_ms: b.at_ms,
        items: b.items,
    }
}

/// How many items bulk-accepting `version` at `min_confidence` percent would set, and that
/// slice's held-out error rate (reviewers and admins; validated active versions only).
#[server]
pub async fn bulk_accept_preview(
    project: u64,
    version: u64,
    min_confidence: u8,
) -> Result<crate::wire::BulkAcceptPreviewView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let p = blocking(move || {
        ctx.engine
            .bulk_accept_preview(&me, ProjectId(project), version, min_confidence)
    })
    .await?;
    Ok(crate::wire::BulkAcceptPreviewView {
        version: p.version,
        min_confidence: p.min_confidence,
        items: p.items,
        held_out_items: p.held_out_items,
        held_out_errors: p.held_out_errors,
        error_rate: p.error_rate,
        error_interval: p.error_interval.map(|i| (i.low, i.high)),
        evidence: p.evidence.sentence,
    })
}

/// Sets the slice's suggestions as gold, as one batch (reviewers and admins).
#[server]
pub async fn bulk_accept(
    project: u64,
    version: u64,
    min_confidence: u8,
) -> Result<crate::wire::BulkAcceptBatchView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        ctx.engine
            .bulk_accept(&me, ProjectId(project), version, min_confidence)
    })
    .await
    .map(bulk_batch_view)
}

/// Removes one batch's gold where it is still in force; returns how many items it cleared.
#[server]
pub async fn undo_bulk_accept(project: u64, reviewer: u64, at_ms: u64) -> Result<u64, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        ctx.engine.undo_bulk_accept(
            &me,
            ProjectId(project),
            concord_domain::UserId(reviewer),
            at_ms,
        )
    })
    .await
}

/// Starts a background job: `predict` (pre-annotate every item), `train` (a head on the frozen
/// encoder), `fine_tune` (the encoder too), `setfit` (few-shot tuning of the encoder) or
/// `generate` (`generator` labels every item; 8 demonstrations from the confirmed labels).
#[server]
pub async fn start_model_job(
    project: u64,
    kind: String,
    generator: Option<String>,
) -> Result<u64, AppError> {
    use concord_engine::{TrainRequest, Trainer};
    let (ctx, me) = (context()?, principal().await?);
    if kind == "generate" {
        let Some(generator) = generator.filter(|g| !g.is_empty()) else {
            return Err(invalid("choose a generator".to_string()));
        };
        let params = concord_domain::GenerateParams {
            generator,
            shots: None,
        };
        return blocking(move || ctx.engine.enqueue_generate(&me, ProjectId(project), params))
            .await;
    }
    // `None`: predict; otherwise train with this trainer.
    let trainer = match kind.as_str() {
        "predict" => None,
        "train" => Some(Trainer::Head),
        "fine_tune" => Some(Trainer::FineTune),
        "setfit" => Some(Trainer::SetFit),
        other => return Err(invalid(format!("unknown job kind {other:?}"))),
    };
    blocking(move || match trainer {
        None => ctx.engine.enqueue_predict(&me, ProjectId(project)),
        Some(trainer) => ctx.engine.enqueue_train(
            &me,
            ProjectId(project),
            TrainRequest {
                trainer,
                epochs: None,
                auto: None,
            },
        ),
    })
    .await
}

/// Makes a version the active one (or rolls back to it) and refreshes the suggestions.
#[server]
pub async fn activate_version(project: u64, version: u64) -> Result<u64, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || ctx.engine.activate_model(&me, ProjectId(project), version)).await
}

#[server]
pub async fn cancel_model_job(job: u64) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || ctx.engine.cancel_job(&me, job).map(|_| ())).await
}

/// The project's likely label errors, most likely first (at most `limit`, 1..=1000), and its
/// annotators' quality (reviewers and admins).
#[server]
pub async fn label_errors(
    project: u64,
    limit: usize,
) -> Result<crate::wire::LabelErrorsView, AppError> {
    let (ctx, me) = (context()?, principal().await?);
    let report = blocking(move || ctx.engine.label_errors(&me, ProjectId(project), limit)).await?;
    Ok(crate::wire::LabelErrorsView {
        rows: report
            .rows
            .into_iter()
            .map(|r| crate::wire::LabelErrorView {
                reason: label_error_reason(&r.reason, &r.given),
                item_id: r.item_id,
                text: r.text,
                score: r.score,
                given: r.given,
                suggested: r.suggested,
                annotators: r
                    .annotators
                    .into_iter()
                    .map(|a| (a.annotator, a.label))
                    .collect(),
            })
            .collect(),
        flagged: report.flagged,
        checked: report.checked,
        not_embedded: report.not_embedded,
        annotators: report
            .annotators
            .into_iter()
            .map(|a| crate::wire::AnnotatorQualityView {
                annotator: a.annotator,
                answers: a.answers,
                agreement: a.agreement,
                quality: a.quality,
            })
            .collect(),
    })
}

/// Why an item is listed as a likely label error, in words.
#[cfg(feature = "ssr")]
fn label_error_reason(reason: &concord_engine::LabelErrorReason, given: &str) -> String {
    use concord_engine::LabelErrorReason as R;
    let model = |p: f32| {
        format!(
            "the model, never trained on this item, gives \u{201c}{given}\u{201d} {:.0}%",
            p * 100.0
        )
    };
    let people = |agreeing: u32, total: u32| {
        format!("{agreeing} of {total} annotators answered \u{201c}{given}\u{201d}")
    };
    let sentence = match reason {
        R::ModelDisagrees { model_probability } => model(*model_probability),
        R::AnnotatorsDisagree { agreeing, total } => people(*agreeing, *total),
        R::Both {
            model_probability,
            agreeing,
            total,
        } => format!(
            "{}, and {}",
            model(*model_probability),
            people(*agreeing, *total)
        ),
        R::Span { .. } => span_error_reason(reason),
    };
    let mut chars = sentence.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => sentence,
    }
}

/// Why a span item is listed, in words: the span that drives it, and who disagrees.
#[cfg(feature = "ssr")]
fn span_error_reason(reason: &concord_engine::LabelErrorReason) -> String {
    use concord_engine::ModelSample as M;
    let concord_engine::LabelErrorReason::Span {
        span,
        missing,
        model_probability,
        model_disagrees,
        model_sample,
        agreeing,
        total,
        annotators_disagree,
    } = reason
    else {
        return String::new();
    };
    let what = if *missing {
        format!("{span} is not among the given spans")
    } else {
        format!("the given span {span} is doubted")
    };
    let sample = match model_sample {
        M::OutOfSample => "never trained on this item",
        M::InSample => "possibly trained on this item, so it counts half",
        M::External => "imported from another tool",
        M::NoSuggestion => "no suggestion",
    };
    let mut who = Vec::new();
    if *model_disagrees {
        let p = model_probability.map_or(String::new(), |p| {
            format!(", {:.0}% for the given tag", p * 100.0)
        });
        who.push(format!("the model ({sample}{p})"));
    }
    if *annotators_disagree {
        who.push(format!("{agreeing} of {total} annotators agree with it"));
    }
    if who.is_empty() {
        what
    } else {
        format!("{what}: {}", who.join("; "))
    }
}

/// Fixes a likely label error: `label` becomes the item's gold, as a review decision (the
/// review queue writes it the same way). Reviewers and admins.
#[server]
pub async fn fix_label(project: u64, item: String, label: String) -> Result<(), AppError> {
    let (ctx, me) = (context()?, principal().await?);
    blocking(move || {
        ctx.engine.resolve(
            &me,
            ProjectId(project),
            &item,
            vec![label],
            Vec::new(),
            None,
        )
    })
    .await
}
