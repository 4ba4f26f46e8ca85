//! Errors at the edge, shared by the server functions, page renders, the REST API and the
//! upload/download routes: the one mapping from an error's kind to an HTTP status, internal
//! errors logged with their whole chain under a reference the client sees instead of the
//! details, and the one helper that runs a blocking engine call off the async runtime.

use concord_domain::ErrorKind;
use concord_engine::EngineError;
use leptos::prelude::use_context;

use crate::wire::AppError;

/// The HTTP status for an error of this kind. The engine classifies errors and knows no HTTP;
/// this is the only place a kind becomes a status.
pub fn http_status(kind: ErrorKind) -> http::StatusCode {
    match kind {
        ErrorKind::NotSignedIn => http::StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => http::StatusCode::FORBIDDEN,
        ErrorKind::NotFound => http::StatusCode::NOT_FOUND,
        ErrorKind::InvalidInput => http::StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Conflict => http::StatusCode::CONFLICT,
        ErrorKind::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::TooManyRequests => http::StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Internal => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error's message followed by each of its sources, `outer: inner: innermost`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers that print their source inline (`"… : {0}"`) would repeat it.
        if !chain.ends_with(&cause_text) {
            chain.push_str(": ");
            chain.push_str(&cause_text);
        }
        source = cause.source();
    }
    chain
}

/// Logs a fault on the server's side with its whole source chain under a short random
/// reference, and returns what the client may see: the reference, never the details (paths,
/// database errors and the like stay in the log).
pub fn internal_error(error: &dyn std::error::Error) -> AppError {
    let reference = format!("{:08x}", rand::random::<u32>());
    tracing::error!(reference = %reference, error = %error_chain(error), "internal error");
    AppError::new(
        ErrorKind::Internal,
        format!("internal error (ref {reference}); see the server log"),
    )
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> AppError {
        match e.kind() {
            ErrorKind::Internal => internal_error(&e),
            kind => AppError::new(kind, e.public_message()),
        }
    }
}

/// Turns an error into the one a server function returns. Inside a server function call or a
/// page render the response's status follows the error's kind; elsewhere (the REST API, which
/// answers with the same mapping through its own error type) there is no Leptos response and
/// nothing is set.
pub fn fail(e: impl Into<AppError>) -> AppError {
    let e = e.into();
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http_status(e.kind));
    }
    e
}

/// Runs a blocking engine call (redb, argon2) on the blocking pool; every route and server
/// function goes through here, so every engine error reaches the client the same way.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, AppError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(fail),
        // The call panicked or the runtime is shutting down.
        Err(e) => Err(fail(internal_error(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the upload could not be written to /srv/concord/data")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_kind_has_its_status() {
        let expected = [
            (ErrorKind::NotSignedIn, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::InvalidInput, 422),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::TooManyRequests, 429),
            (ErrorKind::Internal, 500),
        ];
        for (kind, status) in expected {
            assert_eq!(http_status(kind).as_u16(), status, "{kind}");
        }
    }

    #[test]
    fn the_chain_names_every_source_once() {
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory",
        ));
        assert_eq!(
            error_chain(&e),
            "the upload could not be written to /srv/concord/data: No such file or directory"
        );
    }

    #[test]
    fn internal_errors_reach_the_client_as_a_reference_only() {
        let e = Outer(std::io::Error::other("disk on fire"));
        let public = internal_error(&e);
        assert_eq!(public.kind, ErrorKind::Internal);
        assert!(
            !public.message.contains("disk on fire"),
            "{}",
            public.message
        );
        assert!(!public.message.contains("/srv"), "{}", public.message);
        let reference = public
            .message
            .strip_prefix("internal error (ref ")
            .and_then(|rest| rest.split_once(')'))
            .map(|(reference, _)| reference)
            .unwrap_or_default();
        assert_eq!(reference.len(), 8, "{}", public.message);
        assert!(reference.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn engine_errors_keep_their_kind_and_message() {
        let e = AppError::from(EngineError::Forbidden);
        assert_eq!(
            e,
            AppError::new(ErrorKind::Forbidden, EngineError::Forbidden.to_string())
        );
        let e = AppError::from(EngineError::Unauthenticated);
        assert_eq!(e.kind, ErrorKind::NotSignedIn);
    }
}
