//! A fault-test world: a temp directory, a database (an SQLite file, or a fresh PostgreSQL
//! database from `TEST_DATABASE_URL`), the variables the autosend processes run with, data
//! seeded through the library, and the processes themselves (the real binary).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use autosend::config::Settings;
use autosend::db::Db;
use autosend::db::mailings::{self, NewMailing};
use autosend::db::recipients::{self, ImportRow};
use autosend::db::runs::{self, Run};
use autosend::domain::{Period, RunStatus};
use tokio::process::{Child, Command};

use crate::html::{fetch, meta_csrf};
use crate::pg::PgDatabase;
use crate::sink::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_autosend");

/// The binary under test: this build's, or `AUTOSEND_BIN` (another build of autosend, to
/// measure the same scenario on an older version for RELIABILITY.md).
fn bin() -> String {
    test_env("AUTOSEND_BIN").unwrap_or_else(|| BIN.to_string())
}
const SECRET_KEY: &str = "fault-test-secret-key-0123456789abcdef-0123";
pub const PASSWORD: &str = "correct horse battery";
pub const OWNER: &str = "owner@example.com";

pub struct World {
    pub dir: tempfile::TempDir,
    vars: HashMap<String, String>,
    /// The test's own connection, straight to the database (never through a test proxy).
    pub db: Db,
    /// Dropped with the world (after the processes, which are fields of the test).
    _pg: Option<PgDatabase>,
    spawned: AtomicUsize,
}

impl World {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("autosend.db").display());
        Self::new(dir, url, None).await
    }

    /// SQLite at `path` (e.g. on a filesystem the test controls).
    pub async fn sqlite_at(path: &std::path::Path) -> Self {
        let url = format!("sqlite://{}", path.display());
        Self::new(tempfile::tempdir().unwrap(), url, None).await
    }

    /// The exit code and output of the binary running `args` to its end.
    pub async fn run_to_end(&self, args: &[&str]) -> (i32, String) {
        let mut app = self.spawn(args, &[]);
        let Ok(status) = tokio::time::timeout(Duration::from_secs(60), app.child.wait()).await
        else {
            // Which command hung and what it printed until then: the failure must say.
            let _ = app.child.kill().await;
            panic!(
                "autosend {args:?} did not end within 60 s; its output:\n{}",
                app.output()
            );
        };
        (status.unwrap().code().unwrap_or(-1), app.output())
    }

    /// PostgreSQL when `TEST_DATABASE_URL` is set, else SQLite (like the api tests).
    pub async fn from_env() -> Self {
        match Self::postgres("").await {
            Some(world) => world,
            None => Self::sqlite().await,
        }
    }

    /// `None` (and a "skipped" line naming `test`) when `TEST_DATABASE_URL` is unset.
    pub async fn postgres(test: &str) -> Option<Self> {
        let Some(admin_url) = test_env("TEST_DATABASE_URL") else {
            if !test.is_empty() {
                eprintln!("skipped: {test} needs TEST_DATABASE_URL (PostgreSQL)");
            }
            return None;
        };
        let pg = PgDatabase::create(&admin_url).await;
        let url = pg.url.clone();
        Some(Self::new(tempfile::tempdir().unwrap(), url, Some(pg)).await)
    }

    async fn new(dir: tempfile::TempDir, database_url: String, pg: Option<PgDatabase>) -> Self {
        let mut vars = HashMap::new();
        for (k, v) in [
            ("SECRET_KEY", SECRET_KEY.to_string()),
            ("DATABASE_URL", database_url),
            ("DATA_DIR", dir.path().join("data").display().to_string()),
            ("LOG_DIR", dir.path().join("logs").display().to_string()),
            ("EMAIL_BACKEND", "file".to_string()),
            // Ticks every second, so a restarted process resumes at once.
            ("SCHEDULER_INTERVAL_SECS", "1".to_string()),
            ("LOG_LEVEL", "info,sqlx=warn".to_string()),
        ] {
            vars.insert(k.to_string(), v);
        }
        let settings = Settings::from_vars(&vars).expect("fault-test settings are valid");
        let db = Db::connect(&settings.database, false).await.unwrap();
        db.migrate().await.unwrap();
        Self {
            dir,
            vars,
            db,
            _pg: pg,
            spawned: AtomicUsize::new(0),
        }
    }

    /// The PostgreSQL URL the processes use (to rewrite it through a proxy).
    pub fn database_url(&self) -> &str {
        &self.vars["DATABASE_URL"]
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_string(), value.into());
    }

    /// Sends mailings over SMTP to the sink on `port`.
    pub fn smtp(&mut self, port: u16) {
        self.set("EMAIL_BACKEND", "smtp");
        self.set("SMTP_HOST", "127.0.0.1");
        self.set("SMTP_PORT", port.to_string());
        // A dead server is noticed in seconds, not the default ten.
        self.set("SMTP_TIMEOUT_SECS", "2");
    }

    /// An active user [`OWNER`] with [`PASSWORD`].
    pub async fn owner(&self) -> i64 {
        let new = autosend::db::users::NewUser {
            email: OWNER.to_string(),
            password_hash: autosend::accounts::passwords::hash(PASSWORD).await.unwrap(),
            full_name: "Owner".to_string(),
            is_active: true,
            is_superuser: false,
            view_all_mailings: false,
            disable_mailing: false,
            must_change_password: false,
        };
        autosend::db::users::create(&self.db, &new).await.unwrap()
    }

    /// A `once` mailing of `owner` to `n` new recipients, due now (its window opened a minute
    /// ago), so the first scheduler tick starts its run. Returns its id and the addresses.
    pub async fn due_mailing(&self, owner: i64, n: usize, tag: &str) -> (i64, Vec<String>) {
        let emails: Vec<String> = (0..n).map(|i| format!("{tag}{i:05}@example.com")).collect();
        let rows: Vec<ImportRow> = emails
            .iter()
            .map(|email| ImportRow {
                email: email.clone(),
                full_name: format!("Recipient {email}"),
                comment: String::new(),
            })
            .collect();
        recipients::upsert_many(&self.db, owner, &rows)
            .await
            .unwrap();
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM recipients WHERE owner_id = $1 AND email LIKE $2 ORDER BY id",
        )
        .bind(owner)
        .bind(format!("{tag}%"))
        .fetch_all(&self.db.pool)
        .await
        .unwrap();
        assert_eq!(ids.len(), n);
        let message = autosend::db::messages::insert(
            &self.db,
            owner,
            "Hello {{full_name}}",
            "Dear {{ full_name }}, this goes to {{email}}.",
            None,
        )
        .await
        .unwrap();
        let now = autosend::db::now_ms();
        let mailing = mailings::create_mailing(
            &self.db,
            &NewMailing {
                owner_id: owner,
                message_id: message,
                recipient_ids: ids,
                start_at: now - 60_000,
                end_at: now + 24 * 3_600_000,
                period: Period::Once,
            },
            now,
        )
        .await
        .unwrap();
        (mailing, emails)
    }

    /// The binary running `args` with this world's variables plus `extra`; its output goes
    /// to a file in the world's directory (a pipe nobody reads would block it).
    pub fn spawn(&self, args: &[&str], extra: &[(&str, String)]) -> Autosend {
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.path().join(format!("{}-{n}.out", args[0]));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin())
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.vars)
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("autosend starts");
        Autosend {
            child,
            port: None,
            log,
        }
    }

    /// `autosend serve` on a free port, once `/healthz` answers 200.
    pub async fn serve(&self) -> Autosend {
        self.serve_with(&[]).await
    }

    pub async fn serve_with(&self, extra: &[(&str, String)]) -> Autosend {
        let port = free_port();
        let mut extra = extra.to_vec();
        extra.push(("BIND", format!("127.0.0.1:{port}")));
        let mut app = self.spawn(&["serve"], &extra);
        app.port = Some(port);
        let client = http_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = app.child.try_wait() {
                panic!("serve exited with {status}:\n{}", app.output());
            }
            let ok = client
                .get(app.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return app;
            }
            assert!(
                Instant::now() < deadline,
                "serve never became healthy:\n{}",
                app.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The mailing's runs, newest first.
    pub async fn runs(&self, mailing_id: i64) -> Vec<Run> {
        runs::list_for_mailing(&self.db, mailing_id, 100, 0)
            .await
            .unwrap()
            .0
    }

    /// The mailing's one run once it is no longer running.
    pub async fn finished_run(&self, mailing_id: i64, within: Duration, why: &str) -> Run {
        wait_until(why, within, || async {
            let runs = self.runs(mailing_id).await;
            runs.len() == 1 && runs[0].status != RunStatus::Running
        })
        .await;
        self.runs(mailing_id).await.remove(0)
    }

    /// Deliveries of the mailing's runs by status, e.g. `[("sent", 2000)]`.
    pub async fn delivery_statuses(&self, mailing_id: i64) -> Vec<(String, i64)> {
        sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE mailing_id = $1 \
             GROUP BY status ORDER BY status",
        )
        .bind(mailing_id)
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }
}

/// An autosend process, killed when dropped.
pub struct Autosend {
    child: Child,
    port: Option<u16>,
    log: PathBuf,
}

impl Autosend {
    pub fn url(&self, path: &str) -> String {
        let port = self.port.expect("a serving process");
        format!("http://127.0.0.1:{port}{path}")
    }

    /// SIGKILL: no shutdown, no flush, leases left as they were.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("autosend is killed");
    }

    /// Sends `signal` (`TERM`, `HUP`, `INT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the process is running").to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (at most `within`) for the process to exit on its own.
    pub async fn exited(&mut self, within: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("the process did not exit in time:\n{}", self.output()),
        }
    }

    /// What the process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A browser: cookies kept, redirects shown, and no request waits forever (a hang is a
/// failure, not a stuck test).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Logs `client` in as [`OWNER`] on `app`.
pub async fn login(client: &reqwest::Client, app: &Autosend) {
    let token = csrf_token_of(client, app, "/users/login").await;
    let resp = client
        .post(app.url("/users/login"))
        .form(&[
            ("email", OWNER),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "login failed");
}

/// The CSRF token of the page at `path` (its `csrf-token` meta tag), as `client` sees it.
pub async fn csrf_token_of(client: &reqwest::Client, app: &Autosend, path: &str) -> String {
    let page = fetch(client.get(app.url(path))).await;
    meta_csrf(&page.text).expect("a csrf-token meta tag")
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A test variable, unset when empty.
pub fn test_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
