//! The database: one `sqlx::Any` pool over SQLite or PostgreSQL, and its migrations.
//!
//! Owns the connection setup per backend (SQLite: file created, WAL, foreign keys, busy
//! timeout), write transactions ([`Db::begin_write`]), which database errors are passing
//! trouble rather than bugs ([`is_transient`]), the health probe that writes, the marker that
//! tells a lost SQLite file from a first start, and the two migration sets,
//! `migrations/sqlite` and `migrations/postgres`, whose file names match one for one.

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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection as _, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::{DatabaseBackend, DatabaseSettings};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite write waits for the write lock before giving up with "database is
/// locked" (then 503). Well above the longest write transaction autosend holds — an import
/// chunk of [`WRITE_CHUNK_ROWS`] rows, a run's start (one `INSERT … SELECT` of its
/// deliveries) — so a save waits its turn instead of failing. Transactions and session
/// writes of one process queue in [`Db::write_turn`] first; this wait covers the other
/// writers: single statements, and other processes (a separate `scheduler`).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `/healthz` waits for its heartbeat write once it has the write turn: a write
/// that takes longer is stuck (a lock held by another process, a hung disk).
const HEALTH_WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long `/healthz` waits in the queue for this process's write turn: chained import
/// chunks or a big run start are ordinary load, and a liveness probe answered 503 behind
/// them would restart a healthy instance mid-import. The busy timeout is the longest any
/// write is meant to wait for a writer before it.
const HEALTH_TURN_TIMEOUT: Duration = BUSY_TIMEOUT;

/// Rows written per transaction by bulk writes (imports, seeding): short enough that no
/// transaction holds SQLite's single write lock for long.
pub const WRITE_CHUNK_ROWS: usize = 1000;

/// The pool and which dialect it speaks (for the few queries that must differ).
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: DatabaseBackend,
    /// The SQLite file and its identity when opened, to notice it deleted or replaced.
    sqlite_file: Option<(PathBuf, FileId)>,
    /// SQLite: this process's write transactions take turns here, first come first served.
    /// SQLite's own busy handler polls with growing sleeps, so a bulk writer that commits and
    /// begins again at once kept winning, and a save waiting meanwhile starved past the busy
    /// timeout ("database is locked").
    write_turn: Option<Arc<Mutex<()>>>,
}

/// A write transaction and, on SQLite, this process's write turn, held until it commits or
/// drops (rolling back). Used like the transaction's connection: `&mut *tx`.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// What a SQLite file is on disk (device, inode): a file deleted while open keeps working for
/// the process that holds it, so only its identity tells that the path now holds nothing.
type FileId = (u64, u64);

fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Whether opening may create a missing SQLite file that once held data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Every command but `migrate`: a lost database is an operator's problem to look at.
    Refuse,
    /// `migrate`, run on purpose: starts over with an empty database.
    Create,
}

/// The file beside a SQLite database that says it held data: written after its first
/// migration, it outlives the database file when that alone is deleted. A volume that is not
/// mounted takes the marker with it, so that case looks like a first start (README).
pub fn marker_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".marker");
    PathBuf::from(name)
}

/// Why the probe of [`Db::health`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// No connection, or not even a read answered.
    Unreachable,
    /// Reads work, a write does not (disk full, read-only, locked past the busy timeout).
    Unwritable,
    /// The SQLite file was deleted or replaced under the running process.
    FileMissing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Unreachable => "unreachable",
            Health::Unwritable => "unwritable",
            Health::FileMissing => "file missing",
        }
    }
}

/// Whether a database error is passing trouble (locked, busy, full, out of connections, a
/// broken socket) that a retry a moment later can get past: answered 503 with `Retry-After`,
/// never 500. SQLite's primary result codes (the extended code's low byte): BUSY 5, LOCKED 6,
/// NOMEM 7, IOERR 10, FULL 13, CANTOPEN 14, PROTOCOL 15; PostgreSQL's SQLSTATE classes 53
/// (insufficient resources), 57P (operator intervention) and 08 (connection), serialization
/// failures and deadlocks (40001, 40P01) and lock timeouts (55P03).
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if let Ok(n) = code.parse::<i64>() {
                return matches!(n & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15);
            }
            code.starts_with("53")
                || code.starts_with("57P")
                || code.starts_with("08")
                || matches!(code.as_ref(), "40001" | "40P01" | "55P03")
        }
        _ => false,
    }
}

/// [`is_transient`] anywhere in an error's cause chain.
pub fn is_transient_chain(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_transient)
    })
}

impl Db {
    /// Opens the pool; SQLite's file and directory are created when missing — unless the
    /// file once held data (its marker is there) and `missing` says to refuse.
    pub async fn connect(settings: &DatabaseSettings, log_sql: bool) -> anyhow::Result<Self> {
        Self::open(settings, log_sql, Missing::Refuse).await
    }

    pub async fn open(
        settings: &DatabaseSettings,
        log_sql: bool,
        missing: Missing,
    ) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        if let Some(path) = settings.sqlite_path() {
            prepare_sqlite_file(&path, missing)?;
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
            .after_release(move |conn, _meta| {
                Box::pin(async move {
                    if backend != DatabaseBackend::Sqlite {
                        return Ok(true);
                    }
                    // A write that failed with "disk full" can leave a connection that
                    // believes it is still in a transaction (SQLite rolled it back itself;
                    // the driver's rollback then fails): reused, every later BEGIN on it
                    // failed, or nested a SAVEPOINT that kept the write lock, and all writes
                    // answered "database is locked" until a restart. The ping lets a queued
                    // rollback run first; a connection still in a transaction is closed.
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == DatabaseBackend::Sqlite {
                        let pragmas = format!(
                            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                             PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL;",
                            BUSY_TIMEOUT.as_millis()
                        );
                        conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| {
                format!("cannot connect to the database {}", settings.display_url())
            })?;
        let sqlite_file = match settings.sqlite_path() {
            Some(path) => {
                let id = file_id(&path)
                    .with_context(|| format!("cannot read the database file {}", path.display()))?;
                Some((path, id))
            }
            None => None,
        };
        Ok(Self {
            pool,
            backend,
            sqlite_file,
            write_turn: (backend == DatabaseBackend::Sqlite).then(|| Arc::new(Mutex::new(()))),
        })
    }

    /// A transaction that will write. On SQLite it first waits for this process's write
    /// turn, then takes the write lock at `BEGIN IMMEDIATE`, where the busy timeout waits for
    /// other processes: a deferred transaction that reads first and writes later fails at
    /// once with "database is locked" when another writer got in between (SQLite cannot
    /// upgrade its snapshot, and the busy handler is not consulted).
    pub async fn begin_write(&self) -> anyhow::Result<WriteTx> {
        let turn = self.write_turn().await;
        let tx = match self.backend {
            DatabaseBackend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            DatabaseBackend::Postgres => self.pool.begin().await,
        };
        Ok(WriteTx {
            tx: tx.context("cannot begin a write transaction")?,
            _turn: turn,
        })
    }

    /// This process's write turn on SQLite, for a write outside [`Db::begin_write`] that
    /// users wait on (a session saved on every request): held, it cannot starve behind a
    /// bulk writer. Nothing on PostgreSQL, whose row locks queue fairly.
    pub async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.write_turn {
            Some(turn) => Some(turn.clone().lock_owned().await),
            None => None,
        }
    }

    /// Applies every pending migration of this backend; returns the descriptions of those it
    /// applied (empty: the database was up to date). A SQLite database gets its marker.
    pub async fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let migrator = match self.backend {
            DatabaseBackend::Sqlite => &SQLITE_MIGRATIONS,
            DatabaseBackend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let before = self.applied_versions().await?;
        migrator
            .run(&self.pool)
            .await
            .context("cannot apply database migrations")?;
        if let Some((path, _)) = &self.sqlite_file {
            write_marker(path)?;
        }
        Ok(migrator
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| format!("{}_{}", m.version, m.description.replace(' ', "_")))
            .collect())
    }

    /// Versions in sqlx's bookkeeping table; none when it does not exist yet. Only a missing
    /// table means none: a read that fails is an error, not "nothing applied" (which made
    /// `migrate` list every migration as just applied).
    async fn applied_versions(&self) -> anyhow::Result<Vec<i64>> {
        let exists = match self.backend {
            DatabaseBackend::Sqlite => {
                "SELECT CAST(COUNT(*) AS BIGINT) FROM sqlite_master \
                 WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            DatabaseBackend::Postgres => {
                "SELECT CAST(COUNT(*) AS BIGINT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
            }
        };
        let tables: i64 = sqlx::query_scalar(exists)
            .fetch_one(&self.pool)
            .await
            .context("cannot look for the migrations table")?;
        if tables == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
            .context("cannot read the applied migrations")
    }

    /// A cheap round trip (`check`, which runs before any migration, and `/healthz`).
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("database did not answer")?;
        Ok(())
    }

    /// For `/healthz`: the SQLite file still the one opened, a read, and a write (one
    /// heartbeat row, upserted: a full disk or a stuck write lock fails here while reads
    /// still work).
    pub async fn health(&self) -> (Health, Option<anyhow::Error>) {
        if let Some((path, id)) = &self.sqlite_file {
            match file_id(path) {
                Ok(now) if now == *id => {}
                Ok(_) => {
                    let err = anyhow::anyhow!("{} was replaced by another file", path.display());
                    return (Health::FileMissing, Some(err));
                }
                Err(err) => {
                    let err = anyhow::Error::new(err)
                        .context(format!("the database file {} is gone", path.display()));
                    return (Health::FileMissing, Some(err));
                }
            }
        }
        if let Err(err) = self.ping().await {
            return (Health::Unreachable, Some(err));
        }
        // Queued like every writer of this process, so ordinary load is not mistaken for a
        // fault; only the write itself, once it is this probe's turn, must be quick.
        let turn = match tokio::time::timeout(HEALTH_TURN_TIMEOUT, self.write_turn()).await {
            Ok(turn) => turn,
            Err(_) => {
                let err = anyhow::anyhow!(
                    "no write turn for the health heartbeat within {} s",
                    HEALTH_TURN_TIMEOUT.as_secs()
                );
                return (Health::Unwritable, Some(err));
            }
        };
        let write = sqlx::query(
            "INSERT INTO health_heartbeat (id, beat_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
        )
        .bind(now_ms())
        .execute(&self.pool);
        let written = tokio::time::timeout(HEALTH_WRITE_TIMEOUT, write).await;
        drop(turn);
        match written {
            Ok(Ok(_)) => (Health::Ok, None),
            Ok(Err(err)) => (
                Health::Unwritable,
                Some(anyhow::Error::new(err).context("cannot write the health heartbeat")),
            ),
            Err(_) => (
                Health::Unwritable,
                Some(anyhow::anyhow!(
                    "the health heartbeat was not written within {} s",
                    HEALTH_WRITE_TIMEOUT.as_secs()
                )),
            ),
        }
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

/// Creates the folder of a SQLite file (checking it is writable: SQLite keeps its `-wal` and
/// `-shm` files beside the database), and refuses a missing file whose marker says it held
/// data unless `missing` allows starting over.
fn prepare_sqlite_file(path: &Path, missing: Missing) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the database folder {}", dir.display()))?;
    let probe = dir.join(format!(".autosend-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("the database folder {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let marker = marker_path(path);
    if !path.exists() && marker.exists() {
        match missing {
            Missing::Refuse => anyhow::bail!(
                "the database file {} is missing, but {} beside it says it held data (the \
                 file was deleted, moved or left out of a restore). Restore it from a backup, \
                 or run `autosend migrate` to start over with an empty database.",
                path.display(),
                marker.display()
            ),
            Missing::Create => tracing::warn!(
                database = %path.display(),
                "the database file was missing although it held data; creating an empty one"
            ),
        }
    }
    Ok(())
}

fn write_marker(database: &Path) -> anyhow::Result<()> {
    let marker = marker_path(database);
    if marker.exists() {
        return Ok(());
    }
    let text = format!(
        "autosend: {} holds data (migrated {}).\n\
         If that file is missing, autosend refuses to start rather than begin empty: restore \
         it from a backup, or run `autosend migrate` to start over.\n",
        database.display(),
        time::OffsetDateTime::now_utc()
    );
    std::fs::write(&marker, text)
        .with_context(|| format!("cannot write the database marker {}", marker.display()))
}

/// Now as unix milliseconds (the clock's home is [`crate::clock`]; named here too because
/// every query that stamps a row asks for it).
pub use crate::clock::now_ms;
