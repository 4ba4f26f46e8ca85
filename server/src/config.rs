//! Configuration, layered: built-in defaults < config file < environment < command-line flags.
//! Validated once, here; the rest of the binary receives a complete [`ServeConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use concord_engine::CredentialPolicy;
use serde::Deserialize;

/// Everything `concord serve` needs, complete and checked.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub secure_cookies: bool,
    /// Largest accepted upload (imports), in bytes.
    pub max_upload_bytes: u64,
    /// Folder of model folders (the default encoder is `all-MiniLM-L6-v2` inside it).
    pub models_dir: PathBuf,
    /// Take each client's address from the last `X-Forwarded-For` entry (Concord behind a
    /// reverse proxy that sets it, and reachable only through it); off: the socket peer.
    /// Sign-in throttling counts attempts per client address.
    pub trust_forwarded_for: bool,
    /// How long sessions last unused, and how long the one-time setup link works.
    pub credentials: CredentialPolicy,
}

/// The config file's shape (`concord.toml` in the data directory, or `--config FILE`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub secure_cookies: Option<bool>,
    pub max_upload_mb: Option<u64>,
    pub models_dir: Option<PathBuf>,
    pub trust_forwarded_for: Option<bool>,
    /// A session unused for this many hours stops working (default 12).
    pub session_idle_hours: Option<u64>,
    /// The setup link printed at the first start works for this many minutes (default 60).
    pub setup_link_minutes: Option<u64>,
}

/// Values given by flag or environment (clap merges those two); `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub secure_cookies: Option<bool>,
    pub max_upload_mb: Option<u64>,
    pub models_dir: Option<PathBuf>,
}

pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
pub const DEFAULT_DATA_DIR: &str = "concord-data";
const DEFAULT_MAX_UPLOAD_MB: u64 = 1024;
pub const DEFAULT_MODELS_DIR: &str = "models";

pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl ServeConfig {
    /// Layers the sources. `explicit_file` must exist; otherwise `concord.toml` in the data
    /// directory is read if present.
    pub fn resolve(
        overrides: Overrides,
        explicit_file: Option<&Path>,
    ) -> anyhow::Result<ServeConfig> {
        let file = match explicit_file {
            Some(path) => load_file(path)?,
            None => {
                let dir = overrides
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
                let candidate = dir.join("concord.toml");
                if candidate.exists() {
                    load_file(&candidate)?
                } else {
                    FileConfig::default()
                }
            }
        };
        let addr_text = overrides
            .addr
            .or(file.addr)
            .unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let addr: SocketAddr = addr_text.parse().with_context(|| {
            format!("invalid listen address {addr_text:?} (expected IP:PORT, e.g. 127.0.0.1:3000)")
        })?;
        let max_upload_mb = overrides
            .max_upload_mb
            .or(file.max_upload_mb)
            .unwrap_or(DEFAULT_MAX_UPLOAD_MB);
        anyhow::ensure!(max_upload_mb > 0, "max upload size must be at least 1 MB");
        let defaults = CredentialPolicy::default();
        const HOUR_MS: u64 = 60 * 60 * 1000;
        let credentials = CredentialPolicy {
            session_idle_ms: match file.session_idle_hours {
                Some(0) => anyhow::bail!("session_idle_hours must be at least 1"),
                Some(h) => h
                    .checked_mul(HOUR_MS)
                    .context("session_idle_hours is too large")?,
                None => defaults.session_idle_ms,
            },
            setup_token_ttl_ms: match file.setup_link_minutes {
                Some(0) => anyhow::bail!("setup_link_minutes must be at least 1"),
                Some(m) => m
                    .checked_mul(60 * 1000)
                    .context("setup_link_minutes is too large")?,
                None => defaults.setup_token_ttl_ms,
            },
        };
        Ok(ServeConfig {
            addr,
            data_dir: overrides
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            secure_cookies: overrides
                .secure_cookies
                .or(file.secure_cookies)
                .unwrap_or(false),
            max_upload_bytes: max_upload_mb * 1024 * 1024,
            models_dir: overrides
                .models_dir
                .or(file.models_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MODELS_DIR)),
            // Only in the config file: whether a proxy stands in front is a property of the
            // deployment, not of one run.
            trust_forwarded_for: file.trust_forwarded_for.unwrap_or(false),
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "addr = \"0.0.0.0:8080\"\nmax_upload_mb = 5\n").unwrap();
        let c = ServeConfig::resolve(Overrides::default(), Some(&file)).unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.max_upload_bytes, 5 * 1024 * 1024);
        let c = ServeConfig::resolve(
            Overrides {
                addr: Some("127.0.0.1:9".into()),
                ..Default::default()
            },
            Some(&file),
        )
        .unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:9");
        assert!(!c.secure_cookies);
        assert!(
            !c.trust_forwarded_for,
            "X-Forwarded-For is trusted only when asked"
        );
        assert_eq!(c.credentials, CredentialPolicy::default());
        std::fs::write(
            &file,
            "trust_forwarded_for = true\nsession_idle_hours = 2\nsetup_link_minutes = 5\n",
        )
        .unwrap();
        let c = ServeConfig::resolve(Overrides::default(), Some(&file)).unwrap();
        assert!(c.trust_forwarded_for);
        assert_eq!(c.credentials.session_idle_ms, 2 * 60 * 60 * 1000);
        assert_eq!(c.credentials.setup_token_ttl_ms, 5 * 60 * 1000);
    }

    #[test]
    fn bad_values_are_named() {
        let e = ServeConfig::resolve(
            Overrides {
                addr: Some("localhost".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("invalid listen address \"localhost\""),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "port = 1\n").unwrap();
        let e = ServeConfig::resolve(Overrides::default(), Some(&file)).unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `port`"), "{e:#}");
        std::fs::write(&file, "session_idle_hours = 0\n").unwrap();
        let e = ServeConfig::resolve(Overrides::default(), Some(&file)).unwrap_err();
        assert!(e.to_string().contains("session_idle_hours"), "{e:#}");
    }
}
