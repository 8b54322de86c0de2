//! Logging (SPEC §10) and the request context every log line carries (SPEC §8).
//!
//! Owns: the tracing subscriber with its console and daily-rolling file outputs, the line
//! format (text or JSON), and the task-local [`RequestContext`] holding the request id and the
//! user, which the formatter reads so that every line of a request says `rid=… user=…`.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context as _;
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder as RollingBuilder, Rotation};
use tracing_subscriber::filter::{EnvFilter, FilterFn, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, MASK, Settings};

/// Target of scheduler life-cycle events: start, stop, tick summaries (`logs/scheduler/run.*`).
pub const SCHEDULER_TARGET: &str = "scheduler";
/// Target of one line per finished run (`logs/scheduler/jobs.*`).
pub const JOBS_TARGET: &str = "jobs";
/// sqlx's statement-logging target (`logs/app/app_sql.*` when `LOG_SQL=true`).
const SQL_TARGET: &str = "sqlx::query";

/// Who and what a log line belongs to.
#[derive(Debug)]
pub struct RequestContext {
    pub request_id: String,
    user: RwLock<String>,
}

impl RequestContext {
    pub fn new(request_id: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            request_id: request_id.into(),
            user: RwLock::new("-".to_string()),
        })
    }

    pub fn user(&self) -> String {
        self.user.read().map(|u| u.clone()).unwrap_or_default()
    }

    pub fn set_user(&self, email: &str) {
        if let Ok(mut user) = self.user.write() {
            *user = email.to_string();
        }
    }
}

/// This machine's name, looked up once: reports, summaries and test e-mails say where they
/// come from.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".to_string())
    })
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

/// The context of the running task, if it runs inside one.
pub fn current_context() -> Option<Arc<RequestContext>> {
    CONTEXT.try_with(Arc::clone).ok()
}

/// Runs `fut` inside `ctx`: every log line it emits carries the context's ids.
pub async fn in_context<F: Future>(ctx: Arc<RequestContext>, fut: F) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}

/// `tokio::spawn` that keeps the caller's request context, so a task a request starts logs
/// with that request's id. Use it instead of `tokio::spawn` for request-started work.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current_context() {
        Some(ctx) => tokio::spawn(CONTEXT.scope(ctx, fut)),
        None => tokio::spawn(fut),
    }
}

/// Keeps the background log writers alive; dropping it flushes every file.
pub struct Telemetry {
    _guards: Vec<WorkerGuard>,
}

/// Installs the global subscriber: console plus the files of SPEC §10.
pub fn init(settings: &Settings) -> anyhow::Result<Telemetry> {
    let format = LineFormat::new(settings.log_format, settings.secret_values());
    let app_dir = settings.log_dir.join("app");
    let scheduler_dir = settings.log_dir.join("scheduler");
    for dir in [&app_dir, &scheduler_dir] {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    }

    let mut guards = Vec::new();
    let mut file = |dir: &Path, prefix: &str| -> anyhow::Result<_> {
        let appender = RollingBuilder::new()
            .rotation(Rotation::DAILY)
            .filename_prefix(prefix)
            .filename_suffix("log")
            .max_log_files(settings.log_keep_days)
            .build(dir)
            .with_context(|| format!("cannot open log file {}/{prefix}.*.log", dir.display()))?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        guards.push(guard);
        Ok(tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .event_format(format.clone())
            .with_writer(writer))
    };

    // Statements are logged at DEBUG by sqlx; they belong in app_sql, not in app_info.
    let not_sql_chatter =
        |m: &Metadata<'_>| !(m.target() == SQL_TARGET && *m.level() > Level::WARN);
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
        // Console logs go to stderr: stdout is for what a command prints (seed-managers'
        // `EMAIL PASSWORD` lines must be pipeable).
        tracing_subscriber::fmt::layer()
            .event_format(format.clone())
            .with_writer(std::io::stderr)
            .with_filter(console_filter(&settings.log_level, settings.debug))
            .boxed(),
        file(&app_dir, "app_info")?
            .with_filter(FilterFn::new(move |m| {
                *m.level() <= Level::INFO && not_sql_chatter(m)
            }))
            .boxed(),
        file(&app_dir, "app_errors")?
            .with_filter(LevelFilter::WARN)
            .boxed(),
        file(&scheduler_dir, "run")?
            .with_filter(FilterFn::new(|m| m.target() == SCHEDULER_TARGET))
            .boxed(),
        file(&scheduler_dir, "jobs")?
            .with_filter(FilterFn::new(|m| m.target() == JOBS_TARGET))
            .boxed(),
    ];
    if settings.log_sql {
        layers.push(
            file(&app_dir, "app_sql")?
                .with_filter(FilterFn::new(|m| m.target() == SQL_TARGET))
                .boxed(),
        );
    }
    Registry::default()
        .with(layers)
        .try_init()
        .context("a global tracing subscriber is already installed")?;
    Ok(Telemetry { _guards: guards })
}

/// Console output for tests: only when `TEST_LOG` is set, so test runs stay quiet.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let format = LineFormat::new(LogFormat::Text, Vec::new());
        let _ = tracing_subscriber::fmt()
            .event_format(format)
            .with_env_filter(EnvFilter::new("info,sqlx=warn"))
            .with_test_writer()
            .try_init();
    }
}

fn console_filter(level: &str, debug: bool) -> EnvFilter {
    // DEBUG=true means verbose logs unless the operator chose a level explicitly.
    let level = if debug && level == "info" {
        "debug,sqlx=info,hyper=info"
    } else {
        level
    };
    EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The line format of SPEC §10, text or JSON, with configured secrets scrubbed as a last guard.
#[derive(Clone)]
struct LineFormat {
    json: bool,
    secrets: Arc<Vec<String>>,
}

impl LineFormat {
    fn new(format: LogFormat, secrets: Vec<String>) -> Self {
        Self {
            json: format == LogFormat::Json,
            secrets: Arc::new(secrets),
        }
    }

    fn scrub(&self, mut line: String) -> String {
        for secret in self.secrets.iter() {
            if line.contains(secret.as_str()) {
                line = line.replace(secret.as_str(), MASK);
            }
        }
        line
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = OffsetDateTime::now_utc()
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .unwrap_or_default();
        let meta = event.metadata();
        let (rid, user) = match current_context() {
            Some(c) => (c.request_id.clone(), c.user()),
            None => ("-".to_string(), "-".to_string()),
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Fields of the enclosing spans (`#[instrument(fields(mailing_id = …))]`).
        let mut spans = String::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<FormattedFields<N>>()
                    && !f.is_empty()
                {
                    if !spans.is_empty() {
                        spans.push(' ');
                    }
                    spans.push_str(f);
                }
            }
        }

        let line = if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("timestamp".into(), now.into());
            obj.insert("level".into(), meta.level().as_str().into());
            obj.insert("target".into(), meta.target().into());
            obj.insert("rid".into(), rid.into());
            obj.insert("user".into(), user.into());
            obj.insert("message".into(), fields.message.into());
            for (k, v) in fields.pairs {
                obj.insert(k, v.into());
            }
            if !spans.is_empty() {
                obj.insert("span".into(), spans.into());
            }
            serde_json::Value::Object(obj).to_string()
        } else {
            let mut line = format!(
                "{now} {} {} rid={rid} user={user} {}",
                meta.level(),
                meta.target(),
                fields.message
            );
            for (k, v) in &fields.pairs {
                let _ = write!(line, " {k}={}", quote(v));
            }
            if !spans.is_empty() {
                let _ = write!(line, " {spans}");
            }
            line
        };
        writeln!(writer, "{}", self.scrub(line))
    }
}

/// Quotes a value that would otherwise break `key=value` parsing.
fn quote(value: &str) -> String {
    if value.is_empty() || value.contains([' ', '"', '=', '\n', '\r', '\t']) {
        format!("{value:?}")
    } else {
        value.to_string()
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.pairs
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole cause chain, so app_errors says why and not only what.
        let mut chain = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(chain, ": {cause}");
            source = cause.source();
        }
        self.pairs.push((field.name().to_string(), chain));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.pairs
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
}
