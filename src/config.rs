//! Typed settings read from the environment (and a `.env` file), SPEC §3.
//!
//! Every variable is parsed in one pass and every problem is collected, so an operator fixes a
//! broken configuration in one round instead of one variable per restart. Secrets live in
//! [`Secret`], whose `Debug` never shows the value.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use lettre::message::{Mailbox, Mailboxes};
use regex::Regex;
use url::Url;

/// Minimum length of `SECRET_KEY`, SPEC §3.
pub const MIN_SECRET_KEY_LEN: usize = 32;

/// The broken-link patterns that are never reported, SPEC §8.
pub const DEFAULT_IGNORABLE_404_URLS: &[&str] = &[
    r"^/favicon\.ico$",
    r"^/robots\.txt$",
    r"^/apple-touch-icon.*\.png$",
    r"\.(php|cgi|asp|env)$",
    r"^/wp-",
    r"^/phpmyadmin/",
];

/// A value that must never be printed: `Debug` and `Display` show a fixed mask.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The real value, for the one place that needs it (signing, connecting).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********************)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********************")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    Sqlite,
    Postgres,
}

/// A database URL; it may hold a password, so it is a [`Secret`] with a masked display form.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub backend: DatabaseBackend,
}

impl DatabaseSettings {
    /// The URL with any password replaced, safe for logs and pages.
    pub fn display_url(&self) -> String {
        mask_url_password(self.url.expose())
    }

    /// The SQLite file path, when the backend is SQLite and the database is a file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if self.backend != DatabaseBackend::Sqlite {
            return None;
        }
        let rest = self.url.expose().strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailBackend {
    Smtp,
    File,
    Console,
    Memory,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// STARTTLS.
    pub use_tls: bool,
    /// Implicit TLS (SMTPS).
    pub use_ssl: bool,
    pub timeout_secs: u64,
    /// What autosend says in EHLO (`SMTP_HELO_NAME`; default the host of `BASE_URL` when it
    /// is a domain name, else the machine's name when fully qualified). `None`: no such name,
    /// so each connection says its own address literal, as RFC 5321 §4.1.4 asks.
    pub helo_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub enum AllowedHosts {
    Any,
    List(Vec<String>),
}

impl AllowedHosts {
    /// Whether a `Host` header value (port allowed) is accepted.
    pub fn allows(&self, host_header: &str) -> bool {
        let host = strip_port(host_header).to_ascii_lowercase();
        match self {
            AllowedHosts::Any => !host.is_empty(),
            AllowedHosts::List(list) => list.iter().any(|allowed| {
                // Django's leading-dot form: `.example.com` matches the domain and subdomains.
                match allowed.strip_prefix('.') {
                    Some(domain) => host == domain || host.ends_with(allowed.as_str()),
                    None => host == strip_port(allowed),
                }
            }),
        }
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Everything autosend reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub debug: bool,
    pub secret_key: Secret,
    pub allowed_hosts: AllowedHosts,
    pub bind: SocketAddr,
    pub base_url: Url,
    /// Where the SQLite database, the generated secret key and the file outbox live.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so several deployments (or test runs) can share one Redis.
    pub redis_prefix: String,
    pub email_backend: EmailBackend,
    pub smtp: SmtpSettings,
    pub default_from_email: Mailbox,
    pub server_email: Mailbox,
    pub email_subject_prefix: String,
    pub admins: Vec<Mailbox>,
    pub managers: Vec<Mailbox>,
    pub internal_ips: Vec<IpNet>,
    pub trusted_proxies: Vec<IpNet>,
    pub ignorable_404_urls: Vec<Regex>,
    pub error_email_chunk_size: usize,
    pub error_email_cooldown_secs: u64,
    pub error_email_max_per_minute: u32,
    pub sensitive_fields: Vec<String>,
    pub scheduler_interval_secs: u64,
    pub send_rate_per_second: u32,
    pub send_concurrency: usize,
    pub send_max_attempts: u32,
    /// First wait before retrying a temporary failure (`SEND_RETRY_BASE_SECS`); doubles per
    /// attempt. Short in fault tests, a minute in production.
    pub send_retry_base_secs: u64,
    /// How long a claim holds its deliveries between heartbeats (`SEND_LEASE_SECS`); `0`: the
    /// 30 s default (see `delivery::engine::lease_duration`).
    pub send_lease_secs: u64,
    pub cache_ttl_secs: u64,
    pub time_zone: String,
    pub metrics_token: Option<Secret>,
    pub log_dir: PathBuf,
    pub log_level: String,
    pub log_format: LogFormat,
    pub log_sql: bool,
    pub log_keep_days: usize,
    /// Largest request body accepted, in bytes (CSV imports are the largest legitimate bodies).
    pub max_body_bytes: usize,
    /// Open connections one client address may hold (`MAX_CONNECTIONS_PER_CLIENT`); trusted
    /// proxies are exempt. Raise it when many users share one address without a proxy.
    pub max_connections_per_client: usize,
}

/// Configuration problems, one line each, naming the variable.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "configuration error: {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Settings {
    /// Reads `.env` (when present) and the process environment, then resolves `SECRET_KEY`.
    pub fn load() -> Result<Self, ConfigErrors> {
        // A missing .env is normal; a malformed one is a configuration error.
        if let Err(err) = dotenvy::dotenv()
            && !err.not_found()
        {
            return Err(ConfigErrors(vec![format!(".env: {err}")]));
        }
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Builds settings from a variable map; the one parsing path for the binary and for tests.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigErrors> {
        let mut p = Parser {
            vars,
            errors: Vec::new(),
        };
        let settings = p.settings();
        match settings {
            Some(settings) if p.errors.is_empty() => Ok(settings),
            _ => Err(ConfigErrors(p.errors)),
        }
    }

    /// Values that must be scrubbed from any text we show or send (logs, pages, reports).
    pub fn secret_values(&self) -> Vec<String> {
        let mut values = vec![self.secret_key.expose().to_string()];
        values.extend(self.smtp.password.as_ref().map(|s| s.expose().to_string()));
        values.extend(self.metrics_token.as_ref().map(|s| s.expose().to_string()));
        values.extend(url_password(self.database.url.expose()));
        if let Some(redis) = &self.redis_url {
            values.extend(url_password(redis.expose()));
        }
        // Very short values would scrub ordinary words; they are weak secrets anyway.
        values.retain(|v| v.len() >= 4);
        values
    }

    /// `true` when cookies must carry `Secure`.
    pub fn https(&self) -> bool {
        self.base_url.scheme() == "https"
    }

    /// The settings as (name, value) pairs for error reports, with secrets already masked.
    pub fn report_pairs(&self) -> Vec<(&'static str, String)> {
        let mask = |s: &Option<Secret>| s.as_ref().map(|_| MASK.to_string()).unwrap_or_default();
        let list = |m: &[Mailbox]| {
            m.iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            ("DEBUG", self.debug.to_string()),
            ("SECRET_KEY", MASK.to_string()),
            ("ALLOWED_HOSTS", format!("{:?}", self.allowed_hosts)),
            ("BIND", self.bind.to_string()),
            ("BASE_URL", self.base_url.to_string()),
            ("DATABASE_URL", self.database.display_url()),
            (
                "REDIS_URL",
                self.redis_url
                    .as_ref()
                    .map(|u| mask_url_password(u.expose()))
                    .unwrap_or_default(),
            ),
            (
                "EMAIL_BACKEND",
                format!("{:?}", self.email_backend).to_lowercase(),
            ),
            ("SMTP_HOST", self.smtp.host.clone()),
            ("SMTP_PORT", self.smtp.port.to_string()),
            ("SMTP_USER", self.smtp.user.clone().unwrap_or_default()),
            ("SMTP_PASSWORD", mask(&self.smtp.password)),
            ("SMTP_USE_TLS", self.smtp.use_tls.to_string()),
            ("SMTP_USE_SSL", self.smtp.use_ssl.to_string()),
            (
                "SMTP_HELO_NAME",
                self.smtp.helo_name.clone().unwrap_or_default(),
            ),
            ("DEFAULT_FROM_EMAIL", self.default_from_email.to_string()),
            ("SERVER_EMAIL", self.server_email.to_string()),
            ("ADMINS", list(&self.admins)),
            ("MANAGERS", list(&self.managers)),
            ("TIME_ZONE", self.time_zone.clone()),
            ("METRICS_TOKEN", mask(&self.metrics_token)),
            ("LOG_LEVEL", self.log_level.clone()),
        ]
    }
}

/// The replacement for a masked value: 20 asterisks (SPEC §8).
pub const MASK: &str = "********************";

fn url_password(url: &str) -> Option<String> {
    let parsed = Url::parse(url).ok()?;
    let password = parsed.password()?;
    Some(
        percent_encoding::percent_decode_str(password)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// `scheme://user:pass@host` → `scheme://user:********************@host`.
pub fn mask_url_password(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(MASK));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

struct Parser<'a> {
    vars: &'a HashMap<String, String>,
    errors: Vec<String>,
}

impl Parser<'_> {
    /// `SMTP_HELO_NAME`, else the default (see [`SmtpSettings::helo_name`]). A strict relay
    /// refuses a bare `vm` or `localhost` (504 5.5.2 "need fully-qualified hostname").
    fn helo_name(&mut self, base_url: &Url) -> Option<String> {
        if let Some(name) = self.raw("SMTP_HELO_NAME") {
            let name = name.trim().to_ascii_lowercase();
            if is_domain_name(&name) {
                return Some(name);
            }
            self.fail(
                "SMTP_HELO_NAME",
                format!("{name:?} is not a fully qualified domain name such as mail.example.org"),
            );
            return None;
        }
        if let Some(url::Host::Domain(host)) = base_url.host()
            && is_domain_name(host)
        {
            return Some(host.to_ascii_lowercase());
        }
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| is_domain_name(h))
    }

    /// A variable's trimmed value; empty counts as unset.
    fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn fail(&mut self, name: &str, problem: impl fmt::Display) {
        self.errors.push(format!("{name}: {problem}"));
    }

    fn parse<T: FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => match v.parse() {
                Ok(x) => x,
                Err(_) => {
                    self.fail(name, format!("{v:?} is not {what}"));
                    default
                }
            },
        }
    }

    /// An integer in `min..=max`.
    fn int<T>(&mut self, name: &str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Copy + fmt::Display,
    {
        let value = self.parse(name, default, "a whole number");
        if value < min || value > max {
            self.fail(name, format!("{value} is out of range {min}..={max}"));
            return default;
        }
        value
    }

    fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.raw(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(other) => {
                self.fail(name, format!("{other:?} is not a boolean (true/false)"));
                default
            }
        }
    }

    fn mailbox(&mut self, name: &str, default: &str) -> Mailbox {
        let value = self.raw(name).unwrap_or(default).to_string();
        match value.parse::<Mailbox>() {
            Ok(m) => m,
            Err(err) => {
                self.fail(name, format!("{value:?} is not an e-mail address ({err})"));
                default.parse().expect("default mailbox is valid")
            }
        }
    }

    fn mailboxes(&mut self, name: &str) -> Vec<Mailbox> {
        let Some(value) = self.raw(name).map(str::to_string) else {
            return Vec::new();
        };
        match value.parse::<Mailboxes>() {
            Ok(list) => list.into_iter().collect(),
            Err(err) => {
                self.fail(
                    name,
                    format!("{value:?} is not a list like `Name <a@x>, b@y` ({err})"),
                );
                Vec::new()
            }
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.raw(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn networks(&mut self, name: &str) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for item in self.list(name) {
            // A bare address is a /32 (or /128) network.
            let parsed = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => nets.push(net),
                Err(_) => self.fail(name, format!("{item:?} is not an IP address or CIDR range")),
            }
        }
        nets
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.raw(name).map(Secret::new)
    }

    fn database(&mut self, data_dir: &Path) -> DatabaseSettings {
        let explicit = self.raw("DATABASE_URL").map(str::to_string);
        let db_name = self.raw("DB_NAME").map(str::to_string);
        let url = match (explicit, db_name) {
            (Some(url), _) => url,
            (None, Some(name)) => {
                // The seed's variables: build a PostgreSQL URL, escaping each part.
                let mut url = Url::parse("postgres://localhost").expect("static URL");
                let host = self.raw("DB_HOST").unwrap_or("localhost").to_string();
                let port: u16 = self.parse("DB_PORT", 5432, "a port number");
                if url.set_host(Some(&host)).is_err() {
                    self.fail("DB_HOST", format!("{host:?} is not a host name"));
                }
                let _ = url.set_port(Some(port));
                let _ = url.set_username(self.raw("DB_USER").unwrap_or("postgres"));
                if let Some(pw) = self.raw("DB_PASSWORD") {
                    let _ = url.set_password(Some(pw));
                }
                url.set_path(&name);
                url.to_string()
            }
            (None, None) => format!("sqlite://{}", data_dir.join("autosend.db").display()),
        };
        let backend = if url.starts_with("sqlite:") {
            DatabaseBackend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseBackend::Postgres
        } else {
            self.fail(
                "DATABASE_URL",
                format!(
                    "{:?} must start with sqlite:// or postgres://",
                    mask_url_password(&url)
                ),
            );
            DatabaseBackend::Sqlite
        };
        DatabaseSettings {
            url: Secret::new(url),
            backend,
        }
    }

    fn secret_key(&mut self, database: &DatabaseSettings, data_dir: &Path) -> Secret {
        let key = match self.raw("SECRET_KEY") {
            Some(key) => key.to_string(),
            None if database.backend == DatabaseBackend::Postgres => {
                self.fail(
                    "SECRET_KEY",
                    "required with PostgreSQL, since every instance must share it \
                     (generate one with `openssl rand -hex 32`)",
                );
                return Secret::new(String::new());
            }
            // The folder is the problem here, not the key: say which, and why (the OS error).
            None => match stored_secret_key(data_dir) {
                Ok(key) => key,
                Err(err) => {
                    self.fail(
                        "DATA_DIR",
                        format!(
                            "{err}; autosend keeps its generated secret key and its SQLite \
                             database in this folder: make it writable by this user, or point \
                             DATA_DIR elsewhere (or set SECRET_KEY)"
                        ),
                    );
                    return Secret::new(String::new());
                }
            },
        };
        if key.chars().count() < MIN_SECRET_KEY_LEN {
            self.fail(
                "SECRET_KEY",
                format!("must be at least {MIN_SECRET_KEY_LEN} characters long"),
            );
        }
        Secret::new(key)
    }

    fn settings(&mut self) -> Option<Settings> {
        let debug = self.flag("DEBUG", false);
        let data_dir = PathBuf::from(self.raw("DATA_DIR").unwrap_or("data"));

        let allowed_hosts = {
            let list = self.list("ALLOWED_HOSTS");
            if list.is_empty() && self.raw("ALLOWED_HOSTS").is_none() {
                AllowedHosts::List(vec!["localhost".into(), "127.0.0.1".into()])
            } else if list.iter().any(|h| h == "*") {
                AllowedHosts::Any
            } else {
                AllowedHosts::List(list.into_iter().map(|h| h.to_ascii_lowercase()).collect())
            }
        };

        let bind_default: SocketAddr = "127.0.0.1:8000".parse().expect("static address");
        let bind = self.parse("BIND", bind_default, "an address like 127.0.0.1:8000");
        let base_url = match self.raw("BASE_URL") {
            None => Url::parse(&format!("http://{bind}")).expect("bind address forms a URL"),
            Some(v) => match Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
                _ => {
                    self.fail("BASE_URL", format!("{v:?} is not an http(s) URL"));
                    Url::parse("http://127.0.0.1:8000").expect("static URL")
                }
            },
        };

        let database = self.database(&data_dir);
        let redis_url = self.secret("REDIS_URL");
        if let Some(url) = &redis_url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            self.fail("REDIS_URL", "must start with redis:// or rediss://");
        }

        let email_backend = match self
            .raw("EMAIL_BACKEND")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("file") => EmailBackend::File,
            Some("smtp") => EmailBackend::Smtp,
            Some("console") => EmailBackend::Console,
            Some("memory") => EmailBackend::Memory,
            Some(other) => {
                self.fail(
                    "EMAIL_BACKEND",
                    format!("{other:?} is not one of smtp, file, console, memory"),
                );
                EmailBackend::File
            }
        };
        let smtp = SmtpSettings {
            host: self.raw("SMTP_HOST").unwrap_or("localhost").to_string(),
            port: self.int("SMTP_PORT", 25u16, 1, u16::MAX),
            user: self.raw("SMTP_USER").map(str::to_string),
            password: self.secret("SMTP_PASSWORD"),
            use_tls: self.flag("SMTP_USE_TLS", false),
            use_ssl: self.flag("SMTP_USE_SSL", false),
            timeout_secs: self.int("SMTP_TIMEOUT_SECS", 10u64, 1, 600),
            helo_name: self.helo_name(&base_url),
        };
        if smtp.use_tls && smtp.use_ssl {
            self.fail(
                "SMTP_USE_SSL",
                "SMTP_USE_TLS and SMTP_USE_SSL are mutually exclusive; set only one",
            );
        }

        let default_from_email = self.mailbox("DEFAULT_FROM_EMAIL", "autosend@localhost");
        let server_email = self.mailbox("SERVER_EMAIL", "root@localhost");
        let email_subject_prefix = self
            .vars
            .get("EMAIL_SUBJECT_PREFIX")
            .cloned()
            .unwrap_or_else(|| "[autosend] ".to_string());
        if email_subject_prefix.contains(['\r', '\n']) {
            self.fail("EMAIL_SUBJECT_PREFIX", "must not contain line breaks");
        }
        let admins = self.mailboxes("ADMINS");
        let managers = self.mailboxes("MANAGERS");
        let internal_ips = self.networks("INTERNAL_IPS");
        let trusted_proxies = self.networks("TRUSTED_PROXIES");

        let ignorable_404_urls = {
            let patterns = match self.raw("IGNORABLE_404_URLS") {
                Some(_) => self.list("IGNORABLE_404_URLS"),
                None => DEFAULT_IGNORABLE_404_URLS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            let mut regexes = Vec::new();
            for pattern in patterns {
                match Regex::new(&pattern) {
                    Ok(r) => regexes.push(r),
                    Err(err) => self.fail(
                        "IGNORABLE_404_URLS",
                        format!("{pattern:?} is not a valid regex: {err}"),
                    ),
                }
            }
            regexes
        };

        let time_zone = self.raw("TIME_ZONE").unwrap_or("UTC").to_string();
        if crate::domain::TimeZone::parse(&time_zone).is_none() {
            self.fail(
                "TIME_ZONE",
                format!("{time_zone:?} is not an IANA time zone such as Europe/Berlin"),
            );
        }

        let log_level = self.raw("LOG_LEVEL").unwrap_or("info").to_string();
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            self.fail(
                "LOG_LEVEL",
                format!("{log_level:?} is not a tracing filter: {err}"),
            );
        }
        let log_format = match self
            .raw("LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.fail("LOG_FORMAT", format!("{other:?} is not text or json"));
                LogFormat::Text
            }
        };

        let settings = Settings {
            debug,
            allowed_hosts,
            bind,
            base_url,
            redis_url,
            redis_prefix: self.raw("REDIS_PREFIX").unwrap_or("autosend:").to_string(),
            email_backend,
            smtp,
            default_from_email,
            server_email,
            email_subject_prefix,
            admins,
            managers,
            internal_ips,
            trusted_proxies,
            ignorable_404_urls,
            error_email_chunk_size: self.int("ERROR_EMAIL_CHUNK_SIZE", 5000usize, 200, 10_000_000),
            error_email_cooldown_secs: self.int("ERROR_EMAIL_COOLDOWN_SECS", 600u64, 0, 31_536_000),
            error_email_max_per_minute: self.int("ERROR_EMAIL_MAX_PER_MINUTE", 10u32, 1, 100_000),
            sensitive_fields: self.list("SENSITIVE_FIELDS"),
            scheduler_interval_secs: self.int("SCHEDULER_INTERVAL_SECS", 60u64, 0, 86_400),
            send_rate_per_second: self.int("SEND_RATE_PER_SECOND", 50u32, 1, 1_000_000),
            send_concurrency: self.int("SEND_CONCURRENCY", 4usize, 1, 256),
            send_max_attempts: self.int("SEND_MAX_ATTEMPTS", 5u32, 1, 100),
            send_retry_base_secs: self.int("SEND_RETRY_BASE_SECS", 60u64, 1, 86_400),
            send_lease_secs: self.int("SEND_LEASE_SECS", 0u64, 0, 86_400),
            cache_ttl_secs: self.int("CACHE_TTL_SECS", 300u64, 0, 31_536_000),
            time_zone,
            metrics_token: self.secret("METRICS_TOKEN"),
            log_dir: PathBuf::from(self.raw("LOG_DIR").unwrap_or("logs")),
            log_level,
            log_format,
            log_sql: self.flag("LOG_SQL", false),
            log_keep_days: self.int("LOG_KEEP_DAYS", 14usize, 1, 3650),
            max_body_bytes: self.int("MAX_BODY_BYTES", 16usize << 20, 1024, 1 << 30),
            max_connections_per_client: self.int(
                "MAX_CONNECTIONS_PER_CLIENT",
                128usize,
                1,
                1_000_000,
            ),
            // Last: it may write data/secret_key, which must not happen for a config that fails.
            secret_key: Secret::new(String::new()),
            database,
            data_dir,
        };
        if !self.errors.is_empty() {
            return None;
        }
        let secret_key = self.secret_key(&settings.database, &settings.data_dir);
        Some(Settings {
            secret_key,
            ..settings
        })
    }
}

/// A fully qualified domain name: dot-separated labels of letters, digits and inner hyphens,
/// at least two, the last not all digits (so no IP address and no bare `localhost`).
fn is_domain_name(name: &str) -> bool {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && !labels
            .last()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
}

/// Reads `data/secret_key`, generating it (mode 0600) on first use.
fn stored_secret_key(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join("secret_key");
    match std::fs::read_to_string(&path) {
        Ok(key) => return Ok(key.trim().to_string()),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!(
                "the data folder {} is not usable ({} cannot be read: {err})",
                data_dir.display(),
                path.display()
            ));
        }
        Err(_) => {}
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    std::fs::create_dir_all(data_dir).map_err(|err| {
        format!(
            "the data folder {} cannot be created: {err}",
            data_dir.display()
        )
    })?;
    write_private(&path, &key).map_err(|err| {
        format!(
            "the data folder {} is not writable ({} cannot be written: {err})",
            data_dir.display(),
            path.display()
        )
    })?;
    Ok(key)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_helo_name_is_set_or_the_base_urls_domain_never_an_ip_or_a_bare_name() {
        let helo = |pairs: &[(&str, &str)]| {
            let mut all = vec![("SECRET_KEY", KEY)];
            all.extend_from_slice(pairs);
            Settings::from_vars(&vars(&all)).map(|s| s.smtp.helo_name)
        };
        assert_eq!(
            helo(&[("SMTP_HELO_NAME", "Relay.Example.NET")]).unwrap(),
            Some("relay.example.net".into())
        );
        assert_eq!(
            helo(&[("BASE_URL", "https://mail.example.org:8443/x")]).unwrap(),
            Some("mail.example.org".into())
        );
        // An IP or a name without a dot is no FQDN: the machine's name if it is one, else
        // (None) each connection says its address literal.
        for base in [
            "http://127.0.0.1:8000",
            "http://[::1]:8000",
            "http://localhost:8000",
        ] {
            let name = helo(&[("BASE_URL", base)]).unwrap();
            assert!(
                name.as_deref().is_none_or(is_domain_name),
                "{base}: {name:?}"
            );
            assert_ne!(name.as_deref(), Some("localhost"));
        }
        for bad in [
            "vm",
            "localhost",
            "192.0.2.1",
            "a..b",
            "-a.example",
            "has space.org",
        ] {
            let err = helo(&[("SMTP_HELO_NAME", bad)]).unwrap_err().to_string();
            assert!(err.contains("SMTP_HELO_NAME"), "{bad}: {err}");
        }
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let s = Settings::from_vars(&vars(&[("SECRET_KEY", KEY)])).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(s.base_url.as_str(), "http://127.0.0.1:8000/");
        assert_eq!(s.database.backend, DatabaseBackend::Sqlite);
        assert_eq!(
            s.database.sqlite_path().unwrap(),
            PathBuf::from("data/autosend.db")
        );
        assert_eq!(s.email_backend, EmailBackend::File);
        assert_eq!(s.email_subject_prefix, "[autosend] ");
        assert_eq!(s.error_email_chunk_size, 5000);
        assert_eq!(s.ignorable_404_urls.len(), 6);
        assert!(s.allowed_hosts.allows("localhost:8000"));
        assert!(!s.allowed_hosts.allows("evil.example"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::from_vars(&vars(&[
            ("SECRET_KEY", "short"),
            ("BIND", "nowhere"),
            ("SMTP_PORT", "99999"),
            ("EMAIL_BACKEND", "pigeon"),
            ("INTERNAL_IPS", "10.0.0.0/8, not-an-ip"),
            ("TIME_ZONE", "Mars/Olympus"),
            ("DEBUG", "maybe"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "BIND",
            "SMTP_PORT",
            "EMAIL_BACKEND",
            "INTERNAL_IPS",
            "TIME_ZONE",
            "DEBUG",
        ] {
            assert!(
                text.contains(&format!("{name}: ")),
                "{name} missing in {text}"
            );
        }
        assert_eq!(err.0.len(), 6, "{text}");
    }

    #[test]
    fn short_secret_key_is_refused() {
        let err = Settings::from_vars(&vars(&[("SECRET_KEY", "too-short")])).unwrap_err();
        assert!(err.0[0].starts_with("SECRET_KEY: "));
    }

    #[test]
    fn postgres_requires_a_secret_key() {
        let err =
            Settings::from_vars(&vars(&[("DATABASE_URL", "postgres://u:pw@db/x")])).unwrap_err();
        assert!(err.0[0].starts_with("SECRET_KEY: required"), "{err}");
    }

    #[test]
    fn seed_db_variables_build_a_postgres_url() {
        let s = Settings::from_vars(&vars(&[
            ("SECRET_KEY", KEY),
            ("DB_NAME", "autosend"),
            ("DB_USER", "mail"),
            ("DB_PASSWORD", "p@ss word"),
            ("DB_HOST", "db.internal"),
            ("DB_PORT", "6432"),
        ]))
        .unwrap();
        assert_eq!(s.database.backend, DatabaseBackend::Postgres);
        assert_eq!(
            s.database.url.expose(),
            "postgres://mail:p%40ss%20word@db.internal:6432/autosend"
        );
        assert!(!s.database.display_url().contains("word"));
        assert!(s.secret_values().contains(&"p@ss word".to_string()));
    }

    #[test]
    fn secret_key_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let v = vars(&[("DATA_DIR", data.to_str().unwrap())]);
        let first = Settings::from_vars(&v).unwrap();
        let second = Settings::from_vars(&v).unwrap();
        assert_eq!(first.secret_key, second.secret_key);
        assert!(first.secret_key.expose().len() >= MIN_SECRET_KEY_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("secret_key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = Settings::from_vars(&vars(&[
            ("SECRET_KEY", KEY),
            ("SMTP_PASSWORD", "hunter2-smtp"),
            ("REDIS_URL", "redis://:redispw@localhost/0"),
        ]))
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains(KEY));
        assert!(!debug.contains("hunter2-smtp"));
        assert!(!debug.contains("redispw"));
    }

    #[test]
    fn admins_accept_names_and_bare_addresses() {
        let s = Settings::from_vars(&vars(&[
            ("SECRET_KEY", KEY),
            ("ADMINS", "Ops Team <ops@example.com>, dev@example.com"),
        ]))
        .unwrap();
        assert_eq!(s.admins.len(), 2);
        assert_eq!(s.admins[0].email.to_string(), "ops@example.com");
    }

    #[test]
    fn allowed_hosts_wildcards_and_subdomains() {
        let any = AllowedHosts::Any;
        assert!(any.allows("whatever.example:8080"));
        let list = AllowedHosts::List(vec![".example.com".into(), "[::1]".into()]);
        assert!(list.allows("example.com"));
        assert!(list.allows("mail.example.com:443"));
        assert!(!list.allows("badexample.com"));
    }
}
