//! The database: one `sqlx::Any` pool over SQLite or PostgreSQL, and its migrations.
//!
//! Owns the connection setup per backend (SQLite: file created, WAL, foreign keys, busy
//! timeout) and the two migration sets, `migrations/sqlite` and `migrations/postgres`, whose
//! file names match one for one.

pub mod bulk;
pub mod dashboard;
pub mod deliveries;
pub mod error_groups;
pub mod mailings;
pub mod messages;
pub mod recipients;
pub mod runs;
pub mod search;
pub mod sessions;
pub mod stats;
pub mod unsubscribes;
pub mod users;
pub mod versions;

use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::config::{DatabaseBackend, DatabaseSettings};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The pool and which dialect it speaks (for the few queries that must differ).
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: DatabaseBackend,
}

impl Db {
    /// Opens the pool; SQLite's file and directory are created when missing.
    pub async fn connect(settings: &DatabaseSettings, log_sql: bool) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        if let Some(path) = settings.sqlite_path()
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create database directory {}", dir.display()))?;
        }
        let url = match settings.backend {
            // mode=rwc: create the file on first start.
            DatabaseBackend::Sqlite if !settings.url.expose().contains("mode=") => {
                let sep = if settings.url.expose().contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}mode=rwc", settings.url.expose())
            }
            _ => settings.url.expose().to_string(),
        };
        let mut options: AnyConnectOptions = url
            .parse()
            .with_context(|| format!("invalid DATABASE_URL {}", settings.display_url()))?;
        options = if log_sql {
            options.log_statements(log::LevelFilter::Debug)
        } else {
            options.log_statements(log::LevelFilter::Trace)
        };
        options = options.log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1));

        let backend = settings.backend;
        let pool_options = match backend {
            // One writer at a time is SQLite's nature; a few readers share WAL snapshots.
            DatabaseBackend::Sqlite => AnyPoolOptions::new().max_connections(8),
            DatabaseBackend::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == DatabaseBackend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| {
                format!("cannot connect to the database {}", settings.display_url())
            })?;
        Ok(Self { pool, backend })
    }

    /// Applies every pending migration of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            DatabaseBackend::Sqlite => &SQLITE_MIGRATIONS,
            DatabaseBackend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .context("cannot apply database migrations")
    }

    /// A cheap round trip, for `/healthz` and `check`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("database did not answer")?;
        Ok(())
    }

    /// Number of user accounts (for the first-start hint of `serve`).
    pub async fn count_users(&self) -> anyhow::Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM users")
            .fetch_one(&self.pool)
            .await
            .context("cannot count users")?;
        Ok(n)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Now as unix milliseconds, the form every timestamp column stores.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
