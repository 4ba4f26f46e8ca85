use concord_domain::ErrorKind;
use concord_store::StoreError;

/// Every way an engine call can fail. Each variant says what HTTP status it deserves
/// ([`EngineError::status`]); `Internal` messages are logged, never shown to users.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("sign in required")]
    Unauthenticated,
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
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// What kind of failure this is; the server maps kinds to HTTP statuses, the UI matches
    /// on them.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Unauthenticated => ErrorKind::NotSignedIn,
            EngineError::Forbidden => ErrorKind::Forbidden,
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Invalid(_) | EngineError::Import { .. } => ErrorKind::InvalidInput,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Unavailable(_) => ErrorKind::Unavailable,
            EngineError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The HTTP status code that fits this error.
    pub fn status(&self) -> u16 {
        match self {
            EngineError::Unauthenticated => 401,
            EngineError::Forbidden => 403,
            EngineError::NotFound(_) => 404,
            EngineError::Invalid(_) | EngineError::Import { .. } => 422,
            EngineError::Conflict(_) => 409,
            EngineError::Unavailable(_) => 503,
            EngineError::Internal(_) => 500,
        }
    }

    /// The message a user may see: internal details are replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self {
            EngineError::Internal(_) => "internal error; see the server log".to_string(),
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
            e @ (StoreError::AlreadyOpen { .. } | StoreError::NewerSchema { .. }) => {
                EngineError::Unavailable(e.to_string())
            }
            e => EngineError::Internal(e.to_string()),
        }
    }
}

impl From<concord_domain::DomainError> for EngineError {
    fn from(e: concord_domain::DomainError) -> Self {
        EngineError::Invalid(e.to_string())
    }
}
