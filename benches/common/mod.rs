//! What every benchmark needs: autosend on port 0 (SQLite in a temp dir, or a fresh
//! PostgreSQL database next to `BENCH_DATABASE_URL`, dropped at the end), one logged-in owner,
//! and a place for the raw figures.

#![allow(dead_code, reason = "each benchmark binary uses only part of this")]

pub mod seed;

use std::collections::HashMap;

use autosend::config::Settings;
use autosend::startup::Application;
use autosend::state::AppState;

pub const PASSWORD: &str = "bench password 1";

/// Where a benchmark's autosend keeps its data: the environment it is built from (a temp dir
/// for SQLite, data and logs; or a fresh PostgreSQL database made next to
/// `BENCH_DATABASE_URL`, with `BENCH_REDIS_URL` as its cache when set), shared with child
/// `autosend` processes.
pub struct BenchEnv {
    pub vars: HashMap<String, String>,
    /// `sqlite` or `postgres`, for file names and titles.
    pub backend: &'static str,
    /// Removed with the data and logs when the benchmark ends.
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl BenchEnv {
    pub async fn create(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert(
            "SECRET_KEY".into(),
            "bench-secret-key-0123456789abcdef0123456789".into(),
        );
        vars.insert("BIND".into(), "127.0.0.1:0".into());
        vars.insert(
            "DATA_DIR".into(),
            dir.path().join("data").display().to_string(),
        );
        vars.insert(
            "LOG_DIR".into(),
            dir.path().join("logs").display().to_string(),
        );
        vars.insert("EMAIL_BACKEND".into(), "memory".into());
        vars.insert("SCHEDULER_INTERVAL_SECS".into(), "0".into());
        let mut pg = None;
        if let Some(admin) = std::env::var("BENCH_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let db_name = format!("autosend_bench_{name}_{}", std::process::id());
            let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                r#"CREATE DATABASE "{db_name}""#
            )))
            .execute(&mut conn)
            .await
            .unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&db_name);
            vars.insert("DATABASE_URL".into(), url.to_string());
            pg = Some((admin, db_name));
        }
        if let Some(redis) = std::env::var("BENCH_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            vars.insert("REDIS_URL".into(), redis);
            vars.insert(
                "REDIS_PREFIX".into(),
                format!("bench{}:", std::process::id()),
            );
        }
        let backend = if pg.is_some() { "postgres" } else { "sqlite" };
        Self {
            vars,
            backend,
            _dir: dir,
            pg,
        }
    }

    pub fn settings(&self) -> Settings {
        Settings::from_vars(&self.vars).unwrap()
    }

    /// Prints the figures, keeps them in `target/bench/{name}-{backend}.txt`, and drops the
    /// PostgreSQL database made for the run (`db`, if open, is closed first).
    pub async fn finish(self, name: &str, report: &str, db: Option<&autosend::db::Db>) {
        println!("{report}");
        std::fs::create_dir_all("target/bench").unwrap();
        std::fs::write(format!("target/bench/{name}-{}.txt", self.backend), report).unwrap();
        if let Some(db) = db {
            db.close().await;
        }
        if let Some((admin, db_name)) = self.pg {
            use sqlx::Connection;
            let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

pub struct BenchApp {
    pub base: String,
    pub state: AppState,
    /// A browser logged in as `owner`.
    pub client: reqwest::Client,
    pub owner: i64,
    /// `sqlite` or `postgres`, for file names and titles.
    pub backend: &'static str,
    /// The environment the app was built from, for child `autosend` processes on the same
    /// database (the delivery benchmark runs `send-mailing` as its own process).
    pub vars: HashMap<String, String>,
    env: BenchEnv,
}

impl BenchApp {
    /// Starts autosend and logs in a fresh owner; `name` tells benchmark databases apart.
    pub async fn start(name: &str) -> Self {
        let env = BenchEnv::create(name).await;
        let app = Application::build(env.settings()).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let state = app.state().clone();
        tokio::spawn(app.run_until_stopped(std::future::pending()));

        let owner = autosend::db::users::create(
            &state.db,
            &autosend::db::users::NewUser {
                email: "bench@example.com".into(),
                password_hash: autosend::accounts::passwords::hash(PASSWORD).await.unwrap(),
                full_name: "Bench".into(),
                is_active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        log_in(&client, &base, "bench@example.com").await;
        Self {
            base,
            state,
            client,
            owner,
            backend: env.backend,
            vars: env.vars.clone(),
            env,
        }
    }

    /// Prints the figures, keeps them in `target/bench/{name}-{backend}.txt`, and drops the
    /// PostgreSQL database made for the run.
    pub async fn finish(self, name: &str, report: &str) {
        self.env.finish(name, report, Some(&self.state.db)).await;
    }
}

/// Logs `client` (which keeps cookies) in as `email` through the login form.
pub async fn log_in(client: &reqwest::Client, base: &str, email: &str) {
    let html = client
        .get(format!("{base}/users/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    let token = &html[start..start + html[start..].find('"').unwrap()];
    let resp = client
        .post(format!("{base}/users/login"))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "login as {email}");
}
