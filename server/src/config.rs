//! Settings, layered: defaults in code → TOML file → environment → command-line flags.
//!
//! The file is `--config FILE`, else `$MCPGATEWAY_CONFIG`, else `mcpgateway.toml` in the
//! working directory when it exists. Environment: the documented short names (`HOST`,
//! `PORT`, `DATABASE_URL`, `AUTH_ENCRYPTION_SECRET`, `LOG_FORMAT`, `LOG_LEVEL`, `LEPTOS_*`)
//! and any field as `MCPGATEWAY_<FIELD>` (which wins over the short name).

use std::{fmt, net::IpAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::entities::headers::{DEFAULT_SENSITIVE, SensitiveHeaders};

/// The shortest `AUTH_ENCRYPTION_SECRET` accepted.
pub const MIN_SECRET_LEN: usize = 32;

/// The longest lock wait accepted: a request should not hang for minutes.
const MAX_LOCK_WAIT_MS: u64 = 60_000;

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
    /// Legacy HTTP+SSE MCP sessions (`/servers/{id}/sse`) open at once; more get 429.
    pub mcp_sse_sessions: usize,
    /// Streamable HTTP MCP sessions (`/mcp`, `/servers/{id}/mcp`) held at once; an
    /// `initialize` beyond gets 429. An idle session ends after `mcp_session_idle_secs`.
    pub mcp_sessions: usize,
    /// Seconds a Streamable HTTP MCP session lives with no message either way (an open
    /// `GET` stream with nothing to say is idle); then it ends and its id gets 404.
    pub mcp_session_idle_secs: u64,
    /// Seconds an import runner (a gateway process) may go without a heartbeat before
    /// another process takes it for gone and fails (or, asked, cancels) its running job.
    pub job_runner_timeout_secs: u32,
    /// Exports streamed at a time by this process; each holds a database connection while
    /// it streams, so the rest of the pool stays free for everything else. More wait.
    pub concurrent_exports: u16,
    /// Failed sign-ins per minute from one client address, over all accounts (0: no limit);
    /// the 429 says when to retry.
    pub login_attempts_per_ip: u32,
    /// Failed sign-ins per minute for one account from one client address (0: no limit).
    /// Keyed by the pair, so guesses from one address never lock the account out elsewhere.
    pub login_attempts_per_account: u32,
    /// How long a write waits for a lock another transaction holds (a running import's)
    /// before it is refused with 503 and `Retry-After`, in milliseconds.
    pub db_lock_wait_ms: u64,
    /// Peers whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed (reverse proxies):
    /// addresses or CIDR ranges, a list or one comma-separated string. Empty: none.
    pub trusted_proxies: TrustedProxies,
    /// Connections open at once; past it an idle one (no request in flight) is closed to
    /// make room, and when none is idle the new one is closed at once.
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers (and an idle keep-alive connection
    /// lasts) before the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may go without sending a byte before the request fails;
    /// an upload of any size that keeps moving is never cut off.
    pub body_read_timeout_secs: u64,
    /// Tool header names (case-insensitive globs) whose values are credentials: stored
    /// and exported encrypted, shown as `*****`. Authorization, Proxy-Authorization,
    /// Cookie and X-Api-Key always are. A list, or one comma-separated string (env).
    #[serde(deserialize_with = "list_or_commas")]
    pub sensitive_headers: Vec<String>,
    /// Tool calls may reach loopback, private, link-local and metadata addresses (off:
    /// such upstreams are refused at call time, after DNS resolution).
    pub allow_private_networks: bool,
    /// Upstreams called even when they resolve to a private address: IP addresses, CIDR
    /// ranges or host names; a list, or one comma-separated string (env).
    #[serde(deserialize_with = "list_or_commas")]
    pub outbound_allow: Vec<String>,
    /// Seconds a tool call may take when the tool sets no `timeout` of its own.
    pub tool_timeout_secs: u32,
    /// Seconds to connect to an upstream.
    pub outbound_connect_timeout_secs: u32,
    /// The largest upstream answer read, in KiB; a larger one is an error result.
    pub tool_response_max_kb: u32,
    /// Calls in flight at once to one upstream (host and port); more wait for a turn.
    pub upstream_concurrency: u32,
}

/// A list of strings, or one string of comma-separated items (how an env var gives it).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<String>),
        Text(String),
    }
    let items = match Given::deserialize(d)? {
        Given::List(list) => list,
        Given::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(items
        .into_iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect())
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
            mcp_sse_sessions: 1000,
            mcp_sessions: 2000,
            mcp_session_idle_secs: 300,
            job_runner_timeout_secs: 30,
            concurrent_exports: 4,
            login_attempts_per_ip: 10,
            login_attempts_per_account: 5,
            db_lock_wait_ms: crate::store::DEFAULT_LOCK_WAIT.as_millis() as u64,
            trusted_proxies: TrustedProxies::default(),
            max_connections: 512,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            sensitive_headers: DEFAULT_SENSITIVE.map(str::to_owned).to_vec(),
            allow_private_networks: false,
            outbound_allow: Vec::new(),
            tool_timeout_secs: 60,
            outbound_connect_timeout_secs: 10,
            tool_response_max_kb: 4096,
            upstream_concurrency: 32,
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
        if self.job_runner_timeout_secs < 5 {
            errors.push("MCPGATEWAY_JOB_RUNNER_TIMEOUT_SECS: must be at least 5 (runners stamp a heartbeat every second)".into());
        }
        for (value, key) in [
            (self.max_connections.into(), "MCPGATEWAY_MAX_CONNECTIONS"),
            (
                self.header_read_timeout_secs,
                "MCPGATEWAY_HEADER_READ_TIMEOUT_SECS",
            ),
            (
                self.body_read_timeout_secs,
                "MCPGATEWAY_BODY_READ_TIMEOUT_SECS",
            ),
            (
                self.tool_timeout_secs.into(),
                "MCPGATEWAY_TOOL_TIMEOUT_SECS",
            ),
            (
                self.outbound_connect_timeout_secs.into(),
                "MCPGATEWAY_OUTBOUND_CONNECT_TIMEOUT_SECS",
            ),
            (
                self.tool_response_max_kb.into(),
                "MCPGATEWAY_TOOL_RESPONSE_MAX_KB",
            ),
            (
                self.upstream_concurrency.into(),
                "MCPGATEWAY_UPSTREAM_CONCURRENCY",
            ),
        ] {
            if value == 0 {
                errors.push(format!("{key}: must be at least 1"));
            }
        }
        if self.import_workers > 1 {
            errors.push("MCPGATEWAY_IMPORT_WORKERS: must be 0 or 1 (imports are one transaction each; run more replicas to run more at once)".into());
        }
        if self.db_lock_wait_ms > MAX_LOCK_WAIT_MS {
            errors.push(format!(
                "MCPGATEWAY_DB_LOCK_WAIT_MS: must be at most {MAX_LOCK_WAIT_MS} (a request waits this long at most)"
            ));
        }
        if let Err(e) = crate::invoke::guard::OutboundAllow::parse(&self.outbound_allow) {
            errors.push(format!("MCPGATEWAY_OUTBOUND_ALLOW: {e}"));
        }
        if let Err(e) = SensitiveHeaders::new(&self.sensitive_headers) {
            errors.push(format!("MCPGATEWAY_SENSITIVE_HEADERS: {e}"));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError(errors))
        }
    }

    /// How long a write waits for another transaction's lock.
    pub fn lock_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.db_lock_wait_ms)
    }

    /// The compiled `sensitive_headers` (checked by [`Settings::load`]).
    pub fn sensitive_header_rules(&self) -> SensitiveHeaders {
        SensitiveHeaders::new(&self.sensitive_headers).unwrap_or_default()
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
            .field("trusted_proxies", &self.trusted_proxies)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// The reverse proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
            let net = item
                .parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("`{item}` is not an IP address or CIDR range (e.g. 10.0.0.0/8)")
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A TOML list, or one comma-separated string (what an environment variable holds).
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            List(Vec<String>),
            One(String),
        }
        let parsed = match Given::deserialize(d)? {
            Given::List(items) => TrustedProxies::parse(items.iter().map(String::as_str)),
            Given::One(text) => TrustedProxies::parse(text.split(',')),
        };
        parsed.map_err(serde::de::Error::custom)
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
#[expect(
    clippy::result_large_err,
    reason = "figment's Jail closures return its own large error type"
)]
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
    fn trusted_proxies_come_as_a_list_or_a_comma_separated_string() {
        Jail::expect_with(|jail| {
            let none = Settings::load(None, &Overrides::default()).expect("valid");
            assert!(!none.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
            jail.create_file("mcpgateway.toml", "trusted_proxies = [\"10.0.0.0/8\"]")?;
            let s = Settings::load(None, &Overrides::default()).expect("valid");
            assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
            assert!(
                s.trusted_proxies
                    .contains("::ffff:10.1.2.3".parse().unwrap()),
                "an IPv4 peer seen on a dual-stack socket"
            );
            assert!(!s.trusted_proxies.contains("11.0.0.1".parse().unwrap()));
            jail.set_env("MCPGATEWAY_TRUSTED_PROXIES", "192.0.2.7, 2001:db8::/32");
            let s = Settings::load(None, &Overrides::default()).expect("valid");
            assert!(s.trusted_proxies.contains("192.0.2.7".parse().unwrap()));
            assert!(s.trusted_proxies.contains("2001:db8::1".parse().unwrap()));
            assert!(!s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
            jail.set_env("MCPGATEWAY_TRUSTED_PROXIES", "proxy.internal");
            let err = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.to_lowercase().contains("trusted_proxies"), "{err}");
            assert!(
                err.contains("`proxy.internal` is not an IP address"),
                "{err}"
            );
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
    fn the_lock_wait_comes_from_env_and_is_bounded() {
        Jail::expect_with(|jail| {
            let defaults = Settings::load(None, &Overrides::default()).expect("valid");
            assert_eq!(defaults.lock_wait(), crate::store::DEFAULT_LOCK_WAIT);
            jail.set_env("MCPGATEWAY_DB_LOCK_WAIT_MS", "250");
            let s = Settings::load(None, &Overrides::default()).expect("valid");
            assert_eq!(s.lock_wait(), std::time::Duration::from_millis(250));
            jail.set_env("MCPGATEWAY_DB_LOCK_WAIT_MS", "600000");
            let err = Settings::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("MCPGATEWAY_DB_LOCK_WAIT_MS"), "{err}");
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
    fn sensitive_headers_come_as_a_list_or_comma_separated_and_bad_globs_are_refused() {
        Jail::expect_with(|jail| {
            let defaults = Settings::load(None, &Overrides::default()).expect("valid");
            assert!(defaults.sensitive_headers.contains(&"*token*".to_owned()));
            jail.create_file("mcpgateway.toml", "sensitive_headers = [\"x-tenant\"]")?;
            let s = Settings::load(None, &Overrides::default()).expect("valid");
            assert_eq!(s.sensitive_headers, ["x-tenant"]);
            jail.set_env("MCPGATEWAY_SENSITIVE_HEADERS", "*token*, x-org ");
            let s = Settings::load(None, &Overrides::default()).expect("valid");
            assert_eq!(s.sensitive_headers, ["*token*", "x-org"]);
            assert!(s.sensitive_header_rules().is_sensitive("X-Org"));
            jail.set_env("MCPGATEWAY_SENSITIVE_HEADERS", "x-[a");
            let err = Settings::load(None, &Overrides::default()).unwrap_err();
            assert!(
                err.to_string().contains("MCPGATEWAY_SENSITIVE_HEADERS"),
                "{err}"
            );
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
