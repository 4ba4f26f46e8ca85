//! Browser routes outside the Leptos app: the multipart import form and export downloads,
//! authenticated by the session cookie.

use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use concord_app::ssr::errors::blocking;
use concord_app::ssr::{cookie_value, session_cookie_name};
use concord_domain::{ErrorKind, ProjectId, Role};
use concord_engine::{ExportFormat, ImportFormat, ImportOptions, ImportedLabels, Principal};

use crate::error::{authorize, ApiError};
use crate::AppState;

async fn session_principal(
    state: &AppState,
    headers: &http::HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(secret) = cookie_value(headers, session_cookie_name(state.ctx.secure_cookies)) else {
        return Ok(None);
    };
    let engine = state.engine().clone();
    Ok(blocking(move || engine.session_principal(&secret)).await?)
}

/// The session's user for a download route, or the response to send instead: the sign-in page
/// without a session, the error when the session cannot be checked.
async fn signed_in(state: &AppState, headers: &http::HeaderMap) -> Result<Principal, Response> {
    match session_principal(state, headers).await {
        Ok(Some(who)) => Ok(who),
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(e.into_response()),
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `POST /projects/{id}/import` (multipart: `file`, `format`, `text_field`, `skip_duplicates`,
/// `labels_as` and `labels_name`). Redirects back to the project page with the outcome in the
/// query.
pub async fn import(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    headers: http::HeaderMap,
    mut form: Multipart,
) -> Response {
    let Ok(Some(who)) = session_principal(&state, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    let project = ProjectId(id);
    let back = |query: String| Redirect::to(&format!("/projects/{id}?{query}")).into_response();
    let engine = state.engine().clone();
    // Check the role before reading a possibly large body.
    let check = authorize(&engine, &who, project, Role::Admin).await;
    if let Err(e) = check {
        return e.into_response();
    }
    let mut file = None;
    let mut file_name = String::new();
    let mut format = String::from("auto");
    let mut options = ImportOptions::default();
    let (mut labels_as, mut labels_name) = (None::<String>, None::<String>);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return back(format!(
                    "import_error={}",
                    encode(&format!("upload failed: {e}"))
                ))
            }
        };
        match field.name().unwrap_or("") {
            "file" => {
                file_name = field.file_name().unwrap_or("").to_string();
                match crate::upload::spool(field, engine.data_dir(), state.max_upload_bytes).await {
                    Ok(f) => file = Some(f),
                    Err(e) => return back(format!("import_error={}", encode(&e.message))),
                }
            }
            name => {
                let name = name.to_string();
                let value = match crate::upload::bounded_text(
                    field,
                    &name,
                    crate::upload::MAX_FORM_FIELD_BYTES,
                )
                .await
                {
                    Ok(value) => value,
                    Err(e) => return back(format!("import_error={}", encode(&e.message))),
                };
                match name.as_str() {
                    "format" => format = value,
                    "text_field" if !value.trim().is_empty() => {
                        options.text_field = value.trim().to_string()
                    }
                    "skip_duplicates" => options.skip_duplicates = value == "true" || value == "on",
                    "labels_as" => labels_as = Some(value),
                    "labels_name" => labels_name = Some(value),
                    _ => {}
                }
            }
        }
    }
    let Some(file) = file else {
        return back(format!("import_error={}", encode("no file was uploaded")));
    };
    options.labels_as =
        match ImportedLabels::from_parts(labels_as.as_deref(), labels_name.as_deref()) {
            Ok(labels_as) => labels_as,
            Err(e) => return back(format!("import_error={}", encode(&e))),
        };
    options.format = match format.as_str() {
        "auto" => match ImportFormat::from_file_name(&file_name) {
            // A `.json` file holding an array is Label Studio's (a JSONL line is an object).
            Some(ImportFormat::Jsonl) if starts_with_array(&file) => ImportFormat::LabelStudio,
            Some(format) => format,
            None => ImportFormat::Text,
        },
        f => match ImportFormat::parse(f) {
            Some(f) => f,
            None => {
                return back(format!(
                    "import_error={}",
                    encode(&format!("unknown format {f:?}"))
                ))
            }
        },
    };
    let reader = match crate::upload::reopen(&file) {
        Ok(reader) => reader,
        Err(e) => return back(format!("import_error={}", encode(&e.message))),
    };
    let result = blocking(move || {
        // Dropping `file` deletes it: keep it until the import has read it.
        let _spooled = file;
        engine.import(&who, project, reader, &options, &mut |_| {})
    })
    .await;
    match result {
        Ok(r) => {
            let mut query = format!(
                "imported={}&duplicates={}&skipped={}",
                r.imported, r.duplicates, r.skipped_duplicates
            );
            // Only when the import made suggestions: earlier reports keep their exact query.
            if let Some(version) = r.model_version {
                query.push_str(&format!(
                    "&suggestions={}&unscored={}&model_version={version}",
                    r.suggestions, r.suggestions_without_score
                ));
            }
            back(query)
        }
        Err(e) => back(format!("import_error={}", encode(&e.message))),
    }
}

/// Whether the spooled upload's first character (past a byte order mark and whitespace) is
/// `[`.
fn starts_with_array(file: &tempfile::NamedTempFile) -> bool {
    use std::io::Read;
    let mut head = [0u8; 256];
    let Ok(mut reader) = file.reopen() else {
        return false;
    };
    let n = reader.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

#[derive(serde::Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
}

/// `GET /projects/{id}/export?format=jsonl|csv|conll|prodigy|label-studio|doccano`: a download for
/// signed-in reviewers and admins.
pub async fn export(
    State(state): State<AppState>,
    Path(id): Path<u64>,
    Query(q): Query<ExportQuery>,
    headers: http::HeaderMap,
) -> Response {
    let who = match signed_in(&state, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    let format = match q.format.as_deref().map(ExportFormat::parse) {
        None => ExportFormat::Jsonl,
        Some(Some(f)) => f,
        Some(None) => {
            return ApiError::invalid(
                "format must be jsonl, csv, conll, prodigy, label-studio or doccano",
            )
            .into_response()
        }
    };
    let engine = state.engine().clone();
    let project = ProjectId(id);
    let check = authorize(&engine, &who, project, Role::Reviewer).await;
    if let Err(e) = check {
        return e.into_response();
    }
    if let Err(e) = crate::upload::check_export_format(&engine, &who, project, format).await {
        return e.into_response();
    }
    crate::upload::export_response(engine, who, project, format)
}

#[derive(serde::Deserialize)]
pub struct ConfusionQuery {
    a: Option<String>,
    b: Option<String>,
}

/// `GET /projects/{id}/agreement/{table}.csv`: the data behind each dashboard chart
/// (`coefficients`, `labels`, `pairs`, `annotators`, `days`, and `confusion?a=&b=`), for
/// signed-in reviewers and admins.
pub async fn agreement_csv(
    State(state): State<AppState>,
    Path((id, file)): Path<(u64, String)>,
    Query(q): Query<ConfusionQuery>,
    headers: http::HeaderMap,
) -> Response {
    let who = match signed_in(&state, &headers).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    let Some(name) = file.strip_suffix(".csv") else {
        return ApiError::new(ErrorKind::NotFound, "no such table").into_response();
    };
    let project = ProjectId(id);
    let engine = state.engine().clone();
    let body = if name == "confusion" {
        let (Some(a), Some(b)) = (q.a, q.b) else {
            return ApiError::invalid("name two annotators: ?a=NAME&b=NAME").into_response();
        };
        blocking(move || engine.rater_confusion(&who, project, &a, &b)?.csv()).await
    } else {
        let Some(table) = concord_engine::AgreementTable::parse(name) else {
            return ApiError::new(ErrorKind::NotFound, "no such table").into_response();
        };
        blocking(move || engine.agreement(&who, project)?.csv(table)).await
    };
    match body {
        Ok(csv) => (
            [
                (
                    http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_string(),
                ),
                (
                    http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"project-{id}-{name}.csv\""),
                ),
            ],
            csv,
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
