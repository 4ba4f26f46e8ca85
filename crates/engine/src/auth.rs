//! Accounts, passwords (argon2id), browser sessions and API tokens. Secrets are random
//! 32-byte values handed out once; the store keeps only their SHA-256.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use concord_domain::UserId;
use concord_store::{SessionRecord, TokenRecord, UserRecord};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{now_ms, Engine, EngineError};

/// How long a browser session lasts.
pub const SESSION_TTL_MS: u64 = 14 * 24 * 3600 * 1000;
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

/// Who is acting. Obtained only from a valid session or token, or from the local CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: UserId,
    pub name: String,
    pub is_admin: bool,
}

impl Principal {
    /// The operator at the local command line (or the server seeding its demo project): whoever
    /// can open the data directory already owns all its data. Never built from an HTTP request.
    pub fn local() -> Principal {
        Principal {
            id: UserId(0),
            name: "local".into(),
            is_admin: true,
        }
    }
}

fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn validate_user_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(
            "user names are 1–64 characters: letters, digits, '.', '_', '-', '@'".into(),
        ))
    }
}

fn hash_password(password: &str) -> Result<String, EngineError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(EngineError::Invalid(format!(
            "passwords need at least {MIN_PASSWORD} characters"
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(EngineError::Invalid(format!(
            "passwords are at most {MAX_PASSWORD} bytes"
        )));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // argon2's error implements std::error::Error only with a feature we do not build, so
        // its message stands in as the source.
        .map_err(|e| EngineError::internal("password hashing", e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

impl Engine {
    /// True until an administrator account exists; the server then offers one-time setup.
    /// Accounts without admin rights (the demo project's annotators) do not end it: someone
    /// must still be able to manage the server.
    pub fn needs_setup(&self) -> Result<bool, EngineError> {
        Ok(!self.store().users()?.iter().any(|(_, u)| u.is_admin))
    }

    /// Creates the first administrator. Refused once an administrator exists, so the setup
    /// path cannot be replayed.
    pub fn bootstrap_admin(&self, name: &str, password: &str) -> Result<Principal, EngineError> {
        if !self.needs_setup()? {
            return Err(EngineError::Conflict(
                "Concord is already set up; sign in instead".into(),
            ));
        }
        self.insert_user(name, password, true)
    }

    /// An admin creates an account.
    pub fn create_user(
        &self,
        actor: &Principal,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<Principal, EngineError> {
        self.require_admin(actor)?;
        self.insert_user(name, password, is_admin)
    }

    /// Creates an account from the local command line (whoever can open the data directory
    /// is trusted, like a database superuser).
    pub fn create_user_locally(
        &self,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<Principal, EngineError> {
        self.insert_user(name, password, is_admin)
    }

    fn insert_user(
        &self,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<Principal, EngineError> {
        validate_user_name(name)?;
        let record = UserRecord {
            name: name.to_string(),
            password_hash: hash_password(password)?,
            is_admin,
            created_ms: now_ms(),
            disabled: false,
        };
        let id = self.store().create_user(&record)?;
        tracing::info!(user = name, admin = is_admin, "account created");
        Ok(Principal {
            id,
            name: name.to_string(),
            is_admin,
        })
    }

    /// Checks a name and password; returns a new session secret for the cookie.
    pub fn login(&self, name: &str, password: &str) -> Result<(Principal, String), EngineError> {
        let found = self.store().user_by_name(name)?;
        let Some((id, user)) = found.filter(|(_, u)| !u.disabled) else {
            // Same work and answer as a wrong password, so names cannot be probed.
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let dummy =
                DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default());
            verify_password(password, dummy);
            return Err(EngineError::Unauthenticated);
        };
        if !verify_password(password, &user.password_hash) {
            return Err(EngineError::Unauthenticated);
        }
        let secret = new_secret();
        let now = now_ms();
        self.store().put_session(
            &secret_hash(&secret),
            &SessionRecord {
                user: id,
                created_ms: now,
                expires_ms: now + SESSION_TTL_MS,
            },
        )?;
        Ok((
            Principal {
                id,
                name: user.name,
                is_admin: user.is_admin,
            },
            secret,
        ))
    }

    /// The principal behind a session secret, if the session is valid.
    pub fn session_principal(&self, secret: &str) -> Result<Option<Principal>, EngineError> {
        let Some(session) = self.store().session(&secret_hash(secret))? else {
            return Ok(None);
        };
        if session.expires_ms <= now_ms() {
            return Ok(None);
        }
        self.active_principal(session.user)
    }

    pub fn logout(&self, secret: &str) -> Result<(), EngineError> {
        Ok(self.store().delete_session(&secret_hash(secret))?)
    }

    /// Creates an API token for `user` (the user themself or an admin may); returns the secret,
    /// shown once.
    pub fn create_api_token(
        &self,
        actor: &Principal,
        user: UserId,
        name: &str,
    ) -> Result<String, EngineError> {
        if actor.id != user && !actor.is_admin {
            return Err(EngineError::Forbidden);
        }
        self.create_api_token_locally(user, name)
    }

    pub fn create_api_token_locally(
        &self,
        user: UserId,
        name: &str,
    ) -> Result<String, EngineError> {
        if self.store().user(user)?.is_none() {
            return Err(EngineError::NotFound("user".into()));
        }
        let secret = format!("cct_{}", new_secret());
        self.store().put_token(
            &secret_hash(&secret),
            &TokenRecord {
                user,
                name: name.to_string(),
                created_ms: now_ms(),
            },
        )?;
        Ok(secret)
    }

    /// The principal behind an API token.
    pub fn token_principal(&self, secret: &str) -> Result<Option<Principal>, EngineError> {
        let Some(token) = self.store().token(&secret_hash(secret))? else {
            return Ok(None);
        };
        self.active_principal(token.user)
    }

    fn active_principal(&self, id: UserId) -> Result<Option<Principal>, EngineError> {
        Ok(self
            .store()
            .user(id)?
            .filter(|u| !u.disabled)
            .map(|u| Principal {
                id,
                name: u.name,
                is_admin: u.is_admin,
            }))
    }

    /// Looks an account up by name (for the CLI).
    pub fn principal_by_name(&self, name: &str) -> Result<Principal, EngineError> {
        match self.store().user_by_name(name)? {
            Some((id, u)) => Ok(Principal {
                id,
                name: u.name,
                is_admin: u.is_admin,
            }),
            None => Err(EngineError::NotFound(format!("user {name:?}"))),
        }
    }
}
