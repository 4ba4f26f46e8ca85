//! The REST API under `/api/v1`: JSON in and out, bearer API tokens, errors as
//! `{"error": "...", "kind": "..."}`. Every handler authenticates, then makes one engine call, which checks
//! authorization itself.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Extension;
use axum::{Json, Router};
use bytes::Bytes;
use concord_app::ssr::errors::blocking;
use concord_app::ssr::throttle::ClientAddress;
use concord_domain::{ErrorKind, Label, ProjectId, ProjectSettings, ProjectSpec, Role, TaskKind};
use concord_engine::{
    ExportFormat, ImportFormat, ImportOptions, ImportedLabels, Principal, ProjectSummary,
    Submission,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{authorize, ApiError};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/me", get(me))
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/{id}", get(get_project))
        .route(
            "/projects/{id}/items",
            post(import_items).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/projects/{id}/next", get(next_item))
        .route("/projects/{id}/annotations", post(submit))
        .route("/projects/{id}/skip", post(skip))
        .route("/projects/{id}/members", get(members).post(set_member))
        .route("/projects/{id}/export", get(export))
        .route("/projects/{id}/agreement", get(agreement))
        .route(
            "/projects/{id}/agreement/confusion",
            get(agreement_confusion),
        )
        .route(
            "/projects/{id}/settings",
            axum::routing::patch(update_settings),
        )
        .route("/projects/{id}/review/next", get(review_next))
        .route("/projects/{id}/review/summary", get(review_summary))
        .route(
            "/projects/{id}/bulk-accept",
            get(bulk_accept_preview).post(bulk_accept),
        )
        .route(
            "/projects/{id}/bulk-accept/batches",
            get(bulk_accept_batches),
        )
        .route("/projects/{id}/bulk-accept/undo", post(undo_bulk_accept))
        .route(
            "/projects/{id}/items/{item}/gold",
            axum::routing::put(set_gold),
        )
        .route(
            "/projects/{id}/items/{item}/gold_question",
            axum::routing::put(set_gold_question),
        )
        .route("/models", get(model_status))
        .route("/backup", post(crate::ops::backup))
        .route("/projects/{id}/models", get(model_versions))
        .route("/projects/{id}/learning-curve", get(learning_curve))
        .route("/projects/{id}/label-errors", get(label_errors))
        .route("/projects/{id}/annotator-quality", get(annotator_quality))
        .route(
            "/projects/{id}/models/{version}/activate",
            post(activate_model),
        )
        .route("/projects/{id}/train", post(train))
        .route("/projects/{id}/predict", post(predict))
        .route("/projects/{id}/jobs", get(project_jobs))
        .route("/jobs/{job}", get(job))
        .route("/jobs/{job}/cancel", post(cancel_job))
        .route("/users", get(users).post(create_user))
        .route("/users/{name}/disable", post(disable_user))
        .route("/users/{name}/enable", post(enable_user))
        .route("/users/{name}/password", put(change_password))
        .route(
            "/users/{name}/sign-out-everywhere",
            post(sign_out_everywhere),
        )
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .fallback(|| async { ApiError::new(ErrorKind::NotFound, "no such endpoint") })
}

/// The caller, from `Authorization: Bearer <token>`.
pub struct ApiPrincipal(pub Principal);

impl FromRequestParts<AppState> for ApiPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(token) = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Err(ApiError::new(
                ErrorKind::NotSignedIn,
                "missing bearer token (Authorization: Bearer <token>)",
            ));
        };
        let token = token.to_string();
        let engine = state.engine().clone();
        match blocking(move || engine.token_principal(&token)).await? {
            Some(p) => Ok(ApiPrincipal(p)),
            None => Err(ApiError::new(ErrorKind::NotSignedIn, "invalid API token")),
        }
    }
}

/// Parses a JSON body with errors in the API's shape (axum's own rejections are plain text).
fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
}

fn project_json(s: &ProjectSummary) -> Value {
    json!({
        "id": s.id.0,
        "name": s.spec.name,
        "task": s.spec.task,
        "labels": s.spec.labels,
        "relation_labels": s.spec.relation_labels,
        "guidelines": s.spec.guidelines,
        "overlap": s.spec.settings.overlap,
        "settings": s.spec.settings,
        "role": s.role,
        "total": s.total,
        "done": s.done,
        "mine": s.mine,
    })
}

async fn me(ApiPrincipal(who): ApiPrincipal) -> Json<Value> {
    Json(json!({ "id": who.id.0, "name": who.name, "is_admin": who.is_admin }))
}

async fn list_projects(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().clone();
    let list = blocking(move || engine.list_projects(&who)).await?;
    Ok(Json(Value::Array(list.iter().map(project_json).collect())))
}

async fn get_project(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().clone();
    let summary = blocking(move || engine.project_summary(&who, ProjectId(id))).await?;
    Ok(Json(project_json(&summary)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProject {
    name: String,
    task: TaskKind,
    labels: Vec<NewLabel>,
    #[serde(default)]
    guidelines: String,
    #[serde(default)]
    overlap: Option<u32>,
    #[serde(default)]
    blind: Option<bool>,
    /// Span projects: spans may overlap or nest.
    #[serde(default)]
    overlapping_spans: Option<bool>,
    /// Span projects: the confidence (percent) of "accept all suggestions".
    #[serde(default)]
    accept_threshold: Option<u8>,
    /// Span projects: pre-annotation terms and regular expressions.
    #[serde(default)]
    patterns: Option<Vec<concord_domain::SpanPattern>>,
    /// The loop that trains itself (on by default; absent fields take their defaults).
    #[serde(default)]
    auto_train: Option<concord_domain::AutoTrainSettings>,
    /// Relations projects: the relation types.
    #[serde(default)]
    relation_labels: Vec<NewRelationLabel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRelationLabel {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Entity types allowed at the head; absent or empty: any.
    #[serde(default)]
    head: Vec<String>,
    /// Entity types allowed at the tail; absent or empty: any.
    #[serde(default)]
    tail: Vec<String>,
    #[serde(default)]
    hotkey: Option<String>,
    #[serde(default)]
    colour: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLabel {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    hotkey: Option<String>,
    #[serde(default)]
    colour: Option<String>,
}

async fn create_project(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Who may ask comes before what they asked: outsiders learn nothing from validation.
    state.engine().require_admin(&who)?;
    let input: NewProject = json_body(&body)?;
    let spec = ProjectSpec {
        name: input.name,
        task: input.task,
        labels: input
            .labels
            .into_iter()
            .map(|l| Label {
                name: l.name,
                description: l.description,
                colour: l.colour.unwrap_or_default(),
                hotkey: l.hotkey,
            })
            .collect(),
        guidelines: input.guidelines,
        settings: ProjectSettings {
            overlap: input.overlap.unwrap_or(1),
            // Overlapped projects measure agreement: honest only when annotators are blind.
            blind: input.blind.unwrap_or(input.overlap.unwrap_or(1) >= 2),
            overlapping_spans: input.overlapping_spans.unwrap_or(false),
            accept_threshold: input
                .accept_threshold
                .unwrap_or(ProjectSettings::default().accept_threshold),
            patterns: input.patterns.unwrap_or_default(),
            auto_train: input.auto_train.unwrap_or_default(),
            ..ProjectSettings::default()
        },
        relation_labels: input
            .relation_labels
            .into_iter()
            .map(|l| concord_domain::RelationLabel {
                name: l.name,
                description: l.description,
                head: l.head,
                tail: l.tail,
                colour: l.colour.unwrap_or_default(),
                hotkey: l.hotkey,
            })
            .collect(),
    };
    let engine = state.engine().clone();
    let summary = blocking(move || {
        let id = engine.create_project(&who, spec)?;
        engine.project_summary(&who, id)
    })
    .await?;
    Ok((http::StatusCode::CREATED, Json(project_json(&summary))).into_response())
}

#[derive(Deserialize)]
struct ImportQuery {
    format: Option<String>,
    text_field: Option<String>,
    id_field: Option<String>,
    gold_field: Option<String>,
    #[serde(default)]
    skip_duplicates: bool,
    /// `gold` (default), `annotator` or `model`: what the file's labels are.
    labels_as: Option<String>,
    /// The annotator's account name, or the external model version's name.
    labels_name: Option<String>,
}

/// `POST /projects/{id}/items`: the body (JSONL by default) is streamed to disk, then imported
/// all-or-nothing.
async fn import_items(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<ImportQuery>,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let project = ProjectId(id);
    let engine = state.engine().clone();
    authorize(&engine, &who, project, Role::Admin).await?;
    let format = match q.format.as_deref() {
        None => ImportFormat::Jsonl,
        Some(f) => ImportFormat::parse(f).ok_or_else(|| {
            ApiError::invalid("format must be jsonl, csv, text, conll, label-studio or doccano")
        })?,
    };
    let labels_as = ImportedLabels::from_parts(q.labels_as.as_deref(), q.labels_name.as_deref())
        .map_err(ApiError::invalid)?;
    let defaults = ImportOptions::default();
    let options = ImportOptions {
        format,
        text_field: q.text_field.unwrap_or(defaults.text_field),
        id_field: q.id_field.unwrap_or(defaults.id_field),
        gold_field: q.gold_field.unwrap_or(defaults.gold_field),
        skip_duplicates: q.skip_duplicates,
        labels_as,
    };
    let file = crate::upload::spool(
        body.into_data_stream(),
        engine.data_dir(),
        state.max_upload_bytes,
    )
    .await?;
    let reader = crate::upload::reopen(&file)?;
    let report = blocking(move || {
        // Dropping `file` deletes it: keep it until the import has read it.
        let _spooled = file;
        engine.import(&who, project, reader, &options, &mut |_| {})
    })
    .await?;
    Ok(Json(serde_json::to_value(report).unwrap_or(Value::Null)))
}

#[derive(Deserialize)]
struct NextQuery {
    /// Comma-separated item ids the client already holds.
    #[serde(default)]
    exclude: String,
}

async fn next_item(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<NextQuery>,
) -> Result<Response, ApiError> {
    let engine = state.engine().clone();
    let exclude: Vec<String> = q
        .exclude
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    match blocking(move || engine.next_item(&who, ProjectId(id), &exclude)).await? {
        Some(item) => {
            // The earlier answer in the shape it is submitted: spans in span projects, labels
            // otherwise (a value holds one or the other; "no entities" and no labels are both
            // `[]`); an answer with relations as `{"spans", "relations"}`.
            let mine = item.mine.map(|v| {
                if !v.relations.is_empty() {
                    json!({ "spans": v.spans, "relations": v.relations })
                } else if v.spans.is_empty() {
                    json!(v.labels)
                } else {
                    json!(v.spans)
                }
            });
            Ok(Json(json!({
                "id": item.id,
                "text": item.text,
                "meta": item.meta,
                "tokens": item.tokens,
                "mine": mine,
                "others": item.others,
                "suggestion": item.suggestion,
                "reason": item.reason,
            }))
            .into_response())
        }
        None => Ok(http::StatusCode::NO_CONTENT.into_response()),
    }
}

async fn submit(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let submission: Submission = json_body(&body)?;
    let engine = state.engine().clone();
    let outcome = blocking(move || engine.submit(&who, ProjectId(id), submission)).await?;
    Ok(Json(json!({ "outcome": outcome })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipBody {
    item_id: String,
}

async fn skip(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let input: SkipBody = json_body(&body)?;
    let engine = state.engine().clone();
    blocking(move || engine.skip(&who, ProjectId(id), &input.item_id)).await?;
    Ok(Json(json!({ "skipped": true })))
}

async fn members(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().clone();
    let list = blocking(move || engine.members(&who, ProjectId(id))).await?;
    Ok(Json(json!(list
        .iter()
        .map(|m| json!({ "name": m.name, "role": m.role, "done": m.done }))
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    user: String,
    /// A role, or null to remove the user from the project.
    role: Option<Role>,
}

async fn set_member(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let input: MemberBody = json_body(&body)?;
    let engine = state.engine().clone();
    let role = input.role;
    blocking(move || engine.set_member(&who, ProjectId(id), &input.user, role)).await?;
    Ok(Json(json!({ "role": role })))
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

async fn export(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = match q.format.as_deref() {
        None => ExportFormat::Jsonl,
        Some(f) => ExportFormat::parse(f).ok_or_else(|| {
            ApiError::invalid("format must be jsonl, csv, conll, prodigy, label-studio or doccano")
        })?,
    };
    let project = ProjectId(id);
    let engine = state.engine().clone();
    authorize(&engine, &who, project, Role::Reviewer).await?;
    crate::upload::check_export_format(&engine, &who, project, format).await?;
    Ok(crate::upload::export_response(engine, who, project, format))
}

async fn agreement(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<concord_engine::ProjectAgreement>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || engine.agreement(&who, ProjectId(id))).await?,
    ))
}

#[derive(Deserialize)]
struct ConfusionQuery {
    a: String,
    b: String,
}

async fn agreement_confusion(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<ConfusionQuery>,
) -> Result<Json<concord_engine::RaterConfusion>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || engine.rater_confusion(&who, ProjectId(id), &q.a, &q.b)).await?,
    ))
}

async fn users(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().clone();
    let list = blocking(move || engine.users(&who)).await?;
    Ok(Json(json!(list
        .iter()
        .map(|u| json!({ "id": u.id.0, "name": u.name, "is_admin": u.is_admin, "disabled": u.disabled }))
        .collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

async fn create_user(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.engine().require_admin(&who)?;
    let input: NewUser = json_body(&body)?;
    let engine = state.engine().clone();
    let created =
        blocking(move || engine.create_user(&who, &input.name, &input.password, input.admin))
            .await?;
    Ok((
        http::StatusCode::CREATED,
        Json(json!({ "id": created.id.0, "name": created.name, "is_admin": created.is_admin })),
    )
        .into_response())
}

/// The settings a `PATCH` may change; absent fields keep their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    overlap: Option<u32>,
    blind: Option<bool>,
    auto_accept_unanimous: Option<bool>,
    gold_every: Option<u32>,
    queue_order: Option<concord_domain::QueueOrder>,
    diversity: Option<bool>,
    /// A folder in the models folder; the default model's name resets it.
    model: Option<String>,
    overlapping_spans: Option<bool>,
    accept_threshold: Option<u8>,
    /// Replaces every pattern (an empty list removes them).
    patterns: Option<Vec<concord_domain::SpanPattern>>,
    /// Replaces the whole auto-train setting (absent fields inside take their defaults).
    auto_train: Option<concord_domain::AutoTrainSettings>,
}

async fn update_settings(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let project = ProjectId(id);
    let engine = state.engine().clone();
    authorize(&engine, &who, project, Role::Admin).await?;
    let patch: SettingsPatch = json_body(&body)?;
    let summary = blocking(move || {
        let mut settings = engine.project_summary(&who, project)?.spec.settings;
        settings.overlap = patch.overlap.unwrap_or(settings.overlap);
        settings.blind = patch.blind.unwrap_or(settings.blind);
        settings.auto_accept_unanimous = patch
            .auto_accept_unanimous
            .unwrap_or(settings.auto_accept_unanimous);
        settings.gold_every = patch.gold_every.unwrap_or(settings.gold_every);
        settings.queue_order = patch.queue_order.unwrap_or(settings.queue_order);
        settings.diversity = patch.diversity.unwrap_or(settings.diversity);
        if let Some(model) = patch.model {
            settings.model = (model != concord_engine::DEFAULT_MODEL).then_some(model);
        }
        settings.overlapping_spans = patch
            .overlapping_spans
            .unwrap_or(settings.overlapping_spans);
        settings.accept_threshold = patch.accept_threshold.unwrap_or(settings.accept_threshold);
        if let Some(patterns) = patch.patterns {
            settings.patterns = patterns;
        }
        if let Some(auto_train) = patch.auto_train {
            settings.auto_train = auto_train;
        }
        engine.update_settings(&who, project, settings)?;
        engine.project_summary(&who, project)
    })
    .await?;
    Ok(Json(project_json(&summary)))
}

#[derive(Deserialize)]
struct ReviewQuery {
    after: Option<String>,
}

async fn review_next(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<ReviewQuery>,
) -> Result<Response, ApiError> {
    let engine = state.engine().clone();
    match blocking(move || engine.review_next(&who, ProjectId(id), q.after.as_deref())).await? {
        Some(item) => Ok(Json(item).into_response()),
        None => Ok(http::StatusCode::NO_CONTENT.into_response()),
    }
}

async fn review_summary(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<concord_engine::ReviewSummary>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || engine.review_summary(&who, ProjectId(id))).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoldBody {
    /// Classification projects.
    #[serde(default)]
    labels: Vec<String>,
    /// Span projects (code point offsets); an empty list settles "no entities".
    #[serde(default)]
    spans: Vec<concord_domain::Span>,
    /// Relations projects: `{"from", "to", "label"}` indexing `spans` as sent, checked like
    /// an annotator's relations.
    #[serde(default)]
    relations: Vec<concord_domain::Relation>,
    gold_question: Option<bool>,
}

async fn set_gold(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path((id, item)): Path<(u64, String)>,
    body: Bytes,
) -> Result<Json<concord_engine::ReviewItem>, ApiError> {
    let project = ProjectId(id);
    let engine = state.engine().clone();
    authorize(&engine, &who, project, Role::Reviewer).await?;
    let input: GoldBody = json_body(&body)?;
    Ok(Json(
        blocking(move || {
            let value = concord_domain::AnnotationValue {
                labels: input.labels,
                spans: input.spans,
                relations: input.relations,
            };
            engine.resolve_value(&who, project, &item, value, input.gold_question)?;
            engine.review_item(&who, project, &item)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoldQuestionBody {
    gold_question: bool,
}

async fn set_gold_question(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path((id, item)): Path<(u64, String)>,
    body: Bytes,
) -> Result<Json<concord_engine::ReviewItem>, ApiError> {
    let project = ProjectId(id);
    let engine = state.engine().clone();
    authorize(&engine, &who, project, Role::Reviewer).await?;
    let input: GoldQuestionBody = json_body(&body)?;
    Ok(Json(
        blocking(move || {
            engine.set_gold_question(&who, project, &item, input.gold_question)?;
            engine.review_item(&who, project, &item)
        })
        .await?,
    ))
}

async fn model_status(
    State(state): State<AppState>,
    ApiPrincipal(_who): ApiPrincipal,
) -> Json<Value> {
    let engine = state.engine();
    let status = engine.model_status();
    if let Some(reason) = &status.reason {
        // The reason names folders on the server: logged, never answered.
        tracing::warn!("model features are off: {reason}");
    }
    // Model names and whether they are usable only: no paths of the server's file system.
    Json(json!({
        "available": status.available,
        "model": status.model,
        "reason": status.reason.as_ref().map(|_| "the model files are missing or unreadable (see the server log)"),
        "installed": engine.installed_models(),
        // GGUF files of the models folder and the configured OpenAI-compatible server: names,
        // architectures and sizes only.
        "generators": engine.generators(),
    }))
}

async fn model_versions(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<Vec<concord_engine::ModelVersionInfo>>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || engine.model_versions(&who, ProjectId(id))).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LearningCurveQuery {
    /// A held-out score in (0, 1] to estimate the labels for; absent: 95% of the fitted
    /// ceiling.
    target: Option<f64>,
}

async fn learning_curve(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<LearningCurveQuery>,
) -> Result<Json<concord_engine::LearningCurve>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || engine.learning_curve(&who, ProjectId(id), q.target)).await?,
    ))
}

#[derive(Deserialize)]
struct LabelErrorsQuery {
    /// Rows wanted, 1..=1000.
    #[serde(default = "default_label_error_rows")]
    limit: usize,
}

fn default_label_error_rows() -> usize {
    100
}

/// The items whose confirmed label is most likely wrong, most likely first.
async fn label_errors(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<LabelErrorsQuery>,
) -> Result<Json<Vec<concord_engine::LabelErrorRow>>, ApiError> {
    let engine = state.engine().clone();
    let report = blocking(move || engine.label_errors(&who, ProjectId(id), q.limit)).await?;
    Ok(Json(report.rows))
}

/// Each annotator's quality from the same consensus as the label errors, highest first.
async fn annotator_quality(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<Vec<concord_engine::AnnotatorQuality>>, ApiError> {
    let engine = state.engine().clone();
    let report = blocking(move || engine.label_errors(&who, ProjectId(id), 1)).await?;
    Ok(Json(report.annotators))
}

fn accepted_job(job: u64) -> Response {
    (http::StatusCode::ACCEPTED, Json(json!({ "job": job }))).into_response()
}

async fn activate_model(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path((id, version)): Path<(u64, u64)>,
) -> Result<Response, ApiError> {
    let engine = state.engine().clone();
    let job = blocking(move || engine.activate_model(&who, ProjectId(id), version)).await?;
    Ok(accepted_job(job))
}

async fn train(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // No body: a head on the frozen encoder.
    let request: concord_engine::TrainRequest = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        json_body(&body)?
    };
    let engine = state.engine().clone();
    let job = blocking(move || engine.enqueue_train(&who, ProjectId(id), request)).await?;
    Ok(accepted_job(job))
}

async fn predict(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // No body: the active version (a zero-shot one first when there is none); with
    // `{"generator": name, "shots": k}` a generator's run, a new version with trainer `llm`.
    let generate: Option<concord_domain::GenerateParams> =
        if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(json_body(&body)?)
        };
    let engine = state.engine().clone();
    let job = blocking(move || match generate {
        None => engine.enqueue_predict(&who, ProjectId(id)),
        Some(params) => engine.enqueue_generate(&who, ProjectId(id), params),
    })
    .await?;
    Ok(accepted_job(job))
}

async fn project_jobs(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<Vec<concord_engine::JobInfo>>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || engine.project_jobs(&who, ProjectId(id))).await?,
    ))
}

async fn job(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(job): Path<u64>,
) -> Result<Json<concord_engine::JobInfo>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(blocking(move || engine.job(&who, job)).await?))
}

async fn cancel_job(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(job): Path<u64>,
) -> Result<Json<concord_engine::JobInfo>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(blocking(move || engine.cancel_job(&who, job)).await?))
}

// ---- credentials ----------------------------------------------------------------------

/// The account a credential route names: the caller's own, or (admins only) anyone's. A
/// non-admin naming someone else is refused before any lookup, so names cannot be probed.
fn named_user(
    engine: &concord_engine::Engine,
    who: &Principal,
    name: &str,
) -> Result<concord_domain::UserId, concord_engine::EngineError> {
    if name == who.name {
        Ok(who.id)
    } else if who.is_admin {
        Ok(engine.principal_by_name(name)?.id)
    } else {
        Err(concord_engine::EngineError::Forbidden)
    }
}

fn token_json(t: &concord_engine::TokenInfo) -> Value {
    json!({
        "id": t.id,
        "user": t.user_name,
        "name": t.name,
        "created_ms": t.created_ms,
        "last_used_ms": t.last_used_ms,
        "expires_ms": t.expires_ms,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    user: Option<String>,
}

/// `GET /tokens[?user=NAME]`: the caller's tokens, a named user's (admins), or with no user
/// every user's for an admin.
async fn list_tokens(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let engine = state.engine().clone();
    let list = blocking(move || {
        let user = match query.user.as_deref() {
            Some(name) => Some(named_user(&engine, &who, name)?),
            None => None,
        };
        engine.api_tokens(&who, user)
    })
    .await?;
    Ok(Json(json!(list.iter().map(token_json).collect::<Vec<_>>())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    /// Days until the token stops working; absent: never.
    expires_days: Option<u32>,
    /// Whose token (admins only); absent: the caller's.
    user: Option<String>,
}

async fn create_token(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input: NewToken = json_body(&body)?;
    let lifetime = match input.expires_days {
        Some(0) => return Err(ApiError::invalid("expires_days must be at least 1")),
        Some(days) => Some(std::time::Duration::from_secs(u64::from(days) * 86_400)),
        None => None,
    };
    let engine = state.engine().clone();
    let secret = blocking(move || {
        let user = match input.user.as_deref() {
            Some(name) => named_user(&engine, &who, name)?,
            None => who.id,
        };
        engine.create_expiring_api_token(&who, user, &input.name, lifetime)
    })
    .await?;
    Ok((
        http::StatusCode::CREATED,
        Json(json!({ "id": concord_engine::api_token_id(&secret), "token": secret })),
    )
        .into_response())
}

/// `DELETE /tokens/{id}`: the caller's own token, or any for an admin.
async fn revoke_token(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    let engine = state.engine().clone();
    blocking(move || engine.revoke_api_token(&who, &id)).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

async fn disable_user(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(name): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    let engine = state.engine().clone();
    blocking(move || engine.set_user_disabled(&who, &name, true)).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

async fn enable_user(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(name): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    let engine = state.engine().clone();
    blocking(move || engine.set_user_disabled(&who, &name, false)).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    /// Needed to change one's own password.
    current_password: Option<String>,
    new_password: String,
}

/// `PUT /users/{name}/password`: one's own with the current password, or (admins) anyone's.
/// The account's sessions end.
async fn change_password(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(name): Path<String>,
    address: Option<Extension<ClientAddress>>,
    body: Bytes,
) -> Result<http::StatusCode, ApiError> {
    let input: PasswordChange = json_body(&body)?;
    if input.current_password.is_some() {
        // Checking a current password is a sign-in attempt: it spends the same allowances.
        state
            .ctx
            .login_throttle
            .attempt(address.map(|a| a.0 .0), Some(&who.name))?;
    }
    let engine = state.engine().clone();
    blocking(move || {
        let user = named_user(&engine, &who, &name)?;
        engine.change_password(
            &who,
            user,
            input.current_password.as_deref(),
            &input.new_password,
            None,
        )
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SignOutEverywhere {
    /// Also revoke the account's API tokens (the one making this call included).
    #[serde(default)]
    tokens: bool,
}

/// `POST /users/{name}/sign-out-everywhere`: ends the account's sessions, and optionally its
/// tokens.
async fn sign_out_everywhere(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let input: SignOutEverywhere = if body.is_empty() {
        SignOutEverywhere::default()
    } else {
        json_body(&body)?
    };
    let engine = state.engine().clone();
    let removed = blocking(move || {
        let user = named_user(&engine, &who, &name)?;
        engine.sign_out_everywhere(&who, user, input.tokens)
    })
    .await?;
    Ok(Json(
        json!({ "sessions": removed.sessions, "tokens": removed.tokens }),
    ))
}

// ---- bulk acceptance of a validated version's suggestions ---------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkAcceptQuery {
    version: u64,
    /// Percent, 0 to 100; required, so that a request never accepts everything by omission.
    min_confidence: u8,
}

async fn bulk_accept_preview(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    Query(q): Query<BulkAcceptQuery>,
) -> Result<Json<concord_engine::BulkAcceptPreview>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || {
            engine.bulk_accept_preview(&who, ProjectId(id), q.version, q.min_confidence)
        })
        .await?,
    ))
}

async fn bulk_accept(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<concord_engine::BulkAcceptBatch>, ApiError> {
    let project = ProjectId(id);
    let engine = state.engine().clone();
    authorize(&engine, &who, project, Role::Reviewer).await?;
    let input: BulkAcceptQuery = json_body(&body)?;
    Ok(Json(
        blocking(move || engine.bulk_accept(&who, project, input.version, input.min_confidence))
            .await?,
    ))
}

async fn bulk_accept_batches(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
) -> Result<Json<Vec<concord_engine::BulkAcceptBatch>>, ApiError> {
    let engine = state.engine().clone();
    Ok(Json(
        blocking(move || engine.bulk_accept_batches(&who, ProjectId(id))).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UndoBulkAcceptBody {
    /// The batch's reviewer (account id, as the batch lists it).
    reviewer: u64,
    at_ms: u64,
}

async fn undo_bulk_accept(
    State(state): State<AppState>,
    ApiPrincipal(who): ApiPrincipal,
    Path(id): Path<u64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let project = ProjectId(id);
    let engine = state.engine().clone();
    authorize(&engine, &who, project, Role::Reviewer).await?;
    let input: UndoBulkAcceptBody = json_body(&body)?;
    let cleared = blocking(move || {
        engine.undo_bulk_accept(
            &who,
            project,
            concord_domain::UserId(input.reviewer),
            input.at_ms,
        )
    })
    .await?;
    Ok(Json(json!({ "cleared": cleared })))
}
