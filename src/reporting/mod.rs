//! Error reporting (SPEC §8), one file per job:
//! - the report: its model ([`report`]), the masking every report goes through ([`mask`]), its
//!   backtrace ([`backtrace`]), grouping ([`fingerprint`]), and its renderings ([`text`],
//!   [`html`]);
//! - the e-mails: subjects ([`subject`]), cutting into parts ([`chunk`]), composing report
//!   e-mails and storm summaries ([`compose`]);
//! - the notifier: the queue ([`notifier`]), the policy that decides what happens to a report
//!   ([`policy`], no I/O) and the worker that carries it out ([`worker`]);
//! - broken links for MANAGERS ([`broken_links`]).
//!
//! The edge middleware builds an [`ErrorReport`] (or hands the raw parts to
//! [`ErrorNotifier::report_request`]) and calls [`ErrorNotifier::report`]; 404s go to
//! [`ErrorNotifier::report_not_found`]. Everything else happens in the [`ReportWorker`].
//! Reporting depends on `mail` to send; `mail` never depends on reporting.

pub mod backtrace;
pub mod broken_links;
pub mod chunk;
pub mod compose;
pub mod fingerprint;
pub mod groups;
pub mod html;
pub mod mask;
pub mod notifier;
pub mod policy;
pub mod report;
pub mod subject;
pub mod text;
pub mod worker;

pub use crate::clock::Clock;
pub use broken_links::{NotFound, Skip};
pub use html::render_html;
pub use notifier::{ErrorNotifier, NotifierOptions, ReportingStats};
pub use report::{
    BackgroundTask, ErrorDetails, ErrorReport, RawRequest, ReportSource, RequestInfo,
};
pub use text::render_text;
pub use worker::ReportWorker;

/// Settings, databases and mail for the tests of this module and of `db::error_groups`.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::config::Settings;
    use crate::db::Db;
    use crate::mail::{Mailer, Outbox};
    use crate::reporting::report::{
        ErrorDetails, ErrorReport, RawRequest, ReportSource, RequestInfo,
    };

    /// 40 characters, as configured in every test.
    pub const SECRET_KEY: &str = "0123456789abcdefghij0123456789abcdefghij";

    /// Settings with the memory mailer, ADMINS and MANAGERS set, then `pairs` on top
    /// (an empty value unsets a variable).
    pub fn settings_with(pairs: &[(&str, &str)]) -> Settings {
        let mut vars: HashMap<String, String> = [
            ("SECRET_KEY", SECRET_KEY),
            ("EMAIL_BACKEND", "memory"),
            ("ADMINS", "Ops <ops@example.com>"),
            ("MANAGERS", "pm@example.com"),
            ("SERVER_EMAIL", "server@example.com"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            vars.insert(k.to_string(), v.to_string());
        }
        Settings::from_vars(&vars).expect("test settings are valid")
    }

    /// Keeps a test database alive: its temporary directory, and the PostgreSQL database
    /// made for it when `TEST_DATABASE_URL` is set (dropped with it).
    pub struct TestDb {
        pub dir: tempfile::TempDir,
        pg: Option<(String, String)>,
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let Some((admin_url, name)) = self.pg.take() else {
                return;
            };
            // Drop runs inside the test's runtime; a thread with its own runtime may block.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    use sqlx::Connection as _;
                    if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin_url).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }

    /// A migrated database: SQLite in a temporary directory, or a fresh PostgreSQL database
    /// when `TEST_DATABASE_URL` (an admin URL) is set.
    pub async fn test_db() -> (TestDb, Db) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut guard = TestDb { dir, pg: None };
        let url = match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                use sqlx::Connection as _;
                sqlx::any::install_default_drivers();
                let name = format!("autosend_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::AnyConnection::connect(&admin_url)
                    .await
                    .expect("TEST_DATABASE_URL is reachable");
                // The name is ours (a uuid), never input.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
                    .execute(&mut conn)
                    .await
                    .expect("can create a test database");
                let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                guard.pg = Some((admin_url, name));
                url.to_string()
            }
            _ => format!("sqlite://{}/t.db", guard.dir.path().display()),
        };
        let settings = settings_with(&[("DATABASE_URL", &url)]);
        let db = Db::connect(&settings.database, false)
            .await
            .expect("connect");
        db.migrate().await.expect("migrate");
        (guard, db)
    }

    /// Everything a notifier needs, on a fresh database.
    pub struct TestEnv {
        pub _db_guard: TestDb,
        pub settings: Arc<Settings>,
        pub db: Db,
        pub mailer: Mailer,
        pub outbox: Outbox,
    }

    pub async fn test_env(pairs: &[(&str, &str)]) -> TestEnv {
        let (guard, db) = test_db().await;
        let data = guard.dir.path().join("data");
        let logs = guard.dir.path().join("logs");
        let mut all = vec![
            ("DATA_DIR", data.to_str().unwrap()),
            ("LOG_DIR", logs.to_str().unwrap()),
        ];
        all.extend_from_slice(pairs);
        let settings = Arc::new(settings_with(&all));
        let mailer = Mailer::from_settings(&settings).expect("memory mailer");
        // Empty for the other backends, which some tests use to make sending fail.
        let outbox = mailer.outbox().unwrap_or_default();
        TestEnv {
            _db_guard: guard,
            settings,
            db,
            mailer,
            outbox,
        }
    }

    /// The plain-text body of a parsed e-mail (its text/plain part), with `\n` line ends.
    pub fn body_text(mail: &mailparse::ParsedMail<'_>) -> String {
        let part = mail
            .subparts
            .iter()
            .find(|p| p.ctype.mimetype == "text/plain")
            .unwrap_or(mail);
        part.get_body()
            .expect("decodable body")
            .replace("\r\n", "\n")
    }

    /// A request to `url` as the edge hands it over: a POST by a logged-in user.
    pub fn raw(url: &str) -> RawRequest {
        RawRequest {
            method: "POST".into(),
            url: url.into(),
            route: "/clients/{id}".into(),
            form: vec![],
            headers: vec![],
            user: Some("owner@example.com".into()),
            peer: Some("203.0.113.7".parse().unwrap()),
            request_id: "rid-1".into(),
        }
    }

    /// An error with a cause and a one-frame backtrace.
    pub fn details(message: &str) -> ErrorDetails {
        ErrorDetails {
            error_type: "anyhow::Error".into(),
            message: message.into(),
            chain: vec![message.into(), "root cause".into()],
            backtrace: "   0: autosend::web::routes::clients::show\n".into(),
            ..ErrorDetails::default()
        }
    }

    /// The request section of a request report.
    pub fn request_info(report: &ErrorReport) -> &RequestInfo {
        match &report.source {
            ReportSource::Request(info) => info,
            ReportSource::Background { .. } => panic!("not a request report"),
        }
    }

    /// The value of `name` in a report's pairs.
    pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} missing in {pairs:?}"))
    }
}
