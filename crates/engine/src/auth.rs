//! Accounts, passwords (argon2id), browser sessions and API tokens. Secrets are random
//! 32-byte values handed out once; the store keeps only their SHA-256.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::Argon2;
use std::sync::Mutex;
use std::time::Duration;

use concord_domain::UserId;
use concord_store::{SessionRecord, TokenRecord, UserRecord};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{now_ms, Engine, EngineError};

/// How long a browser session lasts at most.
pub const SESSION_TTL_MS: u64 = 14 * 24 * 3600 * 1000;
/// A session unused for this long stops working (the default of [`CredentialPolicy`]).
pub const SESSION_IDLE_MS: u64 = 12 * 3600 * 1000;
/// How long the setup token printed at start stays valid (the default of
/// [`CredentialPolicy`]); a restart arms a new one.
pub const SETUP_TOKEN_TTL_MS: u64 = 3600 * 1000;
/// A session's last-seen time and a token's last use are written at most this often, so that
/// reading pages does not turn every request into a database write.
const TOUCH_INTERVAL_MS: u64 = 60 * 1000;
/// How often the background purge removes expired sessions and tokens.
const PURGE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How often the purge thread wakes to see whether the engine is still open.
const PURGE_POLL: Duration = Duration::from_secs(30);
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

/// The time limits on credentials; [`Engine::set_credential_policy`] changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialPolicy {
    /// A session unused for this long stops working.
    pub session_idle_ms: u64,
    /// The setup token stops working this long after it was armed.
    pub setup_token_ttl_ms: u64,
}

impl Default for CredentialPolicy {
    fn default() -> Self {
        CredentialPolicy {
            session_idle_ms: SESSION_IDLE_MS,
            setup_token_ttl_ms: SETUP_TOKEN_TTL_MS,
        }
    }
}

/// The engine's in-memory credential state: the policy and the armed setup token (only its
/// hash, like every other secret).
#[derive(Default)]
pub(crate) struct CredentialState {
    policy: Mutex<CredentialPolicy>,
    setup: Mutex<Option<ArmedSetup>>,
}

struct ArmedSetup {
    hash: [u8; 32],
    armed_ms: u64,
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Names the token for revoking: the first 8 bytes of its secret's SHA-256, in hex (which
    /// tells nothing about the secret).
    pub id: String,
    pub user: UserId,
    pub user_name: String,
    pub name: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub expires_ms: Option<u64>,
}

/// What signing out everywhere (or a purge) removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CredentialsRemoved {
    pub sessions: u64,
    pub tokens: u64,
}

fn token_id(hash: &[u8; 32]) -> String {
    hex::encode(&hash[..8])
}

/// The id a token secret is listed and revoked under (see [`TokenInfo::id`]).
pub fn api_token_id(secret: &str) -> String {
    token_id(&secret_hash(secret))
}

/// A poisoned lock only means another thread panicked while holding it; the values inside
/// (a policy, an optional hash) are always whole, so the state is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the thread that purges expired sessions and tokens every [`PURGE_INTERVAL`]. It
/// holds the engine only while purging, so dropping the last handle still closes the database;
/// it then exits at its next poll.
pub(crate) fn start_purger(engine: &Engine) -> Result<(), EngineError> {
    let weak = std::sync::Arc::downgrade(&engine.inner);
    std::thread::Builder::new()
        .name("concord-purge".into())
        .spawn(move || {
            let mut since_purge = Duration::ZERO;
            loop {
                std::thread::sleep(PURGE_POLL);
                since_purge += PURGE_POLL;
                let Some(inner) = weak.upgrade() else { break };
                if since_purge >= PURGE_INTERVAL {
                    since_purge = Duration::ZERO;
                    if let Err(e) = (Engine { inner }).purge_expired_credentials() {
                        tracing::warn!(error = %e, "purging expired sessions and tokens failed");
                    }
                }
            }
        })
        .map_err(|e| EngineError::internal("starting the credential purge", e))?;
    Ok(())
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
    let argon2 = Argon2::default();
    let params = argon2.params().clone();
    let mut permit = HashingPermits::global().acquire();
    let hashed = (|| {
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
        let output_len = params
            .output_len()
            .unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN);
        let output = argon2::password_hash::Output::init_with(output_len, |out| {
            Ok(argon2.hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                out,
                permit.memory(params.block_count()),
            )?)
        })?;
        Ok::<_, argon2::password_hash::Error>(
            PasswordHash {
                algorithm: argon2::Algorithm::Argon2id.ident(),
                version: Some(argon2::Version::V0x13.into()),
                params: argon2::password_hash::ParamsString::try_from(&params)?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            }
            .to_string(),
        )
    })();
    // argon2's error implements std::error::Error only with a feature we do not build, so
    // its message stands in as the source.
    hashed.map_err(|e| EngineError::internal("password hashing", e.to_string()))
}

/// The argon2 work of the whole process is bounded: at most one computation per core (and at
/// most [`MAX_HASHING_PERMITS`]) at a time, each in a memory buffer kept with its permit and
/// reused, never allocated per attempt. Each computation fills 19 MiB (argon2id's default
/// memory cost); allocating that per attempt let a flood of sign-ins run one per blocking
/// thread, and even bounded, the allocator kept the freed buffers of every thread (measured:
/// 3.3 GiB after 200 attempts). Callers beyond the bound wait here, holding only their thread.
struct HashingPermits {
    /// Buffers not in use, and how many more may still be made.
    pool: Mutex<(Vec<Vec<argon2::Block>>, usize)>,
    released: std::sync::Condvar,
}

/// More parallel hashing than this buys no sign-in throughput worth its memory.
const MAX_HASHING_PERMITS: usize = 8;

/// A permit and its buffer; gives both back when dropped.
struct HashingPermit<'a> {
    permits: &'a HashingPermits,
    memory: Vec<argon2::Block>,
}

impl HashingPermits {
    fn global() -> &'static HashingPermits {
        static PERMITS: std::sync::OnceLock<HashingPermits> = std::sync::OnceLock::new();
        PERMITS.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            HashingPermits {
                pool: Mutex::new((Vec::new(), cores.min(MAX_HASHING_PERMITS))),
                released: std::sync::Condvar::new(),
            }
        })
    }

    fn acquire(&self) -> HashingPermit<'_> {
        // The pool stays consistent even if a holder panicked (a permit's drop only pushes its
        // buffer back), so a poisoned lock is used as is.
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(memory) = pool.0.pop() {
                return HashingPermit {
                    permits: self,
                    memory,
                };
            }
            if pool.1 > 0 {
                pool.1 -= 1;
                return HashingPermit {
                    permits: self,
                    memory: Vec::new(),
                };
            }
            pool = self.released.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl HashingPermit<'_> {
    /// The first `blocks` blocks of this permit's buffer, grown if a stored hash asks for more
    /// memory than the buffer has.
    fn memory(&mut self, blocks: usize) -> &mut [argon2::Block] {
        if self.memory.len() < blocks {
            self.memory.resize(blocks, argon2::Block::default());
        }
        &mut self.memory[..blocks]
    }
}

impl Drop for HashingPermit<'_> {
    fn drop(&mut self) {
        let memory = std::mem::take(&mut self.memory);
        let mut pool = self.permits.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.0.push(memory);
        self.permits.released.notify_one();
    }
}

/// Whether `password` matches the stored PHC string `phc` (any argon2 variant, version and
/// cost it names), computed in a pooled buffer; the comparison is constant-time.
fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(params), Ok(algorithm), Some(salt), Some(expected)) = (
        argon2::Params::try_from(&hash),
        argon2::Algorithm::try_from(hash.algorithm),
        hash.salt,
        hash.hash,
    ) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map(argon2::Version::try_from)
        .transpose()
        .map(Option::unwrap_or_default)
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    let mut permit = HashingPermits::global().acquire();
    argon2
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt_bytes,
            &mut out,
            permit.memory(params.block_count()),
        )
        .is_ok()
        // `Output`'s equality is constant-time.
        && argon2::password_hash::Output::new(&out).is_ok_and(|computed| computed == expected)
}

impl Engine {
    /// True until an administrator account exists; the server then offers one-time setup.
    /// Accounts without admin rights (the demo project's annotators) do not end it: someone
    /// must still be able to manage the server.
    pub fn needs_setup(&self) -> Result<bool, EngineError> {
        Ok(!self.store().has_admin()?)
    }

    /// Creates the first administrator. Refused once an administrator exists, so the setup
    /// path cannot be replayed.
    pub fn bootstrap_admin(&self, name: &str, password: &str) -> Result<Principal, EngineError> {
        if !self.needs_setup()? {
            return Err(already_set_up());
        }
        validate_user_name(name)?;
        let record = UserRecord {
            name: name.to_string(),
            password_hash: hash_password(password)?,
            is_admin: true,
            created_ms: now_ms(),
            disabled: false,
        };
        // The check above only spares the hashing; this one, in the insert's transaction, is
        // what keeps two concurrent setups from both creating an admin.
        let Some(id) = self.store().create_first_admin(&record)? else {
            return Err(already_set_up());
        };
        tracing::info!(user = name, "first administrator created");
        Ok(Principal {
            id,
            name: name.to_string(),
            is_admin: true,
        })
    }

    /// Arms a new setup token while no administrator exists (at every start); returns it, to be
    /// shown to the operator. It replaces any earlier one and expires after
    /// [`CredentialPolicy::setup_token_ttl_ms`].
    pub fn arm_setup(&self) -> Result<Option<String>, EngineError> {
        if !self.needs_setup()? {
            return Ok(None);
        }
        let token = new_secret();
        *lock(&self.inner.credentials.setup) = Some(ArmedSetup {
            hash: secret_hash(&token),
            armed_ms: now_ms(),
        });
        Ok(Some(token))
    }

    /// Creates the first administrator with the armed setup token. The token is compared in
    /// constant time and refused once expired; it is used up by the first success.
    pub fn setup_admin(
        &self,
        token: &str,
        name: &str,
        password: &str,
    ) -> Result<Principal, EngineError> {
        let ttl = self.credential_policy().setup_token_ttl_ms;
        let valid = {
            let armed = lock(&self.inner.credentials.setup);
            armed.as_ref().is_some_and(|a| {
                let matches: bool = a.hash.ct_eq(&secret_hash(token)).into();
                matches && now_ms().saturating_sub(a.armed_ms) < ttl
            })
        };
        if !valid {
            return Err(EngineError::Forbidden);
        }
        let admin = self.bootstrap_admin(name, password)?;
        lock(&self.inner.credentials.setup).take();
        Ok(admin)
    }

    /// The time limits in force.
    pub fn credential_policy(&self) -> CredentialPolicy {
        *lock(&self.inner.credentials.policy)
    }

    /// Changes the time limits (from the server's configuration, or shorter in tests).
    pub fn set_credential_policy(&self, policy: CredentialPolicy) {
        *lock(&self.inner.credentials.policy) = policy;
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
            return Err(EngineError::WrongCredentials);
        };
        if !verify_password(password, &user.password_hash) {
            return Err(EngineError::WrongCredentials);
        }
        let secret = new_secret();
        let now = now_ms();
        self.store().put_session(
            &secret_hash(&secret),
            &SessionRecord {
                user: id,
                created_ms: now,
                expires_ms: now + SESSION_TTL_MS,
                last_seen_ms: now,
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
    /// A session stops working at its end or when unused for the idle timeout; each use
    /// refreshes its last-seen time, at most once per [`TOUCH_INTERVAL_MS`] (or half the idle
    /// timeout, when that is shorter, so that a session in use never lapses).
    pub fn session_principal(&self, secret: &str) -> Result<Option<Principal>, EngineError> {
        let hash = secret_hash(secret);
        let Some(session) = self.store().session(&hash)? else {
            return Ok(None);
        };
        let now = now_ms();
        let idle_ms = self.credential_policy().session_idle_ms;
        let last_seen = session.last_seen_ms.max(session.created_ms);
        if session.expires_ms <= now || now.saturating_sub(last_seen) >= idle_ms {
            return Ok(None);
        }
        let Some(principal) = self.active_principal(session.user)? else {
            return Ok(None);
        };
        if now.saturating_sub(last_seen) >= TOUCH_INTERVAL_MS.min(idle_ms / 2) {
            self.store().touch_session(&hash, now)?;
        }
        Ok(Some(principal))
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

    /// Creates an API token that stops working after `lifetime` (never, with `None`).
    pub fn create_expiring_api_token(
        &self,
        actor: &Principal,
        user: UserId,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, EngineError> {
        if actor.id != user && !actor.is_admin {
            return Err(EngineError::Forbidden);
        }
        self.insert_api_token(user, name, lifetime)
    }

    pub fn create_api_token_locally(
        &self,
        user: UserId,
        name: &str,
    ) -> Result<String, EngineError> {
        self.insert_api_token(user, name, None)
    }

    /// Creates an API token from the local command line, optionally expiring.
    pub fn create_expiring_api_token_locally(
        &self,
        user: UserId,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, EngineError> {
        self.insert_api_token(user, name, lifetime)
    }

    fn insert_api_token(
        &self,
        user: UserId,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, EngineError> {
        if self.store().user(user)?.is_none() {
            return Err(EngineError::NotFound("user".into()));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(EngineError::Invalid(
                "a token's name is 1–100 characters: say what it is for".into(),
            ));
        }
        let now = now_ms();
        let expires_ms = match lifetime {
            Some(d) if d.is_zero() => {
                return Err(EngineError::Invalid(
                    "a token's lifetime must be positive".into(),
                ))
            }
            Some(d) => Some(now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
            None => None,
        };
        let secret = format!("cct_{}", new_secret());
        self.store().put_token(
            &secret_hash(&secret),
            &TokenRecord {
                user,
                name: name.to_string(),
                created_ms: now,
                expires_ms,
                last_used_ms: None,
            },
        )?;
        Ok(secret)
    }

    /// The principal behind an API token, unless it expired or its user is disabled. Each use
    /// is recorded, at most once per [`TOUCH_INTERVAL_MS`].
    pub fn token_principal(&self, secret: &str) -> Result<Option<Principal>, EngineError> {
        let hash = secret_hash(secret);
        let Some(token) = self.store().token(&hash)? else {
            return Ok(None);
        };
        let now = now_ms();
        if token.expires_ms.is_some_and(|end| end <= now) {
            return Ok(None);
        }
        let Some(principal) = self.active_principal(token.user)? else {
            return Ok(None);
        };
        if token
            .last_used_ms
            .is_none_or(|t| now.saturating_sub(t) >= TOUCH_INTERVAL_MS)
        {
            self.store().touch_token(&hash, now)?;
        }
        Ok(Some(principal))
    }

    /// API tokens, newest first: `user`'s (themself or an admin), or with `None` the caller's
    /// own, or every user's when the caller is an admin.
    pub fn api_tokens(
        &self,
        actor: &Principal,
        user: Option<UserId>,
    ) -> Result<Vec<TokenInfo>, EngineError> {
        let owner = match user {
            Some(u) if u != actor.id && !actor.is_admin => return Err(EngineError::Forbidden),
            Some(u) => Some(u),
            None if actor.is_admin => None,
            None => Some(actor.id),
        };
        let names: std::collections::HashMap<UserId, String> = self
            .store()
            .users()?
            .into_iter()
            .map(|(id, u)| (id, u.name))
            .collect();
        let mut list: Vec<TokenInfo> = self
            .store()
            .tokens()?
            .into_iter()
            .filter(|(_, t)| owner.is_none_or(|o| t.user == o))
            .map(|(hash, t)| TokenInfo {
                id: token_id(&hash),
                user: t.user,
                user_name: names.get(&t.user).cloned().unwrap_or_default(),
                name: t.name,
                created_ms: t.created_ms,
                last_used_ms: t.last_used_ms,
                expires_ms: t.expires_ms,
            })
            .collect();
        list.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    /// Revokes the API token with this id (see [`TokenInfo::id`]): the caller's own, or any as
    /// an admin. Someone else's token answers `NotFound`, like one that does not exist, so ids
    /// cannot be probed.
    pub fn revoke_api_token(&self, actor: &Principal, id: &str) -> Result<(), EngineError> {
        let found = self
            .store()
            .tokens()?
            .into_iter()
            .find(|(hash, t)| token_id(hash) == id && (actor.is_admin || t.user == actor.id));
        let Some((hash, token)) = found else {
            return Err(EngineError::NotFound(format!("API token {id:?}")));
        };
        self.store().delete_token(&hash)?;
        tracing::info!(token = id, user = token.user.0, by = %actor.name, "API token revoked");
        Ok(())
    }

    /// Disables or enables an account (admins only; nobody disables themself, so an admin
    /// cannot lock the last way in). Disabling ends the user's sessions at once; their API
    /// tokens stop working while the account stays disabled.
    pub fn set_user_disabled(
        &self,
        actor: &Principal,
        name: &str,
        disabled: bool,
    ) -> Result<(), EngineError> {
        self.require_admin(actor)?;
        let target = self.principal_by_name(name)?;
        if disabled && target.id == actor.id {
            return Err(EngineError::Invalid(
                "you cannot disable your own account".into(),
            ));
        }
        self.set_user_disabled_locally(name, disabled)
    }

    /// Disables or enables an account from the local command line.
    pub fn set_user_disabled_locally(&self, name: &str, disabled: bool) -> Result<(), EngineError> {
        let target = self.principal_by_name(name)?;
        self.store().set_user_disabled(target.id, disabled)?;
        tracing::info!(user = name, disabled, "account disabled flag set");
        Ok(())
    }

    /// Changes a password. Users change their own by giving the current one; an admin may set
    /// another user's without it. The user's sessions end, except `keep_session` (the one the
    /// change was made from), so a stolen session does not survive the change.
    pub fn change_password(
        &self,
        actor: &Principal,
        user: UserId,
        current: Option<&str>,
        new_password: &str,
        keep_session: Option<&str>,
    ) -> Result<(), EngineError> {
        let Some(record) = self.store().user(user)? else {
            return Err(if actor.is_admin {
                EngineError::NotFound("user".into())
            } else {
                EngineError::Forbidden
            });
        };
        if actor.id == user {
            if !current.is_some_and(|c| verify_password(c, &record.password_hash)) {
                return Err(EngineError::Invalid(
                    "the current password is not right".into(),
                ));
            }
        } else if !actor.is_admin {
            return Err(EngineError::Forbidden);
        }
        let password_hash = hash_password(new_password)?;
        let keep = keep_session.map(secret_hash);
        self.store()
            .set_password_hash(user, &password_hash, keep.as_ref())?;
        tracing::info!(user = %record.name, by = %actor.name, "password changed");
        Ok(())
    }

    /// Sets a password from the local command line.
    pub fn set_password_locally(&self, name: &str, new_password: &str) -> Result<(), EngineError> {
        let target = self.principal_by_name(name)?;
        self.change_password(&Principal::local(), target.id, None, new_password, None)
    }

    /// Ends every session of `user` (themself or an admin) and, with `tokens`, revokes their
    /// API tokens too.
    pub fn sign_out_everywhere(
        &self,
        actor: &Principal,
        user: UserId,
        tokens: bool,
    ) -> Result<CredentialsRemoved, EngineError> {
        if actor.id != user && !actor.is_admin {
            return Err(EngineError::Forbidden);
        }
        let (sessions, tokens) = self.store().delete_user_credentials(user, None, tokens)?;
        tracing::info!(user = user.0, sessions, tokens, by = %actor.name, "signed out everywhere");
        Ok(CredentialsRemoved { sessions, tokens })
    }

    /// Deletes sessions past their end or idle timeout and expired API tokens (at start and
    /// every [`PURGE_INTERVAL`]).
    pub fn purge_expired_credentials(&self) -> Result<CredentialsRemoved, EngineError> {
        let idle_ms = self.credential_policy().session_idle_ms;
        let (sessions, tokens) = self.store().purge_credentials(now_ms(), idle_ms)?;
        if sessions + tokens > 0 {
            tracing::info!(sessions, tokens, "expired sessions and tokens purged");
        }
        Ok(CredentialsRemoved { sessions, tokens })
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

fn already_set_up() -> EngineError {
    EngineError::Conflict("Concord is already set up; sign in instead".into())
}

#[cfg(test)]
mod hashing_tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn pooled_hashes_are_standard_phc_strings_both_ways() {
        let ours = hash_password("correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        // Hashes stored before the pool (the argon2 crate's own) still verify.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"an older password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("an older password", &theirs));
        assert!(!verify_password("an older passwore", &theirs));
        assert!(!verify_password(
            "correct horse battery",
            "not a phc string"
        ));
    }

    #[test]
    fn hashing_waits_for_a_permit_once_all_are_taken() {
        let permits = HashingPermits::global();
        let limit = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_HASHING_PERMITS);
        let held: Vec<_> = (0..limit).map(|_| permits.acquire()).collect();
        let (done, finished) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = done.send(verify_password("a password", &hash_password_for_test()));
        });
        assert!(
            finished
                .recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "hashing ran with every permit taken"
        );
        drop(held);
        assert_eq!(
            finished.recv_timeout(std::time::Duration::from_secs(30)),
            Ok(true)
        );
        waiter.join().unwrap();
    }

    /// A PHC string made without a permit (so the test can hold all of them).
    fn hash_password_for_test() -> String {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"a password", &salt)
            .unwrap()
            .to_string()
    }
}
