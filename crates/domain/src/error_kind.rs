//! What kind of failure an operation met, shared by the engine, the server and the browser:
//! the server maps a kind to an HTTP status in one place, and the UI decides what to do
//! (send the visitor to sign in, show a message) by matching on the kind, never on text.

use serde::{Deserialize, Serialize};

/// The kind of an error, as the engine classifies it and the wire carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No valid session or token: the caller must sign in.
    NotSignedIn,
    /// Signed in, but without the role this needs.
    Forbidden,
    /// The named thing does not exist (or the caller may not know it exists).
    NotFound,
    /// The request itself is wrong; the message says what and where.
    InvalidInput,
    /// The request clashes with what is stored (a name taken, a state that forbids it).
    Conflict,
    /// A resource the operation needs cannot be used now (no model, database held elsewhere).
    Unavailable,
    /// Too many attempts in a short time (signing in); the answer says when to try again.
    TooManyRequests,
    /// A fault on the server's side; the client sees only a reference to the logged details.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order: for tests that check a mapping for each of them.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::NotSignedIn,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::InvalidInput,
        ErrorKind::Conflict,
        ErrorKind::Unavailable,
        ErrorKind::TooManyRequests,
        ErrorKind::Internal,
    ];

    /// A stable name, the same as the serialized form.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotSignedIn => "not_signed_in",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::TooManyRequests => "too_many_requests",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn all_lists_every_kind_once_in_declaration_order() {
        for (at, kind) in ErrorKind::ALL.into_iter().enumerate() {
            // No wildcard: a new kind does not compile here until it has its place in `ALL`.
            let declared = match kind {
                ErrorKind::NotSignedIn => 0,
                ErrorKind::Forbidden => 1,
                ErrorKind::NotFound => 2,
                ErrorKind::InvalidInput => 3,
                ErrorKind::Conflict => 4,
                ErrorKind::Unavailable => 5,
                ErrorKind::TooManyRequests => 6,
                ErrorKind::Internal => 7,
            };
            assert_eq!(declared, at, "{kind}");
        }
    }
}
