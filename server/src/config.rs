//! Settings, layered: defaults in code → TOML file → environment → command-line flags.
//!
//! The file is `--config FILE`, else `$MCPGATEWAY_CONFIG`, else `mcpgateway.toml` in the
//! working directory when it exists. Environment: the documented short names (`HOST`,
//! `PORT`, `DATABASE_URL`, `AUTH_ENCRYPTION_SECRET`, `LOG_FORMAT`, `LOG_LEVEL`, `LEPTOS_*`)
//! and any field as `MCPGATEWAY_<FIELD>` (which wins over the short name).

use std::{fmt, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The shortest `AUTH_ENCRYPTION_SECRET` accepted.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// `sqlite://FILE` (created on first start) or `postgres://…`.
    pub database_url: String,
    /// Encrypts every stored credential; generated beside the database when unset.
    pub auth_encryption_secret: Option<SecretString>,
    pub admin_email: String,
    pub admin_password: Option<SecretString>,
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,sqlx=debug` (`RUST_LOG` wins).
    pub log_level: String,
    pub session_ttl_hours: u32,
    /// Extra origin accepted for cookie-authenticated writes (e.g. behind a proxy).
    pub public_origin: Option<String>,
    /// Where the built site (`pkg/` with the WASM, JS and CSS) is served from.
    pub site_root: PathBuf,
    pub site_pkg_dir: String,
    pub output_name: String,
    /// The largest import upload accepted, in MB (`POST /admin/import` answers 413 above it).
    pub max_upload_mb: u64,
    /// Import jobs this process runs at a time: 1, or 0 to leave them to other replicas.
    pub import_workers: u8,
    /// Exports streamed at a time by this process; each holds a database connection while
    /// it streams, so the rest of the pool stays free for everything else. More wait.
    pub concurrent_exports: u16,
    /// Sign-in attempts per minute from one client IP (0: no limit); the 429 says when to retry.
    pub login_attempts_per_ip: u32,
    /// Sign-in attempts per minute for one account, from anywhere (0: no limit).
    pub login_attempts_per_account: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "127.0.0.1".into(),
            port: 4444,
            database_url: "sqlite://mcpgateway.db".into(),
            auth_encryption_secret: None,
            admin_email: "admin@example.com".into(),
            admin_password: None,
            log_format: LogFormat::Human,
            log_level: "info".into(),
            session_ttl_hours: 12,
            public_origin: None,
            site_root: "target/site".into(),
            site_pkg_dir: "pkg".into(),
            output_name: "mcpgateway".into(),
            max_upload_mb: 100,
            import_workers: 1,
            concurrent_exports: 4,
            login_attempts_per_ip: 10,
            login_attempts_per_account: 5,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Why the settings were refused: one line per bad value, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

const SHORT_ENV: [&str; 6] = [
    "HOST",
    "PORT",
    "DATABASE_URL",
    "AUTH_ENCRYPTION_SECRET",
    "LOG_FORMAT",
    "LOG_LEVEL",
];

impl Settings {
    /// Loads every layer and validates the result.
    pub fn load(file: Option<PathBuf>, flags: &Overrides) -> Result<Settings, ConfigError> {
        Settings::figment(file, flags)
            .extract::<Settings>()
            .map_err(|e| ConfigError(e.into_iter().map(|e| e.to_string()).collect()))
            .and_then(Settings::validated)
    }

    fn figment(file: Option<PathBuf>, flags: &Overrides) -> Figment {
        let file = file
            .or_else(|| std::env::var_os("MCPGATEWAY_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("mcpgateway.toml"));
        Figment::new()
            .merge(Toml::file(file))
            .merge(Env::raw().only(&SHORT_ENV))
            .merge(
                Env::raw()
                    .filter_map(|key| {
                        key.as_str()
                            .strip_prefix("LEPTOS_")
                            .map(|rest| rest.to_ascii_lowercase().into())
                    })
                    .only(&["site_root", "site_pkg_dir", "output_name"]),
            )
            .merge(Env::prefixed("MCPGATEWAY_").ignore(&[
                "config",
                "url",
                "bearer_token",
                "source_secret",
                // CLI-only: the command-line secrets and actor, not settings.
                "rekey_secret",
                "rekey_from",
                "rekey_to",
                "actor",
            ]))
            .merge(Serialized::defaults(flags))
    }

    fn validated(self) -> Result<Settings, ConfigError> {
        let mut errors = Vec::new();
        if let Some(secret) = &self.auth_encryption_secret {
            let len = secret.expose_secret().chars().count();
            if len < MIN_SECRET_LEN {
                errors.push(format!(
                    "AUTH_ENCRYPTION_SECRET: must be at least {MIN_SECRET_LEN} characters (got {len}); \
                     generate one with `openssl rand -base64 32`, or unset it to have one generated"
                ));
            }
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            errors
                .push("DATABASE_URL: must start with sqlite:, postgres:// or postgresql://".into());
        }
        if !looks_like_email(&self.admin_email) {
            errors.push(format!(
                "MCPGATEWAY_ADMIN_EMAIL: `{}` is not an email address",
                self.admin_email
            ));
        }
        if let Some(password) = &self.admin_password
            && password.expose_secret().chars().count() < 8
        {
            errors.push("MCPGATEWAY_ADMIN_PASSWORD: must be at least 8 characters".into());
        }
        if self.session_ttl_hours == 0 {
            errors.push("MCPGATEWAY_SESSION_TTL_HOURS: must be at least 1".into());
        }
        if self.host.trim().is_empty() {
            errors.push("HOST: must not be empty".into());
        }
        if self.max_upload_mb == 0 {
            errors.push("MCPGATEWAY_MAX_UPLOAD_MB: must be at least 1".into());
        }
        if self.concurrent_exports == 0 {
            errors.push("MCPGATEWAY_CONCURRENT_EXPORTS: must be at least 1".into());
        }
        if self.import_workers > 1 {
            errors.push("MCPGATEWAY_IMPORT_WORKERS: must be 0 or 1 (imports are one transaction each; run more replicas to run more at once)".into());
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError(errors))
        }
    }

    /// The database URL with any password replaced, for logs and messages.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database_url", &self.database_url_redacted())
            .field(
                "auth_encryption_secret",
                &self.auth_encryption_secret.as_ref().map(|_| "<set>"),
            )
            .field("admin_email", &self.admin_email)
            .field("log_format", &self.log_format)
            .field("site_root", &self.site_root)
            .field("login_attempts_per_ip", &self.login_attempts_per_ip)
            .field(
                "login_attempts_per_account",
                &self.login_attempts_per_account,
            )
            .finish_non_exhaustive()
    }
}

pub fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((creds, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match creds.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its own large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "mcpgateway.toml",
                "port = 5000\nhost = \"0.0.0.0\"\nlog_level = \"debug\"",
            )?;
            jail.set_env("PORT", "6000");
            jail.set_env("MCPGATEWAY_LOG_LEVEL", "warn");
            let flags = Overrides {
                host: Some("127.0.0.2".into()),
                ..Default::default()
            };
            let s = Settings::load(None, &flags).expect("valid");
            assert_eq!(s.port, 6000, "env beats file");
            assert_eq!(s.host, "127.0.0.2", "flag beats file");
            assert_eq!(s.log_level, "warn", "prefixed env beats file");
            assert_eq!(s.output_name, "mcpgateway", "default stays");
            Ok(())
        });
    }

    #[test]
    fn login_limits_have_defaults_and_come_from_file_then_env() {
        Jail::expect_with(|jail| {
            let defaults = Settings::load(None, &Overrides::default()).expect("valid");
            assert_eq!(defaults.login_attempts_per_ip, 10);
            assert_eq!(defaults.login_attempts_per_account, 5);
            jail.create_file(
                "mcpgateway.toml",
                "login_attempts_per_ip = 20\nlogin_attempts_per_account = 3",
            )?;
            jail.set_env("MCPGATEWAY_LOGIN_ATTEMPTS_PER_ACCOUNT", "0");
            let s = Settings::load(None, &Overrides::default()).expect("valid");
            assert_eq!(s.login_attempts_per_ip, 20, "file beats default");
            assert_eq!(s.login_attempts_per_account, 0, "env beats file");
            Ok(())
        });
    }

    #[test]
    fn a_short_encryption_secret_is_refused_with_the_reason() {
        Jail::expect_with(|jail| {
            jail.set_env("AUTH_ENCRYPTION_SECRET", "too-short");
            let err = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("AUTH_ENCRYPTION_SECRET"), "{err}");
            assert!(err.contains("at least 32"), "{err}");
            assert!(
                !err.contains("too-short"),
                "the secret itself is never echoed: {err}"
            );
            Ok(())
        });
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "mysql://x");
            jail.set_env("MCPGATEWAY_ADMIN_EMAIL", "nobody");
            jail.set_env("MCPGATEWAY_CONCURRENT_EXPORTS", "0");
            let err = Settings::load(None, &Overrides::default()).unwrap_err();
            assert_eq!(err.0.len(), 3, "{err}");
            assert!(
                err.to_string()
                    .contains("MCPGATEWAY_CONCURRENT_EXPORTS: must be at least 1")
            );
            Ok(())
        });
    }

    #[test]
    fn a_port_that_is_not_a_number_names_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("PORT", "eighty");
            let err = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.to_lowercase().contains("port"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn urls_are_redacted_for_logs() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("sqlite://mcpgateway.db"),
            "sqlite://mcpgateway.db"
        );
    }
}
