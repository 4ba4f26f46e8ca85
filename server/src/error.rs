//! The REST API's and the browser routes' errors: what kind of error it is (as the engine
//! classified it), its HTTP status from the one mapping in [`concord_app::ssr::errors`], and
//! the message sent as `{"error": "...", "kind": "..."}`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use concord_app::ssr::errors::{blocking, http_status, internal_error};
use concord_app::ssr::throttle::Throttled;
use concord_app::wire::AppError;
use concord_domain::ErrorKind;
use concord_engine::EngineError;

/// An error answered by a route outside the Leptos app. Internal errors are logged with their
/// whole chain when they are made and carry only a reference to that log line.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub status: http::StatusCode,
    pub message: String,
    /// Seconds for `Retry-After` (a throttled sign-in attempt).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            status: http_status(kind),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A request the server cannot use: a wrong parameter, a body that does not parse.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidInput, message)
    }

    /// A body over the upload limit: invalid input, answered 413 so clients can tell a size
    /// limit (a property of this server, not of the engine) from a wrong request.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError {
            status: http::StatusCode::PAYLOAD_TOO_LARGE,
            ..ApiError::invalid(message)
        }
    }

    /// A fault on the server's side (I/O around an upload, say): logged with its chain, answered
    /// with a reference only.
    pub fn internal(error: &dyn std::error::Error) -> ApiError {
        internal_error(error).into()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::new(e.kind, e.message)
    }
}

impl From<Throttled> for ApiError {
    /// 429 with `Retry-After`: the same answer the sign-in server functions give.
    fn from(t: Throttled) -> Self {
        ApiError {
            retry_after: Some(t.retry_after_secs()),
            ..AppError::from(t).into()
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        AppError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message, "kind": self.kind })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if self.kind == ErrorKind::NotSignedIn {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
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
    Ok(blocking(move || engine.authorize(&who, project, role)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: ApiError) -> (http::StatusCode, http::HeaderMap, serde_json::Value) {
        let response = e.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .expect("error body");
        let json = serde_json::from_slice(&bytes).expect("error body is JSON");
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn each_kind_answers_its_status_with_json() {
        for kind in ErrorKind::ALL {
            let (got, headers, json) = answer(ApiError::new(kind, "what happened")).await;
            // The statuses themselves are checked where they are chosen (`http_status`).
            assert_eq!(got, http_status(kind), "{kind}");
            assert_eq!(json["error"], "what happened");
            assert_eq!(json["kind"], kind.as_str());
            // Only a missing sign-in tells the client how to authenticate.
            assert_eq!(
                headers.get(http::header::WWW_AUTHENTICATE).is_some(),
                kind == ErrorKind::NotSignedIn,
                "{kind}"
            );
        }
        let (got, _, json) = answer(ApiError::too_large("over the limit")).await;
        assert_eq!(got, http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json["kind"], "invalid_input");
    }

    #[tokio::test]
    async fn engine_errors_answer_the_status_of_their_kind() {
        let (status, headers, json) = answer(EngineError::Unauthenticated.into()).await;
        assert_eq!(status, http::StatusCode::UNAUTHORIZED);
        assert_eq!(headers[http::header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(json["kind"], "not_signed_in");
        let (status, _, json) = answer(EngineError::Forbidden.into()).await;
        assert_eq!(status, http::StatusCode::FORBIDDEN);
        assert_eq!(json["error"], EngineError::Forbidden.to_string());
    }
}
