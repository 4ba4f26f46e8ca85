use concord_domain::ErrorKind;
use concord_store::StoreError;

/// Every way an engine call can fail, classified by [`EngineError::kind`]. `Internal` errors
/// carry the error that caused them ([`std::error::Error::source`]), so whoever logs them can
/// print the whole chain; users never see them ([`EngineError::public_message`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("sign in required")]
    Unauthenticated,
    /// A sign-in attempt with a name and password that do not match an enabled account (one
    /// answer for every such case, so names cannot be probed).
    #[error("wrong name or password")]
    WrongCredentials,
    #[error("you do not have access to this")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("line {line}: {problem}")]
    Import { line: u64, problem: String },
    #[error("{0}")]
    Unavailable(String),
    /// A fault on our side: `context` says what was being done, `source` (when there is an
    /// underlying error, not just a broken invariant) why it failed.
    #[error("internal error: {context}")]
    Internal {
        context: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl EngineError {
    /// An internal error caused by `source`, met while doing `context`.
    pub fn internal(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> EngineError {
        EngineError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// An internal error with no underlying error to carry: a poisoned lock, a thread that
    /// stopped, a state that should not exist.
    pub fn internal_fault(context: impl Into<String>) -> EngineError {
        EngineError::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// What kind of failure this is; the server maps kinds to HTTP statuses, the UI matches
    /// on them.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Unauthenticated | EngineError::WrongCredentials => ErrorKind::NotSignedIn,
            EngineError::Forbidden => ErrorKind::Forbidden,
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Invalid(_) | EngineError::Import { .. } => ErrorKind::InvalidInput,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Unavailable(_) => ErrorKind::Unavailable,
            EngineError::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The message a user may see: internal details are replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self {
            EngineError::Internal { .. } => "internal error; see the server log".to_string(),
            e => e.to_string(),
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => EngineError::NotFound(what.to_string()),
            StoreError::Exists(what) => EngineError::Conflict(format!("{what} already exists")),
            StoreError::NoGold => EngineError::Invalid(
                "only an item with a gold label can be a gold question: resolve it first".into(),
            ),
            StoreError::NotActive(version) => EngineError::Conflict(format!(
                "model version {version} stopped being the active one meanwhile; nothing was accepted"
            )),
            e @ (StoreError::AlreadyOpen { .. } | StoreError::NewerSchema { .. }) => {
                EngineError::Unavailable(e.to_string())
            }
            e => EngineError::internal("database access", e),
        }
    }
}

impl From<concord_ml::MlError> for EngineError {
    fn from(e: concord_ml::MlError) -> Self {
        EngineError::internal("model computation", e)
    }
}

impl From<concord_domain::DomainError> for EngineError {
    fn from(e: concord_domain::DomainError) -> Self {
        EngineError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn internal_errors_keep_their_source_and_stay_private() {
        let err = EngineError::from(StoreError::Corrupt {
            table: "jobs",
            detail: "expected value at line 1".into(),
        });
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.public_message(), "internal error; see the server log");
        let source = err.source().expect("the store error is kept as the source");
        assert!(
            matches!(
                source.downcast_ref::<StoreError>(),
                Some(StoreError::Corrupt { table: "jobs", .. })
            ),
            "{source:?}"
        );

        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let err = EngineError::internal("writing weights", io);
        assert_eq!(err.to_string(), "internal error: writing weights");
        assert_eq!(
            err.source().map(|s| s.to_string()).as_deref(),
            Some("denied")
        );
        assert!(EngineError::internal_fault("lock poisoned")
            .source()
            .is_none());
    }

    #[test]
    fn import_errors_keep_their_line() {
        let err = EngineError::Import {
            line: 7,
            problem: "missing text".into(),
        };
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.public_message(), "line 7: missing text");
    }
}
