use axum::response::{IntoResponse, Response};
use axum::Json;
use concord_engine::EngineError;

/// The REST API's one error type: a status and a message, sent as `{"error": "..."}`.
/// Internal errors are logged in full and answered with a generic message.
#[derive(Debug)]
pub struct ApiError {
    pub status: http::StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: http::StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(http::StatusCode::BAD_REQUEST, message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        if let EngineError::Internal(detail) = &e {
            tracing::error!(%detail, "request failed");
        }
        let status = http::StatusCode::from_u16(e.status())
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            message: e.public_message(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == http::StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Runs a blocking engine call on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(EngineError::Internal(format!("engine task failed: {e}")).into()),
    }
}

/// Checks the caller's role in a project on the blocking pool; used before reading a request
/// body that only that role may send.
pub async fn authorize(
    engine: &concord_engine::Engine,
    who: &concord_engine::Principal,
    project: concord_domain::ProjectId,
    role: concord_domain::Role,
) -> Result<concord_domain::Role, ApiError> {
    let (engine, who) = (engine.clone(), who.clone());
    blocking(move || engine.authorize(&who, project, role)).await
}
